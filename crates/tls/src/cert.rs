//! Certificate credentials and peer-certificate checks (TS-0003 §8.1.2, §10.1.1; BRIEF §2.5).
//!
//! * Our own credential: a P-256 private key and its certificate chain ([`CertCredential`]).
//! * Trust anchors ([`TrustAnchors`]): the only roots a chain may lead to; the system's default
//!   CA paths are never consulted.
//! * The peer's leaf certificate must carry a P-256 key encoded as an uncompressed point
//!   (RFC 8422 §5.1.2: compressed points are refused), keyUsage with digitalSignature, no
//!   wildcard dNSName, and a SubjectAltName exactly equal to one configured [`ExpectedName`]
//!   (CSE public domain name or MEF/MAF FQDN as dNSName, Absolute AE-ID as URI, Node-ID).
//!   OpenSSL does RFC 5280 path validation (signatures, validity period, CA flags) against the
//!   anchors.
//!
//! Node-ID certificates (TS-0003 §10.1.1.8) carry "the Node-ID as defined in TS-0001" in the
//! subjectAltName without fixing the name type. An OID-based Node-ID (TS-0001 Annex H) is read
//! from an otherName the way TS-0003 §10.1.1.x describes it for OID-based identifiers: type-id =
//! the higher arc, value = the remaining arcs (a RELATIVE-OID, or their dotted text as a
//! UTF8String/IA5String/PrintableString), so `type-id.value` must equal the Node-ID; any other
//! Node-ID (e.g. an IMEI-based one) is read from an otherName whose value is that text, or from
//! a uniformResourceIdentifier. Matching is exact; the SA binds to Credential-ID `34-<Node-ID>`.

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
    /// A Node-ID (TS-0003 §10.1.1.8): an otherName (OID-based, see the module docs) or a
    /// uniformResourceIdentifier equal to it (byte-exact). Binds to Credential-ID `34-<Node-ID>`.
    NodeId(String),
}

impl ExpectedName {
    pub(crate) fn matches(&self, san: &SanEntry) -> bool {
        match (self, san) {
            (ExpectedName::Dns(e), SanEntry::Dns(s)) => e.eq_ignore_ascii_case(s),
            (ExpectedName::Uri(e), SanEntry::Uri(s)) => e == s,
            (ExpectedName::NodeId(e), SanEntry::Uri(s) | SanEntry::OtherName(s)) => e == s,
            _ => false,
        }
    }

    /// The name text.
    pub fn as_str(&self) -> &str {
        match self {
            ExpectedName::Dns(s) | ExpectedName::Uri(s) | ExpectedName::NodeId(s) => s,
        }
    }
}

/// One SubjectAltName entry we understand.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum SanEntry {
    Dns(String),
    Uri(String),
    /// An otherName as Node-ID text: `type-id.arcs` for a RELATIVE-OID value or a value that
    /// is dotted digits, else the string value itself.
    OtherName(String),
}

impl SanEntry {
    pub(crate) fn value(&self) -> &str {
        match self {
            SanEntry::Dns(s) | SanEntry::Uri(s) | SanEntry::OtherName(s) => s,
        }
    }
}

/// Decode a DER RELATIVE-OID's contents to dotted arcs.
fn relative_oid_arcs(content: &[u8]) -> Option<String> {
    let mut arcs = Vec::new();
    let mut acc: u64 = 0;
    let mut pending = false;
    for &b in content {
        if !pending && b == 0x80 {
            return None; // non-minimal encoding
        }
        acc = acc.checked_mul(128)? | u64::from(b & 0x7f);
        pending = b & 0x80 != 0;
        if !pending {
            arcs.push(acc.to_string());
            acc = 0;
        }
    }
    if pending || arcs.is_empty() {
        return None;
    }
    Some(arcs.join("."))
}

/// The Node-ID text of an otherName (type-id in dotted form, value as DER), if its value is a
/// RELATIVE-OID or a string type.
pub(crate) fn other_name_text(type_id: &str, value_der: &[u8]) -> Option<String> {
    let (&tag, rest) = value_der.split_first()?;
    let (&len0, rest) = rest.split_first()?;
    let (len, body) = match len0 {
        l if l < 0x80 => (usize::from(l), rest),
        0x81 => {
            let (&l, r) = rest.split_first()?;
            (usize::from(l), r)
        }
        0x82 => {
            let l = usize::from(*rest.first()?) << 8 | usize::from(*rest.get(1)?);
            (l, rest.get(2..)?)
        }
        _ => return None,
    };
    if body.len() != len {
        return None;
    }
    match tag {
        // RELATIVE-OID: the remaining arcs below the type-id.
        0x0d => relative_oid_arcs(body).map(|arcs| format!("{type_id}.{arcs}")),
        // UTF8String, PrintableString, IA5String.
        0x0c | 0x13 | 0x16 => {
            let text = std::str::from_utf8(body).ok()?;
            let dotted = !text.is_empty()
                && text
                    .split('.')
                    .all(|a| !a.is_empty() && a.bytes().all(|b| b.is_ascii_digit()));
            Some(if dotted {
                format!("{type_id}.{text}")
            } else {
                text.to_string()
            })
        }
        _ => None,
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
            } else if let Some(text) =
                crate::ffi::other_name(n).and_then(|(oid, der)| other_name_text(&oid, &der))
            {
                v.push(SanEntry::OtherName(text));
            }
        }
    }
    v
}

/// Whether the certificate's subjectPublicKey is an uncompressed P-256 point (0x04 ‖ X ‖ Y).
fn is_uncompressed_p256_point(cert: &X509Ref) -> bool {
    crate::ffi::cert_public_key_bits(cert).is_some_and(|b| b.len() == 65 && b[0] == 0x04)
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
    CompressedPoint,
    NoDigitalSignature,
    Wildcard,
    NameMismatch,
}

impl fmt::Display for LeafProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LeafProblem::NotP256 => "peer key is not P-256",
            LeafProblem::CompressedPoint => "peer P-256 key is not an uncompressed point",
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
    if !is_uncompressed_p256_point(cert) {
        return Err(LeafProblem::CompressedPoint);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_name_node_id_text() {
        // RELATIVE-OID 7.42.9001 below type-id 1.2.410.200005.1.
        let rel = [0x0d, 0x04, 0x07, 0x2a, 0xc6, 0x29];
        assert_eq!(
            other_name_text("1.2.410.200005.1", &rel).as_deref(),
            Some("1.2.410.200005.1.7.42.9001")
        );
        // The same arcs as UTF8String text.
        let utf8 = [
            0x0c, 0x09, b'7', b'.', b'4', b'2', b'.', b'9', b'0', b'0', b'1',
        ];
        assert_eq!(
            other_name_text("1.2.410.200005.1", &utf8).as_deref(),
            Some("1.2.410.200005.1.7.42.9001")
        );
        // A non-OID value stays as it is.
        let ia5 = [0x16, 0x04, b'n', b'o', b'd', b'e'];
        assert_eq!(other_name_text("1.2.3", &ia5).as_deref(), Some("node"));
        // Malformed: truncated arc, non-minimal arc, wrong length, other types.
        assert_eq!(other_name_text("1.2.3", &[0x0d, 0x01, 0x86]), None);
        assert_eq!(other_name_text("1.2.3", &[0x0d, 0x02, 0x80, 0x01]), None);
        assert_eq!(other_name_text("1.2.3", &[0x0d, 0x03, 0x01]), None);
        assert_eq!(other_name_text("1.2.3", &[0x04, 0x01, 0x01]), None);
    }

    #[test]
    fn node_id_matches_exactly() {
        let e = ExpectedName::NodeId("1.2.3.4".into());
        assert!(e.matches(&SanEntry::OtherName("1.2.3.4".into())));
        assert!(e.matches(&SanEntry::Uri("1.2.3.4".into())));
        assert!(!e.matches(&SanEntry::OtherName("1.2.3.40".into())));
        assert!(!e.matches(&SanEntry::Dns("1.2.3.4".into())));
    }
}
