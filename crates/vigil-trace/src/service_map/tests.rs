use std::sync::Arc;

use super::*;
use crate::model::{SpanId, TraceId};

/// 2026-01-01T00:00:00Z, ms.
const T0_MS: i64 = 1_767_225_600_000;
const T0_US: i64 = T0_MS * 1000;

fn span(
    trace: u32,
    id: u8,
    parent: Option<u8>,
    name: &str,
    service: &str,
    start_us: i64,
    end_us: i64,
) -> Span {
    let mut t = [0; 16];
    t[..4].copy_from_slice(&trace.to_be_bytes());
    t[15] = 1;
    Span::new(
        TraceId(t),
        SpanId([id; 8]),
        parent.map(|p| SpanId([p; 8])),
        name.to_owned(),
        service.to_owned(),
        start_us,
        end_us,
    )
}

/// client → vigil → vigil::cache → redis, vigil → vigil::inference_log →
/// postgresql; children first, as they end first.
fn vigil_trace(trace: u32, at_us: i64, status: u16) -> Vec<Span> {
    let mut root = span(trace, 1, None, "vigil", "vigil", at_us, at_us + 5_000);
    root.set_status(status);
    let cache = span(
        trace,
        2,
        Some(1),
        "cache",
        "vigil",
        at_us + 100,
        at_us + 900,
    );
    let mut redis = span(
        trace,
        3,
        Some(2),
        "redis",
        "vigil",
        at_us + 200,
        at_us + 800,
    );
    redis.remote = true;
    let log = span(
        trace,
        4,
        Some(1),
        "inference_log",
        "vigil",
        at_us + 3_000,
        at_us + 4_900,
    );
    let mut pg = span(
        trace,
        5,
        Some(4),
        "postgresql",
        "vigil",
        at_us + 3_100,
        at_us + 4_800,
    );
    pg.remote = true;
    vec![redis, cache, pg, log, root]
}

fn edge<'a>(graph: &'a ServiceGraph, caller: &str, callee: &str) -> &'a Statistics {
    &graph
        .edges
        .iter()
        .find(|e| e.caller == caller && e.callee == callee)
        .unwrap_or_else(|| panic!("no edge {caller} → {callee} in {:?}", ids(graph)))
        .stats
}

fn ids(graph: &ServiceGraph) -> Vec<(String, String, u64)> {
    graph
        .edges
        .iter()
        .map(|e| (e.caller.clone(), e.callee.clone(), e.stats.count))
        .collect()
}

fn hour(map: &ServiceMap) -> ServiceGraph {
    map.map(T0_MS, T0_MS + 3_600_000)
}

#[test]
fn vigils_trace_gives_exactly_its_nodes_and_edges() {
    let map = ServiceMap::new(ServiceMapConfig::default());
    let spans: Vec<Span> = (0..5)
        .flat_map(|i| vigil_trace(i, T0_US + i64::from(i) * 1_000_000, 200))
        .collect();
    map.add_batch(&spans, T0_MS + 10_000);
    let graph = hour(&map);
    let node_ids: Vec<&str> = graph.nodes.iter().map(|n| n.id.as_str()).collect();
    assert_eq!(
        node_ids,
        [
            "client",
            "remote:postgresql",
            "remote:redis",
            "service:vigil",
            "stage:vigil::cache",
            "stage:vigil::inference_log"
        ]
    );
    let want = [
        ("client", "service:vigil"),
        ("service:vigil", "stage:vigil::cache"),
        ("service:vigil", "stage:vigil::inference_log"),
        ("stage:vigil::cache", "remote:redis"),
        ("stage:vigil::inference_log", "remote:postgresql"),
    ];
    let got: Vec<(String, String, u64)> = want
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string(), 5))
        .collect();
    assert_eq!(ids(&graph), got);
    let root = edge(&graph, "client", "service:vigil");
    assert_eq!((root.ok, root.total_response_time_s), (5, 0.025));
    let redis = graph.nodes.iter().find(|n| n.id == "remote:redis").unwrap();
    assert_eq!(
        (redis.name.as_str(), redis.node_type),
        ("redis", NodeType::Remote)
    );
    assert_eq!(redis.stats.count, 5);
    let client = &graph.nodes[0];
    assert_eq!(
        (client.node_type, client.stats.count),
        (NodeType::Client, 0)
    );
    assert_eq!(map.pending_spans(), 0);
}

#[test]
fn each_status_lands_in_its_one_class() {
    let map = ServiceMap::new(ServiceMapConfig::default());
    let mut spans = Vec::new();
    for (i, status) in [200, 201, 404, 400, 429, 500, 503].into_iter().enumerate() {
        let mut root = span(i as u32, 1, None, "vigil", "vigil", T0_US, T0_US + 10);
        root.set_status(status);
        spans.push(root);
    }
    // Fault wins over throttle and error.
    let mut both = span(99, 1, None, "vigil", "vigil", T0_US, T0_US + 10);
    both.throttle = true;
    both.error = true;
    both.fault = true;
    spans.push(both);
    map.add_batch(&spans, T0_MS);
    let graph = hour(&map);
    let s = edge(&graph, "client", "service:vigil");
    assert_eq!(
        (s.ok, s.error, s.throttle, s.fault, s.count),
        (2, 2, 1, 3, 8)
    );
    let node = graph
        .nodes
        .iter()
        .find(|n| n.id == "service:vigil")
        .unwrap();
    assert_eq!(&node.stats, s);
}

/// gateway's root span (over OTLP) calls vigil's root.
fn upstream(trace: u32) -> (Span, Vec<Span>) {
    let gateway = span(trace, 9, None, "gateway", "gateway", T0_US, T0_US + 9_000);
    let mut vigil = vigil_trace(trace, T0_US + 1_000, 200);
    if let Some(root) = vigil.last_mut() {
        root.parent_id = Some(SpanId([9; 8]));
    }
    (gateway, vigil)
}

#[test]
fn an_upstream_parent_resolves_before_or_after_its_child() {
    for parent_first in [true, false] {
        let map = ServiceMap::new(ServiceMapConfig::default());
        let (gateway, vigil) = upstream(1);
        if parent_first {
            map.add_batch(&[gateway], T0_MS);
            map.add_batch(&vigil, T0_MS + 1_000);
        } else {
            map.add_batch(&vigil, T0_MS);
            assert_eq!(map.pending_spans(), 5, "the whole vigil part waits");
            map.add_batch(&[gateway], T0_MS + 20_000);
        }
        assert_eq!(map.pending_spans(), 0);
        let graph = hour(&map);
        assert_eq!(edge(&graph, "client", "service:gateway").count, 1);
        assert_eq!(edge(&graph, "service:gateway", "service:vigil").count, 1);
        assert_eq!(edge(&graph, "service:vigil", "stage:vigil::cache").count, 1);
        assert_eq!(graph.edges.len(), 6, "{:?}", ids(&graph));
    }
}

#[test]
fn a_parent_that_never_comes_is_the_client_after_the_timeout() {
    let map = ServiceMap::new(ServiceMapConfig::default());
    let (_, vigil) = upstream(1);
    map.add_batch(&vigil, T0_MS);
    map.add_batch(&[], T0_MS + 29_000);
    assert_eq!(map.pending_spans(), 5);
    assert!(hour(&map).edges.is_empty());
    map.add_batch(&[], T0_MS + 30_000);
    assert_eq!(map.pending_spans(), 0);
    let graph = hour(&map);
    assert_eq!(edge(&graph, "client", "service:vigil").count, 1);
    assert_eq!(edge(&graph, "stage:vigil::cache", "remote:redis").count, 1);
    assert_eq!(graph.edges.len(), 5);
}

#[test]
fn bounds_push_out_old_parents_and_waiting_children() {
    let map = ServiceMap::new(ServiceMapConfig {
        recent_spans: 2,
        pending_spans: 1,
        ..ServiceMapConfig::default()
    });
    let gateway = span(1, 9, None, "gateway", "gateway", T0_US, T0_US + 10);
    let others: Vec<Span> = (2..5)
        .map(|t| span(t, 1, None, "x", "x", T0_US, T0_US + 10))
        .collect();
    map.add_batch(&[gateway], T0_MS);
    map.add_batch(&others, T0_MS);
    // gateway is forgotten: its child waits, then a second waiting child
    // pushes the first out to the client.
    let child = span(1, 1, Some(9), "vigil", "vigil", T0_US, T0_US + 5);
    let orphan = span(7, 1, Some(8), "vigil", "vigil", T0_US, T0_US + 5);
    map.add_batch(&[child], T0_MS);
    map.add_batch(&[orphan], T0_MS);
    let graph = hour(&map);
    assert_eq!(edge(&graph, "client", "service:vigil").count, 1);
    assert!(graph.edges.iter().all(|e| e.caller != "service:gateway"));
    assert_eq!(map.pending_spans(), 1);
}

#[test]
fn too_many_names_share_the_other_node() {
    let map = ServiceMap::new(ServiceMapConfig {
        max_nodes: 2,
        ..ServiceMapConfig::default()
    });
    let spans: Vec<Span> = (0..4)
        .map(|t| span(t, 1, None, "x", &format!("svc{t}"), T0_US, T0_US + 10))
        .collect();
    map.add_batch(&spans, T0_MS);
    let graph = hour(&map);
    assert_eq!(
        ids(&graph),
        [
            ("client".into(), "other".into(), 2),
            ("client".into(), "service:svc0".into(), 1),
            ("client".into(), "service:svc1".into(), 1),
        ]
    );
}

#[test]
fn a_window_selects_whole_minutes_of_span_end() {
    let map = ServiceMap::new(ServiceMapConfig::default());
    let at = |minute: i64| T0_US + minute * 60_000_000 + 30_000_000;
    let spans = [
        span(1, 1, None, "a", "a", at(10), at(10)),
        span(2, 1, None, "b", "b", at(12), at(12)),
        // Starts in minute 12, ends in 13: counted in 13.
        span(3, 1, None, "c", "c", at(12), at(13)),
    ];
    map.add_batch(&spans, T0_MS + 20 * 60_000);
    let minute = |m: i64| T0_MS + m * 60_000;
    let callees = |g: &ServiceGraph| g.edges.iter().map(|e| e.callee.clone()).collect::<Vec<_>>();
    assert_eq!(callees(&map.map(minute(10), minute(11))), ["service:a"]);
    let g = map.map(minute(10) + 30_000, minute(12) + 1);
    assert_eq!((g.start_ms, g.end_ms), (minute(10), minute(13)));
    assert_eq!(callees(&g), ["service:a", "service:b"]);
    assert_eq!(
        callees(&map.map(minute(11), minute(12))),
        Vec::<String>::new()
    );
    assert_eq!(callees(&map.map(minute(13), minute(14))), ["service:c"]);
    assert!(map.map(minute(14), minute(10)).edges.is_empty());
}

#[test]
fn old_minutes_leave_with_the_retention() {
    let map = ServiceMap::new(ServiceMapConfig {
        retention_minutes: 60,
        ..ServiceMapConfig::default()
    });
    let old = span(1, 1, None, "a", "a", T0_US, T0_US + 10);
    map.add_batch(std::slice::from_ref(&old), T0_MS + 2 * 3_600_000);
    assert!(hour(&map).edges.is_empty(), "older than the retention");
    map.add_batch(&[old], T0_MS + 59 * 60_000);
    assert_eq!(hour(&map).edges.len(), 1);
    map.add_batch(&[], T0_MS + 60 * 60_000);
    assert!(hour(&map).edges.is_empty(), "dropped as time went on");
    let future = span(
        2,
        1,
        None,
        "f",
        "f",
        T0_US + 7_200_000_000,
        T0_US + 7_200_000_000,
    );
    map.add_batch(&[future], T0_MS);
    assert!(map.map(T0_MS, T0_MS + 10_000_000).edges.is_empty());
}

#[test]
fn percentiles_come_within_the_bucket_error() {
    let map = ServiceMap::new(ServiceMapConfig::default());
    let spans: Vec<Span> = (1..=100)
        .map(|ms| {
            span(
                ms,
                1,
                None,
                "vigil",
                "vigil",
                T0_US,
                T0_US + i64::from(ms) * 1000,
            )
        })
        .collect();
    map.add_batch(&spans, T0_MS);
    let graph = hour(&map);
    let s = edge(&graph, "client", "service:vigil");
    let near = |got: Option<f64>, want: f64| {
        let got = got.unwrap_or(f64::NAN);
        assert!((got / want - 1.0).abs() < 0.091, "{got} vs {want}");
    };
    near(s.p50_s, 0.050);
    near(s.p99_s, 0.099);
    assert!((s.total_response_time_s - 5.05).abs() < 1e-9);
    assert_eq!(s.histogram.iter().map(|b| b.count).sum::<u64>(), 100);
    assert!(s.histogram.windows(2).all(|w| w[0].value_s < w[1].value_s));
    assert!(s.histogram[0].value_s >= 0.001);
}

#[test]
fn the_graph_serializes_with_clear_names() {
    let map = ServiceMap::new(ServiceMapConfig::default());
    map.add_batch(&vigil_trace(1, T0_US, 200), T0_MS);
    let json = serde_json::to_value(hour(&map)).unwrap();
    assert_eq!(json["nodes"][0]["type"], "client");
    assert_eq!(json["nodes"][0]["id"], "client");
    let e = &json["edges"][0];
    assert_eq!(
        (e["caller"].as_str(), e["callee"].as_str()),
        (Some("client"), Some("service:vigil"))
    );
    assert_eq!(e["count"], 1);
    assert_eq!(e["total_response_time_s"], 0.005);
    assert!(e["p50_s"].is_f64() && e["p99_s"].is_f64());
    assert_eq!(e["histogram"][0]["count"], 1);
    assert!(e["histogram"][0]["value_s"].as_f64().unwrap() >= 0.005);
    let back: ServiceGraph = serde_json::from_value(json).unwrap();
    assert_eq!(back, hour(&map));
}

#[test]
fn minute_figures_are_handed_out_once_when_settled() {
    let map = ServiceMap::new(ServiceMapConfig::default());
    map.add_batch(&vigil_trace(1, T0_US, 200), T0_MS);
    map.add_batch(&vigil_trace(2, T0_US + 60_000_000, 500), T0_MS + 60_000);
    // Minute 0 ends at T0 + 60 s, settled 90 s later.
    assert!(map.take_minute_figures(T0_MS + 149_999).is_empty());
    let first = map.take_minute_figures(T0_MS + 150_000);
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].minute_ms, T0_MS);
    assert_eq!(first[0].edges.len(), 5);
    assert_eq!(first[0].edges[0].stats.ok, 1);
    assert!(map.take_minute_figures(T0_MS + 150_000).is_empty());
    let second = map.take_minute_figures(T0_MS + 300_000);
    assert_eq!(second.len(), 1);
    assert_eq!(
        (second[0].minute_ms, second[0].edges[0].stats.fault),
        (T0_MS + 60_000, 1)
    );
}

#[test]
fn any_split_into_batches_gives_the_same_map() {
    let spans: Vec<Span> = (0..20)
        .flat_map(|i| {
            vigil_trace(
                i,
                T0_US + i64::from(i) * 7_000_000,
                [200, 404, 503][i as usize % 3],
            )
        })
        .collect();
    let whole = ServiceMap::new(ServiceMapConfig::default());
    whole.add_batch(&spans, T0_MS);
    for size in [1, 3, 7, 50] {
        let split = ServiceMap::new(ServiceMapConfig::default());
        for chunk in spans.chunks(size) {
            split.add_batch(chunk, T0_MS);
        }
        assert_eq!(hour(&split), hour(&whole), "batches of {size}");
    }
}

/// Whole traces (Vigil's own) counted without being remembered give the
/// map that remembering them gives, whether the upstream caller's span
/// comes before or after; they are just no parents for later batches.
/// What the map needs of each of `spans`.
fn facts(spans: &[Span]) -> Vec<MapSpan> {
    spans.iter().map(MapSpan::from).collect()
}

#[test]
fn whole_traces_count_as_any_batch_and_are_not_remembered() {
    let spans: Vec<Span> = (0..20)
        .flat_map(|i| {
            vigil_trace(
                i,
                T0_US + i64::from(i) * 7_000_000,
                [200, 429, 500][i as usize % 3],
            )
        })
        .collect();
    let remembered = ServiceMap::new(ServiceMapConfig::default());
    remembered.add_batch(&spans, T0_MS);
    let whole = ServiceMap::new(ServiceMapConfig::default());
    whole.add_whole_traces(&facts(&spans), T0_MS);
    assert_eq!(hour(&whole), hour(&remembered));
    assert_eq!(whole.pending_spans(), 0);

    for parent_first in [true, false] {
        let map = ServiceMap::new(ServiceMapConfig::default());
        let (gateway, vigil) = upstream(1);
        if parent_first {
            map.add_batch(&[gateway], T0_MS);
            map.add_whole_traces(&facts(&vigil), T0_MS + 1_000);
        } else {
            map.add_whole_traces(&facts(&vigil), T0_MS);
            assert_eq!(map.pending_spans(), 5, "the whole vigil part waits");
            map.add_batch(&[gateway], T0_MS + 20_000);
        }
        assert_eq!(map.pending_spans(), 0);
        let graph = hour(&map);
        assert_eq!(edge(&graph, "service:gateway", "service:vigil").count, 1);
        assert_eq!(edge(&graph, "stage:vigil::cache", "remote:redis").count, 1);
        assert_eq!(graph.edges.len(), 6, "{:?}", ids(&graph));
    }

    // A later child of a whole trace's span finds no parent: it waits,
    // then counts as called by the client.
    let map = ServiceMap::new(ServiceMapConfig::default());
    map.add_whole_traces(&facts(&vigil_trace(1, T0_US, 200)), T0_MS);
    let late = span(1, 7, Some(1), "late", "vigil", T0_US + 10, T0_US + 20);
    map.add_batch(&[late], T0_MS + 1_000);
    assert_eq!(map.pending_spans(), 1);
}

/// Whole traces find their parents in their own run: short runs by
/// search, long ones (a deep chain, children before parents) by hash; a
/// trace in two runs, or a parent in another trace, is not found there.
#[test]
fn whole_traces_resolve_short_and_long_runs_as_add_batch_does() {
    let mut spans = vigil_trace(1, T0_US, 200);
    // 60 spans: a chain under the root, listed deepest first.
    let mut chain: Vec<Span> = (2..=60u8)
        .map(|id| span(2, id, Some(id - 1), "step", "vigil", T0_US, T0_US + 10))
        .collect();
    chain.reverse();
    spans.extend(chain);
    spans.push(span(2, 1, None, "vigil", "vigil", T0_US, T0_US + 900));
    spans.extend(vigil_trace(3, T0_US, 500));
    let remembered = ServiceMap::new(ServiceMapConfig::default());
    remembered.add_batch(&spans, T0_MS);
    let whole = ServiceMap::new(ServiceMapConfig::default());
    whole.add_whole_traces(&facts(&spans), T0_MS);
    assert_eq!(hour(&whole), hour(&remembered));
    assert_eq!(whole.pending_spans(), 0);
    assert_eq!(
        edge(&hour(&whole), "stage:vigil::step", "stage:vigil::step").count,
        58
    );
}

#[test]
fn batches_from_many_threads_all_count() {
    let map = Arc::new(ServiceMap::new(ServiceMapConfig::default()));
    let threads: Vec<_> = (0..4u32)
        .map(|t| {
            let map = Arc::clone(&map);
            std::thread::spawn(move || {
                for i in 0..50 {
                    map.add_batch(&vigil_trace(t * 1000 + i, T0_US, 200), T0_MS);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(
        edge(&hour(&map), "stage:vigil::cache", "remote:redis").count,
        200
    );
}

#[test]
fn a_cycle_of_parents_neither_panics_nor_waits_forever() {
    let map = ServiceMap::new(ServiceMapConfig::default());
    let a = span(1, 1, Some(2), "a", "vigil", T0_US, T0_US + 10);
    let b = span(1, 2, Some(1), "b", "vigil", T0_US, T0_US + 10);
    let own = span(2, 3, Some(3), "self", "vigil", T0_US, T0_US + 10);
    map.add_batch(&[a, b, own], T0_MS);
    map.add_batch(&[], T0_MS + 30_000);
    map.add_batch(&[], T0_MS + 60_000);
    assert_eq!(map.pending_spans(), 0);
    let total: u64 = hour(&map).edges.iter().map(|e| e.stats.count).sum();
    assert_eq!(total, 3);
}

/// A restart: the spans stored before it, fed to a fresh map and absorbed
/// into the live one (which has seen newer traces, its nodes interned in
/// another order), give the figures one map fed everything would have;
/// a child whose parent never came counts as called by the client; the
/// restored calls are not handed out again.
#[test]
fn an_absorbed_rebuild_gives_the_figures_of_one_map() {
    let restart_ms = T0_MS + 10 * 60_000;
    let stored: Vec<Vec<Span>> = (0..20)
        .map(|i| {
            vigil_trace(
                i,
                T0_US + i64::from(i) * 20_000_000,
                200 + (i % 3) as u16 * 150,
            )
        })
        .collect();
    let (gateway, vigil) = upstream(100);
    let mut orphan = span(101, 7, Some(6), "child", "gateway", T0_US, T0_US + 50);
    orphan.remote = true;
    let live: Vec<Vec<Span>> = (200..210)
        .map(|i| vigil_trace(i, (restart_ms + 1_000) * 1000, 200))
        .collect();

    let whole = ServiceMap::new(ServiceMapConfig::default());
    let rebuilt = ServiceMap::new(ServiceMapConfig::default());
    for (i, trace) in stored.iter().enumerate() {
        let at = T0_MS + i as i64 * 20_000 + 10;
        whole.add_batch(trace, at);
        rebuilt.add_batch(trace, at);
    }
    for map in [&whole, &rebuilt] {
        map.add_batch(std::slice::from_ref(&gateway), T0_MS + 1);
        map.add_batch(&vigil, T0_MS + 2);
        map.add_batch(std::slice::from_ref(&orphan), T0_MS + 3);
    }
    // The live map starts with an upstream-less vigil trace, so its node
    // ids differ from the rebuilt map's.
    let restarted = ServiceMap::new(ServiceMapConfig::default());
    for trace in &live {
        whole.add_batch(trace, restart_ms + 1_010);
        restarted.add_batch(trace, restart_ms + 1_010);
    }
    whole.add_batch(&[], restart_ms + 120_000);
    restarted.absorb(&rebuilt, restart_ms);
    restarted.add_batch(&[], restart_ms + 120_000);

    let window = |m: &ServiceMap| m.map(T0_MS, restart_ms + 3_600_000);
    assert_eq!(window(&restarted), window(&whole));
    let graph = window(&restarted);
    assert_eq!(edge(&graph, "client", "service:vigil").count, 30);
    assert_eq!(edge(&graph, "service:gateway", "service:vigil").count, 1);
    assert_eq!(
        edge(&graph, "client", "remote:child").count,
        1,
        "the orphan"
    );

    // Only the live calls are handed out: the previous process handed out
    // the restored ones.
    let handed = restarted.take_minute_figures(restart_ms + 10 * 60_000);
    let minutes: Vec<i64> = handed.iter().map(|m| m.minute_ms).collect();
    assert_eq!(minutes, vec![restart_ms]);
    let calls: u64 = handed[0]
        .edges
        .iter()
        .filter(|e| e.caller == "client")
        .map(|e| e.stats.count)
        .sum();
    assert_eq!(calls, 10, "{:?}", handed[0].edges);
}
