//! What a session's `sources` may name. Beside the configuration that resolves the defaults
//! (`capture.*`), below both it and the capture code that opens them, so neither imports the other
//! for it.

/// What a session's `sources` may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Camera,
    Microphone,
    /// Samples posted over the API by a client that captures elsewhere.
    Remote,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Camera => "camera",
            Source::Microphone => "microphone",
            Source::Remote => "remote",
        }
    }
}

impl std::str::FromStr for Source {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "camera" => Ok(Source::Camera),
            "microphone" => Ok(Source::Microphone),
            "remote" => Ok(Source::Remote),
            // At most 40 characters of what was sent: the error must not echo a large input.
            other => Err(format!(
                "unknown source `{}{}` (camera, microphone or remote)",
                other.chars().take(40).collect::<String>().escape_debug(),
                if other.chars().nth(40).is_some() {
                    "…"
                } else {
                    ""
                }
            )),
        }
    }
}
