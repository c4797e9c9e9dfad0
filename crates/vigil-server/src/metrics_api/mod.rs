//! The metrics API: `GET /metrics` for Prometheus (every handle of the
//! telemetry spine, cumulative since start), and the metric store's API
//! under `/api/metrics` (list, statistics, metric math).

pub mod put;
pub mod query;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::header::{ACCEPT, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};

use crate::state::AppState;

/// Prometheus's text exposition format, version 0.0.4.
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// OpenMetrics 1.0.0 text, the format that carries exemplars.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Whether `accept` prefers OpenMetrics: it lists
/// `application/openmetrics-text` (version 1.0.0, 0.0.1 or none) with a
/// quality above 0 and at least that of any range that matches
/// `text/plain` (`text/plain`, `text/*`, `*/*`). Prometheus sends
/// `application/openmetrics-text;version=1.0.0,…,text/plain;version=0.0.4;q=0.5,…`.
pub fn wants_openmetrics(accept: &str) -> bool {
    let (mut openmetrics, mut plain) = (0.0f32, 0.0f32);
    for range in accept.split(',') {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or_default().to_ascii_lowercase();
        let (mut q, mut version) = (1.0f32, None);
        for param in parts {
            if let Some((name, value)) = param.split_once('=') {
                let value = value.trim().trim_matches('"');
                match name.trim().to_ascii_lowercase().as_str() {
                    "q" => q = value.parse().unwrap_or(0.0),
                    "version" => version = Some(value.to_owned()),
                    _ => {}
                }
            }
        }
        match media.as_str() {
            "application/openmetrics-text"
                if version
                    .as_deref()
                    .is_none_or(|v| v == "1.0.0" || v == "0.0.1") =>
            {
                openmetrics = openmetrics.max(q);
            }
            "text/plain" | "text/*" | "*/*" => plain = plain.max(q),
            _ => {}
        }
    }
    openmetrics > 0.0 && openmetrics >= plain
}

/// Every metric in Prometheus's text format: counters as `_total`,
/// latencies, scores and concurrency as histograms with explicit buckets;
/// labels are the metric's dimensions (route template, model, version,
/// label, reason). Open like the health endpoints, so a scraper needs no key.
/// A scraper that asks for OpenMetrics (`Accept`, see
/// [`wants_openmetrics`]) gets OpenMetrics 1.0.0, whose request-latency
/// buckets link a recent sampled trace as an exemplar.
#[utoipa::path(get, path = "/metrics", tag = "metrics",
    responses((status = 200, description = "Prometheus text format 0.0.4, or OpenMetrics 1.0.0 text \
        with exemplars (`trace_id`) when `Accept` prefers `application/openmetrics-text`",
        content((String = "text/plain"), (String = "application/openmetrics-text")))))]
pub async fn prometheus(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let registry = state.gateway().telemetry().registry();
    let openmetrics = headers
        .get_all(ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(wants_openmetrics);
    if openmetrics {
        let body = registry.render_openmetrics();
        ([(CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE)], body).into_response()
    } else {
        let body = registry.render_prometheus();
        ([(CONTENT_TYPE, PROMETHEUS_CONTENT_TYPE)], body).into_response()
    }
}

#[cfg(test)]
mod fleet_tests;
#[cfg(test)]
mod tests;
