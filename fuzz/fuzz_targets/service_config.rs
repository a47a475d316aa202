//! What an operator or a script hands the services, on arbitrary bytes: service URLs
//! (`m2msec request --url`, `enrol --mef`, the `url` of a link section) through the one URL
//! parser, and the CSE, MEF and PKG configuration files through their TOML types and
//! validation. No panic; a URL that parses prints back to a URL that parses the same.
#![no_main]
use libfuzzer_sys::fuzz_target;
use m2msec_bindings::url::ServiceUrl;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(u) = ServiceUrl::parse(text) {
        let again = ServiceUrl::parse(&u.to_string()).expect("a printed URL parses");
        assert_eq!(again, u);
        let _ = u.clone().require_no_path();
        let _ = u.sni();
        let _ = u.is_loopback();
    }
    // Validation reads key files named in the text; paths that do not exist are errors, which
    // is all the fuzzer should see.
    if let Ok(f) = toml::from_str::<m2msec_cse_service::config::CseFile>(text) {
        let _ = f.validate();
    }
    if let Ok(f) = toml::from_str::<m2msec_mef::config::MefFile>(text) {
        let _ = f.validate();
    }
    if let Ok(f) = toml::from_str::<m2msec_mef::config::PkgFile>(text) {
        let _ = f.validate();
    }
});
