//! Application state and the pure state machine: keys and network answers in, state changes and
//! network commands ([`Cmd`]) out. No I/O happens here, which keeps every screen testable.

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::{DateTime, FixedOffset, Utc};
use emo_api_types::{
    AuditEntry, Bucket, Distribution, Emotion, Heatmap, HeatmapKind, LiveEvent, LoginResponse,
    Modality, Page, Role, Sample, Session, SessionStatus, Timeline, User,
};
use ratatui::crossterm::event::{
    KeyCode, KeyEvent, KeyModifiers, MouseButton, MouseEvent, MouseEventKind,
};
use uuid::Uuid;

use crate::api::{ClientError, Query};
use crate::shaping;
use crate::token::SavedToken;

/// A request for the network worker ([`crate::net`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Cmd {
    Health,
    Login {
        username: String,
        password: String,
    },
    Register {
        username: String,
        password: String,
    },
    SetToken(Option<String>),
    SaveToken(SavedToken),
    /// Deletes the saved login, but only if it holds this token (a rejected `EMO_TOKEN` or
    /// `--token` must not delete a saved login that may still be valid).
    ClearToken(String),
    Me,
    Logout,
    MySessions {
        agent: String,
    },
    StartSession {
        sources: Vec<String>,
        label: Option<String>,
    },
    StopSession(Uuid),
    OpenSession(Uuid),
    /// `gen` (the dashboard's filter generation) comes back with the answer, so that a slow
    /// answer to an older filter is not applied over a newer one.
    Dashboard {
        query: Query,
        bucket: Bucket,
        gen: u64,
    },
    Timeline {
        query: Query,
        bucket: Bucket,
        gen: u64,
    },
    Heatmap {
        query: Query,
        kind: HeatmapKind,
        tz_offset_minutes: i32,
        gen: u64,
    },
    Users,
    Audit {
        offset: u64,
    },
    Export {
        query: Query,
        path: PathBuf,
    },
    Live(Uuid),
    StopLive,
    /// What the daemon would capture from (shown in the consent prompt).
    Devices,
}

impl Cmd {
    /// Whether the command is a request whose answer the UI waits for (drives the spinner).
    pub fn awaits_answer(&self) -> bool {
        !matches!(
            self,
            Cmd::SetToken(_)
                | Cmd::SaveToken(_)
                | Cmd::ClearToken(_)
                | Cmd::Live(_)
                | Cmd::StopLive
        )
    }
}

/// Everything the dashboard loads at once for a filter.
#[derive(Debug, Clone)]
pub struct DashData {
    pub distribution: Distribution,
    pub timeline: Timeline,
    pub sessions: Page<Session>,
}

/// An answer from the network worker. Every variant but the live ones and
/// [`Msg::TokenNotSaved`] answers exactly one command that [`Cmd::awaits_answer`].
#[derive(Debug, Clone)]
pub enum Msg {
    Health(Result<emo_api_types::Health, ClientError>),
    Login(Result<(String, LoginResponse), ClientError>),
    Register(Result<(User, String), ClientError>),
    Me(Result<User, ClientError>),
    LoggedOut,
    MySessions(Result<Page<Session>, ClientError>),
    Started(Result<Session, ClientError>),
    Stopped(Result<Session, ClientError>),
    SessionDetail(Result<(Session, Vec<Sample>), ClientError>),
    /// The answer to [`Cmd::Dashboard`] with its `gen`.
    Dashboard(u64, Result<Box<DashData>, ClientError>),
    /// The answer to [`Cmd::Timeline`] with its `gen`.
    Timeline(u64, Result<Timeline, ClientError>),
    /// The answer to [`Cmd::Heatmap`] with its `gen`.
    Heatmap(u64, Result<Heatmap, ClientError>),
    Users(Result<Vec<User>, ClientError>),
    Audit(Result<Page<AuditEntry>, ClientError>),
    Exported(Result<(PathBuf, usize), ClientError>),
    Devices(Result<emo_api_types::Devices, ClientError>),
    Live(LiveEvent),
    LiveError(ClientError),
    LiveEnded,
    /// Saving the login failed ([`Cmd::SaveToken`] is local and not counted as in flight).
    TokenNotSaved(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Screen {
    /// Checking a saved token.
    Connecting,
    Login,
    Register,
    Agent,
    Dashboard,
    Detail,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusKind {
    Info,
    Ok,
    Error,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    pub text: String,
    pub kind: StatusKind,
}

/// A single-line text field.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Input {
    pub value: String,
}

impl Input {
    pub fn new(v: &str) -> Self {
        Input {
            value: v.to_string(),
        }
    }
    /// Edits the field; returns false if the key is not an editing key.
    pub fn edit(&mut self, key: &KeyEvent) -> bool {
        match key.code {
            KeyCode::Char('u') if key.modifiers.contains(KeyModifiers::CONTROL) => {
                self.value.clear();
                true
            }
            KeyCode::Char(c) if !key.modifiers.contains(KeyModifiers::CONTROL) => {
                if self.value.chars().count() < 200 {
                    self.value.push(c);
                }
                true
            }
            KeyCode::Backspace => {
                self.value.pop();
                true
            }
            _ => false,
        }
    }
    pub fn masked(&self) -> String {
        "•".repeat(self.value.chars().count())
    }
}

#[derive(Debug, Clone, Default)]
pub struct LoginForm {
    pub username: Input,
    pub password: Input,
    /// 0 = username, 1 = password.
    pub focus: usize,
}

#[derive(Debug, Clone, Default)]
pub struct RegisterForm {
    pub username: Input,
    pub password: Input,
    pub confirm: Input,
    /// 0 = username, 1 = password, 2 = confirm.
    pub focus: usize,
}

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
    pub sources: BTreeMap<String, (emo_api_types::SourceState, String)>,
    /// The pipeline's latest figures.
    pub stats: Option<emo_api_types::CaptureStats>,
}

impl LiveState {
    /// Whether a capture source of this daemon currently delivers (`None`: no source has
    /// reported yet, or the session takes samples posted over the API).
    pub fn delivering(&self) -> Option<bool> {
        use emo_api_types::SourceState::*;
        if self.sources.is_empty() {
            return None;
        }
        Some(
            self.sources
                .values()
                .any(|(s, _)| matches!(s, Active | Recovered)),
        )
    }
}

#[derive(Debug, Clone, Default)]
pub struct AgentState {
    pub history: Vec<Session>,
    pub total: u64,
    pub selected: usize,
    pub running: Option<Session>,
    pub consent_open: bool,
    /// The daemon's devices, fetched when the consent prompt opens.
    pub devices: Option<emo_api_types::Devices>,
    pub live: LiveState,
    pub loaded: bool,
}

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DashTab {
    Overview,
    Heatmap,
    Sessions,
    Audit,
}

impl DashTab {
    pub const ALL: [DashTab; 4] = [
        DashTab::Overview,
        DashTab::Heatmap,
        DashTab::Sessions,
        DashTab::Audit,
    ];
    pub fn title(self) -> &'static str {
        match self {
            DashTab::Overview => "Overview",
            DashTab::Heatmap => "Heatmap",
            DashTab::Sessions => "Sessions",
            DashTab::Audit => "Audit log",
        }
    }
    fn index(self) -> usize {
        DashTab::ALL.iter().position(|t| *t == self).unwrap_or(0)
    }
}

/// The tab under column `x` of the tab bar, as `ui::dashboard` draws it (ratatui `Tabs`: one
/// space of padding each side of `"N Title"`, a one-column divider between tabs).
pub fn tab_at(x: u16) -> Option<DashTab> {
    let mut start = 0u16;
    for (i, t) in DashTab::ALL.iter().enumerate() {
        let w = format!("{} {}", i + 1, t.title()).chars().count() as u16 + 2;
        if x >= start && x < start + w {
            return Some(*t);
        }
        start += w + 1;
    }
    None
}

/// The filter form's fields, in order.
pub const FILTER_FIELDS: [&str; 5] = ["Agent", "From", "To", "Emotion", "Modality"];

#[derive(Debug, Clone, Default)]
pub struct FilterForm {
    pub open: bool,
    pub focus: usize,
    pub agent: Input,
    pub from: Input,
    pub to: Input,
    pub emotion: Input,
    pub modality: Input,
}

impl FilterForm {
    pub fn field(&self, i: usize) -> &Input {
        match i {
            0 => &self.agent,
            1 => &self.from,
            2 => &self.to,
            3 => &self.emotion,
            _ => &self.modality,
        }
    }
    fn field_mut(&mut self, i: usize) -> &mut Input {
        match i {
            0 => &mut self.agent,
            1 => &mut self.from,
            2 => &mut self.to,
            3 => &mut self.emotion,
            _ => &mut self.modality,
        }
    }
}

#[derive(Debug, Clone)]
pub struct DashState {
    pub tab: DashTab,
    pub form: FilterForm,
    /// The filter in force (what the data below was loaded with).
    pub query: Query,
    pub bucket: Bucket,
    pub distribution: Option<Distribution>,
    pub timeline: Option<Timeline>,
    pub heat_kind: HeatmapKind,
    pub heatmap: Option<Heatmap>,
    pub sessions: Vec<Session>,
    pub sessions_total: u64,
    pub selected: usize,
    pub audit: Vec<AuditEntry>,
    pub audit_offset: u64,
    pub audit_total: u64,
    pub audit_selected: usize,
    pub users: Vec<User>,
    pub export_prompt: Option<Input>,
    pub loaded: bool,
    /// Generation of the filter in force: bumped by every (re)load; answers carrying an older
    /// generation are dropped.
    pub gen: u64,
}

pub const AUDIT_PAGE: u64 = 100;

pub struct App {
    pub server: String,
    pub screen: Screen,
    pub user: Option<User>,
    pub status: Option<Status>,
    pub pending: usize,
    pub show_help: bool,
    pub help_scroll: u16,
    pub color: bool,
    pub should_quit: bool,
    pub now: DateTime<Utc>,
    pub tz: FixedOffset,
    pub login: LoginForm,
    pub register: RegisterForm,
    pub agent: AgentState,
    pub detail: DetailState,
    pub dash: DashState,
    /// Sources requested when starting a session (`--sources`).
    pub sources: Vec<String>,
    /// Label given to sessions started here (`--label`).
    pub label: Option<String>,
    pub tick: u64,
    /// What `GET /healthz` said: `Ok(version)` or `Err(reason)`; shown on the login screen.
    pub server_info: Option<Result<String, String>>,
    /// A login request is on its way (Enter again does not send a second one).
    pub login_in_flight: bool,
    /// The token in use (from a login, the saved file, `--token` or `EMO_TOKEN`).
    token: Option<String>,
    /// Why the login could not be saved, kept for the "Logged in" message that follows.
    token_not_saved: Option<String>,
}

impl App {
    pub fn new(server: &str, color: bool, now: DateTime<Utc>, tz: FixedOffset) -> Self {
        App {
            server: server.trim_end_matches('/').to_string(),
            screen: Screen::Login,
            user: None,
            status: None,
            pending: 0,
            show_help: false,
            help_scroll: 0,
            color,
            should_quit: false,
            now,
            tz,
            login: LoginForm::default(),
            register: RegisterForm::default(),
            agent: AgentState::default(),
            detail: DetailState {
                id: None,
                session: None,
                samples: Vec::new(),
                modality: None,
                back: Screen::Agent,
                loading: false,
            },
            dash: DashState {
                tab: DashTab::Overview,
                form: FilterForm {
                    modality: Input::new("fused"),
                    ..FilterForm::default()
                },
                query: Query {
                    modality: Some(Modality::Fused),
                    ..Query::default()
                },
                bucket: Bucket::Day,
                distribution: None,
                timeline: None,
                heat_kind: HeatmapKind::AgentEmotion,
                heatmap: None,
                sessions: Vec::new(),
                sessions_total: 0,
                selected: 0,
                audit: Vec::new(),
                audit_offset: 0,
                audit_total: 0,
                audit_selected: 0,
                users: Vec::new(),
                export_prompt: None,
                loaded: false,
                gen: 0,
            },
            sources: Vec::new(),
            label: None,
            tick: 0,
            server_info: None,
            login_in_flight: false,
            token: None,
            token_not_saved: None,
        }
    }

    pub fn is_admin(&self) -> bool {
        self.user
            .as_ref()
            .map(|u| u.role == Role::Admin)
            .unwrap_or(false)
    }

    pub fn info(&mut self, s: impl Into<String>) {
        self.status = Some(Status {
            text: s.into(),
            kind: StatusKind::Info,
        });
    }
    pub fn ok(&mut self, s: impl Into<String>) {
        self.status = Some(Status {
            text: s.into(),
            kind: StatusKind::Ok,
        });
    }
    pub fn error(&mut self, s: impl Into<String>) {
        self.status = Some(Status {
            text: s.into(),
            kind: StatusKind::Error,
        });
    }

    /// Starts with a saved token: validate it with `GET /me`.
    pub fn resume(&mut self, token: String) -> Vec<Cmd> {
        self.screen = Screen::Connecting;
        self.info(format!("Connecting to {}…", self.server));
        self.token = Some(token.clone());
        self.out(vec![Cmd::SetToken(Some(token)), Cmd::Me])
    }

    /// Counts commands that wait for an answer; use on every batch leaving the app.
    fn out(&mut self, cmds: Vec<Cmd>) -> Vec<Cmd> {
        self.pending += cmds.iter().filter(|c| c.awaits_answer()).count();
        cmds
    }

    /// True while a text field has the keyboard (single-letter shortcuts are off).
    pub fn typing(&self) -> bool {
        matches!(self.screen, Screen::Login | Screen::Register)
            || (self.screen == Screen::Dashboard
                && (self.dash.form.open || self.dash.export_prompt.is_some()))
    }

    // ----------------------------------------------------------------------------------- keys

    pub fn on_key(&mut self, key: KeyEvent) -> Vec<Cmd> {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        if ctrl && matches!(key.code, KeyCode::Char('c') | KeyCode::Char('q')) {
            self.should_quit = true;
            return vec![];
        }
        if self.show_help {
            let plain = !key
                .modifiers
                .intersects(KeyModifiers::CONTROL | KeyModifiers::ALT);
            match key.code {
                KeyCode::Down | KeyCode::Char('j') if plain => {
                    self.help_scroll = self.help_scroll.saturating_add(1)
                }
                KeyCode::Up | KeyCode::Char('k') if plain => {
                    self.help_scroll = self.help_scroll.saturating_sub(1)
                }
                KeyCode::PageDown if plain => {
                    self.help_scroll = self.help_scroll.saturating_add(10)
                }
                KeyCode::PageUp if plain => self.help_scroll = self.help_scroll.saturating_sub(10),
                _ => {
                    self.show_help = false;
                    self.help_scroll = 0;
                }
            }
            return vec![];
        }
        if key.code == KeyCode::F(1) || (!self.typing() && key.code == KeyCode::Char('?')) {
            self.show_help = true;
            return vec![];
        }
        // Outside text fields, Ctrl and Alt chords are not shortcuts (Ctrl-S must not start a
        // session); in a field the field decides (Ctrl-U clears it, Ctrl-R on login registers).
        if !self.typing()
            && key
                .modifiers
                .intersects(KeyModifiers::CONTROL | KeyModifiers::ALT)
        {
            return vec![];
        }
        let cmds = match self.screen {
            Screen::Connecting => {
                if matches!(key.code, KeyCode::Esc | KeyCode::Char('q')) {
                    self.should_quit = true;
                }
                vec![]
            }
            Screen::Login => self.key_login(key),
            Screen::Register => self.key_register(key),
            Screen::Agent => self.key_agent(key),
            Screen::Dashboard => self.key_dashboard(key),
            Screen::Detail => self.key_detail(key),
        };
        self.out(cmds)
    }

    pub fn on_mouse(&mut self, m: MouseEvent) -> Vec<Cmd> {
        let code = match m.kind {
            MouseEventKind::ScrollDown => KeyCode::Down,
            MouseEventKind::ScrollUp => KeyCode::Up,
            // A click on a dashboard tab (row 2: under the header and the filter bar).
            MouseEventKind::Down(MouseButton::Left)
                if self.screen == Screen::Dashboard
                    && m.row == 2
                    && !self.typing()
                    && !self.show_help =>
            {
                return match tab_at(m.column) {
                    Some(t) => {
                        let c = self.switch_tab(t);
                        self.out(c)
                    }
                    None => vec![],
                };
            }
            _ => return vec![],
        };
        if self.typing() {
            return vec![];
        }
        self.on_key(KeyEvent::new(code, KeyModifiers::NONE))
    }

    /// Shortcuts shared by the logged-in screens. Returns None if the key is not one of them.
    fn key_common(&mut self, key: &KeyEvent) -> Option<Vec<Cmd>> {
        match key.code {
            KeyCode::Char('q') => {
                self.should_quit = true;
                Some(vec![])
            }
            KeyCode::Char('L') => Some(self.logout()),
            _ => None,
        }
    }

    fn logout(&mut self) -> Vec<Cmd> {
        let mut cmds = vec![Cmd::StopLive, Cmd::Logout];
        cmds.extend(self.forget_token());
        cmds
    }

    /// Drops the token in use; the saved login is deleted only if it holds that same token.
    fn forget_token(&mut self) -> Option<Cmd> {
        self.token.take().map(Cmd::ClearToken)
    }

    fn key_login(&mut self, key: KeyEvent) -> Vec<Cmd> {
        let f = &mut self.login;
        match key.code {
            KeyCode::Esc => {
                self.should_quit = true;
                vec![]
            }
            KeyCode::F(2) => {
                self.screen = Screen::Register;
                self.register.username = self.login.username.clone();
                self.status = None;
                vec![]
            }
            KeyCode::Char('r') if key.modifiers.contains(KeyModifiers::CONTROL) => {
                self.screen = Screen::Register;
                self.register.username = self.login.username.clone();
                self.status = None;
                vec![]
            }
            KeyCode::Tab | KeyCode::Down | KeyCode::BackTab | KeyCode::Up => {
                f.focus = 1 - f.focus.min(1);
                vec![]
            }
            KeyCode::Enter => {
                if f.focus == 0 {
                    f.focus = 1;
                    return vec![];
                }
                let username = f.username.value.trim().to_string();
                if username.is_empty() || f.password.value.is_empty() {
                    self.error("Enter a username and a password.");
                    return vec![];
                }
                if self.login_in_flight {
                    return vec![];
                }
                self.login_in_flight = true;
                let password = f.password.value.clone();
                self.info(format!("Logging in as {username}…"));
                vec![Cmd::Login { username, password }]
            }
            _ => {
                if f.focus == 0 {
                    f.username.edit(&key);
                } else {
                    f.password.edit(&key);
                }
                vec![]
            }
        }
    }

    fn key_register(&mut self, key: KeyEvent) -> Vec<Cmd> {
        let f = &mut self.register;
        match key.code {
            KeyCode::Esc => {
                self.screen = Screen::Login;
                self.status = None;
                vec![]
            }
            KeyCode::Tab | KeyCode::Down => {
                f.focus = (f.focus + 1) % 3;
                vec![]
            }
            KeyCode::BackTab | KeyCode::Up => {
                f.focus = (f.focus + 2) % 3;
                vec![]
            }
            KeyCode::Enter => {
                if f.focus < 2 {
                    f.focus += 1;
                    return vec![];
                }
                let username = f.username.value.trim().to_string();
                if username.is_empty() || f.password.value.is_empty() {
                    self.error("Choose a username and a password.");
                    return vec![];
                }
                if f.password.value != f.confirm.value {
                    f.confirm.value.clear();
                    self.error("The passwords do not match.");
                    return vec![];
                }
                let password = f.password.value.clone();
                self.info(format!("Creating account {username}…"));
                vec![Cmd::Register { username, password }]
            }
            _ => {
                match f.focus {
                    0 => f.username.edit(&key),
                    1 => f.password.edit(&key),
                    _ => f.confirm.edit(&key),
                };
                vec![]
            }
        }
    }

    fn my_sessions_cmd(&self) -> Cmd {
        Cmd::MySessions {
            agent: self
                .user
                .as_ref()
                .map(|u| u.username.clone())
                .unwrap_or_default(),
        }
    }

    fn key_agent(&mut self, key: KeyEvent) -> Vec<Cmd> {
        if self.agent.consent_open {
            return match key.code {
                KeyCode::Char('y') | KeyCode::Char('Y') => {
                    self.agent.consent_open = false;
                    self.info("Starting a session…");
                    vec![Cmd::StartSession {
                        sources: self.sources.clone(),
                        label: self.label.clone(),
                    }]
                }
                KeyCode::Char('n') | KeyCode::Esc | KeyCode::Char('q') => {
                    self.agent.consent_open = false;
                    self.info("Not started: no consent given.");
                    vec![]
                }
                _ => vec![],
            };
        }
        if let Some(c) = self.key_common(&key) {
            return c;
        }
        let n = self.agent.history.len();
        match key.code {
            KeyCode::Char('s') => {
                if let Some(r) = &self.agent.running {
                    self.error(format!(
                        "A session is already running (since {}). Stop it with x first.",
                        r.started_at.with_timezone(&self.tz).format("%H:%M")
                    ));
                } else {
                    self.agent.consent_open = true;
                    self.agent.devices = None;
                    return vec![Cmd::Devices];
                }
                vec![]
            }
            KeyCode::Char('x') => match self.agent.running.as_ref().map(|s| s.id) {
                Some(id) => {
                    self.info("Stopping the session…");
                    vec![Cmd::StopSession(id)]
                }
                None => {
                    self.error("No session is running.");
                    vec![]
                }
            },
            KeyCode::Char('r') => vec![self.my_sessions_cmd()],
            KeyCode::Char('d') | KeyCode::Tab if self.is_admin() => self.enter_dashboard(),
            KeyCode::Down | KeyCode::Char('j') => {
                if n > 0 {
                    self.agent.selected = (self.agent.selected + 1).min(n - 1);
                }
                vec![]
            }
            KeyCode::Up | KeyCode::Char('k') => {
                self.agent.selected = self.agent.selected.saturating_sub(1);
                vec![]
            }
            KeyCode::Home | KeyCode::Char('g') => {
                self.agent.selected = 0;
                vec![]
            }
            KeyCode::End | KeyCode::Char('G') => {
                self.agent.selected = n.saturating_sub(1);
                vec![]
            }
            KeyCode::Enter => match self.agent.history.get(self.agent.selected) {
                Some(s) => {
                    let id = s.id;
                    self.open_detail(id, Screen::Agent)
                }
                None => vec![],
            },
            _ => vec![],
        }
    }

    fn open_detail(&mut self, id: Uuid, back: Screen) -> Vec<Cmd> {
        self.detail = DetailState {
            id: Some(id),
            session: None,
            samples: Vec::new(),
            modality: None,
            back,
            loading: true,
        };
        self.screen = Screen::Detail;
        vec![Cmd::OpenSession(id)]
    }

    fn key_detail(&mut self, key: KeyEvent) -> Vec<Cmd> {
        if let Some(c) = self.key_common(&key) {
            return c;
        }
        match key.code {
            KeyCode::Esc | KeyCode::Backspace | KeyCode::Left | KeyCode::Char('h') => {
                self.screen = self.detail.back;
                vec![]
            }
            KeyCode::Char('m') => {
                let present: Vec<Modality> = Modality::ALL
                    .into_iter()
                    .filter(|m| self.detail.samples.iter().any(|s| s.modality == *m))
                    .collect();
                if present.is_empty() {
                    return vec![];
                }
                let next = shaping::cycle(&present, self.detail.modality.as_ref(), true)
                    .unwrap_or(present[0]);
                self.detail.modality = Some(next);
                vec![]
            }
            KeyCode::Char('r') => match &self.detail.session {
                Some(s) => {
                    let (id, back) = (s.id, self.detail.back);
                    self.open_detail(id, back)
                }
                None => vec![],
            },
            _ => vec![],
        }
    }

    pub fn enter_dashboard(&mut self) -> Vec<Cmd> {
        self.screen = Screen::Dashboard;
        if self.dash.loaded {
            return vec![];
        }
        self.dash.loaded = true;
        let mut c = vec![Cmd::Users];
        c.extend(self.load_dashboard());
        c
    }

    fn load_dashboard(&mut self) -> Vec<Cmd> {
        let q = self.dash.query.clone();
        self.dash.gen += 1;
        self.dash.bucket = shaping::choose_bucket(q.from, q.to, self.now);
        let mut c = vec![
            Cmd::Dashboard {
                query: q.clone(),
                bucket: self.dash.bucket,
                gen: self.dash.gen,
            },
            Cmd::Heatmap {
                query: q,
                kind: self.dash.heat_kind,
                tz_offset_minutes: self.tz.local_minus_utc() / 60,
                gen: self.dash.gen,
            },
        ];
        if self.dash.tab == DashTab::Audit {
            c.push(Cmd::Audit {
                offset: self.dash.audit_offset,
            });
        }
        c
    }

    fn key_dashboard(&mut self, key: KeyEvent) -> Vec<Cmd> {
        if self.dash.form.open {
            return self.key_filter_form(key);
        }
        if let Some(input) = self.dash.export_prompt.as_mut() {
            return match key.code {
                KeyCode::Esc => {
                    self.dash.export_prompt = None;
                    self.info("Export cancelled.");
                    vec![]
                }
                KeyCode::Enter => {
                    let path = input.value.trim().to_string();
                    self.dash.export_prompt = None;
                    if path.is_empty() {
                        self.error("Give a file name for the export.");
                        return vec![];
                    }
                    self.info(format!("Exporting to {path}…"));
                    vec![Cmd::Export {
                        query: self.dash.query.clone(),
                        path: PathBuf::from(path),
                    }]
                }
                _ => {
                    input.edit(&key);
                    vec![]
                }
            };
        }
        if let Some(c) = self.key_common(&key) {
            return c;
        }
        let tab_idx = self.dash.tab.index();
        match key.code {
            KeyCode::Tab | KeyCode::Right | KeyCode::Char('l') => {
                self.switch_tab(DashTab::ALL[(tab_idx + 1) % 4])
            }
            KeyCode::BackTab | KeyCode::Left | KeyCode::Char('h') => {
                self.switch_tab(DashTab::ALL[(tab_idx + 3) % 4])
            }
            KeyCode::Char(c @ '1'..='4') => {
                self.switch_tab(DashTab::ALL[c as usize - '1' as usize])
            }
            KeyCode::Char('f') | KeyCode::Char('/') => {
                self.dash.form.open = true;
                vec![]
            }
            KeyCode::Char('c') => {
                let modality = self.dash.form.modality.value.clone();
                self.dash.form = FilterForm {
                    modality: Input::new(&modality),
                    ..FilterForm::default()
                };
                self.dash.query = Query {
                    modality: self.dash.query.modality,
                    ..Query::default()
                };
                self.info("Filters cleared.");
                self.load_dashboard()
            }
            KeyCode::Char('r') => {
                self.info("Refreshing…");
                let mut c = self.load_dashboard();
                c.push(Cmd::Users);
                c
            }
            KeyCode::Char('e') => {
                let name = format!(
                    "emo-export-{}.csv",
                    self.now.with_timezone(&self.tz).format("%Y%m%d-%H%M%S")
                );
                self.dash.export_prompt = Some(Input::new(&name));
                vec![]
            }
            KeyCode::Char('m') if self.dash.tab == DashTab::Heatmap => {
                self.dash.heat_kind = match self.dash.heat_kind {
                    HeatmapKind::AgentEmotion => HeatmapKind::WeekdayHour,
                    HeatmapKind::WeekdayHour => HeatmapKind::AgentEmotion,
                };
                self.dash.heatmap = None;
                vec![Cmd::Heatmap {
                    query: self.dash.query.clone(),
                    kind: self.dash.heat_kind,
                    tz_offset_minutes: self.tz.local_minus_utc() / 60,
                    gen: self.dash.gen,
                }]
            }
            KeyCode::Char('a') => {
                self.screen = Screen::Agent;
                if self.agent.loaded {
                    vec![]
                } else {
                    vec![self.my_sessions_cmd()]
                }
            }
            KeyCode::Down | KeyCode::Char('j') => {
                self.move_selection(1);
                vec![]
            }
            KeyCode::Up | KeyCode::Char('k') => {
                self.move_selection(-1);
                vec![]
            }
            KeyCode::PageDown | KeyCode::Char('n') if self.dash.tab == DashTab::Audit => {
                if self.dash.audit_offset + AUDIT_PAGE < self.dash.audit_total {
                    self.dash.audit_offset += AUDIT_PAGE;
                    self.dash.audit_selected = 0;
                    return vec![Cmd::Audit {
                        offset: self.dash.audit_offset,
                    }];
                }
                vec![]
            }
            KeyCode::PageUp | KeyCode::Char('p') if self.dash.tab == DashTab::Audit => {
                if self.dash.audit_offset > 0 {
                    self.dash.audit_offset = self.dash.audit_offset.saturating_sub(AUDIT_PAGE);
                    self.dash.audit_selected = 0;
                    return vec![Cmd::Audit {
                        offset: self.dash.audit_offset,
                    }];
                }
                vec![]
            }
            KeyCode::Enter if self.dash.tab == DashTab::Sessions => {
                match self.dash.sessions.get(self.dash.selected) {
                    Some(s) => {
                        let id = s.id;
                        self.open_detail(id, Screen::Dashboard)
                    }
                    None => vec![],
                }
            }
            _ => vec![],
        }
    }

    /// Without a lower bound the bucket was a guess (day); if the data spans less, ask again
    /// with the bucket that suits the data's own extent.
    fn refine_timeline(&mut self) -> Vec<Cmd> {
        let Some(tl) = &self.dash.timeline else {
            return vec![];
        };
        if self.dash.query.from.is_some() || tl.points.is_empty() {
            return vec![];
        }
        let first = tl.points.iter().map(|p| p.t).min();
        let last = tl.points.iter().map(|p| p.t).max();
        let (Some(first), Some(last)) = (first, last) else {
            return vec![];
        };
        let Some(end) = last.checked_add_signed(chrono::Duration::milliseconds(tl.bucket.millis()))
        else {
            return vec![];
        };
        let better = shaping::choose_bucket(Some(first), Some(end), self.now);
        if better.millis() < tl.bucket.millis() {
            return vec![Cmd::Timeline {
                query: self.dash.query.clone(),
                bucket: better,
                gen: self.dash.gen,
            }];
        }
        vec![]
    }

    fn switch_tab(&mut self, tab: DashTab) -> Vec<Cmd> {
        self.dash.tab = tab;
        if tab == DashTab::Audit && self.dash.audit.is_empty() {
            return vec![Cmd::Audit {
                offset: self.dash.audit_offset,
            }];
        }
        vec![]
    }

    fn move_selection(&mut self, delta: i64) {
        let (sel, n) = match self.dash.tab {
            DashTab::Sessions => (&mut self.dash.selected, self.dash.sessions.len()),
            DashTab::Audit => (&mut self.dash.audit_selected, self.dash.audit.len()),
            _ => return,
        };
        if n == 0 {
            *sel = 0;
            return;
        }
        *sel = (*sel as i64 + delta).clamp(0, n as i64 - 1) as usize;
    }

    fn key_filter_form(&mut self, key: KeyEvent) -> Vec<Cmd> {
        let form = &mut self.dash.form;
        let n = FILTER_FIELDS.len();
        match key.code {
            KeyCode::Esc => {
                form.open = false;
                vec![]
            }
            KeyCode::Tab | KeyCode::Down => {
                form.focus = (form.focus + 1) % n;
                vec![]
            }
            KeyCode::BackTab | KeyCode::Up => {
                form.focus = (form.focus + n - 1) % n;
                vec![]
            }
            KeyCode::Left | KeyCode::Right => {
                let fwd = key.code == KeyCode::Right;
                match form.focus {
                    0 => {
                        let names: Vec<String> = self
                            .dash
                            .users
                            .iter()
                            .filter(|u| u.role == Role::Agent)
                            .map(|u| u.username.clone())
                            .collect();
                        let cur =
                            Some(form.agent.value.trim().to_string()).filter(|s| !s.is_empty());
                        form.agent.value =
                            shaping::cycle(&names, cur.as_ref(), fwd).unwrap_or_default();
                    }
                    3 => {
                        let cur = form.emotion.value.parse::<Emotion>().ok();
                        form.emotion.value = shaping::cycle(&Emotion::ALL, cur.as_ref(), fwd)
                            .map(|e| e.as_str().to_string())
                            .unwrap_or_default();
                    }
                    4 => {
                        let cur = form.modality.value.parse::<Modality>().ok();
                        form.modality.value = shaping::cycle(&Modality::ALL, cur.as_ref(), fwd)
                            .map(|m| m.as_str().to_string())
                            .unwrap_or_default();
                    }
                    _ => {}
                }
                vec![]
            }
            KeyCode::Enter => match self.parse_filters() {
                Ok(q) => {
                    self.dash.form.open = false;
                    self.dash.query = q;
                    self.dash.selected = 0;
                    self.info("Filters applied.");
                    self.load_dashboard()
                }
                Err(e) => {
                    self.error(e);
                    vec![]
                }
            },
            _ => {
                let f = form.focus;
                form.field_mut(f).edit(&key);
                vec![]
            }
        }
    }

    /// Validates the filter form into a [`Query`].
    pub fn parse_filters(&self) -> Result<Query, String> {
        let f = &self.dash.form;
        let agent = Some(f.agent.value.trim().to_string()).filter(|s| !s.is_empty());
        let from = shaping::parse_time_input(&f.from.value, self.now, false, self.tz)
            .map_err(|e| format!("From: {e}"))?;
        let to = shaping::parse_time_input(&f.to.value, self.now, true, self.tz)
            .map_err(|e| format!("To: {e}"))?;
        if let (Some(a), Some(b)) = (from, to) {
            if a >= b {
                return Err("From must be before To.".into());
            }
        }
        let emotion = match f.emotion.value.trim() {
            "" | "any" | "*" => None,
            s => Some(s.parse::<Emotion>().map_err(|e| format!("Emotion: {e}"))?),
        };
        let modality = match f.modality.value.trim() {
            "" => None,
            s => Some(
                s.parse::<Modality>()
                    .map_err(|e| format!("Modality: {e}"))?,
            ),
        };
        Ok(Query {
            agent,
            from,
            to,
            emotion,
            modality,
        })
    }

    // ------------------------------------------------------------------------------- answers

    pub fn on_msg(&mut self, msg: Msg) -> Vec<Cmd> {
        let counted = !matches!(
            msg,
            Msg::Live(_) | Msg::LiveError(_) | Msg::LiveEnded | Msg::TokenNotSaved(_)
        );
        if counted {
            self.pending = self.pending.saturating_sub(1);
        }
        let cmds = self.apply(msg);
        self.out(cmds)
    }

    /// The common reaction to a failed request: an expired token sends the user back to login.
    fn fail(&mut self, e: ClientError) -> Vec<Cmd> {
        self.error(e.user_message());
        if e.is_unauthenticated() && self.screen != Screen::Login && self.screen != Screen::Register
        {
            self.go_to_login();
            let mut c = vec![Cmd::StopLive, Cmd::SetToken(None)];
            c.extend(self.forget_token());
            return c;
        }
        if self.screen == Screen::Connecting {
            self.screen = Screen::Login;
        }
        vec![]
    }

    /// An answer to a request that has been superseded: only a revoked login matters.
    fn stale(&mut self, err: Option<ClientError>) -> Vec<Cmd> {
        match err {
            Some(e) if e.is_unauthenticated() => self.fail(e),
            _ => vec![],
        }
    }

    fn go_to_login(&mut self) {
        self.screen = Screen::Login;
        self.user = None;
        self.login.password = Input::default();
        self.login.focus = if self.login.username.value.is_empty() {
            0
        } else {
            1
        };
        self.agent = AgentState::default();
        self.dash.loaded = false;
    }

    /// The first commands when there is no usable saved token: check the server.
    pub fn start_at_login(&mut self) -> Vec<Cmd> {
        self.screen = Screen::Login;
        self.out(vec![Cmd::Health])
    }

    fn apply(&mut self, msg: Msg) -> Vec<Cmd> {
        match msg {
            Msg::Health(r) => {
                self.server_info = Some(match r {
                    Ok(h) => {
                        let db = h
                            .database
                            .map(|d| format!(", database {d}"))
                            .unwrap_or_default();
                        Ok(format!("emod {} ({}{db})", h.version, h.status))
                    }
                    Err(e) => {
                        let m = e.user_message();
                        if matches!(e, ClientError::Unreachable { .. }) {
                            self.error(m.clone());
                        }
                        Err(m)
                    }
                });
                vec![]
            }
            Msg::Login(Ok((username, resp))) => {
                self.login_in_flight = false;
                self.login.password = Input::default();
                self.token = Some(resp.token.clone());
                self.token_not_saved = None;
                vec![
                    Cmd::SetToken(Some(resp.token.clone())),
                    Cmd::SaveToken(SavedToken {
                        server: self.server.clone(),
                        username,
                        token: resp.token,
                        expires_at: resp.expires_at,
                    }),
                    Cmd::Me,
                ]
            }
            Msg::Login(Err(e)) => {
                self.login_in_flight = false;
                self.login.password = Input::default();
                self.login.focus = 1;
                self.fail(e)
            }
            Msg::Register(Ok((user, password))) => {
                self.ok(format!("Account {} created. Logging in…", user.username));
                self.login.username = Input::new(&user.username);
                self.register = RegisterForm::default();
                self.screen = Screen::Login;
                self.login_in_flight = true;
                vec![Cmd::Login {
                    username: user.username,
                    password,
                }]
            }
            Msg::Register(Err(e)) => self.fail(e),
            Msg::Me(Ok(user)) => {
                let hello = format!("Logged in as {} ({}).", user.username, user.role);
                match self.token_not_saved.take() {
                    Some(why) => self.error(format!("{hello} {why}")),
                    None => self.ok(hello),
                }
                self.login.username = Input::new(&user.username);
                let admin = user.role == Role::Admin;
                self.user = Some(user);
                if admin {
                    self.enter_dashboard()
                } else {
                    self.screen = Screen::Agent;
                    vec![self.my_sessions_cmd()]
                }
            }
            Msg::Me(Err(e)) => self.fail(e),
            Msg::LoggedOut => {
                self.token = None;
                self.go_to_login();
                self.ok("Logged out.");
                vec![Cmd::SetToken(None)]
            }
            Msg::MySessions(Ok(page)) => {
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
                        self.agent.live = LiveState {
                            session: Some(r.id),
                            ..LiveState::default()
                        };
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
            Msg::MySessions(Err(e)) => self.fail(e),
            Msg::Started(Ok(s)) => {
                self.ok("Recording: expression estimates are being stored. Press x to stop.");
                self.agent.live = LiveState {
                    session: Some(s.id),
                    ..LiveState::default()
                };
                let id = s.id;
                self.agent.running = Some(s.clone());
                self.agent.history.insert(0, s);
                self.agent.total += 1;
                self.agent.selected = 0;
                vec![Cmd::Live(id)]
            }
            Msg::Started(Err(e)) => {
                // Already running (e.g. started from another terminal): show that session.
                let refresh = e.code() == Some("session_already_running");
                let mut c = self.fail(e);
                if refresh {
                    c.push(self.my_sessions_cmd());
                }
                c
            }
            Msg::Stopped(Ok(s)) => {
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
            Msg::Stopped(Err(e)) => {
                // Stopped elsewhere in the meantime: catch up instead of insisting.
                let refresh = matches!(e.code(), Some("session_not_running" | "not_found"));
                let mut c = self.fail(e);
                if refresh {
                    self.agent.running = None;
                    self.agent.live = LiveState::default();
                    c.push(Cmd::StopLive);
                    c.push(self.my_sessions_cmd());
                }
                c
            }
            Msg::SessionDetail(Ok((s, _))) if self.detail.id != Some(s.id) => vec![],
            Msg::SessionDetail(Ok((s, samples))) => {
                self.detail.modality = shaping::preferred_modality(&samples);
                self.detail.session = Some(s);
                self.detail.samples = samples;
                self.detail.loading = false;
                vec![]
            }
            Msg::SessionDetail(Err(e)) => {
                self.detail.loading = false;
                self.fail(e)
            }
            // Answers to an older filter: drop them (but a revoked login is still a revoked login).
            Msg::Dashboard(gen, r) if gen != self.dash.gen => self.stale(r.err()),
            Msg::Timeline(gen, r) if gen != self.dash.gen => self.stale(r.err()),
            Msg::Heatmap(gen, r) if gen != self.dash.gen => self.stale(r.err()),
            Msg::Dashboard(_, Ok(d)) => {
                let d = *d;
                self.dash.distribution = Some(d.distribution);
                self.dash.timeline = Some(d.timeline);
                self.dash.sessions_total = d.sessions.total;
                self.dash.sessions = d.sessions.items;
                self.dash.selected = self
                    .dash
                    .selected
                    .min(self.dash.sessions.len().saturating_sub(1));
                self.refine_timeline()
            }
            Msg::Dashboard(_, Err(e)) => self.fail(e),
            Msg::Timeline(_, Ok(t)) => {
                self.dash.bucket = t.bucket;
                self.dash.timeline = Some(t);
                self.refine_timeline()
            }
            Msg::Timeline(_, Err(e)) => self.fail(e),
            Msg::Heatmap(_, Ok(h)) => {
                if h.kind == self.dash.heat_kind {
                    self.dash.heatmap = Some(h);
                }
                vec![]
            }
            Msg::Heatmap(_, Err(e)) => self.fail(e),
            Msg::Users(Ok(u)) => {
                self.dash.users = u;
                vec![]
            }
            // The user list only feeds the agent picker: not fatal.
            Msg::Users(Err(e)) if !e.is_unauthenticated() => vec![],
            Msg::Users(Err(e)) => self.fail(e),
            // A slow answer for a page the user has already left.
            Msg::Audit(Ok(p)) if p.offset != self.dash.audit_offset => vec![],
            Msg::Audit(Ok(p)) => {
                self.dash.audit_total = p.total;
                self.dash.audit = p.items;
                self.dash.audit_selected = self
                    .dash
                    .audit_selected
                    .min(self.dash.audit.len().saturating_sub(1));
                vec![]
            }
            Msg::Audit(Err(e)) => self.fail(e),
            Msg::Exported(Ok((path, rows))) => {
                self.ok(format!("Exported {rows} rows to {}.", path.display()));
                vec![]
            }
            Msg::Exported(Err(e)) => self.fail(e),
            Msg::Live(ev) => {
                match ev {
                    LiveEvent::Sample(s) => {
                        if self.agent.live.session == Some(s.session_id) {
                            self.agent.live.connected = true;
                            self.agent.live.events += 1;
                            self.agent.live.readings.insert(
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
                        self.agent.live.connected = true;
                        match state {
                            emo_api_types::SourceState::Lost => {
                                self.error(format!("{source} lost: {message}"))
                            }
                            emo_api_types::SourceState::Ended => {
                                self.info(format!("{source} ended: {message}"))
                            }
                            _ => {}
                        }
                        self.agent.live.sources.insert(source, (state, message));
                    }
                    LiveEvent::Stats(st) => {
                        self.agent.live.connected = true;
                        self.agent.live.stats = Some(st);
                    }
                    LiveEvent::Stopped { session_id } => {
                        if self.agent.live.session == Some(session_id) {
                            self.agent.live.connected = false;
                            self.agent.running = None;
                            self.info("The session was stopped.");
                            return vec![Cmd::StopLive, self.my_sessions_cmd()];
                        }
                    }
                }
                vec![]
            }
            Msg::Devices(r) => {
                // Older daemons have no /devices: the prompt then lists the requested sources.
                self.agent.devices = r.ok();
                vec![]
            }
            Msg::LiveError(e) => {
                self.agent.live.connected = false;
                if e.code() == Some("not_found") {
                    // An older daemon without the live endpoint: keep the panel quiet.
                    self.info("Live view not available on this server.");
                } else {
                    self.error(format!("Live view: {}", e.user_message()));
                }
                vec![]
            }
            Msg::LiveEnded => {
                self.agent.live.connected = false;
                vec![]
            }
            Msg::TokenNotSaved(why) => {
                self.error(why.clone());
                self.token_not_saved = Some(why);
                vec![]
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(c: KeyCode) -> KeyEvent {
        KeyEvent::new(c, KeyModifiers::NONE)
    }
    fn typed(app: &mut App, s: &str) {
        for ch in s.chars() {
            app.on_key(key(KeyCode::Char(ch)));
        }
    }
    fn app() -> App {
        App::new(
            "http://127.0.0.1:7878",
            false,
            "2026-03-10T12:00:00Z".parse().unwrap(),
            FixedOffset::east_opt(0).unwrap(),
        )
    }
    fn user(name: &str, role: Role) -> User {
        User {
            id: Uuid::nil(),
            username: name.into(),
            display_name: None,
            role,
            disabled: false,
            created_at: "2026-01-01T00:00:00Z".parse().unwrap(),
        }
    }

    #[test]
    fn login_flow_sends_credentials_then_saves_token_and_loads_home() {
        let mut a = app();
        typed(&mut a, "ann");
        a.on_key(key(KeyCode::Enter));
        typed(&mut a, "pw?q");
        assert_eq!(
            a.login.password.value, "pw?q",
            "q and ? are text while typing"
        );
        let cmds = a.on_key(key(KeyCode::Enter));
        assert_eq!(
            cmds,
            vec![Cmd::Login {
                username: "ann".into(),
                password: "pw?q".into()
            }]
        );
        assert_eq!(a.pending, 1);
        a.on_key(key(KeyCode::Char('x')));
        a.on_key(key(KeyCode::Backspace));
        assert!(
            a.on_key(key(KeyCode::Enter)).is_empty(),
            "no second login while one is in flight"
        );
        let cmds = a.on_msg(Msg::Login(Ok((
            "ann".into(),
            LoginResponse {
                token: "tok".into(),
                expires_at: "2026-03-11T00:00:00Z".parse().unwrap(),
            },
        ))));
        assert!(matches!(cmds[0], Cmd::SetToken(Some(ref t)) if t == "tok"));
        assert!(matches!(cmds[1], Cmd::SaveToken(_)));
        assert_eq!(cmds[2], Cmd::Me);
        let cmds = a.on_msg(Msg::Me(Ok(user("ann", Role::Agent))));
        assert_eq!(a.screen, Screen::Agent);
        assert_eq!(
            cmds,
            vec![Cmd::MySessions {
                agent: "ann".into()
            }]
        );
    }

    #[test]
    fn wrong_password_and_expired_token_are_explained() {
        let mut a = app();
        a.on_msg(Msg::Login(Err(ClientError::Api {
            status: 401,
            code: "invalid_credentials".into(),
            message: "x".into(),
        })));
        assert_eq!(
            a.status.as_ref().unwrap().text,
            "Wrong username or password."
        );
        assert_eq!(a.status.as_ref().unwrap().kind, StatusKind::Error);
        let mut a = app();
        a.resume("old".into());
        assert_eq!(a.screen, Screen::Connecting);
        let cmds = a.on_msg(Msg::Me(Err(ClientError::Api {
            status: 401,
            code: "unauthenticated".into(),
            message: "expired".into(),
        })));
        assert_eq!(a.screen, Screen::Login);
        assert!(cmds.contains(&Cmd::ClearToken("old".into())));
        assert!(a.status.as_ref().unwrap().text.contains("expired"));
    }

    #[test]
    fn consent_is_required_before_starting() {
        let mut a = app();
        a.on_msg(Msg::Me(Ok(user("ann", Role::Agent))));
        // Opening the prompt asks the daemon what it would capture from.
        assert_eq!(a.on_key(key(KeyCode::Char('s'))), vec![Cmd::Devices]);
        assert!(a.agent.consent_open);
        assert!(a.on_key(key(KeyCode::Char('n'))).is_empty());
        assert!(!a.agent.consent_open);
        a.on_key(key(KeyCode::Char('s')));
        assert_eq!(
            a.on_key(key(KeyCode::Char('y'))),
            vec![Cmd::StartSession {
                sources: Vec::new(),
                label: None
            }]
        );
    }

    #[test]
    fn filter_form_validates_and_applies() {
        let mut a = app();
        a.on_msg(Msg::Me(Ok(user("root", Role::Admin))));
        assert_eq!(a.screen, Screen::Dashboard);
        a.on_key(key(KeyCode::Char('f')));
        assert!(a.typing());
        typed(&mut a, "ann");
        a.on_key(key(KeyCode::Tab));
        typed(&mut a, "yesterday-ish");
        assert!(a.on_key(key(KeyCode::Enter)).is_empty());
        assert!(a.status.as_ref().unwrap().text.starts_with("From:"));
        a.on_key(KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL));
        typed(&mut a, "-7d");
        a.on_key(key(KeyCode::Tab));
        a.on_key(key(KeyCode::Tab));
        a.on_key(key(KeyCode::Right));
        assert_eq!(a.dash.form.emotion.value, "angry");
        let cmds = a.on_key(key(KeyCode::Enter));
        assert!(!a.dash.form.open);
        assert_eq!(a.dash.query.agent.as_deref(), Some("ann"));
        assert_eq!(a.dash.query.emotion, Some(Emotion::Angry));
        assert_eq!(a.dash.bucket, Bucket::Hour);
        assert!(matches!(cmds[0], Cmd::Dashboard { .. }));
        assert!(matches!(cmds[1], Cmd::Heatmap { .. }));
    }

    #[test]
    fn unbounded_range_refines_the_timeline_bucket() {
        let mut a = app();
        a.on_msg(Msg::Me(Ok(user("root", Role::Admin))));
        let t0: DateTime<Utc> = "2026-03-10T09:00:00Z".parse().unwrap();
        let page = Page {
            items: vec![],
            total: 0,
            offset: 0,
            limit: 200,
            next_offset: None,
        };
        let gen = a.dash.gen;
        let cmds = a.on_msg(Msg::Dashboard(
            gen,
            Ok(Box::new(DashData {
                distribution: Distribution::default(),
                timeline: Timeline {
                    bucket: Bucket::Day,
                    points: vec![emo_api_types::TimelinePoint {
                        t: t0,
                        total: 1,
                        counts: BTreeMap::new(),
                    }],
                },
                sessions: page,
            })),
        ));
        let refined = |cmds: &[Cmd]| match cmds {
            [Cmd::Timeline { bucket, .. }] => Some(*bucket),
            _ => None,
        };
        assert_eq!(refined(&cmds), Some(Bucket::Hour));
        // Points within a few hours: refined again to minutes, then it stops.
        let pts = |b| Timeline {
            bucket: b,
            points: vec![emo_api_types::TimelinePoint {
                t: t0,
                total: 1,
                counts: BTreeMap::new(),
            }],
        };
        let cmds = a.on_msg(Msg::Timeline(gen, Ok(pts(Bucket::Hour))));
        assert_eq!(refined(&cmds), Some(Bucket::Minute));
        assert!(a
            .on_msg(Msg::Timeline(gen, Ok(pts(Bucket::Minute))))
            .is_empty());
    }

    #[test]
    fn clicking_a_tab_switches_to_it() {
        assert_eq!(tab_at(0), Some(DashTab::Overview));
        // " 1 Overview " is 12 wide, then the divider, then " 2 Heatmap ".
        assert_eq!(tab_at(11), Some(DashTab::Overview));
        assert_eq!(tab_at(12), None);
        assert_eq!(tab_at(13), Some(DashTab::Heatmap));
        assert_eq!(tab_at(200), None);
        let mut a = app();
        a.on_msg(Msg::Me(Ok(user("root", Role::Admin))));
        let click = |col| MouseEvent {
            kind: MouseEventKind::Down(MouseButton::Left),
            column: col,
            row: 2,
            modifiers: KeyModifiers::NONE,
        };
        a.on_mouse(click(15));
        assert_eq!(a.dash.tab, DashTab::Heatmap);
        let cmds = a.on_mouse(click(40));
        assert_eq!(a.dash.tab, DashTab::Audit);
        assert_eq!(cmds, vec![Cmd::Audit { offset: 0 }]);
    }

    #[test]
    fn quit_keys() {
        let mut a = app();
        a.on_key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL));
        assert!(a.should_quit);
        let mut a = app();
        a.on_key(KeyEvent::new(KeyCode::Char('q'), KeyModifiers::CONTROL));
        assert!(a.should_quit);
    }

    #[test]
    fn ctrl_and_alt_chords_are_not_shortcuts() {
        let mut a = app();
        a.on_msg(Msg::Me(Ok(user("ann", Role::Agent))));
        for m in [KeyModifiers::CONTROL, KeyModifiers::ALT] {
            assert!(a.on_key(KeyEvent::new(KeyCode::Char('s'), m)).is_empty());
            assert!(
                !a.agent.consent_open,
                "{m:?}-s must not open the consent prompt"
            );
            a.on_key(KeyEvent::new(KeyCode::Char('q'), KeyModifiers::ALT));
            assert!(!a.should_quit);
        }
        // In a field, Ctrl-U still clears.
        let mut a = app();
        typed(&mut a, "ann");
        a.on_key(KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL));
        assert_eq!(a.login.username.value, "");
    }

    fn dash_data(total: u64) -> Box<DashData> {
        Box::new(DashData {
            distribution: Distribution {
                total,
                ..Distribution::default()
            },
            timeline: Timeline {
                bucket: Bucket::Hour,
                points: vec![],
            },
            sessions: Page {
                items: vec![],
                total,
                offset: 0,
                limit: 200,
                next_offset: None,
            },
        })
    }

    fn heatmap(max: u64) -> Heatmap {
        Heatmap {
            kind: HeatmapKind::AgentEmotion,
            rows: vec![],
            columns: vec![],
            cells: vec![],
            max,
        }
    }

    fn apply_filter(a: &mut App, agent: &str) -> u64 {
        a.on_key(key(KeyCode::Char('f')));
        a.on_key(KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL));
        typed(a, agent);
        let cmds = a.on_key(key(KeyCode::Enter));
        assert!(!a.dash.form.open, "{:?}", a.status);
        match &cmds[..] {
            [Cmd::Dashboard { gen, query, .. }, Cmd::Heatmap { gen: g2, .. }] => {
                assert_eq!(query.agent.as_deref(), Some(agent));
                assert_eq!(gen, g2);
                *gen
            }
            c => panic!("{c:?}"),
        }
    }

    #[test]
    fn only_the_answer_to_the_latest_filter_is_applied() {
        let mut a = app();
        a.on_msg(Msg::Me(Ok(user("root", Role::Admin))));
        let first = a.dash.gen;
        let ann = apply_filter(&mut a, "ann");
        let bob = apply_filter(&mut a, "bob");
        assert!(first < ann && ann < bob && a.dash.gen == bob);
        let pending = a.pending;
        // bob's answers come first, then ann's (slow) ones: ann's must not win.
        assert!(a.on_msg(Msg::Dashboard(bob, Ok(dash_data(2)))).is_empty());
        a.on_msg(Msg::Heatmap(bob, Ok(heatmap(2))));
        assert!(a.on_msg(Msg::Dashboard(ann, Ok(dash_data(1)))).is_empty());
        a.on_msg(Msg::Heatmap(ann, Ok(heatmap(1))));
        a.on_msg(Msg::Timeline(
            ann,
            Ok(Timeline {
                bucket: Bucket::Minute,
                points: vec![],
            }),
        ));
        a.on_msg(Msg::Dashboard(first, Ok(dash_data(9))));
        assert_eq!(a.dash.distribution.as_ref().unwrap().total, 2);
        assert_eq!(a.dash.sessions_total, 2);
        assert_eq!(a.dash.heatmap.as_ref().unwrap().max, 2);
        assert_eq!(a.dash.timeline.as_ref().unwrap().bucket, Bucket::Hour);
        // Every answer, stale or not, ends its request: the spinner stops at zero.
        assert_eq!(a.pending, pending - 6);
        // A stale error is not shown...
        let before = a.status.clone();
        a.on_msg(Msg::Dashboard(
            ann,
            Err(ClientError::Unreachable {
                server: "s".into(),
                detail: "d".into(),
            }),
        ));
        assert_eq!(a.status, before);
        // ...but a revoked login is still a revoked login.
        a.on_msg(Msg::Heatmap(
            ann,
            Err(ClientError::Api {
                status: 401,
                code: "unauthenticated".into(),
                message: String::new(),
            }),
        ));
        assert_eq!(a.screen, Screen::Login);
    }

    #[test]
    fn refresh_and_clear_also_start_a_new_generation() {
        let mut a = app();
        a.on_msg(Msg::Me(Ok(user("root", Role::Admin))));
        let g = a.dash.gen;
        let cmds = a.on_key(key(KeyCode::Char('r')));
        assert!(matches!(cmds[0], Cmd::Dashboard { gen, .. } if gen == g + 1));
        let cmds = a.on_key(key(KeyCode::Char('c')));
        assert!(matches!(cmds[0], Cmd::Dashboard { gen, .. } if gen == g + 2));
        // The heatmap switch keeps the generation (the other answers are still wanted).
        a.on_key(key(KeyCode::Char('2')));
        let cmds = a.on_key(key(KeyCode::Char('m')));
        assert!(matches!(cmds[..], [Cmd::Heatmap { gen, .. }] if gen == g + 2));
    }

    #[test]
    fn a_slow_audit_page_or_session_does_not_replace_the_current_one() {
        let mut a = app();
        a.on_msg(Msg::Me(Ok(user("root", Role::Admin))));
        a.on_key(key(KeyCode::Char('4')));
        a.dash.audit_total = 300;
        a.on_key(key(KeyCode::PageDown));
        assert_eq!(a.dash.audit_offset, AUDIT_PAGE);
        let entry = |action: &str| AuditEntry {
            id: Uuid::nil(),
            at: "2026-03-10T11:00:00Z".parse().unwrap(),
            actor: "root".into(),
            action: action.into(),
            target_user: None,
            detail: String::new(),
        };
        let page = |offset, action| Page {
            items: vec![entry(action)],
            total: 300,
            offset,
            limit: AUDIT_PAGE,
            next_offset: None,
        };
        a.on_msg(Msg::Audit(Ok(page(AUDIT_PAGE, "second"))));
        a.on_msg(Msg::Audit(Ok(page(0, "first"))));
        assert_eq!(a.dash.audit[0].action, "second");

        let s = |n: u128| Session {
            id: Uuid::from_u128(n),
            user_id: Uuid::nil(),
            username: "ann".into(),
            status: SessionStatus::Stopped,
            started_at: "2026-03-10T11:00:00Z".parse().unwrap(),
            ended_at: None,
            consent_at: "2026-03-10T11:00:00Z".parse().unwrap(),
            sources: vec![],
            label: None,
            summary: None,
        };
        a.dash.sessions = vec![s(1), s(2)];
        a.on_key(key(KeyCode::Char('3')));
        a.on_key(key(KeyCode::Enter));
        a.on_key(key(KeyCode::Esc));
        a.on_key(key(KeyCode::Down));
        a.on_key(key(KeyCode::Enter));
        assert_eq!(a.detail.id, Some(Uuid::from_u128(2)));
        a.on_msg(Msg::SessionDetail(Ok((s(1), vec![]))));
        assert!(a.detail.session.is_none() && a.detail.loading);
        a.on_msg(Msg::SessionDetail(Ok((s(2), vec![]))));
        assert_eq!(a.detail.session.as_ref().map(|s| s.id), Some(s(2).id));
    }

    #[test]
    fn a_failed_token_save_is_shown_without_touching_the_in_flight_count() {
        let mut a = app();
        typed(&mut a, "ann");
        a.on_key(key(KeyCode::Enter));
        typed(&mut a, "pw");
        a.on_key(key(KeyCode::Enter));
        let cmds = a.on_msg(Msg::Login(Ok((
            "ann".into(),
            LoginResponse {
                token: "tok".into(),
                expires_at: "2026-03-11T00:00:00Z".parse().unwrap(),
            },
        ))));
        assert!(cmds.iter().any(|c| matches!(c, Cmd::SaveToken(_))));
        assert!(!Cmd::SaveToken(SavedToken {
            server: String::new(),
            username: String::new(),
            token: String::new(),
            expires_at: a.now,
        })
        .awaits_answer());
        assert_eq!(a.pending, 1, "only Me is in flight");
        a.on_msg(Msg::TokenNotSaved("The login could not be saved.".into()));
        assert_eq!(
            a.pending, 1,
            "the save was never counted, so it must not uncount"
        );
        let st = a.status.clone().unwrap();
        assert_eq!(st.kind, StatusKind::Error);
        assert!(st.text.contains("could not be saved"));
        let cmds = a.on_msg(Msg::Me(Ok(user("ann", Role::Agent))));
        assert_eq!(a.pending, cmds.iter().filter(|c| c.awaits_answer()).count());
        let st = a.status.clone().unwrap();
        assert!(st.text.contains("Logged in as ann") && st.text.contains("could not be saved"));
        assert_eq!(st.kind, StatusKind::Error);
    }

    #[test]
    fn a_rejected_token_only_clears_the_saved_login_holding_that_token() {
        let unauth = || ClientError::Api {
            status: 401,
            code: "unauthenticated".into(),
            message: String::new(),
        };
        // EMO_TOKEN / --token: the ClearToken names that token, so a saved login with another
        // token is kept (the net worker compares; see net::tests).
        let mut a = app();
        a.resume("from-env".into());
        let cmds = a.on_msg(Msg::Me(Err(unauth())));
        assert!(cmds.contains(&Cmd::ClearToken("from-env".into())));
        assert!(cmds.contains(&Cmd::SetToken(None)));
        assert_eq!(
            cmds.iter()
                .filter(|c| matches!(c, Cmd::ClearToken(_)))
                .count(),
            1
        );
        // Later failures have no token left to clear.
        a.resume("x".into());
        a.on_msg(Msg::Me(Err(unauth())));
        let cmds = a.on_msg(Msg::MySessions(Err(unauth())));
        assert!(!cmds.iter().any(|c| matches!(c, Cmd::ClearToken(_))));
        // A login of this session expiring: its own token, which it saved.
        let mut a = app();
        a.on_msg(Msg::Login(Ok((
            "ann".into(),
            LoginResponse {
                token: "fresh".into(),
                expires_at: "2026-03-11T00:00:00Z".parse().unwrap(),
            },
        ))));
        a.on_msg(Msg::Me(Ok(user("ann", Role::Agent))));
        let cmds = a.on_msg(Msg::MySessions(Err(unauth())));
        assert!(cmds.contains(&Cmd::ClearToken("fresh".into())));
        // Logging out forgets the token in use, not blindly the file.
        let mut a = app();
        a.resume("env2".into());
        a.on_msg(Msg::Me(Ok(user("ann", Role::Agent))));
        let cmds = a.on_key(key(KeyCode::Char('L')));
        assert!(cmds.contains(&Cmd::ClearToken("env2".into())));
    }
}
