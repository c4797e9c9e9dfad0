//! The Redis cache's circuit breaker.
//!
//! Closed, Redis is asked. After `trip_after` failures in a row it opens:
//! Redis is skipped for `open_for`. Then it is half-open: the first caller
//! probes Redis while the others keep skipping it; the probe's success
//! closes the breaker, its failure opens it for another `open_for`. So a
//! Redis that stays down costs one failed command per period, not a burst.
//!
//! Times are nanoseconds on the caller's clock, so the states are plain
//! logic to test.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

#[derive(Debug)]
pub(super) struct Breaker {
    trip_after: u32,
    open_for: u64,
    failures: AtomicU32,
    /// 0 while closed; otherwise when the open period ends.
    open_until: AtomicU64,
}

impl Breaker {
    pub(super) fn new(trip_after: u32, open_for: Duration) -> Breaker {
        Breaker {
            trip_after: trip_after.max(1),
            open_for: u64::try_from(open_for.as_nanos()).unwrap_or(u64::MAX),
            failures: AtomicU32::new(0),
            open_until: AtomicU64::new(0),
        }
    }

    /// Whether a command may go to Redis now: always while closed (without
    /// reading the clock), never while open, and to exactly one caller once
    /// the open period is over (the probe; the period starts again for
    /// everyone else).
    pub(super) fn admits(&self, now: impl FnOnce() -> u64) -> bool {
        let until = self.open_until.load(Ordering::Acquire);
        if until == 0 {
            return true;
        }
        let now = now();
        if now < until {
            return false;
        }
        let probe = self
            .open_until
            .compare_exchange(
                until,
                self.reopen_at(now),
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok();
        if probe {
            // One more failure, the probe's, opens it again.
            self.failures.store(self.trip_after - 1, Ordering::Relaxed);
        }
        probe
    }

    /// Redis answered: closed, with the count of failures cleared.
    pub(super) fn succeeded(&self) {
        self.failures.store(0, Ordering::Relaxed);
        self.open_until.store(0, Ordering::Release);
    }

    /// Redis failed at `now`; true when this failure opened the breaker.
    pub(super) fn failed(&self, now: u64) -> bool {
        let failures = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if failures < self.trip_after {
            return false;
        }
        self.open_until
            .store(self.reopen_at(now), Ordering::Release);
        self.failures.store(0, Ordering::Relaxed);
        true
    }

    /// Whether Redis is being skipped at `now`.
    #[cfg(test)]
    pub(super) fn is_open(&self, now: u64) -> bool {
        let until = self.open_until.load(Ordering::Acquire);
        until != 0 && now < until
    }

    fn reopen_at(&self, now: u64) -> u64 {
        now.saturating_add(self.open_for).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn breaker() -> Breaker {
        Breaker::new(3, Duration::from_millis(100))
    }

    /// Opened at time 0, until 100 ms.
    fn tripped() -> Breaker {
        let b = breaker();
        for _ in 0..3 {
            b.failed(0);
        }
        b
    }

    #[test]
    fn opens_after_three_failures_in_a_row_only() {
        let b = breaker();
        assert!(b.admits(|| panic!("a closed breaker reads no clock")));
        assert!(!b.failed(0));
        assert!(!b.failed(MS));
        b.succeeded();
        assert!(!b.failed(2 * MS));
        assert!(!b.failed(3 * MS));
        assert!(
            b.admits(|| 3 * MS),
            "two failures after a success keep it closed"
        );
        assert!(b.failed(4 * MS));
        assert!(b.is_open(4 * MS));
        assert!(!b.admits(|| 50 * MS));
        assert!(
            !b.admits(|| 103 * MS),
            "open until 100 ms after the third failure"
        );
    }

    #[test]
    fn one_caller_probes_when_the_period_is_over() {
        let b = tripped();
        assert!(
            b.admits(|| 100 * MS),
            "the first caller after the period probes"
        );
        assert!(!b.admits(|| 100 * MS), "the others keep skipping redis");
        assert!(!b.admits(|| 150 * MS));
        assert!(b.is_open(150 * MS));
    }

    #[test]
    fn a_failed_probe_opens_it_for_another_period_at_once() {
        let b = tripped();
        assert!(b.admits(|| 120 * MS));
        assert!(b.failed(125 * MS), "the probe's one failure reopens it");
        assert!(!b.admits(|| 224 * MS));
        assert!(b.admits(|| 225 * MS));
    }

    #[test]
    fn a_successful_probe_closes_it() {
        let b = tripped();
        assert!(b.admits(|| 100 * MS));
        b.succeeded();
        assert!(!b.is_open(100 * MS));
        assert!(b.admits(|| 100 * MS) && b.admits(|| 100 * MS));
        assert!(
            !b.failed(101 * MS),
            "closed again: three fresh failures to open"
        );
    }
}
