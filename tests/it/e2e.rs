//! End to end: `kubeline broker` and `kubeline agent` processes, real Redis servers, and the test
//! bed's API server. Run through `scripts/test`, which brings the bed up.

use std::time::{Duration, Instant};

use crate::support::ws;
use crate::support::*;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

async fn embedded_broker(name: &str) -> (Proc, Api, u16) {
    let (proc, api) = start_broker(name, BrokerOpts::embedded()).await;
    let port = api.port();
    (proc, api, port)
}

fn field<'a>(body: &'a Value, name: &str) -> &'a Value {
    &body[name]
}

#[tokio::test]
async fn session_lifecycle() {
    let (_broker, api, _) = embedded_broker("lifecycle").await;
    let (status, created) = api
        .post(
            "/debug/session",
            json!({ "cluster_id": CLUSTER, "metadata": { "user": "e2e" } }),
        )
        .await
        .unwrap();
    assert_eq!(status, 201, "{created}");
    for f in [
        "session_id",
        "cluster_id",
        "status",
        "created_at",
        "expires_at",
    ] {
        assert!(!field(&created, f).is_null(), "missing {f} in {created}");
    }
    assert_eq!(created["status"], "active");
    let id = created["session_id"].as_str().unwrap();

    let (status, info) = api.get(&format!("/debug/session/{id}")).await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(info["commands_executed"], 0);
    assert_eq!(info["last_activity"], created["created_at"]);

    let (status, list) = api
        .get(&format!(
            "/debug/sessions?cluster_id={CLUSTER}&status=active"
        ))
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert!(
        list["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["session_id"] == id),
        "{list}"
    );
    assert_eq!(list["total"], list["sessions"].as_array().unwrap().len());

    let (status, closed) = api.delete(&format!("/debug/session/{id}")).await.unwrap();
    assert_eq!(status, 200, "{closed}");
    assert_eq!(closed["status"], "closed");
    assert!(closed["closed_at"].is_string());

    let (_, info) = api.get(&format!("/debug/session/{id}")).await.unwrap();
    assert_eq!(info["status"], "closed");
    let (status, body) = api.execute(id, "version", &[]).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "invalid_request");
    assert!(
        body["message"].as_str().unwrap().contains("closed"),
        "{body}"
    );

    let (_, closed_list) = api
        .get("/debug/sessions?status=closed&limit=1")
        .await
        .unwrap();
    assert_eq!(closed_list["total"], 1);
}

#[tokio::test]
async fn sessions_expire() {
    let port = free_port();
    let opts = BrokerOpts {
        port,
        redis_url: None,
        extra: vec!["--session-ttl".into(), "1".into()],
    };
    let (_broker, api) = start_broker("expiry", opts).await;
    let id = api.session().await;
    eventually("session to expire", Duration::from_secs(10), || {
        let api = api.clone();
        let id = id.clone();
        async move {
            let (_, info) = api.get(&format!("/debug/session/{id}")).await.ok()?;
            (info["status"] == "expired").then_some(())
        }
    })
    .await;
    let (status, body) = api.execute(&id, "version", &[]).await;
    assert_eq!(status, 400);
    assert!(
        body["message"].as_str().unwrap().contains("expired"),
        "{body}"
    );
}

#[tokio::test]
async fn kubectl_usage_errors_are_answered_as_kubectl_without_queueing() {
    // No agent at all: a usage error never reaches one.
    let (_broker, api, _) = embedded_broker("usage").await;
    let session = api.session().await;
    let (status, body) = api.execute(&session, "get", &[]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "failed");
    assert_eq!(body["exit_code"], 1);
    assert_eq!(body["output"], "");
    assert_eq!(
        body["error"],
        "You must specify the type of resource to get. Use \"kubectl api-resources\" for a \
         complete list of supported resources.\n\nerror: Required resource not specified.\n\
         Use \"kubectl explain <resource>\" for a detailed description of that resource (e.g. \
         kubectl explain pods).\nSee 'kubectl get -h' for help and examples\n"
    );
    // Stored like any result.
    let id = body["result_id"].as_str().unwrap();
    let (status, again) = api.get(&format!("/debug/result/{id}")).await.unwrap();
    assert_eq!((status, &again), (200, &body));
    // A policy refusal is still a 400 naming the argument.
    let (status, body) = api.execute(&session, "get", &["pods", "--as=admin"]).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["details"]["code"], "forbidden_flag");
    // And nothing was queued for the cluster.
    let (_, cluster) = api
        .get(&format!("/clusters/{CLUSTER}/status"))
        .await
        .unwrap();
    assert_eq!(cluster["queue_depth"], 0, "{cluster}");
}

#[tokio::test]
async fn error_bodies_follow_the_contract() {
    let (_broker, api, _) = embedded_broker("errors").await;
    let session = api.session().await;

    // 400: a missing field is named.
    let (status, body) = api.post("/debug/session", json!({})).await.unwrap();
    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!({
            "error": "invalid_request",
            "message": "Missing required field: cluster_id",
            "details": { "field": "cluster_id", "code": "missing_required_field" }
        })
    );
    for missing in ["cluster_id", "session_id", "command_type", "args"] {
        let mut req = json!({ "cluster_id": CLUSTER, "session_id": session, "command_type": "get", "args": ["pods"] });
        req.as_object_mut().unwrap().remove(missing);
        let (status, body) = api.post("/debug/execute", req).await.unwrap();
        assert_eq!(status, 400, "{missing}: {body}");
        assert_eq!(body["details"]["field"], missing, "{body}");
        assert_eq!(
            body["message"],
            format!("Missing required field: {missing}")
        );
    }
    let (status, _, body) = api
        .post_raw("/debug/execute", "{not json", &[])
        .await
        .unwrap();
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_request");
    assert_eq!(body["details"]["code"], "invalid_json");

    // 400: refused commands name the argument, before anything is queued.
    let (status, body) = api.execute(&session, "delete", &["pod", "x"]).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "invalid_request");
    let (status, body) = api.execute(&session, "get", &["pods", "--token=abc"]).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["details"]["argument"], "--token=abc", "{body}");

    // 400: bad timeouts.
    let (status, body) = api
        .post("/debug/execute", json!({ "cluster_id": CLUSTER, "session_id": session, "command_type": "version", "args": [], "timeout": 0 }))
        .await
        .unwrap();
    assert_eq!(status, 400);
    assert_eq!(body["details"]["field"], "timeout");
    let (status, _, body) = api
        .post_raw(
            "/debug/execute",
            &json!({ "cluster_id": CLUSTER, "session_id": session, "command_type": "version", "args": [] }).to_string(),
            &[("X-Request-Timeout", "soon")],
        )
        .await
        .unwrap();
    assert_eq!(status, 400);
    assert_eq!(body["details"]["field"], "X-Request-Timeout");

    // 401 without or with a wrong key, saying which; /health needs none.
    for (key, code) in [
        (None, "missing_credentials"),
        (Some("wrong"), "invalid_credentials"),
    ] {
        let (status, body) = api.with_key(key).get("/debug/sessions").await.unwrap();
        assert_eq!(status, 401);
        assert_eq!(body["error"], "unauthorized");
        assert_eq!(body["details"]["code"], code, "{body}");
    }
    let (status, health) = api.with_key(None).get("/health").await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(health["status"], "healthy");

    // 403: read keys cannot use admin routes; lists show them only what is theirs.
    let reader = api.with_key(Some(READ_KEY));
    let (status, body) = reader.get("/admin/api-keys").await.unwrap();
    assert_eq!(status, 403);
    assert_eq!(body["error"], "forbidden");
    let (status, body) = reader.get("/debug/sessions").await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(body["total"], 0, "the reader created no session: {body}");
    let (status, _) = reader
        .get(&format!("/clusters/{CLUSTER}/status"))
        .await
        .unwrap();
    assert_eq!(status, 200);

    // 404s say what was not found.
    let (status, body) = api.get("/debug/session/sess_nope").await.unwrap();
    assert_eq!(
        (status, body["message"].as_str().unwrap()),
        (404, "Session not found: sess_nope")
    );
    let (status, body) = api.get("/debug/result/res_nope").await.unwrap();
    assert_eq!(
        (status, body["error"].as_str().unwrap()),
        (404, "not_found")
    );
    let (status, body) = api
        .post("/debug/session", json!({ "cluster_id": "nowhere" }))
        .await
        .unwrap();
    assert_eq!(
        (status, body["message"].as_str().unwrap()),
        (404, "Cluster not found: nowhere")
    );
    let (status, _) = api.delete("/debug/session/sess_nope").await.unwrap();
    assert_eq!(status, 404);

    // 503 at once when no agent is linked, even with a long timeout.
    let started = Instant::now();
    let (status, _, body) = api
        .post_raw(
            "/debug/execute",
            &json!({ "cluster_id": CLUSTER, "session_id": session, "command_type": "version", "args": [], "timeout": 60 }).to_string(),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"], "service_unavailable");
    assert_eq!(body["message"], "Cluster agent is not connected");
    assert_eq!(body["details"]["cluster_id"], CLUSTER);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "503 must not wait for the timeout"
    );
    // Nothing was counted against the session.
    let (_, info) = api.get(&format!("/debug/session/{session}")).await.unwrap();
    assert_eq!(info["commands_executed"], 0);
}

#[tokio::test]
async fn execute_and_fetch_by_result_id_with_redis() {
    let stack = Stack::build("exec").redis().agent().start().await;
    let api = stack.api(0);
    let session = api.session().await;

    let (status, headers, result) = api
        .post_raw(
            "/debug/execute",
            &json!({ "cluster_id": CLUSTER, "session_id": session, "command_type": "get", "args": ["pods", "-A"] }).to_string(),
            &[("X-Correlation-ID", "trace-e2e-1"), ("X-Service-Identity", "e2e-suite")],
        )
        .await
        .unwrap();
    assert_eq!(status, 200, "{result}");
    assert_eq!(headers["x-correlation-id"], "trace-e2e-1");
    assert_eq!(result["status"], "completed", "{result}");
    assert_eq!(result["exit_code"], 0);
    assert_eq!(result["correlation_id"], "trace-e2e-1");
    let output = result["output"].as_str().unwrap();
    assert!(output.starts_with("NAMESPACE"), "{output}");
    assert!(output.contains("credit-service"), "{output}");
    for f in [
        "result_id",
        "session_id",
        "status",
        "output",
        "error",
        "execution_time_ms",
        "executed_at",
    ] {
        assert!(result.get(f).is_some(), "missing {f}");
    }

    let id = result["result_id"].as_str().unwrap();
    let (status, fetched) = api.get(&format!("/debug/result/{id}")).await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(fetched, result);

    // A failing command is a completed request with a failed result and kubectl's exit code.
    let (status, failed) = api
        .execute(
            &session,
            "get",
            &["pods", "no-such-pod", "-n", "credit-service"],
        )
        .await;
    assert_eq!(status, 200, "{failed}");
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["exit_code"], 1);
    assert!(
        failed["error"].as_str().unwrap().contains("NotFound"),
        "{failed}"
    );

    let (_, info) = api.get(&format!("/debug/session/{session}")).await.unwrap();
    assert_eq!(info["commands_executed"], 2);
    let (_, status_body) = api
        .get(&format!("/clusters/{CLUSTER}/status"))
        .await
        .unwrap();
    assert_eq!(status_body["active_sessions"], 1);
    assert_eq!(status_body["queue_depth"], 0);
    assert!(status_body["last_seen"].is_string());
    assert!(status_body["agent_version"].is_string());
    let (_, clusters) = api.get("/clusters").await.unwrap();
    assert_eq!(clusters["clusters"][0]["status"], "connected", "{clusters}");
}

#[tokio::test]
async fn wrong_agent_token_is_refused_with_a_reason() {
    let (broker, api, port) = embedded_broker("badtoken").await;
    match ws::connect(ws::agent_request(port, CLUSTER, "wrong")).await {
        Err(refusal) => {
            assert_eq!(refusal.status, 401, "{refusal:?}");
            assert!(
                refusal.body.contains("Agent token refused for cluster bed"),
                "{refusal:?}"
            );
        }
        Ok(_) => panic!("expected a 401 refusal, got a link"),
    }
    let agent = start_agent("badtoken-agent", port, "not-the-token");
    eventually(
        "the refusal to be logged",
        Duration::from_secs(20),
        || async { broker.logs().contains("invalid agent token").then_some(()) },
    )
    .await;
    eventually(
        "the agent to log the refusal",
        Duration::from_secs(20),
        || async { agent.logs().contains("HTTP 401").then_some(()) },
    )
    .await;
    let (_, status) = api
        .get(&format!("/clusters/{CLUSTER}/status"))
        .await
        .unwrap();
    assert_eq!(status["status"], "disconnected");
}

/// A scripted agent: links with the right token, takes one command, then drops the link.
#[tokio::test]
async fn agent_lost_mid_command_fails_the_caller_clearly() {
    let (_broker, api, port) = embedded_broker("lost").await;
    let mut ws = ws::connect(ws::agent_request(port, CLUSTER, AGENT_TOKEN))
        .await
        .expect("the link");
    ws.send(ws::hello(CLUSTER, "scripted", &["version"], Value::Null))
        .await
        .unwrap();
    let agent = tokio::spawn(async move {
        while let Some(Ok(msg)) = ws.next().await {
            if let Message::Text(text) = msg {
                let v: Value = serde_json::from_str(&text).unwrap();
                if v["type"] == "execute" {
                    return; // dropping the socket mid-command
                }
            }
        }
    });
    wait_connected(&api).await;
    let session = api.session().await;
    let started = Instant::now();
    let (status, body) = api.execute(&session, "version", &[]).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"], "service_unavailable");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("lost while the command was running"),
        "{body}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the caller must not wait for its timeout"
    );
    agent.await.unwrap();
    let id = body["details"]["result_id"].as_str().unwrap();
    let (_, stored) = api.get(&format!("/debug/result/{id}")).await.unwrap();
    assert_eq!(stored["status"], "failed");
}

#[tokio::test]
async fn killed_agent_gives_503_not_a_hang() {
    let mut stack = Stack::build("killed").agent().start().await;
    let api = stack.api(0);
    let session = api.session().await;
    let (status, body) = api.execute(&session, "version", &[]).await;
    assert_eq!(status, 200, "{body}");
    stack.agent().kill();
    // An execute racing the broker's notice is queued as the link goes: it fails once no agent
    // has come back for the relink grace (5 s), not at its 20 s timeout.
    let (status, body) = eventually("the broker to notice", Duration::from_secs(10), || async {
        let (status, body) = api.execute(&session, "version", &[]).await;
        (status != 200).then_some((status, body))
    })
    .await;
    assert_eq!(status, 503, "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(
        message == "Cluster agent is not connected"
            || message.contains("went away before it ran the command"),
        "{body}"
    );
    let (status, body) = api.execute(&session, "version", &[]).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["message"], "Cluster agent is not connected");
}

#[tokio::test]
async fn two_replicas_share_one_redis() {
    let stack = Stack::build("replica")
        .redis()
        .replicas(2)
        .agent()
        .agent_on(1)
        .start()
        .await;
    let (api_a, api_b) = (stack.api(0), stack.api(1));
    let session = api_a.session().await;
    let (status, result) = api_a.execute(&session, "get", &["namespaces"]).await;
    assert_eq!(status, 200, "{result}");
    assert_eq!(result["status"], "completed");
    assert!(
        result["output"]
            .as_str()
            .unwrap()
            .contains("credit-service")
    );
    let id = result["result_id"].as_str().unwrap();
    let (status, from_b) = api_b.get(&format!("/debug/result/{id}")).await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(from_b, result);
    let (_, info) = api_b
        .get(&format!("/debug/session/{session}"))
        .await
        .unwrap();
    assert_eq!(info["commands_executed"], 1);
}

/// Puts `n` commands in flight on replica B while its agent is frozen, sent through replica A.
async fn commands_in_flight_on_b(
    api_a: &Api,
    api_b: &Api,
    agent: &Proc,
    n: usize,
) -> Vec<tokio::task::JoinHandle<(u16, Value)>> {
    let session = api_a.session().await;
    agent.signal("STOP");
    let calls: Vec<_> = (0..n)
        .map(|_| {
            let api = api_a.clone();
            let session = session.clone();
            tokio::spawn(async move { api.execute(&session, "get", &["namespaces"]).await })
        })
        .collect();
    eventually(
        "the commands to be queued",
        Duration::from_secs(5),
        || async {
            let (_, body) = api_b
                .get(&format!("/clusters/{CLUSTER}/status"))
                .await
                .ok()?;
            (body["queue_depth"] == n).then_some(())
        },
    )
    .await;
    calls
}

async fn all_completed(calls: Vec<tokio::task::JoinHandle<(u16, Value)>>) {
    for call in calls {
        let (status, body) = call.await.unwrap();
        assert_eq!(status, 200, "command lost or failed: {body}");
        assert_eq!(body["status"], "completed", "{body}");
    }
}

/// How replica B goes away while it holds the link and commands are in flight on it.
enum Stop {
    /// SIGKILL: nothing is cleaned up.
    Kill,
    /// SIGTERM: B stops taking commands and waits (here, its whole drain period, since the agent
    /// is frozen) before closing the link and leaving the unfinished commands to the next holder.
    Drain,
}

/// Replicas A and B on one Redis, the agent on B; 20 commands sent to A are in flight on B when
/// B stops; a new B starts on the same port. Every caller must get its completed result.
/// Returns the time from B's stop to the last result.
async fn replica_stop_loses_nothing(name: &str, stop: Stop, extra: &[&str]) -> Duration {
    let mut stack = Stack::build(name)
        .redis()
        .replicas(2)
        .flags(extra)
        .agent()
        .agent_on(1)
        .start()
        .await;
    let (api_a, api_b) = (stack.api(0), stack.api(1));

    let calls = commands_in_flight_on_b(&api_a, &api_b, stack.agent(), 20).await;
    let stopped = Instant::now();
    match stop {
        Stop::Kill => stack.brokers[1].kill(),
        Stop::Drain => stack.brokers[1].terminate(Duration::from_secs(15)),
    }
    // A new B on B's port.
    let mut opts = BrokerOpts::redis(stack.redis()).with(extra);
    opts.port = api_b.port();
    let (_b2, _) = start_broker(&format!("{name}-b2"), opts).await;
    stack.agent().signal("CONT");
    // The agent links to the new replica, which takes over what the old one had taken.
    all_completed(calls).await;
    let took = stopped.elapsed();
    let (_, status) = api_a
        .get(&format!("/clusters/{CLUSTER}/status"))
        .await
        .unwrap();
    assert_eq!(status["queue_depth"], 0, "commands left behind: {status}");
    took
}

#[tokio::test]
async fn killed_replica_loses_no_command() {
    replica_stop_loses_nothing("kill", Stop::Kill, &[]).await;
}

#[tokio::test]
async fn drained_replica_loses_no_command() {
    replica_stop_loses_nothing("drain", Stop::Drain, &[]).await;
}

/// With the default pings a command is abandoned after 15 s without keep-alive; a killed
/// replica's commands must not wait for that: its liveness claim (2 s) ends, and the next link
/// holder takes them over at once.
#[tokio::test]
async fn a_killed_replicas_commands_run_again_without_waiting_for_abandonment() {
    let took =
        replica_stop_loses_nothing("liveness", Stop::Kill, &["--ping-interval-ms", "5000"]).await;
    println!("killed replica: its 20 commands answered {took:?} after the kill");
    assert!(
        took < Duration::from_secs(12),
        "took {took:?}: the commands waited for the 15 s abandonment instead of the replica's \
         2 s liveness claim"
    );
}

#[tokio::test]
async fn redis_outage_is_reported_and_survived() {
    let mut stack = Stack::build("outage").redis().agent().start().await;
    let api = stack.api(0);

    stack.redis().kill();
    let (status, health) = eventually(
        "health to report the outage",
        Duration::from_secs(15),
        || async {
            let (status, body) = api.get("/health").await.ok()?;
            (status == 503).then_some((status, body))
        },
    )
    .await;
    assert_eq!(status, 503);
    assert_eq!(health["status"], "unhealthy");
    assert!(
        health["reason"]
            .as_str()
            .unwrap()
            .contains("store unavailable"),
        "{health}"
    );
    let (status, body) = api
        .post("/debug/session", json!({ "cluster_id": CLUSTER }))
        .await
        .unwrap();
    assert_eq!(status, 503, "{body}");

    stack.redis().restart().await;
    eventually("health to recover", Duration::from_secs(15), || async {
        let (status, _) = api.get("/health").await.ok()?;
        (status == 200).then_some(())
    })
    .await;
    // The restarted Redis is empty; the link re-asserts its presence and service resumes
    // without restarting the broker or the agent.
    let session = eventually(
        "a session on the fresh store",
        Duration::from_secs(15),
        || async {
            let (status, body) = api
                .post("/debug/session", json!({ "cluster_id": CLUSTER }))
                .await
                .ok()?;
            (status == 201).then(|| body["session_id"].as_str().unwrap().to_owned())
        },
    )
    .await;
    let (status, body) = eventually("execute to work again", Duration::from_secs(15), || async {
        let (status, body) = api.execute(&session, "version", &[]).await;
        (status == 200).then_some((status, body))
    })
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "completed", "{body}");
}

#[tokio::test]
async fn a_dead_link_is_noticed_within_seconds_on_both_sides() {
    let mut stack = Stack::build("frozen").agent().start().await;
    let api = stack.api(0);
    let agent = stack.agent();
    // A frozen agent keeps its TCP connection open but answers no ping (interval 500 ms).
    agent.signal("STOP");
    eventually(
        "the broker to drop the silent link",
        Duration::from_secs(10),
        || async {
            let (_, body) = api.get(&format!("/clusters/{CLUSTER}/status")).await.ok()?;
            (body["status"] == "disconnected").then_some(())
        },
    )
    .await;
    agent.signal("CONT");
    // The thawed agent finds its link dead and links again.
    wait_connected(&api).await;
    let session = api.session().await;
    let (status, body) = api.execute(&session, "version", &[]).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn large_output_arrives_whole_and_budgets_cut_it_visibly() {
    let stack = Stack::build("large").agent().start().await;
    let api = stack.api(0);
    let session = api.session().await;
    // Several chunks' worth of output, next to a small command running at the same time.
    let (big, small) = tokio::join!(
        api.execute(&session, "get", &["pods", "-A", "-o", "json"]),
        api.execute(&session, "version", &[]),
    );
    assert_eq!((big.0, small.0), (200, 200));
    let output = big.1["output"].as_str().unwrap();
    assert!(
        output.len() > 32 * 1024,
        "expected more than one chunk, got {} bytes",
        output.len()
    );
    let list: Value = serde_json::from_str(output).expect("the chunks reassemble into valid JSON");
    assert!(list["items"].as_array().unwrap().len() >= 10);
    assert!(big.1.get("truncated").is_none());

    // Read again by windows of 4 KiB: whole lines each, joined up they are the output.
    let result_id = big.1["result_id"].as_str().unwrap();
    let (mut offset, mut joined, mut windows) = (0u64, String::new(), 0);
    loop {
        let (status, w) = api
            .get(&format!(
                "/debug/result/{result_id}?offset={offset}&limit=4096"
            ))
            .await
            .unwrap();
        assert_eq!(status, 200, "{w}");
        let part = w["output"].as_str().unwrap();
        assert!(part.len() <= 4096 && !part.is_empty());
        assert_eq!(w["window"]["offset"], offset);
        assert_eq!(w["window"]["total_bytes"], output.len());
        joined.push_str(part);
        windows += 1;
        match w["window"]["next_offset"].as_u64() {
            Some(next) => {
                assert!(
                    part.ends_with('\n'),
                    "a window that is not the last ends a line"
                );
                offset = next;
            }
            None => break,
        }
    }
    assert_eq!(joined, output);
    assert!(windows > 8, "{windows} windows");
    // Without offset/limit the result is whole, with no window.
    let (_, whole) = api
        .get(&format!("/debug/result/{result_id}"))
        .await
        .unwrap();
    assert!(whole.get("window").is_none());
    assert_eq!(whole["output"], output);
    for (query, field) in [
        (format!("offset={}", output.len() + 1), "offset"),
        ("limit=0".to_owned(), "limit"),
        ("limit=4194305".to_owned(), "limit"),
        ("offset=-1".to_owned(), "offset"),
    ] {
        let (status, refused) = api
            .get(&format!("/debug/result/{result_id}?{query}"))
            .await
            .unwrap();
        assert_eq!(status, 400, "{query}: {refused}");
        assert_eq!(refused["details"]["field"], field, "{query}: {refused}");
    }

    let budget = Stack::build("budget")
        .flags(&["--max-output-bytes", "2000"])
        .agent()
        .start()
        .await;
    let api2 = budget.api(0);
    let session = api2.session().await;
    let (status, cut) = api2
        .execute(&session, "get", &["pods", "-A", "-o", "json"])
        .await;
    assert_eq!(status, 200, "{cut}");
    assert!(cut["output"].as_str().unwrap().len() <= 2000);
    // A request may ask for less, never for more.
    let ask = |n: u64| {
        let api2 = api2.clone();
        let session = session.clone();
        async move {
            api2.post(
                "/debug/execute",
                json!({ "cluster_id": CLUSTER, "session_id": session, "command_type": "get",
                        "args": ["pods", "-A", "-o", "json"], "max_output_bytes": n }),
            )
            .await
            .unwrap()
        }
    };
    let (status, small) = ask(100).await;
    assert_eq!(status, 200, "{small}");
    assert_eq!(small["truncated"]["limit_bytes"], 100);
    assert!(small["output"].as_str().unwrap().len() <= 100);
    let (status, refused) = ask(2001).await;
    assert_eq!(status, 400, "{refused}");
    assert_eq!(refused["details"]["field"], "max_output_bytes");
    assert_eq!(cut["truncated"]["limit_bytes"], 2000);
    let omitted = cut["truncated"]["omitted_bytes"].as_u64().unwrap();
    assert_eq!(
        omitted as usize + cut["output"].as_str().unwrap().len(),
        output.len()
    );
}

#[tokio::test]
async fn idempotency_key_answers_a_retry_with_the_first_result() {
    let stack = Stack::build("idem")
        .flags(&["--agent-token", "late=late-token"])
        .agent()
        .start()
        .await;
    let api = stack.api(0);
    let port = api.port();
    let session = api.session().await;
    let body = |args: &[&str]| {
        json!({ "cluster_id": CLUSTER, "session_id": session, "command_type": "get", "args": args })
            .to_string()
    };
    let send = |body: String, key: &'static str| {
        let api = api.clone();
        async move {
            let (status, _, answer) = api
                .post_raw("/debug/execute", &body, &[("idempotency-key", key)])
                .await
                .unwrap();
            (status, answer)
        }
    };
    // A retry gets the first result, not a second run.
    let (status, first) = send(body(&["pods", "-A"]), "retry-1").await;
    assert_eq!(status, 200, "{first}");
    let (status, again) = send(body(&["pods", "-A"]), "retry-1").await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["result_id"], first["result_id"]);
    assert_eq!(again["output"], first["output"]);
    // Two at once: one runs, the other waits for its result.
    let (a, b) = tokio::join!(
        send(body(&["namespaces"]), "together"),
        send(body(&["namespaces"]), "together")
    );
    assert_eq!((a.0, b.0), (200, 200), "{} {}", a.1, b.1);
    assert_eq!(a.1["result_id"], b.1["result_id"]);
    // The same key for another request is refused; another key runs it.
    let (status, refused) = send(body(&["nodes"]), "retry-1").await;
    assert_eq!(status, 400, "{refused}");
    assert_eq!(refused["details"]["code"], "idempotency_key_reused");
    let (status, other) = send(body(&["nodes"]), "retry-2").await;
    assert_eq!(status, 200, "{other}");
    assert_ne!(other["result_id"], first["result_id"]);
    // Keys that are not keys.
    for key in ["", " spaced key ", "tab\there"] {
        let (status, _, refused) = api
            .post_raw(
                "/debug/execute",
                &body(&["pods"]),
                &[("idempotency-key", key)],
            )
            .await
            .unwrap();
        assert_eq!(status, 400, "{key:?}: {refused}");
        assert_eq!(refused["details"]["field"], "Idempotency-Key");
    }
    let long = "k".repeat(256);
    let (status, _, _) = api
        .post_raw(
            "/debug/execute",
            &body(&["pods"]),
            &[("idempotency-key", &long)],
        )
        .await
        .unwrap();
    assert_eq!(status, 400);
    // A request refused before it was queued gives its key back: the retry runs.
    let (status, late_session) = api
        .post("/debug/session", json!({ "cluster_id": "late" }))
        .await
        .unwrap();
    assert_eq!(status, 201, "{late_session}");
    let late = json!({ "cluster_id": "late", "session_id": late_session["session_id"],
        "command_type": "version", "args": [] })
    .to_string();
    let (status, unavailable) = send(late.clone(), "late-1").await;
    assert_eq!(status, 503, "no agent yet: {unavailable}");
    let _late_agent = start_agent_for("idem-late-agent", port, "late", "late-token");
    eventually(
        "the late agent to link",
        Duration::from_secs(30),
        || async {
            let (status, body) = api.get("/clusters/late/status").await.ok()?;
            (status == 200 && body["status"] == "connected").then_some(())
        },
    )
    .await;
    let (status, ran) = send(late, "late-1").await;
    assert_eq!(status, 200, "{ran}");
    assert_eq!(ran["status"], "completed");
}
