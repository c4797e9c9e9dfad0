//! Tokens of an expression, each with its 1-based column (in characters).

use std::fmt;

use super::error::ParseError;

/// The longest expression accepted, in characters.
pub const MAX_EXPRESSION_CHARS: usize = 1024;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    Num(f64),
    Word(String),
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    Op(&'static str),
    End,
}

impl fmt::Display for Tok {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tok::Num(n) => write!(f, "`{n}`"),
            Tok::Word(w) => write!(f, "`{w}`"),
            Tok::LParen => f.write_str("`(`"),
            Tok::RParen => f.write_str("`)`"),
            Tok::LBracket => f.write_str("`[`"),
            Tok::RBracket => f.write_str("`]`"),
            Tok::Comma => f.write_str("`,`"),
            Tok::Op(op) => write!(f, "`{op}`"),
            Tok::End => f.write_str("end of input"),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub tok: Tok,
    pub col: usize,
}

/// Splits `src` into tokens, ending with [`Tok::End`].
pub(crate) fn tokenize(src: &str) -> Result<Vec<Token>, ParseError> {
    let chars: Vec<char> = src.chars().collect();
    if chars.len() > MAX_EXPRESSION_CHARS {
        return Err(ParseError::new(
            MAX_EXPRESSION_CHARS + 1,
            format!("expression too long (at most {MAX_EXPRESSION_CHARS} characters)"),
        )
        .found(format!("{} characters", chars.len())));
    }
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let col = i + 1;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let single = |tok| Token { tok, col };
        let next = chars.get(i + 1).copied();
        match c {
            '(' => out.push(single(Tok::LParen)),
            ')' => out.push(single(Tok::RParen)),
            '[' => out.push(single(Tok::LBracket)),
            ']' => out.push(single(Tok::RBracket)),
            ',' => out.push(single(Tok::Comma)),
            '+' => out.push(single(Tok::Op("+"))),
            '-' => out.push(single(Tok::Op("-"))),
            '*' => out.push(single(Tok::Op("*"))),
            '/' => out.push(single(Tok::Op("/"))),
            '^' => out.push(single(Tok::Op("^"))),
            '<' | '>' | '=' | '!' => {
                let two = next == Some('=');
                let op = match (c, two) {
                    ('<', false) => "<",
                    ('<', true) => "<=",
                    ('>', false) => ">",
                    ('>', true) => ">=",
                    ('=', true) => "==",
                    ('!', true) => "!=",
                    _ => {
                        return Err(ParseError::new(col, format!("expected `{c}=`"))
                            .found(format!("`{c}`")));
                    }
                };
                out.push(single(Tok::Op(op)));
                if two {
                    i += 1;
                }
            }
            '0'..='9' | '.' => {
                let start = i;
                let digits = |j: &mut usize| {
                    let from = *j;
                    while *j < chars.len() && chars[*j].is_ascii_digit() {
                        *j += 1;
                    }
                    *j > from
                };
                let mut j = i;
                let int = digits(&mut j);
                let mut frac = false;
                if j < chars.len() && chars[j] == '.' {
                    j += 1;
                    frac = digits(&mut j);
                }
                let mut ok = int || frac;
                if ok && j < chars.len() && (chars[j] == 'e' || chars[j] == 'E') {
                    j += 1;
                    if j < chars.len() && (chars[j] == '+' || chars[j] == '-') {
                        j += 1;
                    }
                    ok = digits(&mut j);
                }
                let text: String = chars[start..j].iter().collect();
                let value = match text.parse::<f64>() {
                    Ok(v) if ok => v,
                    _ => {
                        return Err(
                            ParseError::new(col, "malformed number").found(format!("`{text}`"))
                        );
                    }
                };
                if !value.is_finite() {
                    return Err(ParseError::new(
                        col,
                        format!("number `{text}` is out of range"),
                    ));
                }
                out.push(single(Tok::Num(value)));
                i = j;
                continue;
            }
            c if c.is_ascii_alphabetic() => {
                let start = i;
                let mut j = i;
                while j < chars.len() && (chars[j].is_ascii_alphanumeric() || chars[j] == '_') {
                    j += 1;
                }
                out.push(single(Tok::Word(chars[start..j].iter().collect())));
                i = j;
                continue;
            }
            other => {
                return Err(
                    ParseError::new(col, "unexpected character").found(format!("`{other}`"))
                );
            }
        }
        i += 1;
    }
    out.push(Token {
        tok: Tok::End,
        col: chars.len() + 1,
    });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(src: &str) -> Vec<Tok> {
        tokenize(src)
            .unwrap_or_else(|e| panic!("{e}"))
            .into_iter()
            .map(|t| t.tok)
            .collect()
    }

    #[test]
    fn numbers_words_and_two_char_operators() {
        assert_eq!(
            toks("1.5e3 >= m_1 != .5"),
            vec![
                Tok::Num(1500.0),
                Tok::Op(">="),
                Tok::Word("m_1".into()),
                Tok::Op("!="),
                Tok::Num(0.5),
                Tok::End
            ]
        );
        assert_eq!(toks("2."), vec![Tok::Num(2.0), Tok::End]);
    }

    #[test]
    fn columns_count_characters_not_bytes() {
        let t = tokenize("é").map_err(|e| e.to_string());
        assert_eq!(t, Err("unexpected character at column 1, found `é`".into()));
        let t = tokenize("  a").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t[0].col, 3);
        assert_eq!(
            t[1],
            Token {
                tok: Tok::End,
                col: 4
            }
        );
    }

    #[test]
    fn lone_equals_and_bang_are_errors_with_a_hint() {
        let e = tokenize("a = b").map_err(|e| e.to_string());
        assert_eq!(e, Err("expected `==` at column 3, found `=`".into()));
        let e = tokenize("a ! b").map_err(|e| e.to_string());
        assert_eq!(e, Err("expected `!=` at column 3, found `!`".into()));
    }

    #[test]
    fn malformed_and_huge_numbers() {
        let e = tokenize("1e+").map_err(|e| e.to_string());
        assert_eq!(e, Err("malformed number at column 1, found `1e+`".into()));
        assert!(tokenize(".").is_err());
        let e = tokenize("1e999").map_err(|e| e.to_string());
        assert_eq!(e, Err("number `1e999` is out of range at column 1".into()));
    }

    #[test]
    fn overlong_expression_is_rejected() {
        let src = "a".repeat(MAX_EXPRESSION_CHARS + 1);
        let e = tokenize(&src).err().map(|e| e.column);
        assert_eq!(e, Some(MAX_EXPRESSION_CHARS + 1));
        assert!(tokenize(&"a".repeat(MAX_EXPRESSION_CHARS)).is_ok());
    }
}
