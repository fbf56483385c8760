//! `GET /api/v1/openapi.json`, generated from the handlers' annotations and the shared types.

use actix_web::HttpResponse;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
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
        emo_api_types::SessionSummary,
        emo_api_types::SampleIn,
        emo_api_types::analyze::AnalyzeResponse,
        emo_api_types::Devices,
        emo_api_types::CaptureStats,
        emo_api_types::SourceState,
        emo_api_types::Bucket,
        emo_api_types::HeatmapKind,
        emo_api_types::ExportFormat,
    )),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

pub async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}
