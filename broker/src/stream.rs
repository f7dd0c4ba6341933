//! Streamed commands: `GET /debug/stream`, a caller WebSocket that carries `logs -f`,
//! `get -w`, `events -w` and `rollout status -w` as their output arrives.
//!
//! The request is checked like an execute before the upgrade (fields, grant, the command
//! through [`command::parse_stream`], the session, the agent's presence, the stream limits,
//! the rate limit's `execute` step), so every refusal is an HTTP answer with the contract's
//! error body. Then the command is queued like any other, marked as a stream: the replica
//! holding the agent's link sends it down with `stream: true`, settles its queue entry (nobody
//! runs a stream twice), and relays each `output` chunk to this replica (directly, or through
//! the store's reply channel), where a [`Feed`] holds what the caller has not read yet.
//!
//! Memory is bounded at every hop: the agent's link channel is bounded (a slow link slows the
//! command), the feed holds at most `--stream-buffer-bytes` (past that, output is dropped and
//! the caller gets a `dropped` frame where it happened), and a caller whose socket does not
//! take a frame within `--stream-send-timeout-seconds` is cut off (`slow_consumer`).
//!
//! Closing the socket, or sending `{"type":"cancel"}`, cancels the command on the agent (the
//! link's `cancel` message). Every stream ends with one `end` frame saying why (see
//! [`StreamEndReason`]) and is audited twice: accepted, and ended with its byte count.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket as Socket};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use kubeline_shared::api::{
    CommandResult, ResultStatus, StreamEnd, StreamEndReason, StreamFrame, StreamStarted,
};
use kubeline_shared::audit::{AuditAction, AuditDecision, AuditEvent, AuditOutcome};
use kubeline_shared::command;
use kubeline_shared::trace::TraceContext;
use serde_json::json;
use tokio::sync::Notify;
use tracing::{Instrument, info, info_span, warn};

use crate::AppState;
use crate::audit;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Query, WebSocket};
use crate::hub::pending_result;
use crate::limits::Permit;
use crate::middleware::RequestContext;
use crate::routes::{
    check_queue, new_id, number_param, require_agent, required, usable_session, valid_cluster_id,
};
use crate::store::QueuedCommand;

/// Default lifetime of a stream, in seconds.
pub const DEFAULT_STREAM_MAX_SECONDS: u64 = 1800;
/// Default byte budget of a stream.
pub const DEFAULT_STREAM_MAX_BYTES: u64 = 16 * 1024 * 1024;
/// Default bytes of output buffered per stream for a caller reading slowly.
pub const DEFAULT_STREAM_BUFFER_BYTES: usize = 256 * 1024;
/// Default time a caller's socket may take to accept one frame.
pub const DEFAULT_STREAM_SEND_TIMEOUT_SECONDS: u64 = 10;
/// Default open streams per credential, per replica.
pub const DEFAULT_MAX_STREAMS_PER_KEY: usize = 16;
/// Default open streams per cluster, per replica.
pub const DEFAULT_MAX_STREAMS_PER_CLUSTER: usize = 64;

/// How long after its lifetime a stream waits for the agent's own end before ending itself.
const LIFETIME_GRACE: Duration = Duration::from_secs(5);
/// Largest frame a caller may send on a stream (a `cancel`); anything bigger closes it.
const MAX_CALLER_FRAME: usize = 4096;
/// Read buffer of a caller's stream socket.
pub(crate) const CALLER_READ_BUFFER: usize = 4096;
/// The error of a stream its caller cancelled with a `cancel` frame.
const CANCELLED_BY_CALLER: &str = "cancelled by the caller";

/// Streams (`--stream-*`, `--max-streams-*`).
#[derive(Debug, Clone, clap::Args)]
pub struct StreamArgs {
    /// Longest lifetime of a stream, in seconds; a stream may ask for less (`max_seconds`).
    #[arg(long, env = "KUBELINE_STREAM_MAX_SECONDS", default_value_t = DEFAULT_STREAM_MAX_SECONDS)]
    pub stream_max_seconds: u64,

    /// Largest byte budget of a stream; a stream may ask for less (`max_bytes`).
    #[arg(long, env = "KUBELINE_STREAM_MAX_BYTES", default_value_t = DEFAULT_STREAM_MAX_BYTES)]
    pub stream_max_bytes: u64,

    /// Output buffered per stream for a caller that reads more slowly than the command writes;
    /// past it output is dropped (and the caller told where).
    #[arg(long, env = "KUBELINE_STREAM_BUFFER_BYTES", default_value_t = DEFAULT_STREAM_BUFFER_BYTES)]
    pub stream_buffer_bytes: usize,

    /// How long a caller's socket may take to accept one frame before the stream is cut off
    /// (`slow_consumer`).
    #[arg(
        long,
        env = "KUBELINE_STREAM_SEND_TIMEOUT_SECONDS",
        default_value_t = DEFAULT_STREAM_SEND_TIMEOUT_SECONDS
    )]
    pub stream_send_timeout_seconds: u64,

    /// Streams one credential may have open at once on this replica (429 past it).
    #[arg(long, env = "KUBELINE_MAX_STREAMS_PER_KEY", default_value_t = DEFAULT_MAX_STREAMS_PER_KEY)]
    pub max_streams_per_key: usize,

    /// Streams one cluster may have open at once on this replica, all callers together (429
    /// past it).
    #[arg(
        long,
        env = "KUBELINE_MAX_STREAMS_PER_CLUSTER",
        default_value_t = DEFAULT_MAX_STREAMS_PER_CLUSTER
    )]
    pub max_streams_per_cluster: usize,
}

impl Default for StreamArgs {
    fn default() -> Self {
        Self {
            stream_max_seconds: DEFAULT_STREAM_MAX_SECONDS,
            stream_max_bytes: DEFAULT_STREAM_MAX_BYTES,
            stream_buffer_bytes: DEFAULT_STREAM_BUFFER_BYTES,
            stream_send_timeout_seconds: DEFAULT_STREAM_SEND_TIMEOUT_SECONDS,
            max_streams_per_key: DEFAULT_MAX_STREAMS_PER_KEY,
            max_streams_per_cluster: DEFAULT_MAX_STREAMS_PER_CLUSTER,
        }
    }
}

impl StreamArgs {
    /// Refuses settings that cannot work, naming the flag.
    pub fn check(&self) -> anyhow::Result<()> {
        let positive = [
            ("--stream-max-seconds", self.stream_max_seconds),
            ("--stream-max-bytes", self.stream_max_bytes),
            ("--stream-buffer-bytes", self.stream_buffer_bytes as u64),
            (
                "--stream-send-timeout-seconds",
                self.stream_send_timeout_seconds,
            ),
            ("--max-streams-per-key", self.max_streams_per_key as u64),
            (
                "--max-streams-per-cluster",
                self.max_streams_per_cluster as u64,
            ),
        ];
        for (flag, value) in positive {
            if value == 0 {
                anyhow::bail!("{flag} must be at least 1");
            }
        }
        if self.stream_buffer_bytes < kubeline_shared::protocol::MAX_CHUNK_BYTES {
            anyhow::bail!(
                "--stream-buffer-bytes must be at least {} (one chunk of output)",
                kubeline_shared::protocol::MAX_CHUNK_BYTES
            );
        }
        Ok(())
    }
}

// === the feed: what a reader has not read yet ===

/// The part of a stream its reader on this replica has not read yet: output up to a byte
/// bound, markers where output was dropped, and the end. Filled by the hub, drained by the
/// socket task.
pub struct Feed {
    state: Mutex<FeedState>,
    ready: Notify,
    cap: usize,
}

struct FeedState {
    pieces: VecDeque<FeedPiece>,
    buffered: usize,
    end: Option<CommandResult>,
    heard: Instant,
}

/// What a feed gives its reader: output, in order, and where output was dropped.
pub(crate) enum FeedPiece {
    Output(String),
    Dropped(u64),
}

enum Next {
    Piece(FeedPiece),
    End(Box<CommandResult>),
}

impl Feed {
    /// An empty feed holding at most `cap` bytes of output.
    pub fn new(cap: usize) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(FeedState {
                pieces: VecDeque::new(),
                buffered: 0,
                end: None,
                heard: Instant::now(),
            }),
            ready: Notify::new(),
            cap,
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, FeedState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Output of the stream, in order; dropped (and marked) when the buffer is full.
    pub(crate) fn output(&self, data: String) {
        let mut state = self.state();
        state.heard = Instant::now();
        if state.buffered + data.len() <= self.cap {
            state.buffered += data.len();
            state.pieces.push_back(FeedPiece::Output(data));
        } else {
            let len = data.len() as u64;
            match state.pieces.back_mut() {
                Some(FeedPiece::Dropped(n)) => *n += len,
                _ => state.pieces.push_back(FeedPiece::Dropped(len)),
            }
        }
        drop(state);
        self.ready.notify_one();
    }

    /// The stream still runs.
    pub(crate) fn beat(&self) {
        self.state().heard = Instant::now();
    }

    /// The stream's final result.
    pub(crate) fn end(&self, result: CommandResult) {
        self.state().end = Some(result);
        self.ready.notify_one();
    }

    fn silent_for(&self) -> Duration {
        self.state().heard.elapsed()
    }

    /// The next piece (a feed of session events has no end).
    pub(crate) async fn next_piece(&self) -> FeedPiece {
        loop {
            if let Next::Piece(piece) = self.next().await {
                return piece;
            }
        }
    }

    async fn next(&self) -> Next {
        loop {
            {
                let mut state = self.state();
                if let Some(piece) = state.pieces.pop_front() {
                    if let FeedPiece::Output(data) = &piece {
                        state.buffered -= data.len();
                    }
                    return Next::Piece(piece);
                }
                if let Some(end) = state.end.take() {
                    return Next::End(Box::new(end));
                }
            }
            // `notify_one` keeps a permit when nobody waits: nothing pushed between the check
            // above and this wait is missed.
            self.ready.notified().await;
        }
    }
}

// === the route ===

/// Query of `GET /debug/stream`. Values arrive as strings and are checked in the handler, so
/// that the answer can say what is allowed.
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StreamQuery {
    /// Cluster to run on (must match the session's).
    #[param(example = "production-cluster")]
    pub cluster_id: Option<String>,
    /// Session from `POST /debug/session`.
    #[param(example = "sess_abc123def456")]
    pub session_id: Option<String>,
    /// `logs`, `get`, `events` or `rollout`.
    #[param(example = "logs")]
    pub command_type: Option<String>,
    /// The arguments after the command type, as a JSON array of strings.
    #[param(example = r#"["deploy/credit-api","-n","credit-service","-f","--tail=10"]"#)]
    pub args: Option<String>,
    /// Lifetime in seconds (default and most: `--stream-max-seconds`, 1800).
    #[param(value_type = Option<u64>, minimum = 1, example = 600)]
    pub max_seconds: Option<String>,
    /// Byte budget (default and most: `--stream-max-bytes`, 16 MiB).
    #[param(value_type = Option<u64>, minimum = 1, example = 1048576)]
    pub max_bytes: Option<String>,
}

/// Stream a command's output over a WebSocket.
///
/// Runs `logs -f`, `get -w` / `--watch-only`, `events -w` and `rollout status -w` (and their
/// one-shot forms) and sends their output as it comes. Authenticated like every route
/// (`Authorization: Bearer` or `X-API-Key` on the upgrade request) and counted as an execute
/// by the rate limit. The server sends JSON text frames (`StreamFrame`): `started`, then
/// `output` and `dropped`, then one `end` with the reason, and closes. The caller may send
/// `{"type":"cancel"}`, or close the socket, to stop the command on the agent. The output is
/// not stored; `GET /debug/result/{result_id}` tells how the stream ended. Every refusal comes
/// before the upgrade, as an HTTP error.
#[utoipa::path(get, path = "/debug/stream", tag = "commands",
    params(StreamQuery),
    responses(
        (status = 101, description = "Switching to the WebSocket; frames are `StreamFrame`s.", body = StreamFrame),
        (status = 400, response = crate::openapi::BadRequest),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, response = crate::openapi::NotFound),
        (status = 429, response = crate::openapi::TooManyRequests),
        (status = 500, response = crate::openapi::InternalError),
        (status = 503, response = crate::openapi::ServiceUnavailable),
    ))]
pub async fn stream(
    State(state): State<AppState>,
    caller: Caller,
    ctx: RequestContext,
    Query(q): Query<StreamQuery>,
    ws: WebSocket,
) -> Response {
    let mut event = audit::request_event(
        &ctx,
        Some(&caller),
        AuditAction::Stream,
        AuditOutcome::Refused,
    );
    event.cluster_id = q.cluster_id.clone();
    event.session_id = q.session_id.clone();
    event.command_type = q.command_type.clone();
    let mut response = match open(&state, &caller, &ctx, q, &mut event).await {
        Ok(open) => {
            let changes = state.credentials.changes();
            let span = info_span!("stream", result_id = %open.command.result_id);
            // A caller sends at most a `cancel`: a small read buffer (tungstenite's default is
            // 128 KiB a connection); frames go out as they are sent.
            let socket =
                ws.0.read_buffer_size(CALLER_READ_BUFFER)
                    .write_buffer_size(0)
                    .max_message_size(MAX_CALLER_FRAME)
                    .max_frame_size(MAX_CALLER_FRAME);
            socket.on_upgrade(move |socket| {
                async move {
                    let events = state.hub.events();
                    let owner = open.owner.as_deref();
                    events.command_started(&open.command, owner);
                    let end = run(&state, &caller, &open, socket, changes).await;
                    let mut result = pending_result(&open.command);
                    result.status = end.status.unwrap_or(ResultStatus::Failed);
                    result.exit_code = end.exit_code;
                    result.execution_time_ms = end.duration_ms;
                    events.command_finished(&open.command, &result, owner);
                    let mut event = event;
                    audit_end(&end, &mut event, &ctx, open.command.result_id.clone());
                    audit::record_after(&state.audit, event).await;
                }
                .instrument(span)
            })
        }
        Err(e) => {
            event.decision = Some(AuditDecision::Refused);
            event.reason = Some(format!("{}: {}", e.status().as_u16(), e.body().message));
            event.duration_ms = Some(audit::elapsed_ms(&ctx));
            audit::record_after(&state.audit, event).await;
            e.into_response()
        }
    };
    response.extensions_mut().insert(audit::Audited);
    response
}

/// A stream checked and accepted, not started yet.
struct Open {
    command: QueuedCommand,
    started: StreamStarted,
    /// The credential owning its session (for session events).
    owner: Option<String>,
    /// The stream's slots, held until it ends.
    _permits: (Permit<String>, Permit<String>),
}

/// Checks a stream request the way an execute is checked, takes its slots and writes the
/// accepted audit record.
async fn open(
    state: &AppState,
    caller: &Caller,
    ctx: &RequestContext,
    q: StreamQuery,
    event: &mut AuditEvent,
) -> ApiResult<Open> {
    let settings = &state.settings.streams;
    let cluster_id = valid_cluster_id(required(q.cluster_id, "cluster_id")?)?;
    caller.require_cluster(&cluster_id)?;
    let session_id = required(q.session_id, "session_id")?;
    let command_type = required(q.command_type, "command_type")?;
    let args = parse_args(q.args.as_deref())?;
    event.args = Some(args.clone());
    let max_seconds = number_param(
        "max_seconds",
        q.max_seconds.as_deref(),
        1,
        settings.stream_max_seconds,
    )?
    .unwrap_or(settings.stream_max_seconds);
    let max_bytes = number_param(
        "max_bytes",
        q.max_bytes.as_deref(),
        1,
        settings.stream_max_bytes,
    )?
    .unwrap_or(settings.stream_max_bytes);
    if let Err(e) = command::parse_stream(&command_type, &args) {
        let field = if e.code == "not_streamable" {
            "command_type"
        } else {
            "args"
        };
        return Err(ApiError::bad_request(
            format!("Command refused: {}", e.message),
            json!({
                "field": field,
                "code": e.code,
                "argument": e.argument,
                "command_type": command_type,
            }),
        ));
    }
    let now = Utc::now();
    let session = usable_session(state, caller, &session_id, &cluster_id, now).await?;
    require_agent(state, &cluster_id).await?;
    let permits = stream_permits(state, caller, &cluster_id)?;
    check_queue(state, &cluster_id).await?;
    let result_id = new_id("res");
    event.result_id = Some(result_id.clone());
    state
        .audit
        .record(AuditEvent {
            outcome: AuditOutcome::Accepted,
            decision: Some(AuditDecision::Allowed),
            ..event.clone()
        })
        .await?;
    info!(
        result_id = %result_id,
        session_id = %session_id,
        cluster = %cluster_id,
        command_type = %command_type,
        args = ?args,
        correlation_id = %ctx.correlation_id,
        credential = %caller.credential_id,
        "stream"
    );
    let started = StreamStarted {
        result_id: result_id.clone(),
        session_id: session_id.clone(),
        cluster_id: cluster_id.clone(),
        command_type: command_type.clone(),
        args: args.clone(),
        max_seconds,
        max_bytes,
    };
    let command = QueuedCommand {
        entry_id: String::new(),
        result_id,
        session_id,
        cluster_id,
        command_type,
        args,
        executed_at: now,
        deadline: now + chrono::Duration::seconds(max_seconds as i64),
        max_output_bytes: max_bytes,
        correlation_id: ctx.correlation_id.clone(),
        reply_to: state.hub.broker_id().to_owned(),
        trace: Some(TraceContext {
            traceparent: ctx.trace.to_string(),
            tracestate: ctx.tracestate.clone(),
        }),
        stream: true,
    };
    Ok(Open {
        command,
        started,
        owner: session.owner,
        _permits: permits,
    })
}

/// `args`: a JSON array of strings (absent: none).
fn parse_args(raw: Option<&str>) -> ApiResult<Vec<String>> {
    let Some(raw) = raw.filter(|r| !r.is_empty()) else {
        return Ok(Vec::new());
    };
    serde_json::from_str::<Vec<String>>(raw).map_err(|e| {
        ApiError::invalid_field(
            "args",
            format!(
                "Invalid args: give the arguments as a JSON array of strings, e.g. \
                 args=[\"pods\",\"-w\"] ({e})"
            ),
        )
    })
}

/// Takes the stream slots of one stream: one of its credential's, one of its cluster's.
fn stream_permits(
    state: &AppState,
    caller: &Caller,
    cluster_id: &str,
) -> ApiResult<(Permit<String>, Permit<String>)> {
    let key = key_stream_permit(state, caller)?;
    let limits = &state.limits;
    let cluster = limits
        .streams_per_cluster
        .try_acquire(&cluster_id.to_owned())
        .ok_or_else(|| {
            too_many_streams(
                "cluster",
                limits.streams_per_cluster.max(),
                "--max-streams-per-cluster",
                Some(cluster_id),
            )
        })?;
    Ok((key, cluster))
}

/// One of the caller's open-stream slots (`--max-streams-per-key`): streams and event readers
/// both take one.
pub(crate) fn key_stream_permit(state: &AppState, caller: &Caller) -> ApiResult<Permit<String>> {
    let limits = &state.limits;
    limits
        .streams_per_key
        .try_acquire(&caller.credential_id)
        .ok_or_else(|| {
            too_many_streams(
                "credential",
                limits.streams_per_key.max(),
                "--max-streams-per-key",
                None,
            )
        })
}

/// 429 `too_many_streams` for a full `scope` (`credential` or `cluster`), naming the flag.
fn too_many_streams(scope: &str, max: usize, flag: &str, cluster_id: Option<&str>) -> ApiError {
    let mut details = json!({ "limit": max, "scope": scope, "code": "too_many_streams" });
    if let Some(cluster_id) = cluster_id {
        details["cluster_id"] = json!(cluster_id);
    }
    ApiError::too_many_requests(
        format!(
            "Too many open streams for this {scope}: at most {max} at once (broker limit \
             {flag}). Close one, then retry"
        ),
        details,
        crate::RETRY_AFTER_IN_FLIGHT,
    )
}

// === the socket ===

/// Fills in a stream's closing audit record from how it ended.
fn audit_end(end: &StreamEnd, event: &mut AuditEvent, ctx: &RequestContext, result_id: String) {
    event.result_id = Some(result_id);
    event.decision = Some(AuditDecision::Allowed);
    event.outcome = match (end.reason, end.status) {
        (StreamEndReason::Lifetime, _) => AuditOutcome::Timeout,
        (StreamEndReason::AgentLost, _) => AuditOutcome::Error,
        (_, Some(ResultStatus::Failed)) => AuditOutcome::Failed,
        _ => AuditOutcome::Completed,
    };
    event.exit_code = end.exit_code;
    event.output_bytes = Some(end.bytes);
    let reason = serde_json::to_value(end.reason)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    event.reason = Some(match &end.error {
        Some(error) => format!("{reason}: {}", crate::routes::truncate(error, 480)),
        None => reason,
    });
    event.duration_ms = Some(audit::elapsed_ms(ctx));
}

/// Runs an accepted stream on its socket until it ends, and says how.
async fn run(
    state: &AppState,
    caller: &Caller,
    open: &Open,
    mut socket: Socket,
    changes: tokio::sync::broadcast::Receiver<Arc<str>>,
) -> StreamEnd {
    let settings = &state.settings.streams;
    let hub = &state.hub;
    let upgraded = Instant::now();
    let send_within = Duration::from_secs(settings.stream_send_timeout_seconds);
    // Beats come every ping interval, from the pump's periodic tick: four of the slower of the
    // two without a word means the stream's link holder is gone.
    let silence_limit = hub
        .settings()
        .ping_interval
        .max(hub.settings().poll_interval)
        * 4;
    let feed = Feed::new(settings.stream_buffer_bytes);
    let mut end = StreamEnd {
        reason: StreamEndReason::Done,
        status: None,
        exit_code: None,
        error: None,
        bytes: 0,
        dropped_bytes: 0,
        duration_ms: 0,
    };
    let finish = |mut end: StreamEnd| {
        end.duration_ms = upgraded.elapsed().as_millis() as u64;
        end
    };
    let _guard = match hub.start_stream(&open.command, feed.clone()).await {
        Ok(guard) => guard,
        Err(e) => {
            end.reason = StreamEndReason::AgentLost;
            end.error = Some(format!("the stream could not be queued: {e}"));
            let _ = send_end(&mut socket, &end, send_within).await;
            return finish(end);
        }
    };
    let started = StreamFrame::Started(open.started.clone());
    if let Err(e) = send(&mut socket, &started, send_within).await {
        end.reason = e.reason();
        cancel(hub, &open.command, e.describe()).await;
        return finish(end);
    }
    let lifetime = tokio::time::sleep_until(
        (upgraded + Duration::from_secs(open.started.max_seconds) + LIFETIME_GRACE).into(),
    );
    tokio::pin!(lifetime);
    let ended = crate::auth::ended(state, caller, changes);
    tokio::pin!(ended);
    let mut silence = tokio::time::interval(silence_limit / 3);
    silence.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut shutdown = std::pin::pin!(hub.shutting_down());
    let stop: Option<(StreamEndReason, String)> = loop {
        tokio::select! {
            next = feed.next() => match next {
                Next::Piece(piece) => {
                    let (frame, sent) = match piece {
                        FeedPiece::Output(data) => {
                            let len = data.len() as u64;
                            (StreamFrame::Output { data }, len)
                        }
                        FeedPiece::Dropped(bytes) => {
                            end.dropped_bytes += bytes;
                            (StreamFrame::Dropped { bytes }, 0)
                        }
                    };
                    if let Err(e) = send(&mut socket, &frame, send_within).await {
                        break Some((e.reason(), e.describe().to_owned()));
                    }
                    end.bytes += sent;
                }
                Next::End(result) => {
                    ended_by(&mut end, &result);
                    break None;
                }
            },
            frame = socket.recv() => match frame {
                Some(Ok(Message::Text(text))) if is_cancel(&text) => {
                    break Some((StreamEndReason::Cancelled, CANCELLED_BY_CALLER.to_owned()));
                }
                Some(Ok(Message::Text(_) | Message::Binary(_))) => {
                    warn!("ignoring a caller frame that is not {{\"type\":\"cancel\"}}");
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                    cancel(hub, &open.command, "the caller closed the stream").await;
                    end.reason = StreamEndReason::Cancelled;
                    return finish(end);
                }
            },
            () = &mut lifetime => {
                break Some((StreamEndReason::Lifetime, format!(
                    "the stream reached its lifetime of {}s", open.started.max_seconds
                )));
            }
            refusal = &mut ended => break Some((StreamEndReason::CredentialEnded, refusal)),
            () = &mut shutdown => {
                break Some((StreamEndReason::Shutdown, "the broker is shutting down; open the stream again".to_owned()));
            }
            _ = silence.tick() => {
                if feed.silent_for() > silence_limit {
                    break Some((StreamEndReason::AgentLost, format!(
                        "nothing heard of the stream for {}s: the broker replica holding the \
                         agent's link is gone; open the stream again",
                        feed.silent_for().as_secs()
                    )));
                }
            }
        }
    };
    if let Some((reason, error)) = stop {
        end.reason = reason;
        cancel(hub, &open.command, &error).await;
        end.error = Some(error);
        if matches!(
            reason,
            StreamEndReason::SlowConsumer | StreamEndReason::Cancelled
        ) && end.error.as_deref() != Some(CANCELLED_BY_CALLER)
        {
            // The socket takes nothing, or is gone: a last frame would only wait.
            return finish(end);
        }
    }
    end.duration_ms = upgraded.elapsed().as_millis() as u64;
    let _ = send_end(&mut socket, &end, send_within).await;
    finish(end)
}

/// Fills in a stream's end from its final result.
fn ended_by(end: &mut StreamEnd, result: &CommandResult) {
    end.status = Some(result.status);
    end.exit_code = result.exit_code;
    end.error = result.error.clone();
    end.reason = match result.status {
        ResultStatus::Timeout => StreamEndReason::Lifetime,
        // The link was lost: the command never reached an end on the agent.
        ResultStatus::Failed if result.exit_code.is_none() => StreamEndReason::AgentLost,
        _ if result.truncated.is_some() => StreamEndReason::Budget,
        _ => StreamEndReason::Done,
    };
    if let Some(t) = &result.truncated {
        end.dropped_bytes += t.omitted_bytes;
    }
}

/// Why a frame could not be sent.
#[derive(Debug, Clone, Copy)]
enum SendError {
    /// The socket did not take it in time: the caller does not read.
    Slow,
    /// The socket is closed: the caller is gone.
    Gone,
}

impl SendError {
    fn reason(self) -> StreamEndReason {
        match self {
            Self::Slow => StreamEndReason::SlowConsumer,
            Self::Gone => StreamEndReason::Cancelled,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Self::Slow => "the caller did not read its socket in time; the stream was cut off",
            Self::Gone => "the caller closed the stream",
        }
    }
}

/// The caller left: the command stops on the agent.
async fn cancel(hub: &crate::hub::Hub, command: &QueuedCommand, why: &str) {
    let mut result = pending_result(command);
    result.status = ResultStatus::Failed;
    result.error = Some(format!("stream ended: {why}"));
    result.execution_time_ms = (Utc::now() - command.executed_at).num_milliseconds().max(0) as u64;
    hub.cancel_stream(command, &result).await;
}

fn is_cancel(text: &str) -> bool {
    #[derive(serde::Deserialize)]
    struct Frame<'a> {
        #[serde(rename = "type", borrow)]
        kind: &'a str,
    }
    serde_json::from_str::<Frame<'_>>(text).is_ok_and(|f| f.kind == "cancel")
}

/// Sends one frame, or fails when the socket is closed or does not take it within `within`.
async fn send(socket: &mut Socket, frame: &StreamFrame, within: Duration) -> Result<(), SendError> {
    let text = serde_json::to_string(frame).expect("stream frames always serialize");
    send_message(socket, Message::Text(text.into()), within).await
}

async fn send_message(
    socket: &mut Socket,
    message: Message,
    within: Duration,
) -> Result<(), SendError> {
    match tokio::time::timeout(within, socket.send(message)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(SendError::Gone),
        Err(_) => Err(SendError::Slow),
    }
}

/// The last frame, then the close.
async fn send_end(socket: &mut Socket, end: &StreamEnd, within: Duration) -> Result<(), SendError> {
    send(socket, &StreamFrame::End(end.clone()), within).await?;
    let close = Message::Close(Some(CloseFrame {
        code: 1000,
        reason: "stream ended".into(),
    }));
    send_message(socket, close, within).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn output(next: Next) -> String {
        match next {
            Next::Piece(FeedPiece::Output(data)) => data,
            Next::Piece(FeedPiece::Dropped(n)) => format!("<dropped {n}>"),
            Next::End(result) => format!("<end {:?}>", result.status),
        }
    }

    #[tokio::test]
    async fn a_full_feed_drops_output_and_marks_where() {
        let feed = Feed::new(10);
        feed.output("12345".into());
        feed.output("67890".into());
        // Full: these two are dropped, counted under one marker.
        feed.output("abc".into());
        feed.output("de".into());
        assert_eq!(output(feed.next().await), "12345");
        // Room again: this one is kept, after the marker.
        feed.output("xyz".into());
        let mut end = pending_result(&command());
        end.status = ResultStatus::Completed;
        feed.end(end);
        let rest = [
            output(feed.next().await),
            output(feed.next().await),
            output(feed.next().await),
            output(feed.next().await),
        ];
        assert_eq!(rest, ["67890", "<dropped 5>", "xyz", "<end Completed>"]);
    }

    #[tokio::test]
    async fn a_reader_waits_for_the_next_piece() {
        let feed = Feed::new(1024);
        let reader = {
            let feed = feed.clone();
            tokio::spawn(async move { output(feed.next().await) })
        };
        tokio::task::yield_now().await;
        feed.output("line\n".into());
        assert_eq!(reader.await.unwrap(), "line\n");
    }

    #[test]
    fn args_are_a_json_array_of_strings() {
        assert_eq!(parse_args(None).unwrap(), Vec::<String>::new());
        assert_eq!(parse_args(Some("")).unwrap(), Vec::<String>::new());
        assert_eq!(
            parse_args(Some(r#"["pods","-w"]"#)).unwrap(),
            ["pods", "-w"]
        );
        for bad in ["pods -w", r#"["pods",1]"#, r#"{"a":"b"}"#, "[", "null"] {
            let e = parse_args(Some(bad)).unwrap_err();
            assert_eq!(e.body().details.as_ref().unwrap()["field"], "args", "{bad}");
        }
    }

    #[test]
    fn only_a_cancel_frame_cancels() {
        assert!(is_cancel(r#"{"type":"cancel"}"#));
        assert!(is_cancel(r#"{ "type" : "cancel", "why": 1 }"#));
        for other in [r#"{"type":"ping"}"#, "cancel", "{}", r#"{"type":1}"#] {
            assert!(!is_cancel(other), "{other}");
        }
    }

    #[test]
    fn a_final_result_says_why_the_stream_ended() {
        let base = pending_result(&command());
        let end_of = |f: &dyn Fn(&mut CommandResult)| {
            let mut result = base.clone();
            f(&mut result);
            let mut end = StreamEnd {
                reason: StreamEndReason::Cancelled,
                status: None,
                exit_code: None,
                error: None,
                bytes: 0,
                dropped_bytes: 0,
                duration_ms: 0,
            };
            ended_by(&mut end, &result);
            end.reason
        };
        let done = end_of(&|r| {
            r.status = ResultStatus::Completed;
            r.exit_code = Some(0);
        });
        assert_eq!(done, StreamEndReason::Done);
        let failed = end_of(&|r| {
            r.status = ResultStatus::Failed;
            r.exit_code = Some(1);
        });
        assert_eq!(failed, StreamEndReason::Done);
        let lost = end_of(&|r| r.status = ResultStatus::Failed);
        assert_eq!(lost, StreamEndReason::AgentLost);
        let lifetime = end_of(&|r| r.status = ResultStatus::Timeout);
        assert_eq!(lifetime, StreamEndReason::Lifetime);
        let budget = end_of(&|r| {
            r.status = ResultStatus::Completed;
            r.exit_code = Some(0);
            r.truncated = Some(kubeline_shared::api::Truncation {
                omitted_bytes: 3,
                limit_bytes: 10,
            });
        });
        assert_eq!(budget, StreamEndReason::Budget);
    }

    fn command() -> QueuedCommand {
        let now = Utc::now();
        QueuedCommand {
            entry_id: String::new(),
            result_id: "res_1".into(),
            session_id: "sess_1".into(),
            cluster_id: "c1".into(),
            command_type: "get".into(),
            args: vec!["pods".into(), "-w".into()],
            executed_at: now,
            deadline: now + chrono::Duration::seconds(60),
            max_output_bytes: 1024,
            correlation_id: "corr".into(),
            reply_to: "b1".into(),
            trace: None,
            stream: true,
        }
    }
}
