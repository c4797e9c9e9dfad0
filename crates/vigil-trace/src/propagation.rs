//! Trace-context headers (§6): W3C `traceparent` / `tracestate` and X-Ray's
//! `X-Amzn-Trace-Id`, parsed from and formatted into header values. Pure
//! functions over `Option<&str>`: the HTTP layer reads the headers, this
//! module knows their grammar.
//!
//! A malformed header is ignored (its parser returns `None`), never an
//! error to the client: the request then starts a trace of its own. When a
//! request carries both a valid `traceparent` and a valid
//! `X-Amzn-Trace-Id`, the W3C header wins: it is the standard, and a proxy
//! that adds X-Ray's header in front of a W3C-instrumented service would
//! otherwise cut the caller's trace in two.

use crate::model::{SpanId, TraceId};

/// The longest `tracestate` passed on; a longer one is dropped (W3C asks
/// that at least 512 characters be propagated).
pub const MAX_TRACESTATE_LEN: usize = 512;

/// `traceparent` flags bit 0: the caller sampled the trace.
const SAMPLED_FLAG: u8 = 0x01;

/// The trace context a request brought with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    /// The caller's trace.
    pub trace_id: TraceId,
    /// The caller's span, the parent of the span this request starts
    /// (X-Ray's header may carry a root without a parent).
    pub parent_id: Option<SpanId>,
    /// The caller's sampling decision; `None` when it made none (X-Ray's
    /// `Sampled=?` or no `Sampled`).
    pub sampled: Option<bool>,
    /// The caller's `tracestate`, verbatim, to pass on downstream; only
    /// kept alongside a valid `traceparent` (W3C).
    pub tracestate: Option<String>,
}

/// A parsed W3C `traceparent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    /// The trace (32 hex digits).
    pub trace_id: TraceId,
    /// The caller's span (16 hex digits).
    pub parent_id: SpanId,
    /// The trace flags; bit 0 is "sampled".
    pub flags: u8,
}

impl TraceParent {
    /// Whether the caller sampled the trace (flags bit 0).
    pub fn sampled(&self) -> bool {
        self.flags & SAMPLED_FLAG != 0
    }
}

/// A parsed `X-Amzn-Trace-Id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XRayHeader {
    /// `Root=`.
    pub trace_id: TraceId,
    /// `Parent=`, when given.
    pub parent_id: Option<SpanId>,
    /// `Sampled=1` / `Sampled=0`; `None` for `Sampled=?`, any other value
    /// or no `Sampled`.
    pub sampled: Option<bool>,
}

/// The trace context of a request from its `traceparent`, `tracestate` and
/// `X-Amzn-Trace-Id` header values. A valid `traceparent` wins over X-Ray's
/// header; `tracestate` is kept only with a valid `traceparent` and only
/// when at most [`MAX_TRACESTATE_LEN`] characters long. `None` when neither
/// trace header is present and valid.
pub fn incoming(
    traceparent: Option<&str>,
    tracestate: Option<&str>,
    xray: Option<&str>,
) -> Option<Incoming> {
    if let Some(tp) = traceparent.and_then(parse_traceparent) {
        let tracestate = tracestate
            .map(|s| s.trim_matches(is_ows))
            .filter(|s| !s.is_empty() && s.len() <= MAX_TRACESTATE_LEN)
            .map(str::to_owned);
        return Some(Incoming {
            trace_id: tp.trace_id,
            parent_id: Some(tp.parent_id),
            sampled: Some(tp.sampled()),
            tracestate,
        });
    }
    let x = xray.and_then(parse_xray)?;
    Some(Incoming {
        trace_id: x.trace_id,
        parent_id: x.parent_id,
        sampled: x.sampled,
        tracestate: None,
    })
}

/// Parses `traceparent: 00-<32 hex>-<16 hex>-<2 hex flags>`. Hex digits
/// are lowercase (W3C: uppercase is invalid); version `ff` and all-zero ids
/// are rejected. A version above `00` is read by its first four fields when
/// they are well formed and followed by the end or a `-` (W3C's rule for
/// versions this parser does not know). Does not allocate.
pub fn parse_traceparent(value: &str) -> Option<TraceParent> {
    let b = value.trim_matches(is_ows).as_bytes();
    // 2 + 1 + 32 + 1 + 16 + 1 + 2
    const LEN: usize = 55;
    if b.len() < LEN || b[2] != b'-' || b[35] != b'-' || b[52] != b'-' {
        return None;
    }
    let mut version = [0u8; 1];
    lower_hex(&b[0..2], &mut version)?;
    match version[0] {
        0x00 if b.len() != LEN => return None,
        0xff => return None,
        0x00 => {}
        _ if b.len() > LEN && b[LEN] != b'-' => return None,
        _ => {}
    }
    let mut trace = [0u8; 16];
    let mut span = [0u8; 8];
    let mut flags = [0u8; 1];
    lower_hex(&b[3..35], &mut trace)?;
    lower_hex(&b[36..52], &mut span)?;
    lower_hex(&b[53..55], &mut flags)?;
    if trace == [0; 16] || span == [0; 8] {
        return None;
    }
    Some(TraceParent {
        trace_id: TraceId(trace),
        parent_id: SpanId(span),
        flags: flags[0],
    })
}

/// Parses `X-Amzn-Trace-Id: Root=1-…;Parent=…;Sampled=1`: keys in any
/// order, spaces around `;` and `=` tolerated, unknown keys (`Self=`,
/// `Lineage=`, …) ignored. `Root` is required; a malformed `Root` or
/// `Parent` makes the whole header ignored. Does not allocate.
pub fn parse_xray(value: &str) -> Option<XRayHeader> {
    let mut trace_id = None;
    let mut parent_id = None;
    let mut sampled = None;
    for part in value.split(';') {
        let part = part.trim_matches(is_ows);
        if part.is_empty() {
            continue;
        }
        let (key, val) = part.split_once('=')?;
        let (key, val) = (key.trim_matches(is_ows), val.trim_matches(is_ows));
        if key.eq_ignore_ascii_case("Root") {
            trace_id = Some(TraceId::from_xray(val).ok()?);
        } else if key.eq_ignore_ascii_case("Parent") {
            parent_id = Some(SpanId::from_hex(val).ok()?);
        } else if key.eq_ignore_ascii_case("Sampled") {
            sampled = match val {
                "1" => Some(true),
                "0" => Some(false),
                // `?` asks the receiver to decide; `d` (delegated) too.
                _ => None,
            };
        }
    }
    Some(XRayHeader {
        trace_id: trace_id?,
        parent_id,
        sampled,
    })
}

/// The `traceparent` value (version 00) for a request that `span` of
/// `trace` makes downstream.
pub fn traceparent(trace: TraceId, span: SpanId, sampled: bool) -> String {
    let mut out = String::with_capacity(55);
    out.push_str("00-");
    trace.push_hex(&mut out);
    out.push('-');
    span.push_hex(&mut out);
    out.push_str(if sampled { "-01" } else { "-00" });
    out
}

/// The `X-Amzn-Trace-Id` value: `Root=…`, then `Parent=…` when given, then
/// `Sampled=1`, `Sampled=0` or `Sampled=?` (no decision).
pub fn xray_header(trace: TraceId, parent: Option<SpanId>, sampled: Option<bool>) -> String {
    let sampled = match sampled {
        Some(true) => "1",
        Some(false) => "0",
        None => "?",
    };
    let mut out = String::with_capacity(76);
    out.push_str("Root=");
    trace.push_xray(&mut out);
    if let Some(parent) = parent {
        out.push_str(";Parent=");
        parent.push_hex(&mut out);
    }
    out.push_str(";Sampled=");
    out.push_str(sampled);
    out
}

/// HTTP's optional whitespace.
fn is_ows(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// Decodes exactly `out.len() * 2` lowercase hex digits.
fn lower_hex(digits: &[u8], out: &mut [u8]) -> Option<()> {
    if digits.len() != out.len() * 2 {
        return None;
    }
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        *byte = (lower_nibble(pair[0])? << 4) | lower_nibble(pair[1])?;
    }
    Some(())
}

fn lower_nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    const XRAY: &str = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";

    fn tid(hex: &str) -> TraceId {
        TraceId::from_hex(hex).unwrap()
    }

    fn sid(hex: &str) -> SpanId {
        SpanId::from_hex(hex).unwrap()
    }

    #[test]
    fn a_w3c_traceparent_parses() {
        let tp = parse_traceparent(TP).unwrap();
        assert_eq!(tp.trace_id, tid("4bf92f3577b34da6a3ce929d0e0e4736"));
        assert_eq!(tp.parent_id, sid("00f067aa0ba902b7"));
        assert_eq!(tp.flags, 1);
        assert!(tp.sampled());
        let not = parse_traceparent(&TP.replace("-01", "-00")).unwrap();
        assert!(!not.sampled());
        // Other flag bits are kept, only bit 0 is "sampled".
        let other = parse_traceparent(&TP.replace("-01", "-02")).unwrap();
        assert_eq!((other.flags, other.sampled()), (2, false));
        assert!(parse_traceparent(&format!("  {TP}\t")).is_some());
    }

    #[test]
    fn malformed_traceparents_are_ignored() {
        let bad = [
            "",
            "00",
            // Uppercase hex is invalid per W3C.
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0A",
            "0A-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            // All-zero ids.
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            // Version ff is forbidden.
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            // Version 00 has exactly four fields.
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            // Wrong lengths and separators.
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
            "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
            "00-4bf92f3577b34da6a3ce929d0e0e47z6-00f067aa0ba902b7-01",
            // Non-ASCII of the right byte length must not panic.
            "00-4bf92f3577b34da6a3ce929d0e0e47é-00f067aa0ba902b7-01",
            "é0-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ];
        for value in bad {
            assert_eq!(parse_traceparent(value), None, "{value:?}");
        }
    }

    #[test]
    fn a_higher_version_is_read_by_its_first_four_fields() {
        let v1 = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert!(parse_traceparent(v1).is_some());
        let more = format!("{}-what-comes-next", v1.replace("01-4b", "cc-4b"));
        let tp = parse_traceparent(&more).unwrap();
        assert_eq!(tp.parent_id, sid("00f067aa0ba902b7"));
        // The fifth field must be separated by a dash.
        assert_eq!(parse_traceparent(&format!("{v1}x")), None);
    }

    #[test]
    fn tracestate_is_kept_verbatim_when_short_enough() {
        let state = "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE";
        let inc = incoming(Some(TP), Some(state), None).unwrap();
        assert_eq!(inc.tracestate.as_deref(), Some(state));
        let long = "a".repeat(MAX_TRACESTATE_LEN + 1);
        assert_eq!(
            incoming(Some(TP), Some(&long), None).unwrap().tracestate,
            None
        );
        let max = "a".repeat(MAX_TRACESTATE_LEN);
        assert_eq!(
            incoming(Some(TP), Some(&max), None).unwrap().tracestate,
            Some(max)
        );
        // Without a valid traceparent, tracestate is meaningless.
        assert_eq!(incoming(Some("junk"), Some(state), None), None);
        let from_xray = incoming(None, Some(state), Some(XRAY)).unwrap();
        assert_eq!(from_xray.tracestate, None);
    }

    #[test]
    fn an_xray_header_parses() {
        let x = parse_xray(XRAY).unwrap();
        assert_eq!(x.trace_id, tid("5759e988bd862e3fe1be46a994272793"));
        assert_eq!(x.parent_id, Some(sid("53995c3f42cd8ad8")));
        assert_eq!(x.sampled, Some(true));
    }

    #[test]
    fn xray_keys_come_in_any_order_with_spaces_and_unknown_keys() {
        let x = parse_xray(
            " Sampled=0 ; Self=1-67891233-abcdef012345678912345678 ;Parent=53995c3f42cd8ad8; \
             Lineage=a87bd80c:1|68fd508a:5 ; Root = 1-5759e988-bd862e3fe1be46a994272793 ;",
        )
        .unwrap();
        assert_eq!(x.trace_id, tid("5759e988bd862e3fe1be46a994272793"));
        assert_eq!(x.parent_id, Some(sid("53995c3f42cd8ad8")));
        assert_eq!(x.sampled, Some(false));
    }

    #[test]
    fn xray_sampled_question_mark_or_missing_is_no_decision() {
        let root = "Root=1-5759e988-bd862e3fe1be46a994272793";
        for value in [
            format!("{root};Sampled=?"),
            root.to_owned(),
            format!("{root};Sampled=d"),
        ] {
            let x = parse_xray(&value).unwrap();
            assert_eq!((x.sampled, x.parent_id), (None, None), "{value}");
        }
    }

    #[test]
    fn malformed_xray_headers_are_ignored() {
        for value in [
            "",
            "Parent=53995c3f42cd8ad8;Sampled=1",
            "Root=5759e988bd862e3fe1be46a994272793",
            "Root=1-5759e988-bd862e3fe1be46a99427279",
            "Root=1-00000000-000000000000000000000000",
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad",
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=0000000000000000",
            "Root=1-5759e988-bd862e3fe1be46a994272793;garbage",
            "Root=1-5759e988-bd862e3fe1bé46a99427279",
        ] {
            assert_eq!(parse_xray(value), None, "{value:?}");
        }
    }

    #[test]
    fn w3c_wins_over_xray_and_either_alone_works() {
        let both = incoming(Some(TP), None, Some(XRAY)).unwrap();
        assert_eq!(both.trace_id, tid("4bf92f3577b34da6a3ce929d0e0e4736"));
        let invalid_w3c = incoming(Some("00-bad"), None, Some(XRAY)).unwrap();
        assert_eq!(
            invalid_w3c.trace_id,
            tid("5759e988bd862e3fe1be46a994272793")
        );
        assert_eq!(invalid_w3c.sampled, Some(true));
        let w3c = incoming(Some(TP), None, Some("nonsense")).unwrap();
        assert_eq!(w3c.parent_id, Some(sid("00f067aa0ba902b7")));
        assert_eq!(incoming(None, None, None), None);
        assert_eq!(incoming(Some("x"), Some("y"), Some("z")), None);
    }

    #[test]
    fn formats_are_the_documented_ones() {
        let trace = tid("5759e988bd862e3fe1be46a994272793");
        let span = sid("53995c3f42cd8ad8");
        assert_eq!(
            traceparent(trace, span, true),
            "00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-01"
        );
        assert_eq!(xray_header(trace, Some(span), Some(true)), XRAY);
        assert_eq!(
            xray_header(trace, None, None),
            "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=?"
        );
    }

    fn ids() -> impl Strategy<Value = (TraceId, SpanId)> {
        (any::<[u8; 16]>(), any::<[u8; 8]>())
            .prop_filter("ids are not all zero", |(t, s)| {
                *t != [0; 16] && *s != [0; 8]
            })
            .prop_map(|(t, s)| (TraceId(t), SpanId(s)))
    }

    proptest! {
        #[test]
        fn traceparent_round_trips((trace, span) in ids(), sampled in any::<bool>()) {
            let value = traceparent(trace, span, sampled);
            let tp = parse_traceparent(&value).unwrap();
            prop_assert_eq!((tp.trace_id, tp.parent_id, tp.sampled()), (trace, span, sampled));
            let inc = incoming(Some(&value), None, None).unwrap();
            prop_assert_eq!(inc.sampled, Some(sampled));
        }

        #[test]
        fn xray_round_trips(
            (trace, span) in ids(),
            parent in any::<bool>(),
            sampled in proptest::option::of(any::<bool>()),
        ) {
            let parent = parent.then_some(span);
            let x = parse_xray(&xray_header(trace, parent, sampled)).unwrap();
            prop_assert_eq!((x.trace_id, x.parent_id, x.sampled), (trace, parent, sampled));
        }

        #[test]
        fn arbitrary_headers_never_panic(a in ".{0,80}", b in ".{0,80}", c in ".{0,80}") {
            let _ = incoming(Some(&a), Some(&b), Some(&c));
        }
    }
}
