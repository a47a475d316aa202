//! Property tests for ECCSI (RFC 6507): sign/verify round trips with random KMS keys, IDs and
//! messages; parsers never panic; signatures do not transfer between messages, IDs or KMSs;
//! and the optimised verifier agrees with a plain implementation of the RFC steps.

use m2msec_core::eccsi::{
    compute_hs, verify, EccsiError, Kms, Kpak, Ksak, Pvt, Signature, SigningKey, Ssk, Verifier,
};
use p256::elliptic_curve::group::Group;
use p256::elliptic_curve::ops::Reduce;
use p256::elliptic_curve::point::AffineCoordinates;
use p256::elliptic_curve::sec1::{FromEncodedPoint, ToEncodedPoint};
use p256::elliptic_curve::{Field, PrimeField};
use p256::{AffinePoint, EncodedPoint, FieldBytes, FieldElement, ProjectivePoint, Scalar, U256};
use proptest::prelude::*;
use rand_core::{CryptoRng, RngCore};
use sha2::{Digest, Sha256};

/// Deterministic test RNG (SHA-256 in counter mode), so that proptest failures reproduce.
struct TestRng {
    seed: [u8; 32],
    counter: u64,
}

impl TestRng {
    fn new(seed: u64) -> Self {
        TestRng {
            seed: Sha256::digest(seed.to_be_bytes()).into(),
            counter: 0,
        }
    }
}

impl RngCore for TestRng {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        self.fill_bytes(&mut b);
        u32::from_le_bytes(b)
    }
    fn next_u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.fill_bytes(&mut b);
        u64::from_le_bytes(b)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for chunk in dest.chunks_mut(32) {
            let block = Sha256::new()
                .chain_update(self.seed)
                .chain_update(self.counter.to_be_bytes())
                .finalize();
            self.counter += 1;
            chunk.copy_from_slice(&block[..chunk.len()]);
        }
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl CryptoRng for TestRng {}

/// A plain, unoptimised implementation of RFC 6507 §5.2.2 with the `p256` crate: parse,
/// HS, HE, Y = [HS]PVT + KPAK, J = [s]([HE]G + [r]Y), check Jx = r and Jx != 0. Applies the
/// same strict encoding rules as the library (r in [1, p-1], s in [1, q-1], uncompressed
/// PVT).
fn reference_verify(kpak: &[u8], id: &[u8], msg: &[u8], sig: &[u8]) -> bool {
    if sig.len() != 129 || kpak.len() != 65 {
        return false;
    }
    let (r, s, pvt) = (&sig[..32], &sig[32..64], &sig[64..]);
    let parse_point = |b: &[u8]| -> Option<ProjectivePoint> {
        if b[0] != 0x04 {
            return None;
        }
        let ep = EncodedPoint::from_bytes(b).ok()?;
        Option::<AffinePoint>::from(AffinePoint::from_encoded_point(&ep)).map(ProjectivePoint::from)
    };
    let (Some(kpak_p), Some(pvt_p)) = (parse_point(kpak), parse_point(pvt)) else {
        return false;
    };
    let r_arr: [u8; 32] = r.try_into().unwrap();
    let s_arr: [u8; 32] = s.try_into().unwrap();
    // r must be a non-zero field element, s a non-zero scalar.
    let Some(r_fe) = Option::<FieldElement>::from(FieldElement::from_bytes(&r_arr.into())) else {
        return false;
    };
    let Some(s_sc) = Option::<Scalar>::from(Scalar::from_repr(s_arr.into())) else {
        return false;
    };
    if bool::from(r_fe.is_zero()) || bool::from(s_sc.is_zero()) {
        return false;
    }
    let g = ProjectivePoint::GENERATOR
        .to_affine()
        .to_encoded_point(false);
    let hs: [u8; 32] = Sha256::new()
        .chain_update(g.as_bytes())
        .chain_update(kpak)
        .chain_update(id)
        .chain_update(pvt)
        .finalize()
        .into();
    let he: [u8; 32] = Sha256::new()
        .chain_update(hs)
        .chain_update(r)
        .chain_update(msg)
        .finalize()
        .into();
    let red = |b: &[u8; 32]| <Scalar as Reduce<U256>>::reduce_bytes(&FieldBytes::from(*b));
    let y = pvt_p * red(&hs) + kpak_p;
    let j = (ProjectivePoint::GENERATOR * red(&he) + y * red(&r_arr)) * s_sc;
    if bool::from(j.is_identity()) {
        return false;
    }
    let jx = j.to_affine().x();
    jx[..] == *r && jx.iter().any(|&b| b != 0)
}

struct Setup {
    kms: Kms,
    key: SigningKey,
}

fn setup(seed: u64, id: &[u8]) -> Setup {
    let mut rng = TestRng::new(seed);
    let kms = Kms::generate(&mut rng);
    let keys = kms.extract(id, &mut rng).unwrap();
    let key = SigningKey::new(kms.kpak(), id, keys.ssk, keys.pvt).unwrap();
    Setup { kms, key }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn sign_verify_round_trip(
        seed in any::<u64>(),
        id in proptest::collection::vec(any::<u8>(), 0..80),
        msg in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let Setup { kms, key } = setup(seed, &id);
        let mut rng = TestRng::new(seed ^ 0x5eed);
        let sig = key.sign(&msg, &mut rng);
        let parsed = Signature::from_bytes(&sig.to_bytes()).unwrap();
        prop_assert_eq!(parsed, sig);
        prop_assert_eq!(verify(kms.kpak(), &id, &msg, &sig), Ok(()));
        prop_assert_eq!(Verifier::new(kms.kpak()).verify(&id, &msg, &sig), Ok(()));
        prop_assert!(reference_verify(&kms.kpak().to_bytes(), &id, &msg, &sig.to_bytes()));
        // HS is cached consistently.
        prop_assert_eq!(key.hs(), &compute_hs(kms.kpak(), &id, key.pvt()));
        // Keys survive serialisation.
        let kms2 = Kms::from_ksak(Ksak::from_bytes(&kms.ksak().to_bytes()[..]).unwrap()).unwrap();
        prop_assert_eq!(kms2.kpak(), kms.kpak());
    }

    #[test]
    fn signature_does_not_transfer(
        seed in any::<u64>(),
        id in proptest::collection::vec(any::<u8>(), 1..40),
        msg_a in proptest::collection::vec(any::<u8>(), 0..64),
        msg_b in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        prop_assume!(msg_a != msg_b);
        let Setup { kms, key } = setup(seed, &id);
        let mut rng = TestRng::new(seed.wrapping_add(1));
        let verifier = Verifier::new(kms.kpak());
        let sig = key.sign(&msg_a, &mut rng);
        prop_assert_eq!(verifier.verify(&id, &msg_a, &sig), Ok(()));
        prop_assert_eq!(verifier.verify(&id, &msg_b, &sig), Err(EccsiError::InvalidSignature));
        prop_assert_eq!(verify(kms.kpak(), &id, &msg_b, &sig), Err(EccsiError::InvalidSignature));
        // Not for another ID either, nor under another KMS.
        let mut other_id = id.clone();
        other_id[0] ^= 1;
        prop_assert!(verifier.verify(&other_id, &msg_a, &sig).is_err());
        let other = Kms::generate(&mut rng);
        prop_assert!(verify(other.kpak(), &id, &msg_a, &sig).is_err());
    }

    #[test]
    fn optimised_verify_matches_reference(
        seed in any::<u64>(),
        msg in proptest::collection::vec(any::<u8>(), 0..64),
        tamper in 0usize..6,
        pos in any::<usize>(),
        bit in 0u8..8,
        random_sig in proptest::collection::vec(any::<u8>(), 64),
    ) {
        let id = seed.to_be_bytes();
        let Setup { kms, key } = setup(seed, &id);
        let mut rng = TestRng::new(!seed);
        let mut sig = key.sign(&msg, &mut rng).to_bytes().to_vec();
        let mut msg_v = msg.clone();
        let mut id_v = id.to_vec();
        match tamper {
            0 => {}
            1 => sig[pos % 64] ^= 1 << bit,                     // r or s
            2 => sig[..64].copy_from_slice(&random_sig),        // random r, s; valid PVT
            3 => {
                // Another user's valid PVT.
                let other = kms.extract(b"someone else", &mut rng).unwrap();
                sig[64..].copy_from_slice(&other.pvt.to_bytes());
            }
            4 => msg_v.push(bit),
            _ => {
                let n = id_v.len();
                id_v[pos % n] ^= 1 << bit;
            }
        }
        let kpak = kms.kpak();
        let expected = reference_verify(&kpak.to_bytes(), &id_v, &msg_v, &sig);
        let got = Signature::from_bytes(&sig)
            .and_then(|s| verify(kpak, &id_v, &msg_v, &s))
            .is_ok();
        let got_pre = Signature::from_bytes(&sig)
            .and_then(|s| Verifier::new(kpak).verify(&id_v, &msg_v, &s))
            .is_ok();
        prop_assert_eq!(got, expected);
        prop_assert_eq!(got_pre, expected);
        prop_assert_eq!(expected, tamper == 0);
    }

    #[test]
    fn ssk_validation_matches_definition(seed in any::<u64>(), id in proptest::collection::vec(any::<u8>(), 0..40), delta in 1u64..1000) {
        let mut rng = TestRng::new(seed);
        let kms = Kms::generate(&mut rng);
        let keys = kms.extract(&id, &mut rng).unwrap();
        prop_assert!(SigningKey::new(kms.kpak(), &id, keys.ssk.clone(), keys.pvt).is_ok());
        // SSK + delta (mod q) must fail.
        let ssk = Scalar::from_repr(FieldBytes::from(*keys.ssk.to_bytes())).unwrap();
        let bad = ssk + Scalar::from(delta);
        let bad_bytes: [u8; 32] = bad.to_repr().into();
        if let Ok(bad_ssk) = Ssk::from_bytes(&bad_bytes) {
            prop_assert_eq!(
                SigningKey::new(kms.kpak(), &id, bad_ssk, keys.pvt).err(),
                Some(EccsiError::SskValidationFailed)
            );
        }
    }

    #[test]
    fn random_signatures_with_valid_pvt_are_rejected(rs in proptest::collection::vec(any::<u8>(), 64), seed in any::<u64>()) {
        let mut rng = TestRng::new(seed);
        let kms = Kms::generate(&mut rng);
        let keys = kms.extract(b"id", &mut rng).unwrap();
        let mut sig = rs.clone();
        sig.extend_from_slice(&keys.pvt.to_bytes());
        if let Ok(sig) = Signature::from_bytes(&sig) {
            prop_assert!(verify(kms.kpak(), b"id", b"msg", &sig).is_err());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = Signature::from_bytes(&bytes);
        let _ = Kpak::from_bytes(&bytes);
        let _ = Pvt::from_bytes(&bytes);
        let _ = Ksak::from_bytes(&bytes);
        let _ = Ssk::from_bytes(&bytes);
    }

    #[test]
    fn structured_inputs_never_panic(
        tag in prop_oneof![Just(0x04u8), any::<u8>()],
        body in proptest::collection::vec(any::<u8>(), 128),
    ) {
        // Right lengths and tag, random content: exercises the range and curve checks.
        let mut point = vec![tag];
        point.extend_from_slice(&body[..64]);
        let p = Pvt::from_bytes(&point);
        let k = Kpak::from_bytes(&point);
        prop_assert_eq!(p.is_ok(), k.is_ok());
        let mut sig = body[..64].to_vec();
        sig.extend_from_slice(&point);
        if let Ok(sig) = Signature::from_bytes(&sig) {
            // A random point on the curve (vanishingly unlikely) still must not verify.
            let kpak = Kpak::from_bytes(&point).unwrap();
            prop_assert!(verify(&kpak, b"id", b"msg", &sig).is_err());
        }
    }
}
