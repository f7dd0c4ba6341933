//! Chaining, verification, the writer's batching and failures, and the `GET /audit` routes.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use kubeline_shared::audit::{AuditDecision, AuditRecord, CredentialKind};
use tower::ServiceExt;

use super::*;
use crate::limits::ExecuteLimits;
use crate::store::memory::MemoryStore;
use crate::tests::state_with;
use crate::{
    DEFAULT_MAX_EXECUTES_PER_CLUSTER, DEFAULT_MAX_EXECUTES_PER_KEY, DEFAULT_MAX_QUEUE_PER_CLUSTER,
    app,
};

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

fn event(n: usize) -> AuditEvent {
    AuditEvent {
        cluster_id: Some(if n.is_multiple_of(2) { "c1" } else { "c2" }.to_owned()),
        session_id: Some(format!("sess_{}", n % 3)),
        credential_id: Some("key:sha256:0011aabb".to_owned()),
        credential_kind: Some(CredentialKind::ApiKey),
        command_type: Some("get".to_owned()),
        args: Some(vec!["pods".to_owned(), format!("p-{n}")]),
        decision: Some(AuditDecision::Allowed),
        ..AuditEvent::new(
            AuditAction::Execute,
            AuditOutcome::Completed,
            at("2024-01-20T10:30:45.123Z"),
        )
    }
}

/// `n` records of `chain` from `from`, sealed as the writer seals them.
fn chain_of(chain: &str, from: u64, n: u64, prev: &str) -> Vec<String> {
    let mut prev = prev.to_owned();
    (from..from + n)
        .map(|seq| {
            let (line, hash) = seal(
                &event(seq as usize),
                chain,
                seq,
                &prev,
                at("2024-01-20T10:30:46Z"),
            );
            prev = hash;
            line
        })
        .collect()
}

fn stored(lines: &[String]) -> Vec<StoredRecord> {
    lines
        .iter()
        .enumerate()
        .map(|(i, l)| StoredRecord::from_json(Some(format!("{i}-0")), l))
        .collect()
}

fn kinds(report: &VerifyReport) -> Vec<(Option<u64>, ProblemKind)> {
    report.problems.iter().map(|p| (p.seq, p.problem)).collect()
}

// === chaining ===

#[test]
fn a_sealed_record_is_canonical_and_reads_back_as_an_audit_record() {
    let lines = chain_of("broker_a", 0, 2, GENESIS_HASH);
    let first: Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(canonical_json(&first), lines[0], "stored as canonical JSON");
    assert!(!lines[0].contains(' ') && !lines[0].contains('\n'));
    let record: AuditRecord = serde_json::from_str(&lines[1]).unwrap();
    assert_eq!(record.chain, "broker_a");
    assert_eq!(record.seq, 1);
    assert_eq!(record.event, event(1));
    let first: AuditRecord = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(first.prev_hash, GENESIS_HASH);
    assert_eq!(record.prev_hash, first.hash);
    assert_eq!(record.hash.len(), 64);
    // Absent fields are left out, timestamps carry milliseconds.
    assert!(!lines[0].contains("exit_code") && !lines[0].contains("null"));
    assert!(lines[0].contains(r#""received_at":"2024-01-20T10:30:45.123Z""#));
    assert!(lines[0].contains(r#""recorded_at":"2024-01-20T10:30:46.000Z""#));
    assert!(lines[0].contains(r#""action":"execute""#));
}

#[test]
fn the_hash_covers_prev_hash_and_the_canonical_record_without_hash() {
    let line = &chain_of("broker_a", 0, 1, GENESIS_HASH)[0];
    let value: Value = serde_json::from_str(line).unwrap();
    let mut without = value.as_object().unwrap().clone();
    let hash = without.remove("hash").unwrap();
    let canonical = canonical_json(&Value::Object(without));
    let expected = hex::encode(Sha256::digest(
        format!("{GENESIS_HASH}{canonical}").as_bytes(),
    ));
    assert_eq!(hash, expected);
}

#[test]
fn a_sealed_line_is_the_canonical_json_of_the_record_with_its_hash() {
    // Escapes, non-ASCII and control characters in values, as a hostile argv brings them.
    let mut hostile = event(3);
    hostile.args = Some(vec![
        "a\"b\\c".into(),
        "é\u{1}\u{2028}".into(),
        String::new(),
    ]);
    hostile.reason = Some("</script>\n\t".into());
    for event in [
        event(0),
        hostile,
        AuditEvent::new(
            AuditAction::SessionCreate,
            AuditOutcome::Accepted,
            at("2024-01-20T10:30:45Z"),
        ),
    ] {
        let (line, hash) = seal(
            &event,
            "broker_x",
            7,
            GENESIS_HASH,
            at("2024-01-20T10:30:46Z"),
        );
        let value: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(canonical_json(&value), line, "stored as canonical JSON");
        assert_eq!(value["hash"], hash.as_str());
        assert_eq!(record_hash(GENESIS_HASH, &value), hash);
    }
}

/// `seal` renders the record from a struct in sorted field order; with every field of the event
/// set, it must equal the canonical JSON of the event's own serialization plus the chain keys.
#[test]
fn a_sealed_record_is_the_canonical_json_of_its_fields() {
    let every_field = AuditEvent {
        action: AuditAction::Execute,
        outcome: AuditOutcome::Failed,
        received_at: at("2024-01-20T10:30:45.123Z"),
        duration_ms: Some(12),
        credential_id: Some("key:sha256:0011aabb".into()),
        credential_kind: Some(CredentialKind::Jwt),
        subject: Some("alice\u{7f}".into()),
        groups: vec!["sre".into(), "on-call".into()],
        source_addr: Some("10.0.3.17".into()),
        cluster_id: Some("prod-eu".into()),
        session_id: Some("sess_1".into()),
        result_id: Some("res_1".into()),
        command_type: Some("logs".into()),
        args: Some(vec!["web-0".into(), "--tail=5".into(), "\"é\"\n".into()]),
        target: Some("https://hooks.example/x".into()),
        decision: Some(AuditDecision::Refused),
        reason: Some("</script>".into()),
        exit_code: Some(-1),
        output_bytes: Some(4096),
        correlation_id: Some("corr-1".into()),
        request_id: Some("req-1".into()),
    };
    let minimal = AuditEvent::new(
        AuditAction::SessionCreate,
        AuditOutcome::Accepted,
        at("2024-01-20T10:30:45Z"),
    );
    for event in [every_field, minimal] {
        let recorded_at = at("2024-01-20T10:30:46.5Z");
        let (line, hash) = seal(&event, "broker_x", 41, GENESIS_HASH, recorded_at);
        let mut expected = serde_json::to_value(&event).unwrap();
        let map = expected.as_object_mut().unwrap();
        map.insert("chain".into(), "broker_x".into());
        map.insert("seq".into(), 41.into());
        map.insert("recorded_at".into(), audit_time(recorded_at).into());
        map.insert("prev_hash".into(), GENESIS_HASH.into());
        let want_hash = record_hash(GENESIS_HASH, &expected);
        expected
            .as_object_mut()
            .unwrap()
            .insert("hash".into(), want_hash.clone().into());
        assert_eq!(line, canonical_json(&expected));
        assert_eq!(hash, want_hash);
    }
}

#[test]
fn canonical_json_sorts_keys_at_every_depth_and_keeps_escapes() {
    let value = json!({"b": [{"z": 1, "a": "x\"y\u{1}"}], "a": {"d": null, "c": true}, "é": -3});
    assert_eq!(
        canonical_json(&value),
        r#"{"a":{"c":true,"d":null},"b":[{"a":"x\"y\u0001","z":1}],"é":-3}"#
    );
}

// === verification ===

#[test]
fn an_intact_chain_verifies() {
    let report = verify(stored(&chain_of("broker_a", 0, 5, GENESIS_HASH)));
    assert!(report.ok, "{report:?}");
    assert_eq!(report.scanned, 5);
    assert_eq!(
        report.chains,
        [ChainSummary {
            chain: "broker_a".into(),
            first_seq: 0,
            last_seq: 4,
            records: 5,
            trimmed: false,
        }]
    );
}

#[test]
fn an_edited_field_is_found() {
    let mut lines = chain_of("broker_a", 0, 5, GENESIS_HASH);
    lines[2] = lines[2].replace(r#""p-2""#, r#""p-9""#);
    let report = verify(stored(&lines));
    assert!(!report.ok);
    assert_eq!(kinds(&report), [(Some(2), ProblemKind::Edited)]);
    assert_eq!(report.problems[0].cursor.as_deref(), Some("2-0"));

    // Edited with its hash recomputed: the next record's link breaks.
    let mut value: Value = serde_json::from_str(&lines[2]).unwrap();
    let prev = value["prev_hash"].as_str().unwrap().to_owned();
    value["hash"] = record_hash(&prev, &value).into();
    lines[2] = canonical_json(&value);
    let report = verify(stored(&lines));
    assert_eq!(kinds(&report), [(Some(3), ProblemKind::BrokenLink)]);
}

#[test]
fn a_deleted_middle_record_is_a_gap() {
    let mut lines = chain_of("broker_a", 0, 6, GENESIS_HASH);
    lines.remove(3);
    let report = verify(stored(&lines));
    assert_eq!(kinds(&report), [(Some(3), ProblemKind::Gap)]);
    assert!(report.problems[0].message.contains("seq 3 is missing"));
    lines.remove(3);
    let report = verify(stored(&lines));
    assert!(
        report.problems[0]
            .message
            .contains("seqs 3 to 4 are missing")
    );
}

#[test]
fn a_swapped_pair_is_reordered() {
    let mut lines = chain_of("broker_a", 0, 5, GENESIS_HASH);
    lines.swap(2, 3);
    let report = verify(stored(&lines));
    assert_eq!(kinds(&report), [(Some(2), ProblemKind::Reordered)]);
    assert_eq!(report.chains[0].records, 5);
}

#[test]
fn a_trimmed_start_is_reported_but_not_a_failure() {
    let lines = chain_of("broker_a", 0, 10, GENESIS_HASH);
    let report = verify(stored(&lines[4..]));
    assert!(report.ok, "{report:?}");
    assert_eq!(report.chains[0].first_seq, 4);
    assert!(report.chains[0].trimmed);
    // Without the trimming, a first record must start from the genesis hash.
    let forged = chain_of("broker_a", 0, 3, &"f".repeat(64));
    let report = verify(stored(&forged));
    assert_eq!(kinds(&report), [(Some(0), ProblemKind::BrokenLink)]);
}

#[test]
fn interleaved_chains_verify_each_on_its_own() {
    let a = chain_of("broker_a", 0, 6, GENESIS_HASH);
    let b = chain_of("broker_b", 0, 4, GENESIS_HASH);
    let mixed = vec![
        a[0].clone(),
        b[0].clone(),
        b[1].clone(),
        a[1].clone(),
        a[2].clone(),
        b[2].clone(),
        a[3].clone(),
        a[4].clone(),
        b[3].clone(),
        a[5].clone(),
    ];
    let report = verify(stored(&mixed));
    assert!(report.ok, "{report:?}");
    let chains: Vec<(&str, u64)> = report
        .chains
        .iter()
        .map(|c| (c.chain.as_str(), c.records))
        .collect();
    assert_eq!(chains, [("broker_a", 6), ("broker_b", 4)]);
    // A record of one chain removed is that chain's problem only.
    let mut damaged = mixed.clone();
    damaged.remove(5);
    let report = verify(stored(&damaged));
    assert_eq!(report.problems.len(), 1);
    assert_eq!(report.problems[0].chain.as_deref(), Some("broker_b"));
    assert_eq!(report.problems[0].problem, ProblemKind::Gap);
}

#[test]
fn duplicates_and_unreadable_records_are_reported() {
    let mut lines = chain_of("broker_a", 0, 3, GENESIS_HASH);
    lines.insert(2, lines[1].clone());
    lines.push("not json".to_owned());
    lines.push(r#"{"chain":"broker_a"}"#.to_owned());
    let report = verify(stored(&lines));
    let mut found = kinds(&report);
    found.sort_by_key(|(seq, k)| (*seq, *k as u8));
    assert_eq!(
        found,
        [
            (None, ProblemKind::Unreadable),
            (None, ProblemKind::Unreadable),
            (Some(1), ProblemKind::Duplicate),
        ]
    );
}

// === the writer ===

/// A sink over the embedded store that counts appends, can be made to fail (before or after
/// writing), and takes a little time per write so that callers pile up.
struct TestSink {
    store: MemoryStore,
    appends: AtomicUsize,
    fail: AtomicBool,
    fail_after_writing: AtomicBool,
    batches: Mutex<Vec<usize>>,
}

impl TestSink {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            store: MemoryStore::new(),
            appends: AtomicUsize::new(0),
            fail: AtomicBool::new(false),
            fail_after_writing: AtomicBool::new(false),
            batches: Mutex::default(),
        })
    }

    /// Every stored record, oldest first.
    async fn records(&self) -> Vec<StoredRecord> {
        let mut all = self.store.read_audit(None, usize::MAX).await.unwrap();
        all.reverse();
        all.into_iter()
            .map(|(c, raw)| StoredRecord::from_json(Some(c), &raw))
            .collect()
    }
}

#[async_trait]
impl AuditSink for TestSink {
    async fn append(&self, chain: &str, records: &[String], max_len: u64) -> StoreResult<()> {
        self.appends.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(5)).await;
        if self.fail.load(Ordering::SeqCst) {
            return Err(refused());
        }
        self.store.append_audit(chain, records, max_len).await?;
        self.batches.lock().unwrap().push(records.len());
        if self.fail_after_writing.load(Ordering::SeqCst) {
            return Err(refused());
        }
        Ok(())
    }

    async fn head(&self, chain: &str) -> StoreResult<Option<String>> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(refused());
        }
        self.store.audit_head(chain).await
    }
}

fn refused() -> StoreError {
    StoreError::Redis(::redis::RedisError::from((
        ::redis::ErrorKind::Io,
        "connection refused",
    )))
}

async fn record_many(auditor: &Auditor, from: usize, n: usize) -> Vec<Result<(), AuditError>> {
    let calls = (from..from + n).map(|i| {
        let auditor = auditor.clone();
        tokio::spawn(async move { auditor.record(event(i)).await })
    });
    let mut out = Vec::new();
    for call in calls.collect::<Vec<_>>() {
        out.push(call.await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_records_are_batched_into_one_gapless_chain() {
    let sink = TestSink::new();
    let auditor = Auditor::spawn(sink.clone(), "broker_w", 1000);
    let answers = record_many(&auditor, 0, 300).await;
    assert!(answers.iter().all(Result::is_ok));
    let appends = sink.appends.load(Ordering::SeqCst);
    assert!(appends < 300, "{appends} store writes for 300 records");
    assert!(sink.batches.lock().unwrap().iter().any(|n| *n > 1));
    let report = verify(sink.records().await);
    assert!(report.ok, "{report:?}");
    assert_eq!(
        (report.chains[0].first_seq, report.chains[0].last_seq),
        (0, 299)
    );
}

#[tokio::test]
async fn a_failed_write_fails_its_whole_batch_and_leaves_no_gap() {
    let sink = TestSink::new();
    let auditor = Auditor::spawn(sink.clone(), "broker_f", 1000);
    assert!(record_many(&auditor, 0, 3).await.iter().all(Result::is_ok));
    sink.fail.store(true, Ordering::SeqCst);
    let answers = record_many(&auditor, 3, 20).await;
    for answer in &answers {
        let err = answer.as_ref().unwrap_err();
        assert!(matches!(err, AuditError::Store(_)), "{err}");
        let api = ApiError::from(err.clone());
        assert_eq!(api.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            api.body().details.as_ref().unwrap()["code"],
            "audit_unavailable"
        );
    }
    sink.fail.store(false, Ordering::SeqCst);
    assert!(record_many(&auditor, 23, 4).await.iter().all(Result::is_ok));
    let records = sink.records().await;
    assert_eq!(records.len(), 7);
    let report = verify(records);
    assert!(report.ok, "{report:?}");
    assert_eq!(report.chains[0].last_seq, 6);
}

#[tokio::test]
async fn a_write_that_failed_after_storing_is_caught_up_without_a_fork() {
    let sink = TestSink::new();
    let auditor = Auditor::spawn(sink.clone(), "broker_u", 1000);
    assert!(auditor.record(event(0)).await.is_ok());
    sink.fail_after_writing.store(true, Ordering::SeqCst);
    assert!(auditor.record(event(1)).await.is_err());
    sink.fail_after_writing.store(false, Ordering::SeqCst);
    assert!(auditor.record(event(2)).await.is_ok());
    let report = verify(sink.records().await);
    assert!(report.ok, "{report:?}");
    assert_eq!(report.chains[0].records, 3);
}

/// Collects the events of one thread: (target, message).
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<(String, String)>>>);

impl tracing::Subscriber for Lines {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        struct Message(String);
        impl tracing::field::Visit for Message {
            fn record_debug(&mut self, field: &tracing::field::Field, v: &dyn std::fmt::Debug) {
                if field.name() == "message" {
                    self.0 = format!("{v:?}");
                }
            }
        }
        let mut message = Message(String::new());
        event.record(&mut message);
        let target = event.metadata().target().to_owned();
        self.0.lock().unwrap().push((target, message.0));
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[tokio::test]
async fn each_stored_record_is_one_json_line_under_the_audit_target() {
    let lines = Lines::default();
    let _guard = tracing::subscriber::set_default(lines.clone());
    // Other tests of this binary write audit lines on their threads, without a subscriber: one
    // that registers the line's callsite while this subscriber is being added can leave it
    // cached as "never enabled" (2 runs in 6 failed so). Recompute the callsites' interest now
    // that this subscriber is in place.
    tracing::callsite::rebuild_interest_cache();
    let sink = TestSink::new();
    let auditor = Auditor::spawn(sink.clone(), "broker_l", 1000);
    auditor.record(event(0)).await.unwrap();
    sink.fail.store(true, Ordering::SeqCst);
    auditor.record(event(1)).await.unwrap_err();
    let logged = lines.0.lock().unwrap().clone();
    let audit: Vec<&String> = logged
        .iter()
        .filter(|(target, _)| target == AUDIT_TARGET)
        .map(|(_, message)| message)
        .collect();
    assert_eq!(audit.len(), 1, "only the stored record: {logged:?}");
    let stored = sink.store.read_audit(None, 10).await.unwrap();
    assert_eq!(audit[0], &stored[0].1, "the line is the stored record");
    assert!(
        logged
            .iter()
            .any(|(t, m)| t != AUDIT_TARGET && m.contains("audit write failed")),
        "{logged:?}"
    );
}

#[tokio::test]
async fn a_stopped_writer_is_an_error_not_a_hang() {
    let (jobs, queue) = mpsc::channel(1);
    drop(queue);
    let auditor = Auditor {
        jobs,
        chain: "broker_x".into(),
    };
    assert!(matches!(
        auditor.record(event(0)).await,
        Err(AuditError::Closed)
    ));
}

#[tokio::test]
async fn the_store_keeps_at_most_max_records() {
    let sink = TestSink::new();
    let auditor = Auditor::spawn(sink.clone(), "broker_m", 5);
    for i in 0..12 {
        auditor.record(event(i)).await.unwrap();
    }
    let report = verify(sink.records().await);
    assert!(report.ok, "{report:?}");
    assert_eq!(
        (
            report.chains[0].first_seq,
            report.chains[0].last_seq,
            report.chains[0].trimmed
        ),
        (7, 11, true)
    );
}

#[test]
fn the_flag_has_a_default_and_refuses_zero() {
    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        audit: AuditArgs,
    }
    let cli = <Cli as clap::Parser>::try_parse_from(["x"]).unwrap();
    assert_eq!(cli.audit.max_records, 1_000_000);
    let cli = <Cli as clap::Parser>::try_parse_from(["x", "--audit-max-records=0"]).unwrap();
    let err = cli.audit.check().unwrap_err().to_string();
    assert!(err.contains("--audit-max-records"), "{err}");
}

// === what the handlers record ===

fn post(path: &str, key: &str, body: &Value) -> Request<Body> {
    Request::post(path)
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

async fn call(state: &AppState, req: Request<Body>) -> (StatusCode, Value) {
    let res = app(state.clone()).oneshot(req).await.unwrap();
    let status = res.status();
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 24)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// A state whose cluster `c1` is linked (elsewhere: nobody answers), its audit log in `sink`.
async fn linked_state(sink: Arc<TestSink>) -> AppState {
    let mut state = default_state().await;
    state.parts_mut().audit = Auditor::spawn(sink, "broker_test", 1000);
    crate::tests::link_elsewhere(&state, "c1").await;
    state
}

fn field<'a>(records: &'a [StoredRecord], name: &str) -> Vec<&'a str> {
    records
        .iter()
        .map(|r| r.value[name].as_str().unwrap_or("-"))
        .collect()
}

#[tokio::test]
async fn nothing_is_created_or_queued_when_its_record_cannot_be_written() {
    let sink = TestSink::new();
    let state = linked_state(sink.clone()).await;
    let (status, body) = call(
        &state,
        post("/debug/session", "rd", &json!({ "cluster_id": "c1" })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let session = body["session_id"].as_str().unwrap().to_owned();
    sink.fail.store(true, Ordering::SeqCst);
    let execute =
        json!({ "cluster_id": "c1", "session_id": session, "command_type": "version", "args": [] });
    let (status, body) = call(&state, post("/debug/execute", "rd", &execute)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["details"]["code"], "audit_unavailable");
    assert_eq!(
        state.hub.store().queue_depth("c1").await.unwrap(),
        0,
        "nothing queued"
    );
    let (status, body) = call(
        &state,
        post("/debug/session", "rd", &json!({ "cluster_id": "c1" })),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(
        state.hub.store().list_sessions().await.unwrap().len(),
        1,
        "no second session"
    );
    let (status, _) = call(
        &state,
        post("/admin/api-keys", "adm", &json!({ "scope": "read" })),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let keys = state
        .credentials
        .list(crate::store::CredentialKind::ApiKey)
        .await
        .unwrap();
    assert_eq!(keys.len(), 3, "no key was created: {keys:?}");
}

#[tokio::test]
async fn executes_sessions_credentials_and_auth_failures_are_recorded() {
    let sink = TestSink::new();
    let state = linked_state(sink.clone()).await;
    let (_, body) = call(
        &state,
        post("/debug/session", "rd", &json!({ "cluster_id": "c1" })),
    )
    .await;
    let session = body["session_id"].as_str().unwrap().to_owned();
    // Dispatched, nobody answers: accepted, then timeout.
    let execute = json!({ "cluster_id": "c1", "session_id": session, "command_type": "get",
                          "args": ["pods", "-A"], "timeout": 0.2 });
    let (status, _) = call(&state, post("/debug/execute", "rd", &execute)).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    // Refused by the parser.
    let refused = json!({ "cluster_id": "c1", "session_id": session, "command_type": "delete", "args": ["pod", "x"] });
    let (status, _) = call(&state, post("/debug/execute", "rd", &refused)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // Refused by a grant, before the handler's own record.
    let (status, _) = call(
        &state,
        post("/debug/session", "rd-c2", &json!({ "cluster_id": "c1" })),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // A credential made and revoked; a wrong key.
    let (_, body) = call(
        &state,
        post("/admin/api-keys", "adm", &json!({ "scope": "read" })),
    )
    .await;
    let id = body["id"].as_str().unwrap().to_owned();
    let revoke = Request::delete(format!("/admin/api-keys/{id}"))
        .header("authorization", "Bearer adm")
        .body(Body::empty())
        .unwrap();
    assert_eq!(call(&state, revoke).await.0, StatusCode::OK);
    let (status, _) = call(
        &state,
        post("/debug/session", "wrong", &json!({ "cluster_id": "c1" })),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let close = Request::delete(format!("/debug/session/{session}"))
        .header("authorization", "Bearer rd")
        .body(Body::empty())
        .unwrap();
    assert_eq!(call(&state, close).await.0, StatusCode::OK);

    let records = sink.records().await;
    let summary: Vec<String> = records
        .iter()
        .map(|r| {
            format!(
                "{} {}",
                r.value["action"].as_str().unwrap(),
                r.value["outcome"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            "session.create accepted",
            "execute accepted",
            "execute timeout",
            "execute refused",
            "session.create refused",
            "credential.create accepted",
            "credential.revoke accepted",
            "auth.failure refused",
            "session.close accepted",
        ]
    );
    let rd = state
        .credentials
        .check(crate::store::CredentialKind::ApiKey, "rd")
        .await
        .unwrap()
        .id
        .clone();
    assert_eq!(records[1].value["credential_id"], rd.as_str());
    assert_eq!(records[1].value["args"], json!(["pods", "-A"]));
    assert_eq!(records[1].value["decision"], "allowed");
    assert_eq!(records[1].value["result_id"], records[2].value["result_id"]);
    assert!(
        records[3].value["reason"].as_str().unwrap().contains("400"),
        "{:?}",
        records[3].value
    );
    assert_eq!(records[3].value["decision"], "refused");
    assert!(records[4].value["reason"].as_str().unwrap().contains("403"));
    assert_eq!(records[6].value["target"], id.as_str());
    assert!(records[7].value.get("credential_id").is_none());
    assert!(
        field(&records, "request_id")
            .iter()
            .all(|r| r.starts_with("req_"))
    );
    let report = verify(records.iter().cloned());
    assert!(report.ok, "{report:?}");
}

// === GET /audit and GET /audit/verify ===

async fn default_state() -> AppState {
    state_with(ExecuteLimits::new(
        DEFAULT_MAX_EXECUTES_PER_KEY,
        DEFAULT_MAX_EXECUTES_PER_CLUSTER,
        DEFAULT_MAX_QUEUE_PER_CLUSTER,
    ))
    .await
}

async fn send(state: &AppState, path: &str, key: &str) -> (StatusCode, Value) {
    let mut req = Request::get(path);
    if !key.is_empty() {
        req = req.header("authorization", format!("Bearer {key}"));
    }
    let res = app(state.clone())
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 24)
        .await
        .unwrap();
    (status, serde_json::from_slice(&bytes).unwrap())
}

/// A state whose audit log holds `n` records of `event(i)`, written through its auditor.
async fn state_with_records(n: usize) -> AppState {
    let state = default_state().await;
    for i in 0..n {
        state.audit.record(event(i)).await.unwrap();
    }
    state
}

fn seqs(body: &Value) -> Vec<u64> {
    body["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["seq"].as_u64().unwrap())
        .collect()
}

#[tokio::test]
async fn the_audit_log_is_listed_newest_first_in_pages() {
    let state = state_with_records(25).await;
    let (status, body) = send(&state, "/audit?limit=10", "adm").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(seqs(&body), (15..25).rev().collect::<Vec<_>>());
    let mut cursor = body["next_cursor"].as_str().unwrap().to_owned();
    let mut all = seqs(&body);
    loop {
        let (status, body) = send(&state, &format!("/audit?limit=10&cursor={cursor}"), "adm").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        all.extend(seqs(&body));
        match body["next_cursor"].as_str() {
            Some(c) => cursor = c.to_owned(),
            None => break,
        }
    }
    assert_eq!(all, (0..25).rev().collect::<Vec<_>>());
    // The default page is 100.
    let (_, body) = send(&state, "/audit", "adm").await;
    assert_eq!(seqs(&body).len(), 25);
    assert!(body["next_cursor"].is_null());
}

#[tokio::test]
async fn filters_select_records_and_the_scan_is_bounded() {
    let state = state_with_records(40).await;
    let (_, body) = send(&state, "/audit?cluster_id=c2&session_id=sess_0", "adm").await;
    // Odd n (c2) with n % 3 == 0: 3, 9, 15, 21, 27, 33, 39.
    assert_eq!(seqs(&body), [39, 33, 27, 21, 15, 9, 3]);
    let (_, body) = send(
        &state,
        "/audit?action=execute&outcome=completed&credential_id=key:sha256:0011aabb&limit=3",
        "adm",
    )
    .await;
    assert_eq!(seqs(&body), [39, 38, 37]);
    let (_, body) = send(&state, "/audit?outcome=refused", "adm").await;
    assert_eq!(seqs(&body), Vec::<u64>::new());
    assert!(body["next_cursor"].is_null(), "all 40 fit in one scan");
    // limit=1 reads at most 10 records: a filter that matches nothing still ends the page
    // with a cursor to go on from.
    let (_, body) = send(&state, "/audit?outcome=refused&limit=1", "adm").await;
    assert_eq!(seqs(&body), Vec::<u64>::new());
    let cursor = body["next_cursor"].as_str().unwrap().to_owned();
    let (_, body) = send(&state, &format!("/audit?limit=1&cursor={cursor}"), "adm").await;
    assert_eq!(seqs(&body), [29], "continues after the 10 records scanned");
}

#[tokio::test]
async fn since_and_until_select_by_recorded_at() {
    let state = default_state().await;
    let store = state.hub.store();
    let mut prev = GENESIS_HASH.to_owned();
    let mut lines = Vec::new();
    for (seq, minute) in [(0u64, "00"), (1, "10"), (2, "20"), (3, "30")] {
        let (line, hash) = seal(
            &event(seq as usize),
            "broker_t",
            seq,
            &prev,
            at(&format!("2024-01-20T10:{minute}:00Z")),
        );
        prev = hash;
        lines.push(line);
    }
    store.append_audit("broker_t", &lines, 100).await.unwrap();
    let (_, body) = send(
        &state,
        "/audit?since=2024-01-20T10:10:00Z&until=2024-01-20T10:20:00Z",
        "adm",
    )
    .await;
    assert_eq!(seqs(&body), [2, 1]);
    let (_, body) = send(&state, "/audit?since=2024-01-20T10:25:00%2B00:00", "adm").await;
    assert_eq!(seqs(&body), [3]);
    assert!(
        body["next_cursor"].is_null(),
        "the scan stops well past since"
    );
    let (status, body) = send(
        &state,
        "/audit?since=2024-01-20T10:20:00Z&until=2024-01-20T10:10:00Z",
        "adm",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "an empty interval is no error");
    assert_eq!(seqs(&body), Vec::<u64>::new());
}

#[tokio::test]
async fn bad_filters_are_400_naming_the_parameter() {
    let state = default_state().await;
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=x", "limit"),
        ("outcome=done", "outcome"),
        ("action=delete", "action"),
        ("since=yesterday", "since"),
        ("until=2024-13-01T00:00:00Z", "until"),
        ("cursor=abc", "cursor"),
        ("cursor=1-2-3", "cursor"),
        ("cluster_id=a%20b", "cluster_id"),
    ] {
        let (status, body) = send(&state, &format!("/audit?{query}"), "adm").await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert_eq!(body["error"], "invalid_request", "{query}");
        assert_eq!(body["details"]["field"], field, "{query}: {body}");
        assert_eq!(body["details"]["code"], "invalid_value", "{query}");
    }
    let long = "x".repeat(300);
    let (status, body) = send(&state, &format!("/audit?session_id={long}"), "adm").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["details"]["field"], "session_id");
    let (status, body) = send(&state, "/audit/verify?limit=100001", "adm").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["details"]["field"], "limit");
}

#[tokio::test]
async fn the_audit_routes_are_for_admins() {
    let state = default_state().await;
    for path in ["/audit", "/audit/verify", "/audit?limit=0"] {
        let (status, body) = send(&state, path, "rd").await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
        assert_eq!(body["error"], "forbidden");
        let (status, body) = send(&state, path, "").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(body["error"], "unauthorized");
    }
}

#[tokio::test]
async fn the_verify_route_checks_the_newest_records() {
    let state = state_with_records(30).await;
    let (status, body) = send(&state, "/audit/verify", "adm").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let report: VerifyReport = serde_json::from_value(body).unwrap();
    assert!(report.ok && report.complete, "{report:?}");
    assert_eq!(report.scanned, 30);
    assert_eq!(report.chains[0].chain, "broker_test");
    let (_, body) = send(&state, "/audit/verify?limit=10", "adm").await;
    let report: VerifyReport = serde_json::from_value(body).unwrap();
    assert!(report.ok && !report.complete, "{report:?}");
    assert_eq!(
        (report.chains[0].first_seq, report.chains[0].trimmed),
        (20, true)
    );
    // A record forged into the log breaks it.
    let mut forged: Value =
        serde_json::from_str(&chain_of("broker_test", 30, 1, GENESIS_HASH)[0]).unwrap();
    forged["args"] = json!(["secrets"]);
    state
        .hub
        .store()
        .append_audit("broker_forger", &[canonical_json(&forged)], 1000)
        .await
        .unwrap();
    let (_, body) = send(&state, "/audit/verify", "adm").await;
    let report: VerifyReport = serde_json::from_value(body).unwrap();
    assert!(!report.ok);
    let found: Vec<ProblemKind> = report.problems.iter().map(|p| p.problem).collect();
    assert_eq!(found, [ProblemKind::Edited, ProblemKind::BrokenLink]);
}

#[test]
fn the_audit_routes_are_described() {
    let doc = crate::openapi::document();
    for path in ["/audit", "/audit/verify"] {
        let op = &doc["paths"][path]["get"];
        for status in ["200", "400", "401", "403", "503"] {
            assert!(op["responses"][status].is_object(), "{path} lacks {status}");
        }
        assert_eq!(op["tags"][0], "audit");
    }
    let params: Vec<&str> = doc["paths"]["/audit"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for name in [
        "cluster_id",
        "credential_id",
        "session_id",
        "outcome",
        "action",
        "since",
        "until",
        "limit",
        "cursor",
    ] {
        assert!(params.contains(&name), "{name} in {params:?}");
    }
    let schemas = &doc["components"]["schemas"];
    for schema in ["AuditPage", "AuditRecord", "AuditEvent", "VerifyReport"] {
        assert!(schemas[schema].is_object(), "{schema}");
    }
}
