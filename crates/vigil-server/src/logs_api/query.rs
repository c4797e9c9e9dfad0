//! `POST /api/logs/query`: the Insights-style query language (SEMANTICS §4)
//! over the stored events of one or more groups in a time range.

use std::ops::ControlFlow;
use std::time::Instant;

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use vigil_logs::query::{Event, Flow, Query, QueryLimits};

use crate::error::ApiError;
use crate::state::AppState;
use crate::telemetry::now_ms;

/// The most rows in one page of an answer.
pub const MAX_PAGE_ROWS: usize = 10_000;

/// `POST /api/logs/query` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QueryRequest {
    /// The groups to read, e.g. `["/vigil/access"]`.
    #[schema(min_items = 1, max_items = 50)]
    pub groups: Vec<String>,
    /// Start of the range (inclusive): Unix ms or RFC 3339; default one hour
    /// before `end`.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub start: Option<serde_json::Value>,
    /// End of the range (exclusive): Unix ms or RFC 3339; default now.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub end: Option<serde_json::Value>,
    /// The query, e.g. `filter status >= 500 | stats count(*) by bin(1m)`.
    #[schema(max_length = 10000)]
    pub query: String,
    /// Rows per page (at most 10,000, the default).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 10000)]
    pub page_size: Option<usize>,
    /// `next_cursor` of the previous page (the same request otherwise).
    #[serde(default)]
    pub cursor: Option<String>,
}

/// `POST /api/logs/query` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct QueryAnswer {
    /// The output columns, in order.
    pub columns: Vec<String>,
    /// One page of rows; values keep their JSON types.
    #[schema(value_type = Vec<Object>)]
    pub rows: Vec<serde_json::Map<String, serde_json::Value>>,
    /// Events read.
    pub scanned: u64,
    /// Events that passed the query's filters.
    pub matched: u64,
    /// Milliseconds the query took.
    pub took_ms: u64,
    /// Pass it back as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
    /// Set when the scan stopped at `logs.max_scan_events`: the counts and
    /// rows are partial.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

/// A time as Unix ms or RFC 3339.
fn time_ms(field: &str, value: &serde_json::Value) -> Result<i64, ApiError> {
    match value {
        serde_json::Value::Number(n) => n.as_i64().ok_or_else(|| {
            ApiError::bad_request(format!("{field}: {n} is not a whole number of Unix ms"))
        }),
        serde_json::Value::String(s) => {
            time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                .map(|t| i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX))
                .map_err(|err| {
                    ApiError::bad_request(format!("{field}: {s:?} is not RFC 3339 ({err})"))
                })
        }
        other => Err(ApiError::bad_request(format!(
            "{field}: expected Unix ms or an RFC 3339 time, got {other}"
        ))),
    }
}

/// Runs a query over the events of `groups` between `start` and `end`;
/// errors point at the query's column. Results come a page at a time.
#[utoipa::path(post, path = "/api/logs/query", tag = "logs",
    request_body = QueryRequest,
    responses((status = 200, description = "a page of rows; `warning` when the scan limit cut it short", body = QueryAnswer),
        (status = 400, description = "the query does not parse (the message names the column), a bad time, \
            or a group that does not exist", body = crate::error::ErrorBody),
        (status = 415, body = crate::error::ErrorBody),
        (status = 503, description = "logs are off, or the store cannot read", body = crate::error::ErrorBody)))]
pub async fn query(
    State(state): State<AppState>,
    body: crate::extract::JsonBody,
) -> Result<Json<QueryAnswer>, ApiError> {
    let logs = std::sync::Arc::clone(state.logs()?);
    let max_scanned = state.max_log_scan_events();
    let request: QueryRequest = serde_json::from_slice(&body.0)
        .map_err(|err| ApiError::bad_request(format!("invalid log query body: {err}")))?;
    let query = Query::parse(&request.query)
        .map_err(|err| ApiError::bad_request(format!("query: {err}")))?;
    let end = match &request.end {
        Some(v) => time_ms("end", v)?,
        None => now_ms(),
    };
    let start = match &request.start {
        Some(v) => time_ms("start", v)?,
        None => end.saturating_sub(3_600_000),
    };
    if start >= end {
        return Err(ApiError::bad_request(format!(
            "start ({start}) must be before end ({end})"
        )));
    }
    let page_size = request.page_size.unwrap_or(MAX_PAGE_ROWS);
    if page_size == 0 || page_size > MAX_PAGE_ROWS {
        return Err(ApiError::bad_request(format!(
            "page_size: must be 1 to {MAX_PAGE_ROWS}"
        )));
    }
    let offset = match &request.cursor {
        None => 0,
        Some(c) => c
            .parse::<usize>()
            .map_err(|_| ApiError::bad_request("cursor: not one this server returned"))?,
    };
    if request.groups.is_empty() {
        return Err(ApiError::bad_request("groups: name at least one log group"));
    }
    let started = Instant::now();
    let groups = request.groups;
    let output = tokio::task::spawn_blocking(move || -> Result<_, ApiError> {
        let limits = QueryLimits {
            max_scanned: Some(max_scanned),
            ..QueryLimits::default()
        };
        let mut exec = query
            .executor(limits)
            .map_err(|err| ApiError::bad_request(format!("query: {err}")))?;
        let mut failed = None;
        for group in &groups {
            let mut stop = false;
            logs.store()
                .scan(group, start, end, |e| {
                    let event = Event {
                        timestamp_ms: e.timestamp_ms,
                        ingestion_ms: e.ingestion_ms,
                        group,
                        stream: e.stream,
                        message: e.message,
                    };
                    match exec.push(event) {
                        Ok(Flow::Continue) => ControlFlow::Continue(()),
                        Ok(Flow::Stop) => {
                            stop = true;
                            ControlFlow::Break(())
                        }
                        Err(err) => {
                            failed = Some(err);
                            ControlFlow::Break(())
                        }
                    }
                })
                .map_err(|err| match err {
                    vigil_logs::store::LogError::NoGroup(name) => {
                        ApiError::bad_request(format!("groups: log group {name:?} does not exist"))
                    }
                    other => {
                        tracing::error!(error = %other, "log store scan failed");
                        ApiError::public(
                            crate::error::ErrorCode::Unavailable,
                            "the log store cannot read now",
                        )
                    }
                })?;
            if let Some(err) = failed.take() {
                return Err(ApiError::bad_request(format!("query: {err}")));
            }
            if stop {
                break;
            }
        }
        exec.finish()
            .map_err(|err| ApiError::bad_request(format!("query: {err}")))
    })
    .await
    .map_err(|err| ApiError::internal(format!("log query task failed: {err}")))??;
    let total = output.rows.len();
    let rows: Vec<_> = output
        .rows
        .into_iter()
        .skip(offset)
        .take(page_size)
        .collect();
    let next = offset + rows.len();
    Ok(Json(QueryAnswer {
        columns: output.columns,
        rows,
        scanned: output.scanned,
        matched: output.matched,
        took_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        next_cursor: (next < total).then(|| next.to_string()),
        warning: output.scan_limit_reached.then(|| {
            format!(
                "the scan stopped after {max_scanned} events (logs.max_scan_events): the rows and counts are partial; narrow the time range or the groups"
            )
        }),
    }))
}
