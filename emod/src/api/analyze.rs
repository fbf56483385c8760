//! `POST /api/v1/analyze` (multipart): images / audio / video → expression estimates, the same
//! JSON as `emod analyze --json`. Uploads go to a private temporary directory that is removed
//! before the response is sent; nothing is stored. Limits: `server.upload_limit_bytes` in total,
//! at most [`MAX_FILES`] files per request, and the `[analyze]` section: media length and pixels
//! (checked before decoding), a deadline, and how many analyses run at once (more get 429). The
//! work runs on a thread of its own, never on an HTTP worker or the database's blocking pool, and
//! stops (killing its ffmpeg) when the client leaves or the deadline passes.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix_multipart::Multipart;
use actix_web::error::PayloadError;
use actix_web::http::header::{HeaderMap, CONTENT_TYPE};
use actix_web::web::Bytes;
use actix_web::{web, HttpRequest, HttpResponse};
use emo_api_types::analyze::{AnalyzeRefused, AnalyzeResponse};
use emo_api_types::ErrorCode;
use futures_util::future::poll_fn;
use futures_util::{Stream, StreamExt};
use std::io::Write;
use std::pin::Pin;
use std::task::{Context, Poll};

use super::AppState;
use crate::auth::AuthUser;
use crate::error::{AppError, AppResult};

/// Most files accepted in one request.
pub const MAX_FILES: usize = 16;

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

/// The request's private upload directory (`emod-analyze-<uuid>` in the system's temporary
/// directory, `TMPDIR`), removed with everything in it when this is dropped: by the handler when
/// the request is refused or the client leaves during the upload, by the analysis thread once the
/// work ends (finished, failed or cancelled).
struct TempDir(PathBuf);

impl TempDir {
    fn create() -> AppResult<TempDir> {
        let dir =
            TempDir(std::env::temp_dir().join(format!("emod-analyze-{}", uuid::Uuid::new_v4())));
        std::fs::create_dir_all(&dir.0)
            .map_err(|e| AppError::Internal(format!("temporary directory: {e}")))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o700));
        }
        Ok(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What one analysis owns for as long as it runs (not as long as the request): its permit among
/// `analyze.max_concurrent`, and the uploaded files.
struct Job {
    _permit: tokio::sync::OwnedSemaphorePermit,
    dir: TempDir,
    files: Vec<(PathBuf, String)>,
}

#[utoipa::path(
    post,
    path = "/api/v1/analyze",
    tag = "analyze",
    request_body(content_type = "multipart/form-data", description = "one or more files (any field name)"),
    responses(
        (status = 200, description = "Expression estimates per file; at least one file was analysed, or the analysis outlasted the first 5 s (failed files carry `error`)", body = AnalyzeResponse),
        (status = 413, description = "`payload_too_large`: upload over server.upload_limit_bytes, or more than 16 files"),
        (status = 422, description = "`invalid_input`: no file in the request, a malformed multipart body, or no file could be analysed (`files` then holds each file's `error`)", body = AnalyzeRefused),
        (status = 429, description = "`too_many_requests`: analyze.max_concurrent analyses are already running (Retry-After)"),
        (status = 503, description = "`models_unavailable`: models or ONNX Runtime unavailable")
    ),
    security(("bearer" = []))
)]
pub async fn analyze(
    state: web::Data<AppState>,
    _user: AuthUser,
    req: HttpRequest,
    body: web::Payload,
) -> AppResult<HttpResponse> {
    let (mut payload, ended, received) = counted_multipart_body(req.headers(), body);
    // Taken before the upload is read, so a queue of uploads cannot fill the disk either.
    let permit = state.analyses.clone().try_acquire_owned().map_err(|_| {
        AppError::new(
            ErrorCode::TooManyRequests,
            format!(
                "{} analyses are already running; try again shortly",
                state.config.analyze.max_concurrent
            ),
        )
    })?;
    let dir = TempDir::create()?;
    let limit = state.config.server.upload_limit_bytes;
    let min_rate = state.config.analyze.min_upload_bytes_per_sec;
    let files = save_uploads_paced(
        req.headers(),
        &mut payload,
        &ended,
        &received,
        &dir.0,
        limit,
        min_rate,
    )
    .await?;
    let job = Job {
        _permit: permit,
        dir,
        files,
    };
    let cancel = CancelOnDrop(Arc::new(AtomicBool::new(false)));
    let (ready, mut analysed, mut done) =
        spawn_analysis(state.engine.clone(), job, cancel.0.clone())?;
    ready
        .await
        .map_err(|_| AppError::Internal("analysis thread ended early".into()))??;
    // The models are loaded. The status waits for the verdict while it comes soon: every file
    // failed (422, with each file's error), or one was analysed (200 whatever follows). Past
    // [`VERDICT_WAIT`] the answer starts as 200 so that a client leaving is noticed (see
    // [`answer_when_done`]); this request's deadline applies throughout.
    let wait = VERDICT_WAIT.min(Duration::from_secs(state.config.analyze.timeout_secs));
    tokio::select! {
        r = &mut done => return Ok(answer(r.unwrap_or(AnalyzeResponse { files: vec![] }))),
        Ok(()) = &mut analysed => {}
        _ = tokio::time::sleep(wait) => {}
    }
    let timeout = Duration::from_secs(state.config.analyze.timeout_secs).saturating_sub(wait);
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .streaming(answer_when_done(cancel, done, timeout)))
}

/// How long the status may wait for the analysis to say whether any file can be analysed.
/// Files that cannot (unsupported type or sample rate, undecodable, over the media limits) are
/// refused within it; a client that leaves meanwhile is noticed only after it.
const VERDICT_WAIT: Duration = Duration::from_secs(5);

/// The whole result as one answer: 422 when no file could be analysed, else 200.
fn answer(resp: AnalyzeResponse) -> HttpResponse {
    if !resp.files.is_empty() && resp.files.iter().all(|f| f.error.is_some()) {
        let n = resp.files.len();
        return HttpResponse::UnprocessableEntity().json(AnalyzeRefused {
            error: ErrorCode::InvalidInput,
            message: format!(
                "no file could be analysed ({n} file{}); each file's error is in `files`",
                if n == 1 { "" } else { "s" }
            ),
            files: resp.files,
        });
    }
    HttpResponse::Ok().json(resp)
}

type Ready = tokio::sync::oneshot::Receiver<AppResult<()>>;
/// Fires once a file has been analysed without error.
type Analysed = tokio::sync::oneshot::Receiver<()>;
type Done = tokio::sync::oneshot::Receiver<AnalyzeResponse>;

/// Runs `job` on a thread of its own. `Ready` says whether the models could be loaded (an error
/// is the request's answer); `Analysed` fires when the first file is analysed without error;
/// `Done` carries the result. The thread stops early once `cancel` is set, and removes the
/// uploads before it reports either way.
fn spawn_analysis(
    engine: crate::shared_engine::SharedEngine,
    job: Job,
    cancel: Arc<AtomicBool>,
) -> AppResult<(Ready, Analysed, Done)> {
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<AppResult<()>>();
    let (analysed_tx, analysed_rx) = tokio::sync::oneshot::channel::<()>();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<AnalyzeResponse>();
    std::thread::Builder::new()
        .name("emod-analyze".into())
        .spawn(move || {
            let engine = match engine.get() {
                Ok(e) => e,
                Err(e) => {
                    drop(job);
                    let _ = ready_tx.send(Err(AppError::new(ErrorCode::ModelsUnavailable, e)));
                    return;
                }
            };
            let _ = ready_tx.send(Ok(()));
            let analysed = std::cell::Cell::new(Some(analysed_tx));
            let on_ok = || {
                if let Some(tx) = analysed.take() {
                    let _ = tx.send(());
                }
            };
            let files = analyze_files(&engine, &job, &|| cancel.load(Ordering::Relaxed), &on_ok);
            drop(job);
            let _ = done_tx.send(AnalyzeResponse { files });
        })
        .map_err(|e| AppError::Internal(format!("analysis thread: {e}")))?;
    Ok((ready_rx, analysed_rx, done_rx))
}

/// Every file of `job`, in order; errors never name the private temporary file. `on_ok` is
/// called after each file analysed without error.
fn analyze_files(
    engine: &emo_inference::Engine,
    job: &Job,
    stop: &dyn Fn() -> bool,
    on_ok: &dyn Fn(),
) -> Vec<emo_api_types::analyze::FileAnalysis> {
    let tmp = job.dir.0.display().to_string();
    job.files
        .iter()
        .map(|(path, name)| {
            let mut f = engine.analyze_file_until(path, name, &|_| {}, stop);
            // Messages quote ffmpeg, which names the private temporary file.
            match f.error.as_mut() {
                Some(e) => *e = e.replace(&tmp, "").replace("upload-", ""),
                None => on_ok(),
            }
            f
        })
        .collect()
}

/// The response body: the result once `done` delivers it. Until then a space (which JSON
/// ignores) goes out every second: writing is how the server notices a client that left, and
/// then this stream is dropped with `guard`, which stops the work (actix does not cancel a
/// handler that only waits). Past `timeout` the work is stopped too; files not finished by then
/// carry an error.
fn answer_when_done(
    guard: CancelOnDrop,
    done: Done,
    timeout: Duration,
) -> impl futures_util::Stream<Item = Result<web::Bytes, actix_web::Error>> {
    let deadline = tokio::time::Instant::now() + timeout;
    futures_util::stream::unfold(Some((guard, done)), move |st| async move {
        let (guard, mut rx) = st?;
        let tick = tokio::time::sleep(Duration::from_secs(1));
        let past = tokio::time::sleep_until(deadline);
        let stopped = guard.0.load(Ordering::Relaxed);
        tokio::select! {
            r = &mut rx => {
                let bytes = match r {
                    Ok(resp) => serde_json::to_vec(&resp).unwrap_or_default(),
                    Err(_) => b"{\"files\":[]}".to_vec(),
                };
                drop(guard);
                Some((Ok(web::Bytes::from(bytes)), None))
            }
            _ = tick => Some((Ok(web::Bytes::from_static(b" ")), Some((guard, rx)))),
            _ = past, if !stopped => {
                guard.0.store(true, Ordering::Relaxed);
                Some((Ok(web::Bytes::from_static(b" ")), Some((guard, rx))))
            }
        }
    })
}

/// Reads the multipart body into files in `dir` (named by [`local_name`]), with their original
/// names: at most [`MAX_FILES`] files and `limit` bytes in all, plain form fields drained and
/// counted. This is the part of the handler that parses what the client sent; the fuzz target
/// `multipart` drives it with arbitrary bodies.
/// The request body as the multipart parser reads it, noting when it has ended (see
/// [`next_part`]).
pub struct Body<S> {
    inner: S,
    ended: Arc<AtomicBool>,
    /// Bytes received so far (for the minimum upload rate).
    received: Arc<AtomicUsize>,
}

impl<S: Stream<Item = Result<Bytes, PayloadError>> + Unpin> Stream for Body<S> {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let r = self.inner.poll_next_unpin(cx);
        match &r {
            Poll::Ready(None) => self.ended.store(true, Ordering::Release),
            Poll::Ready(Some(Ok(b))) => {
                self.received.fetch_add(b.len(), Ordering::Relaxed);
            }
            _ => {}
        }
        r
    }
}

/// A multipart reader over `body`, and the flag that says the body has ended.
pub fn multipart_body<S>(headers: &HeaderMap, body: S) -> (Multipart, Arc<AtomicBool>)
where
    S: Stream<Item = Result<Bytes, PayloadError>> + Unpin + 'static,
{
    let (m, ended, _) = counted_multipart_body(headers, body);
    (m, ended)
}

/// [`multipart_body`], and the count of bytes received so far.
fn counted_multipart_body<S>(
    headers: &HeaderMap,
    body: S,
) -> (Multipart, Arc<AtomicBool>, Arc<AtomicUsize>)
where
    S: Stream<Item = Result<Bytes, PayloadError>> + Unpin + 'static,
{
    let ended = Arc::new(AtomicBool::new(false));
    let received = Arc::new(AtomicUsize::new(0));
    let body = Body {
        inner: body,
        ended: ended.clone(),
        received: received.clone(),
    };
    (Multipart::new(headers, body), ended, received)
}

/// How long an upload may take to reach the minimum rate (slow starts, TLS proxies).
const UPLOAD_GRACE: Duration = Duration::from_secs(10);

/// Whether an upload that has received `received` bytes after `elapsed` is slower than
/// `min_rate` bytes/s on average, counting from the end of [`UPLOAD_GRACE`] (0 = no minimum).
pub fn too_slow(received: usize, elapsed: Duration, min_rate: u64) -> bool {
    let Some(since) = elapsed.checked_sub(UPLOAD_GRACE) else {
        return false;
    };
    min_rate > 0 && (received as f64) < min_rate as f64 * since.as_secs_f64()
}

/// [`save_uploads`], refused (422 `invalid_input`) once the body arrives slower than
/// `analyze.min_upload_bytes_per_sec` (issue 28, item 10: two uploads trickling a byte every 5 s
/// held both analysis slots for the whole body timeout).
async fn save_uploads_paced(
    headers: &HeaderMap,
    payload: &mut Multipart,
    ended: &AtomicBool,
    received: &AtomicUsize,
    dir: &Path,
    limit: usize,
    min_rate: u64,
) -> AppResult<Vec<(PathBuf, String)>> {
    let start = std::time::Instant::now();
    let saving = save_uploads(headers, payload, ended, dir, limit);
    tokio::pin!(saving);
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            r = &mut saving => return r,
            _ = tick.tick() => {
                let got = received.load(Ordering::Relaxed);
                if too_slow(got, start.elapsed(), min_rate) {
                    return Err(AppError::new(
                        ErrorCode::InvalidInput,
                        format!("the upload arrives slower than {min_rate} bytes/s ({got} bytes in {:.0} s); it was dropped", start.elapsed().as_secs_f64()),
                    ));
                }
            }
        }
    }
}

/// The next item of the multipart reader or of one of its fields. actix-multipart 0.7.2 can
/// answer "not yet" (Pending) for a malformed body whose every byte it has already read, and
/// then nothing ever wakes it: found by the `multipart` fuzz target
/// (fuzz/regressions/multipart/pending_after_the_body_ended), it held the request, and the
/// analysis slot with it, for as long as the client kept the connection open. Pending once the
/// body has ended can only be that, so it is a bad body.
async fn next_part<T, P: Stream<Item = T> + Unpin>(
    part: &mut P,
    ended: &AtomicBool,
) -> AppResult<Option<T>> {
    poll_fn(|cx| match part.poll_next_unpin(cx) {
        Poll::Pending if ended.load(Ordering::Acquire) => Poll::Ready(Err(AppError::invalid(
            "bad multipart body: it ends inside a part",
        ))),
        p => p.map(Ok),
    })
    .await
}

pub async fn save_uploads(
    headers: &HeaderMap,
    payload: &mut Multipart,
    ended: &AtomicBool,
    dir: &Path,
    limit: usize,
) -> AppResult<Vec<(PathBuf, String)>> {
    check_boundary(headers)?;
    let mut files: Vec<(PathBuf, String)> = Vec::new();
    let mut total = 0usize;
    while let Some(field) = next_part(payload, ended).await? {
        let mut field = field.map_err(|e| AppError::invalid(format!("bad multipart body: {e}")))?;
        let original = field
            .content_disposition()
            .and_then(|cd| cd.get_filename().map(str::to_string))
            .unwrap_or_default();
        if original.is_empty() {
            // A plain form field, not a file: drained and ignored, but counted in the limit.
            while let Some(chunk) = next_part(&mut field, ended).await? {
                let chunk =
                    chunk.map_err(|e| AppError::invalid(format!("bad multipart body: {e}")))?;
                total += chunk.len();
                if total > limit {
                    return Err(AppError::new(
                        ErrorCode::PayloadTooLarge,
                        format!("upload is over the limit of {limit} bytes"),
                    ));
                }
            }
            continue;
        }
        if files.len() >= MAX_FILES {
            return Err(AppError::new(
                ErrorCode::PayloadTooLarge,
                format!("at most {MAX_FILES} files per request"),
            ));
        }
        let path = dir.join(local_name(files.len(), &original));
        let mut out = std::fs::File::create(&path)
            .map_err(|e| AppError::Internal(format!("temporary file: {e}")))?;
        while let Some(chunk) = next_part(&mut field, ended).await? {
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
    Ok(files)
}

/// Shortest multipart boundary accepted. actix-multipart 0.7.2 panics (a slice index out of range
/// in its preamble scan) on a body whose boundary is shorter than 4 bytes when a preamble line is
/// about as short: found by the `multipart` fuzz target (fuzz/regressions/multipart/). RFC 2046
/// allows 1-70 characters, but real clients use long ones (curl 24, browsers about 40), so a
/// shorter one is refused before the parser sees the body.
pub const MIN_BOUNDARY: usize = 4;

/// An error for a `multipart/*` Content-Type whose boundary is shorter than [`MIN_BOUNDARY`]
/// (parsed as actix-multipart parses it); anything else is left to the parser's own errors.
pub fn check_boundary(headers: &HeaderMap) -> AppResult<()> {
    let len = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.parse::<actix_web::mime::Mime>().ok())
        .and_then(|m| {
            m.get_param(actix_web::mime::BOUNDARY)
                .map(|b| b.as_str().len())
        });
    match len {
        Some(n) if n < MIN_BOUNDARY => Err(AppError::invalid(format!(
            "bad multipart body: the boundary must be at least {MIN_BOUNDARY} characters"
        ))),
        _ => Ok(()),
    }
}

/// Sets the flag when dropped, which tells the analysis thread to stop.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upload_is_too_slow_only_after_the_grace_and_below_the_rate() {
        let s = Duration::from_secs;
        assert!(!too_slow(0, s(9), 8192), "within the grace");
        assert!(too_slow(3, s(12), 8192), "a byte a second");
        assert!(!too_slow(8192 * 3, s(12), 8192), "8 KiB/s after the grace");
        assert!(!too_slow(0, s(600), 0), "0 = no minimum");
    }
}
