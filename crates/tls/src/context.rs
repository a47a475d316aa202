//! OpenSSL context builders pinned to the oneM2M profile (TS-0003 §10.2, BRIEF §2.1, A29).
//!
//! * Version: minimum = maximum = TLS 1.2 or DTLS 1.2; TLS 1.3 is never offered (check 14).
//! * Cipher lists are explicit. OpenSSL >= 3.2 only enables CCM_8 at security level 0, so every
//!   context runs at level 0 and lists nothing but the suites below, so nothing weaker than
//!   what is listed can be negotiated.
//! * No session resumption (no tickets, no session cache): every handshake runs the PSK
//!   callback, so every security association is bound by a fresh credential lookup.
//! * No renegotiation, no compression.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use openssl::ex_data::Index;
use openssl::pkey::PKey;
use openssl::sign::Signer;
use openssl::ssl::{
    NameType, SniError, Ssl, SslAlert, SslContext, SslContextBuilder, SslMethod, SslMode,
    SslOptions, SslSessionCacheMode, SslVerifyMode, SslVersion,
};
use openssl::x509::{X509StoreContextRef, X509VerifyResult};
use zeroize::Zeroizing;

use crate::cert::{self, CertCredential, ExpectedName, LeafProblem};
use crate::config::{
    server_sni, ClientConfig, ClientCredential, PskIdentity, ServerConfig, SuitePolicy,
};
use crate::error::{Error, Result};
use crate::peer::BoundIdentity;
use crate::rpk::PkId;

/// Transport flavour of a context.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// TLS 1.2 over TCP.
    Tls,
    /// DTLS 1.2 over UDP.
    Dtls,
}

/// The OpenSSL cipher list for `transport` and `policy` (BRIEF §2.1):
///
/// | | TLS | DTLS |
/// |---|---|---|
/// | PSK (mandatory) | `PSK-AES128-CBC-SHA256` (0x00AE) | `PSK-AES128-CCM8` (0xC0A8) |
/// | forward-secret PSK (option) | `ECDHE-PSK-AES128-CBC-SHA256`, `DHE-PSK-AES128-CBC-SHA256` | `DHE-PSK-AES128-CCM8` |
/// | certificates | `ECDHE-ECDSA-AES128-SHA256` (0xC023) | `ECDHE-ECDSA-AES128-CCM8` (0xC0AE) |
///
/// Forward-secret variants come first so a server that offers both prefers them.
pub fn cipher_list(transport: Transport, policy: SuitePolicy) -> String {
    let mut v: Vec<&str> = Vec::new();
    match transport {
        Transport::Tls => {
            if policy.ecdhe_ecdsa {
                v.push("ECDHE-ECDSA-AES128-SHA256");
            }
            if policy.psk && policy.psk_forward_secret {
                v.push("ECDHE-PSK-AES128-CBC-SHA256");
                v.push("DHE-PSK-AES128-CBC-SHA256");
            }
            if policy.psk {
                v.push("PSK-AES128-CBC-SHA256");
            }
        }
        Transport::Dtls => {
            if policy.ecdhe_ecdsa {
                v.push("ECDHE-ECDSA-AES128-CCM8");
            }
            if policy.psk && policy.psk_forward_secret {
                v.push("DHE-PSK-AES128-CCM8");
            }
            if policy.psk {
                v.push("PSK-AES128-CCM8");
            }
        }
    }
    v.join(":")
}

fn base(transport: Transport, policy: SuitePolicy) -> Result<SslContextBuilder> {
    let (method, version) = match transport {
        Transport::Tls => (SslMethod::tls(), SslVersion::TLS1_2),
        Transport::Dtls => (SslMethod::dtls(), SslVersion::DTLS1_2),
    };
    let list = cipher_list(transport, policy);
    if list.is_empty() {
        return Err(Error::Config("no cipher suite enabled".into()));
    }
    let mut b = SslContextBuilder::new(method)?;
    b.set_min_proto_version(Some(version))?;
    b.set_max_proto_version(Some(version))?;
    b.set_options(
        SslOptions::NO_TLSV1_3
            | SslOptions::NO_COMPRESSION
            | SslOptions::NO_TICKET
            | SslOptions::NO_RENEGOTIATION
            | SslOptions::CIPHER_SERVER_PREFERENCE,
    );
    if transport == Transport::Dtls {
        // The MTU is set per connection (`SslRef::set_mtu`); never ask the (in-memory) BIO.
        b.set_options(SslOptions::NO_QUERY_MTU);
    }
    b.set_security_level(0);
    b.set_cipher_list(&list)?;
    b.set_ciphersuites("")?;
    b.set_session_cache_mode(SslSessionCacheMode::OFF);
    if transport == Transport::Dtls {
        // Free the record buffers of idle connections (many idle DTLS sessions on one port).
        b.set_mode(SslMode::RELEASE_BUFFERS);
    } else {
        // TLS over TCP: read whole records (and what follows) in one read instead of header
        // and body separately; keep the buffers, which a busy connection reuses per record.
        b.set_read_ahead(true);
    }
    if policy.psk && policy.psk_forward_secret {
        crate::ffi::set_dh_auto(&mut b);
    }
    b.set_groups_list("P-256:X25519")?;
    if policy.ecdhe_ecdsa {
        // RFC 8422 with P-256 and SHA-256 only (BRIEF §2.5).
        b.set_sigalgs_list("ECDSA+SHA256")?;
    }
    Ok(b)
}

/// What the server PSK callback learned, stored on the connection for the [`crate::Peer`].
#[derive(Clone, Debug)]
pub(crate) struct PskBinding {
    pub identity: PskIdentity,
    pub bound: BoundIdentity,
}

/// Per-connection slot for [`PskBinding`].
pub(crate) fn binding_index() -> Result<Index<Ssl, PskBinding>> {
    static IDX: OnceLock<Option<Index<Ssl, PskBinding>>> = OnceLock::new();
    IDX.get_or_init(|| Ssl::new_ex_index().ok())
        .ok_or_else(|| Error::Config("cannot allocate SSL ex_data index".into()))
}

/// Per-connection slot for the peer address (DTLS cookies).
pub(crate) fn peer_addr_index() -> Result<Index<Ssl, SocketAddr>> {
    static IDX: OnceLock<Option<Index<Ssl, SocketAddr>>> = OnceLock::new();
    IDX.get_or_init(|| Ssl::new_ex_index().ok())
        .ok_or_else(|| Error::Config("cannot allocate SSL ex_data index".into()))
}

/// Build a client context for one credential.
pub fn client_context(transport: Transport, cfg: &ClientConfig) -> Result<SslContext> {
    let mut b = base(transport, cfg.suites)?;
    match &cfg.credential {
        ClientCredential::Psk { identity, key } => {
            let identity = identity.clone();
            let key = key.clone();
            b.set_psk_client_callback(move |_ssl, _hint, id_out, key_out| {
                let id = identity.as_str().as_bytes();
                let k = key.expose();
                // The identity is written NUL-terminated; both lengths were validated at
                // construction against OpenSSL's buffer sizes, but never index out of bounds.
                if id.len() >= id_out.len() || k.len() > key_out.len() {
                    return Ok(0);
                }
                id_out[..id.len()].copy_from_slice(id);
                id_out[id.len()] = 0;
                key_out[..k.len()].copy_from_slice(k);
                Ok(k.len())
            });
        }
        ClientCredential::Certificate {
            own,
            anchors,
            expected,
        } => {
            if expected.is_empty() {
                return Err(Error::Config(
                    "a certificate client needs the server's expected name".into(),
                ));
            }
            b.set_cert_store(anchors.store()?);
            let expected = expected.clone();
            b.set_verify_callback(SslVerifyMode::PEER, move |ok, ctx| {
                verify_peer(ok, ctx, &expected)
            });
            if let Some(own) = own {
                install_own(&mut b, own)?;
            }
        }
        ClientCredential::RawPublicKey { expected, own } => {
            if expected.is_empty() {
                return Err(Error::Config(
                    "a raw-public-key client needs the server's key identifier".into(),
                ));
            }
            raw_key_client(&mut b, expected)?;
            if let Some(own) = own {
                install_own(&mut b, own)?;
                offer_client_raw_key(&mut b)?;
            }
        }
    }
    Ok(b.build())
}

#[cfg(m2msec_rpk)]
fn raw_key_client(b: &mut SslContextBuilder, expected: &[PkId]) -> Result<()> {
    crate::ffi::set_server_cert_types(b, &[crate::ffi::CERT_TYPE_RPK])?;
    let expected = expected.to_vec();
    b.set_verify_callback(SslVerifyMode::PEER, move |_ok, ctx| {
        // A raw key arrives with "untrusted" preset (no chain): the identifier decides.
        match crate::ffi::store_ctx_rpk_der(ctx) {
            Some(der) => {
                let ok = crate::rpk::check_raw_key(&der, &expected).is_some();
                if !ok {
                    tracing::info!(
                        "peer raw public key refused: not P-256 or not the configured pkID"
                    );
                }
                ok
            }
            None => {
                tracing::info!(
                    "peer sent an X.509 certificate where a raw public key was configured"
                );
                false
            }
        }
    });
    Ok(())
}

#[cfg(not(m2msec_rpk))]
fn raw_key_client(_b: &mut SslContextBuilder, _expected: &[PkId]) -> Result<()> {
    Err(crate::rpk::unsupported())
}

#[cfg(m2msec_rpk)]
fn offer_raw_key(b: &mut SslContextBuilder) -> Result<()> {
    use crate::ffi::{CERT_TYPE_RPK, CERT_TYPE_X509};
    crate::ffi::set_server_cert_types(b, &[CERT_TYPE_RPK, CERT_TYPE_X509])?;
    Ok(())
}

/// Client: present our key as a raw public key when the server asks for a client key.
#[cfg(m2msec_rpk)]
fn offer_client_raw_key(b: &mut SslContextBuilder) -> Result<()> {
    crate::ffi::set_client_cert_types(b, &[crate::ffi::CERT_TYPE_RPK])?;
    Ok(())
}

#[cfg(not(m2msec_rpk))]
fn offer_client_raw_key(_b: &mut SslContextBuilder) -> Result<()> {
    Err(crate::rpk::unsupported())
}

/// Server: accept a client raw key (and an X.509 client certificate too when `x509` is set).
#[cfg(m2msec_rpk)]
fn accept_client_raw_keys(b: &mut SslContextBuilder, x509: bool) -> Result<()> {
    use crate::ffi::{CERT_TYPE_RPK, CERT_TYPE_X509};
    if x509 {
        crate::ffi::set_client_cert_types(b, &[CERT_TYPE_RPK, CERT_TYPE_X509])?;
    } else {
        crate::ffi::set_client_cert_types(b, &[CERT_TYPE_RPK])?;
    }
    Ok(())
}

#[cfg(not(m2msec_rpk))]
fn accept_client_raw_keys(_b: &mut SslContextBuilder, _x509: bool) -> Result<()> {
    Err(crate::rpk::unsupported())
}

/// Server verification of a client raw key against the configured identifiers.
fn verify_client_raw_key(der: &[u8], allowed: &[PkId]) -> bool {
    let ok = crate::rpk::check_raw_key(der, allowed).is_some();
    if !ok {
        tracing::info!("client raw public key refused: not P-256 or not a configured pkID");
    }
    ok
}

#[cfg(not(m2msec_rpk))]
fn offer_raw_key(_b: &mut SslContextBuilder) -> Result<()> {
    Err(crate::rpk::unsupported())
}

fn install_own(b: &mut SslContextBuilder, own: &CertCredential) -> Result<()> {
    let leaf = own
        .leaf()
        .ok_or_else(|| Error::Config("empty certificate chain".into()))?;
    b.set_certificate(leaf)?;
    b.set_private_key(&own.key)?;
    for c in own.intermediates() {
        b.add_extra_chain_cert(c.clone())?;
    }
    Ok(())
}

/// Certificate verification: OpenSSL's path validation result, then the oneM2M leaf profile.
fn verify_peer(
    preverify_ok: bool,
    ctx: &mut X509StoreContextRef,
    expected: &[ExpectedName],
) -> bool {
    if !preverify_ok {
        tracing::info!(
            depth = ctx.error_depth(),
            error = %ctx.error().error_string(),
            "peer certificate chain refused"
        );
        return false;
    }
    if ctx.error_depth() != 0 {
        return true;
    }
    let Some(leaf) = ctx.current_cert() else {
        return false;
    };
    match cert::check_leaf(leaf, expected) {
        Ok(()) => true,
        Err(problem) => {
            tracing::info!(reason = %problem, "peer certificate refused");
            let result = match problem {
                LeafProblem::NameMismatch | LeafProblem::Wildcard => {
                    crate::ffi::verify_result_hostname_mismatch()
                }
                LeafProblem::NoDigitalSignature => crate::ffi::verify_result_invalid_purpose(),
                LeafProblem::NotP256 | LeafProblem::CompressedPoint => {
                    X509VerifyResult::APPLICATION_VERIFICATION
                }
            };
            ctx.set_error(result);
            false
        }
    }
}

/// Build a server context: PSK resolution through the credential source and certificates, both
/// selected by SNI. For DTLS, `cookie_secret` enables the cookie callbacks used by
/// `DTLSv1_listen`.
pub fn server_context(
    transport: Transport,
    cfg: &ServerConfig,
    cookie_secret: Option<Arc<CookieSecret>>,
) -> Result<SslContext> {
    let mut b = base(transport, cfg.suites)?;
    let binding_idx = binding_index()?;

    let authorities: Option<Vec<String>> = cfg
        .authorities
        .as_ref()
        .map(|v| v.iter().map(|a| a.to_ascii_lowercase()).collect());
    let require_sni = cfg.require_sni;
    let certs = cfg.certificates.clone();
    b.set_servername_callback(move |ssl, alert| {
        let raw = ssl.servername(NameType::HOST_NAME);
        let sni = server_sni(raw);
        if sni.is_none() {
            if let Some(ip) = raw.filter(|r| !r.is_empty()) {
                tracing::debug!(server_name = %ip, "SNI is an IP literal: treated as absent (RFC 6066 §3)");
            }
        }
        match (&sni, &authorities) {
            (None, _) if require_sni => {
                tracing::info!("TLS client sent no SNI (or an IP literal); refused");
                *alert = SslAlert::UNRECOGNIZED_NAME;
                return Err(SniError::ALERT_FATAL);
            }
            (Some(name), Some(list)) if !list.iter().any(|a| a == name) => {
                tracing::info!(sni = %name, "TLS client asked for an unknown authority; refused");
                *alert = SslAlert::UNRECOGNIZED_NAME;
                return Err(SniError::ALERT_FATAL);
            }
            _ => {}
        }
        if let Some(cred) = certs.as_ref().and_then(|c| c.select(sni.as_deref())) {
            let installed = cred
                .leaf()
                .map(|leaf| ssl.set_certificate(leaf))
                .transpose()
                .and_then(|_| ssl.set_private_key(&cred.key))
                .and_then(|_| {
                    cred.intermediates()
                        .try_for_each(|c| ssl.add_chain_cert(c.clone()))
                });
            if installed.is_err() {
                tracing::warn!(sni = ?sni, "cannot install the server certificate");
                *alert = SslAlert::INTERNAL_ERROR;
                return Err(SniError::ALERT_FATAL);
            }
        }
        Ok(())
    });

    if let Some(resolver) = cfg.psk.clone() {
        b.set_psk_server_callback(move |ssl, identity, key_out| {
            let sni = server_sni(ssl.servername(NameType::HOST_NAME));
            let Some(id) = identity.and_then(PskIdentity::from_wire) else {
                tracing::info!(sni = ?sni, "TLS-PSK: psk_identity missing or not UTF-8; refused");
                return Ok(0);
            };
            let Some(entry) = resolver.resolve(sni.as_deref(), &id) else {
                tracing::info!(sni = ?sni, psk_identity = %id, "TLS-PSK: unknown psk_identity; refused");
                return Ok(0);
            };
            let k = entry.key.expose();
            if k.len() > key_out.len() {
                tracing::warn!(psk_identity = %id, "TLS-PSK: key longer than OpenSSL accepts; refused");
                return Ok(0);
            }
            key_out[..k.len()].copy_from_slice(k);
            ssl.set_ex_data(binding_idx, PskBinding { identity: id, bound: entry.bound });
            Ok(k.len())
        });
    }

    if cfg.offer_raw_public_key {
        if cfg.certificates.is_none() {
            return Err(Error::Config(
                "offering a raw public key needs a server certificate/key".into(),
            ));
        }
        offer_raw_key(&mut b)?;
    }

    if let Some(auth) = &cfg.client_auth {
        b.set_verify_cert_store(auth.anchors.store()?)?;
        b.set_cert_store(auth.anchors.store()?);
    }
    if !cfg.client_raw_keys.is_empty() {
        accept_client_raw_keys(&mut b, cfg.client_auth.is_some())?;
    }
    if cfg.client_auth.is_some() || !cfg.client_raw_keys.is_empty() {
        let allowed = cfg.client_auth.as_ref().map(|a| a.allowed.clone());
        let raw_keys = cfg.client_raw_keys.clone();
        b.set_verify_callback(
            SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT,
            move |ok, ctx| match crate::ffi::store_ctx_rpk_der(ctx) {
                // A raw key: only the configured identifiers decide (no chain to validate).
                Some(der) => verify_client_raw_key(&der, &raw_keys),
                None => match &allowed {
                    Some(allowed) => verify_peer(ok, ctx, allowed),
                    None => {
                        tracing::info!(
                            "client sent an X.509 certificate where a raw public key was configured"
                        );
                        false
                    }
                },
            },
        );
    }

    if let Some(secret) = cookie_secret {
        let addr_idx = peer_addr_index()?;
        let gen_secret = secret.clone();
        b.set_cookie_generate_cb(move |ssl, out| {
            let addr = ssl.ex_data(addr_idx).copied();
            let cookie = gen_secret.cookie(addr)?;
            let n = cookie.len().min(out.len());
            out[..n].copy_from_slice(&cookie[..n]);
            Ok(n)
        });
        b.set_cookie_verify_cb(move |ssl, cookie| {
            let addr = ssl.ex_data(addr_idx).copied();
            match secret.cookie(addr) {
                Ok(expected) => {
                    expected.len() == cookie.len() && openssl::memcmp::eq(&expected, cookie)
                }
                Err(_) => false,
            }
        });
    }
    Ok(b.build())
}

/// The server's secret for stateless DTLS cookies: cookie = HMAC-SHA-256(secret, peer address).
pub struct CookieSecret(Zeroizing<[u8; 32]>);

impl CookieSecret {
    /// A fresh random secret.
    pub fn random() -> Result<Self> {
        let mut s = Zeroizing::new([0u8; 32]);
        openssl::rand::rand_bytes(&mut s[..])?;
        Ok(CookieSecret(s))
    }

    fn cookie(&self, addr: Option<SocketAddr>) -> Result<Vec<u8>, openssl::error::ErrorStack> {
        let key = PKey::hmac(&self.0[..])?;
        let mut signer = Signer::new(openssl::hash::MessageDigest::sha256(), &key)?;
        let text = addr.map(|a| a.to_string()).unwrap_or_default();
        signer.update(text.as_bytes())?;
        signer.sign_to_vec()
    }
}

impl std::fmt::Debug for CookieSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CookieSecret(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Psk, PskTable};

    #[test]
    fn explicit_lists() {
        let p = SuitePolicy::default();
        assert_eq!(cipher_list(Transport::Tls, p), "PSK-AES128-CBC-SHA256");
        assert_eq!(cipher_list(Transport::Dtls, p), "PSK-AES128-CCM8");
        let all = SuitePolicy {
            psk: true,
            psk_forward_secret: true,
            ecdhe_ecdsa: true,
        };
        assert_eq!(
            cipher_list(Transport::Tls, all),
            "ECDHE-ECDSA-AES128-SHA256:ECDHE-PSK-AES128-CBC-SHA256:DHE-PSK-AES128-CBC-SHA256:PSK-AES128-CBC-SHA256"
        );
        assert_eq!(
            cipher_list(Transport::Dtls, all),
            "ECDHE-ECDSA-AES128-CCM8:DHE-PSK-AES128-CCM8:PSK-AES128-CCM8"
        );
    }

    /// The context offers exactly the listed suites (nothing weaker sneaks in at level 0), and
    /// no TLS 1.3 suite.
    #[test]
    fn contexts_offer_only_listed_suites() {
        let table = Arc::new(PskTable::new());
        let all = SuitePolicy {
            psk: true,
            psk_forward_secret: true,
            ecdhe_ecdsa: true,
        };
        for t in [Transport::Tls, Transport::Dtls] {
            let mut cfg = ServerConfig::psk(table.clone());
            cfg.suites = all;
            let ctx = server_context(t, &cfg, None).unwrap();
            let ssl = Ssl::new(&ctx).unwrap();
            let names = crate::ffi::cipher_names(&ssl);
            assert_eq!(names.join(":"), cipher_list(t, all), "{t:?}");
        }
        let client = ClientConfig::psk(PskIdentity::new("id").unwrap(), Psk::new(b"k").unwrap());
        let ctx = client_context(Transport::Dtls, &client).unwrap();
        let ssl = Ssl::new(&ctx).unwrap();
        assert_eq!(crate::ffi::cipher_names(&ssl), vec!["PSK-AES128-CCM8"]);
    }

    #[test]
    fn cookie_depends_on_address() {
        let s = CookieSecret::random().unwrap();
        let a: SocketAddr = "127.0.0.1:1000".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:1001".parse().unwrap();
        assert_eq!(s.cookie(Some(a)).unwrap(), s.cookie(Some(a)).unwrap());
        assert_ne!(s.cookie(Some(a)).unwrap(), s.cookie(Some(b)).unwrap());
        assert_eq!(s.cookie(Some(a)).unwrap().len(), 32);
    }
}
