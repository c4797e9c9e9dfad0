//! Whole traces made ready for the store and the service map on the
//! thread that recorded them.
//!
//! Handing a trace's spans to another thread costs more than encoding
//! them: each span owns its strings and maps, and freeing two dozen
//! allocations on the writer thread that the request's thread made (and
//! still has in its cache) was a fifth of the cost of tracing every
//! request. [`PreparedTraces`] holds traces' spans records and summary
//! records already encoded, back to back in one buffer, plus what the map
//! needs of each span; the spans themselves are freed where they were
//! made. One value gathers many traces, and clearing it keeps its
//! buffers, so a recording thread that appends to one and a writer that
//! swaps it for an empty one allocate nothing per trace.

use std::borrow::Borrow;

use super::codec;
use crate::model::{Span, TraceId};
use crate::service_map::MapSpan;

/// Traces' records (per trace: its spans record, then its summary
/// record) and their spans' facts for the service map; see
/// [`TraceStore::append_prepared`](super::TraceStore::append_prepared).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PreparedTraces {
    /// Per trace, its spans record, then its summary record.
    bytes: Vec<u8>,
    traces: Vec<Prepared>,
    /// Spans in all traces.
    spans: usize,
    map: Vec<MapSpan>,
}

/// Segment-log records: each one's timestamp and bytes.
pub(super) type Records<'a> = Vec<(i64, &'a [u8])>;

/// One trace in a [`PreparedTraces`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Prepared {
    pub(super) trace_id: TraceId,
    /// How many spans its spans record holds.
    pub(super) spans: usize,
    /// Both records' timestamp: the trace's first start.
    start_us: i64,
    /// Where its spans record ends in `bytes`.
    spans_end: usize,
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
        let at = self.bytes.len();
        codec::encode_spans(&mut self.bytes, spans);
        let spans_end = self.bytes.len();
        let Some((trace_id, start_us)) = codec::encode_summary_of(&mut self.bytes, spans) else {
            self.bytes.truncate(at);
            return false;
        };
        self.traces.push(Prepared {
            trace_id,
            spans: spans.len(),
            start_us,
            spans_end,
            summary_end: self.bytes.len(),
        });
        self.spans += spans.len();
        self.map
            .extend(spans.iter().map(|span| MapSpan::from(span.borrow())));
        true
    }

    /// Empties it, keeping its buffers.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.traces.clear();
        self.spans = 0;
        self.map.clear();
    }

    /// How many traces it holds.
    pub fn traces(&self) -> usize {
        self.traces.len()
    }

    /// How many spans it holds.
    pub fn spans(&self) -> usize {
        self.spans
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

    /// Every trace's spans record with its timestamp, and every summary
    /// record with its, in the order pushed.
    pub(super) fn records(&self) -> (Records<'_>, Records<'_>) {
        let mut spans = Vec::with_capacity(self.traces.len());
        let mut summaries = Vec::with_capacity(self.traces.len());
        let mut from = 0;
        for trace in &self.traces {
            spans.push((trace.start_us, &self.bytes[from..trace.spans_end]));
            summaries.push((
                trace.start_us,
                &self.bytes[trace.spans_end..trace.summary_end],
            ));
            from = trace.summary_end;
        }
        (spans, summaries)
    }
}
