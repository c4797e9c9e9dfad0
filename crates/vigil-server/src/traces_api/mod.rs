//! The trace API (SEMANTICS.md §6, X-Ray's semantics): search stored
//! traces with the filter-expression language, read one trace's spans,
//! the service map over a window, and the sampling rules, changed without
//! a restart; and the OTLP/HTTP receiver (`POST /v1/traces`, [`otlp`]).

pub mod otlp;
pub mod rules;

use axum::Json;
use axum::extract::{Path, Query, State};
use serde::Serialize;
use utoipa::ToSchema;
use vigil_metrics::service::now_ms;
use vigil_trace::filter::Filter;
use vigil_trace::model::{Span, TraceId, TraceSummary};
use vigil_trace::service_map::ServiceGraph;
use vigil_trace::store::Cursor;

use crate::error::ApiError;
use crate::logs_api::events::time_param;
use crate::state::AppState;

/// A search returns at most this many traces per page.
pub const MAX_LIMIT: usize = 1000;
/// The page size when `limit` is not given.
pub const DEFAULT_LIMIT: usize = 50;
/// A window without `start` reaches back this far from `end`.
const DEFAULT_WINDOW_MS: i64 = 3_600_000;
/// The longest filter expression taken.
const MAX_FILTER_LEN: usize = 2048;

/// One page of a trace search.
#[derive(Debug, Serialize, ToSchema)]
pub struct TraceList {
    /// The matching traces, newest first: each with its root span's name,
    /// HTTP block and duration, the flags, services and annotations of any
    /// of its spans.
    #[schema(value_type = Vec<Object>)]
    pub traces: Vec<TraceSummary>,
    /// Pass as `cursor` for the next page; `null` when there is none.
    pub next_cursor: Option<String>,
}

/// One trace's spans.
#[derive(Debug, Serialize, ToSchema)]
pub struct TraceDoc {
    /// The trace id, 32 hex digits.
    pub trace_id: String,
    /// Its spans, sorted by start.
    #[schema(value_type = Vec<Object>)]
    pub spans: Vec<Span>,
}

/// A time window from `start` / `end` (Unix ms or RFC 3339; default the
/// hour before now), checked.
fn window(start: Option<&str>, end: Option<&str>) -> Result<(i64, i64), ApiError> {
    let end = end
        .map(|v| time_param("end", v))
        .transpose()?
        .unwrap_or_else(now_ms);
    let start = start
        .map(|v| time_param("start", v))
        .transpose()?
        .unwrap_or(end - DEFAULT_WINDOW_MS);
    if start >= end {
        return Err(ApiError::bad_request(format!(
            "start ({start}) must be before end ({end})"
        )));
    }
    Ok((start, end))
}

/// Takes the named parameters from `pairs`; an unknown one is a 400 that
/// lists the known.
fn take<'a, const N: usize>(
    pairs: &'a [(String, String)],
    names: [&str; N],
) -> Result<[Option<&'a str>; N], ApiError> {
    let mut found = [None; N];
    for (name, value) in pairs {
        let Some(i) = names.iter().position(|n| n == name) else {
            return Err(ApiError::bad_request(format!(
                "unknown parameter {name:?}; expected one of {}",
                names.join(", ")
            )));
        };
        found[i] = Some(value.as_str());
    }
    Ok(found)
}

/// Searches the stored traces: those that started in the window and
/// match `filter` (X-Ray's filter expressions: `service("vigil")`,
/// `responsetime > 0.05`, `duration >= 1`, `http.status = 500`,
/// `http.url CONTAINS "/v1"`, `fault`, `error`, `throttle`,
/// `annotation.model = "fraud"`, `AND`/`OR`/`NOT`, parentheses), newest
/// first, a page at a time.
#[utoipa::path(get, path = "/api/traces", tag = "traces",
    params(("filter" = Option<String>, Query, max_length = 2048, description = "a filter expression; empty matches every trace"),
        ("start" = Option<String>, Query, description = "start of the window (inclusive): Unix ms or RFC 3339; default one hour before `end`"),
        ("end" = Option<String>, Query, description = "end of the window (exclusive): Unix ms or RFC 3339; default now"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "traces per page (default 50)"),
        ("cursor" = Option<String>, Query, description = "the `next_cursor` of the previous page")),
    responses((status = 200, body = TraceList),
        (status = 400, description = "a bad filter expression (the message names the column), time, limit or cursor, or an unknown parameter", body = crate::error::ErrorBody),
        (status = 503, description = "traces are off, or the store cannot read", body = crate::error::ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Json<TraceList>, ApiError> {
    let traces = std::sync::Arc::clone(state.traces()?);
    let [filter, start, end, limit, cursor] =
        take(&pairs, ["filter", "start", "end", "limit", "cursor"])?;
    let filter_text = filter.unwrap_or("");
    if filter_text.chars().count() > MAX_FILTER_LEN {
        return Err(ApiError::bad_request(format!(
            "filter: at most {MAX_FILTER_LEN} characters"
        )));
    }
    let filter = Filter::parse(filter_text)
        .map_err(|err| ApiError::bad_request(format!("filter: {err}")))?;
    let (start, end) = window(start, end)?;
    let limit = match limit {
        None => DEFAULT_LIMIT,
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "limit: expected a whole number from 1 to {MAX_LIMIT}, got {text:?}"
                ))
            })?,
    };
    let cursor = cursor
        .map(|text| text.parse::<Cursor>())
        .transpose()
        .map_err(|err| ApiError::bad_request(err.to_string()))?;
    let page = tokio::task::spawn_blocking(move || {
        traces.store.search(
            start.saturating_mul(1000),
            end.saturating_mul(1000),
            |summary| filter.matches(summary),
            limit,
            cursor,
        )
    })
    .await
    .map_err(|err| ApiError::internal(format!("trace search task: {err}")))?
    .map_err(store_error)?;
    Ok(Json(TraceList {
        traces: page.summaries,
        next_cursor: page.next.map(|c| c.to_string()),
    }))
}

/// One trace's spans, sorted by start: a root `vigil` span per request
/// with a child per stage (`gateway`, `parse`, `idempotency`, `cache`,
/// `score`, `inference_log`) and `remote` children for Redis and
/// PostgreSQL, plus any spans of other services received over OTLP.
#[utoipa::path(get, path = "/api/traces/{id}", tag = "traces",
    params(("id" = String, Path, description = "the trace id: 32 hex digits, or X-Ray's `1-5759e988-bd862e3fe1be46a994272793`")),
    responses((status = 200, body = TraceDoc),
        (status = 400, description = "not a trace id", body = crate::error::ErrorBody),
        (status = 404, description = "no spans of that trace are stored", body = crate::error::ErrorBody),
        (status = 503, description = "traces are off, or the store cannot read", body = crate::error::ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<TraceDoc>, ApiError> {
    let traces = std::sync::Arc::clone(state.traces()?);
    let trace_id = parse_trace_id(&id)?;
    let spans = tokio::task::spawn_blocking(move || traces.store.get(trace_id))
        .await
        .map_err(|err| ApiError::internal(format!("trace read task: {err}")))?
        .map_err(store_error)?;
    if spans.is_empty() {
        return Err(ApiError::not_found(format!(
            "no trace {trace_id} is stored"
        )));
    }
    Ok(Json(TraceDoc {
        trace_id: trace_id.to_string(),
        spans,
    }))
}

/// The service map over a window: nodes (`client`, the services, Vigil's
/// stages, remote calls such as Redis and PostgreSQL) and edges (caller →
/// callee), each with ok, error, throttle and fault counts, the total,
/// the total response time and a response-time histogram; `rebuilding`
/// while the figures stored before start are still being read back.
#[utoipa::path(get, path = "/api/service-map", tag = "traces",
    params(("start" = Option<String>, Query, description = "start of the window: Unix ms or RFC 3339; default one hour before `end`"),
        ("end" = Option<String>, Query, description = "end of the window: Unix ms or RFC 3339; default now")),
    responses((status = 200, description = "the graph", body = Object),
        (status = 400, description = "a bad time, or an unknown parameter", body = crate::error::ErrorBody),
        (status = 503, description = "traces are off", body = crate::error::ErrorBody)))]
pub async fn service_map(
    State(state): State<AppState>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Json<ServiceMapView>, ApiError> {
    let traces = state.traces()?;
    let [start, end] = take(&pairs, ["start", "end"])?;
    let (start, end) = window(start, end)?;
    Ok(Json(ServiceMapView {
        graph: traces.map.map(start, end),
        rebuilding: traces.rebuild.report().is_none(),
    }))
}

/// The service map as served: the graph, and whether the figures of the
/// spans stored before start are still being read back (until then, the
/// minutes before start are missing from it).
#[derive(Debug, Serialize)]
pub struct ServiceMapView {
    /// Nodes and edges.
    #[serde(flatten)]
    pub graph: ServiceGraph,
    /// `true` while the map is being rebuilt from the stored spans.
    pub rebuilding: bool,
}

/// A trace id in either form; a 400 saying what is wrong otherwise.
fn parse_trace_id(text: &str) -> Result<TraceId, ApiError> {
    let parsed = if text.starts_with("1-") {
        TraceId::from_xray(text)
    } else {
        TraceId::from_hex(text)
    };
    parsed.map_err(|err| ApiError::bad_request(format!("trace id {text:?}: {err}")))
}

fn store_error(err: vigil_trace::store::StoreError) -> ApiError {
    match err {
        vigil_trace::store::StoreError::BadCursor(message) => {
            ApiError::bad_request(format!("cursor: {message}"))
        }
        other => ApiError::public(
            crate::error::ErrorCode::Unavailable,
            format!("the trace store cannot read: {other}"),
        ),
    }
}

#[cfg(test)]
mod otlp_tests;
#[cfg(test)]
mod tests;
