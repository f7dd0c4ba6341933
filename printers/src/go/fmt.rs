//! Go's `fmt` verbs as kubectl applies them to unstructured values (what `encoding/json` decodes
//! into `interface{}` through apimachinery: objects, arrays, strings, booleans, `nil`, and
//! numbers as `int64` when they fit and `float64` otherwise), and `strconv.Quote`.

use super::json as gojson;
use serde_json::Value;
use std::fmt::Write as _;

/// Go's `fmt.Sprint` (`%v`) of an unstructured value: `map[a:1 b:[x y]]`, `<nil>`.
///
/// A number that does not fit an `int64` is a `float64` in Go (apimachinery's JSON decoding
/// tries `Int64()` and falls back to `Float64()`), so it prints in `%g` form even when it is
/// a whole number: `18446744073709551615` prints as `1.8446744073709552e+19`.
pub fn go_sprint(v: &Value) -> String {
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

/// Go's `%#v` of an unstructured value, as kubectl prints an object in a jsonpath error:
/// `map[string]interface {}{"a":[]interface {}{1, "x"}}`.
pub fn go_sharp_v(v: &Value) -> String {
    match v {
        Value::Null => "interface {}(nil)".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => match n.as_i64() {
            Some(i) => i.to_string(),
            None => gojson::format_g(n.as_f64().unwrap_or_default()),
        },
        Value::String(s) => go_quote(s),
        Value::Array(items) => format!(
            "[]interface {{}}{{{}}}",
            items.iter().map(go_sharp_v).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            format!(
                "map[string]interface {{}}{{{}}}",
                keys.iter()
                    .map(|k| format!("{}:{}", go_quote(k), go_sharp_v(&map[k.as_str()])))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    }
}

/// Go's `strconv.Quote` (and so `%q` of a string): `"` and `\` escaped, the C escapes for the
/// controls that have one, `\xNN` for the other ASCII controls, and `\uNNNN` / `\UNNNNNNNN` for
/// the non-ASCII characters Go does not count as printable that kubeline recognises (controls,
/// spaces other than U+0020, line and paragraph separators, common format characters).
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{07}' => out.push_str("\\a"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{0b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if !c.is_ascii() && !is_print(c) => {
                if (c as u32) > 0xffff {
                    let _ = write!(out, "\\U{:08x}", c as u32);
                } else {
                    let _ = write!(out, "\\u{:04x}", c as u32);
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `strconv.IsPrint` for non-ASCII characters, as far as the standard library lets us tell:
/// controls (Cc), spaces and separators (Zs, Zl, Zp) and the usual format characters (Cf) are
/// not printable; anything else is taken to be.
fn is_print(c: char) -> bool {
    !(c.is_control()
        || c.is_whitespace()
        || matches!(
            c,
            '\u{ad}'
                | '\u{600}'..='\u{605}'
                | '\u{61c}'
                | '\u{6dd}'
                | '\u{70f}'
                | '\u{180e}'
                | '\u{200b}'..='\u{200f}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{206f}'
                | '\u{feff}'
                | '\u{fff9}'..='\u{fffb}'
        ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sprint_is_go_like() {
        assert_eq!(
            go_sprint(&json!({"b": [1, "x"], "a": null, "c": 0.5})),
            "map[a:<nil> b:[1 x] c:0.5]"
        );
        // Past int64 Go holds a float64.
        assert_eq!(go_sprint(&json!(u64::MAX)), "1.8446744073709552e+19");
    }

    #[test]
    fn sharp_v_is_go_like() {
        assert_eq!(
            go_sharp_v(&json!({"a": [1, "x", null]})),
            "map[string]interface {}{\"a\":[]interface {}{1, \"x\", interface {}(nil)}}"
        );
    }

    #[test]
    fn quote_is_strconv_quote() {
        assert_eq!(go_quote("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(
            go_quote("\u{7}\u{8}\u{c}\n\r\t\u{b}"),
            r#""\a\b\f\n\r\t\v""#
        );
        assert_eq!(go_quote("\u{1}\u{7f}"), r#""\x01\x7f""#);
        assert_eq!(
            go_quote("é\u{85}\u{a0}\u{2028}\u{feff}"),
            r#""é\u0085\u00a0\u2028\ufeff""#
        );
        assert_eq!(go_quote("日本🙂"), "\"日本🙂\"");
    }
}
