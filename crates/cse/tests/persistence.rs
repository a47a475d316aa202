//! Resources and learned bindings survive a restart of the SQLite store; failed requests leave
//! nothing half-written.

mod common;

use common::*;
use m2msec_cse::{Cse, Operation, Rsc, SqliteStore};
use serde_json::json;

fn open(dir: &std::path::Path) -> Cse<SqliteStore> {
    Cse::with_clock(
        config(),
        SqliteStore::open(dir).unwrap(),
        m2msec_core::clock::Clock::fixed(NOW),
    )
    .unwrap()
}

#[test]
fn restart_keeps_every_resource_and_binding() {
    let dir = tempfile::tempdir().unwrap();
    let sa = psk("ae@mef.sp.example");
    let (aei, cin_ri) = {
        let mut cse = open(dir.path());
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
        let r = cse.handle(
            &sa,
            create(
                &format!("cb/{aei}/c"),
                Some(&aei),
                4,
                json!({"m2m:cin": {"con": "persist me"}}),
            ),
        );
        assert_eq!(r.rsc, Rsc::Created);
        (aei, attr(&r, "m2m:cin", "ri").as_str().unwrap().to_string())
    };
    let mut cse = open(dir.path());
    assert_eq!(
        cse.store_mut().schema_version().unwrap(),
        m2msec_cse::store::SCHEMA_VERSION
    );
    let r = cse.handle(&sa, req(Operation::Retrieve, &cin_ri, Some(&aei)));
    assert_eq!(r.rsc, Rsc::Ok, "{:?}", r.pc);
    assert_eq!(attr(&r, "m2m:cin", "con"), &json!("persist me"));
    let r = cse.handle(
        &sa,
        req(Operation::Retrieve, &format!("cb/{aei}/c"), Some(&aei)),
    );
    assert_eq!(attr(&r, "m2m:cnt", "cni"), &json!(1));
    // The Credential-ID → AE-ID binding survived: the association still cannot claim others.
    let r = cse.handle(&sa, req(Operation::Retrieve, "cb", Some("Cother")));
    assert_eq!(r.rsc, Rsc::OriginatorNotAuthenticated);
}

#[test]
fn other_cse_identity_refused_on_reopen() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path()));
    let mut other = config();
    other.cse_id = "/cse-zz".parse().unwrap();
    let e = Cse::with_clock(
        other,
        SqliteStore::open(dir.path()).unwrap(),
        m2msec_core::clock::Clock::fixed(NOW),
    )
    .unwrap_err();
    assert_eq!(e.rsc, Rsc::InternalServerError);
}

#[test]
fn failed_requests_leave_no_trace() {
    let dir = tempfile::tempdir().unwrap();
    let mut cse = open(dir.path());
    let sa = psk("ae@mef.sp.example");
    // A registration that fails validation does not bind the credential.
    let r = cse.handle(
        &sa,
        create(
            "cb",
            Some("Cwanted"),
            2,
            json!({"m2m:ae": {"api": "bad", "rr": false}}),
        ),
    );
    assert_eq!(r.rsc, Rsc::BadRequest);
    let aei = register(&mut cse, &sa, Some("Cother"));
    assert_eq!(aei, "Cother");
    let r = cse.handle(
        &sa,
        create(
            &format!("cb/{aei}"),
            Some(&aei),
            3,
            json!({"m2m:cnt": {"rn": "c", "mbs": 2}}),
        ),
    );
    assert_eq!(r.rsc, Rsc::Created);
    let r = cse.handle(
        &sa,
        create(
            &format!("cb/{aei}/c"),
            Some(&aei),
            4,
            json!({"m2m:cin": {"con": "too big"}}),
        ),
    );
    assert_eq!(r.rsc, Rsc::NotAcceptable);
    drop(cse);
    let mut cse = open(dir.path());
    let r = cse.handle(
        &sa,
        req(Operation::Retrieve, &format!("cb/{aei}/c"), Some(&aei)),
    );
    assert_eq!(attr(&r, "m2m:cnt", "cni"), &json!(0));
    assert_eq!(attr(&r, "m2m:cnt", "st"), &json!(0));
}

#[test]
fn unknown_schema_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(SqliteStore::open(dir.path()).unwrap());
    let c = rusqlite::Connection::open(dir.path().join(m2msec_cse::store::DB_FILE)).unwrap();
    c.execute("UPDATE schema_version SET version = 99", [])
        .unwrap();
    drop(c);
    match SqliteStore::open(dir.path()) {
        Err(m2msec_cse::StoreError::SchemaVersion(99)) => {}
        other => panic!("expected SchemaVersion(99), got {other:?}"),
    }
}
