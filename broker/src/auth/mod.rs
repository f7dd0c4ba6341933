//! Who is calling, and what they may reach.
//!
//! One layer ([`authenticate`]) stands in front of every route except the public ones
//! ([`PUBLIC_ROUTES`]): it reads the credential (`Authorization: Bearer …` with an API key or a
//! JWT, or `X-API-Key: …`), refuses it with 401 and the contract's body when it is missing,
//! unknown, expired, revoked or wrongly signed, and otherwise puts the [`Caller`] in the
//! request for the handlers. While the request runs, a revocation of its credential (on any
//! replica) or the expiry of its JWT ends it with 401.
//!
//! What a caller may reach is its [`grant::Grant`]: a scope and cluster patterns. Handlers ask
//! [`Caller::require_cluster`] / [`Caller::require_admin`]; lists show only what
//! [`Caller::may_reach`].

pub mod admin;
pub mod credentials;
pub mod grant;

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::http::header::{self, AUTHORIZATION};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::sync::broadcast;
use tracing::warn;

pub use self::credentials::{Credential, Credentials, Refusal, hash_secret};
pub use self::grant::{Access, Clusters, Grant, Scope};
use crate::AppState;
use crate::audit;
use crate::error::ApiError;
use crate::jwt::VerifiedToken;
use crate::metrics::{self, AuthFailure};
use crate::middleware::RequestContext;
use crate::ratelimit::{RateLimitSubject, RateLimits};
use crate::store::{CredentialKind, CredentialRecord, SessionRecord};
use kubeline_shared::audit::{AuditAction, AuditDecision, AuditOutcome};

/// Routes that need no credential: probes, the API description, and the agent link (which
/// checks its own agent token).
pub const PUBLIC_ROUTES: &[&str] = &[
    "/health",
    "/openapi.json",
    "/docs",
    "/docs/",
    "/docs/{*rest}",
    "/agent/v1/connect",
    crate::mcp::RESOURCE_METADATA_PATH,
];

/// Header Kubently clients send their API key in.
pub const API_KEY_HEADER: &str = "x-api-key";

/// How a caller proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallerKind {
    /// An API key.
    ApiKey,
    /// A JWT from the configured issuer.
    Jwt,
}

impl CallerKind {
    /// As the audit trail spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ApiKey => "api_key",
            Self::Jwt => "jwt",
        }
    }
}

/// An authenticated caller, as the handlers see it.
#[derive(Debug)]
pub struct Identity {
    /// Stable, non-secret id of the credential: an API key's id, or `jwt:SUBJECT`. Sessions
    /// belong to it; rate limits and the audit trail count by it.
    pub credential_id: String,
    /// API key or JWT.
    pub kind: CallerKind,
    /// The JWT's subject.
    pub subject: Option<String>,
    /// The JWT's groups.
    pub groups: Vec<String>,
    /// Scopes and the clusters they apply to.
    pub access: Access,
    /// When the credential stops working (a JWT's `exp`, an API key's expiry).
    pub expires_at: Option<DateTime<Utc>>,
    /// An API key's hash, to re-check it when revocation messages were missed.
    key_hash: Option<String>,
    /// An API key's own rate limits.
    pub rate_limits: Option<RateLimits>,
}

/// An authenticated caller (cheap to clone).
#[derive(Debug, Clone)]
pub struct Caller(Arc<Identity>);

impl Deref for Caller {
    type Target = Identity;
    fn deref(&self) -> &Identity {
        &self.0
    }
}

impl Caller {
    /// A caller from a stored API key.
    pub fn from_api_key(record: &CredentialRecord) -> Result<Self, String> {
        let clusters = Clusters::parse(&record.clusters)?;
        Ok(Self(Arc::new(Identity {
            credential_id: record.id.clone(),
            kind: CallerKind::ApiKey,
            subject: None,
            groups: Vec::new(),
            access: Access::new(vec![Grant {
                scope: record.scope.unwrap_or(Scope::Read),
                clusters,
            }]),
            expires_at: record.expires_at,
            key_hash: Some(record.hash.clone()),
            rate_limits: record.rate_limits,
        })))
    }

    /// A caller from a verified JWT. Its credential id is derived from issuer and subject
    /// (bounded, stable across tokens of the same subject).
    pub fn from_jwt(token: VerifiedToken) -> Self {
        let mut h = Sha256::new();
        h.update(token.issuer.as_bytes());
        h.update([0]);
        h.update(token.subject.as_bytes());
        Self(Arc::new(Identity {
            credential_id: format!("jwt_{}", &hex::encode(h.finalize())[..16]),
            kind: CallerKind::Jwt,
            subject: Some(token.subject),
            groups: token.groups,
            access: token.access,
            expires_at: Some(token.expires_at),
            key_hash: None,
            rate_limits: None,
        }))
    }

    /// Whether the caller is an admin of the whole broker (admin on every cluster).
    pub fn is_admin(&self) -> bool {
        self.access.is_broker_admin()
    }

    /// Refuses callers that are not admins of the whole broker (403): credential management
    /// and the audit trail.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.is_admin() {
            return Ok(());
        }
        metrics::auth_failure(AuthFailure::Forbidden);
        Err(ApiError::forbidden_with(
            format!(
                "This endpoint needs a credential with the admin scope on every cluster; this \
                 one has {}",
                self.access
            ),
            json!({ "code": "admin_scope_required" }),
        ))
    }

    /// Whether the caller may reach `cluster_id`.
    pub fn may_reach(&self, cluster_id: &str) -> bool {
        self.access.may_reach(cluster_id)
    }

    /// Refuses a cluster the caller's credential does not reach (403), whether or not the
    /// cluster exists.
    pub fn require_cluster(&self, cluster_id: &str) -> Result<(), ApiError> {
        if self.may_reach(cluster_id) {
            return Ok(());
        }
        metrics::auth_failure(AuthFailure::Forbidden);
        Err(ApiError::forbidden_with(
            format!(
                "This credential may not reach cluster {cluster_id} (it has: {}); use a \
                 credential granted for it",
                self.access
            ),
            json!({ "cluster_id": cluster_id, "code": "cluster_not_granted" }),
        ))
    }

    /// Whether the caller may see a session: its own on a cluster it reaches, or any on a
    /// cluster where it is an admin.
    pub fn may_see(&self, session: &SessionRecord) -> bool {
        match self.access.scope_on(&session.cluster_id) {
            Some(Scope::Admin) => true,
            Some(Scope::Read) => session.owner.as_deref() == Some(&self.credential_id),
            None => false,
        }
    }

    /// Refuses a session the caller may not use (403).
    pub fn require_session(&self, session: &SessionRecord) -> Result<(), ApiError> {
        self.require_cluster(&session.cluster_id)?;
        if self.may_see(session) {
            return Ok(());
        }
        metrics::auth_failure(AuthFailure::Forbidden);
        Err(ApiError::forbidden_with(
            format!(
                "Session {} belongs to another credential; create your own session with POST \
                 /debug/session",
                session.session_id
            ),
            json!({ "session_id": session.session_id, "code": "session_not_owned" }),
        ))
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    /// The caller [`authenticate`] put in the request. A route without it is a route that is
    /// not behind the layer: a bug, answered 500 rather than served unauthenticated.
    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, ApiError> {
        parts.extensions.get::<Caller>().cloned().ok_or_else(|| {
            ApiError::internal(&format!(
                "route {} has no authenticated caller",
                parts.uri.path()
            ))
        })
    }
}

/// The credential a request carries: `Authorization: Bearer …`, else `X-API-Key`.
pub fn presented(headers: &HeaderMap) -> Result<&str, ApiError> {
    if let Some(value) = headers.get(AUTHORIZATION) {
        let token = value
            .to_str()
            .ok()
            .and_then(|v| {
                let (scheme, rest) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then_some(rest.trim())
            })
            .filter(|t| !t.is_empty());
        return token.ok_or_else(|| {
            metrics::auth_failure(AuthFailure::Missing);
            ApiError::unauthorized(
                "malformed_credentials",
                "Malformed Authorization header: send `Authorization: Bearer <API key or JWT>`",
            )
        });
    }
    if let Some(value) = headers.get(API_KEY_HEADER) {
        return value
            .to_str()
            .ok()
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                metrics::auth_failure(AuthFailure::Missing);
                ApiError::unauthorized(
                    "malformed_credentials",
                    "Malformed X-API-Key header: send the API key as text",
                )
            });
    }
    metrics::auth_failure(AuthFailure::Missing);
    Err(ApiError::unauthorized(
        "missing_credentials",
        "Missing credentials: send `Authorization: Bearer <API key or JWT>` or `X-API-Key: <API \
         key>`",
    ))
}

/// Whether a bearer token is a JWT (three dot-separated parts) rather than an API key (which
/// never holds a dot).
fn looks_like_jwt(token: &str) -> bool {
    token.bytes().filter(|&b| b == b'.').count() == 2
}

/// Answers a refused API key or agent token.
pub fn refusal_error(refusal: Refusal, what: &str) -> ApiError {
    let (failure, code, message) = match refusal {
        Refusal::Missing => (
            AuthFailure::Missing,
            "missing_credentials",
            format!("Missing {what}"),
        ),
        Refusal::Unknown => (
            if what == "agent token" {
                AuthFailure::InvalidAgentToken
            } else {
                AuthFailure::InvalidApiKey
            },
            "invalid_credentials",
            format!("Invalid {what}: the broker does not know it"),
        ),
        Refusal::Revoked => (
            AuthFailure::Revoked,
            "revoked",
            format!("This {what} was revoked; ask an admin for a new one"),
        ),
        Refusal::Expired => (
            AuthFailure::Expired,
            "expired",
            format!("This {what} has expired; ask an admin for a new one"),
        ),
        Refusal::Store(e) => return ApiError::from(e),
    };
    metrics::auth_failure(failure);
    ApiError::unauthorized(code, message)
}

/// Authenticates a request's credential.
pub async fn authenticate_headers(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Caller, ApiError> {
    let token = presented(headers)?;
    if looks_like_jwt(token) {
        let Some(jwt) = &state.jwt else {
            metrics::auth_failure(AuthFailure::InvalidJwt);
            return Err(ApiError::unauthorized(
                "jwt_not_accepted",
                "A JWT was sent but this broker accepts no JWTs (no --jwt-issuer); send an API \
                 key",
            ));
        };
        return match jwt.verify(token).await {
            Ok(verified) => Ok(Caller::from_jwt(verified)),
            Err(e) => {
                metrics::auth_failure(AuthFailure::InvalidJwt);
                Err(ApiError::unauthorized(
                    "invalid_token",
                    format!("Invalid bearer token: {e}"),
                ))
            }
        };
    }
    let record = state
        .credentials
        .check(CredentialKind::ApiKey, token)
        .await
        .map_err(|r| refusal_error(r, "API key"))?;
    Caller::from_api_key(&record).map_err(|e| ApiError::internal(&e))
}

/// The authentication layer (see the module docs). Routes that did not match pass through to
/// the fallbacks (404/405); [`PUBLIC_ROUTES`] pass through as they are.
pub async fn authenticate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let Some(route) = req.extensions().get::<MatchedPath>().cloned() else {
        return next.run(req).await;
    };
    if PUBLIC_ROUTES.contains(&route.as_str()) {
        return next.run(req).await;
    }
    let ctx = req
        .extensions()
        .get::<RequestContext>()
        .cloned()
        .unwrap_or_default();
    let action = audit::audited_action(req.method(), route.as_str());
    let caller = match authenticate_headers(&state, req.headers()).await {
        Ok(caller) => caller,
        Err(e) => {
            if e.status() == StatusCode::UNAUTHORIZED {
                let mut event = audit::request_event(
                    &ctx,
                    None,
                    AuditAction::AuthFailure,
                    AuditOutcome::Refused,
                );
                event.decision = Some(AuditDecision::Refused);
                event.target = Some(format!("{} {}", req.method(), route.as_str()));
                event.reason = Some(e.body().message.clone());
                audit::record_after(&state.audit, event).await;
            }
            let mut res = e.into_response();
            if res.status() == StatusCode::UNAUTHORIZED {
                let challenge = crate::mcp::challenge(&state, req.headers());
                res.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, challenge);
            }
            return res;
        }
    };
    let challenge = crate::mcp::challenge(&state, req.headers());
    req.extensions_mut().insert(caller.clone());
    req.extensions_mut().insert(RateLimitSubject {
        credential_id: caller.credential_id.clone(),
        overrides: caller.rate_limits,
    });
    let changes = state.credentials.changes();
    let run = next.run(req);
    let res = tokio::select! {
        biased;
        res = run => res,
        refusal = ended(&state, &caller, changes) => {
            warn!(credential = %caller.credential_id, "request ended: {refusal}");
            let mut res = ApiError::unauthorized("credential_ended", refusal).into_response();
            res.headers_mut().insert(header::WWW_AUTHENTICATE, challenge);
            res
        }
    };
    // An audited action its handler did not record was refused before it ran (rate limit,
    // body, scope) or cut short: record that.
    if let Some(action) = action
        && res.extensions().get::<audit::Audited>().is_none()
    {
        let mut event = audit::request_event(&ctx, Some(&caller), action, AuditOutcome::Refused);
        event.decision = Some(AuditDecision::Refused);
        event.target = Some(route.as_str().to_owned());
        event.reason = Some(format!("answered {}", res.status()));
        event.duration_ms = Some(audit::elapsed_ms(&ctx));
        audit::record_after(&state.audit, event).await;
    }
    res
}

/// Resolves when the caller's credential stops working while its request runs: revoked on any
/// replica, or its expiry reached.
pub(crate) async fn ended(
    state: &AppState,
    caller: &Caller,
    mut changes: broadcast::Receiver<Arc<str>>,
) -> String {
    let expiry = async {
        match caller.expires_at {
            Some(at) => {
                let left = (at - Utc::now()).to_std().unwrap_or_default();
                tokio::time::sleep(left).await;
            }
            None => std::future::pending().await,
        }
    };
    let revoked = async {
        loop {
            match changes.recv().await {
                Ok(id) if *id == *caller.credential_id => {}
                Ok(_) => continue,
                // Missed some announcements: ask the store instead.
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => std::future::pending().await,
            }
            // The cache learns of the change from the same announcement, maybe after this task:
            // drop its copy here, so the check below reads the store, not the copy.
            state.credentials.forget(Some(&caller.credential_id));
            let Some(hash) = &caller.key_hash else {
                continue;
            };
            match state
                .credentials
                .check_hash(CredentialKind::ApiKey, hash)
                .await
            {
                Ok(_) | Err(Refusal::Store(_)) => {}
                Err(_) => return,
            }
        }
    };
    tokio::select! {
        () = expiry => format!("{} expired while the request ran", describe(caller)),
        () = revoked => format!("{} was revoked while the request ran", describe(caller)),
    }
}

fn describe(caller: &Caller) -> impl fmt::Display + '_ {
    match caller.kind {
        CallerKind::ApiKey => "The API key",
        CallerKind::Jwt => "The token",
    }
}
