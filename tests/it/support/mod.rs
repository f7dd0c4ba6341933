//! The harness of the integration tests: real `redis-server` processes and Redis Clusters,
//! real `kubeline broker` and `kubeline agent` processes ([`Stack`] starts them together), the
//! test bed ([`bed`]), WebSockets to a broker ([`ws`]), and what tests sharing one process need:
//! ports never handed out twice, a lock for tests that need the machine to themselves, and a
//! way to run a test in a process of its own.
#![allow(dead_code)]

pub mod bed;
pub mod stack;
pub mod ws;

use std::collections::HashSet;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub use bed::reader_kubeconfig;
pub use stack::Stack;

pub const ADMIN_KEY: &str = "e2e-admin-key";
pub const READ_KEY: &str = "e2e-read-key";
pub const CLUSTER: &str = "bed";
pub const AGENT_TOKEN: &str = "e2e-agent-token";

/// Ports handed out in this process: all tests share it, and a port found free is not bound
/// until its server starts, so two tests could otherwise be given the same one.
static PORTS: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// A port nobody listens on right now, never handed out before in this process.
pub fn free_port() -> u16 {
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("bind an ephemeral port");
        if reserve(&[port]) {
            return port;
        }
    }
}

/// Marks `ports` as handed out, all or none; false if one of them was already.
fn reserve(ports: &[u16]) -> bool {
    let mut handed = PORTS.lock().unwrap_or_else(|e| e.into_inner());
    let handed = handed.get_or_insert_with(HashSet::new);
    if ports.iter().any(|p| handed.contains(p)) {
        return false;
    }
    handed.extend(ports);
    true
}

/// Held by tests that must not share the machine with each other: Redis Clusters (six servers
/// each, failovers timed), a hundred streams, memory figures. Other tests still run beside.
static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Waits until no other heavy test runs; the guard lets the next one go.
pub async fn heavy() -> tokio::sync::MutexGuard<'static, ()> {
    HEAVY.lock().await
}

/// The variable that tells a test it runs in a process of its own (see [`alone`]).
const ALONE: &str = "KUBELINE_TEST_ALONE";

/// Runs the test `module::test` (pass `module_path!()`) in a process of its own — this test
/// binary, filtered to that one test — for tests that measure their own process (its memory),
/// which other tests running in this one would disturb. Returns true in that process, where
/// the test goes on; false in the one that started it, once it passed (its output is printed
/// here, so `--nocapture` shows it).
pub fn alone(module: &str, test: &str) -> bool {
    let module = module.split_once("::").map_or("", |(_, m)| m);
    let name = format!("{module}::{test}");
    if std::env::var(ALONE).is_ok_and(|v| v == name) {
        return true;
    }
    // This very binary, even if a rebuild replaced the file meanwhile.
    let out = Command::new("/proc/self/exe")
        .args([&name, "--exact", "--nocapture", "--test-threads=1"])
        .env(ALONE, &name)
        .output()
        .expect("run the test binary");
    print!("{}", String::from_utf8_lossy(&out.stdout));
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    let ran = String::from_utf8_lossy(&out.stdout).contains("1 passed");
    assert!(
        out.status.success() && ran,
        "{name} failed in a process of its own (its output is above)"
    );
    false
}

/// Polls `check` until it returns `Some` or `within` passes.
pub async fn eventually<T, F, Fut>(what: &str, within: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn log_dir() -> PathBuf {
    let dir = std::env::temp_dir().join("kubeline-e2e-logs");
    std::fs::create_dir_all(&dir).expect("create log dir");
    dir
}

/// A fresh log file path for process `name`: tests share this process (and its id), so a
/// counter keeps two tests' processes of the same name apart.
fn log_path(name: &str) -> PathBuf {
    static COUNT: AtomicUsize = AtomicUsize::new(0);
    let n = COUNT.fetch_add(1, Ordering::Relaxed);
    log_dir().join(format!("{name}-{}-{n}.log", std::process::id()))
}

/// Resident memory of process `pid`, in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/status: {e}"));
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

// === redis ===

/// A private `redis-server` on a free port, without persistence.
pub struct Redis {
    pub port: u16,
    child: Option<Child>,
}

impl Redis {
    pub async fn start() -> Self {
        let mut redis = Self {
            port: free_port(),
            child: None,
        };
        redis.restart().await;
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// A server on `port` (where a broker may be waiting for it already).
    pub async fn start_on(port: u16) -> Self {
        let mut redis = Self { port, child: None };
        redis.restart().await;
        redis
    }

    /// Starts (again) on the same port.
    pub async fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (scripts/test installs it)");
        self.child = Some(child);
        let port = self.port;
        eventually("redis to listen", Duration::from_secs(10), || async move {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok()
        })
        .await;
    }

    /// Kills the server (SIGKILL) and waits for it to be gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A Redis Cluster of 3 masters and 3 replicas on free loopback ports, created with
/// `redis-cli --cluster create`, with a password (`requirepass`/`masterauth`) so that every
/// cluster test also checks authentication. The nodes' files live in a temporary directory;
/// every process is killed on drop.
pub struct RedisCluster {
    pub ports: Vec<u16>,
    pub password: String,
    nodes: Vec<Option<Child>>,
    dir: PathBuf,
    /// With TLS (clients, replication and the cluster bus): the CA and the nodes' pair.
    tls: Option<RedisTlsFiles>,
}

/// A CA and a server certificate for 127.0.0.1, as PEM files in `dir`, for Redis over TLS.
#[derive(Clone)]
pub struct RedisTlsFiles {
    pub ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

impl RedisTlsFiles {
    pub fn new(dir: &std::path::Path) -> Self {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
        let ca_key = KeyPair::generate().expect("a CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        // OpenSSL (redis-cli, and the nodes among themselves) finds the issuer by its name.
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "kubeline test Redis CA");
        let ca_cert = ca_params.self_signed(&ca_key).expect("a CA certificate");
        let issuer = Issuer::new(ca_params, ca_key);
        let key = KeyPair::generate().expect("a server key");
        let params = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .expect("server params");
        let cert = params
            .signed_by(&key, &issuer)
            .expect("a server certificate");
        std::fs::create_dir_all(dir).expect("create the TLS directory");
        let files = Self {
            ca: dir.join("ca.pem"),
            cert: dir.join("redis.pem"),
            key: dir.join("redis.key"),
        };
        std::fs::write(&files.ca, ca_cert.pem()).expect("write the CA");
        std::fs::write(&files.cert, cert.pem()).expect("write the certificate");
        std::fs::write(&files.key, key.serialize_pem()).expect("write the key");
        files
    }

    /// `redis-server` flags serving TLS only, on `port`.
    fn server_args(&self, port: u16) -> Vec<String> {
        let path = |p: &PathBuf| p.display().to_string();
        [
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
            "--tls-cert-file",
            &path(&self.cert),
            "--tls-key-file",
            &path(&self.key),
            "--tls-ca-cert-file",
            &path(&self.ca),
            "--tls-auth-clients",
            "no",
        ]
        .iter()
        .map(|a| (*a).to_owned())
        .collect()
    }

    /// `redis-cli` flags for a TLS server signed by this CA.
    fn cli_args(&self) -> Vec<String> {
        vec![
            "--tls".to_owned(),
            "--cacert".to_owned(),
            self.ca.display().to_string(),
        ]
    }
}

/// One `redis-server` serving TLS only (no plain port), on a free port, killed on drop.
pub struct TlsRedis {
    pub port: u16,
    pub files: RedisTlsFiles,
    child: Child,
    dir: PathBuf,
}

impl TlsRedis {
    pub async fn start() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "kubeline-redis-tls-{}-{}",
            std::process::id(),
            uuid_like()
        ));
        let files = RedisTlsFiles::new(&dir);
        let port = free_port();
        let child = Command::new("redis-server")
            .args(files.server_args(port))
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (scripts/test installs it)");
        eventually("redis to listen", Duration::from_secs(10), || async move {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok()
        })
        .await;
        Self {
            port,
            files,
            child,
            dir,
        }
    }

    pub fn url(&self) -> String {
        format!("rediss://127.0.0.1:{}/", self.port)
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `cluster-node-timeout` of [`RedisCluster`]: a master that stops answering is replaced by
/// its replica this long after, plus an election (well under a second on loopback).
pub const CLUSTER_NODE_TIMEOUT_MS: u64 = 1000;

/// The password of every [`RedisCluster`].
pub const CLUSTER_PASSWORD: &str = "cluster-pw";

/// Six free ports for a [`RedisCluster`], each with its cluster bus port (+10000) free too
/// (both reserved, see [`free_port`]).
pub fn cluster_ports() -> Vec<u16> {
    let mut ports = Vec::new();
    while ports.len() < 6 {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("bind an ephemeral port");
        if port < 55535
            && TcpListener::bind(("127.0.0.1", port + 10000)).is_ok()
            && reserve(&[port, port + 10000])
        {
            ports.push(port);
        }
    }
    ports
}

/// The `redis+cluster://` URL of a [`RedisCluster`] on `ports`.
pub fn cluster_url(ports: &[u16]) -> String {
    let nodes: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    format!("redis+cluster://:{CLUSTER_PASSWORD}@{}", nodes.join(","))
}

impl RedisCluster {
    pub async fn start() -> Self {
        Self::start_on(cluster_ports()).await
    }

    /// A cluster on these six ports (see [`cluster_ports`]).
    pub async fn start_on(ports: Vec<u16>) -> Self {
        Self::create(ports, false).await
    }

    /// A cluster speaking TLS only, to clients, between master and replica and on the bus.
    pub async fn start_tls() -> Self {
        Self::create(cluster_ports(), true).await
    }

    async fn create(ports: Vec<u16>, tls: bool) -> Self {
        assert_eq!(ports.len(), 6, "three masters and three replicas");
        let dir = std::env::temp_dir().join(format!(
            "kubeline-redis-cluster-{}-{}",
            std::process::id(),
            uuid_like()
        ));
        std::fs::create_dir_all(&dir).expect("create the cluster's directory");
        let tls = tls.then(|| RedisTlsFiles::new(&dir.join("tls")));
        let mut cluster = Self {
            ports,
            password: CLUSTER_PASSWORD.to_owned(),
            nodes: Vec::new(),
            dir,
            tls,
        };
        for i in 0..6 {
            let child = cluster.spawn(cluster.ports[i]);
            cluster.nodes.push(Some(child));
        }
        for &port in &cluster.ports {
            eventually(
                "a cluster node to listen",
                Duration::from_secs(10),
                || async move { std::net::TcpStream::connect(("127.0.0.1", port)).ok() },
            )
            .await;
        }
        let mut create = Command::new("redis-cli");
        create.args(cluster.tls.iter().flat_map(RedisTlsFiles::cli_args));
        create.args([
            "-a",
            &cluster.password,
            "--no-auth-warning",
            "--cluster",
            "create",
        ]);
        create.args(cluster.ports.iter().map(|p| format!("127.0.0.1:{p}")));
        create.args(["--cluster-replicas", "1", "--cluster-yes"]);
        let out = create
            .output()
            .expect("redis-cli must be installed (scripts/test installs redis-tools)");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // Every node sees the whole cluster and every replica has its master's data.
        for &port in &cluster.ports.clone() {
            let cluster = &cluster;
            eventually(
                "the cluster to be ok",
                Duration::from_secs(20),
                || async move {
                    let info = cluster.cli(port, &["cluster", "info"]);
                    let repl = cluster.cli(port, &["info", "replication"]);
                    let synced =
                        repl.contains("role:master") || repl.contains("master_link_status:up");
                    (info.contains("cluster_state:ok") && synced).then_some(())
                },
            )
            .await;
        }
        cluster
    }

    fn spawn(&self, port: u16) -> Child {
        let dir = self.dir.join(port.to_string());
        std::fs::create_dir_all(&dir).expect("create a node's directory");
        Command::new("redis-server")
            .current_dir(&dir)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
            ])
            .args([
                "--cluster-node-timeout",
                &CLUSTER_NODE_TIMEOUT_MS.to_string(),
            ])
            .args([
                "--requirepass",
                &self.password,
                "--masterauth",
                &self.password,
            ])
            // Replicas sync at once (the default waits 5 s for more replicas to share a sync).
            .args(["--repl-diskless-sync-delay", "0"])
            .args(self.tls.iter().flat_map(|tls| {
                let mut args = tls.server_args(port);
                args.extend(["--tls-cluster", "yes", "--tls-replication", "yes"].map(String::from));
                args
            }))
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (scripts/test installs it)")
    }

    /// `redis+cluster://:PASSWORD@127.0.0.1:P1,…` naming every node.
    pub fn url(&self) -> String {
        let url = cluster_url(&self.ports);
        match self.tls {
            Some(_) => url.replacen("redis+cluster://", "rediss+cluster://", 1),
            None => url,
        }
    }

    /// The CA that signed the nodes' certificate, with TLS.
    pub fn ca_file(&self) -> Option<&std::path::Path> {
        self.tls.as_ref().map(|tls| tls.ca.as_path())
    }

    /// Runs `redis-cli` against one node and returns its output ("" when it fails).
    pub fn cli(&self, port: u16, args: &[&str]) -> String {
        Command::new("redis-cli")
            .args(self.tls.iter().flat_map(RedisTlsFiles::cli_args))
            .args([
                "-p",
                &port.to_string(),
                "-a",
                &self.password,
                "--no-auth-warning",
            ])
            .args(args)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }

    /// The node serving `key`'s slot as master (asked of a live node), and the slot.
    pub fn master_of(&self, key: &str) -> (u16, u16) {
        self.serving(key)
            .unwrap_or_else(|| panic!("no live master serves {key}"))
    }

    /// Like [`RedisCluster::master_of`], or `None` while no live master serves the slot (a
    /// failover under way).
    pub fn serving(&self, key: &str) -> Option<(u16, u16)> {
        let live = self.live_port();
        let slot: u16 = self
            .cli(live, &["cluster", "keyslot", key])
            .trim()
            .parse()
            .expect("CLUSTER KEYSLOT answers a number");
        let nodes = self.cli(live, &["cluster", "nodes"]);
        for line in nodes.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 9 || !fields[2].contains("master") || fields[2].contains("fail") {
                continue;
            }
            let serves = fields[8..].iter().any(|range| match range.split_once('-') {
                Some((a, b)) => {
                    a.parse::<u16>().is_ok_and(|a| a <= slot)
                        && b.parse::<u16>().is_ok_and(|b| slot <= b)
                }
                None => range.parse::<u16>() == Ok(slot),
            });
            if serves {
                let port = fields[1]
                    .split(['@', ':'])
                    .nth(1)
                    .and_then(|p| p.parse().ok())
                    .expect("CLUSTER NODES names host:port@bus");
                return Some((port, slot));
            }
        }
        None
    }

    fn live_port(&self) -> u16 {
        self.ports
            .iter()
            .zip(&self.nodes)
            .find(|(_, child)| child.is_some())
            .map(|(p, _)| *p)
            .expect("a live node")
    }

    /// Kills the node on `port` (SIGKILL) and waits for it to be gone.
    pub fn kill(&mut self, port: u16) {
        let i = self
            .ports
            .iter()
            .position(|p| *p == port)
            .expect("a node of this cluster");
        if let Some(mut child) = self.nodes[i].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Moves `slot` with its keys from master `from` to master `to`, the way
    /// `redis-cli --cluster reshard` moves each slot: IMPORTING/MIGRATING (clients are sent
    /// ASK meanwhile), MIGRATE of its keys in batches, then the new owner announced to every
    /// master (clients are sent MOVED from then on). `pause` runs between the batches.
    pub fn move_slot(&self, slot: u16, from: u16, to: u16, pause: impl Fn()) {
        let id = |port: u16| self.cli(port, &["cluster", "myid"]).trim().to_owned();
        let (from_id, to_id) = (id(from), id(to));
        let slot = slot.to_string();
        let ok = |out: String, what: &str| assert!(out.trim() == "OK", "{what}: {out}");
        ok(
            self.cli(to, &["cluster", "setslot", &slot, "importing", &from_id]),
            "importing",
        );
        ok(
            self.cli(from, &["cluster", "setslot", &slot, "migrating", &to_id]),
            "migrating",
        );
        loop {
            let keys = self.cli(from, &["cluster", "getkeysinslot", &slot, "10"]);
            let keys: Vec<&str> = keys.lines().filter(|k| !k.is_empty()).collect();
            if keys.is_empty() {
                break;
            }
            let to_port = to.to_string();
            let mut args = vec!["migrate", "127.0.0.1", &to_port, "", "0", "5000"];
            args.extend(["auth", &self.password, "keys"]);
            args.extend(keys.iter().copied());
            let out = self.cli(from, &args);
            assert!(
                out.trim() == "OK" || out.trim() == "NOKEY",
                "migrate: {out}"
            );
            pause();
        }
        for &port in &self.ports {
            if self
                .cli(port, &["info", "replication"])
                .contains("role:master")
            {
                self.cli(port, &["cluster", "setslot", &slot, "node", &to_id]);
            }
        }
    }

    /// Another master than `port`.
    pub fn other_master(&self, port: u16) -> u16 {
        *self
            .ports
            .iter()
            .zip(&self.nodes)
            .filter(|(p, child)| **p != port && child.is_some())
            .map(|(p, _)| p)
            .find(|p| {
                self.cli(**p, &["info", "replication"])
                    .contains("role:master")
            })
            .expect("another master")
    }
}

fn uuid_like() -> String {
    format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default()
    )
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for child in self.nodes.iter_mut().filter_map(Option::take) {
            let mut child = child;
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

// === kubeline processes ===

/// A `kubeline` command (the binary under test) that sees none of the caller's `KUBELINE_*`
/// variables: a developer's own broker URL, keys or tokens never leak into a test.
pub fn kubeline() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kubeline"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("KUBELINE_") {
            command.env_remove(name);
        }
    }
    command
}

/// A `kubeline` child process, killed on drop.
pub struct Proc {
    name: String,
    child: Option<Child>,
    /// Where its standard error goes.
    err_log: PathBuf,
}

impl Proc {
    /// Starts `kubeline ARGS` without waiting for anything (e.g. a broker whose Redis is not
    /// there yet).
    pub fn start(name: &str, args: &[String]) -> Self {
        Self::spawn(name, args)
    }

    /// Like [`Proc::start`], with more environment variables.
    pub fn start_with_env(name: &str, args: &[String], env: &[(&str, &str)]) -> Self {
        Self::spawn_with_env(name, args, env)
    }

    fn spawn(name: &str, args: &[String]) -> Self {
        Self::spawn_with_env(name, args, &[])
    }

    fn spawn_with_env(name: &str, args: &[String], env: &[(&str, &str)]) -> Self {
        let err_log = log_path(&format!("{name}.err"));
        let create = |path: &PathBuf| std::fs::File::create(path).expect("create a log file");
        let child = kubeline()
            .args(args)
            .envs(env.iter().copied())
            .env("RUST_LOG", "info")
            // Suites send far more than a person would: rate limits are off unless a test
            // turns them on with a flag (flags win over the environment).
            .env("KUBELINE_RATE_LIMIT_SESSION_CREATE", "0")
            .env("KUBELINE_RATE_LIMIT_EXECUTE", "0")
            .env("KUBELINE_RATE_LIMIT_STANDARD", "0")
            .stdout(create(&log_path(name)))
            .stderr(create(&err_log))
            .spawn()
            .expect("spawn kubeline");
        Self {
            name: name.to_owned(),
            child: Some(child),
            err_log,
        }
    }

    /// Sends a signal (`STOP`, `CONT`, …) by name.
    pub fn signal(&self, name: &str) {
        if let Some(child) = &self.child {
            let status = Command::new("kill")
                .args([&format!("-{name}"), &child.id().to_string()])
                .status()
                .expect("run kill");
            assert!(status.success(), "kill -{name} failed");
        }
    }

    /// Whether the process is still running (it has not exited or crashed).
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// SIGKILL: the process gets no chance to clean up.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then wait up to `within` for a clean exit.
    pub fn terminate(&mut self, within: Duration) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + within;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
            panic!("{} did not exit within {within:?} of SIGTERM", self.name);
        }
    }

    /// The process id (for its memory in `/proc`).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the process runs").id()
    }

    /// Its standard error so far (logs).
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.err_log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Options of a broker process.
pub struct BrokerOpts {
    pub port: u16,
    pub redis_url: Option<String>,
    /// More `kubeline broker` flags.
    pub extra: Vec<String>,
}

impl BrokerOpts {
    /// A broker on a free port with the embedded store.
    pub fn embedded() -> Self {
        Self {
            port: free_port(),
            redis_url: None,
            extra: Vec::new(),
        }
    }

    /// A broker on a free port using `redis`.
    pub fn redis(redis: &Redis) -> Self {
        Self {
            port: free_port(),
            redis_url: Some(redis.url()),
            extra: Vec::new(),
        }
    }

    /// Adds flags.
    pub fn with(mut self, flags: &[&str]) -> Self {
        self.extra.extend(flags.iter().map(|f| (*f).to_owned()));
        self
    }
}

/// Starts `kubeline broker` and waits until it answers.
pub async fn start_broker(name: &str, opts: BrokerOpts) -> (Proc, Api) {
    let api = Api::new(opts.port, ADMIN_KEY);
    start_broker_answering(name, opts, api).await
}

/// Starts `kubeline broker` and waits until it answers `api` (an https client that trusts the
/// broker's CA when `opts` has TLS flags, see [`Api::https`]).
pub async fn start_broker_answering(name: &str, opts: BrokerOpts, api: Api) -> (Proc, Api) {
    let mut args = vec![
        "broker".to_owned(),
        "--listen".to_owned(),
        format!("127.0.0.1:{}", opts.port),
        "--api-key".to_owned(),
        format!("admin={ADMIN_KEY}"),
        "--api-key".to_owned(),
        format!("read={READ_KEY}"),
        "--agent-token".to_owned(),
        format!("{CLUSTER}={AGENT_TOKEN}"),
        "--drain-seconds".to_owned(),
        "5".to_owned(),
    ];
    // Fast pings (dead links noticed in 1.5 s) unless the test sets its own.
    if !opts.extra.iter().any(|a| a == "--ping-interval-ms") {
        args.extend(["--ping-interval-ms".to_owned(), "500".to_owned()]);
    }
    args.extend(opts.extra);
    if let Some(url) = opts.redis_url {
        args.push("--redis-url".to_owned());
        args.push(url);
    }
    let proc = Proc::spawn(name, &args);
    let probe = api.clone();
    eventually("broker to answer /health", Duration::from_secs(30), || {
        let probe = probe.clone();
        async move { probe.get("/health").await.ok().filter(|(s, _)| *s == 200) }
    })
    .await;
    (proc, api)
}

/// Starts `kubeline agent` for the test bed against a broker on `port`.
pub fn start_agent(name: &str, port: u16, token: &str) -> Proc {
    start_agent_for(name, port, CLUSTER, token)
}

/// Starts `kubeline agent` for the test bed under another cluster id.
pub fn start_agent_for(name: &str, port: u16, cluster: &str, token: &str) -> Proc {
    start_agent_with(name, port, cluster, token, &[])
}

/// Starts `kubeline agent` for the test bed with more flags.
pub fn start_agent_with(name: &str, port: u16, cluster: &str, token: &str, extra: &[&str]) -> Proc {
    let url = format!("http://127.0.0.1:{port}");
    start_agent_at(name, &url, cluster, token, extra)
}

/// Starts `kubeline agent` for the test bed against the broker at `broker_url` (e.g. https://).
pub fn start_agent_at(
    name: &str,
    broker_url: &str,
    cluster: &str,
    token: &str,
    extra: &[&str],
) -> Proc {
    let mut args = vec![
        "agent".to_owned(),
        "--broker-url".to_owned(),
        broker_url.to_owned(),
        "--cluster-id".to_owned(),
        cluster.to_owned(),
        "--token".to_owned(),
        token.to_owned(),
        "--kubeconfig".to_owned(),
        reader_kubeconfig(),
    ];
    args.extend(extra.iter().map(|f| (*f).to_owned()));
    Proc::spawn(name, &args)
}

/// Waits until the broker on `api` reports the test cluster connected.
pub async fn wait_connected(api: &Api) {
    eventually("the agent to link", Duration::from_secs(30), || async {
        let (status, body) = api.get(&format!("/clusters/{CLUSTER}/status")).await.ok()?;
        (status == 200 && body["status"] == "connected").then_some(())
    })
    .await;
}

// === REST client ===

/// A REST client with one API key.
#[derive(Clone)]
pub struct Api {
    base: String,
    key: Option<String>,
    http: reqwest::Client,
}

impl Api {
    pub fn new(port: u16, key: &str) -> Self {
        Self {
            base: format!("http://127.0.0.1:{port}"),
            key: Some(key.to_owned()),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .expect("http client"),
        }
    }

    /// The broker's port.
    pub fn port(&self) -> u16 {
        self.base
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("the base URL ends with a port")
    }

    /// A client of the broker on `port` over https, trusting only the CA in `ca_pem`.
    pub fn https(port: u16, key: &str, ca_pem: &[u8]) -> Self {
        Self {
            base: format!("https://127.0.0.1:{port}"),
            key: Some(key.to_owned()),
            http: reqwest::Client::builder()
                .use_rustls_tls()
                .tls_built_in_root_certs(false)
                .add_root_certificate(reqwest::Certificate::from_pem(ca_pem).expect("CA PEM"))
                .timeout(Duration::from_secs(60))
                .build()
                .expect("https client"),
        }
    }

    pub fn with_key(&self, key: Option<&str>) -> Self {
        Self {
            key: key.map(str::to_owned),
            ..self.clone()
        }
    }

    fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let req = self.http.request(method, format!("{}{path}", self.base));
        match &self.key {
            Some(k) => req.bearer_auth(k),
            None => req,
        }
    }

    async fn send(req: reqwest::RequestBuilder) -> reqwest::Result<(u16, Value)> {
        let res = req.send().await?;
        let status = res.status().as_u16();
        let text = res.text().await?;
        Ok((
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        ))
    }

    pub async fn get(&self, path: &str) -> reqwest::Result<(u16, Value)> {
        Self::send(self.req(reqwest::Method::GET, path)).await
    }

    pub async fn delete(&self, path: &str) -> reqwest::Result<(u16, Value)> {
        Self::send(self.req(reqwest::Method::DELETE, path)).await
    }

    pub async fn post(&self, path: &str, body: Value) -> reqwest::Result<(u16, Value)> {
        Self::send(self.req(reqwest::Method::POST, path).json(&body)).await
    }

    pub async fn post_raw(
        &self,
        path: &str,
        body: &str,
        headers: &[(&str, &str)],
    ) -> reqwest::Result<(u16, reqwest::header::HeaderMap, Value)> {
        let mut req = self
            .req(reqwest::Method::POST, path)
            .header("content-type", "application/json")
            .body(body.to_owned());
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let res = req.send().await?;
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let text = res.text().await?;
        Ok((
            status,
            headers,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        ))
    }

    /// Creates a session on the test cluster and returns its id.
    pub async fn session(&self) -> String {
        let (status, body) = self
            .post("/debug/session", json!({ "cluster_id": CLUSTER }))
            .await
            .expect("create session");
        assert_eq!(status, 201, "{body}");
        body["session_id"].as_str().expect("session_id").to_owned()
    }

    pub async fn execute(&self, session: &str, command: &str, args: &[&str]) -> (u16, Value) {
        self.post(
            "/debug/execute",
            json!({
                "cluster_id": CLUSTER,
                "session_id": session,
                "command_type": command,
                "args": args,
                "timeout": 20,
            }),
        )
        .await
        .expect("execute")
    }
}
