//! An MN-CSE's routing decision (TS-0004 §7.3.2.6, §7.3.2.8) on arbitrary request primitives,
//! as its registrar or a device could send them: `To` in any addressing form, any `From`, over
//! the registrar's association and outside any. No panic; a request is either answered with a
//! status code or forwarded, and a forward that fails is answered too.
#![no_main]
use libfuzzer_sys::fuzz_target;
use m2msec_core::ids::{CredentialId, CseId, KpsaId};
use m2msec_cse::engine::Dispatch;
use m2msec_cse::{
    Association, BoundIdentity, CredentialKind, Cse, CseConfig, CseType, RequestPrimitive,
    SecurityContext, SqliteStore,
};

fuzz_target!(|data: &[u8]| {
    let Ok(req) = RequestPrimitive::from_json(data) else {
        return;
    };
    let cfg = CseConfig {
        sp: "sp.example".parse().expect("SP-ID"),
        cse_id: "/cse-mn".parse().expect("CSE-ID"),
        cb_rn: "cb".into(),
        cse_type: CseType::Mn,
        poa: vec![],
    };
    let store = SqliteStore::open_in_memory().expect("in-memory store");
    let mut cse = Cse::new(cfg, store).expect("CSE");
    let registrar: CseId = "/cse-in".parse().expect("CSE-ID");
    cse.set_registrar_id(&registrar);
    let kpsa: KpsaId = "in@mef.sp.example".parse().expect("KpsaID");
    let from_registrar = SecurityContext::Association(Association {
        credential_kind: CredentialKind::Psk,
        credential_id: CredentialId::for_kpsa(&kpsa),
        bound: Some(BoundIdentity::Cse(registrar)),
    });
    for sec in [SecurityContext::None, from_registrar] {
        match cse.dispatch(&sec, req.clone()) {
            Dispatch::Reply(r) => {
                let _ = r.rsc.as_u16();
            }
            Dispatch::Forward(f) => {
                let r = cse.forward_ended(&f, Err("unreachable".into()));
                let _ = r.rsc.as_u16();
            }
        }
    }
});
