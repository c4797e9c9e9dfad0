//! The SQLite log's own behaviour; the shared behaviour suite runs in
//! `tests/suite.rs` against every backend.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::schema::MIGRATIONS;
use super::*;
use crate::input::Input;
use crate::test_support::settled;

fn record(i: usize) -> InferenceRecord {
    let mut input = serde_json::Map::new();
    input.insert("amount".into(), serde_json::json!(i as f64 + 0.5));
    input.insert("note".into(), serde_json::json!("x".repeat(600)));
    let mut r = InferenceRecord::new(format!("w-{i}"), i as i64, "fraud", "1", input);
    r.scores = vec![0.25];
    r
}

/// A database written by schema v1 (inputs as JSON text, a stored
/// fingerprint) is migrated: its records read back the same, replays
/// and conflicts are judged against them, and new records are binary.
#[tokio::test]
async fn schema_v1_records_survive_the_migration() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let config = StoreConfig::with_data_dir(dir.path());
    {
        let conn = Connection::open(config.sqlite_path()).unwrap_or_else(|e| panic!("{e}"));
        conn.execute_batch(MIGRATIONS[0])
            .unwrap_or_else(|e| panic!("{e}"));
        conn.execute_batch(
            "CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at_us INTEGER NOT NULL);
             INSERT INTO schema_version VALUES (1, 0);
             INSERT INTO inferences VALUES ('old', 5, 'fraud', '1', '{\"amount\":12.0,\"note\":\"x\"}',
                 'ignored', X'000000000000D03F', 'legit', 0.5, 7, 0, NULL, NULL);",
        )
        .unwrap_or_else(|e| panic!("{e}"));
    }
    let log = SqliteLog::open(&config)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let old = log.lookup("fraud", "old").await.ok().flatten();
    let input = Input::from_map(
        serde_json::json!({"amount": 12, "note": "x"})
            .as_object()
            .cloned()
            .as_ref()
            .unwrap_or_else(|| panic!("object")),
    );
    assert_eq!(
        old.as_ref().map(|r| (&r.input, r.scores.clone())),
        Some((&input, vec![0.25]))
    );
    let mut again = InferenceRecord::new("old", 9, "fraud", "2", input);
    assert!(matches!(
        log.append(again.clone()).await,
        Ok(AppendOutcome::Replayed(_))
    ));
    again.input = Input::default();
    assert!(matches!(
        log.append(again).await,
        Ok(AppendOutcome::Conflict(_))
    ));
    assert_eq!(
        log.append(record(1)).await.ok(),
        Some(AppendOutcome::Inserted)
    );
    let page = log
        .list(&ListQuery::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let ids: Vec<&str> = page.records.iter().map(|r| r.request_id.as_str()).collect();
    assert_eq!(ids, ["old", "w-1"]);
}

/// A configuration whose indexer waits a minute: records stay journaled
/// until something applies them.
fn slow_indexer(dir: &Path) -> StoreConfig {
    let mut config = StoreConfig::with_data_dir(dir);
    config.index_interval_ms = 60_000;
    config
}

async fn open(config: &StoreConfig) -> SqliteLog {
    SqliteLog::open(config)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Before the indexer applies them, journaled records are found by
/// lookup and get, judged for replays and conflicts, and listed (a list
/// applies the journal first).
#[tokio::test]
async fn journaled_records_are_read_before_they_are_applied() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let log = open(&slow_indexer(dir.path())).await;
    assert_eq!(
        log.append(record(1)).await.ok(),
        Some(AppendOutcome::Inserted)
    );
    assert_eq!(log.shared.transactions.load(Ordering::Relaxed), 0);
    assert_eq!(log.shared.tail.len(), 1);

    let found = log.lookup("fraud", "w-1").await.ok().flatten();
    assert_eq!(found.map(|r| r.scores), Some(vec![0.25]));
    let got = log.get("w-1").await.unwrap_or_default();
    assert_eq!(got.len(), 1);
    assert!(matches!(
        log.append(record(1)).await,
        Ok(AppendOutcome::Replayed(_))
    ));
    let mut other = record(1);
    other.input = Input::default();
    assert!(matches!(
        log.append(other).await,
        Ok(AppendOutcome::Conflict(_))
    ));
    assert_eq!(log.shared.transactions.load(Ordering::Relaxed), 0);

    let page = log
        .list(&ListQuery::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(page.records.len(), 1);
    assert_eq!(log.shared.transactions.load(Ordering::Relaxed), 1);
    assert_eq!(log.shared.tail.len(), 0);
    // Now from SQLite: the same answers.
    assert!(matches!(
        log.append(record(1)).await,
        Ok(AppendOutcome::Replayed(_))
    ));
    assert_eq!(log.get("w-1").await.unwrap_or_default().len(), 1);
}

/// Records a previous run journaled but never applied are applied before
/// the log serves, and the journal starts over.
#[tokio::test]
async fn an_unapplied_journal_is_applied_on_open() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let config = StoreConfig::with_data_dir(dir.path());
    {
        // What a killed process leaves: the journal written, SQLite not.
        let (journal, _) = SegmentLog::open(config.journal_dir(), Options::default())
            .unwrap_or_else(|e| panic!("{e}"));
        for i in 0..50 {
            let payload = codec::encode(&record(i));
            let at = journal.append(i as i64, &payload, JournalDurability::Os);
            assert!(at.is_ok(), "{at:?}");
        }
    }
    let log = open(&config).await;
    assert_eq!(log.shared.applied_records.load(Ordering::Relaxed), 50);
    assert_eq!(log.shared.tail.len(), 0);
    for i in [0, 25, 49] {
        let found = log.lookup("fraud", &format!("w-{i}")).await.ok().flatten();
        assert_eq!(found.map(|r| r.received_at_us), Some(i as i64));
    }
    let journal: u64 = log
        .shared
        .journal
        .segments()
        .iter()
        .map(|s| s.records)
        .sum();
    assert_eq!(journal, 0, "the applied journal was not emptied");
    drop(log);
    // Opening again applies nothing twice.
    let log = open(&config).await;
    assert_eq!(log.shared.applied_records.load(Ordering::Relaxed), 0);
    let page = log
        .list(&ListQuery {
            limit: Some(1000),
            ..ListQuery::default()
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(page.records.len(), 50);
}

/// Nothing journaled: the indexer never wakes. An append is applied in
/// one transaction about `index_interval_ms` later, and the thread sleeps
/// again.
#[tokio::test]
async fn an_idle_log_sleeps_and_an_append_is_applied_once() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut config = StoreConfig::with_data_dir(dir.path());
    config.index_interval_ms = 20;
    let log = open(&config).await;
    let shared = &log.shared;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        shared.signal.wakeups.load(Ordering::Relaxed),
        0,
        "an idle log woke"
    );
    assert_eq!(shared.transactions.load(Ordering::Relaxed), 0);

    assert_eq!(
        log.append(record(1)).await.ok(),
        Some(AppendOutcome::Inserted)
    );
    assert_eq!(settled(&shared.transactions, 1).await, 1);
    let woke = shared.signal.wakeups.load(Ordering::Relaxed);
    assert!(woke >= 1, "the append did not wake the indexer");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(shared.signal.wakeups.load(Ordering::Relaxed), woke);
    assert_eq!(shared.transactions.load(Ordering::Relaxed), 1);
}

/// Under steady appends the indexer applies many records per transaction,
/// and journal segments are deleted once applied and checkpointed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applied_journal_segments_are_deleted() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut config = StoreConfig::with_data_dir(dir.path());
    config.index_interval_ms = 5;
    config.journal_segment_bytes = 16 << 10;
    let log = Arc::new(open(&config).await);
    let (tasks, per_task) = (8, 250);
    let writers: Vec<_> = (0..tasks)
        .map(|t| {
            let log = Arc::clone(&log);
            tokio::spawn(async move {
                for i in 0..per_task {
                    let outcome = log.append(record(t * per_task + i)).await;
                    assert_eq!(outcome.ok(), Some(AppendOutcome::Inserted));
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap_or_else(|e| panic!("{e}"));
    }
    let total = (tasks * per_task) as u64;
    assert_eq!(settled(&log.shared.applied_records, total).await, total);
    let transactions = log.shared.transactions.load(Ordering::Relaxed);
    assert!(
        transactions < total / 4,
        "{transactions} transactions for {total} records"
    );
    // A checkpoint comes at most a second after the last apply; one more
    // append makes the indexer run again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        log.append(record(total as usize)).await.ok(),
        Some(AppendOutcome::Inserted)
    );
    assert!(settled(&log.shared.checkpoints, 1).await >= 1);
    let segments = log.shared.journal.segments();
    let journaled: u64 = segments.iter().map(|s| s.records).sum();
    // Each record's frame is ~800 bytes: ~20 per segment, 100 segments written.
    assert!(segments.len() <= 3 && journaled < 60, "{segments:?}");
}

/// A full tail makes appends wait for the indexer instead of growing
/// without bound, and wakes the indexer at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_tail_holds_appends_until_applied() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut config = slow_indexer(dir.path());
    config.writer_queue_capacity = 8;
    let log = open(&config).await;
    let started = std::time::Instant::now();
    for i in 0..100 {
        assert_eq!(
            log.append(record(i)).await.ok(),
            Some(AppendOutcome::Inserted)
        );
        assert!(log.shared.tail.len() <= 8);
    }
    // The minute-long interval was never waited for.
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(log.shared.transactions.load(Ordering::Relaxed) >= 10);
}
