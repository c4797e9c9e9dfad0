//! A subscription's bounded buffer and its counters. The tap pushes (never
//! waits: what does not fit is dropped and counted); the delivery task
//! peeks a batch, and removes it only once it was delivered or given up,
//! so an event leaves the buffer after its delivery (at least once).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio::sync::Notify;

use super::payload::OutEvent;

/// A subscription's delivery counters since it was made (or since start).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DeliveryStats {
    /// Events the pattern matched.
    pub matched_events: u64,
    /// Matched events left out because the buffer was full.
    pub dropped_events: u64,
    /// Events delivered.
    pub delivered_events: u64,
    /// Events of deliveries given up.
    pub failed_events: u64,
    /// Deliveries given up (out of attempts, or refused for good).
    pub failed_deliveries: u64,
    /// Attempts after a failed one.
    pub retries: u64,
    /// Events waiting in the buffer now.
    pub buffered_events: u64,
    /// The last successful delivery, Unix ms.
    pub last_delivery_ms: Option<i64>,
    /// Why the last failed attempt failed.
    pub last_error: Option<String>,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) matched: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) delivered: AtomicU64,
    pub(crate) failed_events: AtomicU64,
    pub(crate) failed_deliveries: AtomicU64,
    pub(crate) retries: AtomicU64,
    /// 0: never.
    pub(crate) last_delivery_ms: AtomicI64,
    pub(crate) last_error: Mutex<Option<String>>,
}

#[derive(Debug, Default)]
struct Queue {
    events: VecDeque<Arc<OutEvent>>,
    /// Message bytes of `events`.
    bytes: usize,
}

/// The buffer between the tap and one delivery task.
#[derive(Debug)]
pub(crate) struct Buffer {
    queue: Mutex<Queue>,
    capacity: usize,
    pub(crate) counters: Counters,
    /// Wakes the delivery task (a push, or closing).
    pub(crate) wake: Notify,
    closing: AtomicBool,
}

impl Buffer {
    pub(crate) fn new(capacity: usize) -> Buffer {
        Buffer {
            queue: Mutex::new(Queue::default()),
            capacity: capacity.max(1),
            counters: Counters::default(),
            wake: Notify::new(),
            closing: AtomicBool::new(false),
        }
    }

    /// Appends what fits, counts the rest as dropped; never waits for the
    /// delivery task (the lock is only held to move pointers).
    pub(crate) fn push(&self, events: Vec<Arc<OutEvent>>) {
        let offered = events.len() as u64;
        let mut kept = 0u64;
        {
            let mut q = lock(&self.queue);
            for e in events {
                if q.events.len() >= self.capacity {
                    break;
                }
                q.bytes += e.message.len();
                q.events.push_back(e);
                kept += 1;
            }
        }
        let c = &self.counters;
        c.matched.fetch_add(offered, Ordering::Relaxed);
        if kept < offered {
            c.dropped.fetch_add(offered - kept, Ordering::Relaxed);
        }
        if kept > 0 {
            self.wake.notify_one();
        }
    }

    pub(crate) fn len(&self) -> usize {
        lock(&self.queue).events.len()
    }

    /// Whether a full batch is waiting.
    pub(crate) fn batch_ready(&self, max_events: usize, max_bytes: usize) -> bool {
        let q = lock(&self.queue);
        q.events.len() >= max_events || q.bytes >= max_bytes
    }

    /// The oldest events, at most `max_events` and (past the first)
    /// `max_bytes` of messages; of the first event's stream only unless
    /// `mix_streams`. They stay in the buffer until [`Buffer::remove`].
    pub(crate) fn peek(
        &self,
        max_events: usize,
        max_bytes: usize,
        mix_streams: bool,
    ) -> Vec<Arc<OutEvent>> {
        let q = lock(&self.queue);
        let mut out: Vec<Arc<OutEvent>> = Vec::new();
        let mut bytes = 0;
        for e in q.events.iter().take(max_events) {
            if let Some(first) = out.first()
                && (bytes + e.message.len() > max_bytes
                    || (!mix_streams && e.stream != first.stream))
            {
                break;
            }
            bytes += e.message.len();
            out.push(Arc::clone(e));
        }
        out
    }

    /// Removes the `n` oldest events (a batch [`Buffer::peek`] returned:
    /// only the delivery task removes, so they are still the oldest).
    pub(crate) fn remove(&self, n: usize) {
        let mut q = lock(&self.queue);
        for _ in 0..n {
            match q.events.pop_front() {
                Some(e) => q.bytes -= e.message.len(),
                None => break,
            }
        }
    }

    /// Asks the delivery task to deliver what it has and stop.
    pub(crate) fn close(&self) {
        self.closing.store(true, Ordering::Release);
        self.wake.notify_one();
    }

    pub(crate) fn closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    pub(crate) fn stats(&self) -> DeliveryStats {
        let c = &self.counters;
        let last = c.last_delivery_ms.load(Ordering::Relaxed);
        DeliveryStats {
            matched_events: c.matched.load(Ordering::Relaxed),
            dropped_events: c.dropped.load(Ordering::Relaxed),
            delivered_events: c.delivered.load(Ordering::Relaxed),
            failed_events: c.failed_events.load(Ordering::Relaxed),
            failed_deliveries: c.failed_deliveries.load(Ordering::Relaxed),
            retries: c.retries.load(Ordering::Relaxed),
            buffered_events: self.len() as u64,
            last_delivery_ms: (last != 0).then_some(last),
            last_error: lock(&c.last_error).clone(),
        }
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
