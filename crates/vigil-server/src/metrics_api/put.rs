//! `POST /api/metrics/{namespace}`: custom metrics (PutMetricData in JSON).
//! Valid data are stored durably before the answer; each rejected datum is
//! listed with its index and reason; `400` only when nothing was valid.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use serde::Serialize;
use utoipa::ToSchema;
use vigil_metrics::datum::{PutError, parse_put};
use vigil_metrics::tsdb::Record;

use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;
use crate::telemetry::now_ms;

/// Largest request body, compressed or not (SEMANTICS.md §1.1).
pub const MAX_PUT_BYTES: usize = 1_048_576;

/// One datum the server refused.
#[derive(Debug, Serialize, ToSchema)]
pub struct RejectedDatum {
    /// Its position in `metrics`.
    pub index: usize,
    /// The offending field, e.g. `metrics[3].dimensions.host`.
    pub field: String,
    /// What was expected and what came.
    pub reason: String,
}

/// `POST /api/metrics/{namespace}` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct PutResult {
    /// Data stored (durably: they survive `kill -9`).
    pub accepted: usize,
    /// Data refused, in request order.
    pub rejected: Vec<RejectedDatum>,
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::bad_request(message)
}

/// Stores custom metrics (PutMetricData): up to 1,000 data and 1 MB per
/// request, `Content-Encoding: gzip` accepted.
#[utoipa::path(post, path = "/api/metrics/{namespace}", tag = "metrics",
    params(("namespace" = String, Path, description = "1–255 characters, not starting with `:`; \
        a `/` in it is written `%2F`")),
    request_body(content = Object, description = "`{\"metrics\": [{\"name\": \"LatencyMs\", \"dimensions\": {\"model\": \"fraud\"}, \
        \"unit\": \"Milliseconds\", \"timestamp\": 1764547200000, \"value\": 12.5 | \"values\": [..], \"counts\": [..] | \
        \"stats\": {\"count\", \"sum\", \"min\", \"max\"}, \"resolution\": 1 | 60}]}`; timestamps in Unix ms or RFC 3339, \
        14 days back to 2 h ahead"),
    responses((status = 200, description = "the valid data are stored; the others are listed", body = PutResult),
        (status = 400, description = "nothing was valid, or the body is not a metrics request", body = crate::error::ErrorBody),
        (status = 413, body = crate::error::ErrorBody), (status = 415, body = crate::error::ErrorBody),
        (status = 503, description = "metrics are off, or the store cannot write", body = crate::error::ErrorBody)))]
pub async fn put(
    State(state): State<AppState>,
    Path(namespace): Path<String>,
    headers: HeaderMap,
    body: crate::extract::JsonBody,
) -> Result<Json<PutResult>, ApiError> {
    let service = state.metric_service()?;
    if body.0.len() > MAX_PUT_BYTES {
        return Err(ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("request body is larger than {MAX_PUT_BYTES} bytes"),
        ));
    }
    let json = crate::extract::inflated(&headers, &body.0, MAX_PUT_BYTES)?;
    let batch = parse_put(&namespace, &json, now_ms()).map_err(|err| match err {
        PutError::NothingValid(rejected) => bad(format!(
            "no metric was valid: {}",
            rejected
                .iter()
                .map(|r| format!("metrics[{}]: {}: {}", r.index, r.field, r.reason))
                .collect::<Vec<_>>()
                .join("; ")
        )),
        other => bad(other.to_string()),
    })?;
    let records: Vec<Record> = batch
        .accepted
        .into_iter()
        .map(|d| Record {
            key: d.key,
            timestamp_ms: d.timestamp_ms,
            aggregate: d.aggregate,
            resolution: d.resolution,
        })
        .collect();
    let accepted = records.len();
    let service = std::sync::Arc::clone(service);
    tokio::task::spawn_blocking(move || service.put(&records))
        .await
        .map_err(|err| ApiError::internal(format!("metric store task failed: {err}")))?
        .map_err(|err| {
            tracing::error!(error = %err, "metric store write failed");
            ApiError::public(ErrorCode::Unavailable, "the metric store cannot write now")
        })?;
    Ok(Json(PutResult {
        accepted,
        rejected: batch
            .rejected
            .into_iter()
            .map(|r| RejectedDatum {
                index: r.index,
                field: r.field,
                reason: r.reason,
            })
            .collect(),
    }))
}
