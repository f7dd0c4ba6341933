//! Trust across replicas: credentials made and revoked on one broker replica hold on the other
//! at once, agent links close when their token is revoked, and a revoked key's requests in
//! flight end. Two real broker processes share one real Redis.
//!
//! `KUBELINE_REVOKE_TRIES=20 cargo test --test trust revoking_an_agent_token -- --nocapture`
//! measures the time from revocation to the link's close over that many tries.

mod support;

use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use support::*;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

type Link =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Two replicas on one Redis.
async fn replicas(name: &str, redis: &Redis) -> ((Proc, Api), (Proc, Api)) {
    let a = start_broker(&format!("{name}-a"), BrokerOpts::redis(redis)).await;
    let b = start_broker(&format!("{name}-b"), BrokerOpts::redis(redis)).await;
    (a, b)
}

/// A scripted agent: links to the broker on `port` as `cluster` with `token`, says hello and
/// reads the welcome.
async fn link(port: u16, cluster: &str, token: &str) -> Link {
    let mut request = format!("ws://127.0.0.1:{port}/agent/v1/connect")
        .into_client_request()
        .unwrap();
    let headers = request.headers_mut();
    headers.insert("authorization", format!("Bearer {token}").parse().unwrap());
    headers.insert("x-kubeline-cluster", cluster.parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let hello = json!({ "type": "hello", "protocol": 1, "cluster_id": cluster,
        "agent_version": "scripted", "kubernetes_version": "", "commands": [] });
    ws.send(Message::Text(hello.to_string().into()))
        .await
        .unwrap();
    match ws.next().await {
        Some(Ok(Message::Text(text))) => assert!(text.contains("welcome"), "{text}"),
        other => panic!("no welcome: {other:?}"),
    }
    ws
}

/// Reads the link (answering pings) until the broker closes it; returns the close frame's code
/// and reason.
async fn closed(ws: &mut Link) -> (u16, String) {
    while let Some(msg) = ws.next().await {
        match msg {
            Ok(Message::Close(Some(frame))) => {
                return (u16::from(frame.code), frame.reason.to_string());
            }
            Ok(Message::Close(None)) => return (u16::from(CloseCode::Status), String::new()),
            Ok(Message::Text(text)) => {
                let v: Value = serde_json::from_str(&text).unwrap();
                if v["type"] == "ping" {
                    let pong = json!({ "type": "pong", "seq": v["seq"] });
                    let _ = ws.send(Message::Text(pong.to_string().into())).await;
                }
            }
            Ok(_) => {}
            Err(e) => panic!("link error before a close frame: {e}"),
        }
    }
    panic!("link ended without a close frame")
}

async fn new_agent_token(api: &Api, cluster: &str) -> (String, String) {
    let (status, body) = api
        .post(
            "/admin/agent-tokens",
            json!({ "cluster_id": cluster, "overlap_seconds": 0 }),
        )
        .await
        .unwrap();
    assert_eq!(status, 201, "{body}");
    (
        body["token"].as_str().unwrap().to_owned(),
        body["id"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn revoking_an_agent_token_closes_its_link_on_the_other_replica() {
    let redis = Redis::start().await;
    let ((_a, api_a), (_b, api_b)) = replicas("revoke-agent", &redis).await;
    let port_b = api_b.port();
    let tries: usize = std::env::var("KUBELINE_REVOKE_TRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let mut took = Vec::new();
    for i in 0..tries {
        let cluster = format!("revoke-{i}");
        // Made on replica A, used on replica B.
        let (token, id) = new_agent_token(&api_a, &cluster).await;
        let mut ws = link(port_b, &cluster, &token).await;
        let started = Instant::now();
        let (status, body) = api_a
            .delete(&format!("/admin/agent-tokens/{id}"))
            .await
            .unwrap();
        assert_eq!(status, 200, "{body}");
        let (code, reason) = tokio::time::timeout(Duration::from_secs(10), closed(&mut ws))
            .await
            .expect("the link closes");
        took.push(started.elapsed());
        assert_eq!(code, 4001, "{reason}");
        assert!(reason.contains("revoked"), "{reason}");
        // It cannot come back with the old token, on either replica.
        for port in [api_a.port(), port_b] {
            let mut request = format!("ws://127.0.0.1:{port}/agent/v1/connect")
                .into_client_request()
                .unwrap();
            let headers = request.headers_mut();
            headers.insert("authorization", format!("Bearer {token}").parse().unwrap());
            headers.insert("x-kubeline-cluster", cluster.parse().unwrap());
            match tokio_tungstenite::connect_async(request).await {
                Err(tokio_tungstenite::tungstenite::Error::Http(res)) => {
                    assert_eq!(res.status(), 401);
                    let body = String::from_utf8_lossy(res.body().as_deref().unwrap_or_default())
                        .into_owned();
                    assert!(body.contains("revoked"), "{body}");
                }
                other => panic!("expected a 401, got {other:?}"),
            }
        }
    }
    took.sort();
    let ms = |d: &Duration| d.as_secs_f64() * 1000.0;
    println!(
        "revocation to link close over {tries} tries: median {:.1} ms, max {:.1} ms",
        ms(&took[took.len() / 2]),
        ms(took.last().unwrap())
    );
}

#[tokio::test]
async fn a_real_agent_whose_token_is_revoked_stays_out() {
    let redis = Redis::start().await;
    let ((_a, api_a), (broker_b, api_b)) = replicas("revoke-real", &redis).await;
    let (token, id) = new_agent_token(&api_a, CLUSTER).await;
    let agent = start_agent("revoke-real-agent", api_b.port(), &token);
    wait_connected(&api_b).await;
    let (status, _) = api_a
        .delete(&format!("/admin/agent-tokens/{id}"))
        .await
        .unwrap();
    assert_eq!(status, 200);
    eventually("the link to close", Duration::from_secs(10), || async {
        let (_, body) = api_a
            .get(&format!("/clusters/{CLUSTER}/status"))
            .await
            .ok()?;
        (body["status"] == "disconnected").then_some(())
    })
    .await;
    eventually("the agent to be told", Duration::from_secs(10), || async {
        agent.logs().contains("revoked").then_some(())
    })
    .await;
    // The agent keeps trying with its old token and is refused every time.
    eventually(
        "the agent's retry to be refused",
        Duration::from_secs(20),
        || async {
            broker_b
                .logs()
                .contains("agent link refused: Revoked")
                .then_some(())
        },
    )
    .await;
    let (_, body) = api_b
        .get(&format!("/clusters/{CLUSTER}/status"))
        .await
        .unwrap();
    assert_eq!(body["status"], "disconnected", "{body}");
}

#[tokio::test]
async fn a_key_revoked_on_one_replica_ends_its_request_on_the_other() {
    let redis = Redis::start().await;
    let ((_a, api_a), (_b, api_b)) = replicas("revoke-key", &redis).await;
    // A scripted agent on B that never answers, so the execute waits.
    let mut ws = link(api_b.port(), CLUSTER, AGENT_TOKEN).await;
    let keep = tokio::spawn(async move { closed(&mut ws).await });
    let (status, body) = api_a
        .post(
            "/admin/api-keys",
            json!({ "scope": "read", "clusters": [CLUSTER] }),
        )
        .await
        .unwrap();
    assert_eq!(status, 201, "{body}");
    let key = body["key"].as_str().unwrap().to_owned();
    let id = body["id"].as_str().unwrap().to_owned();
    let caller = api_b.with_key(Some(&key));
    let session = caller.session().await;
    let waiting = {
        let caller = caller.clone();
        tokio::spawn(async move {
            caller
                .post(
                    "/debug/execute",
                    json!({ "cluster_id": CLUSTER, "session_id": session, "command_type": "version",
                            "args": [], "timeout": 60 }),
                )
                .await
                .unwrap()
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished());
    let started = Instant::now();
    let (status, _) = api_a
        .delete(&format!("/admin/api-keys/{id}"))
        .await
        .unwrap();
    assert_eq!(status, 200);
    let (status, body) = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("the request ends")
        .unwrap();
    println!(
        "revocation to 401 on the other replica: {:?}",
        started.elapsed()
    );
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["details"]["code"], "credential_ended", "{body}");
    let (status, body) = caller.get("/clusters").await.unwrap();
    assert_eq!(
        (status, body["details"]["code"].as_str()),
        (401, Some("revoked"))
    );
    keep.abort();
}
