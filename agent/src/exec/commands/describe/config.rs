//! ConfigMap, Secret and ServiceAccount.

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::{ConfigMap, Event, Secret, ServiceAccount};
use serde_json::Value;

use super::writer::{
    Writer, annotations_multiline, describe_events, labels_multiline, name_namespace,
};
use super::{EventTarget, Settings, decode, object_events, search_events};
use crate::exec::Executor;
use crate::exec::api::ApiError;

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
}
