//! The embedded store: everything in this process, for a single broker.
//!
//! Used by `kubeline dev` and by a broker started without `--redis-url`. It keeps the same
//! semantics as the Redis store (final results win once, abandoned commands are reclaimed,
//! records expire), so the behavioural tests hold for both.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use kubeline_shared::api::{CommandResult, ResultStatus};
use kubeline_shared::webhooks::DeliveryStatus;
use tokio::sync::mpsc;

use super::{
    ClusterRecord, CredentialRecord, DeliveryRecord, EmitOutcome, KEPT_DELIVERIES, LinkChange,
    OutboxEvent, QueuedCommand, SessionRecord, Standing, Store, StoreEvent, StoreResult,
    StreamRelay, WebhookRecord, delivery_id,
};
use crate::ratelimit::{self, Decision, LocalBuckets};

/// How many writes between sweeps of expired records.
const SWEEP_EVERY: u64 = 1024;
/// Default bound on the bytes of results the embedded store keeps (`--embedded-results-max-bytes`).
pub const DEFAULT_RESULTS_MAX_BYTES: u64 = 128 * 1024 * 1024;
/// Default bound on the bytes of audit records the embedded store keeps
/// (`--embedded-audit-max-bytes`), besides `--audit-max-records`.
pub const DEFAULT_AUDIT_MAX_BYTES: u64 = 64 * 1024 * 1024;
/// What keeping one audit record costs besides its text (its cursor and the deque's slot).
const AUDIT_RECORD_OVERHEAD: usize = 32;

/// In-process [`Store`].
pub struct MemoryStore {
    state: Mutex<State>,
    /// Rate limit buckets, under their own lock (checked on every request).
    rate_limits: LocalBuckets,
    // --- audit ---
    /// The audit log, under its own lock: appends never wait for the command path's.
    audit: Mutex<AuditLog>,
    // --- webhooks ---
    /// Webhook endpoints and the outbox, under their own lock.
    outbox: Mutex<Outbox>,
}

/// The embedded webhook outbox.
#[derive(Default)]
struct Outbox {
    endpoints: HashMap<String, WebhookRecord>,
    deliveries: HashMap<String, StoredDelivery>,
    /// Pending delivery ids of each endpoint, by creation (ms).
    pending: HashMap<String, BTreeSet<(i64, String)>>,
    /// Finished delivery ids of each endpoint, by creation (ms); the newest are kept.
    log: HashMap<String, BTreeSet<(i64, String)>>,
}

struct StoredDelivery {
    record: DeliveryRecord,
    /// When it may be taken (next attempt, or the end of its lease), in ms.
    due_ms: i64,
    lease: Option<String>,
}

impl Outbox {
    /// Moves a delivery that just finished from its endpoint's pending set to its log, and
    /// forgets the oldest finished ones past [`KEPT_DELIVERIES`].
    fn retire(&mut self, endpoint: &str, created_ms: i64, id: &str) {
        let key = (created_ms, id.to_owned());
        if let Some(pending) = self.pending.get_mut(endpoint) {
            pending.remove(&key);
        }
        let log = self.log.entry(endpoint.to_owned()).or_default();
        log.insert(key);
        while log.len() > KEPT_DELIVERIES {
            if let Some((_, old)) = log.pop_first() {
                self.deliveries.remove(&old);
            }
        }
    }

    fn with_counts(&self, record: &WebhookRecord) -> WebhookRecord {
        let mut record = record.clone();
        record.pending = self.pending.get(&record.id).map_or(0, |p| p.len() as u64);
        record
    }
}

/// The embedded audit log: records in append order, each with its cursor number.
#[derive(Default)]
struct AuditLog {
    records: VecDeque<(u64, String)>,
    /// Cursor number of the next record (cursors are `N-0`, increasing).
    next: u64,
    heads: HashMap<String, String>,
    /// Bytes the kept records take, and the bound on them.
    bytes: usize,
    max_bytes: usize,
}

#[derive(Default)]
struct State {
    events: Option<mpsc::Sender<StoreEvent>>,
    watched: HashSet<String>,
    sessions: HashMap<String, (SessionRecord, DateTime<Utc>)>,
    clusters: HashMap<String, (ClusterRecord, Option<Instant>)>,
    /// Clusters last announced connected.
    up: HashSet<String>,
    /// Session expiries not handled yet: (expiry in ms, session id).
    expiries: BTreeSet<(i64, String)>,
    queues: HashMap<String, Queue>,
    results: Results,
    next_entry: u64,
    writes: u64,
    /// Credentials by id, and ids by secret hash.
    credentials: HashMap<String, CredentialRecord>,
    credential_ids: HashMap<String, String>,
    /// Idempotency keys: what each holds, and until when.
    idempotency: HashMap<String, (String, Instant)>,
    /// Replicas said to be alive, until when.
    alive: HashMap<String, Instant>,
}

/// Results (pending and final) by id, kept until their time or until newer ones need the room.
///
/// Every result has the same lifetime (`--result-ttl`), so the order they were written in is
/// the order they expire in: [`Results::trim`] only ever looks at the oldest, and a write costs
/// O(log n) however many are kept (a sweep of every result would grow with the store).
#[derive(Default)]
struct Results {
    /// Boxed: a hash table's buckets are allocated for up to twice the entries it holds, and a
    /// bucket of the ~300-byte result itself made the table the largest part of the store (39
    /// MiB of buckets for 72,000 results, measured with heaptrack); a bucket of a pointer is
    /// 32 bytes.
    by_id: HashMap<String, Box<StoredResult>>,
    /// Ids by write number, oldest first.
    order: BTreeMap<u64, String>,
    next: u64,
    bytes: usize,
    max_bytes: usize,
}

struct StoredResult {
    result: CommandResult,
    until: Instant,
    written: u64,
    bytes: usize,
}

impl Results {
    fn get(&self, id: &str, now: Instant) -> Option<&CommandResult> {
        self.by_id
            .get(id)
            .filter(|stored| stored.until > now)
            .map(|stored| &stored.result)
    }

    /// Whether `result` may replace what is stored under its id: nothing, a placeholder, or
    /// something past its time.
    fn may_finish(&self, result_id: &str, now: Instant) -> bool {
        self.by_id.get(result_id).is_none_or(|stored| {
            stored.result.status == ResultStatus::Pending || stored.until <= now
        })
    }

    fn put(&mut self, result: CommandResult, until: Instant, now: Instant) {
        let id = result.result_id.clone();
        let bytes = result_bytes(&result);
        let written = self.next;
        self.next += 1;
        if let Some(old) = self.by_id.insert(
            id.clone(),
            Box::new(StoredResult {
                result,
                until,
                written,
                bytes,
            }),
        ) {
            self.order.remove(&old.written);
            self.bytes -= old.bytes;
        }
        self.order.insert(written, id);
        self.bytes += bytes;
        self.trim(now);
    }

    /// Forgets the oldest results while they are past their time or over the byte bound.
    fn trim(&mut self, now: Instant) {
        while self.order.len() > 1 {
            let Some(oldest) = self.order.first_entry() else {
                return;
            };
            let stored = &self.by_id[oldest.get()];
            let expired = stored.until <= now;
            if !expired && self.bytes <= self.max_bytes {
                return;
            }
            let id = oldest.remove();
            if let Some(gone) = self.by_id.remove(&id) {
                self.bytes -= gone.bytes;
            }
            if !expired {
                crate::metrics::result_evicted();
            }
        }
    }
}

/// What one stored result holds in memory, near enough: its strings, the (boxed) struct, the id
/// kept twice more (map key and order) and the maps' own entries.
fn result_bytes(result: &CommandResult) -> usize {
    // The hash table's bucket (key and box, 32 bytes) at its lowest load (7/16 after growing)
    // with its control byte: 75; the order's entry (write number and id, 32 bytes) in a B-tree
    // node kept at least half full, with the node's edges and lengths: 80.
    const ENTRY_OVERHEAD: usize = 75 + 80;
    std::mem::size_of::<StoredResult>()
        + ENTRY_OVERHEAD
        + 3 * result.result_id.capacity()
        + result.session_id.capacity()
        + result.cluster_id.capacity()
        + result.output.capacity()
        + result.error.as_ref().map_or(0, String::capacity)
        + result.correlation_id.capacity()
}

#[derive(Default)]
struct Queue {
    waiting: VecDeque<QueuedCommand>,
    taken: HashMap<String, Taken>,
}

struct Taken {
    command: QueuedCommand,
    consumer: String,
    since: Instant,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::bounded(DEFAULT_RESULTS_MAX_BYTES, DEFAULT_AUDIT_MAX_BYTES)
    }
}

impl MemoryStore {
    /// An empty store with the default bounds ([`DEFAULT_RESULTS_MAX_BYTES`],
    /// [`DEFAULT_AUDIT_MAX_BYTES`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store that keeps at most `results_max_bytes` of results and
    /// `audit_max_bytes` of audit records: past either, the oldest go first (results even
    /// before their time), always keeping the newest one.
    pub fn bounded(results_max_bytes: u64, audit_max_bytes: u64) -> Self {
        let bytes = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        Self {
            state: Mutex::new(State {
                results: Results {
                    max_bytes: bytes(results_max_bytes),
                    ..Results::default()
                },
                ..State::default()
            }),
            rate_limits: LocalBuckets::default(),
            audit: Mutex::new(AuditLog {
                max_bytes: bytes(audit_max_bytes),
                ..AuditLog::default()
            }),
            outbox: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind, never a broken invariant
        // that later readers could trip on, so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn outbox(&self) -> std::sync::MutexGuard<'_, Outbox> {
        self.outbox.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl State {
    fn wrote(&mut self) {
        self.writes += 1;
        if self.writes.is_multiple_of(SWEEP_EVERY) {
            let now = Instant::now();
            let wall = Utc::now();
            self.results.trim(now);
            self.sessions.retain(|_, (_, until)| *until > wall);
            self.idempotency.retain(|_, (_, until)| *until > now);
        }
    }

    /// Puts `command` at the end of its cluster's queue under a new entry id (returned); with
    /// `ring`, tells a replica watching the cluster.
    fn queue(&mut self, command: &QueuedCommand, ring: bool) -> String {
        self.next_entry += 1;
        let mut command = command.clone();
        command.entry_id = self.next_entry.to_string();
        let entry_id = command.entry_id.clone();
        let cluster_id = command.cluster_id.clone();
        self.queues
            .entry(cluster_id.clone())
            .or_default()
            .waiting
            .push_back(command);
        if ring && self.watched.contains(&cluster_id) {
            self.emit(StoreEvent::Queued(cluster_id));
        }
        entry_id
    }

    fn emit(&self, event: StoreEvent) {
        if let Some(events) = &self.events {
            // A full channel means the broker is already behind on this kind of event; the
            // periodic queue poll picks up anything a dropped bell would have announced.
            let _ = events.try_send(event);
        }
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn ping(&self) -> StoreResult<()> {
        Ok(())
    }

    async fn subscribe(
        &self,
        _broker_id: &str,
        events: mpsc::Sender<StoreEvent>,
    ) -> StoreResult<()> {
        self.lock().events = Some(events);
        Ok(())
    }

    async fn watch_cluster(&self, cluster_id: &str) -> StoreResult<()> {
        self.lock().watched.insert(cluster_id.to_owned());
        Ok(())
    }

    async fn unwatch_cluster(&self, cluster_id: &str) -> StoreResult<()> {
        self.lock().watched.remove(cluster_id);
        Ok(())
    }

    async fn create_session(&self, session: &SessionRecord, retain: Duration) -> StoreResult<()> {
        let mut state = self.lock();
        let until = session.expires_at + retain;
        state
            .sessions
            .insert(session.session_id.clone(), (session.clone(), until));
        state.expiries.insert((
            session.expires_at.timestamp_millis(),
            session.session_id.clone(),
        ));
        state.wrote();
        Ok(())
    }

    async fn get_session(&self, session_id: &str) -> StoreResult<Option<SessionRecord>> {
        let state = self.lock();
        Ok(state
            .sessions
            .get(session_id)
            .filter(|(_, until)| *until > Utc::now())
            .map(|(s, _)| s.clone()))
    }

    async fn close_session(
        &self,
        session_id: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<Option<SessionRecord>> {
        let mut state = self.lock();
        let Some((session, until)) = state.sessions.get_mut(session_id) else {
            return Ok(None);
        };
        if *until <= Utc::now() {
            return Ok(None);
        }
        session.closed_at.get_or_insert(at);
        Ok(Some(session.clone()))
    }

    async fn list_sessions(&self) -> StoreResult<Vec<SessionRecord>> {
        let now = Utc::now();
        let state = self.lock();
        Ok(state
            .sessions
            .values()
            .filter(|(_, until)| *until > now)
            .map(|(s, _)| s.clone())
            .collect())
    }

    async fn due_session_expiries(
        &self,
        now: DateTime<Utc>,
        max: usize,
    ) -> StoreResult<Vec<(String, Option<SessionRecord>)>> {
        let state = self.lock();
        let wall = Utc::now();
        let now_ms = now.timestamp_millis();
        Ok(state
            .expiries
            .iter()
            .take_while(|(at, _)| *at <= now_ms)
            .take(max)
            .map(|(_, id)| {
                let session = state
                    .sessions
                    .get(id)
                    .filter(|(_, until)| *until > wall)
                    .map(|(s, _)| s.clone());
                (id.clone(), session)
            })
            .collect())
    }

    async fn forget_session_expiries(&self, session_ids: &[String]) -> StoreResult<()> {
        let mut state = self.lock();
        let ids: HashSet<&String> = session_ids.iter().collect();
        state.expiries.retain(|(_, id)| !ids.contains(id));
        Ok(())
    }

    async fn link_cluster(&self, record: &ClusterRecord, ttl: Duration) -> StoreResult<LinkChange> {
        let mut state = self.lock();
        let now = Instant::now();
        let live = state
            .clusters
            .get(&record.cluster_id)
            .and_then(|(_, lease)| *lease)
            .is_some_and(|until| until > now);
        let was_up = !state.up.insert(record.cluster_id.clone());
        state
            .clusters
            .insert(record.cluster_id.clone(), (record.clone(), Some(now + ttl)));
        Ok(match (was_up, live) {
            (false, _) => LinkChange::Connected,
            (true, true) => LinkChange::Continued,
            (true, false) => LinkChange::Relinked,
        })
    }

    async fn touch_cluster(
        &self,
        cluster_id: &str,
        broker_id: &str,
        last_seen: DateTime<Utc>,
        ttl: Duration,
    ) -> StoreResult<bool> {
        let mut state = self.lock();
        let now = Instant::now();
        let Some((record, lease)) = state.clusters.get_mut(cluster_id) else {
            return Ok(false);
        };
        record.last_seen = Some(last_seen);
        let lapsed = lease.is_none_or(|until| until <= now);
        // Re-assert the claim if this replica still holds it, or if it lapsed while the link
        // stayed up (and nobody else claimed the cluster meanwhile).
        if record.broker_id.as_deref() == Some(broker_id) || lapsed {
            record.broker_id = Some(broker_id.to_owned());
            *lease = Some(now + ttl);
            if lapsed {
                return Ok(state.up.insert(cluster_id.to_owned()));
            }
        }
        Ok(false)
    }

    async fn unlink_cluster(
        &self,
        cluster_id: &str,
        broker_id: &str,
        last_seen: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let mut state = self.lock();
        let now = Instant::now();
        let Some((record, lease)) = state.clusters.get_mut(cluster_id) else {
            return Ok(false);
        };
        record.last_seen = Some(last_seen);
        let holds = record.broker_id.as_deref() == Some(broker_id)
            && lease.is_some_and(|until| until > now);
        if !holds {
            return Ok(false);
        }
        record.broker_id = None;
        *lease = None;
        Ok(state.up.remove(cluster_id))
    }

    async fn lapsed_links(&self, max: usize) -> StoreResult<Vec<String>> {
        let mut state = self.lock();
        let now = Instant::now();
        let lapsed: Vec<String> = state
            .up
            .iter()
            .filter(|c| {
                state
                    .clusters
                    .get(*c)
                    .is_none_or(|(_, lease)| lease.is_none_or(|until| until <= now))
            })
            .take(max)
            .cloned()
            .collect();
        for cluster in &lapsed {
            state.up.remove(cluster);
        }
        Ok(lapsed)
    }

    async fn get_cluster(&self, cluster_id: &str) -> StoreResult<Option<ClusterRecord>> {
        let state = self.lock();
        Ok(state.clusters.get(cluster_id).map(live_record))
    }

    async fn list_clusters(&self) -> StoreResult<Vec<ClusterRecord>> {
        let state = self.lock();
        Ok(state.clusters.values().map(live_record).collect())
    }

    async fn enqueue(
        &self,
        command: &QueuedCommand,
        pending: &CommandResult,
        result_ttl: Duration,
        ring: bool,
    ) -> StoreResult<String> {
        let mut state = self.lock();
        let now = Instant::now();
        state.results.put(pending.clone(), now + result_ttl, now);
        if let Some((session, _)) = state.sessions.get_mut(&command.session_id) {
            session.commands_executed += 1;
            session.last_activity = command.executed_at;
        }
        let entry_id = state.queue(command, ring);
        state.wrote();
        Ok(entry_id)
    }

    async fn requeue(&self, command: &QueuedCommand, ring: bool) -> StoreResult<String> {
        Ok(self.lock().queue(command, ring))
    }

    async fn standing(
        &self,
        cluster_id: &str,
        entry_id: &str,
        result_id: &str,
    ) -> StoreResult<Standing> {
        let state = self.lock();
        if let Some(queue) = state.queues.get(cluster_id)
            && (queue.taken.contains_key(entry_id)
                || queue.waiting.iter().any(|c| c.entry_id == entry_id))
        {
            return Ok(Standing::Queued);
        }
        Ok(match state.results.get(result_id, Instant::now()) {
            Some(result) if result.status != ResultStatus::Pending => {
                Standing::Finished(Box::new(result.clone()))
            }
            _ => Standing::Lost,
        })
    }

    async fn take(
        &self,
        cluster_id: &str,
        consumer: &str,
        max: usize,
    ) -> StoreResult<Vec<QueuedCommand>> {
        let mut state = self.lock();
        let Some(queue) = state.queues.get_mut(cluster_id) else {
            return Ok(Vec::new());
        };
        let now = Instant::now();
        let n = max.min(queue.waiting.len());
        let out: Vec<QueuedCommand> = queue.waiting.drain(..n).collect();
        for command in &out {
            queue.taken.insert(
                command.entry_id.clone(),
                Taken {
                    command: command.clone(),
                    consumer: consumer.to_owned(),
                    since: now,
                },
            );
        }
        Ok(out)
    }

    async fn reclaim(
        &self,
        cluster_id: &str,
        consumer: &str,
        max: usize,
        abandoned_after: Duration,
    ) -> StoreResult<Vec<QueuedCommand>> {
        let mut state = self.lock();
        let Some(queue) = state.queues.get_mut(cluster_id) else {
            return Ok(Vec::new());
        };
        let now = Instant::now();
        let mut out = Vec::new();
        for taken in queue.taken.values_mut() {
            if out.len() == max {
                break;
            }
            if taken.consumer != consumer && now.duration_since(taken.since) >= abandoned_after {
                taken.consumer = consumer.to_owned();
                taken.since = now;
                out.push(taken.command.clone());
            }
        }
        Ok(out)
    }

    async fn keep_alive(
        &self,
        cluster_id: &str,
        consumer: &str,
        entry_ids: &[String],
    ) -> StoreResult<()> {
        let mut state = self.lock();
        if let Some(queue) = state.queues.get_mut(cluster_id) {
            let now = Instant::now();
            for id in entry_ids {
                if let Some(taken) = queue.taken.get_mut(id)
                    && taken.consumer == consumer
                {
                    taken.since = now;
                }
            }
        }
        Ok(())
    }

    async fn settle(&self, cluster_id: &str, entry_id: &str) -> StoreResult<()> {
        if let Some(queue) = self.lock().queues.get_mut(cluster_id) {
            queue.taken.remove(entry_id);
        }
        Ok(())
    }

    async fn queue_depth(&self, cluster_id: &str) -> StoreResult<u64> {
        let state = self.lock();
        Ok(state
            .queues
            .get(cluster_id)
            .map_or(0, |q| (q.waiting.len() + q.taken.len()) as u64))
    }

    async fn finish_result(
        &self,
        result: &CommandResult,
        ttl: Duration,
        entry_id: Option<&str>,
    ) -> StoreResult<bool> {
        let mut state = self.lock();
        if let Some(entry_id) = entry_id
            && let Some(queue) = state.queues.get_mut(&result.cluster_id)
        {
            queue.taken.remove(entry_id);
        }
        let now = Instant::now();
        let won = state.results.may_finish(&result.result_id, now);
        if won {
            state.results.put(result.clone(), now + ttl, now);
            state.wrote();
        }
        Ok(won)
    }

    async fn get_result(&self, result_id: &str) -> StoreResult<Option<CommandResult>> {
        let state = self.lock();
        Ok(state.results.get(result_id, Instant::now()).cloned())
    }

    async fn deliver_result(&self, _broker_id: &str, result: &CommandResult) -> StoreResult<()> {
        self.lock()
            .emit(StoreEvent::Result(Box::new(result.clone())));
        Ok(())
    }

    async fn deliver_stream(&self, _broker_id: &str, relay: &StreamRelay) -> StoreResult<()> {
        self.lock()
            .emit(StoreEvent::Stream(Box::new(relay.clone())));
        Ok(())
    }

    async fn publish_session_event(&self, cluster_id: &str, event: &str) -> StoreResult<()> {
        self.lock().emit(StoreEvent::SessionEvent {
            cluster_id: cluster_id.to_owned(),
            event: event.to_owned(),
        });
        Ok(())
    }

    async fn announce_event_interest(&self, cluster_id: &str) -> StoreResult<()> {
        self.lock()
            .emit(StoreEvent::EventInterest(cluster_id.to_owned()));
        Ok(())
    }

    async fn watch_session_events(&self, _cluster_id: &str, _watch: bool) -> StoreResult<()> {
        // One process: every event published is this replica's already.
        Ok(())
    }

    async fn cancel_command(&self, cluster_id: &str, result_id: &str) -> StoreResult<()> {
        let state = self.lock();
        if state.watched.contains(cluster_id) {
            state.emit(StoreEvent::Cancel {
                cluster_id: cluster_id.to_owned(),
                result_id: result_id.to_owned(),
            });
        }
        Ok(())
    }

    async fn replica_alive(&self, broker_id: &str, ttl: Duration) -> StoreResult<()> {
        self.lock()
            .alive
            .insert(broker_id.to_owned(), Instant::now() + ttl);
        Ok(())
    }

    async fn replica_gone(&self, broker_id: &str) -> StoreResult<()> {
        self.lock().alive.remove(broker_id);
        Ok(())
    }

    async fn replica_is_alive(&self, broker_id: &str) -> StoreResult<bool> {
        let state = self.lock();
        Ok(state
            .alive
            .get(broker_id)
            .is_some_and(|until| *until > Instant::now()))
    }

    async fn reclaim_orphans(
        &self,
        cluster_id: &str,
        consumer: &str,
        max: usize,
    ) -> StoreResult<Vec<QueuedCommand>> {
        let mut guard = self.lock();
        let state = &mut *guard;
        let now = Instant::now();
        let alive = |c: &str| state.alive.get(c).is_some_and(|until| *until > now);
        let Some(queue) = state.queues.get_mut(cluster_id) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for taken in queue.taken.values_mut() {
            if out.len() == max {
                break;
            }
            if taken.consumer != consumer && !alive(&taken.consumer) {
                taken.consumer = consumer.to_owned();
                taken.since = now;
                out.push(taken.command.clone());
            }
        }
        Ok(out)
    }

    async fn claim_idempotency_key(
        &self,
        key: &str,
        value: &str,
        ttl: Duration,
    ) -> StoreResult<Option<String>> {
        let mut state = self.lock();
        let now = Instant::now();
        if let Some((held, until)) = state.idempotency.get(key)
            && *until > now
        {
            return Ok(Some(held.clone()));
        }
        state
            .idempotency
            .insert(key.to_owned(), (value.to_owned(), now + ttl));
        state.wrote();
        Ok(None)
    }

    async fn swap_idempotency_key(
        &self,
        key: &str,
        held: &str,
        value: &str,
        ttl: Duration,
    ) -> StoreResult<bool> {
        let mut state = self.lock();
        let now = Instant::now();
        let holds = state
            .idempotency
            .get(key)
            .is_some_and(|(v, until)| v == held && *until > now);
        if holds {
            state
                .idempotency
                .insert(key.to_owned(), (value.to_owned(), now + ttl));
        }
        Ok(holds)
    }

    async fn release_idempotency_key(&self, key: &str, value: &str) -> StoreResult<()> {
        let mut state = self.lock();
        if state
            .idempotency
            .get(key)
            .is_some_and(|(held, _)| held == value)
        {
            state.idempotency.remove(key);
        }
        Ok(())
    }

    // --- credentials ---

    async fn put_credential(
        &self,
        record: &CredentialRecord,
        only_if_new: bool,
    ) -> StoreResult<bool> {
        let mut state = self.lock();
        if only_if_new && state.credentials.contains_key(&record.id) {
            return Ok(false);
        }
        state
            .credential_ids
            .insert(record.hash.clone(), record.id.clone());
        state.credentials.insert(record.id.clone(), record.clone());
        Ok(true)
    }

    async fn credential_by_hash(&self, hash: &str) -> StoreResult<Option<CredentialRecord>> {
        let state = self.lock();
        Ok(state
            .credential_ids
            .get(hash)
            .and_then(|id| state.credentials.get(id))
            .cloned())
    }

    async fn get_credential(&self, id: &str) -> StoreResult<Option<CredentialRecord>> {
        Ok(self.lock().credentials.get(id).cloned())
    }

    async fn list_credentials(&self) -> StoreResult<Vec<CredentialRecord>> {
        let mut all: Vec<_> = self.lock().credentials.values().cloned().collect();
        all.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(all)
    }

    async fn touch_credential(&self, id: &str, at: DateTime<Utc>) -> StoreResult<()> {
        if let Some(record) = self.lock().credentials.get_mut(id) {
            record.last_used_at = Some(at);
        }
        Ok(())
    }

    async fn announce_credential_change(&self, id: &str) -> StoreResult<()> {
        self.lock()
            .emit(StoreEvent::CredentialChanged(id.to_owned()));
        Ok(())
    }

    // --- rate limits ---

    async fn rate_limit(&self, key: &str, limit: u32, period: Duration) -> StoreResult<Decision> {
        Ok(self
            .rate_limits
            .check(key, limit, period, ratelimit::now_ms()))
    }

    // --- audit ---

    async fn append_audit(&self, chain: &str, records: &[String], max_len: u64) -> StoreResult<()> {
        let mut log = self.audit.lock().unwrap_or_else(|e| e.into_inner());
        for record in records {
            let n = log.next;
            log.next += 1;
            log.bytes += record.len() + AUDIT_RECORD_OVERHEAD;
            log.records.push_back((n, record.clone()));
        }
        let keep = usize::try_from(max_len).unwrap_or(usize::MAX);
        while log.records.len() > 1 && (log.records.len() > keep || log.bytes > log.max_bytes) {
            if let Some((_, gone)) = log.records.pop_front() {
                log.bytes -= gone.len() + AUDIT_RECORD_OVERHEAD;
            }
        }
        if let Some(last) = records.last() {
            log.heads.insert(chain.to_owned(), last.clone());
        }
        Ok(())
    }

    async fn audit_head(&self, chain: &str) -> StoreResult<Option<String>> {
        let log = self.audit.lock().unwrap_or_else(|e| e.into_inner());
        Ok(log.heads.get(chain).cloned())
    }

    async fn read_audit(
        &self,
        before: Option<&str>,
        count: usize,
    ) -> StoreResult<Vec<(String, String)>> {
        let end = match before {
            None => u64::MAX,
            Some(cursor) => match super::parse_audit_cursor(cursor) {
                // `N-S` with S > 0 never names one of ours; it sorts after `N-0`.
                Some((n, seq)) => n.saturating_add(u64::from(seq > 0)),
                None => {
                    return Err(super::StoreError::Corrupt {
                        key: "audit cursor".to_owned(),
                        reason: format!("not a cursor: {cursor:?}"),
                    });
                }
            },
        };
        let log = self.audit.lock().unwrap_or_else(|e| e.into_inner());
        // Cursor numbers increase along the deque: the records older than `end` end here.
        let upto = log.records.partition_point(|(n, _)| *n < end);
        Ok(log
            .records
            .range(..upto)
            .rev()
            .take(count)
            .map(|(n, json)| (format!("{n}-0"), json.clone()))
            .collect())
    }

    // --- webhooks ---

    async fn put_webhook(&self, record: &WebhookRecord, max: usize) -> StoreResult<bool> {
        let mut outbox = self.outbox();
        if outbox.endpoints.len() >= max && !outbox.endpoints.contains_key(&record.id) {
            return Ok(false);
        }
        outbox.endpoints.insert(record.id.clone(), record.clone());
        Ok(true)
    }

    async fn get_webhook(&self, id: &str) -> StoreResult<Option<WebhookRecord>> {
        let outbox = self.outbox();
        Ok(outbox.endpoints.get(id).map(|r| outbox.with_counts(r)))
    }

    async fn list_webhooks(&self) -> StoreResult<Vec<WebhookRecord>> {
        let outbox = self.outbox();
        let mut all: Vec<WebhookRecord> = outbox
            .endpoints
            .values()
            .map(|r| outbox.with_counts(r))
            .collect();
        all.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(all)
    }

    async fn delete_webhook(&self, id: &str) -> StoreResult<Option<WebhookRecord>> {
        let mut outbox = self.outbox();
        let Some(record) = outbox.endpoints.get(id).map(|r| outbox.with_counts(r)) else {
            return Ok(None);
        };
        outbox.endpoints.remove(id);
        let ids: Vec<String> = outbox
            .pending
            .remove(id)
            .into_iter()
            .chain(outbox.log.remove(id))
            .flatten()
            .map(|(_, d)| d)
            .collect();
        for d in ids {
            outbox.deliveries.remove(&d);
        }
        Ok(Some(record))
    }

    async fn disable_webhook(
        &self,
        id: &str,
        at: DateTime<Utc>,
        reason: &str,
    ) -> StoreResult<bool> {
        let mut outbox = self.outbox();
        let Some(record) = outbox.endpoints.get_mut(id) else {
            return Ok(false);
        };
        if record.disabled_at.is_none() {
            record.disabled_at = Some(at);
            record.disabled_reason = Some(reason.to_owned());
        }
        let pending: Vec<(i64, String)> = outbox
            .pending
            .get(id)
            .map(|p| p.iter().cloned().collect())
            .unwrap_or_default();
        for (created, d) in pending {
            if let Some(stored) = outbox.deliveries.get_mut(&d) {
                stored.record.status = DeliveryStatus::Failed;
                stored.record.next_attempt_at = None;
                stored.record.last_error = Some(reason.to_owned());
                stored.lease = None;
            }
            outbox.retire(id, created, &d);
        }
        Ok(true)
    }

    async fn emit_event(&self, event: &OutboxEvent, max_pending: u64) -> StoreResult<EmitOutcome> {
        let mut outbox = self.outbox();
        let mut outcome = EmitOutcome::default();
        let subscribed: Vec<String> = outbox
            .endpoints
            .values()
            .filter(|e| e.disabled_at.is_none() && e.events.contains(&event.event_type))
            .map(|e| e.id.clone())
            .collect();
        let created_ms = event.created_at.timestamp_millis();
        for endpoint in subscribed {
            let id = delivery_id(&event.id, &endpoint);
            if outbox.deliveries.contains_key(&id) {
                continue;
            }
            let pending = outbox.pending.entry(endpoint.clone()).or_default();
            if pending.len() as u64 >= max_pending {
                if let Some(e) = outbox.endpoints.get_mut(&endpoint) {
                    e.dropped += 1;
                }
                outcome.dropped += 1;
                continue;
            }
            pending.insert((created_ms, id.clone()));
            outbox.deliveries.insert(
                id.clone(),
                StoredDelivery {
                    record: DeliveryRecord {
                        id,
                        endpoint_id: endpoint,
                        event_id: event.id.clone(),
                        event_type: event.event_type,
                        body: event.body.clone(),
                        created_at: event.created_at,
                        give_up_at: event.give_up_at,
                        status: DeliveryStatus::Pending,
                        attempts: 0,
                        next_attempt_at: Some(event.created_at),
                        last_status_code: None,
                        last_error: None,
                        history: Vec::new(),
                    },
                    due_ms: created_ms,
                    lease: None,
                },
            );
            outcome.queued += 1;
        }
        Ok(outcome)
    }

    async fn claim_deliveries(
        &self,
        token: &str,
        now: DateTime<Utc>,
        lease: Duration,
        max: usize,
    ) -> StoreResult<Vec<DeliveryRecord>> {
        let mut outbox = self.outbox();
        let now_ms = now.timestamp_millis();
        let mut due: Vec<(i64, String)> = outbox
            .deliveries
            .values()
            .filter(|d| d.record.status == DeliveryStatus::Pending && d.due_ms <= now_ms)
            .map(|d| (d.due_ms, d.record.id.clone()))
            .collect();
        due.sort();
        due.truncate(max);
        let until = now_ms + lease.as_millis() as i64;
        let mut out = Vec::with_capacity(due.len());
        for (_, id) in due {
            if let Some(stored) = outbox.deliveries.get_mut(&id) {
                stored.due_ms = until;
                stored.lease = Some(token.to_owned());
                out.push(stored.record.clone());
            }
        }
        Ok(out)
    }

    async fn finish_attempt(&self, delivery: &DeliveryRecord, token: &str) -> StoreResult<bool> {
        let mut outbox = self.outbox();
        let Some(stored) = outbox.deliveries.get_mut(&delivery.id) else {
            return Ok(false);
        };
        if stored.lease.as_deref() != Some(token) {
            return Ok(false);
        }
        stored.record = delivery.clone();
        stored.lease = None;
        if delivery.status == DeliveryStatus::Pending {
            stored.due_ms = delivery
                .next_attempt_at
                .map_or(i64::MAX, |t| t.timestamp_millis());
        } else {
            stored.record.next_attempt_at = None;
            outbox.retire(
                &delivery.endpoint_id,
                delivery.created_at.timestamp_millis(),
                &delivery.id,
            );
        }
        Ok(true)
    }

    async fn list_deliveries(
        &self,
        endpoint_id: &str,
        limit: usize,
    ) -> StoreResult<Vec<DeliveryRecord>> {
        let outbox = self.outbox();
        let mut ids: Vec<&(i64, String)> = outbox
            .pending
            .get(endpoint_id)
            .into_iter()
            .chain(outbox.log.get(endpoint_id))
            .flatten()
            .collect();
        ids.sort_by(|a, b| b.cmp(a));
        Ok(ids
            .into_iter()
            .filter_map(|(_, id)| outbox.deliveries.get(id))
            .take(limit)
            .map(|d| d.record.clone())
            .collect())
    }
}

/// A cluster record with its link claim dropped if the lease ran out.
fn live_record((record, lease): &(ClusterRecord, Option<Instant>)) -> ClusterRecord {
    let mut record = record.clone();
    if lease.is_none_or(|until| until <= Instant::now()) {
        record.broker_id = None;
    }
    record
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(id: &str, status: ResultStatus, output_bytes: usize) -> CommandResult {
        CommandResult {
            result_id: id.to_owned(),
            session_id: "s".to_owned(),
            cluster_id: "c".to_owned(),
            status,
            output: "x".repeat(output_bytes),
            error: None,
            exit_code: Some(0),
            execution_time_ms: 1,
            executed_at: Utc::now(),
            correlation_id: "corr".to_owned(),
            truncated: None,
            window: None,
        }
    }

    fn results(max_bytes: usize) -> Results {
        Results {
            max_bytes,
            ..Results::default()
        }
    }

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn past_the_byte_bound_the_oldest_results_go_first() {
        let now = Instant::now();
        let one = result_bytes(&result("r-000", ResultStatus::Completed, 1000));
        let mut kept = results(3 * one);
        for i in 0..10 {
            kept.put(
                result(&format!("r-{i:03}"), ResultStatus::Completed, 1000),
                now + HOUR,
                now,
            );
            assert!(kept.bytes <= 3 * one, "{} > {}", kept.bytes, 3 * one);
        }
        let readable: Vec<bool> = (0..10)
            .map(|i| kept.get(&format!("r-{i:03}"), now).is_some())
            .collect();
        let mut expected = vec![false; 7];
        expected.extend([true; 3]);
        assert_eq!(readable, expected);
        assert_eq!((kept.by_id.len(), kept.order.len()), (3, 3));
    }

    #[test]
    fn a_final_result_replaces_its_placeholder_without_counting_twice() {
        let now = Instant::now();
        let mut kept = results(usize::MAX);
        kept.put(result("r", ResultStatus::Pending, 0), now + HOUR, now);
        assert!(kept.may_finish("r", now));
        let done = result("r", ResultStatus::Completed, 500);
        kept.put(done.clone(), now + HOUR, now);
        assert!(!kept.may_finish("r", now), "the first final result wins");
        assert_eq!(kept.bytes, result_bytes(&done));
        assert_eq!((kept.by_id.len(), kept.order.len()), (1, 1));
        assert_eq!(kept.get("r", now).map(|r| r.output.len()), Some(500));
    }

    #[test]
    fn results_past_their_time_are_unreadable_and_forgotten_by_the_next_write() {
        let now = Instant::now();
        let mut kept = results(usize::MAX);
        kept.put(
            result("old", ResultStatus::Completed, 10),
            now + Duration::from_secs(1),
            now,
        );
        let later = now + Duration::from_secs(2);
        assert!(kept.get("old", later).is_none());
        assert!(
            kept.may_finish("old", later),
            "an expired result is no winner"
        );
        kept.put(
            result("new", ResultStatus::Completed, 10),
            later + HOUR,
            later,
        );
        assert!(!kept.by_id.contains_key("old"));
        assert_eq!(kept.order.len(), 1);
    }

    #[test]
    fn a_result_larger_than_the_bound_is_kept_alone() {
        let now = Instant::now();
        let mut kept = results(1000);
        kept.put(
            result("small", ResultStatus::Completed, 10),
            now + HOUR,
            now,
        );
        kept.put(
            result("big", ResultStatus::Completed, 5000),
            now + HOUR,
            now,
        );
        assert!(kept.get("small", now).is_none());
        assert_eq!(kept.get("big", now).map(|r| r.output.len()), Some(5000));
    }

    #[tokio::test]
    async fn the_audit_log_keeps_the_newest_records_within_its_bytes() {
        let store = MemoryStore::bounded(DEFAULT_RESULTS_MAX_BYTES, 10 * 1024);
        let records: Vec<String> = (0..100)
            .map(|i| format!("{i:04}{}", "r".repeat(996)))
            .collect();
        for pair in records.chunks(2) {
            store.append_audit("chain", pair, 1_000_000).await.unwrap();
        }
        let log = store.audit.lock().unwrap();
        assert!(log.bytes <= 10 * 1024, "{}", log.bytes);
        let kept: Vec<&str> = log.records.iter().map(|(_, r)| &r[..4]).collect();
        assert_eq!(
            kept,
            [
                "0091", "0092", "0093", "0094", "0095", "0096", "0097", "0098", "0099"
            ]
        );
        assert_eq!(
            log.records.front().map(|(n, _)| *n),
            Some(91),
            "cursors stay"
        );
        assert_eq!(log.heads.get("chain").map(|r| &r[..4]), Some("0099"));
    }

    #[tokio::test]
    async fn the_store_keeps_results_within_its_bound() {
        let store = MemoryStore::bounded(64 * 1024, DEFAULT_AUDIT_MAX_BYTES);
        for i in 0..1000 {
            let r = result(&format!("r-{i}"), ResultStatus::Completed, 1024);
            assert!(store.finish_result(&r, HOUR, None).await.unwrap());
        }
        assert!(store.lock().results.bytes <= 64 * 1024);
        assert!(store.get_result("r-0").await.unwrap().is_none());
        assert!(store.get_result("r-999").await.unwrap().is_some());
    }
}
