//! Differential test of `describe` against the bed's kubectl (see `tests/it/commands/mod.rs`), and a
//! proof that describing Secrets shows sizes and never values.
//!
//! Needs the bed's environment (`scripts/test` provides it); without it the test fails.

use super::{Norm, Row, row, run_kubectl, run_kubeline};
use crate::support::bed::{Bed, executor_for};
use anyhow::Result;

const ROWS: &[Row] = &[
    // Pods: one (with events), the failing one, all of a namespace, prefixes, selectors.
    row(
        "describe",
        &["pod", "credit-scorer", "-n", "credit-service"],
    ),
    row("describe", &["pods", "-n", "credit-service"]),
    row("describe", &["po/credit-scorer", "-n", "credit-service"]),
    row("describe", &["pod", "credit-api", "-n", "credit-service"]),
    row(
        "describe",
        &["pods", "-n", "credit-service", "-l", "app=credit-api"],
    ),
    row(
        "describe",
        &[
            "pod",
            "credit-scorer",
            "-n",
            "credit-service",
            "--show-events=false",
        ],
    ),
    row(
        "describe",
        &[
            "pods",
            "-n",
            "storefront",
            "--show-events",
            "--chunk-size",
            "1",
        ],
    ),
    row("describe", &["pods", "-n", "batch-jobs"]),
    // Workloads.
    row(
        "describe",
        &["deploy", "credit-api", "-n", "credit-service"],
    ),
    row("describe", &["deployments.apps", "-n", "credit-service"]),
    row("describe", &["deployment/frontend", "-n", "storefront"]),
    row("describe", &["rs", "-n", "credit-service"]),
    row(
        "describe",
        &["replicaset", "credit-worker", "-n", "credit-service"],
    ),
    row("describe", &["sts", "credit-cache", "-n", "credit-service"]),
    row("describe", &["ds", "-A"]),
    row("describe", &["job", "report-once", "-n", "batch-jobs"]),
    row(
        "describe",
        &["cronjob", "nightly-report", "-n", "batch-jobs"],
    ),
    row("describe", &["jobs,cronjobs", "-n", "batch-jobs"]),
    // Network.
    row("describe", &["svc", "credit-api", "-n", "credit-service"]),
    row("describe", &["services", "-n", "credit-service"]),
    row("describe", &["svc", "-n", "storefront"]),
    row(
        "describe",
        &["ingress", "credit-api", "-n", "credit-service"],
    ),
    // Cluster-scoped.
    row("describe", &["node", "kwok-node-0"]),
    row("describe", &["nodes", "-l", "type=kwok"]),
    row("describe", &["no", "kwok-node"]),
    row("describe", &["ns", "credit-service"]),
    row(
        "describe",
        &["namespace", "-l", "testbed.kubeline.dev/fixture=true"],
    ),
    row("describe", &["pv", "-A"]),
    row("describe", &["pvc", "-A"]),
    // Configuration and identities.
    row(
        "describe",
        &["cm", "credit-api-config", "-n", "credit-service"],
    ),
    row(
        "describe",
        &["configmap", "frontend-config", "-n", "storefront"],
    ),
    row("describe", &["sa", "credit-api", "-n", "credit-service"]),
    row("describe", &["serviceaccounts", "-n", "storefront"]),
    // Secrets are forbidden to the reader identity.
    row(
        "describe",
        &["secret", "credit-api-secrets", "-n", "credit-service"],
    ),
    row("describe", &["secrets", "-n", "credit-service"]),
    // Autoscaling, policy, RBAC and network kinds with describers of their own.
    row("describe", &["hpa", "credit-api", "-n", "credit-service"]),
    row("describe", &["horizontalpodautoscalers.autoscaling", "-A"]),
    row("describe", &["pdb", "credit-api", "-n", "credit-service"]),
    row("describe", &["poddisruptionbudgets", "-A"]),
    row(
        "describe",
        &[
            "netpol",
            "credit-api-from-storefront",
            "-n",
            "credit-service",
        ],
    ),
    row("describe", &["networkpolicies", "-A"]),
    row(
        "describe",
        &["role", "credit-api-config-reader", "-n", "credit-service"],
    ),
    row("describe", &["roles", "-n", "kube-system"]),
    row(
        "describe",
        &[
            "rolebinding",
            "credit-api-config-reader",
            "-n",
            "credit-service",
        ],
    ),
    row("describe", &["rolebindings", "-A"]),
    row("describe", &["clusterrole", "kubeline-reader"]),
    row("describe", &["clusterrole", "admin"]),
    row("describe", &["clusterrole", "system:controller"]),
    row("describe", &["clusterrolebinding", "kubeline-reader"]),
    row("describe", &["clusterrolebindings", "system:controller"]),
    row("describe", &["endpoints", "-n", "credit-service"]),
    row("describe", &["ep", "frontend", "-n", "storefront"]),
    row("describe", &["endpointslices", "-A"]),
    row(
        "describe",
        &["endpointslice", "credit-api", "-n", "credit-service"],
    ),
    row("describe", &["limitranges", "-A"]),
    row("describe", &["quota", "-A"]),
    row("describe", &["rc", "-A"]),
    row("describe", &["storageclasses"]),
    row("describe", &["ingressclasses"]),
    // The reader may not read these: kubectl's error, through the same describers.
    row("describe", &["priorityclasses"]),
    row("describe", &["pc", "system-node-critical"]),
    row("describe", &["csr"]),
    row("describe", &["csinodes"]),
    row("describe", &["servicecidrs"]),
    row("describe", &["ipaddresses"]),
    row("describe", &["volumeattributesclasses"]),
    // Generic: the CRD and its objects, and kinds without a describer of their own here.
    row("describe", &["widgets", "-n", "credit-service"]),
    row("describe", &["widget", "widget-gamma", "-n", "storefront"]),
    row("describe", &["wdg", "-A"]),
    row("describe", &["crd", "widgets.testbed.kubeline.dev"]),
    // Errors.
    row("describe", &["pod", "nope", "-n", "credit-service"]),
    row("describe", &["pod/nope", "-n", "credit-service"]),
    row(
        "describe",
        &["pod", "nope1", "nope2", "-n", "credit-service"],
    ),
    row(
        "describe",
        &["pod/credit-scorer", "pod/nope", "-n", "credit-service"],
    ),
    row(
        "describe",
        &["pod", "nope", "credit-scorer", "-n", "credit-service"],
    ),
    row(
        "describe",
        &["pods,svc", "credit-api", "-n", "credit-service"],
    ),
    row("describe", &["frobnicators"]),
    row("describe", &["pods", "-n", "empty-namespace"]),
    row("describe", &["pod", "x", "-A"]),
];

#[tokio::test]
async fn describe_matches_kubectl() -> Result<()> {
    super::check_rows(ROWS).await
}

/// With an identity that may read Secrets, `describe` shows each value's size and never the
/// value itself, in clear or base64.
#[tokio::test]
async fn described_secrets_show_sizes_not_values() -> Result<()> {
    let bed = Bed::new().await;
    let (kubectl, kubeconfig_path) = (&bed.kubectl, &bed.secrets);
    let executor = executor_for(&bed.secrets).await;
    let secrets = [
        "credit_app",
        "kbl-testbed-db-password-7f3a9c",
        "kbl-testbed-api-token-1b2c3d4e5f",
        "Y3JlZGl0X2FwcA",
        "a2JsLXRlc3RiZWQtZGItcGFzc3dvcmQtN2YzYTlj",
        "a2JsLXRlc3RiZWQtYXBpLXRva2VuLTFiMmMzZDRlNWY",
    ];
    for args in [
        &["secret", "credit-api-secrets", "-n", "credit-service"][..],
        &["secrets", "-n", "credit-service"][..],
        &["secret", "credit-api", "-n", "credit-service"][..],
        &["secrets", "-A"][..],
    ] {
        let row = Row {
            command: "describe",
            args,
            norm: Norm::Times,
        };
        let ours = run_kubeline(&executor, &row).await;
        assert_eq!(ours.exit_code, 0, "describe {args:?}: {}", ours.stderr);
        for s in secrets {
            assert!(
                !ours.stdout.contains(s) && !ours.stderr.contains(s),
                "describe {args:?} leaked {s}:\n{}",
                ours.stdout
            );
        }
        assert!(
            ours.stdout.contains("DB_PASSWORD:  30 bytes\n"),
            "describe {args:?}:\n{}",
            ours.stdout
        );
        // For an Opaque Secret, kubectl prints sizes too: the outputs are the same.
        let theirs = run_kubectl(kubectl, kubeconfig_path, &row).await?;
        let (theirs, ours) = (
            super::normalise(&theirs, Norm::Times, true),
            super::normalise(&ours, Norm::Times, false),
        );
        assert_eq!(
            theirs.stdout,
            ours.stdout,
            "describe {args:?}: {}",
            super::describe_difference(&theirs, &ours)
        );
    }
    Ok(())
}
