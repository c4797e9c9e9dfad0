//! The scoring endpoints' side of the inference log: request ids, the
//! idempotency check before scoring, and the append that must succeed
//! before a response is sent (the durability point).
//!
//! Flow of a logged scoring request:
//! 1. [`LogContext`] (an extractor) notes the receive time, the API key's
//!    name and the trace id;
//! 2. [`InferenceLogHandle::prepare`] gives every row its id (client id, or
//!    `id#0`, `id#1`… for batch rows, or a generated UUIDv7), builds each
//!    row's input map once (feature name → value, after redaction) and looks
//!    client ids up: same input → the stored answer is replayed, another
//!    input → 409;
//! 3. the handler scores the rows;
//! 4. [`InferenceLogHandle::commit`] fills in the outputs and appends; only
//!    then does the handler answer.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::extract::FromRequestParts;
use axum::http::HeaderValue;
use axum::http::request::Parts;
use vigil_store::{
    AppendOutcome, InferenceLog, InferenceRecord, Input, InputWriter, RedactRule, Redactor, Store,
    StoreError,
};

use crate::error::{ApiError, ErrorCode};
use crate::gateway::keys::KeyName;
use crate::registry::{Label, ModelEntry};
use crate::telemetry::Telemetry;
use crate::telemetry::events::{IdempotencyChecked, InferenceLogged, StoreWritten};
use crate::telemetry::trace;

/// Response header set to `true` when the answer is a stored one.
pub const REPLAYED_HEADER: &str = "vigil-replayed";

/// Response header holding the request's inference id (the client's `id`,
/// or the generated one; batch rows add `#0`, `#1`…).
pub const INFERENCE_ID_HEADER: &str = "vigil-inference-id";

/// The inference log as the handlers hold it: the store and the redaction
/// rules applied before anything is written.
#[derive(Debug, Clone)]
pub struct InferenceLogHandle {
    log: Arc<dyn InferenceLog>,
    redactor: Arc<Redactor>,
    /// The opened store and its backend's name, for the counters.
    store: Option<(Arc<Store>, &'static str)>,
    /// Where a write's latency is emitted (the server's spine).
    telemetry: Option<Arc<Telemetry>>,
}

/// What a request brings to its records besides the rows.
#[derive(Debug, Clone)]
pub struct LogContext {
    started: Instant,
    received_at_us: i64,
    api_key_name: Option<Arc<str>>,
    trace_id: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for LogContext {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(LogContext::new(parts.extensions.get::<KeyName>()))
    }
}

impl LogContext {
    /// The context of a request received now, authenticated with `key`,
    /// in the current request's trace (the HTTP extractor and the gRPC
    /// handlers both use this).
    pub(crate) fn new(key: Option<&KeyName>) -> LogContext {
        let received_at_us = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
        LogContext {
            started: Instant::now(),
            received_at_us,
            api_key_name: key.map(|k| Arc::clone(&k.0)),
            trace_id: trace::current().map(|(id, _)| id.to_string()),
        }
    }
}

/// How the rows of a request are named.
#[derive(Debug, Clone, Copy)]
pub(crate) enum RowIds<'a> {
    /// One row: the request id as is.
    Single,
    /// Several rows: `base#i`, unless the row has its own id.
    Batch(&'a [Option<std::borrow::Cow<'a, str>>]),
    /// `rows` rows without ids of their own: the base id alone for one row,
    /// else `base#i`.
    Count(usize),
}

/// The records of a request before scoring.
#[derive(Debug)]
pub(crate) enum Prepared {
    /// Every row was logged before with the same input: answer with these.
    Replay(Vec<InferenceRecord>),
    /// Score the rows, then [`InferenceLogHandle::commit`] these.
    Fresh(Fresh),
}

/// Records to score and log.
#[derive(Debug)]
pub(crate) struct Fresh {
    records: Vec<InferenceRecord>,
    /// Every id was generated now (no client id), so no log holds them and
    /// the store need not read its records to check them.
    generated_ids: bool,
}

/// One row's answer, from the model now or from the log.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RowAnswer<'a> {
    /// The row's scores (one, or one per class).
    pub scores: &'a [f64],
    /// The row's label.
    pub label: Option<Label<'a>>,
}

impl<'a> RowAnswer<'a> {
    /// The answer stored in `record`.
    pub fn stored(record: &'a InferenceRecord) -> RowAnswer<'a> {
        RowAnswer {
            scores: &record.scores,
            label: record.label.as_deref().map(Label::Name),
        }
    }
}

impl InferenceLogHandle {
    /// Wraps a store and its redaction rules.
    pub fn new(log: Arc<dyn InferenceLog>, redactor: Redactor) -> InferenceLogHandle {
        InferenceLogHandle {
            log,
            redactor: Arc::new(redactor),
            store: None,
            telemetry: None,
        }
    }

    /// Emits each write's latency to `telemetry`.
    pub fn with_telemetry(mut self, telemetry: Arc<Telemetry>) -> Self {
        self.telemetry = Some(telemetry);
        self
    }

    /// Wraps an opened [`Store`] (its counters are served too); `backend`
    /// is `sqlite` or `postgres`.
    pub fn from_store(store: Arc<Store>, backend: &'static str, redactor: Redactor) -> Self {
        let log: Arc<dyn InferenceLog> = Arc::clone(&store) as _;
        InferenceLogHandle {
            store: Some((store, backend)),
            ..InferenceLogHandle::new(log, redactor)
        }
    }

    /// The opened store and its backend's name, when there is one.
    pub fn store(&self) -> Option<(&Arc<Store>, &'static str)> {
        self.store
            .as_ref()
            .map(|(store, backend)| (store, *backend))
    }

    /// The remote service behind the log (`postgresql`), for its spans.
    fn remote(&self) -> Option<&'static str> {
        matches!(self.store, Some((_, "postgres"))).then_some("postgresql")
    }

    /// The store, for the read API.
    pub fn log(&self) -> &Arc<dyn InferenceLog> {
        &self.log
    }

    /// Names the rows, builds their records (inputs only) and checks the
    /// client's ids against the log. `client_id` is the request's `id`.
    pub(crate) async fn prepare(
        &self,
        entry: &ModelEntry,
        ctx: &LogContext,
        client_id: Option<&str>,
        rows: &[f64],
        ids: RowIds<'_>,
    ) -> Result<(String, Prepared), ApiError> {
        let base = match client_id {
            Some(id) => {
                vigil_store::validate_request_id(id).map_err(|err| id_error("id", &err))?;
                id.to_owned()
            }
            None => vigil_store::new_request_id(),
        };
        let n = entry.model.num_features().max(1);
        let count = rows.len() / n;
        let mut records = Vec::with_capacity(count);
        let mut check = client_id.is_some();
        for (i, row) in rows.chunks(n).enumerate() {
            let own = match ids {
                RowIds::Batch(ids) => ids.get(i).and_then(|id| id.as_deref()),
                _ => None,
            };
            let id = match (own, ids) {
                (Some(own), _) => {
                    vigil_store::validate_request_id(own)
                        .map_err(|err| id_error(&format!("instances[{i}].id"), &err))?;
                    check = true;
                    own.to_owned()
                }
                (None, RowIds::Single) => base.clone(),
                (None, RowIds::Count(1)) => base.clone(),
                (None, _) => {
                    let id = format!("{base}#{i}");
                    vigil_store::validate_request_id(&id)
                        .map_err(|err| id_error(&format!("id of row {i} (`id#{i}`)"), &err))?;
                    id
                }
            };
            let input = self.input(entry, row);
            records.push(InferenceRecord::new(
                id,
                ctx.received_at_us,
                &*entry.name,
                &entry.version,
                input,
            ));
        }
        if !check {
            // Generated ids cannot have been logged before.
            let fresh = Fresh {
                records,
                generated_ids: true,
            };
            return Ok((base, Prepared::Fresh(fresh)));
        }
        let started = Instant::now();
        let mut stored = Vec::with_capacity(records.len());
        for record in &records {
            match self.log.lookup(&record.model, &record.request_id).await {
                Ok(Some(existing)) => {
                    if existing.input != record.input {
                        return Err(conflict(&record.request_id));
                    }
                    stored.push(existing);
                }
                Ok(None) => {}
                Err(err) => return Err(store_error(&err)),
            }
        }
        let replayed = !stored.is_empty() && stored.len() == records.len();
        if let Some(telemetry) = &self.telemetry {
            telemetry.emit(IdempotencyChecked {
                duration: started.elapsed(),
                replayed,
                remote: self.remote(),
            });
        }
        if replayed {
            return Ok((base, Prepared::Replay(stored)));
        }
        let fresh = Fresh {
            records,
            generated_ids: false,
        };
        Ok((base, Prepared::Fresh(fresh)))
    }

    /// Fills in the outputs and appends the records; returns, per row, the
    /// stored record when the log already held that row (a concurrent
    /// duplicate), `None` when this request's answer was logged.
    pub(crate) async fn commit(
        &self,
        entry: &ModelEntry,
        ctx: &LogContext,
        fresh: Fresh,
        scores: &[f64],
        cached: bool,
    ) -> Result<Vec<Option<Box<InferenceRecord>>>, ApiError> {
        let Fresh {
            mut records,
            generated_ids,
        } = fresh;
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let k = entry.model.num_outputs().max(1);
        let threshold = entry.has_threshold().then_some(entry.threshold);
        let latency_us = i64::try_from(ctx.started.elapsed().as_micros()).unwrap_or(i64::MAX);
        for (record, row) in records.iter_mut().zip(scores.chunks(k)) {
            record.scores = row.to_vec();
            record.label = entry.label(row).map(|label| match label {
                Label::Name(name) => name.to_owned(),
                Label::Class(class) => class.to_string(),
            });
            record.threshold = threshold;
            record.latency_us = latency_us;
            record.cached = cached;
            record.api_key_name = ctx.api_key_name.as_deref().map(str::to_owned);
            record.trace_id.clone_from(&ctx.trace_id);
        }
        // `/vigil/inference` gets the rows once they are durable; the
        // append takes them, so their lines are written first.
        let logged = self
            .telemetry
            .as_ref()
            .and_then(|t| InferenceLogged::prepare(t, &records));
        let started = Instant::now();
        let appended = if generated_ids {
            self.log.append_fresh_batch(records).await
        } else {
            self.log.append_batch(records).await
        };
        let outcomes = appended.map_err(|err| store_error(&err))?;
        if let Some(telemetry) = &self.telemetry {
            telemetry.emit(StoreWritten {
                latency: started.elapsed(),
                remote: self.remote(),
            });
            if let Some(logged) = logged {
                telemetry.emit(logged);
            }
        }
        outcomes
            .into_iter()
            .map(|outcome| match outcome {
                AppendOutcome::Inserted | AppendOutcome::Spilled => Ok(None),
                AppendOutcome::Replayed(stored) => Ok(Some(stored)),
                AppendOutcome::Conflict(stored) => Err(conflict(&stored.request_id)),
            })
            .collect()
    }
}

impl InferenceLogHandle {
    /// One row as a logged input: feature name → value, missing values left
    /// out, after redaction.
    fn input(&self, entry: &ModelEntry, row: &[f64]) -> Input {
        let keys = entry.log_keys();
        let mut input = InputWriter::with_features(keys.len());
        for key in keys {
            let value = row.get(key.index).copied().unwrap_or(f64::NAN);
            if !value.is_finite() {
                continue;
            }
            // With no rules this is a lookup in an empty map.
            match self.redactor.rule(&key.name) {
                RedactRule::Keep => input.number(&key.name, value),
                RedactRule::Drop => {}
                RedactRule::Hash => input.string(&key.name, &self.redactor.hash_number(value)),
            }
        }
        input.finish()
    }
}

fn id_error(field: &str, err: &StoreError) -> ApiError {
    ApiError::bad_request(format!("`{field}`: {err}"))
}

fn conflict(id: &str) -> ApiError {
    ApiError::new(
        ErrorCode::Conflict,
        format!(
            "request id `{id}` was already used for this model with a different input; \
             use a new id for a new request"
        ),
    )
}

/// A store failure as an API error: the client's mistakes keep their
/// message, anything else is a generic 503/500 (the detail goes to the log).
pub(crate) fn store_error(err: &StoreError) -> ApiError {
    match err.code() {
        vigil_store::ErrorCode::BadRequest => ApiError::bad_request(err.to_string()),
        vigil_store::ErrorCode::NotFound => ApiError::not_found(err.to_string()),
        vigil_store::ErrorCode::Conflict => ApiError::new(ErrorCode::Conflict, err.to_string()),
        vigil_store::ErrorCode::Unavailable => {
            tracing::error!(error = %err, "inference log unavailable");
            ApiError::public(
                ErrorCode::Unavailable,
                "the inference log is unavailable, retry later",
            )
        }
        vigil_store::ErrorCode::Internal => ApiError::internal(format!("inference log: {err}")),
    }
}

/// Marks a response as replayed from the log.
pub(crate) fn mark_replayed(response: &mut axum::response::Response) {
    response
        .headers_mut()
        .insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
}

/// Sets the inference id header (ids that are not valid header values,
/// which validation already refuses, are skipped).
pub(crate) fn set_inference_id(response: &mut axum::response::Response, id: &str) {
    if let Ok(value) = HeaderValue::from_str(id) {
        response.headers_mut().insert(INFERENCE_ID_HEADER, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_errors_keep_details_out_of_5xx_bodies() {
        let err = store_error(&StoreError::Unavailable("disk /var/x full".into()));
        assert_eq!(err.code, ErrorCode::Unavailable);
        assert!(!err.public_message().contains("/var/x"));
        let err = store_error(&StoreError::InvalidCursor);
        assert_eq!(err.code, ErrorCode::BadRequest);
        assert_eq!(err.public_message(), "invalid cursor");
    }
}
