//! Metric filters of a log group (SEMANTICS.md §3.1, CloudWatch's
//! PutMetricFilter): `PUT`, `GET`, `DELETE
//! /api/logs/{group}/metric-filters/{name}` and the group's list. The
//! filters feed the metric store, so they need metrics on; the keeper
//! ([`vigil_logs::metric_filter::MetricFilters`]) is opened here at
//! start-up over the metric service.
//!
//! ```json
//! {"pattern": "[ip, user, ..., status = 5*, bytes]",
//!  "metric": {"name": "Errors5xx", "namespace": "App", "value": "1",
//!             "dimensions": {"Status": "$status"}, "unit": "Count"}}
//! ```

use std::collections::BTreeMap;
use std::path::Path as FsPath;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use vigil_logs::metric_filter::{
    FilterDef, FilterError, FilterSpec, MetricFilters, MetricSink, MetricSpec,
};
use vigil_logs::pipeline::Logs;
use vigil_metrics::service::MetricsService;
use vigil_metrics::tsdb::Record;

use crate::config::MetricFilterEntry;
use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;
use vigil_metrics::service::now_ms;

/// The metric store as the filters' sink: records are stored durably.
#[derive(Debug)]
pub struct MetricServiceSink(pub Arc<MetricsService>);

impl MetricSink for MetricServiceSink {
    fn put(&self, records: &[Record]) -> Result<(), String> {
        self.0.put(records).map_err(|err| err.to_string())
    }
}

/// Opens the metric filters kept in `dir` (the log store's directory),
/// feeding `metrics`, and puts the file's `[[logs.metric_filters]]` into
/// them (replacing filters of the same group and name).
pub fn open(
    dir: &FsPath,
    metrics: &Arc<MetricsService>,
    entries: &[MetricFilterEntry],
) -> anyhow::Result<Arc<MetricFilters>> {
    let sink = Arc::new(MetricServiceSink(Arc::clone(metrics)));
    let filters = MetricFilters::open(dir, sink)
        .map_err(|err| anyhow::anyhow!("cannot open the metric filters: {err}"))?;
    let now = now_ms();
    for (i, entry) in entries.iter().enumerate() {
        let unchanged = filters.get(&entry.group, &entry.name).is_some_and(|def| {
            def.pattern == entry.spec.pattern && def.metric == entry.spec.metric
        });
        if !unchanged {
            filters
                .put(&entry.group, &entry.name, entry.spec.clone(), now)
                .map_err(|err| anyhow::anyhow!("logs.metric_filters[{i}]: {err}"))?;
        }
    }
    tracing::info!(filters = filters.len(), "metric filters open");
    Ok(Arc::new(filters))
}

/// What each match counts: a number, or where to read it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum MetricValue {
    /// `"1"`, `"$.latency_ms"` (JSON patterns), `"$bytes"` or `"$3"`
    /// (space-delimited patterns).
    Text(String),
    /// A number written unquoted: every match counts it.
    Number(f64),
}

/// A metric filter's metric transformation.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MetricTransformation {
    /// The metric's name: no `:`, `*` or `$`.
    #[schema(min_length = 1, max_length = 255)]
    pub name: String,
    /// Its namespace: no `:`, `*` or `$`.
    #[schema(min_length = 1, max_length = 255)]
    pub namespace: String,
    /// What each match adds to the minute.
    pub value: MetricValue,
    /// Emitted for a closed minute in which events arrived in the group
    /// and none gave a datapoint; not with `dimensions`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<f64>,
    /// At most 3: dimension name → `$field` / `$1` (space-delimited) or
    /// `$.path` (JSON) of the match.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub dimensions: BTreeMap<String, String>,
    /// A unit name (`Count`, `Milliseconds`, `Bytes`…); `None` by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
}

impl From<MetricTransformation> for MetricSpec {
    fn from(m: MetricTransformation) -> MetricSpec {
        MetricSpec {
            name: m.name,
            namespace: m.namespace,
            value: match m.value {
                MetricValue::Text(s) => s,
                MetricValue::Number(n) => n.to_string(),
            },
            default: m.default,
            dimensions: m.dimensions,
            unit: m.unit,
        }
    }
}

impl From<MetricSpec> for MetricTransformation {
    fn from(m: MetricSpec) -> MetricTransformation {
        MetricTransformation {
            name: m.name,
            namespace: m.namespace,
            value: MetricValue::Text(m.value),
            default: m.default,
            dimensions: m.dimensions,
            unit: m.unit,
        }
    }
}

/// `PUT /api/logs/{group}/metric-filters/{name}` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutMetricFilter {
    /// A filter pattern (SEMANTICS §3.1); `""` or absent matches every
    /// event.
    #[serde(default)]
    #[schema(max_length = 1024)]
    pub pattern: String,
    /// What each match becomes.
    pub metric: MetricTransformation,
}

/// A metric filter as stored.
#[derive(Debug, Serialize, ToSchema)]
pub struct MetricFilterView {
    /// Its log group.
    pub group: String,
    /// Its name.
    pub name: String,
    /// Its filter pattern.
    pub pattern: String,
    /// Its metric transformation.
    pub metric: MetricTransformation,
    /// When it was created, Unix ms (a replaced filter keeps it).
    pub created_ms: i64,
}

impl From<FilterDef> for MetricFilterView {
    fn from(d: FilterDef) -> MetricFilterView {
        MetricFilterView {
            group: d.group,
            name: d.name,
            pattern: d.pattern,
            metric: d.metric.into(),
            created_ms: d.created_ms,
        }
    }
}

/// `GET /api/logs/{group}/metric-filters` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct MetricFilterList {
    /// The group's filters, by name.
    pub metric_filters: Vec<MetricFilterView>,
}

fn filter_error(err: FilterError) -> ApiError {
    match err {
        FilterError::Invalid { .. } | FilterError::Pattern(_) => {
            ApiError::bad_request(err.to_string())
        }
        FilterError::TooMany { .. } => ApiError::new(ErrorCode::Conflict, err.to_string()),
        FilterError::NotFound { .. } => ApiError::not_found(err.to_string()),
        FilterError::Storage { .. } => {
            tracing::error!(error = %err, "metric filters could not be saved");
            ApiError::public(
                ErrorCode::Unavailable,
                "the metric filters cannot be saved now",
            )
        }
    }
}

/// The logs and their metric filters, or the `503` when either is off;
/// `400`/`404` for a bad or missing group.
fn filters_of<'a>(
    state: &'a AppState,
    group: &str,
) -> Result<(&'a Arc<Logs>, &'a Arc<MetricFilters>), ApiError> {
    let logs = state.logs()?;
    let filters = logs.metric_filters().ok_or_else(|| {
        ApiError::public(
            ErrorCode::Unavailable,
            "metric filters need metrics (metrics.enabled = false)",
        )
    })?;
    vigil_logs::store::names::check_group_name(group).map_err(ApiError::bad_request)?;
    if !logs.store().has_group(group) {
        return Err(ApiError::not_found(format!(
            "log group {group:?} does not exist"
        )));
    }
    Ok((logs, filters))
}

fn missing(group: &str, name: &str) -> ApiError {
    filter_error(FilterError::NotFound {
        group: group.to_owned(),
        name: name.to_owned(),
    })
}

/// Creates or replaces a metric filter of a group: every event stored in
/// the group afterwards that the pattern matches adds the value to its
/// metric's minute (the event's time, 60 s resolution).
#[utoipa::path(put, path = "/api/logs/{group}/metric-filters/{name}", tag = "logs",
    params(("group" = String, Path, description = "an existing group; a `/` is written `%2F`"),
        ("name" = String, Path, description = "1–512 characters, no `:` or `*`")),
    request_body = PutMetricFilter,
    responses((status = 200, description = "the filter as stored", body = MetricFilterView),
        (status = 400, description = "a bad name or body; a pattern that does not parse (the message \
            names its column); a rule broken (the message names the field, e.g. `metric.dimensions.Status`)",
            body = crate::error::ErrorBody),
        (status = 404, description = "no such log group", body = crate::error::ErrorBody),
        (status = 409, description = "the group has 100 metric filters already", body = crate::error::ErrorBody),
        (status = 415, body = crate::error::ErrorBody),
        (status = 503, description = "logs or metrics are off", body = crate::error::ErrorBody)))]
pub async fn put(
    State(state): State<AppState>,
    Path((group, name)): Path<(String, String)>,
    body: crate::extract::JsonBody,
) -> Result<Json<MetricFilterView>, ApiError> {
    let (_, filters) = filters_of(&state, &group)?;
    let body: PutMetricFilter = serde_json::from_slice(&body.0)
        .map_err(|err| ApiError::bad_request(format!("invalid metric filter body: {err}")))?;
    let spec = FilterSpec {
        pattern: body.pattern,
        metric: body.metric.into(),
    };
    let filters = Arc::clone(filters);
    let now = now_ms();
    let (def, _) = tokio::task::spawn_blocking(move || filters.put(&group, &name, spec, now))
        .await
        .map_err(|err| ApiError::internal(format!("metric filter task failed: {err}")))?
        .map_err(filter_error)?;
    Ok(Json(def.into()))
}

/// One metric filter of a group.
#[utoipa::path(get, path = "/api/logs/{group}/metric-filters/{name}", tag = "logs",
    params(("group" = String, Path, description = "a `/` is written `%2F`"),
        ("name" = String, Path, description = "the filter's name")),
    responses((status = 200, body = MetricFilterView),
        (status = 400, description = "a bad group name", body = crate::error::ErrorBody),
        (status = 404, description = "no such group or filter", body = crate::error::ErrorBody),
        (status = 503, description = "logs or metrics are off", body = crate::error::ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    Path((group, name)): Path<(String, String)>,
) -> Result<Json<MetricFilterView>, ApiError> {
    let (_, filters) = filters_of(&state, &group)?;
    let def = filters
        .get(&group, &name)
        .ok_or_else(|| missing(&group, &name))?;
    Ok(Json(def.into()))
}

/// Every metric filter of a group, by name.
#[utoipa::path(get, path = "/api/logs/{group}/metric-filters", tag = "logs",
    params(("group" = String, Path, description = "a `/` is written `%2F`")),
    responses((status = 200, body = MetricFilterList),
        (status = 400, description = "a bad group name", body = crate::error::ErrorBody),
        (status = 404, description = "no such group", body = crate::error::ErrorBody),
        (status = 503, description = "logs or metrics are off", body = crate::error::ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    Path(group): Path<String>,
) -> Result<Json<MetricFilterList>, ApiError> {
    let (_, filters) = filters_of(&state, &group)?;
    Ok(Json(MetricFilterList {
        metric_filters: filters.list(&group).into_iter().map(Into::into).collect(),
    }))
}

/// Deletes a metric filter; the data it already produced stay.
#[utoipa::path(delete, path = "/api/logs/{group}/metric-filters/{name}", tag = "logs",
    params(("group" = String, Path, description = "a `/` is written `%2F`"),
        ("name" = String, Path, description = "the filter's name")),
    responses((status = 204, description = "deleted"),
        (status = 400, description = "a bad group name", body = crate::error::ErrorBody),
        (status = 404, description = "no such group or filter", body = crate::error::ErrorBody),
        (status = 503, description = "logs or metrics are off, or the filters cannot be saved",
            body = crate::error::ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    Path((group, name)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let (_, filters) = filters_of(&state, &group)?;
    let filters = Arc::clone(filters);
    let (g, n) = (group.clone(), name.clone());
    let deleted = tokio::task::spawn_blocking(move || filters.delete(&g, &n))
        .await
        .map_err(|err| ApiError::internal(format!("metric filter task failed: {err}")))?
        .map_err(filter_error)?;
    if deleted {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(missing(&group, &name))
    }
}

#[cfg(test)]
#[path = "metric_filter_tests.rs"]
mod tests;
