//! `emod bench`: face pipeline frames/s, speech real-time factor and feature extraction speed
//! (with the ratio to librosa's MFCC measured in the same run).

use std::process::ExitCode;

use emo_inference::{bench, Engine};

use crate::config::Config;

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    /// `store`: storage ingest rate and dashboard query latency instead of inference speed.
    #[command(subcommand)]
    pub target: Option<BenchTarget>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Timed repetitions per measurement (after warm-up); the median is reported.
    #[arg(long, default_value_t = 50)]
    pub iterations: usize,
    /// Intra-op threads per session (1 = the per-core figures).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Skip the librosa comparison (needs python3 with librosa and soundfile).
    #[arg(long)]
    pub no_librosa: bool,
}

#[derive(Debug, clap::Subcommand)]
pub enum BenchTarget {
    /// Seed N samples (default 10 M on PostgreSQL) and time ingest and every dashboard query.
    Store(super::bench_store::StoreArgs),
    /// Run the live capture pipeline on real-time file sources (or real devices) and report
    /// processed fps, dropped frames, latency, CPU (with ffmpeg children) and peak RSS.
    Live(super::bench_live::LiveArgs),
}

pub fn run(args: Args, config: &Config) -> anyhow::Result<ExitCode> {
    match args.target {
        Some(BenchTarget::Store(store_args)) => return super::bench_store::run(store_args, config),
        Some(BenchTarget::Live(live_args)) => return super::bench_live::run(live_args, config),
        None => {}
    }
    let mut opts = crate::shared_engine::engine_options(config)?;
    opts.runtime.intra_threads = args.threads.max(1);
    let engine = Engine::load(&opts)?;
    let quiet = args.json;
    let r = bench::run(
        &engine,
        args.iterations,
        args.threads.max(1),
        !args.no_librosa,
        &|what| {
            if !quiet {
                eprintln!("benchmarking {what} …");
            }
        },
    )?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        print!("{}", r.to_table());
    }
    Ok(ExitCode::SUCCESS)
}
