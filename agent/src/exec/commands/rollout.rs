//! `rollout status|history`, as kubectl runs them (`pkg/cmd/rollout`,
//! `polymorphichelpers/rollout_status.go` and `history.go`).
//!
//! The objects are found like `get` finds them (one GET per name, or a list of a type with an
//! optional selector). Then, per object:
//! - `status`: kubectl's status viewer for Deployments, DaemonSets and StatefulSets, applied
//!   once to the object as it is now: the `--watch=false` snapshot (see
//!   [`kubeline_shared::command::Rollout`]). A rollout still in progress prints what it waits
//!   for and exits 0, as `kubectl rollout status --watch=false` does.
//! - `history`: the revisions (ReplicaSets a Deployment controls, or ControllerRevisions a
//!   StatefulSet/DaemonSet controls) as kubectl's `REVISION  CHANGE-CAUSE` table, printed after
//!   the object's `kind.group/name` as kubectl's name printer does; `--revision=N` shows that
//!   revision's pod template. With `-o yaml|name`, the revisions' objects themselves (kubectl's
//!   `GetHistory`: the ReplicaSets, or the StatefulSet/DaemonSet with each revision applied) go
//!   through kubectl's printers, in revision order.
//!
//! A named object is fetched as kubectl's `Info.Get` fetches it (a missing namespace is named in
//! the error) and a list error names the selector (`EnhanceListError`).
//!
//! `status` in a stream watches (kubectl's default, [`watch`]): each object in turn, its status
//! line printed now and again at every change of it until the rollout is done, as kubectl's
//! `UntilWithSync` loop does; a rollout that exceeds its progress deadline, an object deleted
//! meanwhile and `--timeout` end the command with kubectl's errors.

use super::describe::{Writer, describe_pod_template};
use super::events::omit_managed_fields;
use crate::exec::api::builder;
use crate::exec::api::discovery::{ApiResource, target_types, warnings_first};
use crate::exec::api::watch::Watch;
use crate::exec::api::{self, ApiError};
use crate::exec::sink::Sink;
use crate::exec::{Executor, Outcome};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use kubeline_printers::go::fmt::go_quote;
use kubeline_printers::go::labels;
use kubeline_printers::go::yaml as goyaml;
use kubeline_shared::command::{GetOutput, Rollout, RolloutAction, Targets};
use serde_json::Value;

const REVISION_ANNOTATION: &str = "deployment.kubernetes.io/revision";
const CHANGE_CAUSE_ANNOTATION: &str = "kubernetes.io/change-cause";

pub(crate) async fn run(ex: &Executor, cmd: &Rollout) -> Outcome {
    let warnings = ex.shortcut_warnings(&target_types(&cmd.targets)).await;
    warnings_first(&warnings, rollout(ex, cmd).await)
}

async fn rollout(ex: &Executor, cmd: &Rollout) -> Outcome {
    let namespace = cmd
        .namespace
        .clone()
        .unwrap_or_else(|| ex.default_namespace.to_string());
    let visits = match plan(ex, cmd).await {
        Ok(v) => v,
        Err(message) => return Outcome::failed(message),
    };
    let mut stdout = String::new();
    let mut errors: Vec<String> = Vec::new();
    let mut found = false;
    // kubectl's YAML printer separates every object after the first with `---`.
    let mut printed = 0usize;
    for (mapping, name) in visits {
        let objects = match fetch(ex, cmd, &mapping, &namespace, name.as_deref()).await {
            Ok(o) => o,
            Err(e) => {
                errors.push(e.kubectl_message());
                continue;
            }
        };
        for object in objects {
            found = true;
            let result = match cmd.action {
                RolloutAction::Status => {
                    status(&mapping, &object, cmd.revision).map(|(text, _)| text)
                }
                RolloutAction::History if cmd.output != GetOutput::Table => {
                    history_objects(ex, &mapping, &object, cmd, &mut printed).await
                }
                RolloutAction::History => history(ex, &mapping, &object, cmd.revision).await,
            };
            match result {
                Ok(text) => stdout.push_str(&text),
                Err(e) => errors.push(e),
            }
        }
    }
    let mut stderr = String::new();
    if !found && errors.is_empty() {
        stderr.push_str(&format!("No resources found in {namespace} namespace.\n"));
    }
    for e in &errors {
        stderr.push_str(e);
        stderr.push('\n');
    }
    Outcome {
        output: stdout,
        error: (!stderr.is_empty()).then_some(stderr),
        exit_code: if errors.is_empty() { 0 } else { 1 },
    }
}

/// `rollout status` watching each object until its rollout is done (writes into `sink`).
pub(crate) async fn watch(ex: &Executor, cmd: &Rollout, sink: &mut Sink) -> Outcome {
    let warnings = ex.shortcut_warnings(&target_types(&cmd.targets)).await;
    let mut stderr = String::new();
    let exit_code = match watch_all(ex, cmd, sink, &mut stderr).await {
        Ok(()) => 0,
        Err(line) => {
            stderr.push_str(&line);
            stderr.push('\n');
            1
        }
    };
    warnings_first(
        &warnings,
        Outcome {
            output: String::new(),
            error: (!stderr.is_empty()).then_some(stderr),
            exit_code,
        },
    )
}

/// Every object in turn (kubectl's `Visit`); `Err` is the line the command ends with. A sink
/// whose reader has gone ends it quietly.
async fn watch_all(
    ex: &Executor,
    cmd: &Rollout,
    sink: &mut Sink,
    stderr: &mut String,
) -> Result<(), String> {
    let namespace = cmd
        .namespace
        .clone()
        .unwrap_or_else(|| ex.default_namespace.to_string());
    let mut found = false;
    for (mapping, name) in plan(ex, cmd).await? {
        let objects = fetch(ex, cmd, &mapping, &namespace, name.as_deref())
            .await
            .map_err(|e| e.kubectl_message())?;
        for object in objects {
            found = true;
            let until_done = watch_one(ex, cmd, &mapping, &namespace, object, sink);
            let ended = match cmd.timeout_ms {
                None => until_done.await,
                Some(ms) => tokio::time::timeout(std::time::Duration::from_millis(ms), until_done)
                    .await
                    .unwrap_or_else(|_| {
                        Err(Some(
                            "error: timed out waiting for the condition".to_string(),
                        ))
                    }),
            };
            match ended {
                Ok(()) => {}
                // The reader has gone: nothing more to say.
                Err(None) => return Ok(()),
                Err(Some(line)) => return Err(line),
            }
        }
    }
    if !found {
        stderr.push_str(&format!("No resources found in {namespace} namespace.\n"));
    }
    Ok(())
}

/// One object's status now and at each change until its rollout is done. `Err(None)`: the
/// sink's reader has gone; `Err(Some(line))`: kubectl's error.
async fn watch_one(
    ex: &Executor,
    cmd: &Rollout,
    mapping: &ApiResource,
    namespace: &str,
    object: Value,
    sink: &mut Sink,
) -> Result<(), Option<String>> {
    let print = |object: &Value| status(mapping, object, cmd.revision).map_err(Some);
    let (text, mut done) = print(&object)?;
    sink.write(&text).await.map_err(|_| None)?;
    if done {
        return Ok(());
    }
    let name = name_of(&object);
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("fieldSelector", &format!("metadata.name={name}"))
        .finish();
    let path = format!("{}?{query}", collection(mapping, namespace));
    let mut changes = Watch::new(
        &ex.client,
        path,
        api::ACCEPT_JSON,
        format!("get {}", mapping.group_resource()),
        str_at(&object, "/metadata/resourceVersion").to_string(),
    );
    while !done {
        let event = changes
            .next()
            .await
            .map_err(|e| Some(e.kubectl_message()))?;
        match event.kind.as_str() {
            "ADDED" | "MODIFIED" => {
                let (text, now_done) = print(&event.object)?;
                sink.write(&text).await.map_err(|_| None)?;
                done = now_done;
            }
            // kubectl stops rather than silently watch a new object of the same name.
            "DELETED" => return Err(Some("error: object has been deleted".to_string())),
            _ => {}
        }
    }
    Ok(())
}

/// Resolves the targets: (mapping, Some(name)) per named object, (mapping, None) per type.
async fn plan(ex: &Executor, cmd: &Rollout) -> Result<Vec<(ApiResource, Option<String>)>, String> {
    let wanted: Vec<(String, Option<String>)> = match &cmd.targets {
        Targets::Types(types) => types.iter().map(|t| (t.clone(), None)).collect(),
        Targets::Names { resource, names } => names
            .iter()
            .map(|n| (resource.clone(), Some(n.clone())))
            .collect(),
        Targets::Pairs(pairs) => pairs
            .iter()
            .map(|p| (p.resource.clone(), Some(p.name.clone())))
            .collect(),
    };
    let mut out = Vec::new();
    for (resource, name) in wanted {
        let mapping = builder::resolve_one(ex, &resource)
            .await
            .map_err(|e| e.message())?;
        out.push((mapping, name));
    }
    Ok(out)
}

fn collection(mapping: &ApiResource, namespace: &str) -> String {
    if mapping.namespaced {
        format!(
            "{}/namespaces/{}/{}",
            mapping.path_prefix(),
            api::segment(namespace),
            mapping.resource
        )
    } else {
        format!("{}/{}", mapping.path_prefix(), mapping.resource)
    }
}

async fn fetch(
    ex: &Executor,
    cmd: &Rollout,
    mapping: &ApiResource,
    namespace: &str,
    name: Option<&str>,
) -> Result<Vec<Value>, ApiError> {
    let base = collection(mapping, namespace);
    match name {
        Some(n) => {
            let what = format!("get {} {n}", mapping.group_resource());
            let path = format!("{base}/{}", api::segment(n));
            let ns = mapping.namespaced.then_some(namespace);
            Ok(vec![
                api::get_object(&ex.client, &path, ns, Some(&what))
                    .await?
                    .body,
            ])
        }
        None => {
            let q = {
                let mut q = url::form_urlencoded::Serializer::new(String::new());
                if let Some(s) = &cmd.selector {
                    q.append_pair("labelSelector", s);
                }
                q.finish()
            };
            let path = if q.is_empty() {
                base
            } else {
                format!("{base}?{q}")
            };
            let what = format!("get {}", mapping.group_resource());
            let list = api::get(&ex.client, &path, api::ACCEPT_JSON, Some(&what))
                .await
                .map_err(|e| {
                    let subject =
                        api::gvr_string(&mapping.group, &mapping.version, &mapping.resource);
                    let selector = cmd.selector.as_deref().unwrap_or_default();
                    api::enhance_list_error(e, selector, "", &subject)
                })?
                .body;
            Ok(match list {
                Value::Object(mut m) => match m.remove("items") {
                    Some(Value::Array(items)) => items,
                    _ => Vec::new(),
                },
                _ => Vec::new(),
            })
        }
    }
}

fn int(v: &Value, pointer: &str) -> i64 {
    v.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn name_of(v: &Value) -> &str {
    str_at(v, "/metadata/name")
}

/// apimachinery's `GroupKind.String()`: `Deployment.apps`, `Pod`.
fn group_kind(m: &ApiResource) -> String {
    if m.group.is_empty() {
        m.kind.clone()
    } else {
        format!("{}.{}", m.kind, m.group)
    }
}

// === status ===

/// kubectl's status viewers, applied once.
fn status(
    mapping: &ApiResource,
    o: &Value,
    revision: Option<i64>,
) -> Result<(String, bool), String> {
    let name = name_of(o);
    match (mapping.group.as_str(), mapping.kind.as_str()) {
        ("apps" | "extensions", "Deployment") => deployment_status(o, name, revision),
        ("apps" | "extensions", "DaemonSet") => {
            if str_at(o, "/spec/updateStrategy/type") != "RollingUpdate" {
                return Err(
                    "error: rollout status is only available for RollingUpdate strategy type"
                        .into(),
                );
            }
            if int(o, "/metadata/generation") <= int(o, "/status/observedGeneration") {
                let updated = int(o, "/status/updatedNumberScheduled");
                let desired = int(o, "/status/desiredNumberScheduled");
                let available = int(o, "/status/numberAvailable");
                if updated < desired {
                    return Ok((
                        format!(
                            "Waiting for daemon set {name:?} rollout to finish: {updated} out of \
                         {desired} new pods have been updated...\n"
                        ),
                        false,
                    ));
                }
                if available < desired {
                    return Ok((
                        format!(
                            "Waiting for daemon set {name:?} rollout to finish: {available} of \
                         {desired} updated pods are available...\n"
                        ),
                        false,
                    ));
                }
                return Ok((
                    format!("daemon set {} successfully rolled out\n", go_quote(name)),
                    true,
                ));
            }
            Ok((
                "Waiting for daemon set spec update to be observed...\n".into(),
                false,
            ))
        }
        ("apps", "StatefulSet") => statefulset_status(o),
        _ => Err(format!(
            "error: no status viewer has been implemented for {}",
            group_kind(mapping)
        )),
    }
}

fn deployment_status(
    o: &Value,
    name: &str,
    revision: Option<i64>,
) -> Result<(String, bool), String> {
    if let Some(wanted) = revision {
        let current = str_at(
            o,
            &format!(
                "/metadata/annotations/{}",
                pointer_escape(REVISION_ANNOTATION)
            ),
        );
        let current: i64 = if current.is_empty() {
            0
        } else {
            current.parse().map_err(|e| {
                format!(
                    "error: cannot get the revision of deployment {}: {e}",
                    go_quote(name)
                )
            })?
        };
        if wanted != current {
            return Err(format!(
                "error: desired revision ({wanted}) is different from the running revision \
                 ({current})"
            ));
        }
    }
    if int(o, "/metadata/generation") <= int(o, "/status/observedGeneration") {
        let progressing = o
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|c| c.get("type").and_then(Value::as_str) == Some("Progressing"));
        if progressing
            .and_then(|c| c.get("reason"))
            .and_then(Value::as_str)
            == Some("ProgressDeadlineExceeded")
        {
            return Err(format!(
                "error: deployment {name:?} exceeded its progress deadline"
            ));
        }
        let replicas = o.pointer("/spec/replicas").and_then(Value::as_i64);
        let updated = int(o, "/status/updatedReplicas");
        let current = int(o, "/status/replicas");
        let available = int(o, "/status/availableReplicas");
        if let Some(r) = replicas
            && updated < r
        {
            return Ok((
                format!(
                    "Waiting for deployment {name:?} rollout to finish: {updated} out of {r} new \
                 replicas have been updated...\n"
                ),
                false,
            ));
        }
        if current > updated {
            return Ok((
                format!(
                    "Waiting for deployment {name:?} rollout to finish: {} old replicas are pending \
                 termination...\n",
                    current - updated
                ),
                false,
            ));
        }
        if available < updated {
            return Ok((
                format!(
                    "Waiting for deployment {name:?} rollout to finish: {available} of {updated} \
                 updated replicas are available...\n"
                ),
                false,
            ));
        }
        return Ok((
            format!("deployment {} successfully rolled out\n", go_quote(name)),
            true,
        ));
    }
    Ok((
        "Waiting for deployment spec update to be observed...\n".into(),
        false,
    ))
}

fn statefulset_status(o: &Value) -> Result<(String, bool), String> {
    if str_at(o, "/spec/updateStrategy/type") != "RollingUpdate" {
        return Err(
            "error: rollout status is only available for RollingUpdate strategy type".into(),
        );
    }
    let observed = int(o, "/status/observedGeneration");
    if observed == 0 || int(o, "/metadata/generation") > observed {
        return Ok((
            "Waiting for statefulset spec update to be observed...\n".into(),
            false,
        ));
    }
    let replicas = o.pointer("/spec/replicas").and_then(Value::as_i64);
    let ready = int(o, "/status/readyReplicas");
    if let Some(r) = replicas
        && ready < r
    {
        return Ok((
            format!("Waiting for {} pods to be ready...\n", r - ready),
            false,
        ));
    }
    let updated = int(o, "/status/updatedReplicas");
    if let Some(rolling) = o
        .pointer("/spec/updateStrategy/rollingUpdate")
        .filter(|r| !r.is_null())
    {
        if let (Some(r), Some(partition)) =
            (replicas, rolling.get("partition").and_then(Value::as_i64))
            && updated < r - partition
        {
            return Ok((
                format!(
                    "Waiting for partitioned roll out to finish: {updated} out of {} new pods have \
                 been updated...\n",
                    r - partition
                ),
                false,
            ));
        }
        return Ok((
            format!("partitioned roll out complete: {updated} new pods have been updated...\n"),
            true,
        ));
    }
    let update_revision = str_at(o, "/status/updateRevision");
    let current_revision = str_at(o, "/status/currentRevision");
    if update_revision != current_revision {
        return Ok((
            format!(
                "waiting for statefulset rolling update to complete {updated} pods at revision \
             {update_revision}...\n"
            ),
            false,
        ));
    }
    Ok((
        format!(
            "statefulset rolling update complete {} pods at revision {current_revision}...\n",
            int(o, "/status/currentReplicas")
        ),
        true,
    ))
}

/// JSON pointer escaping of one key (`/` → `~1`).
fn pointer_escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

// === history ===

/// One revision: its number, change cause and pod template.
struct Revision {
    number: i64,
    change_cause: String,
    /// The pod template of the revision (`spec.template`), if it has one.
    template: Option<Value>,
    /// What kubectl's `GetHistory` gives for the revision, printed by `-o`: the ReplicaSet of
    /// a Deployment, or the StatefulSet/DaemonSet with the revision applied.
    object: Value,
}

/// The revisions of a workload, as kubectl's history viewer finds them.
async fn revisions_of(
    ex: &Executor,
    mapping: &ApiResource,
    o: &Value,
) -> Result<Vec<Revision>, String> {
    let kind = mapping.kind.as_str();
    let group = mapping.group.as_str();
    let known = matches!(
        (group, kind),
        (
            "apps" | "extensions",
            "DaemonSet" | "Deployment" | "ReplicaSet"
        ) | ("batch", "Job" | "CronJob")
            | ("" | "core", "Pod" | "ReplicationController")
            | ("apps", "StatefulSet")
    );
    if !known {
        return Err(format!(
            "error: error retrieving history for {:?}, no visitor method exists for {}",
            group_kind(mapping),
            group_kind(mapping)
        ));
    }
    match (group, kind) {
        ("apps" | "extensions", "Deployment") => deployment_revisions(ex, o).await,
        ("apps", "StatefulSet") | ("apps" | "extensions", "DaemonSet") => {
            controller_revisions(ex, o, kind).await
        }
        _ => Err(format!(
            "error: no history viewer has been implemented for {:?}",
            group_kind(mapping)
        )),
    }
}

/// `rollout history -o yaml|name`: kubectl's `GetHistory` objects, by revision number
/// (the last listed wins a number), each through the printer; `--revision` prints only that
/// one and fails when it does not exist.
async fn history_objects(
    ex: &Executor,
    mapping: &ApiResource,
    o: &Value,
    cmd: &Rollout,
    printed: &mut usize,
) -> Result<String, String> {
    let revisions = revisions_of(ex, mapping, o).await?;
    let mut by_number: Vec<&Revision> = Vec::new();
    for r in &revisions {
        match by_number.iter_mut().find(|x| x.number == r.number) {
            Some(slot) => *slot = r,
            None => by_number.push(r),
        }
    }
    by_number.sort_by_key(|r| r.number);
    if let Some(n) = cmd.revision {
        by_number.retain(|r| r.number == n);
        if by_number.is_empty() {
            return Err("error: unable to find the specified revision".into());
        }
    }
    let mut out = String::new();
    for r in by_number {
        match cmd.output {
            GetOutput::Name => {
                out.push_str(&format!(
                    "{}/{}\n",
                    kind_prefix_of(&r.object),
                    name_of(&r.object)
                ));
            }
            _ => {
                if *printed > 0 {
                    out.push_str("---\n");
                }
                out.push_str(&goyaml::to_string(&r.object));
            }
        }
        *printed += 1;
    }
    Ok(out)
}

/// The name printer's `kind.group` of an object that carries its `kind` and `apiVersion`.
fn kind_prefix_of(o: &Value) -> String {
    let kind = str_at(o, "/kind").to_lowercase();
    match str_at(o, "/apiVersion").split_once('/') {
        Some((group, _)) => format!("{kind}.{group}"),
        None => kind,
    }
}

async fn history(
    ex: &Executor,
    mapping: &ApiResource,
    o: &Value,
    revision: Option<i64>,
) -> Result<String, String> {
    let revisions = revisions_of(ex, mapping, o).await?;
    let operation = match revision {
        None => format!("\n{}", history_table(&revisions)),
        // kubectl answers an object without revisions before it looks for the one asked for.
        Some(n) if revisions.is_empty() => format!("with revision #{n}\nNo rollout history found."),
        Some(n) => {
            // kubectl keeps the revisions in a map by number: the last one listed wins.
            let Some(r) = revisions.iter().rev().find(|r| r.number == n) else {
                return Err("error: unable to find the specified revision".into());
            };
            format!("with revision #{n}\n{}", print_template(r)?)
        }
    };
    Ok(format!(
        "{}/{} {operation}\n",
        mapping.kind_prefix(),
        name_of(o)
    ))
}

/// `printTemplate`: `DescribePodTemplate` through a plain `PrefixWriter` (no tab writer, so the
/// tabs are printed as they are), with the change cause among the template's annotations.
fn print_template(r: &Revision) -> Result<String, String> {
    let mut template: Option<PodTemplateSpec> = match &r.template {
        Some(t) => Some(
            serde_json::from_value(t.clone())
                .map_err(|e| format!("error: cannot decode the revision's pod template: {e}"))?,
        ),
        None => None,
    };
    if !r.change_cause.is_empty() {
        let t = template.get_or_insert_with(PodTemplateSpec::default);
        t.metadata
            .get_or_insert_with(Default::default)
            .annotations
            .get_or_insert_with(Default::default)
            .insert(CHANGE_CAUSE_ANNOTATION.into(), r.change_cause.clone());
    }
    let mut w = Writer::raw(chrono::Utc::now());
    // A revision without a template prints an empty one, as Go's zero `PodTemplateSpec` does.
    let template = template.unwrap_or_default();
    describe_pod_template(&mut w, Some(&template));
    Ok(w.finish())
}

/// `printHistory`'s table through `tabbedString` (Go `text/tabwriter`: minwidth 0, padding 2),
/// or kubectl's text for an object without revisions.
fn history_table(revisions: &[Revision]) -> String {
    if revisions.is_empty() {
        return "No rollout history found.".into();
    }
    let mut sorted: Vec<&Revision> = revisions.iter().collect();
    sorted.sort_by_key(|r| r.number);
    sorted.dedup_by_key(|r| r.number);
    let width = sorted
        .iter()
        .map(|r| r.number.to_string().chars().count())
        .chain(std::iter::once("REVISION".len()))
        .max()
        .unwrap_or(0)
        + 2;
    let mut out = format!("{:<width$}CHANGE-CAUSE\n", "REVISION");
    for r in sorted {
        let cause = if r.change_cause.is_empty() {
            "<none>"
        } else {
            &r.change_cause
        };
        out.push_str(&format!("{:<width$}{cause}\n", r.number.to_string()));
    }
    out
}

fn annotation<'a>(o: &'a Value, key: &str) -> &'a str {
    o.pointer("/metadata/annotations")
        .and_then(|a| a.get(key))
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn controlled_by(child: &Value, owner: &Value) -> bool {
    let uid = str_at(owner, "/metadata/uid");
    child
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|r| {
            r.get("controller").and_then(Value::as_bool) == Some(true)
                && r.get("uid").and_then(Value::as_str) == Some(uid)
        })
}

/// `?labelSelector=` with `metav1.LabelSelectorAsSelector(spec.selector).String()`, or the
/// error apimachinery gives for a selector it cannot read.
fn selector_query(o: &Value) -> Result<String, String> {
    let selector = labels::selector_string(o.pointer("/spec/selector"))?;
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    q.append_pair("labelSelector", &selector);
    Ok(q.finish())
}

async fn list_items(ex: &Executor, path: &str, what: &str) -> Result<Vec<Value>, ApiError> {
    let body = api::get(&ex.client, path, api::ACCEPT_JSON, Some(what))
        .await?
        .body;
    Ok(match body {
        Value::Object(mut m) => match m.remove("items") {
            Some(Value::Array(items)) => items,
            _ => Vec::new(),
        },
        _ => Vec::new(),
    })
}

/// The ReplicaSets a Deployment controls, with their revision annotations.
async fn deployment_revisions(ex: &Executor, d: &Value) -> Result<Vec<Revision>, String> {
    let name = name_of(d);
    let namespace = str_at(d, "/metadata/namespace");
    let failed =
        |e: String| format!("error: failed to retrieve replica sets from deployment {name}: {e}");
    let path = format!(
        "/apis/apps/v1/namespaces/{}/replicasets?{}",
        api::segment(namespace),
        selector_query(d).map_err(failed)?
    );
    let sets = list_items(ex, &path, "get replicasets.apps")
        .await
        .map_err(|e| failed(e.kubectl_message()))?;
    Ok(sets
        .iter()
        .filter(|rs| controlled_by(rs, d))
        .filter_map(|rs| {
            // deploymentutil.Revision: no annotation is revision 0; a bad one is skipped.
            let number = match rs
                .pointer("/metadata/annotations")
                .and_then(|a| a.get(REVISION_ANNOTATION))
            {
                None => 0,
                Some(v) => v.as_str()?.parse::<i64>().ok()?,
            };
            let mut object = rs.clone();
            omit_managed_fields(&mut object);
            if let Value::Object(m) = &mut object {
                // The typed ReplicaSet, as kubectl's type setter marks it.
                m.insert("kind".into(), "ReplicaSet".into());
                m.insert("apiVersion".into(), "apps/v1".into());
            }
            Some(Revision {
                number,
                change_cause: annotation(rs, CHANGE_CAUSE_ANNOTATION).to_string(),
                template: rs.pointer("/spec/template").cloned(),
                object,
            })
        })
        .collect())
}

/// The ControllerRevisions a StatefulSet or DaemonSet controls.
async fn controller_revisions(
    ex: &Executor,
    o: &Value,
    kind: &str,
) -> Result<Vec<Revision>, String> {
    let name = name_of(o);
    let namespace = str_at(o, "/metadata/namespace");
    let failed =
        |e: String| format!("error: unable to find history controlled by {kind} {name}: {e}");
    let path = format!(
        "/apis/apps/v1/namespaces/{}/controllerrevisions?{}",
        api::segment(namespace),
        selector_query(o).map_err(failed)?
    );
    let revisions = list_items(ex, &path, "get controllerrevisions.apps")
        .await
        .map_err(|e| failed(e.kubectl_message()))?;
    Ok(revisions
        .iter()
        .filter(|r| controlled_by(r, o))
        .map(|r| {
            let template = revision_template(o, r);
            // `applyStatefulSetHistory`/`applyDaemonSetHistory`: the object with the
            // revision's template.
            let mut object = o.clone();
            omit_managed_fields(&mut object);
            if let Value::Object(m) = &mut object {
                // The typed object kubectl's apps/v1 client returns, as its type setter marks it
                // (list items come without kind and apiVersion).
                m.insert("kind".into(), kind.into());
                m.insert("apiVersion".into(), "apps/v1".into());
            }
            if let (Some(t), Some(Value::Object(spec))) = (&template, object.get_mut("spec")) {
                spec.insert("template".into(), t.clone());
            }
            Revision {
                number: int(r, "/revision"),
                change_cause: annotation(r, CHANGE_CAUSE_ANNOTATION).to_string(),
                template,
                object,
            }
        })
        .collect())
}

/// The pod template of a StatefulSet or DaemonSet at a ControllerRevision. kubectl applies the
/// revision's data (a strategic merge patch) to the object; the controllers write that patch as
/// `{"spec":{"template":{..., "$patch":"replace"}}}`, so the result is the patch's template with
/// the directive taken out. A revision whose data holds no template leaves the object's own.
fn revision_template(object: &Value, revision: &Value) -> Option<Value> {
    match revision.pointer("/data/spec/template") {
        Some(Value::Object(t)) => {
            let mut t = t.clone();
            t.remove("$patch");
            Some(Value::Object(t))
        }
        _ => object.pointer("/spec/template").cloned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn apps(kind: &str) -> ApiResource {
        ApiResource {
            group: "apps".into(),
            version: "v1".into(),
            kind: kind.into(),
            namespaced: true,
            ..Default::default()
        }
    }

    fn deployment(
        generation: i64,
        observed: i64,
        replicas: i64,
        updated: i64,
        total: i64,
        available: i64,
    ) -> Value {
        json!({
            "metadata": {"name": "web", "generation": generation, "annotations": {REVISION_ANNOTATION: "3"}},
            "spec": {"replicas": replicas},
            "status": {"observedGeneration": observed, "updatedReplicas": updated, "replicas": total, "availableReplicas": available}
        })
    }

    #[test]
    fn deployment_snapshots() {
        let d = apps("Deployment");
        assert_eq!(
            status(&d, &deployment(2, 2, 2, 2, 2, 2), None).unwrap(),
            (
                "deployment \"web\" successfully rolled out\n".to_string(),
                true
            )
        );
        assert_eq!(
            status(&d, &deployment(2, 2, 3, 1, 3, 1), None).unwrap(),
            (
                "Waiting for deployment \"web\" rollout to finish: 1 out of 3 new replicas have been updated...\n"
                    .to_string(),
                false
            )
        );
        assert_eq!(
            status(&d, &deployment(2, 2, 2, 2, 3, 2), None).unwrap(),
            (
                "Waiting for deployment \"web\" rollout to finish: 1 old replicas are pending termination...\n"
                    .to_string(),
                false
            )
        );
        assert_eq!(
            status(&d, &deployment(2, 2, 2, 2, 2, 1), None).unwrap(),
            (
                "Waiting for deployment \"web\" rollout to finish: 1 of 2 updated replicas are available...\n"
                    .to_string(),
                false
            )
        );
        assert_eq!(
            status(&d, &deployment(3, 2, 2, 2, 2, 2), None).unwrap(),
            (
                "Waiting for deployment spec update to be observed...\n".to_string(),
                false
            )
        );
        assert_eq!(
            status(&d, &deployment(2, 2, 2, 2, 2, 2), Some(2)).unwrap_err(),
            "error: desired revision (2) is different from the running revision (3)"
        );
        let mut stuck = deployment(2, 2, 2, 1, 2, 1);
        stuck["status"]["conditions"] =
            json!([{"type": "Progressing", "reason": "ProgressDeadlineExceeded"}]);
        assert_eq!(
            status(&d, &stuck, None).unwrap_err(),
            "error: deployment \"web\" exceeded its progress deadline"
        );
        let pod = ApiResource {
            kind: "Pod".into(),
            version: "v1".into(),
            ..Default::default()
        };
        assert_eq!(
            status(&pod, &json!({}), None).unwrap_err(),
            "error: no status viewer has been implemented for Pod"
        );
    }

    #[test]
    fn statefulset_snapshots() {
        let s = apps("StatefulSet");
        let sts = |ready: i64, partition: Option<i64>| {
            json!({
                "metadata": {"name": "db", "generation": 1},
                "spec": {"replicas": 2, "updateStrategy": {"type": "RollingUpdate",
                    "rollingUpdate": partition.map(|p| json!({"partition": p}))}},
                "status": {"observedGeneration": 1, "readyReplicas": ready, "updatedReplicas": 2,
                    "currentReplicas": 2, "currentRevision": "db-1", "updateRevision": "db-1"}
            })
        };
        assert_eq!(
            status(&s, &sts(1, Some(0)), None).unwrap(),
            ("Waiting for 1 pods to be ready...\n".to_string(), false)
        );
        assert_eq!(
            status(&s, &sts(2, Some(0)), None).unwrap(),
            (
                "partitioned roll out complete: 2 new pods have been updated...\n".to_string(),
                true
            )
        );
        assert_eq!(
            status(&s, &sts(2, None), None).unwrap(),
            (
                "statefulset rolling update complete 2 pods at revision db-1...\n".to_string(),
                true
            )
        );
    }

    #[test]
    fn history_tables() {
        let revs = vec![
            Revision {
                number: 10,
                change_cause: String::new(),
                template: None,
                object: Value::Null,
            },
            Revision {
                number: 2,
                change_cause: "kubectl set image".into(),
                template: None,
                object: Value::Null,
            },
        ];
        assert_eq!(
            history_table(&revs),
            "REVISION  CHANGE-CAUSE\n2         kubectl set image\n10        <none>\n"
        );
        assert_eq!(history_table(&[]), "No rollout history found.");
    }

    #[test]
    fn revision_templates_print_raw() {
        let sts = json!({"spec": {"template": {"metadata": {"labels": {"app": "old"}}}}});
        let rev = json!({"revision": 2, "data": {"spec": {"template": {
            "$patch": "replace",
            "metadata": {"labels": {"app": "new"}},
            "spec": {"containers": [{"name": "c", "image": "i:1"}]}
        }}}});
        let r = Revision {
            number: 2,
            change_cause: "kubectl set image".into(),
            template: revision_template(&sts, &rev),
            object: Value::Null,
        };
        let text = print_template(&r).unwrap();
        assert!(
            text.starts_with(
                "Pod Template:\n  Labels:\tapp=new\n  Annotations:\tkubernetes.io/change-cause: kubectl set image\n"
            ),
            "{text}"
        );
        assert!(text.contains("   c:\n    Image:\ti:1\n"), "{text}");
        let empty = json!({"revision": 1, "data": {}});
        assert_eq!(
            revision_template(&sts, &empty),
            Some(json!({"metadata": {"labels": {"app": "old"}}}))
        );
    }
}
