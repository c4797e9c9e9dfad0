//! Black-box test with the real Triton HTTP client: `vigil serve` on port 0
//! serving the ULB 200-tree model, driven by `python/triton_http.py`
//! (tritonclient.http) in JSON and binary tensor modes; every score must
//! equal xgboost's in the golden file bit for bit.

mod common;

use std::process::Command;

#[test]
#[ignore = "needs VIGIL_TEST_PYTHON (started by .ci/run)"]
fn tritonclient_http_scores_match_xgboost_bit_for_bit() {
    let Ok(python) = std::env::var("VIGIL_TEST_PYTHON") else {
        panic!(
            "VIGIL_TEST_PYTHON must name a python with tritonclient[http] and numpy (.ci/python.sh makes one)"
        );
    };
    let root = common::workspace();
    let fixtures = root.join("crates/vigil-model/tests/fixtures");
    let model = fixtures.join("ulb_xgb_200.json");
    let golden = fixtures.join("ulb_xgb_200.golden1000.csv");
    let script = root.join("crates/vigil/tests/python/triton_http.py");
    let data = tempfile::tempdir().expect("tempdir");
    let mut model_flag = std::ffi::OsString::from("ulb=");
    model_flag.push(&model);
    let server = common::Serve::start(&[
        "--data-dir".as_ref(),
        data.path().as_os_str(),
        "--model".as_ref(),
        &model_flag,
    ]);
    let output = Command::new(&python)
        .arg(&script)
        .arg(&server.addr)
        .arg("ulb")
        .arg(&golden)
        .output()
        .unwrap_or_else(|err| panic!("run {python}: {err}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "triton_http.py failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    for mode in ["json", "binary", "default"] {
        assert!(
            stdout.contains(&format!("{mode}: 1000 scores bit-identical")),
            "{mode} mode did not report its check:\n{stdout}\n{stderr}"
        );
    }
    assert_eq!(server.terminate(), Some(0), "exit code after SIGTERM");
}
