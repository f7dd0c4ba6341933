//! Prometheus metrics of the broker, served at `GET /metrics` in the text format (0.0.4).
//!
//! Everything records through the `metrics` facade into one process-wide Prometheus recorder
//! ([`handle`] installs it on first use); `/metrics` renders it. Histograms have fixed buckets
//! ([`SECONDS_BUCKETS`], [`QUEUE_DEPTH_BUCKETS`]) so replicas can be aggregated.
//!
//! **Invariant:** every label value comes from a closed set: route templates (the matched path,
//! never the raw path), HTTP methods and statuses, command types of
//! `kubeline_shared::command::SUPPORTED_COMMANDS` (`other` for anything else), the contract's
//! error codes, and the enums below. No session, result, cluster or key id is ever a label.
//!
//! Queue depth is a histogram of the depth each execute finds at admission (the check against
//! `--max-queue-per-cluster` reads it anyway), not a gauge per cluster: a label per cluster grows
//! with the fleet, and a fleet-wide total would cost a store scan per scrape.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{LazyLock, OnceLock, RwLock};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use kubeline_shared::api::{CommandResult, ResultStatus};
use kubeline_shared::command;
use metrics::{Counter, Histogram, counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::error::ApiResult;
use crate::hub::Hub;

/// Requests answered, by `method`, `route` (template) and `status`.
pub const HTTP_REQUESTS: &str = "kubeline_http_requests_total";
/// Time to answer a request, by `method`, `route` and `status`.
pub const HTTP_DURATION: &str = "kubeline_http_request_duration_seconds";
/// Executes answered, by `command_type` and `outcome`.
pub const EXECUTES: &str = "kubeline_executes_total";
/// End-to-end time of an execute that got a result (queued, run, answered), by `command_type`.
pub const EXECUTE_DURATION: &str = "kubeline_execute_duration_seconds";
/// Depth of its cluster's queue that each execute found when admitted.
pub const QUEUE_DEPTH: &str = "kubeline_execute_queue_depth";
/// Callers of this replica waiting for a result now.
pub const EXECUTES_WAITING: &str = "kubeline_executes_waiting";
/// Agent links this replica holds now.
pub const AGENTS_CONNECTED: &str = "kubeline_agents_connected";
/// Agent link events, by `event` ([`LinkEvent`]).
pub const LINK_EVENTS: &str = "kubeline_agent_link_events_total";
/// Execute limit decisions, by `limit` ([`Limit`]) and `decision` (`allowed`, `refused`).
pub const LIMIT_DECISIONS: &str = "kubeline_limit_decisions_total";
/// Refused credentials, by `reason` ([`AuthFailure`]).
pub const AUTH_FAILURES: &str = "kubeline_auth_failures_total";
/// Time of one store operation, by `operation` and `backend` (`redis`, `memory`).
pub const STORE_DURATION: &str = "kubeline_store_operation_duration_seconds";
/// Always 1, labelled with the broker's `version`.
pub const BUILD_INFO: &str = "kubeline_build_info";
/// Rate limit decisions, by `class` (`session_create`, `execute`, `standard`) and `decision`
/// (`allowed`, `refused`).
pub const RATELIMIT_DECISIONS: &str = "kubeline_ratelimit_decisions_total";
/// Rate limit checks the store failed (`reason` `error`) or did not answer in time (`timeout`),
/// decided by this replica alone.
pub const RATELIMIT_BACKEND_ERRORS: &str = "kubeline_ratelimit_backend_errors_total";

/// Content type of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// Buckets of every `_seconds` histogram: 100 µs (a memory-store operation) to 5 min (the
/// longest execute timeout).
pub const SECONDS_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 60.0, 300.0,
];
/// Buckets of [`QUEUE_DEPTH`], up to past the default `--max-queue-per-cluster` (1024).
pub const QUEUE_DEPTH_BUCKETS: &[f64] = &[
    0.0, 1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0,
];
/// How often histogram samples are folded in when nobody scrapes.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);
/// Route label of a request no route matched (404s).
const UNMATCHED_ROUTE: &str = "unmatched";
/// Label for a command type or method outside the known set.
const OTHER: &str = "other";

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process's recorder, installed globally on first use.
///
/// If another recorder is installed already (an embedding process chose its own), the broker's
/// handle renders only what was recorded through it, which is nothing: say so in the logs.
pub fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
            .and_then(|b| {
                b.set_buckets_for_metric(Matcher::Full(QUEUE_DEPTH.into()), QUEUE_DEPTH_BUCKETS)
            })
            .expect("the bucket lists are not empty")
            .build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("another metrics recorder is installed; /metrics will be empty");
        }
        gauge!(BUILD_INFO, "version" => kubeline_shared::VERSION).set(1.0);
        handle
    })
}

/// Folds histogram samples in periodically, so memory stays bounded when nobody scrapes.
pub async fn upkeep() {
    let mut tick = tokio::time::interval(UPKEEP_INTERVAL);
    loop {
        tick.tick().await;
        handle().run_upkeep();
    }
}

/// The text exposition, with the gauges read from the hub at scrape time.
pub fn render(hub: &Hub) -> String {
    gauge!(AGENTS_CONNECTED).set(hub.link_count() as f64);
    gauge!(EXECUTES_WAITING).set(hub.waiting() as f64);
    handle().render()
}

/// Middleware: counts and times every request by its route template.
pub async fn track_http(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(req.method());
    let route = req.extensions().get::<MatchedPath>().cloned();
    let res = next.run(req).await;
    let route = route.as_ref().map_or(UNMATCHED_ROUTE, MatchedPath::as_str);
    let (count, duration) = http_handles(method, route, res.status().as_u16());
    count.increment(1);
    duration.record(started.elapsed().as_secs_f64());
    res
}

/// Handles of one labelled metric, registered with the recorder once per label set.
///
/// The `counter!`/`histogram!` macros build a key (a vector of labels) and look it up in the
/// recorder on every call: about 45 allocations and as many hashed lookups an execute paid for
/// it. Label sets come from closed sets (the module's invariant), so the map stays small.
struct Handles<K, H>(LazyLock<RwLock<HashMap<K, H>>>);

impl<K: Eq + Hash, H: Clone> Handles<K, H> {
    const fn new() -> Self {
        Self(LazyLock::new(Default::default))
    }

    fn get(&self, key: K, register: impl FnOnce() -> H) -> H {
        if let Some(found) = self.0.read().unwrap_or_else(|e| e.into_inner()).get(&key) {
            return found.clone();
        }
        // The global recorder is installed before the first handle is taken from it.
        handle();
        let mut map = self.0.write().unwrap_or_else(|e| e.into_inner());
        map.entry(key).or_insert_with(register).clone()
    }
}

/// [`HTTP_REQUESTS`] and [`HTTP_DURATION`] of one route, by method and status (the route is
/// looked up by `&str`, so a known route costs no allocation).
fn http_handles(method: &'static str, route: &str, status: u16) -> (Counter, Histogram) {
    type ByRoute = HashMap<String, HashMap<(&'static str, u16), (Counter, Histogram)>>;
    static HTTP: LazyLock<RwLock<ByRoute>> = LazyLock::new(Default::default);
    if let Some(found) = HTTP
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .get(route)
        .and_then(|by| by.get(&(method, status)))
    {
        return found.clone();
    }
    handle();
    let mut map = HTTP.write().unwrap_or_else(|e| e.into_inner());
    map.entry(route.to_owned())
        .or_default()
        .entry((method, status))
        .or_insert_with(|| {
            let labels = [
                ("method", method.to_owned()),
                ("route", route.to_owned()),
                ("status", status.to_string()),
            ];
            (
                counter!(HTTP_REQUESTS, &labels),
                histogram!(HTTP_DURATION, &labels),
            )
        })
        .clone()
}

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::DELETE => "DELETE",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => OTHER,
    }
}

/// The label of a command type: itself when the broker knows it, `other` otherwise.
pub fn command_label(command_type: Option<&str>) -> &'static str {
    command_type.and_then(command::supported).unwrap_or(OTHER)
}

/// Records how an execute ended: its result's status, or the error code it was refused with.
pub fn executed(command_type: &'static str, answer: &ApiResult<CommandResult>, took: Duration) {
    let outcome = match answer {
        Ok(result) => {
            static DURATION: Handles<&'static str, Histogram> = Handles::new();
            DURATION
                .get(
                    command_type,
                    || histogram!(EXECUTE_DURATION, "command_type" => command_type),
                )
                .record(took.as_secs_f64());
            match result.status {
                ResultStatus::Completed => "completed",
                // A failure without an exit code never ran to an end: its link was lost.
                ResultStatus::Failed if result.exit_code.is_none() => "agent_lost",
                ResultStatus::Failed => "failed",
                ResultStatus::Timeout => "timeout",
                ResultStatus::Pending => "pending",
            }
        }
        Err(e) => e.body().error.as_str(),
    };
    static COUNT: Handles<(&'static str, &'static str), Counter> = Handles::new();
    COUNT
        .get(
            (command_type, outcome),
            || counter!(EXECUTES, "command_type" => command_type, "outcome" => outcome),
        )
        .increment(1);
}

/// Records the queue depth an execute found.
pub fn queue_depth(depth: u64) {
    histogram!(QUEUE_DEPTH).record(depth as f64);
}

/// The execute limits of `crate::limits` and `routes::check_queue`.
#[derive(Debug, Clone, Copy)]
pub enum Limit {
    /// In flight per API key (429).
    PerKey,
    /// In flight per cluster (429).
    PerCluster,
    /// Queue length per cluster (503).
    Queue,
}

/// Records one limit decision.
pub fn limit_decision(limit: Limit, allowed: bool) {
    let limit = match limit {
        Limit::PerKey => "per_key",
        Limit::PerCluster => "per_cluster",
        Limit::Queue => "queue",
    };
    let decision = if allowed { "allowed" } else { "refused" };
    static COUNT: Handles<(&'static str, &'static str), Counter> = Handles::new();
    COUNT
        .get(
            (limit, decision),
            || counter!(LIMIT_DECISIONS, "limit" => limit, "decision" => decision),
        )
        .increment(1);
}

/// Why credentials were refused.
#[derive(Debug, Clone, Copy)]
pub enum AuthFailure {
    /// No credentials (no bearer token, no cluster header on the link).
    Missing,
    /// An API key the broker does not know.
    InvalidApiKey,
    /// A wrong agent token for the named cluster.
    InvalidAgentToken,
    /// An API key or agent token that was revoked.
    Revoked,
    /// An API key or agent token past its expiry.
    Expired,
    /// A JWT that failed a check (signature, issuer, audience, time, key id).
    InvalidJwt,
    /// A known credential without the scope or cluster the route needs (403).
    Forbidden,
}

/// Records a refused credential.
pub fn auth_failure(reason: AuthFailure) {
    let reason = match reason {
        AuthFailure::Missing => "missing",
        AuthFailure::InvalidApiKey => "invalid_api_key",
        AuthFailure::InvalidAgentToken => "invalid_agent_token",
        AuthFailure::Revoked => "revoked",
        AuthFailure::Expired => "expired",
        AuthFailure::InvalidJwt => "invalid_jwt",
        AuthFailure::Forbidden => "forbidden",
    };
    counter!(AUTH_FAILURES, "reason" => reason).increment(1);
}

/// What happened to an agent link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkEvent {
    /// An agent linked (hello accepted, presence recorded).
    Connect,
    /// The link ended: the agent closed it, an I/O error, or the broker shutting down.
    Disconnect,
    /// A newer link of the same cluster replaced it.
    Replaced,
    /// The agent went silent past the link timeout.
    Timeout,
    /// Closed because its agent token was revoked or ended (close code 4001).
    Revoked,
    /// Not admitted yet: over the replica's link admission rate, told when to come back.
    Paced,
    /// Closed for a frame outside the protocol (close code 1002) or over the frame limit (1009).
    BadFrame,
}

/// Records a link event.
pub fn link_event(event: LinkEvent) {
    let event = match event {
        LinkEvent::Connect => "connect",
        LinkEvent::Disconnect => "disconnect",
        LinkEvent::Replaced => "replaced",
        LinkEvent::Timeout => "timeout",
        LinkEvent::Revoked => "revoked",
        LinkEvent::Paced => "paced",
        LinkEvent::BadFrame => "bad_frame",
    };
    counter!(LINK_EVENTS, "event" => event).increment(1);
}

/// Records the time of a store operation.
pub fn store_operation(operation: &'static str, backend: &'static str, took: Duration) {
    static DURATION: Handles<(&'static str, &'static str), Histogram> = Handles::new();
    DURATION
        .get(
            (operation, backend),
            || histogram!(STORE_DURATION, "operation" => operation, "backend" => backend),
        )
        .record(took.as_secs_f64());
}

/// Loads of the JWT issuer's signing keys, by `outcome` ([`JwksRefresh`]).
pub const JWKS_REFRESHES: &str = "kubeline_jwks_refresh_total";

/// How a load of the JWT signing keys (`crate::jwt`) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwksRefresh {
    /// A key set was loaded and installed.
    Success,
    /// Fetching or parsing failed; the keys held before stay.
    Failure,
    /// A load asked for by an unknown `kid` came too soon after the last such load.
    Throttled,
}

/// Records a load of the JWT signing keys.
pub fn jwks_refresh(outcome: JwksRefresh) {
    let outcome = match outcome {
        JwksRefresh::Success => "success",
        JwksRefresh::Failure => "failure",
        JwksRefresh::Throttled => "throttled",
    };
    counter!(JWKS_REFRESHES, "outcome" => outcome).increment(1);
}

/// Records one rate limit decision.
pub fn ratelimit_decision(class: crate::ratelimit::Class, allowed: bool) {
    let decision = if allowed { "allowed" } else { "refused" };
    let class = class.as_str();
    static COUNT: Handles<(&'static str, &'static str), Counter> = Handles::new();
    COUNT
        .get(
            (class, decision),
            || counter!(RATELIMIT_DECISIONS, "class" => class, "decision" => decision),
        )
        .increment(1);
}

/// Records a rate limit check the store could not decide.
pub fn ratelimit_backend_error(timed_out: bool) {
    let reason = if timed_out { "timeout" } else { "error" };
    counter!(RATELIMIT_BACKEND_ERRORS, "reason" => reason).increment(1);
}

/// Webhook events this replica queued, by `type` (the four event types).
pub const WEBHOOK_EVENTS: &str = "kubeline_webhook_events_total";
/// Webhook delivery attempts this replica made, by `outcome` ([`WebhookAttempt`]).
pub const WEBHOOK_ATTEMPTS: &str = "kubeline_webhook_attempts_total";
/// Time of a webhook delivery attempt, from sending to the answer or the failure.
pub const WEBHOOK_ATTEMPT_DURATION: &str = "kubeline_webhook_attempt_duration_seconds";
/// Webhook deliveries that ended, by `outcome` (`delivered`, `failed`), and events not queued
/// for an endpoint that had too many pending (`dropped`).
pub const WEBHOOK_DELIVERIES: &str = "kubeline_webhook_deliveries_total";

/// How one webhook delivery attempt went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookAttempt {
    /// The endpoint answered 2xx.
    Delivered,
    /// It answered another status (410 excepted).
    HttpError,
    /// It answered 410 Gone (the endpoint is disabled).
    Gone,
    /// No answer: connection refused or reset, TLS, a refused address.
    NetworkError,
    /// No answer within the attempt's timeout.
    Timeout,
}

/// Records a webhook event queued for its endpoints.
pub fn webhook_event(event_type: kubeline_shared::webhooks::EventType) {
    counter!(WEBHOOK_EVENTS, "type" => event_type.as_str()).increment(1);
}

/// Records a webhook delivery attempt.
pub fn webhook_attempt(outcome: WebhookAttempt, took: Duration) {
    let outcome = match outcome {
        WebhookAttempt::Delivered => "delivered",
        WebhookAttempt::HttpError => "http_error",
        WebhookAttempt::Gone => "gone",
        WebhookAttempt::NetworkError => "network_error",
        WebhookAttempt::Timeout => "timeout",
    };
    counter!(WEBHOOK_ATTEMPTS, "outcome" => outcome).increment(1);
    histogram!(WEBHOOK_ATTEMPT_DURATION).record(took.as_secs_f64());
}

/// Commands a waiting caller found lost by the store and queued again (`outcome` `requeued`),
/// or found finished without their answer reaching it (`outcome` `read_from_store`; also a
/// command that finished just as its caller looked, its answer still on the way).
pub const COMMANDS_RECOVERED: &str = "kubeline_commands_recovered_total";

/// What a waiting caller did about its command ([`COMMANDS_RECOVERED`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovered {
    /// Neither queued nor finished: queued again.
    Requeued,
    /// Finished, but the answer never came: read from the store.
    ReadFromStore,
}

/// Records a command a waiting caller recovered.
pub fn command_recovered(how: Recovered) {
    let outcome = match how {
        Recovered::Requeued => "requeued",
        Recovered::ReadFromStore => "read_from_store",
    };
    counter!(COMMANDS_RECOVERED, "outcome" => outcome).increment(1);
}

/// Results the embedded store forgot before their time to stay within
/// `--embedded-results-max-bytes`.
pub const RESULTS_EVICTED: &str = "kubeline_store_results_evicted_total";

/// Records a result the embedded store forgot early for room.
pub fn result_evicted() {
    counter!(RESULTS_EVICTED).increment(1);
}

/// Records webhook deliveries that ended (`delivered`, `failed`) or were not queued
/// (`dropped`).
pub fn webhook_deliveries(outcome: &'static str, n: u64) {
    counter!(WEBHOOK_DELIVERIES, "outcome" => outcome).increment(n);
}
