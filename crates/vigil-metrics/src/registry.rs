//! The hot-path side of metrics: counters and distributions that request
//! handlers bump, and the once-a-second drain that turns them into
//! datapoints.
//!
//! Handles are resolved once (per route at start-up, per model at load) and
//! are cheap to clone; recording touches one shard (an atomic add for a
//! counter, one uncontended lock for a distribution), never a map or a name.
//! The same handles answer Prometheus (cumulative values since start), in
//! its text format 0.0.4 or in OpenMetrics 1.0.0, whose histogram buckets
//! carry an exemplar: the trace of a recent value in that bucket.

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

/// The trace of one value a distribution recorded: what an OpenMetrics
/// bucket links to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Exemplar {
    /// The trace's 16 bytes (rendered as 32 lowercase hex digits).
    pub trace_id: [u8; 16],
    /// The value recorded, in the series' unit.
    pub value: f64,
    /// When it was recorded, ms since the epoch.
    pub timestamp_ms: i64,
}

#[derive(Debug, Default)]
struct DistShard {
    /// Values since the last drain.
    window: Option<Aggregate>,
    /// Cumulative per-bucket counts (not cumulative across buckets).
    buckets: Vec<u64>,
    /// The latest exemplar per bucket; sized on the first exemplar, so a
    /// distribution that never gets one allocates nothing for them.
    exemplars: Vec<Option<Exemplar>>,
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
        self.record_inner(value, None);
    }

    /// Records one value and keeps `trace_id` (at `timestamp_ms`) as its
    /// bucket's exemplar, replacing the bucket's older one. It is kept in
    /// the shard the value goes to, under the same lock: no allocation
    /// after a bucket's first, no lock beyond [`Distribution::record`]'s.
    #[inline]
    pub fn record_with_exemplar(&self, value: f64, trace_id: [u8; 16], timestamp_ms: i64) {
        self.record_inner(value, Some((trace_id, timestamp_ms)));
    }

    // Always inlined, so `record` carries no exemplar branch.
    #[inline(always)]
    fn record_inner(&self, value: f64, exemplar: Option<([u8; 16], i64)>) {
        if !value.is_finite() {
            return;
        }
        let cell = &*self.0;
        let bucket = cell.bounds.partition_point(|bound| *bound < value);
        let mut shard = lock(&cell.shards[shard()]);
        if let Some((trace_id, timestamp_ms)) = exemplar {
            if shard.exemplars.len() != cell.bounds.len() + 1 {
                shard.exemplars = vec![None; cell.bounds.len() + 1];
            }
            shard.exemplars[bucket] = Some(Exemplar {
                trace_id,
                value,
                timestamp_ms,
            });
        }
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

    /// Per bucket (the bounds' order, then `+Inf`), the latest exemplar of
    /// any shard.
    pub fn exemplars(&self) -> Vec<Option<Exemplar>> {
        self.totals().exemplars
    }

    /// Every shard summed: counts per bucket (not cumulative), count, sum
    /// and the latest exemplar per bucket.
    fn totals(&self) -> Totals {
        let cell = &*self.0;
        let mut totals = Totals {
            buckets: vec![0; cell.bounds.len() + 1],
            exemplars: vec![None; cell.bounds.len() + 1],
            count: 0,
            sum: 0.0,
        };
        for shard in &cell.shards {
            let shard = lock(shard);
            for (total, n) in totals.buckets.iter_mut().zip(&shard.buckets) {
                *total += n;
            }
            for (latest, e) in totals.exemplars.iter_mut().zip(&shard.exemplars) {
                if let Some(e) = e
                    && latest.is_none_or(|l: Exemplar| l.timestamp_ms < e.timestamp_ms)
                {
                    *latest = Some(*e);
                }
            }
            totals.count += shard.count;
            totals.sum += shard.sum;
        }
        totals
    }

    /// The series this distribution feeds.
    pub fn key(&self) -> &SeriesKey {
        &self.0.key
    }
}

/// A distribution's shards summed, for a scrape.
struct Totals {
    buckets: Vec<u64>,
    exemplars: Vec<Option<Exemplar>>,
    count: u64,
    sum: f64,
}

/// The text formats `/metrics` can answer in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TextFormat {
    /// Prometheus's text format 0.0.4.
    Prometheus,
    /// OpenMetrics 1.0.0, with exemplars.
    OpenMetrics,
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
        self.render(TextFormat::Prometheus)
    }

    /// Every handle in OpenMetrics 1.0.0 text: the same families and
    /// samples as [`Registry::render_prometheus`], a counter's family named
    /// without its `_total`, each bucket that has one followed by its
    /// exemplar (`# {trace_id="…"} value timestamp`), and `# EOF` last.
    pub fn render_openmetrics(&self) -> String {
        self.render(TextFormat::OpenMetrics)
    }

    fn render(&self, format: TextFormat) -> String {
        let om = format == TextFormat::OpenMetrics;
        let mut handles = lock(&self.handles).clone();
        handles.sort_by(|a, b| prom_of(a).name.cmp(&prom_of(b).name));
        let mut out = String::new();
        let mut last_family = String::new();
        for handle in &handles {
            let prom = prom_of(handle);
            let labels = labels(handle.key());
            let help = if om {
                escape(prom.help)
            } else {
                prom.help.replace('\\', "\\\\").replace('\n', "\\n")
            };
            match handle {
                Handle::Counter(c) => {
                    if prom.name != last_family {
                        // OpenMetrics names the family, the sample adds `_total`.
                        let family = if om {
                            prom.name.clone()
                        } else {
                            format!("{}_total", prom.name)
                        };
                        let _ = writeln!(out, "# HELP {family} {help}");
                        let _ = writeln!(out, "# TYPE {family} counter");
                    }
                    let _ = writeln!(out, "{}_total{} {}", prom.name, braces(&labels), c.total());
                }
                Handle::Distribution(d) => {
                    if prom.name != last_family {
                        let _ = writeln!(out, "# HELP {} {help}", prom.name);
                        let _ = writeln!(out, "# TYPE {} histogram", prom.name);
                    }
                    let totals = d.totals();
                    // Base units on /metrics (promtool: "use base unit seconds").
                    let divisor = prometheus_divisor(handle.key().unit);
                    let mut cumulative = 0;
                    let bounds = d.0.bounds.iter().map(|b| {
                        if om {
                            canonical(*b / divisor)
                        } else {
                            format_value(*b / divisor)
                        }
                    });
                    let les = bounds.chain(std::iter::once("+Inf".to_owned()));
                    for ((le, n), exemplar) in les.zip(&totals.buckets).zip(&totals.exemplars) {
                        cumulative += n;
                        let le = with_label(&labels, "le", &le);
                        let _ = write!(out, "{}_bucket{} {cumulative}", prom.name, braces(&le));
                        if om && let Some(e) = exemplar {
                            let _ = write!(
                                out,
                                " # {{trace_id=\"{}\"}} {} {}",
                                hex(&e.trace_id),
                                format_value(e.value / divisor),
                                seconds(e.timestamp_ms)
                            );
                        }
                        out.push('\n');
                    }
                    let _ = writeln!(
                        out,
                        "{}_sum{} {}",
                        prom.name,
                        braces(&labels),
                        format_value(totals.sum / divisor)
                    );
                    let _ = writeln!(
                        out,
                        "{}_count{} {}",
                        prom.name,
                        braces(&labels),
                        totals.count
                    );
                }
            }
            last_family.clone_from(&prom.name);
        }
        if om {
            out.push_str("# EOF\n");
        }
        out
    }
}

/// OpenMetrics' canonical rendering of an `le` value: Go's `%g` (shortest
/// digits; an exponent below 1e-4 and from 1e6 on, with at least two
/// digits) with `.0` added when it has neither a point nor an exponent:
/// `0.0001`, `5e-05`, `1.0`, `100000.0`, `1e+06`.
fn canonical(v: f64) -> String {
    if !v.is_finite() || v == 0.0 {
        return if v == 0.0 {
            "0.0".to_owned()
        } else {
            format_value(v)
        };
    }
    let sci = format!("{v:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..6).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{mantissa}e{sign}{:02}", exp.abs());
    }
    let plain = format!("{v}");
    if plain.contains('.') {
        plain
    } else {
        plain + ".0"
    }
}

/// 32 lowercase hex digits.
fn hex(bytes: &[u8; 16]) -> String {
    let mut out = String::with_capacity(32);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// Epoch milliseconds as OpenMetrics seconds (`1764547200.123`).
fn seconds(ms: i64) -> String {
    format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000))
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

    /// Checks `text` against OpenMetrics 1.0.0's text grammar as far as
    /// Vigil writes it: `# HELP`/`# TYPE` before each family's samples,
    /// samples named after their family (`_total`; `_bucket`, `_sum`,
    /// `_count`), cumulative buckets ending in `+Inf`, exemplars only on
    /// buckets with a value inside the bucket and at most 128 characters
    /// of labels, `# EOF` once, last. Returns the exemplars found:
    /// (sample line, trace id, value, timestamp).
    fn check_openmetrics(text: &str) -> Vec<(String, String, f64, f64)> {
        fn name_ok(name: &str) -> bool {
            let mut chars = name.chars();
            chars
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
        }
        /// `name{a="b",c="d"}` → (name, labels); quotes escaped with `\`.
        fn split_labels(s: &str) -> (String, Vec<(String, String)>, &str) {
            let end = s.find(['{', ' ']).unwrap_or(s.len());
            let name = s[..end].to_owned();
            let mut rest = &s[end..];
            let mut labels = Vec::new();
            if let Some(inner) = rest.strip_prefix('{') {
                let mut chars = inner.char_indices().peekable();
                let close;
                loop {
                    let (i, c) = chars.next().expect("unterminated label set");
                    if c == '}' {
                        close = i;
                        break;
                    }
                    if c == ',' {
                        continue;
                    }
                    let eq = inner[i..].find('=').expect("label without =") + i;
                    let lname = inner[i..eq].to_owned();
                    assert!(name_ok(&lname), "label name {lname:?}");
                    assert_eq!(
                        &inner[eq + 1..eq + 2],
                        "\"",
                        "label value not quoted in {s}"
                    );
                    let mut value = String::new();
                    let mut j = eq + 2;
                    let bytes = inner.as_bytes();
                    loop {
                        match bytes[j] {
                            b'\\' => {
                                value.push(bytes[j + 1] as char);
                                j += 2;
                            }
                            b'"' => break,
                            b => {
                                value.push(b as char);
                                j += 1;
                            }
                        }
                    }
                    labels.push((lname, value));
                    while chars.peek().is_some_and(|(k, _)| *k <= j) {
                        chars.next();
                    }
                }
                rest = &inner[close + 1..];
            }
            (name, labels, rest)
        }
        let lines: Vec<&str> = text.split_terminator('\n').collect();
        assert_eq!(lines.last(), Some(&"# EOF"), "no # EOF at the end:\n{text}");
        assert!(text.ends_with("# EOF\n"));
        let mut family: Option<(String, String)> = None;
        let mut seen_families = Vec::new();
        let mut last_le = f64::NEG_INFINITY;
        let mut last_cumulative = 0.0;
        let mut exemplars = Vec::new();
        for line in &lines[..lines.len() - 1] {
            assert!(!line.is_empty(), "empty line in\n{text}");
            if let Some(help) = line.strip_prefix("# HELP ") {
                let name = help.split(' ').next().unwrap_or_default();
                assert!(name_ok(name), "{line}");
                assert!(
                    !seen_families.contains(&name.to_owned()),
                    "family twice: {line}"
                );
                seen_families.push(name.to_owned());
                continue;
            }
            if let Some(t) = line.strip_prefix("# TYPE ") {
                let (name, kind) = t.split_once(' ').expect("TYPE has a type");
                assert_eq!(
                    seen_families.last().map(String::as_str),
                    Some(name),
                    "{line}"
                );
                assert!(["counter", "histogram", "gauge"].contains(&kind), "{line}");
                family = Some((name.to_owned(), kind.to_owned()));
                last_le = f64::NEG_INFINITY;
                last_cumulative = 0.0;
                continue;
            }
            assert!(!line.starts_with('#'), "unknown comment {line}");
            let (fam, kind) = family.clone().expect("a sample before any # TYPE");
            let (name, labels, rest) = split_labels(line);
            let suffix = name
                .strip_prefix(fam.as_str())
                .unwrap_or_else(|| panic!("sample {name} outside its family {fam}"));
            let allowed: &[&str] = match kind.as_str() {
                "counter" => &["_total"],
                "histogram" => &["_bucket", "_sum", "_count"],
                _ => &[""],
            };
            assert!(allowed.contains(&suffix), "{name} in {kind} family {fam}");
            let rest = rest.strip_prefix(' ').expect("a space before the value");
            let (value, exemplar) = match rest.split_once(" # ") {
                Some((v, e)) => (v, Some(e)),
                None => (rest, None),
            };
            let value: f64 = value.parse().unwrap_or_else(|_| panic!("value in {line}"));
            if suffix == "_bucket" {
                let le = labels
                    .iter()
                    .find(|(n, _)| n == "le")
                    .map(|(_, v)| v.clone())
                    .expect("a bucket has le");
                let le: f64 = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().expect("le is a number")
                };
                assert!(value >= last_cumulative, "buckets not cumulative: {line}");
                if let Some(e) = exemplar {
                    let (elabels_text, rest) = e.split_at(e.find('}').expect("}") + 1);
                    let (_, elabels, _) = split_labels(elabels_text);
                    let chars: usize = elabels.iter().map(|(n, v)| n.len() + v.len()).sum();
                    assert!(chars <= 128, "exemplar labels too long: {line}");
                    let mut parts = rest.trim_start().split(' ');
                    let evalue: f64 = parts.next().and_then(|v| v.parse().ok()).expect("value");
                    let ets: f64 = parts
                        .next()
                        .and_then(|v| v.parse().ok())
                        .expect("timestamp");
                    assert_eq!(parts.next(), None, "{line}");
                    assert!(
                        evalue <= le && evalue > last_le,
                        "exemplar outside its bucket: {line}"
                    );
                    let trace = elabels
                        .iter()
                        .find(|(n, _)| n == "trace_id")
                        .map(|(_, v)| v.clone())
                        .expect("trace_id");
                    exemplars.push((line.to_string(), trace, evalue, ets));
                }
                last_le = le;
                last_cumulative = value;
            } else {
                assert!(exemplar.is_none(), "exemplar off a bucket: {line}");
                if suffix == "_count" {
                    assert_eq!(last_le, f64::INFINITY, "no +Inf bucket before {line}");
                    assert_eq!(value, last_cumulative, "+Inf bucket ≠ count: {line}");
                }
            }
        }
        exemplars
    }

    #[test]
    fn openmetrics_text_has_families_exemplars_and_eof() {
        let r = Registry::new();
        let d = r.distribution(
            SeriesKey::new("Ns", "Latency")
                .with_unit(Unit::Milliseconds)
                .with_dimension("route", "/v1/score"),
            prom("ns_latency_seconds"),
            &[1.0, 10.0],
        );
        let trace = |b: u8| [b; 16];
        d.record(0.5);
        d.record_with_exemplar(5.0, trace(0xab), 1_764_547_200_123);
        d.record_with_exemplar(7.5, trace(0xcd), 1_764_547_201_000);
        d.record_with_exemplar(50.0, trace(0x01), 1_764_547_202_005);
        let c = r.counter(
            SeriesKey::new("Ns", "Count").with_dimension("route", "/v1/\"x\""),
            prom("ns_count"),
        );
        c.add(7);
        let text = r.render_openmetrics();
        let exemplars = check_openmetrics(&text);
        for line in [
            "# HELP ns_count test metric",
            "# TYPE ns_count counter",
            "ns_count_total{route=\"/v1/\\\"x\\\"\"} 7",
            "# TYPE ns_latency_seconds histogram",
            "ns_latency_seconds_bucket{route=\"/v1/score\",le=\"0.001\"} 1",
            // The latest of the bucket's two.
            "ns_latency_seconds_bucket{route=\"/v1/score\",le=\"0.01\"} 3 \
             # {trace_id=\"cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd\"} 0.0075 1764547201.000",
            "ns_latency_seconds_bucket{route=\"/v1/score\",le=\"+Inf\"} 4 \
             # {trace_id=\"01010101010101010101010101010101\"} 0.05 1764547202.005",
            "ns_latency_seconds_count{route=\"/v1/score\"} 4",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line} in\n{text}");
        }
        assert_eq!(exemplars.len(), 2, "{text}");
        // The 0.0.4 text has neither exemplars nor # EOF, and keeps `_total`
        // in its family names.
        let plain = r.render_prometheus();
        assert!(
            !plain.contains("trace_id") && !plain.contains("# EOF"),
            "{plain}"
        );
        assert!(plain.contains("# TYPE ns_count_total counter"), "{plain}");
        assert!(
            plain.contains("ns_latency_seconds_bucket{route=\"/v1/score\",le=\"0.01\"} 3\n"),
            "{plain}"
        );
    }

    #[test]
    fn the_latest_exemplar_of_a_bucket_wins_across_threads() {
        let r = Registry::new();
        let d = r.distribution(
            SeriesKey::new("Ns", "Latency"),
            prom("ns_latency"),
            LATENCY_BUCKETS_MS,
        );
        std::thread::scope(|s| {
            for t in 0..4u8 {
                let d = d.clone();
                s.spawn(move || {
                    for i in 0..50i64 {
                        d.record(3.0);
                        d.record_with_exemplar(3.0, [t + 1; 16], i64::from(t) * 1000 + i);
                    }
                });
            }
        });
        let exemplars = d.exemplars();
        assert_eq!(exemplars.len(), LATENCY_BUCKETS_MS.len() + 1);
        let found: Vec<_> = exemplars.iter().flatten().collect();
        assert_eq!(found.len(), 1, "{exemplars:?}");
        assert_eq!(found[0].trace_id, [4; 16]);
        assert_eq!(found[0].timestamp_ms, 3049);
        assert_eq!(d.count(), 400);
        let text = r.render_openmetrics();
        let parsed = check_openmetrics(&text);
        assert_eq!(parsed.len(), 1, "{text}");
        assert_eq!(parsed[0].1, "04040404040404040404040404040404");
        assert!(
            parsed[0]
                .0
                .starts_with("ns_latency_bucket{le=\"5.0\"} 400 # "),
            "{text}"
        );
    }

    #[test]
    fn le_values_render_as_openmetrics_canonical_numbers() {
        // The spec's examples.
        for (v, text) in [
            (0.0, "0.0"),
            (0.001, "0.001"),
            (0.01, "0.01"),
            (0.9, "0.9"),
            (0.999, "0.999"),
            (1.0, "1.0"),
            (1.7, "1.7"),
            (10.0, "10.0"),
            (1e-10, "1e-10"),
            (1e-9, "1e-09"),
            (1e-5, "1e-05"),
            (0.0001, "0.0001"),
            (100000.0, "100000.0"),
            (1e6, "1e+06"),
            (1e10, "1e+10"),
            (0.00005, "5e-05"),
            (0.00025, "0.00025"),
            (f64::INFINITY, "+Inf"),
        ] {
            assert_eq!(canonical(v), text, "{v}");
        }
        // Every latency bound in seconds round-trips.
        for bound in LATENCY_BUCKETS_MS {
            let v = bound / 1e3;
            assert_eq!(canonical(v).parse::<f64>().ok(), Some(v), "{v}");
        }
    }

    #[test]
    fn the_checker_refuses_what_openmetrics_forbids() {
        let good = "# HELP a x\n# TYPE a counter\na_total 1\n# EOF\n";
        check_openmetrics(good);
        for bad in [
            "# HELP a x\n# TYPE a counter\na_total 1\n",
            "# HELP a x\n# TYPE a counter\na 1\n# EOF\n",
            "# HELP h x\n# TYPE h histogram\nh_bucket{le=\"1\"} 1 # {trace_id=\"t\"} 2 1.0\n\
             h_bucket{le=\"+Inf\"} 1\nh_sum 2\nh_count 1\n# EOF\n",
            "# HELP h x\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 2\nh_count 1\n# EOF\n",
        ] {
            let refused = std::panic::catch_unwind(|| check_openmetrics(bad)).is_err();
            assert!(refused, "accepted:\n{bad}");
        }
    }

    #[test]
    fn label_names_are_made_safe() {
        assert_eq!(label_name("status class"), "status_class");
        assert_eq!(label_name("4xx"), "_4xx");
        assert_eq!(label_name(""), "_");
    }
}
