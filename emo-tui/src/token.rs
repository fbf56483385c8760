//! The saved login: `token.json` in the user's config dir (XDG: `~/.config/emo/`), mode 0600.
//! `EMO_CONFIG_DIR` overrides the directory (tests, several profiles).

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedToken {
    pub server: String,
    pub username: String,
    pub token: String,
    pub expires_at: DateTime<Utc>,
}

impl SavedToken {
    /// Usable for `server` at `now`.
    pub fn valid_for(&self, server: &str, now: DateTime<Utc>) -> bool {
        self.server.trim_end_matches('/') == server.trim_end_matches('/') && self.expires_at > now
    }
}

/// The config directory: `$EMO_CONFIG_DIR`, else the platform's (XDG) config dir + `emo`.
pub fn config_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("EMO_CONFIG_DIR") {
        if !d.is_empty() {
            return Some(PathBuf::from(d));
        }
    }
    directories::ProjectDirs::from("", "", "emo").map(|p| p.config_dir().to_path_buf())
}

pub fn token_path() -> Option<PathBuf> {
    config_dir().map(|d| d.join("token.json"))
}

pub fn load(path: &Path) -> Option<SavedToken> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}

/// Writes the token with mode 0600 (the file is created private; an existing file is tightened).
pub fn save(path: &Path, t: &SavedToken) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let json = serde_json::to_string_pretty(t).map_err(std::io::Error::other)?;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    f.write_all(json.as_bytes())?;
    f.sync_all()
}

pub fn remove(path: &Path) {
    let _ = std::fs::remove_file(path);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saves_private_and_loads_back() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/token.json");
        let t = SavedToken {
            server: "http://127.0.0.1:7878/".into(),
            username: "ann".into(),
            token: "secret".into(),
            expires_at: "2030-01-01T00:00:00Z".parse().unwrap(),
        };
        save(&p, &t).unwrap();
        assert_eq!(load(&p).unwrap(), t);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let now: DateTime<Utc> = "2029-01-01T00:00:00Z".parse().unwrap();
        assert!(t.valid_for("http://127.0.0.1:7878", now));
        assert!(!t.valid_for("http://other:7878", now));
        assert!(!t.valid_for(
            "http://127.0.0.1:7878",
            "2031-01-01T00:00:00Z".parse().unwrap()
        ));
        remove(&p);
        assert!(load(&p).is_none());
    }
}
