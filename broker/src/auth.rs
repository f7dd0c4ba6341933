//! Credentials: API keys for callers and one token per cluster for agents.
//!
//! Secrets are hashed (SHA-256) as soon as they are loaded and only hashes are kept. A caller's
//! key is found by its hash; an agent token is compared with its cluster's hash in constant time.

use crate::metrics::{self, AuthFailure};
use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::ApiError;

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    /// Sessions, execute, results, cluster status.
    Read,
    /// Everything, including listing all sessions and clusters.
    Admin,
}

impl FromStr for Scope {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "read" => Ok(Self::Read),
            "admin" => Ok(Self::Admin),
            other => Err(format!("unknown scope `{other}` (expected read or admin)")),
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Read => "read",
            Self::Admin => "admin",
        })
    }
}

/// A secret given as `SCOPE=SECRET` / `CLUSTER=SECRET`, or with a pre-hashed secret as
/// `SCOPE=sha256:HEX`.
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

/// Hex SHA-256 of a secret, as accepted after `sha256:` in configuration.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(digest(secret))
}

/// Everything the broker accepts.
#[derive(Debug, Default)]
pub struct Credentials {
    keys: HashMap<[u8; 32], Scope>,
    agents: HashMap<String, [u8; 32]>,
}

impl Credentials {
    /// Builds the credential set from `SCOPE=KEY` and `CLUSTER=TOKEN` entries.
    pub fn new(api_keys: &[Credential], agent_tokens: &[Credential]) -> Result<Self, String> {
        let mut keys = HashMap::new();
        for key in api_keys {
            let scope: Scope = key
                .label
                .parse()
                .map_err(|e| format!("--api-key {}=…: {e}", key.label))?;
            keys.insert(key.hash, scope);
        }
        let mut agents = HashMap::new();
        for token in agent_tokens {
            kubeline_shared::api::check_cluster_id(&token.label)
                .map_err(|e| format!("--agent-token {}=…: {e}", token.label))?;
            if agents.insert(token.label.clone(), token.hash).is_some() {
                return Err(format!(
                    "--agent-token {}=…: cluster given twice; one token per cluster",
                    token.label
                ));
            }
        }
        Ok(Self { keys, agents })
    }

    /// The scope of an API key, if it is one.
    pub fn api_key_scope(&self, key: &str) -> Option<Scope> {
        self.api_key(key).map(|(_, scope)| scope)
    }

    /// The identity and scope of an API key, if it is one.
    pub fn api_key(&self, key: &str) -> Option<(KeyId, Scope)> {
        let hash = digest(key);
        self.keys.get(&hash).map(|scope| (KeyId(hash), *scope))
    }

    /// Whether `token` is the agent token of `cluster_id`, compared in constant time.
    pub fn agent_token_valid(&self, cluster_id: &str, token: &str) -> bool {
        match self.agents.get(cluster_id) {
            Some(expected) => bool::from(expected.ct_eq(&digest(token))),
            None => false,
        }
    }

    /// Whether any agent token is configured for `cluster_id`.
    pub fn knows_cluster(&self, cluster_id: &str) -> bool {
        self.agents.contains_key(cluster_id)
    }

    /// Clusters with an agent token.
    pub fn clusters(&self) -> impl Iterator<Item = &str> {
        self.agents.keys().map(String::as_str)
    }
}

/// The bearer token of a request, if any.
pub fn bearer(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get(AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// Which API key a caller used: the key's SHA-256, never the key itself. Limits that apply per
/// credential count by it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyId([u8; 32]);

impl KeyId {
    /// The identity of a key given in clear (tests and tools).
    pub fn of(key: &str) -> Self {
        Self(digest(key))
    }
}

impl fmt::Display for KeyId {
    /// A short fingerprint (the first 8 hex digits of the hash), enough for logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", hex::encode(&self.0[..4]))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

/// An authenticated API caller.
#[derive(Debug, Clone, Copy)]
pub struct Caller {
    /// Which key the caller used.
    pub key: KeyId,
    /// What the caller's key may do.
    pub scope: Scope,
}

impl Caller {
    /// Refuses callers without admin scope.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.scope == Scope::Admin {
            Ok(())
        } else {
            metrics::auth_failure(AuthFailure::Forbidden);
            Err(ApiError::forbidden(
                "This endpoint requires an API key with admin scope",
            ))
        }
    }
}

impl FromRequestParts<crate::AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &crate::AppState,
    ) -> Result<Self, ApiError> {
        let Some(key) = bearer(parts) else {
            metrics::auth_failure(AuthFailure::Missing);
            return Err(ApiError::unauthorized());
        };
        let Some((key, scope)) = state.credentials.api_key(key) else {
            metrics::auth_failure(AuthFailure::InvalidApiKey);
            return Err(ApiError::unauthorized());
        };
        Ok(Self { key, scope })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cred(s: &str) -> Credential {
        s.parse().unwrap()
    }

    #[test]
    fn keys_are_found_by_hash_with_their_scope() {
        let creds = Credentials::new(
            &[
                cred("admin=a-key"),
                cred(&format!("read=sha256:{}", hash_secret("r-key"))),
            ],
            &[],
        )
        .unwrap();
        assert_eq!(creds.api_key_scope("a-key"), Some(Scope::Admin));
        assert_eq!(creds.api_key_scope("r-key"), Some(Scope::Read));
        assert_eq!(creds.api_key_scope("other"), None);
    }

    #[test]
    fn agent_tokens_are_per_cluster() {
        let creds = Credentials::new(&[], &[cred("c1=t1"), cred("c2=t2")]).unwrap();
        assert!(creds.agent_token_valid("c1", "t1"));
        assert!(!creds.agent_token_valid("c1", "t2"));
        assert!(!creds.agent_token_valid("c3", "t1"));
    }

    #[test]
    fn bad_entries_are_refused_with_a_reason() {
        assert!("nolabel".parse::<Credential>().is_err());
        assert!("read=sha256:zz".parse::<Credential>().is_err());
        let err = Credentials::new(&[cred("root=x")], &[]).unwrap_err();
        assert!(err.contains("unknown scope"), "{err}");
        let err = Credentials::new(&[], &[cred("a b=t")]).unwrap_err();
        assert!(err.contains("Invalid cluster_id"), "{err}");
        let err = Credentials::new(&[], &[cred("c1=a"), cred("c1=b")]).unwrap_err();
        assert!(err.contains("one token per cluster"), "{err}");
    }
}
