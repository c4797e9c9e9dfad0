#![allow(clippy::unwrap_used)]

use axum::http::StatusCode;

use crate::state::AppState;
use crate::test_util::{assert_error, demo_state, json_request, send};

async fn call(
    state: &AppState,
    method: &str,
    uri: &str,
    body: &str,
) -> (StatusCode, serde_json::Value) {
    let answer = send(state, json_request(method, uri, body)).await;
    (answer.status, answer.json)
}

const BODY: &str = r#"{"start": "-PT1H", "widgets": [
    {"type": "metric", "x": 0, "y": 0, "width": 12, "height": 6,
     "properties": {"metrics": [["InferencePipeline", "LatencyMs", {"stat": "p99"}]],
                    "view": "timeSeries", "period": 60}},
    {"type": "log", "x": 12, "y": 0, "width": 12, "height": 6,
     "properties": {"query": "SOURCE '/vigil/access' | filter status >= 400 | limit 10"}}]}"#;

#[tokio::test]
async fn the_built_ins_are_listed_and_readable() {
    let app = demo_state();
    let (status, list) = call(&app, "GET", "/api/dashboards", "").await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let names: Vec<(&str, &str)> = list["dashboards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["name"].as_str().unwrap(), d["source"].as_str().unwrap()))
        .collect();
    assert_eq!(
        names,
        [
            ("Inference-Monitoring-Dashboard", "builtin"),
            ("Vigil-Overview", "builtin")
        ]
    );
    assert_eq!(list["dashboards"][0]["widgets"], 4);
    let (status, seed) = call(
        &app,
        "GET",
        "/api/dashboards/Inference-Monitoring-Dashboard",
        "",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        seed["body"]["widgets"][1]["properties"]["title"],
        "SuccessCount"
    );
    assert_eq!(
        seed["body"]["widgets"][1]["properties"]["metrics"][0],
        serde_json::json!(["InferencePipeline", "SuccessCount"])
    );
    let answer = send(&app, json_request("GET", "/api/dashboards/nope", "")).await;
    assert_error(
        &answer,
        StatusCode::NOT_FOUND,
        "not_found",
        &["no dashboard named `nope`"],
    );
}

#[tokio::test]
async fn put_get_replace_delete() {
    let app = demo_state();
    let (status, stored) = call(&app, "PUT", "/api/dashboards/Payments", BODY).await;
    assert_eq!(status, StatusCode::OK, "{stored}");
    assert_eq!(stored["name"], "Payments");
    assert_eq!(stored["source"], "api");
    assert_eq!(
        stored["body"],
        serde_json::from_str::<serde_json::Value>(BODY).unwrap()
    );
    let (_, got) = call(&app, "GET", "/api/dashboards/Payments", "").await;
    assert_eq!(got, stored);
    let (_, list) = call(&app, "GET", "/api/dashboards", "").await;
    assert_eq!(list["dashboards"].as_array().unwrap().len(), 3);

    // Replacing a built-in, then deleting the replacement, brings it back;
    // the built-in itself cannot be deleted.
    let seed = "/api/dashboards/Inference-Monitoring-Dashboard";
    let (status, _) = call(&app, "PUT", seed, BODY).await;
    assert_eq!(status, StatusCode::OK);
    let (_, replaced) = call(&app, "GET", seed, "").await;
    assert_eq!(replaced["source"], "api");
    let (status, _) = call(&app, "DELETE", seed, "").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, back) = call(&app, "GET", seed, "").await;
    assert_eq!(back["source"], "builtin");
    let answer = send(&app, json_request("DELETE", seed, "")).await;
    assert_error(&answer, StatusCode::CONFLICT, "conflict", &["is built in"]);

    let (status, _) = call(&app, "DELETE", "/api/dashboards/Payments", "").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let answer = send(&app, json_request("DELETE", "/api/dashboards/Payments", "")).await;
    assert_error(&answer, StatusCode::NOT_FOUND, "not_found", &["Payments"]);
}

#[tokio::test]
async fn bad_bodies_name_the_widget_and_field() {
    let app = demo_state();
    let bad = r#"{"widgets": [
        {"type": "text", "x": 0, "y": 0, "width": 6, "height": 2, "properties": {"markdown": "ok"}},
        {"type": "text", "x": 0, "y": 0, "width": 6, "height": 2, "properties": {"markdown": "ok"}},
        {"type": "metric", "x": 20, "y": 0, "width": 8, "height": 6,
         "properties": {"metrics": [["InferencePipeline"]], "view": "pie"}},
        {"type": "log", "properties": {"query": "SOURCE '/vigil/access' | filter status >>> 4"}}]}"#;
    let answer = send(&app, json_request("PUT", "/api/dashboards/Bad", bad)).await;
    assert_error(
        &answer,
        StatusCode::BAD_REQUEST,
        "bad_request",
        &[
            "widgets[2].width: x (20) + width (8) is past the grid's 24 columns",
            "widgets[2].properties.view: expected one of timeSeries, singleValue, gauge, bar, got \"pie\"",
            "widgets[2].properties.metrics[0]: expected [namespace, metric name",
            "widgets[3].properties.query: ",
        ],
    );
    let message = answer.json["error"].as_str().unwrap();
    assert!(
        !message.contains("widgets[0]") && !message.contains("widgets[1]"),
        "{message}"
    );
    let answer = send(
        &app,
        json_request("PUT", "/api/dashboards/has%20space", BODY),
    )
    .await;
    assert_error(
        &answer,
        StatusCode::BAD_REQUEST,
        "bad_request",
        &["name: only letters"],
    );
    let answer = send(&app, json_request("PUT", "/api/dashboards/x", "[1")).await;
    assert_error(
        &answer,
        StatusCode::BAD_REQUEST,
        "bad_request",
        &["invalid request body"],
    );
    let (_, list) = call(&app, "GET", "/api/dashboards", "").await;
    assert_eq!(list["dashboards"].as_array().unwrap().len(), 2);
}

/// The served console and the CLI see what the config file defines, and
/// an API change survives a restart (the data directory's file).
#[tokio::test]
async fn config_dashboards_and_persistence() {
    let dir = tempfile::tempdir().unwrap();
    let config = crate::config::Config::from_toml(
        "[[models]]\nname = \"fraud\"\npath = \"m.json\"\n\n[[dashboards]]\nname = \"FromFile\"\n\
         [[dashboards.widgets]]\ntype = \"text\"\nproperties = { markdown = \"from the file\" }\n",
    )
    .unwrap();
    let open = || {
        demo_state().with_dashboards(std::sync::Arc::new(
            super::open(&config, Some(dir.path())).unwrap(),
        ))
    };
    let app = open();
    let (_, got) = call(&app, "GET", "/api/dashboards/FromFile", "").await;
    assert_eq!(got["source"], "config");
    assert_eq!(
        got["body"]["widgets"][0]["properties"]["markdown"],
        "from the file"
    );
    let (status, _) = call(&app, "PUT", "/api/dashboards/Payments", BODY).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = call(&app, "DELETE", "/api/dashboards/FromFile", "").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    drop(app);
    let app = open();
    let (_, list) = call(&app, "GET", "/api/dashboards", "").await;
    let names: Vec<&str> = list["dashboards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "Inference-Monitoring-Dashboard",
            "Payments",
            "Vigil-Overview"
        ]
    );
}

/// A config file serving the demo model at `version` with one
/// `[[dashboards]]` entry, `name`, whose text widget says `markdown`.
fn write_config(
    dir: &std::path::Path,
    version: &str,
    name: &str,
    markdown: &str,
) -> std::path::PathBuf {
    let path = dir.join("vigil.toml");
    let text = format!(
        "[[models]]\nname = \"fraud\"\npath = \"demo.json\"\nversion = \"{version}\"\n\n\
         [[dashboards]]\nname = \"{name}\"\n\n[[dashboards.widgets]]\ntype = \"text\"\n\
         properties = {{ markdown = \"{markdown}\" }}\n"
    );
    std::fs::write(&path, text).unwrap();
    path
}

async fn listed(state: &AppState) -> Vec<(String, String)> {
    let (status, list) = call(state, "GET", "/api/dashboards", "").await;
    assert_eq!(status, StatusCode::OK, "{list}");
    list["dashboards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["name"].as_str().unwrap().to_owned(),
                d["source"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_reload_reads_the_config_files_dashboards_again() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("demo.json"), crate::DEMO_MODEL).unwrap();
    let path = write_config(dir.path(), "1", "Payments", "v1");
    let state = AppState::from_config(&crate::config::Config::load(&path).unwrap()).unwrap();
    let pair = |n: &str, s: &str| (n.to_owned(), s.to_owned());
    assert!(listed(&state).await.contains(&pair("Payments", "config")));

    // The file changes: the reload (POST /api/admin/reload, as SIGHUP)
    // serves its dashboards, and the overview follows its model version.
    write_config(dir.path(), "2", "Refunds", "v2");
    let (status, summary) = call(&state, "POST", "/api/admin/reload", "").await;
    assert_eq!(status, StatusCode::OK, "{summary}");
    let names = listed(&state).await;
    assert!(names.contains(&pair("Refunds", "config")), "{names:?}");
    assert!(!names.iter().any(|(n, _)| n == "Payments"), "{names:?}");
    let (_, refunds) = call(&state, "GET", "/api/dashboards/Refunds", "").await;
    assert_eq!(
        refunds["body"]["widgets"][0]["properties"]["markdown"],
        "v2"
    );
    let (_, overview) = call(&state, "GET", "/api/dashboards/Vigil-Overview", "").await;
    let text = overview["body"].to_string();
    assert!(text.contains(r#""version","2""#), "{text}");
    assert!(!text.contains(r#""version","1""#), "{text}");

    // A file with a bad dashboard is refused whole: the old ones stay.
    std::fs::write(
        &path,
        "[[models]]\nname = \"fraud\"\npath = \"demo.json\"\n\n[[dashboards]]\nname = \"a b\"\n",
    )
    .unwrap();
    let (status, answer) = call(&state, "POST", "/api/admin/reload", "").await;
    assert_ne!(status, StatusCode::OK, "{answer}");
    assert!(
        answer.to_string().contains("dashboards[0].name"),
        "{answer}"
    );
    assert_eq!(listed(&state).await, names);
}
