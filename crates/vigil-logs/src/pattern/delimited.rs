//! Space-delimited patterns: the message is split into tokens (whitespace
//! separates; `"…"` and `[…]` are one token each, without their quotes or
//! brackets), then matched field by field; `...` absorbs any number of
//! tokens. Without `...` the token count must equal the field count.

use super::PatternError;
use super::ast::Field;
use super::compare::Compiled;

#[derive(Debug)]
pub(crate) struct DelimitedMatcher {
    fields: Vec<Slot>,
    /// Names of the named fields in order; position `i` is `$(i + 1)`.
    pub(crate) names: Vec<String>,
}

#[derive(Debug)]
enum Slot {
    Ellipsis,
    /// `slot` indexes `names` (and the match's values).
    Named {
        slot: usize,
        any_of: Vec<Vec<Compiled>>,
    },
}

impl Slot {
    fn accepts(&self, token: &str) -> bool {
        match self {
            Slot::Ellipsis => true,
            Slot::Named { any_of, .. } => {
                any_of.is_empty()
                    || any_of
                        .iter()
                        .any(|all| all.iter().all(|c| c.on_token(token)))
            }
        }
    }
}

impl DelimitedMatcher {
    pub(crate) fn new(fields: &[Field]) -> Result<Self, PatternError> {
        let mut names = Vec::new();
        let mut slots = Vec::with_capacity(fields.len());
        for field in fields {
            slots.push(match field {
                Field::Ellipsis => Slot::Ellipsis,
                Field::Named { name, any_of } => {
                    names.push(name.clone());
                    Slot::Named {
                        slot: names.len() - 1,
                        any_of: any_of
                            .iter()
                            .map(|all| all.iter().map(Compiled::new).collect())
                            .collect::<Result<_, _>>()?,
                    }
                }
            });
        }
        Ok(DelimitedMatcher {
            fields: slots,
            names,
        })
    }

    /// The value of each named field when `message` matches.
    pub(crate) fn matches<'m>(&self, message: &'m str) -> Option<Vec<&'m str>> {
        let mut tokens = Vec::with_capacity(16);
        tokenize(message, &mut tokens);
        let mut values = vec![""; self.names.len()];
        // The wildcard-matching walk with backtracking to the last `...`:
        // each field takes one token, so re-trying after the last ellipsis
        // with one more token absorbed finds a match if there is one, in
        // O(fields × tokens) at worst. Bindings made before the last
        // ellipsis are final; those after it are rewritten on each retry.
        let (mut f, mut t) = (0, 0);
        let mut retry: Option<(usize, usize)> = None;
        while t < tokens.len() {
            match self.fields.get(f) {
                Some(Slot::Ellipsis) => {
                    f += 1;
                    retry = Some((f, t));
                    continue;
                }
                Some(slot @ Slot::Named { slot: i, .. }) => {
                    let token = tokens.get(t).copied().unwrap_or_default();
                    if slot.accepts(token) {
                        if let Some(v) = values.get_mut(*i) {
                            *v = token;
                        }
                        f += 1;
                        t += 1;
                        continue;
                    }
                }
                None => {}
            }
            let (rf, rt) = retry?;
            retry = Some((rf, rt + 1));
            f = rf;
            t = rt + 1;
        }
        let rest_are_ellipses = self
            .fields
            .get(f..)
            .is_some_and(|rest| rest.iter().all(|s| matches!(s, Slot::Ellipsis)));
        rest_are_ellipses.then_some(values)
    }
}

/// Splits on ASCII whitespace; a token that opens with `"` runs to the next
/// `"`, one that opens with `[` to the next `]` (or to the end when it is
/// never closed), and is kept without them.
pub(crate) fn tokenize<'m>(message: &'m str, out: &mut Vec<&'m str>) {
    let b = message.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let Some(&c) = b.get(i) else { break };
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let close = match c {
            b'"' => Some(b'"'),
            b'[' => Some(b']'),
            _ => None,
        };
        let (start, end, next) = match close {
            Some(close) => {
                let start = i + 1;
                match b.get(start..).and_then(|r| memchr::memchr(close, r)) {
                    Some(n) => (start, start + n, start + n + 1),
                    None => (start, b.len(), b.len()),
                }
            }
            None => {
                let n = b
                    .get(i..)
                    .and_then(|r| r.iter().position(u8::is_ascii_whitespace))
                    .unwrap_or(b.len() - i);
                (i, i + n, i + n)
            }
        };
        // Boundaries sit on ASCII bytes, so they are char boundaries.
        if let Some(token) = message.get(start..end) {
            out.push(token);
        }
        i = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_and_brackets_make_one_token() {
        let mut out = Vec::new();
        tokenize(
            r#"127.0.0.1 - frank [10/Oct/2000:13:25:15 -0700] "GET /apache_pb.gif HTTP/1.0" 200 1534"#,
            &mut out,
        );
        assert_eq!(
            out,
            [
                "127.0.0.1",
                "-",
                "frank",
                "10/Oct/2000:13:25:15 -0700",
                "GET /apache_pb.gif HTTP/1.0",
                "200",
                "1534"
            ]
        );
        out.clear();
        tokenize("  a\t\"\" [open ended", &mut out);
        assert_eq!(out, ["a", "", "open ended"]);
        out.clear();
        tokenize("é \"ü", &mut out);
        assert_eq!(out, ["é", "ü"]);
    }
}
