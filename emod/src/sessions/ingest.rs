//! Samples into storage and onto the live stream: the one path for samples posted over the API
//! and samples produced by this daemon's capture pipeline.

use std::sync::Arc;

use emo_api_types::{ErrorCode, LiveEvent, Sample, SampleIn};
use uuid::Uuid;

use crate::error::{AppError, AppResult};
use crate::live::LiveBus;
use crate::store::writer::Writer;
use crate::store::SampleRow;

/// Cheap to clone; the capture pipeline keeps one on its own thread.
#[derive(Clone)]
pub struct Ingest {
    pub writer: Writer,
    pub live: Arc<LiveBus>,
}

impl Ingest {
    /// Queue already validated samples for the database (through the outage spool) and
    /// publish them live. Nothing is accepted when the spool is full (503).
    pub fn submit(&self, session: Uuid, user: Uuid, samples: &[SampleIn]) -> AppResult<usize> {
        let rows: Vec<SampleRow> = samples
            .iter()
            .map(|s| SampleRow::from_api(session, user, s))
            .collect();
        let n = self.writer.submit(rows).map_err(|e| {
            AppError::new(
                ErrorCode::StorageUnavailable,
                format!("the database is unreachable and {e}; nothing was accepted, retry later"),
            )
        })?;
        for s in samples {
            self.live.publish(
                session,
                LiveEvent::Sample(Sample {
                    session_id: session,
                    t: s.t,
                    modality: s.modality,
                    emotion: s.emotion,
                    confidence: s.confidence,
                    probabilities: s.probabilities.clone(),
                }),
            );
        }
        Ok(n)
    }
}
