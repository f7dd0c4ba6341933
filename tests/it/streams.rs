//! Streamed commands end to end (`GET /debug/stream`): real broker and agent processes, real
//! Redis, the test bed's API server, a WebSocket client (tokio-tungstenite) as callers use.
//!
//! `cargo test --test streams -- --nocapture` prints the figures: broker and agent memory per
//! open stream (100 concurrent `get -w` streams on one agent), and the time from a change in
//! the cluster to its watch row reaching the caller.

use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::Value;
use crate::support::*;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Opens a stream; a refusal is its HTTP status and JSON body.
async fn open(port: u16, key: &str, query: &[(&str, &str)]) -> Result<Socket, (u16, Value)> {
    let url =
        reqwest::Url::parse_with_params(&format!("ws://127.0.0.1:{port}/debug/stream"), query)
            .unwrap();
    let mut request = url.as_str().into_client_request().unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {key}").parse().unwrap());
    match tokio_tungstenite::connect_async(request).await {
        Ok((socket, _)) => Ok(socket),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            let body = response.body().clone().unwrap_or_default();
            let body = serde_json::from_slice(&body)
                .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&body)));
            Err((response.status().as_u16(), body))
        }
        Err(e) => panic!("cannot reach the broker: {e}"),
    }
}

/// A stream of `command` in `session` on the bed's cluster.
async fn stream(port: u16, session: &str, command: &str, args: &[&str]) -> Socket {
    let args = serde_json::to_string(args).unwrap();
    let query = [
        ("cluster_id", CLUSTER),
        ("session_id", session),
        ("command_type", command),
        ("args", &args),
    ];
    match open(port, ADMIN_KEY, &query).await {
        Ok(socket) => socket,
        Err((status, body)) => panic!("stream refused with {status}: {body}"),
    }
}

/// The next frame, within `within`; `None` once the socket is closed.
async fn next_frame(socket: &mut Socket, within: Duration) -> Option<Value> {
    loop {
        let message = tokio::time::timeout(within, socket.next())
            .await
            .expect("a frame in time")?;
        match message.expect("a readable frame") {
            Message::Text(text) => return Some(serde_json::from_str(&text).unwrap()),
            Message::Close(_) => return None,
            _ => continue,
        }
    }
}

/// Reads frames until one matches `until`; returns the output read on the way.
async fn read_until(
    socket: &mut Socket,
    within: Duration,
    mut until: impl FnMut(&Value, &str) -> bool,
) -> (String, Value) {
    let deadline = Instant::now() + within;
    let mut output = String::new();
    let mut last = Value::Null;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let frame = next_frame(socket, left)
            .await
            .unwrap_or_else(|| panic!("the stream closed after {last}; output so far:\n{output}"));
        if frame["type"] == "output" {
            output.push_str(frame["data"].as_str().unwrap());
        }
        if until(&frame, &output) {
            return (output, frame);
        }
        last = frame;
    }
}

/// Reads to the `end` frame and checks the socket closes after it.
async fn read_to_end(socket: &mut Socket, within: Duration) -> (String, Value) {
    let (output, end) = read_until(socket, within, |f, _| f["type"] == "end").await;
    assert!(
        next_frame(socket, Duration::from_secs(5)).await.is_none(),
        "nothing after end"
    );
    (output, end)
}

fn kubectl(args: &[&str]) -> String {
    let bin = std::env::var("TESTBED_BIN").expect("TESTBED_BIN: run under scripts/test");
    let kubeconfig = std::env::var("TESTBED_ADMIN_KUBECONFIG").unwrap();
    let out = std::process::Command::new(format!("{bin}/kubectl"))
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .output()
        .expect("run kubectl");
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test]
async fn a_bad_stream_request_is_refused_before_the_upgrade() {
    let (_broker, api) = start_broker("stream-refusals", BrokerOpts::embedded()).await;
    let port = api.port();
    // No agent linked yet: a session can be made, a stream cannot start.
    let session = api.session().await;
    let ok_args = serde_json::to_string(&["pods", "-w"]).unwrap();
    let base = |extra: &[(&'static str, &'static str)]| {
        let mut q: Vec<(&str, String)> = vec![
            ("cluster_id", CLUSTER.to_owned()),
            ("session_id", session.clone()),
            ("command_type", "get".to_owned()),
            ("args", ok_args.clone()),
        ];
        for (k, v) in extra {
            q.retain(|(name, _)| name != k);
            if !v.is_empty() {
                q.push((k, (*v).to_owned()));
            }
        }
        q
    };
    let refused = |q: Vec<(&'static str, String)>, key: &'static str| async move {
        let q: Vec<(&str, &str)> = q.iter().map(|(k, v)| (*k, v.as_str())).collect();
        match open(port, key, &q).await {
            Ok(_) => panic!("accepted: {q:?}"),
            Err(refusal) => refusal,
        }
    };
    for (extra, status, field, code) in [
        (vec![("session_id", "")], 400, "session_id", None),
        (vec![("command_type", "")], 400, "command_type", None),
        (
            vec![("command_type", "describe"), ("args", r#"["pods"]"#)],
            400,
            "command_type",
            Some("not_streamable"),
        ),
        (vec![("args", "pods -w")], 400, "args", None),
        (vec![("args", r#"{"a":1}"#)], 400, "args", None),
        (vec![("max_seconds", "0")], 400, "max_seconds", None),
        (vec![("max_seconds", "999999")], 400, "max_seconds", None),
        (vec![("max_bytes", "lots")], 400, "max_bytes", None),
        (
            vec![("args", r#"["pods","--token=x"]"#)],
            400,
            "args",
            Some("forbidden_flag"),
        ),
        (vec![("cluster_id", "bad/cluster")], 400, "cluster_id", None),
    ] {
        let (got, body) = refused(base(&extra), ADMIN_KEY).await;
        assert_eq!(got, status, "{extra:?}: {body}");
        assert_eq!(body["details"]["field"], field, "{extra:?}: {body}");
        if let Some(code) = code {
            assert_eq!(body["details"]["code"], code, "{extra:?}: {body}");
        }
        assert!(
            body["error"].is_string() && body["message"].is_string(),
            "{body}"
        );
    }
    let (got, body) = refused(base(&[("session_id", "sess_nope")]), ADMIN_KEY).await;
    assert_eq!(got, 404, "{body}");
    let (got, body) = refused(base(&[]), "wrong-key").await;
    assert_eq!(got, 401, "{body}");
    let (got, body) = refused(base(&[]), ADMIN_KEY).await;
    assert_eq!(got, 503, "no agent: {body}");
    assert_eq!(body["details"]["code"], "agent_not_connected", "{body}");
    // A plain GET is not a WebSocket.
    let (status, body) = api
        .get(&format!(
            "/debug/stream?cluster_id={CLUSTER}&session_id={session}&command_type=get"
        ))
        .await
        .unwrap();
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["details"]["code"], "websocket_upgrade_required");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("/debug/stream is a WebSocket endpoint"),
        "{body}"
    );
    // Watching and following stay refused where a command returns once.
    for (command, args) in [("get", vec!["pods", "-w"]), ("logs", vec!["x", "-f"])] {
        let (status, body) = api.execute(&session, command, &args).await;
        assert_eq!(status, 400, "{body}");
        assert!(
            body["message"].as_str().unwrap().contains("/debug/stream"),
            "the refusal points to streams: {body}"
        );
    }
}

#[tokio::test]
async fn streams_run_across_replicas_and_end_with_a_reason() {
    let redis = Redis::start().await;
    // Two replicas on one Redis: the agent links to `a`, callers stream through `b`, so output,
    // ends and cancellations all cross the store.
    let (_a, api_a) = start_broker("stream-a", BrokerOpts::redis(&redis)).await;
    let (_b, api_b) = start_broker("stream-b", BrokerOpts::redis(&redis)).await;
    let mut agent = start_agent("stream-agent", api_a.port(), AGENT_TOKEN);
    wait_connected(&api_a).await;
    let session = api_b.session().await;

    // A one-shot command streams too: its output, then `done`.
    let mut socket = stream(api_b.port(), &session, "get", &["namespaces"]).await;
    let started = next_frame(&mut socket, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(started["type"], "started", "{started}");
    assert_eq!(started["cluster_id"], CLUSTER);
    let result_id = started["result_id"].as_str().unwrap().to_owned();
    let (output, end) = read_to_end(&mut socket, Duration::from_secs(30)).await;
    assert!(output.starts_with("NAME "), "{output}");
    assert!(output.contains("kube-system"), "{output}");
    assert_eq!(end["reason"], "done", "{end}");
    assert_eq!(end["status"], "completed", "{end}");
    assert_eq!(end["exit_code"], 0, "{end}");
    assert_eq!(end["bytes"], output.len(), "{end}");
    let (status, result) = api_a
        .get(&format!("/debug/result/{result_id}"))
        .await
        .unwrap();
    assert_eq!(status, 200, "{result}");
    assert_eq!(result["status"], "completed", "{result}");

    // A watch: the initial rows, then a change made by the test arrives as a row.
    let mut socket = stream(
        api_b.port(),
        &session,
        "get",
        &["deployments", "-n", "default", "-w"],
    )
    .await;
    let name = format!("stream-watch-{}", std::process::id());
    read_until(&mut socket, Duration::from_secs(30), |f, _| {
        f["type"] == "started"
    })
    .await;
    kubectl(&[
        "create",
        "deployment",
        &name,
        "-n",
        "default",
        "--image=registry.k8s.io/pause:3.10",
        "--replicas=1",
    ]);
    let changed = Instant::now();
    let (rows, _) = read_until(&mut socket, Duration::from_secs(30), |_, out| {
        out.contains(&name)
    })
    .await;
    let first_row = changed.elapsed();
    kubectl(&[
        "scale",
        "deployment",
        &name,
        "-n",
        "default",
        "--replicas=3",
    ]);
    let (more, _) = read_until(&mut socket, Duration::from_secs(30), |_, out| {
        out.lines()
            .any(|l| l.starts_with(&name) && l.contains("/3"))
    })
    .await;
    println!(
        "watch: the created deployment's row reached the caller {first_row:?} after kubectl create"
    );
    assert!(
        rows.starts_with("NAME "),
        "the table's header first: {rows}"
    );
    assert!(more.contains(&name), "{more}");

    // Closing the socket cancels the command on the agent, through the other replica.
    socket.close(None).await.unwrap();
    eventually(
        "the agent to stop the watch",
        Duration::from_secs(20),
        || {
            let logs = agent.logs();
            async move {
                logs.contains("command cancelled by the broker")
                    .then_some(())
            }
        },
    )
    .await;
    kubectl(&[
        "delete",
        "deployment",
        &name,
        "-n",
        "default",
        "--wait=false",
    ]);

    // A cancel frame ends the stream with `cancelled`, and the end is audited with its bytes.
    let mut socket = stream(api_b.port(), &session, "get", &["pods", "-A", "-w"]).await;
    read_until(&mut socket, Duration::from_secs(30), |f, _| {
        f["type"] == "output"
    })
    .await;
    socket
        .send(Message::Text(r#"{"type":"cancel"}"#.into()))
        .await
        .unwrap();
    let (_, end) = read_to_end(&mut socket, Duration::from_secs(10)).await;
    assert_eq!(end["reason"], "cancelled", "{end}");
    let (status, audit) = api_b.get("/audit?action=stream&limit=20").await.unwrap();
    assert_eq!(status, 200, "{audit}");
    let records = audit["records"].as_array().unwrap();
    assert!(
        records.iter().any(|r| r["outcome"] == "accepted"),
        "{audit}"
    );
    assert!(
        records
            .iter()
            .any(|r| r["outcome"] == "completed" && r["output_bytes"].as_u64() > Some(0)),
        "an end record with the bytes sent: {audit}"
    );

    // A killed agent ends the stream with the reason.
    let mut socket = stream(api_b.port(), &session, "get", &["pods", "-A", "-w"]).await;
    read_until(&mut socket, Duration::from_secs(30), |f, _| {
        f["type"] == "output"
    })
    .await;
    agent.kill();
    let (_, end) = read_to_end(&mut socket, Duration::from_secs(30)).await;
    assert_eq!(end["reason"], "agent_lost", "{end}");
    assert!(
        end["error"].as_str().unwrap().contains("agent link"),
        "{end}"
    );
}

#[tokio::test]
async fn a_hundred_streams_on_one_agent_stay_within_their_memory_bound() {
    const STREAMS: usize = 100;
    let (broker, api) = start_broker(
        "stream-hundred",
        BrokerOpts::embedded().with(&[
            "--max-streams-per-key",
            "128",
            "--max-streams-per-cluster",
            "128",
        ]),
    )
    .await;
    let agent = start_agent_with(
        "stream-hundred-agent",
        api.port(),
        CLUSTER,
        AGENT_TOKEN,
        &["--max-streams", "128"],
    );
    wait_connected(&api).await;
    let session = api.session().await;
    let (broker_before, agent_before) = (rss_kib(broker.pid()), rss_kib(agent.pid()));
    let mut sockets = Vec::new();
    for _ in 0..STREAMS {
        let mut socket = stream(api.port(), &session, "get", &["pods", "-A", "-w"]).await;
        read_until(&mut socket, Duration::from_secs(60), |f, _| {
            f["type"] == "output"
        })
        .await;
        sockets.push(socket);
    }
    // Every stream still runs: a change reaches all of them.
    let name = format!("stream-hundred-{}", std::process::id());
    kubectl(&[
        "create",
        "configmap",
        &name,
        "-n",
        "default",
        "--from-literal=a=b",
    ]);
    let mut socket = stream(
        api.port(),
        &session,
        "get",
        &["configmaps", "-n", "default", "-w"],
    )
    .await;
    read_until(&mut socket, Duration::from_secs(30), |_, out| {
        out.contains(&name)
    })
    .await;
    let (broker_after, agent_after) = (rss_kib(broker.pid()), rss_kib(agent.pid()));
    let per_stream = |before: u64, after: u64| after.saturating_sub(before) / STREAMS as u64;
    println!(
        "{STREAMS} open streams: broker +{} KiB ({} KiB per stream), agent +{} KiB ({} KiB per stream)",
        broker_after.saturating_sub(broker_before),
        per_stream(broker_before, broker_after),
        agent_after.saturating_sub(agent_before),
        per_stream(agent_before, agent_after),
    );
    // The stated bound (README): at most 256 KiB per stream on each side, the broker's default
    // buffer; measured use is far below.
    assert!(per_stream(broker_before, broker_after) <= 256, "broker");
    assert!(per_stream(agent_before, agent_after) <= 256, "agent");
    kubectl(&["delete", "configmap", &name, "-n", "default"]);
    drop(sockets);
    // The limits count open streams: all 100 closed, a new one is accepted at once.
    let (status, _) = api.get("/health").await.unwrap();
    assert_eq!(status, 200);
}

#[tokio::test]
async fn stream_limits_refuse_with_429() {
    let (_broker, api) = start_broker(
        "stream-limits",
        BrokerOpts::embedded().with(&["--max-streams-per-key", "1"]),
    )
    .await;
    let _agent = start_agent("stream-limits-agent", api.port(), AGENT_TOKEN);
    wait_connected(&api).await;
    let session = api.session().await;
    let mut first = stream(api.port(), &session, "get", &["pods", "-A", "-w"]).await;
    read_until(&mut first, Duration::from_secs(30), |f, _| {
        f["type"] == "started"
    })
    .await;
    let args = serde_json::to_string(&["pods", "-w"]).unwrap();
    let query = [
        ("cluster_id", CLUSTER),
        ("session_id", session.as_str()),
        ("command_type", "get"),
        ("args", args.as_str()),
    ];
    let Err((status, body)) = open(api.port(), ADMIN_KEY, &query).await else {
        panic!("a second stream was accepted past --max-streams-per-key 1");
    };
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["details"]["code"], "too_many_streams", "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("--max-streams-per-key")
    );
    // Closing the first gives its slot back.
    first.close(None).await.unwrap();
    eventually("the slot to come back", Duration::from_secs(10), || async {
        open(api.port(), ADMIN_KEY, &query).await.ok()
    })
    .await;
}

/// Opens `GET /debug/events` with `query`.
async fn events(port: u16, key: &str, query: &[(&str, &str)]) -> Socket {
    let url =
        reqwest::Url::parse_with_params(&format!("ws://127.0.0.1:{port}/debug/events"), query)
            .unwrap();
    let mut request = url.as_str().into_client_request().unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {key}").parse().unwrap());
    tokio_tungstenite::connect_async(request)
        .await
        .expect("events open")
        .0
}

/// The next event frame of `session` (others skipped), within `within`.
async fn next_event_of(socket: &mut Socket, session: &str, within: Duration) -> Option<Value> {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        let frame = match tokio::time::timeout(left, socket.next()).await {
            Err(_) => return None,
            Ok(frame) => frame?.expect("a readable frame"),
        };
        let Message::Text(text) = frame else { continue };
        let event: Value = serde_json::from_str(&text).unwrap();
        if event["session_id"] == session {
            return Some(event);
        }
    }
}

#[tokio::test]
async fn session_events_reach_readers_on_every_replica() {
    let redis = Redis::start().await;
    let ttl = ["--session-ttl", "3"];
    let (_a, api_a) = start_broker("events-a", BrokerOpts::redis(&redis).with(&ttl)).await;
    let (_b, api_b) = start_broker("events-b", BrokerOpts::redis(&redis).with(&ttl)).await;
    let _agent = start_agent("events-agent", api_a.port(), AGENT_TOKEN);
    wait_connected(&api_a).await;
    // Readers on replica b: an admin of the cluster, and a read key (its own sessions only).
    let mut admin = events(api_b.port(), ADMIN_KEY, &[("cluster_id", CLUSTER)]).await;
    let mut reader = events(api_b.port(), READ_KEY, &[("cluster_id", CLUSTER)]).await;
    // Replica a hears of the readers through the store; a session made once it has is told.
    let mut session = None;
    for _ in 0..40 {
        let candidate = api_a.session().await;
        let told = next_event_of(&mut admin, &candidate, Duration::from_millis(500)).await;
        if let Some(event) = told {
            assert_eq!(event["type"], "session.created", "{event}");
            session = Some(candidate);
            break;
        }
    }
    let session = session.expect("replica a publishes session events once it hears of a reader");
    let (status, body) = api_a.execute(&session, "get", &["namespaces"]).await;
    assert_eq!(status, 200, "{body}");
    let started = next_event_of(&mut admin, &session, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(started["type"], "command.started", "{started}");
    assert_eq!(started["result_id"], body["result_id"]);
    assert_eq!(started["args"], serde_json::json!(["namespaces"]));
    let finished = next_event_of(&mut admin, &session, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(finished["type"], "command.finished", "{finished}");
    assert_eq!(finished["status"], "completed", "{finished}");
    assert_eq!(finished["exit_code"], 0, "{finished}");
    let (status, _) = api_a
        .delete(&format!("/debug/session/{session}"))
        .await
        .unwrap();
    assert_eq!(status, 200);
    let closed = next_event_of(&mut admin, &session, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(closed["type"], "session.closed", "{closed}");
    assert!(
        closed.get("owner").is_none(),
        "owners are not told: {closed}"
    );
    // The read key sees its own session (and its expiry), never the admin's.
    let read_api = api_a.with_key(Some(READ_KEY));
    let own = read_api.session().await;
    let event = next_event_of(&mut reader, &own, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(event["type"], "session.created", "{event}");
    assert!(
        next_event_of(&mut reader, &session, Duration::from_millis(500))
            .await
            .is_none(),
        "the admin's session is not the read key's business"
    );
    let expired = next_event_of(&mut reader, &own, Duration::from_secs(15))
        .await
        .unwrap();
    assert_eq!(expired["type"], "session.expired", "{expired}");
    // One session's events, by session id; another credential's session is refused.
    let mut one = events(api_b.port(), READ_KEY, &[("session_id", &own)]).await;
    let _ = one.close(None).await;
    let url = format!(
        "ws://127.0.0.1:{}/debug/events?session_id={session}",
        api_b.port()
    );
    let mut request = url.as_str().into_client_request().unwrap();
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {READ_KEY}").parse().unwrap(),
    );
    match tokio_tungstenite::connect_async(request).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 403);
        }
        other => panic!("expected 403, got {:?}", other.map(|_| ())),
    }
}

/// Appends lines to the bed's container log file (what kwok serves as every container's log)
/// as the container runtime writes them, and puts the file back as it was when dropped.
struct BedLog {
    path: std::path::PathBuf,
    len: u64,
}

/// One test at a time writes the bed's log file.
static BED_LOG: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A Deployment of one pod in `default` (whose log is the bed's `default.log`), deleted on drop.
struct Workload(String);

impl Workload {
    async fn start(name: &str) -> Self {
        let name = format!("{name}-{}", std::process::id());
        kubectl(&[
            "create",
            "deployment",
            &name,
            "-n",
            "default",
            "--image=registry.k8s.io/pause:3.10",
        ]);
        let workload = Self(name);
        let selector = format!("app={}", workload.0);
        eventually("its pod to run", Duration::from_secs(60), || {
            let out = kubectl(&[
                "get",
                "pods",
                "-n",
                "default",
                "-l",
                &selector,
                "--no-headers",
            ]);
            async move { out.contains(" Running ").then_some(()) }
        })
        .await;
        workload
    }

    fn target(&self) -> String {
        format!("deploy/{}", self.0)
    }
}

impl Drop for Workload {
    fn drop(&mut self) {
        let _ = std::process::Command::new(format!(
            "{}/kubectl",
            std::env::var("TESTBED_BIN").unwrap_or_default()
        ))
        .arg("--kubeconfig")
        .arg(std::env::var("TESTBED_ADMIN_KUBECONFIG").unwrap_or_default())
        .args([
            "delete",
            "deployment",
            &self.0,
            "-n",
            "default",
            "--wait=false",
        ])
        .output();
    }
}

impl BedLog {
    fn open() -> Self {
        let dir = std::env::var("TESTBED_DIR").expect("TESTBED_DIR: run under scripts/test");
        let path = std::path::Path::new(&dir).join("container-logs/default.log");
        let len = std::fs::metadata(&path).expect("the bed's log file").len();
        Self { path, len }
    }

    fn append(&self, line: &str) {
        use std::io::Write;
        let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.9fZ");
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.path)
            .expect("open the log file");
        f.write_all(format!("{now} stdout F {line}\n").as_bytes())
            .expect("append");
    }
}

impl Drop for BedLog {
    fn drop(&mut self) {
        if let Ok(f) = std::fs::OpenOptions::new().write(true).open(&self.path) {
            let _ = f.set_len(self.len);
        }
    }
}

#[tokio::test]
async fn a_followed_logs_new_lines_reach_the_caller() {
    const LINES: usize = 20;
    let redis = Redis::start().await;
    // The caller on one replica, the agent on the other: every line crosses the store.
    let (_a, api_a) = start_broker("follow-a", BrokerOpts::redis(&redis)).await;
    let (_b, api_b) = start_broker("follow-b", BrokerOpts::redis(&redis)).await;
    let _agent = start_agent("follow-agent", api_a.port(), AGENT_TOKEN);
    wait_connected(&api_a).await;
    let session = api_b.session().await;
    let workload = Workload::start("e2e-follow").await;
    let _file = BED_LOG.lock().await;
    let log = BedLog::open();
    let pod = workload.target();
    let mut socket = stream(
        api_b.port(),
        &session,
        "logs",
        &[&pod, "-n", "default", "-f", "--tail=1"],
    )
    .await;
    read_until(&mut socket, Duration::from_secs(30), |f, _| {
        f["type"] == "output"
    })
    .await;
    let mut latencies = Vec::new();
    for i in 0..LINES {
        let line = format!("KUBELINE_E2E_FOLLOW {i} {}", std::process::id());
        let written = Instant::now();
        log.append(&line);
        read_until(&mut socket, Duration::from_secs(10), |_, out| {
            out.contains(&format!("{line}\n"))
        })
        .await;
        latencies.push(written.elapsed());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    latencies.sort();
    println!(
        "logs -f, a line written to the caller through two replicas: p50 {:?}, p99 {:?} ({LINES} lines)",
        latencies[LINES / 2],
        latencies[LINES * 99 / 100]
    );
    socket.close(None).await.unwrap();
}

#[tokio::test]
async fn a_caller_that_never_reads_is_cut_off() {
    let flags = [
        "--stream-buffer-bytes",
        "65536",
        "--stream-send-timeout-seconds",
        "1",
        "--stream-max-bytes",
        "67108864",
    ];
    let (broker, api) = start_broker("stream-slow", BrokerOpts::embedded().with(&flags)).await;
    let _agent = start_agent("stream-slow-agent", api.port(), AGENT_TOKEN);
    wait_connected(&api).await;
    let session = api.session().await;
    let workload = Workload::start("e2e-slow").await;
    let _file = BED_LOG.lock().await;
    let log = BedLog::open();
    let pod = workload.target();
    // A caller with a small receive buffer, so that the kernel holds little on its side.
    let args = serde_json::to_string(&[pod.as_str(), "-n", "default", "-f", "--tail=1"]).unwrap();
    let url = reqwest::Url::parse_with_params(
        &format!("ws://127.0.0.1:{}/debug/stream", api.port()),
        [
            ("cluster_id", CLUSTER),
            ("session_id", session.as_str()),
            ("command_type", "logs"),
            ("args", args.as_str()),
        ],
    )
    .unwrap();
    let mut request = url.as_str().into_client_request().unwrap();
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {ADMIN_KEY}").parse().unwrap(),
    );
    let tcp = tokio::net::TcpSocket::new_v4().unwrap();
    tcp.set_recv_buffer_size(4096).unwrap();
    let tcp = tcp
        .connect(format!("127.0.0.1:{}", api.port()).parse().unwrap())
        .await
        .unwrap();
    let (mut socket, _) = tokio_tungstenite::client_async(request, tcp).await.unwrap();
    let first = socket.next().await.unwrap().unwrap();
    assert!(first.to_text().unwrap().contains("started"), "{first:?}");
    let rss_before = rss_kib(broker.pid());
    // 12 MiB of log while the caller reads nothing: more than the sockets between them hold.
    let line = "x".repeat(1000);
    for _ in 0..12 * 1024 {
        log.append(&line);
    }
    let end = eventually(
        "the stream to be cut off",
        Duration::from_secs(60),
        || async {
            let (_, audit) = api.get("/audit?action=stream&limit=10").await.ok()?;
            audit["records"]
                .as_array()?
                .iter()
                .find(|r| r["outcome"] != "accepted")
                .cloned()
        },
    )
    .await;
    let rss_after = rss_kib(broker.pid());
    println!(
        "a caller that does not read: the broker grew {} KiB while 12 MiB went by",
        rss_after.saturating_sub(rss_before)
    );
    assert!(
        end["reason"].as_str().unwrap().starts_with("slow_consumer"),
        "{end}"
    );
    // The broker held the bounded buffer, not the output.
    assert!(
        rss_after.saturating_sub(rss_before) < 8 * 1024,
        "{rss_before} → {rss_after} KiB"
    );
    drop(socket);
}
