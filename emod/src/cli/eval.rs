//! `emod eval faces|speech|fusion|av`: accuracy, macro-F1, per-class recall and confusion matrices,
//! computed with the same engine code as the daemon.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;
use emo_inference::{eval, Engine};

use crate::config::Config;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: EvalCommand,
}

#[derive(Debug, Subcommand)]
pub enum EvalCommand {
    /// Face expression model on DIR/<class>/*.jpg|png (FER-2013 class names).
    Faces {
        dir: PathBuf,
        /// Treat every image as an aligned face crop and classify it directly (FER-2013 images
        /// are 48×48 face crops). `--crops false` runs the face detector first (as `analyze`
        /// does) and counts images without a detected face as errors.
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
        crops: bool,
        #[arg(long)]
        json: bool,
    },
    /// Speech model on RAVDESS WAVs (03-01-EE-II-SS-RR-AA.wav, any sample rate, actor folders or
    /// flat); one centre-cropped/padded 3-s window per clip, as in training. 8 classes.
    Speech {
        dir: PathBuf,
        /// Only these actors (e.g. the validation actors: --actors 19,20).
        #[arg(long, value_delimiter = ',')]
        actors: Option<Vec<u32>>,
        #[arg(long)]
        json: bool,
    },
    /// Pair face images and voice clips of the same label (7 shared classes, calm → neutral) and
    /// report single-modality, calibrated-fusion and mode accuracies.
    Fusion {
        #[arg(long)]
        faces: PathBuf,
        #[arg(long)]
        speech: PathBuf,
        /// How the speech clips are named: ravdess (03-01-EE-II-SS-RR-AA.wav) or emodb
        /// (03a01Fa.wav; cross-corpus validation). Detected from the file names when omitted.
        #[arg(long)]
        speech_corpus: Option<String>,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Classify face images as crops (see `eval faces --crops`).
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
        crops: bool,
        /// Only these speech actors.
        #[arg(long, value_delimiter = ',')]
        actors: Option<Vec<u32>>,
        /// Choose the fusion weights on half of the pairs and report on the other half.
        #[arg(long)]
        tune: bool,
        /// Pseudo-sessions instead of independent pairs: each speaker's clips in a shuffled order
        /// with faces of the same labels, the voice through one speaker profile as in a live
        /// session; per-speaker, mean and worst figures (emo_inference::fusion_sessions).
        #[arg(long, conflicts_with_all = ["tune", "actors"])]
        sessions: bool,
        #[arg(long)]
        json: bool,
    },
    /// Your own labelled audio-visual recordings in DIR, named the RAVDESS way
    /// (01-01-EE-II-SS-RR-AA.mp4) or the CREMA-D way (AAAA_SSS_EMO_LL.flv|mp4), each through the
    /// same path as `emod analyze`: face, voice and fused accuracy and confusion per 1-s window
    /// and per clip. Files that cannot be used are named and skipped; the exit status is
    /// non-zero when none could be.
    Av {
        dir: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

fn progress_bar(enabled: bool) -> Option<indicatif::ProgressBar> {
    (enabled && std::io::stderr().is_terminal()).then(|| {
        let b = indicatif::ProgressBar::new(0);
        b.set_style(
            indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} {elapsed}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    })
}

/// `emod eval …`: one function per target (face, speech, fusion), each loading its data,
/// running it and printing its report.
pub fn run(args: Args, config: &Config) -> anyhow::Result<ExitCode> {
    let mut opts = crate::shared_engine::engine_options(config)?;
    match args.command {
        EvalCommand::Faces { dir, crops, json } => {
            opts.speech = false;
            opts.faces = true;
            faces(&Engine::load(&opts)?, &dir, crops, json)
        }
        EvalCommand::Speech { dir, actors, json } => {
            opts.faces = false;
            speech(&Engine::load(&opts)?, &dir, actors.as_deref(), json)
        }
        EvalCommand::Fusion {
            faces,
            speech,
            speech_corpus,
            seed,
            crops,
            actors,
            tune,
            sessions,
            json,
        } => {
            let corpus = match speech_corpus {
                Some(c) => c
                    .parse::<eval::SpeechCorpus>()
                    .map_err(|e| anyhow::anyhow!("--speech-corpus: {e}"))?,
                None => eval::SpeechCorpus::detect(&speech)?,
            };
            let engine = Engine::load(&opts)?;
            let bar = progress_bar(true);
            let step = |what: &str, d: usize, n: usize| {
                if let Some(b) = &bar {
                    b.set_message(what.to_string());
                }
                advance(bar.as_ref(), d, n);
            };
            if sessions {
                let r = emo_inference::fusion_sessions::eval_sessions(
                    &engine, &faces, &speech, corpus, seed, crops, &step,
                )?;
                finish(bar);
                return print_sessions(&r, json);
            }
            let r = eval::eval_fusion(
                &engine,
                &faces,
                &speech,
                corpus,
                seed,
                crops,
                actors.as_deref(),
                tune,
                &step,
            )?;
            finish(bar);
            print_fusion(&r, json)
        }
        EvalCommand::Av { dir, json } => {
            let engine = Engine::load(&opts)?;
            let bar = progress_bar(true);
            let r =
                emo_inference::av_eval::eval_av(&engine, &dir, &|d, n| advance(bar.as_ref(), d, n));
            finish(bar);
            let r = r?;
            for s in &r.skipped {
                eprintln!("emod eval av: skipped {}: {}", s.file, s.reason);
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                print!("{}", r.to_text());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `emod eval faces`.
fn faces(engine: &Engine, dir: &Path, crops: bool, json: bool) -> anyhow::Result<ExitCode> {
    let bar = progress_bar(true);
    let r = eval::eval_faces(engine, dir, crops, &|d, n| advance(bar.as_ref(), d, n))?;
    finish(bar);
    let how = if crops { "crops" } else { "detector" };
    let title = format!("face expression model on {} ({how})", dir.display());
    print_report(&r, json, &title)
}

/// `emod eval speech`.
fn speech(
    engine: &Engine,
    dir: &Path,
    actors: Option<&[u32]>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let bar = progress_bar(true);
    let r = eval::eval_speech(engine, dir, actors, &|d, n| advance(bar.as_ref(), d, n))?;
    finish(bar);
    print_report(&r, json, &format!("speech model on {}", dir.display()))
}

/// Move the progress bar (if there is one) to `done` of `total`.
fn advance(bar: Option<&indicatif::ProgressBar>, done: usize, total: usize) {
    if let Some(b) = bar {
        b.set_length(total as u64);
        b.set_position(done as u64);
    }
}

fn finish(bar: Option<indicatif::ProgressBar>) {
    if let Some(b) = bar {
        b.finish_and_clear();
    }
}

fn print_fusion(r: &eval::FusionReport, json: bool) -> anyhow::Result<ExitCode> {
    if json {
        println!("{}", serde_json::to_string_pretty(r)?);
        return Ok(ExitCode::SUCCESS);
    }
    print!("{}", r.to_text());
    Ok(ExitCode::SUCCESS)
}

fn print_sessions(
    r: &emo_inference::fusion_sessions::SessionsReport,
    json: bool,
) -> anyhow::Result<ExitCode> {
    if json {
        println!("{}", serde_json::to_string_pretty(r)?);
    } else {
        print!("{}", r.to_text());
    }
    Ok(ExitCode::SUCCESS)
}

fn print_report(r: &eval::EvalReport, json: bool, title: &str) -> anyhow::Result<ExitCode> {
    if json {
        println!("{}", serde_json::to_string_pretty(r)?);
    } else {
        println!("{title}");
        print!("{}", r.to_table());
    }
    Ok(ExitCode::SUCCESS)
}
