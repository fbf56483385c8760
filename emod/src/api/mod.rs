//! The REST API (`/api/v1`) and the operational endpoints. One file per resource.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::middleware::Next;
use actix_web::{web, App, HttpRequest, HttpServer};
use anyhow::Context;
use emo_api_types::ErrorCode;

use crate::auth::{LoginThrottle, TokenCache};
use crate::config::Config;
use crate::error::AppError;
use crate::metrics::Metrics;
use crate::store::writer::{replay_spool, Writer, WriterOptions};
use crate::store::Store;

pub mod analyze;
pub mod audit;
pub mod auth;
pub mod export;
pub mod health;
pub mod live;
pub mod openapi;
pub mod scope;
pub mod sessions;
pub mod stats;
pub mod users;

/// Everything handlers share.
pub struct AppState {
    pub config: Config,
    pub store: Store,
    pub writer: Writer,
    pub metrics: Arc<Metrics>,
    pub tokens: TokenCache,
    pub throttle: LoginThrottle,
    pub live: live::LiveBus,
    pub running: sessions::RunningSessions,
    pub node: String,
}

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

async fn method_not_allowed() -> actix_web::HttpResponse {
    use actix_web::ResponseError;
    AppError::new(
        ErrorCode::MethodNotAllowed,
        "method not allowed on this route",
    )
    .error_response()
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
                .default_service(web::to(not_found)),
        )
        .default_service(web::to(not_found));
}

/// Opens storage, migrates, recovers from a previous crash, then serves until SIGTERM/SIGINT;
/// on the way out, pending samples are flushed (or spooled to disk).
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let listener = TcpListener::bind(&config.server.listen)
        .with_context(|| format!("cannot listen on {}", config.server.listen))?;
    let state = prepare(config).await?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, database = %state.store.describe, "emod listening");
    let data = web::Data::new(state);
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
            .wrap(actix_web::middleware::from_fn(count_responses))
            .wrap(
                actix_web::middleware::Logger::new("%a \"%r\" %s %b %Dms").log_target("emod::http"),
            )
            .configure(configure)
    })
    .listen(listener)?
    .shutdown_timeout(10);
    if workers > 0 {
        server = server.workers(workers);
    }
    let server = server.run();
    let handle = server.handle();
    let maint = tokio::spawn(maintenance(data.clone()));
    let result = server.await;
    maint.abort();
    drop(handle);
    tracing::info!("shutting down: flushing pending samples");
    let writer = data.writer.clone();
    let saved = tokio::task::spawn_blocking(move || writer.shutdown(Duration::from_secs(10)))
        .await
        .context("writer shutdown")??;
    if saved > 0 {
        tracing::warn!(saved, "samples saved to the spool directory");
    }
    result.context("HTTP server")
}

/// Everything `serve` does before it accepts connections.
pub async fn prepare(config: Config) -> anyhow::Result<AppState> {
    let cfg = config.clone();
    let store = tokio::task::spawn_blocking(move || -> anyhow::Result<Store> {
        let store = Store::open(&cfg)?;
        let applied = store.migrate()?;
        if !applied.is_empty() {
            tracing::info!(?applied, "database migrated");
        }
        Ok(store)
    })
    .await??;
    let metrics = Arc::new(Metrics::default());
    metrics
        .database_up
        .store(1, std::sync::atomic::Ordering::Relaxed);
    let spool_dir = config.spool_dir().ok();
    if let Some(dir) = &spool_dir {
        let (s, d) = (store.clone(), dir.clone());
        let replayed = tokio::task::spawn_blocking(move || replay_spool(&s, &d)).await??;
        if replayed > 0 {
            tracing::info!(replayed, "wrote samples spooled at the last shutdown");
        }
    }
    let writer = Writer::start(
        store.clone(),
        WriterOptions {
            batch_size: config.writer.batch_size,
            flush_interval: Duration::from_millis(config.writer.flush_interval_ms.max(1)),
            capacity: config.writer.spool_capacity,
            spool_dir,
            connections: config.writer.connections,
        },
        metrics.clone(),
    );
    let node = config.node_name();
    let state = AppState {
        config,
        store,
        writer,
        metrics,
        tokens: TokenCache::default(),
        throttle: LoginThrottle::default(),
        live: live::LiveBus::default(),
        running: sessions::RunningSessions::default(),
        node,
    };
    let recovered = sessions::recover_interrupted(&state).await?;
    if recovered > 0 {
        tracing::warn!(
            recovered,
            "sessions left running by an earlier crash marked interrupted"
        );
    }
    Ok(state)
}

/// Hourly housekeeping: retention and expired tokens.
async fn maintenance(state: web::Data<AppState>) {
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tick.tick().await;
        let st = state.clone();
        let res = web::block(move || -> anyhow::Result<()> {
            let now = crate::store::now_ms();
            st.store.purge_tokens(now)?;
            let days = st.config.privacy.retention_days;
            if days > 0 {
                let (samples, sessions) = st.store.purge_before(now - days as i64 * 86_400_000)?;
                if samples + sessions > 0 {
                    tracing::info!(samples, sessions, days, "retention: deleted old data");
                }
            }
            Ok(())
        })
        .await;
        match res {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!("maintenance failed: {e:#}"),
            Err(e) => tracing::warn!("maintenance task failed: {e}"),
        }
    }
}
