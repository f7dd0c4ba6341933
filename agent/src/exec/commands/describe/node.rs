//! Node: conditions, addresses, capacity, the pods on it and what they request.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::{Event, Node, Pod};
use serde_json::Value;

use super::pod::canonical;
use super::quantity::Quantity;
use super::writer::{
    Writer, annotations_multiline, describe_events, go_bool, labels_multiline, rfc1123z,
    taints_multiline,
};
use super::{EventTarget, Settings, decode, get_object, list_typed, search_events};
use crate::exec::Executor;
use crate::exec::api::{self, ApiError};

// === Node ===

/// What `describe node` gathers besides the node.
struct NodeExtras {
    /// Non-terminated pods on the node; `None` when listing pods is forbidden.
    pods: Option<Vec<Pod>>,
    events: Option<Vec<Event>>,
    /// The node's lease, or the error text.
    lease: Result<Value, String>,
    resource_slices: Vec<Value>,
}

pub(super) async fn node(
    ex: &Executor,
    obj: Value,
    settings: Settings,
    now: DateTime<Utc>,
) -> Result<String, ApiError> {
    let node: Node = decode(obj)?;
    let name = node.metadata.name.clone().unwrap_or_default();
    let selector = format!("spec.nodeName={name},status.phase!=Succeeded,status.phase!=Failed");
    let pods = match list_typed::<Pod>(
        ex,
        "/api/v1/pods",
        &[("fieldSelector", selector)],
        settings.chunk_size,
        "list pods",
    )
    .await
    {
        Ok(p) => Some(p),
        Err(ApiError::Status { reason, .. }) if reason == "Forbidden" => None,
        Err(e) => return Err(e),
    };
    let events = if settings.show_events {
        let uid = node.metadata.uid.clone().unwrap_or_default();
        let mut all = Vec::new();
        for uid in [uid.as_str(), name.as_str()] {
            let target = EventTarget {
                namespace: "",
                name: &name,
                kind: Some("Node"),
                uid: Some(uid),
            };
            all.extend(
                search_events(ex, &target, settings.chunk_size)
                    .await
                    .unwrap_or_default(),
            );
        }
        Some(all)
    } else {
        None
    };
    let lease_path = format!(
        "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{}",
        api::segment(&name)
    );
    let lease = get_object(ex, &lease_path).await.map_err(|e| e.go_error());
    let slices_path = format!(
        "/apis/resource.k8s.io/v1/resourceslices?fieldSelector={}",
        url::form_urlencoded::byte_serialize(format!("spec.nodeName={name}").as_bytes())
            .collect::<String>()
    );
    let resource_slices = match get_object(ex, &slices_path).await {
        Ok(v) => v
            .get("items")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    let extras = NodeExtras {
        pods,
        events,
        lease,
        resource_slices,
    };
    Ok(render_node(&node, &extras, now))
}

/// `findNodeRoles`.
fn node_roles(labels: Option<&BTreeMap<String, String>>) -> Vec<String> {
    let mut roles = BTreeSet::new();
    for (k, v) in labels.into_iter().flatten() {
        if let Some(role) = k.strip_prefix("node-role.kubernetes.io/") {
            if !role.is_empty() {
                roles.insert(role.to_string());
            }
        } else if k == "kubernetes.io/role" && !v.is_empty() {
            roles.insert(v.clone());
        }
    }
    roles.into_iter().collect()
}

fn render_node(node: &Node, extras: &NodeExtras, now: DateTime<Utc>) -> String {
    let mut w = Writer::new(now);
    let meta = &node.metadata;
    let spec = node.spec.clone().unwrap_or_default();
    let status = node.status.clone().unwrap_or_default();
    w.write(
        0,
        &format!("Name:\t{}\n", meta.name.as_deref().unwrap_or_default()),
    );
    let roles = node_roles(meta.labels.as_ref());
    if roles.is_empty() {
        w.write(0, "Roles:\t<none>\n");
    } else {
        w.write(0, &format!("Roles:\t{}\n", roles.join(",")));
    }
    labels_multiline(&mut w, "Labels", meta.labels.as_ref());
    annotations_multiline(&mut w, "Annotations", meta.annotations.as_ref());
    w.write(
        0,
        &format!(
            "CreationTimestamp:\t{}\n",
            rfc1123z(meta.creation_timestamp.as_ref())
        ),
    );
    taints_multiline(&mut w, "Taints", spec.taints.as_ref());
    w.write(
        0,
        &format!(
            "Unschedulable:\t{}\n",
            go_bool(spec.unschedulable.unwrap_or(false))
        ),
    );
    match &extras.lease {
        Ok(lease) => {
            let s = |p: &str| lease.pointer(p).and_then(Value::as_str).map(str::to_string);
            let time = |p: &str| {
                s(p).and_then(|t| t.parse::<k8s_openapi::jiff::Timestamp>().ok())
                    .map(|t| {
                        rfc1123z(Some(&k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                            t,
                        )))
                    })
                    .unwrap_or_else(|| "<unset>".into())
            };
            w.write(0, "Lease:\n");
            w.write(
                1,
                &format!(
                    "HolderIdentity:\t{}\n",
                    s("/spec/holderIdentity").unwrap_or_else(|| "<unset>".into())
                ),
            );
            w.write(1, &format!("AcquireTime:\t{}\n", time("/spec/acquireTime")));
            w.write(1, &format!("RenewTime:\t{}\n", time("/spec/renewTime")));
        }
        Err(e) => w.write(0, &format!("Lease:\tFailed to get lease: {e}\n")),
    }
    let conditions = status.conditions.clone().unwrap_or_default();
    if !conditions.is_empty() {
        w.write(
            0,
            "Conditions:\n  Type\tStatus\tLastHeartbeatTime\tLastTransitionTime\tReason\tMessage\n",
        );
        w.write(
            1,
            "----\t------\t-----------------\t------------------\t------\t-------\n",
        );
        for c in &conditions {
            w.write(
                1,
                &format!(
                    "{} \t{} \t{} \t{} \t{} \t{}\n",
                    c.type_,
                    c.status,
                    rfc1123z(c.last_heartbeat_time.as_ref()),
                    rfc1123z(c.last_transition_time.as_ref()),
                    c.reason.as_deref().unwrap_or_default(),
                    c.message.as_deref().unwrap_or_default()
                ),
            );
        }
    }
    w.write(0, "Addresses:\n");
    for a in status.addresses.iter().flatten() {
        w.write(1, &format!("{}:\t{}\n", a.type_, a.address));
    }
    for (title, list) in [
        ("Capacity", &status.capacity),
        ("Allocatable", &status.allocatable),
    ] {
        if let Some(list) = list.as_ref().filter(|l| !l.is_empty()) {
            w.write(0, &format!("{title}:\n"));
            for (name, q) in list {
                w.write(0, &format!("  {name}:\t{}\n", canonical(&q.0)));
            }
        }
    }
    describe_resource_slices(&mut w, &extras.resource_slices);
    let info = status.node_info.clone().unwrap_or_default();
    w.write(0, "System Info:\n");
    for (label, value) in [
        ("Machine ID", &info.machine_id),
        ("System UUID", &info.system_uuid),
        ("Boot ID", &info.boot_id),
        ("Kernel Version", &info.kernel_version),
        ("OS Image", &info.os_image),
        ("Operating System", &info.operating_system),
        ("Architecture", &info.architecture),
        ("Container Runtime Version", &info.container_runtime_version),
        ("Kubelet Version", &info.kubelet_version),
    ] {
        w.write(0, &format!("  {label}:\t{value}\n"));
    }
    if let Some(c) = spec.pod_cidr.as_deref().filter(|s| !s.is_empty()) {
        w.write(0, &format!("PodCIDR:\t{c}\n"));
    }
    if let Some(c) = spec.pod_cidrs.as_ref().filter(|c| !c.is_empty()) {
        w.write(0, &format!("PodCIDRs:\t{}\n", c.join(",")));
    }
    if let Some(p) = spec.provider_id.as_deref().filter(|s| !s.is_empty()) {
        w.write(0, &format!("ProviderID:\t{p}\n"));
    }
    match &extras.pods {
        Some(pods) => describe_node_resource(&mut w, pods, node),
        None => w.write(0, "Pods:\tnot authorized\n"),
    }
    if let Some(e) = &extras.events {
        describe_events(&mut w, e);
    }
    w.finish()
}

/// `describeNodeResourceSlices`: pools by driver, at most ten.
fn describe_resource_slices(w: &mut Writer, slices: &[Value]) {
    let mut pools: BTreeMap<String, (String, String, usize, usize)> = BTreeMap::new();
    for s in slices {
        let driver = s
            .pointer("/spec/driver")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let pool = s
            .pointer("/spec/pool/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let devices = s
            .pointer("/spec/devices")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        let e = pools
            .entry(format!("{driver}/{pool}"))
            .or_insert_with(|| (driver.to_string(), pool.to_string(), 0, 0));
        e.2 += 1;
        e.3 += devices;
    }
    if pools.is_empty() {
        return;
    }
    w.write(0, "Node-Local ResourceSlices:\n");
    w.write(1, "Driver\tPool\tSlices\tDevices\n");
    w.write(1, "------\t----\t------\t-------\n");
    let total = pools.len();
    for (shown, (driver, pool, slices, devices)) in pools.into_values().enumerate() {
        if shown >= 10 {
            w.write(1, &format!("...and {} more pools\n", total - 10));
            break;
        }
        w.write(1, &format!("{driver}\t{pool}\t{slices}\t{devices}\n"));
    }
}

type ResourceList = BTreeMap<String, Quantity>;

fn parse_list(
    list: Option<&BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>,
) -> ResourceList {
    list.into_iter()
        .flatten()
        .filter_map(|(k, q)| Quantity::parse(&q.0).map(|q| (k.clone(), q)))
        .collect()
}

fn add_list(into: &mut ResourceList, list: &ResourceList) {
    for (k, q) in list {
        match into.get_mut(k) {
            Some(v) => v.add(q),
            None => {
                into.insert(k.clone(), *q);
            }
        }
    }
}

fn max_list(into: &mut ResourceList, list: &ResourceList) {
    for (k, q) in list {
        match into.get_mut(k) {
            Some(v) if q.cmp_value(v) == std::cmp::Ordering::Greater => *v = *q,
            Some(_) => {}
            None => {
                into.insert(k.clone(), *q);
            }
        }
    }
}

/// component-helpers' `PodRequests` / `PodLimits` (containers summed, init containers as a
/// maximum, sidecars added, pod-level resources and overhead).
fn pod_resources(pod: &Pod, limits: bool, use_status: bool) -> ResourceList {
    let spec = pod.spec.clone().unwrap_or_default();
    let pick = |r: &Option<k8s_openapi::api::core::v1::ResourceRequirements>| {
        let r = r.as_ref();
        parse_list(if limits {
            r.and_then(|r| r.limits.as_ref())
        } else {
            r.and_then(|r| r.requests.as_ref())
        })
    };
    let statuses = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.clone())
        .unwrap_or_default();
    let mut out = ResourceList::new();
    for c in &spec.containers {
        let mut list = pick(&c.resources);
        if use_status
            && let Some(cs) = statuses.iter().find(|s| s.name == c.name)
            && let Some(r) = &cs.resources
        {
            let status_list = parse_list(if limits {
                r.limits.as_ref()
            } else {
                r.requests.as_ref()
            });
            max_list(&mut list, &status_list);
        }
        add_list(&mut out, &list);
    }
    let mut restartable = ResourceList::new();
    let mut init = ResourceList::new();
    for c in spec.init_containers.iter().flatten() {
        let list = pick(&c.resources);
        let effective = if c.restart_policy.as_deref() == Some("Always") {
            add_list(&mut out, &list);
            add_list(&mut restartable, &list);
            restartable.clone()
        } else {
            let mut tmp = ResourceList::new();
            add_list(&mut tmp, &list);
            add_list(&mut tmp, &restartable);
            tmp
        };
        max_list(&mut init, &effective);
    }
    max_list(&mut out, &init);
    let pod_level = pick(&spec.resources);
    for (k, q) in pod_level {
        if k == "cpu" || k == "memory" || k.starts_with("hugepages-") {
            out.insert(k, q);
        }
    }
    if let Some(overhead) = &spec.overhead {
        let overhead = parse_list(Some(overhead));
        if limits {
            for (k, q) in &overhead {
                if let Some(v) = out.get_mut(k) {
                    v.add(q);
                }
            }
        } else {
            add_list(&mut out, &overhead);
        }
    }
    out
}

/// `int64(float64(a) / float64(b) * 100)`.
fn percent(a: i128, b: i128) -> i64 {
    if b == 0 {
        // Go: NaN or ±Inf converted to int64 on amd64.
        return i64::MIN;
    }
    (a as f64 / b as f64 * 100.0) as i64
}

/// `describeNodeResource`.
fn describe_node_resource(w: &mut Writer, pods: &[Pod], node: &Node) {
    let status = node.status.clone().unwrap_or_default();
    w.write(
        0,
        &format!("Non-terminated Pods:\t({} in total)\n", pods.len()),
    );
    w.write(
        1,
        "Namespace\tName\t\tCPU Requests\tCPU Limits\tMemory Requests\tMemory Limits\tAge\n",
    );
    w.write(
        1,
        "---------\t----\t\t------------\t----------\t---------------\t-------------\t---\n",
    );
    let allocatable = match status.allocatable.as_ref().filter(|a| !a.is_empty()) {
        Some(a) => parse_list(Some(a)),
        None => parse_list(status.capacity.as_ref()),
    };
    let get = |l: &ResourceList, k: &str| l.get(k).copied().unwrap_or_default();
    let alloc_cpu = get(&allocatable, "cpu").milli_value();
    let alloc_mem = get(&allocatable, "memory").value();
    for pod in pods {
        let req = pod_resources(pod, false, true);
        let lim = pod_resources(pod, true, true);
        let (cr, cl, mr, ml) = (
            get(&req, "cpu"),
            get(&lim, "cpu"),
            get(&req, "memory"),
            get(&lim, "memory"),
        );
        w.write(
            1,
            &format!(
                "{}\t{}\t\t{cr} ({}%)\t{cl} ({}%)\t{mr} ({}%)\t{ml} ({}%)\t{}\n",
                pod.metadata.namespace.as_deref().unwrap_or_default(),
                pod.metadata.name.as_deref().unwrap_or_default(),
                percent(cr.milli_value(), alloc_cpu),
                percent(cl.milli_value(), alloc_cpu),
                percent(mr.value(), alloc_mem),
                percent(ml.value(), alloc_mem),
                w.since(pod.metadata.creation_timestamp.as_ref())
            ),
        );
    }
    w.write(
        0,
        "Allocated resources:\n  (Total limits may be over 100 percent, i.e., overcommitted.)\n",
    );
    w.write(1, "Resource\tRequests\tLimits\n");
    w.write(1, "--------\t--------\t------\n");
    let mut reqs = ResourceList::new();
    let mut limits = ResourceList::new();
    for pod in pods {
        add_list(&mut reqs, &pod_resources(pod, false, false));
        add_list(&mut limits, &pod_resources(pod, true, false));
    }
    let frac = |a: i128, b: i128| if b == 0 { 0 } else { percent(a, b) };
    let (cr, cl) = (get(&reqs, "cpu"), get(&limits, "cpu"));
    w.write(
        1,
        &format!(
            "cpu\t{cr} ({}%)\t{cl} ({}%)\n",
            frac(cr.milli_value(), alloc_cpu),
            frac(cl.milli_value(), alloc_cpu)
        ),
    );
    let (mr, ml) = (get(&reqs, "memory"), get(&limits, "memory"));
    w.write(
        1,
        &format!(
            "memory\t{mr} ({}%)\t{ml} ({}%)\n",
            frac(mr.value(), alloc_mem),
            frac(ml.value(), alloc_mem)
        ),
    );
    let alloc_eph = get(&allocatable, "ephemeral-storage").value();
    let (er, el) = (
        get(&reqs, "ephemeral-storage"),
        get(&limits, "ephemeral-storage"),
    );
    w.write(
        1,
        &format!(
            "ephemeral-storage\t{er} ({}%)\t{el} ({}%)\n",
            frac(er.value(), alloc_eph),
            frac(el.value(), alloc_eph)
        ),
    );
    let mut huge = Vec::new();
    let mut ext = Vec::new();
    for k in allocatable.keys() {
        if k.starts_with("hugepages-") {
            huge.push(k.clone());
        } else if !matches!(k.as_str(), "cpu" | "memory" | "ephemeral-storage" | "pods") {
            ext.push(k.clone());
        }
    }
    for k in &huge {
        let (r, l, a) = (get(&reqs, k), get(&limits, k), get(&allocatable, k).value());
        w.write(
            1,
            &format!(
                "{k}\t{r} ({}%)\t{l} ({}%)\n",
                frac(r.value(), a),
                frac(l.value(), a)
            ),
        );
    }
    for k in &ext {
        w.write(1, &format!("{k}\t{}\t{}\n", get(&reqs, k), get(&limits, k)));
    }
}
