//! The authenticated peer of a security association (TS-0003 §8.2.1).
//!
//! After a handshake a channel yields who is on the other end: the identity the SA is bound to,
//! the kind of credential that proved it, and the negotiated parameters. The bindings layer uses
//! it to check `From` (BRIEF §3(d)); it is plain data with no key material.

use std::fmt;
use std::net::SocketAddr;

use openssl::ssl::{NameType, SslRef};

use crate::cert::{san_entries, ExpectedName, SanEntry};
use crate::config::PskIdentity;
use crate::rpk::{PkId, PkIdAlg};

/// The identity a security association is bound to (TS-0003 §8.2.2.1–§8.2.2.3).
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum BoundIdentity {
    /// A configured IdA/IdB (CSE-ID or AE-ID).
    Configured(String),
    /// A Credential-ID (TS-0003 §10.4), e.g. `12-<KpsaID>`.
    CredentialId(String),
}

impl BoundIdentity {
    /// Credential-ID of a Provisioned Symmetric Key SA: `12-<KpsaID>` (conformance check 19).
    pub fn credential_id_psk(identity: &PskIdentity) -> Self {
        BoundIdentity::CredentialId(format!("12-{}", identity.as_str()))
    }

    /// The identity text.
    pub fn as_str(&self) -> &str {
        match self {
            BoundIdentity::Configured(s) | BoundIdentity::CredentialId(s) => s,
        }
    }
}

impl fmt::Debug for BoundIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BoundIdentity::Configured(s) => write!(f, "Configured({s:?})"),
            BoundIdentity::CredentialId(s) => write!(f, "CredentialId({s:?})"),
        }
    }
}

impl fmt::Display for BoundIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The kind of credential that authenticated the peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CredentialKind {
    /// RFC 4279 pre-shared key.
    Psk,
    /// X.509 certificate (ECDHE-ECDSA).
    Certificate,
    /// RFC 7250 raw public key (ECDHE-ECDSA).
    RawPublicKey,
}

impl CredentialKind {
    /// Stable lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialKind::Psk => "psk",
            CredentialKind::Certificate => "certificate",
            CredentialKind::RawPublicKey => "raw_public_key",
        }
    }
}

/// The negotiated protocol (always version 1.2, BRIEF §2.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// TLS 1.2 over TCP.
    Tls12,
    /// DTLS 1.2 over UDP.
    Dtls12,
}

impl Protocol {
    /// `"TLSv1.2"` or `"DTLSv1.2"`, as OpenSSL names them.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tls12 => "TLSv1.2",
            Protocol::Dtls12 => "DTLSv1.2",
        }
    }
}

/// Which end of the handshake we were.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// (D)TLS client (Entity A).
    Client,
    /// (D)TLS server (Entity B).
    Server,
}

/// The authenticated peer after a completed handshake (TS-0003 §8.2.1).
#[derive(Clone, Debug)]
pub struct Peer {
    /// The peer's transport address.
    pub addr: SocketAddr,
    /// Our role in the handshake.
    pub role: Role,
    /// Protocol version.
    pub protocol: Protocol,
    /// IANA name of the cipher suite, e.g. `TLS_PSK_WITH_AES_128_CCM_8`.
    pub cipher: String,
    /// The credential kind.
    pub credential: CredentialKind,
    /// The `psk_identity` used (PSK suites).
    pub psk_identity: Option<PskIdentity>,
    /// The SNI host name (sent by us as client, received as server; an IP literal a client sent
    /// counts as none, RFC 6066 §3).
    pub sni: Option<String>,
    /// The identity the SA is bound to, when known (PSK server: from the credential source;
    /// certificate: the SubjectAltName that matched, else the certificate's URI or dNSName;
    /// client: the configured IdB when set).
    pub bound_identity: Option<BoundIdentity>,
    /// SubjectAltNames (dNSName and URI values) of the peer's certificate, if it sent one.
    pub subject_alt_names: Vec<String>,
}

impl Peer {
    pub(crate) fn from_ssl(
        ssl: &SslRef,
        addr: SocketAddr,
        role: Role,
        protocol: Protocol,
        psk_identity: Option<PskIdentity>,
        bound_identity: Option<BoundIdentity>,
        expected: &[ExpectedName],
    ) -> Peer {
        let cipher = ssl
            .current_cipher()
            .map(|c| c.standard_name().unwrap_or(c.name()).to_string())
            .unwrap_or_default();
        let is_psk = cipher.contains("PSK");
        // As the server acted on it: an IP literal is no SNI (RFC 6066 §3).
        let sni = crate::config::server_sni(ssl.servername(NameType::HOST_NAME));
        let sans = ssl
            .peer_certificate()
            .map(|c| san_entries(&c))
            .unwrap_or_default();
        let raw_key = if is_psk {
            None
        } else {
            crate::ffi::peer_rpk_der(ssl)
        };
        let (credential, psk_identity, bound_identity) = if let Some(der) = raw_key {
            // Credential-ID `30-<pkID>` (TS-0003 §8.2.2.2, BRIEF A6).
            let id = PkId::of_spki(&der, PkIdAlg::Sha256)
                .ok()
                .map(|p| BoundIdentity::CredentialId(format!("30-{p}")));
            (CredentialKind::RawPublicKey, None, bound_identity.or(id))
        } else if is_psk {
            let id = psk_identity.or_else(|| ssl.psk_identity().and_then(PskIdentity::from_wire));
            (CredentialKind::Psk, id, bound_identity)
        } else {
            // The configured name that matched; a Node-ID binds to Credential-ID
            // `34-<Node-ID>` (TS-0003 §8.2.2.1, table 10.4-1).
            let matched = expected
                .iter()
                .find_map(|e| sans.iter().find(|s| e.matches(s)).map(|s| (e, s)))
                .map(|(e, s)| match e {
                    ExpectedName::NodeId(node) => BoundIdentity::CredentialId(format!("34-{node}")),
                    _ => BoundIdentity::Configured(s.value().to_string()),
                });
            let from_cert = matched.or_else(|| {
                sans.iter()
                    .find(|s| matches!(s, SanEntry::Uri(_)))
                    .or_else(|| sans.iter().find(|s| !matches!(s, SanEntry::OtherName(_))))
                    .map(|s| BoundIdentity::Configured(s.value().to_string()))
            });
            (
                CredentialKind::Certificate,
                None,
                bound_identity.or(from_cert),
            )
        };
        Peer {
            addr,
            role,
            protocol,
            cipher,
            credential,
            psk_identity,
            sni,
            bound_identity,
            subject_alt_names: sans.iter().map(|s| s.value().to_string()).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_id() {
        let id = PskIdentity::new("kpsa-1@mef.example").unwrap();
        assert_eq!(
            BoundIdentity::credential_id_psk(&id).as_str(),
            "12-kpsa-1@mef.example"
        );
        assert_eq!(Protocol::Dtls12.as_str(), "DTLSv1.2");
    }
}
