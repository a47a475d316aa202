//! The few OpenSSL calls the `openssl` crate does not wrap: the DTLS timer (`DTLSv1_get_timeout`,
//! `DTLSv1_handle_timeout`, both `SSL_ctrl` macros), stateless cookie exchange (`DTLSv1_listen`)
//! automatic DH parameters (`SSL_CTX_set_dh_auto`) for DHE-PSK, freeing idle record buffers
//! (`SSL_free_buffers`, `SSL_has_pending`), and two certificate
//! verification result codes the crate does not name.
//!
//! This is the only module with `unsafe`. Every function takes a safe reference to an object
//! owned by the `openssl` crate, so the pointers passed to OpenSSL are valid for the call.

#![allow(unsafe_code)]

use std::os::raw::{c_int, c_long, c_void};
use std::ptr;
use std::time::Duration;

use foreign_types::ForeignTypeRef;
use openssl::ssl::{SslContextBuilder, SslRef};
use openssl::x509::{GeneralNameRef, X509Ref, X509VerifyResult};
use openssl_sys as sys;

const DTLS_CTRL_GET_TIMEOUT: c_int = 73;
const DTLS_CTRL_HANDLE_TIMEOUT: c_int = 74;

/// Opaque `BIO_ADDR` (openssl-sys declares it only for some OpenSSL versions).
#[repr(C)]
struct BioAddr {
    _opaque: [u8; 0],
}

extern "C" {
    fn DTLSv1_listen(s: *mut sys::SSL, client: *mut BioAddr) -> c_int;
    fn BIO_ADDR_new() -> *mut BioAddr;
    fn BIO_ADDR_free(a: *mut BioAddr);
    fn SSL_free_buffers(s: *mut sys::SSL) -> c_int;
    fn SSL_has_pending(s: *const sys::SSL) -> c_int;
    fn X509_get0_pubkey_bitstr(x: *const sys::X509) -> *mut sys::ASN1_BIT_STRING;
    fn GENERAL_NAME_get0_otherName(
        gen: *const sys::GENERAL_NAME,
        poid: *mut *mut sys::ASN1_OBJECT,
        pvalue: *mut *mut sys::ASN1_TYPE,
    ) -> c_int;
    fn i2d_ASN1_TYPE(a: *const sys::ASN1_TYPE, out: *mut *mut u8) -> c_int;
    #[cfg(test)]
    fn SSL_get_cipher_list(s: *const sys::SSL, n: c_int) -> *const std::os::raw::c_char;
}

/// Free the connection's record-layer read and write buffers if nothing is pending in them
/// (`SSL_free_buffers`); OpenSSL allocates them again when it next reads or writes. DTLS never
/// releases its read buffer by itself, even with `SSL_MODE_RELEASE_BUFFERS`, so an idle
/// session would otherwise keep a ~17 KiB buffer. Returns whether they were freed.
///
/// Only with OpenSSL 3.2 or later (the vendored build is 3.6): with 3.0's DTLS record layer a
/// write after `SSL_free_buffers` dereferences the freed write buffer (seen as a SIGSEGV in
/// `SSL_write_ex` with Debian's 3.0.19; compare CVE-2024-4741). With an older library the
/// buffers are kept.
pub(crate) fn free_buffers(ssl: &SslRef) -> bool {
    if openssl::version::number() < 0x3020_0000 {
        return false;
    }
    // SAFETY: `ssl` is a live SSL owned by the openssl crate; the call only frees buffers
    // that OpenSSL itself owns and reallocates on demand.
    unsafe { SSL_free_buffers(ssl.as_ptr()) == 1 }
}

/// Whether OpenSSL holds received data not yet returned to the application, processed or not
/// (`SSL_has_pending`; for DTLS this includes buffered application records).
pub(crate) fn has_pending(ssl: &SslRef) -> bool {
    // SAFETY: read-only query on a live SSL.
    unsafe { SSL_has_pending(ssl.as_ptr()) == 1 }
}

/// The subjectPublicKey BIT STRING of a certificate (for an EC key: the encoded point, whose
/// first octet tells compressed 0x02/0x03 from uncompressed 0x04).
pub(crate) fn cert_public_key_bits(cert: &X509Ref) -> Option<Vec<u8>> {
    // SAFETY: `cert` is a live X509; the returned bit string is owned by it and copied out
    // before `cert` can go away.
    unsafe {
        let bits = X509_get0_pubkey_bitstr(cert.as_ptr());
        if bits.is_null() {
            return None;
        }
        let data = sys::ASN1_STRING_get0_data(bits as *const sys::ASN1_STRING);
        let len = usize::try_from(sys::ASN1_STRING_length(bits as *const sys::ASN1_STRING)).ok()?;
        if data.is_null() {
            return None;
        }
        Some(std::slice::from_raw_parts(data, len).to_vec())
    }
}

/// An otherName SubjectAltName: its type-id in dotted form and the DER of its value.
pub(crate) fn other_name(gen: &GeneralNameRef) -> Option<(String, Vec<u8>)> {
    // SAFETY: `gen` is a live GENERAL_NAME; the OID and value it points to are owned by it and
    // only read (OBJ_obj2txt into our buffer, i2d into a buffer OpenSSL allocates and we free).
    unsafe {
        let mut oid: *mut sys::ASN1_OBJECT = ptr::null_mut();
        let mut value: *mut sys::ASN1_TYPE = ptr::null_mut();
        if GENERAL_NAME_get0_otherName(gen.as_ptr(), &mut oid, &mut value) != 1
            || oid.is_null()
            || value.is_null()
        {
            return None;
        }
        let mut buf = [0u8; 128];
        let n = sys::OBJ_obj2txt(buf.as_mut_ptr() as *mut _, buf.len() as c_int, oid, 1);
        let n = usize::try_from(n)
            .ok()
            .filter(|&n| n > 0 && n < buf.len())?;
        let oid = std::str::from_utf8(&buf[..n]).ok()?.to_string();
        let mut out: *mut u8 = ptr::null_mut();
        let len = usize::try_from(i2d_ASN1_TYPE(value, &mut out)).ok()?;
        if out.is_null() {
            return None;
        }
        let der = std::slice::from_raw_parts(out, len).to_vec();
        sys::OPENSSL_free(out as *mut c_void);
        Some((oid, der))
    }
}

/// The OpenSSL names of the ciphers a connection offers, in priority order (tests only).
#[cfg(test)]
pub(crate) fn cipher_names(ssl: &SslRef) -> Vec<String> {
    let mut v = Vec::new();
    for n in 0..1024 {
        // SAFETY: `ssl` is live; SSL_get_cipher_list returns NULL past the end or a pointer to
        // a static NUL-terminated name owned by OpenSSL, copied before the next call.
        let p = unsafe { SSL_get_cipher_list(ssl.as_ptr(), n) };
        if p.is_null() {
            break;
        }
        // SAFETY: non-NULL, NUL-terminated, static (see above).
        let name = unsafe { std::ffi::CStr::from_ptr(p) };
        v.push(name.to_string_lossy().into_owned());
    }
    v
}

/// Time left on the DTLS retransmission timer, if it is running (`DTLSv1_get_timeout`).
pub(crate) fn dtls_get_timeout(ssl: &SslRef) -> Option<Duration> {
    let mut tv = libc::timeval {
        tv_sec: 0,
        tv_usec: 0,
    };
    // SAFETY: `ssl` is a live SSL object; DTLS_CTRL_GET_TIMEOUT writes one `struct timeval`
    // through the pointer, which points to a local of that exact type.
    let r = unsafe {
        sys::SSL_ctrl(
            ssl.as_ptr(),
            DTLS_CTRL_GET_TIMEOUT,
            0,
            &mut tv as *mut libc::timeval as *mut c_void,
        )
    };
    if r <= 0 {
        return None;
    }
    let secs = u64::try_from(tv.tv_sec).unwrap_or(0);
    let micros = u32::try_from(tv.tv_usec).unwrap_or(0).min(999_999);
    Some(Duration::new(secs, micros * 1000))
}

/// Outcome of [`dtls_handle_timeout`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum TimerOutcome {
    /// The timer had not expired or was not running.
    Nothing,
    /// The last flight was retransmitted (it is in the write BIO).
    Retransmitted,
    /// Too many retransmissions: the handshake is dead.
    Failed,
}

/// Run the DTLS timer (`DTLSv1_handle_timeout`): retransmit the last flight when it expired.
pub(crate) fn dtls_handle_timeout(ssl: &SslRef) -> TimerOutcome {
    // SAFETY: `ssl` is a live SSL object; DTLS_CTRL_HANDLE_TIMEOUT takes no pointer argument.
    // OpenSSL mutates the SSL object, which Rust only holds as an opaque foreign type.
    let r: c_long =
        unsafe { sys::SSL_ctrl(ssl.as_ptr(), DTLS_CTRL_HANDLE_TIMEOUT, 0, ptr::null_mut()) };
    match r {
        0 => TimerOutcome::Nothing,
        r if r > 0 => TimerOutcome::Retransmitted,
        _ => TimerOutcome::Failed,
    }
}

/// Outcome of [`dtls_listen`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ListenOutcome {
    /// A ClientHello with a valid cookie: the SSL object continues the handshake from it.
    Verified,
    /// No valid cookie: a HelloVerifyRequest (or nothing) was written; drop the SSL object.
    Stateless,
}

/// Stateless cookie exchange (`DTLSv1_listen`, RFC 6347 §4.2.1) on the datagram in the read BIO.
pub(crate) fn dtls_listen(ssl: &SslRef) -> ListenOutcome {
    // SAFETY: BIO_ADDR_new returns an owned, zeroed address or NULL; it is freed below on every
    // path. `ssl` is a live SSL object with both BIOs set by `SslStream::new`, and the cookie
    // callbacks are installed on its context (DTLSv1_listen fails cleanly otherwise).
    unsafe {
        let addr = BIO_ADDR_new();
        if addr.is_null() {
            return ListenOutcome::Stateless;
        }
        let r = DTLSv1_listen(ssl.as_ptr(), addr);
        BIO_ADDR_free(addr);
        if r > 0 {
            ListenOutcome::Verified
        } else {
            sys::ERR_clear_error();
            ListenOutcome::Stateless
        }
    }
}

/// `X509_V_ERR_HOSTNAME_MISMATCH`, to report a SubjectAltName mismatch.
pub(crate) fn verify_result_hostname_mismatch() -> X509VerifyResult {
    // SAFETY: X509_V_ERR_HOSTNAME_MISMATCH is a valid verification result code.
    unsafe { X509VerifyResult::from_raw(sys::X509_V_ERR_HOSTNAME_MISMATCH) }
}

/// `X509_V_ERR_INVALID_PURPOSE`, to report a keyUsage without digitalSignature.
pub(crate) fn verify_result_invalid_purpose() -> X509VerifyResult {
    // SAFETY: X509_V_ERR_INVALID_PURPOSE is a valid verification result code.
    unsafe { X509VerifyResult::from_raw(sys::X509_V_ERR_INVALID_PURPOSE) }
}

/// Let OpenSSL choose DH parameters matching the suite strength (`SSL_CTX_set_dh_auto`).
pub(crate) fn set_dh_auto(ctx: &mut SslContextBuilder) {
    // SAFETY: the builder owns a live SSL_CTX; SSL_CTRL_SET_DH_AUTO takes no pointer argument.
    unsafe {
        sys::SSL_CTX_set_dh_auto(ctx.as_ptr(), 1);
    }
}

/// RFC 7250 certificate types (`TLSEXT_cert_type_*`).
#[cfg(m2msec_rpk)]
pub(crate) const CERT_TYPE_X509: u8 = 0;
/// Raw public key.
#[cfg(m2msec_rpk)]
pub(crate) const CERT_TYPE_RPK: u8 = 2;

#[cfg(m2msec_rpk)]
extern "C" {
    fn SSL_CTX_set1_server_cert_type(
        ctx: *mut sys::SSL_CTX,
        val: *const u8,
        len: libc::size_t,
    ) -> c_int;
    fn SSL_CTX_set1_client_cert_type(
        ctx: *mut sys::SSL_CTX,
        val: *const u8,
        len: libc::size_t,
    ) -> c_int;
    fn SSL_get0_peer_rpk(s: *const sys::SSL) -> *mut sys::EVP_PKEY;
    fn X509_STORE_CTX_get0_rpk(ctx: *const sys::X509_STORE_CTX) -> *mut sys::EVP_PKEY;
}

/// The server certificate types we accept (client) or offer (server), in preference order
/// (`SSL_CTX_set1_server_cert_type`, OpenSSL >= 3.2).
#[cfg(m2msec_rpk)]
pub(crate) fn set_server_cert_types(
    ctx: &mut SslContextBuilder,
    types: &[u8],
) -> Result<(), openssl::error::ErrorStack> {
    // SAFETY: the builder owns a live SSL_CTX; OpenSSL copies `types` (pointer and length of a
    // live slice) before returning.
    let r = unsafe { SSL_CTX_set1_server_cert_type(ctx.as_ptr(), types.as_ptr(), types.len()) };
    if r == 1 {
        Ok(())
    } else {
        Err(openssl::error::ErrorStack::get())
    }
}

/// The client certificate types (`SSL_CTX_set1_client_cert_type`, OpenSSL >= 3.2).
#[cfg(m2msec_rpk)]
#[allow(dead_code)]
pub(crate) fn set_client_cert_types(
    ctx: &mut SslContextBuilder,
    types: &[u8],
) -> Result<(), openssl::error::ErrorStack> {
    // SAFETY: as in `set_server_cert_types`.
    let r = unsafe { SSL_CTX_set1_client_cert_type(ctx.as_ptr(), types.as_ptr(), types.len()) };
    if r == 1 {
        Ok(())
    } else {
        Err(openssl::error::ErrorStack::get())
    }
}

/// DER SubjectPublicKeyInfo of the raw public key under verification, if the peer sent one.
#[cfg(m2msec_rpk)]
pub(crate) fn store_ctx_rpk_der(ctx: &openssl::x509::X509StoreContextRef) -> Option<Vec<u8>> {
    // SAFETY: `ctx` is live for the duration of the verify callback; X509_STORE_CTX_get0_rpk
    // returns NULL or a pointer borrowed from it (not owned), valid while `ctx` is, and only
    // used within this call.
    unsafe {
        let k = X509_STORE_CTX_get0_rpk(ctx.as_ptr());
        if k.is_null() {
            return None;
        }
        openssl::pkey::PKeyRef::<openssl::pkey::Public>::from_ptr(k)
            .public_key_to_der()
            .ok()
    }
}

/// Without raw-key support no peer can send a raw key.
#[cfg(not(m2msec_rpk))]
pub(crate) fn store_ctx_rpk_der(_ctx: &openssl::x509::X509StoreContextRef) -> Option<Vec<u8>> {
    None
}

/// DER SubjectPublicKeyInfo of the peer's raw public key after a handshake, if one was used.
#[cfg(m2msec_rpk)]
pub(crate) fn peer_rpk_der(ssl: &SslRef) -> Option<Vec<u8>> {
    // SAFETY: `ssl` is live; SSL_get0_peer_rpk returns NULL or a pointer borrowed from the
    // session (not owned), used only within this call.
    unsafe {
        let k = SSL_get0_peer_rpk(ssl.as_ptr());
        if k.is_null() {
            return None;
        }
        openssl::pkey::PKeyRef::<openssl::pkey::Public>::from_ptr(k)
            .public_key_to_der()
            .ok()
    }
}

/// Without OpenSSL >= 3.2 there is never a raw public key.
#[cfg(not(m2msec_rpk))]
pub(crate) fn peer_rpk_der(_ssl: &SslRef) -> Option<Vec<u8>> {
    None
}
