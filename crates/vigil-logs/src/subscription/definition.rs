//! What a subscription filter is, as written (the API's body, a config
//! entry, a line of `subscriptions.json`), and the checks that make one
//! valid.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::SubscriptionError;
use crate::pattern::Pattern;

/// The longest filter name, in characters.
pub const MAX_NAME_CHARS: usize = 512;

/// The body of `PUT /api/logs/{group}/subscription-filters/{name}`: which
/// events, and where to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterSpec {
    /// A filter pattern (SEMANTICS §3.1); `""` forwards every event.
    pub pattern: String,
    /// Where matching events go.
    pub destination: Destination,
}

impl FilterSpec {
    /// Checks the pattern and the destination as `put` does (a config file
    /// is checked before anything starts); the error names the field.
    pub fn validate(&self) -> Result<(), SubscriptionError> {
        parse_pattern(&self.pattern)?;
        target_uri(&self.destination)?;
        Ok(())
    }
}

/// Where a subscription delivers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum Destination {
    /// POST the SEMANTICS §3.3 payload (one stream per payload) to `url`.
    Http {
        /// An http(s) URL.
        url: String,
        /// `json` (default) or `gzip+base64`.
        #[serde(default)]
        encoding: Encoding,
    },
    /// Append one JSON line per event to a file.
    File {
        /// An absolute path; the file is created on first delivery.
        path: PathBuf,
    },
    /// OTLP/HTTP logs: `ExportLogsServiceRequest` protobuf POSTed to
    /// `<endpoint>/v1/logs`.
    Otlp {
        /// The collector's base URL (`http://host:4318`); a path already
        /// ending in `/v1/logs` is used as it is.
        endpoint: String,
    },
}

impl Destination {
    /// `http`, `file` or `otlp`.
    pub fn kind(&self) -> &'static str {
        match self {
            Destination::Http { .. } => "http",
            Destination::File { .. } => "file",
            Destination::Otlp { .. } => "otlp",
        }
    }
}

/// How an HTTP destination's payload is written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Encoding {
    /// The payload as JSON (`application/json`).
    #[default]
    #[serde(rename = "json")]
    Json,
    /// The payload gzipped, then base64, in the envelope a function gets
    /// from a subscription: `{"awslogs": {"data": "<base64>"}}`.
    #[serde(rename = "gzip+base64")]
    GzipBase64,
}

/// A subscription filter: its group and name, what it forwards, and when
/// it was made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionFilter {
    /// The log group it reads.
    pub group: String,
    /// Its name, unique in the group.
    pub name: String,
    /// The filter pattern.
    pub pattern: String,
    /// Where it delivers.
    pub destination: Destination,
    /// When it was first put, Unix ms (a replacement keeps it).
    pub created_ms: i64,
}

/// A filter name: 1–512 characters, no `:`, `*` or control characters.
pub fn check_name(name: &str) -> Result<(), SubscriptionError> {
    let invalid = |message: String| SubscriptionError::invalid("name", message);
    let chars = name.chars().count();
    if chars == 0 || chars > MAX_NAME_CHARS {
        return Err(invalid(format!(
            "must be 1–{MAX_NAME_CHARS} characters, got {chars}"
        )));
    }
    if let Some(c) = name
        .chars()
        .find(|c| *c == ':' || *c == '*' || c.is_control())
    {
        return Err(invalid(format!(
            "must not contain ':', '*' or control characters, found {c:?}"
        )));
    }
    Ok(())
}

/// Parses the pattern, naming the field and the column on failure.
pub(crate) fn parse_pattern(pattern: &str) -> Result<Pattern, SubscriptionError> {
    Pattern::parse(pattern).map_err(|e| SubscriptionError::invalid("pattern", e.to_string()))
}

/// The URL a destination posts to (`None` for a file), checked.
pub(crate) fn target_uri(
    destination: &Destination,
) -> Result<Option<hyper::Uri>, SubscriptionError> {
    let parse = |field: &'static str, url: &str| {
        vigil_metrics::notify::parse_url(field, url).map_err(|e| match e {
            vigil_metrics::notify::SendError::Invalid { field, message } => {
                SubscriptionError::invalid(field, message)
            }
            other => SubscriptionError::invalid(field, other.to_string()),
        })
    };
    match destination {
        Destination::Http { url, .. } => parse("destination.url", url).map(Some),
        Destination::Otlp { endpoint } => {
            parse("destination.endpoint", endpoint)?;
            parse("destination.endpoint", &otlp_logs_url(endpoint)).map(Some)
        }
        Destination::File { path } => {
            if !path.is_absolute() {
                return Err(SubscriptionError::invalid(
                    "destination.path",
                    format!(
                        "must be an absolute path, got {:?}",
                        path.display().to_string()
                    ),
                ));
            }
            if path.is_dir() {
                return Err(SubscriptionError::invalid(
                    "destination.path",
                    "is a directory; name a file",
                ));
            }
            Ok(None)
        }
    }
}

/// `<endpoint>/v1/logs`, unless the endpoint already ends with it (the
/// OTLP exporters' rule for a base endpoint).
pub fn otlp_logs_url(endpoint: &str) -> String {
    let base = endpoint.trim_end_matches('/');
    if base.ends_with("/v1/logs") {
        base.to_owned()
    } else {
        format!("{base}/v1/logs")
    }
}
