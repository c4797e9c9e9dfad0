//! The expression parser: recursive descent over [`super::lexer`]'s tokens,
//! with the nesting depth bounded and every error at a 1-based column.
//! It also type-checks: each node is a [`Kind::Scalar`] or a
//! [`Kind::Series`] (an id is always a series), so `DIFF(5)` or a series as
//! `FILL`'s value is rejected here, with its column, not at run time.

use super::ast::{AggArg, AggFunc, BinOp, Expr, FillWith, Func1};
use super::error::ParseError;
use super::lexer::{Tok, Token, tokenize};

/// The deepest nesting accepted (parentheses, calls, lists, unary `-` and
/// `NOT`, the right side of `^`).
pub const MAX_DEPTH: usize = 32;

/// What an expression evaluates to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// One number.
    Scalar,
    /// A time series.
    Series,
}

impl Kind {
    fn or(self, other: Kind) -> Kind {
        if self == Kind::Series || other == Kind::Series {
            Kind::Series
        } else {
            Kind::Scalar
        }
    }
}

/// An id an expression refers to, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// The id.
    pub id: String,
    /// 1-based column of its first character.
    pub column: usize,
}

/// A parsed expression.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    /// The tree.
    pub expr: Expr,
    /// Whether it yields a scalar or a series.
    pub kind: Kind,
    /// Every id reference, in source order (repeats included).
    pub references: Vec<Reference>,
}

/// Parses and type-checks one expression.
pub fn parse(src: &str) -> Result<Parsed, ParseError> {
    let mut p = Parser {
        toks: tokenize(src)?,
        pos: 0,
        depth: 0,
        refs: Vec::new(),
    };
    let (expr, kind) = p.expr()?;
    let end = p.peek();
    if end.tok != Tok::End {
        return Err(ParseError::new(end.col, "expected an operator").found(end.tok.to_string()));
    }
    Ok(Parsed {
        expr,
        kind,
        references: p.refs,
    })
}

type R<T> = Result<T, ParseError>;

enum Callee {
    Agg(AggFunc),
    Fill,
    If,
    F1(Func1),
}

fn callee(name: &str) -> Option<Callee> {
    Some(match name {
        "SUM" => Callee::Agg(AggFunc::Sum),
        "AVG" => Callee::Agg(AggFunc::Avg),
        "MIN" => Callee::Agg(AggFunc::Min),
        "MAX" => Callee::Agg(AggFunc::Max),
        "STDDEV" => Callee::Agg(AggFunc::Stddev),
        "FILL" => Callee::Fill,
        "IF" => Callee::If,
        "DIFF" => Callee::F1(Func1::Diff),
        "RATE" => Callee::F1(Func1::Rate),
        "ABS" => Callee::F1(Func1::Abs),
        "CEIL" => Callee::F1(Func1::Ceil),
        "FLOOR" => Callee::F1(Func1::Floor),
        "LOG" => Callee::F1(Func1::Log),
        "LOG10" => Callee::F1(Func1::Log10),
        "SQRT" => Callee::F1(Func1::Sqrt),
        _ => return None,
    })
}

/// One argument of a call, before the callee checks it.
enum Arg {
    Expr(Expr, Kind, usize),
    List(Vec<(Expr, Kind)>, usize),
    Keyword(&'static str, usize),
}

impl Arg {
    fn col(&self) -> usize {
        match self {
            Arg::Expr(_, _, c) | Arg::List(_, c) | Arg::Keyword(_, c) => *c,
        }
    }
}

const LIST_ONLY_IN: &str =
    "a list `[...]` is only allowed as the argument of SUM, AVG, MIN, MAX or STDDEV";

struct Parser {
    toks: Vec<Token>,
    pos: usize,
    depth: usize,
    refs: Vec<Reference>,
}

impl Parser {
    fn peek(&self) -> &Token {
        // tokenize always ends with Tok::End and the parser never moves past it
        &self.toks[self.pos.min(self.toks.len() - 1)]
    }

    fn peek2(&self) -> &Tok {
        &self.toks[(self.pos + 1).min(self.toks.len() - 1)].tok
    }

    fn bump(&mut self) -> Token {
        let t = self.peek().clone();
        if t.tok != Tok::End {
            self.pos += 1;
        }
        t
    }

    fn at_op(&self) -> Option<&'static str> {
        match self.peek().tok {
            Tok::Op(op) => Some(op),
            _ => None,
        }
    }

    fn at_word(&self, w: &str) -> bool {
        matches!(&self.peek().tok, Tok::Word(x) if x == w)
    }

    fn expect(&mut self, tok: Tok, what: &str) -> R<Token> {
        if self.peek().tok == tok {
            return Ok(self.bump());
        }
        let t = self.peek();
        Err(ParseError::new(t.col, format!("expected {what}")).found(t.tok.to_string()))
    }

    fn enter(&mut self, col: usize) -> R<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(ParseError::new(
                col,
                format!("expression nests deeper than {MAX_DEPTH} levels"),
            ));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth -= 1;
    }

    fn expr(&mut self) -> R<(Expr, Kind)> {
        self.or()
    }

    fn binary(op: BinOp, (l, lk): (Expr, Kind), (r, rk): (Expr, Kind)) -> (Expr, Kind) {
        let e = Expr::Binary {
            op,
            lhs: Box::new(l),
            rhs: Box::new(r),
        };
        (e, lk.or(rk))
    }

    fn or(&mut self) -> R<(Expr, Kind)> {
        let mut lhs = self.and()?;
        while self.at_word("OR") {
            self.bump();
            let rhs = self.and()?;
            lhs = Self::binary(BinOp::Or, lhs, rhs);
        }
        Ok(lhs)
    }

    fn and(&mut self) -> R<(Expr, Kind)> {
        let mut lhs = self.not()?;
        while self.at_word("AND") {
            self.bump();
            let rhs = self.not()?;
            lhs = Self::binary(BinOp::And, lhs, rhs);
        }
        Ok(lhs)
    }

    fn not(&mut self) -> R<(Expr, Kind)> {
        if !self.at_word("NOT") {
            return self.cmp();
        }
        let t = self.bump();
        self.enter(t.col)?;
        let (x, k) = self.not()?;
        self.leave();
        Ok((Expr::Not(Box::new(x)), k))
    }

    fn cmp_op(&self) -> Option<BinOp> {
        Some(match self.at_op()? {
            "==" => BinOp::Eq,
            "!=" => BinOp::Ne,
            "<" => BinOp::Lt,
            "<=" => BinOp::Le,
            ">" => BinOp::Gt,
            ">=" => BinOp::Ge,
            _ => return None,
        })
    }

    fn cmp(&mut self) -> R<(Expr, Kind)> {
        let lhs = self.add()?;
        let Some(op) = self.cmp_op() else {
            return Ok(lhs);
        };
        self.bump();
        let rhs = self.add()?;
        if self.cmp_op().is_some() {
            let t = self.peek();
            return Err(
                ParseError::new(t.col, "comparisons do not chain; add parentheses")
                    .found(t.tok.to_string()),
            );
        }
        Ok(Self::binary(op, lhs, rhs))
    }

    fn add(&mut self) -> R<(Expr, Kind)> {
        let mut lhs = self.mul()?;
        loop {
            let op = match self.at_op() {
                Some("+") => BinOp::Add,
                Some("-") => BinOp::Sub,
                _ => return Ok(lhs),
            };
            self.bump();
            let rhs = self.mul()?;
            lhs = Self::binary(op, lhs, rhs);
        }
    }

    fn mul(&mut self) -> R<(Expr, Kind)> {
        let mut lhs = self.unary()?;
        loop {
            let op = match self.at_op() {
                Some("*") => BinOp::Mul,
                Some("/") => BinOp::Div,
                _ => return Ok(lhs),
            };
            self.bump();
            let rhs = self.unary()?;
            lhs = Self::binary(op, lhs, rhs);
        }
    }

    fn unary(&mut self) -> R<(Expr, Kind)> {
        if self.at_op() != Some("-") {
            return self.pow();
        }
        let t = self.bump();
        self.enter(t.col)?;
        let (x, k) = self.unary()?;
        self.leave();
        Ok((Expr::Neg(Box::new(x)), k))
    }

    fn pow(&mut self) -> R<(Expr, Kind)> {
        let base = self.primary()?;
        if self.at_op() != Some("^") {
            return Ok(base);
        }
        let t = self.bump();
        self.enter(t.col)?;
        let exp = self.unary()?;
        self.leave();
        Ok(Self::binary(BinOp::Pow, base, exp))
    }

    fn primary(&mut self) -> R<(Expr, Kind)> {
        let t = self.bump();
        match t.tok {
            Tok::Num(n) => Ok((Expr::Number(n), Kind::Scalar)),
            Tok::Word(w) if w.starts_with(|c: char| c.is_ascii_lowercase()) => {
                self.refs.push(Reference {
                    id: w.clone(),
                    column: t.col,
                });
                Ok((Expr::Id(w), Kind::Series))
            }
            Tok::Word(w) if self.peek().tok == Tok::LParen => self.call(w, t.col),
            Tok::Word(w) => Err(self.bare_word(&w, t.col)),
            Tok::LParen => {
                self.enter(t.col)?;
                let e = self.expr()?;
                self.expect(Tok::RParen, "`)`")?;
                self.leave();
                Ok(e)
            }
            Tok::LBracket => Err(ParseError::new(t.col, LIST_ONLY_IN)),
            other => Err(ParseError::new(t.col, "expected an expression").found(other.to_string())),
        }
    }

    fn bare_word(&self, w: &str, col: usize) -> ParseError {
        match w {
            "AND" | "OR" | "NOT" => {
                ParseError::new(col, "expected an expression").found(format!("`{w}`"))
            }
            "REPEAT" | "LINEAR" => ParseError::new(
                col,
                format!("`{w}` is only allowed as the second argument of FILL"),
            ),
            _ if callee(w).is_some() => {
                let t = self.peek();
                ParseError::new(t.col, format!("expected `(` after `{w}`")).found(t.tok.to_string())
            }
            _ => ParseError::new(
                col,
                format!("unknown name `{w}` (ids start with a lowercase letter)"),
            ),
        }
    }

    fn arg(&mut self) -> R<Arg> {
        let t = self.peek().clone();
        if t.tok == Tok::LBracket {
            self.bump();
            self.enter(t.col)?;
            if self.peek().tok == Tok::RBracket {
                return Err(ParseError::new(t.col, "empty list"));
            }
            let mut items = vec![self.expr()?];
            while self.peek().tok == Tok::Comma {
                self.bump();
                items.push(self.expr()?);
            }
            self.expect(Tok::RBracket, "`,` or `]`")?;
            self.leave();
            return Ok(Arg::List(items, t.col));
        }
        if let Tok::Word(w) = &t.tok {
            let keyword = match w.as_str() {
                "REPEAT" => Some("REPEAT"),
                "LINEAR" => Some("LINEAR"),
                _ => None,
            };
            if let Some(k) = keyword
                && matches!(self.peek2(), Tok::Comma | Tok::RParen)
            {
                self.bump();
                return Ok(Arg::Keyword(k, t.col));
            }
        }
        let (e, k) = self.expr()?;
        Ok(Arg::Expr(e, k, t.col))
    }

    fn call(&mut self, name: String, col: usize) -> R<(Expr, Kind)> {
        let Some(callee) = callee(&name) else {
            return Err(ParseError::new(col, format!("unknown function `{name}`")));
        };
        let open = self.bump(); // `(`
        self.enter(open.col)?;
        let mut args = Vec::new();
        if self.peek().tok != Tok::RParen {
            loop {
                args.push(self.arg()?);
                if self.peek().tok != Tok::Comma {
                    break;
                }
                self.bump();
            }
        }
        self.expect(Tok::RParen, "`,` or `)`")?;
        self.leave();
        let arity = |lo: usize, hi: usize, text: &str| -> R<()> {
            if (lo..=hi).contains(&args.len()) {
                return Ok(());
            }
            Err(ParseError::new(col, format!("`{name}` takes {text}"))
                .found(args.len().to_string()))
        };
        match callee {
            Callee::Agg(func) => {
                arity(1, 1, "1 argument")?;
                let (arg, kind) = match args.pop() {
                    Some(Arg::Expr(e, k, _)) => (AggArg::One(Box::new(e)), k),
                    Some(Arg::List(items, _)) => {
                        let kind = items.iter().fold(Kind::Scalar, |acc, (_, k)| acc.or(*k));
                        (
                            AggArg::List(items.into_iter().map(|(e, _)| e).collect()),
                            kind,
                        )
                    }
                    Some(Arg::Keyword(k, c)) => return Err(keyword_misplaced(k, c)),
                    None => return Err(ParseError::new(col, "missing argument")),
                };
                Ok((Expr::Agg { func, arg }, kind))
            }
            Callee::Fill => {
                arity(2, 2, "2 arguments")?;
                let mut it = args.into_iter();
                let (Some(first), Some(second)) = (it.next(), it.next()) else {
                    return Err(ParseError::new(col, "`FILL` takes 2 arguments"));
                };
                let series = series_arg(&name, first)?;
                let with = match second {
                    Arg::Keyword("REPEAT", _) => FillWith::Repeat,
                    Arg::Keyword(_, _) => FillWith::Linear,
                    Arg::Expr(e, Kind::Scalar, _) => FillWith::Value(Box::new(e)),
                    Arg::Expr(_, Kind::Series, c) => {
                        return Err(ParseError::new(
                            c,
                            "`FILL` takes a number, REPEAT or LINEAR as its second argument",
                        )
                        .found("a series"));
                    }
                    Arg::List(_, c) => return Err(ParseError::new(c, LIST_ONLY_IN)),
                };
                Ok((
                    Expr::Fill {
                        series: Box::new(series),
                        with,
                    },
                    Kind::Series,
                ))
            }
            Callee::If => {
                arity(2, 3, "2 or 3 arguments")?;
                let mut kind = Kind::Scalar;
                let mut exprs = Vec::with_capacity(3);
                for a in args {
                    let (e, k) = expr_arg(a)?;
                    kind = kind.or(k);
                    exprs.push(Box::new(e));
                }
                let mut it = exprs.into_iter();
                let (Some(cond), Some(then)) = (it.next(), it.next()) else {
                    return Err(ParseError::new(col, "`IF` takes 2 or 3 arguments"));
                };
                let otherwise = it.next();
                Ok((
                    Expr::If {
                        cond,
                        then,
                        otherwise,
                    },
                    kind,
                ))
            }
            Callee::F1(func) => {
                arity(1, 1, "1 argument")?;
                let Some(a) = args.pop() else {
                    return Err(ParseError::new(col, format!("`{name}` takes 1 argument")));
                };
                let (arg, kind) = if func.needs_series() {
                    (series_arg(&name, a)?, Kind::Series)
                } else {
                    expr_arg(a)?
                };
                Ok((
                    Expr::Call {
                        func,
                        arg: Box::new(arg),
                    },
                    kind,
                ))
            }
        }
    }
}

fn keyword_misplaced(k: &str, col: usize) -> ParseError {
    ParseError::new(
        col,
        format!("`{k}` is only allowed as the second argument of FILL"),
    )
}

fn expr_arg(a: Arg) -> R<(Expr, Kind)> {
    match a {
        Arg::Expr(e, k, _) => Ok((e, k)),
        Arg::List(_, c) => Err(ParseError::new(c, LIST_ONLY_IN)),
        Arg::Keyword(k, c) => Err(keyword_misplaced(k, c)),
    }
}

fn series_arg(name: &str, a: Arg) -> R<Expr> {
    let col = a.col();
    match expr_arg(a)? {
        (e, Kind::Series) => Ok(e),
        (_, Kind::Scalar) => {
            Err(ParseError::new(col, format!("`{name}` takes a series")).found("a scalar"))
        }
    }
}

#[cfg(test)]
mod tests;
