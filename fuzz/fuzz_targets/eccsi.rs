//! ECCSI parsers and verification on arbitrary bytes: no panic, and no forged signature verifies
//! under a fixed KPAK.
#![no_main]
use libfuzzer_sys::fuzz_target;
use m2msec_core::eccsi::{verify, Kpak, Pvt, Signature};

// RFC 6507 Appendix A KPAK.
const KPAK: &str = "0450d4670bde75244f28d2838a0d25558a7a72686d4522d4c8273fb6442aebfa93dbdd37551afd263b5dfd617f3960c65a8c298850ff99f20366dce7d4367217f4";

fuzz_target!(|data: &[u8]| {
    let _ = Kpak::from_bytes(data);
    let _ = Pvt::from_bytes(data);
    let kpak = Kpak::from_bytes(&hex_decode(KPAK)).expect("RFC KPAK");
    if data.len() >= 129 {
        if let Ok(sig) = Signature::from_bytes(&data[..129]) {
            // A random signature verifying would be a forgery.
            assert!(verify(&kpak, &data[129..], b"message\0", &sig).is_err());
        }
    } else if let Ok(sig) = Signature::from_bytes(data) {
        let _ = verify(&kpak, b"id", b"msg", &sig);
    }
});

fn hex_decode(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}
