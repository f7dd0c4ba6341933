//! NetworkPolicy, Endpoints, EndpointSlice, IngressClass, ServiceCIDR and IPAddress.

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::{Endpoints, Event};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{
    IPAddress, IngressClass, NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort, ServiceCIDR,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use serde_json::Value;

use super::pod::int_or_string;
use super::writer::{
    Writer, annotations_multiline, chrono_time, describe_events, format_label_selector,
    labels_multiline, rfc1123z,
};
use super::{Settings, decode, object_events};
use crate::exec::Executor;
use crate::exec::api::ApiError;

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
