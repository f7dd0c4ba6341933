//! REST API bodies, field for field as the contract (`seeds/001_…`) describes them.
//!
//! Timestamps are RFC 3339 in UTC with second precision, as in the contract's examples.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};

/// Serializes a timestamp the way the contract prints it: `2024-01-20T10:30:45Z`.
pub fn serialize_time<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Secs, true))
}

fn serialize_opt_time<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
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
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Health {
    /// `healthy`, or `unhealthy` when the store cannot be reached.
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CreateSessionRequest {
    /// Cluster the session debugs.
    pub cluster_id: Option<String>,
    /// Free-form caller metadata (`user`, `correlation_id`, …), kept with the session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
}

/// Answer to `POST /debug/session`.
#[derive(Debug, Clone, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionList {
    /// Matching sessions, newest first, at most `limit`.
    pub sessions: Vec<SessionSummary>,
    /// Number of sessions returned.
    pub total: usize,
}

// === execute and results ===

/// Body of `POST /debug/execute`. Fields are optional here so that a missing one is reported by
/// name instead of as a generic parse error.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ExecuteRequest {
    /// Target cluster.
    pub cluster_id: Option<String>,
    /// Active debug session on that cluster.
    pub session_id: Option<String>,
    /// kubectl command type (`get`, `version`, …).
    pub command_type: Option<String>,
    /// Command arguments, as kubectl would take them after the command type.
    pub args: Option<Vec<String>>,
    /// Seconds to wait for the result (default 30).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<f64>,
    /// Output budget in bytes for this command, at most the broker's `--max-output-bytes`
    /// (its default). Output past it is cut and the result says how much was left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output_bytes: Option<u64>,
}

/// Outcome of a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    pub error: Option<String>,
    /// Exit code as kubectl would report it; `null` while pending.
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
}

/// How much output was left out of a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Truncation {
    /// Bytes of output that were dropped.
    pub omitted_bytes: u64,
    /// The budget that applied.
    pub limit_bytes: u64,
}

// === clusters ===

/// Link state of a cluster's agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClusterStatus {
    /// An agent link is up.
    Connected,
    /// No agent link right now.
    Disconnected,
}

/// One row of `GET /clusters`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterSummary {
    /// Cluster identifier.
    pub cluster_id: String,
    /// Display name.
    pub name: String,
    /// Link state.
    pub status: ClusterStatus,
    /// Version of the linked (or last linked) agent.
    pub agent_version: Option<String>,
    /// Last heartbeat or message from the agent.
    #[serde(serialize_with = "serialize_opt_time")]
    pub last_seen: Option<DateTime<Utc>>,
}

/// Answer to `GET /clusters`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterList {
    /// Every cluster the broker knows.
    pub clusters: Vec<ClusterSummary>,
}

/// Answer to `GET /clusters/{cluster_id}/status`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterStatusInfo {
    /// Cluster identifier.
    pub cluster_id: String,
    /// Link state.
    pub status: ClusterStatus,
    /// Version of the linked (or last linked) agent.
    pub agent_version: Option<String>,
    /// Last heartbeat or message from the agent.
    #[serde(serialize_with = "serialize_opt_time")]
    pub last_seen: Option<DateTime<Utc>>,
    /// Sessions open on this cluster.
    pub active_sessions: u64,
    /// Commands queued for the agent and not yet finished.
    pub queue_depth: u64,
    /// Kubernetes version the agent reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes_version: Option<String>,
}

// === errors ===

/// Every non-2xx body: `{"error", "message", "details"}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Machine-readable class: `invalid_request`, `unauthorized`, `forbidden`, `not_found`,
    /// `rate_limited`, `timeout`, `internal_error`, `service_unavailable`.
    pub error: String,
    /// What went wrong and what to do, for people.
    pub message: String,
    /// Structured specifics (the offending field, the cluster, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

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
