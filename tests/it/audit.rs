//! `kubeline audit verify` against a real broker process on a real Redis: the audit records are
//! written by writers in this test process over the same Redis (as other broker replicas
//! would), the CLI reads them through the broker's `GET /audit` and verifies them locally.
//! Then the log is tampered with in Redis, and the CLI must say so.

use std::process::Output;
use std::sync::Arc;

use crate::support::{ADMIN_KEY, READ_KEY, Redis, Stack};
use chrono::Utc;
use kubeline_broker::audit::{AuditArgs, Auditor};
use kubeline_broker::store::Store;
use kubeline_broker::store::redis::RedisStore;
use kubeline_shared::audit::{AuditAction, AuditEvent, AuditOutcome, VerifyReport};

fn kubeline(args: &[&str]) -> Output {
    crate::support::kubeline()
        .args(args)
        .output()
        .expect("run kubeline")
}

fn verify(url: &str, key: &str, extra: &[&str]) -> (i32, String, String) {
    let out = kubeline(
        &[
            &["audit", "verify", "--broker", url, "--api-key", key][..],
            extra,
        ]
        .concat(),
    );
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn event(i: usize) -> AuditEvent {
    let mut event = AuditEvent::new(AuditAction::Execute, AuditOutcome::Accepted, Utc::now());
    event.cluster_id = Some("bed".to_owned());
    event.command_type = Some("get".to_owned());
    event.args = Some(vec!["pods".to_owned(), format!("p-{i}")]);
    event
}

/// Stream ids of `kl:audit`, oldest first.
async fn stream_ids(redis: &Redis) -> Vec<String> {
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg("kl:audit")
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await
        .unwrap();
    reply.ids.into_iter().map(|e| e.id).collect()
}

async fn redis_cmd(redis: &Redis, cmd: &mut redis::Cmd) {
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: redis::Value = cmd.query_async(&mut conn).await.unwrap();
}

#[tokio::test]
async fn audit_verify_checks_a_brokers_log_and_finds_tampering() {
    let stack = Stack::build("audit").redis().start().await;
    let (api, redis) = (stack.api(0), stack.redis.as_ref().expect("its Redis"));
    let url = format!("http://127.0.0.1:{}", api.port());

    // Two writers ("replicas") over the broker's Redis, interleaving their records.
    let store: Arc<dyn Store> = Arc::new(RedisStore::connect(&redis.url()).await.unwrap());
    let a = Auditor::start(store.clone(), "broker_a", &AuditArgs::default());
    let b = Auditor::start(store.clone(), "broker_b", &AuditArgs::default());
    for i in 0..25 {
        a.record(event(i)).await.unwrap();
        if i % 2 == 0 {
            b.record(event(i)).await.unwrap();
        }
    }

    // Intact, read in pages of 7.
    let (code, stdout, stderr) = verify(&url, ADMIN_KEY, &["--page-size", "7"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("38 records read"), "{stdout}");
    assert!(
        stdout.contains("broker_a  seq 0 to 24, 25 records"),
        "{stdout}"
    );
    assert!(
        stdout.contains("broker_b  seq 0 to 12, 13 records"),
        "{stdout}"
    );
    assert!(stdout.contains("OK:"), "{stdout}");

    // The JSON report, and the same verdict from the broker's own endpoint.
    let (code, stdout, _) = verify(&url, ADMIN_KEY, &["--json"]);
    assert_eq!(code, 0);
    let local: VerifyReport = serde_json::from_str(&stdout).unwrap();
    let (status, body) = api.get("/audit/verify").await.unwrap();
    assert_eq!(status, 200, "{body}");
    let served: VerifyReport = serde_json::from_value(body).unwrap();
    assert_eq!(local, served);

    // Only the newest records: their chains start after seq 0, which is not a failure.
    let (code, stdout, _) = verify(&url, ADMIN_KEY, &["--max-records", "10"]);
    assert_eq!(code, 0, "{stdout}");
    assert!(
        stdout.contains("10 records read (the newest only"),
        "{stdout}"
    );
    assert!(stdout.contains("starts after seq 0"), "{stdout}");

    // A record deleted from the middle.
    let ids = stream_ids(redis).await;
    redis_cmd(redis, redis::cmd("XDEL").arg("kl:audit").arg(&ids[10])).await;
    let (code, stdout, _) = verify(&url, ADMIN_KEY, &[]);
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("FAILED: 1 problem"), "{stdout}");
    assert!(stdout.contains(": gap: "), "{stdout}");

    // A record forged at the end: edited content, and it does not link.
    let mut forged = event(99);
    forged.args = Some(vec!["secrets".to_owned()]);
    let (line, _) = kubeline_broker::audit::seal(
        &forged,
        "broker_a",
        25,
        kubeline_broker::audit::GENESIS_HASH,
        Utc::now(),
    );
    redis_cmd(
        redis,
        redis::cmd("XADD")
            .arg("kl:audit")
            .arg("*")
            .arg("r")
            .arg(line.replace("secrets", "nothing")),
    )
    .await;
    let (code, stdout, _) = verify(&url, ADMIN_KEY, &[]);
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("FAILED: 3 problems"), "{stdout}");
    assert!(stdout.contains("broker_a: edited: seq 25"), "{stdout}");
    assert!(stdout.contains("broker_a: broken_link: seq 25"), "{stdout}");

    // The log cannot be read: a key without admin scope, a broker that is not there, a bad URL.
    let (code, _, stderr) = verify(&url, READ_KEY, &[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("403"), "{stderr}");
    let nobody = format!("http://127.0.0.1:{}", crate::support::free_port());
    let (code, _, stderr) = verify(&nobody, ADMIN_KEY, &[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("cannot reach the broker"), "{stderr}");
    let (code, _, stderr) = verify("127.0.0.1:1", ADMIN_KEY, &[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--broker"), "{stderr}");
}

#[test]
fn audit_verify_usage_errors_exit_2() {
    let out = kubeline(&["audit", "verify", "--api-key", "k"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--broker"));
    let out = kubeline(&[
        "audit",
        "verify",
        "--broker",
        "http://x",
        "--api-key",
        "k",
        "--page-size",
        "0",
    ]);
    assert_eq!(out.status.code(), Some(2));
}
