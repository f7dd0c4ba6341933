//! The MCP server: kubeline's tools for AI agents at `POST /mcp` (Streamable HTTP).
//!
//! Served by rmcp's `StreamableHttpService`, stateless: protocol 2026-07-28 (no initialize, no
//! session; `server/discover`) and the initialize handshake of 2025-11-25 and older for the
//! clients that still use it, JSON answers. The route sits behind the same authentication and
//! rate-limit layers as the REST API, so a tool runs as the request's [`Caller`], and every tool
//! is a REST operation by another road: the same functions of [`crate::routes`] (grants, policy
//! parser, limits, audit). What is MCP's own:
//!
//! - **Small tool schemas** (they are paid for in tokens on every turn): written by hand, seven
//!   tools. `kubectl` takes `command_type` + `args` exactly as `POST /debug/execute` does;
//!   `fleet_kubectl` the same plus `clusters`/`selector`, as `POST /fleet/execute` does.
//! - **Output that fits a context**: a tool answer carries at most `max_bytes` of output
//!   (`--mcp-output-bytes` by default); the command itself runs under the broker's full output
//!   budget and its result is stored whole, so a cut answer says how much is left, roughly how
//!   many tokens that is, and how to read on (`read_result` with `offset`) or narrow the command.
//! - **Errors the model can act on**: a refused or failed command, an unknown cluster, a
//!   missing or mistyped argument are tool results with `isError: true` whose text says what
//!   was wrong and what would work; protocol errors are for what is not a tool call at all.
//! - **Sessions by themselves**: `kubectl` without `session_id` uses a session this replica
//!   opened for the caller on that cluster, and opens a new one when it has expired.
//! - **Rate limits by what a call does**: the HTTP request counts in the `standard` class like
//!   any route; a `kubectl` call also takes a step of the caller's `execute` budget, and a
//!   session it opens one of `session_create`, so MCP is no way around the REST limits; a
//!   `fleet_kubectl` call takes one `execute` step per cluster, as the REST route does.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use kubeline_shared::api::{
    self, ClusterList, ClusterStatusInfo, CommandResult, CreateSessionRequest, ErrorCode,
    ExecuteRequest, FleetExecuteRequest, FleetResult, ResultStatus,
};
use kubeline_shared::command::SUPPORTED_COMMANDS;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    JsonObject, ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
    ToolAnnotations,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde::Serialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::middleware::RequestContext as HttpContext;
use crate::ratelimit::{Class, Decision};
use crate::routes::truncate;
use crate::{fleet, routes};

/// Default output budget of one tool answer, in bytes (about 4,000 tokens).
pub const DEFAULT_MCP_OUTPUT_BYTES: u64 = 16 * 1024;
/// Sessions this replica remembers for MCP callers (credential × cluster); past it the map is
/// cleared and sessions are opened again as needed.
const MAX_REMEMBERED_SESSIONS: usize = 10_000;
/// Rough bytes per token of kubectl output, for the estimates in cut answers.
const BYTES_PER_TOKEN: u64 = 4;

/// MCP endpoint settings (`--mcp-*`).
#[derive(Debug, Clone, clap::Args)]
pub struct McpArgs {
    /// Host names (or host:port) the MCP endpoint answers to, comma-separated, e.g.
    /// `kubeline.example.com,kubeline-broker.kubeline.svc`. Default: any host (every call needs
    /// a credential, so a rebinding page has nothing to use); set it when the broker is public.
    #[arg(
        long = "mcp-allowed-host",
        env = "KUBELINE_MCP_ALLOWED_HOSTS",
        value_delimiter = ','
    )]
    pub allowed_hosts: Vec<String>,

    /// Browser origins allowed to call the MCP endpoint (`scheme://host[:port]`, `:*` for any
    /// port), comma-separated. A request with any other `Origin` gets 403; requests without
    /// `Origin` (every non-browser client) are not affected. Default: none.
    #[arg(
        long = "mcp-allowed-origin",
        env = "KUBELINE_MCP_ALLOWED_ORIGINS",
        value_delimiter = ','
    )]
    pub allowed_origins: Vec<String>,

    /// Output budget of one MCP tool answer when the call gives no `max_bytes`, in bytes; the
    /// rest of a result is read by window with `read_result`.
    #[arg(long, env = "KUBELINE_MCP_OUTPUT_BYTES", default_value_t = DEFAULT_MCP_OUTPUT_BYTES)]
    pub mcp_output_bytes: u64,

    /// The URL clients reach this broker at (e.g. `https://kubeline.example.com`), which names
    /// the MCP resource (`<url>/mcp`) in its protected-resource metadata. Default: from each
    /// request's `Host` (and `X-Forwarded-Proto`).
    #[arg(long, env = "KUBELINE_PUBLIC_URL")]
    pub public_url: Option<url::Url>,
}

impl Default for McpArgs {
    fn default() -> Self {
        Self {
            allowed_hosts: Vec::new(),
            allowed_origins: Vec::new(),
            mcp_output_bytes: DEFAULT_MCP_OUTPUT_BYTES,
            public_url: None,
        }
    }
}

impl McpArgs {
    /// Refuses settings that cannot work, naming the flag. (A budget larger than
    /// `--max-output-bytes` is fine: no answer holds more than a result has.)
    pub fn check(&self) -> anyhow::Result<()> {
        if self.mcp_output_bytes == 0 {
            anyhow::bail!("--mcp-output-bytes must be at least 1");
        }
        if let Some(url) = &self.public_url
            && !matches!(url.scheme(), "http" | "https")
        {
            anyhow::bail!("--public-url {url} must be an http:// or https:// URL");
        }
        for origin in &self.allowed_origins {
            if origin != "null" && !origin.contains("://") {
                anyhow::bail!(
                    "--mcp-allowed-origin {origin:?} needs a scheme, e.g. https://{origin}"
                );
            }
        }
        Ok(())
    }
}

/// The `/mcp` service over the broker's state.
pub fn service(state: AppState) -> StreamableHttpService<Mcp, NeverSessionManager> {
    let args = &state.settings.mcp;
    let mut config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_sse_keep_alive(None)
        .with_max_request_body_bytes(state.settings.max_body_bytes)
        .with_allowed_origins(args.allowed_origins.clone())
        .enforce_origin_validation();
    config = if args.allowed_hosts.is_empty() {
        config.disable_allowed_hosts()
    } else {
        config.with_allowed_hosts(args.allowed_hosts.clone())
    };
    let mcp = Mcp {
        state,
        sessions: Arc::new(Mutex::new(HashMap::new())),
    };
    StreamableHttpService::new(move || Ok(mcp.clone()), Default::default(), config)
}

/// The MCP handler: one per request (stateless), sharing the broker's state.
#[derive(Clone)]
pub struct Mcp {
    state: AppState,
    /// Sessions opened for MCP callers: (credential id, cluster) → session id.
    sessions: Arc<Mutex<HashMap<(String, String), String>>>,
}

/// Where clients reach this broker: `--public-url`, else the request's `Host` with the scheme
/// of `X-Forwarded-Proto` (a balancer ending TLS) or of this listener.
pub fn public_base(state: &AppState, headers: &http::HeaderMap) -> String {
    if let Some(url) = &state.settings.mcp.public_url {
        return url.as_str().trim_end_matches('/').to_owned();
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let scheme = match header("x-forwarded-proto") {
        Some("https") => "https",
        Some("http") => "http",
        _ if state.settings.tls => "https",
        _ => "http",
    };
    // Only what a host name and port may hold, so nothing a caller sends breaks the header.
    let host = header("host")
        .filter(|h| {
            !h.is_empty()
                && h.len() <= 255
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        })
        .unwrap_or("localhost");
    format!("{scheme}://{host}")
}

/// Path of the MCP endpoint's protected-resource metadata (RFC 9728, path-suffixed form).
pub const RESOURCE_METADATA_PATH: &str = "/.well-known/oauth-protected-resource/mcp";

/// The `WWW-Authenticate` value of a 401: a Bearer challenge that names the protected-resource
/// metadata when JWT callers are accepted (so MCP clients can find the issuer), as the MCP
/// authorization spec asks.
pub fn challenge(state: &AppState, headers: &http::HeaderMap) -> http::HeaderValue {
    const PLAIN: http::HeaderValue = http::HeaderValue::from_static("Bearer realm=\"kubeline\"");
    if state.jwt.is_none() {
        return PLAIN;
    }
    let value = format!(
        "Bearer realm=\"kubeline\", resource_metadata=\"{}{RESOURCE_METADATA_PATH}\"",
        public_base(state, headers)
    );
    http::HeaderValue::from_str(&value).unwrap_or(PLAIN)
}

/// OAuth 2.0 protected-resource metadata of the MCP endpoint (RFC 9728).
///
/// Public. Served when the broker accepts JWTs (`--jwt-issuer`): it names the issuer MCP
/// clients get tokens from. Without JWTs there is no authorization server to name: 404.
#[utoipa::path(get, path = "/.well-known/oauth-protected-resource/mcp", tag = "mcp",
    security(()),
    responses(
        (status = 200, description = "The metadata.", body = Object, content_type = "application/json",
            example = json!({"resource": "https://kubeline.example.com/mcp",
                "authorization_servers": ["https://issuer.example.com"],
                "bearer_methods_supported": ["header"], "resource_name": "kubeline"})),
        (status = 404, response = crate::openapi::NotFound),
    ))]
pub async fn protected_resource(
    axum::extract::State(state): axum::extract::State<AppState>,
    headers: http::HeaderMap,
) -> Result<axum::Json<Value>, ApiError> {
    let Some(jwt) = &state.jwt else {
        return Err(ApiError::not_found(
            "This broker accepts API keys only (no --jwt-issuer), so it names no authorization \
             server; send an API key as Authorization: Bearer",
        ));
    };
    Ok(axum::Json(json!({
        "resource": format!("{}/mcp", public_base(&state, &headers)),
        "authorization_servers": [jwt.issuer()],
        "bearer_methods_supported": ["header"],
        "resource_name": "kubeline",
    })))
}

/// The MCP endpoint (described here; served by rmcp, see [`service`]).
///
/// JSON-RPC 2.0 over Streamable HTTP, protocol 2026-07-28 (stateless) and 2025-11-25 (the
/// initialize handshake), JSON answers. Tools: `list_clusters`, `cluster_status`, `kubectl`,
/// `read_result`, `open_session`, `close_session`. Errors of the transport and of the
/// authentication and rate-limit layers are JSON-RPC error objects (`data` holds the REST
/// error body); a refused or failed command is a tool result with `isError: true`.
#[utoipa::path(post, path = "/mcp", tag = "mcp",
    request_body(content = Object, content_type = "application/json",
        description = "A JSON-RPC 2.0 request or notification.",
        example = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}})),
    responses(
        (status = 200, description = "The JSON-RPC response.", body = Object, content_type = "application/json"),
        (status = 202, description = "A notification was accepted."),
        (status = 400, description = "Not a JSON-RPC request, or an unsupported protocol version.", body = Object),
        (status = 401, description = "Missing or invalid credential (JSON-RPC error; `WWW-Authenticate`).", body = Object),
        (status = 403, description = "An `Origin` that is not allowed (`--mcp-allowed-origin`).", body = Object),
        (status = 406, description = "The request's `Accept` does not take both `application/json` and `text/event-stream`, as MCP requires."),
        (status = 413, description = "The request is larger than `--max-body-bytes`.", body = Object),
        (status = 415, description = "The body is not `application/json`."),
        (status = 429, description = "Rate limited (JSON-RPC error; `Retry-After`).", body = Object),
    ))]
#[allow(dead_code)]
pub(crate) fn mcp_endpoint() {}

/// Middleware for `/mcp`: the REST error bodies of the layers in front of it (authentication,
/// rate limits) become JSON-RPC error objects, which MCP clients show their users; the status
/// and headers stay, and `data` keeps the REST body.
pub async fn jsonrpc_errors(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    if req.uri().path() != "/mcp" {
        return next.run(req).await;
    }
    let res = next.run(req).await;
    let is_json = res
        .headers()
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if res.status().is_success() || !is_json {
        return res;
    }
    let (mut parts, body) = res.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 64 * 1024).await else {
        return (parts.status, "error body too large").into_response();
    };
    let Ok(rest) = serde_json::from_slice::<api::ErrorBody>(&bytes) else {
        // Already JSON-RPC (rmcp's own answers).
        return axum::response::Response::from_parts(parts, axum::body::Body::from(bytes));
    };
    let code = match parts.status.as_u16() {
        401 => -32001,
        403 => -32003,
        429 => -32029,
        _ => -32000,
    };
    let body = json!({
        "jsonrpc": "2.0",
        "id": null,
        "error": {"code": code, "message": rest.message, "data": rest},
    });
    parts.headers.remove(http::header::CONTENT_LENGTH);
    axum::response::Response::from_parts(parts, axum::body::Body::from(body.to_string()))
}

// === tools ===

const LIST_CLUSTERS: &str = "list_clusters";
const CLUSTER_STATUS: &str = "cluster_status";
const KUBECTL: &str = "kubectl";
const FLEET_KUBECTL: &str = "fleet_kubectl";
const READ_RESULT: &str = "read_result";
const OPEN_SESSION: &str = "open_session";
const CLOSE_SESSION: &str = "close_session";

/// The tools, in a fixed order (stable lists help clients' prompt caches).
fn tools() -> Vec<Tool> {
    let cluster = json!({"type": "string", "description": "Cluster id (list_clusters)."});
    let kubectl_out = json!({
        "type": "object",
        "properties": {
            "result_id": {"type": "string"},
            "session_id": {"type": "string"},
            "cluster_id": {"type": "string"},
            "status": {"type": "string", "enum": ["pending", "completed", "failed", "timeout"]},
            "exit_code": {"type": ["integer", "null"]},
            "output": {"type": "string"},
            "error": {"type": ["string", "null"]},
            "execution_time_ms": {"type": "integer"},
            "window": {"type": "object", "properties": {
                "offset": {"type": "integer"}, "length": {"type": "integer"},
                "total_bytes": {"type": "integer"},
                "next_offset": {"type": ["integer", "null"]}}},
            "truncated": {"type": "object"}
        },
        "required": ["result_id", "status", "output"]
    });
    let status_out = json!({
        "type": "object",
        "properties": {
            "cluster_id": {"type": "string"},
            "status": {"type": "string", "enum": ["connected", "disconnected"]},
            "agent_version": {"type": ["string", "null"]},
            "kubernetes_version": {"type": ["string", "null"]},
            "last_seen": {"type": ["string", "null"]},
            "active_sessions": {"type": "integer"},
            "queue_depth": {"type": "integer"}
        },
        "required": ["cluster_id", "status"]
    });
    let session_out = json!({
        "type": "object",
        "properties": {
            "session_id": {"type": "string"},
            "cluster_id": {"type": "string"},
            "status": {"type": "string"},
            "expires_at": {"type": "string"},
            "closed_at": {"type": "string"}
        },
        "required": ["session_id", "status"]
    });
    vec![
        tool(
            LIST_CLUSTERS,
            "List the clusters you may reach, their labels and whether their agent is connected.",
            json!({"type": "object", "properties": {"selector": {"type": "string",
                "description": "Only clusters with these labels (kubectl -l syntax, e.g. env=prod)."}}}),
            json!({
                "type": "object",
                "properties": {"clusters": {"type": "array", "items": {
                    "type": "object",
                    "properties": {
                        "cluster_id": {"type": "string"},
                        "status": {"type": "string"},
                        "agent_version": {"type": ["string", "null"]},
                        "last_seen": {"type": ["string", "null"]},
                        "labels": {"type": "object"}
                    }
                }}},
                "required": ["clusters"]
            }),
        ),
        tool(
            CLUSTER_STATUS,
            "One cluster's agent link, versions, sessions and queue.",
            json!({"type": "object", "properties": {"cluster_id": cluster}, "required": ["cluster_id"]}),
            status_out,
        ),
        tool(
            KUBECTL,
            "Run a read-only kubectl command on a cluster; returns what kubectl prints. \
             command_type: get, describe, logs, events, top, explain, rollout, auth, \
             api-resources, api-versions, version, cluster-info. Long output is cut at max_bytes: \
             narrow it (-n, -l, --tail, -o name) or page with read_result.",
            json!({
                "type": "object",
                "properties": {
                    "cluster_id": cluster,
                    "command_type": {"type": "string", "examples": ["get"]},
                    "args": {"type": "array", "items": {"type": "string"},
                             "examples": [["pods", "-n", "default"]]},
                    "session_id": {"type": "string", "description": "Default: one opened for you."},
                    "max_bytes": {"type": "integer", "minimum": 1, "description": "Output budget of this answer (default 16384)."},
                    "timeout": {"type": "number", "description": "Seconds (default 30)."}
                },
                "required": ["cluster_id", "command_type", "args"]
            }),
            kubectl_out.clone(),
        ),
        tool(
            FLEET_KUBECTL,
            "Run one read-only kubectl command on many clusters at once, chosen by clusters (ids \
             or globs like prod-*) and/or selector (labels, e.g. env=prod). Each cluster answers \
             completed, failed, timeout, unavailable or refused; max_bytes is split across them.",
            json!({
                "type": "object",
                "properties": {
                    "clusters": {"type": "array", "items": {"type": "string"}},
                    "selector": {"type": "string"},
                    "command_type": {"type": "string"},
                    "args": {"type": "array", "items": {"type": "string"}},
                    "max_bytes": {"type": "integer", "minimum": 1},
                    "timeout": {"type": "number", "description": "Seconds per cluster (default 30)."}
                },
                "required": ["command_type", "args"]
            }),
            json!({
                "type": "object",
                "properties": {
                    "results": {"type": "array", "items": {"type": "object"}},
                    "summary": {"type": "object"}
                },
                "required": ["results", "summary"]
            }),
        ),
        tool(
            READ_RESULT,
            "Read a stored command result by result_id, from byte offset (next_offset of the \
             last answer), up to limit bytes.",
            json!({
                "type": "object",
                "properties": {
                    "result_id": {"type": "string"},
                    "offset": {"type": "integer", "minimum": 0},
                    "limit": {"type": "integer", "minimum": 1}
                },
                "required": ["result_id"]
            }),
            kubectl_out,
        ),
        tool(
            OPEN_SESSION,
            "Open a debug session on a cluster (kubectl opens one for you when none is given).",
            json!({"type": "object", "properties": {"cluster_id": cluster}, "required": ["cluster_id"]}),
            session_out.clone(),
        ),
        tool(
            CLOSE_SESSION,
            "Close a debug session.",
            json!({"type": "object", "properties": {"session_id": {"type": "string"}}, "required": ["session_id"]}),
            session_out,
        ),
    ]
}

fn tool(name: &'static str, description: &'static str, input: Value, output: Value) -> Tool {
    let object = |v: Value| match v {
        Value::Object(map) => Arc::new(map),
        _ => unreachable!("tool schemas are objects"),
    };
    let mut annotations = ToolAnnotations::new().read_only(true).open_world(false);
    // `readOnlyHint` says it all; the other hints only mean something for tools that write.
    annotations.destructive_hint = None;
    Tool::new(name, description, object(input))
        .with_raw_output_schema(object(output))
        .with_annotations(annotations)
}

impl ServerHandler for Mcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("kubeline", kubeline_shared::VERSION))
            .with_instructions(
                "Read-only kubectl on the Kubernetes clusters of a fleet. Start with \
                 list_clusters, then kubectl. Secrets are redacted.",
            )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(tools()))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        tools().into_iter().find(|t| t.name == name)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let parts = context
            .extensions
            .get::<http::request::Parts>()
            .ok_or_else(|| ErrorData::internal_error("no HTTP request behind this call", None))?;
        // The authentication layer put them there; a request without is a routing bug.
        let caller = parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| ErrorData::internal_error("no authenticated caller", None))?;
        let ctx = parts
            .extensions
            .get::<HttpContext>()
            .cloned()
            .unwrap_or_default();
        let call = Call {
            mcp: self,
            caller,
            ctx,
            args: Args::new(request.arguments.unwrap_or_default()),
        };
        let result = match request.name.as_ref() {
            LIST_CLUSTERS => call.list_clusters().await,
            CLUSTER_STATUS => call.cluster_status().await,
            KUBECTL => call.kubectl().await,
            FLEET_KUBECTL => call.fleet_kubectl().await,
            READ_RESULT => call.read_result().await,
            OPEN_SESSION => call.open_session().await,
            CLOSE_SESSION => call.close_session().await,
            other => {
                return Err(ErrorData::invalid_params(
                    format!(
                        "unknown tool {other:?}; the tools are list_clusters, cluster_status, \
                         kubectl, fleet_kubectl, read_result, open_session, close_session"
                    ),
                    None,
                ));
            }
        };
        Ok(result.unwrap_or_else(ToolError::into_result).into())
    }
}

// === calls ===

/// A tool's failure, told to the model as a tool result with `isError: true`.
#[derive(Debug)]
struct ToolError {
    text: String,
    /// The contract's error body (or the result of a failed command), for programs.
    structured: Option<Value>,
}

impl ToolError {
    fn argument(message: String) -> Self {
        Self {
            structured: Some(json!({
                "error": ErrorCode::InvalidRequest.as_str(),
                "message": message,
            })),
            text: message,
        }
    }

    /// A refusal of the REST layer, with what to do about it.
    fn api(e: ApiError, hint: Option<&str>) -> Self {
        let body = e.body();
        let mut text = body.message.clone();
        let code = body
            .details
            .as_ref()
            .and_then(|d| d.get("code"))
            .and_then(Value::as_str);
        let advice = match (e.status().as_u16(), code) {
            (400, Some(c)) if c.starts_with("session_") => {
                Some("Leave session_id out to use one kubeline opens for you, or open_session.")
            }
            (400, _) if text.starts_with("Command refused") && !text.contains("supported:") => {
                Some(
                    "kubeline runs read-only commands only (get, describe, logs, events, top, \
                 explain, rollout status|history, auth can-i, api-resources, api-versions, \
                 version, cluster-info) with kubectl's read-only flags.",
                )
            }
            (404, _) if text.starts_with("Cluster not found") => {
                Some("Call list_clusters for the clusters you may reach.")
            }
            (404, _) if text.starts_with("Result not found") => {
                Some("Results are kept for an hour (--result-ttl); run the command again.")
            }
            (429, _) | (503, Some("queue_full")) => Some("Wait a few seconds, then retry."),
            (503, _) if text.contains("not connected") => Some(
                "Its agent is offline; cluster_status shows when it was last seen. Try again \
                 later or another cluster.",
            ),
            _ => hint,
        };
        if let Some(advice) = advice {
            text = format!("{text}. {advice}");
        }
        Self {
            text,
            structured: serde_json::to_value(body).ok(),
        }
    }

    fn into_result(self) -> CallToolResult {
        let mut result = CallToolResult::error(vec![ContentBlock::text(self.text)]);
        result.structured_content = self.structured;
        result
    }
}

type ToolResult = Result<CallToolResult, ToolError>;

/// The arguments of one call, read with messages that name the argument.
struct Args(JsonObject);

impl Args {
    fn new(map: JsonObject) -> Self {
        Self(map)
    }

    /// Refuses arguments the tool does not take (a misspelt one would be silently ignored).
    fn only(&self, known: &[&str]) -> Result<(), ToolError> {
        match self.0.keys().find(|k| !known.contains(&k.as_str())) {
            None => Ok(()),
            Some(k) => Err(ToolError::argument(format!(
                "unknown argument `{}`; this tool takes {}",
                truncate(k, 64),
                known.join(", ")
            ))),
        }
    }

    fn string(&self, name: &str) -> Result<Option<String>, ToolError> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(wrong_type(name, "a string", other)),
        }
    }

    fn required_string(&self, name: &str, what: &str) -> Result<String, ToolError> {
        match self.string(name)? {
            Some(s) if !s.trim().is_empty() => Ok(s),
            _ => Err(ToolError::argument(format!(
                "argument `{name}` is missing: give {what}"
            ))),
        }
    }

    fn strings(&self, name: &str) -> Result<Vec<String>, ToolError> {
        match self.0.get(name) {
            None | Some(Value::Null) => Err(ToolError::argument(format!(
                "argument `{name}` is missing: give kubectl's arguments as an array of \
                 strings, e.g. [\"pods\", \"-n\", \"default\"] ([] for none)"
            ))),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, v)| match v {
                    Value::String(s) => Ok(s.clone()),
                    other => Err(wrong_type(&format!("{name}[{i}]"), "a string", other)),
                })
                .collect(),
            Some(other) => Err(wrong_type(name, "an array of strings", other)),
        }
    }

    fn whole(&self, name: &str, min: u64, max: u64) -> Result<Option<u64>, ToolError> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => match n.as_u64() {
                Some(v) if (min..=max).contains(&v) => Ok(Some(v)),
                _ => Err(ToolError::argument(format!(
                    "argument `{name}` is {n}: give a whole number from {min} to {max}"
                ))),
            },
            Some(other) => Err(wrong_type(name, "a whole number", other)),
        }
    }

    fn number(&self, name: &str) -> Result<Option<f64>, ToolError> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => Ok(n.as_f64()),
            Some(other) => Err(wrong_type(name, "a number", other)),
        }
    }
}

fn wrong_type(name: &str, wanted: &str, got: &Value) -> ToolError {
    let got = match got {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    };
    ToolError::argument(format!("argument `{name}` must be {wanted}, not {got}"))
}

/// One tool call: who makes it, over which HTTP request, with which arguments.
struct Call<'a> {
    mcp: &'a Mcp,
    caller: Caller,
    ctx: HttpContext,
    args: Args,
}

impl Call<'_> {
    fn state(&self) -> &AppState {
        &self.mcp.state
    }

    async fn list_clusters(&self) -> ToolResult {
        self.args.only(&["selector"])?;
        let selector = match self.args.string("selector")? {
            Some(s) => Some(routes::parse_selector(&s).map_err(|e| ToolError::api(e, None))?),
            None => None,
        };
        let ClusterList { clusters } =
            routes::clusters(self.state(), &self.caller, selector.as_ref())
                .await
                .map_err(|e| ToolError::api(e, None))?;
        let mut text = String::new();
        if clusters.is_empty() {
            text.push_str(if selector.is_some() {
                "No clusters: none this credential reaches has these labels."
            } else {
                "No clusters: this credential reaches none the broker knows."
            });
        }
        for c in &clusters {
            let labels: Vec<String> = c.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            text.push_str(&format!(
                "{} {}{}{}\n",
                c.cluster_id,
                status_word(c.status),
                c.last_seen
                    .map(|t| format!(" (last seen {})", api::format_time(&t)))
                    .unwrap_or_default(),
                if labels.is_empty() {
                    String::new()
                } else {
                    format!(" {}", labels.join(","))
                }
            ));
        }
        let structured = json!({
            "clusters": clusters.iter().map(|c| json!({
                "cluster_id": c.cluster_id,
                "status": c.status,
                "agent_version": c.agent_version,
                "last_seen": c.last_seen.map(|t| api::format_time(&t)),
                "labels": c.labels,
            })).collect::<Vec<_>>()
        });
        Ok(success(text, structured))
    }

    async fn cluster_status(&self) -> ToolResult {
        self.args.only(&["cluster_id"])?;
        let cluster_id = self
            .args
            .required_string("cluster_id", "a cluster id (list_clusters)")?;
        let info: ClusterStatusInfo = routes::status_of(self.state(), &self.caller, cluster_id)
            .await
            .map_err(|e| ToolError::api(e, None))?;
        let text = format!(
            "{} {}; agent {}, Kubernetes {}; {} active sessions, {} queued commands",
            info.cluster_id,
            status_word(info.status),
            info.agent_version.as_deref().unwrap_or("unknown"),
            info.kubernetes_version.as_deref().unwrap_or("unknown"),
            info.active_sessions,
            info.queue_depth
        );
        Ok(success(text, to_value(&info)))
    }

    async fn open_session(&self) -> ToolResult {
        self.args.only(&["cluster_id"])?;
        let cluster_id = self
            .args
            .required_string("cluster_id", "a cluster id (list_clusters)")?;
        let created = self.new_session(cluster_id).await?;
        let text = format!(
            "Session {} open on {} until {}",
            created.session_id,
            created.cluster_id,
            api::format_time(&created.expires_at)
        );
        Ok(success(text, to_value(&created)))
    }

    async fn close_session(&self) -> ToolResult {
        self.args.only(&["session_id"])?;
        let session_id = self
            .args
            .required_string("session_id", "the session's id")?;
        let closed = routes::close_session(self.state(), &self.caller, &self.ctx, &session_id)
            .await
            .map_err(|e| ToolError::api(e, None))?;
        self.mcp
            .sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, s| *s != session_id);
        let text = format!("Session {} closed", closed.session_id);
        Ok(success(text, to_value(&closed)))
    }

    async fn kubectl(&self) -> ToolResult {
        let args = &self.args;
        args.only(&[
            "cluster_id",
            "command_type",
            "args",
            "session_id",
            "max_bytes",
            "timeout",
        ])?;
        let cluster_id = args.required_string("cluster_id", "a cluster id (list_clusters)")?;
        let command_type = args.required_string(
            "command_type",
            &format!("one of {}", SUPPORTED_COMMANDS.join(", ")),
        )?;
        let argv = args.strings("args")?;
        let session_id = args.string("session_id")?;
        let budget = self.budget("max_bytes")?;
        let timeout = args.number("timeout")?;
        self.take_rate_step(Class::Execute).await?;
        let given = session_id.is_some();
        let mut session = match session_id {
            Some(s) => s,
            None => self.session_for(&cluster_id).await?,
        };
        let request = |session_id: String| ExecuteRequest {
            cluster_id: Some(cluster_id.clone()),
            session_id: Some(session_id),
            command_type: Some(command_type.clone()),
            args: Some(argv.clone()),
            timeout,
            // The command runs under the broker's full budget and is stored whole; the answer
            // below carries a window of it.
            max_output_bytes: None,
        };
        let mut answer = routes::run_command(
            self.state(),
            &self.caller,
            &self.ctx,
            Default::default(),
            request(session.clone()),
        )
        .await;
        // A remembered session that has expired (or was closed elsewhere): open a new one once.
        if !given && answer.as_ref().is_err_and(session_gone) {
            self.forget_session(&cluster_id);
            session = self.session_for(&cluster_id).await?;
            answer = routes::run_command(
                self.state(),
                &self.caller,
                &self.ctx,
                Default::default(),
                request(session),
            )
            .await;
        }
        let result = answer.map_err(|e| ToolError::api(e, None))?;
        Ok(answer_with_window(result, 0, budget))
    }

    async fn fleet_kubectl(&self) -> ToolResult {
        let args = &self.args;
        args.only(&[
            "clusters",
            "selector",
            "command_type",
            "args",
            "max_bytes",
            "timeout",
        ])?;
        let clusters = match args.0.get("clusters") {
            None | Some(Value::Null) => None,
            Some(_) => Some(args.strings("clusters")?),
        };
        let selector = args.string("selector")?;
        let command_type = args.required_string(
            "command_type",
            &format!("one of {}", SUPPORTED_COMMANDS.join(", ")),
        )?;
        let argv = args.strings("args")?;
        let budget = self.budget("max_bytes")?;
        let timeout = args.number("timeout")?;
        let decision = self.take_rate_step(Class::Execute).await?;
        let request = FleetExecuteRequest {
            clusters,
            selector,
            command_type: Some(command_type),
            args: Some(argv),
            timeout,
            // Each cluster's command runs under its share of the fleet budget and is stored
            // whole; the answer carries a window of each.
            max_output_bytes: None,
        };
        let running = fleet::begin(
            self.state(),
            &self.caller,
            &self.ctx,
            None,
            Some(decision),
            request,
        )
        .await
        .map_err(|e| {
            let hint = (e.body().details.as_ref())
                .and_then(|d| d.get("field"))
                .is_some_and(|f| f == "selector" || f == "clusters")
                .then_some("list_clusters shows the clusters you reach and their labels.");
            ToolError::api(e, hint)
        })?;
        Ok(fleet_answer(running.collect().await, budget))
    }

    async fn read_result(&self) -> ToolResult {
        let args = &self.args;
        args.only(&["result_id", "offset", "limit"])?;
        let result_id = args.required_string("result_id", "the result_id of a kubectl answer")?;
        let offset = args.whole("offset", 0, u64::MAX)?.unwrap_or(0);
        let limit = self.budget("limit")?;
        let result = routes::read_result(self.state(), &self.caller, &result_id, None)
            .await
            .map_err(|e| ToolError::api(e, None))?;
        if offset > result.output.len() as u64 {
            return Err(ToolError::argument(format!(
                "argument `offset` is {offset}, past the end of the output ({} bytes)",
                result.output.len()
            )));
        }
        Ok(answer_with_window(result, offset, limit))
    }

    /// The output budget of this answer: the argument `name`, else `--mcp-output-bytes`.
    fn budget(&self, name: &str) -> Result<u64, ToolError> {
        let settings = &self.state().settings;
        let max = settings.max_output_bytes.min(api::MAX_WINDOW_BYTES);
        Ok(self
            .args
            .whole(name, 1, max)?
            .unwrap_or(settings.mcp.mcp_output_bytes.min(max)))
    }

    /// One step of the caller's budget of `class`, as the REST route would take it.
    async fn take_rate_step(&self, class: Class) -> Result<Decision, ToolError> {
        let decision = self
            .state()
            .rate_limiter
            .check(
                &self.caller.credential_id,
                class,
                self.caller.rate_limits.as_ref(),
            )
            .await;
        if decision.allowed || decision.is_unlimited() {
            return Ok(decision);
        }
        Err(ToolError::api(
            ApiError::rate_limited(class, &decision),
            None,
        ))
    }

    async fn new_session(&self, cluster_id: String) -> Result<api::SessionCreated, ToolError> {
        self.take_rate_step(Class::SessionCreate).await?;
        let request = CreateSessionRequest {
            cluster_id: Some(cluster_id),
            ..Default::default()
        };
        routes::open_session(self.state(), &self.caller, &self.ctx, request)
            .await
            .map_err(|e| ToolError::api(e, None))
    }

    /// The session this replica opened for the caller on `cluster_id`, or a new one.
    async fn session_for(&self, cluster_id: &str) -> Result<String, ToolError> {
        let key = (self.caller.credential_id.clone(), cluster_id.to_owned());
        if let Some(s) = self
            .mcp
            .sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return Ok(s.clone());
        }
        let created = self.new_session(cluster_id.to_owned()).await?;
        let mut sessions = self.mcp.sessions.lock().unwrap_or_else(|e| e.into_inner());
        if sessions.len() >= MAX_REMEMBERED_SESSIONS {
            sessions.clear();
        }
        sessions.insert(key, created.session_id.clone());
        Ok(created.session_id)
    }

    fn forget_session(&self, cluster_id: &str) {
        let key = (self.caller.credential_id.clone(), cluster_id.to_owned());
        self.mcp
            .sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&key);
    }
}

/// Whether an execute was refused because its session is no longer usable.
fn session_gone(e: &ApiError) -> bool {
    let code = e
        .body()
        .details
        .as_ref()
        .and_then(|d| d.get("code"))
        .and_then(Value::as_str);
    matches!(code, Some("session_expired" | "session_closed"))
        || (e.status() == http::StatusCode::NOT_FOUND
            && e.body().message.starts_with("Session not found"))
}

fn status_word(status: api::ClusterStatus) -> &'static str {
    match status {
        api::ClusterStatus::Connected => "connected",
        api::ClusterStatus::Disconnected => "disconnected",
    }
}

fn to_value<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

fn success(text: String, structured: Value) -> CallToolResult {
    let mut result = CallToolResult::success(vec![ContentBlock::text(text)]);
    result.structured_content = Some(structured);
    result
}

/// The answer for a command's result: the window of its output from `offset` of at most
/// `budget` bytes, as text and as the result's fields; a note on what was left out and how to
/// read on; a failed command (or one that timed out) is a tool error with kubectl's stderr.
fn answer_with_window(result: CommandResult, offset: u64, budget: u64) -> CallToolResult {
    let cut_by_agent = result.truncated;
    let result = match result.windowed(offset, budget) {
        Ok(r) => r,
        // Checked by the caller; a result cannot shrink.
        Err(e) => return ToolError::argument(e).into_result(),
    };
    let window = result.window.expect("windowed results have a window");
    let mut text = result.output.clone();
    if let Some(next) = window.next_offset {
        let rest = window.total_bytes - next;
        if !text.ends_with('\n') && !text.is_empty() {
            text.push('\n');
        }
        text.push_str(&format!(
            "[kubeline: output cut at {} of {} bytes; {} bytes (~{} tokens) left. Read on with \
             read_result {{\"result_id\": \"{}\", \"offset\": {next}}}, or narrow the command: \
             -n NAMESPACE, -l SELECTOR, --field-selector, -o name, --tail=N for logs.]",
            window.offset + window.length,
            window.total_bytes,
            rest,
            rest.div_ceil(BYTES_PER_TOKEN),
            result.result_id
        ));
    }
    if let Some(t) = cut_by_agent {
        text.push_str(&format!(
            "\n[kubeline: the agent cut this output at {} bytes; {} bytes were not kept. \
             Narrow the command.]",
            t.limit_bytes, t.omitted_bytes
        ));
    }
    let failed = matches!(result.status, ResultStatus::Failed | ResultStatus::Timeout);
    if let Some(error) = result.error.as_deref().filter(|e| !e.is_empty()) {
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(error);
    }
    match result.status {
        ResultStatus::Timeout => text.push_str(&format!(
            "\n[kubeline: no result within the timeout; it may still arrive: read_result \
             {{\"result_id\": \"{}\"}} later, or give a larger timeout.]",
            result.result_id
        )),
        ResultStatus::Pending => text.push_str(&format!(
            "[kubeline: still running; read_result {{\"result_id\": \"{}\"}} later.]",
            result.result_id
        )),
        _ => {}
    }
    let structured = to_value(&result);
    let mut answer = if failed {
        CallToolResult::error(vec![ContentBlock::text(text)])
    } else {
        CallToolResult::success(vec![ContentBlock::text(text)])
    };
    answer.structured_content = Some(structured);
    answer
}

/// The answer of a fleet call: each cluster's status and a window of its output, the
/// `budget` split evenly across the clusters, with how to read on where one is cut. A tool
/// error when no cluster completed (none matched, or none could answer).
fn fleet_answer(result: FleetResult, budget: u64) -> CallToolResult {
    let FleetResult { results, summary } = result;
    let share = (budget / results.len().max(1) as u64).max(1);
    let mut text = format!(
        "{} clusters: {} completed, {} failed, {} timeout, {} unavailable, {} refused.",
        summary.clusters,
        summary.completed,
        summary.failed,
        summary.timeout,
        summary.unavailable,
        summary.refused
    );
    if results.is_empty() {
        text.push_str(
            " No cluster you reach matches: list_clusters shows your clusters and their labels.",
        );
    }
    let mut structured = Vec::with_capacity(results.len());
    for r in results {
        text.push_str(&format!("\n== {}: {}", r.cluster_id, r.status.as_str()));
        if let Some(code) = r.exit_code.filter(|c| *c != 0) {
            text.push_str(&format!(" (exit {code})"));
        }
        text.push_str(" ==\n");
        let window =
            api::output_window(&r.output, 0, share).expect("offset 0 is never past the end");
        let shown = &r.output[..window.length as usize];
        text.push_str(shown);
        if let (Some(next), Some(id)) = (window.next_offset, r.result_id.as_deref()) {
            if !shown.is_empty() && !shown.ends_with('\n') {
                text.push('\n');
            }
            let rest = window.total_bytes - next;
            text.push_str(&format!(
                "[kubeline: {rest} bytes (~{} tokens) more; read_result {{\"result_id\": \"{id}\", \
                 \"offset\": {next}}}]\n",
                rest.div_ceil(BYTES_PER_TOKEN)
            ));
        }
        if let Some(error) = r.error.as_deref().filter(|e| !e.is_empty()) {
            if !text.ends_with('\n') {
                text.push('\n');
            }
            text.push_str(truncate(error, share as usize));
        }
        let mut item = to_value(&r);
        item["output"] = json!(shown);
        item["window"] = to_value(&window);
        structured.push(item);
    }
    let structured = json!({"results": structured, "summary": summary});
    let mut answer = if summary.completed > 0 {
        CallToolResult::success(vec![ContentBlock::text(text)])
    } else {
        CallToolResult::error(vec![ContentBlock::text(text)])
    };
    answer.structured_content = Some(structured);
    answer
}

impl std::fmt::Debug for Mcp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mcp").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn result(status: ResultStatus, output: &str, error: Option<&str>) -> CommandResult {
        CommandResult {
            result_id: "res_1".into(),
            session_id: "sess_1".into(),
            cluster_id: "c1".into(),
            status,
            output: output.into(),
            error: error.map(Into::into),
            exit_code: Some(if status == ResultStatus::Completed {
                0
            } else {
                1
            }),
            execution_time_ms: 1,
            executed_at: Utc::now(),
            correlation_id: "corr".into(),
            truncated: None,
            window: None,
        }
    }

    fn text(r: &CallToolResult) -> String {
        r.content
            .iter()
            .filter_map(|c| c.as_text().map(|t| t.text.clone()))
            .collect()
    }

    #[test]
    fn a_cut_answer_says_what_is_left_and_how_to_read_on() {
        let output = "line\n".repeat(100);
        let answer = answer_with_window(result(ResultStatus::Completed, &output, None), 0, 52);
        assert_eq!(answer.is_error, Some(false));
        let t = text(&answer);
        assert!(t.starts_with(&"line\n".repeat(10)), "{t}");
        assert!(
            t.contains("[kubeline: output cut at 50 of 500 bytes; 450 bytes (~113 tokens) left. Read on with read_result {\"result_id\": \"res_1\", \"offset\": 50}"),
            "{t}"
        );
        let s = answer.structured_content.unwrap();
        assert_eq!(s["window"]["next_offset"], 50);
        assert_eq!(s["output"], "line\n".repeat(10));
        // The last window has no note.
        let last = answer_with_window(result(ResultStatus::Completed, &output, None), 450, 52);
        assert_eq!(text(&last), "line\n".repeat(10));
    }

    #[test]
    fn failed_and_timed_out_commands_are_tool_errors_with_stderr() {
        let failed = answer_with_window(
            result(
                ResultStatus::Failed,
                "",
                Some("Error from server (NotFound): x\n"),
            ),
            0,
            100,
        );
        assert_eq!(failed.is_error, Some(true));
        assert_eq!(text(&failed), "Error from server (NotFound): x\n");
        let timeout = answer_with_window(result(ResultStatus::Timeout, "", None), 0, 100);
        assert_eq!(timeout.is_error, Some(true));
        assert!(text(&timeout).contains("read_result"), "{}", text(&timeout));
    }

    #[test]
    fn arguments_are_checked_by_name() {
        let args = Args::new(
            json!({"args": ["a", 1], "n": "x", "t": -1, "s": 2})
                .as_object()
                .unwrap()
                .clone(),
        );
        let msg = |e: ToolError| e.text;
        assert_eq!(
            msg(args.strings("args").unwrap_err()),
            "argument `args[1]` must be a string, not a number"
        );
        assert_eq!(
            msg(args.whole("n", 1, 10).unwrap_err()),
            "argument `n` must be a whole number, not a string"
        );
        assert_eq!(
            msg(args.whole("t", 1, 10).unwrap_err()),
            "argument `t` is -1: give a whole number from 1 to 10"
        );
        assert_eq!(
            msg(args.string("s").unwrap_err()),
            "argument `s` must be a string, not a number"
        );
        assert!(
            msg(args.strings("missing").unwrap_err()).starts_with("argument `missing` is missing")
        );
        assert_eq!(
            msg(args.only(&["args", "n", "t"]).unwrap_err()),
            "unknown argument `s`; this tool takes args, n, t"
        );
    }

    #[test]
    fn a_fleet_answer_splits_the_budget_and_says_how_to_read_on() {
        use kubeline_shared::api::{FleetClusterResult, FleetClusterStatus, FleetSummary};
        let one = |id: &str, status, output: &str, error: Option<&str>| FleetClusterResult {
            cluster_id: id.into(),
            status,
            result_id: (status != FleetClusterStatus::Unavailable).then(|| format!("res_{id}")),
            output: output.into(),
            error: error.map(Into::into),
            exit_code: match status {
                FleetClusterStatus::Completed => Some(0),
                FleetClusterStatus::Failed => Some(1),
                _ => None,
            },
            execution_time_ms: 1,
            elapsed_ms: 2,
            truncated: None,
        };
        let results = vec![
            one(
                "a",
                FleetClusterStatus::Completed,
                &"line\n".repeat(20),
                None,
            ),
            one(
                "b",
                FleetClusterStatus::Failed,
                "",
                Some("Error from server (NotFound)"),
            ),
            one(
                "c",
                FleetClusterStatus::Unavailable,
                "",
                Some("Cluster agent is not connected"),
            ),
        ];
        let mut summary = FleetSummary::default();
        results.iter().for_each(|r| summary.add(r));
        // 90 bytes for three clusters: 30 each, so a's window holds 6 whole lines.
        let answer = fleet_answer(FleetResult { results, summary }, 90);
        assert_eq!(answer.is_error, Some(false));
        let t = text(&answer);
        assert!(
            t.starts_with(
                "3 clusters: 1 completed, 1 failed, 0 timeout, 1 unavailable, 0 refused."
            ),
            "{t}"
        );
        assert!(
            t.contains(&format!("== a: completed ==\n{}[kubeline: 70 bytes (~18 tokens) more; read_result {{\"result_id\": \"res_a\", \"offset\": 30}}]", "line\n".repeat(6))),
            "{t}"
        );
        assert!(
            t.contains("== b: failed (exit 1) ==\nError from server (NotFound)"),
            "{t}"
        );
        assert!(
            t.contains("== c: unavailable ==\nCluster agent is not connected"),
            "{t}"
        );
        let s = answer.structured_content.unwrap();
        assert_eq!(s["results"][0]["window"]["next_offset"], 30);
        assert_eq!(s["results"][0]["output"], "line\n".repeat(6));
        assert_eq!(s["summary"]["clusters"], 3);
        // Nothing matched, or nothing completed: a tool error the model can act on.
        let none = fleet_answer(
            FleetResult {
                results: vec![],
                summary: FleetSummary::default(),
            },
            90,
        );
        assert_eq!(none.is_error, Some(true));
        assert!(text(&none).contains("list_clusters shows"));
    }

    #[test]
    fn the_tool_list_is_small_and_read_only() {
        let tools = tools();
        let bytes = serde_json::to_string(&tools).unwrap().len();
        assert!(bytes < 6000, "tools/list grew to {bytes} bytes");
        for t in &tools {
            assert_eq!(t.annotations.as_ref().unwrap().read_only_hint, Some(true));
            assert!(t.output_schema.is_some());
        }
    }

    #[test]
    fn settings_that_cannot_work_are_refused_by_flag() {
        let mut args = McpArgs::default();
        args.check().unwrap();
        args.mcp_output_bytes = 0;
        assert!(
            args.check()
                .unwrap_err()
                .to_string()
                .contains("--mcp-output-bytes")
        );
        args.mcp_output_bytes = 1024;
        args.allowed_origins = vec!["app.example.com".into()];
        let e = args.check().unwrap_err().to_string();
        assert!(
            e.contains("--mcp-allowed-origin \"app.example.com\" needs a scheme"),
            "{e}"
        );
    }
}
