//! Black-box test of the gRPC service with the real tritonclient.grpc: the
//! binary on port 0 serves the ULB XGBoost model, and
//! `tests/python/triton_grpc.py` checks live, ready, both metadata calls and
//! one ModelInfer of every row of the golden file, bit for bit.

mod common;

use std::process::Command;

use common::{Serve, workspace};

/// Every row of this file is scored; its last column is xgboost's own
/// probability.
const CASES: &str = "crates/vigil-model/tests/fixtures/ulb_xgb_200.cases.csv";

#[test]
#[ignore = "needs VIGIL_TEST_PYTHON (started by .ci/run)"]
fn tritonclient_grpc_scores_bit_identical_to_xgboost() {
    let python = std::env::var("VIGIL_TEST_PYTHON").unwrap_or_else(|_| {
        panic!("VIGIL_TEST_PYTHON must name a python with tritonclient[grpc] (.ci/run sets it)")
    });
    let root = workspace();
    let model = root.join("crates/vigil-model/tests/fixtures/ulb_xgb_200.json");
    let data = tempfile::tempdir().expect("tempdir");
    let model_arg = format!("ulb={}", model.display());
    let server = Serve::start(&[
        "--data-dir".as_ref(),
        data.path().as_os_str(),
        "--model".as_ref(),
        model_arg.as_ref(),
    ]);
    let output = Command::new(&python)
        .arg(root.join("crates/vigil/tests/python/triton_grpc.py"))
        .args([server.addr.as_str(), "ulb"])
        .arg(root.join(CASES))
        .output()
        .expect("run the python client");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "triton_grpc.py failed\nstdout: {stdout}\nstderr: {stderr}"
    );
    let report: serde_json::Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|err| panic!("not one JSON line ({err}): {stdout}"));
    let rows = std::fs::read_to_string(root.join(CASES))
        .expect("cases file")
        .lines()
        .skip(1)
        .filter(|l| !l.is_empty())
        .count();
    assert_eq!(report["rows"], rows, "{report}");
    assert_eq!(report["mismatches"], 0, "{report}");
    assert_eq!(report["id"], "triton-grpc-1", "{report}");
    assert_eq!(server.terminate(), Some(0));
}
