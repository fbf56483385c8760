//! `emod doctor`: one line per thing the daemon needs, so an admin sees at a glance what is
//! wrong on a machine (and a script sees it in the exit status). The checks use the same code as
//! the daemon (configuration loader, store, ONNX Runtime loader, device discovery), not
//! re-implementations that could disagree with it.

use std::path::Path;
use std::process::ExitCode;

use diesel_migrations::MigrationHarness;
use emo_inference::manifest::{self, Manifest};
use emo_inference::runtime;

use crate::config::Config;
use crate::shared_engine::{models_dir, runtime_config};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Free space below this many MiB in the data directory is a failure.
    #[arg(long, value_name = "MIB", default_value_t = 500)]
    pub min_free_mib: u64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Status {
    Ok,
    Warn,
    Fail,
}

struct Report {
    failed: Vec<&'static str>,
}

impl Report {
    fn line(&mut self, check: &'static str, status: Status, text: impl std::fmt::Display) {
        let word = match status {
            Status::Ok => "ok",
            Status::Warn => "WARN",
            Status::Fail => "FAILED",
        };
        println!("{check:<12} {word:<7} {text}");
        if status == Status::Fail {
            self.failed.push(check);
        }
    }
}

pub fn run(args: Args, config_file: Option<&Path>) -> anyhow::Result<ExitCode> {
    let mut r = Report { failed: Vec::new() };
    let config = match Config::load(config_file) {
        Ok(c) => {
            let from = match config_file {
                Some(p) => p.display().to_string(),
                None => "defaults and EMO_* variables".into(),
            };
            r.line("config", Status::Ok, format!("valid ({from})"));
            c
        }
        Err(e) => {
            r.line("config", Status::Fail, format!("{e:#}"));
            println!("(the other checks need a valid configuration)");
            return Ok(ExitCode::FAILURE);
        }
    };
    database(&mut r, &config);
    onnx_and_models(&mut r, &config);
    devices(&mut r, &config);
    spool(&mut r, &config);
    disk(&mut r, &config, args.min_free_mib);
    if r.failed.is_empty() {
        println!("all checks passed");
        Ok(ExitCode::SUCCESS)
    } else {
        println!("failed: {}", r.failed.join(", "));
        Ok(ExitCode::FAILURE)
    }
}

fn database(r: &mut Report, config: &Config) {
    if config.database.url.is_empty() {
        match config.sqlite_path() {
            // Opening would create an empty database: say what is missing instead.
            Ok(p) if !p.is_file() => {
                return r.line(
                    "database",
                    Status::Fail,
                    format!(
                        "sqlite:{} does not exist yet (`emod migrate` or the first `emod serve` creates it)",
                        p.display()
                    ),
                );
            }
            Ok(_) => {}
            Err(e) => return r.line("database", Status::Fail, format!("{e:#}")),
        }
    }
    let store = match crate::store::Store::open(config) {
        Ok(s) => s,
        Err(e) => return r.line("database", Status::Fail, format!("unreachable: {e:#}")),
    };
    if let Err(e) = store.ping() {
        return r.line(
            "database",
            Status::Fail,
            format!("{} unreachable: {e}", store.describe),
        );
    }
    let pending = match &store.db {
        crate::store::Db::Pg(pool) => pool.get().map_err(|e| e.to_string()).and_then(|mut c| {
            let shared = c
                .pending_migrations(crate::store::MIGRATIONS)
                .map_err(|e| e.to_string())?;
            let own = c
                .pending_migrations(crate::store::POSTGRES_MIGRATIONS)
                .map_err(|e| e.to_string())?;
            Ok(shared.len() + own.len())
        }),
        crate::store::Db::Sqlite(pool) => {
            pool.get().map_err(|e| e.to_string()).and_then(|mut c| {
                c.pending_migrations(crate::store::MIGRATIONS)
                    .map(|v| v.len())
                    .map_err(|e| e.to_string())
            })
        }
    };
    match pending {
        Ok(0) => r.line(
            "database",
            Status::Ok,
            format!("{} reachable, schema up to date", store.describe),
        ),
        Ok(n) => r.line(
            "database",
            Status::Fail,
            format!(
                "{} reachable but {n} migration(s) pending (`emod migrate` or a restart applies them)",
                store.describe
            ),
        ),
        Err(e) => r.line(
            "database",
            Status::Fail,
            format!("{}: cannot read the migrations: {e}", store.describe),
        ),
    }
}

fn onnx_and_models(r: &mut Report, config: &Config) {
    let rt = match runtime_config(config) {
        Ok(rt) => rt,
        Err(e) => return r.line("onnxruntime", Status::Fail, format!("{e:#}")),
    };
    match runtime::init(&rt) {
        Ok(info) => r.line(
            "onnxruntime",
            Status::Ok,
            format!("{} ({})", info.version, info.library.display()),
        ),
        Err(e) => {
            r.line("onnxruntime", Status::Fail, e);
            return r.line(
                "models",
                Status::Fail,
                "not checked: ONNX Runtime does not load",
            );
        }
    }
    let dir = models_dir(config);
    let m = match Manifest::load(&dir) {
        Ok(m) => m,
        Err(e) => return r.line("models", Status::Fail, format!("{}: {e}", dir.display())),
    };
    let mut problems = Vec::new();
    for needed in ["face_detector", "expression", "speech"] {
        if !m.models.contains_key(needed) {
            problems.push(format!("{needed} not in the manifest"));
        }
    }
    for name in m.models.keys() {
        if let Err(e) =
            manifest::verify_file(&m, name).and_then(|p| runtime::session(&rt, &p).map(|_| ()))
        {
            problems.push(format!("{name}: {e}"));
        }
    }
    if problems.is_empty() {
        r.line(
            "models",
            Status::Ok,
            format!("{} models load ({})", m.models.len(), dir.display()),
        );
    } else {
        r.line(
            "models",
            Status::Fail,
            format!("{}: {}", dir.display(), problems.join("; ")),
        );
    }
}

fn devices(r: &mut Report, config: &Config) {
    use emo_capture::SourceSpec;
    let d = crate::capture::devices(&config.capture, false);
    let mut status = Status::Ok;
    let mut parts = vec![format!(
        "{} camera(s), {} microphone(s)",
        d.cameras.len(),
        d.microphones.len()
    )];
    for (what, c) in [("camera", &d.camera), ("microphone", &d.microphone)] {
        let spec = c.configured.trim();
        let camera = what == "camera";
        // The daemon resolves an explicit device only when a session opens it: look for it now.
        let present = match spec.parse::<SourceSpec>() {
            Ok(SourceSpec::None) => {
                parts.push(format!("capture.{what} = none"));
                continue;
            }
            Ok(SourceSpec::Auto) => c.resolved.is_some(),
            Ok(SourceSpec::Index(i)) if camera => d.cameras.iter().any(|c| c.index == i),
            Ok(SourceSpec::Index(i)) => (i as usize) < d.microphones.len(),
            Ok(SourceSpec::Name(n)) if camera => {
                d.cameras.iter().any(|c| c.name == n) || Path::new(&n).exists()
            }
            Ok(SourceSpec::Name(n)) => d.microphones.iter().any(|m| m.name.contains(&n)),
            Ok(SourceSpec::File(p)) => p.is_file(),
            // ffmpeg inputs (network cameras, ...) can only be checked by opening them.
            Ok(_) => true,
            Err(_) => false,
        };
        match (present, spec) {
            (true, _) => parts.push(format!(
                "capture.{what} -> {}",
                c.resolved.as_deref().unwrap_or(spec)
            )),
            // `auto` with nothing attached is normal on a server that only stores results.
            (false, "auto") => {
                if status == Status::Ok {
                    status = Status::Warn;
                }
                parts.push(format!(
                    "capture.{what} = auto finds none (live sessions cannot use one)"
                ));
            }
            (false, _) => {
                status = Status::Fail;
                parts.push(format!("capture.{what} = {spec:?} is not present"));
            }
        }
    }
    r.line("devices", status, parts.join("; "));
}

fn spool(r: &mut Report, config: &Config) {
    let dir = match config.spool_dir() {
        Ok(d) => d,
        Err(e) => return r.line("spool", Status::Fail, format!("{e:#}")),
    };
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return r.line("spool", Status::Ok, format!("empty ({})", dir.display()))
        }
        Err(e) => {
            return r.line(
                "spool",
                Status::Fail,
                format!("cannot read {}: {e}", dir.display()),
            )
        }
    };
    let (mut files, mut samples) = (0usize, 0usize);
    for e in entries.flatten() {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "jsonl") {
            files += 1;
            samples += std::fs::read(&p)
                .map(|b| b.iter().filter(|&&c| c == b'\n').count())
                .unwrap_or(0);
        }
    }
    if files == 0 {
        r.line("spool", Status::Ok, format!("empty ({})", dir.display()));
    } else {
        // Not a failure: the daemon writes them at its next start once the database answers.
        r.line(
            "spool",
            Status::Warn,
            format!(
                "{samples} sample(s) in {files} file(s) wait in {} (written at the next start)",
                dir.display()
            ),
        );
    }
}

fn disk(r: &mut Report, config: &Config, min_free_mib: u64) {
    let dir = if config.database.url.is_empty() {
        config
            .sqlite_path()
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf))
    } else {
        config.spool_dir().ok()
    };
    let Some(mut dir) = dir else {
        return r.line("disk", Status::Fail, "cannot determine the data directory");
    };
    // Not created yet: measure the file system it will be created on.
    while !dir.exists() {
        match dir.parent() {
            Some(p) if !p.as_os_str().is_empty() => dir = p.to_path_buf(),
            _ => {
                dir = ".".into();
                break;
            }
        }
    }
    // POSIX `df -P -k` (coreutils is part of every Debian system): no statvfs binding needed.
    let out = std::process::Command::new("df")
        .args(["-P", "-k", "--"])
        .arg(&dir)
        .output();
    let free_kib = out.ok().filter(|o| o.status.success()).and_then(|o| {
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .nth(1)
            .and_then(|l| {
                l.split_whitespace()
                    .nth(3)
                    .and_then(|v| v.parse::<u64>().ok())
            })
    });
    match free_kib {
        Some(kib) if kib / 1024 >= min_free_mib => r.line(
            "disk",
            Status::Ok,
            format!("{} MiB free in {}", kib / 1024, dir.display()),
        ),
        Some(kib) => r.line(
            "disk",
            Status::Fail,
            format!(
                "only {} MiB free in {} (below {min_free_mib} MiB)",
                kib / 1024,
                dir.display()
            ),
        ),
        None => r.line(
            "disk",
            Status::Fail,
            format!("cannot measure free space in {} (df)", dir.display()),
        ),
    }
}
