//! Values during evaluation. They keep their JSON types (numbers stay
//! numbers), borrow from the event where they can, and know how the
//! language compares and orders them.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::hash::{Hash, Hasher};

use serde_json::Value as Json;

use super::time::format_rfc3339;

/// A value of a field or expression.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Cow<'a, str>),
    /// Milliseconds since the epoch: written as RFC 3339, compared as a number.
    Time(i64),
    /// A JSON object or array, as its text.
    Raw(Cow<'a, str>),
}

impl<'a> Value<'a> {
    pub fn into_owned(self) -> Value<'static> {
        match self {
            Value::Null => Value::Null,
            Value::Bool(b) => Value::Bool(b),
            Value::Int(n) => Value::Int(n),
            Value::Float(x) => Value::Float(x),
            Value::Time(t) => Value::Time(t),
            Value::Str(s) => Value::Str(Cow::Owned(s.into_owned())),
            Value::Raw(s) => Value::Raw(Cow::Owned(s.into_owned())),
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// A float result, as an integer when integral (so `floor(2.5)` is `2`).
    pub fn integral(x: f64) -> Value<'static> {
        if x.fract() == 0.0 && x.abs() < 9.0e15 {
            Value::Int(x as i64)
        } else {
            Value::from_f64(x)
        }
    }

    pub fn from_f64(x: f64) -> Value<'static> {
        if x.is_finite() {
            Value::Float(x)
        } else {
            Value::Null
        }
    }

    /// The number this value stands for; strings that hold a number count.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(n) | Value::Time(n) => Some(*n as f64),
            Value::Float(x) => Some(*x),
            Value::Str(s) => parse_number(s),
            _ => None,
        }
    }

    /// The value as a whole number, when it is one.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(n) | Value::Time(n) => Some(*n),
            Value::Float(x) if x.fract() == 0.0 && x.abs() < 9.0e18 => Some(*x as i64),
            Value::Str(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    /// The value as a number of the language: an integer or a float.
    pub fn as_number(&self) -> Option<Value<'static>> {
        match self {
            Value::Int(n) | Value::Time(n) => Some(Value::Int(*n)),
            Value::Float(x) => Some(Value::Float(*x)),
            Value::Str(s) => {
                let t = s.trim();
                match t.parse::<i64>() {
                    Ok(n) => Some(Value::Int(n)),
                    Err(_) => parse_number(t).map(Value::Float),
                }
            }
            _ => None,
        }
    }

    /// The text of the value for string functions and comparisons.
    pub fn text(&self) -> Option<Cow<'_, str>> {
        match self {
            Value::Null => None,
            Value::Bool(b) => Some(Cow::Borrowed(if *b { "true" } else { "false" })),
            Value::Int(n) => Some(Cow::Owned(n.to_string())),
            Value::Float(x) => Some(Cow::Owned(x.to_string())),
            Value::Time(t) => Some(Cow::Owned(format_rfc3339(*t))),
            Value::Str(s) | Value::Raw(s) => Some(Cow::Borrowed(s)),
        }
    }

    /// Whether `filter` keeps a row with this value.
    pub fn truthy(&self) -> bool {
        match self {
            Value::Bool(b) => *b,
            Value::Int(n) => *n != 0,
            Value::Float(x) => *x != 0.0,
            _ => false,
        }
    }

    /// The value in a result row.
    pub fn to_json(&self) -> Json {
        match self {
            Value::Null => Json::Null,
            Value::Bool(b) => Json::Bool(*b),
            Value::Int(n) => Json::from(*n),
            Value::Float(x) => serde_json::Number::from_f64(*x).map_or(Json::Null, Json::Number),
            Value::Str(s) => Json::String(s.to_string()),
            Value::Time(t) => Json::String(format_rfc3339(*t)),
            Value::Raw(s) => {
                serde_json::from_str(s).unwrap_or_else(|_| Json::String(s.to_string()))
            }
        }
    }

    fn is_numeric_type(&self) -> bool {
        matches!(self, Value::Int(_) | Value::Float(_) | Value::Time(_))
    }
}

fn parse_number(s: &str) -> Option<f64> {
    let t = s.trim();
    let first = t.as_bytes().first()?;
    if !(first.is_ascii_digit() || *first == b'-' || *first == b'+' || *first == b'.') {
        return None;
    }
    t.parse::<f64>().ok().filter(|x| x.is_finite())
}

/// How `= != < <= > >=` compare: as numbers when one side is a number and
/// the other is or holds one, as text otherwise; `None` when either side is
/// missing (the comparison is then false).
pub(crate) fn compare(a: &Value<'_>, b: &Value<'_>) -> Option<Ordering> {
    if a.is_null() || b.is_null() {
        return None;
    }
    if let (Value::Int(x) | Value::Time(x), Value::Int(y) | Value::Time(y)) = (a, b) {
        return Some(x.cmp(y));
    }
    if (a.is_numeric_type() || b.is_numeric_type())
        && let (Some(x), Some(y)) = (a.as_f64(), b.as_f64())
    {
        return x.partial_cmp(&y);
    }
    if let (Value::Bool(x), Value::Bool(y)) = (a, b) {
        return Some(x.cmp(y));
    }
    let (x, y) = (a.text()?, b.text()?);
    Some(x.as_ref().cmp(y.as_ref()))
}

/// The order of `sort` (ascending): missing values first, then values that
/// are not numbers in natural order (runs of digits compared by length,
/// then value), then numbers by value.
pub(crate) fn sort_cmp(a: &Value<'_>, b: &Value<'_>) -> Ordering {
    let (na, nb) = (a.as_f64(), b.as_f64());
    let rank = |v: &Value<'_>, n: Option<f64>| match (v, n) {
        (Value::Null, _) => 0,
        (_, None) => 1,
        (_, Some(_)) => 2,
    };
    match rank(a, na).cmp(&rank(b, nb)) {
        Ordering::Equal => {}
        other => return other,
    }
    match (na, nb) {
        (Some(x), Some(y)) => {
            if let (Some(i), Some(j)) = (a.as_i64(), b.as_i64()) {
                i.cmp(&j)
            } else {
                x.total_cmp(&y)
            }
        }
        _ => match (a.text(), b.text()) {
            (Some(x), Some(y)) => natural_cmp(&x, &y),
            _ => Ordering::Equal,
        },
    }
}

fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        match (a.first(), b.first()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let da = a.iter().take_while(|c| c.is_ascii_digit()).count();
                let db = b.iter().take_while(|c| c.is_ascii_digit()).count();
                let ord = da.cmp(&db).then_with(|| a[..da].cmp(&b[..db]));
                if ord != Ordering::Equal {
                    return ord;
                }
                a = &a[da..];
                b = &b[db..];
            }
            (Some(x), Some(y)) => {
                if x != y {
                    // Byte order of UTF-8 is the order of code points.
                    return x.cmp(y);
                }
                a = &a[1..];
                b = &b[1..];
            }
        }
    }
}

/// Feeds a group or distinct key: numerically equal values hash alike.
pub(crate) fn hash_key<H: Hasher>(v: &Value<'_>, h: &mut H) {
    match v {
        Value::Null => 0u8.hash(h),
        Value::Bool(b) => {
            1u8.hash(h);
            b.hash(h);
        }
        Value::Int(n) | Value::Time(n) => {
            2u8.hash(h);
            n.hash(h);
        }
        Value::Float(x) => {
            if x.fract() == 0.0 && x.abs() < 9.0e18 {
                2u8.hash(h);
                (*x as i64).hash(h);
            } else {
                3u8.hash(h);
                x.to_bits().hash(h);
            }
        }
        Value::Str(s) | Value::Raw(s) => {
            4u8.hash(h);
            s.hash(h);
        }
    }
}

/// Equality of group and distinct keys, consistent with [`hash_key`].
pub(crate) fn key_eq(a: &Value<'_>, b: &Value<'_>) -> bool {
    match (a, b) {
        (Value::Null, Value::Null) => true,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Str(x) | Value::Raw(x), Value::Str(y) | Value::Raw(y)) => x == y,
        (Value::Float(x), Value::Float(y)) => x.to_bits() == y.to_bits() || x == y,
        (Value::Int(x) | Value::Time(x), Value::Int(y) | Value::Time(y)) => x == y,
        (Value::Int(n) | Value::Time(n), Value::Float(x))
        | (Value::Float(x), Value::Int(n) | Value::Time(n)) => {
            x.fract() == 0.0 && x.abs() < 9.0e18 && *x as i64 == *n
        }
        _ => false,
    }
}

/// An owned distinct key for `count_distinct`.
#[derive(Debug, Clone)]
pub(crate) struct Key(pub Value<'static>);

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        key_eq(&self.0, &other.0)
    }
}

impl Eq for Key {}

impl Hash for Key {
    fn hash<H: Hasher>(&self, h: &mut H) {
        hash_key(&self.0, h);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> Value<'_> {
        Value::Str(Cow::Borrowed(x))
    }

    #[test]
    fn compares_numbers_with_numeric_strings() {
        assert_eq!(compare(&Value::Int(500), &s("500")), Some(Ordering::Equal));
        assert_eq!(
            compare(&s("1000"), &Value::Int(500)),
            Some(Ordering::Greater)
        );
        assert_eq!(
            compare(&Value::Float(1.5), &Value::Int(1)),
            Some(Ordering::Greater)
        );
        assert_eq!(compare(&s("b"), &s("a")), Some(Ordering::Greater));
        assert_eq!(compare(&Value::Null, &Value::Int(1)), None);
        assert_eq!(compare(&s("abc"), &Value::Int(1)).map(|_| ()), Some(()));
    }

    #[test]
    fn sorts_like_the_cloud() {
        let mut v = [
            s("a12"),
            Value::Int(2),
            s("A"),
            s("5A"),
            s("111A"),
            Value::Null,
            s("10"),
            s("a9"),
        ];
        v.sort_by(sort_cmp);
        let texts: Vec<_> = v.iter().map(|x| x.text().map(|t| t.into_owned())).collect();
        let want = [
            None,
            Some("5A"),
            Some("111A"),
            Some("A"),
            Some("a9"),
            Some("a12"),
            Some("2"),
            Some("10"),
        ];
        assert_eq!(texts, want.map(|w| w.map(str::to_owned)));
    }

    #[test]
    fn keys_of_equal_numbers_are_equal() {
        assert!(key_eq(&Value::Int(3), &Value::Float(3.0)));
        assert!(!key_eq(&Value::Int(3), &s("3")));
        assert_eq!(Key(Value::Int(3)), Key(Value::Float(3.0)));
    }

    #[test]
    fn json_keeps_types() {
        assert_eq!(Value::Int(5).to_json(), serde_json::json!(5));
        assert_eq!(Value::Float(0.5).to_json(), serde_json::json!(0.5));
        assert_eq!(
            Value::Time(0).to_json(),
            serde_json::json!("1970-01-01T00:00:00.000Z")
        );
        assert_eq!(
            Value::Raw(Cow::Borrowed("[1,2]")).to_json(),
            serde_json::json!([1, 2])
        );
        assert_eq!(Value::Float(f64::NAN).to_json(), Json::Null);
    }
}
