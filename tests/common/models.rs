//! The model check of the daemon's model tests (`cli_analyze.rs`, `api_analyze.rs`), kept out of
//! `common/mod.rs` because emo-tui's `tui_tmux` shares that harness and must not depend on
//! emo-inference. Include it with `#[path = "common/models.rs"] mod models;` beside `mod common;`.
use std::path::Path;

use crate::common::{env_flag, skipped};

/// Whether `models/manifest.toml` in `models_dir` lists each of `names` and its file is there.
/// When one is missing the caller leaves out what needs it, and says so: `skipped` (counted by
/// packaging/test.sh), or a failure under `EMO_REQUIRE_DATASETS=1` (CI), where every shipped
/// model must be present.
pub fn have_models(models_dir: &Path, names: &[&str]) -> bool {
    let missing: Vec<String> = match emo_inference::manifest::Manifest::load(models_dir) {
        Err(e) => vec![format!("{}: {e}", models_dir.display())],
        Ok(m) => names
            .iter()
            .filter_map(|name| match m.models.get(*name) {
                None => Some(format!("manifest has no [models.{name}]")),
                Some(e) if !m.path_of(e).is_file() => {
                    Some(format!("{} is missing", m.path_of(e).display()))
                }
                Some(_) => None,
            })
            .collect(),
    };
    if missing.is_empty() {
        return true;
    }
    let reason = format!("models missing: {}", missing.join("; "));
    assert!(
        !env_flag("EMO_REQUIRE_DATASETS"),
        "EMO_REQUIRE_DATASETS is set: {reason}"
    );
    skipped(&reason);
    false
}
