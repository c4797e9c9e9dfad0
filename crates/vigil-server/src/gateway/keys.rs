//! API keys: only the SHA-256 of each key is configured; a presented key is
//! hashed and compared in constant time with every configured hash.

use std::sync::Arc;

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use sha2::{Digest, Sha256};

use crate::config::{KeyConfig, Roles};
use crate::gateway::throttle::Bucket;

/// The header that carries a key when `Authorization: Bearer` is not used.
pub const API_KEY_HEADER: &str = "x-api-key";

/// Prefix of the keys `vigil keys create` makes (helps secret scanners).
pub const KEY_PREFIX: &str = "vgl_";

/// The name of the key a request was authenticated with, attached to the
/// request and the response as an extension (access log, inference log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyName(pub Arc<str>);

/// A configured key, ready for lookups.
#[derive(Debug)]
pub struct ApiKey {
    /// Its name.
    pub name: KeyName,
    hash: [u8; 32],
    /// A disabled key gets a 403.
    pub enabled: bool,
    /// What it may do.
    pub roles: Roles,
    /// Models it may use; `None` = every model.
    pub models: Option<Vec<Box<str>>>,
    /// Its own token bucket, if it has a plan.
    pub bucket: Option<Arc<Bucket>>,
}

impl ApiKey {
    /// Build from config; `bucket` is the key's plan bucket.
    pub fn new(config: &KeyConfig, bucket: Option<Arc<Bucket>>) -> ApiKey {
        ApiKey {
            name: KeyName(config.name.as_str().into()),
            hash: config.hash,
            enabled: config.enabled,
            roles: config.roles,
            models: config
                .models
                .as_ref()
                .map(|models| models.iter().map(|m| m.as_str().into()).collect()),
            bucket,
        }
    }

    /// Whether the key may use `model`.
    pub fn allows_model(&self, model: &str) -> bool {
        self.models
            .as_ref()
            .is_none_or(|models| models.iter().any(|m| &**m == model))
    }
}

/// SHA-256 of `key` as written in the config: `sha256:<hex>`.
pub fn hash_key(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256:");
    for byte in digest {
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
    out
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// A new random key: the prefix and 192 bits from the OS, in hex.
pub fn generate_key() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes)?;
    let mut out = String::with_capacity(KEY_PREFIX.len() + 48);
    out.push_str(KEY_PREFIX);
    for byte in bytes {
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
    Ok(out)
}

/// The key a request presents, from `Authorization: Bearer KEY` or
/// `x-api-key: KEY`; `Err` when a header is there but unusable.
pub fn presented_key(headers: &HeaderMap) -> Result<Option<&str>, &'static str> {
    if let Some(value) = headers.get(AUTHORIZATION) {
        let text = value
            .to_str()
            .map_err(|_| "authorization header is not ascii")?;
        let (scheme, key) = text
            .split_once(' ')
            .ok_or("authorization header must be `Bearer KEY`")?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err("authorization header must be `Bearer KEY`");
        }
        let key = key.trim();
        if key.is_empty() {
            return Err("authorization header has an empty key");
        }
        return Ok(Some(key));
    }
    if let Some(value) = headers.get(API_KEY_HEADER) {
        let key = value.to_str().map_err(|_| "x-api-key is not ascii")?.trim();
        if key.is_empty() {
            return Err("x-api-key is empty");
        }
        return Ok(Some(key));
    }
    Ok(None)
}

/// Every configured key.
#[derive(Debug, Default)]
pub struct KeyTable {
    keys: Vec<ApiKey>,
}

impl KeyTable {
    /// The table of `keys`.
    pub fn new(keys: Vec<ApiKey>) -> KeyTable {
        KeyTable { keys }
    }

    /// Whether no key is configured (scoring is open).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The key whose hash matches `presented`. Every configured hash is
    /// compared in full, so the time taken says nothing about which one
    /// matched or how much of it.
    pub fn find(&self, presented: &str) -> Option<&ApiKey> {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let mut found = None;
        for key in &self.keys {
            if constant_time_eq(&key.hash, &digest) {
                found = Some(key);
            }
        }
        found
    }

    /// A key by name (for reusing buckets across reloads).
    pub fn by_name(&self, name: &str) -> Option<&ApiKey> {
        self.keys.iter().find(|key| &*key.name.0 == name)
    }
}

fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b) {
        diff |= x ^ y;
    }
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;
    use crate::config::parse_key_hash;

    fn config(name: &str, key: &str) -> KeyConfig {
        KeyConfig {
            name: name.to_owned(),
            hash: parse_key_hash(&hash_key(key)).expect("valid hash"),
            enabled: true,
            roles: Roles {
                score: true,
                admin: false,
            },
            rate_per_s: None,
            burst: None,
            models: Some(vec!["fraud".to_owned()]),
        }
    }

    #[test]
    fn hash_is_sha256_hex_of_the_key() {
        // sha256("abc"), FIPS 180-2 test vector.
        assert_eq!(
            hash_key("abc"),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn generated_keys_are_fresh_and_round_trip() {
        let a = generate_key().expect("os randomness");
        let b = generate_key().expect("os randomness");
        assert_ne!(a, b);
        assert!(a.starts_with(KEY_PREFIX) && a.len() == 52, "{a}");
        let table = KeyTable::new(vec![ApiKey::new(&config("app", &a), None)]);
        assert_eq!(table.find(&a).map(|k| &*k.name.0), Some("app"));
        assert!(table.find(&b).is_none());
    }

    #[test]
    fn lookup_finds_the_right_key_and_models() {
        let table = KeyTable::new(vec![
            ApiKey::new(&config("one", "k1"), None),
            ApiKey::new(&config("two", "k2"), None),
        ]);
        assert_eq!(table.find("k2").map(|k| &*k.name.0), Some("two"));
        assert!(table.find("k3").is_none());
        let key = table.find("k1").expect("found");
        assert!(key.allows_model("fraud"));
        assert!(!key.allows_model("other"));
    }

    #[test]
    fn keys_come_from_either_header() {
        let mut headers = HeaderMap::new();
        assert_eq!(presented_key(&headers), Ok(None));
        headers.insert(API_KEY_HEADER, HeaderValue::from_static("k1"));
        assert_eq!(presented_key(&headers), Ok(Some("k1")));
        headers.insert(AUTHORIZATION, HeaderValue::from_static("bearer  k2 "));
        assert_eq!(presented_key(&headers), Ok(Some("k2")));
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert!(presented_key(&headers).is_err());
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Bearer "));
        assert!(presented_key(&headers).is_err());
    }
}
