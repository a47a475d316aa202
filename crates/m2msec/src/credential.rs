//! `m2msec cse credential add|list|revoke --config FILE`: administration of the registrar CSE's
//! PSK credentials (TS-0003 §8.2.2.1) in its store, `DATA_DIR/cse.sqlite3`
//! ([`m2msec_cse::credentials`]). Keys rest sealed under `DATA_DIR/kek`; no command prints one.
//!
//! The commands work while the CSE runs: it notices a change within about 200 ms, serves an
//! added credential, refuses a revoked one at the handshake and closes the live sessions that
//! use it. Only `data_dir` and the `[[psk]]` identities are read from the configuration file;
//! an identity configured there cannot also be added to the store, nor revoked from it.
//!
//! A revoked identity stays in the store. Adding it again needs `--replace-revoked`, which
//! installs a new key under the same KpsaID: the Credential-ID `12-<KpsaID>` (TS-0003 §10.4)
//! and the AE-ID it learned at registration (TS-0003 §8.2.1) carry over. Another device gets a
//! new identity.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand};
use rand_core::{OsRng, RngCore};
use zeroize::Zeroizing;

use m2msec_core::clock::unix_now;
use m2msec_core::ids::{CredentialId, KpsaId};
use m2msec_core::timestamp::Timestamp;
use m2msec_cse::credentials::{
    check_key, check_label, keystore, parse_ida, parse_identity, AddOptions, CredentialError,
    CredentialInfo, CredentialStore, NewCredential, Registree, State,
};

use crate::error::{CliError, CliResult};
use crate::util::{hex_arg, print_json};

/// `m2msec cse credential` subcommands.
#[derive(Subcommand)]
pub enum CredentialCmd {
    /// Provision a PSK credential (KpsaID and key) in the CSE's store; the key rests sealed.
    Add(AddArgs),
    /// List the credentials (store and configuration) with their state; never prints keys.
    List(ListArgs),
    /// Revoke a stored credential: new handshakes fail and the running CSE closes its sessions.
    Revoke(RevokeArgs),
}

/// `m2msec cse credential add`.
#[derive(Args)]
pub struct AddArgs {
    /// The CSE's TOML configuration (its data_dir holds the store).
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// The KpsaID (Issuer_Relative_KpsaID@Issuer-FQDN) clients send as psk_identity.
    #[arg(long, value_name = "KPSAID")]
    identity: String,
    /// File holding the key in hex (mode 0600).
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with = "generate",
        required_unless_present = "generate"
    )]
    key_file: Option<PathBuf>,
    /// Generate a random 32-byte key and write it to --key-out for the device.
    #[arg(long, requires = "key_out")]
    generate: bool,
    /// With --generate: the new file (mode 0600) receiving the key in hex; must not exist.
    #[arg(long, value_name = "FILE", requires = "generate")]
    key_out: Option<PathBuf>,
    /// Configured IdA: the AE-ID or CSE-ID this credential is bound to.
    #[arg(long, value_name = "ID")]
    ida: Option<String>,
    /// What --ida names.
    #[arg(long, value_name = "ae|cse", requires = "ida")]
    registree: Option<String>,
    /// Expiry, an m2m:timestamp (YYYYMMDDThhmmss, UTC).
    #[arg(long, value_name = "TIMESTAMP")]
    expires: Option<String>,
    /// A note for administrators.
    #[arg(long, value_name = "TEXT")]
    label: Option<String>,
    /// Re-add an identity that was revoked (new key, same Credential-ID and AE-ID binding).
    #[arg(long)]
    replace_revoked: bool,
}

/// `m2msec cse credential list`.
#[derive(Args)]
pub struct ListArgs {
    /// The CSE's TOML configuration.
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// One JSON array on one line instead of a table.
    #[arg(long)]
    json: bool,
}

/// `m2msec cse credential revoke`.
#[derive(Args)]
pub struct RevokeArgs {
    /// The CSE's TOML configuration.
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// The KpsaID to revoke.
    #[arg(long, value_name = "KPSAID")]
    identity: String,
}

/// The CSE's configuration file: these commands use its `data_dir` and `[[psk]]` identities
/// (`cse serve` validates the rest).
type CredConfig = m2msec_cse_service::config::CseFile;

fn cfg_err(msg: impl std::fmt::Display) -> CliError {
    CliError::arg("--config", msg)
}

fn load(path: &Path) -> CliResult<CredConfig> {
    CredConfig::read(path).map_err(cfg_err)
}

fn open_store(c: &CredConfig) -> CliResult<CredentialStore> {
    CredentialStore::open(&c.data_dir)
        .map_err(|e| cfg_err(format!("data_dir {}: {e}", c.data_dir.display())))
}

/// Maps a store failure: identity conflicts name `--identity`, the rest the data directory.
fn store_err(c: &CredConfig, e: CredentialError) -> CliError {
    match e {
        CredentialError::Exists(_)
        | CredentialError::Revoked(..)
        | CredentialError::NotFound(_)
        | CredentialError::AlreadyRevoked(..) => CliError::arg("--identity", e),
        other => cfg_err(format!("data_dir {}: {other}", c.data_dir.display())),
    }
}

fn inv(arg: &str) -> impl FnOnce(CredentialError) -> CliError + '_ {
    move |e| CliError::arg(arg, e)
}

/// Runs a `cse credential` subcommand.
pub fn run(cmd: CredentialCmd) -> CliResult<ExitCode> {
    match cmd {
        CredentialCmd::Add(a) => add(a),
        CredentialCmd::List(a) => list(a),
        CredentialCmd::Revoke(a) => revoke(a),
    }
}

fn add(a: AddArgs) -> CliResult<ExitCode> {
    let cfg = load(&a.config)?;
    let kpsa: KpsaId = parse_identity(&a.identity).map_err(inv("--identity"))?;
    if cfg.psk.iter().any(|p| p.identity == a.identity) {
        return Err(CliError::arg(
            "--identity",
            format!(
                "{} is a [[psk]] entry of {}: one source per credential",
                a.identity,
                a.config.display()
            ),
        ));
    }
    let ida = match &a.ida {
        None => None,
        Some(ida) => {
            let kind: Registree = a
                .registree
                .as_deref()
                .unwrap_or("ae")
                .parse()
                .map_err(inv("--registree"))?;
            parse_ida(ida, kind).map_err(inv("--ida"))?;
            Some((ida.clone(), kind))
        }
    };
    let expires = a
        .expires
        .as_deref()
        .map(|t| t.parse::<Timestamp>())
        .transpose()
        .map_err(|e| CliError::arg("--expires", e))?;
    if let Some(l) = &a.label {
        check_label(l).map_err(inv("--label"))?;
    }
    let now = unix_now();
    if expires.as_ref().is_some_and(|t| t.to_unix() <= now) {
        return Err(CliError::arg("--expires", "the expiry lies in the past"));
    }
    let key: Zeroizing<Vec<u8>> = match (&a.key_file, &a.key_out) {
        (Some(f), _) => {
            let text = keystore::read_secret_file(f).map_err(|e| CliError::arg("--key-file", e))?;
            let k = hex_arg("--key-file", &text)
                .map_err(|e| CliError::arg("--key-file", format!("{}: {}", f.display(), e.msg)))?;
            check_key(&k).map_err(|e| CliError::arg("--key-file", e))?;
            k
        }
        (None, Some(out)) => {
            if out.exists() {
                return Err(CliError::arg(
                    "--key-out",
                    format!("{} exists; refusing to overwrite it", out.display()),
                ));
            }
            let mut k = Zeroizing::new(vec![0u8; 32]);
            OsRng.fill_bytes(&mut k);
            k
        }
        (None, None) => return Err(CliError::arg("--key-file", "give --key-file or --generate")),
    };
    let new = NewCredential {
        identity: kpsa,
        key,
        ida,
        expires,
        label: a.label.clone(),
    };
    let mut store = open_store(&cfg)?;
    let mut out_err: Option<CliError> = None;
    let res = store.add(
        &new,
        AddOptions {
            replace_revoked: a.replace_revoked,
        },
        now,
        || {
            // Written inside the transaction: the row exists only if the device's copy does.
            if let Some(out) = &a.key_out {
                let text = Zeroizing::new(format!("{}\n", hex::encode(&new.key[..])));
                if let Err(e) = keystore::write_secret_file(out, text.as_bytes()) {
                    out_err = Some(CliError::arg("--key-out", e));
                    return Err(CredentialError::Invalid("key file not written".into()));
                }
            }
            Ok(())
        },
    );
    if let Some(e) = out_err {
        return Err(e);
    }
    let info = res.map_err(|e| match e {
        CredentialError::Invalid(m) => CliError::arg("--identity", m),
        other => store_err(&cfg, other),
    })?;
    print_json(&info)?;
    Ok(ExitCode::SUCCESS)
}

/// The `[[psk]]` entries of the configuration, described like stored rows.
fn config_rows(cfg: &CredConfig) -> Vec<CredentialInfo> {
    cfg.psk
        .iter()
        .map(|p| CredentialInfo {
            identity: p.identity.clone(),
            credential_id: p
                .identity
                .parse::<KpsaId>()
                .map(|k| CredentialId::for_kpsa(&k).to_string())
                .unwrap_or_else(|_| format!("12-{}", p.identity)),
            source: "config",
            state: State::Active,
            ida: p.ida.clone(),
            registree: p.ida.as_ref().map(|_| match p.registree.as_deref() {
                Some("cse") => Registree::Cse,
                _ => Registree::Ae,
            }),
            expires: None,
            label: None,
            created: String::new(),
            revoked: None,
        })
        .collect()
}

/// Every credential of the CSE configured in `config`: its `[[psk]]` entries, then the store's.
pub(crate) fn all_credentials(config: &Path) -> CliResult<Vec<CredentialInfo>> {
    let cfg = load(config)?;
    let store = open_store(&cfg)?;
    let mut rows = config_rows(&cfg);
    rows.extend(store.list(unix_now()).map_err(|e| store_err(&cfg, e))?);
    Ok(rows)
}

fn list(a: ListArgs) -> CliResult<ExitCode> {
    let rows = all_credentials(&a.config)?;
    if a.json {
        print_json(&rows)?;
        return Ok(ExitCode::SUCCESS);
    }
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let state = match (r.state, &r.revoked) {
                (State::Revoked, Some(at)) => format!("revoked {at}"),
                (s, _) => serde_json::to_value(s)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default(),
            };
            vec![
                r.identity.clone(),
                r.source.to_string(),
                state,
                r.ida.clone().unwrap_or_else(|| "-".into()),
                r.expires.clone().unwrap_or_else(|| "-".into()),
                r.label.clone().unwrap_or_default(),
            ]
        })
        .collect();
    crate::util::print_table(
        &["IDENTITY", "SOURCE", "STATE", "IDA", "EXPIRES", "LABEL"],
        &table,
    );
    Ok(ExitCode::SUCCESS)
}

fn revoke(a: RevokeArgs) -> CliResult<ExitCode> {
    let cfg = load(&a.config)?;
    if a.identity.is_empty() {
        return Err(CliError::arg("--identity", "empty identity"));
    }
    let mut store = open_store(&cfg)?;
    match store.revoke(&a.identity, unix_now()) {
        Ok(info) => {
            print_json(&info)?;
            Ok(ExitCode::SUCCESS)
        }
        Err(CredentialError::NotFound(_)) if cfg.psk.iter().any(|p| p.identity == a.identity) => {
            Err(CliError::arg(
                "--identity",
                format!(
                    "{} is a [[psk]] entry of {}: remove it there and restart the CSE",
                    a.identity,
                    a.config.display()
                ),
            ))
        }
        Err(e) => Err(store_err(&cfg, e)),
    }
}
