//! Differential test of the discovery, documentation and access commands (`api-resources`,
//! `api-versions`, `explain`, `auth can-i`) and of `get`'s template outputs (`-o jsonpath`,
//! `-o custom-columns`, `--sort-by`) against the test bed's real kubectl, through the shared
//! harness in `tests/it/commands/mod.rs`. Needs the bed's environment, like `tests/it/commands/get.rs`.

use super::{Row, row, run_kubectl, run_kubeline};
use crate::support::bed::{Bed, executor_for};
use anyhow::Result;

const ROWS: &[Row] = &[
    // api-resources and api-versions.
    row("api-resources", &[]),
    row("api-resources", &["-o", "wide"]),
    row("api-resources", &["-o", "name"]),
    row("api-resources", &["--namespaced=true"]),
    row("api-resources", &["--namespaced=false", "--no-headers"]),
    row("api-resources", &["--api-group=apps"]),
    row("api-resources", &["--api-group="]),
    row("api-resources", &["--sort-by=name"]),
    row("api-resources", &["--sort-by=kind", "-o", "wide"]),
    row("api-resources", &["--verbs=list,watch", "--namespaced"]),
    row("api-resources", &["--verbs=create", "-o", "name"]),
    row("api-resources", &["--categories=all"]),
    row(
        "api-resources",
        &["--api-group=testbed.kubeline.dev", "-o", "wide"],
    ),
    row("api-versions", &[]),
    // explain.
    row("explain", &["pods"]),
    row("explain", &["pods.spec.containers"]),
    row("explain", &["pods.spec.containers.ports"]),
    row("explain", &["pod.spec.restartPolicy"]),
    row("explain", &["svc.spec.ports", "--recursive"]),
    row("explain", &["widgets"]),
    row("explain", &["widgets", "--recursive"]),
    row("explain", &["widgets.spec"]),
    row("explain", &["deployments", "--api-version=apps/v1"]),
    row("explain", &["deployments.apps.spec.strategy"]),
    row("explain", &["deploy.spec.template.metadata.labels"]),
    row("explain", &["hpa.spec.metrics"]),
    row("explain", &["hpa", "--api-version=autoscaling/v1"]),
    row("explain", &["events.events.k8s.io.series"]),
    row("explain", &["nodes.status.conditions"]),
    row("explain", &["cm.data"]),
    row("explain", &["namespaces", "-R"]),
    row("explain", &["crd.spec.versions.schema"]),
    row("explain", &["pods.spec.nope"]),
    row("explain", &["foo"]),
    row(
        "explain",
        &["deployments.apps.spec", "--api-version=apps/v1"],
    ),
    // auth can-i.
    row("auth", &["can-i", "get", "pods"]),
    row(
        "auth",
        &["can-i", "list", "deployments.apps", "-n", "credit-service"],
    ),
    row("auth", &["can-i", "create", "pods"]),
    row("auth", &["can-i", "get", "secrets", "-n", "credit-service"]),
    row(
        "auth",
        &[
            "can-i",
            "delete",
            "deploy/credit-api",
            "-n",
            "credit-service",
        ],
    ),
    row("auth", &["can-i", "get", "nodes"]),
    row("auth", &["can-i", "get", "nodes", "-A"]),
    row("auth", &["can-i", "list", "widgets", "-A"]),
    row(
        "auth",
        &[
            "can-i",
            "get",
            "pods",
            "--subresource=log",
            "-n",
            "storefront",
        ],
    ),
    row("auth", &["can-i", "get", "foo"]),
    row("auth", &["can-i", "frob", "pods"]),
    row("auth", &["can-i", "get", "/healthz"]),
    row("auth", &["can-i", "post", "/healthz"]),
    row("auth", &["can-i", "*", "*"]),
    row("auth", &["can-i", "get", "pods", "-q"]),
    row("auth", &["can-i", "--list"]),
    row(
        "auth",
        &["can-i", "--list", "-n", "credit-service", "--no-headers"],
    ),
    // get -o jsonpath.
    row(
        "get",
        &[
            "pods",
            "-n",
            "credit-service",
            "-o",
            "jsonpath={.items[*].metadata.name}",
        ],
    ),
    row(
        "get",
        &[
            "pods",
            "-A",
            "-o",
            r#"jsonpath={range .items[*]}{.metadata.namespace}{"/"}{.metadata.name}{"\t"}{.status.phase}{"\n"}{end}"#,
        ],
    ),
    row(
        "get",
        &[
            "deploy",
            "credit-api",
            "-n",
            "credit-service",
            "-o",
            "jsonpath={.spec.template.spec.containers[0].image}",
        ],
    ),
    row(
        "get",
        &[
            "nodes",
            "-o",
            r#"jsonpath={.items[*].status.conditions[?(@.type=="Ready")].status}"#,
        ],
    ),
    row(
        "get",
        &[
            "nodes",
            "-o",
            r#"jsonpath={range .items[*]}{.metadata.name}: {.status.capacity.cpu} {.status.capacity.memory}{"\n"}{end}"#,
        ],
    ),
    row("get", &["ns", "default", "-o", "jsonpath={.metadata}"]),
    row("get", &["ns", "-o", "jsonpath={.items[0].metadata.labels}"]),
    row(
        "get",
        &[
            "svc",
            "-n",
            "credit-service",
            "-o",
            "jsonpath={.items[*].spec.ports[*].port}",
        ],
    ),
    row(
        "get",
        &[
            "pods",
            "-n",
            "credit-service",
            "-o",
            "jsonpath-as-json={.items[*].metadata.name}",
        ],
    ),
    row(
        "get",
        &[
            "pods",
            "-n",
            "kube-public",
            "-o",
            "jsonpath={.items[0].metadata.name}",
        ],
    ),
    row(
        "get",
        &["pods", "-n", "credit-service", "-o", "jsonpath={.items["],
    ),
    row("get", &["widgets", "-A", "-o", "jsonpath={..color}"]),
    // get -o custom-columns.
    row(
        "get",
        &[
            "pods",
            "-A",
            "-o",
            "custom-columns=NAMESPACE:.metadata.namespace,NAME:.metadata.name,NODE:.spec.nodeName",
        ],
    ),
    row(
        "get",
        &[
            "deploy",
            "-A",
            "-o",
            "custom-columns=NAME:metadata.name,REPLICAS:{.spec.replicas},IMAGES:.spec.template.spec.containers[*].image",
            "--no-headers",
        ],
    ),
    row(
        "get",
        &[
            "svc",
            "-n",
            "credit-service",
            "-o",
            "custom-columns=NAME:.metadata.name,PORTS:.spec.ports[*].port,SELECTOR:.spec.selector,MISSING:.nope",
        ],
    ),
    row(
        "get",
        &[
            "nodes",
            "-o",
            "custom-columns=NAME:.metadata.name,LABELS:.metadata.labels",
        ],
    ),
    row("get", &["ns", "-o", "custom-columns=NAME"]),
    // --sort-by.
    row("get", &["pods", "-A", "--sort-by=.metadata.name"]),
    row(
        "get",
        &[
            "pods",
            "-A",
            "--sort-by=.metadata.creationTimestamp",
            "-o",
            "name",
        ],
    ),
    row(
        "get",
        &["deploy", "-A", "--sort-by={.spec.replicas}", "-o", "wide"],
    ),
    row("get", &["nodes", "--sort-by=.status.capacity.memory"]),
    row(
        "get",
        &[
            "pods",
            "-A",
            "--sort-by=.metadata.namespace",
            "-o",
            "custom-columns=NS:.metadata.namespace,NAME:.metadata.name",
        ],
    ),
    row(
        "get",
        &[
            "svc",
            "-A",
            "--sort-by=.spec.clusterIP",
            "-o",
            "jsonpath={.items[*].metadata.name}",
        ],
    ),
    row("get", &["pods", "-n", "credit-service", "--sort-by=.nope"]),
    row(
        "get",
        &[
            "pods",
            "-n",
            "credit-service",
            "--sort-by=.nope",
            "-o",
            "json",
        ],
    ),
    row(
        "get",
        &["cm", "-A", "--sort-by=.metadata.name", "-o", "yaml"],
    ),
];

#[tokio::test]
async fn meta_commands_match_kubectl() -> Result<()> {
    super::check_rows(ROWS).await
}

/// `-o jsonpath` and `-o custom-columns` read the redacted object: for an identity that may
/// read Secrets, kubectl prints the values and kubeline prints `REDACTED` in their place, and
/// otherwise the same text.
#[tokio::test]
async fn templates_never_show_secret_values() -> Result<()> {
    use kubeline_agent::exec::REDACTED;

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
    let rows: &[&[&str]] = &[
        &[
            "secret",
            "credit-api-secrets",
            "-n",
            "credit-service",
            "-o",
            "jsonpath={.data}",
        ],
        &["secrets", "-A", "-o", "jsonpath={.items[*].data}"],
        &["secrets", "-A", "-o", "jsonpath={..DB_PASSWORD}"],
        &["secrets", "-A", "-o", "jsonpath-as-json={.items[*].data}"],
        &[
            "secrets",
            "-n",
            "credit-service",
            "-o",
            r#"jsonpath={range .items[*]}{.metadata.name}{"="}{.data.DB_PASSWORD}{"\n"}{end}"#,
        ],
        &[
            "secrets",
            "-n",
            "credit-service",
            "-o",
            "custom-columns=NAME:.metadata.name,DATA:.data",
        ],
        &[
            "secrets",
            "-A",
            "-o",
            "custom-columns=NAME:.metadata.name,PW:.data.DB_PASSWORD,ANN:.metadata.annotations",
        ],
        &["secrets", "-A", "--sort-by=.data.DB_PASSWORD", "-o", "name"],
        &["secrets", "-A", "--sort-by=.data.DB_PASSWORD"],
    ];
    for args in rows {
        let row = Row {
            command: "get",
            args,
            norm: super::Norm::Times,
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
        assert_eq!(
            theirs.exit_code, 0,
            "kubectl get {args:?}: {}",
            theirs.stderr
        );
        if args
            .iter()
            .any(|a| a.contains("data") && !a.contains("sort-by"))
        {
            assert!(
                encoded.iter().any(|e| theirs.stdout.contains(e)),
                "kubectl shows a value for {args:?}:\n{}",
                theirs.stdout
            );
            assert!(
                ours.stdout.contains(REDACTED),
                "get {args:?}:\n{}",
                ours.stdout
            );
        }
        if args.iter().any(|a| a.starts_with("jsonpath=")) {
            // Byte for byte what kubectl prints, once its values are redacted.
            let mut expected = theirs.stdout.clone();
            for full in [
                "a2JsLXRlc3RiZWQtZGItcGFzc3dvcmQtN2YzYTlj",
                "a2JsLXRlc3RiZWQtYXBpLXRva2VuLTFiMmMzZDRlNWY=",
                "Y3JlZGl0X2FwcA==",
            ] {
                expected = expected.replace(full, REDACTED);
            }
            assert_eq!(ours.stdout, expected, "get {args:?}");
        }
    }
    Ok(())
}
