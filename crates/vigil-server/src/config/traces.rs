//! The `[traces]` table: the trace store, its retention, the queue in
//! front of it, the sampling rules in force at start-up and the OTLP
//! export to a collector.

use std::collections::BTreeMap;
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
    /// Finished traces waiting for the trace writer (split over the
    /// per-thread buffers, this many per core); beyond it a trace is
    /// dropped and counted, so a slow disk never slows requests.
    pub queue_capacity: usize,
    /// `[[traces.sampling_rules]]`: the rules at start-up (rules put through
    /// the API are kept in the store's directory and win over these).
    pub sampling_rules: Vec<Rule>,
    /// The OTLP/HTTP export of every stored trace to a collector (the
    /// `traces.otlp_*` keys); `None` when `traces.otlp_endpoint` is unset.
    pub otlp: Option<OtlpExportConfig>,
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
            otlp: None,
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
    #[serde(default)]
    otlp_endpoint: Option<String>,
    #[serde(default = "default_otlp_protocol")]
    otlp_protocol: String,
    #[serde(default)]
    otlp_headers: BTreeMap<String, String>,
    #[serde(default = "default_otlp_timeout_ms")]
    otlp_timeout_ms: u64,
    #[serde(default = "default_otlp_batch_spans")]
    otlp_batch_spans: usize,
    #[serde(default = "default_otlp_queue_spans")]
    otlp_queue_spans: usize,
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
            otlp_endpoint: None,
            otlp_protocol: default_otlp_protocol(),
            otlp_headers: BTreeMap::new(),
            otlp_timeout_ms: DEFAULT_OTLP_TIMEOUT_MS,
            otlp_batch_spans: DEFAULT_OTLP_BATCH_SPANS,
            otlp_queue_spans: DEFAULT_OTLP_QUEUE_SPANS,
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
        let otlp = validate_otlp(
            OtlpKeys {
                endpoint: self.otlp_endpoint,
                protocol: self.otlp_protocol,
                headers: self.otlp_headers,
                timeout_ms: self.otlp_timeout_ms,
                batch_spans: self.otlp_batch_spans,
                queue_spans: self.otlp_queue_spans,
            },
            problems,
        );
        (problems.len() == before).then_some(TracesConfig {
            enabled: self.enabled,
            data_dir,
            retention_days: self.retention_days,
            max_bytes: self.max_bytes,
            queue_capacity: self.queue_capacity,
            sampling_rules: self.sampling_rules,
            otlp,
            otlp_max_body_bytes: self.otlp_max_body_bytes,
        })
    }
}

/// How spans are written on the wire (`traces.otlp_protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpProtocol {
    /// `http/protobuf`: a protobuf `ExportTraceServiceRequest`,
    /// `Content-Type: application/x-protobuf`.
    HttpProtobuf,
    /// `http/json`: OTLP/JSON (hex ids), `Content-Type: application/json`.
    HttpJson,
}

impl OtlpProtocol {
    /// The name in the config (and in `OTEL_EXPORTER_OTLP_PROTOCOL`).
    pub fn name(self) -> &'static str {
        match self {
            OtlpProtocol::HttpProtobuf => "http/protobuf",
            OtlpProtocol::HttpJson => "http/json",
        }
    }

    /// The `Content-Type` of a request body.
    pub fn content_type(self) -> &'static str {
        match self {
            OtlpProtocol::HttpProtobuf => "application/x-protobuf",
            OtlpProtocol::HttpJson => "application/json",
        }
    }
}

/// The OTLP/HTTP trace export, validated: where every stored trace is
/// sent, and how much may wait for a slow or dead collector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtlpExportConfig {
    /// The URL the requests are POSTed to, used as written (the OTLP
    /// exporters' per-signal endpoint: `http://host:4318/v1/traces`).
    pub endpoint: axum::http::Uri,
    /// Protobuf or JSON.
    pub protocol: OtlpProtocol,
    /// Extra request headers (an auth token, a tenant id), in name order.
    pub headers: Vec<(axum::http::HeaderName, axum::http::HeaderValue)>,
    /// The time one batch may take, attempts and retry waits included
    /// (the OTLP exporters' `OTEL_EXPORTER_OTLP_TIMEOUT`).
    pub timeout_ms: u64,
    /// Most spans in one request.
    pub batch_spans: usize,
    /// Spans waiting to be exported; beyond it, spans are dropped and
    /// counted, so a dead collector never holds up the trace writer.
    pub queue_spans: usize,
}

/// The default of `traces.otlp_protocol`.
pub const DEFAULT_OTLP_PROTOCOL: OtlpProtocol = OtlpProtocol::HttpProtobuf;
/// The default of `traces.otlp_timeout_ms` (the OTLP exporters' 10 s).
pub const DEFAULT_OTLP_TIMEOUT_MS: u64 = 10_000;
/// The default of `traces.otlp_batch_spans` (the OpenTelemetry batch span
/// processor's 512).
pub const DEFAULT_OTLP_BATCH_SPANS: usize = 512;
/// The default of `traces.otlp_queue_spans`.
pub const DEFAULT_OTLP_QUEUE_SPANS: usize = 8192;

fn default_otlp_protocol() -> String {
    DEFAULT_OTLP_PROTOCOL.name().to_owned()
}

fn default_otlp_timeout_ms() -> u64 {
    DEFAULT_OTLP_TIMEOUT_MS
}

fn default_otlp_batch_spans() -> usize {
    DEFAULT_OTLP_BATCH_SPANS
}

fn default_otlp_queue_spans() -> usize {
    DEFAULT_OTLP_QUEUE_SPANS
}

/// The `traces.otlp_*` keys as written.
struct OtlpKeys {
    endpoint: Option<String>,
    protocol: String,
    headers: BTreeMap<String, String>,
    timeout_ms: u64,
    batch_spans: usize,
    queue_spans: usize,
}

/// Every key is checked (even without an endpoint, so a typo in the
/// protocol shows before the endpoint is set); `None` without an endpoint
/// or with a problem. Header values stay out of the messages: they often
/// carry a token.
fn validate_otlp(keys: OtlpKeys, problems: &mut Vec<String>) -> Option<OtlpExportConfig> {
    let before = problems.len();
    let endpoint = match keys.endpoint.as_deref() {
        None => None,
        Some(url) => match vigil_metrics::notify::parse_url("traces.otlp_endpoint", url) {
            Ok(uri) => Some(uri),
            Err(vigil_metrics::notify::SendError::Invalid { field, message }) => {
                problems.push(format!("{field}: {message}"));
                None
            }
            Err(other) => {
                problems.push(format!("traces.otlp_endpoint: {other}"));
                None
            }
        },
    };
    let protocol = match keys.protocol.as_str() {
        "http/protobuf" => Some(OtlpProtocol::HttpProtobuf),
        "http/json" => Some(OtlpProtocol::HttpJson),
        other => {
            problems.push(format!(
                "traces.otlp_protocol: expected \"http/protobuf\" or \"http/json\", got {other:?}"
            ));
            None
        }
    };
    let mut headers = Vec::with_capacity(keys.headers.len());
    for (name, value) in &keys.headers {
        let Ok(header) = axum::http::HeaderName::from_bytes(name.as_bytes()) else {
            problems.push(format!(
                "traces.otlp_headers: {name:?} is not a valid header name"
            ));
            continue;
        };
        if header == axum::http::header::CONTENT_TYPE {
            problems.push(
                "traces.otlp_headers: content-type is set by traces.otlp_protocol".to_owned(),
            );
            continue;
        }
        match axum::http::HeaderValue::from_str(value) {
            Ok(mut value) => {
                value.set_sensitive(true);
                headers.push((header, value));
            }
            Err(_) => problems.push(format!(
                "traces.otlp_headers.{name}: the value must be visible ASCII (no control characters)"
            )),
        }
    }
    if !(1..=600_000).contains(&keys.timeout_ms) {
        problems.push(format!(
            "traces.otlp_timeout_ms: must be between 1 and 600000, got {}",
            keys.timeout_ms
        ));
    }
    if !(1..=100_000).contains(&keys.batch_spans) {
        problems.push(format!(
            "traces.otlp_batch_spans: must be between 1 and 100000, got {}",
            keys.batch_spans
        ));
    }
    if !(1..=10_000_000).contains(&keys.queue_spans) {
        problems.push(format!(
            "traces.otlp_queue_spans: must be between 1 and 10000000, got {}",
            keys.queue_spans
        ));
    } else if keys.queue_spans < keys.batch_spans {
        problems.push(format!(
            "traces.otlp_queue_spans: must be at least traces.otlp_batch_spans ({}), got {}",
            keys.batch_spans, keys.queue_spans
        ));
    }
    if problems.len() != before {
        return None;
    }
    Some(OtlpExportConfig {
        endpoint: endpoint?,
        protocol: protocol?,
        headers,
        timeout_ms: keys.timeout_ms,
        batch_spans: keys.batch_spans,
        queue_spans: keys.queue_spans,
    })
}

#[cfg(test)]
mod otlp_tests {
    use super::super::Config;
    use super::*;

    fn config(traces: &str) -> anyhow::Result<Config> {
        Config::from_toml(&format!(
            "[[models]]\nname = \"fraud\"\npath = \"m.json\"\n\n[traces]\n{traces}"
        ))
    }

    #[test]
    fn no_endpoint_no_export_and_the_defaults() {
        let c = config("").expect("valid");
        assert_eq!(c.traces.otlp, None);
        let c = config("otlp_endpoint = \"http://127.0.0.1:4318/v1/traces\"").expect("valid");
        let otlp = c.traces.otlp.expect("export on");
        assert_eq!(otlp.endpoint.to_string(), "http://127.0.0.1:4318/v1/traces");
        assert_eq!(otlp.protocol, OtlpProtocol::HttpProtobuf);
        assert!(otlp.headers.is_empty());
        assert_eq!(otlp.timeout_ms, 10_000);
        assert_eq!(otlp.batch_spans, 512);
        assert_eq!(otlp.queue_spans, 8192);
    }

    #[test]
    fn every_otlp_key_is_taken() {
        let c = config(
            "otlp_endpoint = \"https://otel.example.com/v1/traces\"\notlp_protocol = \"http/json\"\n\
             otlp_timeout_ms = 2500\notlp_batch_spans = 100\notlp_queue_spans = 1000\n\n\
             [traces.otlp_headers]\nAuthorization = \"Bearer s3cret\"\nx-scope-orgid = \"team-a\"\n",
        )
        .expect("valid");
        let otlp = c.traces.otlp.expect("export on");
        assert_eq!(otlp.protocol, OtlpProtocol::HttpJson);
        assert_eq!(otlp.protocol.content_type(), "application/json");
        assert_eq!(
            (otlp.timeout_ms, otlp.batch_spans, otlp.queue_spans),
            (2500, 100, 1000)
        );
        let headers: Vec<(String, String)> = otlp
            .headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().expect("ascii").to_owned()))
            .collect();
        assert_eq!(
            headers,
            [
                ("authorization".to_owned(), "Bearer s3cret".to_owned()),
                ("x-scope-orgid".to_owned(), "team-a".to_owned())
            ]
        );
        assert!(otlp.headers.iter().all(|(_, v)| v.is_sensitive()));
    }

    #[test]
    fn bad_keys_are_each_named_and_header_values_kept_out() {
        let err = config(
            "otlp_endpoint = \"grpc://collector:4317\"\notlp_protocol = \"grpc\"\n\
             otlp_timeout_ms = 0\notlp_batch_spans = 0\notlp_queue_spans = 0\n\n\
             [traces.otlp_headers]\n\"bad name\" = \"x\"\nx-token = \"line\\nbreak-s3cret\"\n\
             content-type = \"text/plain\"\n",
        )
        .expect_err("invalid")
        .to_string();
        for needle in [
            "traces.otlp_endpoint: expected an http:// or https:// url",
            "traces.otlp_protocol: expected \"http/protobuf\" or \"http/json\", got \"grpc\"",
            "traces.otlp_timeout_ms: must be between 1 and 600000, got 0",
            "traces.otlp_batch_spans: must be between 1 and 100000, got 0",
            "traces.otlp_queue_spans: must be between 1 and 10000000, got 0",
            "traces.otlp_headers: \"bad name\" is not a valid header name",
            "traces.otlp_headers.x-token: the value must be visible ASCII",
            "traces.otlp_headers: content-type is set by traces.otlp_protocol",
        ] {
            assert!(err.contains(needle), "{needle:?} not in {err}");
        }
        assert!(!err.contains("s3cret"), "{err}");
        // A bad protocol is caught without an endpoint too.
        let err = config("otlp_protocol = \"http/xml\"")
            .expect_err("invalid")
            .to_string();
        assert!(err.contains("traces.otlp_protocol"), "{err}");
        let err = config(
            "otlp_endpoint = \"http://c:4318/v1/traces\"\notlp_batch_spans = 600\notlp_queue_spans = 500",
        )
        .expect_err("invalid")
        .to_string();
        assert!(
            err.contains(
                "traces.otlp_queue_spans: must be at least traces.otlp_batch_spans (600), got 500"
            ),
            "{err}"
        );
    }
}
