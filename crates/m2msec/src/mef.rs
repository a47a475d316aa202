//! `m2msec mef serve --config FILE`: the M2M Enrolment Function with its PKG (TS-0003 §8.3,
//! seed 001) over HTTP (TS-0009) on TLS 1.2 PSK; `m2msec mef device …`: operator tools on its
//! store.
//!
//! The configuration is one TOML file (`examples/mef.toml` documents every option). Devices
//! (KpmID → Kpm, Enrolee-ID, Enrolment Targets, Enrolment Expiry) live in the store and are
//! added with `m2msec mef device add|import`; MEF clients that fetch keys (the registrar CSEs
//! that are Enrolment Targets) are `[[target]]` entries with their own PSK (BRIEF A3).
//!
//! When the listener is bound, one line goes to stderr: `m2msec mef: listening on https://ADDR
//! (TLS-PSK) for FQDN`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use m2msec_mef::config::{self, MefServiceConfig};

use crate::error::CliError;

/// `m2msec mef` subcommands.
#[derive(Subcommand)]
pub enum MefCmd {
    /// Run the MEF (with its PKG) until killed.
    Serve(ServeArgs),
    /// Provision, list and revoke devices in the MEF's store.
    Device {
        #[command(subcommand)]
        cmd: crate::mef_admin::DeviceCmd,
    },
}

/// `m2msec mef serve`.
#[derive(Args)]
pub struct ServeArgs {
    /// The TOML configuration (see examples/mef.toml).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
}

fn cfg_err(msg: impl std::fmt::Display) -> CliError {
    CliError::arg("--config", msg)
}

/// Reads and validates the configuration at `path` ([`m2msec_mef::config`]).
pub fn load(path: &std::path::Path) -> Result<MefServiceConfig, CliError> {
    config::load(path).map_err(cfg_err)
}

/// Opens the store of a validated configuration.
pub fn open_store(l: &MefServiceConfig) -> Result<m2msec_mef::MefStore, CliError> {
    config::open_store(l).map_err(cfg_err)
}

/// Runs a `mef` subcommand.
pub fn run(cmd: MefCmd) -> Result<ExitCode, CliError> {
    match cmd {
        MefCmd::Serve(a) => serve(a),
        MefCmd::Device { cmd } => crate::mef_admin::run(cmd),
    }
}

fn serve(a: ServeArgs) -> Result<ExitCode, CliError> {
    let loaded = load(&a.config)?;
    let fqdn = loaded.mef.fqdn.clone();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(CliError::other)?;
    rt.block_on(async move {
        let mut running = m2msec_mef::service::start_mef(loaded)
            .await
            .map_err(cfg_err)?;
        let mut line = String::from("m2msec mef: listening on ");
        if let Some(t) = running.tls_addr {
            line.push_str(&format!("https://{t} (TLS-PSK)"));
        }
        if let Some(c) = running.coap_addr {
            line.push_str(&format!(" and coaps://{c} (DTLS-PSK)"));
        }
        eprintln!("{line} for {fqdn}");
        running.wait().await;
        Err(CliError::other("the MEF service stopped"))
    })
}
