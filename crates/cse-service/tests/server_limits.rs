//! The service against slow, oversized and garbage clients, over the loopback plaintext listener
//! (the same connection handling serves TLS channels): every case ends in a oneM2M error
//! response or a closed connection, within the configured deadlines.

use std::net::SocketAddr;
use std::time::Duration;

use m2msec_bindings::Limits;
use m2msec_cse::{Cse, CseConfig, CseType, SqliteStore};
use m2msec_cse_service::{PskCredential, ServerOptions};
use m2msec_tls::{Psk, PskIdentity};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const WAIT: Duration = Duration::from_secs(10);

async fn start(limits: Limits) -> SocketAddr {
    let cfg = CseConfig {
        sp: "sp.example".parse().unwrap(),
        cse_id: "/cse-in".parse().unwrap(),
        cb_rn: "cb".into(),
        cse_type: CseType::In,
        poa: vec![],
    };
    let cse = Cse::new(cfg, SqliteStore::open_in_memory().unwrap()).unwrap();
    let opts = ServerOptions {
        tls_addr: "127.0.0.1:0".parse().unwrap(),
        authority: None,
        require_sni: false,
        credentials: vec![PskCredential {
            psk_identity: PskIdentity::new("k@mef.sp.example").unwrap(),
            kpsa_id: "k@mef.sp.example".parse().unwrap(),
            key: Psk::new(&[7u8; 16]).unwrap(),
            bound: None,
        }],
        plain_addr: Some("127.0.0.1:0".parse().unwrap()),
        limits,
    };
    let server = m2msec_cse_service::bind_http(opts, cse).await.unwrap();
    let addr = server.plain_addr().unwrap();
    tokio::spawn(server.serve());
    addr
}

fn limits() -> Limits {
    Limits {
        max_body: 1024,
        handshake_timeout: Duration::from_secs(2),
        header_timeout: Duration::from_millis(500),
        body_timeout: Duration::from_millis(500),
        idle_timeout: Duration::from_millis(800),
        max_connections: 16,
    }
}

/// Reads until the server closes; the whole output.
async fn read_to_close(s: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut buf))
        .await
        .expect("server did not close the connection in time")
        .ok();
    String::from_utf8_lossy(&buf).to_string()
}

#[tokio::test]
async fn idle_connection_is_closed() {
    let addr = start(limits()).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let out = read_to_close(&mut s).await;
    assert!(out.is_empty() || out.contains("408"), "{out}");
}

#[tokio::test]
async fn slow_headers_are_cut_off() {
    let addr = start(limits()).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /cb HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let _ = read_to_close(&mut s).await;
}

#[tokio::test]
async fn slow_body_gets_4008_and_close() {
    let addr = start(limits()).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(
        b"POST /cb HTTP/1.1\r\nHost: x\r\nX-M2M-RI: r1\r\nX-M2M-Origin: C\r\n\
          Content-Type: application/json;ty=2\r\nContent-Length: 100\r\n\r\n{\"m2m:ae\"",
    )
    .await
    .unwrap();
    let out = read_to_close(&mut s).await.to_ascii_lowercase();
    assert!(out.contains("x-m2m-rsc: 4008"), "{out}");
    assert!(out.contains("x-m2m-ri: r1"), "{out}");
}

#[tokio::test]
async fn oversized_body_gets_4000_without_being_read() {
    let addr = start(limits()).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(
        b"POST /cb HTTP/1.1\r\nHost: x\r\nX-M2M-RI: r2\r\n\
          Content-Type: application/json;ty=2\r\nContent-Length: 1000000\r\n\r\n",
    )
    .await
    .unwrap();
    let out = read_to_close(&mut s).await.to_ascii_lowercase();
    assert!(out.starts_with("http/1.1 400"), "{out}");
    assert!(out.contains("x-m2m-rsc: 4000"), "{out}");

    // Chunked, no length announced: cut off at the limit.
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut req = b"POST /cb HTTP/1.1\r\nHost: x\r\nX-M2M-RI: r3\r\n\
          Content-Type: application/json;ty=2\r\nTransfer-Encoding: chunked\r\n\r\n"
        .to_vec();
    for _ in 0..4 {
        req.extend_from_slice(b"200\r\n");
        req.extend_from_slice(&[b' '; 0x200]);
        req.extend_from_slice(b"\r\n");
    }
    s.write_all(&req).await.unwrap();
    let out = read_to_close(&mut s).await.to_ascii_lowercase();
    assert!(out.contains("x-m2m-rsc: 4000"), "{out}");
}

#[tokio::test]
async fn garbage_and_wrong_media_types() {
    let addr = start(limits()).await;
    // Not HTTP at all: hyper answers 400 or closes.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"\x16\x03\x01\x00\x05hello\r\n\r\n")
        .await
        .unwrap();
    let out = read_to_close(&mut s).await;
    assert!(out.is_empty() || out.starts_with("HTTP/1.1 4"), "{out}");

    for (req, rsc) in [
        (
            "POST /cb HTTP/1.1\r\nHost: x\r\nX-M2M-RI: a\r\nContent-Type: application/xml;ty=2\r\n\
             Content-Length: 4\r\nConnection: close\r\n\r\n<x/>",
            "415",
        ),
        (
            "POST /cb HTTP/1.1\r\nHost: x\r\nX-M2M-RI: a\r\nContent-Type: application/json;ty=2\r\n\
             Content-Length: 4\r\nConnection: close\r\n\r\n{\"a\"",
            "400",
        ),
        (
            "GET /cb HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            "400",
        ),
    ] {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(req.as_bytes()).await.unwrap();
        let out = read_to_close(&mut s).await;
        assert!(out.starts_with(&format!("HTTP/1.1 {rsc}")), "{req}: {out}");
    }
}

#[tokio::test]
async fn non_loopback_plaintext_is_refused() {
    let cfg = CseConfig {
        sp: "sp.example".parse().unwrap(),
        cse_id: "/cse-in".parse().unwrap(),
        cb_rn: "cb".into(),
        cse_type: CseType::In,
        poa: vec![],
    };
    let cse = Cse::new(cfg, SqliteStore::open_in_memory().unwrap()).unwrap();
    let opts = ServerOptions {
        tls_addr: "127.0.0.1:0".parse().unwrap(),
        authority: None,
        require_sni: false,
        credentials: vec![],
        plain_addr: Some("0.0.0.0:0".parse().unwrap()),
        limits: limits(),
    };
    let e = m2msec_cse_service::bind_http(opts, cse).await.unwrap_err();
    assert!(e.to_string().contains("loopback"), "{e}");
}

/// Issue 9 item 12: a keep-alive connection stays open for the idle timeout, not the header
/// timeout; a request head still has to be complete within the header timeout.
///
/// The waits here are real time on purpose: the timeouts are the listener's socket deadlines
/// (tokio timers on a real connection), not an expiry judged on the injected clock (issue 10
/// item 7). Kept short: about 2.5 s in all.
#[tokio::test]
async fn keep_alive_lasts_the_idle_timeout() {
    let addr = start(Limits {
        header_timeout: Duration::from_millis(250),
        idle_timeout: Duration::from_millis(1500),
        ..limits()
    })
    .await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = b"GET /cb HTTP/1.1\r\nHost: x\r\nX-M2M-RI: k1\r\nX-M2M-Origin: Cnobody\r\n\r\n";
    let mut buf = vec![0u8; 4096];
    for round in 0..3 {
        s.write_all(req).await.unwrap();
        let n = tokio::time::timeout(WAIT, s.read(&mut buf))
            .await
            .expect("no response")
            .unwrap();
        let out = String::from_utf8_lossy(&buf[..n]).to_ascii_lowercase();
        assert!(out.starts_with("http/1.1 "), "round {round}: {out:?}");
        // Idle for three header timeouts (well inside the idle timeout).
        tokio::time::sleep(Duration::from_millis(750)).await;
    }
    // A head that never completes is still cut off after the header timeout.
    s.write_all(b"GET /cb HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let t = std::time::Instant::now();
    let _ = read_to_close(&mut s).await;
    // Well before the idle timeout (1.5 s), which would also close it.
    assert!(
        t.elapsed() < Duration::from_millis(1000),
        "{:?}",
        t.elapsed()
    );
}
