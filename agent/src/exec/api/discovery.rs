//! What the API server serves, and kubectl's rules for turning a typed name into a resource.
//!
//! One fetch ([`fetch`]) reads it: aggregated discovery (`/api` and `/apis` with the
//! `APIGroupDiscoveryList` media type, two requests) or, for servers without it, the legacy
//! per-group-version lists. Versions aggregated discovery marks `Stale` are left out, and so are
//! resources without a kind and group/versions whose list fails, as client-go leaves them out.
//! The result, [`ServerResources`], is what `api-resources`, `api-versions` and `explain` read;
//! [`Discovery`] is the same data flattened in priority order for resolving names, which the
//! `Executor` caches for every other command.
//!
//! Resolution follows kubectl (cli-runtime `Builder.mappingFor`, client-go's shortcut expander and
//! `PriorityRESTMapper`):
//! 1. `resource.version.group` (two or more dots) is tried as a fully specified resource;
//! 2. `resource.group` / `resource`: short names are expanded first unless the text already is a
//!    resource's plural or singular name; then plural or singular names match case-insensitively;
//! 3. failing that, the text is tried as a kind (`Deployment`, `Deployment.apps`);
//! 4. among several matches the first in priority order wins: core `v1` first, then each group in
//!    discovery order with its preferred version first.

use crate::exec::Outcome;
use crate::exec::api::{self, ApiError};
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

    /// `GroupResource.String()`: `pods`, `deployments.apps`.
    pub(crate) fn group_resource(&self) -> String {
        if self.group.is_empty() {
            self.resource.clone()
        } else {
            format!("{}.{}", self.resource, self.group)
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
    /// The server's resources in priority order (groups in discovery order, each group's
    /// preferred version first), as client-go's `DiscoveryRESTMapper` sees them: a resource
    /// without a singular name is known by its lower-cased kind.
    pub(crate) fn new(server: &ServerResources) -> Self {
        let mut resources = Vec::new();
        for g in &server.groups {
            for v in &g.versions {
                for r in &v.resources {
                    resources.push(ApiResource {
                        group: g.name.clone(),
                        version: v.version.clone(),
                        resource: r.name.clone(),
                        singular: match &r.singular {
                            s if s.is_empty() => r.kind.to_lowercase(),
                            s => s.clone(),
                        },
                        kind: r.kind.clone(),
                        namespaced: r.namespaced,
                        short_names: r.short_names.clone(),
                        categories: r.categories.clone(),
                    });
                }
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
            .map(ApiResource::group_resource)
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
                        let name = r.group_resource();
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

// === the server's resources ===

/// One resource as discovery describes it (a `metav1.APIResource`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Resource {
    pub name: String,
    pub singular: String,
    pub namespaced: bool,
    pub kind: String,
    pub verbs: Vec<String>,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
}

/// One group/version and its resources (subresources left out).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct GroupVersion {
    pub group: String,
    pub version: String,
    pub resources: Vec<Resource>,
}

impl GroupVersion {
    /// `v1` or `group/version`.
    pub(crate) fn group_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

/// One API group with its versions, preferred version first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Group {
    pub name: String,
    pub versions: Vec<GroupVersion>,
}

/// Every group the server serves, in discovery (priority) order.
#[derive(Debug, Clone, Default)]
pub(crate) struct ServerResources {
    pub groups: Vec<Group>,
}

/// A resource with the group and version it was found in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Located<'a> {
    pub group: &'a str,
    pub version: &'a str,
    pub resource: &'a Resource,
}

impl ServerResources {
    /// Parses aggregated discovery documents (`/api`, then `/apis`). Stale versions are left
    /// out, as client-go does.
    pub(crate) fn from_aggregated(docs: &[Value]) -> Self {
        let mut groups = Vec::new();
        for doc in docs {
            for g in items(doc, "items") {
                let name = text(g.pointer("/metadata/name"));
                let mut versions = Vec::new();
                for v in items(g, "versions") {
                    if text(v.get("freshness")) == "Stale" {
                        continue;
                    }
                    let mut resources = Vec::new();
                    for r in items(v, "resources") {
                        let kind = text(r.pointer("/responseKind/kind"));
                        let resource = text(r.get("resource"));
                        if kind.is_empty() || resource.is_empty() {
                            continue;
                        }
                        resources.push(Resource {
                            name: resource,
                            singular: text(r.get("singularResource")),
                            namespaced: text(r.get("scope")) == "Namespaced",
                            kind,
                            verbs: strings(r, "verbs"),
                            short_names: strings(r, "shortNames"),
                            categories: strings(r, "categories"),
                        });
                    }
                    versions.push(GroupVersion {
                        group: name.clone(),
                        version: text(v.get("version")),
                        resources,
                    });
                }
                if !versions.is_empty() {
                    groups.push(Group { name, versions });
                }
            }
        }
        Self { groups }
    }

    /// Builds the groups from the legacy documents: `/api` (`APIVersions`), `/apis`
    /// (`APIGroupList`) and one `APIResourceList` per group/version.
    pub(crate) fn from_legacy(core: &Value, groups: &Value, lists: &[Value]) -> Self {
        let list_for = |gv: &str| {
            lists
                .iter()
                .find(|l| text(l.get("groupVersion")) == gv)
                .map(|l| {
                    items(l, "resources")
                        .filter(|r| !text(r.get("name")).contains('/'))
                        .map(|r| Resource {
                            name: text(r.get("name")),
                            singular: text(r.get("singularName")),
                            namespaced: r.get("namespaced").and_then(Value::as_bool) == Some(true),
                            kind: text(r.get("kind")),
                            verbs: strings(r, "verbs"),
                            short_names: strings(r, "shortNames"),
                            categories: strings(r, "categories"),
                        })
                        .collect::<Vec<_>>()
                })
        };
        let mut out = Vec::new();
        let core_versions: Vec<GroupVersion> = items(core, "versions")
            .filter_map(Value::as_str)
            .filter_map(|v| {
                list_for(v).map(|resources| GroupVersion {
                    group: String::new(),
                    version: v.to_string(),
                    resources,
                })
            })
            .collect();
        if !core_versions.is_empty() {
            out.push(Group {
                name: String::new(),
                versions: core_versions,
            });
        }
        for g in items(groups, "groups") {
            let name = text(g.get("name"));
            let preferred = text(g.pointer("/preferredVersion/version"));
            let mut versions: Vec<GroupVersion> = items(g, "versions")
                .filter_map(|v| {
                    let version = text(v.get("version"));
                    list_for(&text(v.get("groupVersion"))).map(|resources| GroupVersion {
                        group: name.clone(),
                        version,
                        resources,
                    })
                })
                .collect();
            if let Some(i) = versions.iter().position(|v| v.version == preferred) {
                let p = versions.remove(i);
                versions.insert(0, p);
            }
            if !versions.is_empty() {
                out.push(Group { name, versions });
            }
        }
        Self { groups: out }
    }

    /// Every `group/version`, sorted, as `api-versions` prints them.
    pub(crate) fn group_versions(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .groups
            .iter()
            .flat_map(|g| g.versions.iter().map(GroupVersion::group_version))
            .collect();
        out.sort();
        out
    }

    /// client-go's `ServerPreferredResources`, flattened: per group, each resource once, taken
    /// from the preferred version unless only another version serves it.
    pub(crate) fn preferred(&self) -> Vec<Located<'_>> {
        let mut out = Vec::new();
        for g in &self.groups {
            // (resource name, index in `chosen`)
            let mut chosen: Vec<Located<'_>> = Vec::new();
            for (vi, v) in g.versions.iter().enumerate() {
                for r in &v.resources {
                    match chosen.iter().position(|c| c.resource.name == r.name) {
                        Some(i) if vi == 0 => {
                            chosen[i] = Located {
                                group: &g.name,
                                version: &v.version,
                                resource: r,
                            }
                        }
                        Some(_) => {}
                        None => chosen.push(Located {
                            group: &g.name,
                            version: &v.version,
                            resource: r,
                        }),
                    }
                }
            }
            // kubectl groups the chosen resources back by group/version, in version order.
            for v in &g.versions {
                out.extend(chosen.iter().filter(|c| c.version == v.version).cloned());
            }
        }
        out
    }

    /// The RESTMapper's `ResourcesFor(resource)` with only a resource name: every
    /// group/version serving a resource whose plural or singular name is `name` (lower-cased,
    /// short names expanded first), in priority order.
    pub(crate) fn resources_for(&self, name: &str) -> Vec<Located<'_>> {
        let lower = name.to_lowercase();
        let all = || {
            self.groups.iter().flat_map(|g| {
                g.versions.iter().flat_map(move |v| {
                    v.resources.iter().map(move |r| Located {
                        group: &g.name,
                        version: &v.version,
                        resource: r,
                    })
                })
            })
        };
        let is_name = all().any(|l| l.resource.name == lower || l.resource.singular == lower);
        let (wanted, group) = if is_name {
            (lower.clone(), None)
        } else {
            match all().find(|l| l.resource.short_names.contains(&lower)) {
                Some(l) => (l.resource.name.clone(), Some(l.group)),
                None => (lower.clone(), None),
            }
        };
        all()
            .filter(|l| group.is_none_or(|g| g == l.group))
            .filter(|l| l.resource.name == wanted || l.resource.singular == wanted)
            .collect()
    }
}

/// Fetches the server's resources: aggregated discovery when the server has it, else the
/// legacy documents. A group/version whose list fails (an unavailable aggregated API) is left
/// out, as kubectl leaves it out.
pub(crate) async fn fetch(client: &kube::Client) -> Result<ServerResources, ApiError> {
    let (core, groups) = futures::join!(
        api::get(client, "/api", api::ACCEPT_DISCOVERY, None),
        api::get(client, "/apis", api::ACCEPT_DISCOVERY, None)
    );
    let (core, groups) = (core?.body, groups?.body);
    let aggregated =
        |v: &Value| v.get("kind").and_then(Value::as_str) == Some("APIGroupDiscoveryList");
    if aggregated(&core) && aggregated(&groups) {
        return Ok(ServerResources::from_aggregated(&[core, groups]));
    }
    let mut paths: Vec<String> = items(&core, "versions")
        .filter_map(Value::as_str)
        .map(|v| format!("/api/{v}"))
        .collect();
    for g in items(&groups, "groups") {
        for v in items(g, "versions") {
            let gv = text(v.get("groupVersion"));
            if !gv.is_empty() {
                paths.push(format!("/apis/{gv}"));
            }
        }
    }
    let lists = futures::future::join_all(
        paths
            .iter()
            .map(|p| api::get(client, p, api::ACCEPT_JSON, None)),
    )
    .await;
    let lists: Vec<Value> = lists
        .into_iter()
        .filter_map(|r| r.ok().map(|r| r.body))
        .collect();
    Ok(ServerResources::from_legacy(&core, &groups, &lists))
}

// === kubectl's name resolution ===

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

fn text(v: Option<&Value>) -> String {
    v.and_then(Value::as_str).unwrap_or_default().to_string()
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
        Discovery::new(&ServerResources::from_aggregated(&[core, groups]))
    }

    /// A small server: core, apps, autoscaling with two versions, a stale metrics group.
    pub(crate) fn canned_server() -> ServerResources {
        let res = |name: &str, kind: &str, ns: bool, short: &[&str], verbs: &[&str]| {
            json!({"resource": name, "singularResource": kind.to_lowercase(),
                   "responseKind": {"group": "", "version": "", "kind": kind},
                   "scope": if ns { "Namespaced" } else { "Cluster" },
                   "shortNames": short, "verbs": verbs, "categories": if ns { vec!["all"] } else { vec![] }})
        };
        let rw = &["create", "delete", "get", "list", "watch"];
        let core = json!({"kind": "APIGroupDiscoveryList", "items": [{"metadata": {"name": ""},
        "versions": [{"version": "v1", "resources": [
            res("pods", "Pod", true, &["po"], rw),
            res("bindings", "Binding", true, &[], &["create"]),
            res("nodes", "Node", false, &["no"], rw),
            res("componentstatuses", "ComponentStatus", false, &["cs"], &["get", "list"]),
            {"resource": "weird", "verbs": ["get"]},
        ]}]}]});
        let groups = json!({"kind": "APIGroupDiscoveryList", "items": [
            {"metadata": {"name": "apps"}, "versions": [{"version": "v1", "resources": [
                res("deployments", "Deployment", true, &["deploy"], rw)]}]},
            {"metadata": {"name": "autoscaling"}, "versions": [
                {"version": "v2", "resources": [res("horizontalpodautoscalers", "HorizontalPodAutoscaler", true, &["hpa"], rw)]},
                {"version": "v1", "resources": [
                    res("horizontalpodautoscalers", "HorizontalPodAutoscaler", true, &["hpa"], rw),
                    res("olds", "Old", true, &[], &["get"])]}]},
            {"metadata": {"name": "metrics.k8s.io"}, "versions": [{"version": "v1beta1", "freshness": "Stale", "resources": []}]},
        ]});
        ServerResources::from_aggregated(&[core, groups])
    }

    #[test]
    fn preferred_resources_follow_client_go() {
        let s = canned_server();
        let names: Vec<String> = s
            .preferred()
            .iter()
            .map(|l| format!("{}/{}/{}", l.group, l.version, l.resource.name))
            .collect();
        assert_eq!(
            names,
            [
                "/v1/pods",
                "/v1/bindings",
                "/v1/nodes",
                "/v1/componentstatuses",
                "apps/v1/deployments",
                "autoscaling/v2/horizontalpodautoscalers",
                "autoscaling/v1/olds"
            ]
        );
        assert_eq!(
            s.group_versions(),
            ["apps/v1", "autoscaling/v1", "autoscaling/v2", "v1"]
        );
    }

    #[test]
    fn resources_for_matches_names_and_short_names() {
        let s = canned_server();
        let found = |n: &str| {
            s.resources_for(n)
                .iter()
                .map(|l| format!("{}/{}/{}", l.group, l.version, l.resource.name))
                .collect::<Vec<_>>()
        };
        assert_eq!(found("Pods"), ["/v1/pods"]);
        assert_eq!(found("deploy"), ["apps/v1/deployments"]);
        assert_eq!(
            found("hpa"),
            [
                "autoscaling/v2/horizontalpodautoscalers",
                "autoscaling/v1/horizontalpodautoscalers"
            ]
        );
        assert!(found("nope").is_empty());
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
    fn stale_versions_and_kindless_resources_are_left_out() {
        // client-go fails a group/version aggregated discovery marks Stale and drops resources
        // without a responseKind, so kubectl never resolves a name to them.
        let docs = [
            json!({"kind": "APIGroupDiscoveryList", "items": []}),
            json!({"kind": "APIGroupDiscoveryList", "items": [{
                "metadata": {"name": "example.io"},
                "versions": [
                    {"version": "v2", "freshness": "Stale", "resources": [
                        {"resource": "widgets", "responseKind": {"kind": "Widget"},
                         "scope": "Namespaced", "verbs": ["get", "list"]}]},
                    {"version": "v1", "resources": [
                        {"resource": "widgets", "responseKind": {"kind": "Widget"},
                         "scope": "Namespaced", "verbs": ["get", "list"]},
                        {"resource": "gadgets", "scope": "Namespaced", "verbs": ["get"]}]},
                ]
            }]}),
        ];
        let d = Discovery::new(&ServerResources::from_aggregated(&docs));
        assert_eq!(resolve(&d, "widgets"), "example.io/v1/widgets");
        assert_eq!(resolve(&d, "widgets.v2.example.io"), "no match: widgets");
        assert_eq!(resolve(&d, "gadgets"), "no match: gadgets");
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
        let core = json!({"versions": []});
        let groups = json!({"groups": [{"name": "apps",
            "versions": [{"groupVersion": "apps/v1", "version": "v1"}],
            "preferredVersion": {"groupVersion": "apps/v1", "version": "v1"}}]});
        let d = Discovery::new(&ServerResources::from_legacy(
            &core,
            &groups,
            &[json!({
                "groupVersion": "apps/v1",
                "resources": [
                    {"name": "deployments", "singularName": "deployment", "namespaced": true, "kind": "Deployment", "shortNames": ["deploy"]},
                    {"name": "deployments/scale", "singularName": "", "namespaced": true, "kind": "Scale"}
                ]
            })],
        ));
        let r = d.resolve("deploy").unwrap();
        assert_eq!(
            (r.kind_prefix().as_str(), r.namespaced),
            ("deployment.apps", true)
        );
        assert_eq!(r.path_prefix(), "/apis/apps/v1");
        assert!(d.resolve("scale").is_err());
    }
}
