//! The MEF's primitives on arbitrary bytes (TS-0003 §8.3; wire formats of `m2msec_mef::wire`):
//! the request parser, then an Enrolee session and a Target session of a real MEF endpoint (on a
//! store in a temporary directory) handling the request. No panic; every answer carries a status.
#![no_main]
use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use m2msec_bindings::{AssociationInfo, Endpoint};
use m2msec_core::export::{ExportedKeyingMaterial, ExporterLabel};
use m2msec_core::kdf::SuidEncoding;
use m2msec_core::secret::Kpm;
use m2msec_cse::RequestPrimitive;
use m2msec_mef::wire;
use m2msec_mef::{Device, LocalPkg, MefConfig, MefEndpoint, MefSession, TargetClient};
use m2msec_tls::{CredentialKind, Peer, Protocol, Psk, PskIdentity, Role};

struct Fixture {
    ep: Arc<MefEndpoint>,
    _dir: std::path::PathBuf,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("m2msec-fuzz-mef-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (ep, _tls) = MefEndpoint::new(
            MefConfig {
                fqdn: "mef.sp.example".parse().expect("FQDN"),
                ibc: true,
                retry_duration: "PT1H".parse().expect("duration"),
                suid_encoding: SuidEncoding::AsciiDecimal,
                max_registration_secs: 3600,
                legacy_derivation: false,
            },
            &dir,
            Arc::new(LocalPkg::generate()),
            vec![TargetClient {
                psk_identity: PskIdentity::new("cse@mef.sp.example").expect("identity"),
                key: Psk::new(&[1; 32]).expect("psk"),
                client_id: "//sp.example/cse-in".parse().expect("target"),
            }],
        )
        .expect("MEF");
        ep.with_store(|s| {
            s.add_device(
                &Device {
                    kpm_id: "d@mef.sp.example".into(),
                    enrolee_id: "Cd".parse().expect("enrolee"),
                    targets: vec!["//sp.example/cse-in".parse().expect("target")],
                    enrolment_secs: 3600,
                    created: 0,
                    revoked: None,
                },
                &Kpm::from_bytes(&[2; 32]).expect("kpm"),
            )
        })
        .expect("device");
        Fixture { ep, _dir: dir }
    })
}

fn session(ep: &MefEndpoint, identity: &str) -> Option<MefSession> {
    let peer = Peer {
        addr: "127.0.0.1:1".parse().expect("addr"),
        role: Role::Server,
        protocol: Protocol::Tls12,
        cipher: "TLS_PSK_WITH_AES_128_CBC_SHA256".into(),
        credential: CredentialKind::Psk,
        psk_identity: Some(PskIdentity::new(identity).ok()?),
        sni: Some("mef.sp.example".into()),
        bound_identity: None,
        subject_alt_names: vec![],
    };
    let exporter = |_: ExporterLabel| ExportedKeyingMaterial::from_bytes(&[7; 48]).ok();
    let info = AssociationInfo {
        peer: &peer,
        exporter: &exporter,
    };
    ep.open(Some(&info)).map(|o| o.session)
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let v: Option<serde_json::Value> = serde_json::from_slice(data).ok();
    let _ = wire::unwrap::<wire::ClientRegRequest>("mefClientReg", v.as_ref());
    let _ = wire::unwrap::<wire::KeyRegRequest>("mefKeyReg", v.as_ref());
    let _ = wire::unwrap::<wire::ClientCmd>("mefClientCmd", v.as_ref());
    let _ = wire::unwrap::<wire::IbcCredential>("ibcCred", v.as_ref());
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = m2msec_mef::ibc::id2_expiry(s);
    }
    let Ok(prim) = RequestPrimitive::from_json(data) else {
        return;
    };
    for identity in ["d@mef.sp.example", "cse@mef.sp.example"] {
        if let Some(s) = session(&f.ep, identity) {
            let h = f.ep.handle(&s, prim.clone());
            let _ = h.response.rsc.as_u16();
        }
    }
});
