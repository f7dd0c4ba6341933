//! REST API bodies, field for field as the contract (`seeds/001_…`) describes them.
//!
//! Timestamps are RFC 3339 in UTC with second precision, as in the contract's examples.
//!
//! Every type here also derives `utoipa::ToSchema`: the broker's OpenAPI document
//! (`/openapi.json`) takes its schemas, field descriptions (these `///` lines) and examples (the
//! contract's) from here.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};
use utoipa::ToSchema;

/// A timestamp the way the contract prints it: `2024-01-20T10:30:45Z`.
pub fn format_time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Serializes a timestamp the way the contract prints it: `2024-01-20T10:30:45Z`.
pub fn serialize_time<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_time(t))
}

pub(crate) fn serialize_opt_time<S: Serializer>(
    t: &Option<DateTime<Utc>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => serialize_time(t, s),
        None => s.serialize_none(),
    }
}

// === identifiers ===

/// Longest cluster id accepted.
pub const MAX_CLUSTER_ID_LEN: usize = 128;

/// Checks a cluster id: 1 to [`MAX_CLUSTER_ID_LEN`] letters, digits, `-`, `_` or `.`.
pub fn check_cluster_id(id: &str) -> Result<(), String> {
    let ok = !id.is_empty()
        && id.len() <= MAX_CLUSTER_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "Invalid cluster_id {id:?}: use 1 to {MAX_CLUSTER_ID_LEN} letters, digits, '-', '_' or '.'"
        ))
    }
}

/// Turns any name (a kubeconfig context such as `admin@prod`) into a valid cluster id by
/// replacing every other character with `-`.
pub fn cluster_id_from(name: &str) -> String {
    let id: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .take(MAX_CLUSTER_ID_LEN)
        .collect();
    if id.is_empty() {
        "cluster".to_owned()
    } else {
        id
    }
}

// === health ===

/// Body of `GET /health`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(examples(json!({
    "status": "healthy",
    "version": "1.0.0",
    "timestamp": "2024-01-20T10:30:45Z",
    "uptime_seconds": 3600
})))]
pub struct Health {
    /// `healthy`, or `unhealthy` when the store cannot be reached.
    #[schema(examples("healthy"))]
    pub status: String,
    /// kubeline version of the answering broker.
    pub version: String,
    /// When the check ran.
    #[serde(serialize_with = "serialize_time")]
    pub timestamp: DateTime<Utc>,
    /// Seconds since this broker process started.
    pub uptime_seconds: u64,
    /// Why the broker is unhealthy; absent when healthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

// === sessions ===

/// Lifecycle state of a debug session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SessionStatus {
    /// Open: commands may run in it.
    Active,
    /// Closed by `DELETE /debug/session/{id}`.
    Closed,
    /// Past its `expires_at`.
    Expired,
}

impl SessionStatus {
    /// The status as the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Closed => "closed",
            Self::Expired => "expired",
        }
    }

    /// Parses the API spelling.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(Self::Active),
            "closed" => Some(Self::Closed),
            "expired" => Some(Self::Expired),
            _ => None,
        }
    }
}

/// Body of `POST /debug/session`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[schema(examples(json!({
    "cluster_id": "production-cluster",
    "metadata": { "user": "debugging-agent", "correlation_id": "trace-123" }
})))]
pub struct CreateSessionRequest {
    /// Cluster the session debugs: 1 to 128 letters, digits, `-`, `_` or `.`.
    #[schema(required = true, value_type = String, min_length = 1, max_length = 128,
             pattern = "^[A-Za-z0-9._-]+$", examples("production-cluster"))]
    pub cluster_id: Option<String>,
    /// Free-form caller metadata (`user`, `correlation_id`, …), kept with the session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
}

/// Answer to `POST /debug/session`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(examples(json!({
    "session_id": "sess_abc123def456",
    "cluster_id": "production-cluster",
    "status": "active",
    "created_at": "2024-01-20T10:30:45Z",
    "expires_at": "2024-01-20T11:30:45Z"
})))]
pub struct SessionCreated {
    /// Identifier to pass to `/debug/execute`.
    pub session_id: String,
    /// Cluster the session debugs.
    pub cluster_id: String,
    /// Always `active` for a new session.
    pub status: SessionStatus,
    /// When the session was created.
    #[serde(serialize_with = "serialize_time")]
    pub created_at: DateTime<Utc>,
    /// When the session stops accepting commands.
    #[serde(serialize_with = "serialize_time")]
    pub expires_at: DateTime<Utc>,
}

/// Answer to `GET /debug/session/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(examples(json!({
    "session_id": "sess_abc123def456",
    "cluster_id": "production-cluster",
    "status": "active",
    "created_at": "2024-01-20T10:30:45Z",
    "expires_at": "2024-01-20T11:30:45Z",
    "last_activity": "2024-01-20T10:32:15Z",
    "commands_executed": 5
})))]
pub struct SessionInfo {
    /// Session identifier.
    pub session_id: String,
    /// Cluster the session debugs.
    pub cluster_id: String,
    /// Current state.
    pub status: SessionStatus,
    /// When the session was created.
    #[serde(serialize_with = "serialize_time")]
    pub created_at: DateTime<Utc>,
    /// When the session stops accepting commands.
    #[serde(serialize_with = "serialize_time")]
    pub expires_at: DateTime<Utc>,
    /// When the last command ran in it (the creation time before any).
    #[serde(serialize_with = "serialize_time")]
    pub last_activity: DateTime<Utc>,
    /// How many commands were executed in it.
    pub commands_executed: u64,
}

/// Answer to `DELETE /debug/session/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(examples(json!({
    "session_id": "sess_abc123def456",
    "status": "closed",
    "closed_at": "2024-01-20T10:35:00Z"
})))]
pub struct SessionClosed {
    /// Session identifier.
    pub session_id: String,
    /// Always `closed`.
    pub status: SessionStatus,
    /// When it was closed.
    #[serde(serialize_with = "serialize_time")]
    pub closed_at: DateTime<Utc>,
}

/// One row of `GET /debug/sessions`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SessionSummary {
    /// Session identifier.
    pub session_id: String,
    /// Cluster the session debugs.
    pub cluster_id: String,
    /// Current state.
    pub status: SessionStatus,
    /// When the session was created.
    #[serde(serialize_with = "serialize_time")]
    pub created_at: DateTime<Utc>,
    /// When the last command ran in it.
    #[serde(serialize_with = "serialize_time")]
    pub last_activity: DateTime<Utc>,
}

/// Answer to `GET /debug/sessions`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(examples(json!({
    "sessions": [{
        "session_id": "sess_abc123def456",
        "cluster_id": "production-cluster",
        "status": "active",
        "created_at": "2024-01-20T10:30:45Z",
        "last_activity": "2024-01-20T10:32:15Z"
    }],
    "total": 1
})))]
pub struct SessionList {
    /// Matching sessions, newest first, at most `limit`.
    pub sessions: Vec<SessionSummary>,
    /// Number of sessions returned.
    pub total: usize,
}

// === execute and results ===

/// Body of `POST /debug/execute`.
// The required fields are `Option`s so that a missing one is reported by name instead of as a
// generic parse error; the schema marks them required.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[schema(examples(json!({
    "cluster_id": "production-cluster",
    "session_id": "sess_abc123def456",
    "command_type": "get",
    "args": ["pods", "-A", "--limit=10"],
    "timeout": 30
})))]
pub struct ExecuteRequest {
    /// Target cluster: 1 to 128 letters, digits, `-`, `_` or `.`.
    #[schema(required = true, value_type = String, min_length = 1, max_length = 128,
             pattern = "^[A-Za-z0-9._-]+$", examples("production-cluster"))]
    pub cluster_id: Option<String>,
    /// Active debug session on that cluster (`session_id` of `POST /debug/session`).
    #[schema(required = true, value_type = String, min_length = 1, examples("sess_abc123def456"))]
    pub session_id: Option<String>,
    /// kubectl command type (`get`, `version`, …).
    #[schema(required = true, schema_with = command_type_schema)]
    pub command_type: Option<String>,
    /// Command arguments, as kubectl would take them after the command type.
    #[schema(required = true, schema_with = args_schema)]
    pub args: Option<Vec<String>>,
    /// Seconds to wait for the result (default 30), greater than 0 and at most the broker's
    /// `--max-timeout` (default 300). `X-Request-Timeout` gives it when the body does not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = f64, exclusive_minimum = 0.0, maximum = 300.0, examples(30))]
    pub timeout: Option<f64>,
    /// Output budget in bytes for this command, at most the broker's `--max-output-bytes`
    /// (its default, 4 MiB unless configured). Output past it is cut and the result says how
    /// much was left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = u64, minimum = 1, maximum = 4194304)]
    pub max_output_bytes: Option<u64>,
}

/// Schema of `ExecuteRequest.command_type`: the commands the parser knows, listed from it.
fn command_type_schema() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .description(Some(
            "kubectl command type; the read-only commands kubeline runs.",
        ))
        .enum_values(Some(crate::command::SUPPORTED_COMMANDS.iter().copied()))
        .examples(["get"])
        .build()
}

/// Schema of `ExecuteRequest.args`, bounded as the parser bounds it.
fn args_schema() -> utoipa::openapi::schema::Array {
    let item = utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .build();
    utoipa::openapi::schema::ArrayBuilder::new()
        .items(item)
        .max_items(Some(crate::limits::MAX_ARGS))
        .description(Some(format!(
            "Command arguments, as kubectl would take them after the command type: at most {} \
             of them, {} bytes in all. They are parsed, never run by a shell: flags outside the \
             command's allowlist, write verbs and credential flags (`--as`, `--token`, \
             `--kubeconfig`, `--raw`, …) are refused with 400 and the reason.",
            crate::limits::MAX_ARGS,
            crate::limits::MAX_ARGV_BYTES
        )))
        .examples([serde_json::json!(["pods", "-A"])])
        .build()
}

/// Outcome of a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ResultStatus {
    /// Queued or running; no outcome yet.
    Pending,
    /// Ran and exited 0.
    Completed,
    /// Ran and failed (as kubectl would, with a non-zero exit code), or could not run.
    Failed,
    /// Did not finish before its deadline.
    Timeout,
}

/// Answer to `POST /debug/execute` and `GET /debug/result/{result_id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(examples(json!({
    "result_id": "res_xyz789abc123",
    "session_id": "sess_abc123def456",
    "cluster_id": "production-cluster",
    "status": "completed",
    "output": "NAMESPACE     NAME                    READY   STATUS    RESTARTS   AGE\nkube-system   coredns-558bd4d5db-abc  1/1     Running   0          5m",
    "error": null,
    "exit_code": 0,
    "execution_time_ms": 234,
    "executed_at": "2024-01-20T10:32:15Z",
    "correlation_id": "trace-123"
})))]
pub struct CommandResult {
    /// Identifier to fetch this result again.
    pub result_id: String,
    /// Session the command ran in.
    pub session_id: String,
    /// Cluster the command ran on.
    pub cluster_id: String,
    /// Outcome.
    pub status: ResultStatus,
    /// What the command printed on standard output.
    pub output: String,
    /// What the command printed on standard error, or why it could not run; `null` on success.
    #[schema(required = true)]
    pub error: Option<String>,
    /// Exit code as kubectl would report it; `null` while pending.
    #[schema(required = true)]
    pub exit_code: Option<i32>,
    /// Time the agent spent running the command.
    pub execution_time_ms: u64,
    /// When the command was accepted by the broker.
    #[serde(serialize_with = "serialize_time")]
    pub executed_at: DateTime<Utc>,
    /// Correlation id of the request (`X-Correlation-ID`, or one the broker generated).
    pub correlation_id: String,
    /// Set when the output was cut to fit the output budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncated: Option<Truncation>,
    /// Set when the result was read by window (`offset`/`limit` on `GET /debug/result/{id}`):
    /// `output` then holds only that part of the stored output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<OutputWindow>,
}

/// Which part of a result's stored output an answer holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(examples(json!({"offset": 0, "length": 16384, "total_bytes": 702811, "next_offset": 16384})))]
pub struct OutputWindow {
    /// Byte offset of the window in the stored output.
    pub offset: u64,
    /// Bytes of output in the window.
    pub length: u64,
    /// Bytes of stored output in all.
    pub total_bytes: u64,
    /// Where the next window starts; `null` when this one reaches the end.
    #[schema(required = true)]
    pub next_offset: Option<u64>,
}

/// Default `limit` of a windowed result read, in bytes.
pub const DEFAULT_WINDOW_BYTES: u64 = 64 * 1024;
/// Largest `limit` of a windowed result read, in bytes (the largest output budget).
pub const MAX_WINDOW_BYTES: u64 = 4 * 1024 * 1024;

impl CommandResult {
    /// This result with its output cut to the window that starts at `offset` and holds at most
    /// `limit` bytes. The window ends after its last whole line when the output goes on past
    /// it (so windows hold whole lines), else at a character boundary; it never splits a
    /// character. A window is never empty unless it starts at the end. `Err` names what is
    /// wrong with `offset` (past the end) — `limit` is the caller's to bound.
    pub fn windowed(mut self, offset: u64, limit: u64) -> Result<Self, String> {
        let window = output_window(&self.output, offset, limit)?;
        let start = window.offset as usize;
        self.output = self.output[start..start + window.length as usize].to_owned();
        self.window = Some(window);
        Ok(self)
    }
}

/// The window of `output` that starts at `offset` and holds at most `limit` bytes, as
/// [`CommandResult::windowed`] cuts it: after its last whole line when the output goes on past
/// it, else at a character boundary, never inside a character, never empty unless it starts at
/// the end. `Err` says that `offset` is past the end.
pub fn output_window(output: &str, offset: u64, limit: u64) -> Result<OutputWindow, String> {
    let total = output.len();
    let past_end = || format!("offset {offset} is past the end of the output ({total} bytes)");
    let start = usize::try_from(offset).map_err(|_| past_end())?;
    if start > total {
        return Err(past_end());
    }
    let start = floor_char_boundary(output, start);
    let limit = usize::try_from(limit.max(1)).unwrap_or(usize::MAX);
    let mut end = start.saturating_add(limit).min(total);
    if end < total {
        let cut = floor_char_boundary(output, end);
        end = match output[start..cut].rfind('\n') {
            Some(i) => start + i + 1,
            None if cut > start => cut,
            // A single character longer than the limit: take it whole.
            None => ceil_char_boundary(output, start + 1),
        };
    }
    Ok(OutputWindow {
        offset: start as u64,
        length: (end - start) as u64,
        total_bytes: total as u64,
        next_offset: (end < total).then_some(end as u64),
    })
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn ceil_char_boundary(s: &str, mut i: usize) -> usize {
    while i < s.len() && !s.is_char_boundary(i) {
        i += 1;
    }
    i.min(s.len())
}

/// How much output was left out of a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Truncation {
    /// Bytes of output that were dropped.
    pub omitted_bytes: u64,
    /// The budget that applied.
    pub limit_bytes: u64,
}

// === clusters ===

/// Link state of a cluster's agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ClusterStatus {
    /// An agent link is up.
    Connected,
    /// No agent link right now.
    Disconnected,
}

/// One row of `GET /clusters`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ClusterSummary {
    /// Cluster identifier.
    pub cluster_id: String,
    /// Display name.
    pub name: String,
    /// Link state.
    pub status: ClusterStatus,
    /// Version of the linked (or last linked) agent.
    #[schema(required = true)]
    pub agent_version: Option<String>,
    /// Last heartbeat or message from the agent.
    #[serde(serialize_with = "serialize_opt_time")]
    #[schema(required = true)]
    pub last_seen: Option<DateTime<Utc>>,
    /// The cluster's labels, as its (last linked) agent gave them (`--label env=prod`); `{}`
    /// when it has none or never linked.
    #[serde(default)]
    #[schema(value_type = std::collections::HashMap<String, String>)]
    pub labels: crate::labels::Labels,
}

/// Answer to `GET /clusters`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(examples(json!({
    "clusters": [{
        "cluster_id": "production-cluster",
        "name": "Production Cluster",
        "status": "connected",
        "agent_version": "1.0.0",
        "last_seen": "2024-01-20T10:32:00Z",
        "labels": {"env": "prod", "region": "eu"}
    }]
})))]
pub struct ClusterList {
    /// Every cluster the broker knows that the credential reaches (and the selector matches,
    /// if one was given).
    pub clusters: Vec<ClusterSummary>,
}

/// Answer to `GET /clusters/{cluster_id}/status`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(examples(json!({
    "cluster_id": "production-cluster",
    "status": "connected",
    "agent_version": "1.0.0",
    "last_seen": "2024-01-20T10:32:00Z",
    "active_sessions": 2,
    "queue_depth": 0,
    "labels": {"env": "prod", "region": "eu"}
})))]
pub struct ClusterStatusInfo {
    /// Cluster identifier.
    pub cluster_id: String,
    /// Link state.
    pub status: ClusterStatus,
    /// Version of the linked (or last linked) agent.
    #[schema(required = true)]
    pub agent_version: Option<String>,
    /// Last heartbeat or message from the agent.
    #[serde(serialize_with = "serialize_opt_time")]
    #[schema(required = true)]
    pub last_seen: Option<DateTime<Utc>>,
    /// Sessions open on this cluster.
    pub active_sessions: u64,
    /// Commands queued for the agent and not yet finished.
    pub queue_depth: u64,
    /// Kubernetes version the agent reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes_version: Option<String>,
    /// The cluster's labels, as its (last linked) agent gave them; `{}` when none.
    #[serde(default)]
    #[schema(value_type = std::collections::HashMap<String, String>)]
    pub labels: crate::labels::Labels,
}

// === fleets ===

/// Body of `POST /fleet/execute`: one command on many clusters. Give `clusters`, `selector` or
/// both (a cluster must then match both).
// `command_type` and `args` are `Option`s so that a missing one is reported by name; the schema
// marks them required.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[schema(examples(json!({
    "selector": "env=prod,region!=us",
    "command_type": "get",
    "args": ["pods", "-n", "kube-system"],
    "timeout": 10
})))]
pub struct FleetExecuteRequest {
    /// Clusters to run on: ids and globs (`prod-*`, `*`), `!` before one to leave it out (it
    /// wins); at most 32. Clusters the credential does not reach are left out without a word.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<ClusterPatternText>>, max_items = 32, min_items = 1)]
    pub clusters: Option<Vec<String>>,
    /// A label selector over the clusters' labels, in kubectl's `-l` grammar: `env=prod`,
    /// `env!=dev`, `env in (prod,staging)`, `env notin (dev)`, `env`, `!env`, joined by `,`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 1, max_length = 4096, examples("env=prod,region!=us"))]
    pub selector: Option<String>,
    /// kubectl command type (`get`, `version`, …).
    #[schema(required = true, schema_with = command_type_schema)]
    pub command_type: Option<String>,
    /// Command arguments, as kubectl would take them after the command type.
    #[schema(required = true, schema_with = args_schema)]
    pub args: Option<Vec<String>>,
    /// Seconds each cluster's command may take (default 30; `null` too), greater than 0 and at
    /// most the broker's `--max-timeout` (default 300): every cluster has its own deadline,
    /// counted from when its command starts. `X-Request-Timeout` gives it when the body does not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<f64>, exclusive_minimum = 0.0, maximum = 300.0, examples(10))]
    pub timeout: Option<f64>,
    /// Output budget of each cluster's command in bytes, at most the broker's
    /// `--max-output-bytes`; the call's total budget (`--fleet-max-output-bytes`, split evenly
    /// across the clusters) lowers it further. Output past it is cut and the result says so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<u64>, minimum = 1, maximum = 4194304)]
    pub max_output_bytes: Option<u64>,
}

/// How a fleet call went on one cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum FleetClusterStatus {
    /// The command ran and exited 0.
    Completed,
    /// The command ran and failed as kubectl would (`exit_code`, `error`).
    Failed,
    /// The command did not finish before its deadline.
    Timeout,
    /// The cluster's agent is not linked, or its link was lost while the command ran.
    Unavailable,
    /// The broker did not run the command there: a limit (rate, in-flight, queue) or the
    /// audit trail refused it; `error` says which.
    Refused,
}

impl FleetClusterStatus {
    /// The status as the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Timeout => "timeout",
            Self::Unavailable => "unavailable",
            Self::Refused => "refused",
        }
    }
}

/// One cluster's result of a fleet call (also one line of the `application/x-ndjson` answer).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(examples(json!({
    "cluster_id": "prod-eu",
    "status": "completed",
    "result_id": "res_xyz789abc123",
    "output": "Client Version: v1.36.3\nServer Version: v1.36.3\n",
    "error": null,
    "exit_code": 0,
    "execution_time_ms": 4,
    "elapsed_ms": 11
})))]
pub struct FleetClusterResult {
    /// The cluster.
    pub cluster_id: String,
    /// How it went there.
    pub status: FleetClusterStatus,
    /// The stored result (`GET /debug/result/{result_id}`); absent when nothing was queued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_id: Option<String>,
    /// What the command printed on standard output.
    pub output: String,
    /// Standard error, or why the command did not run or finish; `null` on success.
    #[schema(required = true)]
    pub error: Option<String>,
    /// Exit code as kubectl would report it; `null` when the command did not run to an end.
    #[schema(required = true)]
    pub exit_code: Option<i32>,
    /// Time the agent spent running the command.
    pub execution_time_ms: u64,
    /// Time the broker spent on this cluster, from opening its session to its result.
    pub elapsed_ms: u64,
    /// Set when the output was cut to fit the cluster's output budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncated: Option<Truncation>,
}

/// A frame of `GET /debug/stream`, the server's side: a JSON text frame tagged by `type`.
///
/// A stream is `started`, then `output` (and `dropped`) frames in order, then one `end`, after
/// which the broker closes the socket (code 1000).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StreamFrame {
    /// The command is queued for its cluster.
    Started(StreamStarted),
    /// Output, in order, as the agent produced it.
    Output {
        /// The text.
        data: String,
    },
    /// Output was dropped here because the caller read more slowly than the command wrote
    /// (the broker buffers at most `--stream-buffer-bytes` per stream).
    Dropped {
        /// How many bytes.
        bytes: u64,
    },
    /// The stream is over; nothing follows.
    End(StreamEnd),
}

/// The first frame of a stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(examples(json!({
    "type": "started", "result_id": "res_xyz789abc123", "session_id": "sess_abc123def456",
    "cluster_id": "production-cluster", "command_type": "logs",
    "args": ["deploy/credit-api", "-n", "credit-service", "-f", "--tail=10"],
    "max_seconds": 1800, "max_bytes": 16777216
})))]
pub struct StreamStarted {
    /// Where the stream's end is recorded: `GET /debug/result/{result_id}` (the output itself
    /// is not kept).
    pub result_id: String,
    /// Session it runs in.
    pub session_id: String,
    /// Cluster it runs on.
    pub cluster_id: String,
    /// kubectl command type.
    pub command_type: String,
    /// Arguments after the command type.
    pub args: Vec<String>,
    /// Lifetime: the stream ends (`lifetime`) after this many seconds.
    pub max_seconds: u64,
    /// Byte budget: the stream ends (`budget`) once this much output was sent.
    pub max_bytes: u64,
}

/// Why a stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StreamEndReason {
    /// The command ended on its own (a followed log ended, a rollout finished, or it failed:
    /// see `status`, `exit_code` and `error`).
    Done,
    /// The caller asked to stop (a `{"type":"cancel"}` frame).
    Cancelled,
    /// The stream's byte budget (`max_bytes`) was used up.
    Budget,
    /// The stream's lifetime (`max_seconds`) passed.
    Lifetime,
    /// The cluster's agent went away (or the broker replica holding its link): open the stream
    /// again once the agent is back.
    AgentLost,
    /// The caller did not read its socket for `--stream-send-timeout-seconds`.
    SlowConsumer,
    /// The caller's credential was revoked or expired.
    CredentialEnded,
    /// The broker is shutting down: open the stream again (another replica takes it).
    Shutdown,
}

/// The last frame of a stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(examples(json!({
    "type": "end", "reason": "done", "status": "completed", "exit_code": 0, "error": null,
    "bytes": 5120, "dropped_bytes": 0, "duration_ms": 64210
})))]
pub struct StreamEnd {
    /// Why it ended.
    pub reason: StreamEndReason,
    /// How the command ended, when the agent said so (`done`, `budget`, `lifetime`).
    pub status: Option<ResultStatus>,
    /// kubectl's exit code, when the command ended on the agent.
    pub exit_code: Option<i32>,
    /// Standard error of the command, or what ended the stream.
    pub error: Option<String>,
    /// Bytes of output sent to the caller.
    pub bytes: u64,
    /// Bytes of output dropped (see the `dropped` frames).
    pub dropped_bytes: u64,
    /// Time from the upgrade to the end.
    pub duration_ms: u64,
}

/// What happened to a session, as `GET /debug/events` tells it (one JSON text frame each).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(examples(json!({
    "type": "command.finished", "at": "2024-01-15T10:31:02Z", "session_id": "sess_abc123def456",
    "cluster_id": "production-cluster", "result_id": "res_xyz789abc123", "command_type": "get",
    "args": ["pods", "-n", "default"], "status": "completed", "exit_code": 0,
    "execution_time_ms": 150
})))]
pub struct SessionEvent {
    /// What happened.
    #[serde(rename = "type")]
    pub kind: SessionEventKind,
    /// When.
    #[serde(serialize_with = "serialize_time")]
    #[schema(value_type = String, format = DateTime)]
    pub at: DateTime<Utc>,
    /// The session.
    pub session_id: String,
    /// Its cluster.
    pub cluster_id: String,
    /// The command's result id (`command.*`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_id: Option<String>,
    /// The command type (`command.*`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_type: Option<String>,
    /// The command's arguments (`command.*`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<String>>,
    /// How the command ended (`command.finished`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ResultStatus>,
    /// kubectl's exit code (`command.finished`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Time the command ran (`command.finished`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_time_ms: Option<u64>,
}

/// The kinds of [`SessionEvent`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum SessionEventKind {
    /// `POST /debug/session` made it.
    #[serde(rename = "session.created")]
    SessionCreated,
    /// A command (or stream) was accepted and queued in it.
    #[serde(rename = "command.started")]
    CommandStarted,
    /// A command (or stream) ended.
    #[serde(rename = "command.finished")]
    CommandFinished,
    /// `DELETE /debug/session/{id}` closed it.
    #[serde(rename = "session.closed")]
    SessionClosed,
    /// Its lifetime passed.
    #[serde(rename = "session.expired")]
    SessionExpired,
}

/// The totals of a fleet call.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(examples(json!({
    "clusters": 3, "completed": 2, "failed": 0, "timeout": 1, "unavailable": 0, "refused": 0,
    "max_output_bytes_per_cluster": 2796202, "elapsed_ms": 10012, "slowest_cluster_ms": 10004
})))]
pub struct FleetSummary {
    /// Clusters the command was sent to: those matched that the credential reaches.
    pub clusters: usize,
    /// Of those, `completed`.
    pub completed: usize,
    /// `failed`.
    pub failed: usize,
    /// `timeout`.
    pub timeout: usize,
    /// `unavailable`.
    pub unavailable: usize,
    /// `refused`.
    pub refused: usize,
    /// The output budget each cluster's command had, in bytes.
    pub max_output_bytes_per_cluster: u64,
    /// Time the whole call took at the broker.
    pub elapsed_ms: u64,
    /// The largest `elapsed_ms` of one cluster.
    pub slowest_cluster_ms: u64,
}

impl FleetSummary {
    /// Counts one cluster's result in.
    pub fn add(&mut self, result: &FleetClusterResult) {
        self.clusters += 1;
        *match result.status {
            FleetClusterStatus::Completed => &mut self.completed,
            FleetClusterStatus::Failed => &mut self.failed,
            FleetClusterStatus::Timeout => &mut self.timeout,
            FleetClusterStatus::Unavailable => &mut self.unavailable,
            FleetClusterStatus::Refused => &mut self.refused,
        } += 1;
        self.slowest_cluster_ms = self.slowest_cluster_ms.max(result.elapsed_ms);
    }
}

/// Answer to `POST /fleet/execute` (as `application/json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FleetResult {
    /// One result per cluster, by cluster id.
    pub results: Vec<FleetClusterResult>,
    /// The totals.
    pub summary: FleetSummary,
}

/// The last line of the `application/x-ndjson` answer of `POST /fleet/execute`, after one
/// [`FleetClusterResult`] line per cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FleetSummaryLine {
    /// The totals.
    pub summary: FleetSummary,
}

/// One line of the `application/x-ndjson` answer of `POST /fleet/execute`: a cluster's result
/// as soon as it is known, and last the summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum FleetStreamLine {
    /// One cluster's result.
    Result(FleetClusterResult),
    /// The totals, after every cluster's result.
    Summary(FleetSummaryLine),
}

// === errors ===

/// The machine-readable class of every error answer (`ErrorBody.error`). One enum, so a new
/// class is a compile-time decision and SDKs can generate one exception type per variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// 400: a field, parameter, header or command that is not acceptable.
    InvalidRequest,
    /// 401: no credential, or one that is unknown, expired, revoked or wrongly signed.
    Unauthorized,
    /// 403: a valid credential without the scope or cluster the request needs.
    Forbidden,
    /// 404: no such route, session, result or cluster.
    NotFound,
    /// 405: the path exists, not with this method (`Allow` lists the methods).
    MethodNotAllowed,
    /// 413: the body is larger than the broker accepts.
    PayloadTooLarge,
    /// 415: the body is not declared as JSON.
    UnsupportedMediaType,
    /// 429: a rate or in-flight limit; `Retry-After` says when to try again.
    RateLimited,
    /// 500: a bug; `details.request_id` names it in the broker's log.
    InternalError,
    /// 503: a dependency (agent link, store, audit trail) is not available now.
    ServiceUnavailable,
    /// 504: the command did not finish in time.
    Timeout,
}

impl ErrorCode {
    /// The code as the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::RateLimited => "rate_limited",
            Self::InternalError => "internal_error",
            Self::ServiceUnavailable => "service_unavailable",
            Self::Timeout => "timeout",
        }
    }
}

/// Every non-2xx body: `{"error", "message", "details"}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(examples(json!({
    "error": "invalid_request",
    "message": "Missing required field: cluster_id",
    "details": { "field": "cluster_id", "code": "missing_required_field" }
})))]
pub struct ErrorBody {
    /// Machine-readable class.
    pub error: ErrorCode,
    /// What went wrong and what to do, for people.
    pub message: String,
    /// Structured specifics (the offending field, the cluster, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub details: Option<Value>,
}

// === credentials (admin) ===

/// What a credential may do.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Sessions, execute, results and cluster status, on the clusters the credential may reach.
    Read,
    /// Everything: every caller's sessions, the audit trail, credential management.
    Admin,
}

impl Scope {
    /// The scope as the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Admin => "admin",
        }
    }
}

impl std::str::FromStr for Scope {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "read" => Ok(Self::Read),
            "admin" => Ok(Self::Admin),
            other => Err(format!("unknown scope `{other}` (expected read or admin)")),
        }
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Reads a whole number that JSON may spell as an integer (`300`) or as a float with no
/// fraction (`300.0`), as JSON Schema's `integer` allows.
fn whole_number<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<u64>,
{
    use serde::de::Error;
    let Some(value) = Option::<serde_json::Number>::deserialize(deserializer)? else {
        return Ok(None);
    };
    let whole = value.as_u64().or_else(|| {
        value
            .as_f64()
            .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= u64::MAX as f64)
            .map(|f| f as u64)
    });
    whole
        .and_then(|n| T::try_from(n).ok())
        .map(Some)
        .ok_or_else(|| D::Error::custom(format!("expected a whole number in range, got {value}")))
}

/// Reads an object (never an array, which serde would otherwise take for a struct).
fn object_only<'de, D>(deserializer: D) -> Result<Option<RateLimits>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    use serde::de::Error;
    match Option::<Value>::deserialize(deserializer)? {
        None => Ok(None),
        Some(value @ Value::Object(_)) => serde_json::from_value(value)
            .map(Some)
            .map_err(D::Error::custom),
        Some(other) => Err(D::Error::custom(format!(
            "expected an object such as {{\"execute\": 50}}, got {other}"
        ))),
    }
}

/// A credential's own rate limits, requests per minute per class, replacing the broker's
/// defaults (`--rate-limit-*`); absent keeps the default, 0 means unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(default)]
pub struct RateLimits {
    /// Session creations (`POST /debug/session`) per minute.
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "whole_number"
    )]
    #[schema(maximum = 60000)]
    pub session_create: Option<u32>,
    /// Command executions (`POST /debug/execute`) per minute.
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "whole_number"
    )]
    #[schema(maximum = 60000)]
    pub execute: Option<u32>,
    /// Requests to every other route per minute.
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "whole_number"
    )]
    #[schema(maximum = 60000)]
    pub standard: Option<u32>,
}

/// A cluster pattern as the API spells it: a cluster id, a glob (`prod-*`), `!` before either
/// to deny.
pub struct ClusterPatternText(pub String);

impl utoipa::PartialSchema for ClusterPatternText {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .pattern(Some("^!?[A-Za-z0-9._*-]+$"))
            .min_length(Some(1))
            .max_length(Some(MAX_CLUSTER_ID_LEN + 1))
            .examples([serde_json::json!("prod-*")])
            .into()
    }
}

impl ToSchema for ClusterPatternText {}

/// Body of `POST /admin/api-keys`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[schema(examples(json!({
    "name": "ci-reader",
    "scope": "read",
    "clusters": ["staging-*", "!staging-secret"],
    "expires_in_seconds": 2592000
})))]
pub struct CreateApiKeyRequest {
    /// A label for people (at most 100 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 100)]
    pub name: Option<String>,
    /// `read` or `admin`.
    #[schema(required = true, value_type = Scope)]
    pub scope: Option<String>,
    /// Clusters the key may reach: ids and globs (`prod-*`), `!` before one to deny (deny
    /// wins). Default `["*"]`: every cluster. At most 32.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<ClusterPatternText>>, max_items = 32)]
    pub clusters: Option<Vec<String>>,
    /// Lifetime in seconds (at most one year). Without it the key does not expire.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "whole_number"
    )]
    #[schema(minimum = 1, maximum = 31536000)]
    pub expires_in_seconds: Option<u64>,
    /// The key's own rate limits; without them the broker's defaults apply.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "object_only"
    )]
    pub rate_limits: Option<RateLimits>,
}

/// An API key as listed: never its secret.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(examples(json!({
    "id": "key_5f1c2a9e8b7d4c3a",
    "name": "ci-reader",
    "scope": "read",
    "clusters": ["staging-*"],
    "created_at": "2024-01-20T10:30:45Z",
    "expires_at": "2024-02-19T10:30:45Z",
    "revoked_at": null,
    "last_used_at": "2024-01-20T11:02:13Z",
    "bootstrap": false
})))]
pub struct ApiKeyInfo {
    /// Identifier (not secret): for listing, revoking and the audit trail.
    pub id: String,
    /// Label given at creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// What the key may do.
    pub scope: Scope,
    /// Clusters it may reach.
    pub clusters: Vec<String>,
    /// When it was created.
    #[serde(serialize_with = "serialize_time")]
    pub created_at: DateTime<Utc>,
    /// When it stops working; null if never.
    #[serde(serialize_with = "serialize_opt_time")]
    #[schema(required = true)]
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was revoked; null if not.
    #[serde(serialize_with = "serialize_opt_time")]
    #[schema(required = true)]
    pub revoked_at: Option<DateTime<Utc>>,
    /// When a request last used it (to the minute); null if never.
    #[serde(serialize_with = "serialize_opt_time")]
    #[schema(required = true)]
    pub last_used_at: Option<DateTime<Utc>>,
    /// Whether it comes from the broker's flags or environment (`--api-key`).
    pub bootstrap: bool,
    /// Its own rate limits, if it has any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limits: Option<RateLimits>,
}

/// Answer to `POST /admin/api-keys`: the key's secret, shown this once.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ApiKeyCreated {
    /// The secret to send as `Authorization: Bearer …` or `X-API-Key`. It is stored only as a
    /// hash: keep it now, it cannot be read again.
    #[schema(examples("kl_3q2-7wEVdRk2Qx1m9bLr0vZc8nS4tJpHfYaKuUeGiOo"))]
    pub key: String,
    /// The key's record.
    #[serde(flatten)]
    pub info: ApiKeyInfo,
}

/// Answer to `GET /admin/api-keys`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ApiKeyList {
    /// Every API key, revoked ones included, oldest first.
    pub api_keys: Vec<ApiKeyInfo>,
}

/// Body of `POST /admin/agent-tokens`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[schema(examples(json!({ "cluster_id": "production-cluster", "overlap_seconds": 300 })))]
pub struct CreateAgentTokenRequest {
    /// Cluster whose agent will use the token.
    #[schema(required = true, value_type = String, min_length = 1, max_length = 128,
             pattern = "^[A-Za-z0-9._-]+$", examples("production-cluster"))]
    pub cluster_id: Option<String>,
    /// Rotation: how long the cluster's existing tokens keep working, in seconds (default
    /// 300, at most 7 days). 0 ends them at once.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "whole_number"
    )]
    #[schema(minimum = 0, maximum = 604800)]
    pub overlap_seconds: Option<u64>,
}

/// An agent token as listed: never its secret.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AgentTokenInfo {
    /// Identifier (not secret).
    pub id: String,
    /// Cluster whose agent may link with it.
    pub cluster_id: String,
    /// When it was created.
    #[serde(serialize_with = "serialize_time")]
    pub created_at: DateTime<Utc>,
    /// When it stops working (set when a newer token replaced it); null if never.
    #[serde(serialize_with = "serialize_opt_time")]
    #[schema(required = true)]
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was revoked; null if not.
    #[serde(serialize_with = "serialize_opt_time")]
    #[schema(required = true)]
    pub revoked_at: Option<DateTime<Utc>>,
    /// When an agent last linked with it; null if never.
    #[serde(serialize_with = "serialize_opt_time")]
    #[schema(required = true)]
    pub last_used_at: Option<DateTime<Utc>>,
    /// Whether it comes from the broker's flags or environment (`--agent-token`).
    pub bootstrap: bool,
}

/// Answer to `POST /admin/agent-tokens`: the token, shown this once.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AgentTokenCreated {
    /// The secret the agent sends (`--token`). Stored only as a hash: keep it now.
    #[schema(examples("klat_Vb1m3x9QeT0pZ8rKc2sW7nYfH4jLdU6gAoEiRqXy5tM"))]
    pub token: String,
    /// The token's record.
    #[serde(flatten)]
    pub info: AgentTokenInfo,
    /// The cluster's earlier tokens, with the end of their overlap.
    pub replaced: Vec<AgentTokenInfo>,
}

/// Answer to `GET /admin/agent-tokens`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AgentTokenList {
    /// Every agent token, revoked ones included, oldest first.
    pub agent_tokens: Vec<AgentTokenInfo>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result_with(output: &str) -> CommandResult {
        CommandResult {
            result_id: "res_1".into(),
            session_id: "sess_1".into(),
            cluster_id: "c".into(),
            status: ResultStatus::Completed,
            output: output.into(),
            error: None,
            exit_code: Some(0),
            execution_time_ms: 1,
            executed_at: Utc::now(),
            correlation_id: "x".into(),
            truncated: None,
            window: None,
        }
    }

    /// Reads every window of `output` with `limit` and checks they join up to it.
    fn read_all(output: &str, limit: u64) -> Vec<String> {
        let mut parts = Vec::new();
        let mut offset = 0;
        loop {
            let r = result_with(output).windowed(offset, limit).unwrap();
            let w = r.window.unwrap();
            assert_eq!(w.offset, offset);
            assert_eq!(w.length as usize, r.output.len());
            assert_eq!(w.total_bytes as usize, output.len());
            parts.push(r.output);
            match w.next_offset {
                Some(next) => {
                    assert!(next > offset, "windows always move on");
                    offset = next;
                }
                None => break,
            }
        }
        assert_eq!(parts.concat(), output);
        parts
    }

    #[test]
    fn windows_hold_whole_lines_when_they_can() {
        let parts = read_all("aaa\nbbb\nccc\n", 9);
        assert_eq!(parts, ["aaa\nbbb\n", "ccc\n"]);
        // A line longer than the window is cut at the limit.
        let parts = read_all("abcdefgh\nij", 4);
        assert_eq!(parts, ["abcd", "efgh", "\nij"]);
    }

    #[test]
    fn windows_never_split_a_character() {
        for limit in 1..8 {
            for part in read_all("é€😀x\nñ😀😀\n", limit) {
                assert!(!part.is_empty());
            }
        }
        // An offset inside a character starts at that character.
        let r = result_with("€x").windowed(1, 10).unwrap();
        assert_eq!(r.output, "€x");
        assert_eq!(r.window.unwrap().offset, 0);
    }

    #[test]
    fn window_at_or_past_the_end() {
        let r = result_with("abc").windowed(3, 10).unwrap();
        assert_eq!(r.output, "");
        assert_eq!(r.window.unwrap().next_offset, None);
        let e = result_with("abc").windowed(4, 10).unwrap_err();
        assert!(
            e.contains("offset 4 is past the end of the output (3 bytes)"),
            "{e}"
        );
        assert!(result_with("").windowed(0, 1).is_ok());
        assert!(result_with("abc").windowed(u64::MAX, 1).is_err());
    }

    #[test]
    fn cluster_ids() {
        assert!(check_cluster_id("prod-eu.1_a").is_ok());
        assert!(check_cluster_id("").is_err());
        assert!(check_cluster_id("a b").is_err());
        assert!(check_cluster_id(&"x".repeat(129)).is_err());
        assert_eq!(
            cluster_id_from("kubeline-reader@kubeline-testbed"),
            "kubeline-reader-kubeline-testbed"
        );
        assert_eq!(cluster_id_from(""), "cluster");
    }

    #[test]
    fn timestamps_print_as_the_contract_does() {
        let t = DateTime::parse_from_rfc3339("2024-01-20T10:30:45.123456Z")
            .unwrap()
            .with_timezone(&Utc);
        let body = Health {
            status: "healthy".into(),
            version: "1".into(),
            timestamp: t,
            uptime_seconds: 1,
            reason: None,
        };
        let v = serde_json::to_value(body).unwrap();
        assert_eq!(v["timestamp"], "2024-01-20T10:30:45Z");
        assert!(v.get("reason").is_none());
    }
}
