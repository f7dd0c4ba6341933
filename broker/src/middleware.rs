//! Per-request context: the A2A headers (`X-Correlation-ID`, `X-Service-Identity`) and the
//! correlation id echoed on every response.

use axum::extract::{FromRequestParts, Request};
use axum::http::HeaderValue;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;

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
    let ctx = RequestContext {
        correlation_id: header(&req, CORRELATION_ID)
            .unwrap_or_else(|| format!("corr_{}", uuid::Uuid::new_v4().simple())),
        service_identity: header(&req, SERVICE_IDENTITY),
    };
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
            .unwrap_or_else(|| RequestContext {
                correlation_id: format!("corr_{}", uuid::Uuid::new_v4().simple()),
                service_identity: None,
            }))
    }
}
