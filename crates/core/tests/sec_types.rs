//! TS-0003 clause 12 `sec:` types and `m2m:suid` (TS-0004 §6.3.4.2.39) against tables written out
//! here from the specifications (BRIEF §4), not derived from the crate's own enums.

use m2msec_core::sec::*;
use m2msec_core::suid::{Suid, SuidKind, SuidScope};
use serde_json::{json, Value};

// ---------------------------------------------------------------------------------------------
// Enumerations (TS-0003 §12.3.2)
// ---------------------------------------------------------------------------------------------

/// Table 12.3.2.2-1.
const DEV_MGMT_ID: &[(u16, &str)] = &[
    (1, "OMA DMv1.3"),
    (2, "OMA DMv2.0"),
    (3, "OMA LwM2M"),
    (4, "BBF TR-069"),
];

/// Table 12.3.2.3-1.
const CMD_CLASS_ID: &[(u16, &str)] = &[
    (0, "NO_MORE_COMMANDS"),
    (1, "CERT_PROV"),
    (2, "DEV_CFG"),
    (3, "MO_NODE"),
];

/// Table 12.3.2.4-1 (stray spaces removed; 305 as named in table 12.3.2.4-1).
const CMD_STATUS_CODE: &[(u16, &str)] = &[
    (10, "MEF_CLIENT_CMD_ISSUED"),
    (11, "MEF_CLIENT_CMD_REISSUED"),
    (20, "MEF_CLIENT_CMD_OK"),
    (40, "MEF_CLIENT_CMD_REPEATED_CMD_ID"),
    (41, "MEF_CLIENT_CMD_CLASS_NOT_SUPPORTED"),
    (42, "MEF_CLIENT_CMD_BAD_ARGUMENTS"),
    (43, "MEF_CLIENT_CMD_UNACCEPTABLE_ARGUMENTS"),
    (100, "MEF_CLIENT_CMD_CERT_PROV_SERVER_ERROR"),
    (101, "MEF_CLIENT_CMD_CERT_PROV_CLIENT_ERROR"),
    (201, "MEF_CLIENT_CMD_DEV_CFG_SERVER_ERROR"),
    (202, "MEF_CLIENT_CMD_DEV_CFG_CLIENT_ERROR"),
    (300, "MEF_CLIENT_CMD_MO_NODE_NOT_FOUND"),
    (301, "MEF_CLIENT_CMD_MO_NODE_TYPE_CONFLICT"),
    (302, "MEF_CLIENT_CMD_MO_NODE_BAD_ARGS"),
    (303, "MEF_CLIENT_CMD_MO_NODE_UNACCEPTABLE_ARGS"),
    (304, "MEF_CLIENT_CMD_MO_NODE_INCONSISTENT_CONFIG"),
    (305, "MEF_CLIENT_CMD_MO_NODE_EXECUTION_ERROR"),
];

/// Table 12.3.2.5-1.
const CERT_PROV_PROTOCOL_ID: &[(u16, &str)] = &[(1, "EST"), (2, "SCEP")];

/// Table 12.3.2.6-1.
const CERT_SUBJECT_TYPE: &[(u16, &str)] = &[(1, "Node-ID"), (2, "CSE-ID"), (3, "AE-ID")];

/// Table 12.3.2.7-1 (value 3 written "[MAFClientRefCfg]" there, a typo for [MAFClientRegCfg]).
const OBJECT_TYPE_ID: &[(u16, &str)] = &[
    (1, "[authenticationProfile]"),
    (2, "[trustAnchorCred]"),
    (3, "[MAFClientRegCfg]"),
];

/// Table 12.3.2.1-1 (numbers only; the type lives in `ids`).
const CRED_ID_TYPE_ID: &[u16] = &[
    10, 11, 12, 13, 14, 15, 16, 30, 31, 32, 33, 34, 41, 42, 43, 44, 45, 51, 52, 53, 54, 55,
];

/// Checks an enumeration against its table over every u16 (and a few i64 outside u16): defined
/// values convert, carry the table's name and serialise as that JSON number; all others are
/// rejected by `TryFrom` and by JSON deserialisation.
macro_rules! check_enum {
    ($t:ty, $table:expr) => {{
        let table: &[(u16, &str)] = $table;
        assert_eq!(
            <$t>::ALL.len(),
            table.len(),
            "{}: number of values",
            stringify!($t)
        );
        for v in 0..=u16::MAX {
            let expected = table.iter().find(|(n, _)| *n == v);
            let got = <$t>::try_from(v);
            match expected {
                Some((_, name)) => {
                    let e =
                        got.unwrap_or_else(|_| panic!("{} {v} must be defined", stringify!($t)));
                    assert_eq!(e.name(), *name);
                    assert_eq!(e.to_string(), *name);
                    assert_eq!(u16::from(e), v);
                    assert_eq!(<$t>::try_from(i64::from(v)).ok(), Some(e));
                    assert_eq!(serde_json::to_value(e).unwrap(), json!(v));
                    assert_eq!(serde_json::to_string(&e).unwrap(), v.to_string());
                    let back: $t = serde_json::from_str(&v.to_string()).unwrap();
                    assert_eq!(back, e);
                    // Never a string, never a float.
                    assert!(serde_json::from_str::<$t>(&format!("\"{v}\"")).is_err());
                    assert!(serde_json::from_str::<$t>(&format!("\"{name}\"")).is_err());
                    assert!(serde_json::from_str::<$t>(&format!("{v}.5")).is_err());
                }
                None => {
                    assert!(got.is_err(), "{} {v} must be rejected", stringify!($t));
                    if v < 1000 {
                        assert!(serde_json::from_str::<$t>(&v.to_string()).is_err());
                    }
                }
            }
        }
        for v in [-1i64, 65_536, i64::MIN, i64::MAX] {
            assert!(<$t>::try_from(v).is_err());
            assert!(serde_json::from_str::<$t>(&v.to_string()).is_err());
        }
    }};
}

#[test]
fn dev_mgmt_id_table() {
    check_enum!(DevMgmtId, DEV_MGMT_ID);
}

#[test]
fn cmd_class_id_table() {
    check_enum!(CmdClassId, CMD_CLASS_ID);
}

#[test]
fn cmd_status_code_table() {
    check_enum!(CmdStatusCode, CMD_STATUS_CODE);
}

#[test]
fn cert_prov_protocol_id_table() {
    check_enum!(CertProvProtocolId, CERT_PROV_PROTOCOL_ID);
}

#[test]
fn cert_subject_type_table() {
    check_enum!(CertSubjectType, CERT_SUBJECT_TYPE);
}

#[test]
fn object_type_id_table() {
    check_enum!(ObjectTypeId, OBJECT_TYPE_ID);
}

#[test]
fn cred_id_type_id_table() {
    assert_eq!(CredIdTypeId::ALL.len(), CRED_ID_TYPE_ID.len());
    for v in 0..=1000u16 {
        let defined = CRED_ID_TYPE_ID.contains(&v);
        let parsed = serde_json::from_str::<CredIdTypeId>(&v.to_string());
        assert_eq!(parsed.is_ok(), defined, "credIDTypeID {v}");
        if let Ok(t) = parsed {
            assert_eq!(serde_json::to_string(&t).unwrap(), v.to_string());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// m2m:suid (TS-0004 §6.3.4.2.39)
// ---------------------------------------------------------------------------------------------

/// Table 6.3.4.2.39-1 of TS-0004 V3.32.0 (BRIEF §4: 10–15, 21–25, 32–35, 40–45).
const SUID_DEFINED: &[u8] = &[
    10, 11, 12, 13, 14, 15, 21, 22, 23, 24, 25, 32, 33, 34, 35, 40, 41, 42, 43, 44, 45,
];

#[test]
fn suid_defined_set_is_exact() {
    for v in 0..=u8::MAX {
        let defined = SUID_DEFINED.contains(&v);
        assert_eq!(Suid::new(v).is_ok(), defined, "SUID {v}");
        assert_eq!(
            Suid::try_from(i64::from(v)).is_ok(),
            defined,
            "SUID {v} (i64)"
        );
        assert_eq!(
            v.to_string().parse::<Suid>().is_ok(),
            defined,
            "SUID {v:?} (text)"
        );
        assert_eq!(
            serde_json::from_str::<Suid>(&v.to_string()).is_ok(),
            defined,
            "SUID {v} (JSON)"
        );
    }
    assert_eq!(Suid::ALL.len(), SUID_DEFINED.len());
    for v in [-1i64, 256, 1022, i64::MAX] {
        assert!(Suid::try_from(v).is_err());
        assert!(serde_json::from_str::<Suid>(&v.to_string()).is_err());
    }
}

#[test]
fn suid_text_json_and_digits() {
    for &v in SUID_DEFINED {
        let s = Suid::new(v).unwrap();
        assert_eq!(s.value(), v);
        assert_eq!(s.to_string(), v.to_string());
        assert_eq!(s.to_string().parse::<Suid>().unwrap(), s);
        assert_eq!(serde_json::to_value(s).unwrap(), json!(v));
        let kind = match v / 10 {
            1 => SuidKind::PreProvisionedSymmetric,
            2 => SuidKind::RspfSymmetric,
            3 => SuidKind::MafDistributedSymmetric,
            4 => SuidKind::Certificate,
            _ => unreachable!(),
        };
        let scope = match v % 10 {
            0 => SuidScope::Mef,
            1 => SuidScope::Maf,
            2 => SuidScope::Saef,
            3 => SuidScope::EsPrim,
            4 => SuidScope::EsDataEncryption,
            5 => SuidScope::EsDataSignature,
            _ => unreachable!(),
        };
        assert_eq!((s.kind(), s.scope()), (kind, scope), "SUID {v}");
        assert_eq!(Suid::from_parts(kind, scope).unwrap(), s);
    }
    assert!(serde_json::from_str::<Suid>("\"22\"").is_err());
    assert!(serde_json::from_str::<Suid>("22.0").is_err());
    for bad in ["022", "+22", " 22", "22 ", "", "0x16"] {
        assert!(bad.parse::<Suid>().is_err(), "{bad:?}");
    }
}

#[test]
fn suid_named_constants() {
    let table = [
        (Suid::PRE_PROVISIONED_MEF, 10),
        (Suid::PRE_PROVISIONED_MAF, 11),
        (Suid::PRE_PROVISIONED_SAEF, 12),
        (Suid::PRE_PROVISIONED_ESPRIM, 13),
        (Suid::PRE_PROVISIONED_ESDATA_ENCRYPTION, 14),
        (Suid::PRE_PROVISIONED_ESDATA_SIGNATURE, 15),
        (Suid::RSPF_MAF, 21),
        (Suid::RSPF_SAEF, 22),
        (Suid::RSPF_ESPRIM, 23),
        (Suid::RSPF_ESDATA_ENCRYPTION, 24),
        (Suid::RSPF_ESDATA_SIGNATURE, 25),
        (Suid::MAF_DISTRIBUTED_SAEF, 32),
        (Suid::MAF_DISTRIBUTED_ESPRIM, 33),
        (Suid::MAF_DISTRIBUTED_ESDATA_ENCRYPTION, 34),
        (Suid::MAF_DISTRIBUTED_ESDATA_SIGNATURE, 35),
        (Suid::CERTIFICATE_MEF, 40),
        (Suid::CERTIFICATE_MAF, 41),
        (Suid::CERTIFICATE_SAEF, 42),
        (Suid::CERTIFICATE_ESPRIM, 43),
        (Suid::CERTIFICATE_ESDATA_ENCRYPTION, 44),
        (Suid::CERTIFICATE_ESDATA_SIGNATURE, 45),
    ];
    for (s, v) in table {
        assert_eq!(s.value(), v);
    }
}

// ---------------------------------------------------------------------------------------------
// Simple types (TS-0003 §12.2)
// ---------------------------------------------------------------------------------------------

#[test]
fn device_config_uri_example_of_table_12_2_1() {
    let d: DeviceConfigUri = "1:http://server.dmprovider.com".parse().unwrap();
    assert_eq!(d.dev_mgmt_id(), DevMgmtId::OmaDm13);
    assert_eq!(d.uri().as_str(), "http://server.dmprovider.com");
    assert_eq!(d.uri().host(), Some("server.dmprovider.com"));
    assert_eq!(d.to_string(), "1:http://server.dmprovider.com");
    assert_eq!(
        serde_json::to_value(&d).unwrap(),
        json!("1:http://server.dmprovider.com")
    );
    let lwm2m: DeviceConfigUri = "3:coaps://dm.example.com:5684".parse().unwrap();
    assert_eq!(lwm2m.dev_mgmt_id(), DevMgmtId::OmaLwm2m);
    assert_eq!(lwm2m.uri().as_str(), "coaps://dm.example.com:5684");
}

#[test]
fn device_config_uri_rejects() {
    for bad in [
        "0:http://x",
        "5:http://x",
        "http://x",
        ":http://x",
        "1:",
        "01:http://x",
        "+1:http://x",
        "-1:http://x",
        " 1:http://x",
        "1: http://x",
        "1:http://x y",
        "a:b",
        "65536:http://x",
        "99999999999999999999:http://x",
        "",
    ] {
        assert!(bad.parse::<DeviceConfigUri>().is_err(), "{bad:?}");
    }
    assert!(serde_json::from_value::<DeviceConfigUri>(json!(1)).is_err());
}

#[test]
fn rel_key_id_reexport() {
    assert!("my-key_name".parse::<RelKeyId>().is_ok());
    assert!("firstname.lastname".parse::<RelKeyId>().is_ok());
    assert!("1he83he".parse::<RelKeyId>().is_ok());
    assert!("bad key".parse::<RelKeyId>().is_err());
    assert!("bad/key".parse::<RelKeyId>().is_err());
}

// ---------------------------------------------------------------------------------------------
// sec:clientRegCfg, sec:keyRegCfg (TS-0003 §12.4.2, §12.4.3)
// ---------------------------------------------------------------------------------------------

fn full_client_reg_cfg() -> Value {
    json!({
        "expirationTime": "20301231T235959",
        "labels": ["mef", "site:berlin"],
        "fqdn": "mef.example.com",
        "adminFQDN": "admin.example.com",
        "httpPort": 443,
        "coapPort": 5684,
        "websocketPort": 65535
    })
}

#[test]
fn client_reg_cfg_round_trip() {
    let v = full_client_reg_cfg();
    let c: ClientRegCfg = serde_json::from_value(v.clone()).unwrap();
    assert_eq!(c.http_port.map(Port::get), Some(443));
    assert_eq!(c.coap_port.map(Port::get), Some(5684));
    assert_eq!(c.websocket_port.map(Port::get), Some(65535));
    assert_eq!(c.fqdn.as_str(), "mef.example.com");
    assert_eq!(c.admin_fqdn.as_str(), "admin.example.com");
    assert_eq!(c.expiration_time.unwrap().to_string(), "20301231T235959");
    assert_eq!(serde_json::to_value(&c).unwrap(), v);

    // Optional elements are omitted, not null.
    let min = ClientRegCfg::new(
        "mef.example.com".parse().unwrap(),
        "a.example.com".parse().unwrap(),
    );
    assert_eq!(
        serde_json::to_value(&min).unwrap(),
        json!({"fqdn": "mef.example.com", "adminFQDN": "a.example.com"})
    );
    let back: ClientRegCfg = serde_json::from_value(serde_json::to_value(&min).unwrap()).unwrap();
    assert_eq!(back, min);
}

fn with(mut v: Value, key: &str, val: Value) -> Value {
    v.as_object_mut().unwrap().insert(key.to_string(), val);
    v
}

fn without(mut v: Value, key: &str) -> Value {
    v.as_object_mut().unwrap().remove(key);
    v
}

#[test]
fn client_reg_cfg_rejects() {
    let base = full_client_reg_cfg();
    let cases = [
        ("missing fqdn", without(base.clone(), "fqdn")),
        ("missing adminFQDN", without(base.clone(), "adminFQDN")),
        ("port 0", with(base.clone(), "httpPort", json!(0))),
        ("port 70000", with(base.clone(), "coapPort", json!(70000))),
        (
            "port 65536",
            with(base.clone(), "websocketPort", json!(65536)),
        ),
        ("port -1", with(base.clone(), "httpPort", json!(-1))),
        (
            "port as string",
            with(base.clone(), "httpPort", json!("80")),
        ),
        ("port as float", with(base.clone(), "httpPort", json!(80.5))),
        ("fqdn wrong type", with(base.clone(), "fqdn", json!(5))),
        ("fqdn empty", with(base.clone(), "fqdn", json!(""))),
        (
            "fqdn with space",
            with(base.clone(), "fqdn", json!("mef example")),
        ),
        (
            "bad timestamp",
            with(base.clone(), "expirationTime", json!("20010229T000000")),
        ),
        (
            "timestamp number",
            with(base.clone(), "expirationTime", json!(0)),
        ),
        ("labels empty", with(base.clone(), "labels", json!([]))),
        (
            "label with space",
            with(base.clone(), "labels", json!(["a b"])),
        ),
        (
            "labels not a list",
            with(base.clone(), "labels", json!("a")),
        ),
        ("unknown element", with(base.clone(), "fqdnn", json!("x"))),
        (
            "short name",
            with(base.clone(), "et", json!("20301231T235959")),
        ),
    ];
    for (what, v) in cases {
        assert!(serde_json::from_value::<ClientRegCfg>(v).is_err(), "{what}");
    }
    assert!(serde_json::from_value::<ClientRegCfg>(json!([])).is_err());
    assert!(Port::new(0).is_err());
    assert_eq!(Port::new(1).unwrap().get(), 1);
    assert!(Port::try_from(70_000i64).is_err());
}

fn full_key_reg_cfg() -> Value {
    json!({
        "expirationTime": "20301231T235959,5",
        "labels": ["k"],
        "adminFQDN": "admin.example.com",
        "SUID": 22,
        "targetIDs": ["//sp.example.com/cse1", "/cse1/Cae1"]
    })
}

#[test]
fn key_reg_cfg_round_trip() {
    let v = full_key_reg_cfg();
    let k: KeyRegCfg = serde_json::from_value(v.clone()).unwrap();
    assert_eq!(k.suid, Suid::RSPF_SAEF);
    let ids: Vec<&str> = k
        .target_ids
        .as_ref()
        .unwrap()
        .as_slice()
        .iter()
        .map(M2mId::as_str)
        .collect();
    assert_eq!(ids, ["//sp.example.com/cse1", "/cse1/Cae1"]);
    assert_eq!(serde_json::to_value(&k).unwrap(), v);

    let min = KeyRegCfg::new("admin.example.com".parse().unwrap(), Suid::RSPF_MAF);
    assert_eq!(
        serde_json::to_value(&min).unwrap(),
        json!({"adminFQDN": "admin.example.com", "SUID": 21})
    );
}

#[test]
fn key_reg_cfg_rejects() {
    let base = full_key_reg_cfg();
    let cases = [
        ("missing SUID", without(base.clone(), "SUID")),
        ("missing adminFQDN", without(base.clone(), "adminFQDN")),
        ("undefined SUID 20", with(base.clone(), "SUID", json!(20))),
        ("undefined SUID 31", with(base.clone(), "SUID", json!(31))),
        ("SUID as string", with(base.clone(), "SUID", json!("22"))),
        (
            "targetIDs empty",
            with(base.clone(), "targetIDs", json!([])),
        ),
        (
            "targetIDs as string",
            with(base.clone(), "targetIDs", json!("//sp/cse1")),
        ),
        (
            "targetID with space",
            with(base.clone(), "targetIDs", json!(["a b"])),
        ),
        (
            "lower-case suid key",
            with(without(base.clone(), "SUID"), "suid", json!(22)),
        ),
        ("unknown element", with(base.clone(), "fqdn", json!("x"))),
    ];
    for (what, v) in cases {
        assert!(serde_json::from_value::<KeyRegCfg>(v).is_err(), "{what}");
    }
}

// ---------------------------------------------------------------------------------------------
// sec:cmdDescription and sec:cmdArgs (TS-0003 §12.4.4–§12.4.10)
// ---------------------------------------------------------------------------------------------

fn no_more() -> Value {
    json!({"cmdClassID": 0, "cmdArgs": {"noMoreCmdArgs": {"retryDuration": "PT30S"}}})
}

fn cert_prov() -> Value {
    json!({
        "cmdClassID": 1,
        "cmdArgs": {"certProvCmdArgs": {
            "certProvProtocolID": 1,
            "URI": "https://mef.example.com/.well-known/est",
            "certSubjectType": 2,
            "certSubjectID": "//sp.example.com/cse1"
        }},
        "targetID": "//sp.example.com/cse1"
    })
}

fn dev_cfg() -> Value {
    json!({
        "cmdClassID": 2,
        "cmdArgs": {"devCfgCmdArgs": {"deviceConfigURI": "1:http://server.dmprovider.com"}}
    })
}

fn mo_node() -> Value {
    json!({
        "cmdClassID": 3,
        "cmdArgs": {"MONodeCmdArgs": {
            "objectPath": "./oneM2M/authenticationProfile/1",
            "objectTypeID": 1,
            "objectTypeSpecifcArgs": {"SUID": 22}
        }}
    })
}

fn mo_node_trust_anchor() -> Value {
    json!({
        "cmdClassID": 3,
        "cmdArgs": {"MONodeCmdArgs": {"objectPath": "./oneM2M/trustAnchorCred/1", "objectTypeID": 2}}
    })
}

#[test]
fn cmd_description_round_trips() {
    for v in [
        no_more(),
        cert_prov(),
        dev_cfg(),
        mo_node(),
        mo_node_trust_anchor(),
    ] {
        let d: CmdDescription = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(serde_json::to_value(&d).unwrap(), v);
        assert_eq!(CmdDescription::parse_for_client(&v).unwrap(), d);
    }
}

#[test]
fn cmd_description_contents() {
    let d: CmdDescription = serde_json::from_value(no_more()).unwrap();
    assert_eq!(d.class_id(), CmdClassId::NoMoreCommands);
    assert!(d.target_id().is_none());
    match d.args() {
        CmdArgs::NoMore(a) => assert_eq!(a.retry_duration.to_seconds(), Some(30)),
        other => panic!("{other:?}"),
    }

    let d: CmdDescription = serde_json::from_value(cert_prov()).unwrap();
    assert_eq!(d.class_id(), CmdClassId::CertProv);
    assert_eq!(
        d.target_id().map(M2mId::as_str),
        Some("//sp.example.com/cse1")
    );
    match d.args() {
        CmdArgs::CertProv(a) => {
            assert_eq!(a.cert_prov_protocol_id, CertProvProtocolId::Est);
            assert_eq!(a.cert_subject_type, CertSubjectType::CseId);
            assert_eq!(a.uri.host(), Some("mef.example.com"));
            assert!(a.subject_id_matches_type());
        }
        other => panic!("{other:?}"),
    }

    let d: CmdDescription = serde_json::from_value(dev_cfg()).unwrap();
    match d.args() {
        CmdArgs::DevCfg(a) => {
            assert_eq!(a.device_config_uri.dev_mgmt_id(), DevMgmtId::OmaDm13);
            assert_eq!(
                a.device_config_uri.uri().as_str(),
                "http://server.dmprovider.com"
            );
        }
        other => panic!("{other:?}"),
    }

    let d: CmdDescription = serde_json::from_value(mo_node()).unwrap();
    match d.args() {
        CmdArgs::MoNode(a) => {
            assert_eq!(a.object_type_id(), ObjectTypeId::AuthenticationProfile);
            assert_eq!(a.object_path().as_str(), "./oneM2M/authenticationProfile/1");
            assert_eq!(
                a.object_type_specific_args().map(|x| x.suid),
                Some(Suid::RSPF_SAEF)
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn cmd_description_built_in_code() {
    let d = CmdDescription::new(
        CmdArgs::MoNode(MoNodeCmdArgs::authentication_profile(
            "./a/1".parse().unwrap(),
            Suid::PRE_PROVISIONED_SAEF,
        )),
        Some("/cse1/Cae1".parse().unwrap()),
    );
    assert_eq!(
        serde_json::to_value(&d).unwrap(),
        json!({
            "cmdClassID": 3,
            "cmdArgs": {"MONodeCmdArgs": {
                "objectPath": "./a/1", "objectTypeID": 1, "objectTypeSpecifcArgs": {"SUID": 12}
            }},
            "targetID": "/cse1/Cae1"
        })
    );
    let path: AnyUri = "./b".parse().unwrap();
    assert!(MoNodeCmdArgs::new(path.clone(), ObjectTypeId::AuthenticationProfile, None).is_err());
    assert!(MoNodeCmdArgs::new(
        path.clone(),
        ObjectTypeId::TrustAnchorCred,
        Some(AuthProfileMoNodeArgs {
            suid: Suid::RSPF_SAEF
        })
    )
    .is_err());
    assert!(MoNodeCmdArgs::new(path, ObjectTypeId::MafClientRegCfg, None).is_ok());
}

#[test]
fn corrected_spelling_is_read_and_spec_spelling_written() {
    let v = json!({
        "cmdClassID": 3,
        "cmdArgs": {"MONodeCmdArgs": {
            "objectPath": "./a/1", "objectTypeID": 1, "objectTypeSpecificArgs": {"SUID": 22}
        }}
    });
    let d: CmdDescription = serde_json::from_value(v).unwrap();
    let out = serde_json::to_value(&d).unwrap();
    assert_eq!(
        out["cmdArgs"]["MONodeCmdArgs"]["objectTypeSpecifcArgs"],
        json!({"SUID": 22})
    );
}

fn set(mut v: Value, path: &[&str], val: Value) -> Value {
    let mut cur = &mut v;
    for (i, k) in path.iter().enumerate() {
        if i + 1 == path.len() {
            cur.as_object_mut().unwrap().insert(k.to_string(), val);
            break;
        }
        cur = cur.get_mut(*k).unwrap();
    }
    v
}

fn remove(mut v: Value, path: &[&str]) -> Value {
    let (last, init) = path.split_last().unwrap();
    let mut cur = &mut v;
    for k in init {
        cur = cur.get_mut(*k).unwrap();
    }
    cur.as_object_mut().unwrap().remove(*last);
    v
}

/// Invalid command descriptions, with the status code a MEF Client reports for each
/// (`None`: the description itself did not parse).
fn invalid_cmd_descriptions() -> Vec<(&'static str, Value, Option<CmdStatusCode>)> {
    use CmdStatusCode as C;
    let two_choices = set(
        no_more(),
        &["cmdArgs", "devCfgCmdArgs"],
        json!({"deviceConfigURI": "1:http://x"}),
    );
    vec![
        ("not an object", json!([1, 2]), None),
        (
            "missing cmdClassID",
            remove(no_more(), &["cmdClassID"]),
            None,
        ),
        ("missing cmdArgs", remove(no_more(), &["cmdArgs"]), None),
        (
            "cmdClassID as string",
            set(no_more(), &["cmdClassID"], json!("0")),
            None,
        ),
        (
            "cmdClassID as name",
            set(no_more(), &["cmdClassID"], json!("NO_MORE_COMMANDS")),
            None,
        ),
        (
            "bad targetID",
            set(no_more(), &["targetID"], json!("a b")),
            None,
        ),
        (
            "targetID wrong type",
            set(no_more(), &["targetID"], json!(7)),
            None,
        ),
        (
            "unknown element",
            set(no_more(), &["cmdStatusCode"], json!(10)),
            None,
        ),
        (
            "unknown class",
            set(no_more(), &["cmdClassID"], json!(4)),
            Some(C::ClassNotSupported),
        ),
        (
            "negative class",
            set(no_more(), &["cmdClassID"], json!(-1)),
            Some(C::ClassNotSupported),
        ),
        ("two choices", two_choices, Some(C::BadArguments)),
        (
            "no choice",
            set(no_more(), &["cmdArgs"], json!({})),
            Some(C::BadArguments),
        ),
        (
            "cmdArgs not an object",
            set(no_more(), &["cmdArgs"], json!("x")),
            Some(C::BadArguments),
        ),
        (
            "class/args mismatch",
            set(dev_cfg(), &["cmdClassID"], json!(0)),
            Some(C::BadArguments),
        ),
        (
            "unknown choice",
            set(no_more(), &["cmdArgs"], json!({"otherCmdArgs": {}})),
            Some(C::BadArguments),
        ),
        (
            "8.3.9.7 name certProvArgs",
            {
                let inner = cert_prov()["cmdArgs"]["certProvCmdArgs"].clone();
                set(cert_prov(), &["cmdArgs"], json!({"certProvArgs": inner}))
            },
            Some(C::BadArguments),
        ),
        (
            "missing retryDuration",
            set(no_more(), &["cmdArgs", "noMoreCmdArgs"], json!({})),
            Some(C::BadArguments),
        ),
        (
            "negative retryDuration",
            set(
                no_more(),
                &["cmdArgs", "noMoreCmdArgs", "retryDuration"],
                json!("-PT30S"),
            ),
            Some(C::BadArguments),
        ),
        (
            "retryDuration as number",
            set(
                no_more(),
                &["cmdArgs", "noMoreCmdArgs", "retryDuration"],
                json!(30),
            ),
            Some(C::BadArguments),
        ),
        (
            "unknown protocol",
            set(
                cert_prov(),
                &["cmdArgs", "certProvCmdArgs", "certProvProtocolID"],
                json!(3),
            ),
            Some(C::BadArguments),
        ),
        (
            "unknown subject type",
            set(
                cert_prov(),
                &["cmdArgs", "certProvCmdArgs", "certSubjectType"],
                json!(0),
            ),
            Some(C::BadArguments),
        ),
        (
            "missing URI",
            remove(cert_prov(), &["cmdArgs", "certProvCmdArgs", "URI"]),
            Some(C::BadArguments),
        ),
        (
            "lower-case uri key",
            {
                let v = remove(cert_prov(), &["cmdArgs", "certProvCmdArgs", "URI"]);
                set(
                    v,
                    &["cmdArgs", "certProvCmdArgs", "uri"],
                    json!("https://mef.example.com"),
                )
            },
            Some(C::BadArguments),
        ),
        (
            "missing certSubjectID",
            remove(
                cert_prov(),
                &["cmdArgs", "certProvCmdArgs", "certSubjectID"],
            ),
            Some(C::BadArguments),
        ),
        (
            "8.3.9.8 separate fields",
            set(
                dev_cfg(),
                &["cmdArgs", "devCfgCmdArgs"],
                json!({"devMgmtID": 1, "URI": "http://x"}),
            ),
            Some(C::BadArguments),
        ),
        (
            "bad deviceConfigURI",
            set(
                dev_cfg(),
                &["cmdArgs", "devCfgCmdArgs", "deviceConfigURI"],
                json!("9:http://x"),
            ),
            Some(C::BadArguments),
        ),
        (
            "unknown objectTypeID",
            set(
                mo_node(),
                &["cmdArgs", "MONodeCmdArgs", "objectTypeID"],
                json!(4),
            ),
            Some(C::BadArguments),
        ),
        (
            "missing objectPath",
            remove(mo_node(), &["cmdArgs", "MONodeCmdArgs", "objectPath"]),
            Some(C::BadArguments),
        ),
        (
            "authProfile without args",
            remove(
                mo_node(),
                &["cmdArgs", "MONodeCmdArgs", "objectTypeSpecifcArgs"],
            ),
            Some(C::MoNodeBadArgs),
        ),
        (
            "authProfile with bad SUID",
            set(
                mo_node(),
                &["cmdArgs", "MONodeCmdArgs", "objectTypeSpecifcArgs"],
                json!({"SUID": 31}),
            ),
            Some(C::MoNodeBadArgs),
        ),
        (
            "authProfile args wrapped",
            set(
                mo_node(),
                &["cmdArgs", "MONodeCmdArgs", "objectTypeSpecifcArgs"],
                json!({"authProfileMONodeArgs": {"SUID": 22}}),
            ),
            Some(C::MoNodeBadArgs),
        ),
        (
            "trustAnchorCred with args",
            set(
                mo_node_trust_anchor(),
                &["cmdArgs", "MONodeCmdArgs", "objectTypeSpecifcArgs"],
                json!({"SUID": 22}),
            ),
            Some(C::MoNodeBadArgs),
        ),
    ]
}

#[test]
fn cmd_description_rejects() {
    for (what, v, _) in invalid_cmd_descriptions() {
        assert!(
            serde_json::from_value::<CmdDescription>(v.clone()).is_err(),
            "{what}: strict"
        );
        assert!(
            serde_json::from_str::<CmdDescription>(&v.to_string()).is_err(),
            "{what}: text"
        );
    }
}

#[test]
fn cmd_description_rejection_status_codes() {
    for (what, v, code) in invalid_cmd_descriptions() {
        let err = CmdDescription::parse_for_client(&v).expect_err(what);
        assert_eq!(err.status_code(), code, "{what}: {err}");
    }
    let v = remove(
        mo_node(),
        &["cmdArgs", "MONodeCmdArgs", "objectTypeSpecifcArgs"],
    );
    match CmdDescription::parse_for_client(&v) {
        Err(CmdRejection::MoNodeBadArgs {
            object_path,
            object_type_id,
            ..
        }) => {
            assert_eq!(object_path.as_str(), "./oneM2M/authenticationProfile/1");
            assert_eq!(object_type_id, ObjectTypeId::AuthenticationProfile);
        }
        other => panic!("{other:?}"),
    }
    match CmdDescription::parse_for_client(&set(no_more(), &["cmdClassID"], json!(7))) {
        Err(CmdRejection::UnknownClass(7)) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn cmd_args_choice_alone() {
    let one: CmdArgs =
        serde_json::from_value(json!({"noMoreCmdArgs": {"retryDuration": "P1DT2H"}})).unwrap();
    assert_eq!(one.class_id(), CmdClassId::NoMoreCommands);
    assert_eq!(one.element_name(), "noMoreCmdArgs");
    let all = json!({
        "noMoreCmdArgs": {"retryDuration": "PT1S"},
        "certProvCmdArgs": cert_prov()["cmdArgs"]["certProvCmdArgs"].clone(),
        "devCfgCmdArgs": {"deviceConfigURI": "1:http://x"},
        "MONodeCmdArgs": mo_node_trust_anchor()["cmdArgs"]["MONodeCmdArgs"].clone()
    });
    assert!(serde_json::from_value::<CmdArgs>(all).is_err());
}

#[test]
fn cert_subject_id_checks_use_natural_mapping() {
    // BRIEF A22: CSE→CSE-ID, AE→AE-ID (TS-0003 §8.3.9.7 has the two swapped).
    let args = |ty: CertSubjectType, id: &str| CertProvCmdArgs {
        cert_prov_protocol_id: CertProvProtocolId::Est,
        uri: "https://mef.example.com".parse().unwrap(),
        cert_subject_type: ty,
        cert_subject_id: id.parse().unwrap(),
    };
    assert!(args(CertSubjectType::CseId, "//sp.example.com/cse1").subject_id_matches_type());
    assert!(!args(CertSubjectType::AeId, "//sp.example.com/cse1").subject_id_matches_type());
    assert!(args(CertSubjectType::AeId, "/cse1/Cae1").subject_id_matches_type());
    assert!(!args(CertSubjectType::CseId, "/cse1/Cae1").subject_id_matches_type());
    assert!(args(
        CertSubjectType::NodeId,
        "urn:gsma:imei:90420156-025763-0;svn=42"
    )
    .subject_id_matches_type());
    assert!(!args(CertSubjectType::NodeId, "//sp.example.com/cse1").subject_id_matches_type());
}

// ---------------------------------------------------------------------------------------------
// xs:duration (sec:noMoreCmdArgs retryDuration)
// ---------------------------------------------------------------------------------------------

#[test]
fn retry_duration() {
    let d = |s: &str| s.parse::<XsDuration>();
    assert_eq!(d("PT30S").unwrap().to_seconds(), Some(30));
    assert_eq!(d("P1DT2H").unwrap().to_seconds(), Some(26 * 3600));
    assert_eq!(
        d("PT1M30.25S").unwrap().to_duration(),
        Some(std::time::Duration::from_millis(90_250))
    );
    assert_eq!(d("P1DT2H").unwrap().to_string(), "P1DT2H");
    assert_eq!(d("-PT30S"), Err(DurationError::Negative));
    for bad in ["", "P", "PT", "30", "PT30", "P1H", "PT-1S", "P1.5D"] {
        assert!(d(bad).is_err(), "{bad:?}");
    }
    assert_eq!(
        serde_json::to_value(XsDuration::from_secs(45)).unwrap(),
        json!("PT45S")
    );
}

#[test]
fn arbitrary_json_never_panics() {
    // A few hostile shapes through every entry point.
    let inputs = [
        json!(null),
        json!(true),
        json!(1e300),
        json!(u64::MAX),
        json!(i64::MIN),
        json!("\u{0}"),
        json!({"cmdClassID": u64::MAX, "cmdArgs": {}}),
        json!({"cmdClassID": 3, "cmdArgs": {"MONodeCmdArgs": null}}),
        json!({"cmdClassID": 3, "cmdArgs": {"MONodeCmdArgs": {"objectPath": "x", "objectTypeID": 1, "objectTypeSpecifcArgs": null}}}),
        json!({"cmdClassID": 0, "cmdArgs": {"noMoreCmdArgs": {"retryDuration": "P99999999999999999999999D"}}}),
    ];
    for v in inputs {
        let _ = serde_json::from_value::<CmdDescription>(v.clone());
        let _ = CmdDescription::parse_for_client(&v);
        let _ = serde_json::from_value::<ClientRegCfg>(v.clone());
        let _ = serde_json::from_value::<KeyRegCfg>(v.clone());
        let _ = serde_json::from_value::<Suid>(v.clone());
        let _ = serde_json::from_value::<CmdStatusCode>(v);
    }
}
