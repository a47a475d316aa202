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
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
        prop_oneof![
            Just("cb"),
            Just("m2m:cnt"),
            Just("C1"),
            Just("/cse-in"),
            Just("..")
        ]
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("op".to_string()),
                    Just("to".to_string()),
                    Just("fr".to_string()),
                    Just("rqi".to_string()),
                    Just("ty".to_string()),
                    Just("pc".to_string()),
                    Just("rcn".to_string()),
                    Just("m2m:cnt".to_string()),
                    Just("rn".to_string()),
                    Just("con".to_string()),
                    Just("acpi".to_string()),
                    Just("mni".to_string()),
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
        prop_oneof![
            ".{0,20}",
            Just("cb".to_string()),
            "cb/[a-zA-Z0-9./%-]{0,20}",
            "/[a-z-]{0,8}/.{0,10}"
        ],
        prop::option::of(prop_oneof![
            ".{0,12}",
            Just("C1".to_string()),
            Just("/cse-in".to_string())
        ]),
        prop::option::of(0u64..20),
        prop::option::of(arb_json()),
        prop::option::of(0u64..12),
    )
        .prop_map(|(op, to, fr, ty, pc, rcn)| {
            let mut m = serde_json::Map::new();
            m.insert("op".into(), op.into());
            m.insert("to".into(), to.into());
            m.insert("rqi".into(), "p".into());
            if let Some(fr) = fr {
                m.insert("fr".into(), fr.into());
            }
            if let Some(ty) = ty {
                m.insert("ty".into(), ty.into());
            }
            if let Some(pc) = pc {
                m.insert("pc".into(), pc);
            }
            if let Some(rcn) = rcn {
                m.insert("rcn".into(), rcn.into());
            }
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

/// One step of the near-valid workload.
#[derive(Debug, Clone)]
enum Step {
    /// CREATE `<contentInstance>` with this content.
    Cin(Value),
    /// DELETE `la` (true) or `ol` (false).
    DeleteEdge(bool),
    /// UPDATE the container's mni / mbs.
    Limits(Option<u64>, Option<u64>),
    /// Anything: op, target index, ty, root index, attribute index, value, rcn.
    Random(u64, usize, Option<u64>, usize, usize, Value, Option<u64>),
}

fn arb_step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => prop_oneof![".{0,12}".prop_map(Value::from), arb_json()].prop_map(Step::Cin),
        2 => any::<bool>().prop_map(Step::DeleteEdge),
        1 => (prop::option::of(0u64..6), prop::option::of(0u64..50)).prop_map(|(a, b)| Step::Limits(a, b)),
        3 => (
            1u64..6,
            0usize..7,
            prop::option::of(prop_oneof![Just(1u64), Just(2), Just(3), Just(4), Just(5), Just(16), 0u64..30]),
            0usize..6,
            0usize..14,
            arb_json(),
            prop::option::of(0u64..11),
        )
            .prop_map(|(a, b, c, d, e, f, g)| Step::Random(a, b, c, d, e, f, g)),
    ]
}

const ROOTS: [&str; 6] = [
    "m2m:acp", "m2m:ae", "m2m:cnt", "m2m:cin", "m2m:cb", "m2m:csr",
];
const ATTRS: [&str; 14] = [
    "rn", "con", "mni", "mbs", "lbl", "acpi", "et", "api", "rr", "pv", "pvs", "cnf", "ri", "cni",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

    /// Near-valid requests against a populated tree: no panic, and the container's counters always
    /// match its actual instances and limits (transactions never leave them half-updated).
    #[test]
    fn near_valid_requests_keep_invariants(steps in prop::collection::vec(arb_step(), 1..32)) {
        use m2msec_cse::Operation;
        use serde_json::json;
        let mut cse = cse();
        let sa = psk("p@mef.sp.example");
        let aei = register(&mut cse, &sa, None);
        let cnt = format!("cb/{aei}/c");
        let r = cse.handle(&sa, create(&format!("cb/{aei}"), Some(&aei), 3, json!({"m2m:cnt": {"rn": "c", "mni": 5, "mbs": 40}})));
        prop_assert_eq!(r.rsc, Rsc::Created);
        let targets = [
            "cb".to_string(),
            format!("cb/{aei}"),
            cnt.clone(),
            format!("{cnt}/la"),
            format!("{cnt}/ol"),
            aei.clone(),
            format!("{cnt}/x"),
        ];
        for step in steps {
            let r = match step {
                Step::Cin(con) => cse.handle(&sa, create(&cnt, Some(&aei), 4, json!({"m2m:cin": {"con": con}}))),
                Step::DeleteEdge(la) => cse.handle(&sa, req(Operation::Delete, &format!("{cnt}/{}", if la { "la" } else { "ol" }), Some(&aei))),
                Step::Limits(mni, mbs) => cse.handle(&sa, req(Operation::Update, &cnt, Some(&aei)).with_pc(json!({"m2m:cnt": {"mni": mni, "mbs": mbs}}))),
                Step::Random(op, t, ty, root, at, val, rcn) => {
                    let mut inner = serde_json::Map::new();
                    inner.insert(ATTRS[at].to_string(), val);
                    let mut pc = serde_json::Map::new();
                    pc.insert(ROOTS[root].to_string(), Value::Object(inner));
                    let mut m = serde_json::Map::new();
                    m.insert("op".into(), op.into());
                    m.insert("to".into(), targets[t].clone().into());
                    m.insert("fr".into(), aei.clone().into());
                    m.insert("rqi".into(), "n".into());
                    if let Some(ty) = ty { m.insert("ty".into(), ty.into()); }
                    if let Some(rcn) = rcn { m.insert("rcn".into(), rcn.into()); }
                    m.insert("pc".into(), Value::Object(pc));
                    let bytes = serde_json::to_vec(&Value::Object(m)).unwrap();
                    cse.handle_json(&sa, &bytes)
                }
            };
            prop_assert!(Rsc::from_u16(r.rsc.as_u16()).is_some());
        }
        let r = cse.handle(&sa, req(Operation::Retrieve, &cnt, Some(&aei))
            .with_rcn(m2msec_cse::ResultContent::AttributesAndChildResources));
        if r.rsc == Rsc::Ok {
            let cnt = &r.pc.as_ref().unwrap()["m2m:cnt"];
            let cins = cnt["m2m:cin"].as_array().cloned().unwrap_or_default();
            prop_assert_eq!(cnt["cni"].as_u64().unwrap(), cins.len() as u64);
            let bytes: u64 = cins.iter().map(|c| c["cs"].as_u64().unwrap()).sum();
            prop_assert_eq!(cnt["cbs"].as_u64().unwrap(), bytes);
            if let Some(mni) = cnt["mni"].as_u64() { prop_assert!(cins.len() as u64 <= mni); }
            if let Some(mbs) = cnt["mbs"].as_u64() { prop_assert!(bytes <= mbs); }
        }
    }
}
