//! `emod bench store`: seeds a throw-away database with N samples through the daemon's own
//! buffered writer (same batching, same threads and connections), then times every dashboard
//! query (median of repeated runs).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use diesel::{Connection, PgConnection, RunQueryDsl};
use emo_api_types::{Bucket, HeatmapKind, SessionStatus};
use rand::{Rng, SeedableRng};
use serde::Serialize;

use std::sync::Arc;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::store::sessions::SessionFilter;
use crate::store::stats::StatsFilter;
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
    /// Timed runs per query (median reported).
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// Keep the seeded database instead of dropping it.
    #[arg(long)]
    pub keep: bool,
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
    /// Median milliseconds per dashboard query.
    pub queries_ms: Vec<(String, f64)>,
}

struct Target {
    store: Store,
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
    // One pool connection per writer thread, plus the ones the seeding and queries use.
    let defaults = crate::store::StoreOptions::default();
    let opts = crate::store::StoreOptions {
        pool_size: defaults.pool_size.max(connections as u32 + 2),
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
        println!("{:<44} {:>10}", "dashboard query", "median ms");
        for (q, ms) in &r.queries_ms {
            println!("{q:<44} {ms:>10.1}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn bench(args: &StoreArgs, target: &Target, connections: usize) -> anyhow::Result<StoreBench> {
    let store = &target.store;
    store.migrate()?;
    let is_pg = target.backend.starts_with("postgres");
    let n = args
        .samples
        .unwrap_or(if is_pg { 10_000_000 } else { 1_000_000 });
    let mut rng = rand::rngs::StdRng::seed_from_u64(args.seed);
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
    // Sessions of one hour (3,600 one-second windows), on working hours, going back in time from now.
    let per_session = 3600u64;
    let sessions = n.div_ceil(per_session);
    let now = chrono::Utc::now().timestamp_millis();
    let day0 = now - now.rem_euclid(86_400_000) - 86_400_000;
    // Skewed like real data: mostly neutral and happy.
    let weights = [6u32, 1, 4, 18, 10, 5, 56];
    let total_w: u32 = weights.iter().sum();
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
            ended_at: Some(start + per_session as i64 * 1000),
            consent_at: start,
            sources: "[\"bench\"]".into(),
            label: None,
            summary: None,
            dominant: Some(6),
        })?;
        plan.push((sid, user.id.clone(), start));
    }
    // The daemon's writer, with the daemon's batching: samples are generated and submitted here
    // while its threads write them, and the clock runs until everything is in the database.
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
        let count = per_session.min(n - seeded);
        for i in 0..count {
            let mut pick = rng.gen_range(0..total_w);
            let mut emotion = 0i16;
            for (k, w) in weights.iter().enumerate() {
                if pick < *w {
                    emotion = k as i16;
                    break;
                }
                pick -= w;
            }
            let conf: f32 = rng.gen_range(0.3..0.99);
            let rest = (1.0 - conf) / 6.0;
            let p = |k: i16| Some(if k == emotion { conf } else { rest });
            buf.push(SampleRow {
                session_id: sid.clone(),
                user_id: user_id.clone(),
                t: start + i as i64 * 1000,
                modality: 2,
                emotion,
                confidence: conf,
                p_angry: p(0),
                p_disgust: p(1),
                p_fear: p(2),
                p_happy: p(3),
                p_sad: p(4),
                p_surprise: p(5),
                p_neutral: p(6),
                p_calm: None,
            });
            if buf.len() == batch {
                submit(std::mem::replace(&mut buf, Vec::with_capacity(batch)))?;
            }
        }
        seeded += count;
        if !args.json && s % 200 == 0 && s > 0 {
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
    if is_pg {
        store.analyze()?;
    }
    let stored = store.count_samples(None)? as u64;
    anyhow::ensure!(stored == n, "seeded {n} samples but {stored} are stored");

    let agent = crate::store::parse_uuid(&users[0].id)?;
    let hour = 3_600_000;
    let week_from = day0 - 7 * 86_400_000;
    let fused = |f: StatsFilter| StatsFilter {
        modality: Some(2),
        ..f
    };
    let all = fused(StatsFilter::default());
    let one = fused(StatsFilter {
        user_id: Some(agent),
        ..Default::default()
    });
    let week = fused(StatsFilter {
        from_ms: Some(week_from),
        to_ms: Some(day0 + 86_400_000),
        ..Default::default()
    });
    let odd_range = fused(StatsFilter {
        from_ms: Some(week_from + 1_234_567),
        to_ms: Some(day0 + 86_400_000 - 7_654_321),
        ..Default::default()
    });
    let one_day = fused(StatsFilter {
        from_ms: Some(day0 + 8 * hour),
        to_ms: Some(day0 + 16 * hour),
        ..Default::default()
    });
    let one_hour = fused(StatsFilter {
        from_ms: Some(day0 + 9 * hour),
        to_ms: Some(day0 + 10 * hour),
        ..Default::default()
    });
    let agent_day = StatsFilter {
        user_id: Some(agent),
        ..one_day.clone()
    };
    type Query<'a> = Box<dyn Fn() -> anyhow::Result<()> + 'a>;
    let queries: Vec<(&str, Query)> = vec![
        (
            "distribution, all agents",
            Box::new(|| {
                store.distribution(&all)?;
                Ok(())
            }),
        ),
        (
            "distribution, one agent",
            Box::new(|| {
                store.distribution(&one)?;
                Ok(())
            }),
        ),
        (
            "distribution, last week",
            Box::new(|| {
                store.distribution(&week)?;
                Ok(())
            }),
        ),
        (
            "distribution, week, unaligned (raw rows)",
            Box::new(|| {
                store.distribution(&odd_range)?;
                Ok(())
            }),
        ),
        (
            "timeline by hour, all",
            Box::new(|| {
                store.timeline(&all, Bucket::Hour)?;
                Ok(())
            }),
        ),
        (
            "timeline by day, one agent",
            Box::new(|| {
                store.timeline(&one, Bucket::Day)?;
                Ok(())
            }),
        ),
        (
            "timeline by minute, one hour, all agents",
            Box::new(|| {
                store.timeline(&one_hour, Bucket::Minute)?;
                Ok(())
            }),
        ),
        (
            "timeline by minute, one day, one agent",
            Box::new(|| {
                store.timeline(&agent_day, Bucket::Minute)?;
                Ok(())
            }),
        ),
        (
            "timeline by minute, one day, all agents",
            Box::new(|| {
                store.timeline(&one_day, Bucket::Minute)?;
                Ok(())
            }),
        ),
        (
            "heatmap agent x emotion, all",
            Box::new(|| {
                store.heatmap(&all, HeatmapKind::AgentEmotion)?;
                Ok(())
            }),
        ),
        (
            "heatmap weekday x hour, all",
            Box::new(|| {
                store.heatmap(&all, HeatmapKind::WeekdayHour)?;
                Ok(())
            }),
        ),
        (
            "sessions list, first page",
            Box::new(|| {
                store.list_sessions(&SessionFilter {
                    limit: 50,
                    ..Default::default()
                })?;
                Ok(())
            }),
        ),
        (
            "export, first page (5,000 rows)",
            Box::new(|| {
                store.export_page(&one, None, 5000)?;
                Ok(())
            }),
        ),
    ];
    let mut queries_ms = Vec::new();
    for (name, q) in &queries {
        q()?; // warm-up
        let mut times: Vec<f64> = (0..args.runs.max(1))
            .map(|_| {
                let t = Instant::now();
                q().map(|_| t.elapsed().as_secs_f64() * 1000.0)
            })
            .collect::<anyhow::Result<_>>()?;
        times.sort_by(|a, b| a.total_cmp(b));
        queries_ms.push((name.to_string(), times[times.len() / 2]));
    }
    Ok(StoreBench {
        backend: target.backend.clone(),
        samples: n,
        agents: args.agents,
        sessions,
        connections: if is_pg { connections } else { 1 },
        ingest_seconds: ingest.as_secs_f64(),
        ingest_samples_per_second: n as f64 / ingest.as_secs_f64().max(1e-9),
        queries_ms,
    })
}
