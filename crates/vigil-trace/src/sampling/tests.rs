use std::sync::atomic::AtomicBool;
use std::thread;

use proptest::prelude::*;

use super::*;

const T0: i64 = 1_700_000_000_000;

fn req<'a>(method: &'a str, path: &'a str) -> SampleRequest<'a> {
    SampleRequest {
        service_name: "vigil",
        host: "api.example.com",
        http_method: method,
        url_path: path,
    }
}

fn rule(name: &str, priority: u32, reservoir: u32, fixed_rate: f64, path: &str) -> Rule {
    Rule {
        url_path: path.to_owned(),
        ..Rule::new(name, priority, reservoir, fixed_rate)
    }
}

fn reasons(s: &Sampler, n: usize, now_ms: i64, random: f64) -> Vec<Reason> {
    (0..n)
        .map(|_| s.decide(&req("GET", "/x"), None, now_ms, random).reason)
        .collect()
}

#[test]
fn the_reservoir_comes_first_then_the_fixed_rate_and_each_second_resets() {
    let s = Sampler::new(vec![rule("r", 1, 2, 0.5, "*")]).unwrap();
    use Reason::*;
    // Draws under the rate are sampled, over it not.
    let mut got = reasons(&s, 2, T0, 0.9);
    got.push(s.decide(&req("GET", "/x"), None, T0 + 999, 0.49).reason);
    got.push(s.decide(&req("GET", "/x"), None, T0 + 500, 0.5).reason);
    assert_eq!(got, [Reservoir, Reservoir, FixedRate, NotSampled]);
    // The next second has a fresh reservoir.
    assert_eq!(
        reasons(&s, 3, T0 + 1000, 0.9),
        [Reservoir, Reservoir, NotSampled]
    );
    let d = s.decide(&req("GET", "/x"), None, T0 + 1000, 0.1);
    assert_eq!(
        d,
        Decision {
            sampled: true,
            reason: FixedRate,
            rule: Some("r".into())
        }
    );
    let stats = &s.stats()[0];
    assert_eq!(
        (
            stats.matched,
            stats.sampled_reservoir,
            stats.sampled_fixed_rate,
            stats.not_sampled
        ),
        (8, 4, 2, 2)
    );
}

#[test]
fn a_late_clock_does_not_reopen_a_used_second() {
    let s = Sampler::new(vec![rule("r", 1, 1, 0.0, "*")]).unwrap();
    assert_eq!(reasons(&s, 1, T0 + 5000, 0.9), [Reason::Reservoir]);
    assert_eq!(reasons(&s, 1, T0, 0.9), [Reason::NotSampled]);
    // Negative and far-future clocks do not panic.
    s.decide(&req("GET", "/x"), None, -5, 0.9);
    s.decide(&req("GET", "/x"), None, i64::MAX, 0.9);
}

#[test]
fn the_default_rule_takes_one_per_second_then_five_percent() {
    let s = Sampler::new(vec![]).unwrap();
    assert_eq!(s.rules(), vec![Rule::builtin_default()]);
    use Reason::*;
    assert_eq!(reasons(&s, 2, T0, 0.06), [Reservoir, NotSampled]);
    let d = s.decide(&req("GET", "/x"), None, T0, 0.04);
    assert_eq!(
        (d.reason, d.rule.as_deref()),
        (FixedRate, Some(DEFAULT_RULE))
    );
}

#[test]
fn a_zero_reservoir_and_zero_rate_never_sample() {
    let s = Sampler::new(vec![rule("off", 1, 0, 0.0, "*")]).unwrap();
    assert!(
        reasons(&s, 5, T0, 0.0)
            .iter()
            .all(|r| *r == Reason::NotSampled)
    );
}

#[test]
fn the_parent_flag_is_honoured_before_rules() {
    let s = Sampler::new(vec![rule("off", 1, 0, 0.0, "*")]).unwrap();
    let yes = s.decide(&req("GET", "/x"), Some(true), T0, 0.99);
    assert_eq!(
        yes,
        Decision {
            sampled: true,
            reason: Reason::Parent,
            rule: None
        }
    );
    let no = Sampler::new(vec![rule("all", 1, 100, 1.0, "*")]).unwrap();
    let d = no.decide(&req("GET", "/x"), Some(false), T0, 0.0);
    assert_eq!((d.sampled, d.reason), (false, Reason::Parent));
    // A parent decision takes nothing from the reservoir.
    assert_eq!(no.stats()[0].matched, 0);
}

#[test]
fn rules_are_evaluated_by_priority_then_name() {
    let s = Sampler::new(vec![
        rule("b", 5, 0, 1.0, "*"),
        rule("a", 5, 0, 1.0, "*"),
        rule("first", 2, 0, 1.0, "/v1/*"),
        rule("posts", 3, 0, 0.0, "*"),
    ])
    .unwrap();
    let names: Vec<String> = s.rules().into_iter().map(|r| r.name).collect();
    assert_eq!(names, ["first", "posts", "a", "b", DEFAULT_RULE]);
    let by = |method, path| s.decide(&req(method, path), None, T0, 0.5).rule;
    assert_eq!(by("GET", "/v1/models").as_deref(), Some("first"));
    assert_eq!(by("GET", "/v2").as_deref(), Some("posts"));
    let names: Vec<String> = s.stats().into_iter().map(|r| r.name).collect();
    assert_eq!(names, ["first", "posts", "a", "b", DEFAULT_RULE]);
}

#[test]
fn every_matcher_must_match_with_its_case_rule() {
    let r = Rule {
        service_name: "vig*".into(),
        host: "*.EXAMPLE.com".into(),
        http_method: "post".into(),
        url_path: "/v1/models/?/predict".into(),
        ..Rule::new("m", 1, 0, 1.0)
    };
    let s = Sampler::new(vec![r]).unwrap();
    let base = SampleRequest {
        service_name: "vigil",
        host: "Api.Example.Com",
        http_method: "POST",
        url_path: "/v1/models/a/predict",
    };
    let rule_of = |r: SampleRequest<'_>| s.decide(&r, None, T0, 0.5).rule;
    assert_eq!(rule_of(base).as_deref(), Some("m"));
    for other in [
        SampleRequest {
            service_name: "Vigil",
            ..base
        },
        SampleRequest {
            host: "example.org",
            ..base
        },
        SampleRequest {
            http_method: "GET",
            ..base
        },
        SampleRequest {
            url_path: "/V1/models/a/predict",
            ..base
        },
        SampleRequest {
            url_path: "/v1/models/ab/predict",
            ..base
        },
    ] {
        assert_eq!(rule_of(other).as_deref(), Some(DEFAULT_RULE), "{other:?}");
    }
}

#[test]
fn validation_names_the_field_and_the_problem() {
    let mut r = Rule::new("bad name!", 0, 1, 1.5);
    r.host = String::new();
    let err = r.validate().unwrap_err();
    assert_eq!(
        err.to_string(),
        "name: may hold only A-Z, a-z, 0-9, '_' and '-', got ' '; \
         priority: must be between 1 and 9999, got 0; \
         fixed_rate: must be between 0.0 and 1.0, got 1.5; \
         host: must not be empty (use \"*\" to match anything)"
    );
    assert_eq!(err.code(), "bad_request");
    let long = Rule::new("x".repeat(33), 10_000, 0, f64::NAN);
    let msgs: Vec<String> = long.problems().iter().map(Problem::to_string).collect();
    assert_eq!(
        msgs,
        [
            "name: must be 1 to 32 characters, got 33",
            "priority: must be between 1 and 9999, got 10000",
            "fixed_rate: must be between 0.0 and 1.0, got NaN",
        ]
    );
    let mut default = Rule::new(DEFAULT_RULE, 5, 1, 0.1);
    default.url_path = "/x".into();
    assert_eq!(
        default.validate().unwrap_err().to_string(),
        "priority: the Default rule's priority is 10000, got 5; \
         url_path: the Default rule matches everything (\"*\"), got \"/x\""
    );
    assert!(Rule::new("ok_name-2", 9999, 0, 0.0).validate().is_ok());
}

#[test]
fn config_rules_report_every_problem_with_its_index() {
    let err = Sampler::new(vec![
        Rule::new("a", 1, 1, 0.1),
        Rule::new("a", 0, 1, 0.1),
        Rule::new("c", 3, 1, 2.0),
    ])
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "sampling_rules[1].priority: must be between 1 and 9999, got 0; \
         sampling_rules[1].name: \"a\" is already the name of another rule; \
         sampling_rules[2].fixed_rate: must be between 0.0 and 1.0, got 2"
    );
}

#[test]
fn rules_deserialize_from_toml_and_json_with_defaults_and_no_unknown_fields() {
    #[derive(Deserialize)]
    struct Config {
        traces: Traces,
    }
    #[derive(Deserialize)]
    struct Traces {
        sampling_rules: Vec<Rule>,
    }
    use serde::Deserialize;
    let config: Config = toml::from_str(
        r#"
        [[traces.sampling_rules]]
        name = "predict"
        priority = 10
        reservoir = 5
        fixed_rate = 0.1
        http_method = "POST"
        url_path = "/v1/models/*/predict"

        [[traces.sampling_rules]]
        name = "Default"
        reservoir = 2
        fixed_rate = 0.01
        "#,
    )
    .unwrap();
    let rules = config.traces.sampling_rules;
    assert_eq!(
        rules[0],
        Rule {
            http_method: "POST".into(),
            url_path: "/v1/models/*/predict".into(),
            source: Source::Config,
            ..Rule::new("predict", 10, 5, 0.1)
        }
    );
    let s = Sampler::new(rules).unwrap();
    let default = s.rule(DEFAULT_RULE).unwrap();
    assert_eq!(
        (default.reservoir, default.fixed_rate, default.source),
        (2, 0.01, Source::Config)
    );

    let err = toml::from_str::<Rule>("name = \"x\"\nreservoir = 1\nfixed_rate = 0.1\nurl = \"/\"")
        .unwrap_err();
    assert!(err.to_string().contains("unknown field `url`"), "{err}");
    let err =
        serde_json::from_str::<Rule>(r#"{"name":"x","priority":1,"fixed_rate":0.1}"#).unwrap_err();
    assert!(
        err.to_string().contains("missing field `reservoir`"),
        "{err}"
    );
    let json = serde_json::to_value(rules_json_round_trip()).unwrap();
    assert_eq!(json["source"], "api");
}

fn rules_json_round_trip() -> Rule {
    let r = Rule::new("j", 7, 3, 0.25);
    let back: Rule = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
    assert_eq!(back, r);
    back
}

#[test]
fn put_and_delete_apply_to_the_next_decision() {
    let s = Sampler::new(vec![]).unwrap();
    let get = |path| s.decide(&req("GET", path), None, T0, 0.5).rule;
    assert_eq!(get("/x").as_deref(), Some(DEFAULT_RULE));
    assert_eq!(s.put_rule(rule("x", 1, 0, 1.0, "/x")), Ok(Change::Created));
    assert_eq!(get("/x").as_deref(), Some("x"));
    assert_eq!(s.put_rule(rule("x", 1, 0, 1.0, "/y")), Ok(Change::Replaced));
    assert_eq!(get("/x").as_deref(), Some(DEFAULT_RULE));
    assert_eq!(get("/y").as_deref(), Some("x"));
    s.delete_rule("x").unwrap();
    assert_eq!(get("/y").as_deref(), Some(DEFAULT_RULE));
    assert_eq!(s.delete_rule("x"), Err(RuleError::NotFound("x".into())));
    assert_eq!(s.delete_rule(DEFAULT_RULE), Err(RuleError::DeleteDefault));
    assert_eq!(
        s.put_rule(Rule::new(DEFAULT_RULE, DEFAULT_PRIORITY, 7, 0.5)),
        Ok(Change::Replaced)
    );
    let d = s.rule(DEFAULT_RULE).unwrap();
    assert_eq!((d.reservoir, d.source), (7, Source::Api));
    assert!(matches!(
        s.put_rule(Rule::new("bad", 0, 0, 0.0)),
        Err(RuleError::Invalid(_))
    ));
}

#[test]
fn a_swap_keeps_the_reservoir_of_unchanged_rules() {
    let s = Sampler::new(vec![rule("keep", 1, 1, 0.0, "/k")]).unwrap();
    let keep = |s: &Sampler| s.decide(&req("GET", "/k"), None, T0, 0.9).reason;
    assert_eq!(keep(&s), Reason::Reservoir);
    s.put_rule(rule("other", 2, 1, 0.0, "/o")).unwrap();
    // Same second: the reservoir taken before the swap is still taken.
    assert_eq!(keep(&s), Reason::NotSampled);
    assert_eq!(s.stats()[0].matched, 2);
}

#[test]
fn at_most_100_rules_besides_default() {
    let s = Sampler::new(vec![]).unwrap();
    for i in 0..MAX_RULES {
        s.put_rule(Rule::new(format!("r{i}"), 1, 0, 0.0)).unwrap();
    }
    assert_eq!(
        s.put_rule(Rule::new("one_more", 1, 0, 0.0)),
        Err(RuleError::TooMany)
    );
    // Replacing one or changing Default is still allowed.
    assert_eq!(s.put_rule(Rule::new("r0", 2, 0, 0.0)), Ok(Change::Replaced));
    assert!(
        s.put_rule(Rule::new(DEFAULT_RULE, DEFAULT_PRIORITY, 0, 0.0))
            .is_ok()
    );
    assert_eq!(s.rules().len(), MAX_RULES + 1);
    let many: Vec<Rule> = (0..=MAX_RULES)
        .map(|i| Rule::new(format!("c{i}"), 1, 0, 0.0))
        .collect();
    let err = Sampler::new(many).unwrap_err().to_string();
    assert!(err.contains("101 rules besides Default"), "{err}");
}

#[test]
fn api_changes_persist_and_win_over_the_config() {
    let dir = tempfile::tempdir().unwrap();
    let config = || {
        vec![
            rule("cfg", 5, 1, 0.1, "/cfg"),
            rule("gone", 6, 1, 0.1, "/gone"),
            rule("same", 7, 1, 0.1, "/same"),
        ]
    };
    let s = Sampler::open(dir.path(), config()).unwrap();
    s.put_rule(rule("cfg", 5, 9, 0.9, "/api")).unwrap();
    s.put_rule(rule("new", 1, 2, 0.2, "/new")).unwrap();
    s.delete_rule("gone").unwrap();
    let before = s.rules();
    drop(s);
    assert!(dir.path().join(FILE_NAME).exists());
    assert!(!dir.path().join("sampling_rules.json.tmp").exists());

    let s = Sampler::open(dir.path(), config()).unwrap();
    assert_eq!(s.rules(), before);
    let sources: Vec<(String, Source)> =
        s.rules().into_iter().map(|r| (r.name, r.source)).collect();
    assert_eq!(
        sources,
        [
            ("new".to_owned(), Source::Api),
            ("cfg".to_owned(), Source::Api),
            ("same".to_owned(), Source::Config),
            (DEFAULT_RULE.to_owned(), Source::Builtin),
        ]
    );
    assert_eq!(s.rule("cfg").unwrap().url_path, "/api");
    // A deleted config rule comes back only when put again.
    assert_eq!(
        s.put_rule(rule("gone", 6, 1, 0.1, "/gone")),
        Ok(Change::Created)
    );
    let s = Sampler::open(dir.path(), config()).unwrap();
    assert!(s.rule("gone").is_some());
}

#[test]
fn a_bad_persisted_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE_NAME);
    std::fs::write(&path, "{not json").unwrap();
    let err = Sampler::open(dir.path(), vec![]).unwrap_err();
    assert_eq!(err.code(), "internal");
    assert!(err.to_string().contains(FILE_NAME), "{err}");
    std::fs::write(
        &path,
        r#"{"rules":[{"name":"x","priority":0,"reservoir":1,"fixed_rate":0.1}]}"#,
    )
    .unwrap();
    let err = Sampler::open(dir.path(), vec![]).unwrap_err().to_string();
    assert!(
        err.ends_with("rules[0].priority: must be between 1 and 9999, got 0"),
        "{err}"
    );
}

#[test]
fn threads_never_take_more_than_the_reservoir_in_a_second() {
    let s = Arc::new(Sampler::new(vec![rule("r", 1, 50, 0.0, "*")]).unwrap());
    for second in 0..3 {
        let now = T0 + second * 1000;
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let s = Arc::clone(&s);
                thread::spawn(move || {
                    (0..1000)
                        .filter(|_| s.decide(&req("GET", "/"), None, now, 0.5).sampled)
                        .count()
                })
            })
            .collect();
        let sampled: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(sampled, 50, "second {second}");
    }
    let st = &s.stats()[0];
    assert_eq!((st.matched, st.sampled_reservoir), (24_000, 150));
}

#[test]
fn put_and_delete_while_other_threads_decide() {
    let s = Arc::new(Sampler::new(vec![rule("base", 5, 0, 1.0, "/base")]).unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let running = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let deciders: Vec<_> = (0..3)
        .map(|_| {
            let (s, stop, running) = (Arc::clone(&s), Arc::clone(&stop), Arc::clone(&running));
            thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    if n == 0 {
                        running.fetch_add(1, Ordering::Relaxed);
                    }
                    let d = s.decide(&req("GET", "/base"), None, T0, 0.5);
                    // "base" is never touched, so it always decides.
                    assert_eq!(d.rule.as_deref(), Some("base"));
                    let other = s.decide(&req("GET", "/churn"), None, T0, 0.5);
                    let rule = other.rule.unwrap();
                    assert!(
                        &*rule == DEFAULT_RULE || rule.starts_with("churn"),
                        "{rule}"
                    );
                    n += 1;
                }
                n
            })
        })
        .collect();
    // The churn starts once every decider runs (a loaded machine may not
    // schedule them before 200 puts are done).
    while running.load(Ordering::Relaxed) < 3 {
        thread::yield_now();
    }
    for i in 0..200 {
        let name = format!("churn{}", i % 7);
        s.put_rule(rule(&name, 1, 0, 0.0, "/churn")).unwrap();
        assert_eq!(
            s.decide(&req("GET", "/churn"), None, T0, 0.5)
                .rule
                .as_deref(),
            Some(name.as_str())
        );
        s.delete_rule(&name).unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    let decided: u64 = deciders.into_iter().map(|h| h.join().unwrap()).sum();
    assert!(decided > 0);
    assert_eq!(s.rules().len(), 2);
    assert_eq!(s.stats()[0].matched, s.stats()[0].sampled_fixed_rate);
}

proptest! {
    #[test]
    fn decisions_follow_reservoir_then_rate(
        reservoir in 0u32..5,
        rate in 0.0f64..=1.0,
        draws in proptest::collection::vec(0.0f64..1.0, 1..20),
    ) {
        let s = Sampler::new(vec![rule("p", 1, reservoir, rate, "*")]).unwrap();
        for (i, draw) in draws.iter().enumerate() {
            let d = s.decide(&req("GET", "/"), None, T0, *draw);
            let want = if i < reservoir as usize {
                Reason::Reservoir
            } else if *draw < rate {
                Reason::FixedRate
            } else {
                Reason::NotSampled
            };
            prop_assert_eq!(d.reason, want);
            prop_assert_eq!(d.sampled, want != Reason::NotSampled);
        }
    }
}
