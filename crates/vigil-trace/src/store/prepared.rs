//! Whole traces made ready for the store and the service map on the
//! thread that recorded them.
//!
//! Handing a trace's spans to another thread costs more than encoding
//! them: each span owns its strings and maps, and freeing two dozen
//! allocations on the writer thread that the request's thread made (and
//! still has in its cache) was a fifth of the cost of tracing every
//! request. [`PreparedTraces`] holds traces' span records and summary
//! records already encoded, back to back in one buffer, plus what the map
//! needs of each span; the spans themselves are freed where they were
//! made. One value gathers many traces, and clearing it keeps its
//! buffers, so a recording thread that appends to one and a writer that
//! swaps it for an empty one allocate nothing per trace.

use std::borrow::Borrow;

use super::codec;
use crate::model::{Span, TraceId};
use crate::service_map::MapSpan;

/// Traces' records (per trace: its spans, then its summary) and their
/// spans' facts for the service map; see
/// [`TraceStore::append_prepared`](super::TraceStore::append_prepared).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PreparedTraces {
    /// Per trace, its span records back to back, then its summary record.
    bytes: Vec<u8>,
    /// Each span's record: its start (the record's timestamp) and where
    /// the record ends in `bytes`; the traces' spans in order.
    records: Vec<(i64, usize)>,
    traces: Vec<Prepared>,
    map: Vec<MapSpan>,
}

/// Segment-log records: each one's timestamp and bytes.
pub(super) type Records<'a> = Vec<(i64, &'a [u8])>;

/// One trace in a [`PreparedTraces`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Prepared {
    pub(super) trace_id: TraceId,
    /// How many of `records` are its spans.
    pub(super) spans: usize,
    /// The summary's timestamp: the trace's first start.
    summary_start_us: i64,
    /// Where its summary record ends in `bytes`.
    summary_end: usize,
}

impl PreparedTraces {
    /// Empty, with no buffer yet.
    pub fn new() -> PreparedTraces {
        PreparedTraces::default()
    }

    /// Adds the spans of one trace (all with the first span's trace id:
    /// spans of another trace would be stored, and found by `get`, only
    /// under that id); false, adding nothing, when there are none.
    pub fn push(&mut self, spans: &[Span]) -> bool {
        self.push_any(spans)
    }

    /// [`PreparedTraces::push`] for spans or references to them.
    pub(super) fn push_any<S: Borrow<Span>>(&mut self, spans: &[S]) -> bool {
        if spans.is_empty() {
            return false;
        }
        let (bytes, records) = (self.bytes.len(), self.records.len());
        for span in spans.iter().map(Borrow::borrow) {
            codec::encode_span(&mut self.bytes, span);
            self.records.push((span.start_us, self.bytes.len()));
        }
        let Some((trace_id, summary_start_us)) = codec::encode_summary_of(&mut self.bytes, spans)
        else {
            self.bytes.truncate(bytes);
            self.records.truncate(records);
            return false;
        };
        self.traces.push(Prepared {
            trace_id,
            spans: spans.len(),
            summary_start_us,
            summary_end: self.bytes.len(),
        });
        self.map
            .extend(spans.iter().map(|span| MapSpan::from(span.borrow())));
        true
    }

    /// Empties it, keeping its buffers.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.records.clear();
        self.traces.clear();
        self.map.clear();
    }

    /// How many traces it holds.
    pub fn traces(&self) -> usize {
        self.traces.len()
    }

    /// How many spans it holds.
    pub fn spans(&self) -> usize {
        self.records.len()
    }

    /// Whether it holds no trace.
    pub fn is_empty(&self) -> bool {
        self.traces.is_empty()
    }

    /// What the service map needs of each span, trace by trace, each
    /// trace's spans in the order given.
    pub fn map_spans(&self) -> &[MapSpan] {
        &self.map
    }

    /// The traces, in the order pushed.
    pub(super) fn entries(&self) -> &[Prepared] {
        &self.traces
    }

    /// Every span record with its timestamp (all traces', in order), and
    /// every summary record with its.
    pub(super) fn records(&self) -> (Records<'_>, Records<'_>) {
        let mut spans = Vec::with_capacity(self.records.len());
        let mut summaries = Vec::with_capacity(self.traces.len());
        let (mut from, mut next) = (0, 0);
        for trace in &self.traces {
            for &(start, end) in &self.records[next..next + trace.spans] {
                spans.push((start, &self.bytes[from..end]));
                from = end;
            }
            next += trace.spans;
            summaries.push((trace.summary_start_us, &self.bytes[from..trace.summary_end]));
            from = trace.summary_end;
        }
        (spans, summaries)
    }
}
