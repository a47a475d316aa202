//! Interop with python-mbedtls (Mbed TLS 2.28 through its Python binding), a DTLS stack
//! independent of OpenSSL: DTLS 1.2 PSK with TLS_PSK_WITH_AES_128_CCM_8 both ways (issue 3
//! item 9). python-mbedtls cannot export keying material (RFC 5705), so the tests compare
//! application data exchanged both ways over the association instead. Negative: a wrong PSK
//! fails on both ends within a bounded time.
//!
//! The peers are the scripts in `tests/peers/`, run by the interpreter of the workspace venv
//! (`.venv/bin/python`, created by `scripts/setup.sh` from `scripts/requirements-test.txt`) or
//! by `$M2MSEC_PYTHON`. A missing interpreter or module fails the test; it is never skipped.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{free_port, python, script, Peer, WAIT};
use m2msec_tls::{ClientConfig, DtlsClient, DtlsOptions, DtlsServer, Error, ServerConfig};

const ID: &str = "kpsa-7@mef.example.com";
const KEY: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";
const WRONG: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

fn server_cfg() -> ServerConfig {
    common::psk_server_cfg(ID, KEY, Duration::from_secs(10))
}

fn client_cfg(key: &str) -> ClientConfig {
    common::psk_client_cfg(ID, key, Duration::from_secs(5))
}

async fn our_server() -> DtlsServer {
    DtlsServer::bind(
        "127.0.0.1:0".parse().unwrap(),
        &server_cfg(),
        DtlsOptions::default(),
    )
    .await
    .unwrap()
}

fn mbedtls_client(port: u16, key: &str, message: &str) -> Peer {
    let mut cmd = Command::new(python());
    cmd.arg(script("dtls_psk_client.py"))
        .arg("127.0.0.1")
        .arg(port.to_string())
        .args([ID, key, message]);
    Peer::spawn("python-mbedtls DTLS client", &mut cmd, false)
}

/// Start the python-mbedtls DTLS server on a free port (retrying if the port was taken).
async fn mbedtls_server(key: &str) -> (Peer, u16) {
    let py = python();
    let mut last = String::new();
    for _ in 0..5 {
        let port = free_port(true);
        let mut cmd = Command::new(&py);
        cmd.arg(script("dtls_psk_server.py"))
            .arg(port.to_string())
            .args([ID, key]);
        let mut p = Peer::spawn("python-mbedtls DTLS server", &mut cmd, false);
        match p.try_wait_for("LISTENING", WAIT).await {
            Ok(_) => return (p, port),
            Err(e) => last = e,
        }
    }
    panic!("cannot start the python-mbedtls DTLS server: {last}");
}

#[tokio::test(flavor = "multi_thread")]
async fn dtls_psk_mbedtls_client_with_our_server() {
    let mut server = our_server().await;
    let port = server.local_addr().port();
    let mut client = mbedtls_client(port, KEY, "hello from mbedtls");
    let mut s = tokio::time::timeout(WAIT, server.accept())
        .await
        .expect("no handshake within the wait")
        .expect("server stopped")
        .unwrap_or_else(|e| panic!("handshake failed: {e:?}; client said:\n{}", client.output()));
    let p = s.peer();
    assert_eq!(p.cipher, "TLS_PSK_WITH_AES_128_CCM_8");
    assert_eq!(p.protocol.as_str(), "DTLSv1.2");
    assert_eq!(p.psk_identity.as_ref().unwrap().as_str(), ID);
    assert_eq!(
        p.bound_identity.as_ref().unwrap().as_str(),
        format!("12-{ID}")
    );
    assert_eq!(p.sni.as_deref(), Some("mef.example.com"));
    assert!(server.stats().hello_verify_sent >= 1, "cookie exchange ran");
    let got = tokio::time::timeout(WAIT, s.recv()).await.unwrap().unwrap();
    assert_eq!(got, b"hello from mbedtls");
    s.send(b"hello from m2msec").await.unwrap();
    client.wait_for("DONE", WAIT).await;
    let out = client.output();
    assert!(
        out.contains("RECV hello from m2msec"),
        "client output:\n{out}"
    );
    assert!(
        client.wait_exit(WAIT).await.success(),
        "client output:\n{out}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn dtls_psk_our_client_with_mbedtls_server() {
    let (mut server, port) = mbedtls_server(KEY).await;
    let c = DtlsClient::new(client_cfg(KEY), DtlsOptions::default()).unwrap();
    let mut s = tokio::time::timeout(WAIT, c.connect("127.0.0.1", port, Some("mef.example.com")))
        .await
        .expect("no handshake within the wait")
        .unwrap_or_else(|e| panic!("handshake failed: {e}; server said:\n{}", server.output()));
    assert_eq!(s.peer().cipher, "TLS_PSK_WITH_AES_128_CCM_8");
    assert_eq!(s.peer().protocol.as_str(), "DTLSv1.2");
    server.wait_for("HANDSHAKE", WAIT).await;
    s.send(b"hello from m2msec").await.unwrap();
    let got = tokio::time::timeout(WAIT, s.recv()).await.unwrap().unwrap();
    assert_eq!(got, b"echo:hello from m2msec");
    let out = server.wait_for("DONE", WAIT).await;
    assert!(
        out.contains("RECV hello from m2msec"),
        "server output:\n{out}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn dtls_wrong_psk_fails_both_ways_within_timeout() {
    // python-mbedtls client with a wrong key against our server. DTLS discards records that
    // fail authentication (RFC 6347 §4.1.2.7), so the server may see a bad Finished as silence
    // and end with its handshake timeout rather than an alert: either way it must fail in time.
    let mut cfg = server_cfg();
    cfg.handshake_timeout = Duration::from_secs(5);
    let mut server = DtlsServer::bind("127.0.0.1:0".parse().unwrap(), &cfg, DtlsOptions::default())
        .await
        .unwrap();
    let port = server.local_addr().port();
    let mut client = mbedtls_client(port, WRONG, "must not arrive");
    let r = tokio::time::timeout(WAIT, server.accept())
        .await
        .expect("our server neither failed nor completed within the wait")
        .expect("server stopped");
    let e = r.expect_err("a wrong PSK must fail the handshake");
    assert!(
        matches!(
            e.error,
            Error::Handshake(_) | Error::HandshakeTimeout(_) | Error::RetransmitLimit
        ),
        "unexpected error: {e:?}"
    );
    let st = client.wait_exit(WAIT).await;
    assert!(!st.success(), "client output:\n{}", client.output());
    assert!(
        !client.output().contains("HANDSHAKE"),
        "{}",
        client.output()
    );

    // Our client with a wrong key against the python-mbedtls server.
    let (mut server, port) = mbedtls_server(KEY).await;
    let c = DtlsClient::new(client_cfg(WRONG), DtlsOptions::default()).unwrap();
    let r = tokio::time::timeout(WAIT, c.connect("127.0.0.1", port, Some("mef.example.com")))
        .await
        .expect("our client neither failed nor completed within the wait");
    assert!(r.is_err(), "a wrong PSK must fail the handshake");
    let st = server.wait_exit(WAIT).await;
    assert!(!st.success(), "server output:\n{}", server.output());
    assert!(
        !server.output().contains("HANDSHAKE"),
        "{}",
        server.output()
    );
}
