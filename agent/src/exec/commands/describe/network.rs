//! Service, Ingress, NetworkPolicy, Endpoints, EndpointSlice, IngressClass, ServiceCIDR and
//! IPAddress.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::{Endpoints, Event, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{
    IPAddress, Ingress, IngressBackend, IngressClass, NetworkPolicy, NetworkPolicyPeer,
    NetworkPolicyPort, ServiceCIDR,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;

use super::pod::int_or_string;
use super::writer::{
    Writer, annotations_multiline, chrono_time, describe_events, format_label_selector,
    format_labels, labels_multiline, name_namespace, rfc1123z,
};
use super::{Settings, decode, get_object, list_typed, object_events};
use crate::exec::Executor;
use crate::exec::api::{self, ApiError};

/// `Name`, `Labels` and `Annotations` of a cluster-scoped object.
fn name_labels_annotations(w: &mut Writer, meta: &ObjectMeta) {
    w.write(
        0,
        &format!("Name:\t{}\n", meta.name.as_deref().unwrap_or_default()),
    );
    labels_multiline(w, "Labels", meta.labels.as_ref());
    annotations_multiline(w, "Annotations", meta.annotations.as_ref());
}

/// Go's `time.Time.String()` of a `metav1.Time` (kubectl's local zone; UTC here).
fn go_time_string(t: Option<&Time>) -> String {
    match t {
        None => "0001-01-01 00:00:00 +0000 UTC".into(),
        Some(t) => chrono_time(&t.0)
            .format("%Y-%m-%d %H:%M:%S +0000 UTC")
            .to_string(),
    }
}

// === NetworkPolicy ===

pub(super) fn network_policy(obj: Value, now: DateTime<Utc>) -> Result<String, ApiError> {
    let np: NetworkPolicy = decode(obj)?;
    let mut w = Writer::new(now);
    name_namespace(&mut w, &np.metadata);
    w.write(
        0,
        &format!(
            "Created on:\t{}\n",
            go_time_string(np.metadata.creation_timestamp.as_ref())
        ),
    );
    labels_multiline(&mut w, "Labels", np.metadata.labels.as_ref());
    annotations_multiline(&mut w, "Annotations", np.metadata.annotations.as_ref());
    let spec = np.spec.clone().unwrap_or_default();
    w.write(0, "Spec:\n");
    w.write(1, "PodSelector: ");
    let sel = spec.pod_selector.clone().unwrap_or_default();
    let empty = sel.match_labels.as_ref().is_none_or(|m| m.is_empty())
        && sel.match_expressions.as_ref().is_none_or(|m| m.is_empty());
    if empty {
        w.write(
            2,
            "<none> (Allowing the specific traffic to all pods in this namespace)\n",
        );
    } else {
        w.write(2, &format!("{}\n", format_label_selector(Some(&sel))));
    }
    let types = spec.policy_types.clone().unwrap_or_default();
    let ingress = types.iter().any(|t| t == "Ingress");
    let egress = types.iter().any(|t| t == "Egress");
    let indent = "    ";
    if ingress {
        w.write(1, "Allowing ingress traffic:\n");
        let rules = spec.ingress.clone().unwrap_or_default();
        let rules: Vec<(Vec<NetworkPolicyPort>, Vec<NetworkPolicyPeer>)> = rules
            .into_iter()
            .map(|r| (r.ports.unwrap_or_default(), r.from.unwrap_or_default()))
            .collect();
        print_rules(&mut w, &rules, indent, Direction::Ingress);
    } else {
        w.write(1, "Not affecting ingress traffic\n");
    }
    if egress {
        w.write(1, "Allowing egress traffic:\n");
        let rules = spec.egress.clone().unwrap_or_default();
        let rules: Vec<(Vec<NetworkPolicyPort>, Vec<NetworkPolicyPeer>)> = rules
            .into_iter()
            .map(|r| (r.ports.unwrap_or_default(), r.to.unwrap_or_default()))
            .collect();
        print_rules(&mut w, &rules, indent, Direction::Egress);
    } else {
        w.write(1, "Not affecting egress traffic\n");
    }
    // `policyTypesToString`: the types joined by ", ", `<none>` when there are none.
    let types_text = if types.is_empty() {
        "<none>".to_string()
    } else {
        types.join(", ")
    };
    w.write(1, &format!("Policy Types: {types_text}\n"));
    Ok(w.finish())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    Ingress,
    Egress,
}

/// `printNetworkPolicySpecIngressFrom` and `printNetworkPolicySpecEgressTo`.
fn print_rules(
    w: &mut Writer,
    rules: &[(Vec<NetworkPolicyPort>, Vec<NetworkPolicyPeer>)],
    indent: &str,
    direction: Direction,
) {
    let (isolated, peer_label, any_peer) = match direction {
        Direction::Ingress => (
            "<none> (Selected pods are isolated for ingress connectivity)",
            "From:",
            "From: <any> (traffic not restricted by source)",
        ),
        Direction::Egress => (
            "<none> (Selected pods are isolated for egress connectivity)",
            "To:",
            "To: <any> (traffic not restricted by destination)",
        ),
    };
    if rules.is_empty() {
        w.write(0, &format!("{indent}{isolated}\n"));
        return;
    }
    for (i, (ports, peers)) in rules.iter().enumerate() {
        if ports.is_empty() {
            w.write(
                0,
                &format!("{indent}To Port: <any> (traffic allowed to all ports)\n"),
            );
        } else {
            for p in ports {
                let proto = p.protocol.as_deref().unwrap_or("TCP");
                let port = p.port.as_ref().map_or("<nil>".to_string(), int_or_string);
                match p.end_port {
                    None => w.write(0, &format!("{indent}To Port: {port}/{proto}\n")),
                    Some(end) => {
                        w.write(0, &format!("{indent}To Port Range: {port}-{end}/{proto}\n"))
                    }
                }
            }
        }
        if peers.is_empty() {
            w.write(0, &format!("{indent}{any_peer}\n"));
        } else {
            for peer in peers {
                w.write(0, &format!("{indent}{peer_label}\n"));
                match (&peer.pod_selector, &peer.namespace_selector, &peer.ip_block) {
                    (Some(pod), Some(ns), _) => {
                        w.write(
                            1,
                            &format!(
                                "{indent}NamespaceSelector: {}\n",
                                format_label_selector(Some(ns))
                            ),
                        );
                        w.write(
                            1,
                            &format!(
                                "{indent}PodSelector: {}\n",
                                format_label_selector(Some(pod))
                            ),
                        );
                    }
                    (Some(pod), None, _) => w.write(
                        1,
                        &format!(
                            "{indent}PodSelector: {}\n",
                            format_label_selector(Some(pod))
                        ),
                    ),
                    (None, Some(ns), _) => w.write(
                        1,
                        &format!(
                            "{indent}NamespaceSelector: {}\n",
                            format_label_selector(Some(ns))
                        ),
                    ),
                    (None, None, Some(block)) => {
                        w.write(1, &format!("{indent}IPBlock:\n"));
                        w.write(2, &format!("{indent}CIDR: {}\n", block.cidr));
                        w.write(
                            2,
                            &format!(
                                "{indent}Except: {}\n",
                                block.except.clone().unwrap_or_default().join(", ")
                            ),
                        );
                    }
                    (None, None, None) => {}
                }
            }
        }
        if i != rules.len() - 1 {
            w.write(0, &format!("{indent}----------\n"));
        }
    }
}

// === Endpoints ===

pub(super) async fn endpoints(
    ex: &Executor,
    obj: Value,
    settings: Settings,
    now: DateTime<Utc>,
) -> Result<String, ApiError> {
    let ep: Endpoints = decode(obj)?;
    let events = object_events(ex, settings, &ep.metadata, "Endpoints").await;
    Ok(render_endpoints(&ep, events.as_deref(), now))
}

fn render_endpoints(ep: &Endpoints, events: Option<&[Event]>, now: DateTime<Utc>) -> String {
    let mut w = Writer::new(now);
    name_namespace(&mut w, &ep.metadata);
    labels_multiline(&mut w, "Labels", ep.metadata.labels.as_ref());
    annotations_multiline(&mut w, "Annotations", ep.metadata.annotations.as_ref());
    w.write(0, "Subsets:\n");
    for subset in ep.subsets.iter().flatten() {
        let ips = |list: &Option<Vec<k8s_openapi::api::core::v1::EndpointAddress>>| {
            let s = list
                .iter()
                .flatten()
                .map(|a| a.ip.clone())
                .collect::<Vec<_>>()
                .join(",");
            if s.is_empty() {
                "<none>".to_string()
            } else {
                s
            }
        };
        w.write(1, &format!("Addresses:\t{}\n", ips(&subset.addresses)));
        w.write(
            1,
            &format!("NotReadyAddresses:\t{}\n", ips(&subset.not_ready_addresses)),
        );
        let ports = subset.ports.clone().unwrap_or_default();
        if !ports.is_empty() {
            w.write(1, "Ports:\n");
            w.write(2, "Name\tPort\tProtocol\n");
            w.write(2, "----\t----\t--------\n");
            for p in &ports {
                let name = p
                    .name
                    .as_deref()
                    .filter(|n| !n.is_empty())
                    .unwrap_or("<unset>");
                w.write(
                    2,
                    &format!(
                        "{name}\t{}\t{}\n",
                        p.port,
                        p.protocol.as_deref().unwrap_or_default()
                    ),
                );
            }
        }
        w.write(0, "\n");
    }
    if let Some(e) = events {
        describe_events(&mut w, e);
    }
    w.finish()
}

// === EndpointSlice ===

pub(super) async fn endpoint_slice(
    ex: &Executor,
    obj: Value,
    settings: Settings,
    now: DateTime<Utc>,
) -> Result<String, ApiError> {
    let eps: EndpointSlice = decode(obj)?;
    let events = object_events(ex, settings, &eps.metadata, "EndpointSlice").await;
    Ok(render_endpoint_slice(&eps, events.as_deref(), now))
}

fn render_endpoint_slice(
    eps: &EndpointSlice,
    events: Option<&[Event]>,
    now: DateTime<Utc>,
) -> String {
    let mut w = Writer::new(now);
    name_namespace(&mut w, &eps.metadata);
    labels_multiline(&mut w, "Labels", eps.metadata.labels.as_ref());
    annotations_multiline(&mut w, "Annotations", eps.metadata.annotations.as_ref());
    w.write(0, &format!("AddressType:\t{}\n", eps.address_type));
    let ports = eps.ports.clone().unwrap_or_default();
    if ports.is_empty() {
        w.write(0, "Ports: <unset>\n");
    } else {
        w.write(0, "Ports:\n");
        w.write(1, "Name\tPort\tProtocol\n");
        w.write(1, "----\t----\t--------\n");
        for p in &ports {
            let name = p
                .name
                .as_deref()
                .filter(|n| !n.is_empty())
                .unwrap_or("<unset>");
            let port = p.port.map_or("<unset>".to_string(), |p| p.to_string());
            w.write(
                1,
                &format!(
                    "{name}\t{port}\t{}\n",
                    p.protocol.as_deref().unwrap_or_default()
                ),
            );
        }
    }
    let endpoints = eps.endpoints.clone().unwrap_or_default();
    if endpoints.is_empty() {
        w.write(0, "Endpoints: <none>\n");
    } else {
        w.write(0, "Endpoints:\n");
        for e in &endpoints {
            let addrs = e.addresses.join(", ");
            let addrs = if addrs.is_empty() {
                "<none>".to_string()
            } else {
                addrs
            };
            w.write(1, &format!("- Addresses:\t{addrs}\n"));
            w.write(2, "Conditions:\n");
            let ready = e
                .conditions
                .as_ref()
                .and_then(|c| c.ready)
                .map_or("<unset>", super::writer::go_bool);
            w.write(3, &format!("Ready:\t{ready}\n"));
            w.write(
                2,
                &format!(
                    "Hostname:\t{}\n",
                    e.hostname.as_deref().unwrap_or("<unset>")
                ),
            );
            if let Some(t) = &e.target_ref {
                w.write(
                    2,
                    &format!(
                        "TargetRef:\t{}/{}\n",
                        t.kind.as_deref().unwrap_or_default(),
                        t.name.as_deref().unwrap_or_default()
                    ),
                );
            }
            w.write(
                2,
                &format!(
                    "NodeName:\t{}\n",
                    e.node_name.as_deref().unwrap_or("<unset>")
                ),
            );
            w.write(
                2,
                &format!("Zone:\t{}\n", e.zone.as_deref().unwrap_or("<unset>")),
            );
        }
    }
    if let Some(e) = events {
        describe_events(&mut w, e);
    }
    w.finish()
}

// === IngressClass ===

pub(super) async fn ingress_class(
    ex: &Executor,
    obj: Value,
    settings: Settings,
    now: DateTime<Utc>,
) -> Result<String, ApiError> {
    let ic: IngressClass = decode(obj)?;
    let events = object_events(ex, settings, &ic.metadata, "IngressClass").await;
    let mut w = Writer::new(now);
    name_labels_annotations(&mut w, &ic.metadata);
    let spec = ic.spec.clone().unwrap_or_default();
    w.write(
        0,
        &format!(
            "Controller:\t{}\n",
            spec.controller.as_deref().unwrap_or_default()
        ),
    );
    if let Some(p) = &spec.parameters {
        w.write(0, "Parameters:\n");
        if let Some(g) = &p.api_group {
            w.write(1, &format!("APIGroup:\t{g}\n"));
        }
        w.write(1, &format!("Kind:\t{}\n", p.kind));
        w.write(1, &format!("Name:\t{}\n", p.name));
    }
    if let Some(e) = events.as_deref() {
        describe_events(&mut w, e);
    }
    Ok(w.finish())
}

// === ServiceCIDR ===

/// kubectl reads networking.k8s.io/v1 first, then v1beta1; both print alike.
pub(super) async fn service_cidr(
    ex: &Executor,
    obj: Value,
    settings: Settings,
    now: DateTime<Utc>,
) -> Result<String, ApiError> {
    let sc: ServiceCIDR = decode(obj)?;
    let events = object_events(ex, settings, &sc.metadata, "ServiceCIDR").await;
    let mut w = Writer::new(now);
    name_labels_annotations(&mut w, &sc.metadata);
    let cidrs = sc
        .spec
        .as_ref()
        .and_then(|s| s.cidrs.clone())
        .unwrap_or_default();
    w.write(0, &format!("CIDRs:\t{}\n", cidrs.join(", ")));
    let conditions = sc
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    if !conditions.is_empty() {
        w.write(0, "Status:\n");
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
                    rfc1123z(Some(&c.last_transition_time)),
                    c.reason,
                    c.message
                ),
            );
        }
    }
    if let Some(e) = events.as_deref() {
        describe_events(&mut w, e);
    }
    Ok(w.finish())
}

// === IPAddress ===

pub(super) async fn ip_address(
    ex: &Executor,
    obj: Value,
    settings: Settings,
    now: DateTime<Utc>,
) -> Result<String, ApiError> {
    let ip: IPAddress = decode(obj)?;
    let events = object_events(ex, settings, &ip.metadata, "IPAddress").await;
    let mut w = Writer::new(now);
    name_labels_annotations(&mut w, &ip.metadata);
    // The parent reference is required by the API, so always present.
    {
        let p = &ip.spec.parent_ref;
        w.write(0, "Parent Reference:\n");
        w.write(
            1,
            &format!("Group:\t{}\n", p.group.as_deref().unwrap_or_default()),
        );
        w.write(1, &format!("Resource:\t{}\n", p.resource));
        w.write(
            1,
            &format!(
                "Namespace:\t{}\n",
                p.namespace.as_deref().unwrap_or_default()
            ),
        );
        w.write(1, &format!("Name:\t{}\n", p.name));
    }
    if let Some(e) = events.as_deref() {
        describe_events(&mut w, e);
    }
    Ok(w.finish())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_policy_egress_blocks_and_ranges() {
        let np = serde_json::json!({
            "metadata": {"name": "p", "namespace": "n", "creationTimestamp": "2026-11-23T01:12:44Z"},
            "spec": {
                "podSelector": {},
                "policyTypes": ["Ingress", "Egress"],
                "egress": [
                    {"ports": [{"port": 53, "protocol": "UDP"}, {"port": 8000, "endPort": 8080}],
                     "to": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16", "10.2.0.0/16"]}}]},
                    {}
                ]
            }
        });
        let now = Utc::now();
        let text = network_policy(np, now).unwrap();
        let want = "Created on:   2026-11-23 01:12:44 +0000 UTC\n\
            Labels:       <none>\n\
            Annotations:  <none>\n\
            Spec:\n  \
            PodSelector:     <none> (Allowing the specific traffic to all pods in this namespace)\n  \
            Allowing ingress traffic:\n    \
            <none> (Selected pods are isolated for ingress connectivity)\n  \
            Allowing egress traffic:\n    \
            To Port: 53/UDP\n    \
            To Port Range: 8000-8080/TCP\n    \
            To:\n      \
            IPBlock:\n        \
            CIDR: 10.0.0.0/8\n        \
            Except: 10.1.0.0/16, 10.2.0.0/16\n    \
            ----------\n    \
            To Port: <any> (traffic allowed to all ports)\n    \
            To: <any> (traffic not restricted by destination)\n  \
            Policy Types: Ingress, Egress\n";
        assert!(text.ends_with(want), "{text}");
    }
}
