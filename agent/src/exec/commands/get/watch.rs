//! `get -w` / `--watch-only` / `--output-watch-events`, as kubectl's `GetOptions.watch` runs it
//! (kubectl `pkg/cmd/get/get.go`):
//!
//! 1. One resource type only (cli-runtime's `SingleResourceType`): several are kubectl's
//!    `you may only specify a single resource type`.
//! 2. The objects are fetched as `get` fetches them (tables for the default and `-o wide`
//!    output) and printed unless `--watch-only`; a list's resourceVersion is where the watch
//!    starts. A named object is watched from resourceVersion 0 (a field selector on its name),
//!    whose first, synthetic `ADDED` event is not printed.
//! 3. Every change is printed as it arrives through the same printer, the tab writer flushed
//!    per event: table rows (headers only when the server's columns change), or each object as
//!    `-o json|yaml|name` print it; `--output-watch-events` prints `{"type":…,"object":…}`
//!    events (an `EVENT` column in tables). Secrets are redacted as in `get`.
//! 4. A watch the server ends is started again from the last resourceVersion
//!    ([`crate::exec::api::watch`]); kubectl's ends there. A `410 Expired` ends the command with the
//!    server's error.

use super::{Fetched, fetch, list_query, name_line, redact_secret};
use crate::exec::api::builder::Visit;
use crate::exec::api::discovery;
use crate::exec::api::watch::Watch as ApiWatch;
use crate::exec::api::{self, ApiError};
use crate::exec::sink::{Closed, Sink};
use crate::exec::{Executor, Outcome};
use futures::future::join_all;
use kubeline_printers::go::json as gojson;
use kubeline_printers::go::tabwriter::TabWriter;
use kubeline_printers::go::yaml as goyaml;
use kubeline_printers::table::{HumanPrinter, PrintOptions};
use kubeline_shared::command::{Get, GetOutput, Watch};
use serde_json::{Value, json};

pub(in crate::exec) async fn watch(ex: &Executor, g: &Get, sink: &mut Sink) -> Outcome {
    let warnings = ex
        .shortcut_warnings(&discovery::target_types(&g.targets))
        .await;
    let mut stderr = String::new();
    let exit_code = match run(ex, g, sink, &mut stderr).await {
        Ok(()) | Err(Stop::Closed) => 0,
        Err(Stop::Failed(line)) => {
            stderr.push_str(&line);
            stderr.push('\n');
            1
        }
    };
    discovery::warnings_first(
        &warnings,
        Outcome {
            output: String::new(),
            error: (!stderr.is_empty()).then_some(stderr),
            exit_code,
        },
    )
}

/// Why a watch ended before its reader stopped it.
enum Stop {
    /// The sink's reader went away.
    Closed,
    /// kubectl's error line.
    Failed(String),
}

impl From<Closed> for Stop {
    fn from(_: Closed) -> Self {
        Stop::Closed
    }
}

impl From<ApiError> for Stop {
    fn from(e: ApiError) -> Self {
        Stop::Failed(e.kubectl_message())
    }
}

async fn run(ex: &Executor, g: &Get, sink: &mut Sink, stderr: &mut String) -> Result<(), Stop> {
    let visits = match super::resolve(ex, g).await {
        Ok(v) => v,
        Err(failed) => {
            return Err(Stop::Failed(
                failed.error.unwrap_or_default().trim_end().to_string(),
            ));
        }
    };
    let Some(first) = visits.first() else {
        return Ok(());
    };
    if visits
        .iter()
        .any(|v| !v.mapping.same_resource(&first.mapping))
    {
        return Err(Stop::Failed(
            "error: you may only specify a single resource type".to_string(),
        ));
    }
    let human = g.output.is_human();
    let results = join_all(visits.iter().map(|v| fetch(ex, g, v, human))).await;
    let mut fetched: Vec<Fetched> = Vec::new();
    for (result, warnings) in results {
        for w in warnings {
            stderr.push_str(&format!("Warning: {w}\n"));
        }
        match result {
            Ok(f) => fetched.push(f),
            // kubectl's `Infos()` fails as a whole; `--ignore-not-found` makes that quiet.
            Err(e) if g.ignore_not_found && e.is_not_found() => return Ok(()),
            Err(e) => return Err(e.into()),
        }
    }
    let mut printer = Printer::new(g, first).map_err(Stop::Failed)?;
    let mut output_objects = g.watch != Watch::WatchOnly;
    let initial = if g.output_watch_events {
        Some("ADDED")
    } else {
        None
    };
    // Where a list's watch starts; the objects themselves are not kept once printed.
    let list_version = fetched
        .first()
        .map(|f| f.resource_version.clone())
        .unwrap_or_default();
    let mut text = String::new();
    for mut object in fetched.into_iter().flat_map(|f| f.objects) {
        if output_objects {
            text.push_str(&printer.print(&mut object, initial));
        }
    }
    text.push_str(&printer.flush());
    sink.write(&text).await?;
    drop(text);

    // A named object is watched from resourceVersion 0, which starts with a synthetic ADDED
    // event for it: not printed, as it was just printed (or, with --watch-only, skipped).
    let named = visits.len() == 1 && first.name.is_some();
    output_objects = !named;
    if visits.len() > 1 {
        return Err(Stop::Failed(
            "error: you may only watch a single resource or type of resource at a time".to_string(),
        ));
    }
    let (path, resource_version) = match &first.name {
        Some(name) => {
            let query = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("fieldSelector", &format!("metadata.name={name}"))
                .finish();
            (
                format!("{}?{query}", first.collection_path()),
                "0".to_string(),
            )
        }
        None => {
            let query = list_query(g, 0, None);
            let path = if query.is_empty() {
                first.collection_path()
            } else {
                format!("{}?{query}", first.collection_path())
            };
            let rv = list_version;
            (path, rv)
        }
    };
    let accept = if human {
        api::ACCEPT_TABLE
    } else {
        api::ACCEPT_JSON
    };
    let mut changes = ApiWatch::new(&ex.client, path, accept, first.what(), resource_version);
    loop {
        let mut event = changes.next().await?;
        if !output_objects {
            output_objects = true;
            continue;
        }
        let kind = g.output_watch_events.then_some(event.kind.as_str());
        let mut text = printer.print(&mut event.object, kind);
        text.push_str(&printer.flush());
        sink.write(&text).await?;
    }
}

/// kubectl's printer for a watch, kept across events: the table printer and its tab writer
/// (remembered widths, headers when the columns change), or the YAML printer's count.
enum Printer {
    Table {
        printer: Box<HumanPrinter>,
        writer: TabWriter,
    },
    Json {
        managed_fields: bool,
    },
    Yaml {
        managed_fields: bool,
        printed: usize,
    },
    Name,
}

impl Printer {
    fn new(g: &Get, first: &Visit) -> Result<Self, String> {
        Ok(match &g.output {
            GetOutput::Table | GetOutput::Wide => Printer::Table {
                printer: Box::new(HumanPrinter::new(
                    PrintOptions {
                        no_headers: g.no_headers,
                        wide: g.output == GetOutput::Wide,
                        with_namespace: g.all_namespaces && first.mapping.namespaced,
                        with_kind: g.show_kind,
                        kind: first.mapping.kind_prefix(),
                        show_labels: g.show_labels,
                        column_labels: g.label_columns.clone(),
                    },
                    chrono::Utc::now(),
                )),
                writer: TabWriter::new(),
            },
            GetOutput::Json => Printer::Json {
                managed_fields: g.show_managed_fields,
            },
            GetOutput::Yaml => Printer::Yaml {
                managed_fields: g.show_managed_fields,
                printed: 0,
            },
            GetOutput::Name => Printer::Name,
            // The parser refuses the other formats for a watch.
            other => return Err(format!("error: a watch cannot print {other:?} output")),
        })
    }

    /// One object (a table, for the table printer), as an event of type `event` when given.
    fn print(&mut self, object: &mut Value, event: Option<&str>) -> String {
        if let Printer::Table { printer, writer } = self {
            printer.print_event(object, event, writer);
            return String::new();
        }
        redact_secret(object);
        // kubectl's `OmitManagedFieldsPrinter` reaches objects, not the `WatchEvent`s that
        // wrap them: events keep their managed fields.
        let keep = match self {
            Printer::Json { managed_fields } | Printer::Yaml { managed_fields, .. } => {
                *managed_fields || event.is_some()
            }
            _ => true,
        };
        if !keep && let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("managedFields");
        }
        let wrapped = |object: &Value| match event {
            Some(kind) => json!({"type": kind, "object": object}),
            None => object.clone(),
        };
        match self {
            Printer::Json { .. } => match event {
                // `json.Marshal` of a `WatchEvent`: compact, `type` first.
                Some(kind) => {
                    let mut out = String::from("{\"type\":");
                    gojson::write_string(&mut out, kind);
                    out.push_str(",\"object\":");
                    out.push_str(&gojson::to_string_compact(object));
                    out.push_str("}\n");
                    out
                }
                None => gojson::to_string_pretty(object, "    "),
            },
            Printer::Yaml { printed, .. } => {
                *printed += 1;
                let separator = if *printed > 1 { "---\n" } else { "" };
                format!("{separator}{}", goyaml::to_string(&wrapped(object)))
            }
            Printer::Name => name_line(object),
            Printer::Table { .. } => String::new(),
        }
    }

    /// What the tab writer holds, aligned (empty for the other printers, which print at once).
    fn flush(&mut self) -> String {
        match self {
            Printer::Table { writer, .. } => {
                writer.flush();
                writer.take_output()
            }
            _ => String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(output: GetOutput) -> Get {
        match kubeline_shared::command::parse_stream("get", &["pods".into(), "-w".into()]) {
            Ok(kubeline_shared::command::Command::Get(g)) => Get { output, ..g },
            other => panic!("{other:?}"),
        }
    }

    fn visit() -> Visit {
        Visit {
            mapping: discovery::ApiResource {
                version: "v1".into(),
                resource: "secrets".into(),
                kind: "Secret".into(),
                namespaced: true,
                ..Default::default()
            },
            namespace: Some("default".into()),
            name: None,
        }
    }

    fn secret() -> Value {
        json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "s", "managedFields": [{"manager": "x"}]},
            "data": {"password": "c2VjcmV0"}})
    }

    #[test]
    fn objects_print_redacted_per_format() {
        let mut p = Printer::new(&get(GetOutput::Json), &visit()).unwrap();
        let text = p.print(&mut secret(), Some("ADDED"));
        assert_eq!(
            text,
            "{\"type\":\"ADDED\",\"object\":{\"apiVersion\":\"v1\",\"data\":{\"password\":\
             \"REDACTED\"},\"kind\":\"Secret\",\"metadata\":{\"managedFields\":[{\"manager\":\
             \"x\"}],\"name\":\"s\"}}}\n"
        );
        let text = p.print(&mut secret(), None);
        assert!(
            text.starts_with("{\n    \"apiVersion\": \"v1\",\n"),
            "{text}"
        );
        assert!(!text.contains("c2VjcmV0") && !text.contains("managedFields"));

        let mut p = Printer::new(&get(GetOutput::Yaml), &visit()).unwrap();
        let first = p.print(&mut secret(), Some("MODIFIED"));
        assert!(first.starts_with("object:\n"), "{first}");
        assert!(first.ends_with("type: MODIFIED\n"), "{first}");
        assert!(
            p.print(&mut secret(), None)
                .starts_with("---\napiVersion: v1\n")
        );

        let mut p = Printer::new(&get(GetOutput::Name), &visit()).unwrap();
        assert_eq!(p.print(&mut secret(), Some("DELETED")), "secret/s\n");
    }

    #[test]
    fn tables_print_headers_once_and_events_in_a_column() {
        let table = |rows: &[&str], columns: bool| {
            json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1",
                "columnDefinitions": if columns {
                    json!([{"name": "Name", "type": "string", "format": "name", "priority": 0},
                           {"name": "Ready", "type": "string", "priority": 0}])
                } else { json!([]) },
                "rows": rows.iter().map(|n| json!({"cells": [n, "1/1"]})).collect::<Vec<_>>()})
        };
        let mut p = Printer::new(&get(GetOutput::Table), &visit()).unwrap();
        let mut out = p.print(&mut table(&["a", "bb"], true), None);
        out.push_str(&p.flush());
        assert_eq!(out, "NAME   READY\na      1/1\nbb     1/1\n");
        // A watch event carries no column definitions: no headers again, same widths.
        let mut out = p.print(&mut table(&["c"], false), None);
        out.push_str(&p.flush());
        assert_eq!(out, "c      1/1\n");

        let mut p = Printer::new(&get(GetOutput::Table), &visit()).unwrap();
        let mut out = p.print(&mut table(&["a"], true), Some("ADDED"));
        out.push_str(&p.flush());
        // The event cell is padded to eight ("ADDED   "), as kubectl pads it.
        assert_eq!(out, "EVENT      NAME   READY\nADDED      a      1/1\n");
        let mut out = p.print(&mut table(&["a"], false), Some("MODIFIED"));
        out.push_str(&p.flush());
        assert_eq!(out, "MODIFIED   a      1/1\n");
    }
}
