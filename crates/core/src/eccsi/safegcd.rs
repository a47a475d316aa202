//! Variable-time modular inversion with the Bernstein–Yang "safegcd" algorithm, using
//! batches of 62 divsteps (a port of the design of libsecp256k1's `modinv64_var`).
//!
//! This runs in variable time: use it only on public values, or on secret values that have
//! been multiplicatively blinded by a secret, uniformly random, non-zero factor.

/// Numbers in signed 62-bit limb representation: value = sum(v[i] * 2^(62 i)).
#[derive(Clone, Copy)]
struct Signed62([i64; 5]);

/// A modulus (odd, 256-bit) in signed62 form together with its inverse modulo 2^62.
pub(crate) struct ModInfo {
    modulus: Signed62,
    inv62: u64,
}

const M62: u64 = u64::MAX >> 2;

const fn modinfo(m: [u64; 4]) -> ModInfo {
    // Newton iteration for m^-1 mod 2^64: each step doubles the number of correct bits
    // (m * m = 1 mod 8 for odd m, so x = m starts with 3 correct bits).
    let mut x = m[0];
    let mut i = 0;
    while i < 6 {
        x = x.wrapping_mul(2u64.wrapping_sub(m[0].wrapping_mul(x)));
        i += 1;
    }
    ModInfo {
        modulus: to_signed62(&m),
        inv62: x & M62,
    }
}

/// The P-256 field prime.
pub(crate) const P_INFO: ModInfo = modinfo(super::field::P);
/// The P-256 group order.
pub(crate) const Q_INFO: ModInfo = modinfo(super::scalar::Q);

const fn to_signed62(a: &[u64; 4]) -> Signed62 {
    Signed62([
        (a[0] & M62) as i64,
        (((a[0] >> 62) | (a[1] << 2)) & M62) as i64,
        (((a[1] >> 60) | (a[2] << 4)) & M62) as i64,
        (((a[2] >> 58) | (a[3] << 6)) & M62) as i64,
        (a[3] >> 56) as i64,
    ])
}

/// Requires all limbs in [0, 2^62) (limb 4 < 2^8), as produced by `normalize`.
fn from_signed62(a: &Signed62) -> [u64; 4] {
    let v = a.0.map(|x| x as u64);
    [
        v[0] | (v[1] << 62),
        (v[1] >> 2) | (v[2] << 60),
        (v[2] >> 4) | (v[3] << 58),
        (v[3] >> 6) | (v[4] << 56),
    ]
}

/// 2x2 transition matrix, scaled by 2^62.
struct Trans {
    u: i64,
    v: i64,
    q: i64,
    r: i64,
}

/// Performs 62 divsteps on the low bits of f and g (variable time); returns the new eta.
fn divsteps_62_var(mut eta: i64, f0: u64, g0: u64, t: &mut Trans) -> i64 {
    let (mut u, mut v, mut q, mut r) = (1u64, 0u64, 0u64, 1u64);
    let (mut f, mut g) = (f0, g0);
    let mut i: u32 = 62;
    loop {
        // Sentinel bit so that at most i zeros are counted.
        let zeros = (g | (u64::MAX << i)).trailing_zeros();
        g >>= zeros;
        u <<= zeros;
        v <<= zeros;
        eta -= zeros as i64;
        i -= zeros;
        if i == 0 {
            break;
        }
        // f and g are both odd here.
        let w: u64;
        if eta < 0 {
            eta = -eta;
            let tmp = f;
            f = g;
            g = tmp.wrapping_neg();
            let tmp = u;
            u = q;
            q = tmp.wrapping_neg();
            let tmp = v;
            v = r;
            r = tmp.wrapping_neg();
            // Cancel up to 6 bits of g (limited by i and eta + 1).
            let limit = core::cmp::min(eta + 1, i as i64) as u32;
            let m = (u64::MAX >> (64 - limit)) & 63;
            w = f
                .wrapping_mul(g)
                .wrapping_mul(f.wrapping_mul(f).wrapping_sub(2))
                & m;
        } else {
            // Cancel up to 4 bits of g.
            let limit = core::cmp::min(eta + 1, i as i64) as u32;
            let m = (u64::MAX >> (64 - limit)) & 15;
            let w0 = f.wrapping_add((f.wrapping_add(1) & 4) << 1);
            w = w0.wrapping_neg().wrapping_mul(g) & m;
        }
        g = g.wrapping_add(f.wrapping_mul(w));
        q = q.wrapping_add(u.wrapping_mul(w));
        r = r.wrapping_add(v.wrapping_mul(w));
    }
    t.u = u as i64;
    t.v = v as i64;
    t.q = q as i64;
    t.r = r as i64;
    eta
}

#[inline(always)]
fn mul(a: i64, b: i64) -> i128 {
    (a as i128) * (b as i128)
}

/// [d, e] <- t * [d, e] / 2^62 (mod modulus), keeping both in (-2 modulus, modulus).
fn update_de(d: &mut Signed62, e: &mut Signed62, t: &Trans, mi: &ModInfo) {
    let [d0, d1, d2, d3, d4] = d.0;
    let [e0, e1, e2, e3, e4] = e.0;
    let (u, v, q, r) = (t.u, t.v, t.q, t.r);
    let m = &mi.modulus.0;
    // [md, me] start as zero; plus [u, q] if d is negative; plus [v, r] if e is negative.
    let sd = d4 >> 63;
    let se = e4 >> 63;
    let mut md = (u & sd).wrapping_add(v & se);
    let mut me = (q & sd).wrapping_add(r & se);
    let mut cd = mul(u, d0) + mul(v, e0);
    let mut ce = mul(q, d0) + mul(r, e0);
    // Correct md, me so that t*[d,e] + modulus*[md,me] has 62 zero bottom bits.
    md = md.wrapping_sub((mi.inv62.wrapping_mul(cd as u64).wrapping_add(md as u64) & M62) as i64);
    me = me.wrapping_sub((mi.inv62.wrapping_mul(ce as u64).wrapping_add(me as u64) & M62) as i64);
    cd += mul(m[0], md);
    ce += mul(m[0], me);
    debug_assert!((cd as u64) & M62 == 0 && (ce as u64) & M62 == 0);
    cd >>= 62;
    ce >>= 62;
    cd += mul(u, d1) + mul(v, e1) + mul(m[1], md);
    ce += mul(q, d1) + mul(r, e1) + mul(m[1], me);
    d.0[0] = (cd as u64 & M62) as i64;
    cd >>= 62;
    e.0[0] = (ce as u64 & M62) as i64;
    ce >>= 62;
    cd += mul(u, d2) + mul(v, e2) + mul(m[2], md);
    ce += mul(q, d2) + mul(r, e2) + mul(m[2], me);
    d.0[1] = (cd as u64 & M62) as i64;
    cd >>= 62;
    e.0[1] = (ce as u64 & M62) as i64;
    ce >>= 62;
    cd += mul(u, d3) + mul(v, e3) + mul(m[3], md);
    ce += mul(q, d3) + mul(r, e3) + mul(m[3], me);
    d.0[2] = (cd as u64 & M62) as i64;
    cd >>= 62;
    e.0[2] = (ce as u64 & M62) as i64;
    ce >>= 62;
    cd += mul(u, d4) + mul(v, e4) + mul(m[4], md);
    ce += mul(q, d4) + mul(r, e4) + mul(m[4], me);
    d.0[3] = (cd as u64 & M62) as i64;
    cd >>= 62;
    e.0[3] = (ce as u64 & M62) as i64;
    ce >>= 62;
    d.0[4] = cd as i64;
    e.0[4] = ce as i64;
}

/// [f, g] <- t * [f, g] / 2^62, on the low `len` limbs.
fn update_fg_var(len: usize, f: &mut Signed62, g: &mut Signed62, t: &Trans) {
    let (u, v, q, r) = (t.u, t.v, t.q, t.r);
    let mut cf = mul(u, f.0[0]) + mul(v, g.0[0]);
    let mut cg = mul(q, f.0[0]) + mul(r, g.0[0]);
    debug_assert!((cf as u64) & M62 == 0 && (cg as u64) & M62 == 0);
    cf >>= 62;
    cg >>= 62;
    for i in 1..len {
        let (fi, gi) = (f.0[i], g.0[i]);
        cf += mul(u, fi) + mul(v, gi);
        cg += mul(q, fi) + mul(r, gi);
        f.0[i - 1] = (cf as u64 & M62) as i64;
        cf >>= 62;
        g.0[i - 1] = (cg as u64 & M62) as i64;
        cg >>= 62;
    }
    f.0[len - 1] = cf as i64;
    g.0[len - 1] = cg as i64;
}

/// Maps r from (-2 modulus, modulus) to [0, modulus), negating first if `sign` < 0.
fn normalize(r: &mut Signed62, sign: i64, mi: &ModInfo) {
    let m = &mi.modulus.0;
    let mut v = r.0;
    let cond_add = v[4] >> 63;
    for i in 0..5 {
        v[i] += m[i] & cond_add;
    }
    let cond_negate = sign >> 63;
    for x in v.iter_mut() {
        *x = (*x ^ cond_negate) - cond_negate;
    }
    for i in 0..4 {
        v[i + 1] += v[i] >> 62;
        v[i] &= M62 as i64;
    }
    let cond_add = v[4] >> 63;
    for i in 0..5 {
        v[i] += m[i] & cond_add;
    }
    for i in 0..4 {
        v[i + 1] += v[i] >> 62;
        v[i] &= M62 as i64;
    }
    r.0 = v;
}

/// Returns `x^-1 mod m` for `x` in [0, m) given as little-endian words (0 maps to 0).
/// Variable time.
pub(crate) fn invert_vartime(x: &[u64; 4], mi: &ModInfo) -> [u64; 4] {
    let mut d = Signed62([0; 5]);
    let mut e = Signed62([1, 0, 0, 0, 0]);
    let mut f = mi.modulus;
    let mut g = to_signed62(x);
    let mut len = 5usize;
    let mut eta: i64 = -1;
    if *x == [0u64; 4] {
        return [0; 4];
    }
    loop {
        let mut t = Trans {
            u: 0,
            v: 0,
            q: 0,
            r: 0,
        };
        eta = divsteps_62_var(eta, f.0[0] as u64, g.0[0] as u64, &mut t);
        update_de(&mut d, &mut e, &t, mi);
        update_fg_var(len, &mut f, &mut g, &t);
        if g.0[0] == 0 && g.0[1..len].iter().all(|&x| x == 0) {
            break;
        }
        let fnl = f.0[len - 1];
        let gnl = g.0[len - 1];
        let mut cond = ((len as i64) - 2) >> 63;
        cond |= fnl ^ (fnl >> 63);
        cond |= gnl ^ (gnl >> 63);
        if cond == 0 {
            f.0[len - 2] |= ((fnl as u64) << 62) as i64;
            g.0[len - 2] |= ((gnl as u64) << 62) as i64;
            len -= 1;
        }
    }
    // g = 0 and f = +-1 (the modulus is prime and x != 0): d = +-x^-1.
    normalize(&mut d, f.0[len - 1], mi);
    from_signed62(&d)
}
