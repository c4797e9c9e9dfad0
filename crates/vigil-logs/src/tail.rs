//! Live tail: the events of a group handed to whoever watches it, as they
//! are stored.
//!
//! [`Tail`] is a [`Tap`]: each stored batch of a watched group becomes one
//! message on that group's broadcast channel, which every subscriber reads
//! at its own pace. Nothing ever waits for a subscriber:
//!
//! - With nobody watching anything, a batch costs one atomic load.
//! - A group nobody watches has no channel; its batches cost a map lookup.
//! - A subscriber that falls more than [`TailOptions::buffer_batches`]
//!   behind loses the oldest batches, and its next [`Received`] says how
//!   many events it lost (each channel numbers its events, so the count is
//!   exact even though the channel counts batches).
//!
//! Subscribers filter on their side: a filter pattern never runs inside
//! the append call.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use tokio::sync::broadcast;

use crate::pipeline::{Batch, Tap};

/// How many batches a channel holds and how many may watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TailOptions {
    /// Batches a group's channel keeps for its slowest subscriber; past
    /// that, the subscriber loses the oldest ones. Bounds the memory a slow
    /// subscriber holds to this many batches (a batch is at most 1 MiB of
    /// messages). Default: 128.
    pub buffer_batches: usize,
    /// Most subscribers at once, over every group. Default: 100.
    pub max_subscribers: usize,
}

impl Default for TailOptions {
    fn default() -> Self {
        TailOptions {
            buffer_batches: 128,
            max_subscribers: 100,
        }
    }
}

/// One event as a tail shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TailEvent {
    /// When it happened, Unix ms.
    pub timestamp_ms: i64,
    /// The log line.
    pub message: String,
}

/// The kept events of one stored batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TailBatch {
    /// The stream they were sent to.
    pub stream: String,
    /// When they were stored, Unix ms.
    pub ingestion_ms: i64,
    /// In request order.
    pub events: Vec<TailEvent>,
    /// The channel's number of the first event (events are numbered from
    /// the channel's creation), so a subscriber counts what it missed.
    first_seq: u64,
}

/// What [`Subscription::recv`] hands over.
#[derive(Debug, Clone)]
pub struct Received {
    /// Events lost just before this batch because the subscriber was too
    /// slow (0 almost always).
    pub dropped: u64,
    /// The next batch.
    pub batch: Arc<TailBatch>,
}

/// Why a subscription was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TailError {
    /// [`TailOptions::max_subscribers`] are watching already.
    #[error("{max} live tails are open, the most allowed at once; try again later")]
    TooMany {
        /// The bound.
        max: usize,
    },
    /// [`Tail::close`] was called (the server is shutting down).
    #[error("live tails are closed: the server is shutting down")]
    Closed,
}

impl TailError {
    /// The error code at the API boundary: the server cannot take it now.
    pub fn code(&self) -> &'static str {
        "unavailable"
    }
}

/// What a tail has done, for the server's metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TailStats {
    /// Subscriptions open now.
    pub subscribers: usize,
    /// Groups with a channel (watched by someone) now.
    pub channels: usize,
    /// Batches put on a channel, ever.
    pub batches_sent: u64,
    /// Events subscribers lost by lagging, ever.
    pub events_dropped: u64,
}

#[derive(Debug)]
struct Channel {
    /// Tells a subscription's drop whether the channel it leaves is the one
    /// it joined (a deleted group's channel may have been replaced).
    id: u64,
    tx: broadcast::Sender<Arc<TailBatch>>,
    /// The number of the next event; sends happen under it so numbers
    /// rise in channel order.
    next_seq: Mutex<u64>,
}

/// The live-tail fan-out; register it with
/// [`Logs::with_tail`](crate::pipeline::Logs::with_tail).
#[derive(Debug)]
pub struct Tail {
    options: TailOptions,
    channels: RwLock<HashMap<String, Channel>>,
    /// Read without the lock by every batch: 0 means nothing to do.
    subscribers: AtomicUsize,
    next_channel: AtomicU64,
    closed: AtomicBool,
    batches_sent: AtomicU64,
    events_dropped: AtomicU64,
}

impl Default for Tail {
    fn default() -> Self {
        Tail::new(TailOptions::default())
    }
}

impl Tail {
    /// A tail with no subscribers.
    pub fn new(options: TailOptions) -> Tail {
        Tail {
            options: TailOptions {
                buffer_batches: options.buffer_batches.max(1),
                ..options
            },
            channels: RwLock::new(HashMap::new()),
            subscribers: AtomicUsize::new(0),
            next_channel: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            batches_sent: AtomicU64::new(0),
            events_dropped: AtomicU64::new(0),
        }
    }

    /// The bounds it was made with.
    pub fn options(&self) -> TailOptions {
        self.options
    }

    /// Watches `group` from now on: every batch stored after this returns
    /// reaches the subscription. Whether the group exists is the caller's
    /// business (a group that appears later is tailed from its first batch).
    pub fn subscribe(self: &Arc<Self>, group: &str) -> Result<Subscription, TailError> {
        let mut channels = write(&self.channels);
        if self.closed.load(Ordering::Acquire) {
            return Err(TailError::Closed);
        }
        if self.subscribers.load(Ordering::Acquire) >= self.options.max_subscribers {
            return Err(TailError::TooMany {
                max: self.options.max_subscribers,
            });
        }
        let channel = channels.entry(group.to_owned()).or_insert_with(|| Channel {
            id: self.next_channel.fetch_add(1, Ordering::Relaxed),
            tx: broadcast::channel(self.options.buffer_batches).0,
            next_seq: Mutex::new(0),
        });
        let (rx, expected) = {
            let seq = lock(&channel.next_seq);
            (channel.tx.subscribe(), *seq)
        };
        self.subscribers.fetch_add(1, Ordering::AcqRel);
        Ok(Subscription {
            tail: Arc::clone(self),
            group: group.to_owned(),
            channel: channel.id,
            rx,
            expected,
        })
    }

    /// Ends every subscription (each gets what is queued, then `None`) and
    /// refuses new ones: for shutdown, so open tails do not hold it up.
    pub fn close(&self) {
        let mut channels = write(&self.channels);
        self.closed.store(true, Ordering::Release);
        channels.clear();
    }

    /// The counters.
    pub fn stats(&self) -> TailStats {
        TailStats {
            subscribers: self.subscribers.load(Ordering::Acquire),
            channels: read(&self.channels).len(),
            batches_sent: self.batches_sent.load(Ordering::Relaxed),
            events_dropped: self.events_dropped.load(Ordering::Relaxed),
        }
    }
}

impl Tap for Tail {
    fn stored(&self, batch: &Batch<'_>) {
        if self.subscribers.load(Ordering::Acquire) == 0 {
            return;
        }
        let channels = read(&self.channels);
        let Some(channel) = channels.get(batch.group) else {
            return;
        };
        if channel.tx.receiver_count() == 0 {
            return;
        }
        let events: Vec<TailEvent> = batch
            .events()
            .map(|(_, e)| TailEvent {
                timestamp_ms: e.timestamp,
                message: e.message.clone(),
            })
            .collect();
        let n = events.len() as u64;
        let mut seq = lock(&channel.next_seq);
        let message = Arc::new(TailBatch {
            stream: batch.stream.to_owned(),
            ingestion_ms: batch.ingestion_ms,
            events,
            first_seq: *seq,
        });
        *seq += n;
        // An error means the last subscriber left meanwhile: nobody to tell.
        if channel.tx.send(message).is_ok() {
            self.batches_sent.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn group_deleted(&self, group: &str) {
        // Dropping the sender ends the group's subscriptions.
        write(&self.channels).remove(group);
    }
}

/// One subscriber's view of a group; leaving is dropping it.
#[derive(Debug)]
pub struct Subscription {
    tail: Arc<Tail>,
    group: String,
    channel: u64,
    rx: broadcast::Receiver<Arc<TailBatch>>,
    /// The number of the next event this subscriber should see.
    expected: u64,
}

impl Subscription {
    /// The group watched.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// The next batch, with how many events were lost before it; `None`
    /// once the group is deleted or the tail closed.
    pub async fn recv(&mut self) -> Option<Received> {
        loop {
            match self.rx.recv().await {
                Ok(batch) => return Some(self.received(batch)),
                // The batches lost are counted from the next one's number.
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    /// [`Subscription::recv`] without waiting: `Ok(None)` when nothing is
    /// queued, `Err(())` once the subscription has ended.
    #[allow(clippy::result_unit_err)]
    pub fn try_recv(&mut self) -> Result<Option<Received>, ()> {
        loop {
            match self.rx.try_recv() {
                Ok(batch) => return Ok(Some(self.received(batch))),
                Err(broadcast::error::TryRecvError::Lagged(_)) => {}
                Err(broadcast::error::TryRecvError::Empty) => return Ok(None),
                Err(broadcast::error::TryRecvError::Closed) => return Err(()),
            }
        }
    }

    fn received(&mut self, batch: Arc<TailBatch>) -> Received {
        let dropped = batch.first_seq.saturating_sub(self.expected);
        self.expected = batch.first_seq + batch.events.len() as u64;
        if dropped > 0 {
            self.tail
                .events_dropped
                .fetch_add(dropped, Ordering::Relaxed);
        }
        Received { dropped, batch }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut channels = write(&self.tail.channels);
        self.tail.subscribers.fetch_sub(1, Ordering::AcqRel);
        // Under the write lock nobody joins: a count of 1 is this receiver.
        if channels
            .get(&self.group)
            .is_some_and(|c| c.id == self.channel && c.tx.receiver_count() <= 1)
        {
            channels.remove(&self.group);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn read<T>(m: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write<T>(m: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::Logs;
    use crate::store::{InputEvent, LogStore, StoreOptions};

    const NOW: i64 = 1_800_000_000_000;

    fn logs_with(options: TailOptions) -> (Logs, Arc<Tail>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(LogStore::open(dir.path(), StoreOptions::default()).unwrap());
        let tail = Arc::new(Tail::new(options));
        (Logs::new(store).with_tail(Arc::clone(&tail)), tail, dir)
    }

    fn put(logs: &Logs, group: &str, stream: &str, messages: &[&str]) {
        let events: Vec<InputEvent> = messages
            .iter()
            .enumerate()
            .map(|(i, m)| InputEvent {
                timestamp: NOW + i as i64,
                message: (*m).to_owned(),
            })
            .collect();
        logs.put(group, stream, &events, NOW).unwrap();
    }

    fn messages(r: &Received) -> Vec<&str> {
        r.batch.events.iter().map(|e| e.message.as_str()).collect()
    }

    #[test]
    fn nobody_listening_costs_no_channel_and_no_copy() {
        let (logs, tail, _dir) = logs_with(TailOptions::default());
        put(&logs, "/g", "s", &["a", "b"]);
        assert_eq!(tail.stats(), TailStats::default());
        // Someone watching another group: this group still gets nothing.
        let watcher = tail.subscribe("/other").unwrap();
        put(&logs, "/g", "s", &["c"]);
        assert_eq!(tail.stats().batches_sent, 0);
        assert_eq!(tail.stats().channels, 1);
        drop(watcher);
        assert_eq!(tail.stats().channels, 0);
        assert_eq!(tail.stats().subscribers, 0);
    }

    #[test]
    fn every_subscriber_sees_the_kept_events_stored_after_it_joined() {
        let (logs, tail, _dir) = logs_with(TailOptions::default());
        put(&logs, "/g", "s", &["before"]);
        let mut a = tail.subscribe("/g").unwrap();
        let mut b = tail.subscribe("/g").unwrap();
        put(&logs, "/g", "s1", &["one", "", "two"]);
        put(&logs, "/g", "s2", &["three"]);
        for sub in [&mut a, &mut b] {
            let first = sub.try_recv().unwrap().unwrap();
            assert_eq!(first.dropped, 0);
            assert_eq!(first.batch.stream, "s1");
            assert_eq!(first.batch.ingestion_ms, NOW);
            assert_eq!(messages(&first), ["one", "two"]);
            assert_eq!(first.batch.events[1].timestamp_ms, NOW + 2);
            let second = sub.try_recv().unwrap().unwrap();
            assert_eq!(messages(&second), ["three"]);
            assert!(sub.try_recv().unwrap().is_none());
        }
        assert_eq!(tail.stats().batches_sent, 2);
    }

    #[test]
    fn a_lagging_subscriber_loses_the_oldest_and_is_told_how_many_events() {
        let (logs, tail, _dir) = logs_with(TailOptions {
            buffer_batches: 2,
            max_subscribers: 10,
        });
        let mut slow = tail.subscribe("/g").unwrap();
        let mut quick = tail.subscribe("/g").unwrap();
        for i in 0..5 {
            let m = i.to_string();
            // Batch i holds i + 1 events.
            let batch: Vec<&str> = std::iter::repeat_n(m.as_str(), i + 1).collect();
            put(&logs, "/g", "s", &batch);
            assert_eq!(quick.try_recv().unwrap().unwrap().dropped, 0);
        }
        // Batches 0, 1, 2 (1 + 2 + 3 events) were overwritten.
        let next = slow.try_recv().unwrap().unwrap();
        assert_eq!(next.dropped, 6);
        assert_eq!(messages(&next), ["3"; 4]);
        let last = slow.try_recv().unwrap().unwrap();
        assert_eq!(last.dropped, 0);
        assert_eq!(messages(&last), ["4"; 5]);
        assert_eq!(tail.stats().events_dropped, 6);
    }

    #[tokio::test]
    async fn deleting_the_group_or_closing_ends_the_subscriptions() {
        let (logs, tail, _dir) = logs_with(TailOptions::default());
        let mut sub = tail.subscribe("/g").unwrap();
        put(&logs, "/g", "s", &["last"]);
        assert!(logs.delete_group("/g").unwrap());
        assert_eq!(messages(&sub.recv().await.unwrap()), ["last"]);
        assert!(sub.recv().await.is_none());
        let mut other = tail.subscribe("/h").unwrap();
        tail.close();
        assert!(other.recv().await.is_none());
        assert_eq!(tail.subscribe("/h").unwrap_err(), TailError::Closed);
    }

    #[test]
    fn subscribers_are_bounded() {
        let (_logs, tail, _dir) = logs_with(TailOptions {
            buffer_batches: 4,
            max_subscribers: 2,
        });
        let a = tail.subscribe("/g").unwrap();
        let _b = tail.subscribe("/h").unwrap();
        let err = tail.subscribe("/g").unwrap_err();
        assert_eq!(err, TailError::TooMany { max: 2 });
        assert_eq!(err.code(), "unavailable");
        drop(a);
        assert!(tail.subscribe("/g").is_ok());
    }
}
