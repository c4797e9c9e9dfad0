//! Per-edge figures: outcome counts, total response time and a fixed
//! log-spaced response-time histogram, mergeable by adding bucket counts.

use crate::model::Outcome;

/// Buckets per doubling: bucket bounds grow by 2^(1/4) ≈ 1.19, so a
/// bucket's geometric middle is within 2^(1/8) − 1 ≈ 9.05 % of any value
/// in it.
const STEPS_PER_DOUBLING: f64 = 4.0;

/// Bucket 0 holds ≤ 1 µs; bucket `i` holds (2^((i−1)/4), 2^(i/4)] µs; the
/// last (2^26 µs ≈ 67 s) also holds everything longer (the range asked
/// for is 1 µs … 60 s).
pub(super) const BUCKETS: usize = 105;

/// The bucket of a duration in µs.
pub(super) fn bucket_of(us: i64) -> usize {
    if us <= 1 {
        return 0;
    }
    let i = ((us as f64).log2() * STEPS_PER_DOUBLING).ceil();
    (i as usize).min(BUCKETS - 1)
}

/// The upper bound of bucket `i`, seconds.
pub(super) fn bucket_upper_s(i: usize) -> f64 {
    (i as f64 / STEPS_PER_DOUBLING).exp2() / 1e6
}

/// The bucket whose upper bound is `upper_s` seconds (the inverse of
/// [`bucket_upper_s`]).
pub(super) fn bucket_index(upper_s: f64) -> usize {
    let i = ((upper_s * 1e6).log2() * STEPS_PER_DOUBLING).round();
    if i.is_finite() && i > 0.0 {
        (i as usize).min(BUCKETS - 1)
    } else {
        0
    }
}

/// The estimate a bucket stands for: its geometric middle, seconds
/// (1 µs for bucket 0).
pub(super) fn bucket_middle_s(i: usize) -> f64 {
    if i == 0 {
        return 1e-6;
    }
    ((i as f64 - 0.5) / STEPS_PER_DOUBLING).exp2() / 1e6
}

/// The figures of one edge (or node) over some minutes.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Stats {
    pub ok: u64,
    pub error: u64,
    pub throttle: u64,
    pub fault: u64,
    /// Sum of callee durations, µs.
    pub total_us: u64,
    pub histogram: [u64; BUCKETS],
}

impl Default for Stats {
    fn default() -> Stats {
        Stats {
            ok: 0,
            error: 0,
            throttle: 0,
            fault: 0,
            total_us: 0,
            histogram: [0; BUCKETS],
        }
    }
}

impl Stats {
    /// Counts one call that took `duration_us` and ended in `outcome`.
    pub fn add(&mut self, duration_us: i64, outcome: Outcome) {
        match outcome {
            Outcome::Ok => self.ok += 1,
            Outcome::Error => self.error += 1,
            Outcome::Throttle => self.throttle += 1,
            Outcome::Fault => self.fault += 1,
        }
        self.total_us = self
            .total_us
            .saturating_add(u64::try_from(duration_us).unwrap_or(0));
        self.histogram[bucket_of(duration_us)] += 1;
    }

    /// Adds `other`'s counts to these.
    pub fn merge(&mut self, other: &Stats) {
        self.ok += other.ok;
        self.error += other.error;
        self.throttle += other.throttle;
        self.fault += other.fault;
        self.total_us = self.total_us.saturating_add(other.total_us);
        for (a, b) in self.histogram.iter_mut().zip(other.histogram.iter()) {
            *a += b;
        }
    }

    /// Every call counted.
    pub fn count(&self) -> u64 {
        self.ok + self.error + self.throttle + self.fault
    }

    /// The `q` quantile (0–1) estimated from the histogram, seconds; `None`
    /// when nothing was counted. The rank is ⌈q·n⌉ (at least 1), the value
    /// the middle of the bucket that holds it.
    pub fn quantile_s(&self, q: f64) -> Option<f64> {
        let n = self.count();
        if n == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * n as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, c) in self.histogram.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(bucket_middle_s(i));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_bucket_is_found_again_from_its_upper_bound() {
        for i in 0..BUCKETS {
            assert_eq!(bucket_index(bucket_upper_s(i)), i);
        }
        assert_eq!(bucket_index(0.0), 0);
        assert_eq!(bucket_index(1e9), BUCKETS - 1);
    }

    #[test]
    fn buckets_span_one_microsecond_to_a_minute() {
        assert_eq!(bucket_of(-5), 0);
        assert_eq!(bucket_of(1), 0);
        assert_eq!(bucket_of(2), 4);
        assert_eq!(bucket_of(1_000_000), 80);
        assert!(bucket_upper_s(BUCKETS - 2) < 60.0);
        assert!(bucket_upper_s(BUCKETS - 1) >= 60.0);
        assert_eq!(bucket_of(3_600_000_000), BUCKETS - 1);
    }

    #[test]
    fn counts_follow_the_outcome() {
        let mut s = Stats::default();
        for (d, o) in [
            (10, Outcome::Ok),
            (20, Outcome::Ok),
            (30, Outcome::Error),
            (40, Outcome::Throttle),
            (50, Outcome::Fault),
        ] {
            s.add(d, o);
        }
        assert_eq!(
            (s.ok, s.error, s.throttle, s.fault, s.count()),
            (2, 1, 1, 1, 5)
        );
        assert_eq!(s.total_us, 150);
        let mut twice = s.clone();
        twice.merge(&s);
        assert_eq!((twice.count(), twice.total_us), (10, 300));
        assert_eq!(twice.histogram[bucket_of(10)], 2);
    }

    proptest! {
        #[test]
        fn a_quantile_is_within_the_bucket_error(
            mut durations in prop::collection::vec(2i64..60_000_000, 1..300),
            q in 0.01f64..1.0,
        ) {
            let mut s = Stats::default();
            for d in &durations {
                s.add(*d, Outcome::Ok);
            }
            durations.sort_unstable();
            let rank = ((q * durations.len() as f64).ceil() as usize).max(1);
            let exact = durations[rank - 1] as f64 / 1e6;
            let estimate = s.quantile_s(q).unwrap_or(f64::NAN);
            let ratio = estimate / exact;
            prop_assert!((1.0 / 1.091..=1.091).contains(&ratio), "{} vs {}", estimate, exact);
        }
    }
}
