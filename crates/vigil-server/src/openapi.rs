//! The OpenAPI document, generated from the handlers and wire types, and the
//! route table the router is built from, so the two cannot drift (see the
//! test below).

use std::sync::OnceLock;

use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use utoipa::OpenApi;

use crate::state::AppState;
use axum::routing::delete;

use crate::{admin_api, health_api, infer_api, inferences_api, score_api};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Vigil",
        description = "Real-time scoring of tree models: Open Inference Protocol V2 and plain JSON."
    ),
    paths(
        health_api::live,
        health_api::ready,
        health_api::server_metadata,
        infer_api::model_metadata,
        infer_api::model_version_metadata,
        infer_api::model_ready,
        infer_api::model_version_ready,
        infer_api::infer,
        infer_api::infer_version,
        score_api::score,
        openapi_json,
        admin_api::reload,
        admin_api::flush_cache,
        admin_api::stats,
        inferences_api::get_inference,
        inferences_api::list_inferences,
        inferences_api::stats::store_stats,
    ),
    components(schemas(crate::error::ErrorBody, crate::error::ErrorCode, score_api::BatchScoreResponse,
        inferences_api::InferenceRecordDoc)),
    modifiers(&ApiKeyScheme),
    tags(
        (name = "health", description = "Open Inference Protocol server health and metadata"),
        (name = "inference", description = "Open Inference Protocol model endpoints"),
        (name = "scoring", description = "Plain JSON scoring"),
        (name = "meta", description = "This document"),
        (name = "admin", description = "Admin API (needs a key with the admin role)"),
        (name = "inferences", description = "The inference log (admin API: needs a key with the admin role)"),
    )
)]
struct ApiDoc;

/// Declares the `api_key` scheme: `Authorization: Bearer KEY` (or `x-api-key`).
struct ApiKeyScheme;

impl utoipa::Modify for ApiKeyScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "an API key from [[keys]]; `x-api-key: KEY` is accepted too",
                    ))
                    .build(),
            ),
        );
    }
}

/// The OpenAPI 3 document of every endpoint.
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// This OpenAPI document.
#[utoipa::path(get, path = "/openapi.json", tag = "meta",
    responses((status = 200, description = "the OpenAPI 3 document", content_type = "application/json")))]
pub async fn openapi_json() -> Response {
    static DOC: OnceLock<String> = OnceLock::new();
    let body = DOC.get_or_init(|| openapi().to_json().unwrap_or_else(|_| "{}".to_owned()));
    ([(CONTENT_TYPE, "application/json")], body.as_str()).into_response()
}

/// Every route: (method, path template, handler). The router is built from
/// this table and the test below compares it with the OpenAPI document.
pub(crate) fn route_table() -> Vec<(&'static str, &'static str, MethodRouter<AppState>)> {
    vec![
        ("GET", "/v2/health/live", get(health_api::live)),
        ("GET", "/v2/health/ready", get(health_api::ready)),
        ("GET", "/v2", get(health_api::server_metadata)),
        ("GET", "/v2/models/{name}", get(infer_api::model_metadata)),
        (
            "GET",
            "/v2/models/{name}/versions/{version}",
            get(infer_api::model_version_metadata),
        ),
        (
            "GET",
            "/v2/models/{name}/ready",
            get(infer_api::model_ready),
        ),
        (
            "GET",
            "/v2/models/{name}/versions/{version}/ready",
            get(infer_api::model_version_ready),
        ),
        ("POST", "/v2/models/{name}/infer", post(infer_api::infer)),
        (
            "POST",
            "/v2/models/{name}/versions/{version}/infer",
            post(infer_api::infer_version),
        ),
        ("POST", "/v1/models/{name}/score", post(score_api::score)),
        ("GET", "/openapi.json", get(openapi_json)),
        ("POST", "/api/admin/reload", post(admin_api::reload)),
        ("DELETE", "/api/cache", delete(admin_api::flush_cache)),
        ("GET", "/api/gateway/stats", get(admin_api::stats)),
        (
            "GET",
            "/api/inferences",
            get(inferences_api::list_inferences),
        ),
        (
            "GET",
            "/api/inferences/{id}",
            get(inferences_api::get_inference),
        ),
        (
            "GET",
            "/api/store/stats",
            get(inferences_api::stats::store_stats),
        ),
    ]
}

/// The methods routed on `template`, e.g. `GET, POST` (for 405 messages).
pub(crate) fn allowed_methods(template: &str) -> String {
    let methods: Vec<&str> = route_table()
        .into_iter()
        .filter(|(_, path, _)| *path == template)
        .map(|(method, _, _)| method)
        .collect();
    methods.join(", ")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn every_route_is_documented_and_every_documented_path_is_routed() {
        let routed: BTreeSet<(String, String)> = route_table()
            .into_iter()
            .map(|(method, path, _)| (method.to_owned(), path.to_owned()))
            .collect();
        let doc = serde_json::to_value(openapi()).expect("serializable");
        let mut documented = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for method in item.as_object().expect("path item").keys() {
                if ["get", "post", "put", "delete", "patch", "head", "options"]
                    .contains(&method.as_str())
                {
                    documented.insert((method.to_uppercase(), path.clone()));
                }
            }
        }
        assert_eq!(routed, documented);
        assert_eq!(routed.len(), 17);
    }

    #[test]
    fn document_is_openapi_3_with_schemas() {
        let doc = serde_json::to_value(openapi()).expect("serializable");
        assert!(doc["openapi"].as_str().expect("version").starts_with("3."));
        let schemas = doc["components"]["schemas"].as_object().expect("schemas");
        for name in [
            "ErrorBody",
            "InferResponse",
            "ModelMetadata",
            "ScoreRequest",
            "ScoreResponse",
            "BatchScoreResponse",
            "InferencePage",
            "InferenceRecords",
            "InferenceRecordDoc",
        ] {
            assert!(schemas.contains_key(name), "schema {name} missing");
        }
    }
}
