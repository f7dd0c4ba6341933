//! The audit log: every execute, session change, credential change and authentication failure,
//! written to the store before the broker acts on it, hash-chained per broker replica so that a
//! verifier finds edited, missing and reordered records.
//!
//! - [`Auditor`]: `record(event)` returns once the record is durably in the store. One writer
//!   task per replica takes whatever is queued as a batch, seals it into the replica's chain
//!   ([`seal`]), writes it in one store round trip, then answers every caller of the batch. A
//!   failed write fails every caller of the batch and the chain does not advance, so no gap is
//!   made. After the store write, each record is also logged as one JSON line under the tracing
//!   target [`AUDIT_TARGET`], for log shippers.
//! - Chaining: record = event + `chain` (this replica's broker id), `seq` (0, 1, 2, …),
//!   `recorded_at`, `prev_hash` ([`GENESIS_HASH`] for seq 0) and
//!   `hash = hex(SHA-256(prev_hash || canonical JSON of the record without hash))`, canonical
//!   meaning object keys sorted by their bytes, no whitespace, serde_json's escaping
//!   ([`canonical_json`]). Records hold no floating-point numbers, so every value has one
//!   spelling.
//! - Verification: [`verify`] / [`Verifier`], pure, over records as stored (JSON), oldest first.
//!   `GET /audit/verify` runs it over the newest records of the store; `kubeline audit verify`
//!   runs the same code over what it reads through `GET /audit`, so it need not trust the
//!   broker's verdict.
//! - `GET /audit` ([`list_audit`]): filtered pages, newest first, each request reading a bounded
//!   number of stored records.
//!
//! What a hash chain cannot show: records removed from the *newest* end of a chain, and records
//! removed from its oldest end (they look trimmed). Signed checkpoints of each chain's head,
//! shipped to a second sink, would close both; they are not here yet.
//!
//! **Invariant:** a chain's records are stored in seq order, without gaps: one writer per chain,
//! one batch at a time, and the chain state advances only past records the store took.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::extract::State;
use chrono::{DateTime, Utc};
use kubeline_shared::api;
use kubeline_shared::audit::{
    AuditAction, AuditDecision, AuditEvent, AuditOutcome, AuditPage, ChainProblem, ChainSummary,
    CredentialKind, ProblemKind, VerifyReport, audit_time, serialize_audit_time,
};
use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

use crate::AppState;
use crate::auth::{Caller, CallerKind};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Query};
use crate::middleware::RequestContext;
use crate::store::{Store, StoreError, StoreResult, parse_audit_cursor};

/// Tracing target of the audit lines (one JSON record per line, after the store write).
pub const AUDIT_TARGET: &str = "kubeline::audit";
/// Default of `--audit-max-records`.
pub const DEFAULT_AUDIT_MAX_RECORDS: u64 = 1_000_000;
/// `prev_hash` of a chain's first record.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Records waiting for the writer; callers past it wait to queue (backpressure, not loss).
const QUEUE: usize = 4096;
/// Most records in one store write.
const MAX_BATCH: usize = 512;
/// A store write (or head read) that takes longer fails its batch. The Redis client gives up
/// sooner; this bounds any store.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Default and largest page of `GET /audit`.
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;
/// `GET /audit` reads at most this many stored records per record asked for (`limit`), so a
/// selective filter still fills pages while a request's work stays bounded (at most 10,000
/// records); past it the page ends early with a `next_cursor`.
const SCAN_PER_RECORD: usize = 10;
/// Records read from the store per round trip.
const READ_BATCH: usize = 1000;
/// Most (and default) records `GET /audit/verify` reads: the newest ones.
pub const VERIFY_MAX_RECORDS: usize = 100_000;
/// With `since`, the scan stops at records written this long before it (replicas' clocks may
/// differ by that much).
const SINCE_SLACK: chrono::Duration = chrono::Duration::minutes(1);
/// Longest id accepted in a filter, in characters.
const MAX_FILTER_LEN: usize = 256;

// === configuration ===

/// Audit configuration (part of `kubeline broker`'s flags).
#[derive(Debug, Clone, clap::Args)]
pub struct AuditArgs {
    /// Audit records the store keeps, all replicas together; the oldest are trimmed past it
    /// (approximately, in Redis). The embedded store keeps them in the broker's memory (about
    /// 1 KiB each): lower it there.
    #[arg(
        long = "audit-max-records",
        env = "KUBELINE_AUDIT_MAX_RECORDS",
        default_value_t = DEFAULT_AUDIT_MAX_RECORDS
    )]
    pub max_records: u64,
}

impl Default for AuditArgs {
    fn default() -> Self {
        Self {
            max_records: DEFAULT_AUDIT_MAX_RECORDS,
        }
    }
}

impl AuditArgs {
    /// Refuses unusable values, naming the flag.
    pub fn check(&self) -> anyhow::Result<()> {
        if self.max_records == 0 {
            anyhow::bail!("--audit-max-records must be at least 1");
        }
        Ok(())
    }
}

// === errors ===

/// Why an audit record could not be written. Every caller of a failed batch gets a copy.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuditError {
    /// The store refused the write or could not be reached.
    #[error("audit log unavailable: {0}")]
    Store(#[source] Arc<StoreError>),
    /// The store did not answer in time.
    #[error("audit log unavailable: no answer within {0:?}")]
    Timeout(Duration),
    /// The writer has stopped (the broker is shutting down).
    #[error("audit log unavailable: the writer has stopped")]
    Closed,
}

/// Put on a response by a handler that wrote the request's audit records itself; the
/// authentication layer records a refusal for audited routes whose handler did not run
/// ([`audited_action`]).
#[derive(Debug, Clone, Copy)]
pub struct Audited;

/// The audited action of a route, if it is one: the authentication layer records a refusal
/// (rate limited, body too large, …) of these when their handler did not record it.
pub fn audited_action(method: &axum::http::Method, route: &str) -> Option<AuditAction> {
    use axum::http::Method;
    match (method, route) {
        (&Method::POST, "/debug/execute" | "/fleet/execute") => Some(AuditAction::Execute),
        (&Method::GET, "/debug/stream") => Some(AuditAction::Stream),
        (&Method::POST, "/debug/session") => Some(AuditAction::SessionCreate),
        (&Method::DELETE, "/debug/session/{session_id}") => Some(AuditAction::SessionClose),
        (&Method::POST, "/admin/api-keys" | "/admin/agent-tokens") => {
            Some(AuditAction::CredentialCreate)
        }
        (&Method::DELETE, "/admin/api-keys/{key_id}" | "/admin/agent-tokens/{token_id}") => {
            Some(AuditAction::CredentialRevoke)
        }
        (&Method::POST, "/admin/webhooks") => Some(AuditAction::WebhookCreate),
        (&Method::DELETE, "/admin/webhooks/{webhook_id}") => Some(AuditAction::WebhookDelete),
        _ => None,
    }
}

/// An event of one request: who (from `caller`, if authenticated), from where, when, and its
/// correlation and request ids; set what else applies.
pub fn request_event(
    ctx: &RequestContext,
    caller: Option<&Caller>,
    action: AuditAction,
    outcome: AuditOutcome,
) -> AuditEvent {
    let mut event = AuditEvent::new(action, outcome, ctx.received_at);
    event.source_addr = ctx.source_addr.clone();
    event.correlation_id = Some(ctx.correlation_id.clone());
    event.request_id = Some(ctx.request_id.clone());
    if let Some(caller) = caller {
        event.credential_id = Some(caller.credential_id.clone());
        event.credential_kind = Some(match caller.kind {
            CallerKind::ApiKey => CredentialKind::ApiKey,
            CallerKind::Jwt => CredentialKind::Jwt,
        });
        event.subject = caller.subject.clone();
        event.groups = caller.groups.clone();
    }
    event
}

/// Time since the request arrived, for `duration_ms`.
pub fn elapsed_ms(ctx: &RequestContext) -> u64 {
    (chrono::Utc::now() - ctx.received_at)
        .num_milliseconds()
        .max(0) as u64
}

/// Records an event whose action already happened or was refused: a failure is logged (and
/// counted by the writer), not answered.
pub async fn record_after(auditor: &Auditor, event: AuditEvent) {
    if let Err(e) = auditor.record(event).await {
        tracing::error!(error = %e, "cannot write an audit record");
    }
}

impl From<AuditError> for ApiError {
    /// 503: the action was not carried out because it could not be audited.
    fn from(e: AuditError) -> Self {
        ApiError::service_unavailable(
            "The audit log cannot be written, so the request was not carried out; retry shortly",
            json!({ "code": "audit_unavailable", "reason": e.to_string() }),
        )
    }
}

// === the writer ===

/// Where the writer puts records: the store, or a test double.
#[async_trait]
trait AuditSink: Send + Sync + 'static {
    async fn append(&self, chain: &str, records: &[String], max_len: u64) -> StoreResult<()>;
    async fn head(&self, chain: &str) -> StoreResult<Option<String>>;
}

struct StoreSink(Arc<dyn Store>);

#[async_trait]
impl AuditSink for StoreSink {
    async fn append(&self, chain: &str, records: &[String], max_len: u64) -> StoreResult<()> {
        self.0.append_audit(chain, records, max_len).await
    }
    async fn head(&self, chain: &str) -> StoreResult<Option<String>> {
        self.0.audit_head(chain).await
    }
}

struct Job {
    event: AuditEvent,
    done: oneshot::Sender<Result<(), AuditError>>,
}

/// This replica's audit writer. Cheap to clone; the writer task ends when the last clone is
/// dropped, after writing what is queued.
#[derive(Clone)]
pub struct Auditor {
    jobs: mpsc::Sender<Job>,
    chain: Arc<str>,
}

impl std::fmt::Debug for Auditor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auditor")
            .field("chain", &self.chain)
            .finish()
    }
}

impl Auditor {
    /// Starts the writer of chain `chain` (this replica's broker id) over `store`. Needs a
    /// Tokio runtime.
    pub fn start(store: Arc<dyn Store>, chain: &str, args: &AuditArgs) -> Self {
        Self::spawn(Arc::new(StoreSink(store)), chain, args.max_records)
    }

    fn spawn(sink: Arc<dyn AuditSink>, chain: &str, max_len: u64) -> Self {
        let (jobs, queue) = mpsc::channel(QUEUE);
        let writer = Writer {
            sink,
            chain: chain.to_owned(),
            max_len,
            next_seq: 0,
            prev_hash: GENESIS_HASH.to_owned(),
            unsure: false,
        };
        tokio::spawn(writer.run(queue));
        Self {
            jobs,
            chain: chain.into(),
        }
    }

    /// The chain this replica writes (its broker id).
    pub fn chain(&self) -> &str {
        &self.chain
    }

    /// Writes `event` to the audit log; returns once the store holds it. On error the action
    /// must not be carried out (answer 503 through `ApiError::from`).
    ///
    /// Cancel-safe in the sense that matters: once queued, the record is written whether or not
    /// the caller still waits.
    pub async fn record(&self, event: AuditEvent) -> Result<(), AuditError> {
        let (done, answer) = oneshot::channel();
        self.jobs
            .send(Job { event, done })
            .await
            .map_err(|_| AuditError::Closed)?;
        answer.await.map_err(|_| AuditError::Closed)?
    }
}

struct Writer {
    sink: Arc<dyn AuditSink>,
    chain: String,
    max_len: u64,
    /// Seq of the next record, and the hash it links to: advanced only past written records.
    next_seq: u64,
    prev_hash: String,
    /// The last write failed without saying whether it happened: read the head before the next.
    unsure: bool,
}

impl Writer {
    async fn run(mut self, mut queue: mpsc::Receiver<Job>) {
        while let Some(first) = queue.recv().await {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match queue.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            let outcome = self.write(&batch).await;
            match &outcome {
                Ok(lines) => {
                    for line in lines {
                        info!(target: AUDIT_TARGET, "{line}");
                    }
                }
                Err(e) => warn!(
                    chain = %self.chain,
                    records = batch.len(),
                    error = %e,
                    "audit write failed; the requests of this batch are refused"
                ),
            }
            let answer = outcome.map(drop);
            for job in batch {
                // A caller that stopped waiting is no reason to stop.
                let _ = job.done.send(answer.clone());
            }
        }
    }

    /// Seals and writes one batch; returns the records written.
    async fn write(&mut self, batch: &[Job]) -> Result<Vec<String>, AuditError> {
        if self.unsure {
            self.catch_up().await?;
        }
        let recorded_at = Utc::now();
        let mut seq = self.next_seq;
        let mut prev_hash = self.prev_hash.clone();
        let mut lines = Vec::with_capacity(batch.len());
        for job in batch {
            let (line, hash) = seal(&job.event, &self.chain, seq, &prev_hash, recorded_at);
            lines.push(line);
            prev_hash = hash;
            seq += 1;
        }
        let written = tokio::time::timeout(
            WRITE_TIMEOUT,
            self.sink.append(&self.chain, &lines, self.max_len),
        )
        .await;
        match written {
            Ok(Ok(())) => {
                self.next_seq = seq;
                self.prev_hash = prev_hash;
                Ok(lines)
            }
            Ok(Err(e)) => {
                // A lost answer may hide a write that happened; the head will tell.
                self.unsure = true;
                Err(AuditError::Store(Arc::new(e)))
            }
            Err(_) => {
                self.unsure = true;
                Err(AuditError::Timeout(WRITE_TIMEOUT))
            }
        }
    }

    /// After a write that failed without a clear answer: if the store's head of this chain is
    /// ahead of what the writer believes, that write happened, and the chain continues after it
    /// (its callers were refused, so their records describe refused requests as accepted: the
    /// lesser harm than a forked chain).
    async fn catch_up(&mut self) -> Result<(), AuditError> {
        let head = match tokio::time::timeout(WRITE_TIMEOUT, self.sink.head(&self.chain)).await {
            Ok(Ok(head)) => head,
            Ok(Err(e)) => return Err(AuditError::Store(Arc::new(e))),
            Err(_) => return Err(AuditError::Timeout(WRITE_TIMEOUT)),
        };
        self.unsure = false;
        let Some(head) = head else { return Ok(()) };
        let parsed = StoredRecord::from_json(None, &head).check();
        match parsed {
            Ok(head) if head.chain == self.chain && head.seq >= self.next_seq => {
                warn!(
                    chain = %self.chain,
                    from = self.next_seq,
                    to = head.seq,
                    "an audit write reported as failed was stored after all; its requests were \
                     refused, and the chain continues after it"
                );
                self.next_seq = head.seq + 1;
                self.prev_hash = head.hash;
            }
            Ok(_) => {}
            Err(problem) => warn!(
                chain = %self.chain,
                problem = %problem.message,
                "unreadable audit head; continuing from the last write known to have happened"
            ),
        }
        Ok(())
    }
}

// === chaining ===

/// `value` as canonical JSON: object keys sorted by their bytes, no whitespace, serde_json's
/// spelling of strings and numbers.
pub fn canonical_json(value: &Value) -> String {
    let mut out = Vec::new();
    write_canonical(value, None, &mut out);
    canonical_string(out)
}

/// Writes `value` canonically into `out`, leaving out the top-level key `skip` (used to read
/// records back: [`seal`] renders its records from [`Canonical`]).
///
/// Straight into bytes: serde_json writes every key, string and number into `out` itself (the
/// same spelling as its `Display`), so a record costs no allocation per value.
fn write_canonical(value: &Value, skip: Option<&str>, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map
                .iter()
                .filter(|(k, _)| Some(k.as_str()) != skip)
                .collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.push(b'{');
            for (i, (key, value)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                serde_json::to_writer(&mut *out, key).expect("writing to a Vec cannot fail");
                out.push(b':');
                write_canonical(value, None, out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, None, out);
            }
            out.push(b']');
        }
        scalar => serde_json::to_writer(&mut *out, scalar).expect("writing to a Vec cannot fail"),
    }
}

/// The bytes [`write_canonical`] wrote, as the string they are.
fn canonical_string(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).expect("serde_json writes UTF-8")
}

/// Hex SHA-256 of `prev_hash` followed by `canonical`.
fn chain_hash(prev_hash: &str, canonical: &[u8]) -> String {
    let mut sha = Sha256::new();
    sha.update(prev_hash.as_bytes());
    sha.update(canonical);
    hex::encode(sha.finalize())
}

/// The hash a record must carry: hex SHA-256 of `prev_hash` followed by the canonical JSON of
/// `record` without its `hash` key.
pub fn record_hash(prev_hash: &str, record: &Value) -> String {
    let mut canonical = Vec::new();
    write_canonical(record, Some("hash"), &mut canonical);
    chain_hash(prev_hash, &canonical)
}

/// Seals `event` as record `seq` of `chain` after `prev_hash`: returns the record as stored
/// (canonical JSON) and its hash.
///
/// Rendered straight from the event by `Canonical`, whose fields are the record's keys in
/// canonical (sorted) order: once without `hash`, to hash, and once with it, to store. (Going
/// through a `serde_json::Value` map cost about 40 allocations a record.)
pub fn seal(
    event: &AuditEvent,
    chain: &str,
    seq: u64,
    prev_hash: &str,
    recorded_at: DateTime<Utc>,
) -> (String, String) {
    let recorded_at = audit_time(recorded_at);
    let mut record = Canonical::new(event, chain, seq, prev_hash, &recorded_at);
    let mut out = Vec::with_capacity(1024);
    serde_json::to_writer(&mut out, &record).expect("writing to a Vec cannot fail");
    let hash = chain_hash(prev_hash, &out);
    record.hash = Some(&hash);
    out.clear();
    serde_json::to_writer(&mut out, &record).expect("writing to a Vec cannot fail");
    (canonical_string(out), hash)
}

/// An audit record's keys in canonical order (sorted by their bytes), borrowed from its
/// [`AuditEvent`] and chain position: serde writes struct fields in declaration order, so this
/// is the canonical JSON with nothing sorted at run time. A new field of `AuditEvent` goes
/// here too, in its sorted place (`a_sealed_record_is_the_canonical_json_of_its_fields` fails
/// otherwise).
#[derive(Serialize)]
struct Canonical<'a> {
    action: AuditAction,
    #[serde(skip_serializing_if = "Option::is_none")]
    args: Option<&'a [String]>,
    chain: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    cluster_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    command_type: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    correlation_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    credential_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    credential_kind: Option<CredentialKind>,
    #[serde(skip_serializing_if = "Option::is_none")]
    decision: Option<AuditDecision>,
    #[serde(skip_serializing_if = "Option::is_none")]
    duration_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exit_code: Option<i32>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    groups: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    hash: Option<&'a str>,
    outcome: AuditOutcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    output_bytes: Option<u64>,
    prev_hash: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    #[serde(serialize_with = "serialize_audit_time")]
    received_at: DateTime<Utc>,
    recorded_at: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    result_id: Option<&'a str>,
    seq: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    session_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    source_addr: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    subject: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    target: Option<&'a str>,
}

impl<'a> Canonical<'a> {
    fn new(
        event: &'a AuditEvent,
        chain: &'a str,
        seq: u64,
        prev_hash: &'a str,
        recorded_at: &'a str,
    ) -> Self {
        // Destructured whole, so that a new field of `AuditEvent` does not compile until it is
        // placed here.
        let AuditEvent {
            action,
            outcome,
            received_at,
            duration_ms,
            credential_id,
            credential_kind,
            subject,
            groups,
            source_addr,
            cluster_id,
            session_id,
            result_id,
            command_type,
            args,
            target,
            decision,
            reason,
            exit_code,
            output_bytes,
            correlation_id,
            request_id,
        } = event;
        Self {
            action: *action,
            args: args.as_deref(),
            chain,
            cluster_id: cluster_id.as_deref(),
            command_type: command_type.as_deref(),
            correlation_id: correlation_id.as_deref(),
            credential_id: credential_id.as_deref(),
            credential_kind: *credential_kind,
            decision: *decision,
            duration_ms: *duration_ms,
            exit_code: *exit_code,
            groups,
            hash: None,
            outcome: *outcome,
            output_bytes: *output_bytes,
            prev_hash,
            reason: reason.as_deref(),
            received_at: *received_at,
            recorded_at,
            request_id: request_id.as_deref(),
            result_id: result_id.as_deref(),
            seq,
            session_id: session_id.as_deref(),
            source_addr: source_addr.as_deref(),
            subject: subject.as_deref(),
            target: target.as_deref(),
        }
    }
}

// === verification ===

/// One record as read back (from the store, or from `GET /audit`), with where it was found.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRecord {
    /// Store cursor, when known.
    pub cursor: Option<String>,
    /// The record's JSON (anything, if the record is damaged).
    pub value: Value,
}

/// What verification keeps of a record once its hash is checked: enough to follow the chain.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedRecord {
    /// Chain (broker replica id).
    pub chain: String,
    /// Position in the chain.
    pub seq: u64,
    /// The hash the record says precedes it.
    pub prev_hash: String,
    /// The hash the record carries.
    pub hash: String,
    /// Its content hashes to `hash`.
    pub intact: bool,
    /// Store cursor, when known.
    pub cursor: Option<String>,
}

impl StoredRecord {
    /// A record from its stored text; text that is not JSON is kept as a string (and reported
    /// as unreadable).
    pub fn from_json(cursor: Option<String>, raw: &str) -> Self {
        let value = serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_owned()));
        Self { cursor, value }
    }

    /// Recomputes the record's hash and reads its place in its chain.
    pub fn check(&self) -> Result<CheckedRecord, ChainProblem> {
        let fields = self.value.as_object();
        let text = |name: &str| fields.and_then(|f| f.get(name)).and_then(Value::as_str);
        let chain = text("chain");
        let seq = fields.and_then(|f| f.get("seq")).and_then(Value::as_u64);
        let unreadable = |what: &str| ChainProblem {
            chain: chain.map(str::to_owned),
            seq,
            problem: ProblemKind::Unreadable,
            message: format!("not an audit record: {what}"),
            cursor: self.cursor.clone(),
        };
        if fields.is_none() {
            return Err(unreadable("not a JSON object"));
        }
        let (Some(chain), Some(seq)) = (chain, seq) else {
            return Err(unreadable("no chain or seq"));
        };
        let (Some(prev_hash), Some(hash)) = (text("prev_hash"), text("hash")) else {
            return Err(unreadable("no prev_hash or hash"));
        };
        Ok(CheckedRecord {
            chain: chain.to_owned(),
            seq,
            prev_hash: prev_hash.to_owned(),
            hash: hash.to_owned(),
            intact: record_hash(prev_hash, &self.value) == hash,
            cursor: self.cursor.clone(),
        })
    }
}

/// Verifies records fed oldest first, chain by chain; [`Verifier::finish`] reports.
#[derive(Debug, Default)]
pub struct Verifier {
    chains: BTreeMap<String, Vec<Link>>,
    problems: Vec<ChainProblem>,
    scanned: u64,
}

#[derive(Debug)]
struct Link {
    seq: u64,
    prev_hash: String,
    hash: String,
    cursor: Option<String>,
}

impl Verifier {
    /// A verifier that has seen nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds the next record (oldest first).
    pub fn push(&mut self, record: &StoredRecord) {
        self.push_checked(record.check());
    }

    /// Feeds the next record, already checked with [`StoredRecord::check`] (so that a reader
    /// going newest first can keep only this much of each record before reversing).
    pub fn push_checked(&mut self, checked: Result<CheckedRecord, ChainProblem>) {
        self.scanned += 1;
        let record = match checked {
            Ok(record) => record,
            Err(problem) => return self.problems.push(problem),
        };
        if !record.intact {
            self.problems.push(ChainProblem {
                chain: Some(record.chain.clone()),
                seq: Some(record.seq),
                problem: ProblemKind::Edited,
                message: format!(
                    "seq {} was edited: its content does not hash to its hash",
                    record.seq
                ),
                cursor: record.cursor.clone(),
            });
        }
        self.chains.entry(record.chain).or_default().push(Link {
            seq: record.seq,
            prev_hash: record.prev_hash,
            hash: record.hash,
            cursor: record.cursor,
        });
    }

    /// Follows every chain: seq continuity, `prev_hash` links, storage order. `complete` says
    /// whether the records fed reach back to the oldest one stored.
    pub fn finish(mut self, complete: bool) -> VerifyReport {
        let mut chains = Vec::with_capacity(self.chains.len());
        for (chain, mut links) in std::mem::take(&mut self.chains) {
            self.follow(&chain, &mut links);
            let (first, last) = (links[0].seq, links[links.len() - 1].seq);
            chains.push(ChainSummary {
                trimmed: first > 0,
                chain,
                first_seq: first,
                last_seq: last,
                records: links.len() as u64,
            });
        }
        let mut problems = self.problems;
        problems.sort_by(|a, b| (&a.chain, a.seq).cmp(&(&b.chain, b.seq)));
        VerifyReport {
            ok: problems.is_empty(),
            scanned: self.scanned,
            complete,
            chains,
            problems,
        }
    }

    /// Checks one chain's links (in storage order), leaving them sorted by seq.
    fn follow(&mut self, chain: &str, links: &mut [Link]) {
        let problem = |seq: u64, problem: ProblemKind, message: String, cursor: &Option<String>| {
            ChainProblem {
                chain: Some(chain.to_owned()),
                seq: Some(seq),
                problem,
                message,
                cursor: cursor.clone(),
            }
        };
        // Storage order: a chain is written in seq order, so a lower seq after a higher one was
        // moved.
        let mut highest: Option<u64> = None;
        for link in links.iter() {
            if let Some(h) = highest.filter(|h| link.seq < *h) {
                self.problems.push(problem(
                    link.seq,
                    ProblemKind::Reordered,
                    format!("seq {} is stored after seq {h}", link.seq),
                    &link.cursor,
                ));
            }
            highest = highest.max(Some(link.seq));
        }
        links.sort_by_key(|l| l.seq);
        let first = &links[0];
        if first.seq == 0 && first.prev_hash != GENESIS_HASH {
            self.problems.push(problem(
                0,
                ProblemKind::BrokenLink,
                "seq 0 does not start from the genesis hash".to_owned(),
                &first.cursor,
            ));
        }
        for pair in links.windows(2) {
            let (a, b) = (&pair[0], &pair[1]);
            if b.seq == a.seq {
                self.problems.push(problem(
                    b.seq,
                    ProblemKind::Duplicate,
                    format!("seq {} is stored more than once", b.seq),
                    &b.cursor,
                ));
            } else if b.seq > a.seq + 1 {
                let message = if b.seq == a.seq + 2 {
                    format!(
                        "seq {} is missing (the chain goes from {} to {})",
                        a.seq + 1,
                        a.seq,
                        b.seq
                    )
                } else {
                    format!(
                        "seqs {} to {} are missing (the chain goes from {} to {})",
                        a.seq + 1,
                        b.seq - 1,
                        a.seq,
                        b.seq
                    )
                };
                self.problems
                    .push(problem(a.seq + 1, ProblemKind::Gap, message, &b.cursor));
            } else if b.prev_hash != a.hash {
                self.problems.push(problem(
                    b.seq,
                    ProblemKind::BrokenLink,
                    format!(
                        "seq {} does not link to seq {}: its prev_hash is not that record's hash",
                        b.seq, a.seq
                    ),
                    &b.cursor,
                ));
            }
        }
    }
}

/// Verifies records given oldest first (as stored): recomputes every hash and follows each
/// chain's `prev_hash` links and seqs. A chain whose first record is not seq 0 is reported as
/// trimmed, not as a failure.
pub fn verify(records_oldest_first: impl IntoIterator<Item = StoredRecord>) -> VerifyReport {
    let mut verifier = Verifier::new();
    for record in records_oldest_first {
        verifier.push(&record);
    }
    verifier.finish(true)
}

// === GET /audit ===

/// Query of `GET /audit`. Values arrive as strings and are checked in the handler, so that the
/// answer can say what is allowed.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only records of this cluster.
    #[param(value_type = Option<String>, min_length = 1, max_length = 128,
        pattern = "^[A-Za-z0-9._-]+$", example = "production-cluster")]
    cluster_id: Option<String>,
    /// Only records of this credential (`credential_id` of the records).
    #[param(value_type = Option<String>, max_length = 256, example = "key:sha256:1f2e3d4c")]
    credential_id: Option<String>,
    /// Only records of this session.
    #[param(value_type = Option<String>, max_length = 256, example = "sess_abc123def456")]
    session_id: Option<String>,
    /// Only records with this outcome.
    #[param(value_type = Option<AuditOutcome>)]
    outcome: Option<String>,
    /// Only records of this action.
    #[param(value_type = Option<AuditAction>)]
    action: Option<String>,
    /// Only records written (`recorded_at`) at or after this time, RFC 3339.
    #[param(value_type = Option<String>, format = DateTime, example = "2024-01-20T10:00:00Z")]
    since: Option<String>,
    /// Only records written (`recorded_at`) at or before this time, RFC 3339.
    #[param(value_type = Option<String>, format = DateTime, example = "2024-01-20T11:00:00Z")]
    until: Option<String>,
    /// Most records to return (default 100).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000, example = 100)]
    limit: Option<String>,
    /// `next_cursor` of the previous page: continue with older records.
    #[param(value_type = Option<String>, pattern = "^[0-9]{1,19}-[0-9]{1,19}$",
        example = "1705746735361-0")]
    cursor: Option<String>,
}

/// The checked filters of a `GET /audit`.
#[derive(Debug, Default)]
struct Filter {
    equal: Vec<(&'static str, String)>,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
}

impl Filter {
    fn matches(&self, record: &Value) -> bool {
        self.equal
            .iter()
            .all(|(name, want)| record.get(*name).and_then(Value::as_str) == Some(want))
            && match recorded_at(record) {
                Some(t) => self.since.is_none_or(|s| t >= s) && self.until.is_none_or(|u| t <= u),
                None => self.since.is_none() && self.until.is_none(),
            }
    }

    /// The record is so old that no older one can match `since`.
    fn past_since(&self, record: &Value) -> bool {
        match (self.since, recorded_at(record)) {
            (Some(since), Some(t)) => t < since - SINCE_SLACK,
            _ => false,
        }
    }
}

fn recorded_at(record: &Value) -> Option<DateTime<Utc>> {
    let text = record.get("recorded_at")?.as_str()?;
    Some(DateTime::parse_from_rfc3339(text).ok()?.with_timezone(&Utc))
}

fn id_filter(value: Option<String>, field: &str) -> ApiResult<Option<String>> {
    match value {
        Some(v) if v.is_empty() => Err(ApiError::invalid_field(
            field,
            format!("Invalid {field}: give a value, or leave the parameter out"),
        )),
        Some(v) if v.chars().count() > MAX_FILTER_LEN => Err(ApiError::invalid_field(
            field,
            format!("Invalid {field}: at most {MAX_FILTER_LEN} characters"),
        )),
        v => Ok(v),
    }
}

/// A time filter; given empty it is refused like any other value that is not a time.
fn time_filter(value: Option<String>, field: &str) -> ApiResult<Option<DateTime<Utc>>> {
    value
        .map(|v| {
            DateTime::parse_from_rfc3339(&v)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| {
                    ApiError::invalid_field(
                        field,
                        format!(
                            "Invalid {field} {v:?}: give an RFC 3339 time such as \
                             2024-01-20T10:30:45Z"
                        ),
                    )
                })
        })
        .transpose()
}

fn count_param(value: Option<String>, default: usize, max: usize) -> ApiResult<usize> {
    match value {
        None => Ok(default),
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| {
                ApiError::invalid_field(
                    "limit",
                    format!("Invalid limit {l:?}: use a whole number from 1 to {max}"),
                )
            }),
    }
}

fn cursor_param(value: Option<String>) -> ApiResult<Option<String>> {
    match value {
        Some(c) if parse_audit_cursor(&c).is_none() => Err(ApiError::invalid_field(
            "cursor",
            format!("Invalid cursor {c:?}: pass the next_cursor of a previous page"),
        )),
        c => Ok(c),
    }
}

impl AuditQuery {
    fn filter(self) -> ApiResult<(Filter, usize, Option<String>)> {
        let mut filter = Filter::default();
        if let Some(cluster) = self.cluster_id {
            api::check_cluster_id(&cluster)
                .map_err(|message| ApiError::invalid_field("cluster_id", message))?;
            filter.equal.push(("cluster_id", cluster));
        }
        if let Some(id) = id_filter(self.credential_id, "credential_id")? {
            filter.equal.push(("credential_id", id));
        }
        if let Some(id) = id_filter(self.session_id, "session_id")? {
            filter.equal.push(("session_id", id));
        }
        if let Some(o) = self.outcome {
            let outcome = AuditOutcome::parse(&o).ok_or_else(|| {
                let all: Vec<&str> = AuditOutcome::ALL.iter().map(|o| o.as_str()).collect();
                ApiError::invalid_field(
                    "outcome",
                    format!("Invalid outcome {o:?}: use one of {}", all.join(", ")),
                )
            })?;
            filter.equal.push(("outcome", outcome.as_str().to_owned()));
        }
        if let Some(a) = self.action {
            let action = AuditAction::parse(&a).ok_or_else(|| {
                let all: Vec<&str> = AuditAction::ALL.iter().map(|a| a.as_str()).collect();
                ApiError::invalid_field(
                    "action",
                    format!("Invalid action {a:?}: use one of {}", all.join(", ")),
                )
            })?;
            filter.equal.push(("action", action.as_str().to_owned()));
        }
        filter.since = time_filter(self.since, "since")?;
        filter.until = time_filter(self.until, "until")?;
        let limit = count_param(self.limit, DEFAULT_LIMIT, MAX_LIMIT)?;
        Ok((filter, limit, cursor_param(self.cursor)?))
    }
}

/// List audit records (admin), newest first.
///
/// Each request reads at most 10 stored records per record asked for (`limit`), 10,000 at most:
/// with a selective filter a page may hold fewer than `limit` records, or none, and still have
/// a `next_cursor`; follow it until it is `null`. With `since`, the listing ends at records
/// written a minute before it. Records are returned exactly as stored, so their hashes can be
/// checked (`kubeline audit verify` does).
#[utoipa::path(get, path = "/audit", tag = "audit",
    params(AuditQuery),
    responses(
        (status = 200, description = "Matching records, newest first.", body = AuditPage),
        (status = 400, response = crate::openapi::BadRequest),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 500, response = crate::openapi::InternalError),
        (status = 503, response = crate::openapi::ServiceUnavailable),
    ))]
pub async fn list_audit(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<AuditQuery>,
) -> ApiResult<Json<AuditPage>> {
    caller.require_admin()?;
    let (filter, limit, mut cursor) = q.filter()?;
    if let (Some(since), Some(until)) = (filter.since, filter.until)
        && since > until
    {
        // An empty interval: nothing to read.
        return Ok(Json(AuditPage {
            records: Vec::new(),
            next_cursor: None,
        }));
    }
    let store = state.hub.store();
    let budget = limit * SCAN_PER_RECORD;
    let mut scanned = 0;
    let mut records = Vec::new();
    let next_cursor = 'scan: loop {
        let want = (budget - scanned).min(READ_BATCH);
        let page = store.read_audit(cursor.as_deref(), want).await?;
        let end = page.len() < want;
        for (at, raw) in page {
            scanned += 1;
            cursor = Some(at);
            let record: Value = match serde_json::from_str(&raw) {
                Ok(v @ Value::Object(_)) => v,
                _ => {
                    warn!(cursor = ?cursor, "unreadable audit record skipped in a listing");
                    continue;
                }
            };
            if filter.past_since(&record) {
                break 'scan None;
            }
            if filter.matches(&record) {
                records.push(record);
                if records.len() == limit {
                    break 'scan cursor;
                }
            }
        }
        if end {
            break None;
        }
        if scanned >= budget {
            break cursor;
        }
    };
    Ok(Json(AuditPage {
        records,
        next_cursor,
    }))
}

// === GET /audit/verify ===

/// Query of `GET /audit/verify`.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct VerifyQuery {
    /// How many of the newest records to check (default and most: 100,000).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100000, example = 100000)]
    limit: Option<String>,
}

/// Verify the audit log's hash chains (admin).
///
/// Reads the newest `limit` records (at most 100,000: the bound on one request's work) and, per
/// chain (broker replica), recomputes every hash and checks the `prev_hash` links, seq
/// continuity and storage order. A chain that starts after seq 0 is reported `trimmed`, not as
/// a problem: its older records were trimmed (`--audit-max-records`) or lie beyond the scan
/// (`complete` false). For a check that does not trust this broker, run
/// `kubeline audit verify`, which reads `GET /audit` and verifies locally.
#[utoipa::path(get, path = "/audit/verify", tag = "audit",
    params(VerifyQuery),
    responses(
        (status = 200, description = "What the verification found; `ok` is false when it found a problem.", body = VerifyReport),
        (status = 400, response = crate::openapi::BadRequest),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 500, response = crate::openapi::InternalError),
        (status = 503, response = crate::openapi::ServiceUnavailable),
    ))]
pub async fn verify_audit(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<VerifyQuery>,
) -> ApiResult<Json<VerifyReport>> {
    caller.require_admin()?;
    let limit = count_param(q.limit, VERIFY_MAX_RECORDS, VERIFY_MAX_RECORDS)?;
    let store = state.hub.store();
    // Newest first, keeping only what verification needs of each record; then oldest first.
    let mut checked = Vec::new();
    let mut cursor: Option<String> = None;
    let complete = loop {
        let want = (limit - checked.len()).min(READ_BATCH);
        if want == 0 {
            break false;
        }
        let page = store.read_audit(cursor.as_deref(), want).await?;
        let end = page.len() < want;
        for (at, raw) in page {
            checked.push(StoredRecord::from_json(Some(at.clone()), &raw).check());
            cursor = Some(at);
        }
        if end {
            break true;
        }
    };
    let mut verifier = Verifier::new();
    checked
        .into_iter()
        .rev()
        .for_each(|c| verifier.push_checked(c));
    Ok(Json(verifier.finish(complete)))
}

#[cfg(test)]
mod tests;
