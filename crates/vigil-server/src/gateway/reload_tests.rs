//! Reload: the same code path as start-up, atomic swaps, rejected configs,
//! and reloads under load without a failed request.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use tower::ServiceExt;

use super::hash_key;
use super::tests::score_request;
use crate::config::Config;
use crate::state::AppState;
use crate::test_util::{DEMO_ROW, XGB_REG, assert_error, demo_features, send};

const ADMIN: &str = "vgl_reload_admin";

/// A config file in `dir` serving `fraud` from `model_file` at `version`,
/// with the admin key and `keys` (name, key) allowed to score.
fn write_config(dir: &Path, model_file: &str, version: &str, keys: &[(&str, &str)]) -> PathBuf {
    let mut text = format!(
        "[[models]]\nname = \"fraud\"\npath = \"{model_file}\"\nversion = \"{version}\"\n\n\
         [[keys]]\nname = \"admin\"\nhash = \"{}\"\nroles = [\"admin\"]\n",
        hash_key(ADMIN)
    );
    for (name, key) in keys {
        text.push_str(&format!(
            "\n[[keys]]\nname = \"{name}\"\nhash = \"{}\"\n",
            hash_key(key)
        ));
    }
    let path = dir.join("vigil.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

fn setup() -> (tempfile::TempDir, PathBuf, AppState) {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("demo.json"), crate::DEMO_MODEL).expect("model");
    std::fs::write(dir.path().join("reg.json"), XGB_REG).expect("model");
    let path = write_config(dir.path(), "demo.json", "1", &[("app", "vgl_app_1")]);
    let state = AppState::from_config(&Config::load(&path).expect("valid")).expect("state");
    (dir, path, state)
}

fn reload_request() -> Request<Body> {
    Request::post("/api/admin/reload")
        .header("x-api-key", ADMIN)
        .body(Body::empty())
        .expect("request")
}

fn body() -> String {
    format!("{{\"features\": {}}}", demo_features(&DEMO_ROW))
}

#[tokio::test]
async fn reload_swaps_keys_and_models_and_needs_an_admin_key() {
    let (dir, _path, state) = setup();
    let before = send(
        &state,
        score_request(Some(("x-api-key", "vgl_app_1")), &body()),
    )
    .await;
    assert_eq!(before.status, StatusCode::OK, "{}", before.text);
    assert_eq!(before.json["version"], "1");

    write_config(dir.path(), "demo.json", "2", &[("app2", "vgl_app_2")]);
    let anonymous = Request::post("/api/admin/reload")
        .body(Body::empty())
        .expect("request");
    assert_eq!(
        send(&state, anonymous).await.status,
        StatusCode::UNAUTHORIZED
    );
    let answer = send(&state, reload_request()).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.json["models"], serde_json::json!(["fraud@2"]));
    assert_eq!(answer.json["keys"], 2);

    let old_key = send(
        &state,
        score_request(Some(("x-api-key", "vgl_app_1")), &body()),
    )
    .await;
    assert_eq!(old_key.status, StatusCode::FORBIDDEN);
    let new_key = send(
        &state,
        score_request(Some(("x-api-key", "vgl_app_2")), &body()),
    )
    .await;
    assert_eq!(new_key.status, StatusCode::OK, "{}", new_key.text);
    assert_eq!(new_key.json["version"], "2");
    // The model was reloaded: the cached score of the old load is not served.
    assert_eq!(new_key.headers["vigil-cache"], "miss");

    // A changed model file is loaded and served.
    write_config(dir.path(), "reg.json", "3", &[("app2", "vgl_app_2")]);
    assert_eq!(send(&state, reload_request()).await.status, StatusCode::OK);
    let reg = send(
        &state,
        score_request(Some(("x-api-key", "vgl_app_2")), "{\"features\": {}}"),
    )
    .await;
    assert_eq!(reg.status, StatusCode::OK, "{}", reg.text);
    assert_eq!(reg.json["version"], "3");
    assert!(
        reg.json.get("label").is_none(),
        "regression has no label: {}",
        reg.text
    );
}

#[tokio::test]
async fn an_invalid_config_is_rejected_with_every_problem_and_the_old_one_serves() {
    let (dir, path, state) = setup();
    let good = std::fs::read_to_string(&path).expect("read");
    std::fs::write(
        &path,
        format!("{good}\n[gateway]\nburst = 0\n\n[[models]]\nname = \"broken\"\npath = \"missing.json\"\nthreshold = nan\n"),
    )
    .expect("write");
    let answer = send(&state, reload_request()).await;
    assert_error(
        &answer,
        StatusCode::BAD_REQUEST,
        "bad_request",
        &[
            "reload rejected, the running config keeps serving",
            "gateway.burst: must be at least 1",
            "threshold must be a finite number",
        ],
    );
    // A model file that does not load is a problem too.
    std::fs::write(
        &path,
        format!("{good}\n[[models]]\nname = \"broken\"\npath = \"missing.json\"\n"),
    )
    .expect("write");
    let answer = send(&state, reload_request()).await;
    assert_error(
        &answer,
        StatusCode::BAD_REQUEST,
        "bad_request",
        &["`broken`", "missing.json"],
    );
    let still = send(
        &state,
        score_request(Some(("x-api-key", "vgl_app_1")), &body()),
    )
    .await;
    assert_eq!(still.status, StatusCode::OK, "{}", still.text);
    assert_eq!(state.registry().models().count(), 1);
    drop(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloading_under_load_fails_no_request() {
    let (dir, path, _) = setup();
    // The load outruns the default global bucket in memory; throttling is
    // not what this test is about.
    let unthrottled = |path: &Path| {
        let text = std::fs::read_to_string(path).expect("read");
        std::fs::write(path, format!("{text}\n[gateway]\nrate_per_s = 0.0\n")).expect("write");
    };
    unthrottled(&path);
    let state = AppState::from_config(&Config::load(&path).expect("valid")).expect("state");
    // Both generations accept `vgl_app_1`; models and versions alternate.
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for _ in 0..8 {
        let (state, stop, ok) = (state.clone(), Arc::clone(&stop), Arc::clone(&ok));
        workers.push(tokio::spawn(async move {
            let app = crate::app(state);
            let mut failures = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                // All features missing: valid for both models.
                let request = score_request(Some(("x-api-key", "vgl_app_1")), "{\"features\": {}}");
                let response = app.clone().oneshot(request).await.expect("infallible");
                if response.status() == StatusCode::OK {
                    ok.fetch_add(1, Ordering::Relaxed);
                } else {
                    failures.push(response.status());
                }
                tokio::task::yield_now().await;
            }
            failures
        }));
    }
    for round in 0..30 {
        let (file, version) = if round % 2 == 0 {
            ("reg.json", "even")
        } else {
            ("demo.json", "odd")
        };
        let keys = [
            ("app", "vgl_app_1"),
            ("extra", &*format!("vgl_extra_{round}")),
        ];
        unthrottled(&write_config(dir.path(), file, version, &keys));
        let answer = send(&state, reload_request()).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        let failures = worker.await.expect("worker");
        assert!(failures.is_empty(), "failed requests: {failures:?}");
    }
    assert!(ok.load(Ordering::Relaxed) >= 30, "too few requests ran");
    assert_eq!(
        state.registry().find("fraud").expect("model").version,
        "odd"
    );
}

#[tokio::test]
async fn a_bucket_keeps_its_state_when_its_plan_does_not_change() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("demo.json"), crate::DEMO_MODEL).expect("model");
    let path = write_config(dir.path(), "demo.json", "1", &[]);
    let base = std::fs::read_to_string(&path).expect("read");
    std::fs::write(
        &path,
        format!("{base}\n[gateway]\nrate_per_s = 0.001\nburst = 1\n"),
    )
    .expect("write");
    let state = AppState::from_config(&Config::load(&path).expect("valid")).expect("state");
    let key = Some(("x-api-key", ADMIN));
    assert_eq!(
        send(&state, score_request(key, &body())).await.status,
        StatusCode::OK
    );
    assert_eq!(
        send(&state, score_request(key, &body())).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    // Same plan: still empty after a reload, so reloading is no way around it.
    assert_eq!(send(&state, reload_request()).await.status, StatusCode::OK);
    assert_eq!(
        send(&state, score_request(key, &body())).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    // A new plan starts a new, full bucket.
    std::fs::write(
        &path,
        format!("{base}\n[gateway]\nrate_per_s = 0.001\nburst = 2\n"),
    )
    .expect("write");
    assert_eq!(send(&state, reload_request()).await.status, StatusCode::OK);
    assert_eq!(
        send(&state, score_request(key, &body())).await.status,
        StatusCode::OK
    );
}
