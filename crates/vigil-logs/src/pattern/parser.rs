//! Pattern text → [`Ast`]: the form is chosen by the first character
//! (`{` JSON, `[` space-delimited, `%` regex, anything else text terms).

use super::ast::{
    Ast, Comparison, Field, JsonCond, JsonExpr, JsonTest, NumOp, Selector, Step, StrValue,
    TermKind, TextTerm, is_key_char, is_name, is_word_char,
};
use super::lexer::{Cursor, is_bare_char, parse_number};
use super::{MAX_DEPTH, MAX_PATTERN_CHARS, MAX_REGEXES, PatternError};

/// Parses a whole pattern.
pub(crate) fn parse(src: &str) -> Result<Ast, PatternError> {
    if src.chars().count() > MAX_PATTERN_CHARS {
        return Err(PatternError::new(
            MAX_PATTERN_CHARS + 1,
            format!("a pattern is at most {MAX_PATTERN_CHARS} characters"),
        ));
    }
    let mut p = Parser {
        cur: Cursor::new(src),
        regexes: 0,
    };
    p.cur.skip_ws();
    let ast = match p.cur.peek() {
        None => return Ok(Ast::All),
        Some('{') => Ast::Json(p.json()?),
        Some('[') => Ast::Delimited(p.delimited()?),
        Some('%') => Ast::Regex(p.regex()?),
        Some(_) => return p.text().map(Ast::Text),
    };
    p.cur.skip_ws();
    if !p.cur.at_end() {
        return Err(p.cur.expected("end of pattern"));
    }
    Ok(ast)
}

/// Parses a selector (`$.a.b[0]`) standing alone, as metric values write it.
pub(crate) fn parse_selector(src: &str) -> Result<Selector, PatternError> {
    let mut p = Parser {
        cur: Cursor::new(src),
        regexes: 0,
    };
    let sel = p.selector()?;
    if !p.cur.at_end() {
        return Err(p.cur.expected("end of selector"));
    }
    Ok(sel)
}

struct Parser<'s> {
    cur: Cursor<'s>,
    regexes: usize,
}

impl Parser<'_> {
    fn regex(&mut self) -> Result<String, PatternError> {
        let at = self.cur.pos();
        if self.regexes == MAX_REGEXES {
            return Err(self
                .cur
                .error_at(at, format!("a pattern holds at most {MAX_REGEXES} regexes")));
        }
        self.regexes += 1;
        self.cur.regex()
    }

    // ---- text terms ----

    fn text(&mut self) -> Result<Vec<TextTerm>, PatternError> {
        let mut terms = Vec::new();
        loop {
            self.cur.skip_ws();
            if self.cur.at_end() {
                return Ok(terms);
            }
            let kind = if self.cur.eat("-") {
                TermKind::Excluded
            } else if self.cur.eat("?") {
                TermKind::AnyOf
            } else {
                TermKind::Required
            };
            let text = match self.cur.peek() {
                Some('"') => self.cur.quoted()?,
                Some(c) if is_word_char(c) => self.cur.take_while(is_word_char).to_owned(),
                _ => {
                    return Err(self
                        .cur
                        .expected("a term (a word, or a quoted phrase for other characters)"));
                }
            };
            terms.push(TextTerm { kind, text });
            if !self.cur.at_end() && !self.cur.skip_ws() {
                return Err(self.cur.expected(
                    "a space between terms (quote a term that holds characters other than letters, digits and _)",
                ));
            }
        }
    }

    // ---- JSON ----

    fn json(&mut self) -> Result<JsonExpr, PatternError> {
        self.cur.bump(); // `{`
        let expr = self.or(0)?;
        self.cur.skip_ws();
        if !self.cur.eat("}") {
            return Err(self.cur.expected("\"&&\", \"||\" or \"}\""));
        }
        Ok(expr)
    }

    fn or(&mut self, depth: usize) -> Result<JsonExpr, PatternError> {
        let first = self.and(depth)?;
        let mut all = vec![first];
        loop {
            self.cur.skip_ws();
            if !self.cur.eat("||") {
                break;
            }
            all.push(self.and(depth)?);
        }
        Ok(if all.len() == 1 {
            all.swap_remove(0)
        } else {
            JsonExpr::Or(all)
        })
    }

    fn and(&mut self, depth: usize) -> Result<JsonExpr, PatternError> {
        let first = self.primary(depth)?;
        let mut all = vec![first];
        loop {
            self.cur.skip_ws();
            if !self.cur.eat("&&") {
                break;
            }
            all.push(self.primary(depth)?);
        }
        Ok(if all.len() == 1 {
            all.swap_remove(0)
        } else {
            JsonExpr::And(all)
        })
    }

    fn primary(&mut self, depth: usize) -> Result<JsonExpr, PatternError> {
        self.cur.skip_ws();
        match self.cur.peek() {
            Some('(') => {
                if depth >= MAX_DEPTH {
                    return Err(self.cur.error_at(
                        self.cur.pos(),
                        format!("parentheses nest at most {MAX_DEPTH} deep"),
                    ));
                }
                self.cur.bump();
                let inner = self.or(depth + 1)?;
                self.cur.skip_ws();
                if !self.cur.eat(")") {
                    return Err(self.cur.expected("\"&&\", \"||\" or \")\""));
                }
                Ok(inner)
            }
            Some('$') => {
                let selector = self.selector()?;
                let test = self.json_test()?;
                Ok(JsonExpr::Cond(JsonCond { selector, test }))
            }
            _ => Err(self.cur.expected("a selector (\"$.…\") or \"(\"")),
        }
    }

    fn selector(&mut self) -> Result<Selector, PatternError> {
        if !self.cur.eat("$") {
            return Err(self.cur.expected("a selector starting with \"$\""));
        }
        let mut steps = Vec::new();
        loop {
            if self.cur.eat(".") {
                let key = self.cur.take_while(is_key_char);
                if key.is_empty() {
                    return Err(self.cur.expected("a key after \".\""));
                }
                steps.push(Step::Key(key.to_owned()));
            } else if self.cur.eat("[") {
                let at = self.cur.pos();
                let digits = self.cur.take_while(|c| c.is_ascii_digit());
                if digits.is_empty() {
                    return Err(self.cur.expected("an array index after \"[\""));
                }
                let index = digits
                    .parse::<u32>()
                    .map_err(|_| self.cur.error_at(at, "array index out of range"))?;
                if !self.cur.eat("]") {
                    return Err(self.cur.expected("\"]\" after the array index"));
                }
                steps.push(Step::Index(index));
            } else {
                return Ok(Selector(steps));
            }
        }
    }

    fn json_test(&mut self) -> Result<JsonTest, PatternError> {
        self.cur.skip_ws();
        if self.cur.eat_keyword("IS") {
            self.cur.skip_ws();
            return if self.cur.eat_keyword("NULL") {
                Ok(JsonTest::IsNull)
            } else if self.cur.eat_keyword("TRUE") {
                Ok(JsonTest::IsTrue)
            } else if self.cur.eat_keyword("FALSE") {
                Ok(JsonTest::IsFalse)
            } else {
                Err(self.cur.expected("NULL, TRUE or FALSE after IS"))
            };
        }
        if self.cur.eat_keyword("NOT") {
            self.cur.skip_ws();
            return if self.cur.eat_keyword("EXISTS") {
                Ok(JsonTest::NotExists)
            } else {
                Err(self.cur.expected("EXISTS after NOT"))
            };
        }
        match self.comparison()? {
            Some(c) => Ok(JsonTest::Compare(c)),
            None => Err(self.cur.expected(
                "an operator (=, !=, <, >, <=, >=), IS or NOT EXISTS after the selector",
            )),
        }
    }

    /// `op value`, or `None` when no operator comes next.
    fn comparison(&mut self) -> Result<Option<Comparison>, PatternError> {
        self.cur.skip_ws();
        let op = if self.cur.eat("!=") {
            NumOp::Ne
        } else if self.cur.eat("<=") {
            NumOp::Le
        } else if self.cur.eat(">=") {
            NumOp::Ge
        } else if self.cur.eat("=") {
            NumOp::Eq
        } else if self.cur.eat("<") {
            NumOp::Lt
        } else if self.cur.eat(">") {
            NumOp::Gt
        } else {
            return Ok(None);
        };
        self.cur.skip_ws();
        let stringy = matches!(op, NumOp::Eq | NumOp::Ne);
        let negated = op == NumOp::Ne;
        let at = self.cur.pos();
        match self.cur.peek() {
            Some('"') if stringy => {
                let text = self.cur.quoted()?;
                let value = glob(&text).map_err(|m| self.cur.error_at(at, m))?;
                Ok(Some(Comparison::Str { negated, value }))
            }
            Some('%') if stringy => {
                let re = self.regex()?;
                Ok(Some(Comparison::Str {
                    negated,
                    value: StrValue::Regex(re),
                }))
            }
            Some(c) if is_bare_char(c) => {
                let word = self.cur.take_while(is_bare_char);
                if let Some(value) = parse_number(word) {
                    return Ok(Some(Comparison::Num { op, value }));
                }
                if !stringy {
                    return Err(self.cur.error_at(
                        at,
                        format!(
                            "expected a number after {:?}, found {:?}",
                            op.as_str(),
                            word
                        ),
                    ));
                }
                let value = glob(word).map_err(|m| self.cur.error_at(at, m))?;
                Ok(Some(Comparison::Str { negated, value }))
            }
            _ => {
                let what = if stringy { "a value" } else { "a number" };
                Err(self
                    .cur
                    .expected(&format!("{what} after {:?}", op.as_str())))
            }
        }
    }

    // ---- space-delimited ----

    fn delimited(&mut self) -> Result<Vec<Field>, PatternError> {
        self.cur.bump(); // `[`
        let mut fields = Vec::new();
        let mut names: Vec<String> = Vec::new();
        loop {
            self.cur.skip_ws();
            let at = self.cur.pos();
            if self.cur.eat("...") {
                fields.push(Field::Ellipsis);
            } else {
                let name = self.cur.take_while(is_word_char);
                if !is_name(name) {
                    return Err(self.cur.error_at(
                        at,
                        format!(
                            "expected a field name or \"...\", found {}",
                            if name.is_empty() {
                                self.cur.found()
                            } else {
                                format!("{name:?}")
                            }
                        ),
                    ));
                }
                if names.iter().any(|n| n == name) {
                    return Err(self
                        .cur
                        .error_at(at, format!("field {name:?} is named twice")));
                }
                names.push(name.to_owned());
                let any_of = self.field_conditions(name)?;
                fields.push(Field::Named {
                    name: name.to_owned(),
                    any_of,
                });
            }
            self.cur.skip_ws();
            if self.cur.eat("]") {
                return Ok(fields);
            }
            if !self.cur.eat(",") {
                return Err(self.cur.expected("\",\" or \"]\""));
            }
        }
    }

    /// `name` was just read: its conditions, `cond ((&& | ||) name cond)*`.
    fn field_conditions(&mut self, name: &str) -> Result<Vec<Vec<Comparison>>, PatternError> {
        let Some(first) = self.comparison()? else {
            return Ok(Vec::new());
        };
        let mut any_of = vec![vec![first]];
        loop {
            self.cur.skip_ws();
            let or = if self.cur.eat("||") {
                true
            } else if self.cur.eat("&&") {
                false
            } else {
                return Ok(any_of);
            };
            self.cur.skip_ws();
            let at = self.cur.pos();
            let again = self.cur.take_while(is_word_char);
            if again != name {
                return Err(self.cur.error_at(
                    at,
                    format!(
                        "expected {name:?} (a field's conditions each name the field), found {}",
                        if again.is_empty() {
                            self.cur.found()
                        } else {
                            format!("{again:?}")
                        }
                    ),
                ));
            }
            let Some(cond) = self.comparison()? else {
                return Err(self.cur.expected(&format!("an operator after {name:?}")));
            };
            if or {
                any_of.push(vec![cond]);
            } else if let Some(last) = any_of.last_mut() {
                last.push(cond);
            }
        }
    }
}

/// A string value with its `*` wildcards: `*` alone is the existence test;
/// otherwise one `*` may open and one may close it, none in between.
pub(crate) fn glob(text: &str) -> Result<StrValue, String> {
    if text == "*" {
        return Ok(StrValue::Any);
    }
    let (leading, rest) = match text.strip_prefix('*') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (trailing, rest) = match rest.strip_suffix('*') {
        Some(rest) => (true, rest),
        None => (false, rest),
    };
    if rest.contains('*') {
        return Err("a \"*\" wildcard may only start or end a value".to_owned());
    }
    Ok(StrValue::Glob {
        leading,
        text: rest.to_owned(),
        trailing,
    })
}
