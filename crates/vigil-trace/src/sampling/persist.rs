//! `sampling_rules.json`: the rule changes made through the API, laid over
//! the config's rules at start. It holds the rules put through the API and
//! the names of config rules deleted through it, so that both survive a
//! restart; a config rule the API never touched follows the config file.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::rule::{Rule, RuleError};

/// The file's name, in the directory given to `Sampler::open`.
pub const FILE_NAME: &str = "sampling_rules.json";

/// What the file holds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Overlay {
    /// Rules created or replaced through the API (they win over a config
    /// rule of the same name: they are newer).
    #[serde(default)]
    pub rules: Vec<Rule>,
    /// Config rules deleted through the API.
    #[serde(default)]
    pub deleted: Vec<String>,
}

fn storage(path: &Path, message: String) -> RuleError {
    RuleError::Storage {
        path: path.to_owned(),
        message,
    }
}

/// Reads the overlay (empty when the file does not exist); an invalid rule
/// in it is an error naming its index.
pub(crate) fn load(path: &Path) -> Result<Overlay, RuleError> {
    let overlay: Overlay = match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| storage(path, format!("not a sampling-rules file: {e}")))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Overlay::default(),
        Err(e) => return Err(storage(path, e.to_string())),
    };
    for (i, rule) in overlay.rules.iter().enumerate() {
        if let Some(problem) = rule.problems().first() {
            return Err(storage(path, format!("rules[{i}].{problem}")));
        }
    }
    Ok(overlay)
}

/// Writes the overlay atomically (a synced temporary file renamed over the
/// old one, then the directory synced).
pub(crate) fn store(path: &Path, overlay: &Overlay) -> Result<(), RuleError> {
    use std::io::Write as _;
    let bytes = serde_json::to_vec_pretty(overlay).map_err(|e| storage(path, e.to_string()))?;
    let tmp = path.with_extension("json.tmp");
    let dir = path.parent().unwrap_or(Path::new("."));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    };
    write().map_err(|e| storage(path, e.to_string()))
}
