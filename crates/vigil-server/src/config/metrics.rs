//! The `[metrics]` table: the telemetry spine, the embedded time-series
//! store and its retention per resolution (SEMANTICS.md §1.3 defaults).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The `[metrics]` table, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsConfig {
    /// Whether the spine records anything (off: no metrics, no `/metrics`
    /// figures, no metric store, no alarms).
    pub enabled: bool,
    /// Where the time-series store keeps its blocks and write-ahead log;
    /// `None`: `metrics` under the inference log's `data_dir` (see
    /// [`MetricsConfig::dir`]).
    pub data_dir: Option<PathBuf>,
    /// Retention of 1 s, 60 s, 300 s and 3600 s points, in seconds.
    pub retention_s: [u64; 4],
    /// How often blocks are written to disk and the write-ahead log cut.
    pub checkpoint_interval_s: u64,
    /// `postgres://...`: the fleet's shared store. Replicas write their
    /// aggregates there, read the fleet's merged figures from it, and one
    /// of them at a time evaluates the alarms; `None`: one node alone.
    pub url: Option<String>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            enabled: true,
            data_dir: None,
            retention_s: [3 * 3600, 15 * 86_400, 63 * 86_400, 455 * 86_400],
            checkpoint_interval_s: 60,
            url: None,
        }
    }
}

impl MetricsConfig {
    /// The metric store's directory: `data_dir`, or `metrics` under the
    /// inference log's `store_dir` (which `--data-dir` may have moved).
    pub fn dir(&self, store_dir: &Path) -> PathBuf {
        self.data_dir
            .clone()
            .unwrap_or_else(|| store_dir.join("metrics"))
    }
}

/// `[metrics]` as written.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct MetricsBuilder {
    #[serde(default = "default_enabled")]
    pub(super) enabled: bool,
    #[serde(default)]
    pub(super) data_dir: Option<String>,
    #[serde(default = "default_retention_1s_hours")]
    pub(super) retention_1s_hours: u64,
    #[serde(default = "default_retention_60s_days")]
    pub(super) retention_60s_days: u64,
    #[serde(default = "default_retention_300s_days")]
    pub(super) retention_300s_days: u64,
    #[serde(default = "default_retention_3600s_days")]
    pub(super) retention_3600s_days: u64,
    #[serde(default = "default_checkpoint_interval_s")]
    pub(super) checkpoint_interval_s: u64,
    #[serde(default)]
    pub(super) url: Option<String>,
}

impl Default for MetricsBuilder {
    fn default() -> Self {
        MetricsBuilder {
            enabled: default_enabled(),
            data_dir: None,
            retention_1s_hours: default_retention_1s_hours(),
            retention_60s_days: default_retention_60s_days(),
            retention_300s_days: default_retention_300s_days(),
            retention_3600s_days: default_retention_3600s_days(),
            checkpoint_interval_s: default_checkpoint_interval_s(),
            url: None,
        }
    }
}

fn default_enabled() -> bool {
    true
}
fn default_retention_1s_hours() -> u64 {
    3
}
fn default_retention_60s_days() -> u64 {
    15
}
fn default_retention_300s_days() -> u64 {
    63
}
fn default_retention_3600s_days() -> u64 {
    455
}
fn default_checkpoint_interval_s() -> u64 {
    60
}

impl MetricsBuilder {
    /// Every problem is pushed to `problems`; a relative `data_dir` is
    /// resolved against the config file's directory.
    pub(super) fn validate(
        self,
        base: Option<&Path>,
        problems: &mut Vec<String>,
    ) -> Option<MetricsConfig> {
        let before = problems.len();
        let data_dir = match self.data_dir.as_deref() {
            None => None,
            Some("") => {
                problems.push(
                    "metrics.data_dir: must not be empty (leave it out for the default)".into(),
                );
                None
            }
            Some(dir) => Some(match base {
                Some(base) if Path::new(dir).is_relative() => base.join(dir),
                _ => PathBuf::from(dir),
            }),
        };
        let retention = [
            ("retention_1s_hours", self.retention_1s_hours, 3600),
            ("retention_60s_days", self.retention_60s_days, 86_400),
            ("retention_300s_days", self.retention_300s_days, 86_400),
            ("retention_3600s_days", self.retention_3600s_days, 86_400),
        ];
        let mut retention_s = [0; 4];
        for (i, (key, value, unit)) in retention.into_iter().enumerate() {
            if value == 0 {
                problems.push(format!("metrics.{key}: must be at least 1"));
            }
            retention_s[i] = value.saturating_mul(unit);
        }
        if self.checkpoint_interval_s == 0 {
            problems.push("metrics.checkpoint_interval_s: must be at least 1".into());
        }
        let url = self.url.filter(|url| !url.is_empty());
        if let Some(url) = &url
            && !(url.starts_with("postgres://") || url.starts_with("postgresql://"))
        {
            problems.push(format!(
                "metrics.url: must start with postgres:// (or postgresql://), got \"{}\"",
                redact(url)
            ));
        }
        (problems.len() == before).then_some(MetricsConfig {
            enabled: self.enabled,
            data_dir,
            retention_s,
            checkpoint_interval_s: self.checkpoint_interval_s,
            url,
        })
    }
}

/// A URL without what could be a password (everything before an `@`).
fn redact(url: &str) -> String {
    match url.rsplit_once('@') {
        Some((_, host)) => format!("...@{host}"),
        None => url.to_owned(),
    }
}
