//! One type per thing that happens on the request path. Each event's
//! `emit` updates its metrics (and writes its log line, where it has one);
//! call sites only build the event and hand it to [`Telemetry::emit`].

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::{ModelHandles, Telemetry};

/// Something that happened, with the metrics it feeds.
pub trait Event {
    /// Whether the event writes a log line (so it is emitted even with
    /// metrics off).
    const HAS_LINE: bool = false;
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
}

impl Event for RequestFinished<'_> {
    fn name(&self) -> &'static str {
        "RequestFinished"
    }

    #[inline]
    fn emit(self, t: &Telemetry) {
        let route = t.route(self.route);
        let latency = millis(self.latency);
        route.count.incr();
        route.latency.record(latency);
        if let Some(integration) = self.integration {
            route.integration.record(millis(integration));
        }
        match self.status {
            400..=499 => route.errors_4xx.incr(),
            500..=599 => route.errors_5xx.incr(),
            _ => {}
        }
        if route.scoring {
            t.pipeline.latency.record(latency);
            if (200..300).contains(&self.status) {
                t.pipeline.success.incr();
            } else {
                t.pipeline.errors.incr();
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
}

impl Event for CacheLookup {
    fn name(&self) -> &'static str {
        "CacheLookup"
    }

    #[inline]
    fn emit(self, t: &Telemetry) {
        if self.hit {
            t.gateway.cache_hits.incr();
        } else {
            t.gateway.cache_misses.incr();
        }
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
}

impl Event for ModelInvoked<'_> {
    fn name(&self) -> &'static str {
        "ModelInvoked"
    }

    #[inline]
    fn emit(self, _: &Telemetry) {
        self.model.invocations.incr();
        self.model.duration.record(millis(self.duration));
        if !self.ok {
            self.model.errors.incr();
        }
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
    fn name(&self) -> &'static str {
        "Decided"
    }

    #[inline]
    fn emit(self, _: &Telemetry) {
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
}

impl Event for StoreWritten {
    fn name(&self) -> &'static str {
        "StoreWritten"
    }

    #[inline]
    fn emit(self, t: &Telemetry) {
        t.store.write_latency.record(millis(self.latency));
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
/// `/vigil/inference` (the input as logged, so after redaction).
#[derive(Debug, Clone, Copy)]
pub struct InferenceLogged<'a> {
    /// The rows as appended.
    pub records: &'a [vigil_store::InferenceRecord],
}

impl Event for InferenceLogged<'_> {
    const HAS_LINE: bool = true;

    fn name(&self) -> &'static str {
        "InferenceLogged"
    }

    fn emit(self, telemetry: &Telemetry) {
        let Some(lines) = telemetry.lines() else {
            return;
        };
        for record in self.records {
            lines.write(
                super::OwnGroup::Inference,
                record.received_at_us.div_euclid(1000),
                inference_line(record),
            );
        }
    }
}

/// One row of the inference log as a JSON line (one score as `score`,
/// several as `scores`; absent fields left out).
pub(crate) fn inference_line(r: &vigil_store::InferenceRecord) -> String {
    let mut line = serde_json::Map::with_capacity(12);
    line.insert("request_id".into(), r.request_id.clone().into());
    line.insert("model".into(), r.model.clone().into());
    line.insert("version".into(), r.version.clone().into());
    match r.scores.as_slice() {
        [one] => {
            line.insert("score".into(), json_number(*one));
        }
        many => {
            line.insert(
                "scores".into(),
                many.iter().copied().map(json_number).collect(),
            );
        }
    }
    if let Some(label) = &r.label {
        line.insert("label".into(), label.clone().into());
    }
    if let Some(threshold) = r.threshold {
        line.insert("threshold".into(), json_number(threshold));
    }
    line.insert("latency_us".into(), r.latency_us.into());
    line.insert("cached".into(), r.cached.into());
    if let Some(key) = &r.api_key_name {
        line.insert("api_key".into(), key.clone().into());
    }
    if let Some(trace) = &r.trace_id {
        line.insert("trace_id".into(), trace.clone().into());
    }
    line.insert(
        "input".into(),
        serde_json::to_value(&r.input).unwrap_or(serde_json::Value::Null),
    );
    serde_json::Value::Object(line).to_string()
}

fn json_number(v: f64) -> serde_json::Value {
    serde_json::Number::from_f64(v).map_or(serde_json::Value::Null, serde_json::Value::Number)
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
