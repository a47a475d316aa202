//! Helpers for scalars modulo the P-256 group order q (arithmetic itself is `p256::Scalar`,
//! which is constant time).

use p256::elliptic_curve::bigint::U256;
use p256::elliptic_curve::ops::Reduce;
use p256::elliptic_curve::PrimeField;
use p256::{FieldBytes, Scalar};
use subtle::CtOption;

use super::field::{be_from_words, words_from_be};
use super::safegcd;

/// The group order q as little-endian 64-bit words.
pub(crate) const Q: [u64; 4] = [
    0xf3b9_cac2_fc63_2551,
    0xbce6_faad_a717_9e84,
    0xffff_ffff_ffff_ffff,
    0xffff_ffff_0000_0000,
];

/// Parses a canonical 32-byte big-endian scalar (`< q`).
pub(crate) fn from_bytes_canonical(bytes: &[u8; 32]) -> CtOption<Scalar> {
    Scalar::from_repr(FieldBytes::from(*bytes))
}

/// Interprets 32 big-endian bytes as an integer and reduces it modulo q.
pub(crate) fn from_bytes_reduced(bytes: &[u8; 32]) -> Scalar {
    <Scalar as Reduce<U256>>::reduce_bytes(&FieldBytes::from(*bytes))
}

/// 32-byte big-endian encoding.
pub(crate) fn to_bytes(s: &Scalar) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(&s.to_bytes()[..]);
    out
}

/// Little-endian words of the canonical value.
pub(crate) fn to_words(s: &Scalar) -> [u64; 4] {
    words_from_be(&to_bytes(s))
}

/// Variable-time inverse (0 maps to 0). Only for public or blinded values.
pub(crate) fn invert_vartime(s: &Scalar) -> Scalar {
    let inv = safegcd::invert_vartime(&to_words(s), &safegcd::Q_INFO);
    // The result is canonical (< q), so this never falls back.
    Option::<Scalar>::from(from_bytes_canonical(&be_from_words(&inv))).unwrap_or(Scalar::ZERO)
}

/// Constant-time recoding of a scalar into 37 signed radix-2^7 digits in [-64, 63]
/// (sum of `d[i] * 2^(7 i)` equals the scalar), for the fixed-base comb.
pub(crate) fn recode_signed_w7(words: &[u64; 4]) -> [i8; 37] {
    let w = [words[0], words[1], words[2], words[3], 0];
    let mut digits = [0i8; 37];
    let mut carry: u32 = 0;
    for (i, digit) in digits.iter_mut().enumerate() {
        // Bit positions are public; only the extracted values are secret.
        let pos = 7 * i;
        let (word, sh) = (pos / 64, pos % 64);
        let mut bits = w[word] >> sh;
        if sh > 57 {
            bits |= w[word + 1] << (64 - sh);
        }
        let d = (bits & 0x7f) as u32 + carry; // 0..=128
        carry = (d + 64) >> 7; // 1 iff d >= 64
        *digit = (d as i32 - ((carry as i32) << 7)) as i8;
    }
    digits
}

/// Variable-time width-`w` NAF of a 256-bit value (public scalars only). Digits are odd
/// and lie in (-2^(w-1), 2^(w-1)); the result has 257 positions.
pub(crate) fn wnaf_vartime(words: &[u64; 4], w: u32) -> [i8; 257] {
    debug_assert!((2..=8).contains(&w));
    let get_bits = |pos: usize, count: usize| -> u32 {
        let (word, sh) = (pos / 64, pos % 64);
        let mut bits = words[word] >> sh;
        if sh + count > 64 && word + 1 < 4 {
            bits |= words[word + 1] << (64 - sh);
        }
        (bits & ((1u64 << count) - 1)) as u32
    };
    let mut naf = [0i8; 257];
    let mut carry: u32 = 0;
    let mut bit = 0usize;
    let w = w as usize;
    while bit < 256 {
        if get_bits(bit, 1) == carry {
            bit += 1;
            continue;
        }
        let now = core::cmp::min(w, 256 - bit);
        let mut word = get_bits(bit, now) as i32 + carry as i32;
        carry = ((word >> (w - 1)) & 1) as u32;
        word -= (carry as i32) << w;
        naf[bit] = word as i8;
        bit += now;
    }
    if carry != 0 {
        naf[256] = 1;
    }
    naf
}
