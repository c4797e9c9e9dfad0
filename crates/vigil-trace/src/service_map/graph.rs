//! The service graph as a query answers it: nodes and edges with their
//! figures, in a deterministic order, serde-serializable.

use serde::{Deserialize, Serialize};

use super::stats::{BUCKETS, Stats, bucket_index, bucket_middle_s, bucket_upper_s};

/// What a node stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeType {
    /// Callers with no span of their own (the callers of root spans).
    Client,
    /// A service: the root span of its part of a trace (OTLP's
    /// `service.name`, `vigil` for Vigil).
    Service,
    /// A stage inside a service: a non-remote child span of the same
    /// service, named `<service>::<span name>` (`vigil::cache`).
    Stage,
    /// A downstream call (`remote = true`), named by the span's name
    /// (`redis`, `postgresql`).
    Remote,
    /// Names beyond the map's `max_nodes` bound, counted together.
    Other,
}

impl NodeType {
    /// The prefix of its nodes' ids.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeType::Client => "client",
            NodeType::Service => "service",
            NodeType::Stage => "stage",
            NodeType::Remote => "remote",
            NodeType::Other => "other",
        }
    }
}

/// The id of a node: `client`, `other`, or `<type>:<name>`
/// (`service:vigil`, `stage:vigil::cache`, `remote:redis`), so a remote
/// call and a service of the same name stay two nodes.
pub fn node_id(node_type: NodeType, name: &str) -> String {
    match node_type {
        NodeType::Client | NodeType::Other => node_type.as_str().to_owned(),
        _ => format!("{}:{name}", node_type.as_str()),
    }
}

/// A service graph over a window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceGraph {
    /// The window's start, ms since the epoch, rounded down to a minute.
    pub start_ms: i64,
    /// The window's end (exclusive), ms since the epoch, rounded up to a
    /// minute.
    pub end_ms: i64,
    /// Every node with an edge in the window, sorted by id.
    pub nodes: Vec<Node>,
    /// Every edge with a call in the window, sorted by caller then callee.
    pub edges: Vec<Edge>,
}

/// One node; its figures are those of the calls it received (all zero for
/// the client).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Node {
    /// Unique in the graph: see [`node_id`].
    pub id: String,
    /// As shown: `client`, `vigil`, `vigil::cache`, `redis`.
    pub name: String,
    /// What it stands for.
    #[serde(rename = "type")]
    pub node_type: NodeType,
    /// The calls it received.
    #[serde(flatten)]
    pub stats: Statistics,
}

/// One edge, caller → callee; its figures are those of the callee's spans.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Edge {
    /// The caller's node id.
    pub caller: String,
    /// The callee's node id.
    pub callee: String,
    /// The calls along it.
    #[serde(flatten)]
    pub stats: Statistics,
}

/// Counts and response times of some calls, each call counted once, in the
/// first class that applies: fault, throttle, other error, ok.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Statistics {
    /// Every call.
    pub count: u64,
    /// Calls without an error.
    pub ok: u64,
    /// Client errors (4xx) other than throttling.
    pub error: u64,
    /// Throttled calls (429).
    pub throttle: u64,
    /// Server errors (5xx).
    pub fault: u64,
    /// The sum of the calls' durations, seconds.
    pub total_response_time_s: f64,
    /// The median duration estimated from the histogram (within ~9 %),
    /// seconds; `None` without calls.
    pub p50_s: Option<f64>,
    /// The 99th percentile, likewise.
    pub p99_s: Option<f64>,
    /// Durations in fixed log-spaced buckets (bounds ×2^(1/4), 1 µs …
    /// 67 s), non-empty buckets only, ascending.
    pub histogram: Vec<HistogramBin>,
}

/// One histogram bucket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistogramBin {
    /// The bucket's upper bound, seconds (the last bucket also holds
    /// longer calls).
    pub value_s: f64,
    /// Calls in it.
    pub count: u64,
}

impl HistogramBin {
    /// The estimate the bucket stands for, seconds: its geometric middle
    /// (within ~9 % of any call in it; 1 µs for the first bucket), the
    /// value the map's own percentiles answer.
    pub fn middle_s(&self) -> f64 {
        bucket_middle_s(bucket_index(self.value_s))
    }
}

impl Statistics {
    pub(super) fn of(stats: &Stats) -> Statistics {
        Statistics {
            count: stats.count(),
            ok: stats.ok,
            error: stats.error,
            throttle: stats.throttle,
            fault: stats.fault,
            total_response_time_s: stats.total_us as f64 / 1e6,
            p50_s: stats.quantile_s(0.5),
            p99_s: stats.quantile_s(0.99),
            histogram: (0..BUCKETS)
                .filter(|&i| stats.histogram[i] > 0)
                .map(|i| HistogramBin {
                    value_s: bucket_upper_s(i),
                    count: stats.histogram[i],
                })
                .collect(),
        }
    }
}

/// One minute's edges, for the metric store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MinuteFigures {
    /// The minute's start, ms since the epoch.
    pub minute_ms: i64,
    /// Its edges, sorted by caller then callee.
    pub edges: Vec<Edge>,
}
