//! Field discovery in JSON messages without building a document: one pass
//! over the text that keeps only the paths the query names (`a.b`,
//! `arr.0`), borrowing strings from the message when they have no escapes.

use std::borrow::Cow;

use super::value::Value;

/// Objects and arrays nested deeper than this are not discovered.
const MAX_DEPTH: usize = 64;

/// The paths a query reads, as a tree of path segments.
#[derive(Debug, Clone, Default)]
pub(crate) struct PathTree {
    nodes: Vec<Node>,
}

#[derive(Debug, Clone, Default)]
struct Node {
    children: Vec<(Box<str>, usize)>,
    slot: Option<usize>,
}

impl PathTree {
    /// Registers `path` (segments split on `.`) as the source of `slot`.
    pub fn insert(&mut self, path: &str, slot: usize) {
        if self.nodes.is_empty() {
            self.nodes.push(Node::default());
        }
        let mut at = 0;
        for seg in path.split('.') {
            let found = self.nodes[at]
                .children
                .iter()
                .find(|(k, _)| &**k == seg)
                .map(|(_, i)| *i);
            at = match found {
                Some(i) => i,
                None => {
                    let i = self.nodes.len();
                    self.nodes.push(Node::default());
                    self.nodes[at].children.push((seg.into(), i));
                    i
                }
            };
        }
        self.nodes[at].slot = Some(slot);
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    fn child(&self, node: usize, key: &str) -> Option<usize> {
        self.nodes
            .get(node)?
            .children
            .iter()
            .find(|(k, _)| &**k == key)
            .map(|(_, i)| *i)
    }

    fn child_index(&self, node: usize, index: usize) -> Option<usize> {
        self.nodes
            .get(node)?
            .children
            .iter()
            .find(|(k, _)| k.parse::<usize>() == Ok(index))
            .map(|(_, i)| *i)
    }
}

/// Fills the empty `slots` named by `tree` from the JSON object in `msg`.
/// `filled` collects the slots written so that a message that turns out
/// not to be JSON leaves no fields behind.
pub(crate) fn extract<'a>(
    msg: &'a str,
    tree: &PathTree,
    slots: &mut [Option<Value<'a>>],
    filled: &mut Vec<usize>,
) {
    filled.clear();
    if tree.is_empty() {
        return;
    }
    let mut s = Scanner {
        src: msg,
        b: msg.as_bytes(),
        pos: 0,
        tree,
        slots,
        filled,
    };
    s.ws();
    if s.peek() != Some(b'{') {
        return;
    }
    let ok = s.object(Some(0), 0).is_some() && {
        s.ws();
        s.pos == s.b.len()
    };
    if !ok {
        for &i in s.filled.iter() {
            if let Some(slot) = s.slots.get_mut(i) {
                *slot = None;
            }
        }
        s.filled.clear();
    }
}

struct Scanner<'a, 't, 's> {
    src: &'a str,
    b: &'a [u8],
    pos: usize,
    tree: &'t PathTree,
    slots: &'s mut [Option<Value<'a>>],
    filled: &'s mut Vec<usize>,
}

impl<'a> Scanner<'a, '_, '_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        self.ws();
        if self.peek() == Some(c) {
            self.pos += 1;
            Some(())
        } else {
            None
        }
    }

    fn store(&mut self, node: Option<usize>, v: impl FnOnce() -> Value<'a>) {
        let Some(slot) = node
            .and_then(|n| self.tree.nodes.get(n))
            .and_then(|n| n.slot)
        else {
            return;
        };
        if let Some(s @ None) = self.slots.get_mut(slot) {
            *s = Some(v());
            self.filled.push(slot);
        }
    }

    fn has_children(&self, node: Option<usize>) -> bool {
        node.and_then(|n| self.tree.nodes.get(n))
            .is_some_and(|n| !n.children.is_empty())
    }

    /// An object whose `{` is next; `node` is its place in the tree.
    fn object(&mut self, node: Option<usize>, depth: usize) -> Option<()> {
        if depth >= MAX_DEPTH {
            return None;
        }
        self.eat(b'{')?;
        self.ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Some(());
        }
        let walk = self.has_children(node);
        loop {
            self.ws();
            let child = if walk {
                let key = self.string()?;
                node.and_then(|n| self.tree.child(n, &key))
            } else {
                self.skip_string()?;
                None
            };
            self.eat(b':')?;
            self.value(child, depth + 1)?;
            self.ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    fn array(&mut self, node: Option<usize>, depth: usize) -> Option<()> {
        if depth >= MAX_DEPTH {
            return None;
        }
        self.eat(b'[')?;
        self.ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Some(());
        }
        let walk = self.has_children(node);
        let mut index = 0;
        loop {
            let child = if walk {
                node.and_then(|n| self.tree.child_index(n, index))
            } else {
                None
            };
            self.value(child, depth + 1)?;
            index += 1;
            self.ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    fn value(&mut self, node: Option<usize>, depth: usize) -> Option<()> {
        self.ws();
        let start = self.pos;
        match self.peek()? {
            b'{' => {
                self.object(node, depth)?;
                let raw = self.src.get(start..self.pos)?;
                self.store(node, || Value::Raw(Cow::Borrowed(raw)));
            }
            b'[' => {
                self.array(node, depth)?;
                let raw = self.src.get(start..self.pos)?;
                self.store(node, || Value::Raw(Cow::Borrowed(raw)));
            }
            b'"' => {
                if node.is_some() {
                    let s = self.string()?;
                    self.store(node, || Value::Str(s));
                } else {
                    self.skip_string()?;
                }
            }
            b't' => {
                self.literal(b"true")?;
                self.store(node, || Value::Bool(true));
            }
            b'f' => {
                self.literal(b"false")?;
                self.store(node, || Value::Bool(false));
            }
            b'n' => {
                self.literal(b"null")?;
                self.store(node, || Value::Null);
            }
            _ => {
                while matches!(
                    self.peek(),
                    Some(b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E')
                ) {
                    self.pos += 1;
                }
                let text = self.src.get(start..self.pos)?;
                if node.is_some() {
                    let v = number(text)?;
                    self.store(node, || v);
                } else if text.is_empty() {
                    return None;
                }
            }
        }
        Some(())
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        if self.b.get(self.pos..self.pos + word.len())? == word {
            self.pos += word.len();
            Some(())
        } else {
            None
        }
    }

    fn skip_string(&mut self) -> Option<()> {
        self.eat(b'"')?;
        loop {
            let rest = self.b.get(self.pos..)?;
            let i = memchr::memchr2(b'"', b'\\', rest)?;
            self.pos += i + 1;
            if rest[i] == b'"' {
                return Some(());
            }
            self.pos += 1;
        }
    }

    fn string(&mut self) -> Option<Cow<'a, str>> {
        self.ws();
        let start = self.pos + 1;
        self.skip_string()?;
        let body = self.src.get(start..self.pos - 1)?;
        if !body.contains('\\') {
            return Some(Cow::Borrowed(body));
        }
        unescape(body).map(Cow::Owned)
    }
}

fn number(text: &str) -> Option<Value<'static>> {
    if !text.bytes().any(|c| matches!(c, b'.' | b'e' | b'E'))
        && let Ok(n) = text.parse::<i64>()
    {
        return Some(Value::Int(n));
    }
    let x: f64 = text.parse().ok()?;
    Some(Value::from_f64(x))
}

fn unescape(body: &str) -> Option<String> {
    let mut out = String::with_capacity(body.len());
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next()? {
            '"' => out.push('"'),
            '\\' => out.push('\\'),
            '/' => out.push('/'),
            'b' => out.push('\u{8}'),
            'f' => out.push('\u{c}'),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            'u' => {
                let hex = |chars: &mut std::str::Chars<'_>| -> Option<u32> {
                    let s: String = chars.by_ref().take(4).collect();
                    if s.len() == 4 {
                        u32::from_str_radix(&s, 16).ok()
                    } else {
                        None
                    }
                };
                let hi = hex(&mut chars)?;
                let code = if (0xD800..0xDC00).contains(&hi) {
                    if chars.next()? != '\\' || chars.next()? != 'u' {
                        return None;
                    }
                    let lo = hex(&mut chars)?;
                    if !(0xDC00..0xE000).contains(&lo) {
                        return None;
                    }
                    0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                } else {
                    hi
                };
                out.push(char::from_u32(code)?);
            }
            _ => return None,
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get<'a>(msg: &'a str, paths: &[&str]) -> Vec<Option<Value<'a>>> {
        let mut tree = PathTree::default();
        for (i, p) in paths.iter().enumerate() {
            tree.insert(p, i);
        }
        let mut slots = vec![None; paths.len()];
        extract(msg, &tree, &mut slots, &mut Vec::new());
        slots
    }

    fn s(x: &str) -> Option<Value<'_>> {
        Some(Value::Str(Cow::Borrowed(x)))
    }

    #[test]
    fn finds_flattened_paths() {
        let msg = r#"{"a":{"b":"x","c":[1,{"d":2.5}]},"n":-3,"t":true,"z":null,"e":"q\"\u00e9"}"#;
        let got = get(
            msg,
            &[
                "a.b", "a.c.0", "a.c.1.d", "n", "t", "z", "e", "missing", "a.c",
            ],
        );
        assert_eq!(got[0], s("x"));
        assert_eq!(got[1], Some(Value::Int(1)));
        assert_eq!(got[2], Some(Value::Float(2.5)));
        assert_eq!(got[3], Some(Value::Int(-3)));
        assert_eq!(got[4], Some(Value::Bool(true)));
        assert_eq!(got[5], Some(Value::Null));
        assert_eq!(got[6], Some(Value::Str(Cow::Owned("q\"é".to_owned()))));
        assert_eq!(got[7], None);
        assert_eq!(got[8], Some(Value::Raw(Cow::Borrowed(r#"[1,{"d":2.5}]"#))));
    }

    #[test]
    fn text_and_broken_json_give_no_fields() {
        assert_eq!(get("status 500", &["status"]), vec![None]);
        assert_eq!(get(r#"{"status": 500"#, &["status"]), vec![None]);
        assert_eq!(get(r#"{"status": 500} trailing"#, &["status"]), vec![None]);
        assert_eq!(get(r#"{"status": 5x}"#, &["status"]), vec![None]);
        assert_eq!(get(r#"[{"status": 500}]"#, &["status"]), vec![None]);
    }

    #[test]
    fn does_not_overwrite_filled_slots() {
        let mut tree = PathTree::default();
        tree.insert("a", 0);
        let mut slots = vec![Some(Value::Int(7))];
        extract(r#"{"a": 1}"#, &tree, &mut slots, &mut Vec::new());
        assert_eq!(slots[0], Some(Value::Int(7)));
    }

    #[test]
    fn deep_nesting_is_refused_without_overflow() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let msg = format!(r#"{{"a": 1, "b": {deep}}}"#);
        assert_eq!(get(&msg, &["a"]), vec![None]);
    }
}
