//! Unit tests of the internal arithmetic against the RustCrypto `p256` implementation.

use p256::elliptic_curve::group::Group;
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::elliptic_curve::{Field, PrimeField};
use p256::{FieldBytes, FieldElement, ProjectivePoint, Scalar};
use rand_core::{OsRng, RngCore};

use super::field::{be_from_words, words_from_be, Fe, P};
use super::point::{self, Affine, Jac, OddMultiples, Proj};
use super::scalar;

fn random_fe_bytes() -> [u8; 32] {
    loop {
        let mut b = [0u8; 32];
        OsRng.fill_bytes(&mut b);
        if bool::from(FieldElement::from_bytes(&FieldBytes::from(b)).is_some()) {
            return b;
        }
    }
}

fn ref_fe(b: &[u8; 32]) -> FieldElement {
    FieldElement::from_bytes(&FieldBytes::from(*b)).unwrap()
}

fn my_fe(b: &[u8; 32]) -> Fe {
    Option::<Fe>::from(Fe::from_bytes(b)).unwrap()
}

fn same(a: &Fe, b: &FieldElement) -> bool {
    a.to_bytes()[..] == b.to_bytes()[..]
}

fn special_fe_bytes() -> Vec<[u8; 32]> {
    let p_minus = |k: u64| {
        let mut w = P;
        w[0] -= k;
        be_from_words(&w)
    };
    let mut one = [0u8; 32];
    one[31] = 1;
    vec![
        [0u8; 32],
        one,
        p_minus(1),
        p_minus(2),
        be_from_words(&[0, 0, 0, 1 << 63]),
    ]
}

#[test]
fn field_ops_match_p256() {
    let mut inputs = special_fe_bytes();
    for _ in 0..200 {
        inputs.push(random_fe_bytes());
    }
    for a in &inputs {
        for b in inputs.iter().take(12) {
            let (x, y) = (my_fe(a), my_fe(b));
            let (rx, ry) = (ref_fe(a), ref_fe(b));
            assert!(same(&x.mul(&y), &(rx * ry)));
            assert!(same(&x.add(&y), &(rx + ry)));
            assert!(same(&x.sub(&y), &(rx - ry)));
        }
        let x = my_fe(a);
        let rx = ref_fe(a);
        assert!(same(&x.square(), &rx.square()));
        assert!(same(&x.neg(), &(-rx)));
        assert!(same(&x.double(), &rx.double()));
        let rinv = Option::<FieldElement>::from(rx.invert()).unwrap_or(FieldElement::ZERO);
        assert!(same(&x.invert(), &rinv));
        assert!(same(&x.invert_vartime(), &rinv));
        assert_eq!(&x.to_bytes(), a);
    }
}

/// Values built from limbs that stress carry propagation (0, 1, 2^32 +- 1, 2^63, 2^64 - 1,
/// the limbs of p, ...), multiplied pairwise and compared with `p256`.
#[test]
fn field_mul_carry_edge_cases() {
    let limbs = [
        0u64,
        1,
        2,
        0xffff_ffff,
        0x1_0000_0000,
        0x1_0000_0001,
        1 << 63,
        u64::MAX,
        u64::MAX - 1,
        0xffff_ffff_0000_0000,
        0xffff_ffff_0000_0001,
        0xffff_fffe_ffff_ffff,
    ];
    let mut values = Vec::new();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    while values.len() < 400 {
        let mut w = [0u64; 4];
        for limb in w.iter_mut() {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            *limb = limbs[(state >> 33) as usize % limbs.len()];
        }
        let b = be_from_words(&w);
        if bool::from(Fe::from_bytes(&b).is_some()) {
            values.push(b);
        }
    }
    values.extend(special_fe_bytes());
    // The same limb patterns used directly as internal (Montgomery) representations.
    let raw: Vec<Fe> = values.iter().map(|b| Fe(words_from_be(b))).collect();
    for x in &raw {
        let rx = ref_fe(&x.to_bytes());
        assert!(same(&x.square(), &rx.square()));
        for y in raw.iter().step_by(5) {
            let ry = ref_fe(&y.to_bytes());
            assert!(same(&x.mul(y), &(rx * ry)));
            assert!(same(&x.add(y), &(rx + ry)));
            assert!(same(&x.sub(y), &(rx - ry)));
        }
    }
    for a in &values {
        let (x, rx) = (my_fe(a), ref_fe(a));
        assert!(same(&x.square(), &rx.square()));
        for b in values.iter().step_by(7) {
            let (y, ry) = (my_fe(b), ref_fe(b));
            assert!(same(&x.mul(&y), &(rx * ry)));
            assert!(same(&x.add(&y), &(rx + ry)));
            assert!(same(&x.sub(&y), &(rx - ry)));
        }
    }
}

#[test]
fn field_from_bytes_rejects_non_canonical() {
    assert!(bool::from(Fe::from_bytes(&be_from_words(&P)).is_none()));
    assert!(bool::from(Fe::from_bytes(&[0xff; 32]).is_none()));
    let mut w = P;
    w[0] -= 1;
    assert!(bool::from(Fe::from_bytes(&be_from_words(&w)).is_some()));
}

#[test]
fn scalar_invert_vartime_matches_p256() {
    for i in 0..300u64 {
        let s = if i < 3 {
            Scalar::from(i + 1)
        } else if i == 3 {
            -Scalar::ONE
        } else {
            Scalar::random(&mut OsRng)
        };
        let inv = scalar::invert_vartime(&s);
        assert_eq!(inv * s, Scalar::ONE);
    }
    assert_eq!(scalar::invert_vartime(&Scalar::ZERO), Scalar::ZERO);
}

fn scalar_from_i64(d: i64) -> Scalar {
    if d >= 0 {
        Scalar::from(d as u64)
    } else {
        -Scalar::from((-d) as u64)
    }
}

#[test]
fn recodings_sum_to_scalar() {
    let mut scalars = vec![Scalar::ZERO, Scalar::ONE, -Scalar::ONE, Scalar::from(64u64)];
    for _ in 0..100 {
        scalars.push(Scalar::random(&mut OsRng));
    }
    let two7 = Scalar::from(128u64);
    for s in &scalars {
        let words = scalar::to_words(s);
        let digits = scalar::recode_signed_w7(&words);
        let mut acc = Scalar::ZERO;
        for d in digits.iter().rev() {
            assert!((-64..=63).contains(d));
            acc = acc * two7 + scalar_from_i64(*d as i64);
        }
        assert_eq!(&acc, s);
        for w in [5u32, 8] {
            let naf = scalar::wnaf_vartime(&words, w);
            let mut acc = Scalar::ZERO;
            for d in naf.iter().rev() {
                assert!(*d == 0 || (d % 2 != 0 && (*d as i32).abs() < (1 << (w - 1))));
                acc = acc.double() + scalar_from_i64(*d as i64);
            }
            assert_eq!(&acc, s);
        }
    }
}

#[test]
fn wnaf_of_all_ones_has_top_digit() {
    let naf = scalar::wnaf_vartime(&[u64::MAX; 4], 5);
    assert_eq!(naf[256], 1);
}

fn ref_affine_bytes(p: &ProjectivePoint) -> [u8; 65] {
    let enc = p.to_affine().to_encoded_point(false);
    let mut out = [0u8; 65];
    out.copy_from_slice(enc.as_bytes());
    out
}

fn affine_from_ref(p: &ProjectivePoint) -> Affine {
    Affine::from_uncompressed(&ref_affine_bytes(p)).unwrap()
}

#[test]
fn generator_matches_p256() {
    assert_eq!(
        Affine::GENERATOR.to_uncompressed(),
        ref_affine_bytes(&ProjectivePoint::GENERATOR)
    );
    assert!(Affine::GENERATOR.is_on_curve_vartime());
}

#[test]
fn fixed_base_ct_matches_p256() {
    let mut scalars = vec![
        Scalar::ONE,
        Scalar::from(2u64),
        Scalar::from(64u64),
        Scalar::from(65u64),
        Scalar::from(127u64),
        Scalar::from(128u64),
        -Scalar::ONE,
        -Scalar::from(64u64),
        Scalar::from(0x12345u64),
    ];
    for _ in 0..40 {
        scalars.push(Scalar::random(&mut OsRng));
    }
    for s in &scalars {
        let p = point::mul_g_ct(&scalar::to_words(s));
        let (aff, finite) = p.to_affine_ct();
        assert!(bool::from(finite));
        assert_eq!(
            aff.to_uncompressed(),
            ref_affine_bytes(&(ProjectivePoint::GENERATOR * s))
        );
    }
    let zero = point::mul_g_ct(&[0; 4]);
    assert!(bool::from(zero.is_identity()));
}

#[test]
fn complete_addition_edge_cases() {
    let g = Affine::GENERATOR;
    // identity + G = G; G + G = 2G; (-G) + G = identity.
    let p = Proj::IDENTITY.add_mixed(&g);
    assert_eq!(p.to_affine_ct().0.to_uncompressed(), g.to_uncompressed());
    let p2 = p.add_mixed(&g);
    assert_eq!(
        p2.to_affine_ct().0.to_uncompressed(),
        ref_affine_bytes(&ProjectivePoint::GENERATOR.double())
    );
    let z = Proj::IDENTITY.add_mixed(&g.neg()).add_mixed(&g);
    assert!(bool::from(z.is_identity()));
}

#[test]
fn jacobian_ops_match_p256() {
    for _ in 0..20 {
        let a = ProjectivePoint::GENERATOR * Scalar::random(&mut OsRng);
        let b = ProjectivePoint::GENERATOR * Scalar::random(&mut OsRng);
        let (aa, ba) = (affine_from_ref(&a), affine_from_ref(&b));
        let ja = Jac::from_affine(&aa).double().add_mixed(&ba);
        assert_eq!(
            ja.to_affine_vartime().unwrap().to_uncompressed(),
            ref_affine_bytes(&(a.double() + b))
        );
        let jb = Jac::from_affine(&ba).double();
        let sum = ja.add(&jb);
        assert_eq!(
            sum.to_affine_vartime().unwrap().to_uncompressed(),
            ref_affine_bytes(&(a.double() + b + b.double()))
        );
        // Special cases.
        let d = Jac::from_affine(&aa).double();
        assert!(d.add(&Jac::from_affine(&aa.neg()).double()).is_infinity());
        assert_eq!(
            Jac::from_affine(&aa)
                .add_mixed(&aa)
                .to_affine_vartime()
                .unwrap()
                .to_uncompressed(),
            ref_affine_bytes(&a.double())
        );
        assert!(Jac::from_affine(&aa).add_mixed(&aa.neg()).is_infinity());
        assert!(d.x_equals_vartime(&d.to_affine_vartime().unwrap().x));
    }
}

#[test]
fn msm_matches_p256() {
    for i in 0..20 {
        let p = ProjectivePoint::GENERATOR * Scalar::random(&mut OsRng);
        let q = ProjectivePoint::GENERATOR * Scalar::random(&mut OsRng);
        let (a, b, c) = if i == 0 {
            (Scalar::ZERO, Scalar::ONE, -Scalar::ONE)
        } else {
            (
                Scalar::random(&mut OsRng),
                Scalar::random(&mut OsRng),
                Scalar::random(&mut OsRng),
            )
        };
        let tp = OddMultiples::new(&affine_from_ref(&p), 5);
        let tq = OddMultiples::new(&affine_from_ref(&q), 8);
        let (aw, bw, cw) = (
            scalar::to_words(&a),
            scalar::to_words(&b),
            scalar::to_words(&c),
        );
        let r = point::msm_vartime(&[(&aw, point::g_wnaf_table()), (&bw, &tp), (&cw, &tq)]);
        let expected = ProjectivePoint::GENERATOR * a + p * b + q * c;
        assert_eq!(
            r.to_affine_vartime().unwrap().to_uncompressed(),
            ref_affine_bytes(&expected)
        );
    }
    // A combination that cancels to the identity.
    let s = Scalar::random(&mut OsRng);
    let t = OddMultiples::new(&Affine::GENERATOR, 5);
    let (sw, nw) = (scalar::to_words(&s), scalar::to_words(&(-s)));
    let r = point::msm_vartime(&[(&sw, point::g_wnaf_table()), (&nw, &t)]);
    assert!(r.is_infinity());
}

#[test]
fn words_roundtrip() {
    let b = random_fe_bytes();
    assert_eq!(be_from_words(&words_from_be(&b)), b);
    let s = Scalar::random(&mut OsRng);
    assert_eq!(scalar::to_words(&s), words_from_be(&s.to_repr().into()));
}

#[test]
fn on_curve_check() {
    let mut enc = Affine::GENERATOR.to_uncompressed();
    assert!(Affine::from_uncompressed(&enc).is_some());
    enc[64] ^= 1;
    assert!(Affine::from_uncompressed(&enc).is_none());
    let g2 = ProjectivePoint::GENERATOR.double().to_affine();
    let enc = g2.to_encoded_point(false);
    assert!(Affine::from_uncompressed(enc.as_bytes()).is_some());
    let compressed = g2.to_encoded_point(true);
    assert!(Affine::from_uncompressed(compressed.as_bytes()).is_none());
}
