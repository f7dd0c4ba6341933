//! Fleet calls: `POST /fleet/execute` runs one command on every cluster its `clusters` (ids,
//! globs) and `selector` (labels) match among those the caller reaches, and answers each
//! cluster's result with partial results when some are slow or gone.
//!
//! Everything a call could be refused for is checked before anything is done (fields, the
//! command through the one parser, the match, `--fleet-max-clusters`, the caller's rate budget
//! for one `execute` step per cluster): a refused call opens no session and queues nothing.
//! Then each cluster gets a session of its own, opened for the call and closed after, and its
//! command goes through `routes::run_command` — the one execute path, so each cluster's
//! command is checked, limited, measured and audited as a `POST /debug/execute` would be —
//! under its own deadline (the call's `timeout`), at most `--fleet-concurrency` at once. A
//! cluster whose agent is not linked answers `unavailable` at once; a slow one `timeout` at its
//! deadline; neither holds the others up. With `Accept: application/x-ndjson` each result is one
//! line as soon as it is known, then a summary line.
//!
//! The work runs in a task of its own that outlives the handler: when the caller goes away, the
//! commands still waiting stop waiting (their results stay in the store until their deadline),
//! clusters not started are not started, and every session opened is closed.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use axum::Extension;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header::{ACCEPT, CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use kubeline_shared::api::{
    CommandResult, CreateSessionRequest, ExecuteRequest, FleetClusterResult, FleetClusterStatus,
    FleetExecuteRequest, FleetResult, FleetStreamLine, FleetSummary, FleetSummaryLine,
    ResultStatus,
};
use kubeline_shared::audit::{AuditAction, AuditDecision, AuditOutcome};
use kubeline_shared::command;
use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::AppState;
use crate::audit;
use crate::auth::Caller;
use crate::auth::grant::Clusters;
use crate::error::{ApiError, ApiResult};
use crate::extract::Json;
use crate::middleware::RequestContext;
use crate::ratelimit::{Class, Decision};
use crate::routes;

/// Default of `--fleet-max-clusters`.
pub const DEFAULT_FLEET_MAX_CLUSTERS: usize = 100;
/// Default of `--fleet-max-output-bytes`: 8 MiB for a whole call.
pub const DEFAULT_FLEET_MAX_OUTPUT_BYTES: u64 = 8 * 1024 * 1024;
/// Default of `--fleet-concurrency`: half of the default `--max-executes-per-key`, so one fleet
/// call leaves room for the same key's other commands.
pub const DEFAULT_FLEET_CONCURRENCY: usize = 32;
/// Largest `--fleet-max-clusters`.
pub const MAX_FLEET_CLUSTERS: usize = 10_000;
/// The streamed answer's media type.
pub const NDJSON: &str = "application/x-ndjson";

/// Fleet call settings (`--fleet-*`).
#[derive(Debug, Clone, clap::Args)]
pub struct FleetArgs {
    /// Most clusters one fleet call may run on; a call matching more gets 400 (narrow its
    /// clusters or selector).
    #[arg(long, env = "KUBELINE_FLEET_MAX_CLUSTERS", default_value_t = DEFAULT_FLEET_MAX_CLUSTERS)]
    pub fleet_max_clusters: usize,

    /// Output budget of a whole fleet call, in bytes, split evenly across its clusters (each
    /// also at most --max-output-bytes).
    #[arg(
        long,
        env = "KUBELINE_FLEET_MAX_OUTPUT_BYTES",
        default_value_t = DEFAULT_FLEET_MAX_OUTPUT_BYTES
    )]
    pub fleet_max_output_bytes: u64,

    /// Clusters one fleet call runs its command on at once; the others wait their turn. At most
    /// --max-executes-per-key.
    #[arg(long, env = "KUBELINE_FLEET_CONCURRENCY", default_value_t = DEFAULT_FLEET_CONCURRENCY)]
    pub fleet_concurrency: usize,
}

impl Default for FleetArgs {
    fn default() -> Self {
        Self {
            fleet_max_clusters: DEFAULT_FLEET_MAX_CLUSTERS,
            fleet_max_output_bytes: DEFAULT_FLEET_MAX_OUTPUT_BYTES,
            fleet_concurrency: DEFAULT_FLEET_CONCURRENCY,
        }
    }
}

impl FleetArgs {
    /// Refuses settings that cannot work, naming the flag.
    pub fn check(&self, max_executes_per_key: usize) -> anyhow::Result<()> {
        if !(1..=MAX_FLEET_CLUSTERS).contains(&self.fleet_max_clusters) {
            anyhow::bail!("--fleet-max-clusters must be from 1 to {MAX_FLEET_CLUSTERS}");
        }
        if self.fleet_max_output_bytes < self.fleet_max_clusters as u64 {
            anyhow::bail!(
                "--fleet-max-output-bytes ({}) must be at least --fleet-max-clusters ({}): each \
                 cluster needs a byte of budget",
                self.fleet_max_output_bytes,
                self.fleet_max_clusters
            );
        }
        if !(1..=max_executes_per_key).contains(&self.fleet_concurrency) {
            anyhow::bail!(
                "--fleet-concurrency must be from 1 to --max-executes-per-key \
                 ({max_executes_per_key}): each cluster's command takes one of the key's \
                 in-flight slots"
            );
        }
        Ok(())
    }
}

/// Whether the caller asked for the streamed answer.
fn wants_ndjson(headers: &HeaderMap) -> bool {
    headers
        .get_all(ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| {
            t.split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case(NDJSON))
        })
}

// === the handler ===

/// Run one read-only kubectl command on many clusters.
///
/// The clusters are those the caller's credential reaches that `clusters` (ids and globs, `!`
/// to leave out) and `selector` (a label selector, kubectl's `-l` grammar) match — both when
/// both are given; clusters the credential does not reach are not even listed. Each cluster's
/// command runs in a session of its own, opened for the call and closed after, under its own
/// deadline (`timeout`), at most `--fleet-concurrency` clusters at once; each is checked,
/// limited and audited as `POST /debug/execute` would be, and its result is stored
/// (`result_id`).
///
/// The answer is 200 with one result per cluster — `completed`, `failed` (kubectl's exit code
/// and standard error), `timeout`, `unavailable` (no agent linked: at once; or its link was
/// lost, or it went away before running the command) or `refused` (a limit refused it there) — and a summary. With
/// `Accept: application/x-ndjson` each cluster's result is one JSON line as soon as it is known,
/// then a last line `{"summary": …}`.
///
/// Bounded: at most `--fleet-max-clusters` (100) clusters (more matching is a 400 saying how
/// many), a total output budget of `--fleet-max-output-bytes` (8 MiB) split evenly across them,
/// and one step of the `execute` rate limit per cluster (the first is the request's own): a
/// call the remaining budget cannot cover is refused with 429 before anything runs. A refused
/// call opens no session and queues nothing.
#[utoipa::path(post, path = "/fleet/execute", tag = "fleet",
    params(("X-Request-Timeout" = Option<f64>, Header,
        description = "Each cluster's timeout in seconds when the body gives no `timeout`.", example = 30)),
    request_body = FleetExecuteRequest,
    responses(
        (status = 200, description = "Every matched cluster's result, and the totals.",
            content(
                (FleetResult = "application/json"),
                (FleetStreamLine = "application/x-ndjson"),
            )),
        (status = 400, response = crate::openapi::BadRequest),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 413, response = crate::openapi::PayloadTooLarge),
        (status = 415, response = crate::openapi::UnsupportedMediaType),
        (status = 429, response = crate::openapi::TooManyRequests),
        (status = 500, response = crate::openapi::InternalError),
        (status = 503, response = crate::openapi::ServiceUnavailable),
    ))]
pub async fn fleet_execute(
    State(state): State<AppState>,
    caller: Caller,
    ctx: RequestContext,
    headers: HeaderMap,
    decision: Option<Extension<Decision>>,
    Json(req): Json<FleetExecuteRequest>,
) -> Response {
    let decision = decision.map(|Extension(d)| d);
    let timeout_header = headers.get("x-request-timeout");
    let mut response = match begin(&state, &caller, &ctx, timeout_header, decision, req).await {
        Ok(running) if wants_ndjson(&headers) => running.streamed(),
        Ok(running) => Json(running.collect().await).into_response(),
        Err(e) => e.into_response(),
    };
    response.extensions_mut().insert(audit::Audited);
    response
}

/// A fleet call under way: its results arrive as each cluster finishes.
pub(crate) struct Running {
    results: mpsc::Receiver<FleetClusterResult>,
    /// Each cluster's output budget.
    per_cluster: u64,
    started: Instant,
}

/// Checks a fleet call and starts it; a refusal changes nothing but the audit record saying
/// so (each cluster's command, once it runs, is recorded by `run_command`). `decision` is the
/// caller's step of the `execute` rate limit this call has already taken, if the class is
/// limited; `timeout_header` is `X-Request-Timeout`.
pub(crate) async fn begin(
    state: &AppState,
    caller: &Caller,
    ctx: &RequestContext,
    timeout_header: Option<&HeaderValue>,
    decision: Option<Decision>,
    req: FleetExecuteRequest,
) -> ApiResult<Running> {
    let started = Instant::now();
    let command_type = req.command_type.clone();
    let args = req.args.clone();
    match plan(state, caller, timeout_header, decision, req).await {
        Ok(plan) => {
            info!(
                clusters = plan.clusters.len(),
                command_type = %plan.command_type,
                credential = %caller.credential_id,
                correlation_id = %ctx.correlation_id,
                "fleet execute"
            );
            let per_cluster = plan.max_output_bytes;
            Ok(Running {
                results: start(state.clone(), caller.clone(), ctx.clone(), plan),
                per_cluster,
                started,
            })
        }
        Err(e) => {
            let mut event = audit::request_event(
                ctx,
                Some(caller),
                AuditAction::Execute,
                AuditOutcome::Refused,
            );
            event.decision = Some(AuditDecision::Refused);
            event.target = Some("POST /fleet/execute".to_owned());
            event.command_type = command_type;
            event.args = args;
            event.reason = Some(format!("{}: {}", e.status().as_u16(), e.body().message));
            event.duration_ms = Some(audit::elapsed_ms(ctx));
            audit::record_after(&state.audit, event).await;
            Err(e)
        }
    }
}

/// A fleet call that may go ahead: which clusters, what to run, with which budgets.
struct Plan {
    clusters: Vec<String>,
    command_type: String,
    args: Vec<String>,
    /// Each cluster's timeout, in seconds.
    timeout: f64,
    /// Each cluster's output budget.
    max_output_bytes: u64,
    concurrency: usize,
}

/// Checks a fleet call and finds its clusters; changes nothing.
async fn plan(
    state: &AppState,
    caller: &Caller,
    timeout_header: Option<&HeaderValue>,
    decision: Option<Decision>,
    req: FleetExecuteRequest,
) -> ApiResult<Plan> {
    let settings = &state.settings;
    let fleet = &settings.fleet;
    let command_type = match req.command_type {
        Some(c) if !c.trim().is_empty() => c,
        _ => return Err(ApiError::missing_field("command_type")),
    };
    let args = req.args.ok_or_else(|| ApiError::missing_field("args"))?;
    let patterns =
        match &req.clusters {
            None => None,
            Some(list) if list.is_empty() => {
                return Err(ApiError::invalid_field(
                    "clusters",
                    "clusters is empty: give cluster ids or globs (e.g. [\"prod-*\"]), or leave it \
                 out and give a selector",
                ));
            }
            Some(list) => Some(Clusters::parse(list).map_err(|e| {
                ApiError::invalid_field("clusters", format!("Invalid clusters: {e}"))
            })?),
        };
    let selector = match req.selector.as_deref() {
        None => None,
        Some(s) if s.trim().is_empty() => {
            return Err(ApiError::invalid_field(
                "selector",
                "selector is empty: give a label selector such as env=prod (to run on every \
                 cluster you reach, give clusters: [\"*\"])",
            ));
        }
        Some(s) => Some(routes::parse_selector(s)?),
    };
    if patterns.is_none() && selector.is_none() {
        return Err(ApiError::bad_request(
            "Give clusters (ids or globs such as prod-*), selector (labels such as env=prod), \
             or both: a fleet call runs on the clusters they match",
            json!({
                "field": "clusters",
                "fields": ["clusters", "selector"],
                "code": "missing_required_field",
            }),
        ));
    }
    let timeout = routes::request_timeout(state, req.timeout, timeout_header)?;
    let max = settings.max_output_bytes;
    let asked = match req.max_output_bytes {
        None => max,
        Some(n) if (1..=max).contains(&n) => n,
        Some(n) => {
            return Err(ApiError::invalid_field(
                "max_output_bytes",
                format!("Invalid max_output_bytes {n}: give a number of bytes from 1 to {max}"),
            ));
        }
    };
    // The same refusal as `POST /debug/execute`; a kubectl usage error is answered by each
    // cluster's result, as there.
    if let Err(e) = command::parse(&command_type, &args)
        && e.kubectl_error.is_none()
    {
        return Err(ApiError::bad_request(
            format!("Command refused: {}", e.message),
            json!({ "code": e.code, "argument": e.argument, "command_type": command_type }),
        ));
    }
    let clusters: Vec<String> = routes::cluster_records(state, caller)
        .await?
        .into_iter()
        .filter(|r| patterns.as_ref().is_none_or(|p| p.allows(&r.cluster_id)))
        .filter(|r| selector.as_ref().is_none_or(|s| s.matches(&r.labels)))
        .map(|r| r.cluster_id)
        .collect();
    let n = clusters.len();
    if n > fleet.fleet_max_clusters {
        let field = if selector.is_some() {
            "selector"
        } else {
            "clusters"
        };
        return Err(ApiError::bad_request(
            format!(
                "{n} clusters match, more than one fleet call may run on ({}, the broker's \
                 --fleet-max-clusters). Nothing was run: narrow clusters or selector",
                fleet.fleet_max_clusters
            ),
            json!({
                "field": field,
                "code": "too_many_clusters",
                "matched": n,
                "limit": fleet.fleet_max_clusters,
            }),
        ));
    }
    check_rate_budget(decision, n)?;
    Ok(Plan {
        max_output_bytes: asked
            .min(fleet.fleet_max_output_bytes / n.max(1) as u64)
            .max(1),
        clusters,
        command_type,
        args,
        timeout: timeout.num_milliseconds() as f64 / 1000.0,
        concurrency: fleet.fleet_concurrency,
    })
}

/// A call on `n` clusters takes `n` steps of the `execute` rate limit: the request's own (taken
/// by the rate-limit layer, `decision`) and one per further cluster. Refuses with 429 when the
/// budget left cannot cover them, before anything runs.
fn check_rate_budget(decision: Option<Decision>, n: usize) -> ApiResult<()> {
    let Some(d) = decision.filter(|d| !d.is_unlimited()) else {
        return Ok(());
    };
    let more = n.saturating_sub(1) as u64;
    if more <= u64::from(d.remaining) {
        return Ok(());
    }
    // One step comes back every 60 s / limit.
    let short = more - u64::from(d.remaining);
    let retry_after = (short * 60).div_ceil(u64::from(d.limit)).max(1);
    let hint = if n as u64 > u64::from(d.limit) {
        format!(
            "this credential may make at most {} a minute, so narrow clusters or selector",
            d.limit
        )
    } else {
        format!("retry after {retry_after} seconds, or narrow clusters or selector")
    };
    Err(ApiError::too_many_requests(
        format!(
            "Rate limit exceeded: this fleet call matches {n} clusters and takes one execute \
             step per cluster, but this credential has {} left now. Nothing was run; {hint}",
            u64::from(d.remaining) + 1
        ),
        json!({
            "limit": d.limit,
            "window": crate::ratelimit::WINDOW_LABEL,
            "needed": n,
            "code": "fleet_rate_limited",
        }),
        retry_after,
    ))
}

// === running ===

/// Starts the call's work in a task of its own; results arrive on the receiver as each cluster
/// finishes, and it closes when every cluster has an answer. Dropping the receiver cancels the
/// rest (see the module docs).
fn start(
    state: AppState,
    caller: Caller,
    ctx: RequestContext,
    plan: Plan,
) -> mpsc::Receiver<FleetClusterResult> {
    // Room for every result: sending never waits for a slow reader, so each cluster's deadline
    // and session close happen on time. What waits is bounded by the call's output budget.
    let (tx, rx) = mpsc::channel(plan.clusters.len().max(1));
    let plan = Arc::new(plan);
    let cancel = CancellationToken::new();
    tokio::spawn(async move {
        let mut runs = futures::stream::iter(plan.clusters.clone().into_iter().enumerate())
            .map(|(i, cluster_id)| {
                run_one(
                    &state,
                    &caller,
                    &ctx,
                    &plan,
                    cluster_id,
                    i == 0,
                    cancel.clone(),
                )
            })
            .buffer_unordered(plan.concurrency);
        loop {
            let next = tokio::select! {
                next = runs.next() => next,
                () = tx.closed(), if !cancel.is_cancelled() => {
                    warn!("fleet caller went away; closing the sessions opened for it");
                    cancel.cancel();
                    continue;
                }
            };
            match next {
                None => break,
                Some(Some(result)) => {
                    if tx.send(result).await.is_err() {
                        cancel.cancel();
                    }
                }
                Some(None) => {}
            }
        }
    });
    rx
}

/// One cluster of a fleet call: its rate step (after the first cluster), a session, the
/// command through [`routes::run_command`], the session closed. `None` when the call was
/// cancelled before it could answer.
async fn run_one(
    state: &AppState,
    caller: &Caller,
    ctx: &RequestContext,
    plan: &Plan,
    cluster_id: String,
    first: bool,
    cancel: CancellationToken,
) -> Option<FleetClusterResult> {
    if cancel.is_cancelled() {
        return None;
    }
    let started = Instant::now();
    if !first {
        let d = state
            .rate_limiter
            .check(
                &caller.credential_id,
                Class::Execute,
                caller.rate_limits.as_ref(),
            )
            .await;
        if !d.allowed {
            let e = ApiError::rate_limited(Class::Execute, &d);
            return Some(refused(cluster_id, &e, started));
        }
    }
    let request = CreateSessionRequest {
        cluster_id: Some(cluster_id.clone()),
        metadata: Some(
            json!({ "opened_by": "fleet", "request_id": ctx.request_id })
                .as_object()
                .cloned()
                .unwrap_or_default(),
        ),
    };
    let session = match routes::open_session(state, caller, ctx, request).await {
        Ok(session) => session,
        Err(e) => return Some(from_error(cluster_id, &e, started)),
    };
    let request = ExecuteRequest {
        cluster_id: Some(cluster_id.clone()),
        session_id: Some(session.session_id.clone()),
        command_type: Some(plan.command_type.clone()),
        args: Some(plan.args.clone()),
        timeout: Some(plan.timeout),
        max_output_bytes: Some(plan.max_output_bytes),
    };
    let answer = tokio::select! {
        biased;
        () = cancel.cancelled() => None,
        answer = routes::run_command(state, caller, ctx, Default::default(), request) => Some(answer),
    };
    let result = answer.map(|answer| match answer {
        Ok(result) => from_result(result, started),
        Err(e) => from_error(cluster_id, &e, started),
    });
    if let Err(e) = routes::close_session(state, caller, ctx, &session.session_id).await {
        warn!(session_id = %session.session_id, error = %e.body().message, "cannot close a fleet call's session; it expires by itself");
    }
    result
}

fn elapsed_ms(started: Instant) -> u64 {
    started.elapsed().as_millis() as u64
}

/// A command's result, as one cluster's answer.
fn from_result(r: CommandResult, started: Instant) -> FleetClusterResult {
    let status = match r.status {
        ResultStatus::Completed => FleetClusterStatus::Completed,
        ResultStatus::Timeout => FleetClusterStatus::Timeout,
        // No exit code: it never ran to an end on the agent (its link was lost).
        ResultStatus::Failed if r.exit_code.is_none() => FleetClusterStatus::Unavailable,
        ResultStatus::Failed | ResultStatus::Pending => FleetClusterStatus::Failed,
    };
    FleetClusterResult {
        cluster_id: r.cluster_id,
        status,
        result_id: Some(r.result_id),
        output: r.output,
        error: r.error,
        exit_code: r.exit_code,
        execution_time_ms: r.execution_time_ms,
        elapsed_ms: elapsed_ms(started),
        truncated: r.truncated,
    }
}

/// A refusal of one cluster's command as its answer: `unavailable` when its agent is not
/// linked, `refused` otherwise (a limit, the audit trail, the store).
fn from_error(cluster_id: String, e: &ApiError, started: Instant) -> FleetClusterResult {
    let not_linked = e
        .body()
        .details
        .as_ref()
        .and_then(|d| d.get("code"))
        .is_some_and(|c| c == routes::AGENT_NOT_CONNECTED);
    if not_linked {
        return FleetClusterResult {
            status: FleetClusterStatus::Unavailable,
            ..refused(cluster_id, e, started)
        };
    }
    refused(cluster_id, e, started)
}

fn refused(cluster_id: String, e: &ApiError, started: Instant) -> FleetClusterResult {
    FleetClusterResult {
        cluster_id,
        status: FleetClusterStatus::Refused,
        result_id: None,
        output: String::new(),
        error: Some(e.body().message.clone()),
        exit_code: None,
        execution_time_ms: 0,
        elapsed_ms: elapsed_ms(started),
        truncated: None,
    }
}

// === answers ===

impl Running {
    /// Every result, by cluster id, with the totals.
    pub(crate) async fn collect(mut self) -> FleetResult {
        let mut summary = FleetSummary {
            max_output_bytes_per_cluster: self.per_cluster,
            ..FleetSummary::default()
        };
        let mut all = Vec::new();
        while let Some(result) = self.results.recv().await {
            summary.add(&result);
            all.push(result);
        }
        all.sort_by(|a, b| a.cluster_id.cmp(&b.cluster_id));
        summary.elapsed_ms = elapsed_ms(self.started);
        FleetResult {
            results: all,
            summary,
        }
    }

    /// One line per result as each arrives, then the summary line.
    fn streamed(self) -> Response {
        let summary = FleetSummary {
            max_output_bytes_per_cluster: self.per_cluster,
            ..FleetSummary::default()
        };
        let started = self.started;
        let lines = futures::stream::unfold(
            (Some(self.results), summary),
            move |(results, mut summary)| async move {
                let mut results = results?;
                let line = match results.recv().await {
                    Some(result) => {
                        summary.add(&result);
                        let line = ndjson_line(&FleetStreamLine::Result(result));
                        return Some((Ok::<_, Infallible>(line), (Some(results), summary)));
                    }
                    None => {
                        summary.elapsed_ms = elapsed_ms(started);
                        ndjson_line(&FleetStreamLine::Summary(FleetSummaryLine {
                            summary: summary.clone(),
                        }))
                    }
                };
                Some((Ok(line), (None, summary)))
            },
        );
        (
            StatusCode::OK,
            [
                (CONTENT_TYPE, HeaderValue::from_static(NDJSON)),
                (CACHE_CONTROL, HeaderValue::from_static("no-store")),
                // Proxies that buffer (nginx) pass each line on at once.
                (
                    axum::http::HeaderName::from_static("x-accel-buffering"),
                    HeaderValue::from_static("no"),
                ),
            ],
            Body::from_stream(lines),
        )
            .into_response()
    }
}

fn ndjson_line(line: &FleetStreamLine) -> Bytes {
    let mut bytes = serde_json::to_vec(line).expect("API types always serialize");
    bytes.push(b'\n');
    Bytes::from(bytes)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::body::Body;
    use axum::http::Request;
    use kubeline_shared::api::SessionStatus;
    use serde_json::{Value, json};
    use tower::ServiceExt;

    use super::*;
    use crate::limits::ExecuteLimits;
    use crate::ratelimit::{ClassLimits, RateLimiter};
    use crate::store::ClusterRecord;
    use crate::tests::state_with;
    use crate::{
        ApiSettings, DEFAULT_MAX_EXECUTES_PER_CLUSTER, DEFAULT_MAX_EXECUTES_PER_KEY,
        DEFAULT_MAX_QUEUE_PER_CLUSTER, app,
    };

    /// The test state (clusters `c1`, `c2` from agent tokens; keys `adm`, `rd`, `rd-c2`) with
    /// `c3` linked to another replica (nobody answers it) with labels `env=prod,region=eu`.
    async fn state() -> AppState {
        let state = state_with(ExecuteLimits::new(
            DEFAULT_MAX_EXECUTES_PER_KEY,
            DEFAULT_MAX_EXECUTES_PER_CLUSTER,
            DEFAULT_MAX_QUEUE_PER_CLUSTER,
        ))
        .await;
        state
            .hub
            .store()
            .link_cluster(
                &ClusterRecord {
                    cluster_id: "c3".into(),
                    broker_id: Some("broker_elsewhere".into()),
                    agent_version: Some("0.1.0".into()),
                    kubernetes_version: None,
                    last_seen: None,
                    labels: [("env", "prod"), ("region", "eu")]
                        .map(|(k, v)| (k.to_owned(), v.to_owned()))
                        .into(),
                },
                Duration::from_secs(600),
            )
            .await
            .unwrap();
        state
    }

    fn with_fleet(mut state: AppState, fleet: FleetArgs) -> AppState {
        state.parts_mut().settings = Arc::new(ApiSettings {
            fleet,
            ..(*state.settings).clone()
        });
        state
    }

    async fn send(state: &AppState, req: Request<Body>) -> (StatusCode, HeaderMap, String) {
        let res = app(state.clone()).oneshot(req).await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = axum::body::to_bytes(res.into_body(), 1 << 22)
            .await
            .unwrap();
        (status, headers, String::from_utf8(bytes.to_vec()).unwrap())
    }

    fn fleet_request(key: &str, body: Value) -> Request<Body> {
        Request::post("/fleet/execute")
            .header("authorization", format!("Bearer {key}"))
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap()
    }

    async fn fleet(state: &AppState, key: &str, body: Value) -> (StatusCode, Value) {
        let (status, _, text) = send(state, fleet_request(key, body)).await;
        (status, serde_json::from_str(&text).unwrap())
    }

    /// Sessions ever opened, and how many of them are still active.
    async fn sessions(state: &AppState) -> (usize, usize) {
        let all = state.hub.store().list_sessions().await.unwrap();
        let now = chrono::Utc::now();
        let active = all
            .iter()
            .filter(|s| s.status(now) == SessionStatus::Active)
            .count();
        (all.len(), active)
    }

    #[tokio::test]
    async fn refused_calls_name_the_field_and_leave_nothing_behind() {
        let state = with_fleet(
            state().await,
            FleetArgs {
                fleet_max_clusters: 2,
                ..FleetArgs::default()
            },
        );
        let version = |extra: Value| {
            let mut body = json!({"command_type": "version", "args": []});
            body.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            body
        };
        for (body, field, says) in [
            (version(json!({})), "clusters", "Give clusters"),
            (
                version(json!({"clusters": []})),
                "clusters",
                "clusters is empty",
            ),
            (
                version(json!({"clusters": ["a b"]})),
                "clusters",
                "invalid cluster pattern",
            ),
            (
                version(json!({"selector": " "})),
                "selector",
                "selector is empty",
            ),
            (
                version(json!({"selector": "env in (prod"})),
                "selector",
                "expected: ',' or ')'",
            ),
            (
                version(json!({"selector": "env=prod,"})),
                "selector",
                "Invalid selector",
            ),
            // c1, c2 and c3: more than --fleet-max-clusters.
            (
                version(json!({"clusters": ["*"]})),
                "clusters",
                "3 clusters match",
            ),
            (
                version(json!({"clusters": ["*"], "selector": "!nothing"})),
                "selector",
                "3 clusters match",
            ),
            (
                version(json!({"clusters": ["c1"], "timeout": 0})),
                "timeout",
                "Invalid timeout",
            ),
            (
                version(json!({"clusters": ["c1"], "max_output_bytes": 0})),
                "max_output_bytes",
                "Invalid max_output_bytes",
            ),
            (
                json!({"clusters": ["c1"], "args": []}),
                "command_type",
                "Missing required field",
            ),
            (
                json!({"clusters": ["c1"], "command_type": "get"}),
                "args",
                "Missing required field",
            ),
        ] {
            let (status, answer) = fleet(&state, "rd", body.clone()).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
            assert_eq!(answer["error"], "invalid_request");
            assert_eq!(answer["details"]["field"], field, "{body}: {answer}");
            let message = answer["message"].as_str().unwrap();
            assert!(message.contains(says), "{body}: {message}");
        }
        let (status, answer) = fleet(&state, "rd", version(json!({"clusters": ["*"]}))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(answer["details"]["matched"], 3);
        assert_eq!(answer["details"]["limit"], 2);
        assert_eq!(answer["details"]["code"], "too_many_clusters");
        // The parser's refusal, as POST /debug/execute answers it.
        let (status, answer) = fleet(
            &state,
            "rd",
            json!({"clusters": ["c1"], "command_type": "delete", "args": ["pod", "x"]}),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        assert!(
            answer["message"]
                .as_str()
                .unwrap()
                .starts_with("Command refused")
        );
        assert_eq!(
            sessions(&state).await,
            (0, 0),
            "a refused call opens no session"
        );
        for c in ["c1", "c2", "c3"] {
            assert_eq!(state.hub.store().queue_depth(c).await.unwrap(), 0);
        }
    }

    #[tokio::test]
    async fn every_cluster_answers_without_waiting_for_the_others() {
        let state = state().await;
        let started = Instant::now();
        let (status, answer) = fleet(
            &state,
            "rd",
            json!({"clusters": ["c*"], "command_type": "version", "args": [], "timeout": 0.5}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        let results = answer["results"].as_array().unwrap();
        let by_id = |id: &str| results.iter().find(|r| r["cluster_id"] == id).unwrap();
        // No agent for c1 and c2: unavailable at once, nothing queued.
        for id in ["c1", "c2"] {
            let r = by_id(id);
            assert_eq!(r["status"], "unavailable", "{r}");
            assert_eq!(r["error"], "Cluster agent is not connected");
            assert!(r["result_id"].is_null());
            assert!(r["elapsed_ms"].as_u64().unwrap() < 400, "{r}");
        }
        // c3's link is held elsewhere and nobody answers: its own deadline.
        let r = by_id("c3");
        assert_eq!(r["status"], "timeout", "{r}");
        assert!(r["result_id"].as_str().unwrap().starts_with("res_"));
        assert!(r["elapsed_ms"].as_u64().unwrap() >= 500, "{r}");
        let summary = &answer["summary"];
        assert_eq!(summary["clusters"], 3);
        assert_eq!(summary["unavailable"], 2);
        assert_eq!(summary["timeout"], 1);
        assert_eq!(summary["completed"], 0);
        // The test state's --max-output-bytes is 1024; 8 MiB over 3 does not lower it.
        assert_eq!(summary["max_output_bytes_per_cluster"], 1024);
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(summary["slowest_cluster_ms"].as_u64().unwrap() >= 500);
        // One session per cluster, each closed after.
        assert_eq!(sessions(&state).await, (3, 0));
    }

    #[tokio::test]
    async fn streamed_lines_come_as_each_cluster_finishes() {
        let state = state().await;
        let mut req = fleet_request(
            "rd",
            json!({"clusters": ["c1", "c3"], "command_type": "version", "args": [], "timeout": 0.3}),
        );
        req.headers_mut().insert(
            ACCEPT,
            HeaderValue::from_static("text/plain;q=0.5, application/x-ndjson"),
        );
        let (status, headers, text) = send(&state, req).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers[CONTENT_TYPE], NDJSON);
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 3, "{text}");
        // The unavailable cluster first, the one that times out after it, the summary last.
        assert_eq!(lines[0]["cluster_id"], "c1");
        assert_eq!(lines[0]["status"], "unavailable");
        assert_eq!(lines[1]["cluster_id"], "c3");
        assert_eq!(lines[1]["status"], "timeout");
        assert_eq!(lines[2]["summary"]["clusters"], 2);
        assert!(text.ends_with("}\n"));
    }

    #[tokio::test]
    async fn selectors_and_grants_choose_the_clusters() {
        let state = state().await;
        let (status, answer) = fleet(
            &state,
            "rd",
            json!({"selector": "env=prod", "command_type": "version", "args": [], "timeout": 0.2}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        let ids: Vec<&str> = answer["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["cluster_id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["c3"]);
        // Both given: a cluster must match both.
        let (_, answer) = fleet(
            &state,
            "rd",
            json!({"clusters": ["c1", "c2"], "selector": "env=prod", "command_type": "version", "args": []}),
        )
        .await;
        assert_eq!(answer["summary"]["clusters"], 0, "{answer}");
        // A key granted c2 only: the others are not even listed; `!` leaves one out.
        let (_, answer) = fleet(
            &state,
            "rd-c2",
            json!({"clusters": ["*"], "command_type": "version", "args": []}),
        )
        .await;
        assert_eq!(answer["results"].as_array().unwrap().len(), 1, "{answer}");
        assert_eq!(answer["results"][0]["cluster_id"], "c2");
        let (_, answer) = fleet(
            &state,
            "rd",
            json!({"clusters": ["c*", "!c3", "!c1"], "command_type": "version", "args": []}),
        )
        .await;
        assert_eq!(answer["results"][0]["cluster_id"], "c2", "{answer}");
        assert_eq!(answer["summary"]["clusters"], 1);
    }

    #[tokio::test]
    async fn output_budget_is_split_across_clusters() {
        let state = with_fleet(
            state().await,
            FleetArgs {
                fleet_max_output_bytes: 900,
                ..FleetArgs::default()
            },
        );
        let (_, answer) = fleet(
            &state,
            "rd",
            json!({"clusters": ["c1", "c2", "c3"], "command_type": "version", "args": [], "timeout": 0.1}),
        )
        .await;
        assert_eq!(answer["summary"]["max_output_bytes_per_cluster"], 300);
        let (_, answer) = fleet(
            &state,
            "rd",
            json!({"clusters": ["c1"], "command_type": "version", "args": [], "max_output_bytes": 100}),
        )
        .await;
        assert_eq!(answer["summary"]["max_output_bytes_per_cluster"], 100);
    }

    #[tokio::test]
    async fn each_cluster_takes_an_execute_step() {
        let mut state = state().await;
        state.parts_mut().rate_limiter = Arc::new(RateLimiter::new(
            state.hub.store().clone(),
            ClassLimits {
                execute: 2,
                ..ClassLimits::default()
            },
        ));
        // Three clusters need three steps; the burst is two: refused before anything runs.
        let (status, answer) = fleet(
            &state,
            "rd",
            json!({"clusters": ["c*"], "command_type": "version", "args": []}),
        )
        .await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{answer}");
        assert_eq!(answer["details"]["code"], "fleet_rate_limited");
        assert_eq!(answer["details"]["needed"], 3);
        let message = answer["message"].as_str().unwrap();
        assert!(message.contains("matches 3 clusters"), "{message}");
        assert!(message.contains("at most 2 a minute"), "{message}");
        assert_eq!(sessions(&state).await, (0, 0));
        // That refusal took the request's own step: one is left, for a one-cluster call.
        let (status, answer) = fleet(
            &state,
            "rd",
            json!({"clusters": ["c1"], "command_type": "version", "args": []}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        // And now nothing is left: the layer refuses the next call.
        let (status, answer) = fleet(
            &state,
            "rd",
            json!({"clusters": ["c1"], "command_type": "version", "args": []}),
        )
        .await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{answer}");
    }

    #[tokio::test]
    async fn clusters_list_by_selector_with_labels() {
        let state = state().await;
        let get = |path: &str| {
            Request::get(path)
                .header("authorization", "Bearer rd")
                .body(Body::empty())
                .unwrap()
        };
        let (status, _, text) = send(&state, get("/clusters")).await;
        assert_eq!(status, StatusCode::OK);
        let all: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(all["clusters"].as_array().unwrap().len(), 3);
        assert_eq!(all["clusters"][0]["labels"], json!({}));
        assert_eq!(
            all["clusters"][2]["labels"],
            json!({"env": "prod", "region": "eu"})
        );
        for (selector, expected) in [
            ("env%3Dprod", vec!["c3"]),
            ("env%3Dprod,region!%3Dus", vec!["c3"]),
            ("!env", vec!["c1", "c2"]),
            ("env+in+(dev)", vec![]),
            ("", vec!["c1", "c2", "c3"]),
        ] {
            let (status, _, text) =
                send(&state, get(&format!("/clusters?selector={selector}"))).await;
            assert_eq!(status, StatusCode::OK, "{selector}: {text}");
            let body: Value = serde_json::from_str(&text).unwrap();
            let ids: Vec<&str> = body["clusters"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["cluster_id"].as_str().unwrap())
                .collect();
            assert_eq!(ids, expected, "{selector}");
        }
        let (status, _, text) = send(&state, get("/clusters?selector=env%3D%3D%3D")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
        let body: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(body["details"]["field"], "selector");
        assert_eq!(body["details"]["code"], "invalid_selector");
        let (_, _, text) = send(&state, get("/clusters/c3/status")).await;
        let body: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(body["labels"]["region"], "eu", "{body}");
    }

    #[test]
    fn settings_that_cannot_work_are_refused() {
        let ok = FleetArgs::default();
        assert!(ok.check(64).is_ok());
        let e = ok.check(16).unwrap_err().to_string();
        assert!(e.contains("--fleet-concurrency"), "{e}");
        let e = FleetArgs {
            fleet_max_clusters: 0,
            ..FleetArgs::default()
        }
        .check(64)
        .unwrap_err()
        .to_string();
        assert!(e.contains("--fleet-max-clusters"), "{e}");
        let e = FleetArgs {
            fleet_max_output_bytes: 10,
            ..FleetArgs::default()
        }
        .check(64)
        .unwrap_err()
        .to_string();
        assert!(e.contains("--fleet-max-output-bytes"), "{e}");
    }

    #[test]
    fn ndjson_is_asked_for_by_accept() {
        let accept = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(ACCEPT, HeaderValue::from_static(v));
            wants_ndjson(&h)
        };
        assert!(accept("application/x-ndjson"));
        assert!(accept(
            "application/json;q=0.1, Application/X-NDJSON; charset=utf-8"
        ));
        assert!(!accept("application/json"));
        assert!(!accept("*/*"));
        assert!(!wants_ndjson(&HeaderMap::new()));
    }
}
