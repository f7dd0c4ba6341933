//! Reconnect storms: thousands of real agent links come back after their broker dies.
//!
//! N agent links run in this process — the agent's own link code (`kubeline_agent::link::run_on`,
//! one command runtime shared by all), each with its own cluster id and agent token — through
//! HAProxy (HTTP mode, `/health` checks every 500 ms, WebSocket tunnels) to two `kubeline
//! broker` replicas on one Redis. Two phases:
//!
//! 1. **kill -9**: every link on replica A, replica B stopped. A is killed with SIGKILL and
//!    started again at once: how long until every link is back, and what A spends meanwhile
//!    (CPU, peak RSS, links turned away by its paced admissions and told when to return).
//! 2. **rolling (SIGTERM)**: B is started, then A gets SIGTERM: A tells each agent to come back
//!    after a random 0–5 s, HAProxy sends them to B: how long until every link is on B, and what
//!    B spends meanwhile.
//!
//! ```text
//! cargo bench --bench storm                                   # 10,000 links
//! STORM_LINKS=2000 STORM_ADMISSIONS=500 cargo bench --bench storm
//! ```
//!
//! Needs `redis-server` and `haproxy` on PATH (`scripts/test` installs both). Under
//! `cargo test --all-targets` it runs short (300 links, 100 admissions a second so the pacing is
//! exercised) and fails if any link is not back within 30 s.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{Proc, free_port, knob as env_or};
use kubeline_agent::link::{Commands, LinkConfig};
use tokio_util::sync::CancellationToken;

const KEY: &str = "storm-key";
/// Every link must be back within this long after its broker died.
const BACK_WITHIN: Duration = Duration::from_secs(30);

/// Starts `program` with its open-file limit raised as far as it goes, its output to `log`.
fn spawn(program: &str, args: &[String], env: &[(&str, String)], log: &Path) -> Proc {
    let out = std::fs::File::create(log).expect("log file");
    let err = out.try_clone().expect("log file");
    let mut command = Command::new("bash");
    command
        .arg("-c")
        .arg("ulimit -n \"$(ulimit -Hn)\"; exec \"$@\"")
        .arg("bash")
        .arg(program)
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

/// CPU time (user + system) and resident memory of a process, from /proc.
fn usage(pid: u32) -> Option<(Duration, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which is in parentheses and may hold spaces).
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    // USER_HZ is 100 on Linux.
    Some((Duration::from_millis(ticks * 10), rss_kib))
}

struct Fleet {
    dir: PathBuf,
    n: usize,
    admissions: u32,
    redis_url: String,
    tokens: String,
    ports: [u16; 2],
    brokers: [Option<Proc>; 2],
    generation: usize,
    http: reqwest::Client,
    _redis: Proc,
    _haproxies: Vec<Proc>,
    /// The balancers' addresses; link `i` dials `fronts[i % fronts.len()]`.
    fronts: Vec<String>,
}

impl Fleet {
    fn broker(&mut self, i: usize) {
        let port = self.ports[i];
        self.generation += 1;
        let args: Vec<String> = [
            "broker",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--redis-url",
            &self.redis_url,
            "--api-key",
            &format!("admin={KEY}"),
            "--drain-seconds",
            "2",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        let env = [
            ("KUBELINE_AGENT_TOKENS", self.tokens.clone()),
            (
                "KUBELINE_LINK_ADMISSIONS_PER_SECOND",
                self.admissions.to_string(),
            ),
            ("RUST_LOG", "warn".to_owned()),
        ];
        let log = self
            .dir
            .join(format!("broker-{}-{}.log", i, self.generation));
        self.brokers[i] = Some(spawn(env!("CARGO_BIN_EXE_kubeline"), &args, &env, &log));
    }

    fn pid(&self, i: usize) -> u32 {
        self.brokers[i].as_ref().expect("broker running").pid()
    }

    /// A replica's counters from its `/metrics`: linked agents and paced refusals.
    async fn counts(&self, i: usize) -> Option<(u64, u64)> {
        let url = format!("http://127.0.0.1:{}/metrics", self.ports[i]);
        let response = self.http.get(url).bearer_auth(KEY).send().await.ok()?;
        let text = response.error_for_status().ok()?.text().await.ok()?;
        let value = |prefix: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(prefix))
                .and_then(|v| v.trim().parse::<f64>().ok())
                .map_or(0, |v| v as u64)
        };
        Some((
            value("kubeline_agents_connected "),
            value("kubeline_agent_link_events_total{event=\"paced\"} "),
        ))
    }

    async fn healthy(&self, url: &str) -> bool {
        matches!(self.http.get(format!("{url}/health")).send().await, Ok(r) if r.status().is_success())
    }
}

/// What a replica did while the links came back.
struct Watch {
    /// From the event to the last link back.
    back_in: Option<Duration>,
    cpu: Duration,
    peak_rss_kib: u64,
    /// Most CPU in any one second, in percent of one core.
    peak_cpu_pct: f64,
    paced: u64,
}

/// Watches replica `i` from `since` until it holds every link (or the deadline).
async fn watch(fleet: &Fleet, i: usize, since: Instant, deadline: Duration) -> Watch {
    let pid = fleet.pid(i);
    let first = usage(pid).unwrap_or_default();
    let mut last_second = (Instant::now(), first.0);
    let mut w = Watch {
        back_in: None,
        cpu: Duration::ZERO,
        peak_rss_kib: first.1,
        peak_cpu_pct: 0.0,
        paced: 0,
    };
    while since.elapsed() < deadline {
        let counts = fleet.counts(i).await;
        if let Some((cpu, rss)) = usage(pid) {
            w.peak_rss_kib = w.peak_rss_kib.max(rss);
            w.cpu = cpu.saturating_sub(first.0);
            if last_second.0.elapsed() >= Duration::from_secs(1) {
                let pct = (cpu.saturating_sub(last_second.1)).as_secs_f64()
                    / last_second.0.elapsed().as_secs_f64()
                    * 100.0;
                w.peak_cpu_pct = w.peak_cpu_pct.max(pct);
                last_second = (Instant::now(), cpu);
            }
        }
        if let Some((linked, paced)) = counts {
            w.paced = paced;
            if linked as usize >= fleet.n {
                w.back_in = Some(since.elapsed());
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    w
}

fn report(what: &str, n: usize, w: &Watch) {
    let back = w.back_in.map_or("NOT all back".to_owned(), |d| {
        format!("all back in {:.1} s", d.as_secs_f64())
    });
    println!(
        "{what}: {n} links {back}; broker CPU {:.1} s (peak {:.0}% of a core over 1 s), peak RSS \
         {:.0} MiB, {} dials paced (told when to return)",
        w.cpu.as_secs_f64(),
        w.peak_cpu_pct,
        w.peak_rss_kib as f64 / 1024.0,
        w.paced,
    );
}

#[tokio::main]
async fn main() {
    let measuring = std::env::args().any(|a| a == "--bench");
    let n: usize = env_or("STORM_LINKS", if measuring { 10_000 } else { 300 });
    let admissions: u32 = env_or(
        "STORM_ADMISSIONS",
        if measuring {
            kubeline_broker::admissions::DEFAULT_LINK_ADMISSIONS_PER_SECOND
        } else {
            100
        },
    );
    rlimit::increase_nofile_limit(n as u64 * 2 + 1024).expect("raise the open-file limit");
    let dir = std::env::temp_dir().join(format!("kubeline-storm-{}", std::process::id()));
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
        &[],
        &dir.join("redis.log"),
    );
    let ports = [free_port(), free_port()];
    // A process may hold at most 20,000 files on this machine, and a balancer holds two per
    // link: one HAProxy per 8,000 links, the agents spread over them.
    let balancers = n.div_ceil(8_000);
    let per_balancer = n.div_ceil(balancers);
    // Health checks every second (2 s to answer), down after 3 failures, up after 1 success; a
    // dial that a dead server refuses is tried on the other (`redispatch`).
    let servers: String = ports
        .iter()
        .enumerate()
        .map(|(i, p)| format!("    server b{i} 127.0.0.1:{p} check inter 1s fall 3 rise 1\n"))
        .collect();
    let maxconn = per_balancer + 512;
    let mut haproxies = Vec::new();
    let mut fronts = Vec::new();
    for b in 0..balancers {
        let front_port = free_port();
        let config = format!(
            "global\n    maxconn {maxconn}\n\
             defaults\n    mode http\n    maxconn {maxconn}\n    timeout connect 1s\n    \
             timeout check 2s\n    timeout client 60s\n    timeout server 60s\n    timeout tunnel 1h\n    retries 3\n    \
             option redispatch\n\
             frontend agents\n    bind 127.0.0.1:{front_port}\n    default_backend brokers\n\
             backend brokers\n    balance roundrobin\n    option httpchk GET /health\n    \
             http-check expect status 200\n{servers}"
        );
        let cfg = dir.join(format!("haproxy-{b}.cfg"));
        std::fs::write(&cfg, config).unwrap();
        haproxies.push(spawn(
            "haproxy",
            &["-db".into(), "-f".into(), cfg.display().to_string()],
            &[],
            &dir.join(format!("haproxy-{b}.log")),
        ));
        fronts.push(format!("http://127.0.0.1:{front_port}"));
    }
    let tokens: Vec<String> = (0..n).map(|i| format!("s{i}=t{i}")).collect();
    let mut fleet = Fleet {
        dir: dir.clone(),
        n,
        admissions,
        redis_url: format!("redis://127.0.0.1:{redis_port}/"),
        tokens: tokens.join(","),
        ports,
        brokers: [None, None],
        generation: 0,
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap(),
        _redis: redis,
        _haproxies: haproxies,
        fronts,
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    fleet.broker(0);
    let started = Instant::now();
    for front in &fleet.fronts {
        while !fleet.healthy(front).await {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "broker A never answered through HAProxy (logs in {})",
                dir.display()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    // The agents: the real link code, one shared command runtime; no command is sent to them,
    // so their Kubernetes client points nowhere (the hello's version lookup fails fast).
    let commands: &'static Commands = Box::leak(Box::new(Commands::new(1, 1).unwrap()));
    let kube_config = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
    let executor =
        kubeline_agent::exec::Executor::new(kube::Client::try_from(kube_config).unwrap());
    let shutdown = CancellationToken::new();
    let before = usage(std::process::id()).map_or(0, |u| u.1);
    // The links run on a runtime of their own, so a storm of dials does not hold up the
    // measurements taken on this one.
    let agents: &'static tokio::runtime::Runtime = Box::leak(Box::new(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap(),
    ));
    for i in 0..n {
        let config = LinkConfig {
            broker_url: fleet.fronts[i % fleet.fronts.len()].clone(),
            cluster_id: format!("s{i}"),
            token: format!("t{i}"),
            max_concurrency: 1,
            max_streams: 1,
            tls: kubeline_agent::tls::ClientTls::default(),
            labels: Default::default(),
        };
        agents.spawn(kubeline_agent::link::run_on(
            config,
            executor.clone(),
            commands,
            shutdown.child_token(),
        ));
    }
    let first = watch(&fleet, 0, started, Duration::from_secs(120)).await;
    report("first start", n, &first);
    assert!(first.back_in.is_some(), "the links never all came up");
    let after = usage(std::process::id()).map_or(0, |u| u.1);
    println!(
        "agent side: {n} links in one process, {:.1} KiB each",
        (after.saturating_sub(before)) as f64 / n as f64
    );
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Phase 1: kill -9 and start again at once.
    let killed = Instant::now();
    let mut a = fleet.brokers[0].take().unwrap();
    a.signal("KILL");
    a.wait_exit(Duration::from_secs(5));
    fleet.broker(0);
    let storm = watch(&fleet, 0, killed, BACK_WITHIN + Duration::from_secs(30)).await;
    report("kill -9 and restart", n, &storm);

    // Phase 2: B up, A drained with SIGTERM: the links move to B.
    fleet.broker(1);
    let url_b = format!("http://127.0.0.1:{}", fleet.ports[1]);
    let up = Instant::now();
    while !fleet.healthy(&url_b).await {
        assert!(
            up.elapsed() < Duration::from_secs(30),
            "broker B never answered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // HAProxy sees B up within one check.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let termed = Instant::now();
    fleet.brokers[0].as_ref().unwrap().signal("TERM");
    let rolling = watch(&fleet, 1, termed, BACK_WITHIN + Duration::from_secs(30)).await;
    report("SIGTERM (links move to the other replica)", n, &rolling);
    if let Some(mut a) = fleet.brokers[0].take() {
        a.wait_exit(Duration::from_secs(30));
    }

    shutdown.cancel();
    let kept = storm.back_in.is_none_or(|d| d > BACK_WITHIN)
        || rolling.back_in.is_none_or(|d| d > BACK_WITHIN);
    if kept {
        panic!(
            "links were not all back within {BACK_WITHIN:?} (broker logs in {})",
            dir.display()
        );
    }
    if !measuring {
        assert!(
            storm.paced > 0,
            "the smoke run should have paced some dials ({n} links at {admissions}/s)"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
