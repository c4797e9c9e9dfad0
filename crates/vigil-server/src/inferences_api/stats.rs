//! `GET /api/store/stats`: the inference log's counters (records written,
//! spilled, replayed from the spill, dropped, conflicts, errors, write
//! latency) and whether it is degraded (writing to the spill queue).

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;
use vigil_store::metric_names as m;
use vigil_store::stats::WRITE_LATENCY_BUCKETS_US;

use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::state::AppState;

/// One counter.
#[derive(Debug, Serialize, ToSchema)]
pub struct StoreCounter {
    /// Metric name, e.g. `vigil_store_records_written_total`.
    pub name: &'static str,
    /// Its value since start-up.
    pub value: u64,
}

/// One write-latency bucket (not cumulative).
#[derive(Debug, Serialize, ToSchema)]
pub struct LatencyBucket {
    /// Upper bound in microseconds; absent for the overflow bucket.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub le_us: Option<u64>,
    /// Appends whose latency fell in this bucket.
    pub count: u64,
}

/// `GET /api/store/stats` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct StoreStatsBody {
    /// `sqlite` or `postgres`.
    pub backend: &'static str,
    /// True while records go to the spill queue (the backend is failing).
    pub degraded: bool,
    /// Bytes waiting in the spill queue.
    pub spill_bytes: u64,
    /// The counters.
    pub counters: Vec<StoreCounter>,
    /// Write latency (append call to durable answer) by bucket.
    pub write_latency: Vec<LatencyBucket>,
}

/// The inference log's counters.
#[utoipa::path(get, path = "/api/store/stats", tag = "inferences",
    responses((status = 200, body = StoreStatsBody),
        (status = 503, description = "the inference log is off", body = ErrorBody)))]
pub async fn store_stats(State(state): State<AppState>) -> Result<Json<StoreStatsBody>, ApiError> {
    let (store, backend) = state
        .log
        .as_ref()
        .and_then(|log| log.store())
        .ok_or_else(|| {
            ApiError::public(
                ErrorCode::Unavailable,
                "the inference log is off (store.enabled = false)",
            )
        })?;
    let s = store.stats_snapshot();
    let counters = [
        (m::RECORDS_WRITTEN, s.records_written),
        (m::RECORDS_REPLAYED_IDEMPOTENT, s.idempotent_replays),
        (m::RECORDS_SPILLED, s.records_spilled),
        (m::RECORDS_UNSPILLED, s.records_unspilled),
        (m::RECORDS_DROPPED, s.records_dropped),
        (m::RECORDS_REJECTED, s.records_rejected),
        (m::CONFLICTS, s.conflicts),
        (m::STORE_ERRORS, s.store_errors),
        (m::SPILL_CORRUPT, s.spill_corrupt),
        (m::RETENTION_DELETED, s.retention_deleted),
        (m::WRITE_LATENCY_US_SUM, s.write_latency_us_sum),
        (m::WRITE_LATENCY_COUNT, s.write_latency_count),
    ]
    .into_iter()
    .map(|(name, value)| StoreCounter { name, value })
    .collect();
    let write_latency = s
        .write_latency_buckets
        .iter()
        .enumerate()
        .map(|(i, &count)| LatencyBucket {
            le_us: WRITE_LATENCY_BUCKETS_US.get(i).copied(),
            count,
        })
        .collect();
    Ok(Json(StoreStatsBody {
        backend,
        degraded: store.is_degraded(),
        spill_bytes: store.spill_bytes(),
        counters,
        write_latency,
    }))
}
