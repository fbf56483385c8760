//! The configuration form of a source: `none`, `auto`, an index, a device name, `file:PATH`,
//! `ffmpeg:URL`.

use std::path::PathBuf;
use std::str::FromStr;

use crate::CaptureError;

/// Where a camera or microphone comes from (see the crate docs for every form).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub enum SourceSpec {
    /// No source of this kind.
    None,
    /// The first camera / the default microphone.
    #[default]
    Auto,
    /// A device by position (`/dev/videoN` for cameras).
    Index(u32),
    /// A device by name (for cameras also its path, `/dev/video2`; for microphones the ALSA
    /// device id such as `pulse` or `hw:CARD=PCH,DEV=0`, or its description).
    Name(String),
    /// A media file played at real-time pace; the source ends with the file.
    File(PathBuf),
    /// Any input of the `ffmpeg` CLI: `INPUT` or `OPTIONS… INPUT` (whitespace-separated input
    /// options such as `-f v4l2`, `-rtsp_transport tcp` or `-re -f lavfi`).
    Ffmpeg(String),
}

impl SourceSpec {
    /// True for [`SourceSpec::None`].
    pub fn is_none(&self) -> bool {
        matches!(self, SourceSpec::None)
    }
}

/// Words that would parse as something other than a name: such names are written `device:NAME`.
fn reserved(name: &str) -> bool {
    let l = name.trim().to_ascii_lowercase();
    l.is_empty()
        || name.trim() != name
        || l == "none"
        || l == "auto"
        || l.parse::<u32>().is_ok()
        || ["file:", "ffmpeg:", "device:"]
            .iter()
            .any(|p| l.starts_with(p))
}

impl FromStr for SourceSpec {
    type Err = CaptureError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let lower = t.to_ascii_lowercase();
        let after = |prefix: &str| t[prefix.len()..].trim().to_string();
        if t.is_empty() {
            return Err(CaptureError::InvalidSpec(
                "empty source (use none, auto, an index, a device name, file:PATH or ffmpeg:URL)"
                    .into(),
            ));
        }
        Ok(match lower.as_str() {
            "none" => SourceSpec::None,
            "auto" => SourceSpec::Auto,
            _ if lower.starts_with("file:") => {
                let p = after("file:");
                if p.is_empty() {
                    return Err(CaptureError::InvalidSpec("file: needs a path".into()));
                }
                SourceSpec::File(PathBuf::from(p))
            }
            _ if lower.starts_with("ffmpeg:") => {
                let u = after("ffmpeg:");
                if u.is_empty() {
                    return Err(CaptureError::InvalidSpec("ffmpeg: needs an input".into()));
                }
                SourceSpec::Ffmpeg(u)
            }
            _ if lower.starts_with("device:") => {
                let n = after("device:");
                if n.is_empty() {
                    return Err(CaptureError::InvalidSpec("device: needs a name".into()));
                }
                SourceSpec::Name(n)
            }
            _ => match t.parse::<u32>() {
                Ok(i) => SourceSpec::Index(i),
                Err(_) => SourceSpec::Name(t.to_string()),
            },
        })
    }
}

impl std::fmt::Display for SourceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SourceSpec::None => f.write_str("none"),
            SourceSpec::Auto => f.write_str("auto"),
            SourceSpec::Index(i) => write!(f, "{i}"),
            SourceSpec::Name(n) if reserved(n) => write!(f, "device:{n}"),
            SourceSpec::Name(n) => f.write_str(n),
            SourceSpec::File(p) => write!(f, "file:{}", p.display()),
            SourceSpec::Ffmpeg(u) => write!(f, "ffmpeg:{u}"),
        }
    }
}

impl serde::Serialize for SourceSpec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for SourceSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = SourceSpec;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("none, auto, an index, a device name, file:PATH or ffmpeg:URL")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<SourceSpec, E> {
                v.parse().map_err(E::custom)
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<SourceSpec, E> {
                u32::try_from(v)
                    .map(SourceSpec::Index)
                    .map_err(|_| E::custom("device index out of range"))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<SourceSpec, E> {
                u32::try_from(v)
                    .map(SourceSpec::Index)
                    .map_err(|_| E::custom("device index out of range"))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_parses() {
        let p = |s: &str| s.parse::<SourceSpec>().unwrap();
        assert_eq!(p("none"), SourceSpec::None);
        assert_eq!(p(" NONE "), SourceSpec::None);
        assert_eq!(p("auto"), SourceSpec::Auto);
        assert_eq!(p("Auto"), SourceSpec::Auto);
        assert_eq!(p("0"), SourceSpec::Index(0));
        assert_eq!(p("12"), SourceSpec::Index(12));
        assert_eq!(
            p("file:/tmp/a b.mp4"),
            SourceSpec::File("/tmp/a b.mp4".into())
        );
        assert_eq!(
            p("ffmpeg:rtsp://cam.local/stream"),
            SourceSpec::Ffmpeg("rtsp://cam.local/stream".into())
        );
        assert_eq!(
            p("ffmpeg:-f v4l2 /dev/video0"),
            SourceSpec::Ffmpeg("-f v4l2 /dev/video0".into())
        );
        assert_eq!(
            p("HD Webcam C615"),
            SourceSpec::Name("HD Webcam C615".into())
        );
        assert_eq!(p("default"), SourceSpec::Name("default".into()));
        assert_eq!(
            p("hw:CARD=PCH,DEV=0"),
            SourceSpec::Name("hw:CARD=PCH,DEV=0".into())
        );
        assert_eq!(p("device:auto"), SourceSpec::Name("auto".into()));
        for bad in ["", "  ", "file:", "ffmpeg: ", "device:"] {
            assert!(bad.parse::<SourceSpec>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn display_round_trips() {
        for s in [
            SourceSpec::None,
            SourceSpec::Auto,
            SourceSpec::Index(3),
            SourceSpec::Name("USB Camera".into()),
            SourceSpec::Name("pulse".into()),
            SourceSpec::Name("auto".into()),
            SourceSpec::Name("7".into()),
            SourceSpec::Name("file:x".into()),
            SourceSpec::Name(" padded".into()),
            SourceSpec::File("/data/clip.mp4".into()),
            SourceSpec::Ffmpeg("-re -f lavfi testsrc".into()),
        ] {
            let text = s.to_string();
            let back: SourceSpec = text.parse().unwrap();
            if let SourceSpec::Name(n) = &s {
                // Names with surrounding blanks come back trimmed; everything else exactly.
                if n.trim() != n {
                    assert_eq!(back, SourceSpec::Name(n.trim().into()));
                    continue;
                }
            }
            assert_eq!(back, s, "{text}");
        }
        assert_eq!(SourceSpec::Name("auto".into()).to_string(), "device:auto");
    }

    #[test]
    fn serde_uses_the_text_form() {
        let s: SourceSpec = serde_json::from_str("\"file:/x.mp4\"").unwrap();
        assert_eq!(s, SourceSpec::File("/x.mp4".into()));
        let s: SourceSpec = serde_json::from_str("2").unwrap();
        assert_eq!(s, SourceSpec::Index(2));
        assert_eq!(
            serde_json::to_string(&SourceSpec::Auto).unwrap(),
            "\"auto\""
        );
    }
}
