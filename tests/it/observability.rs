//! Metrics and trace context end to end: a real broker and agent (with `--metrics-listen`) on
//! the test bed; both `/metrics` are scraped and parsed before and after commands run, and a
//! caller's `traceparent` is followed into the agent's log line for its command.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::support::*;
use serde_json::json;

/// One sample of the text exposition format: name, labels, value.
type Sample = (String, BTreeMap<String, String>, f64);

/// Parses the Prometheus text format (0.0.4): comments and blank lines skipped, label values
/// unescaped (`\\`, `\"`, `\n`), an optional timestamp after the value ignored. Panics on
/// anything else, so a malformed exposition fails the test.
fn parse(text: &str) -> Vec<Sample> {
    let mut samples = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let name_end = line
            .find(['{', ' '])
            .unwrap_or_else(|| panic!("no value: {line:?}"));
        let name = &line[..name_end];
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name {name:?}"
        );
        let mut rest = &line[name_end..];
        let mut labels = BTreeMap::new();
        if let Some(after) = rest.strip_prefix('{') {
            let bytes = after.as_bytes();
            let mut i = 0;
            while bytes[i] != b'}' {
                let eq = after[i..].find('=').expect("label without =") + i;
                let key = after[i..eq].to_owned();
                assert_eq!(bytes[eq + 1], b'"', "unquoted label value in {line:?}");
                let mut value = String::new();
                i = eq + 2;
                while bytes[i] != b'"' {
                    if bytes[i] == b'\\' {
                        value.push(match bytes[i + 1] {
                            b'n' => '\n',
                            b'\\' => '\\',
                            b'"' => '"',
                            other => panic!("bad escape \\{} in {line:?}", other as char),
                        });
                        i += 2;
                    } else {
                        let c = after[i..].chars().next().unwrap();
                        value.push(c);
                        i += c.len_utf8();
                    }
                }
                labels.insert(key, value);
                i += 1;
                if bytes[i] == b',' {
                    i += 1;
                }
            }
            rest = &after[i + 1..];
        }
        let mut fields = rest.split_whitespace();
        let value = fields
            .next()
            .unwrap_or_else(|| panic!("no value: {line:?}"));
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v
                .parse()
                .unwrap_or_else(|_| panic!("bad value {v:?} in {line:?}")),
        };
        samples.push((name.to_owned(), labels, value));
    }
    samples
}

/// The value of the sample `name` whose labels include `want` (0 when absent).
fn value(samples: &[Sample], name: &str, want: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|(n, labels, _)| {
            n == name
                && want
                    .iter()
                    .all(|(k, v)| labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(_, _, v)| v)
        .sum()
}

async fn scrape(url: &str, key: Option<&str>) -> Vec<Sample> {
    let mut req = reqwest::Client::new().get(url);
    if let Some(key) = key {
        req = req.bearer_auth(key);
    }
    let res = req.send().await.expect("scrape");
    assert_eq!(res.status(), 200, "{url}");
    let content_type = res.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let samples = parse(&res.text().await.unwrap());
    for (name, labels, _) in &samples {
        for v in labels.values() {
            assert!(
                !(v.starts_with("sess_") || v.starts_with("res_") || v.starts_with("corr_")),
                "an id is a label value: {name} {labels:?}"
            );
        }
    }
    samples
}

#[test]
fn the_parser_reads_labels_escapes_and_specials() {
    let s = parse(
        "# HELP x y\n# TYPE a counter\na 1\nb{k=\"v\"} 2.5\nc{k=\"a\\\"b\\\\c\\nd\",l=\"\"} +Inf 123\n",
    );
    assert_eq!(s.len(), 3);
    assert_eq!(value(&s, "b", &[("k", "v")]), 2.5);
    assert_eq!(s[2].1["k"], "a\"b\\c\nd");
    assert_eq!(s[2].1["l"], "");
    assert!(s[2].2.is_infinite());
}

#[tokio::test]
async fn metrics_move_and_the_trace_reaches_the_agent() {
    let agent_port = free_port();
    let mut stack = Stack::build("obs")
        .agent_with(&["--metrics-listen", &format!("127.0.0.1:{agent_port}")])
        .start()
        .await;
    let api = stack.api(0);
    let broker_metrics = format!("http://127.0.0.1:{}/metrics", api.port());
    let agent_metrics = format!("http://127.0.0.1:{agent_port}/metrics");
    let agent = stack.agent();

    // /metrics needs a key, like every route but /health, /openapi.json and /docs.
    let (status, _) = api.with_key(None).get("/metrics").await.unwrap();
    assert_eq!(status, 401);

    let b0 = scrape(&broker_metrics, Some(READ_KEY)).await;
    let a0 = eventually("agent metrics", Duration::from_secs(10), || {
        let url = agent_metrics.clone();
        async move {
            let s = scrape(&url, None).await;
            (value(&s, "kubeline_agent_link_connected", &[]) == 1.0).then_some(s)
        }
    })
    .await;
    assert_eq!(value(&b0, "kubeline_agents_connected", &[]), 1.0);
    assert!(
        value(
            &b0,
            "kubeline_agent_link_events_total",
            &[("event", "connect")]
        ) >= 1.0
    );
    assert!(
        value(
            &b0,
            "kubeline_auth_failures_total",
            &[("reason", "missing")]
        ) >= 1.0
    );

    // A traced command and one with a malformed traceparent.
    let session = api.session().await;
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let body = json!({"cluster_id": CLUSTER, "session_id": session, "command_type": "version", "args": []})
        .to_string();
    let traceparent = format!("00-{trace_id}-00f067aa0ba902b7-01");
    let (status, _, traced) = api
        .post_raw(
            "/debug/execute",
            &body,
            &[("traceparent", &traceparent), ("tracestate", "vendor=1")],
        )
        .await
        .unwrap();
    assert_eq!(status, 200, "{traced}");
    let (status, _, untraced) = api
        .post_raw(
            "/debug/execute",
            &body,
            &[("traceparent", "00-zz-nonsense-01")],
        )
        .await
        .unwrap();
    assert_eq!(
        status, 200,
        "a malformed traceparent is ignored: {untraced}"
    );
    let (status, _) = api.execute(&session, "get", &["pods", "-A"]).await;
    assert_eq!(status, 200);

    let b1 = scrape(&broker_metrics, Some(READ_KEY)).await;
    let a1 = scrape(&agent_metrics, None).await;
    let delta = |b: (&[Sample], &[Sample]), name: &str, labels: &[(&str, &str)]| {
        value(b.1, name, labels) - value(b.0, name, labels)
    };
    let broker = (b0.as_slice(), b1.as_slice());
    let completed = [("command_type", "version"), ("outcome", "completed")];
    assert_eq!(delta(broker, "kubeline_executes_total", &completed), 2.0);
    assert_eq!(
        delta(
            broker,
            "kubeline_executes_total",
            &[("command_type", "get"), ("outcome", "completed")]
        ),
        1.0
    );
    assert_eq!(
        delta(
            broker,
            "kubeline_execute_duration_seconds_count",
            &[("command_type", "version")]
        ),
        2.0
    );
    assert_eq!(
        delta(
            broker,
            "kubeline_http_requests_total",
            &[
                ("method", "POST"),
                ("route", "/debug/execute"),
                ("status", "200")
            ]
        ),
        3.0
    );
    assert_eq!(
        delta(
            broker,
            "kubeline_limit_decisions_total",
            &[("limit", "per_key"), ("decision", "allowed")]
        ),
        3.0
    );
    assert_eq!(
        delta(broker, "kubeline_execute_queue_depth_count", &[]),
        3.0
    );
    assert!(
        delta(
            broker,
            "kubeline_store_operation_duration_seconds_count",
            &[("operation", "enqueue"), ("backend", "memory")]
        ) == 3.0
    );
    let agent_delta = (a0.as_slice(), a1.as_slice());
    assert_eq!(
        delta(agent_delta, "kubeline_agent_commands_total", &completed),
        2.0
    );
    assert_eq!(
        delta(
            agent_delta,
            "kubeline_agent_command_duration_seconds_count",
            &[("command_type", "get")]
        ),
        1.0
    );
    assert_eq!(value(&a1, "kubeline_agent_commands_running", &[]), 0.0);

    // The agent's log line for the traced command carries the caller's trace id; the other
    // one carries a fresh trace id.
    let traced_id = traced["result_id"].as_str().unwrap().to_owned();
    let untraced_id = untraced["result_id"].as_str().unwrap().to_owned();
    let logs = eventually("the agent's command logs", Duration::from_secs(10), || {
        let logs = agent.logs();
        assert!(
            !logs.contains('\u{1b}'),
            "a log written to a file carries no colour codes"
        );
        let found = logs.contains(&traced_id) && logs.contains(&untraced_id);
        async move { found.then_some(logs) }
    })
    .await;
    let line = |id: &str| {
        logs.lines()
            .find(|l| l.contains(id) && l.contains("running command"))
            .unwrap_or_else(|| panic!("no log line for {id}:\n{logs}"))
            .to_owned()
    };
    assert!(
        line(&traced_id).contains(&format!("trace_id={trace_id}")),
        "{}",
        line(&traced_id)
    );
    let fresh = line(&untraced_id);
    let at = fresh.find("trace_id=").expect("a trace id") + "trace_id=".len();
    let fresh_id = &fresh[at..at + 32];
    assert!(
        fresh_id.chars().all(|c| c.is_ascii_hexdigit()) && fresh_id != trace_id,
        "{fresh}"
    );
    // The parent of the agent's span is the broker's span, not the caller's.
    assert!(!line(&traced_id).contains("parent_span_id=00f067aa0ba902b7"));
}
