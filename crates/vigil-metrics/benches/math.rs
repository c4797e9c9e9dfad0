//! Metric math: parse + evaluate `100 * errors / invocations` over 1,440
//! points (a day at one minute), against a hand-written loop over the same
//! aligned vectors as the floor.

use std::collections::HashMap;
use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use vigil_metrics::math::{MetricDataQuery, MetricStat, Range, Series, evaluate, parse, run};

const POINTS: i64 = 1440;
const MIN: i64 = 60_000;
const EXPR: &str = "100 * errors / invocations";

fn data() -> (Series, Series) {
    // every 7th minute without errors data, every 11th with 0 invocations
    let errors = Series::from_points(
        (0..POINTS)
            .filter(|k| k % 7 != 0)
            .map(|k| (k * MIN, (k % 5) as f64)),
    );
    let invocations = Series::from_points((0..POINTS).map(|k| {
        (
            k * MIN,
            if k % 11 == 0 {
                0.0
            } else {
                100.0 + (k % 13) as f64
            },
        )
    }));
    (errors, invocations)
}

fn bench(c: &mut Criterion) {
    let (errors, invocations) = data();
    let grid: Vec<i64> = (0..POINTS).map(|k| k * MIN).collect();
    let env: HashMap<&str, Series> = HashMap::from([
        ("errors", errors.clone()),
        ("invocations", invocations.clone()),
    ]);

    let mut g = c.benchmark_group("math");
    g.throughput(Throughput::Elements(POINTS as u64));

    g.bench_function("parse", |b| b.iter(|| parse(black_box(EXPR))));

    let parsed = parse(EXPR).unwrap_or_else(|e| panic!("{e}"));
    g.bench_function("evaluate", |b| {
        b.iter(|| evaluate(black_box(&parsed.expr), &env, &grid).map(|v| v.into_series(&grid)))
    });

    g.bench_function("parse_and_evaluate", |b| {
        b.iter(|| {
            let p = parse(black_box(EXPR)).unwrap_or_else(|e| panic!("{e}"));
            evaluate(&p.expr, &env, &grid).map(|v| v.into_series(&grid))
        })
    });

    let stat = |name: &str| MetricStat {
        namespace: "svc".to_owned(),
        metric_name: name.to_owned(),
        dimensions: Default::default(),
        period: 60,
        stat: "Sum".to_owned(),
        unit: None,
    };
    let queries = vec![
        MetricDataQuery {
            id: "errors".to_owned(),
            expression: None,
            metric_stat: Some(stat("Errors")),
            return_data: false,
            label: None,
        },
        MetricDataQuery {
            id: "invocations".to_owned(),
            expression: None,
            metric_stat: Some(stat("Invocations")),
            return_data: false,
            label: None,
        },
        MetricDataQuery {
            id: "pct".to_owned(),
            expression: Some(EXPR.to_owned()),
            metric_stat: None,
            return_data: true,
            label: None,
        },
    ];
    let range = Range {
        start_ms: 0,
        end_ms: POINTS * MIN,
        period_s: 60,
    };
    // includes validating the set and cloning the two fetched series
    g.bench_function("run_query_set", |b| {
        b.iter(|| {
            run(black_box(&queries), range, &mut |s: &MetricStat| {
                Ok(if s.metric_name == "Errors" {
                    errors.clone()
                } else {
                    invocations.clone()
                })
            })
        })
    });

    // the floor: the same result from a merge join written by hand
    g.bench_function("hand_written_loop", |b| {
        b.iter(|| {
            let (e, i) = (black_box(&errors), black_box(&invocations));
            let mut out = Series::default();
            let (mut x, mut y) = (0, 0);
            while x < e.timestamps.len() && y < i.timestamps.len() {
                match e.timestamps[x].cmp(&i.timestamps[y]) {
                    std::cmp::Ordering::Less => x += 1,
                    std::cmp::Ordering::Greater => y += 1,
                    std::cmp::Ordering::Equal => {
                        let v = 100.0 * e.values[x] / i.values[y];
                        if v.is_finite() {
                            out.timestamps.push(e.timestamps[x]);
                            out.values.push(v);
                        }
                        x += 1;
                        y += 1;
                    }
                }
            }
            out
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
