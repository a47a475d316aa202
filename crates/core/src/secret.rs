//! Secret key material.
//!
//! Every key of the TS-0003 key schedule has its own type, so a `Km` cannot be passed where a
//! `Kpsa` is expected. All of them:
//! - zeroize their bytes on drop ([`zeroize::ZeroizeOnDrop`]);
//! - print as `Name(<redacted>)` in `Debug` and have no `Display`;
//! - compare in constant time ([`subtle::ConstantTimeEq`]; `==` uses it too);
//! - expose their bytes only through an explicitly named method, `expose_secret`.
//!
//! [`SecretBytes`] is the same for a secret of no fixed role that crosses the wire (a registered
//! key value, a fetched credential): it (de)serialises as standard base64 and is typed at the
//! moment it is parsed, so the text never sits in a `String` field of a `Debug` type.

use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// A secret had the wrong length.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretLengthError {
    #[error("{name} must be {expected} bytes, got {got}")]
    Fixed {
        name: &'static str,
        expected: usize,
        got: usize,
    },
    #[error("{name} must be {min} to {max} bytes, got {got}")]
    Range {
        name: &'static str,
        min: usize,
        max: usize,
        got: usize,
    },
}

macro_rules! fixed_secret {
    ($(#[$doc:meta])* $name:ident, $len:expr) => {
        $(#[$doc])*
        #[derive(Clone, Zeroize, ZeroizeOnDrop)]
        pub struct $name([u8; $len]);

        impl $name {
            /// Length in bytes.
            pub const LEN: usize = $len;

            /// Takes ownership of the key bytes.
            pub fn from_array(bytes: [u8; $len]) -> Self {
                Self(bytes)
            }

            /// Copies a key from a slice, which must be exactly [`Self::LEN`] bytes.
            pub fn from_bytes(bytes: &[u8]) -> Result<Self, SecretLengthError> {
                let arr: [u8; $len] = bytes.try_into().map_err(|_| SecretLengthError::Fixed {
                    name: stringify!($name),
                    expected: $len,
                    got: bytes.len(),
                })?;
                Ok(Self(arr))
            }

            /// The key bytes. Callers must not log or persist them unencrypted.
            pub fn expose_secret(&self) -> &[u8; $len] {
                &self.0
            }
        }

        impl core::fmt::Debug for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str(concat!(stringify!($name), "(<redacted>)"))
            }
        }

        impl ConstantTimeEq for $name {
            fn ct_eq(&self, other: &Self) -> subtle::Choice {
                self.0.ct_eq(&other.0)
            }
        }

        impl PartialEq for $name {
            fn eq(&self, other: &Self) -> bool {
                bool::from(self.ct_eq(other))
            }
        }

        impl Eq for $name {}
    };
}

macro_rules! var_secret {
    ($(#[$doc:meta])* $name:ident, $min:expr, $max:expr) => {
        $(#[$doc])*
        #[derive(Clone, Zeroize, ZeroizeOnDrop)]
        pub struct $name(Vec<u8>);

        impl $name {
            /// Smallest accepted length in bytes.
            pub const MIN_LEN: usize = $min;
            /// Largest accepted length in bytes.
            pub const MAX_LEN: usize = $max;

            /// Copies a key from a slice of [`Self::MIN_LEN`]..=[`Self::MAX_LEN`] bytes.
            pub fn from_bytes(bytes: &[u8]) -> Result<Self, SecretLengthError> {
                if bytes.len() < $min || bytes.len() > $max {
                    return Err(SecretLengthError::Range {
                        name: stringify!($name),
                        min: $min,
                        max: $max,
                        got: bytes.len(),
                    });
                }
                Ok(Self(bytes.to_vec()))
            }

            /// The key bytes. Callers must not log or persist them unencrypted.
            pub fn expose_secret(&self) -> &[u8] {
                &self.0
            }
        }

        impl core::fmt::Debug for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str(concat!(stringify!($name), "(<redacted>)"))
            }
        }

        impl ConstantTimeEq for $name {
            fn ct_eq(&self, other: &Self) -> subtle::Choice {
                // Lengths are public (they are fixed by the configuration), contents are not.
                self.0.as_slice().ct_eq(other.0.as_slice())
            }
        }

        impl PartialEq for $name {
            fn eq(&self, other: &Self) -> bool {
                bool::from(self.ct_eq(other))
            }
        }

        impl Eq for $name {}
    };
}

/// Maximum PSK length accepted by OpenSSL (`PSK_MAX_PSK_LEN`), and so by every (D)TLS-PSK key here.
pub const MAX_PSK_LEN: usize = 512;

var_secret!(
    /// Kpm: the pre-provisioned symmetric key shared by an Enrolee and the MEF
    /// (TS-0003 §8.3.2.1, Table 9.2.1.1-1), used as the (D)TLS `psk` of the bootstrap handshake.
    Kpm, 16, MAX_PSK_LEN
);
var_secret!(
    /// Kpsa: the provisioned secure-connection key of the Provisioned Symmetric Key SAEF
    /// (TS-0003 §8.2.2.1, §10.3.3). Derived Kpsa is 32 bytes; a pre-provisioned one may differ.
    /// Seed 004's Kx is the same kind of key.
    Kpsa, 16, MAX_PSK_LEN
);
var_secret!(
    /// pairwiseESPrimKey: the long-term key between an ESPrim Originator and Receiver
    /// (TS-0003 §8.4.2 phase A), from pre-provisioning, an RSPF, ESCertKE or the MAF.
    PairwiseEsprimKey, 16, MAX_PSK_LEN
);
fixed_secret!(
    /// Ke: the Enrolment Key, the 32 least significant bytes of the `EXPORTER-oneM2M-Bootstrap`
    /// export (TS-0003 §10.3.1).
    Ke, 32
);
fixed_secret!(
    /// Kc: the connection key from the `EXPORTER-oneM2M-Connection` export (TS-0003 §10.3.1,
    /// §8.8.2.7), or self-generated.
    Kc, 32
);
fixed_secret!(
    /// pairwiseE2EKey: from the `EXPORTER-oneM2M-ESCertKE` export (TS-0003 §10.3.1, §8.7).
    PairwiseE2eKey, 32
);
fixed_secret!(
    /// Km: the Master Credential shared with a MAF (TS-0003 §10.3.2).
    Km, 32
);
fixed_secret!(
    /// A usage-constrained symmetric key bound to a SUID and an Enrolment Target (TS-0003 §10.3.7).
    UsageConstrainedKey, 32
);
fixed_secret!(
    /// Ke2e_master: HKDF-Extract(Salt, Kpsa) (TS-0003 §10.3.6.1).
    Ke2eMaster, 32
);
fixed_secret!(
    /// Ke2e_msg_auth: T(1) of TS-0003 §10.3.6.2 ("E2E Message Authentication Key").
    Ke2eMsgAuth, 32
);
fixed_secret!(
    /// Ke2e_msg_conf: T(2) of TS-0003 §10.3.6.2 ("E2E Message Confidentiality Key").
    Ke2eMsgConf, 32
);
fixed_secret!(
    /// Ke2e_att_auth: T(3) of TS-0003 §10.3.6.2 ("E2E Attribute Authenticity Key").
    Ke2eAttAuth, 32
);
fixed_secret!(
    /// Ke2e_att_conf: T(4) of TS-0003 §10.3.6.2 ("E2E Attribute Confidentiality Key").
    Ke2eAttConf, 32
);
fixed_secret!(
    /// sessionESPrimKey (TS-0003 §10.3.8.2): the JWE content-encryption key of ESPrim.
    SessionEsprimKey, 32
);
fixed_secret!(
    /// Ksx: a group member's secure-connection key with the IN-CSE (seed 002, NOTE 5).
    Ksx, 32
);
fixed_secret!(
    /// A key-encryption key: seals secrets at rest (the stores' "secure environment" with a
    /// file key; see [`crate::seal`]). Not part of TS-0003's key schedule.
    Kek, 32
);

/// Secret bytes of no fixed length or role, as carried on the wire (TS-0003 table 8.3.5.2.7-1
/// Key Value, tables 8.3.2.1-5/-6 Credential): zeroized on drop, `Debug` redacted, constant-time
/// equality, and serde as standard base64 (RFC 4648 §4) without line breaks.
///
/// Deserialising decodes straight from the borrowed text where the format allows it and wipes
/// an owned intermediate string otherwise.
#[derive(Clone, Default, Zeroize, ZeroizeOnDrop)]
pub struct SecretBytes(Vec<u8>);

impl SecretBytes {
    /// Copies `bytes`.
    pub fn from_slice(bytes: &[u8]) -> Self {
        Self(bytes.to_vec())
    }

    /// Takes ownership of `bytes` (already in a zeroizing buffer).
    pub fn from_zeroizing(mut bytes: zeroize::Zeroizing<Vec<u8>>) -> Self {
        Self(core::mem::take(&mut *bytes))
    }

    /// Decodes standard base64 (RFC 4648 §4).
    pub fn from_base64(text: &str) -> Result<Self, base64::DecodeError> {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map(|v| Self::from_zeroizing(zeroize::Zeroizing::new(v)))
    }

    /// Encodes as standard base64, in a zeroizing string.
    pub fn to_base64(&self) -> zeroize::Zeroizing<String> {
        use base64::Engine as _;
        zeroize::Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(&self.0))
    }

    /// Length in bytes (public: lengths are fixed by the protocol).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The bytes. Callers must not log or persist them unencrypted.
    pub fn expose_secret(&self) -> &[u8] {
        &self.0
    }
}

impl core::fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "SecretBytes(<redacted {} bytes>)", self.0.len())
    }
}

impl ConstantTimeEq for SecretBytes {
    fn ct_eq(&self, other: &Self) -> subtle::Choice {
        self.0.as_slice().ct_eq(other.0.as_slice())
    }
}

impl PartialEq for SecretBytes {
    fn eq(&self, other: &Self) -> bool {
        bool::from(self.ct_eq(other))
    }
}

impl Eq for SecretBytes {}

impl serde::Serialize for SecretBytes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_base64())
    }
}

impl<'de> serde::Deserialize<'de> for SecretBytes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = SecretBytes;
            fn expecting(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str("a base64 string")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<SecretBytes, E> {
                SecretBytes::from_base64(v).map_err(|_| E::custom("invalid base64"))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<SecretBytes, E> {
                let v = zeroize::Zeroizing::new(v);
                self.visit_str(&v)
            }
        }
        d.deserialize_str(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_bytes_base64_roundtrip_and_redaction() {
        let k = SecretBytes::from_slice(&[0x5a; 20]);
        let json = serde_json::to_string(&k).unwrap();
        assert_eq!(json, format!("\"{}\"", &*k.to_base64()));
        let back: SecretBytes = serde_json::from_str(&json).unwrap();
        assert_eq!(back, k);
        let back: SecretBytes =
            serde_json::from_value(serde_json::from_str(&json).unwrap()).unwrap();
        assert_eq!(back, k);
        assert_eq!(format!("{k:?}"), "SecretBytes(<redacted 20 bytes>)");
        assert!(serde_json::from_str::<SecretBytes>("\"not base64!\"").is_err());
        assert!(serde_json::from_str::<SecretBytes>("12").is_err());
    }

    #[test]
    fn debug_is_redacted() {
        let ke = Ke::from_array([0xab; 32]);
        let s = format!("{ke:?}");
        assert_eq!(s, "Ke(<redacted>)");
        let kpsa = Kpsa::from_bytes(&[0xcd; 32]).unwrap();
        assert_eq!(format!("{kpsa:?}"), "Kpsa(<redacted>)");
    }

    #[test]
    fn equality_and_lengths() {
        assert_eq!(Ke::from_array([1; 32]), Ke::from_array([1; 32]));
        assert_ne!(Ke::from_array([1; 32]), Ke::from_array([2; 32]));
        assert!(Ke::from_bytes(&[0; 31]).is_err());
        assert!(Kpsa::from_bytes(&[0; 15]).is_err());
        assert!(Kpsa::from_bytes(&[0; 513]).is_err());
        assert_ne!(
            Kpsa::from_bytes(&[0; 16]).unwrap(),
            Kpsa::from_bytes(&[0; 17]).unwrap()
        );
    }
}
