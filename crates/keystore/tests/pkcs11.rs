//! The PKCS#11 secure environment against a real SoftHSM2 token (TS-0003 §6.3.1): sealing and
//! HMAC run in the token, the keys cannot be read out, and every failure is a typed error.
//! Needs SoftHSM2 (`scripts/setup.sh`); fails, never skips, without it.

use std::sync::Arc;

use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeInfo, AttributeType, KeyType, ObjectClass};
use m2msec_keystore::pkcs11::{KeyKind, TokenError};
use m2msec_keystore::testing::{new_token, raw_session, softhsm, PIN};
use m2msec_keystore::{
    write_secret_file, Kek, KeystoreError, Sealer, SecureEnvironment, SecureEnvironmentConfig,
};

const KEK: &str = "m2msec/test/kek";

fn token_err(e: KeystoreError) -> TokenError {
    match e {
        KeystoreError::Token(t) => *t,
        other => panic!("expected a token error, got {other:?}"),
    }
}

fn open(cfg: &SecureEnvironmentConfig) -> SecureEnvironment {
    SecureEnvironment::open(cfg).unwrap()
}

fn sealer(se: &SecureEnvironment) -> Sealer {
    let d = tempfile::tempdir().unwrap();
    se.sealer(&d.path().join("kek"), KEK).unwrap()
}

#[test]
fn seal_open_round_trip_in_the_token() {
    let cfg = new_token("roundtrip");
    let se = open(&cfg);
    assert_eq!(se.kind(), "pkcs11");
    assert_eq!(se.protection_level().get(), 1);
    let st = se.status();
    assert_eq!(st.token.as_deref(), Some("roundtrip"));
    assert!(st.manufacturer.unwrap().contains("SoftHSM"));
    let s = sealer(&se);
    let a = s.seal(b"devices/k1", b"kpm bytes").unwrap();
    let b = s.seal(b"devices/k1", b"kpm bytes").unwrap();
    assert_ne!(a, b, "fresh nonces");
    assert_eq!(a.len(), m2msec_core::seal::OVERHEAD + 9);
    assert_eq!(&s.open(b"devices/k1", &a).unwrap()[..], b"kpm bytes");
    // Bound to the record name; tampering detected.
    assert!(matches!(
        s.open(b"devices/k2", &a),
        Err(KeystoreError::Seal(
            m2msec_core::seal::SealError::Authentication
        ))
    ));
    let mut t = a.clone();
    *t.last_mut().unwrap() ^= 1;
    assert!(matches!(
        s.open(b"devices/k1", &t),
        Err(KeystoreError::Seal(_))
    ));
    assert!(matches!(
        s.open(b"devices/k1", &a[..10]),
        Err(KeystoreError::Seal(m2msec_core::seal::SealError::Malformed))
    ));
    // A second process start finds the same key by label: old records still open.
    let se2 = open(&cfg);
    assert_eq!(
        &sealer(&se2).open(b"devices/k1", &a).unwrap()[..],
        b"kpm bytes"
    );
}

#[test]
fn a_record_sealed_by_one_token_does_not_open_with_another() {
    let a = sealer(&open(&new_token("cross-a")));
    let b = sealer(&open(&new_token("cross-b")));
    let rec = a.seal(b"t/1", b"secret").unwrap();
    assert!(matches!(
        b.open(b"t/1", &rec),
        Err(KeystoreError::Seal(
            m2msec_core::seal::SealError::Authentication
        ))
    ));
    // Nor with the file backend under some KEK.
    assert!(Sealer::new(Kek::from_array([0; 32]))
        .open(b"t/1", &rec)
        .is_err());
}

#[test]
fn keys_cannot_be_read_out_of_the_token() {
    let cfg = new_token("noexport");
    let se = open(&cfg);
    let _ = sealer(&se);
    let token = se.token().unwrap();
    token.hmac_key("m2msec/test/kpm").unwrap();
    let s = raw_session("noexport");
    for (label, kt) in [
        (KEK, KeyType::AES),
        ("m2msec/test/kpm", KeyType::GENERIC_SECRET),
    ] {
        let found = s
            .find_objects(&[
                Attribute::Label(label.as_bytes().to_vec()),
                Attribute::KeyType(kt),
            ])
            .unwrap();
        assert_eq!(found.len(), 1, "{label}");
        let h = found[0];
        // C_GetAttributeValue(CKA_VALUE) answers CKR_ATTRIBUTE_SENSITIVE.
        let info = s.get_attribute_info(h, &[AttributeType::Value]).unwrap();
        assert!(
            matches!(info.as_slice(), [AttributeInfo::Sensitive]),
            "{label}: {info:?}"
        );
        assert!(s
            .get_attributes(h, &[AttributeType::Value])
            .unwrap()
            .is_empty());
        let attrs = s
            .get_attributes(
                h,
                &[
                    AttributeType::Sensitive,
                    AttributeType::Extractable,
                    AttributeType::Token,
                    AttributeType::NeverExtractable,
                ],
            )
            .unwrap();
        for want in [
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Token(true),
            Attribute::NeverExtractable(true),
        ] {
            assert!(attrs.contains(&want), "{label}: {want:?} in {attrs:?}");
        }
        // Neither can it be made extractable afterwards.
        assert!(s
            .update_attributes(h, &[Attribute::Extractable(true)])
            .is_err());
        // C_WrapKey under an extractable wrapping key of our own: CKR_KEY_UNEXTRACTABLE.
        let wrapping = s
            .generate_key(
                &Mechanism::AesKeyGen,
                &[
                    Attribute::Class(ObjectClass::SECRET_KEY),
                    Attribute::KeyType(KeyType::AES),
                    Attribute::ValueLen(32u64.into()),
                    Attribute::Token(false),
                    Attribute::Extractable(true),
                    Attribute::Sensitive(false),
                    Attribute::Wrap(true),
                    Attribute::Encrypt(true),
                ],
            )
            .unwrap();
        for m in [Mechanism::AesKeyWrap, Mechanism::AesKeyWrapPad] {
            let e = s.wrap_key(&m, wrapping, h).unwrap_err();
            assert!(
                matches!(
                    e,
                    cryptoki::error::Error::Pkcs11(cryptoki::error::RvError::KeyUnextractable, _)
                ),
                "{label}: {e}"
            );
        }
    }
}

#[test]
fn a_key_found_extractable_is_refused() {
    let cfg = new_token("exportable");
    let s = raw_session("exportable");
    s.generate_key(
        &Mechanism::AesKeyGen,
        &[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::ValueLen(32u64.into()),
            Attribute::Token(true),
            Attribute::Extractable(true),
            Attribute::Sensitive(false),
            Attribute::Encrypt(true),
            Attribute::Decrypt(true),
            Attribute::Label(KEK.as_bytes().to_vec()),
        ],
    )
    .unwrap();
    let se = open(&cfg);
    let d = tempfile::tempdir().unwrap();
    let e = token_err(se.sealer(&d.path().join("kek"), KEK).unwrap_err());
    assert!(matches!(e, TokenError::KeyExportable { .. }), "{e}");
}

#[test]
fn hmac_runs_in_the_token() {
    let se = open(&new_token("hmac"));
    let t = se.token().unwrap();
    // RFC 4231 §4.7 test case 6 (SoftHSM2 takes HMAC-SHA-256 keys of 32 bytes or more).
    assert!(t.import_hmac_key("kpm/1", &[0xaa; 131]).unwrap());
    assert!(
        !t.import_hmac_key("kpm/1", &[0xab; 131]).unwrap(),
        "imported once"
    );
    assert_eq!(
        hex::encode(
            &t.hmac_sha256(
                "kpm/1",
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )
            .unwrap()[..]
        ),
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
    );
    // A generated key: deterministic, and distinct from another label's.
    assert!(t.hmac_key("master/1").unwrap());
    assert!(!t.hmac_key("master/1").unwrap());
    let a = t.hmac_sha256("master/1", b"label").unwrap();
    assert_eq!(a, t.hmac_sha256("master/1", b"label").unwrap());
    t.hmac_key("master/2").unwrap();
    assert_ne!(a, t.hmac_sha256("master/2", b"label").unwrap());
    // An AES key is not an HMAC key and vice versa.
    assert!(matches!(
        t.hmac_sha256(KEK, b"x"),
        Err(TokenError::KeyMissing { .. })
    ));
}

#[test]
fn wrong_pin_missing_token_missing_module_and_bad_pin_file() {
    let cfg = new_token("errors");
    let dir = softhsm().dir.path();
    let wrong = dir.join("errors-wrong.pin");
    write_secret_file(&wrong, b"not-the-pin").unwrap();
    let mut c = cfg.clone();
    c.pin_file = Some(wrong.clone());
    let e = token_err(SecureEnvironment::open(&c).unwrap_err());
    assert!(matches!(e, TokenError::WrongPin { .. }), "{e}");
    assert!(!e.to_string().contains("not-the-pin"));
    // The right PIN still works afterwards.
    open(&cfg);

    let mut c = cfg.clone();
    c.token_label = Some("no-such-token".into());
    let e = token_err(SecureEnvironment::open(&c).unwrap_err());
    assert!(matches!(e, TokenError::TokenNotFound { .. }), "{e}");
    assert!(
        e.to_string().contains("\"errors\""),
        "lists the tokens: {e}"
    );

    let mut c = cfg.clone();
    c.pkcs11_module = Some("/nonexistent/libpkcs11.so".into());
    let e = token_err(SecureEnvironment::open(&c).unwrap_err());
    assert!(matches!(e, TokenError::Module { .. }), "{e}");
    assert!(e.to_string().contains("scripts/setup.sh"));

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let open_pin = dir.join("errors-open.pin");
        std::fs::write(&open_pin, PIN).unwrap();
        std::fs::set_permissions(&open_pin, std::fs::Permissions::from_mode(0o644)).unwrap();
        let mut c = cfg.clone();
        c.pin_file = Some(open_pin);
        assert!(matches!(
            SecureEnvironment::open(&c),
            Err(KeystoreError::Permissions { .. })
        ));
    }

    let mut c = cfg.clone();
    c.pin_file = Some(dir.join("no-such.pin"));
    assert!(matches!(
        SecureEnvironment::open(&c),
        Err(KeystoreError::Io { .. })
    ));

    // A software token cannot claim a hardware protection level.
    let mut c = cfg.clone();
    c.protection_level = Some(3);
    assert!(matches!(
        SecureEnvironment::open(&c),
        Err(KeystoreError::Config(_))
    ));
}

#[test]
fn a_removed_key_is_a_clear_error_and_not_recreated_silently() {
    let cfg = new_token("removed");
    let se = open(&cfg);
    let s = sealer(&se);
    let rec = s.seal(b"r", b"v").unwrap();
    // An operator deletes the key with a PKCS#11 tool while the service runs (its handle
    // is cached).
    let raw = raw_session("removed");
    let h = raw
        .find_objects(&[Attribute::Label(KEK.as_bytes().to_vec())])
        .unwrap();
    assert_eq!(h.len(), 1);
    raw.destroy_object(h[0]).unwrap();
    let e = token_err(s.open(b"r", &rec).unwrap_err());
    assert!(matches!(e, TokenError::KeyMissing { .. }), "{e}");
    assert!(e.to_string().contains(KEK));
    let e = token_err(s.seal(b"r", b"v").unwrap_err());
    assert!(matches!(e, TokenError::KeyMissing { .. }), "{e}");
}

#[test]
fn an_existing_kek_file_is_not_ignored_and_migrates_once() {
    let cfg = new_token("migrate");
    let se = open(&cfg);
    let d = tempfile::tempdir().unwrap();
    let kek_file = d.path().join("kek");
    let file_sealer = Sealer::new(m2msec_keystore::load_or_create_kek(&kek_file).unwrap());
    let mut records = [(
        b"devices/a".to_vec(),
        file_sealer.seal(b"devices/a", b"old record").unwrap(),
    )];
    // A token configured over an installation with a KEK file: refused, with the way out.
    let e = se.sealer(&kek_file, KEK).unwrap_err();
    assert!(e.to_string().contains("migrate-to-token"), "{e}");
    // A failing re-seal changes nothing.
    let e = se
        .migrate_kek(&kek_file, KEK, |_, _| Err("disk full".into()))
        .unwrap_err();
    assert!(e.to_string().contains("nothing changed"), "{e}");
    assert!(kek_file.exists());
    assert!(!se.token().unwrap().has_key(KEK, KeyKind::Aes).unwrap());
    // The migration re-seals every record under a fresh token key and deletes the file.
    let n = se
        .migrate_kek(&kek_file, KEK, |old, new| {
            for (aad, rec) in records.iter_mut() {
                let p = old.open(aad, rec).map_err(|e| e.to_string())?;
                *rec = new.seal(aad, &p).map_err(|e| e.to_string())?;
            }
            Ok(records.len())
        })
        .unwrap();
    assert_eq!(n, 1);
    assert!(!kek_file.exists(), "the file KEK is gone");
    let s = se.sealer(&kek_file, KEK).unwrap();
    assert_eq!(
        &s.open(b"devices/a", &records[0].1).unwrap()[..],
        b"old record"
    );
    // A copy of the old KEK file opens nothing sealed from now on.
    assert!(file_sealer.open(b"devices/a", &records[0].1).is_err());
    let new = s.seal(b"devices/b", b"new record").unwrap();
    assert!(file_sealer.open(b"devices/b", &new).is_err());
    // Twice: refused.
    m2msec_keystore::write_secret_file(&kek_file, hex::encode([7u8; 32]).as_bytes()).unwrap();
    let e = se.migrate_kek(&kek_file, KEK, |_, _| Ok(0)).unwrap_err();
    assert!(e.to_string().contains("already migrated"), "{e}");
    assert!(kek_file.exists());
    // The files backend cannot migrate.
    assert!(SecureEnvironment::Files
        .migrate_kek(&kek_file, KEK, |_, _| Ok(0))
        .is_err());
}

#[test]
fn concurrent_seal_and_open_from_many_threads() {
    let se = open(&new_token("threads"));
    let s = Arc::new(sealer(&se));
    let workers: Vec<_> = (0..8)
        .map(|i| {
            let s = s.clone();
            std::thread::spawn(move || {
                for j in 0..100u32 {
                    let aad = format!("t/{i}/{j}");
                    let pt = j.to_be_bytes();
                    let rec = s.seal(aad.as_bytes(), &pt).unwrap();
                    assert_eq!(&s.open(aad.as_bytes(), &rec).unwrap()[..], &pt);
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
}

#[test]
fn closed_sessions_are_replaced() {
    let cfg = new_token("sessions");
    let se = open(&cfg);
    let s = sealer(&se);
    let rec = s.seal(b"x", b"y").unwrap();
    // Every session of the application on that slot closed behind the pool's back (what a
    // token reset does): the next operation opens a fresh one and logs in again.
    let raw = raw_session("sessions");
    let slot = raw.get_session_info().unwrap().slot_id();
    drop(raw);
    let ctx = m2msec_keystore::pkcs11::module_context(std::path::Path::new(
        m2msec_keystore::testing::MODULE,
    ))
    .unwrap();
    close_all_sessions(&ctx, slot);
    assert_eq!(&s.open(b"x", &rec).unwrap()[..], b"y");
    assert!(se.token().unwrap().has_key(KEK, KeyKind::Aes).unwrap());
}

/// Logs the application out of the token (`C_Logout` applies to every session of the
/// application, PKCS#11 base specification): the pooled sessions lose their login, as after a token
/// reset.
fn close_all_sessions(ctx: &cryptoki::context::Pkcs11, slot: cryptoki::slot::Slot) {
    let s = ctx.open_rw_session(slot).unwrap();
    s.logout().unwrap();
}

#[test]
fn config_section_parses_strictly_and_never_holds_the_pin() {
    let c: SecureEnvironmentConfig = toml::from_str(
        r#"pkcs11_module = "/usr/lib/softhsm/libsofthsm2.so"
token_label = "m2msec"
pin_file = "/etc/m2msec/token.pin""#,
    )
    .unwrap();
    c.validate().unwrap();
    assert!(toml::from_str::<SecureEnvironmentConfig>("pin = \"1234\"").is_err());
    let none: SecureEnvironmentConfig = toml::from_str("").unwrap();
    assert_eq!(open(&none).kind(), "files");
    assert_eq!(open(&none).protection_level().get(), 0);
    for bad in [
        "token_label = \"x\"",
        "pkcs11_module = \"/m.so\"\npin_file = \"/p\"",
        "pkcs11_module = \"/m.so\"\ntoken_label = \"x\"",
        "pkcs11_module = \"/m.so\"\ntoken_label = \"x\"\nslot = 1\npin_file = \"/p\"",
        "pkcs11_module = \"/m.so\"\ntoken_label = \"x\"\npin_file = \"/p\"\nprotection_level = 4",
    ] {
        let c: SecureEnvironmentConfig = toml::from_str(bad).unwrap();
        assert!(c.validate().is_err(), "{bad}");
    }
    // The opened environment's Debug shows no PIN.
    let cfg = new_token("debug");
    let se = open(&cfg);
    let dbg = format!("{se:?} {:?}", sealer(&se));
    assert!(!dbg.contains(PIN), "{dbg}");
}
