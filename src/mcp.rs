//! `kubeline mcp`: a stdio bridge to the broker's MCP endpoint, for desktop MCP clients that only
//! speak stdio.
//!
//! Newline-delimited JSON-RPC messages arrive on standard input; each is POSTed on its own to
//! `{broker}/mcp` (Streamable HTTP) with the API key and the headers MCP 2026-07-28 asks for
//! (`MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name`, `Mcp-Param-*` from the tools' `x-mcp-header`
//! annotations; `Mcp-Session-Id` echoed if a server of an earlier revision sends one). Each
//! answer goes to standard output as one line: a JSON body as is, an SSE stream as one line per
//! `data:` message, nothing for 202. Requests run concurrently; a single writer keeps lines whole.
//! Standard output carries JSON-RPC only; the bridge's own messages go to standard error.
//!
//! When the broker cannot be reached, or answers something that is not JSON-RPC (a 401 with the
//! broker's error body, a proxy's HTML page), the request is answered with a JSON-RPC error
//! (code [`BRIDGE_ERROR`], outside JSON-RPC's reserved range as MCP asks of local errors) whose
//! message names the URL and the cause. `notifications/cancelled` aborts the request's HTTP
//! exchange (closing it is the cancellation in Streamable HTTP). End of input: exit 0 once the
//! requests in flight are answered (`subscriptions/listen` streams, which never end by
//! themselves, are closed).

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use base64::Engine;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::task::{AbortHandle, JoinSet};

use crate::client::{Client, ClientError};
use crate::config::{self, ClientArgs};

/// Path of the broker's MCP endpoint.
const ENDPOINT: &str = "/mcp";

/// `_meta` key carrying a request's protocol version (MCP 2026-07-28).
const META_PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";

/// JSON-RPC error code of the bridge's own errors (the broker could not be reached or did not
/// answer in JSON-RPC). MCP asks local errors to stay outside -32768..-32000.
pub const BRIDGE_ERROR: i64 = -31000;

/// Longest input line (one JSON-RPC message) accepted.
const MAX_LINE: usize = 64 * 1024 * 1024;

/// Largest JSON answer body read.
const MAX_BODY: usize = 64 * 1024 * 1024;

/// Pages an internal `tools/list` reads at most.
const MAX_LIST_PAGES: usize = 20;

#[derive(Debug, clap::Args)]
pub struct McpArgs {
    #[command(flatten)]
    pub client: ClientArgs,
}

/// A tool parameter mirrored into an `Mcp-Param-{name}` header.
#[derive(Debug, Clone, PartialEq)]
struct ParamHeader {
    name: String,
    /// Property path from the arguments' root.
    path: Vec<String>,
}

/// What the bridge remembers across messages.
#[derive(Debug, Default)]
struct State {
    /// Protocol version negotiated by a legacy `initialize`.
    negotiated: Option<String>,
    /// The last `Mcp-Session-Id` the server sent (legacy servers only).
    session_id: Option<String>,
    /// `x-mcp-header` parameters per tool, from the `tools/list` answers seen.
    tool_headers: HashMap<String, Vec<ParamHeader>>,
}

/// An error answered to the client in place of the server's answer.
#[derive(Debug, Clone, PartialEq)]
struct BridgeError {
    code: i64,
    message: String,
    data: Value,
}

/// How an exchange with the server ended.
#[derive(Debug)]
enum Exchange {
    /// 202: accepted, nothing to answer.
    Accepted,
    /// The response to the request (a JSON body, or the response message of an SSE stream).
    Final(Value),
    /// An SSE stream that ended without the response.
    NoFinal,
}

struct Bridge {
    client: Client,
    url: String,
    state: Mutex<State>,
    out: mpsc::UnboundedSender<String>,
    internal_ids: std::sync::atomic::AtomicU64,
}

/// Runs the bridge until standard input ends.
pub async fn run(args: McpArgs) -> ExitCode {
    let client = match config::resolve(&args.client).and_then(|t| t.client()) {
        Ok(client) => client,
        Err(e) => {
            eprintln!("kubeline mcp: {e}");
            return ExitCode::from(crate::ops::exit::USAGE);
        }
    };
    let url = format!("{}{ENDPOINT}", client.base());
    eprintln!("kubeline mcp: relaying JSON-RPC between standard input/output and {url}");
    let (out, mut lines) = mpsc::unbounded_channel::<String>();
    let writer = tokio::spawn(async move {
        let mut stdout = tokio::io::stdout();
        while let Some(mut line) = lines.recv().await {
            line.push('\n');
            if stdout.write_all(line.as_bytes()).await.is_err() || stdout.flush().await.is_err() {
                eprintln!("kubeline mcp: standard output is closed; answers are dropped");
                return;
            }
        }
    });
    let bridge = Arc::new(Bridge {
        client,
        url,
        state: Mutex::new(State::default()),
        out,
        internal_ids: std::sync::atomic::AtomicU64::new(0),
    });
    let mut tasks = JoinSet::new();
    let mut in_flight: HashMap<String, AbortHandle> = HashMap::new();
    // `subscriptions/listen` streams never end by themselves: closed at the end of input.
    let mut listens: Vec<AbortHandle> = Vec::new();
    let mut stdin = tokio::io::BufReader::new(tokio::io::stdin());
    loop {
        let line = match read_line(&mut stdin).await {
            Ok(Some(line)) => line,
            Ok(None) => break,
            Err(e) => {
                eprintln!("kubeline mcp: cannot read standard input: {e}");
                break;
            }
        };
        while tasks.try_join_next().is_some() {}
        if in_flight.len() > 1024 {
            in_flight.retain(|_, h| !h.is_finished());
        }
        let message = match line {
            Line::TooLong => {
                bridge.write(error_response(
                    &Value::Null,
                    -32700,
                    &format!("Parse error: a message is longer than {MAX_LINE} bytes"),
                    Value::Null,
                ));
                continue;
            }
            Line::Text(bytes) => bytes,
        };
        if message.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let message: Value = match serde_json::from_slice(&message) {
            Ok(v) => v,
            Err(e) => {
                bridge.write(error_response(
                    &Value::Null,
                    -32700,
                    &format!("Parse error: {e}"),
                    Value::Null,
                ));
                continue;
            }
        };
        match classify(&message) {
            Kind::Invalid(why) => {
                let id = message.get("id").cloned().unwrap_or(Value::Null);
                bridge.write(error_response(&id, -32600, &why, Value::Null));
            }
            Kind::Notification(method) if method == "notifications/cancelled" => {
                let key = message
                    .pointer("/params/requestId")
                    .map(Value::to_string)
                    .unwrap_or_default();
                if let Some(handle) = in_flight.remove(&key) {
                    handle.abort();
                }
                // Streamable HTTP 2026-07-28 cancels by closing the exchange (done above); a
                // server of the initialize era expects the notification as well.
                if bridge.state.lock().expect("state").negotiated.is_some() {
                    let b = bridge.clone();
                    tasks.spawn(async move { b.forward(message).await });
                }
            }
            Kind::Request(id) => {
                let listen =
                    message.get("method").and_then(Value::as_str) == Some("subscriptions/listen");
                let b = bridge.clone();
                let handle = tasks.spawn(async move { b.forward(message).await });
                if listen {
                    listens.retain(|h| !h.is_finished());
                    listens.push(handle.clone());
                }
                in_flight.insert(id.to_string(), handle);
            }
            Kind::Notification(_) | Kind::Response => {
                let b = bridge.clone();
                tasks.spawn(async move { b.forward(message).await });
            }
        }
    }
    for listen in listens {
        listen.abort();
    }
    while tasks.join_next().await.is_some() {}
    drop(bridge);
    let _ = writer.await;
    ExitCode::SUCCESS
}

enum Line {
    Text(Vec<u8>),
    TooLong,
}

/// One line of input without its end (`\n` or `\r\n`); `None` at the end of input. A line over
/// [`MAX_LINE`] is skipped whole and reported as such.
async fn read_line<R: tokio::io::AsyncBufRead + Unpin>(
    input: &mut R,
) -> std::io::Result<Option<Line>> {
    let mut line = Vec::new();
    let mut too_long = false;
    loop {
        let buf = input.fill_buf().await?;
        if buf.is_empty() {
            if line.is_empty() && !too_long {
                return Ok(None);
            }
            break;
        }
        let (part, done) = match buf.iter().position(|b| *b == b'\n') {
            Some(i) => (&buf[..i], Some(i + 1)),
            None => (buf, None),
        };
        if !too_long {
            if line.len() + part.len() > MAX_LINE {
                too_long = true;
                line = Vec::new();
            } else {
                line.extend_from_slice(part);
            }
        }
        let used = done.unwrap_or(buf.len());
        input.consume(used);
        if done.is_some() {
            break;
        }
    }
    if too_long {
        return Ok(Some(Line::TooLong));
    }
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    Ok(Some(Line::Text(line)))
}

/// What a message from the client is.
#[derive(Debug, PartialEq)]
enum Kind {
    /// A request, with its id.
    Request(Value),
    /// A notification, with its method.
    Notification(String),
    /// A response (to a request of an initialize-era server).
    Response,
    /// Not a JSON-RPC message: why.
    Invalid(String),
}

fn classify(message: &Value) -> Kind {
    let Some(object) = message.as_object() else {
        return Kind::Invalid(if message.is_array() {
            "Invalid Request: JSON-RPC batches are not part of MCP; send one message per line"
                .to_owned()
        } else {
            "Invalid Request: a JSON-RPC message is an object".to_owned()
        });
    };
    let id = object.get("id").filter(|id| !id.is_null());
    match (object.get("method"), id) {
        (Some(Value::String(_)), Some(id)) if id.is_string() || id.is_i64() || id.is_u64() => {
            Kind::Request(id.clone())
        }
        (Some(Value::String(_)), Some(_)) => {
            Kind::Invalid("Invalid Request: an id is a string or an integer".to_owned())
        }
        (Some(Value::String(method)), None) => Kind::Notification(method.clone()),
        (Some(_), _) => Kind::Invalid("Invalid Request: method must be a string".to_owned()),
        (None, _) if object.contains_key("result") || object.contains_key("error") => {
            Kind::Response
        }
        (None, _) => Kind::Invalid("Invalid Request: no method".to_owned()),
    }
}

impl Bridge {
    fn write(&self, message: Value) {
        let _ = self
            .out
            .send(serde_json::to_string(&message).expect("JSON serializes"));
    }

    /// Sends one message and answers the client: the server's answer, or an error naming why
    /// there is none.
    async fn forward(self: Arc<Self>, message: Value) {
        let method = message
            .get("method")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let id = message.get("id").filter(|id| !id.is_null()).cloned();
        let is_request = method.is_some() && id.is_some();
        let mut outcome = self.exchange(&message, true).await;
        // A server that checks `Mcp-Param-*` against a tool schema the bridge has not seen (or
        // that changed): list the tools again and retry once.
        if method.as_deref() == Some("tools/call")
            && let Ok(Exchange::Final(answer)) = &outcome
            && answer.pointer("/error/code").and_then(Value::as_i64) == Some(-32020)
            && self.refresh_tool_headers(&message).await
        {
            outcome = self.exchange(&message, true).await;
        }
        match outcome {
            Ok(Exchange::Final(mut answer)) => {
                if let (Some(object), Some(id)) = (answer.as_object_mut(), &id)
                    && object.get("id").is_none_or(Value::is_null)
                {
                    object.insert("id".to_owned(), id.clone());
                }
                if let Some(method) = &method {
                    self.learn(method, &mut answer);
                }
                if is_request {
                    self.write(answer);
                }
            }
            Ok(Exchange::Accepted) if is_request => self.write(error_response(
                id.as_ref().expect("a request"),
                BRIDGE_ERROR,
                &format!(
                    "{} accepted the request (HTTP 202) without answering it",
                    self.url
                ),
                json!({ "source": "kubeline mcp", "url": self.url, "status": 202 }),
            )),
            Ok(Exchange::NoFinal) if is_request => self.write(error_response(
                id.as_ref().expect("a request"),
                BRIDGE_ERROR,
                &format!(
                    "the event stream of {} ended before the response to this request",
                    self.url
                ),
                json!({ "source": "kubeline mcp", "url": self.url }),
            )),
            Ok(_) => {}
            Err(e) => match &id {
                Some(id) if is_request => {
                    self.write(error_response(id, e.code, &e.message, e.data))
                }
                _ => eprintln!(
                    "kubeline mcp: {} was not delivered: {}",
                    method.as_deref().unwrap_or("a response"),
                    e.message
                ),
            },
        }
    }

    /// What the answer of `method` teaches: the version `initialize` negotiated, the tools'
    /// header parameters (tools whose annotations are invalid are dropped from the list, as
    /// MCP asks of a Streamable HTTP client).
    fn learn(&self, method: &str, answer: &mut Value) {
        match method {
            "initialize" => {
                if let Some(version) = answer
                    .pointer("/result/protocolVersion")
                    .and_then(Value::as_str)
                {
                    self.state.lock().expect("state").negotiated = Some(version.to_owned());
                }
            }
            "tools/list" => {
                if let Some(result) = answer.get_mut("result") {
                    let mut state = self.state.lock().expect("state");
                    for (tool, why) in learn_tools(result, &mut state.tool_headers) {
                        eprintln!(
                            "kubeline mcp: tool {tool:?} left out of tools/list: its x-mcp-header \
                             annotation is invalid ({why})"
                        );
                    }
                }
            }
            _ => {}
        }
    }

    /// Lists the tools again (with the `_meta` of `call`) to learn their header parameters;
    /// whether those of `call`'s tool changed.
    async fn refresh_tool_headers(&self, call: &Value) -> bool {
        let Some(tool) = call.pointer("/params/name").and_then(Value::as_str) else {
            return false;
        };
        let before = self
            .state
            .lock()
            .expect("state")
            .tool_headers
            .get(tool)
            .cloned();
        let mut cursor: Option<Value> = None;
        for _ in 0..MAX_LIST_PAGES {
            let n = self
                .internal_ids
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let mut params = serde_json::Map::new();
            if let Some(meta) = call.pointer("/params/_meta") {
                params.insert("_meta".to_owned(), meta.clone());
            }
            if let Some(c) = cursor.take() {
                params.insert("cursor".to_owned(), c);
            }
            let list = json!({
                "jsonrpc": "2.0",
                "id": format!("kubeline-mcp-tools-{n}"),
                "method": "tools/list",
                "params": params,
            });
            let Ok(Exchange::Final(mut answer)) = self.exchange(&list, false).await else {
                return false;
            };
            self.learn("tools/list", &mut answer);
            match answer.pointer("/result/nextCursor") {
                Some(c) if !c.is_null() => cursor = Some(c.clone()),
                _ => break,
            }
        }
        let after = self
            .state
            .lock()
            .expect("state")
            .tool_headers
            .get(tool)
            .cloned();
        after != before
    }

    /// One HTTP exchange: POSTs `message`, writes the server's other messages (notifications,
    /// requests of an initialize-era server) to the client as they come when `relay` is set, and
    /// returns the response.
    async fn exchange(&self, message: &Value, relay: bool) -> Result<Exchange, BridgeError> {
        let headers = {
            let state = self.state.lock().expect("state");
            mcp_headers(
                message,
                state.negotiated.as_deref(),
                state.session_id.as_deref(),
                &state.tool_headers,
            )
        };
        let headers = header_map(&headers).map_err(|why| BridgeError {
            code: -32600,
            message: format!("Invalid Request: {why}"),
            data: Value::Null,
        })?;
        let body = serde_json::to_vec(message).expect("JSON serializes");
        let answer = self
            .client
            .post_raw(ENDPOINT, body, headers, None)
            .await
            .map_err(|e| self.unreachable(&e))?;
        if let Some(session) = answer
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
        {
            self.state.lock().expect("state").session_id = Some(session.to_owned());
        }
        let status = answer.status().as_u16();
        if status == 202 {
            return Ok(Exchange::Accepted);
        }
        let id = message.get("id").filter(|id| !id.is_null()).cloned();
        let content_type = answer
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        if (200..300).contains(&status) && content_type.starts_with("text/event-stream") {
            return self.read_stream(answer, id.as_ref(), relay).await;
        }
        let body = self.read_body(answer).await?;
        let parsed: Option<Value> = serde_json::from_slice(&body).ok();
        match parsed {
            Some(v) if is_jsonrpc(&v) => Ok(Exchange::Final(v)),
            parsed => Err(self.not_jsonrpc(status, parsed.as_ref(), &body)),
        }
    }

    async fn read_body(&self, mut answer: reqwest::Response) -> Result<Vec<u8>, BridgeError> {
        let mut body = Vec::new();
        while let Some(chunk) = answer
            .chunk()
            .await
            .map_err(|e| self.unreachable(&self.client.read_error(&self.url, &e)))?
        {
            if body.len() + chunk.len() > MAX_BODY {
                return Err(BridgeError {
                    code: BRIDGE_ERROR,
                    message: format!("{} answered more than {MAX_BODY} bytes", self.url),
                    data: json!({ "source": "kubeline mcp", "url": self.url }),
                });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    async fn read_stream(
        &self,
        mut answer: reqwest::Response,
        id: Option<&Value>,
        relay: bool,
    ) -> Result<Exchange, BridgeError> {
        let mut parser = SseParser::default();
        let mut done = false;
        loop {
            let chunk = answer
                .chunk()
                .await
                .map_err(|e| self.unreachable(&self.client.read_error(&self.url, &e)))?;
            let events = match &chunk {
                Some(bytes) => parser.push(bytes),
                None => {
                    done = true;
                    parser.finish()
                }
            };
            for data in events {
                let Ok(message) = serde_json::from_str::<Value>(&data) else {
                    eprintln!(
                        "kubeline mcp: {} sent an event that is not JSON; skipped",
                        self.url
                    );
                    continue;
                };
                let is_response = message.get("method").is_none()
                    && (message.get("result").is_some() || message.get("error").is_some());
                if is_response && (id.is_none() || message.get("id") == id) {
                    // The response ends the exchange; dropping the stream closes it.
                    return Ok(Exchange::Final(message));
                }
                if relay {
                    self.write(message);
                }
            }
            if done {
                return Ok(Exchange::NoFinal);
            }
        }
    }

    fn unreachable(&self, e: &ClientError) -> BridgeError {
        BridgeError {
            code: BRIDGE_ERROR,
            message: e.to_string(),
            data: json!({ "source": "kubeline mcp", "url": self.url }),
        }
    }

    /// An answer that is not JSON-RPC: the broker's error body (401, 404, …) or something else.
    fn not_jsonrpc(&self, status: u16, parsed: Option<&Value>, body: &[u8]) -> BridgeError {
        let url = &self.url;
        let broker_error = parsed.and_then(|v| {
            Some((
                v.get("error")?.as_str()?.to_owned(),
                v.get("message")?.as_str()?.to_owned(),
            ))
        });
        let message = match broker_error {
            Some((code, message)) => {
                let hint = match status {
                    401 => "; check the API key (`kubeline login`, --api-key or KUBELINE_API_KEY)",
                    403 => "; this API key may not use MCP",
                    404 => "; does this broker serve MCP at /mcp (a kubeline version with MCP)?",
                    _ => "",
                };
                format!(
                    "{url} answered HTTP {status} ({code}): {}{hint}",
                    message.trim_end_matches('.')
                )
            }
            None => format!(
                "{url} answered HTTP {status} with {}",
                crate::client::describe_body(body)
            ),
        };
        BridgeError {
            code: BRIDGE_ERROR,
            message,
            data: json!({ "source": "kubeline mcp", "url": url, "status": status }),
        }
    }
}

fn is_jsonrpc(v: &Value) -> bool {
    v.get("jsonrpc").and_then(Value::as_str) == Some("2.0")
}

fn error_response(id: &Value, code: i64, message: &str, data: Value) -> Value {
    let mut error = json!({ "code": code, "message": message });
    if !data.is_null() {
        error["data"] = data;
    }
    json!({ "jsonrpc": "2.0", "id": id, "error": error })
}

// === headers ===

/// The MCP headers of one message, as (name, value) pairs: `MCP-Protocol-Version` (from the
/// message's `_meta`, else the version a legacy `initialize` negotiated; none on `initialize`
/// itself), `Mcp-Method`, `Mcp-Name` (`tools/call`, `prompts/get`: `params.name`;
/// `resources/read`: `params.uri`), `Mcp-Param-*` of the called tool, `Mcp-Session-Id`.
fn mcp_headers(
    message: &Value,
    negotiated: Option<&str>,
    session_id: Option<&str>,
    tool_headers: &HashMap<String, Vec<ParamHeader>>,
) -> Vec<(String, String)> {
    let mut headers = Vec::new();
    let method = message.get("method").and_then(Value::as_str);
    let meta_version = message
        .pointer("/params/_meta")
        .and_then(|m| m.get(META_PROTOCOL_VERSION))
        .and_then(Value::as_str);
    let version = match (meta_version, method) {
        (Some(v), _) => Some(v),
        (None, Some("initialize")) => None,
        (None, _) => negotiated,
    };
    if let Some(version) = version {
        headers.push(("MCP-Protocol-Version".to_owned(), version.to_owned()));
    }
    if let Some(method) = method {
        headers.push(("Mcp-Method".to_owned(), method.to_owned()));
        let name_field = match method {
            "tools/call" | "prompts/get" => Some("name"),
            "resources/read" => Some("uri"),
            _ => None,
        };
        if let Some(name) = name_field
            .and_then(|f| message.get("params")?.get(f))
            .and_then(Value::as_str)
        {
            headers.push(("Mcp-Name".to_owned(), encode_header_value(name)));
        }
        if method == "tools/call"
            && let Some(tool) = message.pointer("/params/name").and_then(Value::as_str)
            && let Some(params) = tool_headers.get(tool)
        {
            let arguments = message.pointer("/params/arguments").unwrap_or(&Value::Null);
            for p in params {
                if let Some(value) = param_value(arguments, &p.path) {
                    headers.push((format!("Mcp-Param-{}", p.name), value));
                }
            }
        }
    }
    if let Some(session) = session_id {
        headers.push(("Mcp-Session-Id".to_owned(), session.to_owned()));
    }
    headers
}

/// The header map of a request: `Accept` and the MCP headers; a value that cannot be a header
/// (a method or version with control characters) is refused.
fn header_map(headers: &[(String, String)]) -> Result<HeaderMap, String> {
    let mut map = HeaderMap::new();
    map.insert(
        reqwest::header::ACCEPT,
        HeaderValue::from_static("application/json, text/event-stream"),
    );
    for (name, value) in headers {
        let header = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("{name:?} cannot be an HTTP header name"))?;
        let value = HeaderValue::from_str(value)
            .map_err(|_| format!("the value of {name} ({value:?}) cannot be an HTTP header"))?;
        map.insert(header, value);
    }
    Ok(map)
}

/// A value as MCP carries it in `Mcp-Name` / `Mcp-Param-*`: as is when it is plain visible ASCII
/// (spaces inside allowed), else `=?base64?…?=` of its UTF-8 (also for a plain value that looks
/// like that sentinel).
fn encode_header_value(value: &str) -> String {
    let visible_ascii = value
        .bytes()
        .all(|b| (0x20..=0x7e).contains(&b) || b == b'\t');
    let padded = value.starts_with([' ', '\t']) || value.ends_with([' ', '\t']);
    let sentinel = value.starts_with("=?base64?") && value.ends_with("?=");
    let plain = visible_ascii && !padded && !sentinel;
    if plain {
        value.to_owned()
    } else {
        format!(
            "=?base64?{}?=",
            base64::engine::general_purpose::STANDARD.encode(value.as_bytes())
        )
    }
}

/// The header value of the argument at `path`: strings encoded, integers in decimal, booleans
/// `true`/`false`; nothing for null, a missing value or another type.
fn param_value(arguments: &Value, path: &[String]) -> Option<String> {
    let mut value = arguments;
    for key in path {
        value = value.get(key)?;
    }
    match value {
        Value::String(s) => Some(encode_header_value(s)),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => {
            if n.is_i64() || n.is_u64() {
                Some(n.to_string())
            } else {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0)
                    .map(|f| format!("{}", f as i64))
            }
        }
        _ => None,
    }
}

// === x-mcp-header ===

/// Learns the header parameters of the tools in a `tools/list` result into `known`, and drops
/// the tools whose annotations are invalid from it; returns those (name, why).
fn learn_tools(
    result: &mut Value,
    known: &mut HashMap<String, Vec<ParamHeader>>,
) -> Vec<(String, String)> {
    let mut dropped = Vec::new();
    let Some(tools) = result.get_mut("tools").and_then(Value::as_array_mut) else {
        return dropped;
    };
    tools.retain(|tool| {
        let name = tool
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let schema = tool.get("inputSchema").unwrap_or(&Value::Null);
        match tool_param_headers(schema) {
            Ok(params) => {
                known.insert(name, params);
                true
            }
            Err(why) => {
                known.remove(&name);
                dropped.push((name, why));
                false
            }
        }
    });
    dropped
}

/// The `x-mcp-header` parameters of a tool's input schema, checked as MCP 2026-07-28 requires:
/// a token name, unique (case-insensitively), on a string/integer/boolean property reachable
/// from the root through `properties` alone.
fn tool_param_headers(schema: &Value) -> Result<Vec<ParamHeader>, String> {
    let mut found = Vec::new();
    walk_schema(schema, Some(&[]), &mut found, 0)?;
    let mut seen = std::collections::HashSet::new();
    for p in &found {
        if !seen.insert(p.name.to_ascii_lowercase()) {
            return Err(format!("x-mcp-header {:?} is used twice", p.name));
        }
    }
    Ok(found)
}

/// Walks a schema; `path` is the property path when the schema is reachable through
/// `properties` alone (`None` once the walk went through any other keyword).
fn walk_schema(
    schema: &Value,
    path: Option<&[String]>,
    found: &mut Vec<ParamHeader>,
    depth: usize,
) -> Result<(), String> {
    if depth > 64 {
        return Err("the input schema nests too deeply".to_owned());
    }
    match schema {
        Value::Object(map) => {
            if let Some(header) = map.get("x-mcp-header") {
                let Some(path) = path.filter(|p| !p.is_empty()) else {
                    return Err(format!(
                        "x-mcp-header {header} is not on a property reachable from the root \
                         through `properties` alone"
                    ));
                };
                let name = header
                    .as_str()
                    .ok_or_else(|| format!("x-mcp-header {header} is not a string"))?;
                if name.is_empty() || !name.bytes().all(is_tchar) {
                    return Err(format!(
                        "x-mcp-header {name:?} is not an HTTP header name token"
                    ));
                }
                if !primitive_type(map.get("type")) {
                    return Err(format!(
                        "x-mcp-header {name:?} is on a parameter that is not of type string, \
                         integer or boolean"
                    ));
                }
                found.push(ParamHeader {
                    name: name.to_owned(),
                    path: path.to_vec(),
                });
            }
            for (key, value) in map {
                match key.as_str() {
                    // Annotations and data, not schemas.
                    "x-mcp-header" | "enum" | "const" | "default" | "examples" | "description"
                    | "title" | "$comment" | "required" => {}
                    "properties" => {
                        if let Value::Object(properties) = value {
                            for (name, sub) in properties {
                                let sub_path =
                                    path.map(|p| [p, std::slice::from_ref(name)].concat());
                                walk_schema(sub, sub_path.as_deref(), found, depth + 1)?;
                            }
                        }
                    }
                    _ => walk_schema(value, None, found, depth + 1)?,
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                walk_schema(item, None, found, depth + 1)?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn primitive_type(ty: Option<&Value>) -> bool {
    let ok = |t: &str| matches!(t, "string" | "integer" | "boolean");
    match ty {
        Some(Value::String(t)) => ok(t),
        Some(Value::Array(types)) => {
            let names: Vec<&str> = types.iter().filter_map(Value::as_str).collect();
            names.len() == types.len()
                && names.iter().any(|t| ok(t))
                && names.iter().all(|t| ok(t) || *t == "null")
        }
        _ => false,
    }
}

// === server-sent events ===

/// An incremental parser of `text/event-stream`: the `data` of each event, in order.
#[derive(Debug, Default)]
struct SseParser {
    pending: Vec<u8>,
    data: String,
    has_data: bool,
}

impl SseParser {
    /// Feeds bytes; returns the events completed by them.
    fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        self.pending.extend_from_slice(bytes);
        let mut events = Vec::new();
        while let Some(end) = self.pending.iter().position(|b| *b == b'\n') {
            let mut line: Vec<u8> = self.pending.drain(..=end).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            self.line(&String::from_utf8_lossy(&line), &mut events);
        }
        events
    }

    /// The end of the stream: an event not yet closed by a blank line still counts.
    fn finish(&mut self) -> Vec<String> {
        let mut events = Vec::new();
        if !self.pending.is_empty() {
            let rest = std::mem::take(&mut self.pending);
            let text = String::from_utf8_lossy(&rest).into_owned();
            self.line(text.trim_end_matches('\r'), &mut events);
        }
        self.line("", &mut events);
        events
    }

    fn line(&mut self, line: &str, events: &mut Vec<String>) {
        if line.is_empty() {
            if self.has_data {
                let mut data = std::mem::take(&mut self.data);
                if data.ends_with('\n') {
                    data.pop();
                }
                events.push(data);
                self.has_data = false;
            }
            return;
        }
        if line.starts_with(':') {
            return;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        if field == "data" {
            self.data.push_str(value);
            self.data.push('\n');
            self.has_data = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(message: Value, negotiated: Option<&str>) -> Vec<(String, String)> {
        mcp_headers(&message, negotiated, None, &HashMap::new())
    }

    fn get<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn headers_of_a_modern_tool_call() {
        let h = headers(
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
                "name": "kubectl_get", "arguments": {"cluster_id": "bed"},
                "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}}}),
            // The message's own version wins over a negotiated one.
            Some("2025-11-25"),
        );
        assert_eq!(
            h,
            [
                ("MCP-Protocol-Version".to_owned(), "2026-07-28".to_owned()),
                ("Mcp-Method".to_owned(), "tools/call".to_owned()),
                ("Mcp-Name".to_owned(), "kubectl_get".to_owned()),
            ]
        );
    }

    #[test]
    fn headers_of_the_legacy_era() {
        // `initialize` carries no version header; later messages carry the negotiated one.
        let h = headers(
            json!({"jsonrpc": "2.0", "id": 0, "method": "initialize",
                   "params": {"protocolVersion": "2025-11-25"}}),
            None,
        );
        assert_eq!(get(&h, "MCP-Protocol-Version"), None);
        assert_eq!(get(&h, "Mcp-Method"), Some("initialize"));
        let h = headers(
            json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
            Some("2025-11-25"),
        );
        assert_eq!(get(&h, "MCP-Protocol-Version"), Some("2025-11-25"));
        assert_eq!(get(&h, "Mcp-Method"), Some("notifications/initialized"));
        assert_eq!(get(&h, "Mcp-Name"), None);
        let h = headers(
            json!({"jsonrpc": "2.0", "id": 2, "method": "resources/read",
                   "params": {"uri": "kubeline://results/res_1"}}),
            Some("2025-11-25"),
        );
        assert_eq!(get(&h, "Mcp-Name"), Some("kubeline://results/res_1"));
        let h = headers(
            json!({"jsonrpc": "2.0", "id": 3, "method": "prompts/get", "params": {"name": "triage"}}),
            None,
        );
        assert_eq!(get(&h, "Mcp-Name"), Some("triage"));
        assert_eq!(get(&h, "MCP-Protocol-Version"), None);
        // A response to the server: no method headers.
        let h = mcp_headers(
            &json!({"jsonrpc": "2.0", "id": 9, "result": {}}),
            Some("2025-11-25"),
            Some("sid-1"),
            &HashMap::new(),
        );
        assert_eq!(
            h,
            [
                ("MCP-Protocol-Version".to_owned(), "2025-11-25".to_owned()),
                ("Mcp-Session-Id".to_owned(), "sid-1".to_owned()),
            ]
        );
    }

    #[test]
    fn names_outside_plain_ascii_are_base64() {
        assert_eq!(encode_header_value("us-west1"), "us-west1");
        assert_eq!(encode_header_value("a b"), "a b");
        assert_eq!(
            encode_header_value("Hello, 世界"),
            "=?base64?SGVsbG8sIOS4lueVjA==?="
        );
        assert_eq!(encode_header_value(" padded "), "=?base64?IHBhZGRlZCA=?=");
        assert_eq!(
            encode_header_value("line1\nline2"),
            "=?base64?bGluZTEKbGluZTI=?="
        );
        assert_eq!(
            encode_header_value("=?base64?literal?="),
            "=?base64?PT9iYXNlNjQ/bGl0ZXJhbD89?="
        );
        let h = headers(
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "größe"}}),
            None,
        );
        assert_eq!(get(&h, "Mcp-Name"), Some("=?base64?Z3LDtsOfZQ==?="));
        assert!(header_map(&h).is_ok());
        // A method that cannot be a header value is refused, not sent.
        let h = headers(json!({"jsonrpc": "2.0", "id": 1, "method": "a\nb"}), None);
        assert!(header_map(&h).unwrap_err().contains("Mcp-Method"));
    }

    #[test]
    fn tool_parameters_marked_for_headers_are_mirrored() {
        let mut list = json!({"tools": [
            {"name": "get", "inputSchema": {"type": "object", "properties": {
                "cluster_id": {"type": "string", "x-mcp-header": "Cluster"},
                "opts": {"type": "object", "properties": {
                    "limit": {"type": "integer", "x-mcp-header": "Limit"},
                    "all": {"type": ["boolean", "null"], "x-mcp-header": "All"}}}}}},
            {"name": "plain", "inputSchema": {"type": "object", "properties": {
                "x-mcp-header": {"type": "string"}}}},
            {"name": "in_array", "inputSchema": {"type": "object", "properties": {
                "xs": {"type": "array", "items": {"type": "string", "x-mcp-header": "X"}}}}},
            {"name": "number", "inputSchema": {"type": "object", "properties": {
                "n": {"type": "number", "x-mcp-header": "N"}}}},
            {"name": "twice", "inputSchema": {"type": "object", "properties": {
                "a": {"type": "string", "x-mcp-header": "Dup"},
                "b": {"type": "string", "x-mcp-header": "dup"}}}},
            {"name": "bad_token", "inputSchema": {"type": "object", "properties": {
                "a": {"type": "string", "x-mcp-header": "a b"}}}},
            {"name": "in_anyof", "inputSchema": {"anyOf": [{"type": "object", "properties": {
                "a": {"type": "string", "x-mcp-header": "A"}}}]}}
        ]});
        let mut known = HashMap::new();
        let dropped = learn_tools(&mut list, &mut known);
        let names: Vec<&str> = dropped.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            ["in_array", "number", "twice", "bad_token", "in_anyof"]
        );
        let kept: Vec<&str> = list["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        assert_eq!(kept, ["get", "plain"]);
        assert_eq!(known["plain"], []);

        let h = mcp_headers(
            &json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {
                "name": "get",
                "arguments": {"cluster_id": "prod eu ", "opts": {"limit": 5.0, "all": null}}}}),
            None,
            None,
            &known,
        );
        assert_eq!(
            get(&h, "Mcp-Param-Cluster"),
            Some("=?base64?cHJvZCBldSA=?=")
        );
        assert_eq!(get(&h, "Mcp-Param-Limit"), Some("5"));
        // null or absent: no header.
        assert_eq!(get(&h, "Mcp-Param-All"), None);
        let h = mcp_headers(
            &json!({"jsonrpc": "2.0", "id": 6, "method": "tools/call", "params": {
                "name": "get", "arguments": {"opts": {"all": false}}}}),
            None,
            None,
            &known,
        );
        assert_eq!(get(&h, "Mcp-Param-All"), Some("false"));
        assert_eq!(get(&h, "Mcp-Param-Cluster"), None);
    }

    #[test]
    fn messages_are_classified() {
        assert_eq!(
            classify(&json!({"jsonrpc": "2.0", "id": "a", "method": "ping"})),
            Kind::Request(json!("a"))
        );
        assert_eq!(
            classify(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"})),
            Kind::Notification("notifications/initialized".to_owned())
        );
        assert_eq!(
            classify(&json!({"jsonrpc": "2.0", "id": 1, "result": {}})),
            Kind::Response
        );
        for bad in [json!([]), json!(3), json!({"id": 1}), json!({"method": 1})] {
            assert!(matches!(classify(&bad), Kind::Invalid(_)), "{bad}");
        }
        assert!(matches!(
            classify(&json!({"method": "ping", "id": 1.5})),
            Kind::Invalid(_)
        ));
    }

    #[test]
    fn event_streams_are_split_into_messages() {
        let mut p = SseParser::default();
        assert_eq!(
            p.push(b": keep-alive\n\nevent: message\nda"),
            Vec::<String>::new()
        );
        assert_eq!(
            p.push(b"ta: {\"a\":1}\r\n\r\ndata: {\"b\":\ndata: 2}\n\n"),
            ["{\"a\":1}", "{\"b\":\n2}"]
        );
        assert_eq!(
            p.push(b"id: 7\nretry: 10\ndata:{\"c\":3}"),
            Vec::<String>::new()
        );
        assert_eq!(p.finish(), ["{\"c\":3}"]);
    }

    #[tokio::test]
    async fn input_lines_are_bounded() {
        let input = b"{\"a\":1}\r\n\n{\"b\":2}".to_vec();
        let mut reader = tokio::io::BufReader::new(&input[..]);
        let mut lines = Vec::new();
        while let Some(line) = read_line(&mut reader).await.unwrap() {
            match line {
                Line::Text(t) => lines.push(String::from_utf8(t).unwrap()),
                Line::TooLong => lines.push("too long".into()),
            }
        }
        assert_eq!(lines, ["{\"a\":1}", "", "{\"b\":2}"]);
    }

    #[test]
    fn answers_that_are_not_jsonrpc_name_the_url_and_cause() {
        let (out, _rx) = mpsc::unbounded_channel();
        let bridge = Bridge {
            client: Client::new("http://127.0.0.1:9", "k", None).unwrap(),
            url: "http://127.0.0.1:9/mcp".into(),
            state: Mutex::new(State::default()),
            out,
            internal_ids: Default::default(),
        };
        let body = br#"{"error":"unauthorized","message":"Invalid API key: the broker does not know it","details":{}}"#;
        let e = bridge.not_jsonrpc(401, serde_json::from_slice(body).ok().as_ref(), body);
        assert_eq!(e.code, BRIDGE_ERROR);
        assert!(
            e.message.starts_with(
                "http://127.0.0.1:9/mcp answered HTTP 401 (unauthorized): Invalid API key"
            ),
            "{}",
            e.message
        );
        assert!(e.message.contains("kubeline login"), "{}", e.message);
        assert_eq!(e.data["status"], 401);
        let e = bridge.not_jsonrpc(502, None, b"<html>Bad Gateway</html>");
        assert!(
            e.message
                .starts_with("http://127.0.0.1:9/mcp answered HTTP 502 with this instead"),
            "{}",
            e.message
        );
        let e = bridge.unreachable(&ClientError::Unreachable {
            url: "http://127.0.0.1:9/mcp".into(),
            cause: "connection refused".into(),
        });
        assert_eq!(
            e.message,
            "cannot reach the broker at http://127.0.0.1:9/mcp: connection refused"
        );
        let answer = error_response(&json!(4), e.code, &e.message, e.data);
        assert_eq!(answer["id"], 4);
        assert_eq!(answer["error"]["code"], BRIDGE_ERROR);
        assert_eq!(answer["error"]["data"]["source"], "kubeline mcp");
    }
}
