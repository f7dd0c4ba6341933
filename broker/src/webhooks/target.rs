//! Where webhooks may be sent: the URL rules, and the address policy that keeps deliveries off
//! the broker's own network (SSRF).
//!
//! A target's URL is `http://` or `https://`, without user or password, at most
//! [`MAX_URL_BYTES`]. Its host — an address, or every address its name resolves to — must be
//! public unless `--webhook-allow-private`: loopback, private (RFC 1918, unique local),
//! shared (100.64/10), link-local and the like are refused. Cloud metadata addresses,
//! unspecified, multicast, broadcast and reserved addresses are refused even then: no receiver
//! lives there. The check runs when an endpoint is registered and again at every delivery, on
//! the addresses the connection then uses ([`SafeResolver`]), so a name that later resolves
//! elsewhere (DNS rebinding) is refused at that moment.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use kubeline_shared::webhooks::MAX_URL_BYTES;
use url::{Host, Url};

/// How long resolving a target's name may take.
pub const RESOLVE_TIMEOUT: Duration = Duration::from_secs(3);

/// Why an address is refused, if it is.
pub fn refused_address(ip: IpAddr, allow_private: bool) -> Option<&'static str> {
    // An IPv4 address written as IPv6 (`::ffff:a.b.c.d`, NAT64 `64:ff9b::a.b.c.d`) is that
    // IPv4 address.
    if let IpAddr::V6(v6) = ip
        && let Some(v4) = embedded_v4(v6)
    {
        return refused_address(IpAddr::V4(v4), allow_private);
    }
    if let Some(reason) = never(ip) {
        return Some(reason);
    }
    if allow_private {
        return None;
    }
    private(ip)
}

/// Addresses no webhook goes to, whatever the flags say.
fn never(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            if v4 == Ipv4Addr::new(169, 254, 169, 254)
                || v4 == Ipv4Addr::new(169, 254, 170, 2)
                || v4 == Ipv4Addr::new(100, 100, 100, 200)
                || v4 == Ipv4Addr::new(192, 0, 0, 192)
            {
                Some("a cloud metadata address")
            } else if a == 0 {
                Some("an unspecified (0.0.0.0/8) address")
            } else if v4.is_multicast() {
                Some("a multicast address")
            } else if v4.is_broadcast() || a >= 240 {
                Some("a reserved (240.0.0.0/4) address")
            } else if (a, b, c) == (192, 0, 2)
                || (a, b, c) == (198, 51, 100)
                || (a, b, c) == (203, 0, 113)
            {
                Some("a documentation (TEST-NET) address")
            } else {
                let _ = d;
                None
            }
        }
        IpAddr::V6(v6) => {
            let seg = v6.segments();
            if v6 == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) {
                Some("a cloud metadata address")
            } else if v6.is_unspecified() {
                Some("the unspecified address (::)")
            } else if v6.is_multicast() {
                Some("a multicast address")
            } else if seg[0] == 0x2001 && seg[1] == 0xdb8 {
                Some("a documentation (2001:db8::/32) address")
            } else {
                None
            }
        }
    }
}

/// Addresses of the broker's own networks, refused unless `--webhook-allow-private`.
fn private(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            if v4.is_loopback() {
                Some("a loopback address")
            } else if v4.is_link_local() {
                Some("a link-local (169.254.0.0/16) address")
            } else if v4.is_private() {
                Some("a private (RFC 1918) address")
            } else if a == 100 && (64..128).contains(&b) {
                Some("a shared (100.64.0.0/10, carrier-grade NAT) address")
            } else if (a, b) == (198, 18) || (a, b) == (198, 19) {
                Some("a benchmarking (198.18.0.0/15) address")
            } else if (a, b) == (192, 0) && v4.octets()[2] == 0 {
                Some("an IETF protocol (192.0.0.0/24) address")
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            if v6.is_loopback() {
                Some("a loopback address")
            } else if first & 0xffc0 == 0xfe80 {
                Some("a link-local (fe80::/10) address")
            } else if first & 0xfe00 == 0xfc00 {
                Some("a unique local (fc00::/7) address")
            } else if first & 0xffc0 == 0xfec0 {
                Some("a site-local (fec0::/10) address")
            } else {
                None
            }
        }
    }
}

/// The IPv4 address inside an IPv4-mapped (`::ffff:0:0/96`), IPv4-compatible (`::/96`, not
/// `::` or `::1`) or NAT64 (`64:ff9b::/96`) IPv6 address.
fn embedded_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = v6.to_ipv4_mapped() {
        return Some(v4);
    }
    let seg = v6.segments();
    let low = Ipv4Addr::new(
        (seg[6] >> 8) as u8,
        seg[6] as u8,
        (seg[7] >> 8) as u8,
        seg[7] as u8,
    );
    if seg[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return Some(low);
    }
    if seg[..6] == [0; 6] && !v6.is_loopback() && !v6.is_unspecified() {
        return Some(low);
    }
    None
}

/// A URL refused, with what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlRefused(pub String);

/// Checks a target URL's form (not its addresses): `http(s)`, a host, no user or password, at
/// most [`MAX_URL_BYTES`]. Returns it parsed.
pub fn check_form(url: &str) -> Result<Url, UrlRefused> {
    if url.len() > MAX_URL_BYTES {
        return Err(UrlRefused(format!(
            "Invalid url: it is {} bytes long; use at most {MAX_URL_BYTES}",
            url.len()
        )));
    }
    let parsed = Url::parse(url.trim()).map_err(|e| {
        UrlRefused(format!(
            "Invalid url {:?}: {e}; give an absolute http:// or https:// URL",
            kubeline_shared::webhooks::truncate(url, 100)
        ))
    })?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(UrlRefused(format!(
            "Invalid url: scheme {:?} is not http or https; webhooks are POSTed over HTTP(S)",
            parsed.scheme()
        )));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(UrlRefused(
            "Invalid url: it carries a user or password; put no credentials in the URL (every \
             delivery is signed: verify webhook-signature with the endpoint's secret instead)"
                .to_owned(),
        ));
    }
    if parsed.host().is_none() {
        return Err(UrlRefused("Invalid url: it has no host".to_owned()));
    }
    Ok(parsed)
}

/// The URL without its query and fragment (`?…` stands for a query), for the audit trail and
/// logs: receivers sometimes take a token in the query.
pub fn redacted(url: &Url) -> String {
    let mut shown = url.clone();
    shown.set_fragment(None);
    let had_query = shown.query().is_some();
    shown.set_query(None);
    let mut text = shown.to_string();
    if had_query {
        text.push_str("?…");
    }
    text
}

/// Checks a target's host and every address it resolves to now (see the module's rules).
pub async fn check_addresses(url: &Url, allow_private: bool) -> Result<(), UrlRefused> {
    let refused = |what: &str, ip: IpAddr, reason: &str| {
        let hint = if allow_private {
            "; no webhook may go there"
        } else {
            "; use a public address (a broker run with --webhook-allow-private also accepts \
             loopback and private ones)"
        };
        UrlRefused(format!("Invalid url: {what} is {ip}, {reason}{hint}"))
    };
    let port = url.port_or_known_default().unwrap_or(443);
    match url.host() {
        Some(Host::Ipv4(v4)) => match refused_address(IpAddr::V4(v4), allow_private) {
            Some(reason) => Err(refused("its host", IpAddr::V4(v4), reason)),
            None => Ok(()),
        },
        Some(Host::Ipv6(v6)) => match refused_address(IpAddr::V6(v6), allow_private) {
            Some(reason) => Err(refused("its host", IpAddr::V6(v6), reason)),
            None => Ok(()),
        },
        Some(Host::Domain(name)) => {
            let addrs = resolve(name, port).await.map_err(|e| {
                UrlRefused(format!(
                    "Invalid url: its host {name} cannot be resolved ({e}); register the \
                     endpoint once its name resolves"
                ))
            })?;
            for addr in addrs {
                if let Some(reason) = refused_address(addr.ip(), allow_private) {
                    return Err(refused(
                        &format!("its host {name} resolves to"),
                        addr.ip(),
                        reason,
                    ));
                }
            }
            Ok(())
        }
        None => Err(UrlRefused("Invalid url: it has no host".to_owned())),
    }
}

/// Every address `name` resolves to, within [`RESOLVE_TIMEOUT`].
async fn resolve(name: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
    // `localhost` and its subdomains are loopback by definition (RFC 6761), whatever a resolver
    // says.
    let lower = name.trim_end_matches('.').to_ascii_lowercase();
    if lower == "localhost" || lower.ends_with(".localhost") {
        return Ok(vec![
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port),
            SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), port),
        ]);
    }
    let found = tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((name, port)))
        .await
        .map_err(|_| format!("no answer within {}s", RESOLVE_TIMEOUT.as_secs()))?
        .map_err(|e| e.to_string())?;
    let addrs: Vec<SocketAddr> = found.collect();
    if addrs.is_empty() {
        return Err("no address".to_owned());
    }
    Ok(addrs)
}

/// The delivery client's resolver: resolves as the system does and hands the connection only
/// addresses that pass [`refused_address`]; a name with none left fails the attempt, naming
/// the address refused.
#[derive(Debug, Clone, Copy)]
pub struct SafeResolver {
    /// `--webhook-allow-private`.
    pub allow_private: bool,
}

impl reqwest::dns::Resolve for SafeResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_private = self.allow_private;
        let name = name.as_str().to_owned();
        Box::pin(async move {
            // Port 0: reqwest puts the URL's port in.
            let addrs = resolve(&name, 0).await?;
            let mut refused = None;
            let allowed: Vec<SocketAddr> = addrs
                .into_iter()
                .filter(|a| match refused_address(a.ip(), allow_private) {
                    Some(reason) => {
                        refused = Some(format!("{name} resolves to {}, {reason}", a.ip()));
                        false
                    }
                    None => true,
                })
                .collect();
            if allowed.is_empty() {
                let why = refused.unwrap_or_else(|| format!("{name} has no usable address"));
                return Err(why.into());
            }
            let addrs: reqwest::dns::Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

/// Builds the delivery client: no proxy (a proxy would connect on its own terms), no
/// redirects followed (a 3xx is a failed attempt), `timeout` per attempt, addresses through
/// [`SafeResolver`].
pub fn client(timeout: Duration, allow_private: bool) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .dns_resolver(Arc::new(SafeResolver { allow_private }))
        .user_agent(concat!("kubeline-webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot build the webhook HTTP client: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn private_addresses_are_refused_unless_allowed() {
        for a in [
            "127.0.0.1",
            "127.9.9.9",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.1.1",
            "100.64.0.1",
            "198.18.0.1",
            "::1",
            "fe80::1",
            "fd12:3456::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::7f00:1",
        ] {
            assert!(refused_address(ip(a), false).is_some(), "{a}");
            assert_eq!(refused_address(ip(a), true), None, "{a} with allow-private");
        }
    }

    #[test]
    fn metadata_and_reserved_addresses_are_always_refused() {
        for a in [
            "169.254.169.254",
            "::ffff:169.254.169.254",
            "fd00:ec2::254",
            "100.100.100.200",
            "0.0.0.0",
            "::",
            "224.0.0.1",
            "255.255.255.255",
            "240.0.0.1",
            "ff02::1",
        ] {
            assert!(refused_address(ip(a), true).is_some(), "{a}");
        }
        assert_eq!(
            refused_address(ip("169.254.169.254"), true),
            Some("a cloud metadata address")
        );
    }

    #[test]
    fn public_addresses_pass() {
        for a in [
            "8.8.8.8",
            "1.1.1.1",
            "2606:4700:4700::1111",
            "172.32.0.1",
            "100.128.0.1",
        ] {
            assert_eq!(refused_address(ip(a), false), None, "{a}");
        }
    }

    #[test]
    fn url_forms() {
        assert!(check_form("https://hooks.example.com/x?y=1").is_ok());
        assert!(check_form("http://203.0.114.7:8080/").is_ok());
        for (bad, says) in [
            ("ftp://example.com/", "scheme \"ftp\""),
            ("file:///etc/passwd", "scheme \"file\""),
            ("https://user:pw@example.com/", "user or password"),
            ("https://user@example.com/", "user or password"),
            ("not a url", "absolute http"),
            ("/relative", "absolute http"),
        ] {
            let e = check_form(bad).unwrap_err().0;
            assert!(e.contains(says), "{bad}: {e}");
        }
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_BYTES));
        assert!(check_form(&long).unwrap_err().0.contains("at most 2048"));
    }

    #[test]
    fn redacted_urls_keep_no_query() {
        let u = check_form("https://hooks.example.com/k?token=s3cret#x").unwrap();
        assert_eq!(redacted(&u), "https://hooks.example.com/k?…");
        let u = check_form("http://10.0.0.1:8080/k").unwrap();
        assert_eq!(redacted(&u), "http://10.0.0.1:8080/k");
    }

    #[tokio::test]
    async fn addresses_of_urls() {
        let check = |u: &str, allow| {
            let u = check_form(u).unwrap();
            async move { check_addresses(&u, allow).await }
        };
        assert!(check("http://127.0.0.1:9/", true).await.is_ok());
        let e = check("http://127.0.0.1:9/", false).await.unwrap_err().0;
        assert!(
            e.contains("loopback") && e.contains("--webhook-allow-private"),
            "{e}"
        );
        let e = check("http://localhost:9/", false).await.unwrap_err().0;
        assert!(e.contains("localhost resolves to"), "{e}");
        let e = check("http://[::ffff:169.254.169.254]/", true)
            .await
            .unwrap_err()
            .0;
        assert!(e.contains("metadata"), "{e}");
        assert!(check("https://8.8.8.8/", false).await.is_ok());
    }
}
