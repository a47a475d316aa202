//! Interop with GnuTLS (apt package `gnutls-bin`), a TLS implementation independent of OpenSSL:
//! our server with `gnutls-cli` (comparing `--keymatexport` output with our export), our client
//! with `gnutls-serv --echo` (application data round trip), TLS 1.2 and DTLS 1.2 PSK; and RFC 7250
//! raw public keys both ways (ECDHE-ECDSA, TLS 1.2).

mod common;

use std::process::Command;
use std::time::Duration;

use common::{free_port, require, Peer, WAIT};
use m2msec_tls::{
    ClientConfig, DtlsClient, DtlsOptions, DtlsServer, ExporterLabel, ServerConfig, TlsClient,
    TlsServer,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const ID: &str = "kpm-3@mef.example.com";
const KEY: &str = "5a5b5c5d5e5f606162636465666768695a5b5c5d5e5f60616263646566676869";
const LABEL: &str = "EXPORTER-oneM2M-Bootstrap";
const PRIO_TLS: &str =
    "NORMAL:-VERS-ALL:+VERS-TLS1.2:-KX-ALL:+PSK:-CIPHER-ALL:+AES-128-CBC:-MAC-ALL:+SHA256";
const PRIO_DTLS: &str =
    "NORMAL:-VERS-ALL:+VERS-DTLS1.2:-KX-ALL:+PSK:-CIPHER-ALL:+AES-128-CCM-8:-MAC-ALL:+AEAD";

fn server_cfg() -> ServerConfig {
    common::psk_server_cfg(ID, KEY, Duration::from_secs(10))
}

fn client_cfg() -> ClientConfig {
    common::psk_client_cfg(ID, KEY, Duration::from_secs(10))
}

fn gnutls_cli(dtls: bool, port: u16, key: &str) -> Peer {
    require("gnutls-cli", "gnutls-bin");
    let mut cmd = Command::new("gnutls-cli");
    cmd.args(["-p", &port.to_string(), "127.0.0.1"]);
    if dtls {
        cmd.args(["--udp", "--priority", PRIO_DTLS]);
    } else {
        cmd.args(["--priority", PRIO_TLS]);
    }
    cmd.args(["--pskusername", ID, "--pskkey", key]);
    cmd.args(["--sni-hostname", "mef.example.com"]);
    cmd.args(["--keymatexport", LABEL, "--keymatexportsize", "48"]);
    Peer::spawn("gnutls-cli", &mut cmd, false)
}

fn gnutls_keymat(out: &str) -> Option<String> {
    out.lines()
        .find_map(|l| l.trim().strip_prefix("- Key material: "))
        .map(|h| h.trim().to_ascii_lowercase())
}

async fn gnutls_serv(dtls: bool) -> (Peer, u16, tempfile_path::TempFile) {
    require("gnutls-serv", "gnutls-bin");
    let passwd = tempfile_path::TempFile::new(&format!("{ID}:{KEY}\n"));
    let mut last = String::new();
    for _ in 0..5 {
        let port = free_port(dtls);
        let mut cmd = Command::new("gnutls-serv");
        cmd.args(["--port", &port.to_string(), "--echo", "--nodb"]);
        cmd.arg(format!("--pskpasswd={}", passwd.path().display()));
        if dtls {
            cmd.args(["--udp", "--priority", PRIO_DTLS]);
        } else {
            cmd.args(["--priority", PRIO_TLS]);
        }
        let mut p = Peer::spawn("gnutls-serv", &mut cmd, true);
        match p.try_wait_for("listening on IPv4", WAIT).await {
            Ok(_) => return (p, port, passwd),
            Err(e) => last = e,
        }
    }
    panic!("cannot start gnutls-serv: {last}");
}

/// A temporary file removed on drop (no extra dev-dependency).
mod tempfile_path {
    use std::path::{Path, PathBuf};

    pub struct TempFile(PathBuf);

    impl TempFile {
        pub fn new(contents: &str) -> TempFile {
            let n: u64 = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0);
            let p = std::env::temp_dir().join(format!("m2msec-tls-{}-{n}.psk", std::process::id()));
            std::fs::write(&p, contents).unwrap();
            TempFile(p)
        }

        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_psk_our_server_with_gnutls_cli() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = TlsServer::new(&server_cfg()).unwrap();
    let mut cli = gnutls_cli(false, port, KEY);
    let (tcp, _) = tokio::time::timeout(WAIT, listener.accept())
        .await
        .unwrap()
        .unwrap();
    let ch = tokio::time::timeout(WAIT, server.accept(tcp))
        .await
        .unwrap()
        .unwrap();
    let out = cli.wait_for("- Key material: ", WAIT).await;
    assert_eq!(
        *m2msec_tls::exporter::to_hex(&ch.export(ExporterLabel::Bootstrap).unwrap()),
        gnutls_keymat(&out).unwrap()
    );
    assert_eq!(ch.peer().cipher, "TLS_PSK_WITH_AES_128_CBC_SHA256");
    assert_eq!(ch.peer().sni.as_deref(), Some("mef.example.com"));
}

#[tokio::test(flavor = "multi_thread")]
async fn dtls_psk_our_server_with_gnutls_cli() {
    let mut server = DtlsServer::bind(
        "127.0.0.1:0".parse().unwrap(),
        &server_cfg(),
        DtlsOptions::default(),
    )
    .await
    .unwrap();
    let port = server.local_addr().port();
    let mut cli = gnutls_cli(true, port, KEY);
    let s = tokio::time::timeout(WAIT, server.accept())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let out = cli.wait_for("- Key material: ", WAIT).await;
    assert_eq!(
        *m2msec_tls::exporter::to_hex(&s.export(ExporterLabel::Bootstrap).unwrap()),
        gnutls_keymat(&out).unwrap()
    );
    assert_eq!(s.peer().cipher, "TLS_PSK_WITH_AES_128_CCM_8");
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_psk_our_client_with_gnutls_serv_echo() {
    let (mut serv, port, _f) = gnutls_serv(false).await;
    let mut ch = TlsClient::new(client_cfg())
        .unwrap()
        .connect("localhost", port, None)
        .await
        .unwrap();
    ch.write_all(b"oneM2M\n").await.unwrap();
    let mut b = [0u8; 7];
    tokio::time::timeout(WAIT, ch.read_exact(&mut b))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&b, b"oneM2M\n");
    let out = serv
        .wait_for("PSK authentication. Connected as", WAIT)
        .await;
    assert!(out.contains(&format!("Connected as '{ID}'")), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn dtls_psk_our_client_with_gnutls_serv_echo() {
    let (mut serv, port, _f) = gnutls_serv(true).await;
    let c = DtlsClient::new(client_cfg(), DtlsOptions::default()).unwrap();
    let mut s = c.connect("localhost", port, None).await.unwrap();
    assert_eq!(s.peer().cipher, "TLS_PSK_WITH_AES_128_CCM_8");
    s.send(b"oneM2M over DTLS").await.unwrap();
    let echo = tokio::time::timeout(WAIT, s.recv()).await.unwrap().unwrap();
    assert_eq!(echo, b"oneM2M over DTLS");
    // gnutls-serv in UDP mode logs the echoed command, not the PSK identity.
    serv.wait_for("Processing 16 bytes", WAIT).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_wrong_key_from_gnutls_cli_fails() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = TlsServer::new(&server_cfg()).unwrap();
    let mut cli = gnutls_cli(false, port, &"11".repeat(32));
    let (tcp, _) = tokio::time::timeout(WAIT, listener.accept())
        .await
        .unwrap()
        .unwrap();
    let r = tokio::time::timeout(WAIT, server.accept(tcp))
        .await
        .unwrap();
    assert!(r.is_err(), "{r:?}");
    let st = cli.wait_exit(WAIT).await;
    assert!(!st.success(), "{}", cli.output());
    assert!(!cli.output().contains("- Key material: "));
}

// ---------- RFC 7250 raw public keys ----------

use common::pki::{leaf, Ca, LeafOpts, San};
use m2msec_tls::{CertCredential, CredentialKind, PkId, PkIdAlg, ServerCertificates};

const PRIO_RAWPK: &str = "NORMAL:-VERS-ALL:+VERS-TLS1.2:-KX-ALL:+ECDHE-ECDSA:-CIPHER-ALL:+AES-128-CBC:-MAC-ALL:+SHA256:+CTYPE-SRV-RAWPK:-CTYPE-SRV-X509";

/// Our client authenticates a `gnutls-serv` raw public key by its RFC 6920 digest; an
/// unexpected key is refused.
#[tokio::test(flavor = "multi_thread")]
async fn raw_public_key_our_client_with_gnutls_serv() {
    require("gnutls-serv", "gnutls-bin");
    if !m2msec_tls::rpk::SUPPORTED {
        panic!("raw public keys need the vendored OpenSSL (>= 3.2); build with default features");
    }
    let dir = tempfile::tempdir().unwrap();
    let key = common::pki::key(openssl::nid::Nid::X9_62_PRIME256V1);
    let key_file = dir.path().join("rpk.key");
    let pub_file = dir.path().join("rpk.pub");
    std::fs::write(&key_file, key.private_key_to_pem_pkcs8().unwrap()).unwrap();
    std::fs::write(&pub_file, key.public_key_to_pem().unwrap()).unwrap();
    let pk_id = PkId::of_spki(&key.public_key_to_der().unwrap(), PkIdAlg::Sha256).unwrap();

    let mut last = String::new();
    let mut started = None;
    for _ in 0..5 {
        let port = free_port(false);
        let mut cmd = Command::new("gnutls-serv");
        cmd.args([
            "--port",
            &port.to_string(),
            "--echo",
            "--nodb",
            "--priority",
            PRIO_RAWPK,
        ]);
        cmd.arg(format!("--rawpkkeyfile={}", key_file.display()));
        cmd.arg(format!("--rawpkfile={}", pub_file.display()));
        let mut p = Peer::spawn("gnutls-serv", &mut cmd, true);
        match p.try_wait_for("listening on IPv4", WAIT).await {
            Ok(_) => {
                started = Some((p, port));
                break;
            }
            Err(e) => last = e,
        }
    }
    let (_serv, port) = started.unwrap_or_else(|| panic!("cannot start gnutls-serv: {last}"));
    let mut cfg = ClientConfig::raw_public_key(pk_id.clone());
    cfg.handshake_timeout = Duration::from_secs(10);
    let mut ch = TlsClient::new(cfg)
        .unwrap()
        .connect("localhost", port, None)
        .await
        .unwrap();
    assert_eq!(ch.peer().credential, CredentialKind::RawPublicKey);
    assert_eq!(
        ch.peer().bound_identity.as_ref().unwrap().as_str(),
        format!("30-{pk_id}")
    );
    ch.write_all(b"rpk\n").await.unwrap();
    let mut b = [0u8; 4];
    tokio::time::timeout(WAIT, ch.read_exact(&mut b))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&b, b"rpk\n");

    let other = common::pki::key(openssl::nid::Nid::X9_62_PRIME256V1);
    let other_id = PkId::of_spki(&other.public_key_to_der().unwrap(), PkIdAlg::Sha256).unwrap();
    let mut cfg = ClientConfig::raw_public_key(other_id);
    cfg.handshake_timeout = Duration::from_secs(10);
    let r = TlsClient::new(cfg)
        .unwrap()
        .connect("localhost", port, None)
        .await;
    assert!(r.is_err(), "unexpected raw key accepted");
}

/// `gnutls-cli` asking for a server raw public key gets ours; the exports match.
#[tokio::test(flavor = "multi_thread")]
async fn raw_public_key_our_server_with_gnutls_cli() {
    require("gnutls-cli", "gnutls-bin");
    if !m2msec_tls::rpk::SUPPORTED {
        panic!("raw public keys need the vendored OpenSSL (>= 3.2); build with default features");
    }
    let ca = Ca::new("m2m CA");
    let l = leaf(&ca, &[San::Dns("in-cse.example.com")], LeafOpts::default());
    let mut certs = ServerCertificates::new();
    certs.set_default(CertCredential::from_pem(&l.cert_pem(), &l.key_pem()).unwrap());
    let mut cfg = ServerConfig::certificates(certs);
    cfg.offer_raw_public_key = true;
    let server = TlsServer::new(&cfg).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut cmd = Command::new("gnutls-cli");
    cmd.args([
        "-p",
        &port.to_string(),
        "127.0.0.1",
        "--insecure",
        "--priority",
        PRIO_RAWPK,
    ]);
    cmd.args(["--keymatexport", LABEL, "--keymatexportsize", "48"]);
    let mut cli = Peer::spawn("gnutls-cli", &mut cmd, false);
    let (tcp, _) = tokio::time::timeout(WAIT, listener.accept())
        .await
        .unwrap()
        .unwrap();
    let ch = tokio::time::timeout(WAIT, server.accept(tcp))
        .await
        .unwrap()
        .unwrap();
    let out = cli.wait_for("- Key material: ", WAIT).await;
    assert!(out.contains("Certificate type: Raw Public Key"), "{out}");
    assert_eq!(
        *m2msec_tls::exporter::to_hex(&ch.export(ExporterLabel::Bootstrap).unwrap()),
        gnutls_keymat(&out).unwrap()
    );
}
