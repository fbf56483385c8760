//! The REST API (`/api/v1`) and the operational endpoints. One file per resource.

use std::net::TcpListener;
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::middleware::Next;
use actix_web::{web, App, HttpRequest, HttpServer};
use anyhow::Context;
use emo_api_types::ErrorCode;

use crate::config::Config;
use crate::error::AppError;
pub use crate::startup::prepare;
pub use crate::state::AppState;

pub mod analyze;
pub mod audit;
pub mod auth;
pub mod deadline;
pub mod devices;
mod error_response;
pub mod export;
pub mod extract;
pub mod health;
pub mod live;
pub mod openapi;
pub mod paging;
pub mod scope;
pub mod sessions;
pub mod stats;
pub mod users;

fn json_error(err: JsonPayloadError, _req: &HttpRequest) -> actix_web::Error {
    let e = match &err {
        JsonPayloadError::OverflowKnownLength { length, limit } => AppError::new(
            ErrorCode::PayloadTooLarge,
            format!("body of {length} bytes is over the limit of {limit} bytes"),
        ),
        JsonPayloadError::Overflow { limit } => AppError::new(
            ErrorCode::PayloadTooLarge,
            format!("body is over the limit of {limit} bytes"),
        ),
        JsonPayloadError::ContentType => AppError::new(
            ErrorCode::UnsupportedMediaType,
            "expected Content-Type: application/json",
        ),
        JsonPayloadError::Deserialize(de) if de.is_data() => {
            AppError::invalid(format!("invalid request body: {de}"))
        }
        JsonPayloadError::Deserialize(de) => AppError::new(
            ErrorCode::MalformedJson,
            format!("body is not valid JSON: {de}"),
        ),
        other => AppError::new(
            ErrorCode::MalformedJson,
            format!("unreadable body: {other}"),
        ),
    };
    e.into()
}

fn query_error(err: QueryPayloadError, _req: &HttpRequest) -> actix_web::Error {
    AppError::query(format!("invalid query string: {err}")).into()
}

fn path_error(_err: PathError, _req: &HttpRequest) -> actix_web::Error {
    AppError::not_found("resource").into()
}

async fn not_found() -> actix_web::HttpResponse {
    use actix_web::ResponseError;
    AppError::not_found("route").error_response()
}

/// 405 with the `Allow` header RFC 9110 requires: the route's methods, from the OpenAPI document.
async fn method_not_allowed(req: HttpRequest) -> actix_web::HttpResponse {
    use actix_web::ResponseError;
    let allow = openapi::allowed_methods(req.match_pattern().as_deref().unwrap_or_default());
    let mut resp = AppError::new(
        ErrorCode::MethodNotAllowed,
        format!("method not allowed on this route (allowed: {allow})"),
    )
    .error_response();
    resp.headers_mut().insert(
        actix_web::http::header::ALLOW,
        actix_web::http::header::HeaderValue::from_static(allow),
    );
    resp
}

async fn count_responses(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody + 'static>, actix_web::Error> {
    let metrics = req
        .app_data::<web::Data<AppState>>()
        .map(|s| s.metrics.clone());
    let res = next.call(req).await?;
    if let Some(m) = metrics {
        m.record_status(res.status().as_u16());
    }
    Ok(res)
}

/// A resource that answers 405 (JSON) for methods it does not route.
fn resource(path: &str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(method_not_allowed))
}

/// Registers every route; shared by the server and the in-process tests.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/healthz").route(web::get().to(health::healthz)))
        .service(resource("/readyz").route(web::get().to(health::readyz)))
        .service(resource("/metrics").route(web::get().to(health::metrics)))
        .service(
            web::scope("/api/v1")
                .service(resource("/openapi.json").route(web::get().to(openapi::openapi_json)))
                .service(resource("/auth/register").route(web::post().to(auth::register)))
                .service(resource("/auth/login").route(web::post().to(auth::login)))
                .service(resource("/auth/logout").route(web::post().to(auth::logout)))
                .service(resource("/me").route(web::get().to(auth::me)))
                .service(
                    resource("/users")
                        .route(web::get().to(users::list))
                        .route(web::post().to(users::create)),
                )
                .service(
                    resource("/users/{username}")
                        .route(web::get().to(users::get))
                        .route(web::patch().to(users::update)),
                )
                .service(
                    resource("/sessions")
                        .route(web::get().to(sessions::list))
                        .route(web::post().to(sessions::start)),
                )
                .service(resource("/sessions/{id}").route(web::get().to(sessions::get)))
                .service(resource("/sessions/{id}/stop").route(web::post().to(sessions::stop)))
                .service(
                    resource("/sessions/{id}/samples")
                        .route(web::get().to(sessions::samples))
                        .route(web::post().to(sessions::post_samples)),
                )
                .service(resource("/sessions/{id}/live").route(web::get().to(live::stream)))
                .service(resource("/stats/distribution").route(web::get().to(stats::distribution)))
                .service(resource("/stats/timeline").route(web::get().to(stats::timeline)))
                .service(resource("/stats/heatmap").route(web::get().to(stats::heatmap)))
                .service(resource("/export").route(web::get().to(export::export)))
                .service(resource("/audit").route(web::get().to(audit::list)))
                .service(resource("/analyze").route(web::post().to(analyze::analyze)))
                .service(resource("/devices").route(web::get().to(devices::list)))
                .default_service(web::to(not_found)),
        )
        .default_service(web::to(not_found));
}

/// Writes `addr` to `path` through a temporary file and a rename, so a reader never sees a
/// partly written address.
fn write_port_file(path: &std::path::Path, addr: std::net::SocketAddr) -> anyhow::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    std::fs::write(&tmp, format!("{addr}\n"))
        .with_context(|| format!("cannot write --port-file {}", tmp.display()))?;
    std::fs::rename(&tmp, path)
        .with_context(|| format!("cannot write --port-file {}", path.display()))?;
    Ok(())
}

/// Opens storage, migrates, recovers from a previous crash, then serves until SIGTERM/SIGINT;
/// on the way out, pending samples are flushed (or spooled to disk). When `port_file` is given,
/// the bound address is written there once requests can be served (see `serve --port-file`).
pub async fn serve(config: Config, port_file: Option<std::path::PathBuf>) -> anyhow::Result<()> {
    let listener = TcpListener::bind(&config.server.listen)
        .with_context(|| format!("cannot listen on {}", config.server.listen))?;
    let state = prepare(config).await?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, database = %state.store.describe, "emod listening");
    let data = web::Data::new(state);
    crate::state::maintain_once(&data.clone().into_inner()).await;
    let json_limit = data.config.server.json_limit_bytes;
    let workers = data.config.server.workers;
    let app_data = data.clone();
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(app_data.clone())
            .app_data(
                web::JsonConfig::default()
                    .limit(json_limit)
                    .error_handler(json_error),
            )
            .app_data(web::PayloadConfig::default().limit(json_limit))
            .app_data(web::QueryConfig::default().error_handler(query_error))
            .app_data(web::PathConfig::default().error_handler(path_error))
            .wrap(actix_web::middleware::from_fn(deadline::body_deadline))
            .wrap(actix_web::middleware::from_fn(count_responses))
            .wrap(
                actix_web::middleware::Logger::new("%a \"%r\" %s %b %Dms").log_target("emod::http"),
            )
            .configure(configure)
    })
    // Request heads must arrive within 5 s (bodies: `server.body_timeout_secs`, see `deadline`).
    // There is no per-address connection cap here: put a reverse proxy in front of a daemon
    // that listens beyond loopback (nginx `limit_conn`), and see `LimitNOFILE` in the unit.
    .client_request_timeout(Duration::from_secs(5))
    .client_disconnect_timeout(Duration::from_secs(2))
    .listen(listener)?
    .shutdown_timeout(10);
    if workers > 0 {
        server = server.workers(workers);
    }
    let server = server.run();
    let handle = server.handle();
    if let Some(path) = &port_file {
        write_port_file(path, addr)?;
    }
    let maint = tokio::spawn(crate::state::maintenance(data.clone().into_inner()));
    let watch = tokio::spawn(watch_capture(data.clone().into_inner()));
    let result = server.await;
    maint.abort();
    watch.abort();
    drop(handle);
    tracing::info!("shutting down: stopping capture, flushing pending samples");
    data.capture.shutdown().await;
    let writer = data.writer.clone();
    let saved = tokio::task::spawn_blocking(move || writer.shutdown(Duration::from_secs(10)))
        .await
        .context("writer shutdown")??;
    if saved > 0 {
        tracing::warn!(saved, "samples saved to the spool directory");
    }
    let engine = data.engine.clone();
    let settled = tokio::task::spawn_blocking(move || engine.settle(Duration::from_secs(60)))
        .await
        .unwrap_or(true);
    if !settled {
        tracing::warn!("exiting while the inference engine is still loading");
    }
    result.context("HTTP server")
}

/// The capture watch (`sessions::watch`), once a second for the daemon's life.
async fn watch_capture(state: std::sync::Arc<crate::state::AppState>) {
    let mut tick = tokio::time::interval(crate::sessions::watch::CHECK_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        crate::sessions::watch::check_once(&state.sessions()).await;
    }
}
