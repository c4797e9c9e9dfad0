//! The `[logs]` table: the log groups' store (SEMANTICS.md §3).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The `[logs]` table, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogsConfig {
    /// Whether the log API and the log store are on.
    pub enabled: bool,
    /// Where the log groups' segments live; `None`: `logs` under the
    /// inference log's `data_dir` (see [`LogsConfig::dir`]).
    pub data_dir: Option<PathBuf>,
    /// A query stops after reading this many events, answering what it has
    /// with a warning.
    pub max_scan_events: u64,
}

/// The default of `logs.max_scan_events`: about 5 s of a JSON query.
pub const DEFAULT_MAX_SCAN_EVENTS: u64 = 10_000_000;

impl Default for LogsConfig {
    fn default() -> Self {
        LogsConfig {
            enabled: true,
            data_dir: None,
            max_scan_events: DEFAULT_MAX_SCAN_EVENTS,
        }
    }
}

impl LogsConfig {
    /// The log store's directory: `data_dir`, or `logs` under the
    /// inference log's `store_dir` (which `--data-dir` may have moved).
    pub fn dir(&self, store_dir: &Path) -> PathBuf {
        self.data_dir
            .clone()
            .unwrap_or_else(|| store_dir.join("logs"))
    }
}

/// `[logs]` as written.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LogsBuilder {
    #[serde(default = "default_enabled")]
    pub(super) enabled: bool,
    #[serde(default)]
    pub(super) data_dir: Option<String>,
    #[serde(default = "default_max_scan_events")]
    pub(super) max_scan_events: u64,
}

impl Default for LogsBuilder {
    fn default() -> Self {
        LogsBuilder {
            enabled: default_enabled(),
            data_dir: None,
            max_scan_events: DEFAULT_MAX_SCAN_EVENTS,
        }
    }
}

fn default_max_scan_events() -> u64 {
    DEFAULT_MAX_SCAN_EVENTS
}

fn default_enabled() -> bool {
    true
}

impl LogsBuilder {
    /// Every problem is pushed to `problems`; a relative `data_dir` is
    /// resolved against the config file's directory.
    pub(super) fn validate(
        self,
        base: Option<&Path>,
        problems: &mut Vec<String>,
    ) -> Option<LogsConfig> {
        let data_dir = match self.data_dir.as_deref() {
            None => None,
            Some("") => {
                problems
                    .push("logs.data_dir: must not be empty (leave it out for the default)".into());
                return None;
            }
            Some(dir) => Some(match base {
                Some(base) if Path::new(dir).is_relative() => base.join(dir),
                _ => PathBuf::from(dir),
            }),
        };
        if self.max_scan_events == 0 {
            problems.push("logs.max_scan_events: must be at least 1".into());
            return None;
        }
        Some(LogsConfig {
            enabled: self.enabled,
            data_dir,
            max_scan_events: self.max_scan_events,
        })
    }
}
