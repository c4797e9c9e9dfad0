//! Context lines: the events just before and after a query's match in its
//! own stream, as `grep -C` shows the lines around a match in a file.
//!
//! A stream's "file" is its events in the order they were stored, among
//! those of the scanned time range. [`ContextFinder`] takes the matched
//! events of one group and is fed a scan of that group (the query's range):
//! it keeps, for each stream that holds a match, a ring of its last `n`
//! events; when a matched event comes by, the ring is its `before` and the
//! next `n` events of the stream become its `after`. The scan stops once
//! every match has its `after`. Memory: `n` events per watched stream plus
//! `2n` per match; time: one pass, with a map lookup per event.
//!
//! A match is recognised by its stream, timestamp, ingestion time and
//! message; identical events get the contexts of their occurrences in
//! order.

use std::collections::{HashMap, VecDeque};
use std::ops::ControlFlow;

use serde_json::{Map, Value as Json, json};

use crate::query::{LogEvent, format_rfc3339};
use crate::store::{LogError, LogStore, StoredEvent};

/// The most context events asked for on each side of a match.
pub const MAX_CONTEXT: usize = 100;

/// One event around a match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextEvent {
    /// When it happened, Unix ms.
    pub timestamp_ms: i64,
    /// The log line.
    pub message: String,
}

/// The events around one match, oldest first on both sides.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventContext {
    /// Up to `n` events of the stream stored just before the match.
    pub before: Vec<ContextEvent>,
    /// Up to `n` events stored just after it.
    pub after: Vec<ContextEvent>,
}

impl EventContext {
    /// As a query row shows it: `{"before": [{"@timestamp", "@message"}],
    /// "after": [...]}`, times in RFC 3339 like the row's `@timestamp`.
    pub fn to_json(&self) -> Json {
        let side = |events: &[ContextEvent]| -> Json {
            Json::Array(
                events
                    .iter()
                    .map(|e| {
                        let mut m = Map::new();
                        m.insert("@timestamp".into(), json!(format_rfc3339(e.timestamp_ms)));
                        m.insert("@message".into(), json!(e.message));
                        Json::Object(m)
                    })
                    .collect(),
            )
        };
        json!({"before": side(&self.before), "after": side(&self.after)})
    }
}

#[derive(Debug)]
enum State {
    /// Not seen yet.
    Waiting,
    /// Seen; gathering its `after`.
    After,
    /// Complete.
    Done,
}

#[derive(Debug)]
struct Target {
    stream: String,
    message: String,
    state: State,
    context: EventContext,
}

#[derive(Debug, Default)]
struct StreamState {
    ring: VecDeque<ContextEvent>,
    /// Targets of this stream gathering their `after`.
    gathering: Vec<usize>,
}

/// Finds the context of a group's matched events in one scan of the group.
#[derive(Debug)]
pub struct ContextFinder {
    n: usize,
    targets: Vec<Target>,
    /// (timestamp, ingestion time) → targets, in the order given.
    by_key: HashMap<(i64, i64), Vec<usize>>,
    streams: HashMap<String, StreamState>,
    open: usize,
}

impl ContextFinder {
    /// A finder of `n` (at most [`MAX_CONTEXT`]) events on each side of
    /// each of `targets` (events of one group; their `group` is not read).
    pub fn new<'a>(targets: impl IntoIterator<Item = &'a LogEvent>, n: usize) -> ContextFinder {
        let n = n.min(MAX_CONTEXT);
        let mut finder = ContextFinder {
            n,
            targets: Vec::new(),
            by_key: HashMap::new(),
            streams: HashMap::new(),
            open: 0,
        };
        for t in targets {
            let i = finder.targets.len();
            finder
                .by_key
                .entry((t.timestamp_ms, t.ingestion_ms))
                .or_default()
                .push(i);
            finder.streams.entry(t.stream.clone()).or_default();
            finder.targets.push(Target {
                stream: t.stream.clone(),
                message: t.message.clone(),
                state: State::Waiting,
                context: EventContext::default(),
            });
        }
        finder.open = finder.targets.len();
        finder
    }

    /// Feeds the next event of the scan; breaks once every target is
    /// complete.
    pub fn push(&mut self, e: StoredEvent<'_>) -> ControlFlow<()> {
        if self.open == 0 {
            return ControlFlow::Break(());
        }
        let Some(stream) = self.streams.get_mut(e.stream) else {
            return ControlFlow::Continue(());
        };
        let n = self.n;
        // This event comes after every target still gathering.
        stream.gathering.retain(|&i| {
            let t = &mut self.targets[i];
            t.context.after.push(ContextEvent {
                timestamp_ms: e.timestamp_ms,
                message: e.message.to_owned(),
            });
            if t.context.after.len() < n {
                return true;
            }
            t.state = State::Done;
            self.open -= 1;
            false
        });
        if let Some(candidates) = self.by_key.get(&(e.timestamp_ms, e.ingestion_ms)) {
            let hit = candidates.iter().copied().find(|&i| {
                let t = &self.targets[i];
                matches!(t.state, State::Waiting) && t.stream == e.stream && t.message == e.message
            });
            if let Some(i) = hit {
                let t = &mut self.targets[i];
                t.context.before = stream.ring.iter().cloned().collect();
                if n == 0 {
                    t.state = State::Done;
                    self.open -= 1;
                } else {
                    t.state = State::After;
                    stream.gathering.push(i);
                }
            }
        }
        if n > 0 {
            // Reuse the oldest slot's buffer: no allocation once warm.
            let mut slot = if stream.ring.len() == n {
                stream.ring.pop_front().unwrap_or(ContextEvent {
                    timestamp_ms: 0,
                    message: String::new(),
                })
            } else {
                ContextEvent {
                    timestamp_ms: 0,
                    message: String::new(),
                }
            };
            slot.timestamp_ms = e.timestamp_ms;
            slot.message.clear();
            slot.message.push_str(e.message);
            stream.ring.push_back(slot);
        }
        if self.open == 0 {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    }

    /// Whether every target is complete (the scan may stop).
    pub fn is_done(&self) -> bool {
        self.open == 0
    }

    /// The contexts, in the targets' order; `None` for a target the scan
    /// never came by (deleted meanwhile, or the scan was cut short). A
    /// target near the end of its stream has fewer than `n` after it.
    pub fn finish(self) -> Vec<Option<EventContext>> {
        self.targets
            .into_iter()
            .map(|t| match t.state {
                State::Waiting => None,
                State::After | State::Done => Some(t.context),
            })
            .collect()
    }
}

/// The context of `targets` (events of `group`) from a scan of the group
/// over `from_ms..to_ms`, reading at most `max_scanned` events.
pub fn find(
    store: &LogStore,
    group: &str,
    from_ms: i64,
    to_ms: i64,
    targets: &[LogEvent],
    n: usize,
    max_scanned: u64,
) -> Result<Vec<Option<EventContext>>, LogError> {
    let mut finder = ContextFinder::new(targets, n);
    if !finder.is_done() {
        let mut left = max_scanned;
        store.scan(group, from_ms, to_ms, |e| {
            if left == 0 {
                return ControlFlow::Break(());
            }
            left -= 1;
            finder.push(e)
        })?;
    }
    Ok(finder.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored<'a>(ts: i64, stream: &'a str, message: &'a str) -> StoredEvent<'a> {
        StoredEvent {
            timestamp_ms: ts,
            ingestion_ms: 7,
            stream,
            message,
        }
    }

    fn target(ts: i64, stream: &str, message: &str) -> LogEvent {
        LogEvent {
            timestamp_ms: ts,
            ingestion_ms: 7,
            group: "/g".into(),
            stream: stream.into(),
            message: message.into(),
        }
    }

    fn messages(events: &[ContextEvent]) -> Vec<&str> {
        events.iter().map(|e| e.message.as_str()).collect()
    }

    #[test]
    fn the_neighbours_come_from_the_same_stream_in_stored_order() {
        let scan = [
            stored(1, "a", "a1"),
            stored(2, "b", "b1"),
            stored(3, "a", "a2"),
            stored(4, "a", "ERROR"),
            stored(5, "b", "b2"),
            stored(6, "a", "a3"),
            stored(7, "a", "a4"),
            stored(8, "a", "a5"),
        ];
        let targets = [target(4, "a", "ERROR"), target(2, "b", "b1")];
        let mut finder = ContextFinder::new(&targets, 2);
        let mut read = 0;
        for e in scan {
            read += 1;
            if finder.push(e).is_break() {
                break;
            }
        }
        // b1 never gets its second `after`: the whole scan is read.
        assert_eq!(read, 8);
        let out = finder.finish();
        let error = out[0].as_ref().unwrap();
        assert_eq!(messages(&error.before), ["a1", "a2"]);
        assert_eq!(messages(&error.after), ["a3", "a4"]);
        assert_eq!(error.after[0].timestamp_ms, 6);
        let b = out[1].as_ref().unwrap();
        assert!(b.before.is_empty());
        assert_eq!(messages(&b.after), ["b2"]);

        // The error alone is complete once a4 came: a5 is never read.
        let mut finder = ContextFinder::new(&targets[..1], 2);
        let read = scan
            .iter()
            .take_while(|e| finder.push(**e).is_continue())
            .count();
        assert_eq!(read, 6);
        assert!(finder.is_done());
    }

    #[test]
    fn identical_events_take_their_occurrences_in_order_and_a_missing_one_is_none() {
        let scan = [
            stored(1, "s", "x"),
            stored(1, "s", "same"),
            stored(2, "s", "y"),
            stored(1, "s", "same"),
            stored(3, "s", "z"),
        ];
        let targets = [
            target(1, "s", "same"),
            target(1, "s", "same"),
            target(9, "s", "gone"),
        ];
        let mut finder = ContextFinder::new(&targets, 1);
        for e in scan {
            let _ = finder.push(e);
        }
        let out = finder.finish();
        let first = out[0].as_ref().unwrap();
        assert_eq!(messages(&first.before), ["x"]);
        assert_eq!(messages(&first.after), ["y"]);
        let second = out[1].as_ref().unwrap();
        assert_eq!(messages(&second.before), ["y"]);
        assert_eq!(messages(&second.after), ["z"]);
        assert!(out[2].is_none());
    }

    #[test]
    fn the_json_names_times_and_messages_as_a_row_does() {
        let context = EventContext {
            before: vec![ContextEvent {
                timestamp_ms: 60_000,
                message: "m".into(),
            }],
            after: vec![],
        };
        assert_eq!(
            context.to_json(),
            json!({"before": [{"@timestamp": "1970-01-01T00:01:00.000Z", "@message": "m"}], "after": []})
        );
    }

    #[test]
    fn find_reads_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::open(dir.path(), Default::default()).unwrap();
        let now = 1_800_000_000_000;
        let events: Vec<crate::store::InputEvent> = (0..10)
            .map(|i| crate::store::InputEvent {
                timestamp: now + i,
                message: format!("line {i}"),
            })
            .collect();
        store.put("/g", "s", &events, now).unwrap();
        let t = LogEvent {
            timestamp_ms: now + 5,
            ingestion_ms: now,
            group: "/g".into(),
            stream: "s".into(),
            message: "line 5".into(),
        };
        let out = find(&store, "/g", now, now + 10, &[t], 3, u64::MAX).unwrap();
        let c = out[0].as_ref().unwrap();
        assert_eq!(messages(&c.before), ["line 2", "line 3", "line 4"]);
        assert_eq!(messages(&c.after), ["line 6", "line 7", "line 8"]);
    }
}
