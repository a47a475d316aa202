//! Shared helpers for the engine tests: a CSE on an in-memory or file store, security contexts,
//! request builders.
#![allow(dead_code)]

use m2msec_core::clock::Clock;
use m2msec_core::ids::{AeId, CredentialId, CseId, KpsaId};
use m2msec_cse::{
    Association, BoundIdentity, CredentialKind, Cse, CseConfig, CseType, Operation,
    RequestPrimitive, ResponsePrimitive, Rsc, SecurityContext, SqliteStore,
};
use serde_json::{json, Value};

/// Fixed clock: 2027-01-15T08:00:00Z.
pub const NOW: i64 = 1_800_000_000;

pub fn config() -> CseConfig {
    CseConfig {
        sp: "sp.example".parse().unwrap(),
        cse_id: "/cse-in".parse().unwrap(),
        cb_rn: "cb".into(),
        cse_type: CseType::In,
        poa: vec!["https://cse.sp.example:8443".into()],
    }
}

pub fn cse() -> Cse<SqliteStore> {
    Cse::with_clock(
        config(),
        SqliteStore::open_in_memory().unwrap(),
        Clock::fixed(NOW),
    )
    .unwrap()
}

/// A PSK association bound only to its Credential-ID `12-<kpsa>` (TS-0003 §8.2.2.1).
pub fn psk(kpsa: &str) -> SecurityContext {
    let id: KpsaId = kpsa.parse().unwrap();
    SecurityContext::Association(Association {
        credential_kind: CredentialKind::Psk,
        credential_id: CredentialId::for_kpsa(&id),
        bound: None,
    })
}

/// A PSK association configured with IdA = this AE-ID.
pub fn psk_bound_ae(kpsa: &str, ae: &str) -> SecurityContext {
    let id: KpsaId = kpsa.parse().unwrap();
    let ae: AeId = ae.parse().unwrap();
    SecurityContext::Association(Association {
        credential_kind: CredentialKind::Psk,
        credential_id: CredentialId::for_kpsa(&id),
        bound: Some(BoundIdentity::Ae(vec![ae])),
    })
}

/// An association whose registree is the CSE `cse` (configured CSE-ID, TS-0003 §8.2.2.1).
pub fn cse_sa(kpsa: &str, cse: &str) -> SecurityContext {
    let id: KpsaId = kpsa.parse().unwrap();
    let c: CseId = cse.parse().unwrap();
    SecurityContext::Association(Association {
        credential_kind: CredentialKind::Psk,
        credential_id: CredentialId::for_kpsa(&id),
        bound: Some(BoundIdentity::Cse(c)),
    })
}

pub fn plain() -> SecurityContext {
    SecurityContext::None
}

pub fn req(op: Operation, to: &str, fr: Option<&str>) -> RequestPrimitive {
    RequestPrimitive::new(op, to, fr, "rq-1")
}

pub fn create(to: &str, fr: Option<&str>, ty: u64, pc: Value) -> RequestPrimitive {
    req(Operation::Create, to, fr).with_ty(ty).with_pc(pc)
}

pub fn ae_body(api: &str) -> Value {
    json!({"m2m:ae": {"api": api, "rr": false, "srv": ["3"]}})
}

/// Registers an AE and returns its AE-ID-Stem.
pub fn register(cse: &mut Cse<SqliteStore>, sec: &SecurityContext, from: Option<&str>) -> String {
    let r = cse.handle(sec, create("cb", from, 2, ae_body("Nsensor")));
    assert_eq!(r.rsc, Rsc::Created, "{:?}", r.pc);
    r.pc.as_ref().unwrap()["m2m:ae"]["aei"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Registers a remote CSE over its association (TS-0004 §7.4.4.2.1).
pub fn register_cse(cse: &mut Cse<SqliteStore>, sec: &SecurityContext, csi: &str) {
    let r = cse.handle(
        sec,
        create(
            "cb",
            Some(csi),
            16,
            json!({"m2m:csr": {"csi": csi, "cb": format!("{csi}/cb"), "rr": true, "cst": 2}}),
        ),
    );
    assert_eq!(r.rsc, Rsc::Created, "{:?}", r.pc);
}

pub fn attr<'a>(r: &'a ResponsePrimitive, root: &str, k: &str) -> &'a Value {
    &r.pc.as_ref().unwrap()[root][k]
}
