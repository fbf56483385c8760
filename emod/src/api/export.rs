//! `GET /api/v1/export?format=csv|json`: every sample matching the filters, streamed page by page
//! so a multi-million-row export never sits in memory.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::{web, HttpResponse};
use emo_api_types::{Emotion, ExportFormat as Format, ExportQuery, ExportRow};

use super::scope::resolve;
use super::AppState;
use crate::auth::AuthUser;
use crate::error::AppResult;
use crate::store::export::ExportCursor;
use crate::store::modality_code;

const PAGE: i64 = 5000;

pub fn csv_header() -> String {
    let mut h = "session_id,username,t,modality,emotion,confidence".to_string();
    for e in Emotion::ALL {
        h.push_str(&format!(",p_{e}"));
    }
    h.push('\n');
    h
}

pub fn csv_line(r: &ExportRow) -> String {
    let mut line = format!(
        "{},{},{},{},{},{}",
        r.session_id,
        csv_field(&r.username),
        r.t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        r.modality,
        r.emotion,
        r.confidence
    );
    for e in Emotion::ALL {
        line.push(',');
        if let Some(p) = r.probabilities.get(&e) {
            line.push_str(&p.to_string());
        }
    }
    line.push('\n');
    line
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn render(rows: &[ExportRow], format: Format, first: &mut bool) -> Bytes {
    let mut out = String::new();
    for r in rows {
        match format {
            Format::Csv => out.push_str(&csv_line(r)),
            Format::Json => {
                if !*first {
                    out.push(',');
                }
                *first = false;
                out.push_str(&serde_json::to_string(r).unwrap_or_default());
                out.push('\n');
            }
        }
    }
    Bytes::from(out)
}

#[utoipa::path(get, path = "/api/v1/export", tag = "export", params(ExportQuery),
    responses((status = 200, description = "`format=csv` (the default): CSV text with a header line; `format=json`: a JSON array of rows",
        content((String = "text/csv"), (Vec<ExportRow> = "application/json"))),
        (status = 429, description = "too_many_attempts: too many exports running (server.max_exports_per_user, server.max_exports)", body = emo_api_types::ApiError)),
    security(("bearer" = [])))]
pub async fn export(
    state: web::Data<AppState>,
    user: AuthUser,
    q: web::Query<ExportQuery>,
) -> AppResult<HttpResponse> {
    let format = q.format.unwrap_or_default();
    // Held by the task that writes the pages: given back when the export ends, fails, stalls or
    // its client leaves.
    let slot = state.export_slots.take(user.id)?;
    let filter = resolve(&state, &user, &q.filters(), None, "read.export", None).await?;
    crate::sessions::read_your_writes(&state.sessions(), filter.user_id).await?;
    let store = state.store.clone();
    let f = filter.clone();
    // The first page is read before answering, so an unreachable database is a clean 503.
    let first_page = state
        .reads
        .run(move || store.export_page(&f, None, PAGE))
        .await??;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, actix_web::Error>>(4);
    let store = state.store.clone();
    let stall = std::time::Duration::from_secs(state.config.server.export_stall_secs.max(1));
    let stalled = Arc::new(AtomicBool::new(false));
    let out = Out {
        tx,
        stall,
        stalled: stalled.clone(),
    };
    let reads = state.reads.clone();
    actix_web::rt::spawn(async move {
        send_pages(store, reads, filter, format, first_page, out).await;
        drop(slot);
    });
    // A stalled export ends as a broken transfer (no last chunk), like one cut by an outage:
    // a client that reads on later must not take a cut export for a whole one.
    let stream = futures_util::stream::unfold(Some(rx), move |rx| {
        let stalled = stalled.clone();
        async move {
            let mut rx = rx?;
            match rx.recv().await {
                Some(item) => Some((item, Some(rx))),
                None if stalled.load(Ordering::Acquire) => Some((
                    Err(actix_web::error::ErrorRequestTimeout(
                        "export ended: the client read nothing",
                    )),
                    None,
                )),
                None => None,
            }
        }
    });
    let (ctype, ext) = match format {
        Format::Csv => ("text/csv; charset=utf-8", "csv"),
        Format::Json => ("application/json", "json"),
    };
    Ok(HttpResponse::Ok()
        .content_type(ctype)
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"emo-export.{ext}\""),
        ))
        .streaming(stream))
}

/// Where the pages go: a small channel the response reads from (its capacity is all an export
/// buffers: back-pressure from the socket), given up when the client reads nothing for `stall`.
struct Out {
    tx: tokio::sync::mpsc::Sender<Result<Bytes, actix_web::Error>>,
    stall: std::time::Duration,
    /// Set when the export ended because its client read nothing for `stall`.
    stalled: Arc<AtomicBool>,
}

impl Out {
    /// `Err` when the client left or stalled: the export ends.
    async fn send(&self, chunk: Result<Bytes, actix_web::Error>) -> Result<(), ()> {
        match tokio::time::timeout(self.stall, self.tx.send(chunk)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(()),
            Err(_) => {
                tracing::info!(stall = ?self.stall, "export ended: its client read nothing");
                self.stalled.store(true, Ordering::Release);
                Err(())
            }
        }
    }
}

/// Writes the export into `tx` page by page: the header, `first_page` (read before answering),
/// then each next page after the last row's cursor, then the JSON array's end. A client that
/// leaves (the stream is dropped, so sending fails) ends it: no further page is read for nobody.
async fn send_pages(
    store: crate::store::Store,
    reads: crate::reads::ReadGate,
    filter: crate::store::stats::StatsFilter,
    format: Format,
    first_page: Vec<ExportRow>,
    tx: Out,
) {
    let mut first = true;
    let mut rows = 0usize;
    let head = match format {
        Format::Csv => Bytes::from(csv_header()),
        Format::Json => Bytes::from_static(b"["),
    };
    if tx.send(Ok(head)).await.is_err() {
        return abandoned(rows);
    }
    let mut page = first_page;
    while !page.is_empty() {
        let full = page.len() as i64 == PAGE;
        let last = page.last().map(cursor);
        if tx
            .send(Ok(render(&page, format, &mut first)))
            .await
            .is_err()
        {
            return abandoned(rows);
        }
        rows += page.len();
        if !full {
            break;
        }
        page = match next_page(&store, &reads, &filter, last).await {
            Ok(p) => p,
            Err(e) => {
                // The status line is long gone: failing the body stream aborts the chunked
                // response (no last chunk), so the client sees a broken transfer, never a
                // short export that looks complete.
                tracing::error!(rows, "export interrupted: {e}");
                let _ = tx
                    .send(Err(actix_web::error::ErrorServiceUnavailable(format!(
                        "export interrupted: {e}"
                    ))))
                    .await;
                return;
            }
        };
    }
    if format == Format::Json && tx.send(Ok(Bytes::from_static(b"]"))).await.is_err() {
        abandoned(rows);
    }
}

/// Where the next page starts: after this row in (t, session, modality) order.
fn cursor(r: &ExportRow) -> ExportCursor {
    ExportCursor {
        t: r.t.timestamp_millis(),
        session_id: r.session_id.to_string(),
        modality: modality_code(r.modality),
    }
}

/// The page after `last`, read on the blocking pool.
async fn next_page(
    store: &crate::store::Store,
    reads: &crate::reads::ReadGate,
    filter: &crate::store::stats::StatsFilter,
    last: Option<ExportCursor>,
) -> Result<Vec<ExportRow>, String> {
    let (s, f) = (store.clone(), filter.clone());
    match reads
        .run(move || s.export_page(&f, last.as_ref(), PAGE))
        .await
    {
        Ok(Ok(p)) => Ok(p),
        Ok(Err(e)) => Err(e.to_string()),
        Err(e) => Err(e.to_string()),
    }
}

/// How far an export got before its client left (rows handed to the response stream).
fn abandoned(rows: usize) {
    tracing::info!(rows, "export abandoned by the client");
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn csv_rows_line_up_with_the_header() {
        let mut probabilities = BTreeMap::new();
        probabilities.insert(Emotion::Happy, 0.75);
        let row = ExportRow {
            session_id: uuid::Uuid::nil(),
            username: "a,b".into(),
            t: chrono::DateTime::from_timestamp_millis(1_700_000_000_123).unwrap(),
            modality: emo_api_types::Modality::Fused,
            emotion: Emotion::Happy,
            confidence: 0.75,
            probabilities,
        };
        let line = csv_line(&row);
        assert_eq!(
            line,
            "00000000-0000-0000-0000-000000000000,\"a,b\",2023-11-14T22:13:20.123Z,fused,happy,0.75,,,,0.75,,,,\n"
        );
        assert_eq!(csv_header().matches(',').count(), 13);
    }
}
