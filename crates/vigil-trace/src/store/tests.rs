use std::collections::HashSet;

use super::*;
use crate::model::{AnnotationValue, SpanId, TraceSummary};

const HOUR_US: i64 = 3_600_000_000;
const T0: i64 = 1_700_000_000_000_000;

fn options() -> StoreOptions {
    StoreOptions {
        background_retention: false,
        compression: Compression::None,
        ..StoreOptions::default()
    }
}

/// A trace of `n` spans made the Vigil way: its id carries its start second.
fn trace(seq: u32, start_us: i64, n: u8) -> Vec<Span> {
    let mut random = [0u8; 12];
    random[8..].copy_from_slice(&seq.to_be_bytes());
    random[0] = 0x5a;
    let id = TraceId::from_parts((start_us / 1_000_000) as u32, random);
    (0..n)
        .map(|i| {
            let mut span = Span::new(
                id,
                SpanId([i + 1; 8]),
                (i > 0).then_some(SpanId([1; 8])),
                if i == 0 { "vigil" } else { "stage" },
                "vigil",
                start_us + i64::from(i) * 10,
                start_us + 1_000,
            );
            span.annotations
                .insert("seq".into(), AnnotationValue::Number(f64::from(seq)));
            span
        })
        .collect()
}

#[test]
fn get_collects_a_trace_from_several_batches_sorted_by_start() {
    let dir = tempfile::tempdir().unwrap();
    let store = TraceStore::open(dir.path(), options()).unwrap();
    let spans = trace(1, T0, 4);
    let other = trace(2, T0, 2);
    // Later parts first, interleaved with another trace, across a roll.
    store
        .append(&[spans[3].clone(), other[0].clone(), spans[2].clone()])
        .unwrap();
    store.roll().unwrap();
    store
        .append(&[spans[0].clone(), other[1].clone(), spans[1].clone()])
        .unwrap();
    assert_eq!(store.get(spans[0].trace_id).unwrap(), spans);
    assert_eq!(store.get(other[0].trace_id).unwrap(), other);
    assert!(store.get(TraceId([9; 16])).unwrap().is_empty());
}

/// A trace prepared where it was recorded is stored as its spans are:
/// the same records, found by `get` and `search`, the same map facts.
#[test]
fn prepared_traces_store_what_their_spans_store() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let by_spans = TraceStore::open(a.path(), options()).unwrap();
    let prepared = TraceStore::open(b.path(), options()).unwrap();
    let traces: Vec<Vec<Span>> = (1..=5).map(|i| trace(i, T0 + i64::from(i), 3)).collect();
    let mut root = traces[2][0].clone();
    root.set_status(500);
    root.cause = Some("boom".into());
    root.metadata
        .insert("scores".into(), serde_json::json!([0.25]));
    let mut third = traces[2].clone();
    third[0] = root;
    let traces = [&traces[..2], &[third], &traces[3..]].concat();
    let all: Vec<Span> = traces.concat();
    by_spans.append(&all).unwrap();
    let mut ready = PreparedTraces::new();
    for t in &traces {
        assert!(ready.push(t));
    }
    assert!(!ready.push(&[]));
    assert_eq!((ready.traces(), ready.spans()), (5, 15));
    // Two appends of one batch each, the second after a clear: a cleared
    // batch holds nothing of the first.
    let mut first = PreparedTraces::new();
    for t in &traces[..2] {
        first.push(t);
    }
    assert_eq!(prepared.append_prepared(&first).unwrap(), 6);
    first.clear();
    assert!(first.is_empty());
    assert_eq!(prepared.append_prepared(&first).unwrap(), 0);
    for t in &traces[2..] {
        first.push(t);
    }
    assert_eq!(prepared.append_prepared(&first).unwrap(), 9);
    for t in &traces {
        assert_eq!(prepared.get(t[0].trace_id).unwrap(), *t);
        assert_eq!(
            prepared.get(t[0].trace_id).unwrap(),
            by_spans.get(t[0].trace_id).unwrap()
        );
    }
    let everything = |store: &TraceStore| {
        store
            .search(T0 - 1, T0 + HOUR_US, |_| true, 100, None)
            .unwrap()
            .summaries
    };
    assert_eq!(everything(&prepared), everything(&by_spans));
    assert_eq!(everything(&prepared).len(), 5);
    let faults = prepared
        .search(T0 - 1, T0 + HOUR_US, |s| s.fault, 100, None)
        .unwrap()
        .summaries;
    assert_eq!(faults.len(), 1);
    assert_eq!(faults[0].trace_id, traces[2][0].trace_id);
    let facts = ready.map_spans();
    assert_eq!(facts.len(), 15);
    assert!(
        facts
            .iter()
            .zip(&all)
            .all(|(f, s)| *f == crate::service_map::MapSpan::from(s))
    );
    assert_eq!(prepared.stats().spans, by_spans.stats().spans);
}

#[test]
fn get_finds_ids_from_elsewhere_through_the_id_index() {
    let dir = tempfile::tempdir().unwrap();
    let store = TraceStore::open(dir.path(), options()).unwrap();
    // A random-looking id: its first bytes are no time near the data.
    let mut span = Span::new(
        TraceId([0xf3; 16]),
        SpanId([1; 8]),
        None,
        "a",
        "b",
        T0,
        T0 + 5,
    );
    span.cause = Some("boom".into());
    for i in 0..50 {
        store.append(&trace(i, T0 + i64::from(i), 3)).unwrap();
        if i == 20 {
            store.append(std::slice::from_ref(&span)).unwrap();
            store.roll().unwrap();
        }
    }
    assert_eq!(store.get(span.trace_id).unwrap(), vec![span]);
}

#[test]
fn search_pages_newest_first_without_gaps_or_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let store = TraceStore::open(dir.path(), options()).unwrap();
    for i in 0..200u32 {
        store
            .append(&trace(i, T0 + i64::from(i) * 1_000_000, 2))
            .unwrap();
        if i % 37 == 0 {
            store.roll().unwrap();
        }
    }
    let even = |s: &TraceSummary| matches!(s.annotations.first(), Some((_, AnnotationValue::Number(n))) if (*n as u32).is_multiple_of(2));
    // Traces 20..180 by time; even ones only.
    let (from, to) = (T0 + 20 * 1_000_000, T0 + 180 * 1_000_000);
    let mut seen = Vec::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let page = store.search(from, to, even, 7, cursor).unwrap();
        assert!(page.summaries.len() <= 7);
        seen.extend(page.summaries.iter().map(|s| s.start_us));
        pages += 1;
        // The cursor survives a trip through its text form.
        cursor = match page.next {
            Some(c) => Some(c.to_string().parse().unwrap()),
            None => break,
        };
        assert!(pages < 100, "paging does not end");
    }
    let want: Vec<i64> = (20..180)
        .rev()
        .filter(|i| i % 2 == 0)
        .map(|i| T0 + i64::from(i) * 1_000_000)
        .collect();
    assert_eq!(seen, want);
    assert!(pages >= 80 / 7);
    assert!(matches!(
        "c2.1.0".parse::<Cursor>(),
        Err(StoreError::BadCursor(_))
    ));
}

#[test]
fn search_merges_the_parts_of_a_trace_in_one_segment() {
    let dir = tempfile::tempdir().unwrap();
    let store = TraceStore::open(dir.path(), options()).unwrap();
    let mut spans = trace(5, T0, 3);
    spans[2].service = "redis".into();
    spans[2].fault = true;
    store.append(&spans[1..]).unwrap();
    store.append(&trace(6, T0 + 5, 1)).unwrap();
    store.append(&spans[..1]).unwrap();
    let page = store
        .search(T0 - 1, T0 + HOUR_US, |s| s.fault, 10, None)
        .unwrap();
    assert_eq!(page.summaries.len(), 1);
    let s = &page.summaries[0];
    assert_eq!(s.trace_id, spans[0].trace_id);
    assert_eq!((s.spans, s.name.as_ref(), s.start_us), (3, "vigil", T0));
    assert_eq!(s.services, ["redis", "vigil"]);
    let all = store
        .search(T0 - 1, T0 + HOUR_US, |_| true, 10, None)
        .unwrap();
    assert_eq!(all.summaries.len(), 2);
    assert_eq!(
        all.summaries[0].trace_id, spans[0].trace_id,
        "latest part first"
    );
    assert_eq!(all.next, None);
}

#[test]
fn a_search_opens_only_the_segments_of_its_time_range() {
    let dir = tempfile::tempdir().unwrap();
    let store = TraceStore::open(dir.path(), options()).unwrap();
    for hour in 0..5u32 {
        for i in 0..10 {
            store
                .append(&trace(hour * 100 + i, T0 + i64::from(hour) * HOUR_US, 2))
                .unwrap();
        }
        store.roll().unwrap();
    }
    let start = T0 + 4 * HOUR_US;
    let before = std::time::Instant::now();
    let page = store
        .search(start, start + HOUR_US, |_| true, 100, None)
        .unwrap();
    assert_eq!(page.summaries.len(), 10);
    assert!(page.summaries.iter().all(|s| s.start_us >= start));
    // And the segment log's scan stats confirm older ones stay closed.
    let stats = store
        .summaries
        .scan(start, start + HOUR_US, |_| {
            std::ops::ControlFlow::Continue(())
        })
        .unwrap();
    assert_eq!(stats.segments_opened, 1);
    let _ = before;
}

#[test]
fn retention_drops_old_segments_by_age_and_by_size() {
    let dir = tempfile::tempdir().unwrap();
    let store = TraceStore::open(
        dir.path(),
        StoreOptions {
            retain_age: Duration::from_secs(2 * 86_400),
            ..options()
        },
    )
    .unwrap();
    let day = 24 * HOUR_US;
    let mut ids = Vec::new();
    for d in 0..5i64 {
        let t = trace(d as u32, T0 + d * day, 3);
        ids.push(t[0].trace_id);
        store.append(&t).unwrap();
        store.roll().unwrap();
    }
    let deleted = store.expire(T0 + 4 * day).unwrap();
    assert_eq!(deleted, 4, "days 0 and 1, spans and summaries");
    assert!(store.get(ids[1]).unwrap().is_empty());
    assert_eq!(store.get(ids[2]).unwrap().len(), 3);
    let stats = store.stats();
    assert_eq!((stats.spans, stats.expired_spans), (9, 6));
    assert_eq!(stats.oldest_us, Some(T0 + 2 * day));
    assert_eq!(stats.expired_segments, 4);
    let page = store.search(0, i64::MAX, |_| true, 10, None).unwrap();
    assert_eq!(page.summaries.len(), 3);
    drop(store);

    // A cap one byte under the current size drops the oldest day only.
    let before = TraceStore::open(dir.path(), options())
        .unwrap()
        .stats()
        .bytes;
    let store = TraceStore::open(
        dir.path(),
        StoreOptions {
            retain_bytes: Some(before - 1),
            ..options()
        },
    )
    .unwrap();
    assert_eq!(store.expire(T0 + 4 * day).unwrap(), 2);
    assert!(store.stats().bytes < before);
    assert!(store.get(ids[2]).unwrap().is_empty());
    assert_eq!(store.get(ids[3]).unwrap().len(), 3);
    assert_eq!(store.stats().spans, 6);
    let page = store.search(0, i64::MAX, |_| true, 10, None).unwrap();
    assert_eq!(page.summaries.len(), 2);
}

#[test]
fn a_reopened_store_keeps_everything_and_rebuilds_lost_id_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let traces: Vec<Vec<Span>> = (0..30).map(|i| trace(i, T0 + i64::from(i), 3)).collect();
    {
        let store = TraceStore::open(dir.path(), options()).unwrap();
        for (i, t) in traces.iter().enumerate() {
            store.append(t).unwrap();
            if i == 10 {
                store.roll().unwrap();
            }
        }
        store.sync().unwrap();
    }
    // Lose every persisted id index: the next open rebuilds them.
    for seg in ids::listed(&dir.path().join("ids")) {
        ids::remove(&dir.path().join("ids"), seg);
    }
    let store = TraceStore::open(dir.path(), options()).unwrap();
    for t in &traces {
        assert_eq!(&store.get(t[0].trace_id).unwrap(), t);
    }
    assert!(!ids::listed(&dir.path().join("ids")).is_empty());
    let stats = store.stats();
    assert_eq!((stats.spans, stats.summaries, stats.traces), (90, 30, 30));
    let page = store.search(0, i64::MAX, |_| true, 100, None).unwrap();
    assert_eq!(page.summaries.len(), 30);
    // Appends go on after the reopen.
    let more = trace(99, T0 + 99, 2);
    store.append(&more).unwrap();
    assert_eq!(store.get(more[0].trace_id).unwrap(), more);
}

#[test]
fn a_torn_tail_is_cut_on_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let t = trace(1, T0, 3);
    {
        let store = TraceStore::open(dir.path(), options()).unwrap();
        store.append(&t).unwrap();
        store.sync().unwrap();
    }
    let seg = std::fs::read_dir(dir.path().join("spans"))
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|e| e == "seg"))
        .unwrap();
    let mut f = std::fs::OpenOptions::new().append(true).open(&seg).unwrap();
    std::io::Write::write_all(&mut f, &[0x40, 0, 0, 0, 1, 2, 3]).unwrap();
    drop(f);
    let store = TraceStore::open(dir.path(), options()).unwrap();
    assert_eq!(store.get(t[0].trace_id).unwrap(), t);
    let more = trace(2, T0 + 1, 1);
    store.append(&more).unwrap();
    assert_eq!(store.get(more[0].trace_id).unwrap(), more);
}

#[test]
fn readers_run_beside_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(TraceStore::open(dir.path(), options()).unwrap());
    let writer = {
        let store = std::sync::Arc::clone(&store);
        std::thread::spawn(move || {
            for i in 0..300u32 {
                store.append(&trace(i, T0 + i64::from(i), 4)).unwrap();
                if i % 100 == 0 {
                    store.roll().unwrap();
                }
            }
        })
    };
    let mut seen = HashSet::new();
    loop {
        let done = writer.is_finished();
        let page = store.search(0, i64::MAX, |_| true, 1000, None).unwrap();
        for s in &page.summaries {
            // A summary is written after its spans: get always finds them.
            assert_eq!(store.get(s.trace_id).unwrap().len(), 4);
            seen.insert(s.trace_id);
        }
        if done {
            assert_eq!((page.summaries.len(), seen.len()), (300, 300));
            break;
        }
    }
    writer.join().unwrap();
}

#[test]
fn get_falls_back_to_every_segment_when_an_id_only_looks_like_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let store = TraceStore::open(dir.path(), options()).unwrap();
    // Its first 4 bytes read as a second 3 hours after the span started,
    // so the time-limited probe skips the segment that holds it.
    let id = TraceId::from_parts(((T0 + 3 * HOUR_US) / 1_000_000) as u32, [0x77; 12]);
    let span = Span::new(id, SpanId([1; 8]), None, "a", "b", T0, T0 + 5);
    store.append(std::slice::from_ref(&span)).unwrap();
    store.roll().unwrap();
    store.append(&trace(1, T0 + 3 * HOUR_US, 2)).unwrap();
    assert_eq!(store.vigil_time_bound(&id), Some(T0 + 2 * HOUR_US));
    assert!(
        store
            .find_runs(ids::key(&id), Some(T0 + 2 * HOUR_US))
            .is_empty()
    );
    assert_eq!(store.get(id).unwrap(), vec![span]);
}

/// A scan hands out, in append order, the spans starting in its window
/// that were appended before its mark, across sealed and active segments.
#[test]
fn scan_spans_stops_at_its_window_and_its_mark() {
    let dir = tempfile::tempdir().unwrap();
    let store = TraceStore::open(dir.path(), options()).unwrap();
    let early = trace(1, T0 - 2 * HOUR_US, 2);
    let first = trace(2, T0, 3);
    let second = trace(3, T0 + 10, 2);
    store.append(&early).unwrap();
    store.append(&first).unwrap();
    store.roll().unwrap();
    store.append(&second).unwrap();
    let mark = store.spans_end();
    store.append(&trace(4, T0 + 20, 2)).unwrap();

    let mut seen = Vec::new();
    let n = store
        .scan_spans(T0 - HOUR_US, T0 + HOUR_US, mark, |s| {
            seen.push(s);
            ControlFlow::Continue(())
        })
        .unwrap();
    let want: Vec<Span> = first.iter().chain(&second).cloned().collect();
    assert_eq!(seen, want);
    assert_eq!(n, 5);

    let mut taken = 0;
    store
        .scan_spans(i64::MIN, i64::MAX, store.spans_end(), |_| {
            taken += 1;
            if taken == 3 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .unwrap();
    assert_eq!(taken, 3, "a break stops the scan");
}

/// Segments written when a record held one span (version 1) are still
/// read: by `get` (through a rebuilt id index), by a scan and in the
/// stats, beside records of whole traces appended after them.
#[test]
fn single_span_records_of_older_segments_are_still_read() {
    let dir = tempfile::tempdir().unwrap();
    let old = trace(1, T0, 3);
    {
        let store = TraceStore::open(dir.path(), options()).unwrap();
        let encoded: Vec<Vec<u8>> = old
            .iter()
            .map(|span| {
                let mut buf = Vec::new();
                codec::encode_span(&mut buf, span);
                buf
            })
            .collect();
        let records: Vec<(i64, &[u8])> = old
            .iter()
            .zip(&encoded)
            .map(|(span, buf)| (span.start_us, buf.as_slice()))
            .collect();
        store.spans.append_batch(&records, Durability::Os).unwrap();
        store.sync().unwrap();
    }
    // Reopened, the active segment's id index is rebuilt from its records.
    let store = TraceStore::open(dir.path(), options()).unwrap();
    let new = trace(2, T0 + 5, 2);
    store.append(&new).unwrap();
    assert_eq!(store.get(old[0].trace_id).unwrap(), old);
    assert_eq!(store.get(new[0].trace_id).unwrap(), new);
    assert_eq!(store.stats().spans, 5);
    let mut seen = 0;
    let n = store
        .scan_spans(i64::MIN, i64::MAX, store.spans_end(), |_| {
            seen += 1;
            ControlFlow::Continue(())
        })
        .unwrap();
    assert_eq!((n, seen), (5, 5));
}
