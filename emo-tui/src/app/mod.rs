//! Application state and the pure state machine: keys and network answers in, state changes and
//! network commands ([`Cmd`]) out. No I/O happens here, which keeps every screen testable.
//!
//! One file per screen holds its state, its key handler and its reaction to the answers it
//! asked for: [`login`] (login, register, connecting), [`agent`] (my sessions, consent, live),
//! [`dashboard`] (the admin dashboard and its popups), [`detail`] (one session). Which key does
//! what is data in [`crate::keys`]; where the mouse can click is what the last frame drew
//! ([`Hits`]).

mod agent;
mod dashboard;
mod detail;
mod login;
#[cfg(test)]
mod tests;

use chrono::{DateTime, FixedOffset, Utc};
use emo_api_types::{Role, User};
use ratatui::crossterm::event::{
    KeyCode, KeyEvent, KeyModifiers, MouseButton, MouseEvent, MouseEventKind,
};
use ratatui::layout::{Position, Rect};

pub use self::agent::{AgentState, CaptureState, LiveReading, LiveState, CONSENT_GUARD};
pub use self::dashboard::{DashState, DashTab, FilterForm, AUDIT_PAGE, FILTER_FIELDS};
pub use self::detail::DetailState;
pub use self::login::{LoginForm, RegisterForm};
use crate::api::ClientError;
pub use crate::cmd::{Cmd, DashData, Msg};
pub use crate::input::Input;
use crate::keys::{self, Action};

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

/// Where the last frame drew something clickable ([`crate::ui::draw`] returns it; the event
/// loop stores it here for [`App::on_mouse`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Hits {
    /// The dashboard's tabs.
    pub tabs: Vec<(Rect, DashTab)>,
}

impl Hits {
    pub fn tab_at(&self, column: u16, row: u16) -> Option<DashTab> {
        let p = Position::new(column, row);
        self.tabs
            .iter()
            .find(|(r, _)| r.contains(p))
            .map(|(_, t)| *t)
    }
}

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
    /// What the last frame drew where (for mouse clicks).
    pub hits: Hits,
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
            detail: DetailState::new(Screen::Agent),
            dash: DashState::new(),
            sources: Vec::new(),
            label: None,
            tick: 0,
            server_info: None,
            login_in_flight: false,
            hits: Hits::default(),
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

    fn set_status(&mut self, text: String, kind: StatusKind) {
        self.status = Some(Status { text, kind });
    }
    pub fn info(&mut self, s: impl Into<String>) {
        self.set_status(s.into(), StatusKind::Info);
    }
    pub fn ok(&mut self, s: impl Into<String>) {
        self.set_status(s.into(), StatusKind::Ok);
    }
    pub fn error(&mut self, s: impl Into<String>) {
        self.set_status(s.into(), StatusKind::Error);
    }

    /// Starts with a saved token: validate it with `GET /me`.
    pub fn resume(&mut self, token: String) -> Vec<Cmd> {
        self.screen = Screen::Connecting;
        self.info(format!("Connecting to {}…", self.server));
        self.token = Some(token.clone());
        self.out(vec![Cmd::SetToken(Some(token)), Cmd::Me])
    }

    /// The first commands when there is no usable saved token: check the server.
    pub fn start_at_login(&mut self) -> Vec<Cmd> {
        self.screen = Screen::Login;
        self.out(vec![Cmd::Health])
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
        let global = keys::action(&keys::GLOBAL, &key);
        if global == Some(Action::Quit) {
            self.should_quit = true;
            return vec![];
        }
        if self.show_help {
            self.key_help(&key);
            return vec![];
        }
        // `?` is text in a field; F1 is not.
        if global == Some(Action::ShowHelp) && (key.code == KeyCode::F(1) || !self.typing()) {
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
                if keys::action(&keys::CONNECTING, &key) == Some(Action::Quit) {
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

    /// The help overlay: its keys scroll, any other key closes it.
    fn key_help(&mut self, key: &KeyEvent) {
        let s = self.help_scroll;
        self.help_scroll = match keys::action(&keys::HELP, key) {
            Some(Action::Down) => s.saturating_add(1),
            Some(Action::Up) => s.saturating_sub(1),
            Some(Action::PageDown) => s.saturating_add(10),
            Some(Action::PageUp) => s.saturating_sub(10),
            _ => {
                self.show_help = false;
                0
            }
        };
    }

    pub fn on_mouse(&mut self, m: MouseEvent) -> Vec<Cmd> {
        let code = match m.kind {
            MouseEventKind::ScrollDown => KeyCode::Down,
            MouseEventKind::ScrollUp => KeyCode::Up,
            // A click on a dashboard tab, where the last frame drew it.
            MouseEventKind::Down(MouseButton::Left)
                if self.screen == Screen::Dashboard && !self.typing() && !self.show_help =>
            {
                return match self.hits.tab_at(m.column, m.row) {
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

    /// Shortcuts shared by the logged-in screens ([`keys::COMMON`]). Returns None if the key
    /// is not one of them.
    fn key_common(&mut self, key: &KeyEvent) -> Option<Vec<Cmd>> {
        match keys::action(&keys::COMMON, key)? {
            Action::Quit => {
                self.should_quit = true;
                Some(vec![])
            }
            Action::Logout => Some(self.logout()),
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

    /// Hands each answer to the screen that asked for it.
    fn apply(&mut self, msg: Msg) -> Vec<Cmd> {
        match msg {
            Msg::Health(r) => self.on_health(r),
            Msg::Login(r) => self.on_login(r),
            Msg::Register(r) => self.on_register(r),
            Msg::Me(r) => self.on_me(r),
            Msg::LoggedOut => self.on_logged_out(),
            Msg::TokenNotSaved(why) => {
                self.error(why.clone());
                self.token_not_saved = Some(why);
                vec![]
            }
            Msg::MySessions(r) => self.on_my_sessions(r),
            Msg::Started(r) => self.on_started(r),
            Msg::Stopped(r) => self.on_stopped(r),
            Msg::Devices(r) => {
                // Older daemons have no /devices: the prompt then lists the requested sources.
                self.agent.devices = r.ok();
                vec![]
            }
            Msg::Live(ev) => self.on_live(ev),
            Msg::LiveError(e) => self.on_live_error(e),
            Msg::LiveEnded => {
                self.agent.live.connected = false;
                vec![]
            }
            Msg::SessionDetail(r) => self.on_session_detail(r),
            // Answers to an older filter: drop them (but a revoked login is still a revoked login).
            Msg::Dashboard(gen, r) if gen != self.dash.gen => self.stale(r.err()),
            Msg::Timeline(gen, r) if gen != self.dash.gen => self.stale(r.err()),
            Msg::Heatmap(gen, r) if gen != self.dash.gen => self.stale(r.err()),
            Msg::Dashboard(_, r) => self.on_dashboard(r),
            Msg::Timeline(_, r) => self.on_timeline(r),
            Msg::Heatmap(_, r) => self.on_heatmap(r),
            Msg::Users(r) => self.on_users(r),
            Msg::Audit(r) => self.on_audit(r),
            Msg::Exported(Ok((path, rows))) => {
                self.ok(format!("Exported {rows} rows to {}.", path.display()));
                vec![]
            }
            Msg::Exported(Err(e)) => self.fail(e),
        }
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
}
