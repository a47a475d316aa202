//! Benchmarks of every TS-0003 §10.3 derivation (and seed 002's Ksx), each against two baselines
//! measured in the same run over the same number of input bytes and HMAC invocations:
//! - `raw_hmac`: the bare RustCrypto HMAC-SHA-256 on byte slices. The ratio is the cost of the
//!   typed layer (NFKC normalisation, key types, zeroization); close to 1 is the goal.
//! - `openssl_hmac`: HMAC-SHA-256 through OpenSSL 3 (`PKey::hmac` + `Signer`), what a C
//!   implementation calling OpenSSL per derivation pays (dominated by OpenSSL 3's per-call
//!   algorithm fetch).
//!
//! `cargo bench -p m2msec-core --bench kdf` prints criterion's figures and then `RATIO` lines,
//! measured by alternating batches of each side so that machine noise affects both alike.
//! `enrolment_key` is a split of the export, not an HMAC, so it is reported in absolute time.

use criterion::{black_box, criterion_group, Criterion};
use m2msec_core::export::ExportedKeyingMaterial;
use m2msec_core::kdf::{self, E2eSalt, EsprimRandValue, GroupRand, KdfIdentifier, SuidEncoding};
use m2msec_core::secret::{Ke, Kpsa, PairwiseEsprimKey};
use m2msec_core::suid::Suid;
use openssl::{hash::MessageDigest, pkey::PKey, sign::Signer};
use std::time::Duration;

fn openssl_hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let k = PKey::hmac(key).unwrap();
    let mut s = Signer::new(MessageDigest::sha256(), &k).unwrap();
    s.update(data).unwrap();
    s.sign_to_vec().unwrap()
}

struct Inputs {
    export: ExportedKeyingMaterial,
    fqdn: m2msec_core::ids::Fqdn,
    ke: Ke,
    kpsa: Kpsa,
    salt: E2eSalt,
    pairwise: PairwiseEsprimKey,
    rand_r: EsprimRandValue,
    rand_o: EsprimRandValue,
    group_rand: GroupRand,
    maf: KdfIdentifier,
    enrolee: KdfIdentifier,
    target: KdfIdentifier,
    member: KdfIdentifier,
    suid: Suid,
}

fn inputs() -> Inputs {
    Inputs {
        export: ExportedKeyingMaterial::from_bytes(&[0x5a; 48]).unwrap(),
        fqdn: "mef.example.com".parse().unwrap(),
        ke: Ke::from_array([0x11; 32]),
        kpsa: Kpsa::from_bytes(&[0x22; 32]).unwrap(),
        salt: E2eSalt::new(&[0x33; 13]).unwrap(),
        pairwise: PairwiseEsprimKey::from_bytes(&[0x44; 32]).unwrap(),
        rand_r: EsprimRandValue([0x55; 16]),
        rand_o: EsprimRandValue([0x66; 16]),
        group_rand: GroupRand([0x77; 16]),
        maf: KdfIdentifier::new("maf.example.com").unwrap(),
        enrolee: KdfIdentifier::new("/cse-in-1").unwrap(),
        target: KdfIdentifier::new("//sp.example.com/cse-in-1").unwrap(),
        member: KdfIdentifier::new("/cse-asn-x").unwrap(),
        suid: Suid::new(22).unwrap(),
    }
}

/// A derivation and the size of the single-HMAC baseline it is compared with.
struct Case {
    name: &'static str,
    run: Box<dyn Fn(&Inputs)>,
    /// (key length, message length, number of HMACs) of the equivalent bare computation.
    baseline: (usize, usize, usize),
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "enrolment_key",
            run: Box::new(|i| {
                black_box(kdf::enrolment_key(&i.export, &i.fqdn));
            }),
            baseline: (32, 48, 0),
        },
        Case {
            name: "km",
            run: Box::new(|i| {
                black_box(kdf::km(&i.ke, &i.maf));
            }),
            baseline: (32, kdf::LABEL_KM.len() + 15, 1),
        },
        Case {
            name: "kpsa",
            run: Box::new(|i| {
                black_box(kdf::kpsa(&i.ke, &i.enrolee));
            }),
            baseline: (32, kdf::LABEL_KPSA.len() + 9, 1),
        },
        Case {
            name: "usage_constrained_key",
            run: Box::new(|i| {
                black_box(kdf::usage_constrained_key(
                    &i.ke,
                    i.suid,
                    &i.target,
                    SuidEncoding::AsciiDecimal,
                ));
            }),
            baseline: (32, kdf::LABEL_USAGE_CONSTRAINED.len() + 2 + 25, 1),
        },
        Case {
            name: "ke2e_master",
            run: Box::new(|i| {
                black_box(kdf::ke2e_master(&i.kpsa, Some(&i.salt)));
            }),
            baseline: (13, 32, 1),
        },
        Case {
            name: "e2e_keys",
            run: Box::new(|i| {
                let m = kdf::ke2e_master(&i.kpsa, Some(&i.salt));
                black_box(kdf::e2e_keys(&m));
            }),
            baseline: (32, 64, 5),
        },
        Case {
            name: "session_esprim_key",
            run: Box::new(|i| {
                black_box(kdf::session_esprim_key(&i.pairwise, &i.rand_r, &i.rand_o));
            }),
            baseline: (32, 32 + kdf::LABEL_SESSION_ESPRIM.len(), 1),
        },
        Case {
            name: "ksx",
            run: Box::new(|i| {
                black_box(kdf::ksx(&i.kpsa, &i.member, &i.group_rand));
            }),
            baseline: (32, kdf::LABEL_KSX.len() + 10 + 16, 1),
        },
    ]
}

fn run_baseline(b: (usize, usize, usize), key: &[u8], msg: &[u8]) {
    for _ in 0..b.2 {
        black_box(openssl_hmac(&key[..b.0], &msg[..b.1]));
    }
}

fn raw_hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    use hmac::Mac;
    let mut m = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
    m.update(data);
    m.finalize().into_bytes().into()
}

fn run_raw(b: (usize, usize, usize), key: &[u8], msg: &[u8]) {
    for _ in 0..b.2 {
        black_box(raw_hmac(black_box(&key[..b.0]), black_box(&msg[..b.1])));
    }
}

fn criterion_benches(c: &mut Criterion) {
    let i = inputs();
    let key = vec![0x42u8; 64];
    let msg = vec![0x24u8; 256];
    let mut g = c.benchmark_group("kdf");
    g.measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(300))
        .sample_size(30);
    for case in cases() {
        g.bench_function(case.name, |b| b.iter(|| (case.run)(&i)));
        if case.baseline.2 > 0 {
            g.bench_function(format!("{}/raw_hmac_baseline", case.name), |b| {
                b.iter(|| run_raw(case.baseline, &key, &msg))
            });
            g.bench_function(format!("{}/openssl_hmac_baseline", case.name), |b| {
                b.iter(|| run_baseline(case.baseline, &key, &msg))
            });
        }
    }
    g.finish();
}

criterion_group!(benches, criterion_benches);

/// Calls per timed batch.
const BATCH: u32 = 2000;

#[path = "common/interleaved.rs"]
mod interleave;
use interleave::interleaved;

fn ratios() {
    let i = inputs();
    let key = vec![0x42u8; 64];
    let msg = vec![0x24u8; 256];
    for case in cases() {
        if case.baseline.2 == 0 {
            let t = interleaved(BATCH, &[&|| (case.run)(&i)]);
            println!("TIME {} = {:.0} ns", case.name, t[0]);
            continue;
        }
        let t = interleaved(
            BATCH,
            &[
                &|| (case.run)(&i),
                &|| run_raw(case.baseline, &key, &msg),
                &|| run_baseline(case.baseline, &key, &msg),
            ],
        );
        println!(
            "RATIO {name}/raw_hmac = {:.2}  RATIO {name}/openssl_hmac = {:.2}  ({:.0} ns; raw {:.0} ns; openssl {:.0} ns)",
            t[0] / t[1],
            t[0] / t[2],
            t[0],
            t[1],
            t[2],
            name = case.name
        );
    }
}

fn main() {
    // `cargo test --all-targets` runs this binary without `--bench`: one quick pass, no timing.
    if !std::env::args().any(|a| a == "--bench") {
        let i = inputs();
        for case in cases() {
            (case.run)(&i);
        }
        println!("kdf bench: smoke test ok");
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
    ratios();
}
