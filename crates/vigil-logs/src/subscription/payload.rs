//! What a destination receives: the SEMANTICS §3.3 payload (JSON, or
//! gzipped and base64-encoded in a function's `awslogs` envelope), and the
//! file sink's JSON lines. Pure functions of the events, so the wire format
//! is checked without I/O.

use std::io::Write as _;
use std::sync::Arc;

use base64::Engine as _;
use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};

/// One event on its way to a destination (shared by the buffer and the
/// delivery in progress).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutEvent {
    /// Unique per event (both filters of a group give one event one id),
    /// stable across retries: what a consumer deduplicates on.
    pub id: Arc<str>,
    /// The stream it was sent to.
    pub stream: Arc<str>,
    /// When it happened, Unix ms.
    pub timestamp_ms: i64,
    /// When it was stored, Unix ms.
    pub ingestion_ms: i64,
    /// The log line.
    pub message: Arc<str>,
    /// `$name` → token, for space-delimited patterns only.
    pub extracted: Option<Vec<(String, String)>>,
}

/// The §3.3 payload of `events`, which must all be of one stream.
pub fn data_message(owner: &str, group: &str, filter: &str, events: &[Arc<OutEvent>]) -> Vec<u8> {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Payload<'a> {
        message_type: &'static str,
        owner: &'a str,
        log_group: &'a str,
        log_stream: &'a str,
        subscription_filters: [&'a str; 1],
        log_events: Vec<Event<'a>>,
    }
    let payload = Payload {
        message_type: "DATA_MESSAGE",
        owner,
        log_group: group,
        log_stream: events.first().map_or("", |e| &e.stream),
        subscription_filters: [filter],
        log_events: events.iter().map(|e| Event::of(e)).collect(),
    };
    serde_json::to_vec(&payload).expect("a payload of strings and numbers serializes")
}

/// `{"awslogs": {"data": base64(gzip(payload))}}`: what a function gets
/// from a subscription.
pub fn gzip_base64_envelope(payload: &[u8]) -> Vec<u8> {
    let data = gzip_base64(payload);
    serde_json::to_vec(&serde_json::json!({"awslogs": {"data": data}}))
        .expect("a string serializes")
}

/// base64 (standard alphabet, padded) of the gzipped bytes.
pub fn gzip_base64(payload: &[u8]) -> String {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(payload)
        .expect("writing into a Vec cannot fail");
    let zipped = gz.finish().expect("finishing into a Vec cannot fail");
    base64::engine::general_purpose::STANDARD.encode(zipped)
}

/// The file sink's lines: one JSON object per event, with its group and
/// stream, each ended by `\n`.
pub fn json_lines(group: &str, events: &[Arc<OutEvent>]) -> Vec<u8> {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Line<'a> {
        log_group: &'a str,
        log_stream: &'a str,
        #[serde(flatten)]
        event: Event<'a>,
    }
    let mut out = Vec::with_capacity(events.iter().map(|e| e.message.len() + 128).sum());
    for e in events {
        let line = Line {
            log_group: group,
            log_stream: &e.stream,
            event: Event::of(e),
        };
        serde_json::to_writer(&mut out, &line).expect("a line of strings and numbers serializes");
        out.push(b'\n');
    }
    out
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Event<'a> {
    id: &'a str,
    timestamp: i64,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    extracted_fields: Option<Fields<'a>>,
}

impl<'a> Event<'a> {
    fn of(e: &'a OutEvent) -> Event<'a> {
        Event {
            id: &e.id,
            timestamp: e.timestamp_ms,
            message: &e.message,
            extracted_fields: e.extracted.as_deref().map(Fields),
        }
    }
}

/// A map in pattern order (serde_json's `Map` would sort it).
struct Fields<'a>(&'a [(String, String)]);

impl Serialize for Fields<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}
