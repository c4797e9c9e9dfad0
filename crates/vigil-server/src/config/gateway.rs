//! The gateway's part of the config: `[gateway]` (global throttling,
//! concurrency, timeout), `[[keys]]` (API keys and their plans) and `[cache]`
//! (the prediction cache). Parsed and validated like the rest of the file.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

/// The `[gateway]` table.
#[derive(Debug, Clone, PartialEq)]
pub struct GatewayConfig {
    /// Steady rate of the global token bucket, requests per second; `0` turns
    /// the global bucket off.
    pub rate_per_s: f64,
    /// Burst of the global token bucket.
    pub burst: u32,
    /// Scoring requests in flight at once; more get `concurrency_status`.
    pub max_concurrent_requests: usize,
    /// Status for a request over `max_concurrent_requests`: 429 or 503.
    pub concurrency_status: u16,
    /// Time a scoring request may take before it gets a 504.
    pub request_timeout_ms: u64,
}

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Roles {
    /// Call the scoring and model endpoints.
    pub score: bool,
    /// Call the admin API (`/api/...`); implies `score`.
    pub admin: bool,
}

/// One `[[keys]]` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyConfig {
    /// Name attached to requests (access log, inference log); unique.
    pub name: String,
    /// SHA-256 of the key.
    pub hash: [u8; 32],
    /// A disabled key gets a 403.
    pub enabled: bool,
    /// What the key may do.
    pub roles: Roles,
    /// The key's own token bucket: steady rate per second, if it has a plan.
    pub rate_per_s: Option<f64>,
    /// The key's bucket burst (defaults to the rate rounded up).
    pub burst: Option<u32>,
    /// Models the key may use; `None` = every model.
    pub models: Option<Vec<String>>,
}

/// The `[cache]` table.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheConfig {
    /// Entries kept by the in-process cache; `0` turns the cache off.
    pub max_entries: u64,
    /// How long an entry lives; `0` turns the cache off.
    pub ttl_ms: u64,
    /// `redis://...` for a shared Redis cache; `None` = in-process.
    pub url: Option<String>,
    /// Time allowed for one Redis command before scoring goes on without it.
    pub timeout_ms: u64,
    /// After repeated Redis failures, how long the cache is skipped.
    pub breaker_open_ms: u64,
}

impl CacheConfig {
    /// Whether any caching happens.
    pub fn enabled(&self) -> bool {
        self.ttl_ms > 0 && (self.max_entries > 0 || self.url.is_some())
    }
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayBuilder::default()
            .validate(&mut Vec::new())
            .expect("the default gateway table is valid")
    }
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheBuilder::default()
            .validate(&mut Vec::new())
            .expect("the default cache table is valid")
    }
}

/// `[gateway]` as written.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct GatewayBuilder {
    #[serde(default = "default_rate_per_s")]
    pub(super) rate_per_s: f64,
    #[serde(default = "default_burst")]
    pub(super) burst: u32,
    #[serde(default = "default_max_concurrent_requests")]
    pub(super) max_concurrent_requests: u64,
    #[serde(default = "default_concurrency_status")]
    pub(super) concurrency_status: u16,
    #[serde(default = "default_request_timeout_ms")]
    pub(super) request_timeout_ms: u64,
}

/// `[[keys]]` as written.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct KeyBuilder {
    #[serde(default)]
    pub(super) name: Option<String>,
    #[serde(default)]
    pub(super) hash: Option<String>,
    #[serde(default = "default_enabled")]
    pub(super) enabled: bool,
    #[serde(default = "default_roles")]
    pub(super) roles: Vec<String>,
    #[serde(default)]
    pub(super) rate_per_s: Option<f64>,
    #[serde(default)]
    pub(super) burst: Option<u32>,
    #[serde(default)]
    pub(super) models: Option<Vec<String>>,
}

/// `[cache]` as written.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CacheBuilder {
    #[serde(default = "default_max_entries")]
    pub(super) max_entries: u64,
    #[serde(default = "default_ttl_ms")]
    pub(super) ttl_ms: u64,
    #[serde(default)]
    pub(super) url: Option<String>,
    #[serde(default = "default_cache_timeout_ms")]
    pub(super) timeout_ms: u64,
    #[serde(default = "default_breaker_open_ms")]
    pub(super) breaker_open_ms: u64,
}

fn default_rate_per_s() -> f64 {
    10_000.0
}
fn default_burst() -> u32 {
    5_000
}
fn default_max_concurrent_requests() -> u64 {
    1_024
}
fn default_concurrency_status() -> u16 {
    429
}
fn default_request_timeout_ms() -> u64 {
    30_000
}
fn default_enabled() -> bool {
    true
}
fn default_roles() -> Vec<String> {
    vec!["score".to_owned()]
}
fn default_max_entries() -> u64 {
    100_000
}
fn default_ttl_ms() -> u64 {
    30_000
}
fn default_cache_timeout_ms() -> u64 {
    5
}
fn default_breaker_open_ms() -> u64 {
    1_000
}

impl Default for GatewayBuilder {
    fn default() -> Self {
        GatewayBuilder {
            rate_per_s: default_rate_per_s(),
            burst: default_burst(),
            max_concurrent_requests: default_max_concurrent_requests(),
            concurrency_status: default_concurrency_status(),
            request_timeout_ms: default_request_timeout_ms(),
        }
    }
}

impl Default for CacheBuilder {
    fn default() -> Self {
        CacheBuilder {
            max_entries: default_max_entries(),
            ttl_ms: default_ttl_ms(),
            url: None,
            timeout_ms: default_cache_timeout_ms(),
            breaker_open_ms: default_breaker_open_ms(),
        }
    }
}

/// A rate: finite and not negative (`allow_zero`) or positive.
fn check_rate(key: &str, rate: f64, allow_zero: bool, problems: &mut Vec<String>) {
    let ok = rate.is_finite() && (rate > 0.0 || (allow_zero && rate == 0.0)) && rate <= 1e9;
    if !ok {
        let expected = if allow_zero {
            "between 0 and 1e9"
        } else {
            "above 0 and at most 1e9"
        };
        problems.push(format!("{key}: must be {expected}, got {rate}"));
    }
}

impl GatewayBuilder {
    pub(super) fn validate(self, problems: &mut Vec<String>) -> Option<GatewayConfig> {
        let before = problems.len();
        check_rate("gateway.rate_per_s", self.rate_per_s, true, problems);
        if self.burst == 0 {
            problems.push("gateway.burst: must be at least 1".to_owned());
        }
        let max_concurrent_requests = usize::try_from(self.max_concurrent_requests)
            .ok()
            // tokio's semaphore holds at most usize::MAX >> 3 permits.
            .filter(|n| (1..=(usize::MAX >> 3)).contains(n));
        if max_concurrent_requests.is_none() {
            problems.push(format!(
                "gateway.max_concurrent_requests: must be at least 1, got {}",
                self.max_concurrent_requests
            ));
        }
        if !matches!(self.concurrency_status, 429 | 503) {
            problems.push(format!(
                "gateway.concurrency_status: must be 429 or 503, got {}",
                self.concurrency_status
            ));
        }
        if self.request_timeout_ms == 0 {
            problems.push("gateway.request_timeout_ms: must be at least 1".to_owned());
        }
        if problems.len() != before {
            return None;
        }
        Some(GatewayConfig {
            rate_per_s: self.rate_per_s,
            burst: self.burst,
            max_concurrent_requests: max_concurrent_requests?,
            concurrency_status: self.concurrency_status,
            request_timeout_ms: self.request_timeout_ms,
        })
    }
}

impl CacheBuilder {
    pub(super) fn validate(self, problems: &mut Vec<String>) -> Option<CacheConfig> {
        let before = problems.len();
        let url = self.url.filter(|url| !url.is_empty());
        if let Some(url) = &url
            && !(url.starts_with("redis://") || url.starts_with("rediss://"))
        {
            problems.push(format!(
                "cache.url: must start with redis:// (or rediss://), got \"{url}\""
            ));
        }
        if self.timeout_ms == 0 {
            problems.push("cache.timeout_ms: must be at least 1".to_owned());
        }
        if problems.len() != before {
            return None;
        }
        Some(CacheConfig {
            max_entries: self.max_entries,
            ttl_ms: self.ttl_ms,
            url,
            timeout_ms: self.timeout_ms,
            breaker_open_ms: self.breaker_open_ms,
        })
    }
}

/// Parse `sha256:<64 hex digits>`.
pub fn parse_key_hash(text: &str) -> Option<[u8; 32]> {
    let hex = text.strip_prefix("sha256:")?.as_bytes();
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in hex.chunks_exact(2).enumerate() {
        let digit = |b: u8| (b as char).to_digit(16);
        out[i] = u8::try_from(digit(pair[0])? * 16 + digit(pair[1])?).ok()?;
    }
    Some(out)
}

/// Validate every `[[keys]]` entry; `models` are the configured model names.
pub(super) fn validate_keys(
    keys: Vec<KeyBuilder>,
    models: &HashSet<&str>,
    problems: &mut Vec<String>,
) -> Vec<KeyConfig> {
    let mut names = HashSet::new();
    let mut hashes = HashSet::new();
    let mut out = Vec::with_capacity(keys.len());
    for (i, key) in keys.into_iter().enumerate() {
        let before = problems.len();
        let label = match &key.name {
            Some(name) => format!("keys[{i}] (`{name}`)"),
            None => format!("keys[{i}]"),
        };
        match &key.name {
            None => problems.push(format!("{label}: missing required key `name`")),
            Some(name) if !super::valid_name(name) => problems.push(format!(
                "{label}: name must be made of a-z, A-Z, 0-9, `_` and `-`, got `{name}`"
            )),
            Some(name) if !names.insert(name.clone()) => {
                problems.push(format!("{label}: duplicate key name `{name}`"));
            }
            Some(_) => {}
        }
        let hash = match key.hash.as_deref() {
            None => {
                problems.push(format!(
                    "{label}: missing required key `hash` (make one with `vigil keys create NAME`)"
                ));
                None
            }
            Some(text) => match parse_key_hash(text) {
                None => {
                    problems.push(format!(
                        "{label}: hash must be \"sha256:\" and 64 hex digits (never the key itself)"
                    ));
                    None
                }
                Some(hash) if !hashes.insert(hash) => {
                    problems.push(format!("{label}: the same hash is used by another key"));
                    None
                }
                Some(hash) => Some(hash),
            },
        };
        let mut roles = Roles::default();
        if key.roles.is_empty() {
            problems.push(format!(
                "{label}: roles must list \"score\" and/or \"admin\""
            ));
        }
        for role in &key.roles {
            match role.as_str() {
                "score" => roles.score = true,
                "admin" => {
                    roles.admin = true;
                    roles.score = true;
                }
                other => problems.push(format!(
                    "{label}: unknown role \"{other}\" (expected \"score\" or \"admin\")"
                )),
            }
        }
        if let Some(rate) = key.rate_per_s {
            check_rate(&format!("{label}.rate_per_s"), rate, false, problems);
        }
        match (key.rate_per_s, key.burst) {
            (_, Some(0)) => problems.push(format!("{label}.burst: must be at least 1")),
            (None, Some(_)) => {
                problems.push(format!("{label}: burst needs rate_per_s (the key's plan)"))
            }
            _ => {}
        }
        for model in key.models.iter().flatten() {
            if !models.contains(model.as_str()) {
                problems.push(format!(
                    "{label}: models lists `{model}`, which is not a configured model"
                ));
            }
        }
        if problems.len() != before {
            continue;
        }
        if let (Some(name), Some(hash)) = (key.name, hash) {
            out.push(KeyConfig {
                name,
                hash,
                enabled: key.enabled,
                roles,
                rate_per_s: key.rate_per_s,
                burst: key.burst,
                models: key.models,
            });
        }
    }
    out
}
