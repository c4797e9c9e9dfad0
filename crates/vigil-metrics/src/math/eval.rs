//! Evaluation of a parsed expression against the series of the ids it
//! refers to (SEMANTICS §1.3).

use std::borrow::Cow;
use std::collections::HashMap;

use super::ast::{AggArg, BinOp, Expr, FillWith, Func1};
use super::series::Series;

/// The result of an expression: a scalar (`None` when it has no value, as
/// `1 / 0`) or a series.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    /// One number, or none.
    Scalar(Option<f64>),
    /// A series (borrowed when it is an id's series unchanged).
    Series(Cow<'a, Series>),
}

impl Value<'_> {
    /// As a series: a scalar becomes a constant series over `grid` (no
    /// points when the scalar has no value).
    pub fn into_series(self, grid: &[i64]) -> Series {
        match self {
            Value::Scalar(Some(v)) => Series::constant(grid, v),
            Value::Scalar(None) => Series::default(),
            Value::Series(s) => s.into_owned(),
        }
    }
}

/// Where an expression finds the series of an id.
pub trait Lookup {
    /// The series of `id`, if there is one.
    fn lookup(&self, id: &str) -> Option<&Series>;
}

impl Lookup for HashMap<String, Series> {
    fn lookup(&self, id: &str) -> Option<&Series> {
        self.get(id)
    }
}

impl Lookup for HashMap<&str, Series> {
    fn lookup(&self, id: &str) -> Option<&Series> {
        self.get(id)
    }
}

/// An id with no series at evaluation time (validation rules this out for
/// query sets).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no series for id `{0}`")]
pub struct UnknownId(pub String);

fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

/// Evaluates `expr`; `grid` is the period grid of the query range (used by
/// `FILL` and to spread a scalar over time).
pub fn evaluate<'a>(
    expr: &Expr,
    env: &'a dyn Lookup,
    grid: &[i64],
) -> Result<Value<'a>, UnknownId> {
    let eval = |e: &Expr| evaluate(e, env, grid);
    Ok(match expr {
        Expr::Number(n) => Value::Scalar(finite(*n)),
        Expr::Id(id) => Value::Series(Cow::Borrowed(
            env.lookup(id).ok_or_else(|| UnknownId(id.clone()))?,
        )),
        Expr::Neg(x) => unary(eval(x)?, |v| -v),
        Expr::Not(x) => unary(eval(x)?, |v| if v == 0.0 { 1.0 } else { 0.0 }),
        Expr::Binary { op, lhs, rhs } => binary(*op, eval(lhs)?, eval(rhs)?),
        Expr::Agg {
            func,
            arg: AggArg::One(x),
        } => unary(eval(x)?, |v| func.apply(&[v])),
        Expr::Agg {
            func,
            arg: AggArg::List(xs),
        } => {
            let values = xs.iter().map(eval).collect::<Result<Vec<_>, _>>()?;
            let mut series = Vec::new();
            let mut scalars = Vec::new();
            for v in &values {
                match v {
                    Value::Series(s) => series.push(s.as_ref()),
                    Value::Scalar(Some(x)) => scalars.push(*x),
                    Value::Scalar(None) => {}
                }
            }
            if series.is_empty() {
                Value::Scalar(
                    (!scalars.is_empty())
                        .then(|| func.apply(&scalars))
                        .and_then(finite),
                )
            } else {
                Value::Series(Cow::Owned(Series::combine(&series, &scalars, |v| {
                    func.apply(v)
                })))
            }
        }
        Expr::Fill { series, with } => {
            let s = eval(series)?.into_series(grid);
            let filled = match with {
                FillWith::Value(v) => match eval(v)? {
                    Value::Scalar(Some(c)) => s.fill(grid, |_, _, _| Some(c)),
                    _ => s,
                },
                FillWith::Repeat => s.fill(grid, |prev, _, _| prev.map(|p| p.1)),
                FillWith::Linear => s.fill(grid, |prev, t, next| {
                    let ((t0, v0), (t1, v1)) = (prev?, next?);
                    Some(v0 + (v1 - v0) * ((t - t0) as f64 / (t1 - t0) as f64))
                }),
            };
            Value::Series(Cow::Owned(filled))
        }
        Expr::If {
            cond,
            then,
            otherwise,
        } => {
            let cond = eval(cond)?;
            let then = eval(then)?;
            let otherwise = match otherwise {
                Some(o) => eval(o)?,
                None => Value::Scalar(None),
            };
            if_(cond, then, otherwise)
        }
        Expr::Call {
            func: Func1::Diff,
            arg,
        } => Value::Series(Cow::Owned(eval(arg)?.into_series(grid).diff())),
        Expr::Call {
            func: Func1::Rate,
            arg,
        } => Value::Series(Cow::Owned(eval(arg)?.into_series(grid).rate())),
        Expr::Call { func, arg } => unary(eval(arg)?, |v| func.apply(v)),
    })
}

fn unary<'a>(v: Value<'a>, f: impl Fn(f64) -> f64) -> Value<'a> {
    match v {
        Value::Scalar(x) => Value::Scalar(x.map(f).and_then(finite)),
        Value::Series(s) => Value::Series(Cow::Owned(s.into_owned().map(f))),
    }
}

fn binary<'a>(op: BinOp, a: Value<'a>, b: Value<'a>) -> Value<'a> {
    match (a, b) {
        (Value::Scalar(x), Value::Scalar(y)) => Value::Scalar(match (x, y) {
            (Some(x), Some(y)) => finite(op.apply(x, y)),
            _ => None,
        }),
        (Value::Series(s), Value::Scalar(y)) => Value::Series(Cow::Owned(match y {
            Some(y) => s.into_owned().map(|x| op.apply(x, y)),
            None => Series::default(),
        })),
        (Value::Scalar(x), Value::Series(s)) => Value::Series(Cow::Owned(match x {
            Some(x) => s.into_owned().map(|y| op.apply(x, y)),
            None => Series::default(),
        })),
        (Value::Series(a), Value::Series(b)) => {
            Value::Series(Cow::Owned(Series::zip_with(&a, &b, |x, y| op.apply(x, y))))
        }
    }
}

fn at(v: &Value<'_>, t: i64) -> Option<f64> {
    match v {
        Value::Scalar(x) => *x,
        Value::Series(s) => s.get(t),
    }
}

/// `IF` per point. With a series condition, over the condition's
/// timestamps; with a scalar one, over the union of the series branches'
/// timestamps. A point exists where the condition and the chosen branch
/// both have a value.
fn if_<'a>(cond: Value<'a>, then: Value<'a>, otherwise: Value<'a>) -> Value<'a> {
    let pick = |c: f64| if c != 0.0 { &then } else { &otherwise };
    let stamps: Vec<i64> = match (&cond, &then, &otherwise) {
        (Value::Series(c), _, _) => c.timestamps.clone(),
        (Value::Scalar(c), Value::Scalar(_), Value::Scalar(_)) => {
            return Value::Scalar(c.and_then(|c| at(pick(c), 0)));
        }
        (Value::Scalar(_), a, b) => {
            let mut ts: Vec<i64> = [a, b]
                .into_iter()
                .filter_map(|v| match v {
                    Value::Series(s) => Some(s.timestamps.iter().copied()),
                    Value::Scalar(_) => None,
                })
                .flatten()
                .collect();
            ts.sort_unstable();
            ts.dedup();
            ts
        }
    };
    let mut out = Series::default();
    for t in stamps {
        if let Some(v) = at(&cond, t).and_then(|c| at(pick(c), t)) {
            out.timestamps.push(t);
            out.values.push(v);
        }
    }
    Value::Series(Cow::Owned(out))
}

#[cfg(test)]
mod tests;
