//! Every metric Vigil emits: namespace, name, unit and Prometheus name, in
//! one place (SEMANTICS.md §7 names, so users find what they know).
//! Handlers never spell a metric; they emit an event (see `events.rs`).

use vigil_metrics::alarm::prometheus::{Family, FamilyKind};
use vigil_metrics::registry::PromName;
use vigil_metrics::{SeriesKey, Unit};

/// One metric's identity.
#[derive(Debug, Clone, Copy)]
pub struct MetricDef {
    /// The namespace (`Vigil/Gateway`).
    pub namespace: &'static str,
    /// The cloud's name (`4XXError`).
    pub name: &'static str,
    /// The unit of its data.
    pub unit: Unit,
    /// Its Prometheus family name (without `_total`); in seconds for a
    /// Milliseconds metric, which `/metrics` shows in base units.
    pub prom: &'static str,
    /// Counter (`<prom>_total`) or histogram (`<prom>_bucket`, `_sum`, `_count`).
    pub kind: FamilyKind,
    /// One line for `# HELP` and the README.
    pub help: &'static str,
}

impl MetricDef {
    /// The series with `dimensions`.
    pub fn key(&self, dimensions: &[(&str, &str)]) -> SeriesKey {
        let mut key = SeriesKey::new(self.namespace, self.name).with_unit(self.unit);
        for (name, value) in dimensions {
            key = key.with_dimension(*name, *value);
        }
        key
    }

    pub(crate) fn prom(&self) -> PromName {
        PromName {
            name: self.prom.to_string(),
            help: self.help,
        }
    }
}

/// The model scoring step (the cloud's function metrics).
pub const FUNCTION: &str = "Vigil/Function";
/// The HTTP/gRPC front door (the cloud's API gateway metrics).
pub const GATEWAY: &str = "Vigil/Gateway";
/// The inference log (the cloud's table metrics).
pub const STORE: &str = "Vigil/Store";
/// What the models decide.
pub const MODEL: &str = "Vigil/Model";
/// The log pipeline: metric filters, EMF and subscriptions.
pub const LOGS: &str = "Vigil/Logs";
/// The trace pipeline: spans received over OTLP.
pub const TRACES: &str = "Vigil/Traces";
/// The seed runbook's custom namespace.
pub const PIPELINE: &str = "InferencePipeline";

/// Dimension: model name.
pub const DIM_MODEL: &str = "model";
/// Dimension: model version.
pub const DIM_VERSION: &str = "version";
/// Dimension: route template (`/v2/models/{name}/infer`).
pub const DIM_ROUTE: &str = "route";
/// Dimension: why a request was throttled.
pub const DIM_REASON: &str = "reason";
/// Dimension: a decision's label.
pub const DIM_LABEL: &str = "label";
/// Dimension: a subscription filter, `<group>:<name>` (group names hold
/// no `:`).
pub const DIM_SUBSCRIPTION: &str = "subscription";

macro_rules! metric {
    ($id:ident, $kind:ident, $ns:expr, $name:literal, $unit:ident, $prom:literal, $help:literal) => {
        #[doc = $help]
        pub const $id: MetricDef = MetricDef {
            namespace: $ns,
            name: $name,
            unit: Unit::$unit,
            prom: $prom,
            kind: FamilyKind::$kind,
            help: $help,
        };
    };
}

metric!(
    INVOCATIONS,
    Counter,
    FUNCTION,
    "Invocations",
    Count,
    "vigil_function_invocations",
    "scoring calls into a model (cache hits do not invoke it), per model and version"
);
metric!(
    ERRORS,
    Counter,
    FUNCTION,
    "Errors",
    Count,
    "vigil_function_errors",
    "scoring calls that failed inside the model, per model and version"
);
metric!(
    THROTTLES,
    Counter,
    FUNCTION,
    "Throttles",
    Count,
    "vigil_function_throttles",
    "scoring requests refused by a rate or concurrency limit, per reason"
);
metric!(
    DURATION,
    Histogram,
    FUNCTION,
    "Duration",
    Milliseconds,
    "vigil_function_duration_seconds",
    "time a model spent scoring one call, per model and version"
);
metric!(
    CONCURRENT_EXECUTIONS,
    Histogram,
    FUNCTION,
    "ConcurrentExecutions",
    Count,
    "vigil_function_concurrent_executions",
    "scoring requests in flight, sampled as each one starts (graph Maximum)"
);

metric!(
    COUNT,
    Counter,
    GATEWAY,
    "Count",
    Count,
    "vigil_gateway_requests",
    "requests answered, per route template"
);
metric!(
    LATENCY,
    Histogram,
    GATEWAY,
    "Latency",
    Milliseconds,
    "vigil_gateway_latency_seconds",
    "request in to response out, per route template"
);
metric!(
    INTEGRATION_LATENCY,
    Histogram,
    GATEWAY,
    "IntegrationLatency",
    Milliseconds,
    "vigil_gateway_integration_latency_seconds",
    "time in the handler behind the gateway's checks, per route template"
);
metric!(
    ERRORS_4XX,
    Counter,
    GATEWAY,
    "4XXError",
    Count,
    "vigil_gateway_4xx_errors",
    "requests answered 4xx, per route template"
);
metric!(
    ERRORS_5XX,
    Counter,
    GATEWAY,
    "5XXError",
    Count,
    "vigil_gateway_5xx_errors",
    "requests answered 5xx, per route template"
);
metric!(
    CACHE_HITS,
    Counter,
    GATEWAY,
    "CacheHitCount",
    Count,
    "vigil_gateway_cache_hits",
    "predictions served from the cache"
);
metric!(
    CACHE_MISSES,
    Counter,
    GATEWAY,
    "CacheMissCount",
    Count,
    "vigil_gateway_cache_misses",
    "predictions scored because the cache did not have them"
);
metric!(
    CACHE_ERRORS,
    Counter,
    GATEWAY,
    "CacheErrors",
    Count,
    "vigil_gateway_cache_errors",
    "cache backend failures (the request is scored without the cache)"
);
metric!(
    TIMEOUTS,
    Counter,
    GATEWAY,
    "Timeouts",
    Count,
    "vigil_gateway_timeouts",
    "scoring requests that hit request_timeout_ms"
);
metric!(
    AUTH_FAILURES,
    Counter,
    GATEWAY,
    "AuthFailures",
    Count,
    "vigil_gateway_auth_failures",
    "requests answered 401 or 403 by the key check"
);

metric!(
    WRITES,
    Counter,
    STORE,
    "WriteCount",
    Count,
    "vigil_store_records_written",
    "inference records written to the log"
);
metric!(
    WRITE_LATENCY,
    Histogram,
    STORE,
    "SuccessfulRequestLatency",
    Milliseconds,
    "vigil_store_write_latency_seconds",
    "time to log one request's records before answering"
);
metric!(
    SYSTEM_ERRORS,
    Counter,
    STORE,
    "SystemErrors",
    Count,
    "vigil_store_system_errors",
    "inference log backend failures"
);
metric!(
    USER_ERRORS,
    Counter,
    STORE,
    "UserErrors",
    Count,
    "vigil_store_user_errors",
    "records the log refused as invalid"
);
metric!(
    CONDITIONAL_CHECK_FAILED,
    Counter,
    STORE,
    "ConditionalCheckFailedRequests",
    Count,
    "vigil_store_conditional_check_failed",
    "requests whose id was logged before with a different input (409)"
);
metric!(
    SPILLED,
    Counter,
    STORE,
    "Spilled",
    Count,
    "vigil_store_records_spilled",
    "records queued on disk while the backend was unavailable"
);
metric!(
    REPLAYED,
    Counter,
    STORE,
    "Replayed",
    Count,
    "vigil_store_records_replayed",
    "spilled records written to the backend later"
);
metric!(
    DROPPED,
    Counter,
    STORE,
    "Dropped",
    Count,
    "vigil_store_records_dropped",
    "records lost because the spill queue was full"
);

metric!(
    SCORE,
    Histogram,
    MODEL,
    "Score",
    None,
    "vigil_model_score",
    "each decision's score (binary models: the positive probability), per model and version"
);
metric!(
    PREDICTIONS,
    Counter,
    MODEL,
    "Predictions",
    Count,
    "vigil_model_predictions",
    "decisions per label, per model and version"
);
metric!(
    MISSING_FEATURES,
    Counter,
    MODEL,
    "MissingFeatures",
    Count,
    "vigil_model_missing_features",
    "features absent from scored rows, per model and version"
);

metric!(
    METRIC_FILTER_MATCHES,
    Counter,
    LOGS,
    "MetricFilterMatches",
    Count,
    "vigil_logs_metric_filter_matches",
    "stored log events a metric filter's pattern matched (once per filter)"
);
metric!(
    METRIC_FILTER_DATAPOINTS,
    Counter,
    LOGS,
    "MetricFilterDatapoints",
    Count,
    "vigil_logs_metric_filter_datapoints",
    "datapoints metric filters wrote to the metric store (one per series and minute, defaults included)"
);
metric!(
    EMF_DATAPOINTS,
    Counter,
    LOGS,
    "EMFDatapoints",
    Count,
    "vigil_logs_emf_datapoints",
    "datapoints extracted from log events in the embedded metric format and stored"
);
metric!(
    EMF_INVALID,
    Counter,
    LOGS,
    "EMFInvalid",
    Count,
    "vigil_logs_emf_invalid",
    "invalid EMF directives (skipped; their events are still stored as logs)"
);
metric!(
    LOG_METRIC_WRITE_ERRORS,
    Counter,
    LOGS,
    "MetricWriteErrors",
    Count,
    "vigil_logs_metric_write_errors",
    "writes of metric-filter or EMF data the metric store refused (their data are lost)"
);

metric!(
    PIPELINE_LATENCY,
    Histogram,
    PIPELINE,
    "LatencyMs",
    Milliseconds,
    "inference_pipeline_latency_seconds",
    "scoring requests, request in to response out"
);
metric!(
    PIPELINE_SUCCESS,
    Counter,
    PIPELINE,
    "SuccessCount",
    Count,
    "inference_pipeline_success",
    "scoring requests answered 2xx"
);
metric!(
    PIPELINE_ERRORS,
    Counter,
    PIPELINE,
    "ErrorCount",
    Count,
    "inference_pipeline_errors",
    "scoring requests not answered 2xx (client errors, throttles and faults)"
);

metric!(
    FORWARDED_LOG_EVENTS,
    Counter,
    LOGS,
    "ForwardedLogEvents",
    Count,
    "vigil_logs_subscription_forwarded_events",
    "log events a subscription filter delivered to its destination, per subscription"
);
metric!(
    DELIVERY_ERRORS,
    Counter,
    LOGS,
    "DeliveryErrors",
    Count,
    "vigil_logs_subscription_delivery_errors",
    "subscription deliveries given up after their retries, per subscription"
);
metric!(
    DELIVERY_RETRIES,
    Counter,
    LOGS,
    "DeliveryRetries",
    Count,
    "vigil_logs_subscription_delivery_retries",
    "subscription delivery attempts made after a failed one, per subscription"
);
metric!(
    DROPPED_LOG_EVENTS,
    Counter,
    LOGS,
    "DroppedLogEvents",
    Count,
    "vigil_logs_subscription_dropped_events",
    "matching log events left out because the subscription's buffer was full, per subscription"
);

metric!(
    RECEIVED_SPANS,
    Counter,
    TRACES,
    "ReceivedSpans",
    Count,
    "vigil_traces_otlp_received_spans",
    "spans received on POST /v1/traces and decoded (rejected ones included)"
);
metric!(
    REJECTED_SPANS,
    Counter,
    TRACES,
    "RejectedSpans",
    Count,
    "vigil_traces_otlp_rejected_spans",
    "received spans dropped because the trace writer's queue was full (answered as partialSuccess)"
);

/// Every metric, for the README check and `GET /api/metrics`.
pub const ALL: &[MetricDef] = &[
    INVOCATIONS,
    ERRORS,
    THROTTLES,
    DURATION,
    CONCURRENT_EXECUTIONS,
    COUNT,
    LATENCY,
    INTEGRATION_LATENCY,
    ERRORS_4XX,
    ERRORS_5XX,
    CACHE_HITS,
    CACHE_MISSES,
    CACHE_ERRORS,
    TIMEOUTS,
    AUTH_FAILURES,
    WRITES,
    WRITE_LATENCY,
    SYSTEM_ERRORS,
    USER_ERRORS,
    CONDITIONAL_CHECK_FAILED,
    SPILLED,
    REPLAYED,
    DROPPED,
    SCORE,
    PREDICTIONS,
    MISSING_FEATURES,
    METRIC_FILTER_MATCHES,
    METRIC_FILTER_DATAPOINTS,
    EMF_DATAPOINTS,
    EMF_INVALID,
    LOG_METRIC_WRITE_ERRORS,
    PIPELINE_LATENCY,
    PIPELINE_SUCCESS,
    PIPELINE_ERRORS,
    FORWARDED_LOG_EVENTS,
    DELIVERY_ERRORS,
    DELIVERY_RETRIES,
    DROPPED_LOG_EVENTS,
    RECEIVED_SPANS,
    REJECTED_SPANS,
];

/// What `/metrics` exposes, for `vigil_metrics::alarm::prometheus::rules`.
pub fn families() -> Vec<Family> {
    ALL.iter()
        .map(|def| Family {
            namespace: def.namespace.to_string(),
            metric_name: def.name.to_string(),
            unit: def.unit,
            prom: def.prom.to_string(),
            kind: def.kind,
        })
        .collect()
}
