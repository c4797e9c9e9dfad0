//! Precompiled glob matchers: `*` is any run of characters (empty too),
//! `?` exactly one character. Matching does not allocate; a pattern of
//! only `*` matches without looking at the text, and patterns without `?`
//! and with at most one `*` at an end are a plain comparison.

/// A compiled matcher pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Glob {
    kind: Kind,
    /// ASCII case-insensitive (the pattern is stored lowercased).
    fold: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    /// Only `*`s.
    Any,
    /// No wildcard.
    Exact(Box<[u8]>),
    /// `literal*`.
    Prefix(Box<[u8]>),
    /// `*literal`.
    Suffix(Box<[u8]>),
    /// Anything else: a literal head and tail compared first, then the
    /// part from the first to the last wildcard matched by backtracking.
    Wild {
        pattern: Box<[u8]>,
        head: usize,
        tail: usize,
    },
}

impl Glob {
    /// Compiles `pattern`; `fold` makes it ASCII case-insensitive.
    pub(crate) fn new(pattern: &str, fold: bool) -> Glob {
        let owned = if fold {
            pattern.to_ascii_lowercase()
        } else {
            pattern.to_owned()
        };
        let bytes = owned.into_bytes();
        let stars = bytes.iter().filter(|b| **b == b'*').count();
        let has_q = bytes.contains(&b'?');
        let kind = if !bytes.is_empty() && stars == bytes.len() {
            Kind::Any
        } else if has_q || stars > 1 {
            wild_kind(bytes)
        } else if stars == 0 {
            Kind::Exact(bytes.into())
        } else if bytes.last() == Some(&b'*') {
            Kind::Prefix(bytes[..bytes.len() - 1].into())
        } else if bytes.first() == Some(&b'*') {
            Kind::Suffix(bytes[1..].into())
        } else {
            wild_kind(bytes)
        };
        Glob { kind, fold }
    }

    /// Whether `text` matches.
    pub(crate) fn matches(&self, text: &str) -> bool {
        let t = text.as_bytes();
        match &self.kind {
            Kind::Any => true,
            Kind::Exact(p) => self.eq(t, p),
            Kind::Prefix(p) => t.len() >= p.len() && self.eq(&t[..p.len()], p),
            Kind::Suffix(p) => t.len() >= p.len() && self.eq(&t[t.len() - p.len()..], p),
            Kind::Wild {
                pattern,
                head,
                tail,
            } => {
                let (head, tail) = (*head, *tail);
                let middle = &pattern[head..pattern.len() - tail];
                t.len() >= head + tail
                    && self.eq(&t[..head], &pattern[..head])
                    && self.eq(&t[t.len() - tail..], &pattern[pattern.len() - tail..])
                    && wild(middle, &t[head..t.len() - tail], self.fold)
            }
        }
    }

    fn eq(&self, text: &[u8], pattern: &[u8]) -> bool {
        if self.fold {
            text.eq_ignore_ascii_case(pattern)
        } else {
            text == pattern
        }
    }
}

/// A pattern with wildcards, its literal head and tail measured.
fn wild_kind(bytes: Vec<u8>) -> Kind {
    let is_wild = |b: &u8| *b == b'*' || *b == b'?';
    let head = bytes.iter().position(is_wild).unwrap_or(bytes.len());
    let tail = bytes.iter().rev().position(is_wild).unwrap_or(0);
    Kind::Wild {
        pattern: bytes.into(),
        head,
        tail,
    }
}

/// The classic greedy matcher: on a mismatch, let the last `*` swallow one
/// more character and retry from just after it. Linear in practice,
/// `O(pattern × text)` at worst, and `?` and `*` step over whole UTF-8
/// characters.
fn wild(p: &[u8], t: &[u8], fold: bool) -> bool {
    let (mut pi, mut ti) = (0, 0);
    // (pattern index after the last `*`, text index it resumes from)
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if let Some(&c) = p.get(pi) {
            if c == b'*' {
                pi += 1;
                star = Some((pi, ti));
                continue;
            }
            if c == b'?' {
                pi += 1;
                ti += char_len(t[ti]);
                continue;
            }
            let tc = if fold {
                t[ti].to_ascii_lowercase()
            } else {
                t[ti]
            };
            if c == tc {
                pi += 1;
                ti += 1;
                continue;
            }
        }
        match star {
            Some((after, from)) => {
                let next = from + char_len(t[from]);
                star = Some((after, next));
                pi = after;
                ti = next;
            }
            None => return false,
        }
    }
    p[pi.min(p.len())..].iter().all(|b| *b == b'*')
}

/// The length of the UTF-8 character whose first byte is `b`.
fn char_len(b: u8) -> usize {
    match b {
        0xf0..=0xff => 4,
        0xe0..=0xef => 3,
        0xc0..=0xdf => 2,
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn m(pattern: &str, text: &str) -> bool {
        Glob::new(pattern, false).matches(text)
    }

    #[test]
    fn wildcards_match_as_documented() {
        let cases = [
            ("*", "", true),
            ("*", "/anything", true),
            ("**", "x", true),
            ("/predict", "/predict", true),
            ("/predict", "/predict/", false),
            ("/v1/*", "/v1/", true),
            ("/v1/*", "/v1/models/fraud", true),
            ("/v1/*", "/v2/models", false),
            ("*.json", "a.json", true),
            ("*.json", "a.jsonx", false),
            ("/v?/x", "/v1/x", true),
            ("/v?/x", "/v10/x", false),
            ("/v?/x", "/v/x", false),
            ("/v*/x", "/v/x", true),
            ("a*b*c", "aXbYc", true),
            ("a*b*c", "abc", true),
            ("a*b*c", "acb", false),
            ("*a*a*a*b", "aaaaaaaaaaaaaaaaaaaa", false),
            ("?", "é", true),
            ("??", "é", false),
            ("caf?", "café", true),
            ("*é", "café", true),
            ("a*", "", false),
            ("?*", "", false),
        ];
        for (pattern, text, want) in cases {
            assert_eq!(m(pattern, text), want, "{pattern:?} ~ {text:?}");
        }
    }

    #[test]
    fn folding_is_ascii_case_insensitive() {
        let g = Glob::new("*.Example.COM", true);
        assert!(g.matches("api.example.com"));
        assert!(g.matches("API.EXAMPLE.COM"));
        assert!(Glob::new("get", true).matches("GET"));
        assert!(Glob::new("P?ST", true).matches("post"));
        assert!(Glob::new("po*", true).matches("POST"));
        assert!(!Glob::new("/Predict", false).matches("/predict"));
        assert!(!Glob::new("/P*", false).matches("/predict"));
    }

    fn starred() -> impl Strategy<Value = (String, String)> {
        (
            "[a-z/é.?]{0,20}",
            proptest::collection::vec(any::<(bool, u8)>(), 0..20),
        )
            .prop_map(|(text, cuts)| {
                // Replace random runs of the text by `*` (and single
                // characters by `?`): the glob must still match it.
                let chars: Vec<char> = text.chars().collect();
                let mut glob = String::new();
                let mut i = 0;
                let mut cut = cuts.into_iter();
                while i < chars.len() {
                    match cut.next() {
                        Some((true, n)) => {
                            glob.push('*');
                            i += usize::from(n) % 4;
                        }
                        Some((false, n)) if n % 3 == 0 => {
                            glob.push('?');
                            i += 1;
                        }
                        _ => {
                            glob.push(if chars[i] == '?' { 'x' } else { chars[i] });
                            i += 1;
                        }
                    }
                }
                let text = text.replace('?', "x");
                (glob, text)
            })
    }

    proptest! {
        #[test]
        fn a_glob_cut_from_a_string_matches_it((glob, text) in starred()) {
            prop_assert!(m(&glob, &text), "{glob:?} ~ {text:?}");
            prop_assert!(Glob::new(&glob.to_ascii_uppercase(), true).matches(&text));
        }

        #[test]
        fn a_literal_matches_only_itself(a in "[a-c]{0,6}", b in "[a-c]{0,6}") {
            prop_assert_eq!(m(&a, &b), a == b);
        }

        #[test]
        fn wild_agrees_with_a_reference(p in "[ab*?]{0,8}", t in "[ab]{0,8}") {
            prop_assert_eq!(m(&p, &t), reference(p.as_bytes(), t.as_bytes()), "{} ~ {}", p, t);
        }
    }

    /// Exponential, obviously correct matcher for ASCII.
    fn reference(p: &[u8], t: &[u8]) -> bool {
        match (p.first(), t.first()) {
            (None, _) => t.is_empty(),
            (Some(b'*'), _) => reference(&p[1..], t) || (!t.is_empty() && reference(p, &t[1..])),
            (Some(_), None) => false,
            (Some(b'?'), Some(_)) => reference(&p[1..], &t[1..]),
            (Some(c), Some(d)) => c == d && reference(&p[1..], &t[1..]),
        }
    }
}
