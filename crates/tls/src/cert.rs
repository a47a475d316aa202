//! Certificate credentials and peer-certificate checks (TS-0003 §8.1.2, §10.1.1; BRIEF §2.5).
//!
//! * Our own credential: a P-256 private key and its certificate chain ([`CertCredential`]).
//! * Trust anchors ([`TrustAnchors`]): the only roots a chain may lead to; the system's default
//!   CA paths are never consulted.
//! * The peer's leaf certificate must carry a P-256 key, keyUsage with digitalSignature, no
//!   wildcard dNSName, and a SubjectAltName exactly equal to one configured [`ExpectedName`]
//!   (CSE public domain name or MEF/MAF FQDN as dNSName, Absolute AE-ID as URI). OpenSSL does
//!   RFC 5280 path validation (signatures, validity period, CA flags) against the anchors.

use std::fmt;

use openssl::ec::EcKey;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::x509::store::{X509Store, X509StoreBuilder};
use openssl::x509::{X509KeyUsage, X509Ref, X509};

use crate::error::{Error, Result};

/// A name the peer's certificate must carry as a SubjectAltName, compared exactly.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ExpectedName {
    /// dNSName: a CSE public domain name or a MEF/MAF FQDN (ASCII case-insensitive).
    Dns(String),
    /// uniformResourceIdentifier: an Absolute AE-ID URI (byte-exact).
    Uri(String),
}

impl ExpectedName {
    fn matches(&self, san: &SanEntry) -> bool {
        match (self, san) {
            (ExpectedName::Dns(e), SanEntry::Dns(s)) => e.eq_ignore_ascii_case(s),
            (ExpectedName::Uri(e), SanEntry::Uri(s)) => e == s,
            _ => false,
        }
    }

    /// The name text.
    pub fn as_str(&self) -> &str {
        match self {
            ExpectedName::Dns(s) | ExpectedName::Uri(s) => s,
        }
    }
}

/// One SubjectAltName entry we understand.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum SanEntry {
    Dns(String),
    Uri(String),
}

impl SanEntry {
    pub(crate) fn value(&self) -> &str {
        match self {
            SanEntry::Dns(s) | SanEntry::Uri(s) => s,
        }
    }
}

pub(crate) fn san_entries(cert: &X509Ref) -> Vec<SanEntry> {
    let mut v = Vec::new();
    if let Some(names) = cert.subject_alt_names() {
        for n in names.iter() {
            if let Some(d) = n.dnsname() {
                v.push(SanEntry::Dns(d.to_string()));
            } else if let Some(u) = n.uri() {
                v.push(SanEntry::Uri(u.to_string()));
            }
        }
    }
    v
}

fn is_p256(key: &PKey<impl openssl::pkey::HasPublic>) -> bool {
    key.ec_key()
        .ok()
        .and_then(|k| k.group().curve_name())
        .is_some_and(|n| n == Nid::X9_62_PRIME256V1)
}

/// Why a peer leaf certificate was refused (logged, never containing key material).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum LeafProblem {
    NotP256,
    NoDigitalSignature,
    Wildcard,
    NameMismatch,
}

impl fmt::Display for LeafProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LeafProblem::NotP256 => "peer key is not P-256",
            LeafProblem::NoDigitalSignature => "peer keyUsage lacks digitalSignature",
            LeafProblem::Wildcard => "peer certificate has a wildcard name",
            LeafProblem::NameMismatch => "peer SubjectAltName does not match the configured name",
        })
    }
}

/// Profile and name checks on the peer's leaf certificate (BRIEF §6 check 17). With an empty
/// `expected` list any name is accepted (the identity is then taken from the certificate).
pub(crate) fn check_leaf(
    cert: &X509Ref,
    expected: &[ExpectedName],
) -> std::result::Result<(), LeafProblem> {
    match cert.public_key() {
        Ok(k) if is_p256(&k) => {}
        _ => return Err(LeafProblem::NotP256),
    }
    match cert.key_usage() {
        Some(ku) if ku.contains(X509KeyUsage::DIGITAL_SIGNATURE) => {}
        _ => return Err(LeafProblem::NoDigitalSignature),
    }
    let sans = san_entries(cert);
    if sans
        .iter()
        .any(|s| matches!(s, SanEntry::Dns(d) if d.contains('*')))
    {
        return Err(LeafProblem::Wildcard);
    }
    if !expected.is_empty() && !sans.iter().any(|s| expected.iter().any(|e| e.matches(s))) {
        return Err(LeafProblem::NameMismatch);
    }
    Ok(())
}

/// Our certificate credential: a P-256 private key and the chain (leaf first).
#[derive(Clone)]
pub struct CertCredential {
    pub(crate) chain: Vec<X509>,
    pub(crate) key: PKey<Private>,
}

impl CertCredential {
    /// Load from PEM: `chain` holds the leaf first, then intermediates; `key` the private key.
    /// The key must be P-256 and match the leaf.
    pub fn from_pem(chain: &[u8], key: &[u8]) -> Result<Self> {
        let chain = X509::stack_from_pem(chain)
            .map_err(|e| Error::Config(format!("certificate chain: {e}")))?;
        let key = PKey::private_key_from_pem(key)
            .map_err(|_| Error::Config("private key: not a PEM private key".into()))?;
        Self::new(chain, key)
    }

    /// From parsed objects (leaf first).
    pub fn new(chain: Vec<X509>, key: PKey<Private>) -> Result<Self> {
        let leaf = chain
            .first()
            .ok_or_else(|| Error::Config("certificate chain is empty".into()))?;
        if !is_p256(&key) {
            return Err(Error::Config("private key must be an EC P-256 key".into()));
        }
        let leaf_key = leaf.public_key()?;
        if !leaf_key.public_eq(&key) {
            return Err(Error::Config(
                "private key does not match the certificate".into(),
            ));
        }
        Ok(CertCredential { chain, key })
    }

    /// A new random P-256 key (helper for tests and enrolment).
    pub fn generate_p256_key() -> Result<PKey<Private>> {
        let group = openssl::ec::EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
        Ok(PKey::from_ec_key(EcKey::generate(&group)?)?)
    }

    pub(crate) fn leaf(&self) -> Option<&X509> {
        self.chain.first()
    }

    pub(crate) fn intermediates(&self) -> impl Iterator<Item = &X509> {
        self.chain.iter().skip(1)
    }
}

impl fmt::Debug for CertCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<String> = self
            .leaf()
            .map(|l| {
                san_entries(l)
                    .iter()
                    .map(|s| s.value().to_string())
                    .collect()
            })
            .unwrap_or_default();
        f.debug_struct("CertCredential")
            .field("leaf_names", &names)
            .field("chain_len", &self.chain.len())
            .field("key", &"<redacted>")
            .finish()
    }
}

/// Trust anchors for path validation.
#[derive(Clone)]
pub struct TrustAnchors(Vec<X509>);

impl TrustAnchors {
    /// Load one or more PEM certificates.
    pub fn from_pem(pem: &[u8]) -> Result<Self> {
        let certs =
            X509::stack_from_pem(pem).map_err(|e| Error::Config(format!("trust anchors: {e}")))?;
        Self::new(certs)
    }

    /// From parsed certificates (at least one).
    pub fn new(certs: Vec<X509>) -> Result<Self> {
        if certs.is_empty() {
            return Err(Error::Config("no trust anchor".into()));
        }
        Ok(TrustAnchors(certs))
    }

    pub(crate) fn store(&self) -> Result<X509Store> {
        let mut b = X509StoreBuilder::new()?;
        for c in &self.0 {
            b.add_cert(c.clone())?;
        }
        Ok(b.build())
    }
}

impl fmt::Debug for TrustAnchors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TrustAnchors({} certificates)", self.0.len())
    }
}
