//! Identifiers of TS-0003 §10.4–§10.6 and TS-0004 §6.2.3, as validated newtypes.
//!
//! Every type validates on construction (`FromStr`) and formats back to its canonical text
//! (`Display`); serde uses the same text. Canonical forms follow BRIEF §2.4 and choice A4: hex is
//! emitted in lowercase and parsed case-insensitively, FQDNs of key identifiers are emitted in
//! lowercase, and the stray trailing ':' that TS-0003 §10.3.4 shows after KeID is not part of it.

use core::fmt;
use core::str::FromStr;

/// Why an identifier was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("{kind}: empty")]
    Empty { kind: &'static str },
    #[error("{kind}: too long ({len} bytes, at most {max})")]
    TooLong {
        kind: &'static str,
        len: usize,
        max: usize,
    },
    #[error("{kind}: invalid character {ch:?} at byte {pos}")]
    BadChar {
        kind: &'static str,
        ch: char,
        pos: usize,
    },
    #[error("{kind}: {reason}")]
    Malformed {
        kind: &'static str,
        reason: &'static str,
    },
}

fn malformed(kind: &'static str, reason: &'static str) -> IdError {
    IdError::Malformed { kind, reason }
}

macro_rules! string_serde {
    ($t:ty) => {
        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

// ---------------------------------------------------------------------------------------------
// FQDN
// ---------------------------------------------------------------------------------------------

/// A fully qualified domain name (RFC 1123 host name syntax), stored in lowercase.
///
/// Used for the MEF, MAF and issuer FQDNs in key identifiers and for SNI. Input is accepted in any
/// case (DNS names are case-insensitive) and normalised to lowercase (BRIEF A4). A trailing dot,
/// empty labels, labels over 63 bytes, names over 253 bytes, underscores and IPv4 literals are
/// rejected (SNI must not be an IP address, RFC 6066 §3).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fqdn(String);

impl Fqdn {
    /// The name, lowercase.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Fqdn {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        const K: &str = "FQDN";
        if s.is_empty() {
            return Err(IdError::Empty { kind: K });
        }
        if s.len() > 253 {
            return Err(IdError::TooLong {
                kind: K,
                len: s.len(),
                max: 253,
            });
        }
        if let Some((pos, ch)) = s
            .char_indices()
            .find(|(_, c)| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '.'))
        {
            return Err(IdError::BadChar { kind: K, ch, pos });
        }
        for label in s.split('.') {
            if label.is_empty() {
                return Err(malformed(K, "empty label"));
            }
            if label.len() > 63 {
                return Err(malformed(K, "label longer than 63 characters"));
            }
            if label.starts_with('-') || label.ends_with('-') {
                return Err(malformed(K, "label starts or ends with '-'"));
            }
        }
        if s.parse::<std::net::Ipv4Addr>().is_ok()
            || s.split('.').all(|l| l.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(malformed(K, "an IP address is not an FQDN"));
        }
        Ok(Fqdn(s.to_ascii_lowercase()))
    }
}

impl fmt::Display for Fqdn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
string_serde!(Fqdn);

// ---------------------------------------------------------------------------------------------
// relKeyID and the key identifiers built from it
// ---------------------------------------------------------------------------------------------

/// Longest relative key identifier accepted. OpenSSL limits `psk_identity` to 256 bytes
/// (`PSK_MAX_IDENTITY_LEN`) and a key identifier is `rel@fqdn`.
pub const MAX_REL_KEY_ID_LEN: usize = 128;

/// `sec:relKeyID` (TS-0003 §12.2): one or more of `[A-Za-z0-9._-]`.
/// Examples from the TS: `1he83he`, `my-key_name`, `firstname.lastname`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RelKeyId(String);

impl RelKeyId {
    /// The identifier as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn is_rel_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
}

impl FromStr for RelKeyId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        const K: &str = "relKeyID";
        if s.is_empty() {
            return Err(IdError::Empty { kind: K });
        }
        if s.len() > MAX_REL_KEY_ID_LEN {
            return Err(IdError::TooLong {
                kind: K,
                len: s.len(),
                max: MAX_REL_KEY_ID_LEN,
            });
        }
        if let Some((pos, ch)) = s.char_indices().find(|(_, c)| !is_rel_key_char(*c)) {
            return Err(IdError::BadChar { kind: K, ch, pos });
        }
        Ok(RelKeyId(s.to_string()))
    }
}

impl fmt::Display for RelKeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
string_serde!(RelKeyId);

/// Splits `rel@fqdn` at the '@' (the relative part's charset excludes '@').
fn split_at_sign<'a>(kind: &'static str, s: &'a str) -> Result<(&'a str, &'a str), IdError> {
    let (rel, fqdn) = s.split_once('@').ok_or(malformed(kind, "missing '@'"))?;
    if fqdn.contains('@') {
        return Err(malformed(kind, "more than one '@'"));
    }
    Ok((rel, fqdn))
}

macro_rules! scoped_key_id {
    // Exact comparison of the relative part (FQDNs are stored lowercase, so they compare
    // case-insensitively in every mode).
    ($(#[$doc:meta])* $name:ident, $kind:literal, $fqdn_field:ident) => {
        scoped_key_id!(@base $(#[$doc])* $name, $kind, $fqdn_field);

        impl PartialEq for $name {
            fn eq(&self, o: &Self) -> bool {
                self.relative == o.relative && self.$fqdn_field == o.$fqdn_field
            }
        }
        impl Eq for $name {}
        impl core::hash::Hash for $name {
            fn hash<H: core::hash::Hasher>(&self, h: &mut H) {
                self.relative.hash(h);
                self.$fqdn_field.hash(h);
            }
        }
    };
    (@base $(#[$doc:meta])* $name:ident, $kind:literal, $fqdn_field:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone)]
        pub struct $name {
            relative: RelKeyId,
            $fqdn_field: Fqdn,
        }

        impl $name {
            /// Builds the identifier from its two parts.
            pub fn new(relative: RelKeyId, $fqdn_field: Fqdn) -> Self {
                Self { relative, $fqdn_field }
            }
            /// The relative part (before '@').
            pub fn relative(&self) -> &RelKeyId {
                &self.relative
            }
            /// The FQDN part (after '@').
            pub fn fqdn(&self) -> &Fqdn {
                &self.$fqdn_field
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                let (rel, fqdn) = split_at_sign($kind, s)?;
                Ok(Self { relative: rel.parse()?, $fqdn_field: fqdn.parse()? })
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}@{}", self.relative, self.$fqdn_field)
            }
        }
        string_serde!($name);
    };
}

scoped_key_id!(
    /// KpsaID (TS-0003 §10.5): `Issuer_Relative_KpsaID@Issuer-FQDN`. The relative part is
    /// compared exactly; the FQDN case-insensitively (it is stored lowercase).
    /// Seed 004's KxID has the same form.
    KpsaId, "KpsaID", issuer_fqdn
);
scoped_key_id!(
    /// KpmID: identifier of the pre-provisioned MEF key. TS-0003 gives no format; BRIEF A5
    /// chooses `relKeyID@MEF-FQDN`, as in the §12.2 example `thiskey@mymef.com`.
    KpmId, "KpmID", mef_fqdn
);
scoped_key_id!(
    /// A MAF or MEF Key Identifier (TS-0003 §10.3.5, §8.3.5.2.8): `RelativeKeyID@FQDN`, where
    /// RelativeKeyID is hex(KcID) for exported keys or a server-chosen relKeyID (BRIEF A11).
    KeyId, "Key Identifier", server_fqdn
);

scoped_key_id!(
    @base
    /// KmID (TS-0003 §10.6): `MAF_RELATIVE_KmID@MAF-FQDN`. The relative part is **not
    /// case-sensitive**: equality and hashing ignore ASCII case; `Display` keeps the case given.
    KmId, "KmID", maf_fqdn
);

impl PartialEq for KmId {
    fn eq(&self, o: &Self) -> bool {
        self.relative.0.eq_ignore_ascii_case(&o.relative.0) && self.maf_fqdn == o.maf_fqdn
    }
}
impl Eq for KmId {}
impl core::hash::Hash for KmId {
    fn hash<H: core::hash::Hasher>(&self, h: &mut H) {
        self.relative.0.to_ascii_lowercase().hash(h);
        self.maf_fqdn.hash(h);
    }
}

// ---------------------------------------------------------------------------------------------
// RelativeKeID / KeID
// ---------------------------------------------------------------------------------------------

/// RelativeKeID: the 16 most significant bytes of the `EXPORTER-oneM2M-Bootstrap` export
/// (TS-0003 §10.3.1). Public (it travels as `psk_identity`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RelativeKeId(pub [u8; 16]);

impl RelativeKeId {
    /// Lowercase hexBinary, 32 digits (BRIEF A4).
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl FromStr for RelativeKeId {
    type Err = IdError;
    /// 32 hex digits, either case.
    fn from_str(s: &str) -> Result<Self, IdError> {
        const K: &str = "RelativeKeID";
        if s.len() != 32 {
            return Err(malformed(K, "must be 32 hex digits"));
        }
        if let Some((pos, ch)) = s.char_indices().find(|(_, c)| !c.is_ascii_hexdigit()) {
            return Err(IdError::BadChar { kind: K, ch, pos });
        }
        let mut out = [0u8; 16];
        hex::decode_to_slice(s, &mut out).map_err(|_| malformed(K, "must be 32 hex digits"))?;
        Ok(RelativeKeId(out))
    }
}

impl fmt::Display for RelativeKeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}
string_serde!(RelativeKeId);

/// KeID (TS-0003 §10.3.4): `hexBinary(RelativeKeID)@MEF-FQDN`, i.e. 32 lowercase hex digits,
/// '@', the MEF FQDN. Parsing accepts hex in either case; equality compares the bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeId {
    relative: RelativeKeId,
    mef_fqdn: Fqdn,
}

impl KeId {
    /// Builds the KeID from the export's RelativeKeID and the MEF FQDN (TS-0003 §10.3.4).
    pub fn new(relative: RelativeKeId, mef_fqdn: Fqdn) -> Self {
        KeId { relative, mef_fqdn }
    }
    /// The RelativeKeID.
    pub fn relative(&self) -> &RelativeKeId {
        &self.relative
    }
    /// The MEF FQDN.
    pub fn mef_fqdn(&self) -> &Fqdn {
        &self.mef_fqdn
    }
}

impl FromStr for KeId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        let (rel, fqdn) = split_at_sign("KeID", s)?;
        Ok(KeId {
            relative: rel.parse()?,
            mef_fqdn: fqdn.parse()?,
        })
    }
}

impl fmt::Display for KeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.relative, self.mef_fqdn)
    }
}
string_serde!(KeId);

// ---------------------------------------------------------------------------------------------
// Credential-ID
// ---------------------------------------------------------------------------------------------

/// `sec:credIDTypeID` (TS-0003 §10.4, §12.3): what a Credential-ID identifies.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    serde_repr::Serialize_repr,
    serde_repr::Deserialize_repr,
)]
#[repr(u16)]
pub enum CredIdTypeId {
    /// 10: KpmID (MEF).
    KpmId = 10,
    /// 11: KmID (MAF).
    KmId = 11,
    /// 12: SAEF key identifier (KpsaID or KcID).
    SaefKeyId = 12,
    /// 13: pairwiseESPrimKeyID.
    PairwiseEsprimKeyId = 13,
    /// 14: ESData direct-encryption key.
    EsDataDirectEncryptionKeyId = 14,
    /// 15: ESData key-wrap key.
    EsDataKeyWrapKeyId = 15,
    /// 16: ESData HMAC key.
    EsDataHmacKeyId = 16,
    /// 30: TLS raw public key (public key identifier, RFC 6920).
    TlsRawPublicKey = 30,
    /// 31: TLS device certificate (hardware instance ID).
    TlsDeviceCert = 31,
    /// 32: TLS CSE-ID certificate.
    TlsCseIdCert = 32,
    /// 33: TLS AE-ID certificate.
    TlsAeIdCert = 33,
    /// 34: TLS Node-ID certificate.
    TlsNodeIdCert = 34,
    /// 41: ESData key management, raw public key.
    EsDataKmRawPublicKey = 41,
    /// 42: ESData key management, device certificate.
    EsDataKmDeviceCert = 42,
    /// 43: ESData key management, CSE-ID certificate.
    EsDataKmCseIdCert = 43,
    /// 44: ESData key management, AE-ID certificate.
    EsDataKmAeIdCert = 44,
    /// 45: ESData key management, Node-ID certificate.
    EsDataKmNodeIdCert = 45,
    /// 51: ESData signature, raw public key.
    EsDataSigRawPublicKey = 51,
    /// 52: ESData signature, device certificate.
    EsDataSigDeviceCert = 52,
    /// 53: ESData signature, CSE-ID certificate.
    EsDataSigCseIdCert = 53,
    /// 54: ESData signature, AE-ID certificate.
    EsDataSigAeIdCert = 54,
    /// 55: ESData signature, Node-ID certificate.
    EsDataSigNodeIdCert = 55,
}

impl CredIdTypeId {
    /// Every defined value, in numeric order.
    pub const ALL: [CredIdTypeId; 22] = [
        Self::KpmId,
        Self::KmId,
        Self::SaefKeyId,
        Self::PairwiseEsprimKeyId,
        Self::EsDataDirectEncryptionKeyId,
        Self::EsDataKeyWrapKeyId,
        Self::EsDataHmacKeyId,
        Self::TlsRawPublicKey,
        Self::TlsDeviceCert,
        Self::TlsCseIdCert,
        Self::TlsAeIdCert,
        Self::TlsNodeIdCert,
        Self::EsDataKmRawPublicKey,
        Self::EsDataKmDeviceCert,
        Self::EsDataKmCseIdCert,
        Self::EsDataKmAeIdCert,
        Self::EsDataKmNodeIdCert,
        Self::EsDataSigRawPublicKey,
        Self::EsDataSigDeviceCert,
        Self::EsDataSigCseIdCert,
        Self::EsDataSigAeIdCert,
        Self::EsDataSigNodeIdCert,
    ];

    /// The numeric value.
    pub fn as_u16(self) -> u16 {
        self as u16
    }

    /// The variant for a numeric value, if defined.
    pub fn from_u16(v: u16) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_u16() == v)
    }
}

/// Longest Credential-ID accepted (an RFC 6920 URI or a key identifier fits easily).
pub const MAX_CREDENTIAL_ID_LEN: usize = 1024;

/// Credential-ID (TS-0003 §10.4, `sec:credentialID`): `<credIDTypeID>-<value>`, e.g.
/// `10-thiskey@mymef.com`, `12-<KpsaID>`, `30-ni:///sha-256;<b64url>`.
///
/// Parsed by splitting at the **first** '-', so values may contain '-' (BRIEF A6). The value is an
/// `xs:anyURI`: any non-empty string without whitespace or control characters. Values compare
/// exactly.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CredentialId {
    type_id: CredIdTypeId,
    value: String,
}

impl CredentialId {
    /// Builds a Credential-ID, validating the value.
    pub fn new(type_id: CredIdTypeId, value: &str) -> Result<Self, IdError> {
        validate_any_uri("Credential-ID value", value)?;
        if value.len() > MAX_CREDENTIAL_ID_LEN {
            return Err(IdError::TooLong {
                kind: "Credential-ID",
                len: value.len(),
                max: MAX_CREDENTIAL_ID_LEN,
            });
        }
        Ok(CredentialId {
            type_id,
            value: value.to_string(),
        })
    }
    /// `12-<KpsaID>`: the identity a Provisioned Symmetric Key SA is bound to when B does not know
    /// IdA (TS-0003 §8.2.2.1).
    pub fn for_kpsa(kpsa_id: &KpsaId) -> Self {
        CredentialId {
            type_id: CredIdTypeId::SaefKeyId,
            value: kpsa_id.to_string(),
        }
    }
    /// `11-<KmID>` (TS-0003 §8.2.2.3).
    pub fn for_km(km_id: &KmId) -> Self {
        CredentialId {
            type_id: CredIdTypeId::KmId,
            value: km_id.to_string(),
        }
    }
    /// `10-<KpmID>`.
    pub fn for_kpm(kpm_id: &KpmId) -> Self {
        CredentialId {
            type_id: CredIdTypeId::KpmId,
            value: kpm_id.to_string(),
        }
    }
    /// The type.
    pub fn type_id(&self) -> CredIdTypeId {
        self.type_id
    }
    /// The value after the first '-'.
    pub fn value(&self) -> &str {
        &self.value
    }
}

fn validate_any_uri(kind: &'static str, s: &str) -> Result<(), IdError> {
    if s.is_empty() {
        return Err(IdError::Empty { kind });
    }
    if let Some((pos, ch)) = s
        .char_indices()
        .find(|(_, c)| c.is_whitespace() || c.is_control())
    {
        return Err(IdError::BadChar { kind, ch, pos });
    }
    Ok(())
}

impl FromStr for CredentialId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        const K: &str = "Credential-ID";
        let (ty, value) = s
            .split_once('-')
            .ok_or(malformed(K, "missing '-' after the type"))?;
        if ty.is_empty() || ty.len() > 5 || !ty.bytes().all(|b| b.is_ascii_digit()) {
            return Err(malformed(K, "type must be a positive decimal integer"));
        }
        let n: u16 = ty
            .parse()
            .map_err(|_| malformed(K, "type must be a positive decimal integer"))?;
        let type_id = CredIdTypeId::from_u16(n).ok_or(malformed(K, "unknown credIDTypeID"))?;
        CredentialId::new(type_id, value)
    }
}

impl fmt::Display for CredentialId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.type_id.as_u16(), self.value)
    }
}
string_serde!(CredentialId);

// ---------------------------------------------------------------------------------------------
// M2M-SP-ID, CSE-ID, AE-ID (TS-0004 §6.2.3)
// ---------------------------------------------------------------------------------------------

/// Longest CSE-ID or AE-ID accepted.
pub const MAX_M2M_ID_LEN: usize = 512;

/// M2M-SP-ID without its leading `//`: the SP's FQDN, which TS-0004 §6.2.3 requires in lowercase
/// (`LABEL = LC-ALPHA [ *(LC-ALPHANUM / "-") LC-ALPHANUM ]`). Uppercase is rejected, not folded,
/// because M2M identifiers are case-sensitive.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpId(String);

impl SpId {
    /// The FQDN.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for SpId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        const K: &str = "M2M-SP-ID";
        if s.is_empty() {
            return Err(IdError::Empty { kind: K });
        }
        if s.len() > 253 {
            return Err(IdError::TooLong {
                kind: K,
                len: s.len(),
                max: 253,
            });
        }
        if let Some((pos, ch)) = s.char_indices().find(|(_, c)| {
            !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-' || *c == '.')
        }) {
            return Err(IdError::BadChar { kind: K, ch, pos });
        }
        for label in s.split('.') {
            let b = label.as_bytes();
            match (b.first(), b.last()) {
                (Some(f), Some(l))
                    if f.is_ascii_lowercase() && (l.is_ascii_lowercase() || l.is_ascii_digit()) => {
                }
                _ => {
                    return Err(malformed(
                        K,
                        "each label must start with a letter and end with a letter or digit",
                    ))
                }
            }
            if b.len() > 63 {
                return Err(malformed(K, "label longer than 63 characters"));
            }
        }
        Ok(SpId(s.to_string()))
    }
}

impl fmt::Display for SpId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `1*unreserved` of TS-0004 §6.2.3: `(ALPHA / DIGIT) *(ALPHA / DIGIT / "-" / "." / "_")`.
fn check_unreserved(kind: &'static str, s: &str) -> Result<(), IdError> {
    let first = s.chars().next().ok_or(IdError::Empty { kind })?;
    if !first.is_ascii_alphanumeric() {
        return Err(IdError::BadChar {
            kind,
            ch: first,
            pos: 0,
        });
    }
    if let Some((pos, ch)) = s
        .char_indices()
        .find(|(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_')))
    {
        return Err(IdError::BadChar { kind, ch, pos });
    }
    Ok(())
}

fn check_len(kind: &'static str, s: &str) -> Result<(), IdError> {
    if s.len() > MAX_M2M_ID_LEN {
        return Err(IdError::TooLong {
            kind,
            len: s.len(),
            max: MAX_M2M_ID_LEN,
        });
    }
    Ok(())
}

/// A CSE-ID (TS-0004 §6.2.3) in one of its forms. IDs are case-sensitive.
///
/// - absolute: `//myoperator.com/cse1`
/// - SP-relative: `/cse1`
/// - CSE-relative: `cse1`, the bare stem, meaningful only where the SP is implied (configuration)
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CseId {
    /// `//SP-ID/stem`.
    Absolute { sp: SpId, stem: String },
    /// `/stem`.
    SpRelative { stem: String },
    /// `stem`.
    CseRelative { stem: String },
}

impl CseId {
    /// The CSE-ID stem (without slashes).
    pub fn stem(&self) -> &str {
        match self {
            CseId::Absolute { stem, .. }
            | CseId::SpRelative { stem }
            | CseId::CseRelative { stem } => stem,
        }
    }
    /// The absolute form, given the SP the ID belongs to when it is not already absolute.
    pub fn to_absolute(&self, sp: &SpId) -> CseId {
        match self {
            CseId::Absolute { .. } => self.clone(),
            _ => CseId::Absolute {
                sp: sp.clone(),
                stem: self.stem().to_string(),
            },
        }
    }
}

impl FromStr for CseId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        const K: &str = "CSE-ID";
        check_len(K, s)?;
        if let Some(rest) = s.strip_prefix("//") {
            let (sp, stem) = rest
                .split_once('/')
                .ok_or(malformed(K, "absolute CSE-ID needs //SP-ID/stem"))?;
            check_unreserved(K, stem)?;
            Ok(CseId::Absolute {
                sp: sp.parse()?,
                stem: stem.to_string(),
            })
        } else if let Some(stem) = s.strip_prefix('/') {
            check_unreserved(K, stem)?;
            Ok(CseId::SpRelative {
                stem: stem.to_string(),
            })
        } else {
            check_unreserved(K, s)?;
            Ok(CseId::CseRelative {
                stem: s.to_string(),
            })
        }
    }
}

impl fmt::Display for CseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CseId::Absolute { sp, stem } => write!(f, "//{sp}/{stem}"),
            CseId::SpRelative { stem } => write!(f, "/{stem}"),
            CseId::CseRelative { stem } => f.write_str(stem),
        }
    }
}
string_serde!(CseId);

/// Who assigned an AE-ID-Stem (TS-0004 §6.2.3): its first character.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AeIdStemKind {
    /// `C…`: assigned by the Registrar CSE.
    C,
    /// `S…`: assigned by the M2M Service Provider.
    S,
}

/// An AE-ID-Stem: `C` or `S` followed by `1*unreserved` (TS-0004 §6.2.3).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AeIdStem(String);

impl AeIdStem {
    /// C-type or S-type.
    pub fn kind(&self) -> AeIdStemKind {
        if self.0.starts_with('C') {
            AeIdStemKind::C
        } else {
            AeIdStemKind::S
        }
    }
    /// The stem, including its first character.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for AeIdStem {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        const K: &str = "AE-ID-Stem";
        check_len(K, s)?;
        let rest = s
            .strip_prefix('C')
            .or_else(|| s.strip_prefix('S'))
            .ok_or(malformed(K, "must start with 'C' or 'S'"))?;
        check_unreserved(K, rest)?;
        Ok(AeIdStem(s.to_string()))
    }
}

impl fmt::Display for AeIdStem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An AE-ID (TS-0004 §6.2.3) in one of its forms. IDs are case-sensitive.
///
/// - absolute: `//myoperator.com/cse2/C3532ea3` or `//myoperator.com/S563423`
/// - SP-relative: `/cse2/C3532ea3` or `/S563423`
/// - CSE-relative: the AE-ID-Stem, `C3532ea3` or `S563423`
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AeId {
    /// `//SP-ID` + SP-relative form.
    Absolute {
        sp: SpId,
        registrar: Option<String>,
        stem: AeIdStem,
    },
    /// `/cse/C…` (C-type, with the registrar CSE's stem) or `/S…` (S-type).
    SpRelative {
        registrar: Option<String>,
        stem: AeIdStem,
    },
    /// The bare AE-ID-Stem.
    CseRelative { stem: AeIdStem },
}

impl AeId {
    /// The AE-ID-Stem.
    pub fn stem(&self) -> &AeIdStem {
        match self {
            AeId::Absolute { stem, .. }
            | AeId::SpRelative { stem, .. }
            | AeId::CseRelative { stem } => stem,
        }
    }
    /// The stem of the Registrar CSE-ID embedded in a C-type SP-relative or absolute AE-ID.
    pub fn registrar_stem(&self) -> Option<&str> {
        match self {
            AeId::Absolute { registrar, .. } | AeId::SpRelative { registrar, .. } => {
                registrar.as_deref()
            }
            AeId::CseRelative { .. } => None,
        }
    }
}

/// Parses the SP-relative part `/cse/C…` or `/S…` (input starts after the leading '/').
fn parse_sp_relative_ae(
    kind: &'static str,
    rest: &str,
) -> Result<(Option<String>, AeIdStem), IdError> {
    match rest.split_once('/') {
        Some((cse, stem)) => {
            check_unreserved(kind, cse)?;
            let stem: AeIdStem = stem.parse()?;
            if stem.kind() != AeIdStemKind::C {
                return Err(malformed(kind, "only a C-type AE-ID-Stem follows a CSE-ID"));
            }
            Ok((Some(cse.to_string()), stem))
        }
        None => {
            let stem: AeIdStem = rest.parse()?;
            if stem.kind() != AeIdStemKind::S {
                return Err(malformed(
                    kind,
                    "a C-type AE-ID-Stem needs its registrar CSE-ID",
                ));
            }
            Ok((None, stem))
        }
    }
}

impl FromStr for AeId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        const K: &str = "AE-ID";
        check_len(K, s)?;
        if let Some(rest) = s.strip_prefix("//") {
            let (sp, rel) = rest
                .split_once('/')
                .ok_or(malformed(K, "absolute AE-ID needs //SP-ID/..."))?;
            let (registrar, stem) = parse_sp_relative_ae(K, rel)?;
            Ok(AeId::Absolute {
                sp: sp.parse()?,
                registrar,
                stem,
            })
        } else if let Some(rest) = s.strip_prefix('/') {
            let (registrar, stem) = parse_sp_relative_ae(K, rest)?;
            Ok(AeId::SpRelative { registrar, stem })
        } else {
            Ok(AeId::CseRelative { stem: s.parse()? })
        }
    }
}

impl fmt::Display for AeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rel = |f: &mut fmt::Formatter<'_>, registrar: &Option<String>, stem: &AeIdStem| {
            match registrar {
                Some(cse) => write!(f, "/{cse}/{stem}"),
                None => write!(f, "/{stem}"),
            }
        };
        match self {
            AeId::Absolute {
                sp,
                registrar,
                stem,
            } => {
                write!(f, "//{sp}")?;
                rel(f, registrar, stem)
            }
            AeId::SpRelative { registrar, stem } => rel(f, registrar, stem),
            AeId::CseRelative { stem } => write!(f, "{stem}"),
        }
    }
}
string_serde!(AeId);

// ---------------------------------------------------------------------------------------------
// Enrolee-ID and Enrolment Target ID (TS-0003 §8.3.2.1, tables 9.2.1.1-1 and 9.2.2.1-1)
// ---------------------------------------------------------------------------------------------

string_serde!(AeIdStem);

/// An Enrolee-ID (TS-0003 §8.3.2.1, MEF Client ID of §8.3.5.2.3, seed 001's ID1): the AE-ID or
/// CSE-ID of the Enrolee, in any of their forms (TS-0004 §6.2.3).
///
/// Parsed as an AE-ID first, then as a CSE-ID: a bare `C…`/`S…` stem is an AE-ID-Stem (it is
/// the form a Registrar CSE binds, TS-0003 §7.2.1). `Display` and serde give back the text
/// parsed, byte for byte (both forms print as they were written).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum EnroleeId {
    /// An AE-ID.
    Ae(AeId),
    /// A CSE-ID.
    Cse(CseId),
}

impl EnroleeId {
    /// The AE-ID, if the Enrolee is an AE.
    pub fn as_ae_id(&self) -> Option<&AeId> {
        match self {
            EnroleeId::Ae(a) => Some(a),
            EnroleeId::Cse(_) => None,
        }
    }
    /// The CSE-ID, if the Enrolee is a CSE.
    pub fn as_cse_id(&self) -> Option<&CseId> {
        match self {
            EnroleeId::Cse(c) => Some(c),
            EnroleeId::Ae(_) => None,
        }
    }
}

impl FromStr for EnroleeId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        if let Ok(a) = s.parse::<AeId>() {
            return Ok(EnroleeId::Ae(a));
        }
        s.parse::<CseId>()
            .map(EnroleeId::Cse)
            .map_err(|_| malformed("Enrolee-ID", "neither an AE-ID nor a CSE-ID"))
    }
}

impl fmt::Display for EnroleeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EnroleeId::Ae(a) => a.fmt(f),
            EnroleeId::Cse(c) => c.fmt(f),
        }
    }
}
string_serde!(EnroleeId);

impl From<AeId> for EnroleeId {
    fn from(a: AeId) -> Self {
        EnroleeId::Ae(a)
    }
}

impl From<CseId> for EnroleeId {
    fn from(c: CseId) -> Self {
        EnroleeId::Cse(c)
    }
}

/// The ID of an Enrolment Target or of a key's target (TS-0003 tables 9.2.2.1-1 and
/// 8.3.5.2.7-1 `targetIDs`): an absolute CSE-ID, an absolute AE-ID (`//SP-ID/…`, TS-0004
/// §6.2.3) or a MAF's FQDN.
///
/// A `//` text is parsed as an absolute CSE-ID first, then as an absolute AE-ID (`//sp/Sx` is
/// both; it is kept as the CSE-ID, and prints the same either way); any other text must be an
/// FQDN. `Display` and serde give back the text parsed (an FQDN in lowercase, as [`Fqdn`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TargetId {
    /// An absolute CSE-ID.
    Cse(CseId),
    /// An absolute AE-ID.
    Ae(AeId),
    /// A MAF's FQDN.
    Fqdn(Fqdn),
}

impl TargetId {
    /// Whether it is an absolute CSE-ID or AE-ID (an Enrolment Target of a device; an FQDN
    /// only names a MAF as a key's target).
    pub fn is_m2m_id(&self) -> bool {
        !matches!(self, TargetId::Fqdn(_))
    }
}

impl FromStr for TargetId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        const K: &str = "target ID";
        if !s.starts_with("//") {
            return s.parse().map(TargetId::Fqdn);
        }
        match (s.parse::<CseId>(), s.parse::<AeId>()) {
            (Ok(c @ CseId::Absolute { .. }), _) => Ok(TargetId::Cse(c)),
            (_, Ok(a @ AeId::Absolute { .. })) => Ok(TargetId::Ae(a)),
            _ => Err(malformed(
                K,
                "neither an absolute CSE-ID nor an absolute AE-ID (//SP-ID/...)",
            )),
        }
    }
}

impl fmt::Display for TargetId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TargetId::Cse(c) => c.fmt(f),
            TargetId::Ae(a) => a.fmt(f),
            TargetId::Fqdn(n) => n.fmt(f),
        }
    }
}
string_serde!(TargetId);
