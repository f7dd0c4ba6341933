//! Workloads: Deployment, ReplicaSet, StatefulSet, DaemonSet, Job, CronJob.

use chrono::{DateTime, Utc};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job, JobTemplateSpec};
use k8s_openapi::api::core::v1::{Event, Pod, ReplicationController};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use serde_json::Value;

use super::pod::{controller_of, describe_claim_templates, describe_pod_template, int_or_string};
use super::writer::{
    Writer, annotations_multiline, describe_events, format_label_selector, format_labels, go_bool,
    labels_multiline, print_bool_ptr, rfc1123z, selector_string,
};
use super::{Settings, decode, list_typed, object_events};
use crate::exec::Executor;
use crate::exec::api::{self, ApiError};
use kubeline_printers::table::human_duration;

/// Running / waiting / succeeded / failed counts of the pods a controller owns.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct PodCounts {
    running: usize,
    waiting: usize,
    succeeded: usize,
    failed: usize,
}

impl PodCounts {
    fn text(&self) -> String {
        format!(
            "{} Running / {} Waiting / {} Succeeded / {} Failed",
            self.running, self.waiting, self.succeeded, self.failed
        )
    }
}

/// `getPodStatusForController`.
async fn pod_counts(
    ex: &Executor,
    settings: Settings,
    meta: &ObjectMeta,
    selector: Option<&LabelSelector>,
) -> Result<PodCounts, ApiError> {
    let ns = meta.namespace.as_deref().unwrap_or_default();
    let path = format!("/api/v1/namespaces/{}/pods", api::segment(ns));
    let sel = selector_string(selector);
    let query: Vec<(&str, String)> = if sel.is_empty() {
        Vec::new()
    } else {
        vec![("labelSelector", sel)]
    };
    let pods: Vec<Pod> = list_typed(ex, &path, &query, settings.chunk_size, "list pods").await?;
    let uid = meta.uid.clone().unwrap_or_default();
    let mut c = PodCounts::default();
    for p in &pods {
        let owned = p
            .metadata
            .owner_references
            .iter()
            .flatten()
            .any(|o| o.controller == Some(true) && o.uid == uid);
        if !owned {
            continue;
        }
        match p.status.as_ref().and_then(|s| s.phase.as_deref()) {
            Some("Running") => c.running += 1,
            Some("Pending") => c.waiting += 1,
            Some("Succeeded") => c.succeeded += 1,
            Some("Failed") => c.failed += 1,
            _ => {}
        }
    }
    Ok(c)
}

fn header(w: &mut Writer, meta: &ObjectMeta) {
    w.write(
        0,
        &format!("Name:\t{}\n", meta.name.as_deref().unwrap_or_default()),
    );
    w.write(
        0,
        &format!(
            "Namespace:\t{}\n",
            meta.namespace.as_deref().unwrap_or_default()
        ),
    );
}

// === Deployment ===

pub(super) async fn deployment(
    ex: &Executor,
    obj: Value,
    settings: Settings,
    now: DateTime<Utc>,
) -> Result<String, ApiError> {
    let d: Deployment = decode(obj)?;
    let events = object_events(ex, settings, &d.metadata, "Deployment").await;
    // deploymentutil.GetAllReplicaSetsInChunks: the replica sets the deployment owns, by its
    // selector; the new one has the template of the deployment (minus the hash label).
    let ns = d.metadata.namespace.clone().unwrap_or_default();
    let spec = d.spec.clone().unwrap_or_default();
    let sel = selector_string(Some(&spec.selector));
    let path = format!("/apis/apps/v1/namespaces/{}/replicasets", api::segment(&ns));
    let query: Vec<(&str, String)> = if sel.is_empty() {
        Vec::new()
    } else {
        vec![("labelSelector", sel)]
    };
    let (old, new) =
        match list_typed::<ReplicaSet>(ex, &path, &query, settings.chunk_size, "list replicasets")
            .await
        {
            Ok(all) => split_replica_sets(&d, all),
            Err(_) => (Vec::new(), Vec::new()),
        };
    Ok(render_deployment(&d, &old, &new, events.as_deref(), now))
}

/// Old and new replica sets of a deployment (`deploymentutil.FindNewReplicaSet` and
/// `FindOldReplicaSets`): owned by it; the new one is the oldest whose template equals the
/// deployment's template without the `pod-template-hash` label.
fn split_replica_sets(d: &Deployment, all: Vec<ReplicaSet>) -> (Vec<ReplicaSet>, Vec<ReplicaSet>) {
    let uid = d.metadata.uid.clone().unwrap_or_default();
    let mut owned: Vec<ReplicaSet> = all
        .into_iter()
        .filter(|rs| {
            rs.metadata
                .owner_references
                .iter()
                .flatten()
                .any(|o| o.controller == Some(true) && o.uid == uid)
        })
        .collect();
    // ReplicaSetsByCreationTimestamp: oldest first, then by name.
    owned.sort_by(|a, b| {
        let ta = a.metadata.creation_timestamp.as_ref().map(|t| t.0);
        let tb = b.metadata.creation_timestamp.as_ref().map(|t| t.0);
        ta.cmp(&tb)
            .then_with(|| a.metadata.name.cmp(&b.metadata.name))
    });
    let template = d.spec.as_ref().map(|s| strip_hash(s.template.clone()));
    let new_index = owned.iter().position(|rs| {
        let t = rs
            .spec
            .as_ref()
            .and_then(|s| s.template.clone())
            .map(strip_hash);
        t.is_some() && t == template
    });
    let mut new = Vec::new();
    if let Some(i) = new_index {
        new.push(owned.remove(i));
    }
    // describe prints every old replica set (`allOldRSs`), scaled down or not.
    (owned, new)
}

fn strip_hash(
    mut t: k8s_openapi::api::core::v1::PodTemplateSpec,
) -> k8s_openapi::api::core::v1::PodTemplateSpec {
    if let Some(labels) = t.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        labels.remove("pod-template-hash");
    }
    t
}

fn render_deployment(
    d: &Deployment,
    old: &[ReplicaSet],
    new: &[ReplicaSet],
    events: Option<&[Event]>,
    now: DateTime<Utc>,
) -> String {
    let mut w = Writer::new(now);
    let spec = d.spec.clone().unwrap_or_default();
    let status = d.status.clone().unwrap_or_default();
    header(&mut w, &d.metadata);
    w.write(
        0,
        &format!(
            "CreationTimestamp:\t{}\n",
            rfc1123z(d.metadata.creation_timestamp.as_ref())
        ),
    );
    labels_multiline(&mut w, "Labels", d.metadata.labels.as_ref());
    annotations_multiline(&mut w, "Annotations", d.metadata.annotations.as_ref());
    w.write(
        0,
        &format!("Selector:\t{}\n", selector_string(Some(&spec.selector))),
    );
    w.write(
        0,
        &format!(
            "Replicas:\t{} desired | {} updated | {} total | {} available | {} unavailable\n",
            spec.replicas.unwrap_or(0),
            status.updated_replicas.unwrap_or(0),
            status.replicas.unwrap_or(0),
            status.available_replicas.unwrap_or(0),
            status.unavailable_replicas.unwrap_or(0)
        ),
    );
    let strategy = spec.strategy.clone().unwrap_or_default();
    w.write(
        0,
        &format!(
            "StrategyType:\t{}\n",
            strategy.type_.as_deref().unwrap_or_default()
        ),
    );
    w.write(
        0,
        &format!(
            "MinReadySeconds:\t{}\n",
            spec.min_ready_seconds.unwrap_or(0)
        ),
    );
    if let Some(ru) = &strategy.rolling_update {
        let s = |v: &Option<k8s_openapi::apimachinery::pkg::util::intstr::IntOrString>| {
            v.as_ref().map_or("0".to_string(), int_or_string)
        };
        w.write(
            0,
            &format!(
                "RollingUpdateStrategy:\t{} max unavailable, {} max surge\n",
                s(&ru.max_unavailable),
                s(&ru.max_surge)
            ),
        );
    }
    describe_pod_template(&mut w, Some(&spec.template));
    let conditions = status.conditions.clone().unwrap_or_default();
    if !conditions.is_empty() {
        w.write(0, "Conditions:\n  Type\tStatus\tReason\n");
        w.write(1, "----\t------\t------\n");
        for c in &conditions {
            w.write(
                1,
                &format!(
                    "{} \t{}\t{}\n",
                    c.type_,
                    c.status,
                    c.reason.as_deref().unwrap_or_default()
                ),
            );
        }
    }
    if !old.is_empty() || !new.is_empty() {
        w.write(0, &format!("OldReplicaSets:\t{}\n", replica_sets_text(old)));
        w.write(0, &format!("NewReplicaSet:\t{}\n", replica_sets_text(new)));
    }
    if let Some(e) = events {
        describe_events(&mut w, e);
    }
    w.finish()
}

/// `printReplicaSetsByLabels`.
fn replica_sets_text(list: &[ReplicaSet]) -> String {
    let s = list
        .iter()
        .map(|rs| {
            format!(
                "{} ({}/{} replicas created)",
                rs.metadata.name.as_deref().unwrap_or_default(),
                rs.status.as_ref().map_or(0, |s| s.replicas),
                rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0)
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    if s.is_empty() { "<none>".into() } else { s }
}

// === ReplicaSet ===

pub(super) async fn replica_set(
    ex: &Executor,
    obj: Value,
    settings: Settings,
    now: DateTime<Utc>,
) -> Result<String, ApiError> {
    let rs: ReplicaSet = decode(obj)?;
    let selector = rs.spec.as_ref().map(|s| s.selector.clone());
    let counts = pod_counts(ex, settings, &rs.metadata, selector.as_ref()).await;
    let events = object_events(ex, settings, &rs.metadata, "ReplicaSet").await;
    Ok(render_replica_set(&rs, counts, events.as_deref(), now))
}

fn render_replica_set(
    rs: &ReplicaSet,
    counts: Result<PodCounts, ApiError>,
    events: Option<&[Event]>,
    now: DateTime<Utc>,
) -> String {
    let mut w = Writer::new(now);
    let spec = rs.spec.clone().unwrap_or_default();
    let status = rs.status.clone().unwrap_or_default();
    header(&mut w, &rs.metadata);
    w.write(
        0,
        &format!(
            "Selector:\t{}\n",
            format_label_selector(Some(&spec.selector))
        ),
    );
    labels_multiline(&mut w, "Labels", rs.metadata.labels.as_ref());
    annotations_multiline(&mut w, "Annotations", rs.metadata.annotations.as_ref());
    if let Some(c) = controller_of(&rs.metadata) {
        w.write(0, &format!("Controlled By:\t{c}\n"));
    }
    w.write(
        0,
        &format!(
            "Replicas:\t{} current / {} desired\n",
            status.replicas,
            spec.replicas.unwrap_or(0)
        ),
    );
    w.write(0, "Pods Status:\t");
    match counts {
        Ok(c) => w.write(0, &format!("{}\n", c.text())),
        Err(e) => w.write(0, &format!("error in fetching pods: {}\n", e.go_error())),
    }
    describe_pod_template(&mut w, spec.template.as_ref());
    let conditions = status.conditions.clone().unwrap_or_default();
    if !conditions.is_empty() {
        w.write(0, "Conditions:\n  Type\tStatus\tReason\n");
        w.write(1, "----\t------\t------\n");
        for c in &conditions {
            w.write(
                1,
                &format!(
                    "{} \t{}\t{}\n",
                    c.type_,
                    c.status,
                    c.reason.as_deref().unwrap_or_default()
                ),
            );
        }
    }
    if let Some(e) = events {
        describe_events(&mut w, e);
    }
    w.finish()
}

// === ReplicationController ===

pub(super) async fn replication_controller(
    ex: &Executor,
    obj: Value,
    settings: Settings,
    now: DateTime<Utc>,
) -> Result<String, ApiError> {
    let rc: ReplicationController = decode(obj)?;
    // `labels.SelectorFromSet(spec.selector)`.
    let selector = LabelSelector {
        match_labels: rc.spec.as_ref().and_then(|s| s.selector.clone()),
        match_expressions: None,
    };
    // Unlike the ReplicaSet describer, a failed pod list fails the description.
    let counts = pod_counts(ex, settings, &rc.metadata, Some(&selector)).await?;
    let events = object_events(ex, settings, &rc.metadata, "ReplicationController").await;
    Ok(render_replication_controller(
        &rc,
        counts,
        events.as_deref(),
        now,
    ))
}

fn render_replication_controller(
    rc: &ReplicationController,
    counts: PodCounts,
    events: Option<&[Event]>,
    now: DateTime<Utc>,
) -> String {
    let mut w = Writer::new(now);
    let spec = rc.spec.clone().unwrap_or_default();
    let status = rc.status.clone().unwrap_or_default();
    header(&mut w, &rc.metadata);
    w.write(
        0,
        &format!("Selector:\t{}\n", format_labels(spec.selector.as_ref())),
    );
    labels_multiline(&mut w, "Labels", rc.metadata.labels.as_ref());
    annotations_multiline(&mut w, "Annotations", rc.metadata.annotations.as_ref());
    w.write(
        0,
        &format!(
            "Replicas:\t{} current / {} desired\n",
            status.replicas,
            spec.replicas.unwrap_or(0)
        ),
    );
    w.write(0, &format!("Pods Status:\t{}\n", counts.text()));
    describe_pod_template(&mut w, spec.template.as_ref());
    let conditions = status.conditions.clone().unwrap_or_default();
    if !conditions.is_empty() {
        w.write(0, "Conditions:\n  Type\tStatus\tReason\n");
        w.write(1, "----\t------\t------\n");
        for c in &conditions {
            w.write(
                1,
                &format!(
                    "{} \t{}\t{}\n",
                    c.type_,
                    c.status,
                    c.reason.as_deref().unwrap_or_default()
                ),
            );
        }
    }
    if let Some(e) = events {
        describe_events(&mut w, e);
    }
    w.finish()
}

// === StatefulSet ===

pub(super) async fn stateful_set(
    ex: &Executor,
    obj: Value,
    settings: Settings,
    now: DateTime<Utc>,
) -> Result<String, ApiError> {
    let s: StatefulSet = decode(obj)?;
    let selector = s.spec.as_ref().map(|s| s.selector.clone());
    let counts = pod_counts(ex, settings, &s.metadata, selector.as_ref()).await?;
    let events = object_events(ex, settings, &s.metadata, "StatefulSet").await;
    Ok(render_stateful_set(&s, counts, events.as_deref(), now))
}

fn render_stateful_set(
    s: &StatefulSet,
    counts: PodCounts,
    events: Option<&[Event]>,
    now: DateTime<Utc>,
) -> String {
    let mut w = Writer::new(now);
    let spec = s.spec.clone().unwrap_or_default();
    let status = s.status.clone().unwrap_or_default();
    header(&mut w, &s.metadata);
    w.write(
        0,
        &format!(
            "CreationTimestamp:\t{}\n",
            rfc1123z(s.metadata.creation_timestamp.as_ref())
        ),
    );
    w.write(
        0,
        &format!("Selector:\t{}\n", selector_string(Some(&spec.selector))),
    );
    labels_multiline(&mut w, "Labels", s.metadata.labels.as_ref());
    annotations_multiline(&mut w, "Annotations", s.metadata.annotations.as_ref());
    w.write(
        0,
        &format!(
            "Replicas:\t{} desired | {} total\n",
            spec.replicas.unwrap_or(0),
            status.replicas
        ),
    );
    let strategy = spec.update_strategy.clone().unwrap_or_default();
    w.write(
        0,
        &format!(
            "Update Strategy:\t{}\n",
            strategy.type_.as_deref().unwrap_or_default()
        ),
    );
    if let Some(ru) = &strategy.rolling_update
        && let Some(p) = ru.partition
    {
        w.write(1, &format!("Partition:\t{p}\n"));
        if let Some(mu) = &ru.max_unavailable {
            w.write(1, &format!("MaxUnavailable:\t{}\n", int_or_string(mu)));
        }
    }
    w.write(0, &format!("Pods Status:\t{}\n", counts.text()));
    describe_pod_template(&mut w, Some(&spec.template));
    describe_claim_templates(
        &mut w,
        spec.volume_claim_templates.as_deref().unwrap_or_default(),
    );
    if let Some(e) = events {
        describe_events(&mut w, e);
    }
    w.finish()
}

// === DaemonSet ===

pub(super) async fn daemon_set(
    ex: &Executor,
    obj: Value,
    settings: Settings,
    now: DateTime<Utc>,
) -> Result<String, ApiError> {
    let d: DaemonSet = decode(obj)?;
    let selector = d.spec.as_ref().map(|s| s.selector.clone());
    let counts = pod_counts(ex, settings, &d.metadata, selector.as_ref()).await?;
    let events = object_events(ex, settings, &d.metadata, "DaemonSet").await;
    Ok(render_daemon_set(&d, counts, events.as_deref(), now))
}

fn render_daemon_set(
    d: &DaemonSet,
    counts: PodCounts,
    events: Option<&[Event]>,
    now: DateTime<Utc>,
) -> String {
    let mut w = Writer::new(now);
    let spec = d.spec.clone().unwrap_or_default();
    let status = d.status.clone().unwrap_or_default();
    header(&mut w, &d.metadata);
    w.write(
        0,
        &format!("Selector:\t{}\n", selector_string(Some(&spec.selector))),
    );
    w.write(
        0,
        &format!(
            "Node-Selector:\t{}\n",
            format_labels(
                spec.template
                    .spec
                    .as_ref()
                    .and_then(|s| s.node_selector.as_ref())
            )
        ),
    );
    labels_multiline(&mut w, "Labels", d.metadata.labels.as_ref());
    annotations_multiline(&mut w, "Annotations", d.metadata.annotations.as_ref());
    w.write(
        0,
        &format!(
            "Desired Number of Nodes Scheduled: {}\n",
            status.desired_number_scheduled
        ),
    );
    w.write(
        0,
        &format!(
            "Current Number of Nodes Scheduled: {}\n",
            status.current_number_scheduled
        ),
    );
    w.write(
        0,
        &format!(
            "Number of Nodes Scheduled with Up-to-date Pods: {}\n",
            status.updated_number_scheduled.unwrap_or(0)
        ),
    );
    w.write(
        0,
        &format!(
            "Number of Nodes Scheduled with Available Pods: {}\n",
            status.number_available.unwrap_or(0)
        ),
    );
    w.write(
        0,
        &format!(
            "Number of Nodes Misscheduled: {}\n",
            status.number_misscheduled
        ),
    );
    w.write(0, &format!("Pods Status:\t{}\n", counts.text()));
    describe_pod_template(&mut w, Some(&spec.template));
    if let Some(e) = events {
        describe_events(&mut w, e);
    }
    w.finish()
}

// === Job ===

pub(super) async fn job(
    ex: &Executor,
    obj: Value,
    settings: Settings,
    now: DateTime<Utc>,
) -> Result<String, ApiError> {
    let j: Job = decode(obj)?;
    let events = object_events(ex, settings, &j.metadata, "Job").await;
    Ok(render_job(&j, events.as_deref(), now))
}

fn render_job(j: &Job, events: Option<&[Event]>, now: DateTime<Utc>) -> String {
    let mut w = Writer::new(now);
    let spec = j.spec.clone().unwrap_or_default();
    let status = j.status.clone().unwrap_or_default();
    header(&mut w, &j.metadata);
    w.write(
        0,
        &format!("Selector:\t{}\n", selector_string(spec.selector.as_ref())),
    );
    labels_multiline(&mut w, "Labels", j.metadata.labels.as_ref());
    annotations_multiline(&mut w, "Annotations", j.metadata.annotations.as_ref());
    if let Some(c) = controller_of(&j.metadata) {
        w.write(0, &format!("Controlled By:\t{c}\n"));
    }
    if let Some(p) = spec.parallelism {
        w.write(0, &format!("Parallelism:\t{p}\n"));
    }
    match spec.completions {
        Some(c) => w.write(0, &format!("Completions:\t{c}\n")),
        None => w.write(0, "Completions:\t<unset>\n"),
    }
    if let Some(m) = &spec.completion_mode {
        w.write(0, &format!("Completion Mode:\t{m}\n"));
    }
    if let Some(s) = spec.suspend {
        w.write(0, &format!("Suspend:\t{}\n", go_bool(s)));
    }
    if let Some(b) = spec.backoff_limit {
        w.write(0, &format!("Backoff Limit:\t{b}\n"));
    }
    if let Some(t) = spec.ttl_seconds_after_finished {
        w.write(0, &format!("TTL Seconds After Finished:\t{t}\n"));
    }
    if let Some(t) = &status.start_time {
        w.write(0, &format!("Start Time:\t{}\n", rfc1123z(Some(t))));
    }
    if let Some(t) = &status.completion_time {
        w.write(0, &format!("Completed At:\t{}\n", rfc1123z(Some(t))));
    }
    if let (Some(s), Some(c)) = (&status.start_time, &status.completion_time) {
        let d = super::writer::chrono_time(&c.0)
            .signed_duration_since(super::writer::chrono_time(&s.0));
        w.write(0, &format!("Duration:\t{}\n", human_duration(d)));
    }
    if let Some(a) = spec.active_deadline_seconds {
        w.write(0, &format!("Active Deadline Seconds:\t{a}s\n"));
    }
    let (active, succeeded, failed) = (
        status.active.unwrap_or(0),
        status.succeeded.unwrap_or(0),
        status.failed.unwrap_or(0),
    );
    match status.ready {
        None => w.write(
            0,
            &format!("Pods Statuses:\t{active} Active / {succeeded} Succeeded / {failed} Failed\n"),
        ),
        Some(r) => w.write(
            0,
            &format!(
                "Pods Statuses:\t{active} Active ({r} Ready) / {succeeded} Succeeded / {failed} Failed\n"
            ),
        ),
    }
    if spec.completion_mode.as_deref() == Some("Indexed") {
        w.write(
            0,
            &format!(
                "Completed Indexes:\t{}\n",
                cap_indexes(status.completed_indexes.as_deref().unwrap_or_default(), 50)
            ),
        );
    }
    describe_pod_template(&mut w, Some(&spec.template));
    if let Some(e) = events {
        describe_events(&mut w, e);
    }
    w.finish()
}

/// `capIndexesListOrNone`.
fn cap_indexes(indexes: &str, soft_limit: usize) -> String {
    if indexes.is_empty() {
        return "<none>".into();
    }
    let bytes = indexes.as_bytes();
    let mut ix = soft_limit;
    while ix < bytes.len() && bytes[ix] != b',' {
        ix += 1;
    }
    if ix >= bytes.len() {
        return indexes.to_string();
    }
    format!("{}...", &indexes[..=ix])
}

// === CronJob ===

pub(super) async fn cron_job(
    ex: &Executor,
    obj: Value,
    settings: Settings,
    now: DateTime<Utc>,
) -> Result<String, ApiError> {
    let c: CronJob = decode(obj)?;
    let events = object_events(ex, settings, &c.metadata, "CronJob").await;
    Ok(render_cron_job(&c, events.as_deref(), now))
}

fn render_cron_job(c: &CronJob, events: Option<&[Event]>, now: DateTime<Utc>) -> String {
    let mut w = Writer::new(now);
    let spec = c.spec.clone();
    let status = c.status.clone().unwrap_or_default();
    header(&mut w, &c.metadata);
    labels_multiline(&mut w, "Labels", c.metadata.labels.as_ref());
    annotations_multiline(&mut w, "Annotations", c.metadata.annotations.as_ref());
    w.write(0, &format!("Schedule:\t{}\n", spec.schedule));
    w.write(
        0,
        &format!(
            "Concurrency Policy:\t{}\n",
            spec.concurrency_policy.as_deref().unwrap_or_default()
        ),
    );
    w.write(0, &format!("Suspend:\t{}\n", print_bool_ptr(spec.suspend)));
    let opt = |v: Option<String>| v.unwrap_or_else(|| "<unset>".into());
    w.write(0, &format!("Time Zone:\t{}\n", opt(spec.time_zone.clone())));
    w.write(
        0,
        &format!(
            "Successful Job History Limit:\t{}\n",
            opt(spec.successful_jobs_history_limit.map(|v| v.to_string()))
        ),
    );
    w.write(
        0,
        &format!(
            "Failed Job History Limit:\t{}\n",
            opt(spec.failed_jobs_history_limit.map(|v| v.to_string()))
        ),
    );
    w.write(
        0,
        &format!(
            "Starting Deadline Seconds:\t{}\n",
            opt(spec.starting_deadline_seconds.map(|v| format!("{v}s")))
        ),
    );
    describe_job_template(&mut w, &spec.job_template);
    match &status.last_schedule_time {
        Some(t) => w.write(0, &format!("Last Schedule Time:\t{}\n", rfc1123z(Some(t)))),
        None => w.write(0, "Last Schedule Time:\t<unset>\n"),
    }
    // printActiveJobs.
    w.write(0, "Active Jobs:\t");
    let active = status.active.clone().unwrap_or_default();
    if active.is_empty() {
        w.line("<none>");
    } else {
        let names: Vec<String> = active
            .iter()
            .map(|j| j.name.clone().unwrap_or_default())
            .collect();
        w.write(0, &names.join(", "));
        w.line("");
    }
    if let Some(e) = events {
        describe_events(&mut w, e);
    }
    w.finish()
}

/// `describeJobTemplate`.
fn describe_job_template(w: &mut Writer, t: &JobTemplateSpec) {
    let spec = t.spec.clone().unwrap_or_default();
    match &spec.selector {
        Some(s) => w.write(0, &format!("Selector:\t{}\n", selector_string(Some(s)))),
        None => w.write(0, "Selector:\t<unset>\n"),
    }
    match spec.parallelism {
        Some(p) => w.write(0, &format!("Parallelism:\t{p}\n")),
        None => w.write(0, "Parallelism:\t<unset>\n"),
    }
    match spec.completions {
        Some(c) => w.write(0, &format!("Completions:\t{c}\n")),
        None => w.write(0, "Completions:\t<unset>\n"),
    }
    if let Some(a) = spec.active_deadline_seconds {
        w.write(0, &format!("Active Deadline Seconds:\t{a}s\n"));
    }
    describe_pod_template(w, Some(&spec.template));
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-23T00:44:14Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn a_cron_job() {
        let c: CronJob = serde_json::from_value(json!({
            "metadata": {"name": "nightly-report", "namespace": "batch-jobs"},
            "spec": {"schedule": "0 3 * * *", "concurrencyPolicy": "Forbid", "suspend": false,
                "successfulJobsHistoryLimit": 3, "failedJobsHistoryLimit": 1,
                "jobTemplate": {"spec": {"template": {"metadata": {"labels": {"app": "nightly-report"}},
                    "spec": {"containers": [{"name": "report", "image": "registry.example.com/data/report:2.0.0",
                        "args": ["--nightly"]}]}}}}}
        }))
        .unwrap();
        let want = "\
Name:                          nightly-report
Namespace:                     batch-jobs
Labels:                        <none>
Annotations:                   <none>
Schedule:                      0 3 * * *
Concurrency Policy:            Forbid
Suspend:                       False
Time Zone:                     <unset>
Successful Job History Limit:  3
Failed Job History Limit:      1
Starting Deadline Seconds:     <unset>
Selector:                      <unset>
Parallelism:                   <unset>
Completions:                   <unset>
Pod Template:
  Labels:  app=nightly-report
  Containers:
   report:
    Image:      registry.example.com/data/report:2.0.0
    Port:       <none>
    Host Port:  <none>
    Args:
      --nightly
    Environment:     <none>
    Mounts:          <none>
  Volumes:           <none>
  Node-Selectors:    <none>
  Tolerations:       <none>
Last Schedule Time:  <unset>
Active Jobs:         <none>
";
        assert_eq!(render_cron_job(&c, None, now()), want);
    }

    #[test]
    fn a_daemon_set() {
        let d: DaemonSet = serde_json::from_value(json!({
            "metadata": {"name": "agent", "namespace": "kube-system", "labels": {"app": "agent"}},
            "spec": {"selector": {"matchLabels": {"app": "agent"}},
                "template": {"metadata": {"labels": {"app": "agent"}},
                    "spec": {"nodeSelector": {"kubernetes.io/os": "linux"},
                        "containers": [{"name": "a", "image": "agent:1"}]}}},
            "status": {"desiredNumberScheduled": 3, "currentNumberScheduled": 3,
                "numberMisscheduled": 0, "numberReady": 3, "updatedNumberScheduled": 3, "numberAvailable": 3}
        }))
        .unwrap();
        let counts = PodCounts {
            running: 3,
            ..PodCounts::default()
        };
        let text = render_daemon_set(&d, counts, Some(&[]), now());
        assert!(
            text.starts_with(
                "Name:           agent\nNamespace:      kube-system\nSelector:       app=agent\n\
             Node-Selector:  kubernetes.io/os=linux\nLabels:         app=agent\n\
             Annotations:    <none>\nDesired Number of Nodes Scheduled: 3\n"
            ),
            "{text}"
        );
        assert!(text.contains("Pods Status:  3 Running / 0 Waiting / 0 Succeeded / 0 Failed\n"));
        assert!(text.ends_with("Events:            <none>\n"), "{text}");
    }
}
