//! Cluster labels and fleet calls, end to end: real broker and agent processes, real Redis, the
//! test bed's API server. Several agents serve the one test bed under different cluster ids and
//! labels (`--label`), as agents in several clusters would.
//!
//! `KUBELINE_FLEET_ROUNDS=20 cargo test --test it fleet::fleet_of -- --nocapture` prints the
//! figures of a fleet call across 10 clusters (real agents) and 100 (scripted agents that
//! answer at once): the call's total time against its slowest cluster.

use std::time::{Duration, Instant};

use crate::commands::mask_times;
use crate::support::bed::helm;
use crate::support::ws;
use crate::support::*;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

/// The test's clusters: id, agent token, labels.
const CLUSTERS: [(&str, &str, &[&str]); 3] = [
    ("fleet-a", "tok-a", &["env=prod", "region=eu"]),
    ("fleet-b", "tok-b", &["env=prod", "region=us"]),
    ("fleet-c", "tok-c", &["env=staging", "region=eu"]),
];
/// A key granted only `fleet-a` and `fleet-b`.
const PARTIAL_KEY: &str = "fleet-partial-key";

fn token_flags(clusters: &[(String, String)]) -> Vec<String> {
    clusters
        .iter()
        .flat_map(|(id, token)| ["--agent-token".to_owned(), format!("{id}={token}")])
        .collect()
}

/// Starts an agent for `cluster` with `labels` (each as `--label`).
fn labelled_agent(name: &str, port: u16, cluster: &str, token: &str, labels: &[&str]) -> Proc {
    let flags: Vec<&str> = labels.iter().flat_map(|l| ["--label", *l]).collect();
    start_agent_with(name, port, cluster, token, &flags)
}

/// Waits until every one of `ids` is connected.
async fn wait_linked(api: &Api, ids: &[&str]) {
    eventually("the agents to link", Duration::from_secs(60), || async {
        let (status, body) = api.get("/clusters").await.ok()?;
        let clusters = body["clusters"].as_array()?;
        let up = ids.iter().all(|id| {
            clusters
                .iter()
                .any(|c| c["cluster_id"] == *id && c["status"] == "connected")
        });
        (status == 200 && up).then_some(())
    })
    .await;
}

fn ids(list: &Value, key: &str) -> Vec<String> {
    list[key]
        .as_array()
        .unwrap_or_else(|| panic!("no {key} in {list}"))
        .iter()
        .map(|c| c["cluster_id"].as_str().unwrap().to_owned())
        .collect()
}

fn by_cluster<'a>(results: &'a [Value], id: &str) -> &'a Value {
    results
        .iter()
        .find(|r| r["cluster_id"] == id)
        .unwrap_or_else(|| panic!("no result for {id} in {results:?}"))
}

/// Sessions the admin key sees (every session).
async fn session_count(api: &Api) -> usize {
    let (status, body) = api.get("/debug/sessions?limit=1000").await.unwrap();
    assert_eq!(status, 200, "{body}");
    body["total"].as_u64().unwrap() as usize
}

/// A fleet call answered line by line: each line with when it arrived.
async fn fleet_stream(api_port: u16, key: &str, body: Value) -> Vec<(Duration, Value)> {
    let started = Instant::now();
    let mut res = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{api_port}/fleet/execute"))
        .bearer_auth(key)
        .header("accept", "application/x-ndjson")
        .json(&body)
        .timeout(Duration::from_secs(60))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/x-ndjson");
    let mut lines = Vec::new();
    let mut pending = Vec::new();
    while let Some(chunk) = res.chunk().await.unwrap() {
        pending.extend_from_slice(&chunk);
        while let Some(end) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            lines.push((started.elapsed(), serde_json::from_slice(&line).unwrap()));
        }
    }
    assert!(pending.is_empty(), "a last line without its newline");
    lines
}

#[tokio::test]
async fn labels_select_clusters_and_fleet_calls_run_on_them() {
    let redis = Redis::start().await;
    let tokens: Vec<(String, String)> = CLUSTERS
        .iter()
        .map(|(id, token, _)| ((*id).to_owned(), (*token).to_owned()))
        .collect();
    let mut flags = token_flags(&tokens);
    flags.push("--api-key".into());
    flags.push(format!("read@fleet-a|fleet-b={PARTIAL_KEY}"));
    flags.push("--fleet-max-clusters".into());
    flags.push("3".into());
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let (_broker, api) = start_broker("fleet", BrokerOpts::redis(&redis).with(&flags)).await;
    let port = api.port();
    let mut agents: Vec<Proc> = CLUSTERS
        .iter()
        .map(|(id, token, labels)| labelled_agent(id, port, id, token, labels))
        .collect();
    wait_linked(&api, &["fleet-a", "fleet-b", "fleet-c"]).await;

    // --- labels and selectors ---
    let (status, all) = api.get("/clusters").await.unwrap();
    assert_eq!(status, 200, "{all}");
    // `bed` has a token (the harness's) but no agent: known, no labels.
    assert_eq!(
        ids(&all, "clusters"),
        ["bed", "fleet-a", "fleet-b", "fleet-c"]
    );
    let a = &all["clusters"][1];
    assert_eq!(a["labels"], json!({"env": "prod", "region": "eu"}), "{a}");
    assert_eq!(all["clusters"][0]["labels"], json!({}));
    for (selector, expected) in [
        ("env=prod", vec!["fleet-a", "fleet-b"]),
        ("env==prod,region!=us", vec!["fleet-a"]),
        (
            "env in (prod,staging),region=eu",
            vec!["fleet-a", "fleet-c"],
        ),
        ("env notin (prod)", vec!["bed", "fleet-c"]),
        ("!env", vec!["bed"]),
        ("region", vec!["fleet-a", "fleet-b", "fleet-c"]),
        ("env=dev", vec![]),
    ] {
        let query = url_encode(selector);
        let (status, body) = api
            .get(&format!("/clusters?selector={query}"))
            .await
            .unwrap();
        assert_eq!(status, 200, "{selector}: {body}");
        assert_eq!(ids(&body, "clusters"), expected, "{selector}");
    }
    let (status, body) = api.get("/clusters?selector=env%20in%20prod").await.unwrap();
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "invalid_request");
    assert_eq!(body["details"]["field"], "selector");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("found 'prod', expected: '('"),
        "{body}"
    );
    let (_, status_c) = api.get("/clusters/fleet-c/status").await.unwrap();
    assert_eq!(
        status_c["labels"],
        json!({"env": "staging", "region": "eu"})
    );

    // --- a key granted some clusters sees only those ---
    let partial = api.with_key(Some(PARTIAL_KEY));
    let (_, body) = partial.get("/clusters").await.unwrap();
    assert_eq!(ids(&body, "clusters"), ["fleet-a", "fleet-b"]);
    let (_, body) = partial.get("/clusters?selector=region=eu").await.unwrap();
    assert_eq!(ids(&body, "clusters"), ["fleet-a"]);
    let (status, body) = partial
        .post(
            "/fleet/execute",
            json!({"clusters": ["*"], "command_type": "version", "args": [], "timeout": 20}),
        )
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(ids(&body, "results"), ["fleet-a", "fleet-b"]);
    let (_, body) = partial
        .post(
            "/fleet/execute",
            json!({"selector": "region=eu", "command_type": "version", "args": [], "timeout": 20}),
        )
        .await
        .unwrap();
    assert_eq!(ids(&body, "results"), ["fleet-a"], "{body}");

    // --- refusals name the field and leave nothing behind ---
    let before = session_count(&api).await;
    for (body, field) in [
        (json!({"command_type": "version", "args": []}), "clusters"),
        (
            json!({"selector": "env=prod,", "command_type": "version", "args": []}),
            "selector",
        ),
        (
            json!({"clusters": ["fleet-*", "bad id"], "command_type": "version", "args": []}),
            "clusters",
        ),
        // bed + three: more than --fleet-max-clusters 3.
        (
            json!({"clusters": ["*"], "command_type": "version", "args": []}),
            "clusters",
        ),
        (
            json!({"selector": "region", "clusters": ["*"], "command_type": "get", "args": ["pods"], "timeout": 0}),
            "timeout",
        ),
    ] {
        let (status, answer) = api.post("/fleet/execute", body.clone()).await.unwrap();
        assert_eq!(status, 400, "{body}: {answer}");
        assert_eq!(answer["details"]["field"], field, "{body}: {answer}");
    }
    let (status, answer) = api
        .post(
            "/fleet/execute",
            json!({"clusters": ["*"], "command_type": "version", "args": []}),
        )
        .await
        .unwrap();
    assert_eq!(status, 400);
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .starts_with("4 clusters match, more than one fleet call may run on (3"),
        "{answer}"
    );
    assert_eq!(answer["details"]["matched"], 4);
    let (status, answer) = api
        .post(
            "/fleet/execute",
            json!({"selector": "env=prod", "command_type": "get", "args": ["pods", "--as=admin"]}),
        )
        .await
        .unwrap();
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["details"]["argument"], "--as=admin");
    assert_eq!(
        session_count(&api).await,
        before,
        "refused calls opened sessions"
    );

    // --- a real command on every matched cluster, as JSON ---
    let (status, body) = api
        .post(
            "/fleet/execute",
            json!({"selector": "region", "command_type": "get",
                   "args": ["deployments", "-n", "credit-service"], "timeout": 20}),
        )
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    let results = body["results"].as_array().unwrap();
    assert_eq!(ids(&body, "results"), ["fleet-a", "fleet-b", "fleet-c"]);
    for r in results {
        assert_eq!(r["status"], "completed", "{r}");
        assert_eq!(r["exit_code"], 0);
        assert!(
            r["output"].as_str().unwrap().starts_with("NAME "),
            "kubectl's table: {r}"
        );
        // The same output everywhere: three agents serve one API server (ages masked: the
        // agents print a moment apart, and an AGE may tick between them).
        let output = |r: &Value| mask_times(r["output"].as_str().unwrap_or_default());
        assert_eq!(output(r), output(&results[0]));
        // Stored like any result, readable by id.
        let (status, stored) = api
            .get(&format!(
                "/debug/result/{}",
                r["result_id"].as_str().unwrap()
            ))
            .await
            .unwrap();
        assert_eq!(status, 200);
        assert_eq!(stored["output"], r["output"]);
        assert_eq!(stored["cluster_id"], r["cluster_id"]);
    }
    assert_eq!(body["summary"]["clusters"], 3);
    assert_eq!(body["summary"]["completed"], 3);
    // Each cluster's session was opened for the call and is closed.
    let (_, sessions) = api.get("/debug/sessions?limit=1000").await.unwrap();
    let open = sessions["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["status"] == "active")
        .count();
    assert_eq!(open, 0, "{sessions}");
    // Audited per cluster, as executes.
    let (status, audit) = api
        .get("/audit?action=execute&outcome=completed&cluster_id=fleet-c&limit=10")
        .await
        .unwrap();
    assert_eq!(status, 200, "{audit}");
    assert!(
        audit["records"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["result_id"] == by_cluster(results, "fleet-c")["result_id"]),
        "{audit}"
    );

    // --- the same through MCP: fleet_kubectl, the budget split across clusters ---
    let mcp = |name: &str, arguments: Value| {
        let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": name, "arguments": arguments}});
        async move {
            let answer: Value = reqwest::Client::new()
                .post(format!("http://127.0.0.1:{port}/mcp"))
                .bearer_auth(READ_KEY)
                .header("accept", "application/json, text/event-stream")
                .header("mcp-protocol-version", "2025-11-25")
                .json(&call)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            answer["result"].clone()
        }
    };
    let listed = mcp("list_clusters", json!({"selector": "region=eu"})).await;
    let text = listed["content"][0]["text"].as_str().unwrap();
    assert!(text.starts_with("fleet-a connected"), "{text}");
    assert!(text.contains("env=prod,region=eu"), "{text}");
    assert_eq!(
        ids(&listed["structuredContent"], "clusters"),
        ["fleet-a", "fleet-c"]
    );
    let answer = mcp(
        "fleet_kubectl",
        json!({"selector": "env=prod", "command_type": "get", "args": ["pods", "-A"], "max_bytes": 2000}),
    )
    .await;
    assert_eq!(answer["isError"], false, "{answer}");
    let structured = &answer["structuredContent"];
    assert_eq!(ids(structured, "results"), ["fleet-a", "fleet-b"]);
    for r in structured["results"].as_array().unwrap() {
        assert_eq!(r["status"], "completed", "{r}");
        let shown = r["window"]["length"].as_u64().unwrap();
        assert!(shown > 0 && shown <= 1000, "half of max_bytes each: {r}");
        assert!(
            r["window"]["next_offset"].is_u64(),
            "get pods -A is longer: {r}"
        );
    }
    let text = answer["content"][0]["text"].as_str().unwrap();
    assert!(text.starts_with("2 clusters: 2 completed"), "{text}");
    assert!(
        text.contains("== fleet-b: completed ==\nNAMESPACE"),
        "{text}"
    );
    assert!(
        text.contains("read_result {\"result_id\": \"res_"),
        "{text}"
    );
    let refused = mcp(
        "fleet_kubectl",
        json!({"selector": "env in prod", "command_type": "version", "args": []}),
    )
    .await;
    assert_eq!(refused["isError"], true, "{refused}");
    assert!(
        refused["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("list_clusters shows"),
        "{refused}"
    );

    // --- one agent stopped mid-call: the others complete and arrive first ---
    agents[2].signal("STOP");
    let lines = fleet_stream(
        port,
        ADMIN_KEY,
        json!({"clusters": ["fleet-*"], "command_type": "get", "args": ["pods", "-A"], "timeout": 3}),
    )
    .await;
    agents[2].signal("CONT");
    for (at, line) in &lines {
        println!(
            "{at:?}: {} {} elapsed_ms={}",
            line["cluster_id"], line["status"], line["elapsed_ms"]
        );
    }
    assert_eq!(lines.len(), 4, "three results and the summary: {lines:?}");
    let order: Vec<&str> = lines[..3]
        .iter()
        .map(|(_, l)| l["cluster_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        order[2], "fleet-c",
        "the stopped cluster answers last: {lines:?}"
    );
    let (c_at, c) = &lines[2];
    assert!(
        c["status"] == "timeout" || c["status"] == "unavailable",
        "the stopped agent's cluster: {c}"
    );
    for (at, line) in &lines[..2] {
        assert_eq!(line["status"], "completed", "{line}");
        assert!(at < c_at, "{line} arrived at {at:?}, after the stopped one");
        assert!(line["output"].as_str().unwrap().contains("credit-api"));
    }
    let summary = &lines[3].1["summary"];
    assert_eq!(summary["completed"], 2, "{summary}");
    assert_eq!(summary["clusters"], 3);
    assert!(
        c["elapsed_ms"].as_u64().unwrap() <= 3_000 + 2_000,
        "bounded by its own deadline: {c}"
    );

    // --- one agent gone: unavailable at once ---
    agents[2].kill();
    eventually(
        "fleet-c to be disconnected",
        Duration::from_secs(20),
        || async {
            let (_, s) = api.get("/clusters/fleet-c/status").await.ok()?;
            (s["status"] == "disconnected").then_some(())
        },
    )
    .await;
    let started = Instant::now();
    let (status, body) = api
        .post(
            "/fleet/execute",
            json!({"selector": "region=eu", "command_type": "version", "args": [], "timeout": 30}),
        )
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    let results = body["results"].as_array().unwrap();
    assert_eq!(by_cluster(results, "fleet-a")["status"], "completed");
    let c = by_cluster(results, "fleet-c");
    assert_eq!(c["status"], "unavailable", "{c}");
    assert_eq!(c["error"], "Cluster agent is not connected");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "an unavailable cluster does not wait for its timeout"
    );
    assert_eq!(body["summary"]["unavailable"], 1);
    assert!(agents[0].is_running() && agents[1].is_running());
}

/// Percent-encodes a query value.
fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn bad_labels_are_refused_by_the_agent_and_by_the_broker() {
    // The agent refuses at start, naming the flag, before it dials anything.
    for (how, env) in [
        (vec!["--label", "env"], None),
        (vec!["--label=-x=1"], None),
        (vec!["--label", "env=a", "--label", "env=b"], None),
        (vec![], Some("env=prod,bad key=1")),
    ] {
        let mut cmd = kubeline();
        cmd.args([
            "agent",
            "--broker-url",
            "http://127.0.0.1:9",
            "--cluster-id",
            "c",
            "--token",
            "t",
        ])
        .args(&how);
        if let Some(labels) = env {
            cmd.env("KUBELINE_AGENT_LABELS", labels);
        }
        let out = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{how:?} {env:?}: {stderr}");
        assert!(stderr.contains("--label"), "{how:?} {env:?}: {stderr}");
    }

    // A hostile agent's hello with too many labels: the link is closed (4002), nothing stored.
    let (_broker, api) = start_broker(
        "fleet-hostile",
        BrokerOpts::embedded().with(&["--agent-token", "hostile=tok-h"]),
    )
    .await;
    let mut ws = ws::connect(ws::agent_request(api.port(), "hostile", "tok-h"))
        .await
        .expect("the link");
    let labels: serde_json::Map<String, Value> =
        (0..33).map(|i| (format!("k{i}"), json!("v"))).collect();
    let hello = ws::hello("hostile", "scripted", &[], json!({ "labels": labels }));
    ws.send(hello).await.unwrap();
    match ws.next().await {
        Some(Ok(Message::Close(Some(frame)))) => {
            assert_eq!(u16::from(frame.code), 4002);
            assert!(frame.reason.contains("bad labels: 33 labels"), "{frame:?}");
        }
        other => panic!("expected the link closed, got {other:?}"),
    }
    let (_, status) = api.get("/clusters/hostile/status").await.unwrap();
    assert_eq!(status["status"], "disconnected", "{status}");
    assert_eq!(status["labels"], json!({}));
}

/// Figures: a fleet call across ten clusters (ten agent processes on the test bed), its total
/// time against its slowest cluster. Rounds: `KUBELINE_FLEET_ROUNDS` (default 3).
#[tokio::test]
async fn fleet_of_ten() {
    const N: usize = 10;
    let tokens: Vec<(String, String)> = (0..N)
        .map(|i| (format!("ten-{i}"), format!("tok-ten-{i}")))
        .collect();
    let flags = token_flags(&tokens);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let (_broker, api) = start_broker("fleet-ten", BrokerOpts::embedded().with(&flags)).await;
    let _agents: Vec<Proc> = tokens
        .iter()
        .enumerate()
        .map(|(i, (id, token))| {
            let env = if i % 2 == 0 {
                "env=prod"
            } else {
                "env=staging"
            };
            labelled_agent(id, api.port(), id, token, &[env, "fleet=ten"])
        })
        .collect();
    let ids: Vec<String> = tokens.iter().map(|(id, _)| id.clone()).collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    wait_linked(&api, &ids).await;
    let rounds: usize = std::env::var("KUBELINE_FLEET_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    for (command, args) in [("version", json!([])), ("get", json!(["pods", "-A"]))] {
        let mut totals = Vec::new();
        let mut slowest = Vec::new();
        let mut sums = Vec::new();
        let mut clients = Vec::new();
        for _ in 0..rounds {
            let started = Instant::now();
            let (status, body) = api
                .post(
                    "/fleet/execute",
                    json!({"selector": "fleet=ten", "command_type": command, "args": args, "timeout": 30}),
                )
                .await
                .unwrap();
            let client_ms = started.elapsed().as_millis() as u64;
            assert_eq!(status, 200, "{body}");
            let summary = &body["summary"];
            assert_eq!(summary["completed"], N, "{summary}");
            let results = body["results"].as_array().unwrap();
            let sum: u64 = results
                .iter()
                .map(|r| r["elapsed_ms"].as_u64().unwrap())
                .sum();
            let total = summary["elapsed_ms"].as_u64().unwrap();
            let slow = summary["slowest_cluster_ms"].as_u64().unwrap();
            assert!(total >= slow && client_ms >= total);
            totals.push(total);
            slowest.push(slow);
            sums.push(sum);
            clients.push(client_ms);
        }
        totals.sort_unstable();
        slowest.sort_unstable();
        sums.sort_unstable();
        clients.sort_unstable();
        let median = |v: &[u64]| v[v.len() / 2];
        println!(
            "fleet of {N}, {command}: {rounds} rounds; median total {} ms (at the client {} ms), \
             median slowest cluster {} ms, median sum of the clusters' times {} ms; totals \
             {totals:?}, slowest {slowest:?}",
            median(&totals),
            median(&clients),
            median(&slowest),
            median(&sums),
        );
        // The clusters run side by side: the call takes about its slowest cluster, far less
        // than one after the other.
        assert!(
            median(&totals) < median(&sums),
            "total {totals:?} vs sums {sums:?}"
        );
    }
}

/// A scripted agent: links as `cluster` with `labels`, answers pings, and answers every command
/// at once with `ok` (an agent with no API server behind it, to measure the broker alone).
async fn fake_agent(port: u16, cluster: String, token: String, labels: Value) {
    let mut ws = ws::connect(ws::agent_request(port, &cluster, &token))
        .await
        .expect("the link");
    let hello = ws::hello(&cluster, "fake", &["version"], json!({ "labels": labels }));
    ws.send(hello).await.unwrap();
    while let Some(Ok(msg)) = ws.next().await {
        let Message::Text(text) = msg else { continue };
        let frame: Value = serde_json::from_str(&text).unwrap();
        let replies = match frame["type"].as_str() {
            Some("ping") => vec![json!({"type": "pong", "seq": frame["seq"]})],
            Some("execute") => vec![
                json!({"type": "output", "result_id": frame["result_id"], "data": "ok\n"}),
                json!({"type": "done", "result_id": frame["result_id"], "status": "completed",
                       "exit_code": 0, "error": null, "execution_time_ms": 0, "truncated": null}),
            ],
            _ => vec![],
        };
        for reply in replies {
            if ws
                .send(Message::Text(reply.to_string().into()))
                .await
                .is_err()
            {
                return;
            }
        }
    }
}

/// Figures: a fleet call across a hundred clusters (the default --fleet-max-clusters), each a
/// scripted agent that answers at once, so what is measured is the broker: sessions opened and
/// closed, executes queued, audited and answered, 32 clusters at a time.
#[tokio::test]
async fn fleet_of_a_hundred_fake_agents() {
    const N: usize = 100;
    let tokens: Vec<(String, String)> = (0..N)
        .map(|i| (format!("fake-{i:03}"), format!("tok-fake-{i}")))
        .collect();
    let flags = token_flags(&tokens);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let (_broker, api) = start_broker("fleet-hundred", BrokerOpts::embedded().with(&flags)).await;
    let agents: Vec<_> = tokens
        .iter()
        .map(|(id, token)| {
            tokio::spawn(fake_agent(
                api.port(),
                id.clone(),
                token.clone(),
                json!({"fleet": "hundred"}),
            ))
        })
        .collect();
    let ids: Vec<&str> = tokens.iter().map(|(id, _)| id.as_str()).collect();
    wait_linked(&api, &ids).await;
    let rounds: usize = std::env::var("KUBELINE_FLEET_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let (mut totals, mut slowest, mut sums) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        let (status, body) = api
            .post(
                "/fleet/execute",
                json!({"selector": "fleet=hundred", "command_type": "version", "args": [], "timeout": 30}),
            )
            .await
            .unwrap();
        assert_eq!(status, 200, "{body}");
        let summary = &body["summary"];
        assert_eq!(summary["completed"], N, "{summary}");
        for r in body["results"].as_array().unwrap() {
            assert_eq!(r["output"], "ok\n", "{r}");
        }
        totals.push(summary["elapsed_ms"].as_u64().unwrap());
        slowest.push(summary["slowest_cluster_ms"].as_u64().unwrap());
        sums.push(
            body["results"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["elapsed_ms"].as_u64().unwrap())
                .sum::<u64>(),
        );
    }
    totals.sort_unstable();
    slowest.sort_unstable();
    sums.sort_unstable();
    let median = |v: &[u64]| v[v.len() / 2];
    println!(
        "fleet of {N} fake agents, version: {rounds} rounds; median total {} ms, median slowest \
         cluster {} ms, median sum of the clusters' times {} ms; totals {totals:?}",
        median(&totals),
        median(&slowest),
        median(&sums),
    );
    assert!(median(&totals) < median(&sums), "{totals:?} vs {sums:?}");
    // One more than --fleet-max-clusters: refused, saying how many matched.
    let (status, body) = api
        .post(
            "/fleet/execute",
            json!({"clusters": ["*"], "command_type": "version", "args": []}),
        )
        .await
        .unwrap();
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["details"]["matched"],
        N + 1,
        "the harness's `bed` too: {body}"
    );
    for agent in agents {
        agent.abort();
    }
}

/// The agent chart's `labels` value becomes `KUBELINE_AGENT_LABELS`, in the form `--label`
/// reads; without labels the variable is not set.
#[test]
fn the_agent_chart_passes_its_labels() {
    let render = |extra: &[&str]| {
        let mut args = vec!["template", "x", "charts/kubeline-agent", "--set"];
        args.push("brokerUrl=https://broker.example,clusterId=prod-eu,token=t");
        args.extend(extra);
        let (ok, out, err) = helm(&args);
        assert!(ok, "{err}");
        out
    };
    assert!(!render(&[]).contains("KUBELINE_AGENT_LABELS"));
    let manifest = render(&[
        "--set",
        "labels.env=prod",
        "--set",
        "labels.region=eu",
        "--set",
        r"labels.example\.com/tier=1",
    ]);
    let at = manifest
        .find("KUBELINE_AGENT_LABELS")
        .expect("the variable is set");
    let value = manifest[at..]
        .lines()
        .nth(1)
        .and_then(|l| l.trim().strip_prefix("value: "))
        .expect("its value on the next line");
    assert_eq!(value, "\"env=prod,example.com/tier=1,region=eu\"");
    for label in value.trim_matches('"').split(',') {
        label
            .parse::<kubeline_shared::labels::Label>()
            .unwrap_or_else(|e| panic!("{label}: {e}"));
    }
}
