//! Differential test of `logs`, `events`, `top` and `rollout` against the bed's real kubectl.
//!
//! Each row runs through `shared::command::parse` + `agent::exec::Executor::run` and through the
//! bed's kubectl (same version as the API server), both as the read-only identity; stdout,
//! stderr and exit code must match after the shared harness's normalisation (durations and
//! timestamps masked; for `top`, usage figures masked too, since kwok jitters them).
//!
//! Rows are chosen so kubectl's own output is deterministic: kubectl keeps log requests in a Go
//! map, so rows that read several pods or containers use pods whose logs are identical, and
//! `--prefix` only appears with one pod. `rollout status` rows are snapshots: every workload on
//! the bed has finished rolling out, so kubectl returns at once with or without `--watch=false`.
//!
//! Needs the bed's environment (`scripts/test`, or `scripts/testbed up` +
//! `eval "$(scripts/testbed env)"`); without it the test fails, it never skips.

use super::{Row, row, top_row};
use anyhow::Result;

const ROWS: &[Row] = &[
    // logs: pods, workloads and selectors.
    row("logs", &["-n", "credit-service", "credit-scorer"]),
    row("logs", &["-n", "credit-service", "pod/credit-scorer"]),
    row("logs", &["-n", "credit-service", "credit-scorer", "scorer"]),
    row("logs", &["-n", "credit-service", "deploy/credit-api"]),
    row(
        "logs",
        &["-n", "credit-service", "deployment/credit-worker"],
    ),
    row("logs", &["-n", "credit-service", "sts/credit-cache"]),
    row("logs", &["-n", "credit-service", "svc/credit-api"]),
    row(
        "logs",
        &["-n", "storefront", "deploy/frontend", "-c", "nginx"],
    ),
    row("logs", &["-n", "batch-jobs", "job/report-once"]),
    row("logs", &["-n", "credit-service", "-l", "app=credit-api"]),
    row(
        "logs",
        &["-n", "storefront", "-l", "app=frontend", "--tail=-1"],
    ),
    row("logs", &["-n", "credit-service", "-l", "app=nope"]),
    // logs: PodLogOptions.
    row(
        "logs",
        &["-n", "credit-service", "credit-scorer", "--previous"],
    ),
    row(
        "logs",
        &[
            "-n",
            "credit-service",
            "credit-scorer",
            "-p",
            "--timestamps",
        ],
    ),
    row(
        "logs",
        &["-n", "credit-service", "deploy/credit-worker", "--tail=2"],
    ),
    row(
        "logs",
        &[
            "-n",
            "credit-service",
            "deploy/credit-worker",
            "--tail",
            "1",
            "--timestamps",
        ],
    ),
    row(
        "logs",
        &["-n", "credit-service", "credit-scorer", "--since=1s"],
    ),
    row(
        "logs",
        &["-n", "credit-service", "credit-scorer", "--since=24h"],
    ),
    row(
        "logs",
        &[
            "-n",
            "credit-service",
            "credit-scorer",
            "--since-time=2000-01-01T00:00:00Z",
        ],
    ),
    row(
        "logs",
        &[
            "-n",
            "credit-service",
            "credit-scorer",
            "--since-time=2099-01-01T00:00:00Z",
        ],
    ),
    row(
        "logs",
        &["-n", "credit-service", "credit-scorer", "--all-containers"],
    ),
    row(
        "logs",
        &[
            "-n",
            "credit-service",
            "deploy/credit-worker",
            "--all-containers",
            "--prefix",
        ],
    ),
    row(
        "logs",
        &[
            "-n",
            "credit-service",
            "deploy/credit-api",
            "--limit-bytes=20",
        ],
    ),
    // logs: errors.
    row("logs", &["-n", "credit-service", "nope"]),
    row("logs", &["-n", "credit-service", "deploy/nope"]),
    row(
        "logs",
        &["-n", "credit-service", "credit-scorer", "-c", "nope"],
    ),
    row(
        "logs",
        &["-n", "credit-service", "deploy/credit-api", "-c", "nope"],
    ),
    row("logs", &["-n", "credit-service", "cm/credit-api-config"]),
    row("logs", &["-n", "batch-jobs", "cronjob/nightly-report"]),
    row("logs", &["node/kwok-node-0"]),
    row("logs", &["-n", "credit-service", "wdg/widget-alpha"]),
    row("logs", &["-n", "credit-service", "foo/bar"]),
    // events.
    row("events", &["-n", "storefront"]),
    row("events", &["-n", "default"]),
    row("events", &["-n", "batch-jobs", "--no-headers"]),
    row("events", &["-A"]),
    row("events", &["-A", "--types=normal", "--no-headers"]),
    row("events", &["-n", "credit-service", "--types=Warning"]),
    row(
        "events",
        &["-n", "credit-service", "--for", "pod/credit-scorer"],
    ),
    row(
        "events",
        &["-n", "credit-service", "--for=deployment/credit-api"],
    ),
    row(
        "events",
        &["-n", "storefront", "--for", "Deployment.apps/frontend"],
    ),
    row("events", &["-n", "kube-system"]),
    row("events", &["--for", "foo/bar"]),
    // top.
    top_row(&["nodes"]),
    top_row(&["node", "kwok-node-1", "--no-headers"]),
    top_row(&["nodes", "-l", "type=kwok", "--show-capacity"]),
    top_row(&["nodes", "--sort-by=memory"]),
    top_row(&["pods", "-A"]),
    top_row(&["pods", "-n", "credit-service"]),
    top_row(&[
        "pod",
        "credit-scorer",
        "-n",
        "credit-service",
        "--containers",
    ]),
    top_row(&[
        "pods",
        "-n",
        "credit-service",
        "-l",
        "app=credit-worker",
        "--sort-by=cpu",
    ]),
    top_row(&["po", "-n", "storefront", "--no-headers", "--sum"]),
    top_row(&["pods", "-A", "--sum"]),
    top_row(&["pods", "-n", "default"]),
    top_row(&["pods", "-n", "credit-service", "-l", "app=nope"]),
    top_row(&["pod", "nope", "-n", "credit-service"]),
    top_row(&["node", "nope"]),
    // rollout status (snapshots) and history.
    row(
        "rollout",
        &["status", "-n", "credit-service", "deploy/credit-api"],
    ),
    row(
        "rollout",
        &[
            "status",
            "-n",
            "credit-service",
            "deploy",
            "credit-api",
            "--watch=false",
        ],
    ),
    row(
        "rollout",
        &["status", "-n", "credit-service", "sts/credit-cache"],
    ),
    row("rollout", &["status", "-n", "credit-service", "deploy"]),
    row(
        "rollout",
        &["status", "-n", "storefront", "deploy", "-l", "app=frontend"],
    ),
    row(
        "rollout",
        &[
            "status",
            "-n",
            "credit-service",
            "deploy/credit-api",
            "--revision=1",
        ],
    ),
    row(
        "rollout",
        &["status", "-n", "credit-service", "deploy/nope"],
    ),
    row(
        "rollout",
        &["status", "-n", "credit-service", "pod/credit-scorer"],
    ),
    row("rollout", &["status", "-n", "default", "deploy"]),
    row(
        "rollout",
        &["history", "-n", "credit-service", "deploy/credit-api"],
    ),
    row(
        "rollout",
        &["history", "-n", "credit-service", "sts/credit-cache"],
    ),
    row(
        "rollout",
        &["history", "-n", "credit-service", "deployments"],
    ),
    row(
        "rollout",
        &[
            "history",
            "-n",
            "credit-service",
            "deploy/credit-api",
            "--revision=5",
        ],
    ),
    // One revision's pod template (kubectl prints it with raw tabs, not aligned).
    row(
        "rollout",
        &[
            "history",
            "-n",
            "credit-service",
            "deploy/credit-api",
            "--revision=1",
        ],
    ),
    row(
        "rollout",
        &[
            "history",
            "-n",
            "credit-service",
            "sts/credit-cache",
            "--revision=1",
        ],
    ),
    row(
        "rollout",
        &[
            "history",
            "-n",
            "credit-service",
            "deployments",
            "--revision=1",
        ],
    ),
    row(
        "rollout",
        &[
            "history",
            "-n",
            "storefront",
            "deployment",
            "frontend",
            "--revision",
            "1",
        ],
    ),
    row(
        "rollout",
        &[
            "history",
            "-n",
            "credit-service",
            "sts/credit-cache",
            "--revision=2",
        ],
    ),
    row(
        "rollout",
        &["history", "-n", "credit-service", "pod/credit-scorer"],
    ),
    row(
        "rollout",
        &["history", "-n", "batch-jobs", "cronjob/nightly-report"],
    ),
];

#[tokio::test]
async fn ops_commands_match_kubectl() -> Result<()> {
    super::check_rows(ROWS).await
}
