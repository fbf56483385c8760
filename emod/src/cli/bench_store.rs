//! `emod bench store`: seeds a throw-away database with N samples through the daemon's own
//! buffered writer (same batching, same threads and connections), then times every dashboard
//! query (median of repeated runs).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use diesel::{Connection, PgConnection, RunQueryDsl};
use emo_api_types::SessionStatus;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use std::sync::Arc;

use super::bench_queries::{dashboard_queries, Filters};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::store::writer::{Writer, WriterOptions};
use crate::store::{SampleRow, SessionRow, Store, UserRow};

#[derive(Debug, clap::Args)]
pub struct StoreArgs {
    /// Samples to seed (default: 10,000,000 on PostgreSQL, 1,000,000 on SQLite).
    #[arg(long)]
    pub samples: Option<u64>,
    /// Agents the samples are spread over.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub agents: u32,
    /// PostgreSQL server to benchmark on (a database is created there and dropped after);
    /// default: the server of `database.url` when that is PostgreSQL, else a temporary SQLite file.
    #[arg(long, value_name = "URL")]
    pub postgres: Option<String>,
    /// Samples per transaction (the daemon's writer takes up to 5 × writer.batch_size = 10,000).
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(5..=1_000_000))]
    pub batch: u64,
    /// Concurrent write transactions (default: writer.connections; SQLite always uses one).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub connections: Option<u64>,
    /// Timed runs per query (median and 95th percentile reported).
    #[arg(long, default_value_t = 20)]
    pub runs: usize,
    /// Keep the seeded database instead of dropping it.
    #[arg(long)]
    pub keep: bool,
    /// PostgreSQL: also run every query once more, explain each statement it makes, and fail
    /// when a plan reads `samples` other than through an index's leading column (a sequential
    /// scan, a walk of a whole index): the test suite's check of the query plans, at a size
    /// (≥ 100,000 samples) where the planner's choices are those of a large table.
    #[arg(long)]
    pub check_plans: bool,
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
pub struct StoreBench {
    pub backend: String,
    pub samples: u64,
    pub agents: u32,
    pub sessions: u64,
    /// Writer threads (each with its own connection) that did the ingest.
    pub connections: usize,
    pub ingest_seconds: f64,
    pub ingest_samples_per_second: f64,
    /// Bytes on disk per stored sample: the samples with their indexes and the roll-ups with
    /// theirs (PostgreSQL: every partition; SQLite: the whole file).
    pub bytes_per_sample: f64,
    /// (query, median ms, 95th percentile ms) per dashboard query.
    pub queries_ms: Vec<(String, f64, f64)>,
    /// The retention purge of the oldest seeded day (PostgreSQL: one partition dropped).
    pub purge_one_day_ms: f64,
    /// With `--check-plans` on PostgreSQL: the queries whose plan reads `samples` without an
    /// index condition (query name, plan node, SQL).
    pub unindexed_reads: Option<Vec<String>>,
}

struct Target {
    store: Store,
    /// The PostgreSQL database's URL (`None`: SQLite).
    url: Option<String>,
    backend: String,
    cleanup: Option<Box<dyn FnOnce()>>,
    _dir: Option<tempfile::TempDir>,
}

/// The PostgreSQL server to use: `--postgres`, else the configured `database.url` if it is one.
fn postgres_url(args: &StoreArgs, config: &Config) -> Option<String> {
    args.postgres.clone().or_else(|| {
        let url = config.database.url.trim();
        (url.starts_with("postgres://") || url.starts_with("postgresql://"))
            .then(|| url.to_string())
    })
}

fn open_target(
    args: &StoreArgs,
    postgres: Option<&String>,
    connections: usize,
) -> anyhow::Result<Target> {
    // One pool connection per writer thread, plus the ones the seeding and queries use. No
    // statement timeout: counting 100 M seeded rows takes longer than any request may.
    let defaults = crate::store::StoreOptions::default();
    let opts = crate::store::StoreOptions {
        pool_size: defaults.pool_size.max(connections as u32 + 2),
        statement_timeout: Duration::ZERO,
        ..defaults
    };
    match postgres {
        Some(url) => {
            let name = format!(
                "emo_bench_{}_{}",
                chrono::Utc::now().format("%Y%m%d%H%M%S"),
                &uuid::Uuid::new_v4().simple().to_string()[..8]
            );
            let mut admin =
                PgConnection::establish(url).with_context(|| format!("connecting to {url}"))?;
            diesel::sql_query(format!("CREATE DATABASE {name}")).execute(&mut admin)?;
            let base = url.rsplit_once('/').map(|(b, _)| b).unwrap_or(url);
            let db_url = format!("{base}/{name}");
            let store = crate::store::postgres::open(&db_url, &opts)?;
            let admin_url = url.clone();
            let keep = args.keep;
            Ok(Target {
                store,
                url: Some(db_url),
                backend: format!("postgres ({name})"),
                cleanup: Some(Box::new(move || {
                    if keep {
                        eprintln!("kept database {name}");
                        return;
                    }
                    if let Ok(mut c) = PgConnection::establish(&admin_url) {
                        let _ = diesel::sql_query(format!(
                            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                        ))
                        .execute(&mut c);
                    }
                })),
                _dir: None,
            })
        }
        None => {
            let dir = tempfile::tempdir()?;
            let path = dir.path().join("bench.sqlite3");
            let store = crate::store::sqlite::open(&path, &opts)?;
            Ok(Target {
                store,
                url: None,
                backend: "sqlite".into(),
                cleanup: None,
                _dir: Some(dir),
            })
        }
    }
}

pub fn run(args: StoreArgs, config: &Config) -> anyhow::Result<ExitCode> {
    let postgres = postgres_url(&args, config);
    let connections = args
        .connections
        .map_or(config.writer.connections, |c| c as usize);
    let mut target = open_target(&args, postgres.as_ref(), connections)?;
    let result = bench(&args, &target, connections);
    if let Some(cleanup) = target.cleanup.take() {
        cleanup();
    }
    let r = result?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        println!(
            "store benchmark on {}: {} samples, {} agents, {} sessions",
            r.backend, r.samples, r.agents, r.sessions
        );
        println!(
            "ingest: {:.1} s, {:.0} samples/s ({} writer connection{})",
            r.ingest_seconds,
            r.ingest_samples_per_second,
            r.connections,
            if r.connections == 1 { "" } else { "s" }
        );
        println!(
            "bytes per sample (samples, roll-ups, their indexes): {:.1}",
            r.bytes_per_sample
        );
        println!("{:<52} {:>9} {:>9}", "dashboard query", "p50 ms", "p95 ms");
        for (q, p50, p95) in &r.queries_ms {
            println!("{q:<52} {p50:>9.1} {p95:>9.1}");
        }
        println!("retention purge of one day: {:.1} ms", r.purge_one_day_ms);
        if let Some(scans) = &r.unindexed_reads {
            println!(
                "queries that read samples without an index: {}",
                scans.len()
            );
            for q in scans {
                println!("  {q}");
            }
        }
    }
    if r.unindexed_reads.as_ref().is_some_and(|s| !s.is_empty()) {
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// Seconds (one-second windows) per seeded session.
const PER_SESSION: u64 = 3600;

fn bench(args: &StoreArgs, target: &Target, connections: usize) -> anyhow::Result<StoreBench> {
    let store = &target.store;
    store.migrate()?;
    let is_pg = target.backend.starts_with("postgres");
    let n = args
        .samples
        .unwrap_or(if is_pg { 10_000_000 } else { 1_000_000 });
    let seeded = seed_sessions(args, target, n)?;
    let ingest = ingest(args, store, &seeded.plan, n, connections)?;
    eprintln!(
        "ingest: {n} samples in {:.1} s, {:.0} samples/s",
        ingest.as_secs_f64(),
        n as f64 / ingest.as_secs_f64().max(1e-9)
    );
    if is_pg {
        store.analyze()?;
    }
    let stored = store.count_samples(None)? as u64;
    anyhow::ensure!(stored == n, "seeded {n} samples but {stored} are stored");
    let bytes_per_sample = store.bytes_on_disk()? as f64 / n.max(1) as f64;
    let agent = crate::store::parse_uuid(&seeded.users[0].id)?;
    let busiest = &seeded.plan[0];
    let queries_ms = time_queries(store, agent, &busiest.0, seeded.day0, args.runs)?;
    let unindexed_reads = match (&target.url, args.check_plans) {
        (Some(url), true) => Some(check_plans(url, agent, &busiest.0, seeded.day0)?),
        _ => None,
    };
    // Retention of the oldest seeded day (the seeded days end at day0 + 1 day).
    let oldest = seeded.plan.iter().map(|p| p.2).min().unwrap_or(seeded.day0);
    let day_end = oldest - oldest.rem_euclid(86_400_000) + 86_400_000;
    let t = Instant::now();
    store.purge_before(day_end)?;
    let purge_one_day_ms = t.elapsed().as_secs_f64() * 1000.0;
    Ok(StoreBench {
        backend: target.backend.clone(),
        samples: n,
        agents: args.agents,
        sessions: seeded.plan.len() as u64,
        connections: if is_pg { connections } else { 1 },
        ingest_seconds: ingest.as_secs_f64(),
        ingest_samples_per_second: n as f64 / ingest.as_secs_f64().max(1e-9),
        bytes_per_sample,
        queries_ms,
        purge_one_day_ms,
        unindexed_reads,
    })
}

/// The agents and sessions [`seed_sessions`] stored; `plan` is (session id, user id, start ms).
struct Seeded {
    users: Vec<UserRow>,
    plan: Vec<(String, String, i64)>,
    /// Midnight UTC yesterday: the sessions go back in time from it.
    day0: i64,
}

/// Creates the agents and enough one-hour sessions for `n` samples, on working hours.
fn seed_sessions(args: &StoreArgs, target: &Target, n: u64) -> anyhow::Result<Seeded> {
    let store = &target.store;
    let hash = crate::auth::hash_password("bench-password")?;
    let users: Vec<UserRow> = (0..args.agents)
        .map(|i| UserRow {
            id: uuid::Uuid::now_v7().to_string(),
            username: format!("agent{i:03}"),
            display_name: None,
            role: "agent".into(),
            password_hash: hash.clone(),
            disabled: false,
            created_at: 0,
        })
        .collect();
    for u in &users {
        store.create_user(u)?;
    }
    let sessions = n.div_ceil(PER_SESSION);
    let now = chrono::Utc::now().timestamp_millis();
    let day0 = now - now.rem_euclid(86_400_000) - 86_400_000;
    if !args.json {
        eprintln!("seeding {n} samples on {} …", target.backend);
    }
    let mut plan = Vec::with_capacity(sessions as usize);
    for s in 0..sessions {
        let user = &users[(s % users.len() as u64) as usize];
        let slot = s / users.len() as u64; // per-agent session index
        let day = (slot / 8) as i64;
        let hour = 8 + (slot % 8) as i64;
        let start = day0 - day * 86_400_000 + hour * 3_600_000;
        let sid = uuid::Uuid::now_v7().to_string();
        store.insert_session(&SessionRow {
            id: sid.clone(),
            user_id: user.id.clone(),
            node: "bench".into(),
            status: SessionStatus::Stopped.as_str().into(),
            started_at: start,
            ended_at: Some(start + PER_SESSION as i64 * 1000),
            consent_at: start,
            sources: "[\"bench\"]".into(),
            label: None,
            summary: None,
            dominant: Some(6),
        })?;
        plan.push((sid, user.id.clone(), start));
    }
    // The seeded days get their partitions before the first sample, as the daemon's hourly
    // pass gives the coming days theirs (PostgreSQL; nothing to do on SQLite).
    let earliest = plan.iter().map(|p| p.2).min().unwrap_or(day0);
    store.ensure_partitions(earliest, day0 + 2 * 86_400_000)?;
    Ok(Seeded { users, plan, day0 })
}

/// A fused sample with a skewed emotion (mostly neutral and happy, like real data).
fn random_sample(rng: &mut impl Rng, session_id: &str, user_id: &str, t: i64) -> SampleRow {
    const WEIGHTS: [u32; 7] = [6, 1, 4, 18, 10, 5, 56];
    let mut pick = rng.gen_range(0..WEIGHTS.iter().sum::<u32>());
    let mut emotion = 0i16;
    for (k, w) in WEIGHTS.iter().enumerate() {
        if pick < *w {
            emotion = k as i16;
            break;
        }
        pick -= w;
    }
    let conf: f32 = rng.gen_range(0.3..0.99);
    let rest = (1.0 - conf) / 6.0;
    let probabilities = emo_api_types::Emotion::FACE
        .iter()
        .enumerate()
        .map(|(k, e)| (*e, f64::from(if k as i16 == emotion { conf } else { rest })))
        .collect();
    let mut row = SampleRow::from_api(
        uuid::Uuid::nil(),
        uuid::Uuid::nil(),
        &emo_api_types::SampleIn {
            t: crate::store::ms_to_datetime(t),
            modality: emo_api_types::Modality::Fused,
            emotion: emo_api_types::Emotion::ALL[emotion as usize],
            confidence: f64::from(conf),
            probabilities,
        },
    );
    row.session_id = session_id.to_string();
    row.user_id = user_id.to_string();
    row
}

/// Generates the samples and writes them through the daemon's writer, with the daemon's
/// batching; the clock runs until everything is in the database.
fn ingest(
    args: &StoreArgs,
    store: &Store,
    plan: &[(String, String, i64)],
    n: u64,
    connections: usize,
) -> anyhow::Result<Duration> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(args.seed);
    let batch = args.batch as usize;
    let metrics = Arc::new(Metrics::default());
    let capacity = (batch * 4 * connections).max(100_000);
    let writer = Writer::start(
        store.clone(),
        WriterOptions {
            batch_size: (batch / 5).max(1),
            flush_interval: Duration::from_millis(250),
            capacity,
            spool_dir: None,
            connections,
            // The bench paces itself against the total capacity; no per-user share applies.
            user_quota: 0,
        },
        metrics.clone(),
    );
    let started = Instant::now();
    let mut seeded = 0u64;
    let mut buf: Vec<SampleRow> = Vec::with_capacity(batch);
    let submit = |rows: Vec<SampleRow>| -> anyhow::Result<()> {
        while writer.pending() + rows.len() > capacity {
            std::thread::sleep(Duration::from_millis(1));
        }
        writer
            .submit(rows)
            .map_err(|e| anyhow::anyhow!("bench writer: {e}"))?;
        Ok(())
    };
    for (s, (sid, user_id, start)) in plan.iter().enumerate() {
        let count = PER_SESSION.min(n - seeded);
        for i in 0..count {
            buf.push(random_sample(
                &mut rng,
                sid,
                user_id,
                start + i as i64 * 1000,
            ));
            if buf.len() == batch {
                submit(std::mem::replace(&mut buf, Vec::with_capacity(batch)))?;
            }
        }
        seeded += count;
        // Progress goes to stderr, also with --json (stdout stays the one JSON document).
        if s % 200 == 0 && s > 0 {
            eprintln!(
                "  {seeded} samples, {:.0}/s",
                seeded as f64 / started.elapsed().as_secs_f64().max(1e-9)
            );
        }
    }
    if !buf.is_empty() {
        submit(buf)?;
    }
    let flushed = writer.flush(Duration::from_secs(24 * 3600));
    let ingest = started.elapsed();
    writer.shutdown(Duration::ZERO)?;
    let errors = metrics
        .writer_errors
        .load(std::sync::atomic::Ordering::Relaxed);
    anyhow::ensure!(
        flushed && errors == 0,
        "the writer did not store every sample ({errors} failed transactions)"
    );
    Ok(ingest)
}

/// Every dashboard query on the seeded data ([`super::bench_queries`]): the median and 95th
/// percentile of `runs` timed runs after a warm-up.
fn time_queries(
    store: &Store,
    agent: uuid::Uuid,
    session: &str,
    day0: i64,
    runs: usize,
) -> anyhow::Result<Vec<(String, f64, f64)>> {
    let filters = Filters::new(agent, day0);
    let queries = dashboard_queries(&filters, session);
    let mut queries_ms = Vec::new();
    for (name, q) in &queries {
        q.run(store)?; // warm-up
        let mut times: Vec<f64> = (0..runs.max(1))
            .map(|_| {
                let t = Instant::now();
                q.run(store).map(|_| t.elapsed().as_secs_f64() * 1000.0)
            })
            .collect::<anyhow::Result<_>>()?;
        times.sort_by(|a, b| a.total_cmp(b));
        let p95 = times[((times.len() as f64 * 0.95).ceil() as usize).clamp(1, times.len()) - 1];
        queries_ms.push((name.to_string(), times[times.len() / 2], p95));
    }
    Ok(queries_ms)
}

/// Runs every dashboard query once on one connection; returns those whose plan reads
/// `samples` other than through an index's leading column (`Store::full_scans_of_samples`),
/// with the plan node and the SQL.
fn check_plans(
    url: &str,
    agent: uuid::Uuid,
    session: &str,
    day0: i64,
) -> anyhow::Result<Vec<String>> {
    let store = crate::store::postgres::open(
        url,
        &crate::store::StoreOptions {
            pool_size: 1,
            statement_timeout: Duration::ZERO,
            ..Default::default()
        },
    )?;
    let filters = Filters::new(agent, day0);
    let mut found = Vec::new();
    for (name, q) in dashboard_queries(&filters, session) {
        for scan in store.full_scans_of_samples(|s| q.run(s))? {
            found.push(format!("{name}: {scan}"));
        }
    }
    Ok(found)
}
