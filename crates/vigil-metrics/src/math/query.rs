//! A query set: [`validate`] reports every problem at once; [`run`]
//! fetches each needed metric once and evaluates the expressions in
//! dependency order.

use std::collections::HashMap;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::error::MathError;
use super::eval::{Lookup, evaluate};
use super::parser::{Parsed, parse};
use super::series::{Range, Series};
use super::{MetricDataQuery, MetricStat};
use crate::Statistic;

/// The most entries one query set may hold.
pub const MAX_QUERIES: usize = 500;

/// One returned entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Output {
    /// The entry's id.
    pub id: String,
    /// The entry's label, or its id when it has none.
    pub label: String,
    /// Milliseconds, ascending.
    pub timestamps: Vec<i64>,
    /// One value per timestamp.
    pub values: Vec<f64>,
}

/// Whether `id` follows the id rule: a lowercase ASCII letter, then ASCII
/// letters, digits and `_`.
pub fn is_valid_id(id: &str) -> bool {
    let mut chars = id.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A validated query set: every expression parsed, ids resolved to indexes.
struct Plan {
    parsed: Vec<Option<Parsed>>,
    /// For each entry, the indexes of the entries its expression refers to.
    deps: Vec<Vec<usize>>,
}

/// Checks a query set and reports every problem found.
pub fn validate(queries: &[MetricDataQuery]) -> Result<(), Vec<MathError>> {
    plan(queries).map(|_| ())
}

fn plan(queries: &[MetricDataQuery]) -> Result<Plan, Vec<MathError>> {
    if queries.len() > MAX_QUERIES {
        return Err(vec![MathError::TooManyQueries {
            max: MAX_QUERIES,
            found: queries.len(),
        }]);
    }
    let mut errors = Vec::new();
    let mut index: HashMap<&str, usize> = HashMap::new();
    for (i, q) in queries.iter().enumerate() {
        if !is_valid_id(&q.id) {
            errors.push(MathError::InvalidId {
                field: format!("metrics[{i}].id"),
                id: q.id.clone(),
            });
        } else if let Some(&first) = index.get(q.id.as_str()) {
            errors.push(MathError::DuplicateId {
                field: format!("metrics[{i}].id"),
                id: q.id.clone(),
                first,
            });
        } else {
            index.insert(&q.id, i);
        }
    }

    let mut parsed = Vec::with_capacity(queries.len());
    let mut deps = Vec::with_capacity(queries.len());
    for (i, q) in queries.iter().enumerate() {
        let mut my_deps = Vec::new();
        let mut my_parsed = None;
        match (&q.expression, &q.metric_stat) {
            (Some(_), Some(_)) | (None, None) => errors.push(MathError::Shape {
                field: format!("metrics[{i}]"),
                found: if q.expression.is_some() {
                    "both"
                } else {
                    "neither"
                },
            }),
            (None, Some(stat)) => check_stat(i, stat, &mut errors),
            (Some(src), None) => match parse(src) {
                Err(error) => errors.push(MathError::Parse {
                    field: format!("metrics[{i}].expression"),
                    error,
                }),
                Ok(p) => {
                    for r in &p.references {
                        match index.get(r.id.as_str()) {
                            Some(&j) => {
                                if !my_deps.contains(&j) {
                                    my_deps.push(j);
                                }
                            }
                            None => errors.push(MathError::UnknownId {
                                field: format!("metrics[{i}].expression"),
                                id: r.id.clone(),
                                column: r.column,
                            }),
                        }
                    }
                    my_parsed = Some(p);
                }
            },
        }
        parsed.push(my_parsed);
        deps.push(my_deps);
    }
    find_cycles(queries, &deps, &mut errors);
    if errors.is_empty() {
        Ok(Plan { parsed, deps })
    } else {
        Err(errors)
    }
}

fn check_stat(i: usize, stat: &MetricStat, errors: &mut Vec<MathError>) {
    if let Err(message) = Statistic::from_str(&stat.stat) {
        errors.push(MathError::Statistic {
            field: format!("metrics[{i}].metric_stat.stat"),
            message,
        });
    }
    if stat.period == 0 {
        errors.push(MathError::Field {
            field: format!("metrics[{i}].metric_stat.period"),
            message: "must be positive".to_owned(),
        });
    }
}

/// Depth-first search with an explicit stack (no recursion on client
/// input); each back edge is one cycle, reported at its first entry.
fn find_cycles(queries: &[MetricDataQuery], deps: &[Vec<usize>], errors: &mut Vec<MathError>) {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        OnPath,
        Done,
    }
    let mut mark = vec![Mark::New; deps.len()];
    for root in 0..deps.len() {
        if mark[root] != Mark::New {
            continue;
        }
        // (node, next dependency to visit)
        let mut path: Vec<(usize, usize)> = vec![(root, 0)];
        mark[root] = Mark::OnPath;
        while let Some(&(node, next)) = path.last() {
            let Some(&dep) = deps[node].get(next) else {
                mark[node] = Mark::Done;
                path.pop();
                continue;
            };
            if let Some(top) = path.last_mut() {
                top.1 += 1;
            }
            match mark[dep] {
                Mark::New => {
                    mark[dep] = Mark::OnPath;
                    path.push((dep, 0));
                }
                Mark::OnPath => {
                    let from = path.iter().position(|&(n, _)| n == dep).unwrap_or(0);
                    let mut ids: Vec<String> = path[from..]
                        .iter()
                        .map(|&(n, _)| queries[n].id.clone())
                        .collect();
                    ids.push(queries[dep].id.clone());
                    errors.push(MathError::Cycle {
                        field: format!("metrics[{dep}].expression"),
                        ids,
                    });
                }
                Mark::Done => {}
            }
        }
    }
}

/// The entries the returned ones need, each after its dependencies
/// (a post-order; the plan is acyclic).
fn order(queries: &[MetricDataQuery], deps: &[Vec<usize>]) -> Vec<usize> {
    let mut seen = vec![false; deps.len()];
    let mut out = Vec::new();
    for root in (0..queries.len()).filter(|&i| queries[i].return_data) {
        if seen[root] {
            continue;
        }
        seen[root] = true;
        let mut path: Vec<(usize, usize)> = vec![(root, 0)];
        while let Some(&(node, next)) = path.last() {
            match deps[node].get(next) {
                Some(&dep) => {
                    if let Some(top) = path.last_mut() {
                        top.1 += 1;
                    }
                    if !seen[dep] {
                        seen[dep] = true;
                        path.push((dep, 0));
                    }
                }
                None => {
                    out.push(node);
                    path.pop();
                }
            }
        }
    }
    out
}

struct Results<'q> {
    queries: &'q [MetricDataQuery],
    index: HashMap<&'q str, usize>,
    series: Vec<Option<Series>>,
}

impl Lookup for Results<'_> {
    fn lookup(&self, id: &str) -> Option<&Series> {
        self.series[*self.index.get(id)?].as_ref()
    }
}

/// Validates the set, then evaluates what the entries with `return_data`
/// need, in dependency order, and returns those entries in their order.
///
/// `fetch` is called once per distinct [`MetricStat`] needed; its points
/// outside `[range.start_ms, range.end_ms)` are dropped.
pub fn run(
    queries: &[MetricDataQuery],
    range: Range,
    fetch: &mut dyn FnMut(&MetricStat) -> Result<Series, String>,
) -> Result<Vec<Output>, MathError> {
    let grid = range.grid().map_err(|(field, message)| MathError::Field {
        field: field.to_owned(),
        message,
    })?;
    let plan = plan(queries).map_err(|mut errors| {
        if errors.len() == 1 {
            errors.remove(0)
        } else {
            MathError::Invalid(errors)
        }
    })?;
    let mut results = Results {
        queries,
        index: queries
            .iter()
            .enumerate()
            .map(|(i, q)| (q.id.as_str(), i))
            .collect(),
        series: vec![None; queries.len()],
    };
    let mut fetched: Vec<(&MetricStat, usize)> = Vec::new();
    for i in order(queries, &plan.deps) {
        let series = if let Some(stat) = &results.queries[i].metric_stat {
            if let Some(&(_, j)) = fetched.iter().find(|(s, _)| *s == stat) {
                results.series[j].clone().unwrap_or_default()
            } else {
                let field = format!("metrics[{i}].metric_stat");
                let s = fetch(stat).map_err(|message| MathError::Fetch {
                    field: field.clone(),
                    message,
                })?;
                s.check()
                    .map_err(|message| MathError::BadSeries { field, message })?;
                fetched.push((stat, i));
                s.clip(range.start_ms, range.end_ms)
            }
        } else if let Some(p) = &plan.parsed[i] {
            // dependencies come first in `order`, so every id has its series
            evaluate(&p.expr, &results, &grid)
                .map_err(|e| MathError::UnknownId {
                    field: format!("metrics[{i}].expression"),
                    column: p
                        .references
                        .iter()
                        .find(|r| r.id == e.0)
                        .map_or(0, |r| r.column),
                    id: e.0,
                })?
                .into_series(&grid)
        } else {
            Series::default()
        };
        results.series[i] = Some(series);
    }
    Ok(queries
        .iter()
        .zip(results.series)
        .filter(|(q, _)| q.return_data)
        .map(|(q, s)| {
            let s = s.unwrap_or_default();
            Output {
                id: q.id.clone(),
                label: q.label.clone().unwrap_or_else(|| q.id.clone()),
                timestamps: s.timestamps,
                values: s.values,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests;
