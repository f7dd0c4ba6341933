//! `events -w`, as kubectl's `EventsOptions.runWatch` runs it: no list first, but a watch of
//! the events (one namespace's, or all with `-A`; `--for` as a field selector) from now, whose
//! first, synthetic `ADDED` events are the events that exist. Each added or changed event of
//! the `--types` asked for is printed as it arrives, the tab writer flushed per event (headers
//! before the first row); deleted events are not shown. `-o json|yaml|name` print each event
//! as kubectl's printers print a typed `Event`.

use super::{collection, for_selector, omit_managed_fields, str_at, write_headers, write_row};
use crate::exec::api;
use crate::exec::api::watch::Watch;
use crate::exec::sink::Sink;
use crate::exec::{Executor, Outcome};
use kubeline_printers::go::json::{self as gojson, Ordered};
use kubeline_printers::go::tabwriter::TabWriter;
use kubeline_printers::go::yaml as goyaml;
use kubeline_shared::command::{Events, GetOutput};
use serde_json::Value;

pub(in crate::exec) async fn watch(ex: &Executor, cmd: &Events, sink: &mut Sink) -> Outcome {
    let field_selector = match for_selector(ex, cmd).await {
        Ok(s) => s,
        Err(failed) => return failed,
    };
    let mut path = collection(ex, cmd);
    if let Some(f) = &field_selector {
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("fieldSelector", f)
            .finish();
        path = format!("{path}?{query}");
    }
    let mut changes = Watch::new(
        &ex.client,
        path,
        api::ACCEPT_JSON,
        "get events".to_string(),
        String::new(),
    );
    let mut printer = Printer::new(cmd);
    loop {
        let event = match changes.next().await {
            Ok(e) => e,
            Err(e) => return Outcome::failed(e.kubectl_message()),
        };
        if event.kind == "DELETED" {
            continue;
        }
        let wanted = cmd.types.is_empty() || {
            let t = str_at(&event.object, "/type");
            cmd.types.iter().any(|x| x.eq_ignore_ascii_case(t))
        };
        if !wanted {
            continue;
        }
        let text = printer.print(&event.object, &event.raw);
        if sink.write(&text).await.is_err() {
            return Outcome {
                output: String::new(),
                error: None,
                exit_code: 0,
            };
        }
    }
}

/// kubectl's printer for `events -w`, kept across events.
struct Printer<'a> {
    cmd: &'a Events,
    writer: TabWriter,
    headers_printed: bool,
    yaml_printed: usize,
}

impl<'a> Printer<'a> {
    fn new(cmd: &'a Events) -> Self {
        Self {
            cmd,
            writer: TabWriter::new(),
            headers_printed: false,
            yaml_printed: 0,
        }
    }

    /// One event; `raw` is the watch event as the server wrote it (for `-o json`'s key order).
    fn print(&mut self, event: &Value, raw: &[u8]) -> String {
        match self.cmd.output {
            GetOutput::Json => {
                let ordered = serde_json::from_slice::<Ordered>(raw)
                    .ok()
                    .and_then(|e| match e {
                        Ordered::Object(fields) => fields
                            .into_iter()
                            .find(|(k, _)| k == "object")
                            .map(|(_, v)| v),
                        _ => None,
                    });
                let mut item = ordered.unwrap_or_else(|| Ordered::from_value_sorted(event));
                item.omit_managed_fields();
                item.set("kind", Ordered::String("Event".into()), 0);
                item.set("apiVersion", Ordered::String("v1".into()), 1);
                let mut out = String::new();
                gojson::write_ordered(&mut out, &item, "    ", 0);
                out.push('\n');
                out
            }
            GetOutput::Yaml => {
                let mut e = event.clone();
                omit_managed_fields(&mut e);
                if let Value::Object(m) = &mut e {
                    m.insert("kind".into(), "Event".into());
                    m.insert("apiVersion".into(), "v1".into());
                }
                self.yaml_printed += 1;
                let separator = if self.yaml_printed > 1 { "---\n" } else { "" };
                format!("{separator}{}", goyaml::to_string(&e))
            }
            GetOutput::Name => format!("event/{}\n", str_at(event, "/metadata/name")),
            _ => {
                if !self.headers_printed {
                    write_headers(&mut self.writer, self.cmd);
                    self.headers_printed = true;
                }
                write_row(&mut self.writer, event, self.cmd, chrono::Utc::now());
                self.writer.flush();
                self.writer.take_output()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cmd(output: GetOutput) -> Events {
        match kubeline_shared::command::parse_stream("events", &["-w".to_string()]) {
            Ok(kubeline_shared::command::Command::Events(e)) => Events { output, ..e },
            other => panic!("{other:?}"),
        }
    }

    fn event(name: &str, message: &str) -> Value {
        json!({"kind": "Event", "apiVersion": "v1",
            "metadata": {"name": name, "namespace": "ns", "managedFields": [{"manager": "m"}]},
            "type": "Normal", "reason": "Scheduled",
            "involvedObject": {"kind": "Pod", "name": "p"},
            "message": message, "firstTimestamp": "2026-01-01T00:00:00Z",
            "lastTimestamp": "2026-01-01T00:00:00Z", "count": 1})
    }

    /// The event as the server writes it: the object's keys in struct order.
    fn raw(e: &Value) -> Vec<u8> {
        let mut object = format!(
            "{{\"kind\":\"Event\",\"apiVersion\":\"v1\",\"metadata\":{}",
            e["metadata"]
        );
        for key in [
            "involvedObject",
            "reason",
            "message",
            "firstTimestamp",
            "lastTimestamp",
            "count",
            "type",
        ] {
            object.push_str(&format!(",\"{key}\":{}", e[key]));
        }
        format!("{{\"type\":\"ADDED\",\"object\":{object}}}}}\n").into_bytes()
    }

    #[test]
    fn rows_come_one_by_one_under_one_header() {
        let cmd = cmd(GetOutput::Table);
        let mut p = Printer::new(&cmd);
        let a = event("a", "first");
        let first = p.print(&a, &raw(&a));
        assert!(
            first.starts_with("LAST SEEN   TYPE     REASON      OBJECT   MESSAGE\n"),
            "{first}"
        );
        assert!(
            first.ends_with("Normal   Scheduled   Pod/p    first\n"),
            "{first}"
        );
        let b = event("b", "second");
        let second = p.print(&b, &raw(&b));
        assert_eq!(second.lines().count(), 1, "{second}");
        assert!(
            second.ends_with("Normal   Scheduled   Pod/p    second\n"),
            "{second}"
        );
    }

    #[test]
    fn objects_print_as_typed_events() {
        let e = event("a", "m");
        let cmd_json = cmd(GetOutput::Json);
        let json_text = Printer::new(&cmd_json).print(&e, &raw(&e));
        assert!(
            json_text.starts_with(
                "{\n    \"kind\": \"Event\",\n    \"apiVersion\": \"v1\",\n    \"metadata\": {"
            ),
            "{json_text}"
        );
        assert!(
            json_text.ends_with("    \"type\": \"Normal\"\n}\n"),
            "{json_text}"
        );
        assert!(!json_text.contains("managedFields"));
        let cmd_yaml = cmd(GetOutput::Yaml);
        let mut p = Printer::new(&cmd_yaml);
        assert!(p.print(&e, &raw(&e)).starts_with("apiVersion: v1\n"));
        assert!(p.print(&e, &raw(&e)).starts_with("---\napiVersion: v1\n"));
        let cmd_name = cmd(GetOutput::Name);
        assert_eq!(Printer::new(&cmd_name).print(&e, &raw(&e)), "event/a\n");
    }
}
