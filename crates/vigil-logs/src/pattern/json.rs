//! JSON patterns: the event is parsed once with `serde_json`, then the
//! compiled expression walks it. Edge rules (SEMANTICS §3.1): the message
//! must be a JSON object; a selector landing on an object or array never
//! matches; an index out of range or into a non-array is false; `NOT
//! EXISTS` holds only when a key on the path is absent.

use serde_json::Value;

use super::PatternError;
use super::ast::{JsonExpr, JsonTest, Selector, Step};
use super::compare::Compiled;

#[derive(Debug)]
pub(crate) struct JsonMatcher {
    expr: Expr,
    /// The pattern's distinct selectors, in order of first use.
    pub(crate) selectors: Vec<Selector>,
}

#[derive(Debug)]
enum Expr {
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Cond { selector: usize, test: Test },
}

#[derive(Debug)]
enum Test {
    Compare(Compiled),
    IsNull,
    NotExists,
    IsTrue,
    IsFalse,
}

/// Where a selector lands.
pub(crate) enum Found<'v> {
    Value(&'v Value),
    /// A key on the path is absent.
    Absent,
    /// An index out of range, or a step into a value of the wrong kind.
    Invalid,
}

impl JsonMatcher {
    pub(crate) fn new(expr: &JsonExpr) -> Result<Self, PatternError> {
        let mut selectors = Vec::new();
        let expr = compile(expr, &mut selectors)?;
        Ok(JsonMatcher { expr, selectors })
    }

    /// Parses `message`; `Some(document)` when it is a JSON object that
    /// satisfies the expression.
    pub(crate) fn matches(&self, message: &str) -> Option<Value> {
        // Cheap rejection of the common non-JSON line before the parser.
        if !message.trim_start().starts_with('{') {
            return None;
        }
        let doc: Value = serde_json::from_str(message).ok()?;
        (doc.is_object() && self.eval(&self.expr, &doc)).then_some(doc)
    }

    fn eval(&self, expr: &Expr, doc: &Value) -> bool {
        match expr {
            Expr::And(all) => all.iter().all(|e| self.eval(e, doc)),
            Expr::Or(all) => all.iter().any(|e| self.eval(e, doc)),
            Expr::Cond { selector, test } => {
                let Some(sel) = self.selectors.get(*selector) else {
                    return false;
                };
                check(test, resolve(doc, sel))
            }
        }
    }
}

fn compile(expr: &JsonExpr, selectors: &mut Vec<Selector>) -> Result<Expr, PatternError> {
    Ok(match expr {
        JsonExpr::And(all) => Expr::And(
            all.iter()
                .map(|e| compile(e, selectors))
                .collect::<Result<_, _>>()?,
        ),
        JsonExpr::Or(all) => Expr::Or(
            all.iter()
                .map(|e| compile(e, selectors))
                .collect::<Result<_, _>>()?,
        ),
        JsonExpr::Cond(cond) => {
            let selector = match selectors.iter().position(|s| *s == cond.selector) {
                Some(i) => i,
                None => {
                    selectors.push(cond.selector.clone());
                    selectors.len() - 1
                }
            };
            let test = match &cond.test {
                JsonTest::Compare(c) => Test::Compare(Compiled::new(c)?),
                JsonTest::IsNull => Test::IsNull,
                JsonTest::NotExists => Test::NotExists,
                JsonTest::IsTrue => Test::IsTrue,
                JsonTest::IsFalse => Test::IsFalse,
            };
            Expr::Cond { selector, test }
        }
    })
}

fn check(test: &Test, found: Found<'_>) -> bool {
    let value = match found {
        Found::Absent => return matches!(test, Test::NotExists),
        Found::Invalid => return false,
        Found::Value(v) => v,
    };
    match (test, value) {
        (_, Value::Object(_) | Value::Array(_)) => false,
        (Test::NotExists, _) => false,
        (Test::IsNull, v) => v.is_null(),
        (Test::IsTrue, v) => v.as_bool() == Some(true),
        (Test::IsFalse, v) => v.as_bool() == Some(false),
        (Test::Compare(c), Value::String(s)) => c.on_str(s),
        (Test::Compare(c), Value::Number(n)) => n.as_f64().is_some_and(|n| c.on_num(n)),
        (Test::Compare(c), Value::Bool(_) | Value::Null) => c.on_other_scalar(),
    }
}

/// Walks `sel` from the document's root.
pub(crate) fn resolve<'v>(doc: &'v Value, sel: &Selector) -> Found<'v> {
    let mut cur = doc;
    for step in &sel.0 {
        cur = match (step, cur) {
            (Step::Key(k), Value::Object(map)) => match map.get(k) {
                Some(v) => v,
                None => return Found::Absent,
            },
            (Step::Index(i), Value::Array(items)) => {
                match usize::try_from(*i).ok().and_then(|i| items.get(i)) {
                    Some(v) => v,
                    None => return Found::Invalid,
                }
            }
            _ => return Found::Invalid,
        };
    }
    Found::Value(cur)
}

/// The scalar a selector lands on (what a match extracts); `None` for
/// objects, arrays and paths that do not resolve.
pub(crate) fn scalar<'v>(doc: &'v Value, sel: &Selector) -> Option<&'v Value> {
    match resolve(doc, sel) {
        Found::Value(v @ (Value::String(_) | Value::Number(_) | Value::Bool(_) | Value::Null)) => {
            Some(v)
        }
        _ => None,
    }
}
