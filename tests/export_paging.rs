//! Export beyond one page (the handler streams 5,000 rows at a time): every row exactly once, in
//! order, across page boundaries, in CSV and JSON; and CSV fields with quotes, commas and line
//! breaks (a username stored by an older version, before names were restricted) stay one field.

mod common;

use std::collections::HashSet;

use chrono::Utc;
use common::*;
use serde_json::Value;

const ROWS: i64 = 12_345;
const WEIRD: &str = "o\"neil, jr\nsecond line";

/// RFC 4180 records: quoted fields may hold commas, doubled quotes and line breaks.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut records = Vec::new();
    let mut record = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') if field.is_empty() => quoted = true,
            (false, ',') => record.push(std::mem::take(&mut field)),
            (false, '\n') => {
                record.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut record));
            }
            (false, c) => field.push(c),
        }
    }
    assert!(!quoted, "unterminated quoted field");
    assert!(field.is_empty() && record.is_empty(), "no final line break");
    records
}

/// Inserts `n` fused samples one second apart straight into the database (the API would take
/// minutes for this many).
fn insert_samples(env: &Env, session: &str, user: &str, t0: i64, n: i64) {
    env.sql(&format!(
        "WITH RECURSIVE g(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM g WHERE x < {last})
             INSERT INTO samples (session_id, user_id, t, modality, emotion, confidence, p_happy)
             SELECT '{session}', '{user}', {t0} + x * 1000, 2, x % 7, 0.5, 0.25 FROM g",
        last = n - 1
    ));
}

both_backends!(export_pages_through_every_row_once_in_order, |b| {
    let Some(env) = Env::new(b) else { return };
    env.add_user("root", "admin");
    let srv = env.start();
    let admin = srv.login("root");
    let ann = srv.register("ann");
    let t0 = (Utc::now() - chrono::Duration::days(1)).timestamp_millis();
    let started = chrono::DateTime::from_timestamp_millis(t0).unwrap();
    let sid = srv.start_session(&ann, Some(&started.to_rfc3339()));
    let me: Value = srv.get("/api/v1/me", Some(&ann)).json().unwrap();
    insert_samples(&env, &sid, me["id"].as_str().unwrap(), t0, ROWS);
    // A user whose name has a quote, a comma and a line break, with three samples.
    let weird_id = uuid::Uuid::now_v7().to_string();
    let weird_sid = uuid::Uuid::now_v7().to_string();
    env.sql(&format!(
        "INSERT INTO users VALUES ('{weird_id}', '{}', NULL, 'agent', 'x', FALSE, {t0});
             INSERT INTO sessions VALUES ('{weird_sid}', '{weird_id}', 'old', 'stopped', {t0}, {t0},
               {t0}, '[\"remote\"]', NULL, NULL, NULL);",
        WEIRD.replace('\'', "''")
    ));
    insert_samples(&env, &weird_sid, &weird_id, t0 + 500, 3);
    let total = ROWS as usize + 3;

    let csv = srv
        .get("/api/v1/export?format=csv", Some(&admin))
        .text()
        .unwrap();
    let records = parse_csv(&csv);
    assert_eq!(records.len(), 1 + total, "header + every row");
    assert_eq!(records[0][0], "session_id");
    let mut keys = HashSet::new();
    let mut last_t = String::new();
    let mut weird_rows = 0;
    for r in &records[1..] {
        assert_eq!(r.len(), records[0].len(), "{r:?}");
        assert!(r[2] >= last_t, "out of order: {} after {last_t}", r[2]);
        last_t = r[2].clone();
        assert!(
            keys.insert((r[0].clone(), r[3].clone(), r[2].clone())),
            "row exported twice: {r:?}"
        );
        if r[1] == WEIRD {
            weird_rows += 1;
        } else {
            assert_eq!(r[1], "ann", "{r:?}");
        }
    }
    assert_eq!(
        weird_rows, 3,
        "the quoted username did not survive as one field"
    );

    let json: Value = srv
        .get("/api/v1/export?format=json", Some(&admin))
        .json()
        .unwrap();
    let rows = json.as_array().unwrap();
    assert_eq!(rows.len(), total);
    let keys: HashSet<(String, String)> = rows
        .iter()
        .map(|r| (r["session_id"].to_string(), r["t"].to_string()))
        .collect();
    assert_eq!(keys.len(), total, "duplicate rows in the JSON export");
    // An agent's own export pages the same way.
    let own = srv
        .get("/api/v1/export?format=csv", Some(&ann))
        .text()
        .unwrap();
    assert_eq!(own.lines().count(), 1 + ROWS as usize);
});
