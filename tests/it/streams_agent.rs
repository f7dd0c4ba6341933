//! Streams on the agent against the test bed: `Executor::stream` driven directly (`logs -f`,
//! `get -w`, `events -w`, `rollout status -w`), compared with the bed's kubectl where its
//! output is deterministic, and the agent's link driven by a fake broker on loopback (budget,
//! lifetime, cancel, `--max-streams`, one-shot commands beside streams).
//!
//! Each test works in a namespace of its own, made and removed with the bed's admin
//! kubeconfig; the agent reads with the read-only one. kwok pods have no containers: their
//! logs are files kwok serves (`$TESTBED_DIR/container-logs`, see testbed/README.md), and a
//! followed log grows when a line is appended to its file. The tests that append hold the
//! file ([`Bed::container_log`]) and put it back as it was.
//!
//! Needs the bed's environment (`scripts/testbed up` + `eval "$(scripts/testbed env)"`);
//! without it the tests fail, they never skip.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::commands::mask_times;
use crate::support::bed::Bed;
use crate::support::{alone, eventually, heavy, rss_kib};
use futures::{SinkExt, StreamExt};
use kubeline_agent::exec::{Outcome, Sink};
use kubeline_agent::link::{self, LinkConfig};
use kubeline_shared::api::ResultStatus;
use kubeline_shared::command;
use kubeline_shared::protocol::{
    AgentMessage, BrokerMessage, Cancel, Done, Execute, MAX_CHUNK_BYTES, PROTOCOL_VERSION, Welcome,
};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

// === a stream run through Executor::stream ===

/// A stream in progress: what it printed so far (with when), and its outcome at the end.
struct Running {
    printed: Arc<Mutex<Vec<(Instant, String)>>>,
    task: tokio::task::JoinHandle<Outcome>,
}

fn start(bed: &Bed, command_type: &str, args: &[&str]) -> Running {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let parsed = command::parse_stream(command_type, &args)
        .unwrap_or_else(|e| panic!("{command_type} {args:?}: {e:?}"));
    let (sink, mut pieces) = Sink::channel();
    let printed: Arc<Mutex<Vec<(Instant, String)>>> = Arc::default();
    let collected = printed.clone();
    let executor = bed.executor.clone();
    let task = tokio::spawn(async move {
        let collecting = tokio::spawn(async move {
            while let Some(piece) = pieces.recv().await {
                collected.lock().unwrap().push((Instant::now(), piece));
            }
        });
        let outcome = executor.stream(&parsed, sink).await;
        let _ = collecting.await;
        outcome
    });
    Running { printed, task }
}

impl Running {
    fn text(&self) -> String {
        self.printed
            .lock()
            .unwrap()
            .iter()
            .map(|(_, p)| p.as_str())
            .collect()
    }

    /// Waits until the output satisfies `check`; returns when the piece that did arrived.
    async fn until(&self, what: &str, within: Duration, check: impl Fn(&str) -> bool) -> Instant {
        let deadline = Instant::now() + within;
        loop {
            {
                let printed = self.printed.lock().unwrap();
                let mut text = String::new();
                for (at, piece) in printed.iter() {
                    text.push_str(piece);
                    if check(&text) {
                        return *at;
                    }
                }
            }
            if Instant::now() >= deadline {
                let text = self.text();
                let mut from = text.len().saturating_sub(2000);
                while !text.is_char_boundary(from) {
                    from += 1;
                }
                panic!(
                    "timed out after {within:?} waiting for {what}; the stream {}; the end of \
                     what it printed:\n{}",
                    if self.task.is_finished() {
                        "ended"
                    } else {
                        "runs"
                    },
                    &text[from..]
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits until nothing new is printed for `quiet`.
    async fn settle(&self, quiet: Duration) {
        let mut last = self.text();
        loop {
            tokio::time::sleep(quiet).await;
            let now = self.text();
            if now == last {
                return;
            }
            last = now;
        }
    }

    async fn outcome(self, within: Duration) -> Outcome {
        tokio::time::timeout(within, self.task)
            .await
            .expect("the stream should have ended")
            .expect("the stream task")
    }
}

/// The bed's kubectl, running as the reader, its standard output collected until stopped.
struct Kubectl {
    _child: tokio::process::Child,
    out: Arc<Mutex<String>>,
}

fn kubectl(bed: &Bed, args: &[&str]) -> Kubectl {
    use tokio::io::AsyncReadExt;
    let mut child = tokio::process::Command::new(&bed.kubectl)
        .arg("--kubeconfig")
        .arg(&bed.reader)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("run kubectl");
    let mut stdout = child.stdout.take().expect("stdout");
    let out: Arc<Mutex<String>> = Arc::default();
    let collected = out.clone();
    tokio::spawn(async move {
        let mut buf = [0u8; 8192];
        while let Ok(n) = stdout.read(&mut buf).await {
            if n == 0 {
                break;
            }
            collected
                .lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    Kubectl { _child: child, out }
}

impl Kubectl {
    fn text(&self) -> String {
        self.out.lock().unwrap().clone()
    }

    /// Waits (20 s at most) until what it printed satisfies `check`.
    async fn until(&self, what: &str, check: impl Fn(&str) -> bool) {
        eventually(what, Duration::from_secs(20), || {
            let done = check(&self.text());
            async move { done.then_some(()) }
        })
        .await;
    }

    async fn settle(&self, quiet: Duration) {
        let mut last = self.text();
        loop {
            tokio::time::sleep(quiet).await;
            let now = self.text();
            if now == last {
                return;
            }
            last = now;
        }
    }

    /// Runs to its end: (stdout, stderr, exit code).
    async fn finish(bed: &Bed, args: &[&str]) -> (String, String, i32) {
        let out = tokio::process::Command::new(&bed.kubectl)
            .arg("--kubeconfig")
            .arg(&bed.reader)
            .args(args)
            .output()
            .await
            .expect("run kubectl");
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
            out.status.code().unwrap_or(-1),
        )
    }
}

// === logs -f ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followed_logs_show_new_lines_as_they_are_written() {
    let bed = Bed::new().await;
    let ns = bed.namespace("logs");
    bed.deployment(&ns.name, "tail", 2, "", "");
    bed.wait_running(&ns.name, "tail", 2).await;
    let log = bed.container_log().await;

    // One pod of a workload, followed: the log so far, then each new line.
    let one = start(&bed, "logs", &["-f", "-n", &ns.name, "deploy/tail"]);
    one.until("the log so far", Duration::from_secs(20), |t| {
        t.contains("default container log line 3\n")
    })
    .await;
    // Several pods (-l), prefixed: every pod's copy of each line, whole.
    let all = start(
        &bed,
        "logs",
        &[
            "-f", "-n", &ns.name, "-l", "app=tail", "--prefix", "--tail=1",
        ],
    );
    all.until("the last line of both pods", Duration::from_secs(20), |t| {
        t.matches("] KUBELINE_TESTBED_LOG default container log line 3\n")
            .count()
            == 2
    })
    .await;

    let mut latencies = Vec::new();
    for i in 0..5 {
        let line = format!("KUBELINE_STREAM_LINE {i} {}", std::process::id());
        let written = Instant::now();
        log.append(&line);
        let arrived = one
            .until(&line, Duration::from_secs(10), |t| {
                t.contains(&format!("{line}\n"))
            })
            .await;
        latencies.push(arrived.saturating_duration_since(written));
        all.until(&line, Duration::from_secs(10), |t| {
            t.matches(&format!("{line}\n")).count() == 2
        })
        .await;
    }
    latencies.sort();
    eprintln!("log line written -> on the stream: {latencies:?}");
    assert!(
        latencies[latencies.len() / 2] < Duration::from_millis(500),
        "{latencies:?}"
    );
    // A line longer than a frame arrives whole too, after what was written before it.
    let long = format!("KUBELINE_LONG {}", "x".repeat(3 * MAX_CHUNK_BYTES));
    log.append(&long);
    one.until("a long line", Duration::from_secs(10), |t| {
        t.ends_with(&format!("\n{long}\n"))
    })
    .await;

    all.until(
        "the long line from both pods",
        Duration::from_secs(10),
        |t| t.matches(&format!("] {long}\n")).count() == 2,
    )
    .await;
    // Whole lines, each with its pod's prefix, never two lines run together.
    let pods: Vec<String> = bed
        .admin(&["get", "pods", "-n", &ns.name, "-o", "name"])
        .lines()
        .map(|l| l.trim_start_matches("pod/").to_string())
        .collect();
    assert_eq!(pods.len(), 2);
    let text = all.text();
    for line in text.lines() {
        let shown = &line[..line.len().min(200)];
        let prefixed = pods
            .iter()
            .any(|p| line.starts_with(&format!("[pod/{p}/main] ")));
        assert!(prefixed, "unprefixed line {shown:?}");
        assert_eq!(line.matches("[pod/").count(), 1, "{shown:?}");
    }
    assert!(!one.task.is_finished() && !all.task.is_finished());
    one.task.abort();
    all.task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_followed_logs_is_kubectls_error() {
    let bed = Bed::new().await;
    let ns = bed.namespace("maxlogs");
    bed.deployment(&ns.name, "many", 3, "", "");
    bed.wait_running(&ns.name, "many", 3).await;
    let args = [
        "-f",
        "-n",
        &ns.name,
        "-l",
        "app=many",
        "--max-log-requests=2",
    ];
    let ours = start(&bed, "logs", &args)
        .outcome(Duration::from_secs(20))
        .await;
    let mut kubectl_args = vec!["logs"];
    kubectl_args.extend(args);
    let (stdout, stderr, code) = Kubectl::finish(&bed, &kubectl_args).await;
    assert_eq!(stdout, "");
    assert_eq!(ours.error.as_deref(), Some(stderr.as_str()));
    assert_eq!(ours.exit_code, code);
    assert_eq!(
        stderr,
        "error: you are attempting to follow 3 log streams, but maximum allowed concurrency is \
         2, use --max-log-requests to increase the limit\n"
    );
}

// === get -w ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_watch_prints_what_kubectl_prints_while_a_deployment_scales() {
    let bed = Bed::new().await;
    let ns = bed.namespace("getw");
    bed.deployment(&ns.name, "web", 1, "", "");
    bed.wait_running(&ns.name, "web", 1).await;
    // A running pod is not yet an available Deployment: until its status says 1/1, a watch that
    // starts earlier prints one more row (`web 0/1`) than one that starts later.
    bed.wait_rolled_out(&ns.name, "web").await;

    // The same watches, side by side: kubeline's stream and kubectl.
    let cases: &[&[&str]] = &[
        &["deploy", "web", "-w"],
        &["deploy", "-w", "-o", "wide"],
        &["deploy", "--watch-only", "--output-watch-events"],
        &["deploy", "web", "-w", "--output-watch-events", "-o", "json"],
        &["rs", "-w", "-o", "name"],
    ];
    let mut running = Vec::new();
    for args in cases {
        let mut args: Vec<&str> = args.to_vec();
        args.extend(["-n", &ns.name]);
        let ours = start(&bed, "get", &args);
        let mut kubectl_args = vec!["get"];
        kubectl_args.extend(&args);
        let theirs = kubectl(&bed, &kubectl_args);
        running.push((args, ours, theirs));
    }
    // Both have printed what exists (kubectl needs a moment to start).
    for (args, ours, theirs) in &running {
        if args.contains(&"--watch-only") {
            continue;
        }
        ours.until("the objects", Duration::from_secs(20), |t| !t.is_empty())
            .await;
        theirs
            .until(&format!("kubectl get {args:?} to print"), |t| !t.is_empty())
            .await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    bed.admin(&["scale", "deploy/web", "-n", &ns.name, "--replicas=3"]);
    let (_, table, _) = &running[0];
    table
        .until("3/3 ready", Duration::from_secs(60), |t| {
            t.lines()
                .any(|l| l.starts_with("web ") && l.contains(" 3/3 "))
        })
        .await;
    for (_, ours, theirs) in &running {
        ours.settle(Duration::from_millis(1500)).await;
        theirs.settle(Duration::from_millis(500)).await;
    }
    for (args, ours, theirs) in running {
        let (ours_text, theirs_text) = (mask_times(&ours.text()), mask_times(&theirs.text()));
        assert_eq!(
            ours_text, theirs_text,
            "get {args:?}: kubeline's stream (left) differs from kubectl (right)"
        );
        assert!(ours_text.lines().count() >= 2, "{args:?}: {ours_text}");
        ours.task.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_watch_refusals_are_kubectls() {
    let bed = Bed::new().await;
    for args in [
        &["pods/x", "svc/y", "-w", "-n", "default"][..],
        &["all", "-w", "-n", "default"][..],
        &["pods", "nope-1", "-w", "-n", "default"][..],
    ] {
        let ours = start(&bed, "get", args)
            .outcome(Duration::from_secs(20))
            .await;
        let mut kubectl_args = vec!["get"];
        kubectl_args.extend(args);
        let (stdout, stderr, code) = Kubectl::finish(&bed, &kubectl_args).await;
        assert_eq!(stdout, "", "{args:?}");
        assert_eq!(
            (ours.error.as_deref().unwrap_or_default(), ours.exit_code),
            (stderr.as_str(), code),
            "{args:?}"
        );
    }
}

// === events -w ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_watch_prints_new_events_as_rows() {
    let bed = Bed::new().await;
    let ns = bed.namespace("eventsw");
    bed.deployment(&ns.name, "ev", 1, "", "");
    bed.wait_running(&ns.name, "ev", 1).await;
    let ours = start(&bed, "events", &["-w", "-n", &ns.name]);
    let theirs = kubectl(&bed, &["events", "-w", "-n", &ns.name]);
    ours.until("the events so far", Duration::from_secs(20), |t| {
        t.starts_with("LAST SEEN") && t.contains("ScalingReplicaSet")
    })
    .await;
    theirs
        .until("kubectl to print the events so far", |t| {
            t.contains("ScalingReplicaSet")
        })
        .await;
    let before = ours.text();
    bed.admin(&["scale", "deploy/ev", "-n", &ns.name, "--replicas=2"]);
    ours.until("the scale's event", Duration::from_secs(30), |t| {
        t.matches("Scaled up replica set").count() >= 2
    })
    .await;
    let text = ours.text();
    // Headers once; every row a whole line; what was printed stays as it was.
    assert_eq!(text.matches("LAST SEEN").count(), 1, "{text}");
    assert!(text.starts_with(&before), "{text}");
    assert!(
        text.lines()
            .next()
            .unwrap_or_default()
            .starts_with("LAST SEEN   TYPE     REASON"),
        "{text}"
    );
    assert!(!ours.task.is_finished());
    // The same rows as kubectl's, in the same order. Ages are taken a moment apart, and an age
    // that grows a digit moves the columns; the layout itself is the one-shot `events`' (the
    // differential suites), so the rows are compared cell by cell.
    ours.settle(Duration::from_millis(1500)).await;
    theirs.settle(Duration::from_millis(500)).await;
    let cells = |t: &str| -> Vec<String> {
        mask_times(t)
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect()
    };
    assert_eq!(cells(&ours.text()), cells(&theirs.text()));
    ours.task.abort();
}

// === rollout status -w ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollout_status_prints_progress_then_success() {
    let bed = Bed::new().await;
    let ns = bed.namespace("progress");
    // Ready pods become available only after 4 s: the rollout has something to wait for.
    bed.deployment(&ns.name, "slow", 2, "minReadySeconds: 4", "");
    bed.wait_running(&ns.name, "slow", 2).await;
    let ours = start(&bed, "rollout", &["status", "deploy/slow", "-n", &ns.name]);
    let printed = ours.printed.clone();
    let outcome = ours.outcome(Duration::from_secs(60)).await;
    assert_eq!((outcome.exit_code, outcome.error), (0, None));
    let text: String = printed
        .lock()
        .unwrap()
        .iter()
        .map(|(_, p)| p.as_str())
        .collect();
    let lines: Vec<&str> = text.lines().collect();
    let waiting = |n: u32| {
        format!(
            "Waiting for deployment \"slow\" rollout to finish: {n} of 2 updated replicas are \
             available..."
        )
    };
    assert!(
        lines.iter().any(|l| *l == waiting(0) || *l == waiting(1)),
        "{text}"
    );
    // The stream ended by itself, with kubectl's last line.
    let (stdout, _, code) =
        Kubectl::finish(&bed, &["rollout", "status", "deploy/slow", "-n", &ns.name]).await;
    assert_eq!(code, 0);
    assert_eq!(lines.last().copied(), stdout.lines().last(), "{text}");
    assert_eq!(stdout, "deployment \"slow\" successfully rolled out\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollout_status_ends_with_kubectls_error_past_the_progress_deadline() {
    let bed = Bed::new().await;
    let ns = bed.namespace("deadline");
    // No node matches: the pods stay Pending and the deployment stops progressing.
    bed.deployment(
        &ns.name,
        "stuck",
        1,
        "progressDeadlineSeconds: 2",
        "nodeSelector: {nope: nope}",
    );
    let ours = start(&bed, "rollout", &["status", "deploy/stuck", "-n", &ns.name]);
    let printed = ours.printed.clone();
    let outcome = ours.outcome(Duration::from_secs(90)).await;
    let (_, stderr, code) =
        Kubectl::finish(&bed, &["rollout", "status", "deploy/stuck", "-n", &ns.name]).await;
    assert_eq!(
        (
            outcome.error.as_deref().unwrap_or_default(),
            outcome.exit_code
        ),
        (stderr.as_str(), code)
    );
    assert_eq!(
        stderr,
        "error: deployment \"stuck\" exceeded its progress deadline\n"
    );

    // --timeout ends a watch that is still waiting, as kubectl ends it.
    bed.deployment(
        &ns.name,
        "waits",
        1,
        "progressDeadlineSeconds: 600",
        "nodeSelector: {nope: nope}",
    );
    // The controller takes it up first, so both see it waiting for availability.
    bed.wait_observed(&ns.name, "waits").await;
    let args = ["status", "deploy/waits", "-n", &ns.name, "--timeout=1s"];
    let started = Instant::now();
    let ours = start(&bed, "rollout", &args);
    let waited = ours.printed.clone();
    let outcome = ours.outcome(Duration::from_secs(30)).await;
    assert!(started.elapsed() >= Duration::from_secs(1));
    let mut kubectl_args = vec!["rollout"];
    kubectl_args.extend(args);
    let (stdout, stderr, code) = Kubectl::finish(&bed, &kubectl_args).await;
    assert_eq!(stderr, "error: timed out waiting for the condition\n");
    assert_eq!(
        (
            outcome.error.as_deref().unwrap_or_default(),
            outcome.exit_code
        ),
        (stderr.as_str(), code)
    );
    let waited: String = waited
        .lock()
        .unwrap()
        .iter()
        .map(|(_, p)| p.as_str())
        .collect();
    assert_eq!(waited.lines().last(), stdout.lines().last(), "{waited}");
    let text: String = printed
        .lock()
        .unwrap()
        .iter()
        .map(|(_, p)| p.as_str())
        .collect();
    assert!(
        text.lines()
            .any(|l| l.starts_with("Waiting for deployment \"stuck\" rollout to finish: ")),
        "{text}"
    );
}

// === the link: budget, lifetime, cancel, --max-streams ===

/// A broker stand-in on loopback with the agent's link to it.
struct Linked {
    ws: tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
    shutdown: CancellationToken,
}

impl Linked {
    async fn start(bed: &Bed, max_concurrency: usize, max_streams: usize) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let shutdown = CancellationToken::new();
        tokio::spawn(link::run(
            LinkConfig {
                broker_url: format!("http://{addr}"),
                cluster_id: "bed".into(),
                token: "t".into(),
                max_concurrency,
                max_streams,
                tls: kubeline_agent::tls::ClientTls::default(),
                labels: Default::default(),
            },
            bed.executor.clone(),
            shutdown.clone(),
        ));
        let (tcp, _) = tokio::time::timeout(Duration::from_secs(10), listener.accept())
            .await
            .expect("the agent dials")
            .expect("accept");
        let mut ws = tokio_tungstenite::accept_async(tcp).await.expect("upgrade");
        let hello = ws.next().await.expect("hello").expect("hello frame");
        assert!(hello.to_text().unwrap_or_default().contains("\"hello\""));
        let welcome = BrokerMessage::Welcome(Welcome {
            protocol: PROTOCOL_VERSION,
            broker_id: "test".into(),
            ping_interval_ms: 60_000,
        });
        ws.send(Message::Text(
            serde_json::to_string(&welcome).unwrap().into(),
        ))
        .await
        .expect("welcome");
        Self { ws, shutdown }
    }

    async fn send(&mut self, msg: BrokerMessage) {
        self.ws
            .send(Message::Text(serde_json::to_string(&msg).unwrap().into()))
            .await
            .expect("send");
    }

    async fn execute(
        &mut self,
        id: &str,
        command: &str,
        args: &[&str],
        stream: bool,
        budget: u64,
        timeout_ms: u64,
    ) {
        self.send(BrokerMessage::Execute(Execute {
            result_id: id.into(),
            session_id: "s".into(),
            command_type: command.into(),
            args: args.iter().map(|s| s.to_string()).collect(),
            timeout_ms,
            max_output_bytes: budget,
            correlation_id: "c".into(),
            trace: None,
            stream,
        }))
        .await;
    }

    /// The next frame from the agent, within `within` (`None`: nothing came).
    async fn next(&mut self, within: Duration) -> Option<AgentMessage> {
        loop {
            let frame = tokio::time::timeout(within, self.ws.next()).await.ok()??;
            if let Message::Text(text) = frame.expect("frame") {
                return Some(serde_json::from_str(&text).expect("agent message"));
            }
        }
    }

    /// Output and done of `id` (frames of others are kept aside in `others`).
    async fn until_done(&mut self, id: &str, within: Duration) -> (String, Done) {
        let deadline = Instant::now() + within;
        let mut output = String::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next(left).await {
                Some(AgentMessage::Output(o)) if o.result_id == id => {
                    assert!(o.data.len() <= MAX_CHUNK_BYTES);
                    output.push_str(&o.data)
                }
                Some(AgentMessage::Done(d)) if d.result_id == id => return (output, d),
                Some(_) => {}
                None => panic!("no done for {id} within {within:?}; output so far: {output}"),
            }
        }
    }
}

impl Drop for Linked {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_budget_stops_a_stream_and_says_so() {
    let bed = Bed::new().await;
    let mut link = Linked::start(&bed, 4, 4).await;
    // A follow never ends by itself; the budget ends it.
    link.execute(
        "budget",
        "logs",
        &["-f", "-n", "credit-service", "deploy/credit-api"],
        true,
        100,
        60_000,
    )
    .await;
    let (output, done) = link.until_done("budget", Duration::from_secs(30)).await;
    assert_eq!(output.len(), 100, "{output}");
    assert!(output.starts_with("credit-api starting"), "{output}");
    assert_eq!(done.status, ResultStatus::Completed);
    assert_eq!(done.exit_code, 0);
    let truncated = done.truncated.expect("truncated");
    assert_eq!(truncated.limit_bytes, 100);
    assert!(truncated.omitted_bytes > 0, "{truncated:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lifetime_ends_a_stream_as_a_timeout() {
    let bed = Bed::new().await;
    let mut link = Linked::start(&bed, 4, 4).await;
    let started = Instant::now();
    link.execute(
        "life",
        "get",
        &["pods", "-w", "-n", "credit-service"],
        true,
        1 << 20,
        1500,
    )
    .await;
    let (output, done) = link.until_done("life", Duration::from_secs(20)).await;
    assert!(started.elapsed() >= Duration::from_millis(1400));
    assert!(output.starts_with("NAME "), "{output}");
    assert_eq!(done.status, ResultStatus::Timeout);
    assert_eq!(done.exit_code, 124);
    let error = done.error.unwrap_or_default();
    assert!(error.contains("reached its lifetime of 1.5s"), "{error}");
    assert_eq!(done.truncated, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_stops_a_stream_and_frees_its_slot_and_one_shots_are_not_starved() {
    let bed = Bed::new().await;
    let ns = bed.namespace("cancel");
    bed.deployment(&ns.name, "c", 1, "", "");
    bed.wait_running(&ns.name, "c", 1).await;
    // Its status settled: the watch below should see no change of its own.
    bed.wait_rolled_out(&ns.name, "c").await;
    // One stream at a time, one command at a time.
    let mut link = Linked::start(&bed, 1, 1).await;
    link.execute(
        "w1",
        "get",
        &["deploy", "-w", "-n", &ns.name],
        true,
        1 << 20,
        120_000,
    )
    .await;
    match link.next(Duration::from_secs(20)).await {
        Some(AgentMessage::Output(o)) if o.result_id == "w1" => {
            assert!(o.data.starts_with("NAME"), "{}", o.data)
        }
        other => panic!("expected w1's table, got {other:?}"),
    }
    // A second stream is refused while the first runs.
    link.execute(
        "w2",
        "events",
        &["-w", "-n", &ns.name],
        true,
        1 << 20,
        60_000,
    )
    .await;
    let (_, refused) = link.until_done("w2", Duration::from_secs(10)).await;
    assert_eq!(refused.status, ResultStatus::Failed);
    assert!(
        refused
            .error
            .as_deref()
            .unwrap_or_default()
            .contains("--max-streams"),
        "{refused:?}"
    );
    // A one-shot command runs beside the stream (its own limit).
    link.execute("once", "get", &["ns", "default"], false, 1 << 20, 20_000)
        .await;
    let (output, once) = link.until_done("once", Duration::from_secs(20)).await;
    assert_eq!(once.status, ResultStatus::Completed, "{once:?}");
    assert!(output.starts_with("NAME"), "{output}");

    // Cancelled: nothing more for it, not even when the watched object changes.
    link.send(BrokerMessage::Cancel(Cancel {
        result_id: "w1".into(),
    }))
    .await;
    // Frames sent before the cancel arrived may still be on their way.
    while link.next(Duration::from_millis(300)).await.is_some() {}
    bed.admin(&["scale", "deploy/c", "-n", &ns.name, "--replicas=2"]);
    let quiet_until = Instant::now() + Duration::from_secs(2);
    let after_cancel = link
        .next(quiet_until.saturating_duration_since(Instant::now()))
        .await;
    assert!(
        after_cancel.is_none(),
        "nothing should come after the cancel, got {after_cancel:?}"
    );
    // Its slot is free again.
    link.execute(
        "w3",
        "get",
        &["deploy", "-w", "-n", &ns.name],
        true,
        64,
        20_000,
    )
    .await;
    let (output, done) = link.until_done("w3", Duration::from_secs(20)).await;
    assert_eq!(output.len(), 64, "{output}");
    assert!(done.truncated.is_some(), "{done:?}");
}

// === memory ===

/// Follows at once in [`many_follows_stay_small`]. kwok follows each log with an inotify
/// instance of its own, and the machine allows 128 per user, shared by every bed on it: 40
/// leaves room for the others.
const FOLLOWS: u64 = 40;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_follows_stay_small() {
    // It measures this process's memory: the other tests must not run in it meanwhile.
    let _heavy = heavy().await;
    if !alone(module_path!(), "many_follows_stay_small") {
        return;
    }
    let bed = Bed::new().await;
    // Warm the client, its connection and discovery first.
    let warm = start(&bed, "logs", &["-n", "credit-service", "credit-scorer"]);
    warm.outcome(Duration::from_secs(20)).await;
    let before = rss_kib(std::process::id());
    let follows: Vec<Running> = (0..FOLLOWS)
        .map(|_| {
            start(
                &bed,
                "logs",
                &["-f", "-n", "credit-service", "deploy/credit-api"],
            )
        })
        .collect();
    for f in &follows {
        f.until("the log so far", Duration::from_secs(60), |t| {
            t.contains("scored application id=APP-1002")
        })
        .await;
    }
    let after = rss_kib(std::process::id());
    let per_stream = after.saturating_sub(before) / FOLLOWS;
    eprintln!(
        "{FOLLOWS} concurrent follows: RSS {before} KiB -> {after} KiB, about {per_stream} KiB \
         per stream"
    );
    assert!(per_stream < 256, "{per_stream} KiB per stream");
    for f in follows {
        if f.task.is_finished() {
            let outcome = f.outcome(Duration::from_secs(1)).await;
            panic!("a follow ended: {outcome:?}");
        }
        f.task.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_watches_stay_small() {
    // It measures this process's memory: the other tests must not run in it meanwhile.
    let _heavy = heavy().await;
    if !alone(module_path!(), "a_hundred_watches_stay_small") {
        return;
    }
    let bed = Bed::new().await;
    // Warm the client, its connection and discovery first.
    start(&bed, "get", &["pods", "-n", "credit-service"])
        .outcome(Duration::from_secs(20))
        .await;
    let before = rss_kib(std::process::id());
    let watches: Vec<Running> = (0..100)
        .map(|_| start(&bed, "get", &["pods", "-w", "-n", "credit-service"]))
        .collect();
    for w in &watches {
        w.until("the table", Duration::from_secs(60), |t| {
            t.contains("credit-api-")
        })
        .await;
    }
    let after = rss_kib(std::process::id());
    let per_stream = after.saturating_sub(before) / 100;
    eprintln!(
        "100 concurrent get -w: RSS {before} KiB -> {after} KiB, about {per_stream} KiB per stream"
    );
    assert!(per_stream < 256, "{per_stream} KiB per stream");
    for w in watches {
        assert!(!w.task.is_finished());
        w.task.abort();
    }
}
