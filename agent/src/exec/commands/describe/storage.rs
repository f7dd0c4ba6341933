//! StorageClass, CSINode and VolumeAttributesClass.

use chrono::{DateTime, Utc};
use k8s_openapi::api::storage::v1::{CSINode, StorageClass, VolumeAttributesClass};
use serde_json::Value;

use super::writer::{
    Writer, annotations_multiline, describe_events, format_labels, go_strings, labels_multiline,
    print_bool_ptr, rfc1123z,
};
use super::{Settings, decode, object_events};
use crate::exec::Executor;
use crate::exec::api::ApiError;

// === StorageClass ===

pub(super) async fn storage_class(
    ex: &Executor,
    obj: Value,
    settings: Settings,
    now: DateTime<Utc>,
) -> Result<String, ApiError> {
    let sc: StorageClass = decode(obj)?;
    let events = object_events(ex, settings, &sc.metadata, "StorageClass").await;
    let mut w = Writer::new(now);
    let meta = &sc.metadata;
    w.write(
        0,
        &format!("Name:\t{}\n", meta.name.as_deref().unwrap_or_default()),
    );
    // `storageutil.IsDefaultAnnotationText`.
    let annotation = |k: &str| {
        meta.annotations
            .as_ref()
            .and_then(|a| a.get(k))
            .map(String::as_str)
    };
    let default = annotation("storageclass.kubernetes.io/is-default-class") == Some("true")
        || annotation("storageclass.beta.kubernetes.io/is-default-class") == Some("true");
    w.write(
        0,
        &format!("IsDefaultClass:\t{}\n", if default { "Yes" } else { "No" }),
    );
    w.write(
        0,
        &format!(
            "Annotations:\t{}\n",
            format_labels(meta.annotations.as_ref())
        ),
    );
    w.write(0, &format!("Provisioner:\t{}\n", sc.provisioner));
    w.write(
        0,
        &format!("Parameters:\t{}\n", format_labels(sc.parameters.as_ref())),
    );
    w.write(
        0,
        &format!(
            "AllowVolumeExpansion:\t{}\n",
            print_bool_ptr(sc.allow_volume_expansion)
        ),
    );
    let options = sc.mount_options.clone().unwrap_or_default();
    if options.is_empty() {
        w.write(0, "MountOptions:\t<none>\n");
    } else {
        w.write(0, "MountOptions:\n");
        for o in &options {
            w.write(1, &format!("{o}\n"));
        }
    }
    if let Some(p) = &sc.reclaim_policy {
        w.write(0, &format!("ReclaimPolicy:\t{p}\n"));
    }
    if let Some(m) = &sc.volume_binding_mode {
        w.write(0, &format!("VolumeBindingMode:\t{m}\n"));
    }
    if let Some(topologies) = &sc.allowed_topologies {
        // `printAllowedTopologies`.
        w.write(0, "AllowedTopologies:\t");
        if topologies.is_empty() {
            w.line("<none>");
        } else {
            w.line("");
            for (i, term) in topologies.iter().enumerate() {
                w.write(1, &format!("Term {i}:\t"));
                let reqs = term.match_label_expressions.clone().unwrap_or_default();
                if reqs.is_empty() {
                    w.line("<none>");
                    continue;
                }
                for (j, r) in reqs.iter().enumerate() {
                    if j != 0 {
                        w.write(1, "\t");
                    }
                    let mut expr = format!("{} in", r.key);
                    if !r.values.is_empty() {
                        expr = format!("{expr} [{}]", r.values.join(", "));
                    }
                    w.write(0, &format!("{expr}\n"));
                }
            }
        }
    }
    if let Some(e) = events.as_deref() {
        describe_events(&mut w, e);
    }
    Ok(w.finish())
}

// === VolumeAttributesClass ===

pub(super) async fn volume_attributes_class(
    ex: &Executor,
    obj: Value,
    settings: Settings,
    now: DateTime<Utc>,
) -> Result<String, ApiError> {
    let vac: VolumeAttributesClass = decode(obj)?;
    let events = object_events(ex, settings, &vac.metadata, "VolumeAttributesClass").await;
    let mut w = Writer::new(now);
    w.write(
        0,
        &format!(
            "Name:\t{}\n",
            vac.metadata.name.as_deref().unwrap_or_default()
        ),
    );
    w.write(
        0,
        &format!(
            "Annotations:\t{}\n",
            format_labels(vac.metadata.annotations.as_ref())
        ),
    );
    w.write(0, &format!("DriverName:\t{}\n", vac.driver_name));
    w.write(
        0,
        &format!("Parameters:\t{}\n", format_labels(vac.parameters.as_ref())),
    );
    if let Some(e) = events.as_deref() {
        describe_events(&mut w, e);
    }
    Ok(w.finish())
}

// === CSINode ===

pub(super) async fn csi_node(
    ex: &Executor,
    obj: Value,
    settings: Settings,
    now: DateTime<Utc>,
) -> Result<String, ApiError> {
    let csi: CSINode = decode(obj)?;
    let events = object_events(ex, settings, &csi.metadata, "CSINode").await;
    let mut w = Writer::new(now);
    let meta = &csi.metadata;
    w.write(
        0,
        &format!("Name:\t{}\n", meta.name.as_deref().unwrap_or_default()),
    );
    labels_multiline(&mut w, "Labels", meta.labels.as_ref());
    annotations_multiline(&mut w, "Annotations", meta.annotations.as_ref());
    w.write(
        0,
        &format!(
            "CreationTimestamp:\t{}\n",
            rfc1123z(meta.creation_timestamp.as_ref())
        ),
    );
    w.write(0, "Spec:\n");
    // The drivers list is required, so it is never nil on a decoded object.
    w.write(1, "Drivers:\n");
    for d in &csi.spec.drivers {
        w.write(2, &format!("{}:\n", d.name));
        w.write(3, &format!("Node ID:\t{}\n", d.node_id));
        if let Some(count) = d.allocatable.as_ref().and_then(|a| a.count) {
            w.write(3, "Allocatables:\n");
            w.write(4, &format!("Count:\t{count}\n"));
        }
        if let Some(keys) = &d.topology_keys {
            w.write(3, &format!("Topology Keys:\t{}\n", go_strings(keys)));
        }
    }
    if let Some(e) = events.as_deref() {
        describe_events(&mut w, e);
    }
    Ok(w.finish())
}
