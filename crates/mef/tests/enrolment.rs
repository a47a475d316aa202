//! The enrolment exchange end to end on loopback: TLS-PSK bootstrap with Kpm, Client
//! Registration, MEF Client Commands, IBC enrolment, commit and close; then an Enrolment
//! Target fetching the device's key with `/fetchCredentials`, MEF Key Registration and
//! Retrieval with targetIDs authorisation. The CSE-side key source against this MEF is tested
//! in `crates/cse-service/tests/mef_source.rs`.

use std::sync::Arc;
use std::time::Duration;

use m2msec_bindings::client::HttpClient;
use m2msec_core::eccsi::{verify, Kpak, Signature};
use m2msec_core::export::ExporterLabel;
use m2msec_core::kdf::SuidEncoding;
use m2msec_core::secret::Kpm;
use m2msec_core::secret::UsageConstrainedKey;
use m2msec_keystore::SecureEnvironment;
use m2msec_mef::enrolee::{enrol, target_key, Keystore};
use m2msec_mef::ibc::validate_ibc;
use m2msec_mef::wire::{self, FetchCredentialsResponse, KeyReg, KeyRegRequest};
use m2msec_mef::LocalPkg;
use m2msec_proto::{Operation, RequestPrimitive, Rsc};
use m2msec_tls::{ClientConfig, Psk, PskIdentity, TlsClient};

#[path = "support/mef.rs"]
mod mef_support;
use mef_support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrol_then_target_fetches_the_same_key() {
    let mef = start_mef().await;
    let out = enrol(&params(mef.addr, 0)).await.unwrap();
    let s = &out.summary;
    assert_eq!(s.ke_id.mef_fqdn().as_str(), "mef.sp.example");
    assert_eq!(s.enrolee_id.to_string(), "Cdev0");
    assert_eq!(s.targets.len(), 1);
    assert_eq!(s.targets[0].target_id.to_string(), CSE);
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
    assert_eq!(
        f.enrolee_id.map(|e| e.to_string()).as_deref(),
        Some("Cdev0")
    );
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
    let clock = m2msec_core::clock::Clock::system();
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
    let now = m2msec_mef::clock::unix_now();
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
    p.id1 = "Cmallory".parse().unwrap();
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
        admin_fqdn: "admin.sp.example".parse().unwrap(),
        suid: 22,
        target_ids: Some(vec![CSE.parse().unwrap(), OTHER.parse().unwrap()]),
        key_value: None,
    };
    req.pc = Some(wire::wrap("mefKeyReg", &body));
    // SAEF keys take exactly one target (BRIEF check 29).
    assert_eq!(dev.send(&req).await.unwrap().rsc, Rsc::BadRequest);
    body.target_ids = Some(vec![CSE.parse().unwrap()]);
    req.pc = Some(wire::wrap("mefKeyReg", &body));
    let r = dev.send(&req).await.unwrap();
    assert_eq!(r.rsc, Rsc::Created, "{:?}", r.pc);
    let reg: KeyReg = wire::unwrap("mefKeyReg", r.pc.as_ref()).unwrap();
    assert_eq!(reg.relative_key_id.as_str(), hex::encode(kc_id));
    assert_eq!(
        reg.key_id.to_string(),
        format!("{}@{FQDN}", hex::encode(kc_id))
    );
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

/// Issue 10 item 6: an identifier is parsed where it enters. A request whose identifier does not
/// parse as its `core::ids` type is refused with BAD_REQUEST (4000) and nothing reaches the
/// store. Before the typed fields, a targetID `//sp.example` (it starts with `//`) and an
/// adminFQDN `not a host` were stored as they came, and a malformed enroleeID drew 4103.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_identifiers_on_the_wire_are_refused_with_4000_before_the_store() {
    let mef = start_mef().await;
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
    let key_reg = |body: serde_json::Value| {
        let mut req = RequestPrimitive::new(Operation::Create, "mef", Some("Cdev1"), "k");
        req.ty = Some(wire::TY_MEF_KEY_REG);
        req.pc = Some(serde_json::json!({ "mefKeyReg": body }));
        req
    };
    for body in [
        serde_json::json!({"adminFQDN": "admin.sp.example", "SUID": 22, "targetIDs": ["//sp.example"]}),
        serde_json::json!({"adminFQDN": "admin.sp.example", "SUID": 22, "targetIDs": ["//sp.example/cse in"]}),
        serde_json::json!({"adminFQDN": "admin.sp.example", "SUID": 22, "targetIDs": ["//sp.example/cse-in/dev1"]}),
        serde_json::json!({"adminFQDN": "not a host", "SUID": 22, "targetIDs": [CSE]}),
        serde_json::json!({"adminFQDN": "10.0.0.1", "SUID": 22, "targetIDs": [CSE]}),
    ] {
        let r = dev.send(&key_reg(body.clone())).await.unwrap();
        assert_eq!(r.rsc, Rsc::BadRequest, "{body}: {:?}", r.pc);
    }
    let reg = |body: serde_json::Value| {
        let mut req = RequestPrimitive::new(Operation::Create, "mef", Some("Cdev1"), "r");
        req.ty = Some(wire::TY_MEF_CLIENT_REG);
        req.pc = Some(serde_json::json!({ "mefClientReg": body }));
        req
    };
    for body in [
        serde_json::json!({"adminFQDN": "admin.sp.example", "enroleeID": "Cdev 1"}),
        serde_json::json!({"adminFQDN": "admin.sp.example", "enroleeID": "//sp.example"}),
        serde_json::json!({"adminFQDN": "-admin.sp.example"}),
    ] {
        let r = dev.send(&reg(body.clone())).await.unwrap();
        assert_eq!(r.rsc, Rsc::BadRequest, "{body}: {:?}", r.pc);
    }
    // A target asking for a key registration by a path that is no RelativeKeyID.
    let mut cse = target_client(mef.addr, "cse-in@mef.sp.example", 0x11).await;
    let r = cse.send(&get("mef/keys/a:b", CSE)).await.unwrap();
    assert_eq!(r.rsc, Rsc::BadRequest);
    // Nothing was stored; the same session still registers a well-formed key.
    assert_eq!(mef.ep.with_store(|s| s.counts()).unwrap().2, 0);
    let body = serde_json::json!({"adminFQDN": "admin.sp.example", "SUID": 22, "targetIDs": [CSE]});
    let r = dev.send(&key_reg(body)).await.unwrap();
    assert_eq!(r.rsc, Rsc::Created, "{:?}", r.pc);
    assert_eq!(mef.ep.with_store(|s| s.counts()).unwrap().2, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_enrolment_is_refused_and_re_enrolment_works() {
    let hand = m2msec_mef::clock::ManualClock::starting_now();
    let base = hand.now();
    let mef = start_mef_with_clock(hand.clock()).await;
    let first = enrol(&params(mef.addr, 0)).await.unwrap();
    let to = format!("fetchCredentials/{}/22", first.summary.ke_id);
    let mut cse = target_client(mef.addr, "cse-in@mef.sp.example", 0x11).await;
    assert_eq!(cse.send(&get(&to, CSE)).await.unwrap().rsc, Rsc::Ok);
    // One second past the Enrolment Expiry (3600 s): Ke and every key derived from it are
    // refused (TS-0003 §10.7).
    hand.set(base + 3601);
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
    assert_eq!(v["mefClientReg"]["keID"], out.summary.ke_id.to_string());
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
    let mef = start_mef_full(m2msec_mef::clock::Clock::system(), true).await;
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
    let mef = start_mef_pkg(m2msec_mef::clock::Clock::system(), false, pkg).await;
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
