//! The broker on a real Redis Cluster (3 masters, 3 replicas, a password): two broker
//! processes, the agent linked to one and callers on the other (so bells and replies cross
//! the sharded channels), under a steady stream of executes while the master holding the
//! cluster's queue is killed, and while the queue's slot moves to another master; and a
//! broker started before its Redis (one server or a cluster) waits for it; and a command whose
//! queue entry Redis loses (as a failover that did not carry the enqueue over would) is queued
//! again by its waiting caller.
//! Needs the test bed (like `tests/it/e2e.rs`), except the last.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::support::ws;
use crate::support::*;
use futures::SinkExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

/// The callers' timeout, in seconds.
const TIMEOUT_S: u64 = 10;
/// Callers sending executes one after another.
const CALLERS: usize = 6;

/// One answer of `POST /debug/execute`.
struct Answer {
    sent: Instant,
    took: Duration,
    status: u16,
    body: Value,
}

/// Two brokers on `cluster`, an agent on the first, and the second's API (where callers go).
async fn brokers(cluster: &RedisCluster) -> (Stack, Api) {
    let stack = Stack::build("rc")
        .store_url(&cluster.url())
        .replicas(2)
        .agent()
        .start()
        .await;
    let api = stack.api(1);
    (stack, api)
}

/// Runs `CALLERS` callers until `stop`, each with a session of its own; returns every answer.
fn load(api: &Api, stop: &Arc<AtomicBool>) -> Vec<tokio::task::JoinHandle<Vec<Answer>>> {
    (0..CALLERS)
        .map(|_| {
            let (api, stop) = (api.clone(), stop.clone());
            tokio::spawn(async move {
                let session = api.session().await;
                let mut answers = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let sent = Instant::now();
                    let (status, body) = api
                        .post(
                            "/debug/execute",
                            json!({
                                "cluster_id": CLUSTER,
                                "session_id": session,
                                "command_type": "get",
                                "args": ["namespaces"],
                                "timeout": TIMEOUT_S,
                            }),
                        )
                        .await
                        .expect("the broker answers");
                    answers.push(Answer {
                        sent,
                        took: sent.elapsed(),
                        status,
                        body,
                    });
                    if status != 200 {
                        // A refusal (503 while the store fails over): back off a little.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
                answers
            })
        })
        .collect()
}

/// Checks every answer: a 200 is a final result, readable afterwards as it was answered; a
/// timeout's result is readable as a timeout; anything else is a refusal (503) that queued
/// nothing the caller waits for. Returns (accepted, refused, lost, slowest).
async fn check(api: &Api, answers: &[Answer]) -> (usize, usize, Vec<String>, Duration) {
    let (mut accepted, mut refused, mut lost) = (0, 0, Vec::new());
    let mut slowest = Duration::ZERO;
    for a in answers {
        slowest = slowest.max(a.took);
        match a.status {
            200 => {
                accepted += 1;
                let id = a.body["result_id"].as_str().expect("a result id");
                assert_eq!(a.body["status"], "completed", "{}", a.body);
                let (status, stored) = api.get(&format!("/debug/result/{id}")).await.unwrap();
                // The output may differ from the answer's: a command whose stored result a
                // dying master took with it runs again (read-only; `AGE` has moved on), and the
                // second run's result is what stays readable. Lost is no final result at all.
                if status != 200 || stored["status"] != "completed" {
                    lost.push(format!("{id}: answered 200, reads {status} {stored}"));
                }
            }
            504 => {
                accepted += 1;
                let id = a.body["details"]["result_id"]
                    .as_str()
                    .expect("a result id");
                let (status, stored) = api.get(&format!("/debug/result/{id}")).await.unwrap();
                if status != 200 || stored["status"] != "timeout" {
                    lost.push(format!("{id}: answered 504, reads {status} {stored}"));
                }
            }
            503 => refused += 1,
            other => panic!("unexpected answer {other}: {}", a.body),
        }
    }
    (accepted, refused, lost, slowest)
}

/// The queue's master is killed under load: its replica takes over, every accepted command
/// ends in a final result that stays readable, callers wait a bounded time, and executes
/// succeed again on the new master.
#[tokio::test]
async fn a_master_failover_under_load_loses_nothing() {
    // Six Redis servers (and timed waits): not beside another heavy test.
    let _heavy = heavy().await;
    let mut cluster = RedisCluster::start().await;
    let (_stack, api) = brokers(&cluster).await;
    let queue = format!("kl:{{{CLUSTER}}}:q");
    let (master, slot) = cluster.master_of(&queue);

    let stop = Arc::new(AtomicBool::new(false));
    let callers = load(&api, &stop);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let killed_at = Instant::now();
    cluster.kill(master);
    let promoted = eventually(
        "a replica to take over the queue's slot",
        Duration::from_secs(20),
        || {
            let cluster = &cluster;
            let queue = &queue;
            async move {
                let (now, _) = cluster.serving(queue)?;
                (now != master).then_some(now)
            }
        },
    )
    .await;
    let took_over = killed_at.elapsed();
    // Load keeps going on the new master.
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    let mut answers = Vec::new();
    for caller in callers {
        answers.extend(caller.await.unwrap());
    }
    let (accepted, refused, lost, slowest) = check(&api, &answers).await;
    let during = answers
        .iter()
        .filter(|a| a.sent + a.took >= killed_at && a.sent <= killed_at + took_over)
        .count();
    let after = answers
        .iter()
        .filter(|a| a.sent >= killed_at + took_over + Duration::from_secs(1) && a.status == 200)
        .count();
    println!(
        "failover of slot {slot} (master :{master} -> :{promoted}) in {took_over:?}: \
         {} executes, {during} in flight during it, {accepted} accepted, {refused} refused (503), \
         {} lost, slowest caller {slowest:?}, {after} completed after",
        answers.len(),
        lost.len()
    );
    assert!(lost.is_empty(), "lost commands: {lost:#?}");
    assert!(
        slowest <= Duration::from_secs(TIMEOUT_S + 2),
        "a caller waited {slowest:?}, past its timeout of {TIMEOUT_S} s"
    );
    assert!(
        after >= 5,
        "executes do not succeed again after the failover ({after})"
    );
}

/// The queue's slot moves to another master (keys migrated while executes run, so the
/// brokers meet ASK during the move and MOVED after it): nothing is lost, every execute
/// completes.
#[tokio::test]
async fn executes_follow_the_queue_slot_to_another_master() {
    // Six Redis servers (and timed waits): not beside another heavy test.
    let _heavy = heavy().await;
    let cluster = RedisCluster::start().await;
    let (_stack, api) = brokers(&cluster).await;
    let queue = format!("kl:{{{CLUSTER}}}:q");
    let (from, slot) = cluster.master_of(&queue);
    let to = cluster.other_master(from);

    let stop = Arc::new(AtomicBool::new(false));
    let callers = load(&api, &stop);
    tokio::time::sleep(Duration::from_secs(1)).await;
    cluster.move_slot(slot, from, to, || {
        std::thread::sleep(Duration::from_millis(100))
    });
    assert_eq!(cluster.master_of(&queue).0, to, "the slot moved");
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    let mut answers = Vec::new();
    for caller in callers {
        answers.extend(caller.await.unwrap());
    }
    let (accepted, refused, lost, slowest) = check(&api, &answers).await;
    println!(
        "slot {slot} moved :{from} -> :{to}: {} executes, {accepted} accepted, {refused} refused, \
         {} lost, slowest caller {slowest:?}",
        answers.len(),
        lost.len()
    );
    assert!(lost.is_empty(), "lost commands: {lost:#?}");
    assert_eq!(refused, 0, "a slot migration refuses nothing");
    // A bell or reply missed while the channel's slot moved costs the pump's poll interval
    // (1 s), never the caller's whole timeout.
    assert!(
        slowest < Duration::from_secs(3),
        "a caller waited {slowest:?}"
    );
}

/// A broker whose Redis is not there yet: it keeps running, says why in its log and on
/// `/health` (503), refuses requests with 503, and serves once Redis answers.
async fn waits_for_its_store(url: &str, start_store: impl AsyncFnOnce()) {
    let port = free_port();
    let args: Vec<String> = [
        "broker",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--api-key",
        &format!("admin={ADMIN_KEY}"),
        "--redis-url",
        url,
    ]
    .iter()
    .map(|a| (*a).to_owned())
    .collect();
    let mut broker = Proc::start("rc-waiting", &args);
    let api = Api::new(port, ADMIN_KEY);
    let reason = eventually("/health to say why", Duration::from_secs(20), || async {
        let (status, body) = api.get("/health").await.ok()?;
        assert_eq!(status, 503, "healthy without a store: {body}");
        body["reason"].as_str().map(str::to_owned)
    })
    .await;
    assert!(
        reason.contains("cannot connect to Redis") && !reason.contains(CLUSTER_PASSWORD),
        "{reason}"
    );
    let (status, body) = api.get("/clusters").await.unwrap();
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"], "service_unavailable", "{body}");
    // Still trying, and saying so, a few attempts later.
    eventually("a second attempt", Duration::from_secs(20), || {
        let logs = broker.logs();
        async move { (logs.matches("cannot connect to Redis").count() >= 2).then_some(()) }
    })
    .await;
    assert!(broker.is_running(), "the broker gave up: {}", broker.logs());

    start_store().await;
    eventually("the broker to serve", Duration::from_secs(40), || async {
        let (status, _) = api.get("/health").await.ok()?;
        (status == 200).then_some(())
    })
    .await;
    // The flag-given key was stored once Redis answered: it works.
    let (status, body) = api.get("/clusters").await.unwrap();
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn a_broker_waits_for_its_redis() {
    let port = free_port();
    let mut redis = None;
    waits_for_its_store(&format!("redis://127.0.0.1:{port}/"), async || {
        redis = Some(Redis::start_on(port).await);
    })
    .await;
}

#[tokio::test]
async fn a_broker_waits_for_its_redis_cluster() {
    // Six Redis servers (and timed waits): not beside another heavy test.
    let _heavy = heavy().await;
    let ports = cluster_ports();
    let mut cluster = None;
    waits_for_its_store(&cluster_url(&ports), async || {
        cluster = Some(RedisCluster::start_on(ports.clone()).await);
    })
    .await;
}

/// How a broker is told the CA of its Redis's certificates.
enum CaGiven {
    /// `--redis-ca-file`.
    Flag,
    /// `SSL_CERT_FILE`, read by rustls's loader of the system roots.
    SslCertFile,
}

/// A broker on `url` (TLS, its CA given as `how` says), with an agent: it serves and runs a
/// command.
async fn serves_over_tls(url: &str, ca: &std::path::Path, how: CaGiven) {
    let port = free_port();
    let args: Vec<String> = [
        "broker",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--api-key",
        &format!("admin={ADMIN_KEY}"),
        "--agent-token",
        &format!("{CLUSTER}={AGENT_TOKEN}"),
        "--ping-interval-ms",
        "500",
        "--redis-url",
        url,
    ]
    .iter()
    .map(|a| (*a).to_owned())
    .collect();
    let ca = ca.display().to_string();
    let broker = match how {
        CaGiven::Flag => {
            let args = [args, vec!["--redis-ca-file".to_owned(), ca]].concat();
            Proc::start_with_env("rc-tls", &args, &[])
        }
        CaGiven::SslCertFile => Proc::start_with_env("rc-tls", &args, &[("SSL_CERT_FILE", &ca)]),
    };
    let api = Api::new(port, ADMIN_KEY);
    eventually(
        "the broker to reach Redis over TLS",
        Duration::from_secs(30),
        || async {
            let (status, _) = api.get("/health").await.ok()?;
            (status == 200).then_some(())
        },
    )
    .await;
    let _agent = start_agent("rc-tls-agent", port, AGENT_TOKEN);
    wait_connected(&api).await;
    let session = api.session().await;
    let (status, body) = api.execute(&session, "get", &["namespaces"]).await;
    assert_eq!(status, 200, "{body}\n{}", broker.logs());
    assert_eq!(body["status"], "completed", "{body}");
}

#[tokio::test]
async fn a_broker_on_redis_over_tls() {
    let redis = TlsRedis::start().await;
    serves_over_tls(&redis.url(), &redis.files.ca, CaGiven::Flag).await;
    serves_over_tls(&redis.url(), &redis.files.ca, CaGiven::SslCertFile).await;
}

#[tokio::test]
async fn a_broker_on_a_redis_cluster_over_tls() {
    // Six Redis servers (and timed waits): not beside another heavy test.
    let _heavy = heavy().await;
    let cluster = RedisCluster::start_tls().await;
    assert!(cluster.url().starts_with("rediss+cluster://"));
    let ca = cluster.ca_file().expect("a TLS cluster");
    serves_over_tls(&cluster.url(), ca, CaGiven::Flag).await;
}

/// What a failover that did not carry an enqueue over leaves behind, made on purpose on a real
/// Redis: the queue entry of a command the agent has not answered vanishes while its caller
/// waits. The caller's broker finds it neither queued nor finished, queues it again under the
/// same `result_id`, and the caller gets the agent's answer instead of its timeout.
#[tokio::test]
async fn a_command_redis_lost_is_queued_again_and_answered() {
    let redis = Redis::start().await;
    let (broker, api) = start_broker("lost-command", BrokerOpts::redis(&redis)).await;
    let mut agent = ws::scripted_agent(api.port(), CLUSTER, AGENT_TOKEN, &["version"]).await;
    let session = api.session().await;
    let started = Instant::now();
    let caller = {
        let (api, session) = (api.clone(), session.clone());
        tokio::spawn(async move { api.execute(&session, "version", &[]).await })
    };
    let first = ws::next_execute(&mut agent).await;

    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let queue = format!("kl:{{{CLUSTER}}}:q");
    let entries: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg(&queue)
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(entries.ids.len(), 1, "one command queued");
    let entry = entries.ids[0].id.clone();
    let _: () = redis::pipe()
        .cmd("XACK")
        .arg(&queue)
        .arg("kl")
        .arg(&entry)
        .ignore()
        .cmd("XDEL")
        .arg(&queue)
        .arg(&entry)
        .ignore()
        .query_async(&mut conn)
        .await
        .unwrap();

    let again = ws::next_execute(&mut agent).await;
    assert_eq!(again["result_id"], first["result_id"], "the same command");
    for reply in [
        json!({"type": "output", "result_id": again["result_id"], "data": "again\n"}),
        json!({"type": "done", "result_id": again["result_id"], "status": "completed",
               "exit_code": 0, "error": null, "execution_time_ms": 1, "truncated": null}),
    ] {
        agent
            .send(Message::Text(reply.to_string().into()))
            .await
            .unwrap();
    }
    let (status, body) = caller.await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (&body["result_id"], &body["status"], &body["output"]),
        (&first["result_id"], &json!("completed"), &json!("again\n"))
    );
    // (Its timeout is 20 s: a 200 is an answer, not the timeout's 504.)
    eprintln!("lost command answered after {:?}", started.elapsed());
    assert!(
        broker
            .logs()
            .contains("a queued command was lost by the store"),
        "the broker says what it did"
    );
    let (_, metrics) = api.get("/metrics").await.unwrap();
    let metrics = metrics.as_str().unwrap_or_default();
    assert!(
        metrics.contains(r#"kubeline_commands_recovered_total{outcome="requeued"} 1"#),
        "and counts it"
    );
}
