//! What happens to a batch: the store keeps it, then every tap sees the
//! events it kept, in order — metric filters count them, subscriptions
//! forward them, live tails show them. Both ingestion (the API) and
//! Vigil's own groups go through [`Logs::put`], so a metric filter on
//! `/vigil/access` sees what a filter on a user's group sees.
//!
//! A tap runs inside the append call, after the events are durable; it
//! must not block (queue work, do not do it). With metric filters
//! ([`Logs::with_metric_filters`]), the metrics embedded in the kept
//! events (EMF) are extracted and stored before the taps run, and the
//! answer says what they gave.

use std::fmt;
use std::sync::Arc;

use crate::metric_filter::MetricFilters;
use crate::store::ingest::{EVENT_OVERHEAD_BYTES, MAX_BATCH_BYTES, MAX_BATCH_EVENTS};
use crate::store::{InputEvent, LogError, LogStore, PutOutcome, Rejected};
use crate::tail::Tail;

/// The events of one append that the store kept.
#[derive(Debug, Clone, Copy)]
pub struct Batch<'a> {
    /// The group they went to.
    pub group: &'a str,
    /// Their stream.
    pub stream: &'a str,
    /// When they were stored, Unix ms (`@ingestionTime`).
    pub ingestion_ms: i64,
    events: &'a [InputEvent],
    /// The events left out, by ascending index.
    rejected: &'a [Rejected],
}

impl<'a> Batch<'a> {
    /// A batch of `events` of which none was rejected.
    pub fn new(
        group: &'a str,
        stream: &'a str,
        ingestion_ms: i64,
        events: &'a [InputEvent],
    ) -> Self {
        Batch {
            group,
            stream,
            ingestion_ms,
            events,
            rejected: &[],
        }
    }

    /// The kept events with their index in the request, in request order.
    pub fn events(&self) -> impl Iterator<Item = (usize, &'a InputEvent)> + 'a {
        let rejected = self.rejected;
        let mut next = 0;
        self.events.iter().enumerate().filter(move |(i, _)| {
            while next < rejected.len() && rejected[next].index < *i {
                next += 1;
            }
            !(next < rejected.len() && rejected[next].index == *i)
        })
    }

    /// How many events were kept.
    pub fn len(&self) -> usize {
        self.events.len() - self.rejected.len()
    }

    /// Whether no event was kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Something that sees every stored batch.
pub trait Tap: Send + Sync + fmt::Debug {
    /// `batch` was stored; must not block.
    fn stored(&self, batch: &Batch<'_>);

    /// `group` and its events are gone: drop what belongs to it.
    fn group_deleted(&self, _group: &str) {}
}

/// The log store with its taps: the one way events get in.
#[derive(Debug, Clone)]
pub struct Logs {
    store: Arc<LogStore>,
    taps: Vec<Arc<dyn Tap>>,
    metric_filters: Option<Arc<MetricFilters>>,
    tail: Option<Arc<Tail>>,
}

impl Logs {
    /// `store` with no taps.
    pub fn new(store: Arc<LogStore>) -> Logs {
        Logs {
            store,
            taps: Vec::new(),
            metric_filters: None,
            tail: None,
        }
    }

    /// Adds the metric filters as a tap, and extracts the EMF metrics of
    /// every batch through them.
    #[must_use]
    pub fn with_metric_filters(mut self, filters: Arc<MetricFilters>) -> Logs {
        self.taps.push(Arc::clone(&filters) as Arc<dyn Tap>);
        self.metric_filters = Some(filters);
        self
    }

    /// The metric filters, when they are on.
    pub fn metric_filters(&self) -> Option<&Arc<MetricFilters>> {
        self.metric_filters.as_ref()
    }

    /// Adds a tap; taps see batches in the order they were added.
    #[must_use]
    pub fn with_tap(mut self, tap: Arc<dyn Tap>) -> Logs {
        self.taps.push(tap);
        self
    }

    /// Adds the live tail as a tap, and keeps it for [`Logs::tail`].
    #[must_use]
    pub fn with_tail(mut self, tail: Arc<Tail>) -> Logs {
        self.taps.push(Arc::clone(&tail) as Arc<dyn Tap>);
        self.tail = Some(tail);
        self
    }

    /// The live tail, if one was added.
    pub fn tail(&self) -> Option<&Arc<Tail>> {
        self.tail.as_ref()
    }

    /// The store, for reads (scans, listing) and group settings.
    pub fn store(&self) -> &Arc<LogStore> {
        &self.store
    }

    /// Stores a batch sent to `group`/`stream` at `now_ms`, as
    /// [`LogStore::put`] does, extracts its EMF metrics (when metric
    /// filters are on: [`PutOutcome::emf`]), then hands the kept events to
    /// every tap.
    pub fn put(
        &self,
        group: &str,
        stream: &str,
        events: &[InputEvent],
        now_ms: i64,
    ) -> Result<PutOutcome, LogError> {
        self.put_checked(group, stream, events, now_ms, true)
    }

    /// [`Logs::put`], reading EMF only when `emf` is set.
    fn put_checked(
        &self,
        group: &str,
        stream: &str,
        events: &[InputEvent],
        now_ms: i64,
        emf: bool,
    ) -> Result<PutOutcome, LogError> {
        let mut outcome = self.store.put(group, stream, events, now_ms)?;
        if outcome.accepted > 0 {
            let batch = Batch {
                group,
                stream,
                ingestion_ms: now_ms,
                events,
                rejected: &outcome.rejected,
            };
            let emf = self
                .metric_filters
                .as_ref()
                .filter(|_| emf)
                .and_then(|f| f.emf(&batch, now_ms));
            for tap in &self.taps {
                tap.stored(&batch);
            }
            outcome.emf = emf;
        }
        Ok(outcome)
    }

    /// Stores Vigil's own events (all in the time window: they happen
    /// now) in as many batches as the limits need; an event larger than a
    /// whole batch is cut to fit. Returns how many were stored. They are
    /// not read as EMF: their top-level fields are Vigil's (an `_aws` can
    /// only be nested, in an input), so none could be one, and the search
    /// for one would read every byte of every request's lines.
    pub fn put_all(
        &self,
        group: &str,
        stream: &str,
        events: &[InputEvent],
        now_ms: i64,
    ) -> Result<usize, LogError> {
        let mut stored = 0;
        let mut start = 0;
        while start < events.len() {
            let mut end = start;
            let mut bytes = 0;
            while end < events.len()
                && end - start < MAX_BATCH_EVENTS
                && bytes + events[end].message.len() + EVENT_OVERHEAD_BYTES <= MAX_BATCH_BYTES
            {
                bytes += events[end].message.len() + EVENT_OVERHEAD_BYTES;
                end += 1;
            }
            if end == start {
                let mut e = events[start].clone();
                let mut cut = (MAX_BATCH_BYTES - EVENT_OVERHEAD_BYTES).min(e.message.len());
                while !e.message.is_char_boundary(cut) {
                    cut -= 1;
                }
                e.message.truncate(cut);
                stored += self
                    .put_checked(group, stream, &[e], now_ms, false)?
                    .accepted;
                start += 1;
                continue;
            }
            stored += self
                .put_checked(group, stream, &events[start..end], now_ms, false)?
                .accepted;
            start = end;
        }
        Ok(stored)
    }

    /// Deletes `group` with its events, and tells every tap.
    pub fn delete_group(&self, group: &str) -> Result<bool, LogError> {
        let deleted = self.store.delete_group(group)?;
        if deleted {
            for tap in &self.taps {
                tap.group_deleted(group);
            }
        }
        Ok(deleted)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::store::StoreOptions;

    /// Group, stream, the kept indices and their messages.
    type SeenBatch = (String, String, Vec<usize>, Vec<String>);

    #[derive(Debug, Default)]
    struct Seen(Mutex<Vec<SeenBatch>>);

    impl Tap for Seen {
        fn stored(&self, batch: &Batch<'_>) {
            let (idx, msgs) = batch.events().map(|(i, e)| (i, e.message.clone())).unzip();
            self.0
                .lock()
                .unwrap()
                .push((batch.group.into(), batch.stream.into(), idx, msgs));
        }
        fn group_deleted(&self, group: &str) {
            self.0
                .lock()
                .unwrap()
                .push((group.into(), "<deleted>".into(), vec![], vec![]));
        }
    }

    fn event(ts: i64, m: &str) -> InputEvent {
        InputEvent {
            timestamp: ts,
            message: m.into(),
        }
    }

    #[test]
    fn taps_see_only_the_kept_events_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(LogStore::open(dir.path(), StoreOptions::default()).unwrap());
        let seen = Arc::new(Seen::default());
        let logs = Logs::new(store).with_tap(seen.clone());
        let now = 1_800_000_000_000;
        let day = 86_400_000;
        let events = [
            event(now - 30 * day, "old"),
            event(now, "a"),
            event(now, ""),
            event(now + 1, "b"),
            event(now + 3 * 3_600_000, "ahead"),
        ];
        let outcome = logs.put("/g", "s", &events, now).unwrap();
        assert_eq!(outcome.accepted, 2);
        assert!(logs.delete_group("/g").unwrap());
        let seen = seen.0.lock().unwrap();
        assert_eq!(seen[0].2, vec![1, 3]);
        assert_eq!(seen[0].3, vec!["a".to_owned(), "b".to_owned()]);
        assert_eq!(seen[1].1, "<deleted>");
    }

    #[test]
    fn a_batch_with_nothing_kept_reaches_no_tap() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(LogStore::open(dir.path(), StoreOptions::default()).unwrap());
        let seen = Arc::new(Seen::default());
        let logs = Logs::new(store).with_tap(seen.clone());
        let now = 1_800_000_000_000;
        logs.put("/g", "s", &[event(now, "")], now).unwrap();
        assert!(seen.0.lock().unwrap().is_empty());
    }

    #[test]
    fn put_all_splits_at_the_event_limit_and_cuts_a_giant() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(LogStore::open(dir.path(), StoreOptions::default()).unwrap());
        let seen = Arc::new(Seen::default());
        let logs = Logs::new(store).with_tap(seen.clone());
        let now = 1_800_000_000_000;
        let mut events: Vec<InputEvent> = (0..MAX_BATCH_EVENTS + 5)
            .map(|i| event(now, &i.to_string()))
            .collect();
        events.push(event(now, &"x".repeat(MAX_BATCH_BYTES + 10)));
        assert_eq!(logs.put_all("/g", "s", &events, now).unwrap(), events.len());
        let seen = seen.0.lock().unwrap();
        let sizes: Vec<usize> = seen.iter().map(|b| b.2.len()).collect();
        assert_eq!(sizes, vec![MAX_BATCH_EVENTS, 5, 1]);
        assert_eq!(seen[2].3[0].len(), MAX_BATCH_BYTES - EVENT_OVERHEAD_BYTES);
    }
}
