//! The agent link endpoint: `GET /agent/v1/connect` upgraded to a WebSocket.
//!
//! The agent authenticates the upgrade with `Authorization: Bearer <token>` and names its cluster
//! in `X-Kubeline-Cluster`; a wrong token is refused before any WebSocket exists. The first frame
//! must be a [`Hello`] for the same cluster. From then on the broker pings, sends commands, and
//! collects output until the link closes or goes silent.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use futures::{SinkExt, StreamExt};
use kubeline_shared::protocol::{
    AgentMessage, BrokerMessage, CLOSE_BAD_HELLO, CLOSE_GOING_AWAY, CLOSE_PROTOCOL_ERROR,
    CLOSE_REPLACED, CLOSE_TOO_BIG, CLOSE_UNAUTHORIZED, Hello, PROTOCOL_VERSION, Ping, Reconnect,
    Welcome,
};
use rand::Rng;
use tokio::sync::{broadcast, mpsc};
use tracing::{Instrument, debug, info, info_span, warn};

use crate::AppState;
use crate::admissions::Admission;
use crate::audit;
use crate::auth::{self, Credentials, Refusal};
use crate::error::ApiError;
use crate::extract;
use crate::hub::{Hub, LinkState};
use crate::metrics::{self, AuthFailure, LinkEvent};
use crate::middleware::RequestContext;
use crate::store::{ClusterRecord, CredentialKind, CredentialRecord};
use kubeline_shared::audit::{
    AuditAction, AuditDecision, AuditOutcome, CredentialKind as AuditCredentialKind,
};

/// Header in which the agent names its cluster on the upgrade request.
pub const CLUSTER_HEADER: &str = "x-kubeline-cluster";
/// How long the broker waits for the hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// Read buffer of one link: most frames from an agent are pongs and small outputs, and a bigger
/// frame makes the buffer grow to it. Measured per idle link (`cargo bench --bench links`): 8 KiB
/// of the broker's 18 KiB were this buffer at 8 KiB.
const LINK_READ_BUFFER: usize = 4 * 1024;
/// Frames to the agent are gathered up to this many bytes before they are written (a burst of
/// commands goes out in one write; every send ends with a flush, so nothing waits in it). The
/// buffer grows only as far as a link's bursts: an idle link's stays as small as its pings.
const LINK_WRITE_BUFFER: usize = 16 * 1024;
/// Largest frame an agent may send: a full output chunk even if JSON escaping made it 6 times
/// bigger, with room to spare.
const MAX_AGENT_FRAME: usize = 1024 * 1024;
/// Frames queued towards one agent before the pump waits.
const OUTBOUND_QUEUE: usize = 256;

/// The agent link: agents dial out to it and upgrade to a WebSocket.
///
/// Only agents call this. The upgrade needs the cluster's agent token and names the cluster in
/// `X-Kubeline-Cluster`; a wrong token gets 401 before any WebSocket exists, a request that is
/// not a WebSocket upgrade gets 400. Over the socket, JSON text frames (`kubeline_shared::protocol`):
/// the agent sends `hello` first and the broker answers `welcome`; then the broker sends `execute`,
/// `cancel`, `ping` and `reconnect`, the agent answers `output` chunks (at most 32 KiB), `done`
/// and `pong`. New links are admitted at a paced rate: past it the answer is 503 with the time
/// this agent should come back.
#[utoipa::path(get, path = "/agent/v1/connect", tag = "agent link",
    security(("agentToken" = [])),
    params(
        ("X-Kubeline-Cluster" = String, Header, description = "The agent's cluster id.", example = "production-cluster"),
        ("Connection" = String, Header, description = "WebSocket upgrade.", example = "Upgrade"),
        ("Upgrade" = String, Header, description = "WebSocket upgrade.", example = "websocket"),
        ("Sec-WebSocket-Version" = String, Header, description = "WebSocket version: 13.", example = "13"),
        ("Sec-WebSocket-Key" = String, Header, description = "WebSocket handshake key (RFC 6455).",
            example = "dGhlIHNhbXBsZSBub25jZQ=="),
    ),
    responses(
        (status = 101, description = "Switched to the WebSocket link protocol."),
        (status = 400, response = crate::openapi::BadRequest),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 503, description = "Too many agents are linking at once (a fleet returning \
            after a restart): come back after `details.retry_after_ms` (also `Retry-After`, in \
            whole seconds); a slot is kept for this cluster until then.",
            body = kubeline_shared::api::ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait."))),
    ))]
pub async fn connect(
    State(state): State<AppState>,
    ctx: RequestContext,
    headers: HeaderMap,
    extract::WebSocket(ws): extract::WebSocket,
) -> Response {
    match accept(&state, &headers).await {
        // A draining replica takes no new link: it would close it again within seconds.
        Ok((cluster, _)) if state.hub.is_draining() => {
            let wait = Duration::from_millis(rand::rng().random_range(500..=3_000));
            ApiError::link_draining(&cluster, wait).into_response()
        }
        Ok((cluster, credential)) => match state.hub.admit_link(&cluster) {
            Admission::Admitted => upgrade(&state, cluster, credential, ws),
            Admission::Later(wait) => {
                debug!(cluster = %cluster, retry_after_ms = wait.as_millis() as u64, "agent link paced");
                metrics::link_event(LinkEvent::Paced);
                ApiError::link_paced(&cluster, wait).into_response()
            }
        },
        Err(e) => {
            if e.status() == axum::http::StatusCode::UNAUTHORIZED {
                let mut event = audit::request_event(
                    &ctx,
                    None,
                    AuditAction::AuthFailure,
                    AuditOutcome::Refused,
                );
                event.credential_kind = Some(AuditCredentialKind::AgentToken);
                event.cluster_id = headers
                    .get(CLUSTER_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .filter(|c| kubeline_shared::api::check_cluster_id(c).is_ok())
                    .map(str::to_owned);
                event.decision = Some(AuditDecision::Refused);
                event.target = Some(format!("GET {}", kubeline_shared::protocol::CONNECT_PATH));
                event.reason = Some(e.body().message.clone());
                audit::record_after(&state.audit, event).await;
            }
            e.into_response()
        }
    }
}

/// Checks an agent's upgrade request: its cluster and its token.
async fn accept(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<(String, Arc<CredentialRecord>), ApiError> {
    let cluster = headers
        .get(CLUSTER_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    if cluster.is_empty() {
        warn!("agent link refused: no X-Kubeline-Cluster header");
        metrics::auth_failure(AuthFailure::Missing);
        return Err(ApiError::unauthorized(
            "missing_cluster",
            "Missing X-Kubeline-Cluster header: the agent names its cluster on the link",
        ));
    }
    let token = auth::presented(headers)?;
    match state
        .credentials
        .check(CredentialKind::AgentToken, token)
        .await
    {
        Ok(record) if record.clusters.first() == Some(&cluster) => Ok((cluster, record)),
        Ok(_) | Err(Refusal::Unknown) => {
            warn!(cluster = %cluster, "agent link refused: invalid agent token");
            metrics::auth_failure(AuthFailure::InvalidAgentToken);
            Err(ApiError::agent_unauthorized(&cluster))
        }
        Err(refusal) => {
            warn!(cluster = %cluster, "agent link refused: {refusal:?}");
            Err(auth::refusal_error(refusal, "agent token"))
        }
    }
}

/// Upgrades an accepted agent's request to the link.
fn upgrade(
    state: &AppState,
    cluster: String,
    credential: Arc<CredentialRecord>,
    ws: axum::extract::ws::WebSocketUpgrade,
) -> Response {
    let hub = state.hub.clone();
    let credentials = state.credentials.clone();
    // Links are mostly idle and there are many of them: small buffers (tungstenite's default read
    // buffer alone is 128 KiB a connection). No agent frame comes near the message limit: output
    // travels in chunks of at most MAX_CHUNK_BYTES.
    let ws = ws
        .read_buffer_size(LINK_READ_BUFFER)
        .write_buffer_size(LINK_WRITE_BUFFER)
        .max_message_size(MAX_AGENT_FRAME)
        .max_frame_size(MAX_AGENT_FRAME);
    ws.on_upgrade(move |socket| {
        let span = info_span!("agent_link", cluster = %cluster);
        serve(hub, credentials, credential, cluster, socket).instrument(span)
    })
}

async fn serve(
    hub: Arc<Hub>,
    credentials: Arc<Credentials>,
    credential: Arc<CredentialRecord>,
    cluster: String,
    mut socket: WebSocket,
) {
    let hello = match read_hello(&mut socket).await {
        Ok(hello) if hello.cluster_id != cluster => {
            let reason = format!(
                "hello names cluster {} but the token belongs to {cluster}",
                hello.cluster_id
            );
            return close(socket, CLOSE_BAD_HELLO, &reason).await;
        }
        Ok(hello) if hello.protocol != PROTOCOL_VERSION => {
            let reason = format!(
                "protocol {} is not supported; this broker speaks {PROTOCOL_VERSION}",
                hello.protocol
            );
            return close(socket, CLOSE_BAD_HELLO, &reason).await;
        }
        Ok(hello) => match kubeline_shared::labels::check_labels(&hello.labels) {
            // Checked again here: the agent checks its flags, but a hostile or buggy agent is
            // bounded like any caller.
            Ok(()) => hello,
            Err(e) => {
                return close(socket, CLOSE_BAD_HELLO, &format!("bad labels: {e}")).await;
            }
        },
        Err(reason) => return close(socket, CLOSE_BAD_HELLO, &reason).await,
    };
    let welcome = BrokerMessage::Welcome(Welcome {
        protocol: PROTOCOL_VERSION,
        broker_id: hub.broker_id().to_owned(),
        ping_interval_ms: hub.settings().ping_interval.as_millis() as u64,
    });
    if send(&mut socket, &welcome).await.is_err() {
        return;
    }
    let (outbound, rx) = mpsc::channel(OUTBOUND_QUEUE);
    let record = ClusterRecord {
        cluster_id: cluster.clone(),
        broker_id: Some(hub.broker_id().to_owned()),
        agent_version: Some(hello.agent_version.clone()),
        kubernetes_version: Some(hello.kubernetes_version.clone()).filter(|v| !v.is_empty()),
        last_seen: Some(Utc::now()),
        labels: hello.labels.clone(),
    };
    let link = match hub.attach(record, outbound).await {
        Ok(link) => link,
        Err(e) => {
            warn!(error = %e, "cannot record the agent link in the store");
            return close(socket, CLOSE_GOING_AWAY, "broker store unavailable; retry").await;
        }
    };
    info!(agent_version = %hello.agent_version, kubernetes = %hello.kubernetes_version, "agent linked");
    // Not kept for the link's life: with its command list, about 0.5 KiB per link (measured).
    drop(hello);
    metrics::link_event(LinkEvent::Connect);
    let token = Token {
        credentials: &credentials,
        hash: credential.hash.clone(),
        id: credential.id.clone(),
        expires_at: credential.expires_at,
    };
    let (event, reason) = run(&hub, &link, token, socket, rx).await;
    metrics::link_event(event);
    info!(%reason, "agent link closed");
    hub.detach(&link, &reason).await;
}

/// Reads and checks the first frame.
async fn read_hello(socket: &mut WebSocket) -> Result<Hello, String> {
    let frame = tokio::time::timeout(HELLO_TIMEOUT, socket.recv())
        .await
        .map_err(|_| "no hello within 10s".to_owned())?;
    match frame {
        Some(Ok(Message::Text(text))) => match serde_json::from_str::<AgentMessage>(&text) {
            Ok(AgentMessage::Hello(hello)) => Ok(hello),
            Ok(_) => Err("the first frame must be a hello".to_owned()),
            Err(e) => Err(format!("unreadable hello: {e}")),
        },
        Some(Ok(_)) => Err("the first frame must be a JSON text hello".to_owned()),
        Some(Err(e)) => Err(format!("link error before hello: {e}")),
        None => Err("link closed before hello".to_owned()),
    }
}

/// The agent token a link was opened with, re-checked while the link lives: at once when a
/// change of it is announced, and otherwise every [`TOKEN_RECHECK_PINGS`] pings (in case an
/// announcement was missed); its known expiry is checked at every ping without the store.
struct Token<'a> {
    credentials: &'a Credentials,
    hash: String,
    id: String,
    /// The end of the token's life as last read (a rotation sets it).
    expires_at: Option<chrono::DateTime<Utc>>,
}

/// Pings between two re-checks of a link's token in the store (one minute at the default ping
/// interval): with many links, re-reading every token at every ping would cost the store one
/// read per link every few seconds.
const TOKEN_RECHECK_PINGS: u64 = 12;

const TOKEN_EXPIRED: &str = "agent token expired (replaced by a newer token)";

impl Token<'_> {
    /// Why the token no longer holds (revoked, or past the end of a rotation's overlap), if it
    /// does not. A store that does not answer keeps the link: revocations also arrive as
    /// announcements.
    async fn refused(&mut self) -> Option<&'static str> {
        match self
            .credentials
            .check_hash(CredentialKind::AgentToken, &self.hash)
            .await
        {
            Ok(record) => {
                self.expires_at = record.expires_at;
                None
            }
            Err(Refusal::Store(_)) => None,
            Err(Refusal::Expired) => Some(TOKEN_EXPIRED),
            Err(_) => Some("agent token revoked"),
        }
    }

    /// Whether the token's known expiry has passed.
    fn expired(&self) -> bool {
        self.expires_at.is_some_and(|t| t <= Utc::now())
    }
}

/// The link's socket as [`run`] sees it: axum's [`WebSocket`], or channels in tests.
trait Socket:
    futures::Stream<Item = Result<Message, axum::Error>>
    + futures::Sink<Message, Error = axum::Error>
    + Unpin
    + Send
{
}

impl<S> Socket for S where
    S: futures::Stream<Item = Result<Message, axum::Error>>
        + futures::Sink<Message, Error = axum::Error>
        + Unpin
        + Send
{
}

/// Runs a live link until it ends; returns how and why it ended.
async fn run(
    hub: &Arc<Hub>,
    link: &Arc<LinkState>,
    mut token: Token<'_>,
    mut socket: impl Socket,
    mut outbound: mpsc::Receiver<Box<BrokerMessage>>,
) -> (LinkEvent, String) {
    let settings = hub.settings().clone();
    // `None` once the announcements end (the broker is going away): the branch then waits
    // forever instead of spinning on a closed channel.
    let mut changes = Some(token.credentials.changes());
    let mut ping = tokio::time::interval(settings.ping_interval);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seq = 0u64;
    loop {
        tokio::select! {
            frame = socket.next() => {
                let text = match frame {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Close(_))) | None => return (LinkEvent::Disconnect, "agent closed the link".into()),
                    Some(Ok(Message::Binary(_))) => {
                        let reason = "binary frame: the link protocol is JSON text frames";
                        close(socket, CLOSE_PROTOCOL_ERROR, reason).await;
                        return (LinkEvent::BadFrame, reason.into());
                    }
                    Some(Ok(_)) => { link.saw_agent(); continue; }
                    Some(Err(e)) if over_the_frame_limit(&e) => {
                        let reason = format!("frame over the {} KiB limit", MAX_AGENT_FRAME / 1024);
                        close(socket, CLOSE_TOO_BIG, &reason).await;
                        return (LinkEvent::BadFrame, reason);
                    }
                    Some(Err(e)) => return (LinkEvent::Disconnect, format!("link error: {e}")),
                };
                link.saw_agent();
                match serde_json::from_str::<AgentMessage>(&text) {
                    Ok(AgentMessage::Output(chunk)) => hub.output(link, chunk).await,
                    Ok(AgentMessage::Done(done)) => {
                        let (hub, link) = (hub.clone(), link.clone());
                        tokio::spawn(async move { hub.done(&link, done).await });
                    }
                    Ok(AgentMessage::Pong(_)) => {}
                    Ok(AgentMessage::Hello(_)) => warn!("ignoring a second hello"),
                    // A newer agent's frame (a type this broker does not know): passed over.
                    Ok(AgentMessage::Unknown) => debug!("ignoring a frame of an unknown type"),
                    Err(e) => {
                        let reason = format!("unreadable frame: {e}");
                        close(socket, CLOSE_PROTOCOL_ERROR, &reason).await;
                        return (LinkEvent::BadFrame, reason);
                    }
                }
            }
            msg = outbound.recv() => {
                let Some(msg) = msg else { return (LinkEvent::Disconnect, "link dropped by the broker".into()) };
                if send_queued(&mut socket, &msg, &mut outbound).await.is_err() {
                    return (LinkEvent::Disconnect, "cannot write to the agent".into());
                }
            }
            change = next_change(&mut changes) => {
                let ours = match change {
                    Ok(id) => *id == *token.id,
                    Err(broadcast::error::RecvError::Lagged(_)) => true,
                    Err(broadcast::error::RecvError::Closed) => {
                        changes = None;
                        false
                    }
                };
                if ours {
                    // The cache hears of the change from the same announcement, maybe later.
                    token.credentials.forget(Some(&token.id));
                }
                if ours && let Some(reason) = token.refused().await {
                    close(socket, CLOSE_UNAUTHORIZED, reason).await;
                    return (LinkEvent::Revoked, reason.into());
                }
            }
            _ = ping.tick() => {
                let refused = if token.expired() {
                    Some(TOKEN_EXPIRED)
                } else if seq % TOKEN_RECHECK_PINGS == TOKEN_RECHECK_PINGS - 1 {
                    token.refused().await
                } else {
                    None
                };
                if let Some(reason) = refused {
                    close(socket, CLOSE_UNAUTHORIZED, reason).await;
                    return (LinkEvent::Revoked, reason.into());
                }
                if link.silence() > settings.link_timeout {
                    let reason = format!("agent silent for {}s", link.silence().as_secs());
                    let _ = socket.send(Message::Close(None)).await;
                    return (LinkEvent::Timeout, reason);
                }
                seq += 1;
                if send(&mut socket, &BrokerMessage::Ping(Ping { seq })).await.is_err() {
                    return (LinkEvent::Disconnect, "cannot write to the agent".into());
                }
            }
            () = link.closing() => {
                let replaced = !hub.is_current(link);
                let (code, reason) = if replaced {
                    (CLOSE_REPLACED, "a newer link for this cluster replaced this one")
                } else {
                    (CLOSE_GOING_AWAY, "broker shutting down")
                };
                if !replaced {
                    // Spread reconnects out so a restarted fleet does not arrive all at once.
                    let after_ms = rand::rng().random_range(0..=5_000);
                    let msg = BrokerMessage::Reconnect(Reconnect { after_ms, reason: reason.into() });
                    let _ = send(&mut socket, &msg).await;
                }
                close(socket, code, reason).await;
                let event = if replaced { LinkEvent::Replaced } else { LinkEvent::Disconnect };
                return (event, reason.into());
            }
        }
    }
}

/// The next credential change, or never once there are none to come.
async fn next_change(
    changes: &mut Option<broadcast::Receiver<Arc<str>>>,
) -> Result<Arc<str>, broadcast::error::RecvError> {
    match changes {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

fn text(msg: &BrokerMessage) -> Message {
    Message::Text(
        serde_json::to_string(msg)
            .expect("broker messages always serialize")
            .into(),
    )
}

async fn send(socket: &mut impl Socket, msg: &BrokerMessage) -> Result<(), axum::Error> {
    socket.send(text(msg)).await
}

/// Sends `first` and whatever else is queued for the agent already, then flushes once: a burst
/// of commands (the pump dispatches what it takes in batches) costs one write, not one each.
async fn send_queued(
    socket: &mut impl Socket,
    first: &BrokerMessage,
    queued: &mut mpsc::Receiver<Box<BrokerMessage>>,
) -> Result<(), axum::Error> {
    socket.feed(text(first)).await?;
    // At most a queue's worth, so a pump that keeps filling it cannot hold this loop.
    for _ in 1..OUTBOUND_QUEUE {
        let Ok(msg) = queued.try_recv() else { break };
        socket.feed(text(&msg)).await?;
    }
    socket.flush().await
}

/// A close frame's reason holds at most 123 bytes (RFC 6455 §5.5): longer ones are cut at a
/// character boundary (the whole reason is in the broker's log).
fn close_reason(reason: &str) -> &str {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}

/// Whether a read error is the agent's frame going over [`MAX_AGENT_FRAME`] (tungstenite's
/// capacity error, reached through axum's error).
fn over_the_frame_limit(error: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        let text = e.to_string();
        if text.contains("Space limit exceeded") || text.contains("Message too long") {
            return true;
        }
        source = e.source();
    }
    false
}

async fn close(mut socket: impl Socket, code: u16, reason: &str) {
    if code != CLOSE_GOING_AWAY {
        warn!(code, %reason, "closing agent link");
    }
    let frame = CloseFrame {
        code,
        reason: Utf8Bytes::from(close_reason(reason).to_owned()),
    };
    let _ = socket.send(Message::Close(Some(frame))).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::channel::mpsc as fmpsc;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    /// A link made of two channels: what the test sends arrives as the agent's frames, what the
    /// broker sends comes out of the other end.
    struct Duplex {
        from_agent: fmpsc::UnboundedReceiver<Result<Message, axum::Error>>,
        to_agent: fmpsc::UnboundedSender<Message>,
    }

    impl futures::Stream for Duplex {
        type Item = Result<Message, axum::Error>;
        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            Pin::new(&mut self.from_agent).poll_next(cx)
        }
    }

    impl futures::Sink<Message> for Duplex {
        type Error = axum::Error;
        fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }
        fn start_send(self: Pin<&mut Self>, item: Message) -> Result<(), Self::Error> {
            self.to_agent.unbounded_send(item).map_err(axum::Error::new)
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }
        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }
    }

    /// A link of cluster `c1` run over a [`Duplex`]: the agent's end (frames to send), the
    /// broker's end (frames it sent), the state, the agent token's id, and the running link.
    async fn running_link() -> (
        fmpsc::UnboundedSender<Result<Message, axum::Error>>,
        fmpsc::UnboundedReceiver<Message>,
        crate::AppState,
        String,
        tokio::task::JoinHandle<(LinkEvent, String)>,
    ) {
        let state = crate::tests::state_with(crate::limits::ExecuteLimits::new(4, 4, 4)).await;
        let credential = state
            .credentials
            .check(CredentialKind::AgentToken, "tok")
            .await
            .unwrap();
        let (outbound, rx) = mpsc::channel(OUTBOUND_QUEUE);
        let record = ClusterRecord {
            cluster_id: "c1".into(),
            broker_id: Some(state.hub.broker_id().to_owned()),
            agent_version: None,
            kubernetes_version: None,
            last_seen: Some(Utc::now()),
            labels: Default::default(),
        };
        let link = state.hub.attach(record, outbound).await.unwrap();
        let (agent, from_agent) = fmpsc::unbounded();
        let (to_agent, broker) = fmpsc::unbounded();
        let socket = Duplex {
            from_agent,
            to_agent,
        };
        let (hub, credentials) = (state.hub.clone(), state.credentials.clone());
        let id = credential.id.clone();
        let running = tokio::spawn(async move {
            let token = Token {
                credentials: &credentials,
                hash: credential.hash.clone(),
                id: credential.id.clone(),
                expires_at: credential.expires_at,
            };
            run(&hub, &link, token, socket, rx).await
        });
        (agent, broker, state, id, running)
    }

    /// The close frame the broker sent last.
    fn last_close(broker: &mut fmpsc::UnboundedReceiver<Message>) -> (u16, String) {
        let mut last = None;
        while let Ok(frame) = broker.try_recv() {
            last = Some(frame);
        }
        match last {
            Some(Message::Close(Some(frame))) => (frame.code, frame.reason.to_string()),
            other => panic!("expected a close frame, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_frame_outside_the_protocol_closes_the_link_with_1002() {
        for (frame, says) in [
            (Message::Text("{not json".into()), "unreadable frame"),
            (
                Message::Text(r#"{"type":"done","result_id":7}"#.into()),
                "unreadable frame",
            ),
            (Message::Binary(vec![1, 2, 3].into()), "binary frame"),
        ] {
            let (agent, mut broker, _state, _id, running) = running_link().await;
            agent.unbounded_send(Ok(frame)).unwrap();
            let (event, reason) = tokio::time::timeout(Duration::from_secs(5), running)
                .await
                .expect("the link ends at once")
                .unwrap();
            assert!(matches!(event, LinkEvent::BadFrame), "{reason}");
            let (code, sent) = last_close(&mut broker);
            assert_eq!(code, CLOSE_PROTOCOL_ERROR);
            assert!(sent.starts_with(says), "{sent}");
            assert_eq!(sent, close_reason(&reason));
        }
    }

    /// Revoking the agent's token closes its live link with 4001 at once; a frame of a type
    /// this broker does not know (a newer agent's) before that is passed over and the link
    /// stays.
    #[tokio::test]
    async fn a_revoked_token_closes_the_live_link() {
        let (agent, mut broker, state, id, running) = running_link().await;
        agent
            .unbounded_send(Ok(Message::Text(
                r#"{"type":"from_the_future","x":1}"#.into(),
            )))
            .unwrap();
        tokio::task::yield_now().await;
        assert!(!running.is_finished());
        state
            .credentials
            .revoke(CredentialKind::AgentToken, &id)
            .await
            .unwrap()
            .unwrap();
        let (event, reason) = tokio::time::timeout(Duration::from_secs(5), running)
            .await
            .expect("the link ends at once")
            .unwrap();
        assert!(matches!(event, LinkEvent::Revoked), "{reason}");
        assert_eq!(reason, "agent token revoked");
        assert_eq!(
            last_close(&mut broker),
            (CLOSE_UNAUTHORIZED, "agent token revoked".to_owned())
        );
    }
}
