//! The protocol between the UI and the network worker: the UI sends [`Cmd`]s to
//! [`crate::net`], which answers each with a [`Msg`].

use std::path::PathBuf;

use emo_api_types::{
    AuditEntry, Bucket, Distribution, Heatmap, HeatmapKind, LiveEvent, LoginResponse, Page, Sample,
    Session, Timeline, User,
};
use uuid::Uuid;

use crate::api::{ClientError, Query};
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
