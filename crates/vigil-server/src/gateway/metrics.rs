//! The gateway's counters: plain atomics, bumped on the hot path, read by a
//! snapshot. Metric names live here and nowhere else.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Throttled requests, labelled by `reason`.
pub const THROTTLES: &str = "Throttles";
/// Highest number of scoring requests in flight since the last snapshot.
pub const CONCURRENT_EXECUTIONS_MAX: &str = "ConcurrentExecutions";
/// Requests that hit `request_timeout_ms`.
pub const TIMEOUTS: &str = "Timeouts";
/// Requests answered 401 or 403 by the key check.
pub const AUTH_FAILURES: &str = "AuthFailures";
/// Predictions served from the cache.
pub const CACHE_HITS: &str = "CacheHitCount";
/// Predictions scored because the cache did not have them.
pub const CACHE_MISSES: &str = "CacheMissCount";
/// Cache backend failures (Redis timeouts, connection errors); the request
/// is scored without the cache.
pub const CACHE_ERRORS: &str = "CacheErrors";

/// Why a request was throttled (the `reason` label of [`THROTTLES`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThrottleReason {
    /// The global token bucket was empty.
    Rate,
    /// The key's own token bucket was empty.
    KeyRate,
    /// `max_concurrent_requests` were in flight.
    Concurrency,
}

impl ThrottleReason {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            ThrottleReason::Rate => "rate",
            ThrottleReason::KeyRate => "key_rate",
            ThrottleReason::Concurrency => "concurrency",
        }
    }
}

/// The counters, shared by every request and kept across reloads.
#[derive(Debug, Default)]
pub struct GatewayMetrics {
    throttles: [AtomicU64; 3],
    timeouts: AtomicU64,
    auth_failures: AtomicU64,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    pub(crate) cache_hits: AtomicU64,
    pub(crate) cache_misses: AtomicU64,
    pub(crate) cache_errors: AtomicU64,
}

/// One reading: (metric name, label, value).
pub type Reading = (&'static str, Option<&'static str>, u64);

impl GatewayMetrics {
    pub(crate) fn throttled(&self, reason: ThrottleReason) {
        self.throttles[reason as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn timed_out(&self) {
        self.timeouts.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn auth_failed(&self) {
        self.auth_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// A scoring request started; returns the number now in flight.
    pub(crate) fn enter(&self) -> usize {
        let now = self.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        self.max_in_flight.fetch_max(now, Ordering::Relaxed);
        now
    }

    pub(crate) fn leave(&self) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    /// Throttles for one reason so far.
    pub fn throttles(&self, reason: ThrottleReason) -> u64 {
        self.throttles[reason as usize].load(Ordering::Relaxed)
    }

    /// The highest concurrency since the last call, which restarts the
    /// window at the current value (a scraper calls it once per second).
    pub fn take_max_concurrency(&self) -> usize {
        let now = self.in_flight.load(Ordering::Relaxed);
        self.max_in_flight.swap(now, Ordering::Relaxed)
    }

    /// Every counter (the concurrency maximum is read, not reset).
    pub fn snapshot(&self) -> Vec<Reading> {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut out = Vec::with_capacity(9);
        for reason in [
            ThrottleReason::Rate,
            ThrottleReason::KeyRate,
            ThrottleReason::Concurrency,
        ] {
            out.push((THROTTLES, Some(reason.as_str()), self.throttles(reason)));
        }
        out.push((
            CONCURRENT_EXECUTIONS_MAX,
            None,
            self.max_in_flight.load(Ordering::Relaxed) as u64,
        ));
        out.push((TIMEOUTS, None, load(&self.timeouts)));
        out.push((AUTH_FAILURES, None, load(&self.auth_failures)));
        out.push((CACHE_HITS, None, load(&self.cache_hits)));
        out.push((CACHE_MISSES, None, load(&self.cache_misses)));
        out.push((CACHE_ERRORS, None, load(&self.cache_errors)));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_concurrency_is_a_window_maximum() {
        let m = GatewayMetrics::default();
        m.enter();
        m.enter();
        m.enter();
        m.leave();
        m.leave();
        assert_eq!(m.take_max_concurrency(), 3);
        // The new window starts at what is still in flight.
        assert_eq!(m.take_max_concurrency(), 1);
        m.throttled(ThrottleReason::KeyRate);
        let snapshot = m.snapshot();
        assert!(snapshot.contains(&(THROTTLES, Some("key_rate"), 1)));
        assert!(snapshot.contains(&(THROTTLES, Some("rate"), 0)));
    }
}
