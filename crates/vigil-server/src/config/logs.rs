//! The `[logs]` table: the log groups' store (SEMANTICS.md §3), and the
//! metric filters (`[[logs.metric_filters]]`) and subscription filters
//! (`[[logs.subscriptions]]`) defined in the file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use vigil_logs::subscription::{
    Destination, FilterSpec as SubscriptionSpec,
    MAX_FILTERS_PER_GROUP as MAX_SUBSCRIPTIONS_PER_GROUP,
};

use serde::{Deserialize, Serialize};
use vigil_logs::metric_filter::{
    FilterDef, FilterError, FilterSpec, MAX_FILTERS_PER_GROUP, MetricFilter, MetricSpec,
};

/// The `[logs]` table, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct LogsConfig {
    /// Whether the log API and the log store are on.
    pub enabled: bool,
    /// Where the log groups' segments live; `None`: `logs` under the
    /// inference log's `data_dir` (see [`LogsConfig::dir`]).
    pub data_dir: Option<PathBuf>,
    /// A query stops after reading this many events, answering what it has
    /// with a warning.
    pub max_scan_events: u64,
    /// Whether each `/vigil/inference` event carries the row's input (after
    /// the inference log's redaction); off by default, since the inference
    /// log keeps it.
    pub inference_input: bool,
    /// `[[logs.metric_filters]]`: put at start-up (with metrics on),
    /// replacing filters of the same group and name.
    pub metric_filters: Vec<MetricFilterEntry>,
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
    pub spec: SubscriptionSpec,
}

/// One `[[logs.metric_filters]]` entry: the body of
/// `PUT /api/logs/{group}/metric-filters/{name}` with its group and name.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricFilterEntry {
    /// The log group whose events it sees.
    pub group: String,
    /// Its name, unique in the group.
    pub name: String,
    /// Its pattern and metric transformation.
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
            inference_input: false,
            metric_filters: Vec::new(),
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
    pub(super) inference_input: bool,
    #[serde(default)]
    pub(super) metric_filters: Vec<MetricFilterBuilder>,
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

/// `[[logs.metric_filters]]` as written.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct MetricFilterBuilder {
    pub(super) group: String,
    pub(super) name: String,
    #[serde(default)]
    pub(super) pattern: String,
    pub(super) metric: MetricSpec,
}

impl Default for LogsBuilder {
    fn default() -> Self {
        LogsBuilder {
            enabled: default_enabled(),
            data_dir: None,
            max_scan_events: DEFAULT_MAX_SCAN_EVENTS,
            inference_input: false,
            metric_filters: Vec::new(),
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
        let metric_filters = validate_metric_filters(self.metric_filters, problems)?;
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
            inference_input: self.inference_input,
            metric_filters,
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
        let spec = SubscriptionSpec {
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
        } else if out.iter().filter(|s| s.group == entry.group).count()
            >= MAX_SUBSCRIPTIONS_PER_GROUP
        {
            problems.push(format!(
                "{at}.group: log group {:?} may have at most {MAX_SUBSCRIPTIONS_PER_GROUP} subscription filters",
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

/// Each entry checked as the API checks a filter; every problem prefixed
/// with `logs.metric_filters[i]`.
fn validate_metric_filters(
    entries: Vec<MetricFilterBuilder>,
    problems: &mut Vec<String>,
) -> Option<Vec<MetricFilterEntry>> {
    let before = problems.len();
    let mut per_group: BTreeMap<String, usize> = BTreeMap::new();
    let mut out: Vec<MetricFilterEntry> = Vec::with_capacity(entries.len());
    for (i, entry) in entries.into_iter().enumerate() {
        let at = format!("logs.metric_filters[{i}]");
        let def = FilterDef {
            group: entry.group,
            name: entry.name,
            pattern: entry.pattern,
            metric: entry.metric,
            created_ms: 0,
        };
        match MetricFilter::new(def.clone()) {
            Ok(_) => {}
            Err(FilterError::Invalid { field, message }) => {
                problems.push(format!("{at}.{field}: {message}"));
                continue;
            }
            Err(err) => {
                problems.push(format!("{at}.{err}"));
                continue;
            }
        }
        if out
            .iter()
            .any(|e| e.group == def.group && e.name == def.name)
        {
            problems.push(format!(
                "{at}.name: log group {:?} has another metric filter named {:?}",
                def.group, def.name
            ));
            continue;
        }
        let count = per_group.entry(def.group.clone()).or_default();
        *count += 1;
        if *count == MAX_FILTERS_PER_GROUP + 1 {
            problems.push(format!(
                "{at}: log group {:?} has more than {MAX_FILTERS_PER_GROUP} metric filters",
                def.group
            ));
        }
        out.push(MetricFilterEntry {
            group: def.group,
            name: def.name,
            spec: FilterSpec {
                pattern: def.pattern,
                metric: def.metric,
            },
        });
    }
    (problems.len() == before).then_some(out)
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    const MODEL: &str = "[[models]]\nname = \"m\"\npath = \"m.json\"\n";

    #[test]
    fn metric_filter_entries_are_read_and_checked_like_the_api_body() {
        let text = format!(
            r#"{MODEL}
[[logs.metric_filters]]
group = "/vigil/access"
name = "5xx"
pattern = "{{ $.status >= 500 }}"
metric = {{ name = "5xx", namespace = "Vigil/Access", value = 1, default = 0 }}
"#
        );
        let config = Config::from_toml(&text).expect("valid");
        let entry = &config.logs.metric_filters[0];
        assert_eq!(
            (entry.group.as_str(), entry.name.as_str()),
            ("/vigil/access", "5xx")
        );
        assert_eq!(entry.spec.metric.value, "1");
        assert_eq!(entry.spec.metric.default, Some(0.0));

        let text = format!(
            r#"{MODEL}
[[logs.metric_filters]]
group = "g"
name = "a"
pattern = "{{ $.a = }}"
metric = {{ name = "a", namespace = "A", value = "1" }}

[[logs.metric_filters]]
group = "g"
name = "b"
pattern = "[x]"
metric = {{ name = "b", namespace = "B", value = "1", default = 0, dimensions = {{ X = "$x" }} }}

[[logs.metric_filters]]
group = "g"
name = "b"
metric = {{ name = "b", namespace = "B", value = "1" }}

[[logs.metric_filters]]
group = "g"
name = "b"
metric = {{ name = "b", namespace = "B", value = "1" }}
"#
        );
        let err = format!("{:#}", Config::from_toml(&text).expect_err("invalid"));
        for needle in [
            "logs.metric_filters[0].pattern: column 9",
            "logs.metric_filters[1].metric.default: a metric filter with dimensions",
            "logs.metric_filters[3].name: log group \"g\" has another metric filter named \"b\"",
        ] {
            assert!(err.contains(needle), "{needle:?} not in {err}");
        }
    }
}
