//! The one way handlers read a request: thin wrappers over axum's extractors that answer every
//! rejection with an [`ApiError`], so even the framework's refusals have the contract's
//! `{"error","message","details"}` body.
//!
//! - [`Json`]: a JSON body: 415 unless it is declared as JSON, 413 past `--max-body-bytes`,
//!   400 naming line and column for syntax errors and the field for type errors. An empty body
//!   reads as `{}` (so a missing field is reported by name).
//! - [`Path`]: path parameters: 400 naming the parameter (not UTF-8, not parseable).
//! - [`Query`]: the query string: 400 naming a repeated or unusable parameter.
//! - [`WebSocket`]: the agent link upgrade: 400 saying what this endpoint is for.
//!
//! Handlers take these, never axum's own extractors.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, FailedToBufferBody, PathRejection};
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use crate::AppState;
use crate::error::ApiError;

// === JSON bodies ===

/// A JSON request body (or response body: it answers like `axum::Json`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

impl<T> FromRequest<AppState> for Json<T>
where
    T: DeserializeOwned + Default,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let limit = state.settings.max_body_bytes;
        let content_type = req
            .headers()
            .get(CONTENT_TYPE)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        if let Some(ct) = &content_type
            && !is_json(ct)
        {
            return Err(ApiError::unsupported_media_type(Some(ct)));
        }
        // Refuse a declared oversize body without reading any of it.
        let declared = req
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit as u64) {
            return Err(ApiError::payload_too_large(limit));
        }
        // The router's `DefaultBodyLimit` is the same limit; it also catches chunked bodies.
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| body_rejection(e, limit))?;
        if bytes.is_empty() {
            return Ok(Self(T::default()));
        }
        if content_type.is_none() {
            return Err(ApiError::unsupported_media_type(None));
        }
        from_json(&bytes).map(Self)
    }
}

/// `application/json`, or any `application/*+json`, with any parameters.
fn is_json(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || essence
            .strip_prefix("application/")
            .is_some_and(|sub| sub.ends_with("+json"))
}

fn body_rejection(e: BytesRejection, limit: usize) -> ApiError {
    match e {
        BytesRejection::FailedToBufferBody(FailedToBufferBody::LengthLimitError(_)) => {
            ApiError::payload_too_large(limit)
        }
        other => ApiError::bad_request(
            "The request body could not be read; send it again",
            json!({ "code": "unreadable_body", "reason": other.body_text() }),
        ),
    }
}

/// Parses a JSON object body, naming line and column for syntax errors and the field for data
/// errors.
pub fn from_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // serde reads a struct from an array too (`["c1"]` would be a session request): only an
    // object is a body.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        serde_json::from_slice::<serde::de::IgnoredAny>(bytes).map_err(syntax_error)?;
        return Err(ApiError::bad_request(
            "Request body must be a JSON object with this endpoint's fields",
            json!({ "field": "body", "code": "invalid_value" }),
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(json_error)?;
    de.end().map_err(syntax_error)?;
    Ok(value)
}

fn syntax_error(e: serde_json::Error) -> ApiError {
    ApiError::bad_request(
        format!(
            "Request body is not valid JSON: {} (line {}, column {})",
            reason(&e),
            e.line(),
            e.column()
        ),
        json!({ "code": "invalid_json", "line": e.line(), "column": e.column() }),
    )
}

fn json_error(e: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let path = e.path().to_string();
    let inner = e.into_inner();
    if !inner.is_data() {
        return syntax_error(inner);
    }
    let reason = reason(&inner);
    let field_of = |name: &str| {
        if path == "." {
            name.to_owned()
        } else {
            format!("{path}.{name}")
        }
    };
    if let Some(name) = backticked(&reason, "missing field `") {
        return ApiError::missing_field(&field_of(name));
    }
    let field = match backticked(&reason, "duplicate field `") {
        Some(name) => field_of(name),
        None if path == "." => "body".to_owned(),
        None => path,
    };
    let message = if field == "body" {
        format!("Request body must be a JSON object with this endpoint's fields: {reason}")
    } else {
        format!("Invalid value for field {field}: {reason}")
    };
    let mut details = Map::new();
    details.insert("field".into(), json!(field));
    details.insert("code".into(), json!("invalid_value"));
    details.insert("line".into(), json!(inner.line()));
    details.insert("column".into(), json!(inner.column()));
    ApiError::bad_request(message, Value::Object(details))
}

/// serde_json's message without its " at line L column C" suffix (reported separately).
fn reason(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    text.strip_suffix(&suffix).unwrap_or(&text).to_owned()
}

/// The name in "missing field `name`" and the like.
fn backticked<'a>(message: &'a str, prefix: &str) -> Option<&'a str> {
    message.strip_prefix(prefix)?.split('`').next()
}

// === path parameters ===

/// Path parameters; 400 naming the parameter when one cannot be read.
#[derive(Debug, Clone)]
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Self(value)),
            Err(e) => Err(path_rejection(e)),
        }
    }
}

fn path_rejection(e: PathRejection) -> ApiError {
    use axum::extract::path::ErrorKind;
    let PathRejection::FailedToDeserializePathParams(e) = e else {
        // MissingPathParams: a route and its handler disagree; a bug, not the caller's fault.
        return ApiError::internal(&e.body_text());
    };
    match e.kind() {
        ErrorKind::InvalidUtf8InPathParam { key } => ApiError::bad_request(
            format!("Path parameter {key} is not valid UTF-8 once percent-decoded"),
            json!({ "field": key, "code": "invalid_path_parameter" }),
        ),
        ErrorKind::ParseErrorAtKey {
            key,
            value,
            expected_type,
        } => ApiError::bad_request(
            format!("Path parameter {key} = {value:?} is not valid: expected {expected_type}"),
            json!({ "field": key, "code": "invalid_path_parameter" }),
        ),
        ErrorKind::DeserializeError {
            key,
            value,
            message,
        } => ApiError::bad_request(
            format!("Path parameter {key} = {value:?} is not valid: {message}"),
            json!({ "field": key, "code": "invalid_path_parameter" }),
        ),
        ErrorKind::WrongNumberOfParameters { .. } | ErrorKind::UnsupportedType { .. } => {
            ApiError::internal(&e.body_text())
        }
        _ => ApiError::bad_request(
            format!("The request path cannot be read: {}", e.kind()),
            json!({ "code": "invalid_path_parameter" }),
        ),
    }
}

// === query strings ===

/// The query string. Each parameter may be given once (400 naming it otherwise). Values reach
/// `T` as strings: parse numbers in the handler, where the message can say what is allowed.
#[derive(Debug, Clone)]
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let pairs = axum::extract::Query::<Vec<(String, String)>>::try_from_uri(&parts.uri)
            .map_err(|e| {
                ApiError::bad_request(
                    format!("The query string cannot be read: {}", e.body_text()),
                    json!({ "code": "invalid_query" }),
                )
            })?
            .0;
        let mut map = Map::new();
        for (name, value) in pairs {
            if map.contains_key(&name) {
                return Err(ApiError::bad_request(
                    format!("Query parameter {name} is given more than once; give it once"),
                    json!({ "field": name, "code": "repeated_parameter" }),
                ));
            }
            map.insert(name, Value::String(value));
        }
        serde_path_to_error::deserialize(Value::Object(map))
            .map(Self)
            .map_err(|e| {
                let field = e.path().to_string();
                let reason = e.into_inner().to_string();
                let field = backticked(&reason, "missing field `").map_or(field, str::to_owned);
                ApiError::bad_request(
                    format!("Query parameter {field} is not valid: {reason}"),
                    json!({ "field": field, "code": "invalid_value" }),
                )
            })
    }
}

// === the agent link upgrade ===

/// The WebSocket upgrade of the agent link; a request that is not one gets 400 saying what this
/// endpoint is.
pub struct WebSocket(pub WebSocketUpgrade);

impl<S: Send + Sync> FromRequestParts<S> for WebSocket {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        WebSocketUpgrade::from_request_parts(parts, state)
            .await
            .map(Self)
            .map_err(|e| {
                let path = parts.uri.path();
                let message = if path == kubeline_shared::protocol::CONNECT_PATH {
                    format!(
                        "{path} is the agent WebSocket endpoint: agents connect with a WebSocket \
                         upgrade (GET with Connection: upgrade, Upgrade: websocket, \
                         Sec-WebSocket-Version: 13, Sec-WebSocket-Key); callers use the REST \
                         API under /debug and /clusters"
                    )
                } else {
                    format!(
                        "{path} is a WebSocket endpoint: open it with a WebSocket upgrade (GET \
                         with Connection: upgrade, Upgrade: websocket, Sec-WebSocket-Version: \
                         13, Sec-WebSocket-Key), e.g. with websocat or any WebSocket client"
                    )
                };
                ApiError::bad_request(
                    message,
                    json!({ "code": "websocket_upgrade_required", "reason": e.body_text() }),
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_content_types() {
        for ok in [
            "application/json",
            "application/json; charset=utf-8",
            "Application/JSON",
            "application/merge-patch+json",
        ] {
            assert!(is_json(ok), "{ok}");
        }
        for bad in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "json",
            "",
        ] {
            assert!(!is_json(bad), "{bad}");
        }
    }

    #[derive(Debug, Default, serde::Deserialize)]
    struct Body {
        #[allow(dead_code)]
        name: Option<String>,
        #[allow(dead_code)]
        args: Option<Vec<String>>,
    }

    #[test]
    fn json_errors_name_line_column_and_field() {
        let e = from_json::<Body>(b"{\n  \"name\": \"x\",\n  oops}").unwrap_err();
        let body = e.body();
        assert_eq!(body.details.as_ref().unwrap()["code"], "invalid_json");
        assert!(
            body.message.contains("line 3, column 3"),
            "{}",
            body.message
        );

        let e = from_json::<Body>(br#"{"args": ["a", 5]}"#).unwrap_err();
        let details = e.body().details.clone().unwrap();
        assert_eq!(details["field"], "args[1]", "{details}");
        assert!(e.body().message.contains("invalid type: integer `5`"));

        let e = from_json::<Body>(br#"{"name": "a", "name": "b"}"#).unwrap_err();
        assert_eq!(e.body().details.as_ref().unwrap()["field"], "name");

        let e = from_json::<Body>(b"[1]").unwrap_err();
        assert_eq!(e.body().details.as_ref().unwrap()["field"], "body");

        let e = from_json::<Body>(b"{} trailing").unwrap_err();
        assert_eq!(e.body().details.as_ref().unwrap()["code"], "invalid_json");
    }
}
