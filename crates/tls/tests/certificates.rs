//! ECDHE-ECDSA certificate security associations (TS-0003 §8.1.2, §8.2.2.2, §10.1.1; BRIEF §6
//! checks 13, 17): P-256, exact SubjectAltName match, path validation to configured anchors,
//! keyUsage digitalSignature, client certificates, SNI-selected server certificates, and an IN
//! server offering every mandated suite.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::pki::{leaf, Ca, Leaf, LeafOpts, San};
use m2msec_tls::{
    BoundIdentity, CertCredential, ClientAuth, ClientConfig, CredentialKind, DtlsClient,
    DtlsOptions, DtlsServer, Error, ExpectedName, ExporterLabel, Psk, PskIdentity, PskTable,
    ServerCertificates, ServerConfig, TlsChannel, TlsClient, TlsServer, TrustAnchors,
};
use openssl::nid::Nid;
use tokio::net::TcpListener;

const T: Duration = Duration::from_secs(20);
const IN_CSE: &str = "in-cse.example.com";
const AE_ID: &str = "//sp.example.com/in-cse/CAE-sensor-1";

fn cred(l: &Leaf) -> CertCredential {
    CertCredential::from_pem(&l.cert_pem(), &l.key_pem()).unwrap()
}

fn anchors(ca: &Ca) -> TrustAnchors {
    TrustAnchors::from_pem(&ca.pem()).unwrap()
}

fn server_with(l: &Leaf) -> ServerConfig {
    let mut certs = ServerCertificates::new();
    certs.set_default(cred(l));
    let mut c = ServerConfig::certificates(certs);
    c.handshake_timeout = Duration::from_secs(5);
    c
}

fn client_expecting(ca: &Ca, name: ExpectedName) -> ClientConfig {
    let mut c = ClientConfig::certificate(anchors(ca), name, None);
    c.handshake_timeout = Duration::from_secs(5);
    c
}

async fn tls(
    server: ServerConfig,
    client: ClientConfig,
    sni: Option<&'static str>,
) -> (Result<TlsChannel, Error>, Result<TlsChannel, Error>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = TlsServer::new(&server).unwrap();
    let s = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        server.accept(tcp).await
    });
    let c = TlsClient::new(client)
        .unwrap()
        .connect("127.0.0.1", port, sni)
        .await;
    let s = tokio::time::timeout(T, s).await.unwrap().unwrap();
    (s, c)
}

#[tokio::test]
async fn tls_ecdhe_ecdsa_server_authentication() {
    let ca = Ca::new("m2m CA");
    let l = leaf(&ca, &[San::Dns(IN_CSE)], LeafOpts::default());
    let (s, c) = tls(
        server_with(&l),
        client_expecting(&ca, ExpectedName::Dns("IN-CSE.example.com".into())),
        Some(IN_CSE),
    )
    .await;
    let (s, c) = (s.unwrap(), c.unwrap());
    let cp = c.peer();
    assert_eq!(cp.cipher, "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256");
    assert_eq!(cp.credential, CredentialKind::Certificate);
    assert_eq!(cp.subject_alt_names, vec![IN_CSE.to_string()]);
    assert_eq!(
        cp.bound_identity,
        Some(BoundIdentity::Configured(IN_CSE.into()))
    );
    assert_eq!(cp.psk_identity, None);
    assert_eq!(s.peer().credential, CredentialKind::Certificate);
    assert_eq!(s.peer().bound_identity, None, "anonymous client");
    assert_eq!(
        s.export(ExporterLabel::Bootstrap).unwrap().expose_secret(),
        c.export(ExporterLabel::Bootstrap).unwrap().expose_secret()
    );
}

#[tokio::test]
async fn dtls_ecdhe_ecdsa_server_authentication() {
    let ca = Ca::new("m2m CA");
    let l = leaf(&ca, &[San::Dns(IN_CSE)], LeafOpts::default());
    let mut server = DtlsServer::bind(
        "127.0.0.1:0".parse().unwrap(),
        &server_with(&l),
        DtlsOptions::default(),
    )
    .await
    .unwrap();
    let port = server.local_addr().port();
    let client = DtlsClient::new(
        client_expecting(&ca, ExpectedName::Dns(IN_CSE.into())),
        DtlsOptions::default(),
    )
    .unwrap();
    let (c, s) = tokio::join!(
        client.connect("127.0.0.1", port, Some(IN_CSE)),
        server.accept()
    );
    let (c, s) = (c.unwrap(), s.unwrap().unwrap());
    assert_eq!(c.peer().cipher, "TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8");
    assert_eq!(
        c.export(ExporterLabel::EsCertKe).unwrap().expose_secret(),
        s.export(ExporterLabel::EsCertKe).unwrap().expose_secret()
    );
}

/// Each refused certificate, with the reason the client reports.
#[tokio::test]
async fn refused_server_certificates() {
    let ca = Ca::new("m2m CA");
    let other_ca = Ca::new("other CA");
    let expect = || ExpectedName::Dns(IN_CSE.into());
    let cases: Vec<(&str, Leaf, &str)> = vec![
        (
            "wrong SAN",
            leaf(&ca, &[San::Dns("mn-cse.example.com")], LeafOpts::default()),
            "hostname mismatch",
        ),
        (
            "wildcard SAN",
            leaf(&ca, &[San::Dns("*.example.com")], LeafOpts::default()),
            "hostname mismatch",
        ),
        (
            "SAN as URI, not dNSName",
            leaf(&ca, &[San::Uri(IN_CSE)], LeafOpts::default()),
            "hostname mismatch",
        ),
        (
            "untrusted chain",
            leaf(&other_ca, &[San::Dns(IN_CSE)], LeafOpts::default()),
            "unable to get local issuer certificate",
        ),
        (
            "expired",
            leaf(
                &ca,
                &[San::Dns(IN_CSE)],
                LeafOpts {
                    expired: true,
                    ..LeafOpts::default()
                },
            ),
            "certificate has expired",
        ),
        (
            "keyUsage without digitalSignature",
            leaf(
                &ca,
                &[San::Dns(IN_CSE)],
                LeafOpts {
                    digital_signature: false,
                    ..LeafOpts::default()
                },
            ),
            "",
        ),
    ];
    for (what, l, reason) in cases {
        let (s, c) = tls(
            server_with(&l),
            client_expecting(&ca, expect()),
            Some(IN_CSE),
        )
        .await;
        let err = c.expect_err(what).to_string();
        assert!(err.contains(reason), "{what}: {err}");
        assert!(s.is_err(), "{what}: server side must fail too");
    }
}

#[test]
fn non_p256_credentials_are_refused_at_configuration() {
    let ca = Ca::new("m2m CA");
    let l = leaf(
        &ca,
        &[San::Dns(IN_CSE)],
        LeafOpts {
            curve: Nid::SECP384R1,
            ..LeafOpts::default()
        },
    );
    let e = CertCredential::from_pem(&l.cert_pem(), &l.key_pem()).unwrap_err();
    assert!(e.to_string().contains("P-256"), "{e}");
    let other = leaf(&ca, &[San::Dns(IN_CSE)], LeafOpts::default());
    let e = CertCredential::from_pem(&l.cert_pem(), &other.key_pem()).unwrap_err();
    assert!(e.to_string().contains("does not match"), "{e}");
}

#[tokio::test]
async fn client_certificates_bind_the_ae_id() {
    let ca = Ca::new("m2m CA");
    let server_leaf = leaf(&ca, &[San::Dns(IN_CSE)], LeafOpts::default());
    let ae_leaf = leaf(&ca, &[San::Uri(AE_ID)], LeafOpts::default());
    let mut scfg = server_with(&server_leaf);
    scfg.client_auth = Some(ClientAuth {
        anchors: anchors(&ca),
        allowed: vec![ExpectedName::Uri(AE_ID.into())],
    });
    let ccfg = ClientConfig {
        handshake_timeout: Duration::from_secs(5),
        ..ClientConfig::certificate(
            anchors(&ca),
            ExpectedName::Dns(IN_CSE.into()),
            Some(cred(&ae_leaf)),
        )
    };
    let (s, c) = tls(scfg.clone(), ccfg, Some(IN_CSE)).await;
    let s = s.unwrap();
    c.unwrap();
    assert_eq!(
        s.peer().bound_identity,
        Some(BoundIdentity::Configured(AE_ID.into()))
    );
    assert_eq!(s.peer().subject_alt_names, vec![AE_ID.to_string()]);

    // No client certificate, or one with another AE-ID: refused.
    let (s, _c) = tls(
        scfg.clone(),
        client_expecting(&ca, ExpectedName::Dns(IN_CSE.into())),
        Some(IN_CSE),
    )
    .await;
    assert!(s.is_err());
    let other_ae = leaf(
        &ca,
        &[San::Uri("//sp.example.com/in-cse/CAE-other")],
        LeafOpts::default(),
    );
    let ccfg = ClientConfig {
        handshake_timeout: Duration::from_secs(5),
        ..ClientConfig::certificate(
            anchors(&ca),
            ExpectedName::Dns(IN_CSE.into()),
            Some(cred(&other_ae)),
        )
    };
    let (s, _c) = tls(scfg, ccfg, Some(IN_CSE)).await;
    let e = s.unwrap_err().to_string();
    assert!(e.contains("hostname mismatch"), "{e}");
}

#[tokio::test]
async fn server_certificate_selected_by_sni() {
    let ca = Ca::new("m2m CA");
    let a = leaf(&ca, &[San::Dns("a.example.com")], LeafOpts::default());
    let b = leaf(&ca, &[San::Dns("b.example.com")], LeafOpts::default());
    let mut certs = ServerCertificates::new();
    certs.insert("a.example.com", cred(&a));
    certs.insert("B.example.com", cred(&b));
    let scfg = ServerConfig::certificates(certs);
    for name in ["a.example.com", "b.example.com"] {
        let sni: &'static str = if name.starts_with('a') {
            "a.example.com"
        } else {
            "b.example.com"
        };
        let (s, c) = tls(
            scfg.clone(),
            client_expecting(&ca, ExpectedName::Dns(name.into())),
            Some(sni),
        )
        .await;
        assert_eq!(c.unwrap().peer().subject_alt_names, vec![name.to_string()]);
        assert_eq!(s.unwrap().peer().sni.as_deref(), Some(name));
    }
    // No default and no SNI: no certificate, so no certificate suite can be negotiated.
    let (s, c) = tls(
        scfg,
        client_expecting(&ca, ExpectedName::Dns("a.example.com".into())),
        None,
    )
    .await;
    assert!(s.is_err() && c.is_err());
}

#[tokio::test]
async fn infrastructure_server_offers_psk_and_certificate_suites() {
    let ca = Ca::new("m2m CA");
    let l = leaf(&ca, &[San::Dns(IN_CSE)], LeafOpts::default());
    let table = PskTable::new();
    table.insert(
        PskIdentity::new("kpsa@mef").unwrap(),
        Psk::new(b"0123456789abcdef").unwrap(),
    );
    let mut certs = ServerCertificates::new();
    certs.set_default(cred(&l));
    let scfg = ServerConfig::infrastructure(Arc::new(table), certs);
    let (s, _c) = tls(
        scfg.clone(),
        ClientConfig::psk(
            PskIdentity::new("kpsa@mef").unwrap(),
            Psk::new(b"0123456789abcdef").unwrap(),
        ),
        None,
    )
    .await;
    let s = s.unwrap();
    assert_eq!(s.peer().cipher, "TLS_PSK_WITH_AES_128_CBC_SHA256");
    assert_eq!(s.peer().credential, CredentialKind::Psk);
    let (s, _c) = tls(
        scfg.clone(),
        client_expecting(&ca, ExpectedName::Dns(IN_CSE.into())),
        None,
    )
    .await;
    assert_eq!(
        s.unwrap().peer().cipher,
        "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256"
    );
    // And over DTLS.
    let mut server = DtlsServer::bind(
        "127.0.0.1:0".parse().unwrap(),
        &scfg,
        DtlsOptions::default(),
    )
    .await
    .unwrap();
    let port = server.local_addr().port();
    let client = DtlsClient::new(
        client_expecting(&ca, ExpectedName::Dns(IN_CSE.into())),
        DtlsOptions::default(),
    )
    .unwrap();
    let (c, s) = tokio::join!(client.connect("127.0.0.1", port, None), server.accept());
    c.unwrap();
    assert_eq!(
        s.unwrap().unwrap().peer().cipher,
        "TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8"
    );
    let client = DtlsClient::new(
        ClientConfig::psk(
            PskIdentity::new("kpsa@mef").unwrap(),
            Psk::new(b"0123456789abcdef").unwrap(),
        ),
        DtlsOptions::default(),
    )
    .unwrap();
    let (c, s) = tokio::join!(client.connect("127.0.0.1", port, None), server.accept());
    c.unwrap();
    assert_eq!(
        s.unwrap().unwrap().peer().cipher,
        "TLS_PSK_WITH_AES_128_CCM_8"
    );
}

/// Seed 004: after a mutually authenticated certificate SA both ends derive Kx/KxID with the
/// project-defined label; the server installs it bound to the AE-ID of the client certificate,
/// and a later TLS-PSK connection with KxID is bound to that AE-ID.
#[tokio::test]
async fn seed004_long_term_key_after_certificate_sa() {
    use m2msec_tls::seed004;
    let ca = Ca::new("m2m CA");
    let server_leaf = leaf(&ca, &[San::Dns(IN_CSE)], LeafOpts::default());
    let ae_leaf = leaf(&ca, &[San::Uri(AE_ID)], LeafOpts::default());
    let table = Arc::new(PskTable::new());
    let mut certs = ServerCertificates::new();
    certs.set_default(cred(&server_leaf));
    let mut scfg = ServerConfig::infrastructure(table.clone(), certs);
    scfg.client_auth = Some(ClientAuth {
        anchors: anchors(&ca),
        allowed: vec![],
    });
    let ccfg = ClientConfig::certificate(
        anchors(&ca),
        ExpectedName::Dns(IN_CSE.into()),
        Some(cred(&ae_leaf)),
    );
    let (s, c) = tls(scfg.clone(), ccfg, Some(IN_CSE)).await;
    let (s, c) = (s.unwrap(), c.unwrap());
    let sk = seed004::derive(
        &s.export_with_label(seed004::KX_EXPORTER_LABEL).unwrap(),
        s.peer(),
    )
    .unwrap();
    let ck = seed004::derive(
        &c.export_with_label(seed004::KX_EXPORTER_LABEL).unwrap(),
        c.peer(),
    )
    .unwrap();
    assert_eq!(sk.kx_id, ck.kx_id);
    assert!(sk.kx_id.as_str().ends_with("@in-cse.example.com"));
    assert_eq!(sk.kx_id.as_str().len(), 32 + 1 + IN_CSE.len());
    assert_eq!(sk.bound, BoundIdentity::Configured(AE_ID.into()));
    assert_eq!(ck.bound, BoundIdentity::Configured(IN_CSE.into()));
    seed004::install(&table, IN_CSE, &sk);

    let (s, c) = tls(
        scfg.clone(),
        ClientConfig::psk(ck.kx_id.clone(), ck.kx.clone()),
        Some(IN_CSE),
    )
    .await;
    let s = s.unwrap();
    c.unwrap();
    assert_eq!(s.peer().credential, CredentialKind::Psk);
    assert_eq!(
        s.peer().bound_identity,
        Some(BoundIdentity::Configured(AE_ID.into()))
    );
    // Kx is installed for its authority only.
    let (s, _c) = tls(
        scfg,
        ClientConfig::psk(ck.kx_id, ck.kx),
        Some("other.example.com"),
    )
    .await;
    assert!(s.is_err());
    // A PSK peer cannot seed a new key.
    let (s, _c) = tls(
        ServerConfig::psk(Arc::new(PskTable::new())),
        ClientConfig::psk(PskIdentity::new("x").unwrap(), Psk::new(b"k").unwrap()),
        None,
    )
    .await;
    assert!(s.is_err());
}

/// RFC 7250 raw public keys: the client accepts the server's P-256 key by its RFC 6920 digest
/// and binds the SA to `30-ni:///sha-256;…` (BRIEF §6 check 18).
#[tokio::test]
async fn raw_public_key_by_rfc6920_digest() {
    use m2msec_tls::{PkId, PkIdAlg};
    let ca = Ca::new("m2m CA");
    let l = leaf(&ca, &[San::Dns(IN_CSE)], LeafOpts::default());
    let spki = l.key.public_key_to_der().unwrap();
    let pk_id = PkId::of_spki(&spki, PkIdAlg::Sha256).unwrap();
    let mut scfg = server_with(&l);
    scfg.offer_raw_public_key = true;
    if !m2msec_tls::rpk::SUPPORTED {
        // Built against a system OpenSSL < 3.2: refused clearly at configuration.
        let e = TlsServer::new(&scfg).err().unwrap().to_string();
        assert!(e.contains("OpenSSL >= 3.2"), "{e}");
        let e = TlsClient::new(ClientConfig::raw_public_key(pk_id))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("OpenSSL >= 3.2"), "{e}");
        return;
    }
    let (s, c) = tls(
        scfg.clone(),
        ClientConfig::raw_public_key(pk_id.clone()),
        Some(IN_CSE),
    )
    .await;
    let (s, c) = (s.unwrap(), c.unwrap());
    assert_eq!(c.peer().credential, CredentialKind::RawPublicKey);
    assert_eq!(c.peer().cipher, "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256");
    assert_eq!(
        c.peer().bound_identity,
        Some(BoundIdentity::CredentialId(format!("30-{pk_id}")))
    );
    assert_eq!(
        s.export(ExporterLabel::Bootstrap).unwrap().expose_secret(),
        c.export(ExporterLabel::Bootstrap).unwrap().expose_secret()
    );
    // Truncated identifier form.
    let short = PkId::of_spki(&spki, PkIdAlg::Sha256_128).unwrap();
    let (_s, c) = tls(
        scfg.clone(),
        ClientConfig::raw_public_key(short),
        Some(IN_CSE),
    )
    .await;
    c.unwrap();
    // An X.509 client of the same server still gets the certificate.
    let (_s, c) = tls(
        scfg.clone(),
        client_expecting(&ca, ExpectedName::Dns(IN_CSE.into())),
        Some(IN_CSE),
    )
    .await;
    assert_eq!(c.unwrap().peer().credential, CredentialKind::Certificate);
    // DTLS.
    let mut server = DtlsServer::bind(
        "127.0.0.1:0".parse().unwrap(),
        &scfg,
        DtlsOptions::default(),
    )
    .await
    .unwrap();
    let port = server.local_addr().port();
    let client = DtlsClient::new(
        ClientConfig::raw_public_key(pk_id.clone()),
        DtlsOptions::default(),
    )
    .unwrap();
    let (c, s) = tokio::join!(
        client.connect("127.0.0.1", port, Some(IN_CSE)),
        server.accept()
    );
    assert_eq!(
        c.unwrap().peer().cipher,
        "TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8"
    );
    s.unwrap().unwrap();

    // Unexpected raw key: refused.
    let other = leaf(&ca, &[San::Dns(IN_CSE)], LeafOpts::default());
    let other_id = PkId::of_spki(&other.key.public_key_to_der().unwrap(), PkIdAlg::Sha256).unwrap();
    let (s, c) = tls(scfg, ClientConfig::raw_public_key(other_id), Some(IN_CSE)).await;
    assert!(c.is_err() && s.is_err());
    // A server that does not offer raw keys cannot satisfy a raw-key-only client.
    let (s, c) = tls(
        server_with(&l),
        ClientConfig::raw_public_key(pk_id),
        Some(IN_CSE),
    )
    .await;
    assert!(c.is_err() && s.is_err());
}

/// BRIEF §6 check 17 / RFC 8422 §5.1.2: a P-256 key encoded as a compressed point is refused,
/// on both sides, although the chain and the name are right.
#[tokio::test]
async fn compressed_point_certificates_are_refused() {
    let ca = Ca::new("m2m CA");
    let compressed = LeafOpts {
        compressed_point: true,
        ..LeafOpts::default()
    };
    let l = leaf(&ca, &[San::Dns(IN_CSE)], compressed);
    // The certificate really carries the compressed form (0x02/0x03 ‖ X).
    let der = l.cert.to_der().unwrap();
    assert!(
        der.windows(common::pki::P256_COMPRESSED_SPKI_PREFIX.len())
            .any(|w| w == common::pki::P256_COMPRESSED_SPKI_PREFIX),
        "test PKI did not produce a compressed point"
    );
    // Server certificate with a compressed point: the handshake fails (OpenSSL's server
    // already declines a certificate whose point format the client did not offer; our client
    // check would refuse it too).
    let (s, c) = tls(
        server_with(&l),
        client_expecting(&ca, ExpectedName::Dns(IN_CSE.into())),
        Some(IN_CSE),
    )
    .await;
    assert!(c.is_err() && s.is_err(), "compressed server point accepted");

    // Client certificate with a compressed point: the server refuses it.
    let server_leaf = leaf(&ca, &[San::Dns(IN_CSE)], LeafOpts::default());
    let ae_leaf = leaf(&ca, &[San::Uri(AE_ID)], compressed);
    let mut scfg = server_with(&server_leaf);
    scfg.client_auth = Some(ClientAuth {
        anchors: anchors(&ca),
        allowed: vec![ExpectedName::Uri(AE_ID.into())],
    });
    let ccfg = ClientConfig {
        handshake_timeout: Duration::from_secs(5),
        ..ClientConfig::certificate(
            anchors(&ca),
            ExpectedName::Dns(IN_CSE.into()),
            Some(cred(&ae_leaf)),
        )
    };
    let (s, _c) = tls(scfg.clone(), ccfg, Some(IN_CSE)).await;
    let e = s.expect_err("compressed client point accepted").to_string();
    assert!(e.contains("application verification failure"), "{e}");

    // Control: the same setup with an uncompressed point succeeds.
    let ae_leaf = leaf(&ca, &[San::Uri(AE_ID)], LeafOpts::default());
    let ccfg = ClientConfig {
        handshake_timeout: Duration::from_secs(5),
        ..ClientConfig::certificate(
            anchors(&ca),
            ExpectedName::Dns(IN_CSE.into()),
            Some(cred(&ae_leaf)),
        )
    };
    let (s, c) = tls(scfg, ccfg, Some(IN_CSE)).await;
    s.unwrap();
    c.unwrap();
}

/// Node-ID certificates (TS-0003 §10.1.1.8, TS-0001 Annex H): an OID-based Node-ID in an
/// otherName (type-id = higher arc, value = the remaining arcs as a RELATIVE-OID) matched
/// exactly, binding the SA to Credential-ID `34-<Node-ID>`; another Node-ID is refused; a
/// Node-ID as URI also matches.
#[tokio::test]
async fn node_id_certificates_bind_credential_id_34() {
    const HIGHER_ARC: &str = "1.2.410.200005.1";
    const NODE_ID: &str = "1.2.410.200005.1.7.42.9001";
    // RELATIVE-OID 7.42.9001 (9001 = 0x46 0x29 in base 128).
    const REL_OID: &[u8] = &[0x0d, 0x04, 0x07, 0x2a, 0xc6, 0x29];
    const OTHER_REL_OID: &[u8] = &[0x0d, 0x04, 0x07, 0x2a, 0xc6, 0x2a];
    let ca = Ca::new("m2m CA");
    let server_leaf = leaf(&ca, &[San::Dns(IN_CSE)], LeafOpts::default());
    let mut scfg = server_with(&server_leaf);
    scfg.client_auth = Some(ClientAuth {
        anchors: anchors(&ca),
        allowed: vec![ExpectedName::NodeId(NODE_ID.into())],
    });
    let with_client = |l: &Leaf| ClientConfig {
        handshake_timeout: Duration::from_secs(5),
        ..ClientConfig::certificate(
            anchors(&ca),
            ExpectedName::Dns(IN_CSE.into()),
            Some(cred(l)),
        )
    };

    let node = leaf(
        &ca,
        &[San::OtherName(HIGHER_ARC, REL_OID)],
        LeafOpts::default(),
    );
    let (s, c) = tls(scfg.clone(), with_client(&node), Some(IN_CSE)).await;
    let s = s.unwrap();
    c.unwrap();
    assert_eq!(
        s.peer().bound_identity,
        Some(BoundIdentity::CredentialId(format!("34-{NODE_ID}")))
    );
    assert_eq!(s.peer().subject_alt_names, vec![NODE_ID.to_string()]);

    // Another Node-ID (last arc 9002), or the right text as a dNSName: refused.
    for (what, l) in [
        (
            "other Node-ID",
            leaf(
                &ca,
                &[San::OtherName(HIGHER_ARC, OTHER_REL_OID)],
                LeafOpts::default(),
            ),
        ),
        (
            "Node-ID as dNSName",
            leaf(&ca, &[San::Dns(NODE_ID)], LeafOpts::default()),
        ),
    ] {
        let (s, _c) = tls(scfg.clone(), with_client(&l), Some(IN_CSE)).await;
        let e = s.expect_err(what).to_string();
        assert!(e.contains("hostname mismatch"), "{what}: {e}");
    }

    // A client checking a server's Node-ID certificate (here an IMEI-style Node-ID as URI).
    let imei = "urn:imei:490154203237518";
    let node_server = leaf(&ca, &[San::Uri(imei)], LeafOpts::default());
    let (s, c) = tls(
        server_with(&node_server),
        client_expecting(&ca, ExpectedName::NodeId(imei.into())),
        Some(IN_CSE),
    )
    .await;
    s.unwrap();
    assert_eq!(
        c.unwrap().peer().bound_identity,
        Some(BoundIdentity::CredentialId(format!("34-{imei}")))
    );
}

/// RFC 7250 client_certificate_type: the server verifies a client's raw public key against
/// the configured RFC 6920 identifiers and binds the SA to `30-ni:///sha-256;…`; an
/// unconfigured key, or no client key at all, is refused.
#[tokio::test]
async fn server_verifies_client_raw_public_key() {
    use m2msec_tls::{ClientCredential, PkId, PkIdAlg};
    let ca = Ca::new("m2m CA");
    let server_leaf = leaf(&ca, &[San::Dns(IN_CSE)], LeafOpts::default());
    let server_id = PkId::of_spki(
        &server_leaf.key.public_key_to_der().unwrap(),
        PkIdAlg::Sha256,
    )
    .unwrap();
    let client_leaf = leaf(&ca, &[San::Dns("client.example.com")], LeafOpts::default());
    let client_spki = client_leaf.key.public_key_to_der().unwrap();
    let client_id = PkId::of_spki(&client_spki, PkIdAlg::Sha256).unwrap();
    let mut scfg = server_with(&server_leaf);
    scfg.offer_raw_public_key = true;
    scfg.client_raw_keys = vec![PkId::of_spki(&client_spki, PkIdAlg::Sha256_128).unwrap()];
    let client_with = |own: Option<&Leaf>| ClientConfig {
        credential: ClientCredential::RawPublicKey {
            expected: vec![server_id.clone()],
            own: own.map(cred),
        },
        handshake_timeout: Duration::from_secs(5),
        ..ClientConfig::raw_public_key(server_id.clone())
    };
    if !m2msec_tls::rpk::SUPPORTED {
        let e = TlsServer::new(&scfg).err().unwrap().to_string();
        assert!(e.contains("OpenSSL >= 3.2"), "{e}");
        return;
    }

    let (s, c) = tls(scfg.clone(), client_with(Some(&client_leaf)), Some(IN_CSE)).await;
    let (s, c) = (s.unwrap(), c.unwrap());
    assert_eq!(s.peer().credential, CredentialKind::RawPublicKey);
    assert_eq!(
        s.peer().bound_identity,
        Some(BoundIdentity::CredentialId(format!("30-{client_id}")))
    );
    assert_eq!(c.peer().credential, CredentialKind::RawPublicKey);

    // DTLS as well.
    let mut server = DtlsServer::bind(
        "127.0.0.1:0".parse().unwrap(),
        &scfg,
        DtlsOptions::default(),
    )
    .await
    .unwrap();
    let port = server.local_addr().port();
    let client = DtlsClient::new(client_with(Some(&client_leaf)), DtlsOptions::default()).unwrap();
    let (c, s) = tokio::join!(
        client.connect("127.0.0.1", port, Some(IN_CSE)),
        server.accept()
    );
    c.unwrap();
    assert_eq!(
        s.unwrap().unwrap().peer().bound_identity,
        Some(BoundIdentity::CredentialId(format!("30-{client_id}")))
    );

    // A raw key that is not configured, or no client key: refused by the server.
    let stranger = leaf(&ca, &[San::Dns("client.example.com")], LeafOpts::default());
    let (s, _c) = tls(scfg.clone(), client_with(Some(&stranger)), Some(IN_CSE)).await;
    assert!(s.is_err(), "unconfigured client raw key accepted");
    let (s, _c) = tls(scfg, client_with(None), Some(IN_CSE)).await;
    assert!(s.is_err(), "missing client raw key accepted");
}
