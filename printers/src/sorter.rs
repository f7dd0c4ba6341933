//! kubectl's `--sort-by` (`pkg/cmd/get/sorter.go`): `SortObjects` and `TableSorter` order
//! objects by the first JSONPath result of each with `isLess`, through Go's `sort.Sort`
//! ([`crate::go::sort`]: it is not stable, and ties must end where kubectl leaves them).

use crate::go::sort as gosort;
use crate::jsonpath::{self, JsonPath, V};
use serde_json::Value;
use std::cell::RefCell;
use std::cmp::Ordering;

/// `SortObjects`: sorts `objects` by `field` (a relaxed JSONPath), failing as kubectl fails
/// when no object has the field or a value cannot be compared. An empty list stays as it is.
pub fn sort_objects(objects: &mut Vec<Value>, field: &str) -> Result<(), String> {
    sort_objects_by(objects, field, |o| o)
}

/// [`sort_objects`] over items that carry an object.
pub fn sort_objects_by<T>(
    items: &mut Vec<T>,
    field: &str,
    object: impl Fn(&T) -> &Value,
) -> Result<(), String> {
    if items.is_empty() {
        return Ok(());
    }
    let field = jsonpath::relaxed(field)?;
    let parser = JsonPath::parse(&field)?.allow_missing_keys(true);
    sort_by_path(items, &parser, &field, object, RUNTIME_SORT)
}

/// `TableSorter`: sorts a server Table's rows by `field`, read from each row's `object`.
pub fn sort_table_rows(rows: &mut Vec<Value>, field: &str) -> Result<(), String> {
    let field = jsonpath::relaxed(field).unwrap_or_else(|_| field.to_string());
    let parser = JsonPath::parse(&field)
        .map_err(|e| format!("sorting error: {e}"))?
        .allow_missing_keys(true);
    static NULL: Value = Value::Null;
    sort_by_path(
        rows,
        &parser,
        &field,
        |row| row.get("object").unwrap_or(&NULL),
        TABLE_SORTER,
    )
}

/// Where kubectl's sorter gives up on a comparison: the `%T` its message names and the source
/// line its `klog.Exitf` reports.
#[derive(Clone, Copy)]
struct Sorter {
    go_type: &'static str,
    line: u32,
}

/// `RuntimeSort.Less` (objects: `-o name|json|yaml|jsonpath|custom-columns`).
const RUNTIME_SORT: Sorter = Sorter {
    go_type: "*unstructured.Unstructured",
    line: 329,
};

/// `TableSorter.Less` (the rows of a server table).
const TABLE_SORTER: Sorter = Sorter {
    go_type: "[][][]reflect.Value",
    line: 375,
};

/// kubectl ends the process with `klog.Exitf` when two values cannot be compared (a boolean
/// field, a map, mixed types): one klog FATAL line on stderr and exit code 1, nothing more.
/// Sorting errors that are such a line (see [`is_fatal`]) are to be printed as they are,
/// without `error: `, replacing anything not yet printed.
fn unsortable(sorter: Sorter, field: &str, e: &str) -> String {
    let now = chrono::Utc::now();
    format!(
        "F{} {:>7} sorter.go:{}] Field {field} in {} is an unsortable type: interface, err: {e}",
        now.format("%m%d %H:%M:%S%.6f"),
        std::process::id(),
        sorter.line,
        sorter.go_type
    )
}

/// Whether a sorting error is kubectl's fatal klog line (see `unsortable`): such an error
/// ends the command with exactly that line on stderr and exit code 1.
pub fn is_fatal(message: &str) -> bool {
    let b = message.as_bytes();
    b.len() > 22
        && b[0] == b'F'
        && b[1..5].iter().all(u8::is_ascii_digit)
        && b[5] == b' '
        && message.contains(" sorter.go:")
}

fn sort_by_path<T>(
    items: &mut Vec<T>,
    parser: &JsonPath,
    field: &str,
    object: impl Fn(&T) -> &Value,
    sorter: Sorter,
) -> Result<(), String> {
    // The first result of each item, with the item's position.
    let mut keyed: Vec<(usize, Option<Value>)> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let results = parser.find_results(object(item))?;
        let first = results.first().and_then(|r| r.first()).map(V::to_json);
        keyed.push((i, first));
    }
    if !items.is_empty() && keyed.iter().all(|(_, k)| k.is_none()) {
        return Err(format!(
            "couldn't find any field with path {field:?} in the list of objects"
        ));
    }
    let error: RefCell<Option<String>> = RefCell::new(None);
    gosort::sort(&mut keyed, |(_, a), (_, b)| match (a, b) {
        (None, _) => true,
        (_, None) => false,
        (Some(a), Some(b)) => match is_less(&V::Json(a), &V::Json(b)) {
            Ok(less) => less,
            Err(e) => {
                error.borrow_mut().get_or_insert(e);
                false
            }
        },
    });
    if let Some(e) = error.into_inner() {
        return Err(unsortable(sorter, field, &e));
    }
    let mut taken: Vec<Option<T>> = items.drain(..).map(Some).collect();
    for (i, _) in keyed {
        if let Some(v) = taken[i].take() {
            items.push(v);
        }
    }
    Ok(())
}

/// kubectl's `isLess` on two JSONPath results (both from unstructured objects). Strings that
/// both parse as quantities compare as quantities. `Err` names an unsortable type.
pub fn is_less(i: &V<'_>, j: &V<'_>) -> Result<bool, String> {
    let (V::Json(a), V::Json(b)) = (i, j) else {
        return Ok(i.go_sprint() < j.go_sprint());
    };
    match (a, b) {
        (Value::Null, Value::Null) => Ok(false),
        (Value::Null, _) => Ok(true),
        (_, Value::Null) => Ok(false),
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => Ok(x < y),
            (None, None) => Ok(x.as_f64() < y.as_f64()),
            _ => Err("unsortable interface: interface".into()),
        },
        (Value::String(x), Value::String(y)) => match (quantity(x), quantity(y)) {
            (Some(qx), Some(qy)) => Ok(qx.partial_cmp(&qy) == Some(Ordering::Less)),
            _ => Ok(x < y),
        },
        (Value::String(_), _) | (Value::Number(_), _) => {
            Err("unsortable interface: interface".into())
        }
        (Value::Bool(_), _) => Err("unsortable type: bool".into()),
        (Value::Array(_), _) => Err("unsortable type: []interface {}".into()),
        (Value::Object(_), _) => Err("unsortable type: map[string]interface {}".into()),
    }
}

/// The value of a Kubernetes quantity (`100m`, `2Gi`, `1e3`), if `s` is one.
pub fn quantity(s: &str) -> Option<f64> {
    let b = s.as_bytes();
    let mut i = 0;
    if matches!(b.first(), Some(b'+' | b'-')) {
        i = 1;
    }
    let digits_start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let mut any = i > digits_start;
    if i < b.len() && b[i] == b'.' {
        i += 1;
        let frac = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        any = any || i > frac;
    }
    if !any {
        return None;
    }
    let number: f64 = s[..i].parse().ok()?;
    let suffix = &s[i..];
    let multiplier = match suffix {
        "" => 1.0,
        "Ki" => 1024f64,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        e if e.starts_with(['e', 'E']) => {
            let exp = &e[1..];
            let digits = exp.strip_prefix(['+', '-']).unwrap_or(exp);
            if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            10f64.powi(exp.parse::<i32>().ok()?)
        }
        _ => return None,
    };
    Some(number * multiplier)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn objects_sort_by_path() {
        let mut objects = vec![
            json!({"metadata": {"name": "b"}, "spec": {"replicas": 1}}),
            json!({"metadata": {"name": "a"}}),
            json!({"metadata": {"name": "c"}, "spec": {"replicas": 0}}),
        ];
        sort_objects(&mut objects, ".spec.replicas").unwrap();
        let names: Vec<&str> = objects
            .iter()
            .map(|o| o["metadata"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["a", "c", "b"]);
        assert_eq!(
            sort_objects(&mut objects, "{.nope}").unwrap_err(),
            "couldn't find any field with path \"{.nope}\" in the list of objects"
        );
        let mut rows = vec![
            json!({"cells": ["b"], "object": {"metadata": {"name": "b"}}}),
            json!({"cells": ["a"], "object": {"metadata": {"name": "a"}}}),
        ];
        sort_table_rows(&mut rows, "metadata.name").unwrap();
        assert_eq!(rows[0]["cells"][0], "a");
    }

    #[test]
    fn values_compare_like_kubectl() {
        let (a, b) = (json!("100m"), json!("1"));
        assert!(is_less(&V::Json(&a), &V::Json(&b)).unwrap());
        let (a, b) = (json!("b"), json!("a10"));
        assert!(!is_less(&V::Json(&a), &V::Json(&b)).unwrap());
        let (a, b) = (json!(2), json!(10));
        assert!(is_less(&V::Json(&a), &V::Json(&b)).unwrap());
        let (a, b) = (json!("9"), json!("10"));
        assert!(is_less(&V::Json(&a), &V::Json(&b)).unwrap());
        assert_eq!(quantity("2Gi"), Some(2.0 * 1024f64.powi(3)));
        assert_eq!(quantity("credit-api"), None);
        assert_eq!(quantity("2026-01-01T00:00:00Z"), None);
        let m = json!({});
        assert!(is_less(&V::Json(&m), &V::Json(&m)).is_err());
    }

    #[test]
    fn booleans_end_the_command_as_kubectl_does() {
        let mut objects = vec![
            json!({"spec": {"on": true}}),
            json!({"spec": {"on": false}}),
        ];
        let e = sort_objects(&mut objects, ".spec.on").unwrap_err();
        assert!(is_fatal(&e), "{e}");
        assert!(
            e.ends_with(
                " sorter.go:329] Field {.spec.on} in *unstructured.Unstructured is an unsortable \
                 type: interface, err: unsortable type: bool"
            ),
            "{e}"
        );
        // `F1201 04:48:40.024837   16106 sorter.go:…`: klog's header.
        assert_eq!(e.find(" sorter.go:"), Some(29), "{e}");
        let mut rows = vec![
            json!({"object": {"spec": {"on": true}}}),
            json!({"object": {"spec": {"on": false}}}),
        ];
        let e = sort_table_rows(&mut rows, ".spec.on").unwrap_err();
        assert!(
            e.ends_with(
                " sorter.go:375] Field {.spec.on} in [][][]reflect.Value is an unsortable type: \
                 interface, err: unsortable type: bool"
            ),
            "{e}"
        );
        assert!(!is_fatal("couldn't find any field with path \"{.nope}\""));
    }
}
