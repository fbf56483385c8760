//! Cameras through V4L2 (nokhwa): MJPEG, YUYV, NV12, grey or raw RGB/BGR frames decoded to RGB.

use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use nokhwa::pixel_format::RgbFormat;
use nokhwa::utils::{
    ApiBackend, CameraFormat, CameraIndex, FrameFormat, RequestedFormat, RequestedFormatType,
    Resolution,
};

use crate::worker::{self, Notifier, Outcome, Retry, Stopper, Worker};
use crate::{
    CameraOptions, CaptureError, FrameSlot, SourceEvent, SourceKind, SourceSpec, VideoFrame,
};

/// A V4L2 device as listed by nokhwa.
#[derive(Clone, Debug)]
pub(crate) struct V4lDevice {
    pub index: u32,
    pub name: String,
    /// `/dev/videoN` (nokhwa's "misc"/description field, when it has one).
    pub path: String,
}

/// The V4L2 capture devices present now (empty without any, never an error or a panic).
pub(crate) fn devices() -> Vec<V4lDevice> {
    // nokhwa enumerates /dev/video*; guard against a panic in a driver binding.
    let found = std::panic::catch_unwind(|| nokhwa::query(ApiBackend::Video4Linux));
    let Ok(Ok(list)) = found else {
        return Vec::new();
    };
    list.into_iter()
        .filter_map(|c| match c.index() {
            CameraIndex::Index(i) => Some(V4lDevice {
                index: *i,
                name: c.human_name(),
                path: format!("/dev/video{i}"),
            }),
            CameraIndex::String(_) => None,
        })
        .collect()
}

/// The formats a device offers, as "MJPEG 640x480@30" (empty when it cannot be asked now).
pub(crate) fn formats(index: u32) -> Vec<String> {
    let r = std::panic::catch_unwind(|| -> Result<Vec<String>, nokhwa::NokhwaError> {
        let mut cam = nokhwa::Camera::with_backend(
            CameraIndex::Index(index),
            RequestedFormat::new::<RgbFormat>(RequestedFormatType::None),
            ApiBackend::Video4Linux,
        )?;
        let mut fmts = cam.compatible_camera_formats()?;
        fmts.sort_by_key(|f| (f.format() as u8, f.width(), f.height(), f.frame_rate()));
        Ok(fmts
            .into_iter()
            .map(|f| {
                format!(
                    "{} {}x{}@{}",
                    f.format(),
                    f.width(),
                    f.height(),
                    f.frame_rate()
                )
            })
            .collect())
    });
    match r {
        Ok(Ok(v)) => v,
        _ => Vec::new(),
    }
}

/// Which device a spec picks among those present.
pub(crate) fn pick(spec: &SourceSpec, devs: &[V4lDevice]) -> Result<V4lDevice, String> {
    let found = match spec {
        SourceSpec::Auto => devs.iter().min_by_key(|d| d.index),
        SourceSpec::Index(i) => devs.iter().find(|d| d.index == *i),
        SourceSpec::Name(n) => devs
            .iter()
            .find(|d| d.name == *n || d.path == *n)
            .or_else(|| devs.iter().find(|d| d.name.eq_ignore_ascii_case(n)))
            .or_else(|| {
                let l = n.to_lowercase();
                devs.iter().find(|d| d.name.to_lowercase().contains(&l))
            }),
        _ => None,
    };
    match found {
        Some(d) => Ok(d.clone()),
        None if devs.is_empty() => Err("no camera found (no V4L2 device)".into()),
        None => Err(format!(
            "no camera matches {spec} (present: {})",
            devs.iter()
                .map(|d| format!("{} {}", d.path, d.name))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

pub(crate) fn open(
    spec: &SourceSpec,
    opts: &CameraOptions,
    slot: Arc<FrameSlot>,
    events: Sender<SourceEvent>,
) -> Result<(Worker, String), CaptureError> {
    let kind = SourceKind::Camera;
    let dev = pick(spec, &devices()).map_err(|m| CaptureError::unavailable(kind, m))?;
    let description = format!("{} ({})", dev.path, dev.name);
    let spec = spec.clone();
    let opts = opts.clone();
    let worker = worker::start(
        kind,
        description.clone(),
        Retry::Reopen,
        events,
        move |stopper, n| {
            // A reopen looks the device up again: after a replug it may have another number.
            let dev = match spec {
                SourceSpec::Auto | SourceSpec::Index(_) => dev.clone(),
                _ => match pick(&spec, &devices()) {
                    Ok(d) => d,
                    Err(m) => return Outcome::Failed(m),
                },
            };
            run(&dev, &opts, &slot, stopper, n)
        },
    )?;
    Ok((worker, description))
}

fn run(
    dev: &V4lDevice,
    opts: &CameraOptions,
    slot: &FrameSlot,
    stopper: &Stopper,
    n: &mut Notifier,
) -> Outcome {
    let want = CameraFormat::new(
        Resolution::new(opts.width, opts.height),
        FrameFormat::MJPEG,
        opts.fps.ceil() as u32,
    );
    let requested = RequestedFormat::new::<RgbFormat>(RequestedFormatType::Closest(want));
    let mut cam = match nokhwa::Camera::with_backend(
        CameraIndex::Index(dev.index),
        requested,
        ApiBackend::Video4Linux,
    ) {
        Ok(c) => c,
        Err(e) => return Outcome::Failed(format!("cannot open {}: {e}", dev.path)),
    };
    if let Err(e) = cam.open_stream() {
        return Outcome::Failed(format!("cannot start {}: {e}", dev.path));
    }
    let fmt = cam.camera_format();
    tracing::info!(
        device = %dev.path,
        "camera format {} {}x{}@{}",
        fmt.format(),
        fmt.width(),
        fmt.height(),
        fmt.frame_rate()
    );
    let period = Duration::from_secs_f64(1.0 / opts.fps);
    let mut next_due = Instant::now();
    let outcome = loop {
        if stopper.is_stopped() {
            break Outcome::Stopped;
        }
        let raw = match cam.frame_raw() {
            Ok(r) => r,
            Err(e) => break Outcome::Failed(format!("reading {}: {e}", dev.path)),
        };
        let captured = SystemTime::now();
        let now = Instant::now();
        if now < next_due {
            continue; // more frames than asked for: skip without decoding
        }
        next_due = if now > next_due + period {
            now + period
        } else {
            next_due + period
        };
        let image = match decode(&raw, fmt.format(), fmt.width(), fmt.height()) {
            Ok(i) => i,
            Err(e) => {
                // A damaged frame (USB hiccup) is skipped; the next one usually decodes.
                tracing::debug!(device = %dev.path, "skipping a frame: {e}");
                continue;
            }
        };
        n.started();
        slot.put(VideoFrame { captured, image });
    };
    let _ = cam.stop_stream();
    outcome
}

/// Decode one raw camera frame to RGB.
pub(crate) fn decode(
    raw: &[u8],
    format: FrameFormat,
    w: u32,
    h: u32,
) -> Result<image::RgbImage, String> {
    let (wu, hu) = (w as usize, h as usize);
    let short = |need: usize| {
        if raw.len() < need {
            Err(format!(
                "{format} frame of {} bytes, expected {need}",
                raw.len()
            ))
        } else {
            Ok(())
        }
    };
    match format {
        FrameFormat::MJPEG => image::load_from_memory_with_format(raw, image::ImageFormat::Jpeg)
            .map(|i| i.to_rgb8())
            .map_err(|e| format!("MJPEG: {e}")),
        FrameFormat::YUYV => {
            short(wu * hu * 2)?;
            let mut out = Vec::with_capacity(wu * hu * 3);
            for px in raw[..wu * hu * 2].chunks_exact(4) {
                let (y0, u, y1, v) = (px[0], px[1], px[2], px[3]);
                out.extend_from_slice(&yuv_to_rgb(y0, u, v));
                out.extend_from_slice(&yuv_to_rgb(y1, u, v));
            }
            image::RgbImage::from_raw(w, h, out).ok_or_else(|| "YUYV: odd width".to_string())
        }
        FrameFormat::NV12 => {
            short(wu * hu * 3 / 2)?;
            let (ys, uv) = raw.split_at(wu * hu);
            let mut out = Vec::with_capacity(wu * hu * 3);
            for y in 0..hu {
                for x in 0..wu {
                    let c = (y / 2) * wu + (x / 2) * 2;
                    out.extend_from_slice(&yuv_to_rgb(ys[y * wu + x], uv[c], uv[c + 1]));
                }
            }
            image::RgbImage::from_raw(w, h, out).ok_or_else(|| "NV12: bad size".to_string())
        }
        FrameFormat::GRAY => {
            short(wu * hu)?;
            let out = raw[..wu * hu].iter().flat_map(|&g| [g, g, g]).collect();
            image::RgbImage::from_raw(w, h, out).ok_or_else(|| "GRAY: bad size".to_string())
        }
        FrameFormat::RAWRGB => {
            short(wu * hu * 3)?;
            image::RgbImage::from_raw(w, h, raw[..wu * hu * 3].to_vec())
                .ok_or_else(|| "RGB: bad size".to_string())
        }
        FrameFormat::RAWBGR => {
            short(wu * hu * 3)?;
            let out = raw[..wu * hu * 3]
                .chunks_exact(3)
                .flat_map(|p| [p[2], p[1], p[0]])
                .collect();
            image::RgbImage::from_raw(w, h, out).ok_or_else(|| "BGR: bad size".to_string())
        }
    }
}

/// BT.601 limited-range YCbCr to RGB (what webcams send).
fn yuv_to_rgb(y: u8, u: u8, v: u8) -> [u8; 3] {
    let c = (y as i32 - 16).max(0) * 298;
    let d = u as i32 - 128;
    let e = v as i32 - 128;
    let clip = |x: i32| ((x + 128) >> 8).clamp(0, 255) as u8;
    [
        clip(c + 409 * e),
        clip(c - 100 * d - 208 * e),
        clip(c + 516 * d),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yuyv_nv12_gray_bgr_and_mjpeg_decode_to_the_same_colours() {
        // 4×2 frame: white, black, and mid grey in YUV.
        let (w, h) = (4u32, 2u32);
        let yuyv = [235u8, 128, 16, 128, 126, 128, 126, 128].repeat(2);
        let img = decode(&yuyv, FrameFormat::YUYV, w, h).unwrap();
        assert_eq!(img.get_pixel(0, 0).0, [255, 255, 255]);
        assert_eq!(img.get_pixel(1, 0).0, [0, 0, 0]);
        let g = img.get_pixel(2, 1).0;
        assert!(g.iter().all(|&c| (126..=130).contains(&c)), "{g:?}");

        let mut nv12 = vec![235u8, 16, 126, 126, 235, 16, 126, 126];
        nv12.extend_from_slice(&[128, 128, 128, 128]);
        let img = decode(&nv12, FrameFormat::NV12, w, h).unwrap();
        assert_eq!(img.get_pixel(0, 1).0, [255, 255, 255]);
        assert_eq!(img.get_pixel(1, 1).0, [0, 0, 0]);

        let img = decode(&[9u8; 8], FrameFormat::GRAY, w, h).unwrap();
        assert_eq!(img.get_pixel(3, 1).0, [9, 9, 9]);
        let img = decode(&[1u8, 2, 3].repeat(8), FrameFormat::RAWBGR, w, h).unwrap();
        assert_eq!(img.get_pixel(0, 0).0, [3, 2, 1]);

        // A JPEG made by the image crate decodes back to about the same red.
        let red = image::RgbImage::from_pixel(16, 16, image::Rgb([200, 30, 30]));
        let mut jpg = Vec::new();
        red.write_to(
            &mut std::io::Cursor::new(&mut jpg),
            image::ImageFormat::Jpeg,
        )
        .unwrap();
        let img = decode(&jpg, FrameFormat::MJPEG, 16, 16).unwrap();
        let p = img.get_pixel(8, 8).0;
        assert!(p[0] > 180 && p[1] < 60 && p[2] < 60, "{p:?}");

        assert!(decode(&[0u8; 3], FrameFormat::YUYV, w, h).is_err());
        assert!(decode(&[0u8; 10], FrameFormat::MJPEG, w, h).is_err());
    }

    #[test]
    fn picking_a_device() {
        let devs = vec![
            V4lDevice {
                index: 2,
                name: "USB Camera".into(),
                path: "/dev/video2".into(),
            },
            V4lDevice {
                index: 0,
                name: "Integrated Webcam".into(),
                path: "/dev/video0".into(),
            },
        ];
        assert_eq!(pick(&SourceSpec::Auto, &devs).unwrap().index, 0);
        assert_eq!(pick(&SourceSpec::Index(2), &devs).unwrap().index, 2);
        assert_eq!(
            pick(&SourceSpec::Name("/dev/video2".into()), &devs)
                .unwrap()
                .index,
            2
        );
        assert_eq!(
            pick(&SourceSpec::Name("usb camera".into()), &devs)
                .unwrap()
                .index,
            2
        );
        assert_eq!(
            pick(&SourceSpec::Name("integrated".into()), &devs)
                .unwrap()
                .index,
            0
        );
        let e = pick(&SourceSpec::Index(5), &devs).unwrap_err();
        assert!(e.contains("/dev/video2 USB Camera"), "{e}");
        assert!(pick(&SourceSpec::Auto, &[])
            .unwrap_err()
            .contains("no camera"));
    }
}
