//! Access control with authenticated and unauthenticated originators (TS-0003 §7.1.2–§7.1.5:
//! accessControlAuthenticationFlag against rq_authn; contexts that cannot be evaluated deny).

mod common;

use common::*;
use m2msec_cse::{Operation, Rsc};
use serde_json::{json, Value};

struct World {
    cse: m2msec_cse::Cse<m2msec_cse::SqliteStore>,
    sa_owner: m2msec_cse::SecurityContext,
    sa_reader: m2msec_cse::SecurityContext,
    owner: String,
    reader: String,
}

/// Owner AE with a container protected by an ACP whose rule for the reader is `reader_rule`.
fn world(reader_rule: Value) -> World {
    let mut cse = cse();
    let sa_owner = psk("owner@mef.sp.example");
    let sa_reader = psk("reader@mef.sp.example");
    let owner = register(&mut cse, &sa_owner, None);
    let reader = register(&mut cse, &sa_reader, None);
    let mut rule = reader_rule;
    rule["acor"] = json!([reader.clone()]);
    let r = cse.handle(
        &sa_owner,
        create(
            &format!("cb/{owner}"),
            Some(&owner),
            1,
            json!({"m2m:acp": {
                "rn": "policy",
                "pv": {"acr": [{"acor": [owner.clone()], "acop": 63}, rule]},
                "pvs": {"acr": [{"acor": [owner.clone()], "acop": 63}]}
            }}),
        ),
    );
    assert_eq!(r.rsc, Rsc::Created, "{:?}", r.pc);
    let acp_ri = attr(&r, "m2m:acp", "ri").as_str().unwrap().to_string();
    let r = cse.handle(
        &sa_owner,
        create(
            &format!("cb/{owner}"),
            Some(&owner),
            3,
            json!({"m2m:cnt": {"rn": "data", "acpi": [acp_ri]}}),
        ),
    );
    assert_eq!(r.rsc, Rsc::Created, "{:?}", r.pc);
    let r = cse.handle(
        &sa_owner,
        create(
            &format!("cb/{owner}/data"),
            Some(&owner),
            4,
            json!({"m2m:cin": {"con": "42"}}),
        ),
    );
    assert_eq!(r.rsc, Rsc::Created, "{:?}", r.pc);
    World {
        cse,
        sa_owner,
        sa_reader,
        owner,
        reader,
    }
}

#[test]
fn acaf_requires_authenticated_originator() {
    let mut w = world(json!({"acop": 2, "acaf": true}));
    let to = format!("cb/{}/data/la", w.owner);
    // Inside its SA the reader is authenticated (rq_authn TRUE).
    let r = w
        .cse
        .handle(&w.sa_reader, req(Operation::Retrieve, &to, Some(&w.reader)));
    assert_eq!(r.rsc, Rsc::Ok, "{:?}", r.pc);
    // The same AE-ID from a plaintext local tool: it belongs to the reader's credential, so it
    // is refused outside that association altogether (issue 9 item 3).
    let r = w
        .cse
        .handle(&plain(), req(Operation::Retrieve, &to, Some(&w.reader)));
    assert_eq!(r.rsc, Rsc::OriginatorNotAuthenticated);
    // An AE registered on the plaintext listener and named in an acaf rule: rq_authn FALSE →
    // denied.
    let tool = register(&mut w.cse, &plain(), Some("Ctool"));
    let pol = format!("cb/{}/policy", w.owner);
    let r = w.cse.handle(
        &w.sa_owner,
        req(Operation::Update, &pol, Some(&w.owner)).with_pc(json!({"m2m:acp": {"pv": {"acr": [
            {"acor": [w.owner.clone()], "acop": 63},
            {"acor": [tool.clone()], "acop": 2, "acaf": true}
        ]}}})),
    );
    assert_eq!(r.rsc, Rsc::Updated, "{:?}", r.pc);
    let r = w
        .cse
        .handle(&plain(), req(Operation::Retrieve, &to, Some(&tool)));
    assert_eq!(r.rsc, Rsc::OriginatorHasNoPrivilege);
    // Operations outside acop are denied even when authenticated.
    let r = w
        .cse
        .handle(&w.sa_reader, req(Operation::Delete, &to, Some(&w.reader)));
    assert_eq!(r.rsc, Rsc::OriginatorHasNoPrivilege);
    let r = w.cse.handle(
        &w.sa_reader,
        create(
            &format!("cb/{}/data", w.owner),
            Some(&w.reader),
            4,
            json!({"m2m:cin": {"con": "x"}}),
        ),
    );
    assert_eq!(r.rsc, Rsc::OriginatorHasNoPrivilege);
    // The owner keeps full access.
    let r = w
        .cse
        .handle(&w.sa_owner, req(Operation::Delete, &to, Some(&w.owner)));
    assert_eq!(r.rsc, Rsc::Deleted);
}

#[test]
fn without_acaf_unauthenticated_is_enough() {
    let mut w = world(json!({"acop": 2}));
    let to = format!("cb/{}/data", w.owner);
    // An AE of the plaintext listener (no credential owns its AE-ID), named in a rule without
    // acaf.
    let tool = register(&mut w.cse, &plain(), Some("Ctool"));
    let pol = format!("cb/{}/policy", w.owner);
    let r = w.cse.handle(
        &w.sa_owner,
        req(Operation::Update, &pol, Some(&w.owner)).with_pc(json!({"m2m:acp": {"pv": {"acr": [
            {"acor": [w.owner.clone()], "acop": 63},
            {"acor": [tool.clone()], "acop": 2}
        ]}}})),
    );
    assert_eq!(r.rsc, Rsc::Updated, "{:?}", r.pc);
    let r = w
        .cse
        .handle(&plain(), req(Operation::Retrieve, &to, Some(&tool)));
    assert_eq!(r.rsc, Rsc::Ok);
}

#[test]
fn unevaluable_context_denies() {
    let mut w = world(json!({"acop": 63, "acco": [{"acip": {"ipv4": ["127.0.0.1/32"]}}]}));
    let to = format!("cb/{}/data", w.owner);
    let r = w
        .cse
        .handle(&w.sa_reader, req(Operation::Retrieve, &to, Some(&w.reader)));
    assert_eq!(r.rsc, Rsc::OriginatorHasNoPrivilege);
}

#[test]
fn default_privileges_and_self_privileges() {
    let mut w = world(json!({"acop": 2}));
    // The owner AE has no acpi: only the AE itself (its creator) has access.
    let r = w.cse.handle(
        &w.sa_reader,
        req(
            Operation::Retrieve,
            &format!("cb/{}", w.owner),
            Some(&w.reader),
        ),
    );
    assert_eq!(r.rsc, Rsc::OriginatorHasNoPrivilege);
    // The ACP is governed by its selfPrivileges: the reader may not change it.
    let to = format!("cb/{}/policy", w.owner);
    let r = w.cse.handle(
        &w.sa_reader,
        req(Operation::Update, &to, Some(&w.reader))
            .with_pc(json!({"m2m:acp": {"pv": {"acr": [{"acor": ["all"], "acop": 63}]}}})),
    );
    assert_eq!(r.rsc, Rsc::OriginatorHasNoPrivilege);
    let r = w.cse.handle(
        &w.sa_owner,
        req(Operation::Update, &to, Some(&w.owner))
            .with_pc(json!({"m2m:acp": {"pv": {"acr": [{"acor": ["all"], "acop": 2}]}}})),
    );
    assert_eq!(r.rsc, Rsc::Updated, "{:?}", r.pc);
    // Now "all" may retrieve, but the owner lost write access to the container.
    let r = w.cse.handle(
        &w.sa_reader,
        req(
            Operation::Retrieve,
            &format!("cb/{}/data", w.owner),
            Some(&w.reader),
        ),
    );
    assert_eq!(r.rsc, Rsc::Ok);
    let r = w.cse.handle(
        &w.sa_owner,
        req(
            Operation::Delete,
            &format!("cb/{}/data", w.owner),
            Some(&w.owner),
        ),
    );
    assert_eq!(r.rsc, Rsc::OriginatorHasNoPrivilege);
    // A child listing shows the children the originator may retrieve (both, for the owner).
    let r = w.cse.handle(
        &w.sa_owner,
        req(
            Operation::Retrieve,
            &format!("cb/{}", w.owner),
            Some(&w.owner),
        )
        .with_rcn(m2msec_cse::ResultContent::ChildResourceReferences),
    );
    assert_eq!(r.pc.unwrap()["m2m:rrl"]["rrf"].as_array().unwrap().len(), 2);
}

#[test]
fn acpi_must_name_an_existing_policy() {
    let mut c = cse();
    let sa = psk("o@mef.sp.example");
    let ae = register(&mut c, &sa, None);
    let r = c.handle(
        &sa,
        create(
            &format!("cb/{ae}"),
            Some(&ae),
            3,
            json!({"m2m:cnt": {"acpi": ["acpmissing"]}}),
        ),
    );
    assert_eq!(r.rsc, Rsc::BadRequest);
}
