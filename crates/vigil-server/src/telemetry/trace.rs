//! The request's trace, as the telemetry spine records it.
//!
//! The outermost middleware starts a [`RequestTrace`] (ids of its own, or
//! the caller's from `traceparent` / `X-Amzn-Trace-Id`) and runs the
//! request inside [`RequestTrace::scope`]; while it runs, an event's `emit`
//! adds its stage's span ([`stage`]) or an annotation ([`annotate`]) to the
//! current trace, so handlers still only say what happened. When the
//! request is answered, `RequestFinished` closes the root span and hands
//! the sampled trace's spans to the trace writer ([`TraceSink`]).
//!
//! An unsampled request keeps its ids (they go into the access line, the
//! inference record and the response headers) but records nothing.

use std::cell::Cell;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use vigil_trace::model::{AnnotationValue, Name, Span, SpanId, SpanKind, TraceId};

/// The service name of Vigil's own spans.
pub const SERVICE: &str = "vigil";

/// Where finished traces go (the trace writer): must not block; a trace
/// that cannot be taken is dropped and counted by the sink.
pub trait TraceSink: Send + Sync + std::fmt::Debug {
    /// Take the spans of one finished trace, or of a batch received;
    /// `false` when they were dropped (the queue was full).
    fn write(&self, origin: SpanOrigin, spans: Vec<Span>) -> bool;
}

/// Where a batch of spans comes from: it tells the service map whether
/// later spans may name them as parents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanOrigin {
    /// One of Vigil's own traces, whole: every child of its spans is in it.
    Own,
    /// Spans received over OTLP: later batches may hold their children.
    Received,
}

tokio::task_local! {
    static CURRENT: RequestTrace;
}

/// One request's trace: its ids, whether it is sampled, and (when it is)
/// the spans and annotations recorded so far.
#[derive(Debug, Clone)]
pub struct RequestTrace {
    /// The trace (the caller's, or a new one).
    pub trace_id: TraceId,
    /// Vigil's root span for this request.
    pub root: SpanId,
    /// The caller's span, when the request carried one.
    pub parent: Option<SpanId>,
    /// Whether this request's spans are kept.
    pub sampled: bool,
    /// The caller's `tracestate`, passed on unchanged.
    pub tracestate: Option<Arc<str>>,
    recorder: Option<Arc<Mutex<Recorder>>>,
}

/// What a sampled request has recorded.
#[derive(Debug, Default)]
struct Recorder {
    spans: Vec<Span>,
    annotations: Vec<(&'static str, AnnotationValue)>,
    metadata: Vec<(&'static str, serde_json::Value)>,
}

impl Recorder {
    /// Room for what a scoring request records (six stage spans, seven
    /// annotations, two metadata), so recording never grows a vector.
    fn sized() -> Recorder {
        Recorder {
            spans: Vec::with_capacity(8),
            annotations: Vec::with_capacity(8),
            metadata: Vec::with_capacity(2),
        }
    }
}

impl RequestTrace {
    /// A trace for a request: `trace_id` and `parent` from the caller when
    /// it sent them, a new root span id, recording only when `sampled`.
    pub fn new(
        trace_id: TraceId,
        parent: Option<SpanId>,
        sampled: bool,
        tracestate: Option<Arc<str>>,
    ) -> RequestTrace {
        RequestTrace {
            trace_id,
            root: new_span_id(),
            parent,
            sampled,
            tracestate,
            recorder: sampled.then(|| Arc::new(Mutex::new(Recorder::sized()))),
        }
    }

    /// Runs `fut` with this trace as the current one.
    pub async fn scope<F: Future>(self, fut: F) -> F::Output {
        CURRENT.scope(self, fut).await
    }

    /// The recorded spans plus the root span `root` (filled with the
    /// annotations and metadata recorded), or `None` when not sampled.
    pub fn finish(&self, mut root: Span) -> Option<Vec<Span>> {
        let recorder = self.recorder.as_ref()?;
        let mut r = recorder.lock().unwrap_or_else(PoisonError::into_inner);
        for (key, value) in r.annotations.drain(..) {
            root.annotations.insert(Name::Borrowed(key), value);
        }
        for (key, value) in r.metadata.drain(..) {
            root.metadata.insert(key.to_owned(), value);
        }
        let mut spans = std::mem::take(&mut r.spans);
        spans.push(root);
        Some(spans)
    }

    /// The root span of this request, from `start_us` to now.
    pub fn root_span(&self, start_us: i64) -> Span {
        let mut span = Span::new(
            self.trace_id,
            self.root,
            self.parent,
            SERVICE,
            SERVICE,
            start_us,
            now_us(),
        );
        span.kind = SpanKind::Server;
        span
    }
}

/// Adds a stage span to the current request's trace, if it is sampled: it
/// ended now and lasted `duration`; `parent` is the stage it belongs to
/// (`None`: the request's root). `fill` sets its other fields. Returns its
/// id, for a child span (a remote call inside the stage).
pub(crate) fn stage(
    name: &'static str,
    duration: Duration,
    parent: Option<SpanId>,
    fill: impl FnOnce(&mut Span),
) -> Option<SpanId> {
    CURRENT
        .try_with(|trace| {
            let recorder = trace.recorder.as_ref()?;
            let end = now_us();
            let start = end - i64::try_from(duration.as_micros()).unwrap_or(i64::MAX);
            let id = new_span_id();
            let mut span = Span::new(
                trace.trace_id,
                id,
                Some(parent.unwrap_or(trace.root)),
                name,
                SERVICE,
                start,
                end,
            );
            fill(&mut span);
            recorder
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .spans
                .push(span);
            Some(id)
        })
        .ok()
        .flatten()
}

/// A remote call made inside a stage: a `Client` span named after the
/// service called (`redis`, `postgresql`), which the service map draws as
/// a node of its own.
pub(crate) fn remote(span: &mut Span) {
    span.kind = SpanKind::Client;
    span.remote = true;
}

/// Adds an annotation (indexed, searchable) to the current request's root
/// span, if it is sampled.
pub(crate) fn annotate(key: &'static str, value: impl Into<AnnotationValue>) {
    with_recorder(|r| r.annotations.push((key, value.into())));
}

/// Adds metadata (kept, not indexed) to the current request's root span,
/// if it is sampled.
pub(crate) fn metadata(key: &'static str, value: impl FnOnce() -> serde_json::Value) {
    with_recorder(|r| r.metadata.push((key, value())));
}

fn with_recorder(f: impl FnOnce(&mut Recorder)) {
    let _ = CURRENT.try_with(|trace| {
        if let Some(recorder) = &trace.recorder {
            f(&mut recorder.lock().unwrap_or_else(PoisonError::into_inner));
        }
    });
}

/// The current request's trace id and whether it is sampled, when a
/// request is running.
pub fn current() -> Option<(TraceId, bool)> {
    CURRENT.try_with(|t| (t.trace_id, t.sampled)).ok()
}

/// Microseconds since the Unix epoch.
pub fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// A new trace id: X-Ray style, its first 4 bytes the current second.
pub fn new_trace_id() -> TraceId {
    let mut random = [0; 12];
    random[..8].copy_from_slice(&next_random().to_le_bytes());
    random[8..].copy_from_slice(&next_random().to_le_bytes()[..4]);
    let epoch_s = u32::try_from(now_us().div_euclid(1_000_000)).unwrap_or(u32::MAX);
    TraceId::from_parts(epoch_s, random)
}

/// A new, non-zero span id.
pub fn new_span_id() -> SpanId {
    loop {
        let id = next_random();
        if id != 0 {
            return SpanId(id.to_le_bytes());
        }
    }
}

/// A uniform number in `[0, 1)`, for the sampler's fixed rate.
pub fn random_unit() -> f64 {
    // 53 random bits: every value a double can hold in [0, 1) at that step.
    #[allow(clippy::cast_precision_loss)]
    let unit = (next_random() >> 11) as f64 / (1u64 << 53) as f64;
    unit
}

/// A per-thread xorshift64* seeded from the OS: ids must be unique, not
/// secret, and this runs on every request.
fn next_random() -> u64 {
    thread_local! {
        static STATE: Cell<u64> = Cell::new({
            let mut seed = [0u8; 8];
            let _ = getrandom::fill(&mut seed);
            u64::from_le_bytes(seed) | 1
        });
    }
    STATE.with(|state| {
        let mut x = state.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        state.set(x);
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_sampled_request_records_its_stages_under_the_root() {
        let trace = RequestTrace::new(new_trace_id(), Some(SpanId([9; 8])), true, None);
        let root = trace.root;
        let spans = trace
            .clone()
            .scope(async {
                let cache = stage("cache", Duration::from_micros(40), None, |_| {});
                stage("redis", Duration::from_micros(30), cache, remote);
                annotate("model", "fraud");
                metadata("scores", || serde_json::json!([0.5]));
                let start = now_us() - 100;
                trace.finish(trace.root_span(start)).unwrap()
            })
            .await;
        assert_eq!(spans.len(), 3);
        let (cache, redis, vigil) = (&spans[0], &spans[1], &spans[2]);
        assert_eq!(cache.parent_id, Some(root));
        assert_eq!(redis.parent_id, Some(cache.span_id));
        assert!(redis.remote);
        assert_eq!(vigil.span_id, root);
        assert_eq!(vigil.parent_id, Some(SpanId([9; 8])));
        assert_eq!(vigil.annotations["model"], AnnotationValue::from("fraud"));
        assert_eq!(vigil.metadata["scores"], serde_json::json!([0.5]));
        assert_eq!(cache.duration_us(), 40);
    }

    #[tokio::test]
    async fn an_unsampled_request_keeps_its_ids_and_records_nothing() {
        let trace = RequestTrace::new(new_trace_id(), None, false, None);
        let id = trace.trace_id;
        let seen = trace
            .clone()
            .scope(async {
                assert!(stage("cache", Duration::ZERO, None, |_| {}).is_none());
                current()
            })
            .await;
        assert_eq!(seen, Some((id, false)));
        assert!(trace.finish(trace.root_span(0)).is_none());
        assert_eq!(current(), None);
    }

    #[test]
    fn new_ids_are_distinct_and_carry_the_second() {
        let a = new_trace_id();
        let b = new_trace_id();
        assert_ne!(a, b);
        let now_s = now_us() / 1_000_000;
        assert!((i64::from(a.epoch_s()) - now_s).abs() <= 1);
        let unit = random_unit();
        assert!((0.0..1.0).contains(&unit));
    }
}
