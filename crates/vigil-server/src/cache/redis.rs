//! The Redis backend: shared by replicas, never trusted with a request.
//!
//! Every command has a short deadline (`cache.timeout_ms`, default 5 ms);
//! a slow or failed command counts as a cache error and the request is
//! scored without the cache. After [`TRIP_AFTER`] failures in a row the
//! breaker opens and Redis is not asked for `cache.breaker_open_ms`; then
//! one request tries again, and its failure opens it again at once (see
//! [`Breaker`]).
//!
//! The connection is made in the background as soon as the cache is built
//! (start-up, or a reload that changed `[cache]`), and again whenever it is
//! lost. A request that finds it still being made waits for it within its
//! deadline instead of skipping the cache, so a fresh replica's first
//! request already reads and writes the shared entries.
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
use crate::telemetry::Telemetry;
use crate::telemetry::events::CacheFailed;

/// Consecutive failures that open the breaker.
pub const TRIP_AFTER: u32 = 3;
/// Key namespace; a flush deletes only keys under it.
const PREFIX: &str = "vigil:cache:";
/// Deadline of a flush (an admin call, not the hot path).
const FLUSH_TIMEOUT: Duration = Duration::from_secs(10);

/// A command not sent: the breaker is open or the connection attempt failed.
#[derive(Debug)]
struct NoConnection;

#[derive(Debug)]
struct Shared {
    client: redis::Client,
    connection: ArcSwapOption<MultiplexedConnection>,
    connecting: AtomicBool,
    /// Woken when a connection attempt ends, whatever its outcome.
    attempt_done: tokio::sync::Notify,
    timeout: Duration,
    ttl_ms: u64,
    /// On nanoseconds since `epoch`.
    breaker: Breaker,
    epoch: Instant,
    telemetry: Arc<Telemetry>,
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
    /// A cache on `url`; inside a Tokio runtime the connection is started
    /// at once, in the background (see [`RedisCache::connected`]).
    pub fn new(
        url: &str,
        config: &CacheConfig,
        telemetry: Arc<Telemetry>,
    ) -> anyhow::Result<RedisCache> {
        let client = redis::Client::open(url)
            .map_err(|err| anyhow::anyhow!("cache.url: invalid redis url: {err}"))?;
        let cache = RedisCache {
            shared: Arc::new(Shared {
                client,
                connection: ArcSwapOption::empty(),
                connecting: AtomicBool::new(false),
                attempt_done: tokio::sync::Notify::new(),
                timeout: Duration::from_millis(config.timeout_ms),
                ttl_ms: config.ttl_ms,
                breaker: Breaker::new(TRIP_AFTER, Duration::from_millis(config.breaker_open_ms)),
                epoch: Instant::now(),
                telemetry,
            }),
        };
        cache.shared.connect_in_background();
        Ok(cache)
    }

    /// Waits at most `cache.timeout_ms` for the connection being made;
    /// true when connected. Start-up and reload call it so that readiness
    /// waits for Redis that long and no longer: the connect goes on in the
    /// background after it gives up.
    pub async fn connected(&self) -> bool {
        let wait = async {
            let done = self.shared.attempt_done.notified();
            tokio::pin!(done);
            done.as_mut().enable();
            if self.shared.connection.load().is_some() {
                return true;
            }
            self.shared.connect_in_background();
            done.await;
            self.shared.connection.load().is_some()
        };
        tokio::time::timeout(self.shared.timeout, wait)
            .await
            .unwrap_or(false)
    }

    /// The cached scores under `key` if Redis answers in time and has
    /// `outputs` of them.
    pub async fn get(&self, key: &str, outputs: usize) -> Option<Vec<f64>> {
        let command = redis::cmd("GET").arg(key).to_owned();
        // One deadline for waiting on a connection being made and the command.
        let reply = tokio::time::timeout(self.shared.timeout, async {
            let mut conn = self.shared.usable().await?;
            Some(command.query_async::<Option<Vec<u8>>>(&mut conn).await)
        })
        .await;
        let bytes = self.shared.outcome(reply.map(|r| r.ok_or(NoConnection)))?;
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
        let bytes: Vec<u8> = scores.iter().flat_map(|s| s.to_le_bytes()).collect();
        let shared = Arc::clone(&self.shared);
        tokio::spawn(async move {
            let command = redis::cmd("SET")
                .arg(key)
                .arg(bytes)
                .arg("PX")
                .arg(shared.ttl_ms)
                .to_owned();
            let reply = tokio::time::timeout(shared.timeout, async {
                let mut conn = shared.usable().await?;
                Some(command.query_async::<()>(&mut conn).await)
            })
            .await;
            shared.outcome(reply.map(|r| r.ok_or(NoConnection)));
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

    /// A connection to use, or `None` when the breaker is open or the
    /// connection attempt failed (that attempt counted the failure). Not
    /// connected: starts an attempt unless one is under way, and waits for
    /// it (the caller holds the deadline).
    async fn usable(self: &Arc<Self>) -> Option<MultiplexedConnection> {
        if !self.breaker.admits(|| self.now_nanos()) {
            return None;
        }
        if let Some(conn) = self.connection.load_full() {
            return Some((*conn).clone());
        }
        // Registered before looking again, so an attempt ending in between
        // still wakes this wait.
        let done = self.attempt_done.notified();
        tokio::pin!(done);
        done.as_mut().enable();
        if let Some(conn) = self.connection.load_full() {
            return Some((*conn).clone());
        }
        self.connect_in_background();
        done.await;
        self.connection.load_full().map(|conn| (*conn).clone())
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
            shared.attempt_done.notify_waiters();
        });
    }

    /// Account for a command's result; `Some` when it succeeded. No
    /// connection is not counted again: the failed attempt was.
    fn outcome<T>(
        &self,
        reply: Result<Result<redis::RedisResult<T>, NoConnection>, tokio::time::error::Elapsed>,
    ) -> Option<T> {
        match reply {
            Ok(Err(NoConnection)) => None,
            Ok(Ok(Ok(value))) => {
                self.breaker.succeeded();
                Some(value)
            }
            Ok(Ok(Err(err))) => {
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
        self.telemetry.emit(CacheFailed);
        self.breaker.failed(self.now_nanos());
    }
}
