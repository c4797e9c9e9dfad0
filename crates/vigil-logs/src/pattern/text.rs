//! Text terms: case-sensitive substring tests, one `memmem` finder per term
//! built when the pattern is compiled.

use memchr::memmem::Finder;

use super::ast::{TermKind, TextTerm};

/// Required terms must all appear, at least one `?` term must appear (when
/// there are any), and no excluded term may appear.
#[derive(Debug)]
pub(crate) struct TextMatcher {
    required: Vec<Finder<'static>>,
    any_of: Vec<Finder<'static>>,
    excluded: Vec<Finder<'static>>,
}

impl TextMatcher {
    pub(crate) fn new(terms: &[TextTerm]) -> Self {
        let finders = |kind| {
            terms
                .iter()
                .filter(|t| t.kind == kind)
                .map(|t| Finder::new(t.text.as_bytes()).into_owned())
                .collect()
        };
        TextMatcher {
            required: finders(TermKind::Required),
            any_of: finders(TermKind::AnyOf),
            excluded: finders(TermKind::Excluded),
        }
    }

    pub(crate) fn is_match(&self, message: &str) -> bool {
        let m = message.as_bytes();
        self.required.iter().all(|f| f.find(m).is_some())
            && (self.any_of.is_empty() || self.any_of.iter().any(|f| f.find(m).is_some()))
            && !self.excluded.iter().any(|f| f.find(m).is_some())
    }
}
