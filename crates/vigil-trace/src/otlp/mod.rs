//! The OTLP codec for traces (no HTTP): [`encode_proto`] / [`encode_json`]
//! turn spans into an `ExportTraceServiceRequest`, [`decode_proto`] /
//! [`decode_json`] turn a request body back into spans, with errors that
//! name the field path and the problem.
//!
//! # Mapping
//!
//! | Vigil `Span` | OTLP |
//! |---|---|
//! | `service` | resource attribute `service.name` (one `ResourceSpans` per service; missing: `unknown_service`) |
//! | `name`, `trace_id`, `span_id` | `name`, `traceId`, `spanId` (16 and 8 bytes, not all zero) |
//! | `parent_id` | `parentSpanId` (empty, or all zeros, = root) |
//! | `kind` | `kind` (`SPAN_KIND_*`; unspecified decodes as internal) |
//! | `start_us`, `end_us` | `startTimeUnixNano`, `endTimeUnixNano` (÷ 1000) |
//! | `fault` | `status.code` = ERROR |
//! | `cause` | `status.message` (on decode, else attribute `exception.message`) |
//! | `error`, `throttle`, `fault` | attributes `vigil.error`, `vigil.throttle`, `vigil.fault` (written with an HTTP status or any flag set; on decode they override what the status gives) |
//! | `http.method`, `url`, `user_agent`, `client_ip`, `status`, `content_length` | `http.request.method`, `url.full` (decode also `url.path`, `http.url`), `user_agent.original`, `client.address`, `http.response.status_code` (also `http.status_code`; sets the flags as `Span::set_status` does), `http.response.body.size`; decode also `http.method` |
//! | `remote` | `vigil.remote = true` and `peer.service` = name; on decode a CLIENT span with `peer.service` or `db.system` is remote too |
//! | `annotations` | attributes by their key (string, bool, double; int decodes as a number) |
//! | `metadata` | attributes `metadata.<key>` (strings, bools and numbers as such, other JSON as a JSON-encoded string, decoded back when it is an array or object) |
//!
//! On decode, attributes that are none of the above go to `annotations`
//! when their key is an annotation key (`is_annotation_key`) and the span
//! has fewer than 50, else to `metadata` under their own key. Resource
//! attributes other than `service.name` and the scope are not kept. An
//! `http` block with no field set, an empty `cause` and a body size past
//! `i64::MAX` are not carried as they are.
//!
//! OTLP/JSON follows the spec, not proto3's JSON: ids are hex strings,
//! 64-bit integers strings (numbers accepted), enums integers (names
//! accepted), field names lowerCamelCase.

mod json;
pub mod proto;

use std::collections::BTreeMap;

use prost::Message as _;

use crate::model::{
    AnnotationValue, Http, MAX_ANNOTATIONS, Name, Span, SpanId, SpanKind, TraceId,
    is_annotation_key,
};
use proto::any_value::Value;

/// How much a decoded request may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Spans per request. Default: 10,000.
    pub max_spans: usize,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits { max_spans: 10_000 }
    }
}

/// Why a request body was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// A field is wrong: `path` says which (`resourceSpans[0].scopeSpans[0].spans[3].traceId`).
    #[error("{path}: {problem}")]
    Field {
        /// Where.
        path: String,
        /// What is wrong.
        problem: String,
    },
    /// The body is not a protobuf / JSON export request at all.
    #[error("body: {0}")]
    Syntax(String),
    /// More spans than [`DecodeLimits::max_spans`].
    #[error("the request holds more than {max} spans")]
    TooManySpans {
        /// The limit.
        max: usize,
    },
}

fn field(path: impl Into<String>, problem: impl Into<String>) -> DecodeError {
    DecodeError::Field {
        path: path.into(),
        problem: problem.into(),
    }
}

/// The export request carrying `spans`.
pub fn to_request(spans: &[Span]) -> proto::ExportTraceServiceRequest {
    let mut by_service: Vec<(&str, Vec<proto::Span>)> = Vec::new();
    for span in spans {
        let out = encode_span(span);
        match by_service.iter_mut().find(|(s, _)| *s == span.service) {
            Some((_, list)) => list.push(out),
            None => by_service.push((&span.service, vec![out])),
        }
    }
    proto::ExportTraceServiceRequest {
        resource_spans: by_service
            .into_iter()
            .map(|(service, spans)| proto::ResourceSpans {
                resource: Some(proto::Resource {
                    attributes: vec![kv("service.name", Value::StringValue(service.to_owned()))],
                }),
                scope_spans: vec![proto::ScopeSpans {
                    scope: Some(proto::InstrumentationScope {
                        name: "vigil".to_owned(),
                        version: String::new(),
                    }),
                    spans,
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            })
            .collect(),
    }
}

/// `spans` as a protobuf `ExportTraceServiceRequest`.
pub fn encode_proto(spans: &[Span]) -> Vec<u8> {
    to_request(spans).encode_to_vec()
}

/// `spans` as an OTLP/JSON `ExportTraceServiceRequest`.
pub fn encode_json(spans: &[Span]) -> Vec<u8> {
    // A tree of JSON values serialises infallibly.
    serde_json::to_vec(&json::request_to_json(&to_request(spans))).unwrap_or_default()
}

/// The spans of a protobuf request body.
pub fn decode_proto(body: &[u8], limits: &DecodeLimits) -> Result<Vec<Span>, DecodeError> {
    let request = proto::ExportTraceServiceRequest::decode(body)
        .map_err(|e| DecodeError::Syntax(format!("not an ExportTraceServiceRequest: {e}")))?;
    from_request(&request, limits)
}

/// The spans of an OTLP/JSON request body.
pub fn decode_json(body: &[u8], limits: &DecodeLimits) -> Result<Vec<Span>, DecodeError> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| DecodeError::Syntax(format!("not JSON: {e}")))?;
    let request = json::request_from_json(&value, limits)?;
    from_request(&request, limits)
}

/// The spans of a decoded request.
pub fn from_request(
    request: &proto::ExportTraceServiceRequest,
    limits: &DecodeLimits,
) -> Result<Vec<Span>, DecodeError> {
    let total: usize = request
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len())
        .sum();
    if total > limits.max_spans {
        return Err(DecodeError::TooManySpans {
            max: limits.max_spans,
        });
    }
    let mut out = Vec::with_capacity(total);
    for (r, resource) in request.resource_spans.iter().enumerate() {
        let service = resource
            .resource
            .as_ref()
            .and_then(|res| res.attributes.iter().find(|a| a.key == "service.name"))
            .and_then(|a| match a.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(Value::StringValue(s)) => Some(s.clone()),
                _ => None,
            })
            .unwrap_or_else(|| "unknown_service".to_owned());
        for (s, scope) in resource.scope_spans.iter().enumerate() {
            for (i, span) in scope.spans.iter().enumerate() {
                let path = format!("resourceSpans[{r}].scopeSpans[{s}].spans[{i}]");
                out.push(decode_span(span, &service, &path)?);
            }
        }
    }
    Ok(out)
}

fn kv(key: &str, value: Value) -> proto::KeyValue {
    proto::KeyValue {
        key: key.to_owned(),
        value: Some(proto::AnyValue { value: Some(value) }),
    }
}

fn nanos(us: i64) -> u64 {
    u64::try_from(us).unwrap_or(0).saturating_mul(1000)
}

fn encode_span(span: &Span) -> proto::Span {
    let mut attributes = Vec::new();
    let s = |v: &str| Value::StringValue(v.to_owned());
    if let Some(h) = &span.http {
        let fields = [
            ("http.request.method", h.method.as_ref()),
            ("url.full", h.url.as_ref()),
            ("user_agent.original", h.user_agent.as_ref()),
            ("client.address", h.client_ip.as_ref()),
        ];
        for (key, value) in fields {
            if let Some(v) = value {
                attributes.push(kv(key, s(v)));
            }
        }
        if let Some(status) = h.status {
            attributes.push(kv(
                "http.response.status_code",
                Value::IntValue(status.into()),
            ));
        }
        if let Some(len) = h.content_length {
            let len = i64::try_from(len).unwrap_or(i64::MAX);
            attributes.push(kv("http.response.body.size", Value::IntValue(len)));
        }
    }
    let has_status = span.http.as_ref().is_some_and(|h| h.status.is_some());
    if has_status || span.error || span.throttle || span.fault {
        attributes.push(kv("vigil.error", Value::BoolValue(span.error)));
        attributes.push(kv("vigil.throttle", Value::BoolValue(span.throttle)));
        attributes.push(kv("vigil.fault", Value::BoolValue(span.fault)));
    }
    if span.remote {
        attributes.push(kv("vigil.remote", Value::BoolValue(true)));
        attributes.push(kv("peer.service", s(&span.name)));
    }
    for (key, value) in &span.annotations {
        let v = match value {
            AnnotationValue::Bool(b) => Value::BoolValue(*b),
            AnnotationValue::Number(n) => Value::DoubleValue(*n),
            AnnotationValue::String(t) => Value::StringValue(t.clone()),
        };
        attributes.push(kv(key, v));
    }
    for (key, value) in &span.metadata {
        let v = match value {
            serde_json::Value::String(t) => Value::StringValue(t.clone()),
            serde_json::Value::Bool(b) => Value::BoolValue(*b),
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) => Value::IntValue(i),
                None => Value::DoubleValue(n.as_f64().unwrap_or(0.0)),
            },
            other => Value::StringValue(other.to_string()),
        };
        attributes.push(kv(&format!("metadata.{key}"), v));
    }
    proto::Span {
        trace_id: span.trace_id.0.to_vec(),
        span_id: span.span_id.0.to_vec(),
        parent_span_id: span.parent_id.map(|p| p.0.to_vec()).unwrap_or_default(),
        name: span.name.to_string(),
        kind: match span.kind {
            SpanKind::Internal => 1,
            SpanKind::Server => 2,
            SpanKind::Client => 3,
            SpanKind::Producer => 4,
            SpanKind::Consumer => 5,
        },
        start_time_unix_nano: nanos(span.start_us),
        end_time_unix_nano: nanos(span.end_us),
        attributes,
        status: (span.fault || span.cause.is_some()).then(|| proto::Status {
            message: span.cause.clone().unwrap_or_default(),
            code: if span.fault { 2 } else { 0 },
        }),
    }
}

fn id_bytes<const N: usize>(bytes: &[u8], path: &str, name: &str) -> Result<[u8; N], DecodeError> {
    let id: [u8; N] = bytes.try_into().map_err(|_| {
        field(
            format!("{path}.{name}"),
            format!("expected {N} bytes, found {}", bytes.len()),
        )
    })?;
    if id == [0; N] {
        return Err(field(
            format!("{path}.{name}"),
            "an all-zero id is not valid",
        ));
    }
    Ok(id)
}

fn as_json(v: &Value) -> serde_json::Value {
    match v {
        Value::StringValue(s) => serde_json::Value::String(s.clone()),
        Value::BoolValue(b) => serde_json::Value::Bool(*b),
        Value::IntValue(i) => serde_json::Value::from(*i),
        Value::DoubleValue(d) => serde_json::Number::from_f64(*d)
            .map_or(serde_json::Value::Null, serde_json::Value::Number),
        Value::ArrayValue(a) => serde_json::Value::Array(
            a.values
                .iter()
                .map(|v| v.value.as_ref().map_or(serde_json::Value::Null, as_json))
                .collect(),
        ),
        Value::KvlistValue(l) => serde_json::Value::Object(
            l.values
                .iter()
                .map(|kv| {
                    let v = kv.value.as_ref().and_then(|v| v.value.as_ref());
                    (kv.key.clone(), v.map_or(serde_json::Value::Null, as_json))
                })
                .collect(),
        ),
        Value::BytesValue(b) => {
            serde_json::Value::String(b.iter().map(|x| format!("{x:02x}")).collect())
        }
    }
}

fn decode_span(p: &proto::Span, service: &str, path: &str) -> Result<Span, DecodeError> {
    let trace_id = TraceId(id_bytes(&p.trace_id, path, "traceId")?);
    let span_id = SpanId(id_bytes(&p.span_id, path, "spanId")?);
    let parent_id = match p.parent_span_id.len() {
        0 => None,
        _ if p.parent_span_id.iter().all(|b| *b == 0) => None,
        _ => Some(SpanId(id_bytes(&p.parent_span_id, path, "parentSpanId")?)),
    };
    let kind = match p.kind {
        0 | 1 => SpanKind::Internal,
        2 => SpanKind::Server,
        3 => SpanKind::Client,
        4 => SpanKind::Producer,
        5 => SpanKind::Consumer,
        k => {
            return Err(field(
                format!("{path}.kind"),
                format!("{k} is not a SpanKind (0–5)"),
            ));
        }
    };
    let to_us = |n: u64| i64::try_from(n / 1000).unwrap_or(i64::MAX);
    let mut span = Span::new(
        trace_id,
        span_id,
        parent_id,
        p.name.clone(),
        service.to_owned(),
        to_us(p.start_time_unix_nano),
        to_us(p.end_time_unix_nano),
    );
    span.kind = kind;
    let mut http = Http::default();
    let mut status: Option<i64> = None;
    let mut flags: [Option<bool>; 3] = [None; 3];
    let mut exception = None;
    let mut peer = None;
    let mut annotations = BTreeMap::new();
    for (i, attr) in p.attributes.iter().enumerate() {
        let Some(value) = attr.value.as_ref().and_then(|v| v.value.as_ref()) else {
            continue;
        };
        let apath = || format!("{path}.attributes[{i}]");
        let text = || match value {
            Value::StringValue(s) => Ok(s.clone()),
            _ => Err(field(apath(), format!("{} must be a string", attr.key))),
        };
        let int = || match value {
            Value::IntValue(n) => Ok(*n),
            Value::DoubleValue(d) if d.fract() == 0.0 => Ok(*d as i64),
            Value::StringValue(s) => s
                .parse()
                .map_err(|_| field(apath(), format!("{} must be an integer", attr.key))),
            _ => Err(field(apath(), format!("{} must be an integer", attr.key))),
        };
        let boolean = || match value {
            Value::BoolValue(b) => Some(*b),
            _ => None,
        };
        match attr.key.as_str() {
            "http.request.method" | "http.method" => http.method = Some(text()?),
            "url.full" | "http.url" => http.url = Some(text()?),
            "url.path" => {
                let path = text()?;
                http.url.get_or_insert(path);
            }
            "user_agent.original" | "http.user_agent" => http.user_agent = Some(text()?),
            "client.address" => http.client_ip = Some(text()?),
            "http.response.status_code" | "http.status_code" => status = Some(int()?),
            "http.response.body.size" => {
                http.content_length =
                    Some(u64::try_from(int()?).map_err(|_| {
                        field(apath(), "http.response.body.size must not be negative")
                    })?);
            }
            "vigil.error" => flags[0] = boolean(),
            "vigil.throttle" => flags[1] = boolean(),
            "vigil.fault" => flags[2] = boolean(),
            "vigil.remote" => span.remote = boolean() == Some(true),
            "exception.message" => exception = Some(text()?),
            "peer.service" | "db.system" => {
                if kind == SpanKind::Client {
                    span.remote = true;
                }
                match value {
                    Value::StringValue(s) if *s == span.name => {}
                    _ => {
                        peer = Some((attr.key.clone(), as_json(value)));
                    }
                }
            }
            key => {
                if let Some(meta) = key.strip_prefix("metadata.") {
                    let v = match value {
                        Value::StringValue(s) if s.starts_with('[') || s.starts_with('{') => {
                            serde_json::from_str(s).unwrap_or_else(|_| as_json(value))
                        }
                        _ => as_json(value),
                    };
                    span.metadata.insert(meta.to_owned(), v);
                    continue;
                }
                let annotation = match value {
                    Value::StringValue(s) => Some(AnnotationValue::String(s.clone())),
                    Value::BoolValue(b) => Some(AnnotationValue::Bool(*b)),
                    Value::DoubleValue(d) => Some(AnnotationValue::Number(*d)),
                    Value::IntValue(n) => Some(AnnotationValue::Number(*n as f64)),
                    _ => None,
                };
                match annotation {
                    Some(a) if is_annotation_key(key) && annotations.len() < MAX_ANNOTATIONS => {
                        annotations.insert(Name::from(key.to_owned()), a);
                    }
                    _ => {
                        span.metadata.insert(key.to_owned(), as_json(value));
                    }
                }
            }
        }
    }
    if let Some((key, value)) = peer {
        span.metadata.insert(key, value);
    }
    span.annotations = annotations;
    if http != Http::default() {
        span.http = Some(http);
    }
    if let Some(code) = status {
        let code = u16::try_from(code)
            .ok()
            .filter(|c| (100..=999).contains(c))
            .ok_or_else(|| {
                field(
                    format!("{path}.attributes"),
                    format!("http status {code} is not 100–999"),
                )
            })?;
        span.set_status(code);
    }
    if let Some(st) = &p.status {
        if st.code == 2 {
            span.fault = true;
        }
        if !st.message.is_empty() {
            span.cause = Some(st.message.clone());
        }
    }
    if span.cause.is_none() {
        span.cause = exception;
    }
    for (flag, value) in [&mut span.error, &mut span.throttle, &mut span.fault]
        .into_iter()
        .zip(flags)
    {
        if let Some(v) = value {
            *flag = v;
        }
    }
    Ok(span)
}

#[cfg(test)]
mod tests;
