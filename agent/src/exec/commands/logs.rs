//! `logs`, as `kubectl logs` runs it (kubectl `pkg/cmd/logs` and
//! `polymorphichelpers/logsforobject.go`), once or following (`-f`, in a stream).
//!
//! 1. The target is fetched: a pod (`POD`, `pod/NAME`), any other object (`deploy/NAME`,
//!    `sts/NAME`, `job/NAME`, `svc/NAME`, ...) or, with `-l`, the list of matching pods.
//! 2. A workload is turned into its pods through its selector; the pods are sorted with
//!    kubectl's `ByLogging` order (Go's `sort.Sort`) and the first is used, with
//!    `Found N pods, using pod/NAME` on stderr when there are several (`--all-pods`: all).
//! 3. The container is chosen as kubectl does: `-c`, else the `kubectl.kubernetes.io/
//!    default-container` annotation, else the first container (saying so on stderr when the pod
//!    has others); `--all-containers` takes init, regular and ephemeral containers in order.
//! 4. Without `-f`, each log is fetched from `pods/log` once and printed; `--prefix` puts
//!    `[pod/NAME/CONTAINER] ` before each line.
//! 5. With `-f`, each log is read with `follow=true` as the container writes it, all of them at
//!    once (kubectl's `parallelConsumeRequest`; more than `--max-log-requests` is kubectl's
//!    error), their whole lines interleaved as they come; a log whose request fails with an
//!    API error (a container not started yet) is asked for again every second for 20 s, as
//!    kubectl's `consumeWithRetry` does. A log ends when its container stops; the command ends
//!    when every log has.
//!
//! kubectl keeps its log requests in a Go map, so with several pods or containers its order is
//! random; kubeline prints them in a fixed order (pods in the order above, containers in spec
//! order). When a workload has no pods, kubectl waits up to 20 s for one to appear; kubeline
//! answers at once with the error kubectl ends with.

use crate::exec::api::builder;
use crate::exec::api::discovery::{ApiResource, warnings_first};
use crate::exec::api::{self, ApiError, BodyStream};
use crate::exec::sink::{Closed, Sink};
use crate::exec::{Executor, Outcome};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use futures::future::join_all;
use futures::stream::FuturesUnordered;
use kubeline_printers::go::labels;
use kubeline_printers::go::sort as gosort;
use kubeline_shared::command::Logs;
use kubeline_shared::limits::MAX_LOG_REQUESTS;
use serde_json::Value;
use std::time::Duration;
use tokio::sync::mpsc;

/// How long kubectl keeps asking again for a followed log whose request failed
/// (`--pod-running-timeout`'s default, `GetPodTimeout`), and how often.
const FOLLOW_RETRY_FOR: Duration = Duration::from_secs(20);
const FOLLOW_RETRY_EVERY: Duration = Duration::from_secs(1);

/// Pieces followed logs may have ready before the slowest part (the link) takes them.
const FOLLOW_PIECES: usize = 8;

/// Longest unfinished line a followed log keeps waiting for its end. kubectl waits for any
/// line's end; past this a line is handed on in parts (each with the `--prefix`), so a
/// container that never writes a newline cannot grow the agent's memory.
const MAX_LOG_LINE: usize = 256 * 1024;

/// kubectl's `podcmd.DefaultContainerAnnotationName`.
const DEFAULT_CONTAINER_ANNOTATION: &str = "kubectl.kubernetes.io/default-container";

/// One log request: a pod's container.
#[derive(Debug, Clone, PartialEq, Eq)]
struct LogRequest {
    namespace: String,
    pod: String,
    container: String,
}

/// What the target turned out to be.
enum Object {
    Pod(Value),
    PodList(Vec<Value>),
    Other { mapping: ApiResource, object: Value },
}

pub(crate) async fn run(ex: &Executor, cmd: &Logs) -> Outcome {
    let mut sink = Sink::buffer();
    let mut outcome = stream(ex, cmd, &mut sink).await;
    outcome.output = sink.into_text();
    outcome
}

/// `logs` writing what it prints into `sink` as it goes (the outcome's `output` stays empty).
pub(crate) async fn stream(ex: &Executor, cmd: &Logs, sink: &mut Sink) -> Outcome {
    let warnings = match &cmd.target {
        Some(t) => ex.shortcut_warnings(&[t.resource.as_str()]).await,
        None => Vec::new(),
    };
    warnings_first(&warnings, logs(ex, cmd, sink).await)
}

async fn logs(ex: &Executor, cmd: &Logs, sink: &mut Sink) -> Outcome {
    let namespace = cmd
        .namespace
        .clone()
        .unwrap_or_else(|| ex.default_namespace.to_string());
    let mut stderr = String::new();
    let object = match fetch_target(ex, cmd, &namespace, &mut stderr).await {
        Ok(o) => o,
        Err(message) => return fail(stderr, message),
    };
    let requests = match requests_for(ex, cmd, object, &mut stderr).await {
        Ok(r) => r,
        Err(message) => return fail(stderr, message),
    };
    if cmd.follow && requests.len() > 1 && requests.len() as i64 > cmd.max_log_requests {
        return fail(
            stderr,
            format!(
                "error: you are attempting to follow {} log streams, but maximum allowed \
                 concurrency is {}, use --max-log-requests to increase the limit",
                requests.len(),
                cmd.max_log_requests
            ),
        );
    }
    if requests.len() > MAX_LOG_REQUESTS {
        return fail(
            stderr,
            format!(
                "error: logs would read {} containers; kubeline reads at most {MAX_LOG_REQUESTS} \
                 in one command: narrow it with a more specific -l, -c or a pod name",
                requests.len()
            ),
        );
    }
    let ended = if cmd.follow {
        follow(ex, cmd, &requests, sink, &mut stderr).await
    } else {
        print_once(ex, cmd, &requests, sink, &mut stderr).await
    };
    let exit_code = match ended {
        Ok(()) | Err(Ended::Closed) => 0,
        Err(Ended::Failed(line)) => {
            stderr.push_str(&line);
            stderr.push('\n');
            1
        }
    };
    Outcome {
        output: String::new(),
        error: (!stderr.is_empty()).then_some(stderr),
        exit_code,
    }
}

/// Why printing logs stopped early.
enum Ended {
    /// The sink's reader went away (a stream's budget or its cancellation).
    Closed,
    /// A log could not be read: kubectl's error line.
    Failed(String),
}

impl From<Closed> for Ended {
    fn from(_: Closed) -> Self {
        Ended::Closed
    }
}

/// Without `-f`: every log fetched at once, printed in order (kubectl reads them one by one;
/// the output is the same).
async fn print_once(
    ex: &Executor,
    cmd: &Logs,
    requests: &[LogRequest],
    sink: &mut Sink,
    stderr: &mut String,
) -> Result<(), Ended> {
    let bodies = join_all(requests.iter().map(|r| fetch_log(ex, cmd, r))).await;
    for (request, body) in requests.iter().zip(bodies) {
        match body {
            Ok(text) if cmd.prefix => {
                sink.write(&prefixed(&text, &request.pod, &request.container))
                    .await?
            }
            Ok(text) => sink.write(&text).await?,
            Err(e) if cmd.ignore_errors => {
                stderr.push_str(&format!("error: {}\n", e.go_error()));
            }
            Err(e) => return Err(Ended::Failed(e.kubectl_message())),
        }
    }
    Ok(())
}

/// What a followed log hands to the printer.
enum Piece {
    /// Whole lines (prefixed when asked), or a part of a line longer than [`MAX_LOG_LINE`].
    Out(String),
    /// A line for standard error.
    Err(String),
}

/// With `-f`: every log read at once as it grows, whole lines printed as they come.
async fn follow(
    ex: &Executor,
    cmd: &Logs,
    requests: &[LogRequest],
    sink: &mut Sink,
    stderr: &mut String,
) -> Result<(), Ended> {
    let (tx, mut rx) = mpsc::channel::<Piece>(FOLLOW_PIECES);
    let mut readers: FuturesUnordered<_> = requests
        .iter()
        .map(|r| follow_one(ex, cmd, r, tx.clone()))
        .collect();
    drop(tx);
    loop {
        tokio::select! {
            // Print what is ready before looking at how readers ended, so a log's last lines
            // come before the command ends.
            biased;
            piece = rx.recv() => match piece {
                Some(Piece::Out(text)) => sink.write(&text).await?,
                Some(Piece::Err(line)) => stderr.push_str(&line),
                // Every reader has ended and everything they read is printed.
                None => return Ok(()),
            },
            Some(ended) = readers.next(), if !readers.is_empty() => {
                if let Err(line) = ended {
                    // kubectl closes its pipe with the error: the command ends with it.
                    return Err(Ended::Failed(line));
                }
            }
        }
    }
}

/// One followed log, asked for again while it fails with an API error (kubectl's
/// `consumeWithRetry`). `Err` is the line the command ends with.
async fn follow_one(
    ex: &Executor,
    cmd: &Logs,
    r: &LogRequest,
    tx: mpsc::Sender<Piece>,
) -> Result<(), String> {
    let give_up = tokio::time::Instant::now() + FOLLOW_RETRY_FOR;
    loop {
        let e = match read_followed(ex, cmd, r, &tx).await {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        if cmd.ignore_errors {
            let _ = tx
                .send(Piece::Err(format!("error: {}\n", e.go_error())))
                .await;
            return Ok(());
        }
        let _ = tx.send(Piece::Err(format!("{}\n", e.go_error()))).await;
        if !matches!(e, ApiError::Status { .. }) {
            return Err(e.kubectl_message());
        }
        if tokio::time::Instant::now() + FOLLOW_RETRY_EVERY > give_up {
            return Err("error: timed out waiting for the condition".to_string());
        }
        tokio::time::sleep(FOLLOW_RETRY_EVERY).await;
    }
}

/// Reads one log with `follow=true` until it ends, handing on every whole line as soon as it
/// has arrived (a line longer than [`MAX_LOG_LINE`] is handed on in parts, so memory stays
/// bounded whatever a container writes). Ends quietly when nobody reads any more.
async fn read_followed(
    ex: &Executor,
    cmd: &Logs,
    r: &LogRequest,
    tx: &mpsc::Sender<Piece>,
) -> Result<(), ApiError> {
    let mut body = open_log(ex, cmd, r, true).await?;
    let mut pending: Vec<u8> = Vec::new();
    let send = |bytes: Vec<u8>| {
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let text = if cmd.prefix {
            prefixed(&text, &r.pod, &r.container)
        } else {
            text
        };
        tx.send(Piece::Out(text))
    };
    while let Some(bytes) = body.next().await {
        pending.extend_from_slice(&bytes?);
        let whole = match pending.iter().rposition(|b| *b == b'\n') {
            Some(i) => i + 1,
            None if pending.len() >= MAX_LOG_LINE => pending.len(),
            None => continue,
        };
        let rest = pending.split_off(whole);
        let lines = std::mem::replace(&mut pending, rest);
        if send(lines).await.is_err() {
            return Ok(());
        }
    }
    if !pending.is_empty() {
        let _ = send(pending).await;
    }
    Ok(())
}

fn fail(mut stderr: String, message: String) -> Outcome {
    stderr.push_str(&message);
    if !stderr.ends_with('\n') {
        stderr.push('\n');
    }
    Outcome {
        output: String::new(),
        error: Some(stderr),
        exit_code: 1,
    }
}

// === the target ===

async fn fetch_target(
    ex: &Executor,
    cmd: &Logs,
    namespace: &str,
    stderr: &mut String,
) -> Result<Object, String> {
    let Some(target) = &cmd.target else {
        let selector = cmd.selector.as_deref().unwrap_or_default();
        let pods = list_pods(ex, namespace, selector)
            .await
            .map_err(|e| e.kubectl_message())?;
        if pods.is_empty() {
            stderr.push_str(&format!("No resources found in {namespace} namespace.\n"));
        }
        return Ok(Object::PodList(pods));
    };
    let mapping = builder::resolve_one(ex, &target.resource)
        .await
        .map_err(|e| e.message())?;
    if !in_kubectl_scheme(&mapping.group) {
        return Err(format!(
            "error: no kind {:?} is registered for version \"{}\" in scheme \
             \"pkg/runtime/scheme.go:111\"",
            mapping.kind,
            group_version(&mapping)
        ));
    }
    let path = if mapping.namespaced {
        format!(
            "{}/namespaces/{}/{}/{}",
            mapping.path_prefix(),
            api::segment(namespace),
            mapping.resource,
            api::segment(&target.name)
        )
    } else {
        format!(
            "{}/{}/{}",
            mapping.path_prefix(),
            mapping.resource,
            api::segment(&target.name)
        )
    };
    let what = format!("get {} {}", mapping.group_resource(), target.name);
    let object_namespace = mapping.namespaced.then_some(namespace);
    let object = match api::get_object(&ex.client, &path, object_namespace, Some(&what)).await {
        Ok(r) => r.body,
        Err(ApiError::Status {
            reason, message, ..
        }) if reason == "NotFound" => {
            return Err(format!(
                "error: error from server (NotFound): {message} in namespace {namespace:?}"
            ));
        }
        Err(e) => return Err(e.kubectl_message()),
    };
    if mapping.group.is_empty() && mapping.kind == "Pod" {
        return Ok(Object::Pod(object));
    }
    Ok(Object::Other { mapping, object })
}

fn group_version(m: &ApiResource) -> String {
    if m.group.is_empty() {
        m.version.clone()
    } else {
        format!("{}/{}", m.group, m.version)
    }
}

/// Whether kubectl's scheme (client-go's built-in types) knows objects of this group; for
/// others (custom resources, aggregated APIs) kubectl's builder cannot decode the object.
fn in_kubectl_scheme(group: &str) -> bool {
    if matches!(
        group,
        "apiextensions.k8s.io" | "apiregistration.k8s.io" | "metrics.k8s.io"
    ) {
        return false;
    }
    group.is_empty() || !group.contains('.') || group.ends_with(".k8s.io")
}

async fn list_pods(ex: &Executor, namespace: &str, selector: &str) -> Result<Vec<Value>, ApiError> {
    let query = {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        if !selector.is_empty() {
            query.append_pair("labelSelector", selector);
        }
        query.finish()
    };
    let path = format!(
        "/api/v1/namespaces/{}/pods{}{query}",
        api::segment(namespace),
        if query.is_empty() { "" } else { "?" }
    );
    let body = match api::get(&ex.client, &path, api::ACCEPT_JSON, Some("get pods")).await {
        Ok(r) => r.body,
        Err(ApiError::Status {
            code,
            reason,
            message,
        }) if reason == "BadRequest" || reason == "NotFound" => {
            // cli-runtime's builder names the selector it could not use.
            return Err(ApiError::Status {
                code,
                reason,
                message: format!(
                    "Unable to find \"/v1, Resource=pods\" that match label selector \
                     {selector:?}, field selector \"\": {message}"
                ),
            });
        }
        Err(e) => return Err(e),
    };
    Ok(match body {
        Value::Object(mut m) => match m.remove("items") {
            Some(Value::Array(items)) => items,
            _ => Vec::new(),
        },
        _ => Vec::new(),
    })
}

// === from object to log requests (logsForObjectWithClient) ===

async fn requests_for(
    ex: &Executor,
    cmd: &Logs,
    object: Object,
    stderr: &mut String,
) -> Result<Vec<LogRequest>, String> {
    match object {
        Object::Pod(pod) => pod_requests(&pod, cmd, cmd.all_pods, stderr),
        Object::PodList(pods) => {
            let mut out = Vec::new();
            for pod in &pods {
                out.extend(pod_requests(pod, cmd, cmd.all_pods, stderr)?);
            }
            Ok(out)
        }
        Object::Other { mapping, object } => {
            let (namespace, selector) = selector_for(&mapping, &object)?;
            let mut pods = list_pods(ex, &namespace, &selector)
                .await
                .map_err(|e| e.kubectl_message())?;
            if pods.is_empty() {
                return Err("error: timed out waiting for the condition".into());
            }
            gosort::sort(&mut pods, by_logging_less);
            if pods.len() > 1 && cmd.all_pods {
                let mut out = Vec::new();
                for pod in &pods {
                    out.extend(pod_requests(pod, cmd, true, stderr)?);
                }
                return Ok(out);
            }
            if pods.len() > 1 {
                stderr.push_str(&format!(
                    "Found {} pods, using pod/{}\n",
                    pods.len(),
                    name_of(&pods[0])
                ));
            }
            pod_requests(&pods[0], cmd, cmd.all_pods, stderr)
        }
    }
}

fn name_of(v: &Value) -> &str {
    v.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn container_names(pod: &Value, field: &str) -> Vec<String> {
    pod.pointer(&format!("/spec/{field}"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c.get("name").and_then(Value::as_str))
        .map(str::to_string)
        .collect()
}

/// podcmd's `AllContainerNames`: regular, then ephemeral `(ephem)`, then init `(init)`.
fn all_container_names(pod: &Value) -> String {
    let mut names = container_names(pod, "containers");
    names.extend(
        container_names(pod, "ephemeralContainers")
            .into_iter()
            .map(|n| format!("{n} (ephem)")),
    );
    names.extend(
        container_names(pod, "initContainers")
            .into_iter()
            .map(|n| format!("{n} (init)")),
    );
    names.join(", ")
}

fn has_container(pod: &Value, name: &str) -> bool {
    ["containers", "initContainers", "ephemeralContainers"]
        .iter()
        .any(|f| container_names(pod, f).iter().any(|n| n == name))
}

fn pod_requests(
    pod: &Value,
    cmd: &Logs,
    all_pods: bool,
    stderr: &mut String,
) -> Result<Vec<LogRequest>, String> {
    let namespace = pod
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let pod_name = name_of(pod).to_string();
    let request = |container: String| LogRequest {
        namespace: namespace.clone(),
        pod: pod_name.clone(),
        container,
    };
    if cmd.all_containers {
        let mut out = Vec::new();
        for field in ["initContainers", "containers", "ephemeralContainers"] {
            out.extend(container_names(pod, field).into_iter().map(request));
        }
        return Ok(out);
    }
    let mut container = cmd.container.clone();
    if container.is_none() {
        let annotated = pod
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(DEFAULT_CONTAINER_ANNOTATION))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty());
        if let Some(name) = annotated {
            if has_container(pod, name) {
                container = Some(name.to_string());
            } else {
                stderr.push_str(&format!(
                    "Default container name {name:?} not found in pod {pod_name}\n"
                ));
            }
        }
    }
    let container = match container {
        Some(c) => c,
        None => {
            let regular = container_names(pod, "containers");
            let Some(first) = regular.first().cloned() else {
                return Err(format!(
                    "error: pod {namespace}/{pod_name} does not have any containers"
                ));
            };
            let others = regular.len() > 1
                || !container_names(pod, "initContainers").is_empty()
                || !container_names(pod, "ephemeralContainers").is_empty();
            if others && !all_pods {
                stderr.push_str(&format!(
                    "Defaulted container {first:?} out of: {}\n",
                    all_container_names(pod)
                ));
            }
            first
        }
    };
    if !has_container(pod, &container) {
        return Err(format!(
            "error: container {container} is not valid for pod {pod_name} out of: {}",
            all_container_names(pod)
        ));
    }
    Ok(vec![request(container)])
}

/// polymorphichelpers' `SelectorsForObject`: the namespace and label selector of a workload.
fn selector_for(mapping: &ApiResource, object: &Value) -> Result<(String, String), String> {
    let go_type = format!("*{}.{}", mapping.version, mapping.kind);
    let not_implemented = || {
        format!("error: cannot get the logs from {go_type}: selector for {go_type} not implemented")
    };
    let namespace = object
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let selector = match (mapping.group.as_str(), mapping.kind.as_str()) {
        ("apps" | "extensions", "ReplicaSet" | "Deployment" | "StatefulSet" | "DaemonSet")
        | ("batch", "Job") => labels::selector_string(object.pointer("/spec/selector"))
            .map_err(|e| format!("error: invalid label selector: {e}"))?,
        ("", "ReplicationController") => labels::set_string(object.pointer("/spec/selector")),
        ("", "Service") => {
            let sel = object.pointer("/spec/selector");
            if sel.and_then(Value::as_object).is_none_or(|m| m.is_empty()) {
                return Err(format!(
                    "error: cannot get the logs from {go_type}: invalid service '{}': Service is \
                     defined without a selector",
                    name_of(object)
                ));
            }
            labels::set_string(sel)
        }
        _ => return Err(not_implemented()),
    };
    Ok((namespace, selector))
}

// === kubectl's ByLogging order ===

fn time_at(v: &Value, pointer: &str) -> Option<DateTime<Utc>> {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
}

fn ready_condition(pod: &Value) -> Option<&Value> {
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some("Ready"))
}

fn is_ready(pod: &Value) -> bool {
    ready_condition(pod).and_then(|c| c.get("status").and_then(Value::as_str)) == Some("True")
}

fn ready_time(pod: &Value) -> Option<DateTime<Utc>> {
    let c = ready_condition(pod)?;
    if c.get("status").and_then(Value::as_str) != Some("True") {
        return None;
    }
    time_at(c, "/lastTransitionTime")
}

/// podutils' `afterOrZero`: whether t1 is after t2, a zero time counting as after anything.
fn after_or_zero(t1: Option<DateTime<Utc>>, t2: Option<DateTime<Utc>>) -> bool {
    match (t1, t2) {
        (None, _) | (_, None) => t1.is_none(),
        (Some(a), Some(b)) => a > b,
    }
}

/// podutils' `maxContainerRestarts`: regular containers, then restartable init containers.
fn max_restarts(pod: &Value) -> (i64, i64) {
    let restarts = |field: &str| -> Vec<(String, i64)> {
        pod.pointer(&format!("/status/{field}"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|s| {
                (
                    s.get("name")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                    s.get("restartCount").and_then(Value::as_i64).unwrap_or(0),
                )
            })
            .collect()
    };
    let regular = restarts("containerStatuses")
        .into_iter()
        .map(|r| r.1)
        .max()
        .unwrap_or(0)
        .max(0);
    let sidecars: Vec<String> = pod
        .pointer("/spec/initContainers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|c| c.get("restartPolicy").and_then(Value::as_str) == Some("Always"))
        .filter_map(|c| c.get("name").and_then(Value::as_str).map(str::to_string))
        .collect();
    let sidecar = restarts("initContainerStatuses")
        .into_iter()
        .filter(|r| sidecars.contains(&r.0))
        .map(|r| r.1)
        .max()
        .unwrap_or(0)
        .max(0);
    (regular, sidecar)
}

/// podutils' `ByLogging.Less`: the pod whose logs are most worth reading comes first.
fn by_logging_less(a: &Value, b: &Value) -> bool {
    let node = |p: &Value| {
        p.pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let (na, nb) = (node(a), node(b));
    if na != nb && (na.is_empty() || nb.is_empty()) {
        return !na.is_empty();
    }
    // A Go map lookup: phases other than these three rank 0, like Running.
    let rank = |p: &Value| match p.pointer("/status/phase").and_then(Value::as_str) {
        Some("Unknown") => 1,
        Some("Pending") => 2,
        _ => 0,
    };
    if rank(a) != rank(b) {
        return rank(a) < rank(b);
    }
    let (ra, rb) = (is_ready(a), is_ready(b));
    if ra != rb {
        return ra;
    }
    if ra && rb && ready_time(a) != ready_time(b) {
        return after_or_zero(ready_time(b), ready_time(a));
    }
    let (ma, mb) = (max_restarts(a), max_restarts(b));
    if ma.0 != mb.0 {
        return ma.0 > mb.0;
    }
    if ma.1 != mb.1 {
        return ma.1 > mb.1;
    }
    let (ca, cb) = (
        time_at(a, "/metadata/creationTimestamp"),
        time_at(b, "/metadata/creationTimestamp"),
    );
    if ca != cb {
        return after_or_zero(cb, ca);
    }
    false
}

// === fetching and printing ===

/// The `pods/log` path with kubectl's `PodLogOptions` as query parameters.
fn log_path(cmd: &Logs, r: &LogRequest) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    q.append_pair("container", &r.container);
    if cmd.previous {
        q.append_pair("previous", "true");
    }
    if let Some(t) = &cmd.since_time {
        q.append_pair("sinceTime", t);
    }
    if let Some(s) = cmd.since_seconds {
        q.append_pair("sinceSeconds", &s.to_string());
    }
    if cmd.timestamps {
        q.append_pair("timestamps", "true");
    }
    if let Some(t) = cmd.tail_lines {
        q.append_pair("tailLines", &t.to_string());
    }
    if let Some(b) = cmd.limit_bytes {
        q.append_pair("limitBytes", &b.to_string());
    }
    format!(
        "/api/v1/namespaces/{}/pods/{}/log?{}",
        api::segment(&r.namespace),
        api::segment(&r.pod),
        q.finish()
    )
}

/// Opens one log (`follow=true` when following): its body as it arrives.
async fn open_log(
    ex: &Executor,
    cmd: &Logs,
    r: &LogRequest,
    follow: bool,
) -> Result<BodyStream, ApiError> {
    let mut path = log_path(cmd, r);
    if follow {
        path.push_str("&follow=true");
    }
    api::get_stream_with(&ex.client, &path, "*/*", status_error).await
}

async fn fetch_log(ex: &Executor, cmd: &Logs, r: &LogRequest) -> Result<String, ApiError> {
    let mut body = open_log(ex, cmd, r, false).await?;
    let mut text = Vec::new();
    while let Some(bytes) = body.next().await {
        text.extend_from_slice(&bytes?);
    }
    Ok(String::from_utf8_lossy(&text).into_owned())
}

/// client-go's reading of an error response: a `Status` body, or the text as the message.
fn status_error(code: u16, body: &[u8]) -> ApiError {
    match serde_json::from_slice::<Value>(body) {
        Ok(v) if v.get("kind").and_then(Value::as_str) == Some("Status") => ApiError::Status {
            code,
            reason: v
                .get("reason")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            message: v
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
        },
        _ => ApiError::Status {
            code,
            reason: String::new(),
            message: String::from_utf8_lossy(body).trim().to_string(),
        },
    }
}

/// kubectl's `prefixingWriter`: the prefix before every line (and a last partial line).
fn prefixed(text: &str, pod: &str, container: &str) -> String {
    let prefix = format!("[pod/{pod}/{container}] ");
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        out.push_str(&prefix);
        out.push_str(line);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn logs() -> Logs {
        Logs {
            target: None,
            selector: None,
            namespace: None,
            container: None,
            all_containers: false,
            all_pods: false,
            prefix: false,
            previous: false,
            timestamps: false,
            tail_lines: None,
            since_seconds: None,
            since_time: None,
            limit_bytes: None,
            ignore_errors: false,
            follow: false,
            max_log_requests: 5,
        }
    }

    fn pod(name: &str, containers: &[&str], init: &[&str]) -> Value {
        json!({
            "metadata": {"name": name, "namespace": "ns"},
            "spec": {
                "containers": containers.iter().map(|c| json!({"name": c})).collect::<Vec<_>>(),
                "initContainers": init.iter().map(|c| json!({"name": c})).collect::<Vec<_>>(),
            }
        })
    }

    #[test]
    fn containers_are_chosen_like_kubectl() {
        let mut err = String::new();
        let p = pod("p", &["a", "b"], &["i"]);
        let r = pod_requests(&p, &logs(), false, &mut err).unwrap();
        assert_eq!(r[0].container, "a");
        assert_eq!(err, "Defaulted container \"a\" out of: a, b, i (init)\n");

        let mut err = String::new();
        let mut annotated = p.clone();
        annotated["metadata"]["annotations"] = json!({DEFAULT_CONTAINER_ANNOTATION: "b"});
        let r = pod_requests(&annotated, &logs(), false, &mut err).unwrap();
        assert_eq!((r[0].container.as_str(), err.as_str()), ("b", ""));

        let mut err = String::new();
        let all = Logs {
            all_containers: true,
            ..logs()
        };
        let r = pod_requests(&p, &all, false, &mut err).unwrap();
        let names: Vec<&str> = r.iter().map(|r| r.container.as_str()).collect();
        assert_eq!(names, ["i", "a", "b"]);

        let wrong = Logs {
            container: Some("nope".into()),
            ..logs()
        };
        assert_eq!(
            pod_requests(&p, &wrong, false, &mut err).unwrap_err(),
            "error: container nope is not valid for pod p out of: a, b, i (init)"
        );
    }

    #[test]
    fn workloads_give_selectors() {
        let deploy = ApiResource {
            group: "apps".into(),
            version: "v1".into(),
            resource: "deployments".into(),
            kind: "Deployment".into(),
            namespaced: true,
            ..Default::default()
        };
        let obj = json!({"metadata": {"namespace": "x", "name": "d"}, "spec": {"selector": {
            "matchLabels": {"b": "2", "a": "1"},
            "matchExpressions": [{"key": "c", "operator": "In", "values": ["z", "y"]}]}}});
        assert_eq!(
            selector_for(&deploy, &obj).unwrap(),
            ("x".to_string(), "a=1,b=2,c in (y,z)".to_string())
        );
        let cm = ApiResource {
            version: "v1".into(),
            kind: "ConfigMap".into(),
            ..Default::default()
        };
        assert_eq!(
            selector_for(&cm, &obj).unwrap_err(),
            "error: cannot get the logs from *v1.ConfigMap: selector for *v1.ConfigMap not implemented"
        );
        assert!(!in_kubectl_scheme("testbed.kubeline.dev"));
        assert!(!in_kubectl_scheme("metrics.k8s.io"));
        assert!(in_kubectl_scheme("apps") && in_kubectl_scheme(""));
        assert!(in_kubectl_scheme("networking.k8s.io"));
    }

    #[test]
    fn by_logging_prefers_running_ready_old_pods() {
        let p = |name: &str,
                 node: &str,
                 phase: &str,
                 ready: Option<&str>,
                 restarts: i64,
                 created: &str| {
            json!({
                "metadata": {"name": name, "creationTimestamp": created},
                "spec": {"nodeName": node},
                "status": {
                    "phase": phase,
                    "conditions": ready.map(|t| vec![json!({"type": "Ready", "status": "True", "lastTransitionTime": t})]).unwrap_or_default(),
                    "containerStatuses": [{"name": "c", "restartCount": restarts}],
                }
            })
        };
        let mut pods = vec![
            p("unassigned", "", "Pending", None, 0, "2026-01-01T00:00:00Z"),
            p("pending", "n", "Pending", None, 0, "2026-01-01T00:00:00Z"),
            p("not-ready", "n", "Running", None, 5, "2026-01-01T00:00:00Z"),
            p(
                "ready-late",
                "n",
                "Running",
                Some("2026-01-01T00:05:00Z"),
                0,
                "2026-01-01T00:00:00Z",
            ),
            p(
                "ready-early",
                "n",
                "Running",
                Some("2026-01-01T00:01:00Z"),
                0,
                "2026-01-01T00:00:00Z",
            ),
        ];
        gosort::sort(&mut pods, by_logging_less);
        let names: Vec<&str> = pods.iter().map(name_of).collect();
        assert_eq!(
            names,
            [
                "ready-early",
                "ready-late",
                "not-ready",
                "pending",
                "unassigned"
            ]
        );
    }

    #[test]
    fn log_requests_and_prefixes() {
        let cmd = Logs {
            previous: true,
            timestamps: true,
            tail_lines: Some(10),
            since_seconds: Some(60),
            ..logs()
        };
        let r = LogRequest {
            namespace: "ns".into(),
            pod: "p".into(),
            container: "c".into(),
        };
        assert_eq!(
            log_path(&cmd, &r),
            "/api/v1/namespaces/ns/pods/p/log?container=c&previous=true&sinceSeconds=60&timestamps=true&tailLines=10"
        );
        assert_eq!(
            prefixed("a\nb\nc", "p", "c"),
            "[pod/p/c] a\n[pod/p/c] b\n[pod/p/c] c"
        );
        assert_eq!(prefixed("", "p", "c"), "");
        let e = status_error(
            400,
            br#"{"kind":"Status","reason":"BadRequest","message":"previous terminated container \"c\" in pod \"p\" not found"}"#,
        );
        assert_eq!(
            e.kubectl_message(),
            "Error from server (BadRequest): previous terminated container \"c\" in pod \"p\" not found"
        );
    }
}
