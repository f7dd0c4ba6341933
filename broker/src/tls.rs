//! HTTPS and WSS for the broker: the certificate and key given by `--tls-cert`/`--tls-key`,
//! reloaded when the files change, served by `axum::serve` over a TLS [`Listener`].
//!
//! Why a listener and not a server of its own: `axum::serve` already does everything
//! `Broker::serve` relies on (graceful shutdown after the hub's drain, WebSocket upgrades,
//! accept-error handling), so TLS is only a different way to accept a connection. The
//! [`TlsListener`] accepts TCP connections in a task of its own and runs each handshake in a
//! task too, under [`HANDSHAKE_TIMEOUT`], at most [`MAX_PENDING_HANDSHAKES`] at once; axum gets
//! only finished handshakes. A client that sends nothing, or garbage, holds one slot for at
//! most ten seconds and never delays anyone else's handshake or request.
//!
//! The certificate is chosen per handshake by [`CertStore`] (a rustls `ResolvesServerCert`
//! over an `ArcSwap`), so a reload changes what new handshakes see and leaves established
//! connections, including agent links, as they are. The files are polled, not watched:
//! Kubernetes updates a mounted Secret by swapping a `..data` symlink, which file watches on
//! the old path miss. Each look reads both files (a few KiB, through the symlinks) and compares
//! the SHA-256 of their contents with the last look's: unlike an mtime check, this cannot miss
//! a change made within the file system's timestamp resolution or by a copy that keeps times,
//! and a pair that only got a new mtime is not reloaded.
//!
//! **Invariant:** a pair that does not load (unreadable, not PEM, no certificate, no key, a key
//! that does not match the certificate) never replaces the pair being served.

use std::error::Error as _;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use axum::serve::Listener;
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use sha2::{Digest, Sha256};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tracing::{debug, error, info};

/// Default interval between two looks at the certificate and key files, in seconds.
pub const DEFAULT_TLS_RELOAD_SECONDS: u64 = 10;
/// How long a client may take to complete its TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes in progress at once; past it the listener stops accepting until one ends, and
/// new connections wait in the kernel's backlog.
pub const MAX_PENDING_HANDSHAKES: usize = 1024;
/// Largest certificate or key file read; a PEM chain of a few certificates is a few KiB.
pub const MAX_PEM_BYTES: u64 = 1024 * 1024;

/// TLS flags of the broker (flattened into `BrokerArgs`).
#[derive(Debug, Clone, clap::Args)]
pub struct TlsArgs {
    /// PEM certificate chain to serve HTTPS and WSS with, the server's certificate first.
    /// Needs --tls-key. Without both the broker serves plain HTTP.
    #[arg(
        long,
        env = "KUBELINE_TLS_CERT",
        value_name = "FILE",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key of --tls-cert (PKCS#8, PKCS#1 or SEC1). Needs --tls-cert.
    #[arg(
        long,
        env = "KUBELINE_TLS_KEY",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,

    /// How often to look for a changed certificate or key file, in seconds. A changed pair is
    /// served to new connections; one that does not load is logged and the old pair kept.
    #[arg(
        long,
        env = "KUBELINE_TLS_RELOAD_SECONDS",
        default_value_t = DEFAULT_TLS_RELOAD_SECONDS,
        value_name = "SECONDS"
    )]
    pub tls_reload_seconds: u64,
}

impl Default for TlsArgs {
    /// Plain HTTP.
    fn default() -> Self {
        Self {
            tls_cert: None,
            tls_key: None,
            tls_reload_seconds: DEFAULT_TLS_RELOAD_SECONDS,
        }
    }
}

/// Why a certificate and key could not be served.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// One of `--tls-cert` and `--tls-key` was given without the other.
    #[error("--tls-cert and --tls-key go together: {missing} is missing")]
    Incomplete {
        /// The flag that is missing.
        missing: &'static str,
    },
    /// `--tls-reload-seconds` is zero.
    #[error("--tls-reload-seconds must be at least 1")]
    ZeroReload,
    /// A file could not be read.
    #[error("cannot read {flag} {}", path.display())]
    Read {
        /// The flag that named the file.
        flag: &'static str,
        /// The file.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: io::Error,
    },
    /// A file is larger than [`MAX_PEM_BYTES`].
    #[error("{flag} {} is larger than {MAX_PEM_BYTES} bytes; is it the right file?", path.display())]
    TooLarge {
        /// The flag that named the file.
        flag: &'static str,
        /// The file.
        path: PathBuf,
    },
    /// A file is not well-formed PEM.
    #[error("{flag} {} is not valid PEM: {problem}", path.display())]
    Pem {
        /// The flag that named the file.
        flag: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// The certificate file holds no certificate.
    #[error("--tls-cert {} holds no certificate (expected a \"BEGIN CERTIFICATE\" PEM block){hint}", path.display())]
    NoCertificate {
        /// The file.
        path: PathBuf,
        /// A hint when the file holds a private key instead.
        hint: &'static str,
    },
    /// A CA file holds no certificate.
    #[error("{flag} {} holds no certificate (expected one or more \"BEGIN CERTIFICATE\" PEM blocks)", path.display())]
    NoCaCertificate {
        /// The flag that named the file.
        flag: &'static str,
        /// The file.
        path: PathBuf,
    },
    /// The key file holds no private key.
    #[error("--tls-key {} holds no private key (expected a \"BEGIN PRIVATE KEY\", \"BEGIN RSA PRIVATE KEY\" or \"BEGIN EC PRIVATE KEY\" PEM block){hint}", path.display())]
    NoKey {
        /// The file.
        path: PathBuf,
        /// A hint when the file holds a certificate instead.
        hint: &'static str,
    },
    /// The private key is of a kind rustls cannot sign with.
    #[error("--tls-key {} is not a usable private key", path.display())]
    BadKey {
        /// The file.
        path: PathBuf,
        /// What rustls said.
        #[source]
        source: rustls::Error,
    },
    /// The first certificate cannot be parsed.
    #[error("--tls-cert {}: the first certificate is not a valid X.509 certificate", path.display())]
    BadCertificate {
        /// The file.
        path: PathBuf,
        /// What rustls said.
        #[source]
        source: rustls::Error,
    },
    /// The private key is not the key of the first certificate.
    #[error(
        "--tls-key {} does not match the certificate in --tls-cert {} (the first certificate \
         must be the server's own, issued for this key)",
        key.display(),
        cert.display()
    )]
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// rustls refused the server configuration.
    #[error("cannot build the TLS server configuration")]
    Config(#[source] rustls::Error),
}

// === impl CertStore ===

/// The certificate new handshakes get; swapped whole by a reload.
#[derive(Debug)]
pub struct CertStore {
    current: ArcSwap<CertifiedKey>,
}

impl CertStore {
    fn new(first: CertifiedKey) -> Self {
        Self {
            current: ArcSwap::from_pointee(first),
        }
    }

    /// The pair being served.
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current.load_full()
    }

    fn replace(&self, next: CertifiedKey) {
        self.current.store(Arc::new(next));
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

// === impl ServerTls ===

/// The broker's TLS: the files, the pair being served, and the rustls configuration.
pub struct ServerTls {
    cert_path: PathBuf,
    key_path: PathBuf,
    reload_every: Duration,
    provider: Arc<CryptoProvider>,
    store: Arc<CertStore>,
    config: Arc<ServerConfig>,
    /// The pair last read from disk (loaded or refused), so each change is tried and logged
    /// once.
    last_seen: std::sync::Mutex<Seen>,
}

/// What the reloader last found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    /// Both files, by the SHA-256 of their contents.
    Pair([u8; 32]),
    /// A file could not be read, with this message.
    Unreadable(String),
}

/// What one look at the files did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reload {
    /// The files are as they were last time.
    Unchanged,
    /// A new pair is served to new connections.
    Reloaded,
    /// The files changed but do not load; the old pair is still served. The message says why.
    Kept(String),
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("cert_path", &self.cert_path)
            .field("key_path", &self.key_path)
            .field("reload_every", &self.reload_every)
            .finish_non_exhaustive()
    }
}

impl ServerTls {
    /// Loads the pair named by `args`: `None` without `--tls-cert`/`--tls-key` (plain HTTP),
    /// an error naming the flag, the file and the problem when it does not load.
    pub fn load(args: &TlsArgs) -> Result<Option<Self>, TlsError> {
        let (cert_path, key_path) = match (&args.tls_cert, &args.tls_key) {
            (None, None) => return Ok(None),
            (Some(_), None) => {
                return Err(TlsError::Incomplete {
                    missing: "--tls-key",
                });
            }
            (None, Some(_)) => {
                return Err(TlsError::Incomplete {
                    missing: "--tls-cert",
                });
            }
            (Some(c), Some(k)) => (c.clone(), k.clone()),
        };
        if args.tls_reload_seconds == 0 {
            return Err(TlsError::ZeroReload);
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let (cert_pem, key_pem) = read_pair(&cert_path, &key_path)?;
        let first = parse_pair(&cert_path, &cert_pem, &key_path, &key_pem, &provider)?;
        let store = Arc::new(CertStore::new(first));
        let config = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Config)?
            .with_no_client_auth()
            .with_cert_resolver(store.clone());
        Ok(Some(Self {
            last_seen: std::sync::Mutex::new(Seen::Pair(digest(&cert_pem, &key_pem))),
            cert_path,
            key_path,
            reload_every: Duration::from_secs(args.tls_reload_seconds),
            provider,
            store,
            config: Arc::new(config),
        }))
    }

    /// The rustls configuration (its certificate follows reloads).
    pub fn config(&self) -> Arc<ServerConfig> {
        self.config.clone()
    }

    /// The pair being served.
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.store.current()
    }

    /// Reads both files and, if they changed since the last look, serves them to new
    /// connections when they load, or logs why not and keeps the old pair.
    pub async fn reload_if_changed(&self) -> Reload {
        let (cert, key) = (self.cert_path.clone(), self.key_path.clone());
        let read = tokio::task::spawn_blocking(move || read_pair(&cert, &key)).await;
        let read = match read {
            Ok(read) => read,
            Err(e) => return Reload::Kept(format!("cannot read the files: {e}")),
        };
        let seen = match &read {
            Ok((cert, key)) => Seen::Pair(digest(cert, key)),
            Err(e) => Seen::Unreadable(chain(e)),
        };
        {
            let mut last = self.last_seen.lock().unwrap_or_else(|e| e.into_inner());
            if *last == seen {
                return Reload::Unchanged;
            }
            *last = seen;
        }
        let loaded = read.and_then(|(cert_pem, key_pem)| {
            parse_pair(
                &self.cert_path,
                &cert_pem,
                &self.key_path,
                &key_pem,
                &self.provider,
            )
        });
        match loaded {
            Ok(next) => {
                let fingerprint = fingerprint(&next);
                self.store.replace(next);
                info!(
                    cert = %self.cert_path.display(),
                    sha256 = %fingerprint,
                    "TLS certificate reloaded; new connections get it, open ones keep theirs"
                );
                Reload::Reloaded
            }
            Err(e) => {
                let why = chain(&e);
                error!(
                    error = %why,
                    sha256 = %fingerprint(&self.store.current()),
                    "the changed TLS certificate or key does not load; still serving the \
                     previous pair (tried again when the files change)"
                );
                Reload::Kept(why)
            }
        }
    }

    /// Looks at the files every `--tls-reload-seconds` until dropped.
    async fn reload_loop(self: Arc<Self>) {
        let mut tick = tokio::time::interval(self.reload_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            self.reload_if_changed().await;
        }
    }

    /// Serves TLS over the connections `inner` accepts, reloading the pair as it goes.
    pub fn listen<L>(self, inner: L) -> TlsListener<L::Io>
    where
        L: Listener<Addr = SocketAddr>,
    {
        let local_addr = inner.local_addr().ok();
        info!(
            cert = %self.cert_path.display(),
            sha256 = %fingerprint(&self.current()),
            reload_seconds = self.reload_every.as_secs(),
            "serving HTTPS and WSS"
        );
        let acceptor = TlsAcceptor::from(self.config());
        let this = Arc::new(self);
        let reloader = tokio::spawn(this.reload_loop());
        let (tx, rx) = mpsc::channel(64);
        let acceptor = tokio::spawn(accept_loop(inner, acceptor, tx));
        TlsListener {
            local_addr,
            accepted: rx,
            tasks: [acceptor, reloader],
        }
    }
}

// === impl TlsListener ===

/// A listener whose connections have finished their TLS handshake (see the module docs).
pub struct TlsListener<Io> {
    local_addr: Option<SocketAddr>,
    accepted: mpsc::Receiver<(TlsStream<Io>, SocketAddr)>,
    /// The accept loop and the reloader; they end with the listener.
    tasks: [JoinHandle<()>; 2],
}

impl<Io> Drop for TlsListener<Io> {
    fn drop(&mut self) {
        // Closes the port at once, as dropping a TcpListener would.
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl<Io> Listener for TlsListener<Io>
where
    Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    type Io = TlsStream<Io>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.accepted.recv().await {
            Some(accepted) => accepted,
            None => {
                // Only a panic ends the accept loop; it was logged by the runtime.
                error!("the TLS accept loop has stopped; no new connections are accepted");
                std::future::pending().await
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.local_addr
            .ok_or_else(|| io::Error::other("the listener has no local address"))
    }
}

/// Accepts connections and hands each to a handshake task; at most
/// [`MAX_PENDING_HANDSHAKES`] handshakes run at once.
async fn accept_loop<L>(
    mut inner: L,
    acceptor: TlsAcceptor,
    done: mpsc::Sender<(TlsStream<L::Io>, SocketAddr)>,
) where
    L: Listener<Addr = SocketAddr>,
{
    let pending = Arc::new(Semaphore::new(MAX_PENDING_HANDSHAKES));
    loop {
        let Ok(permit) = pending.clone().acquire_owned().await else {
            return;
        };
        // `Listener::accept` retries accept errors itself (after a pause for EMFILE).
        let (io, peer) = inner.accept().await;
        let acceptor = acceptor.clone();
        let done = done.clone();
        tokio::spawn(async move {
            let _permit = permit;
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(io)).await {
                Ok(Ok(tls)) => {
                    // Fails only when the server is shutting down.
                    let _ = done.send((tls, peer)).await;
                }
                Ok(Err(e)) => debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => debug!(%peer, "TLS handshake timed out"),
            }
        });
    }
}

// === loading ===

fn read_pair(cert: &Path, key: &Path) -> Result<(Vec<u8>, Vec<u8>), TlsError> {
    Ok((read_pem("--tls-cert", cert)?, read_pem("--tls-key", key)?))
}

fn read_pem(flag: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    use std::io::Read;
    let read = |source| TlsError::Read {
        flag,
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read)?;
    let mut bytes = Vec::new();
    file.take(MAX_PEM_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read)?;
    if bytes.len() as u64 > MAX_PEM_BYTES {
        return Err(TlsError::TooLarge {
            flag,
            path: path.to_owned(),
        });
    }
    Ok(bytes)
}

/// Reads the CA certificates (PEM) that `flag` names at `path`: at most [`MAX_PEM_BYTES`],
/// well-formed, at least one certificate. Returns the file's bytes.
pub fn read_ca(flag: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    let pem = read_pem(flag, path)?;
    let mut certificates = 0;
    for certificate in CertificateDer::pem_slice_iter(&pem) {
        certificate.map_err(|e| TlsError::Pem {
            flag,
            path: path.to_owned(),
            problem: pem_problem(&e),
        })?;
        certificates += 1;
    }
    if certificates == 0 {
        return Err(TlsError::NoCaCertificate {
            flag,
            path: path.to_owned(),
        });
    }
    Ok(pem)
}

/// Parses a certificate chain and its key, and checks that they belong together.
fn parse_pair(
    cert_path: &Path,
    cert_pem: &[u8],
    key_path: &Path,
    key_pem: &[u8],
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let pem = |flag, path: &Path, e: &rustls::pki_types::pem::Error| TlsError::Pem {
        flag,
        path: path.to_owned(),
        problem: pem_problem(e),
    };
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem("--tls-cert", cert_path, &e))?;
    if chain.is_empty() {
        let holds_key = PrivateKeyDer::from_pem_slice(cert_pem).is_ok();
        return Err(TlsError::NoCertificate {
            path: cert_path.to_owned(),
            hint: if holds_key {
                "; it holds a private key: are --tls-cert and --tls-key swapped?"
            } else {
                ""
            },
        });
    }
    let key = match PrivateKeyDer::from_pem_slice(key_pem) {
        Ok(key) => key,
        Err(rustls::pki_types::pem::Error::NoItemsFound) => {
            let holds_cert = CertificateDer::pem_slice_iter(key_pem)
                .next()
                .is_some_and(|c| c.is_ok());
            return Err(TlsError::NoKey {
                path: key_path.to_owned(),
                hint: if holds_cert {
                    "; it holds a certificate: are --tls-cert and --tls-key swapped?"
                } else {
                    ""
                },
            });
        }
        Err(e) => return Err(pem("--tls-key", key_path, &e)),
    };
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|source| TlsError::BadKey {
            path: key_path.to_owned(),
            source,
        })?;
    let certified = CertifiedKey::new(chain, signing);
    match certified.keys_match() {
        // A key that cannot tell its public half cannot be checked; rustls serves it too.
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {
            Ok(certified)
        }
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            Err(TlsError::KeyMismatch {
                cert: cert_path.to_owned(),
                key: key_path.to_owned(),
            })
        }
        Err(source) => Err(TlsError::BadCertificate {
            path: cert_path.to_owned(),
            source,
        }),
    }
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

fn digest(cert: &[u8], key: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update((cert.len() as u64).to_be_bytes());
    h.update(cert);
    h.update(key);
    h.finalize().into()
}

/// SHA-256 of the served certificate (what `openssl x509 -fingerprint -sha256` prints,
/// without colons), for logs.
fn fingerprint(pair: &CertifiedKey) -> String {
    pair.cert
        .first()
        .map(|c| hex::encode(Sha256::digest(c.as_ref())))
        .unwrap_or_default()
}

/// An error and its causes on one line.
fn chain(e: &TlsError) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    use rustls::pki_types::ServerName;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A CA and a way to issue server certificates for 127.0.0.1 and localhost.
    struct Ca {
        issuer: Issuer<'static, KeyPair>,
        pem: String,
    }

    impl Ca {
        fn new() -> Self {
            let key = KeyPair::generate().unwrap();
            let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            let cert = params.self_signed(&key).unwrap();
            Self {
                issuer: Issuer::new(params, key),
                pem: cert.pem(),
            }
        }

        /// A server certificate and its key, as PEM, and the certificate's DER.
        fn issue(&self, serial: u64) -> (String, String, Vec<u8>) {
            let key = KeyPair::generate().unwrap();
            let mut params =
                CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
                    .unwrap();
            params.serial_number = Some(serial.into());
            let cert = params.signed_by(&key, &self.issuer).unwrap();
            (cert.pem(), key.serialize_pem(), cert.der().to_vec())
        }

        fn client(&self) -> tokio_rustls::TlsConnector {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(self.pem.as_bytes()) {
                roots.add(cert.unwrap()).unwrap();
            }
            let config = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
            tokio_rustls::TlsConnector::from(Arc::new(config))
        }
    }

    struct Files {
        dir: PathBuf,
    }

    impl Files {
        fn new(name: &str) -> Self {
            let dir = std::env::temp_dir()
                .join(format!("kubeline-tls-unit-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            Self { dir }
        }

        fn cert(&self) -> PathBuf {
            self.dir.join("tls.crt")
        }

        fn key(&self) -> PathBuf {
            self.dir.join("tls.key")
        }

        fn write(&self, cert: &str, key: &str) {
            std::fs::write(self.cert(), cert).unwrap();
            std::fs::write(self.key(), key).unwrap();
        }

        fn args(&self) -> TlsArgs {
            TlsArgs {
                tls_cert: Some(self.cert()),
                tls_key: Some(self.key()),
                tls_reload_seconds: 1,
            }
        }
    }

    impl Drop for Files {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    fn load_err(args: &TlsArgs) -> String {
        chain(&ServerTls::load(args).expect_err("the pair must be refused"))
    }

    /// Handshakes with the server's current configuration over an in-memory pipe and returns
    /// the certificate the client was shown.
    async fn served_cert(tls: &ServerTls, ca: &Ca) -> Vec<u8> {
        let (client_io, server_io) = tokio::io::duplex(64 * 1024);
        let acceptor = TlsAcceptor::from(tls.config());
        let server = tokio::spawn(async move {
            let mut stream = acceptor.accept(server_io).await.unwrap();
            let mut byte = [0u8; 1];
            stream.read_exact(&mut byte).await.unwrap();
        });
        let name = ServerName::try_from("localhost").unwrap();
        let mut client = ca.client().connect(name, client_io).await.unwrap();
        client.write_all(b"x").await.unwrap();
        client.flush().await.unwrap();
        server.await.unwrap();
        client.get_ref().1.peer_certificates().unwrap()[0].to_vec()
    }

    #[test]
    fn without_flags_there_is_no_tls() {
        assert!(ServerTls::load(&TlsArgs::default()).unwrap().is_none());
    }

    #[test]
    fn one_flag_alone_is_refused() {
        let mut args = TlsArgs {
            tls_cert: Some("c.pem".into()),
            ..TlsArgs::default()
        };
        assert_eq!(
            load_err(&args),
            "--tls-cert and --tls-key go together: --tls-key is missing"
        );
        args.tls_key = args.tls_cert.take();
        assert!(load_err(&args).contains("--tls-cert is missing"));

        // On the command line, clap refuses it before anything runs.
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            tls: TlsArgs,
        }
        let err = <Cli as clap::Parser>::try_parse_from(["b", "--tls-cert", "c.pem"])
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("--tls-key <FILE>"), "{err}");
        let cli = <Cli as clap::Parser>::try_parse_from(["b"]).unwrap();
        assert_eq!(cli.tls.tls_reload_seconds, DEFAULT_TLS_RELOAD_SECONDS);
    }

    #[test]
    fn loading_errors_name_the_flag_the_file_and_the_problem() {
        let ca = Ca::new();
        let (cert, key, _) = ca.issue(1);
        let (_, other_key, _) = ca.issue(2);
        let files = Files::new("errors");
        let (c, k) = (files.cert(), files.key());
        let (c, k) = (c.display(), k.display());

        let err = load_err(&files.args());
        assert!(
            err.starts_with(&format!("cannot read --tls-cert {c}: ")),
            "{err}"
        );
        assert!(err.contains("No such file"), "{err}");

        files.write("not a certificate\n", &key);
        let err = load_err(&files.args());
        assert!(
            err.starts_with(&format!("--tls-cert {c} holds no certificate")),
            "{err}"
        );

        files.write(&key, &cert);
        let err = load_err(&files.args());
        assert!(
            err.contains("are --tls-cert and --tls-key swapped?"),
            "{err}"
        );

        files.write(&cert, "");
        let err = load_err(&files.args());
        assert!(
            err.starts_with(&format!("--tls-key {k} holds no private key")),
            "{err}"
        );

        files.write(&cert.replace("-----END CERTIFICATE-----", ""), &key);
        let err = load_err(&files.args());
        assert!(
            err.starts_with(&format!(
                "--tls-cert {c} is not valid PEM: a PEM block has no end line"
            )),
            "{err}"
        );

        let corrupt = {
            let mut lines: Vec<&str> = cert.lines().collect();
            lines[1] = "!!!!";
            lines.join("\n")
        };
        files.write(&corrupt, &key);
        let err = load_err(&files.args());
        assert!(err.contains("is not valid base64"), "{err}");

        files.write(&cert, &other_key);
        let err = load_err(&files.args());
        assert_eq!(
            err,
            format!(
                "--tls-key {k} does not match the certificate in --tls-cert {c} (the first \
                 certificate must be the server's own, issued for this key)"
            )
        );

        // A certificate block whose contents are not a certificate.
        files.write(
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            &key,
        );
        let err = load_err(&files.args());
        assert!(
            err.starts_with(&format!(
                "--tls-cert {c}: the first certificate is not a valid X.509 certificate"
            )),
            "{err}"
        );

        files.write(&cert, &key);
        let mut args = files.args();
        args.tls_reload_seconds = 0;
        assert_eq!(load_err(&args), "--tls-reload-seconds must be at least 1");
        assert!(ServerTls::load(&files.args()).unwrap().is_some());
    }

    #[tokio::test]
    async fn reload_swaps_the_served_cert_and_keeps_the_old_one_on_a_broken_pair() {
        let ca = Ca::new();
        let (cert1, key1, der1) = ca.issue(1);
        let (cert2, key2, der2) = ca.issue(2);
        let (cert3, key3, der3) = ca.issue(3);
        let files = Files::new("reload");
        files.write(&cert1, &key1);
        let tls = ServerTls::load(&files.args()).unwrap().unwrap();
        assert_eq!(served_cert(&tls, &ca).await, der1);
        assert_eq!(tls.reload_if_changed().await, Reload::Unchanged);

        files.write(&cert2, &key2);
        assert_eq!(tls.reload_if_changed().await, Reload::Reloaded);
        assert_eq!(served_cert(&tls, &ca).await, der2);
        assert_eq!(tls.reload_if_changed().await, Reload::Unchanged);

        // Half a rotation: the new certificate with the old key.
        std::fs::write(files.cert(), &cert3).unwrap();
        let Reload::Kept(why) = tls.reload_if_changed().await else {
            panic!("a mismatched pair must be refused");
        };
        assert!(why.contains("does not match"), "{why}");
        assert_eq!(served_cert(&tls, &ca).await, der2);
        // Logged once, not at every look.
        assert_eq!(tls.reload_if_changed().await, Reload::Unchanged);

        // Garbage, then a missing file: still the second pair.
        files.write("garbage", "garbage");
        assert!(matches!(tls.reload_if_changed().await, Reload::Kept(_)));
        std::fs::remove_file(files.key()).unwrap();
        let Reload::Kept(why) = tls.reload_if_changed().await else {
            panic!("a missing key must be refused");
        };
        assert!(why.starts_with("cannot read --tls-key"), "{why}");
        assert_eq!(served_cert(&tls, &ca).await, der2);

        // The rotation completes.
        files.write(&cert3, &key3);
        assert_eq!(tls.reload_if_changed().await, Reload::Reloaded);
        assert_eq!(served_cert(&tls, &ca).await, der3);
    }

    #[tokio::test]
    async fn symlinked_files_are_followed_when_the_link_is_swapped() {
        // How kubelet updates a mounted Secret: tls.crt -> ..data/tls.crt, and ..data is a
        // symlink swapped to a new directory.
        let ca = Ca::new();
        let (cert1, key1, der1) = ca.issue(1);
        let (cert2, key2, der2) = ca.issue(2);
        let files = Files::new("symlink");
        let gen1 = files.dir.join("gen1");
        let gen2 = files.dir.join("gen2");
        std::fs::create_dir_all(&gen1).unwrap();
        std::fs::create_dir_all(&gen2).unwrap();
        std::fs::write(gen1.join("tls.crt"), &cert1).unwrap();
        std::fs::write(gen1.join("tls.key"), &key1).unwrap();
        std::fs::write(gen2.join("tls.crt"), &cert2).unwrap();
        std::fs::write(gen2.join("tls.key"), &key2).unwrap();
        let data = files.dir.join("..data");
        std::os::unix::fs::symlink("gen1", &data).unwrap();
        std::os::unix::fs::symlink("..data/tls.crt", files.cert()).unwrap();
        std::os::unix::fs::symlink("..data/tls.key", files.key()).unwrap();
        let tls = ServerTls::load(&files.args()).unwrap().unwrap();
        assert_eq!(served_cert(&tls, &ca).await, der1);

        let tmp = files.dir.join("..data_tmp");
        std::os::unix::fs::symlink("gen2", &tmp).unwrap();
        std::fs::rename(&tmp, &data).unwrap();
        assert_eq!(tls.reload_if_changed().await, Reload::Reloaded);
        assert_eq!(served_cert(&tls, &ca).await, der2);
    }

    #[tokio::test]
    async fn slow_and_garbage_clients_do_not_hold_up_others() {
        let ca = Ca::new();
        let (cert, key, der) = ca.issue(1);
        let files = Files::new("listener");
        files.write(&cert, &key);
        let tls = ServerTls::load(&files.args()).unwrap().unwrap();
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut listener = tls.listen(tcp);
        let addr = listener.local_addr().unwrap();

        // One client says nothing, one speaks plain HTTP to the TLS port.
        let _silent = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut garbage = tokio::net::TcpStream::connect(addr).await.unwrap();
        garbage
            .write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();

        let good = tokio::spawn(async move {
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            let name = ServerName::try_from("127.0.0.1").unwrap();
            let mut tls = ca.client().connect(name, tcp).await.unwrap();
            tls.write_all(b"ping").await.unwrap();
            tls.flush().await.unwrap();
            let peer = tls.get_ref().1.peer_certificates().unwrap()[0].to_vec();
            (tls, peer)
        });
        let (mut stream, _) = tokio::time::timeout(Duration::from_secs(5), listener.accept())
            .await
            .expect("the good client's handshake finishes while the others hang");
        let mut buf = [0u8; 4];
        stream.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");
        let (_client, peer) = good.await.unwrap();
        assert_eq!(peer, der);

        // The garbage client's connection is closed by the server, not kept.
        let mut rest = Vec::new();
        // An alert then end of file, or a reset: either way, closed.
        let _closed = tokio::time::timeout(Duration::from_secs(5), garbage.read_to_end(&mut rest))
            .await
            .expect("the server closes a connection that is not TLS");
    }
}
