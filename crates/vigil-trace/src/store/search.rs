//! Searching the summaries: newest segment first, each segment read once
//! per page over the part of its time range the query covers, the
//! summaries of one trace within the segment merged before the predicate
//! sees them.
//!
//! Order and merging: "newest first" is the reverse of the order stored
//! (a trace's position is that of its latest summary part), which follows
//! arrival, so nearly the trace start order. Parts of one trace written in
//! several batches of the same summary segment are merged into one
//! summary (see [`merge`]); parts in two segments (a batch written after a
//! roll) come as two summaries. Only parts whose start lies in the
//! queried range take part.
//!
//! A [`Cursor`] is the position below which the next page continues: a
//! page reads only the segments at or before it, so paging never re-reads
//! the newer segments it already returned.

use std::fmt;
use std::ops::ControlFlow;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use vigil_segments::Position;

use super::{Result, StoreError, TraceStore, codec};
use crate::model::{Name, TraceId, TraceSummary};

/// Where the next page of a search starts: opaque, printable and parsable
/// (`c1.<segment>.<offset>`), so it can travel in a URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cursor {
    before: Position,
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "c1.{:x}.{:x}", self.before.segment, self.before.offset)
    }
}

impl FromStr for Cursor {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Cursor> {
        let bad = || StoreError::BadCursor(format!("{s:?} is not a cursor this store gave"));
        let rest = s.strip_prefix("c1.").ok_or_else(bad)?;
        let (segment, offset) = rest.split_once('.').ok_or_else(bad)?;
        Ok(Cursor {
            before: Position {
                segment: u64::from_str_radix(segment, 16).map_err(|_| bad())?,
                offset: u64::from_str_radix(offset, 16).map_err(|_| bad())?,
            },
        })
    }
}

impl Serialize for Cursor {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Cursor {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// One page of a search.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// The matching traces, newest first.
    pub summaries: Vec<TraceSummary>,
    /// Where the next page starts; `None` when there are no more.
    pub next: Option<Cursor>,
}

impl TraceStore {
    /// Up to `limit` traces whose summary parts start in
    /// `start_us..end_us` and match `pred`, newest first, continuing after
    /// `cursor` (from a previous page of the same query). Reads summaries
    /// only, and only from segments whose time range meets the query's.
    pub fn search(
        &self,
        start_us: i64,
        end_us: i64,
        pred: impl Fn(&TraceSummary) -> bool,
        limit: usize,
        cursor: Option<Cursor>,
    ) -> Result<Page> {
        let mut page = Page {
            summaries: Vec::new(),
            next: None,
        };
        if start_us >= end_us || limit == 0 {
            return Ok(page);
        }
        let before = cursor.map_or(
            Position {
                segment: u64::MAX,
                offset: u64::MAX,
            },
            |c| c.before,
        );
        let segments: Vec<(u64, i64, i64)> = self
            .summaries
            .segments()
            .into_iter()
            .filter(|s| s.id < before.segment || (s.id == before.segment && before.offset > 0))
            .filter_map(|s| {
                let (lo, hi) = s.time_range_us?;
                (hi >= start_us && lo < end_us).then_some((s.id, lo, hi))
            })
            .rev()
            .collect();
        for (i, &(segment, lo, hi)) in segments.iter().enumerate() {
            let mut found = self.search_segment(
                segment,
                lo.max(start_us),
                hi.saturating_add(1).min(end_us),
                before,
                &pred,
            )?;
            let room = limit - page.summaries.len();
            if found.len() > room {
                found.truncate(room);
                page.next = found.last().map(|(p, _)| Cursor { before: *p });
                page.summaries.extend(found.into_iter().map(|(_, s)| s));
                return Ok(page);
            }
            page.summaries.extend(found.into_iter().map(|(_, s)| s));
            if page.summaries.len() == limit {
                page.next = (i + 1 < segments.len()).then_some(Cursor {
                    before: Position { segment, offset: 0 },
                });
                return Ok(page);
            }
        }
        Ok(page)
    }

    /// The matching merged traces of one segment whose latest part lies
    /// before `before`, newest first. The parts' bytes are copied out in
    /// one pass, grouped by trace id with a sort, and each trace decoded
    /// (and dropped, when it does not match) in turn, so memory holds raw
    /// bytes rather than 150,000 decoded summaries.
    fn search_segment(
        &self,
        segment: u64,
        from_us: i64,
        to_us: i64,
        before: Position,
        pred: &impl Fn(&TraceSummary) -> bool,
    ) -> Result<Vec<(Position, TraceSummary)>> {
        let mut bytes: Vec<u8> = Vec::new();
        // (trace, position, end of its bytes in `bytes`), in log order.
        let mut parts: Vec<(TraceId, Position, usize)> = Vec::new();
        self.summaries.scan(from_us, to_us, |r| {
            if r.position.segment > segment {
                return ControlFlow::Break(());
            }
            if r.position.segment == segment {
                match codec::peek_trace_id(r.payload) {
                    Some(id) => {
                        bytes.extend_from_slice(r.payload);
                        parts.push((id, r.position, bytes.len()));
                    }
                    None => self.note_corrupt(),
                }
            }
            ControlFlow::Continue(())
        })?;
        let mut order: Vec<(TraceId, u32)> = parts
            .iter()
            .enumerate()
            .map(|(i, p)| (p.0, i as u32))
            .collect();
        // By trace, then log order (the index breaks ties).
        order.sort_unstable();
        let order: Vec<u32> = order.into_iter().map(|(_, i)| i).collect();
        let payload = |i: usize| {
            let start = if i == 0 { 0 } else { parts[i - 1].2 };
            &bytes[start..parts[i].2]
        };
        let mut out = Vec::new();
        let mut scratch = TraceSummary {
            trace_id: TraceId::default(),
            start_us: 0,
            end_us: 0,
            response_time_us: 0,
            service: Name::default(),
            name: Name::default(),
            http: None,
            error: false,
            throttle: false,
            fault: false,
            services: Vec::new(),
            annotations: Vec::new(),
            spans: 0,
        };
        for run in order.chunk_by(|a, b| parts[*a as usize].0 == parts[*b as usize].0) {
            let newest = run.iter().map(|&i| parts[i as usize].1).max();
            let Some(newest) = newest.filter(|p| *p < before) else {
                continue;
            };
            if let [only] = run {
                // One part (the common case): decode into the scratch
                // summary, clone only a match.
                if codec::decode_summary_into(payload(*only as usize), &mut scratch) {
                    if pred(&scratch) {
                        out.push((newest, scratch.clone()));
                    }
                } else {
                    self.note_corrupt();
                }
                continue;
            }
            let mut merged: Option<TraceSummary> = None;
            for &i in run {
                match codec::decode_summary(payload(i as usize)) {
                    Some(part) => match &mut merged {
                        Some(m) => merge(m, part),
                        None => merged = Some(part),
                    },
                    None => self.note_corrupt(),
                }
            }
            if let Some(summary) = merged.filter(|s| pred(s)) {
                out.push((newest, summary));
            }
        }
        out.sort_unstable_by_key(|(p, _)| std::cmp::Reverse(*p));
        Ok(out)
    }

    fn note_corrupt(&self) {
        self.corrupt
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Merges a later part of a trace into `into`: times widen, flags and
/// span counts add up, services and annotations are united (sorted, once
/// each), and the root's fields (service, name, HTTP block, response
/// time) are those of the part that starts first.
pub(crate) fn merge(into: &mut TraceSummary, part: TraceSummary) {
    if part.start_us < into.start_us {
        into.service = part.service;
        into.name = part.name;
        into.http = part.http;
        into.response_time_us = part.response_time_us;
        into.start_us = part.start_us;
    }
    into.end_us = into.end_us.max(part.end_us);
    into.error |= part.error;
    into.throttle |= part.throttle;
    into.fault |= part.fault;
    into.spans = into.spans.saturating_add(part.spans);
    into.services.extend(part.services);
    into.services.sort();
    into.services.dedup();
    for (key, value) in part.annotations {
        if !into
            .annotations
            .iter()
            .any(|(k, v)| *k == key && *v == value)
        {
            into.annotations.push((key, value));
        }
    }
    into.annotations.sort_by(|a, b| a.0.cmp(&b.0));
}
