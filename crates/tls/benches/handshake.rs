//! Handshakes per second through our stack against a bare OpenSSL handshake loop on the same
//! (vendored) library in the same run, over real loopback sockets (issue 3 item 10).
//!
//! Ours runs client and server on one current-thread tokio runtime (and, for the
//! `*_multi_thread` ratios, on a two-worker runtime); the bare loop runs them on two OS threads.
//!
//! * TLS-PSK: our `TlsClient`/`TlsServer` on tokio vs the `openssl` crate's blocking
//!   `Ssl::connect`/`Ssl::accept` on std TCP sockets (server on its own thread).
//! * DTLS-PSK: our `DtlsClient`/`DtlsServer` (cookie exchange off, as the bare loop has none;
//!   and on, for reference) vs blocking `openssl` DTLS over std UDP sockets.
//!
//! `cargo bench -p m2msec-tls --bench handshake` prints criterion's figures and then
//! `RATIO <case> ours/bare = x.xx (ours N/s vs bare M/s)`, from alternating batches of the two so
//! machine noise affects both alike (goal: at least 0.9), and
//! `RATE {tls,dtls}_ecdhe_ecdsa ours = N/s` (certificate handshakes, P-256), and
//! `MEMORY dtls idle session = x KiB (N sessions)`: the server's resident-memory growth per idle
//! established DTLS session with N (default 10,000; env `M2MSEC_BENCH_SESSIONS`) sessions held
//! on one port, each by a task waiting in `DtlsSession::recv` as a server application would,
//! the clients running in a child process (goal: at most 64 KiB). Without `--bench`
//! (as under `cargo test --all-targets`) it runs one handshake of each kind and a 20-session
//! memory run as a smoke test.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use criterion::{criterion_group, Criterion};
use m2msec_tls::{
    CertCredential, ClientConfig, DtlsClient, DtlsOptions, DtlsServer, ExpectedName, Psk,
    PskIdentity, PskTable, ServerCertificates, ServerConfig, TlsClient, TlsServer, TrustAnchors,
};
use openssl::ssl::{Ssl, SslContext, SslContextBuilder, SslMethod, SslOptions, SslVersion};

const ID: &str = "kpsa-bench@mef.example.com";
const KEY: [u8; 32] = [0x5a; 32];

// ---------- our stack ----------

struct Ours {
    rt: tokio::runtime::Runtime,
    tls_client: TlsClient,
    tls_port: u16,
    dtls_client: DtlsClient,
    dtls_addr: SocketAddr,
    dtls_cookie_addr: SocketAddr,
}

/// Our client and server in one process. With `multi_thread` false they share one thread (each
/// handshake is a strict ping-pong, so this avoids cross-thread wake-ups); with true they run on
/// a two-worker runtime driven from the bench thread (the shape of a busy server).
fn ours_with(multi_thread: bool) -> Ours {
    let rt = if multi_thread {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    } else {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    };
    let table = PskTable::new();
    table.insert(PskIdentity::new(ID).unwrap(), Psk::new(&KEY).unwrap());
    let scfg = ServerConfig::psk(Arc::new(table));
    let ccfg = ClientConfig::psk(PskIdentity::new(ID).unwrap(), Psk::new(&KEY).unwrap());
    let (tls_port, dtls_addr, dtls_cookie_addr) = rt.block_on(async {
        let server = TlsServer::new(&scfg).unwrap();
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = l.accept().await {
                let s = server.clone();
                tokio::spawn(async move {
                    let _ = s.accept(tcp).await;
                });
            }
        });
        let mut addrs = Vec::new();
        for cookies in [false, true] {
            let opts = DtlsOptions {
                cookie_exchange: cookies,
                ..DtlsOptions::default()
            };
            let mut d = DtlsServer::bind("127.0.0.1:0".parse().unwrap(), &scfg, opts)
                .await
                .unwrap();
            addrs.push(d.local_addr());
            tokio::spawn(async move { while d.accept().await.is_some() {} });
        }
        (port, addrs[0], addrs[1])
    });
    Ours {
        rt,
        tls_client: TlsClient::new(ccfg.clone()).unwrap(),
        tls_port,
        dtls_client: DtlsClient::new(ccfg, DtlsOptions::default()).unwrap(),
        dtls_addr,
        dtls_cookie_addr,
    }
}

fn ours() -> Ours {
    ours_with(false)
}

impl Ours {
    fn tls(&self) {
        self.rt.block_on(async {
            self.tls_client
                .connect("127.0.0.1", self.tls_port, None)
                .await
                .unwrap();
        });
    }

    fn dtls(&self, cookies: bool) {
        let addr = if cookies {
            self.dtls_cookie_addr
        } else {
            self.dtls_addr
        };
        self.rt.block_on(async {
            self.dtls_client.connect_addr(addr, None).await.unwrap();
        });
    }
}

// ---------- bare OpenSSL ----------

fn bare_ctx(dtls: bool, server: bool) -> SslContext {
    let (m, v, c) = if dtls {
        (SslMethod::dtls(), SslVersion::DTLS1_2, "PSK-AES128-CCM8")
    } else {
        (
            SslMethod::tls(),
            SslVersion::TLS1_2,
            "PSK-AES128-CBC-SHA256",
        )
    };
    let mut b = SslContextBuilder::new(m).unwrap();
    b.set_min_proto_version(Some(v)).unwrap();
    b.set_max_proto_version(Some(v)).unwrap();
    b.set_options(SslOptions::NO_TICKET);
    b.set_security_level(0);
    b.set_cipher_list(c).unwrap();
    if server {
        b.set_psk_server_callback(|_, _, out| {
            out[..KEY.len()].copy_from_slice(&KEY);
            Ok(KEY.len())
        });
    } else {
        b.set_psk_client_callback(|_, _, id, out| {
            id[..ID.len()].copy_from_slice(ID.as_bytes());
            id[ID.len()] = 0;
            out[..KEY.len()].copy_from_slice(&KEY);
            Ok(KEY.len())
        });
    }
    b.build()
}

/// Blocking UDP adapter: the server side learns its peer from the first datagram.
#[derive(Debug)]
struct Udp {
    sock: UdpSocket,
    peer: Option<SocketAddr>,
}

impl Read for Udp {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let (n, from) = self.sock.recv_from(buf)?;
        self.peer.get_or_insert(from);
        Ok(n)
    }
}

impl Write for Udp {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.peer {
            Some(p) => self.sock.send_to(buf, p),
            None => Err(io::ErrorKind::NotConnected.into()),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

struct Bare {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    tls_addr: SocketAddr,
    dtls_addr: SocketAddr,
    tls_cctx: SslContext,
    dtls_cctx: SslContext,
}

fn bare() -> Bare {
    let stop = Arc::new(AtomicBool::new(false));
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let tls_addr = l.local_addr().unwrap();
    l.set_nonblocking(true).unwrap();
    let sctx = bare_ctx(false, true);
    let st = stop.clone();
    let t1 = std::thread::spawn(move || {
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
    let u = UdpSocket::bind("127.0.0.1:0").unwrap();
    u.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let dtls_addr = u.local_addr().unwrap();
    let dctx = bare_ctx(true, true);
    let st = stop.clone();
    let t2 = std::thread::spawn(move || {
        while !st.load(Ordering::Relaxed) {
            let io = Udp {
                sock: u.try_clone().unwrap(),
                peer: None,
            };
            let mut ssl = Ssl::new(&dctx).unwrap();
            ssl.set_mtu(1200).unwrap();
            let _ = ssl.accept(io);
        }
    });
    Bare {
        stop,
        threads: vec![t1, t2],
        tls_addr,
        dtls_addr,
        tls_cctx: bare_ctx(false, false),
        dtls_cctx: bare_ctx(true, false),
    }
}

impl Bare {
    fn tls(&self) {
        let tcp = TcpStream::connect(self.tls_addr).unwrap();
        tcp.set_nodelay(true).unwrap();
        Ssl::new(&self.tls_cctx)
            .unwrap()
            .connect(tcp)
            .map_err(|e| e.to_string())
            .unwrap();
    }

    fn dtls(&self) {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let io = Udp {
            sock,
            peer: Some(self.dtls_addr),
        };
        let mut ssl = Ssl::new(&self.dtls_cctx).unwrap();
        ssl.set_mtu(1200).unwrap();
        ssl.connect(io).map_err(|e| e.to_string()).unwrap();
    }
}

impl Drop for Bare {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

// ---------- runs ----------

fn criterion_benches(c: &mut Criterion) {
    let o = ours();
    let b = bare();
    let mut g = c.benchmark_group("handshake");
    g.sample_size(20);
    g.bench_function("tls_psk/ours", |x| x.iter(|| o.tls()));
    g.bench_function("tls_psk/bare_openssl", |x| x.iter(|| b.tls()));
    g.bench_function("dtls_psk/ours", |x| x.iter(|| o.dtls(false)));
    g.bench_function("dtls_psk_cookie/ours", |x| x.iter(|| o.dtls(true)));
    g.bench_function("dtls_psk/bare_openssl", |x| x.iter(|| b.dtls()));
    g.finish();
}

criterion_group!(benches, criterion_benches);

/// Alternate batches of ours and bare; report the ratio of median handshake rates.
fn ratios() {
    let o = ours();
    let mt = ours_with(true);
    let b = bare();
    const BATCH: u32 = 40;
    const ROUNDS: usize = 9;
    type Case<'a> = (&'a str, Box<dyn Fn() + 'a>, Box<dyn Fn() + 'a>);
    let cases: Vec<Case> = vec![
        ("tls_psk", Box::new(|| o.tls()), Box::new(|| b.tls())),
        (
            "dtls_psk",
            Box::new(|| o.dtls(false)),
            Box::new(|| b.dtls()),
        ),
        (
            "dtls_psk_cookie",
            Box::new(|| o.dtls(true)),
            Box::new(|| b.dtls()),
        ),
        (
            "tls_psk_multi_thread",
            Box::new(|| mt.tls()),
            Box::new(|| b.tls()),
        ),
        (
            "dtls_psk_multi_thread",
            Box::new(|| mt.dtls(false)),
            Box::new(|| b.dtls()),
        ),
    ];
    for (name, ours, bare) in cases {
        let (mut ro, mut rb) = (Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            let t = Instant::now();
            for _ in 0..BATCH {
                ours();
            }
            ro.push(BATCH as f64 / t.elapsed().as_secs_f64());
            let t = Instant::now();
            for _ in 0..BATCH {
                bare();
            }
            rb.push(BATCH as f64 / t.elapsed().as_secs_f64());
        }
        ro.sort_by(f64::total_cmp);
        rb.sort_by(f64::total_cmp);
        let (x, y) = (ro[ROUNDS / 2], rb[ROUNDS / 2]);
        println!(
            "RATIO {name} ours/bare = {:.2}  (ours {x:.0}/s vs bare {y:.0}/s)",
            x / y
        );
    }
}

// ---------- certificate handshakes ----------

/// A P-256 CA and a leaf for `in-cse.example.com` (keyUsage digitalSignature).
fn test_pki() -> (openssl::x509::X509, CertCredential) {
    use openssl::asn1::Asn1Time;
    use openssl::hash::MessageDigest;
    use openssl::x509::extension::{BasicConstraints, KeyUsage, SubjectAlternativeName};
    use openssl::x509::{X509Builder, X509NameBuilder};
    let name = |cn: &str| {
        let mut n = X509NameBuilder::new().unwrap();
        n.append_entry_by_text("CN", cn).unwrap();
        n.build()
    };
    let ca_key = CertCredential::generate_p256_key().unwrap();
    let mut b = X509Builder::new().unwrap();
    b.set_version(2).unwrap();
    b.set_subject_name(&name("bench CA")).unwrap();
    b.set_issuer_name(&name("bench CA")).unwrap();
    b.set_pubkey(&ca_key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(2).unwrap())
        .unwrap();
    b.append_extension(BasicConstraints::new().critical().ca().build().unwrap())
        .unwrap();
    b.append_extension(KeyUsage::new().key_cert_sign().build().unwrap())
        .unwrap();
    b.sign(&ca_key, MessageDigest::sha256()).unwrap();
    let ca = b.build();
    let key = CertCredential::generate_p256_key().unwrap();
    let mut b = X509Builder::new().unwrap();
    b.set_version(2).unwrap();
    b.set_subject_name(&name("in-cse")).unwrap();
    b.set_issuer_name(ca.subject_name()).unwrap();
    b.set_pubkey(&key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(2).unwrap())
        .unwrap();
    b.append_extension(KeyUsage::new().digital_signature().build().unwrap())
        .unwrap();
    let san = SubjectAlternativeName::new()
        .dns("in-cse.example.com")
        .build(&b.x509v3_context(Some(&ca), None))
        .unwrap();
    b.append_extension(san).unwrap();
    b.sign(&ca_key, MessageDigest::sha256()).unwrap();
    let leaf = b.build();
    (ca, CertCredential::new(vec![leaf], key).unwrap())
}

/// ECDHE-ECDSA (P-256) handshakes per second through our stack, TLS and DTLS.
fn certificate_rates() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (ca, cred) = test_pki();
    let mut certs = ServerCertificates::new();
    certs.set_default(cred);
    let scfg = ServerConfig::certificates(certs);
    let ccfg = ClientConfig::certificate(
        TrustAnchors::new(vec![ca]).unwrap(),
        ExpectedName::Dns("in-cse.example.com".into()),
        None,
    );
    let (tls_port, dtls_addr) = rt.block_on(async {
        let server = TlsServer::new(&scfg).unwrap();
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = l.accept().await {
                let s = server.clone();
                tokio::spawn(async move {
                    let _ = s.accept(tcp).await;
                });
            }
        });
        let mut d = DtlsServer::bind(
            "127.0.0.1:0".parse().unwrap(),
            &scfg,
            DtlsOptions::default(),
        )
        .await
        .unwrap();
        let addr = d.local_addr();
        tokio::spawn(async move { while d.accept().await.is_some() {} });
        (port, addr)
    });
    let tls = TlsClient::new(ccfg.clone()).unwrap();
    let dtls = DtlsClient::new(ccfg, DtlsOptions::default()).unwrap();
    const N: u32 = 200;
    let t = Instant::now();
    for _ in 0..N {
        rt.block_on(tls.connect("127.0.0.1", tls_port, Some("in-cse.example.com")))
            .unwrap();
    }
    println!(
        "RATE tls_ecdhe_ecdsa ours = {:.0}/s",
        N as f64 / t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    for _ in 0..N {
        rt.block_on(dtls.connect_addr(dtls_addr, Some("in-cse.example.com")))
            .unwrap();
    }
    println!(
        "RATE dtls_ecdhe_ecdsa ours = {:.0}/s (cookie exchange on)",
        N as f64 / t.elapsed().as_secs_f64()
    );
}

// ---------- memory per idle DTLS session ----------

const SWARM_ENV: &str = "M2MSEC_BENCH_CLIENT_SWARM";

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<u64>().ok())
        })
        .map(|pages| pages * 4096)
        .unwrap_or(0)
}

/// Child mode: open `n` DTLS sessions to `addr`, print "ready", hold them until stdin closes.
fn client_swarm(addr: SocketAddr, n: usize) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let ccfg = ClientConfig::psk(PskIdentity::new(ID).unwrap(), Psk::new(&KEY).unwrap());
    let client = DtlsClient::new(ccfg, DtlsOptions::default()).unwrap();
    let sessions = rt.block_on(async {
        let mut held = Vec::with_capacity(n);
        let mut set = tokio::task::JoinSet::new();
        let mut started = 0;
        while held.len() < n {
            while started < n && set.len() < 16 {
                let c = client.clone();
                set.spawn(async move { c.connect_addr(addr, None).await });
                started += 1;
            }
            match set.join_next().await {
                Some(Ok(Ok(s))) => held.push(s),
                Some(Ok(Err(e))) => panic!("swarm handshake: {e}"),
                Some(Err(e)) => panic!("swarm task: {e}"),
                None => break,
            }
        }
        held
    });
    println!("ready {}", sessions.len());
    let _ = io::stdout().flush();
    let mut sink = String::new();
    let _ = io::stdin().read_line(&mut sink);
    drop(sessions);
}

fn idle_memory(n: usize) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let table = PskTable::new();
    table.insert(PskIdentity::new(ID).unwrap(), Psk::new(&KEY).unwrap());
    let scfg = ServerConfig::psk(Arc::new(table));
    let opts = DtlsOptions {
        max_sessions: n + 16,
        idle_timeout: Duration::from_secs(3600),
        ..DtlsOptions::default()
    };
    let held = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (addr, keep) = rt.block_on(async {
        let mut d = DtlsServer::bind("127.0.0.1:0".parse().unwrap(), &scfg, opts)
            .await
            .unwrap();
        let addr = d.local_addr();
        let held = held.clone();
        // Each session is held the way a server application holds it: a task waiting in
        // `recv` (which is also what answers a client's retransmitted final flight).
        let keep = tokio::spawn(async move {
            let mut tasks = tokio::task::JoinSet::new();
            while let Some(a) = d.accept().await {
                if let Ok(mut s) = a {
                    tasks.spawn(async move { s.recv().await.map(|d| d.len()) });
                    held.store(tasks.len(), Ordering::Release);
                }
            }
            tasks.len()
        });
        (addr, keep)
    });
    std::thread::sleep(Duration::from_millis(200));
    let before = rss_bytes();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .env(SWARM_ENV, format!("{addr} {n}"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let mut out = io::BufReader::new(child.stdout.take().unwrap());
    io::BufRead::read_line(&mut out, &mut line).unwrap();
    assert!(line.starts_with("ready"), "swarm: {line:?}");
    let end = Instant::now() + Duration::from_secs(60);
    while held.load(Ordering::Acquire) < n && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    let after = rss_bytes();
    let got = held.load(Ordering::Acquire);
    println!(
        "MEMORY dtls idle session = {:.1} KiB ({got} sessions, server RSS +{:.1} MiB)",
        after.saturating_sub(before) as f64 / 1024.0 / got.max(1) as f64,
        after.saturating_sub(before) as f64 / 1048576.0
    );
    drop(child.stdin.take());
    let _ = child.wait();
    keep.abort();
}

fn sessions_from_env(default: usize) -> usize {
    std::env::var("M2MSEC_BENCH_SESSIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    if let Ok(v) = std::env::var(SWARM_ENV) {
        let mut it = v.split_whitespace();
        let addr = it
            .next()
            .and_then(|a| a.parse().ok())
            .expect("swarm address");
        let n = it.next().and_then(|a| a.parse().ok()).expect("swarm size");
        client_swarm(addr, n);
        return;
    }
    // `cargo test --all-targets` runs this binary without `--bench`: one of each, no timing.
    if !std::env::args().any(|a| a == "--bench") {
        idle_memory(sessions_from_env(20));
        let o = ours();
        let b = bare();
        o.tls();
        o.dtls(false);
        o.dtls(true);
        b.tls();
        b.dtls();
        println!("handshake bench: smoke test ok");
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
    ratios();
    certificate_rates();
    idle_memory(sessions_from_env(10_000));
}
