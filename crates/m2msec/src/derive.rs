//! `m2msec derive …`: the TS-0003 §10.3 key schedule from the command line.
//!
//! Inputs are hex (any case) and identifiers (NFKC-normalised before use); outputs are lowercase
//! hex, alone or in one JSON object per call. These commands exist for interoperability testing
//! and for scripts; keys given on a command line are visible to other local users, so production
//! services never take keys this way.

use crate::error::{CliError, CliResult};
use crate::util::{hex_arg, hex_exact, print_json};
use clap::{Args, Subcommand, ValueEnum};
use m2msec_core::export::{ExportedKeyingMaterial, EXPORT_LEN};
use m2msec_core::ids::Fqdn;
use m2msec_core::kdf::{self, E2eSalt, EsprimRandValue, GroupRand, KdfIdentifier, SuidEncoding};
use m2msec_core::secret::{Ke, Kpsa, PairwiseEsprimKey};
use m2msec_core::suid::Suid;
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum DeriveCmd {
    /// Ke, RelativeKeID and KeID from a 48-byte EXPORTER-oneM2M-Bootstrap export (TS-0003 §10.3.1, §10.3.4).
    Ke {
        /// The 48-byte export, hex.
        #[arg(long, value_name = "HEX")]
        export: String,
        /// The MEF's FQDN.
        #[arg(long, value_name = "FQDN")]
        mef_fqdn: String,
    },
    /// Km from Ke and the MAF-ID (TS-0003 §10.3.2).
    Km {
        /// Ke, 32 bytes hex.
        #[arg(long, value_name = "HEX")]
        ke: String,
        /// The MAF-ID (NFKC-normalised).
        #[arg(long, value_name = "ID", allow_hyphen_values = true)]
        maf_id: String,
    },
    /// Kpsa from Ke and Enrolee B's CSE-ID or AE-ID (TS-0003 §10.3.3).
    Kpsa {
        /// Ke, 32 bytes hex.
        #[arg(long, value_name = "HEX")]
        ke: String,
        /// Enrolee B's CSE-ID or AE-ID (NFKC-normalised).
        #[arg(long, value_name = "ID", allow_hyphen_values = true)]
        enrolee_id: String,
    },
    /// Usage-constrained key from Ke, a SUID and the Enrolment Target (TS-0003 §10.3.7).
    UsageKey(UsageKeyArgs),
    /// Ke2e_master and the four E2E keys from Kpsa and an optional Salt (TS-0003 §10.3.6).
    E2e {
        /// Kpsa (or Km), hex.
        #[arg(long, value_name = "HEX")]
        kpsa: String,
        /// The Salt, hex; default 32 zero bytes.
        #[arg(long, value_name = "HEX")]
        salt: Option<String>,
    },
    /// sessionESPrimKey from pairwiseESPrimKey and the two 16-byte esprimRandValues (TS-0003 §10.3.8.2).
    SessionEsprim {
        /// pairwiseESPrimKey, hex.
        #[arg(long, value_name = "HEX")]
        pairwise: String,
        /// The receiver's esprimRandValue, 16 bytes hex.
        #[arg(long, value_name = "HEX")]
        receiver_rand: String,
        /// The originator's esprimRandValue, 16 bytes hex.
        #[arg(long, value_name = "HEX")]
        originator_rand: String,
    },
    /// Ksx, a group member's key with the IN-CSE (seed 002).
    Ksx {
        /// Kpsaxi, hex.
        #[arg(long, value_name = "HEX")]
        kpsa: String,
        /// The member's absolute CSE-ID or AE-ID (NFKC-normalised).
        #[arg(long, value_name = "ID", allow_hyphen_values = true)]
        entity_id: String,
        /// The IN-CSE's Rand, 16 bytes hex.
        #[arg(long, value_name = "HEX")]
        rand: String,
    },
}

#[derive(Args)]
pub struct UsageKeyArgs {
    /// Ke, 32 bytes hex.
    #[arg(long, value_name = "HEX")]
    ke: String,
    /// The SUID (m2m:suid, decimal).
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    suid: String,
    /// The Enrolment Target ID (an FQDN, or an absolute CSE-ID/AE-ID; NFKC-normalised).
    #[arg(long, value_name = "ID", allow_hyphen_values = true)]
    target_id: String,
    /// How the SUID enters the HMAC (BRIEF A7): ASCII decimal digits (default) or one octet.
    #[arg(long, value_enum, default_value_t = SuidEncodingArg::Ascii)]
    suid_encoding: SuidEncodingArg,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum SuidEncodingArg {
    /// "22" (BRIEF A7, recommended).
    Ascii,
    /// 0x16.
    Octet,
}

fn kdf_id(arg: &str, v: &str) -> CliResult<KdfIdentifier> {
    KdfIdentifier::new(v).map_err(|e| CliError::arg(arg, e))
}

fn ke_arg(v: &str) -> CliResult<Ke> {
    let b = hex_exact("--ke", v, Ke::LEN)?;
    Ke::from_bytes(&b).map_err(|e| CliError::arg("--ke", e))
}

fn kpsa_arg(arg: &str, v: &str) -> CliResult<Kpsa> {
    Kpsa::from_bytes(&hex_arg(arg, v)?).map_err(|e| CliError::arg(arg, e))
}

fn print_key(bytes: &[u8]) -> CliResult<ExitCode> {
    println!("{}", hex::encode(bytes));
    Ok(ExitCode::SUCCESS)
}

pub fn run(cmd: DeriveCmd) -> CliResult<ExitCode> {
    match cmd {
        DeriveCmd::Ke { export, mef_fqdn } => {
            let raw = hex_exact("--export", &export, EXPORT_LEN)?;
            let ekm = ExportedKeyingMaterial::from_bytes(&raw)
                .map_err(|e| CliError::arg("--export", e))?;
            let fqdn: Fqdn = mef_fqdn
                .parse()
                .map_err(|e| CliError::arg("--mef-fqdn", e))?;
            let ek = kdf::enrolment_key(&ekm, &fqdn);
            #[derive(serde::Serialize)]
            struct Out {
                ke: String,
                relative_ke_id: String,
                ke_id: String,
            }
            print_json(&Out {
                ke: hex::encode(ek.ke.expose_secret()),
                relative_ke_id: ek.relative_ke_id.to_hex(),
                ke_id: ek.ke_id.to_string(),
            })?;
            Ok(ExitCode::SUCCESS)
        }
        DeriveCmd::Km { ke, maf_id } => {
            let (ke, id) = (ke_arg(&ke)?, kdf_id("--maf-id", &maf_id)?);
            print_key(kdf::km(&ke, &id).expose_secret())
        }
        DeriveCmd::Kpsa { ke, enrolee_id } => {
            let (ke, id) = (ke_arg(&ke)?, kdf_id("--enrolee-id", &enrolee_id)?);
            print_key(kdf::kpsa(&ke, &id).expose_secret())
        }
        DeriveCmd::UsageKey(a) => {
            let ke = ke_arg(&a.ke)?;
            let suid: Suid = a
                .suid
                .trim()
                .parse()
                .map_err(|e| CliError::arg("--suid", e))?;
            let target = kdf_id("--target-id", &a.target_id)?;
            let enc = match a.suid_encoding {
                SuidEncodingArg::Ascii => SuidEncoding::AsciiDecimal,
                SuidEncodingArg::Octet => SuidEncoding::SingleOctet,
            };
            print_key(kdf::usage_constrained_key(&ke, suid, &target, enc).expose_secret())
        }
        DeriveCmd::E2e { kpsa, salt } => {
            let kpsa = kpsa_arg("--kpsa", &kpsa)?;
            let salt = match salt {
                Some(s) => Some(
                    E2eSalt::new(&hex_arg("--salt", &s)?)
                        .map_err(|e| CliError::arg("--salt", e))?,
                ),
                None => None,
            };
            let master = kdf::ke2e_master(&kpsa, salt.as_ref());
            let k = kdf::e2e_keys(&master);
            #[derive(serde::Serialize)]
            struct Out {
                master: String,
                msg_auth: String,
                msg_conf: String,
                att_auth: String,
                att_conf: String,
            }
            print_json(&Out {
                master: hex::encode(master.expose_secret()),
                msg_auth: hex::encode(k.msg_auth.expose_secret()),
                msg_conf: hex::encode(k.msg_conf.expose_secret()),
                att_auth: hex::encode(k.att_auth.expose_secret()),
                att_conf: hex::encode(k.att_conf.expose_secret()),
            })?;
            Ok(ExitCode::SUCCESS)
        }
        DeriveCmd::SessionEsprim {
            pairwise,
            receiver_rand,
            originator_rand,
        } => {
            let pw = PairwiseEsprimKey::from_bytes(&hex_arg("--pairwise", &pairwise)?)
                .map_err(|e| CliError::arg("--pairwise", e))?;
            let r = EsprimRandValue::from_bytes(&hex_exact("--receiver-rand", &receiver_rand, 16)?)
                .map_err(|e| CliError::arg("--receiver-rand", e))?;
            let o =
                EsprimRandValue::from_bytes(&hex_exact("--originator-rand", &originator_rand, 16)?)
                    .map_err(|e| CliError::arg("--originator-rand", e))?;
            print_key(kdf::session_esprim_key(&pw, &r, &o).expose_secret())
        }
        DeriveCmd::Ksx {
            kpsa,
            entity_id,
            rand,
        } => {
            let kpsa = kpsa_arg("--kpsa", &kpsa)?;
            let id = kdf_id("--entity-id", &entity_id)?;
            let rand = GroupRand::from_bytes(&hex_exact("--rand", &rand, 16)?)
                .map_err(|e| CliError::arg("--rand", e))?;
            print_key(kdf::ksx(&kpsa, &id, &rand).expose_secret())
        }
    }
}
