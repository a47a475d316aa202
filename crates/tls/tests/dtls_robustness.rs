//! DTLS under hostile networks: dropped datagrams (the retransmission timer must complete the
//! handshake) and ClientHello floods (memory must stay bounded, legitimate peers must still get
//! in).

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use m2msec_tls::{
    ClientConfig, DtlsClient, DtlsOptions, DtlsServer, ExporterLabel, Psk, PskIdentity, PskTable,
    ServerConfig,
};
use tokio::net::UdpSocket;

const WAIT: Duration = Duration::from_secs(30);
const ID: &str = "kpsa@mef.example.com";
const KEY: &str = "000102030405060708090a0b0c0d0e0f";

fn server_cfg(handshake_timeout: Duration) -> ServerConfig {
    let t = PskTable::new();
    t.insert(PskIdentity::new(ID).unwrap(), Psk::from_hex(KEY).unwrap());
    let mut c = ServerConfig::psk(Arc::new(t));
    c.handshake_timeout = handshake_timeout;
    c
}

fn client() -> DtlsClient {
    let mut c = ClientConfig::psk(PskIdentity::new(ID).unwrap(), Psk::from_hex(KEY).unwrap());
    c.handshake_timeout = Duration::from_secs(20);
    DtlsClient::new(c, DtlsOptions::default()).unwrap()
}

/// A UDP relay between one client and `server` that drops the datagrams whose 1-based index (per
/// direction) is listed. Returns the relay's address and the number of dropped datagrams.
async fn lossy_relay(
    server: SocketAddr,
    drop_c2s: &'static [usize],
    drop_s2c: &'static [usize],
) -> (SocketAddr, Arc<AtomicUsize>) {
    let front = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let back = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    back.connect(server).await.unwrap();
    let addr = front.local_addr().unwrap();
    let dropped = Arc::new(AtomicUsize::new(0));
    let client_addr = Arc::new(tokio::sync::Mutex::new(None::<SocketAddr>));
    {
        let (front, back, dropped, client_addr) = (
            front.clone(),
            back.clone(),
            dropped.clone(),
            client_addr.clone(),
        );
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65536];
            let mut n_seen = 0;
            while let Ok((n, from)) = front.recv_from(&mut buf).await {
                *client_addr.lock().await = Some(from);
                n_seen += 1;
                if drop_c2s.contains(&n_seen) {
                    dropped.fetch_add(1, Ordering::SeqCst);
                    continue;
                }
                let _ = back.send(&buf[..n]).await;
            }
        });
    }
    {
        let dropped = dropped.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65536];
            let mut n_seen = 0;
            while let Ok(n) = back.recv(&mut buf).await {
                n_seen += 1;
                if drop_s2c.contains(&n_seen) {
                    dropped.fetch_add(1, Ordering::SeqCst);
                    continue;
                }
                if let Some(to) = *client_addr.lock().await {
                    let _ = front.send_to(&buf[..n], to).await;
                }
            }
        });
    }
    (addr, dropped)
}

#[tokio::test]
async fn dtls_handshake_completes_despite_dropped_datagrams() {
    let mut server = DtlsServer::bind(
        "127.0.0.1:0".parse().unwrap(),
        &server_cfg(Duration::from_secs(20)),
        DtlsOptions::default(),
    )
    .await
    .unwrap();
    // Client→server: lose the cookie-bearing ClientHello and the first ClientKeyExchange flight
    // datagram; server→client: lose the HelloVerifyRequest and the first ServerHello flight.
    let (relay, dropped) = lossy_relay(server.local_addr(), &[2, 4], &[1, 2]).await;
    let c = client();
    let (cs, ss) = tokio::join!(
        tokio::time::timeout(WAIT, c.connect_addr(relay, Some("mef.example.com"))),
        tokio::time::timeout(WAIT, server.accept())
    );
    let cs = cs
        .expect("client within deadline")
        .expect("client handshake");
    let ss = ss
        .expect("server within deadline")
        .unwrap()
        .expect("server handshake");
    assert!(
        dropped.load(Ordering::SeqCst) >= 3,
        "the relay dropped datagrams"
    );
    assert_eq!(
        cs.export(ExporterLabel::Bootstrap).unwrap().expose_secret(),
        ss.export(ExporterLabel::Bootstrap).unwrap().expose_secret()
    );
}

#[tokio::test]
async fn client_hello_flood_with_cookies_creates_no_state() {
    let hello = common::captured_client_hello(&client()).await;
    let mut server = DtlsServer::bind(
        "127.0.0.1:0".parse().unwrap(),
        &server_cfg(Duration::from_secs(10)),
        DtlsOptions::default(),
    )
    .await
    .unwrap();
    let target = server.local_addr();
    // 50 sources × 40 ClientHellos without a valid cookie.
    let mut socks = Vec::new();
    for _ in 0..50 {
        socks.push(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    }
    // Paced so the kernel's socket buffer does not drop them before the server sees them.
    for _ in 0..40 {
        for s in &socks {
            let _ = s.send_to(&hello, target).await;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Let the server drain its socket.
    let end = tokio::time::Instant::now() + WAIT;
    while server.stats().hello_verify_sent < 1000 && tokio::time::Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let st = server.stats();
    assert_eq!(st.sessions, 0, "{st:?}");
    assert_eq!(st.half_open, 0, "{st:?}");
    assert!(st.hello_verify_sent >= 1000, "{st:?}");
    // A legitimate client still gets in.
    let c = client();
    let (cs, ss) = tokio::join!(c.connect_addr(target, None), server.accept());
    cs.unwrap();
    ss.unwrap().unwrap();
}

/// Without cookies every ClientHello starts a handshake: the half-open bound holds, newcomers
/// evict the oldest (unreported), the last ones time out and are reported, and then a
/// legitimate client gets in.
#[tokio::test]
async fn client_hello_flood_without_cookies_is_bounded_by_max_half_open() {
    let hello = common::captured_client_hello(&client()).await;
    let opts = DtlsOptions {
        cookie_exchange: false,
        max_half_open: 8,
        ..DtlsOptions::default()
    };
    let mut server = DtlsServer::bind(
        "127.0.0.1:0".parse().unwrap(),
        &server_cfg(Duration::from_millis(1500)),
        opts,
    )
    .await
    .unwrap();
    let target = server.local_addr();
    let mut socks = Vec::new();
    for _ in 0..100 {
        let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        s.send_to(&hello, target).await.unwrap();
        socks.push(s);
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let end = tokio::time::Instant::now() + WAIT;
    while server.stats().evicted < 92 && tokio::time::Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let st = server.stats();
    assert!(st.half_open <= 8 + 1, "{st:?}");
    assert!(st.sessions <= 8, "{st:?}");
    assert_eq!(st.evicted, 92, "{st:?}");
    // The last 8 half-open handshakes time out and are reported; then a legitimate client gets in.
    for _ in 0..8 {
        let a = tokio::time::timeout(WAIT, server.accept())
            .await
            .unwrap()
            .unwrap();
        assert!(a.is_err());
    }
    assert_eq!(server.stats().half_open, 0);
    let c = client();
    let (cs, ss) = tokio::join!(c.connect_addr(target, None), server.accept());
    cs.unwrap();
    ss.unwrap().unwrap();
}
