//! Faces: BlazeFace detection (anchor decoding + weighted NMS), eye-aligned crops and the
//! expression classifier, with all faces of a frame classified in one batch.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use emo_api_types::Emotion;
use image::RgbImage;
use ort::session::Session;
use ort::value::TensorRef;

use crate::classifier::argmax;
pub use crate::expression::ExpressionModel;
use crate::manifest::Manifest;
use crate::runtime::RuntimeConfig;
use crate::{Error, Result};

/// Default crop size relative to the detector box when the manifest gives no `crop_scale`
/// (FER-2013 crops show the whole face with a little margin; BlazeFace boxes are tight).
pub const DEFAULT_CROP_SCALE: f32 = 1.25;
/// Keypoint indices of BlazeFace: subject's right eye (image left), subject's left eye.
pub const KP_RIGHT_EYE: usize = 0;
pub const KP_LEFT_EYE: usize = 1;

/// A detection in pixel coordinates of the analysed image.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    pub xmin: f32,
    pub ymin: f32,
    pub xmax: f32,
    pub ymax: f32,
    pub score: f32,
    pub keypoints: Vec<[f32; 2]>,
}

impl Detection {
    pub fn width(&self) -> f32 {
        self.xmax - self.xmin
    }
    pub fn height(&self) -> f32 {
        self.ymax - self.ymin
    }
    pub fn area(&self) -> f32 {
        self.width().max(0.0) * self.height().max(0.0)
    }
}

/// Intersection over union of two boxes.
pub fn iou(a: &Detection, b: &Detection) -> f32 {
    let ix = (a.xmax.min(b.xmax) - a.xmin.max(b.xmin)).max(0.0);
    let iy = (a.ymax.min(b.ymax) - a.ymin.max(b.ymin)).max(0.0);
    let inter = ix * iy;
    let union = a.area() + b.area() - inter;
    if union <= 0.0 {
        0.0
    } else {
        inter / union
    }
}

/// Anchor centres (normalised, y down) for an SSD-style grid: for every stride, a
/// `input/stride` square grid with `per_cell` anchors per cell at `((x+offset)/W, (y+offset)/H)`,
/// in the order cell-major (row, column) then anchor.
pub fn generate_anchors(
    input: usize,
    strides: &[u32],
    per_cell: &[u32],
    offset: f32,
) -> Vec<[f32; 2]> {
    let mut v = Vec::new();
    for (&s, &a) in strides.iter().zip(per_cell) {
        let g = (input as u32).div_ceil(s) as usize;
        for y in 0..g {
            for x in 0..g {
                for _ in 0..a {
                    v.push([
                        (x as f32 + offset) / g as f32,
                        (y as f32 + offset) / g as f32,
                    ]);
                }
            }
        }
    }
    v
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x.clamp(-100.0, 100.0)).exp())
}

/// Decode raw BlazeFace outputs (normalised coordinates of the detector input). `regressors` is
/// `anchors × stride` (`[dx, dy, w, h, kx0, ky0, ...]` in input pixels, divided by `box_scale`),
/// `logits` one score logit per anchor.
pub fn decode(
    regressors: &[f32],
    logits: &[f32],
    anchors: &[[f32; 2]],
    box_scale: f32,
    threshold: f32,
) -> Vec<Detection> {
    let stride = if anchors.is_empty() {
        0
    } else {
        regressors.len() / anchors.len()
    };
    let n_kp = stride.saturating_sub(4) / 2;
    let mut out = Vec::new();
    for (i, (anc, &l)) in anchors.iter().zip(logits).enumerate() {
        let score = sigmoid(l);
        if score < threshold {
            continue;
        }
        let r = &regressors[i * stride..(i + 1) * stride];
        let cx = r[0] / box_scale + anc[0];
        let cy = r[1] / box_scale + anc[1];
        let w = r[2] / box_scale;
        let h = r[3] / box_scale;
        let keypoints = (0..n_kp)
            .map(|k| {
                [
                    r[4 + 2 * k] / box_scale + anc[0],
                    r[5 + 2 * k] / box_scale + anc[1],
                ]
            })
            .collect();
        out.push(Detection {
            xmin: cx - w / 2.0,
            ymin: cy - h / 2.0,
            xmax: cx + w / 2.0,
            ymax: cy + h / 2.0,
            score,
            keypoints,
        });
    }
    out
}

/// MediaPipe's weighted NMS: take the best remaining detection, average it (box and keypoints,
/// weighted by score) with every remaining detection overlapping it by more than `iou_threshold`,
/// keep the best score, and drop the cluster.
pub fn weighted_nms(mut dets: Vec<Detection>, iou_threshold: f32) -> Vec<Detection> {
    dets.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut out = Vec::new();
    while !dets.is_empty() {
        let best = dets[0].clone();
        let (cluster, rest): (Vec<Detection>, Vec<Detection>) = dets
            .into_iter()
            .partition(|d| iou(&best, d) > iou_threshold || *d == best);
        dets = rest;
        let total: f32 = cluster.iter().map(|d| d.score).sum();
        if total <= 0.0 {
            out.push(best);
            continue;
        }
        let mut m = best.clone();
        let avg = |f: &dyn Fn(&Detection) -> f32| {
            cluster.iter().map(|d| f(d) * d.score).sum::<f32>() / total
        };
        m.xmin = avg(&|d| d.xmin);
        m.ymin = avg(&|d| d.ymin);
        m.xmax = avg(&|d| d.xmax);
        m.ymax = avg(&|d| d.ymax);
        for k in 0..m.keypoints.len() {
            m.keypoints[k][0] = avg(&|d| d.keypoints.get(k).map_or(0.0, |p| p[0]));
            m.keypoints[k][1] = avg(&|d| d.keypoints.get(k).map_or(0.0, |p| p[1]));
        }
        out.push(m);
    }
    out
}

/// How an image was fitted into the square detector input (aspect kept, centred padding).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Letterbox {
    /// Side of the padded square in source pixels.
    pub side: f32,
    pub pad_x: f32,
    pub pad_y: f32,
}

impl Letterbox {
    pub fn for_size(w: u32, h: u32) -> Self {
        let side = w.max(h) as f32;
        Self {
            side,
            pad_x: (side - w as f32) / 2.0,
            pad_y: (side - h as f32) / 2.0,
        }
    }
    /// Normalised detector coordinates → source pixels.
    pub fn to_pixels(&self, p: [f32; 2]) -> [f32; 2] {
        [p[0] * self.side - self.pad_x, p[1] * self.side - self.pad_y]
    }
    pub fn map(&self, d: &Detection) -> Detection {
        let a = self.to_pixels([d.xmin, d.ymin]);
        let b = self.to_pixels([d.xmax, d.ymax]);
        Detection {
            xmin: a[0],
            ymin: a[1],
            xmax: b[0],
            ymax: b[1],
            score: d.score,
            keypoints: d.keypoints.iter().map(|&p| self.to_pixels(p)).collect(),
        }
    }
}

/// Number of sample points per axis and output pixel for a downscale factor (a cheap box filter
/// against aliasing; capped to keep the cost bounded).
fn taps(scale: f32) -> usize {
    (scale.ceil() as usize).clamp(1, 4)
}

/// Letterbox `img` into a `size × size` NHWC float tensor with values mapped from [0,255] to
/// `range`, area-sampled. Padding is black (`range[0]`).
pub fn letterbox_input(
    img: &RgbImage,
    size: usize,
    range: [f32; 2],
    out: &mut Vec<f32>,
) -> Letterbox {
    let lb = Letterbox::for_size(img.width(), img.height());
    out.clear();
    out.resize(size * size * 3, range[0]);
    let step = lb.side / size as f32;
    let k = taps(step);
    let (w, h) = (img.width() as i32, img.height() as i32);
    let raw = img.as_raw();
    let mul = (range[1] - range[0]) / 255.0 / (k * k) as f32;
    // Source sample positions are separable: precompute the columns (byte offsets) and rows.
    let pos = |o: usize, s: usize, pad: f32, lim: i32| -> Option<usize> {
        let v = ((o as f32 + (s as f32 + 0.5) / k as f32) * step - pad).floor() as i32;
        (0..lim).contains(&v).then_some(v as usize)
    };
    let cols: Vec<Option<usize>> = (0..size * k)
        .map(|i| pos(i / k, i % k, lb.pad_x, w).map(|x| x * 3))
        .collect();
    let rows: Vec<Option<usize>> = (0..size * k)
        .map(|i| pos(i / k, i % k, lb.pad_y, h).map(|y| y * w as usize * 3))
        .collect();
    for oy in 0..size {
        for ox in 0..size {
            let mut acc = [0u32; 3];
            let mut any = false;
            for row in rows[oy * k..(oy + 1) * k].iter().flatten() {
                for col in cols[ox * k..(ox + 1) * k].iter().flatten() {
                    let i = row + col;
                    acc[0] += raw[i] as u32;
                    acc[1] += raw[i + 1] as u32;
                    acc[2] += raw[i + 2] as u32;
                    any = true;
                }
            }
            if any {
                let o = (oy * size + ox) * 3;
                // Partly padded pixels blend with black, like a resize of the padded image.
                for c in 0..3 {
                    out[o + c] = range[0] + acc[c] as f32 * mul;
                }
            }
        }
    }
    lb
}

/// ITU-R 601 luma of an RGB pixel, as PIL's `convert("L")` used for the training images.
#[inline]
fn luma(p: &[u8]) -> f32 {
    (p[0] as f32 * 299.0 + p[1] as f32 * 587.0 + p[2] as f32 * 114.0) / 1000.0
}

/// A grayscale copy of the image region `[x0, x0+w) × [y0, y0+h)`.
struct GrayPatch {
    x0: i32,
    y0: i32,
    w: i32,
    h: i32,
    px: Vec<f32>,
}

impl GrayPatch {
    fn new(img: &RgbImage, x0: i32, y0: i32, x1: i32, y1: i32) -> Self {
        let (iw, ih) = (img.width() as i32, img.height() as i32);
        let x0 = x0.clamp(0, iw - 1);
        let y0 = y0.clamp(0, ih - 1);
        let x1 = x1.clamp(x0, iw - 1);
        let y1 = y1.clamp(y0, ih - 1);
        let (w, h) = (x1 - x0 + 1, y1 - y0 + 1);
        let raw = img.as_raw();
        let mut px = Vec::with_capacity((w * h) as usize);
        for y in y0..=y1 {
            let row = &raw[((y * iw + x0) * 3) as usize..((y * iw + x1 + 1) * 3) as usize];
            px.extend(row.chunks_exact(3).map(luma));
        }
        Self { x0, y0, w, h, px }
    }

    /// Bilinear sample at image coordinates; outside the patch clamps to its border (the patch
    /// covers every sample point inside the image, so this is the image border).
    #[inline]
    fn bilinear(&self, x: f32, y: f32) -> f32 {
        let x = (x - self.x0 as f32).clamp(0.0, (self.w - 1) as f32);
        let y = (y - self.y0 as f32).clamp(0.0, (self.h - 1) as f32);
        let (xf, yf) = (x.floor(), y.floor());
        let (fx, fy) = (x - xf, y - yf);
        let (xi, yi) = (xf as i32, yf as i32);
        let x1 = (xi + 1).min(self.w - 1);
        let y1 = (yi + 1).min(self.h - 1);
        let at = |x: i32, y: i32| self.px[(y * self.w + x) as usize];
        let top = at(xi, yi) * (1.0 - fx) + at(x1, yi) * fx;
        let bot = at(xi, y1) * (1.0 - fx) + at(x1, y1) * fx;
        top * (1.0 - fy) + bot * fy
    }
}

/// Roll angle (radians) that levels the eyes, from the two eye keypoints (image coordinates).
pub fn eye_angle(d: &Detection) -> f32 {
    match (d.keypoints.get(KP_RIGHT_EYE), d.keypoints.get(KP_LEFT_EYE)) {
        (Some(r), Some(l)) => (l[1] - r[1]).atan2(l[0] - r[0]),
        _ => 0.0,
    }
}

/// A `size × size` grayscale crop (values 0..255) centred on the detection, side
/// `crop_scale × max(w, h)`, rotated by the eye angle so the eyes are level; area-sampled
/// bilinearly; outside the image clamps to the border.
pub fn aligned_crop(img: &RgbImage, d: &Detection, size: usize, crop_scale: f32, out: &mut [f32]) {
    let cx = (d.xmin + d.xmax) / 2.0;
    let cy = (d.ymin + d.ymax) / 2.0;
    let side = d.width().max(d.height()) * crop_scale;
    let (sin, cos) = eye_angle(d).sin_cos();
    // Bounding box of the rotated square (+ 2 px for the bilinear neighbours).
    let half = side / 2.0 * (cos.abs() + sin.abs()) + 2.0;
    let patch = GrayPatch::new(
        img,
        (cx - half).floor() as i32,
        (cy - half).floor() as i32,
        (cx + half).ceil() as i32,
        (cy + half).ceil() as i32,
    );
    let step = side / size as f32;
    let k = taps(step);
    let inv = 1.0 / (k * k) as f32;
    let offs: Vec<f32> = (0..size * k)
        .map(|i| ((i / k) as f32 + ((i % k) as f32 + 0.5) / k as f32) * step - side / 2.0)
        .collect();
    for oy in 0..size {
        for ox in 0..size {
            let mut acc = 0.0;
            for &v in &offs[oy * k..(oy + 1) * k] {
                for &u in &offs[ox * k..(ox + 1) * k] {
                    // Rotate the crop grid by the eye angle (crop axes follow the eye line).
                    let x = cx + u * cos - v * sin - 0.5;
                    let y = cy + u * sin + v * cos - 0.5;
                    acc += patch.bilinear(x, y);
                }
            }
            out[oy * size + ox] = acc * inv;
        }
    }
}

/// BlazeFace detector configured from `[models.face_detector]`.
pub struct FaceDetector {
    session: Mutex<Session>,
    input_name: String,
    size: usize,
    range: [f32; 2],
    regressor_outputs: Vec<String>,
    score_outputs: Vec<String>,
    anchors: Vec<[f32; 2]>,
    box_scale: f32,
    pub score_threshold: f32,
    pub nms_iou: f32,
    buf: Mutex<Vec<f32>>,
}

impl std::fmt::Debug for FaceDetector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaceDetector")
            .field("size", &self.size)
            .field("anchors", &self.anchors.len())
            .finish()
    }
}

impl FaceDetector {
    pub fn load(manifest: &Manifest, rt: &RuntimeConfig) -> Result<Self> {
        const N: &str = "face_detector";
        let e = manifest.entry(N)?;
        if let Some(k) = &e.kind {
            if k != "blazeface" {
                return Err(Error::Manifest(format!(
                    "[models.{N}] kind `{k}` is not supported (blazeface)"
                )));
            }
        }
        let shape = e.req(N, "input_shape", &e.input_shape)?;
        if e.layout.as_deref().unwrap_or("NHWC") != "NHWC"
            || shape.len() != 4
            || shape[3] != 3
            || shape[1] != shape[2]
        {
            return Err(Error::Manifest(format!(
                "[models.{N}] need a square NHWC RGB input, got {shape:?}"
            )));
        }
        let outputs = e.outputs.clone().unwrap_or_default();
        let regressor_outputs = e
            .regressor_outputs
            .clone()
            .unwrap_or_else(|| outputs.iter().take(1).cloned().collect());
        let score_outputs = e
            .score_outputs
            .clone()
            .unwrap_or_else(|| outputs.iter().skip(1).take(1).cloned().collect());
        if regressor_outputs.is_empty() || score_outputs.is_empty() {
            return Err(Error::Manifest(format!(
                "[models.{N}] needs regressor_outputs and score_outputs"
            )));
        }
        let size = shape[1] as usize;
        let strides = e.req(N, "anchor_strides", &e.anchor_strides)?;
        let per_cell = e.req(N, "anchors_per_cell", &e.anchors_per_cell)?;
        let anchors = generate_anchors(size, strides, per_cell, e.anchor_offset.unwrap_or(0.5));
        Ok(Self {
            session: Mutex::new(crate::classifier::open(rt, &manifest.path_of(e))?),
            input_name: e.req(N, "input_name", &e.input_name)?.clone(),
            size,
            range: e.input_range.unwrap_or([-1.0, 1.0]),
            regressor_outputs,
            score_outputs,
            anchors,
            box_scale: e.box_scale.unwrap_or(size as f32),
            score_threshold: *e.req(N, "score_threshold", &e.score_threshold)?,
            nms_iou: *e.req(N, "nms_iou", &e.nms_iou)?,
            buf: Mutex::new(Vec::new()),
        })
    }

    pub fn input_size(&self) -> usize {
        self.size
    }

    /// Raw outputs (regressors, score logits) for an already preprocessed NHWC input.
    pub fn raw(&self, input: &[f32]) -> Result<(Vec<f32>, Vec<f32>)> {
        let err = |e: ort::Error| Error::Inference(format!("face_detector: {e}"));
        let t =
            TensorRef::from_array_view(([1usize, self.size, self.size, 3], input)).map_err(err)?;
        let mut s = self.session.lock().unwrap_or_else(|e| e.into_inner());
        let out = s
            .run(ort::inputs![self.input_name.as_str() => t])
            .map_err(err)?;
        let cat = |names: &[String]| -> Result<Vec<f32>> {
            let mut v = Vec::new();
            for n in names {
                let val = out
                    .get(n)
                    .ok_or_else(|| Error::Inference(format!("face_detector: no output `{n}`")))?;
                v.extend_from_slice(val.try_extract_tensor::<f32>().map_err(err)?.1);
            }
            Ok(v)
        };
        let reg = cat(&self.regressor_outputs)?;
        let sc = cat(&self.score_outputs)?;
        if sc.len() != self.anchors.len()
            || reg.len() % self.anchors.len().max(1) != 0
            || reg.len() < sc.len() * 4
        {
            return Err(Error::Inference(format!(
                "face_detector: {} scores / {} regressor values for {} anchors",
                sc.len(),
                reg.len(),
                self.anchors.len()
            )));
        }
        Ok((reg, sc))
    }

    /// All faces in `img`, in pixel coordinates, best first.
    pub fn detect(&self, img: &RgbImage) -> Result<Vec<Detection>> {
        let mut buf = self.buf.lock().unwrap_or_else(|e| e.into_inner());
        let lb = letterbox_input(img, self.size, self.range, &mut buf);
        let (reg, sc) = self.raw(&buf)?;
        let dets = decode(
            &reg,
            &sc,
            &self.anchors,
            self.box_scale,
            self.score_threshold,
        );
        Ok(weighted_nms(dets, self.nms_iou)
            .iter()
            .map(|d| lb.map(d))
            .collect())
    }
}

/// One face with its estimate.
#[derive(Debug, Clone)]
pub struct FaceResult {
    pub detection: Detection,
    pub probabilities: Vec<f32>,
    pub label: Emotion,
    pub confidence: f32,
}

/// Time spent in each stage of [`FacePipeline::analyze_timed`].
#[derive(Debug, Clone, Copy, Default)]
pub struct FaceTimings {
    pub detect: Duration,
    pub crop: Duration,
    pub classify: Duration,
}

/// Detector + crops + classifier.
#[derive(Debug)]
pub struct FacePipeline {
    pub detector: FaceDetector,
    pub expression: ExpressionModel,
}

impl FacePipeline {
    /// Classify one detected face (live capture classifies only the session's subject).
    pub fn classify_detection(&self, img: &RgbImage, d: &Detection) -> Result<FaceResult> {
        let s = self.expression.size;
        let mut c = vec![0.0; s * s];
        aligned_crop(img, d, s, self.expression.crop_scale, &mut c);
        let p = self
            .expression
            .classify(&[c])?
            .pop()
            .ok_or_else(|| crate::Error::Inference("no output for the face".into()))?;
        let (i, conf) = argmax(&p);
        Ok(FaceResult {
            detection: d.clone(),
            label: Emotion::FACE[i],
            confidence: conf,
            probabilities: p,
        })
    }

    pub fn analyze(&self, img: &RgbImage) -> Result<Vec<FaceResult>> {
        self.analyze_timed(img).map(|(r, _)| r)
    }

    pub fn analyze_timed(&self, img: &RgbImage) -> Result<(Vec<FaceResult>, FaceTimings)> {
        let t0 = Instant::now();
        let dets = self.detector.detect(img)?;
        let t1 = Instant::now();
        let s = self.expression.size;
        let crops: Vec<Vec<f32>> = dets
            .iter()
            .map(|d| {
                let mut c = vec![0.0; s * s];
                aligned_crop(img, d, s, self.expression.crop_scale, &mut c);
                c
            })
            .collect();
        let t2 = Instant::now();
        let probs = self.expression.classify(&crops)?;
        let t3 = Instant::now();
        let res = dets
            .into_iter()
            .zip(probs)
            .map(|(detection, p)| {
                let (i, c) = argmax(&p);
                FaceResult {
                    detection,
                    label: Emotion::FACE[i],
                    confidence: c,
                    probabilities: p,
                }
            })
            .collect();
        Ok((
            res,
            FaceTimings {
                detect: t1 - t0,
                crop: t2 - t1,
                classify: t3 - t2,
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(x0: f32, y0: f32, x1: f32, y1: f32, s: f32) -> Detection {
        Detection {
            xmin: x0,
            ymin: y0,
            xmax: x1,
            ymax: y1,
            score: s,
            keypoints: vec![[x0, y0], [x1, y1]],
        }
    }

    #[test]
    fn anchors_match_blazeface_layout() {
        let a = generate_anchors(128, &[8, 16], &[2, 6], 0.5);
        assert_eq!(a.len(), 896);
        assert_eq!(a[0], [0.5 / 16.0, 0.5 / 16.0]);
        assert_eq!(a[1], a[0]);
        assert_eq!(a[2], [1.5 / 16.0, 0.5 / 16.0]);
        assert_eq!(a[32], [0.5 / 16.0, 1.5 / 16.0]); // next row after 16 cells × 2
        assert_eq!(a[512], [0.5 / 8.0, 0.5 / 8.0]);
        assert_eq!(a[512 + 6], [1.5 / 8.0, 0.5 / 8.0]);
        assert_eq!(a[895], [7.5 / 8.0, 7.5 / 8.0]);
    }

    #[test]
    fn decode_box_and_keypoints() {
        let anchors = vec![[0.25, 0.5], [0.75, 0.75]];
        let mut reg = vec![0.0f32; 2 * 8];
        // anchor 0: centre offset (+12.8, -12.8) px of 128 → (+0.1, -0.1); size 64 px → 0.5.
        reg[..8].copy_from_slice(&[12.8, -12.8, 64.0, 32.0, 0.0, 0.0, 6.4, 6.4]);
        let logits = [2.0, -3.0];
        let d = decode(&reg, &logits, &anchors, 128.0, 0.5);
        assert_eq!(d.len(), 1);
        let d = &d[0];
        assert!((d.score - sigmoid(2.0)).abs() < 1e-6);
        assert!((d.xmin - (0.35 - 0.25)).abs() < 1e-6 && (d.xmax - 0.6).abs() < 1e-6);
        assert!((d.ymin - (0.4 - 0.125)).abs() < 1e-6 && (d.ymax - 0.525).abs() < 1e-6);
        assert_eq!(d.keypoints.len(), 2);
        assert!((d.keypoints[1][0] - 0.3).abs() < 1e-6 && (d.keypoints[1][1] - 0.55).abs() < 1e-6);
    }

    #[test]
    fn iou_known_values() {
        let a = det(0.0, 0.0, 2.0, 2.0, 1.0);
        let b = det(1.0, 0.0, 3.0, 2.0, 1.0);
        assert!((iou(&a, &b) - 1.0 / 3.0).abs() < 1e-6);
        assert_eq!(iou(&a, &det(5.0, 5.0, 6.0, 6.0, 1.0)), 0.0);
        assert!((iou(&a, &a) - 1.0).abs() < 1e-6);
    }

    #[test]
    fn weighted_nms_merges_clusters_and_keeps_separate_faces() {
        let dets = vec![
            det(0.0, 0.0, 10.0, 10.0, 0.9),
            det(1.0, 1.0, 11.0, 11.0, 0.6),
            det(50.0, 50.0, 60.0, 60.0, 0.7),
            det(0.0, 0.0, 10.0, 10.3, 0.3),
        ];
        let out = weighted_nms(dets, 0.3);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].score, 0.9);
        let w = 0.9 + 0.6 + 0.3;
        assert!((out[0].xmin - 0.6 / w).abs() < 1e-5);
        assert!((out[0].ymax - (0.9 * 10.0 + 0.6 * 11.0 + 0.3 * 10.3) / w).abs() < 1e-5);
        assert!((out[0].keypoints[1][0] - (0.9 * 10.0 + 0.6 * 11.0 + 0.3 * 10.0) / w).abs() < 1e-5);
        assert_eq!(out[1].xmin, 50.0);
        assert!(weighted_nms(Vec::new(), 0.3).is_empty());
    }

    #[test]
    fn letterbox_maps_back() {
        let lb = Letterbox::for_size(640, 480);
        assert_eq!(lb.side, 640.0);
        assert_eq!(lb.pad_y, 80.0);
        assert_eq!(lb.to_pixels([0.5, 0.5]), [320.0, 240.0]);
        assert_eq!(lb.to_pixels([0.0, 0.125]), [0.0, 0.0]);
        let img = RgbImage::from_pixel(64, 32, image::Rgb([255, 255, 255]));
        let mut buf = Vec::new();
        letterbox_input(&img, 16, [-1.0, 1.0], &mut buf);
        assert_eq!(buf.len(), 16 * 16 * 3);
        assert_eq!(buf[0], -1.0); // padding row
        assert!((buf[(8 * 16 + 8) * 3] - 1.0).abs() < 1e-6); // image centre, white
    }

    #[test]
    fn crop_levels_a_tilted_eye_line() {
        // A white image with one dark square; an eye line tilted by 90° rotates the crop so the
        // square appears in a different quadrant than without rotation.
        let mut img = RgbImage::from_pixel(100, 100, image::Rgb([255, 255, 255]));
        for y in 20..40 {
            for x in 60..80 {
                img.put_pixel(x, y, image::Rgb([0, 0, 0]));
            }
        }
        let mut d = det(25.0, 25.0, 75.0, 75.0, 1.0);
        d.keypoints = vec![[40.0, 50.0], [60.0, 50.0]]; // level eyes
        let mut c = vec![0.0; 10 * 10];
        aligned_crop(&img, &d, 10, 2.0, &mut c);
        // Unrotated: the dark square (x 60..80, y 20..40) is in the top-right quadrant.
        assert!(c[2 * 10 + 7] < 10.0 && c[7 * 10 + 2] > 245.0);
        d.keypoints = vec![[50.0, 40.0], [50.0, 60.0]]; // eye line pointing down: angle 90°
        assert!((eye_angle(&d) - std::f32::consts::FRAC_PI_2).abs() < 1e-6);
        aligned_crop(&img, &d, 10, 2.0, &mut c);
        // Rotated by +90°: crop x axis runs down the image, crop y axis runs to image left.
        // Image point (70,30) = centre + (20,-20): u = 20*cos + -20*sin... → u=-20, v=-20 → top-left.
        assert!(c[2 * 10 + 2] < 10.0, "{:?}", &c);
        // Gray conversion of a pure colour follows BT.601.
        let red = RgbImage::from_pixel(4, 4, image::Rgb([255, 0, 0]));
        let mut g = vec![0.0; 4];
        aligned_crop(&red, &det(0.0, 0.0, 4.0, 4.0, 1.0), 2, 1.0, &mut g);
        assert!((g[0] - 255.0 * 0.299).abs() < 1e-3);
    }
}
