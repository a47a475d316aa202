//! ECCSI: Elliptic Curve-Based Certificateless Signatures for Identity-Based Encryption
//! ([RFC 6507]) over NIST P-256 with SHA-256 (N = 32).
//!
//! Roles and names follow the RFC:
//!
//! * The KMS ([`Kms`]) holds the KMS Secret Authentication Key ([`Ksak`]) and publishes the
//!   KMS Public Authentication Key ([`Kpak`]) = \[KSAK\]G (RFC 6507 §5.1).
//! * For a user identifier `ID` the KMS extracts ([`Kms::extract`], §5.1.1) a Secret Signing
//!   Key ([`Ssk`]) and a Public Validation Token ([`Pvt`]).
//! * The user validates them ([`SigningKey::new`], §5.1.2) and signs ([`SigningKey::sign`],
//!   §5.2.1); the [`Signature`] is `r || s || PVT` (129 octets).
//! * Anyone knowing KPAK verifies ([`verify`], [`Verifier`], §5.2.2).
//!
//! # Implementation notes
//!
//! * Operations on secret values (KSAK, SSK, the ephemerals `v` and `j`) are constant time:
//!   fixed-base multiplications use a signed radix-2^7 comb with full-table masked lookups
//!   and complete (exception-free) projective formulas, and scalar arithmetic uses
//!   `p256::Scalar`. The two inversions in signing (of the projective Z coordinate of `J`,
//!   and of `HE + r * SSK`) use multiplicative blinding by fresh secret random factors
//!   followed by a fast variable-time inversion (safegcd): the inverted value is uniformly
//!   random and independent of the secret.
//! * Verification handles public data only and runs in variable time. It evaluates
//!   `J = [s]([HE]G + [r]Y)`, `Y = [HS]PVT + KPAK`, as the single multi-scalar product
//!   `J = [s*HE]G + [s*r*HS]PVT + [s*r]KPAK` (scalars mod q; identical group element since
//!   the group has prime order q), with wNAF/Straus interleaving and precomputed tables for
//!   G (and, in a [`Verifier`], for KPAK). `Jx == r` is checked projectively
//!   (`X == r * Z^2`), which also rejects the point at infinity (`Z == 0`).
//!
//! [RFC 6507]: https://www.rfc-editor.org/rfc/rfc6507

mod field;
mod point;
mod safegcd;
mod scalar;

use core::fmt;

use p256::elliptic_curve::Field;
use p256::Scalar;
use rand_core::CryptoRngCore;
use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use field::Fe;
use point::{Affine, OddMultiples};

/// N: octet length of scalars, coordinates and hashes (RFC 6507 parameter N, for P-256 / SHA-256).
pub const N: usize = 32;
/// Length of an uncompressed point encoding `0x04 || x || y`, the canonical point
/// representation of RFC 6507.
pub const POINT_LEN: usize = 2 * N + 1;
/// Length of a [`Signature`]: `r || s || PVT` (RFC 6507 §5.2.1 step 7).
pub const SIGNATURE_LEN: usize = 2 * N + POINT_LEN;

/// wNAF width for a KPAK table held by a [`Verifier`].
const VERIFIER_KPAK_WIDTH: u32 = 8;
/// wNAF width for per-call tables (PVT, and KPAK in one-shot [`verify`]).
const EPHEMERAL_WIDTH: u32 = 5;

/// Errors of the ECCSI module.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EccsiError {
    /// A point encoding is not an uncompressed (`0x04 || x || y`) encoding of a point on
    /// P-256 with canonical coordinates.
    #[error("invalid elliptic curve point")]
    InvalidPoint,
    /// A scalar or coordinate is out of range (zero, or not below q resp. p).
    #[error("invalid scalar or coordinate value")]
    InvalidScalar,
    /// An input has the wrong length.
    #[error("invalid length: expected {expected} octets, got {got}")]
    InvalidLength {
        /// Required length in octets.
        expected: usize,
        /// Length received.
        got: usize,
    },
    /// The (SSK, PVT) pair does not validate against KPAK and ID (RFC 6507 §5.1.2).
    #[error("SSK validation failed (RFC 6507 section 5.1.2)")]
    SskValidationFailed,
    /// The signature does not verify (RFC 6507 §5.2.2).
    #[error("invalid signature")]
    InvalidSignature,
    /// A caller-supplied ephemeral value (`v` or `j`) hit one of the RFC's degenerate cases
    /// that require choosing a new value (RFC 6507 §5.1.1 step 5, §5.2.1 step 4).
    #[error("ephemeral value rejected; a new one must be chosen")]
    EphemeralRejected,
}

fn check_len(bytes: &[u8], expected: usize) -> Result<(), EccsiError> {
    if bytes.len() == expected {
        Ok(())
    } else {
        Err(EccsiError::InvalidLength {
            expected,
            got: bytes.len(),
        })
    }
}

fn to_array32(bytes: &[u8]) -> Result<[u8; 32], EccsiError> {
    check_len(bytes, N)?;
    let mut out = [0u8; 32];
    out.copy_from_slice(bytes);
    Ok(out)
}

/// Parses a secret scalar in [1, q-1].
fn secret_scalar_from_bytes(bytes: &[u8]) -> Result<Scalar, EccsiError> {
    let arr = Zeroizing::new(to_array32(bytes)?);
    let s = scalar::from_bytes_canonical(&arr);
    let valid = s.is_some() & !s.unwrap_or(Scalar::ZERO).is_zero();
    if bool::from(valid) {
        Ok(s.unwrap_or(Scalar::ZERO))
    } else {
        Err(EccsiError::InvalidScalar)
    }
}

/// Draws a uniformly random scalar in [1, q-1] by rejection sampling.
///
/// Like `p256::Scalar::random`, this loops until the RNG yields an acceptable value (a
/// rejection has probability about 2^-32 for a working CSPRNG).
fn random_scalar(rng: &mut impl CryptoRngCore) -> Scalar {
    let mut bytes = Zeroizing::new([0u8; 32]);
    loop {
        rng.fill_bytes(&mut bytes[..]);
        if let Ok(s) = secret_scalar_from_bytes(&bytes[..]) {
            return s;
        }
    }
}

fn hex_lower(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

// ---------------------------------------------------------------------------------------
// Public points: KPAK and PVT
// ---------------------------------------------------------------------------------------

macro_rules! public_point {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy)]
        pub struct $name {
            point: Affine,
            bytes: [u8; POINT_LEN],
        }

        impl $name {
            /// Parses the uncompressed encoding `0x04 || x || y` (RFC 6507: 65
            /// octets). Rejects other lengths and encodings (compressed, identity),
            /// non-canonical coordinates and points not on P-256.
            pub fn from_bytes(bytes: &[u8]) -> Result<Self, EccsiError> {
                check_len(bytes, POINT_LEN)?;
                let point = Affine::from_uncompressed(bytes).ok_or(EccsiError::InvalidPoint)?;
                Ok(Self::from_affine(point))
            }

            /// The uncompressed encoding `0x04 || x || y`.
            pub fn to_bytes(&self) -> [u8; POINT_LEN] {
                self.bytes
            }

            /// Lower-case hex of [`Self::to_bytes`].
            pub fn to_hex(&self) -> String {
                hex_lower(&self.bytes)
            }

            fn from_affine(point: Affine) -> Self {
                Self {
                    point,
                    bytes: point.to_uncompressed(),
                }
            }
        }

        impl PartialEq for $name {
            fn eq(&self, other: &Self) -> bool {
                self.bytes == other.bytes
            }
        }

        impl Eq for $name {}

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self.to_hex())
            }
        }
    };
}

public_point! {
    /// KMS Public Authentication Key: the point KPAK = \[KSAK\]G (RFC 6507).
    Kpak
}

public_point! {
    /// Public Validation Token: the point PVT = \[v\]G issued with an SSK
    /// (RFC 6507 §5.1.1). It is also the last part of every [`Signature`].
    Pvt
}

// ---------------------------------------------------------------------------------------
// Secret scalars: KSAK and SSK
// ---------------------------------------------------------------------------------------

macro_rules! secret_scalar {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone)]
        pub struct $name(Scalar);

        impl $name {
            /// Parses a 32-octet big-endian integer in \[1, q-1\].
            pub fn from_bytes(bytes: &[u8]) -> Result<Self, EccsiError> {
                secret_scalar_from_bytes(bytes).map(Self)
            }

            /// The 32-octet big-endian encoding (zeroized on drop).
            pub fn to_bytes(&self) -> Zeroizing<[u8; N]> {
                Zeroizing::new(scalar::to_bytes(&self.0))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "(<redacted>)"))
            }
        }

        impl Zeroize for $name {
            fn zeroize(&mut self) {
                self.0.zeroize();
            }
        }

        impl Drop for $name {
            fn drop(&mut self) {
                self.zeroize();
            }
        }

        impl ZeroizeOnDrop for $name {}

        impl ConstantTimeEq for $name {
            fn ct_eq(&self, other: &Self) -> Choice {
                self.0.ct_eq(&other.0)
            }
        }

        impl PartialEq for $name {
            /// Constant-time comparison.
            fn eq(&self, other: &Self) -> bool {
                self.ct_eq(other).into()
            }
        }

        impl Eq for $name {}
    };
}

secret_scalar! {
    /// KMS Secret Authentication Key (RFC 6507): a secret scalar in \[1, q-1\].
    /// Zeroized on drop; `Debug` is redacted.
    Ksak
}

secret_scalar! {
    /// Secret Signing Key (RFC 6507 §5.1.1): SSK = (KSAK + HS * v) mod q, a secret
    /// scalar in \[1, q-1\]. Zeroized on drop; `Debug` is redacted; equality is constant
    /// time.
    Ssk
}

/// On the wire (seed 001 step 6, BRIEF A32) an SSK is 32 octets in lowercase hex. Parsing
/// validates the range \[1, q-1\] and wipes the intermediate buffers, so a credential is a typed
/// secret from the moment it is read.
impl serde::Serialize for Ssk {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let b = self.to_bytes();
        let text = Zeroizing::new(hex::encode(&b[..]));
        s.serialize_str(&text)
    }
}

impl<'de> serde::Deserialize<'de> for Ssk {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Ssk;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an SSK: 32 octets in hex")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Ssk, E> {
                Ssk::from_hex(v).map_err(|e| E::custom(format_args!("SSK: {e}")))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Ssk, E> {
                let v = Zeroizing::new(v);
                self.visit_str(&v)
            }
        }
        d.deserialize_str(V)
    }
}

impl Ssk {
    /// Parses 32 octets in hex (either case), as on the wire.
    pub fn from_hex(text: &str) -> Result<Self, EccsiError> {
        let mut raw = Zeroizing::new([0u8; N]);
        hex::decode_to_slice(text, &mut raw[..]).map_err(|_| EccsiError::InvalidScalar)?;
        Ssk::from_bytes(&raw[..])
    }

    /// The lowercase hex encoding, in a zeroizing string.
    pub fn to_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(hex::encode(&self.to_bytes()[..]))
    }
}

impl Ksak {
    /// A uniformly random KSAK in \[1, q-1\].
    pub fn random(rng: &mut impl CryptoRngCore) -> Self {
        Ksak(random_scalar(rng))
    }
}

// ---------------------------------------------------------------------------------------
// Hashes HS and HE
// ---------------------------------------------------------------------------------------

/// `G` in uncompressed form, as hashed into HS.
fn generator_bytes() -> [u8; POINT_LEN] {
    Affine::GENERATOR.to_uncompressed()
}

/// HS = hash( G || KPAK || ID || PVT ) (RFC 6507 §5.1.1 step 3, §5.1.2 step 2, §5.2.2
/// step 2), with points in uncompressed form.
pub fn compute_hs(kpak: &Kpak, id: &[u8], pvt: &Pvt) -> [u8; N] {
    let mut h = Sha256::new();
    h.update(generator_bytes());
    h.update(kpak.bytes);
    h.update(id);
    h.update(pvt.bytes);
    h.finalize().into()
}

/// HE = hash( HS || r || M ) (RFC 6507 §5.2.1 step 3, §5.2.2 step 3).
pub fn compute_he(hs: &[u8; N], r: &[u8; N], msg: &[u8]) -> [u8; N] {
    let mut h = Sha256::new();
    h.update(hs);
    h.update(r);
    h.update(msg);
    h.finalize().into()
}

// ---------------------------------------------------------------------------------------
// KMS
// ---------------------------------------------------------------------------------------

/// Key Management Service state: KSAK and KPAK (RFC 6507 §5.1).
#[derive(Clone)]
pub struct Kms {
    ksak: Ksak,
    kpak: Kpak,
}

impl fmt::Debug for Kms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kms")
            .field("ksak", &self.ksak)
            .field("kpak", &self.kpak)
            .finish()
    }
}

/// The result of key extraction (RFC 6507 §5.1.1): the (SSK, PVT) pair for one ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserKeys {
    /// Secret Signing Key.
    pub ssk: Ssk,
    /// Public Validation Token.
    pub pvt: Pvt,
}

impl Kms {
    /// Creates a KMS with a fresh random KSAK and KPAK = \[KSAK\]G.
    pub fn generate(rng: &mut impl CryptoRngCore) -> Self {
        let ksak = Ksak::random(rng);
        let kpak = kpak_from_ksak(&ksak);
        Kms { ksak, kpak }
    }

    /// Restores a KMS from a persisted KSAK, recomputing KPAK = \[KSAK\]G.
    ///
    /// Fails with [`EccsiError::InvalidScalar`] if the KSAK is zero (only possible after it
    /// was explicitly zeroized).
    pub fn from_ksak(ksak: Ksak) -> Result<Self, EccsiError> {
        if bool::from(ksak.0.is_zero()) {
            return Err(EccsiError::InvalidScalar);
        }
        let kpak = kpak_from_ksak(&ksak);
        Ok(Kms { ksak, kpak })
    }

    /// The public KPAK.
    pub fn kpak(&self) -> &Kpak {
        &self.kpak
    }

    /// The secret KSAK (for persisting it).
    pub fn ksak(&self) -> &Ksak {
        &self.ksak
    }

    /// Extracts (SSK, PVT) for `id` (RFC 6507 §5.1.1) with a fresh random ephemeral `v`;
    /// the degenerate cases of step 5 (SSK = 0 or HS = 0 mod q) are retried with a new `v`.
    pub fn extract(&self, id: &[u8], rng: &mut impl CryptoRngCore) -> Result<UserKeys, EccsiError> {
        loop {
            let mut v = random_scalar(rng);
            let res = self.extract_inner(id, &v);
            v.zeroize();
            match res {
                Err(EccsiError::EphemeralRejected) => continue,
                other => return other,
            }
        }
    }

    /// Deterministic extraction with a caller-chosen `v` (32-octet big-endian, in
    /// \[1, q-1\]).
    ///
    /// **Test-only** (known-answer tests of RFC 6507 Appendix A). Never use a fixed or
    /// reused `v` in production: two SSKs sharing `v` reveal the KSAK.
    #[doc(hidden)]
    pub fn extract_with_v(&self, id: &[u8], v: &[u8; 32]) -> Result<UserKeys, EccsiError> {
        let mut v = secret_scalar_from_bytes(v)?;
        let res = self.extract_inner(id, &v);
        v.zeroize();
        res
    }

    fn extract_inner(&self, id: &[u8], v: &Scalar) -> Result<UserKeys, EccsiError> {
        // Step 2: PVT = [v]G (constant time; v != 0 so PVT is finite).
        let mut v_words = scalar::to_words(v);
        let pvt_proj = point::mul_g_ct(&v_words);
        v_words.zeroize();
        let (pvt_aff, finite) = pvt_proj.to_affine_ct();
        if !bool::from(finite) {
            return Err(EccsiError::EphemeralRejected);
        }
        let pvt = Pvt::from_affine(pvt_aff);
        // Step 3: HS.
        let hs = compute_hs(&self.kpak, id, &pvt);
        let hs_s = scalar::from_bytes_reduced(&hs);
        // Step 4: SSK = (KSAK + HS * v) mod q.
        let ssk = Ssk(self.ksak.0 + hs_s * v);
        // Step 5: reject SSK = 0 or HS = 0 (mod q).
        if bool::from(ssk.0.is_zero() | hs_s.is_zero()) {
            return Err(EccsiError::EphemeralRejected);
        }
        Ok(UserKeys { ssk, pvt })
    }
}

fn kpak_from_ksak(ksak: &Ksak) -> Kpak {
    let mut words = scalar::to_words(&ksak.0);
    let p = point::mul_g_ct(&words);
    words.zeroize();
    // KSAK is in [1, q-1], so the point is finite.
    let (aff, _) = p.to_affine_ct();
    Kpak::from_affine(aff)
}

// ---------------------------------------------------------------------------------------
// Signatures
// ---------------------------------------------------------------------------------------

/// An ECCSI signature `r || s || PVT` (RFC 6507 §5.2.1 step 7): 129 octets.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature {
    r: [u8; N],
    s: [u8; N],
    pvt: Pvt,
}

impl Signature {
    /// Parses `r || s || PVT`: exactly 129 octets, `r` in \[1, p-1\], `s` in \[1, q-1\],
    /// PVT an uncompressed point on P-256.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, EccsiError> {
        check_len(bytes, SIGNATURE_LEN)?;
        let r = to_array32(&bytes[..N])?;
        let s = to_array32(&bytes[N..2 * N])?;
        let pvt = Pvt::from_bytes(&bytes[2 * N..])?;
        parse_r(&r)?;
        parse_s(&s)?;
        Ok(Signature { r, s, pvt })
    }

    /// `r || s || PVT`.
    pub fn to_bytes(&self) -> [u8; SIGNATURE_LEN] {
        let mut out = [0u8; SIGNATURE_LEN];
        out[..N].copy_from_slice(&self.r);
        out[N..2 * N].copy_from_slice(&self.s);
        out[2 * N..].copy_from_slice(&self.pvt.bytes);
        out
    }

    /// `r`, the x-coordinate of J (32 octets, big-endian).
    pub fn r(&self) -> &[u8; N] {
        &self.r
    }

    /// `s` (32 octets, big-endian).
    pub fn s(&self) -> &[u8; N] {
        &self.s
    }

    /// The signer's PVT.
    pub fn pvt(&self) -> &Pvt {
        &self.pvt
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({})", hex_lower(&self.to_bytes()))
    }
}

/// `r` as a field element in [1, p-1].
fn parse_r(r: &[u8; N]) -> Result<Fe, EccsiError> {
    let fe = Option::<Fe>::from(Fe::from_bytes(r)).ok_or(EccsiError::InvalidScalar)?;
    if fe.is_zero_vartime() {
        return Err(EccsiError::InvalidScalar);
    }
    Ok(fe)
}

/// `s` as a scalar in [1, q-1].
fn parse_s(s: &[u8; N]) -> Result<Scalar, EccsiError> {
    let sc =
        Option::<Scalar>::from(scalar::from_bytes_canonical(s)).ok_or(EccsiError::InvalidScalar)?;
    if bool::from(sc.is_zero()) {
        return Err(EccsiError::InvalidScalar);
    }
    Ok(sc)
}

/// A validated signing key: ID, SSK, PVT, KPAK and the cached HS (RFC 6507 §5.1.2,
/// §5.2.1).
#[derive(Clone)]
pub struct SigningKey {
    id: Vec<u8>,
    ssk: Ssk,
    pvt: Pvt,
    kpak: Kpak,
    hs: [u8; N],
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("id", &hex_lower(&self.id))
            .field("ssk", &self.ssk)
            .field("pvt", &self.pvt)
            .field("kpak", &self.kpak)
            .finish()
    }
}

/// Blinding factors for the two inversions in signing.
struct Blinding {
    field: Fe,
    scalar: Scalar,
}

impl Drop for Blinding {
    fn drop(&mut self) {
        self.field.0.zeroize();
        self.scalar.zeroize();
    }
}

impl Blinding {
    /// From 64 uniformly random octets; `None` if either half is out of range or zero.
    fn from_bytes(bytes: &[u8; 64]) -> Option<Blinding> {
        let mut fb = [0u8; 32];
        let mut sb = [0u8; 32];
        fb.copy_from_slice(&bytes[..32]);
        sb.copy_from_slice(&bytes[32..]);
        let field = Fe::from_bytes(&fb);
        let scalar = scalar::from_bytes_canonical(&sb);
        fb.zeroize();
        sb.zeroize();
        let ok = field.is_some()
            & scalar.is_some()
            & !field.unwrap_or(Fe::ZERO).is_zero()
            & !scalar.unwrap_or(Scalar::ZERO).is_zero();
        if bool::from(ok) {
            Some(Blinding {
                field: field.unwrap_or(Fe::ONE),
                scalar: scalar.unwrap_or(Scalar::ONE),
            })
        } else {
            None
        }
    }
}

impl SigningKey {
    /// Validates (SSK, PVT) for `id` against `kpak` as the user must on receipt
    /// (RFC 6507 §5.1.2): PVT is a point on the curve (guaranteed by [`Pvt`]), HS =
    /// hash(G || KPAK || ID || PVT) (rejected if 0 mod q), and \[SSK\]G = KPAK + \[HS\]PVT.
    pub fn new(kpak: &Kpak, id: &[u8], ssk: Ssk, pvt: Pvt) -> Result<Self, EccsiError> {
        if bool::from(ssk.0.is_zero()) {
            return Err(EccsiError::InvalidScalar);
        }
        let hs = compute_hs(kpak, id, &pvt);
        let hs_s = scalar::from_bytes_reduced(&hs);
        if bool::from(hs_s.is_zero()) {
            return Err(EccsiError::SskValidationFailed);
        }
        // Right-hand side from public values (variable time): KPAK + [HS]PVT.
        let table = OddMultiples::new(&pvt.point, EPHEMERAL_WIDTH);
        let hs_words = scalar::to_words(&hs_s);
        let rhs = point::msm_vartime(&[(&hs_words, &table)])
            .add_mixed(&kpak.point)
            .to_affine_vartime();
        // Left-hand side from the secret SSK (constant time).
        let mut ssk_words = scalar::to_words(&ssk.0);
        let lhs = point::mul_g_ct(&ssk_words);
        ssk_words.zeroize();
        let (lhs_aff, lhs_finite) = lhs.to_affine_ct();
        let ok = match rhs {
            Some(rhs) => bool::from(lhs_finite & lhs_aff.ct_eq(&rhs)),
            None => false,
        };
        if !ok {
            return Err(EccsiError::SskValidationFailed);
        }
        Ok(SigningKey {
            id: id.to_vec(),
            ssk,
            pvt,
            kpak: *kpak,
            hs,
        })
    }

    /// The signer's identifier.
    pub fn id(&self) -> &[u8] {
        &self.id
    }

    /// The signer's PVT.
    pub fn pvt(&self) -> &Pvt {
        &self.pvt
    }

    /// The KMS public key this key was validated against.
    pub fn kpak(&self) -> &Kpak {
        &self.kpak
    }

    /// The cached HS = hash(G || KPAK || ID || PVT).
    pub fn hs(&self) -> &[u8; N] {
        &self.hs
    }

    /// Signs `msg` (RFC 6507 §5.2.1) with a fresh random ephemeral `j` (and fresh blinding
    /// factors), retrying with a new `j` in the degenerate cases of the RFC.
    pub fn sign(&self, msg: &[u8], rng: &mut impl CryptoRngCore) -> Signature {
        let mut buf = Zeroizing::new([0u8; 96]);
        loop {
            rng.fill_bytes(&mut buf[..]);
            let Ok(mut j) = secret_scalar_from_bytes(&buf[..32]) else {
                continue;
            };
            let mut bb = Zeroizing::new([0u8; 64]);
            bb.copy_from_slice(&buf[32..]);
            let Some(blind) = Blinding::from_bytes(&bb) else {
                j.zeroize();
                continue;
            };
            let res = self.sign_inner(msg, &j, &blind);
            j.zeroize();
            if let Ok(sig) = res {
                return sig;
            }
        }
    }

    /// Deterministic signing with a caller-chosen ephemeral `j` (32-octet big-endian, in
    /// \[1, q-1\]); the blinding factors are derived from the secret inputs.
    ///
    /// **Test-only** (known-answer tests of RFC 6507 Appendix A). Never use a fixed or
    /// reused `j` in production: two signatures sharing `j` reveal the SSK.
    #[doc(hidden)]
    pub fn sign_with_j(&self, msg: &[u8], j: &[u8; 32]) -> Result<Signature, EccsiError> {
        let mut js = secret_scalar_from_bytes(j)?;
        let ssk_bytes = self.ssk.to_bytes();
        let mut counter = 0u32;
        let blind = loop {
            let mut h = Sha256::new();
            h.update(b"m2msec ECCSI sign_with_j blinding");
            h.update(&ssk_bytes[..]);
            h.update(j);
            h.update(msg);
            h.update(counter.to_be_bytes());
            let mut bb = Zeroizing::new([0u8; 64]);
            bb[..32].copy_from_slice(&h.clone().chain_update([0u8]).finalize());
            bb[32..].copy_from_slice(&h.chain_update([1u8]).finalize());
            if let Some(b) = Blinding::from_bytes(&bb) {
                break b;
            }
            counter = counter.wrapping_add(1);
        };
        let res = self.sign_inner(msg, &js, &blind);
        js.zeroize();
        res
    }

    fn sign_inner(
        &self,
        msg: &[u8],
        j: &Scalar,
        blind: &Blinding,
    ) -> Result<Signature, EccsiError> {
        // Steps 1-2: J = [j]G (constant time), r = Jx.
        let mut j_words = scalar::to_words(j);
        let mut jp = point::mul_g_ct(&j_words);
        j_words.zeroize();
        if bool::from(jp.is_identity()) {
            // Unreachable for j in [1, q-1].
            return Err(EccsiError::EphemeralRejected);
        }
        // Jx = X / Z, inverting the blinded Z * b (uniformly random) in variable time.
        let zb = jp.z().mul(&blind.field);
        let jx = jp.x().mul(&zb.invert_vartime()).mul(&blind.field);
        jp.zeroize();
        let r = jx.to_bytes();
        if jx.is_zero_vartime() {
            // Jx is public from here on; Jx = 0 would fail verification (§5.2.2 step 6).
            return Err(EccsiError::EphemeralRejected);
        }
        // Step 3: HE = hash(HS || r || M).
        let he = compute_he(&self.hs, &r, msg);
        let he_s = scalar::from_bytes_reduced(&he);
        let r_s = scalar::from_bytes_reduced(&r);
        // Step 4: HE + r * SSK must be non-zero mod q.
        let mut k = he_s + r_s * self.ssk.0;
        if bool::from(k.is_zero()) {
            k.zeroize();
            return Err(EccsiError::EphemeralRejected);
        }
        // Step 5: s' = (HE + r * SSK)^-1 * j mod q, inverting the blinded k * b.
        let mut kb = k * blind.scalar;
        let mut kinv = scalar::invert_vartime(&kb) * blind.scalar;
        let s_prime = kinv * j;
        k.zeroize();
        kb.zeroize();
        kinv.zeroize();
        // Step 6: s = s' if it fits in N octets, else q - s'. For P-256, s' < q < 2^256
        // always fits, so s = s'.
        let s = scalar::to_bytes(&s_prime);
        Ok(Signature {
            r,
            s,
            pvt: self.pvt,
        })
    }
}

// ---------------------------------------------------------------------------------------
// Verification
// ---------------------------------------------------------------------------------------

/// A verifier for signatures under one KPAK, with a precomputed table of multiples of
/// KPAK (RFC 6507 §5.2.2).
#[derive(Clone)]
pub struct Verifier {
    kpak: Kpak,
    table: OddMultiples,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("kpak", &self.kpak)
            .finish()
    }
}

impl Verifier {
    /// Precomputes the KPAK table (and, once per process, the tables for G).
    pub fn new(kpak: &Kpak) -> Self {
        point::precompute_tables();
        Verifier {
            kpak: *kpak,
            table: OddMultiples::new(&kpak.point, VERIFIER_KPAK_WIDTH),
        }
    }

    /// The KPAK signatures are verified against.
    pub fn kpak(&self) -> &Kpak {
        &self.kpak
    }

    /// Verifies `sig` on `msg` by the user `id` (RFC 6507 §5.2.2).
    pub fn verify(&self, id: &[u8], msg: &[u8], sig: &Signature) -> Result<(), EccsiError> {
        verify_with_table(&self.kpak, &self.table, id, msg, sig)
    }
}

/// Builds the process-wide precomputed tables for the base point G now (about 160 KiB,
/// roughly a millisecond) instead of on first use by signing, extraction or verification.
pub fn precompute() {
    point::precompute_tables();
}

/// Verifies `sig` on `msg` by the user `id` under `kpak` (RFC 6507 §5.2.2). For many
/// verifications under the same KPAK, [`Verifier`] is faster.
pub fn verify(kpak: &Kpak, id: &[u8], msg: &[u8], sig: &Signature) -> Result<(), EccsiError> {
    let table = OddMultiples::new(&kpak.point, EPHEMERAL_WIDTH);
    verify_with_table(kpak, &table, id, msg, sig)
}

fn verify_with_table(
    kpak: &Kpak,
    kpak_table: &OddMultiples,
    id: &[u8],
    msg: &[u8],
    sig: &Signature,
) -> Result<(), EccsiError> {
    // Step 1: PVT is a valid point (invariant of `Pvt`). Range checks on r and s (already
    // enforced by `Signature::from_bytes`; repeated here for defence in depth).
    let r_fe = parse_r(&sig.r).map_err(|_| EccsiError::InvalidSignature)?;
    let s = parse_s(&sig.s).map_err(|_| EccsiError::InvalidSignature)?;
    // Steps 2-3: HS and HE.
    let hs = compute_hs(kpak, id, &sig.pvt);
    let he = compute_he(&hs, &sig.r, msg);
    let hs_s = scalar::from_bytes_reduced(&hs);
    let he_s = scalar::from_bytes_reduced(&he);
    let r_s = scalar::from_bytes_reduced(&sig.r);
    // Steps 4-5: J = [s]([HE]G + [r]([HS]PVT + KPAK))
    //              = [s*HE]G + [s*r*HS]PVT + [s*r]KPAK.
    let a = s * he_s;
    let c = s * r_s;
    let b = c * hs_s;
    let pvt_table = OddMultiples::new(&sig.pvt.point, EPHEMERAL_WIDTH);
    let (aw, bw, cw) = (
        scalar::to_words(&a),
        scalar::to_words(&b),
        scalar::to_words(&c),
    );
    let j = point::msm_vartime(&[
        (&aw, point::g_wnaf_table()),
        (&bw, &pvt_table),
        (&cw, kpak_table),
    ]);
    // Step 6: J is finite and Jx = r (mod p); r != 0 so Jx != 0.
    if j.x_equals_vartime(&r_fe) {
        Ok(())
    } else {
        Err(EccsiError::InvalidSignature)
    }
}

#[cfg(test)]
mod tests;
