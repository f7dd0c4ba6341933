//! Rolling restarts behind a real load balancer: three `kubeline broker` processes on one Redis
//! behind HAProxy (HTTP mode, health checks on `/health`, WebSocket tunnels), one agent and the
//! callers all going through it, a steady load of executes while every replica is restarted in
//! turn — once with SIGTERM (drain), once with `kill -9`.
//!
//! Each caller sends `POST /debug/execute` with an `Idempotency-Key` per request and, when its
//! connection dies or the balancer answers 502/503, sends the same request again with the same
//! key (so nothing runs twice and nothing is lost); a request that has no answer after 30 s is
//! counted as lost. Reported per mode: requests answered, lost, retried, latency from the first
//! attempt to the answer (p50, p99, max).
//!
//! ```text
//! scripts/testbed up && eval "$(scripts/testbed env)"
//! cargo bench --bench rolling                         # 16 callers, 60 s per mode
//! BENCH_SECONDS=30 BENCH_CALLERS=8 BENCH_MODES=kill cargo bench --bench rolling
//! ```
//!
//! The processes' logs are removed after a passing run unless `BENCH_KEEP_LOGS` is set.
//!
//! Needs `redis-server` and `haproxy` on PATH (`scripts/test` installs both). Under
//! `cargo test --all-targets` it runs as a short check (4 callers, 6 s per mode) that no request
//! is lost through both kinds of restart.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

mod common;
use common::{Proc, free_port};
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use tokio::sync::Mutex;

const KEY: &str = "rolling-key";
const CLUSTER: &str = "rolling";
const TOKEN: &str = "rolling-token";
const REPLICAS: usize = 3;
/// A request with no answer after this long is lost.
const GIVE_UP: Duration = Duration::from_secs(30);

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

fn spawn(program: &str, args: &[String], log: &Path) -> Proc {
    let out = std::fs::File::create(log).expect("log file");
    let err = out.try_clone().expect("log file");
    Proc(
        Command::new(program)
            .args(args)
            .env("KUBELINE_RATE_LIMIT_SESSION_CREATE", "0")
            .env("KUBELINE_RATE_LIMIT_EXECUTE", "0")
            .env("KUBELINE_RATE_LIMIT_STANDARD", "0")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {program}: {e}")),
    )
}

struct Stack {
    dir: PathBuf,
    redis_url: String,
    ports: Vec<u16>,
    brokers: Vec<Proc>,
    generation: usize,
    _redis: Proc,
    _haproxy: Proc,
    _agent: Proc,
    front: String,
}

fn broker(dir: &Path, redis_url: &str, port: u16, generation: usize) -> Proc {
    let args: Vec<String> = [
        "broker",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--redis-url",
        redis_url,
        "--api-key",
        &format!("admin={KEY}"),
        "--agent-token",
        &format!("{CLUSTER}={TOKEN}"),
        "--drain-seconds",
        "10",
        "--max-executes-per-key",
        "1024",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    spawn(
        env!("CARGO_BIN_EXE_kubeline"),
        &args,
        &dir.join(format!("broker-{port}-{generation}.log")),
    )
}

async fn healthy(http: &reqwest::Client, url: &str) -> bool {
    matches!(http.get(format!("{url}/health")).send().await, Ok(r) if r.status().is_success())
}

async fn wait_for(what: &str, within: Duration, mut ok: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if ok().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what} did not happen within {within:?}");
}

impl Stack {
    async fn start(kubeconfig: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("kubeline-rolling-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let redis_port = free_port();
        let redis = spawn(
            "redis-server",
            &[
                "--port".into(),
                redis_port.to_string(),
                "--bind".into(),
                "127.0.0.1".into(),
                "--save".into(),
                String::new(),
                "--appendonly".into(),
                "no".into(),
            ],
            &dir.join("redis.log"),
        );
        let redis_url = format!("redis://127.0.0.1:{redis_port}/");
        let ports: Vec<u16> = (0..REPLICAS).map(|_| free_port()).collect();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let brokers = ports
            .iter()
            .map(|p| broker(&dir, &redis_url, *p, 0))
            .collect();
        let http = reqwest::Client::new();
        for port in &ports {
            let url = format!("http://127.0.0.1:{port}");
            wait_for("a broker to answer", Duration::from_secs(30), async || {
                healthy(&http, &url).await
            })
            .await;
        }
        let front_port = free_port();
        let servers: String = ports
            .iter()
            .enumerate()
            .map(|(i, p)| {
                format!("    server b{i} 127.0.0.1:{p} check inter 500ms fall 2 rise 1\n")
            })
            .collect();
        // HTTP mode, health checks on /health, WebSocket upgrades tunnelled (`timeout tunnel`),
        // a connection a dead server refuses retried on another (`retries` + `redispatch`: the
        // request was never sent, so this is safe).
        let config = format!(
            "global\n    maxconn 4096\n\
             defaults\n    mode http\n    timeout connect 1s\n    timeout client 60s\n    \
             timeout server 60s\n    timeout tunnel 1h\n    retries 3\n    option redispatch\n\
             frontend kubeline\n    bind 127.0.0.1:{front_port}\n    default_backend brokers\n\
             backend brokers\n    balance roundrobin\n    option httpchk GET /health\n    \
             http-check expect status 200\n{servers}"
        );
        let cfg = dir.join("haproxy.cfg");
        std::fs::write(&cfg, config).unwrap();
        let haproxy = spawn(
            "haproxy",
            &["-db".into(), "-f".into(), cfg.display().to_string()],
            &dir.join("haproxy.log"),
        );
        let front = format!("http://127.0.0.1:{front_port}");
        wait_for("HAProxy to answer", Duration::from_secs(15), async || {
            healthy(&http, &front).await
        })
        .await;
        let agent = spawn(
            env!("CARGO_BIN_EXE_kubeline"),
            &[
                "agent".into(),
                "--broker-url".into(),
                front.clone(),
                "--cluster-id".into(),
                CLUSTER.into(),
                "--token".into(),
                TOKEN.into(),
                "--kubeconfig".into(),
                kubeconfig.into(),
            ],
            &dir.join("agent.log"),
        );
        let status = format!("{front}/clusters/{CLUSTER}/status");
        wait_for("the agent to link", Duration::from_secs(30), async || {
            let r = http.get(&status).bearer_auth(KEY).send().await;
            match r {
                Ok(r) => r
                    .json::<Value>()
                    .await
                    .is_ok_and(|b| b["status"] == "connected"),
                Err(_) => false,
            }
        })
        .await;
        Self {
            dir,
            redis_url,
            ports,
            brokers,
            generation: 0,
            _redis: redis,
            _haproxy: haproxy,
            _agent: agent,
            front,
        }
    }

    /// Stops replica `i` (SIGTERM and its drain, or SIGKILL) and starts it again on its port.
    async fn restart(&mut self, i: usize, kill: bool) {
        let port = self.ports[i];
        let old = &mut self.brokers[i];
        if kill {
            old.signal("KILL");
            old.wait_exit(Duration::from_secs(5));
        } else {
            old.signal("TERM");
            old.wait_exit(Duration::from_secs(30));
        }
        self.generation += 1;
        self.brokers[i] = broker(&self.dir, &self.redis_url, port, self.generation);
        let url = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        wait_for(
            "the restarted broker to answer",
            Duration::from_secs(30),
            async || healthy(&http, &url).await,
        )
        .await;
    }
}

#[derive(Default)]
struct Counts {
    answered: AtomicU64,
    lost: AtomicU64,
    retried: AtomicU64,
    failed_results: AtomicU64,
}

/// One caller: requests one after another until `stop`, each retried with its key.
async fn caller(
    front: String,
    session: String,
    stop: Instant,
    counts: Arc<Counts>,
    latency: Arc<Mutex<Histogram<u64>>>,
) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(35))
        .build()
        .unwrap();
    let body = json!({ "cluster_id": CLUSTER, "session_id": session, "command_type": "get",
                       "args": ["pods", "-A"], "timeout": 25 });
    while Instant::now() < stop {
        let key = uuid::Uuid::new_v4().to_string();
        let started = Instant::now();
        let mut attempt = 0u32;
        loop {
            let sent = http
                .post(format!("{front}/debug/execute"))
                .bearer_auth(KEY)
                .header("idempotency-key", &key)
                .json(&body)
                .send()
                .await;
            let status = sent.as_ref().map(|r| r.status().as_u16()).ok();
            match (sent, status) {
                (Ok(r), Some(200)) => {
                    let result: Value = r.json().await.unwrap_or_default();
                    if result["status"] != "completed" {
                        counts.failed_results.fetch_add(1, Ordering::Relaxed);
                    }
                    counts.answered.fetch_add(1, Ordering::Relaxed);
                    let ms = started.elapsed().as_millis() as u64;
                    latency.lock().await.record(ms.max(1)).unwrap();
                    break;
                }
                // The connection died, the balancer had no server, or a replica was going away:
                // the same request again, with the same key.
                (Err(_), _) | (Ok(_), Some(502..=504)) => {}
                (Ok(r), _) => {
                    let text = r.text().await.unwrap_or_default();
                    panic!("unexpected answer: {text}");
                }
            }
            if started.elapsed() > GIVE_UP {
                counts.lost.fetch_add(1, Ordering::Relaxed);
                break;
            }
            attempt += 1;
            counts.retried.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis((50 * u64::from(attempt)).min(500))).await;
        }
    }
}

async fn run_mode(stack: &mut Stack, kill: bool, callers: usize, seconds: u64) -> (u64, u64) {
    let http = reqwest::Client::new();
    let mut sessions = Vec::new();
    for _ in 0..callers {
        let r: Value = http
            .post(format!("{}/debug/session", stack.front))
            .bearer_auth(KEY)
            .json(&json!({ "cluster_id": CLUSTER }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        sessions.push(r["session_id"].as_str().unwrap().to_owned());
    }
    let counts = Arc::new(Counts::default());
    let latency = Arc::new(Mutex::new(Histogram::<u64>::new(3).unwrap()));
    let started = Instant::now();
    let stop = started + Duration::from_secs(seconds);
    let tasks: Vec<_> = sessions
        .into_iter()
        .map(|s| {
            tokio::spawn(caller(
                stack.front.clone(),
                s,
                stop,
                counts.clone(),
                latency.clone(),
            ))
        })
        .collect();
    // Restart each replica in turn, spread over the run.
    let gap = Duration::from_secs(seconds) / (REPLICAS as u32 + 1);
    for i in 0..REPLICAS {
        tokio::time::sleep_until((started + gap * (i as u32 + 1)).into()).await;
        stack.restart(i, kill).await;
    }
    for t in tasks {
        t.await.unwrap();
    }
    let h = latency.lock().await;
    let answered = counts.answered.load(Ordering::Relaxed);
    let lost = counts.lost.load(Ordering::Relaxed);
    println!(
        "{:<8} {callers} callers, {seconds} s, each of {REPLICAS} replicas restarted: {answered} answered \
         ({:.0}/s), {lost} lost, {} retried, {} not completed; latency ms p50 {} p99 {} max {}",
        if kill { "kill -9" } else { "SIGTERM" },
        answered as f64 / started.elapsed().as_secs_f64(),
        counts.retried.load(Ordering::Relaxed),
        counts.failed_results.load(Ordering::Relaxed),
        h.value_at_quantile(0.5),
        h.value_at_quantile(0.99),
        h.max(),
    );
    (answered, lost)
}

#[tokio::main]
async fn main() {
    let kubeconfig = std::env::var("TESTBED_READER_KUBECONFIG").expect(
        "TESTBED_READER_KUBECONFIG is not set: run scripts/testbed up && eval \"$(scripts/testbed env)\" first",
    );
    // `cargo bench` passes `--bench`; under `cargo test --all-targets` this is a short check.
    let measuring = std::env::args().any(|a| a == "--bench");
    let (seconds, callers) = if measuring { ("60", "16") } else { ("6", "4") };
    let seconds: u64 = env_or("BENCH_SECONDS", seconds)
        .parse()
        .expect("BENCH_SECONDS");
    let callers: usize = env_or("BENCH_CALLERS", callers)
        .parse()
        .expect("BENCH_CALLERS");
    let modes = env_or("BENCH_MODES", "term,kill");
    let mut stack = Stack::start(&kubeconfig).await;
    println!("logs: {}", stack.dir.display());
    let mut lost_total = 0;
    for mode in modes.split(',') {
        let (answered, lost) = run_mode(&mut stack, mode.trim() == "kill", callers, seconds).await;
        assert!(answered > 0, "no request was answered");
        lost_total += lost;
    }
    assert_eq!(lost_total, 0, "requests were lost through the restarts");
    if std::env::var_os("BENCH_KEEP_LOGS").is_none() {
        let _ = std::fs::remove_dir_all(&stack.dir);
    }
}
