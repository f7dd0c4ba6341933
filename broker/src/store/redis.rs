//! The Redis store, shared by every broker replica.
//!
//! Keys (per-cluster keys carry the cluster in a `{hash tag}` so Redis Cluster keeps each
//! cluster's keys in one slot):
//!
//! | key | type | what |
//! |---|---|---|
//! | `kl:{C}:q` | stream, group `kl` | commands queued for cluster C; an entry leaves on ack |
//! | `kl:{C}:link` | string with TTL | broker replica holding C's agent link (presence) |
//! | `kl:{C}:info` | hash | agent version, Kubernetes version, last seen, labels (JSON object) |
//! | `kl:clusters` | set | every cluster that ever linked |
//! | `kl:session:ID` | hash with expiry | a session |
//! | `kl:sessions` | sorted set | session ids by creation time, for listing |
//! | `kl:result:ID` / `kl:pending:ID` | string with TTL | final result / pending placeholder |
//! | `kl:cred:ID` | string (JSON) | a credential (API key or agent token): hash, scope, clusters, expiry, revocation |
//! | `kl:credhash:HASH` | string | the credential id whose secret hashes to HASH |
//! | `kl:creds` | sorted set | credential ids by creation time, for listing |
//! | `kl:cred:used` | hash | credential id → last use (epoch ms) |
//! | `kl:rl:CLASS:ID` | string with TTL | rate limit bucket of credential ID: its TAT in Unix ms |
//! | `kl:audit` | stream, field `r` | audit records (JSON), all replicas; `MAXLEN ~` trimmed |
//! | `kl:audit:head:B` | string with TTL | the last audit record replica B wrote |
//!
//! Channels: `kl:bell:C` rings the replica holding C's link when a command is queued;
//! `kl:reply:B` carries finished results to the replica B whose caller waits;
//! `kl:credentials` tells every replica that a credential was revoked or shortened.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use futures::StreamExt;
use kubeline_shared::api::CommandResult;
use kubeline_shared::trace::TraceContext;
use redis::aio::ConnectionManager;
use redis::streams::{
    StreamAutoClaimReply, StreamId, StreamRangeReply, StreamReadOptions, StreamReadReply,
};
use redis::{AsyncCommands, Client, RedisError, Value};
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::{
    ClusterRecord, CredentialRecord, QueuedCommand, SessionRecord, Store, StoreError, StoreEvent,
    StoreResult,
};
use crate::ratelimit::{self, Decision};

const GROUP: &str = "kl";
const SESSIONS: &str = "kl:sessions";
const CLUSTERS: &str = "kl:clusters";
const CREDENTIALS: &str = "kl:creds";
const CREDENTIALS_USED: &str = "kl:cred:used";
const CREDENTIAL_CHANNEL: &str = "kl:credentials";
/// Delay between attempts to re-establish the subscription after Redis went away.
const RESUBSCRIBE_DELAY: Duration = Duration::from_millis(500);
/// The audit log of every replica.
const AUDIT: &str = "kl:audit";
/// How long a replica's audit head outlives its last write. Only a live writer reads its own
/// head (after an append that failed without an answer), so a week is plenty; heads of replicas
/// long gone then disappear by themselves.
const AUDIT_HEAD_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

fn queue_key(cluster: &str) -> String {
    format!("kl:{{{cluster}}}:q")
}
fn link_key(cluster: &str) -> String {
    format!("kl:{{{cluster}}}:link")
}
fn info_key(cluster: &str) -> String {
    format!("kl:{{{cluster}}}:info")
}
fn session_key(id: &str) -> String {
    format!("kl:session:{id}")
}
fn result_key(id: &str) -> String {
    format!("kl:result:{id}")
}
fn pending_key(id: &str) -> String {
    format!("kl:pending:{id}")
}
fn credential_key(id: &str) -> String {
    format!("kl:cred:{id}")
}
fn credential_hash_key(hash: &str) -> String {
    format!("kl:credhash:{hash}")
}
fn bell_channel(cluster: &str) -> String {
    format!("kl:bell:{cluster}")
}
fn reply_channel(broker: &str) -> String {
    format!("kl:reply:{broker}")
}
fn audit_head_key(chain: &str) -> String {
    format!("kl:audit:head:{chain}")
}

/// [`ratelimit::gcra`] in Lua, line for line, on Redis's clock (`TIME`, shared by every broker
/// replica). Redis ≥ 6.2, which this store needs for XAUTOCLAIM anyway, replicates a script's
/// effects, so Redis replicas and the AOF get the SET, never a second reading of the clock.
/// `ARGV`: T in ms, the limit, and (tests only) a time in ms to decide at instead of `TIME`.
/// Returns `{allowed, remaining, tat, retry_ms}`. Writes nothing on a refusal; an allowed
/// request's TAT expires when the bucket is full again. Lua numbers are doubles: every value
/// here is an integer far below 2^53.
const GCRA_LUA: &str = r"
local now
if ARGV[3] then
  now = tonumber(ARGV[3])
else
  local time = redis.call('TIME')
  now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
end
local t = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local tau = t * limit
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local new_tat = tat + t
local used = new_tat - now
if used > tau then
  return {0, 0, tat, used - tau}
end
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', string.format('%d', used))
return {1, math.floor((tau - used) / t), new_tat, 0}
";

/// The script, hashed once; `invoke_async` sends EVALSHA, and the script itself only after a
/// NOSCRIPT (a restarted or new Redis).
static GCRA_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(GCRA_LUA));

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn from_ms(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

/// [`Store`] on a Redis server.
pub struct RedisStore {
    client: Client,
    conn: ConnectionManager,
    /// Clusters whose bell this replica listens to; replayed after a reconnect.
    watched: Arc<Mutex<HashSet<String>>>,
    /// Tells the subscription task to (un)subscribe a channel.
    control: Mutex<Option<mpsc::UnboundedSender<Control>>>,
}

enum Control {
    Subscribe(String),
    Unsubscribe(String),
}

impl RedisStore {
    /// Connects to `url` (`redis://host:port/db`). Fails if the server cannot be reached now;
    /// later outages are survived by reconnecting.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        let client = Client::open(url)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(5)))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        let conn = ConnectionManager::new_with_config(client.clone(), config).await?;
        Ok(Self {
            client,
            conn,
            watched: Arc::default(),
            control: Mutex::new(None),
        })
    }

    fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    fn send(&self, control: Control) {
        let guard = self.control.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tx) = guard.as_ref() {
            let _ = tx.send(control);
        }
    }

    /// [`Store::rate_limit`] decided at `now_ms` instead of by Redis's clock, so that tests can
    /// compare the script with [`ratelimit::gcra`] step by step.
    pub async fn rate_limit_at(
        &self,
        key: &str,
        limit: u32,
        period: Duration,
        now_ms: u64,
    ) -> StoreResult<Decision> {
        self.gcra(key, limit, period, Some(now_ms)).await
    }

    async fn gcra(
        &self,
        key: &str,
        limit: u32,
        period: Duration,
        now_ms: Option<u64>,
    ) -> StoreResult<Decision> {
        let limit = limit.max(1);
        let t = ratelimit::emission_interval_ms(period.as_millis() as u64, limit);
        let mut invocation = GCRA_SCRIPT.key(key);
        invocation.arg(t).arg(limit);
        if let Some(now_ms) = now_ms {
            invocation.arg(now_ms);
        }
        let mut conn = self.conn();
        let (allowed, remaining, tat, retry_ms): (i64, i64, i64, i64) =
            invocation.invoke_async(&mut conn).await?;
        let unsigned = |n: i64| {
            u64::try_from(n).map_err(|_| StoreError::Corrupt {
                key: key.to_owned(),
                reason: format!("rate limit script answered a negative number ({n})"),
            })
        };
        Ok(Decision::from_gcra(
            allowed == 1,
            limit,
            unsigned(remaining)?,
            unsigned(tat)?,
            unsigned(retry_ms)?,
        ))
    }

    async fn ensure_group(&self, cluster_id: &str) -> StoreResult<()> {
        let mut conn = self.conn();
        let created: Result<(), RedisError> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(queue_key(cluster_id))
            .arg(GROUP)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut conn)
            .await;
        match created {
            Err(e) if e.code() != Some("BUSYGROUP") => Err(e.into()),
            _ => Ok(()),
        }
    }
}

/// Runs the subscription: forwards bells and replies, resubscribing after outages.
async fn run_subscription(
    client: Client,
    broker_id: String,
    watched: Arc<Mutex<HashSet<String>>>,
    mut control: mpsc::UnboundedReceiver<Control>,
    events: mpsc::Sender<StoreEvent>,
) {
    let reply = reply_channel(&broker_id);
    loop {
        let pubsub = match client.get_async_pubsub().await {
            Ok(p) => p,
            Err(e) => {
                debug!(error = %e, "redis subscription unavailable; retrying");
                tokio::time::sleep(RESUBSCRIBE_DELAY).await;
                continue;
            }
        };
        let (mut sink, mut stream) = pubsub.split();
        let mut channels = vec![reply.clone(), CREDENTIAL_CHANNEL.to_owned()];
        channels.extend(
            watched
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .map(|c| bell_channel(c)),
        );
        if let Err(e) = sink.subscribe(&channels).await {
            warn!(error = %e, "redis subscribe failed; retrying");
            tokio::time::sleep(RESUBSCRIBE_DELAY).await;
            continue;
        }
        // Commands may have been queued while we were not listening: ring every bell once.
        for cluster in channels.iter().filter_map(|c| c.strip_prefix("kl:bell:")) {
            let _ = events.try_send(StoreEvent::Queued(cluster.to_owned()));
        }
        loop {
            tokio::select! {
                msg = stream.next() => {
                    let Some(msg) = msg else { break };
                    let channel = msg.get_channel_name();
                    if let Some(cluster) = channel.strip_prefix("kl:bell:") {
                        let _ = events.try_send(StoreEvent::Queued(cluster.to_owned()));
                    } else if channel == CREDENTIAL_CHANNEL {
                        let id = String::from_utf8_lossy(msg.get_payload_bytes()).into_owned();
                        if events.send(StoreEvent::CredentialChanged(id)).await.is_err() {
                            return;
                        }
                    } else if channel == reply {
                        match serde_json::from_slice::<CommandResult>(msg.get_payload_bytes()) {
                            Ok(result) => {
                                if events.send(StoreEvent::Result(Box::new(result))).await.is_err() {
                                    return;
                                }
                            }
                            Err(e) => warn!(error = %e, "unreadable result on reply channel"),
                        }
                    }
                }
                ctl = control.recv() => {
                    let outcome = match ctl {
                        None => return,
                        Some(Control::Subscribe(c)) => sink.subscribe(c).await,
                        Some(Control::Unsubscribe(c)) => sink.unsubscribe(c).await,
                    };
                    if let Err(e) = outcome {
                        warn!(error = %e, "redis (un)subscribe failed; resubscribing");
                        break;
                    }
                }
                () = events.closed() => return,
            }
        }
        warn!("redis subscription lost; resubscribing");
        tokio::time::sleep(RESUBSCRIBE_DELAY).await;
    }
}

fn field<T: redis::FromRedisValue>(entry: &StreamId, name: &str) -> StoreResult<T> {
    entry.get(name).ok_or_else(|| StoreError::Corrupt {
        key: entry.id.clone(),
        reason: format!("missing field {name}"),
    })
}

fn decode_command(cluster_id: &str, entry: &StreamId) -> StoreResult<QueuedCommand> {
    let args: String = field(entry, "args")?;
    let args = serde_json::from_str(&args).map_err(|e| StoreError::Corrupt {
        key: entry.id.clone(),
        reason: e.to_string(),
    })?;
    Ok(QueuedCommand {
        entry_id: entry.id.clone(),
        result_id: field(entry, "result")?,
        session_id: field(entry, "session")?,
        cluster_id: cluster_id.to_owned(),
        command_type: field(entry, "type")?,
        args,
        executed_at: from_ms(field(entry, "at")?),
        deadline: from_ms(field(entry, "deadline")?),
        max_output_bytes: field(entry, "budget")?,
        correlation_id: field(entry, "corr")?,
        reply_to: field(entry, "reply")?,
        // Optional: entries queued by brokers that predate trace context lack them.
        trace: entry
            .get::<String>("tp")
            .filter(|tp| !tp.is_empty())
            .map(|traceparent| TraceContext {
                traceparent,
                tracestate: entry.get::<String>("ts").filter(|ts| !ts.is_empty()),
            }),
    })
}

fn decode_session(id: &str, map: HashMap<String, String>) -> StoreResult<Option<SessionRecord>> {
    if map.is_empty() {
        return Ok(None);
    }
    let corrupt = |reason: &str| StoreError::Corrupt {
        key: session_key(id),
        reason: reason.to_owned(),
    };
    let int = |name: &str| -> StoreResult<i64> {
        map.get(name)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| corrupt(name))
    };
    Ok(Some(SessionRecord {
        session_id: id.to_owned(),
        cluster_id: map
            .get("cluster")
            .cloned()
            .ok_or_else(|| corrupt("cluster"))?,
        created_at: from_ms(int("created")?),
        expires_at: from_ms(int("expires")?),
        closed_at: map.get("closed").and_then(|v| v.parse().ok()).map(from_ms),
        last_activity: from_ms(int("activity")?),
        commands_executed: map
            .get("commands")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
        metadata: map.get("metadata").cloned(),
        owner: map.get("owner").cloned(),
    }))
}

fn decode_result(key: &str, raw: &str) -> StoreResult<CommandResult> {
    serde_json::from_str(raw).map_err(|e| StoreError::Corrupt {
        key: key.to_owned(),
        reason: e.to_string(),
    })
}

fn decode_credential(
    key: &str,
    raw: Option<String>,
    used: Option<i64>,
) -> StoreResult<Option<CredentialRecord>> {
    let Some(raw) = raw else { return Ok(None) };
    let mut record: CredentialRecord =
        serde_json::from_str(&raw).map_err(|e| StoreError::Corrupt {
            key: key.to_owned(),
            reason: e.to_string(),
        })?;
    record.last_used_at = used.map(from_ms).or(record.last_used_at);
    Ok(Some(record))
}

fn to_json(result: &CommandResult) -> String {
    serde_json::to_string(result).expect("a CommandResult always serializes")
}

#[async_trait]
impl Store for RedisStore {
    async fn ping(&self) -> StoreResult<()> {
        let mut conn = self.conn();
        let _: String = redis::cmd("PING").query_async(&mut conn).await?;
        Ok(())
    }

    async fn subscribe(
        &self,
        broker_id: &str,
        events: mpsc::Sender<StoreEvent>,
    ) -> StoreResult<()> {
        let (tx, rx) = mpsc::unbounded_channel();
        *self.control.lock().unwrap_or_else(|e| e.into_inner()) = Some(tx);
        tokio::spawn(run_subscription(
            self.client.clone(),
            broker_id.to_owned(),
            self.watched.clone(),
            rx,
            events,
        ));
        Ok(())
    }

    async fn watch_cluster(&self, cluster_id: &str) -> StoreResult<()> {
        self.ensure_group(cluster_id).await?;
        let added = self
            .watched
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(cluster_id.to_owned());
        if added {
            self.send(Control::Subscribe(bell_channel(cluster_id)));
        }
        Ok(())
    }

    async fn unwatch_cluster(&self, cluster_id: &str) -> StoreResult<()> {
        let removed = self
            .watched
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(cluster_id);
        if removed {
            self.send(Control::Unsubscribe(bell_channel(cluster_id)));
        }
        Ok(())
    }

    async fn create_session(&self, session: &SessionRecord, retain: Duration) -> StoreResult<()> {
        let key = session_key(&session.session_id);
        let mut fields: Vec<(&str, String)> = vec![
            ("cluster", session.cluster_id.clone()),
            ("created", ms(session.created_at).to_string()),
            ("expires", ms(session.expires_at).to_string()),
            ("activity", ms(session.last_activity).to_string()),
            ("commands", session.commands_executed.to_string()),
        ];
        if let Some(metadata) = &session.metadata {
            fields.push(("metadata", metadata.clone()));
        }
        if let Some(owner) = &session.owner {
            fields.push(("owner", owner.clone()));
        }
        let keep_until = ms(session.expires_at) + retain.as_millis() as i64;
        let mut conn = self.conn();
        redis::pipe()
            .atomic()
            .hset_multiple(&key, &fields)
            .ignore()
            .cmd("PEXPIREAT")
            .arg(&key)
            .arg(keep_until)
            .ignore()
            .zadd(SESSIONS, &session.session_id, ms(session.created_at))
            .ignore()
            .exec_async(&mut conn)
            .await?;
        Ok(())
    }

    async fn get_session(&self, session_id: &str) -> StoreResult<Option<SessionRecord>> {
        let mut conn = self.conn();
        let map: HashMap<String, String> = conn.hgetall(session_key(session_id)).await?;
        decode_session(session_id, map)
    }

    async fn close_session(
        &self,
        session_id: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<Option<SessionRecord>> {
        let mut conn = self.conn();
        // Keeps the first close time, and never creates a hash for an unknown session.
        let script = redis::Script::new(
            r"if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
              redis.call('HSETNX', KEYS[1], 'closed', ARGV[1])
              return 1",
        );
        let exists: i64 = script
            .key(session_key(session_id))
            .arg(ms(at))
            .invoke_async(&mut conn)
            .await?;
        if exists == 0 {
            return Ok(None);
        }
        self.get_session(session_id).await
    }

    async fn list_sessions(&self) -> StoreResult<Vec<SessionRecord>> {
        let mut conn = self.conn();
        let ids: Vec<String> = conn.zrevrange(SESSIONS, 0, -1).await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in &ids {
            pipe.hgetall(session_key(id));
        }
        let maps: Vec<HashMap<String, String>> = pipe.query_async(&mut conn).await?;
        let mut out = Vec::with_capacity(ids.len());
        let mut gone = Vec::new();
        for (id, map) in ids.iter().zip(maps) {
            match decode_session(id, map)? {
                Some(s) => out.push(s),
                None => gone.push(id.clone()),
            }
        }
        if !gone.is_empty() {
            let _: () = conn.zrem(SESSIONS, gone).await?;
        }
        Ok(out)
    }

    async fn link_cluster(&self, record: &ClusterRecord, ttl: Duration) -> StoreResult<()> {
        let cluster = &record.cluster_id;
        let broker = record.broker_id.clone().unwrap_or_default();
        let mut fields = vec![("broker", broker.clone())];
        if let Some(v) = &record.agent_version {
            fields.push(("agent_version", v.clone()));
        }
        if let Some(v) = &record.kubernetes_version {
            fields.push(("kubernetes_version", v.clone()));
        }
        if let Some(t) = record.last_seen {
            fields.push(("last_seen", ms(t).to_string()));
        }
        // Always written: an agent that links again without labels clears the old ones.
        fields.push((
            "labels",
            serde_json::to_string(&record.labels).expect("a map of strings serializes"),
        ));
        let mut conn = self.conn();
        redis::pipe()
            .cmd("SET")
            .arg(link_key(cluster))
            .arg(&broker)
            .arg("PX")
            .arg(ttl.as_millis() as u64)
            .ignore()
            .hset_multiple(info_key(cluster), &fields)
            .ignore()
            .sadd(CLUSTERS, cluster)
            .ignore()
            .exec_async(&mut conn)
            .await?;
        Ok(())
    }

    async fn touch_cluster(
        &self,
        cluster_id: &str,
        broker_id: &str,
        last_seen: DateTime<Utc>,
        ttl: Duration,
    ) -> StoreResult<()> {
        let mut conn = self.conn();
        // Re-assert the claim only if this replica still holds it (or it lapsed while the
        // link stayed up); a newer link on another replica keeps its claim.
        let script = redis::Script::new(
            r"local cur = redis.call('GET', KEYS[1])
              if cur == false or cur == ARGV[1] then
                redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
              end
              redis.call('HSET', KEYS[2], 'last_seen', ARGV[3])
              return 1",
        );
        let _: i64 = script
            .key(link_key(cluster_id))
            .key(info_key(cluster_id))
            .arg(broker_id)
            .arg(ttl.as_millis() as u64)
            .arg(ms(last_seen))
            .invoke_async(&mut conn)
            .await?;
        Ok(())
    }

    async fn unlink_cluster(
        &self,
        cluster_id: &str,
        broker_id: &str,
        last_seen: DateTime<Utc>,
    ) -> StoreResult<()> {
        let mut conn = self.conn();
        let script = redis::Script::new(
            r"if redis.call('GET', KEYS[1]) == ARGV[1] then
                redis.call('DEL', KEYS[1])
              end
              redis.call('HSET', KEYS[2], 'last_seen', ARGV[2])
              return 1",
        );
        let _: i64 = script
            .key(link_key(cluster_id))
            .key(info_key(cluster_id))
            .arg(broker_id)
            .arg(ms(last_seen))
            .invoke_async(&mut conn)
            .await?;
        Ok(())
    }

    async fn get_cluster(&self, cluster_id: &str) -> StoreResult<Option<ClusterRecord>> {
        let mut conn = self.conn();
        let (link, info): (Option<String>, HashMap<String, String>) = redis::pipe()
            .get(link_key(cluster_id))
            .hgetall(info_key(cluster_id))
            .query_async(&mut conn)
            .await?;
        if link.is_none() && info.is_empty() {
            return Ok(None);
        }
        Ok(Some(ClusterRecord {
            cluster_id: cluster_id.to_owned(),
            broker_id: link,
            agent_version: info.get("agent_version").cloned(),
            kubernetes_version: info.get("kubernetes_version").cloned(),
            last_seen: info
                .get("last_seen")
                .and_then(|v| v.parse().ok())
                .map(from_ms),
            labels: match info.get("labels") {
                None => Default::default(),
                Some(json) => serde_json::from_str(json).map_err(|e| StoreError::Corrupt {
                    key: info_key(cluster_id),
                    reason: format!("labels: {e}"),
                })?,
            },
        }))
    }

    async fn list_clusters(&self) -> StoreResult<Vec<ClusterRecord>> {
        let mut conn = self.conn();
        let mut ids: Vec<String> = conn.smembers(CLUSTERS).await?;
        ids.sort();
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(record) = self.get_cluster(&id).await? {
                out.push(record);
            }
        }
        Ok(out)
    }

    async fn enqueue(
        &self,
        command: &QueuedCommand,
        pending: &CommandResult,
        result_ttl: Duration,
        ring: bool,
    ) -> StoreResult<()> {
        let args = serde_json::to_string(&command.args).expect("strings always serialize");
        let (traceparent, tracestate) = command.trace.as_ref().map_or_else(Default::default, |t| {
            (
                t.traceparent.clone(),
                t.tracestate.clone().unwrap_or_default(),
            )
        });
        let fields: [(&str, String); 12] = [
            ("result", command.result_id.clone()),
            ("session", command.session_id.clone()),
            ("type", command.command_type.clone()),
            ("args", args),
            ("at", ms(command.executed_at).to_string()),
            ("deadline", ms(command.deadline).to_string()),
            ("budget", command.max_output_bytes.to_string()),
            ("corr", command.correlation_id.clone()),
            ("reply", command.reply_to.clone()),
            ("tp", traceparent),
            ("ts", tracestate),
            ("v", "1".to_owned()),
        ];
        let session = session_key(&command.session_id);
        let mut pipe = redis::pipe();
        pipe.set_ex(
            pending_key(&pending.result_id),
            to_json(pending),
            result_ttl.as_secs().max(1),
        )
        .ignore()
        .hincr(&session, "commands", 1)
        .ignore()
        .hset(&session, "activity", ms(command.executed_at))
        .ignore()
        .xadd(queue_key(&command.cluster_id), "*", &fields)
        .ignore();
        if ring {
            pipe.publish(bell_channel(&command.cluster_id), "").ignore();
        }
        let mut conn = self.conn();
        pipe.exec_async(&mut conn).await?;
        Ok(())
    }

    async fn take(
        &self,
        cluster_id: &str,
        consumer: &str,
        max: usize,
    ) -> StoreResult<Vec<QueuedCommand>> {
        let key = queue_key(cluster_id);
        let opts = StreamReadOptions::default()
            .group(GROUP, consumer)
            .count(max);
        let mut conn = self.conn();
        let reply: Result<StreamReadReply, RedisError> =
            conn.xread_options(&[&key], &[">"], &opts).await;
        let reply = match reply {
            Ok(reply) => reply,
            // The group is made when a link is attached; a Redis that restarted empty has lost
            // it, so make it again (from the start of the stream) and read once more.
            Err(e) if e.code() == Some("NOGROUP") => {
                self.ensure_group(cluster_id).await?;
                conn.xread_options(&[&key], &[">"], &opts).await?
            }
            Err(e) => return Err(e.into()),
        };
        reply
            .keys
            .iter()
            .flat_map(|stream| &stream.ids)
            .map(|entry| decode_command(cluster_id, entry))
            .collect()
    }

    async fn reclaim(
        &self,
        cluster_id: &str,
        consumer: &str,
        max: usize,
        abandoned_after: Duration,
    ) -> StoreResult<Vec<QueuedCommand>> {
        let mut conn = self.conn();
        let claimed: Result<StreamAutoClaimReply, RedisError> = redis::cmd("XAUTOCLAIM")
            .arg(queue_key(cluster_id))
            .arg(GROUP)
            .arg(consumer)
            .arg(abandoned_after.as_millis() as u64)
            .arg("0")
            .arg("COUNT")
            .arg(max)
            .query_async(&mut conn)
            .await;
        match claimed {
            Ok(reply) => reply
                .claimed
                .iter()
                .map(|entry| decode_command(cluster_id, entry))
                .collect(),
            Err(e) if e.code() == Some("NOGROUP") => Ok(Vec::new()),
            Err(e) => Err(e.into()),
        }
    }

    async fn keep_alive(
        &self,
        cluster_id: &str,
        consumer: &str,
        entry_ids: &[String],
    ) -> StoreResult<()> {
        if entry_ids.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn();
        let _: Value = redis::cmd("XCLAIM")
            .arg(queue_key(cluster_id))
            .arg(GROUP)
            .arg(consumer)
            .arg(0)
            .arg(entry_ids)
            .arg("JUSTID")
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    async fn queue_depth(&self, cluster_id: &str) -> StoreResult<u64> {
        let mut conn = self.conn();
        Ok(conn.xlen(queue_key(cluster_id)).await?)
    }

    async fn finish_result(
        &self,
        result: &CommandResult,
        ttl: Duration,
        entry_id: Option<&str>,
    ) -> StoreResult<bool> {
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(result_key(&result.result_id))
            .arg(to_json(result))
            .arg("NX")
            .arg("EX")
            .arg(ttl.as_secs().max(1));
        if let Some(entry_id) = entry_id {
            let key = queue_key(&result.cluster_id);
            pipe.xack(&key, GROUP, &[entry_id])
                .ignore()
                .xdel(&key, &[entry_id])
                .ignore();
        }
        let mut conn = self.conn();
        let (won,): (Option<String>,) = pipe.query_async(&mut conn).await?;
        Ok(won.is_some())
    }

    async fn get_result(&self, result_id: &str) -> StoreResult<Option<CommandResult>> {
        let mut conn = self.conn();
        let (done, pending): (Option<String>, Option<String>) = redis::pipe()
            .get(result_key(result_id))
            .get(pending_key(result_id))
            .query_async(&mut conn)
            .await?;
        match (done, pending) {
            (Some(raw), _) => decode_result(&result_key(result_id), &raw).map(Some),
            (None, Some(raw)) => decode_result(&pending_key(result_id), &raw).map(Some),
            (None, None) => Ok(None),
        }
    }

    async fn deliver_result(&self, broker_id: &str, result: &CommandResult) -> StoreResult<()> {
        let mut conn = self.conn();
        let _: i64 = conn
            .publish(reply_channel(broker_id), to_json(result))
            .await?;
        Ok(())
    }

    // --- credentials ---

    async fn put_credential(
        &self,
        record: &CredentialRecord,
        only_if_new: bool,
    ) -> StoreResult<bool> {
        let key = credential_key(&record.id);
        let json = serde_json::to_string(record).expect("a credential always serializes");
        let mut conn = self.conn();
        if only_if_new {
            let set: Option<String> = redis::cmd("SET")
                .arg(&key)
                .arg(&json)
                .arg("NX")
                .query_async(&mut conn)
                .await?;
            if set.is_none() {
                return Ok(false);
            }
        }
        let mut pipe = redis::pipe();
        pipe.atomic();
        if !only_if_new {
            pipe.set(&key, &json).ignore();
        }
        pipe.set(credential_hash_key(&record.hash), &record.id)
            .ignore()
            .zadd(CREDENTIALS, &record.id, ms(record.created_at))
            .ignore();
        pipe.exec_async(&mut conn).await?;
        Ok(true)
    }

    async fn credential_by_hash(&self, hash: &str) -> StoreResult<Option<CredentialRecord>> {
        let mut conn = self.conn();
        let id: Option<String> = conn.get(credential_hash_key(hash)).await?;
        match id {
            Some(id) => {
                let raw: Option<String> = conn.get(credential_key(&id)).await?;
                decode_credential(&credential_key(&id), raw, None)
            }
            None => Ok(None),
        }
    }

    async fn get_credential(&self, id: &str) -> StoreResult<Option<CredentialRecord>> {
        let key = credential_key(id);
        let mut conn = self.conn();
        let (raw, used): (Option<String>, Option<i64>) = redis::pipe()
            .get(&key)
            .hget(CREDENTIALS_USED, id)
            .query_async(&mut conn)
            .await?;
        decode_credential(&key, raw, used)
    }

    async fn list_credentials(&self) -> StoreResult<Vec<CredentialRecord>> {
        let mut conn = self.conn();
        let ids: Vec<String> = conn.zrange(CREDENTIALS, 0, -1).await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = ids.iter().map(|id| credential_key(id)).collect();
        let (raws, used): (Vec<Option<String>>, HashMap<String, i64>) = redis::pipe()
            .mget(&keys)
            .hgetall(CREDENTIALS_USED)
            .query_async(&mut conn)
            .await?;
        let mut records = Vec::with_capacity(ids.len());
        for ((id, key), raw) in ids.iter().zip(&keys).zip(raws) {
            if let Some(record) = decode_credential(key, raw, used.get(id).copied())? {
                records.push(record);
            }
        }
        Ok(records)
    }

    async fn touch_credential(&self, id: &str, at: DateTime<Utc>) -> StoreResult<()> {
        let mut conn = self.conn();
        let _: i64 = conn.hset(CREDENTIALS_USED, id, ms(at)).await?;
        Ok(())
    }

    async fn announce_credential_change(&self, id: &str) -> StoreResult<()> {
        let mut conn = self.conn();
        let _: i64 = conn.publish(CREDENTIAL_CHANNEL, id).await?;
        Ok(())
    }

    // --- rate limits ---

    async fn rate_limit(&self, key: &str, limit: u32, period: Duration) -> StoreResult<Decision> {
        self.gcra(key, limit, period, None).await
    }

    // --- audit ---

    async fn append_audit(&self, chain: &str, records: &[String], max_len: u64) -> StoreResult<()> {
        let Some(last) = records.last() else {
            return Ok(());
        };
        // MULTI/EXEC: the records and the head land together or not at all, so a failed append
        // leaves no part of a batch behind for the chain to skip over.
        let mut pipe = redis::pipe();
        pipe.atomic();
        for record in records {
            pipe.cmd("XADD")
                .arg(AUDIT)
                .arg("MAXLEN")
                .arg("~")
                .arg(max_len)
                .arg("*")
                .arg("r")
                .arg(record)
                .ignore();
        }
        pipe.cmd("SET")
            .arg(audit_head_key(chain))
            .arg(last)
            .arg("EX")
            .arg(AUDIT_HEAD_TTL.as_secs())
            .ignore();
        let mut conn = self.conn();
        pipe.exec_async(&mut conn).await?;
        Ok(())
    }

    async fn audit_head(&self, chain: &str) -> StoreResult<Option<String>> {
        let mut conn = self.conn();
        Ok(conn.get(audit_head_key(chain)).await?)
    }

    async fn read_audit(
        &self,
        before: Option<&str>,
        count: usize,
    ) -> StoreResult<Vec<(String, String)>> {
        if count == 0 {
            return Ok(Vec::new());
        }
        // `(ID` is an exclusive bound (Redis 6.2 and later).
        let end = before.map_or_else(|| "+".to_owned(), |c| format!("({c}"));
        let mut conn = self.conn();
        let reply: StreamRangeReply = conn.xrevrange_count(AUDIT, end, "-", count).await?;
        // An entry without a record reads as an empty one: verification reports it rather than
        // letting it stop every read past it.
        Ok(reply
            .ids
            .iter()
            .map(|entry| {
                let record = entry.get::<String>("r").unwrap_or_default();
                (entry.id.clone(), record)
            })
            .collect())
    }
}
