//! What is plugged in, and what a configured source resolves to now.

use crate::{alsa, v4l, SourceKind, SourceSpec};

/// A camera (V4L2 device).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct CameraInfo {
    /// `N` of `/dev/videoN`: what an index in the configuration means.
    pub index: u32,
    pub name: String,
    /// `/dev/videoN`.
    pub path: String,
    /// The modes it offers, as "MJPEG 640x480@30" (empty when it cannot be asked now, e.g.
    /// while another program holds it).
    pub formats: Vec<String>,
}

/// A microphone (ALSA capture device).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct MicrophoneInfo {
    /// The ALSA device id (`default`, `pulse`, `hw:CARD=PCH,DEV=0`): what a configured name
    /// means. Its position in this list is what an index means.
    pub name: String,
    /// ALSA's description of it.
    pub description: String,
    /// Whether it is the default capture device (what `auto` opens).
    pub default: bool,
    /// Common sample rates it accepts (empty when it cannot be asked now).
    pub sample_rates: Vec<u32>,
}

/// The capture devices present.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Devices {
    pub cameras: Vec<CameraInfo>,
    pub microphones: Vec<MicrophoneInfo>,
}

/// List cameras and microphones. A machine without a camera or a sound card gets empty lists:
/// never an error, never a panic.
pub fn list_devices() -> Devices {
    let cameras = v4l::devices()
        .into_iter()
        .map(|d| CameraInfo {
            formats: v4l::formats(d.index),
            index: d.index,
            name: d.name,
            path: d.path,
        })
        .collect();
    let microphones = std::panic::catch_unwind(|| {
        let default_id = alsa::default_device().map(|d| d.id);
        let mics: Vec<MicrophoneInfo> = alsa::microphones()
            .into_iter()
            .map(|d| MicrophoneInfo {
                default: Some(&d.id) == default_id.as_ref(),
                sample_rates: alsa::sample_rates(&d.device),
                name: d.id,
                description: d.description,
            })
            .collect();
        mics
    })
    .unwrap_or_default();
    Devices {
        cameras,
        microphones,
    }
}

/// What one configured source resolves to now.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ResolvedSource {
    pub kind: SourceKind,
    /// The configured form (`auto`, `0`, `file:/x.mp4`, …).
    pub spec: String,
    /// `none`, `device`, `file` or `stream`.
    pub via: &'static str,
    /// What would be opened ("/dev/video0 (HD Webcam)", "default (Default Audio Device)",
    /// "file:/x.mp4"), when it resolves.
    pub target: Option<String>,
    /// Whether it can be opened as far as can be told without opening it (a device is present,
    /// a file exists; an `ffmpeg:` input is only known once opened).
    pub available: bool,
    /// Why not, when it is not.
    pub message: Option<String>,
}

/// What the configured camera and microphone resolve to now.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Resolved {
    pub camera: ResolvedSource,
    pub microphone: ResolvedSource,
}

/// Resolve the configured sources without opening them.
pub fn resolve(camera: &SourceSpec, mic: &SourceSpec) -> Resolved {
    Resolved {
        camera: resolve_one(SourceKind::Camera, camera),
        microphone: resolve_one(SourceKind::Microphone, mic),
    }
}

fn resolve_one(kind: SourceKind, spec: &SourceSpec) -> ResolvedSource {
    let mut r = ResolvedSource {
        kind,
        spec: spec.to_string(),
        via: "device",
        target: None,
        available: false,
        message: None,
    };
    let found = match spec {
        SourceSpec::None => {
            r.via = "none";
            r.message = Some(format!("no {kind} is configured"));
            return r;
        }
        SourceSpec::File(p) => {
            r.via = "file";
            match std::fs::metadata(p) {
                Ok(m) if m.is_file() => Ok(format!("file:{}", p.display())),
                Ok(_) => Err(format!("{} is not a regular file", p.display())),
                Err(e) => Err(format!("{}: {e}", p.display())),
            }
        }
        SourceSpec::Ffmpeg(u) => {
            r.via = "stream";
            Ok(format!("ffmpeg:{u}"))
        }
        _ => match kind {
            SourceKind::Camera => std::panic::catch_unwind(|| v4l::pick(spec, &v4l::devices()))
                .unwrap_or_else(|_| Err("cannot list cameras".into()))
                .map(|d| format!("{} ({})", d.path, d.name)),
            SourceKind::Microphone => std::panic::catch_unwind(|| alsa::pick(spec))
                .unwrap_or_else(|_| Err("cannot list microphones".into()))
                .map(|d| format!("{} ({})", d.id, d.description)),
        },
    };
    match found {
        Ok(t) => {
            r.target = Some(t);
            r.available = true;
        }
        Err(m) => r.message = Some(m),
    }
    r
}
