//! JWT bearer tokens: an OIDC issuer's (or a JWKS file's) signed tokens, verified, and their
//! claims mapped to [`Access`]: a [`Scope`](crate::auth::Scope) on the clusters each matched binding names.
//!
//! Configuration is [`JwtArgs`] (`--jwt-*`, `KUBELINE_JWT_*`); [`JwtVerifier::new`] checks it,
//! [`JwtVerifier::start`] loads the keys and starts their refresh, [`JwtVerifier::verify`] checks
//! one token. The auth layer turns a [`JwtError`] into a 401.
//!
//! A token is accepted when, in this order:
//! 1. it is at most [`MAX_TOKEN_BYTES`] of three base64url parts whose header is a JSON object
//!    without `crit`;
//! 2. its header's `alg` is one of `--jwt-algorithms`, all asymmetric (HS* and `none` are refused
//!    at startup, so a token naming them is refused before any key is looked at);
//! 3. its `kid` names a key of the issuer's set (no `kid`: only if the set holds exactly one key),
//!    and that key's type, curve and own `alg` fit the token's `alg`;
//! 4. the signature verifies with that key;
//! 5. `exp` is present and not past, `nbf` (if present) not ahead, both with
//!    `--jwt-leeway-seconds`; `iss` is a string equal to `--jwt-issuer` byte for byte; `aud`
//!    (string or array) holds `--jwt-audience`; `sub` is a non-empty string.
//!
//! Keys are parsed once per load into ready decoding keys (module `jwks`) and replaced whole.
//! They are loaded again every `--jwt-refresh-seconds`, and at once (one fetch, shared by every
//! caller that waits for it) when a token names an unknown `kid` — at most once per
//! [`FORCED_REFRESH_INTERVAL`], so made-up `kid`s cannot make the broker hammer the issuer. A
//! failed load keeps the keys already held (stale on error); it is logged and counted in
//! `kubeline_jwks_refresh_total{outcome="failure"}`. Keys a token embeds (`jwk`, `jku`, `x5u`,
//! `x5c`) are never used.

mod grants;
mod jwks;

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;
use serde_json::{Map, Value};
use tokio::time::Instant;
use tracing::{debug, info, warn};

pub use grants::{GrantBinding, Matcher};
use jwks::{Key, KeySet, LoadError, Lookup, Source};

use crate::auth::Access;
use crate::metrics::{self, JwksRefresh};

/// Default `--jwt-algorithms`.
pub const DEFAULT_ALGORITHMS: &str = "RS256,ES256";
/// Default `--jwt-leeway-seconds`.
pub const DEFAULT_LEEWAY_SECONDS: u64 = 30;
/// Largest `--jwt-leeway-seconds`.
pub const MAX_LEEWAY_SECONDS: u64 = 300;
/// Default `--jwt-refresh-seconds`.
pub const DEFAULT_REFRESH_SECONDS: u64 = 600;
/// Smallest `--jwt-refresh-seconds`.
pub const MIN_REFRESH_SECONDS: u64 = 10;
/// Largest `--jwt-refresh-seconds` (a day).
pub const MAX_REFRESH_SECONDS: u64 = 86_400;
/// Default `--jwt-scopes-claim`.
pub const DEFAULT_SCOPES_CLAIM: &str = "scope";
/// Default `--jwt-groups-claim`.
pub const DEFAULT_GROUPS_CLAIM: &str = "groups";
/// Least time between two loads forced by unknown `kid`s.
pub const FORCED_REFRESH_INTERVAL: Duration = Duration::from_secs(30);
/// Longest token accepted. Tokens with many groups reach a few KiB; 16 KiB bounds the work a
/// caller can make the broker do before any signature is checked.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// The claim read for scopes besides `--jwt-scopes-claim` (an array, as Azure AD and Okta give).
const SCP_CLAIM: &str = "scp";
/// First wait before loading again after a failure; it doubles up to the refresh interval.
const FIRST_RETRY: Duration = Duration::from_secs(1);

/// Every asymmetric algorithm the verifier supports, in the order `--help` lists them.
const ASYMMETRIC: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

// === Configuration ===

impl Default for JwtArgs {
    /// JWTs off (no issuer), every other setting at its default.
    fn default() -> Self {
        Self {
            jwt_issuer: None,
            jwt_audience: None,
            jwt_jwks_file: None,
            jwt_algorithms: DEFAULT_ALGORITHMS
                .split(',')
                .map(|a| a.parse().expect("the default algorithms parse"))
                .collect(),
            jwt_leeway_seconds: DEFAULT_LEEWAY_SECONDS,
            jwt_refresh_seconds: DEFAULT_REFRESH_SECONDS,
            jwt_scopes_claim: DEFAULT_SCOPES_CLAIM.to_owned(),
            jwt_groups_claim: DEFAULT_GROUPS_CLAIM.to_owned(),
            jwt_grants: Vec::new(),
        }
    }
}

/// JWT configuration; every flag has a `KUBELINE_JWT_*` environment equivalent. Nothing is
/// enabled without `--jwt-issuer`.
#[derive(Debug, Clone, clap::Args)]
pub struct JwtArgs {
    /// Issuer of accepted JWTs: their `iss` must equal it byte for byte. Enables JWT bearer
    /// tokens. Without --jwt-jwks-file its keys come from OIDC discovery
    /// (URL/.well-known/openid-configuration, then its jwks_uri); https only, except http to a
    /// loopback address.
    #[arg(long = "jwt-issuer", env = "KUBELINE_JWT_ISSUER", value_name = "URL")]
    pub jwt_issuer: Option<String>,

    /// Audience tokens must name in `aud` (a string or an array). Required with --jwt-issuer.
    #[arg(
        long = "jwt-audience",
        env = "KUBELINE_JWT_AUDIENCE",
        value_name = "AUD"
    )]
    pub jwt_audience: Option<String>,

    /// JWKS file holding the issuer's public keys, read again every --jwt-refresh-seconds;
    /// replaces OIDC discovery.
    #[arg(
        long = "jwt-jwks-file",
        env = "KUBELINE_JWT_JWKS_FILE",
        value_name = "PATH"
    )]
    pub jwt_jwks_file: Option<PathBuf>,

    /// Accepted signature algorithms, comma-separated: RS256, RS384, RS512, PS256, PS384,
    /// PS512, ES256, ES384, EdDSA. Symmetric algorithms (HS*) and none are refused.
    #[arg(
        long = "jwt-algorithms",
        env = "KUBELINE_JWT_ALGORITHMS",
        value_name = "ALG",
        value_delimiter = ',',
        default_value = DEFAULT_ALGORITHMS
    )]
    pub jwt_algorithms: Vec<JwtAlgorithm>,

    /// Clock skew allowed when checking `exp` and `nbf`, in seconds (at most 300).
    #[arg(
        long = "jwt-leeway-seconds",
        env = "KUBELINE_JWT_LEEWAY_SECONDS",
        default_value_t = DEFAULT_LEEWAY_SECONDS
    )]
    pub jwt_leeway_seconds: u64,

    /// How often the issuer's keys are fetched (or the JWKS file read) again, in seconds
    /// (10 to 86400). A token with an unknown `kid` also forces a fetch, at most every 30 s.
    #[arg(
        long = "jwt-refresh-seconds",
        env = "KUBELINE_JWT_REFRESH_SECONDS",
        default_value_t = DEFAULT_REFRESH_SECONDS
    )]
    pub jwt_refresh_seconds: u64,

    /// Claim holding the token's scopes: a space-separated string (RFC 9068) or an array of
    /// strings. The `scp` claim is read too.
    #[arg(
        long = "jwt-scopes-claim",
        env = "KUBELINE_JWT_SCOPES_CLAIM",
        value_name = "CLAIM",
        default_value = DEFAULT_SCOPES_CLAIM
    )]
    pub jwt_scopes_claim: String,

    /// Claim holding the token's groups: an array of strings (or one string).
    #[arg(
        long = "jwt-groups-claim",
        env = "KUBELINE_JWT_GROUPS_CLAIM",
        value_name = "CLAIM",
        default_value = DEFAULT_GROUPS_CLAIM
    )]
    pub jwt_groups_claim: String,

    /// What a token gets, as MATCH=SCOPE@CLUSTERS: MATCH is group:NAME, scope:NAME or sub:NAME,
    /// SCOPE is read or admin, CLUSTERS is a |-separated list of cluster ids or globs (prod-*,
    /// *). A token gets the highest scope of the bindings it matches; none matched, no scope.
    /// Repeat the flag; in the environment variable separate bindings with `;`.
    #[arg(
        long = "jwt-grant",
        env = "KUBELINE_JWT_GRANTS",
        value_name = "MATCH=SCOPE@CLUSTERS",
        value_delimiter = ';'
    )]
    pub jwt_grants: Vec<GrantBinding>,
}

/// One of `--jwt-algorithms`: an asymmetric JOSE signature algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JwtAlgorithm(pub Algorithm);

impl FromStr for JwtAlgorithm {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let accepted = || {
            ASYMMETRIC
                .iter()
                .map(|a| jwks::algorithm_name(*a))
                .collect::<Vec<_>>()
                .join(", ")
        };
        if ["HS256", "HS384", "HS512"]
            .iter()
            .any(|h| h.eq_ignore_ascii_case(s))
        {
            return Err(format!(
                "{s} is symmetric: it verifies with a shared secret, which a public key set must \
                 never hold; only asymmetric algorithms are accepted: {}",
                accepted()
            ));
        }
        if s.eq_ignore_ascii_case("none") {
            return Err(format!(
                "`none` means unsigned tokens and is never accepted; use one of {}",
                accepted()
            ));
        }
        ASYMMETRIC
            .iter()
            .find(|a| jwks::algorithm_name(**a) == s)
            .map(|a| Self(*a))
            .ok_or_else(|| format!("unknown algorithm `{s}`; accepted: {}", accepted()))
    }
}

impl fmt::Display for JwtAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(jwks::algorithm_name(self.0))
    }
}

// === Verified tokens and errors ===

/// What a verified token says about its bearer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    /// `iss`, equal to `--jwt-issuer`.
    pub issuer: String,
    /// `sub`.
    pub subject: String,
    /// The groups claim's strings.
    pub groups: Vec<String>,
    /// The scopes claim's words and `scp`'s strings, without repeats.
    pub scopes: Vec<String>,
    /// `exp`.
    pub expires_at: DateTime<Utc>,
    /// What the bindings the token matched grant it, each scope on its own clusters (see
    /// [`crate::auth::Access`]); no grant when it matched none (the auth layer answers 403).
    pub access: Access,
}

/// Why a token was refused: one variant per check, each message naming the check (never a key
/// or a claim's value). Every variant is a 401 `unauthorized`; [`Self::reason`] is a short
/// label for metrics and logs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    /// Not a JWS in compact form with JSON header and payload, too long, or with an
    /// unsupported `crit` header.
    #[error("bearer token is malformed: {0}")]
    Malformed(&'static str),
    /// The header's `alg` is not one of `--jwt-algorithms`.
    #[error("token algorithm {0} is not accepted")]
    AlgorithmNotAllowed(String),
    /// The header's `alg` does not fit the key its `kid` names (type, curve or the key's `alg`).
    #[error("token algorithm does not match its signing key")]
    AlgorithmMismatch,
    /// The `kid` is not in the issuer's key set, even after a fresh load.
    #[error("token key id (kid) is not one of the issuer's signing keys")]
    UnknownKey,
    /// No `kid`, and the issuer's set holds more than one key.
    #[error("token has no key id (kid) and the issuer has several signing keys")]
    MissingKeyId,
    /// The signature does not verify with the key.
    #[error("token signature is invalid")]
    BadSignature,
    /// `exp` is past, leeway included.
    #[error("token has expired (exp)")]
    Expired,
    /// `nbf` is ahead, leeway included.
    #[error("token is not valid yet (nbf)")]
    NotYetValid,
    /// `iss` is not `--jwt-issuer`.
    #[error("token issuer (iss) is not the accepted issuer")]
    WrongIssuer,
    /// `aud` does not hold `--jwt-audience`.
    #[error("token audience (aud) does not include this service")]
    WrongAudience,
    /// A required claim (`exp`, `iss`, `aud`, `sub`) is absent or not of its type.
    #[error("token lacks the required claim {0}")]
    MissingClaim(&'static str),
    /// No key set has been loaded yet (the issuer has not answered since the broker started).
    #[error("the token issuer's signing keys are not available yet")]
    KeysUnavailable,
}

impl JwtError {
    /// A short label from a closed set, for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "malformed",
            Self::AlgorithmNotAllowed(_) => "algorithm_not_allowed",
            Self::AlgorithmMismatch => "algorithm_mismatch",
            Self::UnknownKey => "unknown_kid",
            Self::MissingKeyId => "missing_kid",
            Self::BadSignature => "bad_signature",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::WrongIssuer => "wrong_issuer",
            Self::WrongAudience => "wrong_audience",
            Self::MissingClaim(_) => "missing_claim",
            Self::KeysUnavailable => "keys_unavailable",
        }
    }
}

impl From<jsonwebtoken::errors::Error> for JwtError {
    fn from(e: jsonwebtoken::errors::Error) -> Self {
        match e.kind() {
            ErrorKind::InvalidSignature => Self::BadSignature,
            ErrorKind::ExpiredSignature => Self::Expired,
            ErrorKind::ImmatureSignature => Self::NotYetValid,
            ErrorKind::InvalidIssuer => Self::WrongIssuer,
            ErrorKind::InvalidAudience => Self::WrongAudience,
            ErrorKind::MissingRequiredClaim(claim) => Self::MissingClaim(claim_name(claim)),
            ErrorKind::InvalidClaimFormat(_) => {
                Self::Malformed("a time claim (exp or nbf) is not a number of seconds")
            }
            ErrorKind::InvalidAlgorithm
            | ErrorKind::MissingAlgorithm
            | ErrorKind::InvalidAlgorithmName => Self::AlgorithmMismatch,
            // The key parsed at load; a failure now is the signature's.
            ErrorKind::InvalidEcdsaKey
            | ErrorKind::InvalidEddsaKey
            | ErrorKind::InvalidRsaKey(_)
            | ErrorKind::InvalidKeyFormat
            | ErrorKind::Provider(_) => Self::BadSignature,
            ErrorKind::Base64(_) => Self::Malformed("a part is not base64url"),
            ErrorKind::Json(_) | ErrorKind::Utf8(_) => {
                Self::Malformed("header or payload is not a JSON object")
            }
            _ => Self::Malformed("not a signed JWT"),
        }
    }
}

fn claim_name(claim: &str) -> &'static str {
    match claim {
        "exp" => "exp",
        "iss" => "iss",
        "aud" => "aud",
        "sub" => "sub",
        "nbf" => "nbf",
        _ => "(registered claim)",
    }
}

// === Verifier ===

/// Verifies JWTs of one issuer. Cheap to clone (one shared state).
#[derive(Clone)]
pub struct JwtVerifier {
    inner: Arc<Inner>,
}

impl fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("issuer", &self.inner.issuer)
            .field("audience", &self.inner.audience)
            .field("source", &self.inner.source)
            .finish_non_exhaustive()
    }
}

struct Inner {
    issuer: String,
    audience: String,
    algorithms: Vec<Algorithm>,
    /// One `Validation` per accepted algorithm, built once.
    validations: Vec<(Algorithm, Validation)>,
    scopes_claim: String,
    groups_claim: String,
    bindings: Vec<GrantBinding>,
    source: Source,
    client: reqwest::Client,
    refresh: Duration,
    forced_interval: Duration,
    /// The current key set; `None` until the first load succeeds. Replaced whole.
    keys: RwLock<Option<Arc<KeySet>>>,
    /// Held while loading, so loads never overlap (single flight); holds when the last forced
    /// load started (the throttle).
    loading: tokio::sync::Mutex<Option<Instant>>,
    started: AtomicBool,
}

impl JwtVerifier {
    /// Checks the configuration. `Ok(None)` when JWTs are not enabled (no `--jwt-issuer`);
    /// errors name the flag at fault.
    pub fn new(args: &JwtArgs) -> Result<Option<Self>, String> {
        let Some(issuer) = args.jwt_issuer.clone() else {
            if args.jwt_audience.is_some()
                || args.jwt_jwks_file.is_some()
                || !args.jwt_grants.is_empty()
            {
                return Err(
                    "--jwt-audience, --jwt-jwks-file and --jwt-grant need --jwt-issuer".to_owned(),
                );
            }
            return Ok(None);
        };
        if issuer.trim().is_empty() {
            return Err("--jwt-issuer is empty".to_owned());
        }
        let audience = match args.jwt_audience.as_deref() {
            Some(aud) if !aud.trim().is_empty() => aud.to_owned(),
            _ => return Err("--jwt-audience is required with --jwt-issuer".to_owned()),
        };
        let mut algorithms: Vec<Algorithm> = Vec::new();
        for JwtAlgorithm(alg) in &args.jwt_algorithms {
            if !algorithms.contains(alg) {
                algorithms.push(*alg);
            }
        }
        if algorithms.is_empty() {
            return Err("--jwt-algorithms: name at least one algorithm".to_owned());
        }
        if args.jwt_leeway_seconds > MAX_LEEWAY_SECONDS {
            return Err(format!(
                "--jwt-leeway-seconds {}: at most {MAX_LEEWAY_SECONDS}",
                args.jwt_leeway_seconds
            ));
        }
        if !(MIN_REFRESH_SECONDS..=MAX_REFRESH_SECONDS).contains(&args.jwt_refresh_seconds) {
            return Err(format!(
                "--jwt-refresh-seconds {}: between {MIN_REFRESH_SECONDS} and {MAX_REFRESH_SECONDS}",
                args.jwt_refresh_seconds
            ));
        }
        for (flag, claim) in [
            ("--jwt-scopes-claim", &args.jwt_scopes_claim),
            ("--jwt-groups-claim", &args.jwt_groups_claim),
        ] {
            if claim.trim().is_empty() {
                return Err(format!("{flag} is empty"));
            }
        }
        let source = match &args.jwt_jwks_file {
            Some(path) => Source::File(path.clone()),
            None => Source::oidc(&issuer).map_err(|e| {
                format!("--jwt-issuer {issuer}: {e} (or give the keys with --jwt-jwks-file)")
            })?,
        };
        if args.jwt_grants.is_empty() {
            warn!(
                issuer,
                "no --jwt-grant: valid tokens will be accepted but granted nothing"
            );
        }
        let validations = algorithms
            .iter()
            .map(|alg| {
                let mut v = Validation::new(*alg);
                v.algorithms = vec![*alg];
                v.leeway = args.jwt_leeway_seconds;
                v.validate_exp = true;
                v.validate_nbf = true;
                v.validate_aud = true;
                v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
                v.set_issuer(&[&issuer]);
                v.set_audience(&[&audience]);
                (*alg, v)
            })
            .collect();
        let inner = Inner {
            issuer,
            audience,
            algorithms,
            validations,
            scopes_claim: args.jwt_scopes_claim.clone(),
            groups_claim: args.jwt_groups_claim.clone(),
            bindings: args.jwt_grants.clone(),
            source,
            client: jwks::client()?,
            refresh: Duration::from_secs(args.jwt_refresh_seconds),
            forced_interval: FORCED_REFRESH_INTERVAL,
            keys: RwLock::new(None),
            loading: tokio::sync::Mutex::new(None),
            started: AtomicBool::new(false),
        };
        Ok(Some(Self {
            inner: Arc::new(inner),
        }))
    }

    /// Loads the keys and starts refreshing them in the background (until the last clone of
    /// this verifier is dropped). Calling it again does nothing.
    ///
    /// Fails when the configuration is wrong: a JWKS file that cannot be read or holds no
    /// usable key, a discovery document that names another issuer or a `jwks_uri` that is not
    /// https. An issuer that cannot be reached (or answers an HTTP error) is not fatal, so an
    /// identity provider's outage cannot stop brokers from starting: the failure is logged,
    /// tokens get [`JwtError::KeysUnavailable`], and loading is retried after 1 s, 2 s, 4 s, …
    /// up to `--jwt-refresh-seconds`.
    pub async fn start(&self) -> Result<(), String> {
        if self.inner.started.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        let first = {
            let _loading = self.inner.loading.lock().await;
            self.inner.load().await
        };
        let failures = match first {
            Ok(_) => 0,
            Err(LoadError::Config(message)) => return Err(message),
            Err(LoadError::Transient(message)) => {
                warn!(
                    issuer = %self.inner.issuer,
                    error = %message,
                    "JWT signing keys not loaded; JWTs are refused until they are, retrying"
                );
                1
            }
        };
        tokio::spawn(refresh_loop(Arc::downgrade(&self.inner), failures));
        Ok(())
    }

    /// Loads the keys now (waiting for a load under way), keeping the old ones if it fails.
    /// Returns how many usable keys the new set holds.
    pub async fn refresh(&self) -> Result<usize, String> {
        let _loading = self.inner.loading.lock().await;
        self.inner.load().await.map_err(|e| e.message().to_owned())
    }

    /// The configured issuer.
    pub fn issuer(&self) -> &str {
        &self.inner.issuer
    }

    /// Verifies a token (the bearer credential, without `Bearer `) and maps its claims to a
    /// scope and clusters.
    pub async fn verify(&self, token: &str) -> Result<VerifiedToken, JwtError> {
        let header = Header::parse(token, &self.inner.algorithms)?;
        let key = self.key_for(header.kid.as_deref()).await?;
        if !key.algorithms.contains(&header.alg) {
            return Err(JwtError::AlgorithmMismatch);
        }
        let validation = self
            .inner
            .validations
            .iter()
            .find_map(|(alg, v)| (*alg == header.alg).then_some(v))
            .ok_or(JwtError::AlgorithmMismatch)?;
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, validation)?;
        self.inner.verified(data.claims)
    }

    /// The key a token's `kid` names, loading the set again once if it is unknown.
    async fn key_for(&self, kid: Option<&str>) -> Result<Arc<Key>, JwtError> {
        let seen = self.inner.current();
        if let Some(keys) = &seen {
            match keys.find(kid) {
                Lookup::Found(key) => return Ok(key),
                Lookup::Ambiguous => return Err(JwtError::MissingKeyId),
                Lookup::UnknownKid => {}
            }
        }
        // An unknown kid (the issuer may have rotated its keys), or no keys yet.
        self.inner.forced_load(seen.as_ref()).await;
        let Some(keys) = self.inner.current() else {
            return Err(JwtError::KeysUnavailable);
        };
        match keys.find(kid) {
            Lookup::Found(key) => Ok(key),
            Lookup::Ambiguous => Err(JwtError::MissingKeyId),
            Lookup::UnknownKid => Err(JwtError::UnknownKey),
        }
    }

    /// Shorter refresh and throttle intervals, for tests. Only before [`Self::start`].
    #[cfg(test)]
    fn with_timing(mut self, refresh: Duration, forced_interval: Duration) -> Self {
        let inner = Arc::get_mut(&mut self.inner).expect("not started, not cloned");
        inner.refresh = refresh;
        inner.forced_interval = forced_interval;
        self
    }
}

impl Inner {
    fn current(&self) -> Option<Arc<KeySet>> {
        self.keys.read().expect("not poisoned").clone()
    }

    /// Loads the key set and installs it; on failure keeps the current one. The caller holds
    /// `loading`.
    async fn load(&self) -> Result<usize, LoadError> {
        match self.source.load(&self.client, &self.algorithms).await {
            Ok(set) => {
                let count = set.count();
                let kids = set.kids().join(",");
                let previous = self
                    .keys
                    .write()
                    .expect("not poisoned")
                    .replace(Arc::new(set));
                metrics::jwks_refresh(JwksRefresh::Success);
                if previous.is_none_or(|p| p.kids().join(",") != kids) {
                    info!(issuer = %self.issuer, keys = count, kids, "JWT signing keys loaded");
                } else {
                    debug!(issuer = %self.issuer, keys = count, "JWT signing keys refreshed");
                }
                Ok(count)
            }
            Err(e) => {
                metrics::jwks_refresh(JwksRefresh::Failure);
                warn!(
                    issuer = %self.issuer,
                    error = %e.message(),
                    "loading JWT signing keys failed; keeping the keys held"
                );
                Err(e)
            }
        }
    }

    /// A load forced by an unknown `kid`: shared by every caller that waits for it, and at
    /// most one per `forced_interval`. `seen` is the set the caller looked in.
    async fn forced_load(&self, seen: Option<&Arc<KeySet>>) {
        let mut last_forced = self.loading.lock().await;
        // Another caller (or the timer) loaded while this one waited: look again instead.
        let changed = match (seen, self.current()) {
            (Some(seen), Some(now)) => !Arc::ptr_eq(seen, &now),
            (None, now) => now.is_some(),
            (Some(_), None) => false,
        };
        if changed {
            return;
        }
        if let Some(at) = *last_forced
            && at.elapsed() < self.forced_interval
        {
            metrics::jwks_refresh(JwksRefresh::Throttled);
            debug!(issuer = %self.issuer, "unknown kid: key reload throttled");
            return;
        }
        *last_forced = Some(Instant::now());
        // Failures are logged and counted by `load`; the old keys stay.
        let _ = self.load().await;
    }

    /// Reads the claims of a token whose signature and registered claims have been checked.
    fn verified(&self, claims: Map<String, Value>) -> Result<VerifiedToken, JwtError> {
        // `iss` is checked again here because the library also accepts an array holding the
        // issuer; only the exact string is accepted.
        let issuer = match claims.get("iss") {
            Some(Value::String(iss)) if *iss == self.issuer => iss.clone(),
            Some(_) => return Err(JwtError::WrongIssuer),
            None => return Err(JwtError::MissingClaim("iss")),
        };
        let subject = match claims.get("sub") {
            Some(Value::String(sub)) if !sub.is_empty() => sub.clone(),
            _ => return Err(JwtError::MissingClaim("sub")),
        };
        let expires_at = claims
            .get("exp")
            .and_then(seconds)
            .ok_or(JwtError::MissingClaim("exp"))?;
        let groups = strings(claims.get(&self.groups_claim), false);
        let mut scopes = strings(claims.get(&self.scopes_claim), true);
        if self.scopes_claim != SCP_CLAIM {
            for scope in strings(claims.get(SCP_CLAIM), true) {
                if !scopes.contains(&scope) {
                    scopes.push(scope);
                }
            }
        }
        let access = grants::resolve(&self.bindings, &subject, &groups, &scopes);
        Ok(VerifiedToken {
            issuer,
            subject,
            groups,
            scopes,
            expires_at,
            access,
        })
    }
}

/// Refreshes the keys every `refresh` (±10 %), sooner after a failure; ends with the verifier.
async fn refresh_loop(inner: Weak<Inner>, mut failures: u32) {
    loop {
        let delay = {
            let Some(inner) = inner.upgrade() else { return };
            if failures == 0 {
                // Spread replicas' fetches so they do not all reach the issuer at once.
                inner.refresh.mul_f64(rand::random_range(0.9..1.1))
            } else {
                FIRST_RETRY
                    .saturating_mul(1 << (failures - 1).min(16))
                    .min(inner.refresh)
            }
        };
        tokio::time::sleep(delay).await;
        let Some(inner) = inner.upgrade() else { return };
        let _loading = inner.loading.lock().await;
        match inner.load().await {
            Ok(_) => failures = 0,
            Err(_) => failures = failures.saturating_add(1),
        }
    }
}

/// A claim's strings: a string (split at whitespace when `words`), or an array's strings.
/// Anything else gives nothing: these claims only ever add grants.
fn strings(value: Option<&Value>, words: bool) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut push = |s: &str| {
        if !s.is_empty() && !out.iter().any(|o| o == s) {
            out.push(s.to_owned());
        }
    };
    match value {
        Some(Value::String(s)) if words => s.split_ascii_whitespace().for_each(&mut push),
        Some(Value::String(s)) => push(s),
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).for_each(&mut push),
        _ => {}
    }
    out
}

/// A NumericDate claim as a time (fractions rounded as the library does; past the calendar's
/// end, its end).
fn seconds(value: &Value) -> Option<DateTime<Utc>> {
    let secs = match value {
        Value::Number(n) => match (n.as_u64(), n.as_f64()) {
            (Some(u), _) => u,
            (None, Some(f)) if f.is_finite() && f >= 0.0 => f.round() as u64,
            _ => return None,
        },
        _ => return None,
    };
    Some(
        i64::try_from(secs)
            .ok()
            .and_then(|s| DateTime::from_timestamp(s, 0))
            .unwrap_or(DateTime::<Utc>::MAX_UTC),
    )
}

/// What the broker reads of a token's header before choosing a key.
struct Header {
    alg: Algorithm,
    kid: Option<String>,
}

impl Header {
    /// Checks the token's shape and its `alg` against the accepted list.
    fn parse(token: &str, accepted: &[Algorithm]) -> Result<Self, JwtError> {
        #[derive(Deserialize)]
        struct Raw {
            alg: String,
            #[serde(default)]
            kid: Option<String>,
            #[serde(default)]
            crit: Option<serde::de::IgnoredAny>,
        }
        if token.len() > MAX_TOKEN_BYTES {
            return Err(JwtError::Malformed("longer than 16 KiB"));
        }
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwtError::Malformed("not three dot-separated parts"));
        };
        let header = URL_SAFE_NO_PAD
            .decode(header)
            .map_err(|_| JwtError::Malformed("a part is not base64url"))?;
        let raw: Raw = serde_json::from_slice(&header)
            .map_err(|_| JwtError::Malformed("header is not a JSON object with alg"))?;
        let alg = accepted
            .iter()
            .find(|a| jwks::algorithm_name(**a) == raw.alg)
            .copied()
            .ok_or_else(|| JwtError::AlgorithmNotAllowed(shown(&raw.alg)))?;
        if raw.crit.is_some() {
            return Err(JwtError::Malformed(
                "critical header parameters (crit) are not supported",
            ));
        }
        if payload.is_empty() || signature.is_empty() {
            return Err(JwtError::Malformed("empty payload or signature"));
        }
        Ok(Self { alg, kid: raw.kid })
    }
}

/// An `alg` as it may appear in a message: short alphanumerics only, since the caller wrote it.
fn shown(alg: &str) -> String {
    if !alg.is_empty() && alg.len() <= 16 && alg.bytes().all(|b| b.is_ascii_alphanumeric()) {
        alg.to_owned()
    } else {
        "(unrecognised)".to_owned()
    }
}

#[cfg(test)]
mod tests {
    //! Against a real issuer: an axum server on 127.0.0.1:0 serving discovery and a JWKS made
    //! of keys generated here, signing with `jsonwebtoken::encode`.

    use super::*;
    use crate::auth::Scope;
    use std::sync::LazyLock;
    use std::sync::Mutex;

    use axum::Router;
    use axum::http::StatusCode;
    use axum::response::{IntoResponse, Response};
    use axum::routing::get;
    use clap::Parser;
    use jsonwebtoken::{EncodingKey, encode};
    use p256::elliptic_curve::sec1::ToEncodedPoint;
    use p256::pkcs8::EncodePrivateKey;
    use rsa::pkcs1::EncodeRsaPrivateKey;
    use rsa::rand_core::OsRng;
    use rsa::traits::PublicKeyParts;
    use serde_json::json;

    const AUDIENCE: &str = "kubeline";

    // --- keys ---

    struct TestKey {
        alg: Algorithm,
        encoding: EncodingKey,
        /// The public JWK without `kid`.
        public: Value,
    }

    impl TestKey {
        fn rsa() -> Self {
            let private = rsa::RsaPrivateKey::new(&mut OsRng, 2048).unwrap();
            let der = private.to_pkcs1_der().unwrap();
            Self {
                alg: Algorithm::RS256,
                encoding: EncodingKey::from_rsa_der(der.as_bytes()),
                public: json!({
                    "kty": "RSA", "use": "sig", "alg": "RS256",
                    "n": b64(&private.n().to_bytes_be()), "e": b64(&private.e().to_bytes_be()),
                }),
            }
        }

        fn p256() -> Self {
            let secret = p256::SecretKey::random(&mut OsRng);
            let der = secret.to_pkcs8_der().unwrap();
            let point = secret.public_key().to_encoded_point(false);
            Self {
                alg: Algorithm::ES256,
                encoding: EncodingKey::from_ec_der(der.as_bytes()),
                public: json!({
                    "kty": "EC", "crv": "P-256", "alg": "ES256",
                    "x": b64(point.x().unwrap()), "y": b64(point.y().unwrap()),
                }),
            }
        }

        fn jwk(&self, kid: &str) -> Value {
            let mut jwk = self.public.clone();
            jwk["kid"] = json!(kid);
            jwk
        }

        fn sign(&self, kid: Option<&str>, claims: &Value) -> String {
            let mut header = jsonwebtoken::Header::new(self.alg);
            header.kid = kid.map(str::to_owned);
            encode(&header, claims, &self.encoding).unwrap()
        }
    }

    /// Generated once for all tests (RSA key generation takes a while in debug builds).
    static RSA_A: LazyLock<TestKey> = LazyLock::new(TestKey::rsa);
    static RSA_B: LazyLock<TestKey> = LazyLock::new(TestKey::rsa);
    static EC_A: LazyLock<TestKey> = LazyLock::new(TestKey::p256);

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    fn jwks(keys: &[(&TestKey, &str)]) -> Value {
        json!({ "keys": keys.iter().map(|(k, kid)| k.jwk(kid)).collect::<Vec<_>>() })
    }

    fn now() -> i64 {
        Utc::now().timestamp()
    }

    fn claims(issuer: &str) -> Value {
        json!({
            "iss": issuer, "aud": AUDIENCE, "sub": "alice",
            "iat": now(), "exp": now() + 300,
        })
    }

    fn with(mut claims: Value, changes: Value) -> Value {
        for (k, v) in changes.as_object().unwrap() {
            if v.is_null() {
                claims.as_object_mut().unwrap().remove(k);
            } else {
                claims[k] = v.clone();
            }
        }
        claims
    }

    // --- the issuer ---

    struct IssuerState {
        jwks: Value,
        /// What discovery says the issuer is; `None`: the real URL.
        claimed: Option<String>,
        jwks_hits: usize,
        up: bool,
    }

    struct TestIssuer {
        url: String,
        state: Arc<Mutex<IssuerState>>,
        task: tokio::task::JoinHandle<()>,
    }

    impl TestIssuer {
        async fn start(jwks: Value) -> Self {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = format!(
                "http://127.0.0.1:{}/realms/kubeline",
                listener.local_addr().unwrap().port()
            );
            let state = Arc::new(Mutex::new(IssuerState {
                jwks,
                claimed: None,
                jwks_hits: 0,
                up: true,
            }));
            let discovery = {
                let (state, url) = (state.clone(), url.clone());
                move || {
                    let st = state.lock().unwrap();
                    let answer = if st.up {
                        let issuer = st.claimed.clone().unwrap_or_else(|| url.clone());
                        axum::Json(json!({
                            "issuer": issuer,
                            "jwks_uri": format!("{url}/protocol/openid-connect/certs"),
                            "id_token_signing_alg_values_supported": ["RS256", "ES256"],
                        }))
                        .into_response()
                    } else {
                        StatusCode::SERVICE_UNAVAILABLE.into_response()
                    };
                    async move { answer }
                }
            };
            let certs = {
                let state = state.clone();
                move || {
                    let mut st = state.lock().unwrap();
                    st.jwks_hits += 1;
                    let answer = if st.up {
                        axum::Json(st.jwks.clone()).into_response()
                    } else {
                        StatusCode::SERVICE_UNAVAILABLE.into_response()
                    };
                    async move { answer }
                }
            };
            let app: Router = Router::new()
                .route(
                    "/realms/kubeline/.well-known/openid-configuration",
                    get(discovery),
                )
                .route("/realms/kubeline/protocol/openid-connect/certs", get(certs))
                .route(
                    "/huge",
                    get(|| async {
                        Response::new(axum::body::Body::from(vec![b' '; 2 * 1024 * 1024]))
                    }),
                );
            let task = tokio::spawn(async move {
                axum::serve(listener, app).await.unwrap();
            });
            Self { url, state, task }
        }

        fn hits(&self) -> usize {
            self.state.lock().unwrap().jwks_hits
        }

        fn set_jwks(&self, jwks: Value) {
            self.state.lock().unwrap().jwks = jwks;
        }

        fn set_up(&self, up: bool) {
            self.state.lock().unwrap().up = up;
        }

        fn claim_issuer(&self, issuer: &str) {
            self.state.lock().unwrap().claimed = Some(issuer.to_owned());
        }

        fn claims(&self) -> Value {
            claims(&self.url)
        }
    }

    impl Drop for TestIssuer {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    // --- verifiers ---

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        jwt: JwtArgs,
    }

    fn args(list: &[&str]) -> JwtArgs {
        Cli::try_parse_from(std::iter::once("kubeline").chain(list.iter().copied()))
            .unwrap()
            .jwt
    }

    fn new_verifier(list: &[&str]) -> Result<Option<JwtVerifier>, String> {
        JwtVerifier::new(&args(list))
    }

    async fn verifier(issuer: &TestIssuer, extra: &[&str]) -> JwtVerifier {
        let mut list: Vec<&str> = vec!["--jwt-issuer", &issuer.url, "--jwt-audience", AUDIENCE];
        list.extend_from_slice(extra);
        let v = new_verifier(&list).unwrap().unwrap();
        v.start().await.unwrap();
        v
    }

    /// Polls `check` until it holds, or fails after a deadline (no bare sleeps).
    async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !check().await {
            assert!(Instant::now() < deadline, "never happened: {what}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    // --- configuration ---

    #[test]
    fn the_flags_are_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
        let a = args(&[]);
        assert_eq!(
            a.jwt_algorithms,
            [
                JwtAlgorithm(Algorithm::RS256),
                JwtAlgorithm(Algorithm::ES256)
            ]
        );
        assert_eq!(
            (a.jwt_leeway_seconds, a.jwt_refresh_seconds),
            (DEFAULT_LEEWAY_SECONDS, DEFAULT_REFRESH_SECONDS)
        );
        assert_eq!(
            (a.jwt_scopes_claim.as_str(), a.jwt_groups_claim.as_str()),
            ("scope", "groups")
        );
    }

    #[test]
    fn without_an_issuer_nothing_is_enabled() {
        assert!(new_verifier(&[]).unwrap().is_none());
        let err = new_verifier(&["--jwt-audience", "a"]).unwrap_err();
        assert!(err.contains("need --jwt-issuer"), "{err}");
        let err = new_verifier(&["--jwt-grant", "group:g=read@*"]).unwrap_err();
        assert!(err.contains("need --jwt-issuer"), "{err}");
    }

    #[test]
    fn bad_configuration_is_refused_naming_the_flag() {
        let base = ["--jwt-issuer", "https://idp.example", "--jwt-audience", "k"];
        let with = |extra: &[&str]| -> Vec<String> {
            base.iter().chain(extra).map(|s| (*s).to_owned()).collect()
        };
        // Refused by the flag's own parser: clap names the flag.
        for (extra, needle) in [
            (&["--jwt-algorithms", "HS256"][..], "symmetric"),
            (&["--jwt-algorithms", "RS256,hs512"][..], "symmetric"),
            (&["--jwt-algorithms", "none"][..], "never accepted"),
            (&["--jwt-algorithms", "RS257"][..], "unknown algorithm"),
            (&["--jwt-grant", "group:sre=root@*"][..], "unknown scope"),
            (&["--jwt-grant", "sre=admin@*"][..], "MATCH must be"),
            (&["--jwt-leeway-seconds", "soon"][..], "invalid value"),
        ] {
            let err =
                Cli::try_parse_from(std::iter::once("kubeline".to_owned()).chain(with(extra)))
                    .err()
                    .unwrap_or_else(|| panic!("{extra:?} accepted"))
                    .to_string();
            assert!(
                err.contains(extra[0]) && err.contains(needle),
                "{extra:?}: {err}"
            );
        }
        // Refused by `new`, which names the flag itself.
        let own = |list: &[&str]| -> Vec<String> { list.iter().map(|s| (*s).to_owned()).collect() };
        for (list, needle) in [
            (
                own(&["--jwt-issuer", "https://idp.example"]),
                "--jwt-audience is required",
            ),
            (
                own(&["--jwt-issuer", "", "--jwt-audience", "k"]),
                "--jwt-issuer is empty",
            ),
            (
                own(&["--jwt-issuer", "http://idp.example", "--jwt-audience", "k"]),
                "--jwt-issuer http://idp.example: http is accepted only to a loopback",
            ),
            (
                own(&["--jwt-issuer", "idp", "--jwt-audience", "k"]),
                "--jwt-issuer idp: not a URL",
            ),
            (
                with(&["--jwt-leeway-seconds", "301"]),
                "--jwt-leeway-seconds 301",
            ),
            (
                with(&["--jwt-refresh-seconds", "1"]),
                "--jwt-refresh-seconds 1",
            ),
            (
                with(&["--jwt-scopes-claim", " "]),
                "--jwt-scopes-claim is empty",
            ),
        ] {
            let list: Vec<&str> = list.iter().map(String::as_str).collect();
            let err = new_verifier(&list).unwrap_err();
            assert!(err.contains(needle), "{list:?}: {err}");
        }
        // A JWKS file does not need a URL issuer; loopback http does not need a file.
        assert!(
            new_verifier(&[
                "--jwt-issuer",
                "my-issuer",
                "--jwt-audience",
                "k",
                "--jwt-jwks-file",
                "/x"
            ])
            .unwrap()
            .is_some()
        );
        assert!(
            new_verifier(&["--jwt-issuer", "http://localhost:9/", "--jwt-audience", "k"])
                .unwrap()
                .is_some()
        );
    }

    // --- verification ---

    #[tokio::test]
    async fn valid_rs256_and_es256_tokens_verify() {
        let issuer = TestIssuer::start(jwks(&[(&RSA_A, "r1"), (&EC_A, "e1")])).await;
        let v = verifier(&issuer, &["--jwt-grant", "sub:alice=read@dev-*"]).await;
        let exp = now() + 300;
        for (key, kid) in [(&*RSA_A, "r1"), (&*EC_A, "e1")] {
            let token = key.sign(Some(kid), &with(issuer.claims(), json!({"exp": exp})));
            let t = v.verify(&token).await.unwrap();
            assert_eq!(t.issuer, issuer.url);
            assert_eq!(t.subject, "alice");
            assert_eq!(t.expires_at.timestamp(), exp);
            assert_eq!(t.access.to_string(), "read on dev-*");
            assert!(t.access.may_reach("dev-1") && !t.access.may_reach("prod-1"));
        }
        // An `aud` array holding the audience is fine too.
        let token = RSA_A.sign(
            Some("r1"),
            &with(issuer.claims(), json!({"aud": ["x", AUDIENCE]})),
        );
        v.verify(&token).await.unwrap();
        assert_eq!(issuer.hits(), 1, "one load at start, none per token");
    }

    #[tokio::test]
    async fn time_claims_are_checked_with_leeway() {
        let issuer = TestIssuer::start(jwks(&[(&RSA_A, "r1")])).await;
        let v = verifier(&issuer, &[]).await;
        let sign = |changes| RSA_A.sign(Some("r1"), &with(issuer.claims(), changes));
        for (changes, expected) in [
            (json!({"exp": now() - 120}), Err(JwtError::Expired)),
            (json!({"exp": now() - 10}), Ok(())),
            (json!({"nbf": now() + 120}), Err(JwtError::NotYetValid)),
            (json!({"nbf": now() + 10}), Ok(())),
            (json!({"nbf": now() - 10}), Ok(())),
            (json!({"exp": null}), Err(JwtError::MissingClaim("exp"))),
            // Not a number: as good as absent.
            (
                json!({"exp": "tomorrow"}),
                Err(JwtError::MissingClaim("exp")),
            ),
            (
                json!({"nbf": "soon"}),
                Err(JwtError::Malformed(
                    "a time claim (exp or nbf) is not a number of seconds",
                )),
            ),
        ] {
            let got = v.verify(&sign(changes.clone())).await.map(|_| ());
            assert_eq!(got, expected, "{changes}");
        }
    }

    #[tokio::test]
    async fn issuer_audience_and_subject_are_checked() {
        let issuer = TestIssuer::start(jwks(&[(&RSA_A, "r1")])).await;
        let v = verifier(&issuer, &[]).await;
        let sign = |changes| RSA_A.sign(Some("r1"), &with(issuer.claims(), changes));
        let other = format!("{}/", issuer.url);
        for (changes, expected) in [
            (json!({"aud": "someone-else"}), JwtError::WrongAudience),
            (json!({"aud": ["a", "b"]}), JwtError::WrongAudience),
            (json!({"aud": []}), JwtError::WrongAudience),
            (json!({"aud": null}), JwtError::MissingClaim("aud")),
            (
                json!({"iss": "https://evil.example"}),
                JwtError::WrongIssuer,
            ),
            // Not byte for byte: a trailing slash is another issuer.
            (json!({"iss": other}), JwtError::WrongIssuer),
            // The library would take an array holding the issuer; this verifier does not.
            (json!({"iss": [issuer.url, "x"]}), JwtError::WrongIssuer),
            (json!({"iss": null}), JwtError::MissingClaim("iss")),
            (json!({"sub": null}), JwtError::MissingClaim("sub")),
            (json!({"sub": ""}), JwtError::MissingClaim("sub")),
        ] {
            assert_eq!(
                v.verify(&sign(changes.clone())).await,
                Err(expected),
                "{changes}"
            );
        }
    }

    #[tokio::test]
    async fn an_unknown_kid_forces_one_throttled_reload() {
        crate::metrics::handle();
        let issuer = TestIssuer::start(jwks(&[(&RSA_A, "r1")])).await;
        let v = verifier(&issuer, &[]).await;
        assert_eq!(issuer.hits(), 1);
        let token = RSA_A.sign(Some("nope"), &issuer.claims());
        assert_eq!(v.verify(&token).await, Err(JwtError::UnknownKey));
        assert_eq!(issuer.hits(), 2, "exactly one reload for the unknown kid");
        // Another unknown kid inside the throttle window: refused without a fetch.
        let token = RSA_A.sign(Some("nope-2"), &issuer.claims());
        assert_eq!(v.verify(&token).await, Err(JwtError::UnknownKey));
        assert_eq!(issuer.hits(), 2, "throttled");
        // Many at once: still no fetch, and known kids keep working.
        let bursts = (0..20).map(|i| {
            let v = v.clone();
            let token = RSA_A.sign(Some(&format!("bogus-{i}")), &issuer.claims());
            async move { v.verify(&token).await }
        });
        for result in futures::future::join_all(bursts).await {
            assert_eq!(result, Err(JwtError::UnknownKey));
        }
        assert_eq!(issuer.hits(), 2);
        v.verify(&RSA_A.sign(Some("r1"), &issuer.claims()))
            .await
            .unwrap();
        let text = crate::metrics::handle().render();
        assert!(
            text.contains("kubeline_jwks_refresh_total{outcome=\"throttled\"}"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn concurrent_unknown_kids_share_one_reload() {
        let issuer = TestIssuer::start(jwks(&[(&RSA_A, "r1")])).await;
        let v = verifier(&issuer, &[]).await;
        issuer.set_jwks(jwks(&[(&RSA_A, "r1"), (&RSA_B, "r2")]));
        let tokens: Vec<String> = (0..10)
            .map(|_| RSA_B.sign(Some("r2"), &issuer.claims()))
            .collect();
        let all = tokens.iter().map(|t| v.verify(t));
        for result in futures::future::join_all(all).await {
            assert_eq!(result.unwrap().subject, "alice");
        }
        assert_eq!(
            issuer.hits(),
            2,
            "one load at start, one for all ten callers"
        );
    }

    #[tokio::test]
    async fn a_rotated_key_is_picked_up_by_the_forced_reload() {
        let issuer = TestIssuer::start(jwks(&[(&RSA_A, "r1")])).await;
        let v = verifier(&issuer, &[]).await;
        // The issuer rotates: only the new key is published.
        issuer.set_jwks(jwks(&[(&RSA_B, "r2")]));
        let t = v
            .verify(&RSA_B.sign(Some("r2"), &issuer.claims()))
            .await
            .unwrap();
        assert_eq!(t.subject, "alice");
        assert_eq!(issuer.hits(), 2);
        // The old key is gone with the old set.
        let old = RSA_A.sign(Some("r1"), &issuer.claims());
        assert_eq!(v.verify(&old).await, Err(JwtError::UnknownKey));
        // The new key's kid with the old key's signature: the signature fails.
        let forged = RSA_A.sign(Some("r2"), &issuer.claims());
        assert_eq!(v.verify(&forged).await, Err(JwtError::BadSignature));
    }

    #[tokio::test]
    async fn the_timer_refreshes_the_keys() {
        let issuer = TestIssuer::start(jwks(&[(&RSA_A, "r1")])).await;
        let v = new_verifier(&["--jwt-issuer", &issuer.url, "--jwt-audience", AUDIENCE])
            .unwrap()
            .unwrap()
            .with_timing(Duration::from_millis(200), FORCED_REFRESH_INTERVAL);
        v.start().await.unwrap();
        issuer.set_jwks(jwks(&[(&RSA_B, "r2")]));
        eventually("two timer refreshes", async || issuer.hits() >= 3).await;
        // Loaded by the timer, not by a forced reload.
        let hits = issuer.hits();
        v.verify(&RSA_B.sign(Some("r2"), &issuer.claims()))
            .await
            .unwrap();
        assert!(issuer.hits() <= hits + 1);
    }

    #[tokio::test]
    async fn tampered_tokens_are_refused() {
        let issuer = TestIssuer::start(jwks(&[(&RSA_A, "r1"), (&EC_A, "e1")])).await;
        let v = verifier(&issuer, &[]).await;
        for (key, kid) in [(&*RSA_A, "r1"), (&*EC_A, "e1")] {
            let token = key.sign(Some(kid), &issuer.claims());
            let parts: Vec<&str> = token.split('.').collect();
            // Another payload under the same signature (admin rights for mallory).
            let payload = b64(&serde_json::to_vec(&with(
                issuer.claims(),
                json!({"sub": "mallory", "groups": ["sre"]}),
            ))
            .unwrap());
            let swapped = format!("{}.{payload}.{}", parts[0], parts[2]);
            assert_eq!(
                v.verify(&swapped).await,
                Err(JwtError::BadSignature),
                "{kid}"
            );
            // One signature character changed, in the middle (the last may only hold padding bits).
            let mut sig = parts[2].as_bytes().to_vec();
            let mid = sig.len() / 2;
            sig[mid] = if sig[mid] == b'A' { b'B' } else { b'A' };
            let flipped = format!(
                "{}.{}.{}",
                parts[0],
                parts[1],
                String::from_utf8(sig).unwrap()
            );
            assert_eq!(
                v.verify(&flipped).await,
                Err(JwtError::BadSignature),
                "{kid}"
            );
            // The signature cut short, or dropped.
            let sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
            let short = format!("{}.{}.{}", parts[0], parts[1], b64(&sig[..sig.len() - 3]));
            assert_eq!(v.verify(&short).await, Err(JwtError::BadSignature), "{kid}");
            let unsigned = format!("{}.{}.", parts[0], parts[1]);
            assert!(
                matches!(v.verify(&unsigned).await, Err(JwtError::Malformed(_))),
                "{kid}"
            );
        }
    }

    #[tokio::test]
    async fn none_and_symmetric_algorithms_are_refused() {
        let issuer = TestIssuer::start(jwks(&[(&RSA_A, "r1"), (&EC_A, "e1")])).await;
        let v = verifier(&issuer, &[]).await;
        let payload = b64(&serde_json::to_vec(&issuer.claims()).unwrap());
        let header = |h: Value| b64(&serde_json::to_vec(&h).unwrap());
        let none = format!("{}.{payload}.", header(json!({"alg": "none", "kid": "r1"})));
        assert_eq!(
            v.verify(&none).await,
            Err(JwtError::AlgorithmNotAllowed("none".into()))
        );
        let none = format!("{}.{payload}.c2ln", header(json!({"alg": "none"})));
        assert_eq!(
            v.verify(&none).await,
            Err(JwtError::AlgorithmNotAllowed("none".into()))
        );
        // HS256 with a secret, and with the RSA key's public modulus as the secret (the classic
        // key-confusion attack).
        let mut hs = jsonwebtoken::Header::new(Algorithm::HS256);
        hs.kid = Some("r1".into());
        let n = RSA_A.public["n"].as_str().unwrap().to_owned();
        for secret in [b"secret".to_vec(), n.into_bytes()] {
            let token = encode(&hs, &issuer.claims(), &EncodingKey::from_secret(&secret)).unwrap();
            assert_eq!(
                v.verify(&token).await,
                Err(JwtError::AlgorithmNotAllowed("HS256".into()))
            );
        }
        // An asymmetric algorithm outside the accepted list.
        let mut rs384 = jsonwebtoken::Header::new(Algorithm::RS384);
        rs384.kid = Some("r1".into());
        let token = encode(&rs384, &issuer.claims(), &RSA_A.encoding).unwrap();
        assert_eq!(
            v.verify(&token).await,
            Err(JwtError::AlgorithmNotAllowed("RS384".into()))
        );
        // An accepted algorithm that does not fit the key the kid names.
        let token = EC_A.sign(Some("r1"), &issuer.claims());
        assert_eq!(v.verify(&token).await, Err(JwtError::AlgorithmMismatch));
        // Odd `alg` values are not echoed.
        let odd = format!("{}.{payload}.c2ln", header(json!({"alg": "<script>"})));
        assert_eq!(
            v.verify(&odd).await,
            Err(JwtError::AlgorithmNotAllowed("(unrecognised)".into()))
        );
        assert_eq!(issuer.hits(), 1, "no algorithm refusal fetched keys");
    }

    #[tokio::test]
    async fn kid_less_tokens_need_a_lone_key() {
        let issuer = TestIssuer::start(jwks(&[(&RSA_A, "r1")])).await;
        let v = verifier(&issuer, &[]).await;
        v.verify(&RSA_A.sign(None, &issuer.claims())).await.unwrap();
        let issuer = TestIssuer::start(jwks(&[(&RSA_A, "r1"), (&EC_A, "e1")])).await;
        let v = verifier(&issuer, &[]).await;
        assert_eq!(
            v.verify(&RSA_A.sign(None, &issuer.claims())).await,
            Err(JwtError::MissingKeyId)
        );
    }

    #[tokio::test]
    async fn a_discovery_document_naming_another_issuer_is_refused_at_start() {
        let issuer = TestIssuer::start(jwks(&[(&RSA_A, "r1")])).await;
        issuer.claim_issuer("https://evil.example/realms/kubeline");
        let v = new_verifier(&["--jwt-issuer", &issuer.url, "--jwt-audience", AUDIENCE])
            .unwrap()
            .unwrap();
        let err = v.start().await.unwrap_err();
        assert!(
            err.contains("names issuer \"https://evil.example/realms/kubeline\""),
            "{err}"
        );
        assert!(err.contains("--jwt-issuer"), "{err}");
        assert_eq!(issuer.hits(), 0, "no keys fetched for the wrong issuer");
        // Byte for byte: the same URL with a trailing slash is another issuer.
        issuer.claim_issuer(&format!("{}/", issuer.url));
        let v = new_verifier(&["--jwt-issuer", &issuer.url, "--jwt-audience", AUDIENCE])
            .unwrap()
            .unwrap();
        assert!(v.start().await.is_err());
    }

    #[tokio::test]
    async fn keys_survive_an_issuer_outage() {
        crate::metrics::handle();
        let issuer = TestIssuer::start(jwks(&[(&RSA_A, "r1")])).await;
        let v = verifier(&issuer, &[]).await;
        issuer.set_up(false);
        let err = v.refresh().await.unwrap_err();
        assert!(err.contains("HTTP 503"), "{err}");
        v.verify(&RSA_A.sign(Some("r1"), &issuer.claims()))
            .await
            .unwrap();
        // An unknown kid during the outage: the forced reload fails, the old keys stay.
        let token = RSA_B.sign(Some("r2"), &issuer.claims());
        assert_eq!(v.verify(&token).await, Err(JwtError::UnknownKey));
        v.verify(&RSA_A.sign(Some("r1"), &issuer.claims()))
            .await
            .unwrap();
        let text = crate::metrics::handle().render();
        assert!(
            text.contains("kubeline_jwks_refresh_total{outcome=\"failure\"}"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn an_issuer_down_at_start_is_retried() {
        let issuer = TestIssuer::start(jwks(&[(&RSA_A, "r1")])).await;
        issuer.set_up(false);
        let v = verifier(&issuer, &[]).await;
        let token = RSA_A.sign(Some("r1"), &issuer.claims());
        assert_eq!(v.verify(&token).await, Err(JwtError::KeysUnavailable));
        issuer.set_up(true);
        // The token's own reload is throttled now; the retry timer (1 s) loads the keys.
        eventually("keys loaded after the outage", async || {
            v.verify(&token).await.is_ok()
        })
        .await;
    }

    #[tokio::test]
    async fn a_closed_port_and_an_oversized_document_are_failures() {
        // Nothing listens on the port of a dropped listener.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let url = format!("http://127.0.0.1:{port}");
        let v = new_verifier(&["--jwt-issuer", &url, "--jwt-audience", AUDIENCE])
            .unwrap()
            .unwrap();
        v.start().await.unwrap();
        let err = v.refresh().await.unwrap_err();
        assert!(err.contains("GET http://127.0.0.1"), "{err}");
        // Discovery that points at a document over 1 MiB.
        let issuer = TestIssuer::start(jwks(&[(&RSA_A, "r1")])).await;
        let base = issuer.url.trim_end_matches("/realms/kubeline").to_owned();
        let client = jwks::client().unwrap();
        let huge = reqwest::Url::parse(&format!("{base}/huge")).unwrap();
        let err = jwks::fetch(&client, &huge).await.unwrap_err();
        assert!(err.message().contains("larger than"), "{err:?}");
    }

    #[tokio::test]
    async fn a_jwks_file_is_read_and_read_again() {
        let dir = std::env::temp_dir().join(format!("kubeline-jwt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("jwks-{}.json", rand::random::<u64>()));
        std::fs::write(&path, jwks(&[(&EC_A, "e1")]).to_string()).unwrap();
        let path_str = path.to_str().unwrap().to_owned();
        let list = [
            "--jwt-issuer",
            "kubeline-test-issuer",
            "--jwt-audience",
            AUDIENCE,
            "--jwt-jwks-file",
            &path_str,
        ];
        let v = new_verifier(&list).unwrap().unwrap();
        v.start().await.unwrap();
        let claims = claims("kubeline-test-issuer");
        v.verify(&EC_A.sign(Some("e1"), &claims)).await.unwrap();
        // A new key in the file: the unknown kid reads it again.
        std::fs::write(&path, jwks(&[(&EC_A, "e1"), (&RSA_B, "r2")]).to_string()).unwrap();
        v.verify(&RSA_B.sign(Some("r2"), &claims)).await.unwrap();
        // A broken file: the refresh fails, the keys stay.
        std::fs::write(&path, "{not json").unwrap();
        assert!(v.refresh().await.unwrap_err().contains("not a JWKS"));
        v.verify(&RSA_B.sign(Some("r2"), &claims)).await.unwrap();
        std::fs::remove_file(&path).unwrap();
        // A missing file at start is a configuration error.
        let v = new_verifier(&list).unwrap().unwrap();
        let err = v.start().await.unwrap_err();
        assert!(err.contains("--jwt-jwks-file"), "{err}");
    }

    #[tokio::test]
    async fn claims_map_to_scope_and_clusters() {
        let issuer = TestIssuer::start(jwks(&[(&RSA_A, "r1")])).await;
        let v = verifier(
            &issuer,
            &[
                "--jwt-grant",
                "group:sre=admin@prod-*",
                "--jwt-grant",
                "scope:kubeline.read=read@staging-*|dev-1",
                "--jwt-grant",
                "sub:robot=read@ci",
            ],
        )
        .await;
        let check = async |changes: Value| {
            let token = RSA_A.sign(Some("r1"), &with(issuer.claims(), changes));
            v.verify(&token).await.unwrap()
        };
        let t = check(json!({"groups": ["dev", "sre"]})).await;
        assert_eq!(t.access.to_string(), "admin on prod-*");
        assert_eq!(t.groups, ["dev", "sre"]);
        let t = check(json!({"scope": "openid kubeline.read  email"})).await;
        assert_eq!(t.scopes, ["openid", "kubeline.read", "email"]);
        assert_eq!(t.access.to_string(), "read on staging-*|dev-1");
        let t = check(json!({"scp": ["kubeline.read"]})).await;
        assert_eq!(t.access.to_string(), "read on staging-*|dev-1");
        let t = check(json!({"sub": "robot"})).await;
        assert_eq!(t.access.to_string(), "read on ci");
        // Both: per cluster only what its binding grants.
        let t = check(json!({"groups": ["sre"], "scope": "kubeline.read"})).await;
        assert_eq!(t.access.scope_on("prod-eu"), Some(Scope::Admin));
        assert_eq!(t.access.scope_on("dev-1"), Some(Scope::Read));
        assert_eq!(t.access.scope_on("qa"), None);
        // Valid, but matching nothing; odd claim types add nothing.
        let t = check(json!({"groups": "SRE", "scope": ["kubeline.read"], "scp": 7})).await;
        assert_eq!(t.groups, ["SRE"]);
        assert_eq!(t.access.to_string(), "read on staging-*|dev-1");
        let t = check(json!({"groups": {"sre": true}, "scope": 1})).await;
        assert_eq!(
            (t.access.grants().len(), t.groups, t.scopes),
            (0, vec![], vec![])
        );
    }

    #[tokio::test]
    async fn custom_claim_names_are_read() {
        let issuer = TestIssuer::start(jwks(&[(&RSA_A, "r1")])).await;
        let v = verifier(
            &issuer,
            &[
                "--jwt-groups-claim",
                "roles",
                "--jwt-scopes-claim",
                "perms",
                "--jwt-grant",
                "group:ops=admin@*",
                "--jwt-grant",
                "scope:view=read@*",
            ],
        )
        .await;
        let token = RSA_A.sign(
            Some("r1"),
            &with(issuer.claims(), json!({"roles": ["ops"], "groups": ["x"]})),
        );
        assert!(v.verify(&token).await.unwrap().access.is_broker_admin());
        let token = RSA_A.sign(
            Some("r1"),
            &with(issuer.claims(), json!({"perms": "view", "scp": ["other"]})),
        );
        let t = v.verify(&token).await.unwrap();
        assert_eq!(t.access.to_string(), "read on *");
        assert_eq!(t.scopes, ["view", "other"]);
    }

    // --- hostile input ---

    /// A verifier with keys loaded from a file, so hostile tokens never reach the network.
    fn file_verifier(rt: &tokio::runtime::Runtime) -> (JwtVerifier, PathBuf) {
        let path = std::env::temp_dir().join(format!(
            "kubeline-jwt-garbage-{}.json",
            rand::random::<u64>()
        ));
        std::fs::write(&path, jwks(&[(&RSA_A, "r1"), (&EC_A, "e1")]).to_string()).unwrap();
        let v = new_verifier(&[
            "--jwt-issuer",
            "iss",
            "--jwt-audience",
            AUDIENCE,
            "--jwt-jwks-file",
            path.to_str().unwrap(),
        ])
        .unwrap()
        .unwrap();
        rt.block_on(v.start()).unwrap();
        (v, path)
    }

    #[test]
    fn hostile_tokens_are_refused_with_the_right_check() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (v, path) = file_verifier(&rt);
        let h = |h: Value| b64(&serde_json::to_vec(&h).unwrap());
        let good = claims("iss");
        let p = b64(&serde_json::to_vec(&good).unwrap());
        let signed = |claims: Value| EC_A.sign(Some("e1"), &claims);
        let cases: Vec<(String, &str)> = vec![
            (String::new(), "malformed"),
            (".".into(), "malformed"),
            ("..".into(), "malformed"),
            ("....".into(), "malformed"),
            ("a.b.c".into(), "malformed"),
            ("a.b.c.d.e".into(), "malformed"),
            (format!("{}.{p}.sig", h(json!("RS256"))), "malformed"),
            (format!("{}.{p}.sig", h(json!({"alg": 256}))), "malformed"),
            (format!("{}.{p}.sig", h(json!({"kid": "r1"}))), "malformed"),
            (
                format!("{}.{p}.sig", h(json!({"alg": "RS256", "kid": 5}))),
                "malformed",
            ),
            (
                format!("{}.{p}.sig", h(json!({"alg": "RS256", "crit": ["exp"]}))),
                "malformed",
            ),
            (
                format!("{}.{p}.***", h(json!({"alg": "RS256", "kid": "r1"}))),
                "malformed",
            ),
            (
                format!("{}.***.c2ln", h(json!({"alg": "RS256", "kid": "r1"}))),
                "bad_signature",
            ),
            (
                format!(
                    "{}.{p}.{}",
                    h(json!({"alg": "RS256", "kid": "r1"})),
                    "A".repeat(20_000)
                ),
                "malformed",
            ),
            // A key embedded in the header is never used.
            (
                format!(
                    "{}.{p}.c2ln",
                    h(json!({"alg": "RS256", "kid": "r1", "jwk": {"kty": "oct", "k": "c2Vj"}}))
                ),
                "bad_signature",
            ),
            (signed(json!("a string payload")), "malformed"),
            (signed(json!([1, 2])), "malformed"),
            (signed(with(good.clone(), json!({"exp": u64::MAX}))), "ok"),
            (
                signed(with(good.clone(), json!({"exp": 1e300}))),
                "missing_claim",
            ),
            (
                signed(with(good.clone(), json!({"exp": -5}))),
                "missing_claim",
            ),
            (signed(with(good.clone(), json!({"exp": 1.5e10}))), "ok"),
            (
                signed(with(good.clone(), json!({"nbf": "soon"}))),
                "malformed",
            ),
            (
                signed(with(good.clone(), json!({"aud": {"k": AUDIENCE}}))),
                "missing_claim",
            ),
            (
                signed(with(good.clone(), json!({"sub": 42}))),
                "missing_claim",
            ),
            (
                signed(with(good.clone(), json!({"groups": vec!["x"; 500]}))),
                "ok",
            ),
        ];
        for (token, expected) in cases {
            let got = rt.block_on(v.verify(&token));
            let label = got.as_ref().map_or_else(JwtError::reason, |_| "ok");
            assert_eq!(label, expected, "{token:.120}: {got:?}");
            if let Err(e) = got {
                // Messages name a check and never echo the token.
                assert!(
                    !e.to_string().contains(&token[..token.len().min(12)]) || token.len() < 6,
                    "{e}"
                );
            }
        }
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn garbage_tokens_never_panic() {
        use proptest::prelude::*;
        use proptest::test_runner::{Config, TestRunner};
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (v, path) = file_verifier(&rt);
        let part = "[A-Za-z0-9_=+/-]{0,64}";
        let header = prop_oneof![
            Just(json!({"alg": "RS256", "kid": "r1"})),
            Just(json!({"alg": "ES256", "kid": "e1"})),
            Just(json!({"alg": "ES256"})),
            Just(json!({"alg": "none"})),
            "\\PC{0,12}".prop_map(|alg| json!({"alg": alg, "kid": "r1"})),
            "\\PC{0,12}".prop_map(|kid| json!({"alg": "RS256", "kid": kid})),
        ]
        .prop_map(|h| b64(&serde_json::to_vec(&h).unwrap()));
        let payload = prop_oneof![
            Just(json!({})),
            Just(claims("iss")),
            any::<i64>()
                .prop_map(|exp| json!({"iss": "iss", "aud": AUDIENCE, "sub": "s", "exp": exp})),
            any::<f64>()
                .prop_map(|exp| json!({"iss": "iss", "aud": AUDIENCE, "sub": "s", "exp": exp})),
            "\\PC{0,40}".prop_map(Value::String),
        ]
        .prop_map(|p| b64(&serde_json::to_vec(&p).unwrap()));
        let token = prop_oneof![
            "\\PC{0,200}",
            (part, part, part).prop_map(|(a, b, c)| format!("{a}.{b}.{c}")),
            (header, payload, part).prop_map(|(a, b, c)| format!("{a}.{b}.{c}")),
        ];
        let mut runner = TestRunner::new(Config {
            cases: 512,
            failure_persistence: None,
            ..Config::default()
        });
        runner
            .run(&token, |token| {
                let result = rt.block_on(v.verify(&token));
                prop_assert!(result.is_err(), "{token} verified");
                Ok(())
            })
            .unwrap();
        std::fs::remove_file(path).unwrap();
    }
}
