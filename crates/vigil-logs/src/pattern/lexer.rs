//! A character cursor over the pattern text with the lexical pieces the
//! three sub-languages share: quoted strings, bare values, numbers, regex
//! literals, and errors that know their column.

use super::PatternError;

/// Characters a regex between `%`s may hold besides ASCII letters and
/// digits: the symbols and operators CloudWatch Logs documents (no `(`/`)`,
/// so no groups; no spaces; no multi-byte characters).
const REGEX_EXTRA: &str = ":_#=@/;,-^$?[]{}|\\*+.";

/// Bytes a compiled regex may take, so that `%a{1000}{1000}%` is refused at
/// parse time instead of eating memory.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

pub(crate) struct Cursor<'s> {
    src: &'s str,
    pos: usize,
}

impl<'s> Cursor<'s> {
    pub(crate) fn new(src: &'s str) -> Self {
        Cursor { src, pos: 0 }
    }

    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    pub(crate) fn rest(&self) -> &'s str {
        self.src.get(self.pos..).unwrap_or("")
    }

    pub(crate) fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    pub(crate) fn at_end(&self) -> bool {
        self.pos >= self.src.len()
    }

    pub(crate) fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    /// Consumes `s` if the rest starts with it.
    pub(crate) fn eat(&mut self, s: &str) -> bool {
        if self.rest().starts_with(s) {
            self.pos += s.len();
            true
        } else {
            false
        }
    }

    /// Consumes a keyword (ASCII case-insensitive) that is not followed by
    /// another letter, digit or `_`.
    pub(crate) fn eat_keyword(&mut self, word: &str) -> bool {
        let rest = self.rest();
        let Some(head) = rest.get(..word.len()) else {
            return false;
        };
        if !head.eq_ignore_ascii_case(word) {
            return false;
        }
        let next = rest.get(word.len()..).and_then(|r| r.chars().next());
        if next.is_some_and(super::ast::is_word_char) {
            return false;
        }
        self.pos += word.len();
        true
    }

    /// Skips whitespace; reports whether any was skipped.
    pub(crate) fn skip_ws(&mut self) -> bool {
        let start = self.pos;
        while self.peek().is_some_and(char::is_whitespace) {
            self.bump();
        }
        self.pos > start
    }

    /// Consumes the longest run of characters satisfying `keep`.
    pub(crate) fn take_while(&mut self, keep: impl Fn(char) -> bool) -> &'s str {
        let start = self.pos;
        while self.peek().is_some_and(&keep) {
            self.bump();
        }
        self.src.get(start..self.pos).unwrap_or("")
    }

    /// The 1-based column, in characters, of byte offset `pos`.
    pub(crate) fn column_at(&self, pos: usize) -> usize {
        self.src.get(..pos).map_or(1, |s| s.chars().count() + 1)
    }

    pub(crate) fn error_at(&self, pos: usize, message: impl Into<String>) -> PatternError {
        PatternError::new(self.column_at(pos), message)
    }

    /// `expected {what}, found {the next character or end of pattern}`.
    pub(crate) fn expected(&self, what: &str) -> PatternError {
        self.error_at(self.pos, format!("expected {what}, found {}", self.found()))
    }

    pub(crate) fn found(&self) -> String {
        match self.peek() {
            None => "end of pattern".to_owned(),
            Some(c) => format!("{:?}", c.to_string()),
        }
    }

    /// A `"…"` string, the cursor on its opening quote; `\"` and `\\` are
    /// escapes, any other backslash is kept as written.
    pub(crate) fn quoted(&mut self) -> Result<String, PatternError> {
        let open = self.pos;
        self.bump();
        let mut out = String::new();
        loop {
            match self.bump() {
                None => {
                    return Err(self.error_at(
                        open,
                        "expected a closing '\"' for this quote, found end of pattern",
                    ));
                }
                Some('"') => return Ok(out),
                Some('\\') => match self.peek() {
                    Some(c @ ('"' | '\\')) => {
                        self.bump();
                        out.push(c);
                    }
                    _ => out.push('\\'),
                },
                Some(c) => out.push(c),
            }
        }
    }

    /// A `%…%` regex, the cursor on its opening `%`: checks the restricted
    /// character set and that it compiles; returns the text between the `%`s.
    pub(crate) fn regex(&mut self) -> Result<String, PatternError> {
        let open = self.pos;
        self.bump();
        let start = self.pos;
        loop {
            match self.peek() {
                None => {
                    return Err(self.error_at(
                        open,
                        "expected a closing \"%\" for this regex, found end of pattern",
                    ));
                }
                Some('%') => break,
                Some(c) if c.is_ascii_alphanumeric() || REGEX_EXTRA.contains(c) => {
                    self.bump();
                }
                Some(c) => {
                    return Err(self.error_at(
                        self.pos,
                        format!(
                            "{:?} is not allowed in a regex (letters, digits, {REGEX_EXTRA} only; no groups)",
                            c.to_string()
                        ),
                    ));
                }
            }
        }
        let body = self.src.get(start..self.pos).unwrap_or("").to_owned();
        self.bump();
        if body.is_empty() {
            return Err(self.error_at(open, "expected a regex between the \"%\"s, found \"%%\""));
        }
        compile_regex(&body).map_err(|message| self.error_at(start, message))?;
        Ok(body)
    }
}

/// Compiles a pattern's regex with the size and nesting bounds.
pub(crate) fn compile_regex(body: &str) -> Result<regex::Regex, String> {
    if body.contains(['(', ')']) {
        return Err("groups are not allowed in a regex".to_owned());
    }
    regex::RegexBuilder::new(body)
        .size_limit(REGEX_SIZE_LIMIT)
        .nest_limit(32)
        .build()
        .map_err(|err| match err {
            regex::Error::CompiledTooBig(_) => "regex too large once compiled".to_owned(),
            other => format!("invalid regex: {}", first_line(&other.to_string())),
        })
}

fn first_line(s: &str) -> String {
    // The regex crate's syntax errors span several lines with an ASCII
    // pointer; the last line says what is wrong.
    s.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or(s)
        .trim()
        .trim_start_matches("error: ")
        .to_owned()
}

/// Characters of an unquoted value (`4*`, `123.123.*`, `-1.5e3`, `UpdateTrail`).
pub(crate) fn is_bare_char(c: char) -> bool {
    c.is_alphanumeric() || "_.-*:/@+#".contains(c)
}

/// Parses `-?digits(.digits)?([eE][+-]?digits)?` into a finite number;
/// `None` for anything else (so `inf`, `NaN`, `1.`, `0x10` are not numbers).
pub(crate) fn parse_number(s: &str) -> Option<f64> {
    let b = s.as_bytes();
    let mut i = 0;
    if b.first() == Some(&b'-') {
        i += 1;
    }
    let digits = |i: &mut usize| {
        let start = *i;
        while b.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i > start
    };
    if !digits(&mut i) {
        return None;
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        if !digits(&mut i) {
            return None;
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if !digits(&mut i) {
            return None;
        }
    }
    if i != b.len() {
        return None;
    }
    s.parse::<f64>().ok().filter(|v| v.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_strict() {
        assert_eq!(parse_number("2000"), Some(2000.0));
        assert_eq!(parse_number("-1.5e3"), Some(-1500.0));
        assert_eq!(parse_number("1E+2"), Some(100.0));
        for bad in [
            "", "-", "1.", ".5", "inf", "NaN", "1e", "0x10", "1e999", "4*", "1 ",
        ] {
            assert_eq!(parse_number(bad), None, "{bad}");
        }
    }

    #[test]
    fn regex_character_set_is_enforced() {
        let mut c = Cursor::new("%ERROR|WARN%");
        assert_eq!(c.regex().as_deref(), Ok("ERROR|WARN"));
        assert!(c.at_end());
        let err = Cursor::new("%some thing%").regex().err();
        assert_eq!(err.map(|e| e.column), Some(6));
        assert!(Cursor::new("%so!%").regex().is_err());
        assert!(Cursor::new("%é%").regex().is_err());
        assert!(Cursor::new("%%").regex().is_err());
        assert!(Cursor::new("%abc").regex().is_err());
        assert!(Cursor::new("%[a%").regex().is_err());
        assert!(Cursor::new("%a{1000}{1000}{1000}%").regex().is_err());
    }

    #[test]
    fn quoted_strings_unescape_quote_and_backslash_only() {
        let mut c = Cursor::new(r#""a \"b\" \\ \n""#);
        assert_eq!(c.quoted().as_deref(), Ok(r#"a "b" \ \n"#));
        let err = Cursor::new("\"abc").quoted();
        assert!(err.is_err());
    }
}
