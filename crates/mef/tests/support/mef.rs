//! A MEF on loopback for tests, shared by `crates/mef/tests/enrolment.rs` and the CSE
//! service's `crates/cse-service/tests/mef_source.rs` (included with `#[path]`): one IN-CSE
//! (`CSE`) and one other CSE (`OTHER`) as target clients, three devices `dev0..dev2`.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;

use m2msec_bindings::client::HttpClient;
use m2msec_bindings::{listen, ListenOptions, Listening};
use m2msec_core::duration::XsDuration;
use m2msec_core::kdf::SuidEncoding;
use m2msec_core::secret::Kpm;
use m2msec_keystore::SecureEnvironment;
use m2msec_mef::enrolee::EnrolParams;
use m2msec_mef::store::Device;
use m2msec_mef::{LocalPkg, MefConfig, MefEndpoint, TargetClient};
use m2msec_proto::{Operation, RequestPrimitive};
use m2msec_tls::{ClientConfig, Psk, PskIdentity, TlsClient};

pub const FQDN: &str = "mef.sp.example";
pub const CSE: &str = "//sp.example/cse-in";
pub const OTHER: &str = "//sp.example/cse-other";

pub struct Mef {
    pub addr: SocketAddr,
    pub coap: SocketAddr,
    pub ep: Arc<MefEndpoint>,
    pub _dir: tempfile::TempDir,
    pub _listening: Listening<MefEndpoint>,
}

pub async fn start_mef() -> Mef {
    start_mef_with_clock(m2msec_mef::clock::Clock::system()).await
}

pub async fn start_mef_with_clock(clock: m2msec_mef::endpoint::Clock) -> Mef {
    start_mef_full(clock, false).await
}

pub async fn start_mef_full(clock: m2msec_mef::endpoint::Clock, legacy: bool) -> Mef {
    start_mef_pkg(clock, legacy, Arc::new(LocalPkg::generate())).await
}

pub async fn start_mef_pkg(
    clock: m2msec_mef::endpoint::Clock,
    legacy: bool,
    pkg: Arc<dyn m2msec_mef::Pkg>,
) -> Mef {
    start_mef_in(clock, legacy, pkg, &SecureEnvironment::Files).await
}

/// A MEF whose store seals its records in the secure environment `se`.
pub async fn start_mef_in(
    clock: m2msec_mef::endpoint::Clock,
    legacy: bool,
    pkg: Arc<dyn m2msec_mef::Pkg>,
    se: &SecureEnvironment,
) -> Mef {
    let dir = tempfile::tempdir().unwrap();
    let cfg = MefConfig {
        fqdn: FQDN.parse().unwrap(),
        ibc: true,
        retry_duration: "PT1H".parse::<XsDuration>().unwrap(),
        suid_encoding: SuidEncoding::AsciiDecimal,
        max_registration_secs: 86_400,
        legacy_derivation: legacy,
    };
    let targets = vec![
        TargetClient {
            psk_identity: PskIdentity::new("cse-in@mef.sp.example").unwrap(),
            key: Psk::new(&[0x11; 32]).unwrap(),
            client_id: CSE.parse().unwrap(),
        },
        TargetClient {
            psk_identity: PskIdentity::new("cse-other@mef.sp.example").unwrap(),
            key: Psk::new(&[0x22; 32]).unwrap(),
            client_id: OTHER.parse().unwrap(),
        },
    ];
    let (ep, tls) =
        MefEndpoint::with_environment(cfg, dir.path(), se, pkg, targets, clock).unwrap();
    for i in 0..3 {
        let d = Device {
            kpm_id: format!("dev{i}@{FQDN}"),
            enrolee_id: format!("Cdev{i}").parse().unwrap(),
            targets: vec![CSE.parse().unwrap()],
            enrolment_secs: 3600,
            created: 0,
            revoked: None,
        };
        ep.with_store(|s| s.add_device(&d, &Kpm::from_bytes(&[i as u8 + 1; 32]).unwrap()))
            .unwrap();
    }
    let opts = ListenOptions::loopback().with_coap(
        "127.0.0.1:0".parse().unwrap(),
        m2msec_tls::DtlsOptions::default(),
    );
    let listening = listen(ep.clone(), &tls, opts).await.unwrap();
    let addr = listening.tls_addr.unwrap();
    let coap_addr = listening.coap_addr.unwrap();
    Mef {
        addr,
        coap: coap_addr,
        ep,
        _dir: dir,
        _listening: listening,
    }
}

pub fn params(addr: SocketAddr, i: u8) -> EnrolParams {
    EnrolParams {
        transport: Default::default(),
        host: "127.0.0.1".into(),
        port: addr.port(),
        kpm_id: format!("dev{i}@{FQDN}").parse().unwrap(),
        kpm: Kpm::from_bytes(&[i + 1; 32]).unwrap(),
        id1: format!("Cdev{i}").parse().unwrap(),
        targets: vec![CSE.parse().unwrap()],
        admin_fqdn: "admin.sp.example".parse().unwrap(),
        suid_encoding: SuidEncoding::AsciiDecimal,
    }
}

pub async fn target_client(addr: SocketAddr, identity: &str, key: u8) -> HttpClient {
    let c = TlsClient::new(ClientConfig::psk(
        PskIdentity::new(identity).unwrap(),
        Psk::new(&[key; 32]).unwrap(),
    ))
    .unwrap();
    let ch = c
        .connect("127.0.0.1", addr.port(), Some(FQDN))
        .await
        .unwrap();
    HttpClient::new(ch, FQDN).await.unwrap()
}

pub fn get(to: &str, from: &str) -> RequestPrimitive {
    RequestPrimitive::new(Operation::Retrieve, to, Some(from), "t1")
}

pub fn add_device(mef: &Mef, kpm_id: &str, enrolee_id: &str, targets: &[&str]) {
    let d = Device {
        kpm_id: kpm_id.into(),
        enrolee_id: enrolee_id.parse().unwrap(),
        targets: targets.iter().map(|t| t.parse().unwrap()).collect(),
        enrolment_secs: 3600,
        created: 0,
        revoked: None,
    };
    mef.ep
        .with_store(|s| s.add_device(&d, &Kpm::from_bytes(&[9; 32]).unwrap()))
        .unwrap();
}
