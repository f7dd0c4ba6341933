//! `get`, as kubectl's `get` runs it (kubectl `pkg/cmd/get/get.go` with cli-runtime's builder).
//!
//! 1. Resolve every resource type through discovery; an unknown type fails the whole command
//!    before anything is fetched, as in kubectl.
//! 2. Turn the targets into visits: one list per type, or one GET per named object.
//! 3. Fetch all visits concurrently (kubectl goes one by one; the output order is the same).
//!    Lists are paged with `--chunk-size` like kubectl's `RequestChunksOf`.
//! 4. Print: server tables through kubectl's table printer, or objects as json/yaml/name, then
//!    the errors, one line each, on stderr.
//!
//! `get -w` / `--watch-only` (a stream) is in [`watch`]: the same planning, fetching and
//! printers, then the API server's watch.

mod watch;

pub(in crate::exec) use watch::watch;

use crate::exec::api::builder::{self, Visit};
use crate::exec::api::discovery::{self, ApiResource};
use crate::exec::api::{self, ApiError};
use crate::exec::{Executor, Outcome};
use futures::future::join_all;
use kubeline_printers::go::fmt::go_sharp_v;
use kubeline_printers::go::json::{self as gojson, Ordered};
use kubeline_printers::go::tabwriter::TabWriter;
use kubeline_printers::go::yaml as goyaml;
use kubeline_printers::jsonpath::JsonPath;
use kubeline_printers::table::{HumanPrinter, PrintOptions};
use kubeline_printers::{custom_columns, sorter};
use kubeline_shared::command::{Get, GetOutput};
use serde_json::{Value, json};

/// What replaces each value of a Secret's `data` and `stringData` in json/yaml output. Keys are
/// kept so the shape of the Secret stays visible; values never leave the cluster.
pub const REDACTED: &str = "REDACTED";

/// The annotation `kubectl apply` leaves on objects; on a Secret it holds the values in clear.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// What one visit brought back.
struct Fetched {
    /// Tables (human output; one per page) or objects (json/yaml/name).
    objects: Vec<Value>,
    /// `--limit` left objects out.
    truncated: bool,
    /// The list's resourceVersion (where a watch of it starts); empty for a named object.
    resource_version: String,
}

pub(crate) async fn run(ex: &Executor, g: &Get) -> Outcome {
    // client-go warns when a short name could also mean a lower-priority resource.
    let warnings = ex
        .shortcut_warnings(&discovery::target_types(&g.targets))
        .await;
    discovery::warnings_first(&warnings, run_resolved(ex, g).await)
}

/// A sort kubectl ends with a fatal log line: exactly that line on stderr, exit code 1.
fn fatal(line: String) -> Outcome {
    Outcome {
        output: String::new(),
        error: Some(line + "\n"),
        exit_code: 1,
    }
}

async fn run_resolved(ex: &Executor, g: &Get) -> Outcome {
    let visits = match resolve(ex, g).await {
        Ok(v) => v,
        Err(failed) => return failed,
    };
    let human = g.output.is_human();
    let results = join_all(visits.iter().map(|v| fetch(ex, g, v, human))).await;
    // Sorting, templates and printers are CPU work with no await point.
    crate::exec::cpu_bound(|| finish(ex, g, &visits, results)).await
}

/// The requests kubectl's builder would make, or the failed outcome of a type that does not
/// resolve.
async fn resolve(ex: &Executor, g: &Get) -> Result<Vec<Visit>, Outcome> {
    let namespace = g
        .namespace
        .clone()
        .unwrap_or_else(|| ex.default_namespace.to_string());
    builder::resolve(ex, &g.targets, &namespace, g.all_namespaces)
        .await
        .map_err(|e| Outcome::failed(e.message()))
}

/// Sorts and prints what the visits brought back, with the errors after it.
fn finish(
    ex: &Executor,
    g: &Get,
    visits: &[Visit],
    results: Vec<(Result<Fetched, ApiError>, Vec<String>)>,
) -> Outcome {
    let human = g.output.is_human();
    let mut warnings: Vec<String> = Vec::new();
    let mut fetched: Vec<(usize, Fetched)> = Vec::new();
    let mut errors: Vec<ApiError> = Vec::new();
    for (i, (result, w)) in results.into_iter().enumerate() {
        for w in w {
            if !warnings.contains(&w) {
                warnings.push(w);
            }
        }
        match result {
            Ok(mut f) => {
                if human
                    && g.sort_by.is_some()
                    && let Err(line) = sort_tables(&visits[i].mapping, &mut f.objects, g)
                {
                    return fatal(line);
                }
                fetched.push((i, f))
            }
            Err(e) if g.ignore_not_found && e.is_not_found() => {}
            Err(e) => errors.push(e),
        }
    }

    let mut stderr = String::new();
    for w in &warnings {
        stderr.push_str(&format!("Warning: {w}\n"));
    }
    let stdout = if human {
        if let (Some(field), true) = (
            &g.sort_by,
            fetched.iter().map(|(_, f)| f.objects.len()).sum::<usize>() > 1,
        ) {
            // kubectl's RuntimeSorter orders the infos (here: whole tables) themselves.
            if let Err(e) = sort_infos(&mut fetched, field) {
                if sorter::is_fatal(&e) {
                    return fatal(e);
                }
                return Outcome::failed(format!("error: {e}"));
            }
        }
        print_human(ex, g, visits, &fetched, &errors, &mut stderr)
    } else {
        print_generic(g, visits, fetched, &errors)
    };
    if g.limit.is_some() && stdout.truncated {
        stderr.push_str(&format!(
            "kubeline: output limited by --limit={}; more objects exist\n",
            g.limit.unwrap_or_default()
        ));
    }
    for e in &errors {
        stderr.push_str(&e.kubectl_message());
        stderr.push('\n');
    }
    if let Some(e) = &stdout.error {
        stderr.push_str(e);
        stderr.push('\n');
    }
    Outcome {
        output: stdout.text,
        error: (!stderr.is_empty()).then_some(stderr),
        exit_code: if errors.is_empty() && stdout.error.is_none() {
            0
        } else {
            1
        },
    }
}

// === fetching ===

async fn fetch(
    ex: &Executor,
    g: &Get,
    v: &Visit,
    human: bool,
) -> (Result<Fetched, ApiError>, Vec<String>) {
    let accept = if human {
        api::ACCEPT_TABLE
    } else {
        api::ACCEPT_JSON
    };
    let what = v.what();
    let mut warnings = Vec::new();
    // kubectl asks for the objects inside the table rows to sort them.
    let include_object = human && g.sort_by.is_some();
    if let Some(name) = &v.name {
        let mut path = format!("{}/{}", v.collection_path(), api::segment(name));
        if include_object {
            path.push_str("?includeObject=Object");
        }
        // cli-runtime's Info.Get: a NotFound in a namespace that does not exist reports the
        // namespace.
        let result = match api::get(&ex.client, &path, accept, Some(&what)).await {
            Err(e) if e.is_not_found() => {
                Err(api::namespace_error(&ex.client, v.namespace.as_deref())
                    .await
                    .unwrap_or(e))
            }
            r => r,
        }
        .map(|r| {
            warnings.extend(r.warnings);
            Fetched {
                objects: vec![r.body],
                truncated: false,
                resource_version: String::new(),
            }
        });
        return (result, warnings);
    }
    let mut objects = Vec::new();
    let mut continue_token: Option<String> = None;
    // Sorting needs every object at once: kubectl turns chunking off.
    let page = match (g.limit, &g.sort_by) {
        (Some(limit), _) => limit,
        (None, Some(_)) => 0,
        (None, None) => g.chunk_size,
    };
    let mut pages = 0;
    let mut resource_version = String::new();
    loop {
        pages += 1;
        if pages > ex.max_list_pages {
            return (
                Err(ApiError::too_many_pages(ex.max_list_pages, page)),
                warnings,
            );
        }
        let mut query = list_query(g, page, continue_token.as_deref());
        if include_object {
            if !query.is_empty() {
                query.push('&');
            }
            query.push_str("includeObject=Object");
        }
        let path = if query.is_empty() {
            v.collection_path()
        } else {
            format!("{}?{query}", v.collection_path())
        };
        let response = match api::get(&ex.client, &path, accept, Some(&what)).await {
            Ok(r) => r,
            Err(e) => return (Err(e), warnings),
        };
        warnings.extend(response.warnings);
        let body = response.body;
        let next = body
            .get("metadata")
            .and_then(|m| m.get("continue"))
            .and_then(Value::as_str)
            .filter(|c| !c.is_empty())
            .map(str::to_string);
        if let Some(rv) = body
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
        {
            resource_version = rv.to_string();
        }
        if human {
            objects.push(body);
        } else {
            objects.extend(flatten(body));
        }
        match next {
            Some(_) if g.limit.is_some() => {
                return (
                    Ok(Fetched {
                        objects,
                        truncated: true,
                        resource_version,
                    }),
                    warnings,
                );
            }
            Some(c) if page > 0 => continue_token = Some(c),
            _ => {
                return (
                    Ok(Fetched {
                        objects,
                        truncated: false,
                        resource_version,
                    }),
                    warnings,
                );
            }
        }
    }
}

/// The query of a list request: selectors, page size and continue token.
fn list_query(g: &Get, page: u32, continue_token: Option<&str>) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    if let Some(s) = &g.label_selector {
        query.append_pair("labelSelector", s);
    }
    if let Some(s) = &g.field_selector {
        query.append_pair("fieldSelector", s);
    }
    if page > 0 {
        query.append_pair("limit", &page.to_string());
    }
    if let Some(c) = continue_token {
        query.append_pair("continue", c);
    }
    query.finish()
}

/// Items of a list, each with the `apiVersion` and `kind` the list implies (the API server
/// leaves them out of typed lists; kubectl's unstructured decoder fills them in).
fn flatten(list: Value) -> Vec<Value> {
    let api_version = list
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let kind = list
        .get("kind")
        .and_then(Value::as_str)
        .map(|k| k.strip_suffix("List").unwrap_or(k).to_string())
        .unwrap_or_default();
    let Some(Value::Array(items)) = list.get("items").cloned() else {
        return if list.get("items").is_some() {
            Vec::new()
        } else {
            vec![list]
        };
    };
    items
        .into_iter()
        .map(|mut item| {
            if let Some(obj) = item.as_object_mut() {
                if !obj.contains_key("kind") || obj["kind"].as_str() == Some("") {
                    obj.insert("kind".into(), Value::String(kind.clone()));
                }
                if !obj.contains_key("apiVersion") || obj["apiVersion"].as_str() == Some("") {
                    obj.insert("apiVersion".into(), Value::String(api_version.clone()));
                }
            }
            item
        })
        .collect()
}

// === printing ===

struct Printed {
    text: String,
    truncated: bool,
    /// A printing error (a template that does not parse or run, a failed sort), as kubectl's
    /// error line.
    error: Option<String>,
}

/// Sorts the rows of each table by `--sort-by` (kubectl's `SortingPrinter` inside its
/// `TablePrinter`). Row objects of Secrets are redacted first, so the order never depends on
/// a secret value. A table kubectl fails to sort prints nothing, and it is replaced by `null`.
/// Sorts each table's rows; a table whose rows cannot be compared is dropped, as kubectl drops
/// it, unless kubectl would end the process (see [`sorter::is_fatal`]): then that line.
fn sort_tables(mapping: &ApiResource, tables: &mut [Value], g: &Get) -> Result<(), String> {
    let Some(field) = &g.sort_by else {
        return Ok(());
    };
    let secret = mapping.group.is_empty() && mapping.resource == "secrets";
    for table in tables.iter_mut() {
        let Some(rows) = table.get_mut("rows").and_then(Value::as_array_mut) else {
            continue;
        };
        if secret {
            for row in rows.iter_mut() {
                if let Some(o) = row.get_mut("object").and_then(Value::as_object_mut) {
                    o.entry("kind").or_insert_with(|| json!("Secret"));
                    o.entry("apiVersion").or_insert_with(|| json!("v1"));
                }
                if let Some(o) = row.get_mut("object") {
                    redact_secret(o);
                }
            }
        }
        if rows.len() > 1
            && let Err(e) = sorter::sort_table_rows(rows, field)
        {
            if sorter::is_fatal(&e) {
                return Err(e);
            }
            *table = Value::Null;
        }
    }
    Ok(())
}

/// kubectl's `RuntimeSorter` over several infos: the tables themselves are sorted as objects.
fn sort_infos(fetched: &mut Vec<(usize, Fetched)>, field: &str) -> Result<(), String> {
    let mut infos: Vec<(usize, bool, Value)> = Vec::new();
    for (i, f) in fetched.drain(..) {
        for o in f.objects {
            infos.push((i, f.truncated, o));
        }
    }
    sorter::sort_objects_by(&mut infos, field, |(_, _, o)| o)?;
    fetched.extend(infos.into_iter().map(|(i, truncated, o)| {
        (
            i,
            Fetched {
                objects: vec![o],
                truncated,
                resource_version: String::new(),
            },
        )
    }));
    Ok(())
}

fn print_human(
    ex: &Executor,
    g: &Get,
    visits: &[Visit],
    fetched: &[(usize, Fetched)],
    errors: &[ApiError],
    stderr: &mut String,
) -> Printed {
    // Every page of every visit is one "info" in kubectl.
    let infos: Vec<(&ApiResource, &Value)> = fetched
        .iter()
        .flat_map(|(i, f)| f.objects.iter().map(move |o| (&visits[*i].mapping, o)))
        .collect();
    let truncated = fetched.iter().any(|(_, f)| f.truncated);
    let print_with_kind = infos.len() >= 2 && {
        let first = infos[0].0;
        infos.iter().any(|(m, _)| {
            (&m.group, &m.version, &m.kind) != (&first.group, &first.version, &first.kind)
        })
    };
    let now = chrono::Utc::now();
    let mut out = String::new();
    let mut separator_ready = false;
    let mut w = TabWriter::new();
    let mut printer: Option<HumanPrinter> = None;
    let mut last: Option<&ApiResource> = None;
    let mut all_namespaced = !g.all_namespaces;
    // The tab writer's output passes kubectl's separator: a blank line before the first
    // output of a new resource type.
    let drain = |w: &mut TabWriter, out: &mut String, ready: &mut bool| {
        let text = w.take_output();
        if !text.is_empty() {
            if *ready {
                out.push('\n');
                *ready = false;
            }
            out.push_str(&text);
        }
    };
    for (mapping, obj) in infos {
        all_namespaced = all_namespaced && mapping.namespaced;
        if printer.is_none() || last.is_none_or(|l| !l.same_resource(mapping)) {
            w.flush();
            drain(&mut w, &mut out, &mut separator_ready);
            w.forget_widths();
            if last.is_some() && !g.no_headers && !out.is_empty() {
                separator_ready = true;
            }
            let options = PrintOptions {
                no_headers: g.no_headers,
                wide: g.output == GetOutput::Wide,
                with_namespace: g.all_namespaces && mapping.namespaced,
                with_kind: g.show_kind || print_with_kind,
                kind: mapping.kind_prefix(),
                show_labels: g.show_labels,
                column_labels: g.label_columns.clone(),
            };
            printer = Some(HumanPrinter::new(options, now));
            last = Some(mapping);
        }
        if obj.is_null() {
            // A table kubectl failed to sort: its printer returned an error and printed nothing.
            continue;
        }
        if let Some(p) = printer.as_mut() {
            p.print(obj, &mut w);
            drain(&mut w, &mut out, &mut separator_ready);
        }
    }
    w.flush();
    drain(&mut w, &mut out, &mut separator_ready);
    if out.is_empty() && !g.ignore_not_found && errors.is_empty() {
        if all_namespaced {
            let ns = g
                .namespace
                .clone()
                .unwrap_or_else(|| ex.default_namespace.to_string());
            stderr.push_str(&format!("No resources found in {ns} namespace.\n"));
        } else {
            stderr.push_str("No resources found\n");
        }
    }
    Printed {
        text: out,
        truncated,
        error: None,
    }
}

fn print_generic(
    g: &Get,
    _visits: &[Visit],
    fetched: Vec<(usize, Fetched)>,
    errors: &[ApiError],
) -> Printed {
    let truncated = fetched.iter().any(|(_, f)| f.truncated);
    let nothing = |error: Option<String>| Printed {
        text: String::new(),
        truncated,
        error,
    };
    let single = g.single_item_implied();
    if single && !errors.is_empty() {
        return nothing(None);
    }
    let mut objects: Vec<Value> = fetched.into_iter().flat_map(|(_, f)| f.objects).collect();
    if objects.is_empty() && g.ignore_not_found {
        return nothing(None);
    }
    // Everything below reads redacted objects only: templates, columns and sorting included.
    // kubectl drops managed fields only in its json and yaml printers.
    let omit_managed_fields = !g.show_managed_fields
        && matches!(
            g.output,
            GetOutput::Json | GetOutput::Yaml | GetOutput::Kyaml
        );
    for o in &mut objects {
        redact_secret(o);
        if omit_managed_fields
            && let Some(meta) = o.get_mut("metadata").and_then(Value::as_object_mut)
        {
            meta.remove("managedFields");
        }
    }
    // kubectl builds the printer (parsing the template) before it sorts and prints.
    let printer = match &g.output {
        GetOutput::JsonPath { template, as_json } => match JsonPath::parse(template) {
            Ok(p) => GenericPrinter::JsonPath(
                p.allow_missing_keys(g.allow_missing_template_keys)
                    .json_output(*as_json),
                template,
            ),
            Err(e) => {
                return nothing(Some(format!(
                    "error: error parsing jsonpath {template}, {e}"
                )));
            }
        },
        GetOutput::CustomColumns(spec) => match custom_columns::parse(spec) {
            Ok(c) => GenericPrinter::Columns(c),
            Err(e) => return nothing(Some(format!("error: {e}"))),
        },
        GetOutput::Name => GenericPrinter::Name,
        GetOutput::Yaml => GenericPrinter::Yaml,
        GetOutput::Kyaml => GenericPrinter::Kyaml,
        _ => GenericPrinter::Json,
    };
    let one_object = single && objects.len() == 1;
    if let (Some(field), false) = (&g.sort_by, one_object)
        && let Err(e) = sorter::sort_objects(&mut objects, field)
    {
        if sorter::is_fatal(&e) {
            return nothing(Some(e));
        }
        return nothing(Some(format!("error: {e}")));
    }
    if let GenericPrinter::Name = printer {
        let mut text = String::new();
        for o in &objects {
            text.push_str(&name_line(o));
        }
        return Printed {
            text,
            truncated,
            error: None,
        };
    }
    if let GenericPrinter::Columns(columns) = &printer {
        let refs: Vec<&Value> = objects.iter().collect();
        return match custom_columns::print(columns, &refs, g.no_headers) {
            Ok(text) => Printed {
                text,
                truncated,
                error: None,
            },
            Err(e) => Printed {
                text: e.printed,
                truncated,
                error: Some(format!("error: {}", e.error)),
            },
        };
    }
    let value = if one_object {
        objects.pop().unwrap_or_default()
    } else {
        json!({
            "apiVersion": "v1",
            "items": objects,
            "kind": "List",
            "metadata": { "resourceVersion": "" },
        })
    };
    let text = match printer {
        GenericPrinter::Yaml => goyaml::to_string(&value),
        GenericPrinter::Kyaml => goyaml::to_kyaml(&Ordered::from_value_sorted(&value)),
        GenericPrinter::JsonPath(p, template) => match p.execute(&value) {
            Ok(text) => text,
            Err(e) => {
                return nothing(Some(format!(
                    "error: error executing jsonpath {template:?}: Error executing template: {e}. \
                     Printing more information for debugging the template:\n\ttemplate was:\n\t\t{template}\n\t\
                     object given to jsonpath engine was:\n\t\t{}\n\n",
                    go_sharp_v(&value)
                )));
            }
        },
        _ => gojson::to_string_pretty(&value, "    "),
    };
    Printed {
        text,
        truncated,
        error: None,
    }
}

/// The printer kubectl builds for a non-table output.
enum GenericPrinter<'a> {
    Json,
    Yaml,
    Kyaml,
    Name,
    JsonPath(JsonPath, &'a str),
    Columns(Vec<custom_columns::Column>),
}

/// kubectl's `-o name` line: `kind[.group]/name`.
fn name_line(o: &Value) -> String {
    let kind = o.get("kind").and_then(Value::as_str).unwrap_or_default();
    let api_version = o
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let group = api_version.split_once('/').map_or("", |(g, _)| g);
    let name = o
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .unwrap_or("<unknown>");
    let kind = if kind.is_empty() {
        "<unknown>".to_string()
    } else {
        kind.to_lowercase()
    };
    if group.is_empty() {
        format!("{kind}/{name}\n")
    } else {
        format!("{kind}.{group}/{name}\n")
    }
}

/// Replaces every value of a Secret's `data` and `stringData` with [`REDACTED`] and drops the
/// last-applied annotation, which would hold the values in clear.
pub(crate) fn redact_secret(o: &mut Value) {
    let is_secret = o.get("kind").and_then(Value::as_str) == Some("Secret")
        && o.get("apiVersion").and_then(Value::as_str) == Some("v1");
    if !is_secret {
        return;
    }
    for field in ["data", "stringData"] {
        if let Some(Value::Object(values)) = o.get_mut(field) {
            for v in values.values_mut() {
                *v = Value::String(REDACTED.into());
            }
        }
    }
    if let Some(Value::Object(annotations)) =
        o.get_mut("metadata").and_then(|m| m.get_mut("annotations"))
    {
        annotations.remove(LAST_APPLIED);
        if annotations.is_empty()
            && let Some(meta) = o.get_mut("metadata").and_then(Value::as_object_mut)
        {
            meta.remove("annotations");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted() {
        let mut s = json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "s", "annotations": {LAST_APPLIED: "{\"data\":{\"p\":\"c2VjcmV0\"}}", "keep": "me"}},
            "data": {"p": "c2VjcmV0"}, "stringData": {"q": "secret"}, "type": "Opaque"
        });
        redact_secret(&mut s);
        assert_eq!(s["data"]["p"], REDACTED);
        assert_eq!(s["stringData"]["q"], REDACTED);
        assert_eq!(s["metadata"]["annotations"], json!({"keep": "me"}));
        assert!(!s.to_string().contains("c2VjcmV0"));
        let mut cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"p": "visible"}});
        redact_secret(&mut cm);
        assert_eq!(cm["data"]["p"], "visible");
    }

    #[test]
    fn list_items_get_kind_and_api_version() {
        let items = flatten(
            json!({"apiVersion": "apps/v1", "kind": "DeploymentList", "items": [{"metadata": {"name": "d"}}]}),
        );
        assert_eq!(items[0]["kind"], "Deployment");
        assert_eq!(items[0]["apiVersion"], "apps/v1");
        assert_eq!(name_line(&items[0]), "deployment.apps/d\n");
        assert_eq!(
            name_line(&json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}})),
            "pod/p\n"
        );
    }
}
