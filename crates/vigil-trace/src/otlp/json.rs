//! OTLP/JSON ↔ the protobuf messages: lowerCamelCase field names, ids as
//! hex strings, 64-bit integers as strings (numbers accepted on decode),
//! enums as integers (their names accepted on decode), bytes values as
//! base64 on the wire are kept as the string given.

use serde_json::{Map, Value as Json, json};

use super::proto::{self, any_value::Value};
use super::{DecodeError, DecodeLimits, field};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The request as an OTLP/JSON value.
pub fn request_to_json(r: &proto::ExportTraceServiceRequest) -> Json {
    let resource_spans: Vec<Json> = r
        .resource_spans
        .iter()
        .map(|rs| {
            let scope_spans: Vec<Json> = rs
                .scope_spans
                .iter()
                .map(|ss| {
                    let scope = ss.scope.as_ref().map_or(
                        Json::Null,
                        |s| json!({"name": s.name, "version": s.version}),
                    );
                    let spans: Vec<Json> = ss.spans.iter().map(span_to_json).collect();
                    json!({"scope": scope, "spans": spans})
                })
                .collect();
            let attributes: Vec<Json> = rs
                .resource
                .as_ref()
                .map(|r| r.attributes.iter().map(kv_to_json).collect())
                .unwrap_or_default();
            json!({"resource": {"attributes": attributes}, "scopeSpans": scope_spans})
        })
        .collect();
    json!({ "resourceSpans": resource_spans })
}

fn span_to_json(s: &proto::Span) -> Json {
    let mut out = Map::new();
    out.insert("traceId".into(), Json::String(hex(&s.trace_id)));
    out.insert("spanId".into(), Json::String(hex(&s.span_id)));
    if !s.parent_span_id.is_empty() {
        out.insert("parentSpanId".into(), Json::String(hex(&s.parent_span_id)));
    }
    out.insert("name".into(), Json::String(s.name.clone()));
    out.insert("kind".into(), Json::from(s.kind));
    out.insert(
        "startTimeUnixNano".into(),
        Json::String(s.start_time_unix_nano.to_string()),
    );
    out.insert(
        "endTimeUnixNano".into(),
        Json::String(s.end_time_unix_nano.to_string()),
    );
    out.insert(
        "attributes".into(),
        Json::Array(s.attributes.iter().map(kv_to_json).collect()),
    );
    if let Some(st) = &s.status {
        out.insert(
            "status".into(),
            json!({"code": st.code, "message": st.message}),
        );
    }
    Json::Object(out)
}

fn kv_to_json(kv: &proto::KeyValue) -> Json {
    let value = kv.value.as_ref().map_or(json!({}), any_to_json);
    json!({"key": kv.key, "value": value})
}

fn any_to_json(v: &proto::AnyValue) -> Json {
    match &v.value {
        None => json!({}),
        Some(Value::StringValue(s)) => json!({ "stringValue": s }),
        Some(Value::BoolValue(b)) => json!({ "boolValue": b }),
        Some(Value::IntValue(i)) => json!({ "intValue": i.to_string() }),
        Some(Value::DoubleValue(d)) => json!({ "doubleValue": d }),
        Some(Value::ArrayValue(a)) => {
            let values: Vec<Json> = a.values.iter().map(any_to_json).collect();
            json!({ "arrayValue": { "values": values } })
        }
        Some(Value::KvlistValue(l)) => {
            let values: Vec<Json> = l.values.iter().map(kv_to_json).collect();
            json!({ "kvlistValue": { "values": values } })
        }
        Some(Value::BytesValue(b)) => json!({ "bytesValue": hex(b) }),
    }
}

/// A JSON value read with its path, for errors.
struct At<'a> {
    v: &'a Json,
    path: String,
}

impl<'a> At<'a> {
    fn get(&self, key: &str) -> Option<At<'a>> {
        let v = self.v.get(key)?;
        let path = if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        };
        (!v.is_null()).then_some(At { v, path })
    }

    fn list(&self, key: &str) -> Result<Vec<At<'a>>, DecodeError> {
        let Some(at) = self.get(key) else {
            return Ok(Vec::new());
        };
        let items =
            at.v.as_array()
                .ok_or_else(|| field(&at.path, "expected an array"))?;
        Ok(items
            .iter()
            .enumerate()
            .map(|(i, v)| At {
                v,
                path: format!("{}[{i}]", at.path),
            })
            .collect())
    }

    fn string(&self, key: &str) -> Result<String, DecodeError> {
        match self.get(key) {
            None => Ok(String::new()),
            Some(at) => {
                at.v.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| field(&at.path, "expected a string"))
            }
        }
    }

    /// A 64-bit integer given as a string or a number.
    fn int(&self, key: &str) -> Result<Option<i128>, DecodeError> {
        let Some(at) = self.get(key) else {
            return Ok(None);
        };
        let n = match at.v {
            Json::String(s) => s.parse::<i128>().ok(),
            Json::Number(n) => n
                .as_i64()
                .map(i128::from)
                .or_else(|| n.as_u64().map(i128::from)),
            _ => None,
        };
        n.map(Some)
            .ok_or_else(|| field(&at.path, "expected an integer (a string or a number)"))
    }

    fn hex_bytes(&self, key: &str) -> Result<Vec<u8>, DecodeError> {
        let s = self.string(key)?;
        let digits = s.as_bytes();
        let bad = || field(format!("{}.{key}", self.path), format!("{s:?} is not hex"));
        if !digits.len().is_multiple_of(2) {
            return Err(bad());
        }
        digits
            .chunks_exact(2)
            .map(|p| {
                std::str::from_utf8(p)
                    .ok()
                    .and_then(|p| u8::from_str_radix(p, 16).ok())
                    .ok_or_else(bad)
            })
            .collect()
    }
}

/// The request a JSON value holds, checking shape, ids and the span limit.
pub fn request_from_json(
    v: &Json,
    limits: &DecodeLimits,
) -> Result<proto::ExportTraceServiceRequest, DecodeError> {
    if !v.is_object() {
        return Err(DecodeError::Syntax("expected a JSON object".into()));
    }
    let root = At {
        v,
        path: String::new(),
    };
    let mut count = 0usize;
    let mut resource_spans = Vec::new();
    for (r, rs) in root.list("resourceSpans")?.into_iter().enumerate() {
        let rs = At {
            v: rs.v,
            path: format!("resourceSpans[{r}]"),
        };
        let attributes = match rs.get("resource") {
            Some(res) => kvs(&res, "attributes")?,
            None => Vec::new(),
        };
        let mut scope_spans = Vec::new();
        for ss in rs.list("scopeSpans")? {
            let mut spans = Vec::new();
            for sp in ss.list("spans")? {
                count += 1;
                if count > limits.max_spans {
                    return Err(DecodeError::TooManySpans {
                        max: limits.max_spans,
                    });
                }
                spans.push(span_from_json(&sp)?);
            }
            scope_spans.push(proto::ScopeSpans {
                scope: None,
                spans,
                schema_url: String::new(),
            });
        }
        resource_spans.push(proto::ResourceSpans {
            resource: Some(proto::Resource { attributes }),
            scope_spans,
            schema_url: String::new(),
        });
    }
    Ok(proto::ExportTraceServiceRequest { resource_spans })
}

fn span_from_json(sp: &At<'_>) -> Result<proto::Span, DecodeError> {
    let nanos = |key: &str| -> Result<u64, DecodeError> {
        match sp.int(key)? {
            None => Ok(0),
            Some(n) => {
                u64::try_from(n).map_err(|_| field(format!("{}.{key}", sp.path), "out of range"))
            }
        }
    };
    let kind = match sp.get("kind") {
        None => 0,
        Some(at) => match at.v {
            Json::Number(n) => n
                .as_i64()
                .and_then(|k| i32::try_from(k).ok())
                .ok_or_else(|| field(&at.path, "expected a SpanKind integer"))?,
            Json::String(s) => {
                kind_name(s).ok_or_else(|| field(&at.path, format!("{s:?} is not a SpanKind")))?
            }
            _ => return Err(field(&at.path, "expected a SpanKind integer")),
        },
    };
    let status = match sp.get("status") {
        None => None,
        Some(st) => Some(proto::Status {
            message: st.string("message")?,
            code: match st.get("code") {
                None => 0,
                Some(at) => match at.v {
                    Json::Number(n) => n.as_i64().and_then(|c| i32::try_from(c).ok()),
                    Json::String(s) => match s.as_str() {
                        "STATUS_CODE_UNSET" => Some(0),
                        "STATUS_CODE_OK" => Some(1),
                        "STATUS_CODE_ERROR" => Some(2),
                        _ => None,
                    },
                    _ => None,
                }
                .ok_or_else(|| field(&at.path, "expected a StatusCode integer"))?,
            },
        }),
    };
    Ok(proto::Span {
        trace_id: sp.hex_bytes("traceId")?,
        span_id: sp.hex_bytes("spanId")?,
        parent_span_id: sp.hex_bytes("parentSpanId")?,
        name: sp.string("name")?,
        kind,
        start_time_unix_nano: nanos("startTimeUnixNano")?,
        end_time_unix_nano: nanos("endTimeUnixNano")?,
        attributes: kvs(sp, "attributes")?,
        status,
    })
}

fn kind_name(s: &str) -> Option<i32> {
    Some(match s {
        "SPAN_KIND_UNSPECIFIED" => 0,
        "SPAN_KIND_INTERNAL" => 1,
        "SPAN_KIND_SERVER" => 2,
        "SPAN_KIND_CLIENT" => 3,
        "SPAN_KIND_PRODUCER" => 4,
        "SPAN_KIND_CONSUMER" => 5,
        _ => return None,
    })
}

fn kvs(at: &At<'_>, key: &str) -> Result<Vec<proto::KeyValue>, DecodeError> {
    at.list(key)?
        .iter()
        .map(|kv| {
            Ok(proto::KeyValue {
                key: kv.string("key")?,
                value: match kv.get("value") {
                    Some(v) => Some(any_from_json(&v)?),
                    None => None,
                },
            })
        })
        .collect()
}

fn any_from_json(at: &At<'_>) -> Result<proto::AnyValue, DecodeError> {
    let value = if let Some(s) = at.get("stringValue") {
        Some(Value::StringValue(
            s.v.as_str()
                .ok_or_else(|| field(&s.path, "expected a string"))?
                .to_owned(),
        ))
    } else if let Some(b) = at.get("boolValue") {
        Some(Value::BoolValue(
            b.v.as_bool()
                .ok_or_else(|| field(&b.path, "expected a boolean"))?,
        ))
    } else if at.get("intValue").is_some() {
        let n = at.int("intValue")?.unwrap_or_default();
        Some(Value::IntValue(i64::try_from(n).map_err(|_| {
            field(format!("{}.intValue", at.path), "out of the int64 range")
        })?))
    } else if let Some(d) = at.get("doubleValue") {
        let v = match d.v {
            Json::Number(n) => n.as_f64(),
            Json::String(s) => s.parse().ok(),
            _ => None,
        };
        Some(Value::DoubleValue(
            v.ok_or_else(|| field(&d.path, "expected a number"))?,
        ))
    } else if let Some(a) = at.get("arrayValue") {
        let values = a
            .list("values")?
            .iter()
            .map(any_from_json)
            .collect::<Result<_, _>>()?;
        Some(Value::ArrayValue(proto::ArrayValue { values }))
    } else if let Some(l) = at.get("kvlistValue") {
        Some(Value::KvlistValue(proto::KeyValueList {
            values: kvs(&l, "values")?,
        }))
    } else if let Some(b) = at.get("bytesValue") {
        Some(Value::BytesValue(
            b.v.as_str()
                .ok_or_else(|| field(&b.path, "expected a base64 string"))?
                .as_bytes()
                .to_vec(),
        ))
    } else {
        None
    };
    Ok(proto::AnyValue { value })
}
