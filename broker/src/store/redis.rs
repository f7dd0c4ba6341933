//! The Redis store, shared by every broker replica: on one Redis server (`redis://`,
//! `rediss://`) or on a Redis Cluster (`redis+cluster://`, `rediss+cluster://`).
//!
//! ## Key layout
//!
//! Redis Cluster runs a MULTI, a Lua script or a pipeline only when every key it names hashes
//! to one slot, and a key's slot is that of its `{hash tag}` when it has one. The layout is
//! chosen so that every step that must be atomic touches one slot:
//! - everything about one cluster C (queue, presence, info, bell) carries the tag `{C}`: an
//!   execute's queue entry and the bell that announces it go in one pipeline, and the link
//!   scripts see the claim and the info hash together;
//! - the webhook outbox is under one tag, `{wh}`: its scripts move deliveries between several
//!   of its keys at once (it is small and its traffic is low, so one slot is no bottleneck);
//! - a replica's audit head is tagged `{kl:audit}`, which hashes like the stream `kl:audit`
//!   itself, so records and head land in one MULTI;
//! - results, sessions and credentials are keyed by their own ids (they spread over the
//!   slots; a reader knows the id only). Steps that touch them and something else are not
//!   atomic and need not be: they are sent as one request per slot, all at once (one round
//!   trip), ordered where a failure in between matters (see `finish_result`).
//!
//! Global indexes (`kl:sessions`, `kl:clusters`, `kl:linked`, `kl:creds`, …) are one key each,
//! in whichever slot its name hashes to: listing reads the index, then the records it names,
//! all at once. Nothing scans the key space.
//!
//! | key | type | what |
//! |---|---|---|
//! | `kl:{C}:q` | stream, group `kl` | commands queued for cluster C; an entry leaves on ack |
//! | `kl:{C}:link` | string with TTL | broker replica holding C's agent link (presence) |
//! | `kl:{C}:info` | hash | agent version, Kubernetes version, last seen, labels (JSON object) |
//! | `kl:clusters` | set | every cluster that ever linked |
//! | `kl:session:ID` | hash with expiry | a session |
//! | `kl:sessions` | sorted set | session ids by creation time, for listing |
//! | `kl:result:ID` / `kl:pending:ID` | string with TTL | final result (`--result-ttl`) / pending placeholder (until [`PLACEHOLDER_GRACE`] after the command's deadline, `--result-ttl` at most) |
//! | `kl:cred:ID` | string (JSON) | a credential (API key or agent token): hash, scope, clusters, expiry, revocation |
//! | `kl:credhash:HASH` | string | the credential id whose secret hashes to HASH |
//! | `kl:creds` | sorted set | credential ids by creation time, for listing |
//! | `kl:cred:used` | hash | credential id → last use (epoch ms) |
//! | `kl:rl:CLASS:ID` | string with TTL | rate limit bucket of credential ID: its TAT in Unix ms |
//! | `kl:audit` | stream, field `r` | audit records (JSON), all replicas; `MAXLEN ~` trimmed |
//! | `{kl:audit}:head:B` | string with TTL | the last audit record replica B wrote |
//! | `kl:alive:B` | string with TTL | replica B is alive (refreshed every `alive_ttl / 4`) |
//! | `kl:idem:ID:HASH` | string with TTL | the execute an `Idempotency-Key` (hashed) of credential ID named |
//! | `kl:linked` | sorted set | clusters announced connected, by when their claim was last known to end (ms): where [`Store::lapsed_links`] looks |
//! | `kl:session:expiry` | sorted set | session ids by expiry (ms), until the `session.expired` scan handles them |
//! | `kl:{wh}:ep:ID` | string (JSON) | webhook endpoint ID: URL, event types, signing secret |
//! | `kl:{wh}:eps` | sorted set | endpoint ids by creation time |
//! | `kl:{wh}:sub:TYPE` | set | enabled endpoint ids subscribed to event TYPE |
//! | `kl:{wh}:off` | hash | endpoint id → JSON `{at, reason}` once disabled |
//! | `kl:{wh}:dropped` | hash | endpoint id → events not queued (pending bound reached) |
//! | `kl:{wh}:d:MSG` | hash | delivery MSG: endpoint, event, type, body, times, attempts, status, history, lease |
//! | `kl:{wh}:due` | sorted set | pending delivery ids by next attempt (ms); a lease pushes it to the lease's end |
//! | `kl:{wh}:pend:ID` / `kl:{wh}:log:ID` | sorted set | endpoint ID's pending / finished (newest 100) delivery ids by creation |
//!
//! A cluster's info hash also holds `up` (`1` while the cluster is announced connected): the
//! link scripts flip it, so connect and disconnect announcements alternate.
//!
//! ## Channels
//!
//! | channel | on a cluster | what |
//! |---|---|---|
//! | `kl:bell:{C}` | sharded (`SPUBLISH`/`SSUBSCRIBE`), C's queue slot | rings the replica holding C's link when a command is queued; with a result id as payload, tells it that the command's caller went away (a stream to cancel) |
//! | `kl:reply:{B}` | sharded, B's own slot | finished results for replica B, whose callers wait, and the pieces of the streams its callers read (`S` + JSON) |
//! | `kl:credentials` | ordinary (`PUBLISH` reaches every node) | a credential was revoked or shortened: every replica drops it |
//! | `kl:events:C` | ordinary | C's session events, for the replicas with readers of them |
//! | `kl:events-interest` | ordinary | which clusters have readers of their session events (so nobody publishes unread events) |
//!
//! On one server the same names are ordinary channels (Redis 6.2 has no sharded pub/sub).
//! A missed bell costs at most the pump's poll interval; a missed reply, the caller's wait
//! until its deadline, when the stored result is read.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use futures::StreamExt;
use kubeline_shared::api::CommandResult;
use kubeline_shared::trace::TraceContext;
use redis::aio::ConnectionManager;
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::streams::{
    StreamAutoClaimReply, StreamId, StreamRangeReply, StreamReadOptions, StreamReadReply,
};
use redis::{AsyncCommands, Client, IntoConnectionInfo, PushKind, RedisError, Value};
use tokio::sync::mpsc;
use tracing::{debug, warn};

use kubeline_shared::webhooks::{DeliveryAttempt, DeliveryStatus, EventType};

use super::{
    ClusterRecord, CredentialRecord, DeliveryRecord, EmitOutcome, KEPT_DELIVERIES, LinkChange,
    OutboxEvent, QueuedCommand, SessionRecord, Standing, Store, StoreError, StoreEvent,
    StoreResult, StreamRelay, WebhookRecord,
};
use crate::ratelimit::{self, Decision};

/// The consumers with pending entries in an `XPENDING` summary reply.
fn pending_consumers(summary: &Value) -> Vec<String> {
    let Value::Array(parts) = summary else {
        return Vec::new();
    };
    let Some(Value::Array(consumers)) = parts.get(3) else {
        return Vec::new();
    };
    consumers
        .iter()
        .filter_map(|c| match c {
            Value::Array(pair) => match pair.first() {
                Some(Value::BulkString(name)) => String::from_utf8(name.clone()).ok(),
                Some(Value::SimpleString(name)) => Some(name.clone()),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// Sets KEYS[1] to ARGV[2] (for ARGV[3] ms) if it holds ARGV[1] (compare and set).
static SWAP_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        "if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) return 1 end return 0",
    )
});

/// Deletes KEYS[1] if it holds ARGV[1] (compare and delete, in one step).
static RELEASE_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0",
    )
});

const GROUP: &str = "kl";
const SESSIONS: &str = "kl:sessions";
const CLUSTERS: &str = "kl:clusters";
const CREDENTIALS: &str = "kl:creds";
const CREDENTIALS_USED: &str = "kl:cred:used";
const CREDENTIAL_CHANNEL: &str = "kl:credentials";
/// Delay between attempts to re-establish the subscription after Redis went away.
const RESUBSCRIBE_DELAY: Duration = Duration::from_millis(500);
/// The longest a request to a Redis Cluster waits, retries included: more than a failover takes
/// with a `cluster-node-timeout` of a few seconds, less than a caller's default timeout.
const REQUEST_DEADLINE: Duration = Duration::from_secs(8);
/// Attempts of a cluster request (after MOVED, ASK, TRYAGAIN or a lost node) before it fails.
const CLUSTER_RETRIES: u32 = 12;
/// How long a pending placeholder outlives its command's deadline. At the deadline the replica
/// whose caller waits records a final result (`timeout` when nothing else came), so a
/// placeholder still there past the grace has no final result coming: the replica died while
/// its caller waited, or a failover lost the final result after the caller was answered. It
/// then expires, and reading the result is a 404, instead of `pending` until `--result-ttl`.
pub const PLACEHOLDER_GRACE: Duration = Duration::from_secs(60);

/// Seconds a pending placeholder is kept: until [`PLACEHOLDER_GRACE`] after `deadline`, and
/// never longer than a final result (`result_ttl`), nor less than a second.
fn placeholder_ttl(deadline: DateTime<Utc>, now: DateTime<Utc>, result_ttl: Duration) -> u64 {
    let until_deadline = (deadline - now).to_std().unwrap_or_default();
    (until_deadline + PLACEHOLDER_GRACE)
        .min(result_ttl)
        .as_secs()
        .max(1)
}

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
/// Rings the replica holding `cluster`'s link. Its hash tag is the queue's: in a cluster it is
/// a sharded channel of the queue's slot, published in the enqueue's pipeline.
fn bell_channel(cluster: &str) -> String {
    format!("kl:bell:{{{cluster}}}")
}
/// Session events of a cluster (`GET /debug/events`).
fn events_channel(cluster: &str) -> String {
    format!("kl:events:{cluster}")
}

/// Whether `channel` is a cluster's session event channel.
fn is_events_channel(channel: &str) -> bool {
    channel.starts_with("kl:events:")
}

/// Which clusters' session events some replica's callers read (payload: the cluster id).
const INTEREST_CHANNEL: &str = "kl:events-interest";

/// The cluster of a bell channel.
fn bell_cluster(channel: &str) -> Option<&str> {
    channel.strip_prefix("kl:bell:{")?.strip_suffix('}')
}
/// Carries results to replica `broker`, whose callers wait for them; sharded in a cluster.
/// Replica `broker`'s liveness claim.
fn alive_key(broker: &str) -> String {
    format!("kl:alive:{broker}")
}

fn reply_channel(broker: &str) -> String {
    format!("kl:reply:{{{broker}}}")
}
/// The hash tag `{kl:audit}` hashes like the key `kl:audit` itself, so a replica's head shares
/// the audit stream's slot and both are written in one MULTI.
fn audit_head_key(chain: &str) -> String {
    format!("{{{AUDIT}}}:head:{chain}")
}

/// Clusters announced connected, scored by when their claim was last known to end (ms).
const LINKED: &str = "kl:linked";
/// Session ids by expiry (ms), until the `session.expired` scan forgets them.
const SESSION_EXPIRY: &str = "kl:session:expiry";
const WEBHOOKS: &str = "kl:{wh}:eps";
const WEBHOOKS_OFF: &str = "kl:{wh}:off";
const WEBHOOKS_DROPPED: &str = "kl:{wh}:dropped";
const DELIVERIES_DUE: &str = "kl:{wh}:due";

fn webhook_key(id: &str) -> String {
    format!("kl:{{wh}}:ep:{id}")
}
fn subscribers_key(event: EventType) -> String {
    format!("kl:{{wh}}:sub:{}", event.as_str())
}
fn delivery_key(id: &str) -> String {
    format!("kl:{{wh}}:d:{id}")
}
fn pending_deliveries_key(endpoint: &str) -> String {
    format!("kl:{{wh}}:pend:{endpoint}")
}
fn delivery_log_key(endpoint: &str) -> String {
    format!("kl:{{wh}}:log:{endpoint}")
}

/// A new link claim: `KEYS` link, info; `ARGV` broker, ttl ms, then the info's field/value
/// pairs. Returns 0 (continued: another live claim), 1 (connected) or 2 (the last claim lapsed
/// unannounced: disconnected, then connected).
const LINK_LUA: &str = r"
local live = redis.call('EXISTS', KEYS[1])
local up = redis.call('HGET', KEYS[2], 'up')
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('HSET', KEYS[2], 'up', '1', unpack(ARGV, 3))
if up ~= '1' then return 1 end
if live == 1 then return 0 end
return 2
";

/// Refreshes a claim: `KEYS` link, info; `ARGV` broker, ttl ms, last seen ms. Re-asserts it
/// only if this replica holds it or it lapsed (a newer link on another replica keeps its
/// claim). Returns 1 when a lapsed claim was taken again after its lapse was announced.
const TOUCH_LUA: &str = r"
local cur = redis.call('GET', KEYS[1])
redis.call('HSET', KEYS[2], 'last_seen', ARGV[3])
if cur == false or cur == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  if cur == false and redis.call('HGET', KEYS[2], 'up') ~= '1' then
    redis.call('HSET', KEYS[2], 'up', '1')
    return 1
  end
end
return 0
";

/// Drops a claim held by `ARGV[1]`: `KEYS` link, info; `ARGV` broker, last seen ms. Returns 1
/// when the cluster is disconnected by it (to announce).
const UNLINK_LUA: &str = r"
redis.call('HSET', KEYS[2], 'last_seen', ARGV[2])
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
if redis.call('HGET', KEYS[2], 'up') == '1' then
  redis.call('HSET', KEYS[2], 'up', '0')
  return 1
end
return 0
";

/// Looks at a claim that may have lapsed: `KEYS` link, info. Returns its remaining ms when it
/// is live, -1 when it lapsed while announced connected (now announced disconnected: the
/// caller tells), -2 otherwise.
const LAPSE_LUA: &str = r"
local ttl = redis.call('PTTL', KEYS[1])
if ttl > 0 then return ttl end
if redis.call('HGET', KEYS[2], 'up') == '1' then
  redis.call('HSET', KEYS[2], 'up', '0')
  return -1
end
return -2
";

/// Forgets a cluster in `kl:linked` unless its score moved past `ARGV[2]` (a new claim).
const UNLIST_LUA: &str = r"
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if score and tonumber(score) <= tonumber(ARGV[2]) then
  redis.call('ZREM', KEYS[1], ARGV[1])
end
return 0
";

/// Stores an endpoint unless `ARGV[3]` are stored: `KEYS` ep, eps; `ARGV` id, json, max,
/// created ms, then the subscription keys.
const PUT_WEBHOOK_LUA: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 and redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[3]) then
  return 0
end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
for i = 5, #ARGV do redis.call('SADD', ARGV[i], ARGV[1]) end
return 1
";

/// Removes an endpoint and every delivery of it: `KEYS` ep, eps, pend, log, due, off,
/// dropped; `ARGV` id, then every subscription key. Returns the endpoint's JSON, or false.
const DELETE_WEBHOOK_LUA: &str = r"
local json = redis.call('GET', KEYS[1])
if not json then return false end
for _, k in ipairs({KEYS[3], KEYS[4]}) do
  for _, d in ipairs(redis.call('ZRANGE', k, 0, -1)) do
    redis.call('DEL', 'kl:{wh}:d:' .. d)
    redis.call('ZREM', KEYS[5], d)
  end
end
redis.call('DEL', KEYS[1], KEYS[3], KEYS[4])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[6], ARGV[1])
redis.call('HDEL', KEYS[7], ARGV[1])
for i = 2, #ARGV do redis.call('SREM', ARGV[i], ARGV[1]) end
return json
";

/// Moves finished delivery `id` (created `created`) of an endpoint to its log, forgetting the
/// oldest finished ones past `keep`: `pend`, `log`, `due` are the keys.
const RETIRE_LUA_FN: &str = r"
local function retire(pend, log, due, id, created, keep)
  redis.call('ZREM', due, id)
  redis.call('ZREM', pend, id)
  redis.call('ZADD', log, created, id)
  local extra = redis.call('ZCARD', log) - keep
  if extra > 0 then
    for _, old in ipairs(redis.call('ZRANGE', log, 0, extra - 1)) do
      redis.call('DEL', 'kl:{wh}:d:' .. old)
    end
    redis.call('ZREMRANGEBYRANK', log, 0, extra - 1)
  end
end
";

/// Disables an endpoint: `KEYS` ep, off, pend, log, due; `ARGV` id, off JSON, reason, keep,
/// then every subscription key. Its pending deliveries end failed with the reason.
const DISABLE_WEBHOOK_BODY: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[2])
for i = 5, #ARGV do redis.call('SREM', ARGV[i], ARGV[1]) end
local pending = redis.call('ZRANGE', KEYS[3], 0, -1, 'WITHSCORES')
for i = 1, #pending, 2 do
  local id = pending[i]
  local key = 'kl:{wh}:d:' .. id
  redis.call('HSET', key, 'status', 'failed', 'next', '', 'error', ARGV[3])
  redis.call('HDEL', key, 'lease')
  retire(KEYS[3], KEYS[4], KEYS[5], id, pending[i + 1], tonumber(ARGV[4]))
end
return 1
";

/// The outbox: one delivery of an event per subscribed endpoint. `KEYS` the type's
/// subscription set, due, dropped; `ARGV` event id, type, body, created ms, give up ms, max
/// pending. Returns `{queued, dropped}`.
const EMIT_LUA: &str = r"
local queued, dropped = 0, 0
local event = string.sub(ARGV[1], 5)
for _, ep in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local id = 'msg_' .. event .. '_' .. string.sub(ep, 4)
  local key = 'kl:{wh}:d:' .. id
  if redis.call('EXISTS', key) == 0 then
    local pend = 'kl:{wh}:pend:' .. ep
    if redis.call('ZCARD', pend) >= tonumber(ARGV[6]) then
      redis.call('HINCRBY', KEYS[3], ep, 1)
      dropped = dropped + 1
    else
      redis.call('HSET', key, 'ep', ep, 'evt', ARGV[1], 'type', ARGV[2], 'body', ARGV[3],
        'created', ARGV[4], 'give_up', ARGV[5], 'next', ARGV[4], 'attempts', '0',
        'status', 'pending')
      redis.call('ZADD', KEYS[2], ARGV[4], id)
      redis.call('ZADD', pend, ARGV[4], id)
      queued = queued + 1
    end
  end
end
return {queued, dropped}
";

/// Leases due deliveries: `KEYS` due; `ARGV` now ms, lease end ms, max, token. Returns their
/// ids (deliveries whose record is gone are dropped from the queue).
const CLAIM_LUA: &str = r"
local out = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])) do
  local key = 'kl:{wh}:d:' .. id
  if redis.call('EXISTS', key) == 0 then
    redis.call('ZREM', KEYS[1], id)
  else
    redis.call('ZADD', KEYS[1], ARGV[2], id)
    redis.call('HSET', key, 'lease', ARGV[4])
    table.insert(out, id)
  end
end
return out
";

/// Records an attempt if the lease is still `ARGV[1]`'s: `KEYS` delivery, pend, log, due;
/// `ARGV` token, id, status, attempts, next ms (or ''), code (or ''), error (or ''), history
/// JSON, created ms, keep.
const FINISH_BODY: &str = r"
if redis.call('HGET', KEYS[1], 'lease') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'status', ARGV[3], 'attempts', ARGV[4], 'next', ARGV[5],
  'code', ARGV[6], 'error', ARGV[7], 'history', ARGV[8])
redis.call('HDEL', KEYS[1], 'lease')
if ARGV[3] == 'pending' then
  redis.call('ZADD', KEYS[4], ARGV[5], ARGV[2])
else
  retire(KEYS[2], KEYS[3], KEYS[4], ARGV[2], ARGV[9], tonumber(ARGV[10]))
end
return 1
";

static LINK_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(LINK_LUA));
static TOUCH_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(TOUCH_LUA));
static UNLINK_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(UNLINK_LUA));
static LAPSE_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(LAPSE_LUA));
static UNLIST_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(UNLIST_LUA));
static PUT_WEBHOOK_SCRIPT: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(PUT_WEBHOOK_LUA));
static DELETE_WEBHOOK_SCRIPT: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(DELETE_WEBHOOK_LUA));
static DISABLE_WEBHOOK_SCRIPT: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(&format!("{RETIRE_LUA_FN}{DISABLE_WEBHOOK_BODY}")));
static EMIT_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(EMIT_LUA));
static CLAIM_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(CLAIM_LUA));
static FINISH_SCRIPT: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(&format!("{RETIRE_LUA_FN}{FINISH_BODY}")));

fn every_subscription_key() -> Vec<String> {
    EventType::ALL.into_iter().map(subscribers_key).collect()
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

/// [`Store`] on a Redis server or a Redis Cluster.
pub struct RedisStore {
    /// Where the store is, kept to open the subscription's own connection.
    target: Target,
    conn: Conn,
    /// Clusters whose bell this replica listens to; replayed after a reconnect.
    watched: Arc<Mutex<HashSet<String>>>,
    /// Session event channels this replica listens to; replayed after a reconnect.
    event_channels: Arc<Mutex<HashSet<String>>>,
    /// Tells the subscription task to (un)subscribe a channel.
    control: Mutex<Option<mpsc::UnboundedSender<Control>>>,
}

enum Control {
    Subscribe(String),
    Unsubscribe(String),
}

/// A single Redis server, or the seed nodes of a Redis Cluster.
#[derive(Clone)]
enum Target {
    Single(Box<Client>),
    Cluster(Seeds),
}

/// Where a Redis Cluster client starts: its seed nodes, and the CA that signs the nodes'
/// certificates when it is not one of the system's roots (`--redis-ca-file`).
#[derive(Clone)]
struct Seeds {
    nodes: Vec<redis::ConnectionInfo>,
    ca: Option<redis::TlsCertificates>,
}

/// The store's command connection: both reconnect by themselves, and both pipeline concurrent
/// requests (a cluster connection per node).
#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl redis::aio::ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a redis::Cmd) -> redis::RedisFuture<'a, Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

/// The seed nodes of a `redis+cluster://` or `rediss+cluster://` URL (`None` for any other
/// scheme): `[user:password@]host:port[,host:port…][/][?query]`, the credentials and the query
/// applying to every node. A seed is enough; the others are learnt from the cluster.
pub fn cluster_seeds(url: &str) -> Option<Result<Vec<String>, String>> {
    let (scheme, rest) = url.split_once("://")?;
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "redis+cluster" => "redis",
        "rediss+cluster" => "rediss",
        _ => return None,
    };
    let (authority, query) = match rest.find(['/', '?']) {
        Some(i) => {
            let (authority, tail) = rest.split_at(i);
            let query = tail.split_once('?').map(|(_, q)| q).unwrap_or_default();
            if !tail.starts_with('?') && tail.split('?').next() != Some("/") {
                return Some(Err(
                    "a Redis Cluster has one database only: the URL takes no /db".to_owned(),
                ));
            }
            (authority, query)
        }
        None => (rest, ""),
    };
    let (userinfo, hosts) = match authority.rsplit_once('@') {
        Some((user, hosts)) => (format!("{user}@"), hosts),
        None => (String::new(), authority),
    };
    let query = if query.is_empty() {
        String::new()
    } else {
        format!("?{query}")
    };
    let seeds: Vec<String> = hosts
        .split(',')
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(|host| format!("{scheme}://{userinfo}{host}/{query}"))
        .collect();
    if seeds.is_empty() {
        return Some(Err("names no node (host:port[,host:port…])".to_owned()));
    }
    Some(Ok(seeds))
}

/// `url` without its password, to name it in messages and logs.
pub fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    match rest[..authority_end].rsplit_once('@') {
        Some((userinfo, hosts)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(user, _)| user);
            format!("{scheme}://{user}:***@{hosts}{}", &rest[authority_end..])
        }
        None => url.to_owned(),
    }
}

/// Whether `url` is one of the TLS schemes (`rediss://`, `rediss+cluster://`).
fn uses_tls(url: &str) -> bool {
    url.split_once("://").is_some_and(|(scheme, _)| {
        matches!(
            scheme.to_ascii_lowercase().as_str(),
            "rediss" | "rediss+cluster"
        )
    })
}

fn invalid_url(url: &str, why: String) -> StoreError {
    // The URL may carry a password: name the scheme only.
    let scheme = url.split_once("://").map_or("?", |(s, _)| s);
    StoreError::Redis(RedisError::from((
        redis::ErrorKind::InvalidClientConfig,
        "invalid Redis URL",
        format!("{scheme}://…: {why}"),
    )))
}

/// A cluster client from `seeds`; with `pushes`, on RESP3 with its messages sent there (the
/// subscription's connection).
fn cluster_client(
    seeds: &Seeds,
    pushes: Option<mpsc::UnboundedSender<redis::PushInfo>>,
) -> Result<ClusterClient, RedisError> {
    // A master that dies is replaced by its replica within the cluster's node timeout plus an
    // election (a few seconds): retries wait that long at most, and no request waits longer
    // than `REQUEST_DEADLINE` in all.
    let mut builder = redis::cluster::ClusterClientBuilder::new(seeds.nodes.clone())
        .connection_timeout(Duration::from_secs(1))
        .response_timeout(Duration::from_secs(2))
        .overall_response_timeout(Some(REQUEST_DEADLINE))
        .retries(CLUSTER_RETRIES)
        .min_retry_wait(50)
        .max_retry_wait(500);
    if let Some(pushes) = pushes {
        builder = builder
            .use_protocol(redis::ProtocolVersion::RESP3)
            .push_sender(pushes);
    }
    if let Some(ca) = &seeds.ca {
        builder = builder.certs(ca.clone());
    }
    builder.build()
}

impl RedisStore {
    /// Connects to `url`: `redis://[:password@]host:port[/db]` (`rediss://` for TLS) for one
    /// Redis server, `redis+cluster://[:password@]host:port[,host:port…]` (`rediss+cluster://`)
    /// for a Redis Cluster. Fails if the server (no seed node) can be reached now; later
    /// outages, failovers and resharding are survived by reconnecting and following the
    /// cluster's redirections.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        Self::connect_with_ca(url, None).await
    }

    /// [`RedisStore::connect`], with `ca` (PEM: one or more certificates) as the only roots
    /// that the TLS servers' certificates are checked against, instead of the system's
    /// (`--redis-ca-file`). Only for `rediss://` and `rediss+cluster://` URLs.
    pub async fn connect_with_ca(url: &str, ca: Option<&[u8]>) -> StoreResult<Self> {
        let ca = ca.map(|pem| redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(pem.to_vec()),
        });
        if ca.is_some() && !uses_tls(url) {
            return Err(invalid_url(
                url,
                "a CA file (--redis-ca-file) is for TLS: give a rediss:// or rediss+cluster:// URL"
                    .to_owned(),
            ));
        }
        let (target, conn) = match cluster_seeds(url) {
            Some(seeds) => {
                let seeds = seeds.map_err(|why| invalid_url(url, why))?;
                let seeds = Seeds {
                    nodes: seeds
                        .iter()
                        .map(|s| s.as_str().into_connection_info())
                        .collect::<Result<Vec<_>, _>>()?,
                    ca,
                };
                let conn = cluster_client(&seeds, None)?.get_async_connection().await?;
                (Target::Cluster(seeds), Conn::Cluster(conn))
            }
            None => {
                let client = match ca {
                    Some(ca) => Client::build_with_tls(url, ca)?,
                    None => Client::open(url)?,
                };
                let config = redis::aio::ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(Duration::from_secs(2)))
                    .set_response_timeout(Some(Duration::from_secs(5)))
                    .set_number_of_retries(1)
                    .set_max_delay(Duration::from_secs(1));
                let conn = ConnectionManager::new_with_config(client.clone(), config).await?;
                (Target::Single(Box::new(client)), Conn::Single(conn))
            }
        };
        Ok(Self {
            target,
            conn,
            watched: Arc::default(),
            event_channels: Arc::default(),
            control: Mutex::new(None),
        })
    }

    /// Whether the store is a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self.target, Target::Cluster(_))
    }

    fn conn(&self) -> Conn {
        self.conn.clone()
    }

    /// A message on `channel`, which is sharded in a cluster: `SPUBLISH` reaches the channel's
    /// shard only (its slot is the hash tag's, see [`bell_channel`]), where `PUBLISH` would be
    /// copied to every node of the cluster.
    fn publish(&self, channel: &str, payload: impl redis::ToRedisArgs) -> redis::Cmd {
        let mut cmd = redis::cmd(if self.is_cluster() {
            "SPUBLISH"
        } else {
            "PUBLISH"
        });
        cmd.arg(channel).arg(payload);
        cmd
    }

    fn send(&self, control: Control) {
        let guard = self.control.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tx) = guard.as_ref() {
            let _ = tx.send(control);
        }
    }

    /// The queue entry of `command` (`XADD`, whose answer is the entry id) and, with `ring`, the
    /// cluster's bell (answer ignored): one slot.
    fn queue_pipe(&self, command: &QueuedCommand, ring: bool) -> redis::Pipeline {
        let args = serde_json::to_string(&command.args).expect("strings always serialize");
        let (traceparent, tracestate) = command.trace.as_ref().map_or_else(Default::default, |t| {
            (
                t.traceparent.clone(),
                t.tracestate.clone().unwrap_or_default(),
            )
        });
        let fields: [(&str, String); 13] = [
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
            (
                "mode",
                if command.stream { "stream" } else { "once" }.to_owned(),
            ),
            ("v", "1".to_owned()),
        ];
        let mut queue = redis::pipe();
        queue.xadd(queue_key(&command.cluster_id), "*", &fields);
        if ring {
            queue
                .add_command(self.publish(&bell_channel(&command.cluster_id), ""))
                .ignore();
        }
        queue
    }

    /// Runs `pipes` (each within one slot, every answer ignored) in one round trip: on one
    /// server as one pipeline (one MULTI with `atomic`, as everything is in one place there);
    /// on a cluster as one request per pipeline, all sent at once (each pipeline atomic or not
    /// as built, nothing atomic across them).
    async fn exec_together(&self, pipes: Vec<redis::Pipeline>, atomic: bool) -> StoreResult<()> {
        if !self.is_cluster() {
            let mut one = redis::pipe();
            if atomic {
                one.atomic();
            }
            for cmd in pipes.iter().flat_map(redis::Pipeline::cmd_iter) {
                one.add_command(cmd.clone()).ignore();
            }
            one.exec_async(&mut self.conn()).await?;
            return Ok(());
        }
        let sends = pipes.into_iter().map(|pipe| {
            let mut conn = self.conn();
            async move { pipe.exec_async(&mut conn).await }
        });
        futures::future::try_join_all(sends).await?;
        Ok(())
    }

    /// The sessions `ids`, read together: one pipeline on one server; on a cluster, whose
    /// sessions are spread over the slots, one request each, all sent at once.
    async fn sessions_by_id(&self, ids: &[String]) -> StoreResult<Vec<HashMap<String, String>>> {
        if !self.is_cluster() {
            let mut pipe = redis::pipe();
            for id in ids {
                pipe.hgetall(session_key(id));
            }
            return Ok(pipe.query_async(&mut self.conn()).await?);
        }
        let reads = ids.iter().map(|id| {
            let mut conn = self.conn();
            let key = session_key(id);
            async move { conn.hgetall::<_, HashMap<String, String>>(key).await }
        });
        Ok(futures::future::try_join_all(reads).await?)
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

/// What [`dispatch`] made of a message.
enum Dispatched {
    /// Handed on (or not for this replica).
    Done,
    /// The broker stopped listening: the subscription ends.
    Closed,
}

/// Hands one message of the subscription to the broker: the one place that knows what each
/// channel carries, whichever kind of Redis delivered it.
async fn dispatch(
    channel: &str,
    payload: &[u8],
    reply: &str,
    events: &mpsc::Sender<StoreEvent>,
) -> Dispatched {
    let text = || String::from_utf8_lossy(payload).into_owned();
    let event = if let Some(cluster) = bell_cluster(channel) {
        if payload.is_empty() {
            // A bell may be dropped when the broker is busy: the pump polls too.
            let _ = events.try_send(StoreEvent::Queued(cluster.to_owned()));
            return Dispatched::Done;
        }
        // A bell with a result id: that command's caller went away.
        StoreEvent::Cancel {
            cluster_id: cluster.to_owned(),
            result_id: text(),
        }
    } else if let Some(cluster) = channel.strip_prefix("kl:events:") {
        // Lossy, like a bell: a reader that falls behind is told it missed some.
        let _ = events.try_send(StoreEvent::SessionEvent {
            cluster_id: cluster.to_owned(),
            event: text(),
        });
        return Dispatched::Done;
    } else if channel == INTEREST_CHANNEL {
        let _ = events.try_send(StoreEvent::EventInterest(text()));
        return Dispatched::Done;
    } else if channel == CREDENTIAL_CHANNEL {
        StoreEvent::CredentialChanged(text())
    } else if channel == reply
        && let Some(relay) = payload.strip_prefix(&[STREAM_MARK as u8])
    {
        match serde_json::from_slice::<StreamRelay>(relay) {
            Ok(relay) => StoreEvent::Stream(Box::new(relay)),
            Err(e) => {
                warn!(error = %e, "unreadable stream piece on reply channel");
                return Dispatched::Done;
            }
        }
    } else if channel == reply {
        match serde_json::from_slice::<CommandResult>(payload) {
            Ok(result) => StoreEvent::Result(Box::new(result)),
            Err(e) => {
                warn!(error = %e, "unreadable result on reply channel");
                return Dispatched::Done;
            }
        }
    } else {
        return Dispatched::Done;
    };
    match events.send(event).await {
        Ok(()) => Dispatched::Done,
        Err(_) => Dispatched::Closed,
    }
}

/// Rings every watched bell once: commands may have been queued while the subscription was
/// not listening.
fn ring_all(watched: &Mutex<HashSet<String>>, events: &mpsc::Sender<StoreEvent>) {
    for cluster in watched.lock().unwrap_or_else(|e| e.into_inner()).iter() {
        let _ = events.try_send(StoreEvent::Queued(cluster.clone()));
    }
}

/// Runs the subscription on one Redis server: forwards bells and replies, resubscribing after
/// outages.
async fn run_subscription(
    client: Client,
    broker_id: String,
    watched: Arc<Mutex<HashSet<String>>>,
    event_channels: Arc<Mutex<HashSet<String>>>,
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
        let mut channels = vec![
            reply.clone(),
            CREDENTIAL_CHANNEL.to_owned(),
            INTEREST_CHANNEL.to_owned(),
        ];
        channels.extend(
            event_channels
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .cloned(),
        );
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
        ring_all(&watched, &events);
        loop {
            tokio::select! {
                msg = stream.next() => {
                    let Some(msg) = msg else { break };
                    let dispatched =
                        dispatch(msg.get_channel_name(), msg.get_payload_bytes(), &reply, &events)
                            .await;
                    if let Dispatched::Closed = dispatched {
                        return;
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

/// When to subscribe again after something went wrong.
fn soon() -> tokio::time::Instant {
    tokio::time::Instant::now() + RESUBSCRIBE_DELAY
}

/// Subscribes (again) to every channel this replica listens to; subscribing to a channel twice
/// is harmless.
async fn subscribe_all(
    conn: &mut ClusterConnection,
    reply: &str,
    watched: &Mutex<HashSet<String>>,
    event_channels: &Mutex<HashSet<String>>,
) -> Result<(), RedisError> {
    let mut channels = vec![reply.to_owned()];
    channels.extend(
        watched
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|c| bell_channel(c)),
    );
    conn.subscribe(CREDENTIAL_CHANNEL).await?;
    conn.subscribe(INTEREST_CHANNEL).await?;
    let ordinary: Vec<String> = event_channels
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .cloned()
        .collect();
    for channel in &ordinary {
        conn.subscribe(channel).await?;
    }
    // One channel at a time: a sharded subscription names channels of one slot.
    for channel in &channels {
        conn.ssubscribe(channel).await?;
    }
    Ok(())
}

/// Runs the subscription on a Redis Cluster: the same channels, bells and replies sharded
/// (`SSUBSCRIBE`, on the node serving the channel's slot), credential announcements ordinary
/// (`PUBLISH` reaches every node). The cluster connection resubscribes by itself when a node
/// comes back or the slot map changes; the channels are subscribed again here when a node's
/// connection drops (a failover: the slot map changes only once a request sees it) and when
/// the server drops a channel itself (its slot moved to another node).
async fn run_cluster_subscription(
    seeds: Seeds,
    broker_id: String,
    watched: Arc<Mutex<HashSet<String>>>,
    event_channels: Arc<Mutex<HashSet<String>>>,
    mut control: mpsc::UnboundedReceiver<Control>,
    events: mpsc::Sender<StoreEvent>,
) {
    let reply = reply_channel(&broker_id);
    let (pushes_tx, mut pushes) = mpsc::unbounded_channel();
    let mut conn = loop {
        let connected = match cluster_client(&seeds, Some(pushes_tx.clone())) {
            Ok(client) => client.get_async_connection().await,
            Err(e) => Err(e),
        };
        match connected {
            Ok(conn) => break conn,
            Err(e) => {
                debug!(error = %e, "redis cluster subscription unavailable; retrying");
                tokio::select! {
                    () = tokio::time::sleep(RESUBSCRIBE_DELAY) => {}
                    () = events.closed() => return,
                }
            }
        }
    };
    let wanted = |channel: &str| {
        channel == reply
            || bell_cluster(channel).is_some_and(|c| {
                watched
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .contains(c)
            })
    };
    // Everything is subscribed before the first control message is looked at: once a bell
    // rings, replies are heard too.
    while let Err(e) = subscribe_all(&mut conn, &reply, &watched, &event_channels).await {
        debug!(error = %e, "redis cluster subscription incomplete; retrying");
        tokio::select! {
            () = tokio::time::sleep(RESUBSCRIBE_DELAY) => {}
            () = events.closed() => return,
        }
    }
    ring_all(&watched, &events);
    // Everything is subscribed again at `resync_at`, if set.
    let mut resync_at: Option<tokio::time::Instant> = None;
    loop {
        let resync = async {
            match resync_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            push = pushes.recv() => {
                let Some(push) = push else { return };
                match push.kind {
                    PushKind::Message | PushKind::SMessage => {
                        let (Some(Value::BulkString(channel)), Some(Value::BulkString(payload))) =
                            (push.data.first(), push.data.get(1))
                        else {
                            continue;
                        };
                        let channel = String::from_utf8_lossy(channel);
                        let dispatched = dispatch(&channel, payload, &reply, &events).await;
                        if let Dispatched::Closed = dispatched {
                            return;
                        }
                    }
                    // The server drops a channel whose slot moved away: follow it.
                    PushKind::SUnsubscribe => {
                        if let Some(Value::BulkString(channel)) = push.data.first()
                            && wanted(&String::from_utf8_lossy(channel))
                        {
                            resync_at.get_or_insert_with(soon);
                        }
                    }
                    // A node's connection dropped (it died, or a failover is under way): its
                    // channels move to whichever node serves their slots next.
                    PushKind::Disconnection => {
                        resync_at.get_or_insert_with(soon);
                    }
                    _ => {}
                }
            }
            () = resync => {
                match subscribe_all(&mut conn, &reply, &watched, &event_channels).await {
                    Ok(()) => {
                        resync_at = None;
                        ring_all(&watched, &events);
                    }
                    Err(e) => {
                        debug!(error = %e, "redis cluster subscription incomplete; retrying");
                        resync_at = Some(soon());
                    }
                }
            }
            ctl = control.recv() => {
                let outcome = match ctl {
                    None => return,
                    // Session event channels are ordinary (published to every node); bells
                    // are sharded.
                    Some(Control::Subscribe(c)) if is_events_channel(&c) => conn.subscribe(&c).await,
                    Some(Control::Unsubscribe(c)) if is_events_channel(&c) => conn.unsubscribe(&c).await,
                    Some(Control::Subscribe(c)) => conn.ssubscribe(&c).await,
                    Some(Control::Unsubscribe(c)) => conn.sunsubscribe(&c).await,
                };
                if let Err(e) = outcome {
                    warn!(error = %e, "redis cluster (un)subscribe failed; resubscribing");
                    resync_at.get_or_insert_with(soon);
                }
            }
            () = events.closed() => return,
        }
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
        // Absent from entries queued by brokers that predate streams: a one-shot command.
        stream: entry.get::<String>("mode").as_deref() == Some("stream"),
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

fn decode_webhook(
    key: &str,
    raw: &str,
    off: Option<String>,
    dropped: Option<u64>,
    pending: u64,
) -> StoreResult<WebhookRecord> {
    let corrupt = |e: serde_json::Error| StoreError::Corrupt {
        key: key.to_owned(),
        reason: e.to_string(),
    };
    let mut record: WebhookRecord = serde_json::from_str(raw).map_err(corrupt)?;
    if let Some(off) = off {
        let off: DisabledState = serde_json::from_str(&off).map_err(corrupt)?;
        record.disabled_at = Some(from_ms(off.at));
        record.disabled_reason = Some(off.reason);
    }
    record.dropped = dropped.unwrap_or(0);
    record.pending = pending;
    Ok(record)
}

/// `kl:{wh}:off`'s values.
#[derive(serde::Serialize, serde::Deserialize)]
struct DisabledState {
    at: i64,
    reason: String,
}

fn decode_delivery(id: &str, map: &HashMap<String, String>) -> StoreResult<Option<DeliveryRecord>> {
    if map.is_empty() {
        return Ok(None);
    }
    let key = delivery_key(id);
    let corrupt = |reason: String| StoreError::Corrupt {
        key: key.clone(),
        reason,
    };
    let text = |name: &str| {
        map.get(name)
            .cloned()
            .ok_or_else(|| corrupt(format!("missing field {name}")))
    };
    let int = |name: &str| -> StoreResult<i64> {
        text(name)?
            .parse()
            .map_err(|_| corrupt(format!("field {name} is not a number")))
    };
    let optional = |name: &str| map.get(name).filter(|v| !v.is_empty());
    let event_type = text("type")?;
    let status = text("status")?;
    let history = match optional("history") {
        Some(json) => serde_json::from_str(json).map_err(|e| corrupt(e.to_string()))?,
        None => Vec::new(),
    };
    Ok(Some(DeliveryRecord {
        id: id.to_owned(),
        endpoint_id: text("ep")?,
        event_id: text("evt")?,
        event_type: EventType::parse(&event_type)
            .ok_or_else(|| corrupt(format!("unknown event type {event_type:?}")))?,
        body: text("body")?,
        created_at: from_ms(int("created")?),
        give_up_at: from_ms(int("give_up")?),
        status: DeliveryStatus::parse(&status)
            .ok_or_else(|| corrupt(format!("unknown status {status:?}")))?,
        attempts: int("attempts")?.try_into().unwrap_or(u32::MAX),
        next_attempt_at: optional("next").and_then(|v| v.parse().ok()).map(from_ms),
        last_status_code: optional("code").and_then(|v| v.parse().ok()),
        last_error: optional("error").cloned(),
        history,
    }))
}

fn history_json(history: &[DeliveryAttempt]) -> String {
    serde_json::to_string(history).expect("attempts always serialize")
}

fn to_json(result: &CommandResult) -> String {
    serde_json::to_string(result).expect("a CommandResult always serializes")
}

/// On a reply channel, a result is its JSON object and a piece of a stream is
/// [`STREAM_MARK`] followed by the [`StreamRelay`]'s JSON.
fn stream_payload(relay: &StreamRelay) -> String {
    let mut payload = String::from(STREAM_MARK);
    payload.push_str(&serde_json::to_string(relay).expect("a StreamRelay always serializes"));
    payload
}

/// See [`stream_payload`].
const STREAM_MARK: char = 'S';

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
        let (broker_id, watched) = (broker_id.to_owned(), self.watched.clone());
        let event_channels = self.event_channels.clone();
        match &self.target {
            Target::Single(client) => {
                tokio::spawn(run_subscription(
                    (**client).clone(),
                    broker_id,
                    watched,
                    event_channels,
                    rx,
                    events,
                ));
            }
            Target::Cluster(seeds) => {
                tokio::spawn(run_cluster_subscription(
                    seeds.clone(),
                    broker_id,
                    watched,
                    event_channels,
                    rx,
                    events,
                ));
            }
        }
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
        // The session and the two indexes are three slots on a cluster, written together. Should
        // one write fail, the caller is told; an index entry without its session is dropped by
        // the readers, a session without index entries expires with its key.
        let mut record = redis::pipe();
        record
            .atomic()
            .hset_multiple(&key, &fields)
            .ignore()
            .cmd("PEXPIREAT")
            .arg(&key)
            .arg(keep_until)
            .ignore();
        let mut listed = redis::pipe();
        listed
            .zadd(SESSIONS, &session.session_id, ms(session.created_at))
            .ignore();
        let mut expiring = redis::pipe();
        expiring
            .zadd(SESSION_EXPIRY, &session.session_id, ms(session.expires_at))
            .ignore();
        self.exec_together(vec![record, listed, expiring], true)
            .await
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
        let maps = self.sessions_by_id(&ids).await?;
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

    async fn due_session_expiries(
        &self,
        now: DateTime<Utc>,
        max: usize,
    ) -> StoreResult<Vec<(String, Option<SessionRecord>)>> {
        let mut conn = self.conn();
        let ids: Vec<String> = redis::cmd("ZRANGEBYSCORE")
            .arg(SESSION_EXPIRY)
            .arg("-inf")
            .arg(ms(now))
            .arg("LIMIT")
            .arg(0)
            .arg(max)
            .query_async(&mut conn)
            .await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let maps = self.sessions_by_id(&ids).await?;
        ids.into_iter()
            .zip(maps)
            .map(|(id, map)| {
                let session = decode_session(&id, map)?;
                Ok((id, session))
            })
            .collect()
    }

    async fn forget_session_expiries(&self, session_ids: &[String]) -> StoreResult<()> {
        if session_ids.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn();
        let _: i64 = conn.zrem(SESSION_EXPIRY, session_ids).await?;
        Ok(())
    }

    async fn link_cluster(&self, record: &ClusterRecord, ttl: Duration) -> StoreResult<LinkChange> {
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
        let ttl_ms = ttl.as_millis() as u64;
        let mut link = LINK_SCRIPT.key(link_key(cluster));
        link.key(info_key(cluster)).arg(&broker).arg(ttl_ms);
        for (name, value) in &fields {
            link.arg(*name).arg(value);
        }
        let mut conn = self.conn();
        let change: i64 = link.invoke_async(&mut conn).await?;
        // Two indexes, two slots: two requests sent together.
        let (mut a, mut b) = (self.conn(), self.conn());
        let _: (i64, i64) = futures::try_join!(
            a.sadd(CLUSTERS, cluster),
            b.zadd(LINKED, cluster, ms(Utc::now()) + ttl_ms as i64),
        )?;
        Ok(match change {
            1 => LinkChange::Connected,
            2 => LinkChange::Relinked,
            _ => LinkChange::Continued,
        })
    }

    async fn touch_cluster(
        &self,
        cluster_id: &str,
        broker_id: &str,
        last_seen: DateTime<Utc>,
        ttl: Duration,
    ) -> StoreResult<bool> {
        let mut conn = self.conn();
        let revived: i64 = TOUCH_SCRIPT
            .key(link_key(cluster_id))
            .key(info_key(cluster_id))
            .arg(broker_id)
            .arg(ttl.as_millis() as u64)
            .arg(ms(last_seen))
            .invoke_async(&mut conn)
            .await?;
        if revived == 1 {
            let _: i64 = conn
                .zadd(LINKED, cluster_id, ms(Utc::now()) + ttl.as_millis() as i64)
                .await?;
        }
        Ok(revived == 1)
    }

    async fn unlink_cluster(
        &self,
        cluster_id: &str,
        broker_id: &str,
        last_seen: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let mut conn = self.conn();
        // `kl:linked` keeps the cluster until `lapsed_links` sees its claim gone.
        let ended: i64 = UNLINK_SCRIPT
            .key(link_key(cluster_id))
            .key(info_key(cluster_id))
            .arg(broker_id)
            .arg(ms(last_seen))
            .invoke_async(&mut conn)
            .await?;
        Ok(ended == 1)
    }

    async fn lapsed_links(&self, max: usize) -> StoreResult<Vec<String>> {
        let mut conn = self.conn();
        let now = ms(Utc::now());
        let candidates: Vec<String> = redis::cmd("ZRANGEBYSCORE")
            .arg(LINKED)
            .arg("-inf")
            .arg(now)
            .arg("LIMIT")
            .arg(0)
            .arg(max)
            .query_async(&mut conn)
            .await?;
        let mut lapsed = Vec::new();
        for cluster in candidates {
            let state: i64 = LAPSE_SCRIPT
                .key(link_key(&cluster))
                .key(info_key(&cluster))
                .invoke_async(&mut conn)
                .await?;
            if state > 0 {
                // Live: look again when this claim would end.
                let _: i64 = conn.zadd(LINKED, &cluster, now + state).await?;
                continue;
            }
            let _: i64 = UNLIST_SCRIPT
                .key(LINKED)
                .arg(&cluster)
                .arg(now)
                .invoke_async(&mut conn)
                .await?;
            if state == -1 {
                lapsed.push(cluster);
            }
        }
        Ok(lapsed)
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
        // Every cluster's keys are in its own slot: the reads go out together.
        let records =
            futures::future::try_join_all(ids.iter().map(|id| self.get_cluster(id))).await?;
        Ok(records.into_iter().flatten().collect())
    }

    async fn enqueue(
        &self,
        command: &QueuedCommand,
        pending: &CommandResult,
        result_ttl: Duration,
        ring: bool,
    ) -> StoreResult<String> {
        let session = session_key(&command.session_id);
        // Three slots (the result's, the session's, the cluster's queue and bell): one round
        // trip, to one server or to three nodes at once. No MULTI spans them (none did before
        // either): a caller whose enqueue fails gets an error, and a placeholder or a count
        // left behind is harmless.
        let mut placeholder = redis::pipe();
        placeholder
            .set_ex(
                pending_key(&pending.result_id),
                to_json(pending),
                placeholder_ttl(command.deadline, Utc::now(), result_ttl),
            )
            .ignore();
        let mut counts = redis::pipe();
        counts
            .hincr(&session, "commands", 1)
            .ignore()
            .hset(&session, "activity", ms(command.executed_at))
            .ignore();
        let queue = self.queue_pipe(command, ring);
        if !self.is_cluster() {
            let mut one = redis::pipe();
            for cmd in placeholder.cmd_iter().chain(counts.cmd_iter()) {
                one.add_command(cmd.clone()).ignore();
            }
            for cmd in queue.cmd_iter() {
                one.add_command(cmd.clone());
            }
            if ring {
                // The bell's answer (a subscriber count) is not wanted either.
                one.ignore();
            }
            let (entry_id,): (String,) = one.query_async(&mut self.conn()).await?;
            return Ok(entry_id);
        }
        let (mut a, mut b, mut c) = (self.conn(), self.conn(), self.conn());
        let ((), (), (entry_id,)): ((), (), (String,)) = futures::try_join!(
            placeholder.exec_async(&mut a),
            counts.exec_async(&mut b),
            queue.query_async(&mut c),
        )?;
        Ok(entry_id)
    }

    async fn requeue(&self, command: &QueuedCommand, ring: bool) -> StoreResult<String> {
        let (entry_id,): (String,) = self
            .queue_pipe(command, ring)
            .query_async(&mut self.conn())
            .await?;
        Ok(entry_id)
    }

    async fn standing(
        &self,
        cluster_id: &str,
        entry_id: &str,
        result_id: &str,
    ) -> StoreResult<Standing> {
        let mut conn = self.conn();
        // The entry first, then the result: a finished command's result is written before its
        // entry is removed (in one pipeline on one server; one after the other on a cluster).
        let entries: StreamRangeReply = conn
            .xrange_count(queue_key(cluster_id), entry_id, entry_id, 1)
            .await?;
        if !entries.ids.is_empty() {
            return Ok(Standing::Queued);
        }
        let done: Option<String> = conn.get(result_key(result_id)).await?;
        match done {
            Some(raw) => Ok(Standing::Finished(Box::new(decode_result(
                &result_key(result_id),
                &raw,
            )?))),
            None => Ok(Standing::Lost),
        }
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
        let mut set = redis::cmd("SET");
        set.arg(result_key(&result.result_id))
            .arg(to_json(result))
            .arg("NX")
            .arg("EX")
            .arg(ttl.as_secs().max(1));
        let mut ack = redis::pipe();
        if let Some(entry_id) = entry_id {
            let key = queue_key(&result.cluster_id);
            ack.xack(&key, GROUP, &[entry_id])
                .ignore()
                .xdel(&key, &[entry_id])
                .ignore();
        }
        let mut conn = self.conn();
        if !self.is_cluster() {
            // One server runs a pipeline in order: the entry goes only after the result is in.
            let mut pipe = redis::pipe();
            pipe.add_command(set);
            for cmd in ack.cmd_iter() {
                pipe.add_command(cmd.clone()).ignore();
            }
            let (won,): (Option<String>,) = pipe.query_async(&mut conn).await?;
            return Ok(won.is_some());
        }
        // The result and the queue live on different nodes: the entry is removed only once
        // the result is stored, so a failover between the two leaves the command to run
        // again (read-only; the first final result wins), never lost.
        let won: Option<String> = set.query_async(&mut conn).await?;
        if entry_id.is_some() {
            ack.exec_async(&mut conn).await?;
        }
        Ok(won.is_some())
    }

    async fn get_result(&self, result_id: &str) -> StoreResult<Option<CommandResult>> {
        // Two slots, two requests sent together.
        let (mut a, mut b) = (self.conn(), self.conn());
        let (done, pending): (Option<String>, Option<String>) =
            futures::try_join!(a.get(result_key(result_id)), b.get(pending_key(result_id)),)?;
        match (done, pending) {
            (Some(raw), _) => decode_result(&result_key(result_id), &raw).map(Some),
            (None, Some(raw)) => decode_result(&pending_key(result_id), &raw).map(Some),
            (None, None) => Ok(None),
        }
    }

    async fn deliver_stream(&self, broker_id: &str, relay: &StreamRelay) -> StoreResult<()> {
        let mut conn = self.conn();
        let _: i64 = self
            .publish(&reply_channel(broker_id), stream_payload(relay))
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    async fn publish_session_event(&self, cluster_id: &str, event: &str) -> StoreResult<()> {
        let mut conn = self.conn();
        let _: i64 = conn.publish(events_channel(cluster_id), event).await?;
        Ok(())
    }

    async fn announce_event_interest(&self, cluster_id: &str) -> StoreResult<()> {
        let mut conn = self.conn();
        let _: i64 = conn.publish(INTEREST_CHANNEL, cluster_id).await?;
        Ok(())
    }

    async fn watch_session_events(&self, cluster_id: &str, watch: bool) -> StoreResult<()> {
        let channel = events_channel(cluster_id);
        let changed = {
            let mut events = self
                .event_channels
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if watch {
                events.insert(channel.clone())
            } else {
                events.remove(&channel)
            }
        };
        if changed {
            self.send(if watch {
                Control::Subscribe(channel)
            } else {
                Control::Unsubscribe(channel)
            });
        }
        Ok(())
    }

    async fn cancel_command(&self, cluster_id: &str, result_id: &str) -> StoreResult<()> {
        // The bell of the cluster, which only the replica holding its link listens to; a bell
        // with a payload is a cancellation (a plain bell has none).
        let mut conn = self.conn();
        let _: i64 = self
            .publish(&bell_channel(cluster_id), result_id)
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    async fn settle(&self, cluster_id: &str, entry_id: &str) -> StoreResult<()> {
        let key = queue_key(cluster_id);
        let mut conn = self.conn();
        redis::pipe()
            .xack(&key, GROUP, &[entry_id])
            .ignore()
            .xdel(&key, &[entry_id])
            .ignore()
            .exec_async(&mut conn)
            .await?;
        Ok(())
    }

    async fn deliver_result(&self, broker_id: &str, result: &CommandResult) -> StoreResult<()> {
        let mut conn = self.conn();
        let _: i64 = self
            .publish(&reply_channel(broker_id), to_json(result))
            .query_async(&mut conn)
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
        let mut found = redis::pipe();
        found
            .set(credential_hash_key(&record.hash), &record.id)
            .ignore();
        let mut listed = redis::pipe();
        listed
            .zadd(CREDENTIALS, &record.id, ms(record.created_at))
            .ignore();
        let mut pipes = vec![found, listed];
        if !only_if_new {
            if self.is_cluster() {
                // The record first, then what finds it (three slots): a failure in between
                // leaves a record nobody can use yet, never a hash that points at nothing;
                // writing again finishes the job.
                let _: () = conn.set(&key, &json).await?;
            } else {
                let mut stored = redis::pipe();
                stored.set(&key, &json).ignore();
                pipes.insert(0, stored);
            }
        }
        self.exec_together(pipes, true).await?;
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
        let (mut a, mut b) = (self.conn(), self.conn());
        let (raw, used): (Option<String>, Option<i64>) =
            futures::try_join!(a.get(&key), b.hget(CREDENTIALS_USED, id))?;
        decode_credential(&key, raw, used)
    }

    async fn list_credentials(&self) -> StoreResult<Vec<CredentialRecord>> {
        let mut conn = self.conn();
        let ids: Vec<String> = conn.zrange(CREDENTIALS, 0, -1).await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = ids.iter().map(|id| credential_key(id)).collect();
        // MGET alone: a cluster connection splits it by slot and puts the answers together.
        let mut other = self.conn();
        let (raws, used): (Vec<Option<String>>, HashMap<String, i64>) =
            futures::try_join!(conn.mget(&keys), other.hgetall(CREDENTIALS_USED))?;
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

    // --- replica liveness ---

    async fn replica_alive(&self, broker_id: &str, ttl: Duration) -> StoreResult<()> {
        let _: () = self
            .conn()
            .set_ex(alive_key(broker_id), 1, ttl.as_secs().max(1))
            .await?;
        Ok(())
    }

    async fn replica_gone(&self, broker_id: &str) -> StoreResult<()> {
        let _: i64 = self.conn().del(alive_key(broker_id)).await?;
        Ok(())
    }

    async fn replica_is_alive(&self, broker_id: &str) -> StoreResult<bool> {
        Ok(self.conn().exists(alive_key(broker_id)).await?)
    }

    async fn reclaim_orphans(
        &self,
        cluster_id: &str,
        consumer: &str,
        max: usize,
    ) -> StoreResult<Vec<QueuedCommand>> {
        let key = queue_key(cluster_id);
        let mut conn = self.conn();
        // Summary: [count, first id, last id, [[consumer, count], …]].
        let summary: Result<Value, RedisError> = redis::cmd("XPENDING")
            .arg(&key)
            .arg(GROUP)
            .query_async(&mut conn)
            .await;
        let summary = match summary {
            Ok(v) => v,
            Err(e) if e.code() == Some("NOGROUP") => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let mut out = Vec::new();
        for other in pending_consumers(&summary) {
            if other == consumer || out.len() >= max {
                continue;
            }
            if self.replica_is_alive(&other).await? {
                continue;
            }
            // Its entries: [[id, consumer, idle ms, deliveries], …].
            let entries: Vec<(String, String, u64, u64)> = redis::cmd("XPENDING")
                .arg(&key)
                .arg(GROUP)
                .arg("-")
                .arg("+")
                .arg(max - out.len())
                .arg(&other)
                .query_async(&mut conn)
                .await?;
            if entries.is_empty() {
                continue;
            }
            let ids: Vec<&str> = entries.iter().map(|(id, ..)| id.as_str()).collect();
            let claimed: StreamRangeReply = redis::cmd("XCLAIM")
                .arg(&key)
                .arg(GROUP)
                .arg(consumer)
                .arg(0)
                .arg(&ids)
                .query_async(&mut conn)
                .await?;
            for entry in &claimed.ids {
                out.push(decode_command(cluster_id, entry)?);
            }
        }
        Ok(out)
    }

    // --- idempotency keys ---

    async fn claim_idempotency_key(
        &self,
        key: &str,
        value: &str,
        ttl: Duration,
    ) -> StoreResult<Option<String>> {
        // SET NX GET (Redis 7): sets only when absent, and answers what was there.
        let held: Option<String> = redis::cmd("SET")
            .arg(format!("kl:idem:{key}"))
            .arg(value)
            .arg("NX")
            .arg("GET")
            .arg("PX")
            .arg(ttl.as_millis().max(1) as u64)
            .query_async(&mut self.conn())
            .await?;
        Ok(held)
    }

    async fn swap_idempotency_key(
        &self,
        key: &str,
        held: &str,
        value: &str,
        ttl: Duration,
    ) -> StoreResult<bool> {
        let swapped: i64 = SWAP_SCRIPT
            .key(format!("kl:idem:{key}"))
            .arg(held)
            .arg(value)
            .arg(ttl.as_millis().max(1) as u64)
            .invoke_async(&mut self.conn())
            .await?;
        Ok(swapped == 1)
    }

    async fn release_idempotency_key(&self, key: &str, value: &str) -> StoreResult<()> {
        let _: i64 = RELEASE_SCRIPT
            .key(format!("kl:idem:{key}"))
            .arg(value)
            .invoke_async(&mut self.conn())
            .await?;
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
    // --- webhooks ---

    async fn put_webhook(&self, record: &WebhookRecord, max: usize) -> StoreResult<bool> {
        let json = serde_json::to_string(record).expect("a webhook record always serializes");
        let mut put = PUT_WEBHOOK_SCRIPT.key(webhook_key(&record.id));
        put.key(WEBHOOKS)
            .arg(&record.id)
            .arg(json)
            .arg(max)
            .arg(ms(record.created_at));
        for event in &record.events {
            put.arg(subscribers_key(*event));
        }
        let mut conn = self.conn();
        let stored: i64 = put.invoke_async(&mut conn).await?;
        Ok(stored == 1)
    }

    async fn get_webhook(&self, id: &str) -> StoreResult<Option<WebhookRecord>> {
        let key = webhook_key(id);
        let mut conn = self.conn();
        let (raw, off, dropped, pending): (Option<String>, Option<String>, Option<u64>, u64) =
            redis::pipe()
                .get(&key)
                .hget(WEBHOOKS_OFF, id)
                .hget(WEBHOOKS_DROPPED, id)
                .zcard(pending_deliveries_key(id))
                .query_async(&mut conn)
                .await?;
        raw.map(|raw| decode_webhook(&key, &raw, off, dropped, pending))
            .transpose()
    }

    async fn list_webhooks(&self) -> StoreResult<Vec<WebhookRecord>> {
        let mut conn = self.conn();
        let ids: Vec<String> = conn.zrange(WEBHOOKS, 0, -1).await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = ids.iter().map(|id| webhook_key(id)).collect();
        let (raws, off, dropped): (
            Vec<Option<String>>,
            HashMap<String, String>,
            HashMap<String, u64>,
        ) = redis::pipe()
            .mget(&keys)
            .hgetall(WEBHOOKS_OFF)
            .hgetall(WEBHOOKS_DROPPED)
            .query_async(&mut conn)
            .await?;
        let mut pipe = redis::pipe();
        for id in &ids {
            pipe.zcard(pending_deliveries_key(id));
        }
        let pending: Vec<u64> = pipe.query_async(&mut conn).await?;
        let mut records = Vec::with_capacity(ids.len());
        for (((id, key), raw), pending) in ids.iter().zip(&keys).zip(raws).zip(pending) {
            if let Some(raw) = raw {
                records.push(decode_webhook(
                    key,
                    &raw,
                    off.get(id).cloned(),
                    dropped.get(id).copied(),
                    pending,
                )?);
            }
        }
        Ok(records)
    }

    async fn delete_webhook(&self, id: &str) -> StoreResult<Option<WebhookRecord>> {
        let Some(record) = self.get_webhook(id).await? else {
            return Ok(None);
        };
        let mut delete = DELETE_WEBHOOK_SCRIPT.key(webhook_key(id));
        delete
            .key(WEBHOOKS)
            .key(pending_deliveries_key(id))
            .key(delivery_log_key(id))
            .key(DELIVERIES_DUE)
            .key(WEBHOOKS_OFF)
            .key(WEBHOOKS_DROPPED)
            .arg(id);
        for key in every_subscription_key() {
            delete.arg(key);
        }
        let mut conn = self.conn();
        let deleted: Option<String> = delete.invoke_async(&mut conn).await?;
        Ok(deleted.map(|_| record))
    }

    async fn disable_webhook(
        &self,
        id: &str,
        at: DateTime<Utc>,
        reason: &str,
    ) -> StoreResult<bool> {
        let off = serde_json::to_string(&DisabledState {
            at: ms(at),
            reason: reason.to_owned(),
        })
        .expect("always serializes");
        let mut disable = DISABLE_WEBHOOK_SCRIPT.key(webhook_key(id));
        disable
            .key(WEBHOOKS_OFF)
            .key(pending_deliveries_key(id))
            .key(delivery_log_key(id))
            .key(DELIVERIES_DUE)
            .arg(id)
            .arg(off)
            .arg(reason)
            .arg(KEPT_DELIVERIES);
        for key in every_subscription_key() {
            disable.arg(key);
        }
        let mut conn = self.conn();
        let done: i64 = disable.invoke_async(&mut conn).await?;
        Ok(done == 1)
    }

    async fn emit_event(&self, event: &OutboxEvent, max_pending: u64) -> StoreResult<EmitOutcome> {
        let mut conn = self.conn();
        let (queued, dropped): (u32, u32) = EMIT_SCRIPT
            .key(subscribers_key(event.event_type))
            .key(DELIVERIES_DUE)
            .key(WEBHOOKS_DROPPED)
            .arg(&event.id)
            .arg(event.event_type.as_str())
            .arg(&event.body)
            .arg(ms(event.created_at))
            .arg(ms(event.give_up_at))
            .arg(max_pending)
            .invoke_async(&mut conn)
            .await?;
        Ok(EmitOutcome { queued, dropped })
    }

    async fn claim_deliveries(
        &self,
        token: &str,
        now: DateTime<Utc>,
        lease: Duration,
        max: usize,
    ) -> StoreResult<Vec<DeliveryRecord>> {
        let mut conn = self.conn();
        let ids: Vec<String> = CLAIM_SCRIPT
            .key(DELIVERIES_DUE)
            .arg(ms(now))
            .arg(ms(now) + lease.as_millis() as i64)
            .arg(max)
            .arg(token)
            .invoke_async(&mut conn)
            .await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in &ids {
            pipe.hgetall(delivery_key(id));
        }
        let maps: Vec<HashMap<String, String>> = pipe.query_async(&mut conn).await?;
        let mut out = Vec::with_capacity(ids.len());
        for (id, map) in ids.iter().zip(maps) {
            if let Some(delivery) = decode_delivery(id, &map)? {
                out.push(delivery);
            }
        }
        Ok(out)
    }

    async fn finish_attempt(&self, delivery: &DeliveryRecord, token: &str) -> StoreResult<bool> {
        let next = match (delivery.status, delivery.next_attempt_at) {
            (DeliveryStatus::Pending, Some(t)) => ms(t).to_string(),
            _ => String::new(),
        };
        let mut conn = self.conn();
        let done: i64 = FINISH_SCRIPT
            .key(delivery_key(&delivery.id))
            .key(pending_deliveries_key(&delivery.endpoint_id))
            .key(delivery_log_key(&delivery.endpoint_id))
            .key(DELIVERIES_DUE)
            .arg(token)
            .arg(&delivery.id)
            .arg(delivery.status.as_str())
            .arg(delivery.attempts)
            .arg(next)
            .arg(
                delivery
                    .last_status_code
                    .map(|c| c.to_string())
                    .unwrap_or_default(),
            )
            .arg(delivery.last_error.clone().unwrap_or_default())
            .arg(history_json(&delivery.history))
            .arg(ms(delivery.created_at))
            .arg(KEPT_DELIVERIES)
            .invoke_async(&mut conn)
            .await?;
        Ok(done == 1)
    }

    async fn list_deliveries(
        &self,
        endpoint_id: &str,
        limit: usize,
    ) -> StoreResult<Vec<DeliveryRecord>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut conn = self.conn();
        let last = limit as isize - 1;
        let (pending, finished): (Vec<(String, f64)>, Vec<(String, f64)>) = redis::pipe()
            .zrevrange_withscores(pending_deliveries_key(endpoint_id), 0, last)
            .zrevrange_withscores(delivery_log_key(endpoint_id), 0, last)
            .query_async(&mut conn)
            .await?;
        let mut ids: Vec<(f64, String)> = pending
            .into_iter()
            .chain(finished)
            .map(|(id, score)| (score, id))
            .collect();
        ids.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| b.1.cmp(&a.1)));
        ids.truncate(limit);
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for (_, id) in &ids {
            pipe.hgetall(delivery_key(id));
        }
        let maps: Vec<HashMap<String, String>> = pipe.query_async(&mut conn).await?;
        let mut out = Vec::with_capacity(ids.len());
        for ((_, id), map) in ids.iter().zip(maps) {
            if let Some(delivery) = decode_delivery(id, &map)? {
                out.push(delivery);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_placeholder_outlives_its_deadline_by_the_grace_and_never_a_final_result() {
        let now = Utc::now();
        let hour = Duration::from_secs(3600);
        let grace = PLACEHOLDER_GRACE.as_secs();
        let in_secs = |s: i64| now + chrono::Duration::seconds(s);
        assert_eq!(placeholder_ttl(in_secs(30), now, hour), 30 + grace);
        // A deadline already past (a clock ahead of the caller's replica): the grace alone.
        assert_eq!(placeholder_ttl(in_secs(-30), now, hour), grace);
        assert_eq!(placeholder_ttl(in_secs(7200), now, hour), 3600);
        assert_eq!(placeholder_ttl(in_secs(30), now, Duration::ZERO), 1);
    }

    #[test]
    fn cluster_urls_name_their_seeds() {
        assert_eq!(cluster_seeds("redis://127.0.0.1:6379/0"), None);
        assert_eq!(cluster_seeds("rediss://h:1"), None);
        assert_eq!(
            cluster_seeds("redis+cluster://:pw@10.0.0.1:7000,10.0.0.2:7001"),
            Some(Ok(vec![
                "redis://:pw@10.0.0.1:7000/".to_owned(),
                "redis://:pw@10.0.0.2:7001/".to_owned(),
            ]))
        );
        assert_eq!(
            cluster_seeds("rediss+cluster://user:pw@a:1/?protocol=3"),
            Some(Ok(vec!["rediss://user:pw@a:1/?protocol=3".to_owned()]))
        );
        assert_eq!(
            cluster_seeds("REDIS+CLUSTER://a:1,b:2/"),
            Some(Ok(vec![
                "redis://a:1/".to_owned(),
                "redis://b:2/".to_owned()
            ]))
        );
        assert!(matches!(
            cluster_seeds("redis+cluster://a:1/3"),
            Some(Err(_))
        ));
        assert!(matches!(
            cluster_seeds("redis+cluster://:pw@"),
            Some(Err(_))
        ));
    }

    #[test]
    fn passwords_never_show() {
        assert_eq!(
            redacted("redis://:secret@h:6379/0"),
            "redis://:***@h:6379/0"
        );
        assert_eq!(
            redacted("rediss+cluster://app:secret@a:1,b:2"),
            "rediss+cluster://app:***@a:1,b:2"
        );
        assert_eq!(redacted("redis://h:6379/"), "redis://h:6379/");
    }

    #[tokio::test]
    async fn a_bad_cluster_url_is_refused_without_its_password() {
        let Err(err) = RedisStore::connect("redis+cluster://:secret@a:1/9").await else {
            panic!("a cluster URL with a database was accepted");
        };
        let err = err.to_string();
        assert!(err.contains("no /db") && !err.contains("secret"), "{err}");
    }

    /// Redis Cluster's slot of `key`: CRC16 (XMODEM) of its hash tag, or of all of it.
    fn slot(key: &str) -> u16 {
        let bytes = key.as_bytes();
        let tagged = key
            .find('{')
            .and_then(|open| {
                let close = key[open + 1..].find('}')? + open + 1;
                (close > open + 1).then(|| &bytes[open + 1..close])
            })
            .unwrap_or(bytes);
        let mut crc: u16 = 0;
        for &b in tagged {
            crc ^= u16::from(b) << 8;
            for _ in 0..8 {
                crc = if crc & 0x8000 != 0 {
                    (crc << 1) ^ 0x1021
                } else {
                    crc << 1
                };
            }
        }
        crc % 16384
    }

    #[test]
    fn channels_share_their_keys_slots() {
        assert_eq!(bell_cluster(&bell_channel("prod-eu")), Some("prod-eu"));
        assert_eq!(bell_cluster("kl:reply:{b}"), None);
        // The slot `redis-cli cluster keyslot bed` answers.
        assert_eq!(slot("bed"), 11766);
        assert_eq!(slot(&bell_channel("c1")), slot(&queue_key("c1")));
        assert_eq!(slot(&link_key("c1")), slot(&info_key("c1")));
        assert_eq!(slot(&audit_head_key("broker_1")), slot(AUDIT));
        assert_eq!(slot(&webhook_key("wh_1")), slot(DELIVERIES_DUE));
    }
}
