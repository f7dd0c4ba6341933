//! The HTTP edge's one error type: every failure a caller can see, with the contract's body.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use kubeline_shared::api::ErrorBody;
use serde_json::{Value, json};
use tracing::error;

/// An error answered to an API caller.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: ErrorBody,
}

/// Result alias for handlers.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    fn new(
        status: StatusCode,
        error: &str,
        message: impl Into<String>,
        details: Option<Value>,
    ) -> Self {
        Self {
            status,
            body: ErrorBody {
                error: error.to_owned(),
                message: message.into(),
                details,
            },
        }
    }

    /// 400 for a required field that is absent.
    pub fn missing_field(field: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("Missing required field: {field}"),
            Some(json!({ "field": field, "code": "missing_required_field" })),
        )
    }

    /// 400 for a field with an unusable value.
    pub fn invalid_field(field: &str, message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            message,
            Some(json!({ "field": field, "code": "invalid_value" })),
        )
    }

    /// 400 with free-form details.
    pub fn bad_request(message: impl Into<String>, details: Value) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            message,
            Some(details),
        )
    }

    /// 401: no or unknown credentials.
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Invalid or missing API key",
            None,
        )
    }

    /// 401 for an agent whose token is not the one configured for its cluster.
    pub fn agent_unauthorized(cluster_id: &str) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            format!(
                "Agent token refused for cluster {cluster_id}: it is not the token configured \
                 for this cluster, or it was revoked"
            ),
            Some(json!({ "cluster_id": cluster_id })),
        )
    }

    /// 403: valid credentials without the needed permission.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message, None)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message, None)
    }

    /// 503: a dependency (agent link, store) is not available.
    pub fn service_unavailable(message: impl Into<String>, details: Value) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "service_unavailable",
            message,
            Some(details),
        )
    }

    /// 504: the command did not finish in time.
    pub fn timeout(message: impl Into<String>, details: Value) -> Self {
        Self::new(
            StatusCode::GATEWAY_TIMEOUT,
            "timeout",
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
            "internal_error",
            "An unexpected error occurred",
            Some(json!({ "request_id": request_id })),
        )
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
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
        (self.status, Json(self.body)).into_response()
    }
}
