//! Rows of `inferences`: the statements, and records to and from rows.

use std::sync::LazyLock;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::error::Result;
use crate::input::Input;
use crate::record::{AppendOutcome, InferenceRecord, scores_from_bytes, scores_to_bytes};
use crate::sql::COLUMNS;

/// The idempotency lookup, built once.
static SELECT_ONE_SQL: LazyLock<String> = LazyLock::new(|| {
    format!("SELECT {COLUMNS} FROM inferences WHERE request_id = ?1 AND model = ?2")
});

/// The conditional insert, built once: a record applied twice (a journal
/// replayed after a crash) is a no-op the second time.
static INSERT_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO inferences ({COLUMNS}) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) \
         ON CONFLICT (request_id, model) DO NOTHING"
    )
});

/// Every record with this id, newest first, as `get` returns them.
pub(super) const SELECT_BY_ID_ORDER: &str = "ORDER BY received_at_us DESC, model DESC";

/// Inserts `record` unless its key is stored; returns whether it was new.
pub(super) fn insert(conn: &Connection, r: &InferenceRecord) -> Result<bool> {
    let mut insert = conn.prepare_cached(&INSERT_SQL)?;
    let inserted = insert.execute(params![
        r.request_id,
        r.received_at_us,
        r.model,
        r.version,
        r.input.as_bytes(),
        scores_to_bytes(&r.scores),
        r.label,
        r.threshold,
        r.latency_us,
        r.cached,
        r.api_key_name,
        r.trace_id,
    ])?;
    Ok(inserted == 1)
}

/// Replayed when the inputs match, otherwise a conflict.
pub(crate) fn judge(new: &InferenceRecord, existing: InferenceRecord) -> AppendOutcome {
    if existing.input == new.input {
        AppendOutcome::Replayed(Box::new(existing))
    } else {
        AppendOutcome::Conflict(Box::new(existing))
    }
}

pub(super) fn delete_batch(
    conn: &mut Connection,
    before_us: i64,
    batch_size: usize,
) -> Result<u64> {
    let limit = i64::try_from(batch_size).unwrap_or(i64::MAX);
    let deleted = conn.execute(
        "DELETE FROM inferences WHERE rowid IN \
         (SELECT rowid FROM inferences WHERE received_at_us < ?1 LIMIT ?2)",
        params![before_us, limit],
    )?;
    Ok(deleted as u64)
}

pub(super) fn select_one(
    conn: &Connection,
    model: &str,
    request_id: &str,
) -> Result<Option<InferenceRecord>> {
    let mut stmt = conn.prepare_cached(&SELECT_ONE_SQL)?;
    stmt.query_row(params![request_id, model], raw_row)
        .optional()?
        .map(into_record)
        .transpose()
}

/// A row as read, before the input and scores are decoded.
pub(super) struct RawRow {
    record: InferenceRecord,
    input: Vec<u8>,
    scores: Vec<u8>,
}

pub(super) fn raw_row(row: &Row<'_>) -> rusqlite::Result<RawRow> {
    Ok(RawRow {
        record: InferenceRecord {
            request_id: row.get(0)?,
            received_at_us: row.get(1)?,
            model: row.get(2)?,
            version: row.get(3)?,
            input: Input::default(),
            scores: Vec::new(),
            label: row.get(6)?,
            threshold: row.get(7)?,
            latency_us: row.get(8)?,
            cached: row.get(9)?,
            api_key_name: row.get(10)?,
            trace_id: row.get(11)?,
        },
        // Rows from before schema v2 hold the input as JSON text.
        input: match row.get_ref(4)? {
            ValueRef::Text(bytes) | ValueRef::Blob(bytes) => bytes.to_vec(),
            other => {
                let kind = other.data_type();
                return Err(rusqlite::Error::InvalidColumnType(4, "input".into(), kind));
            }
        },
        scores: row.get(5)?,
    })
}

pub(super) fn into_record(raw: RawRow) -> Result<InferenceRecord> {
    let mut record = raw.record;
    record.input = Input::from_stored(raw.input)?;
    record.scores = scores_from_bytes(&raw.scores)?;
    Ok(record)
}
