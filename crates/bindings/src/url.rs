//! The one parser for the service URLs that the command line and the configuration files take:
//! `https://HOST[:PORT][/PATH]` (HTTP over TLS, TS-0009), `http://HOST[:PORT][/PATH]`
//! (plaintext, for loopback tools) and `coaps://HOST[:PORT][/PATH]` (CoAP over DTLS,
//! TS-0008 §7). HOST is a name, an IPv4 address or a bracketed IPv6 address; the default
//! ports are 443, 80 and 5684 (RFC 7252 §12.7).
//!
//! The parser is deliberately small: no user information, no percent-decoding of the host, no
//! fragments. Callers decide whether a path is required ([`ServiceUrl::require_no_path`]) and
//! which schemes they accept ([`ServiceUrl::require_scheme`]).

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// The transport a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// HTTP over TLS 1.2.
    Https,
    /// Plaintext HTTP.
    Http,
    /// CoAP over DTLS 1.2.
    Coaps,
}

impl Scheme {
    /// The scheme as written, without `://`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Https => "https",
            Scheme::Http => "http",
            Scheme::Coaps => "coaps",
        }
    }

    /// The port used when the URL names none.
    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Https => 443,
            Scheme::Http => 80,
            Scheme::Coaps => 5684,
        }
    }
}

/// Why a URL was refused; the message names the part at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{url:?}: {reason}")]
pub struct UrlError {
    url: String,
    reason: String,
}

impl UrlError {
    /// What is wrong, without the URL (for callers that name the input themselves).
    pub fn reason(&self) -> &str {
        &self.reason
    }

    fn new(url: &str, reason: impl Into<String>) -> Self {
        // Bound what is echoed back: the URL may come from a file of any size.
        let mut url = url.to_string();
        if url.len() > 200 {
            let mut cut = 200;
            while !url.is_char_boundary(cut) {
                cut -= 1;
            }
            url.truncate(cut);
            url.push('…');
        }
        UrlError {
            url,
            reason: reason.into(),
        }
    }
}

/// A parsed service URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceUrl {
    /// The transport.
    pub scheme: Scheme,
    /// The host: a name or an IP address, without IPv6 brackets.
    pub host: String,
    /// The port (the scheme's default when none was written).
    pub port: u16,
    /// Path and query exactly as written, starting with `/`; `None` when the URL ends at the
    /// authority (a trailing `/` alone counts as no path).
    pub path: Option<String>,
}

impl ServiceUrl {
    /// Parses `scheme://host[:port][/path]`.
    pub fn parse(url: &str) -> Result<ServiceUrl, UrlError> {
        let bad = |m: &str| UrlError::new(url, m);
        let (scheme, rest) = if let Some(r) = url.strip_prefix("https://") {
            (Scheme::Https, r)
        } else if let Some(r) = url.strip_prefix("http://") {
            (Scheme::Http, r)
        } else if let Some(r) = url.strip_prefix("coaps://") {
            (Scheme::Coaps, r)
        } else {
            return Err(bad("must start with https://, http:// or coaps://"));
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        if authority.contains('@') {
            return Err(bad("user information is not supported"));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, p) = v6.split_once(']').ok_or_else(|| bad("unclosed '['"))?;
            if h.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(bad("not an IPv6 address inside '[…]'"));
            }
            let port = match p {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or_else(|| bad("junk after ']'"))?),
            };
            (h, port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        if host.contains(':') && !authority.starts_with('[') {
            return Err(bad("an IPv6 address must be written in brackets"));
        }
        if host.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("bad character in the host"));
        }
        let port = match port {
            None => scheme.default_port(),
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| bad("bad port"))?,
        };
        if path.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("bad character in the path"));
        }
        Ok(ServiceUrl {
            scheme,
            host: host.to_string(),
            port,
            path: (!path.is_empty() && path != "/").then(|| path.to_string()),
        })
    }

    /// Parses a bare `HOST:PORT` (IPv6 in brackets; the port is required), as command-line
    /// targets and configuration `address` keys write it.
    pub fn parse_authority(a: &str) -> Result<(String, u16), UrlError> {
        let bad = || UrlError::new(a, "must be HOST:PORT");
        let explicit_port = match a.rsplit_once(':') {
            Some((h, p)) => !p.is_empty() && (!h.contains(':') || h.ends_with(']')),
            None => false,
        };
        if a.is_empty() || a.contains('/') || !explicit_port {
            return Err(bad());
        }
        let u =
            ServiceUrl::parse(&format!("https://{a}")).map_err(|e| UrlError::new(a, e.reason))?;
        Ok((u.host, u.port))
    }

    /// Refuses a scheme outside `allowed`.
    pub fn require_scheme(self, allowed: &[Scheme]) -> Result<ServiceUrl, UrlError> {
        if allowed.contains(&self.scheme) {
            return Ok(self);
        }
        let names: Vec<String> = allowed
            .iter()
            .map(|s| format!("{}://", s.as_str()))
            .collect();
        Err(UrlError::new(
            &self.to_string(),
            format!("must start with {}", names.join(" or ")),
        ))
    }

    /// Refuses a URL with a path (a service address names the service, not a resource).
    pub fn require_no_path(self) -> Result<ServiceUrl, UrlError> {
        match &self.path {
            None => Ok(self),
            Some(_) => Err(UrlError::new(&self.to_string(), "no path expected")),
        }
    }

    /// Whether the host is `localhost` or a loopback address.
    pub fn is_loopback(&self) -> bool {
        self.host.eq_ignore_ascii_case("localhost")
            || self.host.parse::<IpAddr>().is_ok_and(|a| a.is_loopback())
    }

    /// The host as an SNI name: `None` for an IP address (RFC 6066 §3 forbids literal
    /// addresses in SNI).
    pub fn sni(&self) -> Option<&str> {
        (self.host.parse::<IpAddr>().is_err()).then_some(self.host.as_str())
    }

    /// `host:port` for an HTTP `Host` header, IPv6 in brackets.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for ServiceUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme.as_str(), self.authority())?;
        if let Some(p) = &self.path {
            f.write_str(p)?;
        }
        Ok(())
    }
}

impl FromStr for ServiceUrl {
    type Err = UrlError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ServiceUrl::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> ServiceUrl {
        ServiceUrl::parse(s).unwrap()
    }

    #[test]
    fn schemes_hosts_ports_and_paths() {
        let u = p("https://cse.example:8443/cb?rcn=1");
        assert_eq!(u.scheme, Scheme::Https);
        assert_eq!((u.host.as_str(), u.port), ("cse.example", 8443));
        assert_eq!(u.path.as_deref(), Some("/cb?rcn=1"));
        assert_eq!(u.sni(), Some("cse.example"));
        assert_eq!(p("coaps://127.0.0.1").port, 5684);
        assert_eq!(p("http://localhost/").port, 80);
        assert_eq!(p("http://localhost/").path, None);
        assert_eq!(p("https://mef.example").port, 443);
        let v6 = p("coaps://[::1]:5685/~/cse-in/cb");
        assert_eq!((v6.host.as_str(), v6.port), ("::1", 5685));
        assert!(v6.is_loopback());
        assert_eq!(v6.sni(), None);
        assert_eq!(v6.authority(), "[::1]:5685");
        assert_eq!(v6.to_string(), "coaps://[::1]:5685/~/cse-in/cb");
        assert!(p("http://LOCALHOST:1/cb").is_loopback());
        assert!(!p("http://10.0.0.1:1/cb").is_loopback());
    }

    #[test]
    fn refusals_name_the_part_at_fault() {
        for (url, part) in [
            ("ftp://x/cb", "must start with"),
            ("https://:8443/cb", "no host"),
            ("https://x:0/cb", "bad port"),
            ("https://x:99999/cb", "bad port"),
            ("https://x:port/cb", "bad port"),
            ("https://[::1/cb", "unclosed"),
            ("https://[nothex]/cb", "IPv6"),
            ("https://[::1]x/cb", "junk"),
            ("https://::1:8443/cb", "brackets"),
            ("https://u:p@x/cb", "user information"),
            ("https://x/c b", "bad character"),
            ("https://x\n/cb", "bad character"),
        ] {
            let e = ServiceUrl::parse(url).unwrap_err().to_string();
            assert!(e.contains(part), "{url}: {e}");
        }
        let long = format!("https://{}", "a".repeat(10_000));
        let e = ServiceUrl::parse(&format!("{long}:0"))
            .unwrap_err()
            .to_string();
        assert!(e.len() < 300, "{}", e.len());
    }

    #[test]
    fn authorities_need_host_and_port() {
        assert_eq!(
            ServiceUrl::parse_authority("127.0.0.1:8443").unwrap(),
            ("127.0.0.1".to_string(), 8443)
        );
        assert_eq!(
            ServiceUrl::parse_authority("[::1]:5684").unwrap(),
            ("::1".to_string(), 5684)
        );
        for (a, part) in [
            ("127.0.0.1", "HOST:PORT"),
            ("[::1]", "HOST:PORT"),
            ("::1:8443", "HOST:PORT"),
            ("h:", "HOST:PORT"),
            ("h:8443/x", "HOST:PORT"),
            ("", "HOST:PORT"),
            ("h:0", "bad port"),
            (":8443", "no host"),
        ] {
            let e = ServiceUrl::parse_authority(a).unwrap_err().to_string();
            assert!(e.contains(part), "{a}: {e}");
        }
    }

    #[test]
    fn scheme_and_path_requirements() {
        assert!(p("https://mef.example:8443")
            .require_scheme(&[Scheme::Https, Scheme::Coaps])
            .is_ok());
        let e = p("http://127.0.0.1:1")
            .require_scheme(&[Scheme::Https])
            .unwrap_err()
            .to_string();
        assert!(e.contains("must start with https://"), "{e}");
        assert!(p("https://mef.example:8443/").require_no_path().is_ok());
        let e = p("https://mef.example:8443/x")
            .require_no_path()
            .unwrap_err()
            .to_string();
        assert!(e.contains("no path expected"), "{e}");
    }

    proptest::proptest! {
        #[test]
        fn never_panics_and_round_trips(s in "\\PC{0,64}") {
            if let Ok(u) = ServiceUrl::parse(&s) {
                let again = ServiceUrl::parse(&u.to_string()).unwrap();
                proptest::prop_assert_eq!(again, u);
            }
        }
    }
}
