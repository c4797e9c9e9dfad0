//! The log API: ingestion into groups and streams, and the groups
//! themselves (SEMANTICS.md §3.2). Group names hold `/`: a path writes
//! them `%2F` (`/api/logs/%2Fapp%2Fapi/host-1`).

pub mod events;
pub mod metric_filters;
pub mod query;
pub mod subscriptions;
pub mod tail;

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use vigil_logs::pipeline::Logs;
use vigil_logs::store::{BatchError, GroupInfo, InputEvent, LogError};

use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;
use vigil_metrics::service::now_ms;

/// The largest ingestion body: a full batch (1 MiB of messages) with its
/// JSON around it, escapes included.
pub const MAX_BODY_BYTES: usize = 4 << 20;

/// `POST /api/logs/{group}/{stream}` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutEvents {
    /// At most 10,000 events and 1 MiB (message bytes + 26 per event).
    #[schema(min_items = 1, max_items = 10_000)]
    pub events: Vec<EventIn>,
}

/// One event sent.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventIn {
    /// When it happened, Unix ms: at most 14 days back and 2 h ahead.
    pub timestamp: i64,
    /// The log line; JSON lines are searchable by field. An empty one is
    /// listed in `rejected` (`empty_message`), like one out of the window.
    pub message: String,
}

/// One event left out of a stored batch.
#[derive(Debug, Serialize, ToSchema)]
pub struct RejectedEvent {
    /// Its index in `events`.
    pub index: usize,
    /// `too_old`, `too_new` or `empty_message`.
    pub reason: String,
    /// The reason in words.
    pub message: String,
}

/// `POST /api/logs/{group}/{stream}` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct PutEventsResult {
    /// Events stored (they survive `kill -9`).
    pub accepted: usize,
    /// Events left out, in request order.
    pub rejected: Vec<RejectedEvent>,
    /// Present when an event was in the embedded metric format (and
    /// metrics are on).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub emf: Option<EmfResult>,
}

/// What the batch's EMF events gave.
#[derive(Debug, Serialize, ToSchema)]
pub struct EmfResult {
    /// Datapoints extracted and stored (one per metric and dimension set).
    pub metrics: usize,
    /// Each invalid directive: the event's index and what was wrong,
    /// naming the member. The event itself is stored.
    pub invalid: Vec<EmfProblem>,
}

/// One invalid EMF directive.
#[derive(Debug, Serialize, ToSchema)]
pub struct EmfProblem {
    /// The event's index in `events`.
    pub index: usize,
    /// What was wrong, e.g. `_aws.CloudWatchMetrics[0].Namespace: is required`.
    pub message: String,
}

/// A group as listed.
#[derive(Debug, Serialize, ToSchema)]
pub struct Group {
    /// The name, e.g. `/vigil/access`.
    pub name: String,
    /// Days events are kept; `null`: never expire.
    pub retention_days: Option<u32>,
    /// Creation time, Unix ms.
    pub created_ms: i64,
    /// Bytes on disk (sealed segments are compressed).
    pub stored_bytes: u64,
    /// Events stored.
    pub events: u64,
}

impl From<GroupInfo> for Group {
    fn from(g: GroupInfo) -> Group {
        Group {
            name: g.name,
            retention_days: g.retention_days,
            created_ms: g.created_ms,
            stored_bytes: g.stored_bytes,
            events: g.events,
        }
    }
}

/// `GET /api/logs/groups` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct GroupList {
    /// Every group, by name.
    pub groups: Vec<Group>,
}

/// `PUT /api/logs/{group}` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutGroup {
    /// Days to keep events: 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365,
    /// 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288 or 3653; `null` or
    /// absent: never expire.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 3653)]
    pub retention_days: Option<u32>,
}

/// A JSON body of up to [`MAX_BODY_BYTES`] (more than
/// `server.max_body_bytes` allows elsewhere: a log batch may be 1 MiB).
#[derive(Debug)]
pub struct BatchBody(pub bytes::Bytes);

impl FromRequest<AppState> for BatchBody {
    type Rejection = ApiError;

    async fn from_request(request: Request<Body>, _: &AppState) -> Result<Self, Self::Rejection> {
        crate::extract::check_content_type(request.headers().get(CONTENT_TYPE))?;
        let body = axum::body::to_bytes(request.into_body(), MAX_BODY_BYTES)
            .await
            .map_err(|err| crate::extract::body_error(err, MAX_BODY_BYTES))?;
        Ok(BatchBody(body))
    }
}

fn store_error(err: LogError) -> ApiError {
    match err {
        LogError::Invalid(message) => ApiError::bad_request(message),
        LogError::Batch(BatchError::Empty) => ApiError::bad_request("events: the batch is empty"),
        LogError::Batch(err) => ApiError::new(ErrorCode::PayloadTooLarge, format!("events: {err}")),
        LogError::NoGroup(name) => {
            ApiError::not_found(format!("log group {name:?} does not exist"))
        }
        err @ (LogError::Storage(_) | LogError::Catalog { .. }) => {
            tracing::error!(error = %err, "log store failed");
            ApiError::public(ErrorCode::Unavailable, "the log store cannot write now")
        }
    }
}

/// Runs a store call on the blocking pool (appends write files).
async fn blocking<T: Send + 'static>(
    logs: &Arc<Logs>,
    f: impl FnOnce(&Logs) -> Result<T, LogError> + Send + 'static,
) -> Result<T, ApiError> {
    let logs = Arc::clone(logs);
    tokio::task::spawn_blocking(move || f(&logs))
        .await
        .map_err(|err| ApiError::internal(format!("log store task failed: {err}")))?
        .map_err(store_error)
}

/// Stores a batch of events in a stream of a group (both created on first
/// use). Events outside the time window are listed and the rest stored.
#[utoipa::path(post, path = "/api/logs/{group}/{stream}", tag = "logs",
    params(("group" = String, Path, description = "1–512 of `A-Za-z0-9_-/.#`; a `/` is written `%2F`"),
        ("stream" = String, Path, description = "1–512 characters, no `:` or `*`")),
    request_body = PutEvents,
    responses((status = 200, description = "stored; events outside the window are listed", body = PutEventsResult),
        (status = 400, description = "a bad name, an empty batch or a malformed body", body = crate::error::ErrorBody),
        (status = 413, description = "more than 10,000 events or 1 MiB", body = crate::error::ErrorBody),
        (status = 415, body = crate::error::ErrorBody),
        (status = 503, description = "logs are off, or the store cannot write", body = crate::error::ErrorBody)))]
pub async fn put_events(
    State(state): State<AppState>,
    Path((group, stream)): Path<(String, String)>,
    body: BatchBody,
) -> Result<Json<PutEventsResult>, ApiError> {
    let logs = state.logs()?;
    let batch: PutEvents = serde_json::from_slice(&body.0)
        .map_err(|err| ApiError::bad_request(format!("invalid log events body: {err}")))?;
    let events: Vec<InputEvent> = batch
        .events
        .into_iter()
        .map(|e| InputEvent {
            timestamp: e.timestamp,
            message: e.message,
        })
        .collect();
    let now = now_ms();
    let outcome = blocking(logs, move |s| s.put(&group, &stream, &events, now)).await?;
    Ok(Json(PutEventsResult {
        accepted: outcome.accepted,
        rejected: outcome
            .rejected
            .into_iter()
            .map(|r| RejectedEvent {
                index: r.index,
                reason: r.reason.as_str().to_owned(),
                message: r.reason.describe().to_owned(),
            })
            .collect(),
        emf: outcome.emf.map(|emf| EmfResult {
            metrics: emf.metrics,
            invalid: emf
                .invalid
                .into_iter()
                .map(|p| EmfProblem {
                    index: p.index,
                    message: p.message,
                })
                .collect(),
        }),
    }))
}

/// Every log group with its retention, size and event count.
#[utoipa::path(get, path = "/api/logs/groups", tag = "logs",
    responses((status = 200, body = GroupList),
        (status = 503, description = "logs are off", body = crate::error::ErrorBody)))]
pub async fn list_groups(State(state): State<AppState>) -> Result<Json<GroupList>, ApiError> {
    let logs = state.logs()?;
    let groups = blocking(logs, |s| Ok(s.store().groups())).await?;
    Ok(Json(GroupList {
        groups: groups.into_iter().map(Group::from).collect(),
    }))
}

/// Creates a group, or sets its retention.
#[utoipa::path(put, path = "/api/logs/{group}", tag = "logs",
    params(("group" = String, Path, description = "1–512 of `A-Za-z0-9_-/.#`; a `/` is written `%2F`")),
    request_body = PutGroup,
    responses((status = 200, description = "the group as it is now", body = Group),
        (status = 400, description = "a bad name or retention", body = crate::error::ErrorBody),
        (status = 415, body = crate::error::ErrorBody),
        (status = 503, description = "logs are off, or the store cannot write", body = crate::error::ErrorBody)))]
pub async fn put_group(
    State(state): State<AppState>,
    Path(group): Path<String>,
    body: crate::extract::JsonBody,
) -> Result<Json<Group>, ApiError> {
    let logs = state.logs()?;
    let spec: PutGroup = serde_json::from_slice(&body.0)
        .map_err(|err| ApiError::bad_request(format!("invalid log group body: {err}")))?;
    let now = now_ms();
    let name = group.clone();
    let info = blocking(logs, move |s| {
        if !s.store().create_group(&name, spec.retention_days, now)? {
            s.store().set_retention(&name, spec.retention_days)?;
        }
        s.store()
            .groups()
            .into_iter()
            .find(|g| g.name == name)
            .ok_or(LogError::NoGroup(name))
    })
    .await?;
    Ok(Json(info.into()))
}

/// Deletes a group and every event in it.
#[utoipa::path(delete, path = "/api/logs/{group}", tag = "logs",
    params(("group" = String, Path, description = "a `/` is written `%2F`")),
    responses((status = 204, description = "deleted"),
        (status = 404, body = crate::error::ErrorBody),
        (status = 503, description = "logs are off, or the store cannot write", body = crate::error::ErrorBody)))]
pub async fn delete_group(
    State(state): State<AppState>,
    Path(group): Path<String>,
) -> Result<StatusCode, ApiError> {
    let logs = state.logs()?;
    let name = group.clone();
    if blocking(logs, move |s| s.delete_group(&name)).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!(
            "log group {group:?} does not exist"
        )))
    }
}

/// Most events one `test-pattern` call takes.
pub const MAX_TEST_EVENTS: usize = 1_000;

/// `POST /api/logs/test-pattern` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestPattern {
    /// A filter pattern (SEMANTICS §3.1); `""` matches every event.
    #[schema(max_length = 1024)]
    pub pattern: String,
    /// Sample log lines, at most 1,000.
    #[schema(max_items = 1000)]
    pub events: Vec<String>,
}

/// One event the pattern matched.
#[derive(Debug, Serialize, ToSchema)]
pub struct PatternMatch {
    /// Its index in `events`.
    pub index: usize,
    /// What the pattern extracted: `$name` and `$1`… of a space-delimited
    /// pattern, `$.path` of a JSON one.
    #[schema(value_type = Object)]
    pub extracted: serde_json::Map<String, serde_json::Value>,
}

/// `POST /api/logs/test-pattern` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct TestPatternResult {
    /// Events matched.
    pub matched: usize,
    /// Events tested.
    pub total: usize,
    /// The matched events, in request order.
    pub matches: Vec<PatternMatch>,
}

/// Tests a filter pattern against sample lines, as the console's "Test
/// pattern" button does: which match, and what each extracted.
#[utoipa::path(post, path = "/api/logs/test-pattern", tag = "logs",
    request_body = TestPattern,
    responses((status = 200, body = TestPatternResult),
        (status = 400, description = "the pattern does not parse (the message names the column), \
            or more than 1,000 events", body = crate::error::ErrorBody),
        (status = 415, body = crate::error::ErrorBody)))]
pub async fn test_pattern(
    body: crate::extract::JsonBody,
) -> Result<Json<TestPatternResult>, ApiError> {
    let spec: TestPattern = serde_json::from_slice(&body.0)
        .map_err(|err| ApiError::bad_request(format!("invalid test-pattern body: {err}")))?;
    if spec.events.len() > MAX_TEST_EVENTS {
        return Err(ApiError::bad_request(format!(
            "events: {} given, at most {MAX_TEST_EVENTS} are tested at once",
            spec.events.len()
        )));
    }
    let pattern = vigil_logs::pattern::Pattern::parse(&spec.pattern)
        .map_err(|err| ApiError::bad_request(format!("pattern: {err}")))?;
    let matches: Vec<PatternMatch> = spec
        .events
        .iter()
        .enumerate()
        .filter_map(|(index, event)| {
            pattern.matches(event).map(|m| PatternMatch {
                index,
                extracted: m.extracted().into_iter().collect(),
            })
        })
        .collect();
    Ok(Json(TestPatternResult {
        matched: matches.len(),
        total: spec.events.len(),
        matches,
    }))
}

#[cfg(test)]
mod stream_tests;
#[cfg(test)]
mod tests;
