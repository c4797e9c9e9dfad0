//! Spill-queue cases of the behaviour suite: the backend fails, records go
//! to the local spill and come back, whatever the backend.

use super::*;

pub async fn spill_then_replay(h: Harness) {
    let flaky = Arc::new(FlakyLog::new(h.backend().await));
    let store = Store::with_backend(&h.config, flaky.clone(), h.clock.clone()).unwrap();
    let before = record("pre", "fraud", 1, 1.0);
    assert_eq!(
        append_one(store.as_ref(), before.clone()).await,
        AppendOutcome::Inserted
    );

    flaky.fail.store(true, Ordering::SeqCst);
    let spilled: Vec<InferenceRecord> = (0..20)
        .map(|i| record(&format!("s-{i:02}"), "fraud", 10 + i, 2.0))
        .collect();
    for r in &spilled {
        assert_eq!(
            append_one(store.as_ref(), r.clone()).await,
            AppendOutcome::Spilled
        );
    }
    assert!(store.is_degraded());
    // During the outage the spill answers idempotency questions.
    assert_eq!(
        store.lookup("fraud", "s-03").await.unwrap(),
        Some(spilled[3].clone())
    );
    assert!(matches!(
        append_one(store.as_ref(), spilled[3].clone()).await,
        AppendOutcome::Replayed(_)
    ));
    assert!(matches!(
        append_one(store.as_ref(), record("s-04", "fraud", 99, 3.0)).await,
        AppendOutcome::Conflict(_)
    ));
    // A spilled record that is in fact already stored replays as a no-op.
    assert_eq!(
        append_one(store.as_ref(), before.clone()).await,
        AppendOutcome::Spilled
    );
    assert!(store.list(&ListQuery::default()).await.is_err());
    assert!(store.replay_spill().await.is_err(), "backend still down");

    flaky.fail.store(false, Ordering::SeqCst);
    assert_eq!(store.replay_spill().await.unwrap(), 21);
    assert!(!store.is_degraded());
    assert_eq!(store.spill_bytes(), 0);
    for r in &spilled {
        assert_eq!(
            store
                .backend()
                .lookup("fraud", &r.request_id)
                .await
                .unwrap(),
            Some(r.clone())
        );
    }
    assert_eq!(store.get("pre").await.unwrap(), vec![before]);
    let stats = store.stats_snapshot();
    assert_eq!(stats.records_spilled, 21);
    assert_eq!(stats.records_unspilled, 21);
    assert!(stats.store_errors >= 1);
    assert_eq!(
        append_one(store.as_ref(), record("after", "fraud", 500, 1.0)).await,
        AppendOutcome::Inserted
    );
    store.shutdown().await;
}

pub async fn spill_survives_restart_and_rejects_when_full(h: Harness) {
    let mut config = h.config.clone();
    config.spill_max_bytes = 4096;
    config.spill_policy = SpillPolicy::Reject;
    let kept;
    {
        let flaky = Arc::new(FlakyLog::new(h.backend().await));
        flaky.fail.store(true, Ordering::SeqCst);
        let store = Store::with_backend(&config, flaky, h.clock.clone()).unwrap();
        let mut n = 0;
        let err = loop {
            match store
                .append(record(&format!("r-{n:03}"), "fraud", n, 5.0))
                .await
            {
                Ok(AppendOutcome::Spilled) => n += 1,
                Ok(other) => panic!("unexpected {other:?}"),
                Err(err) => break err,
            }
            assert!(n < 1000, "spill never filled");
        };
        assert!(matches!(err, StoreError::SpillFull), "{err}");
        assert_eq!(err.code(), ErrorCode::Unavailable);
        assert!(n > 0);
        assert_eq!(store.stats_snapshot().records_rejected, 1);
        kept = n as u64;
        store.shutdown().await;
    }
    // A new process finds the spill and replays it into a healthy backend.
    let store = Store::with_backend(&config, h.backend().await, h.clock.clone()).unwrap();
    assert!(store.is_degraded());
    assert_eq!(
        store
            .lookup("fraud", "r-000")
            .await
            .unwrap()
            .map(|r| r.received_at_us),
        Some(0)
    );
    assert_eq!(store.replay_spill().await.unwrap(), kept);
    let page = store
        .list(&ListQuery {
            limit: Some(1000),
            ..ListQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(page.records.len() as u64, kept);
    store.shutdown().await;
}

pub async fn background_replay_and_sweep(h: Harness) {
    let mut config = h.config.clone();
    config.spill_replay_interval_ms = 20;
    config.retention_days = Some(1);
    config.retention_sweep_interval_ms = 20;
    let day = vigil_store::clock::DAY_US;
    let now = h.clock.now_us();
    let flaky = Arc::new(FlakyLog::new(h.backend().await));
    let store = Store::with_backend(&config, flaky.clone(), h.clock.clone()).unwrap();
    append_one(
        store.as_ref(),
        record("expired", "fraud", now - 2 * day, 1.0),
    )
    .await;
    append_one(store.as_ref(), record("fresh", "fraud", now - day / 2, 1.0)).await;

    flaky.fail.store(true, Ordering::SeqCst);
    for i in 0..3 {
        let r = record(&format!("late-{i}"), "fraud", now - i, 1.0);
        assert_eq!(append_one(store.as_ref(), r).await, AppendOutcome::Spilled);
    }
    flaky.fail.store(false, Ordering::SeqCst);

    // No explicit call: the replayer and the sweeper do the work.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let ids: Vec<String> = match store.list(&ListQuery::default()).await {
            Ok(page) => page.records.into_iter().map(|r| r.request_id).collect(),
            Err(_) => Vec::new(),
        };
        if ids == ["late-0", "late-1", "late-2", "fresh"] && !store.is_degraded() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "background tasks did not converge: {ids:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let stats = store.stats_snapshot();
    assert_eq!(stats.records_unspilled, 3);
    assert_eq!(stats.retention_deleted, 1);
    store.shutdown().await;
}

pub async fn drop_oldest_keeps_newest(h: Harness) {
    let mut config = h.config.clone();
    config.spill_max_bytes = 4096;
    config.spill_policy = SpillPolicy::DropOldest;
    let flaky = Arc::new(FlakyLog::new(h.backend().await));
    flaky.fail.store(true, Ordering::SeqCst);
    let store = Store::with_backend(&config, flaky.clone(), h.clock.clone()).unwrap();
    for i in 0..100 {
        let r = record(&format!("d-{i:03}"), "fraud", i, 1.0);
        assert_eq!(append_one(store.as_ref(), r).await, AppendOutcome::Spilled);
    }
    let dropped = store.stats_snapshot().records_dropped;
    assert!(dropped > 0 && dropped < 100, "dropped {dropped}");
    assert!(store.spill_bytes() <= 4096);
    flaky.fail.store(false, Ordering::SeqCst);
    assert_eq!(store.replay_spill().await.unwrap(), 100 - dropped);
    assert!(store.lookup("fraud", "d-099").await.unwrap().is_some());
    assert!(store.lookup("fraud", "d-000").await.unwrap().is_none());
    store.shutdown().await;
}

pub async fn poison_record_does_not_block_replay(h: Harness) {
    let flaky = Arc::new(FlakyLog::new(h.backend().await));
    let store = Store::with_backend(&h.config, flaky.clone(), h.clock.clone()).unwrap();
    flaky.fail.store(true, Ordering::SeqCst);
    for id in ["ok-1", "poison-1", "ok-2"] {
        assert_eq!(
            append_one(store.as_ref(), record(id, "fraud", 1, 1.0)).await,
            AppendOutcome::Spilled
        );
    }
    flaky.fail.store(false, Ordering::SeqCst);
    assert_eq!(store.replay_spill().await.unwrap(), 3);
    assert!(store.lookup("fraud", "ok-1").await.unwrap().is_some());
    assert!(store.lookup("fraud", "ok-2").await.unwrap().is_some());
    assert!(store.lookup("fraud", "poison-1").await.unwrap().is_none());
    assert_eq!(store.stats_snapshot().records_dropped, 1);
    assert_eq!(store.spill_bytes(), 0);
    // Outside replay, a rejected record is the caller's error, never spilled.
    let err = store
        .append(record("poison-2", "fraud", 1, 1.0))
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::BadRequest);
    assert_eq!(store.spill_bytes(), 0);
    store.shutdown().await;
}
