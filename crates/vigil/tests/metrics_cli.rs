//! Black-box tests of `vigil metrics ...` and `vigil alarms ...` against a
//! real `vigil serve` on port 0 with its own data directory.

mod common;

use std::ffi::OsStr;
use std::time::{Duration, Instant};

use common::{Serve, ok, run};

fn serve() -> (Serve, tempfile::TempDir) {
    let data = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let server = Serve::start(&[OsStr::new("--data-dir"), data.path().as_os_str()]);
    (server, data)
}

/// Runs a `--output json` command until `check` accepts its answer: the
/// store takes a moment to make fresh points readable.
fn eventually(
    server: &Serve,
    args: &[&str],
    check: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let value: serde_json::Value =
            serde_json::from_str(&ok(server, args)).unwrap_or_else(|e| panic!("not json: {e}"));
        if check(&value) {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "vigil {args:?} never answered as expected: {value}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The current time, Unix milliseconds.
fn now_ms() -> i64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}

/// Puts `values` (one request each) into Shop/Orders{region=eu} a few
/// minutes back, in one 60 s period.
fn put_orders(server: &Serve, values: &[f64]) -> i64 {
    let at = (now_ms() / 60_000 - 5) * 60_000 + 10_000;
    for v in values {
        let stdout = ok(
            server,
            &[
                "metrics",
                "put",
                "Shop",
                "--name",
                "Orders",
                "--dim",
                "region=eu",
                "--unit",
                "Count",
                "--value",
                &v.to_string(),
                "--timestamp",
                &at.to_string(),
            ],
        );
        assert!(stdout.starts_with("accepted 1, rejected 0"), "{stdout}");
    }
    at
}

#[test]
fn put_then_get_returns_the_sum_and_sample_count() {
    let (server, _data) = serve();
    let at = put_orders(&server, &[3.0, 4.5, 10.0]);
    let answer = eventually(
        &server,
        &[
            "metrics",
            "get",
            "Shop",
            "Orders",
            "--dim",
            "region=eu",
            "--stat",
            "Sum",
            "--stat",
            "SampleCount",
            "--stat",
            "Maximum",
            "--output",
            "json",
        ],
        |v| v["values"]["SampleCount"][0].as_f64() == Some(3.0),
    );
    assert_eq!(answer["timestamps"][0].as_i64(), Some(at / 60_000 * 60_000));
    assert_eq!(answer["values"]["Sum"][0].as_f64(), Some(17.5));
    assert_eq!(answer["values"]["Maximum"][0].as_f64(), Some(10.0));

    // The table shows the same numbers, in the order asked, time in RFC 3339.
    let table = ok(
        &server,
        &[
            "metrics",
            "get",
            "Shop",
            "Orders",
            "--dim",
            "region=eu",
            "--stat",
            "Sum",
            "--stat",
            "SampleCount",
        ],
    );
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["timestamp", "Sum", "SampleCount"]
    );
    let cells: Vec<&str> = lines[1].split_whitespace().collect();
    assert!(
        cells[0].ends_with(":00Z") && cells[0].contains('T'),
        "{}",
        lines[1]
    );
    assert_eq!(&cells[1..], ["17.5", "3"]);

    // A series is its exact dimension set: another region has nothing.
    let other = ok(
        &server,
        &[
            "metrics",
            "get",
            "Shop",
            "Orders",
            "--dim",
            "region=us",
            "--stat",
            "Sum",
            "--output",
            "json",
        ],
    );
    let other: serde_json::Value = serde_json::from_str(&other).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(other["timestamps"].as_array().map(Vec::len), Some(0));
}

#[test]
fn put_values_counts_and_stats_and_a_file() {
    let (server, data) = serve();
    let at = (now_ms() / 60_000 - 3) * 60_000;
    let ts = at.to_string();
    ok(
        &server,
        &[
            "metrics",
            "put",
            "App",
            "--name",
            "LatencyMs",
            "--unit",
            "Milliseconds",
            "--values",
            "10,20",
            "--counts",
            "2,3",
            "--timestamp",
            &ts,
        ],
    );
    ok(
        &server,
        &[
            "metrics",
            "put",
            "App",
            "--name",
            "LatencyMs",
            "--unit",
            "Milliseconds",
            "--stats",
            "5,100,1,50",
            "--timestamp",
            &ts,
        ],
    );
    let file = data.path().join("put.json");
    let body = format!(
        r#"{{"metrics": [{{"name": "LatencyMs", "unit": "Milliseconds", "value": 7, "timestamp": {at}}},
            {{"name": "LatencyMs", "value": 1, "unit": "Parsecs"}}]}}"#
    );
    std::fs::write(&file, body).unwrap_or_else(|e| panic!("{e}"));
    let path = file.to_string_lossy().into_owned();
    let (success, stdout, stderr) = run(&server, &["metrics", "put", "App", "--file", &path]);
    assert!(success, "{stderr}");
    assert!(stdout.starts_with("accepted 1, rejected 1"), "{stdout}");
    let rejected = stdout.lines().nth(2).unwrap_or_default();
    assert!(
        rejected.starts_with('1') && rejected.contains("unit"),
        "{stdout}"
    );

    // 2×10 + 3×20 + 100 + 7 over 2 + 3 + 5 + 1 samples.
    let answer = eventually(
        &server,
        &[
            "metrics",
            "get",
            "App",
            "LatencyMs",
            "--stat",
            "Sum",
            "--stat",
            "SampleCount",
            "--stat",
            "Minimum",
            "--output",
            "json",
        ],
        |v| v["values"]["SampleCount"][0].as_f64() == Some(11.0),
    );
    assert_eq!(answer["values"]["Sum"][0].as_f64(), Some(187.0));
    assert_eq!(answer["values"]["Minimum"][0].as_f64(), Some(1.0));

    // Nothing accepted: non-zero exit and the server's reason.
    let (success, _, stderr) = run(
        &server,
        &[
            "metrics", "put", "App", "--name", "X", "--unit", "Parsecs", "--value", "1",
        ],
    );
    assert!(!success, "a put with nothing accepted must fail");
    assert!(stderr.contains("unit"), "{stderr}");
}

#[test]
fn list_shows_each_series_with_its_dimensions() {
    let (server, _data) = serve();
    put_orders(&server, &[1.0]);
    ok(
        &server,
        &[
            "metrics",
            "put",
            "Shop",
            "--name",
            "Orders",
            "--dim",
            "region=us",
            "--unit",
            "Count",
            "--value",
            "2",
        ],
    );
    let listed = eventually(
        &server,
        &["metrics", "list", "--namespace", "Shop", "--output", "json"],
        |v| v["series"].as_array().map(Vec::len) == Some(2),
    );
    assert_eq!(listed["series"][0]["dimensions"]["region"], "eu");
    let table = ok(
        &server,
        &[
            "metrics",
            "list",
            "--namespace",
            "Shop",
            "--dim",
            "region=us",
        ],
    );
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 2, "{table}");
    assert_eq!(
        lines[1].split_whitespace().collect::<Vec<_>>(),
        ["Shop", "Orders", "Count", "region=us"]
    );
}

#[test]
fn query_evaluates_an_expression_over_two_metrics() {
    let (server, _data) = serve();
    let at = (now_ms() / 60_000 - 4) * 60_000 + 1000;
    let ts = at.to_string();
    for (name, value) in [("Errors", "3"), ("Requests", "60")] {
        ok(
            &server,
            &[
                "metrics",
                "put",
                "Shop",
                "--name",
                name,
                "--unit",
                "Count",
                "--value",
                value,
                "--timestamp",
                &ts,
            ],
        );
    }
    let answer = eventually(
        &server,
        &[
            "metrics",
            "query",
            "--metric",
            "e=Shop/Errors:Sum:60",
            "--metric",
            "r=Shop/Requests:Sum:60",
            "--expr",
            "rate=100*e/r",
            "--return",
            "rate,e",
            "--output",
            "json",
        ],
        |v| {
            v["results"][0]["values"]
                .as_array()
                .is_some_and(|a| !a.is_empty())
        },
    );
    let results = answer["results"].as_array().cloned().unwrap_or_default();
    assert_eq!(results.len(), 2, "only the ids asked for: {answer}");
    assert_eq!(results[0]["id"], "e");
    assert_eq!(results[1]["id"], "rate");
    assert_eq!(results[1]["values"][0].as_f64(), Some(5.0));
    assert_eq!(
        results[1]["timestamps"][0].as_i64(),
        Some(at / 60_000 * 60_000)
    );

    let table = ok(
        &server,
        &[
            "metrics",
            "query",
            "--metric",
            "e=Shop/Errors:Sum:60",
            "--metric",
            "r=Shop/Requests:Sum:60",
            "--expr",
            "rate=100*e/r",
        ],
    );
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["timestamp", "e", "r", "rate"]
    );
    assert_eq!(
        lines[1].split_whitespace().skip(1).collect::<Vec<_>>(),
        ["3", "60", "5"]
    );

    // A broken expression: the server's message, non-zero exit.
    let (success, _, stderr) = run(
        &server,
        &[
            "metrics",
            "query",
            "--metric",
            "e=Shop/Errors:Sum:60",
            "--expr",
            "bad=100*/e",
        ],
    );
    assert!(!success);
    assert!(stderr.contains("400"), "{stderr}");
}

#[test]
fn a_bad_statistic_is_the_servers_400_and_a_failure() {
    let (server, _data) = serve();
    let (success, stdout, stderr) = run(
        &server,
        &["metrics", "get", "Shop", "Orders", "--stat", "p200"],
    );
    assert!(!success, "a bad statistic must fail");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(stderr.contains("400 Bad Request"), "{stderr}");
    assert!(
        stderr.contains("invalid parameter `stat`") && stderr.contains("p200"),
        "{stderr}"
    );
}

/// The PNG's width and height from its IHDR chunk.
fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "not a png");
    assert_eq!(&bytes[12..16], b"IHDR");
    let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    (be(&bytes[16..20]), be(&bytes[20..24]))
}

#[test]
fn png_writes_a_real_chart() {
    let (server, data) = serve();
    let base = (now_ms() / 60_000 - 20) * 60_000;
    for i in 0..12i64 {
        let t = (base + i * 60_000).to_string();
        let v = (10 + (i * 7) % 23).to_string();
        ok(
            &server,
            &[
                "metrics",
                "put",
                "App",
                "--name",
                "LatencyMs",
                "--dim",
                "model=fraud",
                "--unit",
                "Milliseconds",
                "--values",
                &format!("{v},{}", 2 * i + 1),
                "--timestamp",
                &t,
            ],
        );
    }
    eventually(
        &server,
        &[
            "metrics",
            "get",
            "App",
            "LatencyMs",
            "--dim",
            "model=fraud",
            "--stat",
            "SampleCount",
            "--output",
            "json",
        ],
        |v| v["timestamps"].as_array().map(Vec::len) == Some(12),
    );
    let png = data.path().join("latency.png");
    let path = png.to_string_lossy().into_owned();
    let (success, stdout, stderr) = run(
        &server,
        &[
            "metrics",
            "get",
            "App",
            "LatencyMs",
            "--dim",
            "model=fraud",
            "--stat",
            "Maximum",
            "--stat",
            "Average",
            "--png",
            &path,
            "--width",
            "900",
            "--height",
            "420",
        ],
    );
    assert!(success, "{stderr}");
    assert!(stdout.is_empty(), "--png alone prints no table: {stdout}");
    assert!(stderr.contains("2 line(s), 24 point(s)"), "{stderr}");
    let bytes = std::fs::read(&png).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(png_size(&bytes), (900, 420));
    let image = image::load_from_memory(&bytes)
        .unwrap_or_else(|e| panic!("decode: {e}"))
        .to_rgb8();
    assert_eq!(image.dimensions(), (900, 420));
    // Not blank: mostly white background, with both line colours drawn.
    let pixels: Vec<[u8; 3]> = image.pixels().map(|p| p.0).collect();
    let white = pixels.iter().filter(|p| **p == [255, 255, 255]).count();
    assert!(white > pixels.len() / 2, "background is not white");
    let blue = pixels.iter().filter(|p| **p == [31, 119, 180]).count();
    let red = pixels.iter().filter(|p| **p == [214, 39, 40]).count();
    assert!(
        blue > 100 && red > 100,
        "lines missing: blue {blue}, red {red}"
    );
    // Text is drawn (dark pixels off the plot lines: labels, legend, axes).
    let dark = pixels.iter().filter(|p| p.iter().all(|c| *c < 80)).count();
    assert!(dark > 500, "no text or axes: {dark} dark pixels");

    // No data in range: a clear error, no file.
    let empty = data.path().join("empty.png");
    let empty_path = empty.to_string_lossy().into_owned();
    let (success, _, stderr) = run(
        &server,
        &["metrics", "get", "App", "Nothing", "--png", &empty_path],
    );
    assert!(!success);
    assert!(stderr.contains("no data points"), "{stderr}");
}
