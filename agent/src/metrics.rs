//! Prometheus metrics of the agent, served at `GET /metrics` on `--metrics-listen` only.
//!
//! Without that flag no recorder is installed (every `metrics` call is a no-op) and the agent
//! opens no port: it only dials out. With it, the agent serves this one read-only route; it
//! takes no commands from it.
//!
//! Labels come from closed sets: command types of `SUPPORTED_COMMANDS` (`other` otherwise) and
//! the result statuses. No ids.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use kubeline_shared::api::ResultStatus;
use kubeline_shared::command;
use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio_util::sync::CancellationToken;
use tracing::info;

/// Commands run, by `command_type` and `outcome` (`completed`, `failed`, `timeout`).
pub const COMMANDS: &str = "kubeline_agent_commands_total";
/// Time from receiving a command to its end, by `command_type`.
pub const COMMAND_DURATION: &str = "kubeline_agent_command_duration_seconds";
/// Commands running or waiting for a slot now.
pub const COMMANDS_RUNNING: &str = "kubeline_agent_commands_running";
/// 1 while the link to the broker is up (welcomed), 0 otherwise.
pub const LINK_CONNECTED: &str = "kubeline_agent_link_connected";
/// Dials to the broker after the first one.
pub const RECONNECTS: &str = "kubeline_agent_reconnects_total";
/// Always 1, labelled with the agent's `version`.
pub const BUILD_INFO: &str = "kubeline_agent_build_info";

/// Path of the one route.
pub const METRICS_PATH: &str = "/metrics";
/// Buckets of [`COMMAND_DURATION`]: 1 ms to the broker's largest timeout (5 min).
pub const COMMAND_SECONDS_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];
/// How often histogram samples are folded in when nobody scrapes.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);
/// Content type of the text exposition format.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full(COMMAND_DURATION.into()),
                COMMAND_SECONDS_BUCKETS,
            )
            .expect("the bucket list is not empty")
            .build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!(
                "another metrics recorder is installed; the agent's /metrics will be empty"
            );
        }
        gauge!(BUILD_INFO, "version" => kubeline_shared::VERSION).set(1.0);
        gauge!(LINK_CONNECTED).set(0.0);
        handle
    })
}

/// Installs the recorder and binds `addr` (`--metrics-listen`); the returned future serves
/// `/metrics` until `shutdown`.
pub async fn serve(
    addr: SocketAddr,
    shutdown: CancellationToken,
) -> anyhow::Result<impl Future<Output = ()> + Send + 'static> {
    let handle = handle();
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} (--metrics-listen)"))?;
    info!(%addr, "serving agent metrics at {METRICS_PATH}");
    let app = Router::new().route(
        METRICS_PATH,
        get(|| async { ([(CONTENT_TYPE, TEXT_FORMAT)], handle.render()).into_response() }),
    );
    Ok(async move {
        let upkeep = tokio::spawn(async move {
            let mut tick = tokio::time::interval(UPKEEP_INTERVAL);
            loop {
                tick.tick().await;
                handle.run_upkeep();
            }
        });
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
        upkeep.abort();
        if let Err(e) = served {
            tracing::warn!(error = %e, "metrics server stopped");
        }
    })
}

/// The label of a command type: itself when supported, `other` otherwise.
pub fn command_label(command_type: &str) -> &'static str {
    command::supported(command_type).unwrap_or("other")
}

/// Counts a command in [`COMMANDS_RUNNING`] while it lives, however it ends (an aborted
/// command never reaches [`command_done`]).
pub struct Running(());

impl Drop for Running {
    fn drop(&mut self) {
        gauge!(COMMANDS_RUNNING).decrement(1.0);
    }
}

/// Records a command received; it counts as running until the guard drops.
pub fn command_started() -> Running {
    gauge!(COMMANDS_RUNNING).increment(1.0);
    Running(())
}

/// Records a command's end.
pub fn command_done(command_type: &'static str, status: &ResultStatus, took: Duration) {
    let outcome = match status {
        ResultStatus::Completed => "completed",
        ResultStatus::Failed => "failed",
        ResultStatus::Timeout => "timeout",
        ResultStatus::Pending => "pending",
    };
    counter!(COMMANDS, "command_type" => command_type, "outcome" => outcome).increment(1);
    histogram!(COMMAND_DURATION, "command_type" => command_type).record(took.as_secs_f64());
}

/// Records the link going up or down.
pub fn link_connected(up: bool) {
    gauge!(LINK_CONNECTED).set(if up { 1.0 } else { 0.0 });
}

/// Records a dial after the first.
pub fn reconnect() {
    counter!(RECONNECTS).increment(1);
}
