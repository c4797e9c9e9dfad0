//! One behaviour suite for the inference log, run against every backend
//! (Quickwit's `metastore_test_suite!` pattern). The PostgreSQL cases are
//! `#[ignore]`d: they need `VIGIL_TEST_POSTGRES_URL` (a server `.ci/run`
//! starts) and run with `-- --include-ignored`, failing when it is unset.

#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde_json::json;
use vigil_store::{
    AppendOutcome, Clock, ErrorCode, InferenceLog, InferenceRecord, ListQuery, SpillPolicy, Store,
    StoreError, retention,
};

use support::{FlakyLog, Harness};

#[path = "cases/spill.rs"]
mod spill_cases;
use spill_cases::*;

fn record(id: &str, model: &str, at: i64, amount: f64) -> InferenceRecord {
    let input = match json!({"amount": amount, "country": "FR"}) {
        serde_json::Value::Object(m) => m,
        _ => unreachable!(),
    };
    let mut r = InferenceRecord::new(id, at, model, "v1", input);
    r.scores = vec![amount / 1000.0, 1.0 - amount / 1000.0];
    r.label = Some(if amount > 500.0 { "fraud" } else { "legit" }.to_owned());
    r.threshold = Some(0.5);
    r.latency_us = 42;
    r.api_key_name = Some("shop".into());
    r.trace_id = Some(format!("trace-{id}"));
    r
}

async fn append_one(log: &dyn InferenceLog, r: InferenceRecord) -> AppendOutcome {
    log.append(r).await.unwrap()
}

pub async fn insert_get_list(h: Harness) {
    let store = h.open().await;
    let mut all = Vec::new();
    for i in 0..7i64 {
        let model = if i % 2 == 0 { "fraud" } else { "churn" };
        let mut r = record(&format!("req-{i}"), model, 1_000 + i, 100.0 * i as f64);
        if i == 6 {
            r.version = "v2".into();
        }
        assert_eq!(
            append_one(store.as_ref(), r.clone()).await,
            AppendOutcome::Inserted
        );
        all.push(r);
    }
    // Same id as req-1 under another model: both kept, get returns newest first.
    let twin = record("req-1", "fraud", 5_000, 1.0);
    assert_eq!(
        append_one(store.as_ref(), twin.clone()).await,
        AppendOutcome::Inserted
    );

    assert_eq!(store.get("req-3").await.unwrap(), vec![all[3].clone()]);
    assert_eq!(
        store.get("req-1").await.unwrap(),
        vec![twin.clone(), all[1].clone()]
    );
    assert!(store.get("absent").await.unwrap().is_empty());
    assert_eq!(
        store.lookup("churn", "req-1").await.unwrap(),
        Some(all[1].clone())
    );
    assert_eq!(store.lookup("churn", "req-0").await.unwrap(), None);

    // Newest first, two at a time, cursor to the end.
    let mut ids = Vec::new();
    let mut query = ListQuery {
        limit: Some(2),
        ..ListQuery::default()
    };
    let mut pages = 0;
    loop {
        let page = store.list(&query).await.unwrap();
        pages += 1;
        ids.extend(
            page.records
                .iter()
                .map(|r| format!("{}/{}", r.model, r.request_id)),
        );
        match page.next_cursor {
            Some(c) => query.cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(pages, 4);
    assert_eq!(
        ids,
        [
            "fraud/req-1",
            "fraud/req-6",
            "churn/req-5",
            "fraud/req-4",
            "churn/req-3",
            "fraud/req-2",
            "churn/req-1",
            "fraud/req-0"
        ]
    );

    let ids_of = |q: ListQuery| {
        let store = Arc::clone(&store);
        async move {
            let page = store.list(&q).await.unwrap();
            page.records
                .into_iter()
                .map(|r| r.request_id)
                .collect::<Vec<_>>()
        }
    };
    let by_model = ListQuery {
        model: Some("churn".into()),
        ..ListQuery::default()
    };
    assert_eq!(ids_of(by_model).await, ["req-5", "req-3", "req-1"]);
    let by_version = ListQuery {
        version: Some("v2".into()),
        ..ListQuery::default()
    };
    assert_eq!(ids_of(by_version).await, ["req-6"]);
    let by_label = ListQuery {
        label: Some("fraud".into()),
        ..ListQuery::default()
    };
    assert_eq!(ids_of(by_label).await, ["req-6"]);
    let by_time = ListQuery {
        from_us: Some(1_002),
        to_us: Some(1_005),
        ..ListQuery::default()
    };
    assert_eq!(ids_of(by_time).await, ["req-4", "req-3", "req-2"]);

    let bad_cursor = ListQuery {
        cursor: Some("garbage!".into()),
        ..ListQuery::default()
    };
    let err = store.list(&bad_cursor).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::BadRequest);
    let bad_limit = ListQuery {
        limit: Some(0),
        ..ListQuery::default()
    };
    assert_eq!(
        store.list(&bad_limit).await.unwrap_err().code(),
        ErrorCode::BadRequest
    );
    store.shutdown().await;
}

pub async fn replay_and_conflict(h: Harness) {
    let store = h.open().await;
    let original = record("pay-1", "fraud", 10, 120.0);
    assert_eq!(
        append_one(store.as_ref(), original.clone()).await,
        AppendOutcome::Inserted
    );

    // Same input, rescored by a newer model: the stored answer comes back.
    let mut retry = original.clone();
    retry.scores = vec![0.99, 0.01];
    retry.version = "v9".into();
    retry.received_at_us = 20;
    match append_one(store.as_ref(), retry).await {
        AppendOutcome::Replayed(stored) => assert_eq!(*stored, original),
        other => panic!("expected replay, got {other:?}"),
    }
    // Same id, different input: conflict naming the stored record.
    let other = record("pay-1", "fraud", 30, 999.0);
    match append_one(store.as_ref(), other).await {
        AppendOutcome::Conflict(stored) => assert_eq!(stored.scores, original.scores),
        other => panic!("expected conflict, got {other:?}"),
    }
    // Within one batch, later duplicates are judged against the first.
    let batch = vec![
        record("b-1", "fraud", 1, 1.0),
        record("b-2", "fraud", 2, 2.0),
        record("b-1", "fraud", 3, 1.0),
        record("b-2", "fraud", 4, 7.0),
    ];
    let outcomes = store.append_batch(batch).await.unwrap();
    assert_eq!(outcomes[0], AppendOutcome::Inserted);
    assert_eq!(outcomes[1], AppendOutcome::Inserted);
    assert!(
        matches!(outcomes[2], AppendOutcome::Replayed(_)),
        "{:?}",
        outcomes[2]
    );
    assert!(
        matches!(outcomes[3], AppendOutcome::Conflict(_)),
        "{:?}",
        outcomes[3]
    );
    let stats = store.stats_snapshot();
    assert_eq!(stats.records_written, 3);
    assert_eq!(stats.idempotent_replays, 2);
    assert_eq!(stats.conflicts, 2);
    assert_eq!(
        store
            .list(&ListQuery::default())
            .await
            .unwrap()
            .records
            .len(),
        3
    );

    // Invalid ids never reach the backend.
    let long = record(&"x".repeat(129), "fraud", 1, 1.0);
    assert_eq!(
        store.append(long).await.unwrap_err().code(),
        ErrorCode::BadRequest
    );
    let ctrl = record("a\u{0}b", "fraud", 1, 1.0);
    assert!(matches!(
        store.append(ctrl).await,
        Err(StoreError::InvalidRequestId { .. })
    ));
    store.shutdown().await;
}

pub async fn idempotent_across_reopen(h: Harness) {
    let original = record("pay-7", "fraud", 10, 300.0);
    {
        let store = h.open().await;
        assert_eq!(
            append_one(store.as_ref(), original.clone()).await,
            AppendOutcome::Inserted
        );
        store.shutdown().await;
    }
    let store = h.open().await;
    assert_eq!(
        store.lookup("fraud", "pay-7").await.unwrap(),
        Some(original.clone())
    );
    match append_one(store.as_ref(), original.clone()).await {
        AppendOutcome::Replayed(stored) => assert_eq!(*stored, original),
        other => panic!("expected replay, got {other:?}"),
    }
    store.shutdown().await;
}

pub async fn concurrent_appends_insert_once(h: Harness) {
    // Two stores on the same database stand for two replicas. SQLite has
    // one server per data directory: a second one is refused by the
    // journal's lock, so there 40 tasks share one store.
    let a = h.open().await;
    let b = if h.config.url.is_some() {
        h.open().await
    } else {
        let second = Store::open_with_clock(&h.config, h.clock.clone()).await;
        let err = second.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("locked by another process"), "{err}");
        Arc::clone(&a)
    };
    let mut tasks = Vec::new();
    for i in 0..40 {
        let store = if i % 2 == 0 {
            Arc::clone(&a)
        } else {
            Arc::clone(&b)
        };
        tasks.push(tokio::spawn(async move {
            store
                .append(record("hot-id", "fraud", i, 50.0))
                .await
                .unwrap()
        }));
    }
    let mut inserted = 0;
    let mut replayed = 0;
    for t in tasks {
        match t.await.unwrap() {
            AppendOutcome::Inserted => inserted += 1,
            AppendOutcome::Replayed(_) => replayed += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((inserted, replayed), (1, 39));
    assert_eq!(a.get("hot-id").await.unwrap().len(), 1);
    a.shutdown().await;
    b.shutdown().await;
}

pub async fn retention_deletes_only_expired(h: Harness) {
    let store = h.open().await;
    let day = vigil_store::clock::DAY_US;
    let now = 100 * day;
    h.clock.set(now);
    for i in 0..5 {
        append_one(
            store.as_ref(),
            record(&format!("old-{i}"), "fraud", now - 3 * day - i, 1.0),
        )
        .await;
    }
    for i in 0..3 {
        append_one(
            store.as_ref(),
            record(&format!("new-{i}"), "fraud", now - day / 2 + i, 1.0),
        )
        .await;
    }
    let deleted = retention::sweep_once(
        store.backend().as_ref(),
        h.clock.as_ref(),
        2,
        2,
        store.stats(),
    )
    .await
    .unwrap();
    assert_eq!(deleted, 5);
    assert_eq!(store.stats_snapshot().retention_deleted, 5);
    let left: Vec<String> = store
        .list(&ListQuery::default())
        .await
        .unwrap()
        .records
        .into_iter()
        .map(|r| r.request_id)
        .collect();
    assert_eq!(left, ["new-2", "new-1", "new-0"]);
    // Moving the clock on expires the rest.
    h.clock.advance(3 * day);
    let deleted = retention::sweep_once(
        store.backend().as_ref(),
        h.clock.as_ref(),
        2,
        1000,
        store.stats(),
    )
    .await
    .unwrap();
    assert_eq!(deleted, 3);
    store.shutdown().await;
}

pub async fn fsync_durability_and_export(h: Harness) {
    let mut config = h.config.clone();
    config.durability = vigil_store::Durability::Fsync;
    {
        let store = Store::open_with_clock(&config, h.clock.clone())
            .await
            .unwrap();
        let batch: Vec<InferenceRecord> = (0..5)
            .map(|i| record(&format!("e-{i}"), "fraud", 100 + i, 10.0 * i as f64))
            .collect();
        let outcomes = store.append_batch(batch).await.unwrap();
        assert!(outcomes.iter().all(|o| *o == AppendOutcome::Inserted));
        store.shutdown().await;
    }
    let store = Store::open_with_clock(&config, h.clock.clone())
        .await
        .unwrap();
    let mut seen = Vec::new();
    let out = vigil_store::export::export_range(
        store.as_ref(),
        Some(101),
        Some(104),
        vigil_store::export::ExportFormat::Jsonl,
        Vec::new(),
        |n| seen.push(n),
    )
    .await
    .unwrap();
    let lines: Vec<InferenceRecord> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ids: Vec<&str> = lines.iter().map(|r| r.request_id.as_str()).collect();
    assert_eq!(ids, ["e-3", "e-2", "e-1"]);
    assert_eq!(lines[0], record("e-3", "fraud", 103, 30.0));
    assert_eq!(seen.last(), Some(&3));
    store.shutdown().await;
}

macro_rules! inference_log_suite {
    ($name:ident, $harness:path $(, #[$attr:meta])*) => {
        mod $name {
            use super::*;

            macro_rules! case {
                ($case:ident) => {
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    $(#[$attr])*
                    async fn $case() {
                        super::$case($harness().await).await;
                    }
                };
            }

            case!(insert_get_list);
            case!(replay_and_conflict);
            case!(idempotent_across_reopen);
            case!(concurrent_appends_insert_once);
            case!(retention_deletes_only_expired);
            case!(spill_then_replay);
            case!(spill_survives_restart_and_rejects_when_full);
            case!(background_replay_and_sweep);
            case!(drop_oldest_keeps_newest);
            case!(fsync_durability_and_export);
            case!(poison_record_does_not_block_replay);
        }
    };
}

inference_log_suite!(sqlite, support::sqlite_harness);
inference_log_suite!(
    postgres,
    support::postgres_harness,
    #[ignore = "needs VIGIL_TEST_POSTGRES_URL (started by .ci/run)"]
);

#[tokio::test]
async fn open_fails_fast_on_bad_config_or_unreachable_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = vigil_store::StoreConfig::with_data_dir(dir.path());
    config.fsync_interval_ms = 0;
    let err = Store::open(&config).await.unwrap_err();
    assert!(matches!(err, StoreError::Config(_)), "{err}");

    // Port 1 on loopback refuses connections: a wrong URL must not start a
    // store that silently spills forever.
    let mut config = vigil_store::StoreConfig::with_data_dir(dir.path());
    config.url = Some("postgres://vigil@127.0.0.1:1/vigil".into());
    config.connect_timeout_ms = 500;
    let err = Store::open(&config).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::Unavailable, "{err}");
}

#[test]
fn clock_is_injected() {
    let h = vigil_store::ManualClock::new(5);
    assert_eq!(h.now_us(), 5);
}

/// A PostgreSQL database written by schema v1 (inputs as JSON text, a
/// stored fingerprint) is migrated at connect: its records read back the
/// same, and replays and conflicts are judged against them.
#[tokio::test]
#[ignore = "needs VIGIL_TEST_POSTGRES_URL (started by .ci/run)"]
async fn postgres_schema_v1_records_survive_the_migration() {
    let h = support::postgres_harness().await;
    let url = h.config.url.clone().unwrap();
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    let driver = tokio::spawn(conn);
    // Schema v1 as the first release created it, with one record.
    client
        .batch_execute(
            r#"CREATE TABLE schema_version (
                version INTEGER PRIMARY KEY,
                applied_at TIMESTAMPTZ NOT NULL DEFAULT now());
            INSERT INTO schema_version (version) VALUES (1);
            CREATE TABLE inferences (
                request_id TEXT COLLATE "C" NOT NULL,
                received_at_us BIGINT NOT NULL,
                model TEXT COLLATE "C" NOT NULL,
                version TEXT NOT NULL,
                input TEXT NOT NULL,
                input_fingerprint TEXT NOT NULL,
                scores BYTEA NOT NULL,
                label TEXT,
                threshold DOUBLE PRECISION,
                latency_us BIGINT NOT NULL,
                cached BOOLEAN NOT NULL,
                api_key_name TEXT,
                trace_id TEXT,
                PRIMARY KEY (request_id, model));
            CREATE INDEX inferences_received_at ON inferences (received_at_us, request_id, model);
            INSERT INTO inferences VALUES ('old', 5, 'fraud', '1',
                '{"amount":12.0,"country":"FR"}', 'ignored', '\x000000000000d03f'::bytea,
                'legit', 0.5, 7, false, NULL, NULL);"#,
        )
        .await
        .unwrap();
    drop(client);
    let _ = driver.await;

    let log = h.backend().await;
    let old = log.lookup("fraud", "old").await.unwrap().unwrap();
    assert_eq!(old.scores, vec![0.25]);
    assert_eq!(old.input.to_json(), r#"{"amount":12,"country":"FR"}"#);
    let mut again = record("old", "fraud", 9, 12.0);
    assert!(matches!(
        append_one(log.as_ref(), again.clone()).await,
        AppendOutcome::Replayed(stored) if stored.version == "1"
    ));
    again.input = vigil_store::Input::default();
    assert!(matches!(
        append_one(log.as_ref(), again).await,
        AppendOutcome::Conflict(_)
    ));
    assert_eq!(
        append_one(log.as_ref(), record("new", "fraud", 10, 3.0)).await,
        AppendOutcome::Inserted
    );
    let page = log.list(&ListQuery::default()).await.unwrap();
    let ids: Vec<&str> = page.records.iter().map(|r| r.request_id.as_str()).collect();
    assert_eq!(ids, ["new", "old"]);
}
