//! Router tests of the HTTP edge: every refusal, the framework's own included, has the
//! contract's `{"error","message","details"}` body, and the amplification limits hold.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::header::{ALLOW, RETRY_AFTER};
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::limits::ExecuteLimits;
use crate::store::CredentialKind;
use crate::tests::{link_elsewhere, state_with};
use crate::{
    AppState, DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_EXECUTES_PER_CLUSTER,
    DEFAULT_MAX_EXECUTES_PER_KEY, DEFAULT_MAX_QUEUE_PER_CLUSTER, app,
};

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Value,
}

async fn default_state() -> AppState {
    state_with(ExecuteLimits::new(
        DEFAULT_MAX_EXECUTES_PER_KEY,
        DEFAULT_MAX_EXECUTES_PER_CLUSTER,
        DEFAULT_MAX_QUEUE_PER_CLUSTER,
    ))
    .await
}

async fn send(router: Router, req: Request<Body>) -> Answer {
    let res = router.oneshot(req).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
        .await
        .unwrap();
    let body = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
        panic!(
            "{status}: body is not JSON: {:?}",
            String::from_utf8_lossy(&bytes)
        )
    });
    Answer {
        status,
        headers,
        body,
    }
}

async fn call(req: Request<Body>) -> Answer {
    send(app(default_state().await), req).await
}

/// Asserts the contract's error shape and returns the body.
fn refused(answer: &Answer, status: StatusCode, error: &str) -> Value {
    assert_eq!(answer.status, status, "{}", answer.body);
    let body = &answer.body;
    assert_eq!(body["error"], error, "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert!(body["details"].is_object(), "details missing: {body}");
    let keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["details", "error", "message"], "{body}");
    body.clone()
}

fn get(path: &str, key: &str) -> Request<Body> {
    Request::get(path)
        .header("authorization", format!("Bearer {key}"))
        .body(Body::empty())
        .unwrap()
}

fn post_raw(path: &str, content_type: Option<&str>, body: impl Into<Body>) -> Request<Body> {
    let mut req = Request::post(path).header("authorization", "Bearer rd");
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    req.body(body.into()).unwrap()
}

fn post_json(path: &str, key: &str, body: &Value) -> Request<Body> {
    Request::post(path)
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

// === the framework's refusals ===

#[tokio::test]
async fn wrong_method_is_405_json_with_allow() {
    for (method, path, allow) in [
        ("DELETE", "/debug/execute", "POST"),
        ("GET", "/debug/execute", "POST"),
        ("PUT", "/debug/session/sess_x", "GET,HEAD,DELETE"),
        ("POST", "/health", "GET,HEAD"),
        ("POST", kubeline_shared::protocol::CONNECT_PATH, "GET,HEAD"),
    ] {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", "Bearer adm")
            .body(Body::empty())
            .unwrap();
        let answer = call(req).await;
        let body = refused(
            &answer,
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        );
        assert_eq!(body["details"]["method"], method);
        assert_eq!(body["details"]["path"], path);
        let got = answer.headers[ALLOW].to_str().unwrap();
        let mut got: Vec<&str> = got.split(',').map(str::trim).collect();
        let mut want: Vec<&str> = allow.split(',').collect();
        got.sort_unstable();
        want.sort_unstable();
        assert_eq!(got, want, "{method} {path}");
        assert!(
            answer.headers.contains_key("x-correlation-id"),
            "the middleware still runs"
        );
    }
}

#[tokio::test]
async fn body_over_the_limit_is_413_naming_the_limit() {
    let big = format!(
        r#"{{"cluster_id":"c1","pad":"{}"}}"#,
        "x".repeat(DEFAULT_MAX_BODY_BYTES)
    );
    // Declared by Content-Length: refused before reading.
    let answer = call(post_raw(
        "/debug/execute",
        Some("application/json"),
        big.clone(),
    ))
    .await;
    let body = refused(&answer, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    assert_eq!(body["details"]["limit_bytes"], DEFAULT_MAX_BODY_BYTES);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains(&format!("{DEFAULT_MAX_BODY_BYTES} bytes")),
        "{body}"
    );
    // Streamed without a length: refused once the limit is passed.
    let chunks: Vec<Result<String, std::io::Error>> = big
        .as_bytes()
        .chunks(4096)
        .map(|c| Ok(String::from_utf8(c.to_vec()).unwrap()))
        .collect();
    let stream = Body::from_stream(futures::stream::iter(chunks));
    let answer = call(post_raw("/debug/session", Some("application/json"), stream)).await;
    refused(&answer, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    // Just under the limit is read (and then judged on its fields).
    let fits = format!(r#"{{"pad":"{}"}}"#, "x".repeat(DEFAULT_MAX_BODY_BYTES - 20));
    let answer = call(post_raw("/debug/session", Some("application/json"), fits)).await;
    let body = refused(&answer, StatusCode::BAD_REQUEST, "invalid_request");
    assert_eq!(body["details"]["field"], "cluster_id");
}

#[tokio::test]
async fn path_segment_that_is_not_utf8_is_400_naming_the_parameter() {
    for (path, field) in [
        ("/debug/session/%FF%FE", "session_id"),
        ("/debug/result/res_%C3%28", "result_id"),
        ("/clusters/%80/status", "cluster_id"),
    ] {
        let answer = call(get(path, "adm")).await;
        let body = refused(&answer, StatusCode::BAD_REQUEST, "invalid_request");
        assert_eq!(body["details"]["field"], field, "{path}");
        assert!(
            body["message"].as_str().unwrap().contains("UTF-8"),
            "{body}"
        );
    }
}

#[tokio::test]
async fn repeated_or_unusable_query_parameters_are_400_naming_them() {
    let answer = call(get("/debug/sessions?status=active&status=closed", "adm")).await;
    let body = refused(&answer, StatusCode::BAD_REQUEST, "invalid_request");
    assert_eq!(body["details"]["field"], "status");
    assert_eq!(body["details"]["code"], "repeated_parameter");
    assert!(body["message"].as_str().unwrap().contains("more than once"));

    // Broken percent-encoding and bytes that are not UTF-8 end as values that are refused by
    // name, never as a plain-text rejection.
    for (query, field) in [("limit=%FF", "limit"), ("status=%ZZ", "status")] {
        let answer = call(get(&format!("/debug/sessions?{query}"), "adm")).await;
        let body = refused(&answer, StatusCode::BAD_REQUEST, "invalid_request");
        assert_eq!(body["details"]["field"], field, "{query}");
    }
    // Unknown parameters are ignored, as before, but one rule holds for every parameter: given
    // twice, it is refused.
    let answer = call(get("/debug/sessions?foo=1&limit=5", "adm")).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let answer = call(get("/debug/sessions?foo=1&foo=2&limit=5", "adm")).await;
    let body = refused(&answer, StatusCode::BAD_REQUEST, "invalid_request");
    assert_eq!(body["details"]["field"], "foo");
}

#[tokio::test]
async fn a_body_not_declared_as_json_is_415() {
    let body = r#"{"cluster_id":"c1"}"#;
    for (path, content_type) in [
        ("/debug/session", Some("text/plain")),
        ("/debug/execute", Some("application/x-www-form-urlencoded")),
        ("/debug/session", None),
    ] {
        let answer = call(post_raw(path, content_type, body)).await;
        let got = refused(
            &answer,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        );
        assert_eq!(got["details"]["expected"], "application/json");
        assert_eq!(got["details"]["content_type"], json!(content_type));
    }
    // With parameters, or as a +json type, it is JSON.
    let answer = call(post_raw(
        "/debug/session",
        Some("application/json; charset=utf-8"),
        body,
    ))
    .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    // An empty body with no Content-Type reads as `{}`: the missing field is named.
    let answer = call(post_raw("/debug/session", None, "")).await;
    let got = refused(&answer, StatusCode::BAD_REQUEST, "invalid_request");
    assert_eq!(got["details"]["field"], "cluster_id");
}

#[tokio::test]
async fn json_errors_name_line_column_and_field() {
    let answer = call(post_raw(
        "/debug/execute",
        Some("application/json"),
        "{\n  \"cluster_id\": \"c1\",\n  \"args\": [\"pods\",]\n}",
    ))
    .await;
    let body = refused(&answer, StatusCode::BAD_REQUEST, "invalid_request");
    assert_eq!(body["details"]["code"], "invalid_json");
    assert_eq!(body["details"]["line"], 3);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("(line 3, column"),
        "{body}"
    );

    let answer = call(post_json(
        "/debug/execute",
        "rd",
        &json!({ "cluster_id": "c1", "args": "pods" }),
    ))
    .await;
    let body = refused(&answer, StatusCode::BAD_REQUEST, "invalid_request");
    assert_eq!(body["details"]["field"], "args", "{body}");
    assert_eq!(body["details"]["code"], "invalid_value");
    assert!(body["message"].as_str().unwrap().contains("field args"));

    let answer = call(post_json(
        "/debug/execute",
        "rd",
        &json!({ "cluster_id": "c1", "args": ["get", 7] }),
    ))
    .await;
    let body = refused(&answer, StatusCode::BAD_REQUEST, "invalid_request");
    assert_eq!(body["details"]["field"], "args[1]", "{body}");

    let answer = call(post_json(
        "/debug/session",
        "rd",
        &json!({ "cluster_id": 5 }),
    ))
    .await;
    let body = refused(&answer, StatusCode::BAD_REQUEST, "invalid_request");
    assert_eq!(body["details"]["field"], "cluster_id", "{body}");

    let answer = call(post_json("/debug/session", "rd", &json!(["c1"]))).await;
    let body = refused(&answer, StatusCode::BAD_REQUEST, "invalid_request");
    assert_eq!(body["details"]["field"], "body", "{body}");

    // Missing fields are named (the handler's check, reached through the same extractor).
    let answer = call(post_json(
        "/debug/execute",
        "rd",
        &json!({ "cluster_id": "c1" }),
    ))
    .await;
    let body = refused(&answer, StatusCode::BAD_REQUEST, "invalid_request");
    assert_eq!(body["details"]["field"], "session_id", "{body}");
    assert_eq!(body["details"]["code"], "missing_required_field");
}

#[tokio::test]
async fn a_plain_get_on_the_link_path_is_400_json() {
    let answer = call(get(kubeline_shared::protocol::CONNECT_PATH, "whatever")).await;
    let body = refused(&answer, StatusCode::BAD_REQUEST, "invalid_request");
    assert_eq!(body["details"]["code"], "websocket_upgrade_required");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("is the agent WebSocket endpoint"),
        "{body}"
    );
}

#[tokio::test]
async fn unknown_paths_and_bad_credentials_keep_the_shape() {
    let answer = call(get("/nope", "adm")).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert_eq!(answer.body["error"], "not_found");
    let answer = call(get("/debug/sessions", "wrong")).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer.body["error"], "unauthorized");
}

// === amplification limits ===

/// A state whose cluster `c1` is linked to another replica (so executes are queued and wait),
/// with the given limits, and a session of `c1`.
async fn linked(limits: ExecuteLimits) -> (AppState, String) {
    let state = state_with(limits).await;
    link_elsewhere(&state, "c1").await;
    let answer = send(
        app(state.clone()),
        post_json("/debug/session", "rd", &json!({ "cluster_id": "c1" })),
    )
    .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    let session = answer.body["session_id"].as_str().unwrap().to_owned();
    (state, session)
}

fn execute(key: &str, session: &str) -> Request<Body> {
    post_json(
        "/debug/execute",
        key,
        &json!({ "cluster_id": "c1", "session_id": session, "command_type": "version",
                 "args": [], "timeout": 60 }),
    )
}

/// Starts an execute that waits (nobody takes the queue) until aborted, as a caller that
/// disconnects would be.
async fn waiting_execute(
    state: &AppState,
    key: &str,
    session: &str,
) -> tokio::task::JoinHandle<Answer> {
    let before = state.hub.waiting();
    let task = tokio::spawn(send(app(state.clone()), execute(key, session)));
    while state.hub.waiting() == before {
        assert!(!task.is_finished(), "the execute was answered at once");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    task
}

/// The credential id of an API key given in clear.
async fn key_id(state: &AppState, key: &str) -> String {
    state
        .credentials
        .check(CredentialKind::ApiKey, key)
        .await
        .unwrap()
        .id
        .clone()
}

async fn commands_executed(state: &AppState, session: &str) -> u64 {
    let s = state
        .hub
        .store()
        .get_session(session)
        .await
        .unwrap()
        .unwrap();
    s.commands_executed
}

#[tokio::test]
async fn too_many_executes_in_flight_for_one_key_is_429() {
    let (state, session) = linked(ExecuteLimits::new(2, 100, 100)).await;
    let rd = key_id(&state, "rd").await;
    let first = waiting_execute(&state, "rd", &session).await;
    let second = waiting_execute(&state, "rd", &session).await;
    assert_eq!(state.limits.per_key.in_flight(&rd), 2);

    let answer = send(app(state.clone()), execute("rd", &session)).await;
    let body = refused(&answer, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    assert_eq!(answer.headers[RETRY_AFTER], "1");
    assert_eq!(body["details"]["limit"], 2);
    assert_eq!(body["details"]["scope"], "api_key");
    assert_eq!(body["details"]["retry_after"], 1);
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("--max-executes-per-key"), "{message}");
    assert!(
        message.contains("Wait for one of them to finish"),
        "{message}"
    );
    // Nothing was queued or counted for the refused one.
    assert_eq!(commands_executed(&state, &session).await, 2);
    assert_eq!(state.hub.store().queue_depth("c1").await.unwrap(), 2);

    // Another key is not affected.
    let other = waiting_execute(&state, "adm", &session).await;

    // Callers that disconnect give their slots back.
    first.abort();
    second.abort();
    other.abort();
    let _ = (first.await, second.await, other.await);
    assert_eq!(state.limits.per_key.in_flight(&rd), 0);
    assert_eq!(state.limits.per_cluster.in_flight(&"c1".to_owned()), 0);
    assert_eq!(state.limits.per_key.keys(), 0);
    let again = waiting_execute(&state, "rd", &session).await;
    again.abort();
}

#[tokio::test]
async fn too_many_executes_in_flight_for_one_cluster_is_429() {
    let (state, session) = linked(ExecuteLimits::new(100, 2, 100)).await;
    let a = waiting_execute(&state, "rd", &session).await;
    let b = waiting_execute(&state, "adm", &session).await;

    for key in ["rd", "adm"] {
        let answer = send(app(state.clone()), execute(key, &session)).await;
        let body = refused(&answer, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
        assert_eq!(answer.headers[RETRY_AFTER], "1");
        assert_eq!(body["details"]["scope"], "cluster");
        assert_eq!(body["details"]["cluster_id"], "c1");
        assert_eq!(body["details"]["limit"], 2);
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains("--max-executes-per-cluster")
        );
    }
    // The key's slot taken before the cluster refused was given back.
    assert_eq!(
        state.limits.per_key.in_flight(&key_id(&state, "rd").await),
        1
    );
    assert_eq!(commands_executed(&state, &session).await, 2);

    a.abort();
    b.abort();
    let _ = (a.await, b.await);
    assert_eq!(state.limits.per_cluster.keys(), 0);
    assert_eq!(state.limits.per_key.keys(), 0);
}

#[tokio::test]
async fn a_full_cluster_queue_is_503_and_queues_nothing() {
    let (state, session) = linked(ExecuteLimits::new(100, 100, 2)).await;
    let a = waiting_execute(&state, "rd", &session).await;
    let b = waiting_execute(&state, "rd", &session).await;
    // The callers go away; their commands stay queued until they run or expire.
    a.abort();
    b.abort();
    let _ = (a.await, b.await);
    assert_eq!(state.hub.store().queue_depth("c1").await.unwrap(), 2);

    let answer = send(app(state.clone()), execute("adm", &session)).await;
    let body = refused(
        &answer,
        StatusCode::SERVICE_UNAVAILABLE,
        "service_unavailable",
    );
    assert_eq!(answer.headers[RETRY_AFTER], "5");
    assert_eq!(body["details"]["code"], "queue_full");
    assert_eq!(body["details"]["cluster_id"], "c1");
    assert_eq!(body["details"]["queue_depth"], 2);
    assert_eq!(body["details"]["limit"], 2);
    assert_eq!(body["details"]["retry_after"], 5);
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("--max-queue-per-cluster"), "{message}");
    assert!(message.contains("Nothing was queued"), "{message}");
    // No partial state: nothing queued, the session not counted, no slot held.
    assert_eq!(state.hub.store().queue_depth("c1").await.unwrap(), 2);
    assert_eq!(commands_executed(&state, &session).await, 2);
    assert_eq!(state.limits.per_key.keys(), 0);
    assert_eq!(state.limits.per_cluster.keys(), 0);
}

#[tokio::test]
async fn a_panicking_handler_is_500_json_and_the_router_keeps_serving() {
    let routes = Router::new().route(
        "/boom",
        axum::routing::get(|| async {
            if true {
                panic!("boom");
            }
        }),
    );
    let router = crate::edge(routes, 1024).with_state(default_state().await);
    let answer = send(router.clone(), get("/boom", "adm")).await;
    let body = refused(&answer, StatusCode::INTERNAL_SERVER_ERROR, "internal_error");
    assert!(
        body["details"]["request_id"]
            .as_str()
            .unwrap()
            .starts_with("req_")
    );
    assert!(answer.headers.contains_key("x-correlation-id"));
    let answer = send(router, get("/nope", "adm")).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
}

/// The layers above must not get in the way of the link's upgrade on a real connection.
#[tokio::test]
async fn the_link_upgrade_still_works_through_the_layers() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app(default_state().await)).await });
    let head = |token: &str, upgrade: bool| {
        let mut req = format!(
            "GET {} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
             X-Kubeline-Cluster: c1\r\n",
            kubeline_shared::protocol::CONNECT_PATH
        );
        if upgrade {
            req.push_str(
                "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
                 Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
            );
        }
        req + "\r\n"
    };
    for (token, upgrade, want) in [
        ("tok", true, "HTTP/1.1 101"),
        ("wrong", true, "HTTP/1.1 401"),
        ("tok", false, "HTTP/1.1 400"),
    ] {
        let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        tcp.write_all(head(token, upgrade).as_bytes())
            .await
            .unwrap();
        let mut buf = vec![0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        let text = String::from_utf8_lossy(&buf[..n]);
        assert!(text.starts_with(want), "{token} {upgrade}: {text}");
        if !upgrade {
            assert!(text.contains("\"error\":\"invalid_request\""), "{text}");
        }
    }
}

/// Opens the agent link of cluster `c1` (token `tok`) on a real socket; the answer's head and
/// body as text.
async fn dial_link(addr: std::net::SocketAddr) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "GET {} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer tok\r\n\
         X-Kubeline-Cluster: c1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        kubeline_shared::protocol::CONNECT_PATH
    );
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// A fleet arriving at once: past the admission rate an agent is told, in the contract's body,
/// when its own slot comes; coming back early it is told the same slot again.
#[tokio::test]
async fn agents_over_the_admission_rate_are_told_when_to_come_back() {
    let state = default_state().await;
    // Others took every admission of the moment (the default burst is a fifth of a second's).
    let mut others = 0;
    while state.hub.admit_link(&format!("other-{others}")) == crate::admissions::Admission::Admitted
    {
        others += 1;
    }
    // ... and half a second of slots are promised to agents already turned away.
    for i in 0..500 {
        state.hub.admit_link(&format!("waiting-{i}"));
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app(state)).await });
    let wait_of = |text: &str| -> u64 {
        assert!(text.starts_with("HTTP/1.1 503"), "{text}");
        assert!(
            text.to_ascii_lowercase().contains("retry-after: 1"),
            "{text}"
        );
        let body: Value = serde_json::from_str(text.split("\r\n\r\n").nth(1).unwrap()).unwrap();
        assert_eq!(body["error"], "service_unavailable", "{body}");
        assert_eq!(body["details"]["code"], "link_admissions_paced", "{body}");
        assert_eq!(body["details"]["cluster_id"], "c1", "{body}");
        assert!(
            body["message"].as_str().unwrap().contains("reconnect then"),
            "{body}"
        );
        body["details"]["retry_after_ms"].as_u64().unwrap()
    };
    let first = wait_of(&dial_link(addr).await);
    assert!((300..=1000).contains(&first), "{first}");
    // Early again: the same slot, less time to wait.
    let second = wait_of(&dial_link(addr).await);
    assert!(second <= first, "{second} > {first}");
}

/// After SIGTERM a replica says it is draining: `/health` is 503 (a balancer sends new work
/// elsewhere) and an agent dialling it is told to come back shortly, to another replica.
#[tokio::test]
async fn a_draining_replica_fails_health_and_turns_agents_away() {
    let state = default_state().await;
    state.hub.drain(Duration::ZERO).await;
    let answer = send(
        app(state.clone()),
        Request::get("/health").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(answer.body["status"], "unhealthy");
    assert!(
        answer.body["reason"]
            .as_str()
            .unwrap()
            .starts_with("draining"),
        "{}",
        answer.body
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app(state)).await });
    let text = dial_link(addr).await;
    assert!(text.starts_with("HTTP/1.1 503"), "{text}");
    let body: Value = serde_json::from_str(text.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(body["details"]["code"], "draining", "{body}");
    let ms = body["details"]["retry_after_ms"].as_u64().unwrap();
    assert!((500..=3000).contains(&ms), "{ms}");
}

// === identities and grants ===

/// Creates an API key through the admin API; returns its secret and id.
async fn new_key(state: &AppState, body: Value) -> (String, String) {
    let answer = send(
        app(state.clone()),
        post_json("/admin/api-keys", "adm", &body),
    )
    .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    (
        answer.body["key"].as_str().unwrap().to_owned(),
        answer.body["id"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn a_credential_for_one_cluster_is_forbidden_on_another_on_every_route() {
    let (state, c1_session) = linked(ExecuteLimits::new(10, 10, 10)).await;
    let forbidden = |answer: &Answer| {
        let body = refused(answer, StatusCode::FORBIDDEN, "forbidden");
        assert_eq!(body["details"]["code"], "cluster_not_granted", "{body}");
    };
    let app = || app(state.clone());
    // rd-c2 reaches c2 only.
    forbidden(
        &send(
            app(),
            post_json("/debug/session", "rd-c2", &json!({ "cluster_id": "c1" })),
        )
        .await,
    );
    forbidden(&send(app(), get("/clusters/c1/status", "rd-c2")).await);
    forbidden(&send(app(), get(&format!("/debug/session/{c1_session}"), "rd-c2")).await);
    forbidden(
        &send(
            app(),
            Request::delete(format!("/debug/session/{c1_session}"))
                .header("authorization", "Bearer rd-c2")
                .body(Body::empty())
                .unwrap(),
        )
        .await,
    );
    forbidden(
        &send(
            app(),
            post_json(
                "/debug/execute",
                "rd-c2",
                &json!({
        "cluster_id": "c1", "session_id": c1_session, "command_type": "version", "args": [] }),
            ),
        )
        .await,
    );
    // An unknown cluster it may not reach is 403 too: whether it exists is not told.
    forbidden(&send(app(), get("/clusters/nope/status", "rd-c2")).await);
    // A result of c1 (a kubectl usage error is answered without an agent).
    let answer = send(app(), post_json("/debug/execute", "rd", &json!({
        "cluster_id": "c1", "session_id": c1_session, "command_type": "get", "args": ["pods", "-o", "bogus"] }))).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let result_id = answer.body["result_id"].as_str().unwrap();
    forbidden(&send(app(), get(&format!("/debug/result/{result_id}"), "rd-c2")).await);
    assert_eq!(
        send(app(), get(&format!("/debug/result/{result_id}"), "rd"))
            .await
            .status,
        StatusCode::OK
    );
    // Its own cluster works, and lists show only it.
    let answer = send(
        app(),
        post_json("/debug/session", "rd-c2", &json!({ "cluster_id": "c2" })),
    )
    .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    let clusters = send(app(), get("/clusters", "rd-c2")).await;
    let ids: Vec<&str> = clusters.body["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["cluster_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["c2"]);
    let clusters = send(app(), get("/clusters", "rd")).await;
    assert_eq!(clusters.body["clusters"].as_array().unwrap().len(), 2);
    let sessions = send(app(), get("/debug/sessions", "rd-c2")).await;
    assert_eq!(sessions.status, StatusCode::OK);
    assert_eq!(sessions.body["total"], 1);
    assert_eq!(sessions.body["sessions"][0]["cluster_id"], "c2");
}

#[tokio::test]
async fn sessions_belong_to_their_creator_unless_admin() {
    let (state, rd_session) = linked(ExecuteLimits::new(10, 10, 10)).await;
    let (other, _) = new_key(&state, json!({ "scope": "read" })).await;
    let app = || app(state.clone());
    let answer = send(app(), get(&format!("/debug/session/{rd_session}"), &other)).await;
    let body = refused(&answer, StatusCode::FORBIDDEN, "forbidden");
    assert_eq!(body["details"]["code"], "session_not_owned");
    let answer = send(
        app(),
        post_json(
            "/debug/execute",
            &other,
            &json!({
        "cluster_id": "c1", "session_id": rd_session, "command_type": "version", "args": [] }),
        ),
    )
    .await;
    refused(&answer, StatusCode::FORBIDDEN, "forbidden");
    // Nothing was counted for the refused execute.
    assert_eq!(commands_executed(&state, &rd_session).await, 0);
    let listed = send(app(), get("/debug/sessions", &other)).await;
    assert_eq!(listed.body["total"], 0, "{}", listed.body);
    let listed = send(app(), get("/debug/sessions", "rd")).await;
    assert_eq!(listed.body["total"], 1);
    // An admin sees and may use every session.
    assert_eq!(
        send(app(), get(&format!("/debug/session/{rd_session}"), "adm"))
            .await
            .status,
        StatusCode::OK
    );
    let listed = send(app(), get("/debug/sessions", "adm")).await;
    assert_eq!(listed.body["total"], 1);
}

#[tokio::test]
async fn credentials_come_as_bearer_or_x_api_key_and_refusals_say_which_check_failed() {
    let state = default_state().await;
    let app = || app(state.clone());
    let with = |name: &str, value: &str| {
        Request::get("/clusters")
            .header(name, value)
            .body(Body::empty())
            .unwrap()
    };
    assert_eq!(
        send(app(), with("x-api-key", "rd")).await.status,
        StatusCode::OK
    );
    assert_eq!(
        send(app(), with("authorization", "bearer rd")).await.status,
        StatusCode::OK
    );
    for (req, code) in [
        (
            Request::get("/clusters").body(Body::empty()).unwrap(),
            "missing_credentials",
        ),
        (with("authorization", "Basic cmQ6"), "malformed_credentials"),
        (with("authorization", "Bearer "), "malformed_credentials"),
        (with("authorization", "Bearer nope"), "invalid_credentials"),
        (with("x-api-key", "nope"), "invalid_credentials"),
        (
            with("authorization", &format!("Bearer {}", "k".repeat(20_000))),
            "invalid_credentials",
        ),
        (with("authorization", "Bearer tok"), "invalid_credentials"),
        (
            with(
                "authorization",
                "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.",
            ),
            "jwt_not_accepted",
        ),
    ] {
        let answer = send(app(), req).await;
        let body = refused(&answer, StatusCode::UNAUTHORIZED, "unauthorized");
        assert_eq!(body["details"]["code"], code, "{body}");
        assert!(
            !body["message"].as_str().unwrap().contains("rd"),
            "no key is echoed"
        );
    }
    // Public routes need nothing; unknown routes are 404 whatever the credential.
    assert_eq!(
        send(app(), Request::get("/health").body(Body::empty()).unwrap())
            .await
            .status,
        StatusCode::OK
    );
    let answer = send(app(), Request::get("/nope").body(Body::empty()).unwrap()).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn admins_manage_api_keys_and_read_keys_may_not() {
    let state = default_state().await;
    let app = || app(state.clone());
    let answer = send(
        app(),
        post_json("/admin/api-keys", "rd", &json!({ "scope": "read" })),
    )
    .await;
    refused(&answer, StatusCode::FORBIDDEN, "forbidden");
    assert_eq!(
        send(app(), get("/admin/api-keys", "rd")).await.status,
        StatusCode::FORBIDDEN
    );
    for (body, field) in [
        (json!({}), "scope"),
        (json!({ "scope": "root" }), "scope"),
        (json!({ "scope": "read", "clusters": ["a b"] }), "clusters"),
        (
            json!({ "scope": "read", "clusters": vec!["c"; 33] }),
            "clusters",
        ),
        (
            json!({ "scope": "read", "expires_in_seconds": 0 }),
            "expires_in_seconds",
        ),
        (
            json!({ "scope": "read", "expires_in_seconds": 40_000_000 }),
            "expires_in_seconds",
        ),
        (json!({ "scope": "read", "name": "x".repeat(101) }), "name"),
        (
            json!({ "scope": "read", "rate_limits": [null, null] }),
            "rate_limits",
        ),
        (
            json!({ "scope": "read", "rate_limits": { "execute": 1.5 } }),
            "rate_limits",
        ),
        (
            json!({ "scope": "read", "rate_limits": { "execute": 70000 } }),
            "rate_limits.execute",
        ),
    ] {
        let answer = send(app(), post_json("/admin/api-keys", "adm", &body)).await;
        let refusal = refused(&answer, StatusCode::BAD_REQUEST, "invalid_request");
        assert_eq!(refusal["details"]["field"], field, "{body}: {refusal}");
    }
    let before = send(app(), get("/admin/api-keys", "adm")).await.body["api_keys"]
        .as_array()
        .unwrap()
        .len();
    let (key, id) = new_key(
        &state,
        json!({ "name": "ci", "scope": "read", "clusters": ["c1"], "expires_in_seconds": 3600 }),
    )
    .await;
    assert!(key.starts_with("kl_") && key.len() > 40);
    assert_eq!(
        send(app(), get("/clusters/c1/status", &key)).await.status,
        StatusCode::OK
    );
    let listed = send(app(), get("/admin/api-keys", "adm")).await;
    let keys = listed.body["api_keys"].as_array().unwrap();
    assert_eq!(keys.len(), before + 1);
    let text = listed.body.to_string();
    assert!(
        !text.contains(&key) && !text.contains(&crate::auth::hash_secret(&key)),
        "no secret or hash is listed"
    );
    let mine = keys.iter().find(|k| k["id"] == id.as_str()).unwrap();
    assert_eq!(mine["clusters"], json!(["c1"]));
    assert!(mine["expires_at"].is_string());
    // Revoked: refused at once, with a message that says so; revoking again is idempotent.
    let revoke = || {
        Request::delete(format!("/admin/api-keys/{id}"))
            .header("authorization", "Bearer adm")
            .body(Body::empty())
            .unwrap()
    };
    let answer = send(app(), revoke()).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let revoked_at = answer.body["revoked_at"].clone();
    assert!(revoked_at.is_string());
    assert_eq!(send(app(), revoke()).await.body["revoked_at"], revoked_at);
    let answer = send(app(), get("/clusters/c1/status", &key)).await;
    let body = refused(&answer, StatusCode::UNAUTHORIZED, "unauthorized");
    assert_eq!(body["details"]["code"], "revoked");
    let answer = send(
        app(),
        Request::delete("/admin/api-keys/key_nope")
            .header("authorization", "Bearer adm")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(
        (answer.status, &answer.body["error"]),
        (StatusCode::NOT_FOUND, &json!("not_found"))
    );
}

#[tokio::test]
async fn revoking_a_key_ends_its_requests_in_flight_with_401() {
    let (state, _) = linked(ExecuteLimits::new(10, 10, 10)).await;
    let (key, id) = new_key(&state, json!({ "scope": "read" })).await;
    let answer = send(
        app(state.clone()),
        post_json("/debug/session", &key, &json!({ "cluster_id": "c1" })),
    )
    .await;
    let session = answer.body["session_id"].as_str().unwrap().to_owned();
    let waiting = waiting_execute(&state, &key, &session).await;
    let answer = send(
        app(state.clone()),
        Request::delete(format!("/admin/api-keys/{id}"))
            .header("authorization", "Bearer adm")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    let answer = tokio::time::timeout(Duration::from_secs(2), waiting)
        .await
        .expect("ended within 2 s")
        .unwrap();
    let body = refused(&answer, StatusCode::UNAUTHORIZED, "unauthorized");
    assert_eq!(body["details"]["code"], "credential_ended");
    assert!(
        body["message"].as_str().unwrap().contains("revoked"),
        "{body}"
    );
    // Its in-flight slot was given back.
    assert_eq!(state.limits.per_key.in_flight(&id), 0);
}

#[tokio::test]
async fn admins_rotate_and_revoke_agent_tokens() {
    let state = default_state().await;
    let app = || app(state.clone());
    for (body, field) in [
        (json!({}), "cluster_id"),
        (json!({ "cluster_id": "a b" }), "cluster_id"),
        (
            json!({ "cluster_id": "c1", "overlap_seconds": 700_000 }),
            "overlap_seconds",
        ),
    ] {
        let answer = send(app(), post_json("/admin/agent-tokens", "adm", &body)).await;
        let refusal = refused(&answer, StatusCode::BAD_REQUEST, "invalid_request");
        assert_eq!(refusal["details"]["field"], field, "{body}");
    }
    refused(
        &send(
            app(),
            post_json("/admin/agent-tokens", "rd", &json!({ "cluster_id": "c1" })),
        )
        .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    let answer = send(
        app(),
        post_json(
            "/admin/agent-tokens",
            "adm",
            &json!({ "cluster_id": "c1", "overlap_seconds": 60.0 }),
        ),
    )
    .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    assert!(answer.body["token"].as_str().unwrap().starts_with("klat_"));
    assert_eq!(answer.body["cluster_id"], "c1");
    assert_eq!(
        answer.body["replaced"],
        json!([]),
        "the flag's token of c1 stays"
    );
    let first = answer.body["id"].clone();
    let answer = send(
        app(),
        post_json(
            "/admin/agent-tokens",
            "adm",
            &json!({ "cluster_id": "c1", "overlap_seconds": 60 }),
        ),
    )
    .await;
    let replaced = answer.body["replaced"].as_array().unwrap();
    assert_eq!(
        replaced.len(),
        1,
        "the first API token of c1 is rotated out"
    );
    assert_eq!(replaced[0]["id"], first);
    assert!(replaced[0]["expires_at"].is_string());
    // A new cluster becomes known by its token.
    let answer = send(
        app(),
        post_json("/admin/agent-tokens", "adm", &json!({ "cluster_id": "c9" })),
    )
    .await;
    let c9 = answer.body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        send(app(), get("/clusters/c9/status", "rd")).await.status,
        StatusCode::OK
    );
    let listed = send(
        app(),
        Request::get("/admin/agent-tokens?cluster_id=c9")
            .header("authorization", "Bearer adm")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(listed.body["agent_tokens"].as_array().unwrap().len(), 1);
    assert!(!listed.body.to_string().contains("klat_"));
    let answer = send(
        app(),
        Request::delete(format!("/admin/agent-tokens/{c9}"))
            .header("authorization", "Bearer adm")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(answer.body["revoked_at"].is_string());
    // Without a usable token and never linked, c9 is unknown again.
    let answer = send(app(), get("/clusters/c9/status", "rd")).await;
    assert_eq!(
        (answer.status, &answer.body["error"]),
        (StatusCode::NOT_FOUND, &json!("not_found"))
    );
}

#[tokio::test]
async fn a_refused_request_with_a_body_closes_its_connection_saying_so() {
    let state = default_state().await;
    let body = json!({ "cluster_id": "c1" }).to_string();
    let refused = Request::post("/debug/session")
        .header("authorization", "Bearer not-a-key")
        .header("content-type", "application/json")
        .header("content-length", body.len())
        .body(Body::from(body.clone()))
        .unwrap();
    let answer = send(app(state.clone()), refused).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        answer.headers["connection"], "close",
        "{:?}",
        answer.headers
    );
    // Without a body there is nothing left unread: the connection stays open.
    let answer = send(
        app(state),
        Request::get("/clusters")
            .header("authorization", "Bearer not-a-key")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert!(
        answer.headers.get("connection").is_none(),
        "{:?}",
        answer.headers
    );
}
