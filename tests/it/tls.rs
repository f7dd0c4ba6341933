//! TLS end to end: a `kubeline broker` serving HTTPS and WSS with certificates this test makes
//! (a CA and server certificates for 127.0.0.1 and localhost), `kubeline agent` processes that
//! trust the CA, the system roots, or nothing, and a certificate rotated on disk under a live
//! link. Commands run on the test bed's API server (`scripts/test`, or `scripts/testbed up` and
//! `eval "$(scripts/testbed env)"`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::*;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

// === certificates ===

/// A CA that issues server certificates for 127.0.0.1 and localhost.
struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

/// A server certificate and its key.
struct ServerCert {
    cert_pem: String,
    key_pem: String,
    der: Vec<u8>,
}

impl Ca {
    fn new() -> Self {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "kubeline test CA");
        let cert = params.self_signed(&key).unwrap();
        Self {
            issuer: Issuer::new(params, key),
            pem: cert.pem(),
        }
    }

    fn issue(&self, serial: u64) -> ServerCert {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
        params.serial_number = Some(serial.into());
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        ServerCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().to_vec(),
        }
    }
}

/// The broker's certificate files in a directory of their own, and the CA file.
struct Files {
    dir: PathBuf,
}

impl Files {
    fn new(name: &str, ca: &Ca, first: &ServerCert) -> Self {
        let dir = std::env::temp_dir().join(format!("kubeline-tls-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("ca.pem"), &ca.pem).unwrap();
        let files = Self { dir };
        files.install(first);
        files
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    fn cert(&self) -> String {
        self.path("tls.crt")
    }

    fn key(&self) -> String {
        self.path("tls.key")
    }

    fn ca(&self) -> String {
        self.path("ca.pem")
    }

    /// Replaces both files, each atomically (write beside, then rename), key first.
    fn install(&self, pair: &ServerCert) {
        replace(&self.dir.join("tls.key"), &pair.key_pem);
        replace(&self.dir.join("tls.crt"), &pair.cert_pem);
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn replace(path: &Path, contents: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, contents).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

// === helpers ===

async fn tls_broker(name: &str, files: &Files, ca: &Ca) -> (Proc, Api, u16) {
    let opts = BrokerOpts::embedded().with(&[
        "--tls-cert",
        &files.cert(),
        "--tls-key",
        &files.key(),
        "--tls-reload-seconds",
        "1",
    ]);
    let port = opts.port;
    let api = Api::https(port, ADMIN_KEY, ca.pem.as_bytes());
    let (proc, api) = start_broker_answering(name, opts, api).await;
    (proc, api, port)
}

/// The certificate a new TLS handshake with the broker on `port` is shown (a fresh client, so
/// no pooled connection hides a reload).
async fn served_cert(port: u16, ca: &Ca) -> Vec<u8> {
    let client = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca.pem.as_bytes()).unwrap())
        .tls_info(true)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let res = client
        .get(format!("https://127.0.0.1:{port}/health"))
        .send()
        .await
        .expect("an https request to /health");
    assert_eq!(res.status(), 200);
    res.extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|info| info.peer_certificate())
        .expect("the peer certificate")
        .to_vec()
}

async fn run_version(api: &Api) {
    let session = api.session().await;
    let (status, result) = api.execute(&session, "version", &[]).await;
    assert_eq!(status, 200, "{result}");
    assert_eq!(result["status"], "completed", "{result}");
    let output = result["output"].as_str().unwrap();
    assert!(output.contains("Server Version: v"), "{output}");
}

async fn log_says(proc: &Proc, what: &str, needle: &str) -> String {
    eventually(what, Duration::from_secs(30), || async {
        let logs = proc.logs();
        logs.contains(needle).then_some(logs)
    })
    .await
}

// === tests ===

#[tokio::test]
async fn agent_links_over_wss_and_survives_a_certificate_rotation() {
    let ca = Ca::new();
    let first = ca.issue(1);
    let files = Files::new("rotate", &ca, &first);
    let (broker, api, port) = tls_broker("tls-rotate", &files, &ca).await;
    assert!(broker.logs().contains("serving HTTPS and WSS"));

    // REST over https, trusting only the test CA.
    let (status, body) = api.get("/clusters").await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(served_cert(port, &ca).await, first.der);

    // The agent trusts the CA from --ca-file and links over wss.
    let url = format!("https://127.0.0.1:{port}");
    let agent = start_agent_at(
        "tls-rotate-agent",
        &url,
        CLUSTER,
        AGENT_TOKEN,
        &["--ca-file", &files.ca()],
    );
    wait_connected(&api).await;
    run_version(&api).await;
    let agent_logs = agent.logs();
    assert!(
        agent_logs.contains("verifying the broker's certificate"),
        "{agent_logs}"
    );

    // Rotate: new handshakes get the second certificate...
    let second = ca.issue(2);
    assert_ne!(second.der, first.der);
    files.install(&second);
    eventually(
        "a new handshake to see the rotated certificate",
        Duration::from_secs(30),
        || async { (served_cert(port, &ca).await == second.der).then_some(()) },
    )
    .await;
    log_says(
        &broker,
        "the reload to be logged",
        "TLS certificate reloaded",
    )
    .await;

    // ...while the link made before the rotation stays up and keeps running commands.
    run_version(&api).await;
    let broker_logs = broker.logs();
    assert_eq!(
        broker_logs.matches("agent linked").count(),
        1,
        "the agent must not have reconnected:\n{broker_logs}"
    );
    assert!(!broker_logs.contains("agent link closed"), "{broker_logs}");
    assert_eq!(agent.logs().matches("linked to broker").count(), 1);

    // A broken pair is refused, logged, and the second certificate is still served.
    std::fs::write(files.dir.join("tls.crt"), "not a certificate").unwrap();
    let logs = log_says(
        &broker,
        "the refused pair to be logged",
        "still serving the previous pair",
    )
    .await;
    assert!(logs.contains("holds no certificate"), "{logs}");
    assert_eq!(served_cert(port, &ca).await, second.der);
    run_version(&api).await;
    assert_eq!(broker.logs().matches("agent linked").count(), 1);

    // SIGTERM drains over TLS as over plain HTTP: the agent is told to come back later.
    let mut broker = broker;
    broker.terminate(Duration::from_secs(15));
    log_says(
        &agent,
        "the agent to be asked to reconnect",
        "broker asked to reconnect later",
    )
    .await;
}

#[tokio::test]
async fn agents_that_do_not_trust_the_broker_say_why_and_insecure_ones_warn() {
    let ca = Ca::new();
    let files = Files::new("trust", &ca, &ca.issue(1));
    let (broker, api, port) = tls_broker("tls-trust", &files, &ca).await;
    let url = format!("https://127.0.0.1:{port}");

    // System roots only: the test CA is not among them.
    let mut untrusting = start_agent_at("tls-trust-system", &url, CLUSTER, AGENT_TOKEN, &[]);
    let logs = log_says(
        &untrusting,
        "the agent to say the certificate is not trusted",
        "broker certificate is not trusted",
    )
    .await;
    assert!(
        logs.contains("pass --ca-file with the CA that signed it"),
        "{logs}"
    );
    assert!(logs.contains("retry_in_ms"), "retried with backoff: {logs}");
    assert!(untrusting.is_running(), "a refused handshake is retried");
    let (_, status) = api
        .get(&format!("/clusters/{CLUSTER}/status"))
        .await
        .unwrap();
    assert_ne!(status["status"], "connected", "{status}");
    untrusting.kill();

    // A CA file with another CA: not trusted either, and the message names the file.
    let other = Ca::new();
    let other_ca = files.path("other-ca.pem");
    std::fs::write(&other_ca, &other.pem).unwrap();
    let mut wrong_ca = start_agent_at(
        "tls-trust-wrong-ca",
        &url,
        CLUSTER,
        AGENT_TOKEN,
        &["--ca-file", &other_ca],
    );
    let logs = log_says(
        &wrong_ca,
        "the agent to say the certificate is not trusted",
        "broker certificate is not trusted",
    )
    .await;
    assert!(
        logs.contains(&format!("check that --ca-file {other_ca} holds the CA")),
        "{logs}"
    );
    wrong_ca.kill();

    // http:// to a TLS broker: the agent says to use https://.
    let mut plain = start_agent_at(
        "tls-trust-plain",
        &format!("http://127.0.0.1:{port}"),
        CLUSTER,
        AGENT_TOKEN,
        &[],
    );
    log_says(
        &plain,
        "the agent to suggest https",
        "use an https:// broker URL",
    )
    .await;
    plain.kill();

    // --insecure links, and says loudly at start and on connecting that nothing is verified.
    let insecure = start_agent_at(
        "tls-trust-insecure",
        &url,
        CLUSTER,
        AGENT_TOKEN,
        &["--insecure"],
    );
    wait_connected(&api).await;
    run_version(&api).await;
    let logs = insecure.logs();
    assert!(
        logs.contains("WARN")
            && logs.contains("--insecure: the broker's certificate is NOT verified"),
        "{logs}"
    );
    assert!(
        logs.contains("connected WITHOUT verifying the broker's certificate"),
        "{logs}"
    );
    // The broker saw failed handshakes but kept serving.
    assert!(broker.logs().contains("agent linked"));
}

#[test]
fn bad_certificate_files_stop_the_broker_with_the_flag_and_the_file() {
    let ca = Ca::new();
    let pair = ca.issue(1);
    let files = Files::new("startup", &ca, &pair);
    let missing = files.path("missing.crt");
    let broker = |cert: &str, key: &str| {
        let out = kubeline()
            .args(["broker", "--listen", "127.0.0.1:0"])
            .args(["--api-key", "admin=k", "--agent-token", "c1=t"])
            .args(["--tls-cert", cert, "--tls-key", key])
            .output()
            .expect("run kubeline broker");
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = broker(&missing, &files.key());
    assert!(
        err.contains(&format!("cannot read --tls-cert {missing}")),
        "{err}"
    );
    assert!(err.contains("No such file or directory"), "{err}");

    let other_key = files.path("other.key");
    std::fs::write(&other_key, ca.issue(2).key_pem).unwrap();
    let err = broker(&files.cert(), &other_key);
    assert!(
        err.contains(&format!(
            "--tls-key {other_key} does not match the certificate in --tls-cert {}",
            files.cert()
        )),
        "{err}"
    );

    // One flag without the other is refused by the argument parser.
    let out = kubeline()
        .args(["broker", "--tls-cert", &files.cert()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--tls-key <FILE>"), "{err}");

    // The agent refuses a CA file that holds no certificate before doing anything else, and
    // --insecure with --ca-file; KUBELINE_INSECURE=false is not --insecure.
    let agent = |insecure: &str| {
        let out = kubeline()
            .args(["agent", "--broker-url", "https://127.0.0.1:1"])
            .args(["--cluster-id", "c1", "--token", "t"])
            .args(["--ca-file", &files.key()])
            .env("KUBELINE_INSECURE", insecure)
            .output()
            .unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = agent("false");
    assert!(
        err.contains(&format!("--ca-file {} holds no certificate", files.key())),
        "{err}"
    );
    let err = agent("1");
    assert!(
        err.contains("--ca-file and --insecure exclude each other"),
        "{err}"
    );
}

/// rustls 0.23 defaults to aws-lc-rs (cmake, a C toolchain, and a second provider that makes
/// `ClientConfig::builder()` panic); the build stays on ring. A feature that pulls aws-lc in
/// (axum-server `tls-rustls`, tokio-rustls defaults, reqwest 0.13 `rustls`, ...) fails here.
#[test]
fn the_build_stays_on_ring() {
    let lock = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.lock"))
        .expect("read Cargo.lock");
    assert!(
        !lock.contains("name = \"aws-lc"),
        "Cargo.lock holds aws-lc: find what pulls it with `cargo tree --workspace -i aws-lc-rs` \
         and turn that crate's default features off"
    );
}
