//! The store's behaviour, checked against both implementations: the embedded store, a real
//! Redis server and a real Redis Cluster.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use kubeline_broker::audit;
use kubeline_broker::ratelimit::{self, Class, ClassLimits, RateLimiter};
use kubeline_broker::store::memory::MemoryStore;
use kubeline_broker::store::redis::RedisStore;
use kubeline_broker::store::{
    ClusterRecord, CredentialKind, CredentialRecord, DeliveryRecord, KEPT_DELIVERIES, LinkChange,
    OutboxEvent, QueuedCommand, SessionRecord, Standing, Store, StoreEvent, WebhookRecord,
    delivery_id, parse_audit_cursor,
};
use kubeline_shared::api::{CommandResult, ResultStatus, Scope, SessionStatus};
use kubeline_shared::audit::{AuditAction, AuditEvent, AuditOutcome};
use kubeline_shared::webhooks::{DeliveryAttempt, DeliveryStatus, EventType};
use tokio::sync::mpsc;

const HOUR: Duration = Duration::from_secs(3600);

fn session(id: &str, cluster: &str) -> SessionRecord {
    let now = Utc::now();
    SessionRecord {
        session_id: id.to_owned(),
        cluster_id: cluster.to_owned(),
        created_at: now,
        expires_at: now + chrono::Duration::hours(1),
        closed_at: None,
        last_activity: now,
        commands_executed: 0,
        metadata: Some(r#"{"user":"suite"}"#.to_owned()),
        owner: Some("key_suite".to_owned()),
    }
}

fn command(result_id: &str, cluster: &str, session: &str) -> QueuedCommand {
    let now = Utc::now();
    QueuedCommand {
        entry_id: String::new(),
        result_id: result_id.to_owned(),
        session_id: session.to_owned(),
        cluster_id: cluster.to_owned(),
        command_type: "get".to_owned(),
        args: vec![
            "pods".to_owned(),
            "-n".to_owned(),
            "credit-service".to_owned(),
        ],
        executed_at: now,
        deadline: now + chrono::Duration::seconds(30),
        max_output_bytes: 1024,
        correlation_id: "corr-suite".to_owned(),
        reply_to: "broker-a".to_owned(),
        trace: Some(kubeline_shared::trace::TraceContext {
            traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_owned(),
            tracestate: Some("vendor=1".to_owned()),
        }),
        stream: false,
    }
}

fn result(cmd: &QueuedCommand, status: ResultStatus) -> CommandResult {
    CommandResult {
        result_id: cmd.result_id.clone(),
        session_id: cmd.session_id.clone(),
        cluster_id: cmd.cluster_id.clone(),
        status,
        output: format!("{status:?}"),
        error: None,
        exit_code: (status != ResultStatus::Pending).then_some(0),
        execution_time_ms: 1,
        executed_at: cmd.executed_at,
        correlation_id: cmd.correlation_id.clone(),
        truncated: None,
        window: None,
    }
}

/// Results as the API shows them (timestamps to the second, as the contract prints them).
fn json(result: &CommandResult) -> serde_json::Value {
    serde_json::to_value(result).unwrap()
}

async fn sessions(store: Arc<dyn Store>) {
    let s = session("sess_1", "c1");
    store.create_session(&s, HOUR).await.unwrap();
    let back = store.get_session("sess_1").await.unwrap().unwrap();
    // Stores keep millisecond precision.
    assert_eq!(
        back.created_at.timestamp_millis(),
        s.created_at.timestamp_millis()
    );
    assert_eq!(back.metadata, s.metadata);
    assert_eq!(back.status(Utc::now()), SessionStatus::Active);
    assert!(store.get_session("sess_none").await.unwrap().is_none());

    let at = Utc::now();
    let closed = store.close_session("sess_1", at).await.unwrap().unwrap();
    assert_eq!(
        closed.closed_at.unwrap().timestamp_millis(),
        at.timestamp_millis()
    );
    let again = store
        .close_session("sess_1", at + chrono::Duration::seconds(5))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        again.closed_at, closed.closed_at,
        "the first close time is kept"
    );
    assert!(
        store
            .close_session("sess_none", at)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store.get_session("sess_none").await.unwrap().is_none(),
        "closing an unknown session creates nothing"
    );

    store
        .create_session(&session("sess_2", "c2"), HOUR)
        .await
        .unwrap();
    let ids: Vec<String> = store
        .list_sessions()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.session_id)
        .collect();
    assert!(
        ids.contains(&"sess_1".to_owned()) && ids.contains(&"sess_2".to_owned()),
        "{ids:?}"
    );
}

async fn queue_and_results(store: Arc<dyn Store>) {
    store
        .create_session(&session("sess_q", "cq"), HOUR)
        .await
        .unwrap();
    let cmd = command("res_q1", "cq", "sess_q");
    let entry = store
        .enqueue(&cmd, &result(&cmd, ResultStatus::Pending), HOUR, false)
        .await
        .unwrap();
    assert_eq!(store.queue_depth("cq").await.unwrap(), 1);
    assert_eq!(
        store.standing("cq", &entry, "res_q1").await.unwrap(),
        Standing::Queued
    );
    let pending = store.get_result("res_q1").await.unwrap().unwrap();
    assert_eq!(pending.status, ResultStatus::Pending);
    let s = store.get_session("sess_q").await.unwrap().unwrap();
    assert_eq!(
        s.commands_executed, 1,
        "enqueue counts the command against its session"
    );

    let taken = store.take("cq", "broker-a", 10).await.unwrap();
    assert_eq!(taken.len(), 1);
    let got = &taken[0];
    assert_eq!(got.entry_id, entry, "enqueue names the entry it made");
    assert_eq!(
        store.standing("cq", &entry, "res_q1").await.unwrap(),
        Standing::Queued,
        "taken and running is still queued"
    );
    assert_eq!(
        (got.result_id.as_str(), &got.args, got.max_output_bytes),
        ("res_q1", &cmd.args, 1024)
    );
    assert_eq!(
        got.deadline.timestamp_millis(),
        cmd.deadline.timestamp_millis()
    );
    assert_eq!(
        got.trace, cmd.trace,
        "the trace context travels with the command"
    );
    assert!(
        store.take("cq", "broker-a", 10).await.unwrap().is_empty(),
        "taken once"
    );
    assert_eq!(
        store.queue_depth("cq").await.unwrap(),
        1,
        "in flight still counts"
    );

    // Another replica may take it over only once it has been abandoned.
    let short = Duration::from_millis(200);
    store
        .keep_alive("cq", "broker-a", std::slice::from_ref(&got.entry_id))
        .await
        .unwrap();
    assert!(
        store
            .reclaim("cq", "broker-b", 10, short)
            .await
            .unwrap()
            .is_empty()
    );
    tokio::time::sleep(short + Duration::from_millis(50)).await;
    let reclaimed = store.reclaim("cq", "broker-b", 10, short).await.unwrap();
    assert_eq!(reclaimed.len(), 1);
    assert_eq!(reclaimed[0].result_id, "res_q1");

    // The first final result wins; the command leaves the queue.
    let done = result(got, ResultStatus::Completed);
    assert!(
        store
            .finish_result(&done, HOUR, Some(&got.entry_id))
            .await
            .unwrap()
    );
    assert_eq!(store.queue_depth("cq").await.unwrap(), 0);
    let late = result(got, ResultStatus::Timeout);
    assert!(!store.finish_result(&late, HOUR, None).await.unwrap());
    assert_eq!(
        json(&store.get_result("res_q1").await.unwrap().unwrap()),
        json(&done)
    );
    assert!(store.get_result("res_none").await.unwrap().is_none());
    match store.standing("cq", &entry, "res_q1").await.unwrap() {
        Standing::Finished(result) => assert_eq!(json(&result), json(&done)),
        other => panic!("a finished command stands as {other:?}"),
    }

    // An entry gone with no final result was lost (as a failover that did not carry it over
    // would lose it): its caller queues it again.
    let cmd = command("res_q2", "cq", "sess_q");
    let entry = store
        .enqueue(&cmd, &result(&cmd, ResultStatus::Pending), HOUR, false)
        .await
        .unwrap();
    let taken = store.take("cq", "broker-a", 10).await.unwrap();
    assert_eq!(taken.len(), 1);
    store.settle("cq", &entry).await.unwrap();
    assert_eq!(
        store.standing("cq", &entry, "res_q2").await.unwrap(),
        Standing::Lost
    );
    // Queued again: a new entry, the same command; its session counted it once.
    let again = store.requeue(&cmd, false).await.unwrap();
    assert_ne!(again, entry);
    assert_eq!(
        store.standing("cq", &again, "res_q2").await.unwrap(),
        Standing::Queued
    );
    let taken = store.take("cq", "broker-a", 10).await.unwrap();
    assert_eq!(
        (
            taken.len(),
            taken[0].result_id.as_str(),
            taken[0].entry_id.as_str()
        ),
        (1, "res_q2", again.as_str())
    );
    let s = store.get_session("sess_q").await.unwrap().unwrap();
    assert_eq!(s.commands_executed, 2, "res_q1 and res_q2, once each");
}

async fn presence(store: Arc<dyn Store>) {
    let ttl = Duration::from_millis(400);
    let record = ClusterRecord {
        cluster_id: "cp".to_owned(),
        broker_id: Some("broker-a".to_owned()),
        agent_version: Some("0.1.0".to_owned()),
        kubernetes_version: Some("v1.36.3".to_owned()),
        last_seen: Some(Utc::now()),
        labels: [("env", "prod"), ("example.com/tier", "")]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .into(),
    };
    store.link_cluster(&record, ttl).await.unwrap();
    let got = store.get_cluster("cp").await.unwrap().unwrap();
    assert_eq!(got.broker_id.as_deref(), Some("broker-a"));
    assert_eq!(got.kubernetes_version.as_deref(), Some("v1.36.3"));
    assert_eq!(got.labels, record.labels);

    // Another replica can neither refresh nor drop a claim it does not hold.
    store
        .touch_cluster("cp", "broker-b", Utc::now(), HOUR)
        .await
        .unwrap();
    store
        .unlink_cluster("cp", "broker-b", Utc::now())
        .await
        .unwrap();
    assert_eq!(
        store
            .get_cluster("cp")
            .await
            .unwrap()
            .unwrap()
            .broker_id
            .as_deref(),
        Some("broker-a")
    );

    // An unrefreshed claim lapses; the record (last_seen, labels) stays.
    tokio::time::sleep(ttl + Duration::from_millis(200)).await;
    let lapsed = store.get_cluster("cp").await.unwrap().unwrap();
    assert!(lapsed.broker_id.is_none(), "{lapsed:?}");
    assert!(lapsed.last_seen.is_some());
    assert_eq!(lapsed.labels, record.labels);

    store.link_cluster(&record, HOUR).await.unwrap();
    let seen = Utc::now();
    store.unlink_cluster("cp", "broker-a", seen).await.unwrap();
    let gone = store.get_cluster("cp").await.unwrap().unwrap();
    assert!(gone.broker_id.is_none());
    assert_eq!(
        gone.last_seen.unwrap().timestamp_millis(),
        seen.timestamp_millis()
    );
    assert!(
        store
            .list_clusters()
            .await
            .unwrap()
            .iter()
            .any(|c| c.cluster_id == "cp" && c.labels == record.labels)
    );
    assert!(store.get_cluster("never").await.unwrap().is_none());

    // An agent that links again with other labels (or none) replaces them.
    let relabelled = ClusterRecord {
        labels: Default::default(),
        ..record.clone()
    };
    store.link_cluster(&relabelled, HOUR).await.unwrap();
    let got = store.get_cluster("cp").await.unwrap().unwrap();
    assert!(got.labels.is_empty(), "{got:?}");
}

async fn events(store: Arc<dyn Store>) {
    let (tx, mut rx) = mpsc::channel(16);
    store.subscribe("broker-a", tx).await.unwrap();
    store.watch_cluster("ce").await.unwrap();
    let cmd = command("res_e1", "ce", "sess_e");
    // The subscription may take a moment to be established: enqueue until a bell rings.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        assert!(
            std::time::Instant::now() < deadline,
            "no bell for a queued command"
        );
        store
            .enqueue(&cmd, &result(&cmd, ResultStatus::Pending), HOUR, true)
            .await
            .unwrap();
        if let Ok(Some(StoreEvent::Queued(c))) =
            tokio::time::timeout(Duration::from_millis(200), rx.recv()).await
        {
            assert_eq!(c, "ce");
            break;
        }
    }
    let done = result(&cmd, ResultStatus::Completed);
    store.deliver_result("broker-a", &done).await.unwrap();
    let delivered = loop {
        match tokio::time::timeout(Duration::from_secs(10), rx.recv()).await {
            Ok(Some(StoreEvent::Result(r))) => break *r,
            Ok(Some(StoreEvent::Queued(_))) => continue,
            other => panic!("no delivered result: {other:?}"),
        }
    };
    assert_eq!(json(&delivered), json(&done));
}

async fn credentials(store: Arc<dyn Store>) {
    let now = Utc::now();
    let key = CredentialRecord {
        id: "key_1".into(),
        kind: CredentialKind::ApiKey,
        hash: "aa".repeat(32),
        name: Some("ci".into()),
        scope: Some(Scope::Read),
        clusters: vec!["prod-*".into(), "!prod-x".into()],
        created_at: now - chrono::Duration::seconds(10),
        expires_at: Some(now + chrono::Duration::hours(1)),
        revoked_at: None,
        last_used_at: None,
        bootstrap: false,
        rate_limits: None,
    };
    let token = CredentialRecord {
        id: "atk_1".into(),
        kind: CredentialKind::AgentToken,
        hash: "bb".repeat(32),
        name: None,
        scope: None,
        clusters: vec!["c1".into()],
        created_at: now,
        expires_at: None,
        revoked_at: None,
        last_used_at: None,
        bootstrap: true,
        rate_limits: None,
    };
    assert!(store.put_credential(&token, true).await.unwrap());
    assert!(store.put_credential(&key, true).await.unwrap());
    let mut other = key.clone();
    other.name = Some("changed".into());
    assert!(
        !store.put_credential(&other, true).await.unwrap(),
        "only if new"
    );
    assert_eq!(
        store.credential_by_hash(&key.hash).await.unwrap(),
        Some(key.clone())
    );
    assert_eq!(
        store.credential_by_hash(&"cc".repeat(32)).await.unwrap(),
        None
    );
    assert_eq!(
        store.get_credential("atk_1").await.unwrap(),
        Some(token.clone())
    );
    assert_eq!(store.get_credential("nope").await.unwrap(), None);
    let ids: Vec<String> = store
        .list_credentials()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(ids, ["key_1", "atk_1"], "oldest first");
    // Revocation replaces the record; last use is kept apart and merged on read.
    let mut revoked = key.clone();
    revoked.revoked_at = Some(now);
    assert!(store.put_credential(&revoked, false).await.unwrap());
    let used = now + chrono::Duration::seconds(5);
    store.touch_credential("key_1", used).await.unwrap();
    let read = store.get_credential("key_1").await.unwrap().unwrap();
    assert_eq!(
        read.revoked_at.map(|t| t.timestamp_millis()),
        Some(now.timestamp_millis())
    );
    assert_eq!(
        read.last_used_at.map(|t| t.timestamp_millis()),
        Some(used.timestamp_millis())
    );
    let listed = store.list_credentials().await.unwrap();
    assert_eq!(
        listed[0].last_used_at.map(|t| t.timestamp_millis()),
        Some(used.timestamp_millis())
    );
    // Every replica hears of a change.
    let (tx, mut rx) = mpsc::channel(16);
    store.subscribe("broker-c", tx).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        assert!(
            std::time::Instant::now() < deadline,
            "no credential change heard"
        );
        store.announce_credential_change("key_1").await.unwrap();
        if let Ok(Some(StoreEvent::CredentialChanged(id))) =
            tokio::time::timeout(Duration::from_millis(200), rx.recv()).await
        {
            assert_eq!(id, "key_1");
            break;
        }
    }
}

async fn rate_limits(store: Arc<dyn Store>) {
    let minute = Duration::from_secs(60);
    let key = "kl:rl:execute:suite";
    let before = ratelimit::now_ms() / 1000;
    for remaining in (0..5).rev() {
        let d = store.rate_limit(key, 5, minute).await.unwrap();
        assert!(d.allowed, "{d:?}");
        assert_eq!(
            (d.limit, d.remaining, d.retry_after_secs),
            (5, remaining, 0)
        );
    }
    let refused = store.rate_limit(key, 5, minute).await.unwrap();
    let after = ratelimit::now_ms() / 1000;
    assert!(!refused.allowed);
    assert_eq!(refused.remaining, 0);
    // T is 12 s; the bucket is full again a minute after the burst.
    assert!((1..=12).contains(&refused.retry_after_secs), "{refused:?}");
    assert!(
        (before + 59..=after + 61).contains(&refused.reset_epoch_secs),
        "{refused:?} between {before} and {after}"
    );
    let again = store.rate_limit(key, 5, minute).await.unwrap();
    assert_eq!(
        again.reset_epoch_secs, refused.reset_epoch_secs,
        "a refusal uses nothing"
    );
    let other = store
        .rate_limit("kl:rl:execute:other", 5, minute)
        .await
        .unwrap();
    assert_eq!(
        (other.allowed, other.remaining),
        (true, 4),
        "buckets are apart"
    );

    // Two per second: T is 500 ms, so a refused bucket conforms again within it.
    let fast = "kl:rl:standard:suite";
    let second = Duration::from_secs(1);
    assert!(store.rate_limit(fast, 2, second).await.unwrap().allowed);
    assert!(store.rate_limit(fast, 2, second).await.unwrap().allowed);
    let refused = store.rate_limit(fast, 2, second).await.unwrap();
    if !refused.allowed {
        assert_eq!(refused.retry_after_secs, 1);
    }
    crate::support::eventually("the bucket to refill", Duration::from_secs(5), || {
        let store = store.clone();
        async move {
            store
                .rate_limit(fast, 2, second)
                .await
                .unwrap()
                .allowed
                .then_some(())
        }
    })
    .await;
}

/// `n` records of `chain` from seq `from`, sealed as the broker seals them.
fn audit_records(chain: &str, from: u64, n: u64, prev: &str) -> Vec<String> {
    let mut prev = prev.to_owned();
    (from..from + n)
        .map(|seq| {
            let mut event =
                AuditEvent::new(AuditAction::Execute, AuditOutcome::Accepted, Utc::now());
            event.cluster_id = Some("c1".to_owned());
            event.args = Some(vec!["pods".to_owned(), format!("p-{seq}")]);
            let (line, hash) = audit::seal(&event, chain, seq, &prev, Utc::now());
            prev = hash;
            line
        })
        .collect()
}

async fn audit_log(store: Arc<dyn Store>) {
    assert!(store.read_audit(None, 10).await.unwrap().is_empty());
    assert!(store.audit_head("broker_a").await.unwrap().is_none());
    let a = audit_records("broker_a", 0, 3, audit::GENESIS_HASH);
    let b = audit_records("broker_b", 0, 2, audit::GENESIS_HASH);
    store.append_audit("broker_a", &a[..2], 1000).await.unwrap();
    store.append_audit("broker_b", &b, 1000).await.unwrap();
    store.append_audit("broker_a", &a[2..], 1000).await.unwrap();
    store.append_audit("broker_a", &[], 1000).await.unwrap();
    assert_eq!(
        store.audit_head("broker_a").await.unwrap().as_ref(),
        Some(&a[2])
    );
    assert_eq!(
        store.audit_head("broker_b").await.unwrap().as_ref(),
        Some(&b[1])
    );

    // Newest first, in pages that go on from a cursor.
    let all = store.read_audit(None, 10).await.unwrap();
    let json: Vec<&String> = all.iter().map(|(_, j)| j).collect();
    assert_eq!(json, [&a[2], &b[1], &b[0], &a[1], &a[0]]);
    let cursors: Vec<(u64, u64)> = all
        .iter()
        .map(|(c, _)| parse_audit_cursor(c).unwrap_or_else(|| panic!("cursor {c}")))
        .collect();
    assert!(cursors.windows(2).all(|w| w[0] > w[1]), "{cursors:?}");
    let first = store.read_audit(None, 2).await.unwrap();
    assert_eq!(first, all[..2]);
    let rest = store.read_audit(Some(&first[1].0), 10).await.unwrap();
    assert_eq!(rest, all[2..]);
    assert!(
        store
            .read_audit(Some(&all[4].0), 10)
            .await
            .unwrap()
            .is_empty()
    );

    // Read back oldest first, the chains verify.
    let report = audit::verify(
        all.iter()
            .rev()
            .map(|(c, j)| audit::StoredRecord::from_json(Some(c.clone()), j)),
    );
    assert!(report.ok, "{report:?}");
    assert_eq!(report.chains.len(), 2);

    // The log is trimmed from its oldest end to about `max_len` (Redis trims whole stream
    // nodes: at least `max_len` stay).
    let more = audit_records("broker_c", 0, 300, audit::GENESIS_HASH);
    for batch in more.chunks(100) {
        store.append_audit("broker_c", batch, 10).await.unwrap();
    }
    let kept = store.read_audit(None, 1000).await.unwrap();
    assert!((10..300).contains(&kept.len()), "{} kept", kept.len());
    let newest: Vec<&String> = kept.iter().take(10).map(|(_, j)| j).collect();
    let expected: Vec<&String> = more.iter().rev().take(10).collect();
    assert_eq!(newest, expected);
}

/// The writer over a real store: concurrent records end up as one gapless chain.
async fn auditor(store: Arc<dyn Store>) {
    let auditor = audit::Auditor::start(store.clone(), "broker_w", &audit::AuditArgs::default());
    let calls: Vec<_> = (0..50)
        .map(|i| {
            let auditor = auditor.clone();
            tokio::spawn(async move {
                let mut event = AuditEvent::new(
                    AuditAction::SessionCreate,
                    AuditOutcome::Completed,
                    Utc::now(),
                );
                event.session_id = Some(format!("sess_{i}"));
                auditor.record(event).await
            })
        })
        .collect();
    for call in calls {
        call.await.unwrap().unwrap();
    }
    let mut all = store.read_audit(None, 100).await.unwrap();
    all.reverse();
    let report = audit::verify(
        all.iter()
            .map(|(c, j)| audit::StoredRecord::from_json(Some(c.clone()), j)),
    );
    assert!(report.ok, "{report:?}");
    assert_eq!(
        (report.chains[0].first_seq, report.chains[0].last_seq),
        (0, 49)
    );
}

async fn idempotency_keys(store: Arc<dyn Store>) {
    let ttl = Duration::from_secs(60);
    assert_eq!(
        store
            .claim_idempotency_key("k1:a", "res_1 f", ttl)
            .await
            .unwrap(),
        None,
        "a fresh key is taken"
    );
    assert_eq!(
        store
            .claim_idempotency_key("k1:a", "res_2 f", ttl)
            .await
            .unwrap(),
        Some("res_1 f".to_owned()),
        "a taken key answers what it holds and is not changed"
    );
    // Another credential's key of the same text is another key.
    assert_eq!(
        store
            .claim_idempotency_key("k2:a", "res_3 f", ttl)
            .await
            .unwrap(),
        None
    );
    // Release only gives back a key that still holds the releaser's value.
    store
        .release_idempotency_key("k1:a", "res_2 f")
        .await
        .unwrap();
    assert_eq!(
        store
            .claim_idempotency_key("k1:a", "res_4 f", ttl)
            .await
            .unwrap(),
        Some("res_1 f".to_owned())
    );
    store
        .release_idempotency_key("k1:a", "res_1 f")
        .await
        .unwrap();
    assert_eq!(
        store
            .claim_idempotency_key("k1:a", "res_5 f", ttl)
            .await
            .unwrap(),
        None
    );
    // Swap replaces only the value it was told the key holds.
    assert!(
        !store
            .swap_idempotency_key("k1:a", "res_x f", "res_8 f", ttl)
            .await
            .unwrap()
    );
    assert!(
        store
            .swap_idempotency_key("k1:a", "res_5 f", "res_8 f", ttl)
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .claim_idempotency_key("k1:a", "res_9 f", ttl)
            .await
            .unwrap(),
        Some("res_8 f".to_owned())
    );
    // Keys end with their lifetime.
    let short = Duration::from_millis(50);
    assert_eq!(
        store
            .claim_idempotency_key("k1:b", "res_6 f", short)
            .await
            .unwrap(),
        None
    );
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert_eq!(
        store
            .claim_idempotency_key("k1:b", "res_7 f", ttl)
            .await
            .unwrap(),
        None
    );
}

async fn orphans(store: Arc<dyn Store>) {
    store
        .create_session(&session("sess_o", "co"), HOUR)
        .await
        .unwrap();
    for id in ["res_o1", "res_o2"] {
        let cmd = command(id, "co", "sess_o");
        store
            .enqueue(&cmd, &result(&cmd, ResultStatus::Pending), HOUR, false)
            .await
            .unwrap();
    }
    store.replica_alive("b1", HOUR).await.unwrap();
    store.replica_alive("b2", HOUR).await.unwrap();
    assert_eq!(store.take("co", "b1", 10).await.unwrap().len(), 2);
    assert!(
        store
            .reclaim_orphans("co", "b2", 10)
            .await
            .unwrap()
            .is_empty(),
        "an alive replica keeps what it took"
    );
    store.replica_gone("b1").await.unwrap();
    let mut ids: Vec<String> = store
        .reclaim_orphans("co", "b2", 10)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.result_id)
        .collect();
    ids.sort();
    assert_eq!(
        ids,
        ["res_o1", "res_o2"],
        "a gone replica's commands are taken over at once"
    );
    assert!(
        store
            .reclaim_orphans("co", "b2", 10)
            .await
            .unwrap()
            .is_empty(),
        "taken over once"
    );
    // A replica that never said it was alive (killed before, or an older version) is gone.
    let cmd = command("res_o3", "co", "sess_o");
    store
        .enqueue(&cmd, &result(&cmd, ResultStatus::Pending), HOUR, false)
        .await
        .unwrap();
    assert_eq!(store.take("co", "b9", 10).await.unwrap().len(), 1);
    let taken = store.reclaim_orphans("co", "b2", 10).await.unwrap();
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0].result_id, "res_o3");
    assert_eq!(taken[0].args, cmd.args);
    // No queue at all: nothing, no error.
    assert!(
        store
            .reclaim_orphans("nowhere", "b2", 10)
            .await
            .unwrap()
            .is_empty()
    );
}

// === link announcements, session expiries, the webhook outbox ===

fn linked(cluster: &str, broker: &str) -> ClusterRecord {
    ClusterRecord {
        cluster_id: cluster.to_owned(),
        broker_id: Some(broker.to_owned()),
        agent_version: Some("0.1.0".to_owned()),
        kubernetes_version: None,
        last_seen: Some(Utc::now()),
        labels: Default::default(),
    }
}

/// Connected and disconnected alternate per cluster, each told to one caller: a live claim
/// replaced is no change, only the holder's unlink disconnects, a lapsed claim is found once.
async fn link_announcements(store: Arc<dyn Store>) {
    let short = Duration::from_millis(300);
    let a = linked("cl", "broker-a");
    let b = linked("cl", "broker-b");
    assert_eq!(
        store.link_cluster(&a, HOUR).await.unwrap(),
        LinkChange::Connected
    );
    // A reconnect through another replica while the old claim is live: no announcement.
    assert_eq!(
        store.link_cluster(&b, HOUR).await.unwrap(),
        LinkChange::Continued
    );
    // The old replica's link ends later: it no longer holds the claim.
    assert!(
        !store
            .unlink_cluster("cl", "broker-a", Utc::now())
            .await
            .unwrap()
    );
    assert!(
        store
            .unlink_cluster("cl", "broker-b", Utc::now())
            .await
            .unwrap()
    );
    assert!(
        !store
            .unlink_cluster("cl", "broker-b", Utc::now())
            .await
            .unwrap()
    );
    assert!(store.lapsed_links(100).await.unwrap().is_empty());

    // A claim whose replica died lapses; one caller of `lapsed_links` hears of it, once.
    assert_eq!(
        store.link_cluster(&a, short).await.unwrap(),
        LinkChange::Connected
    );
    assert!(
        store.lapsed_links(100).await.unwrap().is_empty(),
        "still live"
    );
    let lapsed = crate::support::eventually("the claim to lapse", Duration::from_secs(10), || {
        let store = store.clone();
        async move {
            let lapsed = store.lapsed_links(100).await.unwrap();
            (!lapsed.is_empty()).then_some(lapsed)
        }
    })
    .await;
    assert_eq!(lapsed, ["cl"]);
    assert!(store.lapsed_links(100).await.unwrap().is_empty());
    // Its replica was only cut off from the store: its refresh takes the claim again, and
    // that is a connect to announce.
    assert!(
        store
            .touch_cluster("cl", "broker-a", Utc::now(), HOUR)
            .await
            .unwrap()
    );
    assert!(
        !store
            .touch_cluster("cl", "broker-a", Utc::now(), HOUR)
            .await
            .unwrap()
    );
    assert!(
        store
            .unlink_cluster("cl", "broker-a", Utc::now())
            .await
            .unwrap()
    );

    // A claim that lapsed unannounced and is then taken by a new link: disconnected, then
    // connected, both told to the new holder.
    assert_eq!(
        store.link_cluster(&a, short).await.unwrap(),
        LinkChange::Connected
    );
    crate::support::eventually("the claim to lapse", Duration::from_secs(10), || {
        let store = store.clone();
        async move {
            let c = store.get_cluster("cl").await.unwrap().unwrap();
            c.broker_id.is_none().then_some(())
        }
    })
    .await;
    assert_eq!(
        store.link_cluster(&b, HOUR).await.unwrap(),
        LinkChange::Relinked
    );
    assert!(store.lapsed_links(100).await.unwrap().is_empty());
    assert!(
        store
            .unlink_cluster("cl", "broker-b", Utc::now())
            .await
            .unwrap()
    );
}

/// Sessions past their expiry are found until they are forgotten; unexpired ones are not.
async fn session_expiries(store: Arc<dyn Store>) {
    let now = Utc::now();
    let mut old = session("sess_x1", "c1");
    old.expires_at = now - chrono::Duration::seconds(5);
    let mut older = session("sess_x0", "c1");
    older.expires_at = now - chrono::Duration::seconds(10);
    let young = session("sess_x2", "c1");
    for s in [&old, &older, &young] {
        store.create_session(s, HOUR).await.unwrap();
    }
    let due = store.due_session_expiries(now, 10).await.unwrap();
    let ids: Vec<&str> = due.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(
        ids,
        ["sess_x0", "sess_x1"],
        "soonest first, the young one not yet"
    );
    assert_eq!(due[1].1.as_ref().unwrap().cluster_id, "c1");
    assert_eq!(store.due_session_expiries(now, 1).await.unwrap().len(), 1);
    store
        .forget_session_expiries(&["sess_x0".to_owned()])
        .await
        .unwrap();
    let due = store.due_session_expiries(now, 10).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].0, "sess_x1");
    let later = now + chrono::Duration::hours(2);
    assert_eq!(
        store.due_session_expiries(later, 10).await.unwrap().len(),
        2
    );
}

fn endpoint(id: &str, events: &[EventType]) -> WebhookRecord {
    WebhookRecord {
        id: id.to_owned(),
        url: "http://127.0.0.1:9/hook".to_owned(),
        events: events.to_vec(),
        description: Some("suite".to_owned()),
        secret: "whsec_c2VjcmV0".to_owned(),
        created_at: Utc::now(),
        created_by: Some("key_suite".to_owned()),
        disabled_at: None,
        disabled_reason: None,
        pending: 0,
        dropped: 0,
    }
}

fn outbox_event(hex: &str, event_type: EventType) -> OutboxEvent {
    let now = Utc::now();
    OutboxEvent {
        id: format!("evt_{hex}"),
        event_type,
        body: format!(
            r#"{{"type":"{}","timestamp":"x","data":{{}}}}"#,
            event_type.as_str()
        ),
        created_at: now,
        give_up_at: now + chrono::Duration::hours(24),
    }
}

/// A delivery after one failed attempt, due again at `next`.
fn retried(mut d: DeliveryRecord, next: chrono::DateTime<Utc>) -> DeliveryRecord {
    d.attempts += 1;
    d.last_status_code = Some(503);
    d.last_error = Some("HTTP 503 Service Unavailable".to_owned());
    d.history.push(DeliveryAttempt {
        attempt: d.attempts,
        at: Utc::now(),
        status_code: Some(503),
        error: d.last_error.clone(),
        duration_ms: 3,
    });
    d.next_attempt_at = Some(next);
    d
}

async fn webhook_endpoints(store: Arc<dyn Store>) {
    let a = endpoint(
        "wh_aa",
        &[EventType::ClusterConnected, EventType::CommandFailed],
    );
    assert!(store.put_webhook(&a, 2).await.unwrap());
    let b = endpoint("wh_bb", &[EventType::SessionExpired]);
    assert!(store.put_webhook(&b, 2).await.unwrap());
    assert!(
        !store.put_webhook(&endpoint("wh_cc", &[]), 2).await.unwrap(),
        "the limit holds"
    );
    let got = store.get_webhook("wh_aa").await.unwrap().unwrap();
    assert_eq!(got.secret, a.secret, "the broker keeps the secret to sign");
    assert_eq!(got.events, a.events);
    assert_eq!(
        got.created_at.timestamp_millis(),
        a.created_at.timestamp_millis()
    );
    let ids: Vec<String> = store
        .list_webhooks()
        .await
        .unwrap()
        .into_iter()
        .map(|w| w.id)
        .collect();
    assert_eq!(ids, ["wh_aa", "wh_bb"]);
    assert!(store.get_webhook("wh_cc").await.unwrap().is_none());

    // Disabled: kept, marked, and no event is queued for it any more.
    let at = Utc::now();
    assert!(store.disable_webhook("wh_aa", at, "410").await.unwrap());
    let off = store.get_webhook("wh_aa").await.unwrap().unwrap();
    assert_eq!(
        off.disabled_at.unwrap().timestamp_millis(),
        at.timestamp_millis()
    );
    assert_eq!(off.disabled_reason.as_deref(), Some("410"));
    let outcome = store
        .emit_event(&outbox_event("e0", EventType::ClusterConnected), 10)
        .await
        .unwrap();
    assert_eq!(outcome.queued, 0);
    assert!(!store.disable_webhook("wh_none", at, "410").await.unwrap());

    let deleted = store.delete_webhook("wh_aa").await.unwrap().unwrap();
    assert_eq!(deleted.id, "wh_aa");
    assert!(store.delete_webhook("wh_aa").await.unwrap().is_none());
    assert!(store.put_webhook(&endpoint("wh_cc", &[]), 2).await.unwrap());
}

/// An event becomes one delivery per subscribed endpoint, stored before any attempt; one
/// claimer at a time holds each (a lease), and a lease that runs out gives it back.
async fn outbox(store: Arc<dyn Store>) {
    let a = endpoint(
        "wh_0a",
        &[EventType::ClusterConnected, EventType::CommandFailed],
    );
    let b = endpoint("wh_0b", &[EventType::CommandFailed]);
    let c = endpoint("wh_0c", &[EventType::SessionExpired]);
    for e in [&a, &b, &c] {
        assert!(store.put_webhook(e, 10).await.unwrap());
    }
    let event = outbox_event("11", EventType::CommandFailed);
    let outcome = store.emit_event(&event, 10).await.unwrap();
    assert_eq!((outcome.queued, outcome.dropped), (2, 0));
    // The same event again (another replica found it too): nothing more.
    assert_eq!(store.emit_event(&event, 10).await.unwrap().queued, 0);
    assert_eq!(
        store.get_webhook("wh_0a").await.unwrap().unwrap().pending,
        1
    );

    let now = Utc::now();
    let lease = Duration::from_secs(30);
    let mut first = store.claim_deliveries("t1", now, lease, 10).await.unwrap();
    first.sort_by(|x, y| x.endpoint_id.cmp(&y.endpoint_id));
    let ids: Vec<&str> = first.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            delivery_id("evt_11", "wh_0a"),
            delivery_id("evt_11", "wh_0b")
        ]
    );
    assert_eq!(first[0].id, "msg_11_0a");
    assert_eq!(first[0].body, event.body);
    assert_eq!(first[0].status, DeliveryStatus::Pending);
    assert_eq!(first[0].event_type, EventType::CommandFailed);
    // Leased: nobody else gets them while the lease runs.
    assert!(
        store
            .claim_deliveries("t2", now, lease, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // The claimer died: once the lease is over they are due again, for someone else.
    let after = now + chrono::Duration::seconds(31);
    let again = store
        .claim_deliveries("t3", after, lease, 10)
        .await
        .unwrap();
    assert_eq!(again.len(), 2);
    // The dead claimer's late answer is not recorded over the new lease.
    assert!(
        !store
            .finish_attempt(&retried(first[0].clone(), after), "t1")
            .await
            .unwrap()
    );

    // A failed attempt: pending until its next attempt.
    let (da, db) = {
        let mut again = again;
        again.sort_by(|x, y| x.endpoint_id.cmp(&y.endpoint_id));
        (again[0].clone(), again[1].clone())
    };
    let next = after + chrono::Duration::seconds(10);
    let da = retried(da, next);
    assert!(store.finish_attempt(&da, "t3").await.unwrap());
    // Due again at its next attempt, while the other one's lease still runs.
    let retry = store
        .claim_deliveries("t4", after + chrono::Duration::seconds(20), lease, 10)
        .await
        .unwrap();
    assert_eq!(retry.len(), 1);
    assert_eq!(
        (retry[0].id.as_str(), retry[0].attempts),
        (da.id.as_str(), 1)
    );
    assert_eq!(
        retry[0].next_attempt_at.unwrap().timestamp_millis(),
        next.timestamp_millis()
    );
    // Delivered: leaves the pending set for the log.
    let mut db = db;
    db.attempts = 1;
    db.status = DeliveryStatus::Delivered;
    db.last_status_code = Some(200);
    db.next_attempt_at = None;
    assert!(store.finish_attempt(&db, "t3").await.unwrap());
    assert_eq!(
        store.get_webhook("wh_0b").await.unwrap().unwrap().pending,
        0
    );
    let log = store.list_deliveries("wh_0b", 10).await.unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].status, DeliveryStatus::Delivered);
    assert_eq!(log[0].last_status_code, Some(200));
    assert!(log[0].next_attempt_at.is_none());
    let pending = store.list_deliveries("wh_0a", 10).await.unwrap();
    assert_eq!(pending[0].attempts, 1);
    assert_eq!(pending[0].history.len(), 1);
    assert_eq!(pending[0].history[0].status_code, Some(503));

    // An endpoint at its pending bound gets nothing more (counted).
    let outcome = store
        .emit_event(&outbox_event("12", EventType::ClusterConnected), 1)
        .await
        .unwrap();
    assert_eq!((outcome.queued, outcome.dropped), (0, 1));
    assert_eq!(
        store.get_webhook("wh_0a").await.unwrap().unwrap().dropped,
        1
    );

    // Disabled: its pending deliveries end failed, with the reason.
    assert!(
        store
            .disable_webhook("wh_0a", Utc::now(), "gone")
            .await
            .unwrap()
    );
    let ended = store.list_deliveries("wh_0a", 10).await.unwrap();
    assert_eq!(ended[0].status, DeliveryStatus::Failed);
    assert_eq!(ended[0].last_error.as_deref(), Some("gone"));
    let far = Utc::now() + chrono::Duration::days(3);
    assert!(
        store
            .claim_deliveries("t5", far, lease, 10)
            .await
            .unwrap()
            .is_empty(),
        "nothing of it is due any more"
    );

    // Deleted: every delivery of it goes too.
    store
        .emit_event(&outbox_event("13", EventType::SessionExpired), 10)
        .await
        .unwrap();
    store.delete_webhook("wh_0c").await.unwrap().unwrap();
    assert!(store.list_deliveries("wh_0c", 10).await.unwrap().is_empty());
    assert!(
        store
            .claim_deliveries("t6", far, lease, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

/// The log keeps the newest finished deliveries of an endpoint, and every pending one.
async fn outbox_log_is_bounded(store: Arc<dyn Store>) {
    let e = endpoint("wh_1a", &[EventType::SessionExpired]);
    assert!(store.put_webhook(&e, 10).await.unwrap());
    let total = KEPT_DELIVERIES + 5;
    let start = Utc::now();
    for i in 0..total {
        let mut event = outbox_event(&format!("{i:04x}"), EventType::SessionExpired);
        event.created_at = start + chrono::Duration::milliseconds(i as i64);
        assert_eq!(store.emit_event(&event, 10_000).await.unwrap().queued, 1);
    }
    let later = start + chrono::Duration::seconds(1);
    let claimed = store
        .claim_deliveries("t", later, HOUR, 1000)
        .await
        .unwrap();
    assert_eq!(claimed.len(), total);
    for mut d in claimed.into_iter().take(total - 2) {
        d.status = DeliveryStatus::Delivered;
        d.attempts = 1;
        d.next_attempt_at = None;
        assert!(store.finish_attempt(&d, "t").await.unwrap());
    }
    let log = store.list_deliveries("wh_1a", 1000).await.unwrap();
    let pending = log
        .iter()
        .filter(|d| d.status == DeliveryStatus::Pending)
        .count();
    assert_eq!(pending, 2);
    assert_eq!(log.len(), KEPT_DELIVERIES + 2);
    assert!(
        log.windows(2).all(|w| w[0].created_at >= w[1].created_at),
        "newest first"
    );
    assert_eq!(store.list_deliveries("wh_1a", 3).await.unwrap().len(), 3);
}

async fn memory() -> Arc<dyn Store> {
    Arc::new(MemoryStore::new())
}

async fn redis(server: &crate::support::Redis) -> Arc<dyn Store> {
    Arc::new(RedisStore::connect(&server.url()).await.unwrap())
}

async fn redis_cluster(cluster: &crate::support::RedisCluster) -> Arc<dyn Store> {
    Arc::new(RedisStore::connect(&cluster.url()).await.unwrap())
}

/// Each case against the embedded store, one Redis server, and a Redis Cluster of three
/// masters and three replicas (with a password), each case on a store of its own.
macro_rules! every_store {
    ($($case:ident),*) => {
        mod embedded {
            $(#[tokio::test] async fn $case() { super::$case(super::memory().await).await })*
        }
        mod redis_server {
            $(#[tokio::test] async fn $case() {
                let server = crate::support::Redis::start().await;
                super::$case(super::redis(&server).await).await
            })*
        }
        mod redis_cluster {
            $(#[tokio::test] async fn $case() {
                let cluster = crate::support::RedisCluster::start().await;
                super::$case(super::redis_cluster(&cluster).await).await
            })*
        }
    };
}

every_store!(
    sessions,
    queue_and_results,
    presence,
    events,
    credentials,
    rate_limits,
    audit_log,
    auditor,
    idempotency_keys,
    orphans,
    link_announcements,
    session_expiries,
    webhook_endpoints,
    outbox,
    outbox_log_is_bounded
);

/// Seconds `key` has left to live.
async fn ttl_of(conn: &mut redis::aio::MultiplexedConnection, key: &str) -> i64 {
    redis::cmd("TTL").arg(key).query_async(conn).await.unwrap()
}

/// A pending placeholder lasts until a grace after its command's deadline, not `--result-ttl`:
/// one that nobody finished (its replica died, or a failover lost the final result) is soon
/// forgotten instead of reading `pending` for an hour. A final result keeps the full TTL.
#[tokio::test]
async fn redis_keeps_a_placeholder_until_a_grace_after_its_deadline() {
    use kubeline_broker::store::redis::PLACEHOLDER_GRACE;
    let server = crate::support::Redis::start().await;
    let store = redis(&server).await;
    let client = redis::Client::open(server.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    store
        .create_session(&session("s1", "c1"), HOUR)
        .await
        .unwrap();
    let grace = PLACEHOLDER_GRACE.as_secs() as i64;

    let soon = command("res_soon", "c1", "s1"); // deadline in 30 s
    store
        .enqueue(&soon, &result(&soon, ResultStatus::Pending), HOUR, false)
        .await
        .unwrap();
    let ttl = ttl_of(&mut conn, "kl:pending:res_soon").await;
    assert!(
        (grace + 25..=grace + 30).contains(&ttl),
        "placeholder TTL {ttl}s, not 30 s + {grace} s"
    );

    // A deadline past the result TTL: the placeholder never outlives a final result.
    let mut late = command("res_late", "c1", "s1");
    late.deadline = late.executed_at + chrono::Duration::hours(2);
    store
        .enqueue(&late, &result(&late, ResultStatus::Pending), HOUR, false)
        .await
        .unwrap();
    let ttl = ttl_of(&mut conn, "kl:pending:res_late").await;
    assert!((3595..=3600).contains(&ttl), "placeholder TTL {ttl}s");

    // The final result is kept for the result TTL, whatever the deadline was.
    assert!(
        store
            .finish_result(&result(&soon, ResultStatus::Completed), HOUR, None)
            .await
            .unwrap()
    );
    let ttl = ttl_of(&mut conn, "kl:result:res_soon").await;
    assert!((3595..=3600).contains(&ttl), "result TTL {ttl}s");
}

/// Two broker replicas on one Redis draw from one budget, one at a time or all at once.
#[tokio::test]
async fn redis_replicas_share_one_rate_limit_budget() {
    let server = crate::support::Redis::start().await;
    let a = redis(&server).await;
    let b = redis(&server).await;
    let minute = Duration::from_secs(60);
    let mut remaining = Vec::new();
    for i in 0..20 {
        let replica = if i % 2 == 0 { &a } else { &b };
        let d = replica
            .rate_limit("kl:rl:execute:shared", 10, minute)
            .await
            .unwrap();
        if d.allowed {
            remaining.push(d.remaining);
        }
    }
    assert_eq!(remaining, (0..10).rev().collect::<Vec<_>>());

    // 60 concurrent requests through both replicas, 20 per ten minutes (T = 30 s, so no
    // refill during the test): exactly 20 pass.
    let ten_minutes = Duration::from_secs(600);
    let tasks: Vec<_> = (0..60)
        .map(|i| {
            let replica = if i % 2 == 0 { a.clone() } else { b.clone() };
            tokio::spawn(async move {
                replica
                    .rate_limit("kl:rl:execute:burst", 20, ten_minutes)
                    .await
                    .unwrap()
                    .allowed
            })
        })
        .collect();
    let mut allowed = 0;
    for task in tasks {
        allowed += usize::from(task.await.unwrap());
    }
    assert_eq!(allowed, 20);
}

/// A small deterministic generator, so a failing sequence can be replayed.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % below
    }
}

/// The Lua script and `ratelimit::gcra` make the same decision at every step of the same
/// sequences (the script told the time instead of reading Redis's clock), and the script leaves
/// in Redis exactly the TAT the function would store: nothing changes on a refusal.
#[tokio::test]
async fn redis_script_mirrors_the_rust_function() {
    let server = crate::support::Redis::start().await;
    let store = RedisStore::connect(&server.url()).await.unwrap();
    let client = redis::Client::open(server.url()).unwrap();
    let mut raw = client.get_multiplexed_async_connection().await.unwrap();
    // T is at least 6 s in every case, so no key expires (in real time) during the test.
    let cases: [(u32, u64); 7] = [
        (1, 60_000),
        (5, 60_000),
        (7, 60_000),
        (10, 60_000),
        (3, 100_000),
        (50, 600_000),
        (100, 600_000),
    ];
    let mut rng = Lcg(7);
    for seed in 0..28 {
        let (limit, period_ms) = cases[seed % cases.len()];
        let key = format!("kl:rl:standard:mirror{seed}");
        let period = Duration::from_millis(period_ms);
        let t = ratelimit::emission_interval_ms(period_ms, limit);
        let mut now = 1_700_000_000_000 + rng.next(1_000_000);
        let mut tat = None;
        for step in 0..60 {
            now += match rng.next(4) {
                0 => 0,
                1 => rng.next(t),
                2 => rng.next(3 * t),
                _ => rng.next(2 * period_ms),
            };
            let (expected, new_tat) = ratelimit::gcra(now, tat, period_ms, limit);
            let got = store.rate_limit_at(&key, limit, period, now).await.unwrap();
            assert_eq!(got, expected, "case {seed} step {step} at {now}");
            tat = new_tat.or(tat);
            let stored: Option<u64> = redis::cmd("GET")
                .arg(&key)
                .query_async(&mut raw)
                .await
                .unwrap();
            assert_eq!(stored, tat, "case {seed} step {step}");
            if let Some(new_tat) = new_tat {
                let ttl: i64 = redis::cmd("PTTL")
                    .arg(&key)
                    .query_async(&mut raw)
                    .await
                    .unwrap();
                let used = (new_tat - now) as i64;
                assert!(ttl > 0 && ttl <= used, "expires when full: {ttl} of {used}");
            }
        }
    }
}

/// With Redis gone, the limiter decides on this replica alone, counts the failures, and never
/// fails a request.
#[tokio::test]
async fn rate_limiter_falls_back_when_redis_is_gone() {
    let mut server = crate::support::Redis::start().await;
    let store = redis(&server).await;
    let limiter = RateLimiter::new(
        store,
        ClassLimits {
            execute: 2,
            ..ClassLimits::default()
        },
    );
    assert!(limiter.check("k1", Class::Execute, None).await.allowed);
    server.kill();
    let errors = || {
        kubeline_broker::metrics::handle()
            .render()
            .lines()
            .filter(|l| l.starts_with("kubeline_ratelimit_backend_errors_total"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum::<u64>()
    };
    let before = errors();
    // This replica has not seen k1's first request: its own bucket starts full.
    let mut decided = Vec::new();
    for _ in 0..3 {
        decided.push(limiter.check("k1", Class::Execute, None).await.allowed);
    }
    assert_eq!(decided, [true, true, false]);
    assert!(errors() >= before + 3, "every failed check is counted");
}

#[tokio::test]
async fn redis_store_reports_an_unreachable_server() {
    let port = crate::support::free_port();
    let err = match RedisStore::connect(&format!("redis://127.0.0.1:{port}/")).await {
        Ok(_) => panic!("connected to a port nobody listens on"),
        Err(e) => e.to_string(),
    };
    assert!(err.starts_with("redis:"), "{err}");
}
