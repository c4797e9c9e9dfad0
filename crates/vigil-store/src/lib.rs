//! Vigil's inference log: every scoring decision kept, idempotent by
//! request id.
//!
//! - [`InferenceLog`] is the trait the server holds as `Arc<dyn InferenceLog>`.
//! - [`SqliteLog`] (embedded default: appends are journaled to a segment log
//!   and acknowledged there, an indexer thread applies them to SQLite in
//!   large transactions) and [`PostgresLog`] (scale-out: a group commit
//!   before the answer) implement it; the key is unique in both, so retries
//!   and replicas never produce two records for one id.
//! - [`Store`] wraps a backend with the spill queue (backend outage), the
//!   retention sweeper and the counters; it is what the server opens.
//! - [`redact`], [`export`] and the record helpers are pure and usable alone.

pub mod clock;
mod codec;
pub mod config;
pub mod error;
pub mod export;
pub mod input;
pub mod postgres;
pub mod record;
pub mod redact;
pub mod retention;
pub mod spill;
mod sql;
pub mod sqlite;
pub mod stats;
pub mod store;
#[cfg(test)]
mod test_support;

use async_trait::async_trait;

pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{Durability, SpillPolicy, StoreConfig};
pub use error::{ErrorCode, Result, StoreError};

pub use input::{Input, InputWriter};
pub use postgres::PostgresLog;
pub use record::{
    AppendOutcome, Cursor, InferenceRecord, ListQuery, Page, new_request_id, validate_request_id,
};
pub use redact::{RedactRule, Redactor};
pub use sqlite::SqliteLog;
pub use stats::{StoreStats, StoreStatsSnapshot, metric_names};
pub use store::Store;

/// The inference log, as the server sees it.
///
/// Records are keyed by `(model, request_id)`. Appends are conditional
/// inserts decided by the database, so concurrent appends of one key from
/// any number of tasks or replicas yield exactly one [`AppendOutcome::Inserted`].
#[async_trait]
pub trait InferenceLog: Send + Sync + std::fmt::Debug {
    /// The stored record for this model and id, for the idempotency check
    /// before scoring.
    async fn lookup(&self, model: &str, request_id: &str) -> Result<Option<InferenceRecord>>;

    /// Conditionally inserts `record`: [`AppendOutcome::Inserted`] when the
    /// key is new, otherwise the stored record as `Replayed` (same input
    /// fingerprint) or `Conflict` (different input). Returns once the record
    /// is as durable as the configured [`Durability`] promises.
    async fn append(&self, record: InferenceRecord) -> Result<AppendOutcome> {
        let mut outcomes = self.append_batch(vec![record]).await?;
        outcomes
            .pop()
            .ok_or_else(|| StoreError::Unavailable("empty append result".into()))
    }

    /// Appends many records in one group commit; one outcome per record, in
    /// order. A later record with the key of an earlier one in the same batch
    /// is judged against the earlier one.
    async fn append_batch(&self, records: Vec<InferenceRecord>) -> Result<Vec<AppendOutcome>>;

    /// [`InferenceLog::append_batch`] for records whose ids were generated
    /// for them just now (UUIDv7: no log can hold them yet), so a backend
    /// may skip reading its stored records to check them. By default the
    /// same as `append_batch`.
    async fn append_fresh_batch(
        &self,
        records: Vec<InferenceRecord>,
    ) -> Result<Vec<AppendOutcome>> {
        self.append_batch(records).await
    }

    /// Every record with this id, across models, newest first. An id is
    /// unique per model only, so more than one record can come back; the
    /// HTTP API shows the first and 404s on an empty list.
    async fn get(&self, request_id: &str) -> Result<Vec<InferenceRecord>>;

    /// Records matching `query`, newest first (by receive time, then id,
    /// then model), one page at a time.
    async fn list(&self, query: &ListQuery) -> Result<Page>;

    /// Deletes up to `batch_size` records received before `before_us`;
    /// returns how many were deleted (call again while it returns `batch_size`).
    async fn delete_expired(&self, before_us: i64, batch_size: usize) -> Result<u64>;
}
