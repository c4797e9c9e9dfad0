//! Filter-pattern matching, the hot path of metric filters (every ingested
//! event × every filter): a text term over ~200-byte access-log lines, a
//! JSON selector filter over ~200-byte JSON events, and a space-delimited
//! filter over the access-log lines. One core; events per second.
//!
//! `cargo bench -p vigil-logs --bench pattern`

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use vigil_logs::pattern::{Pattern, ValueSpec};

const EVENTS: usize = 1000;

/// Deterministic pseudo-random numbers (xorshift), so runs compare.
fn rng(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

/// Combined-log-format lines of about 200 bytes; 1% are 5xx.
fn access_lines() -> Vec<String> {
    let mut seed = 0x9e37_79b9_7f4a_7c15;
    (0..EVENTS)
        .map(|i| {
            let r = rng(&mut seed);
            let status = if i % 100 == 0 { 503 } else { [200, 200, 201, 304, 404][(r % 5) as usize] };
            let line = format!(
                "10.{}.{}.{} - user{} [10/Oct/2026:13:{:02}:{:02} +0000] \"POST /v2/models/fraud/versions/{}/infer HTTP/1.1\" {} {} \"-\" \"python-requests/2.32.3 (vigil-bench; linux x86_64) session={:016x}\"",
                r % 256,
                (r >> 8) % 256,
                (r >> 16) % 256,
                r % 1000,
                (r >> 24) % 60,
                (r >> 32) % 60,
                r % 7,
                status,
                (r >> 40) % 5000,
                r,
            );
            line
        })
        .collect()
}

/// JSON access events of about 200 bytes; latency spread over 0–4 ms.
fn json_lines() -> Vec<String> {
    let mut seed = 0x2545_f491_4f6c_dd1d;
    (0..EVENTS)
        .map(|_| {
            let r = rng(&mut seed);
            format!(
                r#"{{"ts":"2026-10-10T13:25:{:02}.{:03}Z","level":"info","route":"/v2/models/fraud/infer","method":"POST","status":{},"latency_us":{},"bytes":{},"request_id":"{:016x}"}}"#,
                r % 60,
                (r >> 8) % 1000,
                [200, 200, 404, 503][((r >> 12) % 4) as usize],
                (r >> 16) % 4000,
                (r >> 28) % 5000,
                r,
            )
        })
        .collect()
}

fn run(c: &mut Criterion, name: &str, pattern: &str, lines: &[String], value: Option<&str>) {
    let p = Pattern::parse(pattern).expect("bench pattern parses");
    let spec = value.map(|v| ValueSpec::parse(v).expect("bench value spec parses"));
    let mut group = c.benchmark_group("pattern");
    group.throughput(Throughput::Elements(lines.len() as u64));
    group.bench_function(name, |b| {
        b.iter(|| {
            let mut sum = 0.0;
            for line in lines {
                if let Some(m) = p.matches(black_box(line)) {
                    sum += spec.as_ref().and_then(|s| m.value(s)).unwrap_or(1.0);
                }
            }
            black_box(sum)
        })
    });
    group.finish();
}

fn patterns(c: &mut Criterion) {
    let access = access_lines();
    let json = json_lines();
    let mean = access.iter().map(String::len).sum::<usize>() / access.len();
    eprintln!("access lines: {mean} bytes on average");
    run(c, "text_term", "ERROR", &access, None);
    run(
        c,
        "text_terms_3",
        "POST -DEBUG ?infer ?predict",
        &access,
        None,
    );
    run(
        c,
        "json_selector",
        "{ $.latency_us > 2000 }",
        &json,
        Some("$.latency_us"),
    );
    run(
        c,
        "json_and_or",
        r#"{ $.status = 503 || ($.latency_us > 2000 && $.route = "/v2/*") }"#,
        &json,
        None,
    );
    run(
        c,
        "delimited",
        "[ip, user, username, timestamp, request, status = 5*, bytes > 1000, ...]",
        &access,
        Some("$bytes"),
    );
    run(
        c,
        "delimited_ellipsis",
        "[ip, ..., status = 5*, bytes, referer, agent]",
        &access,
        None,
    );
    run(c, "regex", "%HTTP/1\\.[01]\\S\\s5[0-9]{2}%", &access, None);
}

criterion_group!(benches, patterns);
criterion_main!(benches);
