//! cli-runtime's resource `Builder` as `get` and `describe` use it: what the user typed (types,
//! `type name...`, `type/name` pairs) turned into the requests kubectl would make, one
//! [`Visit`] each; and [`resolve_one`], the same resolution for the commands that take a single
//! typed resource. Both refresh the cached discovery data once on a miss (a CRD installed a
//! moment ago).

use super::discovery::{ApiResource, Discovery};
use crate::exec::Executor;
use crate::exec::api::{self, ApiError};
use kubeline_printers::go::fmt::go_quote;
use kubeline_shared::command::Targets;

/// One request kubectl's builder would make: a list, or one named object.
#[derive(Debug, Clone)]
pub(crate) struct Visit {
    /// The resource, as discovery resolved what was typed.
    pub mapping: ApiResource,
    /// `None`: cluster-scoped, or every namespace.
    pub namespace: Option<String>,
    /// `None`: a list.
    pub name: Option<String>,
}

impl Visit {
    /// `/api/v1/namespaces/NS/pods` or `/apis/G/V/RESOURCE`.
    pub(crate) fn collection_path(&self) -> String {
        let prefix = self.mapping.path_prefix();
        match &self.namespace {
            Some(ns) => format!(
                "{prefix}/namespaces/{}/{}",
                api::segment(ns),
                self.mapping.resource
            ),
            None => format!("{prefix}/{}", self.mapping.resource),
        }
    }

    /// client-go's description of the GET, for errors without a `Status` body: `get pods`,
    /// `get deployments.apps web`.
    pub(crate) fn what(&self) -> String {
        let resource = self.mapping.group_resource();
        match &self.name {
            Some(n) => format!("get {resource} {n}"),
            None => format!("get {resource}"),
        }
    }
}

/// Why the builder made no requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BuildError {
    /// A type resolved to no resource; kubectl names it.
    NoMatch(String),
    /// Discovery could not be read.
    Api(ApiError),
    /// kubectl's usage errors (`you must specify only one resource`, …).
    Other(String),
}

impl BuildError {
    /// The line kubectl prints.
    pub(crate) fn message(&self) -> String {
        match self {
            BuildError::NoMatch(resource) => {
                format!(
                    "error: the server doesn't have a resource type {}",
                    go_quote(resource)
                )
            }
            BuildError::Api(e) => e.kubectl_message(),
            BuildError::Other(m) => format!("error: {m}"),
        }
    }
}

/// [`plan`] over the cached discovery data, refreshed once when a type does not resolve (a
/// resource type may be new: a CRD installed a moment ago).
pub(crate) async fn resolve(
    ex: &Executor,
    targets: &Targets,
    namespace: &str,
    all_namespaces: bool,
) -> Result<Vec<Visit>, BuildError> {
    let discovery = ex.discovery(false).await.map_err(BuildError::Api)?;
    match plan(&discovery, targets, namespace, all_namespaces) {
        Err(BuildError::NoMatch(_)) => {
            let discovery = ex.discovery(true).await.map_err(BuildError::Api)?;
            plan(&discovery, targets, namespace, all_namespaces)
        }
        other => other,
    }
}

/// One typed resource (`pods`, `deploy`, `Deployment.apps`) resolved over the cached discovery
/// data, refreshed once when it does not resolve, as [`resolve`] does for whole targets.
pub(crate) async fn resolve_one(ex: &Executor, arg: &str) -> Result<ApiResource, BuildError> {
    let discovery = ex.discovery(false).await.map_err(BuildError::Api)?;
    if let Ok(m) = discovery.resolve(arg) {
        return Ok(m.clone());
    }
    let discovery = ex.discovery(true).await.map_err(BuildError::Api)?;
    discovery
        .resolve(arg)
        .cloned()
        .map_err(|e| BuildError::NoMatch(e.resource))
}

/// kubectl replaces categories (`all` → `pods,services,…`), then drops repeats.
pub(crate) fn expand(discovery: &Discovery, types: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for t in types {
        for e in discovery
            .expand_category(t)
            .unwrap_or_else(|| vec![t.clone()])
        {
            if !out.contains(&e) {
                out.push(e);
            }
        }
    }
    out
}

/// The visits for `targets` in `namespace` (every namespace with `all_namespaces`): a list per
/// type (each group/version/kind once), or one visit per name.
pub(crate) fn plan(
    discovery: &Discovery,
    targets: &Targets,
    namespace: &str,
    all_namespaces: bool,
) -> Result<Vec<Visit>, BuildError> {
    let resolve = |arg: &str| -> Result<ApiResource, BuildError> {
        discovery
            .resolve(arg)
            .cloned()
            .map_err(|e| BuildError::NoMatch(e.resource))
    };
    let named_namespace = |m: &ApiResource| -> Result<Option<String>, BuildError> {
        match (m.namespaced, all_namespaces) {
            (false, _) => Ok(None),
            (true, true) => Err(BuildError::Other(
                "a resource cannot be retrieved by name across all namespaces".into(),
            )),
            (true, false) => Ok(Some(namespace.to_string())),
        }
    };
    let mut visits = Vec::new();
    match targets {
        Targets::Types(types) => {
            let mut seen: Vec<(String, String, String)> = Vec::new();
            for t in expand(discovery, types) {
                let m = resolve(&t)?;
                let gvk = (m.group.clone(), m.version.clone(), m.kind.clone());
                if seen.contains(&gvk) {
                    continue;
                }
                seen.push(gvk);
                let ns = (m.namespaced && !all_namespaces).then(|| namespace.to_string());
                visits.push(Visit {
                    mapping: m,
                    namespace: ns,
                    name: None,
                });
            }
        }
        Targets::Names { resource, names } => {
            let types = expand(discovery, std::slice::from_ref(resource));
            if types.len() > 1 {
                return Err(BuildError::Other(
                    "you must specify only one resource".into(),
                ));
            }
            let m = resolve(types.first().map_or(resource.as_str(), String::as_str))?;
            let ns = named_namespace(&m)?;
            for n in names {
                visits.push(Visit {
                    mapping: m.clone(),
                    namespace: ns.clone(),
                    name: Some(n.clone()),
                });
            }
        }
        Targets::Pairs(pairs) => {
            // Every type resolves (in order of first appearance) before any visit is made.
            let mut mappings: Vec<(&str, ApiResource)> = Vec::new();
            for p in pairs {
                if !mappings.iter().any(|(r, _)| *r == p.resource) {
                    mappings.push((&p.resource, resolve(&p.resource)?));
                }
            }
            for p in pairs {
                let Some((_, m)) = mappings.iter().find(|(r, _)| *r == p.resource) else {
                    continue;
                };
                visits.push(Visit {
                    mapping: m.clone(),
                    namespace: named_namespace(m)?,
                    name: Some(p.name.clone()),
                });
            }
        }
    }
    Ok(visits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::api::discovery::tests::canned;
    use kubeline_shared::command::ResourceName;

    fn paths(targets: &Targets, all: bool) -> Result<Vec<String>, String> {
        plan(&canned(), targets, "ns", all)
            .map(|visits| {
                visits
                    .iter()
                    .map(|v| match &v.name {
                        Some(n) => format!("{} {n}", v.collection_path()),
                        None => v.collection_path(),
                    })
                    .collect()
            })
            .map_err(|e| e.message())
    }

    #[test]
    fn types_expand_and_dedup() {
        let t = Targets::Types(vec!["all".into(), "pods".into(), "no".into()]);
        assert_eq!(
            paths(&t, false).unwrap(),
            [
                "/api/v1/namespaces/ns/pods",
                "/api/v1/namespaces/ns/services",
                "/apis/apps/v1/namespaces/ns/deployments",
                "/apis/apps/v1/namespaces/ns/replicasets",
                "/apis/autoscaling/v2/namespaces/ns/horizontalpodautoscalers",
                "/api/v1/nodes",
            ]
        );
        assert_eq!(
            paths(&Targets::Types(vec!["po".into()]), true).unwrap(),
            ["/api/v1/pods"]
        );
    }

    #[test]
    fn names_and_pairs() {
        let t = Targets::Names {
            resource: "deploy".into(),
            names: vec!["a".into(), "b".into()],
        };
        assert_eq!(
            paths(&t, false).unwrap(),
            [
                "/apis/apps/v1/namespaces/ns/deployments a",
                "/apis/apps/v1/namespaces/ns/deployments b"
            ]
        );
        assert_eq!(
            paths(&t, true).unwrap_err(),
            "error: a resource cannot be retrieved by name across all namespaces"
        );
        let pair = |r: &str, n: &str| ResourceName {
            resource: r.into(),
            name: n.into(),
        };
        let t = Targets::Pairs(vec![pair("no", "n1"), pair("po", "p1")]);
        assert_eq!(
            paths(&t, true).unwrap_err(),
            "error: a resource cannot be retrieved by name across all namespaces"
        );
        assert_eq!(
            paths(&t, false).unwrap(),
            ["/api/v1/nodes n1", "/api/v1/namespaces/ns/pods p1"]
        );
        let t = Targets::Pairs(vec![pair("po", "p1"), pair("nope", "x")]);
        assert_eq!(
            paths(&t, false).unwrap_err(),
            "error: the server doesn't have a resource type \"nope\""
        );
        let t = Targets::Names {
            resource: "all".into(),
            names: vec!["x".into()],
        };
        assert_eq!(
            paths(&t, false).unwrap_err(),
            "error: you must specify only one resource"
        );
    }
}
