//! Property tests: the request parser and the whole engine never panic on arbitrary input, and
//! every answer to garbage is an error status.

mod common;

use common::*;
use m2msec_cse::{RequestPrimitive, Rsc};
use proptest::prelude::*;
use serde_json::Value;

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
        prop_oneof![Just("cb"), Just("m2m:cnt"), Just("C1"), Just("/cse-in"), Just("..")].prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("op".to_string()), Just("to".to_string()), Just("fr".to_string()),
                    Just("rqi".to_string()), Just("ty".to_string()), Just("pc".to_string()),
                    Just("rcn".to_string()), Just("m2m:cnt".to_string()), Just("rn".to_string()),
                    Just("con".to_string()), Just("acpi".to_string()), Just("mni".to_string()),
                    "[a-z]{1,4}",
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A structurally valid request with arbitrary fields.
fn arb_request() -> impl Strategy<Value = Value> {
    (
        0u64..7,
        prop_oneof![".{0,20}", Just("cb".to_string()), "cb/[a-zA-Z0-9./%-]{0,20}", "/[a-z-]{0,8}/.{0,10}"],
        prop::option::of(prop_oneof![".{0,12}", Just("C1".to_string()), Just("/cse-in".to_string())]),
        prop::option::of(0u64..20),
        prop::option::of(arb_json()),
        prop::option::of(0u64..12),
    )
        .prop_map(|(op, to, fr, ty, pc, rcn)| {
            let mut m = serde_json::Map::new();
            m.insert("op".into(), op.into());
            m.insert("to".into(), to.into());
            m.insert("rqi".into(), "p".into());
            if let Some(fr) = fr { m.insert("fr".into(), fr.into()); }
            if let Some(ty) = ty { m.insert("ty".into(), ty.into()); }
            if let Some(pc) = pc { m.insert("pc".into(), pc); }
            if let Some(rcn) = rcn { m.insert("rcn".into(), rcn.into()); }
            Value::Object(m)
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    #[test]
    fn parser_never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = RequestPrimitive::from_json(&bytes);
    }

    #[test]
    fn parser_never_panics_on_strings(s in ".{0,200}") {
        let _ = RequestPrimitive::from_json(s.as_bytes());
    }

    #[test]
    fn parser_never_panics_on_json(v in arb_json()) {
        let _ = RequestPrimitive::from_value(v);
    }

    #[test]
    fn engine_never_panics(reqs in prop::collection::vec(arb_request(), 1..8)) {
        let mut cse = cse();
        let sa = psk("p@mef.sp.example");
        for v in reqs {
            let bytes = serde_json::to_vec(&v).unwrap();
            let r = cse.handle_json(&sa, &bytes);
            // Garbage never gets a success, except a well-formed AE registration.
            if r.rsc.is_success() {
                prop_assert!(matches!(r.rsc, Rsc::Created | Rsc::Ok | Rsc::Updated | Rsc::Deleted));
            }
            let _ = cse.handle_json(&plain(), &bytes);
        }
    }
}
