//! Client raw public keys at the registrar CSE (RFC 7250; TS-0003 §8.2.2.2): a configured key's
//! association binds Credential-ID `30-ni:///sha-256;…`, the first `<AE>` CREATE binds its AE-ID
//! (TS-0003 §8.2.1), another From on that association is 4106, and a key the CSE does not know
//! fails the handshake.

#[path = "../../tls/tests/common/pki.rs"]
#[allow(dead_code)]
mod pki;

use std::time::Duration;

use m2msec_bindings::client::HttpClient;
use m2msec_bindings::{listen, ListenOptions};
use m2msec_cse::{Cse, CseConfig, CseType, Operation, RequestPrimitive, Rsc, SqliteStore};
use m2msec_cse_service::{CseEndpoint, CseSecurity, RawKeyCredential};
use m2msec_tls::{
    CertCredential, ClientConfig, ClientCredential, PkId, PkIdAlg, ServerCertificates, TlsClient,
};
use pki::{leaf, Ca, LeafOpts, San};
use serde_json::json;

const SNI: &str = "cse.sp.example";

fn cred(l: &pki::Leaf) -> CertCredential {
    CertCredential::from_pem(&l.cert_pem(), &l.key_pem()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_key_association_binds_its_first_ae() {
    if !m2msec_tls::rpk::SUPPORTED {
        // Only an OpenSSL older than 3.2 lacks RFC 7250; the vendored build has it.
        assert!(openssl::version::number() < 0x3020_0000);
        return;
    }
    eprintln!("raw public keys with {}", openssl::version::version());
    let ca = Ca::new("unused CA");
    let server_leaf = leaf(&ca, &[San::Dns(SNI)], LeafOpts::default());
    let server_id = PkId::of_spki(
        &server_leaf.key.public_key_to_der().unwrap(),
        PkIdAlg::Sha256,
    )
    .unwrap();
    let device = leaf(&ca, &[San::Dns("device.example")], LeafOpts::default());
    let device_id =
        PkId::of_spki(&device.key.public_key_to_der().unwrap(), PkIdAlg::Sha256).unwrap();
    let stranger = leaf(&ca, &[San::Dns("stranger.example")], LeafOpts::default());

    let cse = Cse::new(
        CseConfig {
            sp: "sp.example".parse().unwrap(),
            cse_id: "/cse-in".parse().unwrap(),
            cb_rn: "cb".into(),
            cse_type: CseType::In,
            poa: vec![],
        },
        SqliteStore::open_in_memory().unwrap(),
    )
    .unwrap();
    let (ep, mut tls) = CseEndpoint::new(
        cse,
        &CseSecurity {
            raw_keys: vec![RawKeyCredential {
                pk_id: device_id.clone(),
                bound: None,
            }],
            ..CseSecurity::default()
        },
    );
    let mut certs = ServerCertificates::new();
    certs.set_default(cred(&server_leaf));
    tls.certificates = Some(certs);
    tls.suites.ecdhe_ecdsa = true;
    tls.offer_raw_public_key = true;
    let listening = listen(ep, &tls, ListenOptions::loopback()).await.unwrap();
    let port = listening.tls_addr.unwrap().port();

    let client = |own: &pki::Leaf| ClientConfig {
        credential: ClientCredential::RawPublicKey {
            expected: vec![server_id.clone()],
            own: Some(cred(own)),
        },
        handshake_timeout: Duration::from_secs(5),
        ..ClientConfig::raw_public_key(server_id.clone())
    };
    let ch = TlsClient::new(client(&device))
        .unwrap()
        .connect("127.0.0.1", port, Some(SNI))
        .await
        .unwrap();
    let mut http = HttpClient::new(ch, SNI).await.unwrap();
    let mut req = RequestPrimitive::new(Operation::Create, "cb", Some("Crawdev"), "1");
    req.ty = Some(2);
    req.pc = Some(json!({"m2m:ae": {"rn": "rawdev", "api": "Nraw", "rr": false, "srv": ["3"]}}));
    let r = http.send(&req).await.unwrap();
    assert_eq!(r.rsc, Rsc::Created, "{:?}", r.pc);
    assert_eq!(r.pc.unwrap()["m2m:ae"]["aei"], "Crawdev");
    // The association is now bound to Crawdev: another originator is not authenticated.
    let r = http
        .send(&RequestPrimitive::new(
            Operation::Retrieve,
            "cb/rawdev",
            Some("Cother"),
            "2",
        ))
        .await
        .unwrap();
    assert_eq!(r.rsc, Rsc::OriginatorNotAuthenticated);
    let r = http
        .send(&RequestPrimitive::new(
            Operation::Retrieve,
            "cb/rawdev",
            Some("Crawdev"),
            "3",
        ))
        .await
        .unwrap();
    assert_eq!(r.rsc, Rsc::Ok);
    // A key the CSE was not configured with fails the handshake.
    let e = TlsClient::new(client(&stranger))
        .unwrap()
        .connect("127.0.0.1", port, Some(SNI))
        .await;
    assert!(e.is_err());
}
