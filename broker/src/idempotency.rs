//! `Idempotency-Key` on `POST /debug/execute`: a caller whose connection died may send the same
//! request again with the same key and gets the first request's result (the same `result_id`)
//! instead of running the command again.
//!
//! The key is claimed in the store (atomically, for every replica) once the request is known to
//! be valid and before anything is queued; it names the `result_id` the command will have and a
//! fingerprint of the request. A second request with the key and the same fingerprint waits for
//! that result (until its own deadline) and answers it; with another fingerprint it is refused
//! (400 `idempotency_key_reused`). A request refused before it was queued (limits, full queue,
//! audit unavailable) gives its key back, so the retry runs; a key whose replica died between
//! claiming it and queueing the command (no result, not even pending) is taken over by the
//! retry, which runs the command: at once when the key names its replica and that replica's
//! liveness claim is gone, else [`ORPHANED_AFTER`] after the claim. Keys belong to a credential
//! and live as long as results (`--result-ttl`).

use std::time::Duration;

use axum::http::HeaderValue;
use chrono::{DateTime, Utc};
use kubeline_shared::api::{CommandResult, ResultStatus};
use serde_json::json;
use sha2::{Digest, Sha256};
use tracing::warn;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};

/// Longest `Idempotency-Key` accepted, in bytes.
pub const MAX_KEY_BYTES: usize = 255;
/// How often a replayed request looks for its result while the first one still runs.
const REPLAY_POLL: Duration = Duration::from_millis(100);
/// A claim this old whose command has no result at all (not even the pending placeholder
/// written with it) was left by a request that died before queueing: a retry takes it over.
pub const ORPHANED_AFTER: Duration = Duration::from_secs(5);

/// A validated key of one request.
#[derive(Debug)]
pub struct IdempotencyKey {
    /// Store key: the credential and a hash of the caller's key.
    store_key: String,
    /// Hash of what the request asks for.
    fingerprint: String,
    /// What the key holds once this request took it.
    taken: Option<String>,
}

/// What claiming a key found.
#[derive(Debug)]
pub enum Claim {
    /// The key is this request's now.
    Taken,
    /// An earlier request with the same key and body holds it.
    Replay(Held),
}

/// An earlier request's claim of a key: its `result_id`, and what the key holds.
#[derive(Debug)]
pub struct Held {
    /// The earlier request's `result_id`.
    pub result_id: String,
    /// When it claimed the key (Unix ms).
    claimed_ms: i64,
    /// The replica that claimed it (keys claimed by older replicas do not say).
    broker: Option<String>,
    /// The key's value, to take it over atomically.
    value: String,
}

/// How a replay ended.
#[derive(Debug)]
pub enum Replayed {
    /// The earlier request's result.
    Result(Box<CommandResult>),
    /// The earlier request died before queueing; the key is this request's now.
    TakenOver,
}

impl IdempotencyKey {
    /// Reads the header: 1 to [`MAX_KEY_BYTES`] visible ASCII characters. The fingerprint
    /// covers every field that decides what runs.
    pub fn new(
        caller: &Caller,
        key: &HeaderValue,
        request: &[&str],
        args: &[String],
        max_output_bytes: u64,
    ) -> ApiResult<Self> {
        let bytes = key.as_bytes();
        if bytes.is_empty()
            || bytes.len() > MAX_KEY_BYTES
            || !bytes.iter().all(|b| b.is_ascii_graphic())
        {
            return Err(ApiError::invalid_field(
                "Idempotency-Key",
                format!(
                    "Invalid Idempotency-Key header: give 1 to {MAX_KEY_BYTES} visible ASCII \
                     characters (a UUID is a good key)"
                ),
            ));
        }
        let mut fingerprint = Sha256::new();
        for part in request
            .iter()
            .copied()
            .chain(args.iter().map(String::as_str))
        {
            fingerprint.update((part.len() as u64).to_be_bytes());
            fingerprint.update(part.as_bytes());
        }
        fingerprint.update(max_output_bytes.to_be_bytes());
        let key_hash = hex::encode(Sha256::digest(bytes));
        Ok(Self {
            store_key: format!("{}:{}", caller.credential_id, &key_hash[..32]),
            fingerprint: hex::encode(fingerprint.finalize())[..32].to_owned(),
            taken: None,
        })
    }

    /// What the key holds for `result_id`, claimed by replica `broker`:
    /// `RESULT_ID FINGERPRINT CLAIMED_MS BROKER`.
    fn value(&self, result_id: &str, claimed_ms: i64, broker: &str) -> String {
        format!("{result_id} {} {claimed_ms} {broker}", self.fingerprint)
    }

    /// Claims the key for `result_id`, or finds the request that holds it.
    pub async fn claim(&mut self, state: &AppState, result_id: &str) -> ApiResult<Claim> {
        let value = self.value(
            result_id,
            Utc::now().timestamp_millis(),
            state.hub.broker_id(),
        );
        let ttl = state.hub.settings().result_ttl;
        let Some(held) = state
            .hub
            .store()
            .claim_idempotency_key(&self.store_key, &value, ttl)
            .await?
        else {
            self.taken = Some(value);
            return Ok(Claim::Taken);
        };
        let mut parts = held.split(' ');
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(first), Some(fingerprint), claimed, broker)
                if fingerprint == self.fingerprint =>
            {
                Ok(Claim::Replay(Held {
                    result_id: first.to_owned(),
                    claimed_ms: claimed.and_then(|c| c.parse().ok()).unwrap_or(0),
                    broker: broker.map(str::to_owned),
                    value: held.clone(),
                }))
            }
            _ => Err(ApiError::bad_request(
                "This Idempotency-Key was used for a different request (cluster, session, \
                 command or arguments); use a new key for a new request",
                json!({ "field": "Idempotency-Key", "code": "idempotency_key_reused" }),
            )),
        }
    }

    /// Waits (until `deadline`) for the result of the request that holds the key, and answers
    /// it as that request would have been answered; or, when that request died before queueing
    /// its command, takes the key over for `result_id` (this request then runs).
    pub async fn replay(
        &mut self,
        state: &AppState,
        mut held: Held,
        result_id: &str,
        deadline: DateTime<Utc>,
    ) -> ApiResult<Replayed> {
        let store = state.hub.store();
        loop {
            match store.get_result(&held.result_id).await? {
                Some(r) if r.status != ResultStatus::Pending => {
                    return Ok(Replayed::Result(Box::new(r)));
                }
                // Queued or running: its result comes (a dead replica's commands are taken over).
                Some(_) => {}
                None => {
                    let age = Utc::now().timestamp_millis() - held.claimed_ms;
                    if age >= ORPHANED_AFTER.as_millis() as i64
                        || claimer_is_gone(state, held.broker.as_deref()).await
                    {
                        let now = Utc::now().timestamp_millis();
                        let mine = self.value(result_id, now, state.hub.broker_id());
                        let ttl = state.hub.settings().result_ttl;
                        if store
                            .swap_idempotency_key(&self.store_key, &held.value, &mine, ttl)
                            .await?
                        {
                            warn!(
                                orphaned = %held.result_id,
                                "an Idempotency-Key's first request died before queueing; running it now"
                            );
                            self.taken = Some(mine);
                            return Ok(Replayed::TakenOver);
                        }
                        // Another retry took it over first (or the key ended): follow that one.
                        match self.claim(state, result_id).await? {
                            Claim::Replay(next) => {
                                held = next;
                                continue;
                            }
                            Claim::Taken => return Ok(Replayed::TakenOver),
                        }
                    }
                }
            }
            if Utc::now() >= deadline {
                return Err(ApiError::timeout(
                    format!(
                        "The command of this Idempotency-Key (result {}) is still running; \
                         retry with the same key, or read GET /debug/result/{}",
                        held.result_id, held.result_id
                    ),
                    json!({ "result_id": held.result_id, "status": "pending" }),
                ));
            }
            tokio::time::sleep(REPLAY_POLL).await;
        }
    }

    /// Gives the key back after its request was refused before anything was queued.
    pub async fn release(&self, state: &AppState) {
        let Some(value) = &self.taken else { return };
        if let Err(e) = state
            .hub
            .store()
            .release_idempotency_key(&self.store_key, value)
            .await
        {
            // The key then names a result that never comes: a retry takes it over once it is
            // [`ORPHANED_AFTER`] old. Rare (the store failed twice in a row), and said in the log.
            warn!(error = %e, "could not give back an Idempotency-Key");
        }
    }
}

/// Whether the replica that claimed a key is known to be gone (its liveness claim lapsed: killed,
/// or drained): then it will not queue the key's command, and a retry need not wait
/// [`ORPHANED_AFTER`]. Unknown (an older replica's claim) or unreadable: not known to be gone.
async fn claimer_is_gone(state: &AppState, broker: Option<&str>) -> bool {
    let Some(broker) = broker else { return false };
    matches!(state.hub.store().replica_is_alive(broker).await, Ok(false))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::CredentialKind;

    /// Key `name` of the `rd` caller, and a claim of it left by replica `broker` (no result: it died
    /// before queueing) just now, in the key's value format (`None`: an older replica's, with
    /// no replica named).
    async fn left_claim(state: &AppState, name: &str, broker: Option<&str>) -> IdempotencyKey {
        let record = state
            .credentials
            .check(CredentialKind::ApiKey, "rd")
            .await
            .unwrap();
        let caller = Caller::from_api_key(&record).unwrap();
        let header = HeaderValue::from_str(name).unwrap();
        let args = vec!["pods".to_owned()];
        let mut key =
            IdempotencyKey::new(&caller, &header, &["c1", "s", "get"], &args, 1024).unwrap();
        let now = Utc::now().timestamp_millis();
        let value = match broker {
            Some(broker) => key.value("res_first", now, broker),
            None => format!("res_first {} {now}", key.fingerprint),
        };
        let ttl = Duration::from_secs(60);
        let store = state.hub.store();
        assert!(
            store
                .claim_idempotency_key(&key.store_key, &value, ttl)
                .await
                .unwrap()
                .is_none()
        );
        key.taken = None;
        key
    }

    async fn retry(
        state: &AppState,
        key: &mut IdempotencyKey,
        within: chrono::Duration,
    ) -> ApiResult<Replayed> {
        let Claim::Replay(held) = key.claim(state, "res_retry").await.unwrap() else {
            panic!("the key is held");
        };
        assert_eq!(held.result_id, "res_first");
        key.replay(state, held, "res_retry", Utc::now() + within)
            .await
    }

    #[tokio::test]
    async fn a_claim_of_a_gone_replica_is_taken_over_at_once() {
        let state = crate::tests::state_with(crate::limits::ExecuteLimits::new(4, 4, 4)).await;
        let mut key = left_claim(&state, "killed", Some("broker_killed")).await;
        let started = std::time::Instant::now();
        let replayed = retry(&state, &mut key, chrono::Duration::seconds(30))
            .await
            .unwrap();
        assert!(matches!(replayed, Replayed::TakenOver), "{replayed:?}");
        assert!(
            started.elapsed() < ORPHANED_AFTER,
            "not after the time-based wait"
        );
        assert!(
            key.taken
                .as_deref()
                .is_some_and(|v| v.starts_with("res_retry "))
        );
    }

    #[tokio::test]
    async fn a_claim_of_a_live_or_unnamed_replica_is_waited_for() {
        let state = crate::tests::state_with(crate::limits::ExecuteLimits::new(4, 4, 4)).await;
        let store = state.hub.store();
        store
            .replica_alive("broker_alive", Duration::from_secs(60))
            .await
            .unwrap();
        for claimer in [Some("broker_alive"), None] {
            let name = claimer.unwrap_or("unnamed");
            let mut key = left_claim(&state, name, claimer).await;
            let answer = retry(&state, &mut key, chrono::Duration::milliseconds(300)).await;
            let Err(e) = answer else {
                panic!("{claimer:?}: taken over before {ORPHANED_AFTER:?}");
            };
            assert_eq!(e.status().as_u16(), 504, "{claimer:?}: {e:?}");
        }
    }
}
