//! Composite alarm rules (SEMANTICS.md §2.4): the parser and the evaluator.
//!
//! ```text
//! rule  := or
//! or    := and ( "OR" and )*
//! and   := unary ( "AND" unary )*
//! unary := "NOT" unary | "(" or ")" | "TRUE" | "FALSE"
//!        | ("ALARM" | "OK" | "INSUFFICIENT_DATA") "(" ref ")"
//! ref   := alarm-name | "\"" alarm-name "\""
//! ```
//!
//! Precedence NOT > AND > OR; keywords are upper case. A bare name runs to
//! the closing `)` and is trimmed; a name holding `)` must be quoted.
//! "Elements" are the operators, `TRUE`/`FALSE` and the state functions.

use std::collections::BTreeSet;
use std::fmt;

use crate::notify::AlarmState;

/// Longest rule, in characters.
pub const MAX_RULE_CHARS: usize = 10_240;
/// Most distinct alarms a rule refers to.
pub const MAX_CHILDREN: usize = 100;
/// Most elements (operators, constants, state functions) in a rule.
pub const MAX_ELEMENTS: usize = 500;
/// Deepest nesting of parentheses and `NOT`s, so parsing cannot exhaust the stack.
pub const MAX_DEPTH: usize = 200;

/// A parsed rule.
#[derive(Debug, Clone, PartialEq)]
pub enum Rule {
    /// `TRUE`.
    True,
    /// `FALSE`.
    False,
    /// `NOT r`.
    Not(Box<Rule>),
    /// `a AND b AND ...`.
    And(Vec<Rule>),
    /// `a OR b OR ...`.
    Or(Vec<Rule>),
    /// `ALARM(name)`, `OK(name)`, `INSUFFICIENT_DATA(name)`: the alarm is in that state.
    State(AlarmState, String),
}

/// A rule that does not parse: where (1-based character column) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct RuleError {
    /// 1-based column of the offending character.
    pub column: usize,
    /// What was expected or what limit was passed.
    pub message: String,
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "column {}: {}", self.column, self.message)
    }
}

impl Rule {
    /// Parses a rule, enforcing the length, children and element limits.
    pub fn parse(text: &str) -> Result<Rule, RuleError> {
        let chars: Vec<char> = text.chars().collect();
        if chars.len() > MAX_RULE_CHARS {
            return Err(RuleError {
                column: MAX_RULE_CHARS + 1,
                message: format!(
                    "a rule is at most {MAX_RULE_CHARS} characters, got {}",
                    chars.len()
                ),
            });
        }
        let mut p = Parser {
            chars,
            pos: 0,
            elements: 0,
            children: BTreeSet::new(),
        };
        let rule = p.or(0)?;
        let word = p.peek_word();
        if p.pos < p.chars.len() {
            let got = if word.is_empty() {
                p.chars[p.pos].to_string()
            } else {
                word
            };
            return Err(p.error(format!(
                "expected AND, OR or the end of the rule, got `{got}`"
            )));
        }
        Ok(rule)
    }

    /// The alarms the rule refers to.
    pub fn children(&self) -> BTreeSet<&str> {
        let mut out = BTreeSet::new();
        self.collect(&mut out);
        out
    }

    fn collect<'a>(&'a self, out: &mut BTreeSet<&'a str>) {
        match self {
            Rule::True | Rule::False => {}
            Rule::Not(r) => r.collect(out),
            Rule::And(rs) | Rule::Or(rs) => rs.iter().for_each(|r| r.collect(out)),
            Rule::State(_, name) => {
                out.insert(name);
            }
        }
    }

    /// Evaluates with the children's states; an unknown child is in no state.
    pub fn eval(&self, state_of: &dyn Fn(&str) -> Option<AlarmState>) -> bool {
        match self {
            Rule::True => true,
            Rule::False => false,
            Rule::Not(r) => !r.eval(state_of),
            Rule::And(rs) => rs.iter().all(|r| r.eval(state_of)),
            Rule::Or(rs) => rs.iter().any(|r| r.eval(state_of)),
            Rule::State(want, name) => state_of(name) == Some(*want),
        }
    }
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
    elements: usize,
    children: BTreeSet<String>,
}

fn is_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

impl Parser {
    fn error(&self, message: impl Into<String>) -> RuleError {
        RuleError {
            column: self.pos + 1,
            message: message.into(),
        }
    }

    fn skip_ws(&mut self) {
        while self.pos < self.chars.len() && self.chars[self.pos].is_whitespace() {
            self.pos += 1;
        }
    }

    /// The word at the cursor (after whitespace), without consuming it.
    fn peek_word(&mut self) -> String {
        self.skip_ws();
        self.chars[self.pos..]
            .iter()
            .take_while(|c| is_word(**c))
            .collect()
    }

    fn element(&mut self) -> Result<(), RuleError> {
        self.elements += 1;
        if self.elements > MAX_ELEMENTS {
            return Err(self.error(format!("a rule has at most {MAX_ELEMENTS} elements")));
        }
        Ok(())
    }

    fn or(&mut self, depth: usize) -> Result<Rule, RuleError> {
        let mut items = vec![self.and(depth)?];
        while self.peek_word() == "OR" {
            self.element()?;
            self.pos += 2;
            items.push(self.and(depth)?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Rule::Or(items)
        })
    }

    fn and(&mut self, depth: usize) -> Result<Rule, RuleError> {
        let mut items = vec![self.unary(depth)?];
        while self.peek_word() == "AND" {
            self.element()?;
            self.pos += 3;
            items.push(self.unary(depth)?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Rule::And(items)
        })
    }

    fn unary(&mut self, depth: usize) -> Result<Rule, RuleError> {
        if depth > MAX_DEPTH {
            return Err(self.error(format!("a rule nests at most {MAX_DEPTH} levels")));
        }
        let word = self.peek_word();
        if word.is_empty() {
            return match self.chars.get(self.pos) {
                Some('(') => {
                    self.pos += 1;
                    let inner = self.or(depth + 1)?;
                    self.expect(')')?;
                    Ok(inner)
                }
                Some(c) => Err(self.error(format!(
                    "expected ALARM, OK, INSUFFICIENT_DATA, TRUE, FALSE, NOT or `(`, got `{c}`"
                ))),
                None => Err(self.error(
                    "expected ALARM, OK, INSUFFICIENT_DATA, TRUE, FALSE, NOT or `(`, got the end of the rule",
                )),
            };
        }
        let state = match word.as_str() {
            "NOT" => {
                self.element()?;
                self.pos += 3;
                return Ok(Rule::Not(Box::new(self.unary(depth + 1)?)));
            }
            "TRUE" | "FALSE" => {
                self.element()?;
                self.pos += word.len();
                return Ok(if word == "TRUE" {
                    Rule::True
                } else {
                    Rule::False
                });
            }
            "ALARM" => AlarmState::Alarm,
            "OK" => AlarmState::Ok,
            "INSUFFICIENT_DATA" => AlarmState::InsufficientData,
            other => {
                return Err(self.error(format!(
                    "expected ALARM, OK, INSUFFICIENT_DATA, TRUE, FALSE, NOT or `(`, got `{other}`"
                )));
            }
        };
        self.element()?;
        self.pos += word.len();
        self.expect('(')?;
        let name = self.reference()?;
        self.expect(')')?;
        if !self.children.contains(&name) {
            if self.children.len() == MAX_CHILDREN {
                return Err(self.error(format!("a rule refers to at most {MAX_CHILDREN} alarms")));
            }
            self.children.insert(name.clone());
        }
        Ok(Rule::State(state, name))
    }

    fn expect(&mut self, want: char) -> Result<(), RuleError> {
        self.skip_ws();
        match self.chars.get(self.pos) {
            Some(c) if *c == want => {
                self.pos += 1;
                Ok(())
            }
            Some(c) => Err(self.error(format!("expected `{want}`, got `{c}`"))),
            None => Err(self.error(format!("expected `{want}`, got the end of the rule"))),
        }
    }

    fn reference(&mut self) -> Result<String, RuleError> {
        self.skip_ws();
        let start = self.pos;
        let name: String = if self.chars.get(self.pos) == Some(&'"') {
            self.pos += 1;
            let from = self.pos;
            while self.pos < self.chars.len() && self.chars[self.pos] != '"' {
                self.pos += 1;
            }
            if self.pos == self.chars.len() {
                return Err(RuleError {
                    column: start + 1,
                    message: "unterminated quoted alarm name".into(),
                });
            }
            let name = self.chars[from..self.pos].iter().collect();
            self.pos += 1;
            name
        } else {
            while self.pos < self.chars.len() && self.chars[self.pos] != ')' {
                self.pos += 1;
            }
            self.chars[start..self.pos]
                .iter()
                .collect::<String>()
                .trim_end()
                .to_string()
        };
        if name.is_empty() {
            return Err(RuleError {
                column: start + 1,
                message: "expected an alarm name".into(),
            });
        }
        Ok(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(s: &str) -> Rule {
        Rule::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn st(state: AlarmState, name: &str) -> Rule {
        Rule::State(state, name.to_string())
    }

    #[test]
    fn not_binds_tighter_than_and_which_binds_tighter_than_or() {
        let r = parse("NOT ALARM(a) AND OK(b) OR ALARM(c)");
        assert_eq!(
            r,
            Rule::Or(vec![
                Rule::And(vec![
                    Rule::Not(Box::new(st(AlarmState::Alarm, "a"))),
                    st(AlarmState::Ok, "b")
                ]),
                st(AlarmState::Alarm, "c"),
            ])
        );
        let r = parse("ALARM(a) AND (OK(b) OR TRUE)");
        assert_eq!(
            r,
            Rule::And(vec![
                st(AlarmState::Alarm, "a"),
                Rule::Or(vec![st(AlarmState::Ok, "b"), Rule::True])
            ])
        );
    }

    #[test]
    fn quoted_and_bare_names() {
        assert_eq!(
            parse(r#"ALARM("cpu (high) AND more")"#),
            st(AlarmState::Alarm, "cpu (high) AND more")
        );
        assert_eq!(
            parse("INSUFFICIENT_DATA( my-alarm.1 )"),
            st(AlarmState::InsufficientData, "my-alarm.1")
        );
        let rule = parse("ALARM(a) OR OK(\"b\") OR ALARM(a)");
        assert_eq!(
            rule.children().into_iter().collect::<Vec<_>>(),
            vec!["a", "b"]
        );
    }

    #[test]
    fn errors_point_at_the_1_based_column() {
        let e = Rule::parse("ALARM(a) AND").unwrap_err();
        assert_eq!(e.column, 13);
        let e = Rule::parse("ALARM(a) XOR OK(b)").unwrap_err();
        assert_eq!((e.column, e.message.contains("XOR")), (10, true));
        let e = Rule::parse("ALARM a").unwrap_err();
        assert_eq!(e.column, 7);
        let e = Rule::parse("ALARM(\"a").unwrap_err();
        assert_eq!(e.column, 7);
        let e = Rule::parse("(TRUE").unwrap_err();
        assert_eq!(e.column, 6);
        let e = Rule::parse("ALARM()").unwrap_err();
        assert_eq!(e.column, 7);
        let e = Rule::parse("TRUE )").unwrap_err();
        assert_eq!(e.column, 6);
    }

    #[test]
    fn limits_are_enforced() {
        let long = format!("ALARM(\"{}\")", "a".repeat(MAX_RULE_CHARS));
        assert!(Rule::parse(&long).unwrap_err().message.contains("10240"));
        let many: Vec<String> = (0..=MAX_CHILDREN).map(|i| format!("ALARM(a{i})")).collect();
        assert!(
            Rule::parse(&many.join(" OR "))
                .unwrap_err()
                .message
                .contains("100 alarms")
        );
        let ok: Vec<String> = (0..MAX_CHILDREN).map(|i| format!("ALARM(a{i})")).collect();
        assert_eq!(parse(&ok.join(" OR ")).children().len(), MAX_CHILDREN);
        let elements = vec!["TRUE"; 251].join(" OR ");
        assert!(
            Rule::parse(&elements)
                .unwrap_err()
                .message
                .contains("500 elements")
        );
        let deep = format!("{}TRUE{}", "(".repeat(1000), ")".repeat(1000));
        assert!(Rule::parse(&deep).unwrap_err().message.contains("nests"));
    }

    #[test]
    fn evaluation_follows_children_states() {
        let r = parse("ALARM(a) AND NOT OK(b)");
        let states = |a, b| {
            move |n: &str| match n {
                "a" => Some(a),
                "b" => Some(b),
                _ => None,
            }
        };
        assert!(r.eval(&states(AlarmState::Alarm, AlarmState::InsufficientData)));
        assert!(!r.eval(&states(AlarmState::Alarm, AlarmState::Ok)));
        assert!(!r.eval(&states(AlarmState::Ok, AlarmState::Alarm)));
        assert!(!parse("ALARM(missing)").eval(&|_| None));
    }

    fn rule() -> impl Strategy<Value = Rule> {
        let leaf = prop_oneof![
            Just(Rule::True),
            Just(Rule::False),
            ("[a-z][a-z0-9 ()-]{0,8}[a-z]", 0..3u8).prop_map(|(n, s)| {
                let state = [
                    AlarmState::Alarm,
                    AlarmState::Ok,
                    AlarmState::InsufficientData,
                ][usize::from(s)];
                Rule::State(state, n)
            }),
        ];
        leaf.prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                inner.clone().prop_map(|r| Rule::Not(Box::new(r))),
                proptest::collection::vec(inner.clone(), 2..4).prop_map(Rule::And),
                proptest::collection::vec(inner, 2..4).prop_map(Rule::Or),
            ]
        })
    }

    fn print(r: &Rule) -> String {
        match r {
            Rule::True => "TRUE".into(),
            Rule::False => "FALSE".into(),
            Rule::Not(r) => format!("NOT ({})", print(r)),
            Rule::And(rs) => rs
                .iter()
                .map(|r| format!("({})", print(r)))
                .collect::<Vec<_>>()
                .join(" AND "),
            Rule::Or(rs) => rs
                .iter()
                .map(|r| format!("({})", print(r)))
                .collect::<Vec<_>>()
                .join(" OR "),
            Rule::State(s, n) => format!("{}(\"{n}\")", s.as_str()),
        }
    }

    proptest! {
        #[test]
        fn printed_rules_parse_back(r in rule()) {
            prop_assert_eq!(Rule::parse(&print(&r)), Ok(r));
        }

        #[test]
        fn parser_never_panics(s in "[A-Z()\" a-z_]{0,60}") {
            let _ = Rule::parse(&s);
        }
    }
}
