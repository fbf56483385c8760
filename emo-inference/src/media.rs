//! Media files: kind detection, image decoding, and video frames through the `ffmpeg` CLI
//! (raw RGB frames on a pipe; no linking against libav*).

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use emo_api_types::analyze::MediaKind;
use image::RgbImage;

use crate::audio;
use crate::{Error, Result};

const IMAGE_EXT: &[&str] = &["jpg", "jpeg", "png"];
const AUDIO_EXT: &[&str] = &[
    "wav", "mp3", "flac", "ogg", "oga", "opus", "m4a", "aac", "wma",
];
const VIDEO_EXT: &[&str] = &["mp4", "mkv", "webm", "mov", "avi", "m4v"];

/// Guess the media kind from the extension, then from the first bytes.
pub fn kind_of(path: &Path) -> Result<MediaKind> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    if IMAGE_EXT.contains(&ext.as_str()) {
        return Ok(MediaKind::Image);
    }
    if AUDIO_EXT.contains(&ext.as_str()) {
        return Ok(MediaKind::Audio);
    }
    if VIDEO_EXT.contains(&ext.as_str()) {
        return Ok(MediaKind::Video);
    }
    let mut head = [0u8; 16];
    let n = std::fs::File::open(path)?.read(&mut head)?;
    let head = &head[..n];
    if head.starts_with(&[0xff, 0xd8, 0xff]) || head.starts_with(b"\x89PNG") {
        return Ok(MediaKind::Image);
    }
    if head.starts_with(b"RIFF") && head.get(8..12) == Some(b"WAVE") {
        return Ok(MediaKind::Audio);
    }
    if head.get(4..8) == Some(b"ftyp") || head.starts_with(&[0x1a, 0x45, 0xdf, 0xa3]) {
        return Ok(MediaKind::Video);
    }
    Err(Error::Media(
        "unsupported file type (images: jpg, png; audio: wav or any format ffmpeg decodes; video: mp4, mkv, webm)".into(),
    ))
}

/// Decode an image file to RGB.
pub fn read_image(path: &Path) -> Result<RgbImage> {
    let r = image::ImageReader::open(path)?
        .with_guessed_format()
        .map_err(|e| Error::Media(format!("cannot read image: {e}")))?;
    let img = r
        .decode()
        .map_err(|e| Error::Media(format!("corrupt or unsupported image: {e}")))?;
    Ok(img.to_rgb8())
}

/// Video stream facts from ffprobe.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VideoInfo {
    pub width: u32,
    pub height: u32,
    pub duration: Option<f64>,
}

pub fn video_info(path: &Path) -> Result<VideoInfo> {
    let kv = audio::probe(path, "v", "stream=width,height,duration:format=duration")?;
    let get = |k: &str| {
        kv.iter()
            .filter(|(a, _)| a == k)
            .map(|(_, v)| v.clone())
            .collect::<Vec<_>>()
    };
    let num = |k: &str| get(k).into_iter().find_map(|v| v.parse::<f64>().ok());
    let (Some(w), Some(h)) = (num("width"), num("height")) else {
        return Err(Error::Media("no video stream".into()));
    };
    if w < 1.0 || h < 1.0 || w * h > 8192.0 * 8192.0 {
        return Err(Error::Media(format!("unsupported frame size {w}x{h}")));
    }
    Ok(VideoInfo {
        width: w as u32,
        height: h as u32,
        duration: num("duration"),
    })
}

/// Frames of a video at `fps` frames per second, decoded by an `ffmpeg` child process.
pub struct VideoFrames {
    child: Child,
    pub info: VideoInfo,
    pub fps: f64,
    index: u64,
    done: bool,
}

impl VideoFrames {
    pub fn open(path: &Path, fps: f64) -> Result<Self> {
        let info = video_info(path)?;
        let child = Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-i"])
            .arg(path)
            .args(["-map", "0:v:0", "-an", "-vf"])
            .arg(format!("fps={fps},scale={}:{}", info.width, info.height))
            .args(["-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| Error::Media(format!("cannot run ffmpeg ({e}); install ffmpeg")))?;
        Ok(Self {
            child,
            info,
            fps,
            index: 0,
            done: false,
        })
    }

    /// The next frame and its time in seconds, `Ok(None)` at the end.
    pub fn next_frame(&mut self) -> Result<Option<(f64, RgbImage)>> {
        if self.done {
            return Ok(None);
        }
        let n = self.info.width as usize * self.info.height as usize * 3;
        let mut buf = vec![0u8; n];
        let stdout = self
            .child
            .stdout
            .as_mut()
            .ok_or_else(|| Error::Media("ffmpeg has no stdout".into()))?;
        let mut filled = 0;
        while filled < n {
            match stdout.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(k) => filled += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::Media(format!("reading frames from ffmpeg: {e}"))),
            }
        }
        if filled < n {
            self.done = true;
            let mut err = String::new();
            if let Some(mut se) = self.child.stderr.take() {
                let _ = se.read_to_string(&mut err);
            }
            let status = self.child.wait()?;
            if !status.success() || (self.index == 0 && !err.trim().is_empty()) {
                return Err(Error::Media(format!(
                    "ffmpeg cannot decode the video: {}",
                    err.lines().last().unwrap_or("unknown error").trim()
                )));
            }
            return Ok(None);
        }
        let t = self.index as f64 / self.fps;
        self.index += 1;
        let img = RgbImage::from_raw(self.info.width, self.info.height, buf)
            .ok_or_else(|| Error::Media("bad frame size".into()))?;
        Ok(Some((t, img)))
    }
}

impl Drop for VideoFrames {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_by_extension_and_magic() {
        assert_eq!(kind_of(Path::new("a.JPG")).unwrap(), MediaKind::Image);
        assert_eq!(kind_of(Path::new("a.wav")).unwrap(), MediaKind::Audio);
        assert_eq!(kind_of(Path::new("a.webm")).unwrap(), MediaKind::Video);
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("noext");
        std::fs::write(&p, b"\x89PNG\r\n\x1a\n....").unwrap();
        assert_eq!(kind_of(&p).unwrap(), MediaKind::Image);
        std::fs::write(&p, b"hello world, plain text").unwrap();
        assert!(kind_of(&p).unwrap_err().to_string().contains("unsupported"));
    }
}
