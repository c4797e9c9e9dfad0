//! The service graph (§6 "Service graph"), aggregated at ingestion so a
//! window's map is a merge of per-minute figures, never a scan of spans.
//!
//! Nodes (see [`NodeType`]): the `client` (the caller of a root span), a
//! service (a span that is its service's root: no parent, or a parent in
//! another service), a stage `<service>::<name>` (a non-remote span whose
//! parent is in the same service), a remote call (a `remote` span, named by
//! its `name`). The edge of a span runs from its parent's node to its own
//! node; from the client for a root span; from the parent's *service* when
//! the parent is in another service (an upstream caller over OTLP). Its
//! figures are the span's: duration and [`Outcome`](crate::model::Outcome).
//!
//! Parents are found across batches in either order (see `resolve.rs`
//! for the bounds). Calls are counted in the minute of the span's end;
//! minutes older than the retention are dropped, and so are spans ending
//! more than an hour after `now_ms` (a wrong clock must not pin memory).
//! After a restart, feeding the stored spans to [`ServiceMap::add_batch`]
//! rebuilds the same figures.

mod graph;
mod resolve;
mod stats;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use rustc_hash::FxHashMap;

pub use graph::{
    Edge, HistogramBin, MinuteFigures, Node, NodeType, ServiceGraph, Statistics, node_id,
};
use resolve::{Bounds, CLIENT, Call, KeyMap, Known, Resolver, SpanIn};

/// One minute's figures: (caller, callee) → figures.
type Edges = FxHashMap<(u32, u32), Stats>;
use stats::Stats;

use crate::model::{Name, Outcome, Span, SpanId, TraceId};

const MINUTE_MS: i64 = 60_000;
const MINUTE_US: i64 = 60_000_000;
/// Spans may end at most this many minutes after `now_ms`.
const FUTURE_MINUTES: i64 = 60;

/// What the map needs of one span: made on the thread that recorded a
/// trace ([`crate::store::PreparedTraces`]), so the writer feeding the map
/// never holds the spans themselves.
#[derive(Debug, Clone, PartialEq)]
pub struct MapSpan {
    /// The trace it belongs to.
    pub trace_id: TraceId,
    /// Its own id.
    pub span_id: SpanId,
    /// Its parent's id, if it has one.
    pub parent_id: Option<SpanId>,
    /// Its name (a stage's, or the remote service called).
    pub name: Name,
    /// The service that recorded it.
    pub service: Name,
    /// A call to another service.
    pub remote: bool,
    /// Its end, µs since the epoch: the minute it counts in.
    pub end_us: i64,
    /// Its duration, µs.
    pub duration_us: i64,
    /// How it ended.
    pub outcome: Outcome,
}

impl From<&Span> for MapSpan {
    fn from(span: &Span) -> MapSpan {
        MapSpan {
            trace_id: span.trace_id,
            span_id: span.span_id,
            parent_id: span.parent_id,
            name: span.name.clone(),
            service: span.service.clone(),
            remote: span.remote,
            end_us: span.end_us,
            duration_us: span.duration_us(),
            outcome: span.outcome(),
        }
    }
}

impl From<Span> for MapSpan {
    /// Keeps the span's names without copying them (the map's rebuild
    /// reads a million spans it does not keep).
    fn from(span: Span) -> MapSpan {
        MapSpan {
            duration_us: span.duration_us(),
            outcome: span.outcome(),
            trace_id: span.trace_id,
            span_id: span.span_id,
            parent_id: span.parent_id,
            name: span.name,
            service: span.service,
            remote: span.remote,
            end_us: span.end_us,
        }
    }
}

impl MapSpan {
    fn key(&self) -> (TraceId, SpanId) {
        (self.trace_id, self.span_id)
    }
}

/// The service map's bounds; every value is at least 1 when used.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceMapConfig {
    /// Minutes of figures kept (default 1,440: 24 hours).
    pub retention_minutes: u32,
    /// Spans remembered as possible parents (default 200,000).
    pub recent_spans: usize,
    /// How long a span is remembered as a possible parent, ms of arrival
    /// time (default 300,000: 5 minutes).
    pub recent_max_age_ms: i64,
    /// Children kept waiting for a parent (default 100,000).
    pub pending_spans: usize,
    /// How long a child waits for its parent before it counts as called
    /// by the client, ms (default 30,000).
    pub pending_timeout_ms: i64,
    /// A minute is handed to [`ServiceMap::take_minute_figures`] once its
    /// end is this far in the past, ms (default 90,000: the pending
    /// timeout plus a batch's delay).
    pub settle_ms: i64,
    /// Distinct node names kept; later names count as one `other` node
    /// (default 10,000), so span names with ids in them cannot grow the
    /// map without bound.
    pub max_nodes: usize,
}

impl Default for ServiceMapConfig {
    fn default() -> ServiceMapConfig {
        ServiceMapConfig {
            retention_minutes: 1440,
            recent_spans: 200_000,
            recent_max_age_ms: 300_000,
            pending_spans: 100_000,
            pending_timeout_ms: 30_000,
            settle_ms: 90_000,
            max_nodes: 10_000,
        }
    }
}

/// The service map: thread-safe, one short lock per batch or query.
#[derive(Debug)]
pub struct ServiceMap {
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: ServiceMapConfig,
    nodes: Nodes,
    resolver: Resolver,
    /// Minute since the epoch → (caller, callee) → figures.
    minutes: BTreeMap<i64, Edges>,
    /// The same for the figures restored after a restart
    /// ([`ServiceMap::absorb`]): shown, never handed out again.
    restored: BTreeMap<i64, Edges>,
    calls: Vec<Call>,
    order: BatchOrder,
    /// The last minute handed out by `take_minute_figures`.
    taken_through: Option<i64>,
}

impl Inner {
    /// Counts `calls` in their minutes, as of `now_ms`: calls outside the
    /// retention (or too far ahead) are not counted, minutes that left the
    /// retention are dropped.
    fn count(&mut self, calls: &[Call], now_ms: i64) {
        let now_minute = now_ms.div_euclid(MINUTE_MS);
        let oldest = now_minute - i64::from(self.config.retention_minutes.max(1)) + 1;
        let newest = now_minute + FUTURE_MINUTES;
        let minutes = &mut self.minutes;
        for call in calls {
            if call.minute < oldest || call.minute > newest {
                continue;
            }
            minutes
                .entry(call.minute)
                .or_default()
                .entry((call.caller, call.callee))
                .or_default()
                .add(call.duration_us, call.outcome);
        }
        *minutes = minutes.split_off(&oldest);
        if self
            .restored
            .first_key_value()
            .is_some_and(|(m, _)| *m < oldest)
        {
            self.restored = self.restored.split_off(&oldest);
        }
    }
}

/// Node names interned to ids; id 0 is the client, id 1 `other`.
#[derive(Debug)]
struct Nodes {
    info: Vec<(NodeType, Box<str>)>,
    services: FxHashMap<Box<str>, u32>,
    remotes: FxHashMap<Box<str>, u32>,
    /// Service node → stage name → stage node.
    stages: FxHashMap<u32, FxHashMap<Box<str>, u32>>,
    max: usize,
}

const OTHER: u32 = 1;

impl Nodes {
    fn new(max: usize) -> Nodes {
        Nodes {
            // CLIENT is 0, OTHER is 1.
            info: vec![
                (NodeType::Client, "client".into()),
                (NodeType::Other, "other".into()),
            ],
            services: FxHashMap::default(),
            remotes: FxHashMap::default(),
            stages: FxHashMap::default(),
            max: max.max(1),
        }
    }

    fn push(info: &mut Vec<(NodeType, Box<str>)>, max: usize, t: NodeType, name: &str) -> u32 {
        if info.len() - 2 >= max {
            return OTHER;
        }
        info.push((t, name.into()));
        u32::try_from(info.len() - 1).unwrap_or(OTHER)
    }

    fn service(&mut self, name: &str) -> u32 {
        if let Some(id) = self.services.get(name) {
            return *id;
        }
        let id = Nodes::push(&mut self.info, self.max, NodeType::Service, name);
        if id != OTHER {
            self.services.insert(name.into(), id);
        }
        id
    }

    fn remote(&mut self, name: &str) -> u32 {
        if let Some(id) = self.remotes.get(name) {
            return *id;
        }
        let id = Nodes::push(&mut self.info, self.max, NodeType::Remote, name);
        if id != OTHER {
            self.remotes.insert(name.into(), id);
        }
        id
    }

    fn stage(&mut self, service_node: u32, service: &str, name: &str) -> u32 {
        if let Some(id) = self.stages.get(&service_node).and_then(|m| m.get(name)) {
            return *id;
        }
        let full = format!("{service}::{name}");
        let id = Nodes::push(&mut self.info, self.max, NodeType::Stage, &full);
        if id != OTHER {
            self.stages
                .entry(service_node)
                .or_default()
                .insert(name.into(), id);
        }
        id
    }

    /// Interns every node of `other` here; `other`'s id → this map's id.
    fn intern_all(&mut self, other: &Nodes) -> Vec<u32> {
        let mut remap: Vec<u32> = vec![OTHER; other.info.len()];
        remap[CLIENT as usize] = CLIENT;
        for (name, id) in &other.services {
            remap[*id as usize] = self.service(name);
        }
        for (name, id) in &other.remotes {
            remap[*id as usize] = self.remote(name);
        }
        for (service_node, stages) in &other.stages {
            let service = &other.info[*service_node as usize].1;
            let here = self.service(service);
            for (name, id) in stages {
                remap[*id as usize] = self.stage(here, service, name);
            }
        }
        remap
    }

    fn id(&self, node: u32) -> String {
        let (t, name) = &self.info[node as usize];
        node_id(*t, name)
    }
}

impl ServiceMap {
    /// An empty map with these bounds.
    pub fn new(config: ServiceMapConfig) -> ServiceMap {
        let bounds = Bounds {
            recent_spans: config.recent_spans.max(1),
            recent_max_age_ms: config.recent_max_age_ms.max(1),
            pending_spans: config.pending_spans.max(1),
            pending_timeout_ms: config.pending_timeout_ms.max(1),
        };
        ServiceMap {
            inner: Mutex::new(Inner {
                nodes: Nodes::new(config.max_nodes),
                config,
                resolver: Resolver::new(bounds),
                minutes: BTreeMap::new(),
                restored: BTreeMap::new(),
                calls: Vec::new(),
                order: BatchOrder::default(),
                taken_through: None,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic elsewhere cannot leave the figures half-updated in a way
        // that matters more than losing the map, so poisoning is ignored.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counts a batch of spans that arrived at `now_ms` (ms since the
    /// epoch); also the way to rebuild the map from stored spans. Each span
    /// is remembered for a while, as a parent that later batches may name.
    pub fn add_batch(&self, spans: &[Span], now_ms: i64) {
        let facts: Vec<MapSpan> = spans.iter().map(MapSpan::from).collect();
        self.add_spans(&facts, now_ms);
    }

    /// [`ServiceMap::add_batch`] for spans already reduced to what the map
    /// needs of them.
    pub fn add_spans(&self, spans: &[MapSpan], now_ms: i64) {
        self.add(spans, now_ms, true);
    }

    /// Counts a batch of whole traces, as [`ServiceMap::add_batch`] does,
    /// for spans no later span will name as a parent (Vigil's own traces:
    /// every child of theirs is in the batch, next to it: a trace's spans
    /// come together). They are not remembered,
    /// which saves a write per span into a large map. A parent outside the
    /// batch (an upstream caller's span) is still found or waited for.
    pub fn add_whole_traces(&self, spans: &[MapSpan], now_ms: i64) {
        self.add(spans, now_ms, false);
    }

    fn add(&self, spans: &[MapSpan], now_ms: i64, remember: bool) {
        let mut guard = self.lock();
        let inner = &mut *guard;
        let mut calls = std::mem::take(&mut inner.calls);
        calls.clear();
        inner.resolver.expire(now_ms, &mut calls);
        let mut order = std::mem::take(&mut inner.order);
        order.parents_first(spans, !remember);
        for &i in &order.order {
            let span = &spans[i as usize];
            let service_node = inner.nodes.service(&span.service);
            let inner_node = match (span.remote, span.parent_id) {
                (true, _) => inner.nodes.remote(&span.name),
                (false, None) => service_node,
                (false, Some(_)) => inner.nodes.stage(service_node, &span.service, &span.name),
            };
            let input = SpanIn {
                key: span.key(),
                parent: span.parent_id,
                service_node,
                inner_node,
                remote: span.remote,
                minute: span.end_us.div_euclid(MINUTE_US),
                duration_us: span.duration_us.max(0),
                outcome: span.outcome,
                remember,
            };
            let in_batch = match order.parent[i as usize] {
                UNSET => None,
                p => Some(order.known[p as usize]),
            };
            order.known[i as usize] = inner.resolver.add(input, in_batch, now_ms, &mut calls);
        }
        inner.resolver.expire(now_ms, &mut calls);
        inner.order = order;
        inner.count(&calls, now_ms);
        inner.calls = calls;
    }

    /// The graph of the minutes that start in `[start_ms, end_ms)`, the
    /// window widened to whole minutes.
    pub fn map(&self, start_ms: i64, end_ms: i64) -> ServiceGraph {
        let inner = self.lock();
        let first = start_ms.div_euclid(MINUTE_MS);
        let end = end_ms.div_euclid(MINUTE_MS) + i64::from(end_ms.rem_euclid(MINUTE_MS) != 0);
        let mut merged = Edges::default();
        if end > first {
            let live = inner.minutes.range(first..end);
            let restored = inner.restored.range(first..end);
            for edges in live.chain(restored).map(|(_, e)| e) {
                for (key, stats) in edges {
                    merged.entry(*key).or_default().merge(stats);
                }
            }
        }
        let (nodes, edges) = inner.nodes.graph(&merged);
        ServiceGraph {
            start_ms: first * MINUTE_MS,
            end_ms: end.max(first) * MINUTE_MS,
            nodes,
            edges,
        }
    }

    /// The edges of every minute that has settled (ended `settle_ms` ago)
    /// and was not handed out before, oldest first, for the metric store.
    /// Calls that reach a minute after it was handed out still count in
    /// [`ServiceMap::map`] but not here. The first call hands out every
    /// settled minute kept (after a rebuild: the whole retention).
    pub fn take_minute_figures(&self, now_ms: i64) -> Vec<MinuteFigures> {
        let mut inner = self.lock();
        let settled_end = (now_ms - inner.config.settle_ms.max(0)).div_euclid(MINUTE_MS);
        let from = inner.taken_through.map_or(i64::MIN, |m| m + 1);
        if settled_end <= from {
            return Vec::new();
        }
        let out: Vec<MinuteFigures> = inner
            .minutes
            .range(from..settled_end)
            .map(|(minute, edges)| MinuteFigures {
                minute_ms: minute * MINUTE_MS,
                edges: inner.nodes.graph(edges).1,
            })
            .collect();
        inner.taken_through = Some(settled_end - 1);
        out
    }

    /// Adds the figures of `rebuilt` (another map, fed the spans stored
    /// before a restart at `restart_ms`) to these: nodes matched by type
    /// and name, minutes merged. Children still waiting in `rebuilt` count
    /// as called by the client (their parents will not come). The restored
    /// figures show in [`ServiceMap::map`] but are never handed out by
    /// [`ServiceMap::take_minute_figures`] (the previous process did), so
    /// the metric store counts no call twice.
    pub fn absorb(&self, rebuilt: &ServiceMap, restart_ms: i64) {
        if std::ptr::eq(self, rebuilt) {
            return;
        }
        let mut other = rebuilt.lock();
        let mut calls = Vec::new();
        other.resolver.expire(i64::MAX / 4, &mut calls);
        other.count(&calls, restart_ms);
        let mut guard = self.lock();
        let inner = &mut *guard;
        let remap = inner.nodes.intern_all(&other.nodes);
        for (minute, edges) in &other.minutes {
            let into = inner.restored.entry(*minute).or_default();
            for ((caller, callee), stats) in edges {
                let key = (remap[*caller as usize], remap[*callee as usize]);
                into.entry(key).or_default().merge(stats);
            }
        }
    }

    /// Children still waiting for their parent (for the server's gauges).
    pub fn pending_spans(&self) -> usize {
        self.lock().resolver.pending()
    }
}

/// Orders a batch parents first, so that children find their parents
/// resolved instead of waiting (spans usually arrive in end order,
/// children first). Scratch space kept between batches.
#[derive(Debug, Default)]
struct BatchOrder {
    index: KeyMap<u32>,
    depth: Vec<u32>,
    stack: Vec<u32>,
    /// Indices of the spans, parents first.
    order: Vec<u32>,
    /// Each span's parent's index in the batch, or `UNSET`.
    parent: Vec<u32>,
    /// Each span's figures for its children once resolved in the batch.
    known: Vec<Option<Known>>,
}

const UNSET: u32 = u32::MAX;
const VISITING: u32 = u32::MAX - 1;
/// Runs of a trace's spans longer than this are searched through a hash
/// index rather than span by span.
const LONG_RUN: usize = 32;

impl BatchOrder {
    /// Sets `order` to the indices of `spans` by depth within the batch (a
    /// span whose parent is not in the batch has depth 0), stable, and
    /// `parent` to each span's parent in the batch. A cycle of parents is
    /// cut where it is found. With `runs`, a span's parent is looked for
    /// only among the spans next to it with its trace id (whole traces, a
    /// trace's spans together: a few spans each, searched without hashing).
    fn parents_first(&mut self, spans: &[MapSpan], runs: bool) {
        let n = spans.len().min(UNSET as usize - 1);
        self.parent.clear();
        self.parent.resize(n, UNSET);
        if runs {
            self.parents_in_runs(&spans[..n]);
        } else {
            self.index.clear();
            for (i, span) in spans[..n].iter().enumerate() {
                self.index.insert(span.key(), i as u32);
            }
            for (i, span) in spans[..n].iter().enumerate() {
                if let Some(&p) = span
                    .parent_id
                    .and_then(|p| self.index.get(&(span.key().0, p)))
                {
                    self.parent[i] = p;
                }
            }
        }
        self.depth.clear();
        self.depth.resize(n, UNSET);
        self.known.clear();
        self.known.resize(n, None);
        for i in 0..n {
            let mut j = i;
            let mut base = 0;
            loop {
                match self.depth[j] {
                    UNSET => {
                        self.depth[j] = VISITING;
                        self.stack.push(j as u32);
                        match self.parent[j] {
                            UNSET => break,
                            p => j = p as usize,
                        }
                    }
                    VISITING => break,
                    d => {
                        base = d + 1;
                        break;
                    }
                }
            }
            while let Some(k) = self.stack.pop() {
                self.depth[k as usize] = base;
                base += 1;
            }
        }
        self.order.clear();
        self.order.extend(0..n as u32);
        let depth = &self.depth;
        self.order.sort_by_key(|&i| depth[i as usize]);
    }

    /// `parent` of each span from the spans of its run (as the hash index
    /// would: the last span with the parent's id).
    fn parents_in_runs(&mut self, spans: &[MapSpan]) {
        let mut start = 0;
        while start < spans.len() {
            let trace = spans[start].key().0;
            let len = spans[start..]
                .iter()
                .position(|s| s.key().0 != trace)
                .unwrap_or(spans.len() - start);
            let run = &spans[start..start + len];
            if len > LONG_RUN {
                // A long trace: the hash index, for its run only.
                self.index.clear();
                for (i, span) in run.iter().enumerate() {
                    self.index.insert(span.key(), (start + i) as u32);
                }
            }
            for (i, span) in run.iter().enumerate() {
                let Some(parent) = span.parent_id else {
                    continue;
                };
                let found = if len > LONG_RUN {
                    self.index.get(&(trace, parent)).copied()
                } else {
                    run.iter()
                        .rposition(|s| s.key().1 == parent)
                        .map(|p| (start + p) as u32)
                };
                if let Some(p) = found {
                    self.parent[start + i] = p;
                }
            }
            start += len;
        }
    }
}

impl Nodes {
    /// Nodes and edges of merged figures, sorted by id.
    fn graph(&self, merged: &Edges) -> (Vec<Node>, Vec<Edge>) {
        let mut received: BTreeMap<u32, Stats> = BTreeMap::new();
        for (&(caller, callee), stats) in merged {
            received.entry(caller).or_default();
            received.entry(callee).or_default().merge(stats);
        }
        let mut nodes: Vec<Node> = received
            .iter()
            .map(|(&node, stats)| {
                let (t, name) = &self.info[node as usize];
                Node {
                    id: node_id(*t, name),
                    name: name.to_string(),
                    node_type: *t,
                    stats: Statistics::of(stats),
                }
            })
            .collect();
        nodes.sort_by(|a, b| a.id.cmp(&b.id));
        let mut edges: Vec<Edge> = merged
            .iter()
            .map(|(&(caller, callee), stats)| Edge {
                caller: self.id(caller),
                callee: self.id(callee),
                stats: Statistics::of(stats),
            })
            .collect();
        edges.sort_by(|a, b| (&a.caller, &a.callee).cmp(&(&b.caller, &b.callee)));
        (nodes, edges)
    }
}
