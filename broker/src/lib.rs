//! The kubeline broker: the REST API for callers, the link endpoint for agents, and the store
//! that ties replicas together.
//!
//! Entry points: [`BrokerArgs`] (configuration), [`Broker::bind`] then [`Broker::serve`];
//! [`app`] builds the router alone for tests.
//!
//! **Invariant:** `GET /health`, `GET /openapi.json` and `/docs` are the only routes without
//! credentials.

pub mod admissions;
pub mod audit;
pub mod auth;
pub mod error;
pub mod events;
pub mod extract;
pub mod fleet;
pub mod hub;
pub mod idempotency;
pub mod jwt;
pub mod limits;
pub mod link;
pub mod logging;
pub mod mcp;
pub mod metrics;
pub mod middleware;
pub mod openapi;
pub mod ratelimit;
pub mod routes;
pub mod starting;
pub mod store;
pub mod stream;
pub mod tls;
pub mod webhooks;

#[cfg(test)]
mod edge_tests;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{Method, Uri};
use axum::response::IntoResponse;
use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use tracing::{info, warn};
use utoipa_swagger_ui::SwaggerUi;

use crate::auth::{Credential, Credentials};
use crate::error::ApiError;
use crate::hub::{Hub, HubSettings};
use crate::jwt::{JwtArgs, JwtVerifier};
use crate::limits::ExecuteLimits;
use crate::ratelimit::{RateLimitArgs, RateLimiter};
use crate::store::Store;
use crate::store::memory::MemoryStore;
use crate::store::metered::Metered;

/// Default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Default session lifetime, in seconds.
pub const DEFAULT_SESSION_TTL: u64 = 3600;
/// Default command timeout, in seconds.
pub const DEFAULT_TIMEOUT: u64 = 30;
/// Default largest command timeout, in seconds.
pub const DEFAULT_MAX_TIMEOUT: u64 = 300;
/// Default output budget of one command, in bytes.
pub const DEFAULT_MAX_OUTPUT_BYTES: u64 = 4 * 1024 * 1024;
/// Default result lifetime, in seconds.
pub const DEFAULT_RESULT_TTL: u64 = 3600;
/// Default agent ping interval, in milliseconds.
pub const DEFAULT_PING_INTERVAL_MS: u64 = 5000;
/// Default drain period after SIGTERM, in seconds.
pub const DEFAULT_DRAIN_SECONDS: u64 = 20;
/// Default largest request body, in bytes. An execute body is its argv (at most
/// `kubeline_shared::limits::MAX_ARGV_BYTES`, 16 KiB) plus ids and JSON punctuation; 64 KiB
/// leaves room for escaping without letting a caller make the broker buffer megabytes.
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024;
/// Default largest number of executes one API key may have in flight on one replica. A person
/// or an AI agent runs a handful at once; 64 leaves room for scripts and the benchmark's 64
/// concurrent callers, while one leaked key cannot occupy the whole agent.
pub const DEFAULT_MAX_EXECUTES_PER_KEY: usize = 64;
/// Default largest number of executes one cluster may have in flight on one replica, all keys
/// together: four times what one key may have, so one busy key cannot starve the others.
pub const DEFAULT_MAX_EXECUTES_PER_CLUSTER: usize = 256;
/// Default largest queue of one cluster (commands queued or running, the `queue_depth` of
/// `GET /clusters/{id}/status`), shared by all replicas. It bounds the backlog that callers
/// who stop waiting leave behind (their command stays queued until it runs or its deadline).
pub const DEFAULT_MAX_QUEUE_PER_CLUSTER: u64 = 1024;
/// `Retry-After` of a 429 for too many in-flight executes, in seconds.
pub const RETRY_AFTER_IN_FLIGHT: u64 = 1;
/// `Retry-After` of a 503 for a full cluster queue, in seconds.
pub const RETRY_AFTER_QUEUE_FULL: u64 = 5;

/// Broker configuration; every flag has a `KUBELINE_*` environment equivalent.
#[derive(Debug, Clone, clap::Args)]
pub struct BrokerArgs {
    /// Address to serve the REST API and the agent link endpoint on.
    #[arg(long, env = "KUBELINE_LISTEN", default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,

    /// Redis URL: `redis://[:PASSWORD@]HOST:PORT[/DB]` for one Redis server (`rediss://` for
    /// TLS), `redis+cluster://[:PASSWORD@]HOST:PORT[,HOST:PORT…]` for a Redis Cluster
    /// (`rediss+cluster://` for TLS; one reachable node is enough, the rest are discovered).
    /// Without it the broker uses its embedded store and must run as a single replica.
    #[arg(long, env = "KUBELINE_REDIS_URL")]
    pub redis_url: Option<String>,

    /// PEM file of the CA certificate(s) that sign the Redis servers' certificates, checked
    /// against instead of the system's roots: a private CA for a `rediss://` or
    /// `rediss+cluster://` `--redis-url`.
    #[arg(long, env = "KUBELINE_REDIS_CA_FILE")]
    pub redis_ca_file: Option<PathBuf>,

    /// API key as SCOPE=KEY, or SCOPE@CLUSTERS=KEY to limit the clusters it reaches (scope read
    /// or admin; CLUSTERS `|`-separated ids and globs such as `prod-*`, `!` before one to deny;
    /// KEY may be sha256:HEX). Seeds the store at start; more keys come from the admin API.
    /// Repeat, or comma-separate in the environment variable.
    #[arg(long = "api-key", env = "KUBELINE_API_KEYS", value_delimiter = ',')]
    pub api_keys: Vec<Credential>,

    /// Agent token as CLUSTER=TOKEN (TOKEN may be sha256:HEX). One per cluster; rotate with
    /// `POST /admin/agent-tokens`.
    #[arg(
        long = "agent-token",
        env = "KUBELINE_AGENT_TOKENS",
        value_delimiter = ','
    )]
    pub agent_tokens: Vec<Credential>,

    /// Lifetime of a debug session, in seconds.
    #[arg(long, env = "KUBELINE_SESSION_TTL", default_value_t = DEFAULT_SESSION_TTL)]
    pub session_ttl: u64,

    /// Timeout of a command when the request gives none, in seconds.
    #[arg(long, env = "KUBELINE_DEFAULT_TIMEOUT", default_value_t = DEFAULT_TIMEOUT)]
    pub default_timeout: u64,

    /// Largest timeout a request may ask for, in seconds.
    #[arg(long, env = "KUBELINE_MAX_TIMEOUT", default_value_t = DEFAULT_MAX_TIMEOUT)]
    pub max_timeout: u64,

    /// Output budget of one command, in bytes; output past it is cut and reported.
    #[arg(long, env = "KUBELINE_MAX_OUTPUT_BYTES", default_value_t = DEFAULT_MAX_OUTPUT_BYTES)]
    pub max_output_bytes: u64,

    /// How long results stay readable, in seconds.
    #[arg(long, env = "KUBELINE_RESULT_TTL", default_value_t = DEFAULT_RESULT_TTL)]
    pub result_ttl: u64,

    /// Without `--redis-url`: how many bytes of results this broker keeps in memory. Past it
    /// the oldest results are forgotten before `--result-ttl` (a read then finds no result).
    #[arg(
        long,
        env = "KUBELINE_EMBEDDED_RESULTS_MAX_BYTES",
        default_value_t = store::memory::DEFAULT_RESULTS_MAX_BYTES
    )]
    pub embedded_results_max_bytes: u64,

    /// Without `--redis-url`: how many bytes of audit records this broker keeps in memory
    /// (besides `--audit-max-records`); past it the oldest go first.
    #[arg(
        long,
        env = "KUBELINE_EMBEDDED_AUDIT_MAX_BYTES",
        default_value_t = store::memory::DEFAULT_AUDIT_MAX_BYTES
    )]
    pub embedded_audit_max_bytes: u64,

    /// How often agents are pinged and presence refreshed, in milliseconds.
    #[arg(long, env = "KUBELINE_PING_INTERVAL_MS", default_value_t = DEFAULT_PING_INTERVAL_MS)]
    pub ping_interval_ms: u64,

    /// New agent links this replica admits per second. Past it (a fleet reconnecting after a
    /// restart) an agent is answered 503 with its own time to come back, so the fleet returns
    /// at this rate instead of all at once.
    #[arg(
        long,
        env = "KUBELINE_LINK_ADMISSIONS_PER_SECOND",
        default_value_t = admissions::DEFAULT_LINK_ADMISSIONS_PER_SECOND,
        value_parser = clap::value_parser!(u32).range(1..=1_000_000)
    )]
    pub link_admissions_per_second: u32,

    /// How long in-flight commands may finish after SIGTERM before links close, in seconds.
    #[arg(long, env = "KUBELINE_DRAIN_SECONDS", default_value_t = DEFAULT_DRAIN_SECONDS)]
    pub drain_seconds: u64,

    /// Largest request body, in bytes; larger bodies get 413.
    #[arg(long, env = "KUBELINE_MAX_BODY_BYTES", default_value_t = DEFAULT_MAX_BODY_BYTES)]
    pub max_body_bytes: usize,

    /// Executes one API key may have in flight at once on this replica; more get 429.
    #[arg(
        long,
        env = "KUBELINE_MAX_EXECUTES_PER_KEY",
        default_value_t = DEFAULT_MAX_EXECUTES_PER_KEY
    )]
    pub max_executes_per_key: usize,

    /// Executes one cluster may have in flight at once on this replica, all keys together;
    /// more get 429.
    #[arg(
        long,
        env = "KUBELINE_MAX_EXECUTES_PER_CLUSTER",
        default_value_t = DEFAULT_MAX_EXECUTES_PER_CLUSTER
    )]
    pub max_executes_per_cluster: usize,

    /// Commands a cluster may have queued or running (all replicas together); an execute that
    /// finds the queue this long gets 503 and nothing is queued.
    #[arg(
        long,
        env = "KUBELINE_MAX_QUEUE_PER_CLUSTER",
        default_value_t = DEFAULT_MAX_QUEUE_PER_CLUSTER
    )]
    pub max_queue_per_cluster: u64,

    /// Requests per minute per credential and endpoint class.
    #[command(flatten)]
    pub rate_limits: RateLimitArgs,

    /// JWT callers from an OIDC issuer.
    #[command(flatten)]
    pub jwt: JwtArgs,

    /// HTTPS and WSS: --tls-cert, --tls-key, --tls-reload-seconds.
    #[command(flatten)]
    pub tls: tls::TlsArgs,

    /// Audit log settings (`--audit-*`).
    #[command(flatten)]
    pub audit: audit::AuditArgs,

    /// The MCP endpoint (`--mcp-*`).
    #[command(flatten)]
    pub mcp: mcp::McpArgs,

    /// Webhook deliveries (`--webhook-*`).
    #[command(flatten)]
    pub webhooks: webhooks::WebhookArgs,
    /// Fleet calls (`--fleet-*`).
    #[command(flatten)]
    pub fleet: fleet::FleetArgs,
    /// Streams (`--stream-*`, `--max-streams-*`).
    #[command(flatten)]
    pub streams: stream::StreamArgs,
}

/// Request-level settings the handlers need.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// Session lifetime.
    pub session_ttl: chrono::Duration,
    /// How long a session stays readable after it expires.
    pub session_retention: Duration,
    /// Timeout when the request gives none.
    pub default_timeout: Duration,
    /// Largest timeout accepted.
    pub max_timeout: Duration,
    /// Output budget of one command.
    pub max_output_bytes: u64,
    /// Largest request body, in bytes.
    pub max_body_bytes: usize,
    /// The MCP endpoint's settings.
    pub mcp: mcp::McpArgs,
    /// Fleet call settings.
    pub fleet: fleet::FleetArgs,
    /// Stream settings.
    pub streams: stream::StreamArgs,
    /// Whether this broker serves HTTPS (`--tls-cert`).
    pub tls: bool,
}

/// Shared state of the handlers: one `Arc`, so the copy each middleware layer and handler
/// takes of it per request is one reference count, not one per part.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    /// The state made of `shared`.
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }

    /// The parts, to change before the state is shared (tests that adjust one part).
    ///
    /// # Panics
    /// When the state has been copied already.
    #[cfg(test)]
    pub(crate) fn parts_mut(&mut self) -> &mut Shared {
        Arc::get_mut(&mut self.0).expect("the state is changed before it is shared")
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The parts of [`AppState`].
pub struct Shared {
    /// This replica's hub.
    pub hub: Arc<Hub>,
    /// API keys and agent tokens.
    pub credentials: Arc<Credentials>,
    /// Request-level settings.
    pub settings: Arc<ApiSettings>,
    /// In-flight executes per key and per cluster, and the queue limit.
    pub limits: Arc<ExecuteLimits>,
    /// Requests per minute per credential and class (see [`ratelimit::enforce`]).
    pub rate_limiter: Arc<RateLimiter>,
    /// Verifies JWT callers, when an issuer is configured.
    pub jwt: Option<JwtVerifier>,
    /// When the process started.
    pub started: Instant,
    /// This replica's audit log writer.
    pub audit: audit::Auditor,
    /// Webhook endpoints, events and deliveries.
    pub webhooks: Arc<webhooks::Webhooks>,
}

/// The router: REST API, link endpoint, health, and the API description (`/openapi.json`, `/docs`).
///
/// Every answer that is not a success has the contract's error body: unknown paths (404) and
/// methods (405, with `Allow`) by the fallbacks below, a panicking handler (500) by the
/// catch-panic layer, everything a request carries by the extractors of [`extract`].
pub fn app(state: AppState) -> Router {
    let max_body = state.settings.max_body_bytes;
    // The recorder exists before the first request is counted.
    metrics::handle();
    // Every route is registered with its OpenAPI description (see `openapi::router`), and the
    // document is served with Swagger UI, whose assets are compiled in.
    let (routes, doc) = openapi::router().split_for_parts();
    let doc = openapi::to_json(openapi::finish(doc));
    let routes = routes
        .merge(SwaggerUi::new("/docs").external_url_unchecked("/openapi.json", doc))
        .route_service("/mcp", mcp::service(state.clone()));
    // One authentication layer on every matched route (the public ones pass through it), so no
    // handler can forget it; inside it, the caller's rate limit. (In a `ServiceBuilder` the
    // layer added first runs first.)
    //
    // Layers are stacked with one `ServiceBuilder` rather than one `Router::layer` call each:
    // every `Router::layer` boxes the route again, and each middleware clones its inner service
    // per request, so N separate layers cost about N²/2 box clones a request (≈ 55 allocations
    // here), one stack about N.
    let routes = routes.route_layer(
        ServiceBuilder::new()
            .layer(axum::middleware::from_fn_with_state(
                state.clone(),
                auth::authenticate,
            ))
            .layer(axum::middleware::from_fn_with_state(
                state.rate_limiter.clone(),
                ratelimit::enforce,
            )),
    );
    edge(routes, max_body).with_state(state)
}

/// The fallbacks and layers every route shares.
fn edge(routes: Router<AppState>, max_body: usize) -> Router<AppState> {
    routes
        // After every route: it applies to the routes registered before it. axum still sets
        // `Allow` on what this returns.
        .method_not_allowed_fallback(|method: Method, uri: Uri| async move {
            ApiError::method_not_allowed(method.as_str(), uri.path())
        })
        .fallback(|| async {
            ApiError::not_found("No such endpoint; see the API reference for the routes")
        })
        .layer(
            ServiceBuilder::new()
                // Outermost, so it also counts the answers of the layers below (413, panics).
                .layer(axum::middleware::from_fn(metrics::track_http))
                // An error answer to a request whose body may be unread closes the connection,
                // saying so.
                .layer(axum::middleware::from_fn(
                    middleware::close_after_refused_body,
                ))
                // MCP clients read JSON-RPC errors, not the REST body, from `/mcp`.
                .layer(axum::middleware::from_fn(mcp::jsonrpc_errors))
                .layer(axum::middleware::from_fn(middleware::context))
                .layer(tower_http::catch_panic::CatchPanicLayer::custom(
                    |panic: Box<dyn std::any::Any + Send>| {
                        let what = panic
                            .downcast_ref::<&str>()
                            .map(|s| (*s).to_owned())
                            .or_else(|| panic.downcast_ref::<String>().cloned())
                            .unwrap_or_else(|| "a handler panicked".to_owned());
                        ApiError::internal(&format!("panic: {what}")).into_response()
                    },
                ))
                .layer(DefaultBodyLimit::max(max_body)),
        )
}

/// Tries of the store's first requests at start (every half second) before the broker gives up.
const STORE_START_TRIES: u32 = 60;

/// A broker bound to its port, ready to serve.
pub struct Broker {
    state: AppState,
    listener: TcpListener,
    drain: Duration,
    /// The certificate to serve HTTPS and WSS with; plain HTTP without it.
    tls: Option<tls::ServerTls>,
}

impl Broker {
    /// Validates the configuration, connects the store and binds the listener.
    pub async fn bind(args: &BrokerArgs) -> anyhow::Result<Self> {
        if args.max_timeout == 0 || args.default_timeout == 0 {
            anyhow::bail!("--default-timeout and --max-timeout must be at least 1 second");
        }
        if args.max_body_bytes == 0
            || args.max_executes_per_key == 0
            || args.max_executes_per_cluster == 0
            || args.max_queue_per_cluster == 0
        {
            anyhow::bail!(
                "--max-body-bytes, --max-executes-per-key, --max-executes-per-cluster and \
                 --max-queue-per-cluster must be at least 1"
            );
        }
        args.audit.check()?;
        args.mcp.check()?;
        args.webhooks.check()?;
        args.fleet.check(args.max_executes_per_key)?;
        args.streams.check()?;
        if args.default_timeout > args.max_timeout {
            anyhow::bail!(
                "--default-timeout ({}) is larger than --max-timeout ({})",
                args.default_timeout,
                args.max_timeout
            );
        }
        // Before connecting anything: a certificate that does not load is a configuration error.
        let tls = tls::ServerTls::load(&args.tls)?;
        let redis_ca = match (&args.redis_ca_file, &args.redis_url) {
            (None, _) => None,
            (Some(_), None) => anyhow::bail!(
                "--redis-ca-file is the CA of a Redis over TLS: give it with a rediss:// or \
                 rediss+cluster:// --redis-url"
            ),
            (Some(path), Some(_)) => Some(tls::read_ca("--redis-ca-file", path)?),
        };
        // Installed before anything records, so no early sample is lost.
        metrics::handle();
        // Bound first: while Redis cannot be reached, `/health` says so from this port.
        let listener = TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("cannot listen on {} (--listen)", args.listen))?;
        let started = Instant::now();
        let store: Arc<dyn Store> = match &args.redis_url {
            Some(url) => {
                let stand_in_tls = || Ok(tls::ServerTls::load(&args.tls)?);
                let ca = redis_ca.as_deref();
                let redis =
                    starting::reach_redis(url, ca, &listener, stand_in_tls, started).await?;
                Arc::new(Metered::new(Arc::new(redis), "redis"))
            }
            None => Arc::new(Metered::new(
                Arc::new(MemoryStore::bounded(
                    args.embedded_results_max_bytes,
                    args.embedded_audit_max_bytes,
                )),
                "memory",
            )),
        };
        let broker_id = format!("broker_{}", uuid::Uuid::new_v4().simple());
        let ping = Duration::from_millis(args.ping_interval_ms.max(100));
        let settings = HubSettings {
            ping_interval: ping,
            link_timeout: ping * 3,
            presence_ttl: ping * 4,
            result_ttl: Duration::from_secs(args.result_ttl.max(1)),
            abandoned_after: ping * 3,
            link_admissions_per_second: args.link_admissions_per_second,
            ..HubSettings::default()
        };
        let audit = audit::Auditor::start(store.clone(), &broker_id, &args.audit);
        let rate_limiter = Arc::new(RateLimiter::new(store.clone(), (&args.rate_limits).into()));
        let webhooks =
            webhooks::Webhooks::new(store.clone(), &broker_id, audit.clone(), &args.webhooks)?;
        let hub = Hub::new(broker_id, store.clone(), settings);
        hub.set_webhooks(webhooks.clone());
        webhooks.set_session_events(hub.events().clone());
        // A store just reached may not serve every request yet (a Redis Cluster being created
        // accepts connections before its slots are served): a few tries before giving up.
        let mut tries = 0;
        while let Err(e) = hub.start().await {
            tries += 1;
            if tries == STORE_START_TRIES {
                return Err(anyhow::Error::new(e).context("cannot subscribe to the store"));
            }
            warn!(error = %e, "the store is not serving yet; trying again");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let credentials = Credentials::bootstrap(
            store,
            hub.credential_changes().clone(),
            &args.api_keys,
            &args.agent_tokens,
        )
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
        let jwt = JwtVerifier::new(&args.jwt).map_err(|e| anyhow::anyhow!(e))?;
        if let Some(jwt) = &jwt {
            jwt.start().await.map_err(|e| anyhow::anyhow!(e))?;
        }
        let state = AppState::new(Shared {
            hub,
            credentials,
            settings: Arc::new(ApiSettings {
                session_ttl: chrono::Duration::seconds(args.session_ttl as i64),
                session_retention: Duration::from_secs(3600),
                default_timeout: Duration::from_secs(args.default_timeout),
                max_timeout: Duration::from_secs(args.max_timeout),
                max_output_bytes: args.max_output_bytes,
                max_body_bytes: args.max_body_bytes,
                mcp: args.mcp.clone(),
                fleet: args.fleet.clone(),
                streams: args.streams.clone(),
                tls: tls.is_some(),
            }),
            limits: Arc::new(
                ExecuteLimits::new(
                    args.max_executes_per_key,
                    args.max_executes_per_cluster,
                    args.max_queue_per_cluster,
                )
                .with_streams(
                    args.streams.max_streams_per_key,
                    args.streams.max_streams_per_cluster,
                ),
            ),
            rate_limiter,
            jwt,
            started,
            audit,
            webhooks,
        });
        Ok(Self {
            state,
            listener,
            drain: Duration::from_secs(args.drain_seconds),
            tls,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// The handlers' state (for embedding and tests).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves, then drains: in-flight commands get up to the drain
    /// period to finish, agents are told to reconnect elsewhere, open requests complete.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let hub = self.state.hub.clone();
        let drain = self.drain;
        let webhooks = self.state.webhooks.clone();
        webhooks.start();
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        info!(addr = %self.local_addr(), %scheme, broker_id = %hub.broker_id(), "broker listening");
        let upkeep = tokio::spawn(metrics::upkeep());
        // Small frames (a result's last chunk and its `done`) must not wait for delayed ACKs.
        let listener = self.listener.tap_io(|tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(error = %e, "cannot set TCP_NODELAY");
            }
        });
        let graceful = async move {
            shutdown.await;
            info!("draining: finishing in-flight commands, then closing agent links");
            hub.drain(drain).await;
        };
        // With TLS, the same server over a listener that yields finished handshakes (`tls.rs`).
        let served = match self.tls {
            // With the peer's address, for the audit trail.
            None => {
                let app = app(self.state).into_make_service_with_connect_info::<SocketAddr>();
                axum::serve(listener, app)
                    .with_graceful_shutdown(graceful)
                    .await
            }
            Some(tls) => {
                let app =
                    app(self.state).into_make_service_with_connect_info::<middleware::PeerAddr>();
                axum::serve(tls.listen(listener), app)
                    .with_graceful_shutdown(graceful)
                    .await
            }
        }
        .context("server error");
        upkeep.abort();
        webhooks.stop();
        served
    }
}

impl BrokerArgs {
    /// Configuration of the broker inside `kubeline dev`: embedded store, one admin key, one
    /// cluster, defaults for the rest.
    pub fn for_dev(listen: SocketAddr, api_key: Credential, agent_token: Credential) -> Self {
        Self {
            listen,
            redis_url: None,
            redis_ca_file: None,
            api_keys: vec![api_key],
            agent_tokens: vec![agent_token],
            session_ttl: DEFAULT_SESSION_TTL,
            default_timeout: DEFAULT_TIMEOUT,
            max_timeout: DEFAULT_MAX_TIMEOUT,
            max_output_bytes: DEFAULT_MAX_OUTPUT_BYTES,
            result_ttl: DEFAULT_RESULT_TTL,
            embedded_results_max_bytes: store::memory::DEFAULT_RESULTS_MAX_BYTES,
            embedded_audit_max_bytes: store::memory::DEFAULT_AUDIT_MAX_BYTES,
            ping_interval_ms: DEFAULT_PING_INTERVAL_MS,
            link_admissions_per_second: admissions::DEFAULT_LINK_ADMISSIONS_PER_SECOND,
            drain_seconds: 5,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_executes_per_key: DEFAULT_MAX_EXECUTES_PER_KEY,
            max_executes_per_cluster: DEFAULT_MAX_EXECUTES_PER_CLUSTER,
            max_queue_per_cluster: DEFAULT_MAX_QUEUE_PER_CLUSTER,
            rate_limits: RateLimitArgs::default(),
            jwt: JwtArgs::default(),
            tls: tls::TlsArgs::default(),
            audit: audit::AuditArgs::default(),
            mcp: mcp::McpArgs::default(),
            webhooks: webhooks::WebhookArgs::default(),
            fleet: fleet::FleetArgs::default(),
            streams: stream::StreamArgs::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use serde_json::{Value, json};
    use tower::ServiceExt;

    use super::*;

    async fn state() -> AppState {
        state_with(ExecuteLimits::new(
            DEFAULT_MAX_EXECUTES_PER_KEY,
            DEFAULT_MAX_EXECUTES_PER_CLUSTER,
            DEFAULT_MAX_QUEUE_PER_CLUSTER,
        ))
        .await
    }

    /// Records `cluster_id` as linked to another replica (nobody answers its commands).
    pub(crate) async fn link_elsewhere(state: &AppState, cluster_id: &str) {
        state
            .hub
            .store()
            .link_cluster(
                &crate::store::ClusterRecord {
                    cluster_id: cluster_id.into(),
                    broker_id: Some("broker_elsewhere".into()),
                    agent_version: None,
                    kubernetes_version: None,
                    last_seen: None,
                    labels: Default::default(),
                },
                Duration::from_secs(600),
            )
            .await
            .unwrap();
    }

    /// A router state over an embedded store with keys `adm` (admin), `rd` (read) and `rd-c2`
    /// (read, cluster `c2` only), cluster `c1`, and the given execute limits.
    pub(crate) async fn state_with(limits: ExecuteLimits) -> AppState {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let hub = Hub::new("broker_test".into(), store.clone(), HubSettings::default());
        hub.start().await.unwrap();
        let rate_limiter = Arc::new(RateLimiter::new(store.clone(), Default::default()));
        let audit = audit::Auditor::start(store.clone(), "broker_test", &Default::default());
        let webhooks = webhooks::Webhooks::new(
            store.clone(),
            "broker_test",
            audit.clone(),
            &Default::default(),
        )
        .unwrap();
        hub.set_webhooks(webhooks.clone());
        webhooks.set_session_events(hub.events().clone());
        let credentials = Credentials::bootstrap(
            store,
            hub.credential_changes().clone(),
            &[
                "admin=adm".parse().unwrap(),
                "read=rd".parse().unwrap(),
                "read@c2=rd-c2".parse().unwrap(),
            ],
            &["c1=tok".parse().unwrap(), "c2=tok2".parse().unwrap()],
        )
        .await
        .unwrap();
        AppState::new(Shared {
            hub,
            credentials,
            settings: Arc::new(ApiSettings {
                session_ttl: chrono::Duration::hours(1),
                session_retention: Duration::from_secs(60),
                default_timeout: Duration::from_secs(30),
                max_timeout: Duration::from_secs(300),
                max_output_bytes: 1024,
                max_body_bytes: DEFAULT_MAX_BODY_BYTES,
                mcp: mcp::McpArgs {
                    mcp_output_bytes: 512,
                    ..Default::default()
                },
                fleet: fleet::FleetArgs::default(),
                streams: stream::StreamArgs::default(),
                tls: false,
            }),
            limits: Arc::new(limits),
            rate_limiter,
            jwt: None,
            started: Instant::now(),
            audit,
            webhooks,
        })
    }

    async fn call(req: Request<Body>) -> (StatusCode, Value) {
        let res = app(state().await).oneshot(req).await.unwrap();
        let status = res.status();
        let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
            .await
            .unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    fn post(path: &str, key: &str, body: Value) -> Request<Body> {
        Request::post(path)
            .header("authorization", format!("Bearer {key}"))
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap()
    }

    #[test]
    fn limit_flags_have_defaults_and_can_be_set() {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            args: BrokerArgs,
        }
        let cli = <Cli as clap::Parser>::try_parse_from(["kubeline"]).unwrap();
        assert_eq!(cli.args.max_body_bytes, 64 * 1024);
        assert_eq!(cli.args.max_executes_per_key, DEFAULT_MAX_EXECUTES_PER_KEY);
        assert_eq!(
            cli.args.max_executes_per_cluster,
            DEFAULT_MAX_EXECUTES_PER_CLUSTER
        );
        assert_eq!(
            cli.args.max_queue_per_cluster,
            DEFAULT_MAX_QUEUE_PER_CLUSTER
        );
        let cli = <Cli as clap::Parser>::try_parse_from([
            "kubeline",
            "--max-body-bytes=1000",
            "--max-executes-per-key=2",
            "--max-executes-per-cluster=3",
            "--max-queue-per-cluster=4",
        ])
        .unwrap();
        let a = cli.args;
        assert_eq!(
            (
                a.max_body_bytes,
                a.max_executes_per_key,
                a.max_executes_per_cluster,
                a.max_queue_per_cluster
            ),
            (1000, 2, 3, 4)
        );
    }

    #[tokio::test]
    async fn zero_limits_are_refused_at_start() {
        let mut args = BrokerArgs::for_dev(
            "127.0.0.1:0".parse().unwrap(),
            "admin=k".parse().unwrap(),
            "c1=t".parse().unwrap(),
        );
        args.max_executes_per_key = 0;
        let err = Broker::bind(&args).await.err().unwrap().to_string();
        assert!(err.contains("--max-executes-per-key"), "{err}");
    }

    #[tokio::test]
    async fn health_is_public() {
        let (status, body) = call(Request::get("/health").body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["status"], "healthy");
        assert_eq!(body["version"], kubeline_shared::VERSION);
    }

    #[tokio::test]
    async fn everything_else_needs_a_key() {
        for path in [
            "/debug/sessions",
            "/clusters",
            "/debug/result/x",
            "/clusters/c1/status",
        ] {
            let (status, body) = call(Request::get(path).body(Body::empty()).unwrap()).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
            assert_eq!(body["error"], "unauthorized");
        }
    }

    #[tokio::test]
    async fn metrics_need_a_key_and_label_routes_by_template() {
        let (status, _) = call(Request::get("/metrics").body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let app = app(state().await);
        let get = |path: &str| {
            Request::get(path)
                .header("authorization", "Bearer rd")
                .body(Body::empty())
                .unwrap()
        };
        let res = app
            .clone()
            .oneshot(get("/debug/session/sess_secret123"))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
        let res = app.oneshot(get("/metrics")).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()["content-type"], metrics::CONTENT_TYPE);
        let text = String::from_utf8(
            axum::body::to_bytes(res.into_body(), 1 << 22)
                .await
                .unwrap()
                .to_vec(),
        )
        .unwrap();
        assert!(
            text.contains(
                r#"kubeline_http_requests_total{method="GET",route="/debug/session/{session_id}",status="404"}"#
            ),
            "{text}"
        );
        assert!(
            !text.contains("sess_secret123"),
            "no raw path or id is a label"
        );
        assert!(text.contains(r#"kubeline_auth_failures_total{reason="missing"}"#));
        assert!(text.contains("kubeline_agents_connected 0"));
        // Histograms have buckets, not quantiles.
        assert!(text.contains("kubeline_http_request_duration_seconds_bucket{"));
    }

    #[tokio::test]
    async fn unknown_routes_are_404_with_a_contract_body() {
        let (status, body) = call(Request::get("/nope").body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body["error"], "not_found");
    }

    #[tokio::test]
    async fn create_session_validates_cluster_id() {
        let (status, body) = call(post("/debug/session", "rd", json!({}))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["details"]["field"], "cluster_id");
        let (status, body) =
            call(post("/debug/session", "rd", json!({ "cluster_id": "a b" }))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["details"]["code"], "invalid_value");
        let (status, body) =
            call(post("/debug/session", "rd", json!({ "cluster_id": "c1" }))).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert!(body["session_id"].as_str().unwrap().starts_with("sess_"));
    }

    #[tokio::test]
    async fn correlation_id_is_echoed_or_generated() {
        let req = Request::get("/health")
            .header("x-correlation-id", "trace-1")
            .body(Body::empty())
            .unwrap();
        let res = app(state().await).oneshot(req).await.unwrap();
        assert_eq!(res.headers()["x-correlation-id"], "trace-1");
        let res = app(state().await)
            .oneshot(Request::get("/health").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert!(
            res.headers()["x-correlation-id"]
                .to_str()
                .unwrap()
                .starts_with("corr_")
        );
    }
}
