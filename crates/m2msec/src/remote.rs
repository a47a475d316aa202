//! `m2msec cse remote list --config FILE [--json]`: the CSEs this CSE knows as `<remoteCSE>`
//! resources (TS-0004 §7.4.4): its registree CSEs and, on an MN-CSE, its registrar (written at
//! registration, issue 12), each with the Credential-IDs (TS-0003 §10.4) bound to its CSE-ID by
//! the configuration's `[[psk]]` or the credential store (`ida` = that CSE-ID, `registree =
//! "cse"`) and their state. Reads the store under `data_dir` (also while the CSE runs); never
//! prints a key.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde::{Deserialize, Serialize};

use m2msec_core::ids::CseId;
use m2msec_cse::credentials::Registree;
use m2msec_cse::resource::Attrs;
use m2msec_cse::{ResourceType, SqliteStore, Store};

use crate::error::CliError;
use crate::util::print_json;

/// `m2msec cse remote` subcommands.
#[derive(Subcommand)]
pub enum RemoteCmd {
    /// List the registered CSEs (and the registrar) with their Credential-IDs and state.
    List(ListArgs),
}

/// `m2msec cse remote list`.
#[derive(Args)]
pub struct ListArgs {
    /// The CSE's TOML configuration.
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// One JSON array on one line instead of a table.
    #[arg(long)]
    json: bool,
}

/// The part of the CSE configuration read here (`cse serve` validates the rest).
#[derive(Deserialize)]
struct RemoteConfig {
    cse_id: String,
    data_dir: PathBuf,
    #[serde(default)]
    registrar: Option<RegistrarRef>,
}

#[derive(Deserialize)]
struct RegistrarRef {
    cse_id: String,
}

/// One credential bound to a remote CSE's CSE-ID.
#[derive(Serialize)]
struct BoundCredential {
    credential_id: String,
    source: &'static str,
    state: String,
}

/// One `<remoteCSE>`.
#[derive(Serialize)]
struct RemoteRow {
    cse_id: String,
    /// `registree` (registered here) or `registrar` (this CSE is registered there).
    role: &'static str,
    cb: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    cst: Option<u8>,
    poa: Vec<String>,
    /// creationTime of the `<remoteCSE>` (registration).
    registered: String,
    /// lastModifiedTime (the last re-registration).
    updated: String,
    credentials: Vec<BoundCredential>,
}

fn cfg_err(msg: impl std::fmt::Display) -> CliError {
    CliError::arg("--config", msg)
}

/// Runs a `cse remote` subcommand.
pub fn run(cmd: RemoteCmd) -> Result<ExitCode, CliError> {
    match cmd {
        RemoteCmd::List(a) => list(&a),
    }
}

fn rows(path: &Path) -> Result<Vec<RemoteRow>, CliError> {
    let text =
        std::fs::read_to_string(path).map_err(|e| cfg_err(format!("{}: {e}", path.display())))?;
    let c: RemoteConfig =
        toml::from_str(&text).map_err(|e| cfg_err(format!("{}: {e}", path.display())))?;
    let own: CseId = c
        .cse_id
        .parse()
        .map_err(|e| cfg_err(format!("cse_id: {e}")))?;
    let registrar = match &c.registrar {
        Some(r) => Some(
            r.cse_id
                .parse::<CseId>()
                .map_err(|e| cfg_err(format!("[registrar] cse_id: {e}")))?
                .stem()
                .to_string(),
        ),
        None => None,
    };
    if !c.data_dir.is_dir() {
        return Err(cfg_err(format!(
            "data_dir {} does not exist",
            c.data_dir.display()
        )));
    }
    let mut store = SqliteStore::open(&c.data_dir)
        .map_err(|e| cfg_err(format!("data_dir {}: {e}", c.data_dir.display())))?;
    let list = {
        let mut tx = store
            .begin_read()
            .map_err(|e| cfg_err(format!("store: {e}")))?;
        tx.children(own.stem(), Some(ResourceType::RemoteCse), usize::MAX)
            .map_err(|e| cfg_err(format!("store: {e}")))?
    };
    let creds = crate::credential::all_credentials(path)?;
    let mut out = Vec::new();
    for r in list {
        let Attrs::RemoteCse {
            cst, csi, cb, poa, ..
        } = r.attrs
        else {
            continue;
        };
        let stem = csi
            .parse::<CseId>()
            .map(|c| c.stem().to_string())
            .unwrap_or_else(|_| csi.trim_start_matches('/').to_string());
        let credentials = creds
            .iter()
            .filter(|ci| ci.registree == Some(Registree::Cse))
            .filter(|ci| {
                ci.ida
                    .as_deref()
                    .and_then(|i| i.parse::<CseId>().ok())
                    .is_some_and(|i| i.stem() == stem)
            })
            .map(|ci| BoundCredential {
                credential_id: ci.credential_id.clone(),
                source: ci.source,
                state: serde_json::to_value(ci.state)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default(),
            })
            .collect();
        out.push(RemoteRow {
            role: if registrar.as_deref() == Some(stem.as_str()) {
                "registrar"
            } else {
                "registree"
            },
            cse_id: format!("/{stem}"),
            cb,
            cst,
            poa: poa.unwrap_or_default(),
            registered: r.ct.to_string(),
            updated: r.lt.to_string(),
            credentials,
        });
    }
    Ok(out)
}

fn list(a: &ListArgs) -> Result<ExitCode, CliError> {
    let rows = rows(&a.config)?;
    if a.json {
        print_json(&rows)?;
        return Ok(ExitCode::SUCCESS);
    }
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let creds: Vec<String> = r
                .credentials
                .iter()
                .map(|c| format!("{} ({}, {})", c.credential_id, c.source, c.state))
                .collect();
            let or_dash = |v: Vec<String>, sep: &str| {
                if v.is_empty() {
                    "-".to_string()
                } else {
                    v.join(sep)
                }
            };
            vec![
                r.cse_id.clone(),
                r.role.to_string(),
                r.updated.clone(),
                or_dash(r.poa.clone(), ","),
                or_dash(creds, ", "),
            ]
        })
        .collect();
    crate::util::print_table(&["CSE-ID", "ROLE", "UPDATED", "POA", "CREDENTIALS"], &table);
    Ok(ExitCode::SUCCESS)
}
