//! The one error type of the channel layer.
//!
//! Handshake failures carry OpenSSL's reason strings (e.g. `tlsv1 alert unknown psk identity`,
//! `decryption failed or bad record mac`) and never key material.

use std::time::Duration;

/// An error of the channel layer (configuration, handshake, transport).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration value was rejected before any network activity.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// OpenSSL refused a context or connection setting.
    #[error("OpenSSL: {0}")]
    OpenSsl(#[from] openssl::error::ErrorStack),
    /// A socket operation failed.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The (D)TLS handshake failed; the string is OpenSSL's reason (or alert) text.
    #[error("handshake failed: {0}")]
    Handshake(String),
    /// The handshake did not complete within the configured time.
    #[error("handshake timed out after {0:?}")]
    HandshakeTimeout(Duration),
    /// The DTLS peer did not answer after the retransmission limit.
    #[error("handshake failed: DTLS retransmission limit reached")]
    RetransmitLimit,
    /// The DTLS session saw no datagram within its idle timeout and was expired.
    #[error("session idle for more than {0:?}")]
    Idle(Duration),
    /// The peer closed the channel (close_notify or end of stream).
    #[error("channel closed by peer")]
    Closed,
    /// A protocol error after the handshake (record layer).
    #[error("TLS: {0}")]
    Tls(String),
    /// RFC 5705 export failed.
    #[error("keying material export failed: {0}")]
    Export(String),
}

/// The channel layer's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Turn an `openssl::ssl::Error` from a handshake into a readable reason, with the
/// certificate verification result when that is what failed.
pub(crate) fn handshake_error(e: &openssl::ssl::Error, ssl: &openssl::ssl::SslRef) -> Error {
    let mut r = reason(e);
    let v = ssl.verify_result();
    if v != openssl::x509::X509VerifyResult::OK {
        r.push_str(&format!(" ({})", v.error_string()));
    }
    Error::Handshake(r)
}

/// The reason strings of an `openssl::ssl::Error`, joined with "; ".
pub(crate) fn reason(e: &openssl::ssl::Error) -> String {
    if let Some(stack) = e.ssl_error() {
        let reasons: Vec<String> = stack
            .errors()
            .iter()
            .map(|er| {
                er.reason()
                    .map(str::to_string)
                    .unwrap_or_else(|| er.to_string())
            })
            .collect();
        if !reasons.is_empty() {
            return reasons.join("; ");
        }
    }
    if let Some(io) = e.io_error() {
        return io.to_string();
    }
    match e.code() {
        openssl::ssl::ErrorCode::ZERO_RETURN => "connection closed by peer".to_string(),
        openssl::ssl::ErrorCode::SYSCALL => "unexpected end of stream".to_string(),
        _ => e.to_string(),
    }
}
