//! The agent's TLS client: how it trusts a `https://`/`wss://` broker.
//!
//! By default the broker's certificate must chain to the system's root certificates, read by
//! `rustls-native-certs` (the OS store: `/etc/ssl/certs` and friends, or `SSL_CERT_FILE` /
//! `SSL_CERT_DIR` when set). `--ca-file` replaces them with the CA certificates of one PEM file,
//! for a broker whose certificate a private CA signed. `--insecure` verifies nothing and is for
//! development only: it is logged loudly at start and on every connection.
//!
//! A handshake that fails verification is explained in words a user can act on
//! ([`ClientTls::explain`]), then retried with the link's usual backoff.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore};
use tokio_tungstenite::Connector;
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::error::{ProtocolError, TlsError as WsTlsError};
use tracing::{info, warn};

/// Largest `--ca-file` read; a bundle of a few hundred CA certificates is well under this.
pub const MAX_CA_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// TLS flags of the agent (flattened into `AgentArgs`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ClientTlsArgs {
    /// PEM file of the CA certificate(s) that signed the broker's certificate; trusted instead
    /// of the system's root certificates for a https:// or wss:// broker URL.
    #[arg(long, env = "KUBELINE_CA_FILE", value_name = "FILE")]
    pub ca_file: Option<PathBuf>,

    /// Do not verify the broker's certificate. Development only: anyone on the path can then
    /// impersonate the broker, read the agent's token and send it commands.
    // Not `conflicts_with = "ca_file"`: clap would count KUBELINE_INSECURE=false as given.
    // `ClientTls::from_args` refuses the pair instead. The environment variable takes
    // true/false, yes/no, on/off or 1/0.
    #[arg(
        long,
        env = "KUBELINE_INSECURE",
        action = clap::ArgAction::SetTrue,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub insecure: bool,
}

/// Why the agent's TLS settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ClientTlsError {
    /// `--ca-file` and `--insecure` were both given.
    #[error("--ca-file and --insecure exclude each other")]
    Conflict,
    /// The CA file could not be read.
    #[error("cannot read --ca-file {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    /// The CA file is larger than [`MAX_CA_FILE_BYTES`].
    #[error("--ca-file {} is larger than {MAX_CA_FILE_BYTES} bytes; is it the right file?", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
    },
    /// The CA file is not well-formed PEM.
    #[error("--ca-file {} is not valid PEM: {problem}", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// The CA file holds no certificate.
    #[error("--ca-file {} holds no certificate (expected \"BEGIN CERTIFICATE\" PEM blocks)", path.display())]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// A certificate of the CA file cannot be a trust anchor.
    #[error("--ca-file {}: certificate {index} is not a usable CA certificate", path.display())]
    BadCertificate {
        /// The file.
        path: PathBuf,
        /// Its position in the file, from 1.
        index: usize,
        /// What rustls said.
        #[source]
        source: rustls::Error,
    },
    /// rustls refused the client configuration.
    #[error("cannot build the TLS client configuration")]
    Config(#[source] rustls::Error),
}

/// What the agent trusts for the broker's certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// The system's root certificates (how many were found).
    System {
        /// Root certificates loaded.
        roots: usize,
    },
    /// The CA certificates of `--ca-file`.
    CaFile(PathBuf),
    /// Nothing is verified (`--insecure`).
    Insecure,
}

/// The agent's TLS client configuration for a `https://`/`wss://` broker.
#[derive(Clone)]
pub struct ClientTls {
    trust: Trust,
    config: Arc<ClientConfig>,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("trust", &self.trust)
            .finish_non_exhaustive()
    }
}

impl Default for ClientTls {
    /// The system's root certificates.
    fn default() -> Self {
        Self::system()
    }
}

impl ClientTls {
    /// The configuration the flags ask for; `--ca-file` is read now, so a bad file stops the
    /// agent at start with a message naming it.
    pub fn from_args(args: &ClientTlsArgs) -> Result<Self, ClientTlsError> {
        match (&args.ca_file, args.insecure) {
            (Some(_), true) => Err(ClientTlsError::Conflict),
            (Some(path), false) => Self::ca_file(path),
            (None, true) => Ok(Self::insecure()),
            (None, false) => Ok(Self::system()),
        }
    }

    /// Trusts the system's root certificates.
    pub fn system() -> Self {
        let found = rustls_native_certs::load_native_certs();
        for e in &found.errors {
            tracing::debug!(error = %e, "cannot read a system root certificate");
        }
        let mut roots = RootCertStore::empty();
        let (added, _ignored) = roots.add_parsable_certificates(found.certs);
        Self {
            trust: Trust::System { roots: added },
            config: Arc::new(
                builder()
                    .with_root_certificates(roots)
                    .with_no_client_auth(),
            ),
        }
    }

    /// Trusts the CA certificates of a PEM file (one or several).
    pub fn ca_file(path: &std::path::Path) -> Result<Self, ClientTlsError> {
        use std::io::Read;
        let read = |source| ClientTlsError::Read {
            path: path.to_owned(),
            source,
        };
        let mut pem = Vec::new();
        std::fs::File::open(path)
            .map_err(read)?
            .take(MAX_CA_FILE_BYTES + 1)
            .read_to_end(&mut pem)
            .map_err(read)?;
        if pem.len() as u64 > MAX_CA_FILE_BYTES {
            return Err(ClientTlsError::TooLarge {
                path: path.to_owned(),
            });
        }
        let certs = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ClientTlsError::Pem {
                path: path.to_owned(),
                problem: pem_problem(&e),
            })?;
        if certs.is_empty() {
            return Err(ClientTlsError::Empty {
                path: path.to_owned(),
            });
        }
        let mut roots = RootCertStore::empty();
        for (i, cert) in certs.into_iter().enumerate() {
            roots
                .add(cert)
                .map_err(|source| ClientTlsError::BadCertificate {
                    path: path.to_owned(),
                    index: i + 1,
                    source,
                })?;
        }
        Ok(Self {
            trust: Trust::CaFile(path.to_owned()),
            config: Arc::new(
                builder()
                    .with_root_certificates(roots)
                    .with_no_client_auth(),
            ),
        })
    }

    /// Verifies nothing (`--insecure`).
    pub fn insecure() -> Self {
        let provider = provider();
        Self {
            trust: Trust::Insecure,
            config: Arc::new(
                builder()
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
                    .with_no_client_auth(),
            ),
        }
    }

    /// What the broker's certificate is checked against.
    pub fn trust(&self) -> &Trust {
        &self.trust
    }

    /// Whether the broker's certificate goes unverified.
    pub fn is_insecure(&self) -> bool {
        self.trust == Trust::Insecure
    }

    /// The connector for a WebSocket URL: rustls for `wss://`, none (plain TCP) for `ws://`.
    pub fn connector_for(&self, url: &str) -> Option<Connector> {
        url.starts_with("wss://")
            .then(|| Connector::Rustls(self.config.clone()))
    }

    /// Says at start how the broker's certificate will be checked; loudly when it will not be.
    pub fn announce(&self, url: &str) {
        if !url.starts_with("wss://") {
            if !matches!(self.trust, Trust::System { .. }) {
                warn!(
                    broker_url = %url,
                    "--ca-file and --insecure have no effect: the broker URL is not https:// or wss://"
                );
            }
            return;
        }
        match &self.trust {
            Trust::Insecure => warn!(
                "--insecure: the broker's certificate is NOT verified, so this link is not \
                 authenticated: anyone on the network path can impersonate the broker, read the \
                 agent token and send commands. Use it for development only; pass --ca-file instead"
            ),
            Trust::System { roots: 0 } => warn!(
                "no system root certificates found: the broker's certificate cannot be verified; \
                 pass --ca-file with the CA that signed it (or set SSL_CERT_FILE)"
            ),
            _ => info!(trust = %self.trusted(), "verifying the broker's certificate"),
        }
    }

    /// Called on every connection to a `wss://` broker: with `--insecure`, says again that the
    /// link is not authenticated.
    pub fn warn_if_insecure(&self, url: &str) {
        if self.is_insecure() && url.starts_with("wss://") {
            warn!(
                broker_url = %url,
                "connected WITHOUT verifying the broker's certificate (--insecure): this link \
                 is not authenticated"
            );
        }
    }

    /// What the system trusts, in words.
    fn trusted(&self) -> String {
        match &self.trust {
            Trust::System { .. } => "the system's root certificates".to_owned(),
            Trust::CaFile(path) => format!("the CA certificates of --ca-file {}", path.display()),
            Trust::Insecure => "anything (--insecure)".to_owned(),
        }
    }

    /// A message a user can act on when dialling `url` failed for a TLS reason (or for
    /// speaking the wrong protocol to the broker); `None` for other failures.
    pub fn explain(&self, url: &str, error: &WsError) -> Option<String> {
        let Some(tls) = rustls_error(error) else {
            if url.starts_with("ws://") && not_tls_reply(error) {
                return Some(format!(
                    "cannot reach the broker at {url}: {error}; if the broker serves TLS, use \
                     an https:// broker URL"
                ));
            }
            return None;
        };
        let host = url
            .split_once("://")
            .map(|(_, rest)| rest.split(['/', '?']).next().unwrap_or(rest))
            .unwrap_or(url);
        let fix = match &self.trust {
            Trust::CaFile(path) => format!(
                "check that --ca-file {} holds the CA that signed the broker's certificate",
                path.display()
            ),
            _ => "pass --ca-file with the CA that signed it".to_owned(),
        };
        Some(match tls {
            rustls::Error::InvalidCertificate(cert) => match cert {
                CertificateError::UnknownIssuer | CertificateError::BadSignature => format!(
                    "broker certificate is not trusted: it is not signed by {} ({tls}); {fix}",
                    self.trusted()
                ),
                CertificateError::NotValidForName
                | CertificateError::NotValidForNameContext { .. } => format!(
                    "broker certificate is not valid for {host} ({tls}); use a broker URL with \
                     a name the certificate lists, or reissue the certificate for this name"
                ),
                CertificateError::Expired | CertificateError::ExpiredContext { .. } => format!(
                    "broker certificate has expired ({tls}); renew it on the broker, and check \
                     the clocks of the agent and the broker"
                ),
                CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                    format!(
                        "broker certificate is not valid yet ({tls}); check the clocks of the \
                         agent and the broker"
                    )
                }
                _ => format!("broker certificate is not acceptable ({tls}); {fix}"),
            },
            rustls::Error::InvalidMessage(_) => format!(
                "the broker at {host} did not answer in TLS ({tls}); is it serving plain HTTP? \
                 then use an http:// broker URL"
            ),
            rustls::Error::AlertReceived(alert) => format!(
                "the broker refused the TLS handshake (alert {alert:?}); see the broker's log"
            ),
            other => format!("TLS handshake with the broker at {host} failed ({other})"),
        })
    }
}

/// The rustls error inside a failed dial, if the failure was TLS's.
fn rustls_error(error: &WsError) -> Option<&rustls::Error> {
    match error {
        // tokio-rustls reports a handshake failure as an I/O error around the rustls error.
        WsError::Io(io) => io.get_ref()?.downcast_ref::<rustls::Error>(),
        WsError::Tls(WsTlsError::Rustls(e)) => Some(e),
        _ => None,
    }
}

/// Whether a plain-HTTP dial failed the way it does when the broker speaks TLS: the reply is a
/// TLS alert, not HTTP, or the connection is dropped mid-handshake.
fn not_tls_reply(error: &WsError) -> bool {
    match error {
        WsError::HttpFormat(_)
        | WsError::Protocol(ProtocolError::HandshakeIncomplete | ProtocolError::HttparseError(_)) => {
            true
        }
        WsError::Io(io) => matches!(
            io.kind(),
            std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset
        ),
        _ => false,
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn builder() -> rustls::ConfigBuilder<ClientConfig, rustls::WantsVerifier> {
    ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
}

/// A PEM parse error in words (the crate's own messages print byte arrays).
fn pem_problem(e: &rustls::pki_types::pem::Error) -> String {
    use rustls::pki_types::pem::Error as E;
    match e {
        E::MissingSectionEnd { end_marker } => format!(
            "a PEM block has no end line ({:?})",
            String::from_utf8_lossy(end_marker)
        ),
        E::IllegalSectionStart { line } => format!(
            "malformed PEM begin line {:?}",
            String::from_utf8_lossy(line)
        ),
        E::Base64Decode(e) => format!("a PEM block is not valid base64 ({e})"),
        other => other.to_string(),
    }
}

/// `--insecure`: accepts any certificate, but still checks that the handshake is signed by
/// the key of the certificate shown (so the session is at least encrypted to someone).
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};

    fn ca_pem() -> String {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.self_signed(&key).unwrap().pem()
    }

    fn temp(name: &str, contents: &str) -> PathBuf {
        let path = std::env::temp_dir().join(format!(
            "kubeline-agent-tls-{name}-{}.pem",
            std::process::id()
        ));
        std::fs::write(&path, contents).unwrap();
        path
    }

    fn err(args: &ClientTlsArgs) -> String {
        let e = ClientTls::from_args(args).expect_err("refused");
        let mut text = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            text.push_str(": ");
            text.push_str(&s.to_string());
            source = s.source();
        }
        text
    }

    #[test]
    fn ca_file_holds_one_or_several_certificates() {
        let path = temp("bundle", &format!("{}{}", ca_pem(), ca_pem()));
        let tls = ClientTls::from_args(&ClientTlsArgs {
            ca_file: Some(path.clone()),
            insecure: false,
        })
        .unwrap();
        assert_eq!(tls.trust(), &Trust::CaFile(path.clone()));
        assert!(tls.connector_for("wss://b/agent/v1/connect").is_some());
        assert!(tls.connector_for("ws://b/agent/v1/connect").is_none());
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn bad_ca_files_are_named_with_their_problem() {
        let missing = std::env::temp_dir().join("kubeline-no-such-ca.pem");
        let args = |p: &PathBuf| ClientTlsArgs {
            ca_file: Some(p.clone()),
            insecure: false,
        };
        let e = err(&args(&missing));
        assert!(
            e.starts_with(&format!("cannot read --ca-file {}: ", missing.display())),
            "{e}"
        );
        let empty = temp("empty", "hello\n");
        assert!(err(&args(&empty)).contains("holds no certificate"));
        let cut = temp("cut", &ca_pem().replace("-----END CERTIFICATE-----", ""));
        assert!(err(&args(&cut)).contains("is not valid PEM: a PEM block has no end line"));
        let junk = temp(
            "junk",
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        );
        let e = err(&args(&junk));
        assert!(
            e.contains("certificate 1 is not a usable CA certificate"),
            "{e}"
        );
        for p in [empty, cut, junk] {
            let _ = std::fs::remove_file(p);
        }
        let both = ClientTlsArgs {
            ca_file: Some(missing),
            insecure: true,
        };
        assert_eq!(err(&both), "--ca-file and --insecure exclude each other");
    }

    #[test]
    fn flags_parse_and_exclude_each_other() {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            tls: ClientTlsArgs,
        }
        let cli = <Cli as clap::Parser>::try_parse_from(["a"]).unwrap();
        assert!(cli.tls.ca_file.is_none() && !cli.tls.insecure);
        let cli = <Cli as clap::Parser>::try_parse_from(["a", "--insecure"]).unwrap();
        assert!(cli.tls.insecure);
        assert!(ClientTls::from_args(&cli.tls).unwrap().is_insecure());
        let both =
            <Cli as clap::Parser>::try_parse_from(["a", "--insecure", "--ca-file", "x"]).unwrap();
        assert!(matches!(
            ClientTls::from_args(&both.tls),
            Err(ClientTlsError::Conflict)
        ));
    }

    #[test]
    fn verification_failures_say_what_to_do() {
        let tls = ClientTls::system();
        let io =
            |e: rustls::Error| WsError::Io(std::io::Error::new(std::io::ErrorKind::InvalidData, e));
        let url = "wss://127.0.0.1:8443/agent/v1/connect";
        let msg = tls
            .explain(
                url,
                &io(rustls::Error::InvalidCertificate(
                    CertificateError::UnknownIssuer,
                )),
            )
            .unwrap();
        assert!(
            msg.starts_with("broker certificate is not trusted: it is not signed by the system's root certificates"),
            "{msg}"
        );
        assert!(
            msg.ends_with("pass --ca-file with the CA that signed it"),
            "{msg}"
        );
        let msg = tls
            .explain(
                url,
                &io(rustls::Error::InvalidCertificate(
                    CertificateError::NotValidForName,
                )),
            )
            .unwrap();
        assert!(
            msg.starts_with("broker certificate is not valid for 127.0.0.1:8443"),
            "{msg}"
        );
        let msg = tls
            .explain(
                url,
                &io(rustls::Error::InvalidMessage(
                    rustls::InvalidMessage::InvalidContentType,
                )),
            )
            .unwrap();
        assert!(msg.contains("then use an http:// broker URL"), "{msg}");
        // Not TLS's failure: no explanation.
        let refused = WsError::Io(std::io::ErrorKind::ConnectionRefused.into());
        assert!(tls.explain(url, &refused).is_none());
        // A ws:// URL answered by a TLS broker.
        let eof = WsError::Io(std::io::ErrorKind::UnexpectedEof.into());
        let msg = tls.explain("ws://b/agent/v1/connect", &eof).unwrap();
        assert!(msg.ends_with("use an https:// broker URL"), "{msg}");
    }
}
