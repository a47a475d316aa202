//! ECCSI (RFC 6507) benchmarks with an OpenSSL ECDSA P-256 baseline measured in the same run.
//!
//! Run with `cargo bench -p m2msec-core --bench eccsi`. After the criterion groups, the
//! harness times ECCSI and OpenSSL in alternating batches and prints
//! `RATIO eccsi_sign/openssl_ecdsa_sign = X.XX` and
//! `RATIO eccsi_verify/openssl_ecdsa_verify = X.XX`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::Criterion;
use m2msec_core::eccsi::{verify, Kms, Signature, SigningKey, Verifier};
use openssl::bn::BigNumContext;
use openssl::ec::{EcGroup, EcKey, PointConversionForm};
use openssl::ecdsa::EcdsaSig;
use openssl::nid::Nid;
use openssl::pkey::{Private, Public};
use rand_core::OsRng;
use sha2::{Digest, Sha256};

const ID: &[u8] = b"2011-02\0tel:+447700900123\0";
const MSG: &[u8] = b"message\0";

struct Fixture {
    kms: Kms,
    key: SigningKey,
    sig: Signature,
    verifier: Verifier,
    ossl_key: EcKey<Private>,
    ossl_pub: EcKey<Public>,
    ossl_sig: EcdsaSig,
}

fn fixture() -> Fixture {
    let kms = Kms::generate(&mut OsRng);
    let keys = kms.extract(ID, &mut OsRng).expect("extract");
    let key = SigningKey::new(kms.kpak(), ID, keys.ssk, keys.pvt).expect("valid SSK");
    let sig = key.sign(MSG, &mut OsRng);
    let verifier = Verifier::new(kms.kpak());
    verifier.verify(ID, MSG, &sig).expect("valid signature");

    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).expect("P-256");
    let ossl_key = EcKey::generate(&group).expect("keygen");
    let mut ctx = BigNumContext::new().expect("bn ctx");
    let pub_bytes = ossl_key
        .public_key()
        .to_bytes(&group, PointConversionForm::UNCOMPRESSED, &mut ctx)
        .expect("encode");
    let pub_point = openssl::ec::EcPoint::from_bytes(&group, &pub_bytes, &mut ctx).expect("decode");
    let ossl_pub = EcKey::from_public_key(&group, &pub_point).expect("public key");
    let digest = Sha256::digest(MSG);
    let ossl_sig = EcdsaSig::sign(&digest, &ossl_key).expect("sign");
    assert!(ossl_sig.verify(&digest, &ossl_pub).expect("verify"));
    Fixture {
        kms,
        key,
        sig,
        verifier,
        ossl_key,
        ossl_pub,
        ossl_sig,
    }
}

fn eccsi_sign(f: &Fixture) -> Signature {
    f.key.sign(black_box(MSG), &mut OsRng)
}

fn eccsi_verify(f: &Fixture) -> bool {
    f.verifier
        .verify(black_box(ID), black_box(MSG), &f.sig)
        .is_ok()
}

fn ossl_sign(f: &Fixture) -> EcdsaSig {
    let digest = Sha256::digest(black_box(MSG));
    EcdsaSig::sign(&digest, &f.ossl_key).expect("sign")
}

fn ossl_verify(f: &Fixture) -> bool {
    let digest = Sha256::digest(black_box(MSG));
    f.ossl_sig.verify(&digest, &f.ossl_pub).expect("verify")
}

fn criterion_benches(c: &mut Criterion, f: &Fixture) {
    let mut g = c.benchmark_group("eccsi");
    g.bench_function("sign", |b| b.iter(|| eccsi_sign(f)));
    g.bench_function("verify", |b| b.iter(|| assert!(eccsi_verify(f))));
    g.bench_function("verify_one_shot", |b| {
        b.iter(|| assert!(verify(f.kms.kpak(), black_box(ID), MSG, &f.sig).is_ok()))
    });
    g.bench_function("verifier_new", |b| {
        b.iter(|| Verifier::new(black_box(f.kms.kpak())))
    });
    g.bench_function("extract", |b| {
        b.iter(|| f.kms.extract(black_box(ID), &mut OsRng).expect("extract"))
    });
    let keys = f.kms.extract(ID, &mut OsRng).expect("extract");
    g.bench_function("validate_ssk", |b| {
        b.iter(|| {
            SigningKey::new(f.kms.kpak(), black_box(ID), keys.ssk.clone(), keys.pvt).expect("valid")
        })
    });
    g.finish();

    let mut g = c.benchmark_group("openssl_ecdsa_p256");
    g.bench_function("sign", |b| b.iter(|| ossl_sign(f)));
    g.bench_function("verify", |b| b.iter(|| assert!(ossl_verify(f))));
    g.finish();
}

/// Times `a` and `b` in alternating batches; returns (ns per op of a, ns per op of b,
/// median of the per-round ratios a/b).
fn alternate(
    rounds: usize,
    batch: usize,
    mut a: impl FnMut(),
    mut b: impl FnMut(),
) -> (f64, f64, f64) {
    let (mut ta, mut tb) = (Duration::ZERO, Duration::ZERO);
    let mut ratios = Vec::with_capacity(rounds);
    for _ in 0..batch {
        a();
        b();
    }
    for round in 0..rounds {
        // Alternate the order too, to cancel drift within a round.
        let (da, db) = if round % 2 == 0 {
            let t = Instant::now();
            (0..batch).for_each(|_| a());
            let da = t.elapsed();
            let t = Instant::now();
            (0..batch).for_each(|_| b());
            (da, t.elapsed())
        } else {
            let t = Instant::now();
            (0..batch).for_each(|_| b());
            let db = t.elapsed();
            let t = Instant::now();
            (0..batch).for_each(|_| a());
            (t.elapsed(), db)
        };
        ta += da;
        tb += db;
        ratios.push(da.as_secs_f64() / db.as_secs_f64());
    }
    ratios.sort_by(f64::total_cmp);
    let n = (rounds * batch) as f64;
    (
        ta.as_secs_f64() * 1e9 / n,
        tb.as_secs_f64() * 1e9 / n,
        ratios[rounds / 2],
    )
}

/// Rounds of the alternating ECCSI / OpenSSL timing.
const ROUNDS: usize = 21;

fn ratios(f: &Fixture) {
    let (es, os, rs) = alternate(
        ROUNDS,
        300,
        || {
            black_box(eccsi_sign(f));
        },
        || {
            black_box(ossl_sign(f));
        },
    );
    let (ev, ov, rv) = alternate(
        ROUNDS,
        150,
        || assert!(eccsi_verify(f)),
        || assert!(ossl_verify(f)),
    );
    println!();
    println!("BASELINE {}", openssl::version::version());
    println!("ABS eccsi_sign = {:.1} us", es / 1e3);
    println!("ABS openssl_ecdsa_sign = {:.1} us", os / 1e3);
    println!("ABS eccsi_verify = {:.1} us", ev / 1e3);
    println!("ABS openssl_ecdsa_verify = {:.1} us", ov / 1e3);
    // The RATIO lines use the median of the per-round ratios (robust against other load on
    // the machine); the ratio of the summed times is printed for reference.
    println!(
        "INFO ratio of summed times: sign {:.2}, verify {:.2} ({} rounds, alternating)",
        es / os,
        ev / ov,
        ROUNDS
    );
    println!("RATIO eccsi_sign/openssl_ecdsa_sign = {rs:.2}");
    println!("RATIO eccsi_verify/openssl_ecdsa_verify = {rv:.2}");
}

fn main() {
    let f = fixture();
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20)
        .configure_from_args();
    criterion_benches(&mut c, &f);
    c.final_summary();
    ratios(&f);
}
