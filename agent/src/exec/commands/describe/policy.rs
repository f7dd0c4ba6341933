//! HorizontalPodAutoscaler, PodDisruptionBudget, LimitRange, ResourceQuota and PriorityClass.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use k8s_openapi::api::autoscaling::v1::HorizontalPodAutoscaler as HpaV1;
use k8s_openapi::api::autoscaling::v2::{
    HPAScalingRules, HorizontalPodAutoscaler as HpaV2, MetricStatus, MetricTarget,
};
use k8s_openapi::api::core::v1::{Event, LimitRange, ResourceQuota};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::scheduling::v1::PriorityClass;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as K8sQuantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;

use super::pod::{canonical, int_or_string};
use super::quantity::Quantity;
use super::writer::{
    Writer, annotations_multiline, describe_events, format_label_selector, format_labels,
    labels_multiline, name_namespace, rfc1123z,
};
use super::{Settings, decode, get_object, object_events};
use crate::exec::Executor;
use crate::exec::api::{self, ApiError};
use kubeline_printers::go::fmt::go_quote;

/// `(*Quantity).String()`, `<nil>` for a nil pointer.
fn quantity(q: Option<&K8sQuantity>) -> String {
    q.map_or_else(|| "<nil>".into(), |q| canonical(&q.0))
}

// === HorizontalPodAutoscaler ===

/// kubectl reads the autoscaling/v2 object first and falls back to autoscaling/v1.
pub(super) async fn horizontal_pod_autoscaler(
    ex: &Executor,
    obj: Value,
    settings: Settings,
    now: DateTime<Utc>,
) -> Result<String, ApiError> {
    let v2 = if obj.get("apiVersion").and_then(Value::as_str) == Some("autoscaling/v2") {
        Ok(obj.clone())
    } else {
        let ns = obj
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let name = obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        get_object(
            ex,
            &format!(
                "/apis/autoscaling/v2/namespaces/{}/horizontalpodautoscalers/{}",
                api::segment(ns),
                api::segment(name)
            ),
        )
        .await
    };
    match v2.and_then(decode::<HpaV2>) {
        Ok(hpa) => {
            let events =
                object_events(ex, settings, &hpa.metadata, "HorizontalPodAutoscaler").await;
            Ok(render_hpa_v2(&hpa, events.as_deref(), now))
        }
        Err(_) => {
            let hpa: HpaV1 = decode(obj)?;
            let events =
                object_events(ex, settings, &hpa.metadata, "HorizontalPodAutoscaler").await;
            Ok(render_hpa_v1(&hpa, events.as_deref(), now))
        }
    }
}

fn hpa_header(w: &mut Writer, meta: &ObjectMeta, kind: &str, name: &str) {
    name_namespace(w, meta);
    labels_multiline(w, "Labels", meta.labels.as_ref());
    annotations_multiline(w, "Annotations", meta.annotations.as_ref());
    w.write(
        0,
        &format!(
            "CreationTimestamp:\t{}\n",
            rfc1123z(meta.creation_timestamp.as_ref())
        ),
    );
    w.write(0, &format!("Reference:\t{kind}/{name}\n"));
}

fn render_hpa_v2(hpa: &HpaV2, events: Option<&[Event]>, now: DateTime<Utc>) -> String {
    let mut w = Writer::new(now);
    let spec = hpa.spec.clone();
    let status = hpa.status.clone().unwrap_or_default();
    let target = &spec.scale_target_ref;
    hpa_header(&mut w, &hpa.metadata, &target.kind, &target.name);
    w.write(0, "Metrics:\t( current / target )\n");
    let current_metrics: Vec<MetricStatus> = status.current_metrics.clone().unwrap_or_default();
    let current = |i: usize| current_metrics.get(i);
    for (i, metric) in spec.metrics.iter().flatten().enumerate() {
        match metric.type_.as_str() {
            "External" => {
                let m = metric.external.clone().unwrap_or_default();
                let cur = current(i).and_then(|c| c.external.as_ref());
                if let Some(avg) = &m.target.average_value {
                    let c = cur
                        .and_then(|c| c.current.average_value.as_ref())
                        .map_or("<unknown>".into(), |q| canonical(&q.0));
                    w.write(
                        1,
                        &format!(
                            "{} (target average value):\t{c} / {}\n",
                            go_quote(&m.metric.name),
                            canonical(&avg.0)
                        ),
                    );
                } else {
                    let c = cur.map_or("<unknown>".into(), |c| quantity(c.current.value.as_ref()));
                    w.write(
                        1,
                        &format!(
                            "{} (target value):\t{c} / {}\n",
                            go_quote(&m.metric.name),
                            quantity(m.target.value.as_ref())
                        ),
                    );
                }
            }
            "Pods" => {
                let m = metric.pods.clone().unwrap_or_default();
                let c = current(i)
                    .and_then(|c| c.pods.as_ref())
                    .map_or("<unknown>".into(), |c| {
                        quantity(c.current.average_value.as_ref())
                    });
                w.write(
                    1,
                    &format!(
                        "{} on pods:\t{c} / {}\n",
                        go_quote(&m.metric.name),
                        quantity(m.target.average_value.as_ref())
                    ),
                );
            }
            "Object" => {
                let m = metric.object.clone().unwrap_or_default();
                w.write(
                    1,
                    &format!(
                        "\"{}\" on {}/{} ",
                        m.metric.name, m.described_object.kind, m.described_object.name
                    ),
                );
                let cur = current(i).and_then(|c| c.object.as_ref());
                if m.target.type_ == "AverageValue" {
                    let c = cur.map_or("<unknown>".into(), |c| {
                        quantity(c.current.average_value.as_ref())
                    });
                    w.write(
                        0,
                        &format!(
                            "(target average value):\t{c} / {}\n",
                            quantity(m.target.average_value.as_ref())
                        ),
                    );
                } else {
                    let c = cur.map_or("<unknown>".into(), |c| quantity(c.current.value.as_ref()));
                    w.write(
                        0,
                        &format!(
                            "(target value):\t{c} / {}\n",
                            quantity(m.target.value.as_ref())
                        ),
                    );
                }
            }
            "Resource" => {
                let m = metric.resource.clone().unwrap_or_default();
                w.write(1, &format!("resource {} on pods", m.name));
                let cur = current(i)
                    .and_then(|c| c.resource.as_ref())
                    .map(|c| &c.current);
                resource_target(&mut w, &m.target, cur);
            }
            "ContainerResource" => {
                let m = metric.container_resource.clone().unwrap_or_default();
                w.write(
                    1,
                    &format!(
                        "resource {} of container \"{}\" on pods",
                        m.name, m.container
                    ),
                );
                let cur = current(i)
                    .and_then(|c| c.container_resource.as_ref())
                    .map(|c| &c.current);
                resource_target(&mut w, &m.target, cur);
            }
            other => {
                w.write(1, &format!("<unknown metric type {}>\n", go_quote(other)));
            }
        }
    }
    let min = spec
        .min_replicas
        .map_or("<unset>".to_string(), |m| m.to_string());
    w.write(0, &format!("Min replicas:\t{min}\n"));
    w.write(0, &format!("Max replicas:\t{}\n", spec.max_replicas));
    if let Some(b) = &spec.behavior {
        w.write(0, "Behavior:\n");
        direction_behavior(&mut w, "Scale Up", b.scale_up.as_ref());
        direction_behavior(&mut w, "Scale Down", b.scale_down.as_ref());
    }
    w.write(0, &format!("{} pods:\t", target.kind));
    w.write(
        0,
        &format!(
            "{} current / {} desired\n",
            status.current_replicas.unwrap_or(0),
            status.desired_replicas
        ),
    );
    let conditions = status.conditions.clone().unwrap_or_default();
    if !conditions.is_empty() {
        w.write(0, "Conditions:\n");
        w.write(1, "Type\tStatus\tReason\tMessage\n");
        w.write(1, "----\t------\t------\t-------\n");
        for c in &conditions {
            w.write(
                1,
                &format!(
                    "{}\t{}\t{}\t{}\n",
                    c.type_,
                    c.status,
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

/// The target of a `Resource` or `ContainerResource` metric.
fn resource_target(
    w: &mut Writer,
    target: &MetricTarget,
    current: Option<&k8s_openapi::api::autoscaling::v2::MetricValueStatus>,
) {
    if let Some(avg) = &target.average_value {
        let c = current.map_or("<unknown>".into(), |c| quantity(c.average_value.as_ref()));
        w.write(0, &format!(":\t{c} / {}\n", canonical(&avg.0)));
    } else {
        let c = match current {
            Some(c) if c.average_utilization.is_some() => format!(
                "{}% ({})",
                c.average_utilization.unwrap_or(0),
                quantity(c.average_value.as_ref())
            ),
            _ => "<unknown>".into(),
        };
        let t = target
            .average_utilization
            .map_or("<auto>".to_string(), |u| format!("{u}%"));
        w.write(1, &format!("(as a percentage of request):\t{c} / {t}\n"));
    }
}

/// `printDirectionBehavior`.
fn direction_behavior(w: &mut Writer, direction: &str, rules: Option<&HPAScalingRules>) {
    let Some(rules) = rules else {
        return;
    };
    w.write(1, &format!("{direction}:\n"));
    if let Some(s) = rules.stabilization_window_seconds {
        w.write(2, &format!("Stabilization Window: {s} seconds\n"));
    }
    let policies = rules.policies.clone().unwrap_or_default();
    if !policies.is_empty() {
        let select = rules.select_policy.as_deref().unwrap_or("Max");
        w.write(2, &format!("Select Policy: {select}\n"));
        w.write(2, "Policies:\n");
        for p in &policies {
            w.write(
                3,
                &format!(
                    "- Type: {}\tValue: {}\tPeriod: {} seconds\n",
                    p.type_, p.value, p.period_seconds
                ),
            );
        }
    }
}

fn render_hpa_v1(hpa: &HpaV1, events: Option<&[Event]>, now: DateTime<Utc>) -> String {
    let mut w = Writer::new(now);
    let spec = hpa.spec.clone();
    let status = hpa.status.clone().unwrap_or_default();
    let target = &spec.scale_target_ref;
    hpa_header(&mut w, &hpa.metadata, &target.kind, &target.name);
    if let Some(t) = spec.target_cpu_utilization_percentage {
        w.write(0, &format!("Target CPU utilization:\t{t}%\n"));
        let c = status
            .current_cpu_utilization_percentage
            .map_or("<unknown>".to_string(), |c| c.to_string());
        w.write(0, &format!("Current CPU utilization:\t{c}%\n"));
    }
    let min = spec
        .min_replicas
        .map_or("<unset>".to_string(), |m| m.to_string());
    w.write(0, &format!("Min replicas:\t{min}\n"));
    w.write(0, &format!("Max replicas:\t{}\n", spec.max_replicas));
    w.write(0, &format!("{} pods:\t", target.kind));
    w.write(
        0,
        &format!(
            "{} current / {} desired\n",
            status.current_replicas, status.desired_replicas
        ),
    );
    if let Some(e) = events {
        describe_events(&mut w, e);
    }
    w.finish()
}

// === PodDisruptionBudget ===

pub(super) async fn pod_disruption_budget(
    ex: &Executor,
    obj: Value,
    settings: Settings,
    now: DateTime<Utc>,
) -> Result<String, ApiError> {
    let pdb: PodDisruptionBudget = decode(obj)?;
    let events = object_events(ex, settings, &pdb.metadata, "PodDisruptionBudget").await;
    Ok(render_pdb(&pdb, events.as_deref(), now))
}

fn render_pdb(pdb: &PodDisruptionBudget, events: Option<&[Event]>, now: DateTime<Utc>) -> String {
    let mut w = Writer::new(now);
    let spec = pdb.spec.clone().unwrap_or_default();
    let status = pdb.status.clone().unwrap_or_default();
    name_namespace(&mut w, &pdb.metadata);
    if let Some(m) = &spec.min_available {
        w.write(0, &format!("Min available:\t{}\n", int_or_string(m)));
    } else if let Some(m) = &spec.max_unavailable {
        w.write(0, &format!("Max unavailable:\t{}\n", int_or_string(m)));
    }
    match &spec.selector {
        Some(s) => w.write(
            0,
            &format!("Selector:\t{}\n", format_label_selector(Some(s))),
        ),
        None => w.write(0, "Selector:\t<unset>\n"),
    }
    w.write(0, "Status:\n");
    w.write(
        2,
        &format!(
            "Allowed disruptions:\t{}\n",
            status.disruptions_allowed.unwrap_or(0)
        ),
    );
    w.write(
        2,
        &format!("Current:\t{}\n", status.current_healthy.unwrap_or(0)),
    );
    w.write(
        2,
        &format!("Desired:\t{}\n", status.desired_healthy.unwrap_or(0)),
    );
    w.write(
        2,
        &format!("Total:\t{}\n", status.expected_pods.unwrap_or(0)),
    );
    if let Some(e) = events {
        describe_events(&mut w, e);
    }
    w.finish()
}

// === LimitRange ===

pub(super) fn limit_range(obj: Value, now: DateTime<Utc>) -> Result<String, ApiError> {
    let lr: LimitRange = decode(obj)?;
    let mut w = Writer::new(now);
    name_namespace(&mut w, &lr.metadata);
    w.write(
        0,
        "Type\tResource\tMin\tMax\tDefault Request\tDefault Limit\tMax Limit/Request Ratio\n",
    );
    w.write(
        0,
        "----\t--------\t---\t---\t---------------\t-------------\t-----------------------\n",
    );
    describe_limit_range_spec(&mut w, &lr, "");
    Ok(w.finish())
}

/// `describeLimitRangeSpec`. kubectl walks a Go map of the resource names, in random order;
/// they are printed here in name order.
pub(super) fn describe_limit_range_spec(w: &mut Writer, lr: &LimitRange, prefix: &str) {
    type List = Option<BTreeMap<String, K8sQuantity>>;
    for item in lr.spec.iter().flat_map(|s| s.limits.iter()) {
        let lists: [&List; 5] = [
            &item.max,
            &item.min,
            &item.default,
            &item.default_request,
            &item.max_limit_request_ratio,
        ];
        let mut names: Vec<&String> = lists
            .iter()
            .flat_map(|l| l.iter().flat_map(|m| m.keys()))
            .collect();
        names.sort();
        names.dedup();
        for name in names {
            let v = |l: &List| {
                l.as_ref()
                    .and_then(|m| m.get(name))
                    .map_or("-".to_string(), |q| canonical(&q.0))
            };
            w.write(
                0,
                &format!(
                    "{prefix}{}\t{name}\t{}\t{}\t{}\t{}\t{}\n",
                    item.type_,
                    v(&item.min),
                    v(&item.max),
                    v(&item.default_request),
                    v(&item.default),
                    v(&item.max_limit_request_ratio)
                ),
            );
        }
    }
}

// === ResourceQuota ===

/// `helpTextForResourceQuotaScope`.
pub(super) fn quota_scope_help(scope: &str) -> &'static str {
    match scope {
        "Terminating" => {
            "Matches all pods that have an active deadline. These pods have a limited lifespan on a node before being actively terminated by the system."
        }
        "NotTerminating" => {
            "Matches all pods that do not have an active deadline. These pods usually include long running pods whose container command is not expected to terminate."
        }
        "BestEffort" => {
            "Matches all pods that do not have resource requirements set. These pods have a best effort quality of service."
        }
        "NotBestEffort" => {
            "Matches all pods that have at least one resource requirement set. These pods have a burstable or guaranteed quality of service."
        }
        _ => "",
    }
}

pub(super) fn resource_quota(obj: Value, now: DateTime<Utc>) -> Result<String, ApiError> {
    let q: ResourceQuota = decode(obj)?;
    let mut w = Writer::new(now);
    name_namespace(&mut w, &q.metadata);
    let mut scopes = q
        .spec
        .as_ref()
        .and_then(|s| s.scopes.clone())
        .unwrap_or_default();
    if !scopes.is_empty() {
        scopes.sort();
        w.write(0, &format!("Scopes:\t{}\n", scopes.join(", ")));
        for s in &scopes {
            let help = quota_scope_help(s);
            if !help.is_empty() {
                w.write(0, &format!(" * {help}\n"));
            }
        }
    }
    w.write(0, "Resource\tUsed\tHard\n");
    w.write(0, "--------\t----\t----\n");
    let status = q.status.clone().unwrap_or_default();
    let used = status.used.clone().unwrap_or_default();
    for (name, hard) in status.hard.iter().flatten() {
        let hard_q = Quantity::parse(&hard.0);
        let used_text = match (hard_q, used.get(name)) {
            (Some(h), Some(u)) => match Quantity::parse(&u.0) {
                Some(u) if u.format() != h.format() => {
                    Quantity::from_value(u.value(), h.format()).to_string()
                }
                Some(u) => u.to_string(),
                None => u.0.clone(),
            },
            (_, Some(u)) => canonical(&u.0),
            (_, None) => "0".into(),
        };
        w.write(0, &format!("{name}\t{used_text}\t{}\n", canonical(&hard.0)));
    }
    Ok(w.finish())
}

// === PriorityClass ===

pub(super) async fn priority_class(
    ex: &Executor,
    obj: Value,
    settings: Settings,
    now: DateTime<Utc>,
) -> Result<String, ApiError> {
    let pc: PriorityClass = decode(obj)?;
    let events = object_events(ex, settings, &pc.metadata, "PriorityClass").await;
    let mut w = Writer::new(now);
    w.write(
        0,
        &format!(
            "Name:\t{}\n",
            pc.metadata.name.as_deref().unwrap_or_default()
        ),
    );
    w.write(0, &format!("Value:\t{}\n", pc.value.unwrap_or(0)));
    w.write(
        0,
        &format!(
            "GlobalDefault:\t{}\n",
            super::writer::go_bool(pc.global_default.unwrap_or(false))
        ),
    );
    w.write(
        0,
        &format!(
            "PreemptionPolicy:\t{}\n",
            pc.preemption_policy.as_deref().unwrap_or_default()
        ),
    );
    w.write(
        0,
        &format!(
            "Description:\t{}\n",
            pc.description.as_deref().unwrap_or_default()
        ),
    );
    w.write(
        0,
        &format!(
            "Annotations:\t{}\n",
            format_labels(pc.metadata.annotations.as_ref())
        ),
    );
    if let Some(e) = events.as_deref() {
        describe_events(&mut w, e);
    }
    Ok(w.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-23T01:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn hpa_behavior_and_metrics() {
        let hpa: HpaV2 = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "h", "namespace": "n"},
            "spec": {
                "scaleTargetRef": {"kind": "Deployment", "name": "d", "apiVersion": "apps/v1"},
                "minReplicas": 1, "maxReplicas": 5,
                "metrics": [
                    {"type": "Pods", "pods": {"metric": {"name": "rps"},
                        "target": {"type": "AverageValue", "averageValue": "1k"}}},
                    {"type": "Resource", "resource": {"name": "memory",
                        "target": {"type": "AverageValue", "averageValue": "512Mi"}}}
                ],
                "behavior": {"scaleDown": {"stabilizationWindowSeconds": 300,
                    "policies": [{"type": "Percent", "value": 10, "periodSeconds": 60}]}}
            },
            "status": {"desiredReplicas": 3, "currentReplicas": 2}
        }))
        .unwrap();
        let text = render_hpa_v2(&hpa, None, now());
        for want in [
            "  \"rps\" on pods:            <unknown> / 1k\n",
            "  resource memory on pods:  <unknown> / 512Mi\n",
            "Behavior:\n  Scale Down:\n    Stabilization Window: 300 seconds\n    Select Policy: Max\n    Policies:\n      - Type: Percent  Value: 10  Period: 60 seconds\n",
        ] {
            assert!(text.contains(want), "{want:?} not in\n{text}");
        }
        // The policy lines and this one share a tab column (text/tabwriter's cell blocks).
        assert!(
            text.ends_with("Deployment pods:       2 current / 3 desired\n"),
            "{text}"
        );
    }

    #[test]
    fn quota_used_takes_the_hard_format() {
        let q = serde_json::json!({
            "metadata": {"name": "q", "namespace": "n"},
            "spec": {"scopes": ["NotTerminating"]},
            "status": {"hard": {"pods": "10", "requests.memory": "1Gi"},
                       "used": {"requests.memory": "536870912"}}
        });
        let text = resource_quota(q, now()).unwrap();
        assert!(text.contains(" * Matches all pods that do not have an active deadline."));
        assert!(text.contains("pods             0      10\n"), "{text}");
        assert!(text.contains("requests.memory  512Mi  1Gi\n"), "{text}");
    }
}
