//! Broker capacity, isolated: how many `POST /debug/execute` one broker process serves, and what
//! each costs it, with nothing else in the way.
//!
//! Four kinds of process, each its own (this binary runs as any of them, chosen by
//! `KUBELINE_CAPACITY_ROLE`; the driver starts the others):
//!
//! - the **broker**: `Broker::bind` + `serve` on a multi-threaded runtime with `kubeline broker`'s
//!   log lines (`info`, plain, to a file), built with the bench (= release) profile;
//! - `redis-server` on a free port, without persistence (for the Redis rows);
//! - the **instant agent**: N agent links that authenticate as real agents do (agent token,
//!   `X-Kubeline-Cluster`, `hello`), answer every `execute` at once with one `output` chunk (a
//!   small `get pods` table) and `done`, and every `ping` with `pong`: no API server anywhere;
//! - the **load generator**: C callers, each on its own HTTP/1.1 keep-alive connection (hyper),
//!   each with its own session, sending `get pods` executes back to back for a warm-up and then
//!   the measured window.
//!
//! For each store × concurrency the driver prints executes/s, latency (p50, p99, max), errors,
//! the CPU each process spent per execute (from `/proc/PID/stat`, utime + stime, over the
//! measured window), the broker's store operations per execute (from its `/metrics`: one
//! operation is one round trip), and Redis's commands and network bytes per execute (`INFO
//! commandstats`, `INFO stats`), with the load average before and after. The broker's limits are
//! raised for it (printed): rate limits at their maximum (60,000/min per key and class) with
//! the callers spread over 32 keys, so every request still pays for its rate-limit step, and
//! in-flight and queue limits above the concurrency.
//!
//! ```text
//! cargo bench -p kubeline-broker --bench capacity      # redis, embedded, floor × 64, 256
//! CAPACITY_SECONDS=20 CAPACITY_CONCURRENCY=64 CAPACITY_STORES=redis \
//!   cargo bench -p kubeline-broker --bench capacity
//! ```
//!
//! The `floor` rows put in the broker's place a relay that does only the transport any
//! broker of this design must do (HTTP request and JSON in, `execute` frame out, the agent's
//! frames in, JSON answer out; no authentication, rate limit, session, store, audit, log line
//! or metric), with the broker's libraries: the floor of CPU per execute and the ceiling of
//! executes/s on this machine, beside the same load generator and agent.
//!
//! Knobs (environment): `CAPACITY_SECONDS` (measured window, default 10), `CAPACITY_WARMUP`
//! (default 2), `CAPACITY_CONCURRENCY` (default `64,256`), `CAPACITY_STORES` (default
//! `redis,embedded,floor`), `CAPACITY_LINKS` (agent links = clusters, default 4), `CAPACITY_KEEP_LOGS`
//! (keep the processes' logs, printed at the end), `CAPACITY_PERF` (`flat` or `dwarf`: `perf
//! record` the broker during each window, into the log directory; implies keeping it),
//! `CAPACITY_BROKER_BIN` (run the broker from another build of this bench, e.g. a copy made
//! before a change: A/B under the same load generator), `CAPACITY_RATE` (executes/s in all, paced, instead of as many as the callers can: CPU per
//! execute compared at one rate is fair between two builds on a busy machine, where the
//! throughput itself is whatever the other processes leave).
//!
//! Under `cargo test` (no `--bench`) it runs as a smoke test of a few seconds: both stores and
//! the floor at concurrency 8 for 2 s; any failed request, or any execute answered a number of times other
//! than once by the agent, fails it.
//!
//! Needs `redis-server` on PATH.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{FutureExt, SinkExt, StreamExt};
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use kubeline_shared::api::ResultStatus;
use kubeline_shared::protocol::{
    AgentMessage, BrokerMessage, CONNECT_PATH, Done, Hello, OutputChunk, PROTOCOL_VERSION, Pong,
};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// Which process this is.
const ROLE: &str = "KUBELINE_CAPACITY_ROLE";
/// The admin key the driver reads `/metrics` with.
const ADMIN_KEY: &str = "capacity-admin";
/// Callers' keys: requests go round them, so that the largest per-key rate limit (60,000 a
/// minute) is not what caps the run, while every request still takes its rate-limit step.
const CALLER_KEYS: usize = 32;
/// What the instant agent answers to every command: a small `get pods` table.
const GET_PODS: &str = "NAME                        READY   STATUS    RESTARTS   AGE\n\
web-7d4b9c8f6d-2xkqp        1/1     Running   0          3d2h\n\
web-7d4b9c8f6d-9lmvw        1/1     Running   0          3d2h\n\
worker-5c6f8d9b7-q4t8z      1/1     Running   1          26h\n";

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

fn cluster(i: usize) -> String {
    format!("cap-{i}")
}

fn agent_token(i: usize) -> String {
    format!("capacity-agent-token-{i}")
}

fn caller_key(i: usize) -> String {
    format!("capacity-key-{}", i % CALLER_KEYS)
}

fn main() {
    match std::env::var(ROLE).as_deref() {
        Ok("broker") => broker::main(),
        Ok("agent") => agent::main(),
        Ok("load") => load::main(),
        Ok("floor") => floor::main(),
        _ => driver::main(),
    }
}

/// A small HTTP/1.1 client over one keep-alive connection.
struct Conn {
    host: String,
    sender: http1::SendRequest<Full<Bytes>>,
}

impl Conn {
    async fn open(addr: &str) -> Result<Self, String> {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect {addr}: {e}"))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let (sender, conn) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        tokio::spawn(conn);
        Ok(Self {
            host: addr.to_owned(),
            sender,
        })
    }

    /// Sends one request and reads the whole answer.
    async fn call(
        &mut self,
        method: &str,
        path: &str,
        key: &str,
        body: Option<Bytes>,
    ) -> Result<(u16, Bytes), String> {
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, &self.host)
            .header(hyper::header::AUTHORIZATION, format!("Bearer {key}"));
        if body.is_some() {
            request = request.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        let request = request
            .body(Full::new(body.unwrap_or_default()))
            .map_err(|e| e.to_string())?;
        self.sender.ready().await.map_err(|e| e.to_string())?;
        let answer = self
            .sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        let status = answer.status().as_u16();
        let body = answer
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok((status, body))
    }
}

// === the broker process ===

/// `kubeline`'s allocator, for every role of this binary (the broker's is what is measured).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

mod broker {
    use clap::Parser;
    use kubeline_broker::{Broker, BrokerArgs};

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        broker: BrokerArgs,
    }

    /// `kubeline broker`, as its `main` runs it: logs at `info` (plain lines on standard error,
    /// through `kubeline`'s log writer), the default multi-threaded runtime, until SIGTERM.
    pub fn main() {
        use tracing_subscriber::layer::SubscriberExt;
        use tracing_subscriber::util::SubscriberInitExt;

        let cli = Cli::parse();
        let (log, _flusher) = kubeline_broker::logging::stderr_layer(false);
        tracing_subscriber::registry()
            .with(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
            )
            .with(log)
            .init();
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(async {
                let broker = Broker::bind(&cli.broker).await.expect("broker starts");
                let mut term =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                        .expect("SIGTERM handler");
                broker
                    .serve(async move {
                        term.recv().await;
                    })
                    .await
                    .expect("broker serves");
            });
    }
}

// === the floor: a relay that does only what no broker can skip ===

mod floor {
    //! In the broker's place (`CAPACITY_STORES=floor`), a relay that does only what any broker
    //! of this design must do for an execute: read the caller's HTTP request and its JSON body,
    //! send the command on the cluster's agent link as an `execute` frame, read the agent's
    //! `output` and `done` frames, and answer the result as JSON — with the broker's own
    //! libraries (axum and its WebSocket, serde_json, jemalloc) on the same multi-threaded
    //! runtime. No authentication, rate limit, session, policy, store, audit, log line or
    //! metric. Its CPU per execute is the transport's floor on this machine, and its throughput
    //! the most one broker process could serve here beside this load generator and agent.

    use super::*;
    use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
    use axum::extract::{Json, State};
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::{IntoResponse, Response};
    use axum::routing::{get, post};
    use kubeline_shared::api::{CommandResult, ExecuteRequest};
    use kubeline_shared::protocol::Execute;
    use std::collections::HashMap;
    use std::sync::Mutex;
    use tokio::sync::{mpsc, oneshot};

    #[derive(Default)]
    struct Relay {
        /// Frames to send, by cluster.
        links: Mutex<HashMap<String, mpsc::UnboundedSender<String>>>,
        /// Callers waiting, by result id: the output so far and where the result goes.
        waiting: Mutex<HashMap<String, (String, oneshot::Sender<CommandResult>)>>,
    }

    /// Serves the relay on `--listen ADDR` until killed.
    pub fn main() {
        let args: Vec<String> = std::env::args().collect();
        let listen = args
            .iter()
            .position(|a| a == "--listen")
            .and_then(|i| args.get(i + 1))
            .expect("--listen ADDR")
            .clone();
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(async {
                let app = axum::Router::new()
                    .route("/debug/session", post(session))
                    .route("/debug/execute", post(execute))
                    .route("/clusters", get(clusters))
                    .route("/metrics", get(|| async { "" }))
                    .route(CONNECT_PATH, get(link))
                    .with_state(Arc::new(Relay::default()));
                let listener = tokio::net::TcpListener::bind(&listen).await.expect("bind");
                axum::serve(listener, app).await.expect("serve");
            });
    }

    async fn session() -> Response {
        let id = format!("sess_{}", uuid::Uuid::new_v4().simple());
        (StatusCode::CREATED, axum::Json(json!({ "session_id": id }))).into_response()
    }

    async fn clusters(State(relay): State<Arc<Relay>>) -> axum::Json<Value> {
        let linked = relay.links.lock().unwrap().len();
        let clusters: Vec<Value> = (0..linked)
            .map(|_| json!({ "status": "connected" }))
            .collect();
        axum::Json(json!({ "clusters": clusters }))
    }

    async fn execute(State(relay): State<Arc<Relay>>, Json(req): Json<ExecuteRequest>) -> Response {
        let (Some(cluster_id), Some(session_id), Some(command_type), Some(args)) =
            (req.cluster_id, req.session_id, req.command_type, req.args)
        else {
            return StatusCode::BAD_REQUEST.into_response();
        };
        let result_id = format!("res_{}", uuid::Uuid::new_v4().simple());
        let executed_at = chrono::Utc::now();
        let frame = serde_json::to_string(&BrokerMessage::Execute(Execute {
            result_id: result_id.clone(),
            session_id: session_id.clone(),
            command_type,
            args,
            timeout_ms: (req.timeout.unwrap_or(30.0) * 1000.0) as u64,
            max_output_bytes: req.max_output_bytes.unwrap_or(1 << 20),
            correlation_id: String::new(),
            trace: None,
            stream: false,
        }))
        .unwrap();
        let (tx, rx) = oneshot::channel();
        relay
            .waiting
            .lock()
            .unwrap()
            .insert(result_id.clone(), (String::new(), tx));
        let sent = relay
            .links
            .lock()
            .unwrap()
            .get(&cluster_id)
            .is_some_and(|link| link.send(frame).is_ok());
        if !sent {
            relay.waiting.lock().unwrap().remove(&result_id);
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
        match rx.await {
            Ok(mut result) => {
                result.session_id = session_id;
                result.cluster_id = cluster_id;
                result.executed_at = executed_at;
                axum::Json(result).into_response()
            }
            Err(_) => StatusCode::BAD_GATEWAY.into_response(),
        }
    }

    async fn link(
        State(relay): State<Arc<Relay>>,
        headers: HeaderMap,
        upgrade: WebSocketUpgrade,
    ) -> Response {
        let cluster = headers
            .get("x-kubeline-cluster")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        upgrade.on_upgrade(move |socket| serve_link(relay, cluster, socket))
    }

    /// One agent link: frames queued for it are sent (all that are waiting, then one flush, as
    /// the broker's link does); `output` and `done` frames are handed to their callers.
    async fn serve_link(relay: Arc<Relay>, cluster: String, mut socket: WebSocket) {
        let (tx, mut outbound) = mpsc::unbounded_channel();
        relay.links.lock().unwrap().insert(cluster, tx);
        loop {
            tokio::select! {
                frame = socket.recv() => {
                    let Some(Ok(WsMessage::Text(text))) = frame else { return };
                    match serde_json::from_str::<AgentMessage>(&text) {
                        Ok(AgentMessage::Output(chunk)) => {
                            if let Some((output, _)) =
                                relay.waiting.lock().unwrap().get_mut(&chunk.result_id)
                            {
                                output.push_str(&chunk.data);
                            }
                        }
                        Ok(AgentMessage::Done(done)) => {
                            let waiter = relay.waiting.lock().unwrap().remove(&done.result_id);
                            if let Some((output, tx)) = waiter {
                                let _ = tx.send(CommandResult {
                                    result_id: done.result_id,
                                    session_id: String::new(),
                                    cluster_id: String::new(),
                                    status: done.status,
                                    output,
                                    error: done.error,
                                    exit_code: Some(done.exit_code),
                                    execution_time_ms: done.execution_time_ms,
                                    executed_at: chrono::Utc::now(),
                                    correlation_id: String::new(),
                                    truncated: done.truncated,
                                    window: None,
                                });
                            }
                        }
                        _ => {}
                    }
                }
                frame = outbound.recv() => {
                    let Some(frame) = frame else { return };
                    if socket.feed(WsMessage::Text(frame.into())).await.is_err() {
                        return;
                    }
                    while let Ok(frame) = outbound.try_recv() {
                        if socket.feed(WsMessage::Text(frame.into())).await.is_err() {
                            return;
                        }
                    }
                    if socket.flush().await.is_err() {
                        return;
                    }
                }
            }
        }
    }
}

// === the instant agent ===

mod agent {
    use super::*;

    /// Links `CAPACITY_LINKS` agents to `CAPACITY_BROKER` and answers everything at once, until
    /// its standard input closes; then prints how many executes it answered.
    pub fn main() {
        let broker = std::env::var("CAPACITY_BROKER").expect("CAPACITY_BROKER");
        let links: usize = env_or("CAPACITY_LINKS", "1")
            .parse()
            .expect("CAPACITY_LINKS");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let answered = Arc::new(AtomicU64::new(0));
        runtime.block_on(async {
            let mut tasks = Vec::new();
            for i in 0..links {
                let (broker, answered) = (broker.clone(), answered.clone());
                tasks.push(tokio::spawn(async move {
                    if let Err(e) = serve(&broker, i, &answered).await {
                        eprintln!("link {i}: {e}");
                        // The instant agent's child process: a broken link fails the run now.
                        #[allow(clippy::disallowed_methods)]
                        std::process::exit(1);
                    }
                }));
            }
            println!("linked");
            // The driver closes our standard input when it is done with us.
            tokio::task::spawn_blocking(|| {
                let mut sink = String::new();
                while std::io::stdin().read_line(&mut sink).is_ok_and(|n| n > 0) {}
            })
            .await
            .unwrap();
            println!("answered {}", answered.load(Ordering::Relaxed));
        });
    }

    async fn serve(broker: &str, i: usize, answered: &AtomicU64) -> Result<(), String> {
        let mut request = format!("ws://{broker}{CONNECT_PATH}")
            .into_client_request()
            .map_err(|e| e.to_string())?;
        let headers = request.headers_mut();
        headers.insert(
            "authorization",
            format!("Bearer {}", agent_token(i)).parse().unwrap(),
        );
        headers.insert("x-kubeline-cluster", cluster(i).parse().unwrap());
        let (socket, _) = tokio_tungstenite::connect_async(request)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let _ = socket.get_ref().get_ref().set_nodelay(true);
        let (mut tx, mut rx) = socket.split();
        let hello = AgentMessage::Hello(Hello {
            protocol: PROTOCOL_VERSION,
            cluster_id: cluster(i),
            agent_version: "capacity-instant".into(),
            kubernetes_version: String::new(),
            commands: vec!["get".into()],
            labels: Default::default(),
        });
        tx.send(text(&hello)).await.map_err(|e| e.to_string())?;
        while let Some(frame) = rx.next().await {
            answer(frame.map_err(|e| e.to_string())?, &mut tx, answered).await?;
            // Everything that has arrived already is answered before one flush: one write for
            // a burst of commands, as a busy agent's link would do.
            while let Some(Some(frame)) = rx.next().now_or_never() {
                answer(frame.map_err(|e| e.to_string())?, &mut tx, answered).await?;
            }
            tx.flush().await.map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    async fn answer<S>(frame: Message, tx: &mut S, answered: &AtomicU64) -> Result<(), String>
    where
        S: futures::Sink<Message, Error = tokio_tungstenite::tungstenite::Error> + Unpin,
    {
        let Message::Text(frame) = frame else {
            return Ok(());
        };
        let message: BrokerMessage =
            serde_json::from_str(&frame).map_err(|e| format!("unreadable frame: {e}"))?;
        match message {
            BrokerMessage::Execute(command) => {
                let output = AgentMessage::Output(OutputChunk {
                    result_id: command.result_id.clone(),
                    data: GET_PODS.to_owned(),
                });
                let done = AgentMessage::Done(Done {
                    result_id: command.result_id,
                    status: ResultStatus::Completed,
                    exit_code: 0,
                    error: None,
                    execution_time_ms: 0,
                    truncated: None,
                });
                tx.feed(text(&output)).await.map_err(|e| e.to_string())?;
                tx.feed(text(&done)).await.map_err(|e| e.to_string())?;
                answered.fetch_add(1, Ordering::Relaxed);
            }
            BrokerMessage::Ping(ping) => {
                let pong = AgentMessage::Pong(Pong { seq: ping.seq });
                tx.feed(text(&pong)).await.map_err(|e| e.to_string())?;
            }
            BrokerMessage::Reconnect(r) => return Err(format!("told to reconnect: {}", r.reason)),
            BrokerMessage::Welcome(_) | BrokerMessage::Cancel(_) => {}
        }
        Ok(())
    }

    fn text(message: &AgentMessage) -> Message {
        Message::Text(serde_json::to_string(message).unwrap().into())
    }
}

// === the load generator ===

mod load {
    use super::*;

    /// What the load generator found, printed as one JSON line at the end.
    #[derive(serde::Serialize, serde::Deserialize)]
    pub struct Report {
        /// Executes answered 200 `completed` in the measured window.
        pub count: u64,
        /// Executes sent in all (warm-up included) and answered 200.
        pub total: u64,
        /// Failed executes (any other answer, or a transport error), warm-up included.
        pub errors: u64,
        /// The first few failures.
        pub samples: Vec<String>,
        /// The measured window, in seconds.
        pub seconds: f64,
        /// Latency in µs.
        pub p50: u64,
        pub p99: u64,
        pub max: u64,
    }

    /// Runs `CAPACITY_CALLERS` callers against `CAPACITY_BROKER`: a session each, then executes
    /// back to back, `CAPACITY_WARMUP` s unmeasured and `CAPACITY_SECONDS` s measured. Prints
    /// `measuring` and `measured` as the window opens and closes, then its [`Report`].
    pub fn main() {
        let broker = std::env::var("CAPACITY_BROKER").expect("CAPACITY_BROKER");
        let callers: usize = env_or("CAPACITY_CALLERS", "8").parse().unwrap();
        let links: usize = env_or("CAPACITY_LINKS", "1").parse().unwrap();
        let warmup: f64 = env_or("CAPACITY_WARMUP", "1").parse().unwrap();
        let seconds: f64 = env_or("CAPACITY_SECONDS", "2").parse().unwrap();
        let rate: f64 = env_or("CAPACITY_RATE", "0").parse().unwrap();
        // One thread: the callers mostly wait, and a single-threaded client spends the least
        // CPU per request (which it takes from the broker on a small machine).
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let report = runtime.block_on(run(broker, callers, links, warmup, seconds, rate));
        println!("{}", serde_json::to_string(&report).unwrap());
    }

    struct Shared {
        measuring: AtomicBool,
        stop: AtomicBool,
        total: AtomicU64,
        errors: AtomicU64,
        samples: std::sync::Mutex<Vec<String>>,
    }

    impl Shared {
        fn failed(&self, what: String) {
            self.errors.fetch_add(1, Ordering::Relaxed);
            let mut samples = self.samples.lock().unwrap();
            if samples.len() < 5 {
                samples.push(what);
            }
        }
    }

    async fn run(
        broker: String,
        callers: usize,
        links: usize,
        warmup: f64,
        seconds: f64,
        rate: f64,
    ) -> Report {
        let shared = Arc::new(Shared {
            measuring: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            total: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            samples: Default::default(),
        });
        // Every caller opens its connection and session first; the clock starts when all have.
        let mut ready = Vec::new();
        for i in 0..callers {
            let conn = Conn::open(&broker).await.expect("connect to the broker");
            // At a fixed total rate, each caller sends one execute per `callers / rate` seconds
            // (or back to back when an answer takes longer than that).
            let pace = (rate > 0.0).then(|| Duration::from_secs_f64(callers as f64 / rate));
            ready.push(caller(conn, i, i % links, pace, shared.clone()));
        }
        let ready = futures::future::join_all(ready).await;
        let tasks: Vec<_> = ready
            .into_iter()
            .map(|caller| tokio::spawn(caller))
            .collect();
        tokio::time::sleep(Duration::from_secs_f64(warmup)).await;
        shared.measuring.store(true, Ordering::Relaxed);
        let started = Instant::now();
        println!("measuring");
        tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
        shared.measuring.store(false, Ordering::Relaxed);
        let seconds = started.elapsed().as_secs_f64();
        println!("measured");
        shared.stop.store(true, Ordering::Relaxed);
        let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
        for task in tasks {
            hist.add(task.await.unwrap()).unwrap();
        }
        let samples = shared.samples.lock().unwrap().clone();
        Report {
            count: hist.len(),
            total: shared.total.load(Ordering::Relaxed),
            errors: shared.errors.load(Ordering::Relaxed),
            samples,
            seconds,
            p50: hist.value_at_quantile(0.50),
            p99: hist.value_at_quantile(0.99),
            max: hist.max(),
        }
    }

    /// Opens caller `i`'s session on cluster `link`; the future it returns sends executes until
    /// told to stop and returns the latencies of those answered in the measured window.
    async fn caller(
        mut conn: Conn,
        i: usize,
        link: usize,
        pace: Option<Duration>,
        shared: Arc<Shared>,
    ) -> impl Future<Output = Histogram<u64>> {
        let key = caller_key(i);
        let body = json!({ "cluster_id": cluster(link) }).to_string();
        let (status, session) = conn
            .call("POST", "/debug/session", &key, Some(Bytes::from(body)))
            .await
            .expect("create a session");
        assert_eq!(
            status,
            201,
            "session refused: {}",
            String::from_utf8_lossy(&session)
        );
        let session: Value = serde_json::from_slice(&session).unwrap();
        let execute = Bytes::from(
            json!({
                "cluster_id": cluster(link),
                "session_id": session["session_id"],
                "command_type": "get",
                "args": ["pods"],
                "timeout": 30,
            })
            .to_string(),
        );
        async move {
            let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
            let mut ticks = pace.map(|period| {
                // Callers spread over the period, not all at its start.
                let offset = period.mul_f64((i as f64 * 0.618_034).fract());
                let mut ticks =
                    tokio::time::interval_at(tokio::time::Instant::now() + offset, period);
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                ticks
            });
            while !shared.stop.load(Ordering::Relaxed) {
                if let Some(ticks) = &mut ticks {
                    ticks.tick().await;
                }
                let sent = Instant::now();
                match conn
                    .call("POST", "/debug/execute", &key, Some(execute.clone()))
                    .await
                {
                    Ok((200, body)) if completed(&body) => {
                        shared.total.fetch_add(1, Ordering::Relaxed);
                        if shared.measuring.load(Ordering::Relaxed) {
                            hist.record(sent.elapsed().as_micros().max(1) as u64)
                                .unwrap();
                        }
                    }
                    Ok((status, body)) => shared.failed(format!(
                        "{status}: {}",
                        String::from_utf8_lossy(&body[..body.len().min(300)])
                    )),
                    Err(e) => {
                        shared.failed(e);
                        // The connection is gone: a new one, so the caller goes on.
                        match Conn::open(&conn.host).await {
                            Ok(fresh) => conn = fresh,
                            Err(e) => {
                                shared.failed(e);
                                tokio::time::sleep(Duration::from_millis(100)).await;
                            }
                        }
                    }
                }
            }
            hist
        }
    }

    /// Whether an answer is the instant agent's completed `get pods`.
    fn completed(body: &[u8]) -> bool {
        #[derive(serde::Deserialize)]
        struct Answer<'a> {
            status: ResultStatus,
            #[serde(borrow)]
            output: std::borrow::Cow<'a, str>,
        }
        serde_json::from_slice::<Answer>(body)
            .is_ok_and(|a| a.status == ResultStatus::Completed && a.output == GET_PODS)
    }
}

// === the driver ===

mod driver {
    use super::*;

    /// A child process, killed when dropped.
    struct Proc {
        child: Child,
    }

    impl Proc {
        fn pid(&self) -> u32 {
            self.child.id()
        }
    }

    impl Drop for Proc {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    /// CPU time a process has used so far (user + system), from `/proc/PID/stat`.
    fn cpu(pid: u32) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // The command name (field 2) may hold spaces; the fields after it are plain.
        let Some((_, rest)) = stat.rsplit_once(") ") else {
            return Duration::ZERO;
        };
        let fields: Vec<&str> = rest.split(' ').collect();
        // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
        let ticks: u64 =
            fields[11].parse::<u64>().unwrap_or(0) + fields[12].parse::<u64>().unwrap_or(0);
        // Linux reports them in USER_HZ, 100 on every platform it runs on.
        Duration::from_millis(ticks * 10)
    }

    /// Read and write system calls a process has made so far (`/proc/PID/io`).
    fn syscalls(pid: u32) -> u64 {
        std::fs::read_to_string(format!("/proc/{pid}/io"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                l.strip_prefix("syscr: ")
                    .or_else(|| l.strip_prefix("syscw: "))
            })
            .filter_map(|n| n.trim().parse::<u64>().ok())
            .sum()
    }

    /// A process's resident memory now and at its peak (`VmRSS`, `VmHWM` of `/proc/PID/status`),
    /// in KiB.
    fn memory(pid: u32) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
                .unwrap_or(0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    fn load_average() -> String {
        std::fs::read_to_string("/proc/loadavg")
            .map(|l| l.split(' ').take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_default()
    }

    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    fn wait_listening(port: u16, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "{what} does not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// This binary as another role, with its own environment only (no `KUBELINE_*` from ours).
    /// The broker may come from another build of this bench (`CAPACITY_BROKER_BIN`): two
    /// brokers compared under the same load generator and agent.
    fn role(role: &str, log: &Path) -> Command {
        let program = match std::env::var_os("CAPACITY_BROKER_BIN") {
            Some(other) if role == "broker" => PathBuf::from(other),
            _ => std::env::current_exe().unwrap(),
        };
        let mut command = Command::new(program);
        for (name, _) in std::env::vars() {
            if name.starts_with("KUBELINE_") || name.starts_with("CAPACITY_") {
                command.env_remove(name);
            }
        }
        command
            .env(ROLE, role)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap());
        command
    }

    struct Redis {
        proc: Proc,
        client: redis::Client,
    }

    impl Redis {
        fn start() -> (Self, String) {
            let port = free_port();
            let child = Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server on PATH");
            let proc = Proc { child };
            wait_listening(port, "redis-server");
            let url = format!("redis://127.0.0.1:{port}/");
            let client = redis::Client::open(url.as_str()).unwrap();
            (Self { proc, client }, url)
        }

        /// Commands by name (`INFO commandstats` calls), the µs Redis spent in each, and
        /// network bytes in and out.
        fn stats(&self) -> (BTreeMap<String, u64>, BTreeMap<String, u64>, u64, u64) {
            let mut conn = self.client.get_connection().unwrap();
            let info: String = redis::cmd("INFO").arg("all").query(&mut conn).unwrap();
            let (mut commands, mut usec) = (BTreeMap::new(), BTreeMap::new());
            let (mut input, mut output) = (0, 0);
            for line in info.lines() {
                if let Some((name, rest)) = line
                    .strip_prefix("cmdstat_")
                    .and_then(|l| l.split_once(':'))
                {
                    let field = |key: &str| -> u64 {
                        rest.split(',')
                            .find_map(|kv| kv.strip_prefix(key))
                            .and_then(|n| n.parse().ok())
                            .unwrap_or(0)
                    };
                    commands.insert(name.to_owned(), field("calls="));
                    usec.insert(name.to_owned(), field("usec="));
                } else if let Some(n) = line.strip_prefix("total_net_input_bytes:") {
                    input = n.trim().parse().unwrap_or(0);
                } else if let Some(n) = line.strip_prefix("total_net_output_bytes:") {
                    output = n.trim().parse().unwrap_or(0);
                }
            }
            (commands, usec, input, output)
        }
    }

    /// A broker, its store's server (for Redis) and the instant agent, ready for load.
    struct Stack {
        store: &'static str,
        addr: String,
        dir: PathBuf,
        links: usize,
        broker: Proc,
        agent: Proc,
        redis: Option<Redis>,
    }

    impl Stack {
        fn start(store: &'static str, links: usize, dir: &Path) -> Self {
            let (redis, redis_url) = match store {
                "redis" => {
                    let (redis, url) = Redis::start();
                    (Some(redis), Some(url))
                }
                _ => (None, None),
            };
            let port = free_port();
            let addr = format!("127.0.0.1:{port}");
            let mut args: Vec<String> = vec![
                "--listen".into(),
                addr.clone(),
                "--api-key".into(),
                format!("admin={ADMIN_KEY}"),
            ];
            args.extend(
                (0..CALLER_KEYS)
                    .flat_map(|i| ["--api-key".into(), format!("read={}", caller_key(i))]),
            );
            args.extend((0..links).flat_map(|i| {
                [
                    "--agent-token".into(),
                    format!("{}={}", cluster(i), agent_token(i)),
                ]
            }));
            args.extend(LIMITS.iter().map(|s| (*s).to_owned()));
            if let Some(url) = &redis_url {
                args.extend(["--redis-url".into(), url.clone()]);
            }
            // The floor is the relay in the broker's place, with nothing to configure.
            if store == "floor" {
                args.truncate(2);
            }
            let server = if store == "floor" { "floor" } else { "broker" };
            let child = role(server, &dir.join(format!("broker-{store}.log")))
                .args(&args)
                .spawn()
                .expect("start the broker");
            let broker = Proc { child };
            wait_listening(port, "the broker");
            let mut agent = role("agent", &dir.join(format!("agent-{store}.log")));
            let mut child = agent
                .env("CAPACITY_BROKER", &addr)
                .env("CAPACITY_LINKS", links.to_string())
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .expect("start the instant agent");
            let mut line = String::new();
            BufReader::new(child.stdout.as_mut().unwrap())
                .read_line(&mut line)
                .unwrap();
            assert_eq!(line.trim(), "linked", "the instant agent did not start");
            let agent = Proc { child };
            let stack = Self {
                store,
                addr,
                dir: dir.to_owned(),
                links,
                broker,
                agent,
                redis,
            };
            stack.wait_connected();
            stack
        }

        fn runtime() -> tokio::runtime::Runtime {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
        }

        /// Waits until the broker lists every cluster as connected.
        fn wait_connected(&self) {
            let deadline = Instant::now() + Duration::from_secs(30);
            Self::runtime().block_on(async {
                loop {
                    let mut conn = Conn::open(&self.addr).await.unwrap();
                    let (_, body) = conn
                        .call("GET", "/clusters", ADMIN_KEY, None)
                        .await
                        .unwrap();
                    let list: Value = serde_json::from_slice(&body).unwrap_or_default();
                    let connected = list["clusters"].as_array().map_or(0, |c| {
                        c.iter().filter(|c| c["status"] == "connected").count()
                    });
                    if connected == self.links {
                        return;
                    }
                    assert!(Instant::now() < deadline, "agents not linked: {list}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            });
        }

        /// Store operations so far, by operation (the broker's `/metrics`).
        fn store_operations(&self) -> BTreeMap<String, u64> {
            let body = Self::runtime().block_on(async {
                let mut conn = Conn::open(&self.addr).await.unwrap();
                conn.call("GET", "/metrics", ADMIN_KEY, None)
                    .await
                    .unwrap()
                    .1
            });
            let mut ops = BTreeMap::new();
            for line in String::from_utf8_lossy(&body).lines() {
                let Some(rest) =
                    line.strip_prefix("kubeline_store_operation_duration_seconds_count{")
                else {
                    continue;
                };
                let Some((labels, value)) = rest.split_once("} ") else {
                    continue;
                };
                let op = labels
                    .split(',')
                    .find_map(|kv| kv.strip_prefix("operation=\""))
                    .map(|v| v.trim_end_matches('"').to_owned())
                    .unwrap_or_default();
                *ops.entry(op).or_insert(0) += value.trim().parse::<f64>().unwrap_or(0.0) as u64;
            }
            ops
        }

        /// Runs the load generator at `callers` and reports the window.
        fn measure(&self, callers: usize, warmup: f64, seconds: f64) -> Row {
            let mut load = role(
                "load",
                &self.dir.join(format!("load-{}-{callers}.log", self.store)),
            );
            let mut child = load
                .env("CAPACITY_BROKER", &self.addr)
                .env("CAPACITY_CALLERS", callers.to_string())
                .env("CAPACITY_LINKS", self.links.to_string())
                .env("CAPACITY_WARMUP", warmup.to_string())
                .env("CAPACITY_SECONDS", seconds.to_string())
                .env("CAPACITY_RATE", env_or("CAPACITY_RATE", "0"))
                .stdout(Stdio::piped())
                .spawn()
                .expect("start the load generator");
            let pid = child.id();
            let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
            let mut next = || lines.next().expect("load generator output").unwrap();
            assert_eq!(next(), "measuring");
            let before = Snapshot::take(self, pid);
            let profile = self.profile(&format!("{}-{callers}", self.store));
            assert_eq!(next(), "measured");
            let after = Snapshot::take(self, pid);
            if let Some(mut perf) = profile {
                let _ = Command::new("kill")
                    .args(["-INT", &perf.id().to_string()])
                    .status();
                let _ = perf.wait();
            }
            let report: load::Report = serde_json::from_str(&next()).expect("a report");
            drop(Proc { child });
            Row::new(self.store, callers, report, before, after)
        }

        /// With `CAPACITY_PERF` (`flat` or `dwarf`), `perf record` of the broker for the window,
        /// into `perf-NAME.data` in the log directory.
        fn profile(&self, name: &str) -> Option<Child> {
            let mode = std::env::var("CAPACITY_PERF").ok()?;
            let out = self.dir.join(format!("perf-{name}.data"));
            let mut perf = Command::new("perf");
            perf.arg("record").arg("-o").arg(&out);
            perf.args(["-p", &self.broker.pid().to_string()]);
            match mode.as_str() {
                // Stacks copied at every sample are heavy: sample less often.
                "dwarf" => perf.args(["-F", "99", "--call-graph", "dwarf,32768"]),
                _ => perf.args(["-F", "499"]),
            };
            perf.stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .ok()
        }

        /// Stops the instant agent (closing its standard input) and reads how many executes it
        /// answered; then the rest goes.
        fn stop(mut self) -> u64 {
            drop(self.agent.child.stdin.take());
            let mut out = String::new();
            let mut reader = BufReader::new(self.agent.child.stdout.take().unwrap());
            while reader.read_line(&mut out).is_ok_and(|n| n > 0) {}
            let answered = out
                .lines()
                .find_map(|l| l.strip_prefix("answered "))
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            drop(self.broker);
            drop(self.redis);
            answered
        }
    }

    /// What every process had spent, and what the store had done, at one instant.
    struct Snapshot {
        broker: Duration,
        broker_syscalls: u64,
        agent: Duration,
        load: Duration,
        redis: Duration,
        operations: BTreeMap<String, u64>,
        redis_commands: BTreeMap<String, u64>,
        redis_usec: BTreeMap<String, u64>,
        redis_in: u64,
        redis_out: u64,
        load_average: String,
        /// The broker's resident memory and its peak, KiB.
        broker_memory: (u64, u64),
    }

    impl Snapshot {
        fn take(stack: &Stack, load_pid: u32) -> Self {
            let (broker, agent, load) = (
                cpu(stack.broker.pid()),
                cpu(stack.agent.pid()),
                cpu(load_pid),
            );
            let redis = stack
                .redis
                .as_ref()
                .map_or(Duration::ZERO, |r| cpu(r.proc.pid()));
            let (redis_commands, redis_usec, redis_in, redis_out) = stack
                .redis
                .as_ref()
                .map_or_else(Default::default, Redis::stats);
            Self {
                broker,
                broker_syscalls: syscalls(stack.broker.pid()),
                agent,
                load,
                redis,
                operations: stack.store_operations(),
                redis_commands,
                redis_usec,
                redis_in,
                redis_out,
                load_average: load_average(),
                broker_memory: memory(stack.broker.pid()),
            }
        }
    }

    fn delta(
        after: &BTreeMap<String, u64>,
        before: &BTreeMap<String, u64>,
    ) -> BTreeMap<String, u64> {
        after
            .iter()
            .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0)))
            .filter(|(_, v)| *v > 0)
            .collect()
    }

    /// One line of the table.
    struct Row {
        store: &'static str,
        callers: usize,
        report: load::Report,
        rate: f64,
        /// µs of CPU per execute: broker, Redis, instant agent, load generator.
        cpu: [f64; 4],
        /// The broker's read and write system calls.
        syscalls: u64,
        operations: BTreeMap<String, u64>,
        redis_commands: BTreeMap<String, u64>,
        /// µs Redis spent executing each command (`INFO commandstats` usec).
        redis_usec: BTreeMap<String, u64>,
        redis_bytes: (u64, u64),
        load_average: (String, String),
        /// The broker's resident memory at the end of the window and its peak, KiB.
        broker_memory: (u64, u64),
    }

    impl Row {
        fn new(
            store: &'static str,
            callers: usize,
            report: load::Report,
            before: Snapshot,
            after: Snapshot,
        ) -> Self {
            let n = report.count.max(1) as f64;
            let per = |a: Duration, b: Duration| (a - b).as_secs_f64() * 1e6 / n;
            // (The driver's own scrape of `/metrics` adds one rate-limit step and Redis one
            // INFO per snapshot: noise against tens of thousands of executes.)
            let operations = delta(&after.operations, &before.operations);
            Self {
                store,
                callers,
                rate: report.count as f64 / report.seconds,
                cpu: [
                    per(after.broker, before.broker),
                    per(after.redis, before.redis),
                    per(after.agent, before.agent),
                    per(after.load, before.load),
                ],
                syscalls: after.broker_syscalls - before.broker_syscalls,
                operations,
                redis_commands: delta(&after.redis_commands, &before.redis_commands),
                redis_usec: delta(&after.redis_usec, &before.redis_usec),
                redis_bytes: (
                    after.redis_in - before.redis_in,
                    after.redis_out - before.redis_out,
                ),
                load_average: (before.load_average, after.load_average),
                broker_memory: after.broker_memory,
                report,
            }
        }

        fn per_execute(&self, n: u64) -> f64 {
            n as f64 / self.report.count.max(1) as f64
        }

        fn print(&self) {
            let ms = |us: u64| us as f64 / 1000.0;
            let ops: u64 = self.operations.values().sum();
            let commands: u64 = self.redis_commands.values().sum();
            let redis = if self.store == "redis" {
                format!(
                    "{:>6.1} {:>7.0} {:>7.0}",
                    self.per_execute(commands),
                    self.per_execute(self.redis_bytes.0),
                    self.per_execute(self.redis_bytes.1),
                )
            } else {
                format!("{:>6} {:>7} {:>7}", "-", "-", "-")
            };
            println!(
                "{:<8} {:>4} {:>8.0} {:>7.2} {:>7.2} {:>7.1} {:>6} | {:>6.1} {:>6.1} {:>6.1} {:>6.1} | {:>5.1} {redis} | {} → {}",
                self.store,
                self.callers,
                self.rate,
                ms(self.report.p50),
                ms(self.report.p99),
                ms(self.report.max),
                self.report.errors,
                self.cpu[0],
                self.cpu[1],
                self.cpu[2],
                self.cpu[3],
                self.per_execute(ops),
                self.load_average.0,
                self.load_average.1,
            );
        }

        fn print_breakdown(&self) {
            let list = |map: &BTreeMap<String, u64>| {
                let mut items: Vec<_> = map.iter().collect();
                items.sort_by(|a, b| b.1.cmp(a.1));
                items
                    .iter()
                    .map(|(k, v)| format!("{k} {:.2}", self.per_execute(**v)))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            println!(
                "  {} c={}: broker read/write system calls per execute: {:.1}; broker resident \
                 memory {:.1} MiB (peak {:.1} MiB)",
                self.store,
                self.callers,
                self.per_execute(self.syscalls),
                self.broker_memory.0 as f64 / 1024.0,
                self.broker_memory.1 as f64 / 1024.0,
            );
            println!(
                "  {} c={}: store operations per execute: {}",
                self.store,
                self.callers,
                list(&self.operations)
            );
            if !self.redis_commands.is_empty() {
                println!(
                    "  {} c={}: redis commands per execute: {}",
                    self.store,
                    self.callers,
                    list(&self.redis_commands)
                );
                let inside: u64 = self.redis_usec.values().sum();
                println!(
                    "  {} c={}: µs per execute inside Redis's commands: {:.1} of {:.1} (the rest \
                     is reading, parsing and answering): {}",
                    self.store,
                    self.callers,
                    self.per_execute(inside),
                    self.cpu[1],
                    list(&self.redis_usec)
                );
            }
            for sample in &self.report.samples {
                println!("  failure: {sample}");
            }
        }
    }

    /// The broker's limits for the run: rate limits at their maximum (per key and class; the
    /// callers use 32 keys), in-flight and queue limits above any concurrency used here.
    const LIMITS: &[&str] = &[
        "--rate-limit-execute",
        "60000",
        "--rate-limit-session-create",
        "60000",
        "--rate-limit-standard",
        "60000",
        "--max-executes-per-key",
        "1024",
        "--max-executes-per-cluster",
        "4096",
        "--max-queue-per-cluster",
        "8192",
    ];

    pub fn main() {
        // `cargo bench` passes `--bench`; under `cargo test` this is a short smoke test.
        let measuring = std::env::args().any(|a| a == "--bench");
        let (seconds, warmup, levels) = if measuring {
            ("10", "2", "64,256")
        } else {
            ("2", "0.5", "8")
        };
        let seconds: f64 = env_or("CAPACITY_SECONDS", seconds)
            .parse()
            .expect("CAPACITY_SECONDS");
        let warmup: f64 = env_or("CAPACITY_WARMUP", warmup)
            .parse()
            .expect("CAPACITY_WARMUP");
        let levels: Vec<usize> = env_or("CAPACITY_CONCURRENCY", levels)
            .split(',')
            .map(|c| c.trim().parse().expect("CAPACITY_CONCURRENCY"))
            .collect();
        let stores: Vec<&'static str> = env_or("CAPACITY_STORES", "redis,embedded,floor")
            .split(',')
            .map(|s| match s.trim() {
                "redis" => "redis",
                "embedded" => "embedded",
                "floor" => "floor",
                other => {
                    panic!("CAPACITY_STORES: unknown store {other:?} (redis, embedded, floor)")
                }
            })
            .collect();
        let links: usize = env_or("CAPACITY_LINKS", "4")
            .parse()
            .expect("CAPACITY_LINKS");
        let dir = std::env::temp_dir().join(format!("kubeline-capacity-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        println!(
            "broker capacity: {} cores, {links} instant agent links, {seconds}s measured after {warmup}s warm-up; load average {}",
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            load_average(),
        );
        println!(
            "broker limits: {} (rate limits per key and class; {CALLER_KEYS} caller keys)",
            LIMITS.join(" ")
        );
        println!(
            "{:<8} {:>4} {:>8} {:>7} {:>7} {:>7} {:>6} | {:>6} {:>6} {:>6} {:>6} | {:>5} {:>6} {:>7} {:>7} | load average",
            "store",
            "c",
            "exec/s",
            "p50 ms",
            "p99 ms",
            "max ms",
            "errors",
            "broker",
            "redis",
            "agent",
            "load",
            "st.ops",
            "r.cmds",
            "r.B in",
            "r.B out",
        );
        println!("{:>50}   CPU µs per execute           | per execute", "");
        let mut rows = Vec::new();
        let mut failures = Vec::new();
        for store in stores {
            let stack = Stack::start(store, links, &dir);
            let mut sent = 0;
            for &callers in &levels {
                let row = stack.measure(callers, warmup, seconds);
                row.print();
                sent += row.report.total;
                if row.report.errors > 0 || row.report.count == 0 {
                    failures.push(format!(
                        "{store} c={callers}: {} executes failed, {} measured",
                        row.report.errors, row.report.count
                    ));
                }
                rows.push(row);
            }
            let answered = stack.stop();
            if answered != sent {
                failures.push(format!(
                    "{store}: the agent answered {answered} executes, the callers got {sent} answers"
                ));
            }
        }
        println!();
        for row in &rows {
            row.print_breakdown();
        }
        if std::env::var_os("CAPACITY_KEEP_LOGS").is_some()
            || std::env::var_os("CAPACITY_PERF").is_some()
        {
            println!("logs in {}", dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&dir);
        }
        assert!(failures.is_empty(), "{}", failures.join("; "));
    }
}
