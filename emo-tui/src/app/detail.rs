//! One session's timeline ([`keys::SESSION`]), opened from the agent's list or the dashboard.

use emo_api_types::{Modality, Sample, Session};
use ratatui::crossterm::event::KeyEvent;
use uuid::Uuid;

use super::{App, Cmd, Screen};
use crate::api::ClientError;
use crate::keys::{self, Action};
use crate::shaping;

#[derive(Debug, Clone)]
pub struct DetailState {
    /// The session asked for; answers about any other session are dropped.
    pub id: Option<Uuid>,
    pub session: Option<Session>,
    pub samples: Vec<Sample>,
    pub modality: Option<Modality>,
    pub back: Screen,
    pub loading: bool,
}

impl DetailState {
    /// Nothing loaded; Back returns to `back`.
    pub fn new(back: Screen) -> Self {
        DetailState {
            id: None,
            session: None,
            samples: Vec::new(),
            modality: None,
            back,
            loading: false,
        }
    }
}

impl App {
    pub(super) fn open_detail(&mut self, id: Uuid, back: Screen) -> Vec<Cmd> {
        self.detail = DetailState {
            id: Some(id),
            loading: true,
            ..DetailState::new(back)
        };
        self.screen = Screen::Detail;
        vec![Cmd::OpenSession(id)]
    }

    pub(super) fn key_detail(&mut self, key: KeyEvent) -> Vec<Cmd> {
        if let Some(c) = self.key_common(&key) {
            return c;
        }
        match keys::action(&keys::SESSION, &key) {
            Some(Action::Back) => self.screen = self.detail.back,
            Some(Action::SwitchModality) => {
                let present: Vec<Modality> = Modality::ALL
                    .into_iter()
                    .filter(|m| self.detail.samples.iter().any(|s| s.modality == *m))
                    .collect();
                if let Some(first) = present.first() {
                    let next = shaping::cycle(&present, self.detail.modality.as_ref(), true)
                        .unwrap_or(*first);
                    self.detail.modality = Some(next);
                }
            }
            Some(Action::Refresh) => {
                if let Some(s) = &self.detail.session {
                    let (id, back) = (s.id, self.detail.back);
                    return self.open_detail(id, back);
                }
            }
            _ => {}
        }
        vec![]
    }

    pub(super) fn on_session_detail(
        &mut self,
        r: Result<(Session, Vec<Sample>), ClientError>,
    ) -> Vec<Cmd> {
        match r {
            Ok((s, _)) if self.detail.id != Some(s.id) => vec![],
            Ok((s, samples)) => {
                self.detail.modality = shaping::preferred_modality(&samples);
                self.detail.session = Some(s);
                self.detail.samples = samples;
                self.detail.loading = false;
                vec![]
            }
            Err(e) => {
                self.detail.loading = false;
                self.fail(e)
            }
        }
    }
}
