//! Golden tests: every model in `tests/fixtures/manifest.json` must load with
//! the right metadata and score every case as the training library did, one
//! row at a time and as one batch.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use vigil_model::{Model, ModelFormat, OutputKind};

#[derive(Debug, Deserialize)]
struct Manifest {
    fixtures: Vec<Fixture>,
}

#[derive(Debug, Deserialize)]
struct Fixture {
    name: String,
    model: String,
    format: String,
    num_features: usize,
    num_outputs: usize,
    cases: String,
    tolerance: String,
    output: String,
    #[serde(default)]
    objective: Option<String>,
}

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

struct Cases {
    header: Vec<String>,
    rows: Vec<Vec<f64>>,
}

fn read_cases(path: &Path) -> Cases {
    let mut reader =
        csv::Reader::from_path(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let header = reader
        .headers()
        .expect("cases header")
        .iter()
        .map(str::to_owned)
        .collect();
    let rows = reader
        .records()
        .map(|r| {
            r.expect("cases record")
                .iter()
                .map(|cell| {
                    if cell.is_empty() {
                        f64::NAN
                    } else {
                        cell.parse::<f64>()
                            .unwrap_or_else(|_| panic!("bad number {cell:?}"))
                    }
                })
                .collect()
        })
        .collect();
    Cases { header, rows }
}

fn close(tolerance: &str, got: f64, want: f64) -> bool {
    if got.is_nan() || want.is_nan() {
        return got.is_nan() && want.is_nan();
    }
    match tolerance {
        "exact" => got.to_bits() == want.to_bits() || (got == 0.0 && want == 0.0),
        "abs" => (got - want).abs() <= 1e-6,
        "rel" => (got - want).abs() <= 1e-6 * want.abs().max(1.0),
        other => panic!("unknown tolerance {other:?}"),
    }
}

/// Check one fixture; returns the problems found (empty when it passes).
fn check(f: &Fixture) -> Vec<String> {
    let mut problems = Vec::new();
    let format = match f.format.as_str() {
        "xgboost_json" => ModelFormat::XgboostJson,
        "xgboost_ubj" => ModelFormat::XgboostUbj,
        "lightgbm_text" => ModelFormat::LightgbmText,
        other => return vec![format!("unknown format {other:?}")],
    };
    let path = dir().join(&f.model);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(
        ModelFormat::detect(&bytes),
        Some(format),
        "{}: detected format",
        f.name
    );
    let model = match Model::load(&path, Some(format)) {
        Ok(m) => m,
        Err(e) => return vec![format!("load failed: {e}")],
    };
    let auto = Model::from_bytes(&bytes, None).map(|m| m.format());
    if auto.as_ref().ok() != Some(&format) {
        problems.push(format!("format detection gave {auto:?}"));
    }
    let cases = read_cases(&dir().join(&f.cases));
    let nf = f.num_features;
    let k = f.num_outputs;
    if model.num_features() != nf {
        problems.push(format!("num_features {} != {nf}", model.num_features()));
    }
    if model.feature_names() != &cases.header[..nf.min(cases.header.len())] {
        problems.push(format!(
            "feature names {:?} != header",
            model.feature_names()
        ));
    }
    if model.num_outputs() != k {
        problems.push(format!("num_outputs {} != {k}", model.num_outputs()));
    }
    let kind_ok = match (f.output.as_str(), model.output_kind()) {
        ("probability", OutputKind::Probability)
        | ("margin", OutputKind::Margin)
        | ("regression", OutputKind::Regression) => true,
        ("class_probabilities", OutputKind::ClassProbabilities { classes }) => classes == k,
        _ => false,
    };
    if !kind_ok {
        problems.push(format!(
            "output kind {:?} != {}",
            model.output_kind(),
            f.output
        ));
    }
    if let Some(obj) = f
        .objective
        .as_ref()
        .filter(|o| model.objective() != o.as_str())
    {
        problems.push(format!("objective {:?} != {obj:?}", model.objective()));
    }
    if !problems.is_empty() {
        return problems;
    }
    let mut flat = Vec::with_capacity(cases.rows.len() * nf);
    let mut mismatches = 0;
    let mut worst = 0.0f64;
    for (i, row) in cases.rows.iter().enumerate() {
        assert_eq!(row.len(), nf + k, "{}: case {i} width", f.name);
        flat.extend_from_slice(&row[..nf]);
        let mut out = vec![0.0; k];
        if let Err(e) = model.predict_row(&row[..nf], &mut out) {
            problems.push(format!("case {i}: {e}"));
            continue;
        }
        for (j, (got, want)) in out.iter().zip(&row[nf..]).enumerate() {
            worst = worst.max((got - want).abs());
            if !close(&f.tolerance, *got, *want) {
                mismatches += 1;
                if mismatches <= 5 {
                    problems.push(format!("case {i} out_{j}: got {got:e}, want {want:e}"));
                }
            }
        }
    }
    if mismatches > 5 {
        problems.push(format!(
            "{mismatches} mismatching outputs in all, worst |diff| {worst:e}"
        ));
    }
    let mut batch = vec![0.0; cases.rows.len() * k];
    match model.predict_batch(&flat, &mut batch) {
        Ok(()) => {
            for (i, row) in cases.rows.iter().enumerate() {
                let one = &batch[i * k..(i + 1) * k];
                let mut out = vec![0.0; k];
                model
                    .predict_row(&row[..nf], &mut out)
                    .expect("scored above");
                if one
                    .iter()
                    .zip(&out)
                    .any(|(a, b)| a.to_bits() != b.to_bits())
                {
                    problems.push(format!("case {i}: batch {one:?} != row {out:?}"));
                    break;
                }
            }
        }
        Err(e) => problems.push(format!("batch failed: {e}")),
    }
    println!(
        "{:<24} {:>5} cases, max |diff| {worst:.3e}: {}",
        f.name,
        cases.rows.len(),
        if problems.is_empty() { "pass" } else { "FAIL" }
    );
    problems
}

#[test]
fn every_fixture_matches_its_training_library() {
    let manifest_path = dir().join("manifest.json");
    let text = std::fs::read_to_string(&manifest_path).expect("manifest.json exists");
    let manifest: Manifest = serde_json::from_str(&text).expect("manifest parses");
    assert!(!manifest.fixtures.is_empty());
    let mut failures = Vec::new();
    for f in &manifest.fixtures {
        let problems = check(f);
        if !problems.is_empty() {
            failures.push(format!("{}:\n  {}", f.name, problems.join("\n  ")));
        }
    }
    assert!(
        failures.is_empty(),
        "fixtures failing:\n{}",
        failures.join("\n")
    );
}

/// `ulb_xgb_200_nonames.json` is `ulb_xgb_200.json` saved without feature
/// names (`scripts/gen_nonames_fixture.py`). It must score the real ULB rows
/// exactly as the named model and as xgboost did, and take the names back.
#[test]
fn the_unnamed_ulb_model_scores_as_the_named_one() {
    let named = Model::load(&dir().join("ulb_xgb_200.json"), None).expect("named model");
    let mut unnamed =
        Model::load(&dir().join("ulb_xgb_200_nonames.json"), None).expect("unnamed model");
    assert!(named.has_feature_names());
    assert!(!unnamed.has_feature_names());
    let made_up: Vec<String> = (0..30).map(|i| format!("f{i}")).collect();
    assert_eq!(unnamed.feature_names(), made_up);

    let cases = read_cases(&dir().join("ulb_xgb_200.cases.csv"));
    assert_eq!(cases.header.len(), 31);
    assert_eq!(cases.header[30], "out_0");
    assert_eq!(named.feature_names(), &cases.header[..30]);
    assert!(cases.rows.len() > 300, "{} cases", cases.rows.len());
    for (i, row) in cases.rows.iter().enumerate() {
        let (mut a, mut b) = ([0.0], [0.0]);
        named.predict_row(&row[..30], &mut a).expect("score");
        unnamed.predict_row(&row[..30], &mut b).expect("score");
        assert_eq!(a[0].to_bits(), b[0].to_bits(), "case {i}");
        assert!(
            close("exact", b[0], row[30]),
            "case {i}: {} != {}",
            b[0],
            row[30]
        );
    }

    unnamed
        .rename_features(cases.header[..30].to_vec())
        .expect("the named model's names fit");
    assert_eq!(unnamed.feature_names(), named.feature_names());
    assert_eq!(unnamed.feature_index("Amount"), Some(29));
}
