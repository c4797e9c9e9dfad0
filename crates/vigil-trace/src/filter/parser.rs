//! Recursive descent over the tokens: OR of ANDs of (NOT) primaries, each
//! primary a parenthesised expression or one key's comparison.

use super::lexer::{Cmp, Kind, Lexer, Token};
use super::{
    AnnotationTest, Expr, FilterError, FlagKey, NumberKey, NumberOp, Predicate, TextKey, TextOp,
};

/// Deepest nesting of parentheses and NOTs accepted, so evaluation's
/// recursion stays shallow whatever the input.
const MAX_DEPTH: usize = 100;

/// The keys, for the hint on an unknown one.
const VALID_KEYS: &str = "service(\"name\"), responsetime, duration, http.status, http.url, \
     http.method, http.useragent, http.clientip, fault, error, throttle, ok, annotation.<key>";

const NUMBER_OPS: &str = "=, !=, <, <=, >, >=";
const TEXT_OPS: &str = "=, !=, CONTAINS, BEGINSWITH, ENDSWITH";

/// Parses a whole filter; `None` when it is empty.
pub(super) fn parse(text: &str) -> Result<Option<Expr>, FilterError> {
    let mut parser = Parser {
        lexer: Lexer::new(text),
        peeked: None,
        depth: 0,
    };
    if parser.peek()?.kind == Kind::End {
        return Ok(None);
    }
    let expr = parser.or()?;
    let next = parser.next()?;
    if next.kind != Kind::End {
        return Err(FilterError::new(
            next.column,
            format!(
                "expected AND, OR or the end of the filter, found {}",
                next.describe()
            ),
        ));
    }
    Ok(Some(expr))
}

struct Parser<'a> {
    lexer: Lexer<'a>,
    peeked: Option<Token<'a>>,
    depth: usize,
}

/// An operator as written: a symbol or a string keyword.
#[derive(Clone, Copy)]
enum Op {
    Cmp(Cmp),
    Text(TextOp),
}

impl Op {
    fn symbol(self) -> &'static str {
        match self {
            Op::Cmp(cmp) => cmp.symbol(),
            Op::Text(op) => op.symbol(),
        }
    }

    fn number(self) -> Option<NumberOp> {
        match self {
            Op::Cmp(Cmp::Eq) => Some(NumberOp::Eq),
            Op::Cmp(Cmp::Ne) => Some(NumberOp::Ne),
            Op::Cmp(Cmp::Lt) => Some(NumberOp::Lt),
            Op::Cmp(Cmp::Le) => Some(NumberOp::Le),
            Op::Cmp(Cmp::Gt) => Some(NumberOp::Gt),
            Op::Cmp(Cmp::Ge) => Some(NumberOp::Ge),
            Op::Text(_) => None,
        }
    }

    fn text(self) -> Option<TextOp> {
        match self {
            Op::Cmp(Cmp::Eq) => Some(TextOp::Eq),
            Op::Cmp(Cmp::Ne) => Some(TextOp::Ne),
            Op::Text(op) => Some(op),
            Op::Cmp(_) => None,
        }
    }

    fn equality(self) -> Option<bool> {
        match self {
            Op::Cmp(Cmp::Eq) => Some(true),
            Op::Cmp(Cmp::Ne) => Some(false),
            _ => None,
        }
    }
}

impl<'a> Parser<'a> {
    fn peek(&mut self) -> Result<&Token<'a>, FilterError> {
        if self.peeked.is_none() {
            self.peeked = Some(self.lexer.next_token()?);
        }
        Ok(self.peeked.as_ref().expect("filled just above"))
    }

    fn next(&mut self) -> Result<Token<'a>, FilterError> {
        match self.peeked.take() {
            Some(token) => Ok(token),
            None => self.lexer.next_token(),
        }
    }

    fn or(&mut self) -> Result<Expr, FilterError> {
        let mut items = vec![self.and()?];
        loop {
            let token = self.peek()?;
            if token.kind == Kind::OrOr || token.is_keyword("or") {
                self.next()?;
                items.push(self.and()?);
            } else {
                break;
            }
        }
        Ok(one_or(items, Expr::Or))
    }

    fn and(&mut self) -> Result<Expr, FilterError> {
        let mut items = vec![self.unary()?];
        loop {
            let token = self.peek()?;
            if token.kind == Kind::AndAnd || token.is_keyword("and") {
                self.next()?;
                items.push(self.unary()?);
            } else {
                break;
            }
        }
        Ok(one_or(items, Expr::And))
    }

    fn enter(&mut self, column: usize) -> Result<(), FilterError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(FilterError::new(
                column,
                format!("nesting deeper than {MAX_DEPTH} parentheses or NOTs"),
            ));
        }
        Ok(())
    }

    fn unary(&mut self) -> Result<Expr, FilterError> {
        let token = self.next()?;
        if token.kind == Kind::Bang || token.is_keyword("not") {
            self.enter(token.column)?;
            let inner = self.unary()?;
            self.depth -= 1;
            return Ok(Expr::Not(Box::new(inner)));
        }
        if token.kind == Kind::LParen {
            self.enter(token.column)?;
            let inner = self.or()?;
            self.depth -= 1;
            let close = self.next()?;
            if close.kind != Kind::RParen {
                return Err(FilterError::new(
                    close.column,
                    format!(
                        "expected ')' to close the '(' at column {}, found {}",
                        token.column,
                        close.describe()
                    ),
                ));
            }
            return Ok(inner);
        }
        if token.kind != Kind::Word {
            return Err(FilterError::new(
                token.column,
                format!("expected a key, '(' or NOT, found {}", token.describe()),
            ));
        }
        self.predicate(token).map(Expr::Pred)
    }

    fn predicate(&mut self, key: Token<'a>) -> Result<Predicate, FilterError> {
        let name = key.text.to_ascii_lowercase();
        match name.as_str() {
            "service" => self.service(&key),
            "responsetime" => self.number_cmp(&key, NumberKey::ResponseTime),
            "duration" => self.number_cmp(&key, NumberKey::Duration),
            "http.status" => self.number_cmp(&key, NumberKey::HttpStatus),
            "http.url" => self.text_cmp(&key, TextKey::Url),
            "http.method" => self.text_cmp(&key, TextKey::Method),
            "http.useragent" => self.text_cmp(&key, TextKey::UserAgent),
            "http.clientip" => self.text_cmp(&key, TextKey::ClientIp),
            "fault" => self.flag(&key, FlagKey::Fault),
            "error" => self.flag(&key, FlagKey::Error),
            "throttle" => self.flag(&key, FlagKey::Throttle),
            "ok" => self.flag(&key, FlagKey::Ok),
            _ => match name.strip_prefix("annotation.") {
                Some(_) => self.annotation(&key),
                None => Err(FilterError::new(
                    key.column,
                    format!("unknown key \"{}\"; valid keys: {VALID_KEYS}", key.text),
                )),
            },
        }
    }

    fn service(&mut self, key: &Token<'a>) -> Result<Predicate, FilterError> {
        let open = self.next()?;
        if open.kind != Kind::LParen {
            return Err(FilterError::new(
                open.column,
                format!("expected '(' after service, found {}", open.describe()),
            ));
        }
        let name = self.next()?;
        let Kind::Str(value) = name.kind else {
            return Err(FilterError::new(
                name.column,
                format!(
                    "expected a quoted service name after 'service(', found {}",
                    name.describe()
                ),
            ));
        };
        let close = self.next()?;
        if close.kind != Kind::RParen {
            return Err(FilterError::new(
                close.column,
                format!(
                    "expected ')' to close the 'service(' at column {}, found {}",
                    key.column,
                    close.describe()
                ),
            ));
        }
        Ok(Predicate::Service(value))
    }

    /// The operator after `key`, a symbol or a string keyword.
    fn operator(&mut self, key: &Token<'a>) -> Result<(Op, Token<'a>), FilterError> {
        let token = self.next()?;
        let op = match &token.kind {
            Kind::Cmp(cmp) => Some(Op::Cmp(*cmp)),
            Kind::Word if token.is_keyword("contains") => Some(Op::Text(TextOp::Contains)),
            Kind::Word if token.is_keyword("beginswith") => Some(Op::Text(TextOp::BeginsWith)),
            Kind::Word if token.is_keyword("endswith") => Some(Op::Text(TextOp::EndsWith)),
            _ => None,
        };
        match op {
            Some(op) => Ok((op, token)),
            None => Err(FilterError::new(
                token.column,
                format!(
                    "expected an operator after {}, found {}",
                    key.text,
                    token.describe()
                ),
            )),
        }
    }

    fn number_cmp(
        &mut self,
        key: &Token<'a>,
        number_key: NumberKey,
    ) -> Result<Predicate, FilterError> {
        let (op, op_token) = self.operator(key)?;
        let Some(number_op) = op.number() else {
            return Err(wrong_op(&op_token, op, key.text, "a number", NUMBER_OPS));
        };
        let value = self.number_value(op)?;
        Ok(Predicate::Number(number_key, number_op, value))
    }

    fn number_value(&mut self, op: Op) -> Result<f64, FilterError> {
        let token = self.next()?;
        match token.kind {
            Kind::Number(v) => Ok(v),
            _ => Err(FilterError::new(
                token.column,
                format!(
                    "expected a number after '{}', found {}",
                    op.symbol(),
                    token.describe()
                ),
            )),
        }
    }

    fn text_cmp(&mut self, key: &Token<'a>, text_key: TextKey) -> Result<Predicate, FilterError> {
        let (op, op_token) = self.operator(key)?;
        let Some(text_op) = op.text() else {
            return Err(wrong_op(&op_token, op, key.text, "a string", TEXT_OPS));
        };
        let token = self.next()?;
        match token.kind {
            Kind::Str(value) => Ok(Predicate::Text(text_key, text_op, value)),
            _ => Err(FilterError::new(
                token.column,
                format!(
                    "expected a quoted string after '{}', found {}",
                    op.symbol(),
                    token.describe()
                ),
            )),
        }
    }

    fn flag(&mut self, key: &Token<'a>, flag: FlagKey) -> Result<Predicate, FilterError> {
        let op = match self.peek()?.kind {
            Kind::Cmp(cmp) => cmp,
            _ => {
                return Ok(Predicate::Flag {
                    key: flag,
                    equal: true,
                    value: true,
                });
            }
        };
        let op_token = self.next()?;
        let Some(equal) = Op::Cmp(op).equality() else {
            return Err(wrong_op(
                &op_token,
                Op::Cmp(op),
                key.text,
                "a boolean",
                "= or !=",
            ));
        };
        let value = self.bool_value(Op::Cmp(op))?;
        Ok(Predicate::Flag {
            key: flag,
            equal,
            value,
        })
    }

    fn bool_value(&mut self, op: Op) -> Result<bool, FilterError> {
        let token = self.next()?;
        if token.is_keyword("true") {
            Ok(true)
        } else if token.is_keyword("false") {
            Ok(false)
        } else {
            Err(FilterError::new(
                token.column,
                format!(
                    "expected true or false after '{}', found {}",
                    op.symbol(),
                    token.describe()
                ),
            ))
        }
    }

    fn annotation(&mut self, key: &Token<'a>) -> Result<Predicate, FilterError> {
        // The prefix is ASCII, so the name starts 11 characters in.
        let name = &key.text["annotation.".len()..];
        if !crate::model::is_annotation_key(name) {
            return Err(FilterError::new(
                key.column + "annotation.".len(),
                format!(
                    "expected an annotation key of 1 to 250 letters, digits or _, found \"{name}\""
                ),
            ));
        }
        let (op, op_token) = self.operator(key)?;
        let value = self.next()?;
        let test = match value.kind {
            Kind::Number(v) => match op.number() {
                Some(number_op) => AnnotationTest::Number(number_op, v),
                None => {
                    return Err(wrong_op(
                        &op_token,
                        op,
                        key.text,
                        "a number here",
                        NUMBER_OPS,
                    ));
                }
            },
            Kind::Str(s) => match op.text() {
                Some(text_op) => AnnotationTest::Text(text_op, s),
                None => return Err(wrong_op(&op_token, op, key.text, "a string here", TEXT_OPS)),
            },
            _ if value.is_keyword("true") || value.is_keyword("false") => match op.equality() {
                Some(equal) => AnnotationTest::Bool {
                    equal,
                    value: value.is_keyword("true"),
                },
                None => {
                    return Err(wrong_op(
                        &op_token,
                        op,
                        key.text,
                        "a boolean here",
                        "= or !=",
                    ));
                }
            },
            _ => {
                return Err(FilterError::new(
                    value.column,
                    format!(
                        "expected a number, a quoted string, true or false after '{}', found {}",
                        op.symbol(),
                        value.describe()
                    ),
                ));
            }
        };
        Ok(Predicate::Annotation(name.to_owned(), test))
    }
}

/// The one item, or the items combined.
fn one_or(mut items: Vec<Expr>, combine: fn(Vec<Expr>) -> Expr) -> Expr {
    if items.len() == 1 {
        items.pop().expect("one item")
    } else {
        combine(items)
    }
}

fn wrong_op(token: &Token<'_>, op: Op, key: &str, kind: &str, valid: &str) -> FilterError {
    FilterError::new(
        token.column,
        format!(
            "operator '{}' does not apply to {key}, {kind}: use {valid}",
            op.symbol()
        ),
    )
}
