//! `m2msec cse|mef|pkg keys migrate-to-token --config FILE`: moves an installation's
//! key-encryption key from the file `data_dir/kek` into the PKCS#11 token of the
//! configuration's `[secure_environment]` (TS-0003 §6.3.1): a fresh non-extractable AES key
//! is generated in the token, every sealed record of the store is opened with the file KEK and
//! sealed again inside the token in one transaction, and the file is deleted. Refuses to run
//! twice (the token already holds the key) and changes nothing on failure.
//!
//! Run it while the service is stopped (a running service would keep sealing under the old
//! file KEK); the downtime is one restart.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde::Deserialize;

use crate::error::{CliError, CliResult};
use crate::util::print_json;

/// `m2msec … keys` subcommands.
#[derive(Subcommand)]
pub enum KeysCmd {
    /// Move the KEK file into the [secure_environment] PKCS#11 token and re-seal every record
    /// there (run with the service stopped; refuses to run twice).
    MigrateToToken(MigrateArgs),
}

/// `m2msec … keys migrate-to-token`.
#[derive(Args)]
pub struct MigrateArgs {
    /// The service's TOML configuration (its data_dir and [secure_environment] are used).
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
}

/// Which service's store.
#[derive(Debug, Clone, Copy)]
pub enum Service {
    /// The CSE's credential store.
    Cse,
    /// The MEF's store.
    Mef,
    /// The PKG service's store.
    Pkg,
}

/// The part of a service configuration the migration reads (other keys are ignored here).
#[derive(Deserialize)]
struct KeysConfig {
    data_dir: PathBuf,
    #[serde(default)]
    secure_environment: m2msec_keystore::SecureEnvironmentConfig,
}

fn cfg_err(msg: impl std::fmt::Display) -> CliError {
    CliError::arg("--config", msg)
}

/// Runs a `keys` subcommand for `service`.
pub fn run(service: Service, cmd: KeysCmd) -> CliResult<ExitCode> {
    match cmd {
        KeysCmd::MigrateToToken(a) => migrate(service, a),
    }
}

fn migrate(service: Service, a: MigrateArgs) -> CliResult<ExitCode> {
    let text = std::fs::read_to_string(&a.config)
        .map_err(|e| cfg_err(format!("{}: {e}", a.config.display())))?;
    let c: KeysConfig =
        toml::from_str(&text).map_err(|e| cfg_err(format!("{}: {e}", a.config.display())))?;
    if c.secure_environment.pkcs11_module.is_none() {
        return Err(cfg_err(
            "[secure_environment] names no pkcs11_module: configure the token first",
        ));
    }
    let name = match service {
        Service::Cse => "cse",
        Service::Mef => "mef",
        Service::Pkg => "pkg",
    };
    let se = crate::util::open_secure_environment(name, &c.secure_environment)?;
    let dir = &c.data_dir;
    let kek_file = dir.join("kek");
    let label = match service {
        Service::Cse => m2msec_cse::credentials::KEK_LABEL,
        Service::Mef => m2msec_mef::store::KEK_LABEL,
        Service::Pkg => m2msec_mef::store::PKG_KEK_LABEL,
    };
    let records = se
        .migrate_kek(&kek_file, label, |_old, new| match service {
            Service::Cse => m2msec_cse::credentials::CredentialStore::open(dir)
                .and_then(|mut s| s.reseal_to(new))
                .map_err(|e| e.to_string()),
            Service::Mef | Service::Pkg => m2msec_mef::MefStore::open(dir)
                .and_then(|mut s| s.reseal_to(new))
                .map_err(|e| e.to_string()),
        })
        .map_err(|e| cfg_err(format!("data_dir {}: {e}", dir.display())))?;
    print_json(&serde_json::json!({
        "migrated": kek_file.display().to_string(),
        "records_resealed": records,
        "token": se.status().token,
        "key_label": se.key_label(label),
        "secure_environment": se.status(),
    }))?;
    Ok(ExitCode::SUCCESS)
}
