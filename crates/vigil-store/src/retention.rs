//! Retention: deleting records older than `retention_days` in small batches.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::InferenceLog;
use crate::clock::{Clock, DAY_US};
use crate::error::Result;
use crate::stats::StoreStats;

/// Deletes every record received more than `retention_days` before the
/// clock's now, `batch_size` rows per transaction, yielding between batches
/// so writers are never blocked for long. Returns the number deleted.
pub async fn sweep_once(
    log: &dyn InferenceLog,
    clock: &dyn Clock,
    retention_days: u32,
    batch_size: usize,
    stats: &StoreStats,
) -> Result<u64> {
    let cutoff = clock
        .now_us()
        .saturating_sub(i64::from(retention_days).saturating_mul(DAY_US));
    let mut total = 0;
    loop {
        let deleted = log.delete_expired(cutoff, batch_size).await?;
        total += deleted;
        StoreStats::add(&stats.retention_deleted, deleted);
        if deleted < batch_size as u64 {
            return Ok(total);
        }
        tokio::task::yield_now().await;
    }
}

/// Runs [`sweep_once`] every `interval` until `shutdown` turns true.
///
/// A bounded interval rather than a sleep until the oldest record expires:
/// a record can arrive older than every stored one (a replayed spill, a
/// replica sharing PostgreSQL), which such a deadline would miss, and the
/// interval (a minute by default) costs an idle server one indexed DELETE
/// that finds nothing per wake.
pub(crate) async fn sweeper(
    log: Arc<dyn InferenceLog>,
    clock: Arc<dyn Clock>,
    retention_days: u32,
    batch_size: usize,
    interval: Duration,
    stats: Arc<StoreStats>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        match sweep_once(
            log.as_ref(),
            clock.as_ref(),
            retention_days,
            batch_size,
            &stats,
        )
        .await
        {
            Ok(0) => {}
            Ok(deleted) => tracing::info!(deleted, "retention sweep deleted expired records"),
            Err(err) => {
                StoreStats::add(&stats.store_errors, 1);
                tracing::warn!(error = %err, "retention sweep failed");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.changed() => return,
        }
        if *shutdown.borrow() {
            return;
        }
    }
}
