//! The store's configuration: its tiers and its background intervals.

use std::time::Duration;

/// One tier: points of `resolution_s` seconds kept `retention_s` seconds,
/// sealed in blocks of `block_points` buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TierConfig {
    /// Seconds per point.
    pub resolution_s: u32,
    /// How long points are kept, in seconds.
    pub retention_s: u64,
    /// Buckets per block (a block spans `resolution_s × block_points`).
    pub block_points: u32,
}

/// The store's configuration. [`TsdbConfig::default`] is CloudWatch's
/// roll-up (SEMANTICS.md §1.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TsdbConfig {
    /// Finest first; each resolution a multiple of the one before; one tier
    /// of 1 s (high-resolution data land there) and one of 60 s (standard
    /// data land there). Default: 1 s × 3 h, 60 s × 15 days, 300 s × 63
    /// days, 3600 s × 455 days.
    pub tiers: Vec<TierConfig>,
    /// Independent locks over the series. Default: 16.
    pub shards: usize,
    /// How often the buffered (non-durable) writes reach the write-ahead
    /// log: what a crash may lose of Vigil's own metrics. Default: 1 s.
    pub wal_flush_interval: Duration,
    /// How often blocks are persisted and the write-ahead log cut.
    /// Default: 60 s.
    pub checkpoint_interval: Duration,
    /// An open block is sealed (compressed) once its window ended this long
    /// ago; a later point for it reopens it. Default: 60 s.
    pub seal_delay: Duration,
}

const HOUR: u64 = 3600;
const DAY: u64 = 24 * HOUR;

impl Default for TsdbConfig {
    fn default() -> Self {
        TsdbConfig {
            tiers: vec![
                TierConfig {
                    resolution_s: 1,
                    retention_s: 3 * HOUR,
                    block_points: 600,
                },
                TierConfig {
                    resolution_s: 60,
                    retention_s: 15 * DAY,
                    block_points: 720,
                },
                TierConfig {
                    resolution_s: 300,
                    retention_s: 63 * DAY,
                    block_points: 288,
                },
                TierConfig {
                    resolution_s: 3600,
                    retention_s: 455 * DAY,
                    block_points: 168,
                },
            ],
            shards: 16,
            wal_flush_interval: Duration::from_secs(1),
            checkpoint_interval: Duration::from_secs(60),
            seal_delay: Duration::from_secs(60),
        }
    }
}

impl TsdbConfig {
    /// Every problem of the configuration, each naming its field.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut errors = Vec::new();
        for (i, t) in self.tiers.iter().enumerate() {
            if t.resolution_s == 0 {
                errors.push(format!("tiers[{i}].resolution_s must be positive"));
            }
            if t.retention_s == 0 {
                errors.push(format!("tiers[{i}].retention_s must be positive"));
            }
            if t.block_points == 0 {
                errors.push(format!("tiers[{i}].block_points must be positive"));
            }
            if i > 0 {
                let prev = self.tiers[i - 1].resolution_s;
                if t.resolution_s <= prev || prev == 0 || t.resolution_s % prev != 0 {
                    errors.push(format!(
                        "tiers[{i}].resolution_s must be a multiple of tiers[{}].resolution_s ({prev}) and larger, got {}",
                        i - 1,
                        t.resolution_s
                    ));
                }
            }
        }
        for need in [1, 60] {
            if !self.tiers.iter().any(|t| t.resolution_s == need) {
                errors.push(format!("tiers must include a tier of resolution_s {need}"));
            }
        }
        if self.shards == 0 || self.shards > 4096 {
            errors.push(format!("shards must be 1..=4096, got {}", self.shards));
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// The tier index data of `resolution_s` land in.
    pub(crate) fn base_tier(&self, resolution_s: u32) -> usize {
        self.tiers
            .iter()
            .position(|t| t.resolution_s == resolution_s)
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_valid_and_a_bad_config_reports_every_problem() {
        assert_eq!(TsdbConfig::default().validate(), Ok(()));
        let bad = TsdbConfig {
            tiers: vec![
                TierConfig {
                    resolution_s: 60,
                    retention_s: 0,
                    block_points: 10,
                },
                TierConfig {
                    resolution_s: 90,
                    retention_s: 10,
                    block_points: 0,
                },
            ],
            shards: 0,
            ..TsdbConfig::default()
        };
        let errors = bad.validate().err().unwrap_or_default();
        assert_eq!(errors.len(), 5, "{errors:?}");
        assert!(errors[0].starts_with("tiers[0].retention_s"));
        assert!(errors.iter().any(|e| e.contains("resolution_s 1")));
    }
}
