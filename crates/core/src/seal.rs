//! Secrets at rest: AES-256-GCM under a key-encryption key ([`Kek`]), with the record's
//! identity as associated data, so a sealed value copied to another row or file fails to open.
//!
//! Format (version 1): `0x01 ‖ nonce (12 bytes) ‖ ciphertext ‖ tag (16 bytes)`. The nonce is
//! passed in (this crate does no I/O and has no randomness of its own): callers draw 12 fresh
//! random bytes per seal. With random nonces one KEK stays within NIST SP 800-38D's limit for
//! 2^32 seals.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use zeroize::Zeroizing;

pub use crate::secret::Kek;

/// Version octet of the sealed format.
pub const SEAL_V1: u8 = 1;
/// Nonce length.
pub const NONCE_LEN: usize = 12;
/// Overhead of a sealed value over its plaintext.
pub const OVERHEAD: usize = 1 + NONCE_LEN + 16;

/// A sealed value could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// Too short or an unknown version.
    #[error("sealed value is malformed")]
    Malformed,
    /// Wrong key, wrong associated data, or tampered bytes.
    #[error("sealed value does not authenticate (wrong key-encryption key, or tampered)")]
    Authentication,
}

/// Seals `plaintext` bound to `aad` (e.g. the table and key identifier).
pub fn seal(kek: &Kek, aad: &[u8], nonce: [u8; NONCE_LEN], plaintext: &[u8]) -> Vec<u8> {
    let cipher = Aes256Gcm::new(kek.expose_secret().into());
    let ct = cipher
        .encrypt(
            &Nonce::from(nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        // Encryption fails only for plaintexts over 64 GiB.
        .unwrap_or_default();
    let mut out = Vec::with_capacity(OVERHEAD + plaintext.len());
    out.push(SEAL_V1);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    out
}

/// Opens a value sealed by [`seal`] with the same `kek` and `aad`.
pub fn open(kek: &Kek, aad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, SealError> {
    if sealed.len() < OVERHEAD || sealed[0] != SEAL_V1 {
        return Err(SealError::Malformed);
    }
    let cipher = Aes256Gcm::new(kek.expose_secret().into());
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&sealed[1..1 + NONCE_LEN]);
    cipher
        .decrypt(
            &Nonce::from(nonce),
            Payload {
                msg: &sealed[1 + NONCE_LEN..],
                aad,
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| SealError::Authentication)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kek(b: u8) -> Kek {
        Kek::from_array([b; 32])
    }

    #[test]
    fn round_trip_and_binding() {
        let s = seal(&kek(1), b"ke/abc", [7; 12], b"secret key bytes");
        assert_eq!(s.len(), OVERHEAD + 16);
        assert_eq!(
            &open(&kek(1), b"ke/abc", &s).unwrap()[..],
            b"secret key bytes"
        );
        assert_eq!(open(&kek(2), b"ke/abc", &s), Err(SealError::Authentication));
        assert_eq!(open(&kek(1), b"ke/abd", &s), Err(SealError::Authentication));
        for i in 0..s.len() {
            let mut t = s.clone();
            t[i] ^= 1;
            assert!(open(&kek(1), b"ke/abc", &t).is_err(), "flip at {i}");
        }
        assert_eq!(
            open(&kek(1), b"", &s[..OVERHEAD - 1]),
            Err(SealError::Malformed)
        );
    }

    /// NIST GCM test vector (gcmEncryptExtIV256.rsp, Count 0 with 128-bit PT and no AAD is
    /// not in the short list, so use the McGrew–Viega test case 14: K = 0^256, IV = 0^96,
    /// P = 0^128 → C = cea7403d4d606b6e074ec5d3baf39d18, T = d0d1c8a799996bf0265b98b5d48ab919).
    #[test]
    fn gcm_reference_vector() {
        let s = seal(&Kek::from_array([0; 32]), b"", [0; 12], &[0; 16]);
        assert_eq!(
            hex::encode(&s[1 + NONCE_LEN..]),
            "cea7403d4d606b6e074ec5d3baf39d18d0d1c8a799996bf0265b98b5d48ab919"
        );
    }
}
