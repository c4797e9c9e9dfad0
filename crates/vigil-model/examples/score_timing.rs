//! Quick timing that survives a busy machine: the minimum over many short
//! runs. `cargo run --release -p vigil-model --example score_timing`
//! (criterion in `benches/score.rs` is the reference).

use std::hint::black_box;
use std::path::Path;
use std::time::Instant;

use vigil_model::Model;

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    for (model, cases) in [
        ("ulb_xgb_200.json", "ulb_xgb_200.cases.csv"),
        ("ulb_xgb_300_d8.json", "ulb_xgb_300_d8.cases.csv"),
        ("ulb_lgb.txt", "ulb_lgb.cases.csv"),
    ] {
        let m = Model::load(&dir.join(model), None).expect("model loads");
        let nf = m.num_features();
        let text = std::fs::read_to_string(dir.join(cases)).expect("cases");
        let rows: Vec<f64> = text
            .lines()
            .skip(1)
            .flat_map(|l| {
                l.split(',')
                    .take(nf)
                    .map(|c| c.parse().unwrap_or(f64::NAN))
                    .collect::<Vec<_>>()
            })
            .collect();
        let n = rows.len() / nf;
        let mut big = Vec::new();
        while big.len() < 1024 * nf {
            big.extend_from_slice(&rows[..rows.len().min(1024 * nf - big.len())]);
        }
        let mut out = vec![0.0; 1024];
        let mut best_batch = f64::MAX;
        let mut best_row = f64::MAX;
        for _ in 0..200 {
            let t = Instant::now();
            m.predict_batch(black_box(&big), &mut out).expect("batch");
            best_batch = best_batch.min(t.elapsed().as_secs_f64() / 1024.0);
            let t = Instant::now();
            let mut o = [0.0];
            for i in 0..n {
                m.predict_row(black_box(&rows[i * nf..(i + 1) * nf]), &mut o)
                    .expect("row");
                black_box(o);
            }
            best_row = best_row.min(t.elapsed().as_secs_f64() / n as f64);
        }
        println!(
            "{model:<22} row {:>6.3} us   batch {:>6.3} us/row",
            best_row * 1e6,
            best_batch * 1e6
        );
    }
}
