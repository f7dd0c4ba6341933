//! `events`, as `kubectl events` runs it (kubectl `pkg/cmd/events`).
//!
//! 1. `--for TYPE/NAME` is resolved through discovery to a kind and group/version, which become
//!    an `involvedObject` field selector (kind, apiVersion, name), as in kubectl.
//! 2. Events are listed in pages of 500 (kubectl's default chunk size), filtered by `--types`.
//! 3. They are sorted oldest first by Go's `sort.Sort` (see [`gosort`]), on the time kubectl
//!    uses: `series.lastObservedTime`, else `lastTimestamp`, else `eventTime`.
//! 4. They are printed through kubectl's tab writer: `LAST SEEN  TYPE  REASON  OBJECT  MESSAGE`,
//!    with `NAMESPACE` first for `-A`; or, with `-o json|yaml|name`, as kubectl's printers print
//!    the typed `EventList` it builds (JSON keys in Go struct order: see [`gojson::Ordered`]).
//!
//! `events -w` (a stream) is in [`watch`].

mod watch;

pub(in crate::exec) use watch::watch;

use crate::exec::api::builder::{self, BuildError};
use crate::exec::api::discovery::warnings_first;
use crate::exec::api::{self, ApiError};
use crate::exec::{Executor, Outcome};
use chrono::{DateTime, Utc};
use kubeline_printers::go::json::{self as gojson, Ordered};
use kubeline_printers::go::sort as gosort;
use kubeline_printers::go::tabwriter::TabWriter;
use kubeline_printers::go::yaml as goyaml;
use kubeline_printers::table::human_duration;
use kubeline_shared::command::{Events, GetOutput};
use serde_json::{Value, json};

/// kubectl's `cmdutil.DefaultChunkSize`.
const CHUNK_SIZE: u32 = 500;

pub(crate) async fn run(ex: &Executor, cmd: &Events) -> Outcome {
    let warnings = match &cmd.for_object {
        Some(o) => {
            ex.shortcut_warnings(&[o.resource.to_lowercase().as_str()])
                .await
        }
        None => Vec::new(),
    };
    warnings_first(&warnings, events(ex, cmd).await)
}

/// The `involvedObject` field selector of `--for TYPE/NAME`, or the failed outcome of a type
/// that does not resolve.
async fn for_selector(ex: &Executor, cmd: &Events) -> Result<Option<String>, Outcome> {
    let Some(obj) = &cmd.for_object else {
        return Ok(None);
    };
    let lower = obj.resource.to_lowercase();
    let mapping = builder::resolve_one(ex, &lower)
        .await
        .map_err(|e| match e {
            BuildError::NoMatch(resource) => Outcome::failed(format!(
                "the server doesn't have a resource type {resource:?}"
            )),
            e => Outcome::failed(e.message()),
        })?;
    let api_version = if mapping.group.is_empty() {
        mapping.version.clone()
    } else {
        format!("{}/{}", mapping.group, mapping.version)
    };
    Ok(Some(format!(
        "involvedObject.kind={},involvedObject.apiVersion={},involvedObject.name={}",
        mapping.kind, api_version, obj.name
    )))
}

/// The events collection the command reads: one namespace's, or every namespace's with `-A`.
fn collection(ex: &Executor, cmd: &Events) -> String {
    if cmd.all_namespaces {
        "/api/v1/events".to_string()
    } else {
        format!(
            "/api/v1/namespaces/{}/events",
            api::segment(&namespace_of(ex, cmd))
        )
    }
}

fn namespace_of(ex: &Executor, cmd: &Events) -> String {
    cmd.namespace
        .clone()
        .unwrap_or_else(|| ex.default_namespace.to_string())
}

async fn events(ex: &Executor, cmd: &Events) -> Outcome {
    let namespace = namespace_of(ex, cmd);
    let field_selector = match for_selector(ex, cmd).await {
        Ok(s) => s,
        Err(failed) => return failed,
    };
    let base = collection(ex, cmd);
    let ordered = cmd.output == GetOutput::Json;
    // Each event, and for `-o json` the same event with its keys in the server's order.
    let mut events: Vec<(Value, Option<Ordered>)> = Vec::new();
    let mut continue_token: Option<String> = None;
    loop {
        let path = {
            let mut query = url::form_urlencoded::Serializer::new(String::new());
            query.append_pair("limit", &CHUNK_SIZE.to_string());
            if let Some(f) = &field_selector {
                query.append_pair("fieldSelector", f);
            }
            if let Some(c) = &continue_token {
                query.append_pair("continue", c);
            }
            format!("{base}?{}", query.finish())
        };
        let raw = match api::get_raw(&ex.client, &path, api::ACCEPT_JSON, Some("get events")).await
        {
            Ok(r) => r.body,
            Err(e) => {
                return Outcome::failed(enhance_list_error(e, field_selector.as_deref()));
            }
        };
        let body: Value = match serde_json::from_slice(&raw) {
            Ok(b) => b,
            Err(e) => {
                return Outcome::failed(format!(
                    "Unable to connect to the server: cannot decode the server's response: {e}"
                ));
            }
        };
        let mut ordered_items = if ordered {
            match serde_json::from_slice::<Ordered>(&raw) {
                Ok(Ordered::Object(fields)) => fields
                    .into_iter()
                    .find(|(k, _)| k == "items")
                    .and_then(|(_, v)| match v {
                        Ordered::Array(items) => Some(items),
                        _ => None,
                    })
                    .unwrap_or_default()
                    .into_iter()
                    .map(Some)
                    .collect(),
                _ => Vec::new(),
            }
        } else {
            Vec::new()
        };
        let next = body
            .pointer("/metadata/continue")
            .and_then(Value::as_str)
            .filter(|c| !c.is_empty())
            .map(str::to_string);
        if let Value::Object(mut m) = body
            && let Some(Value::Array(items)) = m.remove("items")
        {
            ordered_items.resize(items.len(), None);
            events.extend(items.into_iter().zip(ordered_items));
        }
        match next {
            Some(c) => continue_token = Some(c),
            None => break,
        }
    }
    events.retain(|(e, _)| {
        cmd.types.is_empty() || {
            let t = str_at(e, "/type");
            cmd.types.iter().any(|x| x.eq_ignore_ascii_case(t))
        }
    });
    if events.is_empty() {
        let message = if cmd.all_namespaces {
            "No events found.\n".to_string()
        } else {
            format!("No events found in {namespace} namespace.\n")
        };
        return Outcome {
            output: String::new(),
            error: Some(message),
            exit_code: 0,
        };
    }
    gosort::sort(&mut events, |(a, _), (b, _)| event_time(a) < event_time(b));
    let output = match cmd.output {
        GetOutput::Json => print_json(events),
        GetOutput::Yaml => print_yaml(events.into_iter().map(|(e, _)| e).collect()),
        // kubectl's name printer refuses a typed list ("list types are not supported by name
        // printing") and `kubectl events` drops that error: nothing is printed, exit code 0.
        GetOutput::Name => String::new(),
        _ => render(
            events.into_iter().map(|(e, _)| e).collect(),
            cmd,
            Utc::now(),
        ),
    };
    Outcome {
        output,
        error: None,
        exit_code: 0,
    }
}

/// The `EventList` kubectl builds: `kind`, `apiVersion`, empty list metadata, then the items,
/// each typed (`kind: Event`, `apiVersion: v1` set as kubectl sets them).
fn event_list(items: Value) -> Value {
    json!({"kind": "EventList", "apiVersion": "v1", "metadata": {}, "items": items})
}

/// `-o json`: `json.MarshalIndent` of the typed `EventList`, so keys come in Go struct order,
/// which is the order the API server wrote them in.
fn print_json(events: Vec<(Value, Option<Ordered>)>) -> String {
    let items: Vec<Ordered> = events
        .into_iter()
        .map(|(value, ordered)| {
            let mut item = ordered.unwrap_or_else(|| Ordered::from_value_sorted(&value));
            item.omit_managed_fields();
            item.set("kind", Ordered::String("Event".into()), 0);
            item.set("apiVersion", Ordered::String("v1".into()), 1);
            item
        })
        .collect();
    let list = Ordered::Object(vec![
        ("kind".into(), Ordered::String("EventList".into())),
        ("apiVersion".into(), Ordered::String("v1".into())),
        ("metadata".into(), Ordered::Object(Vec::new())),
        ("items".into(), Ordered::Array(items)),
    ]);
    let mut out = String::new();
    gojson::write_ordered(&mut out, &list, "    ", 0);
    out.push('\n');
    out
}

/// kubectl's `OmitManagedFieldsPrinter` (`--show-managed-fields=false`) on one object.
pub(crate) fn omit_managed_fields(o: &mut Value) {
    if let Some(Value::Object(meta)) = o.get_mut("metadata") {
        meta.remove("managedFields");
    }
}

/// `-o yaml`: the typed `EventList` through sigs.k8s.io/yaml (keys sorted).
fn print_yaml(events: Vec<Value>) -> String {
    let items: Vec<Value> = events
        .into_iter()
        .map(|mut e| {
            omit_managed_fields(&mut e);
            if let Value::Object(m) = &mut e {
                m.insert("kind".into(), "Event".into());
                m.insert("apiVersion".into(), "v1".into());
            }
            e
        })
        .collect();
    goyaml::to_string(&event_list(Value::Array(items)))
}

/// cli-runtime's `EnhanceListError` for the events list.
fn enhance_list_error(e: ApiError, field_selector: Option<&str>) -> String {
    api::enhance_list_error(e, "", field_selector.unwrap_or_default(), "events").kubectl_message()
}

/// Prints events (already sorted) as kubectl's `EventPrinter` does.
fn render(events: Vec<Value>, cmd: &Events, now: DateTime<Utc>) -> String {
    let mut w = TabWriter::new();
    write_headers(&mut w, cmd);
    for e in &events {
        write_row(&mut w, e, cmd, now);
    }
    w.flush();
    w.take_output()
}

/// `EventPrinter.printHeadings`, unless `--no-headers`.
fn write_headers(w: &mut TabWriter, cmd: &Events) {
    if !cmd.no_headers {
        if cmd.all_namespaces {
            w.write("NAMESPACE\t");
        }
        w.write("LAST SEEN\tTYPE\tREASON\tOBJECT\tMESSAGE\n");
    }
}

/// `EventPrinter.printOneEvent`.
fn write_row(w: &mut TabWriter, e: &Value, cmd: &Events, now: DateTime<Utc>) {
    if cmd.all_namespaces {
        w.write(&format!("{}\t", str_at(e, "/metadata/namespace")));
    }
    w.write(&format!(
        "{}\t{}\t{}\t{}/{}\t{}\n",
        interval(e, now),
        escape_terminal(str_at(e, "/type")),
        escape_terminal(str_at(e, "/reason")),
        escape_terminal(str_at(e, "/involvedObject/kind")),
        escape_terminal(str_at(e, "/involvedObject/name")),
        escape_terminal(str_at(e, "/message").trim()),
    ));
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn time_at(v: &Value, pointer: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(str_at(v, pointer))
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// kubectl's `eventTime`: the series' last observation, else `lastTimestamp`, else `eventTime`.
/// A missing time is Go's zero time, which sorts first.
fn event_time(e: &Value) -> Option<DateTime<Utc>> {
    if e.get("series").is_some_and(|s| !s.is_null()) {
        return time_at(e, "/series/lastObservedTime");
    }
    time_at(e, "/lastTimestamp").or_else(|| time_at(e, "/eventTime"))
}

fn since(t: Option<DateTime<Utc>>, now: DateTime<Utc>) -> String {
    match t {
        None => "<unknown>".to_string(),
        Some(t) => human_duration(now.signed_duration_since(t)),
    }
}

/// kubectl's `getInterval`: `5m`, or `20s (x31 over 15m)` for repeated events.
fn interval(e: &Value, now: DateTime<Utc>) -> String {
    let first = match time_at(e, "/eventTime") {
        Some(t) => since(Some(t), now),
        None => since(time_at(e, "/firstTimestamp"), now),
    };
    if e.get("series").is_some_and(|s| !s.is_null()) {
        let count = e
            .pointer("/series/count")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        return format!(
            "{} (x{count} over {first})",
            since(time_at(e, "/series/lastObservedTime"), now)
        );
    }
    let count = e.get("count").and_then(Value::as_i64).unwrap_or(0);
    if count > 1 {
        format!(
            "{} (x{count} over {first})",
            since(time_at(e, "/lastTimestamp"), now)
        )
    } else {
        first
    }
}

/// cli-runtime's `printers.EscapeTerminal`.
fn escape_terminal(s: &str) -> String {
    s.replace('\u{1b}', "^[").replace('\r', "\\r")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cmd(all: bool, no_headers: bool) -> Events {
        Events {
            namespace: None,
            all_namespaces: all,
            for_object: None,
            types: vec![],
            no_headers,
            output: GetOutput::Table,
            watch: false,
        }
    }

    fn event(ns: &str, name: &str, last: &str, count: i64, kind: &str, reason: &str) -> Value {
        json!({
            "metadata": {"namespace": ns, "name": name},
            "type": if reason == "BackOff" { "Warning" } else { "Normal" },
            "reason": reason,
            "involvedObject": {"kind": kind, "name": name},
            "message": format!("  {reason} happened\n"),
            "firstTimestamp": "2026-01-01T00:00:00Z",
            "lastTimestamp": last,
            "count": count,
        })
    }

    #[test]
    fn oldest_first_with_intervals() {
        let sorted = |mut events: Vec<Value>| {
            gosort::sort(&mut events, |a, b| event_time(a) < event_time(b));
            events
        };
        let now: DateTime<Utc> = "2026-01-01T00:15:00Z".parse().unwrap();
        let events = vec![
            event("a", "p1", "2026-01-01T00:14:40Z", 31, "Pod", "BackOff"),
            event("a", "p2", "2026-01-01T00:00:00Z", 1, "Pod", "Scheduled"),
            json!({
                "metadata": {"namespace": "a", "name": "p3"},
                "type": "Normal", "reason": "Created",
                "involvedObject": {"kind": "Pod", "name": "p3"},
                "message": "m", "eventTime": "2026-01-01T00:05:00.123456Z",
                "series": {"count": 2, "lastObservedTime": "2026-01-01T00:10:00.000000Z"}
            }),
        ];
        let out = render(sorted(events), &cmd(false, false), now);
        assert_eq!(
            out,
            "LAST SEEN           TYPE      REASON      OBJECT   MESSAGE\n\
             15m                 Normal    Scheduled   Pod/p2   Scheduled happened\n\
             5m (x2 over 9m59s)  Normal    Created     Pod/p3   m\n\
             20s (x31 over 15m)  Warning   BackOff     Pod/p1   BackOff happened\n"
                .replace("5m (x2 over 9m59s)  ", "5m (x2 over 9m59s)   ")
                .replace("LAST SEEN           ", "LAST SEEN            ")
                .replace("15m                 ", "15m                  ")
                .replace("20s (x31 over 15m)  ", "20s (x31 over 15m)   ")
        );
        let events = vec![event("b", "n", "2026-01-01T00:00:00Z", 1, "Node", "Up")];
        assert_eq!(
            render(events, &cmd(true, true), now),
            "b     15m   Normal   Up    Node/n   Up happened\n"
        );
    }

    #[test]
    fn list_errors_name_the_selector() {
        let e = ApiError::Status {
            code: 400,
            reason: "BadRequest".into(),
            message: "bad".into(),
        };
        assert_eq!(
            enhance_list_error(e, Some("involvedObject.name=x")),
            "Error from server (BadRequest): Unable to find \"events\" that match label selector \"\", field selector \"involvedObject.name=x\": bad"
        );
    }
}
