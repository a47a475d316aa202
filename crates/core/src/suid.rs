//! `m2m:suid`, the Security Usage Identifier (TS-0004 §6.3.4.2.39, table 6.3.4.2.39-1).
//!
//! A SUID binds a credential to a kind and a scope: it selects which key a MEF serves
//! (`/fetchCredentials/<KeID>/<SUID>`, TS-0003 §8.3.2.1), it is an input of the usage-constrained
//! key derivation (TS-0003 §10.3.7, encoded as ASCII decimal per BRIEF A7), and it appears in
//! `sec:keyRegCfg` and `sec:authProfileMONodeArgs` (TS-0003 §12.4.3, §12.4.10).
//!
//! The value is two decimal digits: the first is the credential kind, the second the scope
//! (TS-0004 §6.3.4.2.39 NOTE). Only the 21 values of table 6.3.4.2.39-1 (TS-0004 V3.32.0) are
//! defined: 10–15, 21–25, 32–35 and 40–45. There is no 20 (an RSPF key shared with a MEF is
//! the MEF's own business), and no 30/31 (a MAF-distributed key cannot be meant for a MEF or a
//! MAF), even though TS-0003 §8.3.9.9.2 lists 31 in the set {11, 21, 31, 41}.

use core::fmt;
use core::str::FromStr;

use serde::{Deserialize, Serialize};

/// Why a number or a text is not a defined `m2m:suid`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SuidError {
    /// A number outside the defined set of TS-0004 table 6.3.4.2.39-1.
    #[error("m2m:suid: {0} is not a defined SUID (TS-0004 table 6.3.4.2.39-1 defines 10-15, 21-25, 32-35, 40-45)")]
    Undefined(i64),
    /// Text that is not a canonical decimal number (digits only, no sign, no leading zero).
    #[error("m2m:suid: expected a decimal number such as 22")]
    Syntax,
}

/// First digit of a SUID: what kind of credential it is (TS-0004 §6.3.4.2.39 NOTE).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum SuidKind {
    /// 1x: a pre-provisioned symmetric key.
    PreProvisionedSymmetric = 1,
    /// 2x: a symmetric key provisioned via a Remote Security Provisioning Framework (RSPF).
    RspfSymmetric = 2,
    /// 3x: a symmetric key distributed via a MAF.
    MafDistributedSymmetric = 3,
    /// 4x: a certificate.
    Certificate = 4,
}

/// Second digit of a SUID: where the credential is to be used (TS-0004 §6.3.4.2.39 NOTE).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum SuidScope {
    /// x0: shared with a MEF.
    Mef = 0,
    /// x1: shared with a MAF.
    Maf = 1,
    /// x2: a Security Association Establishment Framework (SAEF).
    Saef = 2,
    /// x3: End-to-End Security of Primitives (ESPrim).
    EsPrim = 3,
    /// x4: authenticated encryption in the Encryption-only or Nested Sign-then-Encrypt ESData
    /// classes.
    EsDataEncryption = 4,
    /// x5: the Signature-only ESData class.
    EsDataSignature = 5,
}

/// A defined `m2m:suid` value (TS-0004 §6.3.4.2.39). Serialised as a JSON number and written as
/// ASCII decimal text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Suid(u8);

impl Suid {
    /// 10: a pre-provisioned symmetric key intended to be shared with a MEF.
    pub const PRE_PROVISIONED_MEF: Suid = Suid(10);
    /// 11: a pre-provisioned symmetric key intended to be shared with a MAF.
    pub const PRE_PROVISIONED_MAF: Suid = Suid(11);
    /// 12: a pre-provisioned symmetric key intended for use in a SAEF.
    pub const PRE_PROVISIONED_SAEF: Suid = Suid(12);
    /// 13: a pre-provisioned symmetric key intended for use in ESPrim.
    pub const PRE_PROVISIONED_ESPRIM: Suid = Suid(13);
    /// 14: a pre-provisioned symmetric key for authenticated encryption in ESData.
    pub const PRE_PROVISIONED_ESDATA_ENCRYPTION: Suid = Suid(14);
    /// 15: a pre-provisioned symmetric key for the Signature-only ESData class.
    pub const PRE_PROVISIONED_ESDATA_SIGNATURE: Suid = Suid(15);
    /// 21: a symmetric key provisioned via an RSPF, intended to be shared with a MAF.
    pub const RSPF_MAF: Suid = Suid(21);
    /// 22: a symmetric key provisioned via an RSPF, intended for use in a SAEF.
    pub const RSPF_SAEF: Suid = Suid(22);
    /// 23: a symmetric key provisioned via an RSPF, intended for use in ESPrim.
    pub const RSPF_ESPRIM: Suid = Suid(23);
    /// 24: a symmetric key provisioned via an RSPF, for authenticated encryption in ESData.
    pub const RSPF_ESDATA_ENCRYPTION: Suid = Suid(24);
    /// 25: a symmetric key provisioned via an RSPF, for the Signature-only ESData class.
    pub const RSPF_ESDATA_SIGNATURE: Suid = Suid(25);
    /// 32: a MAF-distributed symmetric key intended for use in a SAEF.
    pub const MAF_DISTRIBUTED_SAEF: Suid = Suid(32);
    /// 33: a MAF-distributed symmetric key intended for use in ESPrim.
    pub const MAF_DISTRIBUTED_ESPRIM: Suid = Suid(33);
    /// 34: a MAF-distributed symmetric key for authenticated encryption in ESData.
    pub const MAF_DISTRIBUTED_ESDATA_ENCRYPTION: Suid = Suid(34);
    /// 35: a MAF-distributed symmetric key for the Signature-only ESData class.
    pub const MAF_DISTRIBUTED_ESDATA_SIGNATURE: Suid = Suid(35);
    /// 40: a certificate intended to be shared with a MEF.
    pub const CERTIFICATE_MEF: Suid = Suid(40);
    /// 41: a certificate intended to be shared with a MAF.
    pub const CERTIFICATE_MAF: Suid = Suid(41);
    /// 42: a certificate intended for use in a SAEF.
    pub const CERTIFICATE_SAEF: Suid = Suid(42);
    /// 43: a certificate intended for use in ESPrim.
    pub const CERTIFICATE_ESPRIM: Suid = Suid(43);
    /// 44: a certificate for authenticated encryption in ESData.
    pub const CERTIFICATE_ESDATA_ENCRYPTION: Suid = Suid(44);
    /// 45: a certificate for the Signature-only ESData class.
    pub const CERTIFICATE_ESDATA_SIGNATURE: Suid = Suid(45);

    /// Every defined value, ascending (TS-0004 table 6.3.4.2.39-1).
    pub const ALL: [Suid; 21] = [
        Suid(10),
        Suid(11),
        Suid(12),
        Suid(13),
        Suid(14),
        Suid(15),
        Suid(21),
        Suid(22),
        Suid(23),
        Suid(24),
        Suid(25),
        Suid(32),
        Suid(33),
        Suid(34),
        Suid(35),
        Suid(40),
        Suid(41),
        Suid(42),
        Suid(43),
        Suid(44),
        Suid(45),
    ];

    /// Whether `value` is defined in TS-0004 table 6.3.4.2.39-1.
    pub const fn is_defined(value: u8) -> bool {
        matches!(value, 10..=15 | 21..=25 | 32..=35 | 40..=45)
    }

    /// The SUID with this value, if it is defined.
    pub const fn new(value: u8) -> Result<Suid, SuidError> {
        if Self::is_defined(value) {
            Ok(Suid(value))
        } else {
            Err(SuidError::Undefined(value as i64))
        }
    }

    /// The SUID for a kind and a scope, if that combination is defined.
    pub const fn from_parts(kind: SuidKind, scope: SuidScope) -> Result<Suid, SuidError> {
        Self::new(kind as u8 * 10 + scope as u8)
    }

    /// The numeric value.
    pub const fn value(self) -> u8 {
        self.0
    }

    /// The credential kind (first digit).
    pub const fn kind(self) -> SuidKind {
        match self.0 / 10 {
            1 => SuidKind::PreProvisionedSymmetric,
            2 => SuidKind::RspfSymmetric,
            3 => SuidKind::MafDistributedSymmetric,
            // Only 4x remains among the defined values.
            _ => SuidKind::Certificate,
        }
    }

    /// The scope (second digit).
    pub const fn scope(self) -> SuidScope {
        match self.0 % 10 {
            0 => SuidScope::Mef,
            1 => SuidScope::Maf,
            2 => SuidScope::Saef,
            3 => SuidScope::EsPrim,
            4 => SuidScope::EsDataEncryption,
            // Only x5 remains among the defined values.
            _ => SuidScope::EsDataSignature,
        }
    }

    /// Whether the credential is a symmetric key (kinds 1, 2 and 3).
    pub const fn is_symmetric(self) -> bool {
        !matches!(self.kind(), SuidKind::Certificate)
    }
}

impl TryFrom<u8> for Suid {
    type Error = SuidError;
    fn try_from(v: u8) -> Result<Self, Self::Error> {
        Suid::new(v)
    }
}

impl TryFrom<i64> for Suid {
    type Error = SuidError;
    fn try_from(v: i64) -> Result<Self, Self::Error> {
        u8::try_from(v)
            .map_err(|_| SuidError::Undefined(v))
            .and_then(Suid::new)
    }
}

impl From<Suid> for u8 {
    fn from(s: Suid) -> u8 {
        s.0
    }
}

impl fmt::Display for Suid {
    /// ASCII decimal, e.g. `22` (the encoding used in the TS-0003 §10.3.7 KDF input, BRIEF A7).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for Suid {
    type Err = SuidError;
    /// Canonical decimal text only: ASCII digits, no sign, no leading zero, no spaces.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let b = s.as_bytes();
        if b.is_empty()
            || b.len() > 3
            || !b.iter().all(u8::is_ascii_digit)
            || b.first() == Some(&b'0')
        {
            return Err(SuidError::Syntax);
        }
        let v = b
            .iter()
            .fold(0i64, |acc, &d| acc * 10 + i64::from(d - b'0'));
        Suid::try_from(v)
    }
}

impl Serialize for Suid {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u8(self.0)
    }
}

impl<'de> Deserialize<'de> for Suid {
    /// Accepts a JSON integer only (not a string, not a float).
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let v = i64::deserialize(deserializer)?;
        Suid::try_from(v).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_agree_with_value() {
        for s in Suid::ALL {
            assert_eq!(Suid::from_parts(s.kind(), s.scope()), Ok(s));
        }
        assert!(Suid::from_parts(SuidKind::RspfSymmetric, SuidScope::Mef).is_err());
        assert!(Suid::from_parts(SuidKind::MafDistributedSymmetric, SuidScope::Maf).is_err());
    }

    #[test]
    fn text_is_canonical() {
        assert_eq!("22".parse::<Suid>(), Ok(Suid::RSPF_SAEF));
        for bad in ["", "022", "+22", "22 ", "2x", "1000", "-1", "0"] {
            assert!(bad.parse::<Suid>().is_err(), "{bad:?}");
        }
    }
}
