//! Fixed work for instruction counting when timings are too noisy:
//! `valgrind --tool=callgrind target/release/examples/score_count MODEL CASES row|batch`
//! scores the cases 10 times; divide the scoring functions' instruction
//! count by 10 × the row count.

use std::hint::black_box;

use vigil_model::Model;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, model, cases, mode] = args.as_slice() else {
        eprintln!("usage: score_count MODEL CASES row|batch");
        std::process::exit(2);
    };
    let m = Model::load(model.as_ref(), None).expect("model loads");
    let nf = m.num_features();
    let k = m.num_outputs();
    let text = std::fs::read_to_string(cases).expect("cases");
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
    let mut out = vec![0.0; n * k];
    for _ in 0..10 {
        if mode == "batch" {
            m.predict_batch(black_box(&rows), &mut out).expect("batch");
        } else {
            for (r, o) in rows.chunks(nf).zip(out.chunks_mut(k)) {
                m.predict_row(black_box(r), o).expect("row");
            }
        }
        black_box(&out);
    }
    eprintln!("{n} rows");
}
