//! kubeline's own clients against a live broker and agent on the test bed: the real MCP clients
//! (Python `mcp` and TypeScript `@modelcontextprotocol/client`, both protocol eras, and the
//! stdio bridge `kubeline mcp`), the Python SDK and the TypeScript SDK.
//!
//! Each suite is its toolchain's own test run (`test.sh` beside it: pytest, `node --test`); this
//! file starts the broker (embedded store) and an agent for cluster `bed`, and hands them over
//! in the environment:
//!
//! - `KUBELINE_TEST_ENDPOINT`: the broker's URL;
//! - `KUBELINE_TEST_API_KEY`: an admin key;
//! - `KUBELINE_TEST_CLUSTER`: `bed`, linked to the test bed;
//! - `KUBELINE_TEST_OTHER_KEY`: a read key granted only cluster `elsewhere`;
//! - `KUBELINE_TEST_DEAD_ENDPOINT`: a URL nothing listens on;
//! - `KUBELINE_TEST_BIN`: the kubeline binary (for `kubeline mcp`).
//!
//! The toolchains' packages are installed by `scripts/test` (each suite's `setup.sh`).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{ADMIN_KEY, Stack, free_port};

const OTHER_KEY: &str = "clients-other-key";

/// Runs `suite/test.sh` against a fresh broker and agent.
async fn run_suite(name: &str, suite: &str) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let script = root.join(suite).join("test.sh");
    assert!(script.exists(), "{} is missing", script.display());
    let stack = Stack::build(name)
        .flags(&["--api-key", &format!("read@elsewhere={OTHER_KEY}")])
        .agent()
        .start()
        .await;
    let port = stack.api(0).port();
    let report = report_file(name);
    let status = Command::new("bash")
        .arg(&script)
        .env("KUBELINE_TEST_ENDPOINT", format!("http://127.0.0.1:{port}"))
        .env("KUBELINE_TEST_API_KEY", ADMIN_KEY)
        .env("KUBELINE_TEST_CLUSTER", crate::support::CLUSTER)
        .env("KUBELINE_TEST_OTHER_KEY", OTHER_KEY)
        .env(
            "KUBELINE_TEST_DEAD_ENDPOINT",
            format!("http://127.0.0.1:{}", free_port()),
        )
        .env("KUBELINE_TEST_BIN", env!("CARGO_BIN_EXE_kubeline"))
        .env("KUBELINE_TEST_REPORT", &report)
        .env_remove("KUBELINE_ENDPOINT")
        .env_remove("KUBELINE_API_KEY")
        .env_remove("KUBELINE_BROKER_URL")
        .status()
        .expect("run bash");
    if let Ok(text) = std::fs::read_to_string(&report) {
        for line in text.lines() {
            println!("{name} report: {line}");
        }
    }
    assert!(status.success(), "{} failed: {status}", script.display());
}

fn report_file(name: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!(
        "kubeline-{name}-report-{}.jsonl",
        std::process::id()
    ));
    let _ = std::fs::remove_file(&path);
    path
}

#[tokio::test(flavor = "multi_thread")]
async fn mcp_clients_python_and_typescript() {
    run_suite("mcp", "tests/clients/mcp").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn python_sdk() {
    run_suite("pysdk", "sdk/python").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn typescript_sdk() {
    run_suite("tssdk", "sdk/typescript").await;
}
