//! Live stream of a session's estimates as server-sent events (`GET /api/v1/sessions/{id}/live`).

use std::time::Duration;

use actix_web::web::Bytes;
use actix_web::{web, HttpResponse};
use emo_api_types::{LiveEvent, SessionStatus};
use tokio::sync::broadcast;
use uuid::Uuid;

use super::AppState;
use crate::auth::AuthUser;
use crate::error::{AppError, AppResult};
use crate::sessions;

/// How often an open stream re-checks its token and user (revoked, expired, disabled, demoted).
const RECHECK: Duration = Duration::from_secs(3);
/// A keep-alive comment after this long without anything else.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Why a stream may no longer be served, as `(reason, message)`; `None` while it may. Reads the
/// database directly (not the token cache); when it cannot be read the stream goes on.
async fn revoked(
    state: &AppState,
    token_hash: &str,
    owner: Uuid,
) -> Option<(&'static str, String)> {
    let store = state.store.clone();
    let hash = token_hash.to_string();
    let found = match crate::blocking(move || store.token_with_user(&hash)).await {
        Ok(Ok(found)) => found,
        _ => return None,
    };
    let Some((token, user)) = found else {
        return Some(("token_revoked", "the token no longer exists".into()));
    };
    if token.revoked {
        return Some(("token_revoked", "the token was revoked (logout)".into()));
    }
    if token.expires_at <= crate::store::now_ms() {
        return Some(("token_expired", "the token expired".into()));
    }
    if user.disabled {
        return Some(("account_disabled", "the account was disabled".into()));
    }
    let admin = user.role().is_ok_and(|r| r == emo_api_types::Role::Admin);
    if user.id != owner.to_string() && !admin {
        return Some((
            "forbidden",
            "no longer allowed to watch this session".into(),
        ));
    }
    None
}

/// The last event of a stream closed because its reader lost the right to it.
fn closed(reason: &str, message: &str) -> Bytes {
    Bytes::from(format!(
        "data: {}\n\n",
        serde_json::json!({"type": "closed", "reason": reason, "message": message})
    ))
}

/// Where an open stream stands between two events.
struct Follow {
    /// This stream's place among the open ones, given back when the stream is dropped.
    _slot: crate::slots::Slot,
    rx: broadcast::Receiver<LiveEvent>,
    done: bool,
    checked: std::time::Instant,
    quiet_since: std::time::Instant,
}

fn sse(event: &LiveEvent) -> Bytes {
    Bytes::from(format!(
        "data: {}\n\n",
        serde_json::to_string(event).unwrap_or_default()
    ))
}

#[utoipa::path(get, path = "/api/v1/sessions/{id}/live", tag = "sessions", params(("id" = Uuid, Path)),
    responses((status = 429, description = "too_many_attempts: too many live streams open (server.max_live_streams_per_user, server.max_live_streams)", body = emo_api_types::ApiError),
        (status = 200, description = "text/event-stream of LiveEvent JSON objects. The token and user are re-checked every 3 s: a stream whose token was revoked or expired, or whose user was disabled or lost the right to the session, ends with `{\"type\":\"closed\",\"reason\":\"token_revoked|token_expired|account_disabled|forbidden\",\"message\":...}`", body = LiveEvent)),
    security(("bearer" = [])))]
pub async fn stream(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<String>,
) -> AppResult<HttpResponse> {
    let id = Uuid::parse_str(&path).map_err(|_| AppError::not_found("session"))?;
    let slot = state.live_slots.take(user.id)?;
    let (row, _) = sessions::visible(&state.sessions(), &user, id, "read.live").await?;
    let (rx, current) = state.live.subscribe_with_state(id);
    let already_over = row.status()? != SessionStatus::Running;
    if already_over {
        // Nothing will be published for a finished session: do not keep a channel for it.
        state.live.close(id);
    }
    let initial = if already_over {
        vec![Ok::<_, actix_web::Error>(sse(&LiveEvent::Stopped {
            session_id: id,
        }))]
    } else {
        let mut v = vec![Ok(Bytes::from_static(b": connected\n\n"))];
        v.extend(current.iter().map(|ev| Ok(sse(ev))));
        v
    };
    let head = futures_util::stream::iter(initial);
    let owner = crate::store::parse_uuid(&row.user_id)?;
    let (token_hash, st) = (user.token_hash.clone(), state.clone());
    let start = Follow {
        _slot: slot,
        rx,
        done: already_over,
        checked: std::time::Instant::now(),
        quiet_since: std::time::Instant::now(),
    };
    let events = futures_util::stream::unfold(start, move |mut f| {
        let (st, token_hash) = (st.clone(), token_hash.clone());
        async move {
            if f.done {
                return None;
            }
            loop {
                if f.checked.elapsed() >= RECHECK {
                    f.checked = std::time::Instant::now();
                    if let Some((reason, message)) = revoked(&st, &token_hash, owner).await {
                        f.done = true;
                        return Some((Ok(closed(reason, &message)), f));
                    }
                }
                match tokio::time::timeout(RECHECK, f.rx.recv()).await {
                    Ok(Ok(ev)) => {
                        f.done = matches!(ev, LiveEvent::Stopped { .. });
                        f.quiet_since = std::time::Instant::now();
                        return Some((Ok(sse(&ev)), f));
                    }
                    Ok(Err(broadcast::error::RecvError::Lagged(_))) => continue,
                    Ok(Err(broadcast::error::RecvError::Closed)) => return None,
                    // Keep-alive comment so proxies and clients see the stream is alive.
                    Err(_) if f.quiet_since.elapsed() >= KEEP_ALIVE => {
                        f.quiet_since = std::time::Instant::now();
                        return Some((Ok(Bytes::from_static(b": keep-alive\n\n")), f));
                    }
                    Err(_) => continue,
                }
            }
        }
    });
    use futures_util::StreamExt;
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(head.chain(events)))
}
