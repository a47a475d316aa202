//! The configuration files of the MEF (`m2msec mef serve`, `examples/mef.toml`) and of the
//! PKG service (`m2msec pkg serve`, `examples/pkg.toml`), and their validation: [`MefFile`] is
//! the file's shape, [`MefServiceConfig`] the validated configuration that
//! [`crate::service::start_mef`] runs; [`PkgFile`] likewise for
//! [`crate::service::start_pkg`]. Errors are one line naming the section or key at fault.
//!
//! Devices (KpmID → Kpm, Enrolee-ID, Enrolment Targets, Enrolment Expiry) live in the store and
//! are added with `m2msec mef device add|import`; MEF clients that fetch keys (the registrar CSEs
//! that are Enrolment Targets) are `[[target]]` entries with their own PSK (BRIEF A3).

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use m2msec_bindings::config::{
    loopback, read_psk_file, read_toml, CertificateAssociation, CertificateFiles, ConfigError, Link,
};
use m2msec_core::duration::XsDuration;
use m2msec_core::ids::{Fqdn, TargetId};
use m2msec_core::kdf::SuidEncoding;
use m2msec_tls::PskIdentity;

use crate::pkg_service::{PkgLink, RemotePkg};
use crate::{MefConfig, MefStore, TargetClient};

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
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MefFile {
    /// The MEF's FQDN: KeID = hex@FQDN, the SNI it answers, the FQDN in ID2.
    pub fqdn: String,
    /// Store directory (mef.sqlite3 and the KEK file `kek`).
    pub data_dir: PathBuf,
    /// `[tls]`: the HTTP/TLS listener and the certificate association.
    #[serde(default)]
    pub tls: TlsSection,
    /// `[enrolment]`: parameters of the enrolment exchange.
    #[serde(default)]
    pub enrolment: EnrolmentSection,
    /// `[[target]]`: the MEF clients that fetch keys (Enrolment Targets, BRIEF A3).
    #[serde(default)]
    pub target: Vec<TargetEntry>,
    /// `[coap]`: CoAP (TS-0008) over DTLS 1.2 PSK.
    #[serde(default)]
    pub coap: CoapSection,
    /// A PKG service instead of the in-process PKG.
    #[serde(default)]
    pub pkg: Option<PkgSection>,
    /// `[secure_environment]` (TS-0003 §6.3.1): the KEK file `data_dir/kek` (absent), or a
    /// PKCS#11 token.
    #[serde(default)]
    pub secure_environment: m2msec_keystore::SecureEnvironmentConfig,
}

/// `[coap]`: CoAP (TS-0008) over DTLS 1.2 PSK, default port 5685.
pub type CoapSection = m2msec_bindings::config::CoapSection<5685>;

/// `[tls]`: the HTTP/TLS listener; the certificate association of the Certificate-Based RSPF
/// (TS-0003 §8.3.2.2).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    /// Listener address.
    #[serde(default = "loopback")]
    pub bind: IpAddr,
    /// Listener port.
    #[serde(default = "default_port")]
    pub port: u16,
    /// The MEF's FQDN certificate chain (PEM, leaf first) for the Certificate-Based RSPF.
    #[serde(default)]
    pub certificate: Option<PathBuf>,
    /// Its private key (PEM, P-256, mode 0600).
    #[serde(default)]
    pub private_key: Option<PathBuf>,
    /// Trust anchors (PEM) for device certificates.
    #[serde(default)]
    pub trust_anchors: Option<PathBuf>,
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

/// `[enrolment]`: parameters of the enrolment exchange (TS-0003 §8.3.2.1).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrolmentSection {
    /// Offer IBC credentials (seed 001) in the exchange.
    #[serde(default = "default_true")]
    pub ibc: bool,
    /// How long an Enrolee may retry a failed exchange (xs:duration, e.g. `PT1H`).
    #[serde(default = "default_retry")]
    pub retry_duration: String,
    /// SUID encoding of the §10.3.7 derivation (BRIEF A7): `ascii` (default) or `octet`.
    #[serde(default)]
    pub suid_encoding: Option<String>,
    /// "10.3.7" (default) or "legacy" (§10.3.2/§10.3.3, BRIEF A9).
    #[serde(default)]
    pub derivation: Option<String>,
    /// Longest Key Registration lifetime accepted, seconds.
    #[serde(default = "default_reg_secs")]
    pub max_registration_secs: u64,
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

/// `[[target]]`: a MEF client that fetches keys, with its own PSK.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetEntry {
    /// psk_identity of the target client.
    pub identity: String,
    /// Its PSK in hex, mode 0600.
    pub key_file: PathBuf,
    /// Its absolute ID (e.g. `//sp.example/cse-in`).
    pub id: String,
}

fn cfg_err(msg: impl std::fmt::Display) -> ConfigError {
    ConfigError::new(msg)
}

/// A validated configuration.
#[derive(Debug)]
pub struct MefServiceConfig {
    /// Engine configuration.
    pub mef: MefConfig,
    /// Certificate-Based RSPF: the MEF's credential and the device trust anchors.
    pub certificates: Option<CertificateAssociation>,
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
    pub pkg: Option<PkgSection>,
    /// The opened secure environment of the store (`[secure_environment]`).
    pub secure_environment: m2msec_keystore::SecureEnvironment,
}

/// Reads and validates the configuration at `path`.
pub fn load(path: &Path) -> Result<MefServiceConfig, ConfigError> {
    read_toml::<MefFile>(path)?.validate()
}

impl MefFile {
    /// Validates the file: FQDN, enrolment parameters, target clients' key files, listeners.
    pub fn validate(self) -> Result<MefServiceConfig, ConfigError> {
        let c = self;
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
            let key = read_psk_file(&t.key_file, &format!("target {}", t.identity))?;
            let client_id = match t.id.parse::<TargetId>() {
                Ok(id) if id.is_m2m_id() => id,
                Ok(_) => {
                    return Err(cfg_err(format!(
                        "target {}: id must be an absolute CSE-ID or AE-ID (//SP/...)",
                        t.identity
                    )))
                }
                Err(e) => {
                    return Err(cfg_err(format!(
                        "target {}: id must be an absolute CSE-ID or AE-ID (//SP/...): {e}",
                        t.identity
                    )))
                }
            };
            targets.push(TargetClient {
                psk_identity: PskIdentity::new(&t.identity)
                    .map_err(|e| cfg_err(format!("target identity {:?}: {e}", t.identity)))?,
                key,
                client_id,
            });
        }
        Ok(MefServiceConfig {
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
            secure_environment: c
                .secure_environment
                .open()
                .map_err(|e| cfg_err(format!("[secure_environment]: {e}")))?,
            certificates: CertificateFiles {
                certificate: c.tls.certificate.clone(),
                private_key: c.tls.private_key.clone(),
                trust_anchors: c.tls.trust_anchors.clone(),
            }
            .load()?,
        })
    }
}

/// Opens the store of a validated configuration.
pub fn open_store(l: &MefServiceConfig) -> Result<MefStore, ConfigError> {
    MefStore::open_in(&l.data_dir, &l.secure_environment)
        .map_err(|e| cfg_err(format!("data_dir {}: {e}", l.data_dir.display())))
}

/// The `[pkg]` section of a MEF configuration: use a PKG service instead of the in-process one.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PkgSection {
    /// `https://HOST:PORT` of the PKG service.
    pub url: String,
    /// The PKG's FQDN (SNI).
    pub fqdn: String,
    /// The MEF's psk_identity at the PKG.
    pub identity: String,
    /// The MEF's PSK at the PKG, hex, mode 0600.
    pub key_file: PathBuf,
    /// Deadline per call, seconds.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
}

fn default_timeout() -> u64 {
    5
}

impl PkgSection {
    /// Connects to the PKG service (learning its KPAK).
    pub fn connect(&self) -> Result<RemotePkg, ConfigError> {
        let l = Link::resolve(
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

fn default_pkg_port() -> u16 {
    8445
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
/// The configuration file of `m2msec pkg serve` (`examples/pkg.toml`).
pub struct PkgFile {
    /// The service's FQDN (SNI).
    pub fqdn: String,
    /// Store directory.
    pub data_dir: PathBuf,
    /// Listener address.
    #[serde(default = "loopback")]
    pub bind: IpAddr,
    /// Listener port.
    #[serde(default = "default_pkg_port")]
    pub port: u16,
    /// `[[client]]`: the MEFs served.
    #[serde(default)]
    pub client: Vec<ClientEntry>,
    /// `[secure_environment]` (TS-0003 §6.3.1): where the KEK sealing the KSAK lives.
    #[serde(default)]
    pub secure_environment: m2msec_keystore::SecureEnvironmentConfig,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
/// `[[client]]`: a MEF the PKG serves, with its own PSK.
pub struct ClientEntry {
    /// psk_identity of the client.
    pub identity: String,
    /// Its PSK in hex, mode 0600.
    pub key_file: PathBuf,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example(name: &str) -> String {
        let path = format!("{}/../../examples/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// The examples document every key; unknown keys are refused, so they cannot drift.
    #[test]
    fn the_examples_parse() {
        toml::from_str::<MefFile>(&example("mef.toml")).unwrap();
        toml::from_str::<PkgFile>(&example("pkg.toml")).unwrap();
    }

    #[test]
    fn validation_names_the_key_at_fault() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("t.key");
        m2msec_keystore::write_secret_file(&key, &[b'2'; 64]).unwrap();
        let data = dir.path().join("data");
        let file = |enrolment: &str, target_id: &str| -> MefFile {
            let text = format!(
                "fqdn = \"mef.sp.example\"\ndata_dir = {data:?}\n[enrolment]\n{enrolment}\n\
                 [[target]]\nidentity = \"cse-in@mef.sp.example\"\nkey_file = {key:?}\n\
                 id = \"{target_id}\"\n"
            );
            toml::from_str(&text).unwrap_or_else(|e| panic!("{text}: {e}"))
        };
        let v = file("", "//sp.example/cse-in").validate().unwrap();
        assert_eq!(v.targets.len(), 1);
        assert!(!v.mef.legacy_derivation);
        assert!(
            file("derivation = \"legacy\"", "//sp.example/cse-in")
                .validate()
                .unwrap()
                .mef
                .legacy_derivation
        );
        for (enrolment, id, part) in [
            (
                "retry_duration = \"an hour\"",
                "//sp.example/cse-in",
                "retry_duration",
            ),
            (
                "suid_encoding = \"utf16\"",
                "//sp.example/cse-in",
                "suid_encoding",
            ),
            (
                "derivation = \"10.3.2\"",
                "//sp.example/cse-in",
                "derivation",
            ),
            (
                "max_registration_secs = 0",
                "//sp.example/cse-in",
                "lifetimes",
            ),
            ("", "/cse-in", "absolute"),
            ("", "//sp.example", "absolute"),
            ("", "//sp.example/cse in", "absolute"),
        ] {
            let e = file(enrolment, id).validate().unwrap_err().to_string();
            assert!(e.contains(part), "{enrolment} {id}: {e}");
        }
    }
}
