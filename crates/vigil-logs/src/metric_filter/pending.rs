//! What the tap gathered since the last flush: per filter, an aggregate
//! per series and minute; per group and minute, which default-bearing
//! filters saw events and whether any produced a datapoint.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use vigil_metrics::tsdb::Record;
use vigil_metrics::{Aggregate, Resolution};

use super::definition::MetricFilter;

/// One minute, in ms.
pub const MINUTE_MS: i64 = 60_000;
/// A minute is closed (its defaults are owed) this long after it ends:
/// batches of events arrive a little after their timestamps.
pub const CLOSE_AFTER_MS: i64 = 10_000;
/// How long a closed minute is remembered, so that late events in it do
/// not bring its default a second time.
pub const REMEMBER_MS: i64 = 3_600_000;

/// The start of the minute `ts` falls in.
pub fn minute_of(ts: i64) -> i64 {
    ts.div_euclid(MINUTE_MS) * MINUTE_MS
}

/// A match worth a datapoint: which filter (index into the batch's
/// filters), its minute, value and dimension values.
pub(crate) type Hit = (usize, i64, f64, Vec<String>);

#[derive(Debug, Default)]
pub(crate) struct Pending {
    /// Keyed by the filter's address (the `Arc` is held, so it is unique).
    data: HashMap<usize, FilterData>,
    /// Group → minute → one slot per default-bearing filter that saw
    /// events of the group in that minute.
    watch: HashMap<String, BTreeMap<i64, Vec<Slot>>>,
}

#[derive(Debug)]
struct FilterData {
    filter: Arc<MetricFilter>,
    series: HashMap<(Vec<String>, i64), Aggregate>,
}

#[derive(Debug)]
struct Slot {
    filter: Arc<MetricFilter>,
    /// A datapoint came from this filter in this minute.
    matched: bool,
    /// Its default was emitted (or is no longer owed).
    settled: bool,
}

fn add(agg: &mut Aggregate, v: f64) {
    agg.count += 1.0;
    agg.sum += v;
    agg.min = agg.min.min(v);
    agg.max = agg.max.max(v);
    if let Some(s) = &mut agg.sketch {
        s.add(v, 1);
    }
}

impl Pending {
    /// Merges one batch's results for `group`: the `hits` of `filters`,
    /// and for each minute the batch had events in, which default-bearing
    /// filters (`with_default` indexes `filters`) produced a datapoint.
    pub(crate) fn merge(
        &mut self,
        group: &str,
        filters: &[Arc<MetricFilter>],
        hits: Vec<Hit>,
        with_default: &[usize],
        minutes: BTreeMap<i64, Vec<bool>>,
    ) {
        for (i, minute, value, dims) in hits {
            let filter = &filters[i];
            let data = self
                .data
                .entry(Arc::as_ptr(filter) as usize)
                .or_insert_with(|| FilterData {
                    filter: Arc::clone(filter),
                    series: HashMap::new(),
                });
            match data.series.entry((dims, minute)) {
                Entry::Occupied(mut agg) => add(agg.get_mut(), value),
                Entry::Vacant(slot) => {
                    slot.insert(Aggregate::from_value(value));
                }
            }
        }
        if with_default.is_empty() || minutes.is_empty() {
            return;
        }
        let watch = self.watch.entry(group.to_owned()).or_default();
        for (minute, matched) in minutes {
            let slots = watch.entry(minute).or_default();
            for (&i, matched) in with_default.iter().zip(matched) {
                let filter = &filters[i];
                match slots.iter_mut().find(|s| Arc::ptr_eq(&s.filter, filter)) {
                    Some(slot) => slot.matched |= matched,
                    None => slots.push(Slot {
                        filter: Arc::clone(filter),
                        matched,
                        settled: false,
                    }),
                }
            }
        }
    }

    /// Whether a flush would have nothing to write (no aggregate, no
    /// default still owed).
    pub(crate) fn is_idle(&self) -> bool {
        self.data.is_empty()
            && self
                .watch
                .values()
                .flat_map(BTreeMap::values)
                .flatten()
                .all(|s| s.settled)
    }

    /// Forgets `group`'s minutes (it was deleted: no default is owed).
    pub(crate) fn forget_group(&mut self, group: &str) {
        self.watch.remove(group);
    }

    /// Takes every aggregate gathered so far, and the default of each
    /// minute closed by `now_ms` in which a filter saw events but produced
    /// no datapoint; forgets minutes closed long ago.
    pub(crate) fn take(&mut self, now_ms: i64) -> Vec<Record> {
        let mut records = Vec::new();
        for (_, data) in self.data.drain() {
            for ((dims, minute), aggregate) in data.series {
                records.push(Record {
                    key: data.filter.key_with(&dims),
                    timestamp_ms: minute,
                    aggregate,
                    resolution: Resolution::Standard,
                });
            }
        }
        for minutes in self.watch.values_mut() {
            for (&minute, slots) in minutes.iter_mut() {
                if minute + MINUTE_MS + CLOSE_AFTER_MS > now_ms {
                    break;
                }
                for slot in slots.iter_mut().filter(|s| !s.settled) {
                    slot.settled = true;
                    if slot.matched || !slot.filter.is_live() {
                        continue;
                    }
                    if let Some(value) = slot.filter.default_value() {
                        records.push(Record {
                            key: slot.filter.key().clone(),
                            timestamp_ms: minute,
                            aggregate: Aggregate::from_value(value),
                            resolution: Resolution::Standard,
                        });
                    }
                }
            }
            minutes.retain(|&minute, _| minute + MINUTE_MS + CLOSE_AFTER_MS + REMEMBER_MS > now_ms);
        }
        self.watch.retain(|_, minutes| !minutes.is_empty());
        records
    }
}
