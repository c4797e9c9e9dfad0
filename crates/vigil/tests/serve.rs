//! Black-box tests of `vigil serve`: the real binary on port 0, spoken to
//! over plain HTTP/1.1, stopped with SIGTERM.

mod common;

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::{http, wait_exit};
use vigil_model::Model;

/// A running `vigil serve`, killed if the test fails before stopping it.
struct Server {
    child: Child,
    addr: String,
    models: Vec<String>,
    /// The server's inference log directory, removed with the server.
    _data: tempfile::TempDir,
}

impl Server {
    fn start(extra: &[&str]) -> Server {
        let data = tempfile::tempdir().expect("tempdir");
        let mut args = vec![std::ffi::OsStr::new("--data-dir"), data.path().as_os_str()];
        args.extend(extra.iter().map(std::ffi::OsStr::new));
        let (child, line) = common::launch(&args);
        let addr = line["addr"].as_str().expect("addr is a string").to_string();
        let models = line["models"]
            .as_array()
            .expect("models is an array")
            .iter()
            .filter_map(|m| m.as_str().map(str::to_string))
            .collect();
        Server {
            child,
            addr,
            models,
            _data: data,
        }
    }

    /// SIGTERM, then the exit code.
    fn terminate(mut self) -> Option<i32> {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
        let code = wait_exit(&mut self.child, Duration::from_secs(10));
        let _ = std::fs::remove_dir_all(self._data.path());
        std::mem::forget(self);
        code
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn demo_model() -> Model {
    Model::from_bytes(vigil_server::DEMO_MODEL, None).expect("the demo model loads")
}

/// A plausible transaction for the demo model, in model feature order.
fn demo_row(model: &Model) -> Vec<f64> {
    model
        .feature_names()
        .iter()
        .enumerate()
        .map(|(i, name)| match name.as_str() {
            "amount" => 950.0,
            "hour" => 3.0,
            "foreign" | "new_device" => 1.0,
            _ => i as f64,
        })
        .collect()
}

fn expected_score(model: &Model, row: &[f64]) -> f64 {
    let mut out = vec![0.0; model.num_outputs()];
    model.predict_row(row, &mut out).expect("score the row");
    out[0]
}

#[test]
fn serves_the_demo_model_and_stops_on_sigterm() {
    let server = Server::start(&[]);
    assert_eq!(server.models, vec!["fraud".to_string()]);

    let (status, body) = http(&server.addr, "GET", "/v2/health/ready", None);
    assert_eq!(status, 200, "ready: {body}");

    let model = demo_model();
    let row = demo_row(&model);
    let want = expected_score(&model, &row);

    // Plain JSON scoring.
    let features: serde_json::Map<String, serde_json::Value> = model
        .feature_names()
        .iter()
        .zip(&row)
        .map(|(n, v)| (n.clone(), serde_json::Value::from(*v)))
        .collect();
    let request = serde_json::json!({ "id": "tx-1", "features": features });
    let (status, body) = http(
        &server.addr,
        "POST",
        "/v1/models/fraud/score",
        Some(&request.to_string()),
    );
    assert_eq!(status, 200, "v1 score: {body}");
    let answer: serde_json::Value = serde_json::from_str(&body).expect("v1 answer is JSON");
    assert_eq!(answer["id"], "tx-1");
    assert_eq!(answer["model"], "fraud");
    let got = answer["score"].as_f64().expect("score is a number");
    assert!((got - want).abs() < 1e-6, "v1 score {got}, expected {want}");
    let threshold = answer["threshold"].as_f64().expect("threshold is a number");
    let label = answer["label"].as_str().expect("label is a string");
    assert_eq!(label, if got >= threshold { "fraud" } else { "legit" });

    // Open Inference Protocol: one [1, n] FP64 tensor.
    let request = serde_json::json!({
        "id": "oip-1",
        "inputs": [{
            "name": "input-0",
            "shape": [1, row.len()],
            "datatype": "FP64",
            "data": row,
        }],
    });
    let (status, body) = http(
        &server.addr,
        "POST",
        "/v2/models/fraud/infer",
        Some(&request.to_string()),
    );
    assert_eq!(status, 200, "oip infer: {body}");
    let answer: serde_json::Value = serde_json::from_str(&body).expect("infer answer is JSON");
    assert_eq!(answer["id"], "oip-1");
    let data = &answer["outputs"][0]["data"];
    let got = data
        .as_array()
        .and_then(|d| d.first())
        .and_then(serde_json::Value::as_f64)
        .unwrap_or_else(|| panic!("no score in {body}"));
    assert!(
        (got - want).abs() < 1e-6,
        "oip score {got}, expected {want}"
    );

    // A client mistake is a 4xx, not a 5xx.
    let (status, _) = http(&server.addr, "POST", "/v1/models/fraud/score", Some("{"));
    assert!((400..500).contains(&status), "malformed JSON gave {status}");

    assert_eq!(server.terminate(), Some(0), "exit code after SIGTERM");
}

#[test]
fn serves_a_model_named_on_the_command_line() {
    let path = format!(
        "{}/../vigil-server/assets/demo-fraud.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let server = Server::start(&["--model", &format!("card={path}")]);
    assert_eq!(server.models, vec!["card".to_string()]);
    let (status, body) = http(&server.addr, "GET", "/v2/models/card/ready", None);
    assert_eq!(status, 200, "model ready: {body}");
    let (status, _) = http(&server.addr, "GET", "/v2/models/fraud/ready", None);
    assert_eq!(
        status, 404,
        "the demo model is not served alongside --model"
    );
    assert_eq!(server.terminate(), Some(0));
}

#[test]
fn a_bad_model_flag_fails_fast_with_a_message() {
    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--model",
            "x=/nonexistent/m.json",
        ])
        .output()
        .expect("run vigil serve");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("/nonexistent/m.json"), "stderr: {stderr}");
    // The listening line means ready, so a server that never got ready
    // must not print it.
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!stdout.contains("listening"), "stdout: {stdout}");
    assert!(started.elapsed() < Duration::from_secs(10));
}
