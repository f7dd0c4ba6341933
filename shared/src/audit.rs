//! Audit records: what the broker writes for every execute, session change, credential change
//! (webhook endpoints included) and authentication failure, and the bodies of `GET /audit` and
//! `GET /audit/verify`.
//!
//! A record is an [`AuditEvent`] sealed into its replica's hash chain ([`AuditRecord`]): `chain`
//! is the broker replica that wrote it, `seq` counts from 0 within the chain, and
//! `hash = hex(SHA-256(prev_hash || canonical JSON of the record without "hash"))`, where the
//! canonical JSON has its object keys sorted and no whitespace. A verifier that recomputes the
//! hashes and follows the `prev_hash` links finds edited, missing and reordered records.
//!
//! Timestamps are RFC 3339 in UTC with millisecond precision (`2024-01-20T10:30:45.123Z`).

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;
use utoipa::ToSchema;

/// Serializes an audit timestamp: RFC 3339, UTC, milliseconds (`2024-01-20T10:30:45.123Z`).
pub fn serialize_audit_time<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&audit_time(*t))
}

/// An audit timestamp as records carry it (`2024-01-20T10:30:45.123Z`).
pub fn audit_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// What a record is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum AuditAction {
    /// `POST /debug/execute`: a command for a cluster.
    #[serde(rename = "execute")]
    Execute,
    /// `POST /debug/session`.
    #[serde(rename = "session.create")]
    SessionCreate,
    /// `DELETE /debug/session/{id}`.
    #[serde(rename = "session.close")]
    SessionClose,
    /// A credential (API key, agent token) was created or rotated in.
    #[serde(rename = "credential.create")]
    CredentialCreate,
    /// A credential was revoked.
    #[serde(rename = "credential.revoke")]
    CredentialRevoke,
    /// A request or an agent link was refused for its credentials (401/403).
    #[serde(rename = "auth.failure")]
    AuthFailure,
    /// A webhook endpoint was registered (`POST /admin/webhooks`).
    #[serde(rename = "webhook.create")]
    WebhookCreate,
    /// A webhook endpoint was deleted (`DELETE /admin/webhooks/{id}`).
    #[serde(rename = "webhook.delete")]
    WebhookDelete,
    /// The broker stopped delivering to an endpoint because it answered 410 Gone.
    #[serde(rename = "webhook.disable")]
    WebhookDisable,
    /// `GET /debug/stream`: a streamed command (accepted, then ended with its byte count).
    #[serde(rename = "stream")]
    Stream,
}

impl AuditAction {
    /// Every action, in the order the API documents them.
    pub const ALL: [Self; 10] = [
        Self::Execute,
        Self::SessionCreate,
        Self::SessionClose,
        Self::CredentialCreate,
        Self::CredentialRevoke,
        Self::AuthFailure,
        Self::WebhookCreate,
        Self::WebhookDelete,
        Self::WebhookDisable,
        Self::Stream,
    ];

    /// The name records carry.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Execute => "execute",
            Self::SessionCreate => "session.create",
            Self::SessionClose => "session.close",
            Self::CredentialCreate => "credential.create",
            Self::CredentialRevoke => "credential.revoke",
            Self::AuthFailure => "auth.failure",
            Self::WebhookCreate => "webhook.create",
            Self::WebhookDelete => "webhook.delete",
            Self::WebhookDisable => "webhook.disable",
            Self::Stream => "stream",
        }
    }

    /// The action named `s`, if any.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

/// How the audited action ended, as far as the broker knew when it wrote the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AuditOutcome {
    /// Accepted and about to be carried out (an execute's record before it is dispatched).
    Accepted,
    /// Carried out successfully.
    Completed,
    /// Carried out, and it failed (a command with a non-zero exit code).
    Failed,
    /// Did not finish before its deadline.
    Timeout,
    /// Refused: by policy, a limit, or for the caller's credentials.
    Refused,
    /// Could not be carried out because of a broker-side error (store, agent link).
    Error,
}

impl AuditOutcome {
    /// Every outcome.
    pub const ALL: [Self; 6] = [
        Self::Accepted,
        Self::Completed,
        Self::Failed,
        Self::Timeout,
        Self::Refused,
        Self::Error,
    ];

    /// The name records carry.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Timeout => "timeout",
            Self::Refused => "refused",
            Self::Error => "error",
        }
    }

    /// The outcome named `s`, if any.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.as_str() == s)
    }
}

/// The authorization decision taken for the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AuditDecision {
    /// The credential may do this.
    Allowed,
    /// The credential may not do this; `reason` says why.
    Refused,
}

/// The kind of credential a caller presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CredentialKind {
    /// An API key (`--api-key`).
    ApiKey,
    /// A JSON Web Token.
    Jwt,
    /// A cluster's agent token.
    AgentToken,
}

/// One audited event: who did what, on which cluster, with which decision and outcome.
///
/// Absent fields are left out of the JSON.
// Build one with `AuditEvent::new` and set the fields that apply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuditEvent {
    /// What was done.
    pub action: AuditAction,
    /// How it ended (`accepted` for an execute's record written before dispatch).
    pub outcome: AuditOutcome,
    /// When the broker received the request.
    #[serde(serialize_with = "serialize_audit_time")]
    #[schema(value_type = String, format = DateTime, example = "2024-01-20T10:32:15.120Z")]
    pub received_at: DateTime<Utc>,
    /// Milliseconds from `received_at` to the outcome; absent when the record is written before
    /// the action ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// Identity of the credential used (never the secret): an API key's fingerprint, a JWT's
    /// issuer and subject, an agent token's cluster. For an authentication failure, what could
    /// be told of the credential that was refused, if anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "key:sha256:1f2e3d4c")]
    pub credential_id: Option<String>,
    /// Kind of the credential.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_kind: Option<CredentialKind>,
    /// The subject the credential names (a JWT's `sub`, an API key's label).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Groups of the subject (from a JWT).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// Network address the request came from (the TCP peer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "10.0.3.17")]
    pub source_addr: Option<String>,
    /// Cluster the action was on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<String>,
    /// Debug session the action was in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// Result of an execute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_id: Option<String>,
    /// kubectl command type of an execute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_type: Option<String>,
    /// Arguments of an execute, as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<String>>,
    /// What a credential action was on (credential.create, credential.revoke: the credential's
    /// id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The authorization decision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<AuditDecision>,
    /// Why it was refused or failed, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Exit code of an execute's command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Bytes of output a stream sent to its caller (its end record).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_bytes: Option<u64>,
    /// Correlation id of the request (`X-Correlation-ID`, or one the broker generated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    /// Id of the request in the broker's logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

impl AuditEvent {
    /// An event with only its action, outcome and time; set the fields that apply.
    pub fn new(action: AuditAction, outcome: AuditOutcome, received_at: DateTime<Utc>) -> Self {
        Self {
            action,
            outcome,
            received_at,
            duration_ms: None,
            credential_id: None,
            credential_kind: None,
            subject: None,
            groups: Vec::new(),
            source_addr: None,
            cluster_id: None,
            session_id: None,
            result_id: None,
            command_type: None,
            args: None,
            target: None,
            decision: None,
            reason: None,
            exit_code: None,
            output_bytes: None,
            correlation_id: None,
            request_id: None,
        }
    }
}

/// An audit record as stored and listed: the event, sealed into its replica's hash chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(examples(json!({
    "action": "execute",
    "outcome": "completed",
    "received_at": "2024-01-20T10:32:15.120Z",
    "duration_ms": 234,
    "credential_id": "key:sha256:1f2e3d4c",
    "credential_kind": "api_key",
    "source_addr": "10.0.3.17",
    "cluster_id": "production-cluster",
    "session_id": "sess_abc123def456",
    "result_id": "res_xyz789abc123",
    "command_type": "get",
    "args": ["pods", "-A"],
    "decision": "allowed",
    "exit_code": 0,
    "correlation_id": "trace-123",
    "chain": "broker_5f0c3e1a9b7d4c2e8f6a1b3c5d7e9f01",
    "seq": 41,
    "recorded_at": "2024-01-20T10:32:15.361Z",
    "prev_hash": "9f2c6a0e4b8d1f3a5c7e9b0d2f4a6c8e1b3d5f7a9c0e2b4d6f8a1c3e5b7d9f0a",
    "hash": "3b5d7f9a1c3e5a7c9e1b3d5f7a9c1e3b5d7f9a1c3e5b7d9f1a3c5e7b9d1f3a5c"
})))]
pub struct AuditRecord {
    /// The event.
    #[serde(flatten)]
    pub event: AuditEvent,
    /// The chain the record belongs to: the id of the broker replica that wrote it.
    pub chain: String,
    /// Position in the chain, from 0.
    pub seq: u64,
    /// When the replica sealed and wrote the record (`since`/`until` of `GET /audit` select on
    /// it).
    #[serde(serialize_with = "serialize_audit_time")]
    #[schema(value_type = String, format = DateTime)]
    pub recorded_at: DateTime<Utc>,
    /// `hash` of the chain's previous record; 64 zeros for `seq` 0.
    pub prev_hash: String,
    /// Hex SHA-256 of `prev_hash` followed by the canonical JSON (keys sorted, no whitespace)
    /// of this record without `hash`.
    pub hash: String,
}

/// A page of `GET /audit`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AuditPage {
    /// Matching records, newest first, each exactly as stored (so that their hashes can be
    /// checked).
    #[schema(value_type = Vec<AuditRecord>)]
    pub records: Vec<Value>,
    /// Pass as `cursor` to continue with older records; `null` when there are no more.
    #[schema(required = true, example = "1705746735361-0")]
    pub next_cursor: Option<String>,
}

/// What `GET /audit/verify` (and `kubeline audit verify`) found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(examples(json!({
    "ok": false,
    "scanned": 1203,
    "complete": true,
    "chains": [
        {"chain": "broker_5f0c3e1a9b7d4c2e8f6a1b3c5d7e9f01", "first_seq": 0, "last_seq": 1000,
         "records": 1000, "trimmed": false},
        {"chain": "broker_0a1b2c3d4e5f60718293a4b5c6d7e8f9", "first_seq": 57, "last_seq": 259,
         "records": 203, "trimmed": true}
    ],
    "problems": [
        {"chain": "broker_5f0c3e1a9b7d4c2e8f6a1b3c5d7e9f01", "seq": 412, "problem": "gap",
         "message": "seq 412 is missing (the chain goes from 411 to 413)"}
    ]
})))]
pub struct VerifyReport {
    /// No problem was found.
    pub ok: bool,
    /// Records read.
    pub scanned: u64,
    /// The scan reached the oldest stored record; when false, only the newest `scanned` records
    /// were checked.
    pub complete: bool,
    /// Each chain seen, by chain id.
    pub chains: Vec<ChainSummary>,
    /// Every problem found, by chain and seq.
    pub problems: Vec<ChainProblem>,
}

/// What was read of one chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChainSummary {
    /// The chain (broker replica id).
    pub chain: String,
    /// Lowest seq read.
    pub first_seq: u64,
    /// Highest seq read.
    pub last_seq: u64,
    /// Records read.
    pub records: u64,
    /// `first_seq` is not 0: the older records were trimmed (`--audit-max-records`) or lie
    /// before the scan. Not a failure, but nothing before `first_seq` was checked.
    pub trimmed: bool,
}

/// Something wrong in a chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChainProblem {
    /// The chain; absent for a record too damaged to name one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<String>,
    /// The seq concerned (for a gap, the first missing one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// What is wrong.
    pub problem: ProblemKind,
    /// What is wrong, in words.
    pub message: String,
    /// Where the record was found (store cursor), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// The kinds of problem a verification reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// The record's content does not match its `hash`: it was edited.
    Edited,
    /// The record's `prev_hash` is not the `hash` of the chain's previous record: that record
    /// was replaced (edited with its hash recomputed), or the chain was spliced.
    BrokenLink,
    /// One or more records of the chain are missing.
    Gap,
    /// The record is stored after a record with a higher seq of the same chain.
    Reordered,
    /// Two records of the chain have the same seq.
    Duplicate,
    /// The record is not a readable audit record (not JSON, or without chain, seq or hashes).
    Unreadable,
}
