//! Webhooks: the admin API's bodies (`/admin/webhooks`) and the payloads the broker delivers.
//!
//! Deliveries follow Standard Webhooks (<https://www.standardwebhooks.com/>): a JSON body
//! `{"type", "timestamp", "data"}` ([`WebhookPayload`]), signed in the `webhook-signature`
//! header. The `data` of each [`EventType`] is one of the `…Data` types below.
//!
//! Timestamps of the REST bodies print as the contract's (`2024-01-20T10:30:45Z`); a payload's
//! `timestamp` and times inside `data` carry milliseconds (`2024-01-20T10:30:45.123Z`), so a
//! receiver can order a disconnect and a reconnect of the same second.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;
use utoipa::ToSchema;

use crate::api::{ResultStatus, serialize_opt_time, serialize_time};

/// Longest endpoint URL accepted, in bytes.
pub const MAX_URL_BYTES: usize = 2048;
/// Longest description of an endpoint, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 200;
/// Most entries in an endpoint's `events` list (the event types, each at most once).
pub const MAX_EVENTS_PER_ENDPOINT: usize = EventType::ALL.len();
/// Largest payload (JSON body) of one delivery, in bytes; the parts of `data` that callers
/// influence (a command's arguments and error) are cut to keep every payload below it.
pub const MAX_PAYLOAD_BYTES: usize = 8 * 1024;
/// Most arguments of a command a `command.failed` payload carries.
pub const MAX_PAYLOAD_ARGS: usize = 32;
/// Most bytes of arguments (all together) a `command.failed` payload carries.
pub const MAX_PAYLOAD_ARGS_BYTES: usize = 2048;
/// Most bytes of a command's error a `command.failed` payload carries.
pub const MAX_PAYLOAD_ERROR_BYTES: usize = 1024;

/// A time with milliseconds, as payloads print it: `2024-01-20T10:30:45.123Z`.
pub fn format_event_time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn serialize_event_time<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_event_time(t))
}

fn serialize_opt_event_time<S: Serializer>(
    t: &Option<DateTime<Utc>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => serialize_event_time(t, s),
        None => s.serialize_none(),
    }
}

// === event types ===

/// What happened: the `type` of a payload, and what an endpoint subscribes to.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
pub enum EventType {
    /// A cluster's agent linked, and the cluster was not connected before.
    #[serde(rename = "cluster.connected")]
    ClusterConnected,
    /// A cluster's agent link ended and no other link took over (or the replica holding it
    /// stopped answering and its claim lapsed).
    #[serde(rename = "cluster.disconnected")]
    ClusterDisconnected,
    /// A debug session reached its `expires_at` without being closed.
    #[serde(rename = "session.expired")]
    SessionExpired,
    /// A command ended `failed` (as kubectl fails, e.g. NotFound; or its agent link was lost)
    /// or `timeout`.
    #[serde(rename = "command.failed")]
    CommandFailed,
}

impl EventType {
    /// Every event type, in the order the API documents them.
    pub const ALL: [Self; 4] = [
        Self::ClusterConnected,
        Self::ClusterDisconnected,
        Self::SessionExpired,
        Self::CommandFailed,
    ];

    /// The type as payloads and the API spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClusterConnected => "cluster.connected",
            Self::ClusterDisconnected => "cluster.disconnected",
            Self::SessionExpired => "session.expired",
            Self::CommandFailed => "command.failed",
        }
    }

    /// Parses the API spelling.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// Every type's spelling, comma-separated (for messages).
    pub fn names() -> String {
        Self::ALL.map(Self::as_str).join(", ")
    }
}

// === admin API ===

/// Body of `POST /admin/webhooks`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[schema(examples(json!({
    "url": "https://hooks.example.com/kubeline",
    "events": ["cluster.connected", "cluster.disconnected"],
    "description": "on-call pager"
})))]
pub struct CreateWebhookRequest {
    /// Where to POST events: an `http://` or `https://` URL without user or password, at most
    /// 2048 bytes. Its host must not be (or resolve to) a loopback, link-local, private or
    /// cloud-metadata address unless the broker runs with `--webhook-allow-private`.
    #[schema(required = true, value_type = String, format = "uri", max_length = 2048,
             examples("https://hooks.example.com/kubeline"))]
    pub url: Option<String>,
    /// Event types to deliver, each at most once: `cluster.connected`,
    /// `cluster.disconnected`, `session.expired`, `command.failed`.
    #[schema(required = true, value_type = Vec<EventType>, min_items = 1, max_items = 4)]
    pub events: Option<Vec<String>>,
    /// A label for people (at most 200 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 200)]
    pub description: Option<String>,
}

/// A webhook endpoint as listed: never its secret.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(examples(json!({
    "id": "wh_7f3a9c1e2b4d6f80",
    "url": "https://hooks.example.com/kubeline",
    "events": ["cluster.connected", "cluster.disconnected"],
    "description": "on-call pager",
    "created_at": "2024-01-20T10:30:45Z",
    "created_by": "key_5f1c2a9e8b7d4c3a",
    "disabled_at": null,
    "disabled_reason": null,
    "pending_deliveries": 0,
    "dropped_events": 0
})))]
pub struct WebhookInfo {
    /// Identifier (not secret).
    pub id: String,
    /// Where events are POSTed.
    pub url: String,
    /// Event types it receives.
    pub events: Vec<EventType>,
    /// Label given at creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// When it was registered.
    #[serde(serialize_with = "serialize_time")]
    pub created_at: DateTime<Utc>,
    /// Credential id of the admin who registered it.
    #[schema(required = true)]
    pub created_by: Option<String>,
    /// When deliveries to it stopped because it answered 410 Gone; null while it receives.
    #[serde(serialize_with = "serialize_opt_time")]
    #[schema(required = true)]
    pub disabled_at: Option<DateTime<Utc>>,
    /// Why it was disabled; null while it receives.
    #[schema(required = true)]
    pub disabled_reason: Option<String>,
    /// Deliveries not finished yet (waiting for their next attempt, or being attempted).
    pub pending_deliveries: u64,
    /// Events not queued for it because it already had the most pending deliveries allowed.
    pub dropped_events: u64,
}

/// Answer to `POST /admin/webhooks`: the endpoint's signing secret, shown this once.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WebhookCreated {
    /// The signing secret (`whsec_` + base64 of 32 random bytes). The receiver verifies each
    /// delivery's `webhook-signature` with it: keep it now, it cannot be read again.
    #[schema(examples("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw3gM2CkUgqLU="))]
    pub secret: String,
    /// The endpoint's record.
    #[serde(flatten)]
    pub info: WebhookInfo,
}

/// Answer to `GET /admin/webhooks`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WebhookList {
    /// Every endpoint, disabled ones included, oldest first.
    pub webhooks: Vec<WebhookInfo>,
}

/// State of one delivery (one event to one endpoint).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    /// Not delivered yet: waiting for its next attempt, or being attempted.
    Pending,
    /// The endpoint answered 2xx.
    Delivered,
    /// Given up: the retry period ended, or the endpoint answered 410 Gone or was disabled.
    Failed,
}

impl DeliveryStatus {
    /// The status as the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }

    /// Parses the API spelling.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(Self::Pending),
            "delivered" => Some(Self::Delivered),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }
}

/// One attempt to deliver.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DeliveryAttempt {
    /// 1 for the first attempt.
    pub attempt: u32,
    /// When it was made.
    #[serde(serialize_with = "serialize_time")]
    pub at: DateTime<Utc>,
    /// The endpoint's HTTP status; null when no answer came (refused address, connection
    /// error, timeout).
    #[schema(required = true)]
    pub status_code: Option<u16>,
    /// What went wrong; null on success.
    #[schema(required = true)]
    pub error: Option<String>,
    /// Time from sending to the answer (or the failure).
    pub duration_ms: u64,
}

/// A delivery as the log shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(examples(json!({
    "id": "msg_5b0e6e1f1d2c4e8a9b7c3d2e1f0a9b8c_7f3a9c1e2b4d6f80",
    "event_type": "cluster.disconnected",
    "status": "delivered",
    "attempts": 3,
    "created_at": "2024-01-20T10:30:45Z",
    "next_attempt_at": null,
    "give_up_at": "2024-01-21T10:30:45Z",
    "last_status_code": 200,
    "last_error": null,
    "history": [
        {"attempt": 1, "at": "2024-01-20T10:30:45Z", "status_code": 503, "error": "HTTP 503 Service Unavailable", "duration_ms": 3},
        {"attempt": 2, "at": "2024-01-20T10:30:46Z", "status_code": 503, "error": "HTTP 503 Service Unavailable", "duration_ms": 2},
        {"attempt": 3, "at": "2024-01-20T10:30:47Z", "status_code": 200, "error": null, "duration_ms": 2}
    ],
    "payload": {"type": "cluster.disconnected", "timestamp": "2024-01-20T10:30:45.120Z",
        "data": {"cluster_id": "production-cluster", "reason": "agent closed the link",
            "broker_id": "broker_8d1f", "last_seen": "2024-01-20T10:30:45.118Z"}}
})))]
pub struct DeliveryInfo {
    /// The delivery's `webhook-id` header: the same on every attempt, for deduplication.
    pub id: String,
    /// Event type.
    pub event_type: EventType,
    /// Where it stands.
    pub status: DeliveryStatus,
    /// Attempts made so far.
    pub attempts: u32,
    /// When the event happened.
    #[serde(serialize_with = "serialize_time")]
    pub created_at: DateTime<Utc>,
    /// When the next attempt is due; null once finished.
    #[serde(serialize_with = "serialize_opt_time")]
    #[schema(required = true)]
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// After this no attempt is made (`--webhook-retry-seconds` after the event).
    #[serde(serialize_with = "serialize_time")]
    pub give_up_at: DateTime<Utc>,
    /// HTTP status of the last attempt; null if it got no answer or none was made.
    #[schema(required = true)]
    pub last_status_code: Option<u16>,
    /// What went wrong in the last attempt (or why the delivery was given up).
    #[schema(required = true)]
    pub last_error: Option<String>,
    /// The newest attempts, oldest first (at most 10).
    pub history: Vec<DeliveryAttempt>,
    /// The body sent (the same on every attempt).
    #[schema(value_type = Object)]
    pub payload: Value,
}

/// Answer to `GET /admin/webhooks/{webhook_id}/deliveries`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeliveryList {
    /// The endpoint.
    pub webhook_id: String,
    /// Its deliveries, newest first: every pending one and the newest finished ones (the
    /// broker keeps 100 finished per endpoint), at most `limit`.
    pub deliveries: Vec<DeliveryInfo>,
}

// === payloads ===

/// The body of every delivery.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(examples(json!({
    "type": "cluster.connected",
    "timestamp": "2024-01-20T10:30:45.120Z",
    "data": {"cluster_id": "production-cluster", "agent_version": "0.1.0",
        "kubernetes_version": "v1.36.3", "broker_id": "broker_8d1f"}
})))]
pub struct WebhookPayload {
    /// What happened.
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// When it happened (milliseconds).
    #[serde(serialize_with = "serialize_event_time")]
    pub timestamp: DateTime<Utc>,
    /// Its details: [`ClusterConnectedData`], [`ClusterDisconnectedData`],
    /// [`SessionExpiredData`] or [`CommandFailedData`], by `type`.
    #[schema(value_type = Object)]
    pub data: Value,
}

/// `data` of `cluster.connected`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ClusterConnectedData {
    /// The cluster.
    pub cluster_id: String,
    /// Version of its agent.
    pub agent_version: Option<String>,
    /// Kubernetes version its agent reported.
    pub kubernetes_version: Option<String>,
    /// Broker replica holding the link.
    pub broker_id: String,
}

/// `data` of `cluster.disconnected`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ClusterDisconnectedData {
    /// The cluster.
    pub cluster_id: String,
    /// Why the link ended (`agent closed the link`, `agent silent for 15s`, `broker shutting
    /// down`, `agent token revoked`, or `presence lapsed: …` when the replica that held it
    /// stopped answering).
    pub reason: String,
    /// Broker replica that held the link; null when its claim lapsed.
    pub broker_id: Option<String>,
    /// When the agent was last heard from, if known.
    #[serde(serialize_with = "serialize_opt_event_time")]
    pub last_seen: Option<DateTime<Utc>>,
}

/// `data` of `session.expired`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SessionExpiredData {
    /// The session.
    pub session_id: String,
    /// Its cluster.
    pub cluster_id: String,
    /// When it was created.
    #[serde(serialize_with = "serialize_event_time")]
    pub created_at: DateTime<Utc>,
    /// When it expired.
    #[serde(serialize_with = "serialize_event_time")]
    pub expires_at: DateTime<Utc>,
    /// Time of its last command.
    #[serde(serialize_with = "serialize_event_time")]
    pub last_activity: DateTime<Utc>,
    /// Commands run in it.
    pub commands_executed: u64,
    /// Credential id that created it.
    pub owner: Option<String>,
}

/// `data` of `command.failed`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CommandFailedData {
    /// The result (`GET /debug/result/{result_id}` reads it while it is kept).
    pub result_id: String,
    /// Its session.
    pub session_id: String,
    /// Its cluster.
    pub cluster_id: String,
    /// kubectl command type.
    pub command_type: String,
    /// Its arguments (at most 32, 2048 bytes in all; `args_truncated` says when cut).
    pub args: Vec<String>,
    /// Whether `args` was cut.
    pub args_truncated: bool,
    /// `failed` or `timeout`.
    pub status: ResultStatus,
    /// kubectl's exit code; null when the command never ran to an end (timeout, link lost).
    pub exit_code: Option<i32>,
    /// kubectl's standard error or why it could not run (at most 1024 bytes).
    pub error: Option<String>,
    /// When the broker accepted it.
    #[serde(serialize_with = "serialize_event_time")]
    pub executed_at: DateTime<Utc>,
    /// Time the agent spent on it.
    pub execution_time_ms: u64,
    /// Correlation id of the request.
    pub correlation_id: String,
}

/// `args` cut to [`MAX_PAYLOAD_ARGS`] arguments and [`MAX_PAYLOAD_ARGS_BYTES`] bytes, and
/// whether anything was left out.
pub fn payload_args(args: &[String]) -> (Vec<String>, bool) {
    let mut out = Vec::new();
    let mut bytes = 0;
    for arg in args {
        if out.len() == MAX_PAYLOAD_ARGS {
            return (out, true);
        }
        let room = MAX_PAYLOAD_ARGS_BYTES - bytes;
        if arg.len() > room {
            out.push(truncate(arg, room).to_owned());
            return (out, true);
        }
        bytes += arg.len();
        out.push(arg.clone());
    }
    (out, false)
}

/// The first `max` bytes of `s` at most, cut at a character boundary.
pub fn truncate(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_types_round_trip() {
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(t));
            assert_eq!(
                serde_json::to_value(t).unwrap(),
                Value::String(t.as_str().into())
            );
        }
        assert_eq!(EventType::parse("cluster.exploded"), None);
    }

    #[test]
    fn payload_args_are_bounded() {
        let many: Vec<String> = (0..40).map(|i| format!("a{i}")).collect();
        let (args, cut) = payload_args(&many);
        assert_eq!((args.len(), cut), (MAX_PAYLOAD_ARGS, true));
        let long = vec!["x".repeat(1000), "é".repeat(1000), "y".into()];
        let (args, cut) = payload_args(&long);
        assert!(cut);
        assert!(args.iter().map(String::len).sum::<usize>() <= MAX_PAYLOAD_ARGS_BYTES);
        let (args, cut) = payload_args(&["get".into(), "pods".into()]);
        assert_eq!((args.len(), cut), (2, false));
    }

    #[test]
    fn payload_times_carry_milliseconds() {
        let t = DateTime::parse_from_rfc3339("2024-01-20T10:30:45.123456Z")
            .unwrap()
            .with_timezone(&Utc);
        let p = WebhookPayload {
            event_type: EventType::SessionExpired,
            timestamp: t,
            data: Value::Null,
        };
        let v = serde_json::to_value(p).unwrap();
        assert_eq!(v["timestamp"], "2024-01-20T10:30:45.123Z");
        assert_eq!(v["type"], "session.expired");
    }
}
