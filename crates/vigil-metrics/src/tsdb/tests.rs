//! The store end to end: writes, queries across tiers, persistence and
//! recovery after a crash.
#![allow(clippy::unwrap_used)]

use super::*;
use crate::statistic::Statistic;

const MIN_MS: i64 = 60_000;
const HOUR_MS: i64 = 60 * MIN_MS;
/// A fixed "now", on an hour boundary.
const NOW: i64 = 1_700_000_000_000 / HOUR_MS * HOUR_MS;

fn key() -> SeriesKey {
    SeriesKey::new("App", "Latency")
        .with_dimension("model", "m1")
        .with_unit(Unit::Milliseconds)
}

fn stats() -> Vec<Statistic> {
    ["SampleCount", "Sum", "Minimum", "Maximum", "Average", "p50"]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect()
}

fn value(i: i64) -> f64 {
    ((i * 37) % 101) as f64
}

/// One high-resolution point per second of the last `secs` seconds.
fn fill(db: &Tsdb, secs: i64) {
    let start = NOW - secs * 1000;
    let records: Vec<Record> = (0..secs)
        .map(|i| Record {
            key: key(),
            timestamp_ms: start + i * 1000,
            aggregate: Aggregate::from_value(value(i)),
            resolution: Resolution::High,
        })
        .collect();
    db.record_batch(&records);
}

/// The expected statistics of the points of `fill` in each period.
fn expected(secs: i64, period_s: i64) -> (Vec<i64>, Vec<Vec<Option<f64>>>) {
    let start = NOW - secs * 1000;
    let mut by: std::collections::BTreeMap<i64, Vec<f64>> = Default::default();
    for i in 0..secs {
        let t = start + i * 1000;
        by.entry(t.div_euclid(period_s * 1000) * period_s * 1000)
            .or_default()
            .push(value(i));
    }
    let ts = by.keys().copied().collect();
    let cols = |f: &dyn Fn(&[f64]) -> f64| by.values().map(|v| Some(f(v))).collect::<Vec<_>>();
    let vals = vec![
        cols(&|v| v.len() as f64),
        cols(&|v| v.iter().sum()),
        cols(&|v| v.iter().copied().fold(f64::INFINITY, f64::min)),
        cols(&|v| v.iter().copied().fold(f64::NEG_INFINITY, f64::max)),
        cols(&|v| v.iter().sum::<f64>() / v.len() as f64),
    ];
    (ts, vals)
}

fn query(db: &Tsdb, secs: i64, period_s: u32) -> QueryResult {
    let q = Query::new(&key(), NOW - secs * 1000, NOW, period_s, stats());
    db.query(&q, NOW).unwrap()
}

#[test]
fn every_tier_answers_like_the_raw_points() {
    let db = Tsdb::in_memory(TsdbConfig::default()).unwrap();
    fill(&db, 3 * 3600);
    db.maintain(NOW);
    // Period 10 reads the 1 s tier, 60 the 60 s tier, 900 the 300 s tier,
    // 3600 the 3600 s tier: all agree with the raw points.
    for period in [10, 60, 900, 3600] {
        let got = query(&db, 3 * 3600, period);
        let (ts, vals) = expected(3 * 3600, i64::from(period));
        assert_eq!(got.timestamps, ts, "period {period}");
        assert_eq!(&got.values[..5], &vals[..], "period {period}");
        assert!(got.values[5].iter().all(Option::is_some), "p50 at {period}");
    }
    let st = db.stats();
    assert_eq!(st.series, 1);
    assert_eq!(
        st.tiers[0].sealed_points + st.tiers[0].open_points,
        3 * 3600
    );
    assert_eq!(st.tiers[1].sealed_points + st.tiers[1].open_points, 180);
    assert!(st.tiers[0].sealed_points >= 3 * 3600 - 600);
}

#[test]
fn a_plain_series_costs_at_most_4_bytes_per_point() {
    let db = Tsdb::in_memory(TsdbConfig::default()).unwrap();
    fill(&db, 3 * 3600);
    db.seal_all();
    let per = db.stats().tiers[0].sealed_bytes_per_point().unwrap();
    assert!(per <= 4.0, "{per} bytes per point");
}

#[test]
fn percentiles_come_from_the_sketches_through_every_tier() {
    let db = Tsdb::in_memory(TsdbConfig::default()).unwrap();
    // 60 values in one minute: 0..60, p50 about 30 in every tier.
    for i in 0..60 {
        db.record(
            &key(),
            NOW - MIN_MS + i * 1000,
            &Aggregate::from_value(i as f64),
            Resolution::High,
        );
    }
    db.seal_all();
    for period in [60, 300, 3600] {
        let q = Query::new(
            &key(),
            NOW - MIN_MS,
            NOW,
            period,
            vec!["p50".parse().unwrap(), "p100".parse().unwrap()],
        );
        let got = db.query(&q, NOW).unwrap();
        let p50 = got.values[0][0].unwrap();
        assert!((29.0..=31.0).contains(&p50), "period {period}: {p50}");
        // The sketch's 1% relative accuracy.
        let p100 = got.values[1][0].unwrap();
        assert!((p100 - 59.0).abs() <= 0.59, "period {period}: {p100}");
    }
    let aggs = db
        .query_aggregates(&Query::new(&key(), NOW - MIN_MS, NOW, 60, vec![]), NOW)
        .unwrap();
    assert_eq!(aggs.len(), 1);
    assert_eq!(aggs[0].1.sketch.as_ref().map(|s| s.count()), Some(60));
}

#[test]
fn units_are_kept_apart_unless_the_query_takes_any_unit() {
    let db = Tsdb::in_memory(TsdbConfig::default()).unwrap();
    let ms = key();
    let s = key().with_unit(Unit::Seconds);
    db.record(
        &ms,
        NOW - MIN_MS,
        &Aggregate::from_value(5.0),
        Resolution::Standard,
    );
    db.record(
        &s,
        NOW - MIN_MS,
        &Aggregate::from_value(7.0),
        Resolution::Standard,
    );
    let sum = vec![Statistic::Sum];
    let exact = db
        .query(&Query::new(&s, NOW - HOUR_MS, NOW, 60, sum.clone()), NOW)
        .unwrap();
    assert_eq!(exact.values, vec![vec![Some(7.0)]]);
    let mut any = Query::new(&s, NOW - HOUR_MS, NOW, 60, sum);
    any.unit = None;
    let got = db.query(&any, NOW).unwrap();
    assert_eq!(got.timestamps, vec![NOW - MIN_MS]);
    assert_eq!(got.values, vec![vec![Some(12.0)]]);
}

#[test]
fn standard_data_refuse_sub_minute_periods_and_late_points_merge() {
    let db = Tsdb::in_memory(TsdbConfig::default()).unwrap();
    let k = key();
    db.record(
        &k,
        NOW - 10 * MIN_MS + 5_000,
        &Aggregate::from_value(1.0),
        Resolution::Standard,
    );
    let q = Query::new(&k, NOW - HOUR_MS, NOW, 10, vec![Statistic::Sum]);
    assert!(matches!(
        db.query(&q, NOW),
        Err(QueryError::Period { period_s: 10, .. })
    ));
    db.maintain(NOW + 2 * 24 * HOUR_MS / 2);
    // A late point for the same minute (its block now sealed) merges.
    db.record(
        &k,
        NOW - 10 * MIN_MS + 30_000,
        &Aggregate::from_value(2.0),
        Resolution::Standard,
    );
    let q = Query::new(
        &k,
        NOW - HOUR_MS,
        NOW,
        60,
        vec![Statistic::Sum, Statistic::SampleCount],
    );
    let got = db.query(&q, NOW).unwrap();
    assert_eq!(got.timestamps, vec![NOW - 10 * MIN_MS]);
    assert_eq!(got.values, vec![vec![Some(3.0)], vec![Some(2.0)]]);
}

#[test]
fn list_filters_by_namespace_name_and_dimensions() {
    let db = Tsdb::in_memory(TsdbConfig::default()).unwrap();
    let a = SeriesKey::new("A", "x").with_dimension("model", "m1");
    let b = SeriesKey::new("A", "y").with_dimension("model", "m2");
    let c = SeriesKey::new("B", "x");
    for k in [&a, &b, &c] {
        db.record(k, NOW, &Aggregate::from_value(1.0), Resolution::Standard);
    }
    let f = |ns: Option<&str>, name: Option<&str>, dims: Vec<(&str, Option<&str>)>| SeriesFilter {
        namespace: ns.map(str::to_owned),
        name: name.map(str::to_owned),
        dimensions: dims
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.map(str::to_owned)))
            .collect(),
    };
    assert_eq!(db.list(&SeriesFilter::default()).len(), 3);
    assert_eq!(
        db.list(&f(Some("A"), None, vec![])),
        vec![a.clone(), b.clone()]
    );
    assert_eq!(
        db.list(&f(None, Some("x"), vec![])),
        vec![a.clone(), c.clone()]
    );
    assert_eq!(
        db.list(&f(None, None, vec![("model", None)])),
        vec![a.clone(), b.clone()]
    );
    assert_eq!(
        db.list(&f(None, None, vec![("model", Some("m2"))])),
        vec![b]
    );
}

#[test]
fn a_closed_store_reopens_from_its_block_files_and_a_short_log() {
    let dir = tempfile::tempdir().unwrap();
    let db = Tsdb::open(dir.path(), TsdbConfig::default()).unwrap();
    fill(&db, 3600);
    db.record_durable(
        &key(),
        NOW - 500,
        &Aggregate::from_value(1000.0),
        Resolution::High,
    )
    .unwrap();
    let before = query(&db, 3600, 60);
    db.close().unwrap();
    let db = Tsdb::open(dir.path(), TsdbConfig::default()).unwrap();
    assert_eq!(query(&db, 3600, 60), before);
    let st = db.stats();
    assert!(st.block_file_bytes > 0);
    // The log was cut at the checkpoint: less than one record per point left.
    assert!(st.wal_bytes < 3600 * 8, "{} wal bytes", st.wal_bytes);
    // Another checkpoint and reopen keeps the same data (no double count).
    db.checkpoint().unwrap();
    drop(db);
    let db = Tsdb::open(dir.path(), TsdbConfig::default()).unwrap();
    assert_eq!(query(&db, 3600, 60), before);
}

#[test]
fn a_store_with_another_shard_count_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let db = Tsdb::open(dir.path(), TsdbConfig::default()).unwrap();
    fill(&db, 10);
    db.close().unwrap();
    let cfg = TsdbConfig {
        shards: 4,
        ..TsdbConfig::default()
    };
    let err = Tsdb::open(dir.path(), cfg).unwrap_err().to_string();
    assert!(
        err.contains("shard-0000.tsdb") || err.contains("shard-00"),
        "{err}"
    );
    assert!(err.contains("configured shards = 4"), "{err}");
}

const CRASH_DIR: &str = "VIGIL_TSDB_CRASH_DIR";

/// The child of `acknowledged_points_survive_kill_9`: writes durably,
/// prints how many points were acknowledged, then waits to be killed.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CRASH_DIR) else {
        return;
    };
    let db = Tsdb::open(&dir, TsdbConfig::default()).unwrap();
    // Half checkpointed into block files, half only in the log.
    for i in 0..200 {
        db.record_durable(
            &key(),
            NOW - 200_000 + i * 1000,
            &Aggregate::from_value(value(i)),
            Resolution::High,
        )
        .unwrap();
        if i == 99 {
            db.checkpoint().unwrap();
        }
    }
    println!("ACKED 200");
    std::thread::sleep(Duration::from_secs(60));
}

#[test]
fn acknowledged_points_survive_kill_9() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "tsdb::tests::crash_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CRASH_DIR, dir.path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut acked = false;
    for line in BufReader::new(stdout).lines() {
        if line.unwrap().contains("ACKED 200") {
            acked = true;
            break;
        }
    }
    assert!(acked, "the child did not acknowledge its writes");
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let db = Tsdb::open(dir.path(), TsdbConfig::default()).unwrap();
    let q = Query::new(
        &key(),
        NOW - 200_000,
        NOW,
        1,
        vec![Statistic::Sum, Statistic::SampleCount],
    );
    let got = db.query(&q, NOW).unwrap();
    assert_eq!(got.timestamps.len(), 200);
    let want: Vec<Option<f64>> = (0..200).map(|i| Some(value(i))).collect();
    assert_eq!(got.values[0], want);
    assert!(got.values[1].iter().all(|c| *c == Some(1.0)));
}
