//! `POST /api/v1/analyze` (multipart): images / audio / video → expression estimates, the same
//! JSON as `emod analyze --json`. Uploads go to a private temporary directory that is removed
//! before the response is sent; nothing is stored. Limits: `server.upload_limit_bytes` in total,
//! at most [`MAX_FILES`] files per request.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use actix_multipart::Multipart;
use actix_web::{web, HttpResponse};
use emo_api_types::analyze::AnalyzeResponse;
use emo_api_types::ErrorCode;
use emo_inference::Engine;
use futures_util::StreamExt;
use std::io::Write;

use super::AppState;
use crate::auth::AuthUser;
use crate::config::Config;
use crate::error::{AppError, AppResult};

/// Most files accepted in one request.
pub const MAX_FILES: usize = 16;

/// The engine is loaded on first use and shared; a failed load is retried on the next request.
static ENGINE: Mutex<Option<Arc<Engine>>> = Mutex::new(None);

fn engine(config: &Config) -> AppResult<Arc<Engine>> {
    let mut g = ENGINE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(e) = g.as_ref() {
        return Ok(e.clone());
    }
    let opts = crate::cli::models::engine_options(config)
        .map_err(|e| AppError::new(ErrorCode::ModelsUnavailable, e.to_string()))?;
    let e = Arc::new(
        Engine::load(&opts)
            .map_err(|e| AppError::new(ErrorCode::ModelsUnavailable, e.to_string()))?,
    );
    *g = Some(e.clone());
    Ok(e)
}

/// A safe local name that keeps the extension (used for the media type).
fn local_name(i: usize, original: &str) -> String {
    let ext: String = Path::new(original)
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(8)
        .collect();
    if ext.is_empty() {
        format!("upload-{i}")
    } else {
        format!("upload-{i}.{ext}")
    }
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[utoipa::path(
    post,
    path = "/api/v1/analyze",
    tag = "analyze",
    request_body(content_type = "multipart/form-data", description = "one or more files (any field name)"),
    responses(
        (status = 200, description = "Expression estimates per file (failed files carry `error`)", body = AnalyzeResponse),
        (status = 400, description = "no file in the request"),
        (status = 413, description = "upload over server.upload_limit_bytes"),
        (status = 503, description = "models or ONNX Runtime unavailable")
    ),
    security(("bearer" = []))
)]
pub async fn analyze(
    state: web::Data<AppState>,
    _user: AuthUser,
    mut payload: Multipart,
) -> AppResult<HttpResponse> {
    let limit = state.config.server.upload_limit_bytes;
    let dir = TempDir(std::env::temp_dir().join(format!("emod-analyze-{}", uuid::Uuid::new_v4())));
    std::fs::create_dir_all(&dir.0)
        .map_err(|e| AppError::Internal(format!("temporary directory: {e}")))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o700));
    }
    let mut files: Vec<(PathBuf, String)> = Vec::new();
    let mut total = 0usize;
    while let Some(field) = payload.next().await {
        let mut field = field.map_err(|e| AppError::invalid(format!("bad multipart body: {e}")))?;
        let original = field
            .content_disposition()
            .and_then(|cd| cd.get_filename().map(str::to_string))
            .unwrap_or_default();
        if original.is_empty() {
            // A plain form field, not a file: drain and ignore.
            while let Some(chunk) = field.next().await {
                chunk.map_err(|e| AppError::invalid(format!("bad multipart body: {e}")))?;
            }
            continue;
        }
        if files.len() >= MAX_FILES {
            return Err(AppError::new(
                ErrorCode::PayloadTooLarge,
                format!("at most {MAX_FILES} files per request"),
            ));
        }
        let path = dir.0.join(local_name(files.len(), &original));
        let mut out = std::fs::File::create(&path)
            .map_err(|e| AppError::Internal(format!("temporary file: {e}")))?;
        while let Some(chunk) = field.next().await {
            let chunk = chunk.map_err(|e| AppError::invalid(format!("bad multipart body: {e}")))?;
            total += chunk.len();
            if total > limit {
                return Err(AppError::new(
                    ErrorCode::PayloadTooLarge,
                    format!("upload is over the limit of {limit} bytes"),
                ));
            }
            out.write_all(&chunk)
                .map_err(|e| AppError::Internal(format!("temporary file: {e}")))?;
        }
        files.push((path, original));
    }
    if files.is_empty() {
        return Err(AppError::invalid("no file in the multipart body"));
    }
    let config = state.config.clone();
    let result = web::block(move || -> AppResult<AnalyzeResponse> {
        let engine = engine(&config)?;
        let files = files
            .iter()
            .map(|(p, name)| engine.analyze_file(p, name, &|_| {}))
            .collect();
        Ok(AnalyzeResponse { files })
    })
    .await??;
    drop(dir);
    Ok(HttpResponse::Ok().json(result))
}
