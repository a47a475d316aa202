//! `m2msec cse serve --config FILE`: the registrar CSE (TS-0001, TS-0004) serving HTTP (TS-0009)
//! over TLS 1.2 PSK security associations (TS-0003 §8.2.2.1), with resources and learned
//! identity bindings in SQLite under `data_dir`.
//!
//! The configuration is one TOML file; `examples/cse.toml` documents every option. Relative
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
//! (`m2msec_cse::routing`, TS-0004 §7.3.2.6).
//!
//! When every listener is bound, one line goes to stderr:
//! `m2msec cse: listening on https://ADDR (TLS-PSK)[ and http://ADDR (plaintext, loopback only)]`
//! `[ and coaps://ADDR (DTLS-PSK)]`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use serde::Deserialize;

use m2msec_bindings::{
    CoapServer, CseEndpoint, CseSecurity, Limits, Listeners, PskCredential, Server, ServerOptions,
};
use m2msec_core::ids::{AeId, CseId, KpsaId, SpId};
use m2msec_cse::{BoundIdentity, Cse, CseConfig, CseType, SqliteStore};
use m2msec_tls::{Psk, PskIdentity};
use zeroize::Zeroizing;

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

/// The configuration file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// This CSE's CSE-ID (`/cse-in` or `cse-in`).
    cse_id: String,
    /// M2M-SP-ID.
    sp_id: String,
    /// Resource name of `<CSEBase>`.
    #[serde(default = "default_cb")]
    cse_base_name: String,
    /// `IN` or `MN`.
    #[serde(default = "default_cse_type")]
    cse_type: String,
    /// pointOfAccess of `<CSEBase>`.
    #[serde(default)]
    poa: Vec<String>,
    /// SQLite directory.
    data_dir: PathBuf,
    #[serde(default)]
    tls: TlsSection,
    #[serde(default)]
    limits: LimitsSection,
    #[serde(default)]
    storage: StorageSection,
    /// `[cse_base]`: the `<CSEBase>` policy and the administrator.
    #[serde(default)]
    cse_base: CseBaseSection,
    #[serde(default)]
    psk: Vec<PskEntry>,
    #[serde(default)]
    http_plain: PlainSection,
    #[serde(default)]
    coap: CoapSection,
    /// The CSE as an Enrolment Target of a MEF (keys for KeIDs fetched from it).
    #[serde(default)]
    mef: Option<crate::cse_mef::MefSection>,
    /// Client raw public keys (RFC 7250).
    #[serde(default)]
    raw_key: Vec<RawKeyEntry>,
    /// `[registrar]`: an MN-CSE's registrar CSE (issue 12).
    #[serde(default)]
    registrar: Option<RegistrarSection>,
    /// `[[registree]]`: how this CSE reaches a registree CSE to forward requests down to it.
    #[serde(default)]
    registree: Vec<RegistreeSection>,
}

/// `[[registree]]`: our client credential at a registree CSE (it binds the PSK to our CSE-ID)
/// and, optionally, its address (default: the first `https://` of the `pointOfAccess` it
/// registered with).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegistreeSection {
    cse_id: String,
    psk_identity: String,
    key_file: PathBuf,
    #[serde(default)]
    address: Option<String>,
    #[serde(default)]
    sni: Option<String>,
}

/// `HOST:PORT` → (host, port).
fn host_port(what: &str, a: &str) -> Result<(String, u16), CliError> {
    let (host, port) = a
        .rsplit_once(':')
        .ok_or_else(|| cfg_err(format!("{what} address must be HOST:PORT")))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port: u16 = port
        .parse()
        .map_err(|_| cfg_err(format!("{what} address: bad port")))?;
    if host.is_empty() || port == 0 {
        return Err(cfg_err(format!("{what} address must be HOST:PORT")));
    }
    Ok((host.to_string(), port))
}

fn check_sni(what: &str, sni: &Option<String>) -> Result<(), CliError> {
    match sni {
        Some(s) if s.is_empty() || s.parse::<IpAddr>().is_ok() => {
            Err(cfg_err(format!("{what} sni must be a host name")))
        }
        _ => Ok(()),
    }
}

fn registrees(
    c: &Config,
    own: &CseId,
) -> Result<Vec<m2msec_bindings::registrar::RegistreeLinkConfig>, CliError> {
    let mut out: Vec<m2msec_bindings::registrar::RegistreeLinkConfig> = Vec::new();
    for r in &c.registree {
        let what = format!("[[registree]] {}", r.cse_id);
        let id: CseId = r
            .cse_id
            .parse()
            .map_err(|e| cfg_err(format!("{what}: cse_id: {e}")))?;
        let stem = id.stem().to_string();
        if stem == own.stem() || out.iter().any(|o| o.cse_stem == stem) {
            return Err(cfg_err(format!("{what}: our own or a repeated CSE-ID")));
        }
        check_sni(&what, &r.sni)?;
        let addr = match &r.address {
            Some(a) => {
                let (host, port) = host_port(&what, a)?;
                Some(m2msec_bindings::registrar::CseAddress {
                    host,
                    port,
                    sni: r.sni.clone(),
                })
            }
            None => None,
        };
        let identity = PskIdentity::new(&r.psk_identity)
            .map_err(|e| cfg_err(format!("{what}: psk_identity: {e}")))?;
        out.push(m2msec_bindings::registrar::RegistreeLinkConfig {
            cse_stem: stem,
            addr,
            tls: m2msec_tls::ClientConfig::psk(identity, read_key_file(&r.key_file)?),
        });
    }
    Ok(out)
}

/// `[registrar]`: where an MN-CSE registers (TS-0001 §10.2.2) and forwards what it does not host
/// (TS-0004 §7.3.2.6), over HTTP in a TLS-PSK association the registrar binds to this CSE's
/// CSE-ID (its `[[psk]]` entry for us has `ida` = our CSE-ID, `registree = "cse"`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegistrarSection {
    /// The registrar's CSE-ID.
    cse_id: String,
    /// `HOST:PORT` of its TLS listener.
    address: String,
    /// SNI to send (default: the host, when it is a name).
    #[serde(default)]
    sni: Option<String>,
    /// Our psk_identity at the registrar.
    psk_identity: String,
    /// Hex key file (mode 0600).
    key_file: PathBuf,
    /// Deadline of each request to the registrar, and of each forward (seconds).
    #[serde(default = "d_30")]
    request_timeout_secs: u64,
    /// Longest wait between registration attempts while the registrar is down (seconds).
    #[serde(default = "d_300")]
    backoff_max_secs: u64,
}

fn d_30() -> u64 {
    30
}
fn d_300() -> u64 {
    300
}

/// The validated `[registrar]`.
struct Registrar {
    cse_id: CseId,
    addr: m2msec_bindings::registrar::CseAddress,
    psk_identity: PskIdentity,
    key: Psk,
    timeout: Duration,
    backoff_max_secs: u64,
}

fn registrar(c: &Config, cse_type: CseType, own: &CseId) -> Result<Option<Registrar>, CliError> {
    let r = match (&c.registrar, cse_type) {
        (None, CseType::In) => return Ok(None),
        (None, CseType::Mn) => {
            return Err(cfg_err(
                "cse_type = \"MN\" needs a [registrar] section (the CSE it registers with)",
            ))
        }
        (Some(_), CseType::In) => {
            return Err(cfg_err(
                "[registrar] is for an MN-CSE: an IN-CSE registers with nobody",
            ))
        }
        (Some(r), CseType::Mn) => r,
    };
    let cse_id: CseId = r
        .cse_id
        .parse()
        .map_err(|e| cfg_err(format!("[registrar] cse_id: {e}")))?;
    if cse_id.stem() == own.stem() {
        return Err(cfg_err("[registrar] cse_id is this CSE's own CSE-ID"));
    }
    let (host, port) = host_port("[registrar]", &r.address)?;
    check_sni("[registrar]", &r.sni)?;
    if r.request_timeout_secs == 0 || r.request_timeout_secs > 3600 {
        return Err(cfg_err("[registrar] request_timeout_secs must be 1..3600"));
    }
    if r.backoff_max_secs == 0 || r.backoff_max_secs > 86_400 {
        return Err(cfg_err("[registrar] backoff_max_secs must be 1..86400"));
    }
    Ok(Some(Registrar {
        cse_id,
        addr: m2msec_bindings::registrar::CseAddress {
            host,
            port,
            sni: r.sni.clone(),
        },
        psk_identity: PskIdentity::new(&r.psk_identity)
            .map_err(|e| cfg_err(format!("[registrar] psk_identity: {e}")))?,
        key: read_key_file(&r.key_file)?,
        timeout: Duration::from_secs(r.request_timeout_secs),
        backoff_max_secs: r.backoff_max_secs,
    }))
}

/// `[[raw_key]]`: a client raw public key (TS-0003 §8.2.2.2, RFC 7250), bound to Credential-ID
/// `30-<pk_id>` and optionally to a configured IdA.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKeyEntry {
    /// RFC 6920 identifier of the client's SubjectPublicKeyInfo, `ni:///sha-256;<base64url>`.
    pk_id: String,
    #[serde(default)]
    ida: Option<String>,
    #[serde(default)]
    registree: Option<String>,
}

fn default_cb() -> String {
    "cb".into()
}
fn default_cse_type() -> String {
    "IN".into()
}
fn loopback() -> IpAddr {
    IpAddr::V4(Ipv4Addr::LOCALHOST)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsSection {
    #[serde(default = "loopback")]
    bind: IpAddr,
    #[serde(default = "default_tls_port")]
    port: u16,
    #[serde(default)]
    authority: Option<String>,
    #[serde(default)]
    require_sni: bool,
    /// Certificate association (TS-0003 §8.2.2.2): this CSE's chain (PEM), its P-256 key
    /// (PEM, mode 0600) and the anchors client certificates must chain to.
    #[serde(default)]
    certificate: Option<PathBuf>,
    #[serde(default)]
    private_key: Option<PathBuf>,
    #[serde(default)]
    trust_anchors: Option<PathBuf>,
}

fn default_tls_port() -> u16 {
    8443
}

impl Default for TlsSection {
    fn default() -> Self {
        TlsSection {
            bind: loopback(),
            port: default_tls_port(),
            authority: None,
            require_sni: false,
            certificate: None,
            private_key: None,
            trust_anchors: None,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitsSection {
    #[serde(default = "d_max_body")]
    max_body: usize,
    #[serde(default = "d_10")]
    handshake_timeout_secs: u64,
    #[serde(default = "d_10")]
    header_timeout_secs: u64,
    #[serde(default = "d_10")]
    body_timeout_secs: u64,
    #[serde(default = "d_60")]
    idle_timeout_secs: u64,
    #[serde(default = "d_conns")]
    max_connections: usize,
}

/// `[cse_base]`: who may do what on `<CSEBase>` ([`m2msec_cse::CseBasePolicy`]).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CseBaseSection {
    #[serde(default = "d_true")]
    registered_aes_retrieve: bool,
    #[serde(default)]
    admin: Option<String>,
    #[serde(default)]
    admin_plaintext: bool,
}

fn d_true() -> bool {
    true
}

impl Default for CseBaseSection {
    fn default() -> Self {
        CseBaseSection {
            registered_aes_retrieve: true,
            admin: None,
            admin_plaintext: false,
        }
    }
}

/// `[storage]`: the engine's storage limits ([`m2msec_cse::Limits`]); 0 disables a limit, and
/// an absent key takes the engine's default.
#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct StorageSection {
    container_default_mni: u64,
    container_default_mbs: u64,
    registree_max_resources: u64,
    registree_max_bytes: u64,
    max_expiration_secs: u64,
}

impl Default for StorageSection {
    fn default() -> Self {
        let l = m2msec_cse::Limits::default();
        let n = |v: Option<u64>| v.unwrap_or(0);
        StorageSection {
            container_default_mni: n(l.container_mni),
            container_default_mbs: n(l.container_mbs),
            registree_max_resources: n(l.registree_max_resources),
            registree_max_bytes: n(l.registree_max_bytes),
            max_expiration_secs: n(l.max_expiration_secs),
        }
    }
}

impl StorageSection {
    fn limits(&self) -> m2msec_cse::Limits {
        let some = |v: u64| (v != 0).then_some(v);
        m2msec_cse::Limits {
            container_mni: some(self.container_default_mni),
            container_mbs: some(self.container_default_mbs),
            registree_max_resources: some(self.registree_max_resources),
            registree_max_bytes: some(self.registree_max_bytes),
            max_expiration_secs: some(self.max_expiration_secs),
        }
    }
}

fn d_max_body() -> usize {
    m2msec_bindings::http::DEFAULT_MAX_BODY
}
fn d_10() -> u64 {
    10
}
fn d_60() -> u64 {
    60
}
fn d_conns() -> usize {
    1024
}

impl Default for LimitsSection {
    fn default() -> Self {
        LimitsSection {
            max_body: d_max_body(),
            handshake_timeout_secs: 10,
            header_timeout_secs: 10,
            body_timeout_secs: 10,
            idle_timeout_secs: 60,
            max_connections: d_conns(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PskEntry {
    /// KpsaID, sent by clients as psk_identity.
    identity: String,
    /// File with the key in hex, mode 0600.
    key_file: PathBuf,
    /// Configured IdA (optional).
    #[serde(default)]
    ida: Option<String>,
    /// What `ida` names: `ae` (default) or `cse`.
    #[serde(default)]
    registree: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlainSection {
    #[serde(default)]
    enabled: bool,
    #[serde(default = "loopback")]
    bind: IpAddr,
    #[serde(default)]
    port: u16,
}

impl Default for PlainSection {
    fn default() -> Self {
        PlainSection {
            enabled: false,
            bind: loopback(),
            port: 0,
        }
    }
}

/// `[coap]`: CoAP (TS-0008) over DTLS 1.2 PSK.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CoapSection {
    #[serde(default)]
    enabled: bool,
    #[serde(default = "loopback")]
    bind: IpAddr,
    #[serde(default = "default_coaps_port")]
    port: u16,
    /// DTLS handshakes in progress, at most (the oldest is evicted beyond, issue 9 item 5).
    #[serde(default = "default_max_half_open")]
    max_half_open: usize,
    /// DTLS handshakes in progress from one IPv4 address or IPv6 /64, at most.
    #[serde(default = "default_max_half_open_per_source")]
    max_half_open_per_source: usize,
}

fn default_max_half_open() -> usize {
    m2msec_tls::DtlsOptions::default().max_half_open
}

fn default_max_half_open_per_source() -> usize {
    m2msec_tls::DtlsOptions::default().max_half_open_per_source
}

/// The default `coaps` port (RFC 7252 §12.7).
fn default_coaps_port() -> u16 {
    5684
}

impl Default for CoapSection {
    fn default() -> Self {
        CoapSection {
            enabled: false,
            bind: loopback(),
            port: default_coaps_port(),
            max_half_open: default_max_half_open(),
            max_half_open_per_source: default_max_half_open_per_source(),
        }
    }
}

fn cfg_err(msg: impl std::fmt::Display) -> CliError {
    CliError::arg("--config", msg)
}

/// Reads a hex key file, refusing one that group or others may read (TS-0003 key hygiene).
fn read_key_file(path: &Path) -> Result<Psk, CliError> {
    let meta = std::fs::metadata(path)
        .map_err(|e| cfg_err(format!("key_file {}: {e}", path.display())))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(cfg_err(format!(
                "key_file {} has mode {mode:04o}: it must be 0600 (chmod 600 {})",
                path.display(),
                path.display()
            )));
        }
    }
    if !meta.is_file() || meta.len() > 4096 {
        return Err(cfg_err(format!(
            "key_file {} is not a small regular file",
            path.display()
        )));
    }
    let text = Zeroizing::new(
        std::fs::read_to_string(path)
            .map_err(|e| cfg_err(format!("key_file {}: {e}", path.display())))?,
    );
    Psk::from_hex(text.trim()).map_err(|e| cfg_err(format!("key_file {}: {e}", path.display())))
}

fn bound_identity(e: &PskEntry) -> Result<Option<BoundIdentity>, CliError> {
    let Some(ida) = &e.ida else {
        if e.registree.is_some() {
            return Err(cfg_err(format!(
                "psk {}: registree without ida",
                e.identity
            )));
        }
        return Ok(None);
    };
    match e.registree.as_deref().unwrap_or("ae") {
        "ae" => {
            let ae: AeId = ida
                .parse()
                .map_err(|err| cfg_err(format!("psk {}: ida {ida:?}: {err}", e.identity)))?;
            Ok(Some(BoundIdentity::Ae(vec![ae])))
        }
        "cse" => {
            let c: CseId = ida
                .parse()
                .map_err(|err| cfg_err(format!("psk {}: ida {ida:?}: {err}", e.identity)))?;
            Ok(Some(BoundIdentity::Cse(c)))
        }
        other => Err(cfg_err(format!(
            "psk {}: registree must be \"ae\" or \"cse\", not {other:?}",
            e.identity
        ))),
    }
}

/// The validated configuration.
struct Loaded {
    engine: CseConfig,
    cse_base: m2msec_cse::CseBasePolicy,
    storage: m2msec_cse::Limits,
    data_dir: PathBuf,
    server: ServerOptions,
    /// The CoAP/DTLS listener address, if `[coap]` is enabled.
    coap_addr: Option<SocketAddr>,
    /// `[coap]` bounds on DTLS handshakes in progress: (all, per source).
    coap_half_open: (usize, usize),
    /// Certificate association (`[tls] certificate`, `private_key`, `trust_anchors`).
    certificates: Option<crate::credential::CertificateAssociation>,
    /// Keys for KeIDs of this MEF are fetched from it (`[mef]`).
    mef: Option<m2msec_mef::target::MefKeySource>,
    /// Client raw public keys (`[[raw_key]]`).
    raw_keys: Vec<m2msec_bindings::RawKeyCredential>,
    /// An MN-CSE's registrar (`[registrar]`).
    registrar: Option<Registrar>,
    /// Links down to registree CSEs (`[[registree]]`).
    registrees: Vec<m2msec_bindings::registrar::RegistreeLinkConfig>,
    /// This CSE's CSE-ID, `<CSEBase>` name and poa (for the registration).
    engine_id: CseId,
    cb_rn: String,
    poa: Vec<String>,
}

fn load(path: &Path) -> Result<Loaded, CliError> {
    let text =
        std::fs::read_to_string(path).map_err(|e| cfg_err(format!("{}: {e}", path.display())))?;
    let c: Config =
        toml::from_str(&text).map_err(|e| cfg_err(format!("{}: {e}", path.display())))?;
    let sp: SpId = c
        .sp_id
        .parse()
        .map_err(|e| cfg_err(format!("sp_id: {e}")))?;
    let cse_id: CseId = c
        .cse_id
        .parse()
        .map_err(|e| cfg_err(format!("cse_id: {e}")))?;
    let cse_type = match c.cse_type.to_ascii_uppercase().as_str() {
        "IN" => CseType::In,
        "MN" => CseType::Mn,
        other => return Err(cfg_err(format!("cse_type must be IN or MN, not {other:?}"))),
    };
    let mut credentials = Vec::new();
    for e in &c.psk {
        let kpsa_id: KpsaId = e
            .identity
            .parse()
            .map_err(|err| cfg_err(format!("psk identity {:?}: {err}", e.identity)))?;
        let psk_identity = PskIdentity::new(&e.identity)
            .map_err(|err| cfg_err(format!("psk identity {:?}: {err}", e.identity)))?;
        if credentials
            .iter()
            .any(|x: &PskCredential| x.psk_identity == psk_identity)
        {
            return Err(cfg_err(format!(
                "psk identity {:?} given twice",
                e.identity
            )));
        }
        credentials.push(PskCredential {
            psk_identity,
            kpsa_id,
            key: read_key_file(&e.key_file)?,
            bound: bound_identity(e)?,
        });
    }
    // No [[psk]] entry is fine: credentials may live in the store (`m2msec cse credential`).
    let plain_addr = if c.http_plain.enabled {
        let a = SocketAddr::new(c.http_plain.bind, c.http_plain.port);
        if !a.ip().is_loopback() {
            return Err(cfg_err(format!(
                "[http_plain] bind = {}: the plaintext listener may only bind a loopback address \
                 (127.0.0.1 or ::1); use the TLS listener for other interfaces",
                c.http_plain.bind
            )));
        }
        Some(a)
    } else {
        None
    };
    if let Some(a) = &c.tls.authority {
        if a.is_empty() || a.parse::<IpAddr>().is_ok() {
            return Err(cfg_err("[tls] authority must be a host name (the SNI)"));
        }
    }
    let l = &c.limits;
    if l.max_body == 0 || l.max_connections == 0 {
        return Err(cfg_err(
            "[limits] max_body and max_connections must be positive",
        ));
    }
    for (name, v) in [
        ("handshake_timeout_secs", l.handshake_timeout_secs),
        ("header_timeout_secs", l.header_timeout_secs),
        ("body_timeout_secs", l.body_timeout_secs),
        ("idle_timeout_secs", l.idle_timeout_secs),
    ] {
        if v == 0 || v > 86_400 {
            return Err(cfg_err(format!("[limits] {name} must be 1..86400")));
        }
    }
    if c.storage.max_expiration_secs > 100 * 365 * 86_400 {
        return Err(cfg_err(
            "[storage] max_expiration_secs must be at most 100 years (0 disables it)",
        ));
    }
    if c.cse_base.admin_plaintext && c.cse_base.admin.is_none() {
        return Err(cfg_err("[cse_base] admin_plaintext needs an admin"));
    }
    let registrar = registrar(&c, cse_type, &cse_id)?;
    Ok(Loaded {
        registrar,
        registrees: registrees(&c, &cse_id)?,
        engine_id: cse_id.clone(),
        cb_rn: c.cse_base_name.clone(),
        poa: c.poa.clone(),
        cse_base: m2msec_cse::CseBasePolicy {
            registered_aes_retrieve: c.cse_base.registered_aes_retrieve,
            admin: c.cse_base.admin.clone(),
            admin_plaintext: c.cse_base.admin_plaintext,
        },
        storage: c.storage.limits(),
        engine: CseConfig {
            sp,
            cse_id,
            cb_rn: c.cse_base_name.clone(),
            cse_type,
            poa: c.poa.clone(),
        },
        data_dir: c.data_dir.clone(),
        coap_addr: c
            .coap
            .enabled
            .then(|| SocketAddr::new(c.coap.bind, c.coap.port)),
        coap_half_open: (c.coap.max_half_open, c.coap.max_half_open_per_source),
        mef: c.mef.as_ref().map(|m| m.key_source()).transpose()?,
        raw_keys: raw_keys(&c)?,
        certificates: crate::credential::certificates(
            c.tls.certificate.as_deref(),
            c.tls.private_key.as_deref(),
            c.tls.trust_anchors.as_deref(),
        )?,
        server: ServerOptions {
            tls_addr: SocketAddr::new(c.tls.bind, c.tls.port),
            authority: c.tls.authority.clone().map(|a| a.to_ascii_lowercase()),
            require_sni: c.tls.require_sni,
            credentials,
            plain_addr,
            limits: Limits {
                max_body: l.max_body,
                handshake_timeout: Duration::from_secs(l.handshake_timeout_secs),
                header_timeout: Duration::from_secs(l.header_timeout_secs),
                body_timeout: Duration::from_secs(l.body_timeout_secs),
                idle_timeout: Duration::from_secs(l.idle_timeout_secs),
                max_connections: l.max_connections,
            },
        },
    })
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
    let loaded = load(&a.config)?;
    let store = SqliteStore::open(&loaded.data_dir)
        .map_err(|e| cfg_err(format!("data_dir {}: {e}", loaded.data_dir.display())))?;
    let mut cse = Cse::with_policy(
        loaded.engine,
        store,
        Box::new(m2msec_cse::engine::system_now),
        &loaded.cse_base,
    )
    .map_err(|e| cfg_err(e.detail))?;
    cse.set_limits(loaded.storage);
    // An MN-CSE: its registration machine and the forwarding deadline (issue 12).
    let registration = match &loaded.registrar {
        Some(r) => {
            cse.set_registrar_id(&r.cse_id);
            cse.set_forward_timeout(i64::try_from(r.timeout.as_secs()).unwrap_or(30));
            Some(m2msec_cse::registration::Machine::new(
                m2msec_cse::registration::Params {
                    cse_id: loaded.engine_id.clone(),
                    cb_rn: loaded.cb_rn.clone(),
                    poa: loaded.poa.clone(),
                    registrar: r.cse_id.clone(),
                    backoff_min_secs: 1,
                    backoff_max_secs: r.backoff_max_secs,
                },
            ))
        }
        None => None,
    };
    // Credentials administered with `m2msec cse credential` (keys sealed under data_dir/kek).
    let cred_store = m2msec_cse::credentials::CredentialStore::open(&loaded.data_dir)
        .map_err(|e| cfg_err(format!("data_dir {}: {e}", loaded.data_dir.display())))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(CliError::other)?;
    rt.block_on(async move {
        // One endpoint (one engine, one credential table) behind both bindings.
        let opts = loaded.server;
        let (endpoint, mut tls) = CseEndpoint::new(
            cse,
            &CseSecurity {
                authority: opts.authority.clone(),
                require_sni: opts.require_sni,
                credentials: opts.credentials.clone(),
                raw_keys: loaded.raw_keys.clone(),
            },
        );
        tls.handshake_timeout = opts.limits.handshake_timeout;
        if let Some(c) = loaded.certificates {
            c.apply(&mut tls);
        }
        // Serve the stored credentials and follow changes: added ones are served, revoked or
        // expired ones refused and their live sessions closed.
        endpoint
            .attach_credential_store(cred_store)
            .map_err(|e| cfg_err(format!("credential store: {e}")))?;
        let _watcher = endpoint.spawn_watcher(m2msec_bindings::service::WATCH_INTERVAL);
        let _sweep = endpoint.spawn_expiry_sweep(m2msec_bindings::service::EXPIRY_SWEEP_INTERVAL);
        if let Some(source) = loaded.mef {
            endpoint.set_remote_key_source(std::sync::Arc::new(source));
        }
        // Forwarding (issue 12): an MN-CSE sends what is not hosted here up to its registrar
        // and registers with it (retrying with backoff while it is down) in the background;
        // any CSE sends requests for its registree CSEs down to those it has a credential for.
        let mut up = None;
        if let (Some(r), Some(machine)) = (loaded.registrar, registration) {
            let mut cfg = m2msec_tls::ClientConfig::psk(r.psk_identity, r.key);
            cfg.handshake_timeout = opts.limits.handshake_timeout;
            let link = std::sync::Arc::new(
                m2msec_bindings::registrar::CseLink::new(r.addr, cfg)
                    .map_err(|e| cfg_err(format!("[registrar]: {e}")))?,
            );
            up = Some(link.clone());
            let ep = endpoint.clone();
            let timeout = r.timeout;
            let registrar_id = r.cse_id.to_string();
            tokio::spawn(async move {
                m2msec_bindings::registrar::run_registration(ep, link, machine, timeout).await;
                eprintln!("m2msec cse: registered with {registrar_id}");
            });
        }
        if up.is_some() || !loaded.registrees.is_empty() {
            let down = loaded
                .registrees
                .into_iter()
                .map(|mut l| {
                    l.tls.handshake_timeout = opts.limits.handshake_timeout;
                    l
                })
                .collect();
            endpoint.set_forwarder(std::sync::Arc::new(
                m2msec_bindings::registrar::LinkForwarder::new(
                    up,
                    down,
                    tokio::runtime::Handle::current(),
                ),
            ));
        }
        let server = Server::with_endpoint(
            Listeners {
                tls_addr: opts.tls_addr,
                plain_addr: opts.plain_addr,
                limits: opts.limits,
            },
            &tls,
            endpoint.clone(),
        )
        .await
        .map_err(cfg_err)?;
        let coap = match loaded.coap_addr {
            Some(addr) => {
                let dtls = m2msec_tls::DtlsOptions {
                    idle_timeout: opts.limits.idle_timeout,
                    max_sessions: opts.limits.max_connections.max(1),
                    max_half_open: loaded.coap_half_open.0,
                    max_half_open_per_source: loaded.coap_half_open.1,
                    ..m2msec_tls::DtlsOptions::default()
                };
                Some(
                    CoapServer::bind(addr, &tls, dtls, opts.limits, endpoint)
                        .await
                        .map_err(cfg_err)?,
                )
            }
            None => None,
        };
        let mut line = String::from("m2msec cse: listening on ");
        if let Some(t) = server.tls_addr() {
            line.push_str(&format!("https://{t} (TLS-PSK)"));
        }
        if let Some(p) = server.plain_addr() {
            line.push_str(&format!(" and http://{p} (plaintext, loopback only)"));
        }
        if let Some(c) = &coap {
            line.push_str(&format!(" and coaps://{} (DTLS-PSK)", c.local_addr()));
        }
        eprintln!("{line}");
        match coap {
            Some(c) => {
                tokio::select! {
                    _ = server.serve() => {}
                    _ = c.serve() => {}
                }
            }
            None => server.serve().await,
        }
        Err(CliError::other("the CSE service stopped"))
    })
}

fn raw_keys(c: &Config) -> Result<Vec<m2msec_bindings::RawKeyCredential>, CliError> {
    if !c.raw_key.is_empty() && c.tls.certificate.is_none() {
        return Err(cfg_err(
            "[[raw_key]] needs the CSE's own [tls] certificate and private_key (ECDHE-ECDSA suites)",
        ));
    }
    let mut out = Vec::new();
    for r in &c.raw_key {
        let pk_id = m2msec_tls::PkId::parse(&r.pk_id)
            .map_err(|e| cfg_err(format!("raw_key {:?}: {e}", r.pk_id)))?;
        if !r.pk_id.starts_with("ni:///sha-256;") {
            return Err(cfg_err(format!(
                "raw_key {:?}: use the full ni:///sha-256; identifier",
                r.pk_id
            )));
        }
        let entry = PskEntry {
            identity: r.pk_id.clone(),
            key_file: PathBuf::new(),
            ida: r.ida.clone(),
            registree: r.registree.clone(),
        };
        out.push(m2msec_bindings::RawKeyCredential {
            pk_id,
            bound: bound_identity(&entry)?,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod example_config {
    #[test]
    fn example_parses() {
        crate::util::assert_example_parses::<super::Config>("cse.toml");
    }
}
