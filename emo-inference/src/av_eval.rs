//! `emod eval av DIR`: face, voice and fused accuracy on anyone's own labelled audio-visual
//! recordings, each file run through the same path as `emod analyze` (issue 26).
//!
//! Labels come from the file names: RAVDESS (`01-01-EE-II-SS-RR-AA.mp4`, EE the emotion code)
//! or CREMA-D (`AAAA_SSS_EMO_LL.flv|mp4`, EMO one of ANG DIS FEA HAP NEU SAD). Scored in the
//! 7-class face space (`calm` counts as `neutral`) two ways:
//! * per 1-s window of the fused timeline: the fused label; the face label of the window's
//!   frames (mean of their probabilities); the voice label of the latest voiced window covering
//!   the second's start (as the fuser picks it);
//! * per clip: the mean face over all frames, the mean voiced window, the fused summary.
//!
//! A file whose name matches neither pattern, or that has no video or no audio track, or that
//! cannot be analysed, is named with the reason and skipped.

use std::path::{Path, PathBuf};

use emo_api_types::analyze::FileAnalysis;
use emo_api_types::Emotion;
use serde::Serialize;

use crate::audio;
use crate::classifier::argmax;
use crate::engine::Engine;
use crate::fusion::K;
use crate::{Error, Result};

/// Video containers `eval av` looks at.
const EXTENSIONS: &[&str] = &["mp4", "flv", "mkv", "mov", "avi", "webm"];

/// The label a file's name gives, in the 7-class face space.
pub fn label_of(file_name: &str) -> Option<Emotion> {
    let stem = file_name.rsplit_once('.').map_or(file_name, |x| x.0);
    let dashes: Vec<&str> = stem.split('-').collect();
    let two_digits = |s: &str| s.len() == 2 && s.bytes().all(|b| b.is_ascii_digit());
    if dashes.len() == 7 && dashes.iter().all(|p| two_digits(p)) {
        return match dashes[2] {
            "01" | "02" => Some(Emotion::Neutral),
            "03" => Some(Emotion::Happy),
            "04" => Some(Emotion::Sad),
            "05" => Some(Emotion::Angry),
            "06" => Some(Emotion::Fear),
            "07" => Some(Emotion::Disgust),
            "08" => Some(Emotion::Surprise),
            _ => None,
        };
    }
    let parts: Vec<&str> = stem.split('_').collect();
    if parts.len() == 4 && parts[0].len() == 4 && parts[0].bytes().all(|b| b.is_ascii_digit()) {
        return match parts[2] {
            "ANG" => Some(Emotion::Angry),
            "DIS" => Some(Emotion::Disgust),
            "FEA" => Some(Emotion::Fear),
            "HAP" => Some(Emotion::Happy),
            "NEU" => Some(Emotion::Neutral),
            "SAD" => Some(Emotion::Sad),
            _ => None,
        };
    }
    None
}

/// Accuracy and confusion (rows = true, columns = predicted, 7 face classes) of one estimate.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Scores {
    pub n: usize,
    pub correct: usize,
    pub accuracy: f64,
    pub confusion: [[usize; K]; K],
}

impl Scores {
    fn add(&mut self, truth: usize, predicted: usize) {
        if truth < K && predicted < K {
            self.n += 1;
            self.correct += usize::from(truth == predicted);
            self.confusion[truth][predicted] += 1;
            self.accuracy = self.correct as f64 / self.n as f64;
        }
    }
}

/// Face, voice and fused scores at one level (window or clip).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct LevelScores {
    pub face: Scores,
    pub voice: Scores,
    pub fused: Scores,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Skipped {
    pub file: String,
    pub reason: String,
}

/// Result of `emod eval av`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AvReport {
    pub files: usize,
    pub windows: LevelScores,
    pub clips: LevelScores,
    pub skipped: Vec<Skipped>,
}

impl AvReport {
    /// The text `emod eval av` prints.
    pub fn to_text(&self) -> String {
        let line = |what: &str, s: &Scores| {
            format!(
                "  {what:<6} {:>6.4}  ({} of {})",
                s.accuracy, s.correct, s.n
            )
        };
        let mut out = vec![format!("{} labelled recordings", self.files)];
        for (name, l) in [("per 1-s window", &self.windows), ("per clip", &self.clips)] {
            out.push(format!("{name}:"));
            out.push(line("face", &l.face));
            out.push(line("voice", &l.voice));
            out.push(line("fused", &l.fused));
        }
        out.push(format!(
            "confusion per window (rows true, columns predicted; {}):",
            Emotion::ALL[..K]
                .iter()
                .map(|e| e.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        ));
        for (name, s) in [
            ("face", &self.windows.face),
            ("voice", &self.windows.voice),
            ("fused", &self.windows.fused),
        ] {
            out.push(format!("  {name}"));
            out.extend(s.confusion.iter().map(|r| {
                "    ".to_string()
                    + &r.iter()
                        .map(|c| format!("{c:>4}"))
                        .collect::<Vec<_>>()
                        .join("")
            }));
        }
        for s in &self.skipped {
            out.push(format!("skipped {}: {}", s.file, s.reason));
        }
        out.join("\n") + "\n"
    }
}

/// `emod eval av DIR` (module docs). Fails only when no file could be used.
pub fn eval_av(engine: &Engine, dir: &Path, progress: &dyn Fn(usize, usize)) -> Result<AvReport> {
    let files = video_files(dir)?;
    let mut report = AvReport {
        files: 0,
        windows: LevelScores::default(),
        clips: LevelScores::default(),
        skipped: Vec::new(),
    };
    for (i, path) in files.iter().enumerate() {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        match usable(engine, path, &name) {
            Ok((truth, fa)) => {
                score_file(&mut report, truth.index(), &fa);
                report.files += 1;
            }
            Err(reason) => report.skipped.push(Skipped { file: name, reason }),
        }
        progress(i + 1, files.len());
    }
    if report.files == 0 {
        let why: Vec<String> = report
            .skipped
            .iter()
            .map(|s| format!("{}: {}", s.file, s.reason))
            .collect();
        return Err(Error::Media(format!(
            "{}: no usable labelled recording ({})",
            dir.display(),
            if why.is_empty() {
                "no video files".to_string()
            } else {
                why.join("; ")
            }
        )));
    }
    Ok(report)
}

fn video_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let rd = std::fs::read_dir(dir)
        .map_err(|e| Error::Media(format!("{}: cannot read the directory: {e}", dir.display())))?;
    let mut v: Vec<PathBuf> = rd
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && p.extension()
                    .and_then(|x| x.to_str())
                    .is_some_and(|x| EXTENSIONS.contains(&x.to_ascii_lowercase().as_str()))
        })
        .collect();
    v.sort();
    Ok(v)
}

/// The file's label and analysis, or why it is skipped.
fn usable(
    engine: &Engine,
    path: &Path,
    name: &str,
) -> std::result::Result<(Emotion, FileAnalysis), String> {
    let truth = label_of(name).ok_or(
        "the name matches neither RAVDESS (01-01-EE-II-SS-RR-AA) nor CREMA-D (AAAA_SSS_EMO_LL)",
    )?;
    for (kind, what) in [("v", "video"), ("a", "audio")] {
        let streams = audio::probe(path, kind, "stream=codec_type", &engine.limits)
            .map_err(|e| e.to_string())?;
        if streams.is_empty() {
            return Err(format!("no {what} track"));
        }
    }
    let fa = engine.analyze_file(path, name, &|_| {});
    match &fa.error {
        Some(e) => Err(format!("cannot be analysed: {e}")),
        None => Ok((truth, fa)),
    }
}

fn to7(p: &std::collections::BTreeMap<Emotion, f64>) -> [f32; K] {
    let mut a = [0.0f32; K];
    for (e, v) in p {
        a[e.to_face_space().index()] += *v as f32;
    }
    a
}

fn mean(rows: &[[f32; K]]) -> Option<[f32; K]> {
    (!rows.is_empty()).then(|| {
        let mut a = [0.0f32; K];
        for r in rows {
            a.iter_mut()
                .zip(r)
                .for_each(|(x, y)| *x += y / rows.len() as f32);
        }
        a
    })
}

fn score_file(r: &mut AvReport, truth: usize, fa: &FileAnalysis) {
    let voiced: Vec<(f64, f64, [f32; K])> = fa
        .voice
        .iter()
        .filter(|v| v.voiced && !v.probabilities.is_empty())
        .map(|v| (v.start, v.end, to7(&v.probabilities)))
        .collect();
    for w in &fa.timeline {
        r.windows
            .fused
            .add(truth, w.emotion.to_face_space().index());
        let frames: Vec<[f32; K]> = fa
            .faces
            .iter()
            .filter(|f| f.t >= w.start && f.t < w.end)
            .map(|f| to7(&f.probabilities))
            .collect();
        if let Some(p) = mean(&frames) {
            r.windows.face.add(truth, argmax(&p).0);
        }
        let voice = voiced
            .iter()
            .filter(|v| v.0 <= w.start + 1e-9 && v.1 > w.start)
            .max_by(|a, b| a.0.total_cmp(&b.0));
        if let Some(v) = voice {
            r.windows.voice.add(truth, argmax(&v.2).0);
        }
    }
    let faces: Vec<[f32; K]> = fa.faces.iter().map(|f| to7(&f.probabilities)).collect();
    if let Some(p) = mean(&faces) {
        r.clips.face.add(truth, argmax(&p).0);
    }
    let voices: Vec<[f32; K]> = voiced.iter().map(|v| v.2).collect();
    if let Some(p) = mean(&voices) {
        r.clips.voice.add(truth, argmax(&p).0);
    }
    if let Some(s) = &fa.summary {
        r.clips.fused.add(truth, s.emotion.to_face_space().index());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_from_both_naming_schemes() {
        assert_eq!(label_of("01-01-03-01-02-01-12.mp4"), Some(Emotion::Happy));
        assert_eq!(label_of("02-01-02-02-01-02-01.mp4"), Some(Emotion::Neutral));
        assert_eq!(label_of("01-01-09-01-02-01-12.mp4"), None);
        assert_eq!(label_of("1001_DFA_ANG_XX.flv"), Some(Emotion::Angry));
        assert_eq!(label_of("1091_WSI_SAD_HI.mp4"), Some(Emotion::Sad));
        assert_eq!(label_of("1001_DFA_BOR_XX.flv"), None);
        assert_eq!(label_of("holiday.mp4"), None);
        assert_eq!(label_of("01-01-03-01-02-01.mp4"), None);
    }

    #[test]
    fn scores_count_by_hand() {
        let mut s = Scores::default();
        s.add(3, 3);
        s.add(3, 4);
        s.add(0, 0);
        s.add(9, 0); // out of range: ignored
        assert_eq!((s.n, s.correct), (3, 2));
        assert!((s.accuracy - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!((s.confusion[3][4], s.confusion[4][3]), (1, 0));
    }
}
