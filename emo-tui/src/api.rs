//! A thin async client for emod's REST API (`/api/v1`). Every call returns a [`ClientError`]
//! whose [`ClientError::user_message`] is what the status line shows.

use std::time::Duration;

use chrono::{DateTime, Utc};
use emo_api_types::{
    Accepted, ApiError, AuditEntry, Credentials, Distribution, Emotion, ErrorCode, Health, Heatmap,
    HeatmapKind, LoginResponse, Modality, Page, Sample, Session, StartSession, Timeline, User,
};
use emo_api_types::{Bucket, SampleBatch};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;
use uuid::Uuid;

/// What went wrong talking to the daemon.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientError {
    /// No TCP connection / TLS / timeout: the daemon is not reachable.
    Unreachable { server: String, detail: String },
    /// The daemon answered with an error body.
    Api {
        status: u16,
        code: ErrorCode,
        message: String,
    },
    /// The answer could not be understood (wrong server, version skew).
    Protocol(String),
    /// A local failure (e.g. writing an export file).
    Local(String),
}

impl ClientError {
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Api { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// True when the token is missing, expired or revoked: the UI goes back to the login screen.
    pub fn is_unauthenticated(&self) -> bool {
        self.code() == Some(ErrorCode::Unauthenticated)
    }

    /// A sentence for the status line.
    pub fn user_message(&self) -> String {
        match self {
            ClientError::Unreachable { server, detail } => format!(
                "Cannot reach the EMO server at {server} ({detail}). Is emod running? Set --server or EMO_SERVER."
            ),
            ClientError::Protocol(m) => format!("Unexpected answer from the server: {m}"),
            ClientError::Local(m) => m.clone(),
            ClientError::Api {
                status,
                code,
                message,
            } => {
                let fixed = match code {
                    ErrorCode::InvalidCredentials => Some("Wrong username or password."),
                    ErrorCode::Unauthenticated => {
                        Some("Your login has expired or was revoked. Please log in again.")
                    }
                    ErrorCode::TooManyAttempts => {
                        Some("Too many failed logins. Wait a moment, then try again.")
                    }
                    ErrorCode::RegistrationClosed => Some(
                        "Self-registration is switched off on this server. Ask an admin for an account.",
                    ),
                    ErrorCode::Conflict => Some("That username is already taken."),
                    ErrorCode::AccountDisabled => Some("This account is disabled. Ask an admin."),
                    ErrorCode::Forbidden => Some("You are not allowed to do that."),
                    ErrorCode::ConsentRequired => Some("A session needs your explicit consent."),
                    ErrorCode::SessionAlreadyRunning => {
                        Some("You already have a running session. Stop it with x first.")
                    }
                    ErrorCode::CaptureBusy => Some(
                        "The server's camera and microphone are recording another session. Try again when it stops.",
                    ),
                    ErrorCode::SessionNotRunning => Some("That session is not running."),
                    ErrorCode::StorageUnavailable => {
                        Some("The server's database is unavailable. Try again later.")
                    }
                    ErrorCode::ModelsUnavailable => {
                        Some("The server's inference models are not available.")
                    }
                    _ => None,
                };
                match (fixed, code) {
                    (Some(s), _) => s.to_string(),
                    (None, _) if message.is_empty() => format!("Server error {status} ({code})."),
                    // A code this build does not know: the server's own words.
                    (None, ErrorCode::Unknown) => message.clone(),
                    (None, _) => format!("{message} ({code})"),
                }
            }
        }
    }
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.user_message())
    }
}

impl std::error::Error for ClientError {}

pub type Result<T> = std::result::Result<T, ClientError>;

/// Query filters as the dashboard applies them (a client-side view of `emo_api_types::Filters`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Query {
    pub agent: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub emotion: Option<Emotion>,
    pub modality: Option<Modality>,
}

impl Query {
    /// Query-string pairs in the API's spelling.
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut v = Vec::new();
        if let Some(a) = &self.agent {
            v.push(("agent", a.clone()));
        }
        if let Some(f) = self.from {
            v.push(("from", f.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)));
        }
        if let Some(t) = self.to {
            v.push(("to", t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)));
        }
        if let Some(e) = self.emotion {
            v.push(("emotion", e.as_str().to_string()));
        }
        if let Some(m) = self.modality {
            v.push(("modality", m.as_str().to_string()));
        }
        v
    }
}

/// The REST client. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    base: String,
    http: reqwest::Client,
    stream_http: reqwest::Client,
    token: Option<String>,
}

impl Client {
    pub fn new(server: &str) -> Result<Self> {
        let base = normalize_server(server);
        let build = |timeout: Option<Duration>| {
            let mut b = reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(5))
                .user_agent(concat!("emo-tui/", env!("CARGO_PKG_VERSION")));
            if let Some(t) = timeout {
                b = b.timeout(t);
            }
            b.build()
                .map_err(|e| ClientError::Local(format!("HTTP client: {e}")))
        };
        Ok(Client {
            base,
            http: build(Some(Duration::from_secs(30)))?,
            stream_http: build(None)?,
            token: None,
        })
    }

    pub fn server(&self) -> &str {
        &self.base
    }

    pub fn set_token(&mut self, token: Option<String>) {
        self.token = token;
    }

    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    fn req(&self, method: Method, path: &str) -> RequestBuilder {
        let url = format!("{}{}", self.base, path);
        let mut r = self.http.request(method, url);
        if let Some(t) = &self.token {
            r = r.bearer_auth(t);
        }
        r
    }

    fn unreachable(&self, e: &reqwest::Error) -> ClientError {
        let detail = if e.is_timeout() {
            "timed out".to_string()
        } else if e.is_connect() {
            "connection refused or host unreachable".to_string()
        } else {
            e.to_string()
        };
        ClientError::Unreachable {
            server: self.base.clone(),
            detail,
        }
    }

    async fn send(&self, r: RequestBuilder) -> Result<reqwest::Response> {
        let resp = r.send().await.map_err(|e| self.unreachable(&e))?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        Err(error_from_body(status, &body))
    }

    async fn json<T: DeserializeOwned>(&self, r: RequestBuilder) -> Result<T> {
        let resp = self.send(r).await?;
        let bytes = resp.bytes().await.map_err(|e| self.unreachable(&e))?;
        from_json_clean(&bytes)
    }

    async fn post_json<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T> {
        self.json(self.req(Method::POST, path).json(body)).await
    }

    pub async fn health(&self) -> Result<Health> {
        self.json(self.req(Method::GET, "/healthz")).await
    }

    pub async fn login(&self, username: &str, password: &str) -> Result<LoginResponse> {
        let c = Credentials {
            username: username.to_string(),
            password: password.to_string(),
        };
        self.post_json("/api/v1/auth/login", &c).await
    }

    pub async fn register(&self, username: &str, password: &str) -> Result<User> {
        let c = Credentials {
            username: username.to_string(),
            password: password.to_string(),
        };
        self.post_json("/api/v1/auth/register", &c).await
    }

    pub async fn logout(&self) -> Result<()> {
        self.send(self.req(Method::POST, "/api/v1/auth/logout"))
            .await
            .map(|_| ())
    }

    pub async fn me(&self) -> Result<User> {
        self.json(self.req(Method::GET, "/api/v1/me")).await
    }

    pub async fn users(&self) -> Result<Vec<User>> {
        self.json(self.req(Method::GET, "/api/v1/users")).await
    }

    pub async fn start_session(
        &self,
        sources: Vec<String>,
        label: Option<String>,
    ) -> Result<Session> {
        let body = StartSession {
            consent: true,
            sources,
            label,
            ..StartSession::default()
        };
        self.post_json("/api/v1/sessions", &body).await
    }

    /// The daemon's cameras and microphones and what its `[capture]` resolves to.
    pub async fn devices(&self) -> Result<emo_api_types::Devices> {
        self.json(self.req(Method::GET, "/api/v1/devices")).await
    }

    pub async fn stop_session(&self, id: Uuid) -> Result<Session> {
        self.json(self.req(Method::POST, &format!("/api/v1/sessions/{id}/stop")))
            .await
    }

    pub async fn session(&self, id: Uuid) -> Result<Session> {
        self.json(self.req(Method::GET, &format!("/api/v1/sessions/{id}")))
            .await
    }

    pub async fn sessions(
        &self,
        q: &Query,
        status: Option<&str>,
        limit: u64,
        offset: u64,
    ) -> Result<Page<Session>> {
        let mut pairs = q.pairs();
        // The session list filters on the agent, the range and the emotion; modality is for stats.
        pairs.retain(|(k, _)| *k != "modality");
        if let Some(s) = status {
            pairs.push(("status", s.to_string()));
        }
        pairs.push(("limit", limit.to_string()));
        pairs.push(("offset", offset.to_string()));
        self.json(self.req(Method::GET, "/api/v1/sessions").query(&pairs))
            .await
    }

    /// All samples of a session (follows pagination up to `max`).
    pub async fn samples(&self, id: Uuid, max: usize) -> Result<Vec<Sample>> {
        let mut out = Vec::new();
        let mut offset = 0u64;
        loop {
            let page: Page<Sample> = self
                .json(
                    self.req(Method::GET, &format!("/api/v1/sessions/{id}/samples"))
                        .query(&[
                            ("limit", "1000".to_string()),
                            ("offset", offset.to_string()),
                        ]),
                )
                .await?;
            let n = page.items.len();
            out.extend(page.items);
            match page.next_offset {
                Some(next) if n > 0 && out.len() < max => offset = next,
                _ => break,
            }
        }
        out.truncate(max);
        Ok(out)
    }

    pub async fn post_samples(&self, id: Uuid, batch: &SampleBatch) -> Result<Accepted> {
        self.post_json(&format!("/api/v1/sessions/{id}/samples"), batch)
            .await
    }

    pub async fn distribution(&self, q: &Query) -> Result<Distribution> {
        self.json(
            self.req(Method::GET, "/api/v1/stats/distribution")
                .query(&q.pairs()),
        )
        .await
    }

    pub async fn timeline(&self, q: &Query, bucket: Bucket) -> Result<Timeline> {
        let mut pairs = q.pairs();
        let b = match bucket {
            Bucket::Minute => "minute",
            Bucket::Hour => "hour",
            Bucket::Day => "day",
        };
        pairs.push(("bucket", b.to_string()));
        self.json(
            self.req(Method::GET, "/api/v1/stats/timeline")
                .query(&pairs),
        )
        .await
    }

    pub async fn heatmap(
        &self,
        q: &Query,
        kind: HeatmapKind,
        tz_offset_minutes: i32,
    ) -> Result<Heatmap> {
        let mut pairs = q.pairs();
        let k = match kind {
            HeatmapKind::AgentEmotion => "agent_emotion",
            HeatmapKind::WeekdayHour => "weekday_hour",
        };
        pairs.push(("kind", k.to_string()));
        pairs.push(("tz_offset_minutes", tz_offset_minutes.to_string()));
        self.json(self.req(Method::GET, "/api/v1/stats/heatmap").query(&pairs))
            .await
    }

    /// The filtered data as CSV text.
    pub async fn export_csv(&self, q: &Query) -> Result<String> {
        let mut pairs = q.pairs();
        pairs.push(("format", "csv".to_string()));
        let resp = self
            .send(self.req(Method::GET, "/api/v1/export").query(&pairs))
            .await?;
        resp.text().await.map_err(|e| self.unreachable(&e))
    }

    pub async fn audit(&self, limit: u64, offset: u64) -> Result<Page<AuditEntry>> {
        self.json(
            self.req(Method::GET, "/api/v1/audit")
                .query(&[("limit", limit.to_string()), ("offset", offset.to_string())]),
        )
        .await
    }

    /// Opens the live stream of a session (server-sent events); read it with [`crate::net`].
    pub async fn live(&self, id: Uuid) -> Result<reqwest::Response> {
        let url = format!("{}/api/v1/sessions/{id}/live", self.base);
        let mut r = self
            .stream_http
            .get(url)
            .header(reqwest::header::ACCEPT, "text/event-stream");
        if let Some(t) = &self.token {
            r = r.bearer_auth(t);
        }
        self.send(r).await
    }
}

/// `host:port` → `http://host:port`; trailing slashes dropped.
pub fn normalize_server(server: &str) -> String {
    let s = server.trim().trim_end_matches('/');
    if s.contains("://") {
        s.to_string()
    } else {
        format!("http://{s}")
    }
}

/// Text with control characters removed. Everything the server sends passes through this
/// before it can reach the terminal: an agent's session label with `ESC ]2;…` or `ESC [5;5H`
/// must not retitle or repaint an admin's terminal.
pub fn clean(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).collect()
}

fn clean_value(v: &mut serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::String(s) if s.chars().any(char::is_control) => *s = clean(s),
        Value::Array(a) => a.iter_mut().for_each(clean_value),
        Value::Object(o) => {
            let dirty: Vec<String> = o
                .keys()
                .filter(|k| k.chars().any(char::is_control))
                .cloned()
                .collect();
            for k in dirty {
                if let Some(x) = o.remove(&k) {
                    o.insert(clean(&k), x);
                }
            }
            o.values_mut().for_each(clean_value);
        }
        _ => {}
    }
}

/// Deserialize a server answer with every string cleaned of control characters.
pub fn from_json_clean<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    let mut v: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| ClientError::Protocol(e.to_string()))?;
    clean_value(&mut v);
    serde_json::from_value(v).map_err(|e| ClientError::Protocol(e.to_string()))
}

/// Turns a non-2xx answer into a [`ClientError::Api`], tolerating bodies that are not `ApiError`.
pub fn error_from_body(status: StatusCode, body: &str) -> ClientError {
    let body = &clean(body);
    match from_json_clean::<ApiError>(body.as_bytes()) {
        Ok(e) => ClientError::Api {
            status: status.as_u16(),
            code: e.error,
            message: e.message,
        },
        Err(_) => ClientError::Api {
            status: status.as_u16(),
            code: match status.as_u16() {
                401 => ErrorCode::Unauthenticated,
                403 => ErrorCode::Forbidden,
                404 => ErrorCode::NotFound,
                _ => ErrorCode::Unknown,
            },
            message: body.chars().take(200).collect(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_text_loses_its_control_characters() {
        let body =
            br#"{"items":[{"label":"x\u001b]2;owned\u0007\u001b[5;5Hy","n":1}],"k\u001b":"v"}"#;
        let v: serde_json::Value = from_json_clean(body).unwrap();
        assert_eq!(v["items"][0]["label"], "x]2;owned[5;5Hy");
        assert_eq!(v["k"], "v");
        let e = error_from_body(
            StatusCode::BAD_REQUEST,
            r#"{"error":"x","message":"a\u001b[2Jb"}"#,
        );
        assert!(e.user_message().contains("a[2Jb"), "{}", e.user_message());
        assert!(!e.user_message().contains('\u{1b}'));
    }

    #[test]
    fn api_error_bodies_map_to_friendly_messages() {
        let e = error_from_body(
            StatusCode::UNAUTHORIZED,
            r#"{"error":"invalid_credentials","message":"bad"}"#,
        );
        assert_eq!(e.user_message(), "Wrong username or password.");
        let e = error_from_body(
            StatusCode::UNAUTHORIZED,
            r#"{"error":"unauthenticated","message":"expired"}"#,
        );
        assert!(e.is_unauthenticated());
        assert!(e.user_message().contains("expired"));
        let e = error_from_body(StatusCode::BAD_GATEWAY, "<html>oops</html>");
        assert_eq!(e.code(), Some(ErrorCode::Unknown));
        assert_eq!(e.user_message(), "<html>oops</html>");
        let e = error_from_body(
            StatusCode::CONFLICT,
            r#"{"error":"capture_busy","message":"busy"}"#,
        );
        assert_eq!(e.code(), Some(ErrorCode::CaptureBusy));
        assert!(e.user_message().contains("recording another session"));
        let e = ClientError::Unreachable {
            server: "http://127.0.0.1:1".into(),
            detail: "connection refused or host unreachable".into(),
        };
        assert!(e
            .user_message()
            .contains("Cannot reach the EMO server at http://127.0.0.1:1"));
    }

    #[test]
    fn server_urls_are_normalised() {
        assert_eq!(normalize_server("127.0.0.1:7878"), "http://127.0.0.1:7878");
        assert_eq!(
            normalize_server("https://emo.example/"),
            "https://emo.example"
        );
    }

    #[test]
    fn query_pairs_use_api_spelling() {
        let q = Query {
            agent: Some("ann".into()),
            from: Some("2026-01-02T03:04:05Z".parse().unwrap()),
            to: None,
            emotion: Some(Emotion::Happy),
            modality: Some(Modality::Fused),
        };
        assert_eq!(
            q.pairs(),
            vec![
                ("agent", "ann".to_string()),
                ("from", "2026-01-02T03:04:05Z".to_string()),
                ("emotion", "happy".to_string()),
                ("modality", "fused".to_string()),
            ]
        );
    }

    #[tokio::test]
    async fn unreachable_server_is_reported_not_panicked() {
        // Port 9 (discard) on loopback is closed in test environments.
        let c = Client::new("http://127.0.0.1:9").unwrap();
        let e = c.health().await.unwrap_err();
        assert!(matches!(e, ClientError::Unreachable { .. }), "{e:?}");
    }
}
