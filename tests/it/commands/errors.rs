//! Differential test of error paths and the newer output formats against the test bed's real
//! kubectl, through the shared harness in `tests/it/commands/mod.rs`: NotFound in a namespace that does not
//! exist, label and field selector errors and empty matches, `explain --api-version` errors,
//! the short-name ambiguity warning, sorting by a boolean field, and `events -o json|yaml|name`,
//! `api-resources -o json|yaml|kyaml`, `rollout history -o yaml|name`. Needs the bed's
//! environment, like `tests/it/commands/get.rs`.

use super::{Row, row};
use anyhow::Result;

const ROWS: &[Row] = &[
    // NotFound in a namespace that does not exist names the namespace (cli-runtime's Info.Get).
    row("describe", &["pods", "nope", "-n", "nope"]),
    row("describe", &["deploy/nope", "-n", "nope"]),
    row("logs", &["nope", "-n", "nope"]),
    row("logs", &["deploy/nope", "-n", "nope"]),
    row("rollout", &["history", "deploy/nope", "-n", "nope"]),
    row("rollout", &["status", "deploy/nope", "-n", "nope"]),
    row("describe", &["pods", "nope", "-n", "credit-service"]),
    row("events", &["--for", "pod/nope", "-n", "nope"]),
    // Selectors: kubectl's "Unable to find … that match label selector …" and empty matches.
    row("logs", &["-l", "app=nope", "-n", "credit-service"]),
    row("logs", &["-l", "a=b=c", "-n", "credit-service"]),
    row("describe", &["pods", "-l", "a=b=c", "-n", "credit-service"]),
    row(
        "describe",
        &["pods", "-l", "app=nope", "-n", "credit-service"],
    ),
    row(
        "describe",
        &["pods", "-l", "a in (b", "-n", "credit-service"],
    ),
    row(
        "rollout",
        &["history", "deploy", "-l", "a=b=c", "-n", "credit-service"],
    ),
    row(
        "rollout",
        &["status", "deploy", "-l", "app=nope", "-n", "credit-service"],
    ),
    row("top", &["pods", "-l", "a=b=c", "-n", "credit-service"]),
    row("top", &["nodes", "-l", "a=b=c"]),
    row("top", &["pods", "-A", "-l", "a in (b"]),
    row(
        "top",
        &["pods", "--field-selector", "a", "-n", "credit-service"],
    ),
    row(
        "top",
        &[
            "pods",
            "--field-selector",
            "foo=bar",
            "-n",
            "credit-service",
        ],
    ),
    row(
        "describe",
        &["deploy", "-l", "a=b=c", "-n", "credit-service"],
    ),
    row("describe", &["svc", "-n", "nope"]),
    // explain --api-version errors name the resource as a GroupVersionResource.
    row("explain", &["deployments", "--api-version=apps/v9"]),
    row("explain", &["pods", "--api-version=v2"]),
    row("explain", &["hpa", "--api-version=autoscaling/v3"]),
    row("explain", &["deployments.spec", "--api-version=apps/v9"]),
    row("explain", &["deploy", "--api-version=v1"]),
    // A short name several resources have: kubectl warns on stderr.
    row("describe", &["ev", "-n", "nope"]),
    row("events", &["--for", "ev/nope", "-n", "credit-service"]),
    row("explain", &["ev.reason"]),
    row("auth", &["can-i", "get", "ev"]),
    row("auth", &["can-i", "list", "ev", "-n", "credit-service"]),
    row("logs", &["ev/nope", "-n", "credit-service"]),
    // events -o json|yaml|name.
    row("events", &["-A", "-o", "json"]),
    row(
        "events",
        &[
            "--for",
            "deploy/credit-api",
            "-n",
            "credit-service",
            "-o",
            "yaml",
        ],
    ),
    row(
        "events",
        &[
            "--for",
            "deploy/credit-api",
            "-n",
            "credit-service",
            "-o",
            "json",
        ],
    ),
    row("events", &["-n", "credit-service", "-o", "json"]),
    row("events", &["-A", "-o", "yaml"]),
    row("events", &["-n", "credit-service", "-o", "name"]),
    row(
        "events",
        &["-n", "credit-service", "--types=Warning", "-o", "yaml"],
    ),
    row("events", &["-n", "kube-public", "-o", "json"]),
    // api-resources -o json|yaml.
    row("api-resources", &["-o", "yaml"]),
    row("api-resources", &["-o", "kyaml"]),
    row("api-resources", &["-o", "kyaml", "--api-group=nope"]),
    row(
        "api-resources",
        &["-o", "json", "--verbs=create", "--categories=all"],
    ),
    row("api-resources", &["-o", "json"]),
    row("api-resources", &["-o", "yaml", "--api-group=apps"]),
    row("api-resources", &["-o", "json", "--api-group=nope"]),
    row(
        "api-resources",
        &["-o", "yaml", "--namespaced=false", "--sort-by=kind"],
    ),
    // rollout history -o yaml|name.
    row(
        "rollout",
        &["history", "deploy", "-n", "credit-service", "-o", "yaml"],
    ),
    row(
        "rollout",
        &[
            "history",
            "deploy/credit-api",
            "-n",
            "credit-service",
            "-o",
            "yaml",
        ],
    ),
    row(
        "rollout",
        &[
            "history",
            "deploy/credit-api",
            "-n",
            "credit-service",
            "-o",
            "name",
        ],
    ),
    row(
        "rollout",
        &["history", "deploy", "-n", "credit-service", "-o", "name"],
    ),
    row(
        "rollout",
        &[
            "history",
            "deploy/credit-api",
            "-n",
            "credit-service",
            "-o",
            "yaml",
            "--revision=1",
        ],
    ),
    row(
        "rollout",
        &[
            "history",
            "deploy/credit-api",
            "-n",
            "credit-service",
            "-o",
            "name",
            "--revision=9",
        ],
    ),
    row(
        "rollout",
        &["history", "sts", "-n", "credit-service", "-o", "yaml"],
    ),
    row(
        "rollout",
        &[
            "history",
            "sts/credit-cache",
            "-n",
            "credit-service",
            "-o",
            "name",
        ],
    ),
    row(
        "rollout",
        &[
            "history",
            "deploy,sts",
            "-n",
            "credit-service",
            "-o",
            "yaml",
            "--revision=1",
        ],
    ),
];

/// `get`'s own error paths: a named object in a namespace that does not exist (kubectl's
/// `Info.Get` names the namespace), the short-name warning, sorting by a boolean (kubectl's
/// `klog.Exitf`: that one line on stderr, exit code 1, nothing on stdout), and `-o kyaml`.
const GET_ROWS: &[Row] = &[
    row("get", &["pods", "nope", "-n", "nope"]),
    row("get", &["deploy/nope", "svc/nope", "-n", "nope"]),
    row("get", &["pods", "nope", "-n", "nope", "-o", "json"]),
    row("get", &["pods/nope", "-n", "nope", "--ignore-not-found"]),
    row("get", &["pods", "nope", "-n", "kube-system"]),
    row("get", &["ev", "-n", "nope"]),
    row("get", &["ev", "-A", "-o", "name"]),
    row("get", &["pods", "-A", "--sort-by=.spec.enableServiceLinks"]),
    // KYAML (kubectl 1.34+).
    row("get", &["ns", "default", "-o", "kyaml"]),
    row("get", &["cm", "-n", "credit-service", "-o", "kyaml"]),
    row("get", &["pods", "-n", "credit-service", "-o", "kyaml"]),
    row("get", &["svc", "-A", "-o", "KYAML"]),
    row("get", &["widgets", "-A", "-o", "kyaml"]),
    row(
        "get",
        &[
            "pods",
            "-A",
            "--sort-by=.spec.enableServiceLinks",
            "-o",
            "name",
        ],
    ),
];

#[tokio::test]
async fn error_paths_and_formats_match_kubectl() -> Result<()> {
    super::check_rows(ROWS).await
}

#[tokio::test]
async fn get_error_paths_match_kubectl() -> Result<()> {
    super::check_rows(GET_ROWS).await
}
