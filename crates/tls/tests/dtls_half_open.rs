//! DTLS half-open exhaustion (issue 9 item 5): sources that complete the cookie exchange
//! (RFC 6347 §4.2.1) and then abandon their handshakes must not keep a legitimate device out.
//!
//! The attacker ("squatter") sockets each get a valid cookie for their own address, then keep
//! sending the cookie-echoing ClientHello from many ports, so every one of them creates a
//! half-open handshake on the server. Loopback: the squatters bind to 127.0.0.2.. (all of
//! 127/8 is loopback on Linux) and the legitimate clients (ours, and python-mbedtls) connect
//! from 127.0.0.1, as a device on another address would. Each test measures the legitimate
//! handshake latency without and during the flood in the same run and prints the ratio.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{python, script, Peer, WAIT};
use m2msec_tls::{DtlsClient, DtlsOptions, DtlsStats};
use tokio::net::UdpSocket;
use tokio::sync::watch;

const ID: &str = "kpsa@mef.example.com";
const KEY: &str = "000102030405060708090a0b0c0d0e0f";
/// A legitimate handshake during the flood must complete within this (without the fix it
/// never completes while the flood lasts: the ClientHello finds no free half-open slot).
const PROMPT: Duration = Duration::from_secs(3);
/// Legitimate handshakes measured without and during the flood.
const SAMPLES: usize = 20;

fn client() -> DtlsClient {
    DtlsClient::new(
        common::psk_client_cfg(ID, KEY, Duration::from_secs(8)),
        DtlsOptions::default(),
    )
    .unwrap()
}

/// The echo server on 127.0.0.1 with `opts`; the handshake timeout is the 10 s of the report.
async fn echo_server(opts: DtlsOptions) -> (SocketAddr, watch::Receiver<DtlsStats>) {
    let cfg = common::psk_server_cfg(ID, KEY, Duration::from_secs(10));
    let (addr, stats, _ended) = common::echo_server(&cfg, opts).await;
    (addr, stats)
}

/// One source port that holds a valid cookie for its own address.
struct Squatter {
    sock: UdpSocket,
    hello: Vec<u8>,
}

/// Squatters on `ips` × `ports_each`, each with its cookie (one stateless round trip each).
async fn squatters(target: SocketAddr, ips: &[Ipv4Addr], ports_each: usize) -> Vec<Squatter> {
    let hello = common::captured_client_hello(&client()).await;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 4096];
    for ip in ips {
        for _ in 0..ports_each {
            let sock = UdpSocket::bind((*ip, 0)).await.unwrap();
            let mut cookie = None;
            for _ in 0..5 {
                sock.send_to(&hello, target).await.unwrap();
                if let Ok(Ok((n, _))) =
                    tokio::time::timeout(Duration::from_millis(500), sock.recv_from(&mut buf)).await
                {
                    cookie = common::hello_verify_cookie(&buf[..n]);
                    if cookie.is_some() {
                        break;
                    }
                }
            }
            let cookie = cookie.expect("a HelloVerifyRequest for the squatter");
            out.push(Squatter {
                hello: common::client_hello_with_cookie(&hello, &cookie),
                sock,
            });
        }
    }
    out
}

/// Round-robin the cookie-echoing ClientHellos, one every `pace`, until `stop`, counting them in
/// `sent`. A squatter whose half-open handshake was evicted starts a new one on its next turn.
fn flood(
    squatters: Vec<Squatter>,
    target: SocketAddr,
    pace: Duration,
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(pace);
        'outer: loop {
            for s in &squatters {
                if stop.load(Ordering::Relaxed) {
                    break 'outer;
                }
                tick.tick().await;
                if s.sock.send_to(&s.hello, target).await.is_ok() {
                    sent.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    })
}

/// One legitimate handshake plus an echo; its latency (handshake only).
async fn legitimate(target: SocketAddr) -> Result<Duration, String> {
    let c = client();
    let t = Instant::now();
    let mut s =
        match tokio::time::timeout(PROMPT, c.connect_addr(target, Some("mef.example.com"))).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(format!("handshake failed: {e}")),
            Err(_) => return Err(format!("no handshake within {PROMPT:?}")),
        };
    let took = t.elapsed();
    s.send(b"ping").await.map_err(|e| e.to_string())?;
    let got = tokio::time::timeout(WAIT, s.recv())
        .await
        .map_err(|_| "no echo".to_string())?
        .map_err(|e| e.to_string())?;
    if got != b"echo:ping" {
        return Err(format!("wrong echo {got:?}"));
    }
    Ok(took)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Waits until `cond` holds on the published counters, at most 4 s (well within the 10 s the
/// squatters' handshakes would last without eviction); returns the last counters. (`half_open`
/// counts handshake tasks: an evicted one ends at its next wait, so for a moment the count can
/// exceed the bound the server admits by; the kernel may drop strikes the server is too slow
/// for, which the flood repeats on its next round.)
async fn stats_until(
    rx: &watch::Receiver<DtlsStats>,
    cond: impl Fn(&DtlsStats) -> bool,
) -> DtlsStats {
    let end = Instant::now() + Duration::from_secs(4);
    loop {
        let st = *rx.borrow();
        if cond(&st) || Instant::now() > end {
            return st;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The flood scenario: baseline latency, fill, then legitimate handshakes (ours and
/// python-mbedtls) while the flood goes on. Returns (baseline, during, counters after fill).
async fn run_scenario(
    opts: DtlsOptions,
    ips: &[Ipv4Addr],
    ports_each: usize,
    settled: impl Fn(&DtlsStats) -> bool,
) -> (Duration, Duration, DtlsStats, DtlsStats) {
    let (target, stats) = echo_server(opts).await;
    let mut base = Vec::new();
    for _ in 0..SAMPLES {
        base.push(legitimate(target).await.expect("baseline handshake"));
    }
    let sq = squatters(target, ips, ports_each).await;
    let n = sq.len() as u64;
    let stop = Arc::new(AtomicBool::new(false));
    // About 500 cookie-echoing ClientHellos per second (the report needed 26 per second).
    let sent = Arc::new(AtomicU64::new(0));
    let flooder = flood(
        sq,
        target,
        Duration::from_millis(2),
        stop.clone(),
        sent.clone(),
    );
    // Every squatter has struck at least once: the server is under full pressure.
    let end = Instant::now() + WAIT;
    while sent.load(Ordering::Relaxed) < n && Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let filled = stats_until(&stats, &settled).await;
    let mut during = Vec::new();
    for i in 0..SAMPLES {
        match legitimate(target).await {
            Ok(d) => during.push(d),
            Err(e) => panic!(
                "legitimate handshake {i} during the flood: {e}; {:?}",
                *stats.borrow()
            ),
        }
    }
    // An independent DTLS stack as the device, also during the flood.
    let mut cmd = Command::new(python());
    cmd.arg(script("dtls_psk_client.py"))
        .arg("127.0.0.1")
        .arg(target.port().to_string())
        .args([ID, KEY, "from mbedtls"]);
    let t = Instant::now();
    let mut py = Peer::spawn("python-mbedtls DTLS client", &mut cmd, false);
    let out = py.wait_for("DONE", WAIT).await;
    let py_took = t.elapsed();
    assert!(out.contains("RECV echo:from mbedtls"), "{out}");
    stop.store(true, Ordering::Relaxed);
    flooder.await.unwrap();
    let sent = sent.load(Ordering::Relaxed);
    let after = stats_until(&stats, &settled).await;
    let (b, d) = (median(base), median(during));
    println!(
        "legitimate DTLS-PSK handshake: median {b:?} without flood, {d:?} during a flood of \
         {sent} cookie-echoing ClientHellos from {n} source ports (ratio {:.2}); \
         python-mbedtls client (process start + handshake + echo) {py_took:?}; {after:?}",
        d.as_secs_f64() / b.as_secs_f64().max(1e-6)
    );
    assert!(
        py_took < Duration::from_secs(5),
        "python-mbedtls took {py_took:?}: {out}"
    );
    (b, d, filled, after)
}

/// One host (127.0.0.2) on 300 ports: only `max_half_open_per_source` (default 16) of its
/// handshakes are half-open at any time; the rest of the slots stay free for other sources.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_host_on_many_ports_is_bounded_per_source_and_a_device_gets_in() {
    let opts = DtlsOptions::default();
    let per_source = opts.max_half_open_per_source;
    let evictions = 300 - per_source as u64;
    let settled = |s: &DtlsStats| s.half_open <= per_source && s.evicted >= evictions;
    let (_, _, filled, after) =
        run_scenario(opts, &[Ipv4Addr::new(127, 0, 0, 2)], 300, settled).await;
    assert!(settled(&filled), "{filled:?}");
    assert!(settled(&after), "{after:?}");
}

/// 40 hosts × 8 ports (320 > 256 slots), each under the per-source bound: the global bound is
/// reached and the oldest handshake of the busiest source is evicted for every newcomer, so the
/// device's handshake (its source has one) is never the one evicted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_hosts_fill_the_global_bound_and_the_oldest_is_evicted() {
    let opts = DtlsOptions::default();
    let max = opts.max_half_open;
    let ips: Vec<Ipv4Addr> = (2..42).map(|i| Ipv4Addr::new(127, 0, 0, i)).collect();
    let settled = |s: &DtlsStats| s.half_open <= max && s.evicted >= 320 - max as u64;
    let (_, _, filled, after) = run_scenario(opts, &ips, 8, settled).await;
    assert!(settled(&filled), "{filled:?}");
    assert!(settled(&after), "{after:?}");
}
