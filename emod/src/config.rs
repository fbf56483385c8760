//! Daemon configuration: documented defaults, an optional TOML file, then `EMO_*` environment
//! overrides (highest precedence), so a systemd unit, a container and a developer shell can each
//! configure the daemon the way that suits them.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub auth: AuthConfig,
    pub writer: WriterConfig,
    pub privacy: PrivacyConfig,
    pub log: LogConfig,
    pub models: ModelsConfig,
    pub onnxruntime: OnnxRuntimeConfig,
    pub analyze: AnalyzeConfig,
    pub capture: CaptureConfig,
}

/// This daemon's camera and microphone (`[capture]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CaptureConfig {
    /// `auto` (first device), `none`, a device index or name, `file:PATH` (a video file played
    /// at real-time pace) or `ffmpeg:URL` (anything ffmpeg opens: RTSP/HTTP cameras, v4l2).
    pub camera: String,
    /// Same forms as `camera`; `file:PATH` plays the file's audio track.
    pub microphone: String,
    /// Frames analysed per second.
    pub fps: f64,
    pub width: u32,
    pub height: u32,
    /// How face and voice are fused per second: `calibrated` or `mode` (majority vote).
    pub fusion: String,
    /// Stop the session when every source has ended (a `file:` source played to its end). A
    /// lost device never ends: it is reopened with back-off as before.
    pub stop_when_sources_end: bool,
}

impl Default for CaptureConfig {
    fn default() -> Self {
        CaptureConfig {
            camera: "auto".into(),
            microphone: "auto".into(),
            fps: 10.0,
            width: 640,
            height: 480,
            fusion: "calibrated".into(),
            stop_when_sources_end: true,
        }
    }
}

impl CaptureConfig {
    /// The fusion strategy (validated at load).
    pub fn strategy(&self) -> emo_inference::fusion::Strategy {
        self.fusion.parse().unwrap_or_default()
    }

    /// The sources a session that names none gets: the configured ones that are not `none`,
    /// or `remote` when both are `none`.
    pub fn default_sources(&self) -> Vec<emo_api_types::SessionSource> {
        use emo_api_types::SessionSource;
        let mut v = Vec::new();
        if self.camera.trim() != "none" {
            v.push(SessionSource::Camera);
        }
        if self.microphone.trim() != "none" {
            v.push(SessionSource::Microphone);
        }
        if v.is_empty() {
            v.push(SessionSource::Remote);
        }
        v
    }
}

/// Bounds on `POST /api/v1/analyze`: a small upload can declare a huge picture or decode to hours
/// of audio, so each is capped before the memory is spent, and so are time and concurrency.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AnalyzeConfig {
    /// Longest audio or video accepted, in seconds of media time.
    pub max_media_seconds: u64,
    /// Largest image or video frame accepted, in pixels (width × height).
    pub max_image_pixels: u64,
    /// Longest one request may take, in seconds; past it the work is cancelled.
    pub timeout_secs: u64,
    /// Analyses that may run at once; more get 429 `too_many_requests`.
    pub max_concurrent: usize,
    /// Slowest average upload accepted after the first 10 s, in bytes per second; a slower body
    /// is dropped (its analysis slot freed) with 422 (0 = no minimum).
    pub min_upload_bytes_per_sec: u64,
}

impl Default for AnalyzeConfig {
    fn default() -> Self {
        AnalyzeConfig {
            max_media_seconds: 600,
            max_image_pixels: 40_000_000,
            timeout_secs: 120,
            max_concurrent: 2,
            min_upload_bytes_per_sec: 8192,
        }
    }
}

impl AnalyzeConfig {
    /// The engine's limits for files that come from the network.
    pub fn limits(&self) -> emo_inference::MediaLimits {
        emo_inference::MediaLimits {
            max_seconds: self.max_media_seconds as f64,
            max_pixels: self.max_image_pixels,
            ffmpeg_deadline: std::time::Duration::from_secs(self.timeout_secs.max(1)),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address the HTTP API listens on.
    pub listen: String,
    /// Largest accepted JSON body, in bytes.
    pub json_limit_bytes: usize,
    /// Largest accepted upload (`/api/v1/analyze`), in bytes.
    pub upload_limit_bytes: usize,
    /// HTTP worker threads (0 = number of CPUs).
    pub workers: usize,
    /// Name of this daemon in the shared database (default: host name). On start it marks its
    /// own sessions left `running` by a crash as `interrupted`.
    pub node_name: String,
    /// Longest time, in seconds, a client may take to send a request body; past it the request
    /// fails and its connection is closed (slow bodies otherwise hold connections until file
    /// descriptors run out). 0 = no limit.
    pub body_timeout_secs: u64,
    /// Who may read `/metrics`: `true` anyone who reaches the port, `false` only an admin's
    /// token, `auto` (default) anyone when `listen` is a loopback address, else admins only
    /// (the capture metrics tell whether someone is being captured right now).
    pub metrics_public: MetricsPublic,
    /// Live streams (`/sessions/{id}/live`) one user may hold open; more get 429 (0 = no limit).
    pub max_live_streams_per_user: usize,
    /// Live streams open in all; lowered at start so that 256 descriptors stay free under the
    /// process's open-files limit (0 = as many as that allows).
    pub max_live_streams: usize,
    /// Exports one user may run at once; more get 429 (0 = no limit).
    pub max_exports_per_user: usize,
    /// Exports running at once in all (0 = no limit).
    pub max_exports: usize,
    /// An export whose client reads nothing for this many seconds is ended (its buffers freed).
    pub export_stall_secs: u64,
}

/// `server.metrics_public`: a boolean or `"auto"`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum MetricsPublic {
    #[default]
    Auto,
    Yes,
    No,
}

impl Serialize for MetricsPublic {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            MetricsPublic::Auto => s.serialize_str("auto"),
            MetricsPublic::Yes => s.serialize_bool(true),
            MetricsPublic::No => s.serialize_bool(false),
        }
    }
}

impl<'de> Deserialize<'de> for MetricsPublic {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bool(bool),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Bool(true) => Ok(MetricsPublic::Yes),
            Raw::Bool(false) => Ok(MetricsPublic::No),
            // Environment variables arrive as text.
            Raw::Text(t) => match t.trim().to_ascii_lowercase().as_str() {
                "auto" => Ok(MetricsPublic::Auto),
                "1" | "true" | "yes" | "on" => Ok(MetricsPublic::Yes),
                "0" | "false" | "no" | "off" => Ok(MetricsPublic::No),
                _ => Err(serde::de::Error::custom(format!(
                    "server.metrics_public: expected true, false or auto, not `{}`",
                    t.escape_debug()
                ))),
            },
        }
    }
}

impl ServerConfig {
    /// Whether `/metrics` answers without an admin's token.
    pub fn metrics_are_public(&self) -> bool {
        match self.metrics_public {
            MetricsPublic::Yes => true,
            MetricsPublic::No => false,
            MetricsPublic::Auto => listens_on_loopback(&self.listen),
        }
    }
}

/// Whether `listen` (`ADDR:PORT`, checked at load) only reaches this machine.
fn listens_on_loopback(listen: &str) -> bool {
    listen
        .parse::<std::net::SocketAddr>()
        .is_ok_and(|a| a.ip().is_loopback())
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `postgres://…` to use PostgreSQL; empty = embedded SQLite.
    pub url: String,
    /// SQLite file; empty = `$XDG_DATA_HOME/emo/emo.sqlite3`.
    pub sqlite_path: String,
    /// Connections in the pool.
    pub pool_size: u32,
    /// Seconds to wait for a connection before reporting the database unreachable.
    pub connect_timeout_secs: u64,
    /// PostgreSQL: longest any one statement may run before the server cancels it (0 = no
    /// limit), so a few expensive reads cannot hold the pool's connections for long. The
    /// retention purge is exempt.
    pub statement_timeout_secs: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Let agents create their own account with `POST /api/v1/auth/register`.
    pub allow_register: bool,
    /// Lifetime of a login token, in hours.
    pub token_ttl_hours: u64,
    /// Lifetime of a login token in seconds; when not 0 it replaces `token_ttl_hours` (short
    /// lifetimes for kiosks, and tests that watch a token expire).
    pub token_ttl_secs: u64,
    /// Failed logins for one username from one client address before further attempts of that
    /// pair are refused (per username alone, anybody could lock anybody out).
    pub max_failed_logins: u32,
    /// Failed logins from one client address before it is refused (higher: clients behind a
    /// reverse proxy share an address, and one person's typos must not lock everybody out).
    pub max_failed_logins_per_address: u32,
    /// How long, in seconds, failures are remembered and the first lockout lasts; each further
    /// lockout of the same username and address (or address) lasts twice as long as the last.
    pub lockout_secs: u64,
    /// The longest lockout, in seconds (the back-off stops doubling there); also how long a
    /// lockout history is remembered without failures.
    pub lockout_max_secs: u64,
    /// How long a verified token is trusted without asking the database again (also how long
    /// it keeps working while the database is down).
    pub token_cache_secs: u64,
    /// Minimum password length.
    pub min_password_len: usize,
    /// Self-registrations (attempts) per client address and hour; past it 429 (0 = no limit).
    pub max_registrations_per_address: u32,
    /// Backdated session starts (`started_at` in the past, each one audited) per user and hour;
    /// past it 429 (0 = no limit): an agent cannot flood the audit log with them.
    pub max_backdated_sessions_per_hour: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WriterConfig {
    /// Samples per INSERT batch.
    pub batch_size: usize,
    /// Longest time, in milliseconds, a sample waits before being written.
    pub flush_interval_ms: u64,
    /// Samples kept in memory while the database is unreachable; past this the API answers
    /// 503 `storage_unavailable` instead of dropping data.
    pub spool_capacity: usize,
    /// Where samples still unwritten at shutdown are saved (replayed at the next start);
    /// empty = `spool/` in the data directory.
    pub spool_dir: String,
    /// Concurrent write transactions on PostgreSQL (each a writer thread and a pool
    /// connection, each owning a fixed share of the users). SQLite always writes with one.
    pub connections: usize,
    /// Most samples one user may have waiting to be written (0 = no per-user limit); past it
    /// that user's posts get 429 `too_many_requests`, so one agent cannot fill the spool the
    /// others share.
    pub user_quota: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PrivacyConfig {
    /// Sessions and samples older than this many days are deleted (0 = keep forever).
    pub retention_days: u32,
    /// Record admin reads of other users' data in the audit log.
    pub audit_admin_reads: bool,
    /// Oldest `started_at` accepted for uploads of earlier recordings, in hours before now
    /// (samples are never accepted before their session's start, i.e. before consent).
    pub max_backdate_hours: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `text` or `json`.
    pub format: String,
    /// tracing filter, e.g. `info` or `emod=debug,actix_web=info` (`RUST_LOG` also works).
    pub level: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelsConfig {
    /// Directory holding `manifest.toml` and the `.onnx` files; empty = search the usual places.
    pub dir: String,
    /// `auto` (time every precision the manifest ships on this CPU, run the fastest), `int8` or
    /// `fp32`.
    pub expression_precision: String,
}

impl Default for ModelsConfig {
    fn default() -> Self {
        Self {
            dir: String::new(),
            expression_precision: "auto".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OnnxRuntimeConfig {
    /// Path to `libonnxruntime.so`; empty = `ORT_DYLIB_PATH`, then the install location.
    pub library: String,
    /// `cpu` or `cuda` (falls back to CPU with a warning when CUDA is unavailable).
    pub execution_provider: String,
    /// Threads per inference session (0 = let ONNX Runtime decide).
    pub intra_threads: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:7878".into(),
            json_limit_bytes: 4 * 1024 * 1024,
            upload_limit_bytes: 64 * 1024 * 1024,
            workers: 0,
            node_name: String::new(),
            body_timeout_secs: 60,
            metrics_public: MetricsPublic::Auto,
            max_live_streams_per_user: 8,
            max_live_streams: 512,
            max_exports_per_user: 2,
            max_exports: 16,
            export_stall_secs: 60,
        }
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            url: String::new(),
            sqlite_path: String::new(),
            pool_size: 8,
            connect_timeout_secs: 5,
            statement_timeout_secs: 30,
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            allow_register: true,
            token_ttl_hours: 12,
            token_ttl_secs: 0,
            max_failed_logins: 5,
            max_failed_logins_per_address: 50,
            lockout_secs: 300,
            lockout_max_secs: 86_400,
            token_cache_secs: 30,
            min_password_len: 8,
            max_registrations_per_address: 20,
            max_backdated_sessions_per_hour: 30,
        }
    }
}

impl Default for WriterConfig {
    fn default() -> Self {
        WriterConfig {
            batch_size: 2000,
            flush_interval_ms: 250,
            spool_capacity: 1_000_000,
            spool_dir: String::new(),
            connections: 2,
            user_quota: 100_000,
        }
    }
}

impl AuthConfig {
    /// A login token's lifetime: `token_ttl_secs` when set, else `token_ttl_hours`.
    pub fn token_ttl_ms(&self) -> i64 {
        if self.token_ttl_secs > 0 {
            (self.token_ttl_secs as i64).saturating_mul(1000)
        } else {
            (self.token_ttl_hours as i64).saturating_mul(3_600_000)
        }
    }
}

impl Default for PrivacyConfig {
    fn default() -> Self {
        PrivacyConfig {
            retention_days: 90,
            audit_admin_reads: true,
            max_backdate_hours: 720,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: "text".into(),
            level: "info".into(),
        }
    }
}

impl Default for OnnxRuntimeConfig {
    fn default() -> Self {
        OnnxRuntimeConfig {
            library: String::new(),
            execution_provider: "cpu".into(),
            intra_threads: 1,
        }
    }
}

/// Short aliases kept for convenience; every key also has the long form `EMO_<SECTION>_<KEY>`.
const ENV_ALIASES: &[(&str, &str, &str)] = &[
    ("EMO_LISTEN", "server", "listen"),
    ("EMO_DATABASE_URL", "database", "url"),
    ("EMO_SQLITE_PATH", "database", "sqlite_path"),
    ("EMO_ALLOW_REGISTER", "auth", "allow_register"),
    ("EMO_MODELS_DIR", "models", "dir"),
    ("EMO_LOG", "log", "level"),
];

/// The commented default configuration printed by `emod config print-default`.
pub const DEFAULT_TOML: &str = include_str!("default_config.toml");

impl Config {
    /// Defaults ← file (if any) ← environment.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Config> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        Self::load_with_env(file, &env)
    }

    pub fn load_with_env(file: Option<&Path>, env: &[(String, String)]) -> anyhow::Result<Config> {
        let mut value = toml::Value::try_from(Config::default())?;
        let path = match file {
            Some(p) => Some(p.to_path_buf()),
            None => default_config_path().filter(|p| p.exists()),
        };
        if let Some(path) = path {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read config file {}", path.display()))?;
            let file_value: toml::Value = toml::from_str(&text)
                .with_context(|| format!("config file {} is not valid TOML", path.display()))?;
            // Validate the file alone first so unknown keys are reported with the file name.
            let _: Config = file_value.clone().try_into().with_context(|| {
                format!("config file {} has an invalid setting", path.display())
            })?;
            merge(&mut value, file_value);
        }
        apply_env(&mut value, env)?;
        let cfg: Config = value.try_into().context("invalid configuration")?;
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> anyhow::Result<()> {
        if let Err(e) = self
            .models
            .expression_precision
            .parse::<emo_inference::PrecisionPolicy>()
        {
            bail!("models.expression_precision: {e}");
        }
        if self.server.listen.parse::<std::net::SocketAddr>().is_err() {
            bail!(
                "server.listen `{}` is not an address like 127.0.0.1:7878",
                self.server.listen
            );
        }
        if !self.database.url.is_empty()
            && !self.database.url.starts_with("postgres://")
            && !self.database.url.starts_with("postgresql://")
        {
            bail!(
                "database.url must start with postgres:// (leave it empty for the embedded SQLite)"
            );
        }
        if !matches!(self.log.format.as_str(), "text" | "json") {
            bail!("log.format must be `text` or `json`");
        }
        if self.writer.batch_size == 0 || self.writer.spool_capacity == 0 {
            bail!("writer.batch_size and writer.spool_capacity must be positive");
        }
        if !(self.capture.fps > 0.0 && self.capture.fps <= 60.0) {
            bail!("capture.fps must be between 0 and 60");
        }
        if !(16..=4096).contains(&self.capture.width) || !(16..=4096).contains(&self.capture.height)
        {
            bail!("capture.width and capture.height must be between 16 and 4096");
        }
        self.capture
            .fusion
            .parse::<emo_inference::fusion::Strategy>()
            .map_err(|e| anyhow::anyhow!("capture.fusion: {e}"))?;
        for (k, v) in [
            ("camera", &self.capture.camera),
            ("microphone", &self.capture.microphone),
        ] {
            v.parse::<emo_capture::SourceSpec>().map_err(|e| {
                let shown = emo_capture::redact_secrets(v);
                anyhow::anyhow!("capture.{k} `{shown}`: {e}")
            })?;
        }
        if self.analyze.max_concurrent == 0 || self.analyze.timeout_secs == 0 {
            bail!("analyze.max_concurrent and analyze.timeout_secs must be positive");
        }
        if self.database.pool_size == 0 {
            bail!("database.pool_size must be positive");
        }
        if self.writer.connections == 0
            || self.writer.connections >= self.database.pool_size as usize
        {
            bail!(
                "writer.connections must be at least 1 and below database.pool_size ({}), which also serves the API",
                self.database.pool_size
            );
        }
        Ok(())
    }

    /// Where unwritten samples are saved at shutdown.
    pub fn spool_dir(&self) -> anyhow::Result<PathBuf> {
        if !self.writer.spool_dir.is_empty() {
            return Ok(PathBuf::from(&self.writer.spool_dir));
        }
        if !self.database.sqlite_path.is_empty() && self.database.url.is_empty() {
            let p = PathBuf::from(&self.database.sqlite_path);
            return Ok(p.parent().unwrap_or(Path::new(".")).join("spool"));
        }
        let dirs =
            project_dirs().context("cannot determine a data directory (set writer.spool_dir)")?;
        Ok(dirs.data_dir().join("spool"))
    }

    /// Where the measured model precision choice is remembered (beside the spool, in the data
    /// directory): it holds timings and CPU names, nothing about people.
    pub fn precision_cache_path(&self) -> Option<PathBuf> {
        let spool = self.spool_dir().ok()?;
        Some(spool.parent()?.join("model-precision.json"))
    }

    /// This daemon's name in `sessions.node`: the host name unless configured.
    pub fn node_name(&self) -> String {
        if !self.server.node_name.is_empty() {
            return self.server.node_name.clone();
        }
        std::fs::read_to_string("/etc/hostname")
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_else(|| "emod".into())
    }

    /// The SQLite file used when no PostgreSQL URL is configured.
    pub fn sqlite_path(&self) -> anyhow::Result<PathBuf> {
        if !self.database.sqlite_path.is_empty() {
            return Ok(PathBuf::from(&self.database.sqlite_path));
        }
        let dirs = project_dirs().context(
            "cannot determine a data directory (set HOME, XDG_DATA_HOME or database.sqlite_path)",
        )?;
        Ok(dirs.data_dir().join("emo.sqlite3"))
    }
}

fn project_dirs() -> Option<directories::ProjectDirs> {
    directories::ProjectDirs::from("", "", "emo")
}

/// `$XDG_CONFIG_HOME/emo/emod.toml`.
pub fn default_config_path() -> Option<PathBuf> {
    project_dirs().map(|d| d.config_dir().join("emod.toml"))
}

fn merge(base: &mut toml::Value, over: toml::Value) {
    match (base, over) {
        (toml::Value::Table(b), toml::Value::Table(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

fn apply_env(value: &mut toml::Value, env: &[(String, String)]) -> anyhow::Result<()> {
    let lookup = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let toml::Value::Table(sections) = value else {
        return Ok(());
    };
    for (section, table) in sections.iter_mut() {
        let toml::Value::Table(keys) = table else {
            continue;
        };
        for (key, slot) in keys.iter_mut() {
            let long = format!("EMO_{}_{}", section.to_uppercase(), key.to_uppercase());
            let alias = ENV_ALIASES
                .iter()
                .find(|(_, s, k)| s == section && k == key)
                .and_then(|(name, _, _)| lookup(name).map(|v| (name.to_string(), v)));
            let found = lookup(&long).map(|v| (long.clone(), v)).or(alias);
            if let Some((name, raw)) = found {
                *slot = parse_like(slot, &raw)
                    .with_context(|| format!("environment variable {name}=`{raw}`"))?;
            }
        }
    }
    Ok(())
}

fn parse_like(current: &toml::Value, raw: &str) -> anyhow::Result<toml::Value> {
    Ok(match current {
        toml::Value::String(_) => toml::Value::String(raw.to_string()),
        toml::Value::Integer(_) => {
            toml::Value::Integer(raw.trim().parse().context("expected an integer")?)
        }
        toml::Value::Float(_) => {
            toml::Value::Float(raw.trim().parse().context("expected a number")?)
        }
        toml::Value::Boolean(_) => {
            toml::Value::Boolean(match raw.trim().to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => true,
                "0" | "false" | "no" | "off" => false,
                _ => bail!("expected true or false"),
            })
        }
        other => bail!("cannot set a {} from the environment", other.type_str()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn metrics_are_public_by_default_only_on_loopback() {
        let server = |listen: &str, public: &str| {
            Config::load_with_env(
                None,
                &env(&[
                    ("EMO_LISTEN", listen),
                    ("EMO_SERVER_METRICS_PUBLIC", public),
                ]),
            )
            .unwrap()
            .server
            .metrics_are_public()
        };
        assert!(server("127.0.0.1:7878", "auto"));
        assert!(server("[::1]:7878", "auto"));
        assert!(!server("0.0.0.0:7878", "auto"));
        assert!(!server("10.1.2.3:7878", "auto"));
        assert!(server("0.0.0.0:7878", "true"));
        assert!(!server("127.0.0.1:7878", "false"));
        assert!(
            Config::load_with_env(None, &env(&[("EMO_SERVER_METRICS_PUBLIC", "maybe")])).is_err()
        );
    }

    #[test]
    fn printed_default_equals_builtin_default() {
        let parsed: Config = toml::from_str(DEFAULT_TOML).unwrap();
        assert_eq!(parsed, Config::default());
    }

    #[test]
    fn file_then_env_override() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "[server]\nlisten = \"127.0.0.1:9000\"\n[auth]\nallow_register = false\n",
        )
        .unwrap();
        let cfg = Config::load_with_env(Some(&path), &env(&[])).unwrap();
        assert_eq!(cfg.server.listen, "127.0.0.1:9000");
        assert!(!cfg.auth.allow_register);
        let cfg = Config::load_with_env(
            Some(&path),
            &env(&[
                ("EMO_LISTEN", "0.0.0.0:1234"),
                ("EMO_WRITER_SPOOL_CAPACITY", "17"),
            ]),
        )
        .unwrap();
        assert_eq!(cfg.server.listen, "0.0.0.0:1234");
        assert_eq!(cfg.writer.spool_capacity, 17);
        // The long form wins over the alias.
        let cfg = Config::load_with_env(
            Some(&path),
            &env(&[
                ("EMO_LISTEN", "0.0.0.0:1"),
                ("EMO_SERVER_LISTEN", "0.0.0.0:2"),
            ]),
        )
        .unwrap();
        assert_eq!(cfg.server.listen, "0.0.0.0:2");
    }

    #[test]
    fn bad_settings_name_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "[server]\nlistne = \"x\"\n").unwrap();
        let err = format!(
            "{:#}",
            Config::load_with_env(Some(&path), &env(&[])).unwrap_err()
        );
        assert!(err.contains("c.toml") && err.contains("listne"), "{err}");
        let err = format!(
            "{:#}",
            Config::load_with_env(None, &env(&[("EMO_WRITER_BATCH_SIZE", "many")])).unwrap_err()
        );
        assert!(err.contains("EMO_WRITER_BATCH_SIZE"), "{err}");
        // Writer connections come out of the pool, which must keep one for the API.
        for bad in ["0", "8"] {
            let err = format!(
                "{:#}",
                Config::load_with_env(None, &env(&[("EMO_WRITER_CONNECTIONS", bad)])).unwrap_err()
            );
            assert!(err.contains("writer.connections"), "{err}");
        }
        let cfg = Config::load_with_env(
            None,
            &env(&[
                ("EMO_WRITER_CONNECTIONS", "3"),
                ("EMO_DATABASE_POOL_SIZE", "4"),
            ]),
        )
        .unwrap();
        assert_eq!((cfg.writer.connections, cfg.database.pool_size), (3, 4));
        let err = format!(
            "{:#}",
            Config::load_with_env(None, &env(&[("EMO_DATABASE_URL", "mysql://x")])).unwrap_err()
        );
        assert!(err.contains("postgres://"), "{err}");
    }
}
