//! Proof that the test bed (`scripts/testbed`) is a real Kubernetes API server with working
//! nodes, pods, logs, RBAC, rollouts and metrics, and that tests can run their own Redis.
//!
//! These tests need the bed's environment (`scripts/test` provides it; by hand:
//! `scripts/testbed up && eval "$(scripts/testbed env)"`). Without it they fail, they never skip.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail, ensure};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Event, Node, Pod, Secret};
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, LogParams, PostParams,
};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};

use crate::support::{Redis, bed};

/// A client for one of the bed's identities, e.g. `TESTBED_ADMIN_KUBECONFIG` or
/// `TESTBED_READER_KUBECONFIG` (read-only, no secrets). The admin identity is read from
/// `TESTBED_ADMIN_KUBECONFIG`, never from a developer's own `KUBECONFIG`.
async fn client_for(var: &str) -> Result<Client> {
    let path = bed::var(var);
    let kubeconfig = Kubeconfig::read_from(&path)
        .with_context(|| format!("reading kubeconfig {path} (from {var}); {}", bed::NOT_UP))?;
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .with_context(|| format!("loading kubeconfig {path}"))?;
    Client::try_from(config).context("building kube client")
}

async fn admin() -> Result<Client> {
    client_for("TESTBED_ADMIN_KUBECONFIG").await
}

fn is_ready(conditions: Option<&[k8s_openapi::api::core::v1::PodCondition]>) -> bool {
    conditions
        .unwrap_or_default()
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

#[tokio::test]
async fn kwok_nodes_are_ready() -> Result<()> {
    let nodes: Api<Node> = Api::all(admin().await?);
    let list = nodes
        .list(&ListParams::default().labels("type=kwok"))
        .await?;
    let mut names: Vec<String> = Vec::new();
    for node in &list.items {
        let name = node.metadata.name.clone().unwrap_or_default();
        let ready = node
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .map(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
            .unwrap_or(false);
        ensure!(ready, "node {name} is not Ready");
        names.push(name);
    }
    names.sort();
    assert_eq!(names, ["kwok-node-0", "kwok-node-1", "kwok-node-2"]);
    Ok(())
}

#[tokio::test]
async fn fixture_pods_are_running() -> Result<()> {
    let client = admin().await?;
    for (ns, selector, want) in [
        ("credit-service", "app=credit-api", 2),
        ("credit-service", "app=credit-worker", 1),
        ("credit-service", "app=credit-cache", 2),
        ("storefront", "app=frontend", 3),
    ] {
        let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
        let list = pods.list(&ListParams::default().labels(selector)).await?;
        let running: Vec<&Pod> = list
            .items
            .iter()
            .filter(|p| {
                let st = p.status.as_ref();
                st.and_then(|s| s.phase.as_deref()) == Some("Running")
                    && is_ready(st.and_then(|s| s.conditions.as_deref()))
            })
            .collect();
        assert_eq!(
            running.len(),
            want,
            "{ns}/{selector}: expected {want} Running+Ready pods, got {} of {}",
            running.len(),
            list.items.len()
        );
    }

    // The deliberately failing pod.
    let pods: Api<Pod> = Api::namespaced(client.clone(), "credit-service");
    let scorer = pods.get("credit-scorer").await?;
    let cs = &scorer
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .context("credit-scorer has no container statuses")?[0];
    let waiting = cs
        .state
        .as_ref()
        .and_then(|s| s.waiting.as_ref())
        .and_then(|w| w.reason.clone());
    assert_eq!(waiting.as_deref(), Some("CrashLoopBackOff"));
    assert!(
        cs.restart_count >= 1,
        "credit-scorer restartCount {}",
        cs.restart_count
    );

    // Controllers recorded events in the fixture namespace.
    let events: Api<Event> = Api::namespaced(client.clone(), "credit-service");
    let reasons: Vec<String> = events
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter_map(|e| e.reason)
        .collect();
    assert!(
        reasons.iter().any(|r| r == "ScalingReplicaSet"),
        "no ScalingReplicaSet event in credit-service: {reasons:?}"
    );

    // The CustomResourceDefinition's objects.
    let gvk = GroupVersionKind::gvk("testbed.kubeline.dev", "v1", "Widget");
    let ar = ApiResource::from_gvk_with_plural(&gvk, "widgets");
    let widgets: Api<DynamicObject> = Api::namespaced_with(client, "credit-service", &ar);
    let mut names: Vec<String> = widgets
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter_map(|w| w.metadata.name)
        .collect();
    names.sort();
    assert_eq!(names, ["widget-alpha", "widget-beta"]);
    Ok(())
}

#[tokio::test]
async fn pod_logs_have_known_lines() -> Result<()> {
    // Read through the read-only identity: the pods/log API proxies to kwok's kubelet server.
    let client = client_for("TESTBED_READER_KUBECONFIG").await?;
    let pods: Api<Pod> = Api::namespaced(client, "credit-service");
    let list = pods
        .list(&ListParams::default().labels("app=credit-api"))
        .await?;
    let pod = list.items.first().context("no credit-api pod")?;
    let name = pod.metadata.name.clone().unwrap_or_default();
    let logs = pods
        .logs(
            &name,
            &LogParams {
                container: Some("api".into()),
                ..LogParams::default()
            },
        )
        .await
        .with_context(|| format!("logs of credit-service/{name}"))?;
    assert!(
        logs.contains("KUBELINE_TESTBED_LOG credit-api ready, listening on :8080"),
        "unexpected logs of {name}: {logs}"
    );
    assert!(logs.contains("scored application id=APP-1001 score=712 decision=approve"));

    let previous = pods
        .logs(
            "credit-scorer",
            &LogParams {
                previous: true,
                ..LogParams::default()
            },
        )
        .await?;
    assert!(
        previous.contains("KUBELINE_TESTBED_LOG previous run: panic"),
        "unexpected previous logs: {previous}"
    );
    Ok(())
}

#[tokio::test]
async fn reader_identity_is_forbidden_to_list_secrets() -> Result<()> {
    let reader = client_for("TESTBED_READER_KUBECONFIG").await?;
    // The identity works for what it may read ...
    let pods: Api<Pod> = Api::namespaced(reader.clone(), "credit-service");
    pods.list(&ListParams::default())
        .await
        .context("reader listing pods")?;
    // ... and gets 403 Forbidden for secrets.
    let secrets: Api<Secret> = Api::namespaced(reader, "credit-service");
    match secrets.list(&ListParams::default()).await {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 403, "expected 403 Forbidden, got {status:?}");
        }
        Err(other) => bail!("expected a 403 from the API server, got {other:?}"),
        Ok(list) => bail!("reader could list {} secrets", list.items.len()),
    }

    // The third identity may read secrets and sees the known values.
    let secrets_reader = client_for("TESTBED_SECRETS_KUBECONFIG").await?;
    let secrets: Api<Secret> = Api::namespaced(secrets_reader, "credit-service");
    let secret = secrets.get("credit-api-secrets").await?;
    let data = secret.data.context("secret has no data")?;
    let password = data.get("DB_PASSWORD").context("no DB_PASSWORD")?;
    assert_eq!(password.0, b"kbl-testbed-db-password-7f3a9c");
    Ok(())
}

#[tokio::test]
async fn fresh_deployment_rolls_out() -> Result<()> {
    let client = admin().await?;
    let deployments: Api<Deployment> = Api::namespaced(client, "default");
    let millis = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis();
    let name = format!(
        "rollout-probe-{}-{}",
        std::process::id(),
        millis % 1_000_000
    );
    let manifest: Deployment = serde_json::from_value(serde_json::json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": { "name": name, "labels": { "app": name } },
        "spec": {
            "replicas": 2,
            "selector": { "matchLabels": { "app": name } },
            "template": {
                "metadata": { "labels": { "app": name } },
                "spec": { "containers": [{ "name": "probe", "image": "registry.example.com/probe:1" }] }
            }
        }
    }))?;
    deployments
        .create(&PostParams::default(), &manifest)
        .await?;

    let result = wait_for_rollout(&deployments, &name, Duration::from_secs(90)).await;
    let _ = deployments.delete(&name, &DeleteParams::default()).await;
    result
}

async fn wait_for_rollout(api: &Api<Deployment>, name: &str, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    let mut interval = tokio::time::interval(Duration::from_millis(250));
    loop {
        interval.tick().await;
        let d = api.get(name).await?;
        let generation = d.metadata.generation.unwrap_or(0);
        let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        if let Some(st) = &d.status {
            let complete = st.observed_generation.unwrap_or(0) >= generation
                && st.updated_replicas.unwrap_or(0) == want
                && st.ready_replicas.unwrap_or(0) == want
                && st.available_replicas.unwrap_or(0) == want
                && st.replicas.unwrap_or(0) == want;
            if complete {
                return Ok(());
            }
        }
        if Instant::now() >= deadline {
            bail!(
                "deployment {name} did not roll out within {timeout:?}; status: {:?}",
                d.status
            );
        }
    }
}

#[tokio::test]
async fn metrics_api_serves_node_and_pod_usage() -> Result<()> {
    if bed::var("TESTBED_METRICS") != "1" {
        eprintln!("metrics-server was disabled for this bed (KUBELINE_TESTBED_SKIP_METRICS=1)");
        return Ok(());
    }
    let client = admin().await?;
    let gvk = GroupVersionKind::gvk("metrics.k8s.io", "v1beta1", "NodeMetrics");
    let nodes: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &ApiResource::from_gvk_with_plural(&gvk, "nodes"),
    );
    let list = nodes.list(&ListParams::default()).await?;
    assert_eq!(list.items.len(), 3, "node metrics: {list:?}");
    let gvk = GroupVersionKind::gvk("metrics.k8s.io", "v1beta1", "PodMetrics");
    let pods: Api<DynamicObject> = Api::namespaced_with(
        client,
        "credit-service",
        &ApiResource::from_gvk_with_plural(&gvk, "pods"),
    );
    let list = pods
        .list(&ListParams::default().labels("app=credit-api"))
        .await?;
    assert_eq!(list.items.len(), 2, "pod metrics: {list:?}");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Redis: tests start their own redis-server (from PATH, through the harness), never a system
// service.

fn connect(redis: &Redis) -> std::io::Result<TcpStream> {
    let s = TcpStream::connect(("127.0.0.1", redis.port))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.set_write_timeout(Some(Duration::from_secs(5)))?;
    Ok(s)
}

/// Sends one RESP command and returns the raw reply (one read; replies here are tiny).
fn exchange(conn: &mut TcpStream, args: &[&str]) -> std::io::Result<String> {
    let mut req = format!("*{}\r\n", args.len());
    for a in args {
        req.push_str(&format!("${}\r\n{}\r\n", a.len(), a));
    }
    conn.write_all(req.as_bytes())?;
    let mut buf = [0u8; 512];
    let n = conn.read(&mut buf)?;
    if n == 0 {
        return Err(std::io::Error::new(
            ErrorKind::UnexpectedEof,
            "connection closed",
        ));
    }
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
}

#[tokio::test]
async fn redis_requests_fail_after_server_is_killed() -> Result<()> {
    let mut server = Redis::start().await;
    let mut conn = connect(&server)?;
    assert_eq!(
        exchange(&mut conn, &["SET", "kubeline:probe", "value-42"])?,
        "+OK\r\n"
    );
    assert_eq!(
        exchange(&mut conn, &["GET", "kubeline:probe"])?,
        "$8\r\nvalue-42\r\n"
    );

    server.kill();

    // The open connection is dead ...
    let on_old = exchange(&mut conn, &["GET", "kubeline:probe"]);
    assert!(
        on_old.is_err(),
        "request on the old connection succeeded: {on_old:?}"
    );
    let _ = conn.shutdown(Shutdown::Both);
    // ... and a new one is refused.
    let fresh = connect(&server);
    assert!(fresh.is_err(), "connected to a killed redis-server");
    Ok(())
}
