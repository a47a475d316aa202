//! The secure environment's two backends in one run (TS-0003 §6.3.1): seal+open of a 32-byte
//! key record (what the CSE and MEF do per stored or loaded key) and HMAC-SHA-256 over a
//! 64-byte message (one §10.3 derivation step from Kpm / a master key), with the KEK or HMAC
//! key in a SoftHSM2 token (`CKM_AES_GCM`, `CKM_SHA256_HMAC` through PKCS#11) against the file
//! backend (the KEK in memory, RustCrypto AES-GCM / HMAC).
//!
//! `cargo bench -p m2msec-keystore --bench secure_environment` prints criterion's figures and
//! then `RATIO token/file` lines, measured by alternating batches so that machine noise affects
//! both sides alike. The token's cost is the PKCS#11 call path (session pool lock, one
//! `C_EncryptInit`+`C_Encrypt` or `C_SignInit`+`C_Sign` pair, SoftHSM2's per-operation object
//! lookup and OpenSSL EVP context set-up), not the cipher.

use criterion::{black_box, criterion_group, Criterion};
use hmac::Mac;
use m2msec_keystore::{Kek, Sealer, SecureEnvironment};
use std::time::Duration;

struct Sides {
    file: Sealer,
    token: Sealer,
    se: SecureEnvironment,
    hmac_key: [u8; 32],
}

fn sides() -> Sides {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let cfg = m2msec_keystore::testing::new_token(&format!("bench-{n}"));
    let se = SecureEnvironment::open(&cfg).expect("open the SoftHSM2 token");
    let d = tempfile::tempdir().unwrap();
    let token = se.sealer(&d.path().join("kek"), "bench/kek").unwrap();
    let hmac_key = [0x42; 32];
    se.token()
        .unwrap()
        .import_hmac_key("bench/kpm", &hmac_key)
        .unwrap();
    Sides {
        file: Sealer::new(Kek::from_array([7; 32])),
        token,
        se,
        hmac_key,
    }
}

const AAD: &[u8] = b"devices/0123456789abcdef";
const RECORD: [u8; 32] = [0x5a; 32];
const MSG: [u8; 64] = [0x24; 64];

fn seal_open(s: &Sealer) {
    let rec = s.seal(AAD, &RECORD).unwrap();
    black_box(s.open(AAD, &rec).unwrap());
}

fn file_hmac(key: &[u8; 32]) {
    let mut m = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
    m.update(&MSG);
    black_box(m.finalize().into_bytes());
}

fn token_hmac(se: &SecureEnvironment) {
    black_box(se.token().unwrap().hmac_sha256("bench/kpm", &MSG).unwrap());
}

fn criterion_benches(c: &mut Criterion) {
    let s = sides();
    let mut g = c.benchmark_group("secure_environment");
    g.measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(300))
        .sample_size(30);
    g.bench_function("seal_open/file", |b| b.iter(|| seal_open(&s.file)));
    g.bench_function("seal_open/pkcs11", |b| b.iter(|| seal_open(&s.token)));
    g.bench_function("hmac/file", |b| b.iter(|| file_hmac(&s.hmac_key)));
    g.bench_function("hmac/pkcs11", |b| b.iter(|| token_hmac(&s.se)));
    g.finish();
}

criterion_group!(benches, criterion_benches);

/// Calls per timed batch.
const BATCH: u32 = 500;

#[path = "../../core/benches/common/interleaved.rs"]
mod interleave;
use interleave::interleaved;

fn ratios() {
    let s = sides();
    let t = interleaved(BATCH, &[&|| seal_open(&s.token), &|| seal_open(&s.file)]);
    println!(
        "RATIO seal_open token/file = {:.1}  (pkcs11 {:.0} ns = {:.0}/s; file {:.0} ns = {:.0}/s)",
        t[0] / t[1],
        t[0],
        1e9 / t[0],
        t[1],
        1e9 / t[1]
    );
    let t = interleaved(BATCH, &[&|| token_hmac(&s.se), &|| file_hmac(&s.hmac_key)]);
    println!(
        "RATIO hmac token/file = {:.1}  (pkcs11 {:.0} ns = {:.0}/s; file {:.0} ns = {:.0}/s)",
        t[0] / t[1],
        t[0],
        1e9 / t[0],
        t[1],
        1e9 / t[1]
    );
}

fn main() {
    // `cargo test --all-targets` runs this binary without `--bench`: one quick pass, no timing.
    if !std::env::args().any(|a| a == "--bench") {
        let s = sides();
        seal_open(&s.file);
        seal_open(&s.token);
        file_hmac(&s.hmac_key);
        token_hmac(&s.se);
        println!("secure_environment bench: smoke test ok");
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
    ratios();
}
