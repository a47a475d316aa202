//! The `[mef]` section of the CSE configuration: the CSE as an Enrolment Target (TS-0003
//! §8.3.2.1 step 6, §8.3.4.3). A client presenting a `psk_identity` that is a KeID of this MEF
//! (`hex@<fqdn>`) makes the CSE retrieve the key from the MEF over its own TLS-PSK association
//! (`/fetchCredentials/<KeID>/<SUID>`, From = this CSE's absolute CSE-ID), cache it for the
//! lifetime the MEF gives, and bind the association to the Enrolee-ID the MEF returns.

use std::path::PathBuf;

use serde::Deserialize;

use m2msec_mef::target::{MefKeySource, MefLink};

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
        let l = crate::link::resolve(
            "[mef]",
            &self.url,
            &self.fqdn,
            &self.identity,
            &self.key_file,
            self.timeout_secs,
        )?;
        if !self.cse_id.starts_with("//") {
            return Err(err("cse_id must be absolute (//SP-ID/CSE-ID)"));
        }
        MefKeySource::new(MefLink {
            host: l.host,
            port: l.port,
            fqdn: l.fqdn,
            psk_identity: l.identity,
            psk: l.psk,
            cse_id: self.cse_id.clone(),
            suid: self.suid,
            timeout: l.timeout,
        })
        .map_err(err)
    }
}
