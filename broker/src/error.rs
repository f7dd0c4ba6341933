//! The HTTP edge's one error type: every failure a caller can see, with the contract's body.

use axum::Json;
use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use kubeline_shared::api::{ErrorBody, ErrorCode};
use serde_json::{Value, json};
use tracing::error;

/// An error answered to an API caller.
///
/// Every refusal the broker makes, its framework's included (see [`crate::extract`]), is one of
/// these, so every non-2xx body has the contract's `{"error","message","details"}` shape.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: ErrorBody,
    /// Seconds for the `Retry-After` header (429 and 503 that are worth retrying).
    retry_after: Option<u64>,
}

/// Result alias for handlers.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    fn new(
        status: StatusCode,
        error: ErrorCode,
        message: impl Into<String>,
        details: Option<Value>,
    ) -> Self {
        Self {
            status,
            body: ErrorBody {
                error,
                message: message.into(),
                details,
            },
            retry_after: None,
        }
    }

    /// 400 for a required field that is absent.
    pub fn missing_field(field: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidRequest,
            format!("Missing required field: {field}"),
            Some(json!({ "field": field, "code": "missing_required_field" })),
        )
    }

    /// 400 for a field with an unusable value.
    pub fn invalid_field(field: &str, message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidRequest,
            message,
            Some(json!({ "field": field, "code": "invalid_value" })),
        )
    }

    /// 400 with free-form details.
    pub fn bad_request(message: impl Into<String>, details: Value) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidRequest,
            message,
            Some(details),
        )
    }

    /// 401: no credential, or one that failed a check; `code` names the check
    /// (`missing_credentials`, `invalid_api_key`, `revoked`, `expired`, `invalid_token`, …)
    /// and `message` says it for people.
    pub fn unauthorized(code: &str, message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::Unauthorized,
            message,
            Some(json!({ "code": code })),
        )
    }

    /// 401 for an agent whose token is not the one configured for its cluster.
    pub fn agent_unauthorized(cluster_id: &str) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::Unauthorized,
            format!(
                "Agent token refused for cluster {cluster_id}: it is not the token configured \
                 for this cluster, or it was revoked"
            ),
            Some(json!({ "cluster_id": cluster_id })),
        )
    }

    /// 403: a valid credential without the needed permission; `details.code` says which.
    pub fn forbidden_with(message: impl Into<String>, details: Value) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            ErrorCode::Forbidden,
            message,
            Some(details),
        )
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, message, None)
    }

    /// 405: the path exists but not with this method. The router adds the `Allow` header.
    pub fn method_not_allowed(method: &str, path: &str) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::MethodNotAllowed,
            format!(
                "Method {method} is not allowed on {path}; the Allow header lists the methods \
                 this path accepts"
            ),
            Some(json!({ "method": method, "path": path })),
        )
    }

    /// 413: the request body is larger than the broker accepts.
    pub fn payload_too_large(limit_bytes: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::PayloadTooLarge,
            format!(
                "Request body is larger than the broker's limit of {limit_bytes} bytes \
                 (--max-body-bytes); send a smaller body"
            ),
            Some(json!({ "limit_bytes": limit_bytes, "code": "body_too_large" })),
        )
    }

    /// 415: a body that is not declared as JSON on a JSON endpoint.
    pub fn unsupported_media_type(content_type: Option<&str>) -> Self {
        let message = match content_type {
            Some(got) => format!(
                "Unsupported Content-Type {got:?}: this endpoint takes a JSON body; send \
                 Content-Type: application/json"
            ),
            None => "Missing Content-Type: this endpoint takes a JSON body; send Content-Type: \
                     application/json"
                .to_owned(),
        };
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::UnsupportedMediaType,
            message,
            Some(json!({ "content_type": content_type, "expected": "application/json" })),
        )
    }

    /// 429: the caller hit a limit; `details` says which, and `Retry-After` when to try again.
    pub fn too_many_requests(message: impl Into<String>, details: Value, retry_after: u64) -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::RateLimited,
            message,
            Some(details),
        )
        .with_retry_after(retry_after)
    }

    /// 429 for a credential past its rate limit of `class`, with the contract's body
    /// (`details`: `limit`, `window`, `retry_after`) and `Retry-After`.
    pub fn rate_limited(
        class: crate::ratelimit::Class,
        decision: &crate::ratelimit::Decision,
    ) -> Self {
        Self::too_many_requests(
            crate::ratelimit::refusal_message(class, decision),
            json!({ "limit": decision.limit, "window": crate::ratelimit::WINDOW_LABEL }),
            decision.retry_after_secs,
        )
    }

    /// 503: a dependency (agent link, store) is not available.
    pub fn service_unavailable(message: impl Into<String>, details: Value) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::ServiceUnavailable,
            message,
            Some(details),
        )
    }

    /// 503 to an agent over this replica's link admission rate: come back after `wait` (its
    /// slot is kept, see [`crate::admissions`]). `details.retry_after_ms` is exact,
    /// `Retry-After` rounds up to whole seconds.
    pub fn link_paced(cluster_id: &str, wait: std::time::Duration) -> Self {
        let ms = wait.as_millis().max(1) as u64;
        Self::service_unavailable(
            format!(
                "Too many agents are linking to this broker at once; cluster {cluster_id} has a \
                 slot in {ms} ms: reconnect then"
            ),
            json!({ "code": "link_admissions_paced", "cluster_id": cluster_id, "retry_after_ms": ms }),
        )
        .with_retry_after(ms.div_ceil(1000))
    }

    /// 503 to an agent dialling a replica that is shutting down: come back after `wait` (a
    /// balancer will have sent it elsewhere by then).
    pub fn link_draining(cluster_id: &str, wait: std::time::Duration) -> Self {
        let ms = wait.as_millis().max(1) as u64;
        Self::service_unavailable(
            format!(
                "This broker replica is shutting down; cluster {cluster_id} should reconnect in \
                 {ms} ms (to another replica)"
            ),
            json!({ "code": "draining", "cluster_id": cluster_id, "retry_after_ms": ms }),
        )
        .with_retry_after(ms.div_ceil(1000))
    }

    /// 504: the command did not finish in time.
    pub fn timeout(message: impl Into<String>, details: Value) -> Self {
        Self::new(
            StatusCode::GATEWAY_TIMEOUT,
            ErrorCode::Timeout,
            message,
            Some(details),
        )
    }

    /// 500, logged with a request id that the caller also gets.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        let request_id = format!("req_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        error!(%request_id, error = %cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::InternalError,
            "An unexpected error occurred",
            Some(json!({ "request_id": request_id })),
        )
    }

    /// Adds a `Retry-After` header (and `details.retry_after`) telling the caller when to retry.
    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        if let Some(map) = self.body.details.as_mut().and_then(Value::as_object_mut) {
            map.insert("retry_after".to_owned(), json!(seconds));
        }
        self
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The contract body.
    pub fn body(&self) -> &ErrorBody {
        &self.body
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        error!(error = %e, "store unavailable");
        Self::service_unavailable(
            "The broker's store is unavailable; retry shortly",
            json!({ "reason": e.to_string() }),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut res = (self.status, Json(self.body)).into_response();
        if let Some(seconds) = self.retry_after {
            res.headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(seconds));
        }
        res
    }
}
