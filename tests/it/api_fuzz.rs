//! Contract fuzzing: schemathesis 4 against a live broker with an agent linked to the test bed.
//!
//! Every check of schemathesis runs (server errors, status, content type, header and schema
//! conformance, negative data rejection, ignored auth, unsupported methods, the stateful phase
//! that follows the document's links session → execute → result), with the bounded number of
//! examples set in `tests/schemathesis/schemathesis.toml`; the test fails on any failure.
//!
//! schemathesis is installed by `scripts/test` into a virtualenv under
//! `$HOME/.cache/kubeline/` (`KUBELINE_SCHEMATHESIS` names another binary). The cluster is
//! called `production-cluster`, as in the contract's examples, so that the examples phase and the
//! stateful phase reach a connected agent. `KUBELINE_ST_SEED` picks another seed.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::{
    ADMIN_KEY, AGENT_TOKEN, BrokerOpts, eventually, start_agent, start_agent_for, start_broker,
    wait_connected,
};

/// The pinned schemathesis version; `scripts/test` installs the same.
const SCHEMATHESIS_VERSION: &str = "4.32.5";
/// The cluster of the contract's examples.
const CLUSTER: &str = "production-cluster";
const TOKEN: &str = "st-agent-token";
/// Seed of the run, so that CI repeats what a developer saw.
const SEED: &str = "20261201";

fn schemathesis() -> PathBuf {
    if let Some(bin) = std::env::var_os("KUBELINE_SCHEMATHESIS") {
        return bin.into();
    }
    let home = std::env::var_os("HOME").expect("HOME is set");
    PathBuf::from(home).join(format!(
        ".cache/kubeline/schemathesis-{SCHEMATHESIS_VERSION}/bin/schemathesis"
    ))
}

#[tokio::test(flavor = "multi_thread")]
async fn schemathesis_finds_no_failure() {
    let bin = schemathesis();
    assert!(
        bin.exists(),
        "{} is missing: scripts/test installs schemathesis {SCHEMATHESIS_VERSION} there",
        bin.display()
    );
    let opts = BrokerOpts::embedded().with(&["--agent-token", &format!("{CLUSTER}={TOKEN}")]);
    let port = opts.port;
    let (_broker, api) = start_broker("st-broker", opts).await;
    // Every cluster the broker knows has its agent (the harness always configures `bed`), so
    // a 503 "agent not connected" would be a real finding, not the test bed's shape.
    let _agent = start_agent_for("st-agent", port, CLUSTER, TOKEN);
    let _bed_agent = start_agent("st-agent-bed", port, AGENT_TOKEN);
    wait_connected(&api).await;
    eventually("the agent to link", Duration::from_secs(30), || async {
        let (status, body) = api.get(&format!("/clusters/{CLUSTER}/status")).await.ok()?;
        (status == 200 && body["status"] == "connected").then_some(())
    })
    .await;

    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let reports =
        std::env::temp_dir().join(format!("kubeline-schemathesis-{}", std::process::id()));
    let seed = std::env::var("KUBELINE_ST_SEED").unwrap_or_else(|_| SEED.to_owned());
    let started = Instant::now();
    // schemathesis keeps a cache in its working directory: keep it out of the work tree.
    std::fs::create_dir_all(&reports).expect("create the report dir");
    let out = tokio::task::spawn_blocking(move || {
        Command::new(&bin)
            .current_dir(&reports)
            .arg("--config-file")
            .arg(root.join("tests/schemathesis/schemathesis.toml"))
            .arg("--no-color")
            .arg("run")
            .arg(format!("http://127.0.0.1:{port}/openapi.json"))
            .args(["--seed", &seed, "--wait-for-schema", "30"])
            .args(["--report", "junit", "--report-dir"])
            .arg(&reports)
            .env("KUBELINE_ST_KEY", ADMIN_KEY)
            .output()
            .expect("run schemathesis")
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let summary = text
        .lines()
        .filter(|l| l.contains("generated") || l.contains(" in ") && l.starts_with('='))
        .collect::<Vec<_>>()
        .join("\n");
    eprintln!(
        "schemathesis {SCHEMATHESIS_VERSION} took {:.0?}:\n{summary}",
        started.elapsed()
    );
    assert!(
        out.status.success(),
        "schemathesis found failures (exit {:?}):\n{text}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
}
