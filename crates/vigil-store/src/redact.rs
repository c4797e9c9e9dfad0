//! Per-feature redaction applied to an input before anything is written.

use std::collections::BTreeMap;

use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::Sha256;

use crate::input::hex;

/// What to do with one feature before the record is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RedactRule {
    /// Remove the feature.
    Drop,
    /// Replace the value by the hex HMAC-SHA256 of it under the configured
    /// key: equal values stay comparable, the value itself is not kept.
    Hash,
    /// Keep the value as is.
    Keep,
}

/// A set of rules with its hash key, ready to apply.
#[derive(Clone, Default)]
pub struct Redactor {
    rules: BTreeMap<String, RedactRule>,
    key: Vec<u8>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.debug_struct("Redactor")
            .field("rules", &self.rules)
            .finish_non_exhaustive()
    }
}

impl Redactor {
    /// A redactor with these rules and HMAC key.
    pub fn new(rules: BTreeMap<String, RedactRule>, key: impl Into<Vec<u8>>) -> Self {
        Redactor {
            rules,
            key: key.into(),
        }
    }

    /// True when no rule changes anything.
    pub fn is_noop(&self) -> bool {
        self.rules.values().all(|r| *r == RedactRule::Keep)
    }

    /// Applies the rules to `input` in place.
    pub fn apply(&self, input: &mut Map<String, Value>) {
        redact(input, &self.rules, &self.key);
    }

    /// The rule for one feature (`Keep` when none is configured).
    pub fn rule(&self, feature: &str) -> RedactRule {
        self.rules.get(feature).copied().unwrap_or(RedactRule::Keep)
    }

    /// The `hash` rule's replacement for a number: the same as
    /// [`Redactor::apply`] gives for that number in a map.
    pub fn hash_number(&self, value: f64) -> String {
        let mut text = String::with_capacity(24);
        crate::input::write_number(value, &mut text);
        keyed_hash_bytes(&self.key, text.as_bytes())
    }
}

/// Applies `rules` to `input` in place; features without a rule are kept.
pub fn redact(input: &mut Map<String, Value>, rules: &BTreeMap<String, RedactRule>, key: &[u8]) {
    for (name, rule) in rules {
        match rule {
            RedactRule::Keep => {}
            RedactRule::Drop => {
                input.remove(name);
            }
            RedactRule::Hash => {
                if let Some(value) = input.get_mut(name) {
                    *value = Value::String(keyed_hash(key, value));
                }
            }
        }
    }
}

fn keyed_hash(key: &[u8], value: &Value) -> String {
    match value {
        // Hash a string's bytes, not its JSON quoting, and a number's
        // canonical spelling (`1.0` and `1` alike), so the digest is
        // reproducible by anyone holding the key.
        Value::String(s) => keyed_hash_bytes(key, s.as_bytes()),
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() => {
                let mut text = String::with_capacity(24);
                crate::input::write_number(f, &mut text);
                keyed_hash_bytes(key, text.as_bytes())
            }
            _ => keyed_hash_bytes(key, n.to_string().as_bytes()),
        },
        other => keyed_hash_bytes(key, other.to_string().as_bytes()),
    }
}

fn keyed_hash_bytes(key: &[u8], bytes: &[u8]) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(key) else {
        return String::new();
    };
    mac.update(bytes);
    hex(&mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rules() -> BTreeMap<String, RedactRule> {
        BTreeMap::from([
            ("card".to_owned(), RedactRule::Drop),
            ("email".to_owned(), RedactRule::Hash),
            ("amount".to_owned(), RedactRule::Keep),
            ("absent".to_owned(), RedactRule::Hash),
        ])
    }

    fn input() -> Map<String, Value> {
        match json!({"card": "4111111111111111", "email": "a@b.c", "amount": 12.5, "country": "FR"})
        {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn drops_hashes_and_keeps() {
        let mut m = input();
        redact(&mut m, &rules(), b"secret");
        assert!(!m.contains_key("card"));
        assert!(!m.contains_key("absent"));
        assert_eq!(m.get("amount"), Some(&json!(12.5)));
        assert_eq!(m.get("country"), Some(&json!("FR")));
        let hashed = m.get("email").and_then(Value::as_str).unwrap_or_default();
        assert_eq!(hashed.len(), 64);
        assert!(!hashed.contains("a@b.c"));
    }

    #[test]
    fn hash_is_keyed_and_deterministic() {
        let mut a = input();
        let mut b = input();
        let mut c = input();
        redact(&mut a, &rules(), b"k1");
        redact(&mut b, &rules(), b"k1");
        redact(&mut c, &rules(), b"k2");
        assert_eq!(a.get("email"), b.get("email"));
        assert_ne!(a.get("email"), c.get("email"));
    }

    #[test]
    fn known_hmac_vector() {
        // RFC 4231 test case 2.
        let got = keyed_hash(b"Jefe", &json!("what do ya want for nothing?"));
        assert_eq!(
            got,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn numbers_hash_by_value() {
        let r = Redactor::new(rules(), b"k".to_vec());
        assert_eq!(r.hash_number(12.0), keyed_hash(b"k", &json!(12)));
        assert_eq!(r.hash_number(12.0), keyed_hash(b"k", &json!(12.0)));
        assert_eq!(r.hash_number(0.25), keyed_hash(b"k", &json!(0.25)));
        assert_ne!(r.hash_number(0.25), r.hash_number(0.5));
        assert_eq!(r.rule("card"), RedactRule::Drop);
        assert_eq!(r.rule("unlisted"), RedactRule::Keep);
    }

    #[test]
    fn redactor_wraps_rules_and_hides_key() {
        let r = Redactor::new(rules(), b"k".to_vec());
        assert!(!r.is_noop());
        assert!(!format!("{r:?}").contains("\"k\""));
        let mut m = input();
        r.apply(&mut m);
        assert!(!m.contains_key("card"));
        assert!(Redactor::default().is_noop());
    }
}
