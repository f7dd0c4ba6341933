//! REST handlers, field for field as the contract describes them.

use std::time::{Duration, Instant};

use axum::Extension;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use kubeline_shared::api::{
    self, ClusterList, ClusterStatus, ClusterStatusInfo, ClusterSummary, CommandResult,
    CreateSessionRequest, ExecuteRequest, Health, ResultStatus, SessionClosed, SessionCreated,
    SessionEventKind, SessionInfo, SessionList, SessionStatus, SessionSummary,
};
use kubeline_shared::audit::{AuditAction, AuditDecision, AuditEvent, AuditOutcome};
use kubeline_shared::command;
use kubeline_shared::labels::Selector;
use kubeline_shared::trace::{TraceContext, TraceParent};
use serde_json::json;
use tracing::{Instrument, info, info_span, warn};

use crate::audit;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Path, Query};
use crate::hub::SubmitError;
use crate::idempotency::{Claim, IdempotencyKey, Replayed};
use crate::limits::Permit;
use crate::metrics::{self, Limit};
use crate::middleware::RequestContext;
use crate::store::{ClusterRecord, QueuedCommand, SessionRecord};
use crate::{AppState, RETRY_AFTER_IN_FLIGHT, RETRY_AFTER_QUEUE_FULL};

/// Default and largest page of `GET /debug/sessions`.
const DEFAULT_LIST_LIMIT: usize = 50;
const MAX_LIST_LIMIT: usize = 1000;

pub(crate) fn required(value: Option<String>, field: &str) -> ApiResult<String> {
    match value {
        Some(v) if !v.trim().is_empty() => Ok(v),
        _ => Err(ApiError::missing_field(field)),
    }
}

pub(crate) fn valid_cluster_id(id: String) -> ApiResult<String> {
    match api::check_cluster_id(&id) {
        Ok(()) => Ok(id),
        Err(message) => Err(ApiError::invalid_field("cluster_id", message)),
    }
}

pub(crate) fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}

// === health ===

/// `/health`'s reason while the replica drains.
const DRAINING: &str = "draining: this replica is shutting down; use another";

/// Health of the broker and its store.
///
/// Public: load balancers and probes send no credentials. 503 with a `reason` when the store
/// does not answer within 2 s, or while the replica drains after SIGTERM (so a balancer sends
/// new requests and returning agents to the other replicas).
#[utoipa::path(get, path = "/health", tag = "health",
    responses(
        (status = 200, description = "The broker and its store answer.", body = Health),
        (status = 503, description = "The store does not answer, or the replica is draining; \
            `reason` says why.", body = Health,
            example = json!({"status": "unhealthy", "version": "1.0.0", "timestamp": "2024-01-20T10:30:45Z",
                "uptime_seconds": 3600, "reason": "store unavailable: no answer within 2s"})),
    ))]
pub async fn health(State(state): State<AppState>) -> Response {
    let reason = if state.hub.is_draining() {
        // A balancer stops sending new work (and returning agents) here while it drains.
        Some(DRAINING.to_owned())
    } else {
        match tokio::time::timeout(Duration::from_secs(2), state.hub.store().ping()).await {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(format!("store unavailable: {e}")),
            Err(_) => Some("store unavailable: no answer within 2s".to_owned()),
        }
    };
    let body = Health {
        status: if reason.is_none() {
            "healthy"
        } else {
            "unhealthy"
        }
        .to_owned(),
        version: kubeline_shared::VERSION.to_owned(),
        timestamp: Utc::now(),
        uptime_seconds: state.started.elapsed().as_secs(),
        reason,
    };
    let status = if body.reason.is_none() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

/// Prometheus metrics of this broker replica (text exposition format 0.0.4).
///
/// Any API key may read them (scope `read` is enough): the series carry no ids, but load and
/// failure counts are not for anonymous callers. Series and labels: see the README's "Metrics
/// and tracing".
#[utoipa::path(get, path = "/metrics", tag = "metrics",
    responses(
        (status = 200, description = "The series of this replica.", body = String,
            content_type = "text/plain; version=0.0.4",
            example = "kubeline_agents_connected 1\nkubeline_executes_total{command_type=\"get\",outcome=\"completed\"} 12\n"),
        (status = 401, response = crate::openapi::Unauthorized),
    ))]
pub async fn metrics(State(state): State<AppState>, _caller: Caller) -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            crate::metrics::CONTENT_TYPE,
        )],
        crate::metrics::render(&state.hub),
    )
        .into_response()
}

// === sessions ===

/// Create a debug session on a cluster.
///
/// The cluster must be known to the broker (it has an agent token, or its agent linked once);
/// its agent need not be connected yet. The session accepts commands until `expires_at`
/// (`--session-ttl`, default 1 h).
#[utoipa::path(post, path = "/debug/session", tag = "sessions",
    request_body = CreateSessionRequest,
    responses(
        (status = 201, description = "Session created.", body = SessionCreated,
            links(
                ("GetSession" = (operation_id = "get_session",
                    parameters(("session_id" = "$response.body#/session_id")),
                    description = "The session just created.")),
                ("DeleteSession" = (operation_id = "delete_session",
                    parameters(("session_id" = "$response.body#/session_id")),
                    description = "Close the session just created.")),
                ("Execute" = (operation_id = "execute",
                    request_body = json!({
                        "cluster_id": "$response.body#/cluster_id",
                        "session_id": "$response.body#/session_id",
                        "command_type": "version",
                        "args": []
                    }),
                    description = "Run a command in the session just created.")),
                ("ClusterStatus" = (operation_id = "cluster_status",
                    parameters(("cluster_id" = "$response.body#/cluster_id")),
                    description = "The session's cluster.")),
            )),
        (status = 400, response = crate::openapi::BadRequest),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 404, response = crate::openapi::NotFound),
        (status = 413, response = crate::openapi::PayloadTooLarge),
        (status = 415, response = crate::openapi::UnsupportedMediaType),
        (status = 500, response = crate::openapi::InternalError),
        (status = 503, response = crate::openapi::ServiceUnavailable),
    ))]
pub async fn create_session(
    State(state): State<AppState>,
    caller: Caller,
    ctx: RequestContext,
    Json(req): Json<CreateSessionRequest>,
) -> ApiResult<(StatusCode, Extension<audit::Audited>, Json<SessionCreated>)> {
    let created = open_session(&state, &caller, &ctx, req).await?;
    Ok((
        StatusCode::CREATED,
        Extension(audit::Audited),
        Json(created),
    ))
}

/// Creates a session for the caller on a cluster it reaches (audited first).
pub(crate) async fn open_session(
    state: &AppState,
    caller: &Caller,
    ctx: &RequestContext,
    req: CreateSessionRequest,
) -> ApiResult<SessionCreated> {
    let cluster_id = valid_cluster_id(required(req.cluster_id, "cluster_id")?)?;
    caller.require_cluster(&cluster_id)?;
    ensure_cluster_known(state, &cluster_id).await?;
    let now = Utc::now();
    let record = SessionRecord {
        session_id: new_id("sess"),
        cluster_id,
        created_at: now,
        expires_at: now + state.settings.session_ttl,
        closed_at: None,
        last_activity: now,
        commands_executed: 0,
        metadata: req
            .metadata
            .map(|m| serde_json::Value::Object(m).to_string()),
        owner: Some(caller.credential_id.clone()),
    };
    // Recorded before it exists: no session without its record.
    let mut event = audit::request_event(
        ctx,
        Some(caller),
        AuditAction::SessionCreate,
        AuditOutcome::Accepted,
    );
    event.cluster_id = Some(record.cluster_id.clone());
    event.session_id = Some(record.session_id.clone());
    event.decision = Some(AuditDecision::Allowed);
    state.audit.record(event).await?;
    state
        .hub
        .store()
        .create_session(&record, state.settings.session_retention)
        .await?;
    info!(session_id = %record.session_id, cluster = %record.cluster_id, "session created");
    state
        .hub
        .events()
        .session(SessionEventKind::SessionCreated, &record);
    Ok(SessionCreated {
        session_id: record.session_id,
        cluster_id: record.cluster_id,
        status: SessionStatus::Active,
        created_at: record.created_at,
        expires_at: record.expires_at,
    })
}

async fn ensure_cluster_known(state: &AppState, cluster_id: &str) -> ApiResult<ClusterRecord> {
    let record = state.hub.store().get_cluster(cluster_id).await?;
    match record {
        Some(r) => Ok(r),
        None if state.credentials.knows_cluster(cluster_id).await? => Ok(ClusterRecord {
            cluster_id: cluster_id.to_owned(),
            broker_id: None,
            agent_version: None,
            kubernetes_version: None,
            last_seen: None,
            labels: Default::default(),
        }),
        None => Err(ApiError::not_found(format!(
            "Cluster not found: {cluster_id}"
        ))),
    }
}

/// A session the caller may use: on a cluster it reaches, and its own unless it is an admin.
pub(crate) async fn load_session(
    state: &AppState,
    caller: &Caller,
    session_id: &str,
) -> ApiResult<SessionRecord> {
    let session = state
        .hub
        .store()
        .get_session(session_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("Session not found: {session_id}")))?;
    caller.require_session(&session)?;
    Ok(session)
}

/// Read a debug session.
#[utoipa::path(get, path = "/debug/session/{session_id}", tag = "sessions",
    params(("session_id" = String, Path, description = "`session_id` from `POST /debug/session`.", example = "sess_abc123def456")),
    responses(
        (status = 200, description = "The session, with its status now.", body = SessionInfo),
        (status = 400, response = crate::openapi::BadRequest),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 404, response = crate::openapi::NotFound),
        (status = 500, response = crate::openapi::InternalError),
        (status = 503, response = crate::openapi::ServiceUnavailable),
    ))]
pub async fn get_session(
    State(state): State<AppState>,
    caller: Caller,
    Path(session_id): Path<String>,
) -> ApiResult<Json<SessionInfo>> {
    let s = load_session(&state, &caller, &session_id).await?;
    Ok(Json(SessionInfo {
        status: s.status(Utc::now()),
        session_id: s.session_id,
        cluster_id: s.cluster_id,
        created_at: s.created_at,
        expires_at: s.expires_at,
        last_activity: s.last_activity,
        commands_executed: s.commands_executed,
    }))
}

/// Close a debug session.
///
/// Commands no longer run in it; it stays readable until its retention ends. Closing a closed
/// session answers its first `closed_at` again.
#[utoipa::path(delete, path = "/debug/session/{session_id}", tag = "sessions",
    params(("session_id" = String, Path, description = "`session_id` from `POST /debug/session`.", example = "sess_abc123def456")),
    responses(
        (status = 200, description = "The session is closed.", body = SessionClosed),
        (status = 400, response = crate::openapi::BadRequest),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 404, response = crate::openapi::NotFound),
        (status = 500, response = crate::openapi::InternalError),
        (status = 503, response = crate::openapi::ServiceUnavailable),
    ))]
pub async fn delete_session(
    State(state): State<AppState>,
    caller: Caller,
    ctx: RequestContext,
    Path(session_id): Path<String>,
) -> ApiResult<(Extension<audit::Audited>, Json<SessionClosed>)> {
    let closed = close_session(&state, &caller, &ctx, &session_id).await?;
    Ok((Extension(audit::Audited), Json(closed)))
}

/// Closes a session the caller may use (audited first).
pub(crate) async fn close_session(
    state: &AppState,
    caller: &Caller,
    ctx: &RequestContext,
    session_id: &str,
) -> ApiResult<SessionClosed> {
    let session = load_session(state, caller, session_id).await?;
    let mut event = audit::request_event(
        ctx,
        Some(caller),
        AuditAction::SessionClose,
        AuditOutcome::Accepted,
    );
    event.cluster_id = Some(session.cluster_id);
    event.session_id = Some(session.session_id);
    event.decision = Some(AuditDecision::Allowed);
    state.audit.record(event).await?;
    let s = state
        .hub
        .store()
        .close_session(session_id, Utc::now())
        .await?
        .ok_or_else(|| ApiError::not_found(format!("Session not found: {session_id}")))?;
    info!(session_id = %s.session_id, "session closed");
    state
        .hub
        .events()
        .session(SessionEventKind::SessionClosed, &s);
    Ok(SessionClosed {
        session_id: s.session_id,
        status: SessionStatus::Closed,
        closed_at: s.closed_at.unwrap_or_else(Utc::now),
    })
}

/// Query of `GET /debug/sessions`. Values arrive as strings and are checked in the handler, so
/// that the answer can say what is allowed.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SessionQuery {
    /// Only sessions on this cluster.
    #[param(value_type = Option<String>, example = "production-cluster")]
    cluster_id: Option<String>,
    /// Only sessions in this state.
    #[param(value_type = Option<SessionStatus>)]
    status: Option<String>,
    /// Most sessions to return, newest first (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000, example = 50)]
    limit: Option<String>,
}

/// List debug sessions.
///
/// An admin sees every session on the clusters its credential reaches; any other caller sees
/// its own.
#[utoipa::path(get, path = "/debug/sessions", tag = "sessions",
    params(SessionQuery),
    responses(
        (status = 200, description = "Matching sessions, newest first.", body = SessionList),
        (status = 400, response = crate::openapi::BadRequest),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 500, response = crate::openapi::InternalError),
        (status = 503, response = crate::openapi::ServiceUnavailable),
    ))]
pub async fn list_sessions(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<SessionQuery>,
) -> ApiResult<Json<SessionList>> {
    let status = match q.status.as_deref() {
        None | Some("") => None,
        Some(s) => Some(SessionStatus::parse(s).ok_or_else(|| {
            ApiError::invalid_field(
                "status",
                format!("Invalid status {s:?}: use active, closed or expired"),
            )
        })?),
    };
    let limit = match q.limit.as_deref() {
        None | Some("") => DEFAULT_LIST_LIMIT,
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_LIST_LIMIT).contains(n))
            .ok_or_else(|| {
                ApiError::invalid_field(
                    "limit",
                    format!("Invalid limit {l:?}: use a whole number from 1 to {MAX_LIST_LIMIT}"),
                )
            })?,
    };
    let now = Utc::now();
    let mut sessions: Vec<SessionRecord> = state.hub.store().list_sessions().await?;
    sessions.retain(|s| {
        caller.may_see(s)
            && q.cluster_id
                .as_deref()
                .is_none_or(|c| c.is_empty() || s.cluster_id == c)
            && status.is_none_or(|st| s.status(now) == st)
    });
    sessions.sort_by_key(|s| std::cmp::Reverse(s.created_at));
    sessions.truncate(limit);
    let sessions: Vec<SessionSummary> = sessions
        .into_iter()
        .map(|s| SessionSummary {
            status: s.status(now),
            session_id: s.session_id,
            cluster_id: s.cluster_id,
            created_at: s.created_at,
            last_activity: s.last_activity,
        })
        .collect();
    Ok(Json(SessionList {
        total: sessions.len(),
        sessions,
    }))
}

// === execute and results ===

/// Execute a read-only kubectl command in a debug session and wait for its result.
///
/// The command is parsed here and again by the agent; a refused one gets 400 and nothing is
/// queued. The answer comes when the agent has run it (200, `completed` or `failed` with
/// kubectl's exit code and standard error), or at the timeout (504). 503 at once when the
/// cluster's agent is not connected.
#[utoipa::path(post, path = "/debug/execute", tag = "commands",
    params(("X-Request-Timeout" = Option<f64>, Header,
        description = "Timeout in seconds when the body gives no `timeout`.", example = 30),
        ("Idempotency-Key" = Option<String>, Header,
        description = "1 to 255 visible ASCII characters. A retry with the same key (same \
            credential, same body) is answered with the first request's result instead of \
            running again; the same key with another body is refused (400 \
            `idempotency_key_reused`). Kept as long as results.",
        example = "5b1c7e2e-0c7a-4d8e-9d59-3f8f6c1e2a10")),
    request_body = ExecuteRequest,
    responses(
        (status = 200, description = "The command ran (or failed as kubectl would).", body = CommandResult,
            links(
                ("GetResult" = (operation_id = "get_result",
                    parameters(("result_id" = "$response.body#/result_id")),
                    description = "Read this result again.")),
                ("GetSession" = (operation_id = "get_session",
                    parameters(("session_id" = "$response.body#/session_id")),
                    description = "The session the command ran in.")),
            )),
        (status = 400, response = crate::openapi::BadRequest),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 404, response = crate::openapi::NotFound),
        (status = 413, response = crate::openapi::PayloadTooLarge),
        (status = 415, response = crate::openapi::UnsupportedMediaType),
        (status = 429, response = crate::openapi::TooManyRequests),
        (status = 500, response = crate::openapi::InternalError),
        (status = 503, response = crate::openapi::ServiceUnavailable),
        (status = 504, response = crate::openapi::GatewayTimeout),
    ))]
pub async fn execute(
    State(state): State<AppState>,
    caller: Caller,
    ctx: RequestContext,
    headers: HeaderMap,
    Json(req): Json<ExecuteRequest>,
) -> Response {
    let extra = ExecuteHeaders {
        timeout: headers.get("x-request-timeout"),
        idempotency_key: headers.get("idempotency-key"),
    };
    let answer = run_command(&state, &caller, &ctx, extra, req).await;
    let mut response = match answer.and_then(result_response) {
        Ok(response) => response,
        Err(e) => e.into_response(),
    };
    response.extensions_mut().insert(audit::Audited);
    response
}

/// What the headers of an execute request add to its body.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct ExecuteHeaders<'a> {
    /// `X-Request-Timeout`, used when the body gives no `timeout`.
    pub timeout: Option<&'a HeaderValue>,
    /// `Idempotency-Key`: a retry with the same key gets the first request's result.
    pub idempotency_key: Option<&'a HeaderValue>,
}

/// Runs one command for the caller, from its request to its result (or the error that refuses
/// it), measured and audited: the path of every execute, REST or MCP.
pub(crate) async fn run_command(
    state: &AppState,
    caller: &Caller,
    ctx: &RequestContext,
    headers: ExecuteHeaders<'_>,
    req: ExecuteRequest,
) -> ApiResult<CommandResult> {
    let started = Instant::now();
    let command_label = metrics::command_label(req.command_type.as_deref());
    let span = info_span!("execute");
    let trace = span_trace(&span, ctx);
    // What the audit trail says of it, whatever the answer.
    let mut event = audit::request_event(
        ctx,
        Some(caller),
        AuditAction::Execute,
        AuditOutcome::Refused,
    );
    event.cluster_id = req.cluster_id.clone();
    event.session_id = req.session_id.clone();
    event.command_type = req.command_type.clone();
    event.args = req.args.clone();
    let mut dispatched = false;
    let answer = run_execute(
        state,
        caller,
        ctx,
        trace,
        headers,
        req,
        &mut event,
        &mut dispatched,
    )
    .instrument(span)
    .await;
    metrics::executed(command_label, &answer, started.elapsed());
    // The accepted record was written before dispatch (`run_execute`); this one says how it
    // ended, or why it was refused.
    event.duration_ms = Some(audit::elapsed_ms(ctx));
    match &answer {
        Ok(result) => {
            event.outcome = match result.status {
                ResultStatus::Completed => AuditOutcome::Completed,
                ResultStatus::Timeout => AuditOutcome::Timeout,
                ResultStatus::Failed if result.exit_code.is_none() => AuditOutcome::Error,
                _ => AuditOutcome::Failed,
            };
            event.decision = Some(AuditDecision::Allowed);
            event.result_id = Some(result.result_id.clone());
            event.exit_code = result.exit_code;
            event.reason = result.error.as_deref().map(|e| truncate(e, 512).to_owned());
        }
        Err(e) => {
            event.outcome = if dispatched {
                AuditOutcome::Error
            } else {
                AuditOutcome::Refused
            };
            if !dispatched {
                event.decision = Some(AuditDecision::Refused);
            }
            event.reason = Some(format!("{}: {}", e.status().as_u16(), e.body().message));
        }
    }
    audit::record_after(&state.audit, event).await;
    answer
}

/// The first `max` bytes of `s` at most, cut at a character boundary.
pub(crate) fn truncate(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Where the `execute` span stands in the trace: the agent's span of the command takes it as
/// parent. Without OTLP export it is the request's own span id from the trace context.
#[cfg(not(feature = "otlp"))]
fn span_trace(_span: &tracing::Span, ctx: &RequestContext) -> TraceParent {
    ctx.trace
}

/// With OTLP export the `execute` span is exported: it becomes the child of the caller's span
/// (or the root of a new trace), and its exported ids are what the agent gets as parent.
#[cfg(feature = "otlp")]
fn span_trace(span: &tracing::Span, ctx: &RequestContext) -> TraceParent {
    use opentelemetry::trace::{
        SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState,
    };
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    if let Some(caller) = ctx.caller_trace {
        let remote = SpanContext::new(
            TraceId::from_bytes(caller.trace_id.to_be_bytes()),
            SpanId::from_bytes(caller.parent_id.to_be_bytes()),
            TraceFlags::new(caller.flags),
            true,
            TraceState::default(),
        );
        // Fails only when no OTLP layer is installed (no --otlp-endpoint): nothing to parent.
        let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(remote));
    }
    let cx = span.context();
    let exported = cx.span().span_context().clone();
    if !exported.is_valid() {
        return ctx.trace;
    }
    TraceParent {
        trace_id: u128::from_be_bytes(exported.trace_id().to_bytes()),
        parent_id: u64::from_be_bytes(exported.span_id().to_bytes()),
        flags: exported.trace_flags().to_u8(),
    }
}

/// An execute from its request to its result (or the error that refuses it). The accepted
/// audit record (`event`, as the handler filled it) is written before anything is queued; an
/// execute whose record cannot be written is refused with 503 and nothing is queued.
#[allow(clippy::too_many_arguments)]
async fn run_execute(
    state: &AppState,
    caller: &Caller,
    ctx: &RequestContext,
    trace: TraceParent,
    headers: ExecuteHeaders<'_>,
    req: ExecuteRequest,
    event: &mut AuditEvent,
    dispatched: &mut bool,
) -> ApiResult<CommandResult> {
    let cluster_id = valid_cluster_id(required(req.cluster_id, "cluster_id")?)?;
    caller.require_cluster(&cluster_id)?;
    let session_id = required(req.session_id, "session_id")?;
    let command_type = required(req.command_type, "command_type")?;
    let args = req.args.ok_or_else(|| ApiError::missing_field("args"))?;
    let timeout = request_timeout(state, req.timeout, headers.timeout)?;
    let max = state.settings.max_output_bytes;
    let max_output_bytes = match req.max_output_bytes {
        None => max,
        Some(n) if (1..=max).contains(&n) => n,
        Some(n) => {
            return Err(ApiError::invalid_field(
                "max_output_bytes",
                format!("Invalid max_output_bytes {n}: give a number of bytes from 1 to {max}"),
            ));
        }
    };
    // A policy refusal or a limit is a 400; a kubectl usage error is answered below as kubectl
    // answers it, once the session is known to be usable.
    let usage_error = match command::parse(&command_type, &args) {
        Ok(_) => None,
        Err(e) => match e.kubectl_error {
            Some(stderr) => Some(stderr),
            None => {
                return Err(ApiError::bad_request(
                    format!("Command refused: {}", e.message),
                    json!({ "code": e.code, "argument": e.argument, "command_type": command_type }),
                ));
            }
        },
    };
    let now = Utc::now();
    let session = usable_session(state, caller, &session_id, &cluster_id, now).await?;
    if let Some(stderr) = usage_error {
        return usage_error_result(
            state,
            session_id,
            cluster_id,
            now,
            ctx,
            stderr,
            (&command_type, &args),
        )
        .await;
    }
    let result_id = new_id("res");
    // A retry with the same key is answered with the first request's result, not run again.
    let idempotency = match headers.idempotency_key {
        None => None,
        Some(key) => {
            let request = [cluster_id.as_str(), &session_id, &command_type];
            let mut key = IdempotencyKey::new(caller, key, &request, &args, max_output_bytes)?;
            match key.claim(state, &result_id).await? {
                Claim::Taken => Some(key),
                Claim::Replay(held) => {
                    let first = held.result_id.clone();
                    match key.replay(state, held, &result_id, now + timeout).await? {
                        Replayed::Result(result) => {
                            event.result_id = Some(first);
                            event.reason =
                                Some("replayed: Idempotency-Key of an earlier execute".into());
                            return Ok(*result);
                        }
                        Replayed::TakenOver => Some(key),
                    }
                }
            }
        }
    };
    let answer = dispatch(
        state,
        caller,
        ctx,
        trace,
        event,
        dispatched,
        session.owner.as_deref(),
        QueuedCommand {
            entry_id: String::new(),
            result_id: result_id.clone(),
            session_id,
            cluster_id,
            command_type,
            args,
            executed_at: now,
            deadline: now + timeout,
            max_output_bytes,
            correlation_id: ctx.correlation_id.clone(),
            reply_to: state.hub.broker_id().to_owned(),
            trace: Some(TraceContext {
                traceparent: trace.to_string(),
                tracestate: ctx.tracestate.clone(),
            }),
            stream: false,
        },
    )
    .await;
    // Refused before anything was queued: the key may be used again.
    if let Some(key) = idempotency
        && answer.is_err()
        && !*dispatched
    {
        key.release(state).await;
    }
    answer
}

/// The second half of an execute: the agent's link, the limits, the accepted audit record, the
/// queue, and the wait for the result.
#[allow(clippy::too_many_arguments)]
async fn dispatch(
    state: &AppState,
    caller: &Caller,
    ctx: &RequestContext,
    trace: TraceParent,
    event: &mut AuditEvent,
    dispatched: &mut bool,
    owner: Option<&str>,
    command: QueuedCommand,
) -> ApiResult<CommandResult> {
    let cluster_id = command.cluster_id.clone();
    require_agent(state, &cluster_id).await?;
    // Limits last, so that a request that is wrong is told so whatever the load. The permits
    // are held until this handler ends, however it ends (answer, error, caller gone).
    let _permits = execute_permits(state, caller, &cluster_id)?;
    check_queue(state, &cluster_id).await?;
    event.result_id = Some(command.result_id.clone());
    state
        .audit
        .record(AuditEvent {
            outcome: AuditOutcome::Accepted,
            decision: Some(AuditDecision::Allowed),
            ..event.clone()
        })
        .await?;
    *dispatched = true;
    info!(
        result_id = %command.result_id,
        session_id = %command.session_id,
        cluster = %command.cluster_id,
        command_type = %command.command_type,
        args = ?command.args,
        correlation_id = %ctx.correlation_id,
        trace_id = %trace.trace_id_hex(),
        span_id = %trace.parent_id_hex(),
        service = ctx.service_identity.as_deref().unwrap_or("-"),
        credential = %caller.credential_id,
        "execute"
    );
    let events = state.hub.events();
    // Kept for the finished event only when someone reads the cluster's events.
    let started = events.wanted(&command.cluster_id).then(|| {
        events.command_started(&command, owner);
        command.clone()
    });
    let result = state.hub.submit(command).await.map_err(|e| match e {
        SubmitError::Store(e) => ApiError::from(e),
    })?;
    if let Some(command) = started {
        events.command_finished(&command, &result, owner);
    }
    info!(result_id = %result.result_id, status = ?result.status, ms = result.execution_time_ms, "executed");
    Ok(result)
}

/// Checks that the caller's session `session_id` is active and on `cluster_id`.
pub(crate) async fn usable_session(
    state: &AppState,
    caller: &Caller,
    session_id: &str,
    cluster_id: &str,
    now: chrono::DateTime<Utc>,
) -> ApiResult<SessionRecord> {
    let session = load_session(state, caller, session_id).await?;
    if session.cluster_id != cluster_id {
        return Err(ApiError::bad_request(
            format!(
                "Session {session_id} belongs to cluster {}, not {cluster_id}",
                session.cluster_id
            ),
            json!({ "field": "cluster_id", "code": "session_cluster_mismatch" }),
        ));
    }
    match session.status(now) {
        SessionStatus::Active => Ok(session),
        status => Err(ApiError::bad_request(
            format!(
                "Session {session_id} is {}; create a new session to run commands",
                status.as_str()
            ),
            json!({ "field": "session_id", "code": format!("session_{}", status.as_str()) }),
        )),
    }
}

/// Refuses at once (503) when no agent of `cluster_id` is linked to any replica.
pub(crate) async fn require_agent(state: &AppState, cluster_id: &str) -> ApiResult<()> {
    if state.hub.holds_link(cluster_id) {
        return Ok(());
    }
    let record = state.hub.store().get_cluster(cluster_id).await?;
    if record.as_ref().is_none_or(|r| r.broker_id.is_none()) {
        return Err(ApiError::service_unavailable(
            "Cluster agent is not connected",
            json!({
                "cluster_id": cluster_id,
                "last_seen": record.and_then(|r| r.last_seen).map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
                "code": AGENT_NOT_CONNECTED,
            }),
        ));
    }
    Ok(())
}

/// Takes the in-flight slots of one execute: one of its API key's, one of its cluster's.
fn execute_permits(
    state: &AppState,
    caller: &Caller,
    cluster_id: &str,
) -> ApiResult<(Permit<String>, Permit<String>)> {
    let limits = &state.limits;
    let key = limits.per_key.try_acquire(&caller.credential_id);
    metrics::limit_decision(Limit::PerKey, key.is_some());
    let Some(key) = key else {
        let max = limits.per_key.max();
        warn!(credential = %caller.credential_id, limit = max, "execute refused: too many in flight for this key");
        return Err(ApiError::too_many_requests(
            format!(
                "Too many commands in flight for this API key: at most {max} may run at once \
                 (broker limit --max-executes-per-key). Wait for one of them to finish, then \
                 retry"
            ),
            json!({ "limit": max, "scope": "api_key", "code": "too_many_in_flight" }),
            RETRY_AFTER_IN_FLIGHT,
        ));
    };
    // On refusal here the key's permit drops with this frame: nothing stays counted.
    let cluster = limits.per_cluster.try_acquire(&cluster_id.to_owned());
    metrics::limit_decision(Limit::PerCluster, cluster.is_some());
    let Some(cluster) = cluster else {
        let max = limits.per_cluster.max();
        warn!(cluster = %cluster_id, limit = max, "execute refused: too many in flight for this cluster");
        return Err(ApiError::too_many_requests(
            format!(
                "Too many commands in flight for cluster {cluster_id}: at most {max} may run at \
                 once, all callers together (broker limit --max-executes-per-cluster). Retry \
                 shortly"
            ),
            json!({
                "limit": max,
                "scope": "cluster",
                "cluster_id": cluster_id,
                "code": "too_many_in_flight",
            }),
            RETRY_AFTER_IN_FLIGHT,
        ));
    };
    Ok((key, cluster))
}

/// Refuses an execute, before anything is written, when its cluster's queue is full.
///
/// 503 rather than 429: the queue is shared by every caller of the cluster, so a full queue says
/// the cluster's agent is not keeping up (or was away), not that this caller sent too much; the
/// refused caller may have sent nothing else. 503 with `Retry-After` is HTTP's "overloaded, come
/// back later", and the contract's 503 body names the cluster. The check and the enqueue are two
/// steps, so concurrent executes may pass it together; the in-flight limit per cluster bounds by
/// how much the queue can overshoot.
pub(crate) async fn check_queue(state: &AppState, cluster_id: &str) -> ApiResult<()> {
    let max = state.limits.max_queue;
    let depth = state.hub.store().queue_depth(cluster_id).await?;
    metrics::queue_depth(depth);
    metrics::limit_decision(Limit::Queue, depth < max);
    if depth < max {
        return Ok(());
    }
    warn!(cluster = %cluster_id, depth, limit = max, "execute refused: cluster queue full");
    Err(ApiError::service_unavailable(
        format!(
            "The command queue of cluster {cluster_id} is full: {depth} commands are queued or \
             running, the limit is {max} (broker limit --max-queue-per-cluster). Nothing was \
             queued; retry once the agent has caught up"
        ),
        json!({
            "cluster_id": cluster_id,
            "queue_depth": depth,
            "limit": max,
            "code": "queue_full",
        }),
    )
    .with_retry_after(RETRY_AFTER_QUEUE_FULL))
}

/// Answers a kubectl usage error without queueing anything: a `failed` result with kubectl's
/// standard error and exit code 1, stored so it can be fetched by `result_id` like any other
/// (and announced as `command.failed`, as every failed result is).
async fn usage_error_result(
    state: &AppState,
    session_id: String,
    cluster_id: String,
    now: chrono::DateTime<Utc>,
    ctx: &RequestContext,
    stderr: String,
    (command_type, args): (&str, &[String]),
) -> ApiResult<CommandResult> {
    let result = CommandResult {
        result_id: new_id("res"),
        session_id,
        cluster_id,
        status: ResultStatus::Failed,
        output: String::new(),
        error: Some(stderr),
        exit_code: Some(1),
        execution_time_ms: 0,
        executed_at: now,
        correlation_id: ctx.correlation_id.clone(),
        truncated: None,
        window: None,
    };
    state
        .hub
        .store()
        .finish_result(&result, state.hub.settings().result_ttl, None)
        .await?;
    info!(result_id = %result.result_id, "kubectl usage error answered without queueing");
    let (webhooks, command_type, args, failed) = (
        state.webhooks.clone(),
        command_type.to_owned(),
        args.to_vec(),
        result.clone(),
    );
    tokio::spawn(async move {
        webhooks.command_failed(&command_type, &args, &failed).await;
    });
    Ok(result)
}

fn result_response(result: CommandResult) -> ApiResult<Response> {
    match result.status {
        ResultStatus::Timeout => Err(ApiError::timeout(
            result
                .error
                .clone()
                .unwrap_or_else(|| "command timed out".to_owned()),
            json!({ "result_id": result.result_id, "cluster_id": result.cluster_id, "status": "timeout" }),
        )),
        // A failure without an exit code never ran to an end on the agent (its link was lost).
        ResultStatus::Failed if result.exit_code.is_none() => Err(ApiError::service_unavailable(
            result.error.clone().unwrap_or_default(),
            json!({ "result_id": result.result_id, "cluster_id": result.cluster_id }),
        )),
        _ => Ok(Json(result).into_response()),
    }
}

pub(crate) fn request_timeout(
    state: &AppState,
    body: Option<f64>,
    header: Option<&HeaderValue>,
) -> ApiResult<chrono::Duration> {
    // A header that is given is checked even when the body's `timeout` wins: a caller who sends
    // an unusable one is told so rather than silently ignored.
    let header = match header {
        Some(v) => Some(checked_timeout(
            state,
            v.to_str()
                .ok()
                .and_then(|v| v.trim().parse::<f64>().ok())
                .ok_or_else(|| {
                    ApiError::invalid_field(
                        "X-Request-Timeout",
                        "Invalid X-Request-Timeout header: give the timeout in seconds",
                    )
                })?,
            "X-Request-Timeout",
        )?),
        None => None,
    };
    let seconds = match body {
        Some(t) => checked_timeout(state, t, "timeout")?,
        None => header.unwrap_or(state.settings.default_timeout.as_secs_f64()),
    };
    Ok(chrono::Duration::milliseconds((seconds * 1000.0) as i64))
}

fn checked_timeout(state: &AppState, seconds: f64, field: &str) -> ApiResult<f64> {
    let max = state.settings.max_timeout.as_secs_f64();
    if !(seconds > 0.0 && seconds <= max) {
        return Err(ApiError::invalid_field(
            field,
            format!("Invalid {field} {seconds}: give seconds greater than 0 and at most {max}"),
        ));
    }
    Ok(seconds)
}

/// Query of `GET /debug/result/{result_id}`: a window of the output. Values arrive as strings
/// and are checked in the handler, so that the answer can say what is allowed.
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ResultQuery {
    /// Byte offset of the window in the stored output (default 0). Use the `next_offset` of
    /// the previous window.
    #[param(value_type = Option<u64>, minimum = 0, example = 0)]
    pub offset: Option<String>,
    /// Most bytes of output in the window (default 65536, at most 4194304). The window ends
    /// after its last whole line when the output goes on.
    #[param(value_type = Option<u64>, minimum = 1, maximum = 4194304, example = 16384)]
    pub limit: Option<String>,
}

impl ResultQuery {
    /// The window asked for, if any: `(offset, limit)`.
    pub fn window(&self) -> ApiResult<Option<(u64, u64)>> {
        let offset = number_param("offset", self.offset.as_deref(), 0, u64::MAX)?;
        let limit = number_param("limit", self.limit.as_deref(), 1, api::MAX_WINDOW_BYTES)?;
        Ok(match (offset, limit) {
            (None, None) => None,
            (offset, limit) => Some((
                offset.unwrap_or(0),
                limit.unwrap_or(api::DEFAULT_WINDOW_BYTES),
            )),
        })
    }
}

/// A whole-number query parameter from `min` to `max`, or `None` when absent or empty.
pub(crate) fn number_param(
    name: &str,
    value: Option<&str>,
    min: u64,
    max: u64,
) -> ApiResult<Option<u64>> {
    match value {
        None | Some("") => Ok(None),
        Some(v) => v
            .parse::<u64>()
            .ok()
            .filter(|n| (min..=max).contains(n))
            .map(Some)
            .ok_or_else(|| {
                ApiError::invalid_field(
                    name,
                    format!("Invalid {name} {v:?}: use a whole number from {min} to {max}"),
                )
            }),
    }
}

/// Read a command's result again, whole or by window.
///
/// Results stay readable for `--result-ttl` (default 1 h); a command still running reads as
/// `pending`. With `offset` or `limit` the answer holds only that window of the output and says
/// where the next one starts (`window.next_offset`), so a large output can be read in parts
/// that fit a model's context.
#[utoipa::path(get, path = "/debug/result/{result_id}", tag = "commands",
    params(("result_id" = String, Path, description = "`result_id` from `POST /debug/execute`.", example = "res_xyz789abc123"),
        ResultQuery),
    responses(
        (status = 200, description = "The result, or the window of it asked for.", body = CommandResult),
        (status = 400, response = crate::openapi::BadRequest),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 404, response = crate::openapi::NotFound),
        (status = 500, response = crate::openapi::InternalError),
        (status = 503, response = crate::openapi::ServiceUnavailable),
    ))]
pub async fn get_result(
    State(state): State<AppState>,
    caller: Caller,
    Path(result_id): Path<String>,
    Query(q): Query<ResultQuery>,
) -> ApiResult<Json<CommandResult>> {
    let window = q.window()?;
    read_result(&state, &caller, &result_id, window)
        .await
        .map(Json)
}

/// A stored result the caller may read (on a cluster it reaches), whole or the window
/// `(offset, limit)` of its output.
pub(crate) async fn read_result(
    state: &AppState,
    caller: &Caller,
    result_id: &str,
    window: Option<(u64, u64)>,
) -> ApiResult<CommandResult> {
    let result = state
        .hub
        .store()
        .get_result(result_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("Result not found: {result_id}")))?;
    caller.require_cluster(&result.cluster_id)?;
    match window {
        None => Ok(result),
        Some((offset, limit)) => result
            .windowed(offset, limit)
            .map_err(|e| ApiError::invalid_field("offset", format!("Invalid offset: {e}"))),
    }
}

// === clusters ===

/// `details.code` of the 503 answered when a cluster's agent is not linked.
pub(crate) const AGENT_NOT_CONNECTED: &str = "agent_not_connected";

/// Query of `GET /clusters`.
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ClusterQuery {
    /// Only clusters whose labels match this label selector, in kubectl's `-l` grammar:
    /// `env=prod`, `env!=dev`, `env in (prod,staging)`, `env notin (dev)`, `env`, `!env`, joined
    /// by `,` (all must hold). At most 4096 bytes.
    #[param(value_type = Option<String>, max_length = 4096, example = "env=prod,region!=us")]
    pub selector: Option<String>,
}

/// Parses a caller's label selector; a 400 naming `selector` when it does not parse.
pub(crate) fn parse_selector(selector: &str) -> ApiResult<Selector> {
    Selector::parse(selector).map_err(|e| {
        ApiError::bad_request(
            format!(
                "Invalid selector {:?}: {e}. Write it as kubectl's -l: env=prod, env!=dev, \
                 env in (prod,staging), env notin (dev), env, !env, joined by ','",
                truncate(selector, 256)
            ),
            json!({ "field": "selector", "code": "invalid_selector" }),
        )
    })
}

/// List clusters.
///
/// The clusters the caller's credential reaches that have an agent token or whose agent ever
/// linked, with their link state and labels; `selector` keeps those whose labels match.
#[utoipa::path(get, path = "/clusters", tag = "clusters",
    params(ClusterQuery),
    responses(
        (status = 200, description = "Every cluster the broker knows that the credential reaches (and the selector matches).", body = ClusterList,
            links(("ClusterStatus" = (operation_id = "cluster_status",
                parameters(("cluster_id" = "$response.body#/clusters/0/cluster_id")),
                description = "The first cluster's status.")))),
        (status = 400, response = crate::openapi::BadRequest),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 500, response = crate::openapi::InternalError),
        (status = 503, response = crate::openapi::ServiceUnavailable),
    ))]
pub async fn list_clusters(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ClusterQuery>,
) -> ApiResult<Json<ClusterList>> {
    let selector = q.selector.as_deref().map(parse_selector).transpose()?;
    clusters(&state, &caller, selector.as_ref()).await.map(Json)
}

/// The clusters the caller reaches whose labels match `selector` (all without one), by id.
pub(crate) async fn clusters(
    state: &AppState,
    caller: &Caller,
    selector: Option<&Selector>,
) -> ApiResult<ClusterList> {
    let clusters = cluster_records(state, caller)
        .await?
        .into_iter()
        .filter(|r| selector.is_none_or(|s| s.matches(&r.labels)))
        .map(|r| ClusterSummary {
            name: r.cluster_id.clone(),
            status: link_status(&r),
            cluster_id: r.cluster_id,
            agent_version: r.agent_version,
            last_seen: r.last_seen,
            labels: r.labels,
        })
        .collect();
    Ok(ClusterList { clusters })
}

/// What is known of every cluster the caller reaches (linked once, or with an agent token),
/// by id.
pub(crate) async fn cluster_records(
    state: &AppState,
    caller: &Caller,
) -> ApiResult<Vec<ClusterRecord>> {
    let mut records = state.hub.store().list_clusters().await?;
    for configured in state.credentials.token_clusters().await? {
        if !records.iter().any(|r| r.cluster_id == configured) {
            records.push(ClusterRecord {
                cluster_id: configured,
                broker_id: None,
                agent_version: None,
                kubernetes_version: None,
                last_seen: None,
                labels: Default::default(),
            });
        }
    }
    records.retain(|r| caller.may_reach(&r.cluster_id));
    records.sort_by(|a, b| a.cluster_id.cmp(&b.cluster_id));
    Ok(records)
}

pub(crate) fn link_status(r: &ClusterRecord) -> ClusterStatus {
    if r.broker_id.is_some() {
        ClusterStatus::Connected
    } else {
        ClusterStatus::Disconnected
    }
}

/// Read a cluster's status: its agent's link, sessions and queue.
#[utoipa::path(get, path = "/clusters/{cluster_id}/status", tag = "clusters",
    params(("cluster_id" = String, Path, description = "Cluster identifier.", example = "production-cluster")),
    responses(
        (status = 200, description = "The cluster's status.", body = ClusterStatusInfo),
        (status = 400, response = crate::openapi::BadRequest),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 404, response = crate::openapi::NotFound),
        (status = 500, response = crate::openapi::InternalError),
        (status = 503, response = crate::openapi::ServiceUnavailable),
    ))]
pub async fn cluster_status(
    State(state): State<AppState>,
    caller: Caller,
    Path(cluster_id): Path<String>,
) -> ApiResult<Json<ClusterStatusInfo>> {
    status_of(&state, &caller, cluster_id).await.map(Json)
}

/// The status of a cluster the caller reaches.
pub(crate) async fn status_of(
    state: &AppState,
    caller: &Caller,
    cluster_id: String,
) -> ApiResult<ClusterStatusInfo> {
    caller.require_cluster(&cluster_id)?;
    let record = ensure_cluster_known(state, &cluster_id).await?;
    let store = state.hub.store();
    let now = Utc::now();
    let active_sessions = store
        .list_sessions()
        .await?
        .iter()
        .filter(|s| s.cluster_id == cluster_id && s.status(now) == SessionStatus::Active)
        .count() as u64;
    let queue_depth = store.queue_depth(&cluster_id).await?;
    Ok(ClusterStatusInfo {
        status: link_status(&record),
        cluster_id,
        agent_version: record.agent_version,
        last_seen: record.last_seen,
        active_sessions,
        queue_depth,
        kubernetes_version: record.kubernetes_version,
        labels: record.labels,
    })
}
