//! An inference record's input written back as JSON, once per logged row
//! (the `/vigil/inference` event): the fraud data set's 30 features, 28 of
//! them full-precision doubles.

#![allow(clippy::unwrap_used, missing_docs)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use vigil_store::Input;

fn fraud_row() -> Input {
    let body = include_str!("../../../bench/fraud-row.json");
    let value: serde_json::Value = serde_json::from_str(body).unwrap();
    Input::from_map(value["features"].as_object().unwrap())
}

fn input(c: &mut Criterion) {
    let row = fraud_row();
    let mut group = c.benchmark_group("input");
    group.throughput(Throughput::Elements(1));
    group.bench_function("write_json_30_features", |b| {
        let mut out = String::with_capacity(1024);
        b.iter(|| {
            out.clear();
            row.write_json(&mut out);
            std::hint::black_box(out.len())
        });
    });
    group.bench_function("write_number_double", |b| {
        let mut out = String::with_capacity(64);
        b.iter(|| {
            out.clear();
            vigil_store::input::write_number(std::hint::black_box(-0.408050946736323), &mut out);
            std::hint::black_box(out.len())
        });
    });
    group.finish();
}

criterion_group!(benches, input);
criterion_main!(benches);
