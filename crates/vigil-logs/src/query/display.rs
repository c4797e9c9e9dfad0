//! The pretty-printer: an [`Ast`] written back as query text that parses to
//! the same tree. It also names the columns that have no `as`
//! (`count(*)`, `pct(latencyMs, 99)`, `bin(5m)`).

use std::fmt::{self, Display, Formatter, Write};

use super::ast::{
    Aggregate, Ast, BinOp, Command, Expr, LikePattern, Literal, ParsePattern, Projection, SortKey,
};
use super::lexer::{is_ident_continue, is_ident_start};
use super::parser::is_reserved;

/// A field name, backticked when it is not a plain name.
pub(crate) struct Name<'a>(pub &'a str);

impl Display for Name<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let mut chars = self.0.chars();
        let plain = chars.next().is_some_and(is_ident_start)
            && chars.all(is_ident_continue)
            && !is_reserved(self.0);
        if plain {
            f.write_str(self.0)
        } else {
            write!(f, "`{}`", self.0)
        }
    }
}

fn quoted(f: &mut Formatter<'_>, s: &str) -> fmt::Result {
    f.write_char('"')?;
    for c in s.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\t' => f.write_str("\\t")?,
            '\r' => f.write_str("\\r")?,
            c => f.write_char(c)?,
        }
    }
    f.write_char('"')
}

fn number(f: &mut Formatter<'_>, x: f64) -> fmt::Result {
    // Debug keeps a `.0` or an exponent, so the text lexes back as a float.
    write!(f, "{x:?}")
}

/// How tightly an expression binds, as the parser reads it: `or` 1, `and`
/// 2, `not` 3, comparisons 4, `+ -` 5, `* / %` 6, unary `-` 7, `^` 8,
/// fields, literals and calls 9.
fn precedence(e: &Expr) -> u8 {
    match e {
        Expr::Binary(op, ..) => match op {
            BinOp::Or => 1,
            BinOp::And => 2,
            BinOp::Add | BinOp::Sub => 5,
            BinOp::Mul | BinOp::Div | BinOp::Rem => 6,
            BinOp::Pow => 8,
            _ => 4,
        },
        Expr::Not(_) => 3,
        Expr::Like { .. } | Expr::In { .. } => 4,
        Expr::Neg(_) => 7,
        Expr::Field(_) | Expr::Literal(_) | Expr::Call(..) => 9,
    }
}

/// An operand that needs at least precedence `min` to stand bare; only the
/// parentheses the grammar needs are written, so the text nests no deeper
/// than the tree.
struct Operand<'a>(&'a Expr, u8);

impl Display for Operand<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        if precedence(self.0) >= self.1 {
            self.0.fmt(f)
        } else {
            write!(f, "({})", self.0)
        }
    }
}

fn comma_list<T>(
    f: &mut Formatter<'_>,
    items: &[T],
    item: impl Fn(&mut Formatter<'_>, &T) -> fmt::Result,
) -> fmt::Result {
    for (i, it) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        item(f, it)?;
    }
    Ok(())
}

impl Display for Literal {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Literal::Int(n) => write!(f, "{n}"),
            Literal::Float(x) => number(f, *x),
            Literal::Str(s) => quoted(f, s),
            Literal::Span(s) => write!(f, "{s}"),
        }
    }
}

impl Display for Expr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Field(name) => write!(f, "{}", Name(name)),
            Expr::Literal(lit) => lit.fmt(f),
            Expr::Not(e) => write!(f, "not {}", Operand(e, 3)),
            Expr::Neg(e) => write!(f, "-{}", Operand(e, 7)),
            Expr::Binary(op, a, b) => {
                let p = precedence(self);
                let (left, right) = match op {
                    BinOp::Pow => (9, 7),
                    BinOp::Or
                    | BinOp::And
                    | BinOp::Add
                    | BinOp::Sub
                    | BinOp::Mul
                    | BinOp::Div
                    | BinOp::Rem => (p, p + 1),
                    _ => (5, 5),
                };
                write!(
                    f,
                    "{} {} {}",
                    Operand(a, left),
                    op.symbol(),
                    Operand(b, right)
                )
            }
            Expr::Like {
                expr,
                pattern,
                negated,
            } => {
                write!(
                    f,
                    "{} {}like ",
                    Operand(expr, 5),
                    if *negated { "not " } else { "" }
                )?;
                match pattern {
                    LikePattern::Substring(s) => quoted(f, s),
                    LikePattern::Regex(re) => write!(f, "/{}/", re.source),
                }
            }
            Expr::In {
                expr,
                list,
                negated,
            } => {
                write!(
                    f,
                    "{} {}in [",
                    Operand(expr, 5),
                    if *negated { "not " } else { "" }
                )?;
                comma_list(f, list, |f, e| e.fmt(f))?;
                f.write_char(']')
            }
            Expr::Call(func, args) => {
                write!(f, "{}(", func.name())?;
                comma_list(f, args, |f, e| e.fmt(f))?;
                f.write_char(')')
            }
        }
    }
}

impl Display for Projection {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        self.expr.fmt(f)?;
        match &self.alias {
            Some(a) => write!(f, " as {}", Name(a)),
            None => Ok(()),
        }
    }
}

impl Projection {
    /// The column name: the `as` name, the field name, or the expression as
    /// the pretty-printer writes it.
    pub fn name(&self) -> String {
        match (&self.alias, &self.expr) {
            (Some(a), _) => a.clone(),
            (None, Expr::Field(name)) => name.clone(),
            (None, e) => e.to_string(),
        }
    }
}

impl Aggregate {
    /// The aggregate without its `as` name: `count(*)`, `pct(latencyMs, 99)`.
    pub fn written(&self) -> String {
        let mut s = format!("{}(", self.func.name());
        match &self.arg {
            Some(e) => {
                let _ = write!(s, "{e}");
            }
            None => s.push('*'),
        }
        if let Some(p) = self.percentile {
            if p.fract() == 0.0 {
                let _ = write!(s, ", {p:.0}");
            } else {
                let _ = write!(s, ", {p:?}");
            }
        }
        s.push(')');
        s
    }

    /// The column name: the `as` name or [`Aggregate::written`].
    pub fn name(&self) -> String {
        self.alias.clone().unwrap_or_else(|| self.written())
    }
}

impl Display for Aggregate {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(&self.written())?;
        match &self.alias {
            Some(a) => write!(f, " as {}", Name(a)),
            None => Ok(()),
        }
    }
}

impl Display for SortKey {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}",
            self.expr,
            if self.descending { "desc" } else { "asc" }
        )
    }
}

impl Display for Command {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let names = |f: &mut Formatter<'_>, n: &String| write!(f, "{}", Name(n));
        match self {
            Command::Fields(p) => {
                f.write_str("fields ")?;
                comma_list(f, p, |f, p| p.fmt(f))
            }
            Command::Filter(e) => write!(f, "filter {e}"),
            Command::Stats { aggregates, by } => {
                f.write_str("stats ")?;
                comma_list(f, aggregates, |f, a| a.fmt(f))?;
                if !by.is_empty() {
                    f.write_str(" by ")?;
                    comma_list(f, by, |f, p| p.fmt(f))?;
                }
                Ok(())
            }
            Command::Sort(keys) => {
                f.write_str("sort ")?;
                comma_list(f, keys, |f, k| k.fmt(f))
            }
            Command::Limit(n) => write!(f, "limit {n}"),
            Command::Parse { source, pattern } => {
                write!(f, "parse {} ", Name(source))?;
                match pattern {
                    ParsePattern::Glob { glob, names: ns } => {
                        quoted(f, glob)?;
                        f.write_str(" as ")?;
                        comma_list(f, ns, names)
                    }
                    ParsePattern::Regex(re) => write!(f, "/{}/", re.source),
                }
            }
            Command::Display(ns) => {
                f.write_str("display ")?;
                comma_list(f, ns, names)
            }
            Command::Dedup(ns) => {
                f.write_str("dedup ")?;
                comma_list(f, ns, names)
            }
        }
    }
}

impl Display for Ast {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        for (i, c) in self.commands.iter().enumerate() {
            if i > 0 {
                f.write_str(" | ")?;
            }
            c.fmt(f)?;
        }
        Ok(())
    }
}
