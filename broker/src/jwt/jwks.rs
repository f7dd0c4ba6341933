//! Signing keys: a JWKS parsed into ready [`DecodingKey`]s, and where it comes from (a file, or
//! an OIDC issuer's discovery document and `jwks_uri`).
//!
//! Keys are parsed once per load. A key the broker cannot or must not use is left out and
//! counted (symmetric `oct` keys, encryption keys, curves and algorithms outside the allowed
//! list, RSA moduli under 2048 bits); a set with no usable key at all is an error, so a reload
//! that returns one keeps the keys already held.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey};
use reqwest::Url;
use serde::Deserialize;

/// Timeout of one fetch (discovery or JWKS), connection included.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest discovery or JWKS document read.
pub const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;
/// Smallest RSA modulus accepted, in bits (NIST SP 800-131A).
pub const MIN_RSA_BITS: usize = 2048;
/// Largest RSA modulus accepted, in bits (the verifier's own limit).
pub const MAX_RSA_BITS: usize = 4096;
/// Largest number of keys read from one JWKS; real sets hold a handful.
pub const MAX_KEYS: usize = 100;
/// Redirects followed when fetching (each target must pass the same https/loopback check).
const MAX_REDIRECTS: usize = 3;

/// One usable verification key.
pub struct Key {
    /// The JWK's `kid`, if it had one.
    pub kid: Option<String>,
    /// The parsed key.
    pub key: DecodingKey,
    /// The algorithms this key verifies: the JWK's `alg` alone when it names one, else every
    /// allowed algorithm of its key type and curve.
    pub algorithms: Vec<Algorithm>,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("kid", &self.kid)
            .field("algorithms", &self.algorithms)
            .finish_non_exhaustive()
    }
}

/// The usable keys of one JWKS load.
#[derive(Debug, Default)]
pub struct KeySet {
    by_kid: HashMap<String, Arc<Key>>,
    all: Vec<Arc<Key>>,
}

/// How a token's `kid` resolves in a [`KeySet`].
#[derive(Debug)]
pub enum Lookup {
    /// The key to verify with.
    Found(Arc<Key>),
    /// The token names a `kid` the set does not hold.
    UnknownKid,
    /// The token names no `kid` and the set holds more than one key.
    Ambiguous,
}

impl KeySet {
    /// Number of usable keys (at least one in a loaded set).
    pub fn count(&self) -> usize {
        self.all.len()
    }

    /// The key ids, for logs.
    pub fn kids(&self) -> Vec<&str> {
        self.all
            .iter()
            .map(|k| k.kid.as_deref().unwrap_or("(none)"))
            .collect()
    }

    /// The key for a token's `kid`; without one, the only key of the set.
    pub fn find(&self, kid: Option<&str>) -> Lookup {
        match kid {
            Some(kid) => self
                .by_kid
                .get(kid)
                .map_or(Lookup::UnknownKid, |k| Lookup::Found(k.clone())),
            None if self.all.len() == 1 => Lookup::Found(self.all[0].clone()),
            None => Lookup::Ambiguous,
        }
    }

    /// Parses a JWKS document, keeping the keys usable with `allowed`. Errors when the
    /// document is not a JWKS or holds no usable key; `origin` names it in messages.
    pub fn parse(document: &[u8], allowed: &[Algorithm], origin: &str) -> Result<Self, String> {
        #[derive(Deserialize)]
        struct Document {
            keys: Vec<serde_json::Value>,
        }
        let doc: Document = serde_json::from_slice(document)
            .map_err(|e| format!("{origin}: not a JWKS document ({e})"))?;
        if doc.keys.len() > MAX_KEYS {
            return Err(format!(
                "{origin}: {} keys, more than the {MAX_KEYS} accepted",
                doc.keys.len()
            ));
        }
        let mut set = KeySet::default();
        let mut ignored: Vec<String> = Vec::new();
        for (i, value) in doc.keys.into_iter().enumerate() {
            let key = match serde_json::from_value::<Jwk>(value) {
                Ok(jwk) => jwk.usable(allowed),
                Err(e) => Err(format!("not a JWK ({e})")),
            };
            let key = match key {
                Ok(key) => key,
                Err(why) => {
                    ignored.push(format!("key {i}: {why}"));
                    continue;
                }
            };
            let key = Arc::new(key);
            if let Some(kid) = &key.kid {
                if set.by_kid.contains_key(kid) {
                    ignored.push(format!("key {i}: kid `{kid}` given twice, the first kept"));
                    continue;
                }
                set.by_kid.insert(kid.clone(), key.clone());
            }
            set.all.push(key);
        }
        if !ignored.is_empty() {
            tracing::debug!(
                origin,
                ignored = ignored.len(),
                reasons = %ignored.join("; "),
                "JWKS keys left out"
            );
        }
        if set.all.is_empty() {
            let names: Vec<String> = allowed.iter().map(|a| format!("{a:?}")).collect();
            return Err(format!(
                "{origin}: no usable key for the allowed algorithms {} ({} left out: {})",
                names.join(","),
                ignored.len(),
                ignored.join("; ")
            ));
        }
        Ok(set)
    }
}

/// The fields of a JWK this broker reads (RFC 7517, 7518, 8037). Anything else, private key
/// parameters included, is ignored.
#[derive(Deserialize)]
struct Jwk {
    kty: String,
    #[serde(default, rename = "use")]
    use_: Option<String>,
    #[serde(default)]
    key_ops: Option<Vec<String>>,
    #[serde(default)]
    alg: Option<String>,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    crv: Option<String>,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
    #[serde(default)]
    x: Option<String>,
    #[serde(default)]
    y: Option<String>,
}

impl Jwk {
    /// The key, if it is a signature key of an allowed algorithm that parses; else why not.
    fn usable(self, allowed: &[Algorithm]) -> Result<Key, String> {
        if let Some(use_) = &self.use_
            && use_ != "sig"
        {
            return Err(format!("use `{use_}` is not sig"));
        }
        if let Some(ops) = &self.key_ops
            && !ops.iter().any(|op| op == "verify")
        {
            return Err("key_ops lacks verify".to_owned());
        }
        // The algorithms of the key's type (and curve), then narrowed by its `alg`, then by
        // the allowed list. Never HMAC: a JWKS is public, an `oct` key in it is a shared secret.
        let family: &[Algorithm] = match (self.kty.as_str(), self.crv.as_deref()) {
            ("RSA", _) => &[
                Algorithm::RS256,
                Algorithm::RS384,
                Algorithm::RS512,
                Algorithm::PS256,
                Algorithm::PS384,
                Algorithm::PS512,
            ],
            ("EC", Some("P-256")) => &[Algorithm::ES256],
            ("EC", Some("P-384")) => &[Algorithm::ES384],
            ("OKP", Some("Ed25519")) => &[Algorithm::EdDSA],
            ("EC" | "OKP", crv) => {
                return Err(format!(
                    "kty {} with curve {} is not supported",
                    self.kty,
                    crv.unwrap_or("(none)")
                ));
            }
            (kty, _) => return Err(format!("kty `{kty}` is not supported")),
        };
        let mut algorithms: Vec<Algorithm> = match &self.alg {
            Some(name) => match family.iter().find(|a| algorithm_name(**a) == name) {
                Some(alg) => vec![*alg],
                None => {
                    return Err(format!(
                        "alg `{name}` does not fit kty {} or is not supported",
                        self.kty
                    ));
                }
            },
            None => family.to_vec(),
        };
        algorithms.retain(|a| allowed.contains(a));
        if algorithms.is_empty() {
            return Err("its algorithm is not in --jwt-algorithms".to_owned());
        }
        let key = match self.kty.as_str() {
            "RSA" => {
                let (n, e) = (required(&self.n, "n")?, required(&self.e, "e")?);
                check_rsa(&n, &e)?;
                DecodingKey::from_rsa_raw_components(n.as_slice(), e.as_slice())
            }
            "EC" => {
                let (x, y) = (required(&self.x, "x")?, required(&self.y, "y")?);
                let size = if algorithms == [Algorithm::ES256] {
                    32
                } else {
                    48
                };
                if x.len() != size || y.len() != size {
                    return Err(format!("x and y must be {size} bytes for its curve"));
                }
                let mut point = Vec::with_capacity(1 + 2 * size);
                point.push(0x04);
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                DecodingKey::from_ec_der(&point)
            }
            _ => {
                let x = required(&self.x, "x")?;
                if x.len() != 32 {
                    return Err("x must be 32 bytes for Ed25519".to_owned());
                }
                DecodingKey::from_ed_der(&x)
            }
        };
        probe(&key, algorithms[0])?;
        Ok(Key {
            kid: self.kid,
            key,
            algorithms,
        })
    }
}

/// A base64url member of the JWK, decoded.
fn required(value: &Option<String>, name: &str) -> Result<Vec<u8>, String> {
    let value = value
        .as_deref()
        .ok_or_else(|| format!("member `{name}` is missing"))?;
    // Some issuers pad their base64url; the value is the same.
    URL_SAFE_NO_PAD
        .decode(value.trim_end_matches('='))
        .map_err(|_| format!("member `{name}` is not base64url"))
}

/// Refuses RSA public keys that are too small, too large or have an implausible exponent.
fn check_rsa(n: &[u8], e: &[u8]) -> Result<(), String> {
    let n = strip_leading_zeros(n);
    let bits = match n.first() {
        Some(first) => n.len() * 8 - first.leading_zeros() as usize,
        None => 0,
    };
    if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) {
        return Err(format!(
            "RSA modulus of {bits} bits (accepted: {MIN_RSA_BITS} to {MAX_RSA_BITS})"
        ));
    }
    let e = strip_leading_zeros(e);
    // At most 2^33 - 1, odd and at least 3, as the RSA verifier requires.
    let small =
        e.len() <= 5 && e.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)) < (1 << 33);
    if !small || e.last().is_none_or(|b| b & 1 == 0) || e == [1] {
        return Err("implausible RSA exponent".to_owned());
    }
    Ok(())
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let zeros = bytes.iter().take_while(|b| **b == 0).count();
    &bytes[zeros..]
}

/// Makes the crypto backend parse the key once now (an EC point off its curve, a bad Ed25519
/// point), so a key that can never verify is left out at load rather than failing each token.
fn probe(key: &DecodingKey, alg: Algorithm) -> Result<(), String> {
    // A one-byte signature over an empty message: a parseable key answers "invalid".
    jsonwebtoken::crypto::verify("AA", b"", key, alg)
        .map(|_| ())
        .map_err(|_| "the key does not parse".to_owned())
}

/// The JOSE name of an algorithm (`RS256`, `EdDSA`, …).
pub fn algorithm_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::HS256 => "HS256",
        Algorithm::HS384 => "HS384",
        Algorithm::HS512 => "HS512",
        Algorithm::ES256 => "ES256",
        Algorithm::ES384 => "ES384",
        Algorithm::RS256 => "RS256",
        Algorithm::RS384 => "RS384",
        Algorithm::RS512 => "RS512",
        Algorithm::PS256 => "PS256",
        Algorithm::PS384 => "PS384",
        Algorithm::PS512 => "PS512",
        Algorithm::EdDSA => "EdDSA",
    }
}

// === Fetching ===

/// Why loading keys failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadError {
    /// The answer is wrong, not just missing (discovery names another issuer, a `jwks_uri`
    /// that is not https, a document that is no JWKS, a file that cannot be read): wrong
    /// configuration, worth refusing at start.
    Config(String),
    /// The issuer could not be reached or answered an error; worth retrying.
    Transient(String),
}

impl LoadError {
    /// The message, whichever kind.
    pub fn message(&self) -> &str {
        match self {
            Self::Config(m) | Self::Transient(m) => m,
        }
    }
}

/// Where keys come from.
#[derive(Debug)]
pub enum Source {
    /// A JWKS file, read again on every refresh.
    File(PathBuf),
    /// An OIDC issuer: its discovery document names the `jwks_uri` (found once, then kept).
    Oidc {
        /// The configured issuer, which the discovery document must repeat exactly.
        issuer: String,
        /// `{issuer}/.well-known/openid-configuration`.
        discovery: Url,
        /// The JWKS address, once discovery has answered.
        jwks_uri: std::sync::Mutex<Option<Url>>,
    },
}

impl Source {
    /// The source of an issuer without a JWKS file: its discovery address, checked.
    pub fn oidc(issuer: &str) -> Result<Self, String> {
        let url = Url::parse(issuer).map_err(|e| format!("not a URL ({e})"))?;
        check_url(&url)?;
        if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
            return Err("an issuer URL has no query, fragment or user".to_owned());
        }
        // OpenID Connect Discovery 1.0 §4: remove a terminating `/`, then append.
        let discovery = format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        );
        let discovery = Url::parse(&discovery).map_err(|e| format!("not a URL ({e})"))?;
        Ok(Self::Oidc {
            issuer: issuer.to_owned(),
            discovery,
            jwks_uri: std::sync::Mutex::new(None),
        })
    }

    /// Loads the current key set.
    pub async fn load(
        &self,
        client: &reqwest::Client,
        allowed: &[Algorithm],
    ) -> Result<KeySet, LoadError> {
        match self {
            Self::File(path) => {
                let origin = format!("--jwt-jwks-file {}", path.display());
                let bytes = read_file(path)
                    .await
                    .map_err(|e| LoadError::Config(format!("{origin}: {e}")))?;
                KeySet::parse(&bytes, allowed, &origin).map_err(LoadError::Config)
            }
            Self::Oidc {
                issuer,
                discovery,
                jwks_uri,
            } => {
                let known = jwks_uri.lock().expect("not poisoned").clone();
                let uri = match known {
                    Some(uri) => uri,
                    None => {
                        let uri = discover(client, issuer, discovery).await?;
                        *jwks_uri.lock().expect("not poisoned") = Some(uri.clone());
                        uri
                    }
                };
                let bytes = fetch(client, &uri).await.inspect_err(|_| {
                    // The issuer may have moved its keys: discover again next time.
                    *jwks_uri.lock().expect("not poisoned") = None;
                })?;
                KeySet::parse(&bytes, allowed, &format!("JWKS {uri}")).map_err(LoadError::Config)
            }
        }
    }
}

/// Reads a file of at most [`MAX_DOCUMENT_BYTES`].
async fn read_file(path: &std::path::Path) -> Result<Vec<u8>, String> {
    use tokio::io::AsyncReadExt;
    let file = tokio::fs::File::open(path)
        .await
        .map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    file.take(MAX_DOCUMENT_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .await
        .map_err(|e| e.to_string())?;
    if bytes.len() > MAX_DOCUMENT_BYTES {
        return Err(format!("larger than {MAX_DOCUMENT_BYTES} bytes"));
    }
    Ok(bytes)
}

/// Reads the discovery document and returns its checked `jwks_uri`.
async fn discover(client: &reqwest::Client, issuer: &str, url: &Url) -> Result<Url, LoadError> {
    #[derive(Deserialize)]
    struct Discovery {
        issuer: String,
        jwks_uri: String,
    }
    let bytes = fetch(client, url).await?;
    let doc: Discovery = serde_json::from_slice(&bytes).map_err(|e| {
        LoadError::Config(format!(
            "{url}: not an OpenID discovery document with issuer and jwks_uri ({e})"
        ))
    })?;
    if doc.issuer != issuer {
        return Err(LoadError::Config(format!(
            "{url} names issuer {:?}, not the configured --jwt-issuer {issuer:?} (they must be \
             equal byte for byte)",
            doc.issuer
        )));
    }
    let uri = Url::parse(&doc.jwks_uri)
        .map_err(|e| LoadError::Config(format!("{url}: jwks_uri is not a URL ({e})")))?;
    check_url(&uri).map_err(|e| LoadError::Config(format!("{url}: jwks_uri {uri}: {e}")))?;
    Ok(uri)
}

/// GETs a JSON document of at most [`MAX_DOCUMENT_BYTES`].
pub async fn fetch(client: &reqwest::Client, url: &Url) -> Result<Vec<u8>, LoadError> {
    let transient = |e: String| LoadError::Transient(format!("GET {url}: {e}"));
    let mut response = client
        .get(url.clone())
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| transient(error_chain(&e)))?;
    if !response.status().is_success() {
        return Err(transient(format!("HTTP {}", response.status())));
    }
    let too_large =
        || LoadError::Config(format!("GET {url}: larger than {MAX_DOCUMENT_BYTES} bytes"));
    if response
        .content_length()
        .is_some_and(|len| len > MAX_DOCUMENT_BYTES as u64)
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| transient(error_chain(&e)))?
    {
        if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// An error with its causes, which reqwest keeps apart (`error sending request` alone says
/// little).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The HTTP client of key fetches: 5 s timeout, redirects only to addresses that pass
/// [`check_url`].
pub fn client() -> Result<reqwest::Client, String> {
    let redirects = reqwest::redirect::Policy::custom(|attempt| {
        if attempt.previous().len() >= MAX_REDIRECTS {
            attempt.error("too many redirects")
        } else if let Err(e) = check_url(attempt.url()) {
            let message = format!("redirect to {}: {e}", attempt.url());
            attempt.error(message)
        } else {
            attempt.follow()
        }
    });
    reqwest::Client::builder()
        .timeout(FETCH_TIMEOUT)
        .connect_timeout(FETCH_TIMEOUT)
        .redirect(redirects)
        .user_agent(concat!("kubeline-broker/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot build the HTTP client for JWKS fetches: {e}"))
}

/// https anywhere; http only to a loopback host (127.0.0.0/8, ::1, localhost), for tests and
/// issuers on the same machine.
pub fn check_url(url: &Url) -> Result<(), String> {
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(url) => Ok(()),
        "http" => Err("http is accepted only to a loopback address; use https".to_owned()),
        other => Err(format!("scheme {other} is not https")),
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ALL: &[Algorithm] = &[
        Algorithm::RS256,
        Algorithm::PS256,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::EdDSA,
    ];

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// An RSA key that passes the load checks (its modulus is never used to verify here).
    fn rsa_jwk(kid: &str, bits: usize) -> serde_json::Value {
        let mut n = vec![0xc5u8; bits / 8];
        n[bits / 8 - 1] |= 1;
        json!({"kty": "RSA", "kid": kid, "n": b64(&n), "e": b64(&[1, 0, 1])})
    }

    fn p256_jwk(kid: &str) -> serde_json::Value {
        use p256::elliptic_curve::sec1::ToEncodedPoint;
        let secret = p256::SecretKey::random(&mut rsa::rand_core::OsRng);
        let point = secret.public_key().to_encoded_point(false);
        json!({
            "kty": "EC", "crv": "P-256", "kid": kid, "alg": "ES256",
            "x": b64(point.x().unwrap()), "y": b64(point.y().unwrap()),
        })
    }

    fn parse(keys: Vec<serde_json::Value>, allowed: &[Algorithm]) -> Result<KeySet, String> {
        let doc = serde_json::to_vec(&json!({ "keys": keys })).unwrap();
        KeySet::parse(&doc, allowed, "test")
    }

    #[test]
    fn unusable_keys_are_left_out_and_usable_ones_kept() {
        let off_curve = json!({
            "kty": "EC", "crv": "P-256", "kid": "off", "x": b64(&[1; 32]), "y": b64(&[2; 32]),
        });
        let set = parse(
            vec![
                rsa_jwk("r1", 2048),
                p256_jwk("e1"),
                json!({"kty": "oct", "kid": "h", "k": "c2VjcmV0"}),
                json!({"kty": "RSA", "kid": "enc", "use": "enc", "n": "AQAB", "e": "AQAB"}),
                rsa_jwk("small", 1024),
                json!({"kty": "EC", "crv": "P-521", "kid": "p521", "x": "AA", "y": "AA"}),
                json!({"kty": "RSA", "kid": "hs", "alg": "HS256", "n": "AQAB", "e": "AQAB"}),
                json!({"kty": "OKP", "crv": "X25519", "kid": "x", "x": "AA"}),
                json!({"kty": "XYZ", "kid": "weird"}),
                json!({"no": "kty"}),
                json!("not an object"),
                off_curve,
                {
                    let mut dup = rsa_jwk("r1", 2048);
                    dup["alg"] = json!("PS256");
                    dup
                },
            ],
            ALL,
        )
        .unwrap();
        assert_eq!(set.kids(), ["r1", "e1"]);
        let Lookup::Found(r1) = set.find(Some("r1")) else {
            panic!("r1 is there")
        };
        // No `alg` on the JWK: every allowed RSA algorithm.
        assert_eq!(r1.algorithms, [Algorithm::RS256, Algorithm::PS256]);
        assert!(matches!(set.find(Some("small")), Lookup::UnknownKid));
        assert!(matches!(set.find(None), Lookup::Ambiguous));
    }

    #[test]
    fn a_set_without_usable_keys_is_an_error() {
        let err = parse(vec![p256_jwk("e1")], &[Algorithm::RS256]).unwrap_err();
        assert!(
            err.contains("no usable key") && err.contains("RS256"),
            "{err}"
        );
        let err = parse(vec![], ALL).unwrap_err();
        assert!(err.contains("no usable key"), "{err}");
        let err = KeySet::parse(b"{\"keys\": 3}", ALL, "test").unwrap_err();
        assert!(err.contains("not a JWKS"), "{err}");
        let many: Vec<_> = (0..=MAX_KEYS)
            .map(|i| rsa_jwk(&i.to_string(), 2048))
            .collect();
        assert!(parse(many, ALL).unwrap_err().contains("more than"));
    }

    #[test]
    fn a_lone_key_serves_tokens_without_kid() {
        let set = parse(vec![p256_jwk("e1")], ALL).unwrap();
        assert!(matches!(set.find(None), Lookup::Found(_)));
    }

    #[test]
    fn only_https_or_loopback_http() {
        for (url, ok) in [
            ("https://issuer.example/realms/a", true),
            ("http://127.0.0.1:8080/x", true),
            ("http://127.8.9.10/x", true),
            ("http://[::1]:9/x", true),
            ("http://localhost:9/x", true),
            ("http://LOCALHOST/x", true),
            ("http://issuer.example/x", false),
            ("http://10.0.0.1/x", false),
            ("http://localhost.evil.example/x", false),
            ("ftp://127.0.0.1/x", false),
            ("file:///etc/passwd", false),
        ] {
            assert_eq!(check_url(&Url::parse(url).unwrap()).is_ok(), ok, "{url}");
        }
        let Source::Oidc { discovery, .. } = Source::oidc("https://idp.example/realms/k/").unwrap()
        else {
            panic!("oidc")
        };
        assert_eq!(
            discovery.as_str(),
            "https://idp.example/realms/k/.well-known/openid-configuration"
        );
        assert!(Source::oidc("https://idp.example/?a=b").is_err());
        assert!(Source::oidc("https://user@idp.example").is_err());
        assert!(Source::oidc("idp.example").is_err());
    }
}
