//! The attacks of issue 9 items 1–4 and 12, replayed against the engine without sockets: an
//! attacker holding a valid credential of its own (or reaching the plaintext listener) tries to
//! act as somebody else, or to exhaust storage, and fails. Each test failed before its fix.

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use common::*;
use m2msec_core::ids::{AeIdStem, CredentialId, KpsaId};
use m2msec_cse::{Limits, Operation, Reservation, Reservations, Rsc, SecurityContext};
use serde_json::json;

/// Reservations as the CSE endpoint would supply them: stem → owner.
struct Fixed(HashMap<String, Reservation>);

impl Reservations for Fixed {
    fn reservation(&self, stem: &AeIdStem, registering: bool) -> Reservation {
        match self.0.get(stem.as_str()) {
            Some(Reservation::Unknown(_)) if !registering => Reservation::Free,
            Some(r) => r.clone(),
            None => Reservation::Free,
        }
    }
}

fn cred(kpsa: &str) -> CredentialId {
    CredentialId::for_kpsa(&kpsa.parse::<KpsaId>().unwrap())
}

fn reserving_cse() -> m2msec_cse::Cse<m2msec_cse::SqliteStore> {
    let mut c = cse();
    let mut m = HashMap::new();
    // A configured IdA of another credential.
    m.insert(
        "Cfixed".to_string(),
        Reservation::For(Some(cred("c@mef.sp.example"))),
    );
    // An Enrolee-ID the MEF provisioned for a device not yet registered.
    m.insert("Cdev1".to_string(), Reservation::For(None));
    // A stem the MEF could not be asked about.
    m.insert(
        "Cunsure".to_string(),
        Reservation::Unknown("MEF unreachable".into()),
    );
    c.set_reservations(Arc::new(Fixed(m)));
    c
}

/// Item 1: an unbound credential (or a plaintext tool) cannot register an AE-ID reserved for
/// another credential or provisioned by the MEF, nor one whose reservation is unknown.
#[test]
fn reserved_ae_ids_cannot_be_squatted() {
    let mut cse = reserving_cse();
    let attacker = psk("a@mef.sp.example");
    for stem in ["Cfixed", "Cdev1", "Cunsure"] {
        let r = cse.handle(&attacker, create("cb", Some(stem), 2, ae_body("Nx")));
        assert_eq!(r.rsc, Rsc::OriginatorNotAuthenticated, "{stem} over PSK");
        let r = cse.handle(&plain(), create("cb", Some(stem), 2, ae_body("Nx")));
        assert_eq!(
            r.rsc,
            Rsc::OriginatorNotAuthenticated,
            "{stem} over plaintext"
        );
    }
    // The owner registers it; the attacker's credential stayed unbound (it may still register
    // a generated AE-ID of its own).
    let owner = psk_bound_ae("c@mef.sp.example", "Cfixed");
    assert_eq!(register(&mut cse, &owner, Some("Cfixed")), "Cfixed");
    let own = register(&mut cse, &attacker, None);
    assert_ne!(own, "Cfixed");
    let r = cse.handle(
        &attacker,
        req(Operation::Retrieve, "cb/Cfixed", Some("Cfixed")),
    );
    assert_eq!(r.rsc, Rsc::OriginatorNotAuthenticated);
    // A credential whose own reservation it is may register it even when not bound by
    // configuration (the reservation names its Credential-ID).
    let mut cse = reserving_cse();
    let c_unbound = psk("c@mef.sp.example");
    assert_eq!(register(&mut cse, &c_unbound, Some("Cfixed")), "Cfixed");
    // Free stems stay registrable.
    let mut cse = reserving_cse();
    assert_eq!(register(&mut cse, &attacker, Some("Cfree")), "Cfree");
}

/// Item 2: a registree CSE cannot speak for an S-type AE registered directly here, in any of
/// the S-type AE-ID's forms.
#[test]
fn registree_cse_cannot_impersonate_s_type_aes() {
    let mut cse = cse();
    let mn = cse_sa("mn1@mef.sp.example", "/cse-mn1");
    register_cse(&mut cse, &mn, "/cse-mn1");
    let dev = psk("s@mef.sp.example");
    let s = register(&mut cse, &dev, Some("Ssensor"));
    assert_eq!(s, "Ssensor");
    for from in ["Ssensor", "/Ssensor", "//sp.example/Ssensor"] {
        for (op, to) in [
            (Operation::Retrieve, "cb/Ssensor"),
            (Operation::Delete, "cb/Ssensor"),
        ] {
            let r = cse.handle(&mn, req(op, to, Some(from)));
            assert_eq!(r.rsc, Rsc::OriginatorNotAuthenticated, "From={from} {op:?}");
        }
        let r = cse.handle(
            &mn,
            create("cb/Ssensor", Some(from), 3, json!({"m2m:cnt": {"rn": "x"}})),
        );
        assert_eq!(r.rsc, Rsc::OriginatorNotAuthenticated, "From={from} create");
    }
    // An S-type AE-ID not known here may still come through the registree CSE (it is
    // registered elsewhere); it is not authenticated, so it holds no creator rights.
    let r = cse.handle(
        &mn,
        req(Operation::Retrieve, "cb/Ssensor", Some("Selsewhere")),
    );
    assert_eq!(r.rsc, Rsc::OriginatorHasNoPrivilege);
    // The AE itself still works.
    let r = cse.handle(
        &dev,
        req(Operation::Retrieve, "cb/Ssensor", Some("Ssensor")),
    );
    assert_eq!(r.rsc, Rsc::Ok);
}

/// Item 3: knowing an AE-ID is not enough. Outside any association, an AE-ID registered over a
/// credential is refused for every operation, and unauthenticated requests never hold creator
/// rights.
#[test]
fn plaintext_cannot_use_credential_bound_ae_ids() {
    let mut cse = cse();
    let sa = psk("light@mef.sp.example");
    let aei = register(&mut cse, &sa, None);
    let r = cse.handle(
        &sa,
        create(
            &format!("cb/{aei}"),
            Some(&aei),
            3,
            json!({"m2m:cnt": {"rn": "data"}}),
        ),
    );
    assert_eq!(r.rsc, Rsc::Created);
    // A configured-IdA AE too (the binding is recorded at its registration).
    let fixed = psk_bound_ae("f@mef.sp.example", "Cfixed");
    register(&mut cse, &fixed, Some("Cfixed"));
    for ae in [aei.as_str(), "Cfixed"] {
        let cases = [
            req(Operation::Retrieve, &format!("cb/{ae}"), Some(ae)),
            req(Operation::Update, &format!("cb/{ae}"), Some(ae))
                .with_pc(json!({"m2m:ae": {"lbl": ["x"]}})),
            req(Operation::Delete, &format!("cb/{ae}"), Some(ae)),
            create(
                &format!("cb/{ae}"),
                Some(ae),
                3,
                json!({"m2m:cnt": {"rn": "evil"}}),
            ),
        ];
        for c in cases {
            let op = c.op;
            let r = cse.handle(&plain(), c);
            assert_eq!(r.rsc, Rsc::OriginatorNotAuthenticated, "{ae} {op:?}");
        }
    }
    // Everything is still there for the owner.
    let r = cse.handle(
        &sa,
        req(Operation::Retrieve, &format!("cb/{aei}/data"), Some(&aei)),
    );
    assert_eq!(r.rsc, Rsc::Ok);

    // An AE registered on the plaintext listener is usable there, but it is not authenticated,
    // so the default (creator) privileges do not apply: only an ACP with acaf FALSE grants it
    // anything.
    let local = register(&mut cse, &plain(), Some("Ctool"));
    let r = cse.handle(
        &plain(),
        req(Operation::Retrieve, &format!("cb/{local}"), Some(&local)),
    );
    assert_eq!(r.rsc, Rsc::OriginatorHasNoPrivilege);
}

/// Item 4: UPDATE privilege on a resource does not allow replacing its `acpi`; that takes UPDATE
/// in the selfPrivileges of the policies currently governing it.
#[test]
fn acpi_rewrite_needs_self_privileges() {
    let mut cse = cse();
    let sa_owner = psk("owner@mef.sp.example");
    let sa_att = psk("att@mef.sp.example");
    let owner = register(&mut cse, &sa_owner, None);
    let att = register(&mut cse, &sa_att, None);
    let acp = |cse: &mut m2msec_cse::Cse<m2msec_cse::SqliteStore>,
               sa: &SecurityContext,
               ae: &str,
               pv: serde_json::Value,
               pvs: serde_json::Value| {
        let r = cse.handle(
            sa,
            create(
                &format!("cb/{ae}"),
                Some(ae),
                1,
                json!({"m2m:acp": {"pv": pv, "pvs": pvs}}),
            ),
        );
        assert_eq!(r.rsc, Rsc::Created, "{:?}", r.pc);
        attr(&r, "m2m:acp", "ri").as_str().unwrap().to_string()
    };
    // The owner's policy: the attacker may RETRIEVE and UPDATE (2|4) the container.
    let governing = acp(
        &mut cse,
        &sa_owner,
        &owner,
        json!({"acr": [{"acor": [owner.clone()], "acop": 63}, {"acor": [att.clone()], "acop": 6}]}),
        json!({"acr": [{"acor": [owner.clone()], "acop": 63}]}),
    );
    let r = cse.handle(
        &sa_owner,
        create(
            &format!("cb/{owner}"),
            Some(&owner),
            3,
            json!({"m2m:cnt": {"rn": "data", "acpi": [governing.clone()]}}),
        ),
    );
    assert_eq!(r.rsc, Rsc::Created);
    // The attacker's own policy granting it everything.
    let evil = acp(
        &mut cse,
        &sa_att,
        &att,
        json!({"acr": [{"acor": [att.clone()], "acop": 63}]}),
        json!({"acr": [{"acor": [att.clone()], "acop": 63}]}),
    );
    let cnt = format!("cb/{owner}/data");
    // It may update other attributes …
    let r = cse.handle(
        &sa_att,
        req(Operation::Update, &cnt, Some(&att)).with_pc(json!({"m2m:cnt": {"lbl": ["a"]}})),
    );
    assert_eq!(r.rsc, Rsc::Updated);
    // … but not acpi, alone or with other attributes, and then it cannot delete.
    for pc in [
        json!({"m2m:cnt": {"acpi": [evil.clone()]}}),
        json!({"m2m:cnt": {"lbl": ["b"], "acpi": [evil.clone(), governing.clone()]}}),
    ] {
        let r = cse.handle(
            &sa_att,
            req(Operation::Update, &cnt, Some(&att)).with_pc(pc),
        );
        assert_eq!(r.rsc, Rsc::OriginatorHasNoPrivilege);
    }
    let r = cse.handle(&sa_att, req(Operation::Delete, &cnt, Some(&att)));
    assert_eq!(r.rsc, Rsc::OriginatorHasNoPrivilege);
    let r = cse.handle(&sa_owner, req(Operation::Retrieve, &cnt, Some(&owner)));
    assert_eq!(attr(&r, "m2m:cnt", "acpi"), &json!([governing.clone()]));
    assert_eq!(attr(&r, "m2m:cnt", "lbl"), &json!(["a"]));
    // The owner, in the selfPrivileges, may change it.
    let r = cse.handle(
        &sa_owner,
        req(Operation::Update, &cnt, Some(&owner))
            .with_pc(json!({"m2m:cnt": {"acpi": [governing.clone(), evil]}})),
    );
    assert_eq!(r.rsc, Rsc::Updated, "{:?}", r.pc);
    // With acpi NULL, the authenticated creator governs acpi (the AE itself).
    let r = cse.handle(
        &sa_att,
        req(Operation::Update, &format!("cb/{owner}"), Some(&att))
            .with_pc(json!({"m2m:ae": {"acpi": [governing]}})),
    );
    assert_eq!(r.rsc, Rsc::OriginatorHasNoPrivilege);
}

/// Item 12: a container gets the configured default `mni`/`mbs`, and one AE cannot store more
/// than its quota; a refused CREATE leaves nothing behind.
#[test]
fn container_defaults_and_registree_quota() {
    let mut cse = cse();
    cse.set_limits(Limits {
        container_mni: Some(3),
        container_mbs: Some(1000),
        registree_max_resources: Some(6),
        registree_max_bytes: None,
        ..Limits::default()
    });
    let sa = psk("q@mef.sp.example");
    let aei = register(&mut cse, &sa, None);
    let r = cse.handle(
        &sa,
        create(
            &format!("cb/{aei}"),
            Some(&aei),
            3,
            json!({"m2m:cnt": {"rn": "c"}}),
        ),
    );
    assert_eq!(r.rsc, Rsc::Created);
    assert_eq!(attr(&r, "m2m:cnt", "mni"), &json!(3));
    assert_eq!(attr(&r, "m2m:cnt", "mbs"), &json!(1000));
    // 10 instances: the container keeps the newest 3; AE + container + 3 = 5 resources.
    for i in 0..10 {
        let r = cse.handle(
            &sa,
            create(
                &format!("cb/{aei}/c"),
                Some(&aei),
                4,
                json!({"m2m:cin": {"con": format!("v{i}")}}),
            ),
        );
        assert_eq!(r.rsc, Rsc::Created, "{i}");
    }
    let r = cse.handle(
        &sa,
        req(Operation::Retrieve, &format!("cb/{aei}/c"), Some(&aei)),
    );
    assert_eq!(attr(&r, "m2m:cnt", "cni"), &json!(3));
    // A sixth resource fits, a seventh does not.
    let mk = |rn: &str| {
        create(
            &format!("cb/{aei}"),
            Some(&aei),
            3,
            json!({"m2m:cnt": {"rn": rn}}),
        )
    };
    assert_eq!(cse.handle(&sa, mk("d")).rsc, Rsc::Created);
    assert_eq!(cse.handle(&sa, mk("e")).rsc, Rsc::NotAcceptable);
    let r = cse.handle(
        &sa,
        req(Operation::Retrieve, &format!("cb/{aei}/e"), Some(&aei)),
    );
    assert_eq!(r.rsc, Rsc::NotFound);
    // Deleting frees quota.
    let r = cse.handle(
        &sa,
        req(Operation::Delete, &format!("cb/{aei}/d"), Some(&aei)),
    );
    assert_eq!(r.rsc, Rsc::Deleted);
    assert_eq!(cse.handle(&sa, mk("e")).rsc, Rsc::Created);
    // An explicit mni within the request is kept.
    let r = cse.handle(
        &sa,
        req(Operation::Retrieve, &format!("cb/{aei}/e"), Some(&aei)),
    );
    assert_eq!(attr(&r, "m2m:cnt", "mni"), &json!(3));
}
