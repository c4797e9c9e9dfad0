use std::fs::OpenOptions;

use super::*;

fn rec(id: &str) -> InferenceRecord {
    let mut r = InferenceRecord::new(id, 1, "fraud", "1", crate::Input::default());
    r.scores = vec![0.25];
    r
}

fn open_with(dir: &Path, max: u64, policy: SpillPolicy, durability: Durability) -> SpillQueue {
    let opened = SpillQueue::open(dir, max, policy, durability, Duration::from_millis(10));
    opened.unwrap_or_else(|e| panic!("{e}")).0
}

fn open(dir: &Path, max: u64, policy: SpillPolicy) -> (SpillQueue, Recovered) {
    SpillQueue::open(dir, max, policy, Durability::Os, Duration::from_millis(10))
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The spill directory inside a temporary data directory (so that its
/// `.legacy` sibling stays inside it too).
fn spill_dir(data: &tempfile::TempDir) -> PathBuf {
    data.path().join("spill")
}

fn drain(q: &SpillQueue) -> Vec<String> {
    let mut ids = Vec::new();
    while let Ok(Some(seg)) = q.oldest() {
        let records = q.read(&seg).unwrap_or_default();
        assert_eq!(records.len(), seg.len());
        ids.extend(records.into_iter().map(|r| r.request_id));
        assert!(q.finish(&seg).is_ok());
    }
    ids
}

/// The segment log's segment files (`NNN.seg`), oldest first.
fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "seg"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// The last segment file holding records, as a crash leaves it.
fn last_segment(dir: &Path) -> PathBuf {
    let files = segment_files(dir);
    files
        .last()
        .cloned()
        .unwrap_or_else(|| panic!("no segment file in {}", dir.display()))
}

fn set_len(path: &Path, len: u64) {
    let file = OpenOptions::new().write(true).open(path);
    assert!(file.and_then(|f| f.set_len(len)).is_ok());
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

#[test]
fn pushes_survive_reopen_in_order() {
    let data = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let dir = spill_dir(&data);
    {
        let (q, _) = open(&dir, 1 << 20, SpillPolicy::Reject);
        for i in 0..5 {
            assert!(q.push(&rec(&format!("r{i}"))).is_ok());
        }
        assert!(q.lookup("fraud", "r3").is_some());
        assert!(q.lookup("fraud", "r9").is_none());
        assert!(q.bytes() > 0);
    }
    let (q, found) = open(&dir, 1 << 20, SpillPolicy::Reject);
    assert_eq!(
        found,
        Recovered {
            records: 5,
            corrupt: 0
        }
    );
    assert_eq!(q.lookup("fraud", "r3").map(|r| r.scores), Some(vec![0.25]));
    assert_eq!(drain(&q), vec!["r0", "r1", "r2", "r3", "r4"]);
    assert!(q.is_empty());
    assert_eq!(q.bytes(), 0);
    assert!(q.lookup("fraud", "r3").is_none());
}

#[test]
fn torn_tail_is_skipped_and_cut() {
    let data = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let dir = spill_dir(&data);
    {
        let (q, _) = open(&dir, 1 << 20, SpillPolicy::Reject);
        assert!(q.push(&rec("a")).is_ok());
        assert!(q.push(&rec("b")).is_ok());
    }
    // Cut the last record in half, as a kill -9 mid-write would.
    let seg = last_segment(&dir);
    set_len(&seg, file_len(&seg) - 10);
    let (q, found) = open(&dir, 1 << 20, SpillPolicy::Reject);
    assert_eq!(
        found,
        Recovered {
            records: 1,
            corrupt: 1
        }
    );
    assert!(q.lookup("fraud", "b").is_none());
    assert!(q.push(&rec("c")).is_ok());
    assert_eq!(drain(&q), vec!["a", "c"]);
}

#[test]
fn corrupt_checksum_is_detected_and_cleaned_up() {
    let data = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let dir = spill_dir(&data);
    {
        let (q, _) = open(&dir, 1 << 20, SpillPolicy::Reject);
        assert!(q.push(&rec("a")).is_ok());
    }
    let seg = last_segment(&dir);
    let mut bytes = std::fs::read(&seg).unwrap_or_default();
    let last = bytes.len() - 2;
    bytes[last] ^= 0xff;
    assert!(std::fs::write(&seg, &bytes).is_ok());
    let (q, found) = open(&dir, 1 << 20, SpillPolicy::Reject);
    assert_eq!(
        found,
        Recovered {
            records: 0,
            corrupt: 1
        }
    );
    assert!(q.is_empty());
    drop(q);
    // Counted once: the cut tail is not found again by the next run.
    let (_, again) = open(&dir, 1 << 20, SpillPolicy::Reject);
    assert_eq!(again, Recovered::default());
}

/// Where each frame of `ids` ends in a fresh segment file.
fn frame_ends(ids: &[String]) -> Vec<u64> {
    let mut end = SEGMENT_HEADER_BYTES;
    ids.iter()
        .map(|id| {
            let body = serde_json::to_vec(&rec(id)).unwrap_or_default();
            end += FRAME_OVERHEAD + body.len() as u64;
            end
        })
        .collect()
}

#[test]
fn size_budget_matches_the_segment_files() {
    let data = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let dir = spill_dir(&data);
    let (q, _) = open(&dir, 1 << 20, SpillPolicy::Reject);
    let ids: Vec<String> = (0..7).map(|i| format!("id-{}", "x".repeat(i))).collect();
    for id in &ids {
        assert!(q.push(&rec(id)).is_ok());
    }
    let ends = frame_ends(&ids);
    assert_eq!(Some(q.bytes()), ends.last().copied());
    assert_eq!(file_len(&last_segment(&dir)), q.bytes());
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

    /// Whatever byte a crash stops at, reopening yields exactly the records
    /// written whole before it, counts a torn frame as corrupt, and the
    /// queue keeps working afterwards.
    #[test]
    fn any_truncation_recovers_a_prefix(n in 1usize..12, cut in 0.0f64..1.0) {
        let data = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let dir = spill_dir(&data);
        let ids: Vec<String> = (0..n).map(|i| format!("r{i:02}")).collect();
        {
            let (q, _) = open(&dir, 1 << 20, SpillPolicy::Reject);
            for id in &ids {
                proptest::prop_assert!(q.push(&rec(id)).is_ok());
            }
        }
        let seg = last_segment(&dir);
        let keep = (file_len(&seg) as f64 * cut) as u64;
        set_len(&seg, keep);
        let ends = frame_ends(&ids);
        let whole = ends.iter().filter(|&&e| e <= keep).count();
        // A file cut inside its header was torn while being created: the
        // log rewrites the header and nothing is counted.
        let torn = keep > SEGMENT_HEADER_BYTES && !ends.contains(&keep);
        let (q, found) = open(&dir, 1 << 20, SpillPolicy::Reject);
        proptest::prop_assert_eq!(
            found,
            Recovered { records: whole as u64, corrupt: u64::from(torn) }
        );
        proptest::prop_assert!(q.push(&rec("after")).is_ok());
        let mut expected = ids[..whole].to_vec();
        expected.push("after".into());
        proptest::prop_assert_eq!(drain(&q), expected);
    }
}

#[test]
fn reject_policy_refuses_when_full() {
    let data = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (q, _) = open(&spill_dir(&data), 600, SpillPolicy::Reject);
    let mut accepted = 0;
    for i in 0..20 {
        match q.push(&rec(&format!("r{i}"))) {
            Ok(report) => {
                assert_eq!(report.dropped, 0);
                accepted += 1;
            }
            Err(e) => {
                assert!(matches!(e, StoreError::SpillFull), "{e}");
                break;
            }
        }
    }
    assert!(accepted > 0 && accepted < 20, "accepted {accepted}");
    assert!(q.bytes() <= 600, "{} bytes", q.bytes());
    assert_eq!(drain(&q).len(), accepted);
    // Drained, the room is back.
    assert!(q.push(&rec("again")).is_ok());
}

#[test]
fn drop_oldest_makes_room_and_counts() {
    let data = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (q, _) = open(&spill_dir(&data), 2000, SpillPolicy::DropOldest);
    let mut dropped = 0;
    for i in 0..50 {
        match q.push(&rec(&format!("r{i:02}"))) {
            Ok(report) => dropped += report.dropped,
            Err(e) => panic!("{e}"),
        }
        assert!(q.bytes() <= 2000, "{} bytes after r{i:02}", q.bytes());
    }
    assert!(dropped > 0);
    assert!(q.lookup("fraud", "r00").is_none());
    assert!(q.lookup("fraud", "r49").is_some());
    let left = drain(&q);
    assert_eq!(left.len() as u64 + dropped, 50);
    assert_eq!(left.last().map(String::as_str), Some("r49"));
}

#[test]
fn drop_oldest_drops_whole_sealed_segments() {
    // 64 KiB: segments of 8 KiB, so several are sealed before the first drop.
    let data = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (q, _) = open(&spill_dir(&data), 64 << 10, SpillPolicy::DropOldest);
    let mut dropped = 0;
    let mut first_drop = None;
    for i in 0..2000 {
        let report = q.push(&rec(&format!("r{i:04}")));
        let report = report.unwrap_or_else(|e| panic!("{e}"));
        if report.dropped > 0 && first_drop.is_none() {
            first_drop = Some(report.dropped);
        }
        dropped += report.dropped;
        assert!(q.bytes() <= 64 << 10);
    }
    // One segment's worth, not everything.
    let first = first_drop.unwrap_or(0);
    assert!(first > 0 && first < 200, "first drop {first}");
    let left = drain(&q);
    assert_eq!(left.len() as u64 + dropped, 2000);
    let expected: Vec<String> = (dropped..2000).map(|i| format!("r{i:04}")).collect();
    assert_eq!(left, expected);
}

#[test]
fn fsync_durability_fsyncs_every_push() {
    let data = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let q = open_with(
        &spill_dir(&data),
        1 << 20,
        SpillPolicy::Reject,
        Durability::Fsync,
    );
    assert_eq!(q.fsyncs(), 0);
    for i in 0..3 {
        assert!(q.push(&rec(&format!("r{i}"))).is_ok());
        // Counted before the push returned, not by a background thread.
        assert!(
            q.fsyncs() > i,
            "{} fsyncs after {} pushes",
            q.fsyncs(),
            i + 1
        );
    }
}

#[test]
fn healthy_queue_holds_no_log_and_a_drained_one_lets_go() {
    let data = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let dir = spill_dir(&data);
    let (a, _) = open(&dir, 1 << 20, SpillPolicy::Reject);
    assert!(!dir.exists(), "opened a log for nothing");
    assert!(a.push(&rec("a1")).is_ok());
    // While `a` has records waiting, they are its own: a second queue on
    // the same directory finds the log locked and cannot spill.
    let (b, found) = open(&dir, 1 << 20, SpillPolicy::Reject);
    assert_eq!(found, Recovered::default());
    assert!(b.lookup("fraud", "a1").is_none());
    let refused = b.push(&rec("b1"));
    assert!(
        matches!(refused, Err(StoreError::Unavailable(_))),
        "{refused:?}"
    );
    assert!(b.is_empty());
    assert_eq!(drain(&a), vec!["a1"]);
    // Drained, `a` let the directory go.
    assert!(b.push(&rec("b1")).is_ok());
    assert_eq!(
        b.lookup("fraud", "b1").map(|r| r.request_id),
        Some("b1".into())
    );
    assert_eq!(drain(&b), vec!["b1"]);
}

/// Writes legacy segment `id` holding `ids`, as the previous version did.
fn write_legacy(dir: &Path, id: u64, ids: &[&str]) -> PathBuf {
    assert!(std::fs::create_dir_all(dir).is_ok());
    let bytes: Vec<u8> = ids.iter().flat_map(|i| legacy::encode(&rec(i))).collect();
    let path = legacy::segment_path(dir, id);
    assert!(std::fs::write(&path, bytes).is_ok());
    path
}

#[test]
fn legacy_spill_files_are_migrated_in_order() {
    let data = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let dir = spill_dir(&data);
    write_legacy(&dir, 3, &["l0", "l1", "l2"]);
    write_legacy(&dir, 4, &["l3", "l4"]);
    let (q, found) = open(&dir, 1 << 20, SpillPolicy::Reject);
    assert_eq!(
        found,
        Recovered {
            records: 5,
            corrupt: 0
        }
    );
    assert!(!data.path().join("spill.legacy").exists());
    assert_eq!(legacy::segment_files(&dir).map(|f| f.len()).ok(), Some(0));
    for id in ["l0", "l1", "l2", "l3", "l4"] {
        let found = q.lookup("fraud", id);
        assert_eq!(found, Some(rec(id)), "{id}");
    }
    assert!(q.push(&rec("new")).is_ok());
    assert_eq!(drain(&q), vec!["l0", "l1", "l2", "l3", "l4", "new"]);
}

#[test]
fn legacy_torn_tail_is_cut_and_counted() {
    let data = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let dir = spill_dir(&data);
    let first = write_legacy(&dir, 0, &["l0", "l1"]);
    set_len(&first, file_len(&first) - 7);
    write_legacy(&dir, 1, &["l2"]);
    let (q, found) = open(&dir, 1 << 20, SpillPolicy::Reject);
    assert_eq!(
        found,
        Recovered {
            records: 2,
            corrupt: 1
        }
    );
    assert_eq!(drain(&q), vec!["l0", "l2"]);
}

#[test]
fn crash_mid_migration_is_redone_from_the_legacy_dir() {
    let data = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let dir = spill_dir(&data);
    let legacy_dir = data.path().join("spill.legacy");
    // The crash left a new log holding the first record already migrated
    // and the renamed legacy files.
    {
        let (q, _) = open(&dir, 1 << 20, SpillPolicy::Reject);
        assert!(q.push(&rec("l0")).is_ok());
    }
    write_legacy(&legacy_dir, 0, &["l0", "l1"]);
    write_legacy(&legacy_dir, 1, &["l2"]);
    let (q, found) = open(&dir, 1 << 20, SpillPolicy::Reject);
    assert_eq!(found.records, 4);
    assert!(!legacy_dir.exists());
    assert_eq!(q.lookup("fraud", "l1"), Some(rec("l1")));
    // The duplicate is harmless: replaying a record twice is idempotent.
    assert_eq!(drain(&q), vec!["l0", "l0", "l1", "l2"]);
}

#[test]
fn legacy_files_beside_a_legacy_dir_are_refused() {
    let data = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let dir = spill_dir(&data);
    write_legacy(&dir, 0, &["a"]);
    write_legacy(&data.path().join("spill.legacy"), 0, &["b"]);
    let opened = SpillQueue::open(
        &dir,
        1 << 20,
        SpillPolicy::Reject,
        Durability::Os,
        Duration::from_millis(10),
    );
    let err = opened.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("spill.legacy"), "{err}");
    // Nothing was touched.
    assert!(legacy::segment_path(&dir, 0).exists());
}

#[test]
fn a_large_legacy_file_becomes_segments_of_the_usual_size() {
    let data = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let dir = spill_dir(&data);
    let ids: Vec<String> = (0..300).map(|i| format!("l{i:03}")).collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    write_legacy(&dir, 0, &refs);
    // 64 KiB: segments of 8 KiB, about 50 records each.
    let (q, found) = open(&dir, 64 << 10, SpillPolicy::DropOldest);
    assert_eq!(found.records, 300);
    let first = q.oldest().unwrap_or_else(|e| panic!("{e}"));
    let first = first.map_or(0, |s| s.len());
    assert!(first > 10 && first < 100, "first segment holds {first}");
    assert!(segment_files(&dir).len() > 3);
    assert_eq!(drain(&q), ids);
}
