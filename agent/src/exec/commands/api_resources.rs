//! `api-resources` (kubectl `pkg/cmd/apiresources`), and the server's resource lists that
//! `api-versions` and `explain` read too.
//!
//! kubectl asks `ServerPreferredResources`: every group/version discovery serves (stale ones
//! left out), each resource once per group, in the group's preferred version unless only an
//! older version has it. [`ServerResources`] holds that data with the verbs, which the shared
//! resolver in `discovery` does not keep.

use crate::exec::api::{self, ApiError};
use crate::exec::{Executor, Outcome};
use kubeline_printers::go::json::{self as gojson, Ordered};
use kubeline_printers::go::tabwriter::TabWriter;
use kubeline_printers::go::yaml as goyaml;
use kubeline_shared::command::{ApiResources, ApiResourcesOutput, ApiResourcesSort};
use serde_json::Value;

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
            for g in array(doc, "items") {
                let name = text(g.pointer("/metadata/name"));
                let mut versions = Vec::new();
                for v in array(g, "versions") {
                    if text(v.get("freshness")) == "Stale" {
                        continue;
                    }
                    let mut resources = Vec::new();
                    for r in array(v, "resources") {
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
                    array(l, "resources")
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
        let core_versions: Vec<GroupVersion> = array(core, "versions")
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
        for g in array(groups, "groups") {
            let name = text(g.get("name"));
            let preferred = text(g.pointer("/preferredVersion/version"));
            let mut versions: Vec<GroupVersion> = array(g, "versions")
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
pub(crate) async fn server_resources(ex: &Executor) -> Result<ServerResources, ApiError> {
    let (core, groups) = futures::join!(
        api::get(&ex.client, "/api", api::ACCEPT_DISCOVERY, None),
        api::get(&ex.client, "/apis", api::ACCEPT_DISCOVERY, None)
    );
    let (core, groups) = (core?.body, groups?.body);
    let aggregated =
        |v: &Value| v.get("kind").and_then(Value::as_str) == Some("APIGroupDiscoveryList");
    if aggregated(&core) && aggregated(&groups) {
        return Ok(ServerResources::from_aggregated(&[core, groups]));
    }
    let mut paths: Vec<String> = array(&core, "versions")
        .filter_map(Value::as_str)
        .map(|v| format!("/api/{v}"))
        .collect();
    for g in array(&groups, "groups") {
        for v in array(g, "versions") {
            let gv = text(v.get("groupVersion"));
            if !gv.is_empty() {
                paths.push(format!("/apis/{gv}"));
            }
        }
    }
    let lists = futures::future::join_all(
        paths
            .iter()
            .map(|p| api::get(&ex.client, p, api::ACCEPT_JSON, None)),
    )
    .await;
    let lists: Vec<Value> = lists
        .into_iter()
        .filter_map(|r| r.ok().map(|r| r.body))
        .collect();
    Ok(ServerResources::from_legacy(&core, &groups, &lists))
}

pub(crate) async fn run(ex: &Executor, cmd: &ApiResources) -> Outcome {
    match server_resources(ex).await {
        Ok(resources) => Outcome {
            output: render(&resources, cmd),
            error: None,
            exit_code: 0,
        },
        Err(e) => Outcome::failed(e.kubectl_message()),
    }
}

/// Filters, sorts and prints the resources as kubectl's api-resources printers do.
fn render(resources: &ServerResources, cmd: &ApiResources) -> String {
    let has_all = |have: &[String], want: &[String]| want.iter().all(|w| have.contains(w));
    let mut rows: Vec<Located<'_>> = resources
        .preferred()
        .into_iter()
        .filter(|l| !l.resource.verbs.is_empty())
        .filter(|l| cmd.api_group.as_deref().is_none_or(|g| g == l.group))
        .filter(|l| cmd.namespaced.is_none_or(|n| n == l.resource.namespaced))
        .filter(|l| has_all(&l.resource.verbs, &cmd.verbs))
        .filter(|l| has_all(&l.resource.categories, &cmd.categories))
        .collect();
    // sort.Stable by the chosen field, ties broken by name.
    rows.sort_by(|a, b| {
        let key = |l: &Located<'_>| match cmd.sort_by {
            ApiResourcesSort::Group => l.group.to_string(),
            ApiResourcesSort::Name => l.resource.name.clone(),
            ApiResourcesSort::Kind => l.resource.kind.clone(),
        };
        key(a)
            .cmp(&key(b))
            .then_with(|| a.resource.name.cmp(&b.resource.name))
    });
    if matches!(
        cmd.output,
        ApiResourcesOutput::Json | ApiResourcesOutput::Yaml | ApiResourcesOutput::Kyaml
    ) {
        return print_list(&rows, cmd.output);
    }
    if cmd.output == ApiResourcesOutput::Name {
        let mut out = String::new();
        for l in &rows {
            out.push_str(&l.resource.name);
            if !l.group.is_empty() {
                out.push('.');
                out.push_str(l.group);
            }
            out.push('\n');
        }
        return out;
    }
    let wide = cmd.output == ApiResourcesOutput::Wide;
    let mut w = TabWriter::new();
    if !cmd.no_headers {
        w.write(if wide {
            "NAME\tSHORTNAMES\tAPIVERSION\tNAMESPACED\tKIND\tVERBS\tCATEGORIES\n"
        } else {
            "NAME\tSHORTNAMES\tAPIVERSION\tNAMESPACED\tKIND\n"
        });
    }
    for l in &rows {
        let r = l.resource;
        let gv = if l.group.is_empty() {
            l.version.to_string()
        } else {
            format!("{}/{}", l.group, l.version)
        };
        let mut line = format!(
            "{}\t{}\t{}\t{}\t{}",
            r.name,
            r.short_names.join(","),
            gv,
            r.namespaced,
            r.kind
        );
        if wide {
            line.push_str(&format!(
                "\t{}\t{}",
                r.verbs.join(","),
                r.categories.join(",")
            ));
        }
        line.push('\n');
        w.write(&line);
    }
    w.flush();
    w.take_output()
}

/// `-o json|yaml|kyaml`: the flattened `APIResourceList` kubectl builds (no `groupVersion`, each
/// resource with the `group` and `version` it was listed in), as its JSON printer writes a Go
/// struct (fields in struct order, `omitempty` ones left out when empty) or as YAML. With
/// nothing left after filtering, the list's `resources` is Go's nil slice: `null`.
fn print_list(rows: &[Located<'_>], output: ApiResourcesOutput) -> String {
    let text = |s: &str| Ordered::String(s.to_string());
    let strings = |v: &[String]| Ordered::Array(v.iter().map(|s| text(s)).collect());
    let resources: Vec<Ordered> = rows
        .iter()
        .map(|l| {
            let r = l.resource;
            let mut fields = vec![
                ("name".to_string(), text(&r.name)),
                ("singularName".to_string(), text(&r.singular)),
                ("namespaced".to_string(), Ordered::Bool(r.namespaced)),
            ];
            if !l.group.is_empty() {
                fields.push(("group".into(), text(l.group)));
            }
            if !l.version.is_empty() {
                fields.push(("version".into(), text(l.version)));
            }
            fields.push(("kind".into(), text(&r.kind)));
            fields.push(("verbs".into(), strings(&r.verbs)));
            if !r.short_names.is_empty() {
                fields.push(("shortNames".into(), strings(&r.short_names)));
            }
            if !r.categories.is_empty() {
                fields.push(("categories".into(), strings(&r.categories)));
            }
            Ordered::Object(fields)
        })
        .collect();
    let list = Ordered::Object(vec![
        ("kind".into(), text("APIResourceList")),
        ("apiVersion".into(), text("v1")),
        ("groupVersion".into(), text("")),
        (
            "resources".into(),
            if resources.is_empty() {
                Ordered::Null
            } else {
                Ordered::Array(resources)
            },
        ),
    ]);
    match output {
        ApiResourcesOutput::Json => {
            let mut out = String::new();
            gojson::write_ordered(&mut out, &list, "    ", 0);
            out.push('\n');
            out
        }
        ApiResourcesOutput::Kyaml => goyaml::to_kyaml(&list),
        _ => goyaml::to_string(&list.to_value()),
    }
}

fn array<'a>(v: &'a Value, key: &str) -> impl Iterator<Item = &'a Value> {
    v.get(key).and_then(Value::as_array).into_iter().flatten()
}

fn text(v: Option<&Value>) -> String {
    v.and_then(Value::as_str).unwrap_or_default().to_string()
}

fn strings(v: &Value, key: &str) -> Vec<String> {
    array(v, key)
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    /// A small server: core, apps, autoscaling with two versions, a stale metrics group.
    pub(crate) fn canned() -> ServerResources {
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
        let s = canned();
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
    fn tables_print_like_kubectl() {
        let s = canned();
        let cmd = ApiResources::default();
        assert_eq!(
            render(&s, &cmd),
            "NAME                       SHORTNAMES   APIVERSION       NAMESPACED   KIND\n\
             bindings                                v1               true         Binding\n\
             componentstatuses          cs           v1               false        ComponentStatus\n\
             nodes                      no           v1               false        Node\n\
             pods                       po           v1               true         Pod\n\
             deployments                deploy       apps/v1          true         Deployment\n\
             horizontalpodautoscalers   hpa          autoscaling/v2   true         HorizontalPodAutoscaler\n\
             olds                                    autoscaling/v1   true         Old\n"
        );
        let cmd = ApiResources {
            output: ApiResourcesOutput::Name,
            namespaced: Some(true),
            verbs: vec!["list".into()],
            sort_by: ApiResourcesSort::Kind,
            ..Default::default()
        };
        assert_eq!(
            render(&s, &cmd),
            "deployments.apps\nhorizontalpodautoscalers.autoscaling\npods\n"
        );
    }

    #[test]
    fn resources_for_matches_names_and_short_names() {
        let s = canned();
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
}
