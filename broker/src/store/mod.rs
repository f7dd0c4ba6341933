//! The store: sessions, the per-cluster command queues, results, agent presence, the audit
//! log, and the webhook outbox.
//!
//! One interface, two implementations: [`redis::RedisStore`] for production (several broker
//! replicas share it) and [`memory::MemoryStore`], embedded in the process, for a single broker
//! on a laptop or in CI. The behavioural test suite in `tests/it/store.rs` runs against both.
//!
//! **Invariant:** a result is final once written: the first final result for a `result_id`
//! wins, so a late agent answer can never overwrite a reported timeout, and vice versa.
//!
//! **Invariant:** a cluster's connected/disconnected announcements alternate: the store keeps
//! whether the cluster was last announced connected, and [`Store::link_cluster`],
//! [`Store::touch_cluster`], [`Store::unlink_cluster`] and [`Store::lapsed_links`] flip it
//! atomically, each telling its one caller (of all replicas) to announce the change.
//!
//! **Invariant:** a webhook delivery is in the store before any attempt is made, and is
//! attempted by one replica at a time (a lease); a lease that is not finished (the replica
//! died) runs out and the delivery is attempted again: every delivery at least once.

pub mod memory;
pub mod metered;
pub mod redis;

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use kubeline_shared::api::{CommandResult, SessionStatus};
use kubeline_shared::trace::TraceContext;
use kubeline_shared::webhooks::{DeliveryAttempt, DeliveryStatus, EventType};
use tokio::sync::mpsc;

use crate::ratelimit::Decision;

/// Failure to reach or use the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The Redis server could not be reached or refused a command.
    #[error("redis: {0}")]
    Redis(#[from] ::redis::RedisError),
    /// A stored record could not be read back.
    #[error("corrupt record {key}: {reason}")]
    Corrupt {
        /// Key of the record.
        key: String,
        /// What was wrong with it.
        reason: String,
    },
}

/// Result alias for store operations.
pub type StoreResult<T> = Result<T, StoreError>;

/// A debug session as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRecord {
    /// `sess_…` identifier.
    pub session_id: String,
    /// Cluster the session debugs.
    pub cluster_id: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Expiry time.
    pub expires_at: DateTime<Utc>,
    /// Set once closed.
    pub closed_at: Option<DateTime<Utc>>,
    /// Time of the last command.
    pub last_activity: DateTime<Utc>,
    /// Commands run in it.
    pub commands_executed: u64,
    /// Caller metadata as a JSON object, if any.
    pub metadata: Option<String>,
    /// Credential id of the caller who created it (absent in sessions of older brokers).
    pub owner: Option<String>,
}

impl SessionRecord {
    /// State at `now`.
    pub fn status(&self, now: DateTime<Utc>) -> SessionStatus {
        if self.closed_at.is_some() {
            SessionStatus::Closed
        } else if now >= self.expires_at {
            SessionStatus::Expired
        } else {
            SessionStatus::Active
        }
    }
}

/// What the store knows about a cluster's agent.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterRecord {
    /// Cluster identifier.
    pub cluster_id: String,
    /// Broker replica holding the link; `None` when no agent is linked.
    pub broker_id: Option<String>,
    /// Version of the (last) linked agent.
    pub agent_version: Option<String>,
    /// Kubernetes version the agent reported.
    pub kubernetes_version: Option<String>,
    /// Last time the broker heard from the agent.
    pub last_seen: Option<DateTime<Utc>>,
    /// The labels the (last linked) agent gave in its hello; replaced on every link.
    pub labels: kubeline_shared::labels::Labels,
}

/// A command waiting in a cluster's queue.
#[derive(Debug, Clone, PartialEq)]
pub struct QueuedCommand {
    /// Queue entry id, assigned by the store on enqueue (empty before).
    pub entry_id: String,
    /// Result it will produce.
    pub result_id: String,
    /// Session it belongs to.
    pub session_id: String,
    /// Target cluster.
    pub cluster_id: String,
    /// kubectl command type.
    pub command_type: String,
    /// Arguments.
    pub args: Vec<String>,
    /// When the broker accepted it.
    pub executed_at: DateTime<Utc>,
    /// After this the command is not worth running.
    pub deadline: DateTime<Utc>,
    /// Output budget in bytes.
    pub max_output_bytes: u64,
    /// Correlation id of the request.
    pub correlation_id: String,
    /// Broker replica whose caller waits for the result.
    pub reply_to: String,
    /// W3C trace context of the request (absent in entries queued by older brokers).
    pub trace: Option<TraceContext>,
    /// A streamed command (`GET /debug/stream`): its output goes to the caller as it comes
    /// ([`Store::deliver_stream`]) instead of into the result, and once its agent has it, it is
    /// settled ([`Store::settle`]): a stream is never run a second time by another replica.
    pub stream: bool,
}

/// How often a replica with readers of a cluster's session events says so; replicas publish a
/// cluster's events for three times this long after hearing it.
pub const EVENT_INTEREST_EVERY: Duration = Duration::from_secs(10);

/// A piece of a stream, from the replica holding the agent's link to the replica whose caller
/// reads the stream. How a stream ends travels as its final result ([`StoreEvent::Result`]), on
/// the same channel and so after every piece.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StreamRelay {
    /// The stream's result id.
    pub result_id: String,
    /// What happened.
    pub piece: StreamPiece,
}

/// See [`StreamRelay`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamPiece {
    /// Output, in order.
    Output(String),
    /// The stream is still running on its link (sent every ping interval while it is quiet);
    /// a reader that hears nothing for three intervals ends the stream: the replica holding
    /// the link is gone.
    Beat,
}

/// Something another replica (or this one) wants this broker to know.
#[derive(Debug, Clone, PartialEq)]
pub enum StoreEvent {
    /// New commands were queued for a cluster this broker watches.
    Queued(String),
    /// A result this broker's caller is waiting for.
    Result(Box<CommandResult>),
    /// A credential was revoked or shortened (sent to every replica): drop what is cached of
    /// it and end what it keeps open.
    CredentialChanged(String),
    /// A piece of a stream this broker's caller reads.
    Stream(Box<StreamRelay>),
    /// A session event of a cluster whose events this broker watches (the event's JSON).
    SessionEvent {
        /// The event's cluster.
        cluster_id: String,
        /// The [`kubeline_shared::api::SessionEvent`], as JSON.
        event: String,
    },
    /// Some replica has a reader of `cluster_id`'s session events (said again every
    /// [`EVENT_INTEREST_EVERY`]): publish them.
    EventInterest(String),
    /// The caller of a command of a cluster this broker watches went away: stop it.
    Cancel {
        /// The command's cluster.
        cluster_id: String,
        /// The command's result id.
        result_id: String,
    },
}

/// Which kind of secret a credential is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialKind {
    /// A caller's API key.
    ApiKey,
    /// An agent's token for one cluster.
    AgentToken,
}

/// A credential as stored: the SHA-256 of its secret, never the secret.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CredentialRecord {
    /// Identifier (`key_…`, `atk_…`, or `boot_…` for flag-given ones); not secret.
    pub id: String,
    /// API key or agent token.
    pub kind: CredentialKind,
    /// Hex SHA-256 of the secret.
    pub hash: String,
    /// Label for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// An API key's scope (absent for agent tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<kubeline_shared::api::Scope>,
    /// An API key's cluster patterns, or an agent token's one cluster.
    pub clusters: Vec<String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// When it stops working, if ever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was revoked, if it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<DateTime<Utc>>,
    /// Last use, to the minute (kept apart from the record by the store, merged on read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<DateTime<Utc>>,
    /// Whether it comes from the broker's flags or environment.
    #[serde(default)]
    pub bootstrap: bool,
    /// An API key's own rate limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limits: Option<kubeline_shared::api::RateLimits>,
}

impl CredentialRecord {
    /// A new credential, created now, usable, never used.
    pub fn new(
        id: String,
        kind: CredentialKind,
        hash: String,
        scope: Option<kubeline_shared::api::Scope>,
        clusters: Vec<String>,
    ) -> Self {
        Self {
            id,
            kind,
            hash,
            name: None,
            scope,
            clusters,
            created_at: Utc::now(),
            expires_at: None,
            revoked_at: None,
            last_used_at: None,
            bootstrap: false,
            rate_limits: None,
        }
    }

    /// Whether it works at `now`: neither revoked nor expired.
    pub fn usable(&self, now: DateTime<Utc>) -> Result<(), &'static str> {
        if self.revoked_at.is_some() {
            Err("revoked")
        } else if self.expires_at.is_some_and(|t| t <= now) {
            Err("expired")
        } else {
            Ok(())
        }
    }
}

/// Where a queued command stands ([`Store::standing`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Standing {
    /// Still in its queue: waiting, or taken and running.
    Queued,
    /// Finished: its final result.
    Finished(Box<CommandResult>),
    /// Neither in its queue nor finished: the store lost it.
    Lost,
}

/// What a new link claim changed, that the claiming replica announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkChange {
    /// The cluster was connected through another live claim (a reconnect that overlapped the
    /// old link): nothing to announce.
    Continued,
    /// The cluster was not connected: announce `cluster.connected`.
    Connected,
    /// The previous claim lapsed without anybody announcing it (its replica died): announce
    /// `cluster.disconnected`, then `cluster.connected`.
    Relinked,
}

/// Finished deliveries a store keeps per webhook endpoint (the newest; older ones go).
pub const KEPT_DELIVERIES: usize = 100;

/// A webhook endpoint as stored, with its signing secret (the broker needs it to sign).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct WebhookRecord {
    /// `wh_…` identifier; not secret.
    pub id: String,
    /// Where deliveries are POSTed.
    pub url: String,
    /// Event types it receives.
    pub events: Vec<EventType>,
    /// Label for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// `whsec_…` signing secret.
    pub secret: String,
    /// Registration time.
    pub created_at: DateTime<Utc>,
    /// Credential id of the admin who registered it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    /// When it was disabled (it answered 410 Gone); kept apart by the store, merged on read.
    #[serde(skip)]
    pub disabled_at: Option<DateTime<Utc>>,
    /// Why it was disabled; kept apart by the store, merged on read.
    #[serde(skip)]
    pub disabled_reason: Option<String>,
    /// Deliveries not finished; counted by the store on read.
    #[serde(skip)]
    pub pending: u64,
    /// Events not queued because it had [`Store::emit_event`]'s `max_pending` already.
    #[serde(skip)]
    pub dropped: u64,
}

/// An event to deliver to every endpoint that subscribes to its type.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxEvent {
    /// `evt_` + 32 hex digits. Emitting the same id twice queues nothing the second time (while
    /// the first deliveries are kept).
    pub id: String,
    /// Its type.
    pub event_type: EventType,
    /// The JSON body to POST (the same to every endpoint).
    pub body: String,
    /// When it happened: its deliveries are due now.
    pub created_at: DateTime<Utc>,
    /// After this its deliveries are not attempted any more.
    pub give_up_at: DateTime<Utc>,
}

/// What [`Store::emit_event`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EmitOutcome {
    /// Deliveries queued.
    pub queued: u32,
    /// Endpoints that got nothing because they had `max_pending` deliveries already.
    pub dropped: u32,
}

/// One event for one endpoint, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryRecord {
    /// `msg_…`: the `webhook-id` header ([`delivery_id`]).
    pub id: String,
    /// The endpoint.
    pub endpoint_id: String,
    /// The event.
    pub event_id: String,
    /// The event's type.
    pub event_type: EventType,
    /// The JSON body.
    pub body: String,
    /// When the event happened.
    pub created_at: DateTime<Utc>,
    /// After this no attempt is made.
    pub give_up_at: DateTime<Utc>,
    /// Where it stands.
    pub status: DeliveryStatus,
    /// Attempts made.
    pub attempts: u32,
    /// When the next attempt is due (while pending).
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// HTTP status of the last attempt.
    pub last_status_code: Option<u16>,
    /// What went wrong last.
    pub last_error: Option<String>,
    /// The newest attempts, oldest first.
    pub history: Vec<DeliveryAttempt>,
}

/// The id of the delivery of event `event_id` (`evt_HEX`) to endpoint `endpoint_id` (`wh_HEX`):
/// `msg_<event hex>_<endpoint hex>`, the same on every attempt (Standard Webhooks' `webhook-id`).
pub fn delivery_id(event_id: &str, endpoint_id: &str) -> String {
    let event = event_id.strip_prefix("evt_").unwrap_or(event_id);
    let endpoint = endpoint_id.strip_prefix("wh_").unwrap_or(endpoint_id);
    format!("msg_{event}_{endpoint}")
}

/// The shared state behind every broker replica.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Checks that the store answers.
    async fn ping(&self) -> StoreResult<()>;

    /// Starts delivering [`StoreEvent`]s addressed to `broker_id` (results it waits for, and
    /// queue bells of the clusters it watches) to `events`, until `events` is dropped.
    async fn subscribe(&self, broker_id: &str, events: mpsc::Sender<StoreEvent>)
    -> StoreResult<()>;

    /// Rings this broker's bell for new commands of `cluster_id` from now on.
    async fn watch_cluster(&self, cluster_id: &str) -> StoreResult<()>;

    /// Stops ringing for `cluster_id`.
    async fn unwatch_cluster(&self, cluster_id: &str) -> StoreResult<()>;

    // --- sessions ---

    /// Stores a new session; it is kept `retain` past its expiry so callers can still read it.
    async fn create_session(&self, session: &SessionRecord, retain: Duration) -> StoreResult<()>;

    /// Reads a session.
    async fn get_session(&self, session_id: &str) -> StoreResult<Option<SessionRecord>>;

    /// Marks a session closed at `at` and returns it; `None` if it does not exist.
    async fn close_session(
        &self,
        session_id: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<Option<SessionRecord>>;

    /// Every stored session.
    async fn list_sessions(&self) -> StoreResult<Vec<SessionRecord>>;

    /// Up to `max` sessions whose `expires_at` is at or before `now` and that
    /// [`Store::forget_session_expiries`] has not been told about yet, soonest first, with the
    /// session (`None` once it is no longer kept). Several replicas may get the same ones.
    async fn due_session_expiries(
        &self,
        now: DateTime<Utc>,
        max: usize,
    ) -> StoreResult<Vec<(String, Option<SessionRecord>)>>;

    /// Marks these sessions' expiries handled.
    async fn forget_session_expiries(&self, session_ids: &[String]) -> StoreResult<()>;

    // --- clusters ---

    /// Records that this broker holds the link of `record.cluster_id`; the claim lapses after
    /// `ttl` unless refreshed by [`Store::touch_cluster`]. Says what the caller announces.
    async fn link_cluster(&self, record: &ClusterRecord, ttl: Duration) -> StoreResult<LinkChange>;

    /// Refreshes the link claim and `last_seen`. A claim that had lapsed is taken again if no
    /// other replica claimed the cluster meanwhile; `true` when the lapse had been announced
    /// ([`Store::lapsed_links`]): the caller announces `cluster.connected` again.
    async fn touch_cluster(
        &self,
        cluster_id: &str,
        broker_id: &str,
        last_seen: DateTime<Utc>,
        ttl: Duration,
    ) -> StoreResult<bool>;

    /// Drops the link claim if `broker_id` still holds it; `true` when that made the cluster
    /// disconnected (the caller announces `cluster.disconnected`).
    async fn unlink_cluster(
        &self,
        cluster_id: &str,
        broker_id: &str,
        last_seen: DateTime<Utc>,
    ) -> StoreResult<bool>;

    /// Up to `max` clusters announced connected whose claim lapsed without an unlink (the
    /// replica holding it died or lost the store), each returned to one caller once: it
    /// announces `cluster.disconnected`.
    async fn lapsed_links(&self, max: usize) -> StoreResult<Vec<String>>;

    /// What is known of one cluster.
    async fn get_cluster(&self, cluster_id: &str) -> StoreResult<Option<ClusterRecord>>;

    /// Every cluster that has ever linked.
    async fn list_clusters(&self) -> StoreResult<Vec<ClusterRecord>>;

    // --- queue ---

    /// Records `pending` as the result's provisional state, counts the command against its
    /// session, and queues it for its cluster; with `ring`, also rings the bell of the replica
    /// holding the link (a replica that holds the link itself wakes its pump directly).
    /// Returns the queue entry's id.
    async fn enqueue(
        &self,
        command: &QueuedCommand,
        pending: &CommandResult,
        result_ttl: Duration,
        ring: bool,
    ) -> StoreResult<String>;

    /// Queues `command` again after [`Store::standing`] found it lost: the queue entry only (and
    /// the bell with `ring`), neither its result nor its session's counters. Returns the new
    /// entry's id.
    async fn requeue(&self, command: &QueuedCommand, ring: bool) -> StoreResult<String>;

    /// Where the command queued as `entry_id` of `cluster_id` for `result_id` stands, as its
    /// waiting caller sees it. The queue entry is looked at before the result: an entry is
    /// removed only after its final result is written, so an entry that is gone with no final
    /// result was lost (a Redis failover that did not carry it over), not finished.
    async fn standing(
        &self,
        cluster_id: &str,
        entry_id: &str,
        result_id: &str,
    ) -> StoreResult<Standing>;

    /// Takes up to `max` new commands of `cluster_id` for `consumer`.
    async fn take(
        &self,
        cluster_id: &str,
        consumer: &str,
        max: usize,
    ) -> StoreResult<Vec<QueuedCommand>>;

    /// Takes over up to `max` commands of `cluster_id` that another consumer took and left
    /// unacknowledged (no [`Store::keep_alive`]) for longer than `abandoned_after`, as happens
    /// when a broker replica dies.
    async fn reclaim(
        &self,
        cluster_id: &str,
        consumer: &str,
        max: usize,
        abandoned_after: Duration,
    ) -> StoreResult<Vec<QueuedCommand>>;

    /// Tells the store that `consumer` is still working on these entries, so they are not
    /// considered abandoned.
    async fn keep_alive(
        &self,
        cluster_id: &str,
        consumer: &str,
        entry_ids: &[String],
    ) -> StoreResult<()>;

    /// Removes a taken command from its queue without writing a result (a stream, once sent
    /// down its link).
    async fn settle(&self, cluster_id: &str, entry_id: &str) -> StoreResult<()>;

    /// Commands queued or running for `cluster_id`.
    async fn queue_depth(&self, cluster_id: &str) -> StoreResult<u64>;

    // --- results ---

    /// Writes a final result unless one exists, and removes its command (queue entry
    /// `entry_id` of the result's cluster, if given) from the queue; returns whether this write
    /// won.
    async fn finish_result(
        &self,
        result: &CommandResult,
        ttl: Duration,
        entry_id: Option<&str>,
    ) -> StoreResult<bool>;

    /// Reads a result: the final one, or the pending placeholder.
    async fn get_result(&self, result_id: &str) -> StoreResult<Option<CommandResult>>;

    /// Hands a result to the caller waiting on broker replica `broker_id`.
    async fn deliver_result(&self, broker_id: &str, result: &CommandResult) -> StoreResult<()>;

    /// Publishes a session event of `cluster_id` (its JSON) to the replicas watching them.
    async fn publish_session_event(&self, cluster_id: &str, event: &str) -> StoreResult<()>;

    /// Tells every replica that this one has a reader of `cluster_id`'s session events.
    async fn announce_event_interest(&self, cluster_id: &str) -> StoreResult<()>;

    /// Starts or stops receiving `cluster_id`'s session events ([`StoreEvent::SessionEvent`]).
    async fn watch_session_events(&self, cluster_id: &str, watch: bool) -> StoreResult<()>;

    /// Hands a piece of a stream to the caller reading it on broker replica `broker_id`; pieces
    /// and results to one replica arrive in the order they were handed over.
    async fn deliver_stream(&self, broker_id: &str, relay: &StreamRelay) -> StoreResult<()>;

    /// Tells the replica holding `cluster_id`'s link (whichever it is) that the caller of
    /// `result_id` went away ([`StoreEvent::Cancel`]).
    async fn cancel_command(&self, cluster_id: &str, result_id: &str) -> StoreResult<()>;

    // --- replica liveness ---

    /// Says replica `broker_id` is alive for `ttl` (it says so again well within it).
    async fn replica_alive(&self, broker_id: &str, ttl: Duration) -> StoreResult<()>;

    /// Says replica `broker_id` is gone (a clean stop): its commands are taken over at once.
    async fn replica_gone(&self, broker_id: &str) -> StoreResult<()>;

    /// Whether replica `broker_id`'s liveness claim ([`Store::replica_alive`]) holds.
    async fn replica_is_alive(&self, broker_id: &str) -> StoreResult<bool>;

    /// Takes over (for `consumer`) up to `max` commands of `cluster_id` that replicas no
    /// longer alive had taken, whatever their last keep-alive.
    async fn reclaim_orphans(
        &self,
        cluster_id: &str,
        consumer: &str,
        max: usize,
    ) -> StoreResult<Vec<QueuedCommand>>;

    // --- idempotency keys ---

    /// Takes idempotency key `key` for `value` (kept `ttl`), unless it is taken: then answers
    /// the value it holds and changes nothing. Atomic across replicas.
    async fn claim_idempotency_key(
        &self,
        key: &str,
        value: &str,
        ttl: Duration,
    ) -> StoreResult<Option<String>>;

    /// Gives key `key` back if it still holds `value` (its request was refused before it ran).
    async fn release_idempotency_key(&self, key: &str, value: &str) -> StoreResult<()>;

    /// Replaces `held` by `value` under key `key` (kept `ttl`) if the key still holds `held`;
    /// answers whether it did. Atomic across replicas.
    async fn swap_idempotency_key(
        &self,
        key: &str,
        held: &str,
        value: &str,
        ttl: Duration,
    ) -> StoreResult<bool>;

    // --- credentials ---

    /// Stores a credential, replacing one with the same id; with `only_if_new`, leaves an
    /// existing one alone and returns `false`.
    async fn put_credential(
        &self,
        record: &CredentialRecord,
        only_if_new: bool,
    ) -> StoreResult<bool>;

    /// The credential whose secret hashes to `hash` (hex SHA-256).
    async fn credential_by_hash(&self, hash: &str) -> StoreResult<Option<CredentialRecord>>;

    /// One credential by id.
    async fn get_credential(&self, id: &str) -> StoreResult<Option<CredentialRecord>>;

    /// Every credential, oldest first.
    async fn list_credentials(&self) -> StoreResult<Vec<CredentialRecord>>;

    /// Records a use of credential `id` at `at` (its `last_used_at`).
    async fn touch_credential(&self, id: &str, at: DateTime<Utc>) -> StoreResult<()>;

    /// Tells every replica, this one included, that credential `id` changed
    /// ([`StoreEvent::CredentialChanged`]).
    async fn announce_credential_change(&self, id: &str) -> StoreResult<()>;

    // --- rate limits ---

    /// Decides one request on the GCRA bucket `key` ([`crate::ratelimit::gcra`]): `limit`
    /// (at least 1) per `period`, a burst of `limit`, by the store's clock, atomically for every
    /// replica. A refusal changes nothing; an allowed request's bucket expires once full again.
    async fn rate_limit(&self, key: &str, limit: u32, period: Duration) -> StoreResult<Decision>;

    // --- audit ---

    /// Appends audit records (JSON, all of `chain`, in seq order) to the audit log and makes the
    /// last one `chain`'s head, all or nothing, in one round trip; the log keeps about the
    /// newest `max_len` records (the oldest go first).
    async fn append_audit(&self, chain: &str, records: &[String], max_len: u64) -> StoreResult<()>;

    /// The last record [`Store::append_audit`] wrote for `chain`, if it is still kept. A writer
    /// whose append failed without an answer reads it to learn whether the append happened.
    async fn audit_head(&self, chain: &str) -> StoreResult<Option<String>>;

    /// Up to `count` audit records with their cursors, newest first: the newest ones, or those
    /// older than the cursor `before` (see [`parse_audit_cursor`]).
    async fn read_audit(
        &self,
        before: Option<&str>,
        count: usize,
    ) -> StoreResult<Vec<(String, String)>>;
    // --- webhooks ---

    /// Stores a new webhook endpoint unless `max` are stored already (`false`).
    async fn put_webhook(&self, record: &WebhookRecord, max: usize) -> StoreResult<bool>;

    /// One endpoint, with its disabled state and counts.
    async fn get_webhook(&self, id: &str) -> StoreResult<Option<WebhookRecord>>;

    /// Every endpoint, oldest first.
    async fn list_webhooks(&self) -> StoreResult<Vec<WebhookRecord>>;

    /// Removes an endpoint with every delivery of it, pending or finished; returns it.
    async fn delete_webhook(&self, id: &str) -> StoreResult<Option<WebhookRecord>>;

    /// Stops deliveries to an endpoint: no event is queued for it any more and its pending
    /// deliveries end `failed` with `reason`. `false` if there is no such endpoint.
    async fn disable_webhook(&self, id: &str, at: DateTime<Utc>, reason: &str)
    -> StoreResult<bool>;

    /// Queues one delivery of `event` per enabled endpoint subscribed to its type, all at once
    /// (the outbox): except to endpoints that have `max_pending` pending deliveries (counted
    /// as dropped), and except deliveries of this event id that exist already.
    async fn emit_event(&self, event: &OutboxEvent, max_pending: u64) -> StoreResult<EmitOutcome>;

    /// Takes up to `max` pending deliveries due at `now` for an attempt, leased to `token`
    /// until `now + lease`: nobody else takes them meanwhile; if the lease runs out unfinished
    /// they are due again.
    async fn claim_deliveries(
        &self,
        token: &str,
        now: DateTime<Utc>,
        lease: Duration,
        max: usize,
    ) -> StoreResult<Vec<DeliveryRecord>>;

    /// Records an attempt's outcome (`delivery` as it is now: pending with its next attempt,
    /// or delivered, or failed) if `token` still holds its lease; `false` otherwise (another
    /// replica took it over, or the endpoint was deleted). A finished delivery moves to its
    /// endpoint's log, which keeps the newest [`KEPT_DELIVERIES`].
    async fn finish_attempt(&self, delivery: &DeliveryRecord, token: &str) -> StoreResult<bool>;

    /// Up to `limit` deliveries of an endpoint, newest first: pending, then finished.
    async fn list_deliveries(
        &self,
        endpoint_id: &str,
        limit: usize,
    ) -> StoreResult<Vec<DeliveryRecord>>;
}

// --- audit ---

/// Reads an audit cursor, `MS-SEQ` (a Redis stream id; the embedded store uses `N-0`): both
/// stores order records by it. Anything else is not a cursor.
pub fn parse_audit_cursor(cursor: &str) -> Option<(u64, u64)> {
    let (a, b) = cursor.split_once('-')?;
    let digits = |s: &str| !s.is_empty() && s.len() <= 20 && s.bytes().all(|c| c.is_ascii_digit());
    if !digits(a) || !digits(b) {
        return None;
    }
    Some((a.parse().ok()?, b.parse().ok()?))
}
