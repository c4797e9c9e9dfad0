//! Token buckets (governor's GCRA) on an injectable clock, and the
//! concurrency limit.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use governor::clock::{Clock, FakeRelativeClock};
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

/// The time source of every bucket: the real monotonic clock, or a fake one
/// a test advances by hand.
#[derive(Debug, Clone)]
pub enum GatewayClock {
    /// Real time, counted from `start`.
    Real {
        /// When the clock was made.
        start: Instant,
    },
    /// A test's clock.
    Fake(FakeRelativeClock),
}

impl GatewayClock {
    /// The real clock.
    pub fn real() -> GatewayClock {
        GatewayClock::Real {
            start: Instant::now(),
        }
    }
}

impl Clock for GatewayClock {
    type Instant = Nanos;
    fn now(&self) -> Nanos {
        match self {
            GatewayClock::Real { start } => Nanos::from(start.elapsed()),
            GatewayClock::Fake(clock) => clock.now(),
        }
    }
}

type Limiter = RateLimiter<NotKeyed, InMemoryState, GatewayClock, NoOpMiddleware<Nanos>>;

/// One token bucket: a steady rate and a burst.
#[derive(Debug)]
pub struct Bucket {
    limiter: Limiter,
    clock: GatewayClock,
    rate_per_s: f64,
    burst: u32,
}

impl Bucket {
    /// A full bucket refilled at `rate_per_s` up to `burst`.
    pub fn new(rate_per_s: f64, burst: u32, clock: GatewayClock) -> Bucket {
        // Config validation keeps the rate in (0, 1e9] and the burst >= 1;
        // the fallbacks only guard against a caller that skipped it.
        let period = Duration::from_secs_f64(1.0 / rate_per_s.clamp(1e-9, 1e9));
        let burst_nz = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::with_period(period.max(Duration::from_nanos(1)))
            .unwrap_or(Quota::per_second(NonZeroU32::MAX))
            .allow_burst(burst_nz);
        Bucket {
            limiter: RateLimiter::direct_with_clock(quota, clock.clone()),
            clock,
            rate_per_s,
            burst,
        }
    }

    /// Take one token, or say how long until one is there.
    pub fn check(&self) -> Result<(), Duration> {
        self.limiter
            .check()
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }

    /// Whether this bucket was built for the same plan (a reload keeps it,
    /// with its current fill, when the plan did not change).
    pub fn same_plan(&self, rate_per_s: f64, burst: u32) -> bool {
        self.rate_per_s == rate_per_s && self.burst == burst
    }
}

/// The whole seconds to put in `Retry-After` for a wait (at least 1).
pub fn retry_after_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

/// A bucket for a plan, reusing `old` when its plan is the same.
pub fn bucket_for(
    rate_per_s: f64,
    burst: u32,
    old: Option<&Arc<Bucket>>,
    clock: &GatewayClock,
) -> Arc<Bucket> {
    match old {
        Some(old) if old.same_plan(rate_per_s, burst) => Arc::clone(old),
        _ => Arc::new(Bucket::new(rate_per_s, burst, clock.clone())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_the_burst_then_the_rate() {
        let fake = FakeRelativeClock::default();
        let bucket = Bucket::new(10.0, 3, GatewayClock::Fake(fake.clone()));
        for _ in 0..3 {
            assert_eq!(bucket.check(), Ok(()));
        }
        let wait = bucket.check().expect_err("burst used up");
        assert_eq!(wait, Duration::from_millis(100));
        fake.advance(Duration::from_millis(99));
        assert!(bucket.check().is_err());
        fake.advance(Duration::from_millis(1));
        assert_eq!(bucket.check(), Ok(()));
        assert!(bucket.check().is_err());
        // A long idle time refills only up to the burst.
        fake.advance(Duration::from_secs(60));
        for _ in 0..3 {
            assert_eq!(bucket.check(), Ok(()));
        }
        assert!(bucket.check().is_err());
    }

    #[test]
    fn fractional_rates_and_retry_after() {
        let fake = FakeRelativeClock::default();
        let bucket = Bucket::new(0.5, 1, GatewayClock::Fake(fake));
        assert_eq!(bucket.check(), Ok(()));
        let wait = bucket.check().expect_err("empty");
        assert_eq!(wait, Duration::from_secs(2));
        assert_eq!(retry_after_secs(wait), 2);
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1500)), 2);
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
    }

    #[test]
    fn reload_keeps_a_bucket_with_the_same_plan() {
        let clock = GatewayClock::Fake(FakeRelativeClock::default());
        let old = Arc::new(Bucket::new(5.0, 2, clock.clone()));
        assert!(Arc::ptr_eq(&bucket_for(5.0, 2, Some(&old), &clock), &old));
        assert!(!Arc::ptr_eq(&bucket_for(5.0, 3, Some(&old), &clock), &old));
    }
}
