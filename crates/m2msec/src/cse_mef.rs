//! The `[mef]` section of the CSE configuration: the CSE as an Enrolment Target (TS-0003
//! §8.3.2.1 step 6, §8.3.4.3). A client presenting a `psk_identity` that is a KeID of this MEF
//! (`hex@<fqdn>`) makes the CSE retrieve the key from the MEF over its own TLS-PSK association
//! (`/fetchCredentials/<KeID>/<SUID>`, From = this CSE's absolute CSE-ID), cache it for the
//! lifetime the MEF gives, and bind the association to the Enrolee-ID the MEF returns.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use m2msec_mef::target::{MefKeySource, MefLink};
use m2msec_tls::{Psk, PskIdentity};

use crate::error::CliError;

fn default_suid() -> u8 {
    m2msec_mef::endpoint::TARGET_SUID
}
fn default_timeout() -> u64 {
    5
}

/// `[mef]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MefSection {
    /// The MEF's address, `https://HOST:PORT`.
    url: String,
    /// The MEF's FQDN (SNI; KeIDs `hex@<fqdn>` are fetched from it).
    fqdn: String,
    /// This CSE's psk_identity at the MEF.
    identity: String,
    /// File with this CSE's PSK at the MEF, hex, mode 0600.
    key_file: PathBuf,
    /// This CSE's absolute CSE-ID as the MEF knows it (e.g. `//sp.example/cse-in`).
    cse_id: String,
    /// SUID of the keys requested (default 22).
    #[serde(default = "default_suid")]
    suid: u8,
    /// Deadline of one retrieval, seconds.
    #[serde(default = "default_timeout")]
    timeout_secs: u64,
}

fn err(msg: impl std::fmt::Display) -> CliError {
    CliError::arg("--config", format!("[mef] {msg}"))
}

impl MefSection {
    /// The key source this section configures.
    pub fn key_source(&self) -> Result<MefKeySource, CliError> {
        let (host, port) = crate::enrol::parse_mef_uri(&self.url).map_err(|e| err(e.msg))?;
        let text = m2msec_keystore::read_secret_file(&self.key_file).map_err(err)?;
        let psk = Psk::from_hex(text.trim()).map_err(|e| err(format!("key_file: {e}")))?;
        if !self.cse_id.starts_with("//") {
            return Err(err("cse_id must be absolute (//SP-ID/CSE-ID)"));
        }
        if self.timeout_secs == 0 || self.timeout_secs > 60 {
            return Err(err("timeout_secs must be 1..60"));
        }
        MefKeySource::new(MefLink {
            host,
            port,
            fqdn: self.fqdn.parse().map_err(|e| err(format!("fqdn: {e}")))?,
            psk_identity: PskIdentity::new(&self.identity)
                .map_err(|e| err(format!("identity: {e}")))?,
            psk,
            cse_id: self.cse_id.clone(),
            suid: self.suid,
            timeout: Duration::from_secs(self.timeout_secs),
        })
        .map_err(err)
    }
}
