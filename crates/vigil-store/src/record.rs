//! The inference record, request ids and list cursors.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use crate::error::{Result, StoreError};
use crate::input::Input;

/// The longest request id accepted, in bytes.
pub const MAX_REQUEST_ID_BYTES: usize = 128;

/// The default page size of [`ListQuery`].
pub const DEFAULT_LIST_LIMIT: usize = 100;

/// The largest page size of [`ListQuery`].
pub const MAX_LIST_LIMIT: usize = 1000;

/// One scored item: what came in, what the model said, and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InferenceRecord {
    /// The client's id (or a generated UUIDv7); unique per model.
    pub request_id: String,
    /// When the request was received, in microseconds since the Unix epoch.
    pub received_at_us: i64,
    /// The model's name.
    pub model: String,
    /// The model's version that produced the scores.
    pub version: String,
    /// The input features as received, after redaction. Two requests with
    /// the same id and different inputs conflict.
    pub input: Input,
    /// The model's output scores.
    pub scores: Vec<f64>,
    /// The decision label, when the model has a threshold.
    pub label: Option<String>,
    /// The decision threshold used, if any.
    pub threshold: Option<f64>,
    /// Server-side latency in microseconds.
    pub latency_us: i64,
    /// Whether the answer came from the response cache.
    pub cached: bool,
    /// The name of the API key used (never the key itself).
    pub api_key_name: Option<String>,
    /// The trace id, when the request was traced.
    pub trace_id: Option<String>,
}

impl InferenceRecord {
    /// A record with empty outputs; fill them in before appending it.
    pub fn new(
        request_id: impl Into<String>,
        received_at_us: i64,
        model: impl Into<String>,
        version: impl Into<String>,
        input: impl Into<Input>,
    ) -> Self {
        InferenceRecord {
            request_id: request_id.into(),
            received_at_us,
            model: model.into(),
            version: version.into(),
            input: input.into(),
            scores: Vec::new(),
            label: None,
            threshold: None,
            latency_us: 0,
            cached: false,
            api_key_name: None,
            trace_id: None,
        }
    }

    /// Checks what a backend cannot store: a bad id, an empty model name or
    /// scores that are not finite.
    pub fn validate(&self) -> Result<()> {
        validate_request_id(&self.request_id)?;
        if self.model.is_empty() {
            return Err(StoreError::InvalidParameter {
                name: "model",
                reason: "must not be empty".into(),
            });
        }
        if self.scores.iter().any(|s| !s.is_finite()) {
            return Err(StoreError::InvalidParameter {
                name: "scores",
                reason: "must be finite numbers".into(),
            });
        }
        // PostgreSQL text cannot hold NUL; refusing it here keeps one
        // record from poisoning a group commit or the spill replay.
        let texts = [
            ("model", Some(self.model.as_str())),
            ("version", Some(self.version.as_str())),
            ("label", self.label.as_deref()),
            ("api_key_name", self.api_key_name.as_deref()),
            ("trace_id", self.trace_id.as_deref()),
        ];
        for (name, text) in texts {
            if text.is_some_and(|t| t.contains('\0')) {
                return Err(StoreError::InvalidParameter {
                    name,
                    reason: "must not contain NUL characters".into(),
                });
            }
        }
        Ok(())
    }
}

/// The result of a conditional append.
#[derive(Debug, Clone, PartialEq)]
pub enum AppendOutcome {
    /// The record was new and is now stored.
    Inserted,
    /// A record with the same model, id and input was already stored; it is
    /// returned so the caller answers with the stored scores.
    Replayed(Box<InferenceRecord>),
    /// A record with the same model and id but a different input exists.
    Conflict(Box<InferenceRecord>),
    /// The backend was down: the record went to the local spill queue and
    /// will be written when the backend is back. Answer as for `Inserted`.
    Spilled,
}

/// Filters and paging for [`crate::InferenceLog::list`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListQuery {
    /// Only this model.
    pub model: Option<String>,
    /// Only this model version.
    pub version: Option<String>,
    /// Only this label.
    pub label: Option<String>,
    /// Received at or after this time (µs since the epoch).
    pub from_us: Option<i64>,
    /// Received strictly before this time (µs since the epoch).
    pub to_us: Option<i64>,
    /// Page size; `None` means [`DEFAULT_LIST_LIMIT`], above [`MAX_LIST_LIMIT`] is an error.
    pub limit: Option<usize>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl ListQuery {
    /// The page size to use, or a bad-request error naming `limit`.
    pub fn effective_limit(&self) -> Result<usize> {
        match self.limit {
            None => Ok(DEFAULT_LIST_LIMIT),
            Some(0) => Err(StoreError::InvalidParameter {
                name: "limit",
                reason: "must be at least 1".into(),
            }),
            Some(n) if n > MAX_LIST_LIMIT => Err(StoreError::InvalidParameter {
                name: "limit",
                reason: format!("must be at most {MAX_LIST_LIMIT}, got {n}"),
            }),
            Some(n) => Ok(n),
        }
    }

    /// The decoded cursor, if any.
    pub fn decoded_cursor(&self) -> Result<Option<Cursor>> {
        self.cursor.as_deref().map(Cursor::decode).transpose()
    }
}

/// One page of records, newest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Page {
    /// The records of this page.
    pub records: Vec<InferenceRecord>,
    /// Pass this as `cursor` for the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// The position after which the next page starts: the sort key of the last
/// record returned, `(received_at_us, request_id, model)`, all descending.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// Receive time of the last record returned.
    pub received_at_us: i64,
    /// Request id of the last record returned.
    pub request_id: String,
    /// Model of the last record returned.
    pub model: String,
}

impl Cursor {
    /// The cursor positioned after `record`.
    pub fn after(record: &InferenceRecord) -> Self {
        Cursor {
            received_at_us: record.received_at_us,
            request_id: record.request_id.clone(),
            model: record.model.clone(),
        }
    }

    /// The opaque text form handed to clients.
    pub fn encode(&self) -> String {
        let tuple = (self.received_at_us, &self.request_id, &self.model);
        // Serialising a tuple of an integer and two strings cannot fail.
        let json = serde_json::to_vec(&tuple).unwrap_or_default();
        URL_SAFE_NO_PAD.encode(json)
    }

    /// Parses a cursor produced by [`Cursor::encode`].
    pub fn decode(text: &str) -> Result<Self> {
        let bytes = URL_SAFE_NO_PAD
            .decode(text)
            .map_err(|_| StoreError::InvalidCursor)?;
        let (received_at_us, request_id, model): (i64, String, String) =
            serde_json::from_slice(&bytes).map_err(|_| StoreError::InvalidCursor)?;
        Ok(Cursor {
            received_at_us,
            request_id,
            model,
        })
    }
}

/// Builds the next page from up to `limit + 1` rows fetched newest first.
pub(crate) fn page_from_rows(mut rows: Vec<InferenceRecord>, limit: usize) -> Page {
    let more = rows.len() > limit;
    rows.truncate(limit);
    let next_cursor = if more {
        rows.last().map(|r| Cursor::after(r).encode())
    } else {
        None
    };
    Page {
        records: rows,
        next_cursor,
    }
}

/// Checks a request id: 1 to 128 bytes, no control characters.
pub fn validate_request_id(id: &str) -> Result<()> {
    if id.is_empty() {
        return Err(StoreError::InvalidRequestId {
            reason: "must not be empty",
        });
    }
    if id.len() > MAX_REQUEST_ID_BYTES {
        return Err(StoreError::InvalidRequestId {
            reason: "longer than 128 bytes",
        });
    }
    if id.chars().any(char::is_control) {
        return Err(StoreError::InvalidRequestId {
            reason: "contains control characters",
        });
    }
    Ok(())
}

/// A new time-ordered request id (UUIDv7, hyphenated lowercase).
pub fn new_request_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Scores as little-endian f64 bytes: exact, and the same in both backends.
pub(crate) fn scores_to_bytes(scores: &[f64]) -> Vec<u8> {
    scores.iter().flat_map(|s| s.to_le_bytes()).collect()
}

/// The inverse of [`scores_to_bytes`].
pub(crate) fn scores_from_bytes(bytes: &[u8]) -> Result<Vec<f64>> {
    if !bytes.len().is_multiple_of(8) {
        return Err(StoreError::Corrupt("scores blob length".into()));
    }
    Ok(bytes
        .chunks_exact(8)
        .map(|c| {
            let mut a = [0u8; 8];
            a.copy_from_slice(c);
            f64::from_le_bytes(a)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_validated() {
        assert!(validate_request_id("pay-123").is_ok());
        assert!(validate_request_id(&"x".repeat(128)).is_ok());
        assert!(validate_request_id(&"x".repeat(129)).is_err());
        assert!(validate_request_id("a\nb").is_err());
        assert!(validate_request_id("a\u{7f}b").is_err());
        assert!(validate_request_id("").is_err());
        assert!(validate_request_id("café").is_ok());
    }

    #[test]
    fn generated_ids_are_valid_and_ordered() {
        let a = new_request_id();
        let b = new_request_id();
        assert!(validate_request_id(&a).is_ok());
        assert_eq!(a.len(), 36);
        assert!(a <= b);
    }

    #[test]
    fn cursor_round_trips_and_rejects_garbage() {
        let c = Cursor {
            received_at_us: 1_700_000_000_000_000,
            request_id: "id,with\"odd".into(),
            model: "fraud".into(),
        };
        assert_eq!(Cursor::decode(&c.encode()).ok(), Some(c));
        assert!(Cursor::decode("not a cursor!").is_err());
        assert!(Cursor::decode("e30").is_err());
    }

    #[test]
    fn scores_round_trip_exactly() {
        let s = vec![0.1, 1.0 / 3.0, -0.0, 1e-300];
        let back = scores_from_bytes(&scores_to_bytes(&s)).unwrap_or_default();
        assert_eq!(
            back.iter().map(|f| f.to_bits()).collect::<Vec<_>>(),
            s.iter().map(|f| f.to_bits()).collect::<Vec<_>>()
        );
        assert!(scores_from_bytes(&[1, 2, 3]).is_err());
    }

    #[test]
    fn limit_is_checked() {
        let mut q = ListQuery::default();
        assert_eq!(q.effective_limit().ok(), Some(DEFAULT_LIST_LIMIT));
        q.limit = Some(0);
        assert!(q.effective_limit().is_err());
        q.limit = Some(MAX_LIST_LIMIT + 1);
        assert!(q.effective_limit().is_err());
    }

    proptest::proptest! {
        #[test]
        fn cursor_round_trips(t in proptest::num::i64::ANY, id in ".{0,40}", model in "[a-z]{0,10}") {
            let c = Cursor { received_at_us: t, request_id: id, model };
            proptest::prop_assert_eq!(Cursor::decode(&c.encode()).ok(), Some(c));
        }

        #[test]
        fn cursor_decode_never_panics(text in ".{0,64}") {
            let _ = Cursor::decode(&text);
        }

        #[test]
        fn request_id_validation_matches_rules(id in "\\PC{0,70}|.{0,200}") {
            let ok = !id.is_empty() && id.len() <= 128 && !id.chars().any(char::is_control);
            proptest::prop_assert_eq!(validate_request_id(&id).is_ok(), ok);
        }
    }

    #[test]
    fn records_are_validated() {
        let mut r = InferenceRecord::new("a", 1, "m", "1", Input::default());
        assert!(r.validate().is_ok());
        r.scores = vec![f64::NAN];
        assert!(r.validate().is_err());
        r.scores = vec![0.5];
        r.label = Some("a\0b".into());
        let err = r
            .validate()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("`label`"), "{err}");
    }
}
