//! The agent's side of the link: dial out to the broker, say hello, run what it sends.
//!
//! Reconnects use exponential backoff with full jitter (0.8 s doubling to 30 s, reset once a
//! link has been healthy for [`HEALTHY_LINK`], as kube-runtime's watcher does: a broker that
//! welcomes links and drops them at once is not hammered). A broker may name the delay itself:
//! one going away sends a `reconnect`, and one admitting links at its paced rate answers 503
//! with the time this agent's slot comes (`details.retry_after_ms`), which the agent keeps to. Several commands
//! run at once, each under its own deadline; output leaves in chunks through one writer so a big
//! result never holds up heartbeats or other commands.
//!
//! Commands run on their own runtime (`Commands`), apart from the link's reader, writer and
//! heartbeats: printing a big list or evaluating a template is CPU work between await points,
//! and on a shared runtime sixteen such commands could starve the link until the broker (or the
//! agent's own watchdog) declared it dead.
//!
//! Streams (`Execute.stream`: `logs -f`, `get -w`, …) are parsed with
//! [`command::parse_stream`] and run with [`Executor::stream`]; what they print leaves as
//! `output` frames as soon as it is produced (whatever is already waiting coalesced into one
//! frame of at most [`MAX_CHUNK_BYTES`]), through the same bounded writer channel as everything
//! else, so a slow link slows the stream down instead of piling output up in the agent. A
//! stream ends on its own, at its output budget (the command is stopped, `Done.truncated`
//! says so), at its deadline (`timeout`, exit code 124), or at a `Cancel` (nothing more is
//! sent). Streams hold a slot of their own limit (`--max-streams`), never one of the
//! commands', so long streams cannot starve one-shot commands.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{FutureExt, SinkExt, StreamExt};
use kubeline_shared::api::{ResultStatus, Truncation};
use kubeline_shared::command;
use kubeline_shared::limits::MAX_ERROR_BYTES;
use kubeline_shared::protocol::{
    AgentMessage, BrokerMessage, CLOSE_UNAUTHORIZED, CONNECT_PATH, Done, Execute, Hello,
    MAX_CHUNK_BYTES, OutputChunk, PROTOCOL_VERSION, Pong,
};
use kubeline_shared::trace::TraceParent;
use rand::Rng;
use std::panic::AssertUnwindSafe;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::AbortHandle;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, error, info, info_span, warn};

use crate::exec::sink::{self, prefix_within};
use crate::exec::{Executor, Outcome, Sink};
use crate::metrics;

/// Default `--max-streams`: streams one agent runs at once.
pub const DEFAULT_MAX_STREAMS: u32 = 100;

/// First reconnect delay.
pub const BACKOFF_MIN: Duration = Duration::from_millis(800);
/// Largest reconnect delay.
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// How long to wait for the broker's welcome.
const WELCOME_TIMEOUT: Duration = Duration::from_secs(10);
/// A link that lived this long was healthy: the next reconnect starts from the shortest delay.
pub const HEALTHY_LINK: Duration = Duration::from_secs(120);
/// Longest wait a broker may ask for (in a `reconnect` or a paced 503): a broker asking for more
/// is not obeyed past this.
const MAX_ADVISED_WAIT: Duration = Duration::from_secs(300);
/// Read buffer of the link's WebSocket: the broker's frames are small (commands, pings), and
/// tungstenite's default of 128 KiB would be most of an idle agent's memory.
const LINK_READ_BUFFER: usize = 16 * 1024;

/// How the agent reaches its broker.
#[derive(Debug, Clone)]
pub struct LinkConfig {
    /// Broker base URL: `http(s)://host:port` or `ws(s)://host:port`.
    pub broker_url: String,
    /// This cluster's id, as the broker knows it.
    pub cluster_id: String,
    /// This cluster's agent token.
    pub token: String,
    /// Commands run at once; more wait their turn.
    pub max_concurrency: usize,
    /// Streams run at once (apart from `max_concurrency`); more are refused.
    pub max_streams: usize,
    /// How a `https://`/`wss://` broker's certificate is verified.
    pub tls: crate::tls::ClientTls,
    /// The cluster's labels (`--label`), sent in the hello; checked at start
    /// ([`crate::AgentArgs::labels`]).
    pub labels: kubeline_shared::labels::Labels,
}

impl LinkConfig {
    /// The WebSocket URL of the link endpoint.
    pub fn connect_url(&self) -> Result<String, String> {
        let base = self.broker_url.trim_end_matches('/');
        let ws = if let Some(rest) = base.strip_prefix("http://") {
            format!("ws://{rest}")
        } else if let Some(rest) = base.strip_prefix("https://") {
            format!("wss://{rest}")
        } else if base.starts_with("ws://") || base.starts_with("wss://") {
            base.to_owned()
        } else {
            return Err(format!(
                "broker URL {base:?} must start with http://, https://, ws:// or wss://"
            ));
        };
        Ok(format!("{ws}{CONNECT_PATH}"))
    }
}

/// Exponential backoff with full jitter.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self { next: BACKOFF_MIN }
    }
}

impl Backoff {
    /// The delay before the next attempt: uniform in `[0, ceiling]`, the ceiling doubling up to
    /// [`BACKOFF_MAX`].
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.next;
        self.next = (self.next * 2).min(BACKOFF_MAX);
        let ms = rand::rng().random_range(0..=ceiling.as_millis() as u64);
        Duration::from_millis(ms)
    }

    /// Starts over after a healthy link.
    pub fn reset(&mut self) {
        self.next = BACKOFF_MIN;
    }

    /// A link that was welcomed has ended after `lived`: start over if it was healthy
    /// ([`HEALTHY_LINK`]), otherwise keep growing.
    pub fn link_ended(&mut self, lived: Duration) {
        if lived >= HEALTHY_LINK {
            self.reset();
        }
    }
}

/// How a link ended.
#[derive(Debug)]
enum Ended {
    /// Reconnect after the backoff delay.
    Lost(String),
    /// The broker asked to come back after this delay.
    Later(Duration),
    /// Shutdown was requested.
    Shutdown,
}

/// Runs the agent until `shutdown` is cancelled.
pub async fn run(config: LinkConfig, executor: Executor, shutdown: CancellationToken) {
    let commands = match Commands::new(config.max_concurrency, config.max_streams) {
        Ok(c) => c,
        Err(e) => {
            error!(error = %e, "cannot start the command runtime");
            return;
        }
    };
    run_on(config, executor, &commands, shutdown).await;
}

/// Runs one link, its commands on `commands` (which many links may share: the reconnect-storm
/// benchmark runs thousands of links in one process), until `shutdown` is cancelled.
/// `config.max_concurrency` and `config.max_streams` are `commands`' business here.
pub async fn run_on(
    config: LinkConfig,
    executor: Executor,
    commands: &Commands,
    shutdown: CancellationToken,
) {
    let url = match config.connect_url() {
        Ok(url) => url,
        Err(e) => {
            error!(error = %e, "invalid broker URL");
            return;
        }
    };
    config.tls.announce(&url);
    let mut backoff = Backoff::default();
    for dial in 0u64.. {
        if dial > 0 {
            metrics::reconnect();
        }
        let attempt = link_once(&config, &url, &executor, commands, &mut backoff, &shutdown);
        let delay = match attempt.await {
            Ended::Shutdown => return,
            Ended::Later(delay) => delay.min(MAX_ADVISED_WAIT),
            Ended::Lost(reason) => {
                let delay = backoff.next_delay();
                warn!(%reason, retry_in_ms = delay.as_millis() as u64, "broker link down");
                delay
            }
        };
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(delay) => {}
        }
    }
}

async fn link_once(
    config: &LinkConfig,
    url: &str,
    executor: &Executor,
    commands: &Commands,
    backoff: &mut Backoff,
    shutdown: &CancellationToken,
) -> Ended {
    let mut request = match url.into_client_request() {
        Ok(r) => r,
        Err(e) => return Ended::Lost(format!("bad broker URL: {e}")),
    };
    let headers = request.headers_mut();
    match HeaderValue::from_str(&format!("Bearer {}", config.token)) {
        Ok(v) => headers.insert("authorization", v),
        Err(_) => {
            return Ended::Lost(
                "the agent token contains characters not allowed in a header".into(),
            );
        }
    };
    match HeaderValue::from_str(&config.cluster_id) {
        Ok(v) => headers.insert("x-kubeline-cluster", v),
        Err(_) => {
            return Ended::Lost(
                "the cluster id contains characters not allowed in a header".into(),
            );
        }
    };
    let ws_config = WebSocketConfig::default().read_buffer_size(LINK_READ_BUFFER);
    let connected = tokio::select! {
        () = shutdown.cancelled() => return Ended::Shutdown,
        c = tokio_tungstenite::connect_async_tls_with_config(
            request, Some(ws_config), true, config.tls.connector_for(url),
        ) => c,
    };
    let mut ws = match connected {
        Ok((ws, _)) => ws,
        Err(WsError::Http(response)) => {
            if let Some(wait) = advised_wait(&response) {
                debug!(wait_ms = wait.as_millis() as u64, status = %response.status(), "broker asked this agent to link later");
                // A little past the slot, never before it.
                let jitter = rand::rng().random_range(0..=(wait.as_millis() as u64 / 20).min(100));
                return Ended::Later(wait + Duration::from_millis(jitter));
            }
            let body = response
                .body()
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default();
            return Ended::Lost(format!(
                "broker refused the link with HTTP {}: {body}",
                response.status()
            ));
        }
        Err(e) => {
            // A certificate the agent does not trust, or the wrong scheme, said so plainly.
            return Ended::Lost(
                config
                    .tls
                    .explain(url, &e)
                    .unwrap_or_else(|| format!("cannot reach the broker at {url}: {e}")),
            );
        }
    };
    config.tls.warn_if_insecure(url);
    let hello = AgentMessage::Hello(Hello {
        protocol: PROTOCOL_VERSION,
        cluster_id: config.cluster_id.clone(),
        agent_version: kubeline_shared::VERSION.to_owned(),
        kubernetes_version: executor.kubernetes_version().await.unwrap_or_default(),
        commands: command::SUPPORTED_COMMANDS
            .iter()
            .map(|c| (*c).to_owned())
            .collect(),
        labels: config.labels.clone(),
    });
    if let Err(e) = ws.send(to_frame(&hello)).await {
        return Ended::Lost(format!("cannot send hello: {e}"));
    }
    let welcome = match tokio::time::timeout(WELCOME_TIMEOUT, ws.next()).await {
        Err(_) => return Ended::Lost("no welcome from the broker within 10s".into()),
        Ok(None) => return Ended::Lost("broker closed the link before welcoming it".into()),
        Ok(Some(Err(e))) => return Ended::Lost(format!("link error before welcome: {e}")),
        Ok(Some(Ok(Message::Close(frame)))) => return closed(frame),
        Ok(Some(Ok(Message::Text(text)))) => match serde_json::from_str::<BrokerMessage>(&text) {
            Ok(BrokerMessage::Welcome(w)) => w,
            Ok(other) => return Ended::Lost(format!("expected a welcome, got {other:?}")),
            Err(e) => return Ended::Lost(format!("unreadable welcome: {e}")),
        },
        Ok(Some(Ok(_))) => return Ended::Lost("expected a welcome text frame".into()),
    };
    let linked_at = Instant::now();
    info!(broker_id = %welcome.broker_id, cluster = %config.cluster_id, "linked to broker");
    metrics::link_connected(true);
    let silence_limit = Duration::from_millis(welcome.ping_interval_ms.max(100) * 3);
    let ended = serve(ws, silence_limit, executor, commands, shutdown).await;
    metrics::link_connected(false);
    backoff.link_ended(linked_at.elapsed());
    ended
}

/// Serves a welcomed link until it ends: answers pings, runs what the broker sends, sends the
/// output back, and declares the link dead after `silence_limit` without a frame. Generic over
/// the socket so that tests drive it with channels and a paused clock.
async fn serve<S>(
    ws: S,
    silence_limit: Duration,
    executor: &Executor,
    commands: &Commands,
    shutdown: &CancellationToken,
) -> Ended
where
    S: futures::Stream<Item = Result<Message, WsError>>
        + futures::Sink<Message, Error = WsError>
        + Send
        + 'static,
{
    let (mut sink, stream) = ws.split();
    let mut stream = std::pin::pin!(stream);
    let (out_tx, mut out_rx) = mpsc::channel::<AgentMessage>(256);
    let writer = tokio::spawn(async move {
        while let Some(msg) = out_rx.recv().await {
            if sink.send(to_frame(&msg)).await.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });
    let running: Running = Arc::default();
    let mut last_heard = tokio::time::Instant::now();
    let mut watchdog = tokio::time::interval(silence_limit / 3);
    let ended = loop {
        tokio::select! {
            () = shutdown.cancelled() => break Ended::Shutdown,
            _ = watchdog.tick() => {
                if last_heard.elapsed() > silence_limit {
                    break Ended::Lost(format!("broker silent for {}s", last_heard.elapsed().as_secs()));
                }
            }
            frame = stream.next() => {
                let text = match frame {
                    None => break Ended::Lost("broker closed the connection".into()),
                    Some(Err(e)) => break Ended::Lost(format!("link error: {e}")),
                    Some(Ok(Message::Close(frame))) => break closed(frame),
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(_)) => { last_heard = tokio::time::Instant::now(); continue; }
                };
                last_heard = tokio::time::Instant::now();
                match serde_json::from_str::<BrokerMessage>(&text) {
                    Ok(BrokerMessage::Ping(p)) => {
                        let _ = out_tx.send(AgentMessage::Pong(Pong { seq: p.seq })).await;
                    }
                    Ok(BrokerMessage::Execute(cmd)) => {
                        spawn_command(cmd, executor.clone(), commands, out_tx.clone(), running.clone());
                    }
                    Ok(BrokerMessage::Cancel(c)) => {
                        // Under the registry's lock: a command that has not removed itself yet
                        // will see that it was cancelled and send nothing more.
                        if let Some(task) = running.lock().unwrap_or_else(|e| e.into_inner()).remove(&c.result_id) {
                            info!(result_id = %c.result_id, "command cancelled by the broker");
                            task.abort();
                        }
                    }
                    Ok(BrokerMessage::Reconnect(r)) => {
                        info!(after_ms = r.after_ms, reason = %r.reason, "broker asked to reconnect later");
                        break Ended::Later(Duration::from_millis(r.after_ms));
                    }
                    Ok(BrokerMessage::Welcome(_)) => debug!("ignoring a second welcome"),
                    Err(e) => warn!(error = %e, "ignoring an unreadable frame"),
                }
            }
        }
    };
    // Commands of a lost link cannot report back on it; the broker has already failed them.
    for (_, task) in running.lock().unwrap_or_else(|e| e.into_inner()).drain() {
        task.abort();
    }
    drop(out_tx);
    let _ = tokio::time::timeout(Duration::from_secs(1), writer).await;
    ended
}

/// The wait a refusing broker asked for: a 503 or 429 whose body's `details.retry_after_ms`
/// (exact) or `Retry-After` header (whole seconds) names it.
fn advised_wait(
    response: &tokio_tungstenite::tungstenite::http::Response<Option<Vec<u8>>>,
) -> Option<Duration> {
    let status = response.status().as_u16();
    if status != 503 && status != 429 {
        return None;
    }
    let from_body = response
        .body()
        .as_deref()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(b).ok())
        .and_then(|v| v["details"]["retry_after_ms"].as_u64())
        .map(Duration::from_millis);
    let from_header = || {
        response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs)
    };
    from_body.or_else(from_header)
}

fn closed(frame: Option<tokio_tungstenite::tungstenite::protocol::CloseFrame>) -> Ended {
    match frame {
        Some(f) if f.code == CloseCode::from(CLOSE_UNAUTHORIZED) => {
            error!(reason = %f.reason, "broker refused this agent's token");
            Ended::Lost(format!("token refused: {}", f.reason))
        }
        Some(f) => Ended::Lost(format!(
            "broker closed the link ({}): {}",
            u16::from(f.code),
            f.reason
        )),
        None => Ended::Lost("broker closed the link".into()),
    }
}

fn to_frame(msg: &AgentMessage) -> Message {
    Message::Text(
        serde_json::to_string(msg)
            .expect("agent messages always serialize")
            .into(),
    )
}

/// The commands running on a link, by result id: what a `Cancel` aborts. A command removes
/// itself before it sends its `done`, and sends it only if it was still there (a `Cancel` that
/// came first took it out).
type Running = Arc<Mutex<HashMap<String, AbortHandle>>>;

/// Where commands run: a runtime of their own, at most `max_concurrency` one-shot commands and
/// `max_streams` streams at once.
pub struct Commands {
    runtime: Option<tokio::runtime::Runtime>,
    limit: Arc<Semaphore>,
    streams: Arc<Semaphore>,
    max_streams: usize,
}

impl Commands {
    /// Stack of each command thread: input-driven recursion is bounded far below this by
    /// `kubeline_shared::limits`; the rest is room for printing deep objects.
    const STACK_BYTES: usize = 8 * 1024 * 1024;

    /// A runtime with a worker per core; the two limits as `--max-concurrency` and
    /// `--max-streams`.
    pub fn new(max_concurrency: usize, max_streams: usize) -> std::io::Result<Self> {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("kubeline-command")
            .thread_stack_size(Self::STACK_BYTES)
            .enable_all()
            .build()?;
        Ok(Self {
            runtime: Some(runtime),
            limit: Arc::new(Semaphore::new(max_concurrency.max(1))),
            streams: Arc::new(Semaphore::new(max_streams.max(1))),
            max_streams: max_streams.max(1),
        })
    }

    fn handle(&self) -> &tokio::runtime::Handle {
        self.runtime
            .as_ref()
            .expect("the command runtime lives as long as Commands")
            .handle()
    }
}

impl Drop for Commands {
    fn drop(&mut self) {
        // Dropped from async code: a blocking shutdown would panic there.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

fn spawn_command(
    cmd: Execute,
    executor: Executor,
    commands: &Commands,
    out: mpsc::Sender<AgentMessage>,
    running: Running,
) {
    // The broker's span is the parent: the agent's records of the command join the caller's
    // trace. A broker that predates trace context sends none (the fields stay empty).
    let trace = cmd
        .trace
        .as_ref()
        .and_then(|t| TraceParent::parse(&t.traceparent));
    let span = info_span!(
        "command",
        result_id = %cmd.result_id,
        session_id = %cmd.session_id,
        correlation_id = %cmd.correlation_id,
        command_type = %cmd.command_type,
        trace_id = %trace.map(|t| t.trace_id_hex()).unwrap_or_default(),
        parent_span_id = %trace.map(|t| t.parent_id_hex()).unwrap_or_default(),
    );
    #[cfg(feature = "otlp")]
    if let Some(trace) = trace {
        otlp_parent(&span, trace);
    }
    let result_id = cmd.result_id.clone();
    let registry = running.clone();
    let limit = commands.limit.clone();
    let streams = (commands.streams.clone(), commands.max_streams);
    let label = metrics::command_label(&cmd.command_type);
    let counted = metrics::command_started();
    let received = Instant::now();
    // The registry stays locked until the task is in it, so the task cannot look for itself
    // (at its end) before it is there.
    let mut registered = running.lock().unwrap_or_else(|e| e.into_inner());
    let task = commands.handle().spawn(
        async move {
            let _counted = counted;
            let done = if cmd.stream {
                run_stream(&cmd, &executor, &streams, &out).await
            } else {
                run_command(&cmd, &executor, &limit, &out).await
            };
            metrics::command_done(label, &done.status, received.elapsed());
            let still_wanted = registry
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&cmd.result_id)
                .is_some();
            if still_wanted {
                let _ = out.send(AgentMessage::Done(done)).await;
            }
        }
        .instrument(span),
    );
    registered.insert(result_id, task.abort_handle());
}

/// With OTLP export, the exported `command` span is the child of the broker's `execute` span.
#[cfg(feature = "otlp")]
fn otlp_parent(span: &tracing::Span, trace: TraceParent) {
    use opentelemetry::trace::{
        SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState,
    };
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let remote = SpanContext::new(
        TraceId::from_bytes(trace.trace_id.to_be_bytes()),
        SpanId::from_bytes(trace.parent_id.to_be_bytes()),
        TraceFlags::new(trace.flags),
        true,
        TraceState::default(),
    );
    // Fails only when no OTLP layer is installed (no --otlp-endpoint): nothing to parent.
    let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(remote));
}

/// Runs one command under its deadline and streams its output; returns its end.
/// The broker checked the command already; the agent checks again with the same parser
/// (`command::parse`, or `parse_stream` for a stream) so a compromised or buggy broker still
/// cannot make it run anything else. A refusal is what kubectl would print.
fn parse_or_refuse(
    cmd: &Execute,
    parse: fn(&str, &[String]) -> Result<command::Command, command::CommandError>,
) -> Result<command::Command, String> {
    parse(&cmd.command_type, &cmd.args).map_err(|e| {
        warn!(error = %e, stream = cmd.stream, "refusing command");
        e.kubectl_error
            .clone()
            .unwrap_or_else(|| format!("error: {e}"))
    })
}

/// A command's `done`, its time counted from `started`.
fn end(
    cmd: &Execute,
    started: Instant,
    status: ResultStatus,
    exit_code: i32,
    error: Option<String>,
    truncated: Option<Truncation>,
) -> Done {
    Done {
        result_id: cmd.result_id.clone(),
        status,
        exit_code,
        error,
        execution_time_ms: started.elapsed().as_millis() as u64,
        truncated,
    }
}

async fn run_command(
    cmd: &Execute,
    executor: &Executor,
    limit: &Semaphore,
    out: &mpsc::Sender<AgentMessage>,
) -> Done {
    let started = Instant::now();
    let deadline = started + Duration::from_millis(cmd.timeout_ms);
    let done = |status, exit_code, error, truncated| {
        end(cmd, started, status, exit_code, error, truncated)
    };
    let parsed = match parse_or_refuse(cmd, command::parse) {
        Ok(parsed) => parsed,
        Err(stderr) => return done(ResultStatus::Failed, 1, Some(stderr), None),
    };
    info!(args = ?cmd.args, "running command");
    let run = async {
        let _permit = limit
            .acquire()
            .await
            .expect("the semaphore is never closed");
        panics_contained(executor.run(&parsed)).await
    };
    let outcome: Outcome = match tokio::time::timeout_at(deadline.into(), run).await {
        Ok(outcome) => outcome,
        Err(_) => {
            warn!(timeout_ms = cmd.timeout_ms, "command timed out");
            return done(
                ResultStatus::Timeout,
                124,
                Some(format!(
                    "the command did not finish within its timeout of {:.1}s",
                    cmd.timeout_ms as f64 / 1000.0
                )),
                None,
            );
        }
    };
    let budget = cmd.max_output_bytes as usize;
    let (kept, omitted) = cut(&outcome.output, budget);
    for chunk in sink::pieces(kept, MAX_CHUNK_BYTES) {
        let msg = AgentMessage::Output(OutputChunk {
            result_id: cmd.result_id.clone(),
            data: chunk.to_owned(),
        });
        if out.send(msg).await.is_err() {
            break;
        }
    }
    let truncated = (omitted > 0).then_some(Truncation {
        omitted_bytes: omitted as u64,
        limit_bytes: cmd.max_output_bytes,
    });
    let error = outcome.error.map(cut_error);
    let status = if outcome.exit_code == 0 {
        ResultStatus::Completed
    } else {
        ResultStatus::Failed
    };
    info!(
        exit_code = outcome.exit_code,
        ms = started.elapsed().as_millis() as u64,
        "command finished"
    );
    done(status, outcome.exit_code, error, truncated)
}

/// Runs one stream under its deadline, its output sent as it is produced; returns its end.
async fn run_stream(
    cmd: &Execute,
    executor: &Executor,
    (streams, max_streams): &(Arc<Semaphore>, usize),
    out: &mpsc::Sender<AgentMessage>,
) -> Done {
    let started = Instant::now();
    let deadline = started + Duration::from_millis(cmd.timeout_ms);
    let done = |status, exit_code, error, truncated| {
        end(cmd, started, status, exit_code, error, truncated)
    };
    let parsed = match parse_or_refuse(cmd, command::parse_stream) {
        Ok(parsed) => parsed,
        Err(stderr) => return done(ResultStatus::Failed, 1, Some(stderr), None),
    };
    let Ok(_slot) = streams.clone().try_acquire_owned() else {
        warn!(max_streams, "refusing stream: too many streams");
        return done(
            ResultStatus::Failed,
            1,
            Some(format!(
                "error: this agent already runs {max_streams} streams, its limit \
                 (--max-streams); end one or try again later\n"
            )),
            None,
        );
    };
    info!(args = ?cmd.args, "running stream");
    let (sink, mut pieces) = Sink::channel();
    let work = async {
        let command = panics_contained(executor.stream(&parsed, sink));
        let forwarding = forward(&cmd.result_id, &mut pieces, cmd.max_output_bytes, out);
        tokio::pin!(command, forwarding);
        tokio::select! {
            outcome = &mut command => (Some(outcome), forwarding.await),
            forwarded = &mut forwarding => match forwarded {
                // The command dropped its sink: it is returning.
                Forwarded::Ended => (Some(command.await), forwarded),
                // The budget is spent or the link is gone: stop the command.
                stopped => (None, stopped),
            },
        }
    };
    let (outcome, forwarded) = match tokio::time::timeout_at(deadline.into(), work).await {
        Ok(ended) => ended,
        Err(_) => {
            info!(timeout_ms = cmd.timeout_ms, "stream reached its lifetime");
            return done(
                ResultStatus::Timeout,
                124,
                Some(format!(
                    "the stream reached its lifetime of {:.1}s (its timeout) and was stopped",
                    cmd.timeout_ms as f64 / 1000.0
                )),
                None,
            );
        }
    };
    let truncated = match forwarded {
        Forwarded::Truncated { omitted } => Some(Truncation {
            omitted_bytes: omitted,
            limit_bytes: cmd.max_output_bytes,
        }),
        Forwarded::Ended | Forwarded::LinkGone => None,
    };
    info!(
        ms = started.elapsed().as_millis() as u64,
        truncated = truncated.is_some(),
        "stream ended"
    );
    match outcome {
        Some(outcome) => {
            let status = if outcome.exit_code == 0 {
                ResultStatus::Completed
            } else {
                ResultStatus::Failed
            };
            done(
                status,
                outcome.exit_code,
                outcome.error.map(cut_error),
                truncated,
            )
        }
        // Stopped at its budget (or the link went away): what it printed is what it printed.
        None => done(ResultStatus::Completed, 0, None, truncated),
    }
}

/// How forwarding a stream's output ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Forwarded {
    /// The command dropped its sink: everything it wrote was sent.
    Ended,
    /// The output budget was reached; `omitted` bytes written were not sent.
    Truncated { omitted: u64 },
    /// The link's writer is gone.
    LinkGone,
}

/// Sends a stream's pieces as `output` frames as they come: whatever is already waiting goes
/// in the same frame (up to [`MAX_CHUNK_BYTES`]), nothing waits for more. Counts them against
/// `budget`, cutting the last frame on a character boundary.
async fn forward(
    result_id: &str,
    pieces: &mut mpsc::Receiver<String>,
    budget: u64,
    out: &mpsc::Sender<AgentMessage>,
) -> Forwarded {
    let mut sent: u64 = 0;
    let mut carried: Option<String> = None;
    loop {
        let mut frame = match carried.take() {
            Some(piece) => piece,
            None => match pieces.recv().await {
                Some(piece) => piece,
                None => return Forwarded::Ended,
            },
        };
        while frame.len() < MAX_CHUNK_BYTES {
            match pieces.try_recv() {
                Ok(piece) if frame.len() + piece.len() <= MAX_CHUNK_BYTES => frame.push_str(&piece),
                Ok(piece) => {
                    carried = Some(piece);
                    break;
                }
                Err(_) => break,
            }
        }
        let room = usize::try_from(budget.saturating_sub(sent)).unwrap_or(usize::MAX);
        if frame.len() > room {
            let kept = prefix_within(&frame, room);
            let mut omitted = (frame.len() - kept.len()) as u64;
            omitted += carried.as_ref().map_or(0, |p| p.len() as u64);
            while let Ok(piece) = pieces.try_recv() {
                omitted += piece.len() as u64;
            }
            if !kept.is_empty() {
                let _ = out.send(output(result_id, kept.to_owned())).await;
            }
            return Forwarded::Truncated { omitted };
        }
        sent += frame.len() as u64;
        if out.send(output(result_id, frame)).await.is_err() {
            return Forwarded::LinkGone;
        }
    }
}

fn output(result_id: &str, data: String) -> AgentMessage {
    AgentMessage::Output(OutputChunk {
        result_id: result_id.to_owned(),
        data,
    })
}

/// Runs a command's future so that a panic in it ends that command with a failed result, never
/// the agent: the other commands and the link keep going. (Stack exhaustion cannot be caught;
/// the parser's and the evaluators' depth limits keep recursion far below the stack instead.)
async fn panics_contained(run: impl Future<Output = Outcome>) -> Outcome {
    match AssertUnwindSafe(run).catch_unwind().await {
        Ok(outcome) => outcome,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            error!(panic = %what, "command panicked; the agent keeps serving");
            Outcome::internal_error(&what)
        }
    }
}

/// Standard error kept within [`MAX_ERROR_BYTES`]; a cut one ends with a line that says how
/// much was left out and why, so the result never looks complete when it is not.
fn cut_error(e: String) -> String {
    let (kept, omitted) = cut(&e, MAX_ERROR_BYTES);
    if omitted == 0 {
        return e;
    }
    format!(
        "{kept}\n[kubeline: {omitted} more bytes of error output omitted; at most \
         {MAX_ERROR_BYTES} bytes of error output are kept]\n"
    )
}

/// The longest prefix of `s` within `budget` bytes that ends on a character boundary, and how
/// many bytes were left out.
fn cut(s: &str, budget: usize) -> (&str, usize) {
    let kept = prefix_within(s, budget);
    (kept, s.len() - kept.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::channel::mpsc as fmpsc;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    /// A link made of two channels: what the test sends arrives as the broker's frames, what the
    /// agent sends comes out of the other end.
    struct Duplex {
        from_broker: fmpsc::UnboundedReceiver<Result<Message, WsError>>,
        to_broker: fmpsc::UnboundedSender<Message>,
    }

    impl futures::Stream for Duplex {
        type Item = Result<Message, WsError>;
        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            Pin::new(&mut self.from_broker).poll_next(cx)
        }
    }

    impl futures::Sink<Message> for Duplex {
        type Error = WsError;
        fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), WsError>> {
            Poll::Ready(Ok(()))
        }
        fn start_send(self: Pin<&mut Self>, item: Message) -> Result<(), WsError> {
            self.to_broker
                .unbounded_send(item)
                .map_err(|_| WsError::ConnectionClosed)
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), WsError>> {
            Poll::Ready(Ok(()))
        }
        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), WsError>> {
            Poll::Ready(Ok(()))
        }
    }

    struct Harness {
        broker: fmpsc::UnboundedSender<Result<Message, WsError>>,
        agent: fmpsc::UnboundedReceiver<Message>,
        link: tokio::task::JoinHandle<Ended>,
        shutdown: CancellationToken,
    }

    /// A welcomed link served on channels; its Kubernetes client points nowhere.
    fn linked(silence_limit: Duration) -> Harness {
        let (broker, from_broker) = fmpsc::unbounded();
        let (to_broker, agent) = fmpsc::unbounded();
        let config = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
        let executor = Executor::new(kube::Client::try_from(config).unwrap());
        let shutdown = CancellationToken::new();
        let token = shutdown.clone();
        let link = tokio::spawn(async move {
            let commands = Commands::new(1, 1).unwrap();
            let ws = Duplex {
                from_broker,
                to_broker,
            };
            serve(ws, silence_limit, &executor, &commands, &token).await
        });
        Harness {
            broker,
            agent,
            link,
            shutdown,
        }
    }

    impl Harness {
        fn send(&self, msg: &BrokerMessage) {
            let text = serde_json::to_string(msg).unwrap();
            self.broker
                .unbounded_send(Ok(Message::Text(text.into())))
                .unwrap();
        }

        async fn next(&mut self) -> AgentMessage {
            match self.agent.next().await {
                Some(Message::Text(t)) => serde_json::from_str(&t).unwrap(),
                other => panic!("expected a frame from the agent, got {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn pings_are_answered_and_a_silent_broker_ends_the_link() {
        let limit = Duration::from_millis(600);
        let mut h = linked(limit);
        let started = tokio::time::Instant::now();
        h.send(&BrokerMessage::Ping(kubeline_shared::protocol::Ping {
            seq: 7,
        }));
        assert_eq!(h.next().await, AgentMessage::Pong(Pong { seq: 7 }));
        // Nothing more from the broker: the link ends once the limit has passed.
        match h.link.await.unwrap() {
            Ended::Lost(reason) => assert!(reason.contains("broker silent"), "{reason}"),
            other => panic!("{other:?}"),
        }
        assert!(started.elapsed() >= limit, "{:?}", started.elapsed());
    }

    #[tokio::test]
    async fn a_reconnect_names_the_wait_and_shutdown_ends_at_once() {
        let h = linked(Duration::from_secs(15));
        h.send(&BrokerMessage::Reconnect(
            kubeline_shared::protocol::Reconnect {
                after_ms: 1234,
                reason: "broker shutting down".into(),
            },
        ));
        match h.link.await.unwrap() {
            Ended::Later(d) => assert_eq!(d, Duration::from_millis(1234)),
            other => panic!("{other:?}"),
        }
        let h = linked(Duration::from_secs(15));
        h.shutdown.cancel();
        assert!(matches!(h.link.await.unwrap(), Ended::Shutdown));
    }

    #[tokio::test]
    async fn a_revoked_token_is_said_plainly() {
        let h = linked(Duration::from_secs(15));
        let frame = tokio_tungstenite::tungstenite::protocol::CloseFrame {
            code: CloseCode::from(CLOSE_UNAUTHORIZED),
            reason: "agent token revoked".into(),
        };
        h.broker
            .unbounded_send(Ok(Message::Close(Some(frame))))
            .unwrap();
        match h.link.await.unwrap() {
            Ended::Lost(reason) => assert_eq!(reason, "token refused: agent token revoked"),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn a_command_the_agent_refuses_is_answered_on_the_link() {
        let mut h = linked(Duration::from_secs(60));
        // Unknown ids are ignored; a command outside the read-only set is refused by the agent's
        // own parser (the broker is not trusted to have checked it), without the API server.
        h.send(&BrokerMessage::Cancel(kubeline_shared::protocol::Cancel {
            result_id: "nobody".into(),
        }));
        h.send(&BrokerMessage::Execute(Execute {
            result_id: "res_1".into(),
            session_id: "sess_1".into(),
            command_type: "delete".into(),
            args: vec!["pod".into(), "x".into()],
            timeout_ms: 5_000,
            max_output_bytes: 1024,
            correlation_id: "c".into(),
            trace: None,
            stream: false,
        }));
        match h.next().await {
            AgentMessage::Done(done) => {
                assert_eq!(done.result_id, "res_1");
                assert_eq!(done.status, ResultStatus::Failed);
                assert!(done.error.is_some_and(|e| !e.is_empty()));
            }
            other => panic!("expected done, got {other:?}"),
        }
        h.shutdown.cancel();
        assert!(matches!(h.link.await.unwrap(), Ended::Shutdown));
    }

    #[test]
    fn the_backoff_starts_over_only_after_a_healthy_link() {
        let mut backoff = Backoff::default();
        for _ in 0..4 {
            backoff.next_delay();
        }
        let grown = backoff.next;
        // A link that was welcomed and dropped at once does not reset it.
        backoff.link_ended(Duration::from_secs(3));
        assert_eq!(backoff.next, grown);
        backoff.link_ended(HEALTHY_LINK);
        assert_eq!(backoff.next, BACKOFF_MIN);
    }

    #[test]
    fn a_paced_broker_names_the_wait() {
        use tokio_tungstenite::tungstenite::http::Response;
        let body = br#"{"error":"service_unavailable","message":"m","details":{"code":"link_admissions_paced","retry_after_ms":2345,"retry_after":3}}"#;
        let paced = Response::builder()
            .status(503)
            .header("retry-after", "3")
            .body(Some(body.to_vec()))
            .unwrap();
        assert_eq!(advised_wait(&paced), Some(Duration::from_millis(2345)));
        let header_only = Response::builder()
            .status(503)
            .header("retry-after", "4")
            .body(None)
            .unwrap();
        assert_eq!(advised_wait(&header_only), Some(Duration::from_secs(4)));
        let refused = Response::builder()
            .status(401)
            .header("retry-after", "4")
            .body(None)
            .unwrap();
        assert_eq!(advised_wait(&refused), None);
        let plain = Response::builder().status(503).body(None).unwrap();
        assert_eq!(advised_wait(&plain), None);
    }

    #[tokio::test]
    async fn a_panicking_command_fails_alone() {
        let panicking = async {
            let v: Vec<u8> = Vec::new();
            let i = std::hint::black_box(usize::MAX / 2);
            let _ = v[i];
            Outcome::failed(String::new())
        };
        let outcome = panics_contained(panicking).await;
        assert_eq!(outcome.exit_code, 1);
        let error = outcome.error.unwrap_or_default();
        assert!(error.contains("kubeline agent internal error"), "{error}");
        assert!(error.contains("index out of bounds"), "{error}");
        // The next command on the same runtime runs normally.
        let fine = panics_contained(async { Outcome::failed("x".into()) }).await;
        assert_eq!(fine.error.as_deref(), Some("x\n"));
    }

    fn data(msg: AgentMessage) -> String {
        match msg {
            AgentMessage::Output(o) => {
                assert_eq!(o.result_id, "r");
                o.data
            }
            other => panic!("not output: {other:?}"),
        }
    }

    #[tokio::test]
    async fn stream_output_leaves_at_once_and_what_waits_goes_together() {
        let (pieces_tx, mut pieces) = mpsc::channel::<String>(8);
        let (out, mut frames) = mpsc::channel::<AgentMessage>(8);
        let forwarding =
            tokio::spawn(async move { forward("r", &mut pieces, u64::MAX, &out).await });
        // A lone line is sent as it is, without waiting for more.
        pieces_tx.send("one\n".into()).await.unwrap();
        let first = tokio::time::timeout(Duration::from_secs(1), frames.recv()).await;
        assert_eq!(data(first.unwrap().unwrap()), "one\n");
        // What is already waiting goes in one frame, up to MAX_CHUNK_BYTES.
        let (pieces_tx2, mut pieces2) = mpsc::channel::<String>(8);
        let (out2, mut frames2) = mpsc::channel::<AgentMessage>(8);
        for piece in ["a\n", "b\n", &"x".repeat(MAX_CHUNK_BYTES - 4), "c\n"] {
            pieces_tx2.send(piece.to_string()).await.unwrap();
        }
        drop(pieces_tx2);
        let ended = forward("r", &mut pieces2, u64::MAX, &out2).await;
        assert_eq!(ended, Forwarded::Ended);
        let first = data(frames2.recv().await.unwrap());
        assert_eq!(first.len(), MAX_CHUNK_BYTES);
        assert!(first.starts_with("a\nb\nxx"));
        assert_eq!(data(frames2.recv().await.unwrap()), "c\n");
        drop(pieces_tx);
        assert_eq!(forwarding.await.unwrap(), Forwarded::Ended);
    }

    #[tokio::test]
    async fn the_budget_cuts_stream_output_on_a_character_boundary() {
        let (pieces_tx, mut pieces) = mpsc::channel::<String>(8);
        let (out, mut frames) = mpsc::channel::<AgentMessage>(8);
        pieces_tx.send("héllo\n".into()).await.unwrap();
        pieces_tx.send("more\n".into()).await.unwrap();
        // 2 bytes fit: "h", then "é" would not.
        let ended = forward("r", &mut pieces, 2, &out).await;
        assert_eq!(ended, Forwarded::Truncated { omitted: 11 });
        assert_eq!(data(frames.recv().await.unwrap()), "h");
        // Nothing is left for a budget of zero either.
        let (pieces_tx, mut pieces) = mpsc::channel::<String>(8);
        pieces_tx.send("x".into()).await.unwrap();
        assert_eq!(
            forward("r", &mut pieces, 0, &out).await,
            Forwarded::Truncated { omitted: 1 }
        );
        drop(out);
        assert!(frames.recv().await.is_none());
    }

    #[test]
    fn backoff_grows_to_the_cap_with_jitter_and_resets() {
        let mut b = Backoff::default();
        for _ in 0..20 {
            assert!(b.next_delay() <= BACKOFF_MAX);
        }
        assert_eq!(b.next, BACKOFF_MAX);
        b.reset();
        assert!(b.next_delay() <= BACKOFF_MIN);
    }

    #[test]
    fn long_error_output_says_it_was_cut() {
        assert_eq!(cut_error("short\n".into()), "short\n");
        let long = "é".repeat(MAX_ERROR_BYTES);
        let cut = cut_error(long);
        assert!(cut.len() < MAX_ERROR_BYTES + 200);
        assert!(
            cut.ends_with(&format!(
                "[kubeline: {} more bytes of error output omitted; at most {MAX_ERROR_BYTES} \
                 bytes of error output are kept]\n",
                MAX_ERROR_BYTES
            )),
            "{}",
            &cut[cut.len() - 200..]
        );
    }

    #[test]
    fn cut_respects_char_boundaries() {
        assert_eq!(cut("héllo", 2), ("h", 5));
        assert_eq!(cut("abc", 10), ("abc", 0));
    }

    #[test]
    fn connect_url_maps_schemes() {
        let mut c = LinkConfig {
            broker_url: "http://b:8080/".into(),
            cluster_id: "c".into(),
            token: "t".into(),
            max_concurrency: 4,
            max_streams: 4,
            tls: crate::tls::ClientTls::default(),
            labels: Default::default(),
        };
        assert_eq!(c.connect_url().unwrap(), "ws://b:8080/agent/v1/connect");
        c.broker_url = "https://b".into();
        assert_eq!(c.connect_url().unwrap(), "wss://b/agent/v1/connect");
        c.broker_url = "b:8080".into();
        assert!(c.connect_url().is_err());
    }
}
