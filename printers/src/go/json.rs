//! JSON and numbers printed the way kubectl (Go) prints them.
//!
//! kubectl's `-o json` is `json.MarshalIndent(obj, "", "    ")` of an unstructured object: keys
//! sorted, four-space indent, `{}`/`[]` for empty containers, Go's string escaping (including
//! `<`, `>`, `&`, U+2028 and U+2029, which Go escapes for HTML safety) and Go's float format.

use serde_json::{Number, Value};
use std::fmt::Write as _;

/// `json.MarshalIndent(v, "", indent)` followed by a newline.
pub fn to_string_pretty(v: &Value, indent: &str) -> String {
    let mut out = String::new();
    write_value(&mut out, v, indent, 0);
    out.push('\n');
    out
}

/// `json.Marshal(v)`: compact, keys sorted, Go's escaping (no trailing newline).
pub fn to_string_compact(v: &Value) -> String {
    let mut out = String::new();
    write_compact(&mut out, v);
    out
}

fn write_compact<T: Tree>(out: &mut String, v: &T) {
    match v.node() {
        Node::Null => out.push_str("null"),
        Node::Bool(b) => out.push_str(if b { "true" } else { "false" }),
        Node::Number(n) => out.push_str(&json_number(n)),
        Node::String(s) => write_string(out, s),
        Node::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_compact(out, item);
            }
            out.push(']');
        }
        Node::Object(fields) => {
            out.push('{');
            for (i, (k, v)) in fields.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(out, k);
                out.push(':');
                write_compact(out, *v);
            }
            out.push('}');
        }
    }
}

/// Writes an object whose keys keep the given order (Go structs marshal in field order).
pub fn write_ordered_object(
    out: &mut String,
    fields: &[(&str, &Value)],
    indent: &str,
    depth: usize,
) {
    write_fields(out, fields, indent, depth);
}

fn newline(out: &mut String, indent: &str, depth: usize) {
    out.push('\n');
    for _ in 0..depth {
        out.push_str(indent);
    }
}

/// `json.MarshalIndent` of a [`Value`]: keys sorted, as Go sorts map keys (no trailing newline).
pub fn write_value(out: &mut String, v: &Value, indent: &str, depth: usize) {
    write_tree(out, v, indent, depth);
}

/// A JSON tree Go's encoder is ported over: [`Value`] (keys sorted, as Go sorts a map's) or
/// [`Ordered`] (keys in their order, as Go marshals a struct's fields). One writer serves both.
trait Tree: Sized {
    fn node(&self) -> Node<'_, Self>;
}

/// One level of a [`Tree`].
enum Node<'a, T> {
    Null,
    Bool(bool),
    Number(&'a Number),
    String(&'a str),
    Array(&'a [T]),
    /// Fields in the order they are written.
    Object(Vec<(&'a str, &'a T)>),
}

impl Tree for Value {
    fn node(&self) -> Node<'_, Self> {
        match self {
            Value::Null => Node::Null,
            Value::Bool(b) => Node::Bool(*b),
            Value::Number(n) => Node::Number(n),
            Value::String(s) => Node::String(s),
            Value::Array(items) => Node::Array(items),
            Value::Object(map) => {
                let mut fields: Vec<(&str, &Value)> =
                    map.iter().map(|(k, v)| (k.as_str(), v)).collect();
                fields.sort_by(|a, b| a.0.cmp(b.0));
                Node::Object(fields)
            }
        }
    }
}

impl Tree for Ordered {
    fn node(&self) -> Node<'_, Self> {
        match self {
            Ordered::Null => Node::Null,
            Ordered::Bool(b) => Node::Bool(*b),
            Ordered::Number(n) => Node::Number(n),
            Ordered::String(s) => Node::String(s),
            Ordered::Array(items) => Node::Array(items),
            Ordered::Object(fields) => {
                Node::Object(fields.iter().map(|(k, v)| (k.as_str(), v)).collect())
            }
        }
    }
}

fn write_tree<T: Tree>(out: &mut String, v: &T, indent: &str, depth: usize) {
    match v.node() {
        Node::Null => out.push_str("null"),
        Node::Bool(b) => out.push_str(if b { "true" } else { "false" }),
        Node::Number(n) => out.push_str(&json_number(n)),
        Node::String(s) => write_string(out, s),
        Node::Array(items) => {
            if items.is_empty() {
                out.push_str("[]");
                return;
            }
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(out, indent, depth + 1);
                write_tree(out, item, indent, depth + 1);
            }
            newline(out, indent, depth);
            out.push(']');
        }
        Node::Object(fields) => write_fields(out, &fields, indent, depth),
    }
}

fn write_fields<T: Tree>(out: &mut String, fields: &[(&str, &T)], indent: &str, depth: usize) {
    if fields.is_empty() {
        out.push_str("{}");
        return;
    }
    out.push('{');
    for (i, (k, v)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        newline(out, indent, depth + 1);
        write_string(out, k);
        out.push_str(": ");
        write_tree(out, *v, indent, depth + 1);
    }
    newline(out, indent, depth);
    out.push('}');
}

/// A JSON value whose objects keep their keys in the order of the text they were read from.
///
/// kubectl prints typed objects (an `EventList`, an `APIResourceList`, the ReplicaSets of
/// `rollout history`) with `json.MarshalIndent` of Go structs, so keys come in field order. The
/// API server writes built-in types from the same structs, so the order of its answer is that
/// order: reading it with [`Ordered`] and writing it with [`write_ordered`] reproduces kubectl.
#[derive(Debug, Clone, PartialEq)]
pub enum Ordered {
    Null,
    Bool(bool),
    Number(Number),
    String(String),
    Array(Vec<Ordered>),
    Object(Vec<(String, Ordered)>),
}

impl Ordered {
    /// Sets an object's field, in place if it exists, else at `position` (clamped).
    pub fn set(&mut self, key: &str, value: Ordered, position: usize) {
        if let Ordered::Object(fields) = self {
            match fields.iter_mut().find(|(k, _)| k == key) {
                Some((_, v)) => *v = value,
                None => fields.insert(position.min(fields.len()), (key.to_string(), value)),
            }
        }
    }

    /// Removes `metadata.managedFields`, as kubectl's `OmitManagedFieldsPrinter` does.
    pub fn omit_managed_fields(&mut self) {
        if let Ordered::Object(fields) = self
            && let Some((_, Ordered::Object(meta))) =
                fields.iter_mut().find(|(k, _)| k == "metadata")
        {
            meta.retain(|(k, _)| k != "managedFields");
        }
    }

    /// The same value with its keys unordered (for the YAML printer, which sorts them anyway).
    pub fn to_value(&self) -> Value {
        match self {
            Ordered::Null => Value::Null,
            Ordered::Bool(b) => Value::Bool(*b),
            Ordered::Number(n) => Value::Number(n.clone()),
            Ordered::String(s) => Value::String(s.clone()),
            Ordered::Array(items) => Value::Array(items.iter().map(Ordered::to_value).collect()),
            Ordered::Object(fields) => Value::Object(
                fields
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_value()))
                    .collect(),
            ),
        }
    }

    /// A value built in code, keys in the order given.
    pub fn from_value_sorted(v: &Value) -> Ordered {
        match v {
            Value::Null => Ordered::Null,
            Value::Bool(b) => Ordered::Bool(*b),
            Value::Number(n) => Ordered::Number(n.clone()),
            Value::String(s) => Ordered::String(s.clone()),
            Value::Array(items) => {
                Ordered::Array(items.iter().map(Ordered::from_value_sorted).collect())
            }
            Value::Object(map) => Ordered::Object(
                map.iter()
                    .map(|(k, v)| (k.clone(), Ordered::from_value_sorted(v)))
                    .collect(),
            ),
        }
    }
}

impl<'de> serde::Deserialize<'de> for Ordered {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Ordered;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_unit<E>(self) -> Result<Ordered, E> {
                Ok(Ordered::Null)
            }
            fn visit_none<E>(self) -> Result<Ordered, E> {
                Ok(Ordered::Null)
            }
            fn visit_bool<E>(self, b: bool) -> Result<Ordered, E> {
                Ok(Ordered::Bool(b))
            }
            fn visit_i64<E>(self, n: i64) -> Result<Ordered, E> {
                Ok(Ordered::Number(n.into()))
            }
            fn visit_u64<E>(self, n: u64) -> Result<Ordered, E> {
                Ok(Ordered::Number(n.into()))
            }
            fn visit_f64<E>(self, n: f64) -> Result<Ordered, E> {
                Ok(Number::from_f64(n).map_or(Ordered::Null, Ordered::Number))
            }
            fn visit_str<E>(self, s: &str) -> Result<Ordered, E> {
                Ok(Ordered::String(s.to_string()))
            }
            fn visit_string<E>(self, s: String) -> Result<Ordered, E> {
                Ok(Ordered::String(s))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Ordered, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Ordered::Array(items))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Ordered, A::Error> {
                let mut fields: Vec<(String, Ordered)> = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, Ordered>()? {
                    // Go keeps the last of duplicate keys, at the place of the struct field.
                    match fields.iter_mut().find(|(key, _)| *key == k) {
                        Some((_, old)) => *old = v,
                        None => fields.push((k, v)),
                    }
                }
                Ok(Ordered::Object(fields))
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// `json.MarshalIndent` of an [`Ordered`] value, keys in their order (no trailing newline).
pub fn write_ordered(out: &mut String, v: &Ordered, indent: &str, depth: usize) {
    write_tree(out, v, indent, depth);
}

/// A JSON string literal with Go's escaping.
pub fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A number as Go's `encoding/json` prints what kubectl decoded: integers as integers, other
/// values as float64.
pub fn json_number(n: &Number) -> String {
    if let Some(i) = n.as_i64() {
        return i.to_string();
    }
    if let Some(u) = n.as_u64() {
        return u.to_string();
    }
    json_float(n.as_f64().unwrap_or(0.0))
}

/// Go's `encoding/json` float64 format: `'f'` unless the magnitude is below 1e-6 or at least
/// 1e21, then `'e'` with a one-digit negative exponent cleaned of its leading zero.
pub fn json_float(f: f64) -> String {
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let s = format_e(f);
        // Go: "1e-07" -> "1e-7".
        if let Some(idx) = s.find("e-0") {
            let (head, tail) = s.split_at(idx);
            if tail.len() == 4 {
                return format!("{head}e-{}", &tail[3..]);
            }
        }
        s
    } else {
        format!("{f}")
    }
}

/// Shortest digits and decimal exponent of `f` (`d.ddd × 10^exp`).
fn shortest(f: f64) -> (bool, String, i32) {
    let s = format!("{:e}", f.abs());
    let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let digits: String = mant.chars().filter(|c| *c != '.').collect();
    (
        f.is_sign_negative() && f != 0.0,
        digits,
        exp.parse().unwrap_or(0),
    )
}

/// Go's `strconv.FormatFloat(f, 'e', -1, 64)`: `1e+21`, `1.5e-07`.
fn format_e(f: f64) -> String {
    let (neg, digits, exp) = shortest(f);
    let mut s = String::new();
    if neg {
        s.push('-');
    }
    s.push_str(&digits[..1]);
    if digits.len() > 1 {
        s.push('.');
        s.push_str(&digits[1..]);
    }
    let sign = if exp < 0 { '-' } else { '+' };
    let _ = write!(s, "e{sign}{:02}", exp.abs());
    s
}

/// Go's `strconv.FormatFloat(f, 'g', -1, 64)`, which is also what `fmt.Sprint(float64)` prints.
pub fn format_g(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    if f == 0.0 {
        return if f.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    let (_, _, exp) = shortest(f);
    // With the shortest precision Go decides between %e and %f as if the precision were 6.
    if !(-4..6).contains(&exp) {
        return format_e(f);
    }
    format!("{f}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pretty_json_matches_go() {
        let v = json!({"b": [], "a": {"z": 1, "y": {}}, "s": "<a&b>\u{2028}\n\u{1}", "f": 0.5, "n": null});
        assert_eq!(
            to_string_pretty(&v, "    "),
            "{\n    \"a\": {\n        \"y\": {},\n        \"z\": 1\n    },\n    \"b\": [],\n    \"f\": 0.5,\n    \
             \"n\": null,\n    \"s\": \"\\u003ca\\u0026b\\u003e\\u2028\\n\\u0001\"\n}\n"
        );
    }

    #[test]
    fn ordered_json_keeps_the_key_order() {
        let mut v: Ordered =
            serde_json::from_str(r#"{"z": 1, "a": {"y": [true, null, "<"], "b": {}}, "m": []}"#)
                .unwrap();
        v.set("kind", Ordered::String("Event".into()), 0);
        let mut out = String::new();
        write_ordered(&mut out, &v, "    ", 0);
        assert_eq!(
            out,
            "{\n    \"kind\": \"Event\",\n    \"z\": 1,\n    \"a\": {\n        \"y\": [\n            true,\n            \
             null,\n            \"\\u003c\"\n        ],\n        \"b\": {}\n    },\n    \"m\": []\n}"
        );
        assert_eq!(v.to_value()["a"]["y"][2], "<");
    }

    #[test]
    fn floats_match_go() {
        assert_eq!(json_float(1e21), "1e+21");
        assert_eq!(json_float(1e-7), "1e-7");
        assert_eq!(json_float(1.5e-7), "1.5e-7");
        assert_eq!(json_float(0.000001), "0.000001");
        assert_eq!(json_float(123456789.5), "123456789.5");
        assert_eq!(format_g(0.5), "0.5");
        assert_eq!(format_g(1234567.0), "1.234567e+06");
        assert_eq!(format_g(123456.0), "123456");
        assert_eq!(format_g(0.0001), "0.0001");
        assert_eq!(format_g(0.00001), "1e-05");
        assert_eq!(format_g(-2.5), "-2.5");
    }
}
