//! The telemetry spine: everything on the request path that monitoring
//! cares about is one event type (`events.rs`) with one
//! [`Telemetry::emit`], which updates the metric handles resolved here
//! (per route at start-up, per model at load) and writes the event's log
//! line. Handlers say what happened; they never touch a registry.

pub mod events;
pub mod names;
pub mod trace;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use vigil_metrics::registry::{
    COUNT_BUCKETS, Counter, Distribution, LATENCY_BUCKETS_MS, Registry, SCORE_BUCKETS,
};

pub use events::{Event, ThrottleReason};
use names::*;

/// Vigil's own log groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnGroup {
    /// One event per request: the access log line.
    Access,
    /// One event per scored row: id, model, version, scores, label,
    /// latency, and the input after the inference log's redaction.
    Inference,
    /// Start-up, reloads, alarm transitions, warnings and errors: the
    /// diagnostics written to stderr.
    System,
}

impl OwnGroup {
    /// Every own group, in [`OwnGroup::index`] order.
    pub const ALL: [OwnGroup; 3] = [OwnGroup::Access, OwnGroup::Inference, OwnGroup::System];

    /// The group's name.
    pub fn name(self) -> &'static str {
        match self {
            OwnGroup::Access => "/vigil/access",
            OwnGroup::Inference => "/vigil/inference",
            OwnGroup::System => "/vigil/system",
        }
    }

    /// Its position in [`OwnGroup::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Where the events of Vigil's own groups go (the log writer): must not
/// block; a line that cannot be taken is dropped and counted.
pub trait GroupLines: Send + Sync + std::fmt::Debug {
    /// Take one line of `group` that happened at `timestamp_ms`.
    fn write(&self, group: OwnGroup, timestamp_ms: i64, line: String);
}

/// One reading of `/api/gateway/stats`: (metric name, reason, value).
pub type Reading = (&'static str, Option<&'static str>, u64);

/// The metric handles of one route template.
#[derive(Debug)]
pub(crate) struct RouteHandles {
    count: Counter,
    latency: Distribution,
    integration: Distribution,
    errors_4xx: Counter,
    errors_5xx: Counter,
    /// A scoring route also feeds the `InferencePipeline` namespace.
    scoring: bool,
}

/// The metric handles of one loaded model (name and version).
#[derive(Debug, Clone)]
pub struct ModelHandles {
    pub(crate) invocations: Counter,
    pub(crate) errors: Counter,
    pub(crate) duration: Distribution,
    pub(crate) score: Distribution,
    /// Binary models: `[negative, positive]`; multiclass: one per class.
    pub(crate) labels: Vec<Counter>,
    pub(crate) missing: Counter,
    /// The model's name, version and label values, for trace annotations.
    pub(crate) name: Arc<str>,
    pub(crate) version: Arc<str>,
    pub(crate) label_names: Arc<[String]>,
}

impl ModelHandles {
    /// The handles of `name` at `version` in `r`; `labels` are the
    /// decisions' label values (index = class or `[negative, positive]`).
    pub fn resolve(r: &Registry, name: &str, version: &str, labels: &[String]) -> ModelHandles {
        let dims = [(DIM_MODEL, name), (DIM_VERSION, version)];
        ModelHandles {
            invocations: r.counter(INVOCATIONS.key(&dims), INVOCATIONS.prom()),
            errors: r.counter_reporting_zeros(ERRORS.key(&dims), ERRORS.prom()),
            duration: r.distribution(DURATION.key(&dims), DURATION.prom(), LATENCY_BUCKETS_MS),
            score: r.distribution(SCORE.key(&dims), SCORE.prom(), SCORE_BUCKETS),
            labels: labels
                .iter()
                .map(|label| {
                    let dims = [
                        (DIM_MODEL, name),
                        (DIM_VERSION, version),
                        (DIM_LABEL, label.as_str()),
                    ];
                    r.counter(PREDICTIONS.key(&dims), PREDICTIONS.prom())
                })
                .collect(),
            missing: r.counter(MISSING_FEATURES.key(&dims), MISSING_FEATURES.prom()),
            name: Arc::from(name),
            version: Arc::from(version),
            label_names: labels.into(),
        }
    }
}

#[derive(Debug)]
pub(crate) struct GatewayHandles {
    throttles: [Counter; 3],
    timeouts: Counter,
    auth_failures: Counter,
    cache_hits: Counter,
    cache_misses: Counter,
    cache_errors: Counter,
    concurrency: Distribution,
}

#[derive(Debug)]
pub(crate) struct PipelineHandles {
    latency: Distribution,
    success: Counter,
    errors: Counter,
}

#[derive(Debug)]
pub(crate) struct StoreHandles {
    write_latency: Distribution,
    writes: Counter,
    system_errors: Counter,
    user_errors: Counter,
    conflicts: Counter,
    spilled: Counter,
    replayed: Counter,
    dropped: Counter,
    /// The store's counters at the last reading (they count since start).
    last: Mutex<vigil_store::StoreStatsSnapshot>,
}

#[derive(Debug)]
pub(crate) struct LogHandles {
    matches: Counter,
    filter_datapoints: Counter,
    emf_datapoints: Counter,
    emf_invalid: Counter,
    write_errors: Counter,
    /// The metric filters' counters at the last reading.
    last: Mutex<vigil_logs::metric_filter::MetricFilterStats>,
}

/// The OTLP receiver's counters.
#[derive(Debug)]
pub(crate) struct ReceiverHandles {
    received: Counter,
    rejected: Counter,
}

/// The metric handles of one subscription filter, and its counters at the
/// last reading.
#[derive(Debug)]
pub(crate) struct SubscriptionHandles {
    pub(crate) forwarded: Counter,
    pub(crate) errors: Counter,
    pub(crate) retries: Counter,
    pub(crate) dropped: Counter,
    pub(crate) last: vigil_logs::subscription::DeliveryStats,
}

impl SubscriptionHandles {
    /// The handles of subscription `key` (`<group>:<name>`) in `r`.
    pub(crate) fn resolve(r: &Registry, key: &str) -> SubscriptionHandles {
        let dims = [(DIM_SUBSCRIPTION, key)];
        SubscriptionHandles {
            forwarded: r.counter(FORWARDED_LOG_EVENTS.key(&dims), FORWARDED_LOG_EVENTS.prom()),
            errors: r.counter_reporting_zeros(DELIVERY_ERRORS.key(&dims), DELIVERY_ERRORS.prom()),
            retries: r.counter(DELIVERY_RETRIES.key(&dims), DELIVERY_RETRIES.prom()),
            dropped: r.counter(DROPPED_LOG_EVENTS.key(&dims), DROPPED_LOG_EVENTS.prom()),
            last: Default::default(),
        }
    }
}

/// The process's metric handles and the in-flight gauge; shared by every
/// request and kept across reloads.
#[derive(Debug)]
pub struct Telemetry {
    registry: Arc<Registry>,
    routes: HashMap<Box<str>, RouteHandles>,
    unmatched: RouteHandles,
    gateway: GatewayHandles,
    pipeline: PipelineHandles,
    store: StoreHandles,
    logs: LogHandles,
    receiver: ReceiverHandles,
    /// Per subscription filter, resolved when first read.
    subscriptions: Mutex<HashMap<String, SubscriptionHandles>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    /// In tests: the name of every event emitted, in order.
    recorded: Option<Mutex<Vec<&'static str>>>,
    /// `metrics.enabled = false`: every event's metrics are skipped.
    enabled: bool,
    /// Where events with a log line write it, once the writer runs.
    lines: OnceLock<OwnLines>,
    /// Where sampled traces go, once the trace writer runs.
    traces: OnceLock<Arc<dyn trace::TraceSink>>,
}

/// The own groups' writer and what goes into their events.
#[derive(Debug)]
struct OwnLines {
    sink: Arc<dyn GroupLines>,
    inference_input: bool,
}

impl Telemetry {
    /// Handles for every route template the router serves.
    pub fn new(registry: Arc<Registry>) -> Telemetry {
        let route = |template: &str, scoring: bool| {
            let dims = [(DIM_ROUTE, template)];
            RouteHandles {
                count: registry.counter(COUNT.key(&dims), COUNT.prom()),
                latency: registry.distribution(
                    LATENCY.key(&dims),
                    LATENCY.prom(),
                    LATENCY_BUCKETS_MS,
                ),
                integration: registry.distribution(
                    INTEGRATION_LATENCY.key(&dims),
                    INTEGRATION_LATENCY.prom(),
                    LATENCY_BUCKETS_MS,
                ),
                errors_4xx: registry.counter(ERRORS_4XX.key(&dims), ERRORS_4XX.prom()),
                errors_5xx: registry.counter(ERRORS_5XX.key(&dims), ERRORS_5XX.prom()),
                scoring,
            }
        };
        let routes = crate::openapi::route_templates()
            .into_iter()
            .map(|template| {
                let scoring = is_scoring_route(template);
                (Box::from(template), route(template, scoring))
            })
            .collect();
        let counter = |def: MetricDef| registry.counter(def.key(&[]), def.prom());
        let reason = |r: ThrottleReason| {
            registry.counter(THROTTLES.key(&[(DIM_REASON, r.as_str())]), THROTTLES.prom())
        };
        Telemetry {
            unmatched: route("unmatched", false),
            routes,
            gateway: GatewayHandles {
                throttles: [
                    reason(ThrottleReason::Rate),
                    reason(ThrottleReason::KeyRate),
                    reason(ThrottleReason::Concurrency),
                ],
                timeouts: counter(TIMEOUTS),
                auth_failures: counter(AUTH_FAILURES),
                cache_hits: counter(CACHE_HITS),
                cache_misses: counter(CACHE_MISSES),
                cache_errors: counter(CACHE_ERRORS),
                concurrency: registry.distribution(
                    CONCURRENT_EXECUTIONS.key(&[]),
                    CONCURRENT_EXECUTIONS.prom(),
                    COUNT_BUCKETS,
                ),
            },
            pipeline: PipelineHandles {
                latency: registry.distribution(
                    PIPELINE_LATENCY.key(&[]),
                    PIPELINE_LATENCY.prom(),
                    LATENCY_BUCKETS_MS,
                ),
                success: counter(PIPELINE_SUCCESS),
                errors: registry
                    .counter_reporting_zeros(PIPELINE_ERRORS.key(&[]), PIPELINE_ERRORS.prom()),
            },
            store: StoreHandles {
                write_latency: registry.distribution(
                    WRITE_LATENCY.key(&[]),
                    WRITE_LATENCY.prom(),
                    LATENCY_BUCKETS_MS,
                ),
                writes: counter(WRITES),
                system_errors: counter(SYSTEM_ERRORS),
                user_errors: counter(USER_ERRORS),
                conflicts: counter(CONDITIONAL_CHECK_FAILED),
                spilled: counter(SPILLED),
                replayed: counter(REPLAYED),
                dropped: counter(DROPPED),
                last: Mutex::new(vigil_store::StoreStatsSnapshot::default()),
            },
            logs: LogHandles {
                matches: counter(METRIC_FILTER_MATCHES),
                filter_datapoints: counter(METRIC_FILTER_DATAPOINTS),
                emf_datapoints: counter(EMF_DATAPOINTS),
                emf_invalid: counter(EMF_INVALID),
                write_errors: counter(LOG_METRIC_WRITE_ERRORS),
                last: Mutex::new(Default::default()),
            },
            receiver: ReceiverHandles {
                received: counter(RECEIVED_SPANS),
                rejected: counter(REJECTED_SPANS),
            },
            subscriptions: Mutex::new(HashMap::new()),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            recorded: None,
            enabled: true,
            lines: OnceLock::new(),
            traces: OnceLock::new(),
            registry,
        }
    }

    /// Like [`Telemetry::new`], also recording every event's name, so a
    /// test can assert on what a request emitted.
    pub fn recording(registry: Arc<Registry>) -> Telemetry {
        Telemetry {
            recorded: Some(Mutex::new(Vec::new())),
            ..Telemetry::new(registry)
        }
    }

    /// Like [`Telemetry::new`], dropping every event (`metrics.enabled =
    /// false`).
    pub fn disabled(registry: Arc<Registry>) -> Telemetry {
        Telemetry {
            enabled: false,
            ..Telemetry::new(registry)
        }
    }

    /// Events with a log line write it to `lines` from now on (set once,
    /// by `serve`, when logs are on); `inference_input`
    /// (`logs.inference_input`): whether `/vigil/inference` events carry
    /// the row's input.
    pub fn set_lines(&self, lines: Arc<dyn GroupLines>, inference_input: bool) {
        let _ = self.lines.set(OwnLines {
            sink: lines,
            inference_input,
        });
    }

    /// Finished sampled traces go to `sink` from now on (set once, by
    /// `serve`, when traces are on).
    pub fn set_traces(&self, sink: Arc<dyn trace::TraceSink>) {
        let _ = self.traces.set(sink);
    }

    /// The trace writer, when traces are on.
    pub(crate) fn traces(&self) -> Option<&Arc<dyn trace::TraceSink>> {
        self.traces.get()
    }

    /// The log writer, when logs are on.
    pub(crate) fn lines(&self) -> Option<&Arc<dyn GroupLines>> {
        self.lines.get().map(|own| &own.sink)
    }

    /// Whether `/vigil/inference` events carry the input, when logs are on.
    pub(crate) fn inference_input(&self) -> Option<bool> {
        self.lines.get().map(|own| own.inference_input)
    }

    /// Whether events are counted.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The names of the events emitted so far (empty unless recording).
    pub fn recorded(&self) -> Vec<&'static str> {
        self.recorded.as_ref().map_or_else(Vec::new, |r| {
            r.lock().unwrap_or_else(PoisonError::into_inner).clone()
        })
    }

    /// Says that `event` happened.
    #[inline]
    pub fn emit<E: Event>(&self, event: E) {
        if !self.enabled && !E::HAS_LINE && !E::HAS_SPAN {
            return;
        }
        if let Some(recorded) = &self.recorded {
            recorded
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(event.name());
        }
        event.emit(self);
    }

    /// The registry every handle lives in.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// The handles of one model version, resolved once at load.
    pub fn model(&self, name: &str, version: &str, labels: &[String]) -> ModelHandles {
        ModelHandles::resolve(&self.registry, name, version, labels)
    }

    pub(crate) fn route(&self, template: Option<&str>) -> &RouteHandles {
        template
            .and_then(|t| self.routes.get(t))
            .unwrap_or(&self.unmatched)
    }

    /// Throttles for one reason so far.
    pub fn throttles(&self, reason: ThrottleReason) -> u64 {
        self.gateway.throttles[reason as usize].total()
    }

    /// The highest concurrency since the last call, which restarts the
    /// window at the current value.
    pub fn take_max_concurrency(&self) -> usize {
        let now = self.in_flight.load(Ordering::Relaxed);
        self.max_in_flight.swap(now, Ordering::Relaxed)
    }

    /// The gateway's counters, read from the same handles the metrics
    /// store and `/metrics` read (the concurrency maximum is read, not reset).
    pub fn snapshot(&self) -> Vec<Reading> {
        let g = &self.gateway;
        let mut out = Vec::with_capacity(9);
        for reason in [
            ThrottleReason::Rate,
            ThrottleReason::KeyRate,
            ThrottleReason::Concurrency,
        ] {
            out.push((
                THROTTLES.name,
                Some(reason.as_str()),
                self.throttles(reason),
            ));
        }
        out.push((
            CONCURRENT_EXECUTIONS.name,
            None,
            self.max_in_flight.load(Ordering::Relaxed) as u64,
        ));
        out.push((TIMEOUTS.name, None, g.timeouts.total()));
        out.push((AUTH_FAILURES.name, None, g.auth_failures.total()));
        out.push((CACHE_HITS.name, None, g.cache_hits.total()));
        out.push((CACHE_MISSES.name, None, g.cache_misses.total()));
        out.push((CACHE_ERRORS.name, None, g.cache_errors.total()));
        out
    }
}

/// Once a second, off the request path: reads the inference log's and the
/// subscription filters' own counters into their metrics, then stores the
/// second's drain of every handle in the metric store.
pub async fn tick_every_second(
    telemetry: Arc<Telemetry>,
    store: Option<Arc<vigil_store::Store>>,
    metrics: Option<Arc<vigil_metrics::service::MetricsService>>,
    subscriptions: Option<Arc<vigil_logs::subscription::Subscriptions>>,
) {
    let mut interval = tokio::time::interval(std::time::Duration::from_secs(1));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_alarm_slot = 0;
    loop {
        interval.tick().await;
        if let Some(store) = &store {
            telemetry.emit(events::StoreStatsRead {
                snapshot: &store.stats_snapshot(),
            });
        }
        if let Some(subscriptions) = &subscriptions {
            telemetry.emit(events::SubscriptionStatsRead {
                filters: &subscriptions.stats(),
            });
        }
        if let Some(metrics) = &metrics {
            let now = now_ms();
            metrics.tick(now);
            // Alarms tick every 10 s (each alarm evaluates when its own
            // cadence is due); sends run beside the next ticks. A fleet's
            // slot starts 2 s into the window, once every replica has
            // written the seconds before it to the shared store.
            let lag = if metrics.fleet().is_some() { 2_000 } else { 0 };
            if (now - lag) / 10_000 != last_alarm_slot {
                last_alarm_slot = (now - lag) / 10_000;
                let metrics = Arc::clone(metrics);
                tokio::spawn(async move { metrics.evaluate_alarms(now).await });
            }
        }
    }
}

pub use vigil_metrics::service::now_ms;

/// The time-series store's settings from the `[metrics]` table.
pub fn tsdb_config(config: &crate::config::MetricsConfig) -> vigil_metrics::tsdb::TsdbConfig {
    let mut tsdb = vigil_metrics::tsdb::TsdbConfig::default();
    for (tier, retention_s) in tsdb.tiers.iter_mut().zip(config.retention_s) {
        tier.retention_s = retention_s;
    }
    tsdb.checkpoint_interval = std::time::Duration::from_secs(config.checkpoint_interval_s);
    tsdb
}

/// Whether a route template scores (and so feeds `InferencePipeline`).
fn is_scoring_route(template: &str) -> bool {
    template.ends_with("/infer")
        || template.ends_with("/score")
        || template.ends_with("/ModelInfer")
}

#[cfg(test)]
mod tests;
