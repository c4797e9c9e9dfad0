//! A whole trace made ready for the store and the service map on the
//! thread that recorded it.
//!
//! Handing a trace's spans to another thread costs more than encoding
//! them: each span owns its strings and maps, and freeing two dozen
//! allocations on the writer thread that the request's thread made (and
//! still has in its cache) was a fifth of the cost of tracing every
//! request. A [`PreparedTrace`] is the span records and the summary record
//! already encoded in one buffer, plus what the map needs of each span; the
//! spans themselves are freed where they were made.

use super::codec;
use crate::model::{Span, TraceId};
use crate::service_map::MapSpan;

/// One trace's records (its spans, then its summary) and its spans' facts
/// for the service map; see [`TraceStore::append_prepared`](super::TraceStore::append_prepared).
#[derive(Debug, Clone, PartialEq)]
pub struct PreparedTrace {
    pub(super) trace_id: TraceId,
    /// The span records back to back, then the summary record.
    pub(super) bytes: Vec<u8>,
    /// Each span's record: its start (the record's timestamp) and where
    /// the record ends in `bytes`.
    pub(super) records: Vec<(i64, usize)>,
    /// The summary's timestamp: the trace's first start.
    pub(super) summary_start_us: i64,
    map: Vec<MapSpan>,
}

impl PreparedTrace {
    /// Prepares the spans of one trace (all with the first span's trace
    /// id: spans of another trace would be stored, and found by `get`, only
    /// under that id); `None` when there are none.
    pub fn new(spans: &[Span]) -> Option<PreparedTrace> {
        let refs: Vec<&Span> = spans.iter().collect();
        PreparedTrace::of_refs(&refs)
    }

    pub(super) fn of_refs(spans: &[&Span]) -> Option<PreparedTrace> {
        if spans.is_empty() {
            return None;
        }
        // A root span with its HTTP block, annotations and metadata is
        // ~400 bytes, a stage ~80: room for both, so the buffer never grows.
        let mut bytes = Vec::with_capacity(spans.len() * 100 + 400);
        let mut records = Vec::with_capacity(spans.len());
        for span in spans {
            codec::encode_span(&mut bytes, span);
            records.push((span.start_us, bytes.len()));
        }
        let (trace_id, summary_start_us) = codec::encode_summary_of(&mut bytes, spans)?;
        Some(PreparedTrace {
            trace_id,
            bytes,
            records,
            summary_start_us,
            map: spans.iter().map(|span| MapSpan::from(*span)).collect(),
        })
    }

    /// The trace's id.
    pub fn trace_id(&self) -> TraceId {
        self.trace_id
    }

    /// How many spans it has.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether it has no span (never, for one [`PreparedTrace::new`] made).
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// What the service map needs of each span, in the order given.
    pub fn map_spans(&self) -> &[MapSpan] {
        &self.map
    }

    /// The span records, each with its timestamp, then the summary's.
    pub(super) fn span_records(&self) -> impl Iterator<Item = (i64, &[u8])> {
        let mut from = 0;
        self.records.iter().map(move |&(start, end)| {
            let record = (start, &self.bytes[from..end]);
            from = end;
            record
        })
    }

    /// The summary record and its timestamp.
    pub(super) fn summary_record(&self) -> (i64, &[u8]) {
        let from = self.records.last().map_or(0, |r| r.1);
        (self.summary_start_us, &self.bytes[from..])
    }
}
