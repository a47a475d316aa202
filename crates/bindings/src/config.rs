//! Configuration pieces every service shares (the CSE, the MEF, the PKG): the error type, PSK
//! key files, the certificate association of a listener, and outgoing TLS-PSK links to another
//! service. Each service's own configuration type lives in its crate
//! (`m2msec_cse_service::config`, `m2msec_mef::config`) and is built from these; the binary
//! only reads the file and prints.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use m2msec_core::ids::Fqdn;
use m2msec_tls::{
    CertCredential, ClientAuth, DtlsOptions, Psk, PskIdentity, ServerCertificates, ServerConfig,
    TrustAnchors,
};

use crate::url::{Scheme, ServiceUrl};

/// A configuration that cannot be used: one line naming the section or key at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl ConfigError {
    /// An error with this message.
    pub fn new(msg: impl std::fmt::Display) -> Self {
        ConfigError(msg.to_string())
    }

    /// The same error, its message prefixed with `context: `.
    pub fn context(self, context: impl std::fmt::Display) -> Self {
        ConfigError(format!("{context}: {}", self.0))
    }
}

/// The default listener address of every service: loopback only, until the operator says
/// otherwise.
pub fn loopback() -> IpAddr {
    IpAddr::V4(Ipv4Addr::LOCALHOST)
}

fn dtls_max_half_open() -> usize {
    DtlsOptions::default().max_half_open
}

fn dtls_max_half_open_per_source() -> usize {
    DtlsOptions::default().max_half_open_per_source
}

fn port<const PORT: u16>() -> u16 {
    PORT
}

/// `[coap]` of a service: CoAP (TS-0008) over DTLS 1.2 on a UDP port whose default is `PORT`
/// (the CSE's is the `coaps` port 5684 of RFC 7252 §12.7; the MEF's 5685).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoapSection<const PORT: u16> {
    /// Open the CoAP/DTLS listener.
    #[serde(default)]
    pub enabled: bool,
    /// Listener address.
    #[serde(default = "loopback")]
    pub bind: IpAddr,
    /// Listener port.
    #[serde(default = "port::<PORT>")]
    pub port: u16,
    /// DTLS handshakes in progress, at most (the oldest is evicted beyond, issue 9 item 5).
    #[serde(default = "dtls_max_half_open")]
    pub max_half_open: usize,
    /// DTLS handshakes in progress from one IPv4 address or IPv6 /64, at most.
    #[serde(default = "dtls_max_half_open_per_source")]
    pub max_half_open_per_source: usize,
}

impl<const PORT: u16> Default for CoapSection<PORT> {
    fn default() -> Self {
        CoapSection {
            enabled: false,
            bind: loopback(),
            port: PORT,
            max_half_open: dtls_max_half_open(),
            max_half_open_per_source: dtls_max_half_open_per_source(),
        }
    }
}

/// Reads and parses a TOML configuration file.
pub fn read_toml<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::new(format!("{}: {e}", path.display())))?;
    toml::from_str(&text).map_err(|e| ConfigError::new(format!("{}: {e}", path.display())))
}

/// Reads a PSK in hex from a file only its owner may read (mode 0600, small, regular; the
/// rules of [`m2msec_keystore::read_secret_file`]). `what` names the entry in errors.
pub fn read_psk_file(path: &Path, what: &str) -> Result<Psk, ConfigError> {
    let text = m2msec_keystore::read_secret_file(path)
        .map_err(|e| ConfigError::new(format!("{what}: {e}")))?;
    Psk::from_hex(text.trim()).map_err(|e| ConfigError::new(format!("{what}: key_file: {e}")))
}

/// The certificate settings of a listener's `[tls]` section: the service's chain (PEM, leaf
/// first), its P-256 private key (PEM, mode 0600) and the anchors client certificates must
/// chain to. All three or none.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CertificateFiles {
    /// The service's certificate chain.
    #[serde(default)]
    pub certificate: Option<PathBuf>,
    /// Its private key.
    #[serde(default)]
    pub private_key: Option<PathBuf>,
    /// Trust anchors for client certificates.
    #[serde(default)]
    pub trust_anchors: Option<PathBuf>,
}

/// A loaded certificate association (TS-0003 §8.2.2.2): the service presents its certificate
/// and requires a client certificate that chains to the anchors. The PSK suites stay offered.
pub struct CertificateAssociation {
    certs: ServerCertificates,
    client_auth: ClientAuth,
}

impl std::fmt::Debug for CertificateAssociation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateAssociation")
            .finish_non_exhaustive()
    }
}

impl CertificateAssociation {
    /// Adds the certificate suites and credentials to a server configuration.
    pub fn apply(self, cfg: &mut ServerConfig) {
        cfg.certificates = Some(self.certs);
        cfg.client_auth = Some(self.client_auth);
        cfg.suites.ecdhe_ecdsa = true;
    }
}

impl CertificateFiles {
    /// Whether any of the three is set.
    pub fn is_set(&self) -> bool {
        self.certificate.is_some() || self.private_key.is_some() || self.trust_anchors.is_some()
    }

    /// Loads the files (none set: `None`). The private key file must be mode 0600.
    pub fn load(&self) -> Result<Option<CertificateAssociation>, ConfigError> {
        let (cert, key, anchors) = match (
            self.certificate.as_deref(),
            self.private_key.as_deref(),
            self.trust_anchors.as_deref(),
        ) {
            (None, None, None) => return Ok(None),
            (Some(c), Some(k), Some(a)) => (c, k, a),
            _ => {
                return Err(ConfigError::new(
                    "[tls] certificate, private_key and trust_anchors go together",
                ))
            }
        };
        let read = |what: &str, p: &Path| {
            std::fs::read(p)
                .map_err(|e| ConfigError::new(format!("[tls] {what} {}: {e}", p.display())))
        };
        let chain = read("certificate", cert)?;
        let key_pem = m2msec_keystore::read_secret_file(key)
            .map_err(|e| ConfigError::new(format!("[tls] private_key: {e}")))?;
        let cred = CertCredential::from_pem(&chain, key_pem.as_bytes())
            .map_err(|e| ConfigError::new(format!("[tls] certificate/private_key: {e}")))?;
        let anchors = TrustAnchors::from_pem(&read("trust_anchors", anchors)?)
            .map_err(|e| ConfigError::new(format!("[tls] trust_anchors: {e}")))?;
        let mut certs = ServerCertificates::new();
        certs.set_default(cred);
        Ok(Some(CertificateAssociation {
            certs,
            client_auth: ClientAuth {
                anchors,
                allowed: Vec::new(),
            },
        }))
    }
}

/// An outgoing TLS-PSK link to another service, resolved from a configuration section.
#[derive(Debug)]
pub struct Link {
    /// Host from `url`.
    pub host: String,
    /// Port from `url`.
    pub port: u16,
    /// The peer's FQDN (SNI).
    pub fqdn: Fqdn,
    /// Our psk_identity at the peer.
    pub identity: PskIdentity,
    /// Our PSK at the peer.
    pub psk: Psk,
    /// Deadline of one call.
    pub timeout: Duration,
}

impl Link {
    /// Validates a link section's fields (`url` = `https://HOST:PORT`, `fqdn`, `identity`,
    /// `key_file`, `timeout_secs` in 1..=60); errors name the section.
    pub fn resolve(
        section: &str,
        url: &str,
        fqdn: &str,
        identity: &str,
        key_file: &Path,
        timeout_secs: u64,
    ) -> Result<Link, ConfigError> {
        let err = |m: String| ConfigError::new(format!("{section} {m}"));
        let u = ServiceUrl::parse(url)
            .and_then(|u| u.require_scheme(&[Scheme::Https]))
            .and_then(ServiceUrl::require_no_path)
            .map_err(|e| err(format!("url {e}")))?;
        if timeout_secs == 0 || timeout_secs > 60 {
            return Err(err("timeout_secs must be 1..60".into()));
        }
        Ok(Link {
            host: u.host,
            port: u.port,
            fqdn: fqdn.parse().map_err(|e| err(format!("fqdn: {e}")))?,
            identity: PskIdentity::new(identity).map_err(|e| err(format!("identity: {e}")))?,
            psk: read_psk_file(key_file, section)?,
            timeout: Duration::from_secs(timeout_secs),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psk_files_must_be_private_and_hex() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k");
        m2msec_keystore::write_secret_file(&p, b"00112233445566778899aabbccddeeff\n").unwrap();
        assert!(read_psk_file(&p, "psk a").is_ok());
        m2msec_keystore::write_secret_file(&p, b"not hex").unwrap();
        let e = read_psk_file(&p, "psk a").unwrap_err().to_string();
        assert!(e.starts_with("psk a: key_file"), "{e}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
            let e = read_psk_file(&p, "psk a").unwrap_err().to_string();
            assert!(e.contains("psk a"), "{e}");
        }
    }

    /// Each service keeps its own default CoAP port; the rest of the section is shared.
    #[test]
    fn coap_sections_keep_their_default_port() {
        let cse: CoapSection<5684> = toml::from_str("enabled = true").unwrap();
        let mef: CoapSection<5685> = toml::from_str("enabled = true").unwrap();
        assert_eq!((cse.port, mef.port), (5684, 5685));
        assert_eq!(CoapSection::<5685>::default().port, 5685);
        assert!(cse.bind.is_loopback());
        assert!(toml::from_str::<CoapSection<5684>>("prot = 1").is_err());
    }

    #[test]
    fn certificate_files_go_together() {
        assert!(CertificateFiles::default().load().unwrap().is_none());
        let half = CertificateFiles {
            certificate: Some("c.pem".into()),
            ..CertificateFiles::default()
        };
        assert!(half.is_set());
        let e = half.load().unwrap_err().to_string();
        assert!(e.contains("go together"), "{e}");
    }

    #[test]
    fn links_name_their_section() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k");
        m2msec_keystore::write_secret_file(&p, &[b'a'; 64]).unwrap();
        let l = Link::resolve(
            "[mef]",
            "https://127.0.0.1:8444",
            "mef.example",
            "cse@mef",
            &p,
            5,
        )
        .unwrap();
        assert_eq!((l.host.as_str(), l.port), ("127.0.0.1", 8444));
        for (url, timeout, part) in [
            ("http://127.0.0.1:8444", 5, "[mef] url"),
            ("https://127.0.0.1:8444/x", 5, "no path"),
            ("https://127.0.0.1:8444", 0, "timeout_secs"),
            ("https://127.0.0.1:8444", 61, "timeout_secs"),
        ] {
            let e = Link::resolve("[mef]", url, "mef.example", "cse@mef", &p, timeout)
                .unwrap_err()
                .to_string();
            assert!(e.contains(part), "{url}: {e}");
        }
    }
}
