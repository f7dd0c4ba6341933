//! Rate limits per credential and endpoint class (GCRA), shared by every broker replica.
//!
//! Each credential has one bucket per [`Class`]: session creation, command execution, and
//! everything else, 20, 50 and 100 requests per minute by default (the contract's numbers,
//! `--rate-limit-*`, overridable per credential with [`RateLimits`]). A bucket is the Generic
//! Cell Rate Algorithm over one number, its *theoretical arrival time* (TAT): with
//! `T = window / limit` and capacity `limit × T`, a fresh credential may make `limit` calls at
//! once, then one per `T`. [`gcra`] is the whole algorithm as a pure function; the embedded store
//! runs it over a map, the Redis store runs the same arithmetic in a Lua script against Redis's
//! clock (one round trip, nothing written on a refusal), so every replica shares one budget.
//!
//! [`RateLimiter::check`] asks the store and, when the store fails or does not answer within
//! [`BACKEND_TIMEOUT`], decides with a GCRA of this replica alone: a limit is then enforced per
//! replica (up to `N × limit` fleet-wide), and no request fails because the limiter could not
//! decide. [`enforce`] is the axum middleware: it reads the [`RateLimitSubject`] that the
//! authentication layer put in the request, answers 429 with the contract's body, and adds
//! `X-RateLimit-Limit/Remaining/Reset` to every response it lets through.
//!
//! **Invariant:** a bucket key names a credential by its id, never by its secret, and stays short
//! whatever the id looks like ([`bucket_key`]).

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use tracing::{debug, warn};

use crate::error::ApiError;
use crate::metrics;
use crate::store::{Store, StoreResult};

/// Default session creations per minute per credential (the contract's number).
pub const DEFAULT_SESSION_CREATE_PER_MINUTE: u32 = 20;
/// Default command executions per minute per credential (the contract's number).
pub const DEFAULT_EXECUTE_PER_MINUTE: u32 = 50;
/// Default requests to every other endpoint per minute per credential (the contract's number).
pub const DEFAULT_STANDARD_PER_MINUTE: u32 = 100;
/// Largest limit per minute: one request per millisecond, the resolution of the buckets. A larger
/// configured limit would be advertised but not delivered, so flags refuse it and per-credential
/// overrides are clamped to it.
pub const MAX_PER_MINUTE: u32 = 60_000;
/// The window every limit is counted over.
pub const WINDOW: Duration = Duration::from_secs(60);
/// How the window is written in a 429 body (`details.window`).
pub const WINDOW_LABEL: &str = "1m";
/// How long a check waits for the store before deciding on this replica alone. A healthy Redis
/// answers in well under a millisecond; a request should not wait long on a limiter.
pub const BACKEND_TIMEOUT: Duration = Duration::from_millis(250);
/// At most one warning per this period while the store fails rate limit checks.
const WARN_EVERY: Duration = Duration::from_secs(10);
/// How many checks between sweeps of full buckets from an in-memory table.
const PRUNE_EVERY: u64 = 1024;
/// Longest credential id used in a bucket key as it is; longer (or unusual) ids are hashed.
const MAX_PLAIN_ID: usize = 64;

// === classes and limits ===

/// Which budget a request draws from. Each route belongs to exactly one class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// `POST /debug/session`.
    SessionCreate,
    /// `POST /debug/execute`, and `POST /fleet/execute` (which takes one more step for each
    /// cluster after the first).
    Execute,
    /// Every other route.
    Standard,
}

impl Class {
    /// Every class.
    pub const ALL: [Class; 3] = [Class::SessionCreate, Class::Execute, Class::Standard];

    /// The class of a request, from its method and its route template (or its path: the two
    /// limited routes have no parameters).
    pub fn of(method: &Method, route: &str) -> Self {
        match (method, route) {
            (&Method::POST, "/debug/session") => Self::SessionCreate,
            (&Method::POST, "/debug/execute" | "/fleet/execute")
            | (&Method::GET, "/debug/stream") => Self::Execute,
            _ => Self::Standard,
        }
    }

    /// Its name in bucket keys and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SessionCreate => "session_create",
            Self::Execute => "execute",
            Self::Standard => "standard",
        }
    }

    /// What it counts, for messages.
    fn describe(self) -> &'static str {
        match self {
            Self::SessionCreate => "session creations (POST /debug/session)",
            Self::Execute => {
                "command executions (POST /debug/execute, one per cluster of POST /fleet/execute)"
            }
            Self::Standard => "requests to standard endpoints",
        }
    }
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

pub use kubeline_shared::api::RateLimits;

/// The override of one class in a credential's limits, if any.
fn override_of(limits: &RateLimits, class: Class) -> Option<u32> {
    match class {
        Class::SessionCreate => limits.session_create,
        Class::Execute => limits.execute,
        Class::Standard => limits.standard,
    }
}

/// The broker's limit of each class, requests per minute (0 = unlimited).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClassLimits {
    /// Session creations per minute.
    pub session_create: u32,
    /// Command executions per minute.
    pub execute: u32,
    /// Requests to every other endpoint per minute.
    pub standard: u32,
}

impl Default for ClassLimits {
    fn default() -> Self {
        Self {
            session_create: DEFAULT_SESSION_CREATE_PER_MINUTE,
            execute: DEFAULT_EXECUTE_PER_MINUTE,
            standard: DEFAULT_STANDARD_PER_MINUTE,
        }
    }
}

impl ClassLimits {
    /// The limit of `class`, with a credential's override if it has one (clamped to
    /// [`MAX_PER_MINUTE`]); 0 means unlimited.
    pub fn for_class(&self, class: Class, overrides: Option<&RateLimits>) -> u32 {
        let default = match class {
            Class::SessionCreate => self.session_create,
            Class::Execute => self.execute,
            Class::Standard => self.standard,
        };
        overrides
            .and_then(|o| override_of(o, class))
            .unwrap_or(default)
            .min(MAX_PER_MINUTE)
    }
}

/// Rate limit flags of the broker.
#[derive(Debug, Clone, clap::Args)]
pub struct RateLimitArgs {
    /// Session creations (POST /debug/session) one credential may make per minute, all replicas
    /// together; a burst of this many is allowed, then one per 60s/N. 0 = unlimited.
    #[arg(
        long,
        env = "KUBELINE_RATE_LIMIT_SESSION_CREATE",
        default_value_t = DEFAULT_SESSION_CREATE_PER_MINUTE,
        value_parser = clap::value_parser!(u32).range(0..=i64::from(MAX_PER_MINUTE)),
        value_name = "PER_MINUTE"
    )]
    pub rate_limit_session_create: u32,

    /// Command executions (POST /debug/execute) one credential may make per minute, all
    /// replicas together; a burst of this many is allowed, then one per 60s/N. 0 = unlimited.
    #[arg(
        long,
        env = "KUBELINE_RATE_LIMIT_EXECUTE",
        default_value_t = DEFAULT_EXECUTE_PER_MINUTE,
        value_parser = clap::value_parser!(u32).range(0..=i64::from(MAX_PER_MINUTE)),
        value_name = "PER_MINUTE"
    )]
    pub rate_limit_execute: u32,

    /// Requests to every other authenticated endpoint one credential may make per minute, all
    /// replicas together; a burst of this many is allowed, then one per 60s/N. 0 = unlimited.
    #[arg(
        long,
        env = "KUBELINE_RATE_LIMIT_STANDARD",
        default_value_t = DEFAULT_STANDARD_PER_MINUTE,
        value_parser = clap::value_parser!(u32).range(0..=i64::from(MAX_PER_MINUTE)),
        value_name = "PER_MINUTE"
    )]
    pub rate_limit_standard: u32,
}

impl Default for RateLimitArgs {
    fn default() -> Self {
        Self {
            rate_limit_session_create: DEFAULT_SESSION_CREATE_PER_MINUTE,
            rate_limit_execute: DEFAULT_EXECUTE_PER_MINUTE,
            rate_limit_standard: DEFAULT_STANDARD_PER_MINUTE,
        }
    }
}

impl From<&RateLimitArgs> for ClassLimits {
    fn from(args: &RateLimitArgs) -> Self {
        Self {
            session_create: args.rate_limit_session_create,
            execute: args.rate_limit_execute,
            standard: args.rate_limit_standard,
        }
    }
}

// === the algorithm ===

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request may go on.
    pub allowed: bool,
    /// Requests per window of its class (`X-RateLimit-Limit`); 0 for an unlimited class.
    pub limit: u32,
    /// Requests that could be made at once after this one (`X-RateLimit-Remaining`), in
    /// `0..=limit`.
    pub remaining: u32,
    /// When the bucket is full again, Unix seconds rounded up (`X-RateLimit-Reset`).
    pub reset_epoch_secs: u64,
    /// Seconds until a refused request could succeed, rounded up, at least 1 (`Retry-After`);
    /// 0 when allowed.
    pub retry_after_secs: u64,
}

impl Decision {
    /// An allowed request of a class without a limit.
    pub fn unlimited() -> Self {
        Self {
            allowed: true,
            limit: 0,
            remaining: 0,
            reset_epoch_secs: 0,
            retry_after_secs: 0,
        }
    }

    /// Whether the class has no limit (no headers describe it).
    pub fn is_unlimited(&self) -> bool {
        self.limit == 0
    }

    /// A decision from the raw numbers of the algorithm, as [`gcra`] and the Redis script both
    /// produce them: whether allowed, how many remain, the TAT the bucket is left with
    /// (milliseconds), and on a refusal how long until the request would conform (milliseconds).
    pub fn from_gcra(
        allowed: bool,
        limit: u32,
        remaining: u64,
        tat_ms: u64,
        retry_ms: u64,
    ) -> Self {
        Self {
            allowed,
            limit,
            remaining: remaining.min(u64::from(limit)) as u32,
            reset_epoch_secs: tat_ms.div_ceil(1000),
            retry_after_secs: if allowed {
                0
            } else {
                retry_ms.div_ceil(1000).max(1)
            },
        }
    }
}

/// The emission interval `T` of `limit` requests per `period_ms`, in whole milliseconds, rounded
/// up so that a limit is never exceeded (exact for the defaults: 3000, 1200 and 600 ms).
pub fn emission_interval_ms(period_ms: u64, limit: u32) -> u64 {
    period_ms.max(1).div_ceil(u64::from(limit.max(1)))
}

/// One GCRA step for a request at `now_ms` on a bucket whose TAT is `tat_ms` (`None` for a bucket
/// never used or expired), allowing `limit` (at least 1) per `period_ms` with a burst of `limit`.
///
/// Returns the decision and, when allowed, the TAT to store (it may expire `new_tat - now_ms`
/// from now: a bucket whose TAT has passed is full, the same as an absent one). A refusal
/// changes nothing. `RedisStore`'s Lua script is this function, line for line.
pub fn gcra(
    now_ms: u64,
    tat_ms: Option<u64>,
    period_ms: u64,
    limit: u32,
) -> (Decision, Option<u64>) {
    let limit = limit.max(1);
    let t = emission_interval_ms(period_ms, limit);
    let tau = t * u64::from(limit);
    let tat = tat_ms.map_or(now_ms, |tat| tat.max(now_ms));
    let new_tat = tat.saturating_add(t);
    let used = new_tat - now_ms;
    if used > tau {
        (Decision::from_gcra(false, limit, 0, tat, used - tau), None)
    } else {
        let remaining = (tau - used) / t;
        (
            Decision::from_gcra(true, limit, remaining, new_tat, 0),
            Some(new_tat),
        )
    }
}

/// Milliseconds since the Unix epoch, by this machine's clock.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// GCRA buckets in this process: the embedded store's, and every replica's fallback.
///
/// Buckets whose TAT has passed are full, the same as absent, so they are swept out every
/// `PRUNE_EVERY` checks: the table holds only credentials active within the last window.
#[derive(Default)]
pub struct LocalBuckets {
    state: Mutex<LocalState>,
}

#[derive(Default)]
struct LocalState {
    tats: HashMap<String, u64>,
    checks: u64,
}

impl LocalBuckets {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Decides a request on `key` at `now_ms` (see [`gcra`]).
    pub fn check(&self, key: &str, limit: u32, period: Duration, now_ms: u64) -> Decision {
        // A panic while holding the lock leaves a plain map behind; it is still usable.
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.checks += 1;
        if state.checks.is_multiple_of(PRUNE_EVERY) {
            state.tats.retain(|_, tat| *tat > now_ms);
        }
        let period_ms = period.as_millis() as u64;
        let (decision, new_tat) = gcra(now_ms, state.tats.get(key).copied(), period_ms, limit);
        if let Some(new_tat) = new_tat {
            state.tats.insert(key.to_owned(), new_tat);
        }
        decision
    }

    /// Buckets held now (full ones not yet swept included).
    pub fn len(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .tats
            .len()
    }

    /// Whether no bucket is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The store key of `credential_id`'s bucket of `class`: `kl:rl:CLASS:ID`, with ids that are
/// long or contain unusual characters replaced by `#` and 32 hex digits of their SHA-256 (a
/// plain id never contains `#`, so the two forms cannot collide).
pub fn bucket_key(class: Class, credential_id: &str) -> String {
    let plain = !credential_id.is_empty()
        && credential_id.len() <= MAX_PLAIN_ID
        && credential_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:@".contains(&b));
    if plain {
        format!("kl:rl:{class}:{credential_id}")
    } else {
        let digest = Sha256::digest(credential_id.as_bytes());
        format!("kl:rl:{class}:#{}", hex::encode(&digest[..16]))
    }
}

// === the limiter ===

/// Where the limiter's shared buckets live: the store, or in tests anything that can fail.
#[async_trait]
pub trait RateLimitBackend: Send + Sync + 'static {
    /// See [`Store::rate_limit`].
    async fn rate_limit(&self, key: &str, limit: u32, period: Duration) -> StoreResult<Decision>;
}

#[async_trait]
impl RateLimitBackend for Arc<dyn Store> {
    async fn rate_limit(&self, key: &str, limit: u32, period: Duration) -> StoreResult<Decision> {
        Store::rate_limit(self.as_ref(), key, limit, period).await
    }
}

/// Decides whether a credential may make a request of a class, fleet-wide when the store
/// answers, on this replica alone when it does not.
pub struct RateLimiter {
    backend: Box<dyn RateLimitBackend>,
    defaults: ClassLimits,
    fallback: LocalBuckets,
    backend_timeout: Duration,
    warned: Mutex<Option<Instant>>,
    suppressed: AtomicU64,
}

impl RateLimiter {
    /// A limiter on the broker's store with these default limits.
    pub fn new(store: Arc<dyn Store>, defaults: ClassLimits) -> Self {
        Self::with_backend(Box::new(store), defaults)
    }

    /// A limiter on any backend (tests, embedders).
    pub fn with_backend(backend: Box<dyn RateLimitBackend>, defaults: ClassLimits) -> Self {
        Self {
            backend,
            defaults,
            fallback: LocalBuckets::new(),
            backend_timeout: BACKEND_TIMEOUT,
            warned: Mutex::new(None),
            suppressed: AtomicU64::new(0),
        }
    }

    /// The default limits.
    pub fn defaults(&self) -> ClassLimits {
        self.defaults
    }

    /// Decides one request of `class` by `credential_id` (a non-secret id of the credential),
    /// with the credential's own limits if it has any. Never fails: if the store errs or is
    /// slower than [`BACKEND_TIMEOUT`], this replica decides alone.
    pub async fn check(
        &self,
        credential_id: &str,
        class: Class,
        overrides: Option<&RateLimits>,
    ) -> Decision {
        let limit = self.defaults.for_class(class, overrides);
        if limit == 0 {
            metrics::ratelimit_decision(class, true);
            return Decision::unlimited();
        }
        let key = bucket_key(class, credential_id);
        let asked = tokio::time::timeout(
            self.backend_timeout,
            self.backend.rate_limit(&key, limit, WINDOW),
        )
        .await;
        let decision = match asked {
            Ok(Ok(decision)) => decision,
            Ok(Err(e)) => {
                self.backend_failed(false, &e);
                self.fallback.check(&key, limit, WINDOW, now_ms())
            }
            Err(_) => {
                self.backend_failed(true, &"no answer in time");
                self.fallback.check(&key, limit, WINDOW, now_ms())
            }
        };
        metrics::ratelimit_decision(class, decision.allowed);
        decision
    }

    /// Counts a failed store check, and warns unless it did so within [`WARN_EVERY`].
    fn backend_failed(&self, timed_out: bool, error: &dyn fmt::Display) {
        metrics::ratelimit_backend_error(timed_out);
        let now = Instant::now();
        let mut warned = self.warned.lock().unwrap_or_else(|e| e.into_inner());
        if warned.is_some_and(|at| now.duration_since(at) < WARN_EVERY) {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        *warned = Some(now);
        let suppressed = self.suppressed.swap(0, Ordering::Relaxed);
        warn!(
            error = %error,
            timed_out,
            suppressed,
            "rate limit store unavailable; limiting on this replica alone"
        );
    }
}

// === HTTP ===

/// `X-RateLimit-Limit`: requests per minute of the request's class.
pub const X_RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
/// `X-RateLimit-Remaining`: requests that could be made at once now.
pub const X_RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
/// `X-RateLimit-Reset`: when the budget is full again, Unix seconds.
pub const X_RATELIMIT_RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");

/// The contract's three headers describing `decision`.
pub fn headers(decision: &Decision) -> [(HeaderName, HeaderValue); 3] {
    [
        (X_RATELIMIT_LIMIT, HeaderValue::from(decision.limit)),
        (X_RATELIMIT_REMAINING, HeaderValue::from(decision.remaining)),
        (
            X_RATELIMIT_RESET,
            HeaderValue::from(decision.reset_epoch_secs),
        ),
    ]
}

/// The message of a refusal: which budget, its limit, when to retry.
pub(crate) fn refusal_message(class: Class, decision: &Decision) -> String {
    let s = if decision.retry_after_secs == 1 {
        ""
    } else {
        "s"
    };
    format!(
        "Rate limit exceeded: this credential may make at most {} {} per minute; retry after {} \
         second{s}",
        decision.limit,
        class.describe(),
        decision.retry_after_secs
    )
}

/// Who a request counts against, put in the request's extensions by the authentication layer.
/// Requests without one (the public routes) are not limited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitSubject {
    /// A non-secret, stable id of the credential (never the secret itself).
    pub credential_id: String,
    /// The credential's own limits, if it has any.
    pub overrides: Option<RateLimits>,
}

/// Middleware: limits requests that carry a [`RateLimitSubject`], answering 429 with the
/// contract's body past the limit, and adds `X-RateLimit-*` to every response it lets through
/// (handlers' errors included). Requests without a subject pass untouched, and so do requests
/// of an unlimited class (no headers: there is no limit to describe).
///
/// Install it inside the authentication layer, so the subject is there when it runs:
/// `.layer(from_fn_with_state(limiter, enforce))` before `.layer(auth)`.
pub async fn enforce(
    State(limiter): State<Arc<RateLimiter>>,
    mut req: Request,
    next: Next,
) -> Response {
    let Some(subject) = req.extensions().get::<RateLimitSubject>() else {
        return next.run(req).await;
    };
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| req.uri().path(), MatchedPath::as_str);
    let class = Class::of(req.method(), route);
    let decision = limiter
        .check(&subject.credential_id, class, subject.overrides.as_ref())
        .await;
    if decision.is_unlimited() {
        return next.run(req).await;
    }
    let mut res = if decision.allowed {
        // For handlers that take more steps of the class (a fleet call: one per cluster).
        req.extensions_mut().insert(decision);
        next.run(req).await
    } else {
        debug!(
            credential = %subject.credential_id,
            %class,
            limit = decision.limit,
            retry_after = decision.retry_after_secs,
            "rate limited"
        );
        ApiError::rate_limited(class, &decision).into_response()
    };
    for (name, value) in headers(&decision) {
        res.headers_mut().insert(name, value);
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MINUTE_MS: u64 = 60_000;
    const NOW: u64 = 1_700_000_000_123;

    /// Runs `gaps` (milliseconds between requests) through one bucket, returning each decision.
    fn run(limit: u32, period_ms: u64, start: u64, gaps: &[u64]) -> Vec<(u64, Decision)> {
        let mut tat = None;
        let mut now = start;
        let mut out = Vec::new();
        for gap in gaps {
            now += gap;
            let (decision, new_tat) = gcra(now, tat, period_ms, limit);
            assert_eq!(decision.allowed, new_tat.is_some());
            tat = new_tat.or(tat);
            out.push((now, decision));
        }
        out
    }

    #[test]
    fn a_fresh_bucket_allows_a_burst_of_limit_then_one_per_interval() {
        // (limit, T in ms) for the three defaults and a few others.
        for (limit, t) in [(20, 3000), (50, 1200), (100, 600), (1, 60_000), (7, 8572)] {
            assert_eq!(emission_interval_ms(MINUTE_MS, limit), t);
            let tau = t * u64::from(limit);
            let burst = run(limit, MINUTE_MS, NOW, &vec![0; limit as usize + 1]);
            for (i, (_, d)) in burst.iter().enumerate().take(limit as usize) {
                assert!(d.allowed, "limit {limit}: call {i} of the burst");
                assert_eq!(d.limit, limit);
                assert_eq!(d.remaining, limit - 1 - i as u32, "limit {limit}: call {i}");
                assert_eq!(d.retry_after_secs, 0);
                assert_eq!(
                    d.reset_epoch_secs,
                    (NOW + t * (i as u64 + 1)).div_ceil(1000)
                );
            }
            let (_, refused) = burst[limit as usize];
            assert!(!refused.allowed, "limit {limit}: one past the burst");
            assert_eq!(refused.remaining, 0);
            // Full again when the TAT (now + tau) passes; conforming again after T.
            assert_eq!(refused.reset_epoch_secs, (NOW + tau).div_ceil(1000));
            assert_eq!(refused.retry_after_secs, t.div_ceil(1000));

            // One ms before T: still refused; at T: allowed, nothing left.
            let mut gaps = vec![0; limit as usize];
            gaps.push(t - 1);
            let (_, early) = *run(limit, MINUTE_MS, NOW, &gaps).last().unwrap();
            assert!(!early.allowed);
            assert_eq!(early.retry_after_secs, 1, "1 ms rounds up to 1 s");
            gaps.pop();
            gaps.push(t);
            let (_, on_time) = *run(limit, MINUTE_MS, NOW, &gaps).last().unwrap();
            assert!(on_time.allowed);
            assert_eq!(on_time.remaining, 0);
        }
    }

    #[test]
    fn exact_numbers_of_the_execute_default() {
        let t = 1200;
        let (d, tat) = gcra(NOW, None, MINUTE_MS, 50);
        assert_eq!((d.allowed, d.remaining, tat), (true, 49, Some(NOW + t)));
        // A TAT in the past counts as a full bucket.
        let (d, tat) = gcra(NOW, Some(NOW - 5_000_000), MINUTE_MS, 50);
        assert_eq!((d.allowed, d.remaining, tat), (true, 49, Some(NOW + t)));
        // TAT 59 s ahead: this one would take the bucket to 60.2 s of its 60 s, 200 ms too far.
        let (d, tat) = gcra(NOW, Some(NOW + 59_000), MINUTE_MS, 50);
        assert!(!d.allowed);
        assert_eq!(tat, None, "a refusal stores nothing");
        assert_eq!(d.retry_after_secs, 1, "200 ms to wait");
        assert_eq!(d.reset_epoch_secs, (NOW + 59_000).div_ceil(1000));
        let (d, tat) = gcra(NOW, Some(NOW + 58_800), MINUTE_MS, 50);
        assert_eq!((d.allowed, d.remaining, tat), (true, 0, Some(NOW + 60_000)));
        // Half the window used: 24 more could go at once after this one.
        let (d, _) = gcra(NOW, Some(NOW + 30_000), MINUTE_MS, 50);
        assert_eq!((d.allowed, d.remaining), (true, 24));
        // Retry-After is whole seconds, rounded up: 2 s and 1 ms to wait → 3.
        let (d, _) = gcra(NOW, Some(NOW + 60_000 + 1_001), MINUTE_MS, 50);
        assert_eq!(d.retry_after_secs, 3);
    }

    #[test]
    fn zero_limit_and_period_are_treated_as_one() {
        let (d, tat) = gcra(NOW, None, 0, 0);
        assert!(d.allowed);
        assert_eq!(d.limit, 1);
        assert_eq!(tat, Some(NOW + 1));
        assert!(!gcra(NOW, tat, 0, 0).0.allowed);
    }

    #[test]
    fn local_buckets_are_swept_once_full() {
        let buckets = LocalBuckets::new();
        let period = Duration::from_secs(1);
        for i in 0..100 {
            assert!(buckets.check(&format!("k{i}"), 5, period, NOW).allowed);
        }
        assert_eq!(buckets.len(), 100);
        // A second later every bucket is full again; the next sweep drops them all.
        let later = NOW + 1000;
        for _ in 0..PRUNE_EVERY {
            buckets.check("busy", 1_000_000, period, later);
        }
        assert_eq!(buckets.len(), 1, "only the bucket still in use is kept");
    }

    #[test]
    fn bucket_keys_are_short_and_never_ambiguous() {
        assert_eq!(bucket_key(Class::Execute, "key_01"), "kl:rl:execute:key_01");
        assert_eq!(
            bucket_key(Class::SessionCreate, "sha256:ab12"),
            "kl:rl:session_create:sha256:ab12"
        );
        let long = "x".repeat(500);
        for odd in [long.as_str(), "", "a b", "a{b}", "ключ"] {
            let key = bucket_key(Class::Standard, odd);
            assert!(key.starts_with("kl:rl:standard:#"), "{key}");
            assert_eq!(key.len(), "kl:rl:standard:#".len() + 32);
        }
        assert_ne!(
            bucket_key(Class::Standard, "a"),
            bucket_key(Class::Execute, "a")
        );
    }

    #[test]
    fn classes_of_routes() {
        assert_eq!(
            Class::of(&Method::POST, "/debug/session"),
            Class::SessionCreate
        );
        assert_eq!(Class::of(&Method::POST, "/debug/execute"), Class::Execute);
        assert_eq!(Class::of(&Method::POST, "/fleet/execute"), Class::Execute);
        for (m, p) in [
            (Method::GET, "/debug/session/{session_id}"),
            (Method::DELETE, "/debug/session/{session_id}"),
            (Method::GET, "/debug/execute"),
            (Method::GET, "/clusters"),
            (Method::POST, "/debug/sessions"),
        ] {
            assert_eq!(Class::of(&m, p), Class::Standard, "{m} {p}");
        }
    }

    #[test]
    fn overrides_replace_defaults_per_class() {
        let limits = ClassLimits::default();
        let own = RateLimits {
            execute: Some(5),
            standard: Some(0),
            session_create: None,
        };
        assert_eq!(limits.for_class(Class::Execute, Some(&own)), 5);
        assert_eq!(limits.for_class(Class::Standard, Some(&own)), 0);
        assert_eq!(limits.for_class(Class::SessionCreate, Some(&own)), 20);
        assert_eq!(limits.for_class(Class::Execute, None), 50);
        let huge = RateLimits {
            execute: Some(u32::MAX),
            ..RateLimits::default()
        };
        assert_eq!(
            limits.for_class(Class::Execute, Some(&huge)),
            MAX_PER_MINUTE
        );
        // Stored form: absent fields are defaults, unknown fields ignored.
        let parsed: RateLimits = serde_json::from_str(r#"{"execute":5,"later":1}"#).unwrap();
        assert_eq!(parsed.execute, Some(5));
        assert_eq!(parsed.standard, None);
        assert_eq!(
            serde_json::to_string(&RateLimits {
                execute: Some(5),
                ..RateLimits::default()
            })
            .unwrap(),
            r#"{"execute":5}"#
        );
    }

    #[test]
    fn flags_have_the_contract_defaults_and_are_validated() {
        use clap::{CommandFactory, Parser};
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            args: RateLimitArgs,
        }
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from(["kubeline"]).unwrap();
        assert_eq!(ClassLimits::from(&cli.args), ClassLimits::default());
        assert_eq!(
            ClassLimits::default(),
            ClassLimits::from(&RateLimitArgs::default())
        );
        let cli = Cli::try_parse_from([
            "kubeline",
            "--rate-limit-session-create=0",
            "--rate-limit-execute=7",
            "--rate-limit-standard=60000",
        ])
        .unwrap();
        assert_eq!(
            ClassLimits::from(&cli.args),
            ClassLimits {
                session_create: 0,
                execute: 7,
                standard: 60_000
            }
        );
        for bad in ["--rate-limit-execute=60001", "--rate-limit-standard=-1"] {
            let err = Cli::try_parse_from(["kubeline", bad])
                .err()
                .unwrap()
                .to_string();
            assert!(err.contains(bad.split('=').next().unwrap()), "{err}");
        }
    }

    // === the limiter ===

    /// A backend whose store is down: every check fails, or never answers.
    struct Broken {
        hang: bool,
    }

    #[async_trait]
    impl RateLimitBackend for Broken {
        async fn rate_limit(&self, _: &str, _: u32, _: Duration) -> StoreResult<Decision> {
            if self.hang {
                std::future::pending::<()>().await;
            }
            Err(crate::store::StoreError::Corrupt {
                key: "kl:rl:test".to_owned(),
                reason: "store down".to_owned(),
            })
        }
    }

    /// The value of one counter series in the process's recorder (0 if absent).
    fn counter_value(series: &str) -> u64 {
        metrics::handle()
            .render()
            .lines()
            .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or(0)
    }

    fn limits(execute: u32) -> ClassLimits {
        ClassLimits {
            execute,
            ..ClassLimits::default()
        }
    }

    fn memory_limiter(execute: u32) -> RateLimiter {
        let store: Arc<dyn Store> = Arc::new(crate::store::memory::MemoryStore::new());
        RateLimiter::new(store, limits(execute))
    }

    #[tokio::test]
    async fn the_limiter_counts_per_credential_and_class_on_the_store() {
        let limiter = memory_limiter(3);
        for remaining in [2, 1, 0] {
            let d = limiter.check("a", Class::Execute, None).await;
            assert!(d.allowed);
            assert_eq!((d.limit, d.remaining), (3, remaining));
        }
        assert!(!limiter.check("a", Class::Execute, None).await.allowed);
        assert!(
            limiter.check("b", Class::Execute, None).await.allowed,
            "another credential"
        );
        let other = limiter.check("a", Class::Standard, None).await;
        assert!(other.allowed, "another class");
        assert_eq!(other.limit, DEFAULT_STANDARD_PER_MINUTE);
        let own = RateLimits {
            execute: Some(10),
            ..RateLimits::default()
        };
        // The bucket holds time used, not a count: a full minute stays full under a new limit,
        // which is conforming again after its own (shorter) interval.
        let d = limiter.check("a", Class::Execute, Some(&own)).await;
        assert!(!d.allowed);
        assert_eq!((d.limit, d.retry_after_secs), (10, 6));
        let free = RateLimits {
            execute: Some(0),
            ..RateLimits::default()
        };
        for _ in 0..100 {
            assert_eq!(
                limiter.check("a", Class::Execute, Some(&free)).await,
                Decision::unlimited()
            );
        }
        assert!(limiter.fallback.is_empty(), "the store decided everything");
    }

    #[tokio::test]
    async fn a_failing_store_falls_back_to_this_replica() {
        let series = r#"kubeline_ratelimit_backend_errors_total{reason="error"}"#;
        let before = counter_value(series);
        let limiter = RateLimiter::with_backend(Box::new(Broken { hang: false }), limits(2));
        let d: Vec<bool> =
            futures::future::join_all((0..3).map(|_| limiter.check("a", Class::Execute, None)))
                .await
                .into_iter()
                .map(|d| d.allowed)
                .collect();
        assert_eq!(d, [true, true, false], "limited in memory all the same");
        let refused = limiter.check("a", Class::Execute, None).await;
        assert_eq!(refused.remaining, 0);
        assert!(refused.retry_after_secs >= 1);
        assert!(limiter.check("b", Class::Execute, None).await.allowed);
        assert_eq!(limiter.fallback.len(), 2);
        assert!(
            counter_value(series) >= before + 5,
            "every failed check is counted"
        );
        assert!(
            limiter.suppressed.load(Ordering::Relaxed) >= 4,
            "one warning, the rest suppressed"
        );
    }

    #[tokio::test]
    async fn a_store_that_does_not_answer_is_not_waited_for() {
        let series = r#"kubeline_ratelimit_backend_errors_total{reason="timeout"}"#;
        let before = counter_value(series);
        let mut limiter = RateLimiter::with_backend(Box::new(Broken { hang: true }), limits(1));
        // Shorter than in production, so the test does not wait (tokio's paused clock would
        // need its test-util feature, and a rebuild of everything on tokio for it).
        limiter.backend_timeout = Duration::from_millis(20);
        let started = Instant::now();
        assert!(limiter.check("a", Class::Execute, None).await.allowed);
        assert!(!limiter.check("a", Class::Execute, None).await.allowed);
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(40), "{took:?}");
        assert!(took < Duration::from_secs(5), "{took:?}");
        assert!(counter_value(series) >= before + 2);
    }

    // === the middleware ===

    mod router {
        use axum::Router;
        use axum::body::Body;
        use axum::http::header::RETRY_AFTER;
        use axum::http::{Request as HttpRequest, StatusCode};
        use axum::middleware::{from_fn, from_fn_with_state};
        use axum::routing::{get, post};
        use serde_json::{Value, json};
        use tower::ServiceExt;

        use super::*;

        /// Stands in for the authentication layer: every request but `/health` has a subject,
        /// named by the `x-test-credential` header, with an execute limit from
        /// `x-test-execute-limit` if given.
        async fn fake_auth(mut req: Request, next: Next) -> Response {
            if req.uri().path() != "/health" {
                let header = |name: &str| {
                    req.headers()
                        .get(name)
                        .map(|v| v.to_str().unwrap().to_owned())
                };
                let credential_id = header("x-test-credential").unwrap_or_else(|| "k1".into());
                let overrides = header("x-test-execute-limit").map(|l| RateLimits {
                    execute: Some(l.parse().unwrap()),
                    ..RateLimits::default()
                });
                req.extensions_mut().insert(RateLimitSubject {
                    credential_id,
                    overrides,
                });
            }
            next.run(req).await
        }

        fn app(limiter: RateLimiter) -> Router {
            Router::new()
                .route("/health", get(|| async { "ok" }))
                .route("/debug/execute", post(|| async { "ran" }))
                .route("/debug/session", post(|| async { "created" }))
                .route(
                    "/debug/session/{session_id}",
                    get(|| async { ApiError::not_found("Session not found") }),
                )
                .layer(from_fn_with_state(Arc::new(limiter), enforce))
                .layer(from_fn(fake_auth))
        }

        struct Answer {
            status: StatusCode,
            headers: axum::http::HeaderMap,
            body: String,
        }

        async fn send(app: &Router, req: HttpRequest<Body>) -> Answer {
            let res = app.clone().oneshot(req).await.unwrap();
            let status = res.status();
            let headers = res.headers().clone();
            let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
                .await
                .unwrap();
            Answer {
                status,
                headers,
                body: String::from_utf8(bytes.to_vec()).unwrap(),
            }
        }

        fn execute() -> HttpRequest<Body> {
            HttpRequest::post("/debug/execute")
                .body(Body::empty())
                .unwrap()
        }

        fn header(answer: &Answer, name: &str) -> u64 {
            answer.headers[name].to_str().unwrap().parse().unwrap()
        }

        #[tokio::test]
        async fn allowed_responses_carry_the_headers_and_the_limit_answers_429() {
            let app = app(memory_limiter(2));
            let first = send(&app, execute()).await;
            assert_eq!((first.status, first.body.as_str()), (StatusCode::OK, "ran"));
            assert_eq!(header(&first, "x-ratelimit-limit"), 2);
            assert_eq!(header(&first, "x-ratelimit-remaining"), 1);
            let reset = header(&first, "x-ratelimit-reset");
            let now = now_ms() / 1000;
            assert!((now..=now + 31).contains(&reset), "{reset} vs {now}");
            assert!(!first.headers.contains_key(RETRY_AFTER));

            let second = send(&app, execute()).await;
            assert_eq!(second.status, StatusCode::OK);
            assert_eq!(header(&second, "x-ratelimit-remaining"), 0);
            let reset = header(&second, "x-ratelimit-reset");
            assert!(
                (now + 59..=now + 61).contains(&reset),
                "full again in a minute"
            );

            let refused = send(&app, execute()).await;
            assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
            assert_eq!(header(&refused, "x-ratelimit-limit"), 2);
            assert_eq!(header(&refused, "x-ratelimit-remaining"), 0);
            assert_eq!(header(&refused, "x-ratelimit-reset"), reset);
            let retry = header(&refused, "retry-after");
            assert!((29..=30).contains(&retry), "T is 30 s: {retry}");
            assert_eq!(refused.headers["content-type"], "application/json");
            let body: Value = serde_json::from_str(&refused.body).unwrap();
            assert_eq!(
                body,
                json!({
                    "error": "rate_limited",
                    "message": format!(
                        "Rate limit exceeded: this credential may make at most 2 command \
                         executions (POST /debug/execute, one per cluster of POST \
                         /fleet/execute) per minute; retry after {retry} seconds"
                    ),
                    "details": { "limit": 2, "window": "1m", "retry_after": retry },
                })
            );

            // Other classes and other credentials have budgets of their own.
            let created = send(
                &app,
                HttpRequest::post("/debug/session")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
            assert_eq!(created.status, StatusCode::OK);
            assert_eq!(header(&created, "x-ratelimit-limit"), 20);
            let other = HttpRequest::post("/debug/execute")
                .header("x-test-credential", "k2")
                .body(Body::empty())
                .unwrap();
            assert_eq!(send(&app, other).await.status, StatusCode::OK);
        }

        #[tokio::test]
        async fn handler_errors_carry_the_headers_too() {
            let app = app(memory_limiter(2));
            let req = HttpRequest::get("/debug/session/sess_nope")
                .body(Body::empty())
                .unwrap();
            let missing = send(&app, req).await;
            assert_eq!(missing.status, StatusCode::NOT_FOUND);
            assert_eq!(header(&missing, "x-ratelimit-limit"), 100);
            assert_eq!(header(&missing, "x-ratelimit-remaining"), 99);
            assert!(missing.headers.contains_key("x-ratelimit-reset"));
        }

        #[tokio::test]
        async fn requests_without_a_subject_and_unlimited_classes_pass_untouched() {
            let app = app(memory_limiter(1));
            for _ in 0..3 {
                let health = send(
                    &app,
                    HttpRequest::get("/health").body(Body::empty()).unwrap(),
                );
                let health = health.await;
                assert_eq!(
                    (health.status, health.body.as_str()),
                    (StatusCode::OK, "ok")
                );
                assert!(!health.headers.contains_key("x-ratelimit-limit"));
            }
            for _ in 0..3 {
                let req = HttpRequest::post("/debug/execute")
                    .header("x-test-execute-limit", "0")
                    .body(Body::empty())
                    .unwrap();
                let free = send(&app, req).await;
                assert_eq!(free.status, StatusCode::OK);
                assert!(!free.headers.contains_key("x-ratelimit-limit"));
            }
            // The per-credential override also lowers a limit.
            let req = || {
                HttpRequest::post("/debug/execute")
                    .header("x-test-credential", "k3")
                    .header("x-test-execute-limit", "1")
                    .body(Body::empty())
                    .unwrap()
            };
            assert_eq!(send(&app, req()).await.status, StatusCode::OK);
            assert_eq!(
                send(&app, req()).await.status,
                StatusCode::TOO_MANY_REQUESTS
            );
        }

        #[tokio::test]
        async fn a_failing_store_never_fails_a_request() {
            let limiter = RateLimiter::with_backend(Box::new(Broken { hang: false }), limits(1));
            let app = app(limiter);
            let ok = send(&app, execute()).await;
            assert_eq!(ok.status, StatusCode::OK);
            assert_eq!(header(&ok, "x-ratelimit-limit"), 1);
            assert_eq!(
                send(&app, execute()).await.status,
                StatusCode::TOO_MANY_REQUESTS
            );
        }
    }

    proptest! {
        /// Over any sequence, no window between two allowed requests holds more than
        /// `limit + elapsed / T` of them; every decision's numbers stay in range; waiting
        /// `Retry-After` is enough, and at `X-RateLimit-Reset` the whole burst is back.
        #[test]
        fn gcra_never_allows_more_than_its_rate(
            limit in 1u32..=30,
            period_ms in prop::sample::select(vec![1_000u64, 7_000, 60_000]),
            gaps in prop::collection::vec(
                prop_oneof![Just(0u64), 0u64..50, 0u64..5_000, 0u64..120_000],
                1..150,
            ),
        ) {
            let t = emission_interval_ms(period_ms, limit);
            let mut tat = None;
            let mut now = NOW;
            let mut allowed_at = Vec::new();
            for gap in gaps {
                now += gap;
                let (d, new_tat) = gcra(now, tat, period_ms, limit);
                prop_assert!(d.remaining <= limit);
                prop_assert_eq!(d.limit, limit);
                prop_assert!(d.reset_epoch_secs * 1000 >= now);
                if d.allowed {
                    prop_assert_eq!(d.retry_after_secs, 0);
                    allowed_at.push(now);
                    tat = new_tat;
                } else {
                    prop_assert_eq!(d.remaining, 0);
                    prop_assert!(d.retry_after_secs >= 1);
                    prop_assert!(gcra(now + d.retry_after_secs * 1000, tat, period_ms, limit).0.allowed);
                    prop_assert_eq!(new_tat, None);
                }
                let full = gcra(d.reset_epoch_secs * 1000, tat, period_ms, limit).0;
                prop_assert_eq!(full.remaining, limit - 1);
            }
            for (i, first) in allowed_at.iter().enumerate() {
                for (j, last) in allowed_at.iter().enumerate().skip(i) {
                    let count = (j - i + 1) as u64;
                    prop_assert!(
                        count <= u64::from(limit) + (last - first) / t,
                        "{} allowed in {} ms (limit {}, T {} ms)", count, last - first, limit, t
                    );
                }
            }
        }
    }
}
