//! `m2msec enrol`: the Enrolee side of the MEF enrolment (TS-0003 §8.3.2.1, seed 001): runs
//! the whole exchange over TLS-PSK with the pre-provisioned Kpm, keeps Ke/KeID, the IBC
//! credential and the target keys in the local keystore (sealed, files 0600), and prints a JSON
//! summary with identifiers and expiries, never key values.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use serde_json::json;

use m2msec_bindings::url::{Scheme, ServiceUrl};
use m2msec_core::ids::{EnroleeId, Fqdn, KpmId, TargetId};
use m2msec_core::kdf::SuidEncoding;
use m2msec_core::secret::Kpm;
use m2msec_mef::enrolee::{enrol, enrol_with, EnrolParams, Keystore, MefTransport};

use crate::error::CliError;
use crate::util::print_json;

/// `m2msec enrol`.
#[derive(Args)]
pub struct EnrolArgs {
    /// The MEF: `https://HOST[:PORT]` (HTTP over TLS) or `coaps://HOST[:PORT]` (CoAP over DTLS);
    /// the bootstrap handshake uses SNI = the KpmID's FQDN.
    #[arg(long, value_name = "URI")]
    mef: String,
    /// KpmID (`relKeyID@MEF-FQDN`), sent as psk_identity.
    #[arg(long, value_name = "ID", required_unless_present = "cert")]
    kpm_id: Option<String>,
    /// File holding Kpm in hex (mode 0600).
    #[arg(long, value_name = "FILE", required_unless_present = "cert")]
    kpm_file: Option<PathBuf>,
    /// Certificate-Based RSPF (TS-0003 §8.3.2.2): this device's certificate chain (PEM), instead
    /// of a Kpm.
    #[arg(long, value_name = "FILE", requires_all = ["key", "ca", "mef_fqdn"], conflicts_with_all = ["kpm_id", "kpm_file"])]
    cert: Option<PathBuf>,
    /// With --cert: its private key (PEM, mode 0600).
    #[arg(long, value_name = "FILE")]
    key: Option<PathBuf>,
    /// With --cert: the trust anchors (PEM) for the MEF's certificate.
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
    /// With --cert: the MEF's FQDN, which its certificate must carry.
    #[arg(long, value_name = "FQDN")]
    mef_fqdn: Option<String>,
    /// ID1: this Enrolee's AE-ID or CSE-ID.
    #[arg(long, value_name = "ID1")]
    id: EnroleeId,
    /// An Enrolment Target the MEF must provision a key for (repeatable).
    #[arg(long = "target", value_name = "ID")]
    targets: Vec<TargetId>,
    /// The keystore directory (created 0700; keystore.json and kek are 0600).
    #[arg(long, value_name = "DIR", default_value = "m2msec-keystore")]
    keystore: PathBuf,
    /// A TOML file whose `[secure_environment]` puts the keystore's KEK in a PKCS#11 token
    /// (TS-0003 §6.3.1) instead of the `kek` file.
    #[arg(long, value_name = "FILE")]
    secure_environment: Option<PathBuf>,
    /// adminFQDN of the MEF client registration.
    #[arg(long, value_name = "FQDN", default_value = "admin.invalid")]
    admin_fqdn: Fqdn,
    /// SUID encoding of the §10.3.7 derivation (BRIEF A7): ascii (default) or octet.
    #[arg(long, value_name = "ENC", default_value = "ascii")]
    suid_encoding: String,
}

/// Parses the `--mef` URL, `https://host[:port][/]` or `coaps://host[:port][/]`, with the one
/// URL parser of the bindings.
pub fn parse_mef_target(uri: &str) -> Result<(MefTransport, String, u16), CliError> {
    let u = ServiceUrl::parse(uri)
        .and_then(|u| u.require_scheme(&[Scheme::Https, Scheme::Coaps]))
        .and_then(ServiceUrl::require_no_path)
        .map_err(|e| CliError::arg("--mef", e))?;
    let transport = match u.scheme {
        Scheme::Coaps => MefTransport::Coaps,
        _ => MefTransport::Https,
    };
    Ok((transport, u.host, u.port))
}

/// Runs `m2msec enrol`.
pub fn run(a: EnrolArgs) -> Result<ExitCode, CliError> {
    let (transport, host, port) = parse_mef_target(&a.mef)?;
    // Certificate-Based RSPF: the MEF's FQDN names the exchange (KeID, ID2); no Kpm.
    let (kpm_id, kpm, cert_cfg) = match &a.cert {
        Some(cert) => {
            let fqdn = a.mef_fqdn.as_deref().unwrap_or_default();
            let kpm_id: KpmId = format!("cert@{fqdn}")
                .parse()
                .map_err(|e| CliError::arg("--mef-fqdn", e))?;
            let read = |arg: &str, p: &std::path::Path| {
                std::fs::read(p).map_err(|e| CliError::arg(arg, format!("{}: {e}", p.display())))
            };
            let key_pem = m2msec_keystore::read_secret_file(a.key.as_deref().unwrap_or(cert))
                .map_err(|e| CliError::arg("--key", e))?;
            let cred =
                m2msec_tls::CertCredential::from_pem(&read("--cert", cert)?, key_pem.as_bytes())
                    .map_err(|e| CliError::arg("--cert", e))?;
            let anchors =
                m2msec_tls::TrustAnchors::from_pem(&read("--ca", a.ca.as_deref().unwrap_or(cert))?)
                    .map_err(|e| CliError::arg("--ca", e))?;
            let cfg = m2msec_tls::ClientConfig::certificate(
                anchors,
                m2msec_tls::ExpectedName::Dns(fqdn.to_string()),
                Some(cred),
            );
            (
                kpm_id,
                Kpm::from_bytes(&[0; 16]).map_err(CliError::other)?,
                Some(cfg),
            )
        }
        None => {
            let kpm_id: KpmId = a
                .kpm_id
                .as_deref()
                .unwrap_or_default()
                .parse()
                .map_err(|e| CliError::arg("--kpm-id", e))?;
            let kpm_file = a.kpm_file.as_deref().unwrap_or(std::path::Path::new(""));
            let text = m2msec_keystore::read_secret_file(kpm_file)
                .map_err(|e| CliError::arg("--kpm-file", e))?;
            let raw = zeroize::Zeroizing::new(
                hex::decode(text.trim())
                    .map_err(|_| CliError::arg("--kpm-file", "not hexadecimal"))?,
            );
            let kpm = Kpm::from_bytes(&raw).map_err(|e| CliError::arg("--kpm-file", e))?;
            (kpm_id, kpm, None)
        }
    };
    let suid_encoding = match a.suid_encoding.as_str() {
        "ascii" => SuidEncoding::AsciiDecimal,
        "octet" => SuidEncoding::SingleOctet,
        _ => return Err(CliError::arg("--suid-encoding", "must be ascii or octet")),
    };
    let se = crate::util::keystore_environment(a.secure_environment.as_deref())?;
    let keystore =
        Keystore::open_in(&a.keystore, &se).map_err(|e| CliError::arg("--keystore", e))?;
    let params = EnrolParams {
        transport,
        host,
        port,
        kpm_id: kpm_id.clone(),
        kpm,
        id1: a.id.clone(),
        targets: a.targets.clone(),
        admin_fqdn: a.admin_fqdn.clone(),
        suid_encoding,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(CliError::other)?;
    let run = async {
        match cert_cfg {
            Some(cfg) => enrol_with(&params, cfg).await,
            None => enrol(&params).await,
        }
    };
    let out = match rt.block_on(run) {
        Ok(o) => o,
        Err(e) => {
            eprintln!(
                "m2msec: error: enrolment failed: {}",
                e.to_string().replace('\n', " ")
            );
            return Ok(ExitCode::from(1));
        }
    };
    keystore
        .save(&kpm_id.to_string(), &a.mef, &out)
        .map_err(|e| CliError::arg("--keystore", e))?;
    let s = &out.summary;
    print_json(&json!({
        "kpm_id": kpm_id.to_string(),
        "ke_id": s.ke_id,
        "enrolee_id": s.enrolee_id,
        "enrolment_expiry": s.enrolment_expiry.to_string(),
        "mef_client_reg_id": s.reg_id,
        "targets": s.targets.iter().map(|t| json!({
            "target_id": t.target_id, "suid": t.suid, "psk_identity": t.key_id,
        })).collect::<Vec<_>>(),
        "ibc_id": s.ibc_id,
        "ibc_expiry": s.ibc_expiry.map(|t| t.to_string()),
        "commands": s.commands.iter().map(|c| json!({
            "cmd_id": c.0, "cmd_class_id": c.1, "cmd_status_code": c.2,
        })).collect::<Vec<_>>(),
        "keystore": a.keystore.display().to_string(),
    }))?;
    Ok(ExitCode::SUCCESS)
}
