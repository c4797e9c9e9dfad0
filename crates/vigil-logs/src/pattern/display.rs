//! The canonical pattern text of an [`Ast`]: single spaces, strings always
//! quoted, parentheses only where precedence needs them, so that parsing
//! the printed text gives back the same tree.

use std::fmt::{self, Display, Formatter, Write};

use super::ast::{
    Ast, Comparison, Field, JsonCond, JsonExpr, JsonTest, Selector, Step, StrValue, TermKind,
    TextTerm, is_word,
};

impl Display for Ast {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Ast::All => Ok(()),
            Ast::Text(terms) => {
                for (i, term) in terms.iter().enumerate() {
                    if i > 0 {
                        f.write_char(' ')?;
                    }
                    write!(f, "{term}")?;
                }
                Ok(())
            }
            Ast::Json(expr) => write!(f, "{{ {expr} }}"),
            Ast::Delimited(fields) => {
                f.write_char('[')?;
                for (i, field) in fields.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{field}")?;
                }
                f.write_char(']')
            }
            Ast::Regex(re) => write!(f, "%{re}%"),
        }
    }
}

impl Display for TextTerm {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self.kind {
            TermKind::Required => {}
            TermKind::AnyOf => f.write_char('?')?,
            TermKind::Excluded => f.write_char('-')?,
        }
        if is_word(&self.text) {
            f.write_str(&self.text)
        } else {
            quoted(f, "", &self.text, "")
        }
    }
}

impl Display for JsonExpr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            JsonExpr::Cond(cond) => write!(f, "{cond}"),
            JsonExpr::And(all) => join(f, all, " && ", |e| !matches!(e, JsonExpr::Cond(_))),
            JsonExpr::Or(all) => join(f, all, " || ", |e| matches!(e, JsonExpr::Or(_))),
        }
    }
}

/// Writes `all` separated by `sep`, parenthesising the operands for which
/// `paren` holds (a nested operator the flat text would re-associate).
fn join(
    f: &mut Formatter<'_>,
    all: &[JsonExpr],
    sep: &str,
    paren: impl Fn(&JsonExpr) -> bool,
) -> fmt::Result {
    for (i, e) in all.iter().enumerate() {
        if i > 0 {
            f.write_str(sep)?;
        }
        if paren(e) {
            write!(f, "({e})")?;
        } else {
            write!(f, "{e}")?;
        }
    }
    Ok(())
}

impl Display for JsonCond {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.selector)?;
        match &self.test {
            JsonTest::Compare(c) => write!(f, " {c}"),
            JsonTest::IsNull => f.write_str(" IS NULL"),
            JsonTest::NotExists => f.write_str(" NOT EXISTS"),
            JsonTest::IsTrue => f.write_str(" IS TRUE"),
            JsonTest::IsFalse => f.write_str(" IS FALSE"),
        }
    }
}

impl Display for Selector {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_char('$')?;
        for step in &self.0 {
            match step {
                Step::Key(k) => write!(f, ".{k}")?,
                Step::Index(i) => write!(f, "[{i}]")?,
            }
        }
        Ok(())
    }
}

impl Display for Comparison {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Comparison::Str { negated, value } => {
                f.write_str(if *negated { "!= " } else { "= " })?;
                match value {
                    StrValue::Any => f.write_char('*'),
                    StrValue::Glob {
                        leading,
                        text,
                        trailing,
                    } => quoted(
                        f,
                        if *leading { "*" } else { "" },
                        text,
                        if *trailing { "*" } else { "" },
                    ),
                    StrValue::Regex(re) => write!(f, "%{re}%"),
                }
            }
            Comparison::Num { op, value } => {
                write!(f, "{} ", op.as_str())?;
                number(f, *value)
            }
        }
    }
}

impl Display for Field {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Field::Ellipsis => f.write_str("..."),
            Field::Named { name, any_of } => {
                if any_of.is_empty() {
                    return f.write_str(name);
                }
                for (i, all) in any_of.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" || ")?;
                    }
                    for (j, c) in all.iter().enumerate() {
                        if j > 0 {
                            f.write_str(" && ")?;
                        }
                        write!(f, "{name} {c}")?;
                    }
                }
                Ok(())
            }
        }
    }
}

/// `"…"` with `"` and `\` escaped.
fn quoted(f: &mut Formatter<'_>, before: &str, text: &str, after: &str) -> fmt::Result {
    f.write_char('"')?;
    f.write_str(before)?;
    for c in text.chars() {
        if matches!(c, '"' | '\\') {
            f.write_char('\\')?;
        }
        f.write_char(c)?;
    }
    f.write_str(after)?;
    f.write_char('"')
}

/// Integers as integers; other values in Rust's shortest round-trip form,
/// whose exponent form (`1e20`, `1.5e-7`) the parser reads back.
fn number(f: &mut Formatter<'_>, v: f64) -> fmt::Result {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        // Exact: |v| < 2^53 and integral.
        write!(f, "{}", v as i64)
    } else {
        write!(f, "{v:?}")
    }
}
