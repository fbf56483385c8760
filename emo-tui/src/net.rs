//! The network worker: runs every [`Cmd`] as a tokio task and sends the answer back to the UI
//! thread as a [`Msg`] over a channel, so the UI never waits on the network.

use std::path::Path;

use emo_api_types::{ErrorCode, LiveEvent};
use futures_util::StreamExt;
use tokio::runtime::Handle;
use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinHandle;

use crate::api::{Client, ClientError};
use crate::app::{Cmd, DashData, Msg};
use crate::token;

pub struct Net {
    client: Client,
    tx: UnboundedSender<Msg>,
    rt: Handle,
    live: Option<JoinHandle<()>>,
    token_path: Option<std::path::PathBuf>,
}

impl Net {
    pub fn new(
        client: Client,
        tx: UnboundedSender<Msg>,
        rt: Handle,
        token_path: Option<std::path::PathBuf>,
    ) -> Self {
        Net {
            client,
            tx,
            rt,
            live: None,
            token_path,
        }
    }

    fn spawn<F>(&self, f: F)
    where
        F: std::future::Future<Output = Msg> + Send + 'static,
    {
        let tx = self.tx.clone();
        self.rt.spawn(async move {
            let _ = tx.send(f.await);
        });
    }

    /// Runs a command: the local ones here and now, each request as a task whose answer comes
    /// back over the channel.
    pub fn dispatch(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::SetToken(t) => self.client.set_token(t),
            Cmd::SaveToken(t) => {
                if let Some(p) = &self.token_path {
                    if let Err(e) = token::save(p, &t) {
                        // Local and not counted in flight: its own message, not an answer.
                        let _ = self.tx.send(Msg::TokenNotSaved(format!(
                            "The login could not be saved to {} ({e}); you will be asked to log in next time.",
                            p.display()
                        )));
                    }
                }
            }
            Cmd::ClearToken(rejected) => {
                if let Some(p) = &self.token_path {
                    // Only the saved login that holds this very token; another (e.g. the file
                    // when `EMO_TOKEN` was rejected) may still be good.
                    if token::load(p).is_some_and(|saved| saved.token == rejected) {
                        token::remove(p);
                    }
                }
            }
            Cmd::Live(id) => {
                if let Some(h) = self.live.take() {
                    h.abort();
                }
                let tx = self.tx.clone();
                self.live = Some(self.rt.spawn(live_loop(self.client.clone(), id, tx)));
            }
            Cmd::StopLive => {
                if let Some(h) = self.live.take() {
                    h.abort();
                }
            }
            request => self.spawn(answer(self.client.clone(), request)),
        }
    }
}

/// Sends one request and turns its result into the message that answers it.
async fn answer(c: Client, cmd: Cmd) -> Msg {
    match cmd {
        Cmd::Login { username, password } => {
            Msg::Login(c.login(&username, &password).await.map(|r| (username, r)))
        }
        Cmd::Register { username, password } => Msg::Register(
            c.register(&username, &password)
                .await
                .map(|u| (u, password)),
        ),
        Cmd::Health => Msg::Health(c.health().await),
        Cmd::Me => Msg::Me(c.me().await),
        Cmd::Logout => {
            // Logging out locally works even if the server is gone.
            let _ = c.logout().await;
            Msg::LoggedOut
        }
        Cmd::MySessions { agent } => {
            let q = crate::api::Query {
                agent: Some(agent).filter(|a| !a.is_empty()),
                ..Default::default()
            };
            Msg::MySessions(c.sessions(&q, None, 100, 0).await)
        }
        Cmd::StartSession { sources, label } => Msg::Started(c.start_session(sources, label).await),
        Cmd::Devices => Msg::Devices(c.devices().await),
        Cmd::StopSession(id) => Msg::Stopped(c.stop_session(id).await),
        Cmd::OpenSession(id) => Msg::SessionDetail(open_session(&c, id).await),
        Cmd::Dashboard { query, bucket, gen } => {
            let (d, t, s) = tokio::join!(
                c.distribution(&query),
                c.timeline(&query, bucket),
                c.sessions(&query, None, 200, 0)
            );
            let data = (|| {
                Ok(Box::new(DashData {
                    distribution: d?,
                    timeline: t?,
                    sessions: s?,
                }))
            })();
            Msg::Dashboard(gen, data)
        }
        Cmd::Timeline { query, bucket, gen } => {
            Msg::Timeline(gen, c.timeline(&query, bucket).await)
        }
        Cmd::Heatmap {
            query,
            kind,
            tz_offset_minutes,
            gen,
        } => Msg::Heatmap(gen, c.heatmap(&query, kind, tz_offset_minutes).await),
        Cmd::Users => Msg::Users(c.users().await),
        Cmd::Audit { offset } => Msg::Audit(c.audit(crate::app::AUDIT_PAGE, offset).await),
        Cmd::Export { query, path } => Msg::Exported(export(&c, &query, path).await),
        Cmd::SetToken(_)
        | Cmd::SaveToken(_)
        | Cmd::ClearToken(_)
        | Cmd::Live(_)
        | Cmd::StopLive => {
            unreachable!("local commands are handled by Net::dispatch")
        }
    }
}

async fn open_session(
    c: &Client,
    id: uuid::Uuid,
) -> Result<(emo_api_types::Session, Vec<emo_api_types::Sample>), ClientError> {
    let s = c.session(id).await?;
    let samples = c.samples(id, 20_000).await?;
    Ok((s, samples))
}

/// Writes the filtered samples as CSV to `path`; answers with the path and the row count.
async fn export(
    c: &Client,
    query: &crate::api::Query,
    path: std::path::PathBuf,
) -> Result<(std::path::PathBuf, usize), ClientError> {
    let csv = c.export_csv(query).await?;
    write_export(&path, &csv).await?;
    let rows = csv
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count()
        .saturating_sub(1);
    Ok((path, rows))
}

async fn write_export(path: &Path, csv: &str) -> Result<(), ClientError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|e| ClientError::Local(format!("Cannot create {}: {e}", dir.display())))?;
    }
    // Other people's estimates: readable by the admin who exported them only (0600).
    let mut opts = tokio::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    opts.mode(0o600);
    let write = async {
        use tokio::io::AsyncWriteExt;
        let mut f = opts.open(path).await?;
        f.write_all(csv.as_bytes()).await?;
        f.flush().await
    };
    write
        .await
        .map_err(|e| ClientError::Local(format!("Cannot write {}: {e}", path.display())))
}

#[cfg(test)]
mod export_tests {
    #[tokio::test]
    async fn exports_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x/export.csv");
        super::write_export(&p, "a,b\n").await.unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "a,b\n");
    }
}

/// Reads `data: <json>` lines of a server-sent-event stream and forwards each [`LiveEvent`].
/// Follows a session's live stream until the session stops, reconnecting with a back-off when
/// the connection drops (the UI shows the error once and keeps going).
async fn live_loop(c: Client, id: uuid::Uuid, tx: UnboundedSender<Msg>) {
    let mut delay = std::time::Duration::from_millis(500);
    loop {
        match c.live(id).await {
            Ok(resp) => {
                delay = std::time::Duration::from_millis(500);
                match read_sse(resp, &tx).await {
                    SseEnd::Stopped | SseEnd::UiGone => return,
                    SseEnd::Dropped => {
                        if tx.send(Msg::LiveEnded).is_err() {
                            return;
                        }
                    }
                }
            }
            Err(e) => {
                let fatal = matches!(
                    e.code(),
                    Some(
                        ErrorCode::NotFound
                            | ErrorCode::Unauthenticated
                            | ErrorCode::Forbidden
                            | ErrorCode::SessionNotRunning
                    )
                );
                if tx.send(Msg::LiveError(e)).is_err() || fatal {
                    return;
                }
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(std::time::Duration::from_secs(10));
    }
}

enum SseEnd {
    Stopped,
    Dropped,
    UiGone,
}

async fn read_sse(resp: reqwest::Response, tx: &UnboundedSender<Msg>) -> SseEnd {
    let mut stream = resp.bytes_stream();
    let mut parser = SseParser::default();
    while let Some(chunk) = stream.next().await {
        let Ok(chunk) = chunk else {
            return SseEnd::Dropped;
        };
        for ev in parser.push(&chunk) {
            let stopped = matches!(ev, LiveEvent::Stopped { .. });
            if tx.send(Msg::Live(ev)).is_err() {
                return SseEnd::UiGone;
            }
            if stopped {
                return SseEnd::Stopped;
            }
        }
    }
    SseEnd::Dropped
}

/// Incremental SSE parser: collects `data:` lines until a blank line ends the event.
#[derive(Default)]
pub struct SseParser {
    buf: Vec<u8>,
    data: String,
}

impl SseParser {
    pub fn push(&mut self, bytes: &[u8]) -> Vec<LiveEvent> {
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        while let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.buf.drain(..=pos).collect();
            let line = String::from_utf8_lossy(&line);
            let line = line.trim_end_matches(['\n', '\r']);
            if line.is_empty() {
                if !self.data.is_empty() {
                    if let Ok(ev) = crate::api::from_json_clean::<LiveEvent>(self.data.as_bytes()) {
                        out.push(ev);
                    }
                    self.data.clear();
                }
            } else if let Some(d) = line.strip_prefix("data:") {
                if !self.data.is_empty() {
                    self.data.push('\n');
                }
                self.data.push_str(d.strip_prefix(' ').unwrap_or(d));
            }
            // `event:`, `id:`, `retry:` and `:` comments (keep-alives) are ignored.
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::Cmd;
    use crate::token::SavedToken;

    fn saved(token: &str) -> SavedToken {
        SavedToken {
            server: "http://127.0.0.1:9".into(),
            username: "ann".into(),
            token: token.into(),
            expires_at: "2030-01-01T00:00:00Z".parse().unwrap(),
        }
    }

    type Rx = tokio::sync::mpsc::UnboundedReceiver<Msg>;

    /// A worker with a token file; the runtime is only needed for network commands, which
    /// these tests do not send.
    fn net(path: std::path::PathBuf) -> (Net, Rx, tokio::runtime::Runtime) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let client = Client::new("http://127.0.0.1:9").unwrap();
        let n = Net::new(client, tx, rt.handle().clone(), Some(path));
        (n, rx, rt)
    }

    #[test]
    fn a_failed_token_save_is_a_status_message_not_an_export_answer() {
        let dir = tempfile::tempdir().unwrap();
        // A regular file where the config directory should be: saving must fail.
        let blocker = dir.path().join("not-a-dir");
        std::fs::write(&blocker, "x").unwrap();
        let (mut n, mut rx, _rt) = net(blocker.join("token.json"));
        n.dispatch(Cmd::SaveToken(saved("tok")));
        match rx.try_recv() {
            Ok(Msg::TokenNotSaved(m)) => assert!(m.contains("could not be saved"), "{m}"),
            other => panic!("{other:?}"),
        }
        assert!(rx.try_recv().is_err(), "exactly one message");
    }

    #[test]
    fn clear_token_only_removes_the_saved_login_holding_that_token() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("token.json");
        token::save(&p, &saved("saved-token")).unwrap();
        let (mut n, mut rx, _rt) = net(p.clone());
        // A rejected EMO_TOKEN: the saved login (another token) stays.
        n.dispatch(Cmd::ClearToken("env-token".into()));
        assert_eq!(token::load(&p), Some(saved("saved-token")));
        // The saved token itself rejected: removed.
        n.dispatch(Cmd::ClearToken("saved-token".into()));
        assert!(!p.exists());
        // Nothing saved: nothing happens.
        n.dispatch(Cmd::ClearToken("saved-token".into()));
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn sse_parser_handles_split_chunks_and_keepalives() {
        let mut p = SseParser::default();
        let ev = r#"{"type":"sample","session_id":"00000000-0000-0000-0000-000000000000","t":"2026-01-02T03:04:05Z","modality":"fused","emotion":"happy","confidence":0.9,"probabilities":{"happy":0.9}}"#;
        let stream = format!(": keep-alive\n\ndata: {ev}\n\ndata: {{\"type\":\"stopped\",\"session_id\":\"00000000-0000-0000-0000-000000000000\"}}\r\n\r\n");
        let bytes = stream.as_bytes();
        let mut out = p.push(&bytes[..40]);
        out.extend(p.push(&bytes[40..]));
        assert_eq!(out.len(), 2);
        assert!(matches!(out[0], LiveEvent::Sample(ref s) if s.confidence == 0.9));
        assert!(matches!(out[1], LiveEvent::Stopped { .. }));
    }
}
