//! WebSockets to a broker: a caller's (`/debug/stream`, `/debug/events`) and a scripted
//! agent's (`/agent/v1/connect`), opened one way, refusals returned as their status and body.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Request;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A refused upgrade: the HTTP status and the body as text.
#[derive(Debug)]
pub struct Refusal {
    pub status: u16,
    pub body: String,
}

impl Refusal {
    /// The body as JSON (panics if it is not).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|_| panic!("not JSON: {}", self.body))
    }
}

/// The upgrade request of a caller: `ws://127.0.0.1:PORT{path}?{query}` with `key` as bearer.
pub fn caller_request(port: u16, path: &str, key: &str, query: &[(&str, &str)]) -> Request {
    let url = reqwest::Url::parse_with_params(&format!("ws://127.0.0.1:{port}{path}"), query)
        .expect("a WebSocket URL");
    let mut request = url.as_str().into_client_request().expect("a request");
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {key}").parse().expect("a header"),
    );
    request
}

/// The upgrade request of an agent linking as `cluster` with `token`.
pub fn agent_request(port: u16, cluster: &str, token: &str) -> Request {
    let mut request = format!("ws://127.0.0.1:{port}/agent/v1/connect")
        .into_client_request()
        .expect("a request");
    let headers = request.headers_mut();
    headers.insert(
        "authorization",
        format!("Bearer {token}").parse().expect("a header"),
    );
    headers.insert("x-kubeline-cluster", cluster.parse().expect("a header"));
    request
}

/// Opens `request`; a refused upgrade is its status and body. Panics if the broker cannot be
/// reached at all.
pub async fn connect(request: Request) -> Result<Socket, Refusal> {
    match tokio_tungstenite::connect_async(request).await {
        Ok((socket, _)) => Ok(socket),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => Err(Refusal {
            status: response.status().as_u16(),
            body: String::from_utf8_lossy(response.body().as_deref().unwrap_or_default())
                .into_owned(),
        }),
        Err(e) => panic!("cannot reach the broker: {e}"),
    }
}

/// Like [`connect`], over a TCP socket whose receive buffer is `recv_buffer` bytes (so the
/// kernel holds little on the caller's side).
pub async fn connect_small_buffer(request: Request, port: u16, recv_buffer: u32) -> Socket {
    let tcp = tokio::net::TcpSocket::new_v4().expect("a socket");
    tcp.set_recv_buffer_size(recv_buffer)
        .expect("a receive buffer size");
    let tcp = tcp
        .connect(([127, 0, 0, 1], port).into())
        .await
        .expect("reach the broker");
    tokio_tungstenite::client_async(request, MaybeTlsStream::Plain(tcp))
        .await
        .expect("the upgrade")
        .0
}

/// A scripted agent's hello for `cluster`, offering `commands`, with more fields from `extra`
/// (e.g. `labels`).
pub fn hello(cluster: &str, agent_version: &str, commands: &[&str], extra: Value) -> Message {
    let mut hello = json!({ "type": "hello", "protocol": 1, "cluster_id": cluster,
        "agent_version": agent_version, "kubernetes_version": "", "commands": commands });
    if let (Some(hello), Value::Object(extra)) = (hello.as_object_mut(), extra) {
        hello.extend(extra);
    }
    Message::Text(hello.to_string().into())
}

/// A scripted agent linked as `cluster` with `token`: it said hello (offering `commands`) and
/// read the welcome.
pub async fn scripted_agent(port: u16, cluster: &str, token: &str, commands: &[&str]) -> Socket {
    let mut ws = connect(agent_request(port, cluster, token))
        .await
        .unwrap_or_else(|r| panic!("the link was refused: {r:?}"));
    ws.send(hello(cluster, "scripted", commands, Value::Null))
        .await
        .expect("send hello");
    match ws.next().await {
        Some(Ok(Message::Text(text))) => assert!(text.contains("welcome"), "{text}"),
        other => panic!("no welcome: {other:?}"),
    }
    ws
}

/// Reads a scripted agent's link (answering pings) until the broker sends a command; returns it.
pub async fn next_execute(agent: &mut Socket) -> Value {
    let read = async {
        while let Some(Ok(msg)) = agent.next().await {
            let Message::Text(text) = msg else { continue };
            let frame: Value = serde_json::from_str(&text).unwrap();
            match frame["type"].as_str() {
                Some("execute") => return frame,
                Some("ping") => {
                    let pong = json!({ "type": "pong", "seq": frame["seq"] });
                    agent
                        .send(Message::Text(pong.to_string().into()))
                        .await
                        .unwrap();
                }
                _ => {}
            }
        }
        panic!("the link ended before a command came");
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("a command within 10 s")
}
