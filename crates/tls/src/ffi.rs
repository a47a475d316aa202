//! The few OpenSSL calls the `openssl` crate does not wrap: the DTLS timer (`DTLSv1_get_timeout`,
//! `DTLSv1_handle_timeout`, both `SSL_ctrl` macros), stateless cookie exchange (`DTLSv1_listen`)
//! and automatic DH parameters (`SSL_CTX_set_dh_auto`) for DHE-PSK.
//!
//! This is the only module with `unsafe`. Every function takes a safe reference to an object
//! owned by the `openssl` crate, so the pointers passed to OpenSSL are valid for the call.

#![allow(unsafe_code)]

use std::os::raw::{c_int, c_long, c_void};
use std::ptr;
use std::time::Duration;

use foreign_types::ForeignTypeRef;
use openssl::ssl::{SslContextBuilder, SslRef};
use openssl_sys as sys;

const DTLS_CTRL_GET_TIMEOUT: c_int = 73;
const DTLS_CTRL_HANDLE_TIMEOUT: c_int = 74;

extern "C" {
    fn DTLSv1_listen(s: *mut sys::SSL, client: *mut sys::BIO_ADDR) -> c_int;
    fn BIO_ADDR_new() -> *mut sys::BIO_ADDR;
    fn BIO_ADDR_free(a: *mut sys::BIO_ADDR);
    #[cfg(test)]
    fn SSL_get_cipher_list(s: *const sys::SSL, n: c_int) -> *const std::os::raw::c_char;
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

/// Let OpenSSL choose DH parameters matching the suite strength (`SSL_CTX_set_dh_auto`).
pub(crate) fn set_dh_auto(ctx: &mut SslContextBuilder) {
    // SAFETY: the builder owns a live SSL_CTX; SSL_CTRL_SET_DH_AUTO takes no pointer argument.
    unsafe {
        sys::SSL_CTX_set_dh_auto(ctx.as_ptr(), 1);
    }
}
