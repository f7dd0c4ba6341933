//! The test bed (`scripts/testbed`): its environment, its kubectl and helm, executors for its
//! identities, namespaces and workloads that clean up after themselves, and its container log
//! file. Every suite that talks to the bed goes through [`Bed`].
//!
//! Needs the bed's environment (`scripts/test` provides it; by hand: `scripts/testbed up &&
//! eval "$(scripts/testbed env)"`). Without it the tests fail with [`NOT_UP`]; they never skip.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use kubeline_agent::exec::Executor;

use super::eventually;

pub const NOT_UP: &str = "the kubeline test bed is not up: run scripts/test \
     (or by hand: scripts/testbed up && eval \"$(scripts/testbed env)\")";

/// A variable of the bed's environment (`TESTBED_…`); panics with [`NOT_UP`] when unset.
pub fn var(name: &str) -> String {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => v,
        _ => panic!("{name} is not set; {NOT_UP}"),
    }
}

/// The read-only kubeconfig of the test bed, as the agent's Helm chart would grant.
pub fn reader_kubeconfig() -> String {
    var("TESTBED_READER_KUBECONFIG")
}

/// The bed as tests use it: where its tools and kubeconfigs are, and an executor (the agent's
/// command runner, in process) for the read-only identity.
pub struct Bed {
    /// `$TESTBED_BIN/kubectl`: the same Kubernetes version as the API server.
    pub kubectl: String,
    /// The read-only identity's kubeconfig (what the agent's chart grants).
    pub reader: String,
    /// The read-only identity that may also read Secrets.
    pub secrets: String,
    /// The admin's kubeconfig: tests change the cluster with it, never with a developer's own.
    pub admin: String,
    /// The bed's state directory (`container-logs/` is there).
    pub dir: PathBuf,
    /// An executor as the read-only identity.
    pub executor: Executor,
}

impl Bed {
    pub async fn new() -> Self {
        let reader = reader_kubeconfig();
        let bin = var("TESTBED_BIN");
        Self {
            executor: executor_for(&reader).await,
            kubectl: format!("{bin}/kubectl"),
            reader,
            secrets: var("TESTBED_SECRETS_KUBECONFIG"),
            admin: var("TESTBED_ADMIN_KUBECONFIG"),
            dir: PathBuf::from(var("TESTBED_DIR")),
        }
    }

    /// Runs the bed's kubectl as the admin; panics unless it succeeds.
    pub fn admin(&self, args: &[&str]) -> String {
        kubectl_as(&self.kubectl, &self.admin, args)
    }

    /// Applies YAML as the admin.
    pub fn apply(&self, yaml: &str) {
        use std::io::Write;
        let mut child = Command::new(&self.kubectl)
            .arg("--kubeconfig")
            .arg(&self.admin)
            .args(["apply", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("run kubectl apply");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(yaml.as_bytes())
            .expect("write yaml");
        assert!(child.wait().expect("kubectl apply").success(), "{yaml}");
    }

    /// A namespace of this test's own, removed on drop.
    pub fn namespace(&self, test: &str) -> Namespace {
        let name = format!("kl-stream-{test}-{}", std::process::id());
        self.admin(&["create", "namespace", &name]);
        Namespace {
            name,
            kubectl: self.kubectl.clone(),
            admin: self.admin.clone(),
        }
    }

    /// A Deployment of kwok pods (no real containers) in `ns`; `spec` and `pod_spec` are more
    /// YAML lines for the Deployment's spec and its pods' spec.
    pub fn deployment(&self, ns: &str, name: &str, replicas: u32, spec: &str, pod_spec: &str) {
        self.apply(&format!(
            "apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: {ns}, labels: {{app: {name}}}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}
  {spec}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      {pod_spec}
      containers: [{{name: main, image: registry.example/{name}:1}}]
"
        ));
    }

    /// Waits until exactly `n` pods of `app` in `ns` exist and are Running.
    pub async fn wait_running(&self, ns: &str, app: &str, n: usize) {
        let selector = format!("app={app}");
        eventually(
            &format!("{n} pods of {app} in {ns} to be Running"),
            Duration::from_secs(60),
            || {
                let out = self.admin(&["get", "pods", "-n", ns, "-l", &selector, "--no-headers"]);
                async move {
                    let running = out.lines().filter(|l| l.contains(" Running ")).count();
                    (running == n && out.lines().count() == n).then_some(())
                }
            },
        )
        .await;
    }

    /// Waits until the controller has taken up Deployment `name`'s last change and made its
    /// ReplicaSet (every replica updated, whether or not any is available yet).
    pub async fn wait_observed(&self, ns: &str, name: &str) {
        self.wait_deployment(
            ns,
            name,
            "its change to be observed",
            |[g, og, r, up, _]| g == og && r == up,
        )
        .await;
    }

    /// Waits until Deployment `name` is rolled out: its last change observed, every replica
    /// updated and available (its status changes no more by itself).
    pub async fn wait_rolled_out(&self, ns: &str, name: &str) {
        self.wait_deployment(ns, name, "it to be rolled out", |[g, og, r, up, av]| {
            g == og && r == up && r == av
        })
        .await;
    }

    /// Polls (generation, observed generation, replicas, updated, available) of a Deployment.
    async fn wait_deployment(
        &self,
        ns: &str,
        name: &str,
        what: &str,
        done: impl Fn([&str; 5]) -> bool,
    ) {
        let fields = "{.metadata.generation} {.status.observedGeneration} {.spec.replicas} \
                      {.status.updatedReplicas} {.status.availableReplicas}";
        let jsonpath = format!("jsonpath={fields}");
        eventually(
            &format!("deployment {name} in {ns}: {what}"),
            Duration::from_secs(60),
            || {
                let out = self.admin(&["get", "deploy", name, "-n", ns, "-o", &jsonpath]);
                // An absent field prints nothing: pad so that it compares as "".
                let mut f = out.split(' ').chain(std::iter::repeat(""));
                let status: [&str; 5] = std::array::from_fn(|_| f.next().unwrap_or_default());
                let ok = done(status);
                async move { ok.then_some(()) }
            },
        )
        .await;
    }

    /// A Deployment of one pod in `default` (whose log is the bed's `default.log`), running;
    /// deleted on drop.
    pub async fn workload(&self, name: &str) -> Workload {
        let name = format!("{name}-{}", std::process::id());
        self.admin(&[
            "create",
            "deployment",
            &name,
            "-n",
            "default",
            "--image=registry.k8s.io/pause:3.10",
        ]);
        let workload = Workload {
            name,
            kubectl: self.kubectl.clone(),
            admin: self.admin.clone(),
        };
        self.wait_running("default", &workload.name, 1).await;
        workload
    }

    /// The bed's default container log (what kwok serves as every container's log), held by
    /// this test until dropped and then put back as it was.
    pub async fn container_log(&self) -> ContainerLog {
        ContainerLog::open(self.dir.join("container-logs/default.log")).await
    }
}

/// Runs `kubectl` with `kubeconfig`; panics unless it succeeds.
fn kubectl_as(kubectl: &str, kubeconfig: &str, args: &[&str]) -> String {
    let out = Command::new(kubectl)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .output()
        .expect("run kubectl");
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs the bed's kubectl as the admin; panics unless it succeeds.
pub fn kubectl(args: &[&str]) -> String {
    kubectl_as(
        &format!("{}/kubectl", var("TESTBED_BIN")),
        &var("TESTBED_ADMIN_KUBECONFIG"),
        args,
    )
}

/// Runs the bed's helm in the repository's root: (success, stdout, stderr).
pub fn helm(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(format!("{}/helm", var("TESTBED_BIN")))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run helm");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A client for the identity of `kubeconfig` (a path), and the API server's URL.
pub async fn client_for(kubeconfig: &str) -> (Client, String) {
    let parsed = Kubeconfig::read_from(kubeconfig)
        .unwrap_or_else(|e| panic!("reading {kubeconfig}: {e}; {NOT_UP}"));
    let server = parsed
        .clusters
        .first()
        .and_then(|c| c.cluster.as_ref())
        .and_then(|c| c.server.clone())
        .unwrap_or_else(|| panic!("{kubeconfig} names no server"));
    let config = Config::from_custom_kubeconfig(parsed, &KubeConfigOptions::default())
        .await
        .unwrap_or_else(|e| panic!("loading {kubeconfig}: {e}"));
    (Client::try_from(config).expect("a kube client"), server)
}

/// An executor (the agent's command runner) as the identity of `kubeconfig`, naming the bed's
/// API server as the agent names its own.
pub async fn executor_for(kubeconfig: &str) -> Executor {
    let (client, server) = client_for(kubeconfig).await;
    Executor::new(client).with_server_url(&server)
}

/// A namespace made by the admin, deleted (without waiting) on drop.
pub struct Namespace {
    pub name: String,
    kubectl: String,
    admin: String,
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = Command::new(&self.kubectl)
            .arg("--kubeconfig")
            .arg(&self.admin)
            .args(["delete", "namespace", &self.name, "--wait=false"])
            .output();
    }
}

/// A Deployment in `default` (see [`Bed::workload`]), deleted (without waiting) on drop.
pub struct Workload {
    pub name: String,
    kubectl: String,
    admin: String,
}

impl Workload {
    /// `deploy/NAME`, as `kubectl logs` takes it.
    pub fn target(&self) -> String {
        format!("deploy/{}", self.name)
    }
}

impl Drop for Workload {
    fn drop(&mut self) {
        let _ = Command::new(&self.kubectl)
            .arg("--kubeconfig")
            .arg(&self.admin)
            .args([
                "delete",
                "deployment",
                &self.name,
                "-n",
                "default",
                "--wait=false",
            ])
            .output();
    }
}

/// One test at a time appends to the bed's container log.
static CONTAINER_LOG: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The bed's container log file, held (one test at a time) until dropped, then truncated back
/// to its length when opened.
pub struct ContainerLog {
    path: PathBuf,
    len: u64,
    _held: tokio::sync::MutexGuard<'static, ()>,
}

impl ContainerLog {
    async fn open(path: PathBuf) -> Self {
        let held = CONTAINER_LOG.lock().await;
        let len = std::fs::metadata(&path)
            .unwrap_or_else(|e| panic!("the bed's log file {}: {e}", path.display()))
            .len();
        Self {
            path,
            len,
            _held: held,
        }
    }

    /// Appends a line as the container runtime writes it (CRI log format).
    pub fn append(&self, line: &str) {
        use std::io::Write;
        let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.9fZ");
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.path)
            .expect("open the log file");
        f.write_all(format!("{now} stdout F {line}\n").as_bytes())
            .expect("append");
    }
}

impl Drop for ContainerLog {
    fn drop(&mut self) {
        if let Ok(f) = std::fs::OpenOptions::new().write(true).open(&self.path) {
            let _ = f.set_len(self.len);
        }
    }
}
