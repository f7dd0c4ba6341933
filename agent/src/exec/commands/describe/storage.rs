//! PersistentVolume, PersistentVolumeClaim, StorageClass, CSINode and VolumeAttributesClass.

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::{Event, PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::{CSINode, StorageClass, VolumeAttributesClass};
use serde_json::Value;

use super::pod::{
    access_modes, canonical, csi_attributes, host_path_source, nfs_source, print_pvc,
};
use super::writer::{
    Writer, annotations_multiline, describe_events, format_labels, go_bool, go_strings,
    labels_multiline, print_bool_ptr, rfc1123z,
};
use super::{Settings, decode, list_typed, object_events};
use crate::exec::Executor;
use crate::exec::api::{self, ApiError};

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
