//! The TS-0003 §10.3 key schedule and the seed 002 group key.
//!
//! Notation follows BRIEF §2.3: `||` is byte concatenation without separators or length
//! prefixes; labels are the ASCII bytes of the quoted strings; identifiers are NFKC-normalised and
//! then UTF-8 encoded (TS-0003 §10.3, BRIEF §2.9) before they enter a KDF, which
//! [`KdfIdentifier`] guarantees by construction. HMAC is HMAC-SHA-256 (RFC 2104) from the
//! RustCrypto `hmac` crate; outputs are 32 bytes.
//!
//! Choices (BRIEF §5): A1/A2 export split and no context ([`crate::export`]); A7 SUID as ASCII
//! decimal by default ([`SuidEncoding`]); A9 both the §10.3.2/§10.3.3 and the §10.3.7 derivations
//! are offered; A14 the 16-byte `esprimRandValue`s are the RandObject bytes; A20 SHA-256 and 32 zero
//! bytes as the default Salt; A21 the chained E2E expansion is written out by hand.

use crate::export::ExportedKeyingMaterial;
use crate::ids::{AeId, CseId, Fqdn, KeId, RelativeKeId};
use crate::secret::{
    Ke, Ke2eAttAuth, Ke2eAttConf, Ke2eMaster, Ke2eMsgAuth, Ke2eMsgConf, Km, Kpsa, Ksx,
    PairwiseE2eKey, PairwiseEsprimKey, SessionEsprimKey, UsageConstrainedKey,
};
use crate::suid::Suid;
use core::fmt;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use unicode_normalization::UnicodeNormalization;
use zeroize::Zeroize;

type HmacSha256 = Hmac<Sha256>;

/// Label of TS-0003 §10.3.2 (Km).
pub const LABEL_KM: &str = "oneM2M Enrolment Key to Master Credential derivation";
/// Label of TS-0003 §10.3.3 (Kpsa).
pub const LABEL_KPSA: &str = "oneM2M Enrolment Key to Provisioned Secure Connection Key derivation";
/// Label of TS-0003 §10.3.7 (usage-constrained key).
pub const LABEL_USAGE_CONSTRAINED: &str =
    "oneM2M Enrolment Key to Usage-Constrained Symmetric Key derivation";
/// Label of TS-0003 §10.3.8.2 (sessionESPrimKey); it comes **last** in the HMAC input.
pub const LABEL_SESSION_ESPRIM: &str = "oneM2M HMAC-SHA256 sessionESPrimKey derivation algorithm";
/// Label of seed 002 NOTE 5 (Ksx).
pub const LABEL_KSX: &str = "oneM2M Group Secure Connection Key derivation";
/// The four labels of TS-0003 §10.3.6.2, in T(1)..T(4) order.
pub const LABELS_E2E: [&str; 4] = [
    "E2E Message Authentication Key",
    "E2E Message Confidentiality Key",
    "E2E Attribute Authenticity Key",
    "E2E Attribute Confidentiality Key",
];

/// An error in KDF inputs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KdfError {
    #[error("identifier is empty")]
    EmptyIdentifier,
    #[error("identifier is too long ({0} bytes after NFKC, at most {max})", max = MAX_KDF_ID_LEN)]
    IdentifierTooLong(usize),
    #[error("identifier contains a control character")]
    ControlCharacter,
    #[error("{name} must be {expected} bytes, got {got}")]
    Length {
        name: &'static str,
        expected: usize,
        got: usize,
    },
    #[error("salt must be 1 to {max} bytes, got {0}", max = MAX_SALT_LEN)]
    SaltLength(usize),
}

/// Longest identifier (after NFKC) accepted as KDF input.
pub const MAX_KDF_ID_LEN: usize = 1024;
/// Longest E2E Salt accepted.
pub const MAX_SALT_LEN: usize = 1024;

/// An identifier prepared for a KDF: NFKC-normalised text (BRIEF §2.9), UTF-8 encoded.
///
/// Fullwidth `ＣＳＥ１` and `CSE1` become the same `KdfIdentifier`, hence the same key.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct KdfIdentifier(String);

impl KdfIdentifier {
    /// Normalises `text` with NFKC. Rejects empty text, control characters and over-long input.
    pub fn new(text: &str) -> Result<Self, KdfError> {
        let n: String = text.nfkc().collect();
        if n.is_empty() {
            return Err(KdfError::EmptyIdentifier);
        }
        if n.len() > MAX_KDF_ID_LEN {
            return Err(KdfError::IdentifierTooLong(n.len()));
        }
        if n.chars().any(char::is_control) {
            return Err(KdfError::ControlCharacter);
        }
        Ok(KdfIdentifier(n))
    }

    /// The UTF-8 bytes that enter the HMAC.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }

    /// The normalised text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for KdfIdentifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KdfIdentifier({:?})", self.0)
    }
}

macro_rules! kdf_id_from {
    ($t:ty) => {
        impl From<&$t> for KdfIdentifier {
            /// Typed identifiers are ASCII by construction, so NFKC leaves them unchanged.
            fn from(id: &$t) -> Self {
                KdfIdentifier(id.to_string().nfkc().collect())
            }
        }
    };
}
kdf_id_from!(CseId);
kdf_id_from!(AeId);
kdf_id_from!(Fqdn);

/// HMAC-SHA-256 over the concatenation of `parts`. The output is wiped by the caller's key type;
/// the `hmac` crate (0.12) does not zeroize its internal keyed state.
fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC accepts keys of any length (RFC 2104 §2), so this cannot fail.
    let mut mac = match HmacSha256::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC-SHA-256 accepts keys of any length"),
    };
    for p in parts {
        mac.update(p);
    }
    let mut tag = mac.finalize().into_bytes();
    let mut out = [0u8; 32];
    out.copy_from_slice(&tag);
    tag.zeroize();
    out
}

/// Wraps a freshly computed 32-byte value into a key type and wipes the temporary.
fn seal<K>(mut bytes: [u8; 32], make: fn([u8; 32]) -> K) -> K {
    let k = make(bytes);
    bytes.zeroize();
    k
}

// ---------------------------------------------------------------------------------------------
// §10.3.1 / §10.3.4: Ke, RelativeKeID, KeID
// ---------------------------------------------------------------------------------------------

/// The enrolment key material of TS-0003 §10.3.1 and §10.3.4.
#[derive(Debug)]
pub struct EnrolmentKey {
    /// Ke: export bytes 16..48.
    pub ke: Ke,
    /// RelativeKeID: export bytes 0..16.
    pub relative_ke_id: RelativeKeId,
    /// KeID = hex(RelativeKeID)@MEF-FQDN.
    pub ke_id: KeId,
}

/// Ke, RelativeKeID and KeID from a 48-byte `EXPORTER-oneM2M-Bootstrap` export and the MEF FQDN
/// (TS-0003 §10.3.1, §10.3.4; BRIEF A1).
pub fn enrolment_key(export: &ExportedKeyingMaterial, mef_fqdn: &Fqdn) -> EnrolmentKey {
    let (ke, id) = export.split_enrolment();
    let relative_ke_id = RelativeKeId(id);
    EnrolmentKey {
        ke,
        relative_ke_id,
        ke_id: KeId::new(relative_ke_id, mef_fqdn.clone()),
    }
}

// ---------------------------------------------------------------------------------------------
// §10.3.2, §10.3.3, §10.3.7
// ---------------------------------------------------------------------------------------------

/// Km = HMAC-SHA-256(Ke, "oneM2M Enrolment Key to Master Credential derivation" || MAF-ID)
/// (TS-0003 §10.3.2).
pub fn km(ke: &Ke, maf_id: &KdfIdentifier) -> Km {
    seal(
        hmac_sha256(
            ke.expose_secret(),
            &[LABEL_KM.as_bytes(), maf_id.as_bytes()],
        ),
        Km::from_array,
    )
}

/// Kpsa = HMAC-SHA-256(Ke, "oneM2M Enrolment Key to Provisioned Secure Connection Key derivation"
/// || Enrolee-B-ID) (TS-0003 §10.3.3). Enrolee-B-ID is the CSE-ID or AE-ID of Enrolee B.
pub fn kpsa(ke: &Ke, enrolee_b_id: &KdfIdentifier) -> Kpsa {
    let mut k = hmac_sha256(
        ke.expose_secret(),
        &[LABEL_KPSA.as_bytes(), enrolee_b_id.as_bytes()],
    );
    let out = match Kpsa::from_bytes(&k) {
        Ok(v) => v,
        Err(_) => unreachable!("32 bytes is a valid Kpsa length"),
    };
    k.zeroize();
    out
}

/// How the SUID enters the §10.3.7 HMAC. TS-0003 does not say (BRIEF A7); the two readings give
/// different keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SuidEncoding {
    /// The ASCII decimal digits, e.g. `"22"` (BRIEF A7 [R], the default).
    #[default]
    AsciiDecimal,
    /// One octet holding the value, e.g. `0x16`. Non-default; offered for interoperability tests.
    SingleOctet,
}

/// Usage-constrained key = HMAC-SHA-256(Ke, "oneM2M Enrolment Key to Usage-Constrained Symmetric
/// Key derivation" || SUID || Enrolment-Target-ID) (TS-0003 §10.3.7). The target ID is the FQDN
/// of a MAF/MEF, or the absolute CSE-ID/AE-ID string as configured on both sides (BRIEF A8).
pub fn usage_constrained_key(
    ke: &Ke,
    suid: Suid,
    target_id: &KdfIdentifier,
    encoding: SuidEncoding,
) -> UsageConstrainedKey {
    let ascii = suid.value().to_string();
    let octet = [suid.value()];
    let suid_bytes: &[u8] = match encoding {
        SuidEncoding::AsciiDecimal => ascii.as_bytes(),
        SuidEncoding::SingleOctet => &octet,
    };
    seal(
        hmac_sha256(
            ke.expose_secret(),
            &[
                LABEL_USAGE_CONSTRAINED.as_bytes(),
                suid_bytes,
                target_id.as_bytes(),
            ],
        ),
        UsageConstrainedKey::from_array,
    )
}

// ---------------------------------------------------------------------------------------------
// §10.3.6: E2E keys
// ---------------------------------------------------------------------------------------------

/// The optional E2E Salt provisioned by the TEF (TS-0003 Table 9.2.3.1-1). Public parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct E2eSalt(Vec<u8>);

impl E2eSalt {
    /// A salt of 1..=1024 bytes.
    pub fn new(bytes: &[u8]) -> Result<Self, KdfError> {
        if bytes.is_empty() || bytes.len() > MAX_SALT_LEN {
            return Err(KdfError::SaltLength(bytes.len()));
        }
        Ok(E2eSalt(bytes.to_vec()))
    }
    /// The salt bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// Keys that may feed the E2E key schedule (TS-0003 §10.3.6.1, §8.6: Kpsa, Km, or a
/// source-generated random value carried as a Kpsa).
pub trait E2eInputKey {
    /// The input keying material.
    fn ikm(&self) -> &[u8];
}
impl E2eInputKey for Kpsa {
    fn ikm(&self) -> &[u8] {
        self.expose_secret()
    }
}
impl E2eInputKey for Km {
    fn ikm(&self) -> &[u8] {
        self.expose_secret()
    }
}

/// Ke2e_master = HMAC-SHA-256(Salt, Kpsa) (TS-0003 §10.3.6.1), i.e. RFC 5869 HKDF-Extract. With no
/// Salt, 32 zero bytes are used (RFC 5869 §2.2; BRIEF A20).
pub fn ke2e_master(input: &impl E2eInputKey, salt: Option<&E2eSalt>) -> Ke2eMaster {
    let zero = [0u8; 32];
    let salt = salt.map_or(&zero[..], E2eSalt::as_bytes);
    seal(hmac_sha256(salt, &[input.ikm()]), Ke2eMaster::from_array)
}

/// The four E2E keys of TS-0003 §10.3.6.2.
#[derive(Debug)]
pub struct E2eKeys {
    /// T(1), "E2E Message Authentication Key".
    pub msg_auth: Ke2eMsgAuth,
    /// T(2), "E2E Message Confidentiality Key".
    pub msg_conf: Ke2eMsgConf,
    /// T(3), "E2E Attribute Authenticity Key".
    pub att_auth: Ke2eAttAuth,
    /// T(4), "E2E Attribute Confidentiality Key".
    pub att_conf: Ke2eAttConf,
}

/// T(0) = ""; T(i) = HMAC-SHA-256(Ke2e_master, T(i-1) || label_i || i), i one octet 0x01..0x04
/// (TS-0003 §10.3.6.2). Unlike RFC 5869 HKDF-Expand each step has its own label, so only T(1)
/// equals HKDF-Expand (BRIEF A21).
pub fn e2e_keys(master: &Ke2eMaster) -> E2eKeys {
    // The key is the same for all four steps: key the HMAC once and clone its state.
    // (hmac 0.12 does not wipe its keyed state on drop; only the outputs are zeroized here.)
    let keyed = match HmacSha256::new_from_slice(master.expose_secret()) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC-SHA-256 accepts keys of any length"),
    };
    let mut t: [[u8; 32]; 4] = [[0u8; 32]; 4];
    for (i, label) in LABELS_E2E.iter().enumerate() {
        let mut mac = keyed.clone();
        if let Some(prev) = i.checked_sub(1).and_then(|p| t.get(p)) {
            mac.update(prev);
        }
        mac.update(label.as_bytes());
        mac.update(&[(i + 1) as u8]);
        let mut tag = mac.finalize().into_bytes();
        t[i].copy_from_slice(&tag);
        tag.zeroize();
    }
    let keys = E2eKeys {
        msg_auth: Ke2eMsgAuth::from_array(t[0]),
        msg_conf: Ke2eMsgConf::from_array(t[1]),
        att_auth: Ke2eAttAuth::from_array(t[2]),
        att_conf: Ke2eAttConf::from_array(t[3]),
    };
    t.zeroize();
    keys
}

// ---------------------------------------------------------------------------------------------
// §10.3.8: sessionESPrimKey
// ---------------------------------------------------------------------------------------------

/// The 128-bit `esprimRandValue` of an originator or receiver ESPrim RandObject
/// (TS-0003 §8.4.3.1). Public.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EsprimRandValue(pub [u8; 16]);

impl EsprimRandValue {
    /// Exactly 16 bytes.
    pub fn from_bytes(b: &[u8]) -> Result<Self, KdfError> {
        b.try_into()
            .map(EsprimRandValue)
            .map_err(|_| KdfError::Length {
                name: "esprimRandValue",
                expected: 16,
                got: b.len(),
            })
    }
}

/// Keys that may serve as pairwiseESPrimKey (TS-0003 §8.4.2 phase A).
pub trait PairwiseKey {
    /// The key bytes.
    fn key_bytes(&self) -> &[u8];
}
impl PairwiseKey for PairwiseEsprimKey {
    fn key_bytes(&self) -> &[u8] {
        self.expose_secret()
    }
}
impl PairwiseKey for PairwiseE2eKey {
    fn key_bytes(&self) -> &[u8] {
        self.expose_secret()
    }
}

/// sessionESPrimKey = HMAC-SHA256(pairwiseESPrimKey, receiverESPrimRandObject ||
/// originatorESPrimRandObject || "oneM2M HMAC-SHA256 sessionESPrimKey derivation algorithm")
/// (TS-0003 §10.3.8.2). Each RandObject contributes its 16-byte `esprimRandValue` (BRIEF A14);
/// the receiver's comes first and the label last.
pub fn session_esprim_key(
    pairwise: &impl PairwiseKey,
    receiver: &EsprimRandValue,
    originator: &EsprimRandValue,
) -> SessionEsprimKey {
    seal(
        hmac_sha256(
            pairwise.key_bytes(),
            &[&receiver.0, &originator.0, LABEL_SESSION_ESPRIM.as_bytes()],
        ),
        SessionEsprimKey::from_array,
    )
}

// ---------------------------------------------------------------------------------------------
// Seed 002: Ksx
// ---------------------------------------------------------------------------------------------

/// The Rand the IN-CSE generates for a group security association (seed 002): 16 bytes, fresh per
/// group SA (BRIEF A33). Public (it travels through the gateway).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GroupRand(pub [u8; 16]);

impl GroupRand {
    /// Exactly 16 bytes.
    pub fn from_bytes(b: &[u8]) -> Result<Self, KdfError> {
        b.try_into().map(GroupRand).map_err(|_| KdfError::Length {
            name: "Rand",
            expected: 16,
            got: b.len(),
        })
    }
}

/// Ksx = HMAC-SHA-256(Kpsaxi, "oneM2M Group Secure Connection Key derivation" || Enrolee-Ax-ID ||
/// Rand) (seed 002 NOTE 5). KsxId := KpsaxiId; key stores must keep Ksx apart from Kpsaxi (A33).
pub fn ksx(kpsaxi: &Kpsa, enrolee_ax_id: &KdfIdentifier, rand: &GroupRand) -> Ksx {
    seal(
        hmac_sha256(
            kpsaxi.expose_secret(),
            &[LABEL_KSX.as_bytes(), enrolee_ax_id.as_bytes(), &rand.0],
        ),
        Ksx::from_array,
    )
}

/// Which derivation turns Ke into the key of an Enrolment Target (BRIEF A9): TS-0003 §10.3.7
/// (SUID-bound, with the SUID as ASCII decimal or as one octet, A7), or the legacy §10.3.2 (Km,
/// MAF targets named by FQDN) / §10.3.3 (Kpsa, CSE/AE targets) derivations, which ignore the
/// SUID. The MEF announces it at enrolment (`keyDerivation` of `<mefClientReg>`), so the
/// Enrolee derives what the MEF serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum KeyDerivation {
    /// §10.3.7, SUID as ASCII decimal (the default, A7).
    #[default]
    #[serde(rename = "10.3.7-ascii")]
    UsageAscii,
    /// §10.3.7, SUID as one octet.
    #[serde(rename = "10.3.7-octet")]
    UsageOctet,
    /// §10.3.2 / §10.3.3.
    #[serde(rename = "legacy")]
    Legacy,
}

/// The key of an Enrolment Target, typed by the derivation that made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetKey {
    /// TS-0003 §10.3.7.
    UsageConstrained(UsageConstrainedKey),
    /// TS-0003 §10.3.2 (a MAF target, named by FQDN).
    Km(Km),
    /// TS-0003 §10.3.3 (a CSE/AE target, named by an absolute ID).
    Kpsa(Kpsa),
}

impl TargetKey {
    /// The key bytes (32 for every derivation here), e.g. as a (D)TLS PSK.
    pub fn expose_secret(&self) -> &[u8] {
        match self {
            TargetKey::UsageConstrained(k) => k.expose_secret(),
            TargetKey::Km(k) => k.expose_secret(),
            TargetKey::Kpsa(k) => k.expose_secret(),
        }
    }
}

impl KeyDerivation {
    /// The target key for `target_id` (a MAF/MEF FQDN or an absolute CSE-ID/AE-ID, A8).
    pub fn derive(self, ke: &Ke, suid: Suid, target_id: &KdfIdentifier) -> TargetKey {
        match self {
            KeyDerivation::UsageAscii => TargetKey::UsageConstrained(usage_constrained_key(
                ke,
                suid,
                target_id,
                SuidEncoding::AsciiDecimal,
            )),
            KeyDerivation::UsageOctet => TargetKey::UsageConstrained(usage_constrained_key(
                ke,
                suid,
                target_id,
                SuidEncoding::SingleOctet,
            )),
            KeyDerivation::Legacy if !target_id.as_str().starts_with('/') => {
                TargetKey::Km(km(ke, target_id))
            }
            KeyDerivation::Legacy => TargetKey::Kpsa(kpsa(ke, target_id)),
        }
    }
}
