//! `subscriptions.json`: every filter's definition, rewritten atomically (a
//! synced temporary file renamed over it) on each change.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::SubscriptionError;
use super::definition::SubscriptionFilter;

/// The file's name in the log store's directory.
pub const FILE: &str = "subscriptions.json";

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    subscriptions: Vec<SubscriptionFilter>,
}

/// The definitions in `dir`; none when the file does not exist.
pub(crate) fn read(dir: &Path) -> Result<Vec<SubscriptionFilter>, SubscriptionError> {
    let path = dir.join(FILE);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice::<File>(&bytes)
            .map(|f| f.subscriptions)
            .map_err(|e| {
                SubscriptionError::storage(&path, format!("not a subscriptions file: {e}"))
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(SubscriptionError::storage(&path, e.to_string())),
    }
}

/// Replaces the file with `filters`, sorted by group and name.
pub(crate) fn write(
    dir: &Path,
    mut filters: Vec<SubscriptionFilter>,
) -> Result<(), SubscriptionError> {
    use std::io::Write as _;
    filters.sort_by(|a, b| (&a.group, &a.name).cmp(&(&b.group, &b.name)));
    let path = dir.join(FILE);
    let tmp = dir.join(format!("{FILE}.tmp"));
    let bytes = serde_json::to_vec_pretty(&File {
        subscriptions: filters,
    })
    .map_err(|e| SubscriptionError::storage(&path, e.to_string()))?;
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        std::fs::File::open(dir)?.sync_all()
    };
    write().map_err(|e| SubscriptionError::storage(&path, e.to_string()))
}
