//! Service, Ingress, Node, Namespace, ConfigMap, Secret, PersistentVolume(Claim) and
//! ServiceAccount.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::{
    ConfigMap, Event, LimitRange, Namespace, Node, PersistentVolume, PersistentVolumeClaim, Pod,
    ResourceQuota, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressBackend};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;

use super::pod::{
    access_modes, canonical, csi_attributes, host_path_source, nfs_source, print_pvc,
};
use super::policy::{describe_limit_range_spec, quota_scope_help};
use super::quantity::Quantity;
use super::writer::{
    Writer, annotations_multiline, describe_events, format_labels, go_bool, go_strings,
    labels_multiline, rfc1123z, taints_multiline,
};
use super::{EventTarget, Settings, decode, get_object, list_typed, object_events, search_events};
use crate::exec::Executor;
use crate::exec::api::{self, ApiError};

fn name_namespace(w: &mut Writer, meta: &ObjectMeta) {
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

/// The endpoint slices of a service (label `kubernetes.io/service-name`).
async fn endpoint_slices(
    ex: &Executor,
    namespace: &str,
    service: &str,
) -> Result<Vec<EndpointSlice>, ApiError> {
    let path = format!(
        "/apis/discovery.k8s.io/v1/namespaces/{}/endpointslices",
        api::segment(namespace)
    );
    list_typed(
        ex,
        &path,
        &[(
            "labelSelector",
            format!("kubernetes.io/service-name={service}"),
        )],
        0,
        "list endpointslices.discovery.k8s.io",
    )
    .await
}

/// `formatEndpointSlices`: at most three `ip:port`, then `+ N more...`.
fn format_endpoint_slices(slices: &[EndpointSlice], ports: Option<&BTreeSet<String>>) -> String {
    if slices.is_empty() {
        return "<none>".into();
    }
    const MAX: usize = 3;
    let mut list: Vec<String> = Vec::new();
    let mut more = false;
    let mut count = 0;
    let ready = |e: &k8s_openapi::api::discovery::v1::Endpoint| {
        e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true)
    };
    for s in slices {
        let slice_ports = s.ports.clone().unwrap_or_default();
        if slice_ports.is_empty() {
            for e in s.endpoints.iter().flatten() {
                if list.len() == MAX {
                    more = true;
                }
                if !ready(e) {
                    continue;
                }
                if !more {
                    list.push(e.addresses.first().cloned().unwrap_or_default());
                }
                count += 1;
            }
        } else {
            for p in &slice_ports {
                let name = p.name.clone().unwrap_or_default();
                if ports.is_some_and(|ps| !ps.contains(&name)) {
                    continue;
                }
                for e in s.endpoints.iter().flatten() {
                    if list.len() == MAX {
                        more = true;
                    }
                    if !ready(e) {
                        continue;
                    }
                    if !more {
                        let addr = e.addresses.first().cloned().unwrap_or_default();
                        let port = p.port.unwrap_or(0);
                        list.push(if addr.contains(':') {
                            format!("[{addr}]:{port}")
                        } else {
                            format!("{addr}:{port}")
                        });
                    }
                    count += 1;
                }
            }
        }
    }
    let joined = list.join(",");
    if more {
        format!("{joined} + {} more...", count - MAX)
    } else {
        joined
    }
}

// === Service ===

pub(super) async fn service(
    ex: &Executor,
    obj: Value,
    settings: Settings,
    now: DateTime<Utc>,
) -> Result<String, ApiError> {
    let svc: Service = decode(obj)?;
    let ns = svc.metadata.namespace.clone().unwrap_or_default();
    let name = svc.metadata.name.clone().unwrap_or_default();
    let slices = endpoint_slices(ex, &ns, &name).await.unwrap_or_default();
    let events = object_events(ex, settings, &svc.metadata, "Service").await;
    Ok(render_service(&svc, &slices, events.as_deref(), now))
}

fn render_service(
    svc: &Service,
    slices: &[EndpointSlice],
    events: Option<&[Event]>,
    now: DateTime<Utc>,
) -> String {
    let mut w = Writer::new(now);
    let spec = svc.spec.clone().unwrap_or_default();
    let status = svc.status.clone().unwrap_or_default();
    name_namespace(&mut w, &svc.metadata);
    labels_multiline(&mut w, "Labels", svc.metadata.labels.as_ref());
    annotations_multiline(&mut w, "Annotations", svc.metadata.annotations.as_ref());
    w.write(
        0,
        &format!("Selector:\t{}\n", format_labels(spec.selector.as_ref())),
    );
    w.write(
        0,
        &format!("Type:\t{}\n", spec.type_.as_deref().unwrap_or_default()),
    );
    if let Some(p) = &spec.ip_family_policy {
        w.write(0, &format!("IP Family Policy:\t{p}\n"));
    }
    let families = spec.ip_families.clone().unwrap_or_default();
    if families.is_empty() {
        w.write(0, "IP Families:\t<none>\n");
    } else {
        w.write(0, &format!("IP Families:\t{}\n", families.join(",")));
    }
    w.write(
        0,
        &format!("IP:\t{}\n", spec.cluster_ip.as_deref().unwrap_or_default()),
    );
    let ips = spec.cluster_ips.clone().unwrap_or_default();
    if ips.is_empty() {
        w.write(0, "IPs:\t<none>\n");
    } else {
        w.write(0, &format!("IPs:\t{}\n", ips.join(",")));
    }
    if let Some(e) = spec.external_ips.as_ref().filter(|e| !e.is_empty()) {
        w.write(0, &format!("External IPs:\t{}\n", e.join(",")));
    }
    if let Some(ip) = spec.load_balancer_ip.as_deref().filter(|s| !s.is_empty()) {
        w.write(0, &format!("Desired LoadBalancer IP:\t{ip}\n"));
    }
    if let Some(n) = spec.external_name.as_deref().filter(|s| !s.is_empty()) {
        w.write(0, &format!("External Name:\t{n}\n"));
    }
    let ingress = status
        .load_balancer
        .and_then(|l| l.ingress)
        .unwrap_or_default();
    if !ingress.is_empty() {
        let list = ingress
            .iter()
            .map(|i| match i.ip.as_deref().filter(|s| !s.is_empty()) {
                Some(ip) => match &i.ip_mode {
                    Some(m) => format!("{ip} ({m})"),
                    None => ip.to_string(),
                },
                None => i.hostname.clone().unwrap_or_default(),
            })
            .collect::<Vec<_>>()
            .join(", ");
        w.write(0, &format!("LoadBalancer Ingress:\t{list}\n"));
    }
    for sp in spec.ports.iter().flatten() {
        let protocol = sp.protocol.as_deref().unwrap_or_default();
        let name = sp
            .name
            .as_deref()
            .filter(|n| !n.is_empty())
            .unwrap_or("<unset>");
        w.write(0, &format!("Port:\t{name}\t{}/{protocol}\n", sp.port));
        match &sp.target_port {
            Some(IntOrString::String(s)) => {
                w.write(0, &format!("TargetPort:\t{s}/{protocol}\n"));
            }
            Some(IntOrString::Int(i)) => w.write(0, &format!("TargetPort:\t{i}/{protocol}\n")),
            None => w.write(0, &format!("TargetPort:\t0/{protocol}\n")),
        }
        if let Some(a) = &sp.app_protocol {
            w.write(0, &format!("AppProtocol:\t{a}\n"));
        }
        if let Some(np) = sp.node_port.filter(|p| *p != 0) {
            w.write(0, &format!("NodePort:\t{name}\t{np}/{protocol}\n"));
        }
        let ports = BTreeSet::from([sp.name.clone().unwrap_or_default()]);
        w.write(
            0,
            &format!(
                "Endpoints:\t{}\n",
                format_endpoint_slices(slices, Some(&ports))
            ),
        );
    }
    w.write(
        0,
        &format!(
            "Session Affinity:\t{}\n",
            spec.session_affinity.as_deref().unwrap_or_default()
        ),
    );
    if let Some(p) = spec
        .external_traffic_policy
        .as_deref()
        .filter(|s| !s.is_empty())
    {
        w.write(0, &format!("External Traffic Policy:\t{p}\n"));
    }
    if let Some(p) = &spec.internal_traffic_policy {
        w.write(0, &format!("Internal Traffic Policy:\t{p}\n"));
    }
    if let Some(p) = spec.health_check_node_port.filter(|p| *p != 0) {
        w.write(0, &format!("HealthCheck NodePort:\t{p}\n"));
    }
    if let Some(r) = spec
        .load_balancer_source_ranges
        .as_ref()
        .filter(|r| !r.is_empty())
    {
        w.write(
            0,
            &format!("LoadBalancer Source Ranges:\t{}\n", r.join(",")),
        );
    }
    if let Some(t) = &spec.traffic_distribution {
        w.write(0, &format!("Traffic Distribution:\t{t}\n"));
    }
    if let Some(e) = events {
        describe_events(&mut w, e);
    }
    w.finish()
}

// === Ingress ===

pub(super) async fn ingress(
    ex: &Executor,
    obj: Value,
    settings: Settings,
    now: DateTime<Utc>,
) -> Result<String, ApiError> {
    let ing: Ingress = decode(obj)?;
    let events = object_events(ex, settings, &ing.metadata, "Ingress").await;
    let ns = ing.metadata.namespace.clone().unwrap_or_default();
    let spec = ing.spec.clone().unwrap_or_default();
    // Every backend, described in the order they are printed.
    let mut backends: Vec<Option<String>> = Vec::new();
    let default = match &spec.default_backend {
        Some(b) => Some(describe_backend(ex, &ns, b).await),
        None => None,
    };
    for rule in spec.rules.iter().flatten() {
        if let Some(http) = &rule.http {
            for p in &http.paths {
                backends.push(Some(describe_backend(ex, &ns, &p.backend).await));
            }
        }
    }
    Ok(render_ingress(
        &ing,
        default,
        &backends,
        events.as_deref(),
        now,
    ))
}

/// `describeBackendV1`.
async fn describe_backend(ex: &Executor, ns: &str, backend: &IngressBackend) -> String {
    if let Some(s) = &backend.service {
        let port = s.port.clone().unwrap_or_default();
        let number = port.number.unwrap_or(0);
        let port_name = port.name.clone().unwrap_or_default();
        let sb = format!(
            "{}:{}",
            s.name,
            if number != 0 {
                number.to_string()
            } else {
                port_name.clone()
            }
        );
        let slices = match endpoint_slices(ex, ns, &s.name).await {
            Ok(s) => s,
            Err(e) => return format!("{sb} (<error: {}>)", e.go_error()),
        };
        let path = format!(
            "/api/v1/namespaces/{}/services/{}",
            api::segment(ns),
            api::segment(&s.name)
        );
        let svc: Service = match get_object(ex, &path).await.and_then(decode) {
            Ok(s) => s,
            Err(e) => return format!("{sb} (<error: {}>)", e.go_error()),
        };
        let mut sp_name = String::new();
        for sp in svc.spec.iter().flat_map(|s| s.ports.iter().flatten()) {
            let n = sp.name.clone().unwrap_or_default();
            if (number != 0 && number == sp.port) || (!port_name.is_empty() && port_name == n) {
                sp_name = n;
            }
        }
        let ports = BTreeSet::from([sp_name]);
        return format!("{sb} ({})", format_endpoint_slices(&slices, Some(&ports)));
    }
    if let Some(r) = &backend.resource {
        return format!(
            "APIGroup: {}, Kind: {}, Name: {}",
            r.api_group.as_deref().unwrap_or("<none>"),
            r.kind,
            r.name
        );
    }
    String::new()
}

fn render_ingress(
    ing: &Ingress,
    default: Option<String>,
    backends: &[Option<String>],
    events: Option<&[Event]>,
    now: DateTime<Utc>,
) -> String {
    let mut w = Writer::new(now);
    let spec = ing.spec.clone().unwrap_or_default();
    let meta = &ing.metadata;
    w.write(
        0,
        &format!("Name:\t{}\n", meta.name.as_deref().unwrap_or_default()),
    );
    labels_multiline(&mut w, "Labels", meta.labels.as_ref());
    w.write(
        0,
        &format!(
            "Namespace:\t{}\n",
            meta.namespace.as_deref().unwrap_or_default()
        ),
    );
    let addresses: BTreeSet<String> = ing
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|l| l.ingress.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|i| {
            i.ip.clone()
                .filter(|s| !s.is_empty())
                .or_else(|| i.hostname.clone().filter(|s| !s.is_empty()))
        })
        .collect();
    w.write(
        0,
        &format!(
            "Address:\t{}\n",
            addresses.into_iter().collect::<Vec<_>>().join(",")
        ),
    );
    w.write(
        0,
        &format!(
            "Ingress Class:\t{}\n",
            spec.ingress_class_name.as_deref().unwrap_or("<none>")
        ),
    );
    let default = default.unwrap_or_else(|| "<default>".into());
    w.write(0, &format!("Default backend:\t{default}\n"));
    if let Some(tls) = spec.tls.as_ref().filter(|t| !t.is_empty()) {
        w.write(0, "TLS:\n");
        for t in tls {
            let hosts = t.hosts.clone().unwrap_or_default().join(",");
            match t.secret_name.as_deref().filter(|s| !s.is_empty()) {
                None => w.write(1, &format!("SNI routes {hosts}\n")),
                Some(s) => w.write(1, &format!("{s} terminates {hosts}\n")),
            }
        }
    }
    w.write(0, "Rules:\n  Host\tPath\tBackends\n");
    w.write(1, "----\t----\t--------\n");
    let mut count = 0;
    let mut next = backends.iter();
    for rule in spec.rules.iter().flatten() {
        let Some(http) = &rule.http else { continue };
        count += 1;
        let host = rule
            .host
            .as_deref()
            .filter(|h| !h.is_empty())
            .unwrap_or("*");
        w.write(1, &format!("{host}\t\n"));
        for p in &http.paths {
            let b = next.next().cloned().flatten().unwrap_or_default();
            w.write(
                2,
                &format!("\t{} \t{b}\n", p.path.as_deref().unwrap_or_default()),
            );
        }
    }
    if count == 0 {
        w.write(1, &format!("*\t*\t{default}\n"));
    }
    annotations_multiline(&mut w, "Annotations", meta.annotations.as_ref());
    if let Some(e) = events {
        describe_events(&mut w, e);
    }
    w.finish()
}

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

// === Namespace ===

pub(super) async fn namespace(
    ex: &Executor,
    obj: Value,
    settings: Settings,
    now: DateTime<Utc>,
) -> Result<String, ApiError> {
    let ns: Namespace = decode(obj)?;
    let name = ns.metadata.name.clone().unwrap_or_default();
    let base = format!("/api/v1/namespaces/{}", api::segment(&name));
    let quotas = match list_typed::<ResourceQuota>(
        ex,
        &format!("{base}/resourcequotas"),
        &[],
        settings.chunk_size,
        "list resourcequotas",
    )
    .await
    {
        Ok(q) => Some(q),
        Err(e) if e.is_not_found() => None,
        Err(e) => return Err(e),
    };
    let limits = match list_typed::<LimitRange>(
        ex,
        &format!("{base}/limitranges"),
        &[],
        settings.chunk_size,
        "list limitranges",
    )
    .await
    {
        Ok(l) => Some(l),
        Err(e) if e.is_not_found() => None,
        Err(e) => return Err(e),
    };
    Ok(render_namespace(
        &ns,
        quotas.as_deref(),
        limits.as_deref(),
        now,
    ))
}

fn render_namespace(
    ns: &Namespace,
    quotas: Option<&[ResourceQuota]>,
    limits: Option<&[LimitRange]>,
    now: DateTime<Utc>,
) -> String {
    let mut w = Writer::new(now);
    let meta = &ns.metadata;
    let status = ns.status.clone().unwrap_or_default();
    w.write(
        0,
        &format!("Name:\t{}\n", meta.name.as_deref().unwrap_or_default()),
    );
    labels_multiline(&mut w, "Labels", meta.labels.as_ref());
    annotations_multiline(&mut w, "Annotations", meta.annotations.as_ref());
    w.write(
        0,
        &format!("Status:\t{}\n", status.phase.as_deref().unwrap_or_default()),
    );
    let conditions = status.conditions.clone().unwrap_or_default();
    if !conditions.is_empty() {
        w.write(0, "Conditions:\n");
        w.write(1, "Type\tStatus\tLastTransitionTime\tReason\tMessage\n");
        w.write(1, "----\t------\t------------------\t------\t-------\n");
        for c in &conditions {
            w.write(
                1,
                &format!(
                    "{}\t{}\t{}\t{}\t{}\n",
                    c.type_,
                    c.status,
                    rfc1123z(c.last_transition_time.as_ref()),
                    c.reason.as_deref().unwrap_or_default(),
                    c.message.as_deref().unwrap_or_default()
                ),
            );
        }
    }
    if let Some(quotas) = quotas {
        w.write(0, "\n");
        describe_quotas(&mut w, quotas);
    }
    if let Some(limits) = limits {
        w.write(0, "\n");
        describe_limit_ranges(&mut w, limits);
    }
    w.finish()
}

/// `DescribeResourceQuotas`.
fn describe_quotas(w: &mut Writer, quotas: &[ResourceQuota]) {
    if quotas.is_empty() {
        w.write(0, "No resource quota.\n");
        return;
    }
    let mut quotas: Vec<&ResourceQuota> = quotas.iter().collect();
    quotas.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    w.write(0, "Resource Quotas\n");
    for q in quotas {
        w.write(
            1,
            &format!(
                "Name:\t{}\n",
                q.metadata.name.as_deref().unwrap_or_default()
            ),
        );
        let mut scopes = q
            .spec
            .as_ref()
            .and_then(|s| s.scopes.clone())
            .unwrap_or_default();
        if !scopes.is_empty() {
            scopes.sort();
            w.write(1, &format!("Scopes:\t{}\n", scopes.join(", ")));
            for s in &scopes {
                let help = quota_scope_help(s);
                if !help.is_empty() {
                    w.write(1, &format!("* {help}\n"));
                }
            }
        }
        w.write(1, "Resource\tUsed\tHard\n");
        w.write(1, "--------\t---\t---\n");
        let status = q.status.clone().unwrap_or_default();
        let used = status.used.clone().unwrap_or_default();
        for (name, hard) in status.hard.iter().flatten() {
            let used = used.get(name).map_or("0".to_string(), |u| canonical(&u.0));
            w.write(1, &format!("{name}\t{used}\t{}\n", canonical(&hard.0)));
        }
    }
}

/// `DescribeLimitRanges` (resources in name order; kubectl walks a Go map).
fn describe_limit_ranges(w: &mut Writer, limits: &[LimitRange]) {
    if limits.is_empty() {
        w.write(0, "No LimitRange resource.\n");
        return;
    }
    w.write(
        0,
        "Resource Limits\n Type\tResource\tMin\tMax\tDefault Request\tDefault Limit\tMax Limit/Request Ratio\n",
    );
    w.write(
        0,
        " ----\t--------\t---\t---\t---------------\t-------------\t-----------------------\n",
    );
    for l in limits {
        describe_limit_range_spec(w, l, " ");
    }
}

// === ConfigMap ===

pub(super) async fn config_map(
    ex: &Executor,
    obj: Value,
    settings: Settings,
    now: DateTime<Utc>,
) -> Result<String, ApiError> {
    let cm: ConfigMap = decode(obj)?;
    let events = if settings.show_events {
        let target = EventTarget {
            namespace: cm.metadata.namespace.as_deref().unwrap_or_default(),
            name: cm.metadata.name.as_deref().unwrap_or_default(),
            kind: Some("ConfigMap"),
            uid: cm.metadata.uid.as_deref(),
        };
        // Unlike the other describers, a failed event search fails the ConfigMap's description.
        Some(search_events(ex, &target, settings.chunk_size).await?)
    } else {
        None
    };
    Ok(render_config_map(&cm, events.as_deref(), now))
}

fn render_config_map(cm: &ConfigMap, events: Option<&[Event]>, now: DateTime<Utc>) -> String {
    let mut w = Writer::new(now);
    name_namespace(&mut w, &cm.metadata);
    labels_multiline(&mut w, "Labels", cm.metadata.labels.as_ref());
    annotations_multiline(&mut w, "Annotations", cm.metadata.annotations.as_ref());
    w.write(0, "\nData\n====\n");
    for (k, v) in cm.data.iter().flatten() {
        w.write(0, &format!("{k}:\n----\n"));
        w.write(0, &format!("{v}\n"));
        w.write(0, "\n");
    }
    w.write(0, "\nBinaryData\n====\n");
    for (k, v) in cm.binary_data.iter().flatten() {
        w.write(0, &format!("{k}: {} bytes\n", v.0.len()));
    }
    w.write(0, "\n");
    if let Some(e) = events {
        describe_events(&mut w, e);
    }
    w.finish()
}

// === Secret ===

/// `describeSecret`, printing only the size of every value. kubectl prints the token of a
/// `kubernetes.io/service-account-token` Secret in clear; kubeline prints its size too, so no
/// Secret value ever leaves the cluster.
pub(super) fn secret(obj: Value, now: DateTime<Utc>) -> Result<String, ApiError> {
    let s: Secret = decode(obj)?;
    Ok(render_secret(&s, now))
}

fn render_secret(s: &Secret, now: DateTime<Utc>) -> String {
    let mut w = Writer::new(now);
    name_namespace(&mut w, &s.metadata);
    labels_multiline(&mut w, "Labels", s.metadata.labels.as_ref());
    annotations_multiline(&mut w, "Annotations", s.metadata.annotations.as_ref());
    w.write(
        0,
        &format!("\nType:\t{}\n", s.type_.as_deref().unwrap_or_default()),
    );
    w.write(0, "\nData\n====\n");
    for (k, v) in s.data.iter().flatten() {
        w.write(0, &format!("{k}:\t{} bytes\n", v.0.len()));
    }
    w.finish()
}

// === PersistentVolume ===

pub(super) async fn persistent_volume(
    ex: &Executor,
    obj: Value,
    settings: Settings,
    now: DateTime<Utc>,
) -> Result<String, ApiError> {
    let pv: PersistentVolume = decode(obj)?;
    let events = object_events(ex, settings, &pv.metadata, "PersistentVolume").await;
    Ok(render_pv(&pv, events.as_deref(), now))
}

fn render_pv(pv: &PersistentVolume, events: Option<&[Event]>, now: DateTime<Utc>) -> String {
    let mut w = Writer::new(now);
    let meta = &pv.metadata;
    let spec = pv.spec.clone().unwrap_or_default();
    let status = pv.status.clone().unwrap_or_default();
    w.write(
        0,
        &format!("Name:\t{}\n", meta.name.as_deref().unwrap_or_default()),
    );
    labels_multiline(&mut w, "Labels", meta.labels.as_ref());
    annotations_multiline(&mut w, "Annotations", meta.annotations.as_ref());
    w.write(
        0,
        &format!(
            "Finalizers:\t{}\n",
            go_strings(meta.finalizers.as_deref().unwrap_or_default())
        ),
    );
    let class = meta
        .annotations
        .as_ref()
        .and_then(|a| a.get("volume.beta.kubernetes.io/storage-class"))
        .cloned()
        .or_else(|| spec.storage_class_name.clone())
        .unwrap_or_default();
    w.write(0, &format!("StorageClass:\t{class}\n"));
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
    let claim = spec.claim_ref.as_ref().map_or(String::new(), |c| {
        format!(
            "{}/{}",
            c.namespace.as_deref().unwrap_or_default(),
            c.name.as_deref().unwrap_or_default()
        )
    });
    w.write(0, &format!("Claim:\t{claim}\n"));
    w.write(
        0,
        &format!(
            "Reclaim Policy:\t{}\n",
            spec.persistent_volume_reclaim_policy
                .as_deref()
                .unwrap_or_default()
        ),
    );
    w.write(
        0,
        &format!(
            "Access Modes:\t{}\n",
            access_modes(spec.access_modes.as_ref())
        ),
    );
    if let Some(m) = &spec.volume_mode {
        w.write(0, &format!("VolumeMode:\t{m}\n"));
    }
    let storage = spec
        .capacity
        .as_ref()
        .and_then(|c| c.get("storage"))
        .map_or("0".to_string(), |q| canonical(&q.0));
    w.write(0, &format!("Capacity:\t{storage}\n"));
    // printVolumeNodeAffinity.
    w.write(0, "Node Affinity:\t");
    match spec
        .node_affinity
        .as_ref()
        .and_then(|a| a.required.as_ref())
    {
        None => w.line("<none>"),
        Some(req) => {
            w.line("");
            w.write(1, "Required Terms:\t");
            if req.node_selector_terms.is_empty() {
                w.line("<none>");
            } else {
                w.line("");
                for (i, term) in req.node_selector_terms.iter().enumerate() {
                    let exprs = term.match_expressions.clone().unwrap_or_default();
                    w.write(2, &format!("Term {i}:\t"));
                    if exprs.is_empty() {
                        w.line("<none>");
                        continue;
                    }
                    for (j, e) in exprs.iter().enumerate() {
                        if j != 0 {
                            w.write(2, "\t");
                        }
                        let mut s = format!("{} {}", e.key, e.operator.to_lowercase());
                        if let Some(v) = e.values.as_ref().filter(|v| !v.is_empty()) {
                            s = format!("{s} [{}]", v.join(", "));
                        }
                        w.write(0, &format!("{s}\n"));
                    }
                }
            }
        }
    }
    w.write(
        0,
        &format!(
            "Message:\t{}\n",
            status.message.as_deref().unwrap_or_default()
        ),
    );
    w.write(0, "Source:\n");
    if let Some(h) = &spec.host_path {
        host_path_source(&mut w, h);
    } else if let Some(n) = &spec.nfs {
        nfs_source(&mut w, n);
    } else if let Some(l) = &spec.local {
        w.write(
            2,
            &format!(
                "Type:\tLocalVolume (a persistent volume backed by local storage on a node)\n    Path:\t{}\n",
                l.path
            ),
        );
    } else if let Some(c) = &spec.csi {
        w.write(
            2,
            &format!(
                "Type:\tCSI (a Container Storage Interface (CSI) volume source)\n    Driver:\t{}\n    FSType:\t{}\n    VolumeHandle:\t{}\n    ReadOnly:\t{}\n",
                c.driver,
                c.fs_type.as_deref().unwrap_or_default(),
                c.volume_handle,
                go_bool(c.read_only.unwrap_or(false))
            ),
        );
        csi_attributes(&mut w, &c.volume_attributes.clone().unwrap_or_default());
    } else {
        w.write(1, "<unknown>\n");
    }
    if let Some(e) = events {
        describe_events(&mut w, e);
    }
    w.finish()
}

// === PersistentVolumeClaim ===

pub(super) async fn persistent_volume_claim(
    ex: &Executor,
    obj: Value,
    settings: Settings,
    now: DateTime<Utc>,
) -> Result<String, ApiError> {
    let pvc: PersistentVolumeClaim = decode(obj)?;
    let ns = pvc.metadata.namespace.clone().unwrap_or_default();
    let all: Vec<Pod> = list_typed(
        ex,
        &format!("/api/v1/namespaces/{}/pods", api::segment(&ns)),
        &[],
        settings.chunk_size,
        "list pods",
    )
    .await?;
    let name = pvc.metadata.name.clone().unwrap_or_default();
    // getPodsForPVC: pods mounting the claim (once per volume), then owning pods.
    let mut used: Vec<Pod> = Vec::new();
    for p in &all {
        for v in p.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
            if v.persistent_volume_claim
                .as_ref()
                .is_some_and(|c| c.claim_name == name)
            {
                used.push(p.clone());
            }
        }
    }
    for o in pvc.metadata.owner_references.iter().flatten() {
        if o.kind != "Pod" {
            continue;
        }
        if let Some(p) = all
            .iter()
            .find(|p| p.metadata.uid.as_deref() == Some(&o.uid))
            && !used.iter().any(|u| u.metadata.uid == p.metadata.uid)
        {
            used.push(p.clone());
        }
    }
    let events = object_events(ex, settings, &pvc.metadata, "PersistentVolumeClaim").await;
    Ok(render_pvc(&pvc, &used, events.as_deref(), now))
}

fn render_pvc(
    pvc: &PersistentVolumeClaim,
    pods: &[Pod],
    events: Option<&[Event]>,
    now: DateTime<Utc>,
) -> String {
    let mut w = Writer::new(now);
    print_pvc(&mut w, pvc, true);
    // printPodsMultiline.
    w.write(0, "Used By:\t");
    let mut names: Vec<String> = pods
        .iter()
        .map(|p| p.metadata.name.clone().unwrap_or_default())
        .collect();
    if names.is_empty() {
        w.line("<none>");
    } else {
        names.sort();
        for (i, n) in names.iter().enumerate() {
            if i != 0 {
                w.write(0, "\t");
            }
            w.write(0, &format!("{n}\n"));
        }
    }
    let conditions = pvc
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    if !conditions.is_empty() {
        w.write(0, "Conditions:\n");
        w.write(
            1,
            "Type\tStatus\tLastProbeTime\tLastTransitionTime\tReason\tMessage\n",
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
                    rfc1123z(c.last_probe_time.as_ref()),
                    rfc1123z(c.last_transition_time.as_ref()),
                    c.reason.as_deref().unwrap_or_default(),
                    c.message.as_deref().unwrap_or_default()
                ),
            );
        }
    }
    if let Some(e) = events {
        describe_events(&mut w, e);
    }
    w.finish()
}

// === ServiceAccount ===

pub(super) async fn service_account(
    ex: &Executor,
    obj: Value,
    settings: Settings,
    now: DateTime<Utc>,
) -> Result<String, ApiError> {
    let sa: ServiceAccount = decode(obj)?;
    let events = object_events(ex, settings, &sa.metadata, "ServiceAccount").await;
    Ok(render_service_account(&sa, events.as_deref(), now))
}

fn render_service_account(
    sa: &ServiceAccount,
    events: Option<&[Event]>,
    now: DateTime<Utc>,
) -> String {
    let mut w = Writer::new(now);
    name_namespace(&mut w, &sa.metadata);
    labels_multiline(&mut w, "Labels", sa.metadata.labels.as_ref());
    annotations_multiline(&mut w, "Annotations", sa.metadata.annotations.as_ref());
    let header = "Image pull secrets:";
    let empty = "                   ";
    let names: Vec<String> = sa
        .image_pull_secrets
        .iter()
        .flatten()
        .map(|s| s.name.clone())
        .collect();
    if names.is_empty() {
        w.write(0, &format!("{header}\t<none>\n"));
    } else {
        let mut prefix = header;
        for n in &names {
            w.write(0, &format!("{prefix}\t{n}\n"));
            prefix = empty;
        }
    }
    if let Some(e) = events {
        describe_events(&mut w, e);
    }
    w.finish()
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
    fn namespaces_list_their_limit_ranges_like_kubectl() {
        let ns: Namespace = serde_json::from_value(json!({
            "metadata": { "name": "credit-service" },
            "status": { "phase": "Active" },
        }))
        .unwrap();
        let lr: LimitRange = serde_json::from_value(json!({
            "metadata": { "name": "defaults", "namespace": "credit-service" },
            "spec": { "limits": [{
                "type": "Container",
                "default": { "memory": "256Mi", "cpu": "200m" },
                "defaultRequest": { "cpu": "100m" },
            }]},
        }))
        .unwrap();
        let quota: ResourceQuota = serde_json::from_value(json!({
            "metadata": { "name": "pods", "namespace": "credit-service" },
            "spec": { "hard": { "pods": "10" }, "scopes": ["Terminating"] },
            "status": { "hard": { "pods": "10" }, "used": { "pods": "2" } },
        }))
        .unwrap();
        let out = render_namespace(&ns, Some(&[quota]), Some(&[lr]), now());
        assert!(
            out.contains(
                "* Matches all pods that have an active deadline. These pods have a limited \
                 lifespan on a node before being actively terminated by the system.\n"
            ),
            "{out}"
        );
        let rows: Vec<Vec<&str>> = out
            .lines()
            .skip_while(|l| !l.starts_with("Resource Limits"))
            .skip(1)
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(
            rows,
            [
                vec![
                    "Type",
                    "Resource",
                    "Min",
                    "Max",
                    "Default",
                    "Request",
                    "Default",
                    "Limit",
                    "Max",
                    "Limit/Request",
                    "Ratio"
                ],
                vec![
                    "----",
                    "--------",
                    "---",
                    "---",
                    "---------------",
                    "-------------",
                    "-----------------------"
                ],
                vec!["Container", "cpu", "-", "-", "100m", "200m", "-"],
                vec!["Container", "memory", "-", "-", "-", "256Mi", "-"],
            ]
        );
        assert!(
            out.lines().any(|l| l.starts_with(" Container")),
            "rows are indented by one space:\n{out}"
        );
    }

    #[test]
    fn secrets_show_sizes_never_values() {
        let s: Secret = serde_json::from_value(json!({
            "metadata": {"name": "credit-api-secrets", "namespace": "credit-service"},
            "type": "Opaque",
            "data": {"DB_PASSWORD": "a2JsLXRlc3RiZWQtZGItcGFzc3dvcmQtN2YzYTlj", "DB_USER": "Y3JlZGl0X2FwcA=="}
        }))
        .unwrap();
        let text = render_secret(&s, now());
        assert_eq!(
            text,
            "Name:         credit-api-secrets\nNamespace:    credit-service\nLabels:       <none>\n\
             Annotations:  <none>\n\nType:  Opaque\n\nData\n====\nDB_PASSWORD:  30 bytes\nDB_USER:      10 bytes\n"
        );
        let token: Secret = serde_json::from_value(json!({
            "metadata": {"name": "t", "namespace": "n"},
            "type": "kubernetes.io/service-account-token",
            "data": {"token": "c2VjcmV0LXRva2Vu"}
        }))
        .unwrap();
        let text = render_secret(&token, now());
        assert!(
            text.contains("token:  12 bytes\n") && !text.contains("secret-token"),
            "{text}"
        );
    }

    #[test]
    fn a_service_account_and_a_config_map() {
        let sa: ServiceAccount = serde_json::from_value(json!({
            "metadata": {"name": "credit-api", "namespace": "credit-service"},
            "imagePullSecrets": [{"name": "a"}, {"name": "b"}]
        }))
        .unwrap();
        assert_eq!(
            render_service_account(&sa, Some(&[]), now()),
            "Name:                credit-api\nNamespace:           credit-service\n\
             Labels:              <none>\nAnnotations:         <none>\n\
             Image pull secrets:  a\n                     b\nEvents:              <none>\n"
        );
        let cm: ConfigMap = serde_json::from_value(json!({
            "metadata": {"name": "c", "namespace": "n"},
            "data": {"k": "v"}, "binaryData": {"b": "AAEC"}
        }))
        .unwrap();
        assert_eq!(
            render_config_map(&cm, None, now()),
            "Name:         c\nNamespace:    n\nLabels:       <none>\nAnnotations:  <none>\n\n\
             Data\n====\nk:\n----\nv\n\n\nBinaryData\n====\nb: 3 bytes\n\n"
        );
    }

    #[test]
    fn a_bound_claim_and_its_volume() {
        let pvc: PersistentVolumeClaim = serde_json::from_value(json!({
            "metadata": {"name": "data", "namespace": "n", "finalizers": ["kubernetes.io/pvc-protection"]},
            "spec": {"storageClassName": "standard", "volumeName": "pv-1", "accessModes": ["ReadWriteOnce"],
                "volumeMode": "Filesystem", "resources": {"requests": {"storage": "1Gi"}}},
            "status": {"phase": "Bound", "accessModes": ["ReadWriteOnce"], "capacity": {"storage": "1Gi"}}
        }))
        .unwrap();
        let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "user"}})).unwrap();
        assert_eq!(
            render_pvc(&pvc, &[pod], Some(&[]), now()),
            "Name:          data\nNamespace:     n\nStorageClass:  standard\nStatus:        Bound\n\
             Volume:        pv-1\nLabels:        <none>\nAnnotations:   <none>\n\
             Finalizers:    [kubernetes.io/pvc-protection]\nCapacity:      1Gi\nAccess Modes:  RWO\n\
             VolumeMode:    Filesystem\nUsed By:       user\nEvents:        <none>\n"
        );
        let pv: PersistentVolume = serde_json::from_value(json!({
            "metadata": {"name": "pv-1"},
            "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": "Delete", "storageClassName": "standard",
                "volumeMode": "Filesystem", "hostPath": {"path": "/data", "type": ""},
                "claimRef": {"namespace": "n", "name": "data"}},
            "status": {"phase": "Bound"}
        }))
        .unwrap();
        assert_eq!(
            render_pv(&pv, None, now()),
            "Name:            pv-1\nLabels:          <none>\nAnnotations:     <none>\nFinalizers:      []\n\
             StorageClass:    standard\nStatus:          Bound\nClaim:           n/data\n\
             Reclaim Policy:  Delete\nAccess Modes:    RWO\nVolumeMode:      Filesystem\n\
             Capacity:        1Gi\nNode Affinity:   <none>\nMessage:         \nSource:\n    \
             Type:          HostPath (bare host directory volume)\n    Path:          /data\n    \
             HostPathType:  \n"
        );
        let nfs: PersistentVolume = serde_json::from_value(json!({
            "metadata": {"name": "pv-2"},
            "spec": {"nfs": {"server": "nfs.example", "path": "/exports/a", "readOnly": true}},
            "status": {"phase": "Available"}
        }))
        .unwrap();
        let out = render_pv(&nfs, None, now());
        let source: Vec<Vec<&str>> = out
            .lines()
            .skip_while(|l| *l != "Source:")
            .skip(1)
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(
            source,
            [
                vec![
                    "Type:", "NFS", "(an", "NFS", "mount", "that", "lasts", "the", "lifetime",
                    "of", "a", "pod)"
                ],
                vec!["Server:", "nfs.example"],
                vec!["Path:", "/exports/a"],
                vec!["ReadOnly:", "true"],
            ]
        );
    }
}
