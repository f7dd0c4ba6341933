//! Trust across replicas: credentials made and revoked on one broker replica hold on the other
//! at once, agent links close when their token is revoked, and a revoked key's requests in
//! flight end. Two real broker processes share one real Redis.
//!
//! `KUBELINE_REVOKE_TRIES=20 cargo test --test it trust::revoking_an_agent_token -- --nocapture`
//! measures the time from revocation to the link's close over that many tries.

use std::time::{Duration, Instant};

use crate::support::ws::{self, Socket};
use crate::support::*;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// A scripted agent: links to the broker on `port` as `cluster` with `token`, says hello and
/// reads the welcome.
async fn link(port: u16, cluster: &str, token: &str) -> Socket {
    ws::scripted_agent(port, cluster, token, &[]).await
}

/// Reads the link (answering pings) until the broker closes it; returns the close frame's code
/// and reason.
async fn closed(ws: &mut Socket) -> (u16, String) {
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
    let stack = Stack::build("revoke-agent")
        .redis()
        .replicas(2)
        .start()
        .await;
    let (api_a, api_b) = (stack.api(0), stack.api(1));
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
            match ws::connect(ws::agent_request(port, &cluster, &token)).await {
                Err(refusal) => {
                    assert_eq!(refusal.status, 401, "{refusal:?}");
                    assert!(refusal.body.contains("revoked"), "{refusal:?}");
                }
                Ok(_) => panic!("expected a 401, got a link"),
            }
        }
    }
    // The refused links are in the audit trail (both replicas write to it).
    let (status, page) = api_a
        .get("/audit?action=auth.failure&limit=100")
        .await
        .unwrap();
    assert_eq!(status, 200, "{page}");
    let refused = page["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["credential_kind"] == "agent_token" && r["cluster_id"] == "revoke-0")
        .count();
    assert!(refused >= 2, "{page}");
    let (_, verified) = api_a.get("/audit/verify").await.unwrap();
    assert_eq!(verified["ok"], true, "{verified}");
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
    let stack = Stack::build("revoke-real")
        .redis()
        .replicas(2)
        .start()
        .await;
    let (api_a, api_b) = (stack.api(0), stack.api(1));
    let broker_b = &stack.brokers[1];
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
    let stack = Stack::build("revoke-key").redis().replicas(2).start().await;
    let (api_a, api_b) = (stack.api(0), stack.api(1));
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

// === rate limits ===

#[tokio::test]
async fn two_replicas_share_one_rate_limit_budget() {
    let stack = Stack::build("rl")
        .redis()
        .replicas(2)
        .flags(&["--rate-limit-session-create", "4"])
        .start()
        .await;
    let (api_a, api_b) = (stack.api(0), stack.api(1));
    let body = json!({ "cluster_id": CLUSTER }).to_string();
    let mut remaining = Vec::new();
    for i in 0..4 {
        let api = if i % 2 == 0 { &api_a } else { &api_b };
        let (status, headers, answer) = api.post_raw("/debug/session", &body, &[]).await.unwrap();
        assert_eq!(status, 201, "{answer}");
        assert_eq!(headers["x-ratelimit-limit"], "4");
        remaining.push(
            headers["x-ratelimit-remaining"]
                .to_str()
                .unwrap()
                .to_owned(),
        );
        let reset: u64 = headers["x-ratelimit-reset"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!(
            reset >= now && reset <= now + 61,
            "reset {reset} is epoch seconds"
        );
    }
    assert_eq!(
        remaining,
        ["3", "2", "1", "0"],
        "one budget across both replicas"
    );
    for api in [&api_a, &api_b] {
        let (status, headers, answer) = api.post_raw("/debug/session", &body, &[]).await.unwrap();
        assert_eq!(status, 429, "{answer}");
        assert_eq!(answer["error"], "rate_limited");
        assert_eq!(answer["details"]["limit"], 4);
        assert_eq!(answer["details"]["window"], "1m");
        let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
        assert_eq!(answer["details"]["retry_after"], retry);
        assert!((1..=15).contains(&retry), "{retry}");
        assert_eq!(headers["x-ratelimit-remaining"], "0");
    }
    // Other classes and other credentials have their own budgets.
    let (status, _) = api_a.get("/clusters").await.unwrap();
    assert_eq!(status, 200);
    let reader = api_b.with_key(Some(READ_KEY));
    let (status, _, answer) = reader.post_raw("/debug/session", &body, &[]).await.unwrap();
    assert_eq!(status, 201, "{answer}");
    // Nothing was created by the refused calls.
    let (_, sessions) = api_a.get("/debug/sessions?limit=1000").await.unwrap();
    assert_eq!(sessions["total"], 5, "{sessions}");
}

// === JWT callers ===

mod issuer {
    //! A real OIDC issuer on loopback: discovery and JWKS over HTTP, ES256 keys made here.

    use axum::Json;
    use axum::routing::get;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
    use p256::elliptic_curve::rand_core::OsRng;
    use p256::elliptic_curve::sec1::ToEncodedPoint;
    use p256::pkcs8::EncodePrivateKey;
    use serde_json::{Value, json};

    pub const AUDIENCE: &str = "kubeline-e2e";

    pub struct Key {
        encoding: EncodingKey,
        pub jwk: Value,
    }

    impl Key {
        pub fn new(kid: &str) -> Self {
            let secret = p256::SecretKey::random(&mut OsRng);
            let der = secret.to_pkcs8_der().unwrap();
            let point = secret.public_key().to_encoded_point(false);
            let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
            Self {
                encoding: EncodingKey::from_ec_der(der.as_bytes()),
                jwk: json!({ "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": kid,
                             "x": b64(point.x().unwrap()), "y": b64(point.y().unwrap()) }),
            }
        }

        pub fn sign(&self, claims: &Value) -> String {
            let mut header = Header::new(Algorithm::ES256);
            header.kid = self.jwk["kid"].as_str().map(str::to_owned);
            encode(&header, claims, &self.encoding).unwrap()
        }
    }

    /// Serves discovery and the JWKS of `keys`; returns the issuer URL.
    pub async fn serve(keys: &[&Key]) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let jwks = json!({ "keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>() });
        let discovery = json!({ "issuer": url, "jwks_uri": format!("{url}/jwks") });
        let app = axum::Router::new()
            .route(
                "/.well-known/openid-configuration",
                get(move || async move { Json(discovery) }),
            )
            .route("/jwks", get(move || async move { Json(jwks) }));
        tokio::spawn(async move { axum::serve(listener, app).await });
        url
    }

    pub fn claims(issuer: &str, sub: &str, groups: &[&str], exp_in: i64) -> Value {
        let now = chrono::Utc::now().timestamp();
        json!({ "iss": issuer, "aud": AUDIENCE, "sub": sub, "groups": groups,
                "iat": now, "exp": now + exp_in })
    }
}

#[tokio::test]
async fn jwt_callers_from_a_real_issuer_get_what_their_groups_grant() {
    let key = issuer::Key::new("k1");
    let stranger = issuer::Key::new("k2");
    let url = issuer::serve(&[&key]).await;
    let (_broker, api) = start_broker(
        "jwt",
        BrokerOpts::embedded().with(&[
            "--jwt-issuer",
            &url,
            "--jwt-audience",
            issuer::AUDIENCE,
            "--jwt-grant",
            &format!("group:sre=read@{CLUSTER}"),
            "--jwt-grant",
            "group:ops=admin@*",
        ]),
    )
    .await;
    let token = key.sign(&issuer::claims(&url, "alice", &["sre"], 300));
    let alice = api.with_key(Some(&token));
    let (status, body) = alice
        .post("/debug/session", json!({ "cluster_id": CLUSTER }))
        .await
        .unwrap();
    assert_eq!(status, 201, "{body}");
    let (status, body) = alice
        .post("/debug/session", json!({ "cluster_id": "elsewhere" }))
        .await
        .unwrap();
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["details"]["code"], "cluster_not_granted");
    let (status, _) = alice.get("/admin/api-keys").await.unwrap();
    assert_eq!(status, 403, "read on one cluster is not a broker admin");
    let ops = key.sign(&issuer::claims(&url, "bob", &["ops"], 300));
    let (status, _) = api
        .with_key(Some(&ops))
        .get("/admin/api-keys")
        .await
        .unwrap();
    assert_eq!(status, 200);
    // Alice sees her session; Bob (admin) sees it too; Carol (no matching group) nothing.
    let (_, listed) = alice.get("/debug/sessions").await.unwrap();
    assert_eq!(listed["total"], 1, "{listed}");
    let carol = key.sign(&issuer::claims(&url, "carol", &["dev"], 300));
    let (status, body) = api
        .with_key(Some(&carol))
        .get(&format!("/clusters/{CLUSTER}/status"))
        .await
        .unwrap();
    assert_eq!(
        status, 403,
        "a valid token matching no grant reaches nothing: {body}"
    );

    // Refusals say which check failed.
    let mut wrong_aud = issuer::claims(&url, "alice", &["sre"], 300);
    wrong_aud["aud"] = json!("someone-else");
    let mut wrong_iss = issuer::claims(&url, "alice", &["sre"], 300);
    wrong_iss["iss"] = json!("https://evil.example");
    let good = key.sign(&issuer::claims(&url, "alice", &["sre"], 300));
    let (head, rest) = good.split_once('.').unwrap();
    let (_, sig) = rest.split_once('.').unwrap();
    let forged_payload = URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(&issuer::claims(&url, "alice", &["ops"], 300)).unwrap());
    let tampered = format!("{head}.{forged_payload}.{sig}");
    for (token, needle) in [
        (
            key.sign(&issuer::claims(&url, "alice", &["sre"], -120)),
            "expired",
        ),
        (key.sign(&wrong_aud), "audience"),
        (key.sign(&wrong_iss), "issuer"),
        (
            stranger.sign(&issuer::claims(&url, "alice", &["sre"], 300)),
            "key id",
        ),
        (tampered, "signature"),
    ] {
        let (status, body) = api.with_key(Some(&token)).get("/clusters").await.unwrap();
        assert_eq!(status, 401, "{needle}: {body}");
        assert_eq!(body["details"]["code"], "invalid_token", "{body}");
        let message = body["message"].as_str().unwrap();
        assert!(message.contains(needle), "{needle}: {message}");
    }

    // MCP clients find the issuer from a 401: the challenge names the protected-resource
    // metadata (RFC 9728), which is public and names the issuer.
    let base = format!("http://127.0.0.1:{}", api.port());
    let http = reqwest::Client::new();
    let refused = http
        .post(format!("{base}/mcp"))
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let challenge = refused.headers()["www-authenticate"].to_str().unwrap();
    let metadata_url = format!("{base}/.well-known/oauth-protected-resource/mcp");
    assert_eq!(
        challenge,
        format!("Bearer realm=\"kubeline\", resource_metadata=\"{metadata_url}\"")
    );
    let metadata: serde_json::Value = http
        .get(&metadata_url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(metadata["resource"], format!("{base}/mcp"));
    assert_eq!(metadata["authorization_servers"], json!([url]));
    // And a JWT caller reaches the MCP tools as it reaches REST.
    let listed: serde_json::Value = http
        .post(format!("{base}/mcp"))
        .bearer_auth(key.sign(&issuer::claims(&url, "alice", &["sre"], 300)))
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-11-25")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "list_clusters", "arguments": {}}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        listed["result"]["structuredContent"]["clusters"][0]["cluster_id"], CLUSTER,
        "{listed}"
    );
}

#[tokio::test]
async fn a_jwt_request_ends_when_its_token_expires() {
    let key = issuer::Key::new("k1");
    let url = issuer::serve(&[&key]).await;
    let port = free_port();
    let (_broker, api) = start_broker(
        "jwt-exp",
        BrokerOpts {
            port,
            redis_url: None,
            extra: Vec::new(),
        }
        .with(&[
            "--jwt-issuer",
            &url,
            "--jwt-audience",
            issuer::AUDIENCE,
            "--jwt-leeway-seconds",
            "0",
            "--jwt-grant",
            "group:sre=read@*",
        ]),
    )
    .await;
    let mut ws = link(port, CLUSTER, AGENT_TOKEN).await;
    let keep = tokio::spawn(async move { closed(&mut ws).await });
    let token = key.sign(&issuer::claims(&url, "alice", &["sre"], 3));
    let alice = api.with_key(Some(&token));
    let session = alice.session().await;
    let started = Instant::now();
    let (status, body) = alice
        .post(
            "/debug/execute",
            json!({ "cluster_id": CLUSTER, "session_id": session, "command_type": "version",
                    "args": [], "timeout": 60 }),
        )
        .await
        .unwrap();
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["details"]["code"], "credential_ended");
    assert!(
        body["message"].as_str().unwrap().contains("expired"),
        "{body}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    keep.abort();
}

#[tokio::test]
async fn a_rotated_agent_token_closes_its_link_when_the_overlap_ends() {
    let stack = Stack::build("rotate").redis().replicas(2).start().await;
    let (api_a, api_b) = (stack.api(0), stack.api(1));
    let (old, _) = new_agent_token(&api_a, "rotating").await;
    let mut ws = link(api_b.port(), "rotating", &old).await;
    let (status, body) = api_a
        .post(
            "/admin/agent-tokens",
            json!({ "cluster_id": "rotating", "overlap_seconds": 2 }),
        )
        .await
        .unwrap();
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["replaced"].as_array().unwrap().len(), 1);
    let started = Instant::now();
    let (code, reason) = tokio::time::timeout(Duration::from_secs(15), closed(&mut ws))
        .await
        .expect("the old link closes after the overlap");
    assert_eq!(code, 4001, "{reason}");
    assert!(reason.contains("expired"), "{reason}");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(1500),
        "not before the overlap ends: {waited:?}"
    );
    // The new token links.
    let new = body["token"].as_str().unwrap();
    let _ws = link(api_b.port(), "rotating", new).await;
}

/// Agents that break the link protocol — a frame that is not one of its JSON messages, a frame
/// over the broker's 1 MiB limit — are closed with a code that says which (1002, 1009) and the
/// reason, logged and counted; the broker's other links keep serving.
#[tokio::test]
async fn an_agent_breaking_the_link_protocol_is_closed_and_the_others_keep_serving() {
    let (broker, api) = start_broker(
        "bad-frames",
        BrokerOpts::embedded().with(&[
            "--agent-token",
            "garbage=tok-garbage",
            "--agent-token",
            "huge=tok-huge",
        ]),
    )
    .await;
    let port = api.port();
    let mut good = ws::scripted_agent(port, CLUSTER, AGENT_TOKEN, &["version"]).await;

    let mut garbage = link(port, "garbage", "tok-garbage").await;
    garbage
        .send(Message::Text("{not json".into()))
        .await
        .unwrap();
    let (code, reason) = closed(&mut garbage).await;
    assert_eq!(code, 1002, "{reason}");
    assert!(reason.starts_with("unreadable frame: "), "{reason}");

    // A text frame that says it holds 2 MiB: the broker refuses it by its header, without
    // reading it. (Only the header and a little of the frame are written: a whole 2 MiB write
    // would race the broker's close and end in a reset instead of a readable close frame.)
    let mut huge = link(port, "huge", "tok-huge").await;
    let mut start = vec![0x81, 0x80 | 127];
    start.extend_from_slice(&(2u64 << 20).to_be_bytes());
    start.extend_from_slice(&[0x37, 0xfa, 0x21, 0x3d]); // the mask key a client must send
    start.extend_from_slice(&[0; 64]);
    match huge.get_mut() {
        tokio_tungstenite::MaybeTlsStream::Plain(tcp) => {
            tokio::io::AsyncWriteExt::write_all(tcp, &start)
                .await
                .unwrap()
        }
        _ => unreachable!("a plain TCP link"),
    }
    let (code, reason) = closed(&mut huge).await;
    assert_eq!(
        (code, reason.as_str()),
        (1009, "frame over the 1024 KiB limit")
    );

    // The good agent's link serves on.
    let session = api.session().await;
    let caller = {
        let (api, session) = (api.clone(), session.clone());
        tokio::spawn(async move { api.execute(&session, "version", &[]).await })
    };
    let command = ws::next_execute(&mut good).await;
    for reply in [
        json!({"type": "output", "result_id": command["result_id"], "data": "v1\n"}),
        json!({"type": "done", "result_id": command["result_id"], "status": "completed",
               "exit_code": 0, "error": null, "execution_time_ms": 1, "truncated": null}),
    ] {
        good.send(Message::Text(reply.to_string().into()))
            .await
            .unwrap();
    }
    let (status, body) = caller.await.unwrap();
    assert_eq!((status, &body["output"]), (200, &json!("v1\n")), "{body}");

    let logs = broker.logs();
    assert!(
        logs.contains("closing agent link") && logs.contains("code=1002"),
        "{logs}"
    );
    assert!(logs.contains("code=1009"), "{logs}");
    let (_, metrics) = api.get("/metrics").await.unwrap();
    assert!(
        metrics
            .as_str()
            .unwrap_or_default()
            .contains(r#"kubeline_agent_link_events_total{event="bad_frame"} 2"#),
        "{metrics}"
    );
}
