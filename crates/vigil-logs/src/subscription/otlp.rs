//! OTLP/HTTP logs: the few opentelemetry-proto messages a log export
//! needs, written by hand with their field numbers (collector/logs/v1,
//! logs/v1, common/v1, resource/v1), and the request a delivery sends.
//! Fields we never set are left out; a decoder skips what it does not
//! know, and what we send decodes with the official classes.

use std::sync::Arc;

use prost::Message as _;

use super::payload::OutEvent;

/// `opentelemetry.proto.collector.logs.v1.ExportLogsServiceRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ExportLogsServiceRequest {
    /// One per resource.
    #[prost(message, repeated, tag = "1")]
    pub resource_logs: Vec<ResourceLogs>,
}

/// `opentelemetry.proto.logs.v1.ResourceLogs`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ResourceLogs {
    /// Who produced the logs.
    #[prost(message, optional, tag = "1")]
    pub resource: Option<Resource>,
    /// Per instrumentation scope.
    #[prost(message, repeated, tag = "2")]
    pub scope_logs: Vec<ScopeLogs>,
    /// Schema of the resource's attributes.
    #[prost(string, tag = "3")]
    pub schema_url: String,
}

/// `opentelemetry.proto.logs.v1.ScopeLogs`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ScopeLogs {
    /// The instrumentation scope.
    #[prost(message, optional, tag = "1")]
    pub scope: Option<InstrumentationScope>,
    /// The records.
    #[prost(message, repeated, tag = "2")]
    pub log_records: Vec<LogRecord>,
    /// Schema of the records' attributes.
    #[prost(string, tag = "3")]
    pub schema_url: String,
}

/// `opentelemetry.proto.logs.v1.LogRecord` (the fields Vigil sets).
#[derive(Clone, PartialEq, prost::Message)]
pub struct LogRecord {
    /// When the event happened.
    #[prost(fixed64, tag = "1")]
    pub time_unix_nano: u64,
    /// `SeverityNumber`; 0 = unspecified.
    #[prost(int32, tag = "2")]
    pub severity_number: i32,
    /// The level as written.
    #[prost(string, tag = "3")]
    pub severity_text: String,
    /// The log line.
    #[prost(message, optional, tag = "5")]
    pub body: Option<AnyValue>,
    /// `log.group`, `log.stream`, `log.record.uid`.
    #[prost(message, repeated, tag = "6")]
    pub attributes: Vec<KeyValue>,
    /// When Vigil stored it.
    #[prost(fixed64, tag = "11")]
    pub observed_time_unix_nano: u64,
}

/// `opentelemetry.proto.resource.v1.Resource`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Resource {
    /// `service.name` = `vigil`.
    #[prost(message, repeated, tag = "1")]
    pub attributes: Vec<KeyValue>,
}

/// `opentelemetry.proto.common.v1.InstrumentationScope`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct InstrumentationScope {
    /// The scope's name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Its version.
    #[prost(string, tag = "2")]
    pub version: String,
}

/// `opentelemetry.proto.common.v1.KeyValue`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct KeyValue {
    /// The attribute's name.
    #[prost(string, tag = "1")]
    pub key: String,
    /// Its value.
    #[prost(message, optional, tag = "2")]
    pub value: Option<AnyValue>,
}

/// `opentelemetry.proto.common.v1.AnyValue` (its scalar members).
#[derive(Clone, PartialEq, prost::Message)]
pub struct AnyValue {
    /// The value.
    #[prost(oneof = "any_value::Value", tags = "1, 2, 3, 4, 7")]
    pub value: Option<any_value::Value>,
}

/// The members of [`AnyValue`].
pub mod any_value {
    /// `AnyValue.value`.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Value {
        /// `string_value`.
        #[prost(string, tag = "1")]
        StringValue(String),
        /// `bool_value`.
        #[prost(bool, tag = "2")]
        BoolValue(bool),
        /// `int_value`.
        #[prost(int64, tag = "3")]
        IntValue(i64),
        /// `double_value`.
        #[prost(double, tag = "4")]
        DoubleValue(f64),
        /// `bytes_value`.
        #[prost(bytes, tag = "7")]
        BytesValue(Vec<u8>),
    }
}

/// The instrumentation scope of Vigil's exports.
pub const SCOPE_NAME: &str = "vigil.logs.subscription";

fn string(value: &str) -> Option<AnyValue> {
    Some(AnyValue {
        value: Some(any_value::Value::StringValue(value.to_owned())),
    })
}

fn attribute(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: string(value),
    }
}

fn nanos(ms: i64) -> u64 {
    u64::try_from(ms).unwrap_or(0).saturating_mul(1_000_000)
}

/// The export request of `events` of `group` (any mix of streams).
pub fn export_request(group: &str, events: &[Arc<OutEvent>]) -> ExportLogsServiceRequest {
    let log_records = events
        .iter()
        .map(|e| LogRecord {
            time_unix_nano: nanos(e.timestamp_ms),
            observed_time_unix_nano: nanos(e.ingestion_ms),
            body: string(&e.message),
            attributes: vec![
                attribute("log.group", group),
                attribute("log.stream", &e.stream),
                attribute("log.record.uid", &e.id),
            ],
            ..LogRecord::default()
        })
        .collect();
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![attribute("service.name", "vigil")],
            }),
            scope_logs: vec![ScopeLogs {
                scope: Some(InstrumentationScope {
                    name: SCOPE_NAME.to_owned(),
                    version: env!("CARGO_PKG_VERSION").to_owned(),
                }),
                log_records,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

/// [`export_request`] as protobuf bytes.
pub fn encode(group: &str, events: &[Arc<OutEvent>]) -> Vec<u8> {
    export_request(group, events).encode_to_vec()
}
