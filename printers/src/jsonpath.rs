//! kubectl's JSONPath dialect (client-go `util/jsonpath`), evaluated on `serde_json` values the
//! way client-go runs it on unstructured objects. Templates are parsed by
//! [`kubeline_shared::jsonpath`], with kubeline's limits, so the broker refuses the same ones.
//!
//! Results of one action are joined by spaces; maps and lists print as compact JSON, scalars
//! as Go's `fmt.Print` prints them; filters compare with Go template's `eq`/`lt` rules, so
//! comparing a string with a number is an error.
//!
//! Evaluation is bounded: every value visited costs a step from a [`Budget`] of
//! [`MAX_TEMPLATE_STEPS`] (shared by every path of one command), output stops at
//! [`MAX_TEMPLATE_OUTPUT_BYTES`], and `{range}` recursion stops at [`MAX_RANGE_DEPTH`] even when
//! filters open ranges at run time.
//!
//! One deliberate difference: a `*` over a map visits its keys in sorted order, where Go visits
//! them in random order.

use crate::go::fmt::go_sprint;
use crate::go::json as gojson;
use kubeline_shared::jsonpath::{self as syntax, Node, Param};
use kubeline_shared::limits::{
    LimitExceeded, MAX_RANGE_DEPTH, MAX_TEMPLATE_OUTPUT_BYTES, MAX_TEMPLATE_STEPS,
};
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The steps left for the templates of one command. Clones share the count.
#[derive(Debug, Clone)]
pub struct Budget(Arc<AtomicU64>);

impl Default for Budget {
    fn default() -> Self {
        Self(Arc::new(AtomicU64::new(MAX_TEMPLATE_STEPS)))
    }
}

impl Budget {
    /// Takes `n` steps, or fails naming the limit when fewer are left.
    fn take(&self, n: usize) -> Result<(), String> {
        let n = n as u64;
        self.0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                left.checked_sub(n)
            })
            .map(drop)
            .map_err(|_| {
                LimitExceeded::new("evaluating the template", MAX_TEMPLATE_STEPS, "steps")
                    .to_string()
                    + "; narrow it with -n, -l or a name, or read fewer fields"
            })
    }
}

/// A parsed template.
#[derive(Debug, Clone)]
pub struct JsonPath {
    root: Vec<Node>,
    allow_missing_keys: bool,
    output_json: bool,
    budget: Budget,
}

// === values ===

/// A value during evaluation: a part of the object, or a literal from the template.
#[derive(Debug, Clone, PartialEq)]
pub enum V<'a> {
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
    pub fn to_json(&self) -> Value {
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
    pub fn go_sprint(&self) -> String {
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
    pub fn parse(template: &str) -> Result<Self, String> {
        let root = syntax::parse(template).map_err(|e| e.to_string())?;
        Ok(Self::from_nodes(root))
    }

    /// A template already parsed (a custom column's path).
    pub fn from_nodes(root: Vec<Node>) -> Self {
        Self {
            root,
            allow_missing_keys: false,
            output_json: false,
            budget: Budget::default(),
        }
    }

    /// Draws evaluation steps from `budget`, shared with the command's other templates.
    pub fn with_budget(mut self, budget: Budget) -> Self {
        self.budget = budget;
        self
    }

    /// `AllowMissingKeys`: a missing field yields nothing instead of an error.
    pub fn allow_missing_keys(mut self, allow: bool) -> Self {
        self.allow_missing_keys = allow;
        self
    }

    /// `EnableJSONOutput` (`-o jsonpath-as-json`).
    pub fn json_output(mut self, on: bool) -> Self {
        self.output_json = on;
        self
    }

    /// `FindResults`: one list of values per top-level node, ranges unrolled.
    pub fn find_results<'a>(&self, data: &'a Value) -> Result<Vec<Vec<V<'a>>>, String> {
        let mut full = Vec::new();
        self.find_from(V::Json(data), 0, &mut RangeState::default(), &mut |r| {
            full.push(r);
            Ok(())
        })?;
        Ok(full)
    }

    /// Walks the nodes from `start`, handing each list of results to `sink` as it is found, so
    /// that printing can go along (and stop at the output limit) instead of holding every
    /// iteration of every range first.
    fn find_from<'a>(
        &self,
        data: V<'a>,
        start: usize,
        state: &mut RangeState,
        sink: &mut dyn FnMut(Vec<V<'a>>) -> Result<(), String>,
    ) -> Result<(), String> {
        let nodes = &self.root;
        let mut i = start;
        while i < nodes.len() {
            self.budget.take(1)?;
            let results = self.walk(vec![data.clone()], &nodes[i], state)?;
            if state.end > 0 && state.end <= state.inside {
                state.end -= 1;
                state.last_end = Some(i);
                break;
            }
            if state.begin > 0 {
                state.begin -= 1;
                // Filters can open ranges at run time, so the parser's check is not enough.
                if state.inside >= MAX_RANGE_DEPTH {
                    return Err(LimitExceeded::new(
                        "the template's {range} nesting",
                        MAX_RANGE_DEPTH,
                        "levels",
                    )
                    .to_string());
                }
                state.inside += 1;
                if results.is_empty() {
                    // client-go walks the range body once on nothing and drops what it finds.
                    self.find_from(V::Absent, i + 1, state, &mut |_| Ok(()))?;
                } else {
                    for value in results {
                        self.find_from(value, i + 1, state, sink)?;
                    }
                }
                state.inside -= 1;
                if let Some(k) = state.last_end.filter(|k| *k > i) {
                    i = k;
                }
                i += 1;
                continue;
            }
            sink(results)?;
            i += 1;
        }
        Ok(())
    }

    /// `Execute`: find, printing every list of results as it is found. On an error nothing of
    /// the output is used, as kubectl prints nothing when `FindResults` fails.
    pub fn execute(&self, data: &Value) -> Result<String, String> {
        let mut out = String::new();
        self.find_from(V::Json(data), 0, &mut RangeState::default(), &mut |r| {
            self.print_results(&mut out, &r)
        })?;
        Ok(out)
    }

    /// Prints one action's results, stopping as soon as the output is over
    /// [`MAX_TEMPLATE_OUTPUT_BYTES`] (one value at a time, so a template that prints big values
    /// many times is stopped before it holds much more than the limit).
    fn print_results(&self, out: &mut String, results: &[V<'_>]) -> Result<(), String> {
        let over = |out: &String| {
            if out.len() > MAX_TEMPLATE_OUTPUT_BYTES {
                Err(output_limit())
            } else {
                Ok(())
            }
        };
        if self.output_json {
            let array = Value::Array(results.iter().map(V::to_json).collect());
            out.push_str(&gojson::to_string_pretty(&array, "    "));
            return over(out);
        }
        for (i, r) in results.iter().enumerate() {
            over(out)?;
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
        over(out)
    }

    fn walk<'a>(
        &self,
        input: Vec<V<'a>>,
        node: &Node,
        state: &mut RangeState,
    ) -> Result<Vec<V<'a>>, String> {
        self.budget.take(input.len())?;
        match node {
            Node::List(nodes) => self.eval_list(input, nodes, state),
            Node::Text(t) => Ok(vec![V::Str(t.clone())]),
            Node::Field(name) => self.eval_field(input, name),
            Node::Array(params) => self.eval_array(input, params),
            Node::Filter { left, right, op } => self.eval_filter(input, left, right, op, state),
            Node::Int(v) => Ok(vec![V::Int(*v); input.len()]),
            Node::Float(v) => Ok(vec![V::Float(*v); input.len()]),
            Node::Bool(v) => Ok(vec![V::Bool(*v); input.len()]),
            Node::Wildcard => {
                let mut out = Vec::new();
                for v in &input {
                    let c = self.children(v)?;
                    out.extend(c);
                }
                Ok(out)
            }
            Node::Recursive => {
                let mut out = Vec::new();
                self.eval_recursive(&input, &mut out)?;
                Ok(out)
            }
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
            if let V::Json(Value::Object(map)) = v
                && let Some(found) = map.get(name)
            {
                out.push(V::Json(found));
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
            self.budget.take(items.len())?;
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

impl JsonPath {
    /// `[i]` and `[a:b:c]`. Bounds are checked against each array's length before anything is
    /// sliced, so no index a caller writes can allocate by its value; arithmetic wraps as Go's
    /// does, so huge indexes fail with kubectl's own messages.
    fn eval_array<'a>(&self, input: Vec<V<'a>>, params: &[Param; 3]) -> Result<Vec<V<'a>>, String> {
        let mut out = Vec::new();
        for v in &input {
            let items: &'a [Value] = match v {
                V::Json(Value::Null) | V::Absent => continue,
                V::Json(Value::Array(items)) => items,
                other => return Err(format!("{} is not array or slice", other.type_name())),
            };
            let len = items.len() as i64;
            let mut p = *params;
            if !p[0].known {
                p[0].value = 0;
            }
            if p[0].value < 0 {
                p[0].value = p[0].value.wrapping_add(len);
            }
            if !p[1].known {
                p[1].value = len;
            }
            if p[1].value < 0 || (p[1].value == 0 && p[1].derived) {
                p[1].value = p[1].value.wrapping_add(len);
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
                    p[1].value.wrapping_sub(1)
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
                usize::try_from(p[2].value).unwrap_or(usize::MAX)
            } else {
                1
            };
            let slice = &items[p[0].value as usize..p[1].value as usize];
            self.budget.take(slice.len().div_ceil(step))?;
            out.extend(slice.iter().step_by(step).map(V::Json));
        }
        Ok(out)
    }

    /// What `*` yields for one value: map values (keys sorted), list items, or a string's bytes.
    fn children<'a>(&self, v: &V<'a>) -> Result<Vec<V<'a>>, String> {
        let n = match v {
            V::Json(Value::Object(map)) => map.len(),
            V::Json(Value::Array(items)) => items.len(),
            V::Json(Value::String(s)) => s.len(),
            V::Str(s) => s.len(),
            _ => 0,
        };
        self.budget.take(n)?;
        Ok(match v {
            V::Json(Value::Object(map)) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                keys.into_iter().map(|k| V::Json(&map[k])).collect()
            }
            V::Json(Value::Array(items)) => items.iter().map(V::Json).collect(),
            V::Json(Value::String(s)) => s.bytes().map(V::Byte).collect(),
            V::Str(s) => s.bytes().map(V::Byte).collect(),
            _ => Vec::new(),
        })
    }

    /// `..`: every value that has children, depth first. The recursion follows the object's
    /// own depth, which serde_json bounds (128) when the API server's response is read.
    fn eval_recursive<'a>(&self, input: &[V<'a>], out: &mut Vec<V<'a>>) -> Result<(), String> {
        for v in input {
            let c = self.children(v)?;
            if !c.is_empty() {
                out.push(v.clone());
                self.eval_recursive(&c, out)?;
            }
        }
        Ok(())
    }
}

/// Why a template's output was stopped.
pub fn output_limit() -> String {
    LimitExceeded::new("the template's output", MAX_TEMPLATE_OUTPUT_BYTES, "bytes").to_string()
        + "; narrow it with -n, -l or a name, or print fewer fields"
}

/// The nodes of one action, as `explain` reads a `resource.field.field` path (kubectl
/// `pkg/explain.jsonPathParse`): `Some(name)` for a field, `None` for any other node.
pub fn action_fields(text: &str) -> Result<Vec<Option<String>>, String> {
    let nodes = syntax::parse_action(text).map_err(|e| e.to_string())?;
    Ok(nodes
        .into_iter()
        .map(|n| match n {
            Node::Field(name) => Some(name),
            _ => None,
        })
        .collect())
}

/// kubectl's `RelaxedJSONPathExpression` (custom-columns and `--sort-by`).
pub fn relaxed(expr: &str) -> Result<String, String> {
    syntax::relaxed(expr).map_err(|e| e.to_string())
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

    /// 200 items, each a chain 8 levels deep with a list at every level.
    fn deep_items() -> Value {
        let mut leaf = json!([1, 2, 3]);
        for _ in 0..8 {
            leaf = json!({ "a": leaf.clone(), "b": [leaf] });
        }
        json!({ "items": vec![leaf; 200] })
    }

    #[test]
    fn nested_ranges_and_descents_stop_at_the_step_budget() {
        let data = deep_items();
        // Each `..` visits every descendant of each value; nested, the work multiplies.
        let t = format!("{}x{}", "{range ..}".repeat(6), "{end}".repeat(6));
        let err = run(&t, &data).unwrap_err();
        assert!(err.contains("2000000 steps"), "{err}");
        let err = run(&format!("{{{}}}", "..a".repeat(8)), &data).unwrap_err();
        assert!(err.contains("2000000 steps"), "{err}");
        // A normal template over the same data is far inside the budget.
        assert!(run("{range .items[*]}{.a.a.a}{end}", &data).is_ok());
    }

    #[test]
    fn runtime_ranges_opened_by_filters_are_bounded() {
        // client-go lets an identifier `range` inside a filter open a range per item.
        let items: Vec<Value> = (0..50).map(|i| json!({"range": i})).collect();
        let data = json!({ "items": items });
        let t = format!("{{.items[?(range)]}}{}", "{.x}".repeat(20));
        let err = run(&t, &data).unwrap_err();
        assert!(err.contains("levels"), "{err}");
    }

    #[test]
    fn extreme_indexes_neither_panic_nor_allocate() {
        let data = json!({"items": [1, 2, 3]});
        for t in [
            "{.items[9223372036854775807]}",
            "{.items[-9223372036854775808]}",
            "{.items[-9223372036854775808:]}",
            "{.items[:-9223372036854775808]}",
            "{.items[0:3:9223372036854775807]}",
        ] {
            let _ = run(t, &data);
        }
        assert_eq!(
            run("{.items[0:3:9223372036854775807]}", &data).unwrap(),
            "1"
        );
    }

    #[test]
    fn output_is_bounded() {
        let big = "x".repeat(1 << 20);
        let data = json!({ "items": vec![json!({ "s": big }); 40] });
        let err = run("{.items[*].s}{.items[*].s}", &data).unwrap_err();
        assert!(err.contains("bytes"), "{err}");
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn piece() -> impl Strategy<Value = String> {
            prop_oneof![
                Just("{".to_string()),
                Just("}".to_string()),
                Just("{range ".to_string()),
                Just("{end}".to_string()),
                Just(".items".to_string()),
                Just(".a".to_string()),
                Just("[*]".to_string()),
                Just("*".to_string()),
                Just("[?(@.a".to_string()),
                Just("[?(range".to_string()),
                Just(")]".to_string()),
                Just("==".to_string()),
                Just("<".to_string()),
                Just("'x'".to_string()),
                Just("..".to_string()),
                Just("[".to_string()),
                Just("]".to_string()),
                Just(",".to_string()),
                Just(":".to_string()),
                Just("@".to_string()),
                Just("$".to_string()),
                any::<i64>().prop_map(|i| i.to_string()),
                "[a-z]{1,4}",
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]
            /// Whatever the template, evaluation ends (within the step budget) without a panic.
            #[test]
            fn evaluation_never_panics(pieces in prop::collection::vec(piece(), 0..48)) {
                let t = pieces.concat();
                let items: Vec<Value> = (0..40)
                    .map(|i| json!({"a": [i, "s", {"a": [1, 2, 3]}], "range": i, "b": null}))
                    .collect();
                let data = json!({ "items": items, "a": "text" });
                if let Ok(p) = JsonPath::parse(&t) {
                    let _ = p.clone().allow_missing_keys(true).execute(&data);
                    let _ = p.json_output(true).execute(&data);
                }
            }
        }
    }
}
