//! Tokens of the query language. The parser pulls them one at a time, and
//! asks for a regular expression where one may stand (after `like`, `=~` or
//! `parse f`), since `/` elsewhere divides.

use super::ast::{Span, TimeUnit};
use super::error::QueryError;

/// A token and the byte offset where it starts.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub tok: Tok,
    pub start: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    /// A bare name or keyword: `status`, `@message`, `a.b`, `arr.0`.
    Ident(String),
    /// A backticked name: never a keyword.
    Quoted(String),
    Int(i64),
    Float(f64),
    Span(Span),
    Str(String),
    Pipe,
    Comma,
    LParen,
    RParen,
    LBracket,
    RBracket,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Match,
    Plus,
    Minus,
    Star,
    Slash,
    Percent,
    Caret,
    Eof,
}

impl Tok {
    /// How an error names the token.
    pub fn describe(&self) -> String {
        match self {
            Tok::Ident(s) => format!("`{s}`"),
            Tok::Quoted(s) => format!("`{s}`"),
            Tok::Int(n) => format!("number {n}"),
            Tok::Float(n) => format!("number {n}"),
            Tok::Span(s) => format!("time span {s}"),
            Tok::Str(_) => "a string".to_owned(),
            Tok::Eof => "end of query".to_owned(),
            other => format!("`{}`", other.symbol()),
        }
    }

    fn symbol(&self) -> &'static str {
        match self {
            Tok::Pipe => "|",
            Tok::Comma => ",",
            Tok::LParen => "(",
            Tok::RParen => ")",
            Tok::LBracket => "[",
            Tok::RBracket => "]",
            Tok::Eq => "=",
            Tok::Ne => "!=",
            Tok::Lt => "<",
            Tok::Le => "<=",
            Tok::Gt => ">",
            Tok::Ge => ">=",
            Tok::Match => "=~",
            Tok::Plus => "+",
            Tok::Minus => "-",
            Tok::Star => "*",
            Tok::Slash => "/",
            Tok::Percent => "%",
            Tok::Caret => "^",
            _ => "?",
        }
    }
}

/// Characters that may start a bare name.
pub(crate) fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == '@'
}

/// Characters that may continue a bare name.
pub(crate) fn is_ident_continue(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '@'
}

pub(crate) struct Lexer<'s> {
    src: &'s str,
    pos: usize,
}

impl<'s> Lexer<'s> {
    pub fn new(src: &'s str) -> Self {
        Lexer { src, pos: 0 }
    }

    /// The 1-based character column of a byte offset.
    pub fn column(&self, offset: usize) -> usize {
        let end = offset.min(self.src.len());
        self.src
            .get(..end)
            .map_or(end, |prefix| prefix.chars().count())
            + 1
    }

    pub fn error(&self, offset: usize, expected: &str, found: String) -> QueryError {
        QueryError::Syntax {
            column: self.column(offset),
            expected: expected.to_owned(),
            found,
        }
    }

    fn rest(&self) -> &'s str {
        self.src.get(self.pos..).unwrap_or("")
    }

    fn peek_char(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek_char()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn skip_trivia(&mut self) {
        while let Some(c) = self.peek_char() {
            if c.is_whitespace() {
                self.bump();
            } else if c == '#' {
                while let Some(c) = self.bump() {
                    if c == '\n' {
                        break;
                    }
                }
            } else {
                break;
            }
        }
    }

    pub fn next_token(&mut self) -> Result<Token, QueryError> {
        self.skip_trivia();
        let start = self.pos;
        let Some(c) = self.bump() else {
            return Ok(Token {
                tok: Tok::Eof,
                start,
            });
        };
        let tok = match c {
            '|' => Tok::Pipe,
            ',' => Tok::Comma,
            '(' => Tok::LParen,
            ')' => Tok::RParen,
            '[' => Tok::LBracket,
            ']' => Tok::RBracket,
            '+' => Tok::Plus,
            '-' => Tok::Minus,
            '*' => Tok::Star,
            '/' => Tok::Slash,
            '%' => Tok::Percent,
            '^' => Tok::Caret,
            '=' => match self.peek_char() {
                Some('~') => {
                    self.bump();
                    Tok::Match
                }
                Some('=') => {
                    self.bump();
                    Tok::Eq
                }
                _ => Tok::Eq,
            },
            '!' => {
                if self.peek_char() == Some('=') {
                    self.bump();
                    Tok::Ne
                } else {
                    return Err(self.error(start, "`!=`", "`!`".to_owned()));
                }
            }
            '<' => {
                if self.peek_char() == Some('=') {
                    self.bump();
                    Tok::Le
                } else {
                    Tok::Lt
                }
            }
            '>' => {
                if self.peek_char() == Some('=') {
                    self.bump();
                    Tok::Ge
                } else {
                    Tok::Gt
                }
            }
            '"' | '\'' => Tok::Str(self.string(start, c)?),
            '`' => {
                let body_start = self.pos;
                loop {
                    match self.bump() {
                        Some('`') => break,
                        Some(_) => {}
                        None => {
                            return Err(self.error(
                                start,
                                "a closing backtick",
                                "end of query".to_owned(),
                            ));
                        }
                    }
                }
                let name = self.src.get(body_start..self.pos - 1).unwrap_or("");
                if name.is_empty() {
                    return Err(self.error(start, "a field name", "``".to_owned()));
                }
                Tok::Quoted(name.to_owned())
            }
            c if c.is_ascii_digit() => self.number(start)?,
            c if is_ident_start(c) => {
                while self.peek_char().is_some_and(is_ident_continue) {
                    self.bump();
                }
                Tok::Ident(self.src.get(start..self.pos).unwrap_or("").to_owned())
            }
            other => {
                return Err(self.error(start, "a name, value or operator", format!("`{other}`")));
            }
        };
        Ok(Token { tok, start })
    }

    fn string(&mut self, start: usize, quote: char) -> Result<String, QueryError> {
        let mut out = String::new();
        loop {
            match self.bump() {
                None => {
                    return Err(self.error(start, "a closing quote", "end of query".to_owned()));
                }
                Some(c) if c == quote => return Ok(out),
                Some('\\') => match self.bump() {
                    Some('n') => out.push('\n'),
                    Some('t') => out.push('\t'),
                    Some('r') => out.push('\r'),
                    Some(c @ ('\\' | '"' | '\'')) => out.push(c),
                    Some(c) => {
                        out.push('\\');
                        out.push(c);
                    }
                    None => {
                        return Err(self.error(
                            start,
                            "a closing quote",
                            "end of query".to_owned(),
                        ));
                    }
                },
                Some(c) => out.push(c),
            }
        }
    }

    fn number(&mut self, start: usize) -> Result<Tok, QueryError> {
        let digits = |lx: &mut Self| {
            while lx.peek_char().is_some_and(|c| c.is_ascii_digit()) {
                lx.bump();
            }
        };
        digits(self);
        let mut is_float = false;
        let rest = self.rest().as_bytes();
        if rest.first() == Some(&b'.') && rest.get(1).is_some_and(u8::is_ascii_digit) {
            self.bump();
            digits(self);
            is_float = true;
        }
        let rest = self.rest().as_bytes();
        let exp_digits = match (rest.first(), rest.get(1), rest.get(2)) {
            (Some(b'e' | b'E'), Some(d), _) if d.is_ascii_digit() => Some(1),
            (Some(b'e' | b'E'), Some(b'+' | b'-'), Some(d)) if d.is_ascii_digit() => Some(2),
            _ => None,
        };
        if let Some(skip) = exp_digits {
            for _ in 0..skip {
                self.bump();
            }
            digits(self);
            is_float = true;
        }
        let text = self.src.get(start..self.pos).unwrap_or("");
        let unit_start = self.pos;
        while self.peek_char().is_some_and(|c| c.is_ascii_alphabetic()) {
            self.bump();
        }
        let unit = self.src.get(unit_start..self.pos).unwrap_or("");
        if !unit.is_empty() {
            let expected = "a time span such as 5m (units ms s m h d w mo q y)";
            let found = format!("`{text}{unit}`");
            let unit = TimeUnit::from_suffix(unit)
                .ok_or_else(|| self.error(start, expected, found.clone()))?;
            let count = match text.parse::<u32>() {
                Ok(n) if n > 0 && !is_float => n,
                _ => return Err(self.error(start, expected, found)),
            };
            return Ok(Tok::Span(Span { count, unit }));
        }
        if !is_float && let Ok(n) = text.parse::<i64>() {
            return Ok(Tok::Int(n));
        }
        text.parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .map(Tok::Float)
            .ok_or_else(|| self.error(start, "a finite number", format!("`{text}`")))
    }

    /// Reads a `/regex/` whose opening slash is at `slash`; returns its source.
    pub fn regex(&mut self, slash: usize) -> Result<String, QueryError> {
        self.pos = slash + 1;
        let body_start = self.pos;
        loop {
            match self.bump() {
                None => {
                    return Err(self.error(slash, "a closing `/`", "end of query".to_owned()));
                }
                Some('\\') => {
                    self.bump();
                }
                Some('/') => break,
                Some(_) => {}
            }
        }
        Ok(self
            .src
            .get(body_start..self.pos - 1)
            .unwrap_or("")
            .to_owned())
    }
}
