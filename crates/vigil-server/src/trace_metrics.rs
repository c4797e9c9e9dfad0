//! The service map's figures in the metric store: once a minute, every
//! settled minute's edges ([`ServiceMap::take_minute_figures`]) become
//! datapoints of `Vigil/ServiceMap`, one series per edge (dimensions
//! `Caller` and `Callee`, the node ids), stamped with the minute. So an
//! edge's traffic can be graphed past the map's retention and alarmed on
//! like any metric (`Faults` of `service:vigil` → `remote:postgresql`).
//!
//! Each minute hands out `Requests`, `Errors`, `Throttles` and `Faults`
//! (counts, zeros included: an alarm sees a real not-breaching point) and
//! `ResponseTime` (seconds): its count and sum are the calls' exact ones,
//! its distribution the map's histogram (each call at its bucket's
//! geometric middle, within ~9 %), so `p50`, `p99` and the other
//! percentiles work and agree with the map's own.
//! A minute settles 90 s after it ends (late children still find their
//! parents); at shutdown the minutes not yet settled are handed out too:
//! the next process rebuilds the map from the stored spans for its graph
//! but never hands those figures out again.

use std::sync::Arc;
use std::time::Duration;

use vigil_metrics::service::MetricsService;
use vigil_metrics::tsdb::Record;
use vigil_metrics::{Aggregate, Resolution, SeriesKey, Unit};
use vigil_trace::service_map::{Edge, MinuteFigures, ServiceMap};

/// The namespace of the service map's metrics.
pub const NAMESPACE: &str = "Vigil/ServiceMap";
/// Dimension: the calling node's id (`client`, `service:vigil`).
pub const DIM_CALLER: &str = "Caller";
/// Dimension: the called node's id (`stage:vigil::cache`, `remote:redis`).
pub const DIM_CALLEE: &str = "Callee";
/// Calls along the edge in the minute.
pub const REQUESTS: &str = "Requests";
/// Calls that were client errors (4xx) other than throttles.
pub const ERRORS: &str = "Errors";
/// Calls that were throttled (429).
pub const THROTTLES: &str = "Throttles";
/// Calls that were server errors (5xx).
pub const FAULTS: &str = "Faults";
/// The calls' durations, seconds.
pub const RESPONSE_TIME: &str = "ResponseTime";

/// Every metric of [`NAMESPACE`], with its unit.
pub const METRICS: [(&str, Unit); 5] = [
    (REQUESTS, Unit::Count),
    (ERRORS, Unit::Count),
    (THROTTLES, Unit::Count),
    (FAULTS, Unit::Count),
    (RESPONSE_TIME, Unit::Seconds),
];

/// How often the loop hands figures to the metric store.
const INTERVAL: Duration = Duration::from_secs(60);

/// Longest dimension value the metric store takes, in characters.
const MAX_VALUE_CHARS: usize = vigil_metrics::datum::MAX_DIMENSION_VALUE_CHARS;

fn dimension_value(id: &str) -> String {
    id.chars().take(MAX_VALUE_CHARS).collect()
}

/// The datapoints of `figures`: five per edge and minute.
pub fn records(figures: &[MinuteFigures]) -> Vec<Record> {
    let mut out = Vec::new();
    for minute in figures {
        for edge in &minute.edges {
            edge_records(minute.minute_ms, edge, &mut out);
        }
    }
    out
}

fn edge_records(minute_ms: i64, edge: &Edge, out: &mut Vec<Record>) {
    let stats = &edge.stats;
    if stats.count == 0 {
        return;
    }
    let key = |name: &str, unit: Unit| {
        SeriesKey::new(NAMESPACE, name)
            .with_unit(unit)
            .with_dimension(DIM_CALLER, dimension_value(&edge.caller))
            .with_dimension(DIM_CALLEE, dimension_value(&edge.callee))
    };
    let record = |key: SeriesKey, aggregate: Aggregate| Record {
        key,
        timestamp_ms: minute_ms,
        aggregate,
        resolution: Resolution::Standard,
    };
    for (name, n) in [
        (REQUESTS, stats.count),
        (ERRORS, stats.error),
        (THROTTLES, stats.throttle),
        (FAULTS, stats.fault),
    ] {
        out.push(record(
            key(name, Unit::Count),
            Aggregate::from_value(n as f64),
        ));
    }
    let values: Vec<f64> = stats.histogram.iter().map(|b| b.middle_s()).collect();
    let counts: Vec<f64> = stats.histogram.iter().map(|b| b.count as f64).collect();
    match Aggregate::from_values(&values, &counts) {
        Ok(mut aggregate) => {
            // The exact sum (the buckets' bounds only approximate it), so
            // `Average` is exact too.
            aggregate.sum = stats.total_response_time_s;
            out.push(record(key(RESPONSE_TIME, Unit::Seconds), aggregate));
        }
        Err(err) => tracing::warn!(
            error = %err,
            caller = %edge.caller,
            callee = %edge.callee,
            "service map edge without a response-time histogram"
        ),
    }
}

/// Hands the minutes settled at `now_ms` to `metrics`; the number of
/// datapoints stored. A failed write loses those minutes (logged): the map
/// hands each minute out once.
pub fn put_settled(map: &ServiceMap, metrics: &MetricsService, now_ms: i64) -> usize {
    put(map.take_minute_figures(now_ms), metrics)
}

/// Hands out every minute the map holds, settled or not (at shutdown).
pub fn put_all(map: &ServiceMap, metrics: &MetricsService, now_ms: i64) -> usize {
    // A day past now is past every minute's settling time.
    put(map.take_minute_figures(now_ms + 86_400_000), metrics)
}

fn put(figures: Vec<MinuteFigures>, metrics: &MetricsService) -> usize {
    let records = records(&figures);
    if records.is_empty() {
        return 0;
    }
    match metrics.put(&records) {
        Ok(()) => records.len(),
        Err(err) => {
            tracing::warn!(
                error = %err,
                datapoints = records.len(),
                minutes = figures.len(),
                "service map figures not stored in the metric store"
            );
            0
        }
    }
}

/// Once a minute, the settled minutes' figures into the metric store (on
/// the blocking pool: the store writes its log before answering).
pub async fn put_every_minute(map: Arc<ServiceMap>, metrics: Arc<MetricsService>) {
    let mut interval = tokio::time::interval(INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let (map, metrics) = (Arc::clone(&map), Arc::clone(&metrics));
        let put = tokio::task::spawn_blocking(move || {
            put_settled(&map, &metrics, crate::telemetry::now_ms())
        });
        if let Err(err) = put.await {
            tracing::warn!(error = %err, "service map metrics task failed");
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use axum::http::StatusCode;
    use vigil_trace::model::{Span, SpanId, TraceId};
    use vigil_trace::service_map::ServiceMapConfig;

    use super::*;
    use crate::test_util::{json_request, send, state_with_metrics};

    fn span(
        trace: u8,
        id: u8,
        parent: Option<u8>,
        name: &'static str,
        end_us: i64,
        ms: i64,
    ) -> Span {
        Span::new(
            TraceId([trace; 16]),
            SpanId([id; 8]),
            parent.map(|p| SpanId([p; 8])),
            name,
            "vigil",
            end_us - ms * 1000,
            end_us,
        )
    }

    /// Four requests in the minute `minute_ms` (200 with a cache stage
    /// calling Redis, 404, 429, 500; 10, 20, 30, 40 ms).
    fn spans(minute_ms: i64) -> Vec<Span> {
        let end = |s: i64| (minute_ms + s * 1000) * 1000;
        let mut out = Vec::new();
        for (i, status) in [200u16, 404, 429, 500].into_iter().enumerate() {
            let trace = i as u8 + 1;
            let mut root = span(
                trace,
                1,
                None,
                "vigil",
                end(10 + i as i64),
                10 * (i as i64 + 1),
            );
            root.set_status(status);
            if status == 200 {
                let mut redis = span(trace, 3, Some(2), "redis", end(9), 1);
                redis.remote = true;
                out.push(redis);
                out.push(span(trace, 2, Some(1), "cache", end(9), 2));
            }
            out.push(root);
        }
        out
    }

    async fn stats(
        state: &crate::state::AppState,
        name: &str,
        callee: &str,
        minute_ms: i64,
        stats: &str,
    ) -> serde_json::Value {
        let uri = format!(
            "/api/metrics/Vigil%2FServiceMap/{name}?dim.Caller={caller}&dim.Callee={callee}\
             &{stats}&period=60&start={minute_ms}&end={}",
            minute_ms + 60_000,
            caller = if callee == "service:vigil" {
                "client"
            } else {
                "service:vigil"
            },
        );
        let answer = send(state, json_request("GET", &uri, "")).await;
        assert_eq!(answer.status, StatusCode::OK, "{uri}: {}", answer.text);
        assert_eq!(
            answer.json["timestamps"].as_array().map(Vec::len),
            Some(1),
            "{uri}: {}",
            answer.text
        );
        answer.json["values"].clone()
    }

    #[tokio::test]
    async fn one_tick_puts_each_edges_minute_into_the_metric_store() {
        let state = state_with_metrics();
        let metrics = Arc::clone(state.metric_service().unwrap());
        // A whole minute a few minutes back: inside the store's window.
        let minute_ms = (crate::telemetry::now_ms() / 60_000 - 5) * 60_000;
        let map = ServiceMap::new(ServiceMapConfig::default());
        map.add_batch(&spans(minute_ms), minute_ms + 30_000);
        // Not settled yet (90 s after the minute's end): nothing.
        assert_eq!(put_settled(&map, &metrics, minute_ms + 120_000), 0);
        // client → vigil, vigil → vigil::cache, vigil::cache → redis.
        assert_eq!(put_settled(&map, &metrics, minute_ms + 150_000), 15);
        // Each minute is handed out once.
        assert_eq!(put_settled(&map, &metrics, minute_ms + 210_000), 0);

        let root = "service:vigil";
        let got = stats(
            &state,
            REQUESTS,
            root,
            minute_ms,
            "stat=Sum&stat=SampleCount",
        )
        .await;
        assert_eq!(got["Sum"][0], 4.0);
        assert_eq!(got["SampleCount"][0], 1.0);
        for (name, n) in [(ERRORS, 1.0), (THROTTLES, 1.0), (FAULTS, 1.0)] {
            let got = stats(&state, name, root, minute_ms, "stat=Sum").await;
            assert_eq!(got["Sum"][0], n, "{name}");
        }
        let got = stats(&state, ERRORS, "stage:vigil::cache", minute_ms, "stat=Sum").await;
        assert_eq!(got["Sum"][0], 0.0, "a zero is a datapoint");
        let got = stats(
            &state,
            RESPONSE_TIME,
            root,
            minute_ms,
            "stat=SampleCount&stat=Sum&stat=Average&stat=p50&stat=p99",
        )
        .await;
        assert_eq!(got["SampleCount"][0], 4.0);
        let sum = got["Sum"][0].as_f64().unwrap();
        assert!((sum - 0.1).abs() < 1e-9, "{got}");
        assert!((got["Average"][0].as_f64().unwrap() - 0.025).abs() < 1e-9);
        // The median agrees with the service map's own.
        let graph = map.map(minute_ms, minute_ms + 60_000);
        let edge = graph.edges.iter().find(|e| e.callee == root).unwrap();
        let (p50, map_p50) = (got["p50"][0].as_f64().unwrap(), edge.stats.p50_s.unwrap());
        assert!(
            (p50 - map_p50).abs() <= map_p50 * 0.02,
            "p50 {p50} vs {map_p50}"
        );
        // The store picks rank ⌊q·(n − 1)⌋ of the calls (10, 20, 30, 40 ms):
        // 20 and 30 ms, within the histogram's ~9 %.
        assert!((p50 - 0.02).abs() < 0.02 * 0.1, "p50 {p50}");
        let p99 = got["p99"][0].as_f64().unwrap();
        assert!((p99 - 0.03).abs() < 0.03 * 0.1, "p99 {p99}");

        // The series carry the unit and both dimensions.
        let list = send(
            &state,
            json_request("GET", "/api/metrics?namespace=Vigil%2FServiceMap", ""),
        )
        .await;
        assert_eq!(list.status, StatusCode::OK, "{}", list.text);
        let series = list.json["series"].as_array().unwrap();
        assert_eq!(series.len(), 15, "{}", list.text);
        let redis = series
            .iter()
            .find(|s| s["name"] == RESPONSE_TIME && s["dimensions"]["Callee"] == "remote:redis")
            .unwrap();
        assert_eq!(redis["dimensions"]["Caller"], "stage:vigil::cache");
        assert_eq!(redis["unit"], "Seconds");
    }

    #[test]
    fn at_shutdown_the_unsettled_minutes_are_handed_out() {
        let metrics = MetricsService::in_memory(
            vigil_metrics::tsdb::TsdbConfig::default(),
            Arc::new(vigil_metrics::registry::Registry::new()),
        )
        .unwrap();
        let minute_ms = (crate::telemetry::now_ms() / 60_000 - 1) * 60_000;
        let map = ServiceMap::new(ServiceMapConfig::default());
        map.add_batch(&spans(minute_ms), minute_ms + 50_000);
        assert_eq!(put_settled(&map, &metrics, minute_ms + 60_000), 0);
        assert_eq!(put_all(&map, &metrics, minute_ms + 60_000), 15);
        assert_eq!(put_all(&map, &metrics, minute_ms + 60_000), 0);
    }

    #[test]
    fn a_dimension_value_is_cut_to_what_the_store_takes() {
        let long = "x".repeat(MAX_VALUE_CHARS + 10);
        assert_eq!(dimension_value(&long).chars().count(), MAX_VALUE_CHARS);
        assert_eq!(dimension_value("remote:redis"), "remote:redis");
    }
}
