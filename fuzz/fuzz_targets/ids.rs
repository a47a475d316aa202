//! Every identifier parser and the KDF identifier normaliser on arbitrary input: no panic, and
//! whatever parses formats back to text that parses to the same value.
#![no_main]
use libfuzzer_sys::fuzz_target;
use m2msec_core::ids::*;
use m2msec_core::kdf::KdfIdentifier;

macro_rules! round_trip {
    ($t:ty, $s:expr) => {
        if let Ok(v) = $s.parse::<$t>() {
            let again: $t = v.to_string().parse().expect("formatted identifier must parse");
            assert_eq!(again, v);
        }
    };
}

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    round_trip!(Fqdn, s);
    round_trip!(RelKeyId, s);
    round_trip!(RelativeKeId, s);
    round_trip!(KeId, s);
    round_trip!(KpsaId, s);
    round_trip!(KmId, s);
    round_trip!(KpmId, s);
    round_trip!(KeyId, s);
    round_trip!(CredentialId, s);
    round_trip!(CseId, s);
    round_trip!(AeId, s);
    let _ = KdfIdentifier::new(&s);
    let _ = serde_json::from_slice::<CredentialId>(data);
});
