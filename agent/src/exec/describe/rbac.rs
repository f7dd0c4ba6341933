//! Role, ClusterRole, RoleBinding and ClusterRoleBinding.
//!
//! Roles print their rules broken down to one verb, resource and name each, compacted again
//! (kubectl's `rbac.BreakdownRule` and `rbac.CompactRules`) and sorted by the rule's Go
//! `String()`.

use chrono::{DateTime, Utc};
use k8s_openapi::api::rbac::v1::{PolicyRule, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Deserialize;
use serde_json::Value;

use super::decode;
use super::writer::{Writer, annotations_multiline, go_strings, labels_multiline};
use crate::exec::api::ApiError;

/// A rule with every list present (Go's nil and empty slices print alike).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Rule {
    verbs: Vec<String>,
    api_groups: Vec<String>,
    resources: Vec<String>,
    resource_names: Vec<String>,
    non_resource_urls: Vec<String>,
}

impl From<&PolicyRule> for Rule {
    fn from(r: &PolicyRule) -> Self {
        Self {
            verbs: r.verbs.clone(),
            api_groups: r.api_groups.clone().unwrap_or_default(),
            resources: r.resources.clone().unwrap_or_default(),
            resource_names: r.resource_names.clone().unwrap_or_default(),
            non_resource_urls: r.non_resource_urls.clone().unwrap_or_default(),
        }
    }
}

impl Rule {
    /// The generated `PolicyRule.String()`, which kubectl sorts by.
    fn go_string(&self) -> String {
        format!(
            "&PolicyRule{{Verbs:{},APIGroups:{},Resources:{},ResourceNames:{},NonResourceURLs:{},}}",
            go_strings(&self.verbs),
            go_strings(&self.api_groups),
            go_strings(&self.resources),
            go_strings(&self.resource_names),
            go_strings(&self.non_resource_urls)
        )
    }
}

/// `rbac.BreakdownRule`.
fn breakdown(rule: &Rule) -> Vec<Rule> {
    let mut out = Vec::new();
    for group in &rule.api_groups {
        for resource in &rule.resources {
            for verb in &rule.verbs {
                let one = |names: Vec<String>| Rule {
                    api_groups: vec![group.clone()],
                    resources: vec![resource.clone()],
                    verbs: vec![verb.clone()],
                    resource_names: names,
                    non_resource_urls: Vec::new(),
                };
                if rule.resource_names.is_empty() {
                    out.push(one(Vec::new()));
                } else {
                    out.extend(rule.resource_names.iter().map(|n| one(vec![n.clone()])));
                }
            }
        }
    }
    for url in &rule.non_resource_urls {
        for verb in &rule.verbs {
            out.push(Rule {
                verbs: vec![verb.clone()],
                non_resource_urls: vec![url.clone()],
                ..Rule::default()
            });
        }
    }
    out
}

/// `rbac.CompactRules`: simple rules (one group, one resource, at most one name) on the same
/// group, resource and name merge their verbs; the others come first, unchanged. kubectl
/// collects the simple ones in a Go map; the stable sort by `String()` that follows makes its
/// order irrelevant.
fn compact(rules: Vec<Rule>) -> Vec<Rule> {
    type Key = (String, String, Option<String>);
    let mut out = Vec::new();
    let mut simple: Vec<(Key, Rule)> = Vec::new();
    for rule in rules {
        let is_simple = rule.resource_names.len() <= 1
            && rule.non_resource_urls.is_empty()
            && rule.api_groups.len() == 1
            && rule.resources.len() == 1;
        if !is_simple {
            out.push(rule);
            continue;
        }
        let key = (
            rule.api_groups[0].clone(),
            rule.resources[0].clone(),
            rule.resource_names.first().cloned(),
        );
        match simple.iter_mut().find(|(k, _)| *k == key) {
            Some((_, existing)) => {
                for verb in rule.verbs {
                    if !existing.verbs.contains(&verb) {
                        existing.verbs.push(verb);
                    }
                }
            }
            None => simple.push((key, rule)),
        }
    }
    out.extend(simple.into_iter().map(|(_, r)| r));
    out
}

/// `CombineResourceGroup`: `resource.group[/subresource]`.
fn combine_resource_group(resources: &[String], groups: &[String]) -> String {
    let Some(first) = resources.first() else {
        return String::new();
    };
    let (resource, sub) = match first.split_once('/') {
        Some((r, s)) => (r, Some(s)),
        None => (first.as_str(), None),
    };
    let mut out = resource.to_string();
    if let Some(g) = groups.first().filter(|g| !g.is_empty()) {
        out.push('.');
        out.push_str(g);
    }
    if let Some(s) = sub {
        out.push('/');
        out.push_str(s);
    }
    out
}

/// The fields of a Role or ClusterRole kubectl prints.
#[derive(Deserialize)]
struct AnyRole {
    #[serde(default)]
    metadata: ObjectMeta,
    #[serde(default)]
    rules: Option<Vec<PolicyRule>>,
}

/// A Role or a ClusterRole (they print alike).
pub(super) fn role(obj: Value, now: DateTime<Utc>) -> Result<String, ApiError> {
    let role: AnyRole = decode(obj)?;
    let rules: Vec<Rule> = role.rules.iter().flatten().map(Rule::from).collect();
    let broken: Vec<Rule> = rules.iter().flat_map(breakdown).collect();
    let mut rules = compact(broken);
    rules.sort_by_cached_key(Rule::go_string);

    let mut w = Writer::new(now);
    w.write(
        0,
        &format!(
            "Name:\t{}\n",
            role.metadata.name.as_deref().unwrap_or_default()
        ),
    );
    labels_multiline(&mut w, "Labels", role.metadata.labels.as_ref());
    annotations_multiline(&mut w, "Annotations", role.metadata.annotations.as_ref());
    w.write(0, "PolicyRule:\n");
    w.write(1, "Resources\tNon-Resource URLs\tResource Names\tVerbs\n");
    w.write(1, "---------\t-----------------\t--------------\t-----\n");
    for r in &rules {
        w.write(
            1,
            &format!(
                "{}\t{}\t{}\t{}\n",
                combine_resource_group(&r.resources, &r.api_groups),
                go_strings(&r.non_resource_urls),
                go_strings(&r.resource_names),
                go_strings(&r.verbs)
            ),
        );
    }
    Ok(w.finish())
}

/// The fields of a RoleBinding or ClusterRoleBinding kubectl prints.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AnyBinding {
    #[serde(default)]
    metadata: ObjectMeta,
    role_ref: RoleRef,
    #[serde(default)]
    subjects: Option<Vec<Subject>>,
}

/// A RoleBinding or a ClusterRoleBinding (they print alike).
pub(super) fn binding(obj: Value, now: DateTime<Utc>) -> Result<String, ApiError> {
    let b: AnyBinding = decode(obj)?;
    let mut w = Writer::new(now);
    w.write(
        0,
        &format!(
            "Name:\t{}\n",
            b.metadata.name.as_deref().unwrap_or_default()
        ),
    );
    labels_multiline(&mut w, "Labels", b.metadata.labels.as_ref());
    annotations_multiline(&mut w, "Annotations", b.metadata.annotations.as_ref());
    w.write(0, "Role:\n");
    w.write(1, &format!("Kind:\t{}\n", b.role_ref.kind));
    w.write(1, &format!("Name:\t{}\n", b.role_ref.name));
    w.write(0, "Subjects:\n");
    w.write(1, "Kind\tName\tNamespace\n");
    w.write(1, "----\t----\t---------\n");
    for s in b.subjects.iter().flatten() {
        w.write(
            1,
            &format!(
                "{}\t{}\t{}\n",
                s.kind,
                s.name,
                s.namespace.as_deref().unwrap_or_default()
            ),
        );
    }
    Ok(w.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn rules_break_down_compact_and_sort() {
        let rule = Rule {
            verbs: s(&["get", "list"]),
            api_groups: s(&["", "apps"]),
            resources: s(&["pods", "deployments"]),
            ..Rule::default()
        };
        let mut rules = compact(breakdown(&rule));
        rules.sort_by_cached_key(Rule::go_string);
        let cells: Vec<String> = rules
            .iter()
            .map(|r| combine_resource_group(&r.resources, &r.api_groups))
            .collect();
        assert_eq!(
            cells,
            ["deployments", "pods", "deployments.apps", "pods.apps"]
        );
        assert!(rules.iter().all(|r| r.verbs == s(&["get", "list"])));
        assert_eq!(
            combine_resource_group(&s(&["pods/log"]), &s(&["x.io"])),
            "pods.x.io/log"
        );
    }
}
