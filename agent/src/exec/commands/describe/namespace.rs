//! Namespace, with its resource quotas and limit ranges.

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::{LimitRange, Namespace, ResourceQuota};
use serde_json::Value;

use super::pod::canonical;
use super::policy::{describe_limit_range_spec, quota_scope_help};
use super::writer::{Writer, annotations_multiline, labels_multiline, rfc1123z};
use super::{Settings, decode, list_typed};
use crate::exec::Executor;
use crate::exec::api::{self, ApiError};

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
}
