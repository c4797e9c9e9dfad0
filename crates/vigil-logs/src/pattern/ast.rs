//! The syntax tree of a filter pattern. [`super::Pattern::parse`] builds it;
//! its `Display` (in `display.rs`) prints the canonical pattern text, so
//! `parse(print(ast)) == ast`.

/// A parsed filter pattern, one variant per form of SEMANTICS §3.1.
#[derive(Debug, Clone, PartialEq)]
pub enum Ast {
    /// The empty pattern: matches every event.
    All,
    /// Text terms (`ERROR -Exiting ?WARN "Failed to process"`), in order.
    Text(Vec<TextTerm>),
    /// A JSON pattern `{ … }`.
    Json(JsonExpr),
    /// A space-delimited pattern `[ip, user, ..., status = 5*]`.
    Delimited(Vec<Field>),
    /// A standalone regular expression `%…%` (the text between the `%`s).
    Regex(String),
}

/// One text term.
#[derive(Debug, Clone, PartialEq)]
pub struct TextTerm {
    /// Whether the term is required, one of the any-of set, or excluded.
    pub kind: TermKind,
    /// The substring looked for (case-sensitive), unquoted and unescaped.
    pub text: String,
}

/// How a text term takes part in the match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TermKind {
    /// A bare term: must appear.
    Required,
    /// `?term`: at least one of the `?` terms must appear.
    AnyOf,
    /// `-term`: must not appear.
    Excluded,
}

/// A JSON pattern's boolean expression. `&&` binds tighter than `||`;
/// each `And`/`Or` holds at least two operands.
#[derive(Debug, Clone, PartialEq)]
pub enum JsonExpr {
    /// All operands must hold.
    And(Vec<JsonExpr>),
    /// At least one operand must hold.
    Or(Vec<JsonExpr>),
    /// One test on one selector.
    Cond(JsonCond),
}

/// `selector test`, e.g. `$.latency_us > 2000`.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonCond {
    /// Where in the event's JSON object to look.
    pub selector: Selector,
    /// What the value found there must satisfy.
    pub test: JsonTest,
}

/// The test a JSON condition applies to its selector's value.
#[derive(Debug, Clone, PartialEq)]
pub enum JsonTest {
    /// A string or numeric comparison.
    Compare(Comparison),
    /// `IS NULL`: the value is an explicit `null`.
    IsNull,
    /// `NOT EXISTS`: a key on the path is absent.
    NotExists,
    /// `IS TRUE`: the value is the boolean `true`.
    IsTrue,
    /// `IS FALSE`: the value is the boolean `false`.
    IsFalse,
}

/// A comparison, shared by JSON conditions and space-delimited fields.
#[derive(Debug, Clone, PartialEq)]
pub enum Comparison {
    /// `= value` (or `!= value` when `negated`) against a string value.
    Str {
        /// `!=` rather than `=`.
        negated: bool,
        /// What the string must look like.
        value: StrValue,
    },
    /// A numeric comparison; only numbers match it.
    Num {
        /// The operator.
        op: NumOp,
        /// The finite number on its right.
        value: f64,
    },
}

/// The right-hand side of a string comparison.
#[derive(Debug, Clone, PartialEq)]
pub enum StrValue {
    /// `*` alone: any scalar value is there (an existence test).
    Any,
    /// A literal, with a `*` wildcard at the start and/or the end.
    Glob {
        /// `*text…`: anything may come before.
        leading: bool,
        /// The literal part (never contains `*`).
        text: String,
        /// `…text*`: anything may come after.
        trailing: bool,
    },
    /// `%regex%`: the value contains a match of the regex.
    Regex(String),
}

/// A numeric comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumOp {
    /// `=`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `>`
    Gt,
    /// `<=`
    Le,
    /// `>=`
    Ge,
}

impl NumOp {
    /// The operator as written in a pattern.
    pub fn as_str(self) -> &'static str {
        match self {
            NumOp::Eq => "=",
            NumOp::Ne => "!=",
            NumOp::Lt => "<",
            NumOp::Gt => ">",
            NumOp::Le => "<=",
            NumOp::Ge => ">=",
        }
    }

    /// Applies the operator to `left op right`.
    pub fn holds(self, left: f64, right: f64) -> bool {
        match self {
            NumOp::Eq => left == right,
            NumOp::Ne => left != right,
            NumOp::Lt => left < right,
            NumOp::Gt => left > right,
            NumOp::Le => left <= right,
            NumOp::Ge => left >= right,
        }
    }
}

/// A JSON selector `$.a.b[0]`: the steps after `$`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Selector(pub Vec<Step>);

/// One step of a selector.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Step {
    /// `.key`
    Key(String),
    /// `[index]`
    Index(u32),
}

/// One field of a space-delimited pattern.
#[derive(Debug, Clone, PartialEq)]
pub enum Field {
    /// `...`: any number of tokens, possibly none.
    Ellipsis,
    /// One token, named, with optional conditions.
    Named {
        /// The field's name (`status_code`, exposed as `$status_code`).
        name: String,
        /// The conditions as an OR of ANDs (`&&` binds tighter than `||`);
        /// empty when the field has none.
        any_of: Vec<Vec<Comparison>>,
    },
}

/// Whether `s` may be written as a bare word: a non-empty run of letters,
/// digits and `_` (text terms, names).
pub(crate) fn is_word(s: &str) -> bool {
    !s.is_empty() && s.chars().all(is_word_char)
}

pub(crate) fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Whether `s` is a field name: a word that does not start with a digit
/// (so `$1` is always a position).
pub(crate) fn is_name(s: &str) -> bool {
    is_word(s) && !s.starts_with(|c: char| c.is_ascii_digit())
}

/// Characters of a selector key (`$.user-agent`, `$.@timestamp`).
pub(crate) fn is_key_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '-' | '@')
}
