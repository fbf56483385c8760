//! A deadline on reading request bodies (`server.body_timeout_secs`).
//!
//! actix bounds the time to receive a request's head (5 s) but not its body: a client that
//! sends headers and then one byte a second holds its connection, and its file descriptor, for
//! as long as it likes (260 such logins made `/healthz` fail). The body is wrapped in a stream
//! that fails once the deadline has passed; the handler's extractor fails with it, the request
//! is answered 408, and actix closes a connection whose body was not read to the end.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::body::{BodySize, BoxBody, EitherBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::middleware::Next;
use actix_web::web::Bytes;
use actix_web::{HttpMessage, ResponseError};
use emo_api_types::ErrorCode;
use futures_util::Stream;

use super::AppState;
use crate::error::AppError;

/// The 408's body, which also keeps the timed-out request's unread body alive until it has
/// been sent: actix drains a chunked request body whose reader is gone (for as long as the
/// client keeps trickling), but closes the connection after answering a request whose body is
/// still being read.
struct ClosingBody {
    bytes: Option<Bytes>,
    _unread: Option<Payload>,
}

impl MessageBody for ClosingBody {
    type Error = std::convert::Infallible;

    fn size(&self) -> BodySize {
        BodySize::Sized(self.bytes.as_ref().map_or(0, |b| b.len() as u64))
    }

    fn poll_next(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        Poll::Ready(self.bytes.take().map(Ok))
    }
}

struct DeadlineStream {
    inner: Payload,
    parked: Rc<RefCell<Option<Payload>>>,
    sleep: Pin<Box<tokio::time::Sleep>>,
    fired: Arc<AtomicBool>,
    timeout: Duration,
    done: bool,
}

impl Stream for DeadlineStream {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        if let Poll::Ready(item) = Pin::new(&mut self.inner).poll_next(cx) {
            if item.is_none() {
                self.done = true;
            }
            return Poll::Ready(item);
        }
        if self.sleep.as_mut().poll(cx).is_ready() {
            self.done = true;
            self.fired.store(true, Ordering::Relaxed);
            let inner = std::mem::replace(&mut self.inner, Payload::None);
            *self.parked.borrow_mut() = Some(inner);
            let msg = format!(
                "the request body did not arrive within {} s",
                self.timeout.as_secs()
            );
            return Poll::Ready(Some(Err(PayloadError::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                msg,
            )))));
        }
        Poll::Pending
    }
}

/// Middleware: the request body must arrive within `server.body_timeout_secs`.
pub async fn body_deadline(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody + 'static>>, actix_web::Error> {
    let secs = req
        .app_data::<actix_web::web::Data<AppState>>()
        .map_or(0, |s| s.config.server.body_timeout_secs);
    if secs == 0 {
        return Ok(next.call(req).await?.map_into_left_body());
    }
    let timeout = Duration::from_secs(secs);
    let fired = Arc::new(AtomicBool::new(false));
    let inner = req.take_payload();
    let parked = Rc::new(RefCell::new(None));
    let stream = DeadlineStream {
        inner,
        parked: parked.clone(),
        sleep: Box::pin(tokio::time::sleep(timeout)),
        fired: fired.clone(),
        timeout,
        done: false,
    };
    req.set_payload(Payload::Stream {
        payload: Box::pin(stream),
    });
    let res = next.call(req).await?;
    if !fired.load(Ordering::Relaxed) {
        return Ok(res.map_into_left_body());
    }
    let (http_req, _) = res.into_parts();
    tracing::info!(
        peer = ?http_req.peer_addr(),
        path = %crate::auth::log_safe(http_req.path(), 200),
        "request body timed out; closing the connection"
    );
    let mut resp = AppError::new(ErrorCode::InvalidInput, "request body timeout").error_response();
    *resp.status_mut() = actix_web::http::StatusCode::REQUEST_TIMEOUT;
    resp.head_mut()
        .set_connection_type(actix_web::http::ConnectionType::Close);
    let json = serde_json::to_vec(&emo_api_types::ApiError {
        error: ErrorCode::InvalidInput,
        message: format!("the request body did not arrive within {secs} s"),
    })
    .unwrap_or_default();
    let resp = resp.set_body(BoxBody::new(ClosingBody {
        bytes: Some(Bytes::from(json)),
        _unread: parked.borrow_mut().take(),
    }));
    Ok(ServiceResponse::new(http_req, resp).map_into_right_body())
}
