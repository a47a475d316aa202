//! The CSE's configuration file (`m2msec cse serve --config FILE`; `examples/cse.toml`
//! documents every key) and its validation: [`CseFile`] is the file's shape, [`CseServiceConfig`] the
//! validated configuration that [`crate::start`] runs. Errors are one line naming the section or
//! key at fault ([`ConfigError`]).
//!
//! Relative paths are relative to the working directory. PSK key files hold the key in hex and
//! must not be readable by group or others (mode 0600). A plaintext HTTP listener is opened only
//! when `[http_plain] enabled = true`, and only on a loopback address.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use m2msec_bindings::config::{
    loopback, read_psk_file, read_toml, CertificateAssociation, CertificateFiles, ConfigError, Link,
};
use m2msec_bindings::Limits;
use m2msec_core::ids::{AeId, CseId, KpsaId, SpId};
use m2msec_cse::{BoundIdentity, CseConfig, CseType};
use m2msec_tls::{Psk, PskIdentity};

use crate::mef_source::{FetchLimits, MefKeySource, MefLink};
use crate::{PskCredential, ServerOptions};

/// The configuration file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CseFile {
    /// This CSE's CSE-ID (`/cse-in` or `cse-in`).
    pub cse_id: String,
    /// M2M-SP-ID.
    pub sp_id: String,
    /// Resource name of `<CSEBase>`.
    #[serde(default = "default_cb")]
    pub cse_base_name: String,
    /// `IN` or `MN`.
    #[serde(default = "default_cse_type")]
    pub cse_type: String,
    /// pointOfAccess of `<CSEBase>`.
    #[serde(default)]
    pub poa: Vec<String>,
    /// SQLite directory.
    pub data_dir: PathBuf,
    #[serde(default)]
    pub tls: TlsSection,
    #[serde(default)]
    pub limits: LimitsSection,
    #[serde(default)]
    pub storage: StorageSection,
    /// `[cse_base]`: the `<CSEBase>` policy and the administrator.
    #[serde(default)]
    pub cse_base: CseBaseSection,
    #[serde(default)]
    pub psk: Vec<PskEntry>,
    #[serde(default)]
    pub http_plain: PlainSection,
    #[serde(default)]
    pub coap: CoapSection,
    /// The CSE as an Enrolment Target of a MEF (keys for KeIDs fetched from it).
    #[serde(default)]
    pub mef: Option<MefSection>,
    /// Client raw public keys (RFC 7250).
    #[serde(default)]
    pub raw_key: Vec<RawKeyEntry>,
    /// `[secure_environment]` (TS-0003 §6.3.1): the KEK of the credential store in the file
    /// `data_dir/kek` (absent), or in a PKCS#11 token.
    #[serde(default)]
    pub secure_environment: m2msec_keystore::SecureEnvironmentConfig,
    /// `[registrar]`: an MN-CSE's registrar CSE (issue 12).
    #[serde(default)]
    pub registrar: Option<RegistrarSection>,
    /// `[[registree]]`: how this CSE reaches a registree CSE to forward requests down to it.
    #[serde(default)]
    pub registree: Vec<RegistreeSection>,
}

/// `[[raw_key]]`: a client raw public key (TS-0003 §8.2.2.2, RFC 7250), bound to Credential-ID
/// `30-<pk_id>` and optionally to a configured IdA.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKeyEntry {
    /// RFC 6920 identifier of the client's SubjectPublicKeyInfo, `ni:///sha-256;<base64url>`.
    pub pk_id: String,
    #[serde(default)]
    pub ida: Option<String>,
    #[serde(default)]
    pub registree: Option<String>,
}

fn default_cb() -> String {
    "cb".into()
}
fn default_cse_type() -> String {
    "IN".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    #[serde(default = "loopback")]
    pub bind: IpAddr,
    #[serde(default = "default_tls_port")]
    pub port: u16,
    #[serde(default)]
    pub authority: Option<String>,
    #[serde(default)]
    pub require_sni: bool,
    /// Certificate association (TS-0003 §8.2.2.2): this CSE's chain (PEM), its P-256 key
    /// (PEM, mode 0600) and the anchors client certificates must chain to.
    #[serde(default)]
    pub certificate: Option<PathBuf>,
    #[serde(default)]
    pub private_key: Option<PathBuf>,
    #[serde(default)]
    pub trust_anchors: Option<PathBuf>,
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSection {
    #[serde(default = "d_max_body")]
    pub max_body: usize,
    #[serde(default = "d_10")]
    pub handshake_timeout_secs: u64,
    #[serde(default = "d_10")]
    pub header_timeout_secs: u64,
    #[serde(default = "d_10")]
    pub body_timeout_secs: u64,
    #[serde(default = "d_60")]
    pub idle_timeout_secs: u64,
    #[serde(default = "d_conns")]
    pub max_connections: usize,
}

/// `[cse_base]`: who may do what on `<CSEBase>` ([`m2msec_cse::CseBasePolicy`]).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CseBaseSection {
    #[serde(default = "d_true")]
    pub registered_aes_retrieve: bool,
    #[serde(default)]
    pub admin: Option<String>,
    #[serde(default)]
    pub admin_plaintext: bool,
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
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageSection {
    pub container_default_mni: u64,
    pub container_default_mbs: u64,
    pub registree_max_resources: u64,
    pub registree_max_bytes: u64,
    pub max_expiration_secs: u64,
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PskEntry {
    /// KpsaID, sent by clients as psk_identity.
    pub identity: String,
    /// File with the key in hex, mode 0600.
    pub key_file: PathBuf,
    /// Configured IdA (optional).
    #[serde(default)]
    pub ida: Option<String>,
    /// What `ida` names: `ae` (default) or `cse`.
    #[serde(default)]
    pub registree: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlainSection {
    #[serde(default)]
    pub enabled: bool,
    #[serde(default = "loopback")]
    pub bind: IpAddr,
    #[serde(default)]
    pub port: u16,
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

/// `[coap]`: CoAP (TS-0008) over DTLS 1.2 PSK, default port 5684.
pub type CoapSection = m2msec_bindings::config::CoapSection<5684>;

fn cfg_err(msg: impl std::fmt::Display) -> ConfigError {
    ConfigError::new(msg)
}

fn bound_identity(e: &PskEntry) -> Result<Option<BoundIdentity>, ConfigError> {
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

/// `[[registree]]`: our client credential at a registree CSE (it binds the PSK to our CSE-ID)
/// and, optionally, its address (default: the first `https://` of the `pointOfAccess` it
/// registered with).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistreeSection {
    pub cse_id: String,
    pub psk_identity: String,
    pub key_file: PathBuf,
    #[serde(default)]
    pub address: Option<String>,
    #[serde(default)]
    pub sni: Option<String>,
}

/// `HOST:PORT` → (host, port), through the bindings' one URL parser (IPv6 in brackets).
fn host_port(what: &str, a: &str) -> Result<(String, u16), ConfigError> {
    m2msec_bindings::url::ServiceUrl::parse_authority(a)
        .map_err(|e| cfg_err(format!("{what} address {a:?}: {}", e.reason())))
}

fn check_sni(what: &str, sni: &Option<String>) -> Result<(), ConfigError> {
    match sni {
        Some(s) if s.is_empty() || s.parse::<IpAddr>().is_ok() => {
            Err(cfg_err(format!("{what} sni must be a host name")))
        }
        _ => Ok(()),
    }
}

fn registrees(
    c: &CseFile,
    own: &CseId,
) -> Result<Vec<crate::registrar::RegistreeLinkConfig>, ConfigError> {
    let mut out: Vec<crate::registrar::RegistreeLinkConfig> = Vec::new();
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
                Some(crate::registrar::CseAddress {
                    host,
                    port,
                    sni: r.sni.clone(),
                })
            }
            None => None,
        };
        let identity = PskIdentity::new(&r.psk_identity)
            .map_err(|e| cfg_err(format!("{what}: psk_identity: {e}")))?;
        out.push(crate::registrar::RegistreeLinkConfig {
            cse_stem: stem,
            addr,
            tls: m2msec_tls::ClientConfig::psk(identity, read_psk_file(&r.key_file, &what)?),
        });
    }
    Ok(out)
}

/// `[registrar]`: where an MN-CSE registers (TS-0001 §10.2.2) and forwards what it does not host
/// (TS-0004 §7.3.2.6), over HTTP in a TLS-PSK association the registrar binds to this CSE's
/// CSE-ID (its `[[psk]]` entry for us has `ida` = our CSE-ID, `registree = "cse"`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrarSection {
    /// The registrar's CSE-ID.
    pub cse_id: String,
    /// `HOST:PORT` of its TLS listener.
    pub address: String,
    /// SNI to send (default: the host, when it is a name).
    #[serde(default)]
    pub sni: Option<String>,
    /// Our psk_identity at the registrar.
    pub psk_identity: String,
    /// Hex key file (mode 0600).
    pub key_file: PathBuf,
    /// Deadline of each request to the registrar, and of each forward (seconds).
    #[serde(default = "d_30")]
    pub request_timeout_secs: u64,
    /// Longest wait between registration attempts while the registrar is down (seconds).
    #[serde(default = "d_300")]
    pub backoff_max_secs: u64,
    /// Seconds between checks that the registrar still holds our `<remoteCSE>` (0: none).
    #[serde(default = "d_60")]
    pub check_interval_secs: u64,
}

fn d_30() -> u64 {
    30
}
fn d_300() -> u64 {
    300
}

/// The validated `[registrar]`.
#[derive(Debug)]
pub struct RegistrarConfig {
    pub cse_id: CseId,
    pub addr: crate::registrar::CseAddress,
    pub psk_identity: PskIdentity,
    pub key: Psk,
    pub timeout: Duration,
    pub backoff_max_secs: u64,
    pub check_interval_secs: u64,
}

fn registrar(
    c: &CseFile,
    cse_type: CseType,
    own: &CseId,
) -> Result<Option<RegistrarConfig>, ConfigError> {
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
    Ok(Some(RegistrarConfig {
        cse_id,
        addr: crate::registrar::CseAddress {
            host,
            port,
            sni: r.sni.clone(),
        },
        psk_identity: PskIdentity::new(&r.psk_identity)
            .map_err(|e| cfg_err(format!("[registrar] psk_identity: {e}")))?,
        key: read_psk_file(&r.key_file, "[registrar]")?,
        timeout: Duration::from_secs(r.request_timeout_secs),
        backoff_max_secs: r.backoff_max_secs,
        check_interval_secs: r.check_interval_secs,
    }))
}

/// The validated configuration.
#[derive(Debug)]
pub struct CseServiceConfig {
    pub engine: CseConfig,
    pub cse_base: m2msec_cse::CseBasePolicy,
    pub storage: m2msec_cse::Limits,
    pub data_dir: PathBuf,
    pub server: ServerOptions,
    /// The CoAP/DTLS listener address, if `[coap]` is enabled.
    pub coap_addr: Option<SocketAddr>,
    /// `[coap]` bounds on DTLS handshakes in progress: (all, per source).
    pub coap_half_open: (usize, usize),
    /// Certificate association (`[tls] certificate`, `private_key`, `trust_anchors`).
    pub certificates: Option<CertificateAssociation>,
    /// Keys for KeIDs of this MEF are fetched from it (`[mef]`).
    pub mef: Option<crate::mef_source::MefKeySource>,
    /// Client raw public keys (`[[raw_key]]`).
    pub raw_keys: Vec<crate::RawKeyCredential>,
    /// `[secure_environment]`, validated (opened by [`crate::start`]).
    pub secure_environment: m2msec_keystore::SecureEnvironmentConfig,
    /// An MN-CSE's registrar (`[registrar]`, issue 12).
    pub registrar: Option<RegistrarConfig>,
    /// Links down to registree CSEs (`[[registree]]`).
    pub registrees: Vec<crate::registrar::RegistreeLinkConfig>,
}

/// Reads and validates the configuration file at `path`.
pub fn load(path: &Path) -> Result<CseServiceConfig, ConfigError> {
    CseFile::read(path)?.validate()
}

impl CseFile {
    /// Reads the TOML file at `path` (no validation beyond its shape).
    pub fn read(path: &Path) -> Result<CseFile, ConfigError> {
        read_toml(path)
    }

    /// Validates the file: identifiers, key files, listener addresses, limits.
    pub fn validate(self) -> Result<CseServiceConfig, ConfigError> {
        let c = self;

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
                key: read_psk_file(&e.key_file, &format!("psk {}", e.identity))?,
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
        let registrees = registrees(&c, &cse_id)?;
        Ok(CseServiceConfig {
            registrar,
            registrees,
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
            secure_environment: {
                c.secure_environment
                    .validate()
                    .map_err(|e| ConfigError::new(e.to_string()))?;
                c.secure_environment.clone()
            },
            certificates: CertificateFiles {
                certificate: c.tls.certificate.clone(),
                private_key: c.tls.private_key.clone(),
                trust_anchors: c.tls.trust_anchors.clone(),
            }
            .load()?,
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
}

fn raw_keys(c: &CseFile) -> Result<Vec<crate::RawKeyCredential>, ConfigError> {
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
        out.push(crate::RawKeyCredential {
            pk_id,
            bound: bound_identity(&entry)?,
        });
    }
    Ok(out)
}

fn default_suid() -> u8 {
    m2msec_mef::endpoint::TARGET_SUID
}
fn default_timeout() -> u64 {
    5
}
fn default_poll() -> u64 {
    crate::mef_source::DEFAULT_POLL_INTERVAL.as_secs()
}
fn default_max_fetches() -> usize {
    FetchLimits::default().max_in_flight
}
fn default_unseen_rate() -> u32 {
    FetchLimits::default().unseen_per_sec as u32
}

/// `[mef]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MefSection {
    /// The MEF's address, `https://HOST:PORT`.
    pub url: String,
    /// The MEF's FQDN (SNI; KeIDs `hex@<fqdn>` are fetched from it).
    pub fqdn: String,
    /// This CSE's psk_identity at the MEF.
    pub identity: String,
    /// File with this CSE's PSK at the MEF, hex, mode 0600.
    pub key_file: PathBuf,
    /// This CSE's absolute CSE-ID as the MEF knows it (e.g. `//sp.example/cse-in`).
    pub cse_id: String,
    /// SUID of the keys requested (default 22).
    #[serde(default = "default_suid")]
    pub suid: u8,
    /// Deadline of one retrieval, seconds.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// Interval of the change-feed poll, seconds (1..=300): the bound on how long a revocation
    /// at the MEF takes to reach this CSE.
    #[serde(default = "default_poll")]
    pub revocation_poll_secs: u64,
    /// Most requests to the MEF in flight at once (1..=256); half of them at most for KeIDs
    /// this CSE has never seen. Beyond, a handshake is refused at once.
    #[serde(default = "default_max_fetches")]
    pub max_concurrent_fetches: usize,
    /// Lookups of never-seen KeIDs that the MEF refuses, per second (1..=10000; bursts of
    /// twice as many): the rest are refused without asking the MEF.
    #[serde(default = "default_unseen_rate")]
    pub unseen_lookups_per_sec: u32,
}

fn err(msg: impl std::fmt::Display) -> ConfigError {
    ConfigError::new(format!("[mef] {msg}"))
}

impl MefSection {
    /// The key source this section configures.
    pub fn key_source(&self) -> Result<MefKeySource, ConfigError> {
        let l = Link::resolve(
            "[mef]",
            &self.url,
            &self.fqdn,
            &self.identity,
            &self.key_file,
            self.timeout_secs,
        )?;
        let cse_id = match self.cse_id.parse::<CseId>() {
            Ok(id @ CseId::Absolute { .. }) => id,
            Ok(_) => return Err(err("cse_id must be absolute (//SP-ID/CSE-ID)")),
            Err(e) => {
                return Err(err(format!(
                    "cse_id must be absolute (//SP-ID/CSE-ID): {e}"
                )))
            }
        };
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
            cse_id,
            suid: self.suid,
            timeout: l.timeout,
            poll_interval: std::time::Duration::from_secs(self.revocation_poll_secs),
            limits,
        })
        .map_err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> String {
        let path = format!("{}/../../examples/cse.toml", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// The example documents every key; unknown keys are refused, so it cannot drift.
    #[test]
    fn the_example_parses() {
        toml::from_str::<CseFile>(&example()).unwrap();
    }

    /// A minimal file with real key files validates; each rule refuses its own mistake with a
    /// message that names the key.
    #[test]
    fn validation_names_the_key_at_fault() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("a.key");
        m2msec_keystore::write_secret_file(&key, &[b'1'; 64]).unwrap();
        let data = dir.path().join("data");
        // `top` goes before the first table, `tables` after the `[[psk]]` entry.
        let file = |top: &str, psk: &str, tables: &str| -> CseFile {
            let text = format!(
                "cse_id = \"/cse-in\"\nsp_id = \"sp.example\"\ndata_dir = {data:?}\n{top}\n\
                 [[psk]]\nidentity = \"a@mef.sp.example\"\nkey_file = {key:?}\n{psk}\n{tables}\n"
            );
            toml::from_str(&text).unwrap_or_else(|e| panic!("{text}: {e}"))
        };
        let v = file("", "", "").validate().unwrap();
        assert_eq!(v.server.credentials.len(), 1);
        assert_eq!(v.server.plain_addr, None);
        assert_eq!(v.engine.cse_type, CseType::In);
        for (top, psk, tables, part) in [
            ("sp_id = \"bad sp\"", "", "", "sp_id"),
            ("cse_id = \"\"", "", "", "cse_id"),
            ("cse_type = \"ASN\"", "", "", "cse_type"),
            ("", "ida = \"Cx\"\nregistree = \"gateway\"", "", "registree"),
            ("", "registree = \"ae\"", "", "registree without ida"),
            ("", "ida = \"not an id!\"", "", "ida"),
            (
                "",
                "",
                &format!(
                    "[mef]\nurl = \"https://127.0.0.1:1\"\nfqdn = \"mef.sp.example\"\n\
                     identity = \"c@mef.sp.example\"\nkey_file = {key:?}\ncse_id = \"//sp.example\""
                ),
                "[mef] cse_id",
            ),
            (
                "",
                "",
                &format!(
                    "[mef]\nurl = \"https://127.0.0.1:1\"\nfqdn = \"mef.sp.example\"\n\
                     identity = \"c@mef.sp.example\"\nkey_file = {key:?}\ncse_id = \"/cse-in\""
                ),
                "[mef] cse_id",
            ),
            (
                "",
                "",
                &format!("[[psk]]\nidentity = \"a@mef.sp.example\"\nkey_file = {key:?}"),
                "given twice",
            ),
            (
                "",
                "",
                "[http_plain]\nenabled = true\nbind = \"10.0.0.1\"",
                "[http_plain] bind",
            ),
            ("", "", "[limits]\nmax_body = 0", "[limits] max_body"),
            (
                "",
                "",
                "[limits]\nidle_timeout_secs = 0",
                "idle_timeout_secs",
            ),
            (
                "",
                "",
                "[cse_base]\nadmin_plaintext = true",
                "admin_plaintext",
            ),
            (
                "",
                "",
                "[tls]\nauthority = \"127.0.0.1\"",
                "[tls] authority",
            ),
            ("", "", "[tls]\ncertificate = \"c.pem\"", "go together"),
            (
                "",
                "",
                "[[raw_key]]\npk_id = \"ni:///sha-256;AAAA\"",
                "[[raw_key]] needs",
            ),
            (
                "",
                "",
                "[storage]\nmax_expiration_secs = 99999999999",
                "max_expiration_secs",
            ),
        ] {
            // Only `cse_id`/`sp_id` may be given twice in this helper: replace, not repeat.
            let f = if top.starts_with("sp_id") || top.starts_with("cse_id") {
                let text =
                    format!("cse_id = \"/cse-in\"\nsp_id = \"sp.example\"\ndata_dir = {data:?}\n");
                let key_name = top.split(' ').next().unwrap_or_default();
                let text: String = text
                    .lines()
                    .map(|l| if l.starts_with(key_name) { top } else { l })
                    .collect::<Vec<_>>()
                    .join("\n");
                toml::from_str::<CseFile>(&text).unwrap()
            } else {
                file(top, psk, tables)
            };
            let e = f.validate().unwrap_err().to_string();
            assert!(e.contains(part), "{top}|{psk}|{tables}: {e}");
        }
        // A key file others may read is refused, naming the entry.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
            let e = file("", "", "").validate().unwrap_err().to_string();
            assert!(e.contains("psk a@mef.sp.example"), "{e}");
        }
    }

    /// `[registrar]` (an MN-CSE's, required there, refused on an IN-CSE) and `[[registree]]`
    /// (issue 12): valid files give the links; each mistake is refused naming its section.
    #[test]
    fn registrar_and_registree_sections() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("mn.key");
        m2msec_keystore::write_secret_file(&key, &[b'2'; 64]).unwrap();
        let data = dir.path().join("data");
        let file = |cse_type: &str, cse_id: &str, tables: &str| -> CseFile {
            let text = format!(
                "cse_id = \"{cse_id}\"\nsp_id = \"sp.example\"\ncse_type = \"{cse_type}\"\n\
                 data_dir = {data:?}\n{tables}\n"
            );
            toml::from_str(&text).unwrap_or_else(|e| panic!("{text}: {e}"))
        };
        let reg = |address: &str, id: &str| {
            format!(
                "[registrar]\ncse_id = \"{id}\"\naddress = \"{address}\"\n\
                 psk_identity = \"mn@mef.sp.example\"\nkey_file = {key:?}\nrequest_timeout_secs = 7\n"
            )
        };
        let down = |id: &str, address: Option<&str>| {
            let a = address
                .map(|a| format!("address = \"{a}\"\n"))
                .unwrap_or_default();
            format!(
                "[[registree]]\ncse_id = \"{id}\"\npsk_identity = \"in@mef.sp.example\"\n\
                 key_file = {key:?}\n{a}"
            )
        };
        let v = file("MN", "/cse-mn", &reg("127.0.0.1:8443", "/cse-in"))
            .validate()
            .unwrap();
        let r = v.registrar.unwrap();
        assert_eq!(r.cse_id.stem(), "cse-in");
        assert_eq!((r.addr.host.as_str(), r.addr.port), ("127.0.0.1", 8443));
        assert_eq!(r.timeout, Duration::from_secs(7));
        assert_eq!(r.backoff_max_secs, 300);
        let v = file(
            "IN",
            "/cse-in",
            &(down("/cse-mn", None) + &down("/cse-mn2", Some("[::1]:9443"))),
        )
        .validate()
        .unwrap();
        assert!(v.registrar.is_none());
        assert_eq!(v.registrees.len(), 2);
        assert_eq!(v.registrees[1].addr.as_ref().unwrap().host, "::1");
        for (ty, id, tables, part) in [
            ("MN", "/cse-mn", String::new(), "needs a [registrar]"),
            (
                "IN",
                "/cse-in",
                reg("127.0.0.1:8443", "/cse-x"),
                "for an MN-CSE",
            ),
            ("MN", "/cse-mn", reg("127.0.0.1", "/cse-in"), "HOST:PORT"),
            ("MN", "/cse-mn", reg("127.0.0.1:0", "/cse-in"), "bad port"),
            (
                "MN",
                "/cse-mn",
                reg("127.0.0.1:8443/x", "/cse-in"),
                "HOST:PORT",
            ),
            ("MN", "/cse-mn", reg("h:99999", "/cse-in"), "bad port"),
            ("MN", "/cse-mn", reg("127.0.0.1:1", "/cse-mn"), "own CSE-ID"),
            (
                "MN",
                "/cse-mn",
                reg("127.0.0.1:1", "bad id!"),
                "[registrar] cse_id",
            ),
            (
                "IN",
                "/cse-in",
                down("/cse-mn", None) + &down("/cse-mn", None),
                "repeated",
            ),
            ("IN", "/cse-in", down("/cse-in", None), "our own"),
            (
                "IN",
                "/cse-in",
                down("/cse-mn", Some("nohost")),
                "HOST:PORT",
            ),
        ] {
            let e = file(ty, id, &tables).validate().unwrap_err().to_string();
            assert!(e.contains(part), "{ty} {id} {tables}: {e}");
        }
    }
}
