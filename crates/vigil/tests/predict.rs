//! Black-box tests of `vigil predict`.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::{Serve, http, workspace};
use vigil_model::Model;

fn demo_path() -> PathBuf {
    workspace().join("crates/vigil-server/assets/demo-fraud.json")
}

fn vigil(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn vigil");
    let mut pipe = child.stdin.take().expect("stdin is piped");
    pipe.write_all(stdin.unwrap_or("").as_bytes())
        .expect("write stdin");
    drop(pipe);
    child.wait_with_output().expect("wait for vigil")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Parse a CSV into its header and rows of strings.
fn read_csv(text: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header = reader
        .headers()
        .expect("header")
        .iter()
        .map(str::to_string)
        .collect();
    let rows = reader
        .records()
        .map(|r| r.expect("row").iter().map(str::to_string).collect())
        .collect();
    (header, rows)
}

fn score(model: &Model, row: &[f64]) -> f64 {
    let mut out = vec![0.0; model.num_outputs()];
    model.predict_row(row, &mut out).expect("score");
    out[0]
}

/// A CSV for the demo model with its columns reversed, an id column and an
/// unused column; the second row has a missing value. Returns it with the
/// rows in model order.
fn shuffled_csv(model: &Model) -> (String, Vec<Vec<f64>>) {
    let names: Vec<&String> = model.feature_names().iter().rev().collect();
    let rows: Vec<Vec<f64>> = (0..3)
        .map(|r| {
            (0..model.num_features())
                .map(|f| {
                    if r == 1 && f == 0 {
                        f64::NAN
                    } else {
                        (r * 7 + f) as f64 * 37.5
                    }
                })
                .collect()
        })
        .collect();
    let mut text = String::from("id,");
    text.push_str(
        &names
            .iter()
            .map(|n| n.as_str())
            .collect::<Vec<_>>()
            .join(","),
    );
    text.push_str(",unused\n");
    for (r, row) in rows.iter().enumerate() {
        text.push_str(&format!("tx-{r}"));
        for name in &names {
            let f = model.feature_index(name).expect("a model feature");
            let v = row[f];
            text.push(',');
            if !v.is_nan() {
                text.push_str(&v.to_string());
            }
        }
        text.push_str(",zzz\n");
    }
    (text, rows)
}

#[test]
fn matches_columns_by_name_and_keeps_columns_through_stdin_and_stdout() {
    let model = Model::load(&demo_path(), None).expect("demo model");
    let (input, rows) = shuffled_csv(&model);
    let demo = demo_path();
    let output = vigil(
        &[
            "predict",
            "--model",
            demo.to_str().expect("utf8 path"),
            "--keep",
            "id",
            "--keep",
            "unused",
        ],
        Some(&input),
    );
    assert!(output.status.success(), "stderr: {}", stderr(&output));
    let (header, out) = read_csv(&String::from_utf8_lossy(&output.stdout));
    assert_eq!(header, ["id", "unused", "score"]);
    assert_eq!(out.len(), rows.len());
    for (r, (line, row)) in out.iter().zip(&rows).enumerate() {
        assert_eq!(line[0], format!("tx-{r}"));
        assert_eq!(line[1], "zzz");
        let got: f64 = line[2].parse().expect("score is a number");
        // Printed to round-trip: exactly the library's value.
        assert_eq!(got, score(&model, row), "row {r}");
    }
}

#[test]
fn writes_files_and_drops_unkept_columns() {
    let model = Model::load(&demo_path(), None).expect("demo model");
    let (input, rows) = shuffled_csv(&model);
    let dir = tempfile::tempdir().expect("tempdir");
    let in_path = dir.path().join("in.csv");
    let out_path = dir.path().join("out.csv");
    std::fs::write(&in_path, input).expect("write input");
    let output = vigil(
        &[
            "predict",
            "--model",
            path_str(&demo_path()),
            "--input",
            path_str(&in_path),
            "--output",
            path_str(&out_path),
        ],
        None,
    );
    assert!(output.status.success(), "stderr: {}", stderr(&output));
    assert!(output.stdout.is_empty());
    let (header, out) = read_csv(&std::fs::read_to_string(&out_path).expect("output"));
    assert_eq!(header, ["score"]);
    let got: Vec<f64> = out.iter().map(|l| l[0].parse().expect("number")).collect();
    let want: Vec<f64> = rows.iter().map(|r| score(&model, r)).collect();
    assert_eq!(got, want);
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("utf8 path")
}

#[test]
fn a_missing_column_is_named() {
    let model = Model::load(&demo_path(), None).expect("demo model");
    let (input, _) = shuffled_csv(&model);
    let dropped = model.feature_names()[1].clone();
    // Rename the header cell so the column is gone.
    let input = input.replacen(&format!(",{dropped},"), ",something_else,", 1);
    let output = vigil(
        &["predict", "--model", path_str(&demo_path())],
        Some(&input),
    );
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(
        message.contains(&format!("\"{dropped}\"")),
        "stderr: {message}"
    );
    assert!(output.stdout.is_empty() || !String::from_utf8_lossy(&output.stdout).contains('.'));
}

#[test]
fn a_non_numeric_cell_names_line_and_column() {
    let model = Model::load(&demo_path(), None).expect("demo model");
    let names = model.feature_names().join(",");
    let good = vec!["1"; model.num_features()].join(",");
    let mut bad = vec!["1"; model.num_features()];
    bad[2] = "abc";
    let input = format!("{names}\n{good}\n{}\n", bad.join(","));
    let output = vigil(
        &["predict", "--model", path_str(&demo_path())],
        Some(&input),
    );
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(message.contains("line 3"), "stderr: {message}");
    assert!(
        message.contains(&format!("\"{}\"", model.feature_names()[2])),
        "stderr: {message}"
    );
    assert!(message.contains("abc"), "stderr: {message}");
}

#[test]
fn a_kept_column_that_does_not_exist_is_named() {
    let model = Model::load(&demo_path(), None).expect("demo model");
    let (input, _) = shuffled_csv(&model);
    let output = vigil(
        &[
            "predict",
            "--model",
            path_str(&demo_path()),
            "--keep",
            "nope",
        ],
        Some(&input),
    );
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("\"nope\""),
        "stderr: {}",
        stderr(&output)
    );
}

/// The README's example file scores as the Python fixture script expects.
#[test]
fn example_transactions_match_the_expected_scores() {
    let input = workspace().join("examples/transactions.csv");
    let expected = workspace().join("examples/transactions.expected.csv");
    let output = vigil(
        &[
            "predict",
            "--model",
            path_str(&demo_path()),
            "--input",
            path_str(&input),
        ],
        None,
    );
    assert!(output.status.success(), "stderr: {}", stderr(&output));
    let (header, got) = read_csv(&String::from_utf8_lossy(&output.stdout));
    assert_eq!(header, ["score"]);
    let (want_header, want) = read_csv(&std::fs::read_to_string(&expected).expect("expected"));
    let col = want_header
        .iter()
        .position(|h| h == "score")
        .expect("a score column in the expected file");
    assert_eq!(got.len(), want.len());
    assert!(!got.is_empty());
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        let g: f64 = g[0].parse().expect("number");
        let w: f64 = w[col].parse().expect("number");
        assert!((g - w).abs() <= 1e-6, "row {i}: got {g}, expected {w}");
    }
}

/// Several batches (and a partial last one) come out complete and in order.
#[test]
fn many_rows_come_out_complete_and_in_order() {
    let model = Model::load(&demo_path(), None).expect("demo model");
    let n = model.num_features();
    let rows = 10_001;
    let mut input = format!("id,{}\n", model.feature_names().join(","));
    let mut want = Vec::with_capacity(rows);
    for r in 0..rows {
        let row: Vec<f64> = (0..n)
            .map(|f| ((r * 31 + f * 7) % 1000) as f64 / 4.0)
            .collect();
        want.push(score(&model, &row));
        let cells: Vec<String> = row.iter().map(f64::to_string).collect();
        input.push_str(&format!("{r},{}\n", cells.join(",")));
    }
    let output = vigil(
        &["predict", "--model", path_str(&demo_path()), "--keep", "id"],
        Some(&input),
    );
    assert!(output.status.success(), "stderr: {}", stderr(&output));
    let (_, out) = read_csv(&String::from_utf8_lossy(&output.stdout));
    assert_eq!(out.len(), rows);
    for (r, line) in out.iter().enumerate() {
        assert_eq!(line[0], r.to_string());
        let got: f64 = line[1].parse().expect("number");
        assert_eq!(got, want[r], "row {r}");
    }
}

fn fixture(name: &str) -> PathBuf {
    workspace()
        .join("crates/vigil-model/tests/fixtures")
        .join(name)
}

/// The scores and the golden `out_0` column of a predict output with `--keep out_0`.
fn scores_and_golden(stdout: &[u8]) -> Vec<(f64, f64)> {
    let (header, out) = read_csv(&String::from_utf8_lossy(stdout));
    assert_eq!(header, ["out_0", "score"]);
    out.iter()
        .map(|line| {
            let golden: f64 = line[0].parse().expect("out_0 is a number");
            let score: f64 = line[1].parse().expect("score is a number");
            (score, golden)
        })
        .collect()
}

/// A model without feature names on a real ULB CSV as is (`Time,V1..V28,Amount`):
/// the columns are taken by position, as xgboost does, and stderr says so once.
#[test]
fn an_unnamed_model_takes_the_columns_by_position() {
    let cases = fixture("ulb_xgb_200.cases.csv");
    let output = vigil(
        &[
            "predict",
            "--model",
            path_str(&fixture("ulb_xgb_200_nonames.json")),
            "--input",
            path_str(&cases),
            "--keep",
            "out_0",
        ],
        None,
    );
    assert!(output.status.success(), "stderr: {}", stderr(&output));
    let scores = scores_and_golden(&output.stdout);
    assert_eq!(scores.len(), 328);
    for (i, (score, golden)) in scores.iter().enumerate() {
        assert_eq!(
            score.to_bits(),
            golden.to_bits(),
            "row {i}: {score} != {golden}"
        );
    }
    let message = stderr(&output);
    assert_eq!(
        message.matches("by position").count(),
        1,
        "stderr: {message}"
    );
    assert!(
        message.contains("taking its 30 features"),
        "stderr: {message}"
    );
    assert!(
        message.contains(r#"f0 = "Time", f1 = "V1""#),
        "stderr: {message}"
    );
    assert!(message.contains(r#"f29 = "Amount")"#), "stderr: {message}");
    assert!(!message.contains("out_0"), "stderr: {message}");
}

#[test]
fn an_unnamed_model_with_the_wrong_column_count_names_both_counts() {
    // Without --keep, the golden column counts: 31 columns for 30 features.
    let output = vigil(
        &[
            "predict",
            "--model",
            path_str(&fixture("ulb_xgb_200_nonames.json")),
            "--input",
            path_str(&fixture("ulb_xgb_200.cases.csv")),
        ],
        None,
    );
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(message.contains("no feature names"), "stderr: {message}");
    assert!(message.contains("f0..f29"), "stderr: {message}");
    assert!(
        message.contains("the model has 30 features but the input has 31 columns"),
        "stderr: {message}"
    );
    assert!(output.stdout.is_empty());
}

/// A header that uses xgboost's names `f0..f29` is matched by name (any
/// order, extra columns dropped), with no notice.
#[test]
fn an_unnamed_model_matches_f_names_by_name() {
    let text = std::fs::read_to_string(fixture("ulb_xgb_200.cases.csv")).expect("cases");
    let (header, rows) = read_csv(&text);
    assert_eq!(header.len(), 31);
    // Columns reversed: out_0, f29, ..., f0.
    let mut input = String::from("out_0");
    for i in (0..30).rev() {
        input.push_str(&format!(",f{i}"));
    }
    input.push('\n');
    for row in &rows {
        let mut cells = vec![row[30].clone()];
        cells.extend(row[..30].iter().rev().cloned());
        input.push_str(&cells.join(","));
        input.push('\n');
    }
    let output = vigil(
        &[
            "predict",
            "--model",
            path_str(&fixture("ulb_xgb_200_nonames.json")),
            "--keep",
            "out_0",
        ],
        Some(&input),
    );
    assert!(output.status.success(), "stderr: {}", stderr(&output));
    assert!(
        !stderr(&output).contains("by position"),
        "{}",
        stderr(&output)
    );
    let scores = scores_and_golden(&output.stdout);
    assert_eq!(scores.len(), rows.len());
    for (i, (score, golden)) in scores.iter().enumerate() {
        assert_eq!(score.to_bits(), golden.to_bits(), "row {i}");
    }
}

/// A config serving the unnamed ULB model under the names of `features_file`.
fn unnamed_model_config(dir: &Path, header: &str) -> PathBuf {
    std::fs::write(dir.join("header.csv"), header).expect("write header.csv");
    let config = dir.join("vigil.toml");
    std::fs::write(
        &config,
        format!(
            "[[models]]\nname = \"ulb\"\npath = {:?}\nfeatures_file = \"header.csv\"\n",
            path_str(&fixture("ulb_xgb_200_nonames.json"))
        ),
    )
    .expect("write config");
    config
}

/// `vigil serve --config` with `features_file`: the unnamed model is served
/// by the header's names on every API, and the inference log keeps them.
#[test]
fn serve_names_an_unnamed_model_from_features_file() {
    let text = std::fs::read_to_string(fixture("ulb_xgb_200.cases.csv")).expect("cases");
    let (header, rows) = read_csv(&text);
    let names = &header[..30];
    let dir = tempfile::tempdir().expect("tempdir");
    let config = unnamed_model_config(dir.path(), &format!("{}\n", names.join(",")));
    let data = dir.path().join("data");
    let server = Serve::start(&[
        "--config".as_ref(),
        config.as_os_str(),
        "--data-dir".as_ref(),
        data.as_os_str(),
    ]);

    let (status, body) = http(&server.addr, "GET", "/v2/models/ulb", None);
    assert_eq!(status, 200, "metadata: {body}");
    let metadata: serde_json::Value = serde_json::from_str(&body).expect("json");
    let inputs: Vec<&str> = metadata["inputs"]
        .as_array()
        .expect("inputs")
        .iter()
        .map(|i| i["name"].as_str().expect("name"))
        .collect();
    assert_eq!(inputs, names);

    for (r, row) in rows.iter().take(3).enumerate() {
        let features: serde_json::Map<String, serde_json::Value> = names
            .iter()
            .zip(row)
            .map(|(n, v)| (n.clone(), v.parse::<f64>().expect("number").into()))
            .collect();
        let id = format!("ulb-{r}");
        let request = serde_json::json!({ "id": id, "features": features });
        let (status, body) = http(
            &server.addr,
            "POST",
            "/v1/models/ulb/score",
            Some(&request.to_string()),
        );
        assert_eq!(status, 200, "score: {body}");
        let answer: serde_json::Value = serde_json::from_str(&body).expect("json");
        let golden: f64 = row[30].parse().expect("out_0");
        assert_eq!(answer["score"].as_f64(), Some(golden), "row {r}");

        let (status, body) = http(&server.addr, "GET", &format!("/api/inferences/{id}"), None);
        assert_eq!(status, 200, "logged: {body}");
        let logged: serde_json::Value = serde_json::from_str(&body).expect("json");
        let input = &logged["records"][0]["input"];
        let amount: f64 = row[29].parse().expect("Amount");
        assert_eq!(input["Amount"].as_f64(), Some(amount), "{body}");
        assert!(input.get("f29").is_none(), "{body}");
    }
    assert_eq!(server.terminate(), Some(0));
}

#[test]
fn serve_refuses_features_file_with_the_wrong_count() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = unnamed_model_config(dir.path(), "Time,V1,Amount\n");
    let output = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .output()
        .expect("run vigil serve");
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(message.contains("model `ulb`"), "stderr: {message}");
    assert!(
        message.contains("gives 3 feature names but the model has 30 features"),
        "stderr: {message}"
    );
}
