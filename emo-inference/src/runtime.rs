//! ONNX Runtime through `ort` with `load-dynamic`: find the shared library, initialise one
//! process-wide environment, and build sessions with the configured execution provider.
//!
//! Library search order (first hit wins): the config value `onnxruntime.library`, the environment
//! variable `ORT_DYLIB_PATH`, then `~/.local/lib/emo/libonnxruntime.so`,
//! `/usr/local/lib/emo/libonnxruntime.so`, `/usr/lib/emo/libonnxruntime.so`.
//! A missing, unreadable or too-old library gives a one-line error saying how to fix it; the
//! loader is wrapped in `catch_unwind` because `ort` may panic on a malformed library.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ort::environment::Environment;
use ort::ep::ExecutionProvider;
use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;

use crate::{Error, Result};

/// How to fix a missing/bad library; appended to every runtime error.
pub const FIX_HINT: &str =
    "run packaging/install-onnxruntime.sh or set ORT_DYLIB_PATH to a libonnxruntime.so >= 1.31";

/// The install locations searched after the config value and `ORT_DYLIB_PATH`.
pub fn default_locations() -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Some(home) = std::env::var_os("HOME") {
        v.push(Path::new(&home).join(".local/lib/emo/libonnxruntime.so"));
    }
    v.push(PathBuf::from("/usr/local/lib/emo/libonnxruntime.so"));
    v.push(PathBuf::from("/usr/lib/emo/libonnxruntime.so"));
    v
}

/// Execution provider choice (config `onnxruntime.execution_provider`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExecProvider {
    #[default]
    Cpu,
    Cuda,
}

impl std::str::FromStr for ExecProvider {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "" | "cpu" => Ok(Self::Cpu),
            "cuda" | "gpu" => Ok(Self::Cuda),
            o => Err(format!("unknown execution provider `{o}` (cpu or cuda)")),
        }
    }
}

/// Runtime settings, filled from the daemon config.
#[derive(Debug, Clone, Default)]
pub struct RuntimeConfig {
    /// Explicit library path (config `onnxruntime.library`).
    pub library: Option<PathBuf>,
    pub execution_provider: ExecProvider,
    /// Intra-op threads per session (0 = ONNX Runtime's default).
    pub intra_threads: usize,
}

/// What was loaded.
#[derive(Debug, Clone)]
pub struct RuntimeInfo {
    pub library: PathBuf,
    /// Where the path came from: "config", "ORT_DYLIB_PATH" or "default location".
    pub source: &'static str,
    /// ONNX Runtime build info (contains the version, e.g. `git-branch=rel-1.31.1`).
    pub build_info: String,
    /// Version parsed from the build info when possible.
    pub version: String,
    /// Execution providers compiled into the library that this build can use.
    pub available_providers: Vec<&'static str>,
}

struct Loaded {
    env: Environment,
    info: RuntimeInfo,
}

static RUNTIME: Mutex<Option<Loaded>> = Mutex::new(None);

/// Pick the library path according to the search order.
pub fn locate(cfg: &RuntimeConfig) -> Result<(PathBuf, &'static str)> {
    if let Some(p) = &cfg.library {
        return Ok((p.clone(), "config onnxruntime.library"));
    }
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()) {
        return Ok((PathBuf::from(p), "ORT_DYLIB_PATH"));
    }
    for p in default_locations() {
        if p.exists() {
            return Ok((p, "default location"));
        }
    }
    let tried: Vec<String> = default_locations()
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    Err(Error::Runtime(format!(
        "ONNX Runtime library not found (looked in {}); {FIX_HINT}",
        tried.join(", ")
    )))
}

fn check_file(path: &Path, source: &str) -> Result<()> {
    let meta = std::fs::metadata(path).map_err(|e| {
        Error::Runtime(format!(
            "ONNX Runtime library {} (from {source}): {e}; {FIX_HINT}",
            path.display()
        ))
    })?;
    if !meta.is_file() {
        return Err(Error::Runtime(format!(
            "ONNX Runtime library {} (from {source}) is not a file; {FIX_HINT}",
            path.display()
        )));
    }
    let mut magic = [0u8; 4];
    use std::io::Read;
    let ok = std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok();
    if !ok || (cfg!(target_os = "linux") && &magic != b"\x7fELF") {
        return Err(Error::Runtime(format!(
            "{} (from {source}) is not a shared library; {FIX_HINT}",
            path.display()
        )));
    }
    Ok(())
}

fn panic_text(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".into())
}

fn parse_version(build_info: &str) -> String {
    build_info
        .split([',', ' '])
        .find_map(|t| t.strip_prefix("git-branch=rel-"))
        .map(str::to_string)
        .unwrap_or_else(|| "unknown".into())
}

/// `libonnxruntime.so.1.31.1` (the symlink target) → `1.31.1`.
fn version_from_file_name(path: &Path) -> Option<String> {
    let real = std::fs::canonicalize(path).ok()?;
    let name = real.file_name()?.to_str()?;
    let v = name.split_once(".so.")?.1;
    v.chars()
        .all(|c| c.is_ascii_digit() || c == '.')
        .then(|| v.to_string())
}

fn providers() -> Vec<&'static str> {
    let mut v = vec!["CPUExecutionProvider"];
    if matches!(ort::ep::CUDA::is_available(), Ok(true)) {
        v.push("CUDAExecutionProvider");
    }
    v
}

/// Load the library and create the process-wide environment (idempotent; the first successful
/// call wins, a failed call may be retried with another path).
///
/// ONNX Runtime's own messages go through `tracing` ([`ort_log`]) instead of its default
/// logger, which writes coloured, timestamped lines straight to stderr: under systemd those
/// reached the journal without a priority, and an operator's log filter could not see them.
pub fn init(cfg: &RuntimeConfig) -> Result<RuntimeInfo> {
    let mut guard = RUNTIME.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(l) = guard.as_ref() {
        return Ok(l.info.clone());
    }
    let (path, source) = locate(cfg)?;
    check_file(&path, source)?;
    let p2 = path.clone();
    let built = catch_unwind(AssertUnwindSafe(
        move || -> std::result::Result<(Environment, String), String> {
            let builder = ort::init_from(&p2).map_err(|e| e.to_string())?;
            let env = builder
                .with_name("emo")
                .with_logger(std::sync::Arc::new(ort_log))
                .build()
                .map_err(|e| e.to_string())?;
            Ok((env, ort::info().to_string()))
        },
    ));
    let (env, build_info) = match built {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => {
            return Err(Error::Runtime(format!(
                "cannot load ONNX Runtime from {} (from {source}): {e}; {FIX_HINT}",
                path.display()
            )))
        }
        Err(p) => {
            return Err(Error::Runtime(format!(
                "cannot load ONNX Runtime from {} (from {source}): {}; {FIX_HINT}",
                path.display(),
                panic_text(p)
            )))
        }
    };
    let mut version = parse_version(&build_info);
    if version == "unknown" {
        version = version_from_file_name(&path).unwrap_or(version);
    }
    let info = RuntimeInfo {
        library: path,
        source,
        version,
        build_info,
        available_providers: catch_unwind(providers).unwrap_or_default(),
    };
    *guard = Some(Loaded {
        env,
        info: info.clone(),
    });
    Ok(info)
}

fn env() -> Result<Environment> {
    let guard = RUNTIME.lock().unwrap_or_else(|e| e.into_inner());
    guard
        .as_ref()
        .map(|l| l.env.clone())
        .ok_or_else(|| Error::Runtime(format!("ONNX Runtime is not initialised; {FIX_HINT}")))
}

/// Create a session for a model file with the configured provider and thread count. CUDA is
/// used when configured and available; otherwise CPU with a warning.
pub fn session(cfg: &RuntimeConfig, model: &Path) -> Result<Session> {
    init(cfg)?;
    let env = env()?;
    let ctx = |e: &dyn std::fmt::Display| Error::Model(format!("{}: {e}", model.display()));
    let base = || -> Result<ort::session::builder::SessionBuilder> {
        let mut b = Session::builder(&env).map_err(|e| ctx(&e))?;
        b = b
            .with_optimization_level(GraphOptimizationLevel::Level3)
            .unwrap_or_else(|e| e.recover());
        if cfg.intra_threads > 0 {
            b = b
                .with_intra_threads(cfg.intra_threads)
                .map_err(|e| ctx(&e))?;
            b = b.with_inter_threads(1).unwrap_or_else(|e| e.recover());
        }
        Ok(b)
    };
    if cfg.execution_provider == ExecProvider::Cuda {
        if matches!(ort::ep::CUDA::is_available(), Ok(true)) {
            let attempt = base().and_then(|b| {
                b.with_execution_providers([ort::ep::CUDA::default().build().error_on_failure()])
                    .map_err(|e| ctx(&e))?
                    .commit_from_file(model)
                    .map_err(|e| ctx(&e))
            });
            match attempt {
                Ok(s) => return Ok(s),
                Err(e) => {
                    tracing::warn!("CUDA execution provider failed ({e}); falling back to CPU")
                }
            }
        } else {
            tracing::warn!(
                "execution_provider = \"cuda\" but this ONNX Runtime has no CUDA provider \
                 (install the onnxruntime-gpu library); using CPU"
            );
        }
    }
    base()?.commit_from_file(model).map_err(|e| ctx(&e))
}

/// ONNX Runtime's log messages as `tracing` events (target `onnxruntime`): its errors are
/// warnings for the daemon (the caller sees the failed call and says what it means), its
/// warnings and information are debug output.
fn ort_log(
    level: ort::logging::LogLevel,
    category: &str,
    _id: &str,
    location: &str,
    message: &str,
) {
    use ort::logging::LogLevel;
    match level {
        LogLevel::Error | LogLevel::Fatal => {
            tracing::warn!(target: "onnxruntime", category, location, "{message}")
        }
        LogLevel::Warning | LogLevel::Info => {
            tracing::debug!(target: "onnxruntime", category, location, "{message}")
        }
        LogLevel::Verbose => {
            tracing::trace!(target: "onnxruntime", category, location, "{message}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_is_parsed() {
        assert_eq!(
            parse_version(
                "ORT Build Info: git-branch=rel-1.31.1, git-commit-id=abc, build type=Release"
            ),
            "1.31.1"
        );
        assert_eq!(parse_version("garbage"), "unknown");
    }

    #[test]
    fn provider_names_parse() {
        assert_eq!("CUDA".parse::<ExecProvider>(), Ok(ExecProvider::Cuda));
        assert_eq!("".parse::<ExecProvider>(), Ok(ExecProvider::Cpu));
        assert!("tpu".parse::<ExecProvider>().is_err());
    }

    #[test]
    fn explicit_missing_library_is_an_error() {
        let cfg = RuntimeConfig {
            library: Some(PathBuf::from("/nonexistent/libonnxruntime.so")),
            ..Default::default()
        };
        let (p, src) = locate(&cfg).unwrap();
        let e = check_file(&p, src).unwrap_err().to_string();
        assert!(
            e.contains("install-onnxruntime.sh") && !e.contains('\n'),
            "{e}"
        );
    }

    #[test]
    fn non_library_is_rejected() {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), b"not a library").unwrap();
        let e = check_file(f.path(), "test").unwrap_err().to_string();
        assert!(e.contains("not a shared library"), "{e}");
    }
}
