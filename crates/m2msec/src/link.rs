//! PSK key files and outgoing TLS-PSK links as the configuration files name them: a CSE's
//! `[mef]` (its link to the MEF), a MEF's `[pkg]` (its link to a PKG service), and the PSKs of
//! the clients a MEF or a PKG serves.

use std::path::Path;
use std::time::Duration;

use m2msec_core::ids::Fqdn;
use m2msec_tls::{Psk, PskIdentity};

use crate::error::CliError;

/// Reads a PSK in hex from a file that only its owner may read (mode 0600).
pub fn read_psk_file(path: &Path, what: &str) -> Result<Psk, CliError> {
    let text = m2msec_keystore::read_secret_file(path)
        .map_err(|e| CliError::arg("--config", format!("{what}: {e}")))?;
    Psk::from_hex(text.trim())
        .map_err(|e| CliError::arg("--config", format!("{what}: key_file: {e}")))
}

/// A resolved outgoing link.
#[derive(Debug)]
pub struct Link {
    /// Host and port from `url`.
    pub host: String,
    /// Port.
    pub port: u16,
    /// The peer's FQDN (SNI).
    pub fqdn: Fqdn,
    /// Our psk_identity at the peer.
    pub identity: PskIdentity,
    /// Our PSK at the peer.
    pub psk: Psk,
    /// Deadline of one call.
    pub timeout: Duration,
}

/// Validates a link section's fields (`url` = `https://HOST:PORT`, `fqdn`, `identity`,
/// `key_file`, `timeout_secs` in 1..=60); errors name the section.
pub fn resolve(
    section: &str,
    url: &str,
    fqdn: &str,
    identity: &str,
    key_file: &Path,
    timeout_secs: u64,
) -> Result<Link, CliError> {
    let err = |m: String| CliError::arg("--config", format!("{section} {m}"));
    let (host, port) = crate::enrol::parse_mef_uri(url).map_err(|e| err(e.msg))?;
    if timeout_secs == 0 || timeout_secs > 60 {
        return Err(err("timeout_secs must be 1..60".into()));
    }
    Ok(Link {
        host,
        port,
        fqdn: fqdn.parse().map_err(|e| err(format!("fqdn: {e}")))?,
        identity: PskIdentity::new(identity).map_err(|e| err(format!("identity: {e}")))?,
        psk: read_psk_file(key_file, section)?,
        timeout: Duration::from_secs(timeout_secs),
    })
}
