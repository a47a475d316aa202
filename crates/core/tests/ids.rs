//! Identifier parsing and formatting: the TS examples, the BRIEF conformance checks 3, 11, 12,
//! and property tests (round trips; random input never panics).

use m2msec_core::ids::*;
use proptest::prelude::*;

#[test]
fn ts_examples_parse() {
    // TS-0003 §12.2 relKeyID examples and the Credential-ID example.
    for r in ["1he83he", "my-key_name", "firstname.lastname"] {
        assert_eq!(r.parse::<RelKeyId>().unwrap().to_string(), r);
    }
    let c: CredentialId = "10-thiskey@mymef.com".parse().unwrap();
    assert_eq!(c.type_id(), CredIdTypeId::KpmId);
    assert_eq!(c.value(), "thiskey@mymef.com");
    // TS-0004 §6.2.3 examples.
    let cse: CseId = "//myoperator.com/cse1".parse().unwrap();
    assert_eq!(
        cse,
        CseId::Absolute {
            sp: "myoperator.com".parse().unwrap(),
            stem: "cse1".into()
        }
    );
    let ae: AeId = "//myoperator.com/cse2/C3532ea3".parse().unwrap();
    assert_eq!(ae.registrar_stem(), Some("cse2"));
    assert_eq!(ae.stem().kind(), AeIdStemKind::C);
    let s: AeId = "//myoperator.com/S563423".parse().unwrap();
    assert_eq!(s.stem().kind(), AeIdStemKind::S);
    assert_eq!(
        "/cse2/C3532ea3".parse::<AeId>().unwrap().to_string(),
        "/cse2/C3532ea3"
    );
    assert!(matches!(
        "C3532ea3".parse::<AeId>().unwrap(),
        AeId::CseRelative { .. }
    ));
    assert!(matches!(
        "/cse1".parse::<CseId>().unwrap(),
        CseId::SpRelative { .. }
    ));
    assert!(matches!(
        "cse1".parse::<CseId>().unwrap(),
        CseId::CseRelative { .. }
    ));
}

#[test]
fn m2m_ids_reject_bad_forms() {
    for bad in [
        "",
        "/",
        "//",
        "//sp.com",
        "//sp.com/",
        "//SP.com/cse1",
        "//sp.com/-cse",
        "/cse 1",
        "//1sp.com/cse1",
        "//sp-.com/x",
        "/cse/1",
    ] {
        assert!(bad.parse::<CseId>().is_err(), "CSE-ID {bad:?}");
    }
    for bad in [
        "",
        "X123",
        "C",
        "S",
        "/cse1/S123",
        "/C123",
        "//sp.com/cse2/Cx/y",
        "//sp.com",
        "C-12",
        "/cse2/C3532ea3/",
    ] {
        assert!(bad.parse::<AeId>().is_err(), "AE-ID {bad:?}");
    }
    // Case-sensitive: two distinct CSEs (TS-0004 §6.2.3).
    assert_ne!(
        "//myoperator.com/cse1".parse::<CseId>().unwrap(),
        "//myoperator.com/Cse1".parse::<CseId>().unwrap()
    );
}

#[test]
fn ke_id_format_and_case() {
    // Conformance check 3: ^[0-9a-f]{32}@<MEF-FQDN>$, hex part parsed case-insensitively.
    let upper: KeId = "30D3436449D73BAADCD265A262555B29@MEF.Example.com"
        .parse()
        .unwrap();
    assert_eq!(
        upper.to_string(),
        "30d3436449d73baadcd265a262555b29@mef.example.com"
    );
    let lower: KeId = "30d3436449d73baadcd265a262555b29@mef.example.com"
        .parse()
        .unwrap();
    assert_eq!(upper, lower);
    for bad in [
        "30d3436449d73baadcd265a262555b2@mef.example.com",
        "30d3436449d73baadcd265a262555b299@mef.example.com",
        "30d3436449d73baadcd265a262555b2g@mef.example.com",
        "30d3436449d73baadcd265a262555b29mef.example.com",
        "30d3436449d73baadcd265a262555b29@mef.example.com:",
        "30d3436449d73baadcd265a262555b29@",
        "30d3436449d73baadcd265a262555b29@a@b",
        "30d3436449d73baadcd265a262555b29@10.0.0.1",
    ] {
        assert!(bad.parse::<KeId>().is_err(), "{bad:?}");
    }
}

#[test]
fn kpsa_and_km_ids() {
    // Conformance check 11.
    assert!("Key.1_a-b@issuer.example.com".parse::<KpsaId>().is_ok());
    for bad in [
        "noat",
        "@issuer.com",
        "a b@issuer.com",
        "a/b@issuer.com",
        "a@",
        "ключ@issuer.com",
        "a@@b.com",
    ] {
        assert!(bad.parse::<KpsaId>().is_err(), "{bad:?}");
        assert!(bad.parse::<KmId>().is_err(), "{bad:?}");
    }
    let a: KmId = "MyKey@maf.example.com".parse().unwrap();
    let b: KmId = "mykey@MAF.example.com".parse().unwrap();
    assert_eq!(a, b, "KmID relative part is not case-sensitive");
    assert_eq!(a.to_string(), "MyKey@maf.example.com");
    let mut set = std::collections::HashSet::new();
    set.insert(a);
    assert!(set.contains(&b));
    let p: KpsaId = "MyKey@issuer.com".parse().unwrap();
    assert_ne!(
        p,
        "mykey@issuer.com".parse::<KpsaId>().unwrap(),
        "KpsaID relative part is exact"
    );
}

#[test]
fn credential_ids() {
    // Conformance check 12.
    let kpsa: KpsaId = "dev-42@sp.example.com".parse().unwrap();
    assert_eq!(
        CredentialId::for_kpsa(&kpsa).to_string(),
        "12-dev-42@sp.example.com"
    );
    let km: KmId = "k1@maf.example.com".parse().unwrap();
    assert_eq!(
        CredentialId::for_km(&km).to_string(),
        "11-k1@maf.example.com"
    );
    let raw: CredentialId = "30-ni:///sha-256;UyaQV-Ev4rdLoHyJJWCi11OHfrYv9E1aGQAlMO2X_-Q"
        .parse()
        .unwrap();
    assert_eq!(raw.type_id(), CredIdTypeId::TlsRawPublicKey);
    assert_eq!(
        raw.value(),
        "ni:///sha-256;UyaQV-Ev4rdLoHyJJWCi11OHfrYv9E1aGQAlMO2X_-Q"
    );
    let dashed: CredentialId = "12-a-b-c@x.com".parse().unwrap();
    assert_eq!(dashed.value(), "a-b-c@x.com", "split at the first '-'");
    for bad in [
        "", "12", "12-", "-abc", "x-abc", "99-abc", "0-abc", "12-a b", "123456-a", "+12-a",
    ] {
        assert!(bad.parse::<CredentialId>().is_err(), "{bad:?}");
    }
    assert_eq!(
        serde_json::to_string(&dashed).unwrap(),
        "\"12-a-b-c@x.com\""
    );
    assert_eq!(
        serde_json::from_str::<CredentialId>("\"12-a-b-c@x.com\"").unwrap(),
        dashed
    );
    assert!(serde_json::from_str::<CredentialId>("\"77-a\"").is_err());
}

#[test]
fn fqdn_rules() {
    assert_eq!(
        "MEF.Example.COM".parse::<Fqdn>().unwrap().as_str(),
        "mef.example.com"
    );
    for bad in [
        "",
        "a..b",
        ".a",
        "a.",
        "-a.com",
        "a-.com",
        "a_b.com",
        "1.2.3.4",
        "a b",
        &"a".repeat(64),
        "é.com",
    ] {
        assert!(bad.parse::<Fqdn>().is_err(), "{bad:?}");
    }
}

/// Issue 10 item 6: the Enrolee-ID and target ID types of the MEF's wire and store.
#[test]
fn enrolee_and_target_ids() {
    for (text, ae) in [
        ("Cdev1", true),
        ("S563423", true),
        ("/cse2/C3532ea3", true),
        ("//myoperator.com/cse2/C3532ea3", true),
        ("cse-mn", false),
        ("/cse-mn", false),
        ("//myoperator.com/cse-mn", false),
    ] {
        let id: EnroleeId = text.parse().unwrap();
        assert_eq!(id.to_string(), text);
        assert_eq!(id.as_ae_id().is_some(), ae, "{text}");
        assert_eq!(id.as_cse_id().is_some(), !ae, "{text}");
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{text}\""));
        assert_eq!(serde_json::from_str::<EnroleeId>(&json).unwrap(), id);
    }
    for bad in [
        "",
        "C/x",
        "/",
        "//sp.com",
        "a b",
        "-x",
        "Cdev1@x",
        "//SP.com/cse1",
    ] {
        assert!(bad.parse::<EnroleeId>().is_err(), "{bad:?}");
        assert!(serde_json::from_str::<EnroleeId>(&format!("{bad:?}")).is_err());
    }
    for (text, kind) in [
        ("//sp.example/cse-in", 0),
        ("//sp.example/cse-in/Cae1", 1),
        ("maf.example", 2),
    ] {
        let t: TargetId = text.parse().unwrap();
        assert_eq!(t.to_string(), text);
        assert_eq!(serde_json::to_string(&t).unwrap(), format!("\"{text}\""));
        let got = match t {
            TargetId::Cse(_) => 0,
            TargetId::Ae(_) => 1,
            TargetId::Fqdn(_) => 2,
        };
        assert_eq!(got, kind, "{text}");
        assert_eq!(t.is_m2m_id(), kind != 2);
    }
    for bad in [
        "",
        "/cse-in",
        "cse_in",
        "//",
        "//sp.example",
        "//sp.example/",
        "10.0.0.1",
        "//sp.example/cse-in/dev",
    ] {
        assert!(bad.parse::<TargetId>().is_err(), "{bad:?}");
    }
    let stem: AeIdStem = serde_json::from_str("\"Cdev1\"").unwrap();
    assert_eq!(serde_json::to_string(&stem).unwrap(), "\"Cdev1\"");
    assert!(serde_json::from_str::<AeIdStem>("\"dev1\"").is_err());
}

fn sp_id() -> impl Strategy<Value = String> {
    "[a-z]([a-z0-9-]{0,8}[a-z0-9])?(\\.[a-z]([a-z0-9-]{0,8}[a-z0-9])?){0,3}"
}
fn unreserved() -> impl Strategy<Value = String> {
    "[A-Za-z0-9][A-Za-z0-9._-]{0,15}"
}

proptest! {
    #[test]
    fn cse_id_round_trip(sp in sp_id(), stem in unreserved(), form in 0u8..3) {
        let s = match form { 0 => format!("//{sp}/{stem}"), 1 => format!("/{stem}"), _ => stem.clone() };
        let id: CseId = s.parse().unwrap();
        prop_assert_eq!(id.to_string(), s);
        prop_assert_eq!(id.stem(), stem.as_str());
    }

    #[test]
    fn ae_id_round_trip(sp in sp_id(), cse in unreserved(), rest in unreserved(), c_type: bool, form in 0u8..3) {
        let stem = if c_type { format!("C{rest}") } else { format!("S{rest}") };
        let rel = if c_type { format!("/{cse}/{stem}") } else { format!("/{stem}") };
        let s = match form { 0 => format!("//{sp}{rel}"), 1 => rel, _ => stem.clone() };
        let id: AeId = s.parse().unwrap();
        prop_assert_eq!(id.to_string(), s.clone());
        prop_assert_eq!(id.stem().as_str(), stem.as_str());
        let json = serde_json::to_string(&id).unwrap();
        prop_assert_eq!(serde_json::from_str::<AeId>(&json).unwrap(), id.clone());
        // As an Enrolee-ID, and (absolute) as a target ID, the text is kept byte for byte.
        let enrolee: EnroleeId = s.parse().unwrap();
        prop_assert_eq!(serde_json::to_string(&enrolee).unwrap(), json.clone());
        if form == 0 {
            let t: TargetId = s.parse().unwrap();
            prop_assert_eq!(serde_json::to_string(&t).unwrap(), json);
        }
    }

    #[test]
    fn key_ids_round_trip(rel in "[A-Za-z0-9._-]{1,40}", fqdn in sp_id(), bytes in any::<[u8; 16]>()) {
        let kpsa: KpsaId = format!("{rel}@{fqdn}").parse().unwrap();
        prop_assert_eq!(kpsa.to_string(), format!("{rel}@{fqdn}"));
        let kpm: KpmId = format!("{rel}@{fqdn}").parse().unwrap();
        prop_assert_eq!(kpm.to_string().parse::<KpmId>().unwrap(), kpm);
        let ke = KeId::new(RelativeKeId(bytes), fqdn.parse().unwrap());
        let text = ke.to_string();
        prop_assert_eq!(text.parse::<KeId>().unwrap(), ke.clone());
        let upper = format!("{}@{}", hex::encode_upper(bytes), fqdn.to_uppercase());
        prop_assert_eq!(upper.parse::<KeId>().unwrap(), ke);
        let cred = CredentialId::for_kpsa(&kpsa);
        prop_assert_eq!(cred.to_string().parse::<CredentialId>().unwrap(), cred);
    }

    #[test]
    fn random_text_never_panics(s in "\\PC{0,80}", b in proptest::collection::vec(any::<u8>(), 0..80)) {
        let lossy = String::from_utf8_lossy(&b).into_owned();
        for t in [s.as_str(), lossy.as_str()] {
            let _ = t.parse::<Fqdn>();
            let _ = t.parse::<RelKeyId>();
            let _ = t.parse::<KeId>();
            let _ = t.parse::<KpsaId>();
            let _ = t.parse::<KmId>();
            let _ = t.parse::<KpmId>();
            let _ = t.parse::<KeyId>();
            let _ = t.parse::<CredentialId>();
            let _ = t.parse::<CseId>();
            let _ = t.parse::<AeId>();
            let _ = t.parse::<RelativeKeId>();
            let _ = t.parse::<EnroleeId>();
            let _ = t.parse::<TargetId>();
            let _ = t.parse::<AeIdStem>();
        }
    }
}
