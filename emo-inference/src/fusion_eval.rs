//! `emod eval fusion`: face-only, voice-only, fused and `mode` accuracy with ECE on
//! label-matched pairs (every speech clip with a random face image of its class, seeded). Each
//! estimate carries the evidence the live pipeline would give it (detector score and face size;
//! voice confidence and out-of-domain distance), so the reliability rules are measured as they
//! run. models/README.md ("Fusion") reports the figures.

use std::path::{Path, PathBuf};

use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::Serialize;

use crate::audio;
use crate::classifier::argmax;
use crate::engine::Engine;
use crate::eval::{face_files, speech_files_of, SpeechCorpus};
use crate::fusion::{self, FusionWeights, Pair, Strategy, K};
use crate::reliability::{FaceEvidence, VoiceEvidence};
use crate::{Error, Result};

/// One modality's probabilities (7 classes) with the evidence behind them.
type Estimate<E> = ([f32; K], E);

/// Result of `emod eval fusion` (7 shared classes).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FusionReport {
    pub n: usize,
    pub face_accuracy: f64,
    pub speech_accuracy: f64,
    pub fused_accuracy: f64,
    pub mode_accuracy: f64,
    /// Expected calibration error (15 bins) of each modality and of the fused estimates.
    pub face_ece: f64,
    pub speech_ece: f64,
    pub fused_ece: f64,
    /// The same pairs fused by the previous rule (voice trust from its confidence only, every
    /// face trusted in full): what the face and domain evidence changed.
    pub fused_confidence_only_accuracy: f64,
    pub fused_confidence_only_ece: f64,
    /// Mean trust the rules gave faces and voices, the share of voices below the abstain
    /// threshold, and the median out-of-domain distance with the share beyond `domain.ok`.
    pub face_reliability_mean: f64,
    pub voice_reliability_mean: f64,
    pub voice_abstained: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub voice_domain_distance_median: Option<f64>,
    pub voice_out_of_domain: f64,
    pub speech_corpus: SpeechCorpus,
    pub face_weight: f32,
    pub voice_weight: f32,
    pub voice_full_confidence: f32,
    pub fused_temperature: f32,
    /// Set with `--tune`: weights chosen on the even-indexed pairs, accuracies above measured
    /// on the odd-indexed (held-out) pairs only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tuned: Option<bool>,
    pub seed: u64,
}

impl FusionReport {
    /// The text `emod eval fusion` prints.
    pub fn to_text(&self) -> String {
        let tuned = if self.tuned == Some(true) {
            ", weights tuned on the other half"
        } else {
            ""
        };
        let dist = self
            .voice_domain_distance_median
            .map_or("-".into(), |d| format!("{d:.3}"));
        [
            format!("fusion on {} face/voice pairs (seed {}{tuned}):", self.n, self.seed),
            format!("  speech corpus     {:?}", self.speech_corpus),
            format!("  face only         {:.4}  ECE {:.4}", self.face_accuracy, self.face_ece),
            format!("  speech only       {:.4}  ECE {:.4}", self.speech_accuracy, self.speech_ece),
            format!(
                "  fused (calibrated){:>7.4}  ECE {:.4}  weights face {:.2} voice {:.2}, full voice trust from confidence {:.2}, temperature {:.2}",
                self.fused_accuracy, self.fused_ece, self.face_weight, self.voice_weight,
                self.voice_full_confidence, self.fused_temperature
            ),
            format!(
                "  fused by voice confidence only (previous rule) {:.4}  ECE {:.4}",
                self.fused_confidence_only_accuracy, self.fused_confidence_only_ece
            ),
            format!("  mode (vote)       {:.4}", self.mode_accuracy),
            format!(
                "  mean trust: face {:.3}, voice {:.3}; voice abstained {:.3}; voice domain distance median {dist}, beyond domain.ok {:.3}",
                self.face_reliability_mean, self.voice_reliability_mean, self.voice_abstained,
                self.voice_out_of_domain
            ),
        ]
        .join("\n")
            + "\n"
    }
}

/// What `emod eval fusion` runs on.
#[derive(Debug, Clone)]
struct FusionEvalArgs<'a> {
    faces_dir: &'a Path,
    speech_dir: &'a Path,
    corpus: SpeechCorpus,
    seed: u64,
    crops: bool,
    actors: Option<&'a [u32]>,
    tune: bool,
}

/// `emod eval fusion --faces DIR --speech DIR --seed N`: every speech clip (label folded to the
/// 7 classes) is paired with a random face image of the same class (seeded); single-modality,
/// calibrated-fusion and mode accuracies on those pairs. `crops`: classify face images as
/// crops (FER-2013 layout) instead of running the detector; `tune`: choose the weights on the
/// even-indexed pairs and report the odd-indexed ones.
#[allow(clippy::too_many_arguments)]
pub fn eval_fusion(
    engine: &Engine,
    faces_dir: &Path,
    speech_dir: &Path,
    corpus: SpeechCorpus,
    seed: u64,
    crops: bool,
    actors: Option<&[u32]>,
    tune: bool,
    progress: &dyn Fn(&str, usize, usize),
) -> Result<FusionReport> {
    let args = FusionEvalArgs {
        faces_dir,
        speech_dir,
        corpus,
        seed,
        crops,
        actors,
        tune,
    };
    run(engine, &args, progress)
}

fn run(
    engine: &Engine,
    a: &FusionEvalArgs,
    progress: &dyn Fn(&str, usize, usize),
) -> Result<FusionReport> {
    let files = pair_files(a)?;
    let n = files.len();
    let fpaths: Vec<PathBuf> = files.iter().map(|p| p.0.clone()).collect();
    let spaths: Vec<PathBuf> = files.iter().map(|p| p.1.clone()).collect();
    let faces = face_estimates(engine, &fpaths, a.crops, &|d| progress("faces", d, n))?;
    let voices = voice_estimates(engine, &spaths, &|d| progress("speech", d, n))?;
    let rows: Vec<Pair> = faces
        .into_iter()
        .zip(voices)
        .zip(&files)
        .filter_map(|((f, v), (_, _, y))| {
            let ((face, face_evidence), (voice, voice_evidence)) = (f?, v?);
            Some(Pair {
                face,
                face_evidence,
                voice,
                voice_evidence,
                y: *y,
            })
        })
        .collect();
    let mut weights = engine.weights;
    let eval_rows: Vec<Pair> = if a.tune {
        let train: Vec<Pair> = rows.iter().step_by(2).copied().collect();
        weights = fusion::tune_weights(&train, weights).0;
        rows.iter().skip(1).step_by(2).copied().collect()
    } else {
        rows
    };
    Ok(report(&eval_rows, weights, a))
}

/// Pair every speech clip with the next face of its class (faces shuffled per class by `seed`).
fn pair_files(a: &FusionEvalArgs) -> Result<Vec<(PathBuf, PathBuf, usize)>> {
    let speech = speech_files_of(a.speech_dir, a.corpus, a.actors)?;
    let faces = face_files(a.faces_dir)?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(a.seed);
    let mut by_class: Vec<Vec<PathBuf>> = vec![Vec::new(); K];
    for (p, k) in faces {
        by_class[k].push(p);
    }
    for c in by_class.iter_mut() {
        c.shuffle(&mut rng);
    }
    let mut cursor = [0usize; K];
    let mut pairs = Vec::new();
    for (sp_path, e) in speech {
        let k = e.to_face_space().index();
        if by_class[k].is_empty() {
            continue;
        }
        pairs.push((
            by_class[k][cursor[k] % by_class[k].len()].clone(),
            sp_path,
            k,
        ));
        cursor[k] += 1;
    }
    if pairs.is_empty() {
        return Err(Error::Media(
            "no face/speech pairs with shared labels".into(),
        ));
    }
    Ok(pairs)
}

/// Face probabilities with their evidence. A crop (FER-2013 layout) is a face by construction
/// (score 1) of its own size; otherwise the detector's best face gives score and box.
pub(crate) fn face_estimates(
    engine: &Engine,
    files: &[PathBuf],
    crops: bool,
    progress: &dyn Fn(usize),
) -> Result<Vec<Option<Estimate<FaceEvidence>>>> {
    let to7 = |p: &[f32]| {
        let mut a = [0.0f32; K];
        a.iter_mut().zip(p).for_each(|(x, y)| *x = *y);
        a
    };
    if crops {
        let probs = crate::eval::face_probabilities(engine, files, true, progress)?;
        return Ok(probs
            .into_iter()
            .zip(files)
            .map(|(p, f)| {
                let (w, h) = image::image_dimensions(f).ok()?;
                let ev = FaceEvidence {
                    detection_score: 1.0,
                    crop_px: w.min(h) as f32,
                };
                Some((to7(&p?), ev))
            })
            .collect());
    }
    let fp = engine.faces()?;
    let rules = engine.weights.rules;
    let mut out = Vec::with_capacity(files.len());
    for (i, p) in files.iter().enumerate() {
        let best = crate::media::read_image(p, &crate::MediaLimits::default())
            .ok()
            .and_then(|img| fp.analyze(&img).ok())
            .and_then(|faces| faces.into_iter().next());
        out.push(best.map(|f| {
            let d = &f.detection;
            let ev = rules.face_evidence(d.score, d.width(), d.height());
            (to7(&f.probabilities), ev)
        }));
        progress(i + 1);
    }
    Ok(out)
}

/// Voice probabilities (folded to 7 classes) with confidence and out-of-domain distance, one
/// centre window per clip as in training.
fn voice_estimates(
    engine: &Engine,
    files: &[PathBuf],
    progress: &dyn Fn(usize),
) -> Result<Vec<Option<Estimate<VoiceEvidence>>>> {
    let sp = engine.speech()?;
    let mut out = Vec::with_capacity(files.len());
    for (ci, chunk) in files.chunks(32).enumerate() {
        let feats: Vec<Option<Vec<f32>>> = chunk
            .iter()
            .map(|p| {
                let a = audio::read_wav(p, &crate::MediaLimits::default()).ok()?;
                Some(sp.clip_features(&sp.prepare(&a).ok()?))
            })
            .collect();
        let good: Vec<Vec<f32>> = feats.iter().flatten().cloned().collect();
        let mut probs = sp.classify_features(&good)?.into_iter();
        for f in feats {
            out.push(f.and_then(|f| {
                let p = probs.next()?;
                let ev = VoiceEvidence {
                    confidence: argmax(&p).1,
                    domain_distance: sp.domain_distance(&f),
                };
                Some((fusion::to_face_space(&p, sp.labels()), ev))
            }));
        }
        progress(((ci + 1) * 32).min(files.len()));
    }
    Ok(out)
}

/// The figures of one set of pairs under `w`.
fn report(rows: &[Pair], w: FusionWeights, a: &FusionEvalArgs) -> FusionReport {
    let m = rows.len().max(1) as f64;
    let acc = |f: &dyn Fn(&Pair) -> usize| rows.iter().filter(|r| f(r) == r.y).count() as f64 / m;
    let ece = |f: &dyn Fn(&Pair) -> [f32; K]| {
        fusion::ece(&rows.iter().map(|r| (f(r), r.y)).collect::<Vec<_>>())
    };
    let mut old = w;
    old.rules.face_px_zero = 0.0;
    old.rules.face_px_full = 0.0;
    old.rules.face_score_zero = 0.0;
    old.rules.face_score_full = 0.0;
    old.rules.domain_ok = f32::INFINITY;
    old.rules.domain_far = f32::INFINITY;
    let mode = |r: &Pair| {
        let (f, v) = r.inputs(&w);
        let v = (!w.rules.voice_abstains(r.voice_evidence.confidence)).then_some(v);
        fusion::fuse(Strategy::Mode, Some(&f), v.as_ref(), w).map_or(usize::MAX, |x| x.1)
    };
    let mean = |f: &dyn Fn(&Pair) -> f64| rows.iter().map(f).sum::<f64>() / m;
    let mut dists: Vec<f32> = rows
        .iter()
        .filter_map(|r| r.voice_evidence.domain_distance)
        .collect();
    dists.sort_by(f32::total_cmp);
    FusionReport {
        n: rows.len(),
        face_accuracy: acc(&|r| argmax(&r.face).0),
        speech_accuracy: acc(&|r| argmax(&r.voice).0),
        fused_accuracy: acc(&|r| argmax(&r.fused(w)).0),
        mode_accuracy: acc(&mode),
        face_ece: ece(&|r| r.face),
        speech_ece: ece(&|r| r.voice),
        fused_ece: ece(&|r| r.fused(w)),
        fused_confidence_only_accuracy: acc(&|r| argmax(&r.fused(old)).0),
        fused_confidence_only_ece: ece(&|r| r.fused(old)),
        face_reliability_mean: mean(&|r| w.rules.face(r.face_evidence) as f64),
        voice_reliability_mean: mean(&|r| w.rules.voice(r.voice_evidence) as f64),
        voice_abstained: mean(&|r| {
            f64::from(u8::from(
                w.rules.voice_abstains(r.voice_evidence.confidence),
            ))
        }),
        voice_domain_distance_median: dists.get(dists.len() / 2).map(|d| *d as f64),
        voice_out_of_domain: dists.iter().filter(|&&d| d > w.rules.domain_ok).count() as f64 / m,
        speech_corpus: a.corpus,
        face_weight: w.face,
        voice_weight: w.voice,
        voice_full_confidence: w.rules.voice_full_confidence,
        fused_temperature: w.temperature,
        tuned: a.tune.then_some(true),
        seed: a.seed,
    }
}
