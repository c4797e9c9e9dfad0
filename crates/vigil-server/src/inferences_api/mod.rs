//! The inference log's read API (admin): one id, or a filtered page of
//! records, newest first with an opaque cursor.
//!
//! `GET /api/inferences/{id}` and
//! `GET /api/inferences?model=&version=&label=&from=&to=&limit=&cursor=`.
//! `from` and `to` take RFC 3339 (`2026-11-23T21:00:00Z`, any offset) or
//! Unix milliseconds; `from` is inclusive, `to` exclusive.

pub mod stats;
mod wire;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use vigil_store::{ListQuery, StoreError};

use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::inference_log::store_error;
use crate::state::AppState;
pub use stats::{LatencyBucket, StoreCounter, StoreStatsBody};
pub use wire::{InferencePage, InferenceRecordDoc, InferenceRecords, RecordView};

/// Every record with this id (one per model that logged it), newest first.
#[utoipa::path(get, path = "/api/inferences/{id}", tag = "inferences",
    params(("id" = String, Path, min_length = 1, max_length = 128, pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]+$",
            description = "request id: 1 to 128 bytes of UTF-8 without control characters \
                (batch rows: `id#0`, `id#1`…, with `#` sent as `%23`)"),
        ("model" = Option<String>, Query, description = "only the record of this model")),
    responses(
        (status = 200, body = InferenceRecords),
        (status = 400, description = "the id is too long or has control characters, or an unknown parameter", body = ErrorBody),
        (status = 404, description = "no record with this id (for this model)", body = ErrorBody),
        (status = 503, description = "the inference log is off or unavailable", body = ErrorBody)))]
pub async fn get_inference(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let log = log_of(&state)?;
    let mut model = None;
    for (name, value) in params {
        match name.as_str() {
            "model" => model = Some(value),
            other => return Err(unknown_parameter(other, &["model"])),
        }
    }
    vigil_store::validate_request_id(&id).map_err(|err| ApiError::bad_request(err.to_string()))?;
    let mut records = log.get(&id).await.map_err(|err| store_error(&err))?;
    if let Some(model) = &model {
        records.retain(|r| &r.model == model);
    }
    if records.is_empty() {
        let scope = model.map_or_else(String::new, |m| format!(" for model `{m}`"));
        return Err(ApiError::not_found(format!(
            "no inference record with id `{id}`{scope}"
        )));
    }
    let records = records.iter().map(RecordView::new).collect();
    Ok(Json(InferenceRecords { records }).into_response())
}

/// Records matching the filters, newest first, one page at a time.
#[utoipa::path(get, path = "/api/inferences", tag = "inferences",
    params(
        ("model" = Option<String>, Query, min_length = 1, description = "only this model"),
        ("version" = Option<String>, Query, min_length = 1, description = "only this model version"),
        ("label" = Option<String>, Query, min_length = 1, description = "only this label, e.g. `fraud`"),
        ("from" = Option<TimeBound>, Query, description = "received at or after"),
        ("to" = Option<TimeBound>, Query, description = "received before (a `to` at or before `from` selects nothing)"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "page size (default 100)"),
        ("cursor" = Option<String>, Query, min_length = 1, pattern = "^[A-Za-z0-9_-]+$",
            description = "`next_cursor` of the previous page, unchanged (any other value is a 400)")),
    responses(
        (status = 200, body = InferencePage),
        (status = 400, description = "a bad parameter, named in the message", body = ErrorBody),
        (status = 503, description = "the inference log is off or unavailable", body = ErrorBody)))]
pub async fn list_inferences(
    State(state): State<AppState>,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let log = log_of(&state)?;
    let query = list_query(params)?;
    query
        .effective_limit()
        .map_err(|err| ApiError::bad_request(err.to_string()))?;
    let page = log.list(&query).await.map_err(|err| match err {
        StoreError::InvalidCursor => bad_cursor(),
        other => store_error(&other),
    })?;
    Ok(Json(InferencePage {
        records: page.records.iter().map(RecordView::new).collect(),
        next_cursor: page.next_cursor,
    })
    .into_response())
}

fn log_of(state: &AppState) -> Result<&std::sync::Arc<dyn vigil_store::InferenceLog>, ApiError> {
    state
        .log
        .as_ref()
        .map(|handle| handle.log())
        .ok_or_else(|| {
            ApiError::public(
                ErrorCode::Unavailable,
                "the inference log is off (store.enabled = false)",
            )
        })
}

const LIST_PARAMETERS: &[&str] = &["model", "version", "label", "from", "to", "limit", "cursor"];

/// The list filters from the query string, or a 400 naming the parameter.
fn list_query(params: Vec<(String, String)>) -> Result<ListQuery, ApiError> {
    let mut query = ListQuery::default();
    for (name, value) in params {
        let slot = match name.as_str() {
            "model" => &mut query.model,
            "version" => &mut query.version,
            "label" => &mut query.label,
            "cursor" => {
                if vigil_store::Cursor::decode(&value).is_err() {
                    return Err(bad_cursor());
                }
                &mut query.cursor
            }
            "from" => {
                query.from_us = Some(parse_time("from", &value)?);
                continue;
            }
            "to" => {
                query.to_us = Some(parse_time("to", &value)?);
                continue;
            }
            "limit" => {
                let limit = value.parse::<usize>().map_err(|_| {
                    ApiError::bad_request(format!(
                        "invalid parameter `limit`: expected a whole number from 1 to 1000, got `{value}`"
                    ))
                })?;
                query.limit = Some(limit);
                continue;
            }
            other => return Err(unknown_parameter(other, LIST_PARAMETERS)),
        };
        if slot.is_some() {
            return Err(ApiError::bad_request(format!(
                "invalid parameter `{name}`: given more than once"
            )));
        }
        if value.is_empty() {
            return Err(ApiError::bad_request(format!(
                "invalid parameter `{name}`: must not be empty"
            )));
        }
        *slot = Some(value);
    }
    // `from >= to` is an empty window, not an error: a client stepping
    // through windows may well ask for one, and the store answers it with no
    // records.
    Ok(query)
}

/// The largest Unix-milliseconds bound: its microseconds still fit an `i64`.
const MAX_TIME_MS: i64 = i64::MAX / 1000;

/// `from` / `to` as documented: RFC 3339 or Unix milliseconds (the parsing is
/// [`parse_time`]).
#[derive(Debug)]
pub struct TimeBound;

impl utoipa::PartialSchema for TimeBound {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{
            AnyOfBuilder, KnownFormat, ObjectBuilder, SchemaFormat, Type,
        };
        AnyOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
                    .description(Some("RFC 3339, any offset, e.g. `2026-11-23T21:00:00Z`")),
            )
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(0))
                    .maximum(Some(MAX_TIME_MS))
                    .description(Some("Unix milliseconds")),
            )
            .description(Some("RFC 3339 or Unix milliseconds"))
            .into()
    }
}

impl utoipa::ToSchema for TimeBound {}

/// RFC 3339 or Unix milliseconds → microseconds since the epoch.
pub fn parse_time(name: &str, value: &str) -> Result<i64, ApiError> {
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return value
            .parse::<i64>()
            .ok()
            .and_then(|ms| ms.checked_mul(1000))
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "invalid parameter `{name}`: `{value}` is out of range"
                ))
            });
    }
    let parsed =
        time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc3339)
            .map_err(|_| {
                ApiError::bad_request(format!(
                    "invalid parameter `{name}`: expected RFC 3339 (2026-11-23T21:00:00Z) or Unix milliseconds, got `{value}`"
                ))
            })?;
    i64::try_from(parsed.unix_timestamp_nanos() / 1000).map_err(|_| {
        ApiError::bad_request(format!(
            "invalid parameter `{name}`: `{value}` is out of range"
        ))
    })
}

fn bad_cursor() -> ApiError {
    ApiError::bad_request(
        "invalid parameter `cursor`: not a `next_cursor` returned by this api".to_owned(),
    )
}

fn unknown_parameter(name: &str, known: &[&str]) -> ApiError {
    ApiError::bad_request(format!(
        "unknown parameter `{name}`: expected {}",
        known
            .iter()
            .map(|k| format!("`{k}`"))
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

#[cfg(test)]
mod tests;
