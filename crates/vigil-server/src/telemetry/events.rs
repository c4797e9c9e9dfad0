//! One type per thing that happens on the request path. Each event's
//! `emit` updates its metrics (and writes its log line, where it has one);
//! call sites only build the event and hand it to [`Telemetry::emit`].

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::trace::{self, RequestTrace};
use super::{ModelHandles, Telemetry};

/// Something that happened, with the metrics it feeds.
pub trait Event {
    /// Whether the event writes a log line (so it is emitted even with
    /// metrics off).
    const HAS_LINE: bool = false;
    /// Whether the event records a span or an annotation of the current
    /// request's trace (so it is emitted even with metrics off; its
    /// metrics check [`Telemetry::enabled`] themselves).
    const HAS_SPAN: bool = false;
    /// The event's name (what a recording test sees).
    fn name(&self) -> &'static str;
    /// Update the metrics (and the log) for this event.
    fn emit(self, telemetry: &Telemetry);
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A request was answered (the outermost middleware emits it).
#[derive(Debug, Clone, Copy)]
pub struct RequestFinished<'a> {
    /// The route template, `None` when no route matched.
    pub route: Option<&'a str>,
    /// The HTTP status, or for gRPC the status its `grpc-status` maps to.
    pub status: u16,
    /// Request in to response out.
    pub latency: Duration,
    /// Time in the handler behind the gateway's checks, when it ran.
    pub integration: Option<Duration>,
    /// The request's trace, its root span's fields beside.
    pub trace: Option<Traced<'a>>,
}

/// What the root span of a traced request says about it.
#[derive(Debug, Clone, Copy)]
pub struct Traced<'a> {
    /// The request's trace.
    pub trace: &'a RequestTrace,
    /// When the request came in, µs since the epoch.
    pub start_us: i64,
    /// `GET`, `POST`, …
    pub method: &'a str,
    /// The path asked for.
    pub path: &'a str,
    /// The caller's `User-Agent`.
    pub user_agent: Option<&'a str>,
    /// The caller's address.
    pub client_ip: Option<&'a str>,
    /// The response body's length, when known.
    pub content_length: Option<u64>,
    /// The request id (`x-request-id`).
    pub request_id: &'a str,
    /// The API key's name, when one was presented.
    pub key_name: Option<&'a str>,
}

impl Event for RequestFinished<'_> {
    const HAS_SPAN: bool = true;

    fn name(&self) -> &'static str {
        "RequestFinished"
    }

    #[inline]
    fn emit(self, t: &Telemetry) {
        if t.enabled {
            self.count(t);
        }
        let Some(traced) = self.trace.filter(|traced| traced.trace.sampled) else {
            return;
        };
        let Some(sink) = t.traces() else {
            return;
        };
        let mut root = traced.trace.root_span(traced.start_us);
        root.http = Some(vigil_trace::model::Http {
            method: Some(traced.method.to_owned()),
            url: Some(traced.path.to_owned()),
            user_agent: traced.user_agent.map(str::to_owned),
            client_ip: traced.client_ip.map(str::to_owned),
            status: None,
            content_length: traced.content_length,
        });
        root.set_status(self.status);
        root.annotations
            .insert("request_id".into(), traced.request_id.into());
        if let Some(route) = self.route {
            root.annotations.insert("route".into(), route.into());
        }
        if let Some(key) = traced.key_name {
            root.annotations.insert("key_name".into(), key.into());
        }
        if let Some(spans) = traced.trace.finish(root) {
            // A full queue counts the trace as dropped itself.
            let _ = sink.write(trace::SpanOrigin::Own, spans);
        }
    }
}

impl RequestFinished<'_> {
    #[inline]
    fn count(&self, t: &Telemetry) {
        let route = t.route(self.route);
        let latency = millis(self.latency);
        route.count.incr();
        // A stored trace (sampled, with the writer on) becomes its latency
        // bucket's exemplar, so the link on /metrics leads to a trace.
        let exemplar = self
            .trace
            .filter(|traced| traced.trace.sampled && t.traces().is_some())
            .map(|traced| (traced.trace.trace_id.0, super::now_ms()));
        let record = |d: &vigil_metrics::registry::Distribution| match exemplar {
            Some((trace_id, at_ms)) => d.record_with_exemplar(latency, trace_id, at_ms),
            None => d.record(latency),
        };
        record(&route.latency);
        if let Some(integration) = self.integration {
            route.integration.record(millis(integration));
        }
        match self.status {
            400..=499 => route.errors_4xx.incr(),
            500..=599 => route.errors_5xx.incr(),
            _ => {}
        }
        if route.scoring {
            record(&t.pipeline.latency);
            if (200..300).contains(&self.status) {
                t.pipeline.success.incr();
            } else {
                t.pipeline.errors.incr();
            }
        }
    }
}

/// Spans of other services arrived over OTLP (`POST /v1/traces`), grouped
/// by trace: each trace goes to the trace writer as it came (the caller
/// sampled it; it is not sampled again), and the spans are counted.
#[derive(Debug)]
pub struct SpansReceived<'a> {
    /// The spans, one list per trace.
    pub traces: Vec<Vec<vigil_trace::model::Span>>,
    /// Set to how many of the spans the writer could not take (its queue
    /// was full, or no writer runs).
    pub rejected: &'a mut usize,
}

impl Event for SpansReceived<'_> {
    // Not a span of the current request, but it hands spans to the trace
    // writer, which must happen with metrics off too.
    const HAS_SPAN: bool = true;

    fn name(&self) -> &'static str {
        "SpansReceived"
    }

    fn emit(self, t: &Telemetry) {
        let mut received = 0;
        let mut rejected = 0;
        let sink = t.traces();
        for spans in self.traces {
            let n = spans.len();
            received += n;
            if !sink.is_some_and(|sink| sink.write(trace::SpanOrigin::Received, spans)) {
                rejected += n;
            }
        }
        *self.rejected = rejected;
        if t.enabled && received > 0 {
            t.receiver.received.add(received as u64);
            if rejected > 0 {
                t.receiver.rejected.add(rejected as u64);
            }
        }
    }
}

/// Why a request was throttled (the `reason` dimension of `Throttles`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThrottleReason {
    /// The global token bucket was empty.
    Rate,
    /// The key's own token bucket was empty.
    KeyRate,
    /// `max_concurrent_requests` were in flight.
    Concurrency,
}

impl ThrottleReason {
    /// The dimension value.
    pub fn as_str(self) -> &'static str {
        match self {
            ThrottleReason::Rate => "rate",
            ThrottleReason::KeyRate => "key_rate",
            ThrottleReason::Concurrency => "concurrency",
        }
    }
}

/// The gateway refused a scoring request with a 429 (or the configured
/// concurrency code).
#[derive(Debug, Clone, Copy)]
pub struct Throttled {
    /// Which limit.
    pub reason: ThrottleReason,
}

impl Event for Throttled {
    fn name(&self) -> &'static str {
        "Throttled"
    }

    fn emit(self, t: &Telemetry) {
        t.gateway.throttles[self.reason as usize].incr();
        tracing::debug!(reason = self.reason.as_str(), "request throttled");
    }
}

/// A scoring request hit `request_timeout_ms`.
#[derive(Debug, Clone, Copy)]
pub struct TimedOut;

impl Event for TimedOut {
    fn name(&self) -> &'static str {
        "TimedOut"
    }

    fn emit(self, t: &Telemetry) {
        t.gateway.timeouts.incr();
    }
}

/// The key check answered 401 or 403.
#[derive(Debug, Clone, Copy)]
pub struct AuthFailed;

impl Event for AuthFailed {
    fn name(&self) -> &'static str {
        "AuthFailed"
    }

    fn emit(self, t: &Telemetry) {
        t.gateway.auth_failures.incr();
    }
}

/// A scoring request was admitted and starts.
#[derive(Debug, Clone, Copy)]
pub struct ScoringStarted;

impl Event for ScoringStarted {
    fn name(&self) -> &'static str {
        "ScoringStarted"
    }

    #[inline]
    fn emit(self, t: &Telemetry) {
        let now = t.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        t.max_in_flight.fetch_max(now, Ordering::Relaxed);
        t.gateway.concurrency.record(now as f64);
    }
}

/// An admitted scoring request ended (answered or cancelled).
#[derive(Debug, Clone, Copy)]
pub struct ScoringEnded;

impl Event for ScoringEnded {
    fn name(&self) -> &'static str {
        "ScoringEnded"
    }

    #[inline]
    fn emit(self, t: &Telemetry) {
        t.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The prediction cache was asked.
#[derive(Debug, Clone, Copy)]
pub struct CacheLookup {
    /// Whether it had the answer.
    pub hit: bool,
    /// Time the lookup took.
    pub duration: Duration,
    /// The remote service asked (`redis`), when not in process.
    pub remote: Option<&'static str>,
}

impl Event for CacheLookup {
    const HAS_SPAN: bool = true;

    fn name(&self) -> &'static str {
        "CacheLookup"
    }

    #[inline]
    fn emit(self, t: &Telemetry) {
        if t.enabled {
            if self.hit {
                t.gateway.cache_hits.incr();
            } else {
                t.gateway.cache_misses.incr();
            }
        }
        let hit = self.hit;
        let stage = trace::stage("cache", self.duration, None, |span| {
            span.annotations.insert("hit".into(), hit.into());
        });
        if let (Some(stage), Some(remote)) = (stage, self.remote) {
            trace::stage(remote, self.duration, Some(stage), trace::remote);
        }
        trace::annotate("cached", hit);
    }
}

/// The cache backend failed (the request is scored without it).
#[derive(Debug, Clone, Copy)]
pub struct CacheFailed;

impl Event for CacheFailed {
    fn name(&self) -> &'static str {
        "CacheFailed"
    }

    fn emit(self, t: &Telemetry) {
        t.gateway.cache_errors.incr();
    }
}

/// A model was called to score rows.
#[derive(Debug, Clone, Copy)]
pub struct ModelInvoked<'a> {
    /// The model's handles.
    pub model: &'a ModelHandles,
    /// Time the model took.
    pub duration: Duration,
    /// Whether it scored (a failure is the server's).
    pub ok: bool,
    /// How many rows it scored.
    pub rows: usize,
}

impl Event for ModelInvoked<'_> {
    const HAS_SPAN: bool = true;

    fn name(&self) -> &'static str {
        "ModelInvoked"
    }

    #[inline]
    fn emit(self, t: &Telemetry) {
        if t.enabled {
            self.model.invocations.incr();
            self.model.duration.record(millis(self.duration));
            if !self.ok {
                self.model.errors.incr();
            }
        }
        let (ok, rows) = (self.ok, self.rows);
        trace::stage("score", self.duration, None, |span| {
            #[allow(clippy::cast_precision_loss)]
            span.annotations.insert("rows".into(), (rows as f64).into());
            if !ok {
                span.fault = true;
                span.cause = Some("the model failed to score".into());
            }
        });
    }
}

/// What a model decided for a request's rows (scored or from the cache).
#[derive(Debug, Clone, Copy)]
pub struct Decided<'a> {
    /// The model's handles.
    pub model: &'a ModelHandles,
    /// The rows' scores, `outputs` per row.
    pub scores: &'a [f64],
    /// Scores per row.
    pub outputs: usize,
    /// Binary probability models: the positive label's threshold.
    pub threshold: Option<f64>,
    /// Multiclass models: the label is the most probable class.
    pub multiclass: bool,
    /// The rows' inputs (NaN = missing feature).
    pub rows: &'a [f64],
}

impl Event for Decided<'_> {
    const HAS_SPAN: bool = true;

    fn name(&self) -> &'static str {
        "Decided"
    }

    #[inline]
    fn emit(self, t: &Telemetry) {
        if t.enabled {
            self.count();
        }
        let m = self.model;
        trace::annotate("model", &*m.name);
        trace::annotate("version", &*m.version);
        let rows = self.scores.len() / self.outputs.max(1);
        if rows == 1 {
            let label = if let Some(threshold) = self.threshold {
                let positive = self.scores.first().is_some_and(|s| *s >= threshold);
                m.label_names.get(usize::from(positive))
            } else if self.multiclass {
                let best = (0..self.scores.len()).fold(0, |best, i| {
                    if self.scores[i] > self.scores[best] {
                        i
                    } else {
                        best
                    }
                });
                m.label_names.get(best)
            } else {
                None
            };
            if let Some(label) = label {
                trace::annotate("label", label.as_str());
            }
        } else {
            #[allow(clippy::cast_precision_loss)]
            trace::annotate("rows", rows as f64);
        }
        let (scores, threshold) = (self.scores, self.threshold);
        trace::metadata("scores", || serde_json::json!(scores));
        if let Some(threshold) = threshold {
            trace::metadata("threshold", || serde_json::json!(threshold));
        }
    }
}

impl Decided<'_> {
    #[inline]
    fn count(&self) {
        let m = self.model;
        for row in self.scores.chunks(self.outputs.max(1)) {
            let label = if let Some(threshold) = self.threshold {
                let score = row.first().copied().unwrap_or(f64::NAN);
                m.score.record(score);
                Some(usize::from(score >= threshold))
            } else if self.multiclass {
                let best =
                    (0..row.len()).fold(0, |best, i| if row[i] > row[best] { i } else { best });
                m.score.record(row.get(best).copied().unwrap_or(f64::NAN));
                Some(best)
            } else {
                m.score.record(row.first().copied().unwrap_or(f64::NAN));
                None
            };
            if let Some(counter) = label.and_then(|l| m.labels.get(l)) {
                counter.incr();
            }
        }
        let missing = self.rows.iter().filter(|v| v.is_nan()).count();
        if missing > 0 {
            m.missing.add(missing as u64);
        }
    }
}

/// A request's records were logged before the answer.
#[derive(Debug, Clone, Copy)]
pub struct StoreWritten {
    /// Time the inference log took.
    pub latency: Duration,
    /// The remote service written to (`postgresql`), when not embedded.
    pub remote: Option<&'static str>,
}

impl Event for StoreWritten {
    const HAS_SPAN: bool = true;

    fn name(&self) -> &'static str {
        "StoreWritten"
    }

    #[inline]
    fn emit(self, t: &Telemetry) {
        if t.enabled {
            t.store.write_latency.record(millis(self.latency));
        }
        let stage = trace::stage("inference_log", self.latency, None, |_| {});
        if let (Some(stage), Some(remote)) = (stage, self.remote) {
            trace::stage(remote, self.latency, Some(stage), trace::remote);
        }
    }
}

/// The gateway admitted a request (key, rate limits, concurrency) or
/// refused it with `refused` (its HTTP status).
#[derive(Debug, Clone, Copy)]
pub struct GatewayChecked {
    /// Time the checks took.
    pub duration: Duration,
    /// The refusal's status, when refused.
    pub refused: Option<u16>,
}

impl Event for GatewayChecked {
    const HAS_SPAN: bool = true;

    fn name(&self) -> &'static str {
        "GatewayChecked"
    }

    fn emit(self, _: &Telemetry) {
        let refused = self.refused;
        trace::stage("gateway", self.duration, None, |span| {
            if let Some(status) = refused {
                span.set_status(status);
            }
        });
    }
}

/// A request body was parsed into `rows` rows.
#[derive(Debug, Clone, Copy)]
pub struct BodyParsed {
    /// Time parsing took.
    pub duration: Duration,
    /// Rows found.
    pub rows: usize,
}

impl Event for BodyParsed {
    const HAS_SPAN: bool = true;

    fn name(&self) -> &'static str {
        "BodyParsed"
    }

    fn emit(self, _: &Telemetry) {
        let rows = self.rows;
        trace::stage("parse", self.duration, None, |span| {
            #[allow(clippy::cast_precision_loss)]
            span.annotations.insert("rows".into(), (rows as f64).into());
        });
    }
}

/// A response body was built (serialised) for the client.
#[derive(Debug, Clone, Copy)]
pub struct ResponseEncoded {
    /// Time building it took.
    pub duration: Duration,
}

impl ResponseEncoded {
    /// Runs `encode`, which builds a response, and says how long it took.
    pub fn timed<T>(telemetry: &Telemetry, encode: impl FnOnce() -> T) -> T {
        let started = std::time::Instant::now();
        let response = encode();
        telemetry.emit(ResponseEncoded {
            duration: started.elapsed(),
        });
        response
    }
}

impl Event for ResponseEncoded {
    const HAS_SPAN: bool = true;

    fn name(&self) -> &'static str {
        "ResponseEncoded"
    }

    fn emit(self, _: &Telemetry) {
        trace::stage("response", self.duration, None, |_| {});
    }
}

/// The inference log was asked whether a request id was seen before.
#[derive(Debug, Clone, Copy)]
pub struct IdempotencyChecked {
    /// Time the lookup took.
    pub duration: Duration,
    /// Whether the stored answer is replayed.
    pub replayed: bool,
    /// The remote service asked (`postgresql`), when not embedded.
    pub remote: Option<&'static str>,
}

impl Event for IdempotencyChecked {
    const HAS_SPAN: bool = true;

    fn name(&self) -> &'static str {
        "IdempotencyChecked"
    }

    fn emit(self, _: &Telemetry) {
        let replayed = self.replayed;
        let stage = trace::stage("idempotency", self.duration, None, |span| {
            span.annotations.insert("replayed".into(), replayed.into());
        });
        if let (Some(stage), Some(remote)) = (stage, self.remote) {
            trace::stage(remote, self.duration, Some(stage), trace::remote);
        }
        trace::annotate("replayed", replayed);
    }
}

/// The inference log's own counters were read (once a second, off the
/// request path): their increases become the store's metrics.
#[derive(Debug, Clone, Copy)]
pub struct StoreStatsRead<'a> {
    /// The counters since start.
    pub snapshot: &'a vigil_store::StoreStatsSnapshot,
}

impl Event for StoreStatsRead<'_> {
    fn name(&self) -> &'static str {
        "StoreStatsRead"
    }

    fn emit(self, t: &Telemetry) {
        let s = &t.store;
        let mut last = s
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = self.snapshot;
        let pairs = [
            (&s.writes, now.records_written, last.records_written),
            (&s.system_errors, now.store_errors, last.store_errors),
            (&s.user_errors, now.records_rejected, last.records_rejected),
            (&s.conflicts, now.conflicts, last.conflicts),
            (&s.spilled, now.records_spilled, last.records_spilled),
            (&s.replayed, now.records_unspilled, last.records_unspilled),
            (&s.dropped, now.records_dropped, last.records_dropped),
        ];
        for (counter, now, before) in pairs {
            if now > before {
                counter.add(now - before);
            }
        }
        last.clone_from(now);
    }
}

/// Scored rows reached the inference log: each becomes an event of
/// `/vigil/inference` (with `logs.inference_input`, the input as logged, so
/// after redaction). The append
/// takes the rows, so their lines are written just before it
/// ([`InferenceLogged::prepare`], only while the own groups are kept) and
/// go out once it succeeded.
#[derive(Debug)]
pub struct InferenceLogged {
    /// (receive time in ms, line) per row.
    lines: Vec<(i64, String)>,
}

impl InferenceLogged {
    /// The event for `records`, or `None` when no own group is kept.
    pub fn prepare(
        telemetry: &Telemetry,
        records: &[vigil_store::InferenceRecord],
    ) -> Option<InferenceLogged> {
        let input = telemetry.inference_input()?;
        Some(InferenceLogged {
            lines: records
                .iter()
                .map(|r| (r.received_at_us.div_euclid(1000), inference_line(r, input)))
                .collect(),
        })
    }
}

impl Event for InferenceLogged {
    const HAS_LINE: bool = true;

    fn name(&self) -> &'static str {
        "InferenceLogged"
    }

    fn emit(self, telemetry: &Telemetry) {
        let Some(lines) = telemetry.lines() else {
            return;
        };
        for (timestamp_ms, line) in self.lines {
            lines.write(super::OwnGroup::Inference, timestamp_ms, line);
        }
    }
}

/// The fields of an inference line before its input (absent ones left
/// out; one score as `score`, several as `scores`).
#[derive(serde::Serialize)]
struct InferenceHead<'a> {
    request_id: &'a str,
    model: &'a str,
    version: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    score: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scores: Option<&'a [f64]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    label: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    threshold: Option<f64>,
    latency_us: i64,
    cached: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    api_key: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    trace_id: Option<&'a str>,
}

/// One row of the inference log as a JSON line, written straight into one
/// string (no intermediate JSON values: this runs once per logged row);
/// with its input when `input`.
pub(crate) fn inference_line(r: &vigil_store::InferenceRecord, input: bool) -> String {
    let (score, scores) = match r.scores.as_slice() {
        [one] => (Some(*one), None),
        many => (None, Some(many)),
    };
    let head = InferenceHead {
        request_id: &r.request_id,
        model: &r.model,
        version: &r.version,
        score,
        scores,
        label: r.label.as_deref(),
        threshold: r.threshold,
        latency_us: r.latency_us,
        cached: r.cached,
        api_key: r.api_key_name.as_deref(),
        trace_id: r.trace_id.as_deref(),
    };
    if !input {
        return serde_json::to_string(&head).unwrap_or_default();
    }
    let mut line = String::with_capacity(256 + 2 * r.input.as_bytes().len());
    // The head always has fields, so it ends in `}` after at least one.
    if let Ok(json) = serde_json::to_string(&head) {
        line.push_str(json.strip_suffix('}').unwrap_or(&json));
        line.push_str(",\"input\":");
    } else {
        line.push_str("{\"input\":");
    }
    r.input.write_json(&mut line);
    line.push('}');
    line
}

/// The metric filters' own counters were read (every 5 s, after their
/// flush): their increases become the `Vigil/Logs` metrics.
#[derive(Debug, Clone, Copy)]
pub struct LogMetricsRead<'a> {
    /// The counters since start.
    pub stats: &'a vigil_logs::metric_filter::MetricFilterStats,
}

impl Event for LogMetricsRead<'_> {
    fn name(&self) -> &'static str {
        "LogMetricsRead"
    }

    fn emit(self, t: &Telemetry) {
        let l = &t.logs;
        let mut last = l
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = self.stats;
        let pairs = [
            (&l.matches, now.matched_events, last.matched_events),
            (
                &l.filter_datapoints,
                now.filter_records,
                last.filter_records,
            ),
            (&l.emf_datapoints, now.emf_records, last.emf_records),
            (&l.emf_invalid, now.emf_invalid, last.emf_invalid),
            (&l.write_errors, now.sink_errors, last.sink_errors),
        ];
        for (counter, now, before) in pairs {
            if now > before {
                counter.add(now - before);
            }
        }
        *last = *now;
    }
}

/// The subscription filters' own counters were read (once a second, off
/// the request path): their increases become the `Vigil/Logs` metrics, per
/// subscription (`<group>:<name>`).
#[derive(Debug, Clone, Copy)]
pub struct SubscriptionStatsRead<'a> {
    /// Every filter with its counters since it was made.
    pub filters: &'a [vigil_logs::subscription::FilterView],
}

impl Event for SubscriptionStatsRead<'_> {
    fn name(&self) -> &'static str {
        "SubscriptionStatsRead"
    }

    fn emit(self, t: &Telemetry) {
        let mut handles = t
            .subscriptions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for view in self.filters {
            let key = format!("{}:{}", view.filter.group, view.filter.name);
            let h = handles
                .entry(key)
                .or_insert_with_key(|key| super::SubscriptionHandles::resolve(&t.registry, key));
            let now = &view.delivery;
            let pairs = [
                (&h.forwarded, now.delivered_events, h.last.delivered_events),
                (&h.errors, now.failed_deliveries, h.last.failed_deliveries),
                (&h.retries, now.retries, h.last.retries),
                (&h.dropped, now.dropped_events, h.last.dropped_events),
            ];
            for (counter, now, before) in pairs {
                // A filter deleted and made again counts from 0.
                let increase = if now >= before { now - before } else { now };
                if increase > 0 {
                    counter.add(increase);
                }
            }
            h.last.clone_from(now);
        }
    }
}
