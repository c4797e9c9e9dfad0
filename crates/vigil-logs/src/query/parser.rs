//! Recursive-descent parser: text to [`Ast`], with the column of the first
//! token it cannot take and what it expected there.

use super::ast::{
    AggFunc, Aggregate, Ast, BinOp, Command, Expr, Func, LikePattern, Literal, ParsePattern,
    Projection, Regex, SortKey,
};
use super::error::QueryError;
use super::lexer::{Lexer, Tok, Token};
use super::{MAX_NESTING, MAX_QUERY_CHARS, MAX_TREE_DEPTH};

/// Words that cannot be bare field names (backtick them instead).
pub(crate) const RESERVED: [&str; 9] =
    ["and", "or", "not", "like", "in", "as", "by", "asc", "desc"];

/// Whether `name` is one of [`RESERVED`], ignoring case.
pub(crate) fn is_reserved(name: &str) -> bool {
    RESERVED.iter().any(|kw| kw.eq_ignore_ascii_case(name))
}

/// The largest compiled size of one regular expression, in bytes.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Compiles a regular expression of the query, with the same bounds as the
/// rest of the language.
pub(crate) fn compile_regex(source: &str) -> Result<regex::Regex, regex::Error> {
    regex::RegexBuilder::new(source)
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_SIZE_LIMIT)
        .build()
}

/// Parses a whole query.
pub(crate) fn parse(src: &str) -> Result<Ast, QueryError> {
    let len = src.chars().count();
    if len > MAX_QUERY_CHARS {
        return Err(QueryError::TooLong {
            len,
            max: MAX_QUERY_CHARS,
        });
    }
    let mut p = Parser {
        lx: Lexer::new(src),
        peeked: None,
        depth: 0,
        chain: 0,
    };
    let mut commands = vec![p.command()?];
    loop {
        let tok = p.next()?;
        match tok.tok {
            Tok::Pipe => commands.push(p.command()?),
            Tok::Eof => break,
            other => return Err(p.unexpected(tok.start, "`|` or end of query", &other)),
        }
    }
    Ok(Ast { commands })
}

struct Parser<'s> {
    lx: Lexer<'s>,
    peeked: Option<Token>,
    /// Recursion depth (parentheses, `not`, `-`, calls, `^`).
    depth: usize,
    /// Levels added by chains of binary operators on the current path.
    chain: usize,
}

impl Parser<'_> {
    fn peek(&mut self) -> Result<&Token, QueryError> {
        if self.peeked.is_none() {
            self.peeked = Some(self.lx.next_token()?);
        }
        // Just filled above.
        Ok(self.peeked.get_or_insert(Token {
            tok: Tok::Eof,
            start: 0,
        }))
    }

    fn next(&mut self) -> Result<Token, QueryError> {
        match self.peeked.take() {
            Some(t) => Ok(t),
            None => self.lx.next_token(),
        }
    }

    fn unexpected(&self, at: usize, expected: &str, found: &Tok) -> QueryError {
        self.lx.error(at, expected, found.describe())
    }

    fn peek_is_kw(&mut self, kw: &str) -> Result<bool, QueryError> {
        Ok(matches!(&self.peek()?.tok, Tok::Ident(s) if s.eq_ignore_ascii_case(kw)))
    }

    fn eat_kw(&mut self, kw: &str) -> Result<bool, QueryError> {
        let is = self.peek_is_kw(kw)?;
        if is {
            self.next()?;
        }
        Ok(is)
    }

    fn eat(&mut self, tok: &Tok) -> Result<bool, QueryError> {
        let is = &self.peek()?.tok == tok;
        if is {
            self.next()?;
        }
        Ok(is)
    }

    fn expect(&mut self, tok: &Tok, expected: &str) -> Result<(), QueryError> {
        let t = self.next()?;
        if &t.tok == tok {
            Ok(())
        } else {
            Err(self.unexpected(t.start, expected, &t.tok))
        }
    }

    fn command(&mut self) -> Result<Command, QueryError> {
        let t = self.next()?;
        let expected = "a command (fields, filter, stats, sort, limit, parse, display, dedup)";
        let Tok::Ident(word) = &t.tok else {
            return Err(self.unexpected(t.start, expected, &t.tok));
        };
        match word.to_ascii_lowercase().as_str() {
            "fields" => Ok(Command::Fields(self.list(Self::projection)?)),
            "filter" => Ok(Command::Filter(self.expr()?)),
            "stats" => self.stats(),
            "sort" => Ok(Command::Sort(self.list(Self::sort_key)?)),
            "limit" => {
                let t = self.next()?;
                match t.tok {
                    Tok::Int(n) if n > 0 => Ok(Command::Limit(n.unsigned_abs())),
                    other => Err(self.unexpected(t.start, "a positive whole number", &other)),
                }
            }
            "parse" => self.parse_command(),
            "display" => Ok(Command::Display(self.list(Self::name)?)),
            "dedup" => Ok(Command::Dedup(self.list(Self::name)?)),
            _ => Err(self.unexpected(t.start, expected, &t.tok)),
        }
    }

    fn list<T>(
        &mut self,
        item: fn(&mut Self) -> Result<T, QueryError>,
    ) -> Result<Vec<T>, QueryError> {
        let mut items = vec![item(self)?];
        while self.eat(&Tok::Comma)? {
            items.push(item(self)?);
        }
        Ok(items)
    }

    fn name(&mut self) -> Result<String, QueryError> {
        let t = self.next()?;
        match t.tok {
            Tok::Ident(s) if !is_reserved(&s) => Ok(s),
            Tok::Quoted(s) => Ok(s),
            other => Err(self.unexpected(t.start, "a field name", &other)),
        }
    }

    fn alias(&mut self) -> Result<Option<String>, QueryError> {
        if self.eat_kw("as")? {
            Ok(Some(self.name()?))
        } else {
            Ok(None)
        }
    }

    fn projection(&mut self) -> Result<Projection, QueryError> {
        let expr = self.expr()?;
        let alias = self.alias()?;
        Ok(Projection { expr, alias })
    }

    fn sort_key(&mut self) -> Result<SortKey, QueryError> {
        let expr = self.expr()?;
        let descending = if self.eat_kw("desc")? {
            true
        } else {
            self.eat_kw("asc")?;
            false
        };
        Ok(SortKey { expr, descending })
    }

    fn stats(&mut self) -> Result<Command, QueryError> {
        let aggregates = self.list(Self::aggregate)?;
        let by = if self.eat_kw("by")? {
            self.list(Self::projection)?
        } else {
            Vec::new()
        };
        Ok(Command::Stats { aggregates, by })
    }

    fn aggregate(&mut self) -> Result<Aggregate, QueryError> {
        let t = self.next()?;
        let expected = "an aggregate (count, count_distinct, sum, avg, min, max, pct, stddev, earliest, latest)";
        let func = match &t.tok {
            Tok::Ident(s) => AggFunc::ALL
                .into_iter()
                .find(|f| f.name().eq_ignore_ascii_case(s)),
            _ => None,
        }
        .ok_or_else(|| self.unexpected(t.start, expected, &t.tok))?;
        self.expect(&Tok::LParen, "`(`")?;
        let arg = if func == AggFunc::Count && self.eat(&Tok::Star)? {
            None
        } else {
            Some(self.expr()?)
        };
        let percentile = if func == AggFunc::Pct {
            self.expect(&Tok::Comma, "`,` and a percentile")?;
            let t = self.next()?;
            let p = match t.tok {
                Tok::Int(n) => n as f64,
                Tok::Float(f) => f,
                ref other => {
                    return Err(self.unexpected(t.start, "a percentile from 0 to 100", other));
                }
            };
            if !(0.0..=100.0).contains(&p) {
                return Err(self.unexpected(t.start, "a percentile from 0 to 100", &t.tok));
            }
            Some(p)
        } else {
            None
        };
        self.expect(&Tok::RParen, "`)`")?;
        let alias = self.alias()?;
        Ok(Aggregate {
            func,
            arg,
            percentile,
            alias,
        })
    }

    fn parse_command(&mut self) -> Result<Command, QueryError> {
        let source = self.name()?;
        let t = self.next()?;
        let pattern = match t.tok {
            Tok::Str(glob) => {
                let stars = glob.matches('*').count();
                if stars == 0 {
                    return Err(self.lx.error(
                        t.start,
                        "a glob with at least one `*`",
                        format!("{glob:?}"),
                    ));
                }
                let at = self.peek()?.start;
                if !self.eat_kw("as")? {
                    let found = self.peek()?.tok.describe();
                    return Err(self.lx.error(at, "`as` and a name for each `*`", found));
                }
                let names = self.list(Self::name)?;
                if names.len() != stars {
                    return Err(self.lx.error(
                        at,
                        &format!("{stars} names, one for each `*`"),
                        format!("{} names", names.len()),
                    ));
                }
                ParsePattern::Glob { glob, names }
            }
            Tok::Slash => {
                let regex = self.regex(t.start)?;
                if regex.compiled.capture_names().flatten().next().is_none() {
                    return Err(self.lx.error(
                        t.start,
                        "a regular expression with named groups such as (?<name>...)",
                        format!("/{}/", regex.source),
                    ));
                }
                ParsePattern::Regex(regex)
            }
            other => {
                return Err(self.unexpected(
                    t.start,
                    "a glob in quotes or a /regular expression/",
                    &other,
                ));
            }
        };
        Ok(Command::Parse { source, pattern })
    }

    fn regex(&mut self, slash: usize) -> Result<Regex, QueryError> {
        self.peeked = None;
        let source = self.lx.regex(slash)?;
        let compiled = compile_regex(&source).map_err(|e| {
            let detail = e.to_string();
            let last = detail.lines().last().unwrap_or("").trim().to_owned();
            self.lx.error(
                slash,
                "a valid regular expression",
                format!("/{source}/ ({last})"),
            )
        })?;
        Ok(Regex { source, compiled })
    }

    fn enter(&mut self) -> Result<(), QueryError> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            let at = self.peek()?.start;
            return Err(QueryError::TooDeep {
                column: self.lx.column(at),
                max: MAX_NESTING,
            });
        }
        Ok(())
    }

    /// One more level for a chain of operators (`a + b + c` nests too,
    /// though the parser loops over it).
    fn deeper(&mut self, levels: &mut usize) -> Result<(), QueryError> {
        *levels += 1;
        self.chain += 1;
        if self.depth + self.chain > MAX_TREE_DEPTH {
            let at = self.peek()?.start;
            return Err(QueryError::TooDeep {
                column: self.lx.column(at),
                max: MAX_TREE_DEPTH,
            });
        }
        Ok(())
    }

    /// A full expression (the lowest precedence: `or`).
    fn expr(&mut self) -> Result<Expr, QueryError> {
        self.enter()?;
        let result = self.or_expr();
        self.depth -= 1;
        result
    }

    fn or_expr(&mut self) -> Result<Expr, QueryError> {
        let mut left = self.and_expr()?;
        let mut levels = 0;
        while self.eat_kw("or")? {
            self.deeper(&mut levels)?;
            let right = self.and_expr()?;
            left = Expr::Binary(BinOp::Or, Box::new(left), Box::new(right));
        }
        self.chain -= levels;
        Ok(left)
    }

    fn and_expr(&mut self) -> Result<Expr, QueryError> {
        let mut left = self.not_expr()?;
        let mut levels = 0;
        while self.eat_kw("and")? {
            self.deeper(&mut levels)?;
            let right = self.not_expr()?;
            left = Expr::Binary(BinOp::And, Box::new(left), Box::new(right));
        }
        self.chain -= levels;
        Ok(left)
    }

    fn not_expr(&mut self) -> Result<Expr, QueryError> {
        if self.eat_kw("not")? {
            self.enter()?;
            let inner = self.not_expr();
            self.depth -= 1;
            return Ok(Expr::Not(Box::new(inner?)));
        }
        self.cmp_expr()
    }

    fn cmp_expr(&mut self) -> Result<Expr, QueryError> {
        let left = self.add_expr()?;
        let op = match self.peek()?.tok {
            Tok::Eq => Some(BinOp::Eq),
            Tok::Ne => Some(BinOp::Ne),
            Tok::Lt => Some(BinOp::Lt),
            Tok::Le => Some(BinOp::Le),
            Tok::Gt => Some(BinOp::Gt),
            Tok::Ge => Some(BinOp::Ge),
            _ => None,
        };
        if let Some(op) = op {
            self.next()?;
            let right = self.add_expr()?;
            return Ok(Expr::Binary(op, Box::new(left), Box::new(right)));
        }
        if self.eat(&Tok::Match)? {
            let t = self.next()?;
            let pattern = match t.tok {
                Tok::Slash => LikePattern::Regex(self.regex(t.start)?),
                Tok::Str(source) => {
                    let compiled = compile_regex(&source).map_err(|_| {
                        self.lx
                            .error(t.start, "a valid regular expression", format!("{source:?}"))
                    })?;
                    LikePattern::Regex(Regex { source, compiled })
                }
                other => return Err(self.unexpected(t.start, "a /regular expression/", &other)),
            };
            return Ok(like(left, pattern, false));
        }
        let negated = self.peek_is_kw("not")?;
        if negated {
            self.next()?;
        }
        if self.eat_kw("like")? {
            let pattern = self.like_pattern()?;
            return Ok(like(left, pattern, negated));
        }
        if self.eat_kw("in")? {
            self.expect(&Tok::LBracket, "`[`")?;
            let list = if self.eat(&Tok::RBracket)? {
                Vec::new()
            } else {
                let list = self.list(Self::expr)?;
                self.expect(&Tok::RBracket, "`,` or `]`")?;
                list
            };
            return Ok(Expr::In {
                expr: Box::new(left),
                list,
                negated,
            });
        }
        if negated {
            let t = self.next()?;
            return Err(self.unexpected(t.start, "`like` or `in` after `not`", &t.tok));
        }
        Ok(left)
    }

    fn like_pattern(&mut self) -> Result<LikePattern, QueryError> {
        let t = self.next()?;
        match t.tok {
            Tok::Str(s) => Ok(LikePattern::Substring(s)),
            Tok::Slash => Ok(LikePattern::Regex(self.regex(t.start)?)),
            other => Err(self.unexpected(t.start, "a string or a /regular expression/", &other)),
        }
    }

    fn add_expr(&mut self) -> Result<Expr, QueryError> {
        let mut left = self.mul_expr()?;
        let mut levels = 0;
        loop {
            let op = match self.peek()?.tok {
                Tok::Plus => BinOp::Add,
                Tok::Minus => BinOp::Sub,
                _ => {
                    self.chain -= levels;
                    return Ok(left);
                }
            };
            self.next()?;
            self.deeper(&mut levels)?;
            let right = self.mul_expr()?;
            left = Expr::Binary(op, Box::new(left), Box::new(right));
        }
    }

    fn mul_expr(&mut self) -> Result<Expr, QueryError> {
        let mut left = self.unary()?;
        let mut levels = 0;
        loop {
            let op = match self.peek()?.tok {
                Tok::Star => BinOp::Mul,
                Tok::Slash => BinOp::Div,
                Tok::Percent => BinOp::Rem,
                _ => {
                    self.chain -= levels;
                    return Ok(left);
                }
            };
            self.next()?;
            self.deeper(&mut levels)?;
            let right = self.unary()?;
            left = Expr::Binary(op, Box::new(left), Box::new(right));
        }
    }

    fn unary(&mut self) -> Result<Expr, QueryError> {
        if self.eat(&Tok::Minus)? {
            self.enter()?;
            let inner = self.unary();
            self.depth -= 1;
            return Ok(Expr::Neg(Box::new(inner?)));
        }
        let base = self.primary()?;
        if self.eat(&Tok::Caret)? {
            self.enter()?;
            let exp = self.unary();
            self.depth -= 1;
            return Ok(Expr::Binary(BinOp::Pow, Box::new(base), Box::new(exp?)));
        }
        Ok(base)
    }

    fn primary(&mut self) -> Result<Expr, QueryError> {
        let t = self.next()?;
        let expected = "a field, value, function or `(`";
        match t.tok {
            Tok::Int(n) => Ok(Expr::Literal(Literal::Int(n))),
            Tok::Float(f) => Ok(Expr::Literal(Literal::Float(f))),
            Tok::Str(s) => Ok(Expr::Literal(Literal::Str(s))),
            Tok::Span(s) => Ok(Expr::Literal(Literal::Span(s))),
            Tok::Quoted(name) => Ok(Expr::Field(name)),
            Tok::LParen => {
                let inner = self.expr()?;
                self.expect(&Tok::RParen, "`)`")?;
                Ok(inner)
            }
            Tok::Ident(name) if !is_reserved(&name) => {
                if self.peek()?.tok != Tok::LParen {
                    return Ok(Expr::Field(name));
                }
                let func = Func::ALL
                    .into_iter()
                    .find(|f| f.name().eq_ignore_ascii_case(&name))
                    .ok_or_else(|| {
                        self.lx
                            .error(t.start, "a known function", format!("`{name}`"))
                    })?;
                self.next()?;
                let args = if self.eat(&Tok::RParen)? {
                    Vec::new()
                } else {
                    let args = self.list(Self::expr)?;
                    self.expect(&Tok::RParen, "`,` or `)`")?;
                    args
                };
                let (min, max) = func.arity();
                if args.len() < min || max.is_some_and(|m| args.len() > m) {
                    let want = match max {
                        Some(m) if m == min => format!("{min}"),
                        Some(m) => format!("{min} to {m}"),
                        None => format!("at least {min}"),
                    };
                    return Err(self.lx.error(
                        t.start,
                        &format!("{want} arguments for {}", func.name()),
                        format!("{} arguments", args.len()),
                    ));
                }
                Ok(Expr::Call(func, args))
            }
            other => Err(self.unexpected(t.start, expected, &other)),
        }
    }
}

fn like(expr: Expr, pattern: LikePattern, negated: bool) -> Expr {
    Expr::Like {
        expr: Box::new(expr),
        pattern,
        negated,
    }
}
