//! The CSE's request-primitive parser and engine on arbitrary bytes: no panic, and every answer is
//! a response primitive with a status code (TS-0004 §7.3.2), whatever the input.
#![no_main]
use libfuzzer_sys::fuzz_target;
use m2msec_cse::{Cse, CseConfig, CseType, RequestPrimitive, SecurityContext, SqliteStore};

fuzz_target!(|data: &[u8]| {
    let _ = RequestPrimitive::from_json(data);
    let cfg = CseConfig {
        sp: "sp.example".parse().expect("SP-ID"),
        cse_id: "/cse-in".parse().expect("CSE-ID"),
        cb_rn: "cb".into(),
        cse_type: CseType::In,
        poa: vec![],
    };
    let store = SqliteStore::open_in_memory().expect("in-memory store");
    let mut cse = Cse::new(cfg, store).expect("CSE");
    let resp = cse.handle_json(&SecurityContext::None, data);
    let _ = resp.rsc.as_u16();
});
