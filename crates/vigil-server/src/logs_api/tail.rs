//! `GET /api/logs/{group}/tail`: a live tail as server-sent events — each
//! event stored in the group from now on (optionally only those a filter
//! pattern matches), after an optional replay of the latest stored ones.
//!
//! The stream reads its own subscription to the group's [`Tail`]
//! channel: ingestion never waits for it. A subscriber that falls behind
//! gets a `dropped` event saying how many events it lost. The stream ends
//! when the group is deleted or the server shuts down.
//!
//! [`Tail`]: vigil_logs::tail::Tail

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::IntoResponse;
use axum::response::Response;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::{self, Stream, StreamExt};
use vigil_logs::pattern::Pattern;
use vigil_logs::store::LogError;
use vigil_logs::tail::{Subscription, TailError};

use super::events::{EventLine, filter_param, latest, limit_param, no_group, time_param};
use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;
use vigil_metrics::service::now_ms;

/// Events replayed by default when `start` is given.
pub const DEFAULT_REPLAY: usize = 100;

const PARAMETERS: &[&str] = &["filter", "start", "limit"];

#[derive(Debug, Default)]
struct Params {
    filter: Option<Arc<Pattern>>,
    start: Option<i64>,
    limit: Option<usize>,
}

fn params(pairs: Vec<(String, String)>) -> Result<Params, ApiError> {
    let mut p = Params::default();
    for (name, value) in pairs {
        match name.as_str() {
            "filter" => p.filter = Some(Arc::new(filter_param(&value)?)),
            "start" => p.start = Some(time_param("start", &value)?),
            "limit" => p.limit = Some(limit_param(&value)?),
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown parameter {other:?}; expected one of {}",
                    PARAMETERS.join(", ")
                )));
            }
        }
    }
    if p.limit.is_some() && p.start.is_none() {
        return Err(ApiError::bad_request(
            "limit: only with start (the replay it bounds)",
        ));
    }
    Ok(p)
}

fn tail_error(err: &TailError) -> ApiError {
    ApiError::public(ErrorCode::Unavailable, err.to_string())
}

/// What the live part of the stream keeps between polls.
struct Live {
    sub: Subscription,
    filter: Option<Arc<Pattern>>,
    pending: VecDeque<Event>,
}

fn data(line: &EventLine<'_>) -> Event {
    Event::default().data(line.to_json())
}

/// The live events: each batch becomes its events' SSE events (after a
/// `dropped` event when some were lost).
fn live(sub: Subscription, filter: Option<Arc<Pattern>>) -> impl Stream<Item = Event> + Send {
    let state = Live {
        sub,
        filter,
        pending: VecDeque::new(),
    };
    stream::unfold(state, |mut s| async move {
        loop {
            if let Some(event) = s.pending.pop_front() {
                return Some((event, s));
            }
            let received = s.sub.recv().await?;
            if received.dropped > 0 {
                s.pending.push_back(
                    Event::default()
                        .event("dropped")
                        .data(format!(r#"{{"dropped":{}}}"#, received.dropped)),
                );
            }
            let batch = &received.batch;
            for e in &batch.events {
                if s.filter.as_ref().is_some_and(|f| !f.is_match(&e.message)) {
                    continue;
                }
                s.pending.push_back(data(&EventLine {
                    timestamp: e.timestamp_ms,
                    ingestion_time: batch.ingestion_ms,
                    log_stream: &batch.stream,
                    message: &e.message,
                }));
            }
        }
    })
}

/// Follows a group live, as server-sent events: each `data` is
/// `{"timestamp", "ingestion_time", "log_stream", "message"}`; a
/// `dropped` event (`{"dropped": n}`) says `n` events were lost because
/// this client read too slowly; comments keep the connection alive. With
/// `start`, the latest `limit` (default 100) stored events since `start`
/// come first. At most 100 tails are open at once.
#[utoipa::path(get, path = "/api/logs/{group}/tail", tag = "logs",
    params(("group" = String, Path, description = "a `/` is written `%2F`"),
        ("filter" = Option<String>, Query, max_length = 1024, description = "only the events this filter pattern matches (SEMANTICS §3.1)"),
        ("start" = Option<String>, Query, description = "first replay the stored events since this time (Unix ms or RFC 3339)"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 10000, description = "with `start`: replay at most the latest `limit` events (default 100)")),
    responses((status = 200, description = "server-sent events until the group is deleted or the server stops",
            content_type = "text/event-stream", body = String),
        (status = 400, description = "a bad filter pattern (the message names the column), time or limit, or an unknown parameter", body = crate::error::ErrorBody),
        (status = 404, description = "no such group", body = crate::error::ErrorBody),
        (status = 503, description = "logs are off, too many tails are open, or the server is shutting down", body = crate::error::ErrorBody)))]
pub async fn tail(
    State(state): State<AppState>,
    Path(group): Path<String>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let logs = Arc::clone(state.logs()?);
    let p = params(pairs)?;
    if !logs.store().has_group(&group) {
        return Err(no_group(&group));
    }
    let tail = logs
        .tail()
        .ok_or_else(|| ApiError::public(ErrorCode::Unavailable, "live tail is not available"))?;
    // Subscribe first, then replay what was stored before: nothing falls
    // in between (an event stored in the same millisecond may come twice).
    let sub = tail.subscribe(&group).map_err(|err| tail_error(&err))?;
    let subscribed_ms = now_ms() + 1;
    let replay: Vec<Event> = match p.start {
        None => Vec::new(),
        Some(start) => {
            let (filter, n) = (p.filter.clone(), p.limit.unwrap_or(DEFAULT_REPLAY));
            let logs = Arc::clone(&logs);
            let group = group.clone();
            let kept = tokio::task::spawn_blocking(move || {
                latest(
                    &logs,
                    &group,
                    (start, i64::MAX / 1000),
                    filter.as_deref(),
                    n,
                    subscribed_ms,
                )
            })
            .await
            .map_err(|err| ApiError::internal(format!("log read task failed: {err}")))?
            .map_err(|err| match err {
                LogError::NoGroup(name) => no_group(&name),
                other => {
                    tracing::error!(error = %other, "log store scan failed");
                    ApiError::public(ErrorCode::Unavailable, "the log store cannot read now")
                }
            })?;
            kept.iter().map(|k| data(&k.line())).collect()
        }
    };
    let events = stream::iter(replay)
        .chain(live(sub, p.filter))
        .map(Ok::<_, Infallible>);
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response())
}
