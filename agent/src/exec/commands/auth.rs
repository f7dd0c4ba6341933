//! `auth can-i` (kubectl `pkg/cmd/auth/cani.go`): a `SelfSubjectAccessReview` answers one
//! question with `yes` (exit 0) or `no` (exit 1); `--list` prints the rules of a
//! `SelfSubjectRulesReview` broken down, compacted and sorted as kubectl does.
//!
//! Both reviews are created with POST, which is how the API server is asked; they are not
//! stored and change nothing.

use super::rbac_rules::{Rule, combine_resource_group, go_list, normalize};
use crate::exec::api::builder::{self, BuildError};
use crate::exec::api::discovery::warnings_first;
use crate::exec::api::{self, ApiError};
use crate::exec::{Executor, Outcome};
use kubeline_printers::go::tabwriter::TabWriter;
use kubeline_shared::command::{Auth, CanI};
use serde_json::{Value, json};

const REVIEWS: &str = "/apis/authorization.k8s.io/v1";

/// kubectl's known verbs; others get a warning.
const RESOURCE_VERBS: &[&str] = &[
    "get",
    "list",
    "watch",
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
    "use",
    "bind",
    "impersonate",
    "*",
    "approve",
    "sign",
    "escalate",
    "attest",
];
const NON_RESOURCE_VERBS: &[&str] = &[
    "get", "put", "post", "head", "options", "delete", "patch", "*",
];

pub(crate) async fn run(ex: &Executor, cmd: &Auth) -> Outcome {
    let warnings = match &cmd.check {
        CanI::Resource { resource, .. } if resource != "*" => {
            ex.shortcut_warnings(&[resource.to_lowercase().as_str()])
                .await
        }
        _ => Vec::new(),
    };
    warnings_first(&warnings, can_i(ex, cmd).await)
}

async fn can_i(ex: &Executor, cmd: &Auth) -> Outcome {
    let namespace = if cmd.all_namespaces {
        String::new()
    } else {
        cmd.namespace
            .clone()
            .unwrap_or_else(|| ex.default_namespace.to_string())
    };
    let mut warnings = String::new();
    let mut warn = |m: &str| {
        warnings.push_str("Warning: ");
        warnings.push_str(m);
        warnings.push('\n');
    };
    let result = match &cmd.check {
        CanI::List => {
            let review = json!({
                "kind": "SelfSubjectRulesReview",
                "apiVersion": "authorization.k8s.io/v1",
                "metadata": {},
                "spec": {"namespace": namespace},
            });
            match post(ex, "selfsubjectrulesreviews", &review).await {
                Ok(r) => {
                    let status = r.get("status").cloned().unwrap_or_default();
                    if status.get("incomplete").and_then(Value::as_bool) == Some(true) {
                        warn(&format!(
                            "the list may be incomplete: {}",
                            text(&status, "evaluationError")
                        ));
                    }
                    Ok((print_rules(&status, cmd.no_headers), 0))
                }
                Err(e) => Err(e),
            }
        }
        CanI::NonResource { verb, path } => {
            if !NON_RESOURCE_VERBS.contains(&verb.as_str()) {
                warn(&format!("verb '{verb}' is not a known verb\n"));
            }
            let attributes = json!({"nonResourceAttributes": {"path": path, "verb": verb}});
            check(ex, attributes).await
        }
        CanI::Resource {
            verb,
            resource,
            name,
            subresource,
        } => {
            let (group, plural, namespaced) = match resource_for(ex, resource).await {
                Ok(found) => found,
                Err(e) => return Outcome::failed(e.kubectl_message()),
            };
            if namespaced.is_none() && !["users", "groups"].contains(&resource.as_str()) {
                let lower = resource.to_lowercase();
                let (r, g) = split_group(&lower);
                if g.is_empty() {
                    warn(&format!("the server doesn't have a resource type '{r}'\n"));
                } else {
                    warn(&format!(
                        "the server doesn't have a resource type '{r}' in group '{g}'\n"
                    ));
                }
            }
            if !cmd.all_namespaces {
                if namespaced == Some(false) {
                    if group.is_empty() {
                        warn(&format!("resource '{plural}' is not namespace scoped\n"));
                    } else {
                        warn(&format!(
                            "resource '{plural}' is not namespace scoped in group '{group}'\n"
                        ));
                    }
                }
                if !RESOURCE_VERBS.contains(&verb.as_str()) {
                    warn(&format!("verb '{verb}' is not a known verb\n"));
                }
            }
            let mut attributes = serde_json::Map::new();
            let mut put = |k: &str, v: &str| {
                if !v.is_empty() {
                    attributes.insert(k.into(), Value::String(v.into()));
                }
            };
            put("namespace", &namespace);
            put("verb", verb);
            put("group", &group);
            put("resource", &plural);
            put("subresource", subresource.as_deref().unwrap_or_default());
            put("name", name.as_deref().unwrap_or_default());
            check(ex, json!({"resourceAttributes": attributes})).await
        }
    };
    match result {
        Ok((output, exit_code)) => Outcome {
            output: if cmd.quiet && cmd.check != CanI::List {
                String::new()
            } else {
                output
            },
            error: (!warnings.is_empty()).then_some(warnings),
            exit_code,
        },
        Err(e) => {
            warnings.push_str(&e.kubectl_message());
            warnings.push('\n');
            Outcome {
                output: String::new(),
                error: Some(warnings),
                exit_code: 1,
            }
        }
    }
}

/// kubectl's `resourceFor`: the group and plural of what was typed and whether it is
/// namespaced, or (`None`) the text itself when nothing matches.
async fn resource_for(
    ex: &Executor,
    arg: &str,
) -> Result<(String, String, Option<bool>), ApiError> {
    if arg == "*" {
        return Ok((String::new(), "*".into(), Some(true)));
    }
    match builder::resolve_one(ex, &arg.to_lowercase()).await {
        Ok(r) => Ok((r.group, r.resource, Some(r.namespaced))),
        Err(BuildError::Api(e)) => Err(e),
        Err(_) => Ok((String::new(), arg.to_string(), None)),
    }
}

/// apimachinery's `ParseResourceArg` without a version: `resource.group`.
fn split_group(arg: &str) -> (&str, &str) {
    arg.split_once('.').unwrap_or((arg, ""))
}

/// Creates a `SelfSubjectAccessReview` and prints its answer as kubectl does.
async fn check(ex: &Executor, spec: Value) -> Result<(String, i32), ApiError> {
    let review = json!({
        "kind": "SelfSubjectAccessReview",
        "apiVersion": "authorization.k8s.io/v1",
        "metadata": {},
        "spec": spec,
    });
    let response = post(ex, "selfsubjectaccessreviews", &review).await?;
    let status = response.get("status").cloned().unwrap_or_default();
    if status.get("allowed").and_then(Value::as_bool) == Some(true) {
        return Ok(("yes\n".into(), 0));
    }
    let mut out = String::from("no");
    for field in ["reason", "evaluationError"] {
        let v = text(&status, field);
        if !v.is_empty() {
            out.push_str(" - ");
            out.push_str(&v);
        }
    }
    out.push('\n');
    Ok((out, 1))
}

/// Creates a review object (`POST`) and returns the server's answer.
async fn post(ex: &Executor, resource: &str, body: &Value) -> Result<Value, ApiError> {
    let path = format!("{REVIEWS}/{resource}");
    let what = format!("post {resource}.authorization.k8s.io");
    Ok(api::post(&ex.client, &path, body, Some(&what)).await?.body)
}

// === --list ===

/// kubectl's `printStatus`: breakdown, compaction, a stable sort by `String()`, a table.
fn print_rules(status: &Value, no_headers: bool) -> String {
    let mut rules = Vec::new();
    for r in array(status, "resourceRules") {
        rules.push(Rule {
            verbs: strings(r, "verbs"),
            api_groups: strings(r, "apiGroups"),
            resources: strings(r, "resources"),
            resource_names: strings(r, "resourceNames"),
            non_resource_urls: Vec::new(),
        });
    }
    for r in array(status, "nonResourceRules") {
        rules.push(Rule {
            verbs: strings(r, "verbs"),
            non_resource_urls: strings(r, "nonResourceURLs"),
            ..Rule::default()
        });
    }
    let compact = normalize(&rules);
    let mut w = TabWriter::new();
    if !no_headers {
        w.write("Resources\tNon-Resource URLs\tResource Names\tVerbs\n");
    }
    for r in &compact {
        w.write(&format!(
            "{}\t{}\t{}\t{}\n",
            combine_resource_group(&r.resources, &r.api_groups),
            go_list(&r.non_resource_urls),
            go_list(&r.resource_names),
            go_list(&r.verbs)
        ));
    }
    w.flush();
    w.take_output()
}

fn array<'a>(v: &'a Value, key: &str) -> impl Iterator<Item = &'a Value> {
    v.get(key).and_then(Value::as_array).into_iter().flatten()
}

fn strings(v: &Value, key: &str) -> Vec<String> {
    array(v, key)
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect()
}

fn text(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_print_like_kubectl() {
        let status = json!({
            "resourceRules": [
                {"verbs": ["create"], "apiGroups": ["authorization.k8s.io"], "resources": ["selfsubjectaccessreviews"]},
                {"verbs": ["get", "list"], "apiGroups": ["", "apps"], "resources": ["pods", "deployments"]},
                {"verbs": ["watch"], "apiGroups": [""], "resources": ["pods"]},
                {"verbs": ["get"], "apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["a", "b"]},
            ],
            "nonResourceRules": [{"verbs": ["get"], "nonResourceURLs": ["/healthz", "/api"]}],
        });
        assert!(print_rules(&status, false).starts_with("Resources   "));
        let out = print_rules(&status, true);
        let lines: Vec<&str> = out.lines().map(str::trim_end).collect();
        assert_eq!(
            lines[0].split_whitespace().collect::<Vec<_>>(),
            [
                "selfsubjectaccessreviews.authorization.k8s.io",
                "[]",
                "[]",
                "[create]"
            ]
        );
        let cells = |l: &&str| l.split_whitespace().collect::<Vec<_>>().join(" ");
        let lines: Vec<String> = lines.iter().map(cells).collect();
        for want in [
            "configmaps [] [a] [get]",
            "configmaps [] [b] [get]",
            "pods [] [] [get list watch]",
            "deployments.apps [] [] [get list]",
            "[/api] [] [get]",
        ] {
            assert!(lines.iter().any(|l| l == want), "{want}: {lines:?}");
        }
        assert!(out.contains("deployments.apps"));
        assert!(out.contains("[/api]"));
    }
}
