//! Bad configuration stops the binary at once with a message that names the flag.

use std::process::Command;

fn kubeline(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kubeline"))
        .args(args)
        .env_remove("KUBELINE_API_KEYS")
        .env_remove("KUBELINE_AGENT_TOKENS")
        .env_remove("KUBELINE_REDIS_URL")
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
                "redis://127.0.0.1:1/",
            ],
            "cannot connect to Redis at redis://127.0.0.1:1/ (--redis-url)",
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
