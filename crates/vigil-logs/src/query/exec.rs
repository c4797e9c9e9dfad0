//! Running a plan: events stream through phase 0 up to its first `stats`,
//! `limit` or `dedup` (where they are gathered, keeping only what can still
//! be in the result); the rest runs on the gathered rows.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::hash::{DefaultHasher, Hasher};

use serde_json::Map;

use super::error::ExecError;
use super::eval::{Ctx, Row, Sys};
use super::plan::{Plan, Stage};
use super::stats::{Aggregator, Bounds};
use super::value::{Value, hash_key, key_eq, sort_cmp};
use super::{Event, Flow, LogEvent, QueryLimits, QueryOutput};

/// A row gathered in phase 0 with its place in the order.
#[derive(Debug, Clone)]
struct Entry {
    keys: Vec<Value<'static>>,
    ts: i64,
    seq: u64,
    row: Row<'static>,
}

/// The order of phase 0: the `sort` keys (latest `sort` first), then
/// `@timestamp` descending, then arrival.
fn order(desc: &[bool], a_keys: &[Value<'_>], a_ts: i64, a_seq: u64, b: &Entry) -> Ordering {
    for (i, d) in desc.iter().enumerate() {
        let (Some(x), Some(y)) = (a_keys.get(i), b.keys.get(i)) else {
            break;
        };
        let o = sort_cmp(x, y);
        let o = if *d { o.reverse() } else { o };
        if o.is_ne() {
            return o;
        }
    }
    b.ts.cmp(&a_ts).then(a_seq.cmp(&b.seq))
}

fn entry_order(desc: &[bool], a: &Entry, b: &Entry) -> Ordering {
    order(desc, &a.keys, a.ts, a.seq, b)
}

/// The first `k` rows in order, in memory proportional to `k`.
#[derive(Debug, Clone)]
struct TopK {
    k: usize,
    buf: Vec<Entry>,
    /// The last kept row at the latest compaction: worse rows are dropped.
    threshold: Option<Entry>,
}

impl TopK {
    fn new(k: usize) -> TopK {
        TopK {
            k,
            buf: Vec::new(),
            threshold: None,
        }
    }

    fn accepts(&self, desc: &[bool], keys: &[Value<'_>], ts: i64, seq: u64) -> bool {
        self.k > 0
            && self
                .threshold
                .as_ref()
                .is_none_or(|t| order(desc, keys, ts, seq, t).is_lt())
    }

    fn push(&mut self, desc: &[bool], e: Entry) {
        self.buf.push(e);
        if self.buf.len() >= self.k.saturating_mul(2).max(64) {
            self.compact(desc);
        }
    }

    fn compact(&mut self, desc: &[bool]) {
        if self.buf.len() > self.k && self.k > 0 {
            self.buf
                .select_nth_unstable_by(self.k - 1, |a, b| entry_order(desc, a, b));
            self.buf.truncate(self.k);
            self.threshold = self
                .buf
                .iter()
                .max_by(|a, b| entry_order(desc, a, b))
                .map(|e| Entry {
                    keys: e.keys.clone(),
                    ts: e.ts,
                    seq: e.seq,
                    row: Row {
                        sys: None,
                        slots: Vec::new(),
                        json_done: true,
                    },
                });
        }
    }

    fn finish(mut self, desc: &[bool]) -> Vec<Entry> {
        self.buf.sort_by(|a, b| entry_order(desc, a, b));
        self.buf.truncate(self.k);
        self.buf
    }
}

/// `dedup` of the event stream: the best row per key; rows with a missing
/// key field are all kept (up to the row cap).
#[derive(Debug, Clone)]
struct Dedup {
    best: Vec<(Vec<Value<'static>>, Entry)>,
    index: HashMap<u64, Vec<usize>>,
    missing: TopK,
    max: usize,
}

#[derive(Debug)]
enum Sink {
    Stats(Aggregator),
    Top(TopK),
    Dedup(Dedup),
}

/// A query running over a stream of events: [`Executor::push`] each event
/// (in any order), then [`Executor::finish`].
#[derive(Debug)]
pub struct Executor {
    plan: Plan,
    limits: QueryLimits,
    sink: Sink,
    scanned: u64,
    matched: u64,
    stopped: bool,
    scan_limit_reached: bool,
    spare: Vec<Option<Value<'static>>>,
    scratch: Vec<usize>,
    keys: Vec<Value<'static>>,
}

impl Executor {
    pub(crate) fn new(plan: Plan, limits: QueryLimits) -> Result<Executor, ExecError> {
        let no_stats = plan.phases.len() == 1;
        for stage in &plan.phases[0].stages {
            if let Stage::Limit(n) = stage
                && no_stats
                && usize::try_from(*n).map_or(true, |n| n > limits.max_rows)
            {
                return Err(ExecError::LimitTooLarge {
                    asked: *n,
                    max: limits.max_rows,
                });
            }
        }
        let bounds = Bounds {
            max_groups: limits.max_groups,
            max_values: limits.max_aggregate_values,
        };
        let sink = match plan.phases[0].stages.get(plan.gather_at) {
            Some(Stage::Stats { by, aggs, .. }) => {
                Sink::Stats(Aggregator::new(by.clone(), aggs.clone(), bounds))
            }
            Some(Stage::Limit(n)) => Sink::Top(TopK::new(
                usize::try_from(*n)
                    .unwrap_or(usize::MAX)
                    .min(limits.max_rows),
            )),
            Some(Stage::Dedup(_)) => Sink::Dedup(Dedup {
                best: Vec::new(),
                index: HashMap::new(),
                missing: TopK::new(limits.max_rows),
                max: limits.max_groups,
            }),
            _ => Sink::Top(TopK::new(limits.max_rows)),
        };
        Ok(Executor {
            plan,
            limits,
            sink,
            scanned: 0,
            matched: 0,
            stopped: false,
            scan_limit_reached: false,
            spare: Vec::new(),
            scratch: Vec::new(),
            keys: Vec::new(),
        })
    }

    /// Events pushed and read so far.
    pub fn scanned(&self) -> u64 {
        self.scanned
    }

    /// Feeds one event. [`Flow::Stop`] once the scan limit is reached (the
    /// event is then not counted); an error when a bound is exceeded.
    pub fn push(&mut self, ev: Event<'_>) -> Result<Flow, ExecError> {
        if self.stopped {
            return Ok(Flow::Stop);
        }
        if self.limits.max_scanned.is_some_and(|m| self.scanned >= m) {
            self.stopped = true;
            self.scan_limit_reached = true;
            return Ok(Flow::Stop);
        }
        self.scanned += 1;
        let seq = self.scanned;
        let phase = &self.plan.phases[0];
        let schema = &phase.schema;
        let mut slots: Vec<Option<Value<'_>>> = std::mem::take(&mut self.spare);
        slots.resize(schema.names.len(), None);
        let mut row = Row {
            sys: Some(Sys::from_event(&ev)),
            slots,
            json_done: false,
        };
        let mut keys: Vec<Value<'static>> = std::mem::take(&mut self.keys);
        keys.clear();
        keys.resize(self.plan.order_desc.len(), Value::Null);
        let mut cx = Ctx {
            schema,
            scratch: &mut self.scratch,
        };
        let mut sort_i = 0;
        let mut kept = true;
        for stage in &phase.stages[..self.plan.gather_at] {
            match stage {
                Stage::Filter(e) => {
                    if !e.test(&mut row, &mut cx) {
                        kept = false;
                        break;
                    }
                }
                Stage::Sort(sort_keys) => {
                    let offset = self.plan.sort_offsets.get(sort_i).copied().unwrap_or(0);
                    sort_i += 1;
                    for (j, (e, _)) in sort_keys.iter().enumerate() {
                        let v = e.eval(&mut row, &mut cx).into_owned();
                        if let Some(k) = keys.get_mut(offset + j) {
                            *k = v;
                        }
                    }
                }
                other => row_stage(other, &mut row, &mut cx),
            }
        }
        let mut result = Ok(Flow::Continue);
        if kept {
            self.matched += 1;
            let ts = ev.timestamp_ms;
            let desc = &self.plan.order_desc;
            match &mut self.sink {
                Sink::Stats(agg) => {
                    if let Err(e) = agg.push(&mut row, &mut cx) {
                        result = Err(e);
                    }
                }
                Sink::Top(top) => {
                    if top.accepts(desc, &keys, ts, seq) {
                        row.discover(schema, cx.scratch);
                        let entry = Entry {
                            keys: std::mem::take(&mut keys),
                            ts,
                            seq,
                            row: row.into_owned(),
                        };
                        top.push(desc, entry);
                        self.keys = keys;
                        return result;
                    }
                }
                Sink::Dedup(d) => {
                    let Some(Stage::Dedup(exprs)) = phase.stages.get(self.plan.gather_at) else {
                        return result;
                    };
                    let dkey: Vec<Value<'static>> = exprs
                        .iter()
                        .map(|e| e.eval(&mut row, &mut cx).into_owned())
                        .collect();
                    row.discover(schema, cx.scratch);
                    let entry = Entry {
                        keys: std::mem::take(&mut keys),
                        ts,
                        seq,
                        row: row.into_owned(),
                    };
                    return d.push(desc, dkey, entry).map(|()| Flow::Continue);
                }
            }
        }
        // Keep the slot buffer for the next event (an in-place collect).
        row.slots.clear();
        self.spare = row.slots.into_iter().map(|_| None).collect();
        self.keys = keys;
        result
    }

    /// The result.
    pub fn finish(self) -> Result<QueryOutput, ExecError> {
        self.finish_inner(false).map(|(out, _)| out)
    }

    /// The result, and for each row the event it came from (`None` for the
    /// rows of a `stats`, which come from many): what context lines are
    /// found around.
    pub fn finish_with_sources(self) -> Result<(QueryOutput, Vec<Option<LogEvent>>), ExecError> {
        self.finish_inner(true)
    }

    fn finish_inner(
        self,
        keep_sources: bool,
    ) -> Result<(QueryOutput, Vec<Option<LogEvent>>), ExecError> {
        let plan = &self.plan;
        let bounds = Bounds {
            max_groups: self.limits.max_groups,
            max_values: self.limits.max_aggregate_values,
        };
        let desc = &plan.order_desc;
        let (mut rows, mut phase, mut at) = match self.sink {
            Sink::Stats(agg) => (stats_rows(agg, plan, 0), 1, 0),
            Sink::Top(top) => (
                top.finish(desc).into_iter().map(|e| e.row).collect(),
                0,
                plan.gather_at + 1,
            ),
            Sink::Dedup(d) => (d.finish(desc), 0, plan.gather_at + 1),
        };
        let mut scratch = Vec::new();
        while let Some(p) = plan.phases.get(phase) {
            let Some(stage) = p.stages.get(at) else {
                if phase + 1 >= plan.phases.len() {
                    break;
                }
                phase += 1;
                at = 0;
                continue;
            };
            let mut cx = Ctx {
                schema: &p.schema,
                scratch: &mut scratch,
            };
            rows = match stage {
                Stage::Filter(e) => rows
                    .into_iter()
                    .filter_map(|mut r| e.test(&mut r, &mut cx).then_some(r))
                    .collect(),
                Stage::Sort(keys) => {
                    let mut keyed: Vec<(Vec<Value<'static>>, Row<'static>)> = rows
                        .into_iter()
                        .map(|mut r| {
                            (
                                keys.iter().map(|(e, _)| e.eval(&mut r, &mut cx)).collect(),
                                r,
                            )
                        })
                        .collect();
                    keyed.sort_by(|(a, _), (b, _)| {
                        keys.iter()
                            .zip(a.iter().zip(b))
                            .map(
                                |((_, d), (x, y))| if *d { sort_cmp(y, x) } else { sort_cmp(x, y) },
                            )
                            .find(|o| o.is_ne())
                            .unwrap_or(Ordering::Equal)
                    });
                    keyed.into_iter().map(|(_, r)| r).collect()
                }
                Stage::Limit(n) => {
                    rows.truncate(usize::try_from(*n).unwrap_or(usize::MAX));
                    rows
                }
                Stage::Dedup(exprs) => dedup_rows(rows, exprs, &mut cx),
                Stage::Stats { by, aggs, .. } => {
                    let mut agg = Aggregator::new(by.clone(), aggs.clone(), bounds);
                    for mut r in rows {
                        agg.push(&mut r, &mut cx)?;
                    }
                    let next = stats_rows(agg, plan, phase);
                    phase += 1;
                    at = 0;
                    rows = next;
                    continue;
                }
                other => {
                    for r in &mut rows {
                        row_stage(other, r, &mut cx);
                    }
                    rows
                }
            };
            at += 1;
        }
        if plan.phases.len() == 1 {
            rows.truncate(self.limits.max_rows);
        }
        let last = plan.phases.len() - 1;
        let schema = &plan.phases[last].schema;
        let mut cx = Ctx {
            schema,
            scratch: &mut scratch,
        };
        let mut sources = Vec::new();
        let out = rows
            .into_iter()
            .map(|mut r| {
                let mut m = Map::new();
                for (name, e) in &plan.columns {
                    let v = e.eval(&mut r, &mut cx);
                    if !v.is_null() {
                        m.insert(name.clone(), v.to_json());
                    }
                }
                if keep_sources {
                    sources.push(r.sys.take().map(|s| LogEvent {
                        timestamp_ms: s.timestamp_ms,
                        ingestion_ms: s.ingestion_ms,
                        group: s.group.into_owned(),
                        stream: s.stream.into_owned(),
                        message: s.message.into_owned(),
                    }));
                }
                m
            })
            .collect();
        let out = QueryOutput {
            columns: plan.columns.iter().map(|(n, _)| n.clone()).collect(),
            rows: out,
            scanned: self.scanned,
            matched: self.matched,
            scan_limit_reached: self.scan_limit_reached,
        };
        Ok((out, sources))
    }
}

impl Dedup {
    fn push(
        &mut self,
        desc: &[bool],
        key: Vec<Value<'static>>,
        entry: Entry,
    ) -> Result<(), ExecError> {
        if key.iter().any(Value::is_null) {
            if self.missing.accepts(desc, &entry.keys, entry.ts, entry.seq) {
                self.missing.push(desc, entry);
            }
            return Ok(());
        }
        let mut h = DefaultHasher::new();
        for v in &key {
            hash_key(v, &mut h);
        }
        let bucket = self.index.entry(h.finish()).or_default();
        for &i in bucket.iter() {
            if let Some((k, best)) = self.best.get_mut(i)
                && k.len() == key.len()
                && k.iter().zip(&key).all(|(a, b)| key_eq(a, b))
            {
                if entry_order(desc, &entry, best).is_lt() {
                    *best = entry;
                }
                return Ok(());
            }
        }
        if self.best.len() >= self.max {
            return Err(ExecError::TooManyGroups { max: self.max });
        }
        bucket.push(self.best.len());
        self.best.push((key, entry));
        Ok(())
    }

    fn finish(self, desc: &[bool]) -> Vec<Row<'static>> {
        let mut all: Vec<Entry> = self.best.into_iter().map(|(_, e)| e).collect();
        all.extend(self.missing.finish(desc));
        all.sort_by(|a, b| entry_order(desc, a, b));
        all.into_iter().map(|e| e.row).collect()
    }
}

fn dedup_rows(
    rows: Vec<Row<'static>>,
    exprs: &[super::eval::CExpr],
    cx: &mut Ctx<'_>,
) -> Vec<Row<'static>> {
    let mut seen: Vec<Vec<Value<'static>>> = Vec::new();
    let mut index: HashMap<u64, Vec<usize>> = HashMap::new();
    let mut out = Vec::new();
    for mut r in rows {
        let key: Vec<Value<'static>> = exprs.iter().map(|e| e.eval(&mut r, cx)).collect();
        if key.iter().any(Value::is_null) {
            out.push(r);
            continue;
        }
        let mut h = DefaultHasher::new();
        for v in &key {
            hash_key(v, &mut h);
        }
        let bucket = index.entry(h.finish()).or_default();
        let dup = bucket.iter().any(|&i| {
            seen.get(i)
                .is_some_and(|k| k.iter().zip(&key).all(|(a, b)| key_eq(a, b)))
        });
        if !dup {
            bucket.push(seen.len());
            seen.push(key);
            out.push(r);
        }
    }
    out
}

/// The rows of a finished `stats` at `phase`, in the schema of the next phase.
fn stats_rows(agg: Aggregator, plan: &Plan, phase: usize) -> Vec<Row<'static>> {
    let Some(Stage::Stats { out, .. }) = plan
        .phases
        .get(phase)
        .and_then(|p| p.stages.iter().find(|s| matches!(s, Stage::Stats { .. })))
    else {
        return Vec::new();
    };
    let width = plan
        .phases
        .get(phase + 1)
        .map_or(0, |p: &super::plan::Phase| p.schema.names.len());
    agg.finish()
        .into_iter()
        .map(|values| {
            let mut slots = vec![None; width];
            for (v, &slot) in values.into_iter().zip(out) {
                if let Some(s) = slots.get_mut(slot) {
                    *s = Some(v);
                }
            }
            Row {
                sys: None,
                slots,
                json_done: true,
            }
        })
        .collect()
}

/// A stage that changes one row in place (`fields`, `parse`).
fn row_stage<'a>(stage: &Stage, row: &mut Row<'a>, cx: &mut Ctx<'_>) {
    match stage {
        Stage::Fields(cols) => {
            for (target, e) in cols {
                let v = e.eval(row, cx);
                if let Some(s) = target.and_then(|t| row.slots.get_mut(t)) {
                    *s = Some(v);
                }
            }
        }
        Stage::Parse {
            source,
            regex,
            groups,
        } => {
            let v = source.eval(row, cx);
            let set = |row: &mut Row<'a>, slot: usize, v: Value<'a>| {
                if let Some(s) = row.slots.get_mut(slot) {
                    *s = Some(v);
                }
            };
            let caps = match &v {
                Value::Str(std::borrow::Cow::Borrowed(text)) => regex.captures(text).map(|c| {
                    groups
                        .iter()
                        .map(|(g, _)| {
                            c.get(*g)
                                .map(|m| Value::Str(std::borrow::Cow::Borrowed(m.as_str())))
                        })
                        .collect::<Vec<_>>()
                }),
                other => other.text().and_then(|text| {
                    regex.captures(&text).map(|c| {
                        groups
                            .iter()
                            .map(|(g, _)| {
                                c.get(*g).map(|m| {
                                    Value::Str(std::borrow::Cow::Owned(m.as_str().to_owned()))
                                })
                            })
                            .collect::<Vec<_>>()
                    })
                }),
            };
            match caps {
                Some(values) => {
                    for ((_, slot), v) in groups.iter().zip(values) {
                        set(row, *slot, v.unwrap_or(Value::Null));
                    }
                }
                None => {
                    for (_, slot) in groups {
                        set(row, *slot, Value::Null);
                    }
                }
            }
        }
        _ => {}
    }
}
