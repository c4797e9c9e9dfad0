//! The hot-path side of metrics: counters and distributions that request
//! handlers bump, and the once-a-second drain that turns them into
//! datapoints.
//!
//! Handles are resolved once (per route at start-up, per model at load) and
//! are cheap to clone; recording touches one shard (an atomic add for a
//! counter, one uncontended lock for a distribution), never a map or a name.
//! The same handles answer Prometheus (cumulative values since start).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::aggregate::Aggregate;
use crate::model::{SeriesKey, Unit};

/// Shards per handle; a thread always uses the same one.
const SHARDS: usize = 8;

/// Bucket bounds (milliseconds) for latency distributions in Prometheus.
pub const LATENCY_BUCKETS_MS: &[f64] = &[
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0,
    5000.0, 10000.0,
];

/// Bucket bounds for scores in `[0, 1]` (probabilities).
pub const SCORE_BUCKETS: &[f64] = &[
    0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99,
];

/// Bucket bounds for small counts (requests in flight).
pub const COUNT_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
];

fn shard() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SHARD: usize = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
    }
    SHARD.with(|s| *s)
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a shard leaves counts, never a broken invariant.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// How a handle shows in Prometheus.
#[derive(Debug, Clone)]
pub struct PromName {
    /// Metric name without suffixes (`vigil_gateway_latency_seconds`).
    pub name: String,
    /// The `# HELP` text.
    pub help: &'static str,
}

#[derive(Debug)]
#[repr(align(64))]
struct PaddedCount(AtomicU64);

#[derive(Debug)]
struct CounterCell {
    key: SeriesKey,
    prom: PromName,
    shards: [PaddedCount; SHARDS],
    /// The total at the last drain.
    drained: AtomicU64,
    /// Reports 0 in a drain with activity even before it first counts
    /// (`Errors` beside a busy `Invocations`).
    zeros: bool,
}

/// A monotonically increasing count (Invocations, 4XXError).
#[derive(Debug, Clone)]
pub struct Counter(Arc<CounterCell>);

impl Counter {
    /// Adds `n`.
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.shards[shard()].0.fetch_add(n, Ordering::Relaxed);
    }

    /// Adds one.
    #[inline]
    pub fn incr(&self) {
        self.add(1);
    }

    /// The total since start.
    pub fn total(&self) -> u64 {
        self.0
            .shards
            .iter()
            .map(|s| s.0.load(Ordering::Relaxed))
            .sum()
    }

    /// The series this counter feeds.
    pub fn key(&self) -> &SeriesKey {
        &self.0.key
    }
}

#[derive(Debug, Default)]
struct DistShard {
    /// Values since the last drain.
    window: Option<Aggregate>,
    /// Cumulative per-bucket counts (not cumulative across buckets).
    buckets: Vec<u64>,
    count: u64,
    sum: f64,
}

#[derive(Debug)]
struct DistCell {
    key: SeriesKey,
    prom: PromName,
    bounds: &'static [f64],
    shards: [Mutex<DistShard>; SHARDS],
}

/// A distribution of values (Latency, Duration, score): every value goes
/// into the period's sketch, so percentiles can be graphed.
#[derive(Debug, Clone)]
pub struct Distribution(Arc<DistCell>);

impl Distribution {
    /// Records one value.
    #[inline]
    pub fn record(&self, value: f64) {
        if !value.is_finite() {
            return;
        }
        let cell = &*self.0;
        let bucket = cell.bounds.partition_point(|bound| *bound < value);
        let mut shard = lock(&cell.shards[shard()]);
        match &mut shard.window {
            // In place: no sketch is built per value.
            Some(agg) => {
                agg.count += 1.0;
                agg.sum += value;
                agg.min = agg.min.min(value);
                agg.max = agg.max.max(value);
                if let Some(sketch) = &mut agg.sketch {
                    sketch.add(value, 1);
                }
            }
            None => shard.window = Some(Aggregate::from_value(value)),
        }
        if shard.buckets.len() != cell.bounds.len() + 1 {
            shard.buckets = vec![0; cell.bounds.len() + 1];
        }
        shard.buckets[bucket] += 1;
        shard.count += 1;
        shard.sum += value;
    }

    /// Values recorded since start.
    pub fn count(&self) -> u64 {
        self.0.shards.iter().map(|s| lock(s).count).sum()
    }

    /// The series this distribution feeds.
    pub fn key(&self) -> &SeriesKey {
        &self.0.key
    }
}

#[derive(Debug, Clone)]
enum Handle {
    Counter(Counter),
    Distribution(Distribution),
}

impl Handle {
    fn key(&self) -> &SeriesKey {
        match self {
            Handle::Counter(c) => &c.0.key,
            Handle::Distribution(d) => &d.0.key,
        }
    }
}

/// Every handle of the process. Registering the same key twice returns the
/// same handle, so a reloaded model keeps counting into its series.
#[derive(Debug, Default)]
pub struct Registry {
    handles: Mutex<Vec<Handle>>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Registry::default()
    }

    /// The counter of `key`, created on first use.
    pub fn counter(&self, key: SeriesKey, prom: PromName) -> Counter {
        self.counter_with(key, prom, false)
    }

    /// Like [`Registry::counter`], reporting 0 in every drain that has any
    /// activity, also before it first counts: an error count whose zeros
    /// are data (a graph shows 0, an alarm sees a real not-breaching point).
    pub fn counter_reporting_zeros(&self, key: SeriesKey, prom: PromName) -> Counter {
        self.counter_with(key, prom, true)
    }

    fn counter_with(&self, key: SeriesKey, prom: PromName, zeros: bool) -> Counter {
        let mut handles = lock(&self.handles);
        for handle in handles.iter() {
            if let Handle::Counter(c) = handle
                && c.0.key == key
            {
                return c.clone();
            }
        }
        let counter = Counter(Arc::new(CounterCell {
            key,
            prom,
            shards: std::array::from_fn(|_| PaddedCount(AtomicU64::new(0))),
            drained: AtomicU64::new(0),
            zeros,
        }));
        handles.push(Handle::Counter(counter.clone()));
        counter
    }

    /// The distribution of `key`, created on first use; `bounds` are its
    /// Prometheus buckets (ascending).
    pub fn distribution(
        &self,
        key: SeriesKey,
        prom: PromName,
        bounds: &'static [f64],
    ) -> Distribution {
        let mut handles = lock(&self.handles);
        for handle in handles.iter() {
            if let Handle::Distribution(d) = handle
                && d.0.key == key
            {
                return d.clone();
            }
        }
        let dist = Distribution(Arc::new(DistCell {
            key,
            prom,
            bounds,
            shards: std::array::from_fn(|_| Mutex::new(DistShard::default())),
        }));
        handles.push(Handle::Distribution(dist.clone()));
        dist
    }

    /// Takes what was recorded since the last drain: one aggregate per
    /// series that saw data. A counter's datapoint is its increase; when
    /// anything at all happened, counters that have ever counted report
    /// their increase even when it is 0 (so `Errors` has a 0 beside a busy
    /// `Invocations`, as the cloud publishes it).
    pub fn drain(&self) -> Vec<(SeriesKey, Aggregate)> {
        let handles = lock(&self.handles).clone();
        let mut out = Vec::new();
        let mut idle_counters = Vec::new();
        for handle in &handles {
            match handle {
                Handle::Counter(c) => {
                    let total = c.total();
                    let before = c.0.drained.swap(total, Ordering::Relaxed);
                    let delta = total.saturating_sub(before);
                    if delta > 0 {
                        out.push((c.0.key.clone(), Aggregate::from_value(delta as f64)));
                    } else if total > 0 || c.0.zeros {
                        idle_counters.push(c.0.key.clone());
                    }
                }
                Handle::Distribution(d) => {
                    let mut merged: Option<Aggregate> = None;
                    for shard in &d.0.shards {
                        if let Some(window) = lock(shard).window.take() {
                            match &mut merged {
                                Some(m) => m.merge(&window),
                                None => merged = Some(window),
                            }
                        }
                    }
                    if let Some(agg) = merged {
                        out.push((d.0.key.clone(), agg));
                    }
                }
            }
        }
        if !out.is_empty() {
            out.extend(
                idle_counters
                    .into_iter()
                    .map(|key| (key, Aggregate::from_value(0.0))),
            );
        }
        out
    }

    /// The keys of every registered handle.
    pub fn keys(&self) -> Vec<SeriesKey> {
        lock(&self.handles)
            .iter()
            .map(|h| h.key().clone())
            .collect()
    }

    /// Every handle in Prometheus's text format (version 0.0.4): counters
    /// as `_total`, distributions as histograms with their buckets; the
    /// dimensions become labels.
    pub fn render_prometheus(&self) -> String {
        let mut handles = lock(&self.handles).clone();
        handles.sort_by(|a, b| prom_of(a).name.cmp(&prom_of(b).name));
        let mut out = String::new();
        let mut last_family = String::new();
        for handle in &handles {
            let prom = prom_of(handle);
            let labels = labels(handle.key());
            match handle {
                Handle::Counter(c) => {
                    if prom.name != last_family {
                        let _ = writeln!(out, "# HELP {}_total {}", prom.name, prom.help);
                        let _ = writeln!(out, "# TYPE {}_total counter", prom.name);
                    }
                    let _ = writeln!(out, "{}_total{} {}", prom.name, braces(&labels), c.total());
                }
                Handle::Distribution(d) => {
                    if prom.name != last_family {
                        let _ = writeln!(out, "# HELP {} {}", prom.name, prom.help);
                        let _ = writeln!(out, "# TYPE {} histogram", prom.name);
                    }
                    let mut buckets = vec![0u64; d.0.bounds.len() + 1];
                    let (mut count, mut sum) = (0u64, 0.0f64);
                    for shard in &d.0.shards {
                        let shard = lock(shard);
                        for (total, n) in buckets.iter_mut().zip(&shard.buckets) {
                            *total += n;
                        }
                        count += shard.count;
                        sum += shard.sum;
                    }
                    // Base units on /metrics (promtool: "use base unit seconds").
                    let divisor = prometheus_divisor(handle.key().unit);
                    let mut cumulative = 0;
                    for (bound, n) in d.0.bounds.iter().zip(&buckets) {
                        cumulative += n;
                        let le = with_label(&labels, "le", &format_value(*bound / divisor));
                        let _ = writeln!(out, "{}_bucket{} {cumulative}", prom.name, braces(&le));
                    }
                    let le = with_label(&labels, "le", "+Inf");
                    let _ = writeln!(out, "{}_bucket{} {count}", prom.name, braces(&le));
                    let _ = writeln!(
                        out,
                        "{}_sum{} {}",
                        prom.name,
                        braces(&labels),
                        format_value(sum / divisor)
                    );
                    let _ = writeln!(out, "{}_count{} {count}", prom.name, braces(&labels));
                }
            }
            last_family.clone_from(&prom.name);
        }
        out
    }
}

/// What `/metrics` divides a distribution's values by to show them in the
/// base unit Prometheus expects (seconds, not milliseconds): 1000 for
/// Milliseconds, 1e6 for Microseconds, 1 otherwise. A family's name must
/// then say `_seconds`.
pub fn prometheus_divisor(unit: Unit) -> f64 {
    match unit {
        Unit::Milliseconds => 1e3,
        Unit::Microseconds => 1e6,
        _ => 1.0,
    }
}

fn prom_of(handle: &Handle) -> &PromName {
    match handle {
        Handle::Counter(c) => &c.0.prom,
        Handle::Distribution(d) => &d.0.prom,
    }
}

/// `name="value"` pairs from the dimensions, names made Prometheus-safe.
fn labels(key: &SeriesKey) -> Vec<String> {
    key.dimensions
        .iter()
        .map(|(name, value)| format!("{}=\"{}\"", label_name(name), escape(value)))
        .collect()
}

fn with_label(labels: &[String], name: &str, value: &str) -> Vec<String> {
    let mut out = labels.to_vec();
    out.push(format!("{name}=\"{value}\""));
    out
}

fn braces(labels: &[String]) -> String {
    if labels.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", labels.join(","))
    }
}

/// A label name matching `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn label_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn format_value(v: f64) -> String {
    if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.to_string()
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prom(name: &str) -> PromName {
        PromName {
            name: name.to_string(),
            help: "test metric",
        }
    }

    #[test]
    fn the_same_key_gives_the_same_counter() {
        let r = Registry::new();
        let a = r.counter(SeriesKey::new("Ns", "Hits"), prom("ns_hits"));
        let b = r.counter(SeriesKey::new("Ns", "Hits"), prom("ns_hits"));
        a.add(2);
        b.incr();
        assert_eq!(a.total(), 3);
        assert_eq!(r.keys().len(), 1);
    }

    #[test]
    fn a_drain_gives_increases_and_zeros_beside_activity() {
        let r = Registry::new();
        let hits = r.counter(SeriesKey::new("Ns", "Hits"), prom("ns_hits"));
        let errors = r.counter(SeriesKey::new("Ns", "Errors"), prom("ns_errors"));
        let never = r.counter(SeriesKey::new("Ns", "Never"), prom("ns_never"));
        hits.add(5);
        errors.add(1);
        let first = r.drain();
        assert_eq!(first.len(), 2);
        hits.add(3);
        let second = r.drain();
        let value = |key: &str| {
            second
                .iter()
                .find(|(k, _)| k.name == key)
                .map(|(_, a)| a.sum)
        };
        assert_eq!(value("Hits"), Some(3.0));
        assert_eq!(value("Errors"), Some(0.0));
        assert_eq!(value("Never"), None);
        // Nothing happened: nothing to report, not even zeros.
        assert!(r.drain().is_empty());
        let _ = never;
    }

    #[test]
    fn a_zero_reporting_counter_is_0_beside_activity_before_it_counts() {
        let r = Registry::new();
        let busy = r.counter(SeriesKey::new("Ns", "Invocations"), prom("ns_inv"));
        let errors = r.counter_reporting_zeros(SeriesKey::new("Ns", "Errors"), prom("ns_err"));
        busy.add(2);
        let drained = r.drain();
        let errors_point = drained
            .iter()
            .find(|(k, _)| k.name == "Errors")
            .map(|(_, a)| a.sum);
        assert_eq!(errors_point, Some(0.0));
        assert!(r.drain().is_empty());
        errors.incr();
        assert_eq!(r.drain().len(), 2);
    }

    #[test]
    fn a_distribution_drains_its_window_across_threads() {
        let r = Registry::new();
        let d = r.distribution(
            SeriesKey::new("Ns", "Latency"),
            prom("ns_latency"),
            LATENCY_BUCKETS_MS,
        );
        std::thread::scope(|s| {
            for t in 0..4 {
                let d = d.clone();
                s.spawn(move || {
                    for i in 0..100 {
                        d.record(f64::from(t * 100 + i));
                    }
                });
            }
        });
        let drained = r.drain();
        assert_eq!(drained.len(), 1);
        let agg = &drained[0].1;
        assert_eq!(agg.count, 400.0);
        assert_eq!(agg.min, 0.0);
        assert_eq!(agg.max, 399.0);
        assert_eq!(agg.sum, (0..400).sum::<i32>() as f64);
        assert!(r.drain().is_empty());
        assert_eq!(d.count(), 400);
    }

    #[test]
    fn prometheus_text_has_cumulative_buckets_and_labels() {
        let r = Registry::new();
        let d = r.distribution(
            SeriesKey::new("Ns", "Latency").with_dimension("route", "/v1/score"),
            prom("ns_latency_milliseconds"),
            &[1.0, 10.0],
        );
        d.record(0.5);
        d.record(5.0);
        d.record(50.0);
        let c = r.counter(
            SeriesKey::new("Ns", "Count").with_dimension("route", "/v1/\"x\""),
            prom("ns_count"),
        );
        c.add(7);
        let text = r.render_prometheus();
        assert!(
            text.contains("# TYPE ns_latency_milliseconds histogram"),
            "{text}"
        );
        assert!(text.contains("ns_latency_milliseconds_bucket{route=\"/v1/score\",le=\"1\"} 1"));
        assert!(text.contains("ns_latency_milliseconds_bucket{route=\"/v1/score\",le=\"10\"} 2"));
        assert!(text.contains("ns_latency_milliseconds_bucket{route=\"/v1/score\",le=\"+Inf\"} 3"));
        assert!(text.contains("ns_latency_milliseconds_sum{route=\"/v1/score\"} 55.5"));
        assert!(
            text.contains("ns_count_total{route=\"/v1/\\\"x\\\"\"} 7"),
            "{text}"
        );
    }

    #[test]
    fn millisecond_distributions_show_in_seconds() {
        let r = Registry::new();
        let d = r.distribution(
            SeriesKey::new("Ns", "Latency").with_unit(Unit::Milliseconds),
            prom("ns_latency_seconds"),
            &[0.05, 2.5, 1000.0],
        );
        d.record(2.0);
        d.record(1500.0);
        let text = r.render_prometheus();
        for line in [
            "ns_latency_seconds_bucket{le=\"0.00005\"} 0",
            "ns_latency_seconds_bucket{le=\"0.0025\"} 1",
            "ns_latency_seconds_bucket{le=\"1\"} 1",
            "ns_latency_seconds_bucket{le=\"+Inf\"} 2",
            "ns_latency_seconds_sum 1.502",
            "ns_latency_seconds_count 2",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line} in\n{text}");
        }
        // The drained datapoints keep the series' unit.
        let drained = r.drain();
        assert_eq!(drained[0].1.sum, 1502.0);
        assert_eq!(prometheus_divisor(Unit::Count), 1.0);
    }

    #[test]
    fn label_names_are_made_safe() {
        assert_eq!(label_name("status class"), "status_class");
        assert_eq!(label_name("4xx"), "_4xx");
        assert_eq!(label_name(""), "_");
    }
}
