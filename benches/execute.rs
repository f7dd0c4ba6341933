//! Load benchmark: `POST /debug/execute` through a broker (Redis or embedded store) and a linked
//! agent on loopback, against the test bed's API server.
//!
//! Reports latency percentiles and throughput per concurrency level, and the overhead the broker
//! and agent add over the same API server call made directly with `kube`.
//!
//! ```text
//! scripts/testbed up && eval "$(scripts/testbed env)"
//! cargo bench --bench execute                      # defaults below
//! BENCH_SECONDS=10 BENCH_CONCURRENCY=1,8,64 BENCH_COMMAND="get namespaces" cargo bench --bench execute
//! BENCH_METRICS=off cargo bench --bench execute   # the same, with metrics recording off
//! ```
//!
//! `BENCH_METRICS=off` installs a no-op recorder before the broker starts, so every metrics call
//! in broker and agent does nothing: the difference to a default run is the cost of metrics.
//!
//! Needs `redis-server` on PATH (the store under test gets its own instance on a free port).

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use kubeline_agent::exec::Executor;
use kubeline_agent::link::LinkConfig;
use kubeline_broker::auth::Credential;
use kubeline_broker::{Broker, BrokerArgs};
use serde_json::json;
use tokio_util::sync::CancellationToken;

const KEY: &str = "bench-key";
/// Callers' keys: requests go round them, so each key's rate limit (at most 60,000 a minute per
/// class) is not what caps the benchmark, while every request still pays for its check.
const CALLER_KEYS: usize = 32;
const CLUSTER: &str = "bench";
const TOKEN: &str = "bench-token";

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

struct RedisServer(Child, u16);

impl RedisServer {
    fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server on PATH");
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Self(child, port)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Stats {
    hist: Histogram<u64>,
    errors: u64,
    elapsed: Duration,
}

fn report(label: &str, concurrency: usize, s: &Stats) {
    let n = s.hist.len();
    assert!(n > 0, "{label}: no call succeeded");
    assert_eq!(s.errors, 0, "{label}: calls failed");
    println!(
        "{label:<28} c={concurrency:<4} n={n:<7} {:>8.0}/s  p50 {:>7.3} ms  p90 {:>7.3} ms  p99 {:>7.3} ms  max {:>8.3} ms  errors {}",
        n as f64 / s.elapsed.as_secs_f64(),
        s.hist.value_at_quantile(0.50) as f64 / 1000.0,
        s.hist.value_at_quantile(0.90) as f64 / 1000.0,
        s.hist.value_at_quantile(0.99) as f64 / 1000.0,
        s.hist.max() as f64 / 1000.0,
        s.errors,
    );
}

/// Runs `op` from `concurrency` tasks for `seconds`, recording each call's latency in µs.
async fn drive<F, Fut>(concurrency: usize, seconds: f64, op: F) -> Stats
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let op = Arc::new(op);
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (op, stop) = (op.clone(), stop.clone());
            tokio::spawn(async move {
                let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
                let mut errors = 0;
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    if op().await {
                        hist.record(t.elapsed().as_micros().max(1) as u64).unwrap();
                    } else {
                        errors += 1;
                    }
                }
                (hist, errors)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut total = Stats {
        hist: Histogram::new_with_bounds(1, 60_000_000, 3).unwrap(),
        errors: 0,
        elapsed: Duration::ZERO,
    };
    for task in tasks {
        let (hist, errors) = task.await.unwrap();
        total.hist.add(hist).unwrap();
        total.errors += errors;
    }
    total.elapsed = started.elapsed();
    total
}

async fn start_stack(redis_url: Option<String>, executor: Executor) -> (String, CancellationToken) {
    let mut args = BrokerArgs::for_dev(
        "127.0.0.1:0".parse().unwrap(),
        format!("admin={KEY}").parse::<Credential>().unwrap(),
        format!("{CLUSTER}={TOKEN}").parse::<Credential>().unwrap(),
    );
    args.redis_url = redis_url;
    args.api_keys
        .extend((0..CALLER_KEYS).map(|i| format!("read={KEY}-{i}").parse::<Credential>().unwrap()));
    let max = kubeline_broker::ratelimit::MAX_PER_MINUTE;
    args.rate_limits = kubeline_broker::ratelimit::RateLimitArgs {
        rate_limit_session_create: max,
        rate_limit_execute: max,
        rate_limit_standard: max,
    };
    let broker = Broker::bind(&args).await.expect("broker");
    let url = format!("http://{}", broker.local_addr());
    let stop = CancellationToken::new();
    let s = stop.clone();
    tokio::spawn(broker.serve(async move { s.cancelled().await }));
    let link = LinkConfig {
        broker_url: url.clone(),
        cluster_id: CLUSTER.to_owned(),
        token: TOKEN.to_owned(),
        max_concurrency: 256,
        max_streams: kubeline_agent::link::DEFAULT_MAX_STREAMS as usize,
        tls: kubeline_agent::tls::ClientTls::default(),
        labels: Default::default(),
    };
    tokio::spawn(kubeline_agent::link::run(
        link,
        executor,
        stop.child_token(),
    ));
    let http = reqwest::Client::new();
    for _ in 0..500 {
        let linked = http
            .get(format!("{url}/clusters/{CLUSTER}/status"))
            .bearer_auth(KEY)
            .send()
            .await
            .ok()
            .and_then(|r| {
                if r.status().is_success() {
                    Some(r)
                } else {
                    None
                }
            });
        if let Some(r) = linked {
            let body: serde_json::Value = r.json().await.unwrap();
            if body["status"] == "connected" {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (url, stop)
}

#[tokio::main]
async fn main() {
    if env_or("BENCH_METRICS", "on") == "off" {
        metrics::set_global_recorder(metrics::NoopRecorder).expect("no recorder yet");
        println!("metrics recording: off");
    }
    let kubeconfig = std::env::var("TESTBED_READER_KUBECONFIG").expect(
        "TESTBED_READER_KUBECONFIG is not set: run scripts/testbed up && eval \"$(scripts/testbed env)\" first",
    );
    // `cargo bench` passes `--bench`; under `cargo test --all-targets` this runs as a short smoke
    // test that the benchmark still works, not as a measurement.
    let measuring = std::env::args().any(|a| a == "--bench");
    let (default_seconds, default_levels) = if measuring {
        ("5", "1,16,64")
    } else {
        ("0.3", "1,4")
    };
    let seconds: f64 = env_or("BENCH_SECONDS", default_seconds)
        .parse()
        .expect("BENCH_SECONDS");
    let levels: Vec<usize> = env_or("BENCH_CONCURRENCY", default_levels)
        .split(',')
        .map(|c| c.trim().parse().expect("BENCH_CONCURRENCY"))
        .collect();
    let command_line = env_or("BENCH_COMMAND", "version");
    let mut words = command_line.split_whitespace().map(str::to_owned);
    let command_type = words.next().expect("BENCH_COMMAND");
    let args: Vec<String> = words.collect();
    let parsed =
        kubeline_shared::command::parse(&command_type, &args).expect("BENCH_COMMAND parses");

    let executor = kubeline_agent::executor(Some(kubeconfig.as_ref()))
        .await
        .unwrap();
    println!(
        "command: {command_line}; {seconds}s per level; {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    // Baseline: the same call made directly, with no broker or agent link in between.
    for &c in &levels {
        let (ex, cmd) = (executor.clone(), parsed.clone());
        let stats = drive(c, seconds, move || {
            let (ex, cmd) = (ex.clone(), cmd.clone());
            async move { ex.run(&cmd).await.exit_code == 0 }
        })
        .await;
        report("direct (kube, no kubeline)", c, &stats);
    }

    let redis = RedisServer::start();
    for (label, redis_url) in [
        (
            "via broker+agent, redis",
            Some(format!("redis://127.0.0.1:{}/", redis.1)),
        ),
        ("via broker+agent, embedded", None),
    ] {
        let (url, stop) = start_stack(redis_url, executor.clone()).await;
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(1024)
            .build()
            .unwrap();
        // One session per caller key: a session belongs to the credential that made it.
        let mut callers = Vec::new();
        for i in 0..CALLER_KEYS {
            let key = format!("{KEY}-{i}");
            let session: serde_json::Value = http
                .post(format!("{url}/debug/session"))
                .bearer_auth(&key)
                .json(&json!({ "cluster_id": CLUSTER }))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let body = json!({
                "cluster_id": CLUSTER,
                "session_id": session["session_id"],
                "command_type": command_type,
                "args": args,
                "timeout": 30,
            })
            .to_string();
            callers.push((key, body));
        }
        let callers = Arc::new(callers);
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let endpoint = Arc::new(format!("{url}/debug/execute"));
        for &c in &levels {
            let (http, callers, next, endpoint) = (
                http.clone(),
                callers.clone(),
                next.clone(),
                endpoint.clone(),
            );
            let stats = drive(c, seconds, move || {
                let (http, callers, endpoint) = (http.clone(), callers.clone(), endpoint.clone());
                let i = next.fetch_add(1, Ordering::Relaxed) % CALLER_KEYS;
                async move {
                    let (key, body) = &callers[i];
                    match http
                        .post(endpoint.as_str())
                        .bearer_auth(key)
                        .header("content-type", "application/json")
                        .body(body.clone())
                        .send()
                        .await
                    {
                        Ok(r) if r.status().is_success() => r.bytes().await.is_ok(),
                        _ => false,
                    }
                }
            })
            .await;
            report(label, c, &stats);
        }
        stop.cancel();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
