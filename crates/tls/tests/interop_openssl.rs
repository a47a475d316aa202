//! Interop with the OpenSSL command-line tools (apt package `openssl`), a peer independent of our
//! stack (the system library, not our vendored build): our server with `openssl s_client`, our
//! client with `openssl s_server`, TLS 1.2 and DTLS 1.2 PSK, comparing the RFC 5705 export each
//! side computes (BRIEF §6 check 1); and ECDHE-ECDSA certificates both ways. Negative: wrong
//! key, unknown identity, TLS 1.3-only client, wrong SAN, P-384 key.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{free_port, openssl_keymat, require, Peer, WAIT};
use m2msec_tls::{
    ClientConfig, DtlsClient, DtlsOptions, DtlsServer, ExporterLabel, Psk, PskIdentity,
    ServerConfig, TlsClient, TlsServer,
};
use tokio::net::TcpListener;

const ID: &str = "kpsa-7@mef.example.com";
const KEY: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";
const LABEL: &str = "EXPORTER-oneM2M-Bootstrap";

fn server_cfg() -> ServerConfig {
    common::psk_server_cfg(ID, KEY, Duration::from_secs(10))
}

fn client_cfg() -> ClientConfig {
    common::psk_client_cfg(ID, KEY, Duration::from_secs(10))
}

fn openssl() -> Command {
    require("openssl", "openssl");
    Command::new("openssl")
}

/// `openssl s_client` against our server; returns the client process after it exited.
fn s_client(dtls: bool, port: u16, id: &str, key: &str, extra: &[&str]) -> Peer {
    let mut cmd = openssl();
    cmd.arg("s_client")
        .arg("-connect")
        .arg(format!("127.0.0.1:{port}"));
    if dtls {
        cmd.args(["-dtls1_2", "-cipher", "PSK-AES128-CCM8:@SECLEVEL=0"]);
    } else if !extra.contains(&"-tls1_3") {
        cmd.args(["-tls1_2", "-cipher", "PSK-AES128-CBC-SHA256"]);
    }
    cmd.args([
        "-psk_identity",
        id,
        "-psk",
        key,
        "-servername",
        "mef.example.com",
    ]);
    cmd.args(["-keymatexport", LABEL, "-keymatexportlen", "48"]);
    cmd.args(extra);
    Peer::spawn("openssl s_client", &mut cmd, false)
}

/// Start `openssl s_server` on a free port (retrying if the port was taken meanwhile).
async fn s_server(dtls: bool) -> (Peer, u16) {
    let mut last = String::new();
    for _ in 0..5 {
        let port = free_port(dtls);
        let mut cmd = openssl();
        cmd.arg("s_server")
            .arg("-accept")
            .arg(port.to_string())
            .arg("-nocert");
        if dtls {
            cmd.args(["-dtls1_2", "-cipher", "PSK-AES128-CCM8:@SECLEVEL=0"]);
        } else {
            cmd.args(["-tls1_2", "-cipher", "PSK-AES128-CBC-SHA256"]);
        }
        cmd.args(["-psk_identity", ID, "-psk", KEY, "-naccept", "1"]);
        cmd.args(["-keymatexport", LABEL, "-keymatexportlen", "48"]);
        let mut p = Peer::spawn("openssl s_server", &mut cmd, true);
        match p.try_wait_for("ACCEPT", WAIT).await {
            Ok(_) => return (p, port),
            Err(e) => last = e,
        }
    }
    panic!("cannot start openssl s_server: {last}");
}

async fn our_tls_server() -> (TlsServer, TcpListener, u16) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    (TlsServer::new(&server_cfg()).unwrap(), l, port)
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_psk_our_server_with_openssl_s_client() {
    let (server, listener, port) = our_tls_server().await;
    let mut client = s_client(false, port, ID, KEY, &[]);
    let (tcp, _) = tokio::time::timeout(WAIT, listener.accept())
        .await
        .unwrap()
        .unwrap();
    let ch = tokio::time::timeout(WAIT, server.accept(tcp))
        .await
        .unwrap()
        .unwrap();
    let out = client.wait_for("Keying material: ", WAIT).await;
    let theirs = openssl_keymat(&out).unwrap();
    let ours = m2msec_tls::exporter::to_hex(&ch.export(ExporterLabel::Bootstrap).unwrap());
    assert_eq!(*ours, theirs);
    let p = ch.peer();
    assert_eq!(p.cipher, "TLS_PSK_WITH_AES_128_CBC_SHA256");
    assert_eq!(p.sni.as_deref(), Some("mef.example.com"));
    assert_eq!(p.psk_identity.as_ref().unwrap().as_str(), ID);
    assert_eq!(
        p.bound_identity.as_ref().unwrap().as_str(),
        format!("12-{ID}")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_psk_our_client_with_openssl_s_server() {
    let (mut server, port) = s_server(false).await;
    let ch = TlsClient::new(client_cfg())
        .unwrap()
        .connect("localhost", port, None)
        .await
        .unwrap();
    let out = server.wait_for("Keying material: ", WAIT).await;
    assert_eq!(
        *m2msec_tls::exporter::to_hex(&ch.export(ExporterLabel::Bootstrap).unwrap()),
        openssl_keymat(&out).unwrap()
    );
    assert_eq!(ch.peer().cipher, "TLS_PSK_WITH_AES_128_CBC_SHA256");
    assert_eq!(ch.peer().protocol.as_str(), "TLSv1.2");
}

#[tokio::test(flavor = "multi_thread")]
async fn dtls_psk_our_server_with_openssl_s_client() {
    let mut server = DtlsServer::bind(
        "127.0.0.1:0".parse().unwrap(),
        &server_cfg(),
        DtlsOptions::default(),
    )
    .await
    .unwrap();
    let port = server.local_addr().port();
    let mut client = s_client(true, port, ID, KEY, &[]);
    let s = tokio::time::timeout(WAIT, server.accept())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let out = client.wait_for("Keying material: ", WAIT).await;
    assert_eq!(
        *m2msec_tls::exporter::to_hex(&s.export(ExporterLabel::Bootstrap).unwrap()),
        openssl_keymat(&out).unwrap()
    );
    assert_eq!(s.peer().cipher, "TLS_PSK_WITH_AES_128_CCM_8");
    assert_eq!(s.peer().protocol.as_str(), "DTLSv1.2");
    assert_eq!(s.peer().sni.as_deref(), Some("mef.example.com"));
    assert!(
        server.stats().hello_verify_sent >= 1,
        "cookie exchange is on by default"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn dtls_psk_our_client_with_openssl_s_server() {
    let (mut server, port) = s_server(true).await;
    let c = DtlsClient::new(client_cfg(), DtlsOptions::default()).unwrap();
    let s = c
        .connect("127.0.0.1", port, Some("mef.example.com"))
        .await
        .unwrap();
    let out = server.wait_for("Keying material: ", WAIT).await;
    assert_eq!(
        *m2msec_tls::exporter::to_hex(&s.export(ExporterLabel::Bootstrap).unwrap()),
        openssl_keymat(&out).unwrap()
    );
    assert_eq!(s.peer().cipher, "TLS_PSK_WITH_AES_128_CCM_8");
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_wrong_key_unknown_identity_and_tls13_only_client_fail() {
    let (server, listener, port) = our_tls_server().await;
    let wrong = "00".repeat(32);
    let cases: [(&str, &str, &[&str], &str); 3] = [
        (ID, &wrong, &[], "decrypt"),
        ("stranger@mef.example.com", KEY, &[], "psk identity"),
        (ID, KEY, &["-tls1_3"], "unsupported protocol"),
    ];
    for (id, key, extra, why) in cases {
        let mut client = s_client(false, port, id, key, extra);
        let (tcp, _) = tokio::time::timeout(WAIT, listener.accept())
            .await
            .unwrap()
            .unwrap();
        let r = tokio::time::timeout(WAIT, server.accept(tcp))
            .await
            .unwrap();
        let err = r.expect_err("handshake must fail").to_string();
        assert!(
            err.to_lowercase().contains(why),
            "{extra:?}: server error {err:?} lacks {why:?}"
        );
        // s_client prints a session summary (and may exit 0) even after a fatal alert, so
        // check that it received one.
        client.wait_exit(WAIT).await;
        let out = client.output();
        assert!(
            out.contains("SSL alert number"),
            "{extra:?}: s_client got no alert: {out}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn dtls_wrong_key_fails_against_openssl_s_server() {
    let (mut server, port) = s_server(true).await;
    let mut cfg = ClientConfig::psk(PskIdentity::new(ID).unwrap(), Psk::from_hex("01").unwrap());
    cfg.handshake_timeout = Duration::from_secs(5);
    let r = DtlsClient::new(cfg, DtlsOptions::default())
        .unwrap()
        .connect("127.0.0.1", port, None)
        .await;
    assert!(r.is_err(), "{r:?}");
    assert!(!server.output().contains("Keying material: "));
    let _ = server.exited();
}

// ---------- ECDHE-ECDSA certificates ----------

use common::pki::{leaf, Ca, Leaf, LeafOpts, San};
use m2msec_tls::{CertCredential, ExpectedName, ServerCertificates, TrustAnchors};

const IN_CSE: &str = "in-cse.example.com";

struct Pki {
    dir: tempfile::TempDir,
    ca: Ca,
}

impl Pki {
    fn new() -> Pki {
        Pki {
            dir: tempfile::tempdir().unwrap(),
            ca: Ca::new("m2m test CA"),
        }
    }

    fn write(&self, name: &str, data: &[u8]) -> String {
        let p = self.dir.path().join(name);
        std::fs::write(&p, data).unwrap();
        p.display().to_string()
    }
}

fn cert_suite(dtls: bool) -> &'static str {
    if dtls {
        "ECDHE-ECDSA-AES128-CCM8:@SECLEVEL=0"
    } else {
        "ECDHE-ECDSA-AES128-SHA256"
    }
}

async fn cert_s_server(dtls: bool, pki: &Pki, l: &Leaf) -> (Peer, u16) {
    let cert = pki.write("server.pem", &l.cert_pem());
    let key = pki.write("server.key", &l.key_pem());
    let mut last = String::new();
    for _ in 0..5 {
        let port = free_port(dtls);
        let mut cmd = openssl();
        cmd.arg("s_server").arg("-accept").arg(port.to_string());
        cmd.args(["-cert", &cert, "-key", &key, "-naccept", "1"]);
        cmd.arg(if dtls { "-dtls1_2" } else { "-tls1_2" });
        cmd.args(["-cipher", cert_suite(dtls)]);
        cmd.args(["-keymatexport", LABEL, "-keymatexportlen", "48"]);
        let mut p = Peer::spawn("openssl s_server", &mut cmd, true);
        match p.try_wait_for("ACCEPT", WAIT).await {
            Ok(_) => return (p, port),
            Err(e) => last = e,
        }
    }
    panic!("cannot start openssl s_server: {last}");
}

fn cert_client(pki: &Pki) -> ClientConfig {
    let mut c = ClientConfig::certificate(
        TrustAnchors::from_pem(&pki.ca.pem()).unwrap(),
        ExpectedName::Dns(IN_CSE.into()),
        None,
    );
    c.handshake_timeout = Duration::from_secs(10);
    c
}

async fn ecdhe_ecdsa_our_server_with_s_client(dtls: bool) {
    let pki = Pki::new();
    let l = leaf(&pki.ca, &[San::Dns(IN_CSE)], LeafOpts::default());
    let ca_file = pki.write("ca.pem", &pki.ca.pem());
    let mut certs = ServerCertificates::new();
    certs.insert(
        IN_CSE,
        CertCredential::from_pem(&l.cert_pem(), &l.key_pem()).unwrap(),
    );
    let cfg = ServerConfig::certificates(certs);
    let mut cmd = openssl();
    cmd.arg("s_client");
    cmd.arg(if dtls { "-dtls1_2" } else { "-tls1_2" });
    cmd.args([
        "-cipher",
        cert_suite(dtls),
        "-CAfile",
        &ca_file,
        "-verify_return_error",
    ]);
    cmd.args(["-verify_hostname", IN_CSE, "-servername", IN_CSE]);
    cmd.args(["-keymatexport", LABEL, "-keymatexportlen", "48"]);
    let (ours, mut client) = if dtls {
        let mut server =
            DtlsServer::bind("127.0.0.1:0".parse().unwrap(), &cfg, DtlsOptions::default())
                .await
                .unwrap();
        cmd.arg("-connect").arg(server.local_addr().to_string());
        let client = Peer::spawn("openssl s_client", &mut cmd, false);
        let s = tokio::time::timeout(WAIT, server.accept())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        (s.export(ExporterLabel::Bootstrap).unwrap(), client)
    } else {
        let (server, listener, port) = (
            TlsServer::new(&cfg).unwrap(),
            TcpListener::bind("127.0.0.1:0").await.unwrap(),
            0u16,
        );
        let _ = port;
        cmd.arg("-connect")
            .arg(listener.local_addr().unwrap().to_string());
        let client = Peer::spawn("openssl s_client", &mut cmd, false);
        let (tcp, _) = tokio::time::timeout(WAIT, listener.accept())
            .await
            .unwrap()
            .unwrap();
        let ch = tokio::time::timeout(WAIT, server.accept(tcp))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(ch.peer().cipher, "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256");
        (ch.export(ExporterLabel::Bootstrap).unwrap(), client)
    };
    let out = client.wait_for("Keying material: ", WAIT).await;
    assert!(out.contains("Verify return code: 0 (ok)"), "{out}");
    assert_eq!(
        *m2msec_tls::exporter::to_hex(&ours),
        openssl_keymat(&out).unwrap()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_ecdhe_ecdsa_our_server_with_openssl_s_client() {
    ecdhe_ecdsa_our_server_with_s_client(false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn dtls_ecdhe_ecdsa_our_server_with_openssl_s_client() {
    ecdhe_ecdsa_our_server_with_s_client(true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ecdhe_ecdsa_our_client_with_openssl_s_server() {
    for dtls in [false, true] {
        let pki = Pki::new();
        let l = leaf(&pki.ca, &[San::Dns(IN_CSE)], LeafOpts::default());
        let (mut server, port) = cert_s_server(dtls, &pki, &l).await;
        let (export, cipher) = if dtls {
            let s = DtlsClient::new(cert_client(&pki), DtlsOptions::default())
                .unwrap()
                .connect("127.0.0.1", port, Some(IN_CSE))
                .await
                .unwrap();
            (
                s.export(ExporterLabel::Bootstrap).unwrap(),
                s.peer().cipher.clone(),
            )
        } else {
            let ch = TlsClient::new(cert_client(&pki))
                .unwrap()
                .connect("127.0.0.1", port, Some(IN_CSE))
                .await
                .unwrap();
            (
                ch.export(ExporterLabel::Bootstrap).unwrap(),
                ch.peer().cipher.clone(),
            )
        };
        let out = server.wait_for("Keying material: ", WAIT).await;
        assert_eq!(
            *m2msec_tls::exporter::to_hex(&export),
            openssl_keymat(&out).unwrap()
        );
        let want = if dtls {
            "TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8"
        } else {
            "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256"
        };
        assert_eq!(cipher, want);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn our_client_refuses_openssl_s_server_with_wrong_san_or_p384_key() {
    let pki = Pki::new();
    let cases = [
        (
            "wrong SAN",
            leaf(
                &pki.ca,
                &[San::Dns("other.example.com")],
                LeafOpts::default(),
            ),
            "hostname mismatch",
        ),
        (
            "P-384 key",
            leaf(
                &pki.ca,
                &[San::Dns(IN_CSE)],
                LeafOpts {
                    curve: openssl::nid::Nid::SECP384R1,
                    ..LeafOpts::default()
                },
            ),
            // Our client offers only P-256 in supported_groups, so OpenSSL cannot even use the
            // P-384 certificate (RFC 8422 §5.1); the leaf check would refuse it otherwise.
            "handshake failure",
        ),
    ];
    for (what, l, reason) in cases {
        let (_server, port) = cert_s_server(false, &pki, &l).await;
        let e = TlsClient::new(cert_client(&pki))
            .unwrap()
            .connect("127.0.0.1", port, Some(IN_CSE))
            .await
            .expect_err(what)
            .to_string();
        assert!(e.contains(reason), "{what}: {e}");
    }
}
