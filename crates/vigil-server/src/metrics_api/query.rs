//! `GET /api/metrics`, `GET /api/metrics/{namespace}/{name}` and
//! `POST /api/metrics/query`: what is stored, one metric's statistics per
//! period, and metric math over several metrics.

use std::collections::BTreeMap;
use std::str::FromStr;

use axum::Json;
use axum::extract::{Path, Query, State};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use vigil_metrics::math::{MetricDataQuery, Range};
use vigil_metrics::tsdb::{self, SeriesFilter};
use vigil_metrics::{Statistic, Unit};

use std::sync::Arc;

use vigil_metrics::service::MetricsService;

use crate::error::{ApiError, ErrorCode};
use crate::inferences_api::parse_time;
use crate::state::AppState;

/// Longest period of a metric-math grid: a year.
const MAX_PERIOD_S: u32 = 31_536_000;

/// Default range of a query: the last 3 hours.
const DEFAULT_RANGE_MS: i64 = 3 * 3600 * 1000;

use crate::telemetry::now_ms;

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::bad_request(message)
}

/// The fleet's shared store (`metrics.url`) did not answer.
fn unavailable() -> ApiError {
    ApiError::public(
        ErrorCode::Unavailable,
        "the fleet's metric store is unavailable; retry shortly",
    )
}

/// Runs a store read on a blocking thread: in a fleet it waits on
/// PostgreSQL, alone it may decode many blocks.
async fn blocking<T: Send + 'static>(
    service: &Arc<MetricsService>,
    read: impl FnOnce(&MetricsService) -> T + Send + 'static,
) -> Result<T, ApiError> {
    let service = Arc::clone(service);
    tokio::task::spawn_blocking(move || read(&service))
        .await
        .map_err(|err| ApiError::internal(format!("metric store task failed: {err}")))
}

fn time_ms(name: &str, value: &str) -> Result<i64, ApiError> {
    Ok(parse_time(name, value)? / 1000)
}

/// One stored series.
#[derive(Debug, Serialize, ToSchema)]
pub struct SeriesView {
    /// e.g. `InferencePipeline`, `Vigil/Gateway`.
    pub namespace: String,
    /// e.g. `LatencyMs`.
    pub name: String,
    /// The exact dimension set.
    pub dimensions: BTreeMap<String, String>,
    /// The unit its data were sent with.
    pub unit: String,
}

/// `GET /api/metrics` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct SeriesList {
    /// Every matching series, sorted by namespace, name, dimensions.
    pub series: Vec<SeriesView>,
}

/// The series stored, optionally filtered.
#[utoipa::path(get, path = "/api/metrics", tag = "metrics",
    params(
        ("namespace" = Option<String>, Query, description = "only this namespace"),
        ("name" = Option<String>, Query, description = "only this metric name"),
        ("dim.K" = Option<String>, Query, description = "only series with dimension `K` = the value \
            (an empty value: any value of `K`); repeat for several dimensions")),
    responses((status = 200, body = SeriesList), (status = 400, body = crate::error::ErrorBody),
        (status = 503, description = "metrics are off, or the fleet's metric store (`metrics.url`) is unavailable", body = crate::error::ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Json<SeriesList>, ApiError> {
    let service = state.metric_service()?;
    let mut filter = SeriesFilter::default();
    for (name, value) in params {
        match name.as_str() {
            "namespace" => filter.namespace = Some(value),
            "name" => filter.name = Some(value),
            other => match other.strip_prefix("dim.") {
                Some(dim) if !dim.is_empty() => filter
                    .dimensions
                    .push((dim.to_owned(), (!value.is_empty()).then_some(value))),
                _ => {
                    return Err(bad(format!(
                        "unknown parameter `{other}`: expected namespace, name or dim.NAME"
                    )));
                }
            },
        }
    }
    let series = blocking(service, move |s| s.list(&filter))
        .await?
        .map_err(|_| unavailable())?
        .into_iter()
        .map(|key| SeriesView {
            namespace: key.namespace,
            name: key.name,
            dimensions: key.dimensions,
            unit: key.unit.as_str().to_owned(),
        })
        .collect();
    Ok(Json(SeriesList { series }))
}

/// `GET /api/metrics/{namespace}/{name}` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct MetricData {
    /// The namespace.
    pub namespace: String,
    /// The metric name.
    pub name: String,
    /// The dimension set asked for.
    pub dimensions: BTreeMap<String, String>,
    /// Seconds per point.
    pub period: u32,
    /// Period starts, Unix milliseconds, ascending (periods with data only).
    pub timestamps: Vec<i64>,
    /// One array per statistic, in the order asked; `null` where the data
    /// cannot answer (a percentile of data sent as a statistic set).
    pub values: BTreeMap<String, Vec<Option<f64>>>,
}

/// One metric's statistics per period (GetMetricStatistics).
#[utoipa::path(get, path = "/api/metrics/{namespace}/{name}", tag = "metrics",
    params(
        ("namespace" = String, Path, description = "the namespace; a `/` in it is written `%2F` \
            (`Vigil%2FGateway`)"),
        ("name" = String, Path, description = "the metric name"),
        ("dim.K" = Option<String>, Query, description = "dimension `K` = the value; the exact set \
            identifies the series"),
        ("stat" = Option<String>, Query, description = "repeatable: SampleCount, Sum, Minimum, Maximum, \
            Average, pNN.NN, tmNN, TM(a%:b%), IQM, wmNN, PR(a:b), TC(..), TS(..) (default Average)"),
        ("period" = Option<u32>, Query, description = "seconds per point (default 60)"),
        ("start" = Option<String>, Query, description = "RFC 3339 or Unix ms (default end − 3 h)"),
        ("end" = Option<String>, Query, description = "RFC 3339 or Unix ms (default now)"),
        ("unit" = Option<String>, Query, description = "only data sent with this unit (default: any)")),
    responses((status = 200, body = MetricData),
        (status = 400, description = "a bad statistic, period or range, named in the message",
            body = crate::error::ErrorBody),
        (status = 503, description = "metrics are off, or the fleet's metric store (`metrics.url`) is unavailable", body = crate::error::ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    Path((namespace, name)): Path<(String, String)>,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Json<MetricData>, ApiError> {
    let service = state.metric_service()?;
    let now = now_ms();
    let mut dimensions = BTreeMap::new();
    let mut stats: Vec<(String, Statistic)> = Vec::new();
    let (mut period, mut start, mut end, mut unit) = (60u32, None, None, None);
    for (key, value) in params {
        match key.as_str() {
            "stat" => {
                let stat = Statistic::from_str(&value)
                    .map_err(|err| bad(format!("invalid parameter `stat`: {err}")))?;
                stats.push((value, stat));
            }
            "period" => {
                period = value.parse().map_err(|_| {
                    bad(format!(
                        "invalid parameter `period`: expected whole seconds, got `{value}`"
                    ))
                })?;
            }
            "start" => start = Some(time_ms("start", &value)?),
            "end" => end = Some(time_ms("end", &value)?),
            "unit" => {
                unit = Some(Unit::parse(&value).ok_or_else(|| {
                    bad(format!(
                        "invalid parameter `unit`: `{value}` is not a unit (Seconds, Milliseconds, Count, Percent, ...)"
                    ))
                })?);
            }
            other => match other.strip_prefix("dim.") {
                Some(dim) if !dim.is_empty() => {
                    dimensions.insert(dim.to_owned(), value);
                }
                _ => {
                    return Err(bad(format!(
                        "unknown parameter `{other}`: expected stat, period, start, end, unit or dim.NAME"
                    )));
                }
            },
        }
    }
    if stats.is_empty() {
        stats.push(("Average".to_owned(), Statistic::Average));
    }
    let end = end.unwrap_or(now);
    let start = start.unwrap_or(end - DEFAULT_RANGE_MS);
    let q = tsdb::Query {
        namespace: namespace.clone(),
        name: name.clone(),
        dimensions: dimensions.clone(),
        unit,
        start_ms: start,
        end_ms: end,
        period_s: period,
        statistics: stats.iter().map(|(_, s)| *s).collect(),
    };
    let result = blocking(service, move |s| s.query(&q, now))
        .await?
        .map_err(|err| {
            if err.code() == "unavailable" {
                return unavailable();
            }
            bad(err
                .to_string()
                .replace("period_s", "period")
                .replace("start_ms", "start")
                .replace("end_ms", "end"))
        })?;
    let values = stats
        .into_iter()
        .map(|(name, _)| name)
        .zip(result.values)
        .collect();
    Ok(Json(MetricData {
        namespace,
        name,
        dimensions,
        period,
        timestamps: result.timestamps,
        values,
    }))
}

/// `POST /api/metrics/query` body (GetMetricData).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MathRequest {
    /// Metrics (`metric_stat`) and expressions over their ids.
    #[schema(value_type = Vec<Object>)]
    pub metrics: Vec<MetricDataQuery>,
    /// RFC 3339 (string) or Unix ms (integer); default end − 3 h.
    #[serde(default)]
    #[schema(value_type = Option<serde_json::Value>)]
    pub start: Option<serde_json::Value>,
    /// RFC 3339 (string) or Unix ms (integer); default now.
    #[serde(default)]
    #[schema(value_type = Option<serde_json::Value>)]
    pub end: Option<serde_json::Value>,
    /// Seconds per point of the result grid (default: the first
    /// `metric_stat`'s period, else 60), at most a year.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 31_536_000)]
    pub period: Option<u32>,
}

/// One result of `POST /api/metrics/query`.
#[derive(Debug, Serialize, ToSchema)]
pub struct MathResult {
    /// The entry's id.
    pub id: String,
    /// Its label (the id when it has none).
    pub label: String,
    /// Unix milliseconds, ascending.
    pub timestamps: Vec<i64>,
    /// One value per timestamp.
    pub values: Vec<f64>,
}

/// `POST /api/metrics/query` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct MathResults {
    /// The entries with `return_data` true, in request order.
    pub results: Vec<MathResult>,
}

fn time_field(name: &str, value: Option<&serde_json::Value>) -> Result<Option<i64>, ApiError> {
    match value {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::Number(n)) => n.as_i64().map(Some).ok_or_else(|| {
            bad(format!(
                "{name}: expected Unix milliseconds or RFC 3339, got {n}"
            ))
        }),
        Some(serde_json::Value::String(s)) => time_ms(name, s).map(Some),
        Some(other) => Err(bad(format!(
            "{name}: expected Unix milliseconds or RFC 3339, got {other}"
        ))),
    }
}

/// Several metrics and metric-math expressions over them (GetMetricData).
#[utoipa::path(post, path = "/api/metrics/query", tag = "metrics",
    request_body(content = MathRequest, description = "`{\"metrics\": [{\"id\": \"errors\", \"metric_stat\": \
        {\"namespace\": \"InferencePipeline\", \"metric_name\": \"ErrorCount\", \"period\": 60, \"stat\": \"Sum\"}, \
        \"return_data\": false}, {\"id\": \"rate\", \"expression\": \"100 * errors / (errors + ok)\"}, ...], \
        \"start\": ..., \"end\": ...}`"),
    responses((status = 200, body = MathResults),
        (status = 400, description = "a bad query or expression, naming the entry and the column",
            body = crate::error::ErrorBody),
        (status = 415, body = crate::error::ErrorBody),
        (status = 503, description = "metrics are off, or the fleet's metric store (`metrics.url`) is unavailable", body = crate::error::ErrorBody)))]
pub async fn math(
    State(state): State<AppState>,
    body: crate::extract::JsonBody,
) -> Result<Json<MathResults>, ApiError> {
    let service = state.metric_service()?;
    let request: MathRequest = serde_json::from_slice(&body.0)
        .map_err(|err| bad(format!("invalid request body: {err}")))?;
    let now = now_ms();
    let end = time_field("end", request.end.as_ref())?.unwrap_or(now);
    let start = time_field("start", request.start.as_ref())?.unwrap_or(end - DEFAULT_RANGE_MS);
    let period = request.period.unwrap_or_else(|| {
        request
            .metrics
            .iter()
            .find_map(|m| m.metric_stat.as_ref().map(|s| s.period))
            .unwrap_or(60)
    });
    if period == 0 || period > MAX_PERIOD_S {
        return Err(bad(format!(
            "period: expected 1 to {MAX_PERIOD_S} seconds, got {period}"
        )));
    }
    let range = Range {
        start_ms: start,
        end_ms: end,
        period_s: period,
    };
    let metrics = request.metrics;
    let outputs = blocking(service, move |s| s.query_math(&metrics, range, now))
        .await?
        .map_err(|err| match err.code() {
            "bad_request" => bad(err.to_string()),
            "unavailable" => unavailable(),
            _ => ApiError::internal(err.to_string()),
        })?;
    Ok(Json(MathResults {
        results: outputs
            .into_iter()
            .map(|o| MathResult {
                id: o.id,
                label: o.label,
                timestamps: o.timestamps,
                values: o.values,
            })
            .collect(),
    }))
}
