//! What a reload swaps: the models, keys, buckets, limits and cache, built
//! from a [`Config`] by one function that start-up and reload both call.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::Semaphore;

use crate::cache::PredictionCache;
use crate::config::Config;
use crate::error::ErrorCode;
use crate::gateway::keys::{ApiKey, KeyTable};
use crate::gateway::throttle::{Bucket, GatewayClock, bucket_for};
use crate::registry::Registry;
use crate::telemetry::Telemetry;
use crate::tls::{CertificateSource, load_certified_key};

/// One consistent generation of everything reloadable.
#[derive(Debug)]
pub struct Runtime {
    /// The config it was built from.
    pub config: Config,
    /// The loaded models.
    pub registry: Arc<Registry>,
    /// The API keys with their buckets.
    pub keys: KeyTable,
    /// The global bucket (`None` when `gateway.rate_per_s = 0`).
    pub global: Option<Arc<Bucket>>,
    /// Permits for scoring requests in flight.
    pub concurrency: Arc<Semaphore>,
    /// 429 or 503 when no permit is left.
    pub concurrency_code: ErrorCode,
    /// Deadline of a scoring request.
    pub request_timeout: Duration,
    /// The prediction cache.
    pub cache: Arc<PredictionCache>,
    /// The TLS certificate and key (`server.tls`), read again on reload.
    pub tls: Option<Arc<tokio_rustls::rustls::sign::CertifiedKey>>,
}

impl Runtime {
    /// Load every model and build the gateway from `config`. `old` is the
    /// generation being replaced: buckets whose plan did not change keep
    /// their fill, an unchanged concurrency limit keeps its permits, an
    /// unchanged cache is kept (its in-process keys carry each model load's
    /// id, so entries of replaced models are never served again).
    pub fn build(
        config: &Config,
        old: Option<&Runtime>,
        clock: &GatewayClock,
        telemetry: &Arc<Telemetry>,
    ) -> anyhow::Result<Runtime> {
        let registry = Arc::new(Registry::load(config, telemetry)?);
        let tls = match &config.server.tls {
            Some(tls) => Some(load_certified_key(&tls.cert_path, &tls.key_path)?),
            None => None,
        };
        let gateway = &config.gateway;
        let global = (gateway.rate_per_s > 0.0).then(|| {
            bucket_for(
                gateway.rate_per_s,
                gateway.burst,
                old.and_then(|old| old.global.as_ref()),
                clock,
            )
        });
        let keys = config
            .keys
            .iter()
            .map(|key| {
                let bucket = key.rate_per_s.map(|rate| {
                    let burst = key.burst.unwrap_or_else(|| default_burst(rate));
                    let old_bucket = old
                        .and_then(|old| old.keys.by_name(&key.name))
                        .and_then(|old| old.bucket.as_ref());
                    bucket_for(rate, burst, old_bucket, clock)
                });
                ApiKey::new(key, bucket)
            })
            .collect();
        let concurrency = match old {
            Some(old)
                if old.config.gateway.max_concurrent_requests
                    == gateway.max_concurrent_requests =>
            {
                Arc::clone(&old.concurrency)
            }
            _ => Arc::new(Semaphore::new(gateway.max_concurrent_requests)),
        };
        let cache = match old {
            Some(old) if old.config.cache == config.cache => Arc::clone(&old.cache),
            _ => Arc::new(PredictionCache::new(&config.cache, Arc::clone(telemetry))?),
        };
        Ok(Runtime {
            config: config.clone(),
            registry,
            keys: KeyTable::new(keys),
            global,
            concurrency,
            concurrency_code: if gateway.concurrency_status == 503 {
                ErrorCode::Unavailable
            } else {
                ErrorCode::TooManyRequests
            },
            request_timeout: Duration::from_millis(gateway.request_timeout_ms),
            cache,
            tls,
        })
    }
}

/// A key plan's burst when none is given: one second of its rate, at least 1.
fn default_burst(rate_per_s: f64) -> u32 {
    // The rate is at most 1e9, so the cast cannot saturate.
    (rate_per_s.ceil() as u32).max(1)
}

/// The gateway: the current [`Runtime`], swapped whole by a reload, and
/// what outlives reloads (counters, clock).
#[derive(Debug)]
pub struct Gateway {
    runtime: ArcSwap<Runtime>,
    telemetry: Arc<Telemetry>,
    clock: GatewayClock,
    pub(super) loopback: AtomicBool,
    reload_lock: tokio::sync::Mutex<()>,
}

/// What a reload did.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct ReloadSummary {
    /// The config file read again (absent when serving without a file).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config: Option<String>,
    /// `name@version` of every model now served.
    pub models: Vec<String>,
    /// Number of API keys now configured.
    pub keys: usize,
}

impl Gateway {
    /// Build the first runtime from `config` on `clock`.
    pub fn new(config: &Config, clock: GatewayClock) -> anyhow::Result<Gateway> {
        let registry = Arc::new(vigil_metrics::registry::Registry::new());
        let telemetry = Arc::new(if config.metrics.enabled {
            Telemetry::new(registry)
        } else {
            Telemetry::disabled(registry)
        });
        let runtime = Runtime::build(config, None, &clock, &telemetry)?;
        Ok(Gateway {
            runtime: ArcSwap::from_pointee(runtime),
            telemetry,
            clock,
            loopback: AtomicBool::new(config.server.listen.ip().is_loopback()),
            reload_lock: tokio::sync::Mutex::new(()),
        })
    }

    /// The current runtime; a request keeps the one it started with.
    pub fn runtime(&self) -> Arc<Runtime> {
        self.runtime.load_full()
    }

    /// The telemetry spine: metric handles, shared across reloads.
    pub fn telemetry(&self) -> &Arc<Telemetry> {
        &self.telemetry
    }

    /// Read the config again (its file, or the same in-memory config when
    /// it has none) and swap in a new runtime built by the start-up code.
    /// On any problem the old runtime keeps serving and the error lists
    /// every problem.
    pub async fn reload(&self) -> anyhow::Result<ReloadSummary> {
        let _one_at_a_time = self.reload_lock.lock().await;
        let old = self.runtime();
        let old_cache = Arc::clone(&old.cache);
        let clock = self.clock.clone();
        let telemetry = Arc::clone(&self.telemetry);
        // Loading models reads files and compiles trees: off the async workers.
        let new = tokio::task::spawn_blocking(move || {
            let config = match &old.config.source {
                Some(path) => Config::load(path)?,
                None => old.config.clone(),
            };
            if config.store != old.config.store {
                tracing::warn!(
                    "[store] changed: the inference log keeps its settings until a restart"
                );
            }
            Runtime::build(&config, Some(&old), &clock, &telemetry)
        })
        .await??;
        if !Arc::ptr_eq(&new.cache, &old_cache) {
            // A rebuilt cache started connecting: give it up to its timeout
            // so the first request after the reload already uses it.
            new.cache.connected().await;
        }
        let mut models: Vec<String> = new
            .registry
            .models()
            .map(|m| format!("{}@{}", m.name, m.version))
            .collect();
        models.sort();
        let summary = ReloadSummary {
            config: new.config.source.as_ref().map(|p| p.display().to_string()),
            models,
            keys: new.config.keys.len(),
        };
        self.runtime.store(Arc::new(new));
        tracing::info!(models = ?summary.models, keys = summary.keys, "config reloaded");
        Ok(summary)
    }

    /// Whether the server listens on a loopback address only.
    pub fn is_loopback(&self) -> bool {
        self.loopback.load(Ordering::Relaxed)
    }

    /// Record the address actually bound (the admin API is open without
    /// keys only on loopback).
    pub fn set_listen_addr(&self, addr: std::net::SocketAddr) {
        self.loopback
            .store(addr.ip().is_loopback(), Ordering::Relaxed);
    }
}

impl CertificateSource for Gateway {
    fn current_certificate(&self) -> Option<Arc<tokio_rustls::rustls::sign::CertifiedKey>> {
        self.runtime().tls.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_key_burst_is_one_second_of_rate() {
        assert_eq!(default_burst(0.2), 1);
        assert_eq!(default_burst(10.0), 10);
        assert_eq!(default_burst(2.5), 3);
    }
}
