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
use vigil_metrics::service::now_ms;

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
    /// Context lines, 0–100: each row of a query without `stats` gets
    /// `"@context": {"before": [...], "after": [...]}` with up to this many
    /// events of its stream stored just before and after it, in the
    /// queried range (`{"@timestamp", "@message"}` each). Pages then hold
    /// at most 1,000 rows (the default page size with context).
    #[serde(default)]
    #[schema(minimum = 0, maximum = 100)]
    pub context: Option<usize>,
}

/// The most rows in one page of an answer with context lines.
pub const MAX_CONTEXT_PAGE_ROWS: usize = 1_000;

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
pub(crate) fn time_ms(field: &str, value: &serde_json::Value) -> Result<i64, ApiError> {
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
    let context = request.context.unwrap_or(0);
    if context > vigil_logs::context::MAX_CONTEXT {
        return Err(ApiError::bad_request(format!(
            "context: must be 0 to {}, got {context}",
            vigil_logs::context::MAX_CONTEXT
        )));
    }
    if context > 0 && query.is_stats() {
        return Err(ApiError::bad_request(
            "context: a stats result has no events to show context lines around; drop `context` or `stats`",
        ));
    }
    let max_page = if context > 0 {
        MAX_CONTEXT_PAGE_ROWS
    } else {
        MAX_PAGE_ROWS
    };
    let page_size = request.page_size.unwrap_or(max_page);
    if page_size == 0 || page_size > max_page {
        return Err(ApiError::bad_request(if context > 0 {
            format!("page_size: must be 1 to {max_page} with context lines")
        } else {
            format!("page_size: must be 1 to {max_page}")
        }));
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
    let store = std::sync::Arc::clone(logs.store());
    let (output, sources) = tokio::task::spawn_blocking(move || -> Result<_, ApiError> {
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
        if context > 0 {
            exec.finish_with_sources()
        } else {
            exec.finish().map(|out| (out, Vec::new()))
        }
        .map_err(|err| ApiError::bad_request(format!("query: {err}")))
    })
    .await
    .map_err(|err| ApiError::internal(format!("log query task failed: {err}")))??;
    let total = output.rows.len();
    let mut rows: Vec<_> = output
        .rows
        .into_iter()
        .skip(offset)
        .take(page_size)
        .collect();
    let next = offset + rows.len();
    if context > 0 {
        let page: Vec<_> = sources.into_iter().skip(offset).take(rows.len()).collect();
        let contexts = tokio::task::spawn_blocking(move || {
            contexts(&store, &page, (start, end), context, max_scanned)
        })
        .await
        .map_err(|err| ApiError::internal(format!("log context task failed: {err}")))??;
        for (row, c) in rows.iter_mut().zip(contexts) {
            row.insert("@context".to_owned(), c.unwrap_or_default().to_json());
        }
    }
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

/// The context of each row's source event: one scan per group that holds
/// one, each stopping once its rows are complete, at most `max_scanned`
/// events in all.
fn contexts(
    store: &vigil_logs::store::LogStore,
    sources: &[Option<vigil_logs::query::LogEvent>],
    (start, end): (i64, i64),
    n: usize,
    max_scanned: u64,
) -> Result<Vec<Option<vigil_logs::context::EventContext>>, ApiError> {
    let mut out = vec![None; sources.len()];
    let mut groups: Vec<&str> = sources.iter().flatten().map(|e| e.group.as_str()).collect();
    groups.sort_unstable();
    groups.dedup();
    for group in groups {
        let (rows, targets): (Vec<usize>, Vec<vigil_logs::query::LogEvent>) = sources
            .iter()
            .enumerate()
            .filter_map(|(i, e)| {
                e.as_ref()
                    .filter(|e| e.group == group)
                    .map(|e| (i, e.clone()))
            })
            .unzip();
        let found = vigil_logs::context::find(store, group, start, end, &targets, n, max_scanned)
            .map_err(|err| match err {
                // Deleted since the query ran: its rows get no context.
                vigil_logs::store::LogError::NoGroup(_) => None,
                other => Some(other),
            });
        let found = match found {
            Ok(found) => found,
            Err(None) => continue,
            Err(Some(err)) => {
                tracing::error!(error = %err, "log store scan failed");
                return Err(ApiError::public(
                    crate::error::ErrorCode::Unavailable,
                    "the log store cannot read now",
                ));
            }
        };
        for (i, c) in rows.into_iter().zip(found) {
            out[i] = c;
        }
    }
    Ok(out)
}
