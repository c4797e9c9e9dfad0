//! The store's configuration, embedded by the server under `[store]`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::{Result, StoreError};
use crate::redact::RedactRule;

/// When an append is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Durability {
    /// SQLite: acknowledge once the record is written to the journal (to
    /// the kernel, not necessarily fsynced); the journal is fsynced at least
    /// every `fsync_interval_ms`. A crash of Vigil loses nothing
    /// acknowledged; a power loss may lose the last interval. PostgreSQL
    /// always commits durably before acknowledging.
    #[default]
    Os,
    /// Acknowledge only after a durable (fsynced) group commit: of the
    /// journal (SQLite) or of the transaction (PostgreSQL).
    Fsync,
}

/// What happens to a new record when the backend is down and the spill
/// queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SpillPolicy {
    /// Refuse the record: the append fails with an unavailable error (503).
    #[default]
    Reject,
    /// Delete the oldest spill segment (its records are counted as dropped)
    /// to make room.
    DropOldest,
}

/// Configuration of the inference log. Every field has a default, so an
/// empty `[store]` table is valid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// Directory for the SQLite file (`inferences.db`), its journal
    /// (`journal/`) and the spill queue (`spill/`). Default: `vigil-data`.
    pub data_dir: PathBuf,
    /// Database URL. Unset: embedded SQLite in `data_dir`.
    /// `postgres://user:password@host:port/db`: PostgreSQL (no TLS). Default: unset.
    pub url: Option<String>,
    /// When appends are acknowledged: `os` or `fsync`. Default: `os`.
    /// PostgreSQL always commits durably (`synchronous_commit` is left on).
    pub durability: Durability,
    /// In `os` mode, the longest time a journaled (SQLite) or spilled
    /// record waits for its fsync, in milliseconds. Default: 100.
    pub fsync_interval_ms: u64,
    /// SQLite: how long the indexer waits after the first journaled record
    /// of a quiet spell before applying what was journaled to SQLite in one
    /// transaction (sooner once `max_batch_records` wait), in milliseconds.
    /// Default: 25.
    pub index_interval_ms: u64,
    /// SQLite: the journal's segment size, in bytes; applied segments are
    /// deleted whole. Default: 16777216 (16 MiB).
    pub journal_segment_bytes: u64,
    /// Largest total size of the spill queue, in bytes. Default: 268435456 (256 MiB).
    pub spill_max_bytes: u64,
    /// What to do when the spill queue is full: `reject` or `drop_oldest`.
    /// Default: `reject`.
    pub spill_policy: SpillPolicy,
    /// How often the spill queue is retried against the backend, in
    /// milliseconds. Default: 1000.
    pub spill_replay_interval_ms: u64,
    /// Days to keep records; unset keeps them forever. Default: unset.
    pub retention_days: Option<u32>,
    /// How often the retention sweeper runs, in milliseconds. Default: 60000.
    pub retention_sweep_interval_ms: u64,
    /// Rows deleted per transaction by the sweeper. Default: 1000.
    pub retention_batch_size: usize,
    /// Per-feature redaction rules (`drop`, `hash`, `keep`) applied before a
    /// record is written; unlisted features are kept. Default: empty.
    pub redact: BTreeMap<String, RedactRule>,
    /// Key of the HMAC-SHA256 used by `hash` rules. Required when a rule is
    /// `hash`; the server may fill it from `VIGIL_STORE_REDACT_KEY`. Default: unset.
    pub redact_hash_key: Option<String>,
    /// Most records waiting to be written: journaled but not yet applied to
    /// SQLite, or queued for a PostgreSQL commit; appends wait when it is
    /// full. Default: 16384.
    pub writer_queue_capacity: usize,
    /// Most records written in one transaction: applied to SQLite by the
    /// indexer, or group-committed to PostgreSQL. Default: 4096.
    pub max_batch_records: usize,
    /// PostgreSQL connection timeout in milliseconds. Default: 5000.
    pub connect_timeout_ms: u64,
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("vigil-data")
}
fn default_fsync_interval_ms() -> u64 {
    100
}
fn default_index_interval_ms() -> u64 {
    25
}
fn default_journal_segment_bytes() -> u64 {
    16 << 20
}
fn default_spill_max_bytes() -> u64 {
    256 * 1024 * 1024
}
fn default_spill_replay_interval_ms() -> u64 {
    1000
}
fn default_retention_sweep_interval_ms() -> u64 {
    60_000
}
fn default_retention_batch_size() -> usize {
    1000
}
fn default_writer_queue_capacity() -> usize {
    16_384
}
fn default_max_batch_records() -> usize {
    4096
}
fn default_connect_timeout_ms() -> u64 {
    5000
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            data_dir: default_data_dir(),
            url: None,
            durability: Durability::default(),
            fsync_interval_ms: default_fsync_interval_ms(),
            index_interval_ms: default_index_interval_ms(),
            journal_segment_bytes: default_journal_segment_bytes(),
            spill_max_bytes: default_spill_max_bytes(),
            spill_policy: SpillPolicy::default(),
            spill_replay_interval_ms: default_spill_replay_interval_ms(),
            retention_days: None,
            retention_sweep_interval_ms: default_retention_sweep_interval_ms(),
            retention_batch_size: default_retention_batch_size(),
            redact: BTreeMap::new(),
            redact_hash_key: None,
            writer_queue_capacity: default_writer_queue_capacity(),
            max_batch_records: default_max_batch_records(),
            connect_timeout_ms: default_connect_timeout_ms(),
        }
    }
}

impl StoreConfig {
    /// A default configuration storing under `data_dir`.
    pub fn with_data_dir(data_dir: impl Into<PathBuf>) -> Self {
        StoreConfig {
            data_dir: data_dir.into(),
            ..StoreConfig::default()
        }
    }

    /// Checks the configuration and reports every problem at once.
    pub fn validate(&self) -> Result<()> {
        let mut problems = Vec::new();
        if let Some(url) = &self.url
            && !(url.starts_with("postgres://") || url.starts_with("postgresql://"))
        {
            problems.push("`url` must start with postgres:// or postgresql://".to_owned());
        }
        let positive = [
            ("fsync_interval_ms", self.fsync_interval_ms),
            ("index_interval_ms", self.index_interval_ms),
            ("spill_max_bytes", self.spill_max_bytes),
            ("spill_replay_interval_ms", self.spill_replay_interval_ms),
            (
                "retention_sweep_interval_ms",
                self.retention_sweep_interval_ms,
            ),
            ("retention_batch_size", self.retention_batch_size as u64),
            ("writer_queue_capacity", self.writer_queue_capacity as u64),
            ("max_batch_records", self.max_batch_records as u64),
            ("connect_timeout_ms", self.connect_timeout_ms),
        ];
        for (name, value) in positive {
            if value == 0 {
                problems.push(format!("`{name}` must be greater than 0"));
            }
        }
        if self.journal_segment_bytes < 4096 {
            problems.push("`journal_segment_bytes` must be at least 4096".to_owned());
        }
        if self.retention_days == Some(0) {
            problems.push("`retention_days` must be at least 1 (unset keeps forever)".to_owned());
        }
        let hashes = self.redact.values().any(|r| *r == RedactRule::Hash);
        let key_empty = self.redact_hash_key.as_deref().is_none_or(str::is_empty);
        if hashes && key_empty {
            problems.push("`redact` has a `hash` rule but `redact_hash_key` is unset".to_owned());
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(StoreError::Config(problems.join("; ")))
        }
    }

    /// The SQLite database file.
    pub fn sqlite_path(&self) -> PathBuf {
        self.data_dir.join("inferences.db")
    }

    /// The SQLite log's journal directory.
    pub fn journal_dir(&self) -> PathBuf {
        self.data_dir.join("journal")
    }

    /// The spill queue's directory.
    pub fn spill_dir(&self) -> PathBuf {
        self.data_dir.join("spill")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_table_gives_defaults() {
        let cfg: StoreConfig = serde_json::from_str("{}").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(cfg, StoreConfig::default());
        assert_eq!(cfg.fsync_interval_ms, 100);
        assert_eq!(cfg.durability, Durability::Os);
        assert_eq!(cfg.spill_policy, SpillPolicy::Reject);
        assert!(cfg.validate().is_ok());
    }

    #[test]
    fn parses_modes_and_rules() {
        let cfg: StoreConfig = serde_json::from_str(
            r#"{"durability":"fsync","spill_policy":"drop_oldest",
                "redact":{"email":"hash","card":"drop"},"redact_hash_key":"k"}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(cfg.durability, Durability::Fsync);
        assert_eq!(cfg.spill_policy, SpillPolicy::DropOldest);
        assert_eq!(cfg.redact.get("card"), Some(&RedactRule::Drop));
        assert!(cfg.validate().is_ok());
    }

    #[test]
    fn unknown_keys_are_rejected() {
        assert!(serde_json::from_str::<StoreConfig>(r#"{"durabilty":"os"}"#).is_err());
    }

    #[test]
    fn reports_all_problems() {
        let mut cfg = StoreConfig {
            url: Some("mysql://x".into()),
            fsync_interval_ms: 0,
            ..StoreConfig::default()
        };
        cfg.redact.insert("email".into(), RedactRule::Hash);
        let msg = cfg
            .validate()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(msg.contains("`url`"), "{msg}");
        assert!(msg.contains("fsync_interval_ms"), "{msg}");
        assert!(msg.contains("redact_hash_key"), "{msg}");
    }
}
