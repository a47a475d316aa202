//! RFC 6507 (ECCSI) Appendix A known-answer tests and negative tests.
//!
//! The values are read from `tests/vectors/rfc6507-vectors.txt` (a copy of the project's
//! spec vector file); nothing is hard-coded here. `Y` and `J'` are recomputed with a plain,
//! unoptimised implementation of the RFC steps on top of the `p256` crate.

use std::collections::BTreeMap;

use m2msec_core::eccsi::{
    compute_he, compute_hs, verify, EccsiError, Kms, Kpak, Ksak, Pvt, Signature, SigningKey, Ssk,
    Verifier,
};
use p256::elliptic_curve::ops::Reduce;
use p256::elliptic_curve::sec1::{FromEncodedPoint, ToEncodedPoint};
use p256::elliptic_curve::PrimeField;
use p256::{AffinePoint, EncodedPoint, FieldBytes, ProjectivePoint, Scalar, U256};
use rand_core::OsRng;

const VECTORS: &str = include_str!("vectors/rfc6507-vectors.txt");

/// One `NAME [..] := value` block of the vector file.
#[derive(Debug)]
struct Entry {
    /// Raw text after `:=` on the header line.
    header: String,
    /// Hex groups found on the continuation lines (concatenated).
    hex: String,
}

/// Parses the vector file: headers are unindented `NAME [provenance] := ...` lines; the
/// indented lines that follow hold hex groups (an optional leading `=` is skipped). Lines
/// starting with `#` or `==` are comments.
fn parse_vectors(text: &str) -> BTreeMap<String, Entry> {
    let mut out: BTreeMap<String, Entry> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        if line.starts_with('#') || line.starts_with("==") || line.trim().is_empty() {
            continue;
        }
        if !line.starts_with(char::is_whitespace) {
            let (lhs, rhs) = line
                .split_once(":=")
                .unwrap_or_else(|| panic!("header without ':=': {line}"));
            let name = lhs
                .split_whitespace()
                .next()
                .unwrap_or_else(|| panic!("header without name: {line}"))
                .to_string();
            assert!(lhs.contains('['), "header without provenance: {line}");
            let prev = out.insert(
                name.clone(),
                Entry {
                    header: rhs.trim().to_string(),
                    hex: String::new(),
                },
            );
            assert!(prev.is_none(), "duplicate entry {name}");
            current = Some(name);
            continue;
        }
        let name = current
            .as_ref()
            .unwrap_or_else(|| panic!("continuation before any header: {line}"));
        let entry = out.get_mut(name).expect("current entry exists");
        for tok in line.split_whitespace() {
            if tok == "=" {
                continue;
            }
            assert!(
                tok.chars().all(|c| c.is_ascii_hexdigit()),
                "non-hex token {tok:?} in {name}"
            );
            entry.hex.push_str(tok);
        }
    }
    out
}

struct Vectors(BTreeMap<String, Entry>);

impl Vectors {
    fn load() -> Self {
        Vectors(parse_vectors(VECTORS))
    }

    fn entry(&self, name: &str) -> &Entry {
        self.0
            .get(name)
            .unwrap_or_else(|| panic!("missing vector {name}"))
    }

    /// The value of an entry: its hex groups, or (for `NAME := 12345 (hex; ...)` entries)
    /// the first token after `:=` read as hex.
    fn bytes(&self, name: &str) -> Vec<u8> {
        let e = self.entry(name);
        let hex_str = if e.hex.is_empty() {
            let tok = e.header.split_whitespace().next().unwrap_or("");
            if tok.len() % 2 == 1 {
                format!("0{tok}")
            } else {
                tok.to_string()
            }
        } else {
            e.hex.clone()
        };
        hex::decode(&hex_str).unwrap_or_else(|err| panic!("bad hex in {name}: {err}"))
    }

    /// A value as a 32-octet big-endian integer (left-padded with zeros).
    fn int32(&self, name: &str) -> [u8; 32] {
        let b = self.bytes(name);
        assert!(b.len() <= 32, "{name} longer than 32 octets");
        let mut out = [0u8; 32];
        out[32 - b.len()..].copy_from_slice(&b);
        out
    }

    /// The quoted string of an entry (`"..."` with `\0` escapes), if any.
    fn quoted(&self, name: &str) -> Option<Vec<u8>> {
        let h = &self.entry(name).header;
        let start = h.find('"')?;
        let end = h.rfind('"')?;
        (end > start).then(|| h[start + 1..end].replace("\\0", "\0").into_bytes())
    }
}

fn kms(v: &Vectors) -> Kms {
    Kms::from_ksak(Ksak::from_bytes(&v.int32("KSAK")).unwrap()).unwrap()
}

fn signing_key(v: &Vectors) -> SigningKey {
    let kms = kms(v);
    let id = v.bytes("ID");
    let keys = kms.extract_with_v(&id, &v.int32("v")).unwrap();
    SigningKey::new(kms.kpak(), &id, keys.ssk, keys.pvt).unwrap()
}

fn rfc_signature(v: &Vectors) -> Signature {
    Signature::from_bytes(&v.bytes("Signature")).unwrap()
}

// --- plain reference computations with the p256 crate ----------------------------------

fn ref_point(bytes: &[u8]) -> ProjectivePoint {
    let ep = EncodedPoint::from_bytes(bytes).unwrap();
    ProjectivePoint::from(
        Option::<AffinePoint>::from(AffinePoint::from_encoded_point(&ep)).unwrap(),
    )
}

fn ref_encode(p: &ProjectivePoint) -> Vec<u8> {
    p.to_affine().to_encoded_point(false).as_bytes().to_vec()
}

fn reduce(bytes: &[u8]) -> Scalar {
    let arr: [u8; 32] = bytes.try_into().unwrap();
    <Scalar as Reduce<U256>>::reduce_bytes(&FieldBytes::from(arr))
}

// --- known-answer tests ------------------------------------------------------------------

#[test]
fn vector_file_is_complete_and_well_formed() {
    let v = Vectors::load();
    for (name, len) in [
        ("KPAK", 65),
        ("PVT", 65),
        ("HS", 32),
        ("SSK", 32),
        ("J", 65),
        ("r", 32),
        ("HE", 32),
        ("s'", 32),
        ("s", 32),
        ("Signature", 129),
        ("Y", 65),
        ("J'", 65),
    ] {
        assert_eq!(v.bytes(name).len(), len, "length of {name}");
    }
    // The hex form of ID and M agrees with the quoted strings (with NULs).
    for name in ["ID", "M"] {
        assert_eq!(Some(v.bytes(name)), v.quoted(name), "{name}");
    }
    assert_eq!(v.int32("KSAK")[29..], [0x01, 0x23, 0x45]);
}

#[test]
fn kpak_from_ksak() {
    let v = Vectors::load();
    let kms = kms(&v);
    assert_eq!(kms.kpak().to_bytes().to_vec(), v.bytes("KPAK"));
    assert_eq!(
        Kpak::from_bytes(&v.bytes("KPAK")).unwrap(),
        *kms.kpak(),
        "parsing KPAK"
    );
    assert_eq!(*kms.ksak().to_bytes(), v.int32("KSAK"));
}

#[test]
fn extraction_matches_pvt_hs_ssk() {
    let v = Vectors::load();
    let kms = kms(&v);
    let id = v.bytes("ID");
    let keys = kms.extract_with_v(&id, &v.int32("v")).unwrap();
    assert_eq!(keys.pvt.to_bytes().to_vec(), v.bytes("PVT"), "PVT");
    assert_eq!(
        compute_hs(kms.kpak(), &id, &keys.pvt).to_vec(),
        v.bytes("HS"),
        "HS"
    );
    assert_eq!(keys.ssk.to_bytes().to_vec(), v.bytes("SSK"), "SSK");
    assert_eq!(keys.ssk, Ssk::from_bytes(&v.bytes("SSK")).unwrap());
}

#[test]
fn ssk_validation_accepts_rfc_keys() {
    let v = Vectors::load();
    let kpak = Kpak::from_bytes(&v.bytes("KPAK")).unwrap();
    let ssk = Ssk::from_bytes(&v.bytes("SSK")).unwrap();
    let pvt = Pvt::from_bytes(&v.bytes("PVT")).unwrap();
    let key = SigningKey::new(&kpak, &v.bytes("ID"), ssk, pvt).unwrap();
    assert_eq!(key.hs().to_vec(), v.bytes("HS"));
    assert_eq!(key.id(), &v.bytes("ID")[..]);
}

#[test]
fn signing_with_j_matches_rfc() {
    let v = Vectors::load();
    let key = signing_key(&v);
    let msg = v.bytes("M");
    let sig = key.sign_with_j(&msg, &v.int32("j")).unwrap();
    // J = [j]G and r = Jx.
    let j_point = ProjectivePoint::GENERATOR * reduce(&v.int32("j"));
    assert_eq!(ref_encode(&j_point), v.bytes("J"), "J");
    assert_eq!(sig.r().to_vec(), v.bytes("J")[1..33].to_vec(), "r = Jx");
    assert_eq!(sig.r().to_vec(), v.bytes("r"), "r");
    assert_eq!(
        compute_he(key.hs(), sig.r(), &msg).to_vec(),
        v.bytes("HE"),
        "HE"
    );
    assert_eq!(sig.s().to_vec(), v.bytes("s'"), "s'");
    assert_eq!(sig.s().to_vec(), v.bytes("s"), "s");
    assert_eq!(sig.pvt().to_bytes().to_vec(), v.bytes("PVT"), "PVT");
    assert_eq!(sig.to_bytes().to_vec(), v.bytes("Signature"), "Signature");
    // Deterministic.
    assert_eq!(sig, key.sign_with_j(&msg, &v.int32("j")).unwrap());
}

#[test]
fn rfc_signature_verifies() {
    let v = Vectors::load();
    let kpak = Kpak::from_bytes(&v.bytes("KPAK")).unwrap();
    let sig = rfc_signature(&v);
    let (id, msg) = (v.bytes("ID"), v.bytes("M"));
    assert_eq!(verify(&kpak, &id, &msg, &sig), Ok(()));
    assert_eq!(Verifier::new(&kpak).verify(&id, &msg, &sig), Ok(()));
    assert_eq!(sig.to_bytes().to_vec(), v.bytes("Signature"));
}

#[test]
fn reference_y_and_j_prime_match_vectors() {
    let v = Vectors::load();
    let kpak = ref_point(&v.bytes("KPAK"));
    let pvt = ref_point(&v.bytes("PVT"));
    let hs = reduce(&v.bytes("HS"));
    let he = reduce(&v.bytes("HE"));
    let r = reduce(&v.bytes("r"));
    let s = Option::<Scalar>::from(Scalar::from_repr(FieldBytes::from(v.int32("s")))).unwrap();
    // Y = [HS]PVT + KPAK; J' = [s]([HE]G + [r]Y).
    let y = pvt * hs + kpak;
    assert_eq!(ref_encode(&y), v.bytes("Y"), "Y");
    let j = (ProjectivePoint::GENERATOR * he + y * r) * s;
    assert_eq!(ref_encode(&j), v.bytes("J'"), "J'");
    assert_eq!(ref_encode(&j)[1..33].to_vec(), v.bytes("r"));
    // HS as computed by the library from the same inputs.
    let hs_lib = compute_hs(
        &Kpak::from_bytes(&v.bytes("KPAK")).unwrap(),
        &v.bytes("ID"),
        &Pvt::from_bytes(&v.bytes("PVT")).unwrap(),
    );
    assert_eq!(hs_lib.to_vec(), v.bytes("HS"));
}

// --- negative tests ----------------------------------------------------------------------

/// Verifies raw signature bytes with both entry points; `Ok` only if both accept.
fn verify_bytes(kpak: &Kpak, id: &[u8], msg: &[u8], sig: &[u8]) -> Result<(), EccsiError> {
    let sig = Signature::from_bytes(sig)?;
    let one_shot = verify(kpak, id, msg, &sig);
    let pre = Verifier::new(kpak).verify(id, msg, &sig);
    assert_eq!(
        one_shot, pre,
        "one-shot and precomputed verification disagree"
    );
    one_shot
}

#[test]
fn every_single_bit_flip_is_rejected() {
    let v = Vectors::load();
    let kpak = Kpak::from_bytes(&v.bytes("KPAK")).unwrap();
    let (id, msg, sig) = (v.bytes("ID"), v.bytes("M"), v.bytes("Signature"));
    assert!(verify_bytes(&kpak, &id, &msg, &sig).is_ok());
    // Flip every bit of r, s and PVT.
    for bit in 0..sig.len() * 8 {
        let mut bad = sig.clone();
        bad[bit / 8] ^= 1 << (bit % 8);
        assert!(
            verify_bytes(&kpak, &id, &msg, &bad).is_err(),
            "signature bit {bit} flipped but accepted"
        );
    }
    // Flip every bit of the message and of the ID.
    for bit in 0..msg.len() * 8 {
        let mut bad = msg.clone();
        bad[bit / 8] ^= 1 << (bit % 8);
        assert_eq!(
            verify_bytes(&kpak, &id, &bad, &sig),
            Err(EccsiError::InvalidSignature),
            "message bit {bit}"
        );
    }
    for bit in 0..id.len() * 8 {
        let mut bad = id.clone();
        bad[bit / 8] ^= 1 << (bit % 8);
        assert_eq!(
            verify_bytes(&kpak, &bad, &msg, &sig),
            Err(EccsiError::InvalidSignature),
            "ID bit {bit}"
        );
    }
    // Truncated / extended message and ID.
    assert!(verify_bytes(&kpak, &id, &msg[..msg.len() - 1], &sig).is_err());
    assert!(verify_bytes(&kpak, &id, &[&msg[..], b"\0"].concat(), &sig).is_err());
    assert!(verify_bytes(&kpak, &id[..id.len() - 1], &msg, &sig).is_err());
    assert!(verify_bytes(&kpak, b"", &msg, &sig).is_err());
}

#[test]
fn wrong_kpak_is_rejected() {
    let v = Vectors::load();
    let (id, msg, sig) = (v.bytes("ID"), v.bytes("M"), v.bytes("Signature"));
    let other = Kms::generate(&mut OsRng);
    assert_eq!(
        verify_bytes(other.kpak(), &id, &msg, &sig),
        Err(EccsiError::InvalidSignature)
    );
    // KPAK = PVT and KPAK = G are also wrong keys.
    let pvt_as_kpak = Kpak::from_bytes(&v.bytes("PVT")).unwrap();
    assert!(verify_bytes(&pvt_as_kpak, &id, &msg, &sig).is_err());
    let g = Kpak::from_bytes(&ref_encode(&ProjectivePoint::GENERATOR)).unwrap();
    assert!(verify_bytes(&g, &id, &msg, &sig).is_err());
}

fn be32(words_hex: &str) -> [u8; 32] {
    let b = hex::decode(words_hex).unwrap();
    let mut out = [0u8; 32];
    out.copy_from_slice(&b);
    out
}

const P_HEX: &str = "ffffffff00000001000000000000000000000000ffffffffffffffffffffffff";
const Q_HEX: &str = "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551";

#[test]
fn out_of_range_r_and_s_are_rejected() {
    let v = Vectors::load();
    let kpak = Kpak::from_bytes(&v.bytes("KPAK")).unwrap();
    let (id, msg, sig) = (v.bytes("ID"), v.bytes("M"), v.bytes("Signature"));
    let with = |r: Option<[u8; 32]>, s: Option<[u8; 32]>| {
        let mut b = sig.clone();
        if let Some(r) = r {
            b[..32].copy_from_slice(&r);
        }
        if let Some(s) = s {
            b[32..64].copy_from_slice(&s);
        }
        b
    };
    let p = be32(P_HEX);
    let q = be32(Q_HEX);
    // q - s is in range and, as [q - s](..) = -J has the same x-coordinate, (r, q - s) is
    // also a valid signature: RFC 6507 §5.2.1 step 6 relies on exactly this equivalence.
    let s_val = v.int32("s");
    let mut q_minus_s = [0u8; 32];
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let mut t = q[i] as i16 - s_val[i] as i16 - borrow;
        borrow = 0;
        if t < 0 {
            t += 256;
            borrow = 1;
        }
        q_minus_s[i] = t as u8;
    }
    let neg_s = with(None, Some(q_minus_s));
    assert!(Signature::from_bytes(&neg_s).is_ok());
    assert_eq!(verify_bytes(&kpak, &id, &msg, &neg_s), Ok(()));
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("r = 0", with(Some([0; 32]), None)),
        ("s = 0", with(None, Some([0; 32]))),
        ("r = s = 0", with(Some([0; 32]), Some([0; 32]))),
        ("s = q", with(None, Some(q))),
        ("s = 2^256 - 1", with(None, Some([0xff; 32]))),
        ("r = p", with(Some(p), None)),
        ("r = 2^256 - 1", with(Some([0xff; 32]), None)),
    ];
    for (what, bytes) in cases {
        assert!(
            Signature::from_bytes(&bytes).is_err(),
            "{what}: parsed as a signature"
        );
        assert!(verify_bytes(&kpak, &id, &msg, &bytes).is_err(), "{what}");
    }
}

#[test]
fn invalid_pvt_encodings_are_rejected() {
    let v = Vectors::load();
    let sig = v.bytes("Signature");
    let pvt = v.bytes("PVT");
    let mut bad_points: Vec<(&str, Vec<u8>)> = Vec::new();
    // Not on the curve: change y.
    let mut off = pvt.clone();
    off[64] ^= 0x01;
    bad_points.push(("off curve", off));
    // x >= p.
    let mut big_x = pvt.clone();
    big_x[1..33].copy_from_slice(&[0xff; 32]);
    bad_points.push(("x >= p", big_x));
    // Wrong tags for a 65-octet encoding (compressed / hybrid tags, identity).
    for tag in [0x00u8, 0x02, 0x03, 0x05, 0x06, 0x07] {
        let mut t = pvt.clone();
        t[0] = tag;
        bad_points.push(("wrong tag", t));
    }
    bad_points.push(("all zero", vec![0u8; 65]));
    // Identity / (0, 0) with the uncompressed tag.
    let mut zero = vec![0u8; 65];
    zero[0] = 0x04;
    bad_points.push(("(0, 0)", zero));
    for (what, point) in &bad_points {
        assert!(Pvt::from_bytes(point).is_err(), "PVT {what}");
        assert!(Kpak::from_bytes(point).is_err(), "KPAK {what}");
        let mut s = sig.clone();
        s[64..].copy_from_slice(point);
        assert!(
            Signature::from_bytes(&s).is_err(),
            "signature with PVT {what}"
        );
    }
    // Compressed form (33 octets), and the SEC1 identity (1 octet).
    let p = ref_point(&pvt).to_affine();
    let compressed = p.to_encoded_point(true);
    assert_eq!(compressed.as_bytes().len(), 33);
    assert!(Pvt::from_bytes(compressed.as_bytes()).is_err());
    assert!(Kpak::from_bytes(compressed.as_bytes()).is_err());
    assert!(Pvt::from_bytes(&[0x00]).is_err());
    let sig_compressed = [&sig[..64], compressed.as_bytes()].concat();
    assert!(Signature::from_bytes(&sig_compressed).is_err());
}

#[test]
fn wrong_lengths_are_errors_not_panics() {
    let v = Vectors::load();
    let sig = v.bytes("Signature");
    for len in 0..=200usize {
        let mut buf = vec![0x04u8; len];
        // Prefix of a real signature, padded, so parsing gets as far as possible.
        for (i, b) in buf.iter_mut().enumerate() {
            *b = sig[i % sig.len()];
        }
        if len != 129 {
            assert_eq!(
                Signature::from_bytes(&buf),
                Err(EccsiError::InvalidLength {
                    expected: 129,
                    got: len
                })
            );
        } else {
            assert!(Signature::from_bytes(&buf).is_ok());
        }
        if len != 65 {
            assert!(Pvt::from_bytes(&buf).is_err());
            assert!(Kpak::from_bytes(&buf).is_err());
            assert!(Pvt::from_bytes(&vec![0u8; len]).is_err());
        }
        if len != 32 {
            assert!(Ksak::from_bytes(&buf).is_err());
            assert!(Ssk::from_bytes(&buf).is_err());
        }
    }
    // Scalars out of range.
    assert!(Ksak::from_bytes(&[0u8; 32]).is_err());
    assert!(Ssk::from_bytes(&[0u8; 32]).is_err());
    assert!(Ssk::from_bytes(&be32(Q_HEX)).is_err());
    assert!(Ksak::from_bytes(&[0xff; 32]).is_err());
}

#[test]
fn ssk_validation_rejects_wrong_keys() {
    let v = Vectors::load();
    let kms = kms(&v);
    let id = v.bytes("ID");
    let keys = kms.extract_with_v(&id, &v.int32("v")).unwrap();
    let kpak = *kms.kpak();
    // SSK + 1.
    let mut ssk_plus = *keys.ssk.to_bytes();
    ssk_plus[31] = ssk_plus[31].wrapping_add(1);
    assert_eq!(
        SigningKey::new(&kpak, &id, Ssk::from_bytes(&ssk_plus).unwrap(), keys.pvt).err(),
        Some(EccsiError::SskValidationFailed)
    );
    // The PVT (and SSK) of another ID.
    let other = kms
        .extract(b"2011-02\0tel:+447700900124\0", &mut OsRng)
        .unwrap();
    assert_eq!(
        SigningKey::new(&kpak, &id, keys.ssk.clone(), other.pvt).err(),
        Some(EccsiError::SskValidationFailed)
    );
    assert_eq!(
        SigningKey::new(&kpak, &id, other.ssk.clone(), other.pvt).err(),
        Some(EccsiError::SskValidationFailed)
    );
    // The keys for a different ID string.
    assert!(SigningKey::new(
        &kpak,
        b"2011-02\0tel:+447700900123",
        keys.ssk.clone(),
        keys.pvt
    )
    .is_err());
    // Another KMS.
    let other_kms = Kms::generate(&mut OsRng);
    assert_eq!(
        SigningKey::new(other_kms.kpak(), &id, keys.ssk.clone(), keys.pvt).err(),
        Some(EccsiError::SskValidationFailed)
    );
    // And the right ones pass.
    assert!(SigningKey::new(&kpak, &id, keys.ssk, keys.pvt).is_ok());
}

#[test]
fn sign_with_invalid_j_is_an_error() {
    let v = Vectors::load();
    let key = signing_key(&v);
    assert_eq!(
        key.sign_with_j(b"m", &[0u8; 32]),
        Err(EccsiError::InvalidScalar)
    );
    assert_eq!(
        key.sign_with_j(b"m", &be32(Q_HEX)),
        Err(EccsiError::InvalidScalar)
    );
    let kms = kms(&v);
    assert_eq!(
        kms.extract_with_v(b"id", &[0u8; 32]).err(),
        Some(EccsiError::InvalidScalar)
    );
}

#[test]
fn random_signatures_verify_and_secrets_are_redacted() {
    let v = Vectors::load();
    let key = signing_key(&v);
    let kpak = Kpak::from_bytes(&v.bytes("KPAK")).unwrap();
    let verifier = Verifier::new(&kpak);
    for i in 0..20u8 {
        let msg = vec![i; i as usize];
        let sig = key.sign(&msg, &mut OsRng);
        assert_eq!(verifier.verify(key.id(), &msg, &sig), Ok(()));
        assert_eq!(verify(&kpak, key.id(), &msg, &sig), Ok(()));
        assert_eq!(Signature::from_bytes(&sig.to_bytes()), Ok(sig));
    }
    let kms = kms(&v);
    assert_eq!(format!("{:?}", kms.ksak()), "Ksak(<redacted>)");
    let dbg = format!("{kms:?} {key:?}");
    assert!(dbg.contains("<redacted>"));
    let ksak_hex = hex::encode(v.int32("KSAK"));
    let ssk_hex = hex::encode(v.bytes("SSK"));
    assert!(!dbg.to_lowercase().contains(&ksak_hex));
    assert!(!dbg.to_lowercase().contains(&ssk_hex));
    assert_eq!(
        format!("{kpak:?}"),
        format!("Kpak({})", hex::encode(v.bytes("KPAK")))
    );
}
