//! A broker whose Redis cannot be reached at start waits for it instead of exiting: it says so
//! in its log at every attempt (backoff 0.8 s to 30 s with full jitter), and meanwhile its
//! listener answers `GET /health` with 503 and the reason, and every other route with 503
//! `service_unavailable`, so probes and load balancers see why the replica is not ready.
//! A URL that cannot work (a malformed one) still ends the process at once.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use kubeline_shared::api::Health;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tracing::warn;

use crate::error::ApiError;
use crate::store::StoreError;
use crate::store::redis::{RedisStore, redacted};
use crate::tls::ServerTls;

/// First delay between attempts.
const FIRST_DELAY: Duration = Duration::from_millis(800);
/// Longest delay between attempts.
const MAX_DELAY: Duration = Duration::from_secs(30);

/// Why the broker is not serving yet, as `/health` tells it.
#[derive(Clone)]
struct Waiting {
    reason: Arc<Mutex<String>>,
    started: Instant,
}

/// Connects to the Redis at `url` (its servers' certificates checked against `ca` when given:
/// `--redis-ca-file`), retrying until it answers; while it does not, a stand-in server on (a
/// duplicate of) `listener` answers 503 with the reason. `tls` is a second load of the
/// broker's TLS configuration for the stand-in, when it serves HTTPS.
pub async fn reach_redis(
    url: &str,
    ca: Option<&[u8]>,
    listener: &TcpListener,
    tls: impl FnOnce() -> anyhow::Result<Option<ServerTls>>,
    started: Instant,
) -> anyhow::Result<RedisStore> {
    let shown = redacted(url);
    let error = match RedisStore::connect_with_ca(url, ca).await {
        Ok(store) => return Ok(store),
        Err(e) if unworkable(&e) => {
            anyhow::bail!("cannot connect to Redis at {shown} (--redis-url): {e}")
        }
        Err(e) => e,
    };
    let waiting = Waiting {
        reason: Arc::new(Mutex::new(reason(&shown, &error))),
        started,
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(stand_in(
        duplicate(listener)?,
        tls()?,
        waiting.clone(),
        stopped,
    ));
    let mut delay = FIRST_DELAY;
    let mut error = error;
    let store = loop {
        let wait = jittered(delay);
        warn!(redis = %shown, error = %error, retry_in_ms = wait.as_millis() as u64,
            "cannot connect to Redis (--redis-url); /health answers 503 until it can");
        tokio::time::sleep(wait).await;
        delay = (delay * 2).min(MAX_DELAY);
        match RedisStore::connect_with_ca(url, ca).await {
            Ok(store) => break store,
            Err(e) => {
                *waiting.reason.lock().unwrap_or_else(|p| p.into_inner()) = reason(&shown, &e);
                error = e;
            }
        }
    };
    let _ = stop.send(());
    let _ = server.await;
    tracing::info!(redis = %shown, "connected to Redis");
    Ok(store)
}

/// Errors no retry can mend: the URL itself is wrong.
fn unworkable(e: &StoreError) -> bool {
    matches!(e, StoreError::Redis(e) if e.kind() == redis::ErrorKind::InvalidClientConfig)
}

fn reason(shown: &str, e: &StoreError) -> String {
    format!("store unavailable: cannot connect to Redis at {shown}: {e}; retrying")
}

/// Full jitter: a uniform delay up to `delay`, at least a tenth of it.
fn jittered(delay: Duration) -> Duration {
    let nanos = u64::from(uuid::Uuid::new_v4().as_u128() as u32);
    delay.mul_f64(0.1 + 0.9 * (nanos as f64 / f64::from(u32::MAX)))
}

/// The same listening socket, for the stand-in: the broker keeps serving on the original once
/// the stand-in stops, and connections waiting in the backlog meanwhile are not refused.
fn duplicate(listener: &TcpListener) -> anyhow::Result<TcpListener> {
    use std::os::fd::AsFd;
    let fd = listener.as_fd().try_clone_to_owned()?;
    let std = std::net::TcpListener::from(fd);
    std.set_nonblocking(true)?;
    Ok(TcpListener::from_std(std)?)
}

async fn stand_in(
    listener: TcpListener,
    tls: Option<ServerTls>,
    waiting: Waiting,
    stopped: oneshot::Receiver<()>,
) {
    let app = Router::new()
        .route("/health", axum::routing::get(health))
        .fallback(unavailable)
        .with_state(waiting);
    let stopped = async {
        let _ = stopped.await;
    };
    let served = match tls {
        None => {
            axum::serve(listener, app.into_make_service())
                .with_graceful_shutdown(stopped)
                .await
        }
        Some(tls) => {
            axum::serve(tls.listen(listener), app.into_make_service())
                .with_graceful_shutdown(stopped)
                .await
        }
    };
    if let Err(e) = served {
        warn!(error = %e, "the stand-in server stopped");
    }
}

async fn health(State(waiting): State<Waiting>) -> Response {
    let body = Health {
        status: "unhealthy".to_owned(),
        version: kubeline_shared::VERSION.to_owned(),
        timestamp: Utc::now(),
        uptime_seconds: waiting.started.elapsed().as_secs(),
        reason: Some(
            waiting
                .reason
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        ),
    };
    (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response()
}

async fn unavailable(State(waiting): State<Waiting>) -> Response {
    let reason = waiting
        .reason
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    ApiError::service_unavailable(format!("the broker is starting: {reason}"), json!({}))
        .into_response()
}
