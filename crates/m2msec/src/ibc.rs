//! `m2msec ibc …`: ECCSI (RFC 6507) identity-based credentials from the command line.
//!
//! The KMS directory (mode 0700) holds the KMS Secret Authentication Key (KSAK) sealed in
//! `kms.key` (mode 0600) under the key-encryption key `kek` beside it (mode 0600), as the MEF
//! seals its own KSAK ([`m2msec_keystore::Sealer`], AES-256-GCM with a fresh nonce, AAD
//! [`KSAK_AAD`]), and the public KPAK in `kpak.hex`. The KSAK is never printed. A `kms.key`
//! written before sealing (its KSAK in clear in `"ksak"`) is still read by `ibc extract`, and
//! left as it is: run `ibc setup` into a new directory to get a sealed one. PKCS#11 storage
//! arrives with the secure-environment layer (seed 000, TS-0003 §6.3).

use crate::error::{CliError, CliResult};
use crate::util::{hex_arg, hex_exact, print_json, read_file};
use clap::{Args, Subcommand};
use m2msec_core::eccsi::{self, Kms, Kpak, Ksak, Pvt, Signature, SigningKey, Ssk};
use rand_core::OsRng;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use zeroize::{Zeroize, Zeroizing};

/// File name of the KMS secret inside the KMS directory.
pub const KMS_SECRET_FILE: &str = "kms.key";
/// File name of the public KPAK inside the KMS directory.
pub const KPAK_FILE: &str = "kpak.hex";
/// File name of the key-encryption key inside the KMS directory (the MEF's name for its own).
pub const KEK_FILE: &str = "kek";
/// Associated data of the sealed KSAK.
pub const KSAK_AAD: &[u8] = b"m2msec-ibc/kms.key/ksak";
/// Longest identity accepted (bytes).
const MAX_ID_LEN: usize = 4096;
/// Longest message file accepted for signing/verification from the CLI.
const MAX_MESSAGE_LEN: u64 = 64 * 1024 * 1024;

#[derive(Subcommand)]
pub enum IbcCmd {
    /// Create a KMS (KSAK/KPAK, RFC 6507 §4.2) in a new directory; prints {"kpak":…}.
    Setup {
        /// Directory to create (mode 0700); it must not exist or be empty.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Extract a user's SSK and PVT for an identity (RFC 6507 §5.1.1).
    Extract(ExtractArgs),
    /// Sign a message with a credential printed by `extract` (RFC 6507 §5.2.1); prints r‖s‖PVT hex.
    Sign {
        /// JSON credential {"id_hex","ssk","pvt","kpak"} as printed by `ibc extract`.
        #[arg(long, value_name = "FILE")]
        credential: PathBuf,
        /// The message to sign.
        #[arg(long, value_name = "FILE")]
        message_file: PathBuf,
    },
    /// Verify a signature (RFC 6507 §5.2.2): prints `valid` (exit 0) or `invalid` (exit 1).
    Verify {
        /// The KMS Public Authentication Key, 04‖x‖y hex.
        #[arg(long, value_name = "HEX")]
        kpak: String,
        /// The signer's identity, hex.
        #[arg(long, value_name = "HEX")]
        id_hex: String,
        /// The signed message.
        #[arg(long, value_name = "FILE")]
        message_file: PathBuf,
        /// The signature r‖s‖PVT (129 bytes), hex.
        #[arg(long, value_name = "HEX")]
        signature: String,
    },
}

#[derive(Args)]
#[group(required = true, multiple = false)]
pub struct IdArg {
    /// The identity as UTF-8 text.
    #[arg(long, value_name = "TEXT", allow_hyphen_values = true)]
    id: Option<String>,
    /// The identity as hex bytes (e.g. RFC 6507's "2011-02\0tel:+447700900123\0").
    #[arg(long, value_name = "HEX")]
    id_hex: Option<String>,
}

#[derive(Args)]
pub struct ExtractArgs {
    /// The KMS directory created by `ibc setup`.
    #[arg(long, value_name = "DIR")]
    kms: PathBuf,
    #[command(flatten)]
    id: IdArg,
}

/// The credential JSON exchanged between `extract` and `sign`.
#[derive(serde::Serialize, serde::Deserialize)]
struct CredentialFile {
    id_hex: String,
    /// 32 bytes hex on the wire; typed (zeroizing, redacted) from the moment it is parsed.
    ssk: Ssk,
    pvt: String,
    kpak: String,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct KmsSecretFile {
    scheme: String,
    /// The KSAK sealed under `DIR/kek`, hex (what `ibc setup` writes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ksak_sealed: Option<String>,
    /// The KSAK in clear, hex: only in files written before sealing; read, never written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ksak: Option<String>,
}

impl Drop for KmsSecretFile {
    fn drop(&mut self) {
        self.ksak.zeroize();
    }
}

const SCHEME: &str = "ECCSI P-256 SHA-256 (RFC 6507)";

pub fn run(cmd: IbcCmd) -> CliResult<ExitCode> {
    match cmd {
        IbcCmd::Setup { out } => setup(&out),
        IbcCmd::Extract(a) => extract(a),
        IbcCmd::Sign {
            credential,
            message_file,
        } => sign(&credential, &message_file),
        IbcCmd::Verify {
            kpak,
            id_hex,
            message_file,
            signature,
        } => verify(&kpak, &id_hex, &message_file, &signature),
    }
}

fn setup(dir: &Path) -> CliResult<ExitCode> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    const ARG: &str = "--out";
    match std::fs::symlink_metadata(dir) {
        Ok(m) if m.is_dir() => {
            let mut entries = std::fs::read_dir(dir)
                .map_err(|e| CliError::arg(ARG, format!("{}: {e}", dir.display())))?;
            if entries.next().is_some() {
                return Err(CliError::arg(
                    ARG,
                    format!(
                        "{}: directory is not empty; refusing to overwrite",
                        dir.display()
                    ),
                ));
            }
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| CliError::arg(ARG, format!("{}: {e}", dir.display())))?;
        }
        Ok(_) => {
            return Err(CliError::arg(
                ARG,
                format!("{}: exists and is not a directory", dir.display()),
            ))
        }
        Err(_) => {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| CliError::arg(ARG, format!("{}: {e}", dir.display())))?;
        }
    }
    let kms = Kms::generate(&mut OsRng);
    let in_dir = |e: &dyn std::fmt::Display| CliError::arg(ARG, format!("{}: {e}", dir.display()));
    let kek = m2msec_keystore::load_or_create_kek(&dir.join(KEK_FILE)).map_err(|e| in_dir(&e))?;
    let sealed = m2msec_keystore::Sealer::new(kek)
        .seal(KSAK_AAD, &kms.ksak().to_bytes()[..])
        .map_err(|e| in_dir(&e))?;
    let secret = KmsSecretFile {
        scheme: SCHEME.into(),
        ksak_sealed: Some(hex::encode(sealed)),
        ksak: None,
    };
    let mut json = serde_json::to_vec_pretty(&secret).map_err(CliError::other)?;
    json.push(b'\n');
    std::fs::write(
        dir.join(KPAK_FILE),
        format!("{}\n", hex::encode(kms.kpak().to_bytes())),
    )
    .map_err(|e| in_dir(&e))?;
    // Written last, atomically (temporary file, fsync, rename): its presence means a whole KMS.
    m2msec_keystore::write_secret_file(&dir.join(KMS_SECRET_FILE), &json)
        .map_err(|e| in_dir(&e))?;
    print_json(&serde_json::json!({ "kpak": hex::encode(kms.kpak().to_bytes()) }))?;
    Ok(ExitCode::SUCCESS)
}

fn load_kms(dir: &Path) -> CliResult<Kms> {
    const ARG: &str = "--kms";
    let path = dir.join(KMS_SECRET_FILE);
    let raw = Zeroizing::new(read_file(ARG, &path)?);
    let file: KmsSecretFile = serde_json::from_slice(&raw).map_err(|e| {
        CliError::arg(
            ARG,
            format!("{}: not a KMS secret file: {e}", path.display()),
        )
    })?;
    if file.scheme != SCHEME {
        return Err(CliError::arg(
            ARG,
            format!("{}: unsupported scheme {:?}", path.display(), file.scheme),
        ));
    }
    let bytes: Zeroizing<Vec<u8>> = match (&file.ksak_sealed, &file.ksak) {
        (Some(sealed), None) => {
            let sealed = hex::decode(sealed)
                .map_err(|e| CliError::arg(ARG, format!("{}: ksak_sealed: {e}", path.display())))?;
            let kek_path = dir.join(KEK_FILE);
            let kek = m2msec_keystore::load_kek(&kek_path)
                .map_err(|e| CliError::arg(ARG, e.to_string()))?;
            m2msec_keystore::Sealer::new(kek)
                .open(KSAK_AAD, &sealed)
                .map_err(|_| {
                    CliError::arg(
                        ARG,
                        format!(
                            "{}: the KSAK does not open with {} (wrong or replaced key file)",
                            path.display(),
                            kek_path.display()
                        ),
                    )
                })?
        }
        // Written before sealing: still read (see the module docs).
        (None, Some(clear)) => Zeroizing::new(
            hex_exact(ARG, clear, 32)
                .map_err(|e| CliError::arg(ARG, format!("{}: ksak: {}", path.display(), e.msg)))?
                .to_vec(),
        ),
        _ => {
            return Err(CliError::arg(
                ARG,
                format!("{}: needs exactly one of ksak_sealed, ksak", path.display()),
            ))
        }
    };
    let ksak = Ksak::from_bytes(&bytes)
        .map_err(|e| CliError::arg(ARG, format!("{}: {e}", path.display())))?;
    Kms::from_ksak(ksak).map_err(|e| CliError::arg(ARG, format!("{}: {e}", path.display())))
}

fn identity(id: &IdArg) -> CliResult<Vec<u8>> {
    let (arg, bytes) = match (&id.id, &id.id_hex) {
        (Some(t), None) => ("--id", t.as_bytes().to_vec()),
        (None, Some(h)) => ("--id-hex", hex_arg("--id-hex", h)?.to_vec()),
        _ => return Err(CliError::other("give exactly one of --id and --id-hex")),
    };
    if bytes.is_empty() {
        return Err(CliError::arg(arg, "identity is empty"));
    }
    if bytes.len() > MAX_ID_LEN {
        return Err(CliError::arg(
            arg,
            format!("identity longer than {MAX_ID_LEN} bytes"),
        ));
    }
    Ok(bytes)
}

fn extract(a: ExtractArgs) -> CliResult<ExitCode> {
    let id = identity(&a.id)?;
    let kms = load_kms(&a.kms)?;
    let keys = kms
        .extract(&id, &mut OsRng)
        .map_err(|e| CliError::other(format!("extraction failed: {e}")))?;
    let out = CredentialFile {
        id_hex: hex::encode(&id),
        ssk: keys.ssk.clone(),
        pvt: hex::encode(keys.pvt.to_bytes()),
        kpak: hex::encode(kms.kpak().to_bytes()),
    };
    print_json(&out)?;
    Ok(ExitCode::SUCCESS)
}

fn read_message(path: &Path) -> CliResult<Vec<u8>> {
    const ARG: &str = "--message-file";
    let meta = std::fs::metadata(path)
        .map_err(|e| CliError::arg(ARG, format!("{}: {e}", path.display())))?;
    if meta.len() > MAX_MESSAGE_LEN {
        return Err(CliError::arg(
            ARG,
            format!("{}: larger than {MAX_MESSAGE_LEN} bytes", path.display()),
        ));
    }
    read_file(ARG, path)
}

fn sign(credential: &Path, message: &Path) -> CliResult<ExitCode> {
    const ARG: &str = "--credential";
    let raw = Zeroizing::new(read_file(ARG, credential)?);
    let c: CredentialFile = serde_json::from_slice(&raw).map_err(|e| {
        CliError::arg(
            ARG,
            format!("{}: not a credential file: {e}", credential.display()),
        )
    })?;
    let field = |name: &str, e: CliError| {
        CliError::arg(ARG, format!("{}: {name}: {}", credential.display(), e.msg))
    };
    let id = hex_arg(ARG, &c.id_hex).map_err(|e| field("id_hex", e))?;
    let ssk = c.ssk.clone();
    let pvt = Pvt::from_bytes(&hex_arg(ARG, &c.pvt).map_err(|e| field("pvt", e))?)
        .map_err(|e| CliError::arg(ARG, format!("{}: pvt: {e}", credential.display())))?;
    let kpak = Kpak::from_bytes(&hex_arg(ARG, &c.kpak).map_err(|e| field("kpak", e))?)
        .map_err(|e| CliError::arg(ARG, format!("{}: kpak: {e}", credential.display())))?;
    let key = SigningKey::new(&kpak, &id, ssk, pvt).map_err(|e| {
        CliError::arg(
            ARG,
            format!(
                "{}: SSK validation (RFC 6507 §5.1.2) failed: {e}",
                credential.display()
            ),
        )
    })?;
    let msg = read_message(message)?;
    let sig = key.sign(&msg, &mut OsRng);
    println!("{}", hex::encode(sig.to_bytes()));
    Ok(ExitCode::SUCCESS)
}

fn verify(kpak: &str, id_hex: &str, message: &Path, signature: &str) -> CliResult<ExitCode> {
    let kpak =
        Kpak::from_bytes(&hex_arg("--kpak", kpak)?).map_err(|e| CliError::arg("--kpak", e))?;
    let id = hex_arg("--id-hex", id_hex)?;
    let sig_bytes = hex_exact("--signature", signature, 129)?;
    let msg = read_message(message)?;
    // A 129-byte signature that does not parse (e.g. PVT off the curve) is a well-formed input
    // that fails verification: `invalid`, exit 1.
    let ok = match Signature::from_bytes(&sig_bytes) {
        Ok(sig) => eccsi::verify(&kpak, &id, &msg, &sig).is_ok(),
        Err(_) => false,
    };
    if ok {
        println!("valid");
        Ok(ExitCode::SUCCESS)
    } else {
        println!("invalid");
        Ok(ExitCode::from(1))
    }
}
