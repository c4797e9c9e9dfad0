//! The merge across replicas (pure), and the shared store against a real
//! PostgreSQL (`VIGIL_TEST_POSTGRES_URL`; each test its own database).

use std::sync::Arc;

use super::*;
use crate::model::Resolution;
use crate::notify::AlarmState;
use crate::statistic::Statistic;
use crate::tsdb::{QueryResult, TsdbConfig};

const T0: i64 = 1_764_547_200_000;

fn values(vs: &[f64]) -> Aggregate {
    Aggregate::from_values(vs, &[]).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn rows_of_several_replicas_merge_per_period_sums_adding_and_sketches_merging() {
    // Replica a saw 1..=50, replica b 51..=100, in the same 10 s period;
    // another period holds b alone.
    let a: Vec<f64> = (1..=50).map(f64::from).collect();
    let b: Vec<f64> = (51..=100).map(f64::from).collect();
    let rows = vec![
        (T0 + 1_000, values(&a)),
        (T0 + 4_000, values(&b)),
        (T0 + 12_000, values(&[7.0])),
    ];
    let periods = merge_periods(rows, 10_000);
    assert_eq!(
        periods.iter().map(|(t, _)| *t - T0).collect::<Vec<_>>(),
        vec![0, 10_000]
    );
    let fleet = &periods[0].1;
    assert_eq!(fleet.count, 100.0);
    assert_eq!(fleet.sum, 5050.0);
    assert_eq!((fleet.min, fleet.max), (1.0, 100.0));
    let p90 = Statistic::Percentile(90.0)
        .value(fleet)
        .unwrap_or_else(|| panic!("the merged sketch answers p90"));
    assert!((p90 - 90.0).abs() <= 0.9 + 1e-9, "p90 {p90} within 1%");
}

fn base_url() -> String {
    match std::env::var("VIGIL_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "VIGIL_TEST_POSTGRES_URL is not set: this test needs a PostgreSQL server \
             (`source .ci/services.sh; start_services` starts one and sets it)"
        ),
    }
}

/// A fresh database on the test server; its URL.
async fn fresh_database(tag: &str) -> String {
    let base = base_url();
    let name = format!(
        "vigil_fleet_{tag}_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() % 1_000_000_000)
    );
    let (client, conn) = tokio_postgres::connect(&base, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect to VIGIL_TEST_POSTGRES_URL: {e}"));
    let driver = tokio::spawn(conn);
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap_or_else(|e| panic!("create database: {e}"));
    drop(client);
    let _ = driver.await;
    let (head, query) = match base.split_once('?') {
        Some((h, q)) => (h.to_owned(), format!("?{q}")),
        None => (base.clone(), String::new()),
    };
    let scheme_end = head.find("://").map_or(0, |i| i + 3);
    let host = match head[scheme_end..].find('/') {
        Some(i) => head[..scheme_end + i].to_owned(),
        None => head,
    };
    format!("{host}/{name}{query}")
}

async fn replica(url: &str) -> Arc<Fleet> {
    Fleet::connect(url, TsdbConfig::default().tiers)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

fn record(ts: i64, aggregate: Aggregate) -> Record {
    Record {
        key: SeriesKey::new("Shop", "Orders").with_dimension("site", "eu"),
        timestamp_ms: ts,
        aggregate,
        resolution: Resolution::High,
    }
}

async fn query(fleet: &Fleet, period_s: u32, stats: Vec<Statistic>, now: i64) -> QueryResult {
    let key = SeriesKey::new("Shop", "Orders").with_dimension("site", "eu");
    let mut q = Query::new(&key, T0, T0 + 60_000, period_s, stats.clone());
    q.unit = None;
    let periods = fleet
        .periods(&q, now)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    crate::tsdb::evaluate(&periods, &stats)
}

#[tokio::test]
#[ignore = "needs VIGIL_TEST_POSTGRES_URL (started by .ci/run)"]
async fn two_replicas_write_and_every_query_sees_the_fleets_sum_and_percentiles() {
    let url = fresh_database("merge").await;
    let a = replica(&url).await;
    let b = replica(&url).await;
    assert_ne!(a.replica(), b.replica());
    let now = T0 + 70_000;
    // Each replica: two seconds of data in the first 10 s period, the two
    // halves of 1..=100 in the second.
    a.enqueue(&[record(T0 + 1_000, values(&[1.0, 2.0]))]);
    a.enqueue(&[record(T0 + 2_000, values(&[3.0]))]);
    b.enqueue(&[record(T0 + 1_500, values(&[4.0]))]);
    let low: Vec<f64> = (1..=50).map(f64::from).collect();
    let high: Vec<f64> = (51..=100).map(f64::from).collect();
    a.enqueue(&[record(T0 + 15_000, values(&low))]);
    b.enqueue(&[record(T0 + 19_000, values(&high))]);
    a.flush().await;
    b.flush().await;
    assert!(a.written_rows() > 0 && b.written_rows() > 0);

    let r = query(
        &a,
        10,
        vec![
            Statistic::Sum,
            Statistic::SampleCount,
            Statistic::Percentile(50.0),
        ],
        now,
    )
    .await;
    assert_eq!(r.timestamps, vec![T0, T0 + 10_000]);
    assert_eq!(r.values[0], vec![Some(10.0), Some(5050.0)]);
    assert_eq!(r.values[1], vec![Some(4.0), Some(100.0)]);
    let p50 = r.values[2][1].unwrap_or_else(|| panic!("p50"));
    assert!((p50 - 50.0).abs() <= 0.5 + 1e-9, "p50 {p50}");
    // The other replica reads the same; the 60 s tier holds the roll-up.
    let r = query(&b, 60, vec![Statistic::Sum, Statistic::Maximum], now).await;
    assert_eq!(r.timestamps, vec![T0]);
    assert_eq!(r.values, vec![vec![Some(5060.0)], vec![Some(100.0)]]);
    // The §1.3 rules hold: a 15 s period does not exist.
    let key = SeriesKey::new("Shop", "Orders").with_dimension("site", "eu");
    let q = Query::new(&key, T0, T0 + 60_000, 15, vec![Statistic::Sum]);
    assert!(matches!(
        a.periods(&q, now).await,
        Err(QueryError::Period { period_s: 15, .. })
    ));
    // Listing sees the series once.
    let listed = b
        .list(&SeriesFilter::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(listed, vec![key.with_unit(Unit::None)]);
}

fn alarm() -> crate::alarm::MetricAlarm {
    let spec: crate::alarm::MetricAlarmSpec = serde_json::from_value(serde_json::json!({
        "name": "Orders-High", "namespace": "Shop", "metric_name": "Orders",
        "dimensions": {"site": "eu"}, "statistic": "Sum", "period": 10,
        "evaluation_periods": 1, "threshold": 5.0,
        "comparison_operator": "GreaterThanThreshold",
        "alarm_actions": [{"type": "webhook", "url": "http://127.0.0.1:9/alarm"}],
    }))
    .unwrap_or_else(|e| panic!("{e}"));
    spec.validate().unwrap_or_else(|e| panic!("{e}"))
}

/// One alarm slot of `fleet` over `engine`, evaluated against the fleet's
/// data; returns the step and how many notifications it would send.
async fn slot(fleet: &Arc<Fleet>, engine: &Arc<AlarmEngine>, now: i64) -> (Option<Step>, usize) {
    let sent = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = Arc::clone(&sent);
    let (f, e) = (Arc::clone(fleet), Arc::clone(engine));
    let evaluate = async move {
        tokio::task::spawn_blocking(move || {
            let data = FleetData(f);
            e.tick(now, &data)
        })
        .await
        .ok()
    };
    let step = fleet
        .alarm_slot(
            engine,
            now,
            evaluate,
            move |d: Vec<crate::alarm::Dispatch>| {
                counter.fetch_add(d.len(), Ordering::Relaxed);
                Box::pin(async {})
            },
        )
        .await;
    (step, sent.load(Ordering::Relaxed))
}

/// The fleet's data for an alarm engine (what the service does).
struct FleetData(Arc<Fleet>);
impl crate::alarm::AlarmData for FleetData {
    fn fetch(
        &self,
        _: &crate::alarm::MetricAlarm,
        start_ms: i64,
        end_ms: i64,
        period_s: u32,
    ) -> Result<Vec<crate::alarm::Point>, String> {
        let key = SeriesKey::new("Shop", "Orders").with_dimension("site", "eu");
        let q = Query::new(&key, start_ms, end_ms, period_s, vec![]);
        let periods = self
            .0
            .block_on(self.0.periods(&q, start_ms + 3_600_000))
            .map_err(|e| e.to_string())?;
        Ok(periods
            .into_iter()
            .map(|(t, a)| crate::alarm::Point {
                timestamp_ms: t,
                value: a.sum,
                sample_count: Some(a.count),
            })
            .collect())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs VIGIL_TEST_POSTGRES_URL (started by .ci/run)"]
async fn one_replica_evaluates_and_the_other_takes_over_from_the_shared_state() {
    let url = fresh_database("leader").await;
    let a = replica(&url).await;
    let b = replica(&url).await;
    let (ea, eb) = (
        Arc::new(AlarmEngine::in_memory()),
        Arc::new(AlarmEngine::in_memory()),
    );
    ea.put_metric_alarm(alarm(), T0)
        .unwrap_or_else(|e| panic!("{e}"));
    eb.put_metric_alarm(alarm(), T0)
        .unwrap_or_else(|e| panic!("{e}"));
    // 3 + 4 > 5 only together: the alarm needs the fleet's sum.
    a.enqueue(&[record(T0 + 1_000, values(&[3.0]))]);
    b.enqueue(&[record(T0 + 2_000, values(&[4.0]))]);
    a.flush().await;
    b.flush().await;

    let now = T0 + 10_000 + 500;
    assert_eq!(slot(&a, &ea, now).await, (Some(Step::Became), 1));
    assert!(a.is_leader());
    assert_eq!(slot(&b, &eb, now).await, (Some(Step::Follows), 0));
    assert!(!b.is_leader());
    // The follower mirrors the leader's state.
    assert_eq!(
        eb.get("Orders-High").map(|v| v.state_value),
        Some(AlarmState::Alarm)
    );
    assert_eq!(slot(&a, &ea, now + 10_000).await, (Some(Step::Kept), 0));

    // The leader goes away (its session closes: the lock is free).
    drop(a);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (step, sent) = slot(&b, &eb, now + 20_000).await;
    assert_eq!(step, Some(Step::Became));
    assert_eq!(
        sent, 0,
        "the predecessor's transition is not notified again"
    );
    assert!(b.is_leader());
    let transitions = eb
        .history("Orders-High")
        .into_iter()
        .filter(|h| h.item_type == crate::alarm::HistoryItemType::StateUpdate)
        .count();
    assert_eq!(transitions, 1);
}

#[tokio::test]
#[ignore = "needs VIGIL_TEST_POSTGRES_URL (started by .ci/run)"]
async fn a_running_coarse_bucket_is_replaced_as_it_grows_and_a_rewrite_counts_once() {
    let url = fresh_database("running").await;
    let a = replica(&url).await;
    let b = replica(&url).await;
    let now = crate::model::now_ms();
    let minute = now.div_euclid(60_000) * 60_000;
    let at = |s: i64| (minute + s * 1000).min(now);
    // a writes twice into the open minute (its running row replaced), b once.
    a.enqueue(&[record(at(0), values(&[1.0]))]);
    a.flush().await;
    a.enqueue(&[record(at(1), values(&[2.0]))]);
    a.flush().await;
    b.enqueue(&[record(at(2), values(&[4.0]))]);
    b.flush().await;
    let key = SeriesKey::new("Shop", "Orders").with_dimension("site", "eu");
    let q = Query::new(&key, minute, minute + 60_000, 60, vec![]);
    let periods = a
        .periods(&q, now + 1000)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(periods.len(), 1, "{periods:?}");
    assert_eq!((periods[0].1.count, periods[0].1.sum), (3.0, 7.0));
    // One row per replica in the 60 s tier, however many writes.
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    tokio::spawn(conn);
    let rows: i64 = client
        .query_one(
            "SELECT count(*) FROM vigil_metric_points WHERE resolution_s = 60",
            &[],
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .get(0);
    assert_eq!(rows, 2);
    let seconds: i64 = client
        .query_one(
            "SELECT count(*) FROM vigil_metric_points WHERE resolution_s = 1",
            &[],
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .get(0);
    assert_eq!(seconds, 3);
    // A retried batch that had landed: writing the same rows again changes
    // nothing.
    let pg_config: tokio_postgres::Config = url.parse().unwrap_or_else(|e| panic!("{e}"));
    let mut writer = pg::connect(&pg_config)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut cache = pg::SeriesCache::new();
    let retried = vec![outbox::Row {
        key: key.with_unit(Unit::None),
        resolution_s: 1,
        bucket_ms: minute,
        aggregate: values(&[100.0]),
        high: true,
        part: 99,
    }];
    for _ in 0..2 {
        pg::write_rows(&mut writer, &mut cache, "retry", &retried)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let copies: i64 = client
        .query_one(
            "SELECT count(*) FROM vigil_metric_points WHERE replica = 'retry'",
            &[],
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .get(0);
    assert_eq!(copies, 1);
}
