//! The one REST client of the `kubeline` binary: the operator commands (`login`, `clusters`,
//! `status`, `kubectl`), `audit verify` and the `mcp` bridge talk to a broker through it.
//!
//! Requests and answers are the `kubeline_shared::api` types. Whatever goes wrong becomes a
//! [`ClientError`] whose `Display` is a sentence for people: the broker's own message for an
//! error answer (`{"error","message","details"}`), `cannot reach the broker at URL: connection
//! refused` (or the actual cause) when there is no answer, never a debug dump.

use std::error::Error as _;
use std::path::Path;
use std::time::Duration;

use kubeline_shared::api::{
    ClusterList, ClusterStatusInfo, CommandResult, CreateSessionRequest, ErrorCode, ExecuteRequest,
    SessionClosed, SessionCreated,
};
use kubeline_shared::audit::AuditPage;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// How long a connection may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Timeout of the requests that do not run a command.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The `User-Agent` of every request.
const USER_AGENT: &str = concat!("kubeline-cli/", env!("CARGO_PKG_VERSION"));

/// What went wrong with a request to the broker.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientError {
    /// No answer: the connection could not be made or was lost (`cause` says how).
    Unreachable { url: String, cause: String },
    /// The broker did not answer in time.
    Timeout { url: String, after: Duration },
    /// The broker answered with an error body.
    Api(Box<ApiError>),
    /// An answer that is not what a kubeline broker sends (an HTML page of a proxy, a body
    /// that does not decode).
    Unexpected {
        url: String,
        status: u16,
        what: String,
    },
}

/// An error answer of the broker: its status and `{"error","message","details"}` body.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// `METHOD URL` of the request.
    pub request: String,
    pub status: u16,
    /// `error`: the machine-readable class (`None` for a class this client does not know).
    pub code: Option<ErrorCode>,
    /// `error` as sent.
    pub code_text: String,
    /// `message`: what went wrong, for people.
    pub message: String,
    /// `details` (`null` when absent).
    pub details: Value,
    /// `Retry-After`, in seconds.
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// `details.code`, the specific reason (`session_closed`, `cluster_not_granted`, …).
    pub fn detail_code(&self) -> Option<&str> {
        self.details.get("code").and_then(Value::as_str)
    }
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unreachable { url, cause } => {
                write!(f, "cannot reach the broker at {url}: {cause}")
            }
            Self::Timeout { url, after } => write!(
                f,
                "the broker at {url} did not answer within {} s",
                after.as_secs_f64().ceil()
            ),
            Self::Api(e) => write!(f, "{} ({} {})", e.message, e.status, e.code_text),
            Self::Unexpected { url, status, what } => write!(
                f,
                "the server at {url} answered HTTP {status} with {what}; is it a kubeline \
                 broker? (check the URL)"
            ),
        }
    }
}

impl std::error::Error for ClientError {}

/// A client of one broker with one API key.
#[derive(Clone)]
pub struct Client {
    base: String,
    key: String,
    http: reqwest::Client,
}

impl Client {
    /// A client of the broker at `base` (`http://host:port` or `https://…`, a path prefix
    /// allowed), trusting the CA certificates of `ca_file` besides the built-in roots. Fails
    /// with a sentence naming the URL or the file when either is unusable.
    pub fn new(base: &str, key: &str, ca_file: Option<&Path>) -> Result<Self, String> {
        let base = normalize_url(base)?;
        let mut builder = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(USER_AGENT);
        if let Some(path) = ca_file {
            for certificate in read_ca_file(path)? {
                builder = builder.add_root_certificate(certificate);
            }
        }
        let http = builder
            .build()
            .map_err(|e| format!("cannot set up an HTTP client: {e}"))?;
        Ok(Self {
            base,
            key: key.to_owned(),
            http,
        })
    }

    /// The broker's base URL, without a trailing `/`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// `GET /clusters`.
    pub async fn clusters(&self) -> Result<ClusterList, ClientError> {
        self.get("/clusters", &[]).await
    }

    /// `GET /clusters/{id}/status`; `id` must be a valid cluster id (`check_cluster_id`).
    pub async fn cluster_status(&self, id: &str) -> Result<ClusterStatusInfo, ClientError> {
        self.get(&format!("/clusters/{id}/status"), &[]).await
    }

    /// `POST /debug/session`.
    pub async fn create_session(
        &self,
        request: &CreateSessionRequest,
    ) -> Result<SessionCreated, ClientError> {
        self.send(
            self.http.post(self.url("/debug/session")).json(request),
            DEFAULT_TIMEOUT,
        )
        .await
    }

    /// `DELETE /debug/session/{id}`.
    pub async fn close_session(
        &self,
        id: &str,
        timeout: Duration,
    ) -> Result<SessionClosed, ClientError> {
        self.send(
            self.http
                .delete(self.url(&format!("/debug/session/{}", path_segment(id)))),
            timeout,
        )
        .await
    }

    /// `POST /debug/execute`, waiting up to `timeout` for the answer (give it some seconds more
    /// than the command's own timeout: the broker answers by then).
    pub async fn execute(
        &self,
        request: &ExecuteRequest,
        timeout: Duration,
    ) -> Result<CommandResult, ClientError> {
        self.send(
            self.http.post(self.url("/debug/execute")).json(request),
            timeout,
        )
        .await
    }

    /// One page of `GET /audit` (admin), newest first.
    pub async fn audit_page(
        &self,
        limit: usize,
        cursor: Option<&str>,
        timeout: Duration,
    ) -> Result<AuditPage, ClientError> {
        let mut query = vec![("limit", limit.to_string())];
        query.extend(cursor.map(|c| ("cursor", c.to_owned())));
        self.send(self.http.get(self.url("/audit")).query(&query), timeout)
            .await
    }

    /// A POST of a JSON `body` to `path` with more `headers`, for the caller to read the answer
    /// itself (the MCP bridge). No total timeout unless given: an MCP answer may be a long
    /// stream. A failure to get an answer is a [`ClientError`] naming the URL.
    pub async fn post_raw(
        &self,
        path: &str,
        body: Vec<u8>,
        headers: reqwest::header::HeaderMap,
        timeout: Option<Duration>,
    ) -> Result<reqwest::Response, ClientError> {
        let url = self.url(path);
        let mut request = self
            .http
            .post(&url)
            .bearer_auth(&self.key)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .headers(headers)
            .body(body);
        if let Some(timeout) = timeout {
            request = request.timeout(timeout);
        }
        request
            .send()
            .await
            .map_err(|e| self.transport_error(&url, &e, timeout.unwrap_or(Duration::ZERO)))
    }

    /// The cause of a failure while reading an answer's body, as a [`ClientError`] on `url`.
    pub fn read_error(&self, url: &str, e: &reqwest::Error) -> ClientError {
        self.transport_error(url, e, Duration::ZERO)
    }

    async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<T, ClientError> {
        self.send(self.http.get(self.url(path)).query(query), DEFAULT_TIMEOUT)
            .await
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends with the key, reads the whole answer, decodes `T` or the error body.
    async fn send<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
        timeout: Duration,
    ) -> Result<T, ClientError> {
        let request = request
            .bearer_auth(&self.key)
            .timeout(timeout)
            .build()
            .map_err(|e| ClientError::Unreachable {
                url: self.base.clone(),
                cause: format!("cannot build the request: {e}"),
            })?;
        let described = format!("{} {}", request.method(), request.url());
        let answer = self
            .http
            .execute(request)
            .await
            .map_err(|e| self.transport_error(&self.base, &e, timeout))?;
        let status = answer.status().as_u16();
        let retry_after = answer
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok());
        let body = answer
            .bytes()
            .await
            .map_err(|e| self.transport_error(&self.base, &e, timeout))?;
        decode(&described, &self.base, status, retry_after, &body)
    }

    fn transport_error(&self, url: &str, e: &reqwest::Error, timeout: Duration) -> ClientError {
        if e.is_timeout() {
            return ClientError::Timeout {
                url: url.to_owned(),
                after: timeout,
            };
        }
        ClientError::Unreachable {
            url: url.to_owned(),
            cause: cause(e),
        }
    }
}

/// Largest CA file read.
const MAX_CA_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// The certificates of a PEM file given with `--ca-file`.
fn read_ca_file(path: &Path) -> Result<Vec<reqwest::Certificate>, String> {
    use std::io::Read;
    let mut pem = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_CA_FILE_BYTES + 1).read_to_end(&mut pem))
        .map_err(|e| {
            format!(
                "cannot read the CA file {} (--ca-file): {e}",
                path.display()
            )
        })?;
    if pem.len() as u64 > MAX_CA_FILE_BYTES {
        return Err(format!(
            "the CA file {} (--ca-file) is larger than {MAX_CA_FILE_BYTES} bytes",
            path.display()
        ));
    }
    let certificates = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
        format!(
            "the CA file {} (--ca-file) is not PEM certificates: {e}",
            path.display()
        )
    })?;
    if certificates.is_empty() {
        return Err(format!(
            "the CA file {} (--ca-file) holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            path.display()
        ));
    }
    Ok(certificates)
}

/// Decodes an answer: `T` on 2xx, else the error body (or says what came instead).
pub fn decode<T: DeserializeOwned>(
    request: &str,
    base: &str,
    status: u16,
    retry_after: Option<u64>,
    body: &[u8],
) -> Result<T, ClientError> {
    if (200..300).contains(&status) {
        return serde_json::from_slice(body).map_err(|e| ClientError::Unexpected {
            url: base.to_owned(),
            status,
            what: format!("a body this client does not understand ({e})"),
        });
    }
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let message = parsed
        .as_ref()
        .and_then(|v| v.get("message"))
        .and_then(Value::as_str);
    let code_text = parsed
        .as_ref()
        .and_then(|v| v.get("error"))
        .and_then(Value::as_str);
    match (message, code_text) {
        (Some(message), Some(code_text)) => {
            let parsed = parsed.as_ref().expect("parsed");
            Err(ClientError::Api(Box::new(ApiError {
                request: request.to_owned(),
                status,
                code: serde_json::from_value(Value::String(code_text.to_owned())).ok(),
                code_text: code_text.to_owned(),
                message: message.to_owned(),
                details: parsed.get("details").cloned().unwrap_or(Value::Null),
                retry_after,
            })))
        }
        _ => Err(ClientError::Unexpected {
            url: base.to_owned(),
            status,
            what: describe_body(body),
        }),
    }
}

/// A few words on a body that is not an error body.
pub fn describe_body(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return "an empty body".to_owned();
    }
    let mut snippet: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(120)
        .collect();
    if text.chars().count() > 120 {
        snippet.push('…');
    }
    format!("this instead of a kubeline error body: {snippet:?}")
}

/// The cause of a failed request, in words: the innermost I/O error (`connection refused`), or
/// the innermost error of the chain (a TLS or DNS failure).
pub fn cause(e: &reqwest::Error) -> String {
    let mut source = e.source();
    let mut innermost: Option<&(dyn std::error::Error + 'static)> = None;
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return io_cause(io);
        }
        innermost = Some(s);
        source = s.source();
    }
    let text = match innermost {
        Some(s) => s.to_string(),
        None if e.is_body() || e.is_decode() => format!("the answer broke off ({e})"),
        None => e.to_string(),
    };
    without_os_error(&text)
}

fn io_cause(io: &std::io::Error) -> String {
    use std::io::ErrorKind::*;
    match io.kind() {
        ConnectionRefused => "connection refused".to_owned(),
        ConnectionReset => "connection reset by the server".to_owned(),
        ConnectionAborted => "connection aborted".to_owned(),
        TimedOut => "connection timed out".to_owned(),
        NotConnected | BrokenPipe | UnexpectedEof => "the connection was closed".to_owned(),
        AddrNotAvailable => "address not available".to_owned(),
        _ => without_os_error(&io.to_string()),
    }
}

/// `Network is unreachable (os error 101)` → `network is unreachable` (a name such as
/// `UnknownIssuer` keeps its capital).
fn without_os_error(text: &str) -> String {
    let text = match text.rfind(" (os error ") {
        Some(i) if text.ends_with(')') => &text[..i],
        _ => text,
    };
    let first_word = text.split(' ').next().unwrap_or("");
    let mut chars = first_word.chars();
    let capitalized_word = chars.next().is_some_and(char::is_uppercase)
        && chars.all(char::is_lowercase)
        && first_word.len() < text.len();
    if capitalized_word {
        let mut chars = text.chars();
        let first = chars.next().expect("not empty");
        first.to_lowercase().chain(chars).collect()
    } else {
        text.to_owned()
    }
}

/// Checks and normalizes a broker URL: `http(s)://host[:port][/prefix]`, no trailing `/`.
pub fn normalize_url(url: &str) -> Result<String, String> {
    let trimmed = url.trim().trim_end_matches('/');
    let parsed = reqwest::Url::parse(trimmed).map_err(|e| {
        format!("{url:?} is not a URL ({e}): give the broker's URL, http://host:port or https://…")
    })?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(format!(
            "{url:?} is not an http(s) URL: give the broker's URL, http://host:port or https://…"
        ));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(format!(
            "{url:?} has a query or fragment: give the broker's base URL, http://host:port or \
             https://…"
        ));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(format!(
            "{url:?} carries credentials: give the URL without them, and the API key with \
             --api-key, KUBELINE_API_KEY or `kubeline login`"
        ));
    }
    Ok(parsed.as_str().trim_end_matches('/').to_owned())
}

/// A path segment from a server-given id (ids are `[A-Za-z0-9_-]`; anything else is escaped).
fn path_segment(id: &str) -> String {
    id.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_and_normalized() {
        assert_eq!(
            normalize_url("http://127.0.0.1:8080/").unwrap(),
            "http://127.0.0.1:8080"
        );
        assert_eq!(
            normalize_url(" https://b.example/kubeline/ ").unwrap(),
            "https://b.example/kubeline"
        );
        assert_eq!(
            normalize_url("HTTP://B.example").unwrap(),
            "http://b.example"
        );
        for bad in [
            "127.0.0.1:8080",
            "ftp://b",
            "http://",
            "b",
            "http://b/?x=1",
            "http://u:p@b",
        ] {
            let e = normalize_url(bad).unwrap_err();
            assert!(e.contains("URL") || e.contains("credentials"), "{bad}: {e}");
        }
    }

    #[test]
    fn error_bodies_become_api_errors() {
        let body = br#"{"error":"not_found","message":"Cluster not found: nope","details":null}"#;
        let e = decode::<Value>(
            "GET http://b/clusters/nope/status",
            "http://b",
            404,
            None,
            body,
        )
        .unwrap_err();
        let ClientError::Api(api) = &e else {
            panic!("{e:?}")
        };
        assert_eq!(api.code, Some(ErrorCode::NotFound));
        assert_eq!(e.to_string(), "Cluster not found: nope (404 not_found)");

        let body = br#"{"error":"rate_limited","message":"slow down","details":{"code":"x","retry_after":3}}"#;
        let ClientError::Api(api) =
            decode::<Value>("r", "http://b", 429, Some(3), body).unwrap_err()
        else {
            panic!()
        };
        assert_eq!(api.retry_after, Some(3));
        assert_eq!(api.detail_code(), Some("x"));

        // A class this client does not know yet still gives its message.
        let body = br#"{"error":"teapot","message":"I am one"}"#;
        let ClientError::Api(api) = decode::<Value>("r", "http://b", 418, None, body).unwrap_err()
        else {
            panic!()
        };
        assert_eq!(api.code, None);
        assert_eq!(api.message, "I am one");
    }

    #[test]
    fn other_answers_are_described() {
        let e = decode::<Value>("r", "http://b", 502, None, b"<html>\n<h1>Bad Gateway</h1>")
            .unwrap_err();
        let text = e.to_string();
        assert!(
            text.starts_with("the server at http://b answered HTTP 502 with this instead"),
            "{text}"
        );
        assert!(text.contains("Bad Gateway"), "{text}");
        let e = decode::<ClusterList>("r", "http://b", 200, None, b"{}").unwrap_err();
        assert!(
            e.to_string()
                .contains("a body this client does not understand"),
            "{e}"
        );
        let e = decode::<Value>("r", "http://b", 401, None, b"").unwrap_err();
        assert!(e.to_string().contains("an empty body"), "{e}");
    }

    #[test]
    fn os_errors_read_as_words() {
        assert_eq!(
            without_os_error("Network is unreachable (os error 101)"),
            "network is unreachable"
        );
        assert_eq!(without_os_error("UnknownIssuer"), "UnknownIssuer");
        assert_eq!(
            without_os_error("invalid peer certificate: UnknownIssuer"),
            "invalid peer certificate: UnknownIssuer"
        );
        assert_eq!(without_os_error("TLS handshake eof"), "TLS handshake eof");
        let io = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(io_cause(&io), "connection refused");
    }

    #[tokio::test]
    async fn a_dead_broker_is_named_with_the_cause() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let client = Client::new(&format!("http://127.0.0.1:{port}"), "k", None).unwrap();
        let e = client.clusters().await.unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("cannot reach the broker at http://127.0.0.1:{port}: connection refused")
        );
    }

    #[test]
    fn bad_ca_files_are_named() {
        let dir = std::env::temp_dir().join(format!("kubeline-client-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("missing.pem");
        let e = Client::new("https://b", "k", Some(&missing)).err().unwrap();
        assert!(
            e.starts_with(&format!("cannot read the CA file {}", missing.display())),
            "{e}"
        );
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let e = Client::new("https://b", "k", Some(&empty)).err().unwrap();
        assert!(
            e.contains("holds no PEM certificate") || e.contains("is not PEM"),
            "{e}"
        );
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn ids_are_escaped_in_paths() {
        assert_eq!(path_segment("sess_ab-1"), "sess_ab-1");
        assert_eq!(path_segment("a/../b"), "a%2F..%2Fb");
    }
}
