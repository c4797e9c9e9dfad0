//! Wire types of the read API: a record as stored, plus its receive time
//! in RFC 3339 for people.

use serde::Serialize;
use utoipa::ToSchema;
use vigil_store::InferenceRecord;

/// A record as the API returns it: every stored field, `received_at` and
/// `input_fingerprint`.
#[derive(Debug, Serialize)]
pub struct RecordView<'a> {
    #[serde(flatten)]
    record: &'a InferenceRecord,
    /// `received_at_us` in RFC 3339 (UTC, microseconds).
    received_at: String,
    /// Hex SHA-256 of the canonical input JSON.
    input_fingerprint: String,
}

impl<'a> RecordView<'a> {
    /// The view of `record`.
    pub fn new(record: &'a InferenceRecord) -> RecordView<'a> {
        RecordView {
            record,
            received_at: rfc3339_us(record.received_at_us),
            input_fingerprint: record.input.fingerprint(),
        }
    }
}

/// Microseconds since the epoch as RFC 3339 UTC (empty when out of range).
pub fn rfc3339_us(micros: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// `GET /api/inferences/{id}` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct InferenceRecords<'a> {
    /// One record per model that logged this id, newest first.
    #[schema(value_type = Vec<InferenceRecordDoc>)]
    pub records: Vec<RecordView<'a>>,
}

/// `GET /api/inferences` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct InferencePage<'a> {
    /// The page's records, newest first.
    #[schema(value_type = Vec<InferenceRecordDoc>)]
    pub records: Vec<RecordView<'a>>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// One logged decision (documentation of the wire form).
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct InferenceRecordDoc {
    /// The client's id, or a generated UUIDv7; batch rows add `#0`, `#1`…
    request_id: String,
    /// Receive time, microseconds since the Unix epoch.
    received_at_us: i64,
    /// Receive time in RFC 3339 (UTC).
    received_at: String,
    /// Model name.
    model: String,
    /// Model version that produced the scores.
    version: String,
    /// The features the model scored, by name, after redaction (missing ones left out).
    #[schema(value_type = Object)]
    input: (),
    /// Hex SHA-256 of the canonical input JSON: equal fingerprints, equal inputs.
    input_fingerprint: String,
    /// The scores (one, or one per class).
    scores: Vec<f64>,
    /// The label, for models with labels.
    label: Option<String>,
    /// The threshold used, for binary probability models.
    threshold: Option<f64>,
    /// Server-side latency up to the log write, in microseconds.
    latency_us: i64,
    /// Whether the prediction cache answered.
    cached: bool,
    /// The API key's name (never the key).
    api_key_name: Option<String>,
    /// The W3C trace id of the request (`traceparent`), if any.
    trace_id: Option<String>,
}
