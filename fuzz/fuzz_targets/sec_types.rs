//! TS-0003 clause 12 `sec:` types and `m2m:suid` on arbitrary input: no panic; text forms
//! round-trip; JSON that the strict deserialiser accepts re-serialises to an equal value, and the
//! MEF Client parser accepts exactly what the strict deserialiser accepts.
#![no_main]
use libfuzzer_sys::fuzz_target;
use m2msec_core::sec::*;
use m2msec_core::suid::Suid;
use serde_json::Value;

macro_rules! round_trip {
    ($t:ty, $s:expr) => {
        if let Ok(v) = $s.parse::<$t>() {
            let again: $t = v.to_string().parse().expect("formatted value must parse");
            assert_eq!(again, v);
        }
    };
}

macro_rules! json_round_trip {
    ($t:ty, $v:expr) => {
        if let Ok(x) = serde_json::from_value::<$t>($v.clone()) {
            let out = serde_json::to_value(&x).expect("serialisable");
            let again: $t = serde_json::from_value(out).expect("serialised value must parse");
            assert_eq!(again, x);
        }
    };
}

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    round_trip!(Suid, s);
    round_trip!(DeviceConfigUri, s);
    round_trip!(AnyUri, s);
    round_trip!(M2mId, s);
    if let Ok(u) = s.parse::<AnyUri>() {
        let _ = (u.scheme(), u.host());
    }

    let Ok(v) = serde_json::from_slice::<Value>(data) else {
        let _ = serde_json::from_slice::<CmdDescription>(data);
        let _ = serde_json::from_slice::<ClientRegCfg>(data);
        let _ = serde_json::from_slice::<KeyRegCfg>(data);
        return;
    };
    json_round_trip!(CmdDescription, v);
    json_round_trip!(CmdArgs, v);
    json_round_trip!(ClientRegCfg, v);
    json_round_trip!(KeyRegCfg, v);
    json_round_trip!(Suid, v);
    json_round_trip!(CmdStatusCode, v);
    json_round_trip!(CmdClassId, v);

    let strict = serde_json::from_value::<CmdDescription>(v.clone());
    match (strict, CmdDescription::parse_for_client(&v)) {
        (Ok(a), Ok(b)) => assert_eq!(a, b),
        (Err(_), Err(rejection)) => {
            let _ = rejection.status_code();
        }
        (a, b) => panic!("strict and client parsers disagree: {a:?} vs {b:?}"),
    }
    if let Ok(c) = serde_json::from_value::<CertProvCmdArgs>(v) {
        let _ = c.subject_id_matches_type();
    }
});
