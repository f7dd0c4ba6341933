//! The hub: which agent links this replica holds, which callers wait for which results, and the
//! pump that moves queued commands from the store down each link.
//!
//! **Invariant:** every command a caller submits ends in exactly one final result in the store
//! (completed, failed or timeout), and the waiting caller is woken with it no later than its
//! deadline.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use chrono::Utc;
use kubeline_shared::api::{CommandResult, ResultStatus, Truncation};
use kubeline_shared::protocol::{BrokerMessage, Cancel, Done, Execute, OutputChunk};
use tokio::sync::{Notify, broadcast, mpsc, oneshot};
use tokio_util::sync::CancellationToken as CancelToken;
use tracing::{debug, info, warn};

use crate::admissions::{Admission, Admissions};
use crate::events::SessionEvents;
use crate::store::{
    ClusterRecord, LinkChange, QueuedCommand, Standing, Store, StoreEvent, StoreResult,
    StreamPiece, StreamRelay,
};
use crate::stream::Feed;
use crate::webhooks::Webhooks;

/// How many commands the pump takes from the store at once.
const TAKE_BATCH: usize = 64;
/// How long a drain waits for its links to close once told to.
const LINKS_CLOSE_WITHIN: Duration = Duration::from_secs(2);
/// Credential changes buffered per listener; a listener that falls further behind re-checks.
const CREDENTIAL_CHANGES: usize = 1024;

/// Tunables of the hub.
#[derive(Debug, Clone)]
pub struct HubSettings {
    /// How often the broker pings each agent and refreshes its presence.
    pub ping_interval: Duration,
    /// How long a link may stay silent before it is considered dead.
    pub link_timeout: Duration,
    /// Lifetime of a presence claim that is not refreshed.
    pub presence_ttl: Duration,
    /// How long results are kept.
    pub result_ttl: Duration,
    /// How long a command taken by another replica may go without keep-alive before this
    /// replica takes it over.
    pub abandoned_after: Duration,
    /// How often each pump looks at its queue without being rung.
    pub poll_interval: Duration,
    /// How long this replica's liveness claim lasts unless renewed (every quarter of it). The
    /// commands a replica had taken are taken over by the next link holder as soon as its claim
    /// is gone: a killed replica's within this long, a drained one's at once.
    pub alive_ttl: Duration,
    /// New agent links admitted per second (`--link-admissions-per-second`); see
    /// [`crate::admissions`].
    pub link_admissions_per_second: u32,
    /// How long a caller's queued command waits for its cluster's agent to come back once no
    /// replica holds a link of it; then the command fails (503) instead of waiting for its
    /// timeout.
    pub relink_grace: Duration,
    /// How long a caller waits before it first looks whether its command is still in its queue
    /// (and how often after): a command the store lost (a Redis failover that did not carry
    /// the last writes over) is queued again, and a finished command whose answer did not
    /// reach its caller is answered from the store.
    pub queued_check: Duration,
}

impl Default for HubSettings {
    fn default() -> Self {
        Self {
            ping_interval: Duration::from_secs(5),
            link_timeout: Duration::from_secs(15),
            presence_ttl: Duration::from_secs(20),
            result_ttl: Duration::from_secs(3600),
            abandoned_after: Duration::from_secs(15),
            poll_interval: Duration::from_secs(1),
            alive_ttl: Duration::from_secs(2),
            link_admissions_per_second: crate::admissions::DEFAULT_LINK_ADMISSIONS_PER_SECOND,
            relink_grace: Duration::from_secs(5),
            queued_check: Duration::from_secs(2),
        }
    }
}

/// Why a submitted command produced no result for the caller.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// The hub of one broker replica.
pub struct Hub {
    broker_id: String,
    /// When new agent links are let in.
    admissions: Admissions,
    store: Arc<dyn Store>,
    settings: HubSettings,
    links: Mutex<HashMap<String, Arc<LinkState>>>,
    waiters: Mutex<HashMap<String, oneshot::Sender<CommandResult>>>,
    /// Streams this replica's callers read, by result id.
    feeds: Mutex<HashMap<String, Arc<Feed>>>,
    /// Session events: who reads them here, which clusters are read anywhere.
    events: Arc<SessionEvents>,
    next_link: AtomicU64,
    /// Cancelled when draining starts: pumps stop taking new commands.
    stop_taking: CancelToken,
    /// Cancelled when draining ends: every link closes.
    draining: CancelToken,
    /// Ids of credentials revoked or shortened, from the store's announcements.
    credential_changes: broadcast::Sender<Arc<str>>,
    /// Where cluster and command events go (`Hub::set_webhooks`); none without.
    webhooks: OnceLock<Arc<Webhooks>>,
}

/// Periodic looks at their queues all idle links of a replica take together, a second (see
/// `Hub::look_every`).
const IDLE_LOOKS_PER_SECOND: f64 = 1000.0;

/// Why a link ended, as `cluster.disconnected` tells it.
const LAPSED: &str = "presence lapsed: the broker replica holding the link stopped refreshing it";

/// Hub-side state of one live agent link.
pub struct LinkState {
    id: u64,
    cluster_id: String,
    /// The agent's version and its Kubernetes version, from its hello (for `cluster.connected`).
    versions: (Option<String>, Option<String>),
    /// Frames to send to the agent. Boxed so the channel's preallocated slots stay small: an
    /// idle link should cost little memory.
    outbound: mpsc::Sender<Box<BrokerMessage>>,
    /// Wakes the pump.
    bell: Notify,
    /// Commands sent down the link and not yet done.
    in_flight: Mutex<HashMap<String, InFlight>>,
    /// Cancelled when the link must close (replaced, revoked, broker draining).
    closing: CancelToken,
    last_seen: Mutex<Instant>,
}

struct InFlight {
    command: QueuedCommand,
    /// The output of a one-shot command; a stream's goes on to its reader instead.
    output: String,
    /// Bytes of a one-shot command dropped past its budget, or bytes a stream relayed.
    dropped: u64,
    /// A stream's bytes so far.
    streamed: u64,
    /// When a stream last relayed something (output or a beat).
    relayed: Instant,
}

impl LinkState {
    /// Cluster this link serves.
    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    /// Resolves when the link must close.
    pub async fn closing(&self) {
        self.closing.cancelled().await;
    }

    /// Records that the agent was heard from.
    pub fn saw_agent(&self) {
        *self.last_seen.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    }

    /// Time since the agent was last heard from.
    pub fn silence(&self) -> Duration {
        self.last_seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .elapsed()
    }

    fn in_flight(&self) -> std::sync::MutexGuard<'_, HashMap<String, InFlight>> {
        self.in_flight.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Number of one-shot commands running on the agent (streams are not waited for: a drain
    /// ends them).
    pub fn in_flight_count(&self) -> usize {
        self.in_flight()
            .values()
            .filter(|f| !f.command.stream)
            .count()
    }
}

impl Hub {
    /// A hub for replica `broker_id` over `store`; call [`Hub::start`] to start it.
    pub fn new(broker_id: String, store: Arc<dyn Store>, settings: HubSettings) -> Arc<Self> {
        Arc::new(Self {
            broker_id,
            admissions: Admissions::new(settings.link_admissions_per_second),
            events: SessionEvents::new(store.clone()),
            store,
            settings,
            links: Mutex::default(),
            waiters: Mutex::default(),
            feeds: Mutex::default(),
            next_link: AtomicU64::new(1),
            stop_taking: CancelToken::new(),
            draining: CancelToken::new(),
            credential_changes: broadcast::channel(CREDENTIAL_CHANGES).0,
            webhooks: OnceLock::new(),
        })
    }

    /// Sends this replica's cluster and command events to `webhooks` from now on (once).
    pub fn set_webhooks(&self, webhooks: Arc<Webhooks>) {
        let _ = self.webhooks.set(webhooks);
    }

    fn webhooks(&self) -> Option<&Arc<Webhooks>> {
        self.webhooks.get()
    }

    /// Announces a final result that failed or timed out (`command.failed`), without making
    /// anyone wait for the outbox write.
    fn announce_result(&self, command: &QueuedCommand, result: &CommandResult) {
        if let Some(webhooks) = self.webhooks()
            && matches!(result.status, ResultStatus::Failed | ResultStatus::Timeout)
        {
            let webhooks = webhooks.clone();
            let (command_type, args, result) = (
                command.command_type.clone(),
                command.args.clone(),
                result.clone(),
            );
            tokio::spawn(async move {
                webhooks.command_failed(&command_type, &args, &result).await;
            });
        }
    }

    /// Where the ids of revoked or shortened credentials are announced, as the store reports
    /// them (every replica's revocations, this one's included).
    pub fn credential_changes(&self) -> &broadcast::Sender<Arc<str>> {
        &self.credential_changes
    }

    /// This replica's id.
    pub fn broker_id(&self) -> &str {
        &self.broker_id
    }

    /// The store behind the hub.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The hub's settings.
    pub fn settings(&self) -> &HubSettings {
        &self.settings
    }

    /// Subscribes to store events and dispatches them until the store's channel closes.
    pub async fn start(self: &Arc<Self>) -> StoreResult<()> {
        // Alive before it takes anything, so no other replica takes its commands over.
        self.store
            .replica_alive(&self.broker_id, self.settings.alive_ttl)
            .await?;
        let hub = Arc::downgrade(self);
        let every = self.settings.alive_ttl / 4;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(hub) = hub.upgrade() else { return };
                if hub.draining.is_cancelled() {
                    return;
                }
                if let Err(e) = hub
                    .store
                    .replica_alive(&hub.broker_id, hub.settings.alive_ttl)
                    .await
                {
                    warn!(error = %e, "cannot renew this replica's liveness");
                }
            }
        });
        let (tx, mut rx) = mpsc::channel(4096);
        self.store.subscribe(&self.broker_id, tx).await?;
        let hub = Arc::downgrade(self);
        tokio::spawn(async move {
            while let Some(event) = rx.recv().await {
                let Some(hub) = hub.upgrade() else { return };
                match event {
                    StoreEvent::Queued(cluster) => hub.ring(&cluster),
                    StoreEvent::Result(result) => hub.wake(*result),
                    StoreEvent::CredentialChanged(id) => {
                        // No receiver (no open request or link) is fine.
                        let _ = hub.credential_changes.send(Arc::from(id));
                    }
                    StoreEvent::Stream(relay) => hub.feed(*relay),
                    StoreEvent::SessionEvent { cluster_id, event } => {
                        hub.events.deliver(&cluster_id, event);
                    }
                    StoreEvent::EventInterest(cluster_id) => hub.events.interested(cluster_id),
                    StoreEvent::Cancel {
                        cluster_id,
                        result_id,
                    } => {
                        hub.cancel_here(&cluster_id, &result_id).await;
                    }
                }
            }
        });
        Ok(())
    }

    fn links(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<LinkState>>> {
        self.links.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn waiters(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, oneshot::Sender<CommandResult>>> {
        self.waiters.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether this replica holds the link of `cluster_id`.
    pub fn holds_link(&self, cluster_id: &str) -> bool {
        self.links().contains_key(cluster_id)
    }

    /// Whether `link` is the link this replica uses for its cluster (not replaced).
    pub fn is_current(&self, link: &LinkState) -> bool {
        self.links()
            .get(&link.cluster_id)
            .is_some_and(|l| l.id == link.id)
    }

    /// Whether a new link of `cluster` may come in now, or when it should come back (see
    /// [`crate::admissions`]).
    pub fn admit_link(&self, cluster: &str) -> Admission {
        self.admissions.admit(cluster, Instant::now())
    }

    /// Session events: publish them, read them.
    pub fn events(&self) -> &Arc<SessionEvents> {
        &self.events
    }

    /// Whether this replica is draining (SIGTERM): it takes no new work, `/health` says so.
    pub fn is_draining(&self) -> bool {
        self.stop_taking.is_cancelled()
    }

    /// Resolves when this replica starts draining: open streams end (`shutdown`).
    pub async fn shutting_down(&self) {
        self.stop_taking.cancelled().await;
    }

    /// Number of callers waiting for a result on this replica.
    pub fn waiting(&self) -> usize {
        self.waiters().len()
    }

    /// Number of agent links this replica holds.
    pub fn link_count(&self) -> usize {
        self.links().len()
    }

    fn ring(&self, cluster_id: &str) {
        if let Some(link) = self.links().get(cluster_id) {
            link.bell.notify_one();
        }
    }

    fn wake(&self, result: CommandResult) {
        if let Some(waiter) = self.waiters().remove(&result.result_id) {
            let _ = waiter.send(result);
        } else if let Some(feed) = self.feeds().remove(&result.result_id) {
            feed.end(result);
        }
    }

    fn feeds(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Feed>>> {
        self.feeds.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Hands a piece of a stream to its reader on this replica, if it is still reading.
    fn feed(&self, relay: StreamRelay) {
        let Some(feed) = self.feeds().get(&relay.result_id).cloned() else {
            return;
        };
        match relay.piece {
            StreamPiece::Output(data) => feed.output(data),
            StreamPiece::Beat => feed.beat(),
        }
    }

    // === impl Hub: callers ===

    /// Queues `command` and waits until its result is final or its deadline passes.
    ///
    /// On a deadline the result is recorded as `timeout` (unless a real result won the race,
    /// which is then returned).
    pub async fn submit(&self, command: QueuedCommand) -> Result<CommandResult, SubmitError> {
        let pending = pending_result(&command);
        let (tx, rx) = oneshot::channel();
        self.waiters().insert(command.result_id.clone(), tx);
        // The caller may go away (its HTTP request dropped) at any await below; the guard makes
        // sure its waiter does not stay behind.
        let _waiter = WaiterGuard {
            hub: self,
            result_id: &command.result_id,
        };
        let entry_id = self.enqueue(&command, &pending).await?;
        let wait = (command.deadline - Utc::now()).to_std().unwrap_or_default();
        let ending = tokio::select! {
            woken = rx => match woken {
                Ok(result) => return Ok(result),
                // The sender is only dropped by `wake`, which always sends; treat it as a timeout.
                Err(_) => timeout_result(&command),
            },
            () = tokio::time::sleep(wait) => timeout_result(&command),
            gone = self.agent_gone(&command.cluster_id) => unlinked_result(&command, gone),
            finished = self.keep_queued(&command, entry_id) => return Ok(finished),
        };
        if self
            .store
            .finish_result(&ending, self.settings.result_ttl, None)
            .await?
        {
            self.announce_result(&command, &ending);
            return Ok(ending);
        }
        // A real result won the race.
        Ok(self
            .store
            .get_result(&command.result_id)
            .await?
            .unwrap_or(ending))
    }

    /// Queues `command` (its result `pending` until it finishes). Returns the queue entry's id.
    async fn enqueue(
        &self,
        command: &QueuedCommand,
        pending: &CommandResult,
    ) -> Result<String, SubmitError> {
        let ttl = self.settings.result_ttl;
        self.queue_with(&command.cluster_id, |ring| {
            self.store.enqueue(command, pending, ttl, ring)
        })
        .await
    }

    /// Queues `command` again after the store lost it (see [`Hub::keep_queued`]). Returns the
    /// new queue entry's id.
    async fn requeue(&self, command: &QueuedCommand) -> Result<String, SubmitError> {
        self.queue_with(&command.cluster_id, |ring| {
            self.store.requeue(command, ring)
        })
        .await
    }

    /// Runs `put` (a store write that queues a command of `cluster_id`) and wakes whoever takes
    /// it: this replica's pump directly when it holds the link, else the replica that does
    /// through the cluster's bell (`put` rings it when given `true`).
    async fn queue_with<F, Fut>(&self, cluster_id: &str, put: F) -> Result<String, SubmitError>
    where
        F: FnOnce(bool) -> Fut,
        Fut: std::future::Future<Output = StoreResult<String>>,
    {
        let local = self.links().get(cluster_id).cloned();
        let entry_id = put(local.is_none()).await?;
        if let Some(link) = local {
            link.bell.notify_one();
        }
        Ok(entry_id)
    }

    /// Keeps a waiting caller's command from being lost: looks, once the caller has waited
    /// [`HubSettings::queued_check`] and as often after, whether the command is still queued.
    /// A command that is neither queued nor finished was lost by the store (a Redis failover
    /// that did not carry the enqueue over) and is queued again (the entry only: its session
    /// counts it once) — commands are read-only, so a second run is harmless, and the first
    /// final result wins. A command that finished without its answer reaching this caller (a
    /// reply lost with a failed node's pub/sub) resolves with its stored result. Never resolves
    /// otherwise; commands that finish quickly cost nothing.
    async fn keep_queued(&self, command: &QueuedCommand, mut entry_id: String) -> CommandResult {
        let every = self.settings.queued_check;
        let mut looks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        looks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            looks.tick().await;
            let standing = self
                .store
                .standing(&command.cluster_id, &entry_id, &command.result_id)
                .await;
            match standing {
                Ok(Standing::Queued) => {}
                Ok(Standing::Finished(result)) => {
                    debug!(result_id = %command.result_id, "a finished command's answer did not come; read it from the store");
                    crate::metrics::command_recovered(crate::metrics::Recovered::ReadFromStore);
                    return *result;
                }
                Ok(Standing::Lost) => match self.requeue(command).await {
                    Ok(again) => {
                        crate::metrics::command_recovered(crate::metrics::Recovered::Requeued);
                        warn!(
                            result_id = %command.result_id,
                            cluster = %command.cluster_id,
                            lost = %entry_id,
                            entry = %again,
                            "a queued command was lost by the store (a failover?); queued it again"
                        );
                        entry_id = again;
                    }
                    Err(e) => {
                        debug!(result_id = %command.result_id, error = %e, "cannot queue a lost command again");
                    }
                },
                Err(e) => {
                    debug!(result_id = %command.result_id, error = %e, "cannot look at a queued command");
                }
            }
        }
    }

    /// Resolves once no replica has held a link of `cluster_id` for [`HubSettings::relink_grace`]
    /// (with how long it has been gone): a command queued as its agent went away is not left
    /// waiting for its whole timeout. Looks twice per grace period, and only at callers still
    /// waiting after the first half, so commands that finish quickly cost nothing.
    async fn agent_gone(&self, cluster_id: &str) -> Duration {
        let grace = self.settings.relink_grace;
        let mut looks =
            tokio::time::interval_at(tokio::time::Instant::now() + grace / 2, grace / 2);
        loop {
            looks.tick().await;
            if self.holds_link(cluster_id) {
                continue;
            }
            let record = match self.store.get_cluster(cluster_id).await {
                Ok(record) => record,
                Err(e) => {
                    debug!(cluster = %cluster_id, error = %e, "cannot look at the cluster's link");
                    continue;
                }
            };
            let gone_for = match record {
                Some(ClusterRecord {
                    broker_id: Some(_), ..
                }) => continue,
                Some(ClusterRecord {
                    last_seen: Some(seen),
                    ..
                }) => (Utc::now() - seen).to_std().unwrap_or_default(),
                // Never linked (or forgotten): nothing will come back to take the command.
                _ => grace,
            };
            if gone_for >= grace {
                return gone_for;
            }
        }
    }

    /// Queues a streamed command whose pieces and end go to `feed` (a reader on this replica);
    /// the feed is forgotten when the returned guard drops.
    pub async fn start_stream(
        &self,
        command: &QueuedCommand,
        feed: Arc<Feed>,
    ) -> Result<FeedGuard<'_>, SubmitError> {
        self.feeds().insert(command.result_id.clone(), feed);
        let guard = FeedGuard {
            hub: self,
            result_id: command.result_id.clone(),
        };
        self.enqueue(command, &pending_result(command)).await?;
        Ok(guard)
    }

    /// Ends a stream its reader left: records `result` (unless the stream ended already) and
    /// tells the replica holding the link, which stops the command on the agent. A stream not
    /// sent down its link yet is never sent: dispatch checks for a final result first.
    pub async fn cancel_stream(&self, command: &QueuedCommand, result: &CommandResult) {
        self.feeds().remove(&command.result_id);
        match self
            .store
            .finish_result(result, self.settings.result_ttl, None)
            .await
        {
            Ok(true) => self.announce_result(command, result),
            Ok(false) => return,
            Err(e) => {
                warn!(result_id = %command.result_id, error = %e, "cannot record a cancelled stream")
            }
        }
        if self.holds_link(&command.cluster_id) {
            self.cancel_here(&command.cluster_id, &command.result_id)
                .await;
        } else if let Err(e) = self
            .store
            .cancel_command(&command.cluster_id, &command.result_id)
            .await
        {
            warn!(result_id = %command.result_id, error = %e, "cannot tell the link holder to stop a stream; it runs until its lifetime");
        }
    }

    /// Stops a command running on a link of this replica (its caller went away).
    async fn cancel_here(&self, cluster_id: &str, result_id: &str) {
        let Some(link) = self.links().get(cluster_id).cloned() else {
            return;
        };
        if link.in_flight().remove(result_id).is_some() {
            debug!(result_id, "stopping a command whose caller went away");
            let cancel = BrokerMessage::Cancel(Cancel {
                result_id: result_id.to_owned(),
            });
            let _ = link.outbound.send(Box::new(cancel)).await;
        }
    }

    /// Relays a piece of a stream to the replica whose caller reads it.
    async fn relay(&self, reply_to: &str, relay: StreamRelay) {
        if reply_to == self.broker_id {
            self.feed(relay);
        } else if let Err(e) = self.store.deliver_stream(reply_to, &relay).await {
            warn!(result_id = %relay.result_id, error = %e, "cannot relay a piece of a stream");
        }
    }

    // === impl Hub: links ===

    /// Registers a new link for `record.cluster_id`, replacing (and closing) any older link of
    /// that cluster on this replica, and starts its pump.
    pub async fn attach(
        self: &Arc<Self>,
        record: ClusterRecord,
        outbound: mpsc::Sender<Box<BrokerMessage>>,
    ) -> StoreResult<Arc<LinkState>> {
        let link = Arc::new(LinkState {
            id: self.next_link.fetch_add(1, Ordering::Relaxed),
            cluster_id: record.cluster_id.clone(),
            versions: (
                record.agent_version.clone(),
                record.kubernetes_version.clone(),
            ),
            outbound,
            bell: Notify::new(),
            in_flight: Mutex::default(),
            closing: self.draining.child_token(),
            last_seen: Mutex::new(Instant::now()),
        });
        self.store.watch_cluster(&record.cluster_id).await?;
        let change = self
            .store
            .link_cluster(&record, self.settings.presence_ttl)
            .await?;
        if let Some(old) = self.links().insert(record.cluster_id.clone(), link.clone()) {
            info!(cluster = %record.cluster_id, "a new agent link replaces the old one");
            old.closing.cancel();
        }
        tokio::spawn(self.clone().pump(link.clone()));
        if let Some(webhooks) = self.webhooks() {
            if change == LinkChange::Relinked {
                webhooks
                    .cluster_disconnected(&record.cluster_id, LAPSED, None, None)
                    .await;
            }
            if change != LinkChange::Continued {
                webhooks.cluster_connected(&record).await;
            }
        }
        Ok(link)
    }

    /// Forgets a link that closed and drops its presence claim. Its in-flight commands fail at
    /// once, except when this replica is draining: then they stay in the queue, unacknowledged,
    /// and the replica the agent moves to takes them over (commands are read-only, so running
    /// one again is safe).
    pub async fn detach(&self, link: &Arc<LinkState>, reason: &str) {
        link.closing.cancel();
        let handing_over = self.stop_taking.is_cancelled();
        let still_current = {
            let mut links = self.links();
            let current = links.get(&link.cluster_id).is_some_and(|l| l.id == link.id);
            if current {
                links.remove(&link.cluster_id);
            }
            current
        };
        let orphans: Vec<InFlight> = link.in_flight().drain().map(|(_, f)| f).collect();
        if handing_over && !orphans.is_empty() {
            info!(cluster = %link.cluster_id, count = orphans.len(), "leaving unfinished commands to the next replica");
        }
        // A stream was settled when its agent got it: nobody takes it over, it ends here.
        for orphan in orphans
            .into_iter()
            .filter(|o| o.command.stream || !handing_over)
        {
            let mut result = pending_result(&orphan.command);
            result.status = ResultStatus::Failed;
            // No exit code: the command never ran to an end on the agent.
            result.exit_code = None;
            result.output = orphan.output;
            result.error = Some(format!(
                "the agent link of cluster {} was lost while the command was running ({reason}); \
                 retry once the agent is connected again",
                link.cluster_id
            ));
            self.finish(&orphan.command, result).await;
        }
        if still_current {
            let now = Utc::now();
            if let Err(e) = self.store.unwatch_cluster(&link.cluster_id).await {
                warn!(cluster = %link.cluster_id, error = %e, "could not stop watching the queue");
            }
            match self
                .store
                .unlink_cluster(&link.cluster_id, &self.broker_id, now)
                .await
            {
                Ok(true) => {
                    if let Some(webhooks) = self.webhooks() {
                        let last_seen =
                            now - chrono::Duration::from_std(link.silence()).unwrap_or_default();
                        webhooks
                            .cluster_disconnected(
                                &link.cluster_id,
                                reason,
                                Some(&self.broker_id),
                                Some(last_seen),
                            )
                            .await;
                    }
                }
                Ok(false) => {}
                Err(e) => {
                    warn!(cluster = %link.cluster_id, error = %e, "could not clear presence");
                }
            }
        }
    }

    /// Appends output the agent sent for a command, or relays it to the stream's reader.
    pub async fn output(&self, link: &LinkState, chunk: OutputChunk) {
        let relay = {
            let mut in_flight = link.in_flight();
            let Some(entry) = in_flight.get_mut(&chunk.result_id) else {
                debug!(result_id = %chunk.result_id, "output for a command no longer in flight");
                return;
            };
            if entry.command.stream {
                stream_output(entry, chunk)
            } else {
                append_output(entry, chunk);
                None
            }
        };
        if let Some((reply_to, relay)) = relay {
            self.relay(&reply_to, relay).await;
        }
    }

    /// Tells the readers of the quiet streams of `link` on other replicas that they still run.
    async fn beat(&self, link: &LinkState) {
        let every = self.settings.ping_interval;
        let quiet: Vec<(String, String)> = link
            .in_flight()
            .values_mut()
            .filter(|f| f.command.stream && f.relayed.elapsed() >= every)
            .map(|f| {
                f.relayed = Instant::now();
                (f.command.reply_to.clone(), f.command.result_id.clone())
            })
            .collect();
        for (reply_to, result_id) in quiet {
            let relay = StreamRelay {
                result_id,
                piece: StreamPiece::Beat,
            };
            self.relay(&reply_to, relay).await;
        }
    }
}

/// Keeps a one-shot command's output, within its budget.
fn append_output(entry: &mut InFlight, chunk: OutputChunk) {
    {
        // The agent enforces the budget; this guards the broker against an agent that does not.
        let budget = entry.command.max_output_bytes as usize;
        let room = budget.saturating_sub(entry.output.len());
        if chunk.data.len() <= room {
            entry.output.push_str(&chunk.data);
        } else {
            let cut = floor_char_boundary(&chunk.data, room);
            entry.output.push_str(&chunk.data[..cut]);
            entry.dropped += (chunk.data.len() - cut) as u64;
        }
    }
}

/// Counts a stream's output and says where it goes, within its budget (enforced by the agent;
/// this guards the broker against an agent that does not).
fn stream_output(entry: &mut InFlight, mut chunk: OutputChunk) -> Option<(String, StreamRelay)> {
    let room = entry
        .command
        .max_output_bytes
        .saturating_sub(entry.streamed) as usize;
    if chunk.data.len() > room {
        let cut = floor_char_boundary(&chunk.data, room);
        entry.dropped += (chunk.data.len() - cut) as u64;
        chunk.data.truncate(cut);
    }
    if chunk.data.is_empty() {
        return None;
    }
    entry.streamed += chunk.data.len() as u64;
    entry.relayed = Instant::now();
    let relay = StreamRelay {
        result_id: chunk.result_id,
        piece: StreamPiece::Output(chunk.data),
    };
    Some((entry.command.reply_to.clone(), relay))
}

impl Hub {
    /// Completes a command the agent finished.
    pub async fn done(&self, link: &LinkState, done: Done) {
        let Some(entry) = link.in_flight().remove(&done.result_id) else {
            debug!(result_id = %done.result_id, "done for a command no longer in flight");
            return;
        };
        let mut result = pending_result(&entry.command);
        result.status = done.status;
        result.exit_code = Some(done.exit_code);
        result.error = done.error;
        result.execution_time_ms = done.execution_time_ms;
        result.output = entry.output;
        let omitted = done.truncated.map_or(0, |t| t.omitted_bytes) + entry.dropped;
        if omitted > 0 {
            result.truncated = Some(Truncation {
                omitted_bytes: omitted,
                limit_bytes: entry.command.max_output_bytes,
            });
        }
        self.finish(&entry.command, result).await;
    }

    /// Records a final result, removes the command from the queue and wakes its caller.
    async fn finish(&self, command: &QueuedCommand, result: CommandResult) {
        let won = match self
            .store
            .finish_result(&result, self.settings.result_ttl, Some(&command.entry_id))
            .await
        {
            Ok(won) => {
                if won {
                    self.announce_result(command, &result);
                }
                won
            }
            Err(e) => {
                warn!(result_id = %result.result_id, error = %e, "could not store result");
                // The caller still deserves the outcome even if the store hiccuped.
                true
            }
        };
        if !won {
            return;
        }
        if command.reply_to == self.broker_id {
            self.wake(result);
        } else if let Err(e) = self.store.deliver_result(&command.reply_to, &result).await {
            warn!(result_id = %result.result_id, error = %e, "could not hand result to its replica");
        }
    }

    /// Moves commands from the store to the link until it closes.
    async fn pump(self: Arc<Self>, link: Arc<LinkState>) {
        // The first look is at once: a link that moved here takes over what its old replica left.
        let mut next_look = tokio::time::Instant::now();
        let mut since_heartbeat = Instant::now();
        loop {
            let periodic = tokio::select! {
                () = link.closing.cancelled() => return,
                // Draining: what is still queued waits for the replica the agent moves to.
                () = self.stop_taking.cancelled() => return,
                () = link.bell.notified() => false,
                () = tokio::time::sleep_until(next_look) => true,
            };
            if periodic {
                self.maintain(&link, &mut since_heartbeat).await;
                next_look = tokio::time::Instant::now() + self.look_every(&link);
            }
            loop {
                let taken = self
                    .store
                    .take(&link.cluster_id, &self.broker_id, TAKE_BATCH)
                    .await;
                match taken {
                    Ok(batch) if batch.is_empty() => break,
                    Ok(batch) => {
                        let full = batch.len() == TAKE_BATCH;
                        self.dispatch(&link, batch).await;
                        if !full {
                            break;
                        }
                    }
                    Err(e) => {
                        warn!(cluster = %link.cluster_id, error = %e, "cannot read the command queue");
                        break;
                    }
                }
            }
        }
    }

    /// How long a pump waits before its next periodic look at its queue. A link with commands
    /// or streams in flight looks every `poll_interval` (keep-alives, stream beats). An idle
    /// link's look is only a safety net (new commands ring its bell; what a dead replica left
    /// was taken over at its first look), so idle links share a budget of
    /// [`IDLE_LOOKS_PER_SECOND`] for the whole replica, at most one `ping_interval` apart (the
    /// presence refresh), spread with jitter: 10,000 idle links would otherwise cost the store
    /// some 40,000 commands a second.
    fn look_every(&self, link: &LinkState) -> Duration {
        let poll = self.settings.poll_interval;
        if !link.in_flight().is_empty() {
            return poll;
        }
        let ceiling = self.settings.ping_interval.max(poll);
        let share = poll.mul_f64(self.link_count() as f64 / IDLE_LOOKS_PER_SECOND);
        let every = share.clamp(poll, ceiling);
        every.mul_f64(rand::random_range(0.8..=1.0))
    }

    /// Periodic work of a pump: take over abandoned commands, keep ours alive, refresh presence.
    async fn maintain(&self, link: &Arc<LinkState>, since_heartbeat: &mut Instant) {
        let cluster = &link.cluster_id;
        match self
            .store
            .reclaim_orphans(cluster, &self.broker_id, TAKE_BATCH)
            .await
        {
            Ok(batch) if !batch.is_empty() => {
                info!(cluster = %cluster, count = batch.len(), "took over commands of a replica that is gone");
                self.dispatch(link, batch).await;
            }
            Ok(_) => {}
            Err(e) => {
                warn!(cluster = %cluster, error = %e, "cannot take over commands of gone replicas")
            }
        }
        match self
            .store
            .reclaim(
                cluster,
                &self.broker_id,
                TAKE_BATCH,
                self.settings.abandoned_after,
            )
            .await
        {
            Ok(batch) if !batch.is_empty() => {
                info!(cluster = %cluster, count = batch.len(), "took over commands left by another replica");
                self.dispatch(link, batch).await;
            }
            Ok(_) => {}
            Err(e) => warn!(cluster = %cluster, error = %e, "cannot reclaim abandoned commands"),
        }
        self.beat(link).await;
        let ids: Vec<String> = link
            .in_flight()
            .values()
            .filter(|f| !f.command.stream)
            .map(|f| f.command.entry_id.clone())
            .collect();
        if let Err(e) = self.store.keep_alive(cluster, &self.broker_id, &ids).await {
            warn!(cluster = %cluster, error = %e, "cannot refresh in-flight commands");
        }
        // Three quarters: an idle link looks up to a fifth early (`look_every`'s jitter).
        if since_heartbeat.elapsed() >= self.settings.ping_interval.mul_f64(0.75) {
            *since_heartbeat = Instant::now();
            let last_seen =
                Utc::now() - chrono::Duration::from_std(link.silence()).unwrap_or_default();
            match self
                .store
                .touch_cluster(
                    cluster,
                    &self.broker_id,
                    last_seen,
                    self.settings.presence_ttl,
                )
                .await
            {
                // The claim had lapsed and its lapse was announced: connected again.
                Ok(true) => {
                    if let Some(webhooks) = self.webhooks() {
                        let record = ClusterRecord {
                            cluster_id: cluster.clone(),
                            broker_id: Some(self.broker_id.clone()),
                            agent_version: link.versions.0.clone(),
                            kubernetes_version: link.versions.1.clone(),
                            last_seen: Some(last_seen),
                            // Not part of the event; the store keeps the link's own.
                            labels: Default::default(),
                        };
                        webhooks.cluster_connected(&record).await;
                    }
                }
                Ok(false) => {}
                Err(e) => warn!(cluster = %cluster, error = %e, "cannot refresh presence"),
            }
        }
    }

    async fn dispatch(&self, link: &Arc<LinkState>, batch: Vec<QueuedCommand>) {
        let now = Utc::now();
        for command in batch {
            let remaining = (command.deadline - now).num_milliseconds();
            if remaining <= 0 {
                self.finish(&command, timeout_result(&command)).await;
                continue;
            }
            let message = BrokerMessage::Execute(Execute {
                result_id: command.result_id.clone(),
                session_id: command.session_id.clone(),
                command_type: command.command_type.clone(),
                args: command.args.clone(),
                timeout_ms: remaining as u64,
                max_output_bytes: command.max_output_bytes,
                correlation_id: command.correlation_id.clone(),
                trace: command.trace.clone(),
                stream: command.stream,
            });
            let (stream, cluster_id, entry_id, result_id) = (
                command.stream,
                command.cluster_id.clone(),
                command.entry_id.clone(),
                command.result_id.clone(),
            );
            link.in_flight().insert(
                result_id.clone(),
                InFlight {
                    command,
                    output: String::new(),
                    dropped: 0,
                    streamed: 0,
                    relayed: Instant::now(),
                },
            );
            // A stream whose reader left before it got here has a final result already (and a
            // cancellation arriving from now on finds it in flight).
            if stream
                && let Ok(Some(result)) = self.store.get_result(&result_id).await
                && result.status != ResultStatus::Pending
            {
                link.in_flight().remove(&result_id);
                if let Err(e) = self.store.settle(&cluster_id, &entry_id).await {
                    warn!(result_id = %result_id, error = %e, "cannot settle a cancelled stream");
                }
                continue;
            }
            if link.outbound.send(Box::new(message)).await.is_err() {
                // The link is closing; `detach` fails whatever is in flight.
                return;
            }
            // Sent: the stream is this link's alone; no other replica may run it again.
            if stream && let Err(e) = self.store.settle(&cluster_id, &entry_id).await {
                warn!(result_id = %result_id, error = %e, "cannot settle a stream; another replica may run it again");
            }
        }
    }

    // === impl Hub: shutdown ===

    /// Stops taking new commands, waits up to `grace` for in-flight ones, then closes every
    /// link so agents reconnect to another replica (commands still queued wait for it there).
    pub async fn drain(&self, grace: Duration) {
        self.stop_taking.cancel();
        let links: Vec<Arc<LinkState>> = self.links().values().cloned().collect();
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline && links.iter().any(|l| l.in_flight_count() > 0) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.draining.cancel();
        // Upgraded connections outlive the server's graceful shutdown: wait (briefly) until
        // every link has told its agent to come back later and closed, or the process could
        // exit first and the agents would see a dropped connection instead.
        let closing = Instant::now() + LINKS_CLOSE_WITHIN;
        while Instant::now() < closing && self.link_count() > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // What this replica took and did not finish is the next link holder's, at once.
        if let Err(e) = self.store.replica_gone(&self.broker_id).await {
            warn!(error = %e, "cannot say this replica is gone; its commands wait for takeover");
        }
    }
}

/// Forgets a stream's feed when its reader is done, however it ends.
pub struct FeedGuard<'a> {
    hub: &'a Hub,
    result_id: String,
}

impl Drop for FeedGuard<'_> {
    fn drop(&mut self) {
        self.hub.feeds().remove(&self.result_id);
    }
}

/// Removes a caller's waiter when the caller is done, however it ends.
struct WaiterGuard<'a> {
    hub: &'a Hub,
    result_id: &'a str,
}

impl Drop for WaiterGuard<'_> {
    fn drop(&mut self) {
        self.hub.waiters().remove(self.result_id);
    }
}

/// The placeholder stored while a command is queued or running.
pub fn pending_result(command: &QueuedCommand) -> CommandResult {
    CommandResult {
        result_id: command.result_id.clone(),
        session_id: command.session_id.clone(),
        cluster_id: command.cluster_id.clone(),
        status: ResultStatus::Pending,
        output: String::new(),
        error: None,
        exit_code: None,
        execution_time_ms: 0,
        executed_at: command.executed_at,
        correlation_id: command.correlation_id.clone(),
        truncated: None,
        window: None,
    }
}

fn timeout_result(command: &QueuedCommand) -> CommandResult {
    let waited = (command.deadline - command.executed_at)
        .num_milliseconds()
        .max(0);
    let mut result = pending_result(command);
    result.status = ResultStatus::Timeout;
    result.error = Some(format!(
        "the command did not finish within its timeout of {:.1}s",
        waited as f64 / 1000.0
    ));
    result
}

/// The result of a command whose agent went away before it ran and did not come back.
fn unlinked_result(command: &QueuedCommand, gone_for: Duration) -> CommandResult {
    let mut result = pending_result(command);
    result.status = ResultStatus::Failed;
    // No exit code: the command never ran on the agent.
    result.error = Some(format!(
        "the agent of cluster {} went away before it ran the command and has not come back \
         for {}s; retry once the agent is connected again",
        command.cluster_id,
        gone_for.as_secs()
    ));
    result
}

fn floor_char_boundary(s: &str, mut at: usize) -> usize {
    while at > 0 && !s.is_char_boundary(at) {
        at -= 1;
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryStore;

    fn command(deadline_in: chrono::Duration) -> QueuedCommand {
        let now = Utc::now();
        QueuedCommand {
            entry_id: String::new(),
            result_id: "res_t".into(),
            session_id: "sess_t".into(),
            cluster_id: "c1".into(),
            command_type: "version".into(),
            args: Vec::new(),
            executed_at: now,
            deadline: now + deadline_in,
            max_output_bytes: 1024,
            correlation_id: "corr".into(),
            reply_to: "b1".into(),
            trace: None,
            stream: false,
        }
    }

    #[tokio::test]
    async fn a_caller_that_goes_away_leaves_no_waiter() {
        let hub = Hub::new(
            "b1".into(),
            Arc::new(MemoryStore::new()),
            HubSettings::default(),
        );
        let task = {
            let hub = hub.clone();
            tokio::spawn(async move { hub.submit(command(chrono::Duration::seconds(60))).await })
        };
        while hub.waiting() == 0 {
            tokio::task::yield_now().await;
        }
        task.abort();
        let _ = task.await;
        assert_eq!(hub.waiting(), 0);
    }

    /// A hub on a memory store whose cluster `c1` is linked to another replica, `b2`.
    async fn hub_with_c1_on_b2(relink_grace: Duration) -> Arc<Hub> {
        let store = Arc::new(MemoryStore::new());
        let record = ClusterRecord {
            cluster_id: "c1".into(),
            broker_id: Some("b2".into()),
            agent_version: None,
            kubernetes_version: None,
            last_seen: Some(Utc::now()),
            labels: Default::default(),
        };
        store
            .link_cluster(&record, Duration::from_secs(60))
            .await
            .unwrap();
        let settings = HubSettings {
            relink_grace,
            ..HubSettings::default()
        };
        Hub::new("b1".into(), store, settings)
    }

    #[tokio::test]
    async fn a_command_whose_agent_goes_away_fails_after_the_grace_not_its_timeout() {
        let grace = Duration::from_millis(200);
        let hub = hub_with_c1_on_b2(grace).await;
        let started = Instant::now();
        let task = {
            let hub = hub.clone();
            tokio::spawn(async move { hub.submit(command(chrono::Duration::seconds(60))).await })
        };
        while hub.waiting() == 0 {
            tokio::task::yield_now().await;
        }
        hub.store()
            .unlink_cluster("c1", "b2", Utc::now())
            .await
            .unwrap();
        let result = task.await.unwrap().unwrap();
        assert_eq!(result.status, ResultStatus::Failed);
        assert_eq!(
            result.exit_code, None,
            "it never ran: the caller gets a 503"
        );
        let error = result.error.unwrap();
        assert!(
            error.contains("went away before it ran the command"),
            "{error}"
        );
        assert!(
            error.contains("retry once the agent is connected again"),
            "{error}"
        );
        assert!(started.elapsed() < Duration::from_secs(5));
        let stored = hub.store().get_result("res_t").await.unwrap().unwrap();
        assert_eq!(stored.status, ResultStatus::Failed);
    }

    /// A hub like [`hub_with_c1_on_b2`] (grace far off) whose callers look at their queued
    /// command every 20 ms.
    async fn hub_looking_often() -> Arc<Hub> {
        let hub = hub_with_c1_on_b2(Duration::from_secs(60)).await;
        let settings = HubSettings {
            queued_check: Duration::from_millis(20),
            relink_grace: Duration::from_secs(60),
            ..HubSettings::default()
        };
        Hub::new("b1".into(), hub.store().clone(), settings)
    }

    /// Takes what `c1`'s queue holds as replica `b2` would, waiting (up to 5 s) for
    /// something to come.
    async fn take_c1(hub: &Hub) -> Vec<QueuedCommand> {
        let waited = Instant::now();
        loop {
            let taken = hub.store().take("c1", "b2", 10).await.unwrap();
            if !taken.is_empty() {
                return taken;
            }
            assert!(
                waited.elapsed() < Duration::from_secs(5),
                "nothing was queued in 5 s"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test]
    async fn a_command_the_store_lost_is_queued_again_and_answered() {
        let hub = hub_looking_often().await;
        let task = {
            let hub = hub.clone();
            tokio::spawn(async move { hub.submit(command(chrono::Duration::seconds(60))).await })
        };
        let first = take_c1(&hub).await;
        assert_eq!(first[0].result_id, "res_t");
        // The entry goes with no result, as a failover that did not carry it over loses it.
        hub.store().settle("c1", &first[0].entry_id).await.unwrap();
        let again = take_c1(&hub).await;
        assert_eq!(again.len(), 1);
        assert_eq!(
            again[0].result_id, "res_t",
            "the same command, queued again"
        );
        assert_ne!(again[0].entry_id, first[0].entry_id);
        // Its answer comes back the usual way (here: only through the store).
        let mut done = pending_result(&again[0]);
        done.status = ResultStatus::Completed;
        done.exit_code = Some(0);
        assert!(
            hub.store()
                .finish_result(&done, Duration::from_secs(60), Some(&again[0].entry_id))
                .await
                .unwrap()
        );
        let result = tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("the caller is answered")
            .unwrap()
            .unwrap();
        assert_eq!(result.status, ResultStatus::Completed);
        assert_eq!(hub.waiting(), 0);
    }

    #[tokio::test]
    async fn a_finished_command_whose_answer_went_astray_is_answered_from_the_store() {
        let hub = hub_looking_often().await;
        let started = Instant::now();
        let task = {
            let hub = hub.clone();
            tokio::spawn(async move { hub.submit(command(chrono::Duration::seconds(60))).await })
        };
        let taken = take_c1(&hub).await;
        let mut done = pending_result(&taken[0]);
        done.status = ResultStatus::Completed;
        done.exit_code = Some(0);
        done.output = "from the store".into();
        // Finished by replica b2, whose reply never reaches b1.
        hub.store()
            .finish_result(&done, Duration::from_secs(60), Some(&taken[0].entry_id))
            .await
            .unwrap();
        let result = task.await.unwrap().unwrap();
        assert_eq!(
            (result.status, result.output.as_str()),
            (ResultStatus::Completed, "from the store")
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "not its timeout"
        );
    }

    #[tokio::test]
    async fn a_command_waits_while_its_agent_is_linked() {
        let hub = hub_with_c1_on_b2(Duration::from_millis(20)).await;
        let result = hub
            .submit(command(chrono::Duration::milliseconds(300)))
            .await
            .unwrap();
        assert_eq!(result.status, ResultStatus::Timeout);
    }

    #[tokio::test]
    async fn an_unanswered_command_times_out_as_a_timeout() {
        let hub = Hub::new(
            "b1".into(),
            Arc::new(MemoryStore::new()),
            HubSettings::default(),
        );
        let result = hub
            .submit(command(chrono::Duration::milliseconds(50)))
            .await
            .unwrap();
        assert_eq!(result.status, ResultStatus::Timeout);
        assert!(
            result
                .error
                .unwrap()
                .contains("did not finish within its timeout")
        );
        let stored = hub.store().get_result("res_t").await.unwrap().unwrap();
        assert_eq!(stored.status, ResultStatus::Timeout);
        assert_eq!(hub.waiting(), 0);
    }
}
