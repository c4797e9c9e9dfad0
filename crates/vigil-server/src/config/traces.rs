//! The `[traces]` table: the trace store, its retention, the queue in
//! front of it and the sampling rules in force at start-up.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use vigil_trace::sampling::Rule;

/// The `[traces]` table, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct TracesConfig {
    /// Whether requests are sampled and traces stored and served.
    pub enabled: bool,
    /// Where the trace store lives; `None`: `traces` under the inference
    /// log's `data_dir` (see [`TracesConfig::dir`]).
    pub data_dir: Option<PathBuf>,
    /// Traces older than this many days are dropped (whole segments).
    pub retention_days: u32,
    /// The store is kept under about this many bytes by dropping its
    /// oldest segments.
    pub max_bytes: u64,
    /// Finished traces waiting for the trace writer; beyond it a trace is
    /// dropped and counted, so a slow disk never slows requests.
    pub queue_capacity: usize,
    /// `[[traces.sampling_rules]]`: the rules at start-up (rules put through
    /// the API are kept in the store's directory and win over these).
    pub sampling_rules: Vec<Rule>,
    /// The largest `POST /v1/traces` body, compressed or once inflated.
    pub otlp_max_body_bytes: usize,
}

/// The default of `traces.retention_days` (X-Ray's 30 days).
pub const DEFAULT_RETENTION_DAYS: u32 = 30;
/// The default of `traces.max_bytes`: 4 GiB.
pub const DEFAULT_MAX_BYTES: u64 = 4 << 30;
/// The default of `traces.queue_capacity`.
pub const DEFAULT_QUEUE_CAPACITY: usize = 4096;
/// The default of `traces.otlp_max_body_bytes`: 4 MiB.
pub const DEFAULT_OTLP_MAX_BODY_BYTES: usize = 4 << 20;

impl Default for TracesConfig {
    fn default() -> Self {
        TracesConfig {
            enabled: true,
            data_dir: None,
            retention_days: DEFAULT_RETENTION_DAYS,
            max_bytes: DEFAULT_MAX_BYTES,
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            sampling_rules: Vec::new(),
            otlp_max_body_bytes: DEFAULT_OTLP_MAX_BODY_BYTES,
        }
    }
}

impl TracesConfig {
    /// The trace store's directory: `data_dir`, or `traces` under the
    /// inference log's `store_dir` (which `--data-dir` may have moved).
    pub fn dir(&self, store_dir: &Path) -> PathBuf {
        self.data_dir
            .clone()
            .unwrap_or_else(|| store_dir.join("traces"))
    }
}

/// `[traces]` as written.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TracesBuilder {
    #[serde(default = "default_enabled")]
    enabled: bool,
    #[serde(default)]
    data_dir: Option<String>,
    #[serde(default = "default_retention_days")]
    retention_days: u32,
    #[serde(default = "default_max_bytes")]
    max_bytes: u64,
    #[serde(default = "default_queue_capacity")]
    queue_capacity: usize,
    #[serde(default)]
    sampling_rules: Vec<Rule>,
    #[serde(default = "default_otlp_max_body_bytes")]
    otlp_max_body_bytes: usize,
}

impl Default for TracesBuilder {
    fn default() -> Self {
        TracesBuilder {
            enabled: true,
            data_dir: None,
            retention_days: DEFAULT_RETENTION_DAYS,
            max_bytes: DEFAULT_MAX_BYTES,
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            sampling_rules: Vec::new(),
            otlp_max_body_bytes: DEFAULT_OTLP_MAX_BODY_BYTES,
        }
    }
}

fn default_enabled() -> bool {
    true
}

fn default_retention_days() -> u32 {
    DEFAULT_RETENTION_DAYS
}

fn default_max_bytes() -> u64 {
    DEFAULT_MAX_BYTES
}

fn default_queue_capacity() -> usize {
    DEFAULT_QUEUE_CAPACITY
}

fn default_otlp_max_body_bytes() -> usize {
    DEFAULT_OTLP_MAX_BODY_BYTES
}

impl TracesBuilder {
    /// Every problem is pushed to `problems`; a relative `data_dir` is
    /// resolved against the config file's directory.
    pub(super) fn validate(
        self,
        base: Option<&Path>,
        problems: &mut Vec<String>,
    ) -> Option<TracesConfig> {
        let before = problems.len();
        let data_dir = match self.data_dir.as_deref() {
            None => None,
            Some("") => {
                problems.push(
                    "traces.data_dir: must not be empty (leave it out for the default)".into(),
                );
                None
            }
            Some(dir) => Some(match base {
                Some(base) if Path::new(dir).is_relative() => base.join(dir),
                _ => PathBuf::from(dir),
            }),
        };
        if self.retention_days == 0 {
            problems.push("traces.retention_days: must be at least 1".into());
        }
        if self.max_bytes < 1 << 20 {
            problems.push(format!(
                "traces.max_bytes: must be at least 1048576 (1 MiB), got {}",
                self.max_bytes
            ));
        }
        if !(1..=1_000_000).contains(&self.queue_capacity) {
            problems.push(format!(
                "traces.queue_capacity: must be between 1 and 1000000, got {}",
                self.queue_capacity
            ));
        }
        if !(1024..=1 << 30).contains(&self.otlp_max_body_bytes) {
            problems.push(format!(
                "traces.otlp_max_body_bytes: must be between 1024 and 1073741824 (1 GiB), got {}",
                self.otlp_max_body_bytes
            ));
        }
        // The rules' own checks, each field named `traces.sampling_rules[i]`.
        match vigil_trace::sampling::Sampler::new(self.sampling_rules.clone()) {
            Ok(_) => {}
            Err(vigil_trace::sampling::RuleError::Invalid(found)) => {
                problems.extend(found.iter().map(|p| format!("traces.{p}")));
            }
            Err(other) => problems.push(format!("traces.sampling_rules: {other}")),
        }
        (problems.len() == before).then_some(TracesConfig {
            enabled: self.enabled,
            data_dir,
            retention_days: self.retention_days,
            max_bytes: self.max_bytes,
            queue_capacity: self.queue_capacity,
            sampling_rules: self.sampling_rules,
            otlp_max_body_bytes: self.otlp_max_body_bytes,
        })
    }
}
