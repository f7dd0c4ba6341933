//! kubectl's JSONPath dialect (client-go `util/jsonpath`), ported to run on `serde_json`
//! values the way client-go runs it on unstructured objects.
//!
//! The dialect is not RFC 9535: templates mix text and `{actions}`; `{range …}{end}` loops;
//! results of one action are joined by spaces; maps and lists print as compact JSON, scalars
//! as Go's `fmt.Print` prints them; filters compare with Go template's `eq`/`lt` rules, so
//! comparing a string with a number is an error. The parser keeps client-go's quirks (an
//! identifier runs to the next terminator, a quoted string may not contain a newline, a
//! union is split on every comma).
//!
//! One deliberate difference: a `*` over a map visits its keys in sorted order, where Go visits
//! them in random order.

use super::gojson;
use serde_json::Value;
use std::fmt::Write as _;

// === syntax ===

/// One slice bound of an array node (`[a:b:c]`).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
struct Param {
    value: i64,
    known: bool,
    derived: bool,
}

/// A parsed node, as client-go's `Node` types.
#[derive(Debug, Clone, PartialEq)]
enum Node {
    List(Vec<Node>),
    Text(String),
    Field(String),
    Array([Param; 3]),
    Filter {
        left: Vec<Node>,
        right: Vec<Node>,
        op: String,
    },
    Int(i64),
    Float(f64),
    Bool(bool),
    Wildcard,
    Recursive,
    Union(Vec<Vec<Node>>),
    Identifier(String),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct JsonPath {
    root: Vec<Node>,
    allow_missing_keys: bool,
    output_json: bool,
}

const EOF: Option<char> = None;

struct Parser<'a> {
    input: &'a str,
    pos: usize,
    start: usize,
    width: usize,
}

impl<'a> Parser<'a> {
    fn new(input: &'a str) -> Self {
        Self {
            input,
            pos: 0,
            start: 0,
            width: 0,
        }
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

    /// `parseText` and everything it reaches: text, then actions until the input ends.
    fn parse(&mut self) -> Result<Vec<Node>, String> {
        let mut root = Vec::new();
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
            let mut list = Vec::new();
            let result = self.inside_action(&mut list);
            root.push(Node::List(list));
            result?;
        }
    }

    /// `parseInsideAction` until the closing `}`.
    fn inside_action(&mut self, cur: &mut Vec<Node>) -> Result<(), String> {
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
                    ));
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

    fn number(&mut self, cur: &mut Vec<Node>) -> Result<(), String> {
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
            _ => Err(format!("cannot parse number {value}")),
        }
    }

    fn array(&mut self, cur: &mut Vec<Node>) -> Result<(), String> {
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
                union.push(parse_action(&format!("[{}]", p.trim_matches(' ')))?);
            }
            cur.push(Node::Union(union));
            return Ok(());
        }
        if text.len() >= 2
            && text.starts_with('\'')
            && text.ends_with('\'')
            && !text[1..text.len() - 1].contains('\'')
        {
            let nodes = parse_action(&format!(".{}", &text[1..text.len() - 1]))?;
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
                params[i].value = params[0].value + 1;
                params[i].derived = true;
            }
        }
        cur.push(Node::Array(params));
        Ok(())
    }

    fn filter(&mut self, cur: &mut Vec<Node>) -> Result<(), String> {
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
                left: parse_action(text)?,
                right: Vec::new(),
                op: "exists".into(),
            }),
            Some((l, op, r)) => cur.push(Node::Filter {
                left: parse_action(l)?,
                right: parse_action(r)?,
                op: op.to_string(),
            }),
        }
        Ok(())
    }

    fn quote(&mut self, cur: &mut Vec<Node>, end: char) -> Result<(), String> {
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

/// client-go's `parseAction`: parses `{text}` and returns the nodes of its one action.
fn parse_action(text: &str) -> Result<Vec<Node>, String> {
    let wrapped = format!("{{{text}}}");
    let mut p = Parser::new(&wrapped);
    let root = p.parse()?;
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

/// `^([^!<>=]+)([!<>=]+)(.+?)$`.
fn split_comparison(text: &str) -> Option<(&str, &str, &str)> {
    let is_op = |c: char| "!<>=".contains(c);
    let start = text.find(is_op)?;
    if start == 0 {
        return None;
    }
    let after = &text[start..];
    let len = after.find(|c| !is_op(c)).unwrap_or(after.len());
    let right = &after[len..];
    if right.is_empty() || right.contains('\n') {
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

// === values ===

/// A value during evaluation: a part of the object, or a literal from the template.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum V<'a> {
    /// A value inside the object (`null` included).
    Json(&'a Value),
    /// A quoted literal.
    Str(String),
    /// An integer literal.
    Int(i64),
    /// A float literal.
    Float(f64),
    /// `true`/`false`.
    Bool(bool),
    /// A byte of a string, as `*` over a string yields (Go's `uint8`).
    Byte(u8),
    /// No value at all (client-go runs the body of an empty `range` on `nil`).
    Absent,
}

/// Go's `reflect.Kind`, as far as the evaluator looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Map,
    Slice,
    String,
    Int,
    Uint,
    Float,
    Bool,
    Nil,
    Invalid,
}

impl V<'_> {
    fn kind(&self) -> Kind {
        match self {
            V::Json(Value::Object(_)) => Kind::Map,
            V::Json(Value::Array(_)) => Kind::Slice,
            V::Json(Value::String(_)) | V::Str(_) => Kind::String,
            V::Json(Value::Number(n)) if n.is_i64() => Kind::Int,
            V::Json(Value::Number(_)) | V::Float(_) => Kind::Float,
            V::Json(Value::Bool(_)) | V::Bool(_) => Kind::Bool,
            V::Json(Value::Null) => Kind::Nil,
            V::Int(_) => Kind::Int,
            V::Byte(_) => Kind::Uint,
            V::Absent => Kind::Invalid,
        }
    }

    /// Go's type name, for error messages.
    fn type_name(&self) -> &'static str {
        match self {
            V::Json(Value::Object(_)) => "map[string]interface {}",
            V::Json(Value::Array(_)) => "[]interface {}",
            V::Json(Value::String(_)) | V::Str(_) => "string",
            V::Json(Value::Number(n)) if n.is_i64() => "int64",
            V::Json(Value::Number(_)) | V::Float(_) => "float64",
            V::Json(Value::Bool(_)) | V::Bool(_) => "bool",
            V::Json(Value::Null) => "interface {}",
            V::Int(_) => "int",
            V::Byte(_) => "uint8",
            V::Absent => "<invalid reflect.Value>",
        }
    }

    fn as_str(&self) -> Option<&str> {
        match self {
            V::Json(Value::String(s)) => Some(s),
            V::Str(s) => Some(s),
            _ => None,
        }
    }

    fn as_i64(&self) -> Option<i64> {
        match self {
            V::Json(Value::Number(n)) => n.as_i64(),
            V::Int(i) => Some(*i),
            _ => None,
        }
    }

    fn as_f64(&self) -> Option<f64> {
        match self {
            V::Json(Value::Number(n)) => n.as_f64(),
            V::Float(f) => Some(*f),
            _ => None,
        }
    }

    /// The value as JSON (literals become JSON values too).
    pub(crate) fn to_json(&self) -> Value {
        match self {
            V::Json(v) => (*v).clone(),
            V::Str(s) => Value::String(s.clone()),
            V::Int(i) => Value::from(*i),
            V::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
            V::Bool(b) => Value::Bool(*b),
            V::Byte(b) => Value::from(*b),
            V::Absent => Value::Null,
        }
    }

    /// Go's `fmt.Sprint` of the value (what custom-columns prints).
    pub(crate) fn go_sprint(&self) -> String {
        match self {
            V::Json(v) => go_sprint(v),
            V::Str(s) => s.clone(),
            V::Int(i) => i.to_string(),
            V::Float(f) => gojson::format_g(*f),
            V::Bool(b) => b.to_string(),
            V::Byte(b) => b.to_string(),
            V::Absent => "<nil>".into(),
        }
    }
}

/// Go's `fmt.Sprint` of an unstructured value: `map[a:1 b:[x y]]`, `<nil>`.
pub(crate) fn go_sprint(v: &Value) -> String {
    let mut out = String::new();
    write_sprint(&mut out, v);
    out
}

fn write_sprint(out: &mut String, v: &Value) {
    match v {
        Value::Null => out.push_str("<nil>"),
        Value::Bool(b) => {
            let _ = write!(out, "{b}");
        }
        Value::Number(n) => match n.as_i64() {
            Some(i) => {
                let _ = write!(out, "{i}");
            }
            None => out.push_str(&gojson::format_g(n.as_f64().unwrap_or_default())),
        },
        Value::String(s) => out.push_str(s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                write_sprint(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push_str("map[");
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                out.push_str(k);
                out.push(':');
                write_sprint(out, &map[k]);
            }
            out.push(']');
        }
    }
}

/// Go's `json.Marshal`: compact, keys sorted, Go's escaping.
fn marshal_compact(out: &mut String, v: &Value) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&gojson::json_number(n)),
        Value::String(s) => gojson::write_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                marshal_compact(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                gojson::write_string(out, k);
                out.push(':');
                marshal_compact(out, &map[k]);
            }
            out.push('}');
        }
    }
}

// === evaluation ===

/// Range bookkeeping, as client-go keeps it on the `JSONPath` value.
#[derive(Default)]
struct RangeState {
    begin: usize,
    inside: usize,
    end: usize,
    last_end: Option<usize>,
}

impl JsonPath {
    /// Parses a template (`-o jsonpath=…`). Errors read as client-go words them.
    pub(crate) fn parse(template: &str) -> Result<Self, String> {
        let root = Parser::new(template).parse()?;
        Ok(Self {
            root,
            allow_missing_keys: false,
            output_json: false,
        })
    }

    /// `AllowMissingKeys`: a missing field yields nothing instead of an error.
    pub(crate) fn allow_missing_keys(mut self, allow: bool) -> Self {
        self.allow_missing_keys = allow;
        self
    }

    /// `EnableJSONOutput` (`-o jsonpath-as-json`).
    pub(crate) fn json_output(mut self, on: bool) -> Self {
        self.output_json = on;
        self
    }

    /// `FindResults`: one list of values per top-level node, ranges unrolled.
    pub(crate) fn find_results<'a>(&self, data: &'a Value) -> Result<Vec<Vec<V<'a>>>, String> {
        let mut state = RangeState::default();
        self.find_from(V::Json(data), 0, &mut state)
    }

    fn find_from<'a>(
        &self,
        data: V<'a>,
        start: usize,
        state: &mut RangeState,
    ) -> Result<Vec<Vec<V<'a>>>, String> {
        let nodes = &self.root;
        let mut full = Vec::new();
        let mut i = start;
        while i < nodes.len() {
            let results = self.walk(vec![data.clone()], &nodes[i], state)?;
            if state.end > 0 && state.end <= state.inside {
                state.end -= 1;
                state.last_end = Some(i);
                break;
            }
            if state.begin > 0 {
                state.begin -= 1;
                state.inside += 1;
                if results.is_empty() {
                    self.find_from(V::Absent, i + 1, state)?;
                } else {
                    for value in results {
                        full.extend(self.find_from(value, i + 1, state)?);
                    }
                }
                state.inside -= 1;
                if let Some(k) = state.last_end.filter(|k| *k > i) {
                    i = k;
                }
                i += 1;
                continue;
            }
            full.push(results);
            i += 1;
        }
        Ok(full)
    }

    /// `Execute`: find, then print every list of results.
    pub(crate) fn execute(&self, data: &Value) -> Result<String, String> {
        let results = self.find_results(data)?;
        let mut out = String::new();
        for r in &results {
            self.print_results(&mut out, r);
        }
        Ok(out)
    }

    fn print_results(&self, out: &mut String, results: &[V<'_>]) {
        if self.output_json {
            let array = Value::Array(results.iter().map(V::to_json).collect());
            out.push_str(&gojson::to_string_pretty(&array, "    "));
            return;
        }
        for (i, r) in results.iter().enumerate() {
            match r {
                V::Json(v @ (Value::Object(_) | Value::Array(_))) => marshal_compact(out, v),
                V::Json(Value::Null) => out.push_str("null"),
                V::Absent => out.push_str("<no value>"),
                other => out.push_str(&other.go_sprint()),
            }
            if i + 1 != results.len() {
                out.push(' ');
            }
        }
    }

    fn walk<'a>(
        &self,
        input: Vec<V<'a>>,
        node: &Node,
        state: &mut RangeState,
    ) -> Result<Vec<V<'a>>, String> {
        match node {
            Node::List(nodes) => self.eval_list(input, nodes, state),
            Node::Text(t) => Ok(vec![V::Str(t.clone())]),
            Node::Field(name) => self.eval_field(input, name),
            Node::Array(params) => eval_array(input, params),
            Node::Filter { left, right, op } => self.eval_filter(input, left, right, op, state),
            Node::Int(v) => Ok(vec![V::Int(*v); input.len()]),
            Node::Float(v) => Ok(vec![V::Float(*v); input.len()]),
            Node::Bool(v) => Ok(vec![V::Bool(*v); input.len()]),
            Node::Wildcard => Ok(input.iter().flat_map(children).collect()),
            Node::Recursive => Ok(eval_recursive(&input)),
            Node::Union(lists) => {
                let mut out = Vec::new();
                for l in lists {
                    out.extend(self.eval_list(input.clone(), l, state)?);
                }
                Ok(out)
            }
            Node::Identifier(name) => match name.as_str() {
                "range" => {
                    state.begin += 1;
                    Ok(input)
                }
                "end" => {
                    if state.inside > 0 {
                        state.end += 1;
                        Ok(Vec::new())
                    } else {
                        Err("not in range, nothing to end".into())
                    }
                }
                other => Err(format!("unrecognized identifier {other}")),
            },
        }
    }

    fn eval_list<'a>(
        &self,
        input: Vec<V<'a>>,
        nodes: &[Node],
        state: &mut RangeState,
    ) -> Result<Vec<V<'a>>, String> {
        let mut cur = input;
        for n in nodes {
            cur = self.walk(cur, n, state)?;
        }
        Ok(cur)
    }

    fn eval_field<'a>(&self, input: Vec<V<'a>>, name: &str) -> Result<Vec<V<'a>>, String> {
        if input.is_empty() {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for v in &input {
            if let V::Json(Value::Object(map)) = v {
                if let Some(found) = map.get(name) {
                    out.push(V::Json(found));
                }
            }
        }
        if out.is_empty() && !self.allow_missing_keys {
            return Err(format!("{name} is not found"));
        }
        Ok(out)
    }

    fn eval_filter<'a>(
        &self,
        input: Vec<V<'a>>,
        left: &[Node],
        right: &[Node],
        op: &str,
        state: &mut RangeState,
    ) -> Result<Vec<V<'a>>, String> {
        let mut out = Vec::new();
        for v in &input {
            let V::Json(Value::Array(items)) = v else {
                return Err(format!(
                    "{} is not array or slice and cannot be filtered",
                    v.go_sprint()
                ));
            };
            for item in items {
                let lefts = self.eval_list(vec![V::Json(item)], left, state);
                if op == "exists" {
                    if lefts.is_ok_and(|l| !l.is_empty()) {
                        out.push(V::Json(item));
                    }
                    continue;
                }
                let lefts = lefts?;
                let l = match lefts.len() {
                    0 => continue,
                    1 => &lefts[0],
                    _ => return Err("can only compare one element at a time".into()),
                };
                let rights = self.eval_list(vec![V::Json(item)], right, state)?;
                let r = match rights.len() {
                    0 => continue,
                    1 => &rights[0],
                    _ => return Err("can only compare one element at a time".into()),
                };
                let pass = match op {
                    "<" => less(l, r)?,
                    ">" => !(less(l, r)? || equal(l, r)?),
                    "==" => equal(l, r)?,
                    "!=" => !equal(l, r)?,
                    "<=" => less(l, r)? || equal(l, r)?,
                    ">=" => !less(l, r)?,
                    other => return Err(format!("unrecognized filter operator {other}")),
                };
                if pass {
                    out.push(V::Json(item));
                }
            }
        }
        Ok(out)
    }
}

const BAD_TYPE: &str = "invalid type for comparison";
const BAD_COMPARISON: &str = "incompatible types for comparison";

fn basic_kind(v: &V<'_>) -> Result<Kind, String> {
    match v.kind() {
        k @ (Kind::Bool | Kind::Int | Kind::Uint | Kind::Float | Kind::String) => Ok(k),
        _ => Err(BAD_TYPE.into()),
    }
}

fn uint(v: &V<'_>) -> u64 {
    match v {
        V::Byte(b) => u64::from(*b),
        _ => 0,
    }
}

/// Go template's `eq`.
fn equal(a: &V<'_>, b: &V<'_>) -> Result<bool, String> {
    let (ka, kb) = (basic_kind(a)?, basic_kind(b)?);
    if ka != kb {
        return match (ka, kb) {
            (Kind::Int, Kind::Uint) => {
                Ok(a.as_i64().unwrap_or(0) >= 0 && a.as_i64().unwrap_or(0) as u64 == uint(b))
            }
            (Kind::Uint, Kind::Int) => {
                Ok(b.as_i64().unwrap_or(0) >= 0 && uint(a) == b.as_i64().unwrap_or(0) as u64)
            }
            _ => Err(BAD_COMPARISON.into()),
        };
    }
    Ok(match ka {
        Kind::Bool => bool_of(a) == bool_of(b),
        Kind::Float => a.as_f64() == b.as_f64(),
        Kind::Int => a.as_i64() == b.as_i64(),
        Kind::String => a.as_str() == b.as_str(),
        Kind::Uint => uint(a) == uint(b),
        _ => false,
    })
}

/// Go template's `lt`.
fn less(a: &V<'_>, b: &V<'_>) -> Result<bool, String> {
    let (ka, kb) = (basic_kind(a)?, basic_kind(b)?);
    if ka != kb {
        return match (ka, kb) {
            (Kind::Int, Kind::Uint) => {
                let i = a.as_i64().unwrap_or(0);
                Ok(i < 0 || (i as u64) < uint(b))
            }
            (Kind::Uint, Kind::Int) => {
                let i = b.as_i64().unwrap_or(0);
                Ok(i >= 0 && uint(a) < i as u64)
            }
            _ => Err(BAD_COMPARISON.into()),
        };
    }
    match ka {
        Kind::Bool => Err(BAD_TYPE.into()),
        Kind::Float => Ok(a.as_f64() < b.as_f64()),
        Kind::Int => Ok(a.as_i64() < b.as_i64()),
        Kind::String => Ok(a.as_str() < b.as_str()),
        Kind::Uint => Ok(uint(a) < uint(b)),
        _ => Ok(false),
    }
}

fn bool_of(v: &V<'_>) -> bool {
    match v {
        V::Json(Value::Bool(b)) | V::Bool(b) => *b,
        _ => false,
    }
}

fn eval_array<'a>(input: Vec<V<'a>>, params: &[Param; 3]) -> Result<Vec<V<'a>>, String> {
    let mut out = Vec::new();
    for v in &input {
        let items: Vec<V<'a>> = match v {
            V::Json(Value::Null) | V::Absent => continue,
            V::Json(Value::Array(items)) => items.iter().map(V::Json).collect(),
            other => return Err(format!("{} is not array or slice", other.type_name())),
        };
        let len = items.len() as i64;
        let mut p = *params;
        if !p[0].known {
            p[0].value = 0;
        }
        if p[0].value < 0 {
            p[0].value += len;
        }
        if !p[1].known {
            p[1].value = len;
        }
        if p[1].value < 0 || (p[1].value == 0 && p[1].derived) {
            p[1].value += len;
        }
        if p[1].value == p[0].value {
            return Ok(out);
        }
        if p[0].value >= len || p[0].value < 0 {
            return Err(format!(
                "array index out of bounds: index {}, length {len}",
                p[0].value
            ));
        }
        if p[1].value > len || p[1].value < 0 {
            return Err(format!(
                "array index out of bounds: index {}, length {len}",
                p[1].value - 1
            ));
        }
        if p[0].value > p[1].value {
            return Err(format!(
                "starting index {} is greater than ending index {}",
                p[0].value, p[1].value
            ));
        }
        let step = if p[2].known {
            if p[2].value <= 0 {
                return Err("step must be > 0".into());
            }
            p[2].value as usize
        } else {
            1
        };
        let slice = &items[p[0].value as usize..p[1].value as usize];
        out.extend(slice.iter().step_by(step).cloned());
    }
    Ok(out)
}

/// What `*` yields for one value: map values (keys sorted), list items, or a string's bytes.
fn children<'a>(v: &V<'a>) -> Vec<V<'a>> {
    match v {
        V::Json(Value::Object(map)) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            keys.into_iter().map(|k| V::Json(&map[k])).collect()
        }
        V::Json(Value::Array(items)) => items.iter().map(V::Json).collect(),
        V::Json(Value::String(s)) => s.bytes().map(V::Byte).collect(),
        V::Str(s) => s.bytes().map(V::Byte).collect(),
        _ => Vec::new(),
    }
}

fn eval_recursive<'a>(input: &[V<'a>]) -> Vec<V<'a>> {
    let mut out = Vec::new();
    for v in input {
        let c = children(v);
        if !c.is_empty() {
            out.push(v.clone());
            out.extend(eval_recursive(&c));
        }
    }
    out
}

/// The nodes of one action, as `explain` reads a `resource.field.field` path (kubectl
/// `pkg/explain.jsonPathParse`): `Some(name)` for a field, `None` for any other node.
pub(crate) fn action_fields(text: &str) -> Result<Vec<Option<String>>, String> {
    let nodes = parse_action(text)?;
    Ok(nodes
        .into_iter()
        .map(|n| match n {
            Node::Field(name) => Some(name),
            _ => None,
        })
        .collect())
}

/// kubectl's `RelaxedJSONPathExpression` (custom-columns and `--sort-by`): `a.b`, `.a.b`,
/// `{a.b}` and `{.a.b}` all mean `{.a.b}`.
pub(crate) fn relaxed(expr: &str) -> Result<String, String> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(template: &str, data: &Value) -> Result<String, String> {
        JsonPath::parse(template)?
            .allow_missing_keys(true)
            .execute(data)
    }

    fn pods() -> Value {
        json!({"kind": "List", "items": [
            {"metadata": {"name": "a", "labels": {"app": "web"}}, "spec": {"replicas": 2, "ratio": 0.5},
             "status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "Init", "status": "False"}]}},
            {"metadata": {"name": "b", "labels": {"app": "db"}}, "spec": {"replicas": 3, "ratio": 1.5},
             "status": {"conditions": [{"type": "Ready", "status": "False"}]}}
        ]})
    }

    #[test]
    fn fields_wildcards_and_text() {
        let d = pods();
        assert_eq!(run("{.items[*].metadata.name}", &d).unwrap(), "a b");
        assert_eq!(run("{.items[0].metadata.name}", &d).unwrap(), "a");
        assert_eq!(run("{.items[-1].metadata.name}", &d).unwrap(), "b");
        assert_eq!(run("{.items[0:1].metadata.name}", &d).unwrap(), "a");
        assert_eq!(
            run("names: {.items[*].metadata.name}!", &d).unwrap(),
            "names: a b!"
        );
        assert_eq!(run("{.items[*].spec.replicas}", &d).unwrap(), "2 3");
        assert_eq!(run("{.items[*].spec.ratio}", &d).unwrap(), "0.5 1.5");
        assert_eq!(run("{.kind}{\"\\n\"}", &d).unwrap(), "List\n");
        assert_eq!(
            run("{.items[0].metadata.labels}", &d).unwrap(),
            r#"{"app":"web"}"#
        );
        assert_eq!(run("{.items[*]['metadata.name']}", &d).unwrap(), "a b");
        assert_eq!(run("{.items[0,1].metadata.name}", &d).unwrap(), "a b");
        assert_eq!(run("{.missing}", &d).unwrap(), "");
        assert_eq!(run("{..name}", &d).unwrap(), "a b");
        assert_eq!(run("{$.kind}", &d).unwrap(), "List");
    }

    #[test]
    fn ranges_and_filters() {
        let d = pods();
        assert_eq!(
            run(
                "{range .items[*]}{.metadata.name}{\"\\t\"}{.spec.replicas}{\"\\n\"}{end}",
                &d
            )
            .unwrap(),
            "a\t2\nb\t3\n"
        );
        assert_eq!(
            run(
                "{range .items[*]}[{range .status.conditions[*]}{.type},{end}]{end}",
                &d
            )
            .unwrap(),
            "[Ready,Init,][Ready,]"
        );
        assert_eq!(
            run(
                r#"{.items[*].status.conditions[?(@.type=="Ready")].status}"#,
                &d
            )
            .unwrap(),
            "True False"
        );
        assert_eq!(
            run("{.items[?(@.spec.replicas>2)].metadata.name}", &d).unwrap(),
            "b"
        );
        assert_eq!(
            run("{.items[?(@.metadata.labels.app)].metadata.name}", &d).unwrap(),
            "a b"
        );
        assert_eq!(
            run("{.items[?(@.spec.replicas=='2')].metadata.name}", &d).unwrap_err(),
            "incompatible types for comparison"
        );
        assert_eq!(
            run("{range .nothing[*]}{.x}{end}after", &d).unwrap(),
            "after"
        );
    }

    #[test]
    fn errors_read_like_client_go() {
        let d = pods();
        assert_eq!(run("{.items[", &d).unwrap_err(), "unterminated array");
        assert_eq!(run("{.items", &d).unwrap_err(), "unclosed action");
        assert_eq!(
            run("{.items[5]}", &d).unwrap_err(),
            "array index out of bounds: index 5, length 2"
        );
        assert_eq!(
            run("{end}", &d).unwrap_err(),
            "not in range, nothing to end"
        );
        assert_eq!(run("{foo}", &d).unwrap_err(), "unrecognized identifier foo");
        assert_eq!(
            run("{.kind[0]}", &d).unwrap_err(),
            "string is not array or slice"
        );
        assert_eq!(
            run("{#}", &d).unwrap_err(),
            "unrecognized character in action: U+0023 '#'"
        );
        let strict = JsonPath::parse("{.missing}").unwrap();
        assert_eq!(strict.execute(&d).unwrap_err(), "missing is not found");
    }

    #[test]
    fn json_output() {
        let d = pods();
        let p = JsonPath::parse("{.items[*].metadata.name}")
            .unwrap()
            .allow_missing_keys(true)
            .json_output(true);
        assert_eq!(p.execute(&d).unwrap(), "[\n    \"a\",\n    \"b\"\n]\n");
    }

    #[test]
    fn sprint_is_go_like() {
        assert_eq!(
            go_sprint(&json!({"b": [1, "x"], "a": null, "c": 0.5})),
            "map[a:<nil> b:[1 x] c:0.5]"
        );
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
