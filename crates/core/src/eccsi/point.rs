//! P-256 point arithmetic for ECCSI.
//!
//! * [`Affine`]: a finite point (x, y); never the point at infinity.
//! * [`Proj`]: homogeneous projective coordinates with the complete, exception-free
//!   formulas of Renes–Costello–Batina 2015 (a = -3), used for constant-time arithmetic on
//!   secret scalars.
//! * [`Jac`]: Jacobian coordinates with fast but variable-time formulas, used only on
//!   public data (verification, table generation).

use std::sync::OnceLock;

use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};

use super::field::Fe;
use super::scalar;

/// Curve coefficient b (Montgomery form).
const B: Fe = Fe::from_canonical_words([
    0x3bce_3c3e_27d2_604b,
    0x651d_06b0_cc53_b0f6,
    0xb3eb_bd55_7698_86bc,
    0x5ac6_35d8_aa3a_93e7,
]);

/// A finite point on P-256 (affine coordinates). Invariant: on the curve.
#[derive(Clone, Copy)]
pub(crate) struct Affine {
    pub(crate) x: Fe,
    pub(crate) y: Fe,
}

impl Affine {
    /// The standard base point G.
    pub(crate) const GENERATOR: Affine = Affine {
        x: Fe::from_canonical_words([
            0xf4a1_3945_d898_c296,
            0x7703_7d81_2deb_33a0,
            0xf8bc_e6e5_63a4_40f2,
            0x6b17_d1f2_e12c_4247,
        ]),
        y: Fe::from_canonical_words([
            0xcbb6_4068_37bf_51f5,
            0x2bce_3357_6b31_5ece,
            0x8ee7_eb4a_7c0f_9e16,
            0x4fe3_42e2_fe1a_7f9b,
        ]),
    };

    /// Parses an uncompressed SEC1 encoding `0x04 || x || y` (65 bytes), checking that the
    /// coordinates are canonical and that the point satisfies the curve equation (which also
    /// excludes the point at infinity, which has no such encoding). Variable time: the input
    /// is public.
    pub(crate) fn from_uncompressed(bytes: &[u8]) -> Option<Affine> {
        if bytes.len() != 65 || bytes[0] != 0x04 {
            return None;
        }
        let mut xb = [0u8; 32];
        let mut yb = [0u8; 32];
        xb.copy_from_slice(&bytes[1..33]);
        yb.copy_from_slice(&bytes[33..65]);
        let x = Option::<Fe>::from(Fe::from_bytes(&xb))?;
        let y = Option::<Fe>::from(Fe::from_bytes(&yb))?;
        let p = Affine { x, y };
        if p.is_on_curve_vartime() {
            Some(p)
        } else {
            None
        }
    }

    /// `y^2 == x^3 - 3x + b`.
    pub(crate) fn is_on_curve_vartime(&self) -> bool {
        let rhs = self
            .x
            .square()
            .mul(&self.x)
            .sub(&self.x.double().add(&self.x))
            .add(&B);
        self.y.square().eq_vartime(&rhs)
    }

    /// `0x04 || x || y`.
    pub(crate) fn to_uncompressed(self) -> [u8; 65] {
        let mut out = [0u8; 65];
        out[0] = 0x04;
        out[1..33].copy_from_slice(&self.x.to_bytes());
        out[33..65].copy_from_slice(&self.y.to_bytes());
        out
    }

    pub(crate) fn neg(&self) -> Affine {
        Affine {
            x: self.x,
            y: self.y.neg(),
        }
    }
}

impl ConstantTimeEq for Affine {
    fn ct_eq(&self, other: &Self) -> Choice {
        self.x.ct_eq(&other.x) & self.y.ct_eq(&other.y)
    }
}

// ---------------------------------------------------------------------------------------
// Homogeneous projective coordinates, complete formulas (constant time).
// ---------------------------------------------------------------------------------------

/// (X : Y : Z) with x = X/Z, y = Y/Z; the identity is (0 : 1 : 0).
#[derive(Clone, Copy)]
pub(crate) struct Proj {
    x: Fe,
    y: Fe,
    z: Fe,
}

impl Proj {
    pub(crate) const IDENTITY: Proj = Proj {
        x: Fe::ZERO,
        y: Fe::ONE,
        z: Fe::ZERO,
    };

    /// Complete mixed addition `self + rhs` for a = -3 (Renes–Costello–Batina 2015,
    /// Algorithm 5). Correct for every `self` (including the identity and `self = ±rhs`);
    /// `rhs` must be a point on the curve.
    #[inline(always)]
    pub(crate) fn add_mixed(&self, rhs: &Affine) -> Proj {
        let xx = self.x.mul(&rhs.x);
        let yy = self.y.mul(&rhs.y);
        let xy_pairs = self
            .x
            .add(&self.y)
            .mul(&rhs.x.add(&rhs.y))
            .sub(&xx.add(&yy));
        let yz_pairs = rhs.y.mul(&self.z).add(&self.y);
        let xz_pairs = rhs.x.mul(&self.z).add(&self.x);

        let bz_part = xz_pairs.sub(&B.mul(&self.z));
        let bz3_part = bz_part.double().add(&bz_part);
        let yy_m_bzz3 = yy.sub(&bz3_part);
        let yy_p_bzz3 = yy.add(&bz3_part);

        let z3 = self.z.double().add(&self.z);
        let bxz_part = B.mul(&xz_pairs).sub(&z3.add(&xx));
        let bxz3_part = bxz_part.double().add(&bxz_part);
        let xx3_m_zz3 = xx.double().add(&xx).sub(&z3);

        Proj {
            x: yy_p_bzz3.mul(&xy_pairs).sub(&yz_pairs.mul(&bxz3_part)),
            y: yy_p_bzz3.mul(&yy_m_bzz3).add(&xx3_m_zz3.mul(&bxz3_part)),
            z: yy_m_bzz3.mul(&yz_pairs).add(&xy_pairs.mul(&xx3_m_zz3)),
        }
    }

    pub(crate) fn is_identity(&self) -> Choice {
        self.z.is_zero()
    }

    pub(crate) fn z(&self) -> &Fe {
        &self.z
    }

    pub(crate) fn x(&self) -> &Fe {
        &self.x
    }

    /// Affine form using a constant-time inversion. For the identity the returned choice is
    /// false (and the coordinates are zero).
    pub(crate) fn to_affine_ct(self) -> (Affine, Choice) {
        let zinv = self.z.invert();
        (
            Affine {
                x: self.x.mul(&zinv),
                y: self.y.mul(&zinv),
            },
            !self.is_identity(),
        )
    }
}

impl ConditionallySelectable for Proj {
    fn conditional_select(a: &Self, b: &Self, choice: Choice) -> Self {
        Proj {
            x: Fe::conditional_select(&a.x, &b.x, choice),
            y: Fe::conditional_select(&a.y, &b.y, choice),
            z: Fe::conditional_select(&a.z, &b.z, choice),
        }
    }
}

impl zeroize::DefaultIsZeroes for Proj {}

impl Default for Proj {
    fn default() -> Self {
        Proj::IDENTITY
    }
}

// ---------------------------------------------------------------------------------------
// Jacobian coordinates (variable time; public data only).
// ---------------------------------------------------------------------------------------

/// (X : Y : Z) with x = X/Z^2, y = Y/Z^3; Z = 0 is the point at infinity.
#[derive(Clone, Copy)]
pub(crate) struct Jac {
    pub(crate) x: Fe,
    pub(crate) y: Fe,
    pub(crate) z: Fe,
}

impl Jac {
    pub(crate) const INFINITY: Jac = Jac {
        x: Fe::ONE,
        y: Fe::ONE,
        z: Fe::ZERO,
    };

    pub(crate) fn from_affine(p: &Affine) -> Jac {
        Jac {
            x: p.x,
            y: p.y,
            z: Fe::ONE,
        }
    }

    #[inline(always)]
    pub(crate) fn is_infinity(&self) -> bool {
        self.z.is_zero_vartime()
    }

    /// Doubling for a = -3 ("dbl-2001-b", computing Z3 = 2YZ: 4M + 4S).
    #[inline]
    pub(crate) fn double(&self) -> Jac {
        if self.is_infinity() {
            return *self;
        }
        let delta = self.z.square();
        let gamma = self.y.square();
        let beta = self.x.mul(&gamma);
        let t = self.x.sub(&delta).mul(&self.x.add(&delta));
        let alpha = t.double().add(&t);
        let beta4 = beta.double().double();
        let x3 = alpha.square().sub(&beta4.double());
        // Z3 = (Y + Z)^2 - gamma - delta = 2 Y Z; a squaring costs as much as a
        // multiplication here, so the product form saves three additions.
        let z3 = self.y.mul(&self.z).double();
        // 8 gamma^2 = 2 (2 gamma)^2.
        let gamma2_8 = gamma.double().square().double();
        let y3 = alpha.mul(&beta4.sub(&x3)).sub(&gamma2_8);
        // y = 0 cannot occur on P-256 (odd order), so z3 != 0 here.
        Jac {
            x: x3,
            y: y3,
            z: z3,
        }
    }

    /// Mixed addition `self + q` ("madd-2007-bl" with Z3 = 2 Z1 H: 8M + 3S) with all special cases handled.
    #[inline]
    pub(crate) fn add_mixed(&self, q: &Affine) -> Jac {
        if self.is_infinity() {
            return Jac::from_affine(q);
        }
        let z1z1 = self.z.square();
        let u2 = q.x.mul(&z1z1);
        let s2 = q.y.mul(&self.z).mul(&z1z1);
        let h = u2.sub(&self.x);
        let s = s2.sub(&self.y);
        if h.is_zero_vartime() {
            if s.is_zero_vartime() {
                return self.double();
            }
            return Jac::INFINITY;
        }
        let hh = h.square();
        let i = hh.double().double();
        let j = h.mul(&i);
        let r = s.double();
        let v = self.x.mul(&i);
        let x3 = r.square().sub(&j).sub(&v.double());
        let y3 = r.mul(&v.sub(&x3)).sub(&self.y.mul(&j).double());
        // (Z1 + H)^2 - Z1Z1 - HH = 2 Z1 H.
        let z3 = self.z.mul(&h).double();
        Jac {
            x: x3,
            y: y3,
            z: z3,
        }
    }

    /// General addition ("add-2007-bl" with Z3 = 2 Z1 Z2 H: 12M + 4S) with all special cases handled.
    pub(crate) fn add(&self, q: &Jac) -> Jac {
        if self.is_infinity() {
            return *q;
        }
        if q.is_infinity() {
            return *self;
        }
        let z1z1 = self.z.square();
        let z2z2 = q.z.square();
        let u1 = self.x.mul(&z2z2);
        let u2 = q.x.mul(&z1z1);
        let s1 = self.y.mul(&q.z).mul(&z2z2);
        let s2 = q.y.mul(&self.z).mul(&z1z1);
        let h = u2.sub(&u1);
        let s = s2.sub(&s1);
        if h.is_zero_vartime() {
            if s.is_zero_vartime() {
                return self.double();
            }
            return Jac::INFINITY;
        }
        let i = h.double().square();
        let j = h.mul(&i);
        let r = s.double();
        let v = u1.mul(&i);
        let x3 = r.square().sub(&j).sub(&v.double());
        let y3 = r.mul(&v.sub(&x3)).sub(&s1.mul(&j).double());
        // ((Z1 + Z2)^2 - Z1Z1 - Z2Z2) H = 2 Z1 Z2 H.
        let z3 = self.z.mul(&q.z).mul(&h).double();
        Jac {
            x: x3,
            y: y3,
            z: z3,
        }
    }

    /// Affine form (variable-time inversion); `None` for the point at infinity.
    pub(crate) fn to_affine_vartime(self) -> Option<Affine> {
        if self.is_infinity() {
            return None;
        }
        let zinv = self.z.invert_vartime();
        let zinv2 = zinv.square();
        Some(Affine {
            x: self.x.mul(&zinv2),
            y: self.y.mul(&zinv2).mul(&zinv),
        })
    }

    /// `x(self) == x` (as field elements) for a finite point, without an inversion.
    pub(crate) fn x_equals_vartime(&self, x: &Fe) -> bool {
        !self.is_infinity() && self.x.eq_vartime(&x.mul(&self.z.square()))
    }
}

/// Converts finite Jacobian points to affine with a single (variable-time) inversion.
/// Points at infinity (which callers never pass) come out as (0, 0).
pub(crate) fn batch_normalize_vartime(points: &[Jac]) -> Vec<Affine> {
    let mut acc = Vec::with_capacity(points.len());
    let mut prod = Fe::ONE;
    for p in points {
        acc.push(prod);
        if !p.is_infinity() {
            prod = prod.mul(&p.z);
        }
    }
    let mut inv = prod.invert_vartime();
    let mut out = vec![
        Affine {
            x: Fe::ZERO,
            y: Fe::ZERO
        };
        points.len()
    ];
    for (i, p) in points.iter().enumerate().rev() {
        if p.is_infinity() {
            continue;
        }
        let zinv = inv.mul(&acc[i]);
        inv = inv.mul(&p.z);
        let zinv2 = zinv.square();
        out[i] = Affine {
            x: p.x.mul(&zinv2),
            y: p.y.mul(&zinv2).mul(&zinv),
        };
    }
    out
}

// ---------------------------------------------------------------------------------------
// Constant-time fixed-base multiplication by G (signed radix-2^7 comb).
// ---------------------------------------------------------------------------------------

const COMB_WINDOWS: usize = 37;
const COMB_ENTRIES: usize = 64;

/// `table[i][k] = (k + 1) * 2^(7 i) * G` as Montgomery limbs `x || y`.
struct CombTable(Vec<[[u64; 8]; COMB_ENTRIES]>);

fn comb_table() -> &'static CombTable {
    static TABLE: OnceLock<CombTable> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut windows = Vec::with_capacity(COMB_WINDOWS);
        let mut base = Affine::GENERATOR;
        for _ in 0..COMB_WINDOWS {
            let mut jac = Vec::with_capacity(COMB_ENTRIES);
            let mut acc = Jac::from_affine(&base);
            jac.push(acc);
            for _ in 1..COMB_ENTRIES {
                acc = acc.add_mixed(&base);
                jac.push(acc);
            }
            // 128 * base = 2 * (64 * base).
            let next = acc.double();
            let aff = batch_normalize_vartime(&jac);
            let mut w = [[0u64; 8]; COMB_ENTRIES];
            for (dst, p) in w.iter_mut().zip(aff.iter()) {
                dst[..4].copy_from_slice(&p.x.0);
                dst[4..].copy_from_slice(&p.y.0);
            }
            windows.push(w);
            base = next.to_affine_vartime().unwrap_or(Affine::GENERATOR);
        }
        CombTable(windows)
    })
}

/// Forces the one-time generation of the fixed-base table(s).
pub(crate) fn precompute_tables() {
    let _ = comb_table();
    let _ = g_wnaf_table();
}

/// Constant-time `[k]G` for a secret scalar given as little-endian words (`k < 2^256`).
pub(crate) fn mul_g_ct(k: &[u64; 4]) -> Proj {
    use zeroize::Zeroize;
    let table = comb_table();
    let mut digits = scalar::recode_signed_w7(k);
    let mut acc = Proj::IDENTITY;
    for (window, &digit) in table.0.iter().zip(digits.iter()) {
        let d = digit as i32;
        let sign = d >> 31; // 0 or -1
        let abs = ((d ^ sign) - sign) as u32; // 0..=64
                                              // Build the selection masks and hide their values from the optimiser so that the
                                              // scan below stays a branch-free masked load of every entry.
        let mut masks = [0u64; COMB_ENTRIES];
        for (k, m) in masks.iter_mut().enumerate() {
            let diff = (abs ^ (k as u32 + 1)) as u64;
            *m = (diff.wrapping_sub(1) >> 63).wrapping_neg();
        }
        let masks = core::hint::black_box(masks);
        let mut sel = [0u64; 8];
        for (entry, m) in window.iter().zip(masks.iter()) {
            for (s, e) in sel.iter_mut().zip(entry.iter()) {
                *s |= e & m;
            }
        }
        let mut pt = Affine {
            x: Fe([sel[0], sel[1], sel[2], sel[3]]),
            y: Fe([sel[4], sel[5], sel[6], sel[7]]),
        };
        pt.y.conditional_negate(Choice::from((sign & 1) as u8));
        let sum = acc.add_mixed(&pt);
        // abs == 0: nothing selected, keep acc.
        let abs_is_zero = ((abs as u64).wrapping_sub(1) >> 63) as u8;
        acc = Proj::conditional_select(&sum, &acc, Choice::from(abs_is_zero));
        sel.zeroize();
        pt.x.0.zeroize();
        pt.y.0.zeroize();
    }
    digits.zeroize();
    acc
}

// ---------------------------------------------------------------------------------------
// Variable-time multi-scalar multiplication (verification).
// ---------------------------------------------------------------------------------------

/// Odd multiples `[1, 3, 5, ..., 2^(w-1) - 1] * P` in affine form, for width-w NAF.
#[derive(Clone)]
pub(crate) struct OddMultiples {
    pts: Vec<Affine>,
    w: u32,
}

impl OddMultiples {
    pub(crate) fn new(p: &Affine, w: u32) -> OddMultiples {
        let n = 1usize << (w - 2);
        let mut jac = Vec::with_capacity(n);
        jac.push(Jac::from_affine(p));
        if n > 1 {
            let p2 = Jac::from_affine(p).double();
            // For small tables, general additions of 2P are cheaper than normalising 2P
            // first (one extra inversion) and using mixed additions.
            let p2_affine = if n > 16 { p2.to_affine_vartime() } else { None };
            for i in 1..n {
                let next = match &p2_affine {
                    Some(a) => jac[i - 1].add_mixed(a),
                    None => jac[i - 1].add(&p2),
                };
                jac.push(next);
            }
        }
        OddMultiples {
            pts: batch_normalize_vartime(&jac),
            w,
        }
    }

    pub(crate) fn width(&self) -> u32 {
        self.w
    }

    #[inline(always)]
    fn add_digit(&self, acc: &Jac, d: i8) -> Jac {
        if d > 0 {
            acc.add_mixed(&self.pts[(d as usize) >> 1])
        } else {
            acc.add_mixed(&self.pts[((-(d as i32)) as usize) >> 1].neg())
        }
    }
}

/// Width of the wNAF table for G used in verification.
pub(crate) const G_WNAF_WIDTH: u32 = 8;

pub(crate) fn g_wnaf_table() -> &'static OddMultiples {
    static TABLE: OnceLock<OddMultiples> = OnceLock::new();
    TABLE.get_or_init(|| OddMultiples::new(&Affine::GENERATOR, G_WNAF_WIDTH))
}

/// Variable-time `sum k_i * P_i` (Straus interleaving with wNAF digits). Each term is a
/// scalar (little-endian words, public) and the odd-multiples table of its point.
pub(crate) fn msm_vartime(terms: &[(&[u64; 4], &OddMultiples)]) -> Jac {
    let nafs: Vec<[i8; 257]> = terms
        .iter()
        .map(|(k, t)| scalar::wnaf_vartime(k, t.width()))
        .collect();
    let top = nafs
        .iter()
        .filter_map(|n| n.iter().rposition(|&d| d != 0))
        .max();
    let mut acc = Jac::INFINITY;
    let Some(top) = top else {
        return acc;
    };
    for i in (0..=top).rev() {
        acc = acc.double();
        for (naf, (_, table)) in nafs.iter().zip(terms.iter()) {
            let d = naf[i];
            if d != 0 {
                acc = table.add_digit(&acc, d);
            }
        }
    }
    acc
}
