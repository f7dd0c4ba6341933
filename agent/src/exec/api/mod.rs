//! The agent's one way to the API server: requests (whole or streamed; every one is built and
//! sent by `send`) and errors worded the way kubectl words them.
//!
//! - [`discovery`] — what the server serves, fetched once and cached by the `Executor`, and
//!   kubectl's rules for resolving a typed name;
//! - [`builder`] — cli-runtime's resource builder: typed targets into requests (`get`,
//!   `describe`), and one typed resource resolved with a refresh on a miss (`logs`, `rollout`,
//!   `events --for`, `auth can-i`);
//! - [`watch`] — the API server's watch streams, resumed across reconnects.

pub(crate) mod builder;
pub(crate) mod discovery;
pub(crate) mod watch;

use kubeline_printers::go::fmt::go_quote;
use serde_json::Value;

/// kubectl's `Accept` header for `get` with server-side printing.
pub(crate) const ACCEPT_TABLE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,\
     application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
/// Plain JSON objects.
pub(crate) const ACCEPT_JSON: &str = "application/json";
/// Aggregated discovery, falling back to the legacy documents on servers without it.
pub(crate) const ACCEPT_DISCOVERY: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,\
     application/json";

/// A failed request, as kubectl would report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ApiError {
    /// The server answered with an error status.
    Status {
        /// HTTP status code.
        code: u16,
        /// `Status.reason`, e.g. `NotFound`; may be empty.
        reason: String,
        /// `Status.message`.
        message: String,
    },
    /// No usable answer: connection refused, TLS, timeouts, undecodable bodies.
    Transport(String),
    /// kubeline stopped before the server was asked too much (a limit in
    /// `kubeline_shared::limits`); the message says which and what to do.
    Limit(String),
}

impl ApiError {
    /// A list that would take more than `max_pages` pages of `chunk` objects.
    pub(crate) fn too_many_pages(max_pages: usize, chunk: u32) -> Self {
        ApiError::Limit(format!(
            "listing would take more than kubeline's limit of {max_pages} pages of \
             --chunk-size={chunk}; use a larger --chunk-size (kubectl's default is 500) or narrow \
             the list with -n, -l or --field-selector"
        ))
    }

    /// Whether this is a 404 NotFound (what `--ignore-not-found` ignores).
    pub(crate) fn is_not_found(&self) -> bool {
        matches!(self, ApiError::Status { reason, code, .. } if reason == "NotFound" || (reason.is_empty() && *code == 404))
    }

    /// Go's `err.Error()` for this error: the message alone, without the decoration
    /// [`ApiError::kubectl_message`] adds (`Error from server (Reason): `), as kubectl prints
    /// an error inside other text (`describe`'s event lists, `logs -f`'s retries).
    pub(crate) fn go_error(&self) -> String {
        match self {
            ApiError::Status { message, .. } => message.clone(),
            ApiError::Transport(m) | ApiError::Limit(m) => m.clone(),
        }
    }

    /// The line kubectl prints for this error (cmdutil's `StandardErrorMessage`).
    pub(crate) fn kubectl_message(&self) -> String {
        match self {
            ApiError::Status {
                reason, message, ..
            } if reason == "Unauthorized" => {
                format!("error: You must be logged in to the server ({message})")
            }
            ApiError::Status {
                reason, message, ..
            } if !reason.is_empty() => {
                format!("Error from server ({reason}): {message}")
            }
            ApiError::Status { message, .. } => format!("Error from server: {message}"),
            ApiError::Transport(message) => format!("Unable to connect to the server: {message}"),
            ApiError::Limit(message) => format!("error: {message}"),
        }
    }

    /// client-go's `NewGenericServerResponse`, for error bodies that are not a `Status`.
    fn generic(code: u16, body: &str, what: Option<&str>) -> Self {
        let (reason, mut message) = match code {
            409 => ("Conflict", "the server reported a conflict".to_string()),
            404 => ("NotFound", "the server could not find the requested resource".to_string()),
            400 => ("BadRequest", "the server rejected our request for an unknown reason".to_string()),
            401 => ("Unauthorized", "the server has asked for the client to provide credentials".to_string()),
            403 => ("Forbidden", body.to_string()),
            405 => ("MethodNotAllowed", "the server does not allow this method on the requested resource".to_string()),
            406 => (
                "NotAcceptable",
                if body.is_empty() || body == "unknown" {
                    "the server was unable to respond with a content type that the client supports".to_string()
                } else {
                    body.to_string()
                },
            ),
            415 => ("UnsupportedMediaType", body.to_string()),
            422 => ("Invalid", "the server rejected our request due to an error in our request".to_string()),
            503 => ("ServiceUnavailable", "the server is currently unable to handle the request".to_string()),
            504 => (
                "Timeout",
                "the server was unable to return a response in the time allotted, but may still be processing the request"
                    .to_string(),
            ),
            429 => (
                "TooManyRequests",
                "the server has received too many requests and has asked us to try again later".to_string(),
            ),
            c if c >= 500 => (
                "InternalError",
                format!("an error on the server ({}) has prevented the request from succeeding", go_quote(body)),
            ),
            c => ("", format!("the server responded with the status code {c} but did not return more information")),
        };
        if let Some(what) = what {
            message = format!("{message} ({what})");
        }
        ApiError::Status {
            code,
            reason: reason.to_string(),
            message,
        }
    }
}

/// A successful response: the decoded body and any `Warning` headers (already unquoted).
pub(crate) struct Response {
    pub body: Value,
    pub warnings: Vec<String>,
}

/// GETs `path` (with its query) and decodes the JSON body. `what` describes the request for
/// errors without a `Status` body, as client-go does (`get pods.metrics.k8s.io`).
pub(crate) async fn get(
    client: &kube::Client,
    path: &str,
    accept: &str,
    what: Option<&str>,
) -> Result<Response, ApiError> {
    decode(get_raw(client, path, accept, what).await?)
}

/// A successful response whose body is left as the server sent it (for printers that keep
/// the server's key order, as a Go struct does).
pub(crate) struct RawResponse {
    pub body: Vec<u8>,
    pub warnings: Vec<String>,
}

/// [`get`] without decoding a successful body.
pub(crate) async fn get_raw(
    client: &kube::Client,
    path: &str,
    accept: &str,
    what: Option<&str>,
) -> Result<RawResponse, ApiError> {
    fetch(client, http::Method::GET, path, accept, None, what).await
}

/// POSTs `body` as JSON to `path` (a review object: the agent creates nothing that persists)
/// and decodes the answer. `what` is as for [`get`] (`post selfsubjectaccessreviews.…`).
pub(crate) async fn post(
    client: &kube::Client,
    path: &str,
    body: &Value,
    what: Option<&str>,
) -> Result<Response, ApiError> {
    let body = body.to_string().into_bytes();
    let raw = fetch(
        client,
        http::Method::POST,
        path,
        ACCEPT_JSON,
        Some(body),
        what,
    )
    .await?;
    decode(raw)
}

/// Decodes the JSON body of a successful answer.
fn decode(raw: RawResponse) -> Result<Response, ApiError> {
    let body = serde_json::from_slice(&raw.body)
        .map_err(|e| ApiError::Transport(format!("cannot decode the server's response: {e}")))?;
    Ok(Response {
        body,
        warnings: raw.warnings,
    })
}

/// Sends one request and reads its whole answer: the body of a successful one with its
/// warnings, or the error an unsuccessful one stands for.
async fn fetch(
    client: &kube::Client,
    method: http::Method,
    path: &str,
    accept: &str,
    body: Option<Vec<u8>>,
    what: Option<&str>,
) -> Result<RawResponse, ApiError> {
    let response = send(client, method, path, accept, body).await?;
    let status = response.status();
    let warnings = response
        .headers()
        .get_all("warning")
        .iter()
        .filter_map(|h| h.to_str().ok())
        .filter_map(parse_warning)
        .collect();
    let body = response
        .into_body()
        .collect_bytes()
        .await
        .map_err(|e| ApiError::Transport(transport_message(&e)))?;
    if status.is_success() {
        return Ok(RawResponse {
            body: body.to_vec(),
            warnings,
        });
    }
    Err(error_response(status.as_u16(), &body, what))
}

/// The one place the agent builds and sends a request to the API server; a request that gets
/// no answer is a [`ApiError::Transport`] worded as kubectl words it.
async fn send(
    client: &kube::Client,
    method: http::Method,
    path: &str,
    accept: &str,
    body: Option<Vec<u8>>,
) -> Result<http::Response<kube::client::Body>, ApiError> {
    let mut request = http::Request::builder()
        .method(method)
        .uri(path)
        .header(http::header::ACCEPT, accept);
    if body.is_some() {
        request = request.header(http::header::CONTENT_TYPE, "application/json");
    }
    let request = request
        .body(kube::client::Body::from(body.unwrap_or_default()))
        .map_err(|e| ApiError::Transport(e.to_string()))?;
    client
        .send(request)
        .await
        .map_err(|e| ApiError::Transport(transport_message(&e)))
}

/// The error an unsuccessful answer stands for: its `Status`, or client-go's generic error.
fn error_response(code: u16, body: &[u8], what: Option<&str>) -> ApiError {
    match serde_json::from_slice::<Value>(body) {
        Ok(v) if v.get("kind").and_then(Value::as_str) == Some("Status") => status_of(code, &v),
        _ => ApiError::generic(code, String::from_utf8_lossy(body).trim(), what),
    }
}

/// A `Status` object as an error (`code` when the object carries none).
pub(crate) fn status_of(code: u16, status: &Value) -> ApiError {
    let text = |key: &str| {
        status
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    ApiError::Status {
        code: status
            .get("code")
            .and_then(Value::as_u64)
            .and_then(|c| u16::try_from(c).ok())
            .unwrap_or(code),
        reason: text("reason"),
        message: text("message"),
    }
}

/// The body of a streamed answer (`pods/log?follow=true`, `?watch=true`), read as it arrives.
pub(crate) type BodyStream =
    std::pin::Pin<Box<dyn futures::Stream<Item = Result<bytes::Bytes, ApiError>> + Send>>;

/// GETs `path` and hands back the body of a successful answer as it arrives; an unsuccessful
/// one is read whole and reported as [`get`] reports it.
pub(crate) async fn get_stream(
    client: &kube::Client,
    path: &str,
    accept: &str,
    what: Option<&str>,
) -> Result<BodyStream, ApiError> {
    get_stream_with(client, path, accept, |code, body| {
        error_response(code, body, what)
    })
    .await
}

/// [`get_stream`] with the caller's reading of an unsuccessful answer (`logs` reads a body
/// that is not a `Status` as the message itself).
pub(crate) async fn get_stream_with(
    client: &kube::Client,
    path: &str,
    accept: &str,
    on_error: impl FnOnce(u16, &[u8]) -> ApiError,
) -> Result<BodyStream, ApiError> {
    use futures::TryStreamExt;
    use http_body_util::BodyExt;
    let response = send(client, http::Method::GET, path, accept, None).await?;
    let status = response.status();
    if !status.is_success() {
        let body = response
            .into_body()
            .collect_bytes()
            .await
            .map_err(|e| ApiError::Transport(transport_message(&e)))?;
        return Err(on_error(status.as_u16(), &body));
    }
    Ok(Box::pin(
        response
            .into_body()
            .into_data_stream()
            .map_err(|e| ApiError::Transport(transport_message(&e))),
    ))
}

/// cli-runtime's `Info.Get`: GETs one named object. When it is NotFound in a namespace other
/// than `default`, kubectl asks for the namespace, and if that is NotFound too, the namespace's
/// error is the one reported (`namespaces "nope" not found`).
pub(crate) async fn get_object(
    client: &kube::Client,
    path: &str,
    namespace: Option<&str>,
    what: Option<&str>,
) -> Result<Response, ApiError> {
    match get(client, path, ACCEPT_JSON, what).await {
        Err(e) if e.is_not_found() => Err(namespace_error(client, namespace).await.unwrap_or(e)),
        r => r,
    }
}

/// The NotFound of `namespace` when it does not exist (and is not `default`), else `None`.
pub(crate) async fn namespace_error(
    client: &kube::Client,
    namespace: Option<&str>,
) -> Option<ApiError> {
    let ns = namespace.filter(|n| !n.is_empty() && *n != "default")?;
    let path = format!("/api/v1/namespaces/{}", segment(ns));
    match get(client, &path, ACCEPT_JSON, None).await {
        Err(e) if e.is_not_found() => Some(e),
        _ => None,
    }
}

/// `schema.GroupVersionResource.String()`: `/v1, Resource=pods`, `apps/v1, Resource=deployments`.
pub(crate) fn gvr_string(group: &str, version: &str, resource: &str) -> String {
    format!("{group}/{version}, Resource={resource}")
}

/// cli-runtime's `EnhanceListError`: a BadRequest or NotFound from a list names what was listed
/// (`subject`, e.g. [`gvr_string`]) and the selectors used.
pub(crate) fn enhance_list_error(
    e: ApiError,
    label_selector: &str,
    field_selector: &str,
    subject: &str,
) -> ApiError {
    match e {
        ApiError::Status {
            code,
            reason,
            message,
        } if reason == "BadRequest" || reason == "NotFound" => {
            let message = if label_selector.is_empty() && field_selector.is_empty() {
                format!("Unable to list {}: {message}", go_quote(subject))
            } else {
                format!(
                    "Unable to find {} that match label selector {}, field selector {}: {message}",
                    go_quote(subject),
                    go_quote(label_selector),
                    go_quote(field_selector)
                )
            };
            ApiError::Status {
                code,
                reason,
                message,
            }
        }
        e => e,
    }
}

fn transport_message(e: &kube::Error) -> String {
    use std::error::Error as _;
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !message.contains(&text) {
            message = format!("{message}: {text}");
        }
        source = s.source();
    }
    message
}

/// `299 - "message"` (RFC 7234 warning) → `message`.
fn parse_warning(header: &str) -> Option<String> {
    let rest = header.trim().strip_prefix("299")?.trim_start();
    let rest = rest.strip_prefix('-')?.trim_start();
    let quoted = rest.strip_prefix('"')?;
    let mut out = String::new();
    let mut chars = quoted.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push(chars.next()?),
            '"' => return Some(out),
            c => out.push(c),
        }
    }
    None
}

/// Percent-encodes one path segment (object and namespace names are validated by the parser;
/// this is a second line of defence).
pub(crate) fn segment(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_read_like_kubectl() {
        let not_found = ApiError::Status {
            code: 404,
            reason: "NotFound".into(),
            message: "pods \"x\" not found".into(),
        };
        assert_eq!(
            not_found.kubectl_message(),
            "Error from server (NotFound): pods \"x\" not found"
        );
        assert!(not_found.is_not_found());
        assert_eq!(
            ApiError::generic(503, "", Some("get pods.metrics.k8s.io")).kubectl_message(),
            "Error from server (ServiceUnavailable): the server is currently unable to handle the request (get pods.metrics.k8s.io)"
        );
        assert_eq!(
            ApiError::Status {
                code: 401,
                reason: "Unauthorized".into(),
                message: "Unauthorized".into()
            }
            .kubectl_message(),
            "error: You must be logged in to the server (Unauthorized)"
        );
    }

    #[test]
    fn list_errors_name_what_was_listed() {
        let bad = || ApiError::Status {
            code: 400,
            reason: "BadRequest".into(),
            message: "found '=', expected: ',' or 'end of string'".into(),
        };
        assert_eq!(
            enhance_list_error(bad(), "a=b=c", "", &gvr_string("", "v1", "pods")).kubectl_message(),
            "Error from server (BadRequest): Unable to find \"/v1, Resource=pods\" that match label \
             selector \"a=b=c\", field selector \"\": found '=', expected: ',' or 'end of string'"
        );
        assert_eq!(
            enhance_list_error(bad(), "", "", "events").kubectl_message(),
            "Error from server (BadRequest): Unable to list \"events\": found '=', expected: ',' or \
             'end of string'"
        );
        let forbidden = ApiError::Status {
            code: 403,
            reason: "Forbidden".into(),
            message: "no".into(),
        };
        assert_eq!(
            enhance_list_error(forbidden.clone(), "a", "", "x"),
            forbidden
        );
    }

    #[test]
    fn warnings_are_unquoted() {
        assert_eq!(
            parse_warning(r#"299 - "v1 ComponentStatus is deprecated in v1.19+""#).as_deref(),
            Some("v1 ComponentStatus is deprecated in v1.19+")
        );
        assert_eq!(
            parse_warning(r#"299 - "a \"quoted\" word""#).as_deref(),
            Some("a \"quoted\" word")
        );
        assert_eq!(parse_warning("199 - nope"), None);
    }

    #[test]
    fn segments_are_encoded() {
        assert_eq!(segment("system:node"), "system%3Anode");
        assert_eq!(segment("a b/.."), "a%20b%2F..");
    }
}
