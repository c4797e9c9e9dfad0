//! The Redis backend: shared by replicas, never trusted with a request.
//!
//! Every command has a short deadline (`cache.timeout_ms`, default 5 ms);
//! a slow or failed command counts as a cache error and the request is
//! scored without the cache. After [`TRIP_AFTER`] failures in a row the
//! breaker opens and Redis is not asked for `cache.breaker_open_ms`; then
//! one request tries again, and its failure opens it again at once (see
//! [`Breaker`]). The connection is made in the background.
//!
//! Keys: `vigil:cache:{model}:{version}:{sha256 of the canonical row}`;
//! values: the scores as little-endian f64s, with `PX ttl_ms`. The version
//! is in the key, so give a changed model file a new `version` when several
//! replicas share a cache.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use redis::aio::MultiplexedConnection;
use sha2::{Digest, Sha256};

use super::breaker::Breaker;
use crate::config::CacheConfig;
use crate::gateway::metrics::GatewayMetrics;

/// Consecutive failures that open the breaker.
pub const TRIP_AFTER: u32 = 3;
/// Key namespace; a flush deletes only keys under it.
const PREFIX: &str = "vigil:cache:";
/// Deadline of a flush (an admin call, not the hot path).
const FLUSH_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug)]
struct Shared {
    client: redis::Client,
    connection: ArcSwapOption<MultiplexedConnection>,
    connecting: AtomicBool,
    timeout: Duration,
    ttl_ms: u64,
    /// On nanoseconds since `epoch`.
    breaker: Breaker,
    epoch: Instant,
    metrics: Arc<GatewayMetrics>,
}

/// A Redis-backed prediction cache.
#[derive(Debug, Clone)]
pub struct RedisCache {
    shared: Arc<Shared>,
}

/// The Redis key of a row.
pub fn key(model: &str, version: &str, rows: &[f64]) -> String {
    let mut hasher = Sha256::new();
    for &value in rows {
        hasher.update(super::canonical_bits(value).to_le_bytes());
    }
    let digest = hasher.finalize();
    let mut out = String::with_capacity(PREFIX.len() + model.len() + version.len() + 66);
    out.push_str(PREFIX);
    out.push_str(model);
    out.push(':');
    out.push_str(version);
    out.push(':');
    for byte in digest {
        out.push(char::from(b"0123456789abcdef"[usize::from(byte >> 4)]));
        out.push(char::from(b"0123456789abcdef"[usize::from(byte & 0xf)]));
    }
    out
}

impl RedisCache {
    /// A cache on `url`; nothing is connected yet.
    pub fn new(
        url: &str,
        config: &CacheConfig,
        metrics: Arc<GatewayMetrics>,
    ) -> anyhow::Result<RedisCache> {
        let client = redis::Client::open(url)
            .map_err(|err| anyhow::anyhow!("cache.url: invalid redis url: {err}"))?;
        Ok(RedisCache {
            shared: Arc::new(Shared {
                client,
                connection: ArcSwapOption::empty(),
                connecting: AtomicBool::new(false),
                timeout: Duration::from_millis(config.timeout_ms),
                ttl_ms: config.ttl_ms,
                breaker: Breaker::new(TRIP_AFTER, Duration::from_millis(config.breaker_open_ms)),
                epoch: Instant::now(),
                metrics,
            }),
        })
    }

    /// The cached scores under `key` if Redis answers in time and has
    /// `outputs` of them.
    pub async fn get(&self, key: &str, outputs: usize) -> Option<Vec<f64>> {
        let mut conn = self.shared.usable()?;
        let command = redis::cmd("GET").arg(key).to_owned();
        let reply = tokio::time::timeout(
            self.shared.timeout,
            command.query_async::<Option<Vec<u8>>>(&mut conn),
        )
        .await;
        let bytes = self.shared.outcome(reply)?;
        let bytes = bytes?;
        if bytes.len() != outputs * 8 {
            return None;
        }
        Some(
            bytes
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
                .collect(),
        )
    }

    /// Store `scores` without making the request wait for it.
    pub fn set_in_background(&self, key: String, scores: &[f64]) {
        let Some(mut conn) = self.shared.usable() else {
            return;
        };
        let bytes: Vec<u8> = scores.iter().flat_map(|s| s.to_le_bytes()).collect();
        let shared = Arc::clone(&self.shared);
        tokio::spawn(async move {
            let command = redis::cmd("SET")
                .arg(key)
                .arg(bytes)
                .arg("PX")
                .arg(shared.ttl_ms)
                .to_owned();
            let reply =
                tokio::time::timeout(shared.timeout, command.query_async::<()>(&mut conn)).await;
            shared.outcome(reply);
        });
    }

    /// Delete every key of ours, or only `model`'s (SCAN + DEL, never FLUSHDB).
    pub async fn flush(&self, model: Option<&str>) -> Result<u64, String> {
        let pattern = match model {
            Some(model) => format!("{PREFIX}{model}:*"),
            None => format!("{PREFIX}*"),
        };
        let work = async {
            let mut conn = self
                .shared
                .client
                .get_multiplexed_async_connection()
                .await?;
            let mut cursor: u64 = 0;
            let mut deleted = 0u64;
            loop {
                let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(1000)
                    .query_async(&mut conn)
                    .await?;
                if !keys.is_empty() {
                    let n: u64 = redis::cmd("DEL").arg(&keys).query_async(&mut conn).await?;
                    deleted += n;
                }
                if next == 0 {
                    return Ok::<u64, redis::RedisError>(deleted);
                }
                cursor = next;
            }
        };
        match tokio::time::timeout(FLUSH_TIMEOUT, work).await {
            Ok(Ok(deleted)) => Ok(deleted),
            Ok(Err(err)) => Err(err.to_string()),
            Err(_) => Err("redis did not answer in time".to_owned()),
        }
    }

    /// Whether the breaker is open now.
    #[cfg(test)]
    pub fn breaker_is_open(&self) -> bool {
        self.shared.breaker_is_open()
    }
}

impl Shared {
    fn now_nanos(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    #[cfg(test)]
    fn breaker_is_open(&self) -> bool {
        self.breaker.is_open(self.now_nanos())
    }

    /// A connection to use now, or `None` (breaker open, not connected yet:
    /// then a background connect is started).
    fn usable(self: &Arc<Self>) -> Option<MultiplexedConnection> {
        if !self.breaker.admits(|| self.now_nanos()) {
            return None;
        }
        if let Some(conn) = self.connection.load_full() {
            return Some((*conn).clone());
        }
        self.connect_in_background();
        None
    }

    fn connect_in_background(self: &Arc<Self>) {
        if self.connecting.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.connecting.store(false, Ordering::Release);
            return;
        };
        let shared = Arc::clone(self);
        runtime.spawn(async move {
            let attempt = tokio::time::timeout(
                Duration::from_secs(1),
                shared.client.get_multiplexed_async_connection(),
            )
            .await;
            match attempt {
                Ok(Ok(conn)) => {
                    shared.connection.store(Some(Arc::new(conn)));
                    shared.breaker.succeeded();
                }
                Ok(Err(err)) => {
                    tracing::warn!(error = %err, "cannot connect to the redis cache");
                    shared.failed();
                }
                Err(_) => {
                    tracing::warn!("cannot connect to the redis cache: timed out");
                    shared.failed();
                }
            }
            shared.connecting.store(false, Ordering::Release);
        });
    }

    /// Account for a command's result; `Some` when it succeeded.
    fn outcome<T>(
        &self,
        reply: Result<redis::RedisResult<T>, tokio::time::error::Elapsed>,
    ) -> Option<T> {
        match reply {
            Ok(Ok(value)) => {
                self.breaker.succeeded();
                Some(value)
            }
            Ok(Err(err)) => {
                if err.is_unrecoverable_error() || err.is_connection_dropped() {
                    self.connection.store(None);
                }
                self.failed();
                None
            }
            Err(_) => {
                self.failed();
                None
            }
        }
    }

    fn failed(&self) {
        self.metrics.cache_errors.fetch_add(1, Ordering::Relaxed);
        self.breaker.failed(self.now_nanos());
    }
}
