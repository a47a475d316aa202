//! Credentials and channel configuration (TS-0003 §8.2.2.1, §9.1.1, §10.2).
//!
//! A server holds a [`PskResolver`]: a credential source that maps the `psk_identity` a client
//! sends (KpsaID, KmID, KpmID, KeID, MAF Key Identifier or seed 004's KxID), together with the
//! SNI host name the client asked for, to a key and the identity the security association binds
//! to. SNI selects the authority, so one process serves several authorities (BRIEF §2.1). The
//! in-memory [`PskTable`] is the first implementation; the credential store implements the same
//! trait later.
//!
//! A client holds exactly one PSK credential and the host name of the authority it talks to.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use zeroize::Zeroizing;

use crate::cert::{CertCredential, ExpectedName, TrustAnchors};
use crate::error::{Error, Result};
use crate::peer::BoundIdentity;
use crate::rpk::PkId;

/// OpenSSL's limit on `psk_identity` (PSK_MAX_IDENTITY_LEN, BRIEF §2.1).
pub const MAX_PSK_IDENTITY_LEN: usize = 256;
/// OpenSSL's limit on the PSK (PSK_MAX_PSK_LEN, BRIEF §2.1).
pub const MAX_PSK_LEN: usize = 512;

/// A pre-shared key (Kpsa, Kc, Kpm, Kx …). Zeroized on drop; never printed.
#[derive(Clone)]
pub struct Psk(Zeroizing<Vec<u8>>);

impl Psk {
    /// A key from raw bytes: 1 to [`MAX_PSK_LEN`] bytes.
    pub fn new(bytes: &[u8]) -> Result<Self> {
        if bytes.is_empty() || bytes.len() > MAX_PSK_LEN {
            return Err(Error::Config(format!(
                "a PSK must be 1 to {MAX_PSK_LEN} bytes"
            )));
        }
        Ok(Psk(Zeroizing::new(bytes.to_vec())))
    }

    /// A key from hexadecimal text (case-insensitive, like `openssl -psk`).
    pub fn from_hex(text: &str) -> Result<Self> {
        let bytes = Zeroizing::new(
            hex::decode(text.trim())
                .map_err(|_| Error::Config("a PSK must be hexadecimal".into()))?,
        );
        Psk::new(&bytes)
    }

    /// The key bytes (for the OpenSSL callback only).
    pub(crate) fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Key length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always false: an empty key cannot be constructed.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Psk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Psk(<redacted {} bytes>)", self.0.len())
    }
}

/// The `psk_identity` of RFC 4279: the UTF-8 key identifier (BRIEF §2.1, check 16).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PskIdentity(String);

impl PskIdentity {
    /// Validate: non-empty UTF-8, at most [`MAX_PSK_IDENTITY_LEN`] bytes, no NUL.
    pub fn new(id: &str) -> Result<Self> {
        if id.is_empty() || id.len() > MAX_PSK_IDENTITY_LEN || id.contains('\0') {
            return Err(Error::Config(format!(
                "a psk_identity must be 1 to {MAX_PSK_IDENTITY_LEN} bytes of UTF-8 without NUL"
            )));
        }
        Ok(PskIdentity(id.to_string()))
    }

    /// Parse the bytes a client sent (must be UTF-8).
    pub fn from_wire(bytes: &[u8]) -> Option<Self> {
        std::str::from_utf8(bytes)
            .ok()
            .and_then(|s| PskIdentity::new(s).ok())
    }

    /// The identifier text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PskIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PskIdentity({:?})", self.0)
    }
}

impl fmt::Display for PskIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a [`PskResolver`] returns for a known identity: the key and the identity the security
/// association is bound to (TS-0003 §8.2.2.1: the configured IdA, else `12-<KpsaID>`).
#[derive(Clone, Debug)]
pub struct ResolvedPsk {
    /// The pre-shared key.
    pub key: Psk,
    /// The identity the SA binds to.
    pub bound: BoundIdentity,
}

/// A credential source for TLS-PSK servers (TS-0003 §8.2.2.1, §8.2.2.3).
///
/// `sni` is the lowercase host name the client sent (None without SNI). Return None for an
/// unknown identity: the handshake then fails with the `unknown_psk_identity` alert.
pub trait PskResolver: Send + Sync + 'static {
    /// Look up `identity` for the authority named by `sni`.
    fn resolve(&self, sni: Option<&str>, identity: &PskIdentity) -> Option<ResolvedPsk>;
}

/// An in-memory PSK table keyed by (authority, identity); entries without an authority serve
/// every SNI.
#[derive(Default)]
pub struct PskTable {
    entries: RwLock<HashMap<(Option<String>, PskIdentity), ResolvedPsk>>,
}

impl PskTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a Provisioned Symmetric Key for every authority; the SA binds to `12-<identity>`.
    pub fn insert(&self, identity: PskIdentity, key: Psk) {
        let bound = BoundIdentity::credential_id_psk(&identity);
        self.insert_entry(None, identity, ResolvedPsk { key, bound });
    }

    /// Add an entry with an explicit authority (SNI host name) and binding.
    pub fn insert_entry(&self, authority: Option<&str>, identity: PskIdentity, entry: ResolvedPsk) {
        let authority = authority.map(str::to_ascii_lowercase);
        if let Ok(mut map) = self.entries.write() {
            map.insert((authority, identity), entry);
        }
    }

    /// Remove an entry (new handshakes with it fail; established channels are not touched).
    pub fn remove(&self, authority: Option<&str>, identity: &PskIdentity) -> bool {
        let authority = authority.map(str::to_ascii_lowercase);
        match self.entries.write() {
            Ok(mut map) => map.remove(&(authority, identity.clone())).is_some(),
            Err(_) => false,
        }
    }
}

impl PskResolver for PskTable {
    fn resolve(&self, sni: Option<&str>, identity: &PskIdentity) -> Option<ResolvedPsk> {
        let map = self.entries.read().ok()?;
        if let Some(sni) = sni {
            if let Some(e) = map.get(&(Some(sni.to_ascii_lowercase()), identity.clone())) {
                return Some(e.clone());
            }
        }
        map.get(&(None, identity.clone())).cloned()
    }
}

impl fmt::Debug for PskTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.entries.read().map(|m| m.len()).unwrap_or(0);
        write!(f, "PskTable({n} entries)")
    }
}

/// Which cipher-suite families a context offers (BRIEF §2.1; the lists are in `context`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SuitePolicy {
    /// RFC 4279 PSK suites (`PSK-AES128-CBC-SHA256`, `PSK-AES128-CCM8`).
    pub psk: bool,
    /// Forward-secret PSK variants (RFC 4279 §7.1: DHE-PSK, ECDHE-PSK), preferred when offered.
    pub psk_forward_secret: bool,
    /// ECDHE-ECDSA certificate suites (`ECDHE-ECDSA-AES128-SHA256`, `ECDHE-ECDSA-AES128-CCM8`).
    pub ecdhe_ecdsa: bool,
}

impl Default for SuitePolicy {
    fn default() -> Self {
        SuitePolicy {
            psk: true,
            psk_forward_secret: false,
            ecdhe_ecdsa: false,
        }
    }
}

/// Default handshake deadline.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(20);

/// What a client authenticates with (TS-0003 §8.2.2.1, §8.2.2.2).
#[derive(Clone, Debug)]
pub enum ClientCredential {
    /// RFC 4279 PSK: `psk_identity` sent to the server and the key.
    Psk {
        /// The identifier sent as `psk_identity`.
        identity: PskIdentity,
        /// The key.
        key: Psk,
    },
    /// ECDHE-ECDSA: the server's chain must reach `anchors` and its leaf must carry one of
    /// `expected` as SubjectAltName; `own` is presented if the server asks for a certificate.
    Certificate {
        /// Our certificate and key (mutual authentication), if any.
        own: Option<CertCredential>,
        /// Trust anchors for the server's chain.
        anchors: TrustAnchors,
        /// Names the server's certificate must carry (exact match, at least one).
        expected: Vec<ExpectedName>,
    },
    /// ECDHE-ECDSA with an RFC 7250 raw public key: the server's P-256 key must have one of the
    /// RFC 6920 identifiers in `expected` (needs OpenSSL >= 3.2).
    RawPublicKey {
        /// Accepted server key identifiers (at least one).
        expected: Vec<PkId>,
        /// Our P-256 key (with any certificate for it), presented as an RFC 7250 raw public
        /// key when the server asks for one (client_certificate_type), if any.
        own: Option<CertCredential>,
    },
}

impl ClientCredential {
    /// The `psk_identity`, for PSK credentials.
    pub fn psk_identity(&self) -> Option<&PskIdentity> {
        match self {
            ClientCredential::Psk { identity, .. } => Some(identity),
            ClientCredential::Certificate { .. } | ClientCredential::RawPublicKey { .. } => None,
        }
    }
}

/// Client configuration (TS-0003 §8.2.2, Entity A).
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// The credential.
    pub credential: ClientCredential,
    /// IdB, the identity the SA binds to on this side (e.g. the server's CSE-ID), if configured.
    pub peer_id: Option<String>,
    /// Offered suites.
    pub suites: SuitePolicy,
    /// Handshake deadline.
    pub handshake_timeout: Duration,
}

impl ClientConfig {
    /// A PSK client offering the PSK suites.
    pub fn psk(psk_identity: PskIdentity, psk: Psk) -> Self {
        ClientConfig {
            credential: ClientCredential::Psk {
                identity: psk_identity,
                key: psk,
            },
            peer_id: None,
            suites: SuitePolicy::default(),
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        }
    }

    /// A raw-public-key client (RFC 7250) offering the ECDHE-ECDSA suites.
    pub fn raw_public_key(expected: PkId) -> Self {
        ClientConfig {
            credential: ClientCredential::RawPublicKey {
                expected: vec![expected],
                own: None,
            },
            peer_id: None,
            suites: SuitePolicy {
                psk: false,
                psk_forward_secret: false,
                ecdhe_ecdsa: true,
            },
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        }
    }

    /// A certificate client offering the ECDHE-ECDSA suites.
    pub fn certificate(
        anchors: TrustAnchors,
        expected: ExpectedName,
        own: Option<CertCredential>,
    ) -> Self {
        ClientConfig {
            credential: ClientCredential::Certificate {
                own,
                anchors,
                expected: vec![expected],
            },
            peer_id: None,
            suites: SuitePolicy {
                psk: false,
                psk_forward_secret: false,
                ecdhe_ecdsa: true,
            },
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        }
    }
}

/// SA2 (TS-0003 §8.2.1, figure 8.2.1-2): after a PSK security association SA1 in which we were
/// the server, the client configuration for the reverse association to the same peer (now the
/// server, e.g. a request-reachable registree), reusing SA1's credential: the same
/// `psk_identity` and key, bound to the identity SA1 was bound to.
pub fn sa2_client_config(
    sa1_peer: &crate::peer::Peer,
    resolver: &dyn PskResolver,
) -> Result<ClientConfig> {
    let identity = sa1_peer.psk_identity.as_ref().ok_or_else(|| {
        Error::Config("SA2 reuses a PSK credential: SA1 was not a PSK association".into())
    })?;
    let entry = resolver
        .resolve(sa1_peer.sni.as_deref(), identity)
        .ok_or_else(|| {
            Error::Config(format!("SA1 credential {identity} is no longer available"))
        })?;
    let mut cfg = ClientConfig::psk(identity.clone(), entry.key);
    cfg.peer_id = Some(entry.bound.as_str().to_string());
    Ok(cfg)
}

/// A server's certificates, selected by the SNI host name (one per authority).
#[derive(Clone, Debug, Default)]
pub struct ServerCertificates {
    by_authority: HashMap<String, CertCredential>,
    default: Option<CertCredential>,
}

impl ServerCertificates {
    /// No certificates.
    pub fn new() -> Self {
        Self::default()
    }

    /// The certificate served to clients naming `authority` in SNI.
    pub fn insert(&mut self, authority: &str, cred: CertCredential) {
        self.by_authority
            .insert(authority.to_ascii_lowercase(), cred);
    }

    /// The certificate served when SNI is absent or names no configured authority.
    pub fn set_default(&mut self, cred: CertCredential) {
        self.default = Some(cred);
    }

    /// The credential for `sni`.
    pub fn select(&self, sni: Option<&str>) -> Option<&CertCredential> {
        sni.and_then(|s| self.by_authority.get(&s.to_ascii_lowercase()))
            .or(self.default.as_ref())
    }
}

/// Client-certificate authentication on a server (Entity B gets A's trust anchor).
#[derive(Clone, Debug)]
pub struct ClientAuth {
    /// Anchors for the client's chain.
    pub anchors: TrustAnchors,
    /// Names the client certificate must carry (empty: any; the identity is then taken from
    /// the certificate's URI or dNSName).
    pub allowed: Vec<ExpectedName>,
}

/// Server configuration (TS-0003 §8.2.2, Entity B).
#[derive(Clone)]
pub struct ServerConfig {
    /// The PSK credential source (None: no PSK suites are usable).
    pub psk: Option<Arc<dyn PskResolver>>,
    /// Our certificates by authority (None: no certificate suites are usable).
    pub certificates: Option<ServerCertificates>,
    /// Require and verify client certificates in certificate handshakes.
    pub client_auth: Option<ClientAuth>,
    /// Accept a client's RFC 7250 raw public key (client_certificate_type) whose RFC 6920
    /// identifier is one of these; the SA then binds to Credential-ID `30-<pkID>`. Empty: raw
    /// client keys are not accepted. Needs OpenSSL >= 3.2.
    pub client_raw_keys: Vec<PkId>,
    /// Also offer our key as an RFC 7250 raw public key (preferred when the client asks for
    /// it; X.509 otherwise). Needs OpenSSL >= 3.2.
    pub offer_raw_public_key: bool,
    /// Authorities (SNI host names) this server answers for; None accepts any name. A client
    /// naming another authority is refused with `unrecognized_name`.
    pub authorities: Option<Vec<String>>,
    /// Refuse clients that send no SNI.
    pub require_sni: bool,
    /// Offered suites.
    pub suites: SuitePolicy,
    /// Handshake deadline.
    pub handshake_timeout: Duration,
}

impl ServerConfig {
    /// A PSK server with default suites, any SNI accepted.
    pub fn psk(resolver: Arc<dyn PskResolver>) -> Self {
        ServerConfig {
            psk: Some(resolver),
            certificates: None,
            client_auth: None,
            client_raw_keys: Vec::new(),
            offer_raw_public_key: false,
            authorities: None,
            require_sni: false,
            suites: SuitePolicy::default(),
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        }
    }

    /// A certificate-only server (ECDHE-ECDSA suites).
    pub fn certificates(certs: ServerCertificates) -> Self {
        ServerConfig {
            psk: None,
            certificates: Some(certs),
            suites: SuitePolicy {
                psk: false,
                psk_forward_secret: false,
                ecdhe_ecdsa: true,
            },
            ..ServerConfig::psk(Arc::new(PskTable::new()))
        }
    }

    /// A server in the IN role: offers every mandated suite, PSK and ECDHE-ECDSA (BRIEF §2.1).
    pub fn infrastructure(resolver: Arc<dyn PskResolver>, certs: ServerCertificates) -> Self {
        ServerConfig {
            certificates: Some(certs),
            suites: SuitePolicy {
                psk: true,
                psk_forward_secret: false,
                ecdhe_ecdsa: true,
            },
            ..ServerConfig::psk(resolver)
        }
    }
}

impl fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerConfig")
            .field("psk", &self.psk.is_some())
            .field("certificates", &self.certificates)
            .field("client_auth", &self.client_auth)
            .field("client_raw_keys", &self.client_raw_keys)
            .field("offer_raw_public_key", &self.offer_raw_public_key)
            .field("authorities", &self.authorities)
            .field("require_sni", &self.require_sni)
            .field("suites", &self.suites)
            .field("handshake_timeout", &self.handshake_timeout)
            .finish()
    }
}

/// The SNI a client sends for `host`: the name itself, never an IP address (BRIEF §2.1,
/// RFC 6066 §3). Brackets of an IPv6 literal are ignored.
pub fn sni_for_host(host: &str) -> Option<String> {
    let h = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('.');
    if h.is_empty() || h.parse::<IpAddr>().is_ok() {
        None
    } else {
        Some(h.to_ascii_lowercase())
    }
}

/// Whether a received `server_name` is an IP literal: IPv4 dotted quad, IPv6 (bracketed or
/// not, with or without a zone), with or without a trailing dot.
pub fn is_ip_literal(name: &str) -> bool {
    let h = name.trim_end_matches('.');
    let h = h
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(h);
    let h = match h.split_once('%') {
        Some((addr, _zone)) if addr.contains(':') => addr,
        _ => h,
    };
    h.parse::<IpAddr>().is_ok()
}

/// The SNI host name a server acts on, from the client's `server_name` (RFC 6066 §3):
/// lowercased; None when absent, empty or an IP literal. RFC 6066 §3 says "Literal IPv4 and
/// IPv6 addresses are not permitted in HostName", but clients that are given an address (libcoap
/// with `coaps://127.0.0.1/…`) send it anyway; like servers that route by SNI, we treat it as
/// no SNI (issue 17), so credential selection falls back as for a client that sent none and
/// `require_sni` refuses it as missing.
pub fn server_sni(server_name: Option<&str>) -> Option<String> {
    match server_name {
        Some(n) if !n.is_empty() && !is_ip_literal(n) => Some(n.to_ascii_lowercase()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psk_hex_is_case_insensitive_and_redacted() {
        let a = Psk::from_hex("A1b2").unwrap();
        assert_eq!(a.expose(), &[0xa1, 0xb2]);
        assert_eq!(format!("{a:?}"), "Psk(<redacted 2 bytes>)");
        assert!(Psk::from_hex("xyz").is_err());
        assert!(Psk::from_hex("").is_err());
        assert!(Psk::new(&[0u8; 513]).is_err());
    }

    #[test]
    fn identity_limits() {
        assert!(PskIdentity::new("").is_err());
        assert!(PskIdentity::new(&"a".repeat(257)).is_err());
        assert!(PskIdentity::new("a\0b").is_err());
        assert!(PskIdentity::from_wire(&[0xff]).is_none());
        assert_eq!(
            PskIdentity::new("key@mef.example").unwrap().as_str(),
            "key@mef.example"
        );
    }

    #[test]
    fn table_resolves_by_sni_then_default() {
        let t = PskTable::new();
        let id = PskIdentity::new("k1@mef").unwrap();
        t.insert(id.clone(), Psk::new(b"any").unwrap());
        let bound = BoundIdentity::Configured("CAE1".into());
        t.insert_entry(
            Some("IN.Example"),
            id.clone(),
            ResolvedPsk {
                key: Psk::new(b"in").unwrap(),
                bound,
            },
        );
        assert_eq!(
            t.resolve(Some("in.example"), &id).unwrap().key.expose(),
            b"in"
        );
        assert_eq!(t.resolve(Some("other"), &id).unwrap().key.expose(), b"any");
        let r = t.resolve(None, &id).unwrap();
        assert_eq!(r.bound.as_str(), "12-k1@mef");
        assert!(t
            .resolve(None, &PskIdentity::new("nope").unwrap())
            .is_none());
        assert!(t.remove(None, &id));
        assert!(t.resolve(None, &id).is_none());
    }

    #[test]
    fn ip_literal_server_name_counts_as_no_sni() {
        for ip in [
            "127.0.0.1",
            "192.0.2.10",
            "127.0.0.1.",
            "::1",
            "[::1]",
            "2001:db8::1",
            "[2001:DB8::1]",
            "::ffff:192.0.2.1",
            "fe80::1%eth0",
        ] {
            assert!(is_ip_literal(ip), "{ip}");
            assert_eq!(server_sni(Some(ip)), None, "{ip}");
        }
        // Names that merely look numeric are names.
        for name in [
            "1.2.3.4.example",
            "123abc",
            "0x7f.example",
            "1e100.net",
            "::1.example",
        ] {
            assert!(!is_ip_literal(name), "{name}");
            assert_eq!(
                server_sni(Some(name)),
                Some(name.to_ascii_lowercase()),
                "{name}"
            );
        }
        assert_eq!(
            server_sni(Some("CSE.sp.Example")),
            Some("cse.sp.example".into())
        );
        assert_eq!(server_sni(Some("")), None);
        assert_eq!(server_sni(None), None);
    }

    #[test]
    fn sni_never_an_ip() {
        assert_eq!(sni_for_host("127.0.0.1"), None);
        assert_eq!(sni_for_host("[::1]"), None);
        assert_eq!(
            sni_for_host("MEF.Example.com."),
            Some("mef.example.com".into())
        );
    }
}
