//! kubectl's JSONPath dialect (client-go `util/jsonpath`): the parser, with kubeline's limits.
//!
//! The dialect is not RFC 9535: templates mix text and `{actions}`; `{range …}{end}` loops; a
//! union is split on every comma. The parser keeps client-go's quirks (an identifier runs to the
//! next terminator, a quoted string may not contain a newline) so that syntax errors read as
//! kubectl's. It lives here, not in the agent, so the broker can refuse a template that goes
//! over a limit before anything is queued; the agent evaluates the parsed [`Node`]s.
//!
//! Bounds (see [`crate::limits`]): a template is at most [`MAX_TEMPLATE_BYTES`] long, has at
//! most [`MAX_TEMPLATE_ACTIONS`] actions, nests filters and unions at most
//! [`MAX_TEMPLATE_NESTING`] deep (the parser recurses only there) and `{range}` blocks at most
//! [`MAX_RANGE_DEPTH`] deep.

use crate::limits::{
    LimitExceeded, MAX_CUSTOM_COLUMNS, MAX_RANGE_DEPTH, MAX_TEMPLATE_ACTIONS, MAX_TEMPLATE_BYTES,
    MAX_TEMPLATE_NESTING,
};
use std::fmt;

/// Why a template was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// Not valid in kubectl's dialect; the message is client-go's wording.
    Syntax(String),
    /// Valid, perhaps, but over one of kubeline's limits.
    Limit(LimitExceeded),
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::Syntax(s) => f.write_str(s),
            ParseError::Limit(l) => l.fmt(f),
        }
    }
}

impl std::error::Error for ParseError {}

impl From<String> for ParseError {
    fn from(s: String) -> Self {
        ParseError::Syntax(s)
    }
}

impl From<&str> for ParseError {
    fn from(s: &str) -> Self {
        ParseError::Syntax(s.to_string())
    }
}

impl From<LimitExceeded> for ParseError {
    fn from(l: LimitExceeded) -> Self {
        ParseError::Limit(l)
    }
}

// === syntax ===

/// One slice bound of an array node (`[a:b:c]`).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Param {
    /// The bound as written (or derived), before negative values count from the end.
    pub value: i64,
    /// Whether the bound was given (or derived); an unknown bound means "to the end".
    pub known: bool,
    /// The end bound of `[i]`, derived as `i + 1`.
    pub derived: bool,
}

/// A parsed node, as client-go's `Node` types.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// One `{…}` action: its nodes run left to right, each on the previous one's results.
    List(Vec<Node>),
    /// Literal text, outside actions or quoted inside one.
    Text(String),
    /// `.name`.
    Field(String),
    /// `[i]` or `[a:b:c]`.
    Array([Param; 3]),
    /// `[?(left op right)]`, or `[?(left)]` with `op` `exists`.
    Filter {
        /// The left operand's nodes.
        left: Vec<Node>,
        /// The right operand's nodes (empty for `exists`).
        right: Vec<Node>,
        /// `==`, `!=`, `<`, `<=`, `>`, `>=` or `exists`.
        op: String,
    },
    /// An integer literal.
    Int(i64),
    /// A float literal.
    Float(f64),
    /// `true` or `false`.
    Bool(bool),
    /// `*`.
    Wildcard,
    /// `..`.
    Recursive,
    /// `[a,b,…]`: each branch runs on the same input.
    Union(Vec<Vec<Node>>),
    /// `range`, `end`, or an identifier client-go does not know.
    Identifier(String),
}

const EOF: Option<char> = None;

struct Parser<'a> {
    input: &'a str,
    pos: usize,
    start: usize,
    width: usize,
    /// How many filters and unions enclose this parser's input.
    depth: usize,
}

/// Parses a template (`-o jsonpath=…`) within kubeline's limits. Syntax errors read as
/// client-go words them.
pub fn parse(template: &str) -> Result<Vec<Node>, ParseError> {
    if template.len() > MAX_TEMPLATE_BYTES {
        return Err(LimitExceeded::new("the template", MAX_TEMPLATE_BYTES, "bytes").into());
    }
    let root = Parser::new(template, 0)?.parse()?;
    range_depth(&root)?;
    Ok(root)
}

/// Refuses templates whose `{range}` blocks nest deeper than [`MAX_RANGE_DEPTH`].
fn range_depth(root: &[Node]) -> Result<(), LimitExceeded> {
    let mut depth = 0usize;
    for node in root {
        let Node::List(nodes) = node else { continue };
        for n in nodes {
            match n {
                Node::Identifier(id) if id == "range" => {
                    depth += 1;
                    if depth > MAX_RANGE_DEPTH {
                        return Err(LimitExceeded::new(
                            "the template's {range} nesting",
                            MAX_RANGE_DEPTH,
                            "levels",
                        ));
                    }
                }
                Node::Identifier(id) if id == "end" => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
    }
    Ok(())
}

impl<'a> Parser<'a> {
    fn new(input: &'a str, depth: usize) -> Result<Self, ParseError> {
        if depth > MAX_TEMPLATE_NESTING {
            return Err(LimitExceeded::new(
                "the template's nesting of filters and unions",
                MAX_TEMPLATE_NESTING,
                "levels",
            )
            .into());
        }
        Ok(Self {
            input,
            pos: 0,
            start: 0,
            width: 0,
            depth,
        })
    }

    fn next(&mut self) -> Option<char> {
        match self.input[self.pos..].chars().next() {
            None => {
                self.width = 0;
                EOF
            }
            Some(c) => {
                self.width = c.len_utf8();
                self.pos += self.width;
                Some(c)
            }
        }
    }

    fn peek(&mut self) -> Option<char> {
        let r = self.next();
        self.backup();
        r
    }

    fn backup(&mut self) {
        self.pos -= self.width;
    }

    fn consume(&mut self) -> String {
        let v = self.input[self.start..self.pos].to_string();
        self.start = self.pos;
        v
    }

    fn rest(&self) -> &str {
        &self.input[self.pos..]
    }

    /// Parses a filter operand or union branch one level deeper.
    fn nested(&self, text: &str) -> Result<Vec<Node>, ParseError> {
        action_at(text, self.depth + 1)
    }

    /// `parseText` and everything it reaches: text, then actions until the input ends.
    fn parse(&mut self) -> Result<Vec<Node>, ParseError> {
        let mut root = Vec::new();
        let mut actions = 0usize;
        loop {
            // parseText
            loop {
                if self.rest().starts_with('{') {
                    break;
                }
                if self.next() == EOF {
                    if self.pos > self.start {
                        root.push(Node::Text(self.consume()));
                    }
                    return Ok(root);
                }
            }
            if self.pos > self.start {
                root.push(Node::Text(self.consume()));
            }
            // parseLeftDelim
            self.pos += 1;
            self.consume();
            actions += 1;
            if actions > MAX_TEMPLATE_ACTIONS {
                return Err(
                    LimitExceeded::new("the template", MAX_TEMPLATE_ACTIONS, "actions").into(),
                );
            }
            let mut list = Vec::new();
            let result = self.inside_action(&mut list);
            root.push(Node::List(list));
            result?;
        }
    }

    /// `parseInsideAction` until the closing `}`.
    fn inside_action(&mut self, cur: &mut Vec<Node>) -> Result<(), ParseError> {
        loop {
            if self.rest().starts_with('}') {
                self.pos += 1;
                self.consume();
                return Ok(());
            }
            if self.rest().starts_with("[?(") {
                self.filter(cur)?;
                continue;
            }
            if self.rest().starts_with("..") {
                if matches!(cur.last(), Some(Node::Recursive)) {
                    return Err("invalid multiple recursive descent".into());
                }
                self.pos += 2;
                self.consume();
                cur.push(Node::Recursive);
                if self.peek().is_some_and(is_alphanumeric) {
                    self.field(cur);
                }
                continue;
            }
            match self.next() {
                None | Some('\r') | Some('\n') => return Err("unclosed action".into()),
                Some(' ') | Some('@') | Some('$') => {
                    self.consume();
                }
                Some('[') => self.array(cur)?,
                Some(q @ ('"' | '\'')) => self.quote(cur, q)?,
                Some('.') => self.field(cur),
                Some(c) if c == '+' || c == '-' || c.is_numeric() => {
                    self.backup();
                    self.number(cur)?;
                }
                Some(c) if is_alphanumeric(c) => {
                    self.backup();
                    self.identifier(cur);
                }
                Some(c) => {
                    return Err(format!(
                        "unrecognized character in action: U+{:04X} '{c}'",
                        c as u32
                    )
                    .into());
                }
            }
        }
    }

    fn identifier(&mut self, cur: &mut Vec<Node>) {
        loop {
            let r = self.next();
            if is_terminator(r) {
                self.backup();
                break;
            }
        }
        let value = self.consume();
        cur.push(match value.as_str() {
            "true" => Node::Bool(true),
            "false" => Node::Bool(false),
            _ => Node::Identifier(value),
        });
    }

    fn number(&mut self, cur: &mut Vec<Node>) -> Result<(), ParseError> {
        if matches!(self.peek(), Some('+' | '-')) {
            self.next();
        }
        loop {
            match self.next() {
                Some(c) if c == '.' || c.is_numeric() => {}
                _ => {
                    self.backup();
                    break;
                }
            }
        }
        let value = self.consume();
        if let Some(i) = go_atoi(&value) {
            cur.push(Node::Int(i));
            return Ok(());
        }
        match value.trim_start_matches('+').parse::<f64>() {
            Ok(f)
                if value
                    .chars()
                    .all(|c| "+-.".contains(c) || c.is_ascii_digit()) =>
            {
                cur.push(Node::Float(f));
                Ok(())
            }
            _ => Err(format!("cannot parse number {value}").into()),
        }
    }

    fn array(&mut self, cur: &mut Vec<Node>) -> Result<(), ParseError> {
        loop {
            match self.next() {
                None | Some('\n') => return Err("unterminated array".into()),
                Some(']') => break,
                _ => {}
            }
        }
        let text = self.consume();
        let mut text = text[1..text.len() - 1].to_string();
        if text == "*" {
            text = ":".into();
        }
        let parts: Vec<&str> = text.split(',').collect();
        if parts.len() > 1 {
            let mut union = Vec::new();
            for p in parts {
                union.push(self.nested(&format!("[{}]", p.trim_matches(' ')))?);
            }
            cur.push(Node::Union(union));
            return Ok(());
        }
        if text.len() >= 2
            && text.starts_with('\'')
            && text.ends_with('\'')
            && !text[1..text.len() - 1].contains('\'')
        {
            let nodes = self.nested(&format!(".{}", &text[1..text.len() - 1]))?;
            cur.extend(nodes);
            return Ok(());
        }
        let groups = slice_operator(&text).ok_or_else(|| format!("invalid array index {text}"))?;
        let mut params = [Param::default(); 3];
        for i in 0..3 {
            let mut v = groups[i].as_str();
            if !v.is_empty() {
                if i > 0 {
                    v = &v[1..];
                }
                if i > 0 && v.is_empty() {
                    params[i].known = false;
                } else {
                    params[i].known = true;
                    params[i].value =
                        go_atoi(v).ok_or_else(|| format!("array index {v} is not a number"))?;
                }
            } else if i == 1 {
                params[i].known = true;
                // Go's int arithmetic wraps; kubectl's errors for huge indexes follow from it.
                params[i].value = params[0].value.wrapping_add(1);
                params[i].derived = true;
            }
        }
        cur.push(Node::Array(params));
        Ok(())
    }

    fn filter(&mut self, cur: &mut Vec<Node>) -> Result<(), ParseError> {
        self.pos += 3;
        self.consume();
        let (mut begin, mut end) = (false, false);
        let mut pair = '\0';
        loop {
            let r = self.next();
            match r {
                None | Some('\n') => return Err("unterminated filter".into()),
                Some(q @ ('"' | '\'')) => {
                    if !begin {
                        begin = true;
                        pair = q;
                        continue;
                    }
                    if self.input.as_bytes()[self.pos - 2] != b'\\' && q == pair {
                        end = true;
                    }
                }
                Some(')') if begin == end => break,
                _ => {}
            }
        }
        if self.next() != Some(']') {
            return Err("unclosed array expect ]".into());
        }
        let text = self.consume();
        let text = &text[..text.len() - 2];
        match split_comparison(text) {
            None => cur.push(Node::Filter {
                left: self.nested(text)?,
                right: Vec::new(),
                op: "exists".into(),
            }),
            Some((l, op, r)) => cur.push(Node::Filter {
                left: self.nested(l)?,
                right: self.nested(r)?,
                op: op.to_string(),
            }),
        }
        Ok(())
    }

    fn quote(&mut self, cur: &mut Vec<Node>, end: char) -> Result<(), ParseError> {
        loop {
            match self.next() {
                None | Some('\n') => return Err("unterminated quoted string".into()),
                Some(c) if c == end && self.input.as_bytes()[self.pos - 2] != b'\\' => break,
                _ => {}
            }
        }
        let value = self.consume();
        let s = unquote_extend(&value).map_err(|e| format!("unquote string {value} error {e}"))?;
        cur.push(Node::Text(s));
        Ok(())
    }

    fn field(&mut self, cur: &mut Vec<Node>) {
        self.consume();
        loop {
            let r = self.next();
            if r == Some('\\') {
                self.next();
            } else if is_terminator(r) {
                self.backup();
                break;
            }
        }
        let value = self.consume();
        cur.push(if value == "*" {
            Node::Wildcard
        } else {
            Node::Field(value.replace('\\', ""))
        });
    }
}

/// client-go's `parseAction`: the nodes of the one action `{text}`, e.g. a relaxed path or
/// `explain`'s `resource.field.field`.
pub fn parse_action(text: &str) -> Result<Vec<Node>, ParseError> {
    if text.len() > MAX_TEMPLATE_BYTES {
        return Err(LimitExceeded::new("the path", MAX_TEMPLATE_BYTES, "bytes").into());
    }
    action_at(text, 0)
}

fn action_at(text: &str, depth: usize) -> Result<Vec<Node>, ParseError> {
    let wrapped = format!("{{{text}}}");
    let root = Parser::new(&wrapped, depth)?.parse()?;
    match root.into_iter().next() {
        Some(Node::List(nodes)) => Ok(nodes),
        _ => Ok(Vec::new()),
    }
}

fn is_terminator(r: Option<char>) -> bool {
    match r {
        None => true,
        Some(c) => matches!(
            c,
            ' ' | '\t' | '\r' | '\n' | '.' | ',' | '[' | ']' | '$' | '@' | '{' | '}'
        ),
    }
}

fn is_alphanumeric(c: char) -> bool {
    c == '_' || c.is_alphabetic() || c.is_numeric()
}

/// Go's `strconv.Atoi`: optional sign, ASCII digits, fits in 64 bits.
fn go_atoi(s: &str) -> Option<i64> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.trim_start_matches('+').parse().ok()
}

/// `^(-?[\d]*)(:-?[\d]*)?(:-?[\d]*)?$`, returning the three groups ("" when absent).
fn slice_operator(text: &str) -> Option<[String; 3]> {
    fn number(s: &str) -> usize {
        let b = s.as_bytes();
        let mut i = 0;
        if b.first() == Some(&b'-') {
            i = 1;
        }
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        i
    }
    let mut groups: [String; 3] = Default::default();
    let mut rest = text;
    let n = number(rest);
    groups[0] = rest[..n].to_string();
    rest = &rest[n..];
    for g in groups.iter_mut().skip(1) {
        if let Some(after) = rest.strip_prefix(':') {
            let n = number(after);
            *g = format!(":{}", &after[..n]);
            rest = &after[n..];
        }
    }
    rest.is_empty().then_some(groups)
}

/// `^([^!<>=]+)([!<>=]+)(.+?)$`: the operator run is greedy but gives back its last character
/// when nothing else is left for the right side (`a==` is `a`, `=`, `=`).
fn split_comparison(text: &str) -> Option<(&str, &str, &str)> {
    let is_op = |c: char| "!<>=".contains(c);
    let start = text.find(is_op)?;
    if start == 0 {
        return None;
    }
    let after = &text[start..];
    let mut len = after.find(|c| !is_op(c)).unwrap_or(after.len());
    if len == after.len() {
        // Operator characters are ASCII, one byte each.
        len -= 1;
    }
    let right = &after[len..];
    if len == 0 || right.is_empty() || right.contains('\n') {
        return None;
    }
    Some((&text[..start], &after[..len], right))
}

/// client-go's `UnquoteExtend`: Go's unquoting for `"…"` and `'…'` strings.
fn unquote_extend(s: &str) -> Result<String, &'static str> {
    const SYNTAX: &str = "invalid syntax";
    let n = s.len();
    if n < 2 {
        return Err(SYNTAX);
    }
    let quote = s.as_bytes()[0];
    if quote != s.as_bytes()[n - 1] || (quote != b'"' && quote != b'\'') {
        return Err(SYNTAX);
    }
    let body = &s[1..n - 1];
    let quote = quote as char;
    if !body.contains('\\') && !body.contains(quote) {
        return Ok(body.to_string());
    }
    let mut out = String::new();
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        if c == quote {
            return Err(SYNTAX);
        }
        if c != '\\' {
            out.push(c);
            continue;
        }
        let e = chars.next().ok_or(SYNTAX)?;
        let hex = |chars: &mut std::iter::Peekable<std::str::Chars<'_>>, n: usize| {
            let mut v: u32 = 0;
            for _ in 0..n {
                v = v * 16 + chars.next().and_then(|c| c.to_digit(16)).ok_or(SYNTAX)?;
            }
            Ok::<u32, &'static str>(v)
        };
        match e {
            'a' => out.push('\u{07}'),
            'b' => out.push('\u{08}'),
            'f' => out.push('\u{0c}'),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            'v' => out.push('\u{0b}'),
            '\\' => out.push('\\'),
            'x' => out.push(char::from_u32(hex(&mut chars, 2)?).ok_or(SYNTAX)?),
            'u' => out.push(char::from_u32(hex(&mut chars, 4)?).ok_or(SYNTAX)?),
            'U' => out.push(char::from_u32(hex(&mut chars, 8)?).ok_or(SYNTAX)?),
            '0'..='7' => {
                let mut v = e.to_digit(8).unwrap_or(0);
                for _ in 0..2 {
                    v = v * 8 + chars.next().and_then(|c| c.to_digit(8)).ok_or(SYNTAX)?;
                }
                if v > 255 {
                    return Err(SYNTAX);
                }
                out.push(char::from_u32(v).ok_or(SYNTAX)?);
            }
            q @ ('\'' | '"') if q == quote => out.push(q),
            _ => return Err(SYNTAX),
        }
    }
    Ok(out)
}

/// kubectl's `RelaxedJSONPathExpression` (custom-columns and `--sort-by`): `a.b`, `.a.b`,
/// `{a.b}` and `{.a.b}` all mean `{.a.b}`.
pub fn relaxed(expr: &str) -> Result<String, ParseError> {
    if expr.len() > MAX_TEMPLATE_BYTES {
        return Err(LimitExceeded::new("the path", MAX_TEMPLATE_BYTES, "bytes").into());
    }
    if expr.is_empty() {
        return Ok(String::new());
    }
    let inner = expr
        .strip_prefix('{')
        .and_then(|e| e.strip_suffix('}'))
        .unwrap_or(expr);
    let wrapped = inner.len() != expr.len();
    let field = match inner.strip_prefix('.') {
        Some(f) if !f.is_empty() => f,
        _ => inner,
    };
    if field.is_empty() || field.contains(['{', '}']) || (!wrapped && expr.contains(['{', '}'])) {
        return Err(
            "unexpected path string, expected a 'name1.name2' or '.name1.name2' or \
                    '{name1.name2}' or '{.name1.name2}'"
                .into(),
        );
    }
    Ok(format!("{{.{field}}}"))
}

/// One column of a `-o custom-columns=` spec.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomColumn {
    /// The header as written.
    pub header: String,
    /// The column's path, parsed from its relaxed form.
    pub path: Vec<Node>,
}

/// Parses a `-o custom-columns=HEADER:PATH,…` spec as kubectl's
/// `NewCustomColumnsPrinterFromSpec` does (its error wording included), within kubeline's
/// limits on size and number of columns.
pub fn custom_columns(spec: &str) -> Result<Vec<CustomColumn>, ParseError> {
    if spec.len() > MAX_TEMPLATE_BYTES {
        return Err(
            LimitExceeded::new("the custom-columns spec", MAX_TEMPLATE_BYTES, "bytes").into(),
        );
    }
    if spec.is_empty() {
        return Err("custom-columns format specified but no custom columns given".into());
    }
    if spec.split(',').count() > MAX_CUSTOM_COLUMNS {
        return Err(
            LimitExceeded::new("the custom-columns spec", MAX_CUSTOM_COLUMNS, "columns").into(),
        );
    }
    let mut columns = Vec::new();
    for part in spec.split(',') {
        let Some((header, path)) = part.split_once(':') else {
            return Err(format!(
                "unexpected custom-columns spec: {part}, expected <header>:<json-path-expr>"
            )
            .into());
        };
        let path = parse(&relaxed(path)?)?;
        columns.push(CustomColumn {
            header: header.to_string(),
            path,
        });
    }
    Ok(columns)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(r: Result<Vec<Node>, ParseError>) -> LimitExceeded {
        match r {
            Err(ParseError::Limit(l)) => l,
            other => panic!("expected a limit error, got {other:?}"),
        }
    }

    #[test]
    fn deep_nesting_is_refused_without_recursing_deep() {
        let depth = 100_000;
        let ranges = "{range .items[*]}".repeat(depth);
        assert_eq!(limit(parse(&ranges)).unit, "bytes");
        let ranges = format!(
            "{}{}",
            "{range}".repeat(MAX_RANGE_DEPTH + 1),
            "{end}".repeat(7)
        );
        assert_eq!(limit(parse(&ranges)).unit, "levels");
        let ok = format!("{}{}", "{range}".repeat(MAX_RANGE_DEPTH), "{end}".repeat(6));
        assert!(parse(&ok).is_ok());
        // client-go's grammar cuts a filter at its first `)` and an array at its first `]`, so
        // real templates nest only a few levels; the parser's own bound holds anyway.
        assert!(action_at("@.a[?(@.b[0,1]=='x')]", MAX_TEMPLATE_NESTING - 2).is_ok());
        assert_eq!(
            limit(action_at("@.a[?(@.b[0,1]=='x')]", MAX_TEMPLATE_NESTING)).unit,
            "levels"
        );
        let unions = format!("{{{}}}", "[a,".repeat(400));
        assert!(parse(&unions).is_err());
    }

    #[test]
    fn actions_and_bytes_are_bounded() {
        let many = "{.a}".repeat(MAX_TEMPLATE_ACTIONS + 1);
        assert_eq!(limit(parse(&many)).unit, "actions");
        assert!(parse(&"{.a}".repeat(MAX_TEMPLATE_ACTIONS)).is_ok());
        let cols = vec!["A:.a"; MAX_CUSTOM_COLUMNS + 1].join(",");
        assert!(matches!(custom_columns(&cols), Err(ParseError::Limit(_))));
    }

    #[test]
    fn huge_indexes_parse_without_overflow() {
        for t in [
            "{.items[9223372036854775807]}",
            "{.items[-9223372036854775808]}",
            "{.items[9223372036854775807:]}",
            "{.items[0:9223372036854775807:9223372036854775807]}",
        ] {
            assert!(parse(t).is_ok(), "{t}");
        }
        assert!(matches!(
            parse("{.items[99999999999999999999]}"),
            Err(ParseError::Syntax(_))
        ));
    }

    #[test]
    fn relaxed_paths() {
        assert_eq!(relaxed("metadata.name").unwrap(), "{.metadata.name}");
        assert_eq!(relaxed(".metadata.name").unwrap(), "{.metadata.name}");
        assert_eq!(relaxed("{.metadata.name}").unwrap(), "{.metadata.name}");
        assert_eq!(relaxed("{metadata.name}").unwrap(), "{.metadata.name}");
        assert!(relaxed("{.a}{.b}").is_err());
    }
}
