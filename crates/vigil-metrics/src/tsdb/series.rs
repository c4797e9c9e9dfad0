//! One series: a tier per resolution, each a map of time windows to
//! blocks. A point is merged into its bucket of the tier its resolution
//! lands in and of every coarser tier at write time, so every tier is
//! complete on its own and a query reads exactly one.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::aggregate::Aggregate;

use super::block::Columns;
use super::config::TierConfig;

/// A block, open (columns) or sealed (bytes).
#[derive(Debug, Clone)]
pub(crate) enum Block {
    Open(Columns),
    Sealed(Sealed),
}

/// A sealed block's bytes, shared with queries and checkpoints.
#[derive(Debug, Clone)]
pub(crate) struct Sealed {
    pub(crate) bytes: Arc<[u8]>,
    pub(crate) points: u32,
}

/// One tier of one series. Windows are numbered from the epoch:
/// window = bucket / block_points, bucket = timestamp / resolution.
#[derive(Debug, Clone, Default)]
pub(crate) struct Tier {
    pub(crate) blocks: BTreeMap<i64, Block>,
}

/// What a query takes out of a tier under the lock: shared sealed bytes
/// and copies of open points, decoded after the lock is released.
#[derive(Debug)]
pub(crate) enum Piece {
    Open(Columns),
    Sealed(Arc<[u8]>),
}

impl Tier {
    pub(crate) fn record(&mut self, cfg: &TierConfig, timestamp_ms: i64, agg: &Aggregate) {
        let bucket = timestamp_ms.div_euclid(i64::from(cfg.resolution_s) * 1000);
        let window = bucket.div_euclid(i64::from(cfg.block_points));
        let block = self
            .blocks
            .entry(window)
            .or_insert_with(|| Block::Open(Columns::default()));
        if let Block::Sealed(s) = block {
            // A late point: reopen the block (sealed again by `seal`).
            match Columns::decode(&s.bytes, true) {
                Ok(c) => *block = Block::Open(c),
                Err(reason) => {
                    tracing::error!(%reason, window, "dropping a damaged block");
                    *block = Block::Open(Columns::default());
                }
            }
        }
        if let Block::Open(c) = block {
            c.record(bucket, agg);
        }
    }

    /// Seals open blocks whose window ended before `before_ms`.
    pub(crate) fn seal(&mut self, cfg: &TierConfig, before_ms: i64) {
        let span_ms = i64::from(cfg.resolution_s) * 1000 * i64::from(cfg.block_points);
        for (window, block) in &mut self.blocks {
            if (window + 1).saturating_mul(span_ms) > before_ms {
                break;
            }
            if let Block::Open(c) = block {
                let points = c.len() as u32;
                *block = Block::Sealed(Sealed {
                    bytes: c.encode().into(),
                    points,
                });
            }
        }
    }

    /// Drops blocks whose window ended before `before_ms`.
    pub(crate) fn expire(&mut self, cfg: &TierConfig, before_ms: i64) {
        let span_ms = i64::from(cfg.resolution_s) * 1000 * i64::from(cfg.block_points);
        // First window that ends at or after `before_ms`.
        let keep = before_ms.div_euclid(span_ms);
        self.blocks = self.blocks.split_off(&keep);
    }

    /// The blocks that may hold buckets in `from..to`.
    pub(crate) fn pieces(&self, cfg: &TierConfig, from: i64, to: i64) -> Vec<Piece> {
        let bp = i64::from(cfg.block_points);
        let (w0, w1) = (from.div_euclid(bp), (to - 1).div_euclid(bp));
        if w1 < w0 {
            return Vec::new();
        }
        self.blocks
            .range(w0..=w1)
            .map(|(_, b)| match b {
                Block::Open(c) => Piece::Open(c.range(from, to)),
                Block::Sealed(s) => Piece::Sealed(Arc::clone(&s.bytes)),
            })
            .collect()
    }

    /// (points, sealed bytes, open points, open heap bytes).
    pub(crate) fn usage(&self) -> TierUsage {
        let mut u = TierUsage::default();
        for b in self.blocks.values() {
            match b {
                Block::Open(c) => {
                    u.open_points += c.len() as u64;
                    u.open_bytes += c.heap_bytes() as u64;
                }
                Block::Sealed(s) => {
                    u.sealed_points += u64::from(s.points);
                    u.sealed_bytes += s.bytes.len() as u64;
                }
            }
        }
        u
    }
}

/// What a tier holds (see [`super::TierStats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct TierUsage {
    pub(crate) sealed_points: u64,
    pub(crate) sealed_bytes: u64,
    pub(crate) open_points: u64,
    pub(crate) open_bytes: u64,
}

/// One series: its tiers, and which resolutions it was written with.
#[derive(Debug, Clone)]
pub(crate) struct Series {
    pub(crate) tiers: Vec<Tier>,
    pub(crate) has_high: bool,
    pub(crate) has_standard: bool,
}

impl Series {
    pub(crate) fn new(tiers: usize) -> Self {
        Series {
            tiers: vec![Tier::default(); tiers],
            has_high: false,
            has_standard: false,
        }
    }

    /// Merges `agg` into tier `base` and every coarser tier.
    pub(crate) fn record(
        &mut self,
        cfgs: &[TierConfig],
        base: usize,
        high: bool,
        timestamp_ms: i64,
        agg: &Aggregate,
    ) {
        if high {
            self.has_high = true;
        } else {
            self.has_standard = true;
        }
        for (tier, cfg) in self.tiers.iter_mut().zip(cfgs).skip(base) {
            tier.record(cfg, timestamp_ms, agg);
        }
    }

    /// Seals and expires every tier as of `now_ms`; true when nothing is
    /// left.
    pub(crate) fn maintain(
        &mut self,
        cfgs: &[TierConfig],
        now_ms: i64,
        seal_delay_ms: i64,
    ) -> bool {
        for (tier, cfg) in self.tiers.iter_mut().zip(cfgs) {
            let retention_ms =
                i64::try_from(cfg.retention_s.saturating_mul(1000)).unwrap_or(i64::MAX);
            tier.expire(cfg, now_ms.saturating_sub(retention_ms));
            tier.seal(cfg, now_ms.saturating_sub(seal_delay_ms));
        }
        self.tiers.iter().all(|t| t.blocks.is_empty())
    }

    /// Seals every open block (for a bench or a test measuring sizes).
    pub(crate) fn seal_all(&mut self, cfgs: &[TierConfig]) {
        for (tier, cfg) in self.tiers.iter_mut().zip(cfgs) {
            tier.seal(cfg, i64::MAX);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::tsdb::config::TsdbConfig;

    #[test]
    fn a_point_rolls_into_every_coarser_tier_and_sealed_blocks_reopen() {
        let cfg = TsdbConfig::default();
        let mut s = Series::new(cfg.tiers.len());
        for t in 0..7_200 {
            s.record(&cfg.tiers, 0, true, t * 1000, &Aggregate::from_value(1.0));
        }
        let points: Vec<u64> = s.tiers.iter().map(|t| t.usage().open_points).collect();
        assert_eq!(points, vec![7_200, 120, 24, 2]);
        s.seal_all(&cfg.tiers);
        assert_eq!(s.tiers[0].usage().sealed_points, 7_200);
        // A late point for a sealed window reopens it and merges.
        s.record(&cfg.tiers, 0, true, 5_000, &Aggregate::from_value(3.0));
        let Some(Block::Open(c)) = s.tiers[0].blocks.get(&0) else {
            panic!("block 0 should be open")
        };
        assert_eq!((c.count[5], c.sum[5], c.max[5]), (2.0, 4.0, 3.0));
        assert_eq!(s.tiers[0].usage().open_points, 600);
        assert_eq!(s.tiers[0].usage().sealed_points, 6_600);
    }

    #[test]
    fn retention_drops_whole_old_windows_per_tier() {
        let cfg = TsdbConfig::default();
        let mut s = Series::new(cfg.tiers.len());
        let hour = 3_600_000;
        for h in 0..10 {
            s.record(&cfg.tiers, 0, true, h * hour, &Aggregate::from_value(1.0));
        }
        let empty = s.maintain(&cfg.tiers, 10 * hour, 60_000);
        assert!(!empty);
        // 1 s tier keeps 3 h: points at 7 h, 8 h, 9 h; 60 s tier keeps all.
        let tier0: u64 = s.tiers[0].usage().sealed_points + s.tiers[0].usage().open_points;
        assert_eq!(tier0, 3);
        assert_eq!(
            s.tiers[1].usage().sealed_points + s.tiers[1].usage().open_points,
            10
        );
        assert!(s.maintain(&cfg.tiers, 10_000 * 24 * hour, 60_000));
    }
}
