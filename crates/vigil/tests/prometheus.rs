//! Vigil against the real Prometheus (started by `.ci/run`, which installs
//! the Debian package and exports `VIGIL_TEST_PROMETHEUS_BIN` and
//! `VIGIL_TEST_PROMTOOL`): `promtool` lints `/metrics`, a real server
//! scrapes it (in OpenMetrics, which Prometheus asks for first), its
//! exemplar storage keeps the trace ids the latency buckets link and
//! Vigil finds those traces, and the alerting rules exported from the seed
//! alarms load, evaluate and fire there.

mod common;

use std::ffi::OsStr;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Serve, http, score_body};
use serde_json::Value;
use vigil_metrics::alarm::prometheus::rules;
use vigil_server::config::AlarmDef;
use vigil_server::telemetry::names;

const SCORE: &str = "/v1/models/fraud/score";
const SCORE_ROUTE: &str = "/v1/models/{name}/score";

fn tool(var: &str) -> PathBuf {
    match std::env::var_os(var) {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => panic!(
            "{var} is not set: run this test through .ci/run, or install the prometheus package \
             and set {var} (/usr/bin/prometheus or /usr/bin/promtool)"
        ),
    }
}

fn serve(data: &Path) -> Serve {
    Serve::start(&[OsStr::new("--data-dir"), data.as_os_str()])
}

/// `n` scoring requests answered 200.
fn score(addr: &str, n: usize) {
    for i in 0..n {
        let (status, body) = http(
            addr,
            "POST",
            SCORE,
            Some(&score_body(&format!("prom-{i}"), 10.0 + i as f64)),
        );
        assert_eq!(status, 200, "{body}");
    }
}

/// Runs `promtool ARGS` with `stdin`; exit success and combined output.
fn promtool(args: &[&OsStr], stdin: Option<&str>) -> (bool, String) {
    use std::io::Write;
    let mut child = Command::new(tool("VIGIL_TEST_PROMTOOL"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn promtool: {e}"));
    {
        let mut pipe = child.stdin.take().expect("stdin is piped");
        if let Some(text) = stdin {
            pipe.write_all(text.as_bytes())
                .unwrap_or_else(|e| panic!("write to promtool: {e}"));
        }
    }
    let out = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("wait for promtool: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// A real Prometheus scraping `target` every second; killed when dropped.
struct Prometheus {
    child: Child,
    addr: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(target: &str, rule_file: Option<&Path>) -> Prometheus {
        Prometheus::start_with(target, rule_file, &[])
    }

    /// [`Prometheus::start`] with more command-line flags.
    fn start_with(target: &str, rule_file: Option<&Path>, flags: &[&str]) -> Prometheus {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let mut config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: vigil\n    static_configs:\n      - targets: [\"{target}\"]\n"
        );
        if let Some(file) = rule_file {
            config.push_str(&format!("rule_files:\n  - \"{}\"\n", file.display()));
        }
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config).unwrap_or_else(|e| panic!("write config: {e}"));
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let log = dir.path().join("prometheus.log");
        let log_file = std::fs::File::create(&log).unwrap_or_else(|e| panic!("log file: {e}"));
        let child = Command::new(tool("VIGIL_TEST_PROMETHEUS_BIN"))
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .args(flags)
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn prometheus: {e}"));
        let prometheus = Prometheus {
            child,
            addr,
            log,
            _dir: dir,
        };
        prometheus.wait_for("ready", Duration::from_secs(30), |p| {
            common::try_http(&p.addr, "GET", "/-/ready", None)
                .is_ok_and(|r| r.status == 200)
                .then_some(())
        });
        prometheus
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `GET path` on the HTTP API, its JSON.
    fn api(&self, path: &str) -> Value {
        let (status, body) = http(&self.addr, "GET", path, None);
        assert_eq!(status, 200, "{path}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
    }

    /// The instant vector of `query`.
    fn query(&self, query: &str) -> Vec<Value> {
        let reply = self.api(&format!("/api/v1/query?query={}", encode(query)));
        assert_eq!(reply["status"], "success", "{query}: {reply}");
        reply["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Polls `check` until it gives a value; panics after `limit` with
    /// Prometheus's log.
    fn wait_for<T>(&self, what: &str, limit: Duration, check: impl Fn(&Self) -> Option<T>) -> T {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(value) = check(self) {
                return value;
            }
            if Instant::now() > deadline {
                panic!(
                    "prometheus: no {what} within {limit:?}; its log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
    listener
        .local_addr()
        .unwrap_or_else(|e| panic!("local addr: {e}"))
        .port()
}

/// Percent-encodes a query parameter.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A sample's value (`"value": [time, "12"]`).
fn value_of(sample: &Value) -> f64 {
    sample["value"][1]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no value in {sample}"))
}

#[test]
#[ignore = "needs VIGIL_TEST_PROMTOOL (started by .ci/run)"]
fn promtool_accepts_the_metrics_text() {
    tool("VIGIL_TEST_PROMTOOL");
    let data = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let server = serve(data.path());
    score(&server.addr, 5);
    let (status, _) = http(&server.addr, "POST", SCORE, Some("{}"));
    assert!(status >= 400, "{status}");
    let (status, text) = http(&server.addr, "GET", "/metrics", None);
    assert_eq!(status, 200, "{text}");
    // The families this suite relies on are in the text promtool checks.
    for family in [
        "vigil_gateway_requests_total",
        "inference_pipeline_errors_total",
        "inference_pipeline_latency_seconds_bucket",
    ] {
        assert!(text.contains(family), "no {family} in\n{text}");
    }
    let (ok, output) = promtool(&[OsStr::new("check"), OsStr::new("metrics")], Some(&text));
    assert!(
        ok && output.trim().is_empty(),
        "promtool check metrics: {output}\non:\n{text}"
    );
}

#[test]
#[ignore = "needs VIGIL_TEST_PROMETHEUS_BIN (started by .ci/run)"]
fn prometheus_scrapes_the_requests_vigil_served() {
    tool("VIGIL_TEST_PROMETHEUS_BIN");
    let data = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let server = serve(data.path());
    const N: usize = 7;
    score(&server.addr, N);
    let prometheus = Prometheus::start(&server.addr, None);
    let requests = prometheus.wait_for(
        "scoring requests in vigil_gateway_requests_total",
        Duration::from_secs(30),
        |p| {
            p.query("vigil_gateway_requests_total")
                .into_iter()
                .find(|s| s["metric"]["route"] == SCORE_ROUTE)
                .map(|s| value_of(&s))
        },
    );
    // The scrape itself is not a scoring request, so the count is exact.
    assert_eq!(requests, N as f64);
    let buckets = prometheus.query("inference_pipeline_latency_seconds_bucket");
    assert!(
        buckets.iter().any(|s| s["metric"]["le"] == "+Inf"),
        "{buckets:?}"
    );
    let count = prometheus.query("inference_pipeline_latency_seconds_count");
    assert_eq!(count.len(), 1, "{count:?}");
    assert_eq!(value_of(&count[0]), N as f64);
    let up = prometheus.query("up{job=\"vigil\"}");
    assert_eq!(up.len(), 1, "{up:?}");
    assert_eq!(value_of(&up[0]), 1.0);
}

#[test]
#[ignore = "needs VIGIL_TEST_PROMETHEUS_BIN (started by .ci/run)"]
fn prometheus_keeps_the_exemplars_and_vigil_finds_their_traces() {
    tool("VIGIL_TEST_PROMETHEUS_BIN");
    let data = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let server = serve(data.path());
    // Every scoring request sampled, so each bucket's exemplar is stored.
    let (status, body) = http(
        &server.addr,
        "PUT",
        "/api/traces/sampling-rules/Default",
        Some(r#"{"reservoir": 0, "fixed_rate": 1.0}"#),
    );
    assert_eq!(status, 200, "{body}");
    let mut sent = Vec::new();
    for i in 0..5 {
        let reply = common::try_http(
            &server.addr,
            "POST",
            SCORE,
            Some(&score_body(&format!("ex-{i}"), 20.0 + f64::from(i))),
        )
        .unwrap_or_else(|e| panic!("score: {e}"));
        assert_eq!(reply.status, 200, "{}", reply.body);
        let header = reply.header("traceresponse").expect("a traceresponse");
        sent.push(header.split('-').nth(1).expect("a trace id").to_owned());
    }
    let prometheus =
        Prometheus::start_with(&server.addr, None, &["--enable-feature=exemplar-storage"]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    let query = format!(
        "/api/v1/query_exemplars?query={}&start={}&end={}",
        encode(&format!(
            "vigil_gateway_latency_seconds_bucket{{route=\"{SCORE_ROUTE}\"}}"
        )),
        now - 600,
        now + 600
    );
    let exemplars = prometheus.wait_for("exemplars", Duration::from_secs(30), |p| {
        let reply = p.api(&query);
        assert_eq!(reply["status"], "success", "{reply}");
        let found: Vec<(String, f64)> = reply["data"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|series| series["exemplars"].as_array().cloned().unwrap_or_default())
            .filter_map(|e| {
                let trace = e["labels"]["trace_id"].as_str()?.to_owned();
                let value = e["value"].as_str()?.parse().ok()?;
                Some((trace, value))
            })
            .collect();
        (!found.is_empty()).then_some(found)
    });
    for (trace_id, seconds) in &exemplars {
        assert!(sent.contains(trace_id), "{trace_id} not among {sent:?}");
        assert!(*seconds > 0.0 && *seconds < 10.0, "{seconds}");
        let (status, body) = http(
            &server.addr,
            "GET",
            &format!("/api/traces/{trace_id}"),
            None,
        );
        assert_eq!(status, 200, "{body}");
        let trace: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
        let spans = trace["spans"].as_array().cloned().unwrap_or_default();
        assert!(
            spans
                .iter()
                .any(|s| s["name"] == "vigil" && s["annotations"]["route"] == SCORE_ROUTE),
            "{trace}"
        );
    }
    // Scraped as OpenMetrics without a hitch.
    let up = prometheus.query("up{job=\"vigil\"}");
    assert_eq!(up.len(), 1, "{up:?}");
    assert_eq!(value_of(&up[0]), 1.0);
}

/// The seed runbook's metric alarms, as the demo configuration serves them.
fn seed_alarms() -> Vec<vigil_metrics::alarm::MetricAlarm> {
    let alarms: Vec<_> = vigil_server::config::demo_alarms()
        .into_iter()
        .filter_map(|def| match def {
            AlarmDef::Metric(alarm) => Some(*alarm),
            AlarmDef::Composite(_) => None,
        })
        .collect();
    let names: Vec<&str> = alarms.iter().map(|a| a.name()).collect();
    assert_eq!(names, ["High-Latency-Alarm", "Inference-Error-Alarm"]);
    alarms
}

/// The state of each rule in `/api/v1/rules`: (name, state, health).
fn rule_states(prometheus: &Prometheus) -> Vec<(String, String, String)> {
    let reply = prometheus.api("/api/v1/rules");
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    reply["data"]["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|g| g["name"] == "vigil-alarms")
        .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
        .map(|r| (text(&r["name"]), text(&r["state"]), text(&r["health"])))
        .collect()
}

#[test]
#[ignore = "needs VIGIL_TEST_PROMETHEUS_BIN and VIGIL_TEST_PROMTOOL (started by .ci/run)"]
fn the_seed_alarms_export_as_rules_that_load_and_fire_in_prometheus() {
    tool("VIGIL_TEST_PROMTOOL");
    tool("VIGIL_TEST_PROMETHEUS_BIN");
    let export = rules(&seed_alarms(), &names::families());
    assert_eq!(export.skipped, vec![], "{}", export.yaml);
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let file = dir.path().join("vigil-rules.yml");
    std::fs::write(&file, &export.yaml).unwrap_or_else(|e| panic!("write rules: {e}"));
    let (ok, output) = promtool(
        &[OsStr::new("check"), OsStr::new("rules"), file.as_os_str()],
        None,
    );
    assert!(
        ok && output.contains("SUCCESS: 2 rules found"),
        "promtool check rules: {output}\non:\n{}",
        export.yaml
    );

    let data = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let server = serve(data.path());
    score(&server.addr, 3);
    let prometheus = Prometheus::start(&server.addr, Some(&file));
    // Both rules load and evaluate without error against Vigil's series.
    prometheus.wait_for("evaluated rules", Duration::from_secs(30), |p| {
        let states = rule_states(p);
        let names: Vec<&str> = states.iter().map(|(n, _, _)| n.as_str()).collect();
        assert_eq!(
            names,
            ["High_Latency_Alarm", "Inference_Error_Alarm"],
            "{states:?}"
        );
        states
            .iter()
            .all(|(_, _, health)| health == "ok")
            .then_some(())
    });
    // The error counter must be scraped at rest before it moves, or
    // increase() has nothing to compare with.
    prometheus.wait_for(
        "scrape of the error counter",
        Duration::from_secs(30),
        |p| (!p.query("inference_pipeline_errors_total").is_empty()).then_some(()),
    );
    let (status, _) = http(&server.addr, "POST", SCORE, Some("{}"));
    assert!(
        status >= 400,
        "a scoring request Vigil refuses counts as an error, got {status}"
    );
    prometheus.wait_for(
        "firing Inference_Error_Alarm",
        Duration::from_secs(30),
        |p| {
            rule_states(p)
                .iter()
                .any(|(n, state, _)| n == "Inference_Error_Alarm" && state == "firing")
                .then_some(())
        },
    );
    let states = rule_states(&prometheus);
    assert!(
        states
            .iter()
            .any(|(n, state, _)| n == "High_Latency_Alarm" && state == "inactive"),
        "scoring takes microseconds, far below 2000 ms: {states:?}"
    );
    let alerts = prometheus.api("/api/v1/alerts");
    let firing = alerts["data"]["alerts"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(firing.len(), 1, "{alerts}");
    assert_eq!(firing[0]["labels"]["vigil_alarm"], "Inference-Error-Alarm");
    assert_eq!(firing[0]["labels"]["alertname"], "Inference_Error_Alarm");
}

/// Every query of the built-in dashboards exported for Grafana, with
/// Grafana's `$__range` set to an hour.
fn grafana_queries() -> Vec<(String, String)> {
    use vigil_metrics::dashboard::grafana;
    let config = vigil_server::config::Config::demo();
    let mut out = Vec::new();
    for (name, body) in vigil_server::dashboards_api::builtin::dashboards(&config) {
        let export = grafana::export(&name, &body, &names::families());
        for panel in export.dashboard["panels"].as_array().into_iter().flatten() {
            for target in panel["targets"].as_array().into_iter().flatten() {
                let expr = target["expr"].as_str().expect("a target's expr");
                out.push((name.clone(), expr.replace("$__range", "3600s")));
            }
        }
    }
    out
}

#[test]
#[ignore = "needs VIGIL_TEST_PROMETHEUS_BIN (started by .ci/run)"]
fn the_built_in_dashboards_grafana_queries_run_in_prometheus() {
    tool("VIGIL_TEST_PROMETHEUS_BIN");
    let queries = grafana_queries();
    assert!(queries.len() >= 15, "{queries:?}");
    let data = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let server = serve(data.path());
    let prometheus = Prometheus::start(&server.addr, None);
    // Scraped at rest first, so that increase() sees the requests below.
    prometheus.wait_for(
        "scrape of the success counter",
        Duration::from_secs(30),
        |p| (!p.query("inference_pipeline_success_total").is_empty()).then_some(()),
    );
    score(&server.addr, 4);
    let success = "sum(increase(inference_pipeline_success_total[3600s]))";
    assert!(
        queries.iter().any(|(_, q)| q == success),
        "the seed's SuccessCount: {queries:?}"
    );
    let counted = prometheus.wait_for("4 requests in SuccessCount", Duration::from_secs(30), |p| {
        p.query(success).first().map(value_of).filter(|v| *v >= 3.5)
    });
    assert!(counted < 5.0, "{counted}");
    // Each query parses and evaluates (Prometheus.query asserts `success`);
    // the latency ones have data.
    for (name, query) in &queries {
        let result = prometheus.query(query);
        if query.contains("inference_pipeline_latency_seconds_bucket") {
            assert_eq!(result.len(), 1, "{name}: {query}: {result:?}");
        }
    }
}
