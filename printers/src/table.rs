//! kubectl's human-readable printer for server-side tables (cli-runtime `tableprinter.go`).
//!
//! The API server renders each resource as a `meta.k8s.io/v1` `Table`; kubectl decorates it
//! (NAMESPACE column for `-A`, `kind.group/` name prefixes, label columns) and prints the
//! columns of priority 0 (all columns with `-o wide`) through its tab writer. Objects that come
//! back as something other than a `Table` (some aggregated APIs) are printed with kubectl's
//! fallback NAME/AGE columns.

use crate::go::fmt::go_sprint;
use crate::go::tabwriter::TabWriter;
use chrono::{DateTime, Utc};
use serde_json::Value;

/// kubectl's `printers.PrintOptions`, as far as `get` sets them.
#[derive(Debug, Clone, Default)]
pub struct PrintOptions {
    pub no_headers: bool,
    pub wide: bool,
    pub with_namespace: bool,
    pub with_kind: bool,
    /// Lower-cased `GroupKind` (`pod`, `deployment.apps`); empty when unknown.
    pub kind: String,
    pub show_labels: bool,
    pub column_labels: Vec<String>,
}

/// One `HumanReadablePrinter`: kubectl makes a new one whenever the resource type changes.
pub struct HumanPrinter {
    options: PrintOptions,
    last_columns: Option<Value>,
    printed_headers: bool,
    /// Whether the fallback (non-Table) printer printed its header already.
    printed_fallback: bool,
    now: DateTime<Utc>,
}

impl HumanPrinter {
    pub fn new(options: PrintOptions, now: DateTime<Utc>) -> Self {
        Self {
            options,
            last_columns: None,
            printed_headers: false,
            printed_fallback: false,
            now,
        }
    }

    /// `HumanReadablePrinter.PrintObj`.
    pub fn print(&mut self, obj: &Value, w: &mut TabWriter) {
        self.print_event(obj, None, w);
    }

    /// `HumanReadablePrinter.PrintObj` of a `WatchEvent` (`get -w --output-watch-events`):
    /// the table's rows behind an `EVENT` column holding the event type (`ADDED   `, …).
    pub fn print_event(&mut self, obj: &Value, event: Option<&str>, w: &mut TabWriter) {
        if is_table(obj) {
            self.print_table(obj, event, w);
        } else {
            self.print_fallback(obj, w);
        }
    }

    fn print_table(&mut self, table: &Value, event: Option<&str>, w: &mut TabWriter) {
        let mut columns: Vec<Value> = array(table, "columnDefinitions").to_vec();
        let mut rows: Vec<Value> = array(table, "rows").to_vec();
        let mut local = self.options.clone();
        let columns_value = Value::Array(columns.clone());
        if self.printed_headers
            && (columns.is_empty() || self.last_columns.as_ref() == Some(&columns_value))
        {
            local.no_headers = true;
        }
        if columns.is_empty() {
            if let Some(Value::Array(last)) = &self.last_columns {
                columns = last.clone();
            }
        } else if self.last_columns.as_ref() != Some(&columns_value) {
            self.last_columns = Some(columns_value);
            self.printed_headers = false;
        }
        if !rows.is_empty() {
            self.printed_headers = true;
        }
        decorate(&mut columns, &mut rows, &local);
        if let Some(event) = event {
            columns.insert(0, column_def("Event"));
            let cell = Value::String(format_event_type(event).to_string());
            for row in &mut rows {
                if let Some(cells) = row.get_mut("cells").and_then(Value::as_array_mut) {
                    cells.insert(0, cell.clone());
                }
            }
        }
        print_rows(&columns, &rows, &local, w);
    }

    /// kubectl's default handler (`printObjectMeta`): NAME and AGE from object metadata.
    fn print_fallback(&mut self, obj: &Value, w: &mut TabWriter) {
        let items: Vec<&Value> = match obj.get("items").and_then(Value::as_array) {
            Some(items) => items.iter().collect(),
            None => vec![obj],
        };
        let o = &self.options;
        if !self.printed_fallback && !o.no_headers {
            let mut headers = Vec::new();
            if o.with_namespace {
                headers.push("NAMESPACE".to_string());
            }
            headers.push("NAME".to_string());
            headers.push("AGE".to_string());
            headers.extend(label_headers(&o.column_labels));
            if o.show_labels {
                headers.push("LABELS".to_string());
            }
            w.write(&headers.join("\t"));
            w.write("\n");
        }
        self.printed_fallback = true;
        for item in items {
            let meta = item.get("metadata").unwrap_or(&Value::Null);
            let mut line = String::new();
            if o.with_namespace {
                line.push_str(str_of(meta, "namespace"));
                line.push('\t');
            }
            let name = str_of(meta, "name");
            if o.with_kind && !o.kind.is_empty() {
                line.push_str(&format!("{}/{}", o.kind, name));
            } else {
                line.push_str(name);
            }
            line.push('\t');
            line.push_str(&age(
                meta.get("creationTimestamp").and_then(Value::as_str),
                self.now,
            ));
            for value in label_values(meta, o) {
                line.push('\t');
                line.push_str(&value);
            }
            line.push('\n');
            w.write(&line);
        }
    }
}

/// The printer's `formatEventType`: the four known types padded to one width.
fn format_event_type(event: &str) -> &str {
    match event {
        "ADDED" => "ADDED   ",
        "MODIFIED" => "MODIFIED",
        "DELETED" => "DELETED ",
        "ERROR" => "ERROR   ",
        other => other,
    }
}

/// Whether a response is a `meta.k8s.io` Table kubectl recognizes.
pub fn is_table(v: &Value) -> bool {
    v.get("kind").and_then(Value::as_str) == Some("Table")
        && matches!(
            v.get("apiVersion").and_then(Value::as_str),
            Some("meta.k8s.io/v1" | "meta.k8s.io/v1beta1")
        )
}

fn array<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or_default()
}

fn column_def(name: &str) -> Value {
    serde_json::json!({ "name": name, "type": "string" })
}

fn label_headers(keys: &[String]) -> Vec<String> {
    keys.iter()
        .map(|k| k.rsplit('/').next().unwrap_or(k).to_uppercase())
        .collect()
}

/// `labels.FormatLabels`: sorted `k=v` joined by commas, `<none>` when empty.
fn format_labels(labels: Option<&Value>) -> String {
    let Some(map) = labels.and_then(Value::as_object) else {
        return "<none>".into();
    };
    let mut pairs: Vec<(&String, &str)> = map
        .iter()
        .map(|(k, v)| (k, v.as_str().unwrap_or_default()))
        .collect();
    pairs.sort();
    if pairs.is_empty() {
        return "<none>".into();
    }
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn label_values(meta: &Value, o: &PrintOptions) -> Vec<String> {
    let labels = meta.get("labels");
    let mut values: Vec<String> = o
        .column_labels
        .iter()
        .map(|k| {
            labels
                .and_then(|l| l.get(k))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    if o.show_labels {
        values.push(format_labels(labels));
    }
    values
}

/// `decorateTable`: namespace and label columns, kind-prefixed names.
fn decorate(columns: &mut Vec<Value>, rows: &mut [Value], o: &PrintOptions) {
    let width = columns.len()
        + o.column_labels.len()
        + usize::from(o.with_namespace)
        + usize::from(o.show_labels);
    let name_column = if o.with_kind && !o.kind.is_empty() {
        columns.iter().position(|c| {
            c.get("format").and_then(Value::as_str) == Some("name")
                && c.get("type").and_then(Value::as_str) == Some("string")
        })
    } else {
        None
    };
    if width != columns.len() {
        let mut decorated = Vec::with_capacity(width);
        if o.with_namespace {
            decorated.push(column_def("Namespace"));
        }
        decorated.append(columns);
        for label in label_headers(&o.column_labels) {
            decorated.push(column_def(&label));
        }
        if o.show_labels {
            decorated.push(column_def("Labels"));
        }
        *columns = decorated;
    }
    let include_labels = !o.column_labels.is_empty() || o.show_labels;
    if !(include_labels || o.with_namespace || name_column.is_some()) {
        return;
    }
    for row in rows.iter_mut() {
        let meta = row
            .get("object")
            .and_then(|obj| obj.get("metadata"))
            .cloned();
        let Some(cells) = row.get_mut("cells").and_then(Value::as_array_mut) else {
            continue;
        };
        if let Some(i) = name_column
            && let Some(cell) = cells.get_mut(i)
        {
            let name = match &*cell {
                Value::String(s) => s.clone(),
                other => go_sprint(other),
            };
            *cell = Value::String(format!("{}/{}", o.kind, name));
        }
        match meta {
            None => {
                if o.with_namespace {
                    cells.insert(0, Value::Null);
                }
                // kubectl's loop re-reads the length it grows, so it pads about half the gap.
                let mut j = 0;
                while j + cells.len() < width {
                    cells.push(Value::Null);
                    j += 1;
                }
            }
            Some(meta) => {
                if o.with_namespace {
                    cells.insert(0, Value::String(str_of(&meta, "namespace").to_string()));
                }
                if include_labels {
                    cells.extend(label_values(&meta, o).into_iter().map(Value::String));
                }
            }
        }
    }
}

/// `printTable`.
fn print_rows(columns: &[Value], rows: &[Value], o: &PrintOptions, w: &mut TabWriter) {
    let shown = |c: &Value| o.wide || c.get("priority").and_then(Value::as_i64).unwrap_or(0) == 0;
    if !o.no_headers {
        if rows.is_empty() {
            return;
        }
        let headers: Vec<String> = columns
            .iter()
            .filter(|c| shown(c))
            .map(|c| str_of(c, "name").to_uppercase())
            .collect();
        w.write(&headers.join("\t"));
        w.write("\n");
    }
    for row in rows {
        let mut line = String::new();
        let mut first = true;
        for (i, cell) in array(row, "cells").iter().enumerate() {
            let Some(column) = columns.get(i) else { break };
            if !shown(column) {
                continue;
            }
            if !first {
                line.push('\t');
            }
            first = false;
            match cell {
                Value::Null => {}
                Value::String(s) => {
                    // Truncate at the first newline, carriage return or form feed.
                    match s.find(['\u{0c}', '\n', '\r']) {
                        Some(i) => {
                            line.push_str(&escape(&s[..i]));
                            line.push_str("...");
                        }
                        None => line.push_str(&escape(s)),
                    }
                }
                other => line.push_str(&escape(&go_sprint(other))),
            }
        }
        line.push('\n');
        w.write(&line);
    }
}

/// `printers.WriteEscaped`: ESC and CR cannot reach a terminal.
fn escape(s: &str) -> String {
    s.replace('\u{1b}', "^[").replace('\r', "\\r")
}

/// kubectl's AGE for the fallback printer: `<unknown>` without a timestamp.
fn age(timestamp: Option<&str>, now: DateTime<Utc>) -> String {
    let Some(ts) = timestamp.and_then(|t| DateTime::parse_from_rfc3339(t).ok()) else {
        return "<unknown>".into();
    };
    human_duration(now.signed_duration_since(ts.with_timezone(&Utc)))
}

/// apimachinery's `duration.HumanDuration`.
pub fn human_duration(d: chrono::TimeDelta) -> String {
    let seconds = d.num_seconds();
    if seconds < -1 {
        return "<invalid>".into();
    } else if seconds < 0 {
        return "0s".into();
    } else if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    } else if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    } else if hours < 48 {
        return format!("{hours}h");
    } else if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    } else if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    } else if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        return if dy == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{dy}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod_table() -> Value {
        json!({
            "kind": "Table", "apiVersion": "meta.k8s.io/v1",
            "columnDefinitions": [
                {"name": "Name", "type": "string", "format": "name", "priority": 0},
                {"name": "Ready", "type": "string", "format": "", "priority": 0},
                {"name": "Status", "type": "string", "format": "", "priority": 0},
                {"name": "Restarts", "type": "string", "format": "", "priority": 0},
                {"name": "Age", "type": "string", "format": "", "priority": 0},
                {"name": "IP", "type": "string", "format": "", "priority": 1},
                {"name": "Node", "type": "string", "format": "", "priority": 1},
            ],
            "rows": [
                {"cells": ["credit-api-7d9f", "1/1", "Running", 0, "5m", "10.0.0.1", "kwok-node-0"],
                 "object": {"kind": "PartialObjectMetadata", "metadata": {"name": "credit-api-7d9f", "namespace": "credit-service", "labels": {"app": "credit-api", "tier": "api"}}}},
                {"cells": ["credit-scorer", "0/1", "CrashLoopBackOff", "4 (30s ago)", "12m", null, "kwok-node-1"],
                 "object": {"kind": "PartialObjectMetadata", "metadata": {"name": "credit-scorer", "namespace": "credit-service"}}},
            ]
        })
    }

    fn render(options: PrintOptions, tables: &[Value]) -> String {
        let mut w = TabWriter::new();
        let mut p = HumanPrinter::new(options, Utc::now());
        for t in tables {
            p.print(t, &mut w);
        }
        w.flush();
        w.take_output()
    }

    #[test]
    fn default_table() {
        assert_eq!(
            render(PrintOptions::default(), &[pod_table()]),
            "NAME              READY   STATUS             RESTARTS      AGE\n\
             credit-api-7d9f   1/1     Running            0             5m\n\
             credit-scorer     0/1     CrashLoopBackOff   4 (30s ago)   12m\n"
        );
    }

    #[test]
    fn wide_namespace_and_labels() {
        let o = PrintOptions {
            wide: true,
            with_namespace: true,
            show_labels: true,
            ..Default::default()
        };
        assert_eq!(
            render(o, &[pod_table()]),
            "NAMESPACE        NAME              READY   STATUS             RESTARTS      AGE   IP         NODE          LABELS\n\
             credit-service   credit-api-7d9f   1/1     Running            0             5m    10.0.0.1   kwok-node-0   app=credit-api,tier=api\n\
             credit-service   credit-scorer     0/1     CrashLoopBackOff   4 (30s ago)   12m              kwok-node-1   <none>\n"
        );
    }

    #[test]
    fn kind_prefix_label_columns_and_no_headers() {
        let o = PrintOptions {
            with_kind: true,
            kind: "pod".into(),
            no_headers: true,
            column_labels: vec!["app".into(), "example.com/tier".into()],
            ..Default::default()
        };
        assert_eq!(
            render(o, &[pod_table()]),
            "pod/credit-api-7d9f   1/1   Running            0             5m    credit-api   \n\
             pod/credit-scorer     0/1   CrashLoopBackOff   4 (30s ago)   12m                \n"
        );
    }

    #[test]
    fn later_chunks_do_not_repeat_headers_and_empty_tables_print_nothing() {
        let empty = json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "columnDefinitions": pod_table()["columnDefinitions"].clone(), "rows": []});
        assert_eq!(
            render(PrintOptions::default(), std::slice::from_ref(&empty)),
            ""
        );
        let out = render(PrintOptions::default(), &[pod_table(), pod_table()]);
        assert_eq!(out.matches("NAME").count(), 1, "{out}");
        assert_eq!(out.lines().count(), 5);
    }

    #[test]
    fn cells_are_truncated_and_escaped() {
        let t = json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1",
            "columnDefinitions": [{"name": "Name", "type": "string", "format": "name"}, {"name": "Message", "type": "string"}],
            "rows": [{"cells": ["a", "line one\nline two"]}, {"cells": ["b", "\u{1b}[31mred"]}, {"cells": ["c", 1.5]}]});
        assert_eq!(
            render(PrintOptions::default(), &[t]),
            "NAME   MESSAGE\na      line one...\nb      ^[[31mred\nc      1.5\n"
        );
    }

    #[test]
    fn fallback_prints_name_and_age() {
        let list = json!({"kind": "NodeMetricsList", "items": [{"metadata": {"name": "n1", "creationTimestamp": null}}]});
        assert_eq!(
            render(PrintOptions::default(), &[list]),
            "NAME   AGE\nn1     <unknown>\n"
        );
    }

    #[test]
    fn human_durations() {
        let d = chrono::TimeDelta::seconds;
        assert_eq!(human_duration(d(5)), "5s");
        assert_eq!(human_duration(d(119)), "119s");
        assert_eq!(human_duration(d(182)), "3m2s");
        assert_eq!(human_duration(d(600)), "10m");
        assert_eq!(human_duration(d(3 * 3600 + 120)), "3h2m");
        assert_eq!(human_duration(d(30 * 3600)), "30h");
        assert_eq!(human_duration(d(50 * 3600)), "2d2h");
        assert_eq!(human_duration(d(400 * 86400)), "400d");
        assert_eq!(human_duration(d(3 * 365 * 86400)), "3y");
        assert_eq!(human_duration(d(-5)), "<invalid>");
    }
}
