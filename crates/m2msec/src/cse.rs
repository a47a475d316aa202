//! `m2msec cse serve --config FILE`: the registrar CSE (TS-0001, TS-0004) serving HTTP (TS-0009)
//! over TLS 1.2 PSK security associations (TS-0003 §8.2.2.1), with resources and learned
//! identity bindings in SQLite under `data_dir`.
//!
//! The configuration is one TOML file; `examples/cse.toml` documents every option, and
//! [`m2msec_cse_service::config`] reads and validates it; [`m2msec_cse_service::start`] runs it. Relative
//! paths are relative to the working directory. PSK key files hold the key in hex and must not
//! be readable by group or others (mode 0600), else the CSE refuses to start. A plaintext HTTP
//! listener is opened only when `[http_plain] enabled = true`, and only on a loopback address.
//! With `[coap] enabled = true`, the same CSE and credentials also serve CoAP (TS-0008) over
//! DTLS 1.2 PSK (TS-0003 §8.2.2.1, TS-0008 §7) on a UDP port (default 5684).
//! PSK credentials come from `[[psk]]` (optional) and from the store under `data_dir`
//! (`m2msec cse credential`, see [`crate::credential`]), followed while serving. With `[tls]
//! certificate`, `private_key` and `trust_anchors`, AE-ID certificate associations (TS-0003
//! §8.2.2.2) are accepted as well.
//!
//! With `cse_type = "MN"` and a `[registrar]` section, the CSE registers with its registrar
//! CSE over HTTP/TLS-PSK (retrying with backoff while it is down; `m2msec cse: registered with
//! CSE-ID` on stderr when done) and forwards requests for targets it does not host to it
//! (`m2msec_cse::routing`, TS-0004 §7.3.2.6); `[[registree]]` entries let it forward down to
//! registree CSEs.
//!
//! When every listener is bound, one line goes to stderr:
//! `m2msec cse: listening on https://ADDR (TLS-PSK)[ and http://ADDR (plaintext, loopback only)]`
//! `[ and coaps://ADDR (DTLS-PSK)]`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use m2msec_cse_service::config;

use crate::error::CliError;

/// `m2msec cse` subcommands.
#[derive(Subcommand)]
pub enum CseCmd {
    /// Run a registrar CSE: oneM2M over HTTP (TS-0009) on TLS-PSK, until killed.
    Serve(ServeArgs),
    /// Administer the CSE's PSK credentials in its store: add, list, revoke.
    Credential {
        #[command(subcommand)]
        cmd: crate::credential::CredentialCmd,
    },
    /// The CSEs registered here (and this MN-CSE's registrar): list.
    Remote {
        #[command(subcommand)]
        cmd: crate::remote::RemoteCmd,
    },
}

/// `m2msec cse serve`.
#[derive(Args)]
pub struct ServeArgs {
    /// The TOML configuration (see examples/cse.toml).
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
}

/// Runs a `cse` subcommand.
pub fn run(cmd: CseCmd) -> Result<ExitCode, CliError> {
    match cmd {
        CseCmd::Serve(a) => serve(a),
        CseCmd::Credential { cmd } => crate::credential::run(cmd),
        CseCmd::Remote { cmd } => crate::remote::run(cmd),
    }
}

fn serve(a: ServeArgs) -> Result<ExitCode, CliError> {
    let loaded = config::load(&a.config).map_err(cfg_err)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(CliError::other)?;
    rt.block_on(async move {
        let mut running = m2msec_cse_service::start(loaded).await.map_err(cfg_err)?;
        let mut line = String::from("m2msec cse: listening on ");
        if let Some(t) = running.listening.tls_addr {
            line.push_str(&format!("https://{t} (TLS-PSK)"));
        }
        if let Some(p) = running.listening.plain_addr {
            line.push_str(&format!(" and http://{p} (plaintext, loopback only)"));
        }
        if let Some(c) = running.listening.coap_addr {
            line.push_str(&format!(" and coaps://{c} (DTLS-PSK)"));
        }
        eprintln!("{line}");
        if let Some(rx) = running.registered.take() {
            tokio::spawn(async move {
                if let Ok(id) = rx.await {
                    eprintln!("m2msec cse: registered with {id}");
                }
            });
        }
        running.wait().await;
        Err(CliError::other("the CSE service stopped"))
    })
}

fn cfg_err(msg: impl std::fmt::Display) -> CliError {
    CliError::arg("--config", msg)
}
