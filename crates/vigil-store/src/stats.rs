//! Counters of the inference log, as plain atomics read by the metrics layer.

use std::sync::atomic::{AtomicU64, Ordering};

/// Metric names for the store's counters, in one place.
pub mod metric_names {
    /// Records written to the backend (inserted).
    pub const RECORDS_WRITTEN: &str = "vigil_store_records_written_total";
    /// Appends answered with the stored record (idempotent replays).
    pub const RECORDS_REPLAYED_IDEMPOTENT: &str = "vigil_store_idempotent_replays_total";
    /// Records put into the spill queue (enqueued).
    pub const RECORDS_SPILLED: &str = "vigil_store_spill_enqueued_total";
    /// Records replayed from the spill queue into the backend (dequeued).
    pub const RECORDS_UNSPILLED: &str = "vigil_store_spill_replayed_total";
    /// Spilled records dropped by the `drop_oldest` policy.
    pub const RECORDS_DROPPED: &str = "vigil_store_spill_dropped_total";
    /// Appends rejected because the spill queue was full.
    pub const RECORDS_REJECTED: &str = "vigil_store_spill_rejected_total";
    /// Conditional-insert conflicts (same id, different input).
    pub const CONFLICTS: &str = "vigil_store_conflicts_total";
    /// Backend errors seen by the store.
    pub const STORE_ERRORS: &str = "vigil_store_errors_total";
    /// Corrupt or torn spill records skipped.
    pub const SPILL_CORRUPT: &str = "vigil_store_spill_corrupt_total";
    /// Rows deleted by the retention sweeper.
    pub const RETENTION_DELETED: &str = "vigil_store_retention_deleted_total";
    /// Sum of append latencies, in microseconds.
    pub const WRITE_LATENCY_US_SUM: &str = "vigil_store_write_latency_us_sum";
    /// Number of appends timed.
    pub const WRITE_LATENCY_COUNT: &str = "vigil_store_write_latency_count";
}

/// Upper bounds (µs) of the write-latency histogram buckets; the last
/// bucket counts everything above the last bound.
pub const WRITE_LATENCY_BUCKETS_US: [u64; 8] = [100, 250, 500, 1000, 2500, 5000, 10_000, 50_000];

/// Live counters; cheap to bump from any task.
#[derive(Debug, Default)]
pub struct StoreStats {
    pub(crate) records_written: AtomicU64,
    pub(crate) idempotent_replays: AtomicU64,
    pub(crate) records_spilled: AtomicU64,
    pub(crate) records_unspilled: AtomicU64,
    pub(crate) records_dropped: AtomicU64,
    pub(crate) records_rejected: AtomicU64,
    pub(crate) conflicts: AtomicU64,
    pub(crate) store_errors: AtomicU64,
    pub(crate) spill_corrupt: AtomicU64,
    pub(crate) retention_deleted: AtomicU64,
    pub(crate) write_latency_us_sum: AtomicU64,
    pub(crate) write_latency_count: AtomicU64,
    pub(crate) write_latency_buckets: [AtomicU64; WRITE_LATENCY_BUCKETS_US.len() + 1],
}

/// A point-in-time copy of [`StoreStats`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreStatsSnapshot {
    /// See [`metric_names::RECORDS_WRITTEN`].
    pub records_written: u64,
    /// See [`metric_names::RECORDS_REPLAYED_IDEMPOTENT`].
    pub idempotent_replays: u64,
    /// See [`metric_names::RECORDS_SPILLED`].
    pub records_spilled: u64,
    /// See [`metric_names::RECORDS_UNSPILLED`].
    pub records_unspilled: u64,
    /// See [`metric_names::RECORDS_DROPPED`].
    pub records_dropped: u64,
    /// See [`metric_names::RECORDS_REJECTED`].
    pub records_rejected: u64,
    /// See [`metric_names::CONFLICTS`].
    pub conflicts: u64,
    /// See [`metric_names::STORE_ERRORS`].
    pub store_errors: u64,
    /// See [`metric_names::SPILL_CORRUPT`].
    pub spill_corrupt: u64,
    /// See [`metric_names::RETENTION_DELETED`].
    pub retention_deleted: u64,
    /// See [`metric_names::WRITE_LATENCY_US_SUM`].
    pub write_latency_us_sum: u64,
    /// See [`metric_names::WRITE_LATENCY_COUNT`].
    pub write_latency_count: u64,
    /// Per-bucket (non-cumulative) counts for [`WRITE_LATENCY_BUCKETS_US`] plus overflow.
    pub write_latency_buckets: Vec<u64>,
}

impl StoreStats {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn observe_write_latency(&self, micros: u64) {
        Self::add(&self.write_latency_us_sum, micros);
        Self::add(&self.write_latency_count, 1);
        let idx = WRITE_LATENCY_BUCKETS_US
            .iter()
            .position(|b| micros <= *b)
            .unwrap_or(WRITE_LATENCY_BUCKETS_US.len());
        if let Some(bucket) = self.write_latency_buckets.get(idx) {
            Self::add(bucket, 1);
        }
    }

    /// Copies every counter.
    pub fn snapshot(&self) -> StoreStatsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StoreStatsSnapshot {
            records_written: get(&self.records_written),
            idempotent_replays: get(&self.idempotent_replays),
            records_spilled: get(&self.records_spilled),
            records_unspilled: get(&self.records_unspilled),
            records_dropped: get(&self.records_dropped),
            records_rejected: get(&self.records_rejected),
            conflicts: get(&self.conflicts),
            store_errors: get(&self.store_errors),
            spill_corrupt: get(&self.spill_corrupt),
            retention_deleted: get(&self.retention_deleted),
            write_latency_us_sum: get(&self.write_latency_us_sum),
            write_latency_count: get(&self.write_latency_count),
            write_latency_buckets: self.write_latency_buckets.iter().map(get).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_lands_in_buckets() {
        let s = StoreStats::default();
        s.observe_write_latency(50);
        s.observe_write_latency(300);
        s.observe_write_latency(1_000_000);
        let snap = s.snapshot();
        assert_eq!(snap.write_latency_count, 3);
        assert_eq!(snap.write_latency_us_sum, 1_000_350);
        assert_eq!(snap.write_latency_buckets[0], 1);
        assert_eq!(snap.write_latency_buckets[2], 1);
        assert_eq!(snap.write_latency_buckets[8], 1);
    }
}
