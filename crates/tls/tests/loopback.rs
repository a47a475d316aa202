//! Our client against our server over real loopback sockets: TLS and DTLS, PSK binding, SNI
//! selection, exporters, negative cases.

use std::sync::Arc;
use std::time::Duration;

use m2msec_tls::{
    BoundIdentity, ClientConfig, DtlsClient, DtlsOptions, DtlsServer, Error, ExporterLabel, Psk,
    PskIdentity, PskTable, ResolvedPsk, ServerConfig, SuitePolicy, TlsClient, TlsServer,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const T: Duration = Duration::from_secs(20);

fn table() -> Arc<PskTable> {
    let t = PskTable::new();
    t.insert(
        PskIdentity::new("kpsa1@mef.example.com").unwrap(),
        Psk::from_hex("00112233445566778899aabbccddeeff").unwrap(),
    );
    t.insert_entry(
        Some("in-cse.example.com"),
        PskIdentity::new("kpsa1@mef.example.com").unwrap(),
        ResolvedPsk {
            key: Psk::from_hex("ffeeddccbbaa99887766554433221100").unwrap(),
            bound: BoundIdentity::Configured("CAE-sensor-1".into()),
        },
    );
    Arc::new(t)
}

fn client(id: &str, key: &str) -> ClientConfig {
    let mut c = ClientConfig::psk(PskIdentity::new(id).unwrap(), Psk::from_hex(key).unwrap());
    c.handshake_timeout = Duration::from_secs(5);
    c
}

async fn tls_pair(
    server_cfg: ServerConfig,
    client_cfg: ClientConfig,
    sni: Option<&'static str>,
) -> (
    Result<m2msec_tls::TlsChannel, Error>,
    Result<m2msec_tls::TlsChannel, Error>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = TlsServer::new(&server_cfg).unwrap();
    let s = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        server.accept(tcp).await
    });
    let c = TlsClient::new(client_cfg)
        .unwrap()
        .connect("127.0.0.1", port, sni)
        .await;
    let s = tokio::time::timeout(T, s).await.unwrap().unwrap();
    (s, c)
}

#[tokio::test]
async fn tls_psk_handshake_binds_credential_id_and_exports_match() {
    let (s, c) = tls_pair(
        ServerConfig::psk(table()),
        client("kpsa1@mef.example.com", "00112233445566778899AABBCCDDEEFF"),
        None,
    )
    .await;
    let (mut s, mut c) = (s.unwrap(), c.unwrap());
    let sp = s.peer().clone();
    assert_eq!(sp.protocol.as_str(), "TLSv1.2");
    assert_eq!(sp.cipher, "TLS_PSK_WITH_AES_128_CBC_SHA256");
    assert_eq!(
        sp.psk_identity.as_ref().unwrap().as_str(),
        "kpsa1@mef.example.com"
    );
    assert_eq!(
        sp.bound_identity.as_ref().unwrap().as_str(),
        "12-kpsa1@mef.example.com"
    );
    assert_eq!(sp.sni, None, "an IP address is never sent as SNI");
    assert_eq!(c.peer().cipher, sp.cipher);
    for l in [
        ExporterLabel::Bootstrap,
        ExporterLabel::Connection,
        ExporterLabel::EsCertKe,
    ] {
        assert_eq!(
            s.export(l).unwrap().expose_secret(),
            c.export(l).unwrap().expose_secret()
        );
    }
    assert_ne!(
        s.export(ExporterLabel::Bootstrap).unwrap().expose_secret(),
        s.export(ExporterLabel::Connection).unwrap().expose_secret()
    );
    c.write_all(b"ping").await.unwrap();
    let mut b = [0u8; 4];
    s.read_exact(&mut b).await.unwrap();
    assert_eq!(&b, b"ping");
    c.close().await.unwrap();
}

#[tokio::test]
async fn tls_server_selects_credentials_by_sni() {
    let (s, c) = tls_pair(
        ServerConfig::psk(table()),
        client("kpsa1@mef.example.com", "ffeeddccbbaa99887766554433221100"),
        Some("IN-CSE.example.com"),
    )
    .await;
    let (s, c) = (s.unwrap(), c.unwrap());
    assert_eq!(s.peer().sni.as_deref(), Some("in-cse.example.com"));
    assert_eq!(c.peer().sni.as_deref(), Some("in-cse.example.com"));
    assert_eq!(
        s.peer().bound_identity,
        Some(BoundIdentity::Configured("CAE-sensor-1".into()))
    );
}

#[tokio::test]
async fn tls_unknown_authority_refused() {
    let mut cfg = ServerConfig::psk(table());
    cfg.authorities = Some(vec!["in-cse.example.com".into()]);
    let (s, c) = tls_pair(
        cfg,
        client("kpsa1@mef.example.com", "00112233445566778899aabbccddeeff"),
        Some("other.example"),
    )
    .await;
    assert!(s.is_err() && c.is_err());
    let msg = c.unwrap_err().to_string();
    assert!(msg.contains("unrecognized name"), "{msg}");
}

#[tokio::test]
async fn tls_wrong_key_and_unknown_identity_fail() {
    let (s, c) = tls_pair(
        ServerConfig::psk(table()),
        client("kpsa1@mef.example.com", "01"),
        None,
    )
    .await;
    assert!(matches!(s, Err(Error::Handshake(_))), "{s:?}");
    assert!(matches!(c, Err(Error::Handshake(_))), "{c:?}");

    let (s, c) = tls_pair(
        ServerConfig::psk(table()),
        client("nobody@mef.example.com", "01"),
        None,
    )
    .await;
    let (s, c) = (s.unwrap_err().to_string(), c.unwrap_err().to_string());
    assert!(c.contains("unknown psk identity"), "client: {c}");
    assert!(
        s.contains("psk identity not found") || s.contains("unknown psk"),
        "server: {s}"
    );
}

#[tokio::test]
async fn tls_forward_secret_psk_preferred_when_both_offer_it() {
    let fs = SuitePolicy {
        psk: true,
        psk_forward_secret: true,
        ecdhe_ecdsa: false,
    };
    let mut scfg = ServerConfig::psk(table());
    scfg.suites = fs;
    let mut ccfg = client("kpsa1@mef.example.com", "00112233445566778899aabbccddeeff");
    ccfg.suites = fs;
    let (s, c) = tls_pair(scfg.clone(), ccfg, None).await;
    assert_eq!(
        s.unwrap().peer().cipher,
        "TLS_ECDHE_PSK_WITH_AES_128_CBC_SHA256"
    );
    assert!(c.is_ok());
    // A plain-PSK client still gets the mandatory suite from the same server.
    let (s, _c) = tls_pair(
        scfg,
        client("kpsa1@mef.example.com", "00112233445566778899aabbccddeeff"),
        None,
    )
    .await;
    assert_eq!(s.unwrap().peer().cipher, "TLS_PSK_WITH_AES_128_CBC_SHA256");
}

fn dtls_opts() -> DtlsOptions {
    DtlsOptions {
        idle_timeout: Duration::from_secs(10),
        ..DtlsOptions::default()
    }
}

#[tokio::test]
async fn dtls_psk_many_peers_on_one_port() {
    let mut server = DtlsServer::bind(
        "127.0.0.1:0".parse().unwrap(),
        &ServerConfig::psk(table()),
        dtls_opts(),
    )
    .await
    .unwrap();
    let port = server.local_addr().port();
    let mut clients = Vec::new();
    for i in 0..5 {
        clients.push(tokio::spawn(async move {
            let c = DtlsClient::new(
                client("kpsa1@mef.example.com", "00112233445566778899aabbccddeeff"),
                dtls_opts(),
            )
            .unwrap();
            let mut s = c.connect("localhost", port, None).await.unwrap();
            s.send(format!("hello {i}").as_bytes()).await.unwrap();
            let echo = s.recv().await.unwrap();
            assert_eq!(echo, format!("hello {i}").into_bytes());
            (
                s.export(ExporterLabel::Bootstrap)
                    .unwrap()
                    .expose_secret()
                    .to_vec(),
                s.peer().clone(),
            )
        }));
    }
    let mut server_exports = Vec::new();
    for _ in 0..5 {
        let mut sess = tokio::time::timeout(T, server.accept())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let p = sess.peer().clone();
        assert_eq!(p.protocol.as_str(), "DTLSv1.2");
        assert_eq!(p.cipher, "TLS_PSK_WITH_AES_128_CCM_8");
        assert_eq!(p.sni.as_deref(), Some("localhost"));
        assert_eq!(
            p.bound_identity.as_ref().unwrap().as_str(),
            "12-kpsa1@mef.example.com"
        );
        server_exports.push(
            sess.export(ExporterLabel::Bootstrap)
                .unwrap()
                .expose_secret()
                .to_vec(),
        );
        tokio::spawn(async move {
            while let Ok(d) = sess.recv().await {
                if sess.send(&d).await.is_err() {
                    break;
                }
            }
        });
    }
    for c in clients {
        let (export, peer) = tokio::time::timeout(T, c).await.unwrap().unwrap();
        assert_eq!(peer.cipher, "TLS_PSK_WITH_AES_128_CCM_8");
        assert!(server_exports.contains(&export));
    }
    let st = server.stats();
    assert_eq!(st.half_open, 0);
    assert!(st.hello_verify_sent >= 5, "{st:?}");
}

#[tokio::test]
async fn dtls_wrong_key_fails_on_both_ends() {
    let mut server = DtlsServer::bind(
        "127.0.0.1:0".parse().unwrap(),
        &ServerConfig {
            handshake_timeout: Duration::from_secs(3),
            ..ServerConfig::psk(table())
        },
        dtls_opts(),
    )
    .await
    .unwrap();
    let port = server.local_addr().port();
    let mut cfg = client("kpsa1@mef.example.com", "0102");
    cfg.handshake_timeout = Duration::from_secs(3);
    let c = DtlsClient::new(cfg, dtls_opts()).unwrap();
    let r = c.connect("127.0.0.1", port, None).await;
    assert!(r.is_err(), "{r:?}");
    let a = tokio::time::timeout(T, server.accept())
        .await
        .unwrap()
        .unwrap();
    assert!(a.is_err());

    let c = DtlsClient::new(client("unknown", "0102"), dtls_opts()).unwrap();
    let msg = c
        .connect("127.0.0.1", port, None)
        .await
        .unwrap_err()
        .to_string();
    assert!(msg.contains("unknown psk identity"), "{msg}");
}

#[tokio::test]
async fn dtls_without_cookie_exchange_and_small_mtu() {
    let opts = DtlsOptions {
        cookie_exchange: false,
        mtu: 300,
        ..dtls_opts()
    };
    let mut server = DtlsServer::bind(
        "127.0.0.1:0".parse().unwrap(),
        &ServerConfig::psk(table()),
        opts.clone(),
    )
    .await
    .unwrap();
    let port = server.local_addr().port();
    let c = DtlsClient::new(
        client("kpsa1@mef.example.com", "00112233445566778899aabbccddeeff"),
        opts,
    )
    .unwrap();
    let (cs, ss) = tokio::join!(
        c.connect("127.0.0.1", port, Some("mn-cse.example")),
        server.accept()
    );
    let (cs, ss) = (cs.unwrap(), ss.unwrap().unwrap());
    assert_eq!(
        cs.export(ExporterLabel::EsCertKe).unwrap().expose_secret(),
        ss.export(ExporterLabel::EsCertKe).unwrap().expose_secret()
    );
    assert_eq!(server.stats().hello_verify_sent, 0);
}

#[tokio::test]
async fn dtls_idle_sessions_expire() {
    let opts = DtlsOptions {
        idle_timeout: Duration::from_millis(300),
        ..DtlsOptions::default()
    };
    let mut server = DtlsServer::bind(
        "127.0.0.1:0".parse().unwrap(),
        &ServerConfig::psk(table()),
        opts.clone(),
    )
    .await
    .unwrap();
    let port = server.local_addr().port();
    let c = DtlsClient::new(
        client("kpsa1@mef.example.com", "00112233445566778899aabbccddeeff"),
        opts,
    )
    .unwrap();
    let (cs, ss) = tokio::join!(c.connect("127.0.0.1", port, None), server.accept());
    let (_cs, mut ss) = (cs.unwrap(), ss.unwrap().unwrap());
    assert_eq!(server.stats().sessions, 1);
    let r = tokio::time::timeout(T, ss.recv()).await.unwrap();
    assert!(
        matches!(r, Err(Error::Idle(_)) | Err(Error::Closed)),
        "{r:?}"
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    let st = server.stats();
    assert_eq!(st.sessions, 0, "{st:?}");
}

/// SA2: after SA1 (A → B), B opens the reverse association to A with SA1's PSK credential.
#[tokio::test]
async fn sa2_reverse_association_reuses_sa1_credential() {
    let b_table = table();
    let (s, c) = tls_pair(
        ServerConfig::psk(b_table.clone()),
        client("kpsa1@mef.example.com", "00112233445566778899aabbccddeeff"),
        None,
    )
    .await;
    let (s, _c) = (s.unwrap(), c.unwrap());
    let sa2 = m2msec_tls::config::sa2_client_config(s.peer(), b_table.as_ref()).unwrap();
    assert_eq!(sa2.peer_id.as_deref(), Some("12-kpsa1@mef.example.com"));
    // A serves the same credential for SA2.
    let (a_side, b_side) = tls_pair(ServerConfig::psk(table()), sa2, None).await;
    let b_side = b_side.unwrap();
    assert_eq!(
        b_side.peer().bound_identity,
        Some(BoundIdentity::Configured("12-kpsa1@mef.example.com".into()))
    );
    assert_eq!(
        a_side
            .unwrap()
            .peer()
            .psk_identity
            .as_ref()
            .unwrap()
            .as_str(),
        "kpsa1@mef.example.com"
    );
}

/// Our TLS client with `sni` put into server_name as is (an IP literal too, as libcoap and
/// others send it; `TlsClient::connect` never does) against a server with `cfg`.
async fn tls_raw_sni(
    cfg: ServerConfig,
    sni: &str,
) -> (
    Result<m2msec_tls::TlsChannel, Error>,
    Result<m2msec_tls::TlsChannel, Error>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = TlsServer::new(&cfg).unwrap();
    let s = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        server.accept(tcp).await
    });
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let c = TlsClient::new(client(
        "kpsa1@mef.example.com",
        "00112233445566778899aabbccddeeff",
    ))
    .unwrap()
    .handshake(tcp, Some(sni))
    .await;
    let s = tokio::time::timeout(T, s).await.unwrap().unwrap();
    (s, c)
}

/// Our DTLS client with `sni` put into server_name as is, against a server with `cfg`.
async fn dtls_raw_sni(
    cfg: ServerConfig,
    sni: &str,
) -> (
    Result<m2msec_tls::DtlsSession, Error>,
    Result<m2msec_tls::DtlsSession, Error>,
) {
    let mut server = DtlsServer::bind("127.0.0.1:0".parse().unwrap(), &cfg, dtls_opts())
        .await
        .unwrap();
    let c = DtlsClient::new(
        client("kpsa1@mef.example.com", "00112233445566778899aabbccddeeff"),
        dtls_opts(),
    )
    .unwrap();
    let (c, s) = tokio::join!(
        c.connect_addr(server.local_addr(), Some(sni)),
        tokio::time::timeout(T, server.accept())
    );
    let s = s.unwrap().unwrap().map_err(|e| e.error);
    (s, c)
}

/// An IP literal in server_name (RFC 6066 §3 does not permit it; libcoap sends the address of
/// `coaps://127.0.0.1/…`) is no SNI (issue 17): with an authority configured and
/// `require_sni = false` the handshake succeeds on the SNI-less credential, the peer has no
/// SNI; with `require_sni = true` it is refused as a missing SNI. A name that merely looks
/// numeric is still a name, refused when it is not the authority.
#[tokio::test]
async fn ip_literal_sni_counts_as_absent_on_tls_and_dtls() {
    let cfg = |require_sni: bool| {
        let mut c = ServerConfig::psk(table());
        c.authorities = Some(vec!["in-cse.example.com".into()]);
        c.require_sni = require_sni;
        c
    };
    for ip in ["127.0.0.1", "::1", "[::1]", "2001:db8::7"] {
        let (s, c) = tls_raw_sni(cfg(false), ip).await;
        let (s, c) = (
            s.unwrap_or_else(|e| panic!("TLS server, SNI {ip}: {e}")),
            c.unwrap_or_else(|e| panic!("TLS client, SNI {ip}: {e}")),
        );
        assert_eq!(s.peer().sni, None, "{ip}");
        assert_eq!(
            s.peer().bound_identity.as_ref().unwrap().as_str(),
            "12-kpsa1@mef.example.com",
            "{ip}: the SNI-less credential"
        );
        drop(c);
        let (s, c) = dtls_raw_sni(cfg(false), ip).await;
        let (s, _c) = (
            s.unwrap_or_else(|e| panic!("DTLS server, SNI {ip}: {e}")),
            c.unwrap_or_else(|e| panic!("DTLS client, SNI {ip}: {e}")),
        );
        assert_eq!(s.peer().sni, None, "{ip}");

        let (s, c) = tls_raw_sni(cfg(true), ip).await;
        assert!(s.is_err(), "TLS, require_sni, SNI {ip}");
        let msg = c.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(msg.contains("unrecognized name"), "TLS {ip}: {msg}");
        let (s, c) = dtls_raw_sni(cfg(true), ip).await;
        assert!(s.is_err() && c.is_err(), "DTLS, require_sni, SNI {ip}");
    }
    for name in ["1.2.3.4.example", "123abc"] {
        let (s, c) = tls_raw_sni(cfg(false), name).await;
        assert!(
            s.is_err() && c.is_err(),
            "{name} is a name, not the authority"
        );
    }
}
