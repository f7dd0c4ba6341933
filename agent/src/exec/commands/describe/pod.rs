//! Pods, their containers and volumes, and pod templates (`describePod`, `describeContainers`,
//! `describeVolumes`, `DescribePodTemplate`).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, ContainerState, ContainerStatus, EnvVar, PersistentVolumeClaim, Pod,
    PodTemplateSpec, Probe, ResourceRequirements, TopologySpreadConstraint, Volume,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as K8sQuantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kubeline_printers::go::fmt::go_quote;
use serde_json::Value;

use super::quantity::Quantity;
use super::writer::{
    Writer, annotations_multiline, describe_events, format_label_selector, go_bool,
    labels_multiline, labels_multiline_indent, or_none, print_bool, rfc1123z,
    tolerations_multiline,
};
use super::{EventTarget, Settings, decode, events_for};
use crate::exec::Executor;
use crate::exec::api::ApiError;

pub(super) async fn describe(
    ex: &Executor,
    obj: Value,
    settings: Settings,
    now: DateTime<Utc>,
) -> Result<String, ApiError> {
    let pod: Pod = decode(obj)?;
    let meta = &pod.metadata;
    // kubectl clears the kind of a pod's reference; a mirror pod's events carry the UID of the
    // static pod it mirrors.
    let mirror = meta
        .annotations
        .as_ref()
        .and_then(|a| a.get("kubernetes.io/config.mirror"))
        .cloned();
    let events = events_for(
        ex,
        settings,
        &EventTarget {
            namespace: meta.namespace.as_deref().unwrap_or_default(),
            name: meta.name.as_deref().unwrap_or_default(),
            kind: None,
            uid: mirror.as_deref().or(meta.uid.as_deref()),
        },
    )
    .await;
    Ok(render(&pod, events.as_deref(), now))
}

/// `describePod`.
pub(super) fn render(
    pod: &Pod,
    events: Option<&[k8s_openapi::api::core::v1::Event]>,
    now: DateTime<Utc>,
) -> String {
    let mut w = Writer::new(now);
    let meta = &pod.metadata;
    let spec = pod.spec.clone().unwrap_or_default();
    let status = pod.status.clone().unwrap_or_default();
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
    if let Some(p) = spec.priority {
        w.write(0, &format!("Priority:\t{p}\n"));
    }
    if let Some(p) = spec
        .priority_class_name
        .as_deref()
        .filter(|p| !p.is_empty())
    {
        w.write(0, &format!("Priority Class Name:\t{p}\n"));
    }
    if let Some(r) = spec.runtime_class_name.as_deref().filter(|r| !r.is_empty()) {
        w.write(0, &format!("Runtime Class Name:\t{r}\n"));
    }
    if let Some(sa) = spec
        .service_account_name
        .as_deref()
        .filter(|s| !s.is_empty())
    {
        w.write(0, &format!("Service Account:\t{sa}\n"));
    }
    match spec.node_name.as_deref().filter(|n| !n.is_empty()) {
        None => w.write(0, "Node:\t<none>\n"),
        Some(n) => w.write(
            0,
            &format!(
                "Node:\t{n}/{}\n",
                status.host_ip.as_deref().unwrap_or_default()
            ),
        ),
    }
    if let Some(t) = &status.start_time {
        w.write(0, &format!("Start Time:\t{}\n", rfc1123z(Some(t))));
    }
    labels_multiline(&mut w, "Labels", meta.labels.as_ref());
    annotations_multiline(&mut w, "Annotations", meta.annotations.as_ref());
    let phase = status.phase.as_deref().unwrap_or_default();
    if meta.deletion_timestamp.is_some() && phase != "Failed" && phase != "Succeeded" {
        w.write(
            0,
            &format!(
                "Status:\tTerminating (lasts {})\n",
                w.since(meta.deletion_timestamp.as_ref())
            ),
        );
        w.write(
            0,
            &format!(
                "Termination Grace Period:\t{}s\n",
                meta.deletion_grace_period_seconds.unwrap_or(0)
            ),
        );
    } else {
        w.write(0, &format!("Status:\t{phase}\n"));
    }
    if let Some(r) = status.reason.as_deref().filter(|r| !r.is_empty()) {
        w.write(0, &format!("Reason:\t{r}\n"));
    }
    if let Some(m) = status.message.as_deref().filter(|m| !m.is_empty()) {
        w.write(0, &format!("Message:\t{m}\n"));
    }
    if let Some(sp) = spec
        .security_context
        .as_ref()
        .and_then(|s| s.seccomp_profile.as_ref())
    {
        w.write(0, &format!("SeccompProfile:\t{}\n", sp.type_));
        if sp.type_ == "Localhost" {
            w.write(
                0,
                &format!(
                    "LocalhostProfile:\t{}\n",
                    sp.localhost_profile.as_deref().unwrap_or_default()
                ),
            );
        }
    }
    w.write(
        0,
        &format!("IP:\t{}\n", status.pod_ip.as_deref().unwrap_or_default()),
    );
    let ips = status.pod_ips.clone().unwrap_or_default();
    if ips.is_empty() {
        w.write(0, "IPs:\t<none>\n");
    } else {
        w.write(0, "IPs:\n");
        for ip in &ips {
            w.write(1, &format!("IP:\t{}\n", ip.ip));
        }
    }
    if let Some(c) = controller_of(meta) {
        w.write(0, &format!("Controlled By:\t{c}\n"));
    }
    if let Some(n) = status
        .nominated_node_name
        .as_deref()
        .filter(|n| !n.is_empty())
    {
        w.write(0, &format!("NominatedNodeName:\t{n}\n"));
    }
    if let Some(r) = &spec.resources {
        w.write(0, "Resources:\n");
        describe_resources(&mut w, r, 1);
    }
    let init = spec.init_containers.clone().unwrap_or_default();
    if !init.is_empty() {
        describe_containers(
            &mut w,
            "Init Containers",
            &init,
            status.init_container_statuses.as_deref(),
            Some(pod),
            "",
        );
    }
    describe_containers(
        &mut w,
        "Containers",
        &spec.containers,
        Some(status.container_statuses.as_deref().unwrap_or_default()),
        Some(pod),
        "",
    );
    let ephemeral: Vec<Container> = spec
        .ephemeral_containers
        .iter()
        .flatten()
        .map(|e| {
            serde_json::to_value(e)
                .ok()
                .and_then(|v| serde_json::from_value(v).ok())
                .unwrap_or_default()
        })
        .collect();
    if !ephemeral.is_empty() {
        describe_containers(
            &mut w,
            "Ephemeral Containers",
            &ephemeral,
            Some(
                status
                    .ephemeral_container_statuses
                    .as_deref()
                    .unwrap_or_default(),
            ),
            Some(pod),
            "",
        );
    }
    let conditions = status.conditions.clone().unwrap_or_default();
    let gates = spec.readiness_gates.clone().unwrap_or_default();
    if !gates.is_empty() {
        w.write(0, "Readiness Gates:\n  Type\tStatus\n");
        for g in &gates {
            let status = conditions
                .iter()
                .find(|c| c.type_ == g.condition_type)
                .map_or("<none>".to_string(), |c| c.status.clone());
            w.write(1, &format!("{} \t{status} \n", g.condition_type));
        }
    }
    if !conditions.is_empty() {
        w.write(0, "Conditions:\n  Type\tStatus\n");
        for c in &conditions {
            w.write(1, &format!("{} \t{} \n", c.type_, c.status));
        }
    }
    describe_volumes(&mut w, spec.volumes.as_deref().unwrap_or_default(), "");
    let qos = status
        .qos_class
        .clone()
        .filter(|q| !q.is_empty())
        .unwrap_or_else(|| compute_qos(&spec));
    w.write(0, &format!("QoS Class:\t{qos}\n"));
    labels_multiline(&mut w, "Node-Selectors", spec.node_selector.as_ref());
    tolerations_multiline(&mut w, "Tolerations", spec.tolerations.as_ref());
    describe_topology_spread(
        &mut w,
        spec.topology_spread_constraints
            .as_deref()
            .unwrap_or_default(),
        "",
    );
    if let Some(events) = events {
        describe_events(&mut w, events);
    }
    w.finish()
}

/// `printController`: `Kind/name` of the controlling owner.
pub(super) fn controller_of(meta: &ObjectMeta) -> Option<String> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))
        .map(|o| format!("{}/{}", o.kind, o.name))
}

/// `qos.ComputePodQOS`, for pods whose status has no QoS class yet.
fn compute_qos(spec: &k8s_openapi::api::core::v1::PodSpec) -> String {
    let supported = |n: &str| n == "cpu" || n == "memory";
    let mut requests: BTreeMap<String, Quantity> = BTreeMap::new();
    let mut limits: BTreeMap<String, Quantity> = BTreeMap::new();
    let mut guaranteed = true;
    let process = |into: &mut BTreeMap<String, Quantity>,
                   list: Option<&BTreeMap<String, K8sQuantity>>| {
        for (n, q) in list.into_iter().flatten() {
            let Some(q) = Quantity::parse(&q.0) else {
                continue;
            };
            if supported(n) && q.milli_value() > 0 {
                into.entry(n.clone()).or_default().add(&q);
            }
        }
    };
    let all: Vec<&Container> = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .collect();
    let lists: Vec<&ResourceRequirements> = match &spec.resources {
        Some(r) => vec![r],
        None => all.iter().filter_map(|c| c.resources.as_ref()).collect(),
    };
    let count = if spec.resources.is_some() {
        1
    } else {
        all.len()
    };
    for r in &lists {
        process(&mut requests, r.requests.as_ref());
        process(&mut limits, r.limits.as_ref());
        let has = |n: &str| {
            r.limits
                .as_ref()
                .and_then(|l| l.get(n))
                .and_then(|q| Quantity::parse(&q.0))
                .is_some_and(|q| q.milli_value() > 0)
        };
        if !(has("cpu") && has("memory")) {
            guaranteed = false;
        }
    }
    if lists.len() < count {
        guaranteed = false;
    }
    if requests.is_empty() && limits.is_empty() {
        return "BestEffort".into();
    }
    if guaranteed {
        for (n, r) in &requests {
            if limits
                .get(n)
                .is_none_or(|l| l.cmp_value(r) != std::cmp::Ordering::Equal)
            {
                guaranteed = false;
                break;
            }
        }
    }
    if guaranteed && requests.len() == limits.len() {
        "Guaranteed".into()
    } else {
        "Burstable".into()
    }
}

fn describe_topology_spread(w: &mut Writer, tscs: &[TopologySpreadConstraint], space: &str) {
    if tscs.is_empty() {
        return;
    }
    let mut tscs: Vec<&TopologySpreadConstraint> = tscs.iter().collect();
    tscs.sort_by(|a, b| a.topology_key.cmp(&b.topology_key));
    w.write(0, &format!("{space}Topology Spread Constraints:\t"));
    for (i, t) in tscs.into_iter().enumerate() {
        if i != 0 {
            w.write(0, space);
            w.write(0, "\t");
        }
        let mut s = format!(
            "{}:{} when max skew {} is exceeded",
            t.topology_key, t.when_unsatisfiable, t.max_skew
        );
        if let Some(sel) = &t.label_selector {
            s.push_str(&format!(
                " for selector {}",
                format_label_selector(Some(sel))
            ));
        }
        w.write(0, &format!("{s}\n"));
    }
}

/// `DescribePodTemplate`.
pub(crate) fn describe_pod_template(w: &mut Writer, template: Option<&PodTemplateSpec>) {
    w.write(0, "Pod Template:\n");
    let Some(template) = template else {
        w.write(1, "<unset>");
        return;
    };
    let meta = template.metadata.clone().unwrap_or_default();
    let spec = template.spec.clone().unwrap_or_default();
    labels_multiline(w, "  Labels", meta.labels.as_ref());
    if meta.annotations.as_ref().is_some_and(|a| !a.is_empty()) {
        annotations_multiline(w, "  Annotations", meta.annotations.as_ref());
    }
    if let Some(sa) = spec
        .service_account_name
        .as_deref()
        .filter(|s| !s.is_empty())
    {
        w.write(1, &format!("Service Account:\t{sa}\n"));
    }
    if let Some(init) = spec.init_containers.as_ref().filter(|i| !i.is_empty()) {
        describe_containers(w, "Init Containers", init, None, None, "  ");
    }
    describe_containers(w, "Containers", &spec.containers, None, None, "  ");
    describe_volumes(w, spec.volumes.as_deref().unwrap_or_default(), "  ");
    describe_topology_spread(
        w,
        spec.topology_spread_constraints
            .as_deref()
            .unwrap_or_default(),
        "  ",
    );
    if let Some(p) = spec
        .priority_class_name
        .as_deref()
        .filter(|p| !p.is_empty())
    {
        w.write(1, &format!("Priority Class Name:\t{p}\n"));
    }
    labels_multiline(w, "  Node-Selectors", spec.node_selector.as_ref());
    tolerations_multiline(w, "  Tolerations", spec.tolerations.as_ref());
}

/// `describeContainers`. `statuses` is `None` for templates (no status lines at all).
fn describe_containers(
    w: &mut Writer,
    label: &str,
    containers: &[Container],
    statuses: Option<&[ContainerStatus]>,
    pod: Option<&Pod>,
    space: &str,
) {
    let none = if containers.is_empty() { " <none>" } else { "" };
    w.write(0, &format!("{space}{label}:{none}\n"));
    for c in containers {
        let status = statuses.and_then(|s| s.iter().find(|s| s.name == c.name));
        let name_indent = if space.is_empty() { "" } else { " " };
        w.write(1, &format!("{name_indent}{}:\n", c.name));
        if let Some(s) = status {
            w.write(
                2,
                &format!(
                    "Container ID:\t{}\n",
                    s.container_id.as_deref().unwrap_or_default()
                ),
            );
        }
        w.write(
            2,
            &format!("Image:\t{}\n", c.image.as_deref().unwrap_or_default()),
        );
        if let Some(s) = status {
            w.write(2, &format!("Image ID:\t{}\n", s.image_id));
        }
        let ports = c.ports.as_deref().unwrap_or_default();
        let port_string = container_ports(ports, |p| p.container_port);
        if port_string.contains(',') {
            w.write(2, &format!("Ports:\t{port_string}\n"));
        } else {
            w.write(2, &format!("Port:\t{}\n", or_none(&port_string)));
        }
        let host_string = container_ports(ports, |p| p.host_port.unwrap_or(0));
        if host_string.contains(',') {
            w.write(2, &format!("Host Ports:\t{host_string}\n"));
        } else {
            w.write(2, &format!("Host Port:\t{}\n", or_none(&host_string)));
        }
        if let Some(sp) = c
            .security_context
            .as_ref()
            .and_then(|s| s.seccomp_profile.as_ref())
        {
            w.write(2, &format!("SeccompProfile:\t{}\n", sp.type_));
            if sp.type_ == "Localhost" {
                w.write(
                    3,
                    &format!(
                        "LocalhostProfile:\t{}\n",
                        sp.localhost_profile.as_deref().unwrap_or_default()
                    ),
                );
            }
        }
        for (title, items) in [("Command", &c.command), ("Args", &c.args)] {
            if let Some(items) = items.as_ref().filter(|i| !i.is_empty()) {
                w.write(2, &format!("{title}:\n"));
                for item in items {
                    for s in item.split('\n') {
                        w.write(3, &format!("{s}\n"));
                    }
                }
            }
        }
        if let Some(s) = status {
            describe_status(w, "State", s.state.as_ref());
            if let Some(last) = s.last_state.as_ref().filter(|l| l.terminated.is_some()) {
                describe_status(w, "Last State", Some(last));
            }
            w.write(2, &format!("Ready:\t{}\n", print_bool(s.ready)));
            w.write(2, &format!("Restart Count:\t{}\n", s.restart_count));
        }
        if let Some(r) = &c.resources {
            describe_resources(w, r, 2);
        }
        for (title, probe) in [
            ("Liveness", &c.liveness_probe),
            ("Readiness", &c.readiness_probe),
            ("Startup", &c.startup_probe),
        ] {
            if let Some(p) = probe {
                w.write(2, &format!("{title}:\t{}\n", describe_probe(p)));
            }
        }
        let env_from = c.env_from.as_deref().unwrap_or_default();
        if !env_from.is_empty() {
            w.write(2, "Environment Variables from:\n");
            for e in env_from {
                let (from, name, optional) = if let Some(r) = &e.config_map_ref {
                    ("ConfigMap", r.name.clone(), r.optional.unwrap_or(false))
                } else if let Some(r) = &e.secret_ref {
                    ("Secret", r.name.clone(), r.optional.unwrap_or(false))
                } else {
                    ("", String::new(), false)
                };
                match e.prefix.as_deref().filter(|p| !p.is_empty()) {
                    None => w.write(
                        3,
                        &format!("{name}\t{from}\tOptional: {}\n", go_bool(optional)),
                    ),
                    Some(p) => w.write(
                        3,
                        &format!(
                            "{name}\t{from} with prefix '{p}'\tOptional: {}\n",
                            go_bool(optional)
                        ),
                    ),
                }
            }
        }
        describe_env(w, c, pod);
        describe_mounts(w, c);
    }
}

fn container_ports(ports: &[ContainerPort], port: impl Fn(&ContainerPort) -> i32) -> String {
    ports
        .iter()
        .map(|p| {
            let mut s = format!("{}/{}", port(p), p.protocol.as_deref().unwrap_or_default());
            if let Some(n) = p.name.as_deref().filter(|n| !n.is_empty()) {
                s = format!("{s} ({n})");
            }
            s
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `describeResources`: limits then requests, names sorted.
fn describe_resources(w: &mut Writer, r: &ResourceRequirements, level: usize) {
    for (title, list) in [("Limits", &r.limits), ("Requests", &r.requests)] {
        let Some(list) = list.as_ref().filter(|l| !l.is_empty()) else {
            continue;
        };
        w.write(level, &format!("{title}:\n"));
        for (name, q) in list {
            w.write(level + 1, &format!("{name}:\t{}\n", canonical(&q.0)));
        }
    }
}

/// A quantity as `Quantity.String()` prints it.
pub(super) fn canonical(q: &str) -> String {
    Quantity::parse(q).map_or_else(|| q.to_string(), |q| q.to_string())
}

/// `describeStatus`.
fn describe_status(w: &mut Writer, name: &str, state: Option<&ContainerState>) {
    let state = state.cloned().unwrap_or_default();
    if let Some(r) = &state.running {
        w.write(2, &format!("{name}:\tRunning\n"));
        w.write(
            3,
            &format!("Started:\t{}\n", rfc1123z(r.started_at.as_ref())),
        );
    } else if let Some(wt) = &state.waiting {
        w.write(2, &format!("{name}:\tWaiting\n"));
        if let Some(r) = wt.reason.as_deref().filter(|r| !r.is_empty()) {
            w.write(3, &format!("Reason:\t{r}\n"));
        }
    } else if let Some(t) = &state.terminated {
        w.write(2, &format!("{name}:\tTerminated\n"));
        if let Some(r) = t.reason.as_deref().filter(|r| !r.is_empty()) {
            w.write(3, &format!("Reason:\t{r}\n"));
        }
        if let Some(m) = t.message.as_deref().filter(|m| !m.is_empty()) {
            w.write(3, &format!("Message:\t{m}\n"));
        }
        w.write(3, &format!("Exit Code:\t{}\n", t.exit_code));
        if let Some(sig) = t.signal.filter(|s| *s > 0) {
            w.write(3, &format!("Signal:\t{sig}\n"));
        }
        w.write(
            3,
            &format!("Started:\t{}\n", rfc1123z(t.started_at.as_ref())),
        );
        w.write(
            3,
            &format!("Finished:\t{}\n", rfc1123z(t.finished_at.as_ref())),
        );
    } else {
        w.write(2, &format!("{name}:\tWaiting\n"));
    }
}

/// `DescribeProbe`.
fn describe_probe(p: &Probe) -> String {
    let attrs = format!(
        "delay={}s timeout={}s period={}s #success={} #failure={}",
        p.initial_delay_seconds.unwrap_or(0),
        p.timeout_seconds.unwrap_or(0),
        p.period_seconds.unwrap_or(0),
        p.success_threshold.unwrap_or(0),
        p.failure_threshold.unwrap_or(0)
    );
    if let Some(e) = &p.exec {
        return format!(
            "exec [{}] {attrs}",
            e.command.clone().unwrap_or_default().join(" ")
        );
    }
    if let Some(h) = &p.http_get {
        let scheme = h.scheme.as_deref().unwrap_or_default().to_lowercase();
        let host = h.host.as_deref().unwrap_or_default();
        let port = int_or_string(&h.port);
        let hostport = if port.is_empty() {
            host.to_string()
        } else if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        let path = h.path.as_deref().unwrap_or_default();
        let mut url = String::new();
        if !scheme.is_empty() {
            url.push_str(&scheme);
            url.push(':');
        }
        if !scheme.is_empty() || !hostport.is_empty() {
            url.push_str("//");
            url.push_str(&hostport);
        }
        if !path.is_empty() && !path.starts_with('/') && !hostport.is_empty() {
            url.push('/');
        }
        url.push_str(path);
        return format!("http-get {url} {attrs}");
    }
    if let Some(t) = &p.tcp_socket {
        return format!(
            "tcp-socket {}:{} {attrs}",
            t.host.as_deref().unwrap_or_default(),
            int_or_string(&t.port)
        );
    }
    if let Some(g) = &p.grpc {
        return format!(
            "grpc <pod>:{} {} {attrs}",
            g.port,
            g.service.as_deref().unwrap_or_default()
        );
    }
    format!("unknown {attrs}")
}

pub(super) fn int_or_string(v: &IntOrString) -> String {
    match v {
        IntOrString::Int(i) => i.to_string(),
        IntOrString::String(s) => s.clone(),
    }
}

/// `describeContainerEnvVars`.
fn describe_env(w: &mut Writer, c: &Container, pod: Option<&Pod>) {
    let env = c.env.as_deref().unwrap_or_default();
    let none = if env.is_empty() { "\t<none>" } else { "" };
    w.write(2, &format!("Environment:{none}\n"));
    for e in env {
        let Some(from) = &e.value_from else {
            for (i, s) in e
                .value
                .as_deref()
                .unwrap_or_default()
                .split('\n')
                .enumerate()
            {
                if i == 0 {
                    w.write(3, &format!("{}:\t{s}\n", e.name));
                } else {
                    w.write(3, &format!("\t{s}\n"));
                }
            }
            continue;
        };
        if let Some(f) = &from.field_ref {
            let value = pod.map(|p| field_path_value(p, e)).unwrap_or_default();
            w.write(
                3,
                &format!(
                    "{}:\t{value} ({}:{})\n",
                    e.name,
                    f.api_version.as_deref().unwrap_or_default(),
                    f.field_path
                ),
            );
        } else if let Some(r) = &from.resource_field_ref {
            let mut value = resource_field_value(c, r);
            if value == "0" && (r.resource == "limits.cpu" || r.resource == "limits.memory") {
                value = "node allocatable".into();
            }
            w.write(3, &format!("{}:\t{value} ({})\n", e.name, r.resource));
        } else if let Some(s) = &from.secret_key_ref {
            w.write(
                3,
                &format!(
                    "{}:\t<set to the key '{}' in secret '{}'>\tOptional: {}\n",
                    e.name,
                    s.key,
                    s.name,
                    go_bool(s.optional.unwrap_or(false))
                ),
            );
        } else if let Some(cm) = &from.config_map_key_ref {
            w.write(
                3,
                &format!(
                    "{}:\t<set to the key '{}' of config map '{}'>\tOptional: {}\n",
                    e.name,
                    cm.key,
                    cm.name,
                    go_bool(cm.optional.unwrap_or(false))
                ),
            );
        }
    }
}

/// `fieldpath.ExtractFieldPathAsString` for the fields a pod's env may reference.
fn field_path_value(pod: &Pod, e: &EnvVar) -> String {
    let Some(path) = e
        .value_from
        .as_ref()
        .and_then(|f| f.field_ref.as_ref())
        .map(|f| f.field_path.as_str())
    else {
        return String::new();
    };
    let meta = &pod.metadata;
    let spec = pod.spec.clone().unwrap_or_default();
    let status = pod.status.clone().unwrap_or_default();
    let map_entry = |m: Option<&BTreeMap<String, String>>, p: &str, prefix: &str| {
        let key = p
            .strip_prefix(prefix)
            .and_then(|k| k.strip_prefix("['"))
            .and_then(|k| k.strip_suffix("']"))?;
        m.and_then(|m| m.get(key)).cloned()
    };
    match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "metadata.labels" => format_map(meta.labels.as_ref()),
        "metadata.annotations" => format_map(meta.annotations.as_ref()),
        "spec.nodeName" => spec.node_name.unwrap_or_default(),
        "spec.serviceAccountName" => spec.service_account_name.unwrap_or_default(),
        "status.hostIP" => status.host_ip.unwrap_or_default(),
        "status.podIP" => status.pod_ip.unwrap_or_default(),
        "status.hostIPs" => status
            .host_ips
            .unwrap_or_default()
            .iter()
            .map(|i| i.ip.clone())
            .collect::<Vec<_>>()
            .join(","),
        "status.podIPs" => status
            .pod_ips
            .unwrap_or_default()
            .iter()
            .map(|i| i.ip.clone())
            .collect::<Vec<_>>()
            .join(","),
        p if p.starts_with("metadata.labels[") => {
            map_entry(meta.labels.as_ref(), p, "metadata.labels").unwrap_or_default()
        }
        p if p.starts_with("metadata.annotations[") => {
            map_entry(meta.annotations.as_ref(), p, "metadata.annotations").unwrap_or_default()
        }
        _ => String::new(),
    }
}

/// `FormatMap`: `k="v"` lines, sorted.
fn format_map(m: Option<&BTreeMap<String, String>>) -> String {
    m.into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", go_quote(v)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `ExtractContainerResourceValue`.
fn resource_field_value(
    c: &Container,
    r: &k8s_openapi::api::core::v1::ResourceFieldSelector,
) -> String {
    let divisor = r
        .divisor
        .as_ref()
        .and_then(|d| Quantity::parse(&d.0))
        .filter(|d| !d.is_zero())
        .unwrap_or_else(|| Quantity::parse("1").unwrap_or_default());
    let res = c.resources.clone().unwrap_or_default();
    let get = |list: &Option<BTreeMap<String, K8sQuantity>>, name: &str| {
        list.as_ref()
            .and_then(|l| l.get(name))
            .and_then(|q| Quantity::parse(&q.0))
            .unwrap_or_default()
    };
    let (q, milli) = match r.resource.as_str() {
        "limits.cpu" => (get(&res.limits, "cpu"), true),
        "limits.memory" => (get(&res.limits, "memory"), false),
        "limits.ephemeral-storage" => (get(&res.limits, "ephemeral-storage"), false),
        "requests.cpu" => (get(&res.requests, "cpu"), true),
        "requests.memory" => (get(&res.requests, "memory"), false),
        "requests.ephemeral-storage" => (get(&res.requests, "ephemeral-storage"), false),
        _ => return String::new(),
    };
    let value = if milli {
        let d = divisor.milli_value().max(1);
        (q.milli_value() + d - 1) / d
    } else {
        let d = divisor.value().max(1);
        (q.value() + d - 1) / d
    };
    value.to_string()
}

/// `describeContainerVolumes`.
fn describe_mounts(w: &mut Writer, c: &Container) {
    let mut mounts = c.volume_mounts.clone().unwrap_or_default();
    let none = if mounts.is_empty() { "\t<none>" } else { "" };
    w.write(2, &format!("Mounts:{none}\n"));
    mounts.sort_by(|a, b| a.mount_path.cmp(&b.mount_path));
    for m in &mounts {
        let mut flags = vec![
            if m.read_only == Some(true) {
                "ro"
            } else {
                "rw"
            }
            .to_string(),
        ];
        if let Some(sp) = m.sub_path.as_deref().filter(|s| !s.is_empty()) {
            flags.push(format!("path={}", go_quote(sp)));
        }
        w.write(
            3,
            &format!("{} from {} ({})\n", m.mount_path, m.name, flags.join(",")),
        );
    }
    let mut devices = c.volume_devices.clone().unwrap_or_default();
    if !devices.is_empty() {
        w.write(2, &format!("Devices:{none}\n"));
        devices.sort_by(|a, b| a.device_path.cmp(&b.device_path));
        for d in &devices {
            w.write(3, &format!("{} from {}\n", d.device_path, d.name));
        }
    }
}

/// `describeVolumes`. Common volume types are printed as kubectl prints them; rarer,
/// deprecated in-tree types are printed by their type only.
fn describe_volumes(w: &mut Writer, volumes: &[Volume], space: &str) {
    if volumes.is_empty() {
        w.write(0, &format!("{space}Volumes:\t<none>\n"));
        return;
    }
    w.write(0, &format!("{space}Volumes:\n"));
    for v in volumes {
        let name_indent = if space.is_empty() { "" } else { " " };
        w.write(1, &format!("{name_indent}{}:\n", v.name));
        if let Some(h) = &v.host_path {
            host_path_source(w, h);
        } else if let Some(e) = &v.empty_dir {
            let size = e
                .size_limit
                .as_ref()
                .filter(|q| Quantity::parse(&q.0).is_some_and(|q| q.milli_value() > 0))
                .map_or("<unset>".to_string(), |q| canonical(&q.0));
            w.write(
                2,
                &format!(
                    "Type:\tEmptyDir (a temporary directory that shares a pod's lifetime)\n    Medium:\t{}\n    SizeLimit:\t{size}\n",
                    e.medium.as_deref().unwrap_or_default()
                ),
            );
        } else if let Some(s) = &v.secret {
            w.write(
                2,
                &format!(
                    "Type:\tSecret (a volume populated by a Secret)\n    SecretName:\t{}\n    Optional:\t{}\n",
                    s.secret_name.as_deref().unwrap_or_default(),
                    go_bool(s.optional.unwrap_or(false))
                ),
            );
        } else if let Some(c) = &v.config_map {
            w.write(
                2,
                &format!(
                    "Type:\tConfigMap (a volume populated by a ConfigMap)\n    Name:\t{}\n    Optional:\t{}\n",
                    c.name,
                    go_bool(c.optional.unwrap_or(false))
                ),
            );
        } else if let Some(n) = &v.nfs {
            nfs_source(w, n);
        } else if let Some(c) = &v.persistent_volume_claim {
            w.write(
                2,
                &format!(
                    "Type:\tPersistentVolumeClaim (a reference to a PersistentVolumeClaim in the same namespace)\n    ClaimName:\t{}\n    ReadOnly:\t{}\n",
                    c.claim_name,
                    go_bool(c.read_only.unwrap_or(false))
                ),
            );
        } else if let Some(e) = &v.ephemeral {
            w.write(
                2,
                "Type:\tEphemeralVolume (an inline specification for a volume that gets created and deleted with the pod)\n",
            );
            if let Some(t) = &e.volume_claim_template {
                let pvc = PersistentVolumeClaim {
                    metadata: t.metadata.clone().unwrap_or_default(),
                    spec: Some(t.spec.clone()),
                    status: None,
                };
                w.indent += 2;
                print_pvc(w, &pvc, false);
                w.indent -= 2;
            }
        } else if let Some(d) = &v.downward_api {
            w.write(
                2,
                "Type:\tDownwardAPI (a volume populated by information about the pod)\n    Items:\n",
            );
            for m in d.items.iter().flatten() {
                if let Some(f) = &m.field_ref {
                    w.write(3, &format!("{} -> {}\n", f.field_path, m.path));
                }
                if let Some(r) = &m.resource_field_ref {
                    w.write(3, &format!("{} -> {}\n", r.resource, m.path));
                }
            }
        } else if let Some(p) = &v.projected {
            w.write(
                2,
                "Type:\tProjected (a volume that contains injected data from multiple sources)\n",
            );
            for s in p.sources.iter().flatten() {
                if let Some(sec) = &s.secret {
                    w.write(
                        2,
                        &format!(
                            "SecretName:\t{}\n    Optional:\t{}\n",
                            sec.name,
                            go_bool(sec.optional.unwrap_or(false))
                        ),
                    );
                } else if s.downward_api.is_some() {
                    w.write(2, "DownwardAPI:\ttrue\n");
                } else if let Some(cm) = &s.config_map {
                    w.write(
                        2,
                        &format!(
                            "ConfigMapName:\t{}\n    Optional:\t{}\n",
                            cm.name,
                            go_bool(cm.optional.unwrap_or(false))
                        ),
                    );
                } else if let Some(t) = &s.service_account_token {
                    w.write(
                        2,
                        &format!(
                            "TokenExpirationSeconds:\t{}\n",
                            t.expiration_seconds.unwrap_or(0)
                        ),
                    );
                }
            }
        } else if let Some(c) = &v.csi {
            let attrs = c.volume_attributes.clone().unwrap_or_default();
            w.write(
                2,
                &format!(
                    "Type:\tCSI (a Container Storage Interface (CSI) volume source)\n    Driver:\t{}\n    FSType:\t{}\n    ReadOnly:\t{}\n",
                    c.driver,
                    c.fs_type.as_deref().unwrap_or_default(),
                    go_bool(c.read_only.unwrap_or(false))
                ),
            );
            csi_attributes(w, &attrs);
        } else if let Some(i) = &v.image {
            w.write(
                2,
                &format!(
                    "Type:\tImage (a container image or OCI artifact)\n    Reference:\t{}\n    PullPolicy:\t{}\n",
                    i.reference.as_deref().unwrap_or_default(),
                    i.pull_policy.as_deref().unwrap_or_default()
                ),
            );
        } else {
            w.write(1, "<unknown>\n");
        }
    }
}

/// `printCSIPersistentVolumeAttributesMultilineIndent` (every write at level 2, as in kubectl).
pub(super) fn csi_attributes(w: &mut Writer, attrs: &BTreeMap<String, String>) {
    w.write(2, "VolumeAttributes:\t");
    if attrs.is_empty() {
        w.line("<none>");
        return;
    }
    for (i, (k, v)) in attrs.iter().enumerate() {
        if i != 0 {
            w.write(2, "");
            w.write(2, "\t");
        }
        let line = format!("{k}={v}");
        if line.len() > 140 {
            let cut = String::from_utf8_lossy(&line.as_bytes()[..140]).into_owned();
            w.write(2, &format!("{cut}...\n"));
        } else {
            w.write(2, &format!("{line}\n"));
        }
    }
}

/// `GetPersistentVolumeClaimClass`.
pub(super) fn pvc_class(pvc: &PersistentVolumeClaim) -> String {
    if let Some(c) = pvc
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("volume.beta.kubernetes.io/storage-class"))
    {
        return c.clone();
    }
    pvc.spec
        .as_ref()
        .and_then(|s| s.storage_class_name.clone())
        .unwrap_or_default()
}

/// `GetAccessModesAsString`.
pub(super) fn access_modes(modes: Option<&Vec<String>>) -> String {
    let modes = modes.cloned().unwrap_or_default();
    let mut out = Vec::new();
    for (mode, short) in [
        ("ReadWriteOnce", "RWO"),
        ("ReadOnlyMany", "ROX"),
        ("ReadWriteMany", "RWX"),
        ("ReadWriteOncePod", "RWOP"),
    ] {
        if modes.iter().any(|m| m == mode) {
            out.push(short);
        }
    }
    out.join(",")
}

/// `printPersistentVolumeClaim` (for claims and claim templates).
pub(super) fn print_pvc(w: &mut Writer, pvc: &PersistentVolumeClaim, full: bool) {
    let meta = &pvc.metadata;
    let spec = pvc.spec.clone().unwrap_or_default();
    let status = pvc.status.clone().unwrap_or_default();
    if full {
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
    w.write(0, &format!("StorageClass:\t{}\n", pvc_class(pvc)));
    if full {
        if meta.deletion_timestamp.is_some() {
            w.write(
                0,
                &format!(
                    "Status:\tTerminating (lasts {})\n",
                    w.since(meta.deletion_timestamp.as_ref())
                ),
            );
        } else {
            w.write(
                0,
                &format!("Status:\t{}\n", status.phase.as_deref().unwrap_or_default()),
            );
        }
    }
    let volume_name = spec.volume_name.clone().unwrap_or_default();
    w.write(0, &format!("Volume:\t{volume_name}\n"));
    labels_multiline(w, "Labels", meta.labels.as_ref());
    annotations_multiline(w, "Annotations", meta.annotations.as_ref());
    if full {
        w.write(
            0,
            &format!(
                "Finalizers:\t{}\n",
                super::writer::go_strings(meta.finalizers.as_deref().unwrap_or_default())
            ),
        );
    }
    let (mut capacity, mut modes) = (String::new(), String::new());
    if !volume_name.is_empty() {
        modes = access_modes(status.access_modes.as_ref());
        capacity = status
            .capacity
            .as_ref()
            .and_then(|c| c.get("storage"))
            .map_or("0".to_string(), |q| canonical(&q.0));
    }
    w.write(0, &format!("Capacity:\t{capacity}\n"));
    w.write(0, &format!("Access Modes:\t{modes}\n"));
    if let Some(m) = &spec.volume_mode {
        w.write(0, &format!("VolumeMode:\t{m}\n"));
    }
    if let Some(ds) = &spec.data_source {
        w.write(0, "DataSource:\n");
        if let Some(g) = &ds.api_group {
            w.write(1, &format!("APIGroup:\t{g}\n"));
        }
        w.write(1, &format!("Kind:\t{}\n", ds.kind));
        w.write(1, &format!("Name:\t{}\n", ds.name));
    }
}

/// `describeVolumeClaimTemplates`.
pub(super) fn describe_claim_templates(w: &mut Writer, templates: &[PersistentVolumeClaim]) {
    if templates.is_empty() {
        w.write(0, "Volume Claims:\t<none>\n");
        return;
    }
    w.write(0, "Volume Claims:\n");
    for pvc in templates {
        w.write(
            1,
            &format!(
                "Name:\t{}\n",
                pvc.metadata.name.as_deref().unwrap_or_default()
            ),
        );
        w.write(1, &format!("StorageClass:\t{}\n", pvc_class(pvc)));
        labels_multiline_indent(w, "  ", "Labels", "\t", pvc.metadata.labels.as_ref());
        labels_multiline_indent(
            w,
            "  ",
            "Annotations",
            "\t",
            pvc.metadata.annotations.as_ref(),
        );
        let spec = pvc.spec.clone().unwrap_or_default();
        let capacity = spec
            .resources
            .as_ref()
            .and_then(|r| r.requests.as_ref())
            .and_then(|r| r.get("storage"))
            .map_or("<default>".to_string(), |q| canonical(&q.0));
        w.write(1, &format!("Capacity:\t{capacity}\n"));
        w.write(
            1,
            &format!(
                "Access Modes:\t{}\n",
                super::writer::go_strings(spec.access_modes.as_deref().unwrap_or_default())
            ),
        );
    }
}

/// `printHostPathVolumeSource`, shared by Pod volumes and PersistentVolume sources.
pub(super) fn host_path_source(
    w: &mut Writer,
    h: &k8s_openapi::api::core::v1::HostPathVolumeSource,
) {
    w.write(
        2,
        &format!(
            "Type:\tHostPath (bare host directory volume)\n    Path:\t{}\n    HostPathType:\t{}\n",
            h.path,
            h.type_.as_deref().unwrap_or("<none>")
        ),
    );
}

/// `printNFSVolumeSource`, shared by Pod volumes and PersistentVolume sources.
pub(super) fn nfs_source(w: &mut Writer, n: &k8s_openapi::api::core::v1::NFSVolumeSource) {
    w.write(
        2,
        &format!(
            "Type:\tNFS (an NFS mount that lasts the lifetime of a pod)\n    Server:\t{}\n    Path:\t{}\n    ReadOnly:\t{}\n",
            n.server,
            n.path,
            go_bool(n.read_only.unwrap_or(false))
        ),
    );
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

    /// kubectl's `FormatMap` quotes values with Go's `%q`: `\x7f`, not Rust's `\u{7f}`.
    #[test]
    fn a_map_of_a_field_ref_quotes_as_go_does() {
        let m = BTreeMap::from([
            ("a".to_owned(), "tab\there\u{7f}".to_owned()),
            ("b".to_owned(), "say \"hi\"\u{0b}".to_owned()),
        ]);
        assert_eq!(
            format_map(Some(&m)),
            "a=\"tab\\there\\x7f\"\nb=\"say \\\"hi\\\"\\v\""
        );
    }

    #[test]
    fn a_crash_looping_pod() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "credit-scorer", "namespace": "credit-service", "uid": "u1",
                "labels": {"app": "credit-scorer"}},
            "spec": {"priority": 0, "serviceAccountName": "default", "nodeName": "kwok-node-0",
                "containers": [{"name": "scorer", "image": "registry.example.com/credit/credit-scorer:0.9.1",
                    "env": [{"name": "DATABASE_URL", "value": "postgres://db:5432/credit"}],
                    "volumeMounts": [{"name": "kube-api-access-ppk72", "readOnly": true,
                        "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}]}],
                "volumes": [{"name": "kube-api-access-ppk72", "projected": {"sources": [
                    {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                    {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                    {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}]}}
                ]}}],
                "tolerations": [
                    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
                    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
                ]},
            "status": {"phase": "Running", "hostIP": "127.0.0.1", "podIP": "10.0.0.2",
                "podIPs": [{"ip": "10.0.0.2"}], "startTime": "2026-11-23T00:29:14Z", "qosClass": "BestEffort",
                "conditions": [{"type": "Ready", "status": "False"}],
                "containerStatuses": [{"name": "scorer", "image": "x", "imageID": "", "ready": false,
                    "restartCount": 29, "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                    "lastState": {"terminated": {"exitCode": 1, "reason": "Error",
                        "startedAt": "2026-11-23T00:43:14Z", "finishedAt": "2026-11-23T00:43:14Z"}}}]}
        }))
        .unwrap();
        let text = render(&pod, Some(&[]), now());
        let want = "\
Name:             credit-scorer
Namespace:        credit-service
Priority:         0
Service Account:  default
Node:             kwok-node-0/127.0.0.1
Start Time:       Mon, 23 Nov 2026 00:29:14 +0000
Labels:           app=credit-scorer
Annotations:      <none>
Status:           Running
IP:               10.0.0.2
IPs:
  IP:  10.0.0.2
Containers:
  scorer:
    Container ID:   
    Image:          registry.example.com/credit/credit-scorer:0.9.1
    Image ID:       
    Port:           <none>
    Host Port:      <none>
    State:          Waiting
      Reason:       CrashLoopBackOff
    Last State:     Terminated
      Reason:       Error
      Exit Code:    1
      Started:      Mon, 23 Nov 2026 00:43:14 +0000
      Finished:     Mon, 23 Nov 2026 00:43:14 +0000
    Ready:          False
    Restart Count:  29
    Environment:
      DATABASE_URL:  postgres://db:5432/credit
    Mounts:
      /var/run/secrets/kubernetes.io/serviceaccount from kube-api-access-ppk72 (ro)
Conditions:
  Type    Status
  Ready   False 
Volumes:
  kube-api-access-ppk72:
    Type:                    Projected (a volume that contains injected data from multiple sources)
    TokenExpirationSeconds:  3607
    ConfigMapName:           kube-root-ca.crt
    Optional:                false
    DownwardAPI:             true
QoS Class:                   BestEffort
Node-Selectors:              <none>
Tolerations:                 node.kubernetes.io/not-ready:NoExecute op=Exists for 300s
                             node.kubernetes.io/unreachable:NoExecute op=Exists for 300s
Events:                      <none>
";
        assert_eq!(text, want);
    }

    #[test]
    fn probes() {
        let p: Probe = serde_json::from_value(json!({"httpGet": {"path": "/healthz", "port": "http", "scheme": "HTTP"},
            "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3}))
        .unwrap();
        assert_eq!(
            describe_probe(&p),
            "http-get http://:http/healthz delay=0s timeout=1s period=10s #success=1 #failure=3"
        );
        let p: Probe =
            serde_json::from_value(json!({"exec": {"command": ["cat", "/tmp/ok"]}})).unwrap();
        assert_eq!(
            describe_probe(&p),
            "exec [cat /tmp/ok] delay=0s timeout=0s period=0s #success=0 #failure=0"
        );
    }
}
