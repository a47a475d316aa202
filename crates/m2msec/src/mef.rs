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

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Subcommand};
use serde::Deserialize;

use m2msec_bindings::{CoapServer, Limits, Listeners, Server};
use m2msec_core::duration::XsDuration;
use m2msec_core::ids::Fqdn;
use m2msec_core::kdf::SuidEncoding;
use m2msec_mef::{LocalPkg, MefConfig, MefEndpoint, MefStore, TargetClient};
use m2msec_tls::{DtlsOptions, PskIdentity};

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
    /// The key-encryption key: move it into a PKCS#11 token (TS-0003 §6.3.1).
    Keys {
        #[command(subcommand)]
        cmd: crate::keys::KeysCmd,
    },
}

/// `m2msec mef serve`.
#[derive(Args)]
pub struct ServeArgs {
    /// The TOML configuration (see examples/mef.toml).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
}

fn loopback() -> IpAddr {
    IpAddr::V4(Ipv4Addr::LOCALHOST)
}
fn default_port() -> u16 {
    8444
}
fn default_true() -> bool {
    true
}
fn default_retry() -> String {
    "PT1H".into()
}
fn default_reg_secs() -> u64 {
    30 * 86_400
}
fn default_enrolment_secs() -> u64 {
    365 * 86_400
}

/// The configuration file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The MEF's FQDN: KeID = hex@FQDN, the SNI it answers, the FQDN in ID2.
    pub fqdn: String,
    /// Store directory (mef.sqlite3 and the KEK file `kek`).
    pub data_dir: PathBuf,
    #[serde(default)]
    tls: TlsSection,
    #[serde(default)]
    enrolment: EnrolmentSection,
    #[serde(default)]
    target: Vec<TargetEntry>,
    #[serde(default)]
    coap: CoapSection,
    /// A PKG service instead of the in-process PKG.
    #[serde(default)]
    pkg: Option<crate::pkg::PkgSection>,
    /// Where the KEK sealing the devices' Kpm, the enrolments' Ke and the KSAK lives
    /// (TS-0003 §6.3.1): absent, the file `data_dir/kek`; or a PKCS#11 token.
    #[serde(default)]
    secure_environment: m2msec_keystore::SecureEnvironmentConfig,
}

fn default_coap_port() -> u16 {
    5685
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CoapSection {
    #[serde(default)]
    enabled: bool,
    #[serde(default = "loopback")]
    bind: IpAddr,
    #[serde(default = "default_coap_port")]
    port: u16,
    /// DTLS handshakes in progress, at most (the oldest is evicted beyond, issue 9 item 5).
    #[serde(default = "default_max_half_open")]
    max_half_open: usize,
    /// DTLS handshakes in progress from one IPv4 address or IPv6 /64, at most.
    #[serde(default = "default_max_half_open_per_source")]
    max_half_open_per_source: usize,
}

fn default_max_half_open() -> usize {
    DtlsOptions::default().max_half_open
}

fn default_max_half_open_per_source() -> usize {
    DtlsOptions::default().max_half_open_per_source
}

impl Default for CoapSection {
    fn default() -> Self {
        CoapSection {
            enabled: false,
            bind: loopback(),
            port: default_coap_port(),
            max_half_open: default_max_half_open(),
            max_half_open_per_source: default_max_half_open_per_source(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsSection {
    #[serde(default = "loopback")]
    bind: IpAddr,
    #[serde(default = "default_port")]
    port: u16,
    /// The MEF's FQDN certificate chain (PEM, leaf first) for the Certificate-Based RSPF.
    #[serde(default)]
    certificate: Option<PathBuf>,
    /// Its private key (PEM, P-256, mode 0600).
    #[serde(default)]
    private_key: Option<PathBuf>,
    /// Trust anchors (PEM) for device certificates.
    #[serde(default)]
    trust_anchors: Option<PathBuf>,
}

impl Default for TlsSection {
    fn default() -> Self {
        TlsSection {
            bind: loopback(),
            port: default_port(),
            certificate: None,
            private_key: None,
            trust_anchors: None,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EnrolmentSection {
    #[serde(default = "default_true")]
    ibc: bool,
    #[serde(default = "default_retry")]
    retry_duration: String,
    #[serde(default)]
    suid_encoding: Option<String>,
    /// "10.3.7" (default) or "legacy" (§10.3.2/§10.3.3, BRIEF A9).
    #[serde(default)]
    derivation: Option<String>,
    #[serde(default = "default_reg_secs")]
    max_registration_secs: u64,
    /// Default Enrolment Expiry (Ke lifetime) for devices added without one.
    #[serde(default = "default_enrolment_secs")]
    pub default_enrolment_secs: u64,
}

impl Default for EnrolmentSection {
    fn default() -> Self {
        EnrolmentSection {
            ibc: true,
            retry_duration: default_retry(),
            suid_encoding: None,
            derivation: None,
            max_registration_secs: default_reg_secs(),
            default_enrolment_secs: default_enrolment_secs(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TargetEntry {
    /// psk_identity of the target client.
    identity: String,
    /// Its PSK in hex, mode 0600.
    key_file: PathBuf,
    /// Its absolute ID (e.g. `//sp.example/cse-in`).
    id: String,
}

fn cfg_err(msg: impl std::fmt::Display) -> CliError {
    CliError::arg("--config", msg)
}

/// A validated configuration.
pub struct Loaded {
    /// Engine configuration.
    pub mef: MefConfig,
    /// Certificate-Based RSPF: the MEF's credential and the device trust anchors.
    certificates: Option<crate::credential::CertificateAssociation>,
    /// Store directory.
    pub data_dir: PathBuf,
    /// Listener address.
    pub addr: SocketAddr,
    /// CoAP/DTLS listener address, if enabled.
    pub coap_addr: Option<SocketAddr>,
    /// `[coap]` bounds on DTLS handshakes in progress: (all, per source).
    pub coap_half_open: (usize, usize),
    /// Target clients.
    pub targets: Vec<TargetClient>,
    /// Default Enrolment Expiry, seconds.
    pub default_enrolment_secs: u64,
    /// The remote PKG, if configured.
    pkg: Option<crate::pkg::PkgSection>,
    /// The secure environment of the store (`[secure_environment]`, opened).
    pub secure_environment: m2msec_keystore::SecureEnvironment,
}

/// Reads and validates the configuration at `path`.
pub fn load(path: &Path) -> Result<Loaded, CliError> {
    let text =
        std::fs::read_to_string(path).map_err(|e| cfg_err(format!("{}: {e}", path.display())))?;
    let c: Config =
        toml::from_str(&text).map_err(|e| cfg_err(format!("{}: {e}", path.display())))?;
    let fqdn: Fqdn = c.fqdn.parse().map_err(|e| cfg_err(format!("fqdn: {e}")))?;
    let retry: XsDuration = c
        .enrolment
        .retry_duration
        .parse()
        .map_err(|e| cfg_err(format!("[enrolment] retry_duration: {e}")))?;
    let suid_encoding = match c.enrolment.suid_encoding.as_deref() {
        None | Some("ascii") => SuidEncoding::AsciiDecimal,
        Some("octet") => SuidEncoding::SingleOctet,
        Some(o) => {
            return Err(cfg_err(format!(
                "[enrolment] suid_encoding must be \"ascii\" or \"octet\", not {o:?}"
            )))
        }
    };
    if c.enrolment.max_registration_secs == 0 || c.enrolment.default_enrolment_secs == 0 {
        return Err(cfg_err("[enrolment] lifetimes must be positive"));
    }
    let mut targets = Vec::new();
    for t in &c.target {
        let key = crate::link::read_psk_file(&t.key_file, &format!("target {}", t.identity))?;
        if !t.id.starts_with("//") {
            return Err(cfg_err(format!(
                "target {}: id must be an absolute CSE-ID or AE-ID (//SP/...)",
                t.identity
            )));
        }
        targets.push(TargetClient {
            psk_identity: PskIdentity::new(&t.identity)
                .map_err(|e| cfg_err(format!("target identity {:?}: {e}", t.identity)))?,
            key,
            client_id: t.id.clone(),
        });
    }
    Ok(Loaded {
        mef: MefConfig {
            fqdn,
            ibc: c.enrolment.ibc,
            retry_duration: retry,
            suid_encoding,
            max_registration_secs: c.enrolment.max_registration_secs,
            legacy_derivation: match c.enrolment.derivation.as_deref() {
                None | Some("10.3.7") => false,
                Some("legacy") => true,
                Some(o) => {
                    return Err(cfg_err(format!(
                        "[enrolment] derivation must be \"10.3.7\" or \"legacy\", not {o:?}"
                    )))
                }
            },
        },
        data_dir: c.data_dir,
        addr: SocketAddr::new(c.tls.bind, c.tls.port),
        coap_addr: c
            .coap
            .enabled
            .then(|| SocketAddr::new(c.coap.bind, c.coap.port)),
        coap_half_open: (c.coap.max_half_open, c.coap.max_half_open_per_source),
        targets,
        default_enrolment_secs: c.enrolment.default_enrolment_secs,
        pkg: c.pkg,
        secure_environment: crate::util::open_secure_environment("mef", &c.secure_environment)?,
        certificates: crate::credential::certificates(
            c.tls.certificate.as_deref(),
            c.tls.private_key.as_deref(),
            c.tls.trust_anchors.as_deref(),
        )?,
    })
}

/// Opens the store of a loaded configuration.
pub fn open_store(l: &Loaded) -> Result<MefStore, CliError> {
    MefStore::open_in(&l.data_dir, &l.secure_environment)
        .map_err(|e| cfg_err(format!("data_dir {}: {e}", l.data_dir.display())))
}

/// A started MEF: its HTTPS server, optional CoAP server, and endpoint.
pub type Started = (
    Server<MefEndpoint>,
    Option<CoapServer<MefEndpoint>>,
    Arc<MefEndpoint>,
);

/// Starts a MEF on a runtime that already runs.
pub async fn start(l: Loaded) -> Result<Started, CliError> {
    let pkg: Arc<dyn m2msec_mef::Pkg> = match &l.pkg {
        Some(p) => {
            // The first call blocks on the network: keep it off the reactor.
            let remote = tokio::task::block_in_place(|| p.connect())?;
            Arc::new(remote)
        }
        None => {
            let mut store = open_store(&l)?;
            Arc::new(LocalPkg::from_store(&mut store).map_err(|e| cfg_err(format!("PKG: {e}")))?)
        }
    };
    let (ep, mut tls) = MefEndpoint::with_environment(
        l.mef,
        &l.data_dir,
        &l.secure_environment,
        pkg,
        l.targets,
        m2msec_mef::clock::system(),
    )
    .map_err(|e| cfg_err(format!("data_dir {}: {e}", l.data_dir.display())))?;
    let limits = Limits::default();
    tls.handshake_timeout = limits.handshake_timeout;
    if let Some(c) = l.certificates {
        // TS-0003 §8.3.2.2 with the §10.2.3 suites (BRIEF A28): devices whose verified
        // certificate names a device provisioned as `cert:<identity>`.
        c.apply(&mut tls);
    }
    let server = Server::with_endpoint(
        Listeners {
            tls_addr: l.addr,
            plain_addr: None,
            limits,
        },
        &tls,
        ep.clone(),
    )
    .await
    .map_err(cfg_err)?;
    let coap = match l.coap_addr {
        Some(addr) => Some(
            CoapServer::bind(
                addr,
                &tls,
                DtlsOptions {
                    max_half_open: l.coap_half_open.0,
                    max_half_open_per_source: l.coap_half_open.1,
                    ..DtlsOptions::default()
                },
                limits,
                ep.clone(),
            )
            .await
            .map_err(cfg_err)?,
        ),
        None => None,
    };
    Ok((server, coap, ep))
}

/// Runs a `mef` subcommand.
pub fn run(cmd: MefCmd) -> Result<ExitCode, CliError> {
    match cmd {
        MefCmd::Serve(a) => serve(a),
        MefCmd::Device { cmd } => crate::mef_admin::run(cmd),
        MefCmd::Keys { cmd } => crate::keys::run(crate::keys::Service::Mef, cmd),
    }
}

fn serve(a: ServeArgs) -> Result<ExitCode, CliError> {
    let loaded = load(&a.config)?;
    let fqdn = loaded.mef.fqdn.clone();
    // Stated once the MEF is up (a failed start-up prints one line, the error).
    let se_line = crate::util::secure_environment_line(&loaded.secure_environment);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(CliError::other)?;
    rt.block_on(async move {
        let (server, coap, _ep) = start(loaded).await?;
        eprintln!("m2msec mef: {se_line}");
        let mut line = String::from("m2msec mef: listening on ");
        if let Some(t) = server.tls_addr() {
            line.push_str(&format!("https://{t} (TLS-PSK)"));
        }
        if let Some(c) = &coap {
            line.push_str(&format!(" and coaps://{} (DTLS-PSK)", c.local_addr()));
        }
        eprintln!("{line} for {fqdn}");
        if let Some(c) = coap {
            tokio::spawn(c.serve());
        }
        server.serve().await;
        Err(CliError::other("the MEF service stopped"))
    })
}

#[cfg(test)]
mod example_config {
    #[test]
    fn example_parses() {
        crate::util::assert_example_parses::<super::Config>("mef.toml");
    }
}
