//! The expression classifier (`[models.expression]`): gray face crops → calibrated probabilities
//! of the 7 FER-2013 classes, with the manifest's normalisation, mirror-image test-time
//! augmentation and temperature, in the precision [`crate::precision`] picks for this CPU.

use emo_api_types::Emotion;

use crate::classifier::Classifier;
use crate::face::DEFAULT_CROP_SCALE;
use crate::manifest::Manifest;
use crate::model_precision::{self as precision, PrecisionChoice, PrecisionPolicy, Probe};
use crate::runtime::RuntimeConfig;
use crate::{Error, Result};

/// The expression classifier with its preprocessing from `[models.expression]`.
#[derive(Debug)]
pub struct ExpressionModel {
    pub clf: Classifier,
    pub size: usize,
    scale: f32,
    /// `1 / scale` when it is a whole number (255): pixels are divided by it (see `unit`).
    divisor: Option<f32>,
    mean: f32,
    std: f32,
    tta_hflip: bool,
    pub crop_scale: f32,
    /// Which precision of the model runs, and why.
    pub precision: PrecisionChoice,
}

impl ExpressionModel {
    /// Load with the precision measured fastest on this CPU (no cache).
    pub fn load(manifest: &Manifest, rt: &RuntimeConfig) -> Result<Self> {
        Self::load_with(manifest, rt, &PrecisionPolicy::Auto, None)
    }

    /// Load the precision `policy` picks among those the manifest ships; `cache` remembers the
    /// measurement (see [`crate::precision`]).
    pub fn load_with(
        manifest: &Manifest,
        rt: &RuntimeConfig,
        policy: &PrecisionPolicy,
        cache: Option<&std::path::Path>,
    ) -> Result<Self> {
        const N: &str = "expression";
        let entry = manifest.entry(N)?;
        let shape = entry.req(N, "input_shape", &entry.input_shape)?;
        let probe = Probe {
            input_name: entry.req(N, "input_name", &entry.input_name)?.clone(),
            item_shape: shape.iter().skip(1).map(|&d| d.max(1) as usize).collect(),
            // The product classifies a face together with its mirror image.
            batch: if entry.tta_hflip.unwrap_or(false) {
                2
            } else {
                1
            },
            runs: 20,
            rounds: 3,
        };
        let variants = precision::variants(manifest, N)?;
        let (choice, session) = precision::choose(
            N,
            &variants,
            policy,
            rt,
            &crate::classifier::open,
            &probe,
            cache,
        )?;
        let clf = Classifier::with_session(manifest, N, session)?;
        let e = &clf.entry;
        if clf.item_shape.len() != 3
            || clf.item_shape[0] != 1
            || clf.item_shape[1] != clf.item_shape[2]
        {
            return Err(Error::Manifest(format!(
                "[models.{N}] input_shape must be [-1,1,S,S] (gray NCHW)"
            )));
        }
        if e.layout.as_deref().unwrap_or("NCHW") != "NCHW"
            || e.color.as_deref().unwrap_or("gray") != "gray"
        {
            return Err(Error::Manifest(format!(
                "[models.{N}] only NCHW gray input is supported"
            )));
        }
        if clf.labels.len() != Emotion::FACE.len()
            || clf.labels.iter().zip(Emotion::FACE).any(|(a, b)| *a != b)
        {
            return Err(Error::Manifest(format!(
                "[models.{N}] labels must be the 7 FER-2013 classes in order"
            )));
        }
        let scale = *e.req(N, "scale", &e.scale)?;
        let crop_scale = e
            .extra
            .get("crop_scale")
            .and_then(|v| v.as_float())
            .map_or(DEFAULT_CROP_SCALE, |v| v as f32);
        Ok(Self {
            size: clf.item_shape[1],
            scale,
            divisor: {
                let inv = 1.0 / scale as f64;
                ((inv - inv.round()).abs() < 1e-3).then_some(inv.round() as f32)
            },
            mean: *e.req(N, "mean", &e.mean)?,
            std: *e.req(N, "std", &e.std)?,
            tta_hflip: e.tta_hflip.unwrap_or(false),
            crop_scale,
            clf,
            precision: choice,
        })
    }

    /// A pixel value times `scale`, computed as the training code computes it: `scale` is 1/255,
    /// and the training code divides by 255. The int8 model quantizes its input with a step of
    /// 2/255 around zero point 128, so every pixel lands exactly on a rounding boundary and
    /// `v * 0.003921569` (rounded differently from `v / 255` for 55 of the 256 gray levels) would
    /// move a fifth of the pixels by one quantization level away from what validation measured.
    fn unit(&self, v: f32) -> f32 {
        match self.divisor {
            Some(d) => v / d,
            None => v * self.scale,
        }
    }

    /// Normalise one gray crop (0..255) into `dst` (optionally mirrored).
    fn normalise(&self, crop: &[f32], mirror: bool, dst: &mut Vec<f32>) {
        let s = self.size;
        for y in 0..s {
            for x in 0..s {
                let sx = if mirror { s - 1 - x } else { x };
                dst.push((self.unit(crop[y * s + sx]) - self.mean) / self.std);
            }
        }
    }

    /// Calibrated probabilities (7 classes) for gray crops of `size × size` (0..255), all in one
    /// batch (twice the batch with `tta_hflip`: logits of image and mirror are averaged).
    pub fn classify(&self, crops: &[Vec<f32>]) -> Result<Vec<Vec<f32>>> {
        let n = crops.len();
        let mut data =
            Vec::with_capacity(n * self.size * self.size * if self.tta_hflip { 2 } else { 1 });
        for c in crops {
            self.normalise(c, false, &mut data);
        }
        if self.tta_hflip {
            for c in crops {
                self.normalise(c, true, &mut data);
            }
        }
        let logits = self
            .clf
            .logits(&data, if self.tta_hflip { 2 * n } else { n })?;
        Ok((0..n)
            .map(|i| {
                let l: Vec<f32> = if self.tta_hflip {
                    logits[i]
                        .iter()
                        .zip(&logits[n + i])
                        .map(|(a, b)| (a + b) / 2.0)
                        .collect()
                } else {
                    logits[i].clone()
                };
                self.clf.probabilities(&l)
            })
            .collect())
    }
}
