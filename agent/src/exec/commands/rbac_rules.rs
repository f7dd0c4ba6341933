//! RBAC policy rules as kubectl presents them, shared by `auth can-i --list` and
//! `describe role|clusterrole`: broken down to one verb, resource and name each
//! (`rbac.BreakdownRule`), compacted again (`rbac.CompactRules`), sorted by the rule's Go
//! `String()`, and their resources printed as `resource.group[/subresource]`.

use k8s_openapi::api::rbac::v1::PolicyRule;

/// A policy rule with every list present (Go's nil and empty slices print alike).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Rule {
    pub verbs: Vec<String>,
    pub api_groups: Vec<String>,
    pub resources: Vec<String>,
    pub resource_names: Vec<String>,
    pub non_resource_urls: Vec<String>,
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
            go_list(&self.verbs),
            go_list(&self.api_groups),
            go_list(&self.resources),
            go_list(&self.resource_names),
            go_list(&self.non_resource_urls)
        )
    }
}

/// `fmt.Sprintf("%v", []string)`.
pub(super) fn go_list(items: &[String]) -> String {
    format!("[{}]", items.join(" "))
}

/// The rules as kubectl lists them: broken down, compacted, and stably sorted by `String()`.
pub(super) fn normalize(rules: &[Rule]) -> Vec<Rule> {
    let broken: Vec<Rule> = rules.iter().flat_map(breakdown).collect();
    let mut rules = compact(broken);
    rules.sort_by_cached_key(Rule::go_string);
    rules
}

/// `rbac.BreakdownRule`: one rule per group, resource, verb and name.
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

/// `describe.CombineResourceGroup`: `resource.group[/subresource]`.
pub(super) fn combine_resource_group(resources: &[String], groups: &[String]) -> String {
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
        let rules = normalize(&[rule]);
        let cells: Vec<String> = rules
            .iter()
            .map(|r| combine_resource_group(&r.resources, &r.api_groups))
            .collect();
        assert_eq!(
            cells,
            ["deployments", "pods", "deployments.apps", "pods.apps"]
        );
        assert!(rules.iter().all(|r| r.verbs == s(&["get", "list"])));
    }

    #[test]
    fn resource_groups_combine() {
        assert_eq!(
            combine_resource_group(&s(&["pods/log"]), &s(&[""])),
            "pods/log"
        );
        assert_eq!(
            combine_resource_group(&s(&["deployments/scale"]), &s(&["apps"])),
            "deployments.apps/scale"
        );
        assert_eq!(
            combine_resource_group(&s(&["pods/log"]), &s(&["x.io"])),
            "pods.x.io/log"
        );
        assert_eq!(combine_resource_group(&[], &s(&["x"])), "");
    }
}
