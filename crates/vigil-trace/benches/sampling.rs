//! The per-request costs of tracing: parsing the trace headers and the
//! sampling decision (5 rules + Default, the request matching the last
//! user rule, so all five are tried).

use criterion::{Criterion, Throughput, black_box, criterion_group, criterion_main};
use vigil_trace::propagation;
use vigil_trace::sampling::{Rule, SampleRequest, Sampler};

const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const XRAY: &str = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";

fn headers(c: &mut Criterion) {
    let mut g = c.benchmark_group("propagation");
    g.throughput(Throughput::Elements(1));
    g.bench_function("parse_traceparent", |b| {
        b.iter(|| propagation::parse_traceparent(black_box(TP)))
    });
    g.bench_function("parse_xray", |b| {
        b.iter(|| propagation::parse_xray(black_box(XRAY)))
    });
    g.bench_function("incoming_w3c", |b| {
        b.iter(|| propagation::incoming(black_box(Some(TP)), None, black_box(Some(XRAY))))
    });
    g.finish();
}

fn rules() -> Vec<Rule> {
    let mut rules = Vec::new();
    for (i, (method, path)) in [
        ("GET", "/health*"),
        ("*", "/v1/admin/*"),
        ("POST", "/v1/models/*/explain"),
        ("PUT", "*"),
        ("POST", "/v1/models/?*/predict"),
    ]
    .into_iter()
    .enumerate()
    {
        let mut r = Rule::new(format!("rule{i}"), 10 + i as u32, 10, 0.1);
        r.http_method = method.to_owned();
        r.url_path = path.to_owned();
        r.host = "*.example.com".to_owned();
        rules.push(r);
    }
    rules
}

fn decide(c: &mut Criterion) {
    let sampler = Sampler::new(rules()).expect("valid rules");
    let req = SampleRequest {
        service_name: "vigil",
        host: "api.example.com",
        http_method: "POST",
        url_path: "/v1/models/fraud/predict",
    };
    let mut g = c.benchmark_group("sampling");
    g.throughput(Throughput::Elements(1));
    let mut now = 1_700_000_000_000i64;
    g.bench_function("decide_5_rules", |b| {
        b.iter(|| {
            // A new millisecond each time: the reservoir is used up after 10
            // per second, as under load.
            now += 1;
            sampler.decide(black_box(&req), None, now, 0.5)
        })
    });
    g.bench_function("decide_default_only", |b| {
        let other = SampleRequest {
            http_method: "GET",
            url_path: "/v1/other",
            ..req
        };
        b.iter(|| sampler.decide(black_box(&other), None, now, 0.5))
    });
    g.finish();
}

criterion_group!(benches, headers, decide);
criterion_main!(benches);
