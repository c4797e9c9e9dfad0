use super::*;

const DOC: &str = include_str!("../../../../docs/config.md");
const README: &str = include_str!("../../../../README.md");

fn minimal() -> &'static str {
    "[[models]]\nname = \"fraud\"\npath = \"models/fraud.json\"\n"
}

#[test]
fn minimal_config_gets_every_default() {
    let config = Config::from_toml(minimal()).expect("minimal config is valid");
    assert_eq!(
        config.server.listen,
        "127.0.0.1:8080".parse().expect("addr")
    );
    assert_eq!(config.server.max_body_bytes, 1_048_576);
    assert_eq!(config.server.unknown_features, UnknownFeatures::Reject);
    assert!(config.server.access_log);
    assert_eq!(config.models.len(), 1);
    let model = &config.models[0];
    assert_eq!(model.name, "fraud");
    assert_eq!(
        model.source,
        ModelSource::Path(PathBuf::from("models/fraud.json"))
    );
    assert_eq!(model.format, None);
    assert_eq!(model.version, "1");
    assert_eq!(model.threshold, 0.5);
    assert_eq!(model.labels, ["legit".to_owned(), "fraud".to_owned()]);
    assert_eq!(model.unknown_features, UnknownFeatures::Reject);
}

#[test]
fn every_key_is_parsed() {
    let text = r#"
[server]
listen = "0.0.0.0:9000"
max_body_bytes = 4096
unknown_features = "ignore"
access_log = false

[[models]]
name = "m-1"
path = "a.txt"
format = "lightgbm"
version = "7"
threshold = 0.25
labels = ["ok", "bad"]
unknown_features = "reject"

[[models]]
name = "m_2"
path = "/abs/b.ubj"
"#;
    let config = Config::from_toml_in(text, Some(Path::new("/etc/vigil"))).expect("valid");
    assert_eq!(config.server.listen, "0.0.0.0:9000".parse().expect("addr"));
    assert_eq!(config.server.max_body_bytes, 4096);
    assert_eq!(config.server.unknown_features, UnknownFeatures::Ignore);
    assert!(!config.server.access_log);
    let m = &config.models[0];
    assert_eq!(
        m.source,
        ModelSource::Path(PathBuf::from("/etc/vigil/a.txt"))
    );
    assert_eq!(m.format, Some(ModelFormat::LightgbmText));
    assert_eq!(m.version, "7");
    assert_eq!(m.threshold, 0.25);
    assert_eq!(m.labels, ["ok".to_owned(), "bad".to_owned()]);
    assert_eq!(m.unknown_features, UnknownFeatures::Reject);
    // The per-model default follows the server value.
    assert_eq!(config.models[1].unknown_features, UnknownFeatures::Ignore);
    assert_eq!(
        config.models[1].source,
        ModelSource::Path(PathBuf::from("/abs/b.ubj"))
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let text = r#"
[server]
listen = "nowhere"
unknown_features = "maybe"

[[models]]
name = "bad name"
path = "a.json"
format = "onnx"
labels = ["only-one"]

[[models]]
path = "b.json"

[[models]]
name = "dup"

[[models]]
name = "dup"
path = "c.json"
threshold = nan
"#;
    let err = Config::from_toml(text).expect_err("invalid").to_string();
    for needle in [
        "server.listen: `nowhere`",
        "server.unknown_features: expected \"reject\" or \"ignore\", got \"maybe\"",
        "models[0] (`bad name`): name must be made of",
        "format must be \"xgboost-json\", \"xgboost-ubj\" or \"lightgbm\", got \"onnx\"",
        "labels must be [negative, positive], got 1 name(s)",
        "models[1]: missing required key `name`",
        "models[2] (`dup`): missing required key `path`",
        "models[3]: duplicate model name `dup`",
        "models[3] (`dup`): threshold must be a finite number",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }
    assert!(err.starts_with("9 problem(s)"), "{err}");
}

#[test]
fn unknown_keys_and_types_are_rejected_with_position() {
    let err = Config::from_toml("[server]\nlisten_addr = \"x\"\n")
        .expect_err("unknown key")
        .to_string();
    assert!(err.contains("unknown field `listen_addr`"), "{err}");
    assert!(err.contains("line 2"), "{err}");
    let err = Config::from_toml("[[models]]\nname = \"a\"\npath = \"b\"\nthreshold = \"high\"\n")
        .expect_err("bad type")
        .to_string();
    assert!(err.contains("threshold"), "{err}");
}

#[test]
fn empty_config_needs_a_model() {
    let err = Config::from_toml("").expect_err("no models").to_string();
    assert!(err.contains("no [[models]] entry"), "{err}");
}

#[test]
fn demo_and_cli_models() {
    let demo = Config::demo();
    assert_eq!(demo.server.listen, "127.0.0.1:8080".parse().expect("addr"));
    assert_eq!(demo.models[0].name, "fraud");
    assert_eq!(demo.models[0].source, ModelSource::Bytes(crate::DEMO_MODEL));

    let config = Config::from_models(vec![
        ("a".into(), "x.json".into()),
        ("b".into(), "y.txt".into()),
    ])
    .expect("valid");
    assert_eq!(config.models[1].name, "b");
    assert_eq!(config.models[1].source, ModelSource::Path("y.txt".into()));
    let err = Config::from_models(vec![("a/b".into(), "x.json".into())]).expect_err("bad name");
    assert!(err.to_string().contains("name must be made of"), "{err}");
}

#[test]
fn load_resolves_paths_against_the_config_dir() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("vigil.toml");
    std::fs::write(&file, minimal()).expect("write");
    let config = Config::load(&file).expect("valid");
    assert_eq!(
        config.models[0].source,
        ModelSource::Path(dir.path().join("models/fraud.json"))
    );
    let err = Config::load(&dir.path().join("missing.toml")).expect_err("missing");
    assert!(err.to_string().contains("cannot read config file"), "{err}");
}

/// Every key the builder structs accept, as `table.key`, from serde itself.
fn builder_keys() -> Vec<String> {
    let builder = ConfigBuilder {
        server: ServerBuilder::default(),
        models: vec![ModelBuilder {
            name: Some("n".into()),
            path: Some("p".into()),
            format: Some("lightgbm".into()),
            unknown_features: Some("reject".into()),
            ..ModelBuilder::default()
        }],
        gateway: GatewayBuilder::default(),
        keys: vec![KeyBuilder {
            name: Some("app".into()),
            hash: Some(format!("sha256:{}", "0".repeat(64))),
            ..KeyBuilder::default()
        }],
        cache: CacheBuilder {
            url: Some("redis://127.0.0.1/".into()),
            ..CacheBuilder::default()
        },
        store: StoreBuilder::every_key(),
        metrics: MetricsBuilder {
            data_dir: Some("m".into()),
            url: Some("postgres://127.0.0.1/vigil".into()),
            ..MetricsBuilder::default()
        },
        logs: LogsBuilder {
            data_dir: Some("l".into()),
            subscription_files_dir: Some("f".into()),
            ..LogsBuilder::default()
        },
        traces: TracesBuilder::default(),
        alarms: vec![serde_json::json!({
            "name": "a", "description": "d", "namespace": "n", "metric_name": "m",
            "dimensions": {}, "statistic": "Sum", "extended_statistic": "p99", "unit": "Count",
            "period": 60, "evaluation_periods": 1, "datapoints_to_alarm": 1, "threshold": 0.0,
            "comparison_operator": "GreaterThanThreshold", "treat_missing_data": "missing",
            "evaluate_low_sample_count_percentile": "evaluate", "metrics": [],
            "alarm_actions": [], "ok_actions": [], "insufficient_data_actions": [],
            "actions_enabled": true, "alarm_rule": "TRUE", "actions_suppressor": "s",
            "actions_suppressor_wait_period": 60, "actions_suppressor_extension_period": 60
        })],
        notify: serde_json::json!({
            "smtp": {}, "connect_timeout_ms": 5000, "request_timeout_ms": 10000,
            "retry": {}, "alertmanager": {}
        }),
        dashboards: vec![DashboardBuilder::every_key()],
    };
    let value = serde_json::to_value(&builder).expect("serializable");
    let mut keys = Vec::new();
    let tables = value.as_object().expect("object");
    assert_eq!(
        tables.len(),
        12,
        "a new top-level table needs docs and this test"
    );
    for (table, value) in tables {
        let entry = match value {
            serde_json::Value::Array(items) => &items[0],
            other => other,
        };
        for key in entry.as_object().expect("table").keys() {
            keys.push(format!("{table}.{key}"));
        }
    }
    keys
}

#[test]
fn every_key_is_documented() {
    let keys = builder_keys();
    assert_eq!(keys.len(), 111);
    for key in keys {
        assert!(
            DOC.contains(&format!("| `{key}` |")),
            "docs/config.md does not document `{key}`"
        );
        assert!(
            README.contains(&format!("`{key}`")),
            "README.md's configuration list misses `{key}`"
        );
    }
}

#[test]
fn documented_defaults_are_the_defaults() {
    let start = DOC.find("## Every key at its default").expect("section");
    let block = &DOC[start..];
    let begin = block.find("```toml\n").expect("toml block") + "```toml\n".len();
    let end = block[begin..].find("```").expect("end of block") + begin;
    let documented = Config::from_toml(&block[begin..end]).expect("documented defaults parse");
    assert_eq!(documented, Config::from_toml(minimal()).expect("minimal"));
    // And every documented table key appears in that block.
    for key in builder_keys() {
        let (_, name) = key.split_once('.').expect("table.key");
        assert!(
            block.contains(&format!("{name} ")),
            "`{key}` missing from the defaults block"
        );
    }
}

#[test]
fn tls_paths_are_required_and_resolved_against_the_config_dir() {
    let text = format!(
        "[server.tls]\ncert_path = \"c.pem\"\nkey_path = \"/abs/k.pem\"\n\n{}",
        minimal()
    );
    let config = Config::from_toml_in(&text, Some(Path::new("/etc/vigil"))).expect("valid");
    let tls = config.server.tls.expect("tls");
    assert_eq!(tls.cert_path, PathBuf::from("/etc/vigil/c.pem"));
    assert_eq!(tls.key_path, PathBuf::from("/abs/k.pem"));
    let err = Config::from_toml(&format!(
        "[server.tls]\ncert_path = \"c.pem\"\n\n{}",
        minimal()
    ))
    .expect_err("no key")
    .to_string();
    assert!(err.contains("server.tls.key_path: required"), "{err}");
    assert_eq!(
        Config::from_toml(minimal()).expect("valid").server.tls,
        None
    );
}

#[test]
fn store_table_defaults_validation_and_env_override() {
    let config = Config::from_toml(minimal()).expect("valid");
    assert!(config.store.enabled);
    assert_eq!(config.store.store.data_dir, PathBuf::from("vigil-data"));
    assert_eq!(config.store.store.fsync_interval_ms, 100);

    let text = format!(
        "[store]\nenabled = false\ndata_dir = \"log\"\ndurability = \"fsync\"\n\
         redact = {{ card = \"hash\" }}\n\n{}",
        minimal()
    );
    let no_env = |_: &str| None;
    let err = Config::from_toml_with_env(&text, Some(Path::new("/etc/vigil")), &no_env)
        .expect_err("hash rule without key")
        .to_string();
    assert!(err.contains("store: `redact` has a `hash` rule"), "{err}");

    let env = |name: &str| (name == ENV_STORE_REDACT_KEY).then(|| "s3cret".to_owned());
    let config =
        Config::from_toml_with_env(&text, Some(Path::new("/etc/vigil")), &env).expect("valid");
    assert!(!config.store.enabled);
    assert_eq!(config.store.store.data_dir, PathBuf::from("/etc/vigil/log"));
    assert_eq!(
        config.store.store.durability,
        vigil_store::Durability::Fsync
    );
    assert_eq!(
        config.store.store.redact_hash_key.as_deref(),
        Some("s3cret")
    );

    let bad = format!(
        "[store]\nenabled = 1\n\n[cache]\nttl_ms = 1\n\n{}",
        minimal()
    );
    let err = Config::from_toml(&bad).expect_err("bad").to_string();
    assert!(
        err.contains("store.enabled: expected true or false"),
        "{err}"
    );
    let typo = format!(
        "[store]\ndurabilty = \"os\"\nfsync_interval_ms = 0\n\n{}",
        minimal()
    );
    let err = Config::from_toml(&typo).expect_err("typo").to_string();
    assert!(err.contains("unknown field `durabilty`"), "{err}");
    let zero = format!(
        "[store]\nfsync_interval_ms = 0\nurl = \"mysql://x\"\n\n{}",
        minimal()
    );
    let err = Config::from_toml(&zero).expect_err("zero").to_string();
    assert!(err.contains("2 problem(s)"), "{err}");
}

fn model_with(keys: &str) -> String {
    format!("[[models]]\nname = \"ulb\"\npath = \"ulb.json\"\n{keys}\n")
}

#[test]
fn features_are_parsed_and_default_to_the_file_names() {
    assert_eq!(
        Config::from_toml(minimal()).expect("valid").models[0].features,
        None
    );
    let config =
        Config::from_toml(&model_with("features = [\"Time\", \"V1\", \"Amount\"]")).expect("valid");
    assert_eq!(
        config.models[0].features,
        Some(FeatureNames {
            names: vec!["Time".into(), "V1".into(), "Amount".into()],
            origin: "`features`".into(),
        })
    );
}

#[test]
fn features_file_is_the_first_csv_line_relative_to_the_config_dir() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A BOM, quotes and spaces, as a spreadsheet export may have; the rows
    // after the header are ignored.
    std::fs::write(
        dir.path().join("header.csv"),
        "\u{feff}Time,\"V1\", Amount\n1,2,3\n",
    )
    .expect("write header");
    let file = dir.path().join("vigil.toml");
    std::fs::write(&file, model_with("features_file = \"header.csv\"")).expect("write");
    let config = Config::load(&file).expect("valid");
    let features = config.models[0].features.as_ref().expect("features");
    assert_eq!(features.names, ["Time", "V1", "Amount"]);
    assert_eq!(
        features.origin,
        format!(
            "`features_file` ({})",
            dir.path().join("header.csv").display()
        )
    );
}

#[test]
fn every_features_problem_is_reported_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("empty.csv"), "").expect("write");
    std::fs::write(dir.path().join("dup.csv"), "a,b,a\n").expect("write");
    let entry = |name: &str, keys: &str| {
        format!("[[models]]\nname = \"{name}\"\npath = \"m.json\"\n{keys}\n")
    };
    let text = [
        entry("both", "features = [\"a\"]\nfeatures_file = \"h.csv\""),
        entry("none", "features = []"),
        entry("blank", "features = [\"a\", \" \"]"),
        entry("twice", "features = [\"a\", \"b\", \"a\"]"),
        entry("nofile", "features_file = \"missing.csv\""),
        entry("emptypath", "features_file = \"\""),
        entry("emptyfile", "features_file = \"empty.csv\""),
        entry("dupfile", "features_file = \"dup.csv\""),
        entry("fine", "features = [\"a\", \"b\"]"),
    ]
    .concat();
    let err = Config::from_toml_in(&text, Some(dir.path()))
        .expect_err("bad features")
        .to_string();
    let missing = dir.path().join("missing.csv");
    let empty = dir.path().join("empty.csv");
    let dup = dir.path().join("dup.csv");
    let wanted = [
        "8 problem(s)".to_owned(),
        "models[0] (`both`): give `features` or `features_file`, not both".to_owned(),
        "models[1] (`none`): `features` names no feature".to_owned(),
        "models[2] (`blank`): `features`: name 1 is empty".to_owned(),
        "models[3] (`twice`): `features`: `a` is given twice".to_owned(),
        format!(
            "models[4] (`nofile`): `features_file` ({}): cannot read it",
            missing.display()
        ),
        "models[5] (`emptypath`): `features_file` is empty".to_owned(),
        format!(
            "models[6] (`emptyfile`): `features_file` ({}): the file is empty",
            empty.display()
        ),
        format!(
            "models[7] (`dupfile`): `features_file` ({}): `a` is given twice",
            dup.display()
        ),
    ];
    for needle in wanted {
        assert!(err.contains(&needle), "{needle:?} not in:\n{err}");
    }
    assert!(!err.contains("`fine`"), "{err}");
}

#[test]
fn metrics_url_names_the_fleets_postgres_and_nothing_else() {
    assert_eq!(
        Config::from_toml(minimal()).expect("valid").metrics.url,
        None
    );
    let fleet = format!(
        "[metrics]\nurl = \"postgres://vigil@db:5432/metrics\"\n\n{}",
        minimal()
    );
    assert_eq!(
        Config::from_toml(&fleet)
            .expect("valid")
            .metrics
            .url
            .as_deref(),
        Some("postgres://vigil@db:5432/metrics")
    );
    let empty = format!("[metrics]\nurl = \"\"\n\n{}", minimal());
    assert_eq!(Config::from_toml(&empty).expect("valid").metrics.url, None);
    let redis = format!(
        "[metrics]\nurl = \"redis://user:secret@cache:6379\"\n\n{}",
        minimal()
    );
    let err = Config::from_toml(&redis)
        .expect_err("not postgres")
        .to_string();
    assert!(
        err.contains("metrics.url: must start with postgres:// (or postgresql://)"),
        "{err}"
    );
    assert!(!err.contains("secret"), "the password stays out: {err}");
}

#[test]
fn logs_subscriptions_are_checked_and_file_paths_resolved() {
    use vigil_logs::subscription::Destination;
    let text = format!(
        r#"{}
[[logs.subscriptions]]
group = "/app/api"
name = "errors"
pattern = "ERROR"
destination = {{ type = "http", url = "http://127.0.0.1:9000/hook", encoding = "gzip+base64" }}

[[logs.subscriptions]]
group = "/app/api"
name = "to-file"
destination = {{ type = "file", path = "out/errors.jsonl" }}
"#,
        minimal()
    );
    let config = Config::from_toml_in(&text, Some(Path::new("/etc/vigil"))).expect("valid");
    let subs = &config.logs.subscriptions;
    assert_eq!(subs.len(), 2);
    assert_eq!(subs[0].spec.pattern, "ERROR");
    assert_eq!(subs[1].spec.pattern, "");
    assert_eq!(
        subs[1].spec.destination,
        Destination::File {
            path: PathBuf::from("/etc/vigil/out/errors.jsonl")
        }
    );
    let bad = format!(
        r#"{}
[[logs.subscriptions]]
group = "bad group"
name = "a:b"
pattern = "[x"
destination = {{ type = "otlp", endpoint = "localhost" }}

[[logs.subscriptions]]
group = "/g"
name = "one"
destination = {{ type = "http", url = "http://h/" }}

[[logs.subscriptions]]
group = "/g"
name = "one"
destination = {{ type = "http", url = "http://h/" }}

[[logs.subscriptions]]
group = "/g"
name = "two"
destination = {{ type = "http", url = "http://h/" }}

[[logs.subscriptions]]
group = "/g"
name = "three"
destination = {{ type = "http", url = "http://h/" }}
"#,
        minimal()
    );
    let err = format!("{:#}", Config::from_toml(&bad).expect_err("invalid"));
    for needle in [
        "logs.subscriptions[0].group:",
        "logs.subscriptions[0].name:",
        "logs.subscriptions[0].pattern: column",
        "logs.subscriptions[2].name: \"one\" is defined twice",
        "logs.subscriptions[4].group: log group \"/g\" may have at most 2",
    ] {
        assert!(err.contains(needle), "{needle} not in {err}");
    }
}
