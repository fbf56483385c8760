//! Login and self-registration: their forms, keys ([`keys::LOGIN`], [`keys::REGISTER`]) and
//! the answers that log in (health, login, register, me, logout).

use emo_api_types::{LoginResponse, Role, User};
use ratatui::crossterm::event::KeyEvent;

use super::{App, Cmd, Input, Screen};
use crate::api::ClientError;
use crate::keys::{self, Action};
use crate::token::SavedToken;

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

impl App {
    pub(super) fn key_login(&mut self, key: KeyEvent) -> Vec<Cmd> {
        let f = &mut self.login;
        match keys::action(&keys::LOGIN, &key) {
            Some(Action::Quit) => self.should_quit = true,
            Some(Action::OpenRegister) => {
                self.screen = Screen::Register;
                self.register.username = self.login.username.clone();
                self.status = None;
            }
            Some(Action::NextField | Action::PrevField) => f.focus = 1 - f.focus.min(1),
            Some(Action::Submit) => return self.submit_login(),
            _ => {
                if f.focus == 0 {
                    f.username.edit(&key);
                } else {
                    f.password.edit(&key);
                }
            }
        }
        vec![]
    }

    fn submit_login(&mut self) -> Vec<Cmd> {
        let f = &mut self.login;
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

    pub(super) fn key_register(&mut self, key: KeyEvent) -> Vec<Cmd> {
        let f = &mut self.register;
        match keys::action(&keys::REGISTER, &key) {
            Some(Action::Back) => {
                self.screen = Screen::Login;
                self.status = None;
            }
            Some(Action::NextField) => f.focus = (f.focus + 1) % 3,
            Some(Action::PrevField) => f.focus = (f.focus + 2) % 3,
            Some(Action::Submit) => return self.submit_register(),
            _ => {
                match f.focus {
                    0 => f.username.edit(&key),
                    1 => f.password.edit(&key),
                    _ => f.confirm.edit(&key),
                };
            }
        }
        vec![]
    }

    fn submit_register(&mut self) -> Vec<Cmd> {
        let f = &mut self.register;
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

    pub(super) fn on_health(&mut self, r: Result<emo_api_types::Health, ClientError>) -> Vec<Cmd> {
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

    pub(super) fn on_login(&mut self, r: Result<(String, LoginResponse), ClientError>) -> Vec<Cmd> {
        self.login_in_flight = false;
        self.login.password = Input::default();
        let (username, resp) = match r {
            Ok(x) => x,
            Err(e) => {
                self.login.focus = 1;
                return self.fail(e);
            }
        };
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

    pub(super) fn on_register(&mut self, r: Result<(User, String), ClientError>) -> Vec<Cmd> {
        let (user, password) = match r {
            Ok(x) => x,
            Err(e) => return self.fail(e),
        };
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

    pub(super) fn on_me(&mut self, r: Result<User, ClientError>) -> Vec<Cmd> {
        let user = match r {
            Ok(u) => u,
            Err(e) => return self.fail(e),
        };
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

    pub(super) fn on_logged_out(&mut self) -> Vec<Cmd> {
        self.token = None;
        self.go_to_login();
        self.ok("Logged out.");
        vec![Cmd::SetToken(None)]
    }
}
