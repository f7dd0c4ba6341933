//! Soak: a steady moderate load for a long time, with the broker's and the agent's memory sampled.
//!
//! One `kubeline broker` on Redis, one `kubeline agent` process on the test bed, and idle agent
//! links (the agent's own link code, in this process) of which a tenth is restarted every
//! minute. Callers send `SOAK_RATE` executes a second (`get pods -A`, `get ns -o json`,
//! `version`, in turn), on sessions renewed every minute. Every `SOAK_SAMPLE_SECONDS` the
//! broker's and the agent's resident memory is read from /proc: all of it and its anonymous
//! part (heap and stacks; the rest is mapped files, mostly the executable's own code). At the
//! end: executes answered, failed and lost, and the memory slopes (least squares over the run
//! after its first fifth, KiB per minute) of each process. The bound holds the anonymous part.
//!
//! ```text
//! scripts/testbed up && eval "$(scripts/testbed env)"
//! cargo bench --bench soak                              # 30 minutes
//! SOAK_MINUTES=5 SOAK_RATE=100 cargo bench --bench soak
//! ```
//!
//! A measuring run prints the memory of both every 30 samples (5 minutes by default), and fails
//! when ten minutes or more long if an anonymous-memory slope passes
//! [`MAX_SLOPE_KIB_PER_MIN`]. Under `cargo test --all-targets` it runs for 15 s as a check that
//! nothing is lost or fails.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

mod common;
use common::{Proc, free_port, knob as env_or};
use kubeline_agent::link::{Commands, LinkConfig};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const KEY: &str = "soak-key";
const CLUSTER: &str = "soak";
const TOKEN: &str = "soak-token";
/// The bound a long run is held to: about 3 MiB over 30 minutes.
const MAX_SLOPE_KIB_PER_MIN: f64 = 100.0;

fn spawn(program: &str, args: &[&str], env: &[(&str, String)], log: &std::path::Path) -> Proc {
    let out = std::fs::File::create(log).expect("log file");
    let err = out.try_clone().expect("log file");
    let mut command = Command::new(program);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    for (k, v) in env {
        command.env(k, v);
    }
    Proc(
        command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {program}: {e}")),
    )
}

/// A process's resident memory in KiB: all of it (`VmRSS`) and its anonymous part (`RssAnon`:
/// heap, thread stacks). The rest is pages of files it maps, chiefly its own executable's code
/// as more of it gets run: reclaimable, shared with the page cache, and not what a leak grows.
#[derive(Clone, Copy, Default)]
struct Mem {
    rss: u64,
    anon: u64,
}

fn mem_kib(pid: u32) -> Option<Mem> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    Some(Mem {
        rss: field("VmRSS:")?,
        anon: field("RssAnon:")?,
    })
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Least-squares slope of `(minutes, KiB)` points, in KiB per minute.
fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    if n < 2.0 {
        return 0.0;
    }
    let (sx, sy) = points
        .iter()
        .fold((0.0, 0.0), |(a, b), (x, y)| (a + x, b + y));
    let (mx, my) = (sx / n, sy / n);
    let (num, den) = points.iter().fold((0.0, 0.0), |(a, b), (x, y)| {
        (a + (x - mx) * (y - my), b + (x - mx) * (x - mx))
    });
    if den == 0.0 { 0.0 } else { num / den }
}

#[derive(Default)]
struct Counts {
    completed: AtomicU64,
    failed: AtomicU64,
    refused: AtomicU64,
    lost: AtomicU64,
}

async fn session(http: &reqwest::Client, url: &str) -> String {
    let r: Value = http
        .post(format!("{url}/debug/session"))
        .bearer_auth(KEY)
        .json(&json!({ "cluster_id": CLUSTER }))
        .send()
        .await
        .expect("create a session")
        .json()
        .await
        .expect("session body");
    r["session_id"].as_str().expect("session_id").to_owned()
}

#[tokio::main]
async fn main() {
    let kubeconfig = std::env::var("TESTBED_READER_KUBECONFIG").expect(
        "TESTBED_READER_KUBECONFIG is not set: run scripts/testbed up && eval \"$(scripts/testbed env)\" first",
    );
    let measuring = std::env::args().any(|a| a == "--bench");
    let seconds: u64 = if measuring {
        env_or::<u64>("SOAK_MINUTES", 30) * 60
    } else {
        15
    };
    let rate: u64 = env_or("SOAK_RATE", 40);
    let idle: usize = env_or("SOAK_IDLE_LINKS", if measuring { 1000 } else { 50 });
    let sample = Duration::from_secs(env_or(
        "SOAK_SAMPLE_SECONDS",
        if measuring { 10 } else { 1 },
    ));
    let dir = std::env::temp_dir().join(format!("kubeline-soak-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();

    let redis_port = free_port();
    let port = redis_port.to_string();
    let _redis = spawn(
        "redis-server",
        &[
            "--port",
            &port,
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        &[],
        &dir.join("redis.log"),
    );
    let broker_port = free_port();
    let url = format!("http://127.0.0.1:{broker_port}");
    let mut tokens = vec![format!("{CLUSTER}={TOKEN}")];
    tokens.extend((0..idle).map(|i| format!("idle{i}=t{i}")));
    let listen = format!("127.0.0.1:{broker_port}");
    let redis_url = format!("redis://127.0.0.1:{redis_port}/");
    let admin = format!("admin={KEY}");
    let no_limits = |name: &'static str| (name, "0".to_owned());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let broker = spawn(
        env!("CARGO_BIN_EXE_kubeline"),
        &[
            "broker",
            "--listen",
            &listen,
            "--redis-url",
            &redis_url,
            "--api-key",
            &admin,
        ],
        &[
            ("KUBELINE_AGENT_TOKENS", tokens.join(",")),
            no_limits("KUBELINE_RATE_LIMIT_SESSION_CREATE"),
            no_limits("KUBELINE_RATE_LIMIT_EXECUTE"),
            no_limits("KUBELINE_RATE_LIMIT_STANDARD"),
            ("RUST_LOG", "warn".to_owned()),
        ],
        &dir.join("broker.log"),
    );
    let agent = spawn(
        env!("CARGO_BIN_EXE_kubeline"),
        &[
            "agent",
            "--broker-url",
            &url,
            "--cluster-id",
            CLUSTER,
            "--token",
            TOKEN,
            "--kubeconfig",
            &kubeconfig,
        ],
        &[("RUST_LOG", "warn".to_owned())],
        &dir.join("agent.log"),
    );
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let status = format!("{url}/clusters/{CLUSTER}/status");
    let started = Instant::now();
    loop {
        let linked = match http.get(&status).bearer_auth(KEY).send().await {
            Ok(r) => r
                .json::<Value>()
                .await
                .is_ok_and(|b| b["status"] == "connected"),
            Err(_) => false,
        };
        if linked {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the agent did not link (logs in {})",
            dir.display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Idle links: the agent's link code, a tenth restarted every minute.
    let commands: &'static Commands = Box::leak(Box::new(Commands::new(1, 1).unwrap()));
    let kube_config = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
    let executor =
        kubeline_agent::exec::Executor::new(kube::Client::try_from(kube_config).unwrap());
    let link = |i: usize| {
        let token = CancellationToken::new();
        let config = LinkConfig {
            broker_url: url.clone(),
            cluster_id: format!("idle{i}"),
            token: format!("t{i}"),
            max_concurrency: 1,
            max_streams: 1,
            tls: kubeline_agent::tls::ClientTls::default(),
            labels: Default::default(),
        };
        tokio::spawn(kubeline_agent::link::run_on(
            config,
            executor.clone(),
            commands,
            token.clone(),
        ));
        token
    };
    let mut idle_links: Vec<CancellationToken> = (0..idle).map(link).collect();

    let counts = Arc::new(Counts::default());
    let current = Arc::new(tokio::sync::RwLock::new(session(&http, &url).await));
    const COMMANDS: [(&str, &[&str]); 3] = [
        ("get", &["pods", "-A"]),
        ("get", &["ns", "-o", "json"]),
        ("version", &[]),
    ];
    let in_flight = Arc::new(tokio::sync::Semaphore::new(64));
    let mut tick = tokio::time::interval(Duration::from_secs(1) / rate.max(1) as u32);
    let mut samples: Vec<(f64, Mem, Mem)> = Vec::new();
    let mut next_sample = Instant::now();
    let mut next_minute = Instant::now() + Duration::from_secs(60);
    let mut restarted = 0usize;
    let stop = Instant::now() + Duration::from_secs(seconds);
    let t0 = Instant::now();
    let mut sent = 0u64;
    while Instant::now() < stop {
        tick.tick().await;
        let (command_type, args) = COMMANDS[(sent % 3) as usize];
        sent += 1;
        let permit = in_flight.clone().acquire_owned().await.unwrap();
        let (client, base, tally, sessions) =
            (http.clone(), url.clone(), counts.clone(), current.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let session = sessions.read().await.clone();
            let body = json!({ "cluster_id": CLUSTER, "session_id": session,
                               "command_type": command_type, "args": args, "timeout": 20 });
            let answer = client
                .post(format!("{base}/debug/execute"))
                .bearer_auth(KEY)
                .json(&body)
                .send()
                .await;
            let counter = match answer {
                Ok(r) if r.status().is_success() => {
                    let v: Value = r.json().await.unwrap_or_default();
                    if v["status"] == "completed" {
                        &tally.completed
                    } else {
                        &tally.failed
                    }
                }
                // The session expired between the read and the request, or a limit: refused
                // with a contract error, nothing lost.
                Ok(r) if r.status().is_client_error() => &tally.refused,
                _ => &tally.lost,
            };
            counter.fetch_add(1, Ordering::Relaxed);
        });
        if Instant::now() >= next_sample {
            next_sample += sample;
            let minutes = t0.elapsed().as_secs_f64() / 60.0;
            let b = mem_kib(broker.0.id()).expect("the broker is running");
            let a = mem_kib(agent.0.id()).expect("the agent is running");
            samples.push((minutes, b, a));
            if measuring && samples.len() % 30 == 1 {
                println!(
                    "{minutes:5.1} min: broker RSS {:.1} MiB (anonymous {:.1}), agent RSS {:.1} \
                     MiB (anonymous {:.1}), {} completed",
                    mib(b.rss),
                    mib(b.anon),
                    mib(a.rss),
                    mib(a.anon),
                    counts.completed.load(Ordering::Relaxed)
                );
            }
        }
        if Instant::now() >= next_minute {
            next_minute += Duration::from_secs(60);
            *current.write().await = session(&http, &url).await;
            // A tenth of the idle links go away and come back.
            let n = (idle / 10).max(1).min(idle);
            for k in 0..n {
                let i = (restarted + k) % idle;
                idle_links[i].cancel();
                idle_links[i] = link(i);
            }
            restarted += n;
        }
    }
    // Let the last requests finish.
    let _ = in_flight.acquire_many(64).await;
    for t in &idle_links {
        t.cancel();
    }
    let c = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let skip = samples.len() / 5;
    let slope_of = |pick: fn(&(f64, Mem, Mem)) -> u64| {
        let points: Vec<(f64, f64)> = samples[skip..]
            .iter()
            .map(|s| (s.0, pick(s) as f64))
            .collect();
        slope(&points)
    };
    let (broker_slope, agent_slope) = (slope_of(|s| s.1.anon), slope_of(|s| s.2.anon));
    let (broker_rss_slope, agent_rss_slope) = (slope_of(|s| s.1.rss), slope_of(|s| s.2.rss));
    let first = samples.get(skip).copied().unwrap_or_default();
    let last = samples.last().copied().unwrap_or_default();
    println!(
        "soak {:.1} min at {rate}/s with {idle} idle links ({restarted} link restarts): {} \
         completed, {} failed, {} refused, {} lost",
        t0.elapsed().as_secs_f64() / 60.0,
        c(&counts.completed),
        c(&counts.failed),
        c(&counts.refused),
        c(&counts.lost),
    );
    println!(
        "broker anonymous {:.1} -> {:.1} MiB, slope {broker_slope:.1} KiB/min (RSS {:.1} -> {:.1} \
         MiB, {broker_rss_slope:.1} KiB/min); agent anonymous {:.1} -> {:.1} MiB, slope \
         {agent_slope:.1} KiB/min (RSS {:.1} -> {:.1} MiB, {agent_rss_slope:.1} KiB/min) (after \
         the first fifth; {} samples)",
        mib(first.1.anon),
        mib(last.1.anon),
        mib(first.1.rss),
        mib(last.1.rss),
        mib(first.2.anon),
        mib(last.2.anon),
        mib(first.2.rss),
        mib(last.2.rss),
        samples.len()
    );
    assert_eq!(
        c(&counts.lost),
        0,
        "executes lost (logs in {})",
        dir.display()
    );
    assert_eq!(
        c(&counts.failed),
        0,
        "executes failed (logs in {})",
        dir.display()
    );
    assert!(c(&counts.completed) > 0, "nothing completed");
    if measuring && seconds >= 600 {
        assert!(
            broker_slope < MAX_SLOPE_KIB_PER_MIN && agent_slope < MAX_SLOPE_KIB_PER_MIN,
            "anonymous memory grows past {MAX_SLOPE_KIB_PER_MIN} KiB/min"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
