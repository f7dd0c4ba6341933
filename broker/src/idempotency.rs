//! `Idempotency-Key` on `POST /debug/execute`: a caller whose connection died may send the same
//! request again with the same key and gets the first request's result (the same `result_id`)
//! instead of running the command again.
//!
//! The key is claimed in the store (atomically, for every replica) once the request is known to
//! be valid and before anything is queued; it names the `result_id` the command will have and a
//! fingerprint of the request. A second request with the key and the same fingerprint waits for
//! that result (until its own deadline) and answers it; with another fingerprint it is refused
//! (400 `idempotency_key_reused`). A request refused before it was queued (limits, full queue,
//! audit unavailable) gives its key back, so the retry runs. Keys belong to a credential and
//! live as long as results (`--result-ttl`).

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

/// A validated key of one request.
#[derive(Debug)]
pub struct IdempotencyKey {
    /// Store key: the credential and a hash of the caller's key.
    store_key: String,
    /// Hash of what the request asks for.
    fingerprint: String,
}

/// What claiming a key found.
#[derive(Debug)]
pub enum Claim {
    /// The key is this request's now.
    Taken,
    /// An earlier request with the same key and body: its `result_id`.
    Replay(String),
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
        })
    }

    /// Claims the key for `result_id`, or finds the request that holds it.
    pub async fn claim(&self, state: &AppState, result_id: &str) -> ApiResult<Claim> {
        let value = format!("{result_id} {}", self.fingerprint);
        let ttl = state.hub.settings().result_ttl;
        let Some(held) = state
            .hub
            .store()
            .claim_idempotency_key(&self.store_key, &value, ttl)
            .await?
        else {
            return Ok(Claim::Taken);
        };
        match held.split_once(' ') {
            Some((first, fingerprint)) if fingerprint == self.fingerprint => {
                Ok(Claim::Replay(first.to_owned()))
            }
            _ => Err(ApiError::bad_request(
                "This Idempotency-Key was used for a different request (cluster, session, \
                 command or arguments); use a new key for a new request",
                json!({ "field": "Idempotency-Key", "code": "idempotency_key_reused" }),
            )),
        }
    }

    /// Gives the key back after its request was refused before anything was queued.
    pub async fn release(&self, state: &AppState, result_id: &str) {
        let value = format!("{result_id} {}", self.fingerprint);
        if let Err(e) = state
            .hub
            .store()
            .release_idempotency_key(&self.store_key, &value)
            .await
        {
            // The key then names a result that never comes: a retry waits for it until its
            // deadline. Rare (the store failed twice in a row), and said in the log.
            warn!(error = %e, "could not give back an Idempotency-Key");
        }
    }
}

/// Waits (until `deadline`) for the result an earlier request with the same key runs, and
/// answers it as that request would have been answered.
pub async fn replay(
    state: &AppState,
    result_id: &str,
    deadline: DateTime<Utc>,
) -> ApiResult<CommandResult> {
    loop {
        let result = state.hub.store().get_result(result_id).await?;
        match result {
            Some(r) if r.status != ResultStatus::Pending => return Ok(r),
            _ if Utc::now() >= deadline => {
                return Err(ApiError::timeout(
                    format!(
                        "The command of this Idempotency-Key (result {result_id}) is still \
                         running; retry with the same key, or read GET /debug/result/{result_id}"
                    ),
                    json!({ "result_id": result_id, "status": "pending" }),
                ));
            }
            // Its pending placeholder is written with the command; before that (or after
            // the result's lifetime) there is nothing yet to read.
            _ => tokio::time::sleep(REPLAY_POLL).await,
        }
    }
}
