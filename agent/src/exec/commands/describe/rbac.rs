//! Role, ClusterRole, RoleBinding and ClusterRoleBinding.
//!
//! Roles print their rules broken down to one verb, resource and name each, compacted again
//! (kubectl's `rbac.BreakdownRule` and `rbac.CompactRules`) and sorted by the rule's Go
//! `String()`.

use chrono::{DateTime, Utc};
use k8s_openapi::api::rbac::v1::{PolicyRule, RoleRef, Subject};

use crate::exec::commands::rbac_rules::{Rule, combine_resource_group, normalize};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Deserialize;
use serde_json::Value;

use super::decode;
use super::writer::{Writer, annotations_multiline, go_strings, labels_multiline};
use crate::exec::api::ApiError;

/// The fields of a Role or ClusterRole kubectl prints.
#[derive(Deserialize)]
struct AnyRole {
    #[serde(default)]
    metadata: ObjectMeta,
    #[serde(default)]
    rules: Option<Vec<PolicyRule>>,
}

/// A Role or a ClusterRole (they print alike).
pub(super) fn role(obj: Value, now: DateTime<Utc>) -> Result<String, ApiError> {
    let role: AnyRole = decode(obj)?;
    let rules: Vec<Rule> = role.rules.iter().flatten().map(Rule::from).collect();
    let rules = normalize(&rules);

    let mut w = Writer::new(now);
    w.write(
        0,
        &format!(
            "Name:\t{}\n",
            role.metadata.name.as_deref().unwrap_or_default()
        ),
    );
    labels_multiline(&mut w, "Labels", role.metadata.labels.as_ref());
    annotations_multiline(&mut w, "Annotations", role.metadata.annotations.as_ref());
    w.write(0, "PolicyRule:\n");
    w.write(1, "Resources\tNon-Resource URLs\tResource Names\tVerbs\n");
    w.write(1, "---------\t-----------------\t--------------\t-----\n");
    for r in &rules {
        w.write(
            1,
            &format!(
                "{}\t{}\t{}\t{}\n",
                combine_resource_group(&r.resources, &r.api_groups),
                go_strings(&r.non_resource_urls),
                go_strings(&r.resource_names),
                go_strings(&r.verbs)
            ),
        );
    }
    Ok(w.finish())
}

/// The fields of a RoleBinding or ClusterRoleBinding kubectl prints.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AnyBinding {
    #[serde(default)]
    metadata: ObjectMeta,
    role_ref: RoleRef,
    #[serde(default)]
    subjects: Option<Vec<Subject>>,
}

/// A RoleBinding or a ClusterRoleBinding (they print alike).
pub(super) fn binding(obj: Value, now: DateTime<Utc>) -> Result<String, ApiError> {
    let b: AnyBinding = decode(obj)?;
    let mut w = Writer::new(now);
    w.write(
        0,
        &format!(
            "Name:\t{}\n",
            b.metadata.name.as_deref().unwrap_or_default()
        ),
    );
    labels_multiline(&mut w, "Labels", b.metadata.labels.as_ref());
    annotations_multiline(&mut w, "Annotations", b.metadata.annotations.as_ref());
    w.write(0, "Role:\n");
    w.write(1, &format!("Kind:\t{}\n", b.role_ref.kind));
    w.write(1, &format!("Name:\t{}\n", b.role_ref.name));
    w.write(0, "Subjects:\n");
    w.write(1, "Kind\tName\tNamespace\n");
    w.write(1, "----\t----\t---------\n");
    for s in b.subjects.iter().flatten() {
        w.write(
            1,
            &format!(
                "{}\t{}\t{}\n",
                s.kind,
                s.name,
                s.namespace.as_deref().unwrap_or_default()
            ),
        );
    }
    Ok(w.finish())
}
