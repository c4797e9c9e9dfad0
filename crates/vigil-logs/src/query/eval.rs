//! Expressions compiled against a schema (names resolved to slots once),
//! and the row they are evaluated on.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::HashMap;

use memchr::memmem::Finder;

use super::Event;
use super::ast::{BinOp, Expr, Func, LikePattern, Literal};
use super::functions::call;
use super::json::{PathTree, extract};
use super::value::{Value, compare};

/// The system fields of every event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum System {
    Timestamp,
    Message,
    LogStream,
    Log,
    IngestionTime,
}

impl System {
    pub fn from_name(name: &str) -> Option<System> {
        Some(match name {
            "@timestamp" => System::Timestamp,
            "@message" => System::Message,
            "@logStream" => System::LogStream,
            "@log" => System::Log,
            "@ingestionTime" => System::IngestionTime,
            _ => return None,
        })
    }
}

/// The names of one phase of the pipeline (before the first `stats`, or
/// after each) and the slots they live in.
#[derive(Debug, Clone, Default)]
pub(crate) struct Schema {
    /// Whether rows of this phase are events (system fields and JSON).
    pub events: bool,
    pub names: Vec<String>,
    index: HashMap<String, usize>,
    /// The JSON paths read in this phase.
    pub json: PathTree,
}

impl Schema {
    pub fn events() -> Schema {
        Schema {
            events: true,
            ..Schema::default()
        }
    }

    /// The slot of `name`, created on first use.
    pub fn slot(&mut self, name: &str) -> usize {
        if let Some(&i) = self.index.get(name) {
            return i;
        }
        let i = self.names.len();
        self.names.push(name.to_owned());
        self.index.insert(name.to_owned(), i);
        if self.events {
            self.json.insert(name, i);
        }
        i
    }

    /// How an expression reads `name`.
    pub fn field(&mut self, name: &str) -> CExpr {
        if self.events
            && let Some(sys) = System::from_name(name)
        {
            return CExpr::System(sys);
        }
        CExpr::Slot(self.slot(name))
    }

    pub fn compile(&mut self, e: &Expr) -> CExpr {
        match e {
            Expr::Field(name) => self.field(name),
            Expr::Literal(lit) => CExpr::Const(match lit {
                Literal::Int(n) => Value::Int(*n),
                Literal::Float(x) => Value::Float(*x),
                Literal::Str(s) => Value::Str(Cow::Owned(s.clone())),
                // A span alone is its length in ms where a number is wanted.
                Literal::Span(_) => Value::Null,
            }),
            Expr::Not(e) => CExpr::Not(Box::new(self.compile(e))),
            Expr::Neg(e) => CExpr::Neg(Box::new(self.compile(e))),
            Expr::Binary(op, a, b) => {
                CExpr::Binary(*op, Box::new(self.compile(a)), Box::new(self.compile(b)))
            }
            Expr::Like {
                expr,
                pattern,
                negated,
            } => CExpr::Like {
                expr: Box::new(self.compile(expr)),
                pattern: match pattern {
                    LikePattern::Substring(s) => {
                        Like::Sub(Box::new(Finder::new(s.as_bytes()).into_owned()))
                    }
                    LikePattern::Regex(re) => Like::Regex(re.compiled.clone()),
                },
                negated: *negated,
            },
            Expr::In {
                expr,
                list,
                negated,
            } => CExpr::In {
                expr: Box::new(self.compile(expr)),
                list: list.iter().map(|e| self.compile(e)).collect(),
                negated: *negated,
            },
            Expr::Call(func, args) => {
                let span = args.iter().find_map(|a| match a {
                    Expr::Literal(Literal::Span(s)) => Some(*s),
                    _ => None,
                });
                let args = match func {
                    // bin(span) reads @timestamp (or the `@timestamp` column).
                    Func::Bin => vec![self.field("@timestamp")],
                    _ => args.iter().map(|a| self.compile(a)).collect(),
                };
                CExpr::Call {
                    func: *func,
                    args,
                    span,
                }
            }
        }
    }
}

/// A `like` pattern ready to match.
#[derive(Debug, Clone)]
pub(crate) enum Like {
    Sub(Box<Finder<'static>>),
    Regex(regex::Regex),
}

/// An expression with its names resolved.
#[derive(Debug, Clone)]
pub(crate) enum CExpr {
    Slot(usize),
    System(System),
    Const(Value<'static>),
    Not(Box<CExpr>),
    Neg(Box<CExpr>),
    Binary(BinOp, Box<CExpr>, Box<CExpr>),
    Like {
        expr: Box<CExpr>,
        pattern: Like,
        negated: bool,
    },
    In {
        expr: Box<CExpr>,
        list: Vec<CExpr>,
        negated: bool,
    },
    Call {
        func: Func,
        args: Vec<CExpr>,
        span: Option<super::ast::Span>,
    },
}

/// The system fields of a row that is an event.
#[derive(Debug, Clone)]
pub(crate) struct Sys<'a> {
    pub timestamp_ms: i64,
    pub ingestion_ms: i64,
    pub group: Cow<'a, str>,
    pub stream: Cow<'a, str>,
    pub message: Cow<'a, str>,
}

impl<'a> Sys<'a> {
    pub fn from_event(ev: &Event<'a>) -> Self {
        Sys {
            timestamp_ms: ev.timestamp_ms,
            ingestion_ms: ev.ingestion_ms,
            group: Cow::Borrowed(ev.group),
            stream: Cow::Borrowed(ev.stream),
            message: Cow::Borrowed(ev.message),
        }
    }

    fn into_owned(self) -> Sys<'static> {
        Sys {
            timestamp_ms: self.timestamp_ms,
            ingestion_ms: self.ingestion_ms,
            group: Cow::Owned(self.group.into_owned()),
            stream: Cow::Owned(self.stream.into_owned()),
            message: Cow::Owned(self.message.into_owned()),
        }
    }
}

/// A row: an event (with its discovered and computed fields) or a row of
/// a `stats` result.
#[derive(Debug, Clone)]
pub(crate) struct Row<'a> {
    pub sys: Option<Sys<'a>>,
    /// `None`: not set (yet); JSON discovery fills only these.
    pub slots: Vec<Option<Value<'a>>>,
    /// Whether the message has been searched for JSON fields.
    pub json_done: bool,
}

impl<'a> Row<'a> {
    pub fn timestamp(&self) -> Option<i64> {
        self.sys.as_ref().map(|s| s.timestamp_ms)
    }

    /// Discovers the JSON fields now (before the row outlives its event).
    pub fn discover(&mut self, schema: &Schema, scratch: &mut Vec<usize>) {
        if self.json_done {
            return;
        }
        self.json_done = true;
        if schema.json.is_empty() {
            return;
        }
        // An owned row was discovered before it was made owned.
        let msg: &'a str = match &self.sys {
            Some(Sys {
                message: Cow::Borrowed(m),
                ..
            }) => m,
            _ => return,
        };
        extract(msg, &schema.json, &mut self.slots, scratch);
    }

    pub fn into_owned(self) -> Row<'static> {
        Row {
            sys: self.sys.map(Sys::into_owned),
            slots: self
                .slots
                .into_iter()
                .map(|s| s.map(Value::into_owned))
                .collect(),
            json_done: true,
        }
    }
}

/// What evaluation needs besides the row.
pub(crate) struct Ctx<'s> {
    pub schema: &'s Schema,
    pub scratch: &'s mut Vec<usize>,
}

impl CExpr {
    pub fn eval<'a>(&self, row: &mut Row<'a>, cx: &mut Ctx<'_>) -> Value<'a> {
        match self {
            CExpr::Slot(i) => {
                if row.slots.get(*i).is_some_and(Option::is_none) && !row.json_done {
                    row.discover(cx.schema, cx.scratch);
                }
                row.slots
                    .get(*i)
                    .and_then(Clone::clone)
                    .unwrap_or(Value::Null)
            }
            CExpr::System(sys) => match &row.sys {
                None => Value::Null,
                Some(s) => match sys {
                    System::Timestamp => Value::Time(s.timestamp_ms),
                    System::IngestionTime => Value::Time(s.ingestion_ms),
                    System::Message => Value::Str(s.message.clone()),
                    System::LogStream => Value::Str(s.stream.clone()),
                    System::Log => Value::Str(s.group.clone()),
                },
            },
            CExpr::Const(v) => v.clone(),
            CExpr::Not(e) => match e.eval(row, cx) {
                Value::Null => Value::Null,
                v => Value::Bool(!v.truthy()),
            },
            CExpr::Neg(e) => match e.eval(row, cx).as_number() {
                Some(Value::Int(n)) => n
                    .checked_neg()
                    .map_or(Value::Float(-(n as f64)), Value::Int),
                Some(Value::Float(x)) => Value::Float(-x),
                _ => Value::Null,
            },
            CExpr::Binary(op, a, b) => binary(*op, a, b, row, cx),
            CExpr::Like {
                expr,
                pattern,
                negated,
            } => {
                let v = expr.eval(row, cx);
                let Some(text) = v.text() else {
                    return Value::Null;
                };
                let hit = match pattern {
                    Like::Sub(f) => f.find(text.as_bytes()).is_some(),
                    Like::Regex(re) => re.is_match(&text),
                };
                Value::Bool(hit != *negated)
            }
            CExpr::In {
                expr,
                list,
                negated,
            } => {
                let v = expr.eval(row, cx);
                if v.is_null() {
                    return Value::Null;
                }
                let mut hit = false;
                for item in list {
                    let w = item.eval(row, cx);
                    if compare(&v, &w) == Some(Ordering::Equal) {
                        hit = true;
                        break;
                    }
                }
                Value::Bool(hit != *negated)
            }
            CExpr::Call { func, args, span } => {
                let mut values = Vec::with_capacity(args.len());
                for a in args {
                    values.push(a.eval(row, cx));
                }
                call(*func, values, *span)
            }
        }
    }

    /// Whether `filter` keeps the row.
    pub fn test(&self, row: &mut Row<'_>, cx: &mut Ctx<'_>) -> bool {
        self.eval(row, cx).truthy()
    }
}

fn binary<'a>(op: BinOp, a: &CExpr, b: &CExpr, row: &mut Row<'a>, cx: &mut Ctx<'_>) -> Value<'a> {
    match op {
        BinOp::And => {
            let x = a.eval(row, cx);
            if !x.is_null() && !x.truthy() {
                return Value::Bool(false);
            }
            let y = b.eval(row, cx);
            match (x.is_null(), y.is_null(), y.truthy()) {
                (_, false, false) => Value::Bool(false),
                (false, false, true) => Value::Bool(true),
                _ => Value::Null,
            }
        }
        BinOp::Or => {
            let x = a.eval(row, cx);
            if x.truthy() {
                return Value::Bool(true);
            }
            let y = b.eval(row, cx);
            match (x.is_null(), y.is_null(), y.truthy()) {
                (_, _, true) => Value::Bool(true),
                (false, false, false) => Value::Bool(false),
                _ => Value::Null,
            }
        }
        BinOp::Eq | BinOp::Ne | BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {
            let (x, y) = (a.eval(row, cx), b.eval(row, cx));
            let Some(ord) = compare(&x, &y) else {
                return Value::Null;
            };
            Value::Bool(match op {
                BinOp::Eq => ord == Ordering::Equal,
                BinOp::Ne => ord != Ordering::Equal,
                BinOp::Lt => ord == Ordering::Less,
                BinOp::Le => ord != Ordering::Greater,
                BinOp::Gt => ord == Ordering::Greater,
                _ => ord != Ordering::Less,
            })
        }
        _ => {
            let (x, y) = (a.eval(row, cx), b.eval(row, cx));
            arithmetic(op, &x, &y)
        }
    }
}

/// `+ - * / % ^` on numbers; integers stay integers except for `/` and `^`
/// with a negative exponent, and fall back to floats on overflow.
pub(crate) fn arithmetic(op: BinOp, x: &Value<'_>, y: &Value<'_>) -> Value<'static> {
    let (Some(x), Some(y)) = (x.as_number(), y.as_number()) else {
        return Value::Null;
    };
    if let (Value::Int(i), Value::Int(j)) = (&x, &y) {
        let (i, j) = (*i, *j);
        let exact = match op {
            BinOp::Add => i.checked_add(j),
            BinOp::Sub => i.checked_sub(j),
            BinOp::Mul => i.checked_mul(j),
            BinOp::Rem => i.checked_rem(j),
            BinOp::Pow => u32::try_from(j).ok().and_then(|e| i.checked_pow(e)),
            _ => None,
        };
        if let Some(n) = exact {
            return Value::Int(n);
        }
        if op == BinOp::Rem && j == 0 {
            return Value::Null;
        }
    }
    let (Some(x), Some(y)) = (x.as_f64(), y.as_f64()) else {
        return Value::Null;
    };
    Value::from_f64(match op {
        BinOp::Add => x + y,
        BinOp::Sub => x - y,
        BinOp::Mul => x * y,
        BinOp::Div => x / y,
        BinOp::Rem => x % y,
        _ => x.powf(y),
    })
}
