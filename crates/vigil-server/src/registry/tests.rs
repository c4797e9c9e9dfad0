//! Feature names given by the config: the rules, and that every API area
//! then speaks them.

use axum::http::StatusCode;

use super::*;
use crate::state::AppState;
use crate::test_util::call;

/// The ULB model saved without feature names (features `f0..f29`).
const ULB_NONAMES: &[u8] =
    include_bytes!("../../../vigil-model/tests/fixtures/ulb_xgb_200_nonames.json");
/// The same model with its names.
const ULB: &[u8] = include_bytes!("../../../vigil-model/tests/fixtures/ulb_xgb_200.json");
/// Real ULB rows: `Time,V1..V28,Amount,out_0` (out_0: xgboost's probability).
const ULB_CASES: &str = include_str!("../../../vigil-model/tests/fixtures/ulb_xgb_200.cases.csv");

fn header() -> Vec<String> {
    let line = ULB_CASES.lines().next().expect("header line");
    let mut names: Vec<String> = line.split(',').map(str::to_owned).collect();
    assert_eq!(names.pop().as_deref(), Some("out_0"));
    names
}

/// The first case: 30 feature values and the golden score.
fn first_case() -> (Vec<f64>, f64) {
    let line = ULB_CASES.lines().nth(1).expect("a case");
    let mut values: Vec<f64> = line
        .split(',')
        .map(|cell| cell.parse().expect("a number"))
        .collect();
    let golden = values.pop().expect("out_0");
    (values, golden)
}

fn model_config(name: &str, bytes: &'static [u8], names: Option<Vec<String>>) -> ModelConfig {
    let mut config = ModelConfig::new(name.to_owned(), ModelSource::Bytes(bytes));
    config.features = names.map(|names| FeatureNames {
        names,
        origin: "`features`".to_owned(),
    });
    config
}

fn load_error(config: &ModelConfig) -> String {
    format!(
        "{:#}",
        ModelEntry::load(config).expect_err("the names do not fit")
    )
}

#[test]
fn configured_names_name_an_unnamed_model_everywhere() {
    let entry = ModelEntry::load(&model_config("ulb", ULB_NONAMES, Some(header()))).expect("loads");
    assert_eq!(entry.model.feature_names(), header());
    assert_eq!(entry.feature_index("Time"), Some(0));
    assert_eq!(entry.feature_index("Amount"), Some(29));
    assert_eq!(entry.feature_index("f0"), None);
    // The inference log writes the configured names, sorted.
    let logged: Vec<&str> = entry.log_keys().iter().map(|k| &*k.name).collect();
    let mut sorted = header();
    sorted.sort();
    assert_eq!(logged, sorted);
    let amount = entry.log_keys().iter().find(|k| &*k.name == "Amount");
    assert_eq!(amount.map(|k| k.index), Some(29));
}

#[test]
fn without_configured_names_an_unnamed_model_keeps_f_names() {
    let entry = ModelEntry::load(&model_config("ulb", ULB_NONAMES, None)).expect("loads");
    assert_eq!(entry.model.feature_names()[0], "f0");
    assert_eq!(entry.feature_index("f29"), Some(29));
}

#[test]
fn a_wrong_count_names_the_model_and_both_counts() {
    let mut names = header();
    names.pop();
    let err = load_error(&model_config("ulb", ULB_NONAMES, Some(names)));
    assert!(err.contains("model `ulb`"), "{err}");
    assert!(
        err.contains("`features` gives 29 feature names but the model has 30 features"),
        "{err}"
    );
    let mut names = header();
    names.push("extra".into());
    let err = load_error(&model_config("ulb", ULB_NONAMES, Some(names)));
    assert!(err.contains("gives 31 feature names"), "{err}");
}

#[test]
fn a_named_model_accepts_only_its_own_names() {
    let same = ModelEntry::load(&model_config("ulb", ULB, Some(header()))).expect("same names");
    assert_eq!(same.model.feature_names(), header());

    let mut swapped = header();
    swapped.swap(1, 2);
    let err = load_error(&model_config("ulb", ULB, Some(swapped)));
    assert!(err.contains("model `ulb`"), "{err}");
    assert!(
        err.contains("already names its features and `features` differs"),
        "{err}"
    );
    assert!(
        err.contains("feature 1 is `V1` in the file, `V2` in the config"),
        "{err}"
    );
}

#[test]
fn every_model_whose_names_do_not_fit_is_reported_at_once() {
    let mut config = Config::demo();
    let mut short = header();
    short.truncate(3);
    config.models = vec![
        model_config("a", ULB_NONAMES, Some(short)),
        model_config("b", ULB, Some(vec!["x".to_owned(); 30])),
        model_config("c", ULB_NONAMES, Some(header())),
    ];
    let err = format!(
        "{:#}",
        Registry::load(
            &config,
            &crate::telemetry::Telemetry::new(Default::default())
        )
        .expect_err("two bad models")
    );
    assert!(err.contains("model `a`"), "{err}");
    assert!(err.contains("gives 3 feature names"), "{err}");
    assert!(err.contains("model `b`"), "{err}");
    assert!(err.contains("already names its features"), "{err}");
    assert!(!err.contains("model `c`"), "{err}");
}

fn ulb_state() -> AppState {
    let mut config = Config::demo();
    config.models = vec![model_config("ulb", ULB_NONAMES, Some(header()))];
    AppState::from_config(&config).expect("the unnamed model with names loads")
}

#[tokio::test]
async fn oip_metadata_lists_the_configured_names() {
    let state = ulb_state();
    let answer = call(&state, "GET", "/v2/models/ulb", None).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let inputs: Vec<&str> = answer.json["inputs"]
        .as_array()
        .expect("inputs")
        .iter()
        .map(|input| input["name"].as_str().expect("a name"))
        .collect();
    assert_eq!(inputs, header());
}

#[tokio::test]
async fn v1_scores_features_by_the_configured_names() {
    let state = ulb_state();
    let (row, golden) = first_case();
    let fields: Vec<String> = header()
        .iter()
        .zip(&row)
        .rev()
        .map(|(name, value)| format!("\"{name}\": {value}"))
        .collect();
    let body = format!("{{\"features\": {{{}}}}}", fields.join(", "));
    let answer = call(&state, "POST", "/v1/models/ulb/score", Some(&body)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.json["score"].as_f64(), Some(golden));

    // The made-up names are gone: `f0` is an unknown feature now.
    let answer = call(
        &state,
        "POST",
        "/v1/models/ulb/score",
        Some("{\"features\": {\"f0\": 1.0}}"),
    )
    .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.text);
    assert!(answer.text.contains("f0"), "{}", answer.text);
}
