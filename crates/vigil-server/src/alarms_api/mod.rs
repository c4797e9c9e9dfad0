//! The alarms API (PutMetricAlarm, PutCompositeAlarm, DescribeAlarms,
//! DescribeAlarmHistory, SetAlarmState, DeleteAlarms) with the cloud's
//! field names in snake_case. Evaluation runs in the background every 10 s
//! (see `telemetry::tick_every_second`).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use vigil_metrics::alarm::{AlarmError, AlarmView, HistoryItem};
use vigil_metrics::notify::AlarmState;
use vigil_metrics::service::MetricsService;

use crate::config::{AlarmDef, parse_alarm};
use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;
use crate::telemetry::now_ms;

fn alarm_error(err: AlarmError) -> ApiError {
    let code = match err.code() {
        "bad_request" => ErrorCode::BadRequest,
        "not_found" => ErrorCode::NotFound,
        "conflict" => ErrorCode::Conflict,
        _ => return ApiError::internal(err.to_string()),
    };
    ApiError::new(code, err.to_string())
}

fn not_found(name: &str) -> ApiError {
    ApiError::new(ErrorCode::NotFound, format!("no alarm named `{name}`"))
}

/// `GET /api/alarms` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct AlarmList {
    /// Every alarm (config and state), by name.
    #[schema(value_type = Vec<Object>)]
    pub alarms: Vec<AlarmView>,
    /// Who evaluates these alarms.
    pub evaluator: EvaluatorView,
}

/// Whether this replica evaluates the alarms.
#[derive(Debug, Serialize, ToSchema)]
pub struct EvaluatorView {
    /// `single` (one node) or `fleet` (`metrics.url`: one replica at a
    /// time evaluates, the holder of the fleet's lock).
    pub mode: &'static str,
    /// Whether this replica evaluated in the last 10 s slot (always `true`
    /// for a single node). In a fleet, send SetAlarmState to the leader.
    pub leader: bool,
    /// This process's replica id in the fleet's store (fleet only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replica: Option<String>,
}

/// `GET /api/alarms/{name}/history` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct AlarmHistory {
    /// Newest first: `ConfigurationUpdate`, `StateUpdate` and `Action`
    /// items, kept 30 days.
    #[schema(value_type = Vec<Object>)]
    pub items: Vec<HistoryItem>,
}

/// `POST /api/alarms/{name}/state` body (SetAlarmState).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetState {
    /// `OK`, `ALARM` or `INSUFFICIENT_DATA`.
    #[schema(value_type = String)]
    pub state_value: AlarmState,
    /// Why (kept in the history).
    pub state_reason: String,
    /// Optional JSON reason data.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub state_reason_data: Option<serde_json::Value>,
}

/// Filters of `GET /api/alarms`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// Only alarms in this state.
    #[serde(default)]
    pub state: Option<AlarmState>,
}

/// Every alarm with its state.
#[utoipa::path(get, path = "/api/alarms", tag = "alarms",
    params(("state" = Option<String>, Query, description = "only alarms in this state: OK, ALARM or INSUFFICIENT_DATA")),
    responses((status = 200, body = AlarmList), (status = 400, body = crate::error::ErrorBody),
        (status = 503, description = "metrics are off", body = crate::error::ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    params: Result<Query<ListParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<AlarmList>, ApiError> {
    let service = state.metric_service()?;
    let Query(params) = params
        .map_err(|err| ApiError::bad_request(format!("invalid parameters: {}", err.body_text())))?;
    let alarms = service
        .alarms()
        .list()
        .into_iter()
        .filter(|a| params.state.is_none_or(|s| a.state_value == s))
        .collect();
    let evaluator = service.evaluator();
    Ok(Json(AlarmList {
        alarms,
        evaluator: EvaluatorView {
            mode: if evaluator.fleet { "fleet" } else { "single" },
            leader: evaluator.leader,
            replica: evaluator.replica,
        },
    }))
}

/// One alarm: its config and state (`state_value`, `state_reason`,
/// `state_reason_data`, `state_updated_at`).
#[utoipa::path(get, path = "/api/alarms/{name}", tag = "alarms",
    params(("name" = String, Path, description = "the alarm's name")),
    responses((status = 200, description = "the alarm", body = Object), (status = 404, body = crate::error::ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<AlarmView>, ApiError> {
    state
        .metric_service()?
        .alarms()
        .get(&name)
        .map(Json)
        .ok_or_else(|| not_found(&name))
}

/// Creates or replaces an alarm (a composite when the body has
/// `alarm_rule`); an update keeps the alarm's state.
#[utoipa::path(put, path = "/api/alarms/{name}", tag = "alarms",
    params(("name" = String, Path, description = "the alarm's name (the body's `name`, if given, must match)")),
    request_body(content = Object, description = "a metric alarm (`namespace`, `metric_name`, `dimensions`, `statistic` \
        or `extended_statistic`, `period`, `evaluation_periods`, `datapoints_to_alarm`, `threshold`, `comparison_operator`, \
        `treat_missing_data`, `evaluate_low_sample_count_percentile`, or `metrics` for metric math; `alarm_actions`, \
        `ok_actions`, `insufficient_data_actions`, `actions_enabled`) or a composite (`alarm_rule`, the action fields, \
        `actions_suppressor`, `actions_suppressor_wait_period`, `actions_suppressor_extension_period`)"),
    responses((status = 200, description = "the alarm as stored", body = Object),
        (status = 400, description = "every problem, each naming its field", body = crate::error::ErrorBody),
        (status = 415, body = crate::error::ErrorBody),
        (status = 503, description = "metrics are off", body = crate::error::ErrorBody)))]
pub async fn put(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: crate::extract::JsonBody,
) -> Result<Json<AlarmView>, ApiError> {
    let service = state.metric_service()?;
    let mut value: serde_json::Value = serde_json::from_slice(&body.0)
        .map_err(|err| ApiError::bad_request(format!("invalid request body: {err}")))?;
    let object = value
        .as_object_mut()
        .ok_or_else(|| ApiError::bad_request("the body must be a JSON object"))?;
    match object.get("name") {
        None => {
            object.insert("name".into(), serde_json::Value::String(name.clone()));
        }
        Some(serde_json::Value::String(given)) if *given == name => {}
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "name: the body says {other} but the path says `{name}`"
            )));
        }
    }
    let alarm =
        parse_alarm(value).map_err(|problems| ApiError::bad_request(problems.join("; ")))?;
    let now = now_ms();
    match alarm {
        AlarmDef::Metric(alarm) => service.alarms().put_metric_alarm(*alarm, now),
        AlarmDef::Composite(alarm) => service.alarms().put_composite_alarm(*alarm, now),
    }
    .map_err(alarm_error)?;
    service
        .alarms()
        .get(&name)
        .map(Json)
        .ok_or_else(|| not_found(&name))
}

/// Deletes an alarm (refused while a composite alarm refers to it).
#[utoipa::path(delete, path = "/api/alarms/{name}", tag = "alarms",
    params(("name" = String, Path, description = "the alarm's name")),
    responses((status = 204, description = "deleted"), (status = 404, body = crate::error::ErrorBody),
        (status = 409, description = "a composite alarm refers to it", body = crate::error::ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    state
        .metric_service()?
        .alarms()
        .delete(&name, now_ms())
        .map_err(alarm_error)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The alarm's history, newest first (kept 30 days).
#[utoipa::path(get, path = "/api/alarms/{name}/history", tag = "alarms",
    params(("name" = String, Path, description = "the alarm's name")),
    responses((status = 200, body = AlarmHistory), (status = 503, description = "metrics are off", body = crate::error::ErrorBody)))]
pub async fn history(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<AlarmHistory>, ApiError> {
    Ok(Json(AlarmHistory {
        items: state.metric_service()?.alarms().history(&name),
    }))
}

/// Forces the alarm's state (SetAlarmState): its actions run if the state
/// changed; a metric alarm returns to its computed state at its next
/// evaluation, a composite when a child changes.
#[utoipa::path(post, path = "/api/alarms/{name}/state", tag = "alarms",
    params(("name" = String, Path, description = "the alarm's name")),
    request_body(content = SetState),
    responses((status = 200, description = "the alarm after the change", body = Object),
        (status = 400, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody),
        (status = 415, body = crate::error::ErrorBody),
        (status = 503, description = "metrics are off", body = crate::error::ErrorBody)))]
pub async fn set_state(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: crate::extract::JsonBody,
) -> Result<Json<AlarmView>, ApiError> {
    let service: &Arc<MetricsService> = state.metric_service()?;
    let request: SetState = serde_json::from_slice(&body.0)
        .map_err(|err| ApiError::bad_request(format!("invalid request body: {err}")))?;
    let dispatches = service
        .alarms()
        .set_state(
            &name,
            request.state_value,
            &request.state_reason,
            request.state_reason_data,
            now_ms(),
        )
        .map_err(alarm_error)?;
    let sender = Arc::clone(service);
    tokio::spawn(async move { sender.dispatch(dispatches).await });
    service
        .alarms()
        .get(&name)
        .map(Json)
        .ok_or_else(|| not_found(&name))
}

#[cfg(test)]
mod tests;
