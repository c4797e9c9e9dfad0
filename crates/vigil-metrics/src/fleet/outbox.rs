//! What a replica has not yet written to the shared store: each second's
//! records expanded into the bucket of every tier they belong to (so that
//! a long-range query reads coarse rows, as the embedded store does) and
//! merged per bucket. Bounded: when the shared store is away the oldest
//! batches are dropped and counted, so memory never grows without limit.

use std::collections::{HashMap, VecDeque};

use crate::aggregate::Aggregate;
use crate::model::{Resolution, SeriesKey};
use crate::tsdb::{Record, TierConfig};

/// One row of the shared store: a series' aggregate of one bucket of one
/// tier.
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
}

/// Rows waiting for the shared store, oldest batch first.
#[derive(Debug)]
pub(crate) struct Outbox {
    batches: VecDeque<Vec<Row>>,
    rows: usize,
    capacity: usize,
    dropped: u64,
}

impl Outbox {
    /// An outbox holding at most `capacity` rows.
    pub(crate) fn new(capacity: usize) -> Self {
        Outbox {
            batches: VecDeque::new(),
            rows: 0,
            capacity: capacity.max(1),
            dropped: 0,
        }
    }

    /// Adds one batch of records (a tick's drain or one API put). Returns
    /// the number of rows dropped to stay within the capacity.
    pub(crate) fn push(&mut self, records: &[Record], tiers: &[TierConfig]) -> usize {
        let batch = expand(records, tiers);
        if batch.is_empty() {
            return 0;
        }
        self.rows += batch.len();
        self.batches.push_back(batch);
        self.shed()
    }

    /// Takes every waiting row, merged per (series, tier, bucket).
    pub(crate) fn take(&mut self) -> Vec<Row> {
        self.rows = 0;
        let batches: Vec<Vec<Row>> = self.batches.drain(..).collect();
        merge_rows(batches.into_iter().flatten())
    }

    /// Puts rows that could not be written back in front of newer ones.
    /// Returns the number of rows dropped to stay within the capacity.
    pub(crate) fn restore(&mut self, rows: Vec<Row>) -> usize {
        if rows.is_empty() {
            return 0;
        }
        self.rows += rows.len();
        self.batches.push_front(rows);
        self.shed()
    }

    /// Rows waiting.
    pub(crate) fn len(&self) -> usize {
        self.rows
    }

    /// Rows dropped since the start.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Drops the oldest rows until the capacity holds.
    fn shed(&mut self) -> usize {
        let mut dropped = 0;
        while self.rows > self.capacity {
            let Some(front) = self.batches.front_mut() else {
                break;
            };
            let excess = self.rows - self.capacity;
            if front.len() <= excess {
                let n = front.len();
                self.batches.pop_front();
                self.rows -= n;
                dropped += n;
            } else {
                // Rows of a batch are in no particular age order; cutting
                // its head is as good as any.
                front.drain(..excess);
                self.rows -= excess;
                dropped += excess;
            }
        }
        self.dropped += dropped as u64;
        dropped
    }
}

/// Each record in the bucket of its own tier and of every coarser one,
/// merged per bucket.
fn expand(records: &[Record], tiers: &[TierConfig]) -> Vec<Row> {
    let rows = records.iter().flat_map(|r| {
        let res = r.resolution.seconds();
        tiers
            .iter()
            .filter(move |t| t.resolution_s >= res)
            .map(move |t| {
                let bucket = i64::from(t.resolution_s) * 1000;
                Row {
                    key: r.key.clone(),
                    resolution_s: t.resolution_s,
                    bucket_ms: r.timestamp_ms.div_euclid(bucket) * bucket,
                    aggregate: r.aggregate.clone(),
                    high: r.resolution == Resolution::High,
                }
            })
    });
    merge_rows(rows)
}

/// Merges rows of the same series, tier and bucket (keeping first-seen
/// order).
pub(crate) fn merge_rows(rows: impl IntoIterator<Item = Row>) -> Vec<Row> {
    let mut at: HashMap<(SeriesKey, u32, i64), usize> = HashMap::new();
    let mut out: Vec<Row> = Vec::new();
    for row in rows {
        match at.entry((row.key.clone(), row.resolution_s, row.bucket_ms)) {
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

    #[test]
    fn a_one_second_point_lands_in_every_tier_and_a_standard_one_skips_the_finest() {
        let tiers = TsdbConfig::default().tiers;
        let mut outbox = Outbox::new(100);
        outbox.push(&[record(T0 + 61_500, 2.0, Resolution::High)], &tiers);
        outbox.push(&[record(T0 + 61_500, 3.0, Resolution::Standard)], &tiers);
        let rows = outbox.take();
        let got: Vec<(u32, i64, f64, bool)> = rows
            .iter()
            .map(|r| (r.resolution_s, r.bucket_ms - T0, r.aggregate.sum, r.high))
            .collect();
        assert_eq!(
            got,
            vec![
                (1, 61_000, 2.0, true),
                (60, 60_000, 5.0, true),
                (300, 0, 5.0, true),
                (3600, 0, 5.0, true),
            ]
        );
        assert_eq!(outbox.len(), 0);
    }

    #[test]
    fn rows_of_one_bucket_merge_with_their_sketches() {
        let tiers = TsdbConfig::default().tiers;
        let mut outbox = Outbox::new(100);
        for (i, v) in [10.0, 20.0, 30.0].into_iter().enumerate() {
            outbox.push(&[record(T0 + i as i64 * 1000, v, Resolution::High)], &tiers);
        }
        let rows = outbox.take();
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
    fn the_outbox_drops_its_oldest_rows_past_its_capacity_and_counts_them() {
        let tiers = TsdbConfig::default().tiers;
        let mut outbox = Outbox::new(6);
        // Each second-point gives 4 rows (1, 60, 300, 3600 s).
        assert_eq!(outbox.push(&[record(T0, 1.0, Resolution::High)], &tiers), 0);
        assert_eq!(
            outbox.push(&[record(T0 + 1000, 2.0, Resolution::High)], &tiers),
            2
        );
        assert_eq!(outbox.len(), 6);
        assert_eq!(outbox.dropped(), 2);
        // A failed write goes back in front; again bounded.
        let rows = outbox.take();
        assert_eq!(
            rows.len(),
            4,
            "the coarse rows of both seconds merged: {rows:?}"
        );
        assert_eq!(
            outbox.push(&[record(T0 + 2000, 4.0, Resolution::High)], &tiers),
            0
        );
        assert_eq!(outbox.restore(rows), 2);
        assert_eq!(outbox.len(), 6);
        assert_eq!(outbox.dropped(), 4);
        // The newest batch is whole.
        let rows = outbox.take();
        assert!(
            rows.iter()
                .any(|r| r.resolution_s == 1 && r.bucket_ms == T0 + 2000)
        );
    }
}
