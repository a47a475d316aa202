//! Issue 11: what an independent oneM2M client trips over, engine side (no sockets). Each test
//! names the item it covers; the HTTP side is in `m2msec-bindings`' `tests/conformance.rs`.

mod common;

use common::*;
use m2msec_cse::{Operation, Rsc};
use serde_json::json;

/// Item 3: `<CSEBase>` has `pi` = "" (TS-0004 §7.4.3.1).
#[test]
fn cse_base_parent_id_is_the_empty_string() {
    let mut cse = cse();
    let sa = psk("ae-key@mef.sp.example");
    let aei = register(&mut cse, &sa, None);
    let r = cse.handle(&sa, req(Operation::Retrieve, "cb", Some(&aei)));
    assert_eq!(r.rsc, Rsc::Ok, "{:?}", r.pc);
    assert_eq!(attr(&r, "m2m:cb", "pi"), &json!(""));
}

/// Item 4: only the releases served are advertised; a later RVI is 4001; `rt` 5 is a defined
/// response type (5001 NOT_IMPLEMENTED), not a bad request.
#[test]
fn releases_advertised_are_the_releases_served() {
    let mut cse = cse();
    let sa = psk("ae-key@mef.sp.example");
    let aei = register(&mut cse, &sa, None);
    let r = cse.handle(&sa, req(Operation::Retrieve, "cb", Some(&aei)));
    assert_eq!(attr(&r, "m2m:cb", "srv"), &json!(["2a", "3"]));
    for (rvi, rsc) in [
        ("3", Rsc::Ok),
        ("2a", Rsc::Ok),
        ("4", Rsc::ReleaseVersionNotSupported),
        ("5", Rsc::ReleaseVersionNotSupported),
    ] {
        let mut q = req(Operation::Retrieve, "cb", Some(&aei));
        q.rvi = Some(rvi.into());
        assert_eq!(cse.handle(&sa, q).rsc, rsc, "rvi {rvi}");
    }
    for (rt, rsc) in [
        (json!(5), Rsc::NotImplemented),
        (json!({"rtv": 5}), Rsc::NotImplemented),
        (json!(3), Rsc::Ok),
        (json!(6), Rsc::BadRequest),
    ] {
        let raw = json!({"op": 2, "to": "cb", "fr": aei, "rqi": "r", "rt": rt});
        let r = cse.handle_json(&sa, raw.to_string().as_bytes());
        assert_eq!(r.rsc, rsc, "rt {rt}");
    }
}

/// Item 5: invalid `cnf`, `csz` and trailing-slash targets are 4000 and leave nothing behind.
#[test]
fn invalid_content_info_serializations_and_trailing_slash_are_refused() {
    let mut cse = cse();
    let sa = psk("ae-key@mef.sp.example");
    let aei = register(&mut cse, &sa, None);
    let cnt = format!("cb/{aei}/c");
    let r = cse.handle(
        &sa,
        create(
            &format!("cb/{aei}"),
            Some(&aei),
            3,
            json!({"m2m:cnt": {"rn": "c"}}),
        ),
    );
    assert_eq!(r.rsc, Rsc::Created, "{:?}", r.pc);
    for cnf in [
        "text",
        "text:0",
        "text/plain:9",
        "text/plain:0:0:0",
        "text/plain",
        "/plain:0",
    ] {
        let r = cse.handle(
            &sa,
            create(
                &cnt,
                Some(&aei),
                4,
                json!({"m2m:cin": {"con": "x", "cnf": cnf}}),
            ),
        );
        assert_eq!(r.rsc, Rsc::BadRequest, "cnf {cnf}");
    }
    for cnf in ["text/plain:0", "application/json:1", "application/xml:1:5"] {
        let r = cse.handle(
            &sa,
            create(
                &cnt,
                Some(&aei),
                4,
                json!({"m2m:cin": {"con": "x", "cnf": cnf}}),
            ),
        );
        assert_eq!(r.rsc, Rsc::Created, "cnf {cnf}: {:?}", r.pc);
    }
    let r = cse.handle(&sa, req(Operation::Retrieve, &cnt, Some(&aei)));
    assert_eq!(
        attr(&r, "m2m:cnt", "cni"),
        &json!(3),
        "refused instances left nothing"
    );

    let other = psk("ae-other@mef.sp.example");
    for csz in [
        json!(["wrong"]),
        json!([]),
        json!(["application/json", "text/plain"]),
    ] {
        let r = cse.handle(
            &other,
            create(
                "cb",
                None,
                2,
                json!({"m2m:ae": {"api": "Nx", "rr": false, "csz": csz}}),
            ),
        );
        assert_eq!(r.rsc, Rsc::BadRequest, "csz {csz}");
    }
    let r = cse.handle(
        &sa,
        req(Operation::Update, &format!("cb/{aei}"), Some(&aei))
            .with_pc(json!({"m2m:ae": {"csz": ["wrong"]}})),
    );
    assert_eq!(r.rsc, Rsc::BadRequest);
    // The refused registrations left no <AE> behind: the credential can still register.
    let r = cse.handle(
        &other,
        create(
            "cb",
            None,
            2,
            json!({"m2m:ae": {"api": "Nx", "rr": false, "csz": ["application/json"]}}),
        ),
    );
    assert_eq!(r.rsc, Rsc::Created, "{:?}", r.pc);

    for to in [
        "cb/",
        "/cse-in/",
        "//sp.example/cse-in/",
        "/cse-in/cb/",
        &format!("cb/{aei}/"),
    ] {
        let r = cse.handle(&sa, req(Operation::Retrieve, to, Some(&aei)));
        assert_eq!(r.rsc, Rsc::BadRequest, "{to}");
        let r = cse.handle(&sa, create(to, Some(&aei), 3, json!({"m2m:cnt": {}})));
        assert_eq!(r.rsc, Rsc::BadRequest, "CREATE {to}");
    }
    // Without the slash, SP-relative and absolute CSE-IDs still address <CSEBase>.
    for to in ["/cse-in", "//sp.example/cse-in", "/cse-in/cb"] {
        let r = cse.handle(&sa, req(Operation::Retrieve, to, Some(&aei)));
        assert_eq!(r.rsc, Rsc::Ok, "{to}");
    }
}

/// Item 6: CREATE `<AE>` outside any association with a CSE-ID in From is 4107.
#[test]
fn ae_create_with_a_cse_id_outside_an_association_is_4107() {
    let mut cse = cse();
    for from in ["/cse-in", "/cse-mn1", "//sp.example/cse-mn1"] {
        let r = cse.handle(&plain(), create("cb", Some(from), 2, ae_body("Nx")));
        assert_eq!(r.rsc, Rsc::SecurityAssociationRequired, "{from}");
    }
    // An AE-ID-Stem or an S-type SP-relative AE-ID is no CSE-ID.
    let r = cse.handle(&plain(), create("cb", Some("Cplain"), 2, ae_body("Nx")));
    assert_eq!(r.rsc, Rsc::Created, "{:?}", r.pc);
}

/// Item 7: Vendor Information is echoed.
#[test]
fn vendor_information_is_echoed() {
    let mut cse = cse();
    let mut q = req(Operation::Retrieve, "cb", Some("Cnobody"));
    q.vsi = Some("acme-client/1.0".into());
    let r = cse.handle(&plain(), q);
    assert_eq!(r.vsi.as_deref(), Some("acme-client/1.0"));
    assert_eq!(r.to_value()["vsi"], json!("acme-client/1.0"));
    let raw = json!({"op": 2, "to": "cb", "fr": "Cnobody", "rqi": "r", "vsi": "v"});
    let r = cse.handle_json(&plain(), raw.to_string().as_bytes());
    assert_eq!(r.vsi.as_deref(), Some("v"));
}

/// Item 8: `acpi: []` is BAD_REQUEST in CREATE and UPDATE (our reading, see
/// `RequestAttrs::acpi`); null deletes `acpi`, governed like any other change of it.
#[test]
fn empty_acpi_is_refused_and_null_deletes() {
    let mut cse = cse();
    let sa = psk("ae-key@mef.sp.example");
    let aei = register(&mut cse, &sa, None);
    let ae = format!("cb/{aei}");
    let r = cse.handle(
        &sa,
        create(
            &ae,
            Some(&aei),
            1,
            json!({"m2m:acp": {"rn": "p", "pv": {"acr": [{"acor": [aei], "acop": 63}]},
                               "pvs": {"acr": [{"acor": [aei], "acop": 63}]}}}),
        ),
    );
    assert_eq!(r.rsc, Rsc::Created, "{:?}", r.pc);
    let acp_ri = attr(&r, "m2m:acp", "ri").as_str().unwrap().to_string();
    let r = cse.handle(
        &sa,
        create(
            &ae,
            Some(&aei),
            3,
            json!({"m2m:cnt": {"rn": "c", "acpi": []}}),
        ),
    );
    assert_eq!(r.rsc, Rsc::BadRequest);
    let r = cse.handle(
        &sa,
        create(
            &ae,
            Some(&aei),
            3,
            json!({"m2m:cnt": {"rn": "c", "acpi": [acp_ri]}}),
        ),
    );
    assert_eq!(r.rsc, Rsc::Created, "{:?}", r.pc);
    let cnt = format!("{ae}/c");
    let upd = |v| req(Operation::Update, &cnt, Some(&aei)).with_pc(json!({"m2m:cnt": {"acpi": v}}));
    let r = cse.handle(&sa, upd(json!([])));
    assert_eq!(r.rsc, Rsc::BadRequest);
    let r = cse.handle(&sa, req(Operation::Retrieve, &cnt, Some(&aei)));
    assert_eq!(attr(&r, "m2m:cnt", "acpi"), &json!([acp_ri]), "unchanged");
    let r = cse.handle(&sa, upd(Value::Null));
    assert_eq!(r.rsc, Rsc::Updated, "{:?}", r.pc);
    let r = cse.handle(&sa, req(Operation::Retrieve, &cnt, Some(&aei)));
    assert_eq!(
        r.rsc,
        Rsc::Ok,
        "the creator holds the default privileges again"
    );
    assert!(attr(&r, "m2m:cnt", "acpi").is_null());
}

use serde_json::Value;

fn cse_with(policy: &CseBasePolicy, store: SqliteStore) -> Cse<SqliteStore> {
    Cse::with_policy(
        config(),
        store,
        m2msec_core::clock::Clock::fixed(NOW),
        policy,
    )
    .unwrap()
}

/// Item 1, default: an AE registered here may RETRIEVE `<CSEBase>` and nothing more; nobody
/// else may do anything on it; its policy is `acpCSEBase`.
#[test]
fn default_cse_base_policy_lets_registered_aes_retrieve_only() {
    let mut cse = cse();
    let sa = psk("ae-key@mef.sp.example");
    let aei = register(&mut cse, &sa, None);
    let plain_aei = register(&mut cse, &plain(), Some("Cplain"));
    for (sec, from) in [(&sa, aei.as_str()), (&plain(), plain_aei.as_str())] {
        let r = cse.handle(sec, req(Operation::Retrieve, "cb", Some(from)));
        assert_eq!(r.rsc, Rsc::Ok, "{from}: {:?}", r.pc);
        assert_eq!(attr(&r, "m2m:cb", "acpi"), &json!([CSE_BASE_ACP]));
        let r = cse.handle(sec, create("cb", Some(from), 3, json!({"m2m:cnt": {}})));
        assert_eq!(r.rsc, Rsc::OriginatorHasNoPrivilege, "{from}");
        let r = cse.handle(
            sec,
            req(Operation::Update, "cb", Some(from)).with_pc(json!({"m2m:cb": {"lbl": ["x"]}})),
        );
        assert_eq!(r.rsc, Rsc::OriginatorHasNoPrivilege, "{from}");
        let r = cse.handle(sec, req(Operation::Retrieve, CSE_BASE_ACP, Some(from)));
        assert_eq!(r.rsc, Rsc::OriginatorHasNoPrivilege, "{from}");
    }
    // A registree CSE is no AE registered here, but it may RETRIEVE <CSEBase> as itself (the
    // registration's RETRIEVE, TS-0004 §7.4.4.2.1; engine docs, "Forwarding"), nothing more.
    let mn1 = cse_sa("mn1@mef.sp.example", "/cse-mn1");
    register_cse(&mut cse, &mn1, "/cse-mn1");
    let r = cse.handle(&mn1, req(Operation::Retrieve, "cb", Some("/cse-mn1")));
    assert_eq!(r.rsc, Rsc::Ok);
    let r = cse.handle(
        &mn1,
        create("cb", Some("/cse-mn1"), 3, json!({"m2m:cnt": {}})),
    );
    assert_eq!(r.rsc, Rsc::OriginatorHasNoPrivilege);
    // ...and not for others it forwards for (rq_authn FALSE).
    let r = cse.handle(&mn1, req(Operation::Retrieve, "cb", Some("/cse-mn1/Cdev")));
    assert_eq!(r.rsc, Rsc::OriginatorHasNoPrivilege);
    // An unregistered AE-ID outside an association stays 4106 (verification comes first).
    let r = cse.handle(&plain(), req(Operation::Retrieve, "cb", Some("Cnobody")));
    assert_eq!(r.rsc, Rsc::OriginatorNotAuthenticated);
    // Switched off: registered AEs get 4103 too.
    let mut cse = cse_with(
        &CseBasePolicy {
            registered_aes_retrieve: false,
            ..CseBasePolicy::default()
        },
        SqliteStore::open_in_memory().unwrap(),
    );
    let aei = register(&mut cse, &sa, None);
    let r = cse.handle(&sa, req(Operation::Retrieve, "cb", Some(&aei)));
    assert_eq!(r.rsc, Rsc::OriginatorHasNoPrivilege);
}

/// Item 1, administrator: authenticated over an association bound to it (a CSE-ID or an
/// AE-ID), it may do everything on `<CSEBase>` (create under it, change its `acpi`); outside
/// any association only where enabled; its AE-ID cannot be registered by anyone else.
#[test]
fn administrator_authenticates_and_administers_cse_base() {
    let policy = CseBasePolicy {
        admin: Some("/cse-admin".into()),
        ..CseBasePolicy::default()
    };
    let mut cse = cse_with(&policy, SqliteStore::open_in_memory().unwrap());
    let adm = cse_sa("admin@mef.sp.example", "/cse-admin");
    let r = cse.handle(&adm, req(Operation::Retrieve, "cb", Some("/cse-admin")));
    assert_eq!(r.rsc, Rsc::Ok, "{:?}", r.pc);
    let r = cse.handle(
        &adm,
        create(
            "cb",
            Some("/cse-admin"),
            3,
            json!({"m2m:cnt": {"rn": "shared"}}),
        ),
    );
    assert_eq!(r.rsc, Rsc::Created, "{:?}", r.pc);
    let r = cse.handle(
        &adm,
        create(
            "cb",
            Some("/cse-admin"),
            1,
            json!({"m2m:acp": {"rn": "extra", "pv": {"acr": [{"acor": ["all"], "acop": 2}]},
                               "pvs": {"acr": [{"acor": ["/cse-admin"], "acop": 63}]}}}),
        ),
    );
    assert_eq!(r.rsc, Rsc::Created, "{:?}", r.pc);
    let extra = attr(&r, "m2m:acp", "ri").as_str().unwrap().to_string();
    let r = cse.handle(
        &adm,
        req(Operation::Update, "cb", Some("/cse-admin"))
            .with_pc(json!({"m2m:cb": {"acpi": [CSE_BASE_ACP, extra]}})),
    );
    assert_eq!(r.rsc, Rsc::Updated, "{:?}", r.pc);
    // Now anyone verified may RETRIEVE <CSEBase> (the extra policy says "all").
    let mn1 = cse_sa("mn1@mef.sp.example", "/cse-mn1");
    register_cse(&mut cse, &mn1, "/cse-mn1");
    let r = cse.handle(&mn1, req(Operation::Retrieve, "cb", Some("/cse-mn1")));
    assert_eq!(r.rsc, Rsc::Ok);
    // Outside any association the administrator's CSE-ID is 4107 (not enabled).
    let r = cse.handle(&plain(), req(Operation::Retrieve, "cb", Some("/cse-admin")));
    assert_eq!(r.rsc, Rsc::SecurityAssociationRequired);

    // An AE-ID administrator: reserved for the association bound to it.
    let policy = CseBasePolicy {
        admin: Some("CAdmin".into()),
        ..CseBasePolicy::default()
    };
    let mut cse = cse_with(&policy, SqliteStore::open_in_memory().unwrap());
    for sec in [plain(), psk("squatter@mef.sp.example")] {
        let r = cse.handle(&sec, create("cb", Some("CAdmin"), 2, ae_body("Nx")));
        assert_eq!(r.rsc, Rsc::OriginatorNotAuthenticated);
    }
    let r = cse.handle(&plain(), req(Operation::Retrieve, "cb", Some("CAdmin")));
    assert_eq!(
        r.rsc,
        Rsc::OriginatorNotAuthenticated,
        "plaintext admin not enabled"
    );
    let bound = psk_bound_ae("admin-ae@mef.sp.example", "CAdmin");
    let r = cse.handle(
        &bound,
        create("cb", Some("CAdmin"), 3, json!({"m2m:cnt": {"rn": "c"}})),
    );
    assert_eq!(r.rsc, Rsc::Created, "{:?}", r.pc);

    // Enabled on the plaintext listener: the administrator is accepted there, as authenticated.
    let policy = CseBasePolicy {
        admin: Some("CAdmin".into()),
        admin_plaintext: true,
        ..CseBasePolicy::default()
    };
    let mut cse = cse_with(&policy, SqliteStore::open_in_memory().unwrap());
    let r = cse.handle(
        &plain(),
        create("cb", Some("CAdmin"), 3, json!({"m2m:cnt": {"rn": "c"}})),
    );
    assert_eq!(r.rsc, Rsc::Created, "{:?}", r.pc);
    let r = cse.handle(&plain(), req(Operation::Retrieve, "cb/c", Some("CAdmin")));
    assert_eq!(r.rsc, Rsc::Ok, "creator rights, authenticated");
    let r = cse.handle(&plain(), req(Operation::Retrieve, "cb", Some("Cother")));
    assert_eq!(r.rsc, Rsc::OriginatorNotAuthenticated);
}

/// Item 1: the policy is created at first start and rewritten from the configuration at every
/// start; `<CSEBase>` keeps it first in `acpi`.
#[test]
fn cse_base_policy_follows_the_configuration_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let open = || SqliteStore::open(dir.path()).unwrap();
    let sa = cse_sa("admin@mef.sp.example", "/cse-admin");
    {
        let mut cse = cse_with(&CseBasePolicy::default(), open());
        let r = cse.handle(&sa, req(Operation::Retrieve, "cb", Some("/cse-admin")));
        assert_eq!(r.rsc, Rsc::OriginatorHasNoPrivilege);
    }
    let admin = CseBasePolicy {
        admin: Some("/cse-admin".into()),
        ..CseBasePolicy::default()
    };
    {
        let mut cse = cse_with(&admin, open());
        let r = cse.handle(&sa, req(Operation::Retrieve, "cb", Some("/cse-admin")));
        assert_eq!(r.rsc, Rsc::Ok);
        let r = cse.handle(
            &sa,
            req(Operation::Retrieve, CSE_BASE_ACP, Some("/cse-admin")),
        );
        assert_eq!(r.rsc, Rsc::Ok);
        let r = cse.handle(
            &sa,
            req(Operation::Update, "cb", Some("/cse-admin"))
                .with_pc(json!({"m2m:cb": {"acpi": null}})),
        );
        assert_eq!(r.rsc, Rsc::Updated, "{:?}", r.pc);
    }
    let mut cse = cse_with(&admin, open());
    let r = cse.handle(&sa, req(Operation::Retrieve, "cb", Some("/cse-admin")));
    assert_eq!(r.rsc, Rsc::Ok, "acpi restored at start");
    assert_eq!(attr(&r, "m2m:cb", "acpi"), &json!([CSE_BASE_ACP]));
}

use m2msec_core::clock::ManualClock;
use m2msec_cse::{Cse, CseBasePolicy, SqliteStore, CSE_BASE_ACP};

/// A CSE on `store` whose clock the test moves.
fn cse_at(store: SqliteStore) -> (Cse<SqliteStore>, ManualClock) {
    let t = ManualClock::new(NOW);
    let cse = Cse::with_clock(config(), store, t.clock()).unwrap();
    (cse, t)
}

fn ts(unix: i64) -> String {
    m2msec_core::timestamp::Timestamp::from_unix(unix)
        .unwrap()
        .to_string()
}

/// Item 2: `et` is assigned when absent (the maximum), kept within the maximum, brought down
/// to it beyond, and cannot be deleted.
#[test]
fn expiration_time_is_assigned_and_bounded() {
    let (mut cse, _t) = cse_at(SqliteStore::open_in_memory().unwrap());
    let max = NOW + i64::try_from(m2msec_cse::engine::DEFAULT_MAX_EXPIRATION_SECS).unwrap();
    let sa = psk("ae-key@mef.sp.example");
    let r = cse.handle(&sa, create("cb", None, 2, ae_body("Nx")));
    assert_eq!(attr(&r, "m2m:ae", "et"), &json!(ts(max)), "assigned");
    let aei = attr(&r, "m2m:ae", "aei").as_str().unwrap().to_string();
    let ae = format!("cb/{aei}");
    let r = cse.handle(
        &sa,
        create(
            &ae,
            Some(&aei),
            3,
            json!({"m2m:cnt": {"rn": "a", "et": ts(NOW + 60)}}),
        ),
    );
    assert_eq!(attr(&r, "m2m:cnt", "et"), &json!(ts(NOW + 60)), "kept");
    let r = cse.handle(
        &sa,
        create(
            &ae,
            Some(&aei),
            3,
            json!({"m2m:cnt": {"rn": "b", "et": ts(max + 1000)}}),
        ),
    );
    assert_eq!(attr(&r, "m2m:cnt", "et"), &json!(ts(max)), "bounded");
    let upd = |v: Value| {
        req(Operation::Update, &format!("{ae}/a"), Some(&aei))
            .with_pc(json!({"m2m:cnt": {"et": v}}))
    };
    let r = cse.handle(&sa, upd(json!(ts(max + 5))));
    assert_eq!(r.rsc, Rsc::Updated);
    assert_eq!(attr(&r, "m2m:cnt", "et"), &json!(ts(max)));
    assert_eq!(cse.handle(&sa, upd(Value::Null)).rsc, Rsc::BadRequest);
    let r = cse.handle(&sa, req(Operation::Retrieve, "cb", Some(&aei)));
    assert!(attr(&r, "m2m:cb", "et").is_null(), "<CSEBase> has no et");
}

/// Item 2: expired resources disappear (on the next request, or by the sweep), stop counting
/// in `cni`/`cbs`, and leave the registree's usage accounting.
#[test]
fn expired_resources_disappear_and_stop_counting() {
    let (mut cse, t) = cse_at(SqliteStore::open_in_memory().unwrap());
    let sa = psk("ae-key@mef.sp.example");
    let aei = register(&mut cse, &sa, None);
    let ae = format!("cb/{aei}");
    let r = cse.handle(
        &sa,
        create(&ae, Some(&aei), 3, json!({"m2m:cnt": {"rn": "c"}})),
    );
    assert_eq!(r.rsc, Rsc::Created);
    let cnt = format!("{ae}/c");
    for (i, life) in [(0, 10), (1, 10), (2, 1000)] {
        let r = cse.handle(
            &sa,
            create(
                &cnt,
                Some(&aei),
                4,
                json!({"m2m:cin": {"rn": format!("i{i}"), "con": "abcd", "et": ts(NOW + life)}}),
            ),
        );
        assert_eq!(r.rsc, Rsc::Created, "{:?}", r.pc);
    }
    let usage = |cse: &mut Cse<SqliteStore>| {
        let top = format!("cb/{aei}");
        let mut tx = m2msec_cse::Store::begin(cse.store_mut()).unwrap();
        tx.usage(&top).unwrap()
    };
    let (n_before, bytes_before) = usage(&mut cse);
    assert_eq!(n_before, 5);
    t.set(NOW + 10);
    let r = cse.handle(&sa, req(Operation::Retrieve, &cnt, Some(&aei)));
    assert_eq!(attr(&r, "m2m:cnt", "cni"), &json!(1));
    assert_eq!(attr(&r, "m2m:cnt", "cbs"), &json!(4));
    let r = cse.handle(
        &sa,
        req(Operation::Retrieve, &format!("{cnt}/i0"), Some(&aei)),
    );
    assert_eq!(r.rsc, Rsc::NotFound);
    let r = cse.handle(
        &sa,
        req(Operation::Retrieve, &format!("{cnt}/ol"), Some(&aei)),
    );
    assert_eq!(attr(&r, "m2m:cin", "rn"), &json!("i2"));
    let (n, bytes) = usage(&mut cse);
    assert_eq!(n, 3);
    assert!(bytes < bytes_before);
    // The sweep, without any request: the AE itself expires with everything under it.
    t.set(NOW + i64::try_from(m2msec_cse::engine::DEFAULT_MAX_EXPIRATION_SECS).unwrap());
    assert_eq!(cse.purge_expired().unwrap(), 3);
    assert_eq!(usage(&mut cse), (0, 0));
    let mut tx = m2msec_cse::Store::begin(cse.store_mut()).unwrap();
    assert!(tx.get(&aei).unwrap().is_none());
}

/// Item 2: the expirationTime index survives a restart (the purge after a restart finds what
/// expired while the CSE was down).
#[test]
fn expiration_is_enforced_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let sa = psk("ae-key@mef.sp.example");
    let aei;
    {
        let (mut cse, _t) = cse_at(SqliteStore::open(dir.path()).unwrap());
        aei = register(&mut cse, &sa, None);
        let r = cse.handle(
            &sa,
            create(
                &format!("cb/{aei}"),
                Some(&aei),
                3,
                json!({"m2m:cnt": {"rn": "c", "et": ts(NOW + 5)}}),
            ),
        );
        assert_eq!(r.rsc, Rsc::Created);
    }
    let (mut cse, t) = cse_at(SqliteStore::open(dir.path()).unwrap());
    t.set(NOW + 6);
    assert_eq!(cse.purge_expired().unwrap(), 1);
    let r = cse.handle(
        &sa,
        req(Operation::Retrieve, &format!("cb/{aei}/c"), Some(&aei)),
    );
    assert_eq!(r.rsc, Rsc::NotFound);
}

/// Item 2: a store of schema version 3 (no `et_us`) gets the column filled from the stored
/// resources' `et` when opened, so resources that had an `et` before the upgrade expire.
#[test]
fn migration_fills_the_expiration_index() {
    let dir = tempfile::tempdir().unwrap();
    let sa = psk("ae-key@mef.sp.example");
    let aei;
    {
        let (mut cse, _t) = cse_at(SqliteStore::open(dir.path()).unwrap());
        aei = register(&mut cse, &sa, None);
        let r = cse.handle(
            &sa,
            create(
                &format!("cb/{aei}"),
                Some(&aei),
                3,
                json!({"m2m:cnt": {"rn": "c", "et": ts(NOW + 5)}}),
            ),
        );
        assert_eq!(r.rsc, Rsc::Created);
    }
    let c = rusqlite::Connection::open(dir.path().join(m2msec_cse::store::DB_FILE)).unwrap();
    c.execute_batch(
        "DROP INDEX resources_et; ALTER TABLE resources DROP COLUMN et_us;
         UPDATE schema_version SET version = 3;",
    )
    .unwrap();
    drop(c);
    let (mut cse, t) = cse_at(SqliteStore::open(dir.path()).unwrap());
    assert_eq!(cse.store_mut().schema_version().unwrap(), 4);
    t.set(NOW + 6);
    assert_eq!(cse.purge_expired().unwrap(), 1);
}

/// Item 9: NOTIFY to an `<AE>`: Recv-6.3 with the NOTIFY privilege first, then
/// TARGET_NOT_REACHABLE (no pointOfAccess, not request-reachable, or reachable but this CSE
/// does not re-target); other targets are OPERATION_NOT_ALLOWED.
#[test]
fn notify_to_an_ae_is_authorized_then_target_not_reachable() {
    let mut cse = cse();
    let sa = psk("ae-key@mef.sp.example");
    let aei = register(&mut cse, &sa, None);
    let other = psk("ae-other@mef.sp.example");
    let r = cse.handle(
        &other,
        create(
            "cb",
            None,
            2,
            json!({"m2m:ae": {"api": "Nx", "rr": true, "poa": ["http://127.0.0.1:9/n"]}}),
        ),
    );
    assert_eq!(r.rsc, Rsc::Created);
    let reachable = attr(&r, "m2m:ae", "aei").as_str().unwrap().to_string();
    let notify = |to: &str, from: &str| {
        req(Operation::Notify, to, Some(from)).with_pc(json!({"m2m:sgn": {"vrq": true}}))
    };
    // No privilege: the AE's acpi is NULL, so only the AE itself may notify it.
    let r = cse.handle(&sa, notify(&reachable, &aei));
    assert_eq!(r.rsc, Rsc::OriginatorHasNoPrivilege);
    let r = cse.handle(&sa, notify(&aei, &aei));
    assert_eq!(r.rsc, Rsc::TargetNotReachable);
    let r = cse.handle(&other, notify(&reachable, &reachable));
    assert_eq!(r.rsc, Rsc::TargetNotReachable);
    // Granted NOTIFY by an ACP of the target AE: the other AE gets the reachability answer.
    let r = cse.handle(
        &other,
        create(
            &format!("cb/{reachable}"),
            Some(&reachable),
            1,
            json!({"m2m:acp": {"rn": "n", "pv": {"acr": [{"acor": [aei], "acop": 16}]},
                               "pvs": {"acr": [{"acor": [reachable], "acop": 63}]}}}),
        ),
    );
    assert_eq!(r.rsc, Rsc::Created, "{:?}", r.pc);
    let acp = attr(&r, "m2m:acp", "ri").as_str().unwrap().to_string();
    let acp_self = cse.handle(
        &other,
        create(
            &format!("cb/{reachable}"),
            Some(&reachable),
            1,
            json!({"m2m:acp": {"rn": "own", "pv": {"acr": [{"acor": [reachable], "acop": 63}]},
                               "pvs": {"acr": [{"acor": [reachable], "acop": 63}]}}}),
        ),
    );
    let own = attr(&acp_self, "m2m:acp", "ri")
        .as_str()
        .unwrap()
        .to_string();
    let r = cse.handle(
        &other,
        req(Operation::Update, &reachable, Some(&reachable))
            .with_pc(json!({"m2m:ae": {"acpi": [acp, own]}})),
    );
    assert_eq!(r.rsc, Rsc::Updated, "{:?}", r.pc);
    let r = cse.handle(&sa, notify(&reachable, &aei));
    assert_eq!(r.rsc, Rsc::TargetNotReachable);
    // Not a notification receiver.
    let r = cse.handle(&sa, notify("cb", &aei));
    assert_eq!(r.rsc, Rsc::OperationNotAllowed);
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
    let r = cse.handle(&sa, notify(&format!("cb/{aei}/c"), &aei));
    assert_eq!(r.rsc, Rsc::OperationNotAllowed);
}
