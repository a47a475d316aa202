//! Detects whether the OpenSSL in use supports RFC 7250 raw public keys (>= 3.2) and sets
//! `cfg(m2msec_rpk)`; the vendored build (default) always does, the Debian 12 system library
//! (3.0) does not.

fn main() {
    println!("cargo:rustc-check-cfg=cfg(m2msec_rpk)");
    println!("cargo:rerun-if-env-changed=DEP_OPENSSL_VERSION_NUMBER");
    let version = std::env::var("DEP_OPENSSL_VERSION_NUMBER")
        .ok()
        .and_then(|v| u64::from_str_radix(&v, 16).ok())
        .unwrap_or(0);
    if version >= 0x3020_0000 {
        println!("cargo:rustc-cfg=m2msec_rpk");
    }
}
