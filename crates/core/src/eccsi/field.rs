//! Arithmetic in the NIST P-256 base field GF(p), p = 2^256 - 2^224 + 2^192 + 2^96 - 1.
//!
//! Elements are kept in Montgomery form (`a * 2^256 mod p`), always fully reduced (< p).
//! All operations except the ones suffixed `_vartime` run in constant time with respect to
//! the values of their operands (no secret-dependent branches or memory accesses).

use subtle::{Choice, ConditionallySelectable, ConstantTimeEq, CtOption};

use super::safegcd;

/// The field prime p as little-endian 64-bit words.
pub(crate) const P: [u64; 4] = [
    0xffff_ffff_ffff_ffff,
    0x0000_0000_ffff_ffff,
    0x0000_0000_0000_0000,
    0xffff_ffff_0000_0001,
];

/// R^2 mod p, R = 2^256.
const R2: [u64; 4] = [
    0x0000_0000_0000_0003,
    0xffff_fffb_ffff_ffff,
    0xffff_ffff_ffff_fffe,
    0x0000_0004_ffff_fffd,
];

/// R^3 mod p (converts a plain inverse of a Montgomery value back into Montgomery form).
const R3: [u64; 4] = [
    0xffff_fffd_0000_000a,
    0xffff_ffed_ffff_fff7,
    0x0000_0005_ffff_fffc,
    0x0000_0018_0000_0001,
];

#[inline(always)]
const fn adc(a: u64, b: u64, carry: u64) -> (u64, u64) {
    let r = (a as u128) + (b as u128) + (carry as u128);
    (r as u64, (r >> 64) as u64)
}

/// `a - b - borrow`, where `borrow` is 0 or all-ones; returns the new borrow (0 or all-ones).
#[inline(always)]
const fn sbb(a: u64, b: u64, borrow: u64) -> (u64, u64) {
    let r = (a as u128).wrapping_sub((b as u128) + ((borrow >> 63) as u128));
    (r as u64, (r >> 64) as u64)
}

#[inline(always)]
const fn mac(a: u64, b: u64, c: u64, carry: u64) -> (u64, u64) {
    let r = (a as u128) + (b as u128) * (c as u128) + (carry as u128);
    (r as u64, (r >> 64) as u64)
}

/// Given a 257-bit value `w4:w3:w2:w1:w0 < 2p`, returns it reduced below p.
#[inline(always)]
const fn sub_p_if_needed(w0: u64, w1: u64, w2: u64, w3: u64, w4: u64) -> [u64; 4] {
    let (r0, b) = sbb(w0, P[0], 0);
    let (r1, b) = sbb(w1, P[1], b);
    let (r2, b) = sbb(w2, P[2], b);
    let (r3, b) = sbb(w3, P[3], b);
    let (_, b) = sbb(w4, 0, b);
    // b is all-ones iff w < p: keep w; otherwise take w - p.
    [
        (w0 & b) | (r0 & !b),
        (w1 & b) | (r1 & !b),
        (w2 & b) | (r2 & !b),
        (w3 & b) | (r3 & !b),
    ]
}

/// One Montgomery reduction step on `x4:x3:x2:x1:x0`: adds `x0 * p` (which clears the low
/// word) and shifts down by 64 bits.
///
/// For P-256, `-p^-1 mod 2^64 = 1` (so the multiplier is `x0` itself), `p[0] = 2^64 - 1`,
/// `p[1] = 2^32 - 1` and `p[2] = 0`: `x0 + x0 * p[0] = x0 * 2^64` and
/// `x0 * p[1] * 2^64 + x0 * 2^64 = x0 * 2^96`, so only `p[3]` needs a multiplication.
#[inline(always)]
const fn reduce_step(x0: u64, x1: u64, x2: u64, x3: u64, x4: u64) -> (u64, u64, u64, u64, u64) {
    let (y1, c) = adc(x1, x0 << 32, 0);
    let (y2, c) = adc(x2, x0 >> 32, c);
    let (y3, c) = mac(x3, x0, P[3], c);
    let (y4, y5) = adc(x4, c, 0);
    (y1, y2, y3, y4, y5)
}

/// Montgomery multiplication `a * b / 2^256 mod p` for `a, b < p` (coarsely integrated
/// operand scanning: each row `a[i] * b` is followed by one reduction step).
#[inline(always)]
const fn mont_mul(a: &[u64; 4], b: &[u64; 4]) -> [u64; 4] {
    // Row 0.
    let (x0, c) = mac(0, a[0], b[0], 0);
    let (x1, c) = mac(0, a[0], b[1], c);
    let (x2, c) = mac(0, a[0], b[2], c);
    let (x3, x4) = mac(0, a[0], b[3], c);
    let (mut t0, mut t1, mut t2, mut t3, mut t4) = reduce_step(x0, x1, x2, x3, x4);
    // Rows 1..3; the running value stays below 2p < 2^257 (t4 is 0 or 1).
    let mut i = 1;
    while i < 4 {
        let (x0, c) = mac(t0, a[i], b[0], 0);
        let (x1, c) = mac(t1, a[i], b[1], c);
        let (x2, c) = mac(t2, a[i], b[2], c);
        let (x3, c) = mac(t3, a[i], b[3], c);
        let (x4, x5) = adc(t4, c, 0);
        let (y1, y2, y3, y4, c) = reduce_step(x0, x1, x2, x3, x4);
        t0 = y1;
        t1 = y2;
        t2 = y3;
        t3 = y4;
        t4 = x5 + c;
        i += 1;
    }
    sub_p_if_needed(t0, t1, t2, t3, t4)
}

#[inline(always)]
const fn mont_square(a: &[u64; 4]) -> [u64; 4] {
    // A dedicated squaring was measured to be no faster than the multiplication here.
    mont_mul(a, a)
}

/// Montgomery reduction of a 256-bit value: `a / 2^256 mod p` (conversion out of
/// Montgomery form).
#[inline(always)]
const fn mont_reduce_256(a: &[u64; 4]) -> [u64; 4] {
    mont_mul(a, &[1, 0, 0, 0])
}

/// An element of GF(p) in Montgomery form.
#[derive(Clone, Copy, Default)]
pub(crate) struct Fe(pub(crate) [u64; 4]);

impl Fe {
    pub(crate) const ZERO: Fe = Fe([0; 4]);
    /// 1 in Montgomery form (R mod p).
    pub(crate) const ONE: Fe = Fe([
        0x0000_0000_0000_0001,
        0xffff_ffff_0000_0000,
        0xffff_ffff_ffff_ffff,
        0x0000_0000_ffff_fffe,
    ]);

    /// Converts canonical little-endian words (which must be `< p`) into Montgomery form.
    pub(crate) const fn from_canonical_words(w: [u64; 4]) -> Fe {
        Fe(mont_mul(&w, &R2))
    }

    /// Canonical (non-Montgomery) little-endian words of this element.
    pub(crate) const fn to_canonical_words(self) -> [u64; 4] {
        mont_reduce_256(&self.0)
    }

    /// Parses a 32-byte big-endian value; `None` unless it is `< p`.
    pub(crate) fn from_bytes(bytes: &[u8; 32]) -> CtOption<Fe> {
        let w = words_from_be(bytes);
        let lt = lt_words(&w, &P);
        CtOption::new(Fe::from_canonical_words(w), lt)
    }

    /// The 32-byte big-endian canonical encoding.
    pub(crate) fn to_bytes(self) -> [u8; 32] {
        be_from_words(&self.to_canonical_words())
    }

    #[inline(always)]
    pub(crate) const fn mul(&self, rhs: &Fe) -> Fe {
        Fe(mont_mul(&self.0, &rhs.0))
    }

    #[inline(always)]
    pub(crate) const fn square(&self) -> Fe {
        Fe(mont_square(&self.0))
    }

    #[inline(always)]
    pub(crate) const fn add(&self, rhs: &Fe) -> Fe {
        let a = &self.0;
        let b = &rhs.0;
        let (w0, c) = adc(a[0], b[0], 0);
        let (w1, c) = adc(a[1], b[1], c);
        let (w2, c) = adc(a[2], b[2], c);
        let (w3, w4) = adc(a[3], b[3], c);
        Fe(sub_p_if_needed(w0, w1, w2, w3, w4))
    }

    #[inline(always)]
    pub(crate) const fn sub(&self, rhs: &Fe) -> Fe {
        let a = &self.0;
        let b = &rhs.0;
        let (w0, bw) = sbb(a[0], b[0], 0);
        let (w1, bw) = sbb(a[1], b[1], bw);
        let (w2, bw) = sbb(a[2], b[2], bw);
        let (w3, bw) = sbb(a[3], b[3], bw);
        // Add p back if the subtraction underflowed (bw is then all-ones).
        let (w0, c) = adc(w0, P[0] & bw, 0);
        let (w1, c) = adc(w1, P[1] & bw, c);
        let (w2, c) = adc(w2, P[2] & bw, c);
        let (w3, _) = adc(w3, P[3] & bw, c);
        Fe([w0, w1, w2, w3])
    }

    #[inline(always)]
    pub(crate) const fn double(&self) -> Fe {
        self.add(self)
    }

    #[inline(always)]
    pub(crate) const fn neg(&self) -> Fe {
        Fe::ZERO.sub(self)
    }

    /// `self^(2^n)`.
    pub(crate) const fn sqn(&self, n: usize) -> Fe {
        let mut x = *self;
        let mut i = 0;
        while i < n {
            x = x.square();
            i += 1;
        }
        x
    }

    /// Constant-time inversion by Fermat's little theorem (`self^(p-2)`); maps 0 to 0.
    pub(crate) const fn invert(&self) -> Fe {
        // Addition chain for p - 2 (as used by the RustCrypto p256 crate).
        let t111 = self.mul(&self.mul(&self.square()).square());
        let t111111 = t111.mul(&t111.sqn(3));
        let x15 = t111111.sqn(6).mul(&t111111).sqn(3).mul(&t111);
        let x16 = x15.square().mul(self);
        let i53 = x16.sqn(16).mul(&x16).sqn(15);
        let x47 = x15.mul(&i53);
        x47.mul(&i53.sqn(17).mul(self).sqn(143).mul(&x47).sqn(47))
            .sqn(2)
            .mul(self)
    }

    /// Variable-time inversion (safegcd); maps 0 to 0. Only for public values, or for
    /// values blinded by a secret uniformly random factor.
    pub(crate) fn invert_vartime(&self) -> Fe {
        // self = aR; the plain inverse of aR is a^-1 R^-1; Montgomery-multiplying by R^3
        // gives a^-1 R, the Montgomery form of a^-1.
        let inv = safegcd::invert_vartime(&self.0, &safegcd::P_INFO);
        Fe(mont_mul(&inv, &R3))
    }

    pub(crate) fn is_zero(&self) -> Choice {
        self.ct_eq(&Fe::ZERO)
    }

    pub(crate) fn is_zero_vartime(&self) -> bool {
        self.0 == [0; 4]
    }

    pub(crate) fn eq_vartime(&self, other: &Fe) -> bool {
        self.0 == other.0
    }

    /// Conditionally negates in constant time.
    #[inline(always)]
    pub(crate) fn conditional_negate(&mut self, choice: Choice) {
        let n = self.neg();
        self.conditional_assign(&n, choice);
    }
}

impl ConditionallySelectable for Fe {
    #[inline(always)]
    fn conditional_select(a: &Self, b: &Self, choice: Choice) -> Self {
        Fe([
            u64::conditional_select(&a.0[0], &b.0[0], choice),
            u64::conditional_select(&a.0[1], &b.0[1], choice),
            u64::conditional_select(&a.0[2], &b.0[2], choice),
            u64::conditional_select(&a.0[3], &b.0[3], choice),
        ])
    }
}

impl ConstantTimeEq for Fe {
    fn ct_eq(&self, other: &Self) -> Choice {
        self.0[0].ct_eq(&other.0[0])
            & self.0[1].ct_eq(&other.0[1])
            & self.0[2].ct_eq(&other.0[2])
            & self.0[3].ct_eq(&other.0[3])
    }
}

/// Big-endian 32 bytes to little-endian words.
pub(crate) fn words_from_be(bytes: &[u8; 32]) -> [u64; 4] {
    let mut w = [0u64; 4];
    for (i, wi) in w.iter_mut().enumerate() {
        let mut b = [0u8; 8];
        b.copy_from_slice(&bytes[32 - 8 * (i + 1)..32 - 8 * i]);
        *wi = u64::from_be_bytes(b);
    }
    w
}

/// Little-endian words to big-endian 32 bytes.
pub(crate) fn be_from_words(w: &[u64; 4]) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (i, wi) in w.iter().enumerate() {
        out[32 - 8 * (i + 1)..32 - 8 * i].copy_from_slice(&wi.to_be_bytes());
    }
    out
}

/// Constant-time `a < b` on 256-bit little-endian words.
pub(crate) fn lt_words(a: &[u64; 4], b: &[u64; 4]) -> Choice {
    let (_, bw) = sbb(a[0], b[0], 0);
    let (_, bw) = sbb(a[1], b[1], bw);
    let (_, bw) = sbb(a[2], b[2], bw);
    let (_, bw) = sbb(a[3], b[3], bw);
    Choice::from((bw & 1) as u8)
}
