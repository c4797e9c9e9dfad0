//! Black-box tests of `vigil logs ...` against a real `vigil serve` on
//! port 0 with its own data directory: events sent, groups listed, the
//! access log kept in /vigil/access across a restart, retention, deletion,
//! filter patterns tried on a file, export, tail (and tail -f) and
//! context lines.

mod common;

use std::ffi::OsStr;
use std::time::{Duration, Instant};

use common::{Serve, cli, http, ok, run, score_body};

fn groups(server: &Serve) -> Vec<serde_json::Value> {
    let out = ok(server, &["logs", "groups", "--output", "json"]);
    let value: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    value["groups"].as_array().cloned().unwrap_or_default()
}

fn events_of(server: &Serve, name: &str) -> u64 {
    groups(server)
        .iter()
        .find(|g| g["name"] == name)
        .and_then(|g| g["events"].as_u64())
        .unwrap_or(0)
}

#[test]
fn events_groups_retention_and_the_access_log_round_trip() {
    let data = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let args = [OsStr::new("--data-dir"), data.path().as_os_str()];
    let server = Serve::start(&args);

    let lines = tempfile::NamedTempFile::new().unwrap_or_else(|e| panic!("{e}"));
    let text: String = (0..2500)
        .map(|i| format!("line {i} status=200\n"))
        .collect();
    std::fs::write(lines.path(), text + "\n").unwrap_or_else(|e| panic!("{e}"));
    let path = lines.path().to_str().unwrap_or_default();
    let (success, _, stderr) = run(
        &server,
        &["logs", "put", "/app/api", "host-1", "--file", path],
    );
    assert!(success, "{stderr}");
    assert!(
        stderr.contains("2500 events stored in /app/api / host-1"),
        "{stderr}"
    );
    assert_eq!(events_of(&server, "/app/api"), 2500);

    // Scoring requests: their access-log lines reach /vigil/access.
    for i in 0..20 {
        let (status, body) = http(
            &server.addr,
            "POST",
            "/v1/models/fraud/score",
            Some(&score_body(&format!("r{i}"), 10.0)),
        );
        assert_eq!(status, 200, "{body}");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while events_of(&server, "/vigil/access") < 20 {
        assert!(
            Instant::now() < deadline,
            "access lines never reached /vigil/access: {:?}",
            groups(&server)
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // ... each logged row is an event of /vigil/inference, and the
    // server's diagnostics (the start-up lines among them) of /vigil/system.
    while events_of(&server, "/vigil/inference") < 20 || events_of(&server, "/vigil/system") < 1 {
        assert!(
            Instant::now() < deadline,
            "rows or diagnostics never reached their groups: {:?}",
            groups(&server)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = ok(
        &server,
        &[
            "logs",
            "query",
            "-g",
            "/vigil/inference",
            "--since",
            "1h",
            "--output",
            "json",
            "filter model = \"fraud\" and ispresent(score) and latency_us > 0 | stats count(*) as n",
        ],
    );
    let rows: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(rows["rows"][0]["n"], 20, "{out}");
    let out = ok(
        &server,
        &[
            "logs",
            "query",
            "-g",
            "/vigil/system",
            "--since",
            "1h",
            "--output",
            "json",
            "filter @message like \"log store open\" | stats count(*) as n",
        ],
    );
    let rows: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(
        rows["rows"][0]["n"], 1,
        "the start-up line is in /vigil/system: {out}"
    );

    let out = ok(&server, &["logs", "retention", "/app/api", "--days", "30"]);
    assert!(out.contains("kept 30 days"), "{out}");
    let (success, _, stderr) = run(&server, &["logs", "retention", "/app/api", "--days", "2"]);
    assert!(!success);
    assert!(stderr.contains("1, 3, 5, 7"), "{stderr}");
    let table = ok(&server, &["logs", "groups"]);
    assert!(
        table.contains("GROUP") && table.contains("30 days") && table.contains("/vigil/access"),
        "{table}"
    );

    // Acknowledged events survive a restart.
    let before = events_of(&server, "/vigil/access");
    server.kill_9();
    let server = Serve::start(&args);
    assert_eq!(events_of(&server, "/app/api"), 2500);
    assert!(events_of(&server, "/vigil/access") >= before);

    let out = ok(&server, &["logs", "delete", "/app/api"]);
    assert!(out.contains("deleted"), "{out}");
    assert!(groups(&server).iter().all(|g| g["name"] != "/app/api"));
    let (success, _, stderr) = run(&server, &["logs", "delete", "/app/api"]);
    assert!(!success);
    assert!(
        stderr.contains("404") || stderr.contains("does not exist"),
        "{stderr}"
    );
}

#[test]
fn test_pattern_runs_locally_on_a_file() {
    let sample = tempfile::NamedTempFile::new().unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(
        sample.path(),
        "127.0.0.1 frank GET /a 200 512\n10.0.0.2 - POST /b 503 17\n10.0.0.3 - GET /c 500 9\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let path = sample.path().to_str().unwrap_or_default();
    let (success, stdout, stderr) = cli(&[
        "logs",
        "test-pattern",
        "[ip, user, ..., status = 5*, bytes]",
        "--file",
        path,
    ]);
    assert!(success, "{stderr}");
    assert!(stdout.contains("2 of 3 events matched"), "{stdout}");
    assert!(stdout.contains("$status=503"), "{stdout}");
    let (success, stdout, _) = cli(&[
        "logs",
        "test-pattern",
        "[ip, user, ..., status = 5*, bytes]",
        "--file",
        path,
        "--output",
        "json",
    ]);
    assert!(success);
    let value: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(value["matches"][1]["line"], 3);
    assert_eq!(value["matches"][1]["extracted"]["$bytes"], "9");
    let (success, _, stderr) = cli(&["logs", "test-pattern", "{ $.a = }", "--file", path]);
    assert!(!success);
    assert!(stderr.contains("column 9"), "{stderr}");
}

#[test]
fn a_query_counts_what_was_sent() {
    let data = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let server = Serve::start(&[OsStr::new("--data-dir"), data.path().as_os_str()]);
    let lines = tempfile::NamedTempFile::new().unwrap_or_else(|e| panic!("{e}"));
    let text: String = (0..300)
        .map(|i| {
            format!(
                "{{\"status\": {}, \"route\": \"/r{}\"}}\n",
                if i % 3 == 0 { 500 } else { 200 },
                i % 2
            )
        })
        .collect();
    std::fs::write(lines.path(), text).unwrap_or_else(|e| panic!("{e}"));
    let path = lines.path().to_str().unwrap_or_default();
    ok(&server, &["logs", "put", "/app/api", "h", "--file", path]);
    let out = ok(
        &server,
        &[
            "logs",
            "query",
            "-g",
            "/app/api",
            "--since",
            "1h",
            "--output",
            "json",
            "filter status >= 500 | stats count(*) as errors by route | sort route asc",
        ],
    );
    let value: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(value["matched"], 100, "{out}");
    assert_eq!(value["rows"][0]["route"], "/r0");
    assert_eq!(value["rows"][0]["errors"], 50);
    assert_eq!(value["rows"][1]["errors"], 50);
    let table = ok(
        &server,
        &["logs", "query", "-g", "/app/api", "stats count(*)"],
    );
    assert!(
        table.contains("count(*)") && table.contains("300"),
        "{table}"
    );
    let (success, _, stderr) = run(
        &server,
        &["logs", "query", "-g", "/app/api", "filter status >"],
    );
    assert!(!success);
    assert!(stderr.contains("column"), "{stderr}");
}

fn put_lines(server: &Serve, group: &str, stream: &str, lines: &[String]) {
    let now = vigil_server::telemetry::now_ms();
    let events: Vec<serde_json::Value> = lines
        .iter()
        .enumerate()
        .map(|(i, m)| serde_json::json!({"timestamp": now - 1000 + i as i64, "message": m}))
        .collect();
    let body = serde_json::json!({ "events": events }).to_string();
    let path = format!("/api/logs/{}/{stream}", group.replace('/', "%2F"));
    let (status, answer) = http(&server.addr, "POST", &path, Some(&body));
    assert_eq!(status, 200, "{answer}");
}

#[test]
fn export_writes_gzip_json_lines_of_what_was_sent() {
    use std::io::Read;
    let data = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let server = Serve::start(&[OsStr::new("--data-dir"), data.path().as_os_str()]);
    let sent: Vec<String> = (0..1500)
        .map(|i| format!("{{\"i\": {i}, \"pad\": \"{}\"}}", "x".repeat(i % 50)))
        .collect();
    put_lines(&server, "/app/api", "host-1", &sent[..1000]);
    put_lines(&server, "/app/api", "host-2", &sent[1000..]);
    let file = data.path().join("out.jsonl.gz");
    let path = file.to_str().unwrap_or_default();
    let (success, _, stderr) = run(
        &server,
        &[
            "logs", "export", "-g", "/app/api", "--from", "1h", "--output", path,
        ],
    );
    assert!(success, "{stderr}");
    assert!(stderr.contains("1500 events"), "{stderr}");
    assert!(!data.path().join("out.jsonl.gz.part").exists());
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(&file).unwrap_or_else(|e| panic!("{e}")))
        .read_to_string(&mut text)
        .unwrap_or_else(|e| panic!("not gzip: {e}"));
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(lines.len(), 1500);
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line["message"], sent[i].as_str());
        assert_eq!(
            line["log_stream"],
            if i < 1000 { "host-1" } else { "host-2" }
        );
        assert!(line["timestamp"].as_i64().is_some() && line["ingestion_time"].as_i64().is_some());
    }
    // A range with nothing in it: an empty file; a missing group: a 404.
    let empty = data.path().join("empty.jsonl");
    let (success, _, stderr) = run(
        &server,
        &[
            "logs",
            "export",
            "-g",
            "/app/api",
            "--from",
            "0",
            "--to",
            "1000",
            "--output",
            empty.to_str().unwrap_or_default(),
        ],
    );
    assert!(success, "{stderr}");
    assert_eq!(std::fs::read(&empty).map(|b| b.len()).ok(), Some(0));
    let (success, _, stderr) = run(
        &server,
        &[
            "logs", "export", "-g", "/nope", "--from", "1h", "--output", path,
        ],
    );
    assert!(!success);
    assert!(
        stderr.contains("404") && stderr.contains("/nope"),
        "{stderr}"
    );
}

#[test]
fn tail_prints_the_latest_and_follow_prints_what_comes_next() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let data = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let server = Serve::start(&[OsStr::new("--data-dir"), data.path().as_os_str()]);
    put_lines(
        &server,
        "/app/api",
        "h",
        &["INFO started".into(), "ERROR first".into()],
    );
    let out = ok(&server, &["logs", "tail", "-g", "/app/api"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines[0].ends_with(" h INFO started"), "{out}");
    let out = ok(
        &server,
        &[
            "logs", "tail", "-g", "/app/api", "--filter", "ERROR", "--output", "json",
        ],
    );
    let event: serde_json::Value =
        serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(event["message"], "ERROR first");

    let url = format!("http://{}", server.addr);
    let mut follower = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args([
            "logs", "tail", "-g", "/app/api", "-f", "--filter", "ERROR", "--url", &url,
        ])
        .env_remove("VIGIL_API_KEY")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let stdout = follower.stdout.take().unwrap_or_else(|| panic!("piped"));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let next = |what: &str| {
        rx.recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("tail -f printed no {what} within 10 s"))
    };
    // The replay first: once it is printed, the tail is subscribed.
    assert!(next("replay").ends_with("ERROR first"));
    put_lines(
        &server,
        "/app/api",
        "h2",
        &["INFO skipped".into(), "ERROR second".into()],
    );
    let line = next("new event");
    assert!(line.ends_with(" h2 ERROR second"), "{line}");
    // A graceful shutdown ends open tails instead of waiting for them.
    assert_eq!(server.terminate(), Some(0));
    let code = common::wait_exit(&mut follower, Duration::from_secs(10));
    let mut stderr = String::new();
    if let Some(mut err) = follower.stderr.take() {
        use std::io::Read;
        let _ = err.read_to_string(&mut stderr);
    }
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("the tail ended"), "{stderr}");
}

#[test]
fn a_query_with_context_shows_the_neighbours_of_each_row() {
    let data = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let server = Serve::start(&[OsStr::new("--data-dir"), data.path().as_os_str()]);
    let lines: Vec<String> = ["a", "b", "c PANIC", "d", "e"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    put_lines(&server, "/app/api", "h", &lines);
    let query = "filter @message like \"PANIC\" | fields @message";
    let out = ok(
        &server,
        &["logs", "query", "-g", "/app/api", "--context", "1", query],
    );
    let got: Vec<&str> = out.lines().map(str::trim_end).collect();
    assert_eq!(got.len(), 4, "{out}");
    assert_eq!(got[0], "@message");
    assert!(
        got[1].starts_with("  - ") && got[1].ends_with("  b"),
        "{out}"
    );
    assert_eq!(got[2], "c PANIC");
    assert!(
        got[3].starts_with("  + ") && got[3].ends_with("  d"),
        "{out}"
    );
    let out = ok(
        &server,
        &[
            "logs",
            "query",
            "-g",
            "/app/api",
            "--context",
            "2",
            "--output",
            "json",
            query,
        ],
    );
    let value: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let context = &value["rows"][0]["@context"];
    assert_eq!(context["before"][0]["@message"], "a");
    assert_eq!(context["after"][1]["@message"], "e");
    let (success, _, stderr) = run(
        &server,
        &[
            "logs",
            "query",
            "-g",
            "/app/api",
            "--context",
            "1",
            "stats count(*)",
        ],
    );
    assert!(!success);
    assert!(stderr.contains("context"), "{stderr}");
}
