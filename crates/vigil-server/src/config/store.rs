//! The `[store]` table: the inference log. Its keys are `vigil-store`'s
//! [`StoreConfig`] plus `enabled`; the table is kept as raw TOML values by the
//! builder so that every problem (unknown key, wrong type, invalid value) is
//! reported with the rest of the file's.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use vigil_store::StoreConfig;

/// Environment variable that overrides `store.redact_hash_key`.
pub const ENV_STORE_REDACT_KEY: &str = "VIGIL_STORE_REDACT_KEY";

/// The `[store]` table, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    /// Whether scoring requests are logged (and replayed by id). Off: no
    /// store is opened, ids are only echoed.
    pub enabled: bool,
    /// The store's own settings.
    pub store: StoreConfig,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            enabled: true,
            store: StoreConfig::default(),
        }
    }
}

/// `[store]` as written in the file.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(transparent)]
pub(super) struct StoreBuilder(pub(super) Map<String, Value>);

impl StoreBuilder {
    /// Every key with its default value (for the documentation test).
    #[cfg(test)]
    pub(super) fn every_key() -> StoreBuilder {
        let mut map = match serde_json::to_value(StoreConfig::default()) {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        };
        map.insert("enabled".to_owned(), Value::Bool(true));
        StoreBuilder(map)
    }

    /// Applies the environment overrides of this table.
    pub(super) fn apply_env(&mut self, env: &dyn Fn(&str) -> Option<String>) {
        if let Some(key) = env(ENV_STORE_REDACT_KEY) {
            self.0
                .insert("redact_hash_key".to_owned(), Value::String(key));
        }
    }

    /// Turns the table into a [`LogConfig`]; a relative `data_dir` is
    /// resolved against the config file's directory like every path in it.
    pub(super) fn validate(
        mut self,
        base: Option<&Path>,
        problems: &mut Vec<String>,
    ) -> Option<LogConfig> {
        let enabled = match self.0.remove("enabled") {
            None => true,
            Some(Value::Bool(enabled)) => enabled,
            Some(other) => {
                problems.push(format!(
                    "store.enabled: expected true or false, got {other}"
                ));
                return None;
            }
        };
        let explicit_dir = self.0.contains_key("data_dir");
        let mut store: StoreConfig = match serde_json::from_value(Value::Object(self.0)) {
            Ok(store) => store,
            Err(err) => {
                problems.push(format!("store: {err}"));
                return None;
            }
        };
        if let Some(base) = base
            && explicit_dir
            && store.data_dir.is_relative()
        {
            store.data_dir = base.join(&store.data_dir);
        }
        if let Err(err) = store.validate() {
            let text = err.to_string();
            let detail = text
                .strip_prefix("invalid store configuration: ")
                .unwrap_or(&text);
            for problem in detail.split("; ") {
                problems.push(format!("store: {problem}"));
            }
            return None;
        }
        Some(LogConfig { enabled, store })
    }
}
