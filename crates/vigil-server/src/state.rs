//! The router state: what every handler and middleware is given: the
//! gateway (whose runtime holds the models and the prediction cache), the
//! access log and the inference log.
//!
//! The models live in an `Arc<Registry>` inside the gateway's runtime, so a
//! hot reload swaps them atomically while in-flight requests keep the old one.

use std::sync::Arc;

use crate::access_log::sink::AccessLog;
use crate::cache::PredictionCache;
use crate::config::Config;
use crate::gateway::runtime::Gateway;
use crate::gateway::throttle::GatewayClock;
use crate::inference_log::InferenceLogHandle;
use crate::registry::{ModelEntry, Registry};

/// Everything a handler needs; cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    pub(crate) registry: Models,
    pub(crate) max_body_bytes: usize,
    pub(crate) access_log: AccessLog,
    pub(crate) gateway: Arc<Gateway>,
    /// The inference log; `None` when `store.enabled = false` (or in tests
    /// that do not need it).
    pub(crate) log: Option<InferenceLogHandle>,
    /// The metric store (queries, custom metrics, alarms); `None` when
    /// `metrics.enabled = false` (or in tests that do not need it).
    pub(crate) metrics: Option<Arc<vigil_metrics::service::MetricsService>>,
    /// The log groups; `None` when `logs.enabled = false` (or in tests
    /// that do not need them).
    pub(crate) logs: Option<Arc<vigil_logs::pipeline::Logs>>,
    /// `logs.max_scan_events`.
    pub(crate) log_scan_limit: u64,
    /// The subscription filters; `None` with logs off (or in tests that do
    /// not need them).
    pub(crate) subscriptions: Option<Arc<vigil_logs::subscription::Subscriptions>>,
    /// Sampling, the trace store and the service map; `None` with traces
    /// off (nothing is sampled, the trace routes answer 503).
    pub(crate) traces: Option<Arc<crate::trace_writer::Traces>>,
    /// `traces.otlp_max_body_bytes`.
    pub(crate) otlp_max_body_bytes: usize,
    /// The dashboards (built-in, config, API); in memory until
    /// [`AppState::with_dashboards`] gives the persisted ones.
    pub(crate) dashboards: Arc<vigil_metrics::dashboard::store::Dashboards>,
}

impl AppState {
    /// Load every model in `config` (all failures reported at once) and
    /// build the state; the access log is off until [`AppState::with_access_log`].
    pub fn from_config(config: &Config) -> anyhow::Result<AppState> {
        AppState::with_clock(config, GatewayClock::real())
    }

    /// Like [`AppState::from_config`] with the gateway's buckets on `clock`.
    pub fn with_clock(config: &Config, clock: GatewayClock) -> anyhow::Result<AppState> {
        let gateway = Arc::new(Gateway::new(config, clock)?);
        Ok(AppState {
            registry: Models(Arc::clone(&gateway)),
            max_body_bytes: config.server.max_body_bytes,
            access_log: AccessLog::off(),
            gateway,
            log: None,
            metrics: None,
            logs: None,
            traces: None,
            otlp_max_body_bytes: config.traces.otlp_max_body_bytes,
            log_scan_limit: config.logs.max_scan_events,
            subscriptions: None,
            dashboards: Arc::new(crate::dashboards_api::open(config, None)?),
        })
    }

    /// The dashboards to serve (`serve` gives the ones kept in the data
    /// directory).
    pub fn with_dashboards(
        mut self,
        dashboards: Arc<vigil_metrics::dashboard::store::Dashboards>,
    ) -> AppState {
        self.dashboards = dashboards;
        self
    }

    /// The dashboards in force.
    pub fn dashboards(&self) -> &Arc<vigil_metrics::dashboard::store::Dashboards> {
        &self.dashboards
    }

    /// Sample requests and serve the trace API from `traces` (opened once
    /// by [`crate::serve`]).
    pub fn with_traces(mut self, traces: Arc<crate::trace_writer::Traces>) -> AppState {
        self.traces = Some(traces);
        self
    }

    /// The traces, or the `503` every trace route gives when they are off.
    pub fn traces(&self) -> Result<&Arc<crate::trace_writer::Traces>, crate::error::ApiError> {
        self.traces.as_ref().ok_or_else(|| {
            crate::error::ApiError::public(
                crate::error::ErrorCode::Unavailable,
                "traces are off (traces.enabled = false)",
            )
        })
    }

    /// Use `access_log` for the per-request lines.
    pub fn with_access_log(mut self, access_log: AccessLog) -> AppState {
        self.access_log = access_log;
        self
    }

    /// Log every scoring decision to `log` (opened once by [`crate::serve`]
    /// and kept across reloads).
    pub fn with_inference_log(mut self, log: InferenceLogHandle) -> AppState {
        self.log = Some(log);
        self
    }

    /// Serve metric queries, custom metrics and alarms from `metrics`
    /// (opened once by [`crate::serve`] and kept across reloads).
    pub fn with_metrics(
        mut self,
        metrics: Arc<vigil_metrics::service::MetricsService>,
    ) -> AppState {
        self.metrics = Some(metrics);
        self
    }

    /// Serve the log API from `logs` (opened once by [`crate::serve`] and
    /// kept across reloads).
    pub fn with_logs(mut self, logs: Arc<vigil_logs::pipeline::Logs>) -> AppState {
        self.logs = Some(logs);
        self
    }

    /// Serve the subscription API from `subscriptions` (a tap of the
    /// [`AppState::with_logs`] pipeline).
    pub fn with_subscriptions(
        mut self,
        subscriptions: Arc<vigil_logs::subscription::Subscriptions>,
    ) -> AppState {
        self.subscriptions = Some(subscriptions);
        self
    }

    /// The subscription filters, or the `503` of a log route with logs off.
    pub fn subscriptions(
        &self,
    ) -> Result<&Arc<vigil_logs::subscription::Subscriptions>, crate::error::ApiError> {
        self.subscriptions.as_ref().ok_or_else(|| {
            crate::error::ApiError::public(
                crate::error::ErrorCode::Unavailable,
                "logs are off (logs.enabled = false)",
            )
        })
    }

    /// How many events a log query may read (`logs.max_scan_events`).
    pub fn max_log_scan_events(&self) -> u64 {
        self.log_scan_limit
    }

    /// The log store, or the `503` every log route gives when logs are off.
    pub fn logs(&self) -> Result<&Arc<vigil_logs::pipeline::Logs>, crate::error::ApiError> {
        self.logs.as_ref().ok_or_else(|| {
            crate::error::ApiError::public(
                crate::error::ErrorCode::Unavailable,
                "logs are off (logs.enabled = false)",
            )
        })
    }

    /// The metric store, or the `503` every metrics and alarms route gives
    /// when metrics are off.
    pub fn metric_service(
        &self,
    ) -> Result<&Arc<vigil_metrics::service::MetricsService>, crate::error::ApiError> {
        self.metrics.as_ref().ok_or_else(|| {
            crate::error::ApiError::public(
                crate::error::ErrorCode::Unavailable,
                "metrics are off (metrics.enabled = false)",
            )
        })
    }

    /// The metric store, if metrics are on.
    pub fn metrics(&self) -> Option<&Arc<vigil_metrics::service::MetricsService>> {
        self.metrics.as_ref()
    }

    /// The inference log, if it is on.
    pub fn inference_log(&self) -> Option<&InferenceLogHandle> {
        self.log.as_ref()
    }

    /// The models served now.
    pub fn registry(&self) -> Arc<Registry> {
        Arc::clone(&self.gateway.runtime().registry)
    }

    /// The gateway (keys, throttling, reload).
    pub fn gateway(&self) -> &Arc<Gateway> {
        &self.gateway
    }

    /// The prediction cache of the current runtime.
    pub fn cache(&self) -> Arc<PredictionCache> {
        Arc::clone(&self.gateway.runtime().cache)
    }
}

/// The models of the current runtime, looked up per request: a request
/// keeps the model it found even if a reload swaps the registry meanwhile.
#[derive(Debug, Clone)]
pub struct Models(Arc<Gateway>);

impl Models {
    /// A model by name, or a 404 naming it.
    pub fn find(&self, name: &str) -> Result<Arc<ModelEntry>, crate::error::ApiError> {
        self.0.runtime().registry.find(name).map(Arc::clone)
    }
}
