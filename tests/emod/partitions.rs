//! Issue 30: retention across day partitions, samples for days that have no partition yet, and a
//! partition that cannot be created. Against the store itself (the daemon's own code), on a real
//! PostgreSQL and a real SQLite file; the daemon's hourly pass calls the same two functions.

use crate::common;

use common::*;
use emo_api_types::SessionStatus;
use emod::store::partitions::{partition_name, DAY_MS};
use emod::store::{SampleRow, SessionRow, Store, StoreOptions, UserRow};

const HOUR: i64 = 3_600_000;

fn open(env: &Env) -> Store {
    let opts = StoreOptions {
        pool_size: 4,
        connect_timeout: std::time::Duration::from_secs(5),
        statement_timeout: std::time::Duration::ZERO,
    };
    let store = match &env.pg {
        Some(pg) => emod::store::postgres::open(&pg.url, &opts).unwrap(),
        None => emod::store::sqlite::open(&env.sqlite_path(), &opts).unwrap(),
    };
    store.migrate().unwrap();
    store
}

/// A user with one running session that started at `start`.
fn session(store: &Store, start: i64) -> (String, String) {
    let user = UserRow {
        id: uuid::Uuid::now_v7().to_string(),
        username: format!("u{}", &uuid::Uuid::new_v4().simple().to_string()[..8]),
        display_name: None,
        role: "agent".into(),
        password_hash: "x".into(),
        disabled: false,
        created_at: start,
    };
    store.create_user(&user).unwrap();
    let sid = uuid::Uuid::now_v7().to_string();
    store
        .insert_session(&SessionRow {
            id: sid.clone(),
            user_id: user.id.clone(),
            node: "test".into(),
            status: SessionStatus::Running.as_str().into(),
            started_at: start,
            ended_at: None,
            consent_at: start,
            sources: "[\"remote\"]".into(),
            label: None,
            summary: None,
            dominant: None,
        })
        .unwrap();
    (sid, user.id)
}

fn sample(sid: &str, uid: &str, t: i64) -> SampleRow {
    SampleRow {
        session_id: sid.into(),
        user_id: uid.into(),
        t,
        modality: 2,
        emotion: (t / 60_000 % 7) as i16,
        confidence: 0.5,
        p_angry: Some(0.1),
        p_disgust: None,
        p_fear: None,
        p_happy: Some(0.5),
        p_sad: None,
        p_surprise: None,
        p_neutral: Some(0.4),
        p_calm: None,
    }
}

fn count(env: &Env, sql: &str) -> i64 {
    env.sql_lines(&format!("SELECT CAST(({sql}) AS TEXT) AS r"))[0]
        .parse()
        .unwrap()
}

fn partitions(env: &Env, table: &str) -> Vec<String> {
    let mut v = env.sql_lines(&format!(
        "SELECT CAST(k.relname AS TEXT) AS r FROM pg_inherits i JOIN pg_class k ON k.oid = i.inhrelid \
         JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = '{table}'"
    ));
    v.sort();
    v
}

both_backends!(
    purge_across_days_removes_exactly_the_rows_before_the_cutoff,
    |b| {
        let Some(env) = Env::new(b) else { return };
        let store = open(&env);
        let today = emod::store::now_ms().div_euclid(DAY_MS);
        let d0 = (today - 4) * DAY_MS;
        let (sid, uid) = session(&store, d0);
        // Every 20 minutes over four days, plus one sample a second around the cutoff.
        let cutoff = d0 + 2 * DAY_MS + 5 * HOUR + 30 * 60_000;
        let aligned = d0 + 2 * DAY_MS + 5 * HOUR;
        let mut times: Vec<i64> = (0..4 * 72).map(|i| d0 + i * 20 * 60_000).collect();
        times.extend((-90..90).map(|s| aligned + s * 1000));
        times.sort();
        times.dedup();
        let rows: Vec<SampleRow> = times.iter().map(|t| sample(&sid, &uid, *t)).collect();
        assert_eq!(store.insert_samples(&rows).unwrap(), times.len());
        store.prepare_partitions(emod::store::now_ms()).unwrap();
        if b == Backend::Postgres {
            assert_eq!(
                count(&env, "SELECT COUNT(*) FROM samples_default"),
                0,
                "every day has its partition after the pass"
            );
            for day in today - 4..today {
                assert!(partitions(&env, "samples").contains(&partition_name("samples", day)));
            }
        }

        let (purged, _) = store.purge_before(cutoff).unwrap();
        let kept: Vec<i64> = times.iter().copied().filter(|t| *t >= aligned).collect();
        let gone = times.len() - kept.len();
        // The dropped days' share of the count is the planner's estimate: exact on SQLite.
        if b == Backend::Sqlite {
            assert_eq!(purged, gone);
        }
        assert_eq!(
            count(&env, "SELECT COUNT(*) FROM samples"),
            kept.len() as i64
        );
        assert_eq!(
            count(
                &env,
                &format!("SELECT COUNT(*) FROM samples WHERE t < {aligned}")
            ),
            0
        );
        assert_eq!(
            count(&env, "SELECT MIN(t) FROM samples"),
            kept[0],
            "the first hour after the cutoff is kept whole"
        );
        // The roll-ups follow: their counts are exactly the samples left.
        for table in ["sample_counts_hourly", "sample_counts_minute"] {
            assert_eq!(
                count(&env, &format!("SELECT COALESCE(SUM(n), 0) FROM {table}")),
                kept.len() as i64,
                "{table}"
            );
        }
        if b == Backend::Postgres {
            let days = partitions(&env, "samples");
            assert!(
                !days.contains(&partition_name("samples", today - 4)),
                "{days:?}"
            );
            assert!(
                !days.contains(&partition_name("samples", today - 3)),
                "{days:?}"
            );
            assert!(
                days.contains(&partition_name("samples", today - 2)),
                "{days:?}"
            );
            for table in ["sample_counts_hourly", "sample_counts_minute"] {
                let days = partitions(&env, table);
                assert!(
                    !days.contains(&partition_name(table, today - 3)),
                    "{days:?}"
                );
                assert!(days.contains(&partition_name(table, today - 2)), "{days:?}");
            }
        }
        // Still readable through the store, in order.
        let (page, total) = store.list_samples(&sid, None, None, 5, 0).unwrap();
        assert_eq!(total.count, kept.len() as i64);
        assert_eq!(
            page.iter().map(|s| s.t).collect::<Vec<_>>(),
            kept[..5].to_vec()
        );
    }
);

both_backends!(
    a_sample_for_a_day_without_a_partition_is_stored_then_moved,
    |b| {
        let Some(env) = Env::new(b) else { return };
        let store = open(&env);
        let now = emod::store::now_ms();
        let (sid, uid) = session(&store, now - HOUR);
        store.prepare_partitions(now).unwrap();
        // Thirty days ahead: no partition exists for it (they are made a week ahead).
        let far = now + 30 * DAY_MS;
        let day = far.div_euclid(DAY_MS);
        if b == Backend::Postgres {
            assert!(!partitions(&env, "samples").contains(&partition_name("samples", day)));
            // Make the partition impossible to create: a table already has its name.
            env.sql(&format!(
                "CREATE TABLE {} (x INTEGER)",
                partition_name("samples", day)
            ));
        }
        let rows = vec![sample(&sid, &uid, now), sample(&sid, &uid, far)];
        assert_eq!(store.insert_samples(&rows).unwrap(), 2, "nothing refused");
        if b == Backend::Postgres {
            assert_eq!(count(&env, "SELECT COUNT(*) FROM samples_default"), 1);
            let err = store.prepare_partitions(now).unwrap_err();
            assert!(err.to_string().contains("already exists"), "{err}");
            // The failed pass lost nothing, and ingest goes on.
            assert_eq!(count(&env, "SELECT COUNT(*) FROM samples_default"), 1);
            store
                .insert_samples(&[sample(&sid, &uid, far + 1000)])
                .unwrap();
            env.sql(&format!("DROP TABLE {}", partition_name("samples", day)));
            let made = store.prepare_partitions(now).unwrap();
            assert!(made.contains(&partition_name("samples", day)), "{made:?}");
            assert_eq!(count(&env, "SELECT COUNT(*) FROM samples_default"), 0);
            assert_eq!(
                count(
                    &env,
                    &format!("SELECT COUNT(*) FROM {}", partition_name("samples", day))
                ),
                2
            );
        } else {
            store
                .insert_samples(&[sample(&sid, &uid, far + 1000)])
                .unwrap();
        }
        let (page, total) = store.list_samples(&sid, None, None, 10, 0).unwrap();
        assert_eq!(total.count, 3);
        assert_eq!(
            page.iter().map(|s| s.t).collect::<Vec<_>>(),
            vec![now, far, far + 1000]
        );
        assert_eq!(store.last_sample_t(&sid).unwrap(), Some(far + 1000));
    }
);
