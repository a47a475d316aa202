//! A token that goes away mid-run (its files deleted, then the module finalised) gives typed
//! errors, never a panic, and loses nothing that was sealed before. Its own test binary: it
//! finalises the process's SoftHSM2.

use m2msec_keystore::testing::{new_token, softhsm, MODULE};
use m2msec_keystore::{KeystoreError, SecureEnvironment, TokenError};

#[test]
fn a_token_that_goes_away_gives_errors_not_panics() {
    let cfg = new_token("vanishing");
    let se = SecureEnvironment::open(&cfg).unwrap();
    let d = tempfile::tempdir().unwrap();
    let s = se.sealer(&d.path().join("kek"), "kek").unwrap();
    let rec = s.seal(b"a", b"kept").unwrap();

    // The token's files are deleted under the running service.
    let tokens = softhsm().token_dir();
    for e in std::fs::read_dir(&tokens).unwrap() {
        std::fs::remove_dir_all(e.unwrap().path()).unwrap();
    }
    // SoftHSM2 notices on its next object-store refresh: the key is gone (a typed error; no
    // new key is generated behind the operator's back, which would orphan every record).
    for r in [
        s.seal(b"b", b"x").map(|_| ()),
        s.open(b"a", &rec).map(|_| ()),
    ] {
        match r {
            Err(KeystoreError::Token(t)) => assert!(
                matches!(
                    *t,
                    TokenError::KeyMissing { .. } | TokenError::Unavailable { .. }
                ),
                "{t}"
            ),
            other => panic!("expected a token error, got {other:?}"),
        }
    }

    // The module is finalised (what unloading it or a crashed daemon-backed module does).
    let ctx = m2msec_keystore::pkcs11::module_context(std::path::Path::new(MODULE)).unwrap();
    ctx.finalize().unwrap();
    for r in [
        s.seal(b"b", b"x").map(|_| ()),
        s.open(b"a", &rec).map(|_| ()),
    ] {
        match r {
            Err(KeystoreError::Token(t)) => {
                assert!(matches!(*t, TokenError::Unavailable { .. }), "{t}");
                assert!(t.to_string().contains("vanishing"), "{t}");
            }
            other => panic!("expected Unavailable, got {other:?}"),
        }
    }
    // Opening it again is an error too.
    assert!(SecureEnvironment::open(&cfg).is_err());
}
