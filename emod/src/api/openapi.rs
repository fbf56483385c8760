//! `GET /api/v1/openapi.json`, generated from the handlers' annotations and the shared types.

use std::collections::HashMap;
use std::sync::OnceLock;

use actix_web::HttpResponse;
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, Header, Ref, RefOr, Response};
use utoipa::{Modify, OpenApi};

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The answers every operation can give besides its own, added from what the operation is
/// (authenticated, takes a JSON or multipart body, has path or query parameters, needs the
/// database), so the document cannot forget them: the extractors and the error handlers in
/// `api/mod.rs` answer these for every route alike. Every error response gets the `ApiError`
/// body, and every 429 its `Retry-After` header.
struct CommonResponses;

fn error_response(description: &str) -> RefOr<Response> {
    let mut r = Response::new(description);
    r.content.insert(
        "application/json".into(),
        Content::new(Some(Ref::from_schema_name("ApiError"))),
    );
    RefOr::T(r)
}

fn add(op: &mut Operation, status: u16, description: &str) {
    op.responses
        .responses
        .entry(status.to_string())
        .or_insert_with(|| error_response(description));
}

/// The answers of one kind of operation, status and description.
type Answers = &'static [(u16, &'static str)];

const AUTHENTICATED: Answers = &[
    (
        401,
        "unauthenticated: no, unknown, expired or revoked bearer token",
    ),
    (
        403,
        "account_disabled (or forbidden: an agent asking for what only admins may)",
    ),
];
const JSON_BODY: Answers = &[
    (400, "malformed_json: the body is not JSON"),
    (
        413,
        "payload_too_large: the body is over server.json_limit_bytes",
    ),
    (
        415,
        "unsupported_media_type: the body is not application/json",
    ),
    (
        422,
        "invalid_input: a field is missing, unknown, of the wrong type or out of range",
    ),
];
const MULTIPART_BODY: Answers = &[
    (400, "invalid_input: the multipart body is malformed"),
    (
        422,
        "invalid_input: the multipart body is incomplete or carries no file",
    ),
    (
        413,
        "payload_too_large: the upload is over server.upload_limit_bytes",
    ),
    (
        415,
        "unsupported_media_type: the body is not multipart/form-data",
    ),
];
const QUERY: Answers = &[(
    400,
    "invalid_query: a query parameter is malformed or out of range",
)];
const NAMES_A_RESOURCE: Answers = &[(404, "not_found: no such resource visible to the caller")];
const USES_STORAGE: Answers = &[(
    503,
    "storage_unavailable: the database is unreachable; retry later",
)];

fn complete(path: &str, op: &mut Operation) {
    for (status, description) in common_answers(path, op).into_iter().flatten() {
        add(op, *status, description);
    }
    describe_errors(op);
}

/// The kinds of answers `op` at `path` gives besides its own, in the order they are added (the
/// first description of a status wins).
fn common_answers(path: &str, op: &Operation) -> Vec<Answers> {
    let params = op.parameters.as_deref().unwrap_or_default();
    let has_path = params
        .iter()
        .any(|p| matches!(p.parameter_in, ParameterIn::Path));
    let has_query = params
        .iter()
        .any(|p| matches!(p.parameter_in, ParameterIn::Query));
    // Filters naming an agent or a session answer 404 when it does not exist (or is hidden).
    let names_a_resource = params.iter().any(|p| {
        matches!(p.parameter_in, ParameterIn::Query)
            && matches!(p.name.as_str(), "agent" | "session")
    });
    let takes = |media: &str| {
        op.request_body
            .as_ref()
            .is_some_and(|b| b.content.keys().any(|t| t == media))
    };
    let mut answers = Vec::new();
    if op.security.as_ref().is_some_and(|s| !s.is_empty()) {
        answers.push(AUTHENTICATED);
    }
    if takes("application/json") {
        answers.push(JSON_BODY);
    }
    if takes("multipart/form-data") {
        answers.push(MULTIPART_BODY);
    }
    if has_query {
        answers.push(QUERY);
    }
    if has_path || names_a_resource {
        answers.push(NAMES_A_RESOURCE);
    }
    // Everything behind /api/v1 reads or writes the database (or the token cache falls back to it).
    if path.starts_with("/api/v1/") {
        answers.push(USES_STORAGE);
    }
    answers
}

/// Every error response gets the `ApiError` body, and every 429 its `Retry-After` header.
fn describe_errors(op: &mut Operation) {
    for (status, resp) in op.responses.responses.iter_mut() {
        let RefOr::T(resp) = resp else { continue };
        if status.starts_with('4') || status.starts_with('5') {
            if resp.content.is_empty() {
                resp.content.insert(
                    "application/json".into(),
                    Content::new(Some(Ref::from_schema_name("ApiError"))),
                );
            }
            if status == "429" {
                let mut h = Header::default();
                h.description = Some("seconds to wait before retrying".into());
                resp.headers.insert("Retry-After".into(), h);
            }
        }
    }
}

impl Modify for CommonResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (path, item) in openapi.paths.paths.iter_mut() {
            for op in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                complete(path, op);
            }
        }
    }
}

/// The methods each documented route answers, for the `Allow` header of a 405 (RFC 9110
/// requires it). Taken from the document itself, so the two cannot disagree; routes outside it
/// (`/metrics`, the document) answer GET only.
pub fn allowed_methods(pattern: &str) -> &'static str {
    static ALLOW: OnceLock<HashMap<String, String>> = OnceLock::new();
    let map = ALLOW.get_or_init(|| {
        ApiDoc::openapi()
            .paths
            .paths
            .iter()
            .map(|(path, item)| {
                let methods: Vec<&str> = [
                    ("GET", item.get.is_some()),
                    ("PUT", item.put.is_some()),
                    ("POST", item.post.is_some()),
                    ("DELETE", item.delete.is_some()),
                    ("PATCH", item.patch.is_some()),
                ]
                .into_iter()
                .filter_map(|(m, has)| has.then_some(m))
                .collect();
                (path.clone(), methods.join(", "))
            })
            .collect()
    });
    map.get(pattern).map_or("GET", String::as_str)
}

#[derive(OpenApi)]
#[openapi(
    info(title = "EMO API", description = "Expression estimates from faces and voices, recorded with consent. \
        Errors are JSON {\"error\": \"snake_case_code\", \"message\": \"...\"}."),
    paths(
        super::health::healthz,
        super::health::readyz,
        super::auth::register,
        super::auth::login,
        super::auth::logout,
        super::auth::me,
        super::users::list,
        super::users::get,
        super::users::create,
        super::users::update,
        super::sessions::start,
        super::sessions::list,
        super::sessions::get,
        super::sessions::stop,
        super::sessions::samples,
        super::sessions::post_samples,
        super::live::stream,
        super::stats::distribution,
        super::stats::timeline,
        super::stats::heatmap,
        super::export::export,
        super::audit::list,
        super::analyze::analyze,
        super::devices::list,
    ),
    components(schemas(
        emo_api_types::ApiError,
        emo_api_types::Emotion,
        emo_api_types::Modality,
        emo_api_types::Role,
        emo_api_types::SessionStatus,
        emo_api_types::EndReason,
        emo_api_types::SessionSummary,
        emo_api_types::SampleIn,
        emo_api_types::analyze::AnalyzeResponse,
        emo_api_types::analyze::AnalyzeRefused,
        emo_api_types::Devices,
        emo_api_types::CaptureStats,
        emo_api_types::SourceState,
        emo_api_types::Bucket,
        emo_api_types::HeatmapKind,
        emo_api_types::ExportFormat,
    )),
    modifiers(&BearerAuth, &CommonResponses)
)]
pub struct ApiDoc;

pub async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}
