//! Differential test of kubeline's commands against real kubectl on the test bed.
//!
//! Every row runs twice: through `shared::command::parse` + `agent::exec::Executor::run` with a
//! client for the bed's read-only identity, and through the bed's own `kubectl` (same Kubernetes
//! version as the API server) with the same identity and the same arguments. stdout, stderr and
//! the exit code must be equal. The only normalisation: durations (AGE cells, `(5m ago)`) and
//! RFC 3339 timestamps are masked with placeholders of the same length (so column layout is
//! still compared byte for byte), and for `version` the client-side lines kubeline does not
//! print are removed from kubectl's output. Because ages tick, a row that differs is retried a
//! few times before it counts as failed.
//!
//! Needs the bed's environment (`scripts/test` provides it; by hand:
//! `scripts/testbed up && eval "$(scripts/testbed env)"`). Without it the test fails; it never
//! skips.

use super::{Norm, Row, normalise, row, run_kubectl, run_kubeline};
use crate::support::bed::{Bed, executor_for};
use anyhow::{Context, Result};

const ROWS: &[Row] = &[
    // Tables of the usual kinds.
    row("get", &["pods", "-n", "credit-service"]),
    row("get", &["pods", "-A"]),
    row("get", &["pods", "-A", "-o", "wide"]),
    row("get", &["deploy", "-n", "credit-service"]),
    row(
        "get",
        &["deployments.apps", "-n", "storefront", "-o", "wide"],
    ),
    row("get", &["svc", "-n", "credit-service"]),
    row("get", &["nodes"]),
    row("get", &["nodes", "-o", "wide", "--show-labels"]),
    row("get", &["ns"]),
    row("get", &["cm", "-n", "credit-service"]),
    row("get", &["events", "-n", "storefront"]),
    row("get", &["crd"]),
    row("get", &["widgets", "-A"]),
    row("get", &["Widget", "-n", "credit-service", "-L", "color"]),
    row("get", &["sts,rs", "-n", "credit-service"]),
    row("get", &["hpa", "-A"]),
    row("get", &["jobs,cronjobs", "-n", "batch-jobs", "-o", "wide"]),
    row("get", &["clusterroles"]),
    row("get", &["clusterrolebindings", "-o", "wide"]),
    row("get", &["sa", "-A", "--show-labels"]),
    row("get", &["apiservices"]),
    row("get", &["nodes.metrics.k8s.io"]),
    row("get", &["pods.metrics.k8s.io", "-n", "credit-service"]),
    row("get", &["endpointslices", "-A"]),
    row(
        "get",
        &[
            "events",
            "-A",
            "--field-selector",
            "reason=ScalingReplicaSet",
        ],
    ),
    // Selectors and flags.
    row(
        "get",
        &["pods", "-n", "credit-service", "-l", "app=credit-api"],
    ),
    row(
        "get",
        &[
            "pods",
            "-A",
            "--field-selector",
            "status.phase=Running",
            "--no-headers",
        ],
    ),
    row(
        "get",
        &["po", "-ncredit-service", "--show-kind", "--show-labels"],
    ),
    row("get", &["pods", "-A", "--chunk-size=3"]),
    row(
        "get",
        &[
            "pods",
            "-A",
            "-o",
            "wide",
            "-l",
            "app in (credit-api,frontend)",
        ],
    ),
    row(
        "get",
        &["pods", "-n", "credit-service", "--no-headers", "-o", "wide"],
    ),
    row("get", &["deploy", "--show-kind", "-n", "storefront"]),
    row("get", &["widgets.v1.testbed.kubeline.dev", "-A"]),
    // Several types, type/name, categories.
    row("get", &["pods,svc", "-n", "credit-service"]),
    row("get", &["all", "-n", "storefront"]),
    row(
        "get",
        &[
            "deploy/credit-api",
            "svc/credit-api",
            "-n",
            "credit-service",
        ],
    ),
    row("get", &["deploy,svc", "credit-api", "-n", "credit-service"]),
    row(
        "get",
        &[
            "pod/credit-cache-0",
            "deploy/credit-api",
            "pod/credit-cache-1",
            "-n",
            "credit-service",
        ],
    ),
    row("get", &["all", "-A"]),
    row(
        "get",
        &[
            "pod",
            "credit-cache-0",
            "-n",
            "credit-service",
            "-o",
            "wide",
        ],
    ),
    // -o name, json, yaml.
    row("get", &["pods", "-n", "credit-service", "-o", "name"]),
    row(
        "get",
        &[
            "pod",
            "credit-cache-0",
            "-n",
            "credit-service",
            "-o",
            "name",
        ],
    ),
    row("get", &["cm", "-n", "credit-service", "-o", "json"]),
    row("get", &["ns", "default", "-o", "yaml"]),
    row("get", &["ns", "default", "credit-service", "-o", "json"]),
    row(
        "get",
        &["widget/widget-alpha", "-n", "credit-service", "-o", "yaml"],
    ),
    row("get", &["svc", "-n", "credit-service", "-o", "yaml"]),
    row(
        "get",
        &["deploy", "credit-api", "-n", "credit-service", "-o", "json"],
    ),
    row("get", &["deploy", "-A", "-o", "yaml"]),
    row(
        "get",
        &[
            "sa",
            "default",
            "-n",
            "credit-service",
            "-o",
            "yaml",
            "--show-managed-fields",
        ],
    ),
    row("get", &["ns", "-o", "name"]),
    row("get", &["nodes", "kwok-node-0", "-o", "json"]),
    row(
        "get",
        &["crd", "widgets.testbed.kubeline.dev", "-o", "yaml"],
    ),
    row("get", &["pods", "-A", "-o", "yaml"]),
    row(
        "get",
        &["nodes", "kwok-node-0", "kwok-node-1", "-o", "yaml"],
    ),
    row(
        "get",
        &[
            "deploy,svc",
            "credit-api",
            "-n",
            "credit-service",
            "-o",
            "json",
        ],
    ),
    row(
        "get",
        &[
            "pod",
            "credit-cache-0",
            "missing",
            "-n",
            "credit-service",
            "-o",
            "json",
        ],
    ),
    row(
        "get",
        &[
            "pods",
            "-n",
            "credit-service",
            "--field-selector=metadata.name=credit-cache-0",
            "-o",
            "yaml",
        ],
    ),
    row("get", &["widget", "widget-alpha", "-n", "credit-service"]),
    row("get", &["events", "-n", "credit-service"]),
    // Errors and empty results.
    row("get", &["pods", "missing", "-n", "credit-service"]),
    row(
        "get",
        &["pod", "credit-cache-0", "missing", "-n", "credit-service"],
    ),
    row(
        "get",
        &["pod", "missing", "-n", "credit-service", "-o", "yaml"],
    ),
    row(
        "get",
        &[
            "pod",
            "missing",
            "-n",
            "credit-service",
            "--ignore-not-found",
        ],
    ),
    row("get", &["foo"]),
    row("get", &["pods,foo", "-n", "credit-service"]),
    row("get", &["secrets", "-n", "credit-service"]),
    row("get", &["pods,secrets", "-n", "credit-service"]),
    row("get", &["pods"]),
    row("get", &["pods", "-n", "kube-public", "-o", "json"]),
    row("get", &["nodes", "-l", "no-such-label"]),
    row("get", &["pods", "credit-cache-0", "-A"]),
    row("get", &["all", "x", "-n", "credit-service"]),
    row("get", &["deployments.foo"]),
    row("get", &["nodes", "-A", "kwok-node-2"]),
    row("get", &["ingress,pvc", "-A"]),
    row("get", &["csr"]),
    row("get", &["componentstatuses"]),
    // version and cluster-info.
    Row {
        command: "version",
        args: &[],
        norm: Norm::Version,
    },
    Row {
        command: "version",
        args: &["-o", "json"],
        norm: Norm::Version,
    },
    Row {
        command: "version",
        args: &["-o", "yaml"],
        norm: Norm::Version,
    },
    row("cluster-info", &[]),
];

#[tokio::test]
async fn commands_match_kubectl() -> Result<()> {
    super::check_rows(ROWS).await
}

/// Secret values must never leave the cluster, even for an identity that may read them: json
/// and yaml carry `REDACTED` instead of every value, and otherwise the same object kubectl
/// prints; tables (which hold no values) are kubectl's byte for byte.
#[tokio::test]
async fn secret_values_never_leave_the_cluster() -> Result<()> {
    use kubeline_agent::exec::REDACTED;
    use serde_json::Value;

    let bed = Bed::new().await;
    let (kubectl, kubeconfig_path) = (&bed.kubectl, &bed.secrets);
    let executor = executor_for(&bed.secrets).await;
    let clear = [
        "kbl-testbed-db-password-7f3a9c",
        "kbl-testbed-api-token-1b2c3d4e5f",
        "credit_app",
    ];
    let encoded = [
        "a2JsLXRlc3RiZWQtZGItcGFzc3dvcmQtN2YzYTlj",
        "a2JsLXRlc3RiZWQtYXBpLXRva2VuLTFiMmMzZDRlNWY",
        "Y3JlZGl0X2FwcA",
    ];

    for args in [
        &[
            "secret",
            "credit-api-secrets",
            "-n",
            "credit-service",
            "-o",
            "yaml",
        ][..],
        &[
            "secret",
            "credit-api-secrets",
            "-n",
            "credit-service",
            "-o",
            "json",
        ][..],
        &["secrets", "-A", "-o", "json"][..],
        &["secrets", "-A", "-o", "yaml", "--show-managed-fields"][..],
        &[
            "secrets",
            "-n",
            "credit-service",
            "-o",
            "wide",
            "--show-labels",
        ][..],
    ] {
        let row = Row {
            command: "get",
            args,
            norm: Norm::Times,
        };
        let ours = run_kubeline(&executor, &row).await;
        assert_eq!(ours.exit_code, 0, "get {args:?}: {}", ours.stderr);
        for needle in clear.iter().chain(encoded.iter()) {
            assert!(
                !ours.stdout.contains(needle),
                "get {args:?} leaked {needle}:\n{}",
                ours.stdout
            );
        }
        let theirs = run_kubectl(kubectl, kubeconfig_path, &row).await?;
        assert!(
            theirs.stdout.contains(encoded[0]) || !args.contains(&"credit-api-secrets"),
            "kubectl shows the value"
        );
        if args.contains(&"json") {
            // The same objects once kubectl's are redacted the way kubeline redacts.
            let mut expected: Value = serde_json::from_str(&theirs.stdout)?;
            let objects: Vec<&mut Value> =
                match expected.get_mut("items").and_then(Value::as_array_mut) {
                    Some(items) => items.iter_mut().collect(),
                    None => vec![&mut expected],
                };
            for o in objects {
                if let Some(Value::Object(data)) = o.get_mut("data") {
                    data.values_mut()
                        .for_each(|v| *v = Value::String(REDACTED.into()));
                }
                let meta = o["metadata"].as_object_mut().context("metadata")?;
                if let Some(Value::Object(a)) = meta.get_mut("annotations") {
                    a.remove("kubectl.kubernetes.io/last-applied-configuration");
                    if a.is_empty() {
                        meta.remove("annotations");
                    }
                }
            }
            let actual: Value = serde_json::from_str(&ours.stdout)?;
            assert_eq!(actual, expected, "get {args:?}");
        } else if args.contains(&"wide") {
            assert_eq!(
                normalise(&ours, Norm::Times, false),
                normalise(&theirs, Norm::Times, true)
            );
        } else {
            assert!(
                ours.stdout.contains(&format!("DB_PASSWORD: {REDACTED}")),
                "{}",
                ours.stdout
            );
        }
    }
    Ok(())
}
