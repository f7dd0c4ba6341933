//! Webhooks on state changes: events, the durable outbox, and the delivery worker.
//!
//! - **Events** ([`Webhooks::cluster_connected`] and the others) are emitted once per
//!   occurrence, by whoever the store says owns it: the replica whose link claim made the
//!   cluster connected or disconnected ([`crate::store::LinkChange`], the `bool` of
//!   `unlink_cluster`/`touch_cluster`), the one that finds a lapsed claim
//!   (`Store::lapsed_links`), the writer whose final result won (`command.failed`), and for
//!   `session.expired` any replica scanning the store's expiry index — that event's id is
//!   derived from the session, so replicas that find the same expiry queue it once.
//! - **Outbox**: [`crate::store::Store::emit_event`] writes one delivery per subscribed endpoint
//!   in one atomic step, before anything is sent. The body is the same for every endpoint; the
//!   signature is made per attempt.
//! - **Worker** (one per replica, [`Webhooks::start`]): claims due deliveries with a lease
//!   (attempt timeout + 5 s), POSTs them (at most [`MAX_IN_FLIGHT`] at once), and records the
//!   outcome: 2xx delivered; 410 Gone disables the endpoint (audited); anything else is retried
//!   after an exponential backoff with full jitter (1 s doubling to 1 h, at least the
//!   `Retry-After` asked for) until `--webhook-retry-seconds` after the event. A replica that
//!   dies mid-attempt leaves its lease to run out: the delivery is attempted again by any
//!   replica. At least once, never exactly once: receivers deduplicate on `webhook-id`.
//! - **Targets** ([`target`]): http(s) URLs whose addresses are checked when registered and
//!   at every connection.
//!
//! What can still be lost: an event whose replica dies between the state change in the store
//! and the outbox write (one store round trip later), and events of the embedded store when its
//! broker stops.

pub mod admin;
pub mod sign;
pub mod target;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use kubeline_shared::api::{CommandResult, ResultStatus, SessionEventKind};
use kubeline_shared::audit::{AuditAction, AuditDecision, AuditEvent, AuditOutcome};
use kubeline_shared::webhooks::{
    ClusterConnectedData, ClusterDisconnectedData, CommandFailedData, DeliveryAttempt,
    DeliveryStatus, EventType, MAX_PAYLOAD_BYTES, MAX_PAYLOAD_ERROR_BYTES, SessionExpiredData,
    WebhookPayload, payload_args, truncate,
};
use rand::Rng;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::audit::{self, Auditor};
use crate::metrics::{self, WebhookAttempt};
use crate::store::{
    ClusterRecord, DeliveryRecord, OutboxEvent, SessionRecord, Store, StoreResult, WebhookRecord,
};

/// Default of `--webhook-retry-seconds`: a day.
pub const DEFAULT_RETRY_SECONDS: u64 = 24 * 3600;
/// Largest `--webhook-retry-seconds`: 30 days.
pub const MAX_RETRY_SECONDS: u64 = 30 * 24 * 3600;
/// Default of `--webhook-timeout-seconds`.
pub const DEFAULT_ATTEMPT_TIMEOUT_SECONDS: u64 = 10;
/// Largest `--webhook-timeout-seconds`.
pub const MAX_ATTEMPT_TIMEOUT_SECONDS: u64 = 60;
/// Most webhook endpoints a broker (all replicas) keeps.
pub const MAX_ENDPOINTS: usize = 32;
/// Most pending deliveries per endpoint; further events are not queued for it (counted as
/// dropped) until some are delivered or given up. Bounds the outbox at
/// `MAX_ENDPOINTS × MAX_PENDING_PER_ENDPOINT × MAX_PAYLOAD_BYTES` (512 MiB) in the worst case,
/// about a tenth of that with real payloads.
pub const MAX_PENDING_PER_ENDPOINT: u64 = 2000;
/// Attempts kept in a delivery's history (the newest).
pub const MAX_HISTORY: usize = 10;
/// Attempts one replica makes at once.
pub const MAX_IN_FLIGHT: usize = 16;
/// How often the worker looks for due deliveries when nothing woke it.
const POLL_INTERVAL: Duration = Duration::from_millis(500);
/// How often expired sessions and lapsed link claims are looked for.
const SCAN_INTERVAL: Duration = Duration::from_secs(1);
/// Expiries and lapses handled per scan.
const SCAN_BATCH: usize = 100;
/// First retry delay's ceiling; it doubles per attempt up to [`BACKOFF_CAP`].
const BACKOFF_BASE: Duration = Duration::from_secs(1);
/// Longest retry delay (before `Retry-After`).
const BACKOFF_CAP: Duration = Duration::from_secs(3600);
/// A lease lasts the attempt timeout plus this.
const LEASE_MARGIN: Duration = Duration::from_secs(5);
/// Most bytes of an endpoint's answer quoted in an attempt's error.
const ANSWER_SNIPPET_BYTES: usize = 200;
/// Longest error text kept per attempt.
const MAX_ERROR_BYTES: usize = 512;

// === configuration ===

/// Webhook settings (part of `kubeline broker`'s flags).
#[derive(Debug, Clone, clap::Args)]
pub struct WebhookArgs {
    /// Accept webhook targets on loopback, private (RFC 1918, unique local), shared and
    /// link-local addresses (for receivers inside the cluster network, and tests). Cloud
    /// metadata addresses stay refused.
    #[arg(
        long = "webhook-allow-private",
        env = "KUBELINE_WEBHOOK_ALLOW_PRIVATE",
        action = clap::ArgAction::SetTrue,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub allow_private: bool,

    /// How long a webhook delivery is retried after its event, in seconds (at most 30 days).
    #[arg(
        long = "webhook-retry-seconds",
        env = "KUBELINE_WEBHOOK_RETRY_SECONDS",
        default_value_t = DEFAULT_RETRY_SECONDS
    )]
    pub retry_seconds: u64,

    /// Timeout of one webhook delivery attempt, in seconds (1 to 60).
    #[arg(
        long = "webhook-timeout-seconds",
        env = "KUBELINE_WEBHOOK_TIMEOUT_SECONDS",
        default_value_t = DEFAULT_ATTEMPT_TIMEOUT_SECONDS
    )]
    pub timeout_seconds: u64,
}

impl Default for WebhookArgs {
    fn default() -> Self {
        Self {
            allow_private: false,
            retry_seconds: DEFAULT_RETRY_SECONDS,
            timeout_seconds: DEFAULT_ATTEMPT_TIMEOUT_SECONDS,
        }
    }
}

impl WebhookArgs {
    /// Refuses unusable values, naming the flag.
    pub fn check(&self) -> anyhow::Result<()> {
        if !(1..=MAX_RETRY_SECONDS).contains(&self.retry_seconds) {
            anyhow::bail!(
                "--webhook-retry-seconds must be from 1 to {MAX_RETRY_SECONDS} (30 days), not {}",
                self.retry_seconds
            );
        }
        if !(1..=MAX_ATTEMPT_TIMEOUT_SECONDS).contains(&self.timeout_seconds) {
            anyhow::bail!(
                "--webhook-timeout-seconds must be from 1 to {MAX_ATTEMPT_TIMEOUT_SECONDS}, not {}",
                self.timeout_seconds
            );
        }
        Ok(())
    }
}

// === the service ===

/// Webhooks of one broker replica: emits events into the store's outbox and delivers what is
/// due. Cheap to share (`Arc`).
pub struct Webhooks {
    store: Arc<dyn Store>,
    broker_id: String,
    args: WebhookArgs,
    client: reqwest::Client,
    audit: Auditor,
    /// Rung when this replica queued deliveries, so they go out without waiting for a poll.
    wake: Notify,
    stop: CancellationToken,
    /// Numbers lease tokens, so a lease this replica lost and took again is a new one.
    claims: AtomicU64,
    /// Where `session.expired` also goes: the readers of session events (`GET /debug/events`).
    session_events: std::sync::OnceLock<Arc<crate::events::SessionEvents>>,
}

impl std::fmt::Debug for Webhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhooks")
            .field("broker_id", &self.broker_id)
            .field("args", &self.args)
            .finish()
    }
}

impl Webhooks {
    /// The webhooks of replica `broker_id` over `store`; [`Webhooks::start`] starts delivering.
    pub fn new(
        store: Arc<dyn Store>,
        broker_id: &str,
        audit: Auditor,
        args: &WebhookArgs,
    ) -> anyhow::Result<Arc<Self>> {
        args.check()?;
        let client = target::client(
            Duration::from_secs(args.timeout_seconds),
            args.allow_private,
        )
        .map_err(|e| anyhow::anyhow!(e))?;
        Ok(Arc::new(Self {
            store,
            broker_id: broker_id.to_owned(),
            args: args.clone(),
            client,
            audit,
            wake: Notify::new(),
            stop: CancellationToken::new(),
            claims: AtomicU64::new(0),
            session_events: std::sync::OnceLock::new(),
        }))
    }

    /// The settings.
    pub fn args(&self) -> &WebhookArgs {
        &self.args
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    fn retry_period(&self) -> chrono::Duration {
        chrono::Duration::seconds(self.args.retry_seconds as i64)
    }

    fn attempt_timeout(&self) -> Duration {
        Duration::from_secs(self.args.timeout_seconds)
    }

    /// Also tells expired sessions to the readers of session events.
    pub fn set_session_events(&self, events: Arc<crate::events::SessionEvents>) {
        let _ = self.session_events.set(events);
    }

    /// Starts the delivery worker and the scans (expired sessions, lapsed links); they run
    /// until [`Webhooks::stop`].
    pub fn start(self: &Arc<Self>) {
        tokio::spawn(self.clone().run());
    }

    /// Stops the worker: no new attempts start. Attempts under way are dropped with the
    /// process; their leases run out and another replica makes them again.
    pub fn stop(&self) {
        self.stop.cancel();
    }

    // === events ===

    /// `cluster.connected`.
    pub async fn cluster_connected(&self, record: &ClusterRecord) {
        let data = ClusterConnectedData {
            cluster_id: record.cluster_id.clone(),
            agent_version: record.agent_version.clone(),
            kubernetes_version: record.kubernetes_version.clone(),
            broker_id: record.broker_id.clone().unwrap_or_default(),
        };
        let _ = self
            .emit(
                EventType::ClusterConnected,
                random_event_id(),
                Utc::now(),
                data,
            )
            .await;
    }

    /// `cluster.disconnected`; `broker_id` is the replica that held the link (`None` when its
    /// claim lapsed).
    pub async fn cluster_disconnected(
        &self,
        cluster_id: &str,
        reason: &str,
        broker_id: Option<&str>,
        last_seen: Option<DateTime<Utc>>,
    ) {
        let data = ClusterDisconnectedData {
            cluster_id: cluster_id.to_owned(),
            reason: truncate(reason, MAX_PAYLOAD_ERROR_BYTES).to_owned(),
            broker_id: broker_id.map(str::to_owned),
            last_seen,
        };
        let _ = self
            .emit(
                EventType::ClusterDisconnected,
                random_event_id(),
                Utc::now(),
                data,
            )
            .await;
    }

    /// `session.expired`, with an id derived from the session: emitting it again (another
    /// replica found the same expiry) queues nothing more.
    pub async fn session_expired(&self, session: &SessionRecord) -> StoreResult<()> {
        let data = SessionExpiredData {
            session_id: session.session_id.clone(),
            cluster_id: session.cluster_id.clone(),
            created_at: session.created_at,
            expires_at: session.expires_at,
            last_activity: session.last_activity,
            commands_executed: session.commands_executed,
            owner: session.owner.clone(),
        };
        let id = derived_event_id(EventType::SessionExpired, &session.session_id);
        self.emit(EventType::SessionExpired, id, session.expires_at, data)
            .await
    }

    /// `command.failed` for a final result that is `failed` or `timeout` (others are ignored),
    /// with an id derived from the result.
    pub async fn command_failed(
        &self,
        command_type: &str,
        args: &[String],
        result: &CommandResult,
    ) {
        if !matches!(result.status, ResultStatus::Failed | ResultStatus::Timeout) {
            return;
        }
        let (args, args_truncated) = payload_args(args);
        let data = CommandFailedData {
            result_id: result.result_id.clone(),
            session_id: result.session_id.clone(),
            cluster_id: result.cluster_id.clone(),
            command_type: truncate(command_type, 64).to_owned(),
            args,
            args_truncated,
            status: result.status,
            exit_code: result.exit_code,
            error: result
                .error
                .as_deref()
                .map(|e| truncate(e, MAX_PAYLOAD_ERROR_BYTES).to_owned()),
            executed_at: result.executed_at,
            execution_time_ms: result.execution_time_ms,
            correlation_id: truncate(&result.correlation_id, 256).to_owned(),
        };
        let id = derived_event_id(EventType::CommandFailed, &result.result_id);
        let _ = self
            .emit(EventType::CommandFailed, id, Utc::now(), data)
            .await;
    }

    /// Queues one delivery of the event per subscribed endpoint (the store's outbox).
    async fn emit(
        &self,
        event_type: EventType,
        id: String,
        at: DateTime<Utc>,
        data: impl Serialize,
    ) -> StoreResult<()> {
        let payload = WebhookPayload {
            event_type,
            timestamp: at,
            data: serde_json::to_value(data).expect("event data always serializes"),
        };
        let body = serde_json::to_string(&payload).expect("payloads always serialize");
        if body.len() > MAX_PAYLOAD_BYTES {
            // The data's caller-influenced parts are cut below the bound; this is a bug.
            warn!(
                event = event_type.as_str(),
                bytes = body.len(),
                "webhook payload too large; not queued"
            );
            return Ok(());
        }
        let now = Utc::now();
        let event = OutboxEvent {
            id,
            event_type,
            body,
            created_at: now,
            give_up_at: now + self.retry_period(),
        };
        match self
            .store
            .emit_event(&event, MAX_PENDING_PER_ENDPOINT)
            .await
        {
            Ok(outcome) => {
                if outcome.queued > 0 {
                    metrics::webhook_event(event_type);
                    debug!(event = event_type.as_str(), id = %event.id, deliveries = outcome.queued, "webhook event queued");
                    self.wake.notify_one();
                }
                if outcome.dropped > 0 {
                    metrics::webhook_deliveries("dropped", u64::from(outcome.dropped));
                    warn!(
                        event = event_type.as_str(),
                        endpoints = outcome.dropped,
                        "webhook event not queued for endpoints that have {MAX_PENDING_PER_ENDPOINT} pending deliveries"
                    );
                }
                Ok(())
            }
            Err(e) => {
                warn!(event = event_type.as_str(), error = %e, "cannot queue a webhook event");
                Err(e)
            }
        }
    }

    // === the worker ===

    async fn run(self: Arc<Self>) {
        let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
        let mut poll = tokio::time::interval(POLL_INTERVAL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut scanned = Instant::now();
        let lease = self.attempt_timeout() + LEASE_MARGIN;
        loop {
            tokio::select! {
                () = self.stop.cancelled() => return,
                () = self.wake.notified() => {}
                _ = poll.tick() => {}
            }
            if scanned.elapsed() >= SCAN_INTERVAL {
                self.scan().await;
                scanned = Instant::now();
            }
            let free = slots.available_permits();
            if free == 0 {
                continue;
            }
            let token = format!(
                "{}:{}",
                self.broker_id,
                self.claims.fetch_add(1, Ordering::Relaxed)
            );
            let claimed = match self
                .store
                .claim_deliveries(&token, Utc::now(), lease, free)
                .await
            {
                Ok(claimed) => claimed,
                Err(e) => {
                    warn!(error = %e, "cannot claim webhook deliveries");
                    continue;
                }
            };
            let full = claimed.len() == free;
            for delivery in claimed {
                let Ok(permit) = slots.clone().acquire_owned().await else {
                    return;
                };
                let (this, token) = (self.clone(), token.clone());
                tokio::spawn(async move {
                    this.attempt(delivery, &token).await;
                    drop(permit);
                });
            }
            if full {
                // There may be more due: look again as soon as a slot frees.
                self.wake.notify_one();
            }
        }
    }

    /// Emits `session.expired` for sessions past their expiry, and `cluster.disconnected` for
    /// link claims that lapsed.
    async fn scan(&self) {
        match self
            .store
            .due_session_expiries(Utc::now(), SCAN_BATCH)
            .await
        {
            Ok(due) => {
                let mut handled = Vec::with_capacity(due.len());
                for (id, session) in due {
                    let expired = session.as_ref().filter(|s| {
                        // Closed before its expiry: it did not expire.
                        s.closed_at.is_none_or(|closed| closed >= s.expires_at)
                    });
                    if let Some(session) = expired {
                        if self.session_expired(session).await.is_err() {
                            // Not handled: the next scan tries again (the event id is stable).
                            continue;
                        }
                        if let Some(events) = self.session_events.get() {
                            events.session(SessionEventKind::SessionExpired, session);
                        }
                    }
                    handled.push(id);
                }
                if let Err(e) = self.store.forget_session_expiries(&handled).await {
                    warn!(error = %e, "cannot record handled session expiries");
                }
            }
            Err(e) => warn!(error = %e, "cannot read session expiries"),
        }
        match self.store.lapsed_links(SCAN_BATCH).await {
            Ok(lapsed) => {
                for cluster in lapsed {
                    let last_seen = match self.store.get_cluster(&cluster).await {
                        Ok(record) => record.and_then(|r| r.last_seen),
                        Err(_) => None,
                    };
                    info!(cluster = %cluster, "agent link claim lapsed without a disconnect");
                    self.cluster_disconnected(
                        &cluster,
                        "presence lapsed: the broker replica holding the link stopped refreshing it",
                        None,
                        last_seen,
                    )
                    .await;
                }
            }
            Err(e) => warn!(error = %e, "cannot look for lapsed agent links"),
        }
    }

    /// One attempt of a claimed delivery, and its outcome recorded.
    async fn attempt(&self, mut delivery: DeliveryRecord, token: &str) {
        let endpoint = match self.store.get_webhook(&delivery.endpoint_id).await {
            Ok(Some(endpoint)) => endpoint,
            // Deleted: its deliveries went with it.
            Ok(None) => return,
            Err(e) => {
                // The lease runs out and the delivery is attempted again.
                warn!(error = %e, delivery = %delivery.id, "cannot read a webhook endpoint");
                return;
            }
        };
        let now = Utc::now();
        if let Some(reason) = &endpoint.disabled_reason {
            delivery.status = DeliveryStatus::Failed;
            delivery.next_attempt_at = None;
            delivery.last_error = Some(format!(
                "not attempted: the endpoint is disabled ({reason})"
            ));
            self.finish(&delivery, token).await;
            return;
        }
        if now >= delivery.give_up_at {
            delivery.status = DeliveryStatus::Failed;
            delivery.next_attempt_at = None;
            delivery.last_error = Some(format!(
                "given up: the retry period ({}s) ended{}",
                self.args.retry_seconds,
                delivery
                    .last_error
                    .as_deref()
                    .map(|e| format!("; last error: {e}"))
                    .unwrap_or_default()
            ));
            self.finish(&delivery, token).await;
            return;
        }
        let answer = self.send(&endpoint, &delivery).await;
        metrics::webhook_attempt(answer.kind, answer.took);
        delivery.attempts += 1;
        delivery.history.push(DeliveryAttempt {
            attempt: delivery.attempts,
            at: now,
            status_code: answer.status,
            error: answer.error.clone(),
            duration_ms: answer.took.as_millis() as u64,
        });
        if delivery.history.len() > MAX_HISTORY {
            delivery.history.remove(0);
        }
        delivery.last_status_code = answer.status;
        delivery.last_error = answer.error.clone();
        match answer.kind {
            WebhookAttempt::Delivered => {
                delivery.status = DeliveryStatus::Delivered;
                delivery.next_attempt_at = None;
            }
            WebhookAttempt::Gone => {
                delivery.status = DeliveryStatus::Failed;
                delivery.next_attempt_at = None;
            }
            _ => {
                let next = Utc::now()
                    + chrono::Duration::from_std(retry_delay(
                        delivery.attempts,
                        answer.retry_after,
                    ))
                    .unwrap_or(chrono::Duration::MAX);
                if next >= delivery.give_up_at {
                    delivery.status = DeliveryStatus::Failed;
                    delivery.next_attempt_at = None;
                    delivery.last_error = Some(format!(
                        "{}; given up: the retry period ({}s) ends before the next attempt",
                        delivery.last_error.as_deref().unwrap_or("failed"),
                        self.args.retry_seconds
                    ));
                } else {
                    delivery.next_attempt_at = Some(next);
                }
            }
        }
        self.finish(&delivery, token).await;
        if answer.kind == WebhookAttempt::Gone {
            self.disable(&endpoint).await;
        }
    }

    async fn finish(&self, delivery: &DeliveryRecord, token: &str) {
        match self.store.finish_attempt(delivery, token).await {
            Ok(true) => match delivery.status {
                DeliveryStatus::Pending => {}
                DeliveryStatus::Delivered => metrics::webhook_deliveries("delivered", 1),
                DeliveryStatus::Failed => {
                    metrics::webhook_deliveries("failed", 1);
                    warn!(delivery = %delivery.id, endpoint = %delivery.endpoint_id, error = delivery.last_error.as_deref().unwrap_or(""), "webhook delivery failed");
                }
            },
            Ok(false) => {
                debug!(delivery = %delivery.id, "webhook delivery was taken over or deleted meanwhile");
            }
            Err(e) => {
                // The lease runs out and the delivery is attempted again (at least once).
                warn!(delivery = %delivery.id, error = %e, "cannot record a webhook attempt");
            }
        }
    }

    /// Stops deliveries to an endpoint that answered 410 Gone, and audits it.
    async fn disable(&self, endpoint: &WebhookRecord) {
        let reason = "the endpoint answered 410 Gone";
        match self
            .store
            .disable_webhook(&endpoint.id, Utc::now(), reason)
            .await
        {
            Ok(true) => {
                warn!(endpoint = %endpoint.id, "webhook endpoint disabled: it answered 410 Gone");
                let mut event = AuditEvent::new(
                    AuditAction::WebhookDisable,
                    AuditOutcome::Completed,
                    Utc::now(),
                );
                event.target = Some(endpoint.id.clone());
                event.decision = Some(AuditDecision::Allowed);
                event.reason = Some(reason.to_owned());
                audit::record_after(&self.audit, event).await;
            }
            Ok(false) => {}
            Err(e) => {
                warn!(endpoint = %endpoint.id, error = %e, "cannot disable a webhook endpoint")
            }
        }
    }

    /// POSTs a delivery, signed.
    async fn send(&self, endpoint: &WebhookRecord, delivery: &DeliveryRecord) -> Answer {
        let started = Instant::now();
        let network = |error: String, kind| Answer {
            kind,
            status: None,
            error: Some(truncate(&error, MAX_ERROR_BYTES).to_owned()),
            retry_after: None,
            took: started.elapsed(),
        };
        let Some(key) = sign::secret_key(&endpoint.secret) else {
            return network(
                "the endpoint's stored secret is unusable; delete and register it again".into(),
                WebhookAttempt::NetworkError,
            );
        };
        // Names are checked by the client's resolver at connection time; an address written
        // in the URL never reaches it.
        let url = match target::check_form(&endpoint.url) {
            Ok(url) => url,
            Err(e) => return network(e.0, WebhookAttempt::NetworkError),
        };
        if let Some(host) = url.host() {
            let ip = match host {
                url::Host::Ipv4(v4) => Some(std::net::IpAddr::V4(v4)),
                url::Host::Ipv6(v6) => Some(std::net::IpAddr::V6(v6)),
                url::Host::Domain(_) => None,
            };
            if let Some(ip) = ip
                && let Some(reason) = target::refused_address(ip, self.args.allow_private)
            {
                return network(
                    format!("refused: the target {ip} is {reason}"),
                    WebhookAttempt::NetworkError,
                );
            }
        }
        let timestamp = Utc::now().timestamp();
        let signature = sign::signature(&key, &delivery.id, timestamp, delivery.body.as_bytes());
        let sent = self
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("webhook-id", &delivery.id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(delivery.body.clone())
            .send()
            .await;
        let mut response = match sent {
            Ok(response) => response,
            Err(e) if e.is_timeout() => {
                return network(
                    format!("no answer within {}s", self.args.timeout_seconds),
                    WebhookAttempt::Timeout,
                );
            }
            Err(e) => return network(error_chain(&e), WebhookAttempt::NetworkError),
        };
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, Utc::now()));
        let location = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(|l| truncate(l, 200).to_owned());
        let (kind, error) = if status.is_success() {
            (WebhookAttempt::Delivered, None)
        } else {
            let mut snippet = Vec::new();
            while snippet.len() < ANSWER_SNIPPET_BYTES {
                match tokio::time::timeout(Duration::from_secs(1), response.chunk()).await {
                    Ok(Ok(Some(chunk))) => snippet.extend_from_slice(&chunk),
                    _ => break,
                }
            }
            snippet.truncate(ANSWER_SNIPPET_BYTES);
            let snippet = String::from_utf8_lossy(&snippet);
            let snippet = snippet.trim();
            let mut error = format!("HTTP {status}");
            if status.is_redirection() {
                error.push_str(": redirects are not followed");
                if let Some(location) = &location {
                    error.push_str(&format!(
                        " (Location: {location}); register that URL instead"
                    ));
                }
            } else if status == reqwest::StatusCode::GONE {
                error.push_str(": the endpoint is disabled");
            }
            if !snippet.is_empty() {
                error.push_str(&format!(": {snippet}"));
            }
            let kind = if status == reqwest::StatusCode::GONE {
                WebhookAttempt::Gone
            } else {
                WebhookAttempt::HttpError
            };
            (kind, Some(truncate(&error, MAX_ERROR_BYTES).to_owned()))
        };
        Answer {
            kind,
            status: Some(status.as_u16()),
            error,
            retry_after,
            took: started.elapsed(),
        }
    }
}

/// How an attempt went.
struct Answer {
    kind: WebhookAttempt,
    status: Option<u16>,
    error: Option<String>,
    retry_after: Option<Duration>,
    took: Duration,
}

/// The delay before attempt `attempts + 1`: full jitter over an exponential ceiling (1 s, 2 s,
/// 4 s, … up to 1 h), and never sooner than the endpoint's `Retry-After`.
pub fn retry_delay(attempts: u32, retry_after: Option<Duration>) -> Duration {
    let ceiling = BACKOFF_BASE
        .saturating_mul(1u32 << attempts.saturating_sub(1).min(20))
        .min(BACKOFF_CAP);
    let jittered = Duration::from_millis(rand::rng().random_range(0..=ceiling.as_millis() as u64));
    jittered.max(retry_after.unwrap_or_default())
}

/// `Retry-After` as seconds or an HTTP date; `None` if unreadable. Capped at 30 days.
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    let wait = if let Ok(seconds) = value.parse::<u64>() {
        Duration::from_secs(seconds)
    } else {
        let at = DateTime::parse_from_rfc2822(value)
            .ok()?
            .with_timezone(&Utc);
        (at - now).to_std().unwrap_or_default()
    };
    Some(wait.min(Duration::from_secs(MAX_RETRY_SECONDS)))
}

/// A fresh event id: `evt_` + 32 hex digits.
fn random_event_id() -> String {
    format!("evt_{}", uuid::Uuid::new_v4().simple())
}

/// The id of the event of `event_type` about `subject` (a session or result id): the same on
/// every replica that emits it.
fn derived_event_id(event_type: EventType, subject: &str) -> String {
    let mut h = Sha256::new();
    h.update(event_type.as_str().as_bytes());
    h.update(b":");
    h.update(subject.as_bytes());
    format!("evt_{}", &hex::encode(h.finalize())[..32])
}

/// An error with its causes (reqwest keeps them apart).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let said = cause.to_string();
        if !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delays_grow_with_full_jitter_and_honour_retry_after() {
        for attempts in 1..40 {
            let d = retry_delay(attempts, None);
            let ceiling = BACKOFF_BASE
                .saturating_mul(1 << (attempts - 1).min(20))
                .min(BACKOFF_CAP);
            assert!(d <= ceiling, "attempt {attempts}: {d:?} > {ceiling:?}");
        }
        assert!(retry_delay(1, None) <= Duration::from_secs(1));
        assert!(retry_delay(30, None) <= BACKOFF_CAP);
        assert!(retry_delay(1, Some(Duration::from_secs(7))) >= Duration::from_secs(7));
        // Jitter: not always the ceiling.
        let spread: std::collections::HashSet<Duration> =
            (0..50).map(|_| retry_delay(12, None)).collect();
        assert!(spread.len() > 10);
    }

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        let now = DateTime::parse_from_rfc3339("2015-10-21T07:28:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(parse_retry_after("1", now), Some(Duration::from_secs(1)));
        assert_eq!(
            parse_retry_after(" 120 ", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(
            parse_retry_after("99999999999", now),
            Some(Duration::from_secs(MAX_RETRY_SECONDS))
        );
    }

    #[test]
    fn derived_ids_are_stable_and_apart() {
        let a = derived_event_id(EventType::SessionExpired, "sess_1");
        assert_eq!(a, derived_event_id(EventType::SessionExpired, "sess_1"));
        assert_ne!(a, derived_event_id(EventType::CommandFailed, "sess_1"));
        assert!(a.starts_with("evt_") && a.len() == 36, "{a}");
        assert!(!a.contains('.'));
        assert_eq!(random_event_id().len(), 36);
    }

    /// A name that passed when it was registered and now resolves to a refused address (DNS
    /// rebinding) is refused at delivery: the connection is never made, and the attempt says
    /// why.
    #[tokio::test]
    async fn deliveries_check_the_addresses_they_connect_to() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let reached = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = reached.clone();
        tokio::spawn(async move {
            if listener.accept().await.is_ok() {
                flag.store(true, Ordering::SeqCst);
            }
        });
        let store: Arc<dyn Store> = Arc::new(crate::store::memory::MemoryStore::new());
        let audit = Auditor::start(store.clone(), "b", &Default::default());
        let webhooks = Webhooks::new(store.clone(), "b", audit, &WebhookArgs::default()).unwrap();
        // Stored as if its name had resolved to a public address when it was registered.
        let endpoint = WebhookRecord {
            id: "wh_1".into(),
            url: format!("http://localhost:{port}/hook"),
            events: vec![EventType::SessionExpired],
            description: None,
            secret: sign::new_secret(),
            created_at: Utc::now(),
            created_by: None,
            disabled_at: None,
            disabled_reason: None,
            pending: 0,
            dropped: 0,
        };
        store.put_webhook(&endpoint, MAX_ENDPOINTS).await.unwrap();
        let now = Utc::now();
        let session = SessionRecord {
            session_id: "sess_1".into(),
            cluster_id: "c1".into(),
            created_at: now,
            expires_at: now,
            closed_at: None,
            last_activity: now,
            commands_executed: 0,
            metadata: None,
            owner: None,
        };
        webhooks.session_expired(&session).await.unwrap();
        let claimed = store
            .claim_deliveries("t", Utc::now(), Duration::from_secs(30), 10)
            .await
            .unwrap();
        assert_eq!(claimed.len(), 1);
        webhooks.attempt(claimed[0].clone(), "t").await;
        let d = &store.list_deliveries("wh_1", 10).await.unwrap()[0];
        assert_eq!(d.status, DeliveryStatus::Pending, "retried later");
        assert_eq!(d.attempts, 1);
        let error = d.last_error.as_deref().unwrap();
        assert!(
            error.contains("localhost resolves to") && error.contains("a loopback address"),
            "{error}"
        );
        assert!(!reached.load(Ordering::SeqCst), "no connection was made");
    }

    #[test]
    fn flags_are_checked() {
        assert!(WebhookArgs::default().check().is_ok());
        let e = WebhookArgs {
            retry_seconds: 0,
            ..Default::default()
        }
        .check()
        .unwrap_err()
        .to_string();
        assert!(e.contains("--webhook-retry-seconds"), "{e}");
        let e = WebhookArgs {
            timeout_seconds: 61,
            ..Default::default()
        }
        .check()
        .unwrap_err()
        .to_string();
        assert!(e.contains("--webhook-timeout-seconds"), "{e}");
    }
}
