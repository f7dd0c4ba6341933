//! Differential test of kubectl's usage errors — argvs kubectl itself refuses before calling the
//! API server (no resource type, `TYPE/NAME` mixed with a type, an unknown `-o`, conflicting
//! options, missing arguments) — against the test bed's real kubectl, through the shared harness
//! in `tests/diff`. kubeline answers them as kubectl does: kubectl's exact standard error and
//! exit code 1, in a `failed` result that the broker produces without queueing anything. Also the
//! hostile-input rows whose runaway work kubectl allows but kubeline bounds are *not* here: those
//! differ on purpose (README, Limits) and are tested in `tests/hostile.rs`.

mod diff;

use anyhow::Result;
use diff::{Row, row};

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

#[tokio::test]
async fn usage_errors_match_kubectl() -> Result<()> {
    diff::check_rows(ROWS).await
}
