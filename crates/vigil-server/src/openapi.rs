//! The OpenAPI document, generated from the handlers and wire types, and the
//! route table the router is built from, so the two cannot drift (see the
//! test below).

use std::sync::OnceLock;

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, post, put};
use utoipa::OpenApi;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::SecurityRequirement;
use utoipa::openapi::{ContentBuilder, HeaderBuilder, Ref};

use crate::gateway::{self, RouteClass};
use crate::state::AppState;
use crate::{
    admin_api, alarms_api, console, dashboards_api, health_api, infer_api, inferences_api,
    logs_api, metrics_api, score_api, traces_api,
};

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
        metrics_api::prometheus,
        metrics_api::query::list,
        metrics_api::query::get,
        metrics_api::query::math,
        metrics_api::put::put,
        alarms_api::list,
        alarms_api::get,
        alarms_api::put,
        alarms_api::delete,
        alarms_api::history,
        alarms_api::set_state,
        logs_api::put_events,
        logs_api::list_groups,
        logs_api::put_group,
        logs_api::delete_group,
        logs_api::test_pattern,
        logs_api::query::query,
        logs_api::metric_filters::put,
        logs_api::metric_filters::get,
        logs_api::metric_filters::list,
        logs_api::metric_filters::delete,
        logs_api::events::events,
        logs_api::tail::tail,
        logs_api::subscriptions::put,
        logs_api::subscriptions::get,
        logs_api::subscriptions::list,
        logs_api::subscriptions::delete,
        traces_api::list,
        traces_api::get,
        traces_api::service_map,
        traces_api::rules::list,
        traces_api::rules::get,
        traces_api::rules::put,
        traces_api::rules::delete,
        traces_api::otlp::receive,
        dashboards_api::list,
        dashboards_api::get,
        dashboards_api::put,
        dashboards_api::delete,
        console::index,
        console::file,
    ),
    components(schemas(crate::error::ErrorBody, crate::error::ErrorCode, score_api::BatchScoreResponse,
        inferences_api::InferenceRecordDoc, inferences_api::TimeBound)),
    modifiers(&GatewayDoc),
    tags(
        (name = "health", description = "Open Inference Protocol server health and metadata"),
        (name = "inference", description = "Open Inference Protocol model endpoints"),
        (name = "scoring", description = "Plain JSON scoring"),
        (name = "meta", description = "This document"),
        (name = "admin", description = "Admin API (needs a key with the admin role)"),
        (name = "alarms", description = "Metric and composite alarms (admin API)"),
        (name = "logs", description = "Log groups, streams and events (admin API)"),
        (name = "traces", description = "Traces, the service map and sampling rules (admin API)"),
        (name = "metrics", description = "Metrics: Prometheus exposition, custom metrics, queries"),
        (name = "inferences", description = "The inference log (admin API: needs a key with the admin role)"),
        (name = "dashboards", description = "Dashboards in the cloud's dashboard-body JSON (admin API)"),
        (name = "console", description = "The web console's page and files (no data: the page reads the admin API with its key)"),
    )
)]
struct ApiDoc;

/// The names of the two ways to present a key (`[[keys]]`).
const BEARER: &str = "bearer";
const API_KEY_HEADER: &str = "x_api_key";

/// What the gateway adds to each route, asked of the gateway's own
/// classifier ([`gateway::classify`]) so the document cannot say a route is
/// open when the middleware guards it: the key schemes, the key requirement
/// and the answers the gateway gives before a handler runs (401/403 for
/// keys, 429/503/504 for throttling, concurrency and the request timeout).
struct GatewayDoc;

impl utoipa::Modify for GatewayDoc {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{
            ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme,
        };
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "an API key from [[keys]]: `Authorization: Bearer KEY`",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            API_KEY_HEADER,
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "x-api-key",
                "an API key from [[keys]]: `x-api-key: KEY`",
            ))),
        );
        for (template, item) in &mut openapi.paths.paths {
            let class = gateway::classify(Some(template), template);
            for operation in operations(item) {
                match class {
                    RouteClass::Open => {}
                    RouteClass::Model(_) => {
                        operation.security = Some(key_required());
                        add_error(
                            operation,
                            401,
                            "no key, or an unusable `Authorization` header (keys configured)",
                        );
                        add_error(
                            operation,
                            403,
                            "an unknown or disabled key, or one without the score role or this model",
                        );
                        add_throttled(
                            operation,
                            429,
                            "a rate limit or `max_concurrent_requests` is reached; retry after `Retry-After` seconds",
                        );
                        add_throttled(
                            operation,
                            503,
                            "`max_concurrent_requests` is reached and `concurrency_status = 503`",
                        );
                        add_error(
                            operation,
                            504,
                            "the request took longer than `request_timeout_ms`",
                        );
                    }
                    RouteClass::Admin => {
                        operation.security = Some(key_required());
                        add_error(
                            operation,
                            401,
                            "no key, or an unusable `Authorization` header (keys configured)",
                        );
                        add_error(
                            operation,
                            403,
                            "an unknown or disabled key, one without the admin role, or no keys on a non-loopback listener",
                        );
                    }
                }
            }
        }
    }
}

/// Either header with a configured key.
fn key_required() -> Vec<SecurityRequirement> {
    vec![
        SecurityRequirement::new(BEARER, Vec::<String>::new()),
        SecurityRequirement::new(API_KEY_HEADER, Vec::<String>::new()),
    ]
}

fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.options,
        &mut item.head,
        &mut item.patch,
        &mut item.trace,
    ]
    .into_iter()
    .filter_map(Option::as_mut)
}

fn error_response(description: &str) -> ResponseBuilder {
    ResponseBuilder::new().description(description).content(
        "application/json",
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("ErrorBody")))
            .build(),
    )
}

/// Adds `status` unless the handler documents it already (its description
/// is more precise).
fn add_error(operation: &mut Operation, status: u16, description: &str) {
    operation
        .responses
        .responses
        .entry(status.to_string())
        .or_insert_with(|| error_response(description).build().into());
}

fn add_throttled(operation: &mut Operation, status: u16, description: &str) {
    let retry_after = HeaderBuilder::new()
        .schema(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(0)),
        )
        .description(Some("seconds to wait before retrying"))
        .build();
    operation
        .responses
        .responses
        .entry(status.to_string())
        .or_insert_with(|| {
            error_response(description)
                .header("Retry-After", retry_after)
                .build()
                .into()
        });
}

/// Who may call the key-guarded routes under the running config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Access {
    /// No `[[keys]]`: model routes take no key (a key sent is ignored).
    pub models_open: bool,
    /// No `[[keys]]` on a loopback listener: the admin API is open too.
    pub admin_open: bool,
}

impl Access {
    /// The access the gateway grants right now (keys change on reload).
    pub(crate) fn of(state: &AppState) -> Access {
        let no_keys = state.gateway.runtime().keys.is_empty();
        Access {
            models_open: no_keys,
            admin_open: no_keys && state.gateway.is_loopback(),
        }
    }

    const STRICT: Access = Access {
        models_open: false,
        admin_open: false,
    };

    fn index(self) -> usize {
        usize::from(self.models_open) * 2 + usize::from(self.admin_open)
    }
}

/// The OpenAPI 3 document of every endpoint, as served with `[[keys]]`
/// configured (every model and admin route needs a key).
pub fn openapi() -> utoipa::openapi::OpenApi {
    document(Access::STRICT)
}

/// The document for `access`: where no key is needed the requirement becomes
/// optional (`{}` first: no key; a key may still be sent), so that a client
/// generated from it, and a fuzzer, see what this server enforces.
pub(crate) fn document(access: Access) -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    for (template, item) in &mut doc.paths.paths {
        let open = match gateway::classify(Some(template), template) {
            RouteClass::Open => continue,
            RouteClass::Model(_) => access.models_open,
            RouteClass::Admin => access.admin_open,
        };
        if open {
            for operation in operations(item) {
                let mut security = vec![SecurityRequirement::default()];
                security.extend(key_required());
                operation.security = Some(security);
            }
        }
    }
    doc
}

/// This OpenAPI document, as it applies to this server's keys and listener.
#[utoipa::path(get, path = "/openapi.json", tag = "meta",
    responses((status = 200, description = "the OpenAPI 3 document; model and admin routes \
        list `{}` (no key) among their security requirements when the running config needs no key", content_type = "application/json")))]
pub async fn openapi_json(State(state): State<AppState>) -> Response {
    static DOCS: [OnceLock<String>; 4] = [const { OnceLock::new() }; 4];
    let access = Access::of(&state);
    let body = DOCS[access.index()].get_or_init(|| {
        document(access)
            .to_json()
            .unwrap_or_else(|_| "{}".to_owned())
    });
    ([(CONTENT_TYPE, "application/json")], body.as_str()).into_response()
}

/// Every route template the router serves, the gRPC methods' included
/// (what the telemetry resolves per-route metric handles for).
pub(crate) fn route_templates() -> Vec<&'static str> {
    let mut templates: Vec<&'static str> =
        route_table().into_iter().map(|(_, path, _)| path).collect();
    templates.extend(crate::grpc_api::ROUTES);
    templates.sort_unstable();
    templates.dedup();
    templates
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
        ("GET", "/metrics", get(metrics_api::prometheus)),
        ("GET", "/api/metrics", get(metrics_api::query::list)),
        ("POST", "/api/metrics/query", post(metrics_api::query::math)),
        (
            "POST",
            "/api/metrics/{namespace}",
            post(metrics_api::put::put),
        ),
        ("GET", "/api/alarms", get(alarms_api::list)),
        ("GET", "/api/alarms/{name}", get(alarms_api::get)),
        ("PUT", "/api/alarms/{name}", put(alarms_api::put)),
        ("DELETE", "/api/alarms/{name}", delete(alarms_api::delete)),
        (
            "GET",
            "/api/alarms/{name}/history",
            get(alarms_api::history),
        ),
        (
            "POST",
            "/api/alarms/{name}/state",
            post(alarms_api::set_state),
        ),
        (
            "GET",
            "/api/metrics/{namespace}/{name}",
            get(metrics_api::query::get),
        ),
        ("GET", "/api/logs/groups", get(logs_api::list_groups)),
        (
            "POST",
            "/api/logs/test-pattern",
            post(logs_api::test_pattern),
        ),
        ("POST", "/api/logs/query", post(logs_api::query::query)),
        ("PUT", "/api/logs/{group}", put(logs_api::put_group)),
        (
            "GET",
            "/api/logs/{group}/events",
            get(logs_api::events::events),
        ),
        ("GET", "/api/logs/{group}/tail", get(logs_api::tail::tail)),
        (
            "DELETE",
            "/api/logs/{group}",
            delete(logs_api::delete_group),
        ),
        (
            "POST",
            "/api/logs/{group}/{stream}",
            post(logs_api::put_events),
        ),
        (
            "GET",
            "/api/logs/{group}/metric-filters",
            get(logs_api::metric_filters::list),
        ),
        (
            "PUT",
            "/api/logs/{group}/metric-filters/{name}",
            put(logs_api::metric_filters::put),
        ),
        (
            "GET",
            "/api/logs/{group}/metric-filters/{name}",
            get(logs_api::metric_filters::get),
        ),
        (
            "DELETE",
            "/api/logs/{group}/metric-filters/{name}",
            delete(logs_api::metric_filters::delete),
        ),
        (
            "GET",
            "/api/logs/{group}/subscription-filters",
            get(logs_api::subscriptions::list),
        ),
        (
            "PUT",
            "/api/logs/{group}/subscription-filters/{name}",
            put(logs_api::subscriptions::put),
        ),
        (
            "GET",
            "/api/logs/{group}/subscription-filters/{name}",
            get(logs_api::subscriptions::get),
        ),
        (
            "DELETE",
            "/api/logs/{group}/subscription-filters/{name}",
            delete(logs_api::subscriptions::delete),
        ),
        ("GET", "/api/traces", get(traces_api::list)),
        (
            "GET",
            "/api/traces/sampling-rules",
            get(traces_api::rules::list),
        ),
        (
            "PUT",
            "/api/traces/sampling-rules/{name}",
            put(traces_api::rules::put),
        ),
        (
            "GET",
            "/api/traces/sampling-rules/{name}",
            get(traces_api::rules::get),
        ),
        (
            "DELETE",
            "/api/traces/sampling-rules/{name}",
            delete(traces_api::rules::delete),
        ),
        ("GET", "/api/traces/{id}", get(traces_api::get)),
        ("GET", "/api/service-map", get(traces_api::service_map)),
        ("POST", "/v1/traces", post(traces_api::otlp::receive)),
        ("GET", "/api/dashboards", get(dashboards_api::list)),
        ("GET", "/api/dashboards/{name}", get(dashboards_api::get)),
        ("PUT", "/api/dashboards/{name}", put(dashboards_api::put)),
        (
            "DELETE",
            "/api/dashboards/{name}",
            delete(dashboards_api::delete),
        ),
        ("GET", "/", get(console::index)),
        ("GET", "/console/{file}", get(console::file)),
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
        assert_eq!(routed.len(), 58);
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

    fn security_of(doc: &serde_json::Value) -> Vec<(String, String, Option<Vec<String>>)> {
        let mut out = Vec::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, operation) in item.as_object().expect("path item") {
                let names = operation["security"].as_array().map(|list| {
                    list.iter()
                        .map(|requirement| {
                            let keys: Vec<&str> = requirement
                                .as_object()
                                .expect("requirement")
                                .keys()
                                .map(String::as_str)
                                .collect();
                            keys.join("+")
                        })
                        .collect()
                });
                out.push((method.to_uppercase(), path.clone(), names));
            }
        }
        out
    }

    #[test]
    fn key_requirements_follow_the_gateway_and_the_running_config() {
        let strict = serde_json::to_value(openapi()).expect("serializable");
        let keyed = Some(vec!["bearer".to_owned(), "x_api_key".to_owned()]);
        let optional = Some(vec![
            String::new(),
            "bearer".to_owned(),
            "x_api_key".to_owned(),
        ]);
        for (method, path, security) in security_of(&strict) {
            let gated = path.starts_with("/api/")
                || path == "/v1/traces"
                || path.starts_with("/v1/models/")
                || path.starts_with("/v2/models/");
            assert_eq!(
                security,
                if gated { keyed.clone() } else { None },
                "{method} {path}"
            );
        }
        let open = Access {
            models_open: true,
            admin_open: false,
        };
        let doc = serde_json::to_value(document(open)).expect("serializable");
        for (method, path, security) in security_of(&doc) {
            let expected = if path.starts_with("/api/") || path == "/v1/traces" {
                keyed.clone()
            } else if path.starts_with("/v1/models/") || path.starts_with("/v2/models/") {
                optional.clone()
            } else {
                None
            };
            assert_eq!(security, expected, "{method} {path}");
        }
        let loopback = Access {
            models_open: true,
            admin_open: true,
        };
        let doc = serde_json::to_value(document(loopback)).expect("serializable");
        for (method, path, security) in security_of(&doc) {
            assert!(
                security.is_none() || security == optional,
                "{method} {path}"
            );
        }
        let schemes = strict["components"]["securitySchemes"]
            .as_object()
            .expect("schemes");
        assert_eq!(schemes["bearer"]["scheme"], "bearer");
        assert_eq!(schemes["x_api_key"]["name"], "x-api-key");
        assert_eq!(schemes["x_api_key"]["in"], "header");
        let score = &strict["paths"]["/v1/models/{name}/score"]["post"]["responses"];
        for status in ["401", "403", "429", "504"] {
            assert!(score.get(status).is_some(), "score lacks {status}");
        }
        assert!(score["429"]["headers"].get("Retry-After").is_some());
    }

    /// The served document against the router: with keys configured every
    /// route the document guards answers 401 without a key; without keys
    /// (on loopback) none does.
    #[tokio::test]
    async fn the_served_document_says_which_routes_answer_401() {
        use axum::body::Body;
        use axum::http::{Request, StatusCode};

        use crate::gateway::tests::{config_with, keys_toml};
        use crate::test_util::send;

        for (config, keys) in [(config_with(&keys_toml()), true), (config_with(""), false)] {
            let state = AppState::from_config(&config).expect("state");
            let served = send(
                &state,
                Request::get("/openapi.json")
                    .body(Body::empty())
                    .expect("request"),
            )
            .await;
            assert_eq!(served.status, StatusCode::OK);
            let routes = security_of(&served.json);
            assert_eq!(routes.len(), 58);
            for (method, template, security) in routes {
                let path = template
                    .replace("{name}", "fraud")
                    .replace("{version}", "1")
                    .replace("{id}", "x");
                let body = if method == "POST" {
                    Body::from("{}")
                } else {
                    Body::empty()
                };
                let request = Request::builder()
                    .method(method.as_str())
                    .uri(&path)
                    .header("content-type", "application/json")
                    .body(body)
                    .expect("request");
                let status = send(&state, request).await.status;
                let needs_key = security
                    .as_ref()
                    .is_some_and(|list| !list.iter().any(String::is_empty));
                assert_eq!(needs_key, keys && security.is_some(), "{method} {template}");
                if needs_key {
                    assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {template}");
                } else {
                    assert!(
                        status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN,
                        "{method} {template}: {status}"
                    );
                }
            }
        }
    }
}
