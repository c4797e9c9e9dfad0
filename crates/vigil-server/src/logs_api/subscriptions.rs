//! Subscription filters of a log group (SEMANTICS §3.3): at most two per
//! group, each a pattern and a destination (`http`, `file` or `otlp`),
//! shown with their delivery counters. A stream named
//! `subscription-filters` cannot be posted to: the path is these routes'.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use vigil_logs::subscription::{
    DeliveryStats, Destination, Encoding, FilterSpec, FilterView, SubscriptionError, Subscriptions,
};

use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;
use vigil_metrics::service::now_ms;

/// `PUT /api/logs/{group}/subscription-filters/{name}` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutSubscriptionFilter {
    /// A filter pattern (SEMANTICS §3.1); `""` or absent forwards every
    /// event. Space-delimited patterns add `extractedFields` to each event.
    #[serde(default)]
    #[schema(max_length = 1024)]
    pub pattern: String,
    /// Where matching events go.
    pub destination: DestinationBody,
}

/// A destination.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum DestinationBody {
    /// POST `{"messageType": "DATA_MESSAGE", "owner", "logGroup",
    /// "logStream", "subscriptionFilters", "logEvents": [{"id",
    /// "timestamp", "message", "extractedFields"}]}`, one stream per
    /// payload; `gzip+base64` sends `{"awslogs": {"data": base64(gzip(payload))}}`.
    Http {
        /// An http(s) URL.
        url: String,
        /// `json` (default) or `gzip+base64`.
        #[serde(default)]
        encoding: EncodingBody,
    },
    /// Append one JSON line per event (the payload's event fields with
    /// `logGroup` and `logStream`) to a file.
    File {
        /// An absolute path.
        path: String,
    },
    /// OTLP/HTTP logs: protobuf `ExportLogsServiceRequest` to
    /// `<endpoint>/v1/logs` (resource `service.name = vigil`; attributes
    /// `log.group`, `log.stream`, `log.record.uid`).
    Otlp {
        /// The collector's base URL, e.g. `http://127.0.0.1:4318`.
        endpoint: String,
    },
}

/// How an `http` destination's payload is written.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, ToSchema)]
pub enum EncodingBody {
    /// JSON.
    #[default]
    #[serde(rename = "json")]
    Json,
    /// Gzipped, then base64, in `{"awslogs": {"data": ...}}`.
    #[serde(rename = "gzip+base64")]
    GzipBase64,
}

impl From<DestinationBody> for Destination {
    fn from(d: DestinationBody) -> Destination {
        match d {
            DestinationBody::Http { url, encoding } => Destination::Http {
                url,
                encoding: match encoding {
                    EncodingBody::Json => Encoding::Json,
                    EncodingBody::GzipBase64 => Encoding::GzipBase64,
                },
            },
            DestinationBody::File { path } => Destination::File { path: path.into() },
            DestinationBody::Otlp { endpoint } => Destination::Otlp { endpoint },
        }
    }
}

impl From<Destination> for DestinationBody {
    fn from(d: Destination) -> DestinationBody {
        match d {
            Destination::Http { url, encoding } => DestinationBody::Http {
                url,
                encoding: match encoding {
                    Encoding::Json => EncodingBody::Json,
                    Encoding::GzipBase64 => EncodingBody::GzipBase64,
                },
            },
            Destination::File { path } => DestinationBody::File {
                path: path.display().to_string(),
            },
            Destination::Otlp { endpoint } => DestinationBody::Otlp { endpoint },
        }
    }
}

/// A filter's delivery since it was made (or since start).
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryCounters {
    /// Events the pattern matched.
    pub matched_events: u64,
    /// Matched events left out because the buffer (10,000 events) was full.
    pub dropped_events: u64,
    /// Events delivered.
    pub delivered_events: u64,
    /// Events of deliveries given up.
    pub failed_events: u64,
    /// Deliveries given up after their retries (or refused with a 4xx).
    pub failed_deliveries: u64,
    /// Attempts made after a failed one.
    pub retries: u64,
    /// Events waiting to be delivered.
    pub buffered_events: u64,
    /// The last delivery, Unix ms; `null`: none yet.
    pub last_delivery_ms: Option<i64>,
    /// Why the last failed attempt failed; `null`: none failed.
    pub last_error: Option<String>,
}

impl From<DeliveryStats> for DeliveryCounters {
    fn from(s: DeliveryStats) -> DeliveryCounters {
        DeliveryCounters {
            matched_events: s.matched_events,
            dropped_events: s.dropped_events,
            delivered_events: s.delivered_events,
            failed_events: s.failed_events,
            failed_deliveries: s.failed_deliveries,
            retries: s.retries,
            buffered_events: s.buffered_events,
            last_delivery_ms: s.last_delivery_ms,
            last_error: s.last_error,
        }
    }
}

/// A subscription filter as shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriptionFilterView {
    /// Its log group.
    pub group: String,
    /// Its name.
    pub name: String,
    /// Its pattern.
    pub pattern: String,
    /// Where it delivers.
    pub destination: DestinationBody,
    /// When it was first put, Unix ms.
    pub created_ms: i64,
    /// Its counters (also the `Vigil/Logs` metrics, dimension
    /// `subscription` = `<group>:<name>`).
    pub delivery: DeliveryCounters,
}

impl From<FilterView> for SubscriptionFilterView {
    fn from(v: FilterView) -> SubscriptionFilterView {
        SubscriptionFilterView {
            group: v.filter.group,
            name: v.filter.name,
            pattern: v.filter.pattern,
            destination: v.filter.destination.into(),
            created_ms: v.filter.created_ms,
            delivery: v.delivery.into(),
        }
    }
}

/// `GET /api/logs/{group}/subscription-filters` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriptionFilterList {
    /// The group's filters (at most two), in the order they were made.
    pub subscription_filters: Vec<SubscriptionFilterView>,
}

fn subscription_error(err: SubscriptionError) -> ApiError {
    match err {
        SubscriptionError::Invalid { .. } => ApiError::bad_request(err.to_string()),
        SubscriptionError::Limit(_) => ApiError::new(ErrorCode::Conflict, err.to_string()),
        SubscriptionError::NoGroup(_) | SubscriptionError::NotFound { .. } => {
            ApiError::not_found(err.to_string())
        }
        SubscriptionError::Storage { .. } | SubscriptionError::NoRuntime => {
            tracing::error!(error = %err, "subscription filters cannot be saved");
            ApiError::public(
                ErrorCode::Unavailable,
                "the subscription filters cannot be saved now",
            )
        }
    }
}

/// Runs a change on the blocking pool (it rewrites `subscriptions.json`).
async fn blocking<T: Send + 'static>(
    subs: &Arc<Subscriptions>,
    f: impl FnOnce(&Subscriptions) -> Result<T, SubscriptionError> + Send + 'static,
) -> Result<T, ApiError> {
    let subs = Arc::clone(subs);
    tokio::task::spawn_blocking(move || f(&subs))
        .await
        .map_err(|err| ApiError::internal(format!("subscription task failed: {err}")))?
        .map_err(subscription_error)
}

fn no_filter(group: &str, name: &str) -> ApiError {
    subscription_error(SubscriptionError::NotFound {
        group: group.to_owned(),
        name: name.to_owned(),
    })
}

/// Creates or replaces a subscription filter of a group (which must
/// exist); a group has at most two.
#[utoipa::path(put, path = "/api/logs/{group}/subscription-filters/{name}", tag = "logs",
    params(("group" = String, Path, description = "an existing group; a `/` is written `%2F`"),
        ("name" = String, Path, description = "1–512 characters, no `:` or `*`")),
    request_body = PutSubscriptionFilter,
    responses((status = 200, description = "the filter as stored (a replaced one keeps its buffer and counters)", body = SubscriptionFilterView),
        (status = 400, description = "a bad name, pattern (the message names the column) or destination; \
            the message names the field", body = crate::error::ErrorBody),
        (status = 404, description = "no such log group", body = crate::error::ErrorBody),
        (status = 409, description = "the group has two filters already", body = crate::error::ErrorBody),
        (status = 415, body = crate::error::ErrorBody),
        (status = 503, description = "logs are off, or the definitions cannot be saved", body = crate::error::ErrorBody)))]
pub async fn put(
    State(state): State<AppState>,
    Path((group, name)): Path<(String, String)>,
    body: crate::extract::JsonBody,
) -> Result<Json<SubscriptionFilterView>, ApiError> {
    let subs = state.subscriptions()?;
    let spec: PutSubscriptionFilter = serde_json::from_slice(&body.0)
        .map_err(|err| ApiError::bad_request(format!("invalid subscription filter body: {err}")))?;
    let spec = FilterSpec {
        pattern: spec.pattern,
        destination: spec.destination.into(),
    };
    let now = now_ms();
    let view = blocking(subs, move |s| {
        s.put(&group, &name, spec, now)?;
        s.get(&group, &name)
            .ok_or(SubscriptionError::NotFound { group, name })
    })
    .await?;
    Ok(Json(view.into()))
}

/// A subscription filter with its delivery counters.
#[utoipa::path(get, path = "/api/logs/{group}/subscription-filters/{name}", tag = "logs",
    params(("group" = String, Path, description = "a `/` is written `%2F`"),
        ("name" = String, Path, description = "the filter's name")),
    responses((status = 200, body = SubscriptionFilterView),
        (status = 404, description = "no such group or filter", body = crate::error::ErrorBody),
        (status = 503, description = "logs are off", body = crate::error::ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    Path((group, name)): Path<(String, String)>,
) -> Result<Json<SubscriptionFilterView>, ApiError> {
    let subs = state.subscriptions()?;
    subs.get(&group, &name)
        .map(|v| Json(v.into()))
        .ok_or_else(|| no_filter(&group, &name))
}

/// The subscription filters of a group.
#[utoipa::path(get, path = "/api/logs/{group}/subscription-filters", tag = "logs",
    params(("group" = String, Path, description = "a `/` is written `%2F`")),
    responses((status = 200, body = SubscriptionFilterList),
        (status = 404, description = "no such log group", body = crate::error::ErrorBody),
        (status = 503, description = "logs are off", body = crate::error::ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    Path(group): Path<String>,
) -> Result<Json<SubscriptionFilterList>, ApiError> {
    let subs = state.subscriptions()?;
    let logs = state.logs()?;
    if !logs.store().has_group(&group) {
        return Err(subscription_error(SubscriptionError::NoGroup(group)));
    }
    Ok(Json(SubscriptionFilterList {
        subscription_filters: subs.list(&group).into_iter().map(Into::into).collect(),
    }))
}

/// Deletes a subscription filter; what it had not delivered yet is dropped.
#[utoipa::path(delete, path = "/api/logs/{group}/subscription-filters/{name}", tag = "logs",
    params(("group" = String, Path, description = "a `/` is written `%2F`"),
        ("name" = String, Path, description = "the filter's name")),
    responses((status = 204, description = "deleted"),
        (status = 404, description = "no such group or filter", body = crate::error::ErrorBody),
        (status = 503, description = "logs are off, or the definitions cannot be saved", body = crate::error::ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    Path((group, name)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let subs = state.subscriptions()?;
    let (g, n) = (group.clone(), name.clone());
    if blocking(subs, move |s| s.delete(&g, &n)).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(no_filter(&group, &name))
    }
}

#[cfg(test)]
#[path = "subscriptions_tests.rs"]
mod tests;
