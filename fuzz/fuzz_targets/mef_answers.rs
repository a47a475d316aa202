//! What a CSE reads from its MEF (issue 9 items 1, 7, 8; `m2msec_mef::wire`): a
//! `/fetchCredentials` answer, an Enrolee-ID reservation and a page of the change feed, from
//! arbitrary bytes through the same strict JSON parser the bindings use. No panic; a secret that
//! parses never shows in `Debug`.
#![no_main]
use libfuzzer_sys::fuzz_target;
use m2msec_cse::primitive::json_strict;
use m2msec_mef::wire::{self, ChangeFeed, EnroleeReservation, FetchCredentialsResponse};

fuzz_target!(|data: &[u8]| {
    let Ok(v) = json_strict(data) else { return };
    if let Ok(r) = serde_json::from_value::<FetchCredentialsResponse>(v.clone()) {
        if let Some(c) = &r.credential {
            let shown = format!("{r:?}");
            let hex = hex::encode(c.expose_secret());
            assert!(hex.len() < 8 || !shown.contains(&hex), "secret in Debug");
        }
    }
    let _ = wire::unwrap::<EnroleeReservation>("mefEnrolee", Some(&v));
    let _ = wire::unwrap::<ChangeFeed>("mefChanges", Some(&v));
});
