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

fn sse(event: &LiveEvent) -> Bytes {
    Bytes::from(format!(
        "data: {}\n\n",
        serde_json::to_string(event).unwrap_or_default()
    ))
}

#[utoipa::path(get, path = "/api/v1/sessions/{id}/live", tag = "sessions", params(("id" = Uuid, Path)),
    responses((status = 200, description = "text/event-stream of LiveEvent JSON objects", body = LiveEvent)),
    security(("bearer" = [])))]
pub async fn stream(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<String>,
) -> AppResult<HttpResponse> {
    let id = Uuid::parse_str(&path).map_err(|_| AppError::not_found("session"))?;
    let (row, _) = sessions::visible(&state, &user, id, "read.live").await?;
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
    let events =
        futures_util::stream::unfold((rx, already_over), move |(mut rx, done)| async move {
            if done {
                return None;
            }
            loop {
                match tokio::time::timeout(Duration::from_secs(15), rx.recv()).await {
                    Ok(Ok(ev)) => {
                        let stop = matches!(ev, LiveEvent::Stopped { .. });
                        return Some((Ok(sse(&ev)), (rx, stop)));
                    }
                    Ok(Err(broadcast::error::RecvError::Lagged(_))) => continue,
                    Ok(Err(broadcast::error::RecvError::Closed)) => return None,
                    // Keep-alive comment so proxies and clients see the stream is alive.
                    Err(_) => {
                        return Some((Ok(Bytes::from_static(b": keep-alive\n\n")), (rx, false)))
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
