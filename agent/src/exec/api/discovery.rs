//! Resource discovery and kubectl's rules for turning a typed name into a resource.
//!
//! The data comes from aggregated discovery (`/api` and `/apis` with the `APIGroupDiscoveryList`
//! media type, two requests) or, for servers without it, from the legacy per-group-version lists.
//! Resolution follows kubectl (cli-runtime `Builder.mappingFor`, client-go's shortcut expander and
//! `PriorityRESTMapper`):
//! 1. `resource.version.group` (two or more dots) is tried as a fully specified resource;
//! 2. `resource.group` / `resource`: short names are expanded first unless the text already is a
//!    resource's plural or singular name; then plural or singular names match case-insensitively;
//! 3. failing that, the text is tried as a kind (`Deployment`, `Deployment.apps`);
//! 4. among several matches the first in priority order wins: core `v1` first, then each group in
//!    discovery order with its preferred version first.

use crate::exec::Outcome;
use kubeline_shared::command::Targets;
use serde_json::Value;

/// One resource the API server serves (subresources are left out).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct ApiResource {
    /// API group; empty for the core group.
    pub group: String,
    /// API version within the group.
    pub version: String,
    /// Plural resource name, as used in URLs (`pods`).
    pub resource: String,
    /// Singular name (`pod`).
    pub singular: String,
    /// Kind (`Pod`).
    pub kind: String,
    /// Whether objects live in namespaces.
    pub namespaced: bool,
    /// Short names (`po`).
    pub short_names: Vec<String>,
    /// Categories (`all`).
    pub categories: Vec<String>,
}

impl ApiResource {
    /// `/api/v1` or `/apis/group/version`.
    pub(crate) fn path_prefix(&self) -> String {
        if self.group.is_empty() {
            format!("/api/{}", self.version)
        } else {
            format!("/apis/{}/{}", self.group, self.version)
        }
    }

    /// kubectl's lower-cased `GroupKind.String()`: `pod`, `deployment.apps`.
    pub(crate) fn kind_prefix(&self) -> String {
        if self.group.is_empty() {
            self.kind.to_lowercase()
        } else {
            format!("{}.{}", self.kind.to_lowercase(), self.group)
        }
    }

    /// Whether two mappings name the same resource (kubectl compares `mapping.Resource`).
    pub(crate) fn same_resource(&self, other: &ApiResource) -> bool {
        self.group == other.group
            && self.version == other.version
            && self.resource == other.resource
    }
}

/// Everything the API server serves, in kubectl's priority order.
#[derive(Debug, Clone, Default)]
pub(crate) struct Discovery {
    resources: Vec<ApiResource>,
}

/// A name that matched no resource; `resource` is what kubectl names in its error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NoMatch {
    pub resource: String,
}

impl Discovery {
    /// Parses aggregated discovery documents (`/api` then `/apis`), whose groups come in
    /// priority order and whose versions come preferred first.
    pub(crate) fn from_aggregated(docs: &[Value]) -> Self {
        let mut resources = Vec::new();
        for doc in docs {
            for group in items(doc, "items") {
                let group_name = str_at(group, &["metadata", "name"]);
                for version in items(group, "versions") {
                    let version_name = str_at(version, &["version"]);
                    for r in items(version, "resources") {
                        let resource = str_at(r, &["resource"]);
                        if resource.is_empty() || resource.contains('/') {
                            continue;
                        }
                        let kind = str_at(r, &["responseKind", "kind"]);
                        let singular = match str_at(r, &["singularResource"]) {
                            s if s.is_empty() => kind.to_lowercase(),
                            s => s,
                        };
                        resources.push(ApiResource {
                            group: group_name.clone(),
                            version: version_name.clone(),
                            resource,
                            singular,
                            kind,
                            namespaced: str_at(r, &["scope"]) == "Namespaced",
                            short_names: strings(r, "shortNames"),
                            categories: strings(r, "categories"),
                        });
                    }
                }
            }
        }
        Self { resources }
    }

    /// Parses legacy `APIResourceList`s, given in priority order.
    pub(crate) fn from_resource_lists(lists: &[Value]) -> Self {
        let mut resources = Vec::new();
        for list in lists {
            let gv = str_at(list, &["groupVersion"]);
            let (group, version) = match gv.split_once('/') {
                Some((g, v)) => (g.to_string(), v.to_string()),
                None => (String::new(), gv.clone()),
            };
            for r in items(list, "resources") {
                let name = str_at(r, &["name"]);
                if name.is_empty() || name.contains('/') {
                    continue;
                }
                let kind = str_at(r, &["kind"]);
                let singular = match str_at(r, &["singularName"]) {
                    s if s.is_empty() => kind.to_lowercase(),
                    s => s,
                };
                resources.push(ApiResource {
                    group: group.clone(),
                    version: version.clone(),
                    resource: name,
                    singular,
                    kind,
                    namespaced: r
                        .get("namespaced")
                        .and_then(Value::as_bool)
                        .unwrap_or(false),
                    short_names: strings(r, "shortNames"),
                    categories: strings(r, "categories"),
                });
            }
        }
        Self { resources }
    }

    /// kubectl's category expansion (`all` → `pods,services,...`): `resource` or
    /// `resource.group` for every resource in the category, in discovery order.
    pub(crate) fn expand_category(&self, name: &str) -> Option<Vec<String>> {
        let found: Vec<String> = self
            .resources
            .iter()
            .filter(|r| r.categories.iter().any(|c| c == name))
            .map(|r| {
                if r.group.is_empty() {
                    r.resource.clone()
                } else {
                    format!("{}.{}", r.resource, r.group)
                }
            })
            .collect();
        (!found.is_empty()).then_some(found)
    }

    /// Resolves what a user typed to a resource, as kubectl's `mappingFor` does.
    pub(crate) fn resolve(&self, arg: &str) -> Result<&ApiResource, NoMatch> {
        let (full, (resource, group)) = parse_resource_arg(arg);
        if let Some((resource, version, group)) = full
            && let Some(found) = self.resource_for(resource, version, group)
        {
            return Ok(found);
        }
        if let Some(found) = self.resource_for(resource, "", group) {
            return Ok(found);
        }
        let (full_kind, (kind, kind_group)) = parse_resource_arg(arg);
        if let Some((kind, version, group)) = full_kind
            && let Some(found) = self.kind_for(kind, version, group)
        {
            return Ok(found);
        }
        if let Some(found) = self.kind_for(kind, "", kind_group) {
            return Ok(found);
        }
        Err(NoMatch {
            resource: resource.to_string(),
        })
    }

    /// The warnings client-go's shortcut expander gives while kubectl resolves `arg`, e.g.
    /// `short name "ev" could also match lower priority resource events.events.k8s.io`: a
    /// short name that several resources (not merely several versions of one) have resolves
    /// to the first in priority order, and each other one is named once. kubectl prints them
    /// on stderr as `Warning: …` lines.
    pub(crate) fn shortcut_warnings(&self, arg: &str) -> Vec<String> {
        let (full, (resource, group)) = parse_resource_arg(arg);
        let mut out = Vec::new();
        if let Some((r, v, g)) = full {
            out.extend(self.ambiguous_shortcut(r, g));
            if self.resource_for(r, v, g).is_some() {
                return out;
            }
        }
        for w in self.ambiguous_shortcut(resource, group) {
            if !out.contains(&w) {
                out.push(w);
            }
        }
        out
    }

    /// `expandResourceShortcut`'s ambiguity warnings for one resource and group.
    fn ambiguous_shortcut(&self, resource: &str, group: &str) -> Vec<String> {
        let in_group = |r: &ApiResource| group.is_empty() || r.group == group;
        if self
            .resources
            .iter()
            .any(|r| in_group(r) && (r.resource == resource || r.singular == resource))
        {
            return Vec::new();
        }
        let mut first: Option<(&str, &str)> = None;
        let mut warned: Vec<(&str, &str)> = Vec::new();
        let mut out = Vec::new();
        for r in self.resources.iter().filter(|r| in_group(r)) {
            for short in &r.short_names {
                if short != resource {
                    continue;
                }
                let long = (r.group.as_str(), r.resource.as_str());
                match first {
                    None => first = Some(long),
                    Some(f) if f == long => {}
                    Some(_) if warned.contains(&long) => {}
                    Some(_) => {
                        warned.push(long);
                        let name = if r.group.is_empty() {
                            r.resource.clone()
                        } else {
                            format!("{}.{}", r.resource, r.group)
                        };
                        out.push(format!(
                            "short name {resource:?} could also match lower priority resource \
                             {name}"
                        ));
                    }
                }
            }
        }
        out
    }

    fn resource_for(&self, resource: &str, version: &str, group: &str) -> Option<&ApiResource> {
        let (resource, group) = self.expand_shortcut(resource, group);
        let lower = resource.to_lowercase();
        self.resources.iter().find(|r| {
            (group.is_empty() || r.group == group)
                && (version.is_empty() || r.version == version)
                && (r.resource == lower || r.singular == lower)
        })
    }

    fn kind_for(&self, kind: &str, version: &str, group: &str) -> Option<&ApiResource> {
        self.resources.iter().find(|r| {
            r.group == group
                && (version.is_empty() || r.version == version)
                && r.kind.eq_ignore_ascii_case(kind)
        })
    }

    /// client-go's `shortcutExpander.expandResourceShortcut`.
    fn expand_shortcut<'a>(&'a self, resource: &'a str, group: &'a str) -> (&'a str, &'a str) {
        let in_group = |r: &ApiResource| group.is_empty() || r.group == group;
        if self
            .resources
            .iter()
            .any(|r| in_group(r) && (r.resource == resource || r.singular == resource))
        {
            return (resource, group);
        }
        for r in self.resources.iter().filter(|r| in_group(r)) {
            if r.short_names.iter().any(|s| s == resource) {
                return (&r.resource, &r.group);
            }
        }
        if group.is_empty() {
            return (resource, group);
        }
        // "hpa.autoscal" finds "autoscaling": a group given as a prefix.
        for r in self.resources.iter().filter(|r| r.group.starts_with(group)) {
            if r.short_names.iter().any(|s| s == resource) {
                return (&r.resource, &r.group);
            }
        }
        (resource, group)
    }
}

impl crate::exec::Executor {
    /// [`Discovery::shortcut_warnings`] for each of `types` (each warning once), from the
    /// cached discovery data; none when discovery cannot be read.
    pub(crate) async fn shortcut_warnings(&self, types: &[&str]) -> Vec<String> {
        let Ok(discovery) = self.discovery(false).await else {
            return Vec::new();
        };
        let mut out: Vec<String> = Vec::new();
        for t in types {
            for w in discovery.shortcut_warnings(t) {
                if !out.contains(&w) {
                    out.push(w);
                }
            }
        }
        out
    }
}

/// The resource types named by `targets`, in order, each once.
pub(crate) fn target_types(targets: &Targets) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    match targets {
        Targets::Types(types) => out.extend(types.iter().map(String::as_str)),
        Targets::Names { resource, .. } => out.push(resource),
        Targets::Pairs(pairs) => out.extend(pairs.iter().map(|p| p.resource.as_str())),
    }
    let mut seen: Vec<&str> = Vec::new();
    out.retain(|t| {
        let new = !seen.contains(t);
        seen.push(t);
        new
    });
    out
}

/// `Warning: …` lines for `warnings`, before whatever else the outcome has on stderr.
pub(crate) fn warnings_first(warnings: &[String], mut outcome: Outcome) -> Outcome {
    if warnings.is_empty() {
        return outcome;
    }
    let mut stderr: String = warnings.iter().map(|w| format!("Warning: {w}\n")).collect();
    stderr.push_str(outcome.error.as_deref().unwrap_or_default());
    outcome.error = Some(stderr);
    outcome
}

/// apimachinery's `ParseResourceArg` (and, identically, `ParseKindArg`): with two or more dots
/// also a fully specified `name.version.group`; always `name.group` split at the first dot.
#[allow(clippy::type_complexity)]
fn parse_resource_arg(arg: &str) -> (Option<(&str, &str, &str)>, (&str, &str)) {
    let full = {
        let mut parts = arg.splitn(3, '.');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(r), Some(v), Some(g)) => Some((r, v, g)),
            _ => None,
        }
    };
    let partial = arg.split_once('.').unwrap_or((arg, ""));
    (full, partial)
}

fn items<'a>(v: &'a Value, key: &str) -> impl Iterator<Item = &'a Value> {
    v.get(key).and_then(Value::as_array).into_iter().flatten()
}

fn str_at(v: &Value, path: &[&str]) -> String {
    let mut cur = v;
    for p in path {
        match cur.get(p) {
            Some(next) => cur = next,
            None => return String::new(),
        }
    }
    cur.as_str().unwrap_or_default().to_string()
}

fn strings(v: &Value, key: &str) -> Vec<String> {
    items(v, key)
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    /// A small cluster's discovery: core, apps, events.k8s.io, metrics, autoscaling and a CRD.
    pub(crate) fn canned() -> Discovery {
        let res = |name: &str,
                   singular: &str,
                   kind: &str,
                   ns: bool,
                   short: &[&str],
                   cats: &[&str]| {
            json!({
                "resource": name, "singularResource": singular,
                "responseKind": {"kind": kind}, "scope": if ns { "Namespaced" } else { "Cluster" },
                "shortNames": short, "categories": cats, "verbs": ["get", "list"]
            })
        };
        let core = json!({"kind": "APIGroupDiscoveryList", "items": [{
            "metadata": {"name": ""},
            "versions": [{"version": "v1", "resources": [
                res("pods", "pod", "Pod", true, &["po"], &["all"]),
                res("services", "service", "Service", true, &["svc"], &["all"]),
                res("events", "event", "Event", true, &["ev"], &[]),
                res("nodes", "node", "Node", false, &["no"], &[]),
                res("namespaces", "namespace", "Namespace", false, &["ns"], &[]),
                res("configmaps", "configmap", "ConfigMap", true, &["cm"], &[]),
                res("secrets", "secret", "Secret", true, &[], &[]),
            ]}]
        }]});
        let groups = json!({"kind": "APIGroupDiscoveryList", "items": [
            {"metadata": {"name": "apps"}, "versions": [{"version": "v1", "resources": [
                res("deployments", "deployment", "Deployment", true, &["deploy"], &["all"]),
                res("replicasets", "replicaset", "ReplicaSet", true, &["rs"], &["all"]),
            ]}]},
            {"metadata": {"name": "events.k8s.io"}, "versions": [{"version": "v1", "resources": [
                res("events", "event", "Event", true, &["ev"], &[]),
            ]}]},
            {"metadata": {"name": "autoscaling"}, "versions": [
                {"version": "v2", "resources": [res("horizontalpodautoscalers", "horizontalpodautoscaler", "HorizontalPodAutoscaler", true, &["hpa"], &["all"])]},
                {"version": "v1", "resources": [res("horizontalpodautoscalers", "horizontalpodautoscaler", "HorizontalPodAutoscaler", true, &["hpa"], &["all"])]},
            ]},
            {"metadata": {"name": "metrics.k8s.io"}, "versions": [{"version": "v1beta1", "resources": [
                res("pods", "", "PodMetrics", true, &[], &[]),
                res("nodes", "", "NodeMetrics", false, &[], &[]),
            ]}]},
            {"metadata": {"name": "testbed.kubeline.dev"}, "versions": [{"version": "v1", "resources": [
                res("widgets", "widget", "Widget", true, &["wg"], &["kubeline"]),
            ]}]},
        ]});
        Discovery::from_aggregated(&[core, groups])
    }

    fn resolve(d: &Discovery, arg: &str) -> String {
        match d.resolve(arg) {
            Ok(r) => format!("{}/{}/{}", r.group, r.version, r.resource),
            Err(e) => format!("no match: {}", e.resource),
        }
    }

    #[test]
    fn names_resolve_like_kubectl() {
        let d = canned();
        let cases = [
            ("pods", "/v1/pods"),
            ("pod", "/v1/pods"),
            ("po", "/v1/pods"),
            ("Pods", "/v1/pods"),
            ("Pod", "/v1/pods"),
            ("POD", "/v1/pods"),
            ("svc", "/v1/services"),
            ("deploy", "apps/v1/deployments"),
            ("deployment", "apps/v1/deployments"),
            ("Deployment", "apps/v1/deployments"),
            ("deployments.apps", "apps/v1/deployments"),
            ("deployments.v1.apps", "apps/v1/deployments"),
            ("deploy.apps", "apps/v1/deployments"),
            ("Deployment.apps", "apps/v1/deployments"),
            // Core wins over events.k8s.io, as kubectl's priority says.
            ("events", "/v1/events"),
            ("ev", "/v1/events"),
            ("events.events.k8s.io", "events.k8s.io/v1/events"),
            ("events.v1.events.k8s.io", "events.k8s.io/v1/events"),
            // The preferred version comes first.
            ("hpa", "autoscaling/v2/horizontalpodautoscalers"),
            (
                "horizontalpodautoscalers.v1.autoscaling",
                "autoscaling/v1/horizontalpodautoscalers",
            ),
            ("hpa.autoscal", "autoscaling/v2/horizontalpodautoscalers"),
            // Metrics' pods lose to core pods unless the group is named.
            ("pods.metrics.k8s.io", "metrics.k8s.io/v1beta1/pods"),
            ("PodMetrics.metrics.k8s.io", "metrics.k8s.io/v1beta1/pods"),
            ("widgets", "testbed.kubeline.dev/v1/widgets"),
            ("wg", "testbed.kubeline.dev/v1/widgets"),
            ("Widget", "testbed.kubeline.dev/v1/widgets"),
            (
                "widgets.testbed.kubeline.dev",
                "testbed.kubeline.dev/v1/widgets",
            ),
            (
                "widget.testbed.kubeline.dev",
                "testbed.kubeline.dev/v1/widgets",
            ),
            ("foo", "no match: foo"),
            ("foo.bar", "no match: foo"),
            ("deployments.core", "no match: deployments"),
            ("delete", "no match: delete"),
        ];
        for (arg, want) in cases {
            assert_eq!(resolve(&d, arg), want, "{arg}");
        }
    }

    #[test]
    fn ambiguous_short_names_warn() {
        let d = canned();
        assert_eq!(
            d.shortcut_warnings("ev"),
            ["short name \"ev\" could also match lower priority resource events.events.k8s.io"]
        );
        // Several versions of one resource are not ambiguous; full names never are.
        assert!(d.shortcut_warnings("hpa").is_empty());
        assert!(d.shortcut_warnings("events").is_empty());
        assert!(d.shortcut_warnings("ev.events.k8s.io").is_empty());
        assert!(d.shortcut_warnings("po").is_empty());
    }

    #[test]
    fn categories_expand_in_discovery_order() {
        let d = canned();
        assert_eq!(
            d.expand_category("all").unwrap(),
            [
                "pods",
                "services",
                "deployments.apps",
                "replicasets.apps",
                "horizontalpodautoscalers.autoscaling",
                "horizontalpodautoscalers.autoscaling"
            ]
        );
        assert_eq!(d.expand_category("pods"), None);
    }

    #[test]
    fn legacy_lists_parse() {
        let d = Discovery::from_resource_lists(&[json!({
            "groupVersion": "apps/v1",
            "resources": [
                {"name": "deployments", "singularName": "deployment", "namespaced": true, "kind": "Deployment", "shortNames": ["deploy"]},
                {"name": "deployments/scale", "singularName": "", "namespaced": true, "kind": "Scale"}
            ]
        })]);
        let r = d.resolve("deploy").unwrap();
        assert_eq!(
            (r.kind_prefix().as_str(), r.namespaced),
            ("deployment.apps", true)
        );
        assert_eq!(r.path_prefix(), "/apis/apps/v1");
        assert!(d.resolve("scale").is_err());
    }
}
