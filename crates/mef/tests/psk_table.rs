//! Issue 10 item 8: the MEF's bootstrap PSK lookup (TS-0003 §8.3.2.1 step 1, KpmID → Kpm)
//! reads an in-memory table, never SQLite, during the handshake; a watcher keeps the table
//! current, so a device added or revoked by another connection (as `m2msec mef device` does
//! from another process) is served or refused within `PSK_WATCH_INTERVAL`.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use m2msec_core::duration::XsDuration;
use m2msec_core::kdf::SuidEncoding;
use m2msec_core::secret::Kpm;
use m2msec_mef::endpoint::PSK_WATCH_INTERVAL;
use m2msec_mef::{Device, LocalPkg, MefConfig, MefEndpoint, MefStore};
use m2msec_tls::PskIdentity;

const FQDN: &str = "mef.sp.example";

fn cfg() -> MefConfig {
    MefConfig {
        fqdn: FQDN.parse().unwrap(),
        ibc: false,
        retry_duration: "PT1H".parse::<XsDuration>().unwrap(),
        suid_encoding: SuidEncoding::AsciiDecimal,
        max_registration_secs: 86_400,
        legacy_derivation: false,
    }
}

fn device(n: u8) -> (Device, Kpm) {
    (
        Device {
            kpm_id: format!("dev{n}@{FQDN}"),
            enrolee_id: format!("Cdev{n}").parse().unwrap(),
            targets: vec!["//sp.example/cse-in".parse().unwrap()],
            enrolment_secs: 3600,
            created: 0,
            revoked: None,
        },
        Kpm::from_bytes(&[n; 32]).unwrap(),
    )
}

fn add(dir: &Path, n: u8) {
    let (d, k) = device(n);
    MefStore::open(dir).unwrap().add_device(&d, &k).unwrap();
}

fn id(n: u8) -> PskIdentity {
    PskIdentity::new(&format!("dev{n}@{FQDN}")).unwrap()
}

/// Polls `f` until it holds, for at most ten watch intervals (bounded).
fn within_interval(mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + PSK_WATCH_INTERVAL * 10;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    f()
}

/// A device added, then revoked, through another connection while the endpoint runs: served,
/// then refused, each within the watch interval; in-process changes take effect at once.
#[test]
fn devices_added_and_revoked_elsewhere_take_effect_within_the_interval() {
    let dir = tempfile::tempdir().unwrap();
    let (ep, tls) =
        MefEndpoint::new(cfg(), dir.path(), Arc::new(LocalPkg::generate()), vec![]).unwrap();
    let resolver = tls.psk.clone().unwrap();
    assert!(resolver.resolve(None, &id(2)).is_none());
    add(dir.path(), 2);
    assert!(
        within_interval(|| resolver.resolve(None, &id(2)).is_some()),
        "added device not served"
    );
    assert_eq!(resolver.resolve(None, &id(2)).unwrap().key.len(), 32);
    assert!(MefStore::open(dir.path())
        .unwrap()
        .revoke_device(&format!("dev2@{FQDN}"), 1)
        .unwrap());
    assert!(
        within_interval(|| resolver.resolve(None, &id(2)).is_none()),
        "revoked device still served"
    );
    // The endpoint's own store handle refreshes the table before returning.
    let (d, k) = device(3);
    ep.with_store(|s| s.add_device(&d, &k)).unwrap();
    assert!(resolver.resolve(None, &id(3)).is_some());
    ep.with_store(|s| s.revoke_device(&d.kpm_id, 2)).unwrap();
    assert!(resolver.resolve(None, &id(3)).is_none());
}
