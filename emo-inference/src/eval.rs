//! `emod eval`: accuracy, macro-F1, per-class recall/precision and confusion matrices for the
//! face model on an image-folder dataset, the speech model on RAVDESS, and fusion on pairs of
//! the two. Runs the same model code as the daemon.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use emo_api_types::Emotion;
use image::imageops::FilterType;
use serde::Serialize;

use crate::audio;
use crate::classifier::argmax;
use crate::engine::Engine;
use crate::{Error, Result};

/// Per-class figures.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ClassStats {
    pub recall: f64,
    pub precision: f64,
    pub f1: f64,
    pub n: usize,
}

/// Metrics in the JSON shape of `emod eval … --json`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct EvalReport {
    pub accuracy: f64,
    pub macro_f1: f64,
    pub per_class: BTreeMap<String, ClassStats>,
    /// `confusion[true][predicted]`, rows/columns in `labels` order.
    pub confusion: Vec<Vec<usize>>,
    pub labels: Vec<String>,
    pub n: usize,
    /// Files that could not be read (not counted in `n`).
    pub skipped: usize,
}

/// Build the report from `(true, predicted)` class indices.
pub fn metrics(labels: &[Emotion], pairs: &[(usize, usize)], skipped: usize) -> EvalReport {
    let k = labels.len();
    let mut cm = vec![vec![0usize; k]; k];
    for &(t, p) in pairs {
        if t < k && p < k {
            cm[t][p] += 1;
        }
    }
    let n: usize = cm.iter().flatten().sum();
    let correct: usize = (0..k).map(|i| cm[i][i]).sum();
    let mut per_class = BTreeMap::new();
    let mut f1s = Vec::new();
    for i in 0..k {
        let support: usize = cm[i].iter().sum();
        let predicted: usize = (0..k).map(|r| cm[r][i]).sum();
        let recall = if support > 0 {
            cm[i][i] as f64 / support as f64
        } else {
            0.0
        };
        let precision = if predicted > 0 {
            cm[i][i] as f64 / predicted as f64
        } else {
            0.0
        };
        let f1 = if recall + precision > 0.0 {
            2.0 * recall * precision / (recall + precision)
        } else {
            0.0
        };
        if support > 0 {
            f1s.push(f1);
        }
        per_class.insert(
            labels[i].to_string(),
            ClassStats {
                recall,
                precision,
                f1,
                n: support,
            },
        );
    }
    EvalReport {
        accuracy: if n > 0 {
            correct as f64 / n as f64
        } else {
            0.0
        },
        macro_f1: if f1s.is_empty() {
            0.0
        } else {
            f1s.iter().sum::<f64>() / f1s.len() as f64
        },
        per_class,
        confusion: cm,
        labels: labels.iter().map(|l| l.to_string()).collect(),
        n,
        skipped,
    }
}

impl EvalReport {
    /// Human-readable table.
    pub fn to_table(&self) -> String {
        let mut s = format!(
            "n = {}{}\naccuracy  {:.4}\nmacro-F1  {:.4}\n\n{:<10} {:>7} {:>9} {:>7} {:>6}\n",
            self.n,
            if self.skipped > 0 {
                format!(" ({} unreadable files skipped)", self.skipped)
            } else {
                String::new()
            },
            self.accuracy,
            self.macro_f1,
            "class",
            "recall",
            "precision",
            "F1",
            "n"
        );
        for l in &self.labels {
            let c = &self.per_class[l];
            s += &format!(
                "{:<10} {:>7.4} {:>9.4} {:>7.4} {:>6}\n",
                l, c.recall, c.precision, c.f1, c.n
            );
        }
        s += "\nconfusion (rows: true, columns: predicted)\n";
        s += &format!("{:<10}", "");
        for l in &self.labels {
            s += &format!(" {:>8}", &l[..l.len().min(8)]);
        }
        s.push('\n');
        for (l, row) in self.labels.iter().zip(&self.confusion) {
            s += &format!("{l:<10}");
            for v in row {
                s += &format!(" {v:>8}");
            }
            s.push('\n');
        }
        s
    }
}

fn is_image(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "jpg" | "jpeg" | "png"))
}

/// `DIR/<class>/*.jpg|png` for the 7 FER-2013 classes (sorted; missing class folders are empty).
pub fn face_files(dir: &Path) -> Result<Vec<(PathBuf, usize)>> {
    if !dir.is_dir() {
        return Err(Error::Media(format!("{}: not a directory", dir.display())));
    }
    let mut v = Vec::new();
    for (k, e) in Emotion::FACE.iter().enumerate() {
        let sub = dir.join(e.as_str());
        let Ok(rd) = std::fs::read_dir(&sub) else {
            continue;
        };
        let mut files: Vec<PathBuf> = rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| is_image(p))
            .collect();
        files.sort();
        v.extend(files.into_iter().map(|p| (p, k)));
    }
    if v.is_empty() {
        return Err(Error::Media(format!(
            "{}: no images found in <class>/ folders (angry, disgust, fear, happy, sad, surprise, neutral)",
            dir.display()
        )));
    }
    Ok(v)
}

/// Load a face image for `--crops` mode: grayscale, resized to the model input if needed
/// (FER-2013 files are already 48×48 face crops).
fn load_crop(path: &Path, size: usize) -> Result<Vec<f32>> {
    let img = image::ImageReader::open(path)?
        .with_guessed_format()?
        .decode()
        .map_err(|e| Error::Media(format!("{}: {e}", path.display())))?;
    // BT.601 luma as in training (PIL convert("L")).
    let rgb = img.to_rgb8();
    let rgb = if rgb.width() as usize != size || rgb.height() as usize != size {
        image::imageops::resize(&rgb, size as u32, size as u32, FilterType::Triangle)
    } else {
        rgb
    };
    Ok(rgb
        .pixels()
        .map(|p| (p[0] as f32 * 299.0 + p[1] as f32 * 587.0 + p[2] as f32 * 114.0) / 1000.0)
        .collect())
}

/// Face probabilities (7) for image files: `crops = true` classifies each file as a face crop
/// (FER-2013 layout); otherwise the detector runs and the best face is classified (`None` when
/// no face is found or the file is unreadable).
pub fn face_probabilities(
    engine: &Engine,
    files: &[PathBuf],
    crops: bool,
    progress: &dyn Fn(usize),
) -> Result<Vec<Option<Vec<f32>>>> {
    let fp = engine.faces()?;
    let size = fp.expression.size;
    let mut out = Vec::with_capacity(files.len());
    for (ci, chunk) in files.chunks(64).enumerate() {
        if crops {
            let loaded: Vec<Option<Vec<f32>>> =
                chunk.iter().map(|p| load_crop(p, size).ok()).collect();
            let good: Vec<Vec<f32>> = loaded.iter().flatten().cloned().collect();
            let mut probs = fp.expression.classify(&good)?.into_iter();
            for l in loaded {
                out.push(l.and_then(|_| probs.next()));
            }
        } else {
            for p in chunk {
                let r = crate::media::read_image(p, &crate::MediaLimits::default())
                    .ok()
                    .and_then(|img| fp.analyze(&img).ok());
                out.push(r.and_then(|faces| faces.into_iter().next().map(|f| f.probabilities)));
            }
        }
        progress(((ci + 1) * 64).min(files.len()));
    }
    Ok(out)
}

/// `emod eval faces DIR`.
pub fn eval_faces(
    engine: &Engine,
    dir: &Path,
    crops: bool,
    progress: &dyn Fn(usize, usize),
) -> Result<EvalReport> {
    let files = face_files(dir)?;
    let paths: Vec<PathBuf> = files.iter().map(|(p, _)| p.clone()).collect();
    let total = paths.len();
    let probs = face_probabilities(engine, &paths, crops, &|d| progress(d, total))?;
    let mut pairs = Vec::new();
    let mut skipped = 0;
    for ((_, y), p) in files.iter().zip(probs) {
        match p {
            Some(p) => pairs.push((*y, argmax(&p).0)),
            // No face found: counts as wrong in detector mode, skipped when unreadable.
            None if !crops => pairs.push((*y, usize::MAX)),
            None => skipped += 1,
        }
    }
    Ok(metrics(&Emotion::FACE, &pairs, skipped))
}

/// RAVDESS emotion code (`03-01-EE-…`) → label.
/// The file name without its `.wav` / `.WAV` extension.
fn wav_stem(file_name: &str) -> Option<&str> {
    file_name
        .strip_suffix(".wav")
        .or_else(|| file_name.strip_suffix(".WAV"))
}

pub fn ravdess_label(file_name: &str) -> Option<Emotion> {
    let stem = wav_stem(file_name)?;
    let parts: Vec<&str> = stem.split('-').collect();
    if parts.len() != 7 {
        return None;
    }
    Some(match parts[2] {
        "01" => Emotion::Neutral,
        "02" => Emotion::Calm,
        "03" => Emotion::Happy,
        "04" => Emotion::Sad,
        "05" => Emotion::Angry,
        "06" => Emotion::Fear,
        "07" => Emotion::Disgust,
        "08" => Emotion::Surprise,
        _ => return None,
    })
}

/// EmoDB (`03a01Fa.wav`: speaker, text, emotion letter, version) → label. Boredom (`L`) has no
/// class here and is left out.
pub fn emodb_label(file_name: &str) -> Option<Emotion> {
    let stem = wav_stem(file_name)?;
    if stem.len() != 7 || !stem.is_ascii() || !stem[..2].bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(match &stem[5..6] {
        "W" => Emotion::Angry,
        "E" => Emotion::Disgust,
        "A" => Emotion::Fear,
        "F" => Emotion::Happy,
        "T" => Emotion::Sad,
        "N" => Emotion::Neutral,
        _ => return None,
    })
}

/// Which naming scheme gives the speech clips' labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SpeechCorpus {
    /// `03-01-EE-II-SS-RR-AA.wav` (the speech model's training corpus).
    Ravdess,
    /// `03a01Fa.wav` (cross-corpus validation; never trained on).
    Emodb,
}

impl std::str::FromStr for SpeechCorpus {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "ravdess" => Ok(Self::Ravdess),
            "emodb" => Ok(Self::Emodb),
            o => Err(format!("unknown speech corpus `{o}` (ravdess or emodb)")),
        }
    }
}

impl SpeechCorpus {
    fn label(self, file_name: &str) -> Option<Emotion> {
        match self {
            Self::Ravdess => ravdess_label(file_name),
            Self::Emodb => emodb_label(file_name),
        }
    }

    /// The corpus whose naming the WAVs below `dir` follow (RAVDESS first).
    pub fn detect(dir: &Path) -> Result<Self> {
        for c in [Self::Ravdess, Self::Emodb] {
            if speech_files_of(dir, c, None).is_ok() {
                return Ok(c);
            }
        }
        Err(Error::Media(format!(
            "{}: neither RAVDESS-named (03-01-EE-II-SS-RR-AA.wav) nor EmoDB-named (03a01Fa.wav) WAV files",
            dir.display()
        )))
    }
}

/// RAVDESS actor number (last field).
pub fn ravdess_actor(file_name: &str) -> Option<u32> {
    wav_stem(file_name)?.rsplit('-').next()?.parse().ok()
}

/// All RAVDESS-named WAVs below `dir` (actor folders or flat), sorted, optionally restricted to
/// some actors.
pub fn speech_files(dir: &Path, actors: Option<&[u32]>) -> Result<Vec<(PathBuf, Emotion)>> {
    speech_files_of(dir, SpeechCorpus::Ravdess, actors)
}

/// All WAVs below `dir` named as `corpus` names them, sorted; `actors` applies to RAVDESS.
pub fn speech_files_of(
    dir: &Path,
    corpus: SpeechCorpus,
    actors: Option<&[u32]>,
) -> Result<Vec<(PathBuf, Emotion)>> {
    fn walk(d: &Path, out: &mut Vec<PathBuf>, depth: usize) {
        let Ok(rd) = std::fs::read_dir(d) else { return };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() && depth < 3 {
                walk(&p, out, depth + 1);
            } else if p.extension().is_some_and(|x| x.eq_ignore_ascii_case("wav")) {
                out.push(p);
            }
        }
    }
    if !dir.is_dir() {
        return Err(Error::Media(format!("{}: not a directory", dir.display())));
    }
    let mut all = Vec::new();
    walk(dir, &mut all, 0);
    all.sort();
    let v: Vec<(PathBuf, Emotion)> = all
        .into_iter()
        .filter_map(|p| {
            let name = p.file_name()?.to_str()?.to_string();
            let e = corpus.label(&name)?;
            if let (Some(a), SpeechCorpus::Ravdess) = (actors, corpus) {
                if !a.contains(&ravdess_actor(&name)?) {
                    return None;
                }
            }
            Some((p, e))
        })
        .collect();
    if v.is_empty() {
        return Err(Error::Media(match corpus {
            SpeechCorpus::Ravdess => format!(
                "{}: no RAVDESS-named WAV files (03-01-EE-II-SS-RR-AA.wav)",
                dir.display()
            ),
            SpeechCorpus::Emodb => {
                format!("{}: no EmoDB-named WAV files (03a01Fa.wav)", dir.display())
            }
        }));
    }
    Ok(v)
}

/// Speech probabilities (model label order) for clips: one centre window per clip, as in
/// training. `None` for unreadable files.
pub fn speech_probabilities(
    engine: &Engine,
    files: &[PathBuf],
    progress: &dyn Fn(usize),
) -> Result<Vec<Option<Vec<f32>>>> {
    let sp = engine.speech()?;
    let mut out = Vec::with_capacity(files.len());
    for (ci, chunk) in files.chunks(32).enumerate() {
        let clips: Vec<Option<Vec<f32>>> = chunk
            .iter()
            .map(|p| {
                audio::read_wav(p, &crate::MediaLimits::default())
                    .ok()
                    .and_then(|a| sp.prepare(&a).ok())
            })
            .collect();
        let good: Vec<Vec<f32>> = clips.iter().flatten().cloned().collect();
        let mut probs = sp.classify_clips(&good)?.into_iter();
        for c in clips {
            out.push(c.and_then(|_| probs.next()));
        }
        progress(((ci + 1) * 32).min(files.len()));
    }
    Ok(out)
}

/// `emod eval speech DIR` (8 classes, the model's label order).
pub fn eval_speech(
    engine: &Engine,
    dir: &Path,
    actors: Option<&[u32]>,
    progress: &dyn Fn(usize, usize),
) -> Result<EvalReport> {
    let sp = engine.speech()?;
    let labels = sp.labels().to_vec();
    let files = speech_files(dir, actors)?;
    let paths: Vec<PathBuf> = files.iter().map(|(p, _)| p.clone()).collect();
    let total = paths.len();
    let probs = speech_probabilities(engine, &paths, &|d| progress(d, total))?;
    let mut pairs = Vec::new();
    let mut skipped = 0;
    for ((_, e), p) in files.iter().zip(probs) {
        let Some(t) = labels.iter().position(|l| l == e) else {
            skipped += 1;
            continue;
        };
        match p {
            Some(p) => pairs.push((t, argmax(&p).0)),
            None => skipped += 1,
        }
    }
    Ok(metrics(&labels, &pairs, skipped))
}

pub use crate::fusion_eval::{eval_fusion, FusionReport};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_on_a_hand_table() {
        let labels = [Emotion::Angry, Emotion::Happy, Emotion::Sad];
        // true angry: 2 right, 1 → happy; true happy: 1 right; true sad: 1 → happy.
        let pairs = [(0, 0), (0, 0), (0, 1), (1, 1), (2, 1)];
        let r = metrics(&labels, &pairs, 0);
        assert_eq!(r.n, 5);
        assert!((r.accuracy - 0.6).abs() < 1e-12);
        assert_eq!(
            r.confusion,
            vec![vec![2, 1, 0], vec![0, 1, 0], vec![0, 1, 0]]
        );
        let a = &r.per_class["angry"];
        assert!((a.recall - 2.0 / 3.0).abs() < 1e-12 && (a.precision - 1.0).abs() < 1e-12);
        let h = &r.per_class["happy"];
        assert!((h.precision - 1.0 / 3.0).abs() < 1e-12 && (h.f1 - 0.5).abs() < 1e-12);
        assert_eq!(r.per_class["sad"].f1, 0.0);
        assert!((r.macro_f1 - (0.8 + 0.5 + 0.0) / 3.0).abs() < 1e-12);
        let j = serde_json::to_value(&r).unwrap();
        for k in ["accuracy", "macro_f1", "per_class", "confusion", "n"] {
            assert!(j.get(k).is_some());
        }
        assert!(r.to_table().contains("macro-F1"));
    }

    #[test]
    fn emodb_names() {
        assert_eq!(emodb_label("03a01Fa.wav"), Some(Emotion::Happy));
        assert_eq!(emodb_label("16b10Td.wav"), Some(Emotion::Sad));
        assert_eq!(emodb_label("03a01Wa.wav"), Some(Emotion::Angry));
        assert_eq!(emodb_label("08a02Ab.wav"), Some(Emotion::Fear));
        assert_eq!(emodb_label("09b03Eb.wav"), Some(Emotion::Disgust));
        assert_eq!(emodb_label("11a04Nc.wav"), Some(Emotion::Neutral));
        assert_eq!(emodb_label("03a01La.wav"), None, "boredom has no class");
        assert_eq!(emodb_label("03-01-05-01-02-01-12.wav"), None);
        assert_eq!(emodb_label("readme.wav"), None);
        assert_eq!("EmoDB".parse::<SpeechCorpus>(), Ok(SpeechCorpus::Emodb));
    }

    #[test]
    fn ravdess_names() {
        assert_eq!(
            ravdess_label("03-01-05-01-02-01-12.wav"),
            Some(Emotion::Angry)
        );
        assert_eq!(
            ravdess_label("03-01-02-01-02-01-12.wav"),
            Some(Emotion::Calm)
        );
        assert_eq!(ravdess_label("03-01-09-01-02-01-12.wav"), None);
        assert_eq!(ravdess_label("readme.wav"), None);
        assert_eq!(ravdess_actor("03-01-05-01-02-01-12.wav"), Some(12));
        assert_eq!(ravdess_actor("03-01-05-01-02-01-07.WAV"), Some(7));
        assert_eq!(
            ravdess_label("03-01-05-01-02-01-07.WAV"),
            Some(Emotion::Angry)
        );
        assert_eq!(ravdess_actor("03-01-05-01-02-01-07.mp3"), None);
    }
}
