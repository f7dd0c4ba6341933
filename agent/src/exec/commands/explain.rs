//! `explain` from the OpenAPI v3 documents, printed with kubectl's `plaintext` template
//! (kubectl `pkg/explain/v2/templates/plaintext.tmpl`), ported template by template.
//!
//! 1. The resource resolves as kubectl resolves it (`SplitAndParseResourceRequest[WithMatching
//!    Prefix]`): the first path element names the resource, a `resource.group` prefix picks the
//!    group, the rest is the field path.
//! 2. `/openapi/v3` lists one document per group/version; the resource's document is fetched.
//! 3. The GVK comes from the operations on the resource's paths, its schema from
//!    `components.schemas`, and the field path is followed through `$ref`, `items`,
//!    `additionalProperties` and `allOf` as the template follows it.
//!
//! Go templates write as they go: when the template fails (a field that does not exist), what
//! was printed before the failure stays on stdout, as it does with kubectl.

use crate::exec::api;
use crate::exec::api::discovery::warnings_first;
use crate::exec::{Executor, Outcome};
use kubeline_printers::go::fmt::{go_quote, go_sprint};
use kubeline_printers::go::json as gojson;
use kubeline_printers::jsonpath;
use kubeline_shared::command::Explain;
use serde_json::{Map, Value};

pub(crate) async fn run(ex: &Executor, cmd: &Explain) -> Outcome {
    let resource = cmd.target.split('.').next().unwrap_or_default();
    let warnings = ex.shortcut_warnings(&[resource]).await;
    warnings_first(&warnings, explain(ex, cmd).await)
}

async fn explain(ex: &Executor, cmd: &Explain) -> Outcome {
    let resources = match ex.server_resources().await {
        Ok(r) => r,
        Err(e) => return Outcome::failed(e.kubectl_message()),
    };
    let input = cmd.target.strip_suffix('.').unwrap_or(&cmd.target);
    let nodes = match jsonpath::action_fields(&format!(".{input}")) {
        Ok(n) => n,
        Err(e) => return Outcome::failed(format!("error: {e}")),
    };
    let Some(Some(resource)) = nodes.first() else {
        return Outcome::failed(
            "error: invalid jsonpath syntax, first node must be field node".into(),
        );
    };
    let found = resources.resources_for(resource);
    let Some(first) = found.first() else {
        return Outcome::failed(format!(
            "the server doesn't have a resource type {resource:?}"
        ));
    };
    let fields_of = |nodes: &[Option<String>], what: &str| -> Result<Vec<String>, String> {
        nodes
            .iter()
            .map(|n| {
                n.clone()
                    .ok_or_else(|| format!("invalid jsonpath syntax, {what}"))
            })
            .collect()
    };
    let (mut group, mut version, plural, fields) = if cmd.api_version.is_none() {
        let prefixed = found.iter().find(|l| {
            let gr = if l.group.is_empty() {
                l.resource.name.clone()
            } else {
                format!("{}.{}", l.resource.name, l.group)
            };
            cmd.target.starts_with(&gr)
        });
        let chosen = prefixed.unwrap_or(first);
        let fields = match prefixed {
            Some(l) => {
                let gr_len = if l.group.is_empty() {
                    l.resource.name.len()
                } else {
                    l.resource.name.len() + 1 + l.group.len()
                };
                let suffix = &cmd.target[gr_len..];
                if suffix.is_empty() {
                    Ok(Vec::new())
                } else {
                    let suffix = suffix.strip_suffix('.').unwrap_or(suffix);
                    match jsonpath::action_fields(&format!(".{suffix}")) {
                        Ok(n) if n.is_empty() => Ok(Vec::new()),
                        Ok(n) => fields_of(&n[1..], "first node must be field node"),
                        Err(e) => Err(e),
                    }
                }
            }
            None => fields_of(&nodes[1..], "first node must be field node"),
        };
        (
            chosen.group.to_string(),
            chosen.version.to_string(),
            chosen.resource.name.clone(),
            fields,
        )
    } else {
        (
            first.group.to_string(),
            first.version.to_string(),
            first.resource.name.clone(),
            fields_of(&nodes[1..], "all nodes must be field nodes"),
        )
    };
    let fields = match fields {
        Ok(f) => f,
        Err(e) => return Outcome::failed(format!("error: {e}")),
    };
    if let Some(gv) = &cmd.api_version {
        match gv.split_once('/') {
            Some((g, v)) => (group, version) = (g.to_string(), v.to_string()),
            None => (group, version) = (String::new(), gv.clone()),
        }
    }
    let gvr = Gvr {
        group,
        version,
        resource: plural,
    };
    let document = match openapi_document(ex, &gvr).await {
        Ok(d) => d,
        Err(message) => return Outcome::failed(message),
    };
    let mut out = String::new();
    match render(&document, &gvr, &fields, cmd.recursive, &mut out) {
        Ok(()) => Outcome {
            output: out,
            error: None,
            exit_code: 0,
        },
        Err(e) => Outcome {
            output: out,
            error: Some(format!("{e}\n")),
            exit_code: 1,
        },
    }
}

/// A group, version and resource.
struct Gvr {
    group: String,
    version: String,
    resource: String,
}

/// The OpenAPI v3 document of the resource's group/version.
async fn openapi_document(ex: &Executor, gvr: &Gvr) -> Result<Value, String> {
    let index = api::get(&ex.client, "/openapi/v3", api::ACCEPT_JSON, None)
        .await
        .map_err(|e| e.kubectl_message())?
        .body;
    let key = if gvr.group.is_empty() {
        format!("api/{}", gvr.version)
    } else {
        format!("apis/{}/{}", gvr.group, gvr.version)
    };
    let Some(url) = index
        .pointer(&format!(
            "/paths/{}",
            key.replace('~', "~0").replace('/', "~1")
        ))
        .and_then(|p| p.get("serverRelativeURL"))
        .and_then(Value::as_str)
    else {
        return Err(format!(
            "error: couldn't find resource for \"{}\"",
            go_gvr(gvr)
        ));
    };
    api::get(&ex.client, url, api::ACCEPT_JSON, None)
        .await
        .map(|r| r.body)
        .map_err(|e| {
            format!(
                "error: failed to fetch openapi schema for {key}: {}",
                e.kubectl_message()
            )
        })
}

/// `%v` of a `schema.GroupVersionResource` (its `String()`): `apps/v1, Resource=deployments`.
fn go_gvr(gvr: &Gvr) -> String {
    api::gvr_string(&gvr.group, &gvr.version, &gvr.resource)
}

// === the plaintext template ===

type Render = Result<(), String>;

/// The template's entry point: the GVK header, then the schema.
fn render(doc: &Value, gvr: &Gvr, fields: &[String], recursive: bool, out: &mut String) -> Render {
    let prefix = if gvr.group.is_empty() {
        "/api".to_string()
    } else {
        format!("/apis/{}", gvr.group)
    };
    let (v, r) = (&gvr.version, &gvr.resource);
    let search = [
        format!("{prefix}/{v}/{r}"),
        format!("{prefix}/{v}/{r}/{{name}}"),
        format!("{prefix}/{v}/namespaces/{{namespace}}/{r}"),
        format!("{prefix}/{v}/namespaces/{{namespace}}/{r}/{{name}}"),
    ];
    // `with $gvk = …` assigns before it tests, so the last operation looked at wins.
    let mut gvk: Option<&Value> = None;
    for path in &search {
        let Some(element) = doc
            .get("paths")
            .and_then(|p| p.get(path))
            .filter(|e| truthy(e))
        else {
            continue;
        };
        for method in ["get", "post", "put", "patch", "delete"] {
            if let Some(op) = element.get(method).filter(|o| truthy(o)) {
                gvk = op
                    .get("x-kubernetes-group-version-kind")
                    .filter(|g| truthy(g));
                if gvk.is_some() {
                    break;
                }
            }
        }
    }
    let Some(gvk) = gvk else {
        return Err(format!(
            "error: GVR ({}) not found in OpenAPI schema",
            gvr_string(gvr)
        ));
    };
    let text = |k: &str| gvk.get(k).map(go_print).unwrap_or_default();
    if gvk.get("group").is_some_and(truthy) {
        out.push_str(&format!("GROUP:      {}\n", text("group")));
    }
    out.push_str(&format!("KIND:       {}\n", text("kind")));
    out.push_str(&format!("VERSION:    {}\n", text("version")));
    out.push('\n');
    let schema = schema_for(doc, gvk, fields, recursive)?;
    if schema.is_empty() {
        return Err(format!(
            "error: GVK {} not found in OpenAPI schema",
            go_print(gvk)
        ));
    }
    out.push_str(&schema);
    out.push('\n');
    Ok(())
}

/// `schema.GroupVersionResource.String()`.
fn gvr_string(gvr: &Gvr) -> String {
    format!("{}/{}, Resource={}", gvr.group, gvr.version, gvr.resource)
}

/// `define "schema"`.
fn schema_for(
    doc: &Value,
    gvk: &Value,
    fields: &[String],
    recursive: bool,
) -> Result<String, String> {
    let Some(schemas) = doc
        .pointer("/components/schemas")
        .and_then(Value::as_object)
    else {
        return Ok(String::new());
    };
    let mut names: Vec<&String> = schemas.keys().collect();
    names.sort();
    for name in names {
        let schema = &schemas[name.as_str()];
        let matches = schema
            .get("x-kubernetes-group-version-kind")
            .and_then(Value::as_array)
            .is_some_and(|l| l.iter().any(|g| g == gvk));
        if matches {
            let ctx = Ctx {
                doc,
                fields,
                recursive,
                history: Vec::new(),
            };
            let mut out = String::new();
            output(&ctx, schema, &mut out)?;
            if out.is_empty() {
                let field = fields.last().cloned().unwrap_or_default();
                return Err(format!("error: field {} does not exist", go_quote(&field)));
            }
            return Ok(out);
        }
    }
    Ok(String::new())
}

/// The template's context as `output` passes it on.
#[derive(Clone)]
struct Ctx<'a> {
    doc: &'a Value,
    fields: &'a [String],
    recursive: bool,
    history: Vec<String>,
}

/// `define "output"`.
fn output(ctx: &Ctx<'_>, schema: &Value, out: &mut String) -> Render {
    let ref_string = ref_of(schema);
    let mut next = ctx.clone();
    next.history.push(ref_string.clone());
    let resolved = resolve_or(ctx.doc, &ref_string, schema);
    if ctx.fields.is_empty() {
        out.push_str("DESCRIPTION:\n");
        let description = description(ctx.doc, resolved);
        let description = if description.is_empty() {
            "<empty>".to_string()
        } else {
            description
        };
        out.push_str(&indent(4, &wrap(76, &description)));
        out.push('\n');
        let docs = external_docs(resolved);
        if !docs.is_empty() {
            out.push('\n');
            out.push_str(&docs);
        }
        let mut list = String::new();
        field_list(ctx.doc, resolved, 1, ctx.recursive, &[], &mut list)?;
        if !list.is_empty() {
            out.push_str("FIELDS:\n");
            out.push_str(&list);
        }
        return Ok(());
    }
    if !ref_string.is_empty() && ctx.history.contains(&ref_string) {
        return Ok(());
    }
    let first = &ctx.fields[0];
    if let Some(sub) = resolved
        .get("properties")
        .filter(|p| truthy(p))
        .and_then(|p| p.get(first))
        .filter(|s| truthy(s))
    {
        if ctx.fields.len() == 1 {
            out.push_str(&format!("FIELD: {first} <{}>\n", type_guess(ctx.doc, sub)?));
            out.push_str(&extract_enum(sub, true, -1, 0));
            out.push('\n');
            out.push('\n');
        }
        let next = Ctx {
            history: Vec::new(),
            fields: &ctx.fields[1..],
            ..next
        };
        return output(&next, sub, out);
    }
    if let Some(items) = resolved.get("items").filter(|i| truthy(i)) {
        return output(&next, items, out);
    }
    if let Some(ap) = map_value(resolved) {
        return output(&next, ap, out);
    }
    for sub in resolved
        .get("allOf")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let mut o = String::new();
        output(&next, sub, &mut o)?;
        if !o.is_empty() {
            out.push_str(&o);
            break;
        }
    }
    Ok(())
}

/// `define "fieldList"`.
fn field_list(
    doc: &Value,
    schema: &Value,
    level: usize,
    recursive: bool,
    history: &[String],
    out: &mut String,
) -> Render {
    let ref_string = ref_of(schema);
    if !ref_string.is_empty() && history.contains(&ref_string) {
        return Ok(());
    }
    let mut next_history = history.to_vec();
    next_history.push(ref_string.clone());
    let resolved = resolve_or(doc, &ref_string, schema);
    if let Some(props) = resolved.get("properties").and_then(Value::as_object) {
        let mut names: Vec<&String> = props.keys().collect();
        names.sort();
        for name in names {
            field_detail(doc, resolved, name, recursive, level, out)?;
            if recursive {
                field_list(
                    doc,
                    &props[name.as_str()],
                    level + 1,
                    recursive,
                    &next_history,
                    out,
                )?;
            }
        }
    }
    for sub in resolved
        .get("allOf")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        field_list(doc, sub, level, recursive, &next_history, out)?;
    }
    if let Some(items) = resolved.get("items").filter(|i| truthy(i)) {
        field_list(doc, items, level, recursive, &next_history, out)?;
    }
    if let Some(ap) = map_value(resolved) {
        field_list(doc, ap, level, recursive, &next_history, out)?;
    }
    Ok(())
}

/// `define "fieldDetail"`.
fn field_detail(
    doc: &Value,
    schema: &Value,
    name: &str,
    short: bool,
    level: usize,
    out: &mut String,
) -> Render {
    let amount = level * 2;
    let field = schema
        .get("properties")
        .and_then(|p| p.get(name))
        .unwrap_or(&Value::Null);
    out.push_str(&indent(amount, name));
    out.push('\t');
    out.push_str(&format!("<{}>", type_guess(doc, field)?));
    let required = schema
        .get("required")
        .and_then(Value::as_array)
        .is_some_and(|r| r.iter().any(|n| n.as_str() == Some(name)));
    if required {
        out.push_str(" -required-");
    }
    out.push_str(&extract_enum(field, false, 4, amount));
    out.push('\n');
    if !short {
        let description = field
            .get("description")
            .filter(|d| truthy(d))
            .map(go_print)
            .unwrap_or_else(|| "<no description>".into());
        out.push_str(&indent(amount + 2, &wrap(78 - amount, &description)));
        out.push('\n');
        if let Some(docs) = field.get("externalDocs").filter(|d| truthy(d)) {
            out.push('\n');
            out.push_str(&indent(amount + 2, "EXTERNAL DOCS:"));
            out.push('\n');
            if let Some(d) = docs.get("description").filter(|d| truthy(d)) {
                out.push_str(&indent(amount + 4, &wrap(76 - amount, &go_print(d))));
                out.push('\n');
            }
            if let Some(u) = docs.get("url").filter(|u| truthy(u)) {
                out.push_str(&indent(amount + 4, &format!("URL: {}", go_print(u))));
                out.push('\n');
            }
        }
        out.push('\n');
    }
    Ok(())
}

/// `define "description"`.
fn description(doc: &Value, schema: &Value) -> String {
    let mut out = String::new();
    let resolved = resolve_or(doc, &ref_of(schema), schema);
    if !truthy(resolved) {
        return out;
    }
    if let Some(d) = resolved.get("description").filter(|d| truthy(d)) {
        out.push_str(&go_print(d));
        out.push('\n');
    }
    for sub in resolved
        .get("allOf")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        out.push_str(&description(doc, sub));
    }
    if let Some(items) = resolved.get("items").filter(|i| truthy(i)) {
        out.push_str(&description(doc, items));
    }
    if let Some(ap) = map_value(resolved) {
        out.push_str(&description(doc, ap));
    }
    out
}

/// `define "externalDocs"`.
fn external_docs(schema: &Value) -> String {
    let mut out = String::new();
    if let Some(docs) = schema.get("externalDocs").filter(|d| truthy(d)) {
        out.push_str("EXTERNAL DOCS:\n");
        if let Some(d) = docs.get("description").filter(|d| truthy(d)) {
            out.push_str(&indent(4, &wrap(76, &go_print(d))));
            out.push('\n');
        }
        if let Some(u) = docs.get("url").filter(|u| truthy(u)) {
            out.push_str(&indent(4, &format!("URL: {}", go_print(u))));
            out.push('\n');
        }
    }
    out
}

/// `define "typeGuess"`.
fn type_guess(doc: &Value, schema: &Value) -> Result<String, String> {
    if !truthy(schema) {
        return Err("expected schema argument to subtemplate 'typeguess'".into());
    }
    if let Some(items) = schema.get("items").filter(|i| truthy(i)) {
        return Ok(format!("[]{}", type_guess(doc, items)?));
    }
    if let Some(ap) = map_value(schema) {
        return Ok(format!("map[string]{}", type_guess(doc, ap)?));
    }
    let all_of = schema.get("allOf").filter(|a| truthy(a));
    if let Some(Value::Array(all)) = all_of
        && !schema.get("properties").is_some_and(truthy)
        && all.len() == 1
    {
        return type_guess(doc, &all[0]);
    }
    let type_of = |s: &Value| s.get("type").filter(|t| truthy(t)).map(go_print);
    if let Some(r) = schema.get("$ref").filter(|r| truthy(r)) {
        let reference = go_print(r);
        let target = resolve_ref(doc, &reference).filter(|t| truthy(t));
        return Ok(match target.and_then(type_of) {
            Some(t) if t != "object" => t,
            _ => {
                let name = reference.rsplit('/').next().unwrap_or_default();
                match name.rsplit('.').next() {
                    Some(last) if !last.is_empty() => last.to_string(),
                    _ => "Object".into(),
                }
            }
        });
    }
    Ok(match type_of(schema) {
        Some(t) if t == "object" => "Object".into(),
        Some(t) => t,
        None => "Object".into(),
    })
}

/// `define "extractEnum"`.
fn extract_enum(schema: &Value, long_view: bool, limit: i64, amount: usize) -> String {
    let mut out = String::new();
    let Some(Value::Array(values)) = schema.get("enum").filter(|e| truthy(e)) else {
        return out;
    };
    if long_view {
        out.push_str("ENUM:");
    } else {
        out.push('\n');
        out.push_str(&" ".repeat(amount));
        out.push_str("enum: ");
    }
    for (i, v) in values.iter().enumerate() {
        if limit > -1 && i as i64 >= limit {
            out.push_str(", ....");
            break;
        }
        if i > 0 && !long_view {
            out.push_str(", ");
        } else if long_view {
            out.push_str("\n    ");
        }
        match v {
            Value::String(s) if s.is_empty() => out.push_str("\"\""),
            v => out.push_str(&go_print(v)),
        }
    }
    out
}

// === template helpers ===

/// `or (index $.schema "$ref") ""`.
fn ref_of(schema: &Value) -> String {
    schema
        .get("$ref")
        .filter(|r| truthy(r))
        .map(go_print)
        .unwrap_or_default()
}

/// `or (resolveRef $ref $.Document) $.schema`.
fn resolve_or<'a>(doc: &'a Value, reference: &str, schema: &'a Value) -> &'a Value {
    resolve_ref(doc, reference)
        .filter(|r| truthy(r))
        .unwrap_or(schema)
}

/// kubectl's `resolveRef`: a fragment-only JSON reference (`#/components/schemas/X`).
fn resolve_ref<'a>(doc: &'a Value, reference: &str) -> Option<&'a Value> {
    let fragment = reference.strip_prefix('#')?;
    let fragment =
        url::form_urlencoded::parse(format!("x={}", fragment.replace('+', "%2B")).as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
    let mut cur = doc;
    for part in fragment.split('/').filter(|p| !p.is_empty()) {
        cur = cur.get(part).filter(|v| v.is_object())?;
    }
    cur.is_object().then_some(cur)
}

/// `and .additionalProperties (not (eq "bool" (printf "%T" .additionalProperties)))`.
fn map_value(schema: &Value) -> Option<&Value> {
    schema
        .get("additionalProperties")
        .filter(|a| truthy(a) && !a.is_boolean())
}

/// Go template truth: false, 0, nil and empty strings, lists and maps are false.
fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// What `{{ . }}` prints for a decoded JSON value.
fn go_print(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => gojson::format_g(n.as_f64().unwrap_or_default()),
        Value::Object(m) => go_map(m),
        other => go_sprint(other),
    }
}

fn go_map(m: &Map<String, Value>) -> String {
    go_sprint(&Value::Object(m.clone()))
}

/// kubectl's `indent` template function.
fn indent(amount: usize, s: &str) -> String {
    let pad = " ".repeat(amount);
    format!("{pad}{}", s.replace('\n', &format!("\n{pad}")))
}

/// `github.com/mitchellh/go-wordwrap`'s `WrapString`, as kubectl's `wrap` calls it.
fn wrap(limit: usize, s: &str) -> String {
    if limit == 0 {
        return s.to_string();
    }
    let mut buf = String::with_capacity(s.len());
    let mut current = 0usize;
    let (mut word, mut space) = (String::new(), String::new());
    let (mut word_len, mut space_len) = (0usize, 0usize);
    for c in s.chars() {
        if c == '\n' {
            // Go updates its column here too, but resets it right after the newline.
            if word.is_empty() {
                if current + space_len <= limit {
                    buf.push_str(&space);
                }
            } else {
                buf.push_str(&space);
                buf.push_str(&word);
                word.clear();
                word_len = 0;
            }
            space.clear();
            space_len = 0;
            buf.push(c);
            current = 0;
        } else if c.is_whitespace() && c != '\u{a0}' {
            if space.is_empty() || !word.is_empty() {
                current += space_len + word_len;
                buf.push_str(&space);
                space.clear();
                space_len = 0;
                buf.push_str(&word);
                word.clear();
                word_len = 0;
            }
            space.push(c);
            space_len += 1;
        } else {
            word.push(c);
            word_len += 1;
            if current + word_len + space_len > limit && word_len < limit {
                buf.push('\n');
                current = 0;
                space.clear();
                space_len = 0;
            }
        }
    }
    if word.is_empty() {
        if current + space_len <= limit {
            buf.push_str(&space);
        }
    } else {
        buf.push_str(&space);
        buf.push_str(&word);
    }
    buf
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc() -> Value {
        json!({
            "paths": {
                "/apis/testbed.kubeline.dev/v1/namespaces/{namespace}/widgets": {
                    "get": {"x-kubernetes-group-version-kind": {"group": "testbed.kubeline.dev", "kind": "Widget", "version": "v1"}}
                }
            },
            "components": {"schemas": {
                "dev.kubeline.testbed.v1.Widget": {
                    "type": "object",
                    "x-kubernetes-group-version-kind": [{"group": "testbed.kubeline.dev", "kind": "Widget", "version": "v1"}],
                    "properties": {
                        "spec": {"type": "object", "description": "What the widget should be.", "required": ["color"],
                                 "properties": {"color": {"type": "string", "enum": ["red", "", "blue"]},
                                                "sizes": {"type": "array", "items": {"type": "integer"}},
                                                "meta": {"allOf": [{"$ref": "#/components/schemas/Meta"}]}}},
                        "kind": {"type": "string"}
                    }
                },
                "Meta": {"type": "object", "description": "Meta data.", "properties": {"name": {"type": "string"}}}
            }}
        })
    }

    fn gvr() -> Gvr {
        Gvr {
            group: "testbed.kubeline.dev".into(),
            version: "v1".into(),
            resource: "widgets".into(),
        }
    }

    #[test]
    fn resources_render_like_the_template() {
        let mut out = String::new();
        render(&doc(), &gvr(), &[], false, &mut out).unwrap();
        assert_eq!(
            out,
            "GROUP:      testbed.kubeline.dev\nKIND:       Widget\nVERSION:    v1\n\n\
             DESCRIPTION:\n    <empty>\nFIELDS:\n  kind\t<string>\n    <no description>\n\n  spec\t<Object>\n    What the widget should be.\n\n\n"
        );
        let mut out = String::new();
        render(&doc(), &gvr(), &["spec".into()], true, &mut out).unwrap();
        assert!(out.contains("FIELD: spec <Object>\n\n\nDESCRIPTION:\n    What the widget should be.\n    \nFIELDS:\n  color\t<string> -required-\n  enum: red, \"\", blue\n  meta\t<Meta>\n    name\t<string>\n  sizes\t<[]integer>\n"), "{out}");
    }

    #[test]
    fn missing_fields_fail_after_the_header() {
        let mut out = String::new();
        let err = render(
            &doc(),
            &gvr(),
            &["spec".into(), "nope".into()],
            false,
            &mut out,
        )
        .unwrap_err();
        assert_eq!(err, "error: field \"nope\" does not exist");
        assert_eq!(
            out,
            "GROUP:      testbed.kubeline.dev\nKIND:       Widget\nVERSION:    v1\n\n"
        );
    }

    #[test]
    fn words_wrap_like_go_wordwrap() {
        assert_eq!(wrap(10, "aaa bbb ccc ddd"), "aaa bbb\nccc ddd");
        assert_eq!(wrap(5, "abcdefgh ij"), "abcdefgh\nij");
        assert_eq!(indent(2, "a\nb"), "  a\n  b");
    }
}
