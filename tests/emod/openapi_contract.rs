//! The OpenAPI document against the real daemon (issue 18: the document disagreed with the
//! behaviour). Walks `/api/v1/openapi.json` and checks each operation's answers to requests that
//! every route must handle (no token, a wrong method, a bad body, an unknown id) are documented
//! with the error body; 405 carries `Allow`; export is documented with what it serves.
//! `packaging/schemathesis.sh` does the generated, exhaustive version in CI.
use crate::common;

use common::*;
use serde_json::Value;

const METHODS: [&str; 5] = ["get", "put", "post", "delete", "patch"];

fn spec(srv: &Server) -> Value {
    let r = srv.get("/api/v1/openapi.json", None);
    assert_eq!(r.status(), 200);
    r.json().unwrap()
}

/// A concrete URL path for a templated one (unknown ids, so 404 where ids matter).
fn concrete(path: &str) -> String {
    path.replace("{id}", "0190a6b0-0000-7000-8000-000000000000")
        .replace("{username}", "nobody-here")
}

fn documented(op: &Value, status: u16) -> bool {
    op["responses"].get(status.to_string()).is_some()
}

fn send(
    srv: &Server,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> reqwest::blocking::Response {
    let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
    let mut r = srv.client.request(m, srv.url(path));
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    if let Some(b) = body {
        r = r
            .header("Content-Type", "application/json")
            .body(b.to_string());
    }
    r.send().unwrap()
}

#[test]
fn every_operation_documents_what_it_answers() {
    let env = Env::new(Backend::Sqlite).unwrap();
    env.add_user("root", "admin");
    env.add_user("agent1", "agent");
    let srv = env.start();
    let admin = srv.login("root");
    let agent = srv.login("agent1");
    let doc = spec(&srv);
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 20, "{} paths", paths.len());
    let mut checked = 0;
    for (path, item) in paths {
        let ops: Vec<(&str, &Value)> = METHODS
            .iter()
            .filter_map(|m| item.get(*m).map(|op| (*m, op)))
            .collect();
        // 405 for a method the path does not document, with exactly the documented ones in Allow.
        let allowed: Vec<String> = ops.iter().map(|(m, _)| m.to_uppercase()).collect();
        let other = METHODS
            .iter()
            .find(|m| !allowed.contains(&m.to_uppercase()))
            .unwrap();
        let r = send(&srv, other, &concrete(path), Some(&admin), None);
        assert_eq!(r.status(), 405, "{other} {path}");
        let allow = r
            .headers()
            .get("allow")
            .map(|v| v.to_str().unwrap().to_string());
        let mut got: Vec<String> = allow
            .unwrap_or_else(|| panic!("405 without Allow: {other} {path}"))
            .split(',')
            .map(|m| m.trim().to_string())
            .collect();
        got.sort();
        let mut want = allowed.clone();
        want.sort();
        assert_eq!(got, want, "Allow of {path}");
        assert_eq!(error_of(r), (405, "method_not_allowed".into()));

        for (method, op) in ops {
            let label = format!("{} {path}", method.to_uppercase());
            // Every error answer is documented with the ApiError body, or one that extends it
            // (requires its `error` and `message`: /analyze's 422 adds each file's error).
            for (status, resp) in op["responses"].as_object().unwrap() {
                if status.starts_with('4') || status.starts_with('5') {
                    let schema = &resp["content"]["application/json"]["schema"]["$ref"];
                    let name = schema
                        .as_str()
                        .and_then(|r| r.strip_prefix("#/components/schemas/"))
                        .unwrap_or_else(|| panic!("{label} {status}: no schema ({resp})"));
                    let required = &doc["components"]["schemas"][name]["required"];
                    for field in ["error", "message"] {
                        assert!(
                            required
                                .as_array()
                                .is_some_and(|r| r.contains(&field.into())),
                            "{label} {status}: {name} does not require {field:?}"
                        );
                    }
                }
                if status == "429" {
                    assert!(resp["headers"].get("Retry-After").is_some(), "{label} 429");
                }
            }
            let secured = op["security"].as_array().is_some_and(|s| !s.is_empty());
            if secured {
                // Without a token: 401, documented.
                let r = send(&srv, method, &concrete(path), None, None);
                assert_eq!(r.status(), 401, "{label} without a token");
                assert!(documented(op, 401), "{label}: 401 undocumented");
            }
            let json_body = op["requestBody"]["content"]
                .get("application/json")
                .is_some();
            if json_body {
                let token = Some(admin.as_str());
                let r = send(&srv, method, &concrete(path), token, Some("{not json"));
                let status = r.status().as_u16();
                assert!(
                    documented(op, status),
                    "{label}: malformed JSON got undocumented {status}"
                );
                let r = srv
                    .client
                    .request(
                        reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap(),
                        srv.url(&concrete(path)),
                    )
                    .bearer_auth(&admin)
                    .header("Content-Type", "text/plain")
                    .body("{}")
                    .send()
                    .unwrap();
                let status = r.status().as_u16();
                assert!(
                    documented(op, status),
                    "{label}: text/plain got undocumented {status}"
                );
                for s in [400, 413, 415, 422] {
                    assert!(documented(op, s), "{label}: {s} undocumented");
                }
            }
            if path.contains('{') {
                assert!(documented(op, 404), "{label}: 404 undocumented");
            }
            if path.starts_with("/api/v1/") {
                assert!(documented(op, 503), "{label}: 503 undocumented");
            }
            if method == "get" {
                // As the agent (admin-only routes answer 403, documented).
                let r = send(&srv, method, &concrete(path), Some(&agent), None);
                let status = r.status().as_u16();
                assert!(
                    documented(op, status),
                    "{label} as an agent: undocumented {status}"
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 24, "{checked} operations");

    // Sample ingest documents the per-user quota (429) and the duplicates it reports.
    let post = &doc["paths"]["/api/v1/sessions/{id}/samples"]["post"];
    assert!(documented(post, 429));
    let accepted = &doc["components"]["schemas"]["Accepted"]["properties"];
    assert!(accepted.get("duplicates").is_some(), "{accepted}");

    // Export is documented as what it serves: CSV by default, JSON on request.
    let content = &doc["paths"]["/api/v1/export"]["get"]["responses"]["200"]["content"];
    assert!(content.get("text/csv").is_some(), "{content}");
    assert!(content.get("application/json").is_some(), "{content}");
    let r = srv.get("/api/v1/export", Some(&admin));
    assert_eq!(r.status(), 200);
    let ctype = r.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ctype.starts_with("text/csv"), "{ctype}");
    let r = srv.get("/api/v1/export?format=json", Some(&admin));
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let rows: Value = r.json().unwrap();
    assert!(rows.is_array());
}

/// The error body's `error` field is documented with the codes the daemon really sends (the wire
/// names), not the Rust variant names a derive can fall back to.
#[test]
fn error_codes_are_documented_by_their_wire_names() {
    let env = Env::new(Backend::Sqlite).unwrap();
    let srv = env.start();
    let doc = spec(&srv);
    let listed: Vec<String> = doc["components"]["schemas"]["ErrorCode"]["enum"]
        .as_array()
        .unwrap_or_else(|| {
            panic!(
                "no ErrorCode enum: {}",
                doc["components"]["schemas"]["ErrorCode"]
            )
        })
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    for code in emo_api_types::ErrorCode::ALL {
        assert!(
            listed.iter().any(|l| l == code.as_str()),
            "{} missing from {listed:?}",
            code.as_str()
        );
    }
    // The body a client really gets carries one of them.
    let r = srv.post(
        "/api/v1/auth/login",
        None,
        &serde_json::json!({"username": 1}),
    );
    let body: Value = r.json().unwrap();
    let sent = body["error"].as_str().unwrap().to_string();
    assert!(listed.contains(&sent), "{sent} not in {listed:?}");
}
