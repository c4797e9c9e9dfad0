//! Vigil's HTTP server: the Open Inference Protocol V2 REST endpoints and
//! its gRPC service (on the same port), plain JSON scoring and the OpenAPI
//! document. The binary wires it; the model
//! runtime (`vigil-model`) does the scoring.
//!
//! ```no_run
//! # async fn run() -> anyhow::Result<()> {
//! let config = vigil_server::Config::demo();
//! let listener = tokio::net::TcpListener::bind(config.server.listen).await?;
//! vigil_server::serve(config, listener, async { let _ = tokio::signal::ctrl_c().await; }).await
//! # }
//! ```

pub mod access_log;
pub mod admin_api;
pub mod alarms_api;
pub mod cache;
pub mod config;
pub mod console;
pub mod dashboards_api;
pub mod error;
pub mod extract;
pub mod gateway;
pub mod grpc_api;
pub mod health_api;
pub mod infer_api;
pub mod inference_log;
pub mod inferences_api;
pub mod logs_api;
pub mod metrics_api;
pub mod openapi;
pub mod registry;
mod request_ids;
pub mod score_api;
pub mod state;
pub mod system_log;
pub mod telemetry;
pub mod tls;
pub mod trace_export;
pub mod trace_metrics;
pub mod trace_writer;
pub mod traces_api;

mod tensor_bytes;

#[cfg(test)]
mod test_util;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;

pub use access_log::{AccessLog, LineSink, StdoutLog};
pub use config::LogConfig;
pub use config::{
    CacheConfig, Config, FeatureNames, GatewayConfig, KeyConfig, ModelConfig, ModelSource, Roles,
    ServerConfig, TlsConfig, UnknownFeatures,
};
pub use error::{ApiError, ErrorCode};
pub use inference_log::InferenceLogHandle;
pub use openapi::openapi;
pub use registry::{ModelEntry, Registry};
pub use state::AppState;

/// The bundled demo fraud model (XGBoost JSON), served as `fraud` when no
/// config is given.
pub const DEMO_MODEL: &[u8] = include_bytes!("../assets/demo-fraud.json");

/// The router with every endpoint, the gRPC methods, the fallback and the
/// request middleware (request id, error bodies, access log).
///
/// gRPC shares the router: each method is a route of its own
/// (`/inference.GRPCInferenceService/ModelInfer`, which no HTTP path can
/// be), checked for `content-type: application/grpc`, so an HTTP request
/// pays nothing for it and a gRPC call gets the same listener, TLS, access
/// log and graceful shutdown.
pub fn app(state: AppState) -> Router {
    let mut router = Router::new();
    for (_, path, handler) in openapi::route_table() {
        router = router.route(path, handler);
    }
    router = grpc_api::routes(router, &state);
    router
        .fallback(fallback)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            gateway::middleware,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            access_log::middleware,
        ))
        .with_state(state)
}

/// Unmatched paths: a JSON 404, or gRPC's UNIMPLEMENTED for a gRPC call
/// (another service, or a method we do not serve).
async fn fallback(request: axum::extract::Request) -> axum::response::Response {
    use axum::response::IntoResponse;
    if grpc_api::is_grpc(request.headers().get(axum::http::header::CONTENT_TYPE)) {
        return grpc_api::unimplemented(request.uri().path());
    }
    extract::not_found(request.uri().clone())
        .await
        .into_response()
}

/// Load every model in `config`, then serve on `listener` until `shutdown`
/// resolves; in-flight requests finish before it returns.
pub async fn serve(
    config: Config,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    serve_with_ready(config, listener, shutdown, |_| {}).await
}

/// [`serve`], calling `ready` with the bound address once every model is
/// loaded and the inference log is open, just before the first request is
/// accepted: a "listening" message printed there means the server is ready.
pub async fn serve_with_ready(
    config: Config,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ready: impl FnOnce(std::net::SocketAddr),
) -> anyhow::Result<()> {
    let mut state = AppState::from_config(&config)?;
    let dashboards = dashboards_api::open(&config, Some(config.store.store.data_dir.as_path()))?;
    tracing::info!(
        dashboards = dashboards.list().len(),
        file = %config.store.store.data_dir.join(vigil_metrics::dashboard::store::FILE_NAME).display(),
        "dashboards open"
    );
    state = state.with_dashboards(Arc::new(dashboards));
    let store = open_store(&config).await?;
    if let Some(store) = &store {
        let backend = if config.store.store.url.is_some() {
            "postgres"
        } else {
            "sqlite"
        };
        let redactor = vigil_store::Store::redactor(&config.store.store);
        let telemetry = Arc::clone(state.gateway().telemetry());
        state = state.with_inference_log(
            InferenceLogHandle::from_store(Arc::clone(store), backend, redactor)
                .with_telemetry(telemetry),
        );
    }
    let metrics = open_metrics(&config, state.gateway().telemetry()).await?;
    if let Some(metrics) = &metrics {
        state = state.with_metrics(Arc::clone(metrics));
    }
    let opened = open_logs(&config, metrics.as_ref())?;
    let logs = opened.as_ref().map(|o| Arc::clone(&o.logs));
    let subscriptions = opened.as_ref().map(|o| Arc::clone(&o.subscriptions));
    if let Some(opened) = &opened {
        state = state
            .with_logs(Arc::clone(&opened.logs))
            .with_subscriptions(Arc::clone(&opened.subscriptions));
    }
    let traces = open_traces(&config)?;
    if let Some(traces) = &traces {
        state
            .gateway()
            .telemetry()
            .set_traces(Arc::clone(&traces.writer) as _);
        state = state.with_traces(Arc::clone(traces));
    }
    // The service map's settled minutes into the metric store.
    let map_metrics = traces
        .as_ref()
        .zip(metrics.as_ref())
        .map(|(traces, metrics)| {
            tokio::spawn(trace_metrics::put_every_minute(
                Arc::clone(&traces.map),
                Arc::clone(metrics),
            ))
        });
    let expirer = logs
        .clone()
        .map(|logs| tokio::spawn(expire_logs_every_minute(logs)));
    let metric_filters = logs
        .as_ref()
        .and_then(|logs| logs.metric_filters().cloned());
    let filter_flusher = metric_filters.clone().map(|filters| {
        tokio::spawn(flush_metric_filters_every_5s(
            filters,
            Arc::clone(state.gateway().telemetry()),
        ))
    });
    // With logs on, each access line is also an event of /vigil/access,
    // each logged row one of /vigil/inference and each diagnostic one of
    // /vigil/system: one writer thread, each line formatted once.
    let stdout_log = if config.server.access_log || logs.is_some() {
        let copy = logs
            .as_ref()
            .map(|logs| access_log::sink::StoreCopy::new(Arc::clone(logs), instance_name()));
        Some(StdoutLog::start_writer(config.server.access_log, copy)?)
    } else {
        None
    };
    if let Some(log) = &stdout_log {
        if config.server.access_log {
            state = state.with_access_log(AccessLog::to_sink(log.clone()));
        }
        if logs.is_some() {
            state
                .gateway()
                .telemetry()
                .set_lines(log.clone(), config.logs.inference_input);
            system_log::install(log.clone());
        }
    }
    // Readiness waits for the shared cache at most `cache.timeout_ms`.
    state.cache().connected().await;
    let addr = listener.local_addr()?;
    state.gateway().set_listen_addr(addr);
    let reloader = tokio::spawn(reload_on_sighup(
        std::sync::Arc::clone(state.gateway()),
        metrics.clone(),
        Arc::clone(state.dashboards()),
    ));
    let ticker = tokio::spawn(telemetry::tick_every_second(
        Arc::clone(state.gateway().telemetry()),
        store.clone(),
        metrics.clone(),
        subscriptions.clone(),
    ));
    // Open live tails would hold a graceful shutdown up forever: they end
    // when it starts.
    let tail = logs.as_ref().and_then(|logs| logs.tail().cloned());
    let shutdown = async move {
        shutdown.await;
        if let Some(tail) = tail {
            tail.close();
        }
    };
    let tls = config.server.tls.is_some();
    tracing::info!(%addr, tls, models = config.models.len(), "serving");
    ready(addr);
    if tls {
        let listener = tls::TlsListener::new(listener, state.gateway().clone())?;
        axum::serve(listener, app(state))
            .with_graceful_shutdown(shutdown)
            .await?;
    } else {
        axum::serve(listener, app(state))
            .with_graceful_shutdown(shutdown)
            .await?;
    }
    reloader.abort();
    ticker.abort();
    if let Some(task) = map_metrics {
        task.abort();
    }
    if let Some(expirer) = expirer {
        expirer.abort();
    }
    if let Some(flusher) = filter_flusher {
        flusher.abort();
    }
    if let Some(subscriptions) = &subscriptions {
        // What the filters buffered, one attempt each.
        subscriptions.shutdown(Duration::from_secs(2)).await;
    }
    if let Some(logs) = logs
        && let Err(err) = logs.store().sync()
    {
        tracing::warn!(error = %err, "log store sync at shutdown failed");
    }
    if let Some(filters) = &metric_filters {
        // What the filters gathered, before the metric store's last writes
        // to the fleet below.
        filters.flush(telemetry::now_ms());
    }
    if let Some(traces) = &traces {
        // The traces of the last requests, still in the writer's queue.
        let writer = Arc::clone(&traces.writer);
        let flush = tokio::task::spawn_blocking(move || writer.flush(Duration::from_secs(2)));
        if let Err(err) = flush.await {
            tracing::warn!(error = %err, "trace writer flush at shutdown failed");
        }
    }
    if let Some((traces, metrics)) = traces.as_ref().zip(metrics.as_ref()) {
        // Every minute of the service map, settled or not: it is not
        // rebuilt after a restart.
        let (map, metrics) = (Arc::clone(&traces.map), Arc::clone(metrics));
        let put = tokio::task::spawn_blocking(move || {
            trace_metrics::put_all(&map, &metrics, telemetry::now_ms())
        });
        if let Err(err) = put.await {
            tracing::warn!(error = %err, "service map metrics task at shutdown failed");
        }
    }
    if let Some(metrics) = metrics {
        // The last second of Vigil's own metrics, then blocks to disk (and
        // to the fleet's store).
        metrics.tick(telemetry::now_ms());
        metrics.flush_fleet().await;
        if let Err(err) = metrics.checkpoint() {
            tracing::warn!(error = %err, "metric store checkpoint at shutdown failed");
        }
    }
    if let Some(store) = store {
        // Every acknowledged record is already committed; this stops the
        // replayer and the sweeper after a last spill replay attempt.
        store.shutdown().await;
        tracing::info!("inference log closed");
    }
    if let Some(log) = stdout_log {
        log.flush(Duration::from_secs(1));
        let dropped = log.dropped();
        if dropped > 0 {
            tracing::warn!(
                dropped,
                "access log lines dropped because stdout was too slow"
            );
        }
    }
    if let Some(filters) = &metric_filters {
        // And what the access log's last lines gave them (stored in the
        // local write-ahead log: the metric store's writes are durable).
        filters.flush(telemetry::now_ms());
    }
    tracing::info!("server stopped");
    Ok(())
}

/// Open the inference log of `config`, if it is on. Fails fast on a bad
/// `[store]` table or an unreachable PostgreSQL.
pub async fn open_store(config: &Config) -> anyhow::Result<Option<Arc<vigil_store::Store>>> {
    if !config.store.enabled {
        tracing::info!("inference log is off (store.enabled = false)");
        return Ok(None);
    }
    let store_config = &config.store.store;
    let store = vigil_store::Store::open(store_config)
        .await
        .map_err(|err| anyhow::anyhow!("cannot open the inference log: {err}"))?;
    let backend = if store_config.url.is_some() {
        "postgres"
    } else {
        "sqlite"
    };
    tracing::info!(
        backend,
        data_dir = %store_config.data_dir.display(),
        durability = ?store_config.durability,
        "inference log open"
    );
    Ok(Some(store))
}

/// This process in stream names: `hostname-pid`.
fn instance_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "vigil".to_owned());
    format!("{host}-{}", std::process::id())
}

/// The log pipeline, and what the log API manages beside it.
#[derive(Debug, Clone)]
pub struct OpenLogs {
    /// The store with its taps: every batch goes through it.
    pub logs: Arc<vigil_logs::pipeline::Logs>,
    /// The subscription filters (a tap of `logs`).
    pub subscriptions: Arc<vigil_logs::subscription::Subscriptions>,
}

/// Opens tracing when `traces.enabled`: the sampling rules (the config's,
/// with the API's changes kept beside the trace store), the trace store
/// with its retention, the service map, and the writer thread in front of
/// them.
pub fn open_traces(config: &Config) -> anyhow::Result<Option<Arc<trace_writer::Traces>>> {
    if !config.traces.enabled {
        tracing::info!("traces are off (traces.enabled = false)");
        return Ok(None);
    }
    let traces = trace_writer::Traces::open(&config.traces, &config.store.store.data_dir)?;
    tracing::info!(
        data_dir = %config.traces.dir(&config.store.store.data_dir).display(),
        rules = traces.sampler.rules().len(),
        "trace store open"
    );
    Ok(Some(Arc::new(traces)))
}

/// Open the log store of `config` (in `logs.data_dir`, by default `logs`
/// under the inference log's directory), if logs are on. With `metrics`,
/// the metric filters (the file's and those made through the API) and EMF
/// feed that metric store; with its subscription filters (those of
/// `subscriptions.json`, then the file's `[[logs.subscriptions]]`, which
/// replace them). Needs a tokio runtime: each filter's delivery task
/// starts here.
pub fn open_logs(
    config: &Config,
    metrics: Option<&Arc<vigil_metrics::service::MetricsService>>,
) -> anyhow::Result<Option<OpenLogs>> {
    if !config.logs.enabled {
        tracing::info!("logs are off (logs.enabled = false)");
        return Ok(None);
    }
    let dir = config.logs.dir(&config.store.store.data_dir);
    let store = vigil_logs::store::LogStore::open(&dir, vigil_logs::store::StoreOptions::default())
        .map_err(|err| anyhow::anyhow!("cannot open the log store in {}: {err}", dir.display()))?;
    tracing::info!(data_dir = %dir.display(), groups = store.groups().len(), "log store open");
    let store = Arc::new(store);
    let subscriptions = vigil_logs::subscription::Subscriptions::open(
        &dir,
        Arc::clone(&store),
        vigil_logs::subscription::SubscriptionOptions {
            files_dir: Some(
                config
                    .logs
                    .subscription_files_dir(&config.store.store.data_dir),
            ),
            ..Default::default()
        },
    )
    .map_err(|err| anyhow::anyhow!("cannot open the subscription filters: {err}"))?;
    let now = telemetry::now_ms();
    for def in &config.logs.subscriptions {
        store
            .create_group(&def.group, None, now)
            .map_err(|err| anyhow::anyhow!("log group {:?}: {err}", def.group))?;
        subscriptions
            .put_from_config(&def.group, &def.name, def.spec.clone(), now)
            .map_err(|err| {
                anyhow::anyhow!("subscription {:?} of {:?}: {err}", def.name, def.group)
            })?;
    }
    let subscriptions = Arc::new(subscriptions);
    if !subscriptions.stats().is_empty() {
        tracing::info!(
            filters = subscriptions.stats().len(),
            "subscription filters on"
        );
    }
    let mut logs = vigil_logs::pipeline::Logs::new(store)
        .with_tail(Arc::new(vigil_logs::tail::Tail::default()))
        .with_tap(subscriptions.clone());
    match metrics {
        Some(metrics) => {
            let filters =
                logs_api::metric_filters::open(&dir, metrics, &config.logs.metric_filters)?;
            logs = logs.with_metric_filters(filters);
        }
        None if !config.logs.metric_filters.is_empty() => tracing::warn!(
            filters = config.logs.metric_filters.len(),
            "metric filters need metrics (metrics.enabled = false): [[logs.metric_filters]] ignored"
        ),
        None => {}
    }
    Ok(Some(OpenLogs {
        logs: Arc::new(logs),
        subscriptions,
    }))
}

/// Writes what the metric filters gathered every 5 s (on the blocking
/// pool: the metric store writes its log), then turns their counters into
/// `Vigil/Logs` metrics.
async fn flush_metric_filters_every_5s(
    filters: Arc<vigil_logs::metric_filter::MetricFilters>,
    telemetry: Arc<telemetry::Telemetry>,
) {
    let mut interval = tokio::time::interval(Duration::from_secs(5));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        if filters.has_pending() {
            let flushing = Arc::clone(&filters);
            if let Err(err) =
                tokio::task::spawn_blocking(move || flushing.flush(telemetry::now_ms())).await
            {
                tracing::warn!(error = %err, "metric filter flush task failed");
            }
        }
        telemetry.emit(telemetry::events::LogMetricsRead {
            stats: &filters.stats(),
        });
    }
}

/// Drops whole segments past their group's retention, once a minute (on
/// the blocking pool: deletions touch files).
async fn expire_logs_every_minute(logs: Arc<vigil_logs::pipeline::Logs>) {
    let mut interval = tokio::time::interval(Duration::from_secs(60));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let logs = Arc::clone(&logs);
        let expired =
            tokio::task::spawn_blocking(move || logs.store().expire(telemetry::now_ms())).await;
        match expired {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => tracing::info!(segments = n, "expired log segments deleted"),
            Ok(Err(err)) => tracing::warn!(error = %err, "log expiry failed"),
            Err(err) => tracing::warn!(error = %err, "log expiry task failed"),
        }
    }
}

/// Open the metric store of `config` (in `metrics.data_dir`, by default
/// `metrics` under the inference log's directory), if metrics are on; with
/// `metrics.url`, joined to the fleet's shared store (which must be
/// reachable).
pub async fn open_metrics(
    config: &Config,
    telemetry: &Arc<telemetry::Telemetry>,
) -> anyhow::Result<Option<Arc<vigil_metrics::service::MetricsService>>> {
    if !config.metrics.enabled {
        tracing::info!("metrics are off (metrics.enabled = false)");
        return Ok(None);
    }
    let dir = config.metrics.dir(&config.store.store.data_dir);
    let service = vigil_metrics::service::MetricsService::open(
        &dir,
        telemetry::tsdb_config(&config.metrics),
        Arc::clone(telemetry.registry()),
        config.notifier(),
    )
    .map_err(|err| anyhow::anyhow!("cannot open the metric store in {}: {err}", dir.display()))?;
    let service = match &config.metrics.url {
        None => service,
        Some(url) => {
            let tiers = telemetry::tsdb_config(&config.metrics).tiers;
            let fleet = vigil_metrics::fleet::Fleet::connect(url, tiers)
                .await
                .map_err(|err| anyhow::anyhow!("cannot join the fleet's metric store: {err}"))?;
            service.with_fleet(fleet)
        }
    };
    apply_alarms(&service, &config.alarms)?;
    tracing::info!(data_dir = %dir.display(), alarms = service.alarms().list().len(), "metric store open");
    Ok(Some(Arc::new(service)))
}

/// Puts the file's alarms into the engine (metric alarms first, so that
/// composites find their children), replacing alarms of the same name.
fn apply_alarms(
    service: &vigil_metrics::service::MetricsService,
    alarms: &[config::AlarmDef],
) -> anyhow::Result<()> {
    let now = telemetry::now_ms();
    let engine = service.alarms();
    for alarm in alarms {
        if let config::AlarmDef::Metric(alarm) = alarm {
            let unchanged = engine.get(alarm.name()).is_some_and(|view| {
                matches!(&view.config, vigil_metrics::alarm::AlarmConfig::Metric(old) if **old == **alarm)
            });
            if !unchanged {
                engine
                    .put_metric_alarm((**alarm).clone(), now)
                    .map_err(|err| anyhow::anyhow!("alarm `{}`: {err}", alarm.name()))?;
            }
        }
    }
    for alarm in alarms {
        if let config::AlarmDef::Composite(alarm) = alarm {
            let unchanged = engine.get(alarm.name()).is_some_and(|view| {
                matches!(&view.config, vigil_metrics::alarm::AlarmConfig::Composite(old) if **old == **alarm)
            });
            if !unchanged {
                engine
                    .put_composite_alarm((**alarm).clone(), now)
                    .map_err(|err| anyhow::anyhow!("alarm `{}`: {err}", alarm.name()))?;
            }
        }
    }
    Ok(())
}

/// Reads the config again and swaps the gateway's runtime (models, keys,
/// limits, cache), then puts the file's `[[alarms]]` into the alarm engine:
/// the one reload path of SIGHUP and `POST /api/admin/reload`.
pub async fn reload(
    gateway: &gateway::Gateway,
    metrics: Option<&Arc<vigil_metrics::service::MetricsService>>,
    dashboards: &vigil_metrics::dashboard::store::Dashboards,
) -> anyhow::Result<gateway::runtime::ReloadSummary> {
    let summary = gateway.reload().await?;
    // The runtime is already swapped: a bad alarm or dashboard is reported,
    // the rest of the reload stands.
    let config = &gateway.runtime().config;
    if let Err(err) = dashboards_api::reconfigure(dashboards, config) {
        anyhow::bail!("models and keys reloaded, but [[dashboards]] were not: {err:#}");
    }
    if let Some(metrics) = metrics
        && let Err(err) = apply_alarms(metrics, &config.alarms)
    {
        anyhow::bail!("models and keys reloaded, but [[alarms]] were not: {err:#}");
    }
    Ok(summary)
}

/// Reload the config on every SIGHUP (the same path as `POST /api/admin/reload`).
async fn reload_on_sighup(
    gateway: std::sync::Arc<gateway::Gateway>,
    metrics: Option<Arc<vigil_metrics::service::MetricsService>>,
    dashboards: Arc<vigil_metrics::dashboard::store::Dashboards>,
) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hangups = match signal(SignalKind::hangup()) {
            Ok(hangups) => hangups,
            Err(err) => {
                tracing::warn!(error = %err, "cannot listen for SIGHUP; reload with POST /api/admin/reload");
                return;
            }
        };
        while hangups.recv().await.is_some() {
            match reload(&gateway, metrics.as_ref(), &dashboards).await {
                Ok(summary) => tracing::info!(models = ?summary.models, "reloaded on SIGHUP"),
                Err(err) => tracing::error!(
                    error = %format!("{err:#}"),
                    "reload on SIGHUP rejected, the running config keeps serving"
                ),
            }
        }
    }
    #[cfg(not(unix))]
    let _ = (gateway, metrics, dashboards);
}
