//! `stats`: groups keyed by the `by` values and the state of each
//! aggregate, with the memory they may take bounded.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, DefaultHasher, Hasher};

use super::ast::AggFunc;
use super::error::ExecError;
use super::eval::{CExpr, Ctx, Row};
use super::value::{Key, Value, hash_key, key_eq, sort_cmp};

/// One aggregate, compiled.
#[derive(Debug, Clone)]
pub(crate) struct AggSpec {
    pub func: AggFunc,
    pub arg: Option<CExpr>,
    pub percentile: f64,
}

/// The state of one aggregate in one group.
#[derive(Debug, Clone)]
enum State {
    Count(u64),
    Distinct(HashSet<Key>),
    Sum {
        int: i64,
        float: f64,
        all_int: bool,
        any: bool,
    },
    Avg {
        sum: f64,
        n: u64,
    },
    Extreme(Option<Value<'static>>),
    Pct {
        values: Vec<f64>,
        all_int: bool,
    },
    Stddev {
        n: u64,
        mean: f64,
        m2: f64,
    },
    Pick(Option<(i64, Value<'static>)>),
}

impl State {
    fn new(func: AggFunc) -> State {
        match func {
            AggFunc::Count => State::Count(0),
            AggFunc::CountDistinct => State::Distinct(HashSet::new()),
            AggFunc::Sum => State::Sum {
                int: 0,
                float: 0.0,
                all_int: true,
                any: false,
            },
            AggFunc::Avg => State::Avg { sum: 0.0, n: 0 },
            AggFunc::Min | AggFunc::Max => State::Extreme(None),
            AggFunc::Pct => State::Pct {
                values: Vec::new(),
                all_int: true,
            },
            AggFunc::Stddev => State::Stddev {
                n: 0,
                mean: 0.0,
                m2: 0.0,
            },
            AggFunc::Earliest | AggFunc::Latest => State::Pick(None),
        }
    }
}

#[derive(Debug, Clone)]
struct Group {
    key: Vec<Value<'static>>,
    states: Vec<State>,
    /// The next group with the same key hash.
    next: Option<usize>,
}

/// A hasher for keys that are already hashes.
#[derive(Debug, Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// The bounds a `stats` works within.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bounds {
    pub max_groups: usize,
    pub max_values: usize,
}

/// A running `stats`.
#[derive(Debug, Clone)]
pub(crate) struct Aggregator {
    by: Vec<CExpr>,
    aggs: Vec<AggSpec>,
    groups: Vec<Group>,
    index: HashMap<u64, usize, BuildHasherDefault<PassThrough>>,
    /// The group of the previous row, which the next often shares.
    last: Option<(u64, usize)>,
    key: Vec<Value<'static>>,
    bounds: Bounds,
    /// Values held by `pct` and `count_distinct` across groups.
    values: usize,
}

impl Aggregator {
    pub fn new(by: Vec<CExpr>, aggs: Vec<AggSpec>, bounds: Bounds) -> Aggregator {
        Aggregator {
            by,
            aggs,
            groups: Vec::new(),
            index: HashMap::default(),
            last: None,
            key: Vec::new(),
            bounds,
            values: 0,
        }
    }

    pub fn push(&mut self, row: &mut Row<'_>, cx: &mut Ctx<'_>) -> Result<(), ExecError> {
        let mut h = DefaultHasher::new();
        // Reuses the buffer of the previous row (an in-place collect).
        let mut spare = std::mem::take(&mut self.key);
        spare.clear();
        let mut key: Vec<Value<'_>> = spare;
        for e in &self.by {
            let v = e.eval(row, cx);
            hash_key(&v, &mut h);
            key.push(v);
        }
        let hash = h.finish();
        let g = match self.find(hash, &key) {
            Some(g) => {
                key.clear();
                self.key = key.into_iter().map(Value::into_owned).collect();
                g
            }
            None => {
                if self.groups.len() >= self.bounds.max_groups {
                    return Err(ExecError::TooManyGroups {
                        max: self.bounds.max_groups,
                    });
                }
                let g = self.groups.len();
                let next = self.index.insert(hash, g);
                self.groups.push(Group {
                    key: key.into_iter().map(Value::into_owned).collect(),
                    states: self.aggs.iter().map(|a| State::new(a.func)).collect(),
                    next,
                });
                g
            }
        };
        self.last = Some((hash, g));
        let ts = row.timestamp();
        for i in 0..self.aggs.len() {
            let v = match &self.aggs[i].arg {
                Some(e) => e.eval(row, cx),
                None => Value::Bool(true),
            };
            let Some(state) = self.groups.get_mut(g).and_then(|gr| gr.states.get_mut(i)) else {
                continue;
            };
            let added = update(state, self.aggs[i].func, v, ts);
            if added {
                self.values += 1;
                if self.values > self.bounds.max_values {
                    return Err(ExecError::TooManyValues {
                        max: self.bounds.max_values,
                    });
                }
            }
        }
        Ok(())
    }

    fn find(&self, hash: u64, key: &[Value<'_>]) -> Option<usize> {
        let same = |g: usize| {
            self.groups.get(g).is_some_and(|gr| {
                gr.key.len() == key.len() && gr.key.iter().zip(key).all(|(a, b)| key_eq(a, b))
            })
        };
        if let Some((h, g)) = self.last
            && h == hash
            && same(g)
        {
            return Some(g);
        }
        let mut at = self.index.get(&hash).copied();
        while let Some(g) = at {
            if same(g) {
                return Some(g);
            }
            at = self.groups.get(g).and_then(|gr| gr.next);
        }
        None
    }

    /// The result rows (by values, then aggregates), ordered by their by
    /// values ascending; one row when there is no `by`.
    pub fn finish(self) -> Vec<Vec<Value<'static>>> {
        let mut groups = self.groups;
        if groups.is_empty() && self.by.is_empty() {
            groups.push(Group {
                key: Vec::new(),
                states: self.aggs.iter().map(|a| State::new(a.func)).collect(),
                next: None,
            });
        }
        groups.sort_by(|a, b| {
            a.key
                .iter()
                .zip(&b.key)
                .map(|(x, y)| sort_cmp(x, y))
                .find(|o| o.is_ne())
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        groups
            .into_iter()
            .map(|g| {
                let mut row = g.key;
                for (state, spec) in g.states.into_iter().zip(&self.aggs) {
                    row.push(result(state, spec.percentile));
                }
                row
            })
            .collect()
    }
}

/// Adds `v` to the state; true when it now holds one more value in memory.
fn update(state: &mut State, func: AggFunc, v: Value<'_>, ts: Option<i64>) -> bool {
    if v.is_null() {
        return false;
    }
    match state {
        State::Count(n) => *n += 1,
        State::Distinct(set) => return set.insert(Key(v.into_owned())),
        State::Sum {
            int,
            float,
            all_int,
            any,
        } => {
            *any = true;
            match v.as_number() {
                Some(Value::Int(n)) if *all_int => match int.checked_add(n) {
                    Some(s) => *int = s,
                    None => {
                        *all_int = false;
                        *float = *int as f64 + n as f64;
                    }
                },
                Some(n) => {
                    if *all_int {
                        *all_int = false;
                        *float = *int as f64;
                    }
                    *float += n.as_f64().unwrap_or(0.0);
                }
                None => {}
            }
        }
        State::Avg { sum, n } => {
            if let Some(x) = v.as_f64() {
                *sum += x;
                *n += 1;
            }
        }
        State::Extreme(best) => {
            if let Some(x) = v.as_number() {
                let better = match best {
                    None => true,
                    Some(b) => {
                        let ord = sort_cmp(&x, b);
                        if func == AggFunc::Min {
                            ord.is_lt()
                        } else {
                            ord.is_gt()
                        }
                    }
                };
                if better {
                    *best = Some(x);
                }
            }
        }
        State::Pct { values, all_int } => {
            if let Some(x) = v.as_number() {
                *all_int &= matches!(x, Value::Int(_));
                values.push(x.as_f64().unwrap_or(0.0));
                return true;
            }
        }
        State::Stddev { n, mean, m2 } => {
            if let Some(x) = v.as_f64() {
                *n += 1;
                let d = x - *mean;
                *mean += d / *n as f64;
                *m2 += d * (x - *mean);
            }
        }
        State::Pick(best) => {
            let t = ts.unwrap_or(0);
            let better = match best {
                None => true,
                Some((bt, _)) => {
                    if func == AggFunc::Earliest {
                        t < *bt
                    } else {
                        t >= *bt
                    }
                }
            };
            if better {
                *best = Some((t, v.into_owned()));
            }
        }
    }
    false
}

fn result(state: State, percentile: f64) -> Value<'static> {
    match state {
        State::Count(n) => Value::Int(i64::try_from(n).unwrap_or(i64::MAX)),
        State::Distinct(set) => Value::Int(i64::try_from(set.len()).unwrap_or(i64::MAX)),
        State::Sum {
            int,
            float,
            all_int,
            any,
        } => match (any, all_int) {
            (false, _) => Value::Null,
            (true, true) => Value::Int(int),
            (true, false) => Value::from_f64(float),
        },
        State::Avg { sum, n } if n > 0 => Value::from_f64(sum / n as f64),
        State::Avg { .. } => Value::Null,
        State::Extreme(v) => v.unwrap_or(Value::Null),
        State::Pct {
            mut values,
            all_int,
        } => {
            if values.is_empty() {
                return Value::Null;
            }
            values.sort_unstable_by(f64::total_cmp);
            // Nearest rank: the smallest value with at least p% of values at or below it.
            let rank = (percentile / 100.0 * values.len() as f64).ceil() as usize;
            let x = values
                .get(rank.max(1) - 1)
                .or(values.last())
                .copied()
                .unwrap_or(0.0);
            if all_int {
                Value::integral(x)
            } else {
                Value::from_f64(x)
            }
        }
        State::Stddev { n, m2, .. } => match n {
            0 => Value::Null,
            1 => Value::Float(0.0),
            _ => Value::from_f64((m2 / (n - 1) as f64).sqrt()),
        },
        State::Pick(v) => v.map_or(Value::Null, |(_, v)| v),
    }
}
