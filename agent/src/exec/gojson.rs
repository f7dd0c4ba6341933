//! JSON and numbers printed the way kubectl (Go) prints them.
//!
//! kubectl's `-o json` is `json.MarshalIndent(obj, "", "    ")` of an unstructured object: keys
//! sorted, four-space indent, `{}`/`[]` for empty containers, Go's string escaping (including
//! `<`, `>`, `&`, U+2028 and U+2029, which Go escapes for HTML safety) and Go's float format.

use serde_json::{Number, Value};
use std::fmt::Write as _;

/// `json.MarshalIndent(v, "", indent)` followed by a newline.
pub(crate) fn to_string_pretty(v: &Value, indent: &str) -> String {
    let mut out = String::new();
    write_value(&mut out, v, indent, 0);
    out.push('\n');
    out
}

/// Writes an object whose keys keep the given order (Go structs marshal in field order).
pub(crate) fn write_ordered_object(
    out: &mut String,
    fields: &[(&str, &Value)],
    indent: &str,
    depth: usize,
) {
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
        write_value(out, v, indent, depth + 1);
    }
    newline(out, indent, depth);
    out.push('}');
}

fn newline(out: &mut String, indent: &str, depth: usize) {
    out.push('\n');
    for _ in 0..depth {
        out.push_str(indent);
    }
}

pub(crate) fn write_value(out: &mut String, v: &Value, indent: &str, depth: usize) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&json_number(n)),
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
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
                write_value(out, item, indent, depth + 1);
            }
            newline(out, indent, depth);
            out.push(']');
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let fields: Vec<(&str, &Value)> =
                keys.into_iter().map(|k| (k.as_str(), &map[k])).collect();
            write_ordered_object(out, &fields, indent, depth);
        }
    }
}

/// A JSON string literal with Go's escaping.
pub(crate) fn write_string(out: &mut String, s: &str) {
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
pub(crate) fn json_number(n: &Number) -> String {
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
pub(crate) fn json_float(f: f64) -> String {
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
pub(crate) fn format_g(f: f64) -> String {
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
