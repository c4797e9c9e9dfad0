//! The metrics API: `GET /metrics` for Prometheus (every handle of the
//! telemetry spine, cumulative since start), and the metric store's API
//! under `/api/metrics` (list, statistics, metric math).

pub mod put;
pub mod query;

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};

use crate::state::AppState;

/// Prometheus's text exposition format, version 0.0.4.
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Every metric in Prometheus's text format: counters as `_total`,
/// latencies, scores and concurrency as histograms with explicit buckets;
/// labels are the metric's dimensions (route template, model, version,
/// label, reason). Open like the health endpoints, so a scraper needs no key.
#[utoipa::path(get, path = "/metrics", tag = "metrics",
    responses((status = 200, description = "Prometheus text format 0.0.4", content_type = "text/plain",
        body = String)))]
pub async fn prometheus(State(state): State<AppState>) -> Response {
    let body = state.gateway().telemetry().registry().render_prometheus();
    ([(CONTENT_TYPE, PROMETHEUS_CONTENT_TYPE)], body).into_response()
}

#[cfg(test)]
mod fleet_tests;
#[cfg(test)]
mod tests;
