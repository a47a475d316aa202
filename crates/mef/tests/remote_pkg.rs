//! The PKG as a separate service (seed 001, BRIEF A32): the MEF reaches it over TLS-PSK (both
//! ends authenticated), the credentials it hands out validate against the remote KPAK, and a
//! client the PKG does not know is refused.

use std::sync::Arc;
use std::time::Duration;

use m2msec_bindings::{listen, ListenOptions};
use m2msec_core::kdf::SuidEncoding;
use m2msec_core::secret::Kpm;
use m2msec_mef::enrolee::{enrol, EnrolParams};
use m2msec_mef::ibc::validate_ibc;
use m2msec_mef::pkg_service::{PkgClient, PkgEndpoint, PkgLink, RemotePkg};
use m2msec_mef::{Device, LocalPkg, MefConfig, MefEndpoint, Pkg};
use m2msec_tls::{Psk, PskIdentity};

fn link(port: u16, key: u8) -> PkgLink {
    PkgLink {
        host: "127.0.0.1".into(),
        port,
        fqdn: "pkg.sp.example".parse().unwrap(),
        psk_identity: PskIdentity::new("mef@pkg.sp.example").unwrap(),
        psk: Psk::new(&[key; 32]).unwrap(),
        timeout: Duration::from_secs(5),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrolment_with_a_remote_pkg() {
    let local = Arc::new(LocalPkg::generate());
    let (pkg_ep, pkg_tls) = PkgEndpoint::new(
        local.clone(),
        "pkg.sp.example".parse().unwrap(),
        &[PkgClient {
            psk_identity: PskIdentity::new("mef@pkg.sp.example").unwrap(),
            key: Psk::new(&[0x42; 32]).unwrap(),
        }],
    );
    let pkg_listening = listen(pkg_ep, &pkg_tls, ListenOptions::loopback())
        .await
        .unwrap();
    let pkg_port = pkg_listening.tls_addr.unwrap().port();

    // A MEF with the wrong key cannot use the PKG.
    let wrong = tokio::task::spawn_blocking(move || RemotePkg::connect(link(pkg_port, 0x43)))
        .await
        .unwrap();
    assert!(wrong.is_err());

    let remote = tokio::task::spawn_blocking(move || RemotePkg::connect(link(pkg_port, 0x42)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(remote.kpak(), local.kpak());

    let dir = tempfile::tempdir().unwrap();
    let (mef, tls) = MefEndpoint::new(
        MefConfig {
            fqdn: "mef.sp.example".parse().unwrap(),
            ibc: true,
            retry_duration: "PT1H".parse().unwrap(),
            suid_encoding: SuidEncoding::AsciiDecimal,
            max_registration_secs: 3600,
            legacy_derivation: false,
        },
        dir.path(),
        Arc::new(remote),
        vec![],
    )
    .unwrap();
    mef.with_store(|s| {
        s.add_device(
            &Device {
                kpm_id: "d@mef.sp.example".into(),
                enrolee_id: "Cd".parse().unwrap(),
                targets: vec![],
                enrolment_secs: 600,
                created: 0,
                revoked: None,
            },
            &Kpm::from_bytes(&[9; 32]).unwrap(),
        )
    })
    .unwrap();
    let listening = listen(mef, &tls, ListenOptions::loopback()).await.unwrap();
    let port = listening.tls_addr.unwrap().port();
    let out = enrol(&EnrolParams {
        transport: Default::default(),
        host: "127.0.0.1".into(),
        port,
        kpm_id: "d@mef.sp.example".parse().unwrap(),
        kpm: Kpm::from_bytes(&[9; 32]).unwrap(),
        id1: "Cd".parse().unwrap(),
        targets: vec![],
        admin_fqdn: "admin.sp.example".parse().unwrap(),
        suid_encoding: SuidEncoding::AsciiDecimal,
    })
    .await
    .unwrap();
    let cred = out.ibc.unwrap();
    assert_eq!(cred.kpak, local.kpak().to_hex());
    let now = m2msec_mef::clock::unix_now();
    validate_ibc(&cred, now).unwrap();
}
