//! The span model every part of the crate shares: ids as OpenTelemetry has
//! them (16-byte trace id, 8-byte span id, shown as lowercase hex), fields
//! and flags as X-Ray has them (§6): `http`, `error`/`throttle`/`fault`,
//! `cause`, indexed `annotations`, unindexed `metadata`, a `remote`
//! namespace for downstream calls.
//!
//! A span is one X-Ray segment or subsegment: a root span (no parent, or a
//! parent in another service) is a segment; its children are subsegments.

use std::borrow::Borrow;
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A span's name, service or annotation key: Vigil's own are static
/// (`vigil`, `score`, `model`), so recording a span allocates none of
/// them; those decoded or received are owned.
pub type Name = std::borrow::Cow<'static, str>;

/// At most this many annotations per span (X-Ray's limit).
pub const MAX_ANNOTATIONS: usize = 50;

/// A trace id: 16 bytes. Shown as 32 lowercase hex digits (W3C, OTLP/JSON),
/// or in X-Ray's form `1-<8 hex>-<24 hex>`, whose first part is the epoch
/// second the trace began.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct TraceId(pub [u8; 16]);

/// A span id: 8 bytes, shown as 16 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct SpanId(pub [u8; 8]);

/// Why an id did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// Not the right number of hex digits.
    #[error("expected {expected} hex digits, found {found} characters")]
    Length {
        /// Digits the id has.
        expected: usize,
        /// Characters given.
        found: usize,
    },
    /// A character that is not a hex digit.
    #[error("'{0}' is not a hex digit")]
    NotHex(char),
    /// All zeros: W3C and OTLP reserve it for "no id".
    #[error("an all-zero id is not valid")]
    Zero,
    /// An X-Ray trace id that is not `1-<8 hex>-<24 hex>`.
    #[error("an X-Ray trace id is 1-<8 hex digits>-<24 hex digits>")]
    XRayForm,
}

impl TraceId {
    /// A trace id begun at `epoch_s`, X-Ray style: the first 4 bytes hold
    /// the second, the other 12 are `random`.
    pub fn from_parts(epoch_s: u32, random: [u8; 12]) -> TraceId {
        let mut bytes = [0; 16];
        bytes[..4].copy_from_slice(&epoch_s.to_be_bytes());
        bytes[4..].copy_from_slice(&random);
        TraceId(bytes)
    }

    /// Parses 32 hex digits (either case); all zeros is rejected.
    pub fn from_hex(s: &str) -> Result<TraceId, IdError> {
        let mut bytes = [0; 16];
        decode_hex(s, &mut bytes)?;
        Ok(TraceId(bytes))
    }

    /// Parses X-Ray's `1-5759e988-bd862e3fe1be46a994272793`.
    pub fn from_xray(s: &str) -> Result<TraceId, IdError> {
        let rest = s.strip_prefix("1-").ok_or(IdError::XRayForm)?;
        let (time, random) = rest.split_once('-').ok_or(IdError::XRayForm)?;
        if time.len() != 8 || random.len() != 24 {
            return Err(IdError::XRayForm);
        }
        let mut bytes = [0; 16];
        decode_hex(time, &mut bytes[..4])
            .and_then(|()| decode_hex(random, &mut bytes[4..]))
            .map_err(|err| match err {
                IdError::Zero => IdError::Zero,
                _ => IdError::XRayForm,
            })?;
        if bytes == [0; 16] {
            return Err(IdError::Zero);
        }
        Ok(TraceId(bytes))
    }

    /// X-Ray's form: `1-<first 8 hex>-<last 24 hex>`.
    pub fn to_xray(&self) -> String {
        let mut out = String::with_capacity(35);
        self.push_xray(&mut out);
        out
    }

    /// Appends X-Ray's form to `out`.
    pub fn push_xray(&self, out: &mut String) {
        let mut buf = [0; 32];
        let hex = encode_hex(&self.0, &mut buf);
        out.push_str("1-");
        out.push_str(&hex[..8]);
        out.push('-');
        out.push_str(&hex[8..]);
    }

    /// The epoch second in the first 4 bytes (X-Ray's trace start).
    pub fn epoch_s(&self) -> u32 {
        u32::from_be_bytes([self.0[0], self.0[1], self.0[2], self.0[3]])
    }
}

impl SpanId {
    /// Parses 16 hex digits (either case); all zeros is rejected.
    pub fn from_hex(s: &str) -> Result<SpanId, IdError> {
        let mut bytes = [0; 8];
        decode_hex(s, &mut bytes)?;
        Ok(SpanId(bytes))
    }
}

/// Decodes exactly `out.len() * 2` hex digits into `out`; all zeros fails.
fn decode_hex(s: &str, out: &mut [u8]) -> Result<(), IdError> {
    let digits = s.as_bytes();
    if digits.len() != out.len() * 2 {
        return Err(IdError::Length {
            expected: out.len() * 2,
            found: s.chars().count(),
        });
    }
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        *byte = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    if out.iter().all(|b| *b == 0) {
        return Err(IdError::Zero);
    }
    Ok(())
}

fn nibble(c: u8) -> Result<u8, IdError> {
    match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        b'A'..=b'F' => Ok(c - b'A' + 10),
        _ => Err(IdError::NotHex(char::from(c))),
    }
}

/// Lowercase hex of `bytes` in `out`, which is twice as long: ids are
/// formatted on every request (headers, access line, inference record),
/// so this is a table lookup, not `fmt` per byte.
fn encode_hex<'a>(bytes: &[u8], out: &'a mut [u8]) -> &'a str {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (pair, b) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = DIGITS[usize::from(b >> 4)];
        pair[1] = DIGITS[usize::from(b & 0xf)];
    }
    // Only ASCII digits were written.
    std::str::from_utf8(out).unwrap_or_default()
}

fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    let mut buf = [0; 32];
    f.pad(encode_hex(bytes, &mut buf[..bytes.len() * 2]))
}

macro_rules! hex_id {
    ($id:ident) => {
        impl $id {
            /// Appends the lowercase hex form to `out`.
            pub fn push_hex(&self, out: &mut String) {
                let mut buf = [0; 32];
                out.push_str(encode_hex(&self.0, &mut buf[..self.0.len() * 2]));
            }
        }

        impl fmt::Display for $id {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write_hex(f, &self.0)
            }
        }

        impl fmt::Debug for $id {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({self})", stringify!($id))
            }
        }

        impl FromStr for $id {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                $id::from_hex(s)
            }
        }

        impl Serialize for $id {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $id {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                $id::from_hex(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

hex_id!(TraceId);
hex_id!(SpanId);

/// OpenTelemetry's span kinds; a `Client` span with `remote` set is X-Ray's
/// `namespace: remote` subsegment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SpanKind {
    /// Work inside the service.
    #[default]
    Internal,
    /// The service answering a request (a root segment).
    Server,
    /// A call the service made to another.
    Client,
    /// A message sent.
    Producer,
    /// A message received.
    Consumer,
}

/// X-Ray's `http` block: the request as received or sent, and the answer.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Http {
    /// `GET`, `POST`, …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// The URL or path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The caller's `User-Agent`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// The caller's address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<String>,
    /// The response status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// The response body's length in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_length: Option<u64>,
}

/// An annotation's value: X-Ray allows a string, a number or a boolean.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum AnnotationValue {
    /// `true` / `false`.
    Bool(bool),
    /// Any number.
    Number(f64),
    /// Any text.
    String(String),
}

impl From<bool> for AnnotationValue {
    fn from(v: bool) -> Self {
        AnnotationValue::Bool(v)
    }
}

impl From<f64> for AnnotationValue {
    fn from(v: f64) -> Self {
        AnnotationValue::Number(v)
    }
}

impl From<&str> for AnnotationValue {
    fn from(v: &str) -> Self {
        AnnotationValue::String(v.to_owned())
    }
}

impl From<String> for AnnotationValue {
    fn from(v: String) -> Self {
        AnnotationValue::String(v)
    }
}

/// Whether `key` may name an annotation: 1–250 ASCII letters, digits or
/// `_` (X-Ray's rule; other keys are moved to metadata, not lost).
pub fn is_annotation_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 250
        && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// One span: an X-Ray segment (the root of a service's part of a trace) or
/// subsegment (a stage inside it, or a `remote` call).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Span {
    /// The trace it belongs to.
    pub trace_id: TraceId,
    /// Its own id.
    pub span_id: SpanId,
    /// The span it is a child of; `None` for the trace's root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<SpanId>,
    /// What it is: `vigil` for Vigil's root, a stage (`gateway`, `cache`,
    /// `score`, …), or a downstream service (`redis`, `postgresql`).
    pub name: Name,
    /// The service that recorded it (OTLP's `service.name`; X-Ray's
    /// segment name): `vigil` for Vigil's own spans.
    pub service: Name,
    /// OpenTelemetry's span kind.
    #[serde(default)]
    pub kind: SpanKind,
    /// A call to another service (X-Ray's `namespace: remote`): the
    /// service map draws it as a node of its own.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub remote: bool,
    /// Start, in microseconds since the Unix epoch.
    pub start_us: i64,
    /// End, in microseconds since the Unix epoch (≥ `start_us`).
    pub end_us: i64,
    /// The HTTP request and response, for spans that have one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<Http>,
    /// A client error (4xx).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub error: bool,
    /// Throttled (429); `error` is set too.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub throttle: bool,
    /// A server error (5xx).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fault: bool,
    /// Why it failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    /// Indexed, searchable key–values (`annotation.model = "fraud"`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<Name, AnnotationValue>,
    /// Anything else, not indexed.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub metadata: serde_json::Map<String, serde_json::Value>,
}

impl Span {
    /// A span with only its identity and times set.
    pub fn new(
        trace_id: TraceId,
        span_id: SpanId,
        parent_id: Option<SpanId>,
        name: impl Into<Name>,
        service: impl Into<Name>,
        start_us: i64,
        end_us: i64,
    ) -> Span {
        Span {
            trace_id,
            span_id,
            parent_id,
            name: name.into(),
            service: service.into(),
            kind: SpanKind::Internal,
            remote: false,
            start_us,
            end_us,
            http: None,
            error: false,
            throttle: false,
            fault: false,
            cause: None,
            annotations: BTreeMap::new(),
            metadata: serde_json::Map::new(),
        }
    }

    /// Its duration in microseconds (0 if the clock went backwards).
    pub fn duration_us(&self) -> i64 {
        (self.end_us - self.start_us).max(0)
    }

    /// Sets the flags from an HTTP status, as X-Ray does: 429 is `throttle`
    /// and `error`, other 4xx `error`, 5xx `fault`.
    pub fn set_status(&mut self, status: u16) {
        self.http.get_or_insert_with(Http::default).status = Some(status);
        self.error = (400..500).contains(&status);
        self.throttle = status == 429;
        self.fault = (500..600).contains(&status);
    }

    /// The service-map class of this span's outcome (fault, then throttle,
    /// then other error, then ok).
    pub fn outcome(&self) -> Outcome {
        if self.fault {
            Outcome::Fault
        } else if self.throttle {
            Outcome::Throttle
        } else if self.error {
            Outcome::Error
        } else {
            Outcome::Ok
        }
    }
}

/// How a request ended, classified fault → throttle → other error → ok
/// (§6: a request counts once, in the first class that applies).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Answered without an error.
    Ok,
    /// A client error other than throttling (4xx).
    Error,
    /// Throttled (429).
    Throttle,
    /// A server error (5xx).
    Fault,
}

/// What the filter language and the trace list see of one trace (or of the
/// part of it one batch of spans brought): its span with no parent in the
/// batch is the root, whose HTTP block and duration are the trace's
/// `http.*` and `responsetime`; flags, services and annotations are those
/// of any of its spans (X-Ray's trace-level view).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceSummary {
    /// The trace.
    pub trace_id: TraceId,
    /// The earliest start of its spans, µs since the epoch.
    pub start_us: i64,
    /// The latest end of its spans, µs since the epoch.
    pub end_us: i64,
    /// The root span's duration, µs (X-Ray's `responsetime`).
    pub response_time_us: i64,
    /// The root span's service.
    pub service: Name,
    /// The root span's name.
    pub name: Name,
    /// The root span's HTTP block.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<Http>,
    /// Some span is a client error.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub error: bool,
    /// Some span was throttled.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub throttle: bool,
    /// Some span is a server error.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fault: bool,
    /// Every service with a span in it, sorted, once each.
    pub services: Vec<Name>,
    /// Every annotation of every span, sorted by key, duplicates once.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub annotations: Vec<(Name, AnnotationValue)>,
    /// How many spans it has.
    pub spans: u32,
}

impl TraceSummary {
    /// One summary per trace among `spans`, in the order each trace first
    /// appears.
    pub fn of(spans: &[Span]) -> Vec<TraceSummary> {
        // One pass: a batch from the trace writer holds hundreds of traces.
        let mut index: std::collections::HashMap<TraceId, usize> = std::collections::HashMap::new();
        let mut groups: Vec<Vec<&Span>> = Vec::new();
        for span in spans {
            let i = *index.entry(span.trace_id).or_insert_with(|| {
                groups.push(Vec::new());
                groups.len() - 1
            });
            groups[i].push(span);
        }
        groups
            .iter()
            .filter_map(|members| TraceSummary::of_trace(members))
            .collect()
    }

    /// The summary of the spans of one trace; `None` when there are none.
    pub fn of_trace(spans: &[&Span]) -> Option<TraceSummary> {
        let o = Outline::of(spans)?;
        Some(TraceSummary {
            trace_id: o.root.trace_id,
            start_us: o.start_us,
            end_us: o.end_us,
            response_time_us: o.root.duration_us(),
            service: o.root.service.clone(),
            name: o.root.name.clone(),
            http: o.root.http.clone(),
            error: o.error,
            throttle: o.throttle,
            fault: o.fault,
            services: o
                .services
                .iter()
                .map(|s| Name::Owned((*s).to_owned()))
                .collect(),
            annotations: o
                .annotations
                .iter()
                .map(|(k, v)| (Name::Owned((*k).to_owned()), (*v).clone()))
                .collect(),
            spans: o.spans,
        })
    }

    /// From first start to last end, µs (X-Ray's `duration`).
    pub fn duration_us(&self) -> i64 {
        (self.end_us - self.start_us).max(0)
    }
}

/// What a trace's summary says, read from its spans where they are: the
/// one reading behind [`TraceSummary::of_trace`] and the store's encoding
/// of a summary straight from the spans.
#[derive(Debug)]
pub(crate) struct Outline<'a> {
    /// The first span whose parent is not among them (else the first).
    pub root: &'a Span,
    pub start_us: i64,
    pub end_us: i64,
    pub error: bool,
    pub throttle: bool,
    pub fault: bool,
    /// Every service, sorted, once each.
    pub services: Vec<&'a str>,
    /// Every annotation, sorted by key (stable: equal keys keep their
    /// first-seen order), duplicates once.
    pub annotations: Vec<(&'a str, &'a AnnotationValue)>,
    pub spans: u32,
}

impl<'a> Outline<'a> {
    /// `None` when there are no spans. Takes the spans or references to
    /// them, so no caller builds a vector of references for it.
    pub(crate) fn of<S: Borrow<Span>>(spans: &'a [S]) -> Option<Outline<'a>> {
        let all = || spans.iter().map(Borrow::<Span>::borrow);
        let first: &'a Span = all().next()?;
        let has = |id: SpanId| all().any(|s| s.span_id == id);
        let root: &'a Span = all()
            .find(|s| s.parent_id.is_none_or(|p| !has(p)))
            .unwrap_or(first);
        let mut services: Vec<&'a str> = all().map(|s| s.service.as_ref()).collect();
        services.sort_unstable();
        services.dedup();
        let mut annotations: Vec<(&'a str, &'a AnnotationValue)> = Vec::new();
        for span in all() {
            for (key, value) in &span.annotations {
                if !annotations.iter().any(|(k, v)| *k == key && *v == value) {
                    annotations.push((key, value));
                }
            }
        }
        annotations.sort_by(|a, b| a.0.cmp(b.0));
        Some(Outline {
            root,
            start_us: all().map(|s| s.start_us).min().unwrap_or(first.start_us),
            end_us: all().map(|s| s.end_us).max().unwrap_or(first.end_us),
            error: all().any(|s| s.error),
            throttle: all().any(|s| s.throttle),
            fault: all().any(|s| s.fault),
            services,
            annotations,
            spans: u32::try_from(spans.len()).unwrap_or(u32::MAX),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn xray_and_w3c_forms_name_the_same_trace() {
        let id = TraceId::from_xray("1-5759e988-bd862e3fe1be46a994272793").unwrap();
        assert_eq!(id.to_string(), "5759e988bd862e3fe1be46a994272793");
        assert_eq!(id.to_xray(), "1-5759e988-bd862e3fe1be46a994272793");
        assert_eq!(id.epoch_s(), 0x5759_e988);
        assert_eq!(
            TraceId::from_hex("5759E988BD862E3FE1BE46A994272793"),
            Ok(id)
        );
    }

    #[test]
    fn malformed_ids_say_why() {
        assert_eq!(
            SpanId::from_hex("53995c3f42cd8ad"),
            Err(IdError::Length {
                expected: 16,
                found: 15
            })
        );
        assert_eq!(
            SpanId::from_hex("53995c3f42cd8adz"),
            Err(IdError::NotHex('z'))
        );
        assert_eq!(SpanId::from_hex("0000000000000000"), Err(IdError::Zero));
        assert_eq!(
            TraceId::from_xray("2-5759e988-bd862e3fe1be46a994272793"),
            Err(IdError::XRayForm)
        );
        assert_eq!(
            TraceId::from_xray("1-5759e98-8bd862e3fe1be46a994272793"),
            Err(IdError::XRayForm)
        );
        assert_eq!(
            TraceId::from_xray("1-00000000-000000000000000000000000"),
            Err(IdError::Zero)
        );
    }

    #[test]
    fn status_sets_the_flags_and_the_outcome() {
        let mut span = Span::new(
            TraceId([1; 16]),
            SpanId([2; 8]),
            None,
            "vigil",
            "vigil",
            0,
            10,
        );
        for (status, outcome) in [
            (200, Outcome::Ok),
            (404, Outcome::Error),
            (429, Outcome::Throttle),
            (503, Outcome::Fault),
        ] {
            span.set_status(status);
            assert_eq!(span.outcome(), outcome, "{status}");
        }
        span.set_status(429);
        assert!(span.error && span.throttle && !span.fault);
    }

    #[test]
    fn a_span_round_trips_through_json_with_hex_ids() {
        let mut span = Span::new(
            TraceId([0xab; 16]),
            SpanId([0xcd; 8]),
            Some(SpanId([0xef; 8])),
            "cache",
            "vigil",
            1_000,
            1_250,
        );
        span.annotations.insert("model".into(), "fraud".into());
        span.annotations.insert("cached".into(), true.into());
        span.annotations.insert("rows".into(), 3.0.into());
        span.set_status(200);
        let json = serde_json::to_value(&span).unwrap();
        assert_eq!(json["trace_id"], "abababababababababababababababab");
        assert_eq!(json["parent_id"], "efefefefefefefef");
        assert_eq!(json["annotations"]["cached"], true);
        let back: Span = serde_json::from_value(json).unwrap();
        assert_eq!(back, span);
    }

    #[test]
    fn annotation_keys_follow_xray() {
        assert!(is_annotation_key("model_version2"));
        assert!(!is_annotation_key("model.version"));
        assert!(!is_annotation_key(""));
    }

    #[test]
    fn a_summary_takes_the_root_and_any_spans_flags() {
        let trace = TraceId([7; 16]);
        let mut root = Span::new(
            trace,
            SpanId([1; 8]),
            Some(SpanId([9; 8])),
            "vigil",
            "vigil",
            100,
            600,
        );
        root.set_status(200);
        let mut cache = Span::new(
            trace,
            SpanId([2; 8]),
            Some(SpanId([1; 8])),
            "cache",
            "vigil",
            150,
            200,
        );
        cache.annotations.insert("cached".into(), false.into());
        let mut redis = Span::new(
            trace,
            SpanId([3; 8]),
            Some(SpanId([2; 8])),
            "redis",
            "vigil",
            160,
            650,
        );
        redis.remote = true;
        redis.fault = true;
        let other = Span::new(TraceId([8; 16]), SpanId([4; 8]), None, "x", "caller", 0, 1);
        let summaries = TraceSummary::of(&[root, cache, other, redis]);
        assert_eq!(summaries.len(), 2);
        let s = &summaries[0];
        assert_eq!(
            (s.name.as_ref(), s.response_time_us, s.duration_us()),
            ("vigil", 500, 550)
        );
        assert!(s.fault && !s.error);
        assert_eq!(s.http.as_ref().and_then(|h| h.status), Some(200));
        assert_eq!(
            s.annotations,
            vec![(Name::from("cached"), AnnotationValue::Bool(false))]
        );
        assert_eq!(
            (s.spans, summaries[1].services.clone()),
            (3, vec![Name::from("caller")])
        );
    }

    proptest! {
        #[test]
        fn every_id_round_trips(bytes in any::<[u8; 16]>(), span in any::<[u8; 8]>()) {
            prop_assume!(bytes != [0; 16] && span != [0; 8]);
            let id = TraceId(bytes);
            prop_assert_eq!(TraceId::from_hex(&id.to_string()), Ok(id));
            prop_assert_eq!(TraceId::from_xray(&id.to_xray()), Ok(id));
            let span = SpanId(span);
            prop_assert_eq!(SpanId::from_hex(&span.to_string()), Ok(span));
        }
    }
}
