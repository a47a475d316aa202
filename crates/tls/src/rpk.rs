//! RFC 7250 raw public keys, identified by their RFC 6920 digest (TS-0003 §8.1.2.x, BRIEF §2.1,
//! §6 check 18).
//!
//! A raw-key peer is authenticated by comparing `ni:///sha-256;<base64url>` (or the truncated
//! `sha-256-128` / `sha-256-120` forms) over its DER SubjectPublicKeyInfo with the configured
//! identifier; the key must be P-256. The SA binds to Credential-ID `30-<pkID>`. Raw keys need
//! OpenSSL >= 3.2: the default `vendored` build has it; with the system library the
//! configuration is refused with [`Error::Config`] saying so.

use std::fmt;

use openssl::hash::{hash, MessageDigest};
use openssl::pkey::PKey;

use crate::error::{Error, Result};

/// Whether this build supports raw public keys (OpenSSL >= 3.2).
pub const SUPPORTED: bool = cfg!(m2msec_rpk);

/// The refusal when raw keys are configured without OpenSSL >= 3.2.
#[cfg_attr(m2msec_rpk, allow(dead_code))]
pub(crate) fn unsupported() -> Error {
    Error::Config(
        "raw public keys (RFC 7250) need OpenSSL >= 3.2: build m2msec-tls with the default \
         `vendored` feature"
            .into(),
    )
}

/// Digest algorithm of an RFC 6920 public-key identifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PkIdAlg {
    /// `sha-256`: 32 bytes.
    Sha256,
    /// `sha-256-128`: first 16 bytes.
    Sha256_128,
    /// `sha-256-120`: first 15 bytes.
    Sha256_120,
}

impl PkIdAlg {
    fn name(self) -> &'static str {
        match self {
            PkIdAlg::Sha256 => "sha-256",
            PkIdAlg::Sha256_128 => "sha-256-128",
            PkIdAlg::Sha256_120 => "sha-256-120",
        }
    }

    fn len(self) -> usize {
        match self {
            PkIdAlg::Sha256 => 32,
            PkIdAlg::Sha256_128 => 16,
            PkIdAlg::Sha256_120 => 15,
        }
    }
}

/// An RFC 6920 named-information identifier of a public key (`ni:///sha-256;…`).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PkId {
    alg: PkIdAlg,
    digest: Vec<u8>,
}

fn b64url(bytes: &[u8]) -> String {
    openssl::base64::encode_block(bytes)
        .trim_end_matches('=')
        .replace('+', "-")
        .replace('/', "_")
}

fn unb64url(s: &str) -> Option<Vec<u8>> {
    if s.is_empty()
        || !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return None;
    }
    let mut std = s.replace('-', "+").replace('_', "/");
    while std.len() % 4 != 0 {
        std.push('=');
    }
    openssl::base64::decode_block(&std).ok()
}

impl PkId {
    /// Parse `ni:///ALG;VALUE` (an authority between `//` and `/` is allowed and ignored).
    pub fn parse(s: &str) -> Result<Self> {
        let bad = || {
            Error::Config(format!(
                "{s:?} is not an RFC 6920 ni:///sha-256;… identifier"
            ))
        };
        let rest = s.strip_prefix("ni://").ok_or_else(bad)?;
        let (_authority, rest) = rest.split_once('/').ok_or_else(bad)?;
        let (alg, value) = rest.split_once(';').ok_or_else(bad)?;
        let alg = match alg {
            "sha-256" => PkIdAlg::Sha256,
            "sha-256-128" => PkIdAlg::Sha256_128,
            "sha-256-120" => PkIdAlg::Sha256_120,
            _ => return Err(bad()),
        };
        let digest = unb64url(value).ok_or_else(bad)?;
        if digest.len() != alg.len() {
            return Err(bad());
        }
        Ok(PkId { alg, digest })
    }

    /// The identifier of a DER SubjectPublicKeyInfo.
    pub fn of_spki(spki_der: &[u8], alg: PkIdAlg) -> Result<Self> {
        let d = hash(MessageDigest::sha256(), spki_der)?;
        Ok(PkId {
            alg,
            digest: d[..alg.len()].to_vec(),
        })
    }

    /// Whether `spki_der` has this identifier.
    pub fn matches(&self, spki_der: &[u8]) -> bool {
        PkId::of_spki(spki_der, self.alg)
            .is_ok_and(|p| openssl::memcmp::eq(&p.digest, &self.digest))
    }

    /// The algorithm.
    pub fn alg(&self) -> PkIdAlg {
        self.alg
    }
}

impl fmt::Display for PkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ni:///{};{}", self.alg.name(), b64url(&self.digest))
    }
}

impl fmt::Debug for PkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PkId({self})")
    }
}

/// Check a peer raw key: P-256 as an uncompressed point and one of the expected identifiers. Returns the matching id.
#[cfg_attr(not(m2msec_rpk), allow(dead_code))]
pub(crate) fn check_raw_key(spki_der: &[u8], expected: &[PkId]) -> Option<PkId> {
    let key = PKey::public_key_from_der(spki_der).ok()?;
    let p256 = key
        .ec_key()
        .ok()
        .and_then(|k| k.group().curve_name())
        .is_some_and(|n| n == openssl::nid::Nid::X9_62_PRIME256V1);
    // RFC 8422 §5.1.2: only the uncompressed point form; a P-256 SubjectPublicKeyInfo with
    // an uncompressed point is 91 bytes ending in 0x04 ‖ X ‖ Y.
    let uncompressed = spki_der.len() == 91 && spki_der[spki_der.len() - 65] == 0x04;
    if !p256 || !uncompressed {
        return None;
    }
    expected.iter().find(|e| e.matches(spki_der)).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6920_round_trip_and_truncation() {
        let spki = b"not really DER, but hashing does not care";
        let id = PkId::of_spki(spki, PkIdAlg::Sha256).unwrap();
        let text = id.to_string();
        assert!(text.starts_with("ni:///sha-256;"));
        let value = text.split_once(';').unwrap().1;
        assert!(!value.contains(['=', '+', '/']), "{text}");
        assert_eq!(PkId::parse(&text).unwrap(), id);
        assert!(id.matches(spki));
        assert!(!id.matches(b"other"));
        let short = PkId::of_spki(spki, PkIdAlg::Sha256_120).unwrap();
        assert_eq!(
            PkId::parse(&short.to_string()).unwrap().alg(),
            PkIdAlg::Sha256_120
        );
        assert!(PkId::parse("ni:///sha-1;AAAA").is_err());
        assert!(PkId::parse("ni:///sha-256;AAAA").is_err(), "wrong length");
        assert!(PkId::parse("http://x/sha-256;AAAA").is_err());
        assert!(PkId::parse("ni://example.com/sha-256;").is_err());
    }

    #[test]
    #[cfg(feature = "vendored")]
    fn vendored_build_supports_raw_keys() {
        const { assert!(SUPPORTED, "the vendored OpenSSL is >= 3.2") }
    }

    #[test]
    fn compressed_raw_keys_are_refused() {
        let group =
            openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1).unwrap();
        let key = openssl::ec::EcKey::generate(&group).unwrap();
        let spki = PKey::from_ec_key(key.clone())
            .unwrap()
            .public_key_to_der()
            .unwrap();
        let id = PkId::of_spki(&spki, PkIdAlg::Sha256).unwrap();
        assert!(check_raw_key(&spki, std::slice::from_ref(&id)).is_some());
        let mut ctx = openssl::bn::BigNumContext::new().unwrap();
        let point = key
            .public_key()
            .to_bytes(
                &group,
                openssl::ec::PointConversionForm::COMPRESSED,
                &mut ctx,
            )
            .unwrap();
        let mut compressed = spki[..23].to_vec(); // AlgorithmIdentifier, unchanged
        compressed[1] = 0x39;
        compressed.extend_from_slice(&[0x03, 0x22, 0x00]);
        compressed.extend_from_slice(&point);
        assert!(PKey::public_key_from_der(&compressed).is_ok());
        let cid = PkId::of_spki(&compressed, PkIdAlg::Sha256).unwrap();
        assert!(check_raw_key(&compressed, &[cid]).is_none());
    }

    /// RFC 6920 §3 example: "Hello World!" → ni:///sha-256;f4OxZX_x_FO5LcGBSKHWXfwtSx-j1ncoSt3SABJtkGk
    #[test]
    fn rfc6920_example_vector() {
        let id = PkId::of_spki(b"Hello World!", PkIdAlg::Sha256).unwrap();
        assert_eq!(
            id.to_string(),
            "ni:///sha-256;f4OxZX_x_FO5LcGBSKHWXfwtSx-j1ncoSt3SABJtkGk"
        );
    }
}
