//! The scalar functions of the language. A function given a missing or
//! unsuitable argument answers `null` (a missing field), never an error.

use std::borrow::Cow;

use super::ast::{Func, Span};
use super::time;
use super::value::{Value, sort_cmp};

/// Applies `func` to its evaluated arguments; `span` is the time span
/// literal among them (for `bin`, `datefloor`, `dateceil`).
pub(crate) fn call<'a>(func: Func, args: Vec<Value<'a>>, span: Option<Span>) -> Value<'a> {
    let num = |v: &Value<'_>| v.as_number();
    let first = args.first().cloned().unwrap_or(Value::Null);
    match func {
        Func::Abs => match num(&first) {
            Some(Value::Int(n)) => n
                .checked_abs()
                .map_or(Value::Float((n as f64).abs()), Value::Int),
            Some(Value::Float(x)) => Value::Float(x.abs()),
            _ => Value::Null,
        },
        Func::Ceil => float1(&first, f64::ceil, true),
        Func::Floor => float1(&first, f64::floor, true),
        Func::Log => float1(&first, |x| if x > 0.0 { x.ln() } else { f64::NAN }, false),
        Func::Sqrt => float1(
            &first,
            |x| if x >= 0.0 { x.sqrt() } else { f64::NAN },
            false,
        ),
        Func::Greatest | Func::Least => {
            let mut best: Option<Value<'static>> = None;
            for v in args.iter().filter_map(num) {
                let better = match &best {
                    None => true,
                    Some(b) => {
                        let ord = sort_cmp(&v, b);
                        if func == Func::Greatest {
                            ord.is_gt()
                        } else {
                            ord.is_lt()
                        }
                    }
                };
                if better {
                    best = Some(v);
                }
            }
            best.unwrap_or(Value::Null)
        }
        Func::IsPresent => Value::Bool(!first.is_null()),
        Func::Coalesce => args
            .into_iter()
            .find(|v| !v.is_null())
            .unwrap_or(Value::Null),
        Func::IsEmpty => Value::Bool(first.text().is_none_or(|t| t.is_empty())),
        Func::IsBlank => Value::Bool(first.text().is_none_or(|t| t.trim().is_empty())),
        Func::Concat => {
            let mut out = String::new();
            for v in &args {
                if let Some(t) = v.text() {
                    out.push_str(&t);
                }
            }
            Value::Str(Cow::Owned(out))
        }
        Func::Trim => map_text(first, |t| t.trim().to_owned()),
        Func::ToUpper => map_text(first, str::to_uppercase),
        Func::ToLower => map_text(first, str::to_lowercase),
        Func::Strlen => match first.text() {
            Some(t) => Value::Int(i64::try_from(t.chars().count()).unwrap_or(i64::MAX)),
            None => Value::Null,
        },
        Func::Substr => {
            let Some(text) = first.text() else {
                return Value::Null;
            };
            let start = args.get(1).and_then(Value::as_i64).unwrap_or(0).max(0);
            let start = usize::try_from(start).unwrap_or(usize::MAX);
            let chars = text.chars().skip(start);
            let out: String = match args.get(2).map(Value::as_i64) {
                None => chars.collect(),
                Some(Some(len)) => chars
                    .take(usize::try_from(len.max(0)).unwrap_or(usize::MAX))
                    .collect(),
                Some(None) => return Value::Null,
            };
            Value::Str(Cow::Owned(out))
        }
        Func::Replace => {
            let (Some(text), Some(search), Some(with)) = (
                first.text(),
                args.get(1).and_then(Value::text),
                args.get(2).and_then(Value::text),
            ) else {
                return Value::Null;
            };
            if search.is_empty() {
                return Value::Str(Cow::Owned(text.into_owned()));
            }
            Value::Str(Cow::Owned(text.replace(search.as_ref(), &with)))
        }
        Func::StrContains => match (first.text(), args.get(1).and_then(Value::text)) {
            (Some(t), Some(sub)) => Value::Int(i64::from(t.contains(sub.as_ref()))),
            _ => Value::Null,
        },
        Func::DateFloor | Func::DateCeil | Func::Bin => {
            let (Some(ms), Some(span)) = (time_of(&first), span) else {
                return Value::Null;
            };
            Value::Time(if func == Func::DateCeil {
                time::ceil(ms, span)
            } else {
                time::floor(ms, span)
            })
        }
    }
}

/// The milliseconds of a timestamp (a time, a number of ms, or RFC 3339 text).
fn time_of(v: &Value<'_>) -> Option<i64> {
    match v {
        Value::Time(t) | Value::Int(t) => Some(*t),
        Value::Float(x) if x.is_finite() => Some(*x as i64),
        Value::Str(s) => {
            let t =
                ::time::OffsetDateTime::parse(s, &::time::format_description::well_known::Rfc3339)
                    .ok()?;
            i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
        }
        _ => None,
    }
}

fn float1(v: &Value<'_>, f: impl Fn(f64) -> f64, integral: bool) -> Value<'static> {
    match v.as_number() {
        Some(Value::Int(n)) if integral => Value::Int(n),
        Some(n) => match n.as_f64().map(f) {
            Some(x) if integral => Value::integral(x),
            Some(x) => Value::from_f64(x),
            None => Value::Null,
        },
        None => Value::Null,
    }
}

fn map_text(v: Value<'_>, f: impl Fn(&str) -> String) -> Value<'static> {
    match v.text() {
        Some(t) => Value::Str(Cow::Owned(f(&t))),
        None => Value::Null,
    }
}
