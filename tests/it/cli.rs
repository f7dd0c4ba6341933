//! Bad configuration stops the binary at once with a message that names the flag; and the
//! operator CLI (`login`, `clusters`, `status`, `kubectl`, `completion`, `audit verify`'s
//! configuration) run as a person would run them, against a live broker and agent on the test
//! bed, each in a home folder of its own (never the real user's config).

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::support::{
    ADMIN_KEY, Api, BrokerOpts, CLUSTER, READ_KEY, Stack, eventually, free_port, start_broker,
};
use serde_json::{Value, json};

fn kubeline(args: &[&str]) -> (bool, String) {
    let out = crate::support::kubeline()
        .args(args)
        .output()
        .expect("run kubeline");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn broker_refuses_bad_flags_by_name() {
    let cases: &[(&[&str], &str)] = &[
        (&["broker", "--api-key", "root=k"], "unknown scope `root`"),
        (&["broker", "--api-key", "nokey"], "--api-key"),
        (&["broker", "--agent-token", "a b=t"], "Invalid cluster_id"),
        (
            &["broker", "--agent-token", "c1=a", "--agent-token", "c1=b"],
            "one token per cluster",
        ),
        (
            &["broker", "--default-timeout", "400"],
            "--default-timeout (400) is larger than --max-timeout (300)",
        ),
        (&["broker", "--listen", "nowhere"], "--listen"),
        (
            &[
                "broker",
                "--listen",
                "127.0.0.1:0",
                "--redis-url",
                "redis+cluster://:pw@127.0.0.1:1/3",
            ],
            // A URL that cannot work ends the broker (an unreachable Redis is waited for), and
            // its password is not shown.
            "cannot connect to Redis at redis+cluster://:***@127.0.0.1:1/3 (--redis-url)",
        ),
    ];
    for (args, expected) in cases {
        let (ok, stderr) = kubeline(args);
        assert!(!ok, "{args:?} should fail");
        assert!(
            stderr.contains(expected),
            "{args:?}: expected {expected:?} in:\n{stderr}"
        );
    }
}

/// `--redis-ca-file` that cannot be used stops the broker at once, naming the flag: a missing
/// file, a file without a certificate, no `--redis-url`, or a URL without TLS.
#[test]
fn broker_refuses_an_unusable_redis_ca_file() {
    let dir = std::env::temp_dir().join(format!("kubeline-cli-ca-{}", std::process::id()));
    let files = crate::support::RedisTlsFiles::new(&dir);
    let ca = files.ca.display().to_string();
    let not_pem = dir.join("not-a-ca.pem");
    std::fs::write(&not_pem, "just words\n").unwrap();
    let not_pem = not_pem.display().to_string();
    let listen = ["broker", "--listen", "127.0.0.1:0"];
    let cases: &[(&[&str], &str)] = &[
        (
            &[
                "--redis-url",
                "rediss://127.0.0.1:1",
                "--redis-ca-file",
                "/nonexistent/ca.pem",
            ],
            "cannot read --redis-ca-file /nonexistent/ca.pem",
        ),
        (
            &[
                "--redis-url",
                "rediss://127.0.0.1:1",
                "--redis-ca-file",
                &not_pem,
            ],
            "holds no certificate",
        ),
        (
            &["--redis-ca-file", &ca],
            "--redis-ca-file is the CA of a Redis over TLS: give it with a rediss:// or \
             rediss+cluster:// --redis-url",
        ),
        (
            &["--redis-url", "redis://127.0.0.1:1", "--redis-ca-file", &ca],
            "a CA file (--redis-ca-file) is for TLS: give a rediss:// or rediss+cluster:// URL",
        ),
    ];
    for (args, expected) in cases {
        let (ok, stderr) = kubeline(&[&listen[..], args].concat());
        assert!(!ok, "{args:?} should fail");
        assert!(
            stderr.contains(expected),
            "{args:?}: expected {expected:?} in:\n{stderr}"
        );
    }
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn agent_refuses_bad_flags_by_name() {
    let kubeconfig = std::env::temp_dir().join(format!("kubeline-cli-{}.yaml", std::process::id()));
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\n\
         users: [{name: u, user: {token: t}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n",
    )
    .unwrap();
    let path = kubeconfig.to_str().unwrap();
    let base = ["agent", "--token", "t", "--kubeconfig", path];
    let (ok, stderr) = kubeline(
        &[
            &base[..],
            &["--broker-url", "http://b", "--cluster-id", "a b"],
        ]
        .concat(),
    );
    assert!(
        !ok && stderr.contains("--cluster-id: Invalid cluster_id"),
        "{stderr}"
    );
    let (ok, stderr) =
        kubeline(&[&base[..], &["--broker-url", "b:80", "--cluster-id", "c1"]].concat());
    assert!(!ok && stderr.contains("--broker-url"), "{stderr}");
    let (ok, stderr) = kubeline(&[
        "agent",
        "--token",
        "t",
        "--broker-url",
        "http://b",
        "--cluster-id",
        "c1",
        "--kubeconfig",
        "/nonexistent",
    ]);
    assert!(
        !ok && stderr.contains("cannot read kubeconfig /nonexistent"),
        "{stderr}"
    );
    let (ok, stderr) = kubeline(&["agent", "--broker-url", "http://b"]);
    assert!(!ok && stderr.contains("--cluster-id"), "{stderr}");
    std::fs::remove_file(kubeconfig).ok();
}

// === operator CLI ===

/// What a run of the binary left.
#[derive(Debug)]
struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl std::fmt::Display for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// A home folder of its own (config and cache inside), removed at the end.
struct Home {
    dir: PathBuf,
}

impl Home {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("kubeline-cli-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the test home");
        Self { dir }
    }

    fn config(&self) -> PathBuf {
        self.dir.join("config").join("kubeline").join("config.toml")
    }

    fn sessions_file(&self) -> PathBuf {
        self.dir
            .join("cache")
            .join("kubeline")
            .join("sessions.json")
    }

    /// The cached sessions.
    fn sessions(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(self.sessions_file()).unwrap_or_default();
        serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["sessions"].as_array().cloned())
            .unwrap_or_default()
    }

    /// Runs `kubeline` with only this home's environment (and `env`), `stdin` as its input.
    fn run_with(&self, args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Out {
        let mut command = Command::new(env!("CARGO_BIN_EXE_kubeline"));
        command
            .args(args)
            .env_clear()
            .env("HOME", &self.dir)
            .env("XDG_CONFIG_HOME", self.dir.join("config"))
            .env("XDG_CACHE_HOME", self.dir.join("cache"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("run kubeline");
        let mut input = child.stdin.take().expect("stdin");
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).expect("write stdin");
        }
        drop(input);
        let out = child.wait_with_output().expect("wait for kubeline");
        Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn run(&self, args: &[&str]) -> Out {
        self.run_with(args, &[], None)
    }
}

impl Drop for Home {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A broker (embedded store) with an agent on the test bed, linked; and the broker's URL.
async fn live(name: &str, flags: &[&str]) -> (Stack, Api, String) {
    let stack = Stack::build(&format!("cli-{name}"))
        .flags(flags)
        .agent()
        .start()
        .await;
    let api = stack.api(0);
    let url = format!("http://127.0.0.1:{}", api.port());
    (stack, api, url)
}

#[tokio::test]
async fn login_saves_a_checked_key_and_env_and_flags_win_over_it() {
    let (_stack, api, url) = live("login", &[]).await;
    let home = Home::new("login");

    // A wrong key is refused at login, and nothing is written.
    let out = home.run(&["login", "--broker", &url, "--api-key", "not-a-key"]);
    assert_eq!(out.code, 4, "{out}");
    assert!(
        out.stderr
            .contains(&format!("the broker at {url} refused this API key")),
        "{out}"
    );
    assert!(out.stderr.contains("Nothing was saved"), "{out}");
    assert!(!home.config().exists());

    // A broker that is not one, or not there.
    let out = home.run(&["login", "--broker", "localhost:1", "--api-key", "k"]);
    assert_eq!(out.code, 2, "{out}");
    assert!(out.stderr.contains("--broker"), "{out}");
    let dead = format!("http://127.0.0.1:{}", free_port());
    let out = home.run(&["login", "--broker", &dead, "--api-key", READ_KEY]);
    assert_eq!(out.code, 3, "{out}");
    assert!(
        out.stderr.contains(&format!(
            "cannot reach the broker at {dead}: connection refused"
        )),
        "{out}"
    );
    assert!(!home.config().exists());

    // An empty key on standard input.
    let out = home.run_with(&["login", "--broker", &url], &[], Some("\n"));
    assert_eq!(out.code, 2, "{out}");
    assert!(out.stderr.contains("no API key given"), "{out}");

    // The right key, piped on standard input: checked, then saved readable by the user only.
    let out = home.run_with(
        &["login", "--broker", &format!("{url}/")],
        &[],
        Some(&format!("{ADMIN_KEY}\n")),
    );
    assert_eq!(out.code, 0, "{out}");
    assert!(
        out.stdout.contains(&format!(
            "Logged in to {url}: this key reaches 1 cluster (1 connected): bed"
        )),
        "{out}"
    );
    let text = std::fs::read_to_string(home.config()).unwrap();
    let saved: toml_like::Config = toml_like::parse(&text);
    assert_eq!(saved.broker.as_deref(), Some(url.as_str()));
    assert_eq!(saved.api_key.as_deref(), Some(ADMIN_KEY));
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(home.config())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "config mode {mode:o}");
    }

    // The saved login serves the other commands, `audit verify` included.
    let out = home.run(&["clusters"]);
    assert_eq!(out.code, 0, "{out}");
    let out = home.run(&["audit", "verify"]);
    assert_eq!(out.code, 0, "{out}");
    assert!(
        out.stdout.contains(&format!("Audit log of {url}:")),
        "{out}"
    );
    assert!(out.stdout.contains("OK:"), "{out}");

    // The environment wins over the file: its key (refused here), its broker (dead here).
    let out = home.run_with(&["clusters"], &[("KUBELINE_API_KEY", "wrong")], None);
    assert_eq!(out.code, 4, "{out}");
    assert!(out.stderr.contains("Invalid API key"), "{out}");
    let out = home.run_with(
        &["clusters"],
        &[("KUBELINE_BROKER_URL", &dead), ("KUBELINE_API_KEY", "x")],
        None,
    );
    assert_eq!(out.code, 3, "{out}");
    assert!(out.stderr.contains(&dead), "{out}");
    let out = home.run_with(
        &["audit", "verify"],
        &[("KUBELINE_API_KEY", READ_KEY)],
        None,
    );
    assert_eq!(out.code, 2, "{out}");
    assert!(out.stderr.contains("403"), "{out}");
    // ... and the flags win over the environment.
    let out = home.run_with(
        &["clusters", "--api-key", READ_KEY],
        &[("KUBELINE_API_KEY", "wrong")],
        None,
    );
    assert_eq!(out.code, 0, "{out}");
    // The file's key is never sent to another broker.
    let out = home.run_with(&["clusters"], &[("KUBELINE_BROKER_URL", &dead)], None);
    assert_eq!(out.code, 2, "{out}");
    assert!(
        out.stderr.contains(&format!("no API key for {dead}")),
        "{out}"
    );
    assert!(out.stderr.contains("is not sent elsewhere"), "{out}");

    // $KUBELINE_CONFIG names the file.
    let other = home.dir.join("elsewhere.toml");
    let other_str = other.to_str().unwrap();
    let out = home.run_with(
        &["login", "--broker", &url, "--api-key", READ_KEY],
        &[("KUBELINE_CONFIG", other_str)],
        None,
    );
    assert_eq!(out.code, 0, "{out}");
    assert!(std::fs::read_to_string(&other).unwrap().contains(READ_KEY));

    // Logout closes the sessions this login opened, then removes the file.
    let out = home.run(&["kubectl", "-c", CLUSTER, "--", "version"]);
    assert_eq!(out.code, 0, "{out}");
    let session = home.sessions()[0]["session_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = home.run(&["logout"]);
    assert_eq!(out.code, 0, "{out}");
    assert!(out.stdout.contains("closed 1 session"), "{out}");
    assert!(!home.config().exists());
    assert!(home.sessions().is_empty());
    let (status, body) = api.get(&format!("/debug/session/{session}")).await.unwrap();
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("closed")),
        "{body}"
    );
    let out = home.run(&["clusters"]);
    assert_eq!(out.code, 2, "{out}");
    assert!(out.stderr.contains("kubeline login --broker URL"), "{out}");
    let out = home.run(&["logout"]);
    assert_eq!(out.code, 0, "{out}");
    assert!(out.stdout.contains("Not logged in"), "{out}");

    // A damaged config file is named, with what to do.
    std::fs::create_dir_all(home.config().parent().unwrap()).unwrap();
    std::fs::write(home.config(), "broker = [\n").unwrap();
    let out = home.run(&["clusters"]);
    assert_eq!(out.code, 2, "{out}");
    assert!(
        out.stderr.contains(&format!(
            "the config file {} is not valid",
            home.config().display()
        )),
        "{out}"
    );
}

/// Just enough TOML reading for the test: `key = "value"` lines.
mod toml_like {
    pub struct Config {
        pub broker: Option<String>,
        pub api_key: Option<String>,
    }

    pub fn parse(text: &str) -> Config {
        let get = |name: &str| {
            text.lines().find_map(|l| {
                let (k, v) = l.split_once('=')?;
                (k.trim() == name).then(|| v.trim().trim_matches('"').to_owned())
            })
        };
        Config {
            broker: get("broker"),
            api_key: get("api_key"),
        }
    }
}

#[tokio::test]
async fn clusters_status_and_kubectl_print_what_the_broker_answers() {
    let (_stack, api, url) = live("kubectl", &["--api-key", "read@other=other-cluster-key"]).await;
    let home = Home::new("kubectl");
    let env = [
        ("KUBELINE_BROKER_URL", url.as_str()),
        ("KUBELINE_API_KEY", READ_KEY),
    ];
    let run = |args: &[&str]| home.run_with(args, &env, None);

    let out = run(&["clusters"]);
    assert_eq!(out.code, 0, "{out}");
    let mut lines = out.stdout.lines();
    let header = lines.next().unwrap();
    assert!(
        header.starts_with("CLUSTER   STATUS      AGENT VERSION   LAST SEEN"),
        "{out}"
    );
    let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        row[..3],
        ["bed", "connected", env!("CARGO_PKG_VERSION")],
        "{out}"
    );
    assert!(row[4] == "ago", "{out}");
    let out = run(&["clusters", "-o", "json"]);
    assert_eq!(out.code, 0, "{out}");
    let listed: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(listed["clusters"][0]["cluster_id"], CLUSTER);
    assert_eq!(listed["clusters"][0]["status"], "connected");

    let out = run(&["status", CLUSTER]);
    assert_eq!(out.code, 0, "{out}");
    assert!(out.stdout.contains("Cluster:            bed\n"), "{out}");
    assert!(
        out.stdout.contains("Status:             connected\n"),
        "{out}"
    );
    assert!(out.stdout.contains("Kubernetes version: v1."), "{out}");
    let out = run(&["status", CLUSTER, "-o", "json"]);
    assert_eq!(out.code, 0, "{out}");
    let status: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(status["status"], "connected");
    assert!(status["queue_depth"].is_u64(), "{status}");
    let out = run(&["status", "nope"]);
    assert_eq!(out.code, 6, "{out}");
    assert!(out.stderr.contains("not found"), "{out}");

    // `get pods -A` prints exactly the REST result's output (the ages and restart times move
    // with the clock: it must equal the result of just before or just after).
    let rest = api.with_key(Some(READ_KEY));
    let session = rest.session().await;
    let mut matched = false;
    for _ in 0..5 {
        let (status, before) = rest.execute(&session, "get", &["pods", "-A"]).await;
        assert_eq!(status, 200, "{before}");
        let out = run(&["kubectl", "-c", CLUSTER, "--", "get", "pods", "-A"]);
        let (_, after) = rest.execute(&session, "get", &["pods", "-A"]).await;
        assert_eq!(out.code, 0, "{out}");
        assert_eq!(out.stderr, "", "{out}");
        assert_eq!(before["exit_code"], 0);
        if out.stdout == before["output"].as_str().unwrap()
            || out.stdout == after["output"].as_str().unwrap()
        {
            matched = true;
            break;
        }
    }
    assert!(matched, "kubectl's output never equalled the REST result's");
    // The same through the alias, with the cluster from the environment.
    let out = home.run_with(
        &["k", "--", "get", "ns", "kube-system", "-o", "name"],
        &[env[0], env[1], ("KUBELINE_CLUSTER", CLUSTER)],
        None,
    );
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "namespace/kube-system\n"),
        "{out}"
    );

    // kubectl's own failure: its stderr, its exit code, nothing on stdout.
    let out = run(&["kubectl", "-c", CLUSTER, "--", "get", "pod", "nope"]);
    assert_eq!(out.code, 1, "{out}");
    assert_eq!(out.stdout, "", "{out}");
    assert_eq!(
        out.stderr, "Error from server (NotFound): pods \"nope\" not found\n",
        "{out}"
    );
    // kubectl's usage error, answered by the broker as kubectl would.
    let out = run(&["kubectl", "-c", CLUSTER, "--", "get"]);
    assert_eq!(out.code, 1, "{out}");
    assert!(
        out.stderr.contains("You must specify the type of resource"),
        "{out}"
    );
    // `auth can-i`: the answer on stdout, the exit code says it.
    let out = run(&[
        "kubectl", "-c", CLUSTER, "--", "auth", "can-i", "delete", "pods",
    ]);
    assert_eq!((out.code, out.stdout.as_str()), (1, "no\n"), "{out}");

    // Refusals: a write verb, a forbidden flag, an unknown cluster.
    let out = run(&["kubectl", "-c", CLUSTER, "--", "delete", "pod", "x"]);
    assert_eq!(out.code, 7, "{out}");
    assert!(
        out.stderr.starts_with("kubeline: Command refused:"),
        "{out}"
    );
    assert!(out.stderr.contains("read-only"), "{out}");
    assert!(
        out.stderr
            .contains("(HTTP 400 invalid_request from http://"),
        "{out}"
    );
    let out = run(&["kubectl", "-c", CLUSTER, "--", "get", "pods", "--as=admin"]);
    assert_eq!(out.code, 7, "{out}");
    assert!(out.stderr.contains("--as=admin"), "{out}");
    let out = run(&["kubectl", "-c", "nope", "--", "get", "pods"]);
    assert_eq!(out.code, 6, "{out}");
    assert!(
        out.stderr
            .starts_with("kubeline: Cluster not found: nope (HTTP 404 not_found"),
        "{out}"
    );
    assert!(out.stderr.contains("kubeline clusters"), "{out}");
    let out = run(&["kubectl", "-c", "bad id", "--", "get", "pods"]);
    assert_eq!(out.code, 2, "{out}");
    assert!(
        out.stderr.contains("-c/--cluster: Invalid cluster_id"),
        "{out}"
    );
    let out = run(&[
        "kubectl",
        "-c",
        CLUSTER,
        "--max-output-bytes",
        "99999999999",
        "--",
        "version",
    ]);
    assert_eq!(out.code, 7, "{out}");
    assert!(out.stderr.contains("max_output_bytes"), "{out}");

    // A cut output says so on stderr; stdout holds the budget's worth.
    let out = run(&[
        "kubectl",
        "-c",
        CLUSTER,
        "--max-output-bytes",
        "100",
        "--",
        "get",
        "pods",
        "-A",
    ]);
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(out.stdout.len(), 100, "{out}");
    assert!(
        out.stderr.contains("kubeline: output truncated:")
            && out.stderr.contains("budget 100 bytes"),
        "{out}"
    );

    // A key of admin scope on another cluster only: 403.
    let out = home.run_with(
        &[
            "kubectl",
            "-c",
            CLUSTER,
            "--api-key",
            "other-cluster-key",
            "--",
            "get",
            "pods",
        ],
        &env,
        None,
    );
    assert_eq!(out.code, 5, "{out}");
    assert!(out.stderr.contains("not granted cluster bed"), "{out}");

    // A dead broker.
    let dead = format!("http://127.0.0.1:{}", free_port());
    let out = run(&[
        "kubectl", "-c", CLUSTER, "--broker", &dead, "--", "get", "pods",
    ]);
    assert_eq!(out.code, 3, "{out}");
    assert!(
        out.stderr.starts_with(&format!(
            "kubeline: cannot reach the broker at {dead}: connection refused\n"
        )),
        "{out}"
    );
    assert!(!out.stderr.contains("Error {"), "{out}");
}

#[tokio::test]
async fn an_unlinked_cluster_is_named_with_what_to_do() {
    // No agent: the cluster is configured (its agent token), never linked.
    let (_broker, api) = start_broker("cli-unlinked-broker", BrokerOpts::embedded()).await;
    let url = format!("http://127.0.0.1:{}", api.port());
    let home = Home::new("unlinked");
    let env = [
        ("KUBELINE_BROKER_URL", url.as_str()),
        ("KUBELINE_API_KEY", READ_KEY),
    ];
    let out = home.run_with(&["clusters"], &env, None);
    assert_eq!(out.code, 0, "{out}");
    assert!(
        out.stdout
            .contains("bed       disconnected   -               never"),
        "{out}"
    );
    let out = home.run_with(&["kubectl", "-c", CLUSTER, "--", "get", "pods"], &env, None);
    assert_eq!(out.code, 9, "{out}");
    assert!(
        out.stderr
            .starts_with("kubeline: Cluster agent is not connected (HTTP 503 service_unavailable"),
        "{out}"
    );
    assert!(out.stderr.contains("(never seen)"), "{out}");
    assert!(out.stderr.contains("kubeline status bed"), "{out}");
}

#[tokio::test]
async fn one_session_serves_many_commands_until_the_broker_ends_it() {
    // Session creation limited to 2 a minute: one per command would fail at the third.
    let (_stack, api, url) = live("sessions", &["--rate-limit-session-create", "2"]).await;
    let home = Home::new("sessions");
    let env = [
        ("KUBELINE_BROKER_URL", url.as_str()),
        ("KUBELINE_API_KEY", READ_KEY),
    ];
    let kubectl = || home.run_with(&["kubectl", "-c", CLUSTER, "--", "version"], &env, None);
    let rest = api.with_key(Some(READ_KEY));
    let sessions = || {
        let rest = rest.clone();
        async move {
            let (status, body) = rest
                .get(&format!("/debug/sessions?cluster_id={CLUSTER}"))
                .await
                .unwrap();
            assert_eq!(status, 200, "{body}");
            body["sessions"].as_array().unwrap().clone()
        }
    };
    let cached = || {
        home.sessions()[0]["session_id"]
            .as_str()
            .unwrap()
            .to_owned()
    };

    for _ in 0..3 {
        let out = kubectl();
        assert_eq!(out.code, 0, "{out}");
        assert!(out.stdout.contains("Server Version:"), "{out}");
    }
    let listed = sessions().await;
    assert_eq!(
        listed.len(),
        1,
        "one session for three commands: {listed:?}"
    );
    let first = cached();
    assert_eq!(listed[0]["session_id"], first.as_str());
    let (_, info) = rest.get(&format!("/debug/session/{first}")).await.unwrap();
    assert_eq!(info["commands_executed"], 3, "{info}");
    assert_eq!(info["status"], "active", "{info}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(home.sessions_file())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "cache mode {mode:o}");
    }

    // Closed on the broker: the next command opens a new one and runs.
    let (status, _) = rest
        .delete(&format!("/debug/session/{first}"))
        .await
        .unwrap();
    assert_eq!(status, 200);
    let out = kubectl();
    assert_eq!(out.code, 0, "{out}");
    let second = cached();
    assert_ne!(second, first);
    let listed = sessions().await;
    assert_eq!(listed.len(), 2, "{listed:?}");
    let (_, info) = rest.get(&format!("/debug/session/{second}")).await.unwrap();
    assert_eq!(
        (info["status"].as_str(), info["commands_executed"].as_u64()),
        (Some("active"), Some(1))
    );

    // A third session is past the rate limit: the broker's 429, explained.
    let (status, _) = rest
        .delete(&format!("/debug/session/{second}"))
        .await
        .unwrap();
    assert_eq!(status, 200);
    let out = kubectl();
    assert_eq!(out.code, 8, "{out}");
    assert!(out.stderr.contains("(HTTP 429 rate_limited"), "{out}");
    assert!(out.stderr.contains("Retry in "), "{out}");

    // Another key gets sessions of its own (the cached one belongs to READ_KEY).
    let out = home.run_with(
        &[
            "kubectl",
            "-c",
            CLUSTER,
            "--api-key",
            ADMIN_KEY,
            "--",
            "version",
        ],
        &env,
        None,
    );
    assert_eq!(out.code, 0, "{out}");
    let (status, mine) = rest.get("/debug/sessions").await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(mine["total"], 2, "{mine}");
    assert_eq!(home.sessions().len(), 1, "the closed one was forgotten");

    // A session the broker no longer knows (a restarted embedded store): replaced, command runs.
    let text = std::fs::read_to_string(home.sessions_file()).unwrap();
    let admin_session = home.sessions()[0]["session_id"]
        .as_str()
        .unwrap()
        .to_owned();
    std::fs::write(
        home.sessions_file(),
        text.replace(&admin_session, "sess_00000000000000000000000000000000"),
    )
    .unwrap();
    let out = home.run_with(
        &[
            "kubectl",
            "-c",
            CLUSTER,
            "--api-key",
            ADMIN_KEY,
            "--",
            "version",
        ],
        &env,
        None,
    );
    assert_eq!(out.code, 0, "{out}");
    let replaced = home.sessions()[0]["session_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(replaced, "sess_00000000000000000000000000000000");
    assert_ne!(replaced, admin_session);
}

#[tokio::test]
async fn an_expired_session_is_replaced() {
    let (_stack, api, url) = live("expiry", &["--session-ttl", "3"]).await;
    let home = Home::new("expiry");
    let env = [
        ("KUBELINE_BROKER_URL", url.as_str()),
        ("KUBELINE_API_KEY", READ_KEY),
    ];
    let kubectl = || home.run_with(&["kubectl", "-c", CLUSTER, "--", "version"], &env, None);
    let out = kubectl();
    // Three seconds are below the margin the CLI wants left: it uses the session it made once.
    assert_eq!(out.code, 0, "{out}");
    let first = home.sessions()[0]["session_id"]
        .as_str()
        .unwrap()
        .to_owned();
    eventually(
        "the session to expire",
        std::time::Duration::from_secs(15),
        || async {
            let (_, info) = api.get(&format!("/debug/session/{first}")).await.ok()?;
            (info["status"] == "expired").then_some(())
        },
    )
    .await;
    // Make the cache believe it still has an hour: the broker's "expired" must be handled.
    let text = std::fs::read_to_string(home.sessions_file()).unwrap();
    let mut cache: Value = serde_json::from_str(&text).unwrap();
    let later = chrono::Utc::now() + chrono::Duration::hours(1);
    cache["sessions"][0]["expires_at"] = json!(later.to_rfc3339());
    std::fs::write(home.sessions_file(), cache.to_string()).unwrap();
    let out = kubectl();
    assert_eq!(out.code, 0, "{out}");
    let second = home.sessions();
    assert_eq!(second.len(), 1);
    assert_ne!(second[0]["session_id"].as_str().unwrap(), first);
}

#[test]
fn completion_scripts_for_each_shell() {
    let home = Home::new("completion");
    for (shell, marker) in [
        ("bash", "_kubeline()"),
        ("zsh", "#compdef kubeline"),
        ("fish", "complete -c kubeline"),
    ] {
        let out = home.run(&["completion", shell]);
        assert_eq!(out.code, 0, "{out}");
        assert!(
            out.stdout.contains(marker),
            "{shell}: {}",
            &out.stdout[..200.min(out.stdout.len())]
        );
        assert!(out.stdout.contains("kubectl"), "{shell}");
    }
    let out = home.run(&["completion", "tcsh"]);
    assert_eq!(out.code, 2, "{out}");
    assert!(out.stderr.contains("possible values"), "{out}");
}

#[test]
fn client_commands_without_a_broker_say_what_to_do() {
    let home = Home::new("unconfigured");
    for args in [
        &["clusters"][..],
        &["status", "bed"],
        &["kubectl", "-c", "bed", "--", "get", "pods"],
        &["audit", "verify"],
    ] {
        let out = home.run(args);
        assert_eq!(out.code, 2, "{args:?}: {out}");
        assert!(
            out.stderr
                .contains("no broker given: run `kubeline login --broker URL` once"),
            "{args:?}: {out}"
        );
    }
    let out = home.run_with(
        &["clusters"],
        &[("KUBELINE_BROKER_URL", "http://127.0.0.1:1")],
        None,
    );
    assert_eq!(out.code, 2, "{out}");
    assert!(
        out.stderr.contains("no API key for http://127.0.0.1:1"),
        "{out}"
    );
    let out = home.run(&["login"]);
    assert_eq!(out.code, 2, "{out}");
    assert!(out.stderr.contains("kubeline login --broker URL"), "{out}");
    let out = home.run(&["kubectl", "-c", "bed"]);
    assert_eq!(out.code, 2, "{out}");
    let out = home.run(&["kubectl", "-c", "bed", "--timeout", "-3", "--", "version"]);
    assert_eq!(out.code, 2, "{out}");
}

// === kubeline mcp ===

/// What the fake MCP endpoint received: each request's headers and body.
#[derive(Clone, Default)]
struct McpSeen {
    requests: std::sync::Arc<std::sync::Mutex<Vec<(axum::http::HeaderMap, Value)>>>,
    lists: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl McpSeen {
    /// Headers of the request whose body matches `pick`.
    fn headers_of(&self, pick: impl Fn(&Value) -> bool) -> Vec<axum::http::HeaderMap> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, body)| pick(body))
            .map(|(h, _)| h.clone())
            .collect()
    }
}

fn header<'a>(h: &'a axum::http::HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// A stand-in for the broker's `/mcp`: records what it gets and answers as a Streamable HTTP
/// server would (JSON, SSE, 202, a kubeline 401 for a wrong key, a HeaderMismatch).
async fn fake_mcp(
    axum::extract::State(seen): axum::extract::State<McpSeen>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let message: Value = serde_json::from_slice(&body).expect("the bridge sends JSON");
    seen.requests
        .lock()
        .unwrap()
        .push((headers.clone(), message.clone()));
    if header(&headers, "authorization") != Some("Bearer mcp-key") {
        return (
            axum::http::StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": "unauthorized",
                "message": "Invalid API key: the broker does not know it",
                "details": {"code": "invalid_credentials"}})),
        )
            .into_response();
    }
    let id = message["id"].clone();
    let reply = |result: Value| axum::Json(json!({"jsonrpc": "2.0", "id": id, "result": result}));
    match message["method"].as_str().unwrap_or("") {
        "initialize" => (
            [("mcp-session-id", "sid-42")],
            reply(json!({"protocolVersion": "2025-11-25", "capabilities": {},
                "serverInfo": {"name": "fake", "version": "1"}})),
        )
            .into_response(),
        m if m.starts_with("notifications/") => axum::http::StatusCode::ACCEPTED.into_response(),
        "tools/list" => {
            let n = seen.lists.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut tools = vec![
                json!({"name": "get", "inputSchema": {"type": "object", "properties": {
                    "cluster_id": {"type": "string", "x-mcp-header": "Cluster"}}}}),
                json!({"name": "broken", "inputSchema": {"type": "object", "properties": {
                    "n": {"type": "number", "x-mcp-header": "N"}}}}),
            ];
            if n > 0 {
                tools.push(json!({"name": "late", "inputSchema": {"type": "object",
                    "properties": {"region": {"type": "string", "x-mcp-header": "Region"}}}}));
            }
            let note = json!({"jsonrpc": "2.0", "method": "notifications/message",
                "params": {"level": "info", "data": "listing"}});
            let response = json!({"jsonrpc": "2.0", "id": id, "result": {"tools": tools}});
            (
                [("content-type", "text/event-stream")],
                format!(": keep-alive\n\nevent: message\ndata: {note}\n\ndata: {response}\n\n"),
            )
                .into_response()
        }
        "tools/call" => match message["params"]["name"].as_str().unwrap_or("") {
            "slow" => {
                tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
                reply(json!({"content": [], "slow": true})).into_response()
            }
            "late" if header(&headers, "mcp-param-region").is_none() => (
                axum::http::StatusCode::BAD_REQUEST,
                axum::Json(json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32020,
                    "message": "Header mismatch: Mcp-Param-Region is missing"}})),
            )
                .into_response(),
            name => reply(json!({"content": [], "called": name})).into_response(),
        },
        "subscriptions/listen" => {
            // Acknowledged, then open for as long as the client keeps it.
            let ack = json!({"jsonrpc": "2.0", "method": "notifications/subscriptions/acknowledged",
                "params": {}});
            let first = axum::body::Bytes::from(format!("data: {ack}\n\n"));
            let stream = futures::StreamExt::chain(
                futures::stream::once(async move { Ok::<_, std::convert::Infallible>(first) }),
                futures::stream::pending(),
            );
            (
                [("content-type", "text/event-stream")],
                axum::body::Body::from_stream(stream),
            )
                .into_response()
        }
        "html/please" => (
            [("content-type", "text/html")],
            "<html><body>Welcome to nginx</body></html>",
        )
            .into_response(),
        _ => reply(json!({})).into_response(),
    }
}

/// Runs `kubeline mcp` against `broker` with `key`: writes `lines` (after each, waiting for the
/// number of output lines it gives), closes standard input, and returns every output line and
/// the standard error.
async fn run_mcp(
    home: &Home,
    broker: &str,
    key: &str,
    lines: &[(&str, usize)],
) -> (i32, Vec<Value>, String) {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_kubeline"))
        .args(["mcp", "--broker", broker, "--api-key", key])
        .env_clear()
        .env("HOME", &home.dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kubeline mcp");
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut stderr = child.stderr.take().unwrap();
    let mut answers = Vec::new();
    for (line, wait) in lines {
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .unwrap();
        stdin.flush().await.unwrap();
        for _ in 0..*wait {
            let answer =
                tokio::time::timeout(std::time::Duration::from_secs(20), stdout.next_line())
                    .await
                    .expect("an answer in time")
                    .unwrap()
                    .expect("an answer line");
            answers.push(serde_json::from_str(&answer).expect("stdout carries JSON lines only"));
        }
    }
    drop(stdin);
    while let Some(line) =
        tokio::time::timeout(std::time::Duration::from_secs(20), stdout.next_line())
            .await
            .expect("stdout ends in time")
            .unwrap()
    {
        answers.push(serde_json::from_str(&line).expect("stdout carries JSON lines only"));
    }
    let status = tokio::time::timeout(std::time::Duration::from_secs(20), child.wait())
        .await
        .expect("kubeline mcp exits once its input ends")
        .unwrap();
    let mut err = String::new();
    stderr.read_to_string(&mut err).await.unwrap();
    (status.code().unwrap_or(-1), answers, err)
}

fn answer_to(answers: &[Value], id: Value) -> &Value {
    answers
        .iter()
        .find(|a| a["id"] == id && (a.get("result").is_some() || a.get("error").is_some()))
        .unwrap_or_else(|| panic!("no answer to {id} in {answers:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_bridges_stdio_to_the_brokers_endpoint_with_its_headers() {
    let seen = McpSeen::default();
    let app = axum::Router::new()
        .route("/mcp", axum::routing::post(fake_mcp))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let home = Home::new("mcp");
    let modern = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28"});

    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}});
    let slow = json!({"jsonrpc": "2.0", "id": "slow-3", "method": "tools/call",
        "params": {"name": "slow", "arguments": {}}});
    let get = json!({"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {
        "name": "get", "arguments": {"cluster_id": "bed"}, "_meta": modern}});
    let read = json!({"jsonrpc": "2.0", "id": 5, "method": "resources/read",
        "params": {"uri": "kubeline://results/ré"}});
    let cancelled_slow = json!({"jsonrpc": "2.0", "id": 6, "method": "tools/call",
        "params": {"name": "slow", "arguments": {}}});
    let cancel = json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
        "params": {"requestId": 6, "reason": "user"}});
    let prompt =
        json!({"jsonrpc": "2.0", "id": 7, "method": "prompts/get", "params": {"name": "triage"}});
    let late = json!({"jsonrpc": "2.0", "id": 8, "method": "tools/call", "params": {
        "name": "late", "arguments": {"region": "eu-1"}}});
    let html = json!({"jsonrpc": "2.0", "id": 9, "method": "html/please"});
    let listen = json!({"jsonrpc": "2.0", "id": "listen-1", "method": "subscriptions/listen",
        "params": {"filter": {"toolsListChanged": true}, "_meta": modern}});
    let lines = [
        (init.to_string(), 1),
        (initialized.to_string(), 0),
        // Its notification and its answer: the client lists the tools before calling them.
        (list.to_string(), 2),
        // Its acknowledgement; the stream stays open until the input ends.
        (listen.to_string(), 1),
        (slow.to_string(), 0),
        (get.to_string(), 1),
        (read.to_string(), 0),
        ("this is not json".to_owned(), 0),
        (cancelled_slow.to_string(), 0),
        (cancel.to_string(), 0),
        (prompt.to_string(), 0),
        (late.to_string(), 0),
        (html.to_string(), 0),
    ];
    let lines: Vec<(&str, usize)> = lines.iter().map(|(l, w)| (l.as_str(), *w)).collect();
    let (code, answers, stderr) = run_mcp(&home, &url, "mcp-key", &lines).await;
    assert_eq!(code, 0, "{stderr}");

    // Answers: initialize first (waited for), then `get` before the slow call sent before it.
    assert_eq!(answers[0]["result"]["protocolVersion"], "2025-11-25");
    let position = |id: Value| answers.iter().position(|a| a["id"] == id).unwrap();
    assert!(
        position(json!(4)) < position(json!("slow-3")),
        "{answers:?}"
    );
    assert_eq!(answer_to(&answers, json!("slow-3"))["result"]["slow"], true);
    assert_eq!(answer_to(&answers, json!(4))["result"]["called"], "get");
    // The SSE answer: its notification, then the response, without the invalid tool.
    let note = answers
        .iter()
        .position(|a| a["method"] == "notifications/message")
        .unwrap();
    assert!(note < position(json!(2)), "{answers:?}");
    let tools: Vec<&str> = answer_to(&answers, json!(2))["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(tools, ["get"]);
    assert!(
        stderr.contains("tool \"broken\" left out of tools/list"),
        "{stderr}"
    );
    // A line that is not JSON, and an answer that is not JSON-RPC.
    let parse = answers
        .iter()
        .find(|a| a["id"].is_null() && a.get("error").is_some())
        .unwrap();
    assert_eq!(parse["error"]["code"], -32700);
    let e = &answer_to(&answers, json!(9))["error"];
    assert_eq!(e["code"], -31000);
    let message = e["message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!("{url}/mcp answered HTTP 200 with this instead")),
        "{message}"
    );
    assert!(message.contains("Welcome to nginx"), "{message}");
    // The cancelled request is never answered; the others are.
    assert!(!answers.iter().any(|a| a["id"] == 6), "{answers:?}");
    for id in [json!(5), json!(7), json!(8)] {
        assert!(
            answer_to(&answers, id).get("result").is_some(),
            "{answers:?}"
        );
    }
    assert!(
        answers
            .iter()
            .any(|a| a["method"] == "notifications/subscriptions/acknowledged")
    );
    assert!(
        !answers.iter().any(|a| a["id"] == "listen-1"),
        "{answers:?}"
    );
    assert_eq!(answers.len(), 11, "{answers:?}");

    // What the endpoint received.
    let by_method = |method: &'static str| seen.headers_of(move |b| b["method"] == method);
    let h = &by_method("initialize")[0];
    assert_eq!(header(h, "mcp-method"), Some("initialize"));
    assert_eq!(header(h, "mcp-protocol-version"), None);
    assert_eq!(header(h, "mcp-session-id"), None);
    assert_eq!(
        header(h, "accept"),
        Some("application/json, text/event-stream")
    );
    assert_eq!(header(h, "content-type"), Some("application/json"));
    assert_eq!(header(h, "authorization"), Some("Bearer mcp-key"));
    let h = &by_method("notifications/initialized")[0];
    assert_eq!(header(h, "mcp-protocol-version"), Some("2025-11-25"));
    assert_eq!(header(h, "mcp-method"), Some("notifications/initialized"));
    assert_eq!(header(h, "mcp-session-id"), Some("sid-42"));
    let h = &seen.headers_of(|b| b["id"] == 4)[0];
    assert_eq!(header(h, "mcp-protocol-version"), Some("2026-07-28"));
    assert_eq!(header(h, "mcp-method"), Some("tools/call"));
    assert_eq!(header(h, "mcp-name"), Some("get"));
    assert_eq!(header(h, "mcp-param-cluster"), Some("bed"));
    let h = &seen.headers_of(|b| b["id"] == 5)[0];
    assert_eq!(
        header(h, "mcp-name"),
        Some("=?base64?a3ViZWxpbmU6Ly9yZXN1bHRzL3LDqQ==?=")
    );
    let h = &seen.headers_of(|b| b["id"] == 7)[0];
    assert_eq!(
        (header(h, "mcp-method"), header(h, "mcp-name")),
        (Some("prompts/get"), Some("triage"))
    );
    // The cancellation went to this initialize-era server too.
    let h = &by_method("notifications/cancelled")[0];
    assert_eq!(header(h, "mcp-method"), Some("notifications/cancelled"));
    // `late` was refused for a header the bridge did not know; it listed the tools again (not
    // shown to the client) and sent the call once more with Mcp-Param-Region.
    let calls = seen.headers_of(|b| b["id"] == 8);
    assert_eq!(calls.len(), 2);
    assert_eq!(header(&calls[0], "mcp-param-region"), None);
    assert_eq!(header(&calls[1], "mcp-param-region"), Some("eu-1"));
    assert_eq!(by_method("tools/list").len(), 2);

    // A wrong key: the broker's 401 becomes a JSON-RPC error naming the URL and the cause.
    let ping = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}).to_string();
    let (code, answers, _) = run_mcp(&home, &url, "wrong", &[(ping.as_str(), 1)]).await;
    assert_eq!(code, 0);
    let e = &answer_to(&answers, json!(1))["error"];
    assert_eq!(e["code"], -31000);
    assert!(
        e["message"].as_str().unwrap().starts_with(&format!(
            "{url}/mcp answered HTTP 401 (unauthorized): Invalid API key"
        )),
        "{e}"
    );
    assert_eq!(e["data"]["status"], 401);

    // A broker that is not there.
    let dead = format!("http://127.0.0.1:{}", free_port());
    let (code, answers, stderr) = run_mcp(&home, &dead, "k", &[(ping.as_str(), 1)]).await;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        answer_to(&answers, json!(1))["error"]["message"],
        format!("cannot reach the broker at {dead}/mcp: connection refused")
    );
    assert!(stderr.contains(&format!(
        "relaying JSON-RPC between standard input/output and {dead}/mcp"
    )));

    // Without a broker configured it says so and exits 2.
    let out = home.run(&["mcp"]);
    assert_eq!(out.code, 2, "{out}");
    assert!(
        out.stderr.contains("kubeline mcp: no broker given"),
        "{out}"
    );
}

#[tokio::test]
async fn an_https_broker_behind_a_private_ca_needs_its_ca_file() {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let home = Home::new("tls");
    // A CA and a certificate for 127.0.0.1 that it signs.
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "kubeline cli test CA");
    let ca_pem = ca_params.self_signed(&ca_key).unwrap().pem();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    let files = home.dir.join("tls");
    std::fs::create_dir_all(&files).unwrap();
    let (cert_file, key_file, ca_file) = (
        files.join("tls.crt"),
        files.join("tls.key"),
        files.join("ca.pem"),
    );
    std::fs::write(&cert_file, cert.pem()).unwrap();
    std::fs::write(&key_file, key.serialize_pem()).unwrap();
    std::fs::write(&ca_file, &ca_pem).unwrap();
    let opts = BrokerOpts::embedded().with(&[
        "--tls-cert",
        cert_file.to_str().unwrap(),
        "--tls-key",
        key_file.to_str().unwrap(),
    ]);
    let port = opts.port;
    let (_broker, _api) = crate::support::start_broker_answering(
        "cli-tls-broker",
        opts,
        Api::https(port, ADMIN_KEY, ca_pem.as_bytes()),
    )
    .await;
    let url = format!("https://127.0.0.1:{port}");
    let ca = ca_file.to_str().unwrap();

    // Not trusted by the built-in roots: the cause is named.
    let out = home.run(&["clusters", "--broker", &url, "--api-key", READ_KEY]);
    assert_eq!(out.code, 3, "{out}");
    assert!(
        out.stderr.starts_with(&format!(
            "kubeline: cannot reach the broker at {url}: invalid peer certificate"
        )),
        "{out}"
    );
    // Trusted with --ca-file (or KUBELINE_CA_FILE).
    let out = home.run(&[
        "clusters",
        "--broker",
        &url,
        "--api-key",
        READ_KEY,
        "--ca-file",
        ca,
    ]);
    assert_eq!(out.code, 0, "{out}");
    assert!(out.stdout.starts_with("CLUSTER"), "{out}");
    let out = home.run_with(
        &["clusters", "--broker", &url, "--api-key", READ_KEY],
        &[("KUBELINE_CA_FILE", ca)],
        None,
    );
    assert_eq!(out.code, 0, "{out}");
    // A CA file that is not one.
    let out = home.run(&[
        "clusters",
        "--broker",
        &url,
        "--api-key",
        READ_KEY,
        "--ca-file",
        cert_file.with_extension("nope").to_str().unwrap(),
    ]);
    assert_eq!(out.code, 2, "{out}");
    assert!(out.stderr.contains("cannot read the CA file"), "{out}");
    let out = home.run(&[
        "clusters",
        "--broker",
        &url,
        "--api-key",
        READ_KEY,
        "--ca-file",
        key_file.to_str().unwrap(),
    ]);
    assert_eq!(out.code, 2, "{out}");
    assert!(out.stderr.contains("(--ca-file)"), "{out}");

    // Login keeps the CA file with the broker and key.
    let out = home.run(&[
        "login",
        "--broker",
        &url,
        "--api-key",
        READ_KEY,
        "--ca-file",
        ca,
    ]);
    assert_eq!(out.code, 0, "{out}");
    assert!(
        std::fs::read_to_string(home.config())
            .unwrap()
            .contains("ca.pem")
    );
    let out = home.run(&["kubectl", "-c", CLUSTER, "--", "get", "pods"]);
    // No agent here: the broker answered over TLS, with its 503.
    assert_eq!(out.code, 9, "{out}");
}

#[tokio::test]
async fn kubectl_streams_the_commands_that_keep_running() {
    let (_stack, _api, url) = live("stream", &[]).await;
    let home = Home::new("stream");
    let env = [
        ("KUBELINE_BROKER_URL", url.as_str()),
        ("KUBELINE_API_KEY", READ_KEY),
    ];
    // A watch runs until its lifetime (--timeout), printing as it goes, and exits as timeout(1).
    let started = std::time::Instant::now();
    let out = home.run_with(
        &[
            "kubectl",
            "-c",
            CLUSTER,
            "--timeout",
            "2",
            "--",
            "get",
            "namespaces",
            "-w",
        ],
        &env,
        None,
    );
    assert_eq!(out.code, 124, "{out}");
    assert!(out.stdout.starts_with("NAME "), "{out}");
    assert!(out.stdout.contains("kube-system"), "{out}");
    assert!(out.stderr.contains("reached its lifetime"), "{out}");
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(2),
        "{out}"
    );
    // A stream the broker refuses says so, with the CLI's exit code for a refusal.
    let out = home.run_with(
        &[
            "kubectl",
            "-c",
            CLUSTER,
            "--",
            "get",
            "pods",
            "-w",
            "--token=x",
        ],
        &env,
        None,
    );
    assert_eq!(out.code, 7, "{out}");
    // The one-shot form still runs once.
    let out = home.run_with(
        &["kubectl", "-c", CLUSTER, "--", "get", "namespaces"],
        &env,
        None,
    );
    assert_eq!(out.code, 0, "{out}");
    assert!(out.stdout.contains("kube-system"), "{out}");
}
