//! Webhooks end to end: real broker and agent processes, Redis, and a real HTTP receiver in this
//! test that checks every delivery's Standard Webhooks signature with the secret it was given.
//!
//! Needs the test bed for the agent (`eval "$(scripts/testbed env)"`); run with `--nocapture`
//! to see the figures (time from an agent's death to the receiver hearing of it).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::{
    Api, BrokerOpts, Stack, eventually, start_agent_with, start_broker, wait_connected,
};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

/// How the receiver answers on a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// 503 with `Retry-After: 1` for the first two attempts of each `webhook-id`, then 200.
    Flaky,
    /// 200.
    Ok,
    /// 503 with `Retry-After: 1`, always.
    Down,
    /// 410 Gone.
    Gone,
}

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    id: String,
    signature_ok: bool,
    timestamp_ok: bool,
    body: Value,
    at: Instant,
    answered: u16,
}

impl Seen {
    fn event_type(&self) -> &str {
        self.body["type"].as_str().unwrap_or("")
    }
}

#[derive(Default)]
struct Inbox {
    /// Signing key (the decoded secret) and answering mode of each path.
    paths: HashMap<String, (Vec<u8>, Mode)>,
    seen: Vec<Seen>,
}

/// A webhook receiver on 127.0.0.1 (axum): `POST /{path}`.
#[derive(Clone)]
struct Receiver {
    addr: SocketAddr,
    inbox: Arc<Mutex<Inbox>>,
}

impl Receiver {
    async fn start() -> Self {
        let inbox = Arc::new(Mutex::new(Inbox::default()));
        let app = axum::Router::new()
            .route("/{path}", axum::routing::post(receive))
            .with_state(inbox.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { addr, inbox }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}/{path}", self.addr)
    }

    /// Verifies `path`'s deliveries with `secret` (`whsec_…`) and answers as `mode`.
    fn expect(&self, path: &str, secret: &str, mode: Mode) {
        let key = STANDARD
            .decode(secret.strip_prefix("whsec_").expect("a whsec_ secret"))
            .expect("base64 secret");
        let mut inbox = self.inbox.lock().unwrap();
        inbox.paths.insert(path.to_owned(), (key, mode));
    }

    fn set_mode(&self, path: &str, mode: Mode) {
        let mut inbox = self.inbox.lock().unwrap();
        inbox.paths.get_mut(path).expect("known path").1 = mode;
    }

    fn seen(&self, path: &str) -> Vec<Seen> {
        let inbox = self.inbox.lock().unwrap();
        inbox
            .seen
            .iter()
            .filter(|s| s.path == path)
            .cloned()
            .collect()
    }

    /// Every attempt of `event_type` on `path`, oldest first.
    fn attempts(&self, path: &str, event_type: &str) -> Vec<Seen> {
        self.seen(path)
            .into_iter()
            .filter(|s| s.event_type() == event_type)
            .collect()
    }

    /// Deliveries of `event_type` on `path` that were answered 200.
    fn delivered(&self, path: &str, event_type: &str) -> Vec<Seen> {
        self.attempts(path, event_type)
            .into_iter()
            .filter(|s| s.answered == 200)
            .collect()
    }
}

async fn receive(
    State(inbox): State<Arc<Mutex<Inbox>>>,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let (id, timestamp, signatures) = (
        header("webhook-id"),
        header("webhook-timestamp"),
        header("webhook-signature"),
    );
    let mut inbox = inbox.lock().unwrap();
    let Some((key, mode)) = inbox.paths.get(&path).cloned() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    // Standard Webhooks: HMAC-SHA256 over "{id}.{timestamp}.{body}", base64, after "v1,";
    // several space-separated signatures may be given.
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(&body);
    let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
    let signature_ok = signatures.split(' ').any(|s| s == expected);
    let now = chrono::Utc::now().timestamp();
    let timestamp_ok = timestamp
        .parse::<i64>()
        .is_ok_and(|t| (t - now).abs() <= 300);
    let earlier = inbox.seen.iter().filter(|s| s.id == id).count();
    let (status, retry_after) = match mode {
        _ if !signature_ok || !timestamp_ok => (StatusCode::UNAUTHORIZED, false),
        Mode::Flaky if earlier < 2 => (StatusCode::SERVICE_UNAVAILABLE, true),
        Mode::Flaky | Mode::Ok => (StatusCode::OK, false),
        Mode::Down => (StatusCode::SERVICE_UNAVAILABLE, true),
        Mode::Gone => (StatusCode::GONE, false),
    };
    inbox.seen.push(Seen {
        path,
        id,
        signature_ok,
        timestamp_ok,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        at: Instant::now(),
        answered: status.as_u16(),
    });
    if retry_after {
        (status, [("retry-after", "1")], "busy, come back later").into_response()
    } else {
        status.into_response()
    }
}

/// Registers an endpoint for `events` at the receiver's `path`, answering as `mode`; returns
/// its id.
async fn register(
    api: &Api,
    receiver: &Receiver,
    path: &str,
    events: &[&str],
    mode: Mode,
) -> String {
    let (status, body) = api
        .post(
            "/admin/webhooks",
            json!({ "url": receiver.url(path), "events": events, "description": path }),
        )
        .await
        .unwrap();
    assert_eq!(status, 201, "{body}");
    let secret = body["secret"].as_str().expect("secret");
    assert!(secret.starts_with("whsec_"), "{secret}");
    receiver.expect(path, secret, mode);
    body["id"].as_str().expect("id").to_owned()
}

/// The endpoint's delivery log.
async fn deliveries(api: &Api, id: &str) -> Vec<Value> {
    let (status, body) = api
        .get(&format!("/admin/webhooks/{id}/deliveries?limit=200"))
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    body["deliveries"].as_array().unwrap().clone()
}

/// Waits until the endpoint has nothing pending: what the receiver has seen is then all it
/// will see.
async fn settled(api: &Api, id: &str) {
    eventually("no pending deliveries", Duration::from_secs(60), || async {
        let (status, body) = api.get(&format!("/admin/webhooks/{id}")).await.ok()?;
        (status == 200 && body["pending_deliveries"] == 0).then_some(())
    })
    .await;
}

/// Distinct `webhook-id`s among `seen`.
fn ids(seen: &[Seen]) -> Vec<String> {
    let mut ids: Vec<String> = seen.iter().map(|s| s.id.clone()).collect();
    ids.dedup();
    ids.sort();
    ids.dedup();
    ids
}

const WEBHOOK_FLAGS: &[&str] = &["--webhook-allow-private", "--webhook-timeout-seconds", "5"];

/// Two replicas on one Redis; the endpoint registered on one, the agent linked to the other.
/// The receiver fails each delivery's first two attempts (503, `Retry-After: 1`) and checks every
/// signature: it gets one `cluster.connected` when the agent links, a `command.failed` for a
/// NotFound, and exactly one `cluster.disconnected` when the agent is killed.
#[tokio::test]
async fn cluster_and_command_events_reach_a_verifying_receiver_once() {
    let receiver = Receiver::start().await;
    let stack = Stack::build("wh")
        .redis()
        .replicas(2)
        .flags(WEBHOOK_FLAGS)
        .start()
        .await;
    let (api_a, api_b) = (stack.api(0), stack.api(1));
    let hook = register(
        &api_a,
        &receiver,
        "fleet",
        &[
            "cluster.connected",
            "cluster.disconnected",
            "command.failed",
        ],
        Mode::Flaky,
    )
    .await;

    // Cluster metadata addresses stay refused even with --webhook-allow-private.
    let (status, body) = api_a
        .post(
            "/admin/webhooks",
            json!({ "url": "http://169.254.169.254/latest/meta-data/", "events": ["cluster.connected"] }),
        )
        .await
        .unwrap();
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["details"]["field"], "url");

    let mut agent = start_agent_with(
        "wh-agent",
        api_b.port(),
        crate::support::CLUSTER,
        crate::support::AGENT_TOKEN,
        &[],
    );
    wait_connected(&api_a).await;
    let connected = eventually(
        "cluster.connected delivered",
        Duration::from_secs(30),
        || {
            let r = receiver.clone();
            async move { r.delivered("fleet", "cluster.connected").pop() }
        },
    )
    .await;
    assert_eq!(
        connected.body["data"]["cluster_id"],
        crate::support::CLUSTER
    );
    assert!(
        connected.body["data"]["broker_id"]
            .as_str()
            .unwrap()
            .starts_with("broker_")
    );
    assert!(connected.body["data"]["agent_version"].is_string());
    // Retried after the 503s, with the same id, no sooner than Retry-After said.
    let tries = receiver.attempts("fleet", "cluster.connected");
    assert_eq!(tries.len(), 3, "{tries:?}");
    assert_eq!(
        tries.iter().map(|s| s.answered).collect::<Vec<_>>(),
        [503, 503, 200]
    );
    assert_eq!(ids(&tries).len(), 1);
    for pair in tries.windows(2) {
        let gap = pair[1].at - pair[0].at;
        assert!(
            gap >= Duration::from_millis(950),
            "retried after {gap:?}, Retry-After was 1 s"
        );
    }

    // A command that fails as kubectl fails.
    let session = api_a.session().await;
    let (status, result) = api_a
        .execute(&session, "get", &["pods", "no-such-pod", "-n", "default"])
        .await;
    assert_eq!(status, 200, "{result}");
    assert_eq!(result["status"], "failed");
    let failed = eventually("command.failed delivered", Duration::from_secs(30), || {
        let r = receiver.clone();
        async move { r.delivered("fleet", "command.failed").pop() }
    })
    .await;
    let data = &failed.body["data"];
    assert_eq!(data["result_id"], result["result_id"]);
    assert_eq!(data["status"], "failed");
    assert_eq!(data["exit_code"], 1);
    assert_eq!(data["command_type"], "get");
    assert_eq!(
        data["args"],
        json!(["pods", "no-such-pod", "-n", "default"])
    );
    assert!(
        data["error"].as_str().unwrap().contains("NotFound"),
        "{data}"
    );

    // The agent dies.
    agent.kill();
    let killed = Instant::now();
    let first = eventually(
        "a cluster.disconnected attempt",
        Duration::from_secs(30),
        || {
            let r = receiver.clone();
            async move {
                r.attempts("fleet", "cluster.disconnected")
                    .into_iter()
                    .next()
            }
        },
    )
    .await;
    let heard = first.at.saturating_duration_since(killed);
    let delivered = eventually(
        "cluster.disconnected delivered",
        Duration::from_secs(30),
        || {
            let r = receiver.clone();
            async move { r.delivered("fleet", "cluster.disconnected").pop() }
        },
    )
    .await;
    println!(
        "figure: agent killed -> first cluster.disconnected attempt at the receiver: {} ms; \
         delivered (after two 503s with Retry-After: 1) at {} ms",
        heard.as_millis(),
        delivered.at.saturating_duration_since(killed).as_millis()
    );
    assert_eq!(
        delivered.body["data"]["cluster_id"],
        crate::support::CLUSTER
    );
    // Killed: its connection was reset (a clean exit would say "agent closed the link").
    let reason = delivered.body["data"]["reason"].as_str().unwrap();
    assert!(reason.contains("Connection reset"), "{reason}");
    assert_eq!(
        delivered.body["data"]["broker_id"], connected.body["data"]["broker_id"],
        "told by the replica that held the link"
    );
    assert!(delivered.body["data"]["last_seen"].is_string());

    // Once nothing is pending, the receiver has seen everything: one of each, each delivered
    // once, every request signed right.
    settled(&api_b, &hook).await;
    let all = receiver.seen("fleet");
    assert!(
        all.iter().all(|s| s.signature_ok && s.timestamp_ok),
        "{all:?}"
    );
    for event in [
        "cluster.connected",
        "cluster.disconnected",
        "command.failed",
    ] {
        assert_eq!(
            ids(&receiver.attempts("fleet", event)).len(),
            1,
            "one {event}"
        );
        assert_eq!(
            receiver.delivered("fleet", event).len(),
            1,
            "{event} delivered once"
        );
    }
    // The log says the same, from either replica.
    let log = deliveries(&api_b, &hook).await;
    assert_eq!(log.len(), 3, "{log:?}");
    let disconnected = log
        .iter()
        .find(|d| d["event_type"] == "cluster.disconnected")
        .unwrap();
    assert_eq!(disconnected["id"], delivered.id.as_str());
    assert_eq!(disconnected["status"], "delivered");
    assert_eq!(disconnected["attempts"], 3);
    assert_eq!(disconnected["next_attempt_at"], Value::Null);
    let codes: Vec<u64> = disconnected["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status_code"].as_u64().unwrap())
        .collect();
    assert_eq!(codes, [503, 503, 200]);
    assert_eq!(disconnected["payload"], delivered.body);

    // More tries for the figure: KUBELINE_WEBHOOK_TRIES=20 cargo test --test it
    // cluster_and -- --nocapture
    let tries: usize = std::env::var("KUBELINE_WEBHOOK_TRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut heard = vec![heard];
    for i in 0..tries {
        let before = ids(&receiver.attempts("fleet", "cluster.disconnected")).len();
        let connects = ids(&receiver.attempts("fleet", "cluster.connected")).len();
        let mut agent = start_agent_with(
            &format!("wh-agent-{i}"),
            api_b.port(),
            crate::support::CLUSTER,
            crate::support::AGENT_TOKEN,
            &[],
        );
        eventually("the agent linked again", Duration::from_secs(30), || {
            let r = receiver.clone();
            async move {
                (ids(&r.attempts("fleet", "cluster.connected")).len() > connects).then_some(())
            }
        })
        .await;
        agent.kill();
        let killed = Instant::now();
        let first = eventually(
            "the next cluster.disconnected",
            Duration::from_secs(30),
            || {
                let r = receiver.clone();
                async move {
                    let seen = r.attempts("fleet", "cluster.disconnected");
                    (ids(&seen).len() > before).then(|| seen.last().unwrap().at)
                }
            },
        )
        .await;
        heard.push(first.saturating_duration_since(killed));
    }
    if tries > 0 {
        heard.sort();
        println!(
            "figure: agent killed -> first cluster.disconnected attempt, {} tries: median {} ms, \
             max {} ms",
            heard.len(),
            heard[heard.len() / 2].as_millis(),
            heard.last().unwrap().as_millis()
        );
    }
}

/// An endpoint that answers 410 Gone is disabled after that one attempt and gets nothing more;
/// another endpoint of the same events goes on receiving (and shows when the second event was
/// emitted).
#[tokio::test]
async fn an_endpoint_that_answers_gone_is_disabled() {
    let receiver = Receiver::start().await;
    let (_broker, api) = start_broker("wh-gone", BrokerOpts::embedded().with(WEBHOOK_FLAGS)).await;
    let gone = register(&api, &receiver, "gone", &["command.failed"], Mode::Gone).await;
    register(&api, &receiver, "witness", &["command.failed"], Mode::Ok).await;
    let session = api.session().await;
    // A kubectl usage error: a failed result the broker answers itself (no agent needed).
    let (status, result) = api.execute(&session, "get", &[]).await;
    assert_eq!(status, 200, "{result}");
    assert_eq!(result["status"], "failed");

    let disabled = eventually("the endpoint disabled", Duration::from_secs(30), || async {
        let (_, body) = api.get(&format!("/admin/webhooks/{gone}")).await.ok()?;
        body["disabled_at"].is_string().then_some(body)
    })
    .await;
    assert_eq!(
        disabled["disabled_reason"],
        "the endpoint answered 410 Gone"
    );
    let log = deliveries(&api, &gone).await;
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(log[0]["status"], "failed");
    assert_eq!(log[0]["last_status_code"], 410);
    assert_eq!(log[0]["attempts"], 1);
    assert_eq!(receiver.attempts("gone", "command.failed").len(), 1);

    // A second failure reaches the witness, not the disabled endpoint.
    let (_, second) = api.execute(&session, "describe", &[]).await;
    assert_eq!(second["status"], "failed");
    eventually(
        "the second event at the witness",
        Duration::from_secs(30),
        || {
            let r = receiver.clone();
            async move { (r.delivered("witness", "command.failed").len() == 2).then_some(()) }
        },
    )
    .await;
    assert_eq!(deliveries(&api, &gone).await.len(), 1);
    assert_eq!(receiver.attempts("gone", "command.failed").len(), 1);
    // The broker's decision is in the audit trail.
    let (_, audit) = api.get("/audit?action=webhook.disable").await.unwrap();
    assert_eq!(audit["records"][0]["target"], gone.as_str(), "{audit}");
}

/// A delivery still pending when its broker is killed is delivered by the next broker on the
/// same Redis: same `webhook-id`, signed with the secret the first broker issued.
#[tokio::test]
async fn pending_deliveries_survive_a_broker_restart() {
    let redis = crate::support::Redis::start().await;
    let receiver = Receiver::start().await;
    let flags = [WEBHOOK_FLAGS, &["--session-ttl", "1"]].concat();
    let (mut first, api) = start_broker("wh-r1", BrokerOpts::redis(&redis).with(&flags)).await;
    let hook = register(&api, &receiver, "later", &["session.expired"], Mode::Down).await;
    let session = api.session().await;
    // The session expires within a second; the receiver is down.
    let failed = eventually(
        "a failed session.expired attempt",
        Duration::from_secs(30),
        || {
            let r = receiver.clone();
            async move { r.attempts("later", "session.expired").into_iter().next() }
        },
    )
    .await;
    assert_eq!(failed.answered, 503);
    assert_eq!(failed.body["data"]["session_id"], session.as_str());
    let pending = deliveries(&api, &hook).await;
    assert_eq!(pending[0]["status"], "pending");
    assert!(pending[0]["next_attempt_at"].is_string());

    first.kill();
    receiver.set_mode("later", Mode::Ok);
    let (_second, api2) = start_broker("wh-r2", BrokerOpts::redis(&redis).with(&flags)).await;
    let delivered = eventually(
        "the delivery after the restart",
        Duration::from_secs(60),
        || {
            let r = receiver.clone();
            async move { r.delivered("later", "session.expired").pop() }
        },
    )
    .await;
    assert_eq!(
        delivered.id, failed.id,
        "the same webhook-id across the restart"
    );
    assert!(delivered.signature_ok);
    assert_eq!(delivered.body, failed.body, "the same body");
    settled(&api2, &hook).await;
    assert_eq!(ids(&receiver.attempts("later", "session.expired")).len(), 1);
    let log = deliveries(&api2, &hook).await;
    assert_eq!(log.len(), 1);
    assert_eq!(log[0]["status"], "delivered");
}

/// Every bad registration is a 400 naming its field, and leaves nothing behind.
#[tokio::test]
async fn bad_webhooks_are_refused_naming_the_field() {
    // Without --webhook-allow-private: loopback, private and link-local targets are refused.
    let (_broker, api) = start_broker("wh-bad", BrokerOpts::embedded()).await;
    let events = json!(["cluster.disconnected"]);
    let cases = [
        (
            json!({ "events": events }),
            "url",
            "Missing required field: url",
        ),
        (
            json!({ "url": "https://8.8.8.8/h" }),
            "events",
            "Missing required field: events",
        ),
        (
            json!({ "url": "https://8.8.8.8/h", "events": ["cluster.gone"] }),
            "events[0]",
            "unknown event type",
        ),
        (
            json!({ "url": "https://8.8.8.8/h", "events": [] }),
            "events",
            "event types",
        ),
        (
            json!({ "url": "gopher://8.8.8.8/", "events": events }),
            "url",
            "not http or https",
        ),
        (
            json!({ "url": "https://admin:hunter2@8.8.8.8/", "events": events }),
            "url",
            "user or password",
        ),
        (
            json!({ "url": format!("https://8.8.8.8/{}", "x".repeat(3000)), "events": events }),
            "url",
            "at most 2048",
        ),
        (
            json!({ "url": "http://127.0.0.1:9/", "events": events }),
            "url",
            "loopback",
        ),
        (
            json!({ "url": "http://localhost:9/", "events": events }),
            "url",
            "loopback",
        ),
        (
            json!({ "url": "http://[::1]:9/", "events": events }),
            "url",
            "loopback",
        ),
        (
            json!({ "url": "http://192.168.0.10/", "events": events }),
            "url",
            "private",
        ),
        (
            json!({ "url": "http://169.254.169.254/latest/meta-data/", "events": events }),
            "url",
            "metadata",
        ),
        (
            json!({ "url": "http://[fe80::1]/", "events": events }),
            "url",
            "link-local",
        ),
        (
            json!({ "url": "http://2130706433/", "events": events }),
            "url",
            "loopback",
        ),
    ];
    for (body, field, says) in cases {
        let (status, answer) = api.post("/admin/webhooks", body.clone()).await.unwrap();
        assert_eq!(status, 400, "{body}: {answer}");
        assert_eq!(answer["error"], "invalid_request", "{answer}");
        assert_eq!(answer["details"]["field"], field, "{body}: {answer}");
        let message = answer["message"].as_str().unwrap();
        assert!(message.contains(says), "{body}: {message}");
    }
    // Only admins.
    let reader = api.with_key(Some(crate::support::READ_KEY));
    let (status, answer) = reader
        .post(
            "/admin/webhooks",
            json!({ "url": "https://8.8.8.8/h", "events": events }),
        )
        .await
        .unwrap();
    assert_eq!(status, 403, "{answer}");
    let (status, list) = api.get("/admin/webhooks").await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(list["webhooks"], json!([]), "nothing left behind");
}
