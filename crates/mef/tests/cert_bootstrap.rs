//! The Certificate-Based RSPF (TS-0003 §8.3.2.2): the Enrolee and the MEF authenticate each
//! other with certificates (the MEF's FQDN certificate, the device's URI certificate) over the
//! 10.2.3 suites; Ke/KeID and the exchange are then those of §8.3.2.1. A device certificate
//! from another CA, or a device the MEF was not provisioned for, is refused.

#[path = "../../tls/tests/common/pki.rs"]
#[allow(dead_code)]
mod pki;

use std::sync::Arc;

use m2msec_bindings::{listen, ListenOptions};
use m2msec_core::kdf::SuidEncoding;
use m2msec_core::secret::Kpm;
use m2msec_mef::endpoint::CERT_DEVICE_PREFIX;
use m2msec_mef::enrolee::{enrol_with, EnrolParams};
use m2msec_mef::{Device, LocalPkg, MefConfig, MefEndpoint};
use m2msec_tls::{
    CertCredential, ClientAuth, ClientConfig, ExpectedName, ServerCertificates, TrustAnchors,
};
use pki::{leaf, Ca, LeafOpts, San};

const FQDN: &str = "mef.sp.example";
const DEVICE: &str = "urn:dev:ops:m2msec-meter-0001";

fn cred(l: &pki::Leaf) -> CertCredential {
    CertCredential::from_pem(&l.cert_pem(), &l.key_pem()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_bootstrap_enrols_the_device_its_certificate_names() {
    let ca = Ca::new("m2m bootstrap CA");
    let mef_leaf = leaf(&ca, &[San::Dns(FQDN)], LeafOpts::default());
    let dir = tempfile::tempdir().unwrap();
    let (ep, mut tls) = MefEndpoint::new(
        MefConfig {
            fqdn: FQDN.parse().unwrap(),
            ibc: true,
            retry_duration: "PT1H".parse().unwrap(),
            suid_encoding: SuidEncoding::AsciiDecimal,
            max_registration_secs: 3600,
            legacy_derivation: false,
        },
        dir.path(),
        Arc::new(LocalPkg::generate()),
        vec![],
    )
    .unwrap();
    let mut certs = ServerCertificates::new();
    certs.set_default(cred(&mef_leaf));
    tls.certificates = Some(certs);
    tls.suites.ecdhe_ecdsa = true;
    tls.client_auth = Some(ClientAuth {
        anchors: TrustAnchors::from_pem(&ca.pem()).unwrap(),
        allowed: vec![],
    });
    ep.with_store(|s| {
        s.add_device(
            &Device {
                kpm_id: format!("{CERT_DEVICE_PREFIX}{DEVICE}"),
                enrolee_id: "Cmeter1".parse().unwrap(),
                targets: vec![],
                enrolment_secs: 600,
                created: 0,
                revoked: None,
            },
            // Never used: PSK handshakes under a cert: identity are refused.
            &Kpm::from_bytes(&[0x5a; 32]).unwrap(),
        )
    })
    .unwrap();
    let listening = listen(ep.clone(), &tls, ListenOptions::loopback())
        .await
        .unwrap();
    let port = listening.tls_addr.unwrap().port();

    let params = |id1: &str| EnrolParams {
        transport: Default::default(),
        host: "127.0.0.1".into(),
        port,
        kpm_id: format!("cert@{FQDN}").parse().unwrap(),
        kpm: Kpm::from_bytes(&[0; 16]).unwrap(),
        id1: id1.parse().unwrap(),
        targets: vec![],
        admin_fqdn: "admin.sp.example".parse().unwrap(),
        suid_encoding: SuidEncoding::AsciiDecimal,
    };
    let client = |l: &pki::Leaf, anchors: &Ca| {
        ClientConfig::certificate(
            TrustAnchors::from_pem(&anchors.pem()).unwrap(),
            ExpectedName::Dns(FQDN.into()),
            Some(cred(l)),
        )
    };
    let dev_leaf = leaf(&ca, &[San::Uri(DEVICE)], LeafOpts::default());
    let out = enrol_with(&params("Cmeter1"), client(&dev_leaf, &ca))
        .await
        .unwrap();
    assert!(out.summary.ke_id.to_string().ends_with("@mef.sp.example"));
    assert!(out.summary.ibc_id.unwrap().ends_with("|Cmeter1"));
    let e = ep
        .with_store(|s| s.enrolment_of(&format!("{CERT_DEVICE_PREFIX}{DEVICE}")))
        .unwrap()
        .unwrap();
    assert_eq!(e.ke_id, out.summary.ke_id);

    // A certificate for a device the MEF does not know: the session is refused.
    let stranger = leaf(
        &ca,
        &[San::Uri("urn:dev:ops:stranger")],
        LeafOpts::default(),
    );
    assert!(enrol_with(&params("Cmeter1"), client(&stranger, &ca))
        .await
        .is_err());
    // A device certificate from another CA: the handshake fails.
    let other_ca = Ca::new("other CA");
    let forged = leaf(&other_ca, &[San::Uri(DEVICE)], LeafOpts::default());
    assert!(enrol_with(&params("Cmeter1"), client(&forged, &ca))
        .await
        .is_err());
    // The MEF's certificate must carry its FQDN: a client expecting another name refuses it.
    let wrong_name = ClientConfig::certificate(
        TrustAnchors::from_pem(&ca.pem()).unwrap(),
        ExpectedName::Dns("other.sp.example".into()),
        Some(cred(&dev_leaf)),
    );
    assert!(enrol_with(&params("Cmeter1"), wrong_name).await.is_err());
}
