//! What a replica has not yet written to the shared store.
//!
//! Each record lands in the bucket of every tier it belongs to, so that a
//! long-range query reads coarse rows as the embedded store does. Rows of
//! the finest tier are appended (one per series and second per replica).
//! A coarse bucket (60 s and up) is kept open here as this replica's
//! running aggregate and upserted whenever it changed, so the shared store
//! holds one row per replica per coarse bucket and the newest second is in
//! every tier at once. A datum for a coarse bucket closed more than
//! [`GRACE_MS`] ago is appended as a row of its own.
//!
//! Bounded: appended rows wait at most `capacity` (the oldest are dropped
//! and counted when the shared store is away); open buckets are closed
//! [`GRACE_MS`] after they end.

use std::collections::{HashMap, VecDeque};

use crate::aggregate::Aggregate;
use crate::model::{Resolution, SeriesKey};
use crate::tsdb::{Record, TierConfig};

/// How long a coarse bucket stays open after it ends (late data merge into
/// it).
pub(crate) const GRACE_MS: i64 = 120_000;

/// One row of the shared store: a series' aggregate of one bucket of one
/// tier, from this replica.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Row {
    pub(crate) key: SeriesKey,
    /// Seconds per bucket (the tier's resolution).
    pub(crate) resolution_s: u32,
    /// The bucket's start, Unix milliseconds.
    pub(crate) bucket_ms: i64,
    pub(crate) aggregate: Aggregate,
    /// Whether the data were sent at 1 s resolution (the query rules of
    /// SEMANTICS.md §1.3 depend on it).
    pub(crate) high: bool,
    /// 0: this replica's running aggregate of the bucket (replaces the
    /// stored one); otherwise a row of its own, unique per replica.
    pub(crate) part: i64,
}

#[derive(Debug)]
struct Open {
    aggregate: Aggregate,
    high: bool,
    dirty: bool,
}

type BucketKey = (SeriesKey, u32, i64);

/// Rows waiting for the shared store.
#[derive(Debug)]
pub(crate) struct Outbox {
    appended: VecDeque<Row>,
    open: HashMap<BucketKey, Open>,
    capacity: usize,
    dropped: u64,
    next_part: i64,
}

impl Outbox {
    /// An outbox holding at most `capacity` appended rows.
    pub(crate) fn new(capacity: usize) -> Self {
        Outbox {
            appended: VecDeque::new(),
            open: HashMap::new(),
            capacity: capacity.max(1),
            dropped: 0,
            next_part: 1,
        }
    }

    /// Adds one batch of records (a tick's drain or one API put) at
    /// `now_ms`. Returns the number of rows dropped to stay within the
    /// capacity.
    pub(crate) fn push(&mut self, records: &[Record], tiers: &[TierConfig], now_ms: i64) -> usize {
        let finest = tiers.first().map_or(1, |t| t.resolution_s);
        let mut appended = Vec::new();
        for r in records {
            let res = r.resolution.seconds();
            let high = r.resolution == Resolution::High;
            for t in tiers.iter().filter(|t| t.resolution_s >= res) {
                let width = i64::from(t.resolution_s) * 1000;
                let bucket_ms = r.timestamp_ms.div_euclid(width) * width;
                let key = (r.key.clone(), t.resolution_s, bucket_ms);
                let late = bucket_ms + width + GRACE_MS < now_ms;
                if t.resolution_s == finest || (late && !self.open.contains_key(&key)) {
                    appended.push(Row {
                        key: r.key.clone(),
                        resolution_s: t.resolution_s,
                        bucket_ms,
                        aggregate: r.aggregate.clone(),
                        high,
                        part: 0,
                    });
                    continue;
                }
                match self.open.entry(key) {
                    std::collections::hash_map::Entry::Occupied(mut e) => {
                        let open = e.get_mut();
                        open.aggregate.merge(&r.aggregate);
                        open.high |= high;
                        open.dirty = true;
                    }
                    std::collections::hash_map::Entry::Vacant(e) => {
                        e.insert(Open {
                            aggregate: r.aggregate.clone(),
                            high,
                            dirty: true,
                        });
                    }
                }
            }
        }
        self.appended.extend(merge_rows(appended));
        self.shed()
    }

    /// Takes every appended row (merged per series, tier and bucket, each
    /// given its part) and the running aggregate of every open bucket that
    /// changed; closes the buckets that ended [`GRACE_MS`] before `now_ms`.
    pub(crate) fn take(&mut self, now_ms: i64) -> Vec<Row> {
        let mut rows = merge_rows(self.appended.drain(..));
        for row in &mut rows {
            if row.part == 0 {
                row.part = self.next_part;
                self.next_part += 1;
            }
        }
        for ((key, resolution_s, bucket_ms), open) in &mut self.open {
            if open.dirty {
                open.dirty = false;
                rows.push(Row {
                    key: key.clone(),
                    resolution_s: *resolution_s,
                    bucket_ms: *bucket_ms,
                    aggregate: open.aggregate.clone(),
                    high: open.high,
                    part: 0,
                });
            }
        }
        self.open.retain(|(_, res, bucket), open| {
            open.dirty || *bucket + i64::from(*res) * 1000 + GRACE_MS >= now_ms
        });
        rows
    }

    /// Puts rows that could not be written back: appended rows in front of
    /// newer ones (keeping their parts), running aggregates marked changed.
    /// Returns the number of rows dropped to stay within the capacity.
    pub(crate) fn restore(&mut self, rows: Vec<Row>) -> usize {
        for row in rows.into_iter().rev() {
            if row.part != 0 {
                self.appended.push_front(row);
                continue;
            }
            // The open bucket holds at least this aggregate (it may have
            // grown since); if it was closed meanwhile, reopen it.
            self.open
                .entry((row.key, row.resolution_s, row.bucket_ms))
                .and_modify(|open| open.dirty = true)
                .or_insert(Open {
                    aggregate: row.aggregate,
                    high: row.high,
                    dirty: true,
                });
        }
        self.shed()
    }

    /// Appended rows waiting and open buckets.
    pub(crate) fn len(&self) -> (usize, usize) {
        (self.appended.len(), self.open.len())
    }

    /// Rows dropped since the start.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Drops the oldest appended rows until the capacity holds.
    fn shed(&mut self) -> usize {
        let excess = self.appended.len().saturating_sub(self.capacity);
        self.appended.drain(..excess);
        self.dropped += excess as u64;
        excess
    }
}

/// Merges rows of the same series, tier, bucket and part (keeping
/// first-seen order).
fn merge_rows(rows: impl IntoIterator<Item = Row>) -> Vec<Row> {
    let mut at: HashMap<(SeriesKey, u32, i64, i64), usize> = HashMap::new();
    let mut out: Vec<Row> = Vec::new();
    for row in rows {
        match at.entry((row.key.clone(), row.resolution_s, row.bucket_ms, row.part)) {
            std::collections::hash_map::Entry::Occupied(e) => {
                let have = &mut out[*e.get()];
                have.aggregate.merge(&row.aggregate);
                have.high |= row.high;
            }
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(out.len());
                out.push(row);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tsdb::TsdbConfig;

    const T0: i64 = 1_764_547_200_000; // a whole hour

    fn record(ts: i64, value: f64, resolution: Resolution) -> Record {
        Record {
            key: SeriesKey::new("Ns", "M"),
            timestamp_ms: ts,
            aggregate: Aggregate::from_value(value),
            resolution,
        }
    }

    fn summary(rows: &[Row]) -> Vec<(u32, i64, f64, bool, bool)> {
        let mut out: Vec<_> = rows
            .iter()
            .map(|r| {
                (
                    r.resolution_s,
                    r.bucket_ms - T0,
                    r.aggregate.sum,
                    r.high,
                    r.part == 0,
                )
            })
            .collect();
        out.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
        out
    }

    #[test]
    fn a_second_is_appended_and_the_coarse_buckets_are_running_aggregates() {
        let tiers = TsdbConfig::default().tiers;
        let mut outbox = Outbox::new(100);
        let now = T0 + 62_000;
        outbox.push(&[record(T0 + 61_500, 2.0, Resolution::High)], &tiers, now);
        outbox.push(
            &[record(T0 + 61_500, 3.0, Resolution::Standard)],
            &tiers,
            now,
        );
        let rows = outbox.take(now);
        assert_eq!(
            summary(&rows),
            vec![
                (1, 61_000, 2.0, true, false),
                (60, 60_000, 5.0, true, true),
                (300, 0, 5.0, true, true),
                (3600, 0, 5.0, true, true),
            ]
        );
        // Another second: its own 1 s row; the coarse rows carry the running
        // totals (they replace what this replica stored before).
        outbox.push(
            &[record(T0 + 62_000, 4.0, Resolution::High)],
            &tiers,
            now + 1000,
        );
        let rows = outbox.take(now + 1000);
        assert_eq!(
            summary(&rows),
            vec![
                (1, 62_000, 4.0, true, false),
                (60, 60_000, 9.0, true, true),
                (300, 0, 9.0, true, true),
                (3600, 0, 9.0, true, true),
            ]
        );
        // Nothing changed: nothing to write.
        assert!(outbox.take(now + 2000).is_empty());
        // Appended rows get distinct parts.
        assert_eq!(outbox.next_part, 3);
    }

    #[test]
    fn rows_of_one_bucket_merge_with_their_sketches() {
        let tiers = TsdbConfig::default().tiers;
        let mut outbox = Outbox::new(100);
        for (i, v) in [10.0, 20.0, 30.0].into_iter().enumerate() {
            outbox.push(
                &[record(T0 + i as i64 * 1000, v, Resolution::High)],
                &tiers,
                T0 + 3000,
            );
        }
        let rows = outbox.take(T0 + 3000);
        let minute = rows
            .iter()
            .find(|r| r.resolution_s == 60)
            .unwrap_or_else(|| panic!("no 60 s row"));
        assert_eq!(minute.aggregate.count, 3.0);
        assert_eq!(minute.aggregate.sum, 60.0);
        assert_eq!((minute.aggregate.min, minute.aggregate.max), (10.0, 30.0));
        let p50 = crate::statistic::Statistic::Percentile(50.0).value(&minute.aggregate);
        assert!(p50.is_some_and(|v| (v - 20.0).abs() < 0.5), "{p50:?}");
        assert_eq!(rows.iter().filter(|r| r.resolution_s == 1).count(), 3);
    }

    #[test]
    fn closed_buckets_leave_and_late_data_become_rows_of_their_own() {
        let tiers = TsdbConfig::default().tiers;
        let mut outbox = Outbox::new(100);
        outbox.push(
            &[record(T0 + 1_000, 1.0, Resolution::High)],
            &tiers,
            T0 + 2_000,
        );
        outbox.take(T0 + 2_000);
        assert_eq!(outbox.len(), (0, 3));
        // The minute ended and its grace passed: it closes; the 300 s and
        // 3600 s buckets stay open.
        outbox.take(T0 + 60_000 + GRACE_MS + 1);
        assert_eq!(outbox.len(), (0, 2));
        // A late datum for the closed minute: appended, not a reset of the
        // running aggregate the store holds.
        outbox.push(
            &[record(T0 + 2_000, 5.0, Resolution::High)],
            &tiers,
            T0 + 200_000,
        );
        let rows = outbox.take(T0 + 200_000);
        assert_eq!(
            summary(&rows),
            vec![
                (1, 2_000, 5.0, true, false),
                (60, 0, 5.0, true, false),
                (300, 0, 6.0, true, true),
                (3600, 0, 6.0, true, true),
            ]
        );
    }

    #[test]
    fn the_outbox_drops_its_oldest_rows_past_its_capacity_and_a_failed_write_goes_back() {
        let tiers = TsdbConfig::default().tiers;
        let mut outbox = Outbox::new(2);
        let now = T0 + 10_000;
        for i in 0..3 {
            let dropped = outbox.push(&[record(T0 + i * 1000, 1.0, Resolution::High)], &tiers, now);
            assert_eq!(dropped, usize::from(i == 2));
        }
        assert_eq!(outbox.dropped(), 1);
        let rows = outbox.take(now);
        assert_eq!(rows.len(), 2 + 3, "two seconds and three running buckets");
        let parts: Vec<i64> = rows
            .iter()
            .filter(|r| r.part != 0)
            .map(|r| r.part)
            .collect();
        // The write failed: everything goes back, the parts kept (a retry
        // of a write that did land changes nothing).
        outbox.push(&[record(T0 + 3000, 1.0, Resolution::High)], &tiers, now);
        assert_eq!(
            outbox.restore(rows),
            1,
            "capacity 2: the oldest second goes"
        );
        assert_eq!(outbox.dropped(), 2);
        let again = outbox.take(now);
        let seconds: Vec<(i64, i64)> = again
            .iter()
            .filter(|r| r.resolution_s == 1)
            .map(|r| (r.bucket_ms - T0, r.part))
            .collect();
        assert_eq!(seconds, vec![(2000, parts[1]), (3000, 3)]);
        let minute = again.iter().find(|r| r.resolution_s == 60);
        assert_eq!(minute.map(|r| r.aggregate.count), Some(4.0));
    }
}
