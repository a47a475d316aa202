//! The IBC credential of seed 001 as both ends see it: the Enrolee validates what the MEF's PKG
//! extracted (RFC 6507 §5.1.2), and any verifier reads the expiry embedded in ID2 (BRIEF A32).
//!
//! This module belongs to neither side: the Enrolee ([`crate::enrolee`]), the MEF's endpoint and
//! tools that only verify use it without pulling in the other's code.

use m2msec_core::eccsi::{EccsiError, Kpak, Pvt, SigningKey};
use m2msec_core::timestamp::Timestamp;

use crate::wire::IbcCredential;

/// Why an IBC credential is refused.
#[derive(Debug, thiserror::Error)]
pub enum IbcError {
    /// Its expiry has passed (BRIEF A32).
    #[error("the IBC credential has expired")]
    Expired,
    /// ID2 is not `<MEF-FQDN>|<expiry>|<ID1>`.
    #[error("ID2 does not embed an expiry")]
    NoExpiryInId2,
    /// The expiry in ID2 differs from the credential's.
    #[error("ID2's embedded expiry differs from the credential's")]
    ExpiryMismatch,
    /// KPAK or PVT is not hex.
    #[error("{0}: not hex: {1}")]
    Hex(&'static str, #[source] hex::FromHexError),
    /// A point does not parse, or the SSK does not validate (RFC 6507 §5.1.2).
    #[error(transparent)]
    Eccsi(#[from] EccsiError),
}

/// Validates an IBC credential as the Enrolee does (RFC 6507 §5.1.2) and checks its expiry
/// against `now` (BRIEF A32: verifiers refuse an ID2 whose expiry has passed).
pub fn validate_ibc(cred: &IbcCredential, now: i64) -> Result<SigningKey, IbcError> {
    if cred.expiry.to_unix() <= now {
        return Err(IbcError::Expired);
    }
    let expiry_in_id = id2_expiry(&cred.id2).ok_or(IbcError::NoExpiryInId2)?;
    if expiry_in_id != cred.expiry {
        return Err(IbcError::ExpiryMismatch);
    }
    let kpak = Kpak::from_bytes(&hex::decode(&cred.kpak).map_err(|e| IbcError::Hex("kpak", e))?)?;
    let pvt = Pvt::from_bytes(&hex::decode(&cred.pvt).map_err(|e| IbcError::Hex("pvt", e))?)?;
    Ok(SigningKey::new(
        &kpak,
        cred.id2.as_bytes(),
        cred.ssk.clone(),
        pvt,
    )?)
}

/// The expiry embedded in an ID2 `<MEF-FQDN>|<expiry>|<ID1>` (BRIEF A32).
pub fn id2_expiry(id2: &str) -> Option<Timestamp> {
    let mut parts = id2.splitn(3, '|');
    let _fqdn = parts.next()?;
    let exp = parts.next()?;
    parts.next()?;
    exp.parse().ok()
}
