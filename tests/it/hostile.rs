//! Hostile input, end to end: a caller with a read key sends the nastiest commands it can build
//! to a real broker and agent on the test bed. Nothing may crash, stall or amplify: inputs over a
//! limit are refused before queueing, work that grows at run time stops at the agent's budgets,
//! and ordinary commands keep being answered meanwhile.

use std::time::{Duration, Instant};

use kubeline_agent::exec::Executor;
use kubeline_shared::command;
use serde_json::Value;

use crate::support::bed::executor_for;
use crate::support::*;

/// A jsonpath template that nests `{range ..}` `depth` deep: each level visits every
/// descendant of every value of the level above.
fn descent_bomb(depth: usize) -> String {
    format!(
        "jsonpath={}x{}",
        "{range ..}".repeat(depth),
        "{end}".repeat(depth)
    )
}

fn assert_limit(status: u16, body: &Value, argument: Option<&str>) {
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "invalid_request", "{body}");
    assert_eq!(body["details"]["code"], "limit_exceeded", "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("kubeline's limit of"),
        "{body}"
    );
    if let Some(a) = argument {
        assert_eq!(body["details"]["argument"], a, "{body}");
    }
}

#[tokio::test]
async fn hostile_input_is_refused_or_bounded_and_the_agent_keeps_serving() {
    // Bombs keep the agent's cores busy: not beside another heavy test.
    let _heavy = heavy().await;
    // The product's ping interval (the harness's 500 ms is for tests that kill agents): under
    // a bomb on a loaded machine the agent answered a ping more than a second late, and the
    // broker dropped a link that was alive.
    let mut stack = Stack::build("hostile")
        .flags(&["--ping-interval-ms", "5000"])
        .agent()
        .start()
        .await;
    let api = stack.api(0);
    let session = api.session().await;

    // --- refused before anything is queued -------------------------------------------------
    // Thousands of nested ranges: this aborted the agent with a stack overflow before. (Twenty
    // thousand no longer fit in a request body; the 413 for that is a router test, because the
    // broker answers before reading such a body and a client still writing it may see the
    // connection close instead of the answer.)
    let deep = format!("jsonpath={}", "{range .items[*]}".repeat(3_000));
    let (s, b) = api
        .execute(&session, "get", &["pods", "-A", "-o", &deep])
        .await;
    assert_limit(s, &b, None);
    // A few dozen nested ranges (ran until the caller's timeout before).
    let (s, b) = api
        .execute(&session, "get", &["pods", "-A", "-o", &descent_bomb(40)])
        .await;
    assert_limit(s, &b, Some("--output"));
    // Thousands of names, one API call each (ten thousand do not fit in a request body).
    let mut names: Vec<String> = vec!["pods".into()];
    names.extend((0..5_000).map(|i| format!("p{i}")));
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let (s, b) = api.execute(&session, "get", &names).await;
    assert_limit(s, &b, None);
    let (s, b) = api.execute(&session, "get", &names[..102]).await;
    assert_limit(s, &b, Some("p0"));
    let cols = format!("custom-columns={}", vec!["A:..a"; 40].join(","));
    let (s, b) = api
        .execute(&session, "get", &["pods", "-A", "-o", &cols])
        .await;
    assert_limit(s, &b, Some("--output"));

    // --- accepted, and stopped by the agent's budgets --------------------------------------
    let started = Instant::now();
    let (s, b) = api
        .execute(
            &session,
            "get",
            &["pods", "-A", "-o", "json", "-o", &descent_bomb(6)],
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["status"], "failed", "{b}");
    assert!(
        b["error"]
            .as_str()
            .unwrap_or_default()
            .contains("2000000 steps"),
        "{b}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "the budget stops the work long before the caller's timeout"
    );
    // Indexes near i64::MAX (ran until the caller's timeout before): answered at once, as
    // kubectl answers them.
    for args in [
        vec!["pods", "-A", "-o", "jsonpath={.items[9223372036854775807]}"],
        vec![
            "pods",
            "-A",
            "-o",
            "jsonpath={.items[-9223372036854775808:9223372036854775807:9223372036854775807]}",
        ],
        vec![
            "pods",
            "-A",
            "-o",
            "custom-columns=X:.spec.containers[9223372036854775807].name",
        ],
        vec![
            "pods",
            "-A",
            "--sort-by={.spec.containers[9223372036854775807].name}",
        ],
    ] {
        let (s, b) = api.execute(&session, "get", &args).await;
        assert_eq!(s, 200, "{args:?}: {b}");
        assert!(
            b["status"] == "failed" || b["status"] == "completed",
            "{args:?}: {b}"
        );
    }

    // --- sixteen hostile callers in a loop, an ordinary caller beside them ------------------
    let stop_at = Instant::now() + Duration::from_secs(8);
    let mut hostile = Vec::new();
    for i in 0..16 {
        let api = api.clone();
        let session = api.session().await;
        hostile.push(tokio::spawn(async move {
            let mut answered = 0u32;
            while Instant::now() < stop_at {
                let bomb = descent_bomb(6);
                let args: Vec<&str> = match i % 3 {
                    0 => vec!["pods", "-A", "-o", &bomb],
                    1 => vec!["pods", "-A", "-o", "jsonpath={..a..a..a..a..a..a..a..a..a}"],
                    _ => vec!["pods", "-A", "--sort-by={..}", "-o", "name"],
                };
                let (s, b) = api.execute(&session, "get", &args).await;
                assert!(s == 200 || s == 429, "hostile call answered {s}: {b}");
                answered += 1;
            }
            answered
        }));
    }
    let mut ordinary = 0;
    while Instant::now() < stop_at {
        let (s, b) = api.execute(&session, "get", &["ns", "-o", "name"]).await;
        assert_eq!(s, 200, "{b}");
        assert_eq!(b["status"], "completed", "{b}");
        assert!(
            b["output"]
                .as_str()
                .unwrap_or_default()
                .contains("namespace/default")
        );
        ordinary += 1;
    }
    for h in hostile {
        assert!(h.await.expect("hostile caller") > 0);
    }
    assert!(ordinary > 0);

    // The agent never went down: same process, still linked, still answering.
    assert!(
        stack.agent().is_running(),
        "the agent process died: {}",
        stack.agent().logs()
    );
    let (s, b) = api.execute(&session, "version", &[]).await;
    assert_eq!((s, &b["status"]), (200, &Value::from("completed")), "{b}");
}

async fn run(ex: &Executor, command_type: &str, args: &[&str]) -> kubeline_agent::exec::Outcome {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    ex.run(&command::parse(command_type, &args).expect("accepted"))
        .await
}

#[tokio::test]
async fn lists_stop_at_the_page_limit() {
    // `--chunk-size=1` makes one request per object; the page limit bounds them. The bed has
    // more than three pods in all namespaces, so a limit of three pages is reached.
    let ex = executor_for(&reader_kubeconfig())
        .await
        .with_max_list_pages(3);
    for (command_type, args) in [
        ("get", &["pods", "-A", "--chunk-size=1"][..]),
        ("get", &["pods", "-A", "--chunk-size=1", "-o", "json"][..]),
        ("describe", &["pods", "-A", "--chunk-size=1"][..]),
    ] {
        let out = run(&ex, command_type, args).await;
        assert_eq!(out.exit_code, 1, "{command_type} {args:?}: {out:?}");
        let err = out.error.unwrap_or_default();
        assert!(
            err.contains("kubeline's limit of 3 pages of --chunk-size=1"),
            "{command_type} {args:?}: {err}"
        );
    }
    // Within the limit the same list works.
    let ex = executor_for(&reader_kubeconfig()).await;
    let out = run(&ex, "get", &["pods", "-A", "--chunk-size=1", "-o", "name"]).await;
    assert_eq!(out.exit_code, 0, "{out:?}");
}
