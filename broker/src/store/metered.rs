//! A [`Store`] that times every operation of another one into
//! `kubeline_store_operation_duration_seconds{operation,backend}` (see [`crate::metrics`]).
//!
//! The broker wraps its store in this once, at start, so no caller has to remember to time.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use kubeline_shared::api::CommandResult;
use tokio::sync::mpsc;

use super::{
    ClusterRecord, CredentialRecord, DeliveryRecord, EmitOutcome, LinkChange, OutboxEvent,
    QueuedCommand, SessionRecord, Standing, Store, StoreEvent, StoreResult, StreamRelay,
    WebhookRecord,
};
use crate::metrics;
use crate::ratelimit::Decision;

/// Times the operations of `inner`, labelled with `backend`.
pub struct Metered {
    inner: Arc<dyn Store>,
    backend: &'static str,
}

impl Metered {
    /// Wraps `inner`; `backend` names it in the label (`redis`, `memory`).
    pub fn new(inner: Arc<dyn Store>, backend: &'static str) -> Self {
        Self { inner, backend }
    }

    async fn timed<T>(&self, operation: &'static str, op: impl Future<Output = T>) -> T {
        let started = Instant::now();
        let out = op.await;
        metrics::store_operation(operation, self.backend, started.elapsed());
        out
    }
}

#[async_trait]
impl Store for Metered {
    async fn ping(&self) -> StoreResult<()> {
        self.timed("ping", self.inner.ping()).await
    }

    // Not timed: it sets up a subscription that lives as long as the broker.
    async fn subscribe(
        &self,
        broker_id: &str,
        events: mpsc::Sender<StoreEvent>,
    ) -> StoreResult<()> {
        self.inner.subscribe(broker_id, events).await
    }

    async fn watch_cluster(&self, cluster_id: &str) -> StoreResult<()> {
        self.timed("watch_cluster", self.inner.watch_cluster(cluster_id))
            .await
    }

    async fn unwatch_cluster(&self, cluster_id: &str) -> StoreResult<()> {
        self.timed("unwatch_cluster", self.inner.unwatch_cluster(cluster_id))
            .await
    }

    async fn create_session(&self, session: &SessionRecord, retain: Duration) -> StoreResult<()> {
        self.timed("create_session", self.inner.create_session(session, retain))
            .await
    }

    async fn get_session(&self, session_id: &str) -> StoreResult<Option<SessionRecord>> {
        self.timed("get_session", self.inner.get_session(session_id))
            .await
    }

    async fn close_session(
        &self,
        session_id: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<Option<SessionRecord>> {
        self.timed("close_session", self.inner.close_session(session_id, at))
            .await
    }

    async fn list_sessions(&self) -> StoreResult<Vec<SessionRecord>> {
        self.timed("list_sessions", self.inner.list_sessions())
            .await
    }

    async fn due_session_expiries(
        &self,
        now: DateTime<Utc>,
        max: usize,
    ) -> StoreResult<Vec<(String, Option<SessionRecord>)>> {
        let op = self.inner.due_session_expiries(now, max);
        self.timed("due_session_expiries", op).await
    }

    async fn forget_session_expiries(&self, session_ids: &[String]) -> StoreResult<()> {
        let op = self.inner.forget_session_expiries(session_ids);
        self.timed("forget_session_expiries", op).await
    }

    async fn link_cluster(&self, record: &ClusterRecord, ttl: Duration) -> StoreResult<LinkChange> {
        self.timed("link_cluster", self.inner.link_cluster(record, ttl))
            .await
    }

    async fn touch_cluster(
        &self,
        cluster_id: &str,
        broker_id: &str,
        last_seen: DateTime<Utc>,
        ttl: Duration,
    ) -> StoreResult<bool> {
        let op = self
            .inner
            .touch_cluster(cluster_id, broker_id, last_seen, ttl);
        self.timed("touch_cluster", op).await
    }

    async fn unlink_cluster(
        &self,
        cluster_id: &str,
        broker_id: &str,
        last_seen: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let op = self.inner.unlink_cluster(cluster_id, broker_id, last_seen);
        self.timed("unlink_cluster", op).await
    }

    async fn lapsed_links(&self, max: usize) -> StoreResult<Vec<String>> {
        self.timed("lapsed_links", self.inner.lapsed_links(max))
            .await
    }

    async fn get_cluster(&self, cluster_id: &str) -> StoreResult<Option<ClusterRecord>> {
        self.timed("get_cluster", self.inner.get_cluster(cluster_id))
            .await
    }

    async fn list_clusters(&self) -> StoreResult<Vec<ClusterRecord>> {
        self.timed("list_clusters", self.inner.list_clusters())
            .await
    }

    async fn enqueue(
        &self,
        command: &QueuedCommand,
        pending: &CommandResult,
        result_ttl: Duration,
        ring: bool,
    ) -> StoreResult<String> {
        let op = self.inner.enqueue(command, pending, result_ttl, ring);
        self.timed("enqueue", op).await
    }

    async fn requeue(&self, command: &QueuedCommand, ring: bool) -> StoreResult<String> {
        let op = self.inner.requeue(command, ring);
        self.timed("requeue", op).await
    }

    async fn standing(
        &self,
        cluster_id: &str,
        entry_id: &str,
        result_id: &str,
    ) -> StoreResult<Standing> {
        let op = self.inner.standing(cluster_id, entry_id, result_id);
        self.timed("standing", op).await
    }

    async fn take(
        &self,
        cluster_id: &str,
        consumer: &str,
        max: usize,
    ) -> StoreResult<Vec<QueuedCommand>> {
        self.timed("take", self.inner.take(cluster_id, consumer, max))
            .await
    }

    async fn reclaim(
        &self,
        cluster_id: &str,
        consumer: &str,
        max: usize,
        abandoned_after: Duration,
    ) -> StoreResult<Vec<QueuedCommand>> {
        let op = self
            .inner
            .reclaim(cluster_id, consumer, max, abandoned_after);
        self.timed("reclaim", op).await
    }

    async fn keep_alive(
        &self,
        cluster_id: &str,
        consumer: &str,
        entry_ids: &[String],
    ) -> StoreResult<()> {
        let op = self.inner.keep_alive(cluster_id, consumer, entry_ids);
        self.timed("keep_alive", op).await
    }

    async fn queue_depth(&self, cluster_id: &str) -> StoreResult<u64> {
        self.timed("queue_depth", self.inner.queue_depth(cluster_id))
            .await
    }

    async fn finish_result(
        &self,
        result: &CommandResult,
        ttl: Duration,
        entry_id: Option<&str>,
    ) -> StoreResult<bool> {
        let op = self.inner.finish_result(result, ttl, entry_id);
        self.timed("finish_result", op).await
    }

    async fn get_result(&self, result_id: &str) -> StoreResult<Option<CommandResult>> {
        self.timed("get_result", self.inner.get_result(result_id))
            .await
    }

    async fn deliver_result(&self, broker_id: &str, result: &CommandResult) -> StoreResult<()> {
        self.timed(
            "deliver_result",
            self.inner.deliver_result(broker_id, result),
        )
        .await
    }

    async fn deliver_stream(&self, broker_id: &str, relay: &StreamRelay) -> StoreResult<()> {
        self.timed(
            "deliver_stream",
            self.inner.deliver_stream(broker_id, relay),
        )
        .await
    }

    async fn publish_session_event(&self, cluster_id: &str, event: &str) -> StoreResult<()> {
        self.timed(
            "publish_session_event",
            self.inner.publish_session_event(cluster_id, event),
        )
        .await
    }

    async fn announce_event_interest(&self, cluster_id: &str) -> StoreResult<()> {
        self.timed(
            "announce_event_interest",
            self.inner.announce_event_interest(cluster_id),
        )
        .await
    }

    async fn watch_session_events(&self, cluster_id: &str, watch: bool) -> StoreResult<()> {
        self.timed(
            "watch_session_events",
            self.inner.watch_session_events(cluster_id, watch),
        )
        .await
    }

    async fn cancel_command(&self, cluster_id: &str, result_id: &str) -> StoreResult<()> {
        self.timed(
            "cancel_command",
            self.inner.cancel_command(cluster_id, result_id),
        )
        .await
    }

    async fn settle(&self, cluster_id: &str, entry_id: &str) -> StoreResult<()> {
        self.timed("settle", self.inner.settle(cluster_id, entry_id))
            .await
    }

    // --- credentials ---

    async fn put_credential(
        &self,
        record: &CredentialRecord,
        only_if_new: bool,
    ) -> StoreResult<bool> {
        self.timed(
            "put_credential",
            self.inner.put_credential(record, only_if_new),
        )
        .await
    }

    async fn credential_by_hash(&self, hash: &str) -> StoreResult<Option<CredentialRecord>> {
        self.timed("credential_by_hash", self.inner.credential_by_hash(hash))
            .await
    }

    async fn get_credential(&self, id: &str) -> StoreResult<Option<CredentialRecord>> {
        self.timed("get_credential", self.inner.get_credential(id))
            .await
    }

    async fn list_credentials(&self) -> StoreResult<Vec<CredentialRecord>> {
        self.timed("list_credentials", self.inner.list_credentials())
            .await
    }

    async fn touch_credential(&self, id: &str, at: DateTime<Utc>) -> StoreResult<()> {
        self.timed("touch_credential", self.inner.touch_credential(id, at))
            .await
    }

    async fn announce_credential_change(&self, id: &str) -> StoreResult<()> {
        self.timed(
            "announce_credential_change",
            self.inner.announce_credential_change(id),
        )
        .await
    }

    // --- replica liveness ---

    async fn replica_alive(&self, broker_id: &str, ttl: Duration) -> StoreResult<()> {
        self.timed("replica_alive", self.inner.replica_alive(broker_id, ttl))
            .await
    }

    async fn replica_gone(&self, broker_id: &str) -> StoreResult<()> {
        self.timed("replica_gone", self.inner.replica_gone(broker_id))
            .await
    }

    async fn replica_is_alive(&self, broker_id: &str) -> StoreResult<bool> {
        self.timed("replica_is_alive", self.inner.replica_is_alive(broker_id))
            .await
    }

    async fn reclaim_orphans(
        &self,
        cluster_id: &str,
        consumer: &str,
        max: usize,
    ) -> StoreResult<Vec<QueuedCommand>> {
        self.timed(
            "reclaim_orphans",
            self.inner.reclaim_orphans(cluster_id, consumer, max),
        )
        .await
    }

    // --- idempotency keys ---

    async fn claim_idempotency_key(
        &self,
        key: &str,
        value: &str,
        ttl: Duration,
    ) -> StoreResult<Option<String>> {
        self.timed(
            "claim_idempotency_key",
            self.inner.claim_idempotency_key(key, value, ttl),
        )
        .await
    }

    async fn release_idempotency_key(&self, key: &str, value: &str) -> StoreResult<()> {
        self.timed(
            "release_idempotency_key",
            self.inner.release_idempotency_key(key, value),
        )
        .await
    }

    async fn swap_idempotency_key(
        &self,
        key: &str,
        held: &str,
        value: &str,
        ttl: Duration,
    ) -> StoreResult<bool> {
        self.timed(
            "swap_idempotency_key",
            self.inner.swap_idempotency_key(key, held, value, ttl),
        )
        .await
    }

    // --- rate limits ---

    async fn rate_limit(&self, key: &str, limit: u32, period: Duration) -> StoreResult<Decision> {
        self.timed("rate_limit", self.inner.rate_limit(key, limit, period))
            .await
    }

    // --- audit ---

    async fn append_audit(&self, chain: &str, records: &[String], max_len: u64) -> StoreResult<()> {
        let op = self.inner.append_audit(chain, records, max_len);
        self.timed("append_audit", op).await
    }

    async fn audit_head(&self, chain: &str) -> StoreResult<Option<String>> {
        self.timed("audit_head", self.inner.audit_head(chain)).await
    }

    async fn read_audit(
        &self,
        before: Option<&str>,
        count: usize,
    ) -> StoreResult<Vec<(String, String)>> {
        self.timed("read_audit", self.inner.read_audit(before, count))
            .await
    }

    // --- webhooks ---

    async fn put_webhook(&self, record: &WebhookRecord, max: usize) -> StoreResult<bool> {
        self.timed("put_webhook", self.inner.put_webhook(record, max))
            .await
    }

    async fn get_webhook(&self, id: &str) -> StoreResult<Option<WebhookRecord>> {
        self.timed("get_webhook", self.inner.get_webhook(id)).await
    }

    async fn list_webhooks(&self) -> StoreResult<Vec<WebhookRecord>> {
        self.timed("list_webhooks", self.inner.list_webhooks())
            .await
    }

    async fn delete_webhook(&self, id: &str) -> StoreResult<Option<WebhookRecord>> {
        self.timed("delete_webhook", self.inner.delete_webhook(id))
            .await
    }

    async fn disable_webhook(
        &self,
        id: &str,
        at: DateTime<Utc>,
        reason: &str,
    ) -> StoreResult<bool> {
        let op = self.inner.disable_webhook(id, at, reason);
        self.timed("disable_webhook", op).await
    }

    async fn emit_event(&self, event: &OutboxEvent, max_pending: u64) -> StoreResult<EmitOutcome> {
        self.timed("emit_event", self.inner.emit_event(event, max_pending))
            .await
    }

    async fn claim_deliveries(
        &self,
        token: &str,
        now: DateTime<Utc>,
        lease: Duration,
        max: usize,
    ) -> StoreResult<Vec<DeliveryRecord>> {
        let op = self.inner.claim_deliveries(token, now, lease, max);
        self.timed("claim_deliveries", op).await
    }

    async fn finish_attempt(&self, delivery: &DeliveryRecord, token: &str) -> StoreResult<bool> {
        self.timed("finish_attempt", self.inner.finish_attempt(delivery, token))
            .await
    }

    async fn list_deliveries(
        &self,
        endpoint_id: &str,
        limit: usize,
    ) -> StoreResult<Vec<DeliveryRecord>> {
        let op = self.inner.list_deliveries(endpoint_id, limit);
        self.timed("list_deliveries", op).await
    }
}
