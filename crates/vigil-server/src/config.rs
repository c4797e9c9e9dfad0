//! The TOML configuration: every key has a documented default (see `docs/config.md`).
//!
//! The file is parsed into private builder structs that mirror the TOML and
//! reject unknown keys, then [`ConfigBuilder::validate`] turns them into the
//! public [`Config`], reporting every problem at once.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use vigil_model::ModelFormat;

mod alarms;
mod dashboards;
mod features;
mod gateway;
mod logs;
mod metrics;
mod store;
mod traces;

pub use alarms::{AlarmDef, NotifySection, demo_alarms, parse_alarm};
use dashboards::DashboardBuilder;
pub use dashboards::DashboardDef;
pub use features::FeatureNames;
use features::feature_names;
use gateway::{CacheBuilder, GatewayBuilder, KeyBuilder};
pub use gateway::{CacheConfig, GatewayConfig, KeyConfig, Roles, parse_key_hash};
use logs::LogsBuilder;
pub use logs::{LogsConfig, MetricFilterEntry, SubscriptionDef};
use metrics::MetricsBuilder;
pub use metrics::MetricsConfig;
use store::StoreBuilder;
pub use store::{ENV_STORE_REDACT_KEY, LogConfig};
use traces::TracesBuilder;
pub use traces::{OtlpExportConfig, OtlpProtocol, TracesConfig};

/// Name of the bundled demo model served when no config is given.
pub const DEMO_MODEL_NAME: &str = "fraud";

/// A validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The `[server]` table.
    pub server: ServerConfig,
    /// The `[[models]]` entries, in file order.
    pub models: Vec<ModelConfig>,
    /// The `[gateway]` table: throttling, concurrency, timeout.
    pub gateway: GatewayConfig,
    /// The `[[keys]]` entries; none = scoring is open.
    pub keys: Vec<KeyConfig>,
    /// The `[cache]` table: the prediction cache.
    pub cache: CacheConfig,
    /// The `[store]` table: the inference log.
    pub store: LogConfig,
    /// The `[metrics]` table: the spine and the metric store.
    pub metrics: MetricsConfig,
    /// The `[logs]` table: the log groups' store.
    pub logs: LogsConfig,
    /// The `[traces]` table: sampling and the trace store.
    pub traces: TracesConfig,
    /// The `[[alarms]]` entries (put into the alarm engine at start-up and
    /// on reload, replacing alarms of the same name).
    pub alarms: Vec<AlarmDef>,
    /// The `[notify]` table: how alarm actions are delivered.
    pub notify: NotifySection,
    /// The `[[dashboards]]` entries (besides the built-in ones), read at
    /// start-up and on every reload.
    pub dashboards: Vec<DashboardDef>,
    /// The file this config was loaded from; a reload reads it again.
    pub source: Option<PathBuf>,
}

/// The `[server]` table.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    /// Address the CLI binds (`--listen` overrides it).
    pub listen: SocketAddr,
    /// Largest request body accepted; larger bodies get a 413.
    pub max_body_bytes: usize,
    /// What to do with a feature name the model does not know.
    pub unknown_features: UnknownFeatures,
    /// Write one JSON access-log line per request on stdout.
    pub access_log: bool,
    /// Terminate TLS with this certificate (`None` = plain HTTP).
    pub tls: Option<TlsConfig>,
}

/// The `[server.tls]` table.
#[derive(Debug, Clone, PartialEq)]
pub struct TlsConfig {
    /// PEM certificate chain (resolved against the config file's directory).
    pub cert_path: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_path: PathBuf,
}

/// What to do with a feature name the model does not know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnknownFeatures {
    /// Answer 400 naming the feature.
    Reject,
    /// Skip it.
    Ignore,
}

impl UnknownFeatures {
    fn parse(text: &str) -> Option<UnknownFeatures> {
        match text {
            "reject" => Some(UnknownFeatures::Reject),
            "ignore" => Some(UnknownFeatures::Ignore),
            _ => None,
        }
    }
}

/// Where a model's bytes come from.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelSource {
    /// A file (already resolved against the config file's directory).
    Path(PathBuf),
    /// Bytes compiled into the binary (the demo model).
    Bytes(&'static [u8]),
}

/// One `[[models]]` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    /// Name used in URLs: `[a-zA-Z0-9_-]+`, unique.
    pub name: String,
    /// Where the model file is.
    pub source: ModelSource,
    /// The file format; `None` detects it from the content.
    pub format: Option<ModelFormat>,
    /// The version reported in responses and accepted in `/versions/{v}` URLs.
    pub version: String,
    /// Scores at or above it get the positive label (probability models).
    pub threshold: f64,
    /// `[negative, positive]` label names.
    pub labels: [String; 2],
    /// Per-model override of `server.unknown_features`.
    pub unknown_features: UnknownFeatures,
    /// Names for the features of a model saved without them (`features` or
    /// `features_file`); `None` keeps the model file's names.
    pub features: Option<FeatureNames>,
}

impl Config {
    /// The alarm actions' notifier settings (`[notify]`, checked when the
    /// file was read).
    pub fn notifier(&self) -> vigil_metrics::notify::NotifierConfig {
        self.notify.0.clone()
    }

    /// Parse and validate a TOML document, reporting every problem at once.
    /// Relative model paths are kept as written (relative to the working directory).
    pub fn from_toml(text: &str) -> anyhow::Result<Config> {
        Config::from_toml_in(text, None)
    }

    /// Read, parse and validate a config file; relative model paths are
    /// resolved against the file's directory.
    pub fn load(path: &Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        let mut config = Config::from_toml_in(&text, path.parent())
            .with_context(|| format!("invalid config file {}", path.display()))?;
        config.source = Some(path.to_path_buf());
        Ok(config)
    }

    fn from_toml_in(text: &str, base: Option<&Path>) -> anyhow::Result<Config> {
        Config::from_toml_with_env(text, base, &process_env)
    }

    fn from_toml_with_env(
        text: &str,
        base: Option<&Path>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Config> {
        let mut builder: ConfigBuilder =
            toml::from_str(text).map_err(|err| anyhow::anyhow!("{err}"))?;
        builder.apply_env(env);
        builder.validate(base).map_err(|problems| {
            anyhow::anyhow!(
                "{} problem(s) in config:\n  - {}",
                problems.len(),
                problems.join("\n  - ")
            )
        })
    }

    /// The config used when none is given: the bundled demo model as `fraud`
    /// on `127.0.0.1:8080`, every other key at its default.
    pub fn demo() -> Config {
        Config {
            server: ServerConfig::default(),
            models: vec![ModelConfig::new(
                DEMO_MODEL_NAME.to_owned(),
                ModelSource::Bytes(crate::DEMO_MODEL),
            )],
            gateway: GatewayConfig::default(),
            keys: Vec::new(),
            cache: CacheConfig::default(),
            store: LogConfig::from_env(&process_env),
            metrics: MetricsConfig::default(),
            logs: LogsConfig::default(),
            traces: TracesConfig::default(),
            alarms: demo_alarms(),
            notify: NotifySection::default(),
            dashboards: Vec::new(),
            source: None,
        }
    }

    /// A config serving `models` (`--model NAME=PATH`), every other key at its
    /// default. Names are validated like config entries.
    pub fn from_models(models: Vec<(String, PathBuf)>) -> anyhow::Result<Config> {
        let mut builder = ConfigBuilder {
            server: ServerBuilder::default(),
            models: models
                .into_iter()
                .map(|(name, path)| ModelBuilder {
                    name: Some(name),
                    path: Some(path.display().to_string()),
                    ..ModelBuilder::default()
                })
                .collect(),
            ..ConfigBuilder::default()
        };
        builder.apply_env(&process_env);
        builder
            .validate(None)
            .map_err(|problems| anyhow::anyhow!("{}", problems.join("; ")))
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerBuilder::default()
            .validate(None, &mut Vec::new())
            .expect("the default server table is valid")
    }
}

impl ModelConfig {
    /// A model entry with every optional key at its default.
    pub fn new(name: String, source: ModelSource) -> ModelConfig {
        ModelConfig {
            name,
            source,
            format: None,
            version: default_version(),
            threshold: default_threshold(),
            labels: default_labels(),
            unknown_features: UnknownFeatures::Reject,
            features: None,
        }
    }
}

/// The whole file.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct ConfigBuilder {
    #[serde(default)]
    server: ServerBuilder,
    #[serde(default)]
    models: Vec<ModelBuilder>,
    #[serde(default)]
    gateway: GatewayBuilder,
    #[serde(default)]
    keys: Vec<KeyBuilder>,
    #[serde(default)]
    cache: CacheBuilder,
    #[serde(default)]
    store: StoreBuilder,
    #[serde(default)]
    metrics: MetricsBuilder,
    #[serde(default)]
    logs: LogsBuilder,
    #[serde(default)]
    traces: TracesBuilder,
    #[serde(default)]
    alarms: Vec<serde_json::Value>,
    #[serde(default = "empty_table")]
    notify: serde_json::Value,
    #[serde(default)]
    dashboards: Vec<DashboardBuilder>,
}

fn empty_table() -> serde_json::Value {
    serde_json::Value::Object(serde_json::Map::new())
}

/// The process environment, read only through [`ConfigBuilder::apply_env`]
/// (an empty variable counts as unset).
fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.is_empty())
}

impl LogConfig {
    /// The default `[store]` table with the environment overrides applied.
    fn from_env(env: &dyn Fn(&str) -> Option<String>) -> LogConfig {
        let mut builder = StoreBuilder::default();
        builder.apply_env(env);
        builder.validate(None, &mut Vec::new()).unwrap_or_default()
    }
}

/// `[server]`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct ServerBuilder {
    #[serde(default = "default_listen")]
    listen: String,
    #[serde(default = "default_max_body_bytes")]
    max_body_bytes: u64,
    #[serde(default = "default_unknown_features")]
    unknown_features: String,
    #[serde(default = "default_access_log")]
    access_log: bool,
    #[serde(default)]
    tls: Option<TlsBuilder>,
}

/// `[server.tls]`.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct TlsBuilder {
    #[serde(default)]
    cert_path: Option<String>,
    #[serde(default)]
    key_path: Option<String>,
}

/// `[[models]]`. `name` and `path` are options so that every missing one is
/// reported, not just the first.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct ModelBuilder {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    format: Option<String>,
    #[serde(default = "default_version")]
    version: String,
    #[serde(default = "default_threshold")]
    threshold: f64,
    #[serde(default = "default_labels_vec")]
    labels: Vec<String>,
    #[serde(default)]
    unknown_features: Option<String>,
    #[serde(default)]
    features: Option<Vec<String>>,
    #[serde(default)]
    features_file: Option<String>,
}

impl Default for ServerBuilder {
    fn default() -> Self {
        ServerBuilder {
            listen: default_listen(),
            max_body_bytes: default_max_body_bytes(),
            unknown_features: default_unknown_features(),
            access_log: default_access_log(),
            tls: None,
        }
    }
}

impl Default for ModelBuilder {
    fn default() -> Self {
        ModelBuilder {
            name: None,
            path: None,
            format: None,
            version: default_version(),
            threshold: default_threshold(),
            labels: default_labels_vec(),
            unknown_features: None,
            features: None,
            features_file: None,
        }
    }
}

fn default_listen() -> String {
    "127.0.0.1:8080".to_owned()
}
fn default_max_body_bytes() -> u64 {
    1_048_576
}
fn default_unknown_features() -> String {
    "reject".to_owned()
}
fn default_access_log() -> bool {
    true
}
fn default_version() -> String {
    "1".to_owned()
}
fn default_threshold() -> f64 {
    0.5
}
fn default_labels() -> [String; 2] {
    ["legit".to_owned(), "fraud".to_owned()]
}
fn default_labels_vec() -> Vec<String> {
    default_labels().to_vec()
}

impl ConfigBuilder {
    /// The one place environment variables override keys of the file:
    /// `VIGIL_STORE_REDACT_KEY` → `store.redact_hash_key`.
    fn apply_env(&mut self, env: &dyn Fn(&str) -> Option<String>) {
        self.store.apply_env(env);
    }

    /// Turn the raw file into a [`Config`], collecting every problem.
    fn validate(self, base: Option<&Path>) -> Result<Config, Vec<String>> {
        let mut problems = Vec::new();
        let server = self.server.validate(base, &mut problems);
        if self.models.is_empty() {
            problems.push("no [[models]] entry: add at least one model".to_owned());
        }
        let mut seen = HashSet::new();
        let mut models = Vec::with_capacity(self.models.len());
        for (i, model) in self.models.into_iter().enumerate() {
            if let Some(name) = model
                .name
                .as_ref()
                .filter(|name| !seen.insert((*name).clone()))
            {
                problems.push(format!("models[{i}]: duplicate model name `{name}`"));
            }
            let default_unknown = server
                .as_ref()
                .map_or(UnknownFeatures::Reject, |s| s.unknown_features);
            if let Some(model) = model.validate(i, base, default_unknown, &mut problems) {
                models.push(model);
            }
        }
        let gateway = self.gateway.validate(&mut problems);
        let cache = self.cache.validate(&mut problems);
        let store = self.store.validate(base, &mut problems);
        let metrics = self.metrics.validate(base, &mut problems);
        let logs = self.logs.validate(base, &mut problems);
        let traces = self.traces.validate(base, &mut problems);
        let alarms = alarms::validate_alarms(self.alarms, &mut problems);
        let notify = alarms::validate_notify(&self.notify, &mut problems);
        let dashboards = dashboards::validate_dashboards(self.dashboards, &mut problems);
        let names = models.iter().map(|m| m.name.as_str()).collect();
        let keys = gateway::validate_keys(self.keys, &names, &mut problems);
        match (server, gateway, cache, store, metrics, (logs, traces)) {
            (
                Some(server),
                Some(gateway),
                Some(cache),
                Some(store),
                Some(metrics),
                (Some(logs), Some(traces)),
            ) if problems.is_empty() => Ok(Config {
                server,
                models,
                gateway,
                keys,
                cache,
                store,
                metrics,
                logs,
                traces,
                alarms,
                notify: NotifySection(notify.unwrap_or_default()),
                dashboards,
                source: None,
            }),
            _ => Err(problems),
        }
    }
}

impl ServerBuilder {
    fn validate(self, base: Option<&Path>, problems: &mut Vec<String>) -> Option<ServerConfig> {
        let tls = self.tls.map(|tls| {
            let mut path = |key: &str, value: Option<String>| match value.as_deref() {
                None | Some("") => {
                    problems.push(format!(
                        "server.tls.{key}: required when [server.tls] is given"
                    ));
                    None
                }
                Some(path) => Some(resolve(base, path)),
            };
            let cert_path = path("cert_path", tls.cert_path);
            let key_path = path("key_path", tls.key_path);
            Some(TlsConfig {
                cert_path: cert_path?,
                key_path: key_path?,
            })
        });
        let tls = match tls {
            Some(None) => return None,
            Some(Some(tls)) => Some(tls),
            None => None,
        };
        let listen = self
            .listen
            .parse::<SocketAddr>()
            .map_err(|_| {
                problems.push(format!(
                    "server.listen: `{}` is not an address like 127.0.0.1:8080",
                    self.listen
                ));
            })
            .ok();
        let max_body_bytes = match usize::try_from(self.max_body_bytes) {
            Ok(0) | Err(_) => {
                problems.push(format!(
                    "server.max_body_bytes: must be between 1 and {}, got {}",
                    usize::MAX,
                    self.max_body_bytes
                ));
                None
            }
            Ok(n) => Some(n),
        };
        let unknown_features =
            parse_unknown_features("server.unknown_features", &self.unknown_features, problems);
        Some(ServerConfig {
            listen: listen?,
            max_body_bytes: max_body_bytes?,
            unknown_features: unknown_features?,
            access_log: self.access_log,
            tls,
        })
    }
}

fn parse_unknown_features(
    key: &str,
    value: &str,
    problems: &mut Vec<String>,
) -> Option<UnknownFeatures> {
    let parsed = UnknownFeatures::parse(value);
    if parsed.is_none() {
        problems.push(format!(
            "{key}: expected \"reject\" or \"ignore\", got \"{value}\""
        ));
    }
    parsed
}

fn parse_format(value: &str) -> Option<ModelFormat> {
    match value {
        "xgboost-json" => Some(ModelFormat::XgboostJson),
        "xgboost-ubj" => Some(ModelFormat::XgboostUbj),
        "lightgbm" => Some(ModelFormat::LightgbmText),
        _ => None,
    }
}

/// A path from the file, relative ones against the file's directory.
fn resolve(base: Option<&Path>, path: &str) -> PathBuf {
    let path = PathBuf::from(path);
    match base {
        Some(base) if path.is_relative() => base.join(path),
        _ => path,
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl ModelBuilder {
    fn validate(
        self,
        i: usize,
        base: Option<&Path>,
        default_unknown: UnknownFeatures,
        problems: &mut Vec<String>,
    ) -> Option<ModelConfig> {
        let before = problems.len();
        let label = match &self.name {
            Some(name) => format!("models[{i}] (`{name}`)"),
            None => format!("models[{i}]"),
        };
        match &self.name {
            None => problems.push(format!("{label}: missing required key `name`")),
            Some(name) if !valid_name(name) => problems.push(format!(
                "{label}: name must be made of a-z, A-Z, 0-9, `_` and `-`, got `{name}`"
            )),
            Some(_) => {}
        }
        let path = match self.path.as_deref() {
            None => {
                problems.push(format!("{label}: missing required key `path`"));
                None
            }
            Some("") => {
                problems.push(format!("{label}: `path` is empty"));
                None
            }
            Some(path) => Some(resolve(base, path)),
        };
        let format = match self.format.as_deref() {
            None => None,
            Some(text) => {
                let parsed = parse_format(text);
                if parsed.is_none() {
                    problems.push(format!(
                        "{label}: format must be \"xgboost-json\", \"xgboost-ubj\" or \"lightgbm\", got \"{text}\""
                    ));
                }
                parsed
            }
        };
        if self.version.is_empty() || self.version.contains('/') {
            problems.push(format!(
                "{label}: version must be non-empty and contain no `/`, got \"{}\"",
                self.version
            ));
        }
        if !self.threshold.is_finite() {
            problems.push(format!("{label}: threshold must be a finite number"));
        }
        let labels: Option<[String; 2]> = match <[String; 2]>::try_from(self.labels) {
            Ok(labels)
                if !labels[0].is_empty() && !labels[1].is_empty() && labels[0] != labels[1] =>
            {
                Some(labels)
            }
            Ok(_) => {
                problems.push(format!(
                    "{label}: labels must be two distinct non-empty names"
                ));
                None
            }
            Err(labels) => {
                problems.push(format!(
                    "{label}: labels must be [negative, positive], got {} name(s)",
                    labels.len()
                ));
                None
            }
        };
        let unknown_features = match self.unknown_features.as_deref() {
            None => Some(default_unknown),
            Some(value) => {
                parse_unknown_features(&format!("{label}.unknown_features"), value, problems)
            }
        };
        let features = feature_names(&label, base, self.features, self.features_file, problems);
        if problems.len() != before {
            return None;
        }
        Some(ModelConfig {
            name: self.name?,
            source: ModelSource::Path(path?),
            format,
            version: self.version,
            threshold: self.threshold,
            labels: labels?,
            unknown_features: unknown_features?,
            features,
        })
    }
}

#[cfg(test)]
mod tests;
