//! `GET /api/logs/{group}/events`: a group's events in a time range as
//! JSON lines, streamed as the store scan reads them (`vigil logs export`
//! reads it), or the latest `limit` of them (`vigil logs tail`).
//!
//! The scan runs on the blocking pool and hands ~64 KiB chunks to the body
//! through a channel of a few chunks, so a large export holds a few chunks
//! in memory, and a client that stops reading stops the scan.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::ops::ControlFlow;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Serialize;
use vigil_logs::pattern::Pattern;
use vigil_logs::pipeline::Logs;
use vigil_logs::store::LogError;

use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;
use vigil_metrics::service::now_ms;

/// The most events `limit` may ask for.
pub const MAX_LIMIT: usize = 10_000;

/// The media type of the answer: one JSON object per line.
pub const NDJSON: &str = "application/x-ndjson";

/// The header that carries an upper bound of the events in the range.
pub const ESTIMATE_HEADER: &str = "x-vigil-estimated-events";

/// Bytes gathered before a chunk goes to the body.
const CHUNK_BYTES: usize = 64 << 10;
/// Chunks waiting for the client at most.
const CHUNKS_IN_FLIGHT: usize = 4;

/// One event as a line of the answer (and as a live tail's `data`).
#[derive(Debug, Serialize)]
pub struct EventLine<'a> {
    /// When it happened, Unix ms.
    pub timestamp: i64,
    /// When Vigil stored it, Unix ms.
    pub ingestion_time: i64,
    /// The stream it was sent to.
    pub log_stream: &'a str,
    /// The log line.
    pub message: &'a str,
}

impl EventLine<'_> {
    /// The line's JSON, without the newline.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// A time parameter: Unix ms or RFC 3339.
pub(crate) fn time_param(field: &str, text: &str) -> Result<i64, ApiError> {
    match text.parse::<i64>() {
        Ok(ms) => Ok(ms),
        Err(_) => super::query::time_ms(field, &serde_json::Value::String(text.to_owned())),
    }
}

/// A `filter` parameter: a filter pattern; a 400 naming its column.
pub(crate) fn filter_param(text: &str) -> Result<Pattern, ApiError> {
    Pattern::parse(text).map_err(|err| ApiError::bad_request(format!("filter: {err}")))
}

/// A `limit` parameter, 1 to [`MAX_LIMIT`].
pub(crate) fn limit_param(text: &str) -> Result<usize, ApiError> {
    text.parse::<usize>()
        .ok()
        .filter(|n| (1..=MAX_LIMIT).contains(n))
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "limit: expected a whole number from 1 to {MAX_LIMIT}, got {text:?}"
            ))
        })
}

/// The parameters of the events route.
#[derive(Debug)]
struct Params {
    start: i64,
    end: i64,
    filter: Option<Pattern>,
    limit: Option<usize>,
}

const PARAMETERS: &[&str] = &["start", "end", "filter", "limit"];

fn params(pairs: Vec<(String, String)>) -> Result<Params, ApiError> {
    let (mut start, mut end, mut filter, mut limit) = (None, None, None, None);
    for (name, value) in pairs {
        match name.as_str() {
            "start" => start = Some(time_param("start", &value)?),
            "end" => end = Some(time_param("end", &value)?),
            "filter" => filter = Some(filter_param(&value)?),
            "limit" => limit = Some(limit_param(&value)?),
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown parameter {other:?}; expected one of {}",
                    PARAMETERS.join(", ")
                )));
            }
        }
    }
    let end = end.unwrap_or_else(now_ms);
    let start = start.unwrap_or(end.saturating_sub(3_600_000));
    if start >= end {
        return Err(ApiError::bad_request(format!(
            "start ({start}) must be before end ({end})"
        )));
    }
    Ok(Params {
        start,
        end,
        filter,
        limit,
    })
}

/// The 404 of a group that does not exist.
pub(crate) fn no_group(group: &str) -> ApiError {
    ApiError::not_found(format!("log group {group:?} does not exist"))
}

fn read_error(err: &LogError) -> ApiError {
    tracing::error!(error = %err, "log store scan failed");
    ApiError::public(ErrorCode::Unavailable, "the log store cannot read now")
}

/// An owned event kept by [`latest`].
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Kept {
    pub timestamp_ms: i64,
    /// Scan order, so equal timestamps keep it.
    seq: u64,
    pub ingestion_ms: i64,
    pub stream: String,
    pub message: String,
}

impl Kept {
    /// The event's line.
    pub fn line(&self) -> EventLine<'_> {
        EventLine {
            timestamp: self.timestamp_ms,
            ingestion_time: self.ingestion_ms,
            log_stream: &self.stream,
            message: &self.message,
        }
    }
}

/// The latest `n` events of `group` in `from..to` (by timestamp, then
/// stored order) that `filter` matches and that were stored before
/// `stored_before` ms, oldest first; memory for `n` events.
pub(crate) fn latest(
    logs: &Logs,
    group: &str,
    (from, to): (i64, i64),
    filter: Option<&Pattern>,
    n: usize,
    stored_before: i64,
) -> Result<Vec<Kept>, LogError> {
    let mut heap: BinaryHeap<Reverse<Kept>> = BinaryHeap::with_capacity(n + 1);
    let mut seq = 0;
    logs.store().scan(group, from, to, |e| {
        seq += 1;
        if e.ingestion_ms >= stored_before || filter.is_some_and(|p| !p.is_match(e.message)) {
            return ControlFlow::Continue(());
        }
        let better = heap
            .peek()
            .is_none_or(|Reverse(worst)| (e.timestamp_ms, seq) > (worst.timestamp_ms, worst.seq));
        if heap.len() < n || better {
            heap.push(Reverse(Kept {
                timestamp_ms: e.timestamp_ms,
                seq,
                ingestion_ms: e.ingestion_ms,
                stream: e.stream.to_owned(),
                message: e.message.to_owned(),
            }));
            if heap.len() > n {
                heap.pop();
            }
        }
        ControlFlow::Continue(())
    })?;
    let mut kept: Vec<Kept> = heap.into_iter().map(|Reverse(k)| k).collect();
    kept.sort();
    Ok(kept)
}

/// Streams the events of `group` in a range as JSON lines.
fn stream_lines(logs: Arc<Logs>, group: String, p: Params) -> Body {
    let (tx, mut rx) =
        tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(CHUNKS_IN_FLIGHT);
    tokio::task::spawn_blocking(move || {
        let mut chunk = Vec::with_capacity(CHUNK_BYTES + 1024);
        let mut gone = false;
        let scanned = logs.store().scan(&group, p.start, p.end, |e| {
            if p.filter.as_ref().is_some_and(|f| !f.is_match(e.message)) {
                return ControlFlow::Continue(());
            }
            let line = EventLine {
                timestamp: e.timestamp_ms,
                ingestion_time: e.ingestion_ms,
                log_stream: e.stream,
                message: e.message,
            };
            if serde_json::to_writer(&mut chunk, &line).is_err() {
                return ControlFlow::Continue(());
            }
            chunk.push(b'\n');
            if chunk.len() >= CHUNK_BYTES {
                let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK_BYTES + 1024));
                if tx.blocking_send(Ok(Bytes::from(full))).is_err() {
                    // The client went away: stop reading.
                    gone = true;
                    return ControlFlow::Break(());
                }
            }
            ControlFlow::Continue(())
        });
        if gone {
            return;
        }
        match scanned {
            Ok(_) => {
                if !chunk.is_empty() {
                    let _ = tx.blocking_send(Ok(Bytes::from(chunk)));
                }
            }
            Err(err) => {
                // Headers are sent: cutting the body short is how the
                // client learns the export is incomplete.
                tracing::error!(error = %err, group = %group, "log store scan failed mid-stream");
                let _ =
                    tx.blocking_send(Err(std::io::Error::other("the log store cannot read now")));
            }
        }
    });
    Body::from_stream(futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)))
}

/// A group's events in a time range, one JSON object per line:
/// `{"timestamp", "ingestion_time", "log_stream", "message"}`. Without
/// `limit`, every event in stored order, streamed as the store reads them;
/// with `limit`, the latest `limit` events by timestamp, oldest first.
#[utoipa::path(get, path = "/api/logs/{group}/events", tag = "logs",
    params(("group" = String, Path, description = "a `/` is written `%2F`"),
        ("start" = Option<String>, Query, description = "start of the range (inclusive): Unix ms or RFC 3339; default one hour before `end`"),
        ("end" = Option<String>, Query, description = "end of the range (exclusive): Unix ms or RFC 3339; default now"),
        ("filter" = Option<String>, Query, max_length = 1024, description = "only the events this filter pattern matches (SEMANTICS §3.1)"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 10000, description = "only the latest `limit` events, oldest first")),
    responses((status = 200, description = "JSON lines; a body cut short means the store failed mid-stream",
            content_type = "application/x-ndjson", body = String,
            headers(("x-vigil-estimated-events" = u64, description = "at most this many events lie in the range (the events of the segments it overlaps)"))),
        (status = 400, description = "a bad time, limit or filter pattern (the message names the column), or an unknown parameter", body = crate::error::ErrorBody),
        (status = 404, description = "no such group", body = crate::error::ErrorBody),
        (status = 503, description = "logs are off, or the store cannot read", body = crate::error::ErrorBody)))]
pub async fn events(
    State(state): State<AppState>,
    Path(group): Path<String>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let logs = Arc::clone(state.logs()?);
    let p = params(pairs)?;
    if !logs.store().has_group(&group) {
        return Err(no_group(&group));
    }
    if let Some(n) = p.limit {
        let body = tokio::task::spawn_blocking(move || {
            let kept = latest(
                &logs,
                &group,
                (p.start, p.end),
                p.filter.as_ref(),
                n,
                i64::MAX,
            )?;
            let mut body = Vec::new();
            for k in &kept {
                body.extend_from_slice(k.line().to_json().as_bytes());
                body.push(b'\n');
            }
            Ok::<_, LogError>((kept.len(), body))
        })
        .await
        .map_err(|err| ApiError::internal(format!("log read task failed: {err}")))?
        .map_err(|err| match err {
            LogError::NoGroup(name) => no_group(&name),
            other => read_error(&other),
        })?;
        let mut response = (StatusCode::OK, body.1).into_response();
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(NDJSON));
        headers.insert(ESTIMATE_HEADER, HeaderValue::from(body.0));
        return Ok(response);
    }
    let estimate = logs
        .store()
        .estimate_events(&group, p.start, p.end)
        .map_err(|err| match err {
            LogError::NoGroup(name) => no_group(&name),
            other => read_error(&other),
        })?;
    let mut response = Response::new(stream_lines(logs, group, p));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(NDJSON));
    headers.insert(ESTIMATE_HEADER, HeaderValue::from(estimate));
    Ok(response)
}
