use std::ops::ControlFlow;

use super::*;

const NOW: i64 = 1_800_000_000_000;
const DAY: i64 = 86_400_000;

fn ev(timestamp: i64, message: &str) -> InputEvent {
    InputEvent {
        timestamp,
        message: message.to_owned(),
    }
}

fn small() -> StoreOptions {
    StoreOptions {
        segment_bytes: 4096,
        compression: Compression::None,
        ..StoreOptions::default()
    }
}

fn messages(store: &LogStore, group: &str, from: i64, to: i64) -> Vec<(i64, String, String)> {
    let mut out = Vec::new();
    store
        .scan(group, from, to, |e| {
            out.push((e.timestamp_ms, e.stream.to_owned(), e.message.to_owned()));
            ControlFlow::Continue(())
        })
        .unwrap();
    out
}

#[test]
fn a_batch_is_stored_its_bad_events_listed_and_read_back_by_time() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open(dir.path(), StoreOptions::default()).unwrap();
    let out = store
        .put(
            "/app/api",
            "host-1",
            &[
                ev(NOW - 2000, "a"),
                ev(NOW - 20 * DAY, "old"),
                ev(NOW - 1000, "b"),
            ],
            NOW,
        )
        .unwrap();
    assert_eq!(out.accepted, 2);
    assert_eq!(
        out.rejected,
        vec![Rejected {
            index: 1,
            reason: RejectReason::TooOld
        }]
    );
    assert_eq!(
        messages(&store, "/app/api", NOW - 1500, NOW),
        vec![(NOW - 1000, "host-1".to_owned(), "b".to_owned())]
    );
    let groups = store.groups();
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0].name, "/app/api");
    assert_eq!(groups[0].events, 2);
    assert_eq!(groups[0].retention_days, None);
}

#[test]
fn names_and_retentions_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open(dir.path(), StoreOptions::default()).unwrap();
    let err = store
        .put("bad group", "s", &[ev(NOW, "x")], NOW)
        .unwrap_err();
    assert!(err.to_string().contains("only letters"), "{err}");
    let err = store.put("g", "a:b", &[ev(NOW, "x")], NOW).unwrap_err();
    assert!(err.to_string().contains("stream"), "{err}");
    let err = store.create_group("g", Some(2), NOW).unwrap_err();
    assert!(err.to_string().contains("not allowed"), "{err}");
    assert!(matches!(
        store.set_retention("missing", Some(1)),
        Err(LogError::NoGroup(_))
    ));
    assert!(matches!(
        store.scan("missing", 0, 1, |_| ControlFlow::Continue(())),
        Err(LogError::NoGroup(_))
    ));
}

#[test]
fn groups_and_events_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = LogStore::open(dir.path(), small()).unwrap();
        store.create_group("/vigil/system", Some(30), NOW).unwrap();
        for i in 0..200 {
            store
                .put(
                    "/vigil/access",
                    "s",
                    &[ev(NOW - 1000 + i, &format!("line {i}"))],
                    NOW,
                )
                .unwrap();
        }
    }
    let store = LogStore::open(dir.path(), small()).unwrap();
    let names: Vec<(String, Option<u32>)> = store
        .groups()
        .into_iter()
        .map(|g| (g.name, g.retention_days))
        .collect();
    assert_eq!(
        names,
        vec![
            ("/vigil/access".to_owned(), None),
            ("/vigil/system".to_owned(), Some(30))
        ]
    );
    let all = messages(&store, "/vigil/access", 0, i64::MAX / 1000);
    assert_eq!(all.len(), 200);
    assert_eq!(all[199].2, "line 199");
}

#[test]
fn expiry_drops_whole_segments_past_the_retention_only() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open(dir.path(), small()).unwrap();
    store.create_group("g", Some(1), NOW).unwrap();
    store.create_group("forever", None, NOW).unwrap();
    let line = "x".repeat(300);
    for i in 0..40 {
        store
            .put("g", "s", &[ev(NOW - 3 * DAY + i, &line)], NOW)
            .unwrap();
        store
            .put("forever", "s", &[ev(NOW - 3 * DAY + i, &line)], NOW)
            .unwrap();
    }
    for i in 0..5 {
        store
            .put("g", "s", &[ev(NOW - 1000 + i, "fresh")], NOW)
            .unwrap();
    }
    let deleted = store.expire(NOW).unwrap();
    assert!(deleted >= 2, "deleted {deleted}");
    let left = messages(&store, "g", 0, i64::MAX / 1000);
    assert!(left.iter().filter(|e| e.2 == "fresh").count() == 5);
    assert!(left.len() < 45, "{} events left", left.len());
    assert_eq!(messages(&store, "forever", 0, i64::MAX / 1000).len(), 40);
}

#[test]
fn a_deleted_group_is_gone_and_can_be_made_again() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open(dir.path(), StoreOptions::default()).unwrap();
    store.put("g", "s", &[ev(NOW, "one")], NOW).unwrap();
    assert!(store.delete_group("g").unwrap());
    assert!(!store.delete_group("g").unwrap());
    assert!(store.groups().is_empty());
    store.put("g", "s", &[ev(NOW, "two")], NOW).unwrap();
    let left = messages(&store, "g", 0, i64::MAX / 1000);
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].2, "two");
    drop(store);
    let store = LogStore::open(dir.path(), StoreOptions::default()).unwrap();
    assert_eq!(store.groups().len(), 1);
}

#[test]
fn the_estimate_counts_the_segments_that_overlap_the_range() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open(dir.path(), small()).unwrap();
    assert!(!store.has_group("/g"));
    // Three batches an hour apart; 4 KiB segments seal between them.
    for (h, n) in [(3, 40), (2, 30), (1, 20)] {
        let events: Vec<InputEvent> = (0..n)
            .map(|i| ev(NOW - h * 3_600_000 + i, &"x".repeat(100)))
            .collect();
        store.put("/g", "s", &events, NOW).unwrap();
    }
    assert!(store.has_group("/g"));
    assert_eq!(store.estimate_events("/g", 0, NOW + 1).unwrap(), 90);
    let last_hour = store.estimate_events("/g", NOW - 3_600_000, NOW).unwrap();
    assert!((20..90).contains(&last_hour), "{last_hour}");
    assert_eq!(store.estimate_events("/g", NOW, NOW + 1).unwrap(), 0);
    assert!(matches!(
        store.estimate_events("/nope", 0, 1),
        Err(LogError::NoGroup(_))
    ));
}
