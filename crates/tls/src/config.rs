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

use crate::error::{Error, Result};
use crate::peer::BoundIdentity;

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

/// Client configuration: one PSK credential (TS-0003 §8.2.2.1, Entity A).
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// `psk_identity` sent to the server.
    pub psk_identity: PskIdentity,
    /// The key.
    pub psk: Psk,
    /// IdB, the identity the SA binds to on this side (e.g. the server's CSE-ID), if configured.
    pub peer_id: Option<String>,
    /// Offered suites.
    pub suites: SuitePolicy,
    /// Handshake deadline.
    pub handshake_timeout: Duration,
}

impl ClientConfig {
    /// A PSK client with default suites and timeout.
    pub fn psk(psk_identity: PskIdentity, psk: Psk) -> Self {
        ClientConfig {
            psk_identity,
            psk,
            peer_id: None,
            suites: SuitePolicy::default(),
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        }
    }
}

/// Server configuration (TS-0003 §8.2.2.1, Entity B).
#[derive(Clone)]
pub struct ServerConfig {
    /// The PSK credential source.
    pub psk: Arc<dyn PskResolver>,
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
            psk: resolver,
            authorities: None,
            require_sni: false,
            suites: SuitePolicy::default(),
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        }
    }
}

impl fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerConfig")
            .field("authorities", &self.authorities)
            .field("require_sni", &self.require_sni)
            .field("suites", &self.suites)
            .field("handshake_timeout", &self.handshake_timeout)
            .finish_non_exhaustive()
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
    fn sni_never_an_ip() {
        assert_eq!(sni_for_host("127.0.0.1"), None);
        assert_eq!(sni_for_host("[::1]"), None);
        assert_eq!(
            sni_for_host("MEF.Example.com."),
            Some("mef.example.com".into())
        );
    }
}
