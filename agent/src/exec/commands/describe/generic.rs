//! The generic describer (`genericDescriber`): any kind without its own describer, CRDs
//! included, printed from its unstructured content with "smart" labels.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::writer::{Writer, annotations_multiline, describe_events, labels_multiline};
use super::{EventTarget, Settings, events_for};
use crate::exec::Executor;
use crate::exec::api::ApiError;
use kubeline_printers::go::fmt::go_sprint;

/// Fields the generic describer leaves out (printed above, or noise).
const SKIP: &[&str] = &[
    ".metadata.managedFields",
    ".metadata.name",
    ".metadata.namespace",
    ".metadata.labels",
    ".metadata.annotations",
];

pub(super) async fn describe(
    ex: &Executor,
    obj: Value,
    settings: Settings,
    now: DateTime<Utc>,
) -> Result<String, ApiError> {
    let s = |p: &str| obj.pointer(p).and_then(Value::as_str).unwrap_or_default();
    let events = events_for(
        ex,
        settings,
        &EventTarget {
            namespace: s("/metadata/namespace"),
            name: s("/metadata/name"),
            kind: Some(s("/kind")),
            uid: Some(s("/metadata/uid")),
        },
    )
    .await;
    Ok(render(&obj, events.as_deref(), now))
}

pub(super) fn render(
    obj: &Value,
    events: Option<&[k8s_openapi::api::core::v1::Event]>,
    now: DateTime<Utc>,
) -> String {
    let s = |p: &str| obj.pointer(p).and_then(Value::as_str).unwrap_or_default();
    let map = |p: &str| -> Option<BTreeMap<String, String>> {
        obj.pointer(p).and_then(Value::as_object).map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
    };
    let mut w = Writer::new(now);
    w.write(0, &format!("Name:\t{}\n", s("/metadata/name")));
    w.write(0, &format!("Namespace:\t{}\n", s("/metadata/namespace")));
    labels_multiline(&mut w, "Labels", map("/metadata/labels").as_ref());
    annotations_multiline(&mut w, "Annotations", map("/metadata/annotations").as_ref());
    if let Some(content) = obj.as_object() {
        unstructured(&mut w, 0, content, "");
    }
    if let Some(events) = events {
        describe_events(&mut w, events);
    }
    w.finish()
}

/// `printUnstructuredContent`: fields sorted, maps and lists nested one level deeper.
fn unstructured(w: &mut Writer, level: usize, content: &Map<String, Value>, skip_prefix: &str) {
    let mut fields: Vec<&String> = content.keys().collect();
    fields.sort();
    for field in fields {
        let value = &content[field];
        let skip_expr = format!("{skip_prefix}.{field}");
        if SKIP.contains(&skip_expr.as_str()) {
            continue;
        }
        match value {
            Value::Object(m) => {
                w.write(level, &format!("{}:\n", smart_label(field)));
                unstructured(w, level + 1, m, &skip_expr);
            }
            Value::Array(items) => {
                w.write(level, &format!("{}:\n", smart_label(field)));
                for child in items {
                    match child {
                        Value::Object(m) => unstructured(w, level + 1, m, &skip_expr),
                        other => w.write(level + 1, &format!("{}\n", go_sprint(other))),
                    }
                }
            }
            other => w.write(
                level,
                &format!("{}:\t{}\n", smart_label(field), go_sprint(other)),
            ),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    Lower,
    Upper,
    Digit,
    Other,
}

fn class(c: char) -> Class {
    if c.is_lowercase() {
        Class::Lower
    } else if c.is_uppercase() {
        Class::Upper
    } else if c.is_numeric() {
        Class::Digit
    } else {
        Class::Other
    }
}

/// `github.com/fatih/camelcase.Split`.
fn camel_split(src: &str) -> Vec<String> {
    let mut runs: Vec<Vec<char>> = Vec::new();
    let mut last: Option<Class> = None;
    for c in src.chars() {
        let k = class(c);
        match runs.last_mut() {
            Some(run) if last == Some(k) => run.push(c),
            _ => runs.push(vec![c]),
        }
        last = Some(k);
    }
    // "PDFL" "oader" → "PDF" "Loader".
    for i in 0..runs.len().saturating_sub(1) {
        if runs[i].first().is_some_and(|c| c.is_uppercase())
            && runs[i + 1].first().is_some_and(|c| c.is_lowercase())
            && let Some(c) = runs[i].pop()
        {
            runs[i + 1].insert(0, c);
        }
    }
    runs.into_iter()
        .filter(|r| !r.is_empty())
        .map(|r| r.into_iter().collect())
        .collect()
}

/// `smartLabelFor`: `apiVersion` → `API Version`, `creationTimestamp` → `Creation Timestamp`.
pub(super) fn smart_label(field: &str) -> String {
    if field.chars().any(|c| !c.is_alphabetic() && c != '-') {
        return field.to_string();
    }
    const ACRONYMS: &[&str] = &["API", "URL", "UID", "GUID"];
    let parts = camel_split(field);
    let mut merged: Vec<String> = Vec::new();
    let mut i = 0;
    while i < parts.len() {
        let part = &parts[i];
        if i + 1 < parts.len() {
            let next = &parts[i + 1];
            let all_upper = part.chars().all(|c| !c.is_alphabetic() || c.is_uppercase());
            if part.len() >= 2
                && all_upper
                && next
                    .as_bytes()
                    .first()
                    .is_some_and(|b| b.is_ascii_uppercase())
            {
                merged.push(format!("{part}{next}"));
                i += 2;
                continue;
            }
        }
        merged.push(part.clone());
        i += 1;
    }
    let mut result = Vec::new();
    for part in merged {
        if part == "_" {
            continue;
        }
        let upper = part.to_uppercase();
        if ACRONYMS.contains(&upper.as_str()) {
            result.push(upper);
        } else if part.to_lowercase() == part {
            let mut cs = part.chars();
            let titled = match cs.next() {
                Some(f) => f.to_uppercase().collect::<String>() + cs.as_str(),
                None => String::new(),
            };
            result.push(titled);
        } else {
            result.push(part);
        }
    }
    result.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn smart_labels() {
        for (field, want) in [
            ("apiVersion", "API Version"),
            ("kind", "Kind"),
            ("creationTimestamp", "Creation Timestamp"),
            ("uid", "UID"),
            ("resourceVersion", "Resource Version"),
            ("clusterIP", "Cluster IP"),
            ("podCIDRs", "Pod CIDRs"),
            ("URLPath", "URLPath"),
            ("x-y", "X - Y"),
            ("with_underscore", "with_underscore"),
            ("v1", "v1"),
        ] {
            assert_eq!(smart_label(field), want, "{field}");
        }
    }

    #[test]
    fn a_custom_resource() {
        let now = DateTime::parse_from_rfc3339("2026-11-23T01:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let obj = json!({
            "apiVersion": "testbed.kubeline.dev/v1", "kind": "Widget",
            "metadata": {"name": "widget-alpha", "namespace": "credit-service",
                "creationTimestamp": "2026-11-23T00:29:13Z", "generation": 1,
                "resourceVersion": "368", "uid": "4288c2fc",
                "managedFields": [{"manager": "kubectl"}]},
            "spec": {"color": "blue", "size": 3, "owner": "credit", "tags": ["a", "b"],
                     "ports": [{"port": 80}]}
        });
        assert_eq!(
            render(&obj, Some(&[]), now),
            "Name:         widget-alpha\nNamespace:    credit-service\nLabels:       <none>\n\
             Annotations:  <none>\nAPI Version:  testbed.kubeline.dev/v1\nKind:         Widget\n\
             Metadata:\n  Creation Timestamp:  2026-11-23T00:29:13Z\n  Generation:          1\n  \
             Resource Version:    368\n  UID:                 4288c2fc\nSpec:\n  Color:  blue\n  \
             Owner:  credit\n  Ports:\n    Port:  80\n  Size:    3\n  Tags:\n    a\n    b\n\
             Events:  <none>\n"
        );
    }
}
