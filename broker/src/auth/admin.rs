//! The admin API for credentials: create, list and revoke API keys and agent tokens.
//!
//! Secrets are shown once, in the answer that creates them; the store keeps their hash. A
//! revocation is refused from the next request on, and cuts what the credential keeps open on
//! every replica (requests in flight end with 401, agent links close with code 4001).

use std::time::Duration;

use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::Utc;
use kubeline_shared::api::{
    AgentTokenCreated, AgentTokenInfo, AgentTokenList, ApiKeyCreated, ApiKeyInfo, ApiKeyList,
    CreateAgentTokenRequest, CreateApiKeyRequest, Scope, check_cluster_id,
};
use serde::Deserialize;

use super::credentials::{agent_token_info, api_key_info};
use super::{Caller, Clusters, Credentials};
use crate::AppState;
use crate::audit::{self, Audited};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Path, Query};
use crate::middleware::RequestContext;
use crate::ratelimit;
use crate::store::CredentialKind;
use crate::store::CredentialRecord;
use kubeline_shared::audit::{AuditAction, AuditDecision, AuditOutcome};

/// Longest API key lifetime that can be asked for: one year.
pub const MAX_KEY_LIFETIME_SECONDS: u64 = 365 * 24 * 3600;
/// Default rotation overlap of agent tokens.
pub const DEFAULT_OVERLAP_SECONDS: u64 = 300;
/// Longest rotation overlap: seven days.
pub const MAX_OVERLAP_SECONDS: u64 = 7 * 24 * 3600;
/// Longest name of an API key.
pub const MAX_NAME_CHARS: usize = 100;

/// Create an API key (admin).
///
/// The answer holds the key's secret: it is shown this once and stored only as a hash.
#[utoipa::path(post, path = "/admin/api-keys", tag = "credentials",
    request_body = CreateApiKeyRequest,
    responses(
        (status = 201, description = "Created; `key` is the secret, shown once.", body = ApiKeyCreated),
        (status = 400, response = crate::openapi::BadRequest),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 413, response = crate::openapi::PayloadTooLarge),
        (status = 415, response = crate::openapi::UnsupportedMediaType),
        (status = 429, response = crate::openapi::TooManyRequests),
        (status = 503, response = crate::openapi::ServiceUnavailable),
    ))]
pub async fn create_api_key(
    State(state): State<AppState>,
    caller: Caller,
    ctx: RequestContext,
    Json(req): Json<CreateApiKeyRequest>,
) -> ApiResult<(StatusCode, Extension<Audited>, Json<ApiKeyCreated>)> {
    caller.require_admin()?;
    let scope: Scope = match req.scope.as_deref() {
        None | Some("") => return Err(ApiError::missing_field("scope")),
        Some(s) => s.parse().map_err(|_| {
            ApiError::invalid_field("scope", format!("Invalid scope {s:?}: use read or admin"))
        })?,
    };
    let clusters = match &req.clusters {
        None => Clusters::all(),
        Some(patterns) => Clusters::parse(patterns)
            .map_err(|e| ApiError::invalid_field("clusters", format!("Invalid clusters: {e}")))?,
    };
    if let Some(name) = &req.name
        && name.chars().count() > MAX_NAME_CHARS
    {
        return Err(ApiError::invalid_field(
            "name",
            format!("Invalid name: use at most {MAX_NAME_CHARS} characters"),
        ));
    }
    let expires_at = match req.expires_in_seconds {
        None => None,
        Some(s) if (1..=MAX_KEY_LIFETIME_SECONDS).contains(&s) => {
            Some(Utc::now() + chrono::Duration::seconds(s as i64))
        }
        Some(s) => {
            return Err(ApiError::invalid_field(
                "expires_in_seconds",
                format!(
                    "Invalid expires_in_seconds {s}: give 1 to {MAX_KEY_LIFETIME_SECONDS} (one year)"
                ),
            ));
        }
    };
    if let Some(limits) = &req.rate_limits {
        for (field, value) in [
            ("session_create", limits.session_create),
            ("execute", limits.execute),
            ("standard", limits.standard),
        ] {
            if value.is_some_and(|v| v > ratelimit::MAX_PER_MINUTE) {
                return Err(ApiError::invalid_field(
                    &format!("rate_limits.{field}"),
                    format!(
                        "Invalid rate_limits.{field}: give requests per minute from 0 (unlimited) \
                         to {}",
                        ratelimit::MAX_PER_MINUTE
                    ),
                ));
            }
        }
    }
    let (key, record) =
        Credentials::new_api_key(req.name, scope, &clusters, expires_at, req.rate_limits);
    audit_change(
        &state,
        &caller,
        &ctx,
        AuditAction::CredentialCreate,
        &record,
    )
    .await?;
    state.credentials.add(&record, Duration::ZERO).await?;
    Ok((
        StatusCode::CREATED,
        Extension(Audited),
        Json(ApiKeyCreated {
            key,
            info: api_key_info(&record),
        }),
    ))
}

/// List API keys (admin). Never their secrets.
#[utoipa::path(get, path = "/admin/api-keys", tag = "credentials",
    responses(
        (status = 200, description = "Every API key, revoked ones included, oldest first.", body = ApiKeyList),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 429, response = crate::openapi::TooManyRequests),
        (status = 503, response = crate::openapi::ServiceUnavailable),
    ))]
pub async fn list_api_keys(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<ApiKeyList>> {
    caller.require_admin()?;
    let keys = state.credentials.list(CredentialKind::ApiKey).await?;
    Ok(Json(ApiKeyList {
        api_keys: keys.iter().map(api_key_info).collect(),
    }))
}

/// Revoke an API key (admin).
///
/// From now on it is refused on every replica, and requests it has in flight end with 401.
/// Revoking a revoked key answers its first revocation.
#[utoipa::path(delete, path = "/admin/api-keys/{key_id}", tag = "credentials",
    params(("key_id" = String, Path, description = "`id` of the key.", example = "key_5f1c2a9e8b7d4c3a")),
    responses(
        (status = 200, description = "Revoked.", body = ApiKeyInfo),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, response = crate::openapi::NotFound),
        (status = 429, response = crate::openapi::TooManyRequests),
        (status = 503, response = crate::openapi::ServiceUnavailable),
    ))]
pub async fn revoke_api_key(
    State(state): State<AppState>,
    caller: Caller,
    ctx: RequestContext,
    Path(key_id): Path<String>,
) -> ApiResult<(Extension<Audited>, Json<ApiKeyInfo>)> {
    caller.require_admin()?;
    let record = revoke(&state, &caller, &ctx, CredentialKind::ApiKey, &key_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("API key not found: {key_id}")))?;
    Ok((Extension(Audited), Json(api_key_info(&record))))
}

/// Records a credential change in the audit trail before it is made: a change the trail
/// cannot take is refused (503), and nothing changes.
async fn audit_change(
    state: &AppState,
    caller: &Caller,
    ctx: &RequestContext,
    action: AuditAction,
    record: &CredentialRecord,
) -> ApiResult<()> {
    let mut event = audit::request_event(ctx, Some(caller), action, AuditOutcome::Accepted);
    event.decision = Some(AuditDecision::Allowed);
    event.target = Some(record.id.clone());
    event.cluster_id = match record.kind {
        CredentialKind::AgentToken => record.clusters.first().cloned(),
        CredentialKind::ApiKey => None,
    };
    state.audit.record(event).await?;
    Ok(())
}

/// Revokes a credential of `kind` after recording it; `None` if there is none.
async fn revoke(
    state: &AppState,
    caller: &Caller,
    ctx: &RequestContext,
    kind: CredentialKind,
    id: &str,
) -> ApiResult<Option<CredentialRecord>> {
    let Some(record) = state.credentials.get(kind, id).await? else {
        return Ok(None);
    };
    audit_change(state, caller, ctx, AuditAction::CredentialRevoke, &record).await?;
    Ok(state.credentials.revoke(kind, id).await?)
}

/// Create an agent token for a cluster (admin); rotates the cluster's earlier tokens.
///
/// The cluster's other tokens keep working for `overlap_seconds` (default 300), so the new
/// token can be rolled out before the old one ends. The answer holds the token: shown once.
#[utoipa::path(post, path = "/admin/agent-tokens", tag = "credentials",
    request_body = CreateAgentTokenRequest,
    responses(
        (status = 201, description = "Created; `token` is the secret, shown once.", body = AgentTokenCreated),
        (status = 400, response = crate::openapi::BadRequest),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 413, response = crate::openapi::PayloadTooLarge),
        (status = 415, response = crate::openapi::UnsupportedMediaType),
        (status = 429, response = crate::openapi::TooManyRequests),
        (status = 503, response = crate::openapi::ServiceUnavailable),
    ))]
pub async fn create_agent_token(
    State(state): State<AppState>,
    caller: Caller,
    ctx: RequestContext,
    Json(req): Json<CreateAgentTokenRequest>,
) -> ApiResult<(StatusCode, Extension<Audited>, Json<AgentTokenCreated>)> {
    caller.require_admin()?;
    let cluster_id = match req.cluster_id {
        Some(c) if !c.trim().is_empty() => c,
        _ => return Err(ApiError::missing_field("cluster_id")),
    };
    check_cluster_id(&cluster_id).map_err(|e| ApiError::invalid_field("cluster_id", e))?;
    caller.require_cluster(&cluster_id)?;
    let overlap = req.overlap_seconds.unwrap_or(DEFAULT_OVERLAP_SECONDS);
    if overlap > MAX_OVERLAP_SECONDS {
        return Err(ApiError::invalid_field(
            "overlap_seconds",
            format!("Invalid overlap_seconds {overlap}: give 0 to {MAX_OVERLAP_SECONDS} (7 days)"),
        ));
    }
    let (token, record) = Credentials::new_agent_token(&cluster_id);
    audit_change(
        &state,
        &caller,
        &ctx,
        AuditAction::CredentialCreate,
        &record,
    )
    .await?;
    let replaced = state
        .credentials
        .add(&record, Duration::from_secs(overlap))
        .await?;
    Ok((
        StatusCode::CREATED,
        Extension(Audited),
        Json(AgentTokenCreated {
            token,
            info: agent_token_info(&record),
            replaced: replaced.iter().map(agent_token_info).collect(),
        }),
    ))
}

/// Query of `GET /admin/agent-tokens`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AgentTokenQuery {
    /// Only tokens of this cluster.
    #[param(example = "production-cluster")]
    cluster_id: Option<String>,
}

/// List agent tokens (admin). Never their secrets.
#[utoipa::path(get, path = "/admin/agent-tokens", tag = "credentials",
    params(AgentTokenQuery),
    responses(
        (status = 200, description = "Agent tokens, revoked ones included, oldest first.", body = AgentTokenList),
        (status = 400, response = crate::openapi::BadRequest),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 429, response = crate::openapi::TooManyRequests),
        (status = 503, response = crate::openapi::ServiceUnavailable),
    ))]
pub async fn list_agent_tokens(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<AgentTokenQuery>,
) -> ApiResult<Json<AgentTokenList>> {
    caller.require_admin()?;
    let tokens = state.credentials.list(CredentialKind::AgentToken).await?;
    let agent_tokens = tokens
        .iter()
        .filter(|t| {
            caller.may_reach(t.clusters.first().map_or("", String::as_str))
                && q.cluster_id.as_deref().is_none_or(|c| {
                    c.is_empty() || t.clusters.first().map(String::as_str) == Some(c)
                })
        })
        .map(agent_token_info)
        .collect();
    Ok(Json(AgentTokenList { agent_tokens }))
}

/// Revoke an agent token (admin).
///
/// The agent linked with it is disconnected within a second on whichever replica holds its
/// link (close code 4001), and cannot link with it again.
#[utoipa::path(delete, path = "/admin/agent-tokens/{token_id}", tag = "credentials",
    params(("token_id" = String, Path, description = "`id` of the token.", example = "atk_0c4e8a1b2d3f5a6b")),
    responses(
        (status = 200, description = "Revoked.", body = AgentTokenInfo),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, response = crate::openapi::NotFound),
        (status = 429, response = crate::openapi::TooManyRequests),
        (status = 503, response = crate::openapi::ServiceUnavailable),
    ))]
pub async fn revoke_agent_token(
    State(state): State<AppState>,
    caller: Caller,
    ctx: RequestContext,
    Path(token_id): Path<String>,
) -> ApiResult<(Extension<Audited>, Json<AgentTokenInfo>)> {
    caller.require_admin()?;
    let record = revoke(&state, &caller, &ctx, CredentialKind::AgentToken, &token_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("Agent token not found: {token_id}")))?;
    Ok((Extension(Audited), Json(agent_token_info(&record))))
}
