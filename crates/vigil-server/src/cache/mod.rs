//! The prediction cache: model + canonical feature row → scores, in process
//! (`moka`) or in Redis shared by replicas. Handlers call one function,
//! [`PredictionCache::get_or_score`]; a cache failure never fails a request.
//!
//! The key is the row *after* feature names were mapped to the model's
//! positions, so the order of the request's keys does not matter. Values
//! are compared by bit pattern with two canonicalisations, both of which
//! cannot change a tree model's output:
//! - every NaN (missing) becomes one NaN: trees only ask "is it missing";
//! - `-0.0` becomes `0.0`: splits compare with `<`, under which the two are
//!   equal, and a categorical split truncates both to category 0.
//!
//! Any other difference in bits is a different key.

mod breaker;
mod redis;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::HeaderValue;
use axum::http::request::Parts;

use crate::config::CacheConfig;
use crate::error::ApiError;
use crate::registry::ModelEntry;
use crate::telemetry::Telemetry;
use crate::telemetry::events::{CacheLookup, Decided, ModelInvoked};

/// Response header saying what the cache did.
pub const CACHE_HEADER: &str = "vigil-cache";

/// What the cache did for a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    /// Served from the cache; the model was not called.
    Hit,
    /// Scored by the model (and stored).
    Miss,
    /// Not consulted: `Cache-Control: no-cache`, or the cache is off.
    Bypass,
}

impl CacheStatus {
    /// The `Vigil-Cache` header value.
    pub fn header_value(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            CacheStatus::Hit => "hit",
            CacheStatus::Miss => "miss",
            CacheStatus::Bypass => "bypass",
        })
    }

    /// Whether the answer came from the cache.
    pub fn is_hit(self) -> bool {
        self == CacheStatus::Hit
    }
}

/// The request's wish about the cache, from `Cache-Control`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheControl {
    /// `no-cache` or `no-store`: score with the model, do not read the cache.
    pub bypass: bool,
}

impl<S: Send + Sync> FromRequestParts<S> for CacheControl {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(CacheControl::from_headers(&parts.headers))
    }
}

impl CacheControl {
    /// The client's `Cache-Control` (HTTP header or gRPC metadata).
    pub(crate) fn from_headers(headers: &axum::http::HeaderMap) -> CacheControl {
        let bypass = headers
            .get_all(axum::http::header::CACHE_CONTROL)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .any(|directive| {
                let directive = directive.trim();
                directive.eq_ignore_ascii_case("no-cache")
                    || directive.eq_ignore_ascii_case("no-store")
            });
        CacheControl { bypass }
    }
}

/// Scores for a request: computed now or shared from the cache.
#[derive(Debug, Clone)]
pub enum Scores {
    /// Just computed.
    Owned(Vec<f64>),
    /// From (or also in) the cache.
    Shared(Arc<[f64]>),
}

impl std::ops::Deref for Scores {
    type Target = [f64];
    fn deref(&self) -> &[f64] {
        match self {
            Scores::Owned(v) => v,
            Scores::Shared(v) => v,
        }
    }
}

/// In-process key: the model's name (for per-model flushes), its load id
/// (a reloaded model never matches) and the canonical row bits.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct LocalKey {
    model: Arc<str>,
    load_id: u64,
    bits: Box<[u64]>,
}

/// The canonical bits of one value (see the module docs).
pub fn canonical_bits(value: f64) -> u64 {
    if value.is_nan() {
        f64::NAN.to_bits()
    } else if value == 0.0 {
        0
    } else {
        value.to_bits()
    }
}

fn canonical_row(rows: &[f64]) -> Box<[u64]> {
    rows.iter().map(|&v| canonical_bits(v)).collect()
}

#[derive(Debug)]
enum Backend {
    Off,
    Local(moka::sync::Cache<LocalKey, Arc<[f64]>>),
    Redis(redis::RedisCache),
}

/// The prediction cache of one runtime.
#[derive(Debug)]
pub struct PredictionCache {
    backend: Backend,
    telemetry: Arc<Telemetry>,
}

impl PredictionCache {
    /// A cache as configured; Redis starts connecting at once, in the
    /// background.
    pub fn new(config: &CacheConfig, telemetry: Arc<Telemetry>) -> anyhow::Result<Self> {
        let backend = if !config.enabled() {
            Backend::Off
        } else if let Some(url) = &config.url {
            Backend::Redis(redis::RedisCache::new(url, config, Arc::clone(&telemetry))?)
        } else {
            Backend::Local(
                moka::sync::Cache::builder()
                    .max_capacity(config.max_entries)
                    .time_to_live(Duration::from_millis(config.ttl_ms))
                    .build(),
            )
        };
        Ok(PredictionCache { backend, telemetry })
    }

    /// Waits at most `cache.timeout_ms` for the Redis connection being
    /// made (see [`redis::RedisCache::connected`]); true when connected or
    /// when there is nothing to connect to.
    pub async fn connected(&self) -> bool {
        match &self.backend {
            Backend::Redis(cache) => cache.connected().await,
            Backend::Off | Backend::Local(_) => true,
        }
    }

    /// The scores of `rows` for `entry`: from the cache, or from `score`
    /// (then stored). `control.bypass` skips the lookup and the store.
    /// Emits the model's invocation (when it scored) and its decisions.
    pub async fn get_or_score<F>(
        &self,
        entry: &ModelEntry,
        rows: &[f64],
        control: CacheControl,
        score: F,
    ) -> Result<(Scores, CacheStatus), ApiError>
    where
        F: FnOnce() -> Result<Vec<f64>, ApiError>,
    {
        let invoke = || {
            let started = std::time::Instant::now();
            let scored = score();
            self.telemetry.emit(ModelInvoked {
                model: &entry.metrics,
                duration: started.elapsed(),
                ok: scored.is_ok(),
                rows: rows.len() / entry.model.num_features().max(1),
            });
            scored
        };
        let (scores, status) = self.lookup_or_score(entry, rows, control, invoke).await?;
        self.telemetry.emit(Decided {
            model: &entry.metrics,
            scores: &scores,
            outputs: entry.model.num_outputs(),
            threshold: entry.has_threshold().then_some(entry.threshold),
            multiclass: entry.is_multiclass(),
            rows,
        });
        Ok((scores, status))
    }

    async fn lookup_or_score<F>(
        &self,
        entry: &ModelEntry,
        rows: &[f64],
        control: CacheControl,
        score: F,
    ) -> Result<(Scores, CacheStatus), ApiError>
    where
        F: FnOnce() -> Result<Vec<f64>, ApiError>,
    {
        if control.bypass || matches!(self.backend, Backend::Off) {
            return Ok((Scores::Owned(score()?), CacheStatus::Bypass));
        }
        match &self.backend {
            Backend::Off => unreachable_off(score),
            Backend::Local(cache) => {
                let key = LocalKey {
                    model: Arc::clone(&entry.name),
                    load_id: entry.load_id,
                    bits: canonical_row(rows),
                };
                let started = std::time::Instant::now();
                let found = cache.get(&key);
                self.telemetry.emit(CacheLookup {
                    hit: found.is_some(),
                    duration: started.elapsed(),
                    remote: None,
                });
                if let Some(hit) = found {
                    return Ok((Scores::Shared(hit), CacheStatus::Hit));
                }
                let scores: Arc<[f64]> = score()?.into();
                cache.insert(key, Arc::clone(&scores));
                Ok((Scores::Shared(scores), CacheStatus::Miss))
            }
            Backend::Redis(cache) => {
                let key = redis::key(&entry.name, &entry.version, rows);
                let started = std::time::Instant::now();
                let found = cache.get(&key, entry.model.num_outputs()).await;
                self.telemetry.emit(CacheLookup {
                    hit: found.is_some(),
                    duration: started.elapsed(),
                    remote: Some("redis"),
                });
                if let Some(hit) = found {
                    return Ok((Scores::Shared(hit.into()), CacheStatus::Hit));
                }
                let scores = score()?;
                cache.set_in_background(key, &scores);
                Ok((Scores::Owned(scores), CacheStatus::Miss))
            }
        }
    }

    /// Drop every entry, or only `model`'s; returns how many were dropped
    /// when the backend can tell.
    pub async fn flush(&self, model: Option<&str>) -> Result<Option<u64>, ApiError> {
        match &self.backend {
            Backend::Off => Ok(Some(0)),
            Backend::Local(cache) => {
                cache.run_pending_tasks();
                let before = cache.entry_count();
                match model {
                    None => cache.invalidate_all(),
                    Some(model) => {
                        for (key, _) in cache.iter() {
                            if &*key.model == model {
                                cache.invalidate(&*key);
                            }
                        }
                    }
                }
                cache.run_pending_tasks();
                Ok(Some(before.saturating_sub(cache.entry_count())))
            }
            Backend::Redis(cache) => cache.flush(model).await.map(Some).map_err(|err| {
                tracing::warn!(error = %err, "cannot flush the redis cache");
                ApiError::public(
                    crate::error::ErrorCode::Unavailable,
                    "cannot flush the redis cache right now, see the server log",
                )
            }),
        }
    }

    /// Which backend serves: `off`, `memory` or `redis`.
    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::Off => "off",
            Backend::Local(_) => "memory",
            Backend::Redis(_) => "redis",
        }
    }
}

/// The `Off` arm is handled before the match; kept total without a panic.
fn unreachable_off<F>(score: F) -> Result<(Scores, CacheStatus), ApiError>
where
    F: FnOnce() -> Result<Vec<f64>, ApiError>,
{
    Ok((Scores::Owned(score()?), CacheStatus::Bypass))
}

#[cfg(test)]
mod tests;
