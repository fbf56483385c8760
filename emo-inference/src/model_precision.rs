//! Which numeric precision of a model to run on this CPU.
//!
//! Why: the expression model's int8 (QDQ) kernels are several times faster than fp32 on CPUs
//! with VNNI, but on AVX2-only CPUs they were measured slower than fp32 (issue 16: 4.5-6 ms per
//! face). No static rule over CPU flags predicts that reliably across ONNX Runtime versions, so
//! the manifest lists every precision a model ships in (`[models.NAME.variants.PRECISION]`) and,
//! with the `auto` policy, the loader times each on this machine with the batch the product runs
//! (a face and its mirror image) and keeps the fastest. The measurement is cached per CPU, ONNX
//! Runtime version, model files and thread count, so it runs once per machine, not per start.
//! `emod models check` prints the choice and its reason; config `models.expression_precision`
//! overrides it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use ort::session::Session;
use ort::value::TensorRef;
use serde::{Deserialize, Serialize};

use crate::manifest::{Manifest, ModelEntry};
use crate::runtime::RuntimeConfig;
use crate::{Error, Result};

/// How to pick a model's precision.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum PrecisionPolicy {
    /// Measure every shipped precision at load (or reuse a cached measurement), keep the fastest.
    #[default]
    Auto,
    /// Always this precision (`int8`, `fp32`); an error when the model does not ship it.
    Fixed(String),
}

impl std::str::FromStr for PrecisionPolicy {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "" | "auto" => Ok(Self::Auto),
            p @ ("int8" | "fp32") => Ok(Self::Fixed(p.to_string())),
            o => Err(format!("unknown precision `{o}` (auto, int8 or fp32)")),
        }
    }
}

/// One file of a model in one precision.
#[derive(Debug, Clone, PartialEq)]
pub struct Variant {
    pub precision: String,
    pub path: PathBuf,
    /// The manifest's checksum of the file.
    pub sha256: String,
}

impl Variant {
    /// The file exists and matches its manifest checksum.
    pub fn verify(&self) -> Result<()> {
        let got = crate::manifest::sha256_file(&self.path)
            .map_err(|e| Error::Model(format!("{}: {e}", self.path.display())))?;
        if !got.eq_ignore_ascii_case(self.sha256.trim()) {
            return Err(Error::Model(format!(
                "{} ({}) has sha256 {got}, manifest says {}",
                self.path.display(),
                self.precision,
                self.sha256
            )));
        }
        Ok(())
    }
}

/// What was chosen and why (shown by `emod models check` and in the daemon log).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrecisionChoice {
    pub precision: String,
    #[serde(skip)]
    pub path: PathBuf,
    pub reason: String,
    /// Median milliseconds of one probe batch per precision, when measured.
    #[serde(default)]
    pub probe_ms: BTreeMap<String, f64>,
}

/// Every precision `[models.NAME]` ships: the entry's own file (its `precision`, default fp32)
/// and each `[models.NAME.variants.P]` with `file`/`sha256`.
pub fn variants(manifest: &Manifest, name: &str) -> Result<Vec<Variant>> {
    let e = manifest.entry(name)?;
    let mut out = vec![Variant {
        precision: own_precision(e),
        path: manifest.path_of(e),
        sha256: e.sha256.clone(),
    }];
    if let Some(v) = e.extra.get("variants") {
        let table = v
            .as_table()
            .ok_or_else(|| Error::Manifest(format!("[models.{name}.variants] must be a table")))?;
        for (p, t) in table {
            let file = t.get("file").and_then(|f| f.as_str()).ok_or_else(|| {
                Error::Manifest(format!("[models.{name}.variants.{p}] is missing `file`"))
            })?;
            let sha256 = t.get("sha256").and_then(|f| f.as_str()).ok_or_else(|| {
                Error::Manifest(format!("[models.{name}.variants.{p}] is missing `sha256`"))
            })?;
            out.push(Variant {
                precision: p.clone(),
                path: manifest.dir.join(file),
                sha256: sha256.to_string(),
            });
        }
    }
    Ok(out)
}

fn own_precision(e: &ModelEntry) -> String {
    e.extra
        .get("precision")
        .and_then(|p| p.as_str())
        .unwrap_or("fp32")
        .to_string()
}

/// The name of this CPU and the instruction-set features that decide int8 speed.
pub fn cpu_summary() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |key: &str| {
        info.lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_default()
    };
    let model = field("model name");
    let flags = field("flags");
    let has = |f: &str| flags.split_whitespace().any(|x| x == f);
    let feats: Vec<&str> = [
        "avx2",
        "avx512f",
        "avx512_vnni",
        "avx_vnni",
        "avx512_bf16",
        "amx_int8",
    ]
    .into_iter()
    .filter(|f| has(f))
    .collect();
    format!(
        "{} [{}]",
        if model.is_empty() {
            "unknown CPU"
        } else {
            &model
        },
        if feats.is_empty() {
            "no AVX2".to_string()
        } else {
            feats.join(" ")
        }
    )
}

/// Decide which variant to load. `probe_input` is one batch as the product runs it (item shape
/// without the batch axis, batch size); `cache` is a JSON file remembering earlier measurements.
pub fn choose(
    name: &str,
    variants: &[Variant],
    policy: &PrecisionPolicy,
    rt: &RuntimeConfig,
    open: &dyn Fn(&RuntimeConfig, &Path) -> Result<Session>,
    probe: &Probe,
    cache: Option<&Path>,
) -> Result<(PrecisionChoice, Session)> {
    let open = |v: &Variant| -> Result<Session> {
        v.verify()?;
        open(rt, &v.path)
    };
    let first = variants
        .first()
        .ok_or_else(|| Error::Manifest(format!("[models.{name}] has no file")))?;
    let fixed = |v: &Variant, reason: &str| -> Result<(PrecisionChoice, Session)> {
        let choice = PrecisionChoice {
            precision: v.precision.clone(),
            path: v.path.clone(),
            reason: reason.into(),
            probe_ms: BTreeMap::new(),
        };
        Ok((choice, open(v)?))
    };
    if let PrecisionPolicy::Fixed(p) = policy {
        let v = variants.iter().find(|v| &v.precision == p).ok_or_else(|| {
            let shipped: Vec<&str> = variants.iter().map(|v| v.precision.as_str()).collect();
            Error::Manifest(format!(
                "models.{name}_precision = \"{p}\" but [models.{name}] ships only {}",
                shipped.join(", ")
            ))
        })?;
        return fixed(v, "set by the configuration");
    }
    if variants.len() == 1 {
        return fixed(first, "the only precision shipped");
    }
    let key = cache_key(name, variants, rt);
    if let Some(hit) = cache.and_then(|c| read_cache(c).remove(&key)) {
        if let Some(v) = variants.iter().find(|v| v.precision == hit.precision) {
            if let Ok(s) = open(v) {
                let mut c = hit;
                c.path = v.path.clone();
                c.reason = format!("{} (measured earlier on this machine)", c.reason);
                return Ok((c, s));
            }
        }
    }
    let mut sessions = Vec::new();
    for v in variants {
        match open(v) {
            Ok(s) => sessions.push((v, s)),
            Err(e) => tracing::warn!("{name}: {} not usable: {e}", v.precision),
        }
    }
    if sessions.is_empty() {
        return Err(Error::Model(format!(
            "{name}: no precision could be loaded"
        )));
    }
    let (choice, s) = fastest(sessions, probe)?;
    if let Some(c) = cache {
        write_cache(c, &key, &choice);
    }
    Ok((choice, s))
}

/// Time every session with `probe` and keep the fastest, with the timings as its reason.
fn fastest(
    mut sessions: Vec<(&Variant, Session)>,
    probe: &Probe,
) -> Result<(PrecisionChoice, Session)> {
    let timings = probe.measure(&mut sessions)?;
    let best = (0..timings.len())
        .min_by(|&a, &b| timings[a].total_cmp(&timings[b]))
        .unwrap_or(0);
    let probe_ms: BTreeMap<String, f64> = sessions
        .iter()
        .zip(&timings)
        .map(|((v, _), t)| (v.precision.clone(), (t * 1e6).round() / 1000.0))
        .collect();
    let listed: Vec<String> = probe_ms
        .iter()
        .map(|(p, t)| format!("{p} {t:.2} ms"))
        .collect();
    let (v, s) = sessions.swap_remove(best);
    let choice = PrecisionChoice {
        precision: v.precision.clone(),
        path: v.path.clone(),
        reason: format!(
            "fastest on {}: {} per batch of {}",
            cpu_summary(),
            listed.join(", "),
            probe.batch
        ),
        probe_ms,
    };
    Ok((choice, s))
}

/// A short timing of each session on a fixed input.
#[derive(Debug, Clone)]
pub struct Probe {
    pub input_name: String,
    pub item_shape: Vec<usize>,
    pub batch: usize,
    /// Timed runs per session per round; rounds alternate the sessions so that load on the
    /// machine skews every precision alike.
    pub runs: usize,
    pub rounds: usize,
}

impl Probe {
    /// Median seconds per run, per session.
    fn measure(&self, sessions: &mut [(&Variant, Session)]) -> Result<Vec<f64>> {
        let n: usize = self.batch * self.item_shape.iter().product::<usize>();
        // Deterministic values in [-1, 1]: kernels' speed does not depend on them, but an all-zero
        // input could take shortcuts a real face never does.
        let data: Vec<f32> = (0..n)
            .map(|i| ((i * 7919 % 2001) as f32 / 1000.0) - 1.0)
            .collect();
        let mut shape = vec![self.batch];
        shape.extend_from_slice(&self.item_shape);
        let mut per: Vec<Vec<f64>> = vec![Vec::new(); sessions.len()];
        for round in 0..=self.rounds {
            for (i, (v, s)) in sessions.iter_mut().enumerate() {
                let input = TensorRef::from_array_view((shape.clone(), data.as_slice()))
                    .map_err(|e| Error::Inference(format!("{}: {e}", v.precision)))?;
                let t = Instant::now();
                for _ in 0..self.runs {
                    s.run(ort::inputs![self.input_name.as_str() => input.view()])
                        .map_err(|e| Error::Inference(format!("{}: {e}", v.precision)))?;
                }
                // Round 0 warms caches and lets ONNX Runtime finish lazy initialisation.
                if round > 0 {
                    per[i].push(t.elapsed().as_secs_f64() / self.runs as f64);
                }
            }
        }
        Ok(per
            .into_iter()
            .map(|mut v| {
                v.sort_by(f64::total_cmp);
                v[v.len() / 2]
            })
            .collect())
    }
}

/// Everything the measurement depends on; the files by their manifest checksums (each file is
/// verified against it before it is opened).
fn cache_key(name: &str, variants: &[Variant], rt: &RuntimeConfig) -> String {
    let mut k = format!(
        "v1|{name}|{}|ort {}|threads {}|{:?}",
        cpu_summary(),
        crate::runtime::init(rt)
            .map(|i| i.version)
            .unwrap_or_default(),
        rt.intra_threads,
        rt.execution_provider
    );
    for v in variants {
        k.push_str(&format!("|{} {}", v.precision, v.sha256));
    }
    k
}

fn read_cache(path: &Path) -> BTreeMap<String, PrecisionChoice> {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}

/// Best effort: a cache that cannot be written only means measuring again next time.
fn write_cache(path: &Path, key: &str, choice: &PrecisionChoice) {
    let mut all = read_cache(path);
    all.insert(key.to_string(), choice.clone());
    let write = || -> std::io::Result<()> {
        if let Some(d) = path.parent() {
            std::fs::create_dir_all(d)?;
        }
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(&all).unwrap_or_default())?;
        std::fs::rename(tmp, path)
    };
    if let Err(e) = write() {
        tracing::debug!("precision cache {} not written: {e}", path.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_parses() {
        assert_eq!("".parse::<PrecisionPolicy>(), Ok(PrecisionPolicy::Auto));
        assert_eq!(
            "INT8".parse::<PrecisionPolicy>(),
            Ok(PrecisionPolicy::Fixed("int8".into()))
        );
        assert!("fp16".parse::<PrecisionPolicy>().is_err());
    }

    #[test]
    fn cpu_summary_names_something() {
        let s = cpu_summary();
        assert!(s.contains('[') && s.ends_with(']'), "{s}");
    }
}
