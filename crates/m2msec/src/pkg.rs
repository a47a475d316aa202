//! `m2msec pkg serve --config FILE`: the PKG of seed 001 as a service of its own, for MEFs that
//! keep the KMS secret on another host (BRIEF A32). It serves only the `[[client]]` MEFs, each
//! authenticated by its own PSK over TLS 1.2 (both ends authenticated). The KSAK rests sealed in
//! `data_dir` (`mef.sqlite3`'s `pkg` table under `data_dir/kek`). A MEF uses it through a `[pkg]`
//! section in its own configuration.
//!
//! When bound, one line goes to stderr: `m2msec pkg: listening on https://ADDR (TLS-PSK) for FQDN`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Subcommand};
use serde::Deserialize;

use m2msec_bindings::{Limits, Listeners, Server};
use m2msec_core::ids::Fqdn;
use m2msec_mef::pkg_service::{PkgClient, PkgEndpoint, PkgLink, RemotePkg};
use m2msec_mef::{LocalPkg, MefStore};
use m2msec_tls::PskIdentity;

use crate::error::CliError;

/// `m2msec pkg` subcommands.
#[derive(Subcommand)]
pub enum PkgCmd {
    /// Run the PKG service until killed.
    Serve(ServeArgs),
    /// The key-encryption key: move it into a PKCS#11 token (TS-0003 §6.3.1).
    Keys {
        #[command(subcommand)]
        cmd: crate::keys::KeysCmd,
    },
}

/// `m2msec pkg serve`.
#[derive(Args)]
pub struct ServeArgs {
    /// The TOML configuration: fqdn, data_dir, [tls] bind/port, [[client]] identity/key_file.
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
}

fn loopback() -> IpAddr {
    IpAddr::V4(Ipv4Addr::LOCALHOST)
}
fn default_port() -> u16 {
    8445
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    fqdn: String,
    data_dir: PathBuf,
    #[serde(default = "loopback")]
    bind: IpAddr,
    #[serde(default = "default_port")]
    port: u16,
    #[serde(default)]
    client: Vec<ClientEntry>,
    /// Where the KEK sealing the KSAK lives (TS-0003 §6.3.1): absent, the file
    /// `data_dir/kek`; or a PKCS#11 token.
    #[serde(default)]
    secure_environment: m2msec_keystore::SecureEnvironmentConfig,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientEntry {
    identity: String,
    key_file: PathBuf,
}

fn cfg_err(msg: impl std::fmt::Display) -> CliError {
    CliError::arg("--config", msg)
}

/// Runs a `pkg` subcommand.
pub fn run(cmd: PkgCmd) -> Result<ExitCode, CliError> {
    match cmd {
        PkgCmd::Serve(a) => serve(a),
        PkgCmd::Keys { cmd } => crate::keys::run(crate::keys::Service::Pkg, cmd),
    }
}

fn serve(a: ServeArgs) -> Result<ExitCode, CliError> {
    let text = std::fs::read_to_string(&a.config)
        .map_err(|e| cfg_err(format!("{}: {e}", a.config.display())))?;
    let c: Config =
        toml::from_str(&text).map_err(|e| cfg_err(format!("{}: {e}", a.config.display())))?;
    let fqdn: Fqdn = c.fqdn.parse().map_err(|e| cfg_err(format!("fqdn: {e}")))?;
    if c.client.is_empty() {
        return Err(cfg_err("no [[client]] MEF configured"));
    }
    let mut clients = Vec::new();
    for e in &c.client {
        clients.push(PkgClient {
            psk_identity: PskIdentity::new(&e.identity)
                .map_err(|err| cfg_err(format!("client {:?}: {err}", e.identity)))?,
            key: crate::link::read_psk_file(&e.key_file, &format!("client {}", e.identity))?,
        });
    }
    let se = crate::util::open_secure_environment("pkg", &c.secure_environment)?;
    // Stated once the PKG is up (a failed start-up prints one line, the error).
    let se_line = crate::util::secure_environment_line(&se);
    let pkg = {
        let mut s = MefStore::open_labelled(&c.data_dir, &se, m2msec_mef::store::PKG_KEK_LABEL)
            .map_err(|e| cfg_err(format!("data_dir {}: {e}", c.data_dir.display())))?;
        LocalPkg::from_store(&mut s).map_err(|e| cfg_err(format!("KMS: {e}")))?
    };
    let (ep, mut tls) = PkgEndpoint::new(Arc::new(pkg), fqdn.clone(), &clients);
    let limits = Limits::default();
    tls.handshake_timeout = limits.handshake_timeout;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(CliError::other)?;
    rt.block_on(async move {
        let server = Server::with_endpoint(
            Listeners {
                tls_addr: SocketAddr::new(c.bind, c.port),
                plain_addr: None,
                limits,
            },
            &tls,
            ep,
        )
        .await
        .map_err(cfg_err)?;
        eprintln!("m2msec pkg: {se_line}");
        if let Some(t) = server.tls_addr() {
            eprintln!("m2msec pkg: listening on https://{t} (TLS-PSK) for {fqdn}");
        }
        server.serve().await;
        Err(CliError::other("the PKG service stopped"))
    })
}

/// The `[pkg]` section of a MEF configuration: use a PKG service instead of the in-process one.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PkgSection {
    /// `https://HOST:PORT` of the PKG service.
    url: String,
    /// The PKG's FQDN (SNI).
    fqdn: String,
    /// The MEF's psk_identity at the PKG.
    identity: String,
    /// The MEF's PSK at the PKG, hex, mode 0600.
    key_file: PathBuf,
    /// Deadline per call, seconds.
    #[serde(default = "default_timeout")]
    timeout_secs: u64,
}

fn default_timeout() -> u64 {
    5
}

impl PkgSection {
    /// Connects to the PKG service (learning its KPAK).
    pub fn connect(&self) -> Result<RemotePkg, CliError> {
        let l = crate::link::resolve(
            "[pkg]",
            &self.url,
            &self.fqdn,
            &self.identity,
            &self.key_file,
            self.timeout_secs,
        )?;
        RemotePkg::connect(PkgLink {
            host: l.host,
            port: l.port,
            fqdn: l.fqdn,
            psk_identity: l.identity,
            psk: l.psk,
            timeout: l.timeout,
        })
        .map_err(|e| cfg_err(format!("[pkg] {e}")))
    }
}

#[cfg(test)]
mod example_config {
    #[test]
    fn example_parses() {
        crate::util::assert_example_parses::<super::Config>("pkg.toml");
    }
}
