//! Streamed commands end to end (`GET /debug/stream`): real broker and agent processes, real
//! Redis, the test bed's API server, a WebSocket client (tokio-tungstenite) as callers use.
//!
//! `cargo test --test it streams:: -- --nocapture` prints the figures: broker and agent memory per
//! open stream (100 concurrent `get -w` streams on one agent), and the time from a change in
//! the cluster to its watch row reaching the caller.

use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

use crate::support::bed::{Bed, kubectl};
use crate::support::ws::{self, Socket};
use crate::support::*;

/// Opens a stream; a refusal is its HTTP status and JSON body.
async fn open(port: u16, key: &str, query: &[(&str, &str)]) -> Result<Socket, (u16, Value)> {
    ws::connect(ws::caller_request(port, "/debug/stream", key, query))
        .await
        .map_err(|r| (r.status, r.json()))
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
    // Two replicas on one Redis: the agent links to `a`, callers stream through `b`, so output,
    // ends and cancellations all cross the store.
    let mut stack = Stack::build("stream")
        .redis()
        .replicas(2)
        .agent()
        .start()
        .await;
    let (api_a, api_b) = (stack.api(0), stack.api(1));
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
            let logs = stack.agent().logs();
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
    stack.agent().kill();
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
    // A hundred streams and memory figures: not beside another heavy test.
    let _heavy = heavy().await;
    let mut stack = Stack::build("stream-hundred")
        .flags(&[
            "--max-streams-per-key",
            "128",
            "--max-streams-per-cluster",
            "128",
        ])
        .agent_with(&["--max-streams", "128"])
        .start()
        .await;
    let api = stack.api(0);
    let (broker, agent) = (stack.brokers[0].pid(), stack.agent().pid());
    let session = api.session().await;
    let (broker_before, agent_before) = (rss_kib(broker), rss_kib(agent));
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
    let (broker_after, agent_after) = (rss_kib(broker), rss_kib(agent));
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
    let stack = Stack::build("stream-limits")
        .flags(&["--max-streams-per-key", "1"])
        .agent()
        .start()
        .await;
    let api = stack.api(0);
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
    ws::connect(ws::caller_request(port, "/debug/events", key, query))
        .await
        .expect("events open")
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
    let stack = Stack::build("events")
        .redis()
        .replicas(2)
        .flags(&["--session-ttl", "3"])
        .agent()
        .start()
        .await;
    let (api_a, api_b) = (stack.api(0), stack.api(1));
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
    let request = ws::caller_request(
        api_b.port(),
        "/debug/events",
        READ_KEY,
        &[("session_id", &session)],
    );
    match ws::connect(request).await {
        Err(refusal) => assert_eq!(refusal.status, 403, "{refusal:?}"),
        Ok(_) => panic!("expected 403, got a stream"),
    }
}

#[tokio::test]
async fn a_followed_logs_new_lines_reach_the_caller() {
    const LINES: usize = 20;
    // The caller on one replica, the agent on the other: every line crosses the store.
    let stack = Stack::build("follow")
        .redis()
        .replicas(2)
        .agent()
        .start()
        .await;
    let api_b = stack.api(1);
    let session = api_b.session().await;
    let bed = Bed::new().await;
    let workload = bed.workload("e2e-follow").await;
    let log = bed.container_log().await;
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
    let stack = Stack::build("stream-slow")
        .flags(&flags)
        .agent()
        .start()
        .await;
    let api = stack.api(0);
    let broker = stack.brokers[0].pid();
    let session = api.session().await;
    let bed = Bed::new().await;
    let workload = bed.workload("e2e-slow").await;
    let log = bed.container_log().await;
    let pod = workload.target();
    // A caller with a small receive buffer, so that the kernel holds little on its side.
    let args = serde_json::to_string(&[pod.as_str(), "-n", "default", "-f", "--tail=1"]).unwrap();
    let query = [
        ("cluster_id", CLUSTER),
        ("session_id", session.as_str()),
        ("command_type", "logs"),
        ("args", args.as_str()),
    ];
    let request = ws::caller_request(api.port(), "/debug/stream", ADMIN_KEY, &query);
    let mut socket = ws::connect_small_buffer(request, api.port(), 4096).await;
    let first = socket.next().await.unwrap().unwrap();
    assert!(first.to_text().unwrap().contains("started"), "{first:?}");
    // The follow runs (its tail line arrived) before the log grows: lines appended before it
    // starts fall before its tail and never reach the stream.
    read_until(&mut socket, Duration::from_secs(30), |f, _| {
        f["type"] == "output"
    })
    .await;
    let rss_before = rss_kib(broker);
    // 12 MiB of log while the caller reads nothing: more than the sockets between them hold.
    // The log keeps growing (1 MiB per look) until the stream is cut off: on a loaded machine
    // the follow may start watching the file only after the first 12 MiB were written.
    let line = "x".repeat(1000);
    let written = std::cell::Cell::new(0_usize);
    let write_mib = || {
        for _ in 0..1024 {
            log.append(&line);
        }
        written.set(written.get() + 1);
    };
    for _ in 0..12 {
        write_mib();
    }
    let end = eventually(
        "the stream to be cut off",
        Duration::from_secs(60),
        || async {
            let (_, audit) = api.get("/audit?action=stream&limit=10").await.ok()?;
            let end = audit["records"]
                .as_array()?
                .iter()
                .find(|r| r["outcome"] != "accepted")
                .cloned();
            if end.is_none() {
                write_mib();
            }
            end
        },
    )
    .await;
    let rss_after = rss_kib(broker);
    println!(
        "a caller that does not read: the broker grew {} KiB while {} MiB went by",
        rss_after.saturating_sub(rss_before),
        written.get()
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
