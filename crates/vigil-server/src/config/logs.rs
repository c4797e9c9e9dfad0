//! The `[logs]` table: the log groups' store (SEMANTICS.md §3) and the
//! subscription filters defined in the file (`[[logs.subscriptions]]`).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use vigil_logs::subscription::{Destination, FilterSpec, MAX_FILTERS_PER_GROUP};

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
    /// Subscription filters put at start-up (replacing those of the same
    /// group and name).
    pub subscriptions: Vec<SubscriptionDef>,
    /// Where `file` destinations put through the API must lie; `None`:
    /// `subscription-files` under the log store's directory (see
    /// [`LogsConfig::subscription_files_dir`]).
    pub subscription_files_dir: Option<PathBuf>,
}

/// One `[[logs.subscriptions]]` entry, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionDef {
    /// The log group (created at start-up if it does not exist).
    pub group: String,
    /// The filter's name.
    pub name: String,
    /// Its pattern and destination (a file path resolved against the
    /// config file's directory).
    pub spec: FilterSpec,
}

/// The default of `logs.max_scan_events`: about 5 s of a JSON query.
pub const DEFAULT_MAX_SCAN_EVENTS: u64 = 10_000_000;

impl Default for LogsConfig {
    fn default() -> Self {
        LogsConfig {
            enabled: true,
            data_dir: None,
            max_scan_events: DEFAULT_MAX_SCAN_EVENTS,
            subscriptions: Vec::new(),
            subscription_files_dir: None,
        }
    }
}

impl LogsConfig {
    /// The directory `file` destinations of the API must lie in.
    pub fn subscription_files_dir(&self, store_dir: &Path) -> PathBuf {
        self.subscription_files_dir
            .clone()
            .unwrap_or_else(|| self.dir(store_dir).join("subscription-files"))
    }

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
    #[serde(default)]
    pub(super) subscriptions: Vec<SubscriptionBuilder>,
    #[serde(default)]
    pub(super) subscription_files_dir: Option<String>,
}

/// `[[logs.subscriptions]]` as written: the subscription API's body with
/// the group and the name.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SubscriptionBuilder {
    pub(super) group: String,
    pub(super) name: String,
    #[serde(default)]
    pub(super) pattern: String,
    pub(super) destination: Destination,
}

impl Default for LogsBuilder {
    fn default() -> Self {
        LogsBuilder {
            enabled: default_enabled(),
            data_dir: None,
            max_scan_events: DEFAULT_MAX_SCAN_EVENTS,
            subscriptions: Vec::new(),
            subscription_files_dir: None,
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
        let subscription_files_dir = match self.subscription_files_dir.as_deref() {
            None => None,
            Some("") => {
                problems.push(
                    "logs.subscription_files_dir: must not be empty (leave it out for the default)"
                        .into(),
                );
                return None;
            }
            Some(dir) => Some(match base {
                Some(base) if Path::new(dir).is_relative() => base.join(dir),
                _ => PathBuf::from(dir),
            }),
        };
        let before = problems.len();
        let subscriptions = validate_subscriptions(self.subscriptions, base, problems);
        if problems.len() > before {
            return None;
        }
        Some(LogsConfig {
            enabled: self.enabled,
            data_dir,
            max_scan_events: self.max_scan_events,
            subscriptions,
            subscription_files_dir,
        })
    }
}

/// Every problem of `[[logs.subscriptions]]`, prefixed with
/// `logs.subscriptions[i]`.
fn validate_subscriptions(
    raw: Vec<SubscriptionBuilder>,
    base: Option<&Path>,
    problems: &mut Vec<String>,
) -> Vec<SubscriptionDef> {
    let mut out: Vec<SubscriptionDef> = Vec::with_capacity(raw.len());
    for (i, entry) in raw.into_iter().enumerate() {
        let at = format!("logs.subscriptions[{i}]");
        let mut destination = entry.destination;
        if let (Destination::File { path }, Some(base)) = (&mut destination, base)
            && path.is_relative()
        {
            *path = base.join(&*path);
        }
        let spec = FilterSpec {
            pattern: entry.pattern,
            destination,
        };
        let mut ok = true;
        if let Err(e) = vigil_logs::store::names::check_group_name(&entry.group) {
            problems.push(format!("{at}.group: {e}"));
            ok = false;
        }
        for result in [
            vigil_logs::subscription::definition::check_name(&entry.name),
            spec.validate(),
        ] {
            if let Err(e) = result {
                problems.push(format!("{at}.{e}"));
                ok = false;
            }
        }
        if out
            .iter()
            .any(|s| s.group == entry.group && s.name == entry.name)
        {
            problems.push(format!(
                "{at}.name: {:?} is defined twice for log group {:?}",
                entry.name, entry.group
            ));
            ok = false;
        } else if out.iter().filter(|s| s.group == entry.group).count() >= MAX_FILTERS_PER_GROUP {
            problems.push(format!(
                "{at}.group: log group {:?} may have at most {MAX_FILTERS_PER_GROUP} subscription filters",
                entry.group
            ));
            ok = false;
        }
        if ok {
            out.push(SubscriptionDef {
                group: entry.group,
                name: entry.name,
                spec,
            });
        }
    }
    out
}
