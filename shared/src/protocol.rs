//! Messages of the agent link: the WebSocket between an agent and the broker.
//!
//! Every frame is a JSON text frame holding one [`AgentMessage`] (agent to broker) or one
//! [`BrokerMessage`] (broker to agent), tagged by `type`. The agent authenticates the upgrade
//! request with `Authorization: Bearer <cluster token>` and then sends [`Hello`] as its first
//! frame; the broker answers with [`Welcome`] and from then on sends commands.
//!
//! Output travels in [`OutputChunk`]s of at most [`MAX_CHUNK_BYTES`] so that one large result
//! never holds the link: chunks of concurrent commands and heartbeats interleave.

use serde::{Deserialize, Serialize};

use crate::api::{ResultStatus, Truncation};

/// Version of this protocol. The broker refuses a hello with a different major version.
pub const PROTOCOL_VERSION: u32 = 1;

/// Path of the link endpoint on the broker.
pub const CONNECT_PATH: &str = "/agent/v1/connect";

/// Largest piece of output one [`OutputChunk`] carries.
pub const MAX_CHUNK_BYTES: usize = 32 * 1024;

/// WebSocket close code: the agent's token was refused or revoked.
pub const CLOSE_UNAUTHORIZED: u16 = 4001;
/// WebSocket close code: the hello was missing, malformed or inconsistent with the token.
pub const CLOSE_BAD_HELLO: u16 = 4002;
/// WebSocket close code: another agent link for the same cluster replaced this one.
pub const CLOSE_REPLACED: u16 = 4003;
/// WebSocket close code: the broker is shutting down; reconnect after the advised delay.
pub const CLOSE_GOING_AWAY: u16 = 1001;
/// WebSocket close code: the agent sent a frame that is not part of the protocol (not JSON, a
/// known type with the wrong fields, or binary).
pub const CLOSE_PROTOCOL_ERROR: u16 = 1002;
/// WebSocket close code: the agent sent a frame over the broker's frame limit.
pub const CLOSE_TOO_BIG: u16 = 1009;

/// A frame sent by the agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AgentMessage {
    /// First frame on every link.
    Hello(Hello),
    /// A piece of a command's standard output.
    Output(OutputChunk),
    /// A command finished; no more chunks follow for it.
    Done(Done),
    /// Answer to [`BrokerMessage::Ping`].
    Pong(Pong),
    /// A frame whose `type` is none of the above: what a newer agent may send. Only ever read
    /// (a broker passes it over); it cannot be sent.
    #[serde(other, skip_serializing)]
    Unknown,
}

/// A frame sent by the broker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BrokerMessage {
    /// Answer to [`Hello`]: the link is accepted.
    Welcome(Welcome),
    /// Run a command.
    Execute(Execute),
    /// Stop a running command; its result is no longer wanted.
    Cancel(Cancel),
    /// Liveness probe; the agent answers with [`AgentMessage::Pong`].
    Ping(Ping),
    /// The broker is going away; reconnect after `after_ms`.
    Reconnect(Reconnect),
}

/// The agent introduces itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    /// [`PROTOCOL_VERSION`] the agent speaks.
    pub protocol: u32,
    /// Cluster the agent serves; must match the cluster of its token.
    pub cluster_id: String,
    /// kubeline version of the agent.
    pub agent_version: String,
    /// `gitVersion` of the cluster's API server (`v1.36.3`), or empty if unknown.
    pub kubernetes_version: String,
    /// Command types this agent can run. Not read by brokers (a command an agent does not know
    /// is refused by the agent's own parser, with kubectl's message); still sent because brokers
    /// before this field was optional refuse a hello without it. May be absent.
    #[serde(default)]
    pub commands: Vec<String>,
    /// The cluster's labels (`--label env=prod`), at most
    /// [`crate::limits::MAX_CLUSTER_LABELS`], in Kubernetes' label syntax
    /// ([`crate::labels::check_labels`]); the broker checks them again. Absent from agents that
    /// predate labels (no labels); brokers that predate them ignore the field.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub labels: crate::labels::Labels,
}

/// The broker accepts the link.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Welcome {
    /// [`PROTOCOL_VERSION`] the broker speaks.
    pub protocol: u32,
    /// Identifier of the broker replica holding the link.
    pub broker_id: String,
    /// How often the broker pings; the agent treats three missed pings as a dead link.
    pub ping_interval_ms: u64,
}

/// A command for the agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Execute {
    /// Identifier of the result this command produces.
    pub result_id: String,
    /// Session it belongs to (the agent puts it in its log records of the command).
    pub session_id: String,
    /// kubectl command type.
    pub command_type: String,
    /// Arguments after the command type.
    pub args: Vec<String>,
    /// Time the agent may spend on it, from receipt.
    pub timeout_ms: u64,
    /// Output budget; output past it is dropped and reported in [`Done::truncated`].
    pub max_output_bytes: u64,
    /// Correlation id of the originating request, for the agent's logs.
    pub correlation_id: String,
    /// W3C trace context of the request, so the agent's records join the caller's trace.
    /// Absent from brokers that predate it; agents that predate it ignore it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<crate::trace::TraceContext>,
    /// A streamed command (`GET /debug/stream`): parsed with
    /// [`crate::command::parse_stream`] (so `--follow` / `--watch` are allowed), its output sent
    /// in chunks as it is produced, until it ends on its own, reaches `max_output_bytes`
    /// ([`Done::truncated`] set), reaches `timeout_ms` (status `timeout`), or is cancelled
    /// ([`BrokerMessage::Cancel`]; nothing more is sent for it). Absent (false) from brokers
    /// that predate streams.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stream: bool,
}

/// A piece of output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputChunk {
    /// Result the output belongs to.
    pub result_id: String,
    /// The bytes, as UTF-8 text.
    pub data: String,
}

/// A command's end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Done {
    /// Result this ends.
    pub result_id: String,
    /// `completed`, `failed` or `timeout`.
    pub status: ResultStatus,
    /// Exit code as kubectl would report it.
    pub exit_code: i32,
    /// Standard error, or why the command could not run.
    pub error: Option<String>,
    /// Time spent running it.
    pub execution_time_ms: u64,
    /// Present when output was dropped to fit the budget.
    pub truncated: Option<Truncation>,
}

/// Stop a command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cancel {
    /// Result whose command to stop.
    pub result_id: String,
}

/// Liveness probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ping {
    /// Echoed back in the pong.
    pub seq: u64,
}

/// Liveness answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pong {
    /// The ping's `seq`.
    pub seq: u64,
}

/// Advice to come back later.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reconnect {
    /// Delay before reconnecting, chosen by the broker to spread reconnects out.
    pub after_ms: u64,
    /// Why the link is ending.
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_tagged_by_type() {
        let msg = BrokerMessage::Ping(Ping { seq: 7 });
        let text = serde_json::to_string(&msg).unwrap();
        assert_eq!(text, r#"{"type":"ping","seq":7}"#);
        let back: BrokerMessage = serde_json::from_str(&text).unwrap();
        assert_eq!(back, msg);
    }

    #[test]
    fn execute_without_trace_reads_as_before() {
        // What a broker that predates trace context sends.
        let old = r#"{"type":"execute","result_id":"res_1","session_id":"s","command_type":"get","args":[],"timeout_ms":5,"max_output_bytes":9,"correlation_id":"c"}"#;
        let BrokerMessage::Execute(cmd) = serde_json::from_str(old).unwrap() else {
            panic!("not an execute");
        };
        assert_eq!(cmd.trace, None);
        // What an agent that predates it receives: the extra field is ignored by serde.
        let text = serde_json::to_string(&BrokerMessage::Execute(Execute {
            trace: Some(crate::trace::TraceContext {
                traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into(),
                tracestate: None,
            }),
            ..cmd.clone()
        }))
        .unwrap();
        assert!(
            text.contains(r#""trace":{"traceparent":"00-4bf9"#),
            "{text}"
        );
        assert!(
            !serde_json::to_string(&BrokerMessage::Execute(cmd))
                .unwrap()
                .contains("trace")
        );
    }

    #[test]
    fn hello_labels_are_optional() {
        // What an agent that predates labels sends.
        let old = r#"{"type":"hello","protocol":1,"cluster_id":"c","agent_version":"0.1.0","kubernetes_version":"","commands":["get"]}"#;
        let AgentMessage::Hello(hello) = serde_json::from_str(old).unwrap() else {
            panic!("not a hello");
        };
        assert!(hello.labels.is_empty());
        // Without labels it is sent as before; with them, as an object.
        let text = serde_json::to_string(&AgentMessage::Hello(hello.clone())).unwrap();
        assert_eq!(text, old);
        let labelled = Hello {
            labels: [("env".to_owned(), "prod".to_owned())].into(),
            ..hello
        };
        let text = serde_json::to_string(&AgentMessage::Hello(labelled)).unwrap();
        assert!(text.ends_with(r#","labels":{"env":"prod"}}"#), "{text}");
    }

    #[test]
    fn hello_commands_may_be_absent() {
        let bare = r#"{"type":"hello","protocol":1,"cluster_id":"c","agent_version":"0.2.0","kubernetes_version":""}"#;
        let AgentMessage::Hello(hello) = serde_json::from_str(bare).unwrap() else {
            panic!("not a hello");
        };
        assert!(hello.commands.is_empty());
    }

    #[test]
    fn done_round_trips() {
        let msg = AgentMessage::Done(Done {
            result_id: "res_1".into(),
            status: ResultStatus::Failed,
            exit_code: 1,
            error: Some("Error from server (NotFound): pods \"x\" not found".into()),
            execution_time_ms: 3,
            truncated: None,
        });
        let text = serde_json::to_string(&msg).unwrap();
        assert!(text.starts_with(r#"{"type":"done","#), "{text}");
        assert_eq!(serde_json::from_str::<AgentMessage>(&text).unwrap(), msg);
    }

    #[test]
    fn a_frame_of_a_type_this_side_does_not_know_reads_as_unknown() {
        // What a newer agent may send: read, so that the broker can pass it over.
        let newer = r#"{"type":"progress","result_id":"res_1","percent":40}"#;
        assert_eq!(
            serde_json::from_str::<AgentMessage>(newer).unwrap(),
            AgentMessage::Unknown
        );
        // A known type with the wrong fields, a tag that is not a string, no tag at all, or
        // not an object: unreadable, not unknown.
        for broken in [
            r#"{"type":"done","result_id":"res_1"}"#,
            r#"{"type":7}"#,
            r#"{"result_id":"res_1"}"#,
            r#"["hello"]"#,
        ] {
            assert!(
                serde_json::from_str::<AgentMessage>(broken).is_err(),
                "{broken} read"
            );
        }
        // Never sent.
        assert!(serde_json::to_string(&AgentMessage::Unknown).is_err());
    }
}
