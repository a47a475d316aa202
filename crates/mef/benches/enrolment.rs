//! Complete enrolments per second against bare TLS-PSK handshakes per second in the same run,
//! and IBC extractions per second against ECDSA P-256 signatures (issue item 9).
//!
//! * **Enrolment**: `enrol()` against an in-process MEF (`MefEndpoint` behind
//!   `service::start_mef`, HTTP over TLS-PSK on loopback, its own two-worker runtime) with
//!   the durable SQLite store (WAL, `synchronous=FULL`) in a temporary directory on disk
//!   (`CARGO_TARGET_TMPDIR`): bootstrap handshake with Kpm, Ke/KeID export, Client
//!   Registration, MEF Client Commands, IBC extraction and validation, the durable commit and
//!   the end-of-exchange. Sequentially and with 8 enrolments in flight.
//! * **Bare handshake**: the `openssl` crate's blocking `Ssl::connect`/`Ssl::accept` on std TCP
//!   sockets, PSK-AES128-CBC-SHA256, TLS 1.2, the server on its own thread: the loop of
//!   `m2msec-tls`'s handshake bench, on the same vendored OpenSSL.
//! * **IBC extraction**: `LocalPkg::extract` (RFC 6507 §5.1.1) against ECDSA P-256 sign
//!   (SHA-256) through `openssl`.
//!
//! * **Secure environment** (issue 15): the same enrolments and MEF handshakes with the MEF's
//!   KEK in a SoftHSM2 token against the KEK file (`RATIO enrolment_token_vs_file`,
//!   `handshake_token_vs_file`).
//!
//! Subject and baseline run in alternating batches; each figure is the median of the batch
//! rates, so machine noise affects both alike. `cargo bench -p m2msec-mef --bench enrolment`
//! prints `RATIO <case> = x.xx (…)` lines (goal for `enrolment_vs_bare_handshake`: at least
//! 0.6), then `PROFILE` lines that decompose an enrolment: its round trips, our handshake to the
//! MEF, one HTTP request on an open session, the fsync'd commit, the per-session device lookup,
//! a `spawn_blocking` hop, the Enrolee's credential validation, and the same enrolment with the
//! store on tmpfs (no fsync cost). Without `--bench` (as under `cargo test --all-targets`) it
//! runs each path once as a smoke test.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use openssl::ssl::{Ssl, SslContext, SslContextBuilder, SslMethod, SslOptions, SslVersion};
use rand_core::{OsRng, RngCore};
use tokio::runtime::Runtime;

use m2msec_bindings::client::HttpClient;
use m2msec_core::duration::XsDuration;
use m2msec_core::kdf::SuidEncoding;
use m2msec_core::secret::{Ke, Kpm};
use m2msec_keystore::SecureEnvironment;
use m2msec_mef::config::MefServiceConfig;
use m2msec_mef::enrolee::{enrol, EnrolParams, EnrolmentSecrets};
use m2msec_mef::ibc::validate_ibc;
use m2msec_mef::store::Enrolment;
use m2msec_mef::{Device, LocalPkg, MefConfig, MefEndpoint, MefStore, Pkg, TargetClient};
use m2msec_proto::{Operation, RequestPrimitive};
use m2msec_tls::{ClientConfig, Psk, PskIdentity, TlsClient};

const FQDN: &str = "mef.bench.example";
const CSE: &str = "//bench.example/cse-in";
const CSE_IDENTITY: &str = "cse-in@mef.bench.example";
const CSE_KEY: [u8; 32] = [0x11; 32];
/// Devices provisioned; enrolments cycle through them (each re-enrolment replaces the last).
const DEVICES: usize = 64;
/// Enrolments in flight in the concurrent case.
const CONCURRENCY: usize = 8;

const BARE_ID: &str = "kpsa-bench@mef.example.com";
const BARE_KEY: [u8; 32] = [0x5a; 32];

fn multi_thread(workers: usize) -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .unwrap()
}

fn kpm_id(i: usize) -> String {
    format!("dev{i:03}@{FQDN}")
}

// ---------- the MEF ----------

struct Mef {
    /// The server's own runtime (two workers, as `m2msec mef serve` on this machine).
    rt: Runtime,
    addr: SocketAddr,
    ep: Arc<MefEndpoint>,
    kpms: Vec<Kpm>,
    _running: m2msec_mef::service::Running<MefEndpoint>,
    _dir: tempfile::TempDir,
}

fn start_mef(dir: tempfile::TempDir) -> Mef {
    start_mef_in(dir, &SecureEnvironment::Files)
}

/// A MEF whose store seals in `se` (the KEK file, or a SoftHSM2 token).
fn start_mef_in(dir: tempfile::TempDir, se: &SecureEnvironment) -> Mef {
    let rt = multi_thread(2);
    let cfg = MefConfig {
        fqdn: FQDN.parse().unwrap(),
        ibc: true,
        retry_duration: "PT1H".parse::<XsDuration>().unwrap(),
        suid_encoding: SuidEncoding::AsciiDecimal,
        max_registration_secs: 86_400,
        legacy_derivation: false,
    };
    let targets = vec![TargetClient {
        psk_identity: PskIdentity::new(CSE_IDENTITY).unwrap(),
        key: Psk::new(&CSE_KEY).unwrap(),
        client_id: CSE.parse().unwrap(),
    }];
    // The service's own start function, as `m2msec mef serve` runs it.
    let running = rt
        .block_on(m2msec_mef::service::start_mef(MefServiceConfig {
            mef: cfg,
            certificates: None,
            data_dir: dir.path().to_path_buf(),
            addr: "127.0.0.1:0".parse().unwrap(),
            coap_addr: None,
            coap_half_open: (0, 0),
            targets,
            default_enrolment_secs: 3600,
            pkg: None,
            secure_environment: se.clone(),
        }))
        .unwrap();
    let ep = running.endpoint.clone();
    let addr = running.tls_addr.unwrap();
    let kpms: Vec<Kpm> = (0..DEVICES)
        .map(|_| {
            let mut k = [0u8; 32];
            OsRng.fill_bytes(&mut k);
            Kpm::from_bytes(&k).unwrap()
        })
        .collect();
    let rows: Vec<(Device, Kpm)> = (0..DEVICES)
        .map(|i| {
            (
                Device {
                    kpm_id: kpm_id(i),
                    enrolee_id: format!("Cdev{i:03}").parse().unwrap(),
                    targets: vec![CSE.parse().unwrap()],
                    enrolment_secs: 3600,
                    created: 0,
                    revoked: None,
                },
                kpms[i].clone(),
            )
        })
        .collect();
    ep.with_store(|s| s.add_devices(&rows)).unwrap();
    Mef {
        rt,
        addr,
        ep,
        kpms,
        _running: running,
        _dir: dir,
    }
}

impl Mef {
    fn params(&self, i: usize) -> EnrolParams {
        let i = i % DEVICES;
        EnrolParams {
            transport: Default::default(),
            host: "127.0.0.1".into(),
            port: self.addr.port(),
            kpm_id: kpm_id(i).parse().unwrap(),
            kpm: self.kpms[i].clone(),
            id1: format!("Cdev{i:03}").parse().unwrap(),
            targets: vec![CSE.parse().unwrap()],
            admin_fqdn: "admin.bench.example".parse().unwrap(),
            suid_encoding: SuidEncoding::AsciiDecimal,
        }
    }
}

/// The Enrolees: a runtime of their own (two workers) driven from the bench thread.
struct Enrolees {
    rt: Runtime,
    next: std::cell::Cell<usize>,
}

impl Enrolees {
    fn new() -> Self {
        Enrolees {
            rt: multi_thread(2),
            next: std::cell::Cell::new(0),
        }
    }

    fn take(&self, n: usize) -> usize {
        let i = self.next.get();
        self.next.set(i + n);
        i
    }

    /// One complete enrolment.
    fn one(&self, mef: &Mef) -> EnrolmentSecrets {
        let p = mef.params(self.take(1));
        self.rt.block_on(enrol(&p)).unwrap()
    }

    /// `n` enrolments one after the other; returns enrolments per second.
    fn sequential(&self, mef: &Mef, n: usize) -> f64 {
        let t = Instant::now();
        for _ in 0..n {
            self.one(mef);
        }
        n as f64 / t.elapsed().as_secs_f64()
    }

    /// `n` enrolments with CONCURRENCY in flight (distinct devices); enrolments per second.
    fn concurrent(&self, mef: &Mef, n: usize) -> f64 {
        self.concurrent_with(mef, n, CONCURRENCY)
    }

    /// `n` enrolments with `lanes` in flight (distinct devices, at most DEVICES / 2).
    fn concurrent_with(&self, mef: &Mef, n: usize, lanes_n: usize) -> f64 {
        let first = self.take(n);
        let params: Vec<EnrolParams> = (0..n).map(|k| mef.params(first + k)).collect();
        let t = Instant::now();
        self.rt.block_on(async {
            let mut lanes: Vec<Vec<EnrolParams>> = vec![Vec::new(); lanes_n];
            for (k, p) in params.into_iter().enumerate() {
                lanes[k % lanes_n].push(p);
            }
            let mut set = tokio::task::JoinSet::new();
            for lane in lanes {
                set.spawn(async move {
                    for p in lane {
                        enrol(&p).await.unwrap();
                    }
                });
            }
            while let Some(r) = set.join_next().await {
                r.unwrap();
            }
        });
        n as f64 / t.elapsed().as_secs_f64()
    }

    /// A TLS-PSK handshake with a device's Kpm through our stack to the MEF (the server opens
    /// the Enrolee session: device lookup, Ke/KeID export), then close.
    fn handshake(&self, mef: &Mef) {
        let p = mef.params(self.take(1));
        self.rt.block_on(async {
            let c = TlsClient::new(ClientConfig::psk(
                PskIdentity::new(&p.kpm_id.to_string()).unwrap(),
                Psk::new(p.kpm.expose_secret()).unwrap(),
            ))
            .unwrap();
            c.connect("127.0.0.1", p.port, Some(FQDN)).await.unwrap();
        });
    }
}

// ---------- bare OpenSSL TLS-PSK (as in m2msec-tls/benches/handshake.rs) ----------

fn bare_ctx(server: bool) -> SslContext {
    let mut b = SslContextBuilder::new(SslMethod::tls()).unwrap();
    b.set_min_proto_version(Some(SslVersion::TLS1_2)).unwrap();
    b.set_max_proto_version(Some(SslVersion::TLS1_2)).unwrap();
    b.set_options(SslOptions::NO_TICKET);
    b.set_security_level(0);
    b.set_cipher_list("PSK-AES128-CBC-SHA256").unwrap();
    if server {
        b.set_psk_server_callback(|_, _, out| {
            out[..BARE_KEY.len()].copy_from_slice(&BARE_KEY);
            Ok(BARE_KEY.len())
        });
    } else {
        b.set_psk_client_callback(|_, _, id, out| {
            id[..BARE_ID.len()].copy_from_slice(BARE_ID.as_bytes());
            id[BARE_ID.len()] = 0;
            out[..BARE_KEY.len()].copy_from_slice(&BARE_KEY);
            Ok(BARE_KEY.len())
        });
    }
    b.build()
}

struct Bare {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    addr: SocketAddr,
    cctx: SslContext,
}

fn bare() -> Bare {
    let stop = Arc::new(AtomicBool::new(false));
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    l.set_nonblocking(true).unwrap();
    let sctx = bare_ctx(true);
    let st = stop.clone();
    let thread = std::thread::spawn(move || {
        while !st.load(Ordering::Relaxed) {
            match l.accept() {
                Ok((tcp, _)) => {
                    tcp.set_nonblocking(false).unwrap();
                    let _ = Ssl::new(&sctx).unwrap().accept(tcp);
                }
                Err(_) => std::thread::sleep(Duration::from_micros(50)),
            }
        }
    });
    Bare {
        stop,
        thread: Some(thread),
        addr,
        cctx: bare_ctx(false),
    }
}

impl Bare {
    fn handshake(&self) {
        let tcp = TcpStream::connect(self.addr).unwrap();
        tcp.set_nodelay(true).unwrap();
        Ssl::new(&self.cctx)
            .unwrap()
            .connect(tcp)
            .map_err(|e| e.to_string())
            .unwrap();
    }

    fn rate(&self, n: usize) -> f64 {
        let t = Instant::now();
        for _ in 0..n {
            self.handshake();
        }
        n as f64 / t.elapsed().as_secs_f64()
    }
}

impl Drop for Bare {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// ---------- IBC extraction and its ECDSA baseline ----------

fn id2(i: usize) -> String {
    format!("{FQDN}|2030-01-01T00:00:00Z|Cdev{i:05}")
}

struct Ecdsa {
    key: openssl::pkey::PKey<openssl::pkey::Private>,
}

impl Ecdsa {
    fn new() -> Self {
        use openssl::ec::{EcGroup, EcKey};
        let group = EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1).unwrap();
        Ecdsa {
            key: openssl::pkey::PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap(),
        }
    }

    fn sign(&self, msg: &[u8]) -> Vec<u8> {
        let mut s =
            openssl::sign::Signer::new(openssl::hash::MessageDigest::sha256(), &self.key).unwrap();
        s.sign_oneshot_to_vec(msg).unwrap()
    }
}

fn extract_rate(pkg: &LocalPkg, n: usize) -> f64 {
    let t = Instant::now();
    for i in 0..n {
        pkg.extract(id2(i).as_bytes()).unwrap();
    }
    n as f64 / t.elapsed().as_secs_f64()
}

fn sign_rate(e: &Ecdsa, n: usize) -> f64 {
    let t = Instant::now();
    for i in 0..n {
        e.sign(id2(i).as_bytes());
    }
    n as f64 / t.elapsed().as_secs_f64()
}

// ---------- measurement ----------

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Alternates batches of subject and baseline `rounds` times; returns the median rates.
fn alternate(
    rounds: usize,
    mut subject: impl FnMut() -> f64,
    mut baseline: impl FnMut() -> f64,
) -> (f64, f64) {
    let (mut s, mut b) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        s.push(subject());
        b.push(baseline());
    }
    (median(s), median(b))
}

fn ratio(name: &str, what: (&str, &str), (s, b): (f64, f64)) {
    println!(
        "RATIO {name} = {:.2}  ({} {s:.0}/s vs {} {b:.0}/s)",
        s / b,
        what.0,
        what.1
    );
}

/// Median time of `f` over `n` calls, in microseconds (after one warm-up call).
fn micros(n: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        f();
        v.push(t.elapsed().as_secs_f64() * 1e6);
    }
    median(v)
}

/// A store with one device, for the commit and lookup profiles.
fn profile_store(dir: &Path) -> MefStore {
    let mut s = MefStore::open(dir).unwrap();
    let d = Device {
        kpm_id: kpm_id(0),
        enrolee_id: "Cdev000".parse().unwrap(),
        targets: vec![CSE.parse().unwrap()],
        enrolment_secs: 3600,
        created: 0,
        revoked: None,
    };
    s.add_device(&d, &Kpm::from_bytes(&[7; 32]).unwrap())
        .unwrap();
    s
}

fn commit_micros(s: &mut MefStore, n: usize) -> f64 {
    let mut k = 0u32;
    // The enrolment generation each commit expects (it moves by one per commit).
    let mut gen = s.enrol_gen(&kpm_id(0)).unwrap().unwrap_or(0);
    micros(n, || {
        k += 1;
        let e = Enrolment {
            kpm_id: kpm_id(0),
            ke_id: format!("{k:032x}@{FQDN}").parse().unwrap(),
            enrolee_id: "Cdev000".parse().unwrap(),
            reg_id: format!("mcr-{k}"),
            id2: Some(id2(0)),
            expires: 4_000_000_000,
        };
        let out = s
            .commit_enrolment(
                &e,
                &Ke::from_array([k as u8; 32]),
                &"admin.bench.example".parse().unwrap(),
                None,
                4_000_000_000,
                gen,
                1,
            )
            .unwrap();
        assert_eq!(out, m2msec_mef::store::CommitOutcome::Committed(gen + 1));
        gen += 1;
    })
}

/// Median round trip of one HTTP request on an open TLS session to the MEF (a target
/// client's RETRIEVE of a path the MEF does not have: no store access).
fn request_micros(mef: &Mef, rt: &Runtime, n: usize) -> f64 {
    let mut http = rt.block_on(async {
        let c = TlsClient::new(ClientConfig::psk(
            PskIdentity::new(CSE_IDENTITY).unwrap(),
            Psk::new(&CSE_KEY).unwrap(),
        ))
        .unwrap();
        let ch = c
            .connect("127.0.0.1", mef.addr.port(), Some(FQDN))
            .await
            .unwrap();
        HttpClient::new(ch, FQDN).await.unwrap()
    });
    let req = RequestPrimitive::new(Operation::Retrieve, "mef/none", Some(CSE), "p1");
    micros(n, || {
        rt.block_on(http.send(&req)).unwrap();
    })
}

/// Requests of one enrolment: Client Registration, Command Retrieve, one Command Update per
/// command before NO_MORE_COMMANDS, IBC enrolment, the success report.
fn requests_per_enrolment(s: &EnrolmentSecrets) -> usize {
    1 + 1 + s.summary.commands.len().saturating_sub(1) + usize::from(s.ibc.is_some()) + 1
}

fn disk_dir() -> tempfile::TempDir {
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap()
}

fn tmpfs_dir() -> Option<tempfile::TempDir> {
    tempfile::tempdir_in("/dev/shm").ok()
}

/// A throwaway SoftHSM2 token (TS-0003 §6.3.1): the MEF's KEK inside it.
fn token_environment() -> SecureEnvironment {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let cfg = m2msec_keystore::testing::new_token(&format!("bench-mef-{n}"));
    SecureEnvironment::open(&cfg).unwrap()
}

fn smoke() {
    let mef = start_mef(disk_dir());
    let enrolees = Enrolees::new();
    let s = enrolees.one(&mef);
    assert_eq!(requests_per_enrolment(&s), 5);
    enrolees.concurrent(&mef, CONCURRENCY);
    enrolees.handshake(&mef);
    let (_, enrolments, _) = mef.ep.with_store(|s| s.counts()).unwrap();
    assert_eq!(enrolments, 1 + CONCURRENCY as u64);
    bare().handshake();
    let token = start_mef_in(disk_dir(), &token_environment());
    enrolees.one(&token);
    let pkg = LocalPkg::generate();
    extract_rate(&pkg, 1);
    sign_rate(&Ecdsa::new(), 1);
    println!("enrolment bench: smoke test ok");
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        smoke();
        return;
    }
    const ROUNDS: usize = 9;
    let disk = disk_dir();
    println!("store: {} (synchronous=FULL, WAL)", disk.path().display());
    let mef = start_mef(disk);
    let enrolees = Enrolees::new();
    let b = bare();
    // Warm up both paths (connections, page cache, the SQLite file).
    for _ in 0..DEVICES {
        enrolees.one(&mef);
    }
    b.rate(20);

    // (a)/(b) Complete enrolments vs bare handshakes.
    let seq = alternate(ROUNDS, || enrolees.sequential(&mef, 60), || b.rate(200));
    ratio(
        "enrolment_vs_bare_handshake",
        ("enrolments", "bare TLS-PSK handshakes"),
        seq,
    );
    // The same enrolments with the MEF's KEK in a SoftHSM2 token (issue 15): every Kpm is
    // opened in the token when the PSK table loads, every Ke sealed in it at the commit.
    let token = start_mef_in(disk_dir(), &token_environment());
    for _ in 0..DEVICES {
        enrolees.one(&token);
    }
    let tok = alternate(
        ROUNDS,
        || enrolees.sequential(&token, 60),
        || enrolees.sequential(&mef, 60),
    );
    ratio(
        "enrolment_token_vs_file",
        ("enrolments, KEK in SoftHSM2", "enrolments, KEK file"),
        tok,
    );
    let tok_hs = alternate(
        ROUNDS,
        || {
            let t = Instant::now();
            for _ in 0..100 {
                enrolees.handshake(&token);
            }
            100.0 / t.elapsed().as_secs_f64()
        },
        || {
            let t = Instant::now();
            for _ in 0..100 {
                enrolees.handshake(&mef);
            }
            100.0 / t.elapsed().as_secs_f64()
        },
    );
    ratio(
        "handshake_token_vs_file",
        (
            "MEF handshakes, KEK in SoftHSM2",
            "MEF handshakes, KEK file",
        ),
        tok_hs,
    );
    drop(token);
    let conc = alternate(ROUNDS, || enrolees.concurrent(&mef, 96), || b.rate(200));
    ratio(
        "enrolment_c8_vs_bare_handshake",
        ("enrolments (8 in flight)", "bare TLS-PSK handshakes"),
        conc,
    );

    let c32 = alternate(
        ROUNDS,
        || enrolees.concurrent_with(&mef, 96, 32),
        || b.rate(200),
    );
    ratio(
        "enrolment_c32_vs_bare_handshake",
        ("enrolments (32 in flight)", "bare TLS-PSK handshakes"),
        c32,
    );

    // (c) IBC extraction vs ECDSA P-256 sign.
    let pkg = LocalPkg::generate();
    let ecdsa = Ecdsa::new();
    let ibc = alternate(
        ROUNDS,
        || extract_rate(&pkg, 400),
        || sign_rate(&ecdsa, 400),
    );
    ratio(
        "ibc_extract_vs_ecdsa_p256_sign",
        ("IBC extractions", "ECDSA P-256 signatures"),
        ibc,
    );

    // Where an enrolment's time goes.
    let s = enrolees.one(&mef);
    let requests = requests_per_enrolment(&s);
    println!(
        "PROFILE round trips per enrolment = {} (TCP connect 1, TLS 1.2 PSK handshake 2, HTTP \
         requests {requests}) vs 3 for a bare handshake",
        3 + requests
    );
    let hs = alternate(
        ROUNDS,
        || {
            let t = Instant::now();
            for _ in 0..100 {
                enrolees.handshake(&mef);
            }
            100.0 / t.elapsed().as_secs_f64()
        },
        || b.rate(200),
    );
    ratio(
        "mef_handshake_vs_bare_handshake",
        ("our TLS-PSK handshakes to the MEF", "bare"),
        hs,
    );
    let req_us = request_micros(&mef, &enrolees.rt, 200);
    // `enrol` builds its TLS client (an OpenSSL SSL_CTX) for every enrolment.
    let device_psk = || {
        let p = mef.params(0);
        ClientConfig::psk(
            PskIdentity::new(&p.kpm_id.to_string()).unwrap(),
            Psk::new(p.kpm.expose_secret()).unwrap(),
        )
    };
    let ctx_us = micros(200, || {
        TlsClient::new(device_psk()).unwrap();
    });
    let reused = TlsClient::new(device_psk()).unwrap();
    let hs_reused_us = micros(200, || {
        enrolees
            .rt
            .block_on(reused.connect("127.0.0.1", mef.addr.port(), Some(FQDN)))
            .unwrap();
    });
    let prof = disk_dir();
    let mut store = profile_store(prof.path());
    let commit_us = commit_micros(&mut store, 100);
    let lookup_us = micros(500, || {
        store.device(&kpm_id(0)).unwrap().unwrap();
    });
    let shm = tmpfs_dir();
    let commit_tmpfs_us = shm
        .as_ref()
        .map(|d| commit_micros(&mut profile_store(d.path()), 100));
    let hop_us = micros(500, || {
        mef.rt
            .block_on(async { tokio::task::spawn_blocking(|| ()).await })
            .unwrap();
    });
    let now = m2msec_mef::clock::unix_now();
    let cred = s.ibc.clone().unwrap();
    let validate_us = micros(100, || {
        validate_ibc(&cred, now).unwrap();
    });
    let (seq_rate, bare_rate) = seq;
    println!(
        "PROFILE enrolment = {:.0} us; bare handshake = {:.0} us; our handshake to the MEF = \
         {:.0} us",
        1e6 / seq_rate,
        1e6 / bare_rate,
        1e6 / hs.0
    );
    println!(
        "PROFILE TlsClient::new (SSL_CTX, once per enrol) = {ctx_us:.0} us; handshake to the MEF \
         with a reused TlsClient = {hs_reused_us:.0} us (median)"
    );
    println!(
        "PROFILE HTTP request on an open session = {req_us:.0} us (x{requests} = {:.0} us)",
        req_us * requests as f64
    );
    println!(
        "PROFILE IBC extraction (MEF) = {:.0} us; credential validation (Enrolee) = \
         {validate_us:.0} us",
        1e6 / ibc.0
    );
    match commit_tmpfs_us {
        Some(t) => println!(
            "PROFILE durable commit = {commit_us:.0} us on disk (synchronous=FULL), {t:.0} us on \
             tmpfs"
        ),
        None => println!("PROFILE durable commit = {commit_us:.0} us on disk"),
    }
    println!(
        "PROFILE device lookup (unseal Kpm) = {lookup_us:.0} us, done twice per session \
         (resolver, open); spawn_blocking hop = {hop_us:.0} us, {requests} per enrolment"
    );
    // The same enrolments with the store on tmpfs: what fsync costs end to end.
    if let Some(d) = tmpfs_dir() {
        let tmpfs = start_mef(d);
        for _ in 0..DEVICES {
            enrolees.one(&tmpfs);
        }
        let r = alternate(
            ROUNDS,
            || enrolees.sequential(&tmpfs, 60),
            || enrolees.sequential(&mef, 60),
        );
        ratio(
            "enrolment_tmpfs_vs_disk",
            ("enrolments, store on tmpfs", "on disk"),
            r,
        );
        let r = alternate(
            ROUNDS,
            || enrolees.concurrent(&tmpfs, 96),
            || enrolees.concurrent(&mef, 96),
        );
        ratio(
            "enrolment_c8_tmpfs_vs_disk",
            ("enrolments (8 in flight), store on tmpfs", "on disk"),
            r,
        );
    }
}
