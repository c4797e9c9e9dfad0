//! The dashboards API (PutDashboard, GetDashboard, ListDashboards,
//! DeleteDashboards): bodies in the cloud's dashboard-body JSON, validated
//! by `vigil_metrics::dashboard` (every problem names the widget index and
//! field), kept in `dashboards.json` in the data directory over the config
//! file's `[[dashboards]]` and the two built-in dashboards (see
//! [`builtin`]). The console (`/`) draws them.

pub mod builtin;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use vigil_metrics::dashboard::store::{Dashboard, DashboardError, Dashboards, Source};

use crate::config::Config;
use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;

/// The dashboards for `config`, the API's changes in memory only (router
/// tests) or, with `dir`, in `dir/dashboards.json`.
pub fn open(config: &Config, dir: Option<&std::path::Path>) -> anyhow::Result<Dashboards> {
    let (builtin, configured) = layers(config);
    match dir {
        Some(dir) => Dashboards::open(dir, builtin, configured),
        None => Dashboards::new(builtin, configured),
    }
    .map_err(|err| anyhow::anyhow!("dashboards: {err}"))
}

/// A dashboard's name and body.
type Named = (String, Value);

/// The built-in dashboards for `config` (the overview follows its models
/// and alarms) and its `[[dashboards]]`.
fn layers(config: &Config) -> (Vec<Named>, Vec<Named>) {
    let configured = config
        .dashboards
        .iter()
        .map(|d| (d.name.clone(), d.body.clone()))
        .collect();
    (builtin::dashboards(config), configured)
}

/// A reloaded `config`'s dashboards in force, by the code start-up uses;
/// the API's changes stay laid over them.
pub fn reconfigure(dashboards: &Dashboards, config: &Config) -> anyhow::Result<()> {
    let (builtin, configured) = layers(config);
    dashboards
        .reconfigure(builtin, configured)
        .map_err(|err| anyhow::anyhow!("dashboards: {err}"))
}

fn dashboard_error(err: DashboardError) -> ApiError {
    let code = match &err {
        DashboardError::Invalid(_) => ErrorCode::BadRequest,
        DashboardError::NotFound(_) => ErrorCode::NotFound,
        DashboardError::Builtin(_) => ErrorCode::Conflict,
        DashboardError::Storage { .. } => return ApiError::internal(err.to_string()),
    };
    ApiError::new(code, err.to_string())
}

fn source_name(source: Source) -> &'static str {
    match source {
        Source::Builtin => "builtin",
        Source::Config => "config",
        Source::Api => "api",
    }
}

/// One dashboard of `GET /api/dashboards`.
#[derive(Debug, Serialize, ToSchema)]
pub struct DashboardSummary {
    /// Its name.
    pub name: String,
    /// `builtin`, `config` (the file's `[[dashboards]]`) or `api`.
    pub source: &'static str,
    /// How many widgets it has.
    pub widgets: usize,
}

/// `GET /api/dashboards` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct DashboardList {
    /// Every dashboard, by name.
    pub dashboards: Vec<DashboardSummary>,
}

/// One dashboard with its body.
#[derive(Debug, Serialize, ToSchema)]
pub struct DashboardView {
    /// Its name.
    pub name: String,
    /// `builtin`, `config` (the file's `[[dashboards]]`) or `api`.
    pub source: &'static str,
    /// The dashboard body as stored: `{"widgets": [...], "start": ...}`.
    #[schema(value_type = Object)]
    pub body: serde_json::Value,
}

impl From<Dashboard> for DashboardView {
    fn from(d: Dashboard) -> Self {
        DashboardView {
            name: d.name,
            source: source_name(d.source),
            body: d.body,
        }
    }
}

/// Every dashboard (the built-in ones, the config file's, the API's).
#[utoipa::path(get, path = "/api/dashboards", tag = "dashboards",
    responses((status = 200, body = DashboardList)))]
pub async fn list(State(state): State<AppState>) -> Json<DashboardList> {
    Json(DashboardList {
        dashboards: state
            .dashboards()
            .list()
            .into_iter()
            .map(|d| DashboardSummary {
                widgets: d.body["widgets"].as_array().map_or(0, Vec::len),
                name: d.name,
                source: source_name(d.source),
            })
            .collect(),
    })
}

/// One dashboard and its body.
#[utoipa::path(get, path = "/api/dashboards/{name}", tag = "dashboards",
    params(("name" = String, Path, description = "the dashboard's name")),
    responses((status = 200, body = DashboardView), (status = 404, body = crate::error::ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<DashboardView>, ApiError> {
    state
        .dashboards()
        .get(&name)
        .map(|d| Json(d.into()))
        .ok_or_else(|| dashboard_error(DashboardError::NotFound(name)))
}

/// Log widgets' queries must parse (`vigil_metrics` cannot see the log
/// query language: it sits below `vigil-logs`).
fn check_log_queries(body: &serde_json::Value) -> Vec<String> {
    let mut problems = Vec::new();
    for (i, widget) in body["widgets"].as_array().into_iter().flatten().enumerate() {
        if widget["type"] != "log" {
            continue;
        }
        let Some(query) = widget["properties"]["query"].as_str() else {
            continue;
        };
        if let Some((_, rest)) = vigil_metrics::dashboard::split_log_query(query)
            && let Err(err) = vigil_logs::query::Query::parse(&rest)
        {
            problems.push(format!(
                "widgets[{i}].properties.query: {err} (after the SOURCE clauses)"
            ));
        }
    }
    problems
}

/// Creates or replaces a dashboard; the body is the dashboard body.
#[utoipa::path(put, path = "/api/dashboards/{name}", tag = "dashboards",
    params(("name" = String, Path, description = "1–255 letters, digits, `-` and `_`")),
    request_body(content = Object, description = "the dashboard body: `{\"widgets\": [{\"type\": \"metric\", \
        \"x\": 0, \"y\": 0, \"width\": 12, \"height\": 6, \"properties\": {\"metrics\": [[\"InferencePipeline\", \
        \"LatencyMs\", {\"stat\": \"p99\"}]], \"view\": \"timeSeries\", \"period\": 60}}], \"start\": \"-PT3H\"}`; \
        widget types `metric`, `text`, `alarm`, `log`, `trace-list`, `service-map` on a 24-column grid"),
    responses((status = 200, description = "the dashboard as stored", body = DashboardView),
        (status = 400, description = "every problem, each naming the widget index and field \
            (`widgets[2].properties.metrics[0][2]: ...`)", body = crate::error::ErrorBody),
        (status = 415, body = crate::error::ErrorBody)))]
pub async fn put(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: crate::extract::JsonBody,
) -> Result<Json<DashboardView>, ApiError> {
    let body: serde_json::Value = serde_json::from_slice(&body.0)
        .map_err(|err| ApiError::bad_request(format!("invalid request body: {err}")))?;
    let problems = vigil_metrics::dashboard::store::check(&name, &body);
    let mut messages: Vec<String> = Vec::new();
    if !problems.is_empty() {
        messages.push(vigil_metrics::dashboard::store::join(&problems));
    }
    messages.extend(check_log_queries(&body));
    if !messages.is_empty() {
        return Err(ApiError::bad_request(messages.join("; ")));
    }
    let dashboards = std::sync::Arc::clone(state.dashboards());
    // Persisting syncs a file: off the async workers.
    let stored = tokio::task::spawn_blocking(move || dashboards.put(&name, body))
        .await
        .map_err(|err| ApiError::internal(format!("dashboard task failed: {err}")))?
        .map_err(dashboard_error)?;
    Ok(Json(stored.into()))
}

/// Deletes a dashboard: one put through the API goes (a built-in or config
/// dashboard of the same name shows again); a config dashboard is marked
/// deleted; a built-in one the API did not replace cannot be deleted (409).
#[utoipa::path(delete, path = "/api/dashboards/{name}", tag = "dashboards",
    params(("name" = String, Path, description = "the dashboard's name")),
    responses((status = 204, description = "deleted"), (status = 404, body = crate::error::ErrorBody),
        (status = 409, description = "a built-in dashboard", body = crate::error::ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let dashboards = std::sync::Arc::clone(state.dashboards());
    tokio::task::spawn_blocking(move || dashboards.delete(&name))
        .await
        .map_err(|err| ApiError::internal(format!("dashboard task failed: {err}")))?
        .map_err(dashboard_error)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
mod tests;
