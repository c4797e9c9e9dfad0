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
}

impl Default for LogsConfig {
    fn default() -> Self {
        LogsConfig {
            enabled: true,
            data_dir: None,
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
}

impl Default for LogsBuilder {
    fn default() -> Self {
        LogsBuilder {
            enabled: default_enabled(),
            data_dir: None,
        }
    }
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
        Some(LogsConfig {
            enabled: self.enabled,
            data_dir,
        })
    }
}
