//! Single-row and batch scoring on the real ULB fixtures.
//!
//! `cargo bench -p vigil-model --bench score`

use std::hint::black_box;
use std::path::{Path, PathBuf};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use vigil_model::Model;

const BATCH_ROWS: usize = 1024;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// The feature columns of a cases file, row-major (empty cell = NaN).
fn rows(cases: &str, num_features: usize) -> Vec<f64> {
    let mut reader = csv::Reader::from_path(fixture(cases)).expect("cases file");
    let mut out = Vec::new();
    for record in reader.records() {
        let record = record.expect("cases record");
        out.extend(
            record
                .iter()
                .take(num_features)
                .map(|c| c.parse::<f64>().unwrap_or(f64::NAN)),
        );
    }
    out
}

fn bench_model(c: &mut Criterion, label: &str, model_file: &str, cases: &str, batch: bool) {
    let model = Model::load(&fixture(model_file), None).expect("model loads");
    let nf = model.num_features();
    let k = model.num_outputs();
    let data = rows(cases, nf);
    let n = data.len() / nf;
    let mut group = c.benchmark_group(label);

    group.throughput(Throughput::Elements(1));
    let mut out = vec![0.0; k];
    let mut i = 0;
    group.bench_function("row", |b| {
        b.iter(|| {
            let row = &data[i * nf..(i + 1) * nf];
            i = (i + 1) % n;
            model.predict_row(black_box(row), &mut out).expect("scores");
            black_box(&out);
        });
    });

    if batch {
        let mut big = Vec::with_capacity(BATCH_ROWS * nf);
        while big.len() < BATCH_ROWS * nf {
            let take = (BATCH_ROWS * nf - big.len()).min(data.len());
            big.extend_from_slice(&data[..take]);
        }
        let mut out = vec![0.0; BATCH_ROWS * k];
        group.throughput(Throughput::Elements(BATCH_ROWS as u64));
        group.bench_function(format!("batch_{BATCH_ROWS}"), |b| {
            b.iter(|| {
                model
                    .predict_batch(black_box(&big), &mut out)
                    .expect("scores");
                black_box(&out);
            });
        });
    }
    group.finish();
}

fn benches(c: &mut Criterion) {
    bench_model(
        c,
        "ulb_xgb_200",
        "ulb_xgb_200.json",
        "ulb_xgb_200.cases.csv",
        true,
    );
    bench_model(
        c,
        "ulb_xgb_300_d8",
        "ulb_xgb_300_d8.json",
        "ulb_xgb_300_d8.cases.csv",
        true,
    );
    bench_model(c, "ulb_lgb", "ulb_lgb.txt", "ulb_lgb.cases.csv", true);
}

criterion_group!(score, benches);
criterion_main!(score);
