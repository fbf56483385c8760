//! `emod models check`: ONNX Runtime version, execution providers and each model's status.

use std::process::ExitCode;

use clap::Subcommand;
use emo_inference::face::ExpressionModel;
use emo_inference::manifest::{self, Manifest};
use emo_inference::{model_precision as precision, runtime, ExecProvider};

use crate::config::Config;
use crate::shared_engine::{engine_options, models_dir, runtime_config};

#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// Print the ONNX Runtime version, execution providers and each model's status
    /// (file present, sha256, loads, input/output shapes). Exit status 1 if anything is wrong.
    Check,
}

pub fn run(cmd: ModelsCommand, config: &Config) -> anyhow::Result<ExitCode> {
    match cmd {
        ModelsCommand::Check => check(config),
    }
}

/// Every precision the expression model ships (each verified and loaded) and which one this
/// machine runs, with the measurement or setting that decided it.
fn precision_report(config: &Config, m: &Manifest) -> anyhow::Result<String> {
    let opts = engine_options(config)?;
    let shipped = precision::variants(m, "expression")?;
    let mut out = String::from("expression precisions:");
    for v in &shipped {
        v.verify()?;
        out.push_str(&format!(
            "\n  {:<14} ok       {}",
            v.precision,
            v.path.file_name().unwrap_or_default().to_string_lossy()
        ));
    }
    let model = ExpressionModel::load_with(
        m,
        &opts.runtime,
        &opts.expression_precision,
        opts.precision_cache.as_deref(),
    )?;
    out.push_str(&format!(
        "\n  chosen: {} ({})",
        model.precision.precision, model.precision.reason
    ));
    Ok(out)
}

fn check(config: &Config) -> anyhow::Result<ExitCode> {
    let rt = runtime_config(config)?;
    let info = runtime::init(&rt)?;
    println!("ONNX Runtime {} ({})", info.version, info.library.display());
    println!("  loaded from: {}", info.source);
    println!(
        "  execution providers available: {}",
        info.available_providers.join(", ")
    );
    println!(
        "  configured: {:?}, intra-op threads: {}",
        rt.execution_provider,
        if rt.intra_threads == 0 {
            "auto".to_string()
        } else {
            rt.intra_threads.to_string()
        }
    );
    if rt.execution_provider == ExecProvider::Cuda
        && !info.available_providers.contains(&"CUDAExecutionProvider")
    {
        println!("  warning: CUDA configured but not available in this library; CPU will be used");
    }
    let dir = models_dir(config);
    let m = Manifest::load(&dir)?;
    println!("models: {}", dir.display());
    let mut bad = 0;
    for (name, e) in &m.models {
        let status = manifest::verify_file(&m, name).and_then(|p| {
            let s = runtime::session(&rt, &p)?;
            let ins: Vec<String> = s
                .inputs()
                .iter()
                .map(|o| format!("{} {}", o.name(), o.dtype()))
                .collect();
            let outs: Vec<String> = s
                .outputs()
                .iter()
                .map(|o| format!("{} {}", o.name(), o.dtype()))
                .collect();
            Ok(format!("in [{}] out [{}]", ins.join(", "), outs.join(", ")))
        });
        match status {
            Ok(s) => println!("  {name:<14} ok       {} ({s})", e.file),
            Err(err) => {
                bad += 1;
                println!("  {name:<14} FAILED   {err}");
            }
        }
    }
    match precision_report(config, &m) {
        Ok(line) => println!("{line}"),
        Err(err) => {
            bad += 1;
            println!("  expression precision FAILED {err}");
        }
    }
    for needed in ["face_detector", "expression", "speech"] {
        if !m.models.contains_key(needed) {
            bad += 1;
            println!(
                "  {needed:<14} MISSING  not in {}",
                dir.join(manifest::MANIFEST_FILE).display()
            );
        }
    }
    Ok(if bad == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
