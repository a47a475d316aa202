//! AE registration over a PSK association and container / contentInstance CRUD
//! (TS-0004 §7.4.5, §7.4.6, §7.4.7; TS-0001 §7.2 addressing).

mod common;

use common::*;
use m2msec_cse::{Operation, ResultContent, Rsc};
use serde_json::json;

#[test]
fn register_create_container_and_instances_read_back() {
    let mut cse = cse();
    let sa = psk("ae-key@mef.sp.example");
    let aei = register(&mut cse, &sa, None);
    assert!(aei.starts_with('C'), "{aei}");

    let r = cse.handle(
        &sa,
        create(
            &format!("cb/{aei}"),
            Some(&aei),
            3,
            json!({"m2m:cnt": {"rn": "temp", "mni": 3, "cr": null}}),
        ),
    );
    assert_eq!(r.rsc, Rsc::Created, "{:?}", r.pc);
    assert_eq!(attr(&r, "m2m:cnt", "cr"), &json!(aei));
    let cnt_ri = attr(&r, "m2m:cnt", "ri").as_str().unwrap().to_string();

    for i in 0..5 {
        let r = cse.handle(
            &sa,
            create(
                &format!("cb/{aei}/temp"),
                Some(&aei),
                4,
                json!({"m2m:cin": {"con": format!("v{i}"), "cnf": "text/plain:0"}}),
            ),
        );
        assert_eq!(r.rsc, Rsc::Created, "{:?}", r.pc);
        assert_eq!(attr(&r, "m2m:cin", "cs"), &json!(2));
    }
    // mni = 3: the two oldest were removed (TS-0004 §7.4.7.2.1).
    let r = cse.handle(&sa, req(Operation::Retrieve, &cnt_ri, Some(&aei)));
    assert_eq!(r.rsc, Rsc::Ok);
    assert_eq!(attr(&r, "m2m:cnt", "cni"), &json!(3));
    assert_eq!(attr(&r, "m2m:cnt", "cbs"), &json!(6));
    assert_eq!(attr(&r, "m2m:cnt", "st"), &json!(5));

    let la = cse.handle(
        &sa,
        req(
            Operation::Retrieve,
            &format!("cb/{aei}/temp/la"),
            Some(&aei),
        ),
    );
    assert_eq!(la.rsc, Rsc::Ok);
    assert_eq!(attr(&la, "m2m:cin", "con"), &json!("v4"));
    let ol = cse.handle(
        &sa,
        req(
            Operation::Retrieve,
            &format!("/cse-in/-/{aei}/temp/ol"),
            Some(&aei),
        ),
    );
    assert_eq!(attr(&ol, "m2m:cin", "con"), &json!("v2"));

    let la = cse.handle(
        &sa,
        req(Operation::Retrieve, &format!("{cnt_ri}/la"), Some(&aei)),
    );
    assert_eq!(attr(&la, "m2m:cin", "con"), &json!("v4"));
    let ol = cse.handle(
        &sa,
        req(
            Operation::Retrieve,
            &format!("/cse-in/{cnt_ri}/ol"),
            Some(&aei),
        ),
    );
    assert_eq!(attr(&ol, "m2m:cin", "con"), &json!("v2"));

    // Same container through every addressing form.
    for to in [
        format!("cb/{aei}/temp"),
        cnt_ri.clone(),
        format!("/cse-in/{cnt_ri}"),
        format!("//sp.example/cse-in/{cnt_ri}"),
        format!("//sp.example/cse-in/cb/{aei}/temp"),
    ] {
        let r = cse.handle(&sa, req(Operation::Retrieve, &to, Some(&aei)));
        assert_eq!(r.rsc, Rsc::Ok, "{to}");
        assert_eq!(attr(&r, "m2m:cnt", "ri"), &json!(cnt_ri));
    }

    // Child references and child resources.
    let r = cse.handle(
        &sa,
        req(Operation::Retrieve, &cnt_ri, Some(&aei))
            .with_rcn(ResultContent::ChildResourceReferences),
    );
    assert_eq!(
        r.pc.as_ref().unwrap()["m2m:rrl"]["rrf"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    let r = cse.handle(
        &sa,
        req(Operation::Retrieve, &cnt_ri, Some(&aei))
            .with_rcn(ResultContent::AttributesAndChildResources),
    );
    assert_eq!(
        r.pc.as_ref().unwrap()["m2m:cnt"]["m2m:cin"]
            .as_array()
            .unwrap()
            .len(),
        3
    );

    // contentInstance cannot be updated (TS-0004 §7.4.7.2.3).
    let u = cse.handle(
        &sa,
        req(Operation::Update, &format!("cb/{aei}/temp/la"), Some(&aei))
            .with_pc(json!({"m2m:cin": {"con": "x"}})),
    );
    assert_eq!(u.rsc, Rsc::OperationNotAllowed);

    // Update the container: mni 1 trims to one instance.
    let u = cse.handle(
        &sa,
        req(Operation::Update, &cnt_ri, Some(&aei))
            .with_pc(json!({"m2m:cnt": {"mni": 1, "lbl": ["room:1"]}})),
    );
    assert_eq!(u.rsc, Rsc::Updated, "{:?}", u.pc);
    assert_eq!(attr(&u, "m2m:cnt", "cni"), &json!(1));
    assert_eq!(attr(&u, "m2m:cnt", "lbl"), &json!(["room:1"]));

    // Delete the latest instance; the container's counters follow.
    let d = cse.handle(
        &sa,
        req(Operation::Delete, &format!("cb/{aei}/temp/la"), Some(&aei)),
    );
    assert_eq!(d.rsc, Rsc::Deleted);
    let r = cse.handle(&sa, req(Operation::Retrieve, &cnt_ri, Some(&aei)));
    assert_eq!(attr(&r, "m2m:cnt", "cni"), &json!(0));
    assert_eq!(attr(&r, "m2m:cnt", "cbs"), &json!(0));
    let la = cse.handle(
        &sa,
        req(
            Operation::Retrieve,
            &format!("cb/{aei}/temp/la"),
            Some(&aei),
        ),
    );
    assert_eq!(la.rsc, Rsc::NotFound);

    // Deleting the AE removes its subtree.
    let d = cse.handle(&sa, req(Operation::Delete, &aei, Some(&aei)));
    assert_eq!(d.rsc, Rsc::Deleted);
    let r = cse.handle(&plain(), req(Operation::Retrieve, &cnt_ri, Some(&aei)));
    assert_eq!(r.rsc, Rsc::OriginatorNotAuthenticated, "AE deregistered");
}

#[test]
fn max_byte_size_and_duplicate_names() {
    let mut cse = cse();
    let sa = psk("k1@mef.sp.example");
    let aei = register(&mut cse, &sa, None);
    let to = format!("cb/{aei}");
    let r = cse.handle(
        &sa,
        create(
            &to,
            Some(&aei),
            3,
            json!({"m2m:cnt": {"rn": "c", "mbs": 4}}),
        ),
    );
    assert_eq!(r.rsc, Rsc::Created);
    let r = cse.handle(
        &sa,
        create(&to, Some(&aei), 3, json!({"m2m:cnt": {"rn": "c"}})),
    );
    assert_eq!(r.rsc, Rsc::Conflict);
    let big = cse.handle(
        &sa,
        create(
            &format!("{to}/c"),
            Some(&aei),
            4,
            json!({"m2m:cin": {"con": "12345"}}),
        ),
    );
    assert_eq!(big.rsc, Rsc::NotAcceptable);
    let ok = cse.handle(
        &sa,
        create(
            &format!("{to}/c"),
            Some(&aei),
            4,
            json!({"m2m:cin": {"con": "123"}}),
        ),
    );
    assert_eq!(ok.rsc, Rsc::Created);
    // A second 3-byte instance exceeds mbs in total: the oldest is dropped.
    let ok = cse.handle(
        &sa,
        create(
            &format!("{to}/c"),
            Some(&aei),
            4,
            json!({"m2m:cin": {"con": "456"}}),
        ),
    );
    assert_eq!(ok.rsc, Rsc::Created);
    let r = cse.handle(
        &sa,
        req(Operation::Retrieve, &format!("{to}/c"), Some(&aei)),
    );
    assert_eq!(attr(&r, "m2m:cnt", "cni"), &json!(1));
    assert_eq!(attr(&r, "m2m:cnt", "cbs"), &json!(3));
}

#[test]
fn learned_binding_allows_only_that_ae_id() {
    let mut cse = cse();
    let sa = psk("k1@mef.sp.example");
    let aei = register(&mut cse, &sa, Some("Cmine"));
    assert_eq!(aei, "Cmine");
    // Already registered.
    let r = cse.handle(&sa, create("cb", Some("Cmine"), 2, ae_body("Nx")));
    assert_eq!(r.rsc, Rsc::OriginatorHasAlreadyRegistered);
    // Another AE-ID over the same association.
    let r = cse.handle(&sa, create("cb", Some("Cother"), 2, ae_body("Nx")));
    assert_eq!(r.rsc, Rsc::OriginatorNotAuthenticated);
    // After deregistration the association can re-register only its own AE-ID; asking for a
    // new one gets the bound one.
    assert_eq!(
        cse.handle(&sa, req(Operation::Delete, "cb/Cmine", Some("Cmine")))
            .rsc,
        Rsc::Deleted
    );
    let again = register(&mut cse, &sa, None);
    assert_eq!(again, "Cmine");
}

#[test]
fn configured_ida_and_s_type() {
    let mut cse = cse();
    let sa = psk_bound_ae("k2@mef.sp.example", "Sfixed");
    let aei = register(&mut cse, &sa, Some("Sfixed"));
    assert_eq!(aei, "Sfixed");
    let r = cse.handle(&sa, req(Operation::Retrieve, "cb/Sfixed", Some("Sfixed")));
    assert_eq!(r.rsc, Rsc::Ok);
    // Generated S-type stem on the IN-CSE.
    let s = register(&mut cse, &psk("k3@mef.sp.example"), Some("S"));
    assert!(s.starts_with('S') && s.len() > 1);
}

#[test]
fn result_content_variants_on_create_and_update() {
    let mut cse = cse();
    let sa = psk("k1@mef.sp.example");
    let aei = register(&mut cse, &sa, None);
    let r = cse.handle(
        &sa,
        create(
            &format!("cb/{aei}"),
            Some(&aei),
            3,
            json!({"m2m:cnt": {"rn": "x"}}),
        )
        .with_rcn(ResultContent::HierarchicalAddress),
    );
    assert_eq!(r.rsc, Rsc::Created);
    assert_eq!(r.pc.unwrap()["m2m:uri"], json!(format!("cb/{aei}/x")));
    let r = cse.handle(
        &sa,
        create(
            &format!("cb/{aei}"),
            Some(&aei),
            3,
            json!({"m2m:cnt": {"rn": "y"}}),
        )
        .with_rcn(ResultContent::Nothing),
    );
    assert_eq!(r.rsc, Rsc::Created);
    assert!(r.pc.is_none());
    let r = cse.handle(
        &sa,
        req(Operation::Update, &format!("cb/{aei}/y"), Some(&aei))
            .with_pc(json!({"m2m:cnt": {"mbs": 10}}))
            .with_rcn(ResultContent::ModifiedAttributes),
    );
    assert_eq!(r.rsc, Rsc::Updated);
    assert_eq!(r.pc.unwrap(), json!({"m2m:cnt": {"mbs": 10}}));
    // The response names this CSE and echoes the originator.
    let r = cse.handle(&sa, req(Operation::Retrieve, "cb", Some(&aei)));
    assert_eq!(r.fr.as_deref(), Some("/cse-in"));
    assert_eq!(r.to.as_deref(), Some(aei.as_str()));
}

#[test]
fn every_response_echoes_the_request_identifier() {
    // TS-0004 §7.3.2: the response carries the request's rqi, on success and on error.
    let mut cse = cse();
    let sa = psk("rqi-key@mef.sp.example");
    let aei = register(&mut cse, &sa, None);
    let mut ok = req(Operation::Retrieve, &format!("cb/{aei}"), Some(&aei));
    ok.rqi = "rqi-success-1".into();
    let r = cse.handle(&sa, ok);
    assert_eq!(r.rsc, Rsc::Ok);
    assert_eq!(r.rqi, "rqi-success-1");
    let mut bad = req(Operation::Retrieve, "cb/nonexistent", Some(&aei));
    bad.rqi = "rqi-error-2".into();
    let r = cse.handle(&sa, bad);
    assert_ne!(r.rsc, Rsc::Ok);
    assert_eq!(r.rqi, "rqi-error-2");
}
