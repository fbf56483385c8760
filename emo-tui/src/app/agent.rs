//! The agent's screen: past sessions, the consent prompt, starting and stopping a session and
//! its live view ([`keys::MY_SESSIONS`], [`keys::CONSENT`]).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use emo_api_types::{
    Emotion, ErrorCode, LiveEvent, Modality, Page, Session, SessionStatus, SourceState,
};
use ratatui::crossterm::event::{KeyCode, KeyEvent};
use uuid::Uuid;

use super::{App, Cmd, Screen};
use crate::api::ClientError;
use crate::keys::{self, Action};
use crate::shaping;

/// The latest live estimate of one modality.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveReading {
    pub t: DateTime<Utc>,
    pub emotion: Emotion,
    pub confidence: f64,
    pub probabilities: BTreeMap<Emotion, f64>,
}

#[derive(Debug, Clone, Default)]
pub struct LiveState {
    pub session: Option<Uuid>,
    pub connected: bool,
    pub readings: BTreeMap<Modality, LiveReading>,
    pub events: u64,
    /// Capture sources by name (`camera`, `microphone`) with their last state and message.
    pub sources: BTreeMap<String, (SourceState, String)>,
    /// The pipeline's latest figures.
    pub stats: Option<emo_api_types::CaptureStats>,
}

impl LiveState {
    /// The live view of a session that has just started or been found running.
    fn of(session: Uuid) -> Self {
        LiveState {
            session: Some(session),
            ..LiveState::default()
        }
    }

    /// Whether a capture source of this daemon currently delivers (`None`: no source has
    /// reported yet, or the session takes samples posted over the API).
    pub fn delivering(&self) -> Option<bool> {
        if self.sources.is_empty() {
            return None;
        }
        Some(
            self.sources
                .values()
                .any(|(s, _)| matches!(s, SourceState::Active | SourceState::Recovered)),
        )
    }
}

/// What a running session's capture is doing, said with the same word everywhere it shows
/// (the header on every screen, the agent's session line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaptureState {
    /// The daemon's sources have not reported yet and no estimate has arrived.
    Starting,
    /// Estimates are being made: a source delivers, or samples come over the API.
    Recording,
    /// The session runs, but none of its sources delivers (all ended or lost).
    NotCapturing,
}

impl CaptureState {
    /// The badge: a symbol (the state does not depend on colour) and the word.
    pub fn badge(self) -> &'static str {
        match self {
            CaptureState::Starting => "◌ STARTING",
            CaptureState::Recording => "● RECORDING",
            CaptureState::NotCapturing => "■ NOT CAPTURING",
        }
    }
}

/// Keys that arrive within this long of the consent prompt opening (or of another such key)
/// are type-ahead, not an answer: consent must be given to a prompt the user has seen.
pub const CONSENT_GUARD: chrono::Duration = chrono::Duration::milliseconds(800);

#[derive(Debug, Clone, Default)]
pub struct AgentState {
    pub history: Vec<Session>,
    pub total: u64,
    pub selected: usize,
    pub running: Option<Session>,
    pub consent_open: bool,
    /// When the open consent prompt starts taking an answer ([`CONSENT_GUARD`]).
    pub consent_ready_at: Option<DateTime<Utc>>,
    /// The daemon's devices, fetched when the consent prompt opens.
    pub devices: Option<emo_api_types::Devices>,
    pub live: LiveState,
    pub loaded: bool,
}

impl AgentState {
    /// The running session's capture state; `None` when no session runs.
    pub fn capture_state(&self) -> Option<CaptureState> {
        let s = self.running.as_ref()?;
        let captures = s.sources.iter().any(|x| x == "camera" || x == "microphone");
        Some(
            match (
                captures,
                self.live.delivering(),
                self.live.readings.is_empty(),
            ) {
                // RECORDING only while a source delivers; otherwise say what is wrong.
                (true, Some(false), _) => CaptureState::NotCapturing,
                (true, None, true) => CaptureState::Starting,
                _ => CaptureState::Recording,
            },
        )
    }

    /// Whether the consent prompt takes an answer at `now` (its type-ahead guard is over).
    pub fn consent_ready(&self, now: DateTime<Utc>) -> bool {
        self.consent_ready_at.is_none_or(|t| now >= t)
    }
}

impl App {
    pub(super) fn my_sessions_cmd(&self) -> Cmd {
        Cmd::MySessions {
            agent: self
                .user
                .as_ref()
                .map(|u| u.username.clone())
                .unwrap_or_default(),
        }
    }

    pub(super) fn key_agent(&mut self, key: KeyEvent) -> Vec<Cmd> {
        if self.agent.consent_open {
            return self.key_consent(&key);
        }
        if let Some(c) = self.key_common(&key) {
            return c;
        }
        let n = self.agent.history.len();
        let admin = self.is_admin();
        let sel = &mut self.agent.selected;
        match keys::action(&keys::MY_SESSIONS, &key) {
            Some(Action::StartSession) => return self.ask_consent(),
            Some(Action::StopSession) => return self.stop_session(),
            Some(Action::Refresh) => return vec![self.my_sessions_cmd()],
            Some(Action::OpenDashboard) if admin => return self.enter_dashboard(),
            Some(Action::Down) if n > 0 => *sel = (*sel + 1).min(n - 1),
            Some(Action::Up) => *sel = sel.saturating_sub(1),
            Some(Action::First) => *sel = 0,
            Some(Action::Last) => *sel = n.saturating_sub(1),
            Some(Action::Open) => {
                if let Some(id) = self.agent.history.get(*sel).map(|s| s.id) {
                    return self.open_detail(id, Screen::Agent);
                }
            }
            _ => {}
        }
        vec![]
    }

    fn key_consent(&mut self, key: &KeyEvent) -> Vec<Cmd> {
        // Type-ahead (text meant for another screen, a key held down) is not an answer: keys
        // within the guard are dropped and extend it; Esc still cancels.
        if key.code != KeyCode::Esc && !self.agent.consent_ready(self.now) {
            self.agent.consent_ready_at = Some(self.now + CONSENT_GUARD);
            self.info("Keys typed as the consent prompt opened are ignored: read it, then answer.");
            return vec![];
        }
        match keys::action(&keys::CONSENT, key) {
            Some(Action::Consent) => {
                self.agent.consent_open = false;
                self.info("Starting a session…");
                vec![Cmd::StartSession {
                    sources: self.sources.clone(),
                    label: self.label.clone(),
                }]
            }
            Some(Action::Cancel) => {
                self.agent.consent_open = false;
                self.info("Not started: no consent given.");
                vec![]
            }
            _ => vec![],
        }
    }

    fn ask_consent(&mut self) -> Vec<Cmd> {
        if let Some(r) = &self.agent.running {
            self.error(format!(
                "A session is already running (since {}). Stop it with x first.",
                r.started_at.with_timezone(&self.tz).format("%H:%M")
            ));
            return vec![];
        }
        self.agent.consent_open = true;
        self.agent.consent_ready_at = Some(self.now + CONSENT_GUARD);
        self.agent.devices = None;
        vec![Cmd::Devices]
    }

    fn stop_session(&mut self) -> Vec<Cmd> {
        match self.agent.running.as_ref().map(|s| s.id) {
            Some(id) => {
                self.info("Stopping the session…");
                vec![Cmd::StopSession(id)]
            }
            None => {
                self.error("No session is running.");
                vec![]
            }
        }
    }

    pub(super) fn on_my_sessions(&mut self, r: Result<Page<Session>, ClientError>) -> Vec<Cmd> {
        let page = match r {
            Ok(p) => p,
            Err(e) => return self.fail(e),
        };
        self.agent.loaded = true;
        self.agent.total = page.total;
        self.agent.history = page.items;
        self.agent.selected = self
            .agent
            .selected
            .min(self.agent.history.len().saturating_sub(1));
        let running = self
            .agent
            .history
            .iter()
            .find(|s| s.status == SessionStatus::Running)
            .cloned();
        let mut cmds = vec![];
        match (&running, self.agent.live.session) {
            (Some(r), live) if live != Some(r.id) => {
                self.agent.live = LiveState::of(r.id);
                cmds.push(Cmd::Live(r.id));
            }
            (None, Some(_)) => {
                self.agent.live = LiveState::default();
                cmds.push(Cmd::StopLive);
            }
            _ => {}
        }
        self.agent.running = running;
        cmds
    }

    pub(super) fn on_started(&mut self, r: Result<Session, ClientError>) -> Vec<Cmd> {
        let s = match r {
            Ok(s) => s,
            Err(e) => {
                // Already running (e.g. started from another terminal): show that session.
                let refresh = e.code() == Some(ErrorCode::SessionAlreadyRunning);
                let mut c = self.fail(e);
                if refresh {
                    c.push(self.my_sessions_cmd());
                }
                return c;
            }
        };
        self.ok("Recording: expression estimates are being stored. Press x to stop.");
        self.agent.live = LiveState::of(s.id);
        let id = s.id;
        self.agent.running = Some(s.clone());
        self.agent.history.insert(0, s);
        self.agent.total += 1;
        self.agent.selected = 0;
        vec![Cmd::Live(id)]
    }

    pub(super) fn on_stopped(&mut self, r: Result<Session, ClientError>) -> Vec<Cmd> {
        let s = match r {
            Ok(s) => s,
            Err(e) => {
                // Stopped elsewhere in the meantime: catch up instead of insisting.
                let refresh = matches!(
                    e.code(),
                    Some(ErrorCode::SessionNotRunning | ErrorCode::NotFound)
                );
                let mut c = self.fail(e);
                if refresh {
                    self.agent.running = None;
                    self.agent.live = LiveState::default();
                    c.push(Cmd::StopLive);
                    c.push(self.my_sessions_cmd());
                }
                return c;
            }
        };
        let dur = s
            .summary
            .as_ref()
            .map(|x| shaping::fmt_duration(x.duration_seconds));
        self.ok(match dur {
            Some(d) => format!("Session stopped after {d}."),
            None => "Session stopped.".to_string(),
        });
        self.agent.running = None;
        self.agent.live = LiveState::default();
        if let Some(h) = self.agent.history.iter_mut().find(|h| h.id == s.id) {
            *h = s;
        }
        vec![Cmd::StopLive, self.my_sessions_cmd()]
    }

    pub(super) fn on_live(&mut self, ev: LiveEvent) -> Vec<Cmd> {
        let live = &mut self.agent.live;
        match ev {
            LiveEvent::Sample(s) => {
                if live.session == Some(s.session_id) {
                    live.connected = true;
                    live.events += 1;
                    live.readings.insert(
                        s.modality,
                        LiveReading {
                            t: s.t,
                            emotion: s.emotion,
                            confidence: s.confidence,
                            probabilities: s.probabilities,
                        },
                    );
                }
            }
            LiveEvent::Source {
                source,
                state,
                message,
            } => {
                live.connected = true;
                live.sources
                    .insert(source.clone(), (state, message.clone()));
                match state {
                    SourceState::Lost => self.error(format!("{source} lost: {message}")),
                    SourceState::Ended => self.info(format!("{source} ended: {message}")),
                    _ => {}
                }
            }
            LiveEvent::Stats(st) => {
                live.connected = true;
                live.stats = Some(st);
            }
            LiveEvent::Stopped { session_id } => {
                if live.session == Some(session_id) {
                    live.connected = false;
                    self.agent.running = None;
                    self.info("The session was stopped.");
                    return vec![Cmd::StopLive, self.my_sessions_cmd()];
                }
            }
        }
        vec![]
    }

    pub(super) fn on_live_error(&mut self, e: ClientError) -> Vec<Cmd> {
        self.agent.live.connected = false;
        if e.code() == Some(ErrorCode::NotFound) {
            // An older daemon without the live endpoint: keep the panel quiet.
            self.info("Live view not available on this server.");
        } else {
            self.error(format!("Live view: {}", e.user_message()));
        }
        vec![]
    }
}
