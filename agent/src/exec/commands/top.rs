//! `top nodes|pods`, as `kubectl top` runs it (kubectl `pkg/cmd/top` and `pkg/metricsutil`).
//!
//! - The `metrics.k8s.io/v1beta1` API must be served (checked through discovery), else
//!   `error: Metrics API not available`, as kubectl says.
//! - `top node`: node metrics, then the nodes themselves for the percentages (of allocatable, or
//!   capacity with `--show-capacity`). Nodes without metrics follow as `<unknown>` rows.
//! - `top pod`: pod metrics summed over containers (or one row per container); with no metrics
//!   kubectl's `verifyEmptyMetrics` decides between "No resources found" and an error.
//! - Rows are sorted with Go's `sort.Sort` (by name, or highest `--sort-by` first) and printed
//!   through kubectl's tab writer; every line ends in a tab, as kubectl's do.
//!
//! Quantities are kept exactly, in nano-units, so CPU prints as `MilliValue()` and memory as
//! `Value() / 2^20` with the same rounding as apimachinery's `resource.Quantity`.

use crate::exec::api::{self, ApiError};
use crate::exec::{Executor, Outcome};
use chrono::{DateTime, Utc};
use kubeline_printers::go::sort as gosort;
use kubeline_printers::go::tabwriter::TabWriter;
use kubeline_shared::command::{Top, TopKind, TopSort};
use serde_json::Value;
use std::collections::BTreeMap;

const METRICS_GROUP: &str = "metrics.k8s.io";
const METRICS_VERSION: &str = "v1beta1";

/// kubectl's `metricsCreationDelay`.
const METRICS_CREATION_DELAY_SECS: i64 = 120;

pub(crate) async fn run(ex: &Executor, cmd: &Top) -> Outcome {
    let available = match ex.discovery(false).await {
        Ok(d) => metrics_api_served(&d),
        Err(e) => return Outcome::failed(e.kubectl_message()),
    };
    if !available {
        // The API may have been registered a moment ago.
        match ex.discovery(true).await {
            Ok(d) if metrics_api_served(&d) => {}
            Ok(_) => return Outcome::failed("error: Metrics API not available".into()),
            Err(e) => return Outcome::failed(e.kubectl_message()),
        }
    }
    let result = match cmd.kind {
        TopKind::Nodes => nodes(ex, cmd).await,
        TopKind::Pods => pods(ex, cmd).await,
    };
    result.unwrap_or_else(Outcome::failed)
}

fn metrics_api_served(d: &crate::exec::api::discovery::Discovery) -> bool {
    d.resolve("nodes.v1beta1.metrics.k8s.io")
        .is_ok_and(|r| r.group == METRICS_GROUP && r.version == METRICS_VERSION)
        || d.resolve("pods.v1beta1.metrics.k8s.io")
            .is_ok_and(|r| r.group == METRICS_GROUP && r.version == METRICS_VERSION)
}

fn query(pairs: &[(&str, Option<&str>)]) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    let mut any = false;
    for (k, v) in pairs {
        if let Some(v) = v {
            q.append_pair(k, v);
            any = true;
        }
    }
    if any {
        format!("?{}", q.finish())
    } else {
        String::new()
    }
}

async fn get_json(ex: &Executor, path: &str, what: &str) -> Result<Value, String> {
    let label_selector = path.contains("labelSelector=");
    api::get(&ex.client, path, api::ACCEPT_JSON, Some(what))
        .await
        .map(|r| r.body)
        .map_err(|e: ApiError| match e {
            ApiError::Status {
                reason, message, ..
            } if reason == "BadRequest" && selector_parse_error(&message, label_selector) => {
                format!("error: {message}")
            }
            e => e.kubectl_message(),
        })
}

/// Whether the server refused a selector that kubectl top would not have sent: it parses `-l`
/// (`labels.Parse`) and `--field-selector` (`fields.ParseSelector`) itself and fails with the
/// parser's words, which are the words the server uses. A field the server does not support
/// (`"foo" is not a known field selector`) is only found by the server, as with kubectl.
fn selector_parse_error(message: &str, label_selector: bool) -> bool {
    message.starts_with("invalid selector: '")
        || message.starts_with("invalid field selector: ")
        || (label_selector
            && !message.contains("field selector")
            && !message.contains("field label"))
}

fn items(list: Value) -> Vec<Value> {
    match list {
        Value::Object(mut m) => match m.remove("items") {
            Some(Value::Array(items)) => items,
            _ => Vec::new(),
        },
        _ => Vec::new(),
    }
}

fn name_of(v: &Value) -> &str {
    v.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn namespace_of(v: &Value) -> &str {
    v.pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

// === nodes ===

async fn nodes(ex: &Executor, cmd: &Top) -> Result<Outcome, String> {
    let base = format!("/apis/{METRICS_GROUP}/{METRICS_VERSION}/nodes");
    let metrics = match &cmd.name {
        Some(n) => vec![
            get_json(
                ex,
                &format!("{base}/{}", api::segment(n)),
                "get nodes.metrics.k8s.io",
            )
            .await?,
        ],
        None => items(
            get_json(
                ex,
                &format!(
                    "{base}{}",
                    query(&[("labelSelector", cmd.selector.as_deref())])
                ),
                "get nodes.metrics.k8s.io",
            )
            .await?,
        ),
    };
    if metrics.is_empty() {
        return Err("error: metrics not available yet".into());
    }
    let nodes = match &cmd.name {
        Some(n) => vec![
            get_json(
                ex,
                &format!("/api/v1/nodes/{}", api::segment(n)),
                "get nodes",
            )
            .await?,
        ],
        None => items(
            get_json(
                ex,
                &format!(
                    "/api/v1/nodes{}",
                    query(&[("labelSelector", cmd.selector.as_deref())])
                ),
                "get nodes",
            )
            .await?,
        ),
    };
    let field = if cmd.show_capacity {
        "/status/capacity"
    } else {
        "/status/allocatable"
    };
    let mut available: BTreeMap<String, Usage> = nodes
        .iter()
        .map(|n| {
            let list = n.pointer(field);
            (name_of(n).to_string(), Usage::from_list(list))
        })
        .collect();
    Ok(Outcome {
        output: print_nodes(&metrics, &mut available, cmd),
        error: None,
        exit_code: 0,
    })
}

fn print_nodes(metrics: &[Value], available: &mut BTreeMap<String, Usage>, cmd: &Top) -> String {
    let mut rows: Vec<(String, Usage)> = metrics
        .iter()
        .map(|m| (name_of(m).to_string(), Usage::from_list(m.get("usage"))))
        .collect();
    match cmd.sort_by {
        Some(TopSort::Cpu) => gosort::sort(&mut rows, |a, b| a.1.cpu_milli() > b.1.cpu_milli()),
        Some(TopSort::Memory) => gosort::sort(&mut rows, |a, b| a.1.memory() > b.1.memory()),
        None => gosort::sort(&mut rows, |a, b| a.0 < b.0),
    }
    let mut w = TabWriter::new();
    if !cmd.no_headers {
        w.write("NAME\tCPU(cores)\tCPU(%)\tMEMORY(bytes)\tMEMORY(%)\t\n");
    }
    for (name, usage) in &rows {
        let avail = available.remove(name);
        w.write(&format!("{name}\t"));
        w.write(&usage_cells(usage, avail.as_ref()));
        w.write("\n");
    }
    // kubectl walks a Go map here (random order); kubeline prints them by name.
    for name in available.keys() {
        w.write(&format!(
            "{name}\t<unknown>\t<unknown>\t<unknown>\t<unknown>\t\n"
        ));
    }
    w.flush();
    w.take_output()
}

/// `printAllResourceUsages` for CPU and memory.
fn usage_cells(usage: &Usage, available: Option<&Usage>) -> String {
    let mut out = String::new();
    out.push_str(&format!("{}m\t", usage.cpu_milli()));
    if let Some(a) = available.filter(|a| a.cpu.is_some()) {
        out.push_str(&format!("{}%\t", percent(usage.cpu_milli(), a.cpu_milli())));
    }
    out.push_str(&format!("{}Mi\t", usage.memory() / (1024 * 1024)));
    if let Some(a) = available.filter(|a| a.memory.is_some()) {
        out.push_str(&format!(
            "{}%\t",
            percent(usage.memory_milli(), a.memory_milli())
        ));
    }
    out
}

fn percent(used_milli: i128, available_milli: i128) -> i64 {
    if available_milli == 0 {
        return 0;
    }
    (used_milli as f64 / available_milli as f64 * 100.0) as i64
}

// === pods ===

async fn pods(ex: &Executor, cmd: &Top) -> Result<Outcome, String> {
    let namespace = cmd
        .namespace
        .clone()
        .unwrap_or_else(|| ex.default_namespace.to_string());
    let base = if cmd.all_namespaces && cmd.name.is_none() {
        format!("/apis/{METRICS_GROUP}/{METRICS_VERSION}/pods")
    } else if cmd.all_namespaces {
        // kubectl asks for a named pod's metrics in "all namespaces", which the server answers
        // with the cluster-wide path; kubeline does the same.
        format!("/apis/{METRICS_GROUP}/{METRICS_VERSION}/pods")
    } else {
        format!(
            "/apis/{METRICS_GROUP}/{METRICS_VERSION}/namespaces/{}/pods",
            api::segment(&namespace)
        )
    };
    let selectors = query(&[
        ("labelSelector", cmd.selector.as_deref()),
        ("fieldSelector", cmd.field_selector.as_deref()),
    ]);
    let metrics = match &cmd.name {
        Some(n) => vec![
            get_json(
                ex,
                &format!("{base}/{}", api::segment(n)),
                "get pods.metrics.k8s.io",
            )
            .await?,
        ],
        None => {
            items(get_json(ex, &format!("{base}{selectors}"), "get pods.metrics.k8s.io").await?)
        }
    };
    let mut stderr = String::new();
    if metrics.is_empty() {
        verify_empty_metrics(ex, cmd, &namespace, &selectors).await?;
        if cmd.all_namespaces {
            stderr.push_str("No resources found\n");
        } else {
            stderr.push_str(&format!("No resources found in {namespace} namespace.\n"));
        }
    }
    Ok(Outcome {
        output: print_pods(metrics, cmd),
        error: (!stderr.is_empty()).then_some(stderr),
        exit_code: 0,
    })
}

/// kubectl's `verifyEmptyMetrics`: fine when there are no pods at all; an error naming a pod
/// old enough to have metrics; else "metrics not available yet". Like kubectl, it looks in the
/// namespace even with `-A`.
async fn verify_empty_metrics(
    ex: &Executor,
    cmd: &Top,
    namespace: &str,
    selectors: &str,
) -> Result<(), String> {
    let base = format!("/api/v1/namespaces/{}/pods", api::segment(namespace));
    let now = Utc::now();
    match &cmd.name {
        Some(n) => {
            let pod = get_json(ex, &format!("{base}/{}", api::segment(n)), "get pods").await?;
            check_pod_age(&pod, now)?;
        }
        None => {
            let pods = items(get_json(ex, &format!("{base}{selectors}"), "get pods").await?);
            if pods.is_empty() {
                return Ok(());
            }
            for pod in &pods {
                check_pod_age(pod, now)?;
            }
        }
    }
    Err("error: metrics not available yet".into())
}

fn check_pod_age(pod: &Value, now: DateTime<Utc>) -> Result<(), String> {
    let created = pod
        .pointer("/metadata/creationTimestamp")
        .and_then(Value::as_str)
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc));
    let age = match created {
        Some(c) => now.signed_duration_since(c),
        None => now.signed_duration_since(DateTime::<Utc>::MIN_UTC),
    };
    if age.num_seconds() > METRICS_CREATION_DELAY_SECS {
        return Err(format!(
            "error: Metrics not available for pod {}/{}, age: {}",
            namespace_of(pod),
            name_of(pod),
            go_duration(age)
        ));
    }
    Ok(())
}

struct PodRow {
    namespace: String,
    name: String,
    total: Usage,
    containers: Vec<(String, Usage)>,
}

fn print_pods(metrics: Vec<Value>, cmd: &Top) -> String {
    if metrics.is_empty() {
        return String::new();
    }
    let with_namespace = cmd.all_namespaces;
    let mut rows: Vec<PodRow> = metrics
        .iter()
        .map(|m| {
            let containers: Vec<(String, Usage)> = m
                .get("containers")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|c| {
                    (
                        c.get("name")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_string(),
                        Usage::from_list(c.get("usage")),
                    )
                })
                .collect();
            let mut total = Usage::zero();
            for (_, u) in &containers {
                total.add(u);
            }
            PodRow {
                namespace: namespace_of(m).to_string(),
                name: name_of(m).to_string(),
                total,
                containers,
            }
        })
        .collect();
    let mut w = TabWriter::new();
    let mut column_width: usize = 3;
    if !cmd.no_headers {
        if with_namespace {
            w.write("NAMESPACE\t");
            column_width += 1;
        }
        if cmd.containers {
            w.write("POD\t");
            column_width += 1;
        }
        w.write("NAME\tCPU(cores)\tMEMORY(bytes)\t\n");
    }
    match cmd.sort_by {
        Some(TopSort::Cpu) => {
            gosort::sort(&mut rows, |a, b| a.total.cpu_milli() > b.total.cpu_milli())
        }
        Some(TopSort::Memory) => {
            gosort::sort(&mut rows, |a, b| a.total.memory() > b.total.memory())
        }
        None => gosort::sort(&mut rows, |a, b| {
            if with_namespace && a.namespace != b.namespace {
                return a.namespace < b.namespace;
            }
            a.name < b.name
        }),
    }
    for row in &mut rows {
        if cmd.containers {
            match cmd.sort_by {
                Some(TopSort::Cpu) => gosort::sort(&mut row.containers, |a, b| {
                    a.1.cpu_milli() > b.1.cpu_milli()
                }),
                Some(TopSort::Memory) => {
                    gosort::sort(&mut row.containers, |a, b| a.1.memory() > b.1.memory())
                }
                None => gosort::sort(&mut row.containers, |a, b| a.0 < b.0),
            }
            for (name, usage) in &row.containers {
                if with_namespace {
                    w.write(&format!("{}\t", row.namespace));
                }
                w.write(&format!("{}\t{name}\t", row.name));
                w.write(&usage_cells(usage, None));
                w.write("\n");
            }
        } else {
            if with_namespace {
                w.write(&format!("{}\t", row.namespace));
            }
            w.write(&format!("{}\t", row.name));
            w.write(&usage_cells(&row.total, None));
            w.write("\n");
        }
    }
    if cmd.sum {
        let mut total = Usage::zero();
        for row in &rows {
            total.add(&row.total);
        }
        for _ in 0..column_width.saturating_sub(2) {
            w.write("\t");
        }
        w.write("________\t________\t\n");
        for _ in 0..column_width.saturating_sub(3) {
            w.write("\t");
        }
        w.write("\t");
        w.write(&usage_cells(&total, None));
        w.write("\n");
    }
    w.flush();
    w.take_output()
}

// === quantities ===

/// CPU and memory of a `ResourceList`, in nano-units (`None` when the list lacks them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Usage {
    cpu: Option<i128>,
    memory: Option<i128>,
}

impl Usage {
    fn zero() -> Self {
        Usage {
            cpu: Some(0),
            memory: Some(0),
        }
    }

    fn from_list(list: Option<&Value>) -> Self {
        let q = |k: &str| {
            list.and_then(|l| l.get(k))
                .and_then(Value::as_str)
                .and_then(parse_quantity)
        };
        Usage {
            cpu: q("cpu"),
            memory: q("memory"),
        }
    }

    fn add(&mut self, other: &Usage) {
        self.cpu = Some(self.cpu.unwrap_or(0) + other.cpu.unwrap_or(0));
        self.memory = Some(self.memory.unwrap_or(0) + other.memory.unwrap_or(0));
    }

    fn cpu_milli(&self) -> i128 {
        ceil_div(self.cpu.unwrap_or(0), 1_000_000)
    }

    fn memory(&self) -> i128 {
        ceil_div(self.memory.unwrap_or(0), 1_000_000_000)
    }

    fn memory_milli(&self) -> i128 {
        ceil_div(self.memory.unwrap_or(0), 1_000_000)
    }
}

/// Division rounding up (towards positive infinity), as `Quantity.Value()` rounds.
fn ceil_div(a: i128, b: i128) -> i128 {
    let q = a / b;
    if a % b > 0 { q + 1 } else { q }
}

/// A `resource.Quantity` string in nano-units, rounded up below a nano-unit as apimachinery
/// rounds. `None` for text that is not a quantity.
fn parse_quantity(s: &str) -> Option<i128> {
    let s = s.trim();
    let (negative, body) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let number_len = body
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(body.len());
    let (number, suffix) = body.split_at(number_len);
    let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
    if int_part.is_empty() && frac_part.is_empty() {
        return None;
    }
    let digits = format!("{int_part}{frac_part}");
    let mantissa: i128 = digits.trim_start_matches('0').parse().unwrap_or(0);
    if digits.len() > 30 {
        return None;
    }
    // value = mantissa * 10^(-frac) * suffix; in nano-units: * 10^9.
    let (ten_exp, two_exp): (i32, u32) = match suffix {
        "" => (0, 0),
        "n" => (-9, 0),
        "u" => (-6, 0),
        "m" => (-3, 0),
        "k" => (3, 0),
        "M" => (6, 0),
        "G" => (9, 0),
        "T" => (12, 0),
        "P" => (15, 0),
        "E" => (18, 0),
        "Ki" => (0, 10),
        "Mi" => (0, 20),
        "Gi" => (0, 30),
        "Ti" => (0, 40),
        "Pi" => (0, 50),
        "Ei" => (0, 60),
        e if e.starts_with(['e', 'E']) => (e[1..].parse().ok()?, 0),
        _ => return None,
    };
    let exp = ten_exp + 9 - frac_part.len() as i32;
    let mut value = mantissa.checked_mul(1i128.checked_shl(two_exp)?)?;
    if exp >= 0 {
        value = value.checked_mul(10i128.checked_pow(exp as u32)?)?;
    } else {
        let d = 10i128.checked_pow((-exp) as u32)?;
        value = ceil_div(value, d);
    }
    Some(if negative { -value } else { value })
}

/// Go's `time.Duration.String` (`15m3.123456789s`, `2h0m0s`, `1.5s`, `0s`).
fn go_duration(d: chrono::TimeDelta) -> String {
    let mut nanos = d.num_nanoseconds().unwrap_or(i64::MAX) as i128;
    if nanos == 0 {
        return "0s".into();
    }
    let negative = nanos < 0;
    nanos = nanos.abs();
    let sign = if negative { "-" } else { "" };
    if nanos < 1_000_000_000 {
        let (unit, div) = if nanos < 1_000 {
            ("ns", 1)
        } else if nanos < 1_000_000 {
            ("µs", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        return format!("{sign}{}{unit}", fraction(nanos, div));
    }
    let hours = nanos / 3_600_000_000_000;
    let minutes = (nanos / 60_000_000_000) % 60;
    let secs = fraction(nanos % 60_000_000_000, 1_000_000_000);
    if hours > 0 {
        format!("{sign}{hours}h{minutes}m{secs}s")
    } else if minutes > 0 {
        format!("{sign}{minutes}m{secs}s")
    } else {
        format!("{sign}{secs}s")
    }
}

/// `n / div` with the fraction's trailing zeros dropped (`1.5`, `3`).
fn fraction(n: i128, div: i128) -> String {
    let whole = n / div;
    let rest = n % div;
    if rest == 0 {
        return whole.to_string();
    }
    let width = (div as f64).log10().round() as usize;
    let frac = format!("{rest:0width$}");
    format!("{whole}.{}", frac.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn top(kind: TopKind) -> Top {
        Top {
            kind,
            name: None,
            namespace: None,
            all_namespaces: false,
            selector: None,
            field_selector: None,
            sort_by: None,
            containers: false,
            no_headers: false,
            sum: false,
            show_capacity: false,
        }
    }

    /// A canned API server on loopback: `/api` and `/apis` answer legacy discovery (the
    /// `apis` groups given), `/api/v1` lists nodes, anything else is a plain-text 404 (what an
    /// API server says for a group it does not serve).
    async fn canned_server(groups: Value, group_lists: Vec<(String, Value)>) -> Executor {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    return;
                };
                let groups = groups.clone();
                let group_lists = group_lists.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 8192];
                    let n = sock.read(&mut buf).await.unwrap_or(0);
                    let request = String::from_utf8_lossy(&buf[..n]).to_string();
                    let path = request.split_whitespace().nth(1).unwrap_or("/").to_string();
                    let path = path.split('?').next().unwrap_or("/").to_string();
                    let body = match path.as_str() {
                        "/api" => Some(json!({"kind": "APIVersions", "versions": ["v1"]})),
                        "/apis" => Some(groups),
                        "/api/v1" => Some(json!({"kind": "APIResourceList", "groupVersion": "v1",
                            "resources": [{"name": "nodes", "kind": "Node", "namespaced": false}]})),
                        p => group_lists
                            .iter()
                            .find(|(gv, _)| p == format!("/apis/{gv}"))
                            .map(|(_, l)| l.clone()),
                    };
                    let response = match body {
                        Some(b) => {
                            let b = b.to_string();
                            format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{b}", b.len())
                        }
                        None => "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 19\r\nConnection: close\r\n\r\n404 page not found\n".to_string(),
                    };
                    let _ = sock.write_all(response.as_bytes()).await;
                    let _ = sock.shutdown().await;
                });
            }
        });
        let config = kube::Config::new(format!("http://{addr}").parse().unwrap());
        Executor::new(kube::Client::try_from(config).unwrap())
    }

    #[tokio::test]
    async fn a_missing_metrics_api_is_named() {
        // No metrics.k8s.io group at all: kubectl's "Metrics API not available".
        let ex = canned_server(json!({"kind": "APIGroupList", "groups": []}), vec![]).await;
        for kind in [TopKind::Nodes, TopKind::Pods] {
            let out = run(&ex, &top(kind)).await;
            assert_eq!(out.exit_code, 1);
            assert_eq!(out.output, "");
            assert_eq!(
                out.error.as_deref(),
                Some("error: Metrics API not available\n")
            );
        }
        // The group is listed but its server answers 404 (an APIService whose backend is gone):
        // the API error, worded as client-go words a 404 without a Status body.
        let groups = json!({"kind": "APIGroupList", "groups": [{"name": "metrics.k8s.io",
            "versions": [{"groupVersion": "metrics.k8s.io/v1beta1", "version": "v1beta1"}],
            "preferredVersion": {"groupVersion": "metrics.k8s.io/v1beta1", "version": "v1beta1"}}]});
        let list = json!({"kind": "APIResourceList", "groupVersion": "metrics.k8s.io/v1beta1",
            "resources": [{"name": "nodes", "kind": "NodeMetrics", "namespaced": false},
                          {"name": "pods", "kind": "PodMetrics", "namespaced": true}]});
        let ex = canned_server(groups, vec![("metrics.k8s.io/v1beta1".into(), list)]).await;
        let out = run(&ex, &top(TopKind::Nodes)).await;
        assert_eq!(out.exit_code, 1);
        assert_eq!(
            out.error.as_deref(),
            Some(
                "Error from server (NotFound): the server could not find the requested resource (get nodes.metrics.k8s.io)\n"
            )
        );
        let out = run(&ex, &top(TopKind::Pods)).await;
        assert_eq!(
            out.error.as_deref(),
            Some(
                "Error from server (NotFound): the server could not find the requested resource (get pods.metrics.k8s.io)\n"
            )
        );
    }

    #[test]
    fn quantities_round_like_apimachinery() {
        assert_eq!(parse_quantity("120m"), Some(120_000_000));
        assert_eq!(parse_quantity("123456789n"), Some(123_456_789));
        assert_eq!(parse_quantity("8"), Some(8_000_000_000));
        assert_eq!(parse_quantity("1.5"), Some(1_500_000_000));
        assert_eq!(
            parse_quantity("180Mi"),
            Some(180 * 1024 * 1024 * 1_000_000_000)
        );
        assert_eq!(parse_quantity("1e3"), Some(1_000_000_000_000));
        assert_eq!(parse_quantity("bogus"), None);
        let u = Usage {
            cpu: parse_quantity("120000001n"),
            memory: parse_quantity("184321Ki"),
        };
        assert_eq!(u.cpu_milli(), 121);
        assert_eq!(u.memory() / (1024 * 1024), 180);
    }

    #[test]
    fn go_durations() {
        assert_eq!(go_duration(chrono::TimeDelta::seconds(903)), "15m3s");
        assert_eq!(
            go_duration(chrono::TimeDelta::nanoseconds(903_123_456_789)),
            "15m3.123456789s"
        );
        assert_eq!(go_duration(chrono::TimeDelta::hours(2)), "2h0m0s");
        assert_eq!(go_duration(chrono::TimeDelta::milliseconds(1500)), "1.5s");
        assert_eq!(go_duration(chrono::TimeDelta::milliseconds(15)), "15ms");
    }

    fn node_metrics(name: &str, cpu: &str, mem: &str) -> Value {
        json!({"metadata": {"name": name}, "usage": {"cpu": cpu, "memory": mem}})
    }

    #[test]
    fn nodes_table() {
        let metrics = vec![
            node_metrics("b", "320000000n", "442368Ki"),
            node_metrics("a", "193m", "310Mi"),
        ];
        let mut available: BTreeMap<String, Usage> =
            [("a", "8", "32Gi"), ("b", "8", "32Gi"), ("c", "8", "32Gi")]
                .iter()
                .map(|(n, c, m)| {
                    (
                        n.to_string(),
                        Usage::from_list(Some(&json!({"cpu": c, "memory": m}))),
                    )
                })
                .collect();
        let out = print_nodes(&metrics, &mut available, &top(TopKind::Nodes));
        assert_eq!(
            out,
            "NAME   CPU(cores)   CPU(%)      MEMORY(bytes)   MEMORY(%)   \n\
             a      193m         2%          310Mi           0%          \n\
             b      320m         4%          432Mi           1%          \n\
             c      <unknown>    <unknown>   <unknown>       <unknown>   \n"
        );
    }

    #[test]
    fn pods_with_containers_sum_and_sorting() {
        let metrics = vec![
            json!({"metadata": {"name": "p1", "namespace": "x"}, "containers": [
                {"name": "b", "usage": {"cpu": "10m", "memory": "2Mi"}},
                {"name": "a", "usage": {"cpu": "5m", "memory": "1Mi"}}]}),
            json!({"metadata": {"name": "p0", "namespace": "y"}, "containers": [
                {"name": "c", "usage": {"cpu": "1m", "memory": "10Mi"}}]}),
        ];
        let mut cmd = top(TopKind::Pods);
        cmd.all_namespaces = true;
        cmd.sum = true;
        assert_eq!(
            print_pods(metrics.clone(), &cmd),
            "NAMESPACE   NAME   CPU(cores)   MEMORY(bytes)   \n\
             x           p1     15m          3Mi             \n\
             y           p0     1m           10Mi            \n\
             \x20                  ________     ________        \n\
             \x20                  16m          13Mi            \n"
        );
        let mut cmd = top(TopKind::Pods);
        cmd.containers = true;
        cmd.sort_by = Some(TopSort::Memory);
        assert_eq!(
            print_pods(metrics, &cmd),
            "POD   NAME   CPU(cores)   MEMORY(bytes)   \n\
             p0    c      1m           10Mi            \n\
             p1    b      10m          2Mi             \n\
             p1    a      5m           1Mi             \n"
        );
        assert_eq!(print_pods(vec![], &cmd), "");
    }
}
