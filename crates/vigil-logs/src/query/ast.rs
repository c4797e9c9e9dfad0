//! The syntax tree of a query, as the parser builds it and the
//! pretty-printer ([`super::display`]) writes it back.

use std::fmt;

/// A parsed query: its commands in pipeline order.
#[derive(Debug, Clone, PartialEq)]
pub struct Ast {
    /// The commands, in the order they were written.
    pub commands: Vec<Command>,
}

/// One command of the pipeline.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// `fields a, f(x) as y`: compute and select columns.
    Fields(Vec<Projection>),
    /// `filter <expr>`: keep the rows where it is true.
    Filter(Expr),
    /// `stats agg(..) [as n], .. [by e [as n], ..]`.
    Stats {
        /// The aggregates, in order.
        aggregates: Vec<Aggregate>,
        /// The grouping expressions, in order.
        by: Vec<Projection>,
    },
    /// `sort e [asc|desc], ..`.
    Sort(Vec<SortKey>),
    /// `limit n`.
    Limit(u64),
    /// `parse f "glob * *" as a, b` or `parse f /(?<a>re)/`.
    Parse {
        /// The field parsed.
        source: String,
        /// The pattern and the names it extracts.
        pattern: ParsePattern,
    },
    /// `display a, b`: the output columns.
    Display(Vec<String>),
    /// `dedup a, b`: the first row per key in the current order.
    Dedup(Vec<String>),
}

/// An expression with an optional `as` name.
#[derive(Debug, Clone, PartialEq)]
pub struct Projection {
    /// The expression.
    pub expr: Expr,
    /// The `as` name.
    pub alias: Option<String>,
}

/// One key of `sort`.
#[derive(Debug, Clone, PartialEq)]
pub struct SortKey {
    /// What to sort by.
    pub expr: Expr,
    /// `desc` (the default is ascending).
    pub descending: bool,
}

/// An aggregate of `stats` with its optional `as` name.
#[derive(Debug, Clone, PartialEq)]
pub struct Aggregate {
    /// The function.
    pub func: AggFunc,
    /// Its argument; `None` for `count(*)`.
    pub arg: Option<Expr>,
    /// `pct`'s percentile (0–100).
    pub percentile: Option<f64>,
    /// The `as` name.
    pub alias: Option<String>,
}

/// The aggregate functions of `stats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggFunc {
    /// `count(*)` or `count(e)` (rows where `e` is present).
    Count,
    /// `count_distinct(e)`.
    CountDistinct,
    /// `sum(e)`.
    Sum,
    /// `avg(e)`.
    Avg,
    /// `min(e)`.
    Min,
    /// `max(e)`.
    Max,
    /// `pct(e, p)`.
    Pct,
    /// `stddev(e)` (sample standard deviation).
    Stddev,
    /// `earliest(e)`: `e` of the row with the smallest `@timestamp`.
    Earliest,
    /// `latest(e)`: `e` of the row with the largest `@timestamp`.
    Latest,
}

impl AggFunc {
    /// Every aggregate, for lookup by name.
    pub const ALL: [AggFunc; 10] = [
        AggFunc::Count,
        AggFunc::CountDistinct,
        AggFunc::Sum,
        AggFunc::Avg,
        AggFunc::Min,
        AggFunc::Max,
        AggFunc::Pct,
        AggFunc::Stddev,
        AggFunc::Earliest,
        AggFunc::Latest,
    ];

    /// The name as written in a query.
    pub fn name(self) -> &'static str {
        match self {
            AggFunc::Count => "count",
            AggFunc::CountDistinct => "count_distinct",
            AggFunc::Sum => "sum",
            AggFunc::Avg => "avg",
            AggFunc::Min => "min",
            AggFunc::Max => "max",
            AggFunc::Pct => "pct",
            AggFunc::Stddev => "stddev",
            AggFunc::Earliest => "earliest",
            AggFunc::Latest => "latest",
        }
    }
}

/// How `parse` extracts fields.
#[derive(Debug, Clone, PartialEq)]
pub enum ParsePattern {
    /// A glob whose `*` each capture one name, in order.
    Glob {
        /// The glob as written (without quotes).
        glob: String,
        /// The names after `as`.
        names: Vec<String>,
    },
    /// A regular expression whose named groups become fields.
    Regex(Regex),
}

/// A regular expression literal, compared by its source.
#[derive(Debug, Clone)]
pub struct Regex {
    /// The source between the slashes.
    pub source: String,
    /// The compiled expression.
    pub compiled: regex::Regex,
}

impl PartialEq for Regex {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

/// A time span such as `5m` (bin sizes, `datefloor` periods).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// How many units.
    pub count: u32,
    /// Which unit.
    pub unit: TimeUnit,
}

/// The units of a [`Span`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeUnit {
    /// `ms`
    Millisecond,
    /// `s`
    Second,
    /// `m`
    Minute,
    /// `h`
    Hour,
    /// `d`
    Day,
    /// `w` (weeks start on Monday, UTC)
    Week,
    /// `mo` (calendar months)
    Month,
    /// `q` (calendar quarters)
    Quarter,
    /// `y` (calendar years)
    Year,
}

impl TimeUnit {
    /// The unit from its suffix.
    pub fn from_suffix(s: &str) -> Option<TimeUnit> {
        Some(match s {
            "ms" => TimeUnit::Millisecond,
            "s" => TimeUnit::Second,
            "m" => TimeUnit::Minute,
            "h" => TimeUnit::Hour,
            "d" => TimeUnit::Day,
            "w" => TimeUnit::Week,
            "mo" => TimeUnit::Month,
            "q" => TimeUnit::Quarter,
            "y" => TimeUnit::Year,
            _ => return None,
        })
    }

    /// The suffix as written.
    pub fn suffix(self) -> &'static str {
        match self {
            TimeUnit::Millisecond => "ms",
            TimeUnit::Second => "s",
            TimeUnit::Minute => "m",
            TimeUnit::Hour => "h",
            TimeUnit::Day => "d",
            TimeUnit::Week => "w",
            TimeUnit::Month => "mo",
            TimeUnit::Quarter => "q",
            TimeUnit::Year => "y",
        }
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.count, self.unit.suffix())
    }
}

/// A literal value.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// An integer such as `500`.
    Int(i64),
    /// A number with a fraction or exponent such as `0.5`.
    Float(f64),
    /// A quoted string.
    Str(String),
    /// A time span such as `5m`.
    Span(Span),
}

/// The right-hand side of `like` / `=~`.
#[derive(Debug, Clone, PartialEq)]
pub enum LikePattern {
    /// `like "sub"`: contains the substring (case-sensitive).
    Substring(String),
    /// `like /re/` or `=~ /re/`: the expression matches somewhere.
    Regex(Regex),
}

/// Binary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    /// `or`
    Or,
    /// `and`
    And,
    /// `=`
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
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `%`
    Rem,
    /// `^`
    Pow,
}

impl BinOp {
    /// The operator as written.
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Or => "or",
            BinOp::And => "and",
            BinOp::Eq => "=",
            BinOp::Ne => "!=",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Rem => "%",
            BinOp::Pow => "^",
        }
    }
}

/// An expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A field by name (system fields start with `@`).
    Field(String),
    /// A literal.
    Literal(Literal),
    /// `not e`
    Not(Box<Expr>),
    /// `-e`
    Neg(Box<Expr>),
    /// `a op b`
    Binary(BinOp, Box<Expr>, Box<Expr>),
    /// `e [not] like p`, `e =~ /re/`
    Like {
        /// The tested expression.
        expr: Box<Expr>,
        /// The pattern.
        pattern: LikePattern,
        /// `not like`.
        negated: bool,
    },
    /// `e [not] in [a, b]`
    In {
        /// The tested expression.
        expr: Box<Expr>,
        /// The list.
        list: Vec<Expr>,
        /// `not in`.
        negated: bool,
    },
    /// `f(a, b)`: a scalar function.
    Call(Func, Vec<Expr>),
}

/// The scalar functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Func {
    /// `abs(x)`
    Abs,
    /// `ceil(x)`
    Ceil,
    /// `floor(x)`
    Floor,
    /// `greatest(a, ..)`
    Greatest,
    /// `least(a, ..)`
    Least,
    /// `log(x)`: natural logarithm.
    Log,
    /// `sqrt(x)`
    Sqrt,
    /// `ispresent(f)`
    IsPresent,
    /// `coalesce(a, ..)`
    Coalesce,
    /// `isempty(f)`: missing or `""`.
    IsEmpty,
    /// `isblank(f)`: missing, `""` or only white space.
    IsBlank,
    /// `concat(a, ..)`
    Concat,
    /// `trim(s)`
    Trim,
    /// `strlen(s)` in characters.
    Strlen,
    /// `toupper(s)`
    ToUpper,
    /// `tolower(s)`
    ToLower,
    /// `substr(s, start[, len])`, 0-based, in characters.
    Substr,
    /// `replace(s, search, with)`: every occurrence.
    Replace,
    /// `strcontains(s, sub)`: 1 or 0.
    StrContains,
    /// `datefloor(t, span)`
    DateFloor,
    /// `dateceil(t, span)`
    DateCeil,
    /// `bin(span)`: `@timestamp` rounded down to the span.
    Bin,
}

impl Func {
    /// Every function, for lookup by name.
    pub const ALL: [Func; 22] = [
        Func::Abs,
        Func::Ceil,
        Func::Floor,
        Func::Greatest,
        Func::Least,
        Func::Log,
        Func::Sqrt,
        Func::IsPresent,
        Func::Coalesce,
        Func::IsEmpty,
        Func::IsBlank,
        Func::Concat,
        Func::Trim,
        Func::Strlen,
        Func::ToUpper,
        Func::ToLower,
        Func::Substr,
        Func::Replace,
        Func::StrContains,
        Func::DateFloor,
        Func::DateCeil,
        Func::Bin,
    ];

    /// The name as written (lookup is case-insensitive).
    pub fn name(self) -> &'static str {
        match self {
            Func::Abs => "abs",
            Func::Ceil => "ceil",
            Func::Floor => "floor",
            Func::Greatest => "greatest",
            Func::Least => "least",
            Func::Log => "log",
            Func::Sqrt => "sqrt",
            Func::IsPresent => "ispresent",
            Func::Coalesce => "coalesce",
            Func::IsEmpty => "isempty",
            Func::IsBlank => "isblank",
            Func::Concat => "concat",
            Func::Trim => "trim",
            Func::Strlen => "strlen",
            Func::ToUpper => "toupper",
            Func::ToLower => "tolower",
            Func::Substr => "substr",
            Func::Replace => "replace",
            Func::StrContains => "strcontains",
            Func::DateFloor => "datefloor",
            Func::DateCeil => "dateceil",
            Func::Bin => "bin",
        }
    }

    /// The smallest and largest number of arguments (`None`: no bound).
    pub fn arity(self) -> (usize, Option<usize>) {
        match self {
            Func::Abs
            | Func::Ceil
            | Func::Floor
            | Func::Log
            | Func::Sqrt
            | Func::IsPresent
            | Func::IsEmpty
            | Func::IsBlank
            | Func::Trim
            | Func::Strlen
            | Func::ToUpper
            | Func::ToLower
            | Func::Bin => (1, Some(1)),
            Func::Greatest | Func::Least | Func::Coalesce | Func::Concat => (1, None),
            Func::Substr => (2, Some(3)),
            Func::Replace => (3, Some(3)),
            Func::StrContains | Func::DateFloor | Func::DateCeil => (2, Some(2)),
        }
    }
}
