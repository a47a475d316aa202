//! `m2msec pkg serve --config FILE`: the PKG of seed 001 as a service of its own, for MEFs that
//! keep the KMS secret on another host (BRIEF A32). It serves only the `[[client]]` MEFs, each
//! authenticated by its own PSK over TLS 1.2 (both ends authenticated). The KSAK rests sealed in
//! `data_dir` (`mef.sqlite3`'s `pkg` table under `data_dir/kek`). A MEF uses it through a `[pkg]`
//! section in its own configuration.
//!
//! When bound, one line goes to stderr: `m2msec pkg: listening on https://ADDR (TLS-PSK) for FQDN`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use m2msec_bindings::config::read_toml;
use m2msec_mef::config::PkgFile;

use crate::error::CliError;

/// `m2msec pkg` subcommands.
#[derive(Subcommand)]
pub enum PkgCmd {
    /// Run the PKG service until killed.
    Serve(ServeArgs),
}

/// `m2msec pkg serve`.
#[derive(Args)]
pub struct ServeArgs {
    /// The TOML configuration: fqdn, data_dir, [tls] bind/port, [[client]] identity/key_file.
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
}

fn cfg_err(msg: impl std::fmt::Display) -> CliError {
    CliError::arg("--config", msg)
}

/// Runs a `pkg` subcommand.
pub fn run(cmd: PkgCmd) -> Result<ExitCode, CliError> {
    match cmd {
        PkgCmd::Serve(a) => serve(a),
    }
}

fn serve(a: ServeArgs) -> Result<ExitCode, CliError> {
    let c = read_toml::<PkgFile>(&a.config)
        .and_then(PkgFile::validate)
        .map_err(cfg_err)?;
    let fqdn = c.fqdn.clone();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(CliError::other)?;
    rt.block_on(async move {
        let mut running = m2msec_mef::service::start_pkg(c).await.map_err(cfg_err)?;
        if let Some(t) = running.tls_addr {
            eprintln!("m2msec pkg: listening on https://{t} (TLS-PSK) for {fqdn}");
        }
        running.wait().await;
        Err(CliError::other("the PKG service stopped"))
    })
}
