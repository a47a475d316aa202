//! Every impersonation case of TS-0003 §7.2.1 and TS-0004 §7.3.2.1 (BRIEF §3(d), checks 19–20),
//! each with its exact Response Status Code.

mod common;

use common::*;
use m2msec_cse::{Operation, Rsc};
use serde_json::json;

fn retrieve_cb(
    cse: &mut m2msec_cse::Cse<m2msec_cse::SqliteStore>,
    sec: &m2msec_cse::SecurityContext,
    from: &str,
) -> Rsc {
    cse.handle(sec, req(Operation::Retrieve, "cb", Some(from)))
        .rsc
}

/// SA with an AE registree: From must be one of the bound AE-IDs, else 4106.
#[test]
fn ae_association_from_must_match_bound_ae_id() {
    let mut cse = cse();
    let sa_a = psk("a@mef.sp.example");
    let sa_b = psk("b@mef.sp.example");
    let a = register(&mut cse, &sa_a, None);
    let b = register(&mut cse, &sa_b, None);
    // A's association claiming B (registered here) or an unknown AE.
    for from in [
        b.as_str(),
        "Cnobody",
        "Sother",
        "/cse-in",
        "//sp.example/cse-in",
    ] {
        let r = cse.handle(
            &sa_a,
            req(Operation::Retrieve, &format!("cb/{b}"), Some(from)),
        );
        assert_eq!(r.rsc, Rsc::OriginatorNotAuthenticated, "From={from}");
    }
    // Its own ID in a non-stem form: the TS-0004 §7.3.2.1 format rule (BAD_REQUEST).
    let r = cse.handle(
        &sa_a,
        req(
            Operation::Retrieve,
            &format!("cb/{a}"),
            Some(&format!("/cse-in/{a}")),
        ),
    );
    assert_eq!(r.rsc, Rsc::BadRequest);
    // Its own stem works.
    let r = cse.handle(
        &sa_a,
        req(Operation::Retrieve, &format!("cb/{a}"), Some(&a)),
    );
    assert_eq!(r.rsc, Rsc::Ok);
}

/// BRIEF check 19: an SA bound only to `12-<KpsaID>` is not yet an AE; any request but an AE
/// registration is rejected with 4106.
#[test]
fn unbound_association_must_register_first() {
    let mut cse = cse();
    let sa_a = psk("a@mef.sp.example");
    let a = register(&mut cse, &sa_a, None);
    let fresh = psk("fresh@mef.sp.example");
    assert_eq!(
        retrieve_cb(&mut cse, &fresh, &a),
        Rsc::OriginatorNotAuthenticated
    );
}

/// Configured IdA: the association cannot register or act as another AE.
#[test]
fn configured_ae_binding_rejects_other_ids() {
    let mut cse = cse();
    let sa = psk_bound_ae("k@mef.sp.example", "Cconfigured");
    let r = cse.handle(&sa, create("cb", Some("Cintruder"), 2, ae_body("Nx")));
    assert_eq!(r.rsc, Rsc::OriginatorNotAuthenticated);
    let aei = register(&mut cse, &sa, None);
    assert_eq!(aei, "Cconfigured");
    assert_eq!(
        retrieve_cb(&mut cse, &sa, "Cintruder"),
        Rsc::OriginatorNotAuthenticated
    );
}

/// SA with a CSE registree: the three rejection cases of TS-0004 §7.3.2.1.
#[test]
fn cse_association_rejections() {
    let mut cse = cse();
    let mn1 = cse_sa("mn1@mef.sp.example", "/cse-mn1");
    let mn2 = cse_sa("mn2@mef.sp.example", "/cse-mn2");
    register_cse(&mut cse, &mn1, "/cse-mn1");
    register_cse(&mut cse, &mn2, "/cse-mn2");
    let cases = [
        // (a) the CSE-ID of another registree CSE, in SP-relative and absolute form.
        "/cse-mn2",
        "//sp.example/cse-mn2",
        // (b) a CSE-relative C-type AE-ID-Stem.
        "Cabc",
        // (c) SP-relative / absolute C-type AE-ID whose CSE part is another registree CSE.
        "/cse-mn2/Cabc",
        "//sp.example/cse-mn2/Cabc",
        // Project addition: the receiver's own CSE-ID and its own C-type AE-IDs.
        "/cse-in",
        "/cse-in/Cabc",
    ];
    for from in cases {
        assert_eq!(
            retrieve_cb(&mut cse, &mn1, from),
            Rsc::OriginatorNotAuthenticated,
            "From={from}"
        );
    }
    // Forwarding for its own AEs, for CSEs below it and S-type AEs passes verification; then
    // access control decides: the default <CSEBase> policy lets AEs registered here RETRIEVE it
    // (C-type AE-IDs of this CSE, and S-type AE-IDs, which this IN-CSE assigns SP-wide); other
    // originators get 4103.
    for from in ["/cse-mn1/Cabc", "/cse-asn9", "/cse-asn9/Cz"] {
        let rsc = retrieve_cb(&mut cse, &mn1, from);
        assert_eq!(rsc, Rsc::OriginatorHasNoPrivilege, "From={from}");
    }
    assert_eq!(retrieve_cb(&mut cse, &mn1, "Sxyz"), Rsc::Ok);
    // Its own remoteCSE is readable with its own CSE-ID (default privileges of the registree).
    let r = cse.handle(
        &mn1,
        req(Operation::Retrieve, "cb/cse-mn1", Some("/cse-mn1")),
    );
    assert_eq!(r.rsc, Rsc::Ok, "{:?}", r.pc);
    // A CSE shall not originate CREATE <AE>.
    let r = cse.handle(&mn1, create("cb", Some("/cse-mn1"), 2, ae_body("Nx")));
    assert_eq!(r.rsc, Rsc::OperationNotAllowed);
}

/// Outside any SA: CSE-ID → 4107; unregistered AE-ID (non-CREATE <AE>) → 4106.
#[test]
fn outside_any_association() {
    let mut cse = cse();
    let mn1 = cse_sa("mn1@mef.sp.example", "/cse-mn1");
    register_cse(&mut cse, &mn1, "/cse-mn1");
    for from in ["/cse-mn1", "//sp.example/cse-mn1", "/cse-unknown"] {
        assert_eq!(
            retrieve_cb(&mut cse, &plain(), from),
            Rsc::SecurityAssociationRequired,
            "From={from}"
        );
    }
    for from in ["Cnobody", "/cse-in/Cnobody", "/cse-other/C1", "Snobody"] {
        assert_eq!(
            retrieve_cb(&mut cse, &plain(), from),
            Rsc::OriginatorNotAuthenticated,
            "From={from}"
        );
    }
    // An AE-ID registered over a credential is refused outside its association (issue 9
    // item 3); one registered outside any SA passes verification, then ACP decides (no
    // default privileges without rq_authn: 4103).
    let sa = psk("a@mef.sp.example");
    let owned = register(&mut cse, &sa, None);
    let r = cse.handle(
        &plain(),
        req(Operation::Retrieve, &format!("cb/{owned}"), Some(&owned)),
    );
    assert_eq!(r.rsc, Rsc::OriginatorNotAuthenticated);
    let a = register(&mut cse, &plain(), Some("Clocal"));
    let r = cse.handle(
        &plain(),
        req(Operation::Retrieve, &format!("cb/{a}"), Some(&a)),
    );
    assert_eq!(r.rsc, Rsc::OriginatorHasNoPrivilege);
    // ...in its AE-ID-Stem form only (TS-0004 §7.3.2.1).
    let abs = format!("//sp.example/cse-in/{a}");
    let r = cse.handle(
        &plain(),
        req(Operation::Retrieve, &format!("cb/{a}"), Some(&abs)),
    );
    assert_eq!(r.rsc, Rsc::BadRequest);
    // CSE registration needs an SA bound to that CSE-ID.
    let r = cse.handle(
        &plain(),
        create(
            "cb",
            Some("/cse-x"),
            16,
            json!({"m2m:csr": {"csi": "/cse-x", "cb": "/cse-x/cb", "rr": true}}),
        ),
    );
    assert_eq!(r.rsc, Rsc::SecurityAssociationRequired);
    // ...and with From equal to the bound CSE-ID.
    let r = cse.handle(
        &mn1,
        create(
            "cb",
            Some("/cse-mn1"),
            16,
            json!({"m2m:csr": {"csi": "/cse-mn1", "cb": "/cse-mn1/cb", "rr": true}}),
        ),
    );
    assert_eq!(r.rsc, Rsc::OriginatorHasAlreadyRegistered);
    let mn3 = cse_sa("mn3@mef.sp.example", "/cse-mn3");
    let r = cse.handle(
        &mn3,
        create(
            "cb",
            Some("/cse-mn3"),
            16,
            json!({"m2m:csr": {"csi": "/cse-mn1", "cb": "/cse-mn1/cb", "rr": true}}),
        ),
    );
    assert_eq!(
        r.rsc,
        Rsc::BadRequest,
        "csi must be the registree's own CSE-ID"
    );
}

/// A released AE-ID learned by one credential cannot be taken over by another credential or by a
/// plaintext tool, because the first credential's associations stay bound to it.
#[test]
fn learned_ae_id_is_not_reassigned_to_another_credential() {
    let mut cse = cse();
    let first = psk("first@mef.sp.example");
    let aei = register(&mut cse, &first, Some("Cowned"));
    let r = cse.handle(
        &first,
        req(Operation::Delete, &format!("cb/{aei}"), Some(&aei)),
    );
    assert_eq!(r.rsc, Rsc::Deleted);
    let second = psk("second@mef.sp.example");
    let r = cse.handle(&second, create("cb", Some("Cowned"), 2, ae_body("Nx")));
    assert_eq!(r.rsc, Rsc::OriginatorNotAuthenticated);
    let r = cse.handle(&plain(), create("cb", Some("Cowned"), 2, ae_body("Nx")));
    assert_eq!(r.rsc, Rsc::OriginatorNotAuthenticated);
    // The owner may come back.
    assert_eq!(register(&mut cse, &first, Some("Cowned")), "Cowned");
}

/// `/S…` is both an S-type AE-ID and an SP-relative CSE-ID (TS-0004 §6.2.3): it is read as a
/// CSE-ID when a registree CSE has that ID, so the CSE rules still apply to it.
#[test]
fn ambiguous_s_prefixed_cse_id() {
    let mut cse = cse();
    let smn = cse_sa("smn@mef.sp.example", "/Smn");
    let mn1 = cse_sa("mn1@mef.sp.example", "/cse-mn1");
    register_cse(&mut cse, &smn, "/Smn");
    register_cse(&mut cse, &mn1, "/cse-mn1");
    assert_eq!(
        retrieve_cb(&mut cse, &plain(), "/Smn"),
        Rsc::SecurityAssociationRequired
    );
    assert_eq!(
        retrieve_cb(&mut cse, &mn1, "/Smn"),
        Rsc::OriginatorNotAuthenticated
    );
    // Not a registree CSE: an S-type AE-ID, not registered here.
    assert_eq!(
        retrieve_cb(&mut cse, &plain(), "/Sother"),
        Rsc::OriginatorNotAuthenticated
    );
}
