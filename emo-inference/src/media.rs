//! Media files: kind detection, image decoding, and video frames through the `ffmpeg` CLI
//! (raw RGB frames on a pipe; no linking against libav*).

use std::io::Read;
use std::path::Path;
use std::process::Command;

use emo_api_types::analyze::MediaKind;
use image::RgbImage;

use crate::audio;
use crate::ffmpeg::FfChild;
use crate::limits::MediaLimits;
use crate::{Error, Result};

const IMAGE_EXT: &[&str] = &["jpg", "jpeg", "png"];

const UNSUPPORTED: &str = "unsupported file type (images: jpg, png; audio and video: any file ffmpeg decodes, e.g. wav, mp3, flac, ogg, m4a, mp4, mkv, webm, mov, avi, flv)";

/// What a file is. Pictures are recognised by their first bytes or extension (the `image` crate
/// decodes them); anything else is asked of `ffprobe`, whatever its name says: a file with a
/// video stream (not just a cover picture) is a video, one with only audio is audio. So `.mov`,
/// `.avi`, `.flv`, `.m4a`, `.ogg` and files without an extension work, and a text file named
/// `.mp4` gets the same clear error as any other unsupported file.
pub fn kind_of(path: &Path, limits: &MediaLimits) -> Result<MediaKind> {
    let mut head = [0u8; 16];
    let n = std::fs::File::open(path)?.read(&mut head)?;
    let head = &head[..n];
    if head.starts_with(&[0xff, 0xd8, 0xff]) || head.starts_with(b"\x89PNG") {
        return Ok(MediaKind::Image);
    }
    // RIFF/WAVE goes to our own decoder, whose checks give the clearer errors.
    if head.starts_with(b"RIFF") && head.get(8..12) == Some(b"WAVE") {
        return Ok(MediaKind::Audio);
    }
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    if IMAGE_EXT.contains(&ext.as_str()) {
        // Named like a picture but not one: the image decoder says what is wrong.
        return Ok(MediaKind::Image);
    }
    let streams = audio::probe_all(
        path,
        "stream=codec_type:stream_disposition=attached_pic",
        limits,
    )
    .map_err(|_| Error::Media(UNSUPPORTED.into()))?;
    // One `codec_type=` line per stream, each followed by its `attached_pic=` flag.
    let mut video = false;
    let mut audio_stream = false;
    let mut last = "";
    for (k, v) in &streams {
        match k.as_str() {
            "codec_type" => {
                last = v.as_str();
                audio_stream |= v == "audio";
            }
            "DISPOSITION:attached_pic" | "attached_pic" if last == "video" && v == "0" => {
                video = true;
            }
            _ => {}
        }
    }
    if video {
        Ok(MediaKind::Video)
    } else if audio_stream {
        Ok(MediaKind::Audio)
    } else {
        Err(Error::Media(UNSUPPORTED.into()))
    }
}

/// Decode an image file to RGB. The dimensions in the header are checked against
/// `limits.max_pixels` before any pixel is decoded (a small PNG can declare 13000×13000), and the
/// decoder's own allocation limit is set to what such an image needs.
pub fn read_image(path: &Path, limits: &MediaLimits) -> Result<RgbImage> {
    decode_image(|| image::ImageReader::open(path), limits)
}

/// [`read_image`] on bytes in memory; `ext` stands in for the file name's extension (a hint used
/// only when the content is not recognised).
pub fn read_image_bytes(bytes: &[u8], ext: Option<&str>, limits: &MediaLimits) -> Result<RgbImage> {
    let format = ext.and_then(image::ImageFormat::from_extension);
    decode_image(
        || {
            let mut r = image::ImageReader::new(std::io::Cursor::new(bytes));
            if let Some(f) = format {
                r.set_format(f);
            }
            Ok(r)
        },
        limits,
    )
}

/// [`read_image`] on a reader `open` makes afresh for each of its two passes (header, then
/// pixels); the fuzz targets and their replay test decode bytes in memory through it.
pub fn decode_image<R: std::io::BufRead + std::io::Seek>(
    open: impl Fn() -> std::io::Result<image::ImageReader<R>>,
    limits: &MediaLimits,
) -> Result<RgbImage> {
    let mut r = open()?
        .with_guessed_format()
        .map_err(|e| Error::Media(format!("cannot read image: {e}")))?;
    let (w, h) = r
        .into_dimensions()
        .map_err(|e| Error::Media(format!("corrupt or unsupported image: {e}")))?;
    limits.check_pixels(w as u64, h as u64)?;
    r = open()?
        .with_guessed_format()
        .map_err(|e| Error::Media(format!("cannot read image: {e}")))?;
    let mut lim = image::Limits::default();
    lim.max_image_width = Some(w);
    lim.max_image_height = Some(h);
    // RGBA at 16 bits per channel is the largest buffer a decoder makes, plus the RGB copy.
    lim.max_alloc = Some(limits.max_pixels.saturating_mul(8 + 3));
    r.limits(lim);
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

pub fn video_info(path: &Path, limits: &MediaLimits) -> Result<VideoInfo> {
    let kv = audio::probe(
        path,
        "v",
        "stream=width,height,duration:format=duration",
        limits,
    )?;
    video_info_from(&kv, limits)
}

/// [`VideoInfo`] from ffprobe's `key=value` lines (what the file declares: checked, never
/// trusted).
pub fn video_info_from(kv: &[(String, String)], limits: &MediaLimits) -> Result<VideoInfo> {
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
    if !(1.0..=65536.0).contains(&w) || !(1.0..=65536.0).contains(&h) {
        return Err(Error::Media(format!("unsupported frame size {w}x{h}")));
    }
    limits.check_pixels(w as u64, h as u64)?;
    Ok(VideoInfo {
        width: w as u32,
        height: h as u32,
        duration: num("duration"),
    })
}

/// Frames of a video at `fps` frames per second, decoded by an `ffmpeg` child process (stderr
/// drained, killed at the deadline or when this is dropped). Past `limits.max_seconds` of media
/// time it stops with an error.
pub struct VideoFrames {
    child: Option<FfChild>,
    pub info: VideoInfo,
    pub fps: f64,
    index: u64,
    max_frames: u64,
    limits: MediaLimits,
}

impl VideoFrames {
    pub fn open(path: &Path, fps: f64, limits: &MediaLimits) -> Result<Self> {
        let info = video_info(path, limits)?;
        if let Some(d) = info.duration {
            if d > limits.max_seconds {
                return Err(limits.too_long());
            }
        }
        let mut cmd = Command::new("ffmpeg");
        cmd.args(["-nostdin", "-v", "error", "-i"])
            .arg(path)
            .args(["-map", "0:v:0", "-an", "-vf"])
            .arg(format!("fps={fps},scale={}:{}", info.width, info.height))
            .args(["-f", "rawvideo", "-pix_fmt", "rgb24", "-"]);
        let child = FfChild::spawn(&mut cmd, Some(limits.ffmpeg_deadline))?;
        Ok(Self {
            child: Some(child),
            info,
            fps,
            index: 0,
            max_frames: (limits.max_seconds * fps).ceil() as u64,
            limits: *limits,
        })
    }

    /// The next frame and its time in seconds, `Ok(None)` at the end.
    pub fn next_frame(&mut self) -> Result<Option<(f64, RgbImage)>> {
        let Some(child) = self.child.as_mut() else {
            return Ok(None);
        };
        if self.index >= self.max_frames {
            self.child = None;
            return Err(self.limits.too_long());
        }
        let frame = read_rgb_frame(child.stdout()?, self.info.width, self.info.height)?;
        let Some(img) = frame else {
            let child = self.child.take().expect("checked above");
            let timed_out = child.timed_out();
            let (status, err) = child.finish()?;
            if timed_out {
                return Err(Error::Media(
                    "ffmpeg took too long decoding the video and was stopped".into(),
                ));
            }
            if !status.success() || (self.index == 0 && !err.trim().is_empty()) {
                return Err(Error::Media(format!(
                    "ffmpeg cannot decode the video: {}",
                    crate::ffmpeg::last_line(&err)
                )));
            }
            return Ok(None);
        };
        let t = self.index as f64 / self.fps;
        self.index += 1;
        Ok(Some((t, img)))
    }
}

/// The next `w`×`h` frame of an `rgb24` rawvideo stream, `Ok(None)` when the stream ends before
/// a whole frame (a partial last frame is dropped).
pub fn read_rgb_frame(stream: &mut impl Read, w: u32, h: u32) -> Result<Option<RgbImage>> {
    let n = w as usize * h as usize * 3;
    let mut buf = vec![0u8; n];
    let mut filled = 0;
    while filled < n {
        match stream.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(k) => filled += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::Media(format!("reading frames from ffmpeg: {e}"))),
        }
    }
    if filled < n {
        return Ok(None);
    }
    RgbImage::from_raw(w, h, buf)
        .map(Some)
        .ok_or_else(|| Error::Media("bad frame size".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_by_content_not_by_name() {
        let d = tempfile::tempdir().unwrap();
        let lim = MediaLimits::default();
        let p = d.path().join("noext");
        std::fs::write(&p, b"\x89PNG\r\n\x1a\n....").unwrap();
        assert_eq!(kind_of(&p, &lim).unwrap(), MediaKind::Image);
        std::fs::write(&p, b"hello world, plain text").unwrap();
        assert!(kind_of(&p, &lim)
            .unwrap_err()
            .to_string()
            .contains("unsupported"));
        let fake = d.path().join("fake.mp4");
        std::fs::write(&fake, b"hello world, plain text").unwrap();
        assert!(kind_of(&fake, &lim)
            .unwrap_err()
            .to_string()
            .contains("unsupported"));
        // Containers by what ffmpeg finds in them, whatever the extension.
        let ff = |args: &[&str], out: &Path| {
            let ok = std::process::Command::new("ffmpeg")
                .args(["-nostdin", "-v", "error", "-y"])
                .args(args)
                .arg(out)
                .status()
                .expect("ffmpeg");
            assert!(ok.success());
        };
        let tone = ["-f", "lavfi", "-i", "sine=f=440:d=1"];
        let pic = ["-f", "lavfi", "-i", "testsrc=size=64x64:rate=5:d=1"];
        for (name, args, kind) in [
            ("a.ogg", &tone[..], MediaKind::Audio),
            ("a.m4a", &tone[..], MediaKind::Audio),
            ("v.mov", &pic[..], MediaKind::Video),
            ("v.avi", &pic[..], MediaKind::Video),
            ("v.flv", &pic[..], MediaKind::Video),
        ] {
            let out = d.path().join(name);
            ff(args, &out);
            assert_eq!(kind_of(&out, &lim).unwrap(), kind, "{name}");
            // Renamed to something misleading, it is still what it is.
            let renamed = d.path().join(format!("{name}.txt"));
            std::fs::rename(&out, &renamed).unwrap();
            assert_eq!(kind_of(&renamed, &lim).unwrap(), kind, "{name} renamed");
        }
    }
}
