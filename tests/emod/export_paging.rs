//! Export beyond one page (the handler streams 5,000 rows at a time): every row exactly once, in
//! order, across page boundaries, in CSV and JSON; CSV fields with quotes, commas and line
//! breaks (a username stored by an older version, before names were restricted) stay one field;
//! and an export that cannot finish (the storage fails, the database goes away, the client
//! leaves) never reaches the client as a shorter export that looks complete.

use crate::common;

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

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
             INSERT INTO samples (session_no, user_no, t, modality, emotion, confidence,
                 p_angry, p_disgust, p_fear, p_happy, p_sad, p_surprise, p_neutral, p_calm)
             SELECT (SELECT no FROM sessions WHERE id = '{session}'), (SELECT no FROM users WHERE id = '{user}'),
                 {t0} + x * 1000, 2, x % 7, 5000, -1, -1, -1, 2500, -1, -1, -1, -1 FROM g",
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
        "INSERT INTO users VALUES ('{weird_id}', '{}', NULL, 'agent', 'x', FALSE, {t0},
               (SELECT MAX(no) + 1 FROM users));
             INSERT INTO sessions VALUES ('{weird_sid}', '{weird_id}', 'old', 'stopped', {t0}, {t0},
               {t0}, '[\"remote\"]', NULL, NULL, NULL, (SELECT MAX(no) + 1 FROM sessions));",
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

/// Rows for the interrupted exports: far more than fit in everything between the daemon's page
/// reader and a client that stopped reading (the handler's queue of 4 pages, both sockets'
/// buffers, about 10 MB), so the daemon is provably still reading pages when the test breaks
/// something.
const BIG: i64 = 150_000;

/// A daemon for `env` whose database holds [`BIG`] samples of one session, and an admin token.
fn big_export(env: &Env) -> (Server, String) {
    env.add_user("root", "admin");
    let srv = env.start();
    let admin = srv.login("root");
    let ann = srv.register("ann");
    let t0 = (Utc::now() - chrono::Duration::days(2)).timestamp_millis();
    let started = chrono::DateTime::from_timestamp_millis(t0).unwrap();
    let sid = srv.start_session(&ann, Some(&started.to_rfc3339()));
    let me: Value = srv.get("/api/v1/me", Some(&ann)).json().unwrap();
    insert_samples(env, &sid, me["id"].as_str().unwrap(), t0, BIG);
    (srv, admin)
}

/// An export as HTTP/1.1 puts it on the wire, read straight off the socket: what any client can
/// tell about a transfer that broke off is whether the chunked body's last (empty) chunk arrived
/// before the connection closed (curl: "transfer closed with outstanding read data remaining").
struct RawExport {
    sock: TcpStream,
    raw: Vec<u8>,
}

/// Starts an export and reads its first 64 KiB, then stops reading for a second: the daemon
/// fills the buffers towards this client and waits, with most pages still unread.
fn start_export(srv: &Server, token: &str, format: &str) -> RawExport {
    let addr = srv.base.trim_start_matches("http://");
    let mut sock = TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    write!(
        sock,
        "GET /api/v1/export?format={format} HTTP/1.1\r\nHost: {addr}\r\n\
         Authorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = vec![0u8; 64 * 1024];
    sock.read_exact(&mut raw).unwrap();
    let head = String::from_utf8_lossy(&raw[..body_start(&raw)]).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("transfer-encoding: chunked"), "{head}");
    std::thread::sleep(Duration::from_secs(1));
    RawExport { sock, raw }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn body_start(raw: &[u8]) -> usize {
    find(raw, b"\r\n\r\n").expect("a response head") + 4
}

/// Reads the rest of an export until the daemon closes the connection: `Ok` with the body when
/// the chunked transfer ended with its last chunk, `Err` with what had arrived when it did not.
fn finish(mut e: RawExport) -> Result<Vec<u8>, Vec<u8>> {
    let _ = e.sock.read_to_end(&mut e.raw);
    dechunk(&e.raw[body_start(&e.raw)..])
}

fn dechunk(mut b: &[u8]) -> Result<Vec<u8>, Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let Some(eol) = find(b, b"\r\n") else {
            return Err(body);
        };
        let line = std::str::from_utf8(&b[..eol]).unwrap();
        let size = usize::from_str_radix(line.split(';').next().unwrap().trim(), 16)
            .unwrap_or_else(|_| panic!("bad chunk size line {line:?}"));
        b = &b[eol + 2..];
        if size == 0 {
            return if b.starts_with(b"\r\n") {
                Ok(body)
            } else {
                Err(body)
            };
        }
        if b.len() < size + 2 {
            body.extend_from_slice(&b[..b.len().min(size)]);
            return Err(body);
        }
        body.extend_from_slice(&b[..size]);
        b = &b[size + 2..];
    }
}

/// Whatever happened before, the daemon answers and a new export has every row and ends with
/// its last chunk (which also shows that [`finish`] tells a whole transfer from a broken one).
fn assert_whole_export(srv: &Server, token: &str) {
    wait_until("the daemon to be ready", Duration::from_secs(30), || {
        srv.get("/readyz", None).status() == 200
    });
    let csv = finish(start_export(srv, token, "csv")).expect("a whole export");
    assert_eq!(
        String::from_utf8(csv).unwrap().lines().count(),
        1 + BIG as usize
    );
}

fn rename_samples(env: &Env, from: &str, to: &str) {
    // SQLite: the daemon reads while this waits for the write lock.
    let wait = match env.backend {
        Backend::Sqlite => "PRAGMA busy_timeout = 10000;",
        Backend::Postgres => "",
    };
    env.sql(&format!("{wait} ALTER TABLE {from} RENAME TO {to};"));
}

// The storage fails between two pages (here the samples table disappears, as under a restore
// run by hand): the status line went out long ago, so the daemon aborts the chunked transfer,
// which the client sees as a broken body, never as a short CSV or a closed JSON array; then it
// serves on.
both_backends!(a_storage_failure_mid_export_breaks_the_transfer, |b| {
    let Some(env) = Env::new(b) else { return };
    let (srv, admin) = big_export(&env);
    for format in ["csv", "json"] {
        let export = start_export(&srv, &admin, format);
        rename_samples(&env, "samples", "samples_away");
        let got = finish(export);
        rename_samples(&env, "samples_away", "samples");
        if let Ok(whole) = &got {
            panic!(
                "a {format} export cut short by a storage failure ended like a complete one \
                 ({} bytes, {} lines); log:\n{}",
                whole.len(),
                whole.split(|&c| c == b'\n').count(),
                srv.log_text()
            );
        }
        let got = got.unwrap_err();
        let text = String::from_utf8_lossy(&got);
        assert!(
            text.lines().count() < BIG as usize,
            "{format}: every row arrived"
        );
        if format == "json" {
            assert!(!text.trim_end().ends_with(']'), "the JSON array was closed");
        }
    }
    let log = srv.log_text();
    assert_eq!(
        log.matches("emod::api::export: export interrupted").count(),
        2,
        "{log}"
    );
    assert_whole_export(&srv, &admin);
});

/// PostgreSQL goes away mid-export (connections killed, new ones refused): the same broken
/// transfer, and once the database is back, whole exports again.
#[test]
fn a_database_outage_mid_export_breaks_the_transfer() {
    let Some(env) = Env::new(Backend::Postgres) else {
        return;
    };
    let env = env.with("EMO_DATABASE_CONNECT_TIMEOUT_SECS", "1");
    let (srv, admin) = big_export(&env);
    let pg = env.pg.as_ref().unwrap();
    let export = start_export(&srv, &admin, "csv");
    pg.cut();
    let got = finish(export);
    pg.restore();
    if let Ok(whole) = &got {
        panic!(
            "an export cut short by an outage ended like a complete one ({} lines)",
            String::from_utf8_lossy(whole).lines().count()
        );
    }
    let got = got.unwrap_err();
    assert!(String::from_utf8_lossy(&got).lines().count() < BIG as usize);
    assert_whole_export(&srv, &admin);
}

// A client that leaves mid-export stops it: the daemon reads no further pages for nobody (a
// few abandoned exports of millions of rows would otherwise keep the database busy), logs how
// far it got, and serves on.
both_backends!(a_client_leaving_mid_export_stops_it, |b| {
    let Some(env) = Env::new(b) else { return };
    let env = env.with("EMO_LOG", "info");
    let (srv, admin) = big_export(&env);
    let export = start_export(&srv, &admin, "json");
    drop(export);
    let abandoned = |log: &str| {
        log.lines()
            .find(|l| l.contains("export abandoned by the client"))
            .map(str::to_string)
    };
    wait_until(
        "the daemon to notice the client left",
        Duration::from_secs(30),
        || abandoned(&srv.log_text()).is_some(),
    );
    let line = abandoned(&srv.log_text()).unwrap();
    let rows: usize = line
        .split("rows=")
        .nth(1)
        .and_then(|v| v.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no row count in {line:?}"));
    assert!(
        rows < BIG as usize / 2,
        "the daemon read {rows} of {BIG} rows for a client that had left"
    );
    assert!(!srv.log_text().contains("export interrupted"));
    assert_whole_export(&srv, &admin);
});

/// Issue 28, item 3: exports are bounded per user and in all, and one whose client reads nothing
/// is ended after `server.export_stall_secs` (before: 400 stalled exports took RSS from 190 MB to
/// 4.4 GB). 1,000,000 rows (~50 MB of CSV) cannot fit into the sockets' buffers (loopback buffers
/// grow to several MB: 200,000 rows once fitted), so an unread export stays open until the daemon
/// ends it.
#[test]
fn stalled_exports_are_bounded_and_ended() {
    let env = Env::new(Backend::Sqlite)
        .unwrap()
        .with("EMO_SERVER_MAX_EXPORTS_PER_USER", "1")
        .with("EMO_SERVER_MAX_EXPORTS", "2")
        .with("EMO_SERVER_EXPORT_STALL_SECS", "3");
    env.add_user("root", "admin");
    let srv = env.start();
    let root = srv.login("root");
    let ann = srv.register("ann");
    let bob = srv.register("bob");
    let t0 = (Utc::now() - chrono::Duration::days(12)).timestamp_millis();
    let started = chrono::DateTime::from_timestamp_millis(t0).unwrap();
    let sid = srv.start_session(&ann, Some(&started.to_rfc3339()));
    let me: Value = srv.get("/api/v1/me", Some(&ann)).json().unwrap();
    insert_samples(&env, &sid, me["id"].as_str().unwrap(), t0, 1_000_000);
    let export = |token: &str| {
        srv.client
            .get(srv.url("/api/v1/export?format=csv"))
            .bearer_auth(token)
            .send()
            .unwrap()
    };
    let stalled = export(&ann);
    assert_eq!(stalled.status(), 200);
    let r = export(&ann);
    assert!(r.headers().get("retry-after").is_some());
    assert_eq!(
        error_of(r),
        (429, "too_many_attempts".into()),
        "one per user"
    );
    let by_root = export(&root);
    assert_eq!(by_root.status(), 200);
    assert_eq!(
        error_of(export(&bob)),
        (429, "too_many_attempts".into()),
        "two in all"
    );
    // Nobody reads: after the stall time the daemon ends both and their places are free again.
    wait_until("stalled exports ended", Duration::from_secs(30), || {
        let r = export(&bob);
        r.status() == 200
    });
    // The stalled body was cut short, not completed: it does not end like a whole export.
    let mut text = String::new();
    let read = std::io::BufReader::new(stalled).read_to_string(&mut text);
    assert!(
        read.is_err() || text.lines().count() < 1_000_001,
        "a stalled export was ended ({} lines read)",
        text.lines().count()
    );
    drop(by_root);
}

// Issue 28, item 5: a session's samples page by cursor (`after`, each page's `next_after`) in
// the same order as by offset; deep offsets are refused (before: `offset=1000000000` held a
// connection for 4.6 s) and a large session is counted only to 100,000 (`total_capped`).
both_backends!(samples_page_by_cursor_and_large_counts_are_capped, |b| {
    let Some(env) = Env::new(b) else { return };
    let srv = env.start();
    let ann = srv.register("ann");
    let t0 = (Utc::now() - chrono::Duration::days(3)).timestamp_millis();
    let started = chrono::DateTime::from_timestamp_millis(t0).unwrap();
    let me: Value = srv.get("/api/v1/me", Some(&ann)).json().unwrap();
    let uid = me["id"].as_str().unwrap().to_string();
    let small = srv.start_session(&ann, Some(&started.to_rfc3339()));
    insert_samples(&env, &small, &uid, t0, 2_500);
    let page = |q: &str| -> Value {
        let r = srv.get(&format!("/api/v1/sessions/{small}/samples?{q}"), Some(&ann));
        assert_eq!(r.status(), 200, "{q}");
        r.json().unwrap()
    };
    let times = |p: &Value| -> Vec<String> {
        p["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["t"].as_str().unwrap().to_string())
            .collect()
    };
    let mut by_offset = Vec::new();
    for off in [0, 1000, 2000] {
        by_offset.extend(times(&page(&format!("limit=1000&offset={off}"))));
    }
    let mut by_cursor = Vec::new();
    let mut q = "limit=1000".to_string();
    let mut pages = 0;
    loop {
        let p = page(&q);
        pages += 1;
        assert!(
            pages <= 4,
            "more pages than 2,500 samples make: the cursor did not advance"
        );
        by_cursor.extend(times(&p));
        match p["next_after"].as_str() {
            Some(c) => q = format!("limit=1000&after={c}"),
            None => break,
        }
    }
    assert_eq!(by_cursor.len(), 2_500);
    assert_eq!(by_cursor, by_offset, "the same samples in the same order");
    assert!(pages <= 4, "{pages} pages");
    for bad in ["offset=100001", "after=12.x", "after=1.2&offset=5"] {
        let (status, code) = error_of(srv.get(
            &format!("/api/v1/sessions/{small}/samples?{bad}"),
            Some(&ann),
        ));
        assert_eq!((status, code.as_str()), (400, "invalid_query"), "{bad}");
    }
    // A large session: counted to 100,000 and said so.
    srv.post(
        &format!("/api/v1/sessions/{small}/stop"),
        Some(&ann),
        &serde_json::json!({}),
    );
    let large = srv.start_session(&ann, Some(&started.to_rfc3339()));
    insert_samples(&env, &large, &uid, t0, 100_005);
    let r = srv.get(
        &format!("/api/v1/sessions/{large}/samples?limit=1"),
        Some(&ann),
    );
    let p: Value = r.json().unwrap();
    assert_eq!(
        (p["total"].as_i64(), p["total_capped"].as_bool()),
        (Some(100_000), Some(true)),
        "{}",
        p["total"]
    );
    let p = page("limit=1");
    assert!(
        p.get("total_capped").is_none(),
        "exact counts are not marked: {p}"
    );
});
