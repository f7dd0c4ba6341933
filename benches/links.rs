//! Idle agent links: broker memory per link.
//!
//! Starts `kubeline broker` (embedded store) as its own process, opens N agent links from this
//! process (each a real WebSocket with the agent's hello, welcome and pong answers), and reads the
//! broker's resident memory before and after from /proc.
//!
//! ```text
//! cargo bench --bench links                 # 10,000 links
//! BENCH_LINKS=2000 cargo bench --bench links
//! ```
//!
//! Under `cargo test --all-targets` it runs as a smoke test with 100 links.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// Agent tokens are `t<cluster index>`: each cluster has its own.
const TOKEN: &str = "t";

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS in /proc status")
}

struct Broker(Child);

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn link(port: u16, cluster: String) -> tokio::task::JoinHandle<()> {
    let mut request = format!("ws://127.0.0.1:{port}/agent/v1/connect")
        .into_client_request()
        .unwrap();
    let headers = request.headers_mut();
    let index = cluster.trim_start_matches('c');
    headers.insert(
        "authorization",
        format!("Bearer {TOKEN}{index}").parse().unwrap(),
    );
    headers.insert("x-kubeline-cluster", cluster.parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("link");
    // The hello a real agent sends: its command list too.
    let hello = json!({ "type": "hello", "protocol": 1, "cluster_id": cluster,
                        "agent_version": "bench", "kubernetes_version": "v1.36.3",
                        "commands": kubeline_shared::command::SUPPORTED_COMMANDS });
    ws.send(Message::Text(hello.to_string().into()))
        .await
        .unwrap();
    match ws.next().await {
        Some(Ok(Message::Text(t))) => {
            let v: Value = serde_json::from_str(&t).unwrap();
            assert_eq!(v["type"], "welcome", "{v}");
        }
        other => panic!("no welcome: {other:?}"),
    }
    // Stay linked: answer pings like an idle agent.
    tokio::spawn(async move {
        while let Some(Ok(msg)) = ws.next().await {
            if let Message::Text(t) = msg {
                let v: Value = serde_json::from_str(&t).unwrap();
                if v["type"] == "ping" {
                    let pong = json!({ "type": "pong", "seq": v["seq"] });
                    if ws
                        .send(Message::Text(pong.to_string().into()))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            }
        }
    })
}

#[tokio::main]
async fn main() {
    let measuring = std::env::args().any(|a| a == "--bench");
    let n: usize = std::env::var("BENCH_LINKS")
        .ok()
        .map(|v| v.parse().expect("BENCH_LINKS"))
        .unwrap_or(if measuring { 10_000 } else { 100 });
    rlimit::increase_nofile_limit(n as u64 * 2 + 1024).expect("raise the open-file limit");

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let tokens: Vec<String> = (0..n).map(|i| format!("c{i}={TOKEN}{i}")).collect();
    let bin = std::env::var("KUBELINE_BIN").unwrap_or_else(|_| {
        // The bench profile builds into target/release, tests into target/debug.
        let exe = std::env::current_exe().unwrap();
        let dir = exe.parent().unwrap().parent().unwrap();
        dir.join("kubeline").to_string_lossy().into_owned()
    });
    let child = Command::new("bash")
        .arg("-c")
        .arg(format!(
            // Admissions unpaced: this bench measures memory per link, not the pacing (the
            // storm bench does), and its links do not come back after a 503.
            "ulimit -n {}; exec \"$0\" broker --listen 127.0.0.1:{port} --api-key admin=k \
             --link-admissions-per-second 1000000",
            n * 2 + 1024
        ))
        .arg(&bin)
        .env("KUBELINE_AGENT_TOKENS", tokens.join(","))
        .env("RUST_LOG", "warn")
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("start {bin} (build it: cargo build [--release] --bin kubeline): {e}")
        });
    let broker = Broker(child);
    let pid = broker.0.id();
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "broker did not start"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = rss_kib(pid);

    let started = Instant::now();
    let mut holders = Vec::with_capacity(n);
    for chunk in (0..n).collect::<Vec<_>>().chunks(256) {
        let batch =
            futures::future::join_all(chunk.iter().map(|i| link(port, format!("c{i}")))).await;
        holders.extend(batch);
    }
    let linked_in = started.elapsed();
    // Let a few ping rounds pass so the links are in their idle steady state.
    tokio::time::sleep(Duration::from_secs(if measuring { 12 } else { 1 })).await;
    let after = rss_kib(pid);
    assert!(holders.iter().all(|h| !h.is_finished()), "a link dropped");
    let per_link = (after.saturating_sub(before)) as f64 * 1024.0 / n as f64;
    println!(
        "{n} idle agent links: linked in {:.2}s; broker RSS {:.1} MiB -> {:.1} MiB: {:.1} KiB per link",
        linked_in.as_secs_f64(),
        before as f64 / 1024.0,
        after as f64 / 1024.0,
        per_link / 1024.0
    );
}
