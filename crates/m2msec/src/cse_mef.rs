//! The `[mef]` section of the CSE configuration: the CSE as an Enrolment Target (TS-0003
//! §8.3.2.1 step 6, §8.3.4.3). A client presenting a `psk_identity` that is a KeID of this MEF
//! (`hex@<fqdn>`) makes the CSE retrieve the key from the MEF over its own TLS-PSK association
//! (`/fetchCredentials/<KeID>/<SUID>`, From = this CSE's absolute CSE-ID), cache it for the
//! lifetime the MEF gives, and bind the association to the Enrolee-ID the MEF returns. The CSE
//! follows the MEF's change feed every `revocation_poll_secs`, so a KeID revoked (or replaced,
//! or de-registered) at the MEF is refused and its sessions closed within that interval plus
//! the watcher's; and it bounds what unknown KeIDs can make it ask of the MEF
//! (`max_concurrent_fetches`, `unseen_lookups_per_sec`; issue 9 items 7 and 8).

use std::path::PathBuf;

use serde::Deserialize;

use m2msec_cse_service::mef_source::{FetchLimits, MefKeySource, MefLink};

use crate::error::CliError;

fn default_suid() -> u8 {
    m2msec_mef::endpoint::TARGET_SUID
}
fn default_timeout() -> u64 {
    5
}
fn default_poll() -> u64 {
    m2msec_cse_service::mef_source::DEFAULT_POLL_INTERVAL.as_secs()
}
fn default_max_fetches() -> usize {
    FetchLimits::default().max_in_flight
}
fn default_unseen_rate() -> u32 {
    FetchLimits::default().unseen_per_sec as u32
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
    /// Interval of the change-feed poll, seconds (1..=300): the bound on how long a revocation
    /// at the MEF takes to reach this CSE.
    #[serde(default = "default_poll")]
    revocation_poll_secs: u64,
    /// Most requests to the MEF in flight at once (1..=256); half of them at most for KeIDs
    /// this CSE has never seen. Beyond, a handshake is refused at once.
    #[serde(default = "default_max_fetches")]
    max_concurrent_fetches: usize,
    /// Lookups of never-seen KeIDs that the MEF refuses, per second (1..=10000; bursts of
    /// twice as many): the rest are refused without asking the MEF.
    #[serde(default = "default_unseen_rate")]
    unseen_lookups_per_sec: u32,
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
        if !(1..=300).contains(&self.revocation_poll_secs) {
            return Err(err("revocation_poll_secs must be 1..300"));
        }
        if !(1..=256).contains(&self.max_concurrent_fetches) {
            return Err(err("max_concurrent_fetches must be 1..256"));
        }
        if !(1..=10_000).contains(&self.unseen_lookups_per_sec) {
            return Err(err("unseen_lookups_per_sec must be 1..10000"));
        }
        let rate = f64::from(self.unseen_lookups_per_sec);
        let limits = FetchLimits {
            max_in_flight: self.max_concurrent_fetches,
            max_in_flight_unseen: (self.max_concurrent_fetches / 2).max(1),
            unseen_per_sec: rate,
            unseen_burst: 2.0 * rate,
            ..FetchLimits::default()
        };
        MefKeySource::new(MefLink {
            host: l.host,
            port: l.port,
            fqdn: l.fqdn,
            psk_identity: l.identity,
            psk: l.psk,
            cse_id: self.cse_id.clone(),
            suid: self.suid,
            timeout: l.timeout,
            poll_interval: std::time::Duration::from_secs(self.revocation_poll_secs),
            limits,
        })
        .map_err(err)
    }
}
