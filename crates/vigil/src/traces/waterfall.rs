//! `vigil traces get`'s waterfall: a trace's spans as a tree, one line
//! each, with a bar placing the span on the trace's timeline. Built for
//! any input: spans whose parent is missing go to the top level, a cycle of
//! parent ids is broken where it is entered, and times that run backwards
//! count as zero-length.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use serde::Deserialize;
use serde_json::Value;

use super::{Http, flags, ms, request, value_text};

/// Cells of the timeline bar.
pub(super) const WIDTH: usize = 40;

/// Characters of a cause shown before it is cut.
const CAUSE_CHARS: usize = 60;

/// A trace as `GET /api/traces/{id}` returns it.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct Trace {
    trace_id: String,
    spans: Vec<Span>,
}

/// A span, read leniently: a missing field is empty, an unknown one ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Span {
    span_id: String,
    parent_id: Option<String>,
    name: String,
    service: String,
    remote: bool,
    start_us: i64,
    end_us: i64,
    http: Option<Http>,
    error: bool,
    throttle: bool,
    fault: bool,
    cause: Option<String>,
    annotations: BTreeMap<String, Value>,
}

impl Span {
    /// The end, never before the start.
    fn end(&self) -> i64 {
        self.end_us.max(self.start_us)
    }
}

/// Why a span is drawn at the top level although it names a parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Detached {
    /// It has no parent, or the trace holds it.
    No,
    /// Its parent is not in the trace.
    Orphan,
    /// Its parent chain loops back to it.
    Cycle,
}

/// The spans in drawing order: (index, depth, why detached).
fn order(spans: &[Span]) -> Vec<(usize, usize, Detached)> {
    let mut by_id: HashMap<&str, usize> = HashMap::new();
    for (i, span) in spans.iter().enumerate() {
        by_id.entry(span.span_id.as_str()).or_insert(i);
    }
    let by_start = |list: &mut Vec<usize>| list.sort_by_key(|&i| (spans[i].start_us, i));
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); spans.len()];
    let mut roots = Vec::new();
    for (i, span) in spans.iter().enumerate() {
        match span.parent_id.as_deref().map(|p| by_id.get(p).copied()) {
            Some(Some(parent)) if parent != i => children[parent].push(i),
            Some(None) => roots.push((i, Detached::Orphan)),
            _ => roots.push((i, Detached::No)),
        }
    }
    children.iter_mut().for_each(by_start);
    roots.sort_by_key(|&(i, _)| (spans[i].start_us, i));
    // Spans on a cycle are reached from no root: each remaining one, by
    // start, roots its own subtree.
    let mut rest: Vec<usize> = (0..spans.len()).collect();
    by_start(&mut rest);
    let mut visited = vec![false; spans.len()];
    let mut out = Vec::with_capacity(spans.len());
    let starts = roots
        .into_iter()
        .chain(rest.into_iter().map(|i| (i, Detached::Cycle)));
    for (root, detached) in starts {
        // An explicit stack: a chain of ten thousand spans is no recursion.
        let mut stack = vec![(root, 0usize, detached)];
        while let Some((i, depth, detached)) = stack.pop() {
            if std::mem::replace(&mut visited[i], true) {
                continue;
            }
            out.push((i, depth, detached));
            for &child in children[i].iter().rev() {
                stack.push((child, depth + 1, Detached::No));
            }
        }
    }
    out
}

/// `width` cells with the span's cells filled: from its offset, as long as
/// its duration, at least one, always inside the bar.
fn bar(offset_us: i64, duration_us: i64, total_us: i64, width: usize) -> String {
    if width == 0 {
        return String::new();
    }
    let w = width as i128;
    let (from, to) = if total_us <= 0 {
        (0, 1)
    } else {
        let total = i128::from(total_us);
        let start = i128::from(offset_us).clamp(0, total);
        let end = (start + i128::from(duration_us.max(0))).min(total);
        let from = (start * w / total).min(w - 1);
        let to = ((end * w + total - 1) / total).clamp(from + 1, w);
        (from, to)
    };
    (0..w)
        .map(|cell| {
            if (from..to).contains(&cell) {
                '█'
            } else {
                ' '
            }
        })
        .collect()
}

/// The flags, cause, annotations and detachment of a span, briefly.
fn notes(span: &Span, detached: Detached) -> String {
    let mut parts = Vec::new();
    if span.fault || span.error || span.throttle {
        parts.push(flags(span.fault, span.error, span.throttle));
    }
    if let Some(cause) = span.cause.as_deref().filter(|c| !c.is_empty()) {
        let mut short: String = cause.chars().take(CAUSE_CHARS).collect();
        if cause.chars().count() > CAUSE_CHARS {
            short.push('…');
        }
        parts.push(format!("cause: {short}"));
    }
    for (key, value) in &span.annotations {
        parts.push(format!("{key}={}", value_text(value)));
    }
    let parent = span.parent_id.as_deref().unwrap_or_default();
    match detached {
        Detached::No => {}
        Detached::Orphan => parts.push(format!("(parent {parent} not in the trace)")),
        Detached::Cycle => parts.push(format!("(parent {parent} loops back: cycle)")),
    }
    parts.join("  ")
}

/// The waterfall of `trace`, a bar of `width` cells per span.
pub(super) fn render(trace: &Trace, width: usize) -> String {
    let spans = &trace.spans;
    let rows = order(spans);
    let root = rows.first().map(|&(i, _, _)| &spans[i]);
    let start = spans.iter().map(|s| s.start_us).min().unwrap_or(0);
    let end = spans.iter().map(Span::end).max().unwrap_or(start);
    let total = end.saturating_sub(start);
    let mut out = format!(
        "trace {}  {} ms  {} span{}",
        trace.trace_id,
        ms(total),
        spans.len(),
        if spans.len() == 1 { "" } else { "s" }
    );
    if let Some(http) = root.and_then(|r| r.http.as_ref()) {
        let status = http.status.map(|s| format!(" {s}")).unwrap_or_default();
        let _ = write!(out, "  {}{status}", request(Some(http), ""));
    }
    out = out.trim_end().to_owned();
    out.push('\n');
    let root_service = root.map(|r| r.service.as_str()).unwrap_or_default();
    let names: Vec<String> = rows
        .iter()
        .map(|&(i, depth, _)| {
            let span = &spans[i];
            let mut name = format!("{}{}", "  ".repeat(depth), span.name);
            if span.remote {
                name.push_str(" [remote]");
            }
            if !span.service.is_empty() && span.service != root_service {
                let _ = write!(name, " ({})", span.service);
            }
            name
        })
        .collect();
    let name_width = names
        .iter()
        .map(|n| n.chars().count())
        .chain([4])
        .max()
        .unwrap_or(4);
    let _ = writeln!(
        out,
        "{:<name_width$}  {:>10}  {:>10}  TIMELINE",
        "SPAN", "START ms", "DUR ms"
    );
    for (name, &(i, _, detached)) in names.iter().zip(&rows) {
        let span = &spans[i];
        let offset = span.start_us.saturating_sub(start);
        let duration = span.end().saturating_sub(span.start_us);
        let line = format!(
            "{name:<name_width$}  {:>10}  {:>10}  |{}|  {}",
            ms(offset),
            ms(duration),
            bar(offset, duration, total, width),
            notes(span, detached)
        );
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trace(json: &str) -> Trace {
        serde_json::from_str(json).unwrap()
    }

    /// A fraud request: decode, score (calling a remote feature store that
    /// timed out), encode; listed out of order.
    const FIXTURE: &str = r#"{"trace_id": "5759e988bd862e3fe1be46a994272793", "spans": [
        {"trace_id": "5759e988bd862e3fe1be46a994272793", "span_id": "00000000000000e0",
         "parent_id": "00000000000000a0", "name": "encode", "service": "vigil",
         "kind": "internal", "start_us": 1764633608000, "end_us": 1764633610000},
        {"trace_id": "5759e988bd862e3fe1be46a994272793", "span_id": "00000000000000c0",
         "parent_id": "00000000000000a0", "name": "score", "service": "vigil",
         "kind": "internal", "start_us": 1764633601500, "end_us": 1764633608000,
         "annotations": {"rows": 3.0}},
        {"trace_id": "5759e988bd862e3fe1be46a994272793", "span_id": "00000000000000a0",
         "name": "vigil", "service": "vigil", "kind": "server",
         "start_us": 1764633600000, "end_us": 1764633610000,
         "http": {"method": "POST", "url": "/v2/models/fraud/infer", "status": 200},
         "annotations": {"model": "fraud", "cached": false}},
        {"trace_id": "5759e988bd862e3fe1be46a994272793", "span_id": "00000000000000d0",
         "parent_id": "00000000000000c0", "name": "feature-store", "service": "features",
         "kind": "client", "remote": true, "start_us": 1764633602000, "end_us": 1764633606000,
         "http": {"method": "GET", "url": "http://features/v1/user/7", "status": 504},
         "fault": true, "cause": "upstream timed out after 4 s"},
        {"trace_id": "5759e988bd862e3fe1be46a994272793", "span_id": "00000000000000b0",
         "parent_id": "00000000000000a0", "name": "decode", "service": "vigil",
         "kind": "internal", "start_us": 1764633600500, "end_us": 1764633601500}
    ]}"#;

    #[test]
    fn the_fixture_renders_as_an_indented_waterfall() {
        let text = render(&trace(FIXTURE), WIDTH);
        let expected = [
            "trace 5759e988bd862e3fe1be46a994272793  10.000 ms  5 spans  POST /v2/models/fraud/infer 200",
            "SPAN                                     START ms      DUR ms  TIMELINE",
            "vigil                                       0.000      10.000  |████████████████████████████████████████|  cached=false  model=fraud",
            "  decode                                    0.500       1.000  |  ████                                  |",
            "  score                                     1.500       6.500  |      ██████████████████████████        |  rows=3",
            "    feature-store [remote] (features)       2.000       4.000  |        ████████████████                |  F  cause: upstream timed out after 4 s",
            "  encode                                    8.000       2.000  |                                ████████|",
        ];
        assert_eq!(text.lines().collect::<Vec<_>>(), expected);
    }

    #[test]
    fn orphans_go_to_the_top_level_and_cycles_are_broken() {
        let text = render(
            &trace(
                r#"{"trace_id": "t", "spans": [
                {"span_id": "a", "name": "root", "start_us": 0, "end_us": 100},
                {"span_id": "b", "parent_id": "zz", "name": "orphan", "start_us": 10, "end_us": 20},
                {"span_id": "c", "parent_id": "d", "name": "loop-c", "start_us": 30, "end_us": 40},
                {"span_id": "d", "parent_id": "c", "name": "loop-d", "start_us": 50, "end_us": 60},
                {"span_id": "e", "parent_id": "e", "name": "self", "start_us": 70, "end_us": 80},
                {"span_id": "f", "parent_id": "b", "name": "under-orphan", "start_us": 15, "end_us": 16}
            ]}"#,
            ),
            10,
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 8, "{text}");
        let names: Vec<&str> = lines[2..]
            .iter()
            .map(|l| l.split("  ").next().unwrap_or_default())
            .collect();
        // The self-parented span counts as a root; the c/d loop is entered
        // at its earlier span, c, with d under it.
        assert_eq!(
            names,
            ["root", "orphan", "", "self", "loop-c", ""],
            "{text}"
        );
        assert!(lines[3].ends_with("(parent zz not in the trace)"), "{text}");
        assert!(lines[4].starts_with("  under-orphan"), "{text}");
        assert!(
            lines[6].starts_with("loop-c") && lines[6].ends_with("(parent d loops back: cycle)")
        );
        assert!(lines[7].starts_with("  loop-d"), "{text}");
    }

    #[test]
    fn bars_stay_inside_at_the_extremes() {
        assert_eq!(bar(0, 0, 1000, 10), "█         ");
        assert_eq!(bar(0, 1000, 1000, 10), "██████████");
        assert_eq!(bar(1000, 0, 1000, 10), "         █");
        assert_eq!(bar(999, 1, 1000, 10), "         █");
        assert_eq!(bar(0, 1, 1000, 10), "█         ");
        assert_eq!(bar(500, 10_000, 1000, 10), "     █████");
        assert_eq!(bar(-50, 5, 1000, 10), "█         ");
        assert_eq!(bar(0, 0, 0, 4), "█   ");
        assert_eq!(bar(i64::MAX, i64::MAX, i64::MAX, 4), "   █");
        assert_eq!(bar(0, 5, 5, 0), "");
    }

    #[test]
    fn odd_traces_render_without_panicking() {
        let empty = render(&trace(r#"{"trace_id": "t", "spans": []}"#), WIDTH);
        assert_eq!(
            empty,
            "trace t  0.000 ms  0 spans\nSPAN    START ms      DUR ms  TIMELINE\n"
        );
        let backwards = render(
            &trace(
                r#"{"trace_id": "t", "spans": [
                {"span_id": "a", "name": "x", "start_us": 100, "end_us": 50},
                {"span_id": "a", "name": "dup", "parent_id": "a", "start_us": -9223372036854775808, "end_us": 9223372036854775807}
            ]}"#,
            ),
            8,
        );
        // The duplicate id is the first span's child; x runs backwards, so
        // it is zero-length, drawn at its offset.
        assert_eq!(
            backwards.lines().collect::<Vec<_>>(),
            [
                "trace t  9223372036854776.000 ms  2 spans",
                "SPAN     START ms      DUR ms  TIMELINE",
                "x      9223372036854776.000       0.000  |       █|",
                "  dup       0.000  9223372036854776.000  |████████|",
            ]
        );
    }
}
