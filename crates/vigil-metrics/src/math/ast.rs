//! The expression tree, and its printer: [`Expr`]'s `Display` writes the
//! fewest parentheses that parse back to the same tree.

use std::fmt;

/// A binary operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `^` (right-associative)
    Pow,
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `AND`
    And,
    /// `OR`
    Or,
}

impl BinOp {
    /// The operator as written.
    pub fn as_str(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Pow => "^",
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::And => "AND",
            BinOp::Or => "OR",
        }
    }

    /// Binding strength: higher binds tighter.
    pub(crate) fn precedence(self) -> u8 {
        match self {
            BinOp::Or => prec::OR,
            BinOp::And => prec::AND,
            BinOp::Eq | BinOp::Ne | BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => prec::CMP,
            BinOp::Add | BinOp::Sub => prec::ADD,
            BinOp::Mul | BinOp::Div => prec::MUL,
            BinOp::Pow => prec::POW,
        }
    }

    /// The operator applied to two values; comparisons and logic give 1 or 0.
    pub(crate) fn apply(self, a: f64, b: f64) -> f64 {
        let truth = |c: bool| if c { 1.0 } else { 0.0 };
        match self {
            BinOp::Add => a + b,
            BinOp::Sub => a - b,
            BinOp::Mul => a * b,
            BinOp::Div => a / b,
            BinOp::Pow => a.powf(b),
            BinOp::Eq => truth(a == b),
            BinOp::Ne => truth(a != b),
            BinOp::Lt => truth(a < b),
            BinOp::Le => truth(a <= b),
            BinOp::Gt => truth(a > b),
            BinOp::Ge => truth(a >= b),
            BinOp::And => truth(a != 0.0 && b != 0.0),
            BinOp::Or => truth(a != 0.0 || b != 0.0),
        }
    }
}

/// Precedence levels, loosest first.
pub(crate) mod prec {
    pub const OR: u8 = 1;
    pub const AND: u8 = 2;
    pub const NOT: u8 = 3;
    pub const CMP: u8 = 4;
    pub const ADD: u8 = 5;
    pub const MUL: u8 = 6;
    pub const NEG: u8 = 7;
    pub const POW: u8 = 8;
    pub const PRIMARY: u8 = 9;
}

/// A function combining series per timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggFunc {
    /// `SUM`
    Sum,
    /// `AVG`
    Avg,
    /// `MIN`
    Min,
    /// `MAX`
    Max,
    /// `STDDEV` (population: divides by n)
    Stddev,
}

impl AggFunc {
    /// The name as written.
    pub fn as_str(self) -> &'static str {
        match self {
            AggFunc::Sum => "SUM",
            AggFunc::Avg => "AVG",
            AggFunc::Min => "MIN",
            AggFunc::Max => "MAX",
            AggFunc::Stddev => "STDDEV",
        }
    }

    /// The function of a non-empty set of values.
    pub(crate) fn apply(self, v: &[f64]) -> f64 {
        let n = v.len() as f64;
        match self {
            AggFunc::Sum => v.iter().sum(),
            AggFunc::Avg => v.iter().sum::<f64>() / n,
            AggFunc::Min => v.iter().copied().fold(f64::INFINITY, f64::min),
            AggFunc::Max => v.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            AggFunc::Stddev => {
                let mean = v.iter().sum::<f64>() / n;
                (v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n).sqrt()
            }
        }
    }
}

/// A function of one series (or scalar) per point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Func1 {
    /// `DIFF` (series only)
    Diff,
    /// `RATE` (series only)
    Rate,
    /// `ABS`
    Abs,
    /// `CEIL`
    Ceil,
    /// `FLOOR`
    Floor,
    /// `LOG` (natural)
    Log,
    /// `LOG10`
    Log10,
    /// `SQRT`
    Sqrt,
}

impl Func1 {
    /// The name as written.
    pub fn as_str(self) -> &'static str {
        match self {
            Func1::Diff => "DIFF",
            Func1::Rate => "RATE",
            Func1::Abs => "ABS",
            Func1::Ceil => "CEIL",
            Func1::Floor => "FLOOR",
            Func1::Log => "LOG",
            Func1::Log10 => "LOG10",
            Func1::Sqrt => "SQRT",
        }
    }

    /// Whether the argument must be a series (`DIFF`, `RATE`).
    pub(crate) fn needs_series(self) -> bool {
        matches!(self, Func1::Diff | Func1::Rate)
    }

    /// The point-wise function (not for `DIFF`/`RATE`, which look at
    /// neighbours).
    pub(crate) fn apply(self, x: f64) -> f64 {
        match self {
            Func1::Abs => x.abs(),
            Func1::Ceil => x.ceil(),
            Func1::Floor => x.floor(),
            Func1::Log => x.ln(),
            Func1::Log10 => x.log10(),
            Func1::Sqrt => x.sqrt(),
            Func1::Diff | Func1::Rate => f64::NAN,
        }
    }
}

/// The argument of an aggregate function.
#[derive(Debug, Clone, PartialEq)]
pub enum AggArg {
    /// `SUM(a)`: per point.
    One(Box<Expr>),
    /// `SUM([a, b])`: per timestamp across the list.
    List(Vec<Expr>),
}

/// How `FILL` fills a gap.
#[derive(Debug, Clone, PartialEq)]
pub enum FillWith {
    /// A scalar expression (`FILL(m, 0)`).
    Value(Box<Expr>),
    /// `REPEAT`: the last earlier value.
    Repeat,
    /// `LINEAR`: interpolated between the neighbouring points.
    Linear,
}

/// An expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A non-negative literal (a minus sign is [`Expr::Neg`]).
    Number(f64),
    /// A reference to another entry's id.
    Id(String),
    /// `-x`
    Neg(Box<Expr>),
    /// `NOT x`
    Not(Box<Expr>),
    /// `a op b`
    Binary {
        /// The operator.
        op: BinOp,
        /// Left operand.
        lhs: Box<Expr>,
        /// Right operand.
        rhs: Box<Expr>,
    },
    /// `SUM/AVG/MIN/MAX/STDDEV(...)`
    Agg {
        /// Which function.
        func: AggFunc,
        /// One expression or a list.
        arg: AggArg,
    },
    /// `FILL(series, with)`
    Fill {
        /// The series to fill.
        series: Box<Expr>,
        /// The filling.
        with: FillWith,
    },
    /// `IF(cond, then)` or `IF(cond, then, otherwise)`
    If {
        /// Non-zero = true.
        cond: Box<Expr>,
        /// Value where true.
        then: Box<Expr>,
        /// Value where false; no point when absent.
        otherwise: Option<Box<Expr>>,
    },
    /// `DIFF RATE ABS CEIL FLOOR LOG LOG10 SQRT (x)`
    Call {
        /// Which function.
        func: Func1,
        /// Its argument.
        arg: Box<Expr>,
    },
}

impl Expr {
    fn precedence(&self) -> u8 {
        match self {
            Expr::Neg(_) => prec::NEG,
            Expr::Not(_) => prec::NOT,
            Expr::Binary { op, .. } => op.precedence(),
            _ => prec::PRIMARY,
        }
    }

    fn fmt_at(&self, f: &mut fmt::Formatter<'_>, min: u8) -> fmt::Result {
        if self.precedence() < min {
            f.write_str("(")?;
            self.fmt_at(f, 0)?;
            return f.write_str(")");
        }
        match self {
            Expr::Number(n) => write!(f, "{n}"),
            Expr::Id(id) => f.write_str(id),
            Expr::Neg(x) => {
                f.write_str("-")?;
                x.fmt_at(f, prec::NEG)
            }
            Expr::Not(x) => {
                f.write_str("NOT ")?;
                x.fmt_at(f, prec::NOT)
            }
            Expr::Binary { op, lhs, rhs } => {
                let p = op.precedence();
                let (l, r) = match op {
                    // right-associative; its right side is a unary
                    BinOp::Pow => (prec::PRIMARY, prec::NEG),
                    // comparisons do not chain
                    _ if p == prec::CMP => (p + 1, p + 1),
                    _ => (p, p + 1),
                };
                lhs.fmt_at(f, l)?;
                write!(f, " {} ", op.as_str())?;
                rhs.fmt_at(f, r)
            }
            Expr::Agg { func, arg } => {
                write!(f, "{}(", func.as_str())?;
                match arg {
                    AggArg::One(x) => x.fmt_at(f, 0)?,
                    AggArg::List(xs) => {
                        f.write_str("[")?;
                        for (i, x) in xs.iter().enumerate() {
                            if i > 0 {
                                f.write_str(", ")?;
                            }
                            x.fmt_at(f, 0)?;
                        }
                        f.write_str("]")?;
                    }
                }
                f.write_str(")")
            }
            Expr::Fill { series, with } => {
                f.write_str("FILL(")?;
                series.fmt_at(f, 0)?;
                f.write_str(", ")?;
                match with {
                    FillWith::Value(v) => v.fmt_at(f, 0)?,
                    FillWith::Repeat => f.write_str("REPEAT")?,
                    FillWith::Linear => f.write_str("LINEAR")?,
                }
                f.write_str(")")
            }
            Expr::If {
                cond,
                then,
                otherwise,
            } => {
                f.write_str("IF(")?;
                cond.fmt_at(f, 0)?;
                f.write_str(", ")?;
                then.fmt_at(f, 0)?;
                if let Some(o) = otherwise {
                    f.write_str(", ")?;
                    o.fmt_at(f, 0)?;
                }
                f.write_str(")")
            }
            Expr::Call { func, arg } => {
                write!(f, "{}(", func.as_str())?;
                arg.fmt_at(f, 0)?;
                f.write_str(")")
            }
        }
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fmt_at(f, 0)
    }
}
