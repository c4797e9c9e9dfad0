//! The query compiled for running: names resolved to slots per phase (a
//! phase ends at each `stats`), globs turned into regular expressions,
//! and the output columns decided.

use super::ast::{Ast, Command, Expr, ParsePattern};
use super::eval::{CExpr, Schema};
use super::parser::compile_regex;
use super::stats::AggSpec;

/// One step of a phase.
#[derive(Debug, Clone)]
pub(crate) enum Stage {
    /// Computed columns: (slot written, value). `None`: a system field,
    /// which is read as it is.
    Fields(Vec<(Option<usize>, CExpr)>),
    Filter(CExpr),
    Parse {
        source: CExpr,
        regex: regex::Regex,
        /// (capture group, slot written).
        groups: Vec<(usize, usize)>,
    },
    Sort(Vec<(CExpr, bool)>),
    Limit(u64),
    Dedup(Vec<CExpr>),
    Stats {
        by: Vec<CExpr>,
        aggs: Vec<AggSpec>,
        /// The slot of each result column in the next phase.
        out: Vec<usize>,
    },
}

impl Stage {
    /// Whether rows must be gathered here (the stream of events ends).
    pub fn gathers(&self) -> bool {
        matches!(
            self,
            Stage::Limit(_) | Stage::Dedup(_) | Stage::Stats { .. }
        )
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Phase {
    pub schema: Schema,
    pub stages: Vec<Stage>,
}

#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub phases: Vec<Phase>,
    /// The output columns and how to read them in the last phase.
    pub columns: Vec<(String, CExpr)>,
    /// Where the stream of events is gathered in phase 0.
    pub gather_at: usize,
    /// `desc` flags of the order keys of phase 0, latest `sort` first.
    pub order_desc: Vec<bool>,
    /// For each `sort` stage of phase 0 before `gather_at`: its offset in the order keys.
    pub sort_offsets: Vec<usize>,
}

/// A `*` of a glob becomes a lazy group, the last one (at the end of the
/// glob) a greedy one; the rest is matched literally.
pub(crate) fn glob_regex(glob: &str) -> String {
    let mut re = String::from("(?s)");
    let parts: Vec<&str> = glob.split('*').collect();
    for (i, part) in parts.iter().enumerate() {
        re.push_str(&regex::escape(part));
        if i + 1 < parts.len() {
            let last_at_end = i + 2 == parts.len() && parts[i + 1].is_empty();
            re.push_str(if last_at_end { "(.*)" } else { "(.*?)" });
        }
    }
    re
}

impl Plan {
    pub fn compile(ast: &Ast) -> Plan {
        let mut phases = vec![Phase {
            schema: Schema::events(),
            stages: Vec::new(),
        }];
        let mut fields_cols: Vec<String> = Vec::new();
        let mut display_cols: Option<Vec<String>> = None;
        let mut stats_cols: Option<Vec<String>> = None;
        for cmd in &ast.commands {
            let phase = phases.len() - 1;
            let Some(Phase { schema, stages }) = phases.get_mut(phase) else {
                break;
            };
            let stage = match cmd {
                Command::Fields(ps) => Stage::Fields(
                    ps.iter()
                        .map(|p| {
                            let name = p.name();
                            if !fields_cols.contains(&name) {
                                fields_cols.push(name.clone());
                            }
                            let value = schema.compile(&p.expr);
                            let target = match schema.field(&name) {
                                CExpr::Slot(i) => Some(i),
                                _ => None,
                            };
                            (target, value)
                        })
                        .collect(),
                ),
                Command::Filter(e) => Stage::Filter(schema.compile(e)),
                Command::Sort(keys) => Stage::Sort(
                    keys.iter()
                        .map(|k| (schema.compile(&k.expr), k.descending))
                        .collect(),
                ),
                Command::Limit(n) => Stage::Limit(*n),
                Command::Dedup(names) => {
                    Stage::Dedup(names.iter().map(|n| schema.field(n)).collect())
                }
                Command::Display(names) => {
                    display_cols = Some(names.clone());
                    continue;
                }
                Command::Parse { source, pattern } => {
                    let source_expr = schema.field(source);
                    let (regex, groups) = match pattern {
                        ParsePattern::Glob { glob, names } => {
                            // The glob is escaped, so it always compiles; a
                            // huge one that does not is matched by nothing.
                            let regex = compile_regex(&glob_regex(glob))
                                .or_else(|_| compile_regex("[^\\s\\S]"));
                            let groups = names
                                .iter()
                                .enumerate()
                                .map(|(i, n)| (i + 1, schema.slot(n)))
                                .collect();
                            (regex, groups)
                        }
                        ParsePattern::Regex(re) => {
                            let groups = re
                                .compiled
                                .capture_names()
                                .enumerate()
                                .filter_map(|(i, n)| n.map(|n| (i, schema.slot(n))))
                                .collect();
                            (Ok(re.compiled.clone()), groups)
                        }
                    };
                    match regex {
                        Ok(regex) => Stage::Parse {
                            source: source_expr,
                            regex,
                            groups,
                        },
                        Err(_) => continue,
                    }
                }
                Command::Stats { aggregates, by } => {
                    let by_c: Vec<CExpr> = by.iter().map(|p| schema.compile(&p.expr)).collect();
                    let aggs = aggregates
                        .iter()
                        .map(|a| AggSpec {
                            func: a.func,
                            arg: a.arg.as_ref().map(|e| schema.compile(e)),
                            percentile: a.percentile.unwrap_or(50.0),
                        })
                        .collect();
                    let names: Vec<String> = by
                        .iter()
                        .map(|p| p.name())
                        .chain(aggregates.iter().map(|a| a.name()))
                        .collect();
                    let mut next = Schema::default();
                    let out = names.iter().map(|n| next.slot(n)).collect();
                    stages.push(Stage::Stats {
                        by: by_c,
                        aggs,
                        out,
                    });
                    phases.push(Phase {
                        schema: next,
                        stages: Vec::new(),
                    });
                    let mut unique = Vec::new();
                    for n in names {
                        if !unique.contains(&n) {
                            unique.push(n);
                        }
                    }
                    stats_cols = Some(unique);
                    fields_cols.clear();
                    display_cols = None;
                    continue;
                }
            };
            stages.push(stage);
        }
        let names = display_cols
            .or((!fields_cols.is_empty()).then_some(fields_cols))
            .or(stats_cols)
            .unwrap_or_else(|| vec!["@timestamp".to_owned(), "@message".to_owned()]);
        let last = phases.len() - 1;
        let columns = match phases.get_mut(last) {
            Some(p) => names
                .into_iter()
                .map(|n| {
                    let e = p.schema.compile(&Expr::Field(n.clone()));
                    (n, e)
                })
                .collect(),
            None => Vec::new(),
        };
        let first = &phases[0].stages;
        let gather_at = first.iter().position(Stage::gathers).unwrap_or(first.len());
        let sorts: Vec<usize> = first[..gather_at]
            .iter()
            .filter_map(|s| match s {
                Stage::Sort(keys) => Some(keys.len()),
                _ => None,
            })
            .collect();
        let mut sort_offsets = vec![0; sorts.len()];
        let mut offset = 0;
        for i in (0..sorts.len()).rev() {
            sort_offsets[i] = offset;
            offset += sorts[i];
        }
        let mut order_desc = Vec::with_capacity(offset);
        for s in first[..gather_at].iter().rev() {
            if let Stage::Sort(keys) = s {
                order_desc.extend(keys.iter().map(|(_, d)| *d));
            }
        }
        Plan {
            phases,
            columns,
            gather_at,
            order_desc,
            sort_offsets,
        }
    }
}
