//! Differential test of kubectl's usage errors — argvs kubectl itself refuses before calling the
//! API server (no resource type, `TYPE/NAME` mixed with a type, an unknown `-o`, conflicting
//! options, missing arguments) — against the test bed's real kubectl, through the shared harness
//! in `tests/it/commands/mod.rs`. kubeline answers them as kubectl does: kubectl's exact standard error and
//! exit code 1, in a `failed` result that the broker produces without queueing anything. Also the
//! template errors (invalid filters, indexes at the ends of the 64-bit range) are compared too. The
//! hostile-input rows whose runaway work kubectl allows but kubeline bounds are *not* here: those
//! differ on purpose (README, Limits) and are tested in `tests/it/hostile.rs`.

use super::{Row, row};
use anyhow::Result;

const ROWS: &[Row] = &[
    row("get", &[]),
    row("get", &["-n", "credit-service"]),
    row("get", &["pods", "pod/x"]),
    row("get", &["pod/x", "pods"]),
    row("get", &["pods", "-o", "foo"]),
    row("get", &["pods", "-o", "foo=bar"]),
    row("get", &["pods", "-o", "Jsonpath={.x}"]),
    row("get", &["pods", "-o", "jsonpath="]),
    row("get", &["pods", "-o", "jsonpath"]),
    row("get", &["pods", "-o", "custom-columns="]),
    row("get", &["pods", "-o", "custom-columns"]),
    row("get", &["pods", "-o", "json", "--show-labels"]),
    row("get", &["pods", "-o", "name", "--show-labels"]),
    row("get", &["pods", "-o", "jsonpath={.x}", "--show-labels"]),
    // Formats kubectl matches in any case.
    row("get", &["ns", "default", "-o", "JSON"]),
    row("get", &["ns", "default", "-o=Yaml"]),
    row("get", &["ns", "-o", "NAME"]),
    row("describe", &[]),
    row("describe", &["pods", "pod/x"]),
    row("logs", &[]),
    row("logs", &["a", "b", "c"]),
    row("logs", &["-l", "app=x", "a", "-n", "credit-service"]),
    row("explain", &[]),
    row("explain", &["pods", "svc"]),
    row("auth", &["can-i"]),
    row("auth", &["can-i", "get"]),
    row("auth", &["can-i", "get", "pods", "x"]),
    row("version", &["-o", "foo"]),
];

/// Template errors and edge cases, each printed as kubectl prints it: invalid filters (some
/// kubectl accepts and prints nothing for, some it refuses while parsing) and indexes at the ends
/// of the 64-bit range, which once ran until the caller's timeout.
const TEMPLATE_ROWS: &[Row] = &[
    row(
        "get",
        &[
            "pods",
            "-n",
            "credit-service",
            "-o",
            "jsonpath={.items[?(@.metadata.name=)]}",
        ],
    ),
    row(
        "get",
        &[
            "pods",
            "-n",
            "credit-service",
            "-o",
            "jsonpath={.items[?(@.metadata.name==)]}",
        ],
    ),
    row(
        "get",
        &[
            "pods",
            "-n",
            "credit-service",
            "-o",
            "jsonpath={.items[?(==1)]}",
        ],
    ),
    row(
        "get",
        &[
            "pods",
            "-n",
            "credit-service",
            "-o",
            r#"jsonpath={.items[?(@.x=~"a")]}"#,
        ],
    ),
    row(
        "get",
        &[
            "pods",
            "-n",
            "credit-service",
            "-o",
            r#"jsonpath={.items[?(@.metadata.name=="a"]}"#,
        ],
    ),
    row(
        "get",
        &[
            "pods",
            "-n",
            "credit-service",
            "-o",
            "jsonpath={.items[?()].metadata.name}",
        ],
    ),
    row(
        "get",
        &[
            "pods",
            "-n",
            "credit-service",
            "-o",
            r#"jsonpath={.items[?(@.metadata.name=="x" && @.y)]}"#,
        ],
    ),
    row(
        "get",
        &[
            "pods",
            "-n",
            "credit-service",
            "-o",
            "jsonpath={.items[?(@.metadata.name!)]}",
        ],
    ),
    row(
        "get",
        &[
            "pods",
            "-n",
            "credit-service",
            "-o",
            "jsonpath={.items[9223372036854775807]}",
        ],
    ),
    row(
        "get",
        &[
            "pods",
            "-n",
            "credit-service",
            "-o",
            "jsonpath={.items[-9223372036854775808]}",
        ],
    ),
    row(
        "get",
        &[
            "pods",
            "-n",
            "credit-service",
            "-o",
            "jsonpath={.items[0:9223372036854775807:9223372036854775807].metadata.name}",
        ],
    ),
    row(
        "get",
        &[
            "pods",
            "-n",
            "credit-service",
            "-o",
            "jsonpath={.items[9223372036854775806:]}",
        ],
    ),
    row(
        "get",
        &[
            "pods",
            "-n",
            "credit-service",
            "-o",
            "jsonpath={.items[99999999999999999999]}",
        ],
    ),
    row(
        "get",
        &[
            "pods",
            "-n",
            "credit-service",
            "-o",
            "custom-columns=X:.spec.containers[9223372036854775807].name",
        ],
    ),
    row(
        "get",
        &[
            "pods",
            "-n",
            "credit-service",
            "--sort-by={.spec.containers[9223372036854775807].name}",
        ],
    ),
];

#[tokio::test]
async fn usage_errors_match_kubectl() -> Result<()> {
    super::check_rows(ROWS).await
}

#[tokio::test]
async fn template_errors_match_kubectl() -> Result<()> {
    super::check_rows(TEMPLATE_ROWS).await
}
