//! The credentials the broker accepts: API keys and agent tokens, kept in the store.
//!
//! Secrets are hashed (SHA-256) as soon as they arrive; the store holds only hashes, and a
//! secret is found by its hash. Flags (`--api-key`, `--agent-token`) seed the store at start
//! (*bootstrap* credentials); the admin API creates, lists and revokes the rest. Every replica
//! caches lookups for [`CACHE_TTL`]; a revocation is announced through the store to every
//! replica, which drops its cached copy and ends what the credential keeps open (requests in
//! flight, agent links) at once.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use chrono::{DateTime, Utc};
use kubeline_shared::api::{AgentTokenInfo, ApiKeyInfo, RateLimits, Scope, check_cluster_id};
use rand::RngCore;
use sha2::{Digest, Sha256};
use tokio::sync::broadcast;
use tracing::{debug, info, warn};

use super::grant::Clusters;
use crate::store::{CredentialKind, CredentialRecord, Store, StoreError};

/// How long a replica trusts its cached copy of a credential. Revocations reach every replica
/// at once through the store; this bounds how stale a copy can get if such a message is lost
/// (a replica reconnecting to Redis) and how often expiry and rotation are re-read.
pub const CACHE_TTL: Duration = Duration::from_secs(5);
/// Most cached lookups per replica (known and unknown secrets); past it the cache starts over.
const CACHE_MAX: usize = 100_000;
/// `last_used_at` is written at most this often per credential and replica.
const TOUCH_EVERY: Duration = Duration::from_secs(60);
/// Prefix of generated API keys (so a leaked one is easy to scan for).
pub const API_KEY_PREFIX: &str = "kl_";
/// Prefix of generated agent tokens.
pub const AGENT_TOKEN_PREFIX: &str = "klat_";
/// Longest credential accepted on a request; anything longer is refused unread.
pub const MAX_SECRET_BYTES: usize = 8 * 1024;

/// A secret given in configuration: `LABEL=SECRET`, or with a pre-hashed secret
/// `LABEL=sha256:HEX`. For API keys LABEL is `SCOPE` or `SCOPE@PATTERNS` (`|`-separated cluster
/// ids and globs, `!` to deny); for agent tokens it is the cluster id.
#[derive(Clone)]
pub struct Credential {
    /// The part before `=`.
    pub label: String,
    hash: [u8; 32],
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Credential({}=…)", self.label)
    }
}

impl FromStr for Credential {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (label, secret) = s
            .split_once('=')
            .ok_or_else(|| "expected LABEL=SECRET".to_owned())?;
        if label.is_empty() || secret.is_empty() {
            return Err("expected LABEL=SECRET with both parts non-empty".to_owned());
        }
        let hash = match secret.strip_prefix("sha256:") {
            Some(hex_digest) => {
                let bytes = hex::decode(hex_digest)
                    .map_err(|_| "sha256: must be followed by 64 hex digits".to_owned())?;
                <[u8; 32]>::try_from(bytes.as_slice())
                    .map_err(|_| "sha256: must be followed by 64 hex digits".to_owned())?
            }
            None => digest(secret),
        };
        Ok(Self {
            label: label.to_owned(),
            hash,
        })
    }
}

fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Hex SHA-256 of a secret, as accepted after `sha256:` in configuration and kept in the store.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(digest(secret))
}

/// The id of a flag-given credential: derived from its hash, so the same flag names the same
/// record across restarts and replicas (and a revoked one stays revoked).
fn bootstrap_id(hash: &[u8; 32]) -> String {
    let mut h = Sha256::new();
    h.update(b"kubeline credential id\0");
    h.update(hash);
    format!("boot_{}", &hex::encode(h.finalize())[..16])
}

fn random_id(prefix: &str) -> String {
    let mut bytes = [0u8; 8];
    rand::rng().fill_bytes(&mut bytes);
    format!("{prefix}_{}", hex::encode(bytes))
}

fn random_secret(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// Parses an API key flag's label: `SCOPE` or `SCOPE@PATTERNS`.
fn parse_key_label(label: &str) -> Result<(Scope, Clusters), String> {
    let (scope, clusters) = match label.split_once('@') {
        Some((scope, patterns)) => {
            let patterns: Vec<&str> = patterns.split('|').collect();
            (scope, Clusters::parse(&patterns)?)
        }
        None => (label, Clusters::all()),
    };
    Ok((scope.parse()?, clusters))
}

/// Why a credential was refused. The messages say which check failed without telling a caller
/// whether some other secret exists.
#[derive(Debug)]
pub enum Refusal {
    /// No secret was sent.
    Missing,
    /// Not a secret the broker knows (of the kind asked for).
    Unknown,
    /// Revoked at the given time.
    Revoked,
    /// Past its expiry.
    Expired,
    /// The store could not be asked.
    Store(StoreError),
}

impl From<StoreError> for Refusal {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

/// One cached lookup: the record, or `None` for a secret the store does not know.
struct Cached {
    record: Option<Arc<CredentialRecord>>,
    at: Instant,
}

/// API keys and agent tokens: lookup (cached), bootstrap, creation, rotation and revocation.
pub struct Credentials {
    store: Arc<dyn Store>,
    /// The flag-given credentials by hash: put back into a store that lost them (a Redis
    /// restarted without persistence), so the broker's own configuration keeps working.
    bootstrap: HashMap<String, CredentialRecord>,
    cache: Mutex<HashMap<String, Cached>>,
    touched: Mutex<HashMap<String, Instant>>,
    changes: broadcast::Sender<Arc<str>>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Credentials")
    }
}

impl Credentials {
    /// Checks the flag-given credentials, seeds the store with them (a flag never brings back a
    /// credential that was revoked), and starts following revocations announced on `changes`
    /// (the hub forwards the store's [`crate::store::StoreEvent::CredentialChanged`] there).
    pub async fn bootstrap(
        store: Arc<dyn Store>,
        changes: broadcast::Sender<Arc<str>>,
        api_keys: &[Credential],
        agent_tokens: &[Credential],
    ) -> Result<Arc<Self>, String> {
        let mut records = Vec::new();
        for key in api_keys {
            let (scope, clusters) = parse_key_label(&key.label)
                .map_err(|e| format!("--api-key {}=…: {e}", key.label))?;
            records.push(CredentialRecord {
                name: Some(format!("--api-key {}", key.label)),
                bootstrap: true,
                ..CredentialRecord::new(
                    bootstrap_id(&key.hash),
                    CredentialKind::ApiKey,
                    hex::encode(key.hash),
                    Some(scope),
                    clusters.patterns(),
                )
            });
        }
        let mut seen = std::collections::HashSet::new();
        for token in agent_tokens {
            check_cluster_id(&token.label)
                .map_err(|e| format!("--agent-token {}=…: {e}", token.label))?;
            if !seen.insert(token.label.clone()) {
                return Err(format!(
                    "--agent-token {}=…: cluster given twice; one token per cluster (rotate \
                     with POST /admin/agent-tokens)",
                    token.label
                ));
            }
            records.push(CredentialRecord {
                name: Some(format!("--agent-token {}", token.label)),
                bootstrap: true,
                ..CredentialRecord::new(
                    bootstrap_id(&token.hash),
                    CredentialKind::AgentToken,
                    hex::encode(token.hash),
                    None,
                    vec![token.label.clone()],
                )
            });
        }
        // A secret names one credential: the same secret given twice would make the second
        // one a silent alias of the first.
        let mut hashes = std::collections::HashMap::new();
        for record in &records {
            if let Some(first) = hashes.insert(record.hash.as_str(), record) {
                return Err(format!(
                    "{} and {} give the same secret; give each its own",
                    first.name.as_deref().unwrap_or_default(),
                    record.name.as_deref().unwrap_or_default()
                ));
            }
        }
        for record in &records {
            let new = store
                .put_credential(record, true)
                .await
                .map_err(|e| format!("cannot store the flag-given credentials: {e}"))?;
            if !new {
                match store.get_credential(&record.id).await {
                    Ok(Some(existing)) if existing.hash != record.hash => {
                        return Err(format!(
                            "{}: its id {} is taken by another credential",
                            record.name.as_deref().unwrap_or_default(),
                            record.id
                        ));
                    }
                    Ok(Some(existing)) if existing.revoked_at.is_some() => warn!(
                        id = %record.id,
                        "{} was revoked; it stays refused (remove it from the configuration)",
                        record.name.as_deref().unwrap_or_default()
                    ),
                    _ => {}
                }
            }
        }
        let credentials = Arc::new(Self {
            store,
            bootstrap: records.into_iter().map(|r| (r.hash.clone(), r)).collect(),
            cache: Mutex::default(),
            touched: Mutex::default(),
            changes: changes.clone(),
        });
        let weak = Arc::downgrade(&credentials);
        let mut rx = changes.subscribe();
        tokio::spawn(async move {
            loop {
                let id = match rx.recv().await {
                    Ok(id) => Some(id),
                    // Missed some: forget everything rather than keep a revoked key.
                    Err(broadcast::error::RecvError::Lagged(_)) => None,
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                let Some(credentials) = weak.upgrade() else {
                    return;
                };
                credentials.forget(id.as_deref());
            }
        });
        Ok(credentials)
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<String, Cached>> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Drops the cached copy of credential `id` (all of them for `None`).
    pub fn forget(&self, id: Option<&str>) {
        let mut cache = self.cache();
        match id {
            Some(id) => cache.retain(|_, c| c.record.as_ref().is_none_or(|r| r.id != id)),
            None => cache.clear(),
        }
    }

    /// Revocations and rotations as they happen, on this replica and the others: the id of
    /// each changed credential.
    pub fn changes(&self) -> broadcast::Receiver<Arc<str>> {
        self.changes.subscribe()
    }

    /// The record of a secret's hash, from the cache when fresh.
    async fn lookup(&self, hash: &str) -> Result<Option<Arc<CredentialRecord>>, StoreError> {
        if let Some(cached) = self.cache().get(hash)
            && cached.at.elapsed() < CACHE_TTL
        {
            return Ok(cached.record.clone());
        }
        let mut record = self.store.credential_by_hash(hash).await?.map(Arc::new);
        if record.is_none()
            && let Some(seed) = self.bootstrap.get(hash)
        {
            warn!(id = %seed.id, "the store lost a flag-given credential; putting it back");
            self.store.put_credential(seed, true).await?;
            record = Some(Arc::new(seed.clone()));
        }
        let mut cache = self.cache();
        if cache.len() >= CACHE_MAX {
            cache.clear();
        }
        cache.insert(
            hash.to_owned(),
            Cached {
                record: record.clone(),
                at: Instant::now(),
            },
        );
        Ok(record)
    }

    /// Checks a secret of `kind`; a usable record, or why not.
    pub async fn check(
        &self,
        kind: CredentialKind,
        secret: &str,
    ) -> Result<Arc<CredentialRecord>, Refusal> {
        if secret.is_empty() {
            return Err(Refusal::Missing);
        }
        if secret.len() > MAX_SECRET_BYTES {
            return Err(Refusal::Unknown);
        }
        self.check_hash(kind, &hash_secret(secret)).await
    }

    /// As [`Credentials::check`], for a hash already known (a live link re-checking its token).
    pub async fn check_hash(
        &self,
        kind: CredentialKind,
        hash: &str,
    ) -> Result<Arc<CredentialRecord>, Refusal> {
        let record = self
            .lookup(hash)
            .await?
            .filter(|r| r.kind == kind)
            .ok_or(Refusal::Unknown)?;
        match record.usable(Utc::now()) {
            Ok(()) => {}
            Err("revoked") => return Err(Refusal::Revoked),
            Err(_) => return Err(Refusal::Expired),
        }
        self.touch(&record.id);
        Ok(record)
    }

    /// Writes `last_used_at` in the background, at most once a minute per credential.
    fn touch(&self, id: &str) {
        {
            let mut touched = self.touched.lock().unwrap_or_else(|e| e.into_inner());
            if touched.get(id).is_some_and(|at| at.elapsed() < TOUCH_EVERY) {
                return;
            }
            if touched.len() >= CACHE_MAX {
                touched.clear();
            }
            touched.insert(id.to_owned(), Instant::now());
        }
        let (store, id) = (self.store.clone(), id.to_owned());
        tokio::spawn(async move {
            if let Err(e) = store.touch_credential(&id, Utc::now()).await {
                debug!(error = %e, %id, "cannot record the credential's last use");
            }
        });
    }

    /// Whether an agent token exists for `cluster_id` that could link now.
    pub async fn knows_cluster(&self, cluster_id: &str) -> Result<bool, StoreError> {
        Ok(self.token_clusters().await?.iter().any(|c| c == cluster_id))
    }

    /// Clusters with a usable agent token.
    pub async fn token_clusters(&self) -> Result<Vec<String>, StoreError> {
        let now = Utc::now();
        let stored = self.store.list_credentials().await?;
        // Flag-given tokens count even if the store lost them (they are put back when used).
        let lost: Vec<CredentialRecord> = self
            .bootstrap
            .values()
            .filter(|b| !stored.iter().any(|r| r.id == b.id))
            .cloned()
            .collect();
        let mut clusters: Vec<String> = stored
            .into_iter()
            .chain(lost)
            .filter(|r| r.kind == CredentialKind::AgentToken && r.usable(now).is_ok())
            .flat_map(|r| r.clusters)
            .collect();
        clusters.sort();
        clusters.dedup();
        Ok(clusters)
    }

    // --- management (the admin API) ---

    /// A new API key, not stored yet: its secret (shown once) and record. [`Self::add`] stores
    /// it (after the audit trail has it).
    pub fn new_api_key(
        name: Option<String>,
        scope: Scope,
        clusters: &Clusters,
        expires_at: Option<DateTime<Utc>>,
        rate_limits: Option<RateLimits>,
    ) -> (String, CredentialRecord) {
        let secret = random_secret(API_KEY_PREFIX);
        let record = CredentialRecord {
            name,
            expires_at,
            rate_limits,
            ..CredentialRecord::new(
                random_id("key"),
                CredentialKind::ApiKey,
                hash_secret(&secret),
                Some(scope),
                clusters.patterns(),
            )
        };
        (secret, record)
    }

    /// A new agent token for `cluster_id`, not stored yet: its secret (shown once) and record.
    /// [`Self::add`] stores it.
    pub fn new_agent_token(cluster_id: &str) -> (String, CredentialRecord) {
        let secret = random_secret(AGENT_TOKEN_PREFIX);
        let record = CredentialRecord::new(
            random_id("atk"),
            CredentialKind::AgentToken,
            hash_secret(&secret),
            None,
            vec![cluster_id.to_owned()],
        );
        (secret, record)
    }

    /// Stores a new credential. For an agent token, the cluster's other usable tokens stop
    /// working after `overlap` (rotation); they are returned as they are now.
    pub async fn add(
        &self,
        record: &CredentialRecord,
        overlap: Duration,
    ) -> Result<Vec<CredentialRecord>, StoreError> {
        self.store.put_credential(record, true).await?;
        if record.kind == CredentialKind::ApiKey {
            info!(id = %record.id, scope = ?record.scope, clusters = ?record.clusters, "API key created");
            return Ok(Vec::new());
        }
        let cluster_id = record.clusters.first().map(String::as_str);
        let now = Utc::now();
        let until = now + chrono::Duration::from_std(overlap).unwrap_or(chrono::Duration::MAX);
        let mut replaced = Vec::new();
        for mut old in self.store.list_credentials().await? {
            // Flag-given tokens are the operator's configuration: the API does not end them
            // (revoke one explicitly, or remove it from the flags).
            if old.kind != CredentialKind::AgentToken
                || old.bootstrap
                || old.id == record.id
                || old.clusters.first().map(String::as_str) != cluster_id
                || old.usable(now).is_err()
            {
                continue;
            }
            if old.expires_at.is_none_or(|t| t > until) {
                old.expires_at = Some(until);
                self.store.put_credential(&old, false).await?;
                self.announce(&old.id).await;
            }
            replaced.push(old);
        }
        info!(id = %record.id, cluster = ?cluster_id, replaced = replaced.len(), overlap_s = overlap.as_secs(), "agent token created");
        Ok(replaced)
    }

    /// One credential of `kind` by id.
    pub async fn get(
        &self,
        kind: CredentialKind,
        id: &str,
    ) -> Result<Option<CredentialRecord>, StoreError> {
        Ok(self
            .store
            .get_credential(id)
            .await?
            .filter(|r| r.kind == kind))
    }

    /// Every credential of `kind`, oldest first.
    pub async fn list(&self, kind: CredentialKind) -> Result<Vec<CredentialRecord>, StoreError> {
        let mut all = self.store.list_credentials().await?;
        all.retain(|r| r.kind == kind);
        Ok(all)
    }

    /// Revokes credential `id` of `kind`: it is refused from now on, and every replica ends
    /// what it keeps open. Revoking again answers the first revocation. `None` if there is no
    /// such credential.
    pub async fn revoke(
        &self,
        kind: CredentialKind,
        id: &str,
    ) -> Result<Option<CredentialRecord>, StoreError> {
        let Some(mut record) = self.store.get_credential(id).await? else {
            return Ok(None);
        };
        if record.kind != kind {
            return Ok(None);
        }
        if record.revoked_at.is_none() {
            record.revoked_at = Some(Utc::now());
            self.store.put_credential(&record, false).await?;
            info!(%id, kind = ?kind, "credential revoked");
        }
        self.announce(id).await;
        Ok(Some(record))
    }

    /// Drops the local copy at once, then tells every replica (and this one's open requests
    /// and links) through the store.
    async fn announce(&self, id: &str) {
        self.forget(Some(id));
        if let Err(e) = self.store.announce_credential_change(id).await {
            // The record is already changed: other replicas see it within CACHE_TTL, and
            // this replica's open requests and links are told directly.
            warn!(error = %e, %id, "cannot announce the credential change; other replicas see it within {}s", CACHE_TTL.as_secs());
            let _ = self.changes.send(Arc::from(id));
        }
    }
}

/// The API view of an API key record.
pub fn api_key_info(r: &CredentialRecord) -> ApiKeyInfo {
    ApiKeyInfo {
        id: r.id.clone(),
        name: r.name.clone(),
        scope: r.scope.unwrap_or(Scope::Read),
        clusters: r.clusters.clone(),
        created_at: r.created_at,
        expires_at: r.expires_at,
        revoked_at: r.revoked_at,
        last_used_at: r.last_used_at,
        bootstrap: r.bootstrap,
        rate_limits: r.rate_limits,
    }
}

/// The API view of an agent token record.
pub fn agent_token_info(r: &CredentialRecord) -> AgentTokenInfo {
    AgentTokenInfo {
        id: r.id.clone(),
        cluster_id: r.clusters.first().cloned().unwrap_or_default(),
        created_at: r.created_at,
        expires_at: r.expires_at,
        revoked_at: r.revoked_at,
        last_used_at: r.last_used_at,
        bootstrap: r.bootstrap,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryStore;

    fn cred(s: &str) -> Credential {
        s.parse().unwrap()
    }

    async fn creds(keys: &[&str], tokens: &[&str]) -> Result<Arc<Credentials>, String> {
        let keys: Vec<_> = keys.iter().map(|k| cred(k)).collect();
        let tokens: Vec<_> = tokens.iter().map(|k| cred(k)).collect();
        Credentials::bootstrap(
            Arc::new(MemoryStore::new()),
            broadcast::channel(16).0,
            &keys,
            &tokens,
        )
        .await
    }

    #[tokio::test]
    async fn keys_are_found_by_hash_with_their_scope_and_clusters() {
        let c = creds(
            &[
                "admin=a-key",
                &format!("read@prod-*|!prod-x=sha256:{}", hash_secret("r-key")),
            ],
            &[],
        )
        .await
        .unwrap();
        let a = c.check(CredentialKind::ApiKey, "a-key").await.unwrap();
        assert_eq!(a.scope, Some(Scope::Admin));
        assert_eq!(a.clusters, ["*"]);
        let r = c.check(CredentialKind::ApiKey, "r-key").await.unwrap();
        assert_eq!(r.scope, Some(Scope::Read));
        assert_eq!(r.clusters, ["prod-*", "!prod-x"]);
        assert!(r.id.starts_with("boot_") && !r.id.contains(&r.hash[..8]));
        assert!(matches!(
            c.check(CredentialKind::ApiKey, "other").await,
            Err(Refusal::Unknown)
        ));
        assert!(matches!(
            c.check(CredentialKind::ApiKey, "").await,
            Err(Refusal::Missing)
        ));
    }

    #[tokio::test]
    async fn agent_tokens_are_per_cluster_and_not_api_keys() {
        let c = creds(&[], &["c1=t1", "c2=t2"]).await.unwrap();
        let t = c.check(CredentialKind::AgentToken, "t1").await.unwrap();
        assert_eq!(t.clusters, ["c1"]);
        assert!(matches!(
            c.check(CredentialKind::ApiKey, "t1").await,
            Err(Refusal::Unknown)
        ));
        assert!(c.knows_cluster("c2").await.unwrap());
        assert!(!c.knows_cluster("c3").await.unwrap());
    }

    #[tokio::test]
    async fn bad_entries_are_refused_with_a_reason() {
        assert!("nolabel".parse::<Credential>().is_err());
        assert!("read=sha256:zz".parse::<Credential>().is_err());
        let err = creds(&["root=x"], &[]).await.unwrap_err();
        assert!(err.contains("unknown scope"), "{err}");
        let err = creds(&["read@a b=x"], &[]).await.unwrap_err();
        assert!(err.contains("invalid cluster pattern"), "{err}");
        let err = creds(&[], &["a b=t"]).await.unwrap_err();
        assert!(err.contains("Invalid cluster_id"), "{err}");
        let err = creds(&[], &["c1=a", "c1=b"]).await.unwrap_err();
        assert!(err.contains("one token per cluster"), "{err}");
        let err = creds(&["read=same"], &["c1=same"]).await.unwrap_err();
        assert!(err.contains("give the same secret"), "{err}");
        let err = creds(&[], &["c1=t", "c2=t"]).await.unwrap_err();
        assert!(
            err.contains("--agent-token c1 and --agent-token c2"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn revoked_keys_are_refused_and_announced() {
        let c = creds(&["admin=a"], &[]).await.unwrap();
        let (secret, record) =
            Credentials::new_api_key(None, Scope::Read, &Clusters::all(), None, None);
        c.add(&record, Duration::ZERO).await.unwrap();
        assert!(secret.starts_with(API_KEY_PREFIX));
        assert_eq!(record.hash, hash_secret(&secret));
        c.check(CredentialKind::ApiKey, &secret).await.unwrap();
        let revoked = c
            .revoke(CredentialKind::ApiKey, &record.id)
            .await
            .unwrap()
            .unwrap();
        assert!(revoked.revoked_at.is_some());
        assert!(matches!(
            c.check(CredentialKind::ApiKey, &secret).await,
            Err(Refusal::Revoked)
        ));
        assert!(
            c.revoke(CredentialKind::AgentToken, &record.id)
                .await
                .unwrap()
                .is_none(),
            "a key is not an agent token"
        );
    }

    #[tokio::test]
    async fn expired_keys_are_refused() {
        let c = creds(&[], &[]).await.unwrap();
        let (secret, record) = Credentials::new_api_key(
            None,
            Scope::Read,
            &Clusters::all(),
            Some(Utc::now() - chrono::Duration::seconds(1)),
            None,
        );
        c.add(&record, Duration::ZERO).await.unwrap();
        assert!(matches!(
            c.check(CredentialKind::ApiKey, &secret).await,
            Err(Refusal::Expired)
        ));
    }

    #[tokio::test]
    async fn rotating_an_agent_token_ends_the_old_one_after_the_overlap() {
        let c = creds(&[], &["c1=flag"]).await.unwrap();
        let (old, record) = Credentials::new_agent_token("c1");
        let replaced = c.add(&record, Duration::from_secs(300)).await.unwrap();
        assert!(replaced.is_empty(), "a flag-given token is not rotated out");
        let (new, record) = Credentials::new_agent_token("c1");
        let replaced = c.add(&record, Duration::from_secs(300)).await.unwrap();
        assert_eq!(replaced.len(), 1);
        assert!(replaced[0].expires_at.is_some());
        c.check(CredentialKind::AgentToken, &old).await.unwrap();
        c.check(CredentialKind::AgentToken, &new).await.unwrap();
        let (_, record) = Credentials::new_agent_token("c1");
        let replaced = c.add(&record, Duration::ZERO).await.unwrap();
        assert_eq!(replaced.len(), 2, "both earlier API tokens end now");
        c.check(CredentialKind::AgentToken, "flag").await.unwrap();
        assert!(matches!(
            c.check(CredentialKind::AgentToken, &new).await,
            Err(Refusal::Expired)
        ));
    }

    #[tokio::test]
    async fn a_revoked_bootstrap_credential_stays_revoked_across_restarts() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let keys = [cred("read=boot-key")];
        let c = Credentials::bootstrap(store.clone(), broadcast::channel(4).0, &keys, &[])
            .await
            .unwrap();
        let id = c
            .check(CredentialKind::ApiKey, "boot-key")
            .await
            .unwrap()
            .id
            .clone();
        c.revoke(CredentialKind::ApiKey, &id).await.unwrap();
        let again = Credentials::bootstrap(store, broadcast::channel(4).0, &keys, &[])
            .await
            .unwrap();
        assert!(matches!(
            again.check(CredentialKind::ApiKey, "boot-key").await,
            Err(Refusal::Revoked)
        ));
    }
}
