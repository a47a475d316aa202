//! The enrolment exchange end to end on loopback: TLS-PSK bootstrap with Kpm, Client
//! Registration, MEF Client Commands, IBC enrolment, commit and close; then an Enrolment
//! Target fetching the device's key with `/fetchCredentials`, MEF Key Registration and
//! Retrieval with targetIDs authorisation; the CSE-side key source ([`MefKeySource`]) against
//! that MEF: Enrolee-ID reservations, the change feed, and its bounds on lookups (issue 9).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use m2msec_bindings::client::HttpClient;
use m2msec_bindings::service::{RemoteKeySource, RemoteRevocations};
use m2msec_bindings::{Limits, Listeners, Server};
use m2msec_core::duration::XsDuration;
use m2msec_core::eccsi::{verify, Kpak, Signature};
use m2msec_core::export::ExporterLabel;
use m2msec_core::kdf::SuidEncoding;
use m2msec_core::secret::Kpm;
use m2msec_core::secret::UsageConstrainedKey;
use m2msec_cse::{Operation, RequestPrimitive, Rsc};
use m2msec_keystore::SecureEnvironment;
use m2msec_mef::enrolee::{enrol, target_key, EnrolParams, Keystore};
use m2msec_mef::ibc::validate_ibc;
use m2msec_mef::store::Device;
use m2msec_mef::target::{FetchError, FetchLimits, MefKeySource, MefLink};
use m2msec_mef::wire::{self, FetchCredentialsResponse, KeyReg, KeyRegRequest};
use m2msec_mef::{LocalPkg, MefConfig, MefEndpoint, TargetClient};
use m2msec_tls::{ClientConfig, Psk, PskIdentity, TlsClient};

const FQDN: &str = "mef.sp.example";
const CSE: &str = "//sp.example/cse-in";
const OTHER: &str = "//sp.example/cse-other";

struct Mef {
    addr: SocketAddr,
    coap: SocketAddr,
    ep: Arc<MefEndpoint>,
    _dir: tempfile::TempDir,
}

async fn start_mef() -> Mef {
    start_mef_with_clock(Arc::new(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    }))
    .await
}

async fn start_mef_with_clock(clock: m2msec_mef::endpoint::Clock) -> Mef {
    start_mef_full(clock, false).await
}

async fn start_mef_full(clock: m2msec_mef::endpoint::Clock, legacy: bool) -> Mef {
    start_mef_pkg(clock, legacy, Arc::new(LocalPkg::generate())).await
}

async fn start_mef_pkg(
    clock: m2msec_mef::endpoint::Clock,
    legacy: bool,
    pkg: Arc<dyn m2msec_mef::Pkg>,
) -> Mef {
    start_mef_in(clock, legacy, pkg, &SecureEnvironment::Files).await
}

async fn start_mef_in(
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
            client_id: CSE.into(),
        },
        TargetClient {
            psk_identity: PskIdentity::new("cse-other@mef.sp.example").unwrap(),
            key: Psk::new(&[0x22; 32]).unwrap(),
            client_id: OTHER.into(),
        },
    ];
    let (ep, tls) =
        MefEndpoint::with_environment(cfg, dir.path(), se, pkg, targets, clock).unwrap();
    for i in 0..3 {
        let d = Device {
            kpm_id: format!("dev{i}@{FQDN}"),
            enrolee_id: format!("Cdev{i}"),
            targets: vec![CSE.into()],
            enrolment_secs: 3600,
            created: 0,
            revoked: None,
        };
        ep.with_store(|s| s.add_device(&d, &Kpm::from_bytes(&[i as u8 + 1; 32]).unwrap()))
            .unwrap();
    }
    let server = Server::with_endpoint(
        Listeners {
            tls_addr: "127.0.0.1:0".parse().unwrap(),
            plain_addr: None,
            limits: Limits::default(),
        },
        &tls,
        ep.clone(),
    )
    .await
    .unwrap();
    let addr = server.tls_addr().unwrap();
    tokio::spawn(server.serve());
    let coap = m2msec_bindings::CoapServer::bind(
        "127.0.0.1:0".parse().unwrap(),
        &tls,
        m2msec_tls::DtlsOptions::default(),
        Limits::default(),
        ep.clone(),
    )
    .await
    .unwrap();
    let coap_addr = coap.local_addr();
    tokio::spawn(coap.serve());
    Mef {
        addr,
        coap: coap_addr,
        ep,
        _dir: dir,
    }
}

fn params(addr: SocketAddr, i: u8) -> EnrolParams {
    EnrolParams {
        transport: Default::default(),
        host: "127.0.0.1".into(),
        port: addr.port(),
        kpm_id: format!("dev{i}@{FQDN}").parse().unwrap(),
        kpm: Kpm::from_bytes(&[i + 1; 32]).unwrap(),
        id1: format!("Cdev{i}"),
        targets: vec![CSE.into()],
        admin_fqdn: "admin.sp.example".into(),
        suid_encoding: SuidEncoding::AsciiDecimal,
    }
}

async fn target_client(addr: SocketAddr, identity: &str, key: u8) -> HttpClient {
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

fn get(to: &str, from: &str) -> RequestPrimitive {
    RequestPrimitive::new(Operation::Retrieve, to, Some(from), "t1")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrol_then_target_fetches_the_same_key() {
    let mef = start_mef().await;
    let out = enrol(&params(mef.addr, 0)).await.unwrap();
    let s = &out.summary;
    assert!(s.ke_id.ends_with("@mef.sp.example"));
    assert_eq!(s.ke_id.split('@').next().unwrap().len(), 32);
    assert_eq!(s.enrolee_id, "Cdev0");
    assert_eq!(s.targets.len(), 1);
    assert_eq!(s.targets[0].target_id, CSE);
    assert_eq!(s.targets[0].suid, 22);
    // One MO_NODE (class 3, OK 20) and NO_MORE_COMMANDS (class 0).
    assert_eq!(
        s.commands.iter().map(|c| (c.1, c.2)).collect::<Vec<_>>(),
        vec![(3, 20), (0, 20)]
    );
    let id2 = s.ibc_id.clone().unwrap();
    assert!(id2.starts_with("mef.sp.example|"));
    assert!(id2.ends_with("|Cdev0"));
    let e = mef
        .ep
        .with_store(|st| st.enrolment_of("dev0@mef.sp.example"))
        .unwrap()
        .unwrap();
    assert_eq!(e.ke_id, s.ke_id);
    assert_eq!(e.id2.as_deref(), Some(id2.as_str()));

    // The Enrolment Target fetches the key (§8.3.2.1 step 6) and it equals the device's.
    let mut cse = target_client(mef.addr, "cse-in@mef.sp.example", 0x11).await;
    let r = cse
        .send(&get(&format!("fetchCredentials/{}/22", s.ke_id), CSE))
        .await
        .unwrap();
    assert_eq!(r.rsc, Rsc::Ok);
    let f: FetchCredentialsResponse = serde_json::from_value(r.pc.unwrap()).unwrap();
    assert!(f.status);
    assert_eq!(f.enrolee_id.as_deref(), Some("Cdev0"));
    assert_eq!(f.lifetime, Some(s.enrolment_expiry));
    let key = f.credential.unwrap().expose_secret().to_vec();
    let mine = target_key(&out.ke, 22, CSE, SuidEncoding::AsciiDecimal).unwrap();
    assert_eq!(UsageConstrainedKey::from_bytes(&key).unwrap(), mine);

    // Another CSE is not an Enrolment Target: Status=False and no key (BRIEF check 33).
    let mut other = target_client(mef.addr, "cse-other@mef.sp.example", 0x22).await;
    let r = other
        .send(&get(&format!("fetchCredentials/{}/22", s.ke_id), OTHER))
        .await
        .unwrap();
    assert_eq!(r.rsc, Rsc::OriginatorHasNoPrivilege);
    let f: FetchCredentialsResponse = serde_json::from_value(r.pc.unwrap()).unwrap();
    assert!(!f.status && f.credential.is_none() && f.error_string.is_some());
    // A target claiming another ID is refused (originator verification).
    let r = other
        .send(&get(&format!("fetchCredentials/{}/22", s.ke_id), CSE))
        .await
        .unwrap();
    assert_eq!(r.rsc, Rsc::OriginatorNotAuthenticated);
    // Unknown KeID.
    let r = cse
        .send(&get(
            &format!("fetchCredentials/{}@{FQDN}/22", "00".repeat(16)),
            CSE,
        ))
        .await
        .unwrap();
    assert_eq!(r.rsc, Rsc::NotFound);
}

/// Every long-term key of the MEF (device Kpm, enrolment Ke, the PKG's KSAK) and of the
/// device keystore sealed inside SoftHSM2 tokens (TS-0003 §6.3.1): enrolment, the target's
/// fetch, a restart with a fresh login, and no KEK file anywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrolment_with_every_key_sealed_in_a_token() {
    use m2msec_keystore::testing::new_token;
    let mef_cfg = new_token("mef-enrolment");
    let se = SecureEnvironment::open(&mef_cfg).unwrap();
    let clock: m2msec_mef::endpoint::Clock = Arc::new(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    });
    let mef = start_mef_in(clock, false, Arc::new(LocalPkg::generate()), &se).await;
    let out = enrol(&params(mef.addr, 0)).await.unwrap();
    let ke_id = out.summary.ke_id.clone();
    let mut cse = target_client(mef.addr, "cse-in@mef.sp.example", 0x11).await;
    let r = cse
        .send(&get(&format!("fetchCredentials/{ke_id}/22"), CSE))
        .await
        .unwrap();
    assert_eq!(r.rsc, Rsc::Ok);
    let f: FetchCredentialsResponse = serde_json::from_value(r.pc.unwrap()).unwrap();
    let key = f.credential.unwrap().expose_secret().to_vec();
    let mine = target_key(&out.ke, 22, CSE, SuidEncoding::AsciiDecimal).unwrap();
    assert_eq!(UsageConstrainedKey::from_bytes(&key).unwrap(), mine);
    let ksak = mef
        .ep
        .with_store(|s| s.ksak_or_init(|| zeroize::Zeroizing::new([9; 32])))
        .unwrap();
    assert!(!mef._dir.path().join("kek").exists(), "no KEK file");

    // A restart: a new process opens the token again (fresh session and login).
    let se2 = SecureEnvironment::open(&mef_cfg).unwrap();
    let mut s = m2msec_mef::MefStore::open_in(mef._dir.path(), &se2).unwrap();
    let (_, ke) = s.enrolment_by_ke_id(&ke_id).unwrap().unwrap();
    assert_eq!(ke, out.ke);
    assert_eq!(s.ksak_or_init(|| unreachable!()).unwrap(), ksak);
    // The same data directory with another token: refused, nothing generated over it.
    let other = SecureEnvironment::open(&new_token("mef-other")).unwrap();
    assert!(m2msec_mef::MefStore::open_in(mef._dir.path(), &other).is_err());
    // Nor does the files backend open it (no KEK file to create a key over).
    assert!(m2msec_mef::MefStore::open(mef._dir.path())
        .unwrap()
        .enrolment_by_ke_id(&ke_id)
        .is_err());

    // The device keystore in its own token.
    let dev_se = SecureEnvironment::open(&new_token("device-0")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ks = Keystore::open_in(&dir.path().join("ks"), &dev_se).unwrap();
    ks.save("dev0@mef.sp.example", "127.0.0.1", &out).unwrap();
    let (summary, ke, _) = ks.load().unwrap();
    assert_eq!((summary.ke_id, ke), (ke_id, out.ke.clone()));
    assert!(!dir.path().join("ks/kek").exists());
    // Without the token the keystore does not open.
    let e = Keystore::open(&dir.path().join("ks")).unwrap().load();
    assert!(e.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ibc_credentials_of_two_devices_verify_each_other() {
    let mef = start_mef().await;
    let a = enrol(&params(mef.addr, 1)).await.unwrap();
    let b = enrol(&params(mef.addr, 2)).await.unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let ca = a.ibc.as_ref().unwrap();
    let cb = b.ibc.as_ref().unwrap();
    let ka = validate_ibc(ca, now).unwrap();
    let msg = b"temperature=21.5";
    let sig = ka.sign(msg, &mut rand_core::OsRng);
    let kpak = Kpak::from_bytes(&hex::decode(&cb.kpak).unwrap()).unwrap();
    assert!(verify(
        &kpak,
        ca.id2.as_bytes(),
        msg,
        &Signature::from_bytes(&sig.to_bytes()).unwrap()
    )
    .is_ok());
    assert!(verify(&kpak, cb.id2.as_bytes(), msg, &sig).is_err());
    // An expired ID2 is refused.
    assert!(validate_ibc(ca, ca.expiry.to_unix() + 1).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_kpm_unknown_device_and_id_mismatch_are_refused() {
    let mef = start_mef().await;
    let mut p = params(mef.addr, 0);
    p.kpm = Kpm::from_bytes(&[0x99; 32]).unwrap();
    assert!(enrol(&p).await.is_err());
    let mut p = params(mef.addr, 0);
    p.kpm_id = format!("nobody@{FQDN}").parse().unwrap();
    assert!(enrol(&p).await.is_err());
    let mut p = params(mef.addr, 0);
    p.id1 = "Cmallory".into();
    let e = enrol(&p).await.unwrap_err().to_string();
    assert!(e.contains("4106"), "{e}");
    assert!(mef
        .ep
        .with_store(|s| s.enrolment_of("dev0@mef.sp.example"))
        .unwrap()
        .is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn re_enrolment_replaces_and_keystore_round_trips() {
    let mef = start_mef().await;
    let first = enrol(&params(mef.addr, 0)).await.unwrap();
    let second = enrol(&params(mef.addr, 0)).await.unwrap();
    assert_ne!(first.summary.ke_id, second.summary.ke_id);
    let (devices, enrolments, _) = mef.ep.with_store(|s| s.counts()).unwrap();
    assert_eq!((devices, enrolments), (3, 1));
    // The old KeID is gone at the MEF.
    let mut cse = target_client(mef.addr, "cse-in@mef.sp.example", 0x11).await;
    let r = cse
        .send(&get(
            &format!("fetchCredentials/{}/22", first.summary.ke_id),
            CSE,
        ))
        .await
        .unwrap();
    assert_eq!(r.rsc, Rsc::NotFound);

    let dir = tempfile::tempdir().unwrap();
    let ks = Keystore::open(&dir.path().join("ks")).unwrap();
    ks.save("dev0@mef.sp.example", "127.0.0.1", &second)
        .unwrap();
    let (summary, ke, ibc) = ks.load().unwrap();
    assert_eq!(summary.ke_id, second.summary.ke_id);
    assert_eq!(ke, second.ke);
    assert_eq!(ibc.unwrap().ssk, second.ibc.as_ref().unwrap().ssk);
    let text = std::fs::read_to_string(dir.path().join("ks/keystore.json")).unwrap();
    assert!(!text.contains(&hex::encode(second.ke.expose_secret())));
    assert!(!text.contains(second.ibc.as_ref().unwrap().ssk.to_hex().as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_registration_and_retrieval_with_target_ids() {
    let mef = start_mef().await;
    // A device session (Kpm) registers a key exported from its connection (BRIEF A10).
    let c = TlsClient::new(ClientConfig::psk(
        PskIdentity::new("dev1@mef.sp.example").unwrap(),
        Psk::new(&[2; 32]).unwrap(),
    ))
    .unwrap();
    let ch = c
        .connect("127.0.0.1", mef.addr.port(), Some(FQDN))
        .await
        .unwrap();
    let (kc, kc_id) = ch
        .export(ExporterLabel::Connection)
        .unwrap()
        .split_connection();
    let mut dev = HttpClient::new(ch, FQDN).await.unwrap();
    let mut req = RequestPrimitive::new(Operation::Create, "mef", Some("Cdev1"), "k1");
    req.ty = Some(wire::TY_MEF_KEY_REG);
    let mut body = KeyRegRequest {
        expiration_time: None,
        labels: None,
        admin_fqdn: "admin.sp.example".into(),
        suid: 22,
        target_ids: Some(vec![CSE.into(), OTHER.into()]),
        key_value: None,
    };
    req.pc = Some(wire::wrap("mefKeyReg", &body));
    // SAEF keys take exactly one target (BRIEF check 29).
    assert_eq!(dev.send(&req).await.unwrap().rsc, Rsc::BadRequest);
    body.target_ids = Some(vec![CSE.into()]);
    req.pc = Some(wire::wrap("mefKeyReg", &body));
    let r = dev.send(&req).await.unwrap();
    assert_eq!(r.rsc, Rsc::Created, "{:?}", r.pc);
    let reg: KeyReg = wire::unwrap("mefKeyReg", r.pc.as_ref()).unwrap();
    assert_eq!(reg.relative_key_id, hex::encode(kc_id));
    assert_eq!(reg.key_id, format!("{}@{FQDN}", hex::encode(kc_id)));
    assert!(reg.key_value.is_none());

    let to = format!("mef/keys/{}", reg.relative_key_id);
    let mut cse = target_client(mef.addr, "cse-in@mef.sp.example", 0x11).await;
    let r = cse.send(&get(&to, CSE)).await.unwrap();
    assert_eq!(r.rsc, Rsc::Ok);
    let got: KeyReg = wire::unwrap("mefKeyReg", r.pc.as_ref()).unwrap();
    let key = got.key_value.unwrap().expose_secret().to_vec();
    assert_eq!(&key[..], kc.expose_secret());
    // Not in targetIDs: no key (BRIEF check 30).
    let mut other = target_client(mef.addr, "cse-other@mef.sp.example", 0x22).await;
    let r = other.send(&get(&to, OTHER)).await.unwrap();
    assert_eq!(r.rsc, Rsc::OriginatorHasNoPrivilege);
    assert!(r.pc.unwrap().get("mefKeyReg").is_none());
    // The source de-registers it; then it is gone.
    let del = RequestPrimitive::new(Operation::Delete, &to, Some("Cdev1"), "k2");
    assert_eq!(dev.send(&del).await.unwrap().rsc, Rsc::Deleted);
    let r = cse.send(&get(&to, CSE)).await.unwrap();
    assert_eq!(r.rsc, Rsc::NotFound);
    drop(tokio::time::sleep(Duration::from_millis(1)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_enrolment_is_refused_and_re_enrolment_works() {
    use std::sync::atomic::{AtomicI64, Ordering};
    let base = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let offset = Arc::new(AtomicI64::new(0));
    let o = offset.clone();
    let mef = start_mef_with_clock(Arc::new(move || base + o.load(Ordering::SeqCst))).await;
    let first = enrol(&params(mef.addr, 0)).await.unwrap();
    let to = format!("fetchCredentials/{}/22", first.summary.ke_id);
    let mut cse = target_client(mef.addr, "cse-in@mef.sp.example", 0x11).await;
    assert_eq!(cse.send(&get(&to, CSE)).await.unwrap().rsc, Rsc::Ok);
    // One second past the Enrolment Expiry (3600 s): Ke and every key derived from it are
    // refused (TS-0003 §10.7).
    offset.store(3601, Ordering::SeqCst);
    let r = cse.send(&get(&to, CSE)).await.unwrap();
    assert_eq!(r.rsc, Rsc::OriginatorHasNoPrivilege);
    let f: FetchCredentialsResponse = serde_json::from_value(r.pc.unwrap()).unwrap();
    assert!(!f.status && f.credential.is_none());
    // The Enrolee re-runs the RSPF: a new Ke with a new expiry, served again. (Its IBC credential
    // carries the MEF clock's expiry, in the future of the real clock here.)
    let second = enrol(&params(mef.addr, 0)).await.unwrap();
    assert!(second.summary.enrolment_expiry.to_unix() > base + 3600);
    let to = format!("fetchCredentials/{}/22", second.summary.ke_id);
    assert_eq!(cse.send(&get(&to, CSE)).await.unwrap().rsc, Rsc::Ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrolment_over_coap_on_dtls() {
    let mef = start_mef().await;
    let mut p = params(mef.coap, 1);
    p.transport = m2msec_mef::enrolee::MefTransport::Coaps;
    let out = enrol(&p).await.unwrap();
    assert!(out.summary.ibc_id.as_deref().unwrap().ends_with("|Cdev1"));
    let e = mef
        .ep
        .with_store(|s| s.enrolment_of("dev1@mef.sp.example"))
        .unwrap()
        .unwrap();
    assert_eq!(e.ke_id, out.summary.ke_id);
    // The key the Target fetches over HTTP equals the one derived from the DTLS export.
    let mut cse = target_client(mef.addr, "cse-in@mef.sp.example", 0x11).await;
    let r = cse
        .send(&get(
            &format!("fetchCredentials/{}/22", out.summary.ke_id),
            CSE,
        ))
        .await
        .unwrap();
    let f: FetchCredentialsResponse = serde_json::from_value(r.pc.unwrap()).unwrap();
    let key = f.credential.unwrap().expose_secret().to_vec();
    let mine = target_key(&out.ke, 22, CSE, SuidEncoding::AsciiDecimal).unwrap();
    assert_eq!(UsageConstrainedKey::from_bytes(&key).unwrap(), mine);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_registration_retrieve_update_and_deregister() {
    let mef = start_mef().await;
    let out = enrol(&params(mef.addr, 2)).await.unwrap();
    let reg_to = format!("mef/{}", out.summary.reg_id);
    // A later session authenticated with the same Kpm manages the committed registration.
    let c = TlsClient::new(ClientConfig::psk(
        PskIdentity::new("dev2@mef.sp.example").unwrap(),
        Psk::new(&[3; 32]).unwrap(),
    ))
    .unwrap();
    let ch = c
        .connect("127.0.0.1", mef.addr.port(), Some(FQDN))
        .await
        .unwrap();
    let mut dev = HttpClient::new(ch, FQDN).await.unwrap();
    // Configuration Retrieval (§8.3.5.2.4).
    let r = dev.send(&get(&reg_to, "Cdev2")).await.unwrap();
    assert_eq!(r.rsc, Rsc::Ok, "{:?}", r.pc);
    let v = r.pc.unwrap();
    assert_eq!(v["mefClientReg"]["keID"], out.summary.ke_id.as_str());
    assert_eq!(v["mefClientReg"]["MEFClientID"], "Cdev2");
    // Registration Update (§8.3.5.2.5): the response carries only the fields sent.
    let mut upd = RequestPrimitive::new(Operation::Update, &reg_to, Some("Cdev2"), "u1");
    upd.pc = Some(serde_json::json!({"mefClientReg": {"labels": ["floor-3"]}}));
    let r = dev.send(&upd).await.unwrap();
    assert_eq!(r.rsc, Rsc::Updated, "{:?}", r.pc);
    assert_eq!(
        r.pc.unwrap(),
        serde_json::json!({"mefClientReg": {"labels": ["floor-3"]}})
    );
    let r = dev.send(&get(&reg_to, "Cdev2")).await.unwrap();
    assert_eq!(r.pc.unwrap()["mefClientReg"]["labels"][0], "floor-3");
    // Nothing to update, or an element that cannot be updated: BAD_REQUEST.
    upd.pc = Some(serde_json::json!({"mefClientReg": {"adminFQDN": "x.example"}}));
    assert_eq!(dev.send(&upd).await.unwrap().rsc, Rsc::BadRequest);
    // Another registration ID is not this device's.
    let r = dev
        .send(&get("mef/mcr-0000000000000000", "Cdev2"))
        .await
        .unwrap();
    assert_eq!(r.rsc, Rsc::NotFound);
    // De-registration (§8.3.5.2.6): the enrolment is gone, its keys with it.
    let del = RequestPrimitive::new(Operation::Delete, &reg_to, Some("Cdev2"), "d1");
    assert_eq!(dev.send(&del).await.unwrap().rsc, Rsc::Deleted);
    assert!(mef
        .ep
        .with_store(|s| s.enrolment_of("dev2@mef.sp.example"))
        .unwrap()
        .is_none());
    let mut cse = target_client(mef.addr, "cse-in@mef.sp.example", 0x11).await;
    let r = cse
        .send(&get(
            &format!("fetchCredentials/{}/22", out.summary.ke_id),
            CSE,
        ))
        .await
        .unwrap();
    assert_eq!(r.rsc, Rsc::NotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_derivation_serves_kpsa_of_10_3_3() {
    let mef = start_mef_full(
        Arc::new(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs() as i64
        }),
        true,
    )
    .await;
    let out = enrol(&params(mef.addr, 0)).await.unwrap();
    assert_eq!(
        out.summary.key_derivation,
        m2msec_mef::wire::KeyDerivation::Legacy
    );
    let mut cse = target_client(mef.addr, "cse-in@mef.sp.example", 0x11).await;
    let r = cse
        .send(&get(
            &format!("fetchCredentials/{}/22", out.summary.ke_id),
            CSE,
        ))
        .await
        .unwrap();
    let f: FetchCredentialsResponse = serde_json::from_value(r.pc.unwrap()).unwrap();
    let key = f.credential.unwrap().expose_secret().to_vec();
    // Kpsa = HMAC-SHA-256(Ke, "oneM2M Enrolment Key to Provisioned Secure Connection Key
    // derivation" || Enrolee-B-ID), with the target's absolute CSE-ID (BRIEF A8).
    let kpsa = m2msec_core::kdf::kpsa(&out.ke, &m2msec_core::kdf::KdfIdentifier::new(CSE).unwrap());
    assert_eq!(&key[..], kpsa.expose_secret());
    // The Enrolee derives the same key from the announced derivation.
    let mine = out.summary.key_derivation.derive(
        &out.ke,
        m2msec_core::suid::Suid::new(22).unwrap(),
        &m2msec_core::kdf::KdfIdentifier::new(CSE).unwrap(),
    );
    assert_eq!(mine.expose_secret(), kpsa.expose_secret());
}

/// A PKG that holds each extraction until two are waiting (at most 10 s): two exchanges of one
/// device reach their IBC step together, so both bootstrapped before either commits.
struct RendezvousPkg {
    inner: LocalPkg,
    waiting: std::sync::Mutex<usize>,
    cv: std::sync::Condvar,
}

impl m2msec_mef::Pkg for RendezvousPkg {
    fn kpak(&self) -> Kpak {
        m2msec_mef::Pkg::kpak(&self.inner)
    }

    fn extract(
        &self,
        id2: &[u8],
    ) -> Result<m2msec_core::eccsi::UserKeys, m2msec_core::eccsi::EccsiError> {
        let mut n = self.waiting.lock().unwrap();
        *n += 1;
        self.cv.notify_all();
        let _ = self
            .cv
            .wait_timeout_while(n, Duration::from_secs(10), |n| *n < 2)
            .unwrap();
        m2msec_mef::Pkg::extract(&self.inner, id2)
    }
}

/// Issue 9 item 9: two overlapping enrolments of one device. Exactly one reports success, the
/// other gets CONFLICT at the end of the exchange (so `m2msec enrol` exits 1 and writes no
/// keystore), and the KeID of the one that succeeded is the one the MEF serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_two_concurrent_enrolments_of_one_device_exactly_one_succeeds() {
    let pkg = Arc::new(RendezvousPkg {
        inner: LocalPkg::generate(),
        waiting: std::sync::Mutex::new(0),
        cv: std::sync::Condvar::new(),
    });
    let now = Arc::new(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    });
    let mef = start_mef_pkg(now, false, pkg).await;
    let (pa, pb) = (params(mef.addr, 0), params(mef.addr, 0));
    let (a, b) = tokio::join!(enrol(&pa), enrol(&pb));
    let (won, lost) = match (a, b) {
        (Ok(w), Err(l)) | (Err(l), Ok(w)) => (w, l),
        (Ok(a), Ok(b)) => panic!(
            "both enrolments reported success ({} and {})",
            a.summary.ke_id, b.summary.ke_id
        ),
        (Err(a), Err(b)) => panic!("both failed: {a}; {b}"),
    };
    match &lost {
        m2msec_mef::enrolee::EnrolError::Refused { step, rsc, .. } => {
            assert_eq!((*step, *rsc), ("end of exchange", Rsc::Conflict), "{lost}")
        }
        other => panic!("{other}"),
    }
    let e = mef
        .ep
        .with_store(|s| s.enrolment_of("dev0@mef.sp.example"))
        .unwrap()
        .unwrap();
    assert_eq!(e.ke_id, won.summary.ke_id);
    let mut cse = target_client(mef.addr, "cse-in@mef.sp.example", 0x11).await;
    let r = cse
        .send(&get(
            &format!("fetchCredentials/{}/22", won.summary.ke_id),
            CSE,
        ))
        .await
        .unwrap();
    assert_eq!(r.rsc, Rsc::Ok);
    // One after the other, a re-enrolment still replaces the previous one.
    let again = enrol(&params(mef.addr, 0)).await.unwrap();
    assert_ne!(again.summary.ke_id, won.summary.ke_id);
}

/// A [`MefKeySource`] for the in-process MEF, as the target client `identity` (key bytes all
/// `key`) with absolute ID `client_id`.
fn key_source(
    port: u16,
    identity: &str,
    key: u8,
    client_id: &str,
    limits: FetchLimits,
    poll: Duration,
) -> MefKeySource {
    MefKeySource::new(MefLink {
        host: "127.0.0.1".into(),
        port,
        fqdn: FQDN.parse().unwrap(),
        psk_identity: PskIdentity::new(identity).unwrap(),
        psk: Psk::new(&[key; 32]).unwrap(),
        cse_id: client_id.into(),
        suid: 22,
        timeout: Duration::from_secs(2),
        poll_interval: poll,
        limits,
    })
    .unwrap()
}

fn add_device(mef: &Mef, kpm_id: &str, enrolee_id: &str, targets: &[&str]) {
    let d = Device {
        kpm_id: kpm_id.into(),
        enrolee_id: enrolee_id.into(),
        targets: targets.iter().map(|t| t.to_string()).collect(),
        enrolment_secs: 3600,
        created: 0,
        revoked: None,
    };
    mef.ep
        .with_store(|s| s.add_device(&d, &Kpm::from_bytes(&[9; 32]).unwrap()))
        .unwrap();
}

/// Issue 9 item 1's hook: whether an AE-ID-Stem is the Enrolee-ID of a device provisioned for
/// the asking CSE, answered only to a target client and only for itself; a revocation at the
/// MEF withdraws a cached positive answer through the change feed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrolee_reservations_are_answered_for_the_asking_cse_only() {
    let mef = start_mef().await;
    add_device(&mef, "other@mef.sp.example", "Cother", &[OTHER]);
    add_device(
        &mef,
        "abs@mef.sp.example",
        "//sp.example/cse-in/Cabs",
        &[CSE],
    );
    add_device(&mef, "srel@mef.sp.example", "/Sfleet", &[CSE]);
    let poll = Duration::from_secs(3600);
    let src = key_source(
        mef.addr.port(),
        "cse-in@mef.sp.example",
        0x11,
        CSE,
        FetchLimits::default(),
        poll,
    );
    let other = key_source(
        mef.addr.port(),
        "cse-other@mef.sp.example",
        0x22,
        OTHER,
        FetchLimits::default(),
        poll,
    );
    assert_eq!(
        src.enrolee_reserved("Cdev0"),
        Ok(true),
        "provisioned, not enrolled yet"
    );
    assert_eq!(
        src.enrolee_reserved("Cabs"),
        Ok(true),
        "an absolute Enrolee-ID"
    );
    assert_eq!(
        src.enrolee_reserved("Sfleet"),
        Ok(true),
        "an S-type SP-relative one"
    );
    assert_eq!(src.enrolee_reserved("Cnobody"), Ok(false));
    assert_eq!(
        src.enrolee_reserved("Cother"),
        Ok(false),
        "a device of another target"
    );
    assert_eq!(other.enrolee_reserved("Cother"), Ok(true));
    assert_eq!(other.enrolee_reserved("Cdev0"), Ok(false));
    assert_eq!(src.enrolee_reserved("not a stem"), Ok(false));

    // Revoked at the MEF: the cached positive answer goes with the next poll of the feed.
    src.poll_now().unwrap();
    assert!(mef
        .ep
        .with_store(|s| s.revoke_device("dev0@mef.sp.example", 1))
        .unwrap());
    assert_eq!(src.enrolee_reserved("Cdev0"), Ok(true), "still cached");
    src.poll_now().unwrap();
    assert_eq!(src.enrolee_reserved("Cdev0"), Ok(false));

    // Only a configured target client may ask: a device's own session gets no answer.
    let c = TlsClient::new(ClientConfig::psk(
        PskIdentity::new("dev1@mef.sp.example").unwrap(),
        Psk::new(&[2; 32]).unwrap(),
    ))
    .unwrap();
    let ch = c
        .connect("127.0.0.1", mef.addr.port(), Some(FQDN))
        .await
        .unwrap();
    let mut dev = HttpClient::new(ch, FQDN).await.unwrap();
    for to in ["mef/enrolees/Cdev2", "mef/changes/head"] {
        let r = dev.send(&get(to, "Cdev1")).await.unwrap();
        assert_eq!(r.rsc, Rsc::NotFound, "{to}");
        assert!(r.pc.as_ref().map_or(true, |p| p.get("mefEnrolee").is_none()
            && p.get("mefChanges").is_none()));
    }
}

/// Issue 9 item 8 at the source: revocations, re-enrolments and de-registrations at the MEF
/// come out of the change feed as revoked KeIDs, once each; a cursor older than the feed keeps
/// reports that everything must go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_change_feed_reports_revoked_keids_to_the_key_source() {
    use std::sync::atomic::{AtomicI64, Ordering};
    let base = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let offset = Arc::new(AtomicI64::new(0));
    let o = offset.clone();
    let mef = start_mef_with_clock(Arc::new(move || base + o.load(Ordering::SeqCst))).await;
    let src = key_source(
        mef.addr.port(),
        "cse-in@mef.sp.example",
        0x11,
        CSE,
        FetchLimits::default(),
        Duration::from_secs(3600),
    );
    src.poll_now().unwrap();
    let a = enrol(&params(mef.addr, 0)).await.unwrap().summary.ke_id;
    let b = enrol(&params(mef.addr, 1)).await.unwrap().summary.ke_id;
    assert!(src.fetch(&a).is_some() && src.fetch(&b).is_some());
    // Another spelling of a KeID is not asked for (the CSE caches and revokes canonical ones).
    assert!(src.fetch(&a.to_uppercase()).is_none());
    src.poll_now().unwrap();
    assert_eq!(src.take_revoked(), RemoteRevocations::default());

    let a2 = enrol(&params(mef.addr, 0)).await.unwrap().summary.ke_id;
    assert!(mef
        .ep
        .with_store(|s| s.revoke_device("dev1@mef.sp.example", base))
        .unwrap());
    src.poll_now().unwrap();
    let r = src.take_revoked();
    assert!(!r.all);
    assert_eq!(r.identities, vec![a.clone(), b.clone()]);
    assert_eq!(src.take_revoked(), RemoteRevocations::default(), "once");
    assert!(src.fetch(&a2).is_some());

    // Two days later the rows this source has not read yet are pruned: it must drop everything.
    assert!(mef
        .ep
        .with_store(|s| s.deregister("dev0@mef.sp.example", base + 10))
        .unwrap());
    offset.store(2 * 86_400, Ordering::SeqCst);
    enrol(&params(mef.addr, 2)).await.unwrap();
    src.poll_now().unwrap();
    assert!(src.take_revoked().all);
}

/// Issue 9 item 7 at the source: with a MEF that accepts and never answers, lookups of unknown
/// identities beyond the in-flight bound are refused at once instead of each holding a thread
/// for the deadline, and after a timeout none is asked for a while; with a MEF that
/// answers, misses of never-seen identities stop at the bucket while a known device's key is
/// still retrieved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookups_of_unknown_keids_are_bounded() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let _held = std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in silent.incoming().take(64) {
            held.push(s);
        }
        std::thread::sleep(Duration::from_secs(30));
    });
    let limits = FetchLimits {
        max_in_flight: 2,
        max_in_flight_unseen: 1,
        ..FetchLimits::default()
    };
    let src = key_source(
        port,
        "cse-in@mef.sp.example",
        0x11,
        CSE,
        limits,
        Duration::from_secs(3600),
    );
    let ids: Vec<String> = (0..8).map(|i| format!("{:032x}@{FQDN}", i + 1)).collect();
    let times: Vec<Duration> = std::thread::scope(|s| {
        let hs: Vec<_> = ids
            .iter()
            .map(|id| {
                let src = &src;
                s.spawn(move || {
                    let t = std::time::Instant::now();
                    assert!(src.fetch(id).is_none());
                    t.elapsed()
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let slow = times
        .iter()
        .filter(|t| **t > Duration::from_millis(1000))
        .count();
    let fast = times
        .iter()
        .filter(|t| **t < Duration::from_millis(300))
        .count();
    assert_eq!((slow, fast), (1, 7), "{times:?}");
    // The MEF did not answer: for a while unseen identities are not asked for at all.
    let t = std::time::Instant::now();
    for id in &ids {
        assert!(src.fetch(id).is_none());
    }
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "{:?}",
        t.elapsed()
    );

    // A MEF that answers: a bucket of 3 misses, refilled very slowly.
    let mef = start_mef().await;
    let limits = FetchLimits {
        unseen_per_sec: 0.001,
        unseen_burst: 3.0,
        ..FetchLimits::default()
    };
    let src = key_source(
        mef.addr.port(),
        "cse-in@mef.sp.example",
        0x11,
        CSE,
        limits,
        Duration::from_secs(3600),
    );
    src.poll_now().unwrap();
    // A device enrolled now: the feed announces its KeID.
    let known = enrol(&params(mef.addr, 0)).await.unwrap().summary.ke_id;
    src.poll_now().unwrap();
    let unknown = |i: usize| -> m2msec_core::ids::KeId {
        format!("{:032x}@{FQDN}", 100 + i).parse().unwrap()
    };
    let outcome = |src: &MefKeySource, i: usize| match src.fetch_blocking(&unknown(i)) {
        Err(FetchError::Refused(rsc, _)) => rsc.as_u16(),
        Err(FetchError::Throttled(_)) => 0,
        other => panic!("{other:?}"),
    };
    let outcomes: Vec<u16> = (0..6).map(|i| outcome(&src, i)).collect();
    assert_eq!(outcomes, vec![4004, 4004, 4004, 0, 0, 0]);
    // The announced device's key still comes, the bucket empty.
    assert!(src.fetch(&known).is_some());

    // A retrieval that succeeds gives its token back: real devices do not drain the bucket.
    let limits = FetchLimits {
        unseen_burst: 1.0,
        ..limits
    };
    let fresh = key_source(
        mef.addr.port(),
        "cse-in@mef.sp.example",
        0x11,
        CSE,
        limits,
        Duration::from_secs(3600),
    );
    let other = enrol(&params(mef.addr, 1)).await.unwrap().summary.ke_id;
    assert!(fresh.fetch(&other).is_some());
    assert_eq!(outcome(&fresh, 10), 4004);
    assert_eq!(outcome(&fresh, 11), 0);
}
