//! A ClientHello on an address that already has a DTLS session (RFC 6347 §4.2.8, issue 9
//! item 6): a device that reboots and reuses its UDP source port must get a new session
//! promptly, although the server still holds its stale one; a ClientHello that did not pass
//! the cookie exchange, or a handshake that does not complete, must not disturb the existing
//! session, which is replaced only when the new handshake completes.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use m2msec_tls::{DtlsClient, DtlsOptions, DtlsSession, DtlsStats};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};

const ID: &str = "kpsa@mef.example.com";
const KEY: &str = "000102030405060708090a0b0c0d0e0f";
/// A rebooted device's handshake must complete within this (without §4.2.8 handling it never
/// does while the stale session lives: its ClientHellos go to the stale session).
const PROMPT: Duration = Duration::from_secs(3);

fn client() -> DtlsClient {
    DtlsClient::new(
        common::psk_client_cfg(ID, KEY, Duration::from_secs(8)),
        DtlsOptions::default(),
    )
    .unwrap()
}

async fn echo(s: &mut DtlsSession, msg: &str) {
    s.send(msg.as_bytes()).await.unwrap();
    let got = tokio::time::timeout(PROMPT, s.recv())
        .await
        .unwrap_or_else(|_| panic!("no echo of {msg:?}"))
        .unwrap();
    assert_eq!(got, format!("echo:{msg}").as_bytes());
}

/// Waits until `cond` holds on the published counters (bounded); returns them.
async fn stats_until(
    rx: &watch::Receiver<DtlsStats>,
    cond: impl Fn(&DtlsStats) -> bool,
) -> DtlsStats {
    let end = Instant::now() + common::WAIT;
    loop {
        let st = *rx.borrow();
        if cond(&st) {
            return st;
        }
        assert!(
            Instant::now() < end,
            "counters never satisfied the condition: {st:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebooted_device_on_the_same_port_gets_a_new_session_promptly() {
    // The default 300 s idle timeout: the stale session would outlive any retry schedule.
    let cfg = common::psk_server_cfg(ID, KEY, Duration::from_secs(10));
    let (server, stats, mut ended) = common::echo_server(&cfg, DtlsOptions::default()).await;
    let local: SocketAddr = ([127, 0, 0, 1], common::free_port(true)).into();
    let mut old = client()
        .connect_from(local, server, Some("mef.example.com"))
        .await
        .unwrap();
    echo(&mut old, "before the reboot").await;
    // The device loses power: no close_notify, the socket is gone.
    drop(old);
    let mut times = Vec::new();
    for boot in 1..=2 {
        let t = Instant::now();
        let mut new = tokio::time::timeout(
            PROMPT,
            client().connect_from(local, server, Some("mef.example.com")),
        )
        .await
        .unwrap_or_else(|_| {
            panic!(
                "boot {boot}: no handshake within {PROMPT:?}: {:?}",
                *stats.borrow()
            )
        })
        .unwrap();
        times.push(t.elapsed());
        echo(&mut new, &format!("after reboot {boot}")).await;
        // The stale session was closed when the new one completed.
        let (peer, why) = tokio::time::timeout(PROMPT, ended.recv())
            .await
            .expect("the stale session ends")
            .unwrap();
        assert_eq!(peer, local);
        assert!(why.contains("closed"), "{why}");
        let st = stats_until(&stats, |s| s.replaced == boot).await;
        assert_eq!(st.sessions, 1, "{st:?}");
        drop(new);
    }
    println!("handshakes after a reboot on the same port: {times:?}");
}

/// A UDP relay between one client at a time and the server, which sees the relay's back socket
/// as the client's address (as behind a NAT). The test can send from that address and sees
/// every datagram the server sends to it.
struct Relay {
    front: SocketAddr,
    back: Arc<UdpSocket>,
    from_server: mpsc::UnboundedReceiver<Vec<u8>>,
}

impl Relay {
    async fn start(server: SocketAddr) -> Relay {
        let front = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        let back = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        back.connect(server).await.unwrap();
        let client = Arc::new(Mutex::new(None::<SocketAddr>));
        let (tap, from_server) = mpsc::unbounded_channel();
        {
            let (front, back, client) = (front.clone(), back.clone(), client.clone());
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                while let Ok((n, from)) = front.recv_from(&mut buf).await {
                    *client.lock().unwrap() = Some(from);
                    let _ = back.send(&buf[..n]).await;
                }
            });
        }
        {
            let (front, back) = (front.clone(), back.clone());
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                while let Ok(n) = back.recv(&mut buf).await {
                    let _ = tap.send(buf[..n].to_vec());
                    let to = *client.lock().unwrap();
                    if let Some(to) = to {
                        let _ = front.send_to(&buf[..n], to).await;
                    }
                }
            });
        }
        Relay {
            front: front.local_addr().unwrap(),
            back,
            from_server,
        }
    }

    /// The next datagram from the server that satisfies `f` (bounded wait).
    async fn next_from_server<T>(&mut self, what: &str, f: impl Fn(&[u8]) -> Option<T>) -> T {
        let end = tokio::time::Instant::now() + PROMPT;
        loop {
            match tokio::time::timeout_at(end, self.from_server.recv()).await {
                Ok(Some(d)) => {
                    if let Some(t) = f(&d) {
                        return t;
                    }
                }
                _ => panic!("the server sent no {what} within {PROMPT:?}"),
            }
        }
    }

    fn drain(&mut self) {
        while self.from_server.try_recv().is_ok() {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unverified_or_incomplete_client_hellos_leave_the_session_and_a_completed_one_replaces_it()
{
    let cfg = common::psk_server_cfg(ID, KEY, Duration::from_millis(1500));
    let (server, stats, mut ended) = common::echo_server(&cfg, DtlsOptions::default()).await;
    let mut relay = Relay::start(server).await;
    let mut a = client()
        .connect_addr(relay.front, Some("mef.example.com"))
        .await
        .unwrap();
    echo(&mut a, "one").await;
    relay.drain();

    // A ClientHello from the session's address without a cookie (anyone can send one, with a
    // spoofed source): answered statelessly, nothing else changes.
    let hello = common::captured_client_hello(&client()).await;
    relay.back.send(&hello).await.unwrap();
    let cookie = relay
        .next_from_server("HelloVerifyRequest", common::hello_verify_cookie)
        .await;
    echo(&mut a, "two").await;
    // Two HelloVerifyRequests: the client's own and this one.
    let st = stats_until(&stats, |s| s.hello_verify_sent == 2).await;
    assert_eq!(
        (st.half_open, st.replaced, st.sessions),
        (0, 0, 1),
        "{st:?}"
    );

    // A ClientHello with the cookie (only an on-path party can have it): a new handshake starts
    // next to the session, which keeps working while it runs and after it fails.
    relay
        .back
        .send(&common::client_hello_with_cookie(&hello, &cookie))
        .await
        .unwrap();
    relay
        .next_from_server("ServerHello", |d| (d.get(13) == Some(&2)).then_some(()))
        .await;
    stats_until(&stats, |s| s.half_open == 1).await;
    echo(&mut a, "three").await;
    let st = stats_until(&stats, |s| s.half_open == 0).await;
    assert_eq!((st.replaced, st.sessions), (0, 1), "{st:?}");
    echo(&mut a, "four").await;
    assert!(ended.try_recv().is_err(), "the session must not have ended");

    // The device reboots behind the same address and completes a handshake: now, and only now,
    // the old session is replaced.
    let t = Instant::now();
    let mut b = tokio::time::timeout(PROMPT, client().connect_addr(relay.front, None))
        .await
        .expect("the new handshake completes promptly")
        .unwrap();
    let took = t.elapsed();
    echo(&mut b, "five").await;
    let (_, why) = tokio::time::timeout(PROMPT, ended.recv())
        .await
        .expect("the old session ends")
        .unwrap();
    assert!(why.contains("closed"), "{why}");
    let st = stats_until(&stats, |s| s.replaced == 1).await;
    assert_eq!(st.sessions, 1, "{st:?}");
    println!("handshake replacing a live session: {took:?}; {st:?}");
}
