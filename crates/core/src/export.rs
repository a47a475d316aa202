//! RFC 5705 keying-material exports of TS-0003 §10.3.1 and how they are split.
//!
//! Every oneM2M export is 48 bytes, requested with **no context value** (BRIEF A2; OpenSSL
//! `use_context = 0`, matching `openssl s_client -keymatexport`). The 16 most significant bytes are
//! the identifier and the 32 least significant bytes are the key, reading the export as a
//! big-endian string (BRIEF A1): identifier = `out[0..16]`, key = `out[16..48]`.

use crate::secret::{Kc, Ke, PairwiseE2eKey, SecretLengthError};
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Length of every oneM2M export (TS-0003 §10.3.1).
pub const EXPORT_LEN: usize = 48;

/// The three exporter labels of TS-0003 §10.3.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExporterLabel {
    /// `EXPORTER-oneM2M-Bootstrap`: Enrolee↔MEF (PPSK or certificate RSPF, 8.6.2 TEF) → Ke, RelativeKeID.
    Bootstrap,
    /// `EXPORTER-oneM2M-Connection`: MAF Client↔MAF in MAF Key Registration (§8.8.2.7) → Kc, KcID.
    Connection,
    /// `EXPORTER-oneM2M-ESCertKE`: after ESCertKE (§8.7.2.2) → pairwiseE2EKey, pairwiseE2EKeyID.
    EsCertKe,
}

impl ExporterLabel {
    /// The exact ASCII label passed to the exporter.
    pub fn as_str(self) -> &'static str {
        match self {
            ExporterLabel::Bootstrap => "EXPORTER-oneM2M-Bootstrap",
            ExporterLabel::Connection => "EXPORTER-oneM2M-Connection",
            ExporterLabel::EsCertKe => "EXPORTER-oneM2M-ESCertKE",
        }
    }

    /// Parses one of the three exact labels.
    pub fn from_label(s: &str) -> Option<Self> {
        [Self::Bootstrap, Self::Connection, Self::EsCertKe]
            .into_iter()
            .find(|l| l.as_str() == s)
    }
}

/// 48 bytes of exported keying material (secret).
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct ExportedKeyingMaterial([u8; EXPORT_LEN]);

impl core::fmt::Debug for ExportedKeyingMaterial {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("ExportedKeyingMaterial(<redacted>)")
    }
}

impl ExportedKeyingMaterial {
    /// Wraps an export; it must be exactly 48 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SecretLengthError> {
        let arr: [u8; EXPORT_LEN] = bytes.try_into().map_err(|_| SecretLengthError::Fixed {
            name: "exported keying material",
            expected: EXPORT_LEN,
            got: bytes.len(),
        })?;
        Ok(Self(arr))
    }

    /// The raw export (for diagnostics such as `m2msec probe --print-export`).
    pub fn expose_secret(&self) -> &[u8; EXPORT_LEN] {
        &self.0
    }

    /// Splits per BRIEF A1: (32-byte key = bytes 16..48, 16-byte identifier = bytes 0..16).
    fn split(&self) -> ([u8; 32], [u8; 16]) {
        let mut key = [0u8; 32];
        let mut id = [0u8; 16];
        key.copy_from_slice(&self.0[16..]);
        id.copy_from_slice(&self.0[..16]);
        (key, id)
    }

    /// Ke and RelativeKeID from an `EXPORTER-oneM2M-Bootstrap` export (TS-0003 §10.3.1).
    pub fn split_enrolment(&self) -> (Ke, [u8; 16]) {
        let (mut k, id) = self.split();
        let ke = Ke::from_array(k);
        k.zeroize();
        (ke, id)
    }

    /// Kc and KcID from an `EXPORTER-oneM2M-Connection` export (TS-0003 §10.3.1).
    pub fn split_connection(&self) -> (Kc, [u8; 16]) {
        let (mut k, id) = self.split();
        let kc = Kc::from_array(k);
        k.zeroize();
        (kc, id)
    }

    /// pairwiseE2EKey and pairwiseE2EKeyID from an `EXPORTER-oneM2M-ESCertKE` export.
    pub fn split_escertke(&self) -> (PairwiseE2eKey, [u8; 16]) {
        let (mut k, id) = self.split();
        let key = PairwiseE2eKey::from_array(k);
        k.zeroize();
        (key, id)
    }
}
