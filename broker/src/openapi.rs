//! The REST API described: an OpenAPI 3.1 document generated from the code, served at
//! `/openapi.json`, with Swagger UI at `/docs` (its assets are compiled into the binary, so the
//! page works where there is no internet).
//!
//! Where each part of the document comes from:
//! - operations, parameters, request bodies and the statuses each route answers: the
//!   `#[utoipa::path]` attribute on its handler in [`crate::routes`] (and [`crate::link`],
//!   [`crate::audit`]);
//! - schemas, field descriptions and the contract's examples: the `ToSchema` types of
//!   `kubeline_shared::api`;
//! - the error answers (one reusable response per status, all with the `ErrorBody` schema), the
//!   security schemes, and the headers every answer carries: this module.
//!
//! [`router`] registers every route together with its description, so a route cannot be served
//! without being described. The committed copy, `broker/openapi.json`, is compared with
//! [`document`] by a test; after an API change regenerate it with
//! `KUBELINE_BLESS=1 cargo test -p kubeline-broker --lib openapi`.
//!
//! To describe a new response header (the rate-limit headers, say), add it to
//! `EVERY_RESPONSE_HEADERS` (sent on every answer) or to the error responses below.

use serde_json::{Value, json};
use utoipa::openapi::path::{Operation, Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{
    ContentBuilder, HeaderBuilder, ObjectBuilder, OpenApi as Document, Ref, RefOr, Required,
    Schema, example::ExampleBuilder, schema::SchemaType, schema::Type,
};
use utoipa::{OpenApi, ToResponse};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::{AppState, audit, auth, link, routes, webhooks};

/// Name of the security scheme of callers (API keys); also spelled out in `ApiDoc`.
pub const CALLER_AUTH: &str = "bearerAuth";
/// Name of the security scheme of callers sending `X-API-Key`; also spelled out in `ApiDoc`.
pub const API_KEY_AUTH: &str = "apiKeyAuth";
/// Name of the security scheme of agents (cluster tokens); also spelled out on `link::connect`.
pub const AGENT_AUTH: &str = "agentToken";

/// The document's fixed parts; operations are added by [`router`].
#[derive(OpenApi)]
#[openapi(
    info(
        title = "kubeline",
        description = "A safe, fast line into every Kubernetes cluster of a fleet: open a debug \
            session on a cluster, execute read-only kubectl-style commands in it, read results \
            again by id. An agent in each cluster holds an outbound link to the broker and runs \
            the commands.\n\nEvery route but `/health` needs a credential: `Authorization: Bearer \
            <API key or JWT>` or `X-API-Key: <API key>`. Answers carry `X-RateLimit-Limit`, \
            `X-RateLimit-Remaining` and `X-RateLimit-Reset` for the caller's credential. \
            Every answer that is not a success has the body `{\"error\", \"message\", \"details\"}`. \
            Every answer carries `X-Correlation-ID` (the caller's, or one the broker made).",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    tags(
        (name = "health", description = "Liveness of the broker and its store (no credentials)."),
        (name = "metrics", description = "Prometheus metrics of the broker replica."),
        (name = "sessions", description = "Debug sessions: a cluster, a lifetime, a history."),
        (name = "commands", description = "Execute read-only kubectl commands; read results."),
        (name = "clusters", description = "Clusters, their labels and their agents' link state."),
        (name = "fleet", description = "One command on many clusters, chosen by ids, globs or labels."),
        (name = "agent link", description = "The endpoint agents dial out to (WebSocket)."),
        (name = "credentials", description = "API keys and agent tokens: create, list, revoke (admin)."),
        (name = "audit", description = "The audit log and the check of its hash chains (admin)."),
        (name = "mcp", description = "The Model Context Protocol endpoint for AI agents, and its OAuth metadata."),
        (name = "webhooks", description = "Webhook endpoints for state changes, signed as Standard \
            Webhooks, and their delivery log (admin). Each delivery is a POST of a `WebhookPayload` \
            whose `data` is the `…Data` schema of its `type`."),
    ),
    paths(crate::mcp::mcp_endpoint),
    components(schemas(
        kubeline_shared::api::ErrorBody,
        kubeline_shared::webhooks::WebhookPayload,
        kubeline_shared::webhooks::ClusterConnectedData,
        kubeline_shared::webhooks::ClusterDisconnectedData,
        kubeline_shared::webhooks::SessionExpiredData,
        kubeline_shared::webhooks::CommandFailedData,
    )),
    security(("bearerAuth" = []), ("apiKeyAuth" = [])),
)]
struct ApiDoc;

/// Every REST route with its description; [`crate::app`] splits it into the router and the
/// document.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(routes::health))
        .routes(routes!(routes::metrics))
        .routes(routes!(routes::create_session))
        .routes(routes!(routes::get_session, routes::delete_session))
        .routes(routes!(routes::list_sessions))
        .routes(routes!(routes::execute))
        .routes(routes!(routes::get_result))
        .routes(routes!(crate::stream::stream))
        .routes(routes!(crate::events::session_events))
        .routes(routes!(routes::list_clusters))
        .routes(routes!(routes::cluster_status))
        .routes(routes!(crate::fleet::fleet_execute))
        .routes(routes!(link::connect))
        .routes(routes!(
            auth::admin::create_api_key,
            auth::admin::list_api_keys
        ))
        .routes(routes!(auth::admin::revoke_api_key))
        .routes(routes!(
            auth::admin::create_agent_token,
            auth::admin::list_agent_tokens
        ))
        .routes(routes!(auth::admin::revoke_agent_token))
        .routes(routes!(audit::list_audit))
        .routes(routes!(audit::verify_audit))
        .routes(routes!(crate::mcp::protected_resource))
        .routes(routes!(
            webhooks::admin::create_webhook,
            webhooks::admin::list_webhooks
        ))
        .routes(routes!(
            webhooks::admin::get_webhook,
            webhooks::admin::delete_webhook
        ))
        .routes(routes!(webhooks::admin::list_deliveries))
}

/// The whole document, as `/openapi.json` serves it.
pub fn document() -> Value {
    to_json(finish(router().split_for_parts().1))
}

/// The document as JSON. utoipa 5 writes a link's fields in snake case (`operation_id`,
/// `request_body`); OpenAPI spells them `operationId`, `requestBody`, `operationRef`. It has no
/// attribute for "at least one of these fields", which a fleet call's body needs.
pub fn to_json(doc: Document) -> Value {
    let mut doc = serde_json::to_value(doc).expect("the document serializes");
    let ops = doc["paths"]
        .as_object_mut()
        .into_iter()
        .flat_map(|p| p.values_mut());
    let responses = ops
        .filter_map(Value::as_object_mut)
        .flat_map(|item| item.values_mut())
        .filter_map(|op| op.get_mut("responses")?.as_object_mut())
        .flat_map(|r| r.values_mut());
    for links in responses.filter_map(|r| r.get_mut("links")?.as_object_mut()) {
        for link in links.values_mut().filter_map(Value::as_object_mut) {
            for (snake, camel) in [
                ("operation_id", "operationId"),
                ("operation_ref", "operationRef"),
                ("request_body", "requestBody"),
            ] {
                if let Some(v) = link.remove(snake) {
                    link.insert(camel.to_owned(), v);
                }
            }
        }
    }
    if let Some(fleet) = doc["components"]["schemas"]
        .get_mut("FleetExecuteRequest")
        .and_then(Value::as_object_mut)
    {
        fleet.insert(
            "anyOf".to_owned(),
            json!([{"required": ["clusters"]}, {"required": ["selector"]}]),
        );
    }
    doc
}

/// Adds what the handlers' attributes do not say: security schemes, the reusable error
/// responses, and the headers of every request and answer.
pub fn finish(mut doc: Document) -> Document {
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        CALLER_AUTH,
        SecurityScheme::Http(
            Http::builder()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("API key or JWT")
                .description(Some(
                    "An API key (`POST /admin/api-keys`, or `--api-key` on the broker) or a JWT \
                     from the configured OIDC issuer, sent as `Authorization: Bearer <…>`. \
                     Scope `read` reaches sessions, commands, results and cluster status on the \
                     clusters the credential is granted; `admin` also every caller's sessions, \
                     the audit trail and credential management.",
                ))
                .build(),
        ),
    );
    components.add_security_scheme(
        API_KEY_AUTH,
        SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
            "X-API-Key",
            "An API key sent as `X-API-Key: <key>` (as Kubently clients do).",
        ))),
    );
    components.add_security_scheme(
        AGENT_AUTH,
        SecurityScheme::Http(
            Http::builder()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("agent token")
                .description(Some(
                    "The token of one cluster's agent (`--agent-token CLUSTER=TOKEN`), sent as \
                     `Authorization: Bearer <token>` with `X-Kubeline-Cluster: <cluster>`.",
                ))
                .build(),
        ),
    );
    for (name, response) in ERROR_RESPONSES.iter().map(|f| f()) {
        components.responses.insert(name.to_owned(), response);
    }
    for (_, response) in components.responses.iter_mut() {
        if let RefOr::T(response) = response {
            add_every_response_headers(response);
        }
    }
    for (path, item) in doc.paths.paths.iter_mut() {
        let ops = [
            &mut item.get,
            &mut item.post,
            &mut item.delete,
            &mut item.put,
            &mut item.patch,
        ];
        for op in ops.into_iter().flatten() {
            finish_operation(path, op);
        }
    }
    doc
}

fn finish_operation(path: &str, op: &mut Operation) {
    for response in op.responses.responses.values_mut() {
        if let RefOr::T(response) = response {
            add_every_response_headers(response);
        }
    }
    if path == "/health" {
        // Public: no credentials at all (an empty list, not "any of none").
        op.security = Some(Vec::new());
    } else if path != kubeline_shared::protocol::CONNECT_PATH {
        // Behind the authentication and rate-limit layers: every such operation can answer
        // these, so they are added here rather than remembered by each handler.
        for (status, name) in [
            ("401", "Unauthorized"),
            ("403", "Forbidden"),
            ("429", "TooManyRequests"),
            ("503", "ServiceUnavailable"),
        ] {
            op.responses
                .responses
                .entry(status.to_owned())
                .or_insert_with(|| RefOr::Ref(Ref::from_response_name(name)));
        }
        for response in op.responses.responses.values_mut() {
            if let RefOr::T(response) = response {
                add_rate_limit_headers(response);
            }
        }
    }
    for param in op.parameters.iter_mut().flatten() {
        finish_parameter(param);
    }
    if path != kubeline_shared::protocol::CONNECT_PATH {
        let params = op.parameters.get_or_insert_with(Vec::new);
        params.extend(a2a_headers());
    }
}

/// The values a WebSocket upgrade needs, as the only ones its headers take.
const UPGRADE_HEADERS: &[(&str, &str)] = &[
    ("Connection", "Upgrade"),
    ("Upgrade", "websocket"),
    ("Sec-WebSocket-Version", "13"),
];

fn finish_parameter(param: &mut Parameter) {
    let Some(RefOr::T(Schema::Object(schema))) = param.schema.as_mut() else {
        return;
    };
    // An absent optional parameter is how a request says "none"; it is never JSON `null`.
    if let SchemaType::Array(types) = &schema.schema_type {
        let types: Vec<Type> = types
            .iter()
            .filter(|t| **t != Type::Null)
            .cloned()
            .collect();
        if let [one] = types.as_slice() {
            schema.schema_type = SchemaType::Type(one.clone());
        }
    }
    if let Some((_, value)) = UPGRADE_HEADERS.iter().find(|(name, _)| *name == param.name) {
        schema.enum_values = Some(vec![json!(value)]);
    }
    if param.name == "X-Request-Timeout" {
        schema.exclusive_minimum = Some(0.into());
        schema.maximum = Some(300.into());
    }
}

// === headers ===

/// Headers sent on every answer: (name, description).
const EVERY_RESPONSE_HEADERS: &[(&str, &str)] = &[(
    "X-Correlation-ID",
    "The request's `X-Correlation-ID`, or one the broker generated (`corr_…`) when it had \
     none; results and logs carry the same id.",
)];

/// Headers of the caller's rate limit, on every answer of an authenticated route.
const RATE_LIMIT_HEADERS: &[(&str, &str)] = &[
    (
        "X-RateLimit-Limit",
        "Requests a minute this credential may make in this route's class (session creation, \
         execute, or everything else).",
    ),
    (
        "X-RateLimit-Remaining",
        "Requests left in the class before answers become 429.",
    ),
    (
        "X-RateLimit-Reset",
        "When the class's budget is full again, in seconds since the Unix epoch.",
    ),
];

fn add_rate_limit_headers(response: &mut Response) {
    for (name, description) in RATE_LIMIT_HEADERS {
        response.headers.insert(
            (*name).to_owned(),
            HeaderBuilder::new()
                .schema(
                    ObjectBuilder::new()
                        .schema_type(Type::Integer)
                        .minimum(Some(0))
                        .build(),
                )
                .description(Some(*description))
                .build(),
        );
    }
}

fn add_every_response_headers(response: &mut Response) {
    for (name, description) in EVERY_RESPONSE_HEADERS {
        response.headers.insert(
            (*name).to_owned(),
            HeaderBuilder::new()
                .schema(ObjectBuilder::new().schema_type(Type::String).build())
                .description(Some(*description))
                .build(),
        );
    }
}

/// The A2A request headers every REST route reads.
fn a2a_headers() -> Vec<Parameter> {
    let header = |name: &str, description: &str, example: &str| {
        ParameterBuilder::new()
            .name(name)
            .parameter_in(ParameterIn::Header)
            .required(Required::False)
            .description(Some(description))
            .schema(Some(ObjectBuilder::new().schema_type(Type::String).build()))
            .example(Some(json!(example)))
            .build()
    };
    vec![
        header(
            "X-Correlation-ID",
            "Trace id of the caller, echoed on the answer and kept with the result (at most 128 \
             bytes; a longer or empty one is replaced by a generated id).",
            "trace-123",
        ),
        header(
            "X-Service-Identity",
            "Name of the calling service, for the broker's logs.",
            "debugging-agent",
        ),
        header(
            "traceparent",
            "W3C trace context: the command joins this trace, through the broker to the agent's \
             logs. A malformed value is ignored and a fresh trace started.",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ),
        header(
            "tracestate",
            "W3C trace state, passed on with a valid `traceparent` (at most 512 bytes).",
            "vendor=opaque",
        ),
    ]
}

// === error responses ===

/// One reusable response per error status; handlers name the ones they can answer with
/// `(status = 404, response = NotFound)`.
/// A reusable response: its component name and the response.
type NamedResponse = (&'static str, RefOr<Response>);

const ERROR_RESPONSES: &[fn() -> NamedResponse] = &[
    BadRequest::response,
    Unauthorized::response,
    Forbidden::response,
    NotFound::response,
    PayloadTooLarge::response,
    UnsupportedMediaType::response,
    TooManyRequests::response,
    InternalError::response,
    ServiceUnavailable::response,
    GatewayTimeout::response,
];

/// An error response: the `ErrorBody` schema, examples, and optionally `Retry-After`.
fn error_response(
    description: &str,
    examples: &[(&str, Value)],
    retry_after: Option<&str>,
) -> RefOr<Response> {
    let content = ContentBuilder::new()
        .schema(Some(Ref::from_schema_name("ErrorBody")))
        .examples_from_iter(examples.iter().map(|(name, value)| {
            (
                (*name).to_owned(),
                ExampleBuilder::new().value(Some(value.clone())).build(),
            )
        }))
        .build();
    let mut response = ResponseBuilder::new()
        .description(description)
        .content("application/json", content);
    if let Some(when) = retry_after {
        response = response.header(
            "Retry-After",
            HeaderBuilder::new()
                .schema(
                    ObjectBuilder::new()
                        .schema_type(Type::Integer)
                        .minimum(Some(1))
                        .build(),
                )
                .description(Some(when))
                .build(),
        );
    }
    RefOr::T(response.build())
}

macro_rules! error_responses {
    ($($(#[$doc:meta])* $name:ident => $build:expr;)*) => {$(
        $(#[$doc])*
        pub struct $name;

        impl<'r> ToResponse<'r> for $name {
            fn response() -> (&'r str, RefOr<Response>) {
                (stringify!($name), $build)
            }
        }
    )*};
}

error_responses! {
    /// 400: a field, parameter, header or body the broker cannot use; `details` names it.
    BadRequest => error_response(
        "The request is not valid: a required field is missing, a value is out of range, the \
         body is not a JSON object, or the command was refused by the parser. `details.field` \
         or `details.argument` names what to change, `details.code` says why.",
        &[
            ("missing_field", json!({
                "error": "invalid_request",
                "message": "Missing required field: cluster_id",
                "details": { "field": "cluster_id", "code": "missing_required_field" }
            })),
            ("command_refused", json!({
                "error": "invalid_request",
                "message": "Command refused: flag --raw is not allowed for get",
                "details": { "code": "flag_not_allowed", "argument": "--raw", "command_type": "get" }
            })),
        ],
        None,
    );
    /// 401: no credential, or one that failed a check; `details.code` names the check.
    Unauthorized => error_response(
        "No credentials, or credentials the broker does not accept: `details.code` is \
         `missing_credentials`, `malformed_credentials`, `invalid_credentials`, `revoked`, \
         `expired`, `invalid_token` (a JWT check: the message names it), `jwt_not_accepted`, or \
         `credential_ended` (revoked or expired while the request ran).",
        &[
            ("missing", json!({
                "error": "unauthorized",
                "message": "Missing credentials: send `Authorization: Bearer <API key or JWT>` or `X-API-Key: <API key>`",
                "details": { "code": "missing_credentials" }
            })),
            ("revoked", json!({
                "error": "unauthorized",
                "message": "This API key was revoked; ask an admin for a new one",
                "details": { "code": "revoked" }
            })),
        ],
        None,
    );
    /// 403: a valid credential without the scope or cluster the request needs.
    Forbidden => error_response(
        "The credential is valid but may not do this: the route needs the admin scope, the \
         cluster is not among those the credential reaches (`cluster_not_granted`), or the \
         session belongs to another credential (`session_not_owned`).",
        &[
            ("cluster_not_granted", json!({
                "error": "forbidden",
                "message": "This credential may not reach cluster prod-eu (it reaches: staging-*); use a credential granted for it",
                "details": { "cluster_id": "prod-eu", "code": "cluster_not_granted" }
            })),
            ("admin_only", json!({
                "error": "forbidden",
                "message": "This endpoint needs a credential with the admin scope; this one has read",
                "details": { "code": "admin_scope_required" }
            })),
        ],
        None,
    );
    /// 404: the session, result or cluster does not exist (or is past its retention).
    NotFound => error_response(
        "The session, result or cluster named by the request does not exist.",
        &[("not_found", json!({
            "error": "not_found",
            "message": "Session not found: sess_abc123def456"
        }))],
        None,
    );
    /// 413: a body larger than `--max-body-bytes`.
    PayloadTooLarge => error_response(
        "The request body is larger than the broker accepts (`--max-body-bytes`).",
        &[("payload_too_large", json!({
            "error": "payload_too_large",
            "message": "Request body is larger than the broker's limit of 65536 bytes (--max-body-bytes); send a smaller body",
            "details": { "limit_bytes": 65536, "code": "body_too_large" }
        }))],
        None,
    );
    /// 415: a body not declared as JSON.
    UnsupportedMediaType => error_response(
        "The body is not declared as JSON (`Content-Type: application/json`).",
        &[("unsupported_media_type", json!({
            "error": "unsupported_media_type",
            "message": "Unsupported Content-Type \"text/plain\": this endpoint takes a JSON body; send Content-Type: application/json",
            "details": { "content_type": "text/plain", "expected": "application/json" }
        }))],
        None,
    );
    /// 429: too many executes in flight for the key or the cluster.
    TooManyRequests => error_response(
        "A limit was hit: the credential's rate limit for this route's class (session creation \
         20/min, execute 50/min, everything else 100/min by default), or too many commands in \
         flight for this credential (`--max-executes-per-key`) or for the cluster, all callers \
         together (`--max-executes-per-cluster`). Nothing was done; retry after `Retry-After` \
         seconds.",
        &[("rate_limited", json!({
            "error": "rate_limited",
            "message": "Rate limit exceeded",
            "details": { "limit": 50, "window": "1m", "retry_after": 2 }
        })), ("too_many_in_flight", json!({
            "error": "rate_limited",
            "message": "Too many commands in flight for this API key: at most 64 may run at once (broker limit --max-executes-per-key). Wait for one of them to finish, then retry",
            "details": { "limit": 64, "scope": "api_key", "code": "too_many_in_flight", "retry_after": 1 }
        }))],
        Some("Seconds to wait before retrying."),
    );
    /// 500: a bug; `details.request_id` finds it in the broker's logs.
    InternalError => error_response(
        "An unexpected error; `details.request_id` finds it in the broker's logs.",
        &[("internal_error", json!({
            "error": "internal_error",
            "message": "An unexpected error occurred",
            "details": { "request_id": "req_xyz123abc456" }
        }))],
        None,
    );
    /// 503: the cluster's agent is not linked, its queue is full, or the store is down.
    ServiceUnavailable => error_response(
        "A dependency is not available: the cluster's agent is not connected (or its link was \
         lost while the command ran, or it went away before running the command and did not \
         come back within 5 s), the cluster's queue is full (`--max-queue-per-cluster`, \
         with `Retry-After`), or the broker's store does not answer.",
        &[
            ("agent_not_connected", json!({
                "error": "service_unavailable",
                "message": "Cluster agent is not connected",
                "details": { "cluster_id": "production-cluster", "last_seen": "2024-01-20T09:30:00Z" }
            })),
            ("queue_full", json!({
                "error": "service_unavailable",
                "message": "The command queue of cluster production-cluster is full: 1024 commands are queued or running, the limit is 1024 (broker limit --max-queue-per-cluster). Nothing was queued; retry once the agent has caught up",
                "details": { "cluster_id": "production-cluster", "queue_depth": 1024, "limit": 1024, "code": "queue_full", "retry_after": 5 }
            })),
        ],
        Some("Seconds to wait before retrying (sent when the cluster's queue is full)."),
    );
    /// 504: the command did not finish before its timeout.
    GatewayTimeout => error_response(
        "The command did not finish before its timeout; the result stays readable as `timeout`.",
        &[("timeout", json!({
            "error": "timeout",
            "message": "command timed out after 30s",
            "details": { "result_id": "res_xyz789abc123", "cluster_id": "production-cluster", "status": "timeout" }
        }))],
        None,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    const COMMITTED: &str = "openapi.json";

    /// The served document equals the committed copy, so API changes show in review. With
    /// `KUBELINE_BLESS=1` the copy is rewritten instead.
    #[test]
    fn committed_copy_is_current() {
        let generated = serde_json::to_string_pretty(&document()).expect("serialize") + "\n";
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(COMMITTED);
        if std::env::var_os("KUBELINE_BLESS").is_some() {
            std::fs::write(&path, &generated).expect("write the committed copy");
            return;
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == generated,
            "broker/{COMMITTED} differs from the document the code generates; if the API change \
             is intended, regenerate it with `KUBELINE_BLESS=1 cargo test -p kubeline-broker \
             --lib openapi` and commit it"
        );
    }

    #[test]
    fn every_operation_is_described_and_answers_its_errors() {
        let doc = document();
        assert_eq!(doc["openapi"], "3.1.0");
        let paths = doc["paths"].as_object().unwrap();
        for path in [
            "/health",
            "/debug/session",
            "/debug/session/{session_id}",
            "/debug/sessions",
            "/debug/execute",
            "/debug/result/{result_id}",
            "/clusters",
            "/clusters/{cluster_id}/status",
            kubeline_shared::protocol::CONNECT_PATH,
        ] {
            assert!(paths.contains_key(path), "{path} is not described");
        }
        for (path, item) in paths {
            for (method, op) in item.as_object().unwrap() {
                let responses = op["responses"].as_object().unwrap();
                assert!(
                    op["operationId"].is_string() && op["summary"].is_string(),
                    "{method} {path}"
                );
                if path != "/health" {
                    assert!(responses.contains_key("401"), "{method} {path} lacks 401");
                }
            }
        }
        let execute = &doc["paths"]["/debug/execute"]["post"]["responses"];
        for status in ["200", "400", "401", "404", "429", "503", "504"] {
            assert!(execute.get(status).is_some(), "execute lacks {status}");
        }
        let links = &doc["paths"]["/debug/session"]["post"]["responses"]["201"]["links"];
        assert_eq!(links["Execute"]["operationId"], "execute");
        let links = &doc["paths"]["/debug/execute"]["post"]["responses"]["200"]["links"];
        assert_eq!(links["GetResult"]["operationId"], "get_result");
        let commands =
            &doc["components"]["schemas"]["ExecuteRequest"]["properties"]["command_type"]["enum"];
        assert_eq!(
            commands.as_array().unwrap().len(),
            kubeline_shared::command::SUPPORTED_COMMANDS.len()
        );
    }
}
