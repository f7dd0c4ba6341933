//! `describe`, as kubectl runs it (kubectl `pkg/cmd/describe` with the describers of
//! `pkg/describe/describe.go`).
//!
//! 1. Resolve the types through discovery (`api::builder`, shared with `get`) and fetch the
//!    objects as kubectl's builder does (lists paged with `--chunk-size`, names fetched one by
//!    one, errors collected, not fatal).
//! 2. Events are shown for a single object, hidden for several objects or after an error, unless
//!    `--show-events` was given.
//! 3. A `TYPE NAME` that was not found is retried as a name prefix in the namespace
//!    (`DescribeMatchingResources`).
//! 4. Each object goes to the describer of its kind ([`pod`], [`workloads`], [`network`],
//!    [`storage`], [`node`], [`namespace`], [`config`], [`policy`], [`rbac`]) or to the generic
//!    describer ([`generic`])
//!    for every other kind, CRDs included (and CertificateSigningRequest, whose dedicated
//!    describer would need the request's PKCS #10 parsed). Describers fetch
//!    what they need besides the object (events, pods, replica sets, endpoint slices, ...).
//!
//! The API server's warnings (the v1 Endpoints deprecation) go to stderr once each, as kubectl's
//! deduplicating warning handler prints them.
//!
//! Secret values never leave the cluster: a Secret is described by the size of each value, also
//! for `kubernetes.io/service-account-token` Secrets, whose token kubectl would print in clear.

mod config;
mod generic;
mod namespace;
mod network;
mod node;
mod pod;
mod policy;
mod quantity;
mod rbac;
mod storage;
mod workloads;
mod writer;

pub(crate) use pod::describe_pod_template;
pub(crate) use writer::Writer;

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use kubeline_shared::command::Describe;
use kubeline_shared::limits::MAX_DESCRIBE_OBJECTS;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::exec::api::builder::{self, Visit};
use crate::exec::api::discovery::{ApiResource, Discovery, target_types, warnings_first};
use crate::exec::api::{self, ApiError};
use crate::exec::{Executor, Outcome};

/// How many objects are described at once (each may take a few requests).
const CONCURRENCY: usize = 8;

/// What every describer is told (kubectl's `DescriberSettings`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Settings {
    pub show_events: bool,
    pub chunk_size: u32,
}

/// A failure, worded as kubectl prints it.
#[derive(Debug, Clone)]
enum Fail {
    Api(ApiError),
    Other(String),
}

impl Fail {
    fn message(&self) -> String {
        match self {
            Fail::Api(e) => e.kubectl_message(),
            Fail::Other(m) => format!("error: {m}"),
        }
    }

    fn is_not_found(&self) -> bool {
        matches!(self, Fail::Api(e) if e.is_not_found())
    }
}

impl From<ApiError> for Fail {
    fn from(e: ApiError) -> Self {
        Fail::Api(e)
    }
}

pub(crate) async fn run(ex: &Executor, cmd: &Describe) -> Outcome {
    let warnings = ex.shortcut_warnings(&target_types(&cmd.targets)).await;
    warnings_first(&warnings, describe(ex, cmd).await)
}

async fn describe(ex: &Executor, cmd: &Describe) -> Outcome {
    let namespace = cmd
        .namespace
        .clone()
        .unwrap_or_else(|| ex.default_namespace.to_string());
    let visits = match builder::resolve(ex, &cmd.targets, &namespace, cmd.all_namespaces).await {
        Ok(v) => v,
        Err(e) => return Outcome::failed(e.message()),
    };

    // The builder: every visit, in order; errors are collected.
    // Boxed for the same reason as the describers below.
    let fetches: Vec<BoxFuture<'_, _>> = visits
        .iter()
        .map(|v| fetch_visit(ex, v, cmd).boxed())
        .collect();
    let results: Vec<_> = futures::stream::iter(fetches)
        .buffered(CONCURRENCY)
        .collect()
        .await;
    let mut infos: Vec<(ApiResource, Value)> = Vec::new();
    let mut errors: Vec<Fail> = Vec::new();
    // kubectl's warning handler prints each distinct warning once, as it arrives.
    let mut warnings: Vec<String> = Vec::new();
    for (v, r) in visits.iter().zip(results) {
        match r {
            Ok((objects, w)) => {
                for w in w {
                    if !warnings.contains(&w) {
                        warnings.push(w);
                    }
                }
                infos.extend(objects.into_iter().map(|o| (v.mapping.clone(), o)));
            }
            Err(e) => errors.push(Fail::Api(e)),
        }
    }
    if infos.len() > MAX_DESCRIBE_OBJECTS {
        return Outcome::failed(Fail::Other(too_many_objects(infos.len())).message());
    }
    let mut settings = Settings {
        show_events: true,
        chunk_size: cmd.chunk_size,
    };
    if !errors.is_empty() || infos.len() > 1 {
        settings.show_events = false;
    }
    if let Some(explicit) = cmd.show_events {
        settings.show_events = explicit;
    }

    // kubectl treats the builder's error as NotFound only when it is a single NotFound.
    if errors.len() == 1 && errors[0].is_not_found() && cmd.args.len() == 2 {
        let original = errors.remove(0);
        let mut outcome = describe_matching(ex, cmd, &namespace, settings, original).await;
        outcome.error = with_warnings(&warnings, outcome.error);
        return outcome;
    }

    let now = chrono::Utc::now();
    // Boxed so the stream's item type names no closure lifetime (which `tokio::spawn` in the
    // link cannot prove general enough).
    let futures: Vec<BoxFuture<'_, Result<String, Fail>>> = infos
        .iter()
        .map(|(m, o)| describe_object(ex, m, o.clone(), settings, now).boxed())
        .collect();
    let described: Vec<Result<String, Fail>> = futures::stream::iter(futures)
        .buffered(CONCURRENCY)
        .collect()
        .await;

    let mut out = String::new();
    let mut first = true;
    let mut seen: Vec<String> = Vec::new();
    for d in described {
        match d {
            Ok(s) => {
                if !first {
                    out.push_str("\n\n");
                }
                first = false;
                out.push_str(&s);
            }
            Err(e) => {
                let m = e.message();
                if !seen.contains(&m) {
                    seen.push(m);
                    errors.push(e);
                }
            }
        }
    }
    let mut stderr = with_warnings(&warnings, None).unwrap_or_default();
    if infos.is_empty() && errors.is_empty() {
        if cmd.all_namespaces {
            stderr.push_str("No resources found\n");
        } else {
            stderr.push_str(&format!("No resources found in {namespace} namespace.\n"));
        }
    }
    for e in &errors {
        stderr.push_str(&e.message());
        stderr.push('\n');
    }
    Outcome {
        output: out,
        error: (!stderr.is_empty()).then_some(stderr),
        exit_code: if errors.is_empty() { 0 } else { 1 },
    }
}

/// `DescribeMatchingResources`: every object of the type in the namespace whose name starts
/// with the prefix, each followed by a newline; the original error if none matches.
async fn describe_matching(
    ex: &Executor,
    cmd: &Describe,
    namespace: &str,
    settings: Settings,
    original: Fail,
) -> Outcome {
    let (resource, prefix) = (&cmd.args[0], &cmd.args[1]);
    let fail = |f: Fail, out: String| Outcome {
        output: out,
        error: Some(format!("{}\n", f.message())),
        exit_code: 1,
    };
    let discovery = match ex.discovery(false).await {
        Ok(d) => d,
        Err(e) => return fail(e.into(), String::new()),
    };
    let visit = match matching_visit(&discovery, resource, namespace) {
        Ok(v) => v,
        Err(f) => return fail(f, String::new()),
    };
    let list_cmd = Describe {
        label_selector: None,
        ..cmd.clone()
    };
    let (objects, warnings) = match fetch_visit(ex, &visit, &list_cmd).await {
        Ok(o) => o,
        Err(e) => return fail(e.into(), String::new()),
    };
    let matching = objects
        .iter()
        .filter(|o| {
            o.pointer("/metadata/name")
                .and_then(Value::as_str)
                .is_some_and(|n| n.starts_with(prefix.as_str()))
        })
        .count();
    if matching > MAX_DESCRIBE_OBJECTS {
        return fail(Fail::Other(too_many_objects(matching)), String::new());
    }
    let now = chrono::Utc::now();
    let mut out = String::new();
    let mut found = false;
    for o in objects {
        let name = o
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !name.starts_with(prefix.as_str()) {
            continue;
        }
        found = true;
        match describe_object(ex, &visit.mapping, o.clone(), settings, now).await {
            Ok(s) => {
                out.push_str(&s);
                out.push('\n');
            }
            Err(e) => return fail(e, out),
        }
    }
    let mut outcome = if found {
        Outcome {
            output: out,
            error: None,
            exit_code: 0,
        }
    } else {
        fail(original, out)
    };
    outcome.error = with_warnings(&warnings, outcome.error);
    outcome
}

/// Why a describe that matched too many objects was refused.
fn too_many_objects(n: usize) -> String {
    format!(
        "describe matched {n} objects; kubeline describes at most {MAX_DESCRIBE_OBJECTS} in \
         one command (each costs several API requests): narrow it with a name, -l or -n"
    )
}

/// `Warning: ...` lines (each once) before whatever else goes to stderr.
fn with_warnings(warnings: &[String], stderr: Option<String>) -> Option<String> {
    let mut out = String::new();
    for w in warnings {
        if !out.contains(&format!("Warning: {w}\n")) {
            out.push_str(&format!("Warning: {w}\n"));
        }
    }
    out.push_str(stderr.as_deref().unwrap_or_default());
    (!out.is_empty()).then_some(out)
}

/// The builder of `DescribeMatchingResources`: one resource type (or one `type/name`) in the
/// namespace, no selector.
fn matching_visit(discovery: &Discovery, resource: &str, namespace: &str) -> Result<Visit, Fail> {
    let (kind, name) = match resource.split_once('/') {
        Some((k, n)) => (k, Some(n.to_string())),
        None => (resource, None),
    };
    let types = builder::expand(
        discovery,
        &kind.split(',').map(str::to_string).collect::<Vec<_>>(),
    );
    if types.len() != 1 {
        return Err(Fail::Other(
            "you may only specify a single resource type".into(),
        ));
    }
    let mapping = discovery
        .resolve(&types[0])
        .cloned()
        .map_err(|e| no_match(&e.resource))?;
    let ns = mapping.namespaced.then(|| namespace.to_string());
    Ok(Visit {
        mapping,
        namespace: ns,
        name,
    })
}

fn no_match(resource: &str) -> Fail {
    Fail::Other(format!(
        "the server doesn't have a resource type {resource:?}"
    ))
}

// === fetching ===

/// The objects of one visit, and the API server's warnings (`Warning:` lines kubectl prints).
async fn fetch_visit(
    ex: &Executor,
    v: &Visit,
    cmd: &Describe,
) -> Result<(Vec<Value>, Vec<String>), ApiError> {
    let path = v.collection_path();
    if let Some(name) = &v.name {
        let what = v.what();
        let path = format!("{path}/{}", api::segment(name));
        let response =
            api::get_object(&ex.client, &path, v.namespace.as_deref(), Some(&what)).await?;
        let mut obj = response.body;
        fill_type(&mut obj, &v.mapping);
        return Ok((vec![obj], response.warnings));
    }
    let mut query = Vec::new();
    if let Some(s) = &cmd.label_selector {
        query.push(("labelSelector", s.clone()));
    }
    let (mut items, warnings) = list_warned(ex, &path, &query, cmd.chunk_size, &v.what())
        .await
        .map_err(|e| {
            let m = &v.mapping;
            let subject = api::gvr_string(&m.group, &m.version, &m.resource);
            let label_selector = cmd.label_selector.as_deref().unwrap_or_default();
            api::enhance_list_error(e, label_selector, "", &subject)
        })?;
    for i in &mut items {
        fill_type(i, &v.mapping);
    }
    Ok((items, warnings))
}

/// The `apiVersion` and `kind` the API server leaves out of list items.
fn fill_type(obj: &mut Value, m: &ApiResource) {
    if let Some(o) = obj.as_object_mut() {
        let api_version = if m.group.is_empty() {
            m.version.clone()
        } else {
            format!("{}/{}", m.group, m.version)
        };
        if o.get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .is_empty()
        {
            o.insert("kind".into(), Value::String(m.kind.clone()));
        }
        if o.get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .is_empty()
        {
            o.insert("apiVersion".into(), Value::String(api_version));
        }
    }
}

/// GETs one object.
pub(crate) async fn get_object(ex: &Executor, path: &str) -> Result<Value, ApiError> {
    Ok(api::get(&ex.client, path, api::ACCEPT_JSON, None)
        .await?
        .body)
}

/// Lists every item of a collection, `chunk` at a time (`FollowContinue`).
pub(crate) async fn list(
    ex: &Executor,
    path: &str,
    query: &[(&str, String)],
    chunk: u32,
    what: &str,
) -> Result<Vec<Value>, ApiError> {
    Ok(list_warned(ex, path, query, chunk, what).await?.0)
}

/// [`list`], with the API server's warnings.
async fn list_warned(
    ex: &Executor,
    path: &str,
    query: &[(&str, String)],
    chunk: u32,
    what: &str,
) -> Result<(Vec<Value>, Vec<String>), ApiError> {
    let mut items = Vec::new();
    let mut warnings: Vec<String> = Vec::new();
    let mut continue_token: Option<String> = None;
    let mut pages = 0;
    loop {
        pages += 1;
        if pages > ex.max_list_pages {
            return Err(ApiError::too_many_pages(ex.max_list_pages, chunk));
        }
        let q = {
            let mut q = url::form_urlencoded::Serializer::new(String::new());
            for (k, v) in query {
                q.append_pair(k, v);
            }
            if chunk > 0 {
                q.append_pair("limit", &chunk.to_string());
            }
            if let Some(c) = &continue_token {
                q.append_pair("continue", c);
            }
            q.finish()
        };
        let url = if q.is_empty() {
            path.to_string()
        } else {
            format!("{path}?{q}")
        };
        let response = api::get(&ex.client, &url, api::ACCEPT_JSON, Some(what)).await?;
        warnings.extend(response.warnings);
        let mut body = response.body;
        if let Some(Value::Array(page)) = body.get_mut("items").map(Value::take) {
            items.extend(page);
        }
        match body
            .pointer("/metadata/continue")
            .and_then(Value::as_str)
            .filter(|c| !c.is_empty())
        {
            Some(c) if chunk > 0 => continue_token = Some(c.to_string()),
            _ => return Ok((items, warnings)),
        }
    }
}

/// Lists a collection and decodes its items.
pub(crate) async fn list_typed<T: DeserializeOwned>(
    ex: &Executor,
    path: &str,
    query: &[(&str, String)],
    chunk: u32,
    what: &str,
) -> Result<Vec<T>, ApiError> {
    list(ex, path, query, chunk, what)
        .await?
        .into_iter()
        .map(decode)
        .collect()
}

/// Decodes an object into its typed form.
pub(crate) fn decode<T: DeserializeOwned>(v: Value) -> Result<T, ApiError> {
    serde_json::from_value(v)
        .map_err(|e| ApiError::Transport(format!("cannot decode the server's response: {e}")))
}

/// The object an event search is about (`reference.GetReference` of the object).
pub(crate) struct EventTarget<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    pub kind: Option<&'a str>,
    pub uid: Option<&'a str>,
}

/// `searchEvents`: the events whose `involvedObject` matches, all pages.
pub(crate) async fn search_events(
    ex: &Executor,
    target: &EventTarget<'_>,
    chunk: u32,
) -> Result<Vec<k8s_openapi::api::core::v1::Event>, ApiError> {
    // fields.Set{...}.AsSelector(): terms sorted by key.
    let mut terms = vec![
        format!("involvedObject.name={}", escape_field(target.name)),
        format!(
            "involvedObject.namespace={}",
            escape_field(target.namespace)
        ),
    ];
    if let Some(k) = target.kind.filter(|k| !k.is_empty()) {
        terms.push(format!("involvedObject.kind={}", escape_field(k)));
    }
    if let Some(u) = target.uid.filter(|u| !u.is_empty()) {
        terms.push(format!("involvedObject.uid={}", escape_field(u)));
    }
    terms.sort();
    let path = if target.namespace.is_empty() {
        "/api/v1/events".to_string()
    } else {
        format!(
            "/api/v1/namespaces/{}/events",
            api::segment(target.namespace)
        )
    };
    list_typed(
        ex,
        &path,
        &[("fieldSelector", terms.join(","))],
        chunk,
        "list events",
    )
    .await
}

/// `fields.EscapeValue`.
fn escape_field(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace(',', "\\,")
        .replace('=', "\\=")
}

/// Events of an object (empty, not shown, when the settings hide them). Errors are ignored,
/// as kubectl ignores them (`events, _ = searchEvents(...)`).
pub(crate) async fn events_for(
    ex: &Executor,
    settings: Settings,
    target: &EventTarget<'_>,
) -> Option<Vec<k8s_openapi::api::core::v1::Event>> {
    if !settings.show_events {
        return None;
    }
    Some(
        search_events(ex, target, settings.chunk_size)
            .await
            .unwrap_or_default(),
    )
}

/// The events of an object, found by its kind, name, namespace and UID (empty namespace for a
/// cluster-scoped object).
pub(crate) async fn object_events(
    ex: &Executor,
    settings: Settings,
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    kind: &str,
) -> Option<Vec<k8s_openapi::api::core::v1::Event>> {
    events_for(
        ex,
        settings,
        &EventTarget {
            namespace: meta.namespace.as_deref().unwrap_or_default(),
            name: meta.name.as_deref().unwrap_or_default(),
            kind: Some(kind),
            uid: meta.uid.as_deref(),
        },
    )
    .await
}

// === dispatch ===

async fn describe_object(
    ex: &Executor,
    mapping: &ApiResource,
    obj: Value,
    settings: Settings,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<String, Fail> {
    let result = match (mapping.group.as_str(), mapping.kind.as_str()) {
        ("", "Pod") => pod::describe(ex, obj, settings, now).await,
        ("apps", "Deployment") => workloads::deployment(ex, obj, settings, now).await,
        ("apps", "ReplicaSet") => workloads::replica_set(ex, obj, settings, now).await,
        ("apps", "StatefulSet") => workloads::stateful_set(ex, obj, settings, now).await,
        ("apps", "DaemonSet") => workloads::daemon_set(ex, obj, settings, now).await,
        ("batch", "Job") => workloads::job(ex, obj, settings, now).await,
        ("batch", "CronJob") => workloads::cron_job(ex, obj, settings, now).await,
        ("", "Service") => network::service(ex, obj, settings, now).await,
        ("networking.k8s.io", "Ingress") => network::ingress(ex, obj, settings, now).await,
        ("", "Node") => node::node(ex, obj, settings, now).await,
        ("", "Namespace") => namespace::namespace(ex, obj, settings, now).await,
        ("", "ConfigMap") => config::config_map(ex, obj, settings, now).await,
        ("", "Secret") => config::secret(obj, now),
        ("", "PersistentVolume") => storage::persistent_volume(ex, obj, settings, now).await,
        ("", "PersistentVolumeClaim") => {
            storage::persistent_volume_claim(ex, obj, settings, now).await
        }
        ("", "ServiceAccount") => config::service_account(ex, obj, settings, now).await,
        ("", "ReplicationController") => {
            workloads::replication_controller(ex, obj, settings, now).await
        }
        ("", "LimitRange") => policy::limit_range(obj, now),
        ("", "ResourceQuota") => policy::resource_quota(obj, now),
        ("", "Endpoints") => network::endpoints(ex, obj, settings, now).await,
        ("autoscaling", "HorizontalPodAutoscaler") => {
            policy::horizontal_pod_autoscaler(ex, obj, settings, now).await
        }
        ("policy", "PodDisruptionBudget") => {
            policy::pod_disruption_budget(ex, obj, settings, now).await
        }
        ("scheduling.k8s.io", "PriorityClass") => {
            policy::priority_class(ex, obj, settings, now).await
        }
        ("rbac.authorization.k8s.io", "Role" | "ClusterRole") => rbac::role(obj, now),
        ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding") => {
            rbac::binding(obj, now)
        }
        ("networking.k8s.io", "NetworkPolicy") => network::network_policy(obj, now),
        ("networking.k8s.io", "IngressClass") => {
            network::ingress_class(ex, obj, settings, now).await
        }
        ("networking.k8s.io", "ServiceCIDR") => network::service_cidr(ex, obj, settings, now).await,
        ("networking.k8s.io", "IPAddress") => network::ip_address(ex, obj, settings, now).await,
        ("discovery.k8s.io", "EndpointSlice") => {
            network::endpoint_slice(ex, obj, settings, now).await
        }
        ("storage.k8s.io", "StorageClass") => storage::storage_class(ex, obj, settings, now).await,
        ("storage.k8s.io", "CSINode") => storage::csi_node(ex, obj, settings, now).await,
        ("storage.k8s.io", "VolumeAttributesClass") => {
            storage::volume_attributes_class(ex, obj, settings, now).await
        }
        _ => generic::describe(ex, obj, settings, now).await,
    };
    result.map_err(Fail::from)
}
