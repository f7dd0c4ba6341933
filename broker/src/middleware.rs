//! Per-request context: the A2A headers (`X-Correlation-ID`, `X-Service-Identity`), the W3C
//! trace context (`traceparent`, `tracestate`), and the correlation id echoed on every response.

use std::net::SocketAddr;

use axum::extract::connect_info::Connected;
use axum::extract::{ConnectInfo, FromRequestParts, Request};
use axum::http::HeaderValue;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;
use axum::serve::IncomingStream;
use kubeline_shared::trace::{self, TraceContext, TraceParent};
use rand::Rng;

use crate::tls::TlsListener;

/// Header carrying the caller's trace id; generated when absent and echoed on the response.
pub const CORRELATION_ID: &str = "x-correlation-id";
/// Header naming the calling service.
pub const SERVICE_IDENTITY: &str = "x-service-identity";
/// Longest correlation id kept; longer ones are replaced by a generated id.
const MAX_CORRELATION_LEN: usize = 128;

/// A2A context of one request.
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// The caller's `X-Correlation-ID`, or one generated for this request.
    pub correlation_id: String,
    /// The caller's `X-Service-Identity`, if given.
    pub service_identity: Option<String>,
    /// This request's place in a trace: the caller's trace id (a fresh one when the caller sent
    /// no valid `traceparent`) with this request's own span id as the parent of what follows.
    pub trace: TraceParent,
    /// The caller's own `traceparent` (its span is the parent of this request's), if valid.
    pub caller_trace: Option<TraceParent>,
    /// The caller's `tracestate`, passed on only with the caller's own `traceparent`.
    pub tracestate: Option<String>,
    /// This request's id (`req_…`), in the audit trail.
    pub request_id: String,
    /// The peer's address (the TCP connection's; a proxy's when behind one).
    pub source_addr: Option<String>,
    /// When the broker received the request.
    pub received_at: chrono::DateTime<chrono::Utc>,
}

impl Default for RequestContext {
    /// A context for a request that came without one (tests of a bare router).
    fn default() -> Self {
        Self {
            correlation_id: new_correlation_id(),
            service_identity: None,
            trace: fresh_trace(),
            caller_trace: None,
            tracestate: None,
            request_id: new_request_id(),
            source_addr: None,
            received_at: chrono::Utc::now(),
        }
    }
}

impl RequestContext {
    fn from_headers(req: &Request) -> Self {
        let caller_trace = req
            .headers()
            .get(trace::TRACEPARENT)
            .and_then(|v| v.to_str().ok())
            .and_then(TraceParent::parse);
        let tracestate = caller_trace
            .and(req.headers().get(trace::TRACESTATE))
            .and_then(|v| v.to_str().ok())
            .and_then(trace::checked_tracestate);
        Self {
            correlation_id: header(req, CORRELATION_ID).unwrap_or_else(new_correlation_id),
            service_identity: header(req, SERVICE_IDENTITY),
            trace: caller_trace.unwrap_or_else(fresh_trace).child(span_id()),
            caller_trace,
            tracestate,
            request_id: new_request_id(),
            source_addr: req
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(addr)| *addr)
                .or_else(|| {
                    req.extensions()
                        .get::<ConnectInfo<PeerAddr>>()
                        .map(|ConnectInfo(PeerAddr(addr))| *addr)
                })
                .map(|addr| addr.to_string()),
            received_at: chrono::Utc::now(),
        }
    }

    /// The trace context to queue with a command of this request.
    pub fn trace_context(&self) -> TraceContext {
        TraceContext {
            traceparent: self.trace.to_string(),
            tracestate: self.tracestate.clone(),
        }
    }
}

/// The address of the peer of a TLS connection (axum's own `SocketAddr` connect info covers
/// its TCP listeners; a plain connection's peer is read from that).
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

impl<Io> Connected<IncomingStream<'_, TlsListener<Io>>> for PeerAddr
where
    Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    fn connect_info(stream: IncomingStream<'_, TlsListener<Io>>) -> Self {
        Self(*stream.remote_addr())
    }
}

fn new_request_id() -> String {
    format!("req_{}", &uuid::Uuid::new_v4().simple().to_string()[..16])
}

fn new_correlation_id() -> String {
    format!("corr_{}", uuid::Uuid::new_v4().simple())
}

/// A new trace, sampled (the caller started none).
fn fresh_trace() -> TraceParent {
    let trace_id = rand::rng().random_range(1..=u128::MAX);
    TraceParent {
        trace_id,
        parent_id: span_id(),
        flags: 1,
    }
}

fn span_id() -> u64 {
    rand::rng().random_range(1..=u64::MAX)
}

fn header(req: &Request, name: &str) -> Option<String> {
    req.headers()
        .get(name)?
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|v| !v.is_empty() && v.len() <= MAX_CORRELATION_LEN)
        .map(str::to_owned)
}

/// Middleware: attaches the [`RequestContext`] and echoes the correlation id.
pub async fn context(mut req: Request, next: Next) -> Response {
    let ctx = RequestContext::from_headers(&req);
    let echoed = HeaderValue::from_str(&ctx.correlation_id).ok();
    req.extensions_mut().insert(ctx);
    let mut res = next.run(req).await;
    if let Some(v) = echoed {
        res.headers_mut().insert(CORRELATION_ID, v);
    }
    res
}

impl<S: Send + Sync> FromRequestParts<S> for RequestContext {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<RequestContext>()
            .cloned()
            .unwrap_or_default())
    }
}

/// Middleware: an error answer to a request that sent a body says `Connection: close`.
///
/// A request refused before its body is read (401 by the authentication layer, 429, 413, 404,
/// 405) leaves that body unread on the connection, and the server then closes it after the
/// answer. Without the header a keep-alive client may already have sent its next request on
/// that connection and sees "server disconnected without a response"; with it, the client knows
/// to open a new one. (An error after the body was read also closes: a reconnect is cheap.)
pub async fn close_after_refused_body(req: Request, next: Next) -> Response {
    let headers = req.headers();
    let has_body = headers.contains_key(axum::http::header::TRANSFER_ENCODING)
        || headers
            .get(axum::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|n| n > 0);
    let mut res = next.run(req).await;
    if has_body && (res.status().is_client_error() || res.status().is_server_error()) {
        res.headers_mut().insert(
            axum::http::header::CONNECTION,
            HeaderValue::from_static("close"),
        );
    }
    res
}
