//! The kubeline broker: the REST API for callers, the link endpoint for agents, and the store
//! that ties replicas together.
//!
//! Entry points: [`BrokerArgs`] (configuration), [`Broker::bind`] then [`Broker::serve`];
//! [`app`] builds the router alone for tests.
//!
//! **Invariant:** `GET /health` is the only route without credentials.

pub mod auth;
pub mod error;
pub mod hub;
pub mod link;
pub mod middleware;
pub mod routes;
pub mod store;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::Router;
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tracing::info;

use crate::auth::{Credential, Credentials};
use crate::hub::{Hub, HubSettings};
use crate::store::Store;
use crate::store::memory::MemoryStore;
use crate::store::redis::RedisStore;

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

/// Broker configuration; every flag has a `KUBELINE_*` environment equivalent.
#[derive(Debug, Clone, clap::Args)]
pub struct BrokerArgs {
    /// Address to serve the REST API and the agent link endpoint on.
    #[arg(long, env = "KUBELINE_LISTEN", default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,

    /// Redis URL (redis://host:port/db). Without it the broker uses its embedded store and must
    /// run as a single replica.
    #[arg(long, env = "KUBELINE_REDIS_URL")]
    pub redis_url: Option<String>,

    /// API key as SCOPE=KEY (scope read or admin; KEY may be sha256:HEX). Repeat, or
    /// comma-separate in the environment variable.
    #[arg(long = "api-key", env = "KUBELINE_API_KEYS", value_delimiter = ',')]
    pub api_keys: Vec<Credential>,

    /// Agent token as CLUSTER=TOKEN (TOKEN may be sha256:HEX). One per cluster.
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

    /// How often agents are pinged and presence refreshed, in milliseconds.
    #[arg(long, env = "KUBELINE_PING_INTERVAL_MS", default_value_t = DEFAULT_PING_INTERVAL_MS)]
    pub ping_interval_ms: u64,

    /// How long in-flight commands may finish after SIGTERM before links close, in seconds.
    #[arg(long, env = "KUBELINE_DRAIN_SECONDS", default_value_t = DEFAULT_DRAIN_SECONDS)]
    pub drain_seconds: u64,
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
}

/// Shared state of the handlers.
#[derive(Clone)]
pub struct AppState {
    /// This replica's hub.
    pub hub: Arc<Hub>,
    /// Accepted credentials.
    pub credentials: Arc<Credentials>,
    /// Request-level settings.
    pub settings: Arc<ApiSettings>,
    /// When the process started.
    pub started: Instant,
}

/// The router: REST API, link endpoint and health.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/health", get(routes::health))
        .route("/debug/session", post(routes::create_session))
        .route(
            "/debug/session/{session_id}",
            get(routes::get_session).delete(routes::delete_session),
        )
        .route("/debug/sessions", get(routes::list_sessions))
        .route("/debug/execute", post(routes::execute))
        .route("/debug/result/{result_id}", get(routes::get_result))
        .route("/clusters", get(routes::list_clusters))
        .route("/clusters/{cluster_id}/status", get(routes::cluster_status))
        .route(kubeline_shared::protocol::CONNECT_PATH, get(link::connect))
        .fallback(|| async {
            error::ApiError::not_found("No such endpoint; see the API reference for the routes")
        })
        .layer(axum::middleware::from_fn(middleware::context))
        .with_state(state)
}

/// A broker bound to its port, ready to serve.
pub struct Broker {
    state: AppState,
    listener: TcpListener,
    drain: Duration,
}

impl Broker {
    /// Validates the configuration, connects the store and binds the listener.
    pub async fn bind(args: &BrokerArgs) -> anyhow::Result<Self> {
        let credentials =
            Credentials::new(&args.api_keys, &args.agent_tokens).map_err(|e| anyhow::anyhow!(e))?;
        if args.max_timeout == 0 || args.default_timeout == 0 {
            anyhow::bail!("--default-timeout and --max-timeout must be at least 1 second");
        }
        if args.default_timeout > args.max_timeout {
            anyhow::bail!(
                "--default-timeout ({}) is larger than --max-timeout ({})",
                args.default_timeout,
                args.max_timeout
            );
        }
        let store: Arc<dyn Store> = match &args.redis_url {
            Some(url) => Arc::new(
                RedisStore::connect(url)
                    .await
                    .with_context(|| format!("cannot connect to Redis at {url} (--redis-url)"))?,
            ),
            None => Arc::new(MemoryStore::new()),
        };
        let broker_id = format!("broker_{}", uuid::Uuid::new_v4().simple());
        let ping = Duration::from_millis(args.ping_interval_ms.max(100));
        let settings = HubSettings {
            ping_interval: ping,
            link_timeout: ping * 3,
            presence_ttl: ping * 4,
            result_ttl: Duration::from_secs(args.result_ttl.max(1)),
            abandoned_after: ping * 3,
            ..HubSettings::default()
        };
        let hub = Hub::new(broker_id, store, settings);
        hub.start().await.context("cannot subscribe to the store")?;
        let listener = TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("cannot listen on {} (--listen)", args.listen))?;
        let state = AppState {
            hub,
            credentials: Arc::new(credentials),
            settings: Arc::new(ApiSettings {
                session_ttl: chrono::Duration::seconds(args.session_ttl as i64),
                session_retention: Duration::from_secs(3600),
                default_timeout: Duration::from_secs(args.default_timeout),
                max_timeout: Duration::from_secs(args.max_timeout),
                max_output_bytes: args.max_output_bytes,
            }),
            started: Instant::now(),
        };
        Ok(Self {
            state,
            listener,
            drain: Duration::from_secs(args.drain_seconds),
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
        info!(addr = %self.local_addr(), broker_id = %hub.broker_id(), "broker listening");
        // Small frames (a result's last chunk and its `done`) must not wait for delayed ACKs.
        let listener = self.listener.tap_io(|tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(error = %e, "cannot set TCP_NODELAY");
            }
        });
        axum::serve(listener, app(self.state))
            .with_graceful_shutdown(async move {
                shutdown.await;
                info!("draining: finishing in-flight commands, then closing agent links");
                hub.drain(drain).await;
            })
            .await
            .context("server error")
    }
}

impl BrokerArgs {
    /// Configuration of the broker inside `kubeline dev`: embedded store, one admin key, one
    /// cluster, defaults for the rest.
    pub fn for_dev(listen: SocketAddr, api_key: Credential, agent_token: Credential) -> Self {
        Self {
            listen,
            redis_url: None,
            api_keys: vec![api_key],
            agent_tokens: vec![agent_token],
            session_ttl: DEFAULT_SESSION_TTL,
            default_timeout: DEFAULT_TIMEOUT,
            max_timeout: DEFAULT_MAX_TIMEOUT,
            max_output_bytes: DEFAULT_MAX_OUTPUT_BYTES,
            result_ttl: DEFAULT_RESULT_TTL,
            ping_interval_ms: DEFAULT_PING_INTERVAL_MS,
            drain_seconds: 5,
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

    fn state() -> AppState {
        let creds = Credentials::new(
            &["admin=adm".parse().unwrap(), "read=rd".parse().unwrap()],
            &["c1=tok".parse().unwrap()],
        )
        .unwrap();
        let hub = Hub::new(
            "broker_test".into(),
            Arc::new(MemoryStore::new()),
            HubSettings::default(),
        );
        AppState {
            hub,
            credentials: Arc::new(creds),
            settings: Arc::new(ApiSettings {
                session_ttl: chrono::Duration::hours(1),
                session_retention: Duration::from_secs(60),
                default_timeout: Duration::from_secs(30),
                max_timeout: Duration::from_secs(300),
                max_output_bytes: 1024,
            }),
            started: Instant::now(),
        }
    }

    async fn call(req: Request<Body>) -> (StatusCode, Value) {
        let res = app(state()).oneshot(req).await.unwrap();
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
        let res = app(state()).oneshot(req).await.unwrap();
        assert_eq!(res.headers()["x-correlation-id"], "trace-1");
        let res = app(state())
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
