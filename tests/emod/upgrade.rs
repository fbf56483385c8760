//! Upgrades of a populated database, on both backends: a database at the first schema holding
//! the kinds of rows older daemons wrote (including duplicate running sessions, which only the
//! first schema allowed, and samples the FK-less rebuild copies) is migrated by `emod migrate`,
//! compared row by row, served by the new daemon, then taken down through every `down.sql` and
//! up again while it still holds data.

use crate::common;

use common::*;
use diesel::connection::SimpleConnection;
use diesel::migration::{MigrationConnection, MigrationSource};
use diesel::{Connection, PgConnection, RunQueryDsl, SqliteConnection};
use diesel_migrations::MigrationHarness;
use emod::store::{MIGRATIONS, POSTGRES_MIGRATIONS};
use serde_json::Value;

/// Every table of the schema and its columns, as the first migration created them (later
/// migrations keep the columns; they change constraints, indexes and data).
const TABLES: &[(&str, &[&str])] = &[
    (
        "users",
        &[
            "id",
            "username",
            "display_name",
            "role",
            "password_hash",
            "disabled",
            "created_at",
        ],
    ),
    (
        "api_tokens",
        &[
            "token_hash",
            "user_id",
            "created_at",
            "expires_at",
            "revoked",
        ],
    ),
    (
        "sessions",
        &[
            "id",
            "user_id",
            "node",
            "status",
            "started_at",
            "ended_at",
            "consent_at",
            "sources",
            "label",
            "summary",
            "dominant",
        ],
    ),
    (
        "samples",
        &[
            "session_id",
            "user_id",
            "t",
            "modality",
            "emotion",
            "confidence",
            "p_angry",
            "p_disgust",
            "p_fear",
            "p_happy",
            "p_sad",
            "p_surprise",
            "p_neutral",
            "p_calm",
        ],
    ),
    (
        "sample_counts_hourly",
        &["user_id", "hour", "modality", "emotion", "n"],
    ),
    (
        "sample_counts_minute",
        &["user_id", "minute", "modality", "emotion", "n"],
    ),
    (
        "audit_log",
        &[
            "id",
            "at",
            "actor_id",
            "actor",
            "action",
            "target_user",
            "detail",
        ],
    ),
];

#[derive(diesel::QueryableByName)]
struct Line {
    #[diesel(sql_type = diesel::sql_types::Text)]
    r: String,
}

/// A direct connection to the test database, outside the daemon.
enum Conn {
    Pg(PgConnection),
    Sqlite(SqliteConnection),
}

macro_rules! on {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            Conn::Pg($c) => $body,
            Conn::Sqlite($c) => $body,
        }
    };
}

impl Conn {
    fn open(env: &Env) -> Conn {
        match &env.pg {
            Some(pg) => Conn::Pg(PgConnection::establish(&pg.url).expect("connect")),
            None => {
                let mut c = SqliteConnection::establish(env.sqlite_path().to_str().unwrap())
                    .expect("open sqlite");
                // As the daemon's connections do: without it SQLite ignores foreign keys.
                c.batch_execute("PRAGMA foreign_keys = ON").unwrap();
                Conn::Sqlite(c)
            }
        }
    }

    fn exec(&mut self, sql: &str) -> Result<(), String> {
        on!(self, |c| c.batch_execute(sql).map_err(|e| e.to_string()))
    }

    fn lines(&mut self, sql: &str) -> Vec<String> {
        let mut v: Vec<String> = on!(self, |c| diesel::sql_query(sql)
            .load::<Line>(c)
            .unwrap_or_else(|e| panic!("{sql}: {e}")))
        .into_iter()
        .map(|l| l.r)
        .collect();
        v.sort();
        v
    }

    /// Whether the samples are in the compact layout (2026-12-09-000001).
    fn compact(&mut self) -> bool {
        self.exec("SELECT session_no FROM samples WHERE 1 = 0")
            .is_ok()
    }

    /// Every row of every table, as `col|col|...` text (NULL as `∅`), sorted. Samples and the
    /// roll-ups are dumped as they read in either layout: with their session's and user's ids,
    /// and probabilities in the compact layout's 1e-4 units (-1: none).
    fn dump(&mut self) -> Vec<(String, Vec<String>)> {
        let compact = self.compact();
        TABLES
            .iter()
            .map(|(table, cols)| {
                let text = |c: &str| format!("COALESCE(CAST({c} AS TEXT), '∅')");
                let units = |c: &str| {
                    if compact {
                        format!("CAST(s.{c} AS TEXT)")
                    } else {
                        format!("COALESCE(CAST(CAST(ROUND(s.{c} * 10000) AS INTEGER) AS TEXT), '-1')")
                    }
                };
                let (expr, from): (Vec<String>, String) = match (*table, compact) {
                    ("samples", _) => {
                        let mut e = if compact {
                            vec![text("x.id"), text("u.id")]
                        } else {
                            vec![text("s.session_id"), text("s.user_id")]
                        };
                        e.extend(["t", "modality", "emotion"].map(|c| text(&format!("s.{c}"))));
                        e.extend(cols[5..].iter().map(|c| units(c)));
                        let from = if compact {
                            "samples s JOIN sessions x ON x.no = s.session_no JOIN users u ON u.no = s.user_no"
                        } else {
                            "samples s"
                        };
                        (e, from.to_string())
                    }
                    ("sample_counts_hourly" | "sample_counts_minute", true) => {
                        let mut e = vec![text("u.id")];
                        e.extend(cols[1..].iter().map(|c| text(&format!("s.{c}"))));
                        (e, format!("{table} s JOIN users u ON u.no = s.user_no"))
                    }
                    _ => (cols.iter().map(|c| text(c)).collect(), table.to_string()),
                };
                let sql = format!("SELECT {} AS r FROM {from}", expr.join(" || '|' || "));
                (table.to_string(), self.lines(&sql))
            })
            .collect()
    }

    /// Applies only the first (oldest) migration, as the first release did.
    fn run_first(&mut self) -> String {
        match self {
            Conn::Pg(c) => {
                c.setup().unwrap();
                let all = MigrationSource::<diesel::pg::Pg>::migrations(&MIGRATIONS).unwrap();
                let first = all
                    .iter()
                    .min_by_key(|m| m.name().version().to_string())
                    .unwrap();
                c.run_migration(first.as_ref()).unwrap().to_string()
            }
            Conn::Sqlite(c) => {
                c.setup().unwrap();
                let all =
                    MigrationSource::<diesel::sqlite::Sqlite>::migrations(&MIGRATIONS).unwrap();
                let first = all
                    .iter()
                    .min_by_key(|m| m.name().version().to_string())
                    .unwrap();
                c.run_migration(first.as_ref()).unwrap().to_string()
            }
        }
    }

    /// Reverts the newest applied migration: PostgreSQL's own (`migrations-postgres/`) when
    /// it is one of those, else a shared one.
    fn revert_last(&mut self) -> String {
        match self {
            Conn::Pg(c) => {
                let newest = c
                    .applied_migrations()
                    .unwrap()
                    .into_iter()
                    .map(|v| v.to_string())
                    .max()
                    .unwrap();
                let own = MigrationSource::<diesel::pg::Pg>::migrations(&POSTGRES_MIGRATIONS)
                    .unwrap()
                    .iter()
                    .any(|m| m.name().version().to_string() == newest);
                let source = if own { POSTGRES_MIGRATIONS } else { MIGRATIONS };
                c.revert_last_migration(source).expect("revert").to_string()
            }
            Conn::Sqlite(c) => c
                .revert_last_migration(MIGRATIONS)
                .expect("revert")
                .to_string(),
        }
    }

    /// As `emod migrate` does: the shared migrations, then PostgreSQL's own.
    fn run_pending(&mut self) -> Vec<String> {
        let mut applied: Vec<String> = on!(self, |c| c
            .run_pending_migrations(MIGRATIONS)
            .expect("migrate")
            .iter()
            .map(|v| v.to_string())
            .collect());
        if let Conn::Pg(c) = self {
            applied.extend(
                c.run_pending_migrations(POSTGRES_MIGRATIONS)
                    .expect("migrate")
                    .iter()
                    .map(|v| v.to_string()),
            );
        }
        applied
    }

    /// Whether `samples` is partitioned (PostgreSQL's own migrations are applied).
    fn partitioned(&mut self) -> bool {
        matches!(self, Conn::Pg(_))
            && !self
                .lines("SELECT CAST(relname AS TEXT) AS r FROM pg_class WHERE relname = 'samples' AND relkind = 'p'")
                .is_empty()
    }

    fn status_of(&mut self, session: &str) -> String {
        let v = self.lines(&format!(
            "SELECT status AS r FROM sessions WHERE id = '{session}'"
        ));
        v.into_iter().next().unwrap_or_default()
    }
}

fn sorted_ids(n: usize) -> Vec<String> {
    let mut ids: Vec<String> = (0..n).map(|_| uuid::Uuid::now_v7().to_string()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n);
    ids
}

struct Seed {
    ann_running: Vec<String>,
    ann_stopped: String,
    bob_running: String,
    ann_token: String,
}

/// Rows as daemons at the first schema wrote them. Ann has three running sessions (the first
/// schema did not prevent it); the two older ones must be demoted by the upgrade.
fn seed(conn: &mut Conn) -> Seed {
    let users = sorted_ids(3);
    let (ann, bob, root) = (&users[0], &users[1], &users[2]);
    let s = sorted_ids(5);
    let ann_running = vec![s[0].clone(), s[1].clone(), s[3].clone()];
    let ann_stopped = s[2].clone();
    let bob_running = s[4].clone();
    let hash = emod::auth::hash_password(PASSWORD).unwrap();
    let ann_token = "seeded-token-for-ann-0123456789abcdef".to_string();
    let token_hash = emod::auth::hash_token(&ann_token);
    let t0: i64 = 1_795_000_000_000; // 2026-11-18, before the later migrations existed
    let far = t0 + 10 * 365 * 86_400_000;
    let mut sql = format!(
        "INSERT INTO users VALUES ('{ann}', 'ann', 'Ann O''Neil', 'agent', '{hash}', FALSE, {t0});
         INSERT INTO users VALUES ('{bob}', 'bob', NULL, 'agent', '{hash}', FALSE, {t0});
         INSERT INTO users VALUES ('{root}', 'root', NULL, 'admin', '{hash}', TRUE, {t0});
         INSERT INTO api_tokens VALUES ('{token_hash}', '{ann}', {t0}, {far}, FALSE);
         INSERT INTO api_tokens VALUES ('old-revoked-hash', '{bob}', {t0}, {far}, TRUE);
         INSERT INTO audit_log VALUES ('{}', {t0}, '{root}', 'root', 'export', '{ann}', 'format=csv');",
        uuid::Uuid::now_v7()
    );
    let sessions = [
        (&ann_running[0], ann, "running", 0),
        (&ann_running[1], ann, "running", 1),
        (&ann_stopped, ann, "stopped", 2),
        (&ann_running[2], ann, "running", 3),
        (&bob_running, bob, "running", 4),
    ];
    for (id, user, status, i) in sessions {
        let start = t0 + i * 3_600_000;
        let ended = if status == "stopped" {
            (start + 600_000).to_string()
        } else {
            "NULL".into()
        };
        sql.push_str(&format!(
            "INSERT INTO sessions VALUES ('{id}', '{user}', 'old-node', '{status}', {start}, {ended}, {start}, '[\"remote\"]', {}, NULL, NULL);",
            if i == 2 { "'team, \"A\"'" } else { "NULL" }
        ));
        // Three fused samples each (happy, sad, neutral), one with only some probabilities.
        for (k, (emotion, p)) in [(3, "0.75"), (4, "0.5"), (6, "1.0")].iter().enumerate() {
            let t = start + k as i64 * 1000;
            let probs = if k == 2 {
                "NULL, NULL, NULL, NULL, NULL, NULL, 1.0, NULL".to_string()
            } else {
                let mut v = ["0.0"; 8];
                v[*emotion as usize] = p;
                v[6] = if *emotion == 3 { "0.25" } else { "0.5" };
                v.join(", ")
            };
            sql.push_str(&format!(
                "INSERT INTO samples VALUES ('{id}', '{user}', {t}, 2, {emotion}, {p}, {probs});"
            ));
            let hour = t / 3_600_000 * 3_600_000;
            let minute = t / 60_000 * 60_000;
            sql.push_str(&format!(
                "INSERT INTO sample_counts_hourly VALUES ('{user}', {hour}, 2, {emotion}, 1)
                   ON CONFLICT (user_id, hour, modality, emotion) DO UPDATE SET n = sample_counts_hourly.n + 1;
                 INSERT INTO sample_counts_minute VALUES ('{user}', {minute}, 2, {emotion}, 1)
                   ON CONFLICT (user_id, minute, modality, emotion) DO UPDATE SET n = sample_counts_minute.n + 1;"
            ));
        }
    }
    conn.exec(&sql).expect("seed");
    Seed {
        ann_running,
        ann_stopped,
        bob_running,
        ann_token,
    }
}

fn table<'a>(dump: &'a [(String, Vec<String>)], name: &str) -> &'a [String] {
    &dump.iter().find(|(t, _)| t == name).unwrap().1
}

fn upgrade(backend: Backend) {
    let Some(env) = Env::new(backend) else { return };
    let mut conn = Conn::open(&env);
    let first = conn.run_first();
    assert!(first.starts_with("20261124000001"), "{first}");
    let seed = seed(&mut conn);
    let before = conn.dump();
    assert_eq!(table(&before, "samples").len(), 15);

    // The upgrade as an operator runs it.
    let out = env.emod().arg("migrate").output().unwrap();
    assert!(
        out.status.success(),
        "emod migrate: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    // PostgreSQL has one more of its own: the day partitions.
    let own = usize::from(backend == Backend::Postgres);
    assert!(
        stdout.contains(&format!("{} migration(s) applied", 4 + own)),
        "{stdout}"
    );
    assert!(
        conn.compact(),
        "the samples are not compact after the upgrade"
    );
    assert_eq!(conn.partitioned(), backend == Backend::Postgres);

    // Every row is kept; only the older duplicate running sessions changed, to interrupted.
    let after = conn.dump();
    for ((name, rows_before), (_, rows_after)) in before.iter().zip(&after) {
        if name == "sessions" {
            continue;
        }
        assert_eq!(
            rows_before, rows_after,
            "table {name} changed by the upgrade"
        );
    }
    let expect_sessions: Vec<String> = table(&before, "sessions")
        .iter()
        .map(|row| {
            let demoted = seed.ann_running[..2]
                .iter()
                .any(|id| row.starts_with(&format!("{id}|")));
            if demoted {
                row.replacen("|running|", "|interrupted|", 1)
            } else {
                row.clone()
            }
        })
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(table(&after, "sessions"), expect_sessions.as_slice());
    assert_eq!(conn.status_of(&seed.ann_running[0]), "interrupted");
    assert_eq!(conn.status_of(&seed.ann_running[1]), "interrupted");
    assert_eq!(conn.status_of(&seed.ann_running[2]), "running");
    assert_eq!(conn.status_of(&seed.bob_running), "running");
    assert_eq!(conn.status_of(&seed.ann_stopped), "stopped");

    // The new schema's rules hold: one running session per user, samples without the key.
    let dup = format!(
        "INSERT INTO sessions VALUES ('{}', (SELECT user_id FROM sessions WHERE id = '{}'), 'n', 'running', 1, NULL, 1, '[]', NULL, NULL, NULL, (SELECT MAX(no) + 1 FROM sessions))",
        uuid::Uuid::now_v7(),
        seed.ann_running[2]
    );
    assert!(
        conn.exec(&dup).is_err(),
        "a second running session for ann was accepted"
    );
    let orphan = "INSERT INTO samples VALUES (1, 999999, 999999, 2, 6, 10000, -1, -1, -1, -1, -1, -1, 10000, -1)";
    let orphan_text = "INSERT INTO samples VALUES ('no-such-session', 'u', 1, 2, 6, 1.0, NULL, NULL, NULL, NULL, NULL, NULL, 1.0, NULL)";
    conn.exec(orphan)
        .expect("samples have no foreign key after the upgrade");

    // The new daemon serves the old data: the old token, the sessions, the samples.
    {
        let server = env.start();
        let r = server.get("/api/v1/sessions?limit=50", Some(&seed.ann_token));
        assert_eq!(r.status(), 200, "{}", server.log_text());
        let v: Value = r.json().unwrap();
        assert_eq!(v["total"], 4, "{v}");
        let running: Vec<&str> = v["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["status"] == "running")
            .map(|s| s["id"].as_str().unwrap())
            .collect();
        assert_eq!(running, vec![seed.ann_running[2].as_str()], "{v}");
        let r = server.get("/api/v1/export?format=json", Some(&seed.ann_token));
        assert_eq!(r.status(), 200, "{}", server.log_text());
        let rows: Value = r.json().unwrap();
        assert_eq!(rows.as_array().unwrap().len(), 12, "{rows}");
    }

    // Down through every migration but the first, on the populated database. The compact
    // layout's down (20261209000001) gives every readable row back (the orphan has no session
    // to read it through, and is not carried), as does the samples' time-order index's.
    let compacted = conn.dump();
    if backend == Backend::Postgres {
        assert!(conn.revert_last().starts_with("20261209000002"));
        assert!(!conn.partitioned());
        assert_eq!(conn.dump(), compacted, "down 20261209000002 changed rows");
    }
    assert!(conn.revert_last().starts_with("20261209000001"));
    assert!(!conn.compact());
    assert_eq!(conn.dump(), compacted, "down 20261209000001 changed rows");
    let indexed = conn.dump();
    assert!(conn.revert_last().starts_with("20261208000001"));
    assert_eq!(conn.dump(), indexed, "down 20261208000001 changed rows");
    let upgraded = conn.dump();
    assert!(conn.revert_last().starts_with("20261126000002"));
    let reverted = conn.dump();
    for ((name, a), (_, b)) in upgraded.iter().zip(&reverted) {
        if name == "samples" {
            let kept: Vec<String> = a
                .iter()
                .filter(|r| !r.starts_with("no-such-session|"))
                .cloned()
                .collect();
            assert_eq!(&kept, b, "samples after down 000002");
        } else {
            assert_eq!(a, b, "table {name} changed by down 000002");
        }
    }
    assert!(
        conn.exec(orphan_text).is_err(),
        "down 000002 did not restore the samples' foreign key"
    );
    assert!(conn.revert_last().starts_with("20261126000001"));
    assert_eq!(conn.dump(), reverted, "down 000001 changed rows");
    // The unique index is gone: a duplicate running session is possible again, and the next
    // up demotes the older one.
    let newer = uuid::Uuid::now_v7().to_string();
    conn.exec(&format!(
        "INSERT INTO sessions VALUES ('{newer}', (SELECT user_id FROM sessions WHERE id = '{}'), 'n', 'running', 1, NULL, 1, '[]', NULL, NULL, NULL)",
        seed.ann_running[2]
    ))
    .expect("duplicate running session after down 000001");

    // Up again on the populated database.
    let applied = conn.run_pending();
    assert_eq!(applied.len(), 4 + own, "{applied:?}");
    assert_eq!(conn.partitioned(), backend == Backend::Postgres);
    assert_eq!(conn.status_of(&seed.ann_running[2]), "interrupted");
    assert_eq!(conn.status_of(&newer), "running");
    let again = conn.dump();
    for ((name, a), (_, b)) in reverted.iter().zip(&again) {
        if name != "sessions" {
            assert_eq!(a, b, "table {name} changed by the second up");
        }
    }
    conn.exec(orphan)
        .expect("samples have no foreign key after the second up");

    // And the first migration's down.sql leaves nothing behind; up again gives an empty schema.
    while !conn.revert_last().starts_with("20261124000001") {}
    for (name, _) in TABLES {
        assert!(
            conn.exec(&format!("SELECT 1 FROM {name}")).is_err(),
            "{name} survived the first migration's down.sql"
        );
    }
    assert_eq!(conn.run_pending().len(), 5 + own);
    for (name, rows) in conn.dump() {
        assert!(rows.is_empty(), "{name} is not empty after down and up");
    }
}

both_backends!(populated_database_upgrades_and_downgrades, upgrade);
