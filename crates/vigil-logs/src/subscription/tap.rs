//! The tap: inside the append, each kept event is matched against its
//! group's filters and pushed into the buffer of each filter it matches.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::payload::OutEvent;
use super::{Active, Subscriptions, lock, persist, read_lock, write_lock};
use crate::pipeline::{Batch, Tap};

impl Subscriptions {
    /// A 56-digit id, unique per event and the same for every filter.
    fn next_id(&self, timestamp_ms: i64, ingestion_ms: i64) -> Arc<str> {
        let seq = self.next_id.fetch_add(1, Ordering::Relaxed) % 10_000_000_000_000_000;
        format!(
            "{:020}{:020}{seq:016}",
            timestamp_ms.max(0),
            ingestion_ms.max(0)
        )
        .into()
    }
}

impl Tap for Subscriptions {
    fn stored(&self, batch: &Batch<'_>) {
        let filters: Vec<Arc<Active>> = match read_lock(&self.active).get(batch.group) {
            Some(list) => list.clone(),
            None => return,
        };
        let stream: Arc<str> = batch.stream.into();
        let mut matched: Vec<Vec<Arc<OutEvent>>> = vec![Vec::new(); filters.len()];
        for (_, event) in batch.events() {
            let mut shared: Option<(Arc<str>, Arc<str>)> = None;
            for (i, f) in filters.iter().enumerate() {
                let Some(m) = f.pattern.matches(&event.message) else {
                    continue;
                };
                let (id, message) = shared
                    .get_or_insert_with(|| {
                        (
                            self.next_id(event.timestamp, batch.ingestion_ms),
                            event.message.as_str().into(),
                        )
                    })
                    .clone();
                matched[i].push(Arc::new(OutEvent {
                    id,
                    stream: Arc::clone(&stream),
                    timestamp_ms: event.timestamp,
                    ingestion_ms: batch.ingestion_ms,
                    message,
                    extracted: f.pattern.is_delimited().then(|| m.named_fields()),
                }));
            }
        }
        for (f, events) in filters.iter().zip(matched) {
            if !events.is_empty() {
                f.buffer.push(events);
            }
        }
    }

    fn group_deleted(&self, group: &str) {
        let _changes = lock(&self.changes);
        let Some(gone) = write_lock(&self.active).remove(group) else {
            return;
        };
        for a in &gone {
            a.abort();
        }
        if let Err(err) = persist::write(&self.dir, self.filters()) {
            tracing::warn!(group, error = %err, "subscriptions of a deleted group not removed from the file");
        }
    }
}
