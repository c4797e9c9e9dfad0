//! Helpers shared by the unit tests of this crate.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Waits (at most 10 s) until `counter` reaches `at_least` and then
/// stops moving (two equal readings 100 ms apart); returns it. For the
/// background tasks' counters: a test asserts on the settled value, so a
/// task that keeps waking shows as a larger number, not as a timing.
pub(crate) async fn settled(counter: &AtomicU64, at_least: u64) -> u64 {
    let mut before = counter.load(Ordering::Relaxed);
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = counter.load(Ordering::Relaxed);
        if now == before && now >= at_least {
            break;
        }
        before = now;
    }
    before
}
