//! Splits a filter into tokens on demand, each with its 1-based column in
//! characters, so errors point at the right place in any script.

use super::FilterError;

/// A comparison operator as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Cmp {
    pub(super) fn symbol(self) -> &'static str {
        match self {
            Cmp::Eq => "=",
            Cmp::Ne => "!=",
            Cmp::Lt => "<",
            Cmp::Le => "<=",
            Cmp::Gt => ">",
            Cmp::Ge => ">=",
        }
    }
}

/// What a token is.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Kind {
    /// A key or keyword: letters, digits, `_` and `.`, not starting with a
    /// digit or a dot.
    Word,
    /// A finite number.
    Number(f64),
    /// A double-quoted string, unescaped.
    Str(String),
    LParen,
    RParen,
    Cmp(Cmp),
    /// `&&`.
    AndAnd,
    /// `||`.
    OrOr,
    /// `!` not followed by `=`.
    Bang,
    /// The end of the input.
    End,
}

/// A token: its kind, its text as written and its column.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Token<'a> {
    pub kind: Kind,
    pub text: &'a str,
    pub column: usize,
}

impl Token<'_> {
    /// How an error message names it.
    pub fn describe(&self) -> String {
        match &self.kind {
            Kind::End => "the end of the filter".to_owned(),
            Kind::Str(_) => format!("the string {}", self.text),
            _ => format!("\"{}\"", self.text),
        }
    }

    /// Whether it is the word `keyword`, in any case.
    pub fn is_keyword(&self, keyword: &str) -> bool {
        self.kind == Kind::Word && self.text.eq_ignore_ascii_case(keyword)
    }
}

/// The token stream of one filter.
#[derive(Debug)]
pub(super) struct Lexer<'a> {
    src: &'a str,
    /// Byte offset of the next character.
    pos: usize,
    /// 1-based column (in characters) of the next character.
    column: usize,
}

impl<'a> Lexer<'a> {
    pub fn new(src: &'a str) -> Lexer<'a> {
        Lexer {
            src,
            pos: 0,
            column: 1,
        }
    }

    fn peek_char(&self) -> Option<char> {
        self.src[self.pos..].chars().next()
    }

    fn peek_second(&self) -> Option<char> {
        self.src[self.pos..].chars().nth(1)
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek_char()?;
        self.pos += c.len_utf8();
        self.column += 1;
        Some(c)
    }

    /// The next token; `Kind::End` once the input is used up (and again on
    /// every later call).
    pub fn next_token(&mut self) -> Result<Token<'a>, FilterError> {
        while self.peek_char().is_some_and(char::is_whitespace) {
            self.bump();
        }
        let start = self.pos;
        let column = self.column;
        let Some(c) = self.bump() else {
            return Ok(Token {
                kind: Kind::End,
                text: "",
                column,
            });
        };
        let kind = match c {
            '(' => Kind::LParen,
            ')' => Kind::RParen,
            '=' => Kind::Cmp(Cmp::Eq),
            '<' | '>' => {
                let eq = self.peek_char() == Some('=');
                if eq {
                    self.bump();
                }
                Kind::Cmp(match (c, eq) {
                    ('<', false) => Cmp::Lt,
                    ('<', true) => Cmp::Le,
                    ('>', false) => Cmp::Gt,
                    _ => Cmp::Ge,
                })
            }
            '!' => {
                if self.peek_char() == Some('=') {
                    self.bump();
                    Kind::Cmp(Cmp::Ne)
                } else {
                    Kind::Bang
                }
            }
            '&' | '|' => {
                if self.peek_char() != Some(c) {
                    return Err(FilterError::new(
                        column,
                        format!("expected \"{c}{c}\", found a single '{c}'"),
                    ));
                }
                self.bump();
                if c == '&' { Kind::AndAnd } else { Kind::OrOr }
            }
            '"' => Kind::Str(self.string(column)?),
            c if c.is_ascii_digit()
                || ((c == '-' || c == '.')
                    && self.peek_char().is_some_and(|d| d.is_ascii_digit())) =>
            {
                self.number(c, start, column)?
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                while self
                    .peek_char()
                    .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
                {
                    self.bump();
                }
                Kind::Word
            }
            c => {
                return Err(FilterError::new(
                    column,
                    format!("unexpected character '{c}'"),
                ));
            }
        };
        Ok(Token {
            kind,
            text: &self.src[start..self.pos],
            column,
        })
    }

    /// The rest of a string literal whose opening quote is at `column`.
    fn string(&mut self, column: usize) -> Result<String, FilterError> {
        let mut out = String::new();
        loop {
            match self.bump() {
                None => {
                    return Err(FilterError::new(
                        column,
                        "unterminated string: expected a closing '\"'",
                    ));
                }
                Some('"') => return Ok(out),
                Some('\\') => {
                    let escape_column = self.column - 1;
                    match self.bump() {
                        Some(c @ ('"' | '\\')) => out.push(c),
                        Some(c) => {
                            return Err(FilterError::new(
                                escape_column,
                                format!("unknown escape '\\{c}': only \\\" and \\\\ are allowed"),
                            ));
                        }
                        None => {
                            return Err(FilterError::new(
                                column,
                                "unterminated string: expected a closing '\"'",
                            ));
                        }
                    }
                }
                Some(c) => out.push(c),
            }
        }
    }

    /// A number whose first character `first` (a digit, `-` or `.`) is
    /// consumed.
    fn number(&mut self, first: char, start: usize, column: usize) -> Result<Kind, FilterError> {
        let digits = |lexer: &mut Lexer<'_>| {
            while lexer.peek_char().is_some_and(|c| c.is_ascii_digit()) {
                lexer.bump();
            }
        };
        digits(self);
        if first != '.' && self.peek_char() == Some('.') {
            self.bump();
            digits(self);
        }
        if matches!(self.peek_char(), Some('e' | 'E')) {
            let sign = matches!(self.peek_second(), Some('+' | '-'));
            let after = self.src[self.pos..].chars().nth(if sign { 2 } else { 1 });
            if after.is_some_and(|c| c.is_ascii_digit()) {
                self.bump();
                if sign {
                    self.bump();
                }
                digits(self);
            }
        }
        if self
            .peek_char()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '.')
        {
            while self
                .peek_char()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
            {
                self.bump();
            }
            return Err(FilterError::new(
                column,
                format!("malformed number \"{}\"", &self.src[start..self.pos]),
            ));
        }
        let text = &self.src[start..self.pos];
        match text.parse::<f64>() {
            Ok(v) if v.is_finite() => Ok(Kind::Number(v)),
            _ => Err(FilterError::new(
                column,
                format!("number \"{text}\" is out of range"),
            )),
        }
    }
}
