//! Admin endpoints: reload, cache flush and the gateway's counters. The
//! gateway middleware has already checked the admin key.

use axum::Json;
use axum::extract::{Query, State};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody};
use crate::gateway::runtime::ReloadSummary;
use crate::state::AppState;

/// Read the config again and swap models, keys, plans, limits and cache
/// settings atomically; in-flight requests finish on what they started with.
#[utoipa::path(post, path = "/api/admin/reload", tag = "admin",
    responses(
        (status = 200, description = "the new config serves", body = ReloadSummary),
        (status = 400, description = "the new config is invalid (every problem listed); the old one keeps serving", body = ErrorBody)))]
pub async fn reload(State(state): State<AppState>) -> Result<Json<ReloadSummary>, ApiError> {
    match crate::reload(&state.gateway, state.metrics(), state.dashboards()).await {
        Ok(summary) => Ok(Json(summary)),
        Err(err) => {
            tracing::warn!(error = %format!("{err:#}"), "config reload rejected");
            Err(ApiError::bad_request(format!(
                "reload rejected, the running config keeps serving: {err:#}"
            )))
        }
    }
}

/// `DELETE /api/cache` query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct FlushQuery {
    /// Flush only this model's entries.
    pub model: Option<String>,
}

/// What a flush did.
#[derive(Debug, Serialize, ToSchema)]
pub struct FlushSummary {
    /// `memory`, `redis` or `off`.
    pub backend: &'static str,
    /// The model flushed, absent for the whole cache.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Entries removed.
    pub flushed: Option<u64>,
}

/// Flush the prediction cache, entirely or for one model.
#[utoipa::path(delete, path = "/api/cache", tag = "admin",
    params(FlushQuery),
    responses(
        (status = 200, body = FlushSummary),
        (status = 404, description = "no such model", body = ErrorBody),
        (status = 503, description = "redis did not answer", body = ErrorBody)))]
pub async fn flush_cache(
    State(state): State<AppState>,
    Query(query): Query<FlushQuery>,
) -> Result<Json<FlushSummary>, ApiError> {
    if let Some(model) = &query.model {
        state.registry.find(model)?;
    }
    let cache = state.cache();
    let flushed = cache.flush(query.model.as_deref()).await?;
    Ok(Json(FlushSummary {
        backend: cache.backend_name(),
        model: query.model,
        flushed,
    }))
}

/// One counter reading.
#[derive(Debug, Serialize, ToSchema)]
pub struct CounterReading {
    /// Metric name (see `gateway::metrics`).
    pub name: &'static str,
    /// The `reason` label of `Throttles`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    /// Value since start (`ConcurrentExecutions`: highest in flight).
    pub value: u64,
}

/// The gateway's counters.
#[derive(Debug, Serialize, ToSchema)]
pub struct GatewayStats {
    /// Every counter, in a fixed order.
    pub counters: Vec<CounterReading>,
    /// The cache backend: `memory`, `redis` or `off`.
    pub cache_backend: &'static str,
}

/// The gateway's counters: throttles by reason, concurrency, timeouts,
/// refused keys, cache hits, misses and errors.
#[utoipa::path(get, path = "/api/gateway/stats", tag = "admin",
    responses((status = 200, body = GatewayStats)))]
pub async fn stats(State(state): State<AppState>) -> Json<GatewayStats> {
    let counters = state
        .gateway
        .telemetry()
        .snapshot()
        .into_iter()
        .map(|(name, reason, value)| CounterReading {
            name,
            reason,
            value,
        })
        .collect();
    Json(GatewayStats {
        counters,
        cache_backend: state.cache().backend_name(),
    })
}
