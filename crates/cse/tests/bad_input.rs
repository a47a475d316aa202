//! Bad input gets the right Response Status Code (TS-0004 §7.3.2.1, §6.6) and never a panic:
//! malformed JSON (whole primitives and `pc` values), unknown resource types, invalid and
//! over-long names, path tricks in `To`, read-only attributes, unsupported parameters.

mod common;

use common::*;
use m2msec_cse::{Operation, ResultContent, Rsc};
use serde_json::{json, Value};

fn setup() -> (
    m2msec_cse::Cse<m2msec_cse::SqliteStore>,
    m2msec_cse::SecurityContext,
    String,
) {
    let mut cse = cse();
    let sa = psk("ae@mef.sp.example");
    let aei = register(&mut cse, &sa, None);
    (cse, sa, aei)
}

#[test]
fn malformed_primitives() {
    let (mut cse, sa, _) = setup();
    for bytes in [
        &b""[..],
        b"{",
        b"[]",
        b"null",
        b"{\"op\":1}",
        b"{\"op\":\"1\",\"to\":\"cb\",\"rqi\":\"1\"}",
        b"\xff\xfe",
        b"{\"op\":2,\"to\":\"cb\",\"rqi\":\"1\",\"fr\":7}",
        // Repeated member names (issue 9 item 13): at the top and inside the content.
        b"{\"op\":2,\"op\":3,\"to\":\"cb\",\"rqi\":\"1\"}",
        b"{\"op\":1,\"to\":\"cb\",\"rqi\":\"1\",\"ty\":3,\"pc\":{\"m2m:cnt\":{\"rn\":\"a\",\"rn\":\"b\"}}}",
    ] {
        let r = cse.handle_json(&sa, bytes);
        assert_eq!(
            r.rsc,
            Rsc::BadRequest,
            "{:?}",
            String::from_utf8_lossy(bytes)
        );
    }
}

#[test]
fn malformed_content_values() {
    let (mut cse, sa, aei) = setup();
    let to = format!("cb/{aei}");
    let bad_pcs: Vec<Value> = vec![
        json!("not an object"),
        json!(42),
        json!([]),
        json!({}),
        json!({"m2m:cnt": "x"}),
        json!({"m2m:cnt": {}, "m2m:ae": {}}),
        json!({"m2m:ae": {"api": "Nx", "rr": false}}),
        json!({"m2m:cnt": {"mni": -1}}),
        json!({"m2m:cnt": {"mni": "3"}}),
        json!({"m2m:cnt": {"lbl": "a"}}),
        json!({"m2m:cnt": {"lbl": ["has space"]}}),
        json!({"m2m:cnt": {"acpi": [1]}}),
        json!({"m2m:cnt": {"et": "yesterday"}}),
        json!({"m2m:cnt": {"et": "20000101T000000"}}),
        json!({"m2m:cnt": {"unknownAttr": 1}}),
        // Read-only attributes (TS-0004 §7.4.6: NP in CREATE).
        json!({"m2m:cnt": {"ri": "mine"}}),
        json!({"m2m:cnt": {"ct": "20270101T000000"}}),
        json!({"m2m:cnt": {"cni": 0}}),
        json!({"m2m:cnt": {"st": 0}}),
        json!({"m2m:cnt": {"rn": null}}),
        // creator may only be requested with NULL (TS-0004 §7.3.3.3).
        json!({"m2m:cnt": {"cr": "Csomeone"}}),
        json!({"m2m:ae": {"cr": null}}),
    ];
    for pc in bad_pcs {
        let r = cse.handle(&sa, create(&to, Some(&aei), 3, pc.clone()));
        assert_eq!(r.rsc, Rsc::BadRequest, "{pc}");
    }
    // Malformed JSON text arriving as the pc of a JSON primitive.
    let raw = format!(
        r#"{{"op":1,"to":"{to}","fr":"{aei}","rqi":"1","ty":3,"pc":{{"m2m:cnt":{{"rn":"x"}}"#
    );
    assert_eq!(cse.handle_json(&sa, raw.as_bytes()).rsc, Rsc::BadRequest);
    // A missing pc.
    let r = cse.handle(&sa, req(Operation::Create, &to, Some(&aei)).with_ty(3));
    assert_eq!(r.rsc, Rsc::BadRequest);
    // Update of read-only attributes.
    cse.handle(
        &sa,
        create(&to, Some(&aei), 3, json!({"m2m:cnt": {"rn": "c"}})),
    );
    for pc in [
        json!({"m2m:cnt": {"cni": 9}}),
        json!({"m2m:cnt": {"rn": "d"}}),
        json!({"m2m:cnt": {}}),
    ] {
        let r = cse.handle(
            &sa,
            req(Operation::Update, &format!("{to}/c"), Some(&aei)).with_pc(pc.clone()),
        );
        assert_eq!(r.rsc, Rsc::BadRequest, "{pc}");
    }
    let r = cse.handle(
        &sa,
        req(Operation::Update, &aei, Some(&aei)).with_pc(json!({"m2m:ae": {"aei": "Cx"}})),
    );
    assert_eq!(r.rsc, Rsc::BadRequest);
    // AE App-ID must start with r, R or N (TS-0004 §7.4.5.2.1).
    let r = cse.handle(
        &psk("x@mef.sp.example"),
        create("cb", None, 2, json!({"m2m:ae": {"api": "app", "rr": true}})),
    );
    assert_eq!(r.rsc, Rsc::BadRequest);
}

#[test]
fn resource_types() {
    let (mut cse, sa, aei) = setup();
    let to = format!("cb/{aei}");
    for ty in [0u64, 6, 23, 99, 1 << 40] {
        let r = cse.handle(&sa, create(&to, Some(&aei), ty, json!({"m2m:cnt": {}})));
        assert_eq!(r.rsc, Rsc::BadRequest, "ty={ty}");
    }
    // Missing ty in a CREATE.
    let r = cse.handle(
        &sa,
        req(Operation::Create, &to, Some(&aei)).with_pc(json!({"m2m:cnt": {}})),
    );
    assert_eq!(r.rsc, Rsc::BadRequest);
    // Valid types in the wrong place: INVALID_CHILD_RESOURCE_TYPE.
    let r = cse.handle(
        &sa,
        create(&to, Some(&aei), 4, json!({"m2m:cin": {"con": "x"}})),
    );
    assert_eq!(r.rsc, Rsc::InvalidChildResourceType);
    let r = cse.handle(&sa, create(&to, Some(&aei), 5, json!({"m2m:cb": {}})));
    assert_eq!(r.rsc, Rsc::InvalidChildResourceType);
    let r = cse.handle(&sa, create(&to, Some(&aei), 2, ae_body("Nx")));
    assert_eq!(r.rsc, Rsc::InvalidChildResourceType, "<AE> under <AE>");
    let r = cse.handle(&sa, create("cb", Some("Cnew"), 2, ae_body("Nx")));
    assert_eq!(
        r.rsc,
        Rsc::OriginatorNotAuthenticated,
        "an AE SA cannot register a second AE"
    );
    let r = cse.handle(&sa, create("cb", None, 2, ae_body("Nx")));
    assert_eq!(r.rsc, Rsc::OriginatorHasAlreadyRegistered);
}

#[test]
fn names_and_path_tricks() {
    let (mut cse, sa, aei) = setup();
    let to = format!("cb/{aei}");
    let long = "n".repeat(129);
    for rn in [
        "",
        ".",
        "..",
        "-",
        "a/b",
        "../x",
        "a b",
        "a%2Fb",
        "ü",
        "a\u{0}b",
        long.as_str(),
    ] {
        let r = cse.handle(
            &sa,
            create(&to, Some(&aei), 3, json!({"m2m:cnt": {"rn": rn}})),
        );
        assert_eq!(r.rsc, Rsc::BadRequest, "rn={rn:?}");
    }
    let ok = "n".repeat(128);
    let r = cse.handle(
        &sa,
        create(&to, Some(&aei), 3, json!({"m2m:cnt": {"rn": ok}})),
    );
    assert_eq!(r.rsc, Rsc::Created);
    // Names reserved under a container.
    cse.handle(
        &sa,
        create(&to, Some(&aei), 3, json!({"m2m:cnt": {"rn": "c"}})),
    );
    let r = cse.handle(
        &sa,
        create(
            &format!("{to}/c"),
            Some(&aei),
            3,
            json!({"m2m:cnt": {"rn": "la"}}),
        ),
    );
    assert_eq!(r.rsc, Rsc::BadRequest);
    for target in [
        format!("{to}/../{aei}"),
        format!("{to}/./c"),
        format!("{to}//c"),
        format!("{to}/c/"),
        format!("cb/{aei}/c%2F.."),
        "cb/\u{7f}".to_string(),
        String::new(),
        format!("/cse-in/../cb/{aei}"),
    ] {
        let r = cse.handle(&sa, req(Operation::Retrieve, &target, Some(&aei)));
        assert_eq!(r.rsc, Rsc::BadRequest, "to={target:?}");
    }
    for target in ["/cse-other/cb", "//other.example/cse-in/cb"] {
        let r = cse.handle(&sa, req(Operation::Retrieve, target, Some(&aei)));
        assert_eq!(r.rsc, Rsc::TargetNotReachable, "to={target}");
    }
    let r = cse.handle(&sa, req(Operation::Retrieve, "cb/nothing/here", Some(&aei)));
    assert_eq!(r.rsc, Rsc::NotFound);
}

#[test]
fn primitive_parameters() {
    let (mut cse, sa, aei) = setup();
    let r = cse.handle(&sa, req(Operation::Retrieve, "cb", None));
    assert_eq!(
        r.rsc,
        Rsc::BadRequest,
        "From is mandatory outside AE registration"
    );
    let r = cse.handle(
        &sa,
        req(Operation::Retrieve, &aei, Some(&aei)).with_rcn(ResultContent::ModifiedAttributes),
    );
    assert_eq!(r.rsc, Rsc::BadRequest, "rcn invalid for RETRIEVE");
    let mut q = create(&format!("cb/{aei}"), Some(&aei), 3, json!({"m2m:cnt": {}}));
    q.fc = Some(json!({"fu": 1}));
    assert_eq!(
        cse.handle(&sa, q).rsc,
        Rsc::BadRequest,
        "filter criteria in CREATE"
    );
    let raw = format!(r#"{{"op":2,"to":"{aei}","fr":"{aei}","rqi":"1","rqet":"20300101T000000"}}"#);
    assert_eq!(
        cse.handle_json(&sa, raw.as_bytes()).rsc,
        Rsc::NotImplemented
    );
    let raw = format!(r#"{{"op":2,"to":"{aei}","fr":"{aei}","rqi":"1","rvi":"1"}}"#);
    assert_eq!(
        cse.handle_json(&sa, raw.as_bytes()).rsc,
        Rsc::ReleaseVersionNotSupported
    );
    let raw = format!(r#"{{"op":2,"to":"{aei}","fr":"{aei}","rqi":"1","rvi":"3"}}"#);
    let r = cse.handle_json(&sa, raw.as_bytes());
    assert_eq!(r.rsc, Rsc::Ok);
    assert_eq!(r.rvi.as_deref(), Some("3"));
    let r = cse.handle(&sa, req(Operation::Delete, "cb", Some(&aei)));
    assert_eq!(r.rsc, Rsc::OperationNotAllowed);
    // Issue 11 item 9: a NOTIFY to an <AE> without pointOfAccess is TARGET_NOT_REACHABLE.
    let r = cse.handle(&sa, req(Operation::Notify, &aei, Some(&aei)));
    assert_eq!(r.rsc, Rsc::TargetNotReachable);
}
