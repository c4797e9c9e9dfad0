//! 1,000 metric alarms evaluated in one tick against a cheap in-memory data
//! source (the target: 1,000 alarms every 10 s within 5% of one core, i.e.
//! ≤ 500 ms per tick).
//!
//! `cargo bench -p vigil-metrics --bench alarm -- --warm-up-time 1 --measurement-time 3`

use std::collections::HashMap;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use vigil_metrics::alarm::{AlarmData, AlarmEngine, MetricAlarm, MetricAlarmSpec, Point};

const ALARMS: usize = 1_000;
const T0: i64 = 1_768_212_000_000;
const MIN: i64 = 60_000;

/// Ten minutes of points per alarm, answered by slicing.
struct Memory(HashMap<String, Vec<Point>>);

impl AlarmData for Memory {
    fn fetch(
        &self,
        alarm: &MetricAlarm,
        start: i64,
        end: i64,
        _: u32,
    ) -> Result<Vec<Point>, String> {
        Ok(self
            .0
            .get(alarm.name())
            .map(|v| {
                v.iter()
                    .filter(|p| p.timestamp_ms >= start && p.timestamp_ms < end)
                    .copied()
                    .collect()
            })
            .unwrap_or_default())
    }
}

fn spec(i: usize) -> MetricAlarmSpec {
    MetricAlarmSpec {
        name: format!("alarm-{i}"),
        namespace: Some("Vigil".into()),
        metric_name: Some("LatencyMs".into()),
        dimensions: [("model".to_string(), format!("m{i}"))].into(),
        statistic: Some("Average".into()),
        period: Some(60),
        evaluation_periods: Some(3),
        datapoints_to_alarm: Some(2),
        threshold: Some(50.0),
        comparison_operator: Some("GreaterThanThreshold".into()),
        treat_missing_data: Some(["missing", "notBreaching", "breaching", "ignore"][i % 4].into()),
        actions_enabled: true,
        ..MetricAlarmSpec::default()
    }
}

fn bench(c: &mut Criterion) {
    let engine = AlarmEngine::in_memory();
    let mut points = HashMap::new();
    for i in 0..ALARMS {
        let alarm = spec(i).validate().unwrap_or_else(|e| panic!("{e}"));
        engine
            .put_metric_alarm(alarm, T0)
            .unwrap_or_else(|e| panic!("{e}"));
        let series: Vec<Point> = (0..10)
            .map(|k| Point {
                timestamp_ms: T0 + k * MIN,
                // Some alarms flip state from minute to minute, most do not.
                value: if (i + k as usize).is_multiple_of(7) {
                    80.0
                } else {
                    20.0 + i as f64 % 40.0
                },
                sample_count: Some(60.0),
            })
            .collect();
        points.insert(format!("alarm-{i}"), series);
    }
    let data = Memory(points);
    let mut group = c.benchmark_group("alarm_tick");
    group.throughput(Throughput::Elements(ALARMS as u64));
    let mut minute = 0i64;
    group.bench_function("1000_alarms", |b| {
        b.iter(|| {
            // Each iteration is a different minute than the last, so every
            // alarm is due; cycling over six minutes keeps data in range.
            minute += 1;
            let now = T0 + (4 + minute % 6) * MIN;
            std::hint::black_box(engine.tick(now, &data))
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
