//! The secure environment of a service (TS-0003 §6.3.1): where its long-term keys rest and
//! where the operations on them run, with the protection level of table 6.3.1-1 it provides.
//!
//! Two backends, chosen by the `[secure_environment]` configuration section
//! ([`SecureEnvironmentConfig`]):
//! - **files** (the default, section absent): records sealed under a KEK file beside the data
//!   ([`crate::load_or_create_kek`]). Protection level **0**: the KEK is a plain file; whoever
//!   reads the data directory as the service's user has every key, with no active attack.
//! - **pkcs11**: keys are non-extractable objects in a PKCS#11 token ([`crate::pkcs11`]);
//!   sealing and HMAC run inside it. A software token such as SoftHSM2 stores its objects
//!   encrypted under the PIN: a copy of the data and token directories alone (a passive
//!   observer) yields no key, but an attacker running code as the service (active, local or
//!   remote) reads the PIN file and can use the keys: protection level **1**. A hardware slot
//!   (`CKF_HW_SLOT`) may be declared level 2 or 3 by the operator (`protection_level`), which
//!   the module cannot prove; a software slot cannot be declared above 1.
//!
//! ## Which keys exist outside the token, and for how long (PKCS#11 backend)
//!
//! Inside the token only, never readable (`CKA_SENSITIVE`, not `CKA_EXTRACTABLE`): the KEKs of
//! the CSE (`m2msec/cse/kek`), the MEF and PKG (`m2msec/mef/kek`) and the device keystore
//! (`m2msec/enrolee/kek`), and HMAC keys generated or imported with
//! [`Pkcs11Token::hmac_key`] / [`Pkcs11Token::import_hmac_key`].
//!
//! Sealed by the token key, in clear in process memory only while in use (`Zeroizing`, wiped
//! when dropped), because the (D)TLS library or a software derivation needs the value:
//! - CSE: each Kpsa / PSK credential, opened when the credential table is loaded and kept in
//!   the handshake table while the credential is active (OpenSSL receives it as the TLS-PSK
//!   for each handshake);
//! - MEF: each active device's Kpm, opened into the PSK table of the TLS-PSK bootstrap
//!   (TS-0003 §8.3.2.1) while the device is provisioned and not revoked; an enrolment's Ke,
//!   opened for one `fetchCredentials` / key-registration answer and the §10.3 derivation of
//!   that answer; key registrations' keys for one retrieval;
//! - PKG: the KSAK, opened at start-up and held for the process lifetime (ECCSI/SAKKE key
//!   generation runs in software);
//! - device keystore: Ke and the SSK, opened for one `m2msec request`/`enrol` run.
//!
//! The PIN is read from the PIN file at start-up and held (zeroized on drop) for the process
//! lifetime. With the files backend every key above is also derivable from the KEK file.
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::pkcs11::{AuthPin, KeyKind, Pkcs11Token, TokenError, TokenSelector};
use crate::{load_or_create_kek, read_secret_file, KeystoreError, Sealer};

/// The `[secure_environment]` section shared by the CSE, MEF, PKG and device keystore
/// configurations. Absent or without `pkcs11_module`: the sealed-file store.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecureEnvironmentConfig {
    /// Path of the PKCS#11 module (e.g. `/usr/lib/softhsm/libsofthsm2.so`).
    #[serde(default)]
    pub pkcs11_module: Option<PathBuf>,
    /// The token's label (one of `token_label`, `slot`).
    #[serde(default)]
    pub token_label: Option<String>,
    /// The token's slot ID (one of `token_label`, `slot`).
    #[serde(default)]
    pub slot: Option<u64>,
    /// File holding the user PIN (mode 0600; trailing newline ignored). The PIN is never
    /// logged nor shown by `Debug`: this struct only holds the path.
    #[serde(default)]
    pub pin_file: Option<PathBuf>,
    /// The TS-0003 §6.3.1 protection level claimed for a hardware token (2 or 3); default 1.
    #[serde(default)]
    pub protection_level: Option<u8>,
    /// `CKA_LABEL` of this service's KEK in the token (default `m2msec/<service>/kek`): give
    /// each service its own label when several share one token.
    #[serde(default)]
    pub key_label: Option<String>,
}

impl SecureEnvironmentConfig {
    /// A PKCS#11 configuration for the token labelled `label`.
    pub fn pkcs11(module: impl Into<PathBuf>, label: &str, pin_file: impl Into<PathBuf>) -> Self {
        SecureEnvironmentConfig {
            pkcs11_module: Some(module.into()),
            token_label: Some(label.into()),
            slot: None,
            pin_file: Some(pin_file.into()),
            protection_level: None,
            key_label: None,
        }
    }

    /// Checks the combination of fields (without touching the module or the PIN file).
    pub fn validate(&self) -> Result<(), KeystoreError> {
        let bad = |reason: &str| {
            Err(KeystoreError::Config(format!(
                "[secure_environment]: {reason}"
            )))
        };
        if self.pkcs11_module.is_none() {
            if self.token_label.is_some()
                || self.slot.is_some()
                || self.pin_file.is_some()
                || self.protection_level.is_some()
                || self.key_label.is_some()
            {
                return bad(
                    "token_label, slot, pin_file, protection_level and key_label need pkcs11_module",
                );
            }
            return Ok(());
        }
        match (&self.token_label, self.slot) {
            (Some(_), Some(_)) => return bad("set token_label or slot, not both"),
            (None, None) => return bad("pkcs11_module needs token_label or slot"),
            (Some(l), None) if l.is_empty() || l.len() > 32 => {
                return bad("token_label is 1 to 32 characters (CK_TOKEN_INFO label)")
            }
            _ => {}
        }
        if self.pin_file.is_none() {
            return bad("pkcs11_module needs pin_file (a file of mode 0600 holding the user PIN)");
        }
        if let Some(l) = &self.key_label {
            if l.is_empty() || l.len() > 128 {
                return bad("key_label is 1 to 128 characters");
            }
        }
        if let Some(l) = self.protection_level {
            if !(1..=3).contains(&l) {
                return bad("protection_level is 1, 2 or 3 (TS-0003 table 6.3.1-1)");
            }
        }
        Ok(())
    }

    /// Opens the secure environment this configuration names.
    pub fn open(&self) -> Result<SecureEnvironment, KeystoreError> {
        SecureEnvironment::open(self)
    }
}

/// A TS-0003 table 6.3.1-1 protection level (0 to 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct ProtectionLevel(u8);

impl ProtectionLevel {
    /// The level number.
    pub fn get(self) -> u8 {
        self.0
    }

    /// The table's name for it.
    pub fn name(self) -> &'static str {
        match self.0 {
            0 => "no protection",
            1 => "low protection",
            2 => "medium protection",
            _ => "high protection",
        }
    }
}

impl std::fmt::Display for ProtectionLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}, TS-0003 §6.3.1)", self.0, self.name())
    }
}

/// What a service reports about its secure environment (start-up log line, status output,
/// `--json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SecureEnvironmentStatus {
    /// `files` or `pkcs11`.
    pub kind: &'static str,
    /// The protection level.
    pub level: ProtectionLevel,
    /// The token label (pkcs11).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Manufacturer and model the token reports (pkcs11).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manufacturer: Option<String>,
}

impl std::fmt::Display for SecureEnvironmentStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.token, &self.manufacturer) {
            (Some(t), Some(m)) => write!(
                f,
                "pkcs11 token {t:?} ({m}), protection level {}",
                self.level
            ),
            _ => write!(
                f,
                "{} (sealed under a KEK file), protection level {}",
                self.kind, self.level
            ),
        }
    }
}

/// An opened secure environment. Cheap to clone (the token is shared).
#[derive(Debug, Clone, Default)]
pub enum SecureEnvironment {
    /// Sealed files under a KEK file (protection level 0).
    #[default]
    Files,
    /// A PKCS#11 token.
    Pkcs11 {
        /// The token.
        token: Arc<Pkcs11Token>,
        /// The protection level claimed.
        level: ProtectionLevel,
        /// `key_label` of the configuration, replacing the service's default KEK label.
        key_label: Option<String>,
    },
}

impl SecureEnvironment {
    /// Opens the backend `config` names: reads the PIN file (mode 0600, refused otherwise),
    /// loads and initialises the module, finds the token and logs in.
    pub fn open(config: &SecureEnvironmentConfig) -> Result<Self, KeystoreError> {
        config.validate()?;
        let (Some(module), Some(pin_file)) = (&config.pkcs11_module, &config.pin_file) else {
            return Ok(SecureEnvironment::Files);
        };
        let which = match (&config.token_label, config.slot) {
            (Some(l), _) => TokenSelector::Label(l.clone()),
            (None, Some(s)) => TokenSelector::Slot(s),
            (None, None) => return Err(KeystoreError::Config("no token".into())),
        };
        let text = read_secret_file(pin_file)?;
        let pin = text.trim_end_matches(['\r', '\n']);
        if pin.is_empty() {
            return Err(KeystoreError::Invalid {
                path: pin_file.display().to_string(),
                reason: "the PIN file is empty".into(),
            });
        }
        let token = Pkcs11Token::connect(module, &which, AuthPin::from(pin.to_string()))?;
        let claimed = config.protection_level.unwrap_or(1);
        if claimed > 1 && !token.hardware_slot() {
            return Err(KeystoreError::Config(format!(
                "[secure_environment]: protection_level {claimed} claimed for token {:?}, which is not in a hardware slot (a software token is level 1)",
                token.label()
            )));
        }
        let level = ProtectionLevel(claimed);
        tracing::debug!(token = token.label(), slot = token.slot_id(), module = %module.display(), "PKCS#11 token opened");
        Ok(SecureEnvironment::Pkcs11 {
            token: Arc::new(token),
            level,
            key_label: config.key_label.clone(),
        })
    }

    /// `files` or `pkcs11`.
    pub fn kind(&self) -> &'static str {
        match self {
            SecureEnvironment::Files => "files",
            SecureEnvironment::Pkcs11 { .. } => "pkcs11",
        }
    }

    /// The TS-0003 §6.3.1 protection level.
    pub fn protection_level(&self) -> ProtectionLevel {
        match self {
            SecureEnvironment::Files => ProtectionLevel(0),
            SecureEnvironment::Pkcs11 { level, .. } => *level,
        }
    }

    /// The token, for the PKCS#11 backend.
    pub fn token(&self) -> Option<&Arc<Pkcs11Token>> {
        match self {
            SecureEnvironment::Files => None,
            SecureEnvironment::Pkcs11 { token, .. } => Some(token),
        }
    }

    /// The `CKA_LABEL` of a KEK whose service default is `default` (`key_label` of the
    /// configuration if set).
    pub fn key_label<'a>(&'a self, default: &'a str) -> &'a str {
        match self {
            SecureEnvironment::Pkcs11 {
                key_label: Some(l), ..
            } => l,
            _ => default,
        }
    }

    /// What to report at start-up and in status output.
    pub fn status(&self) -> SecureEnvironmentStatus {
        SecureEnvironmentStatus {
            kind: self.kind(),
            level: self.protection_level(),
            token: self.token().map(|t| t.label().to_string()),
            manufacturer: self.token().map(|t| t.manufacturer()),
        }
    }

    /// The sealer of a store: files: the KEK file `kek_file` (created on first use);
    /// pkcs11: the token's AES key `key_label` (generated in the token on first use).
    ///
    /// With the token, an existing `kek_file` is refused: the records sealed under it would
    /// not open (run the migration, which moves that key into the token and deletes the file).
    pub fn sealer(&self, kek_file: &Path, key_label: &str) -> Result<Sealer, KeystoreError> {
        let key_label = self.key_label(key_label);
        match self {
            SecureEnvironment::Files => Ok(Sealer::new(load_or_create_kek(kek_file)?)),
            SecureEnvironment::Pkcs11 { token, .. } => {
                if kek_file.exists() {
                    return Err(KeystoreError::Config(format!(
                        "{} exists but [secure_environment] uses token {:?}: the records sealed under that file would not open; move the key into the token first (keys migrate-to-token)",
                        kek_file.display(),
                        token.label()
                    )));
                }
                if token.aes_key(key_label)? {
                    tracing::info!(
                        token = token.label(),
                        key = key_label,
                        "key-encryption key generated in the token"
                    );
                }
                Ok(Sealer::token(token.clone(), key_label))
            }
        }
    }

    /// As [`SecureEnvironment::sealer`] for a store that already holds sealed records: never
    /// creates the key (a new key would orphan every record), files: the KEK file must exist;
    /// pkcs11: the token key must exist ([`TokenError::KeyMissing`] otherwise).
    pub fn existing_sealer(
        &self,
        kek_file: &Path,
        key_label: &str,
    ) -> Result<Sealer, KeystoreError> {
        match self {
            SecureEnvironment::Files => Ok(Sealer::new(crate::load_kek(kek_file)?)),
            SecureEnvironment::Pkcs11 { token, .. } => {
                if kek_file.exists() {
                    return self.sealer(kek_file, key_label);
                }
                if !token.has_key(key_label, KeyKind::Aes)? {
                    return Err(TokenError::KeyMissing {
                        token: token.label().to_string(),
                        label: key_label.to_string(),
                    }
                    .into());
                }
                Ok(Sealer::token(token.clone(), key_label))
            }
        }
    }

    /// Moves an installation from the KEK file `kek_file` into the token (`m2msec … keys
    /// migrate-to-token`): generates a fresh non-extractable AES key `key_label` in the token,
    /// lets `reseal` open every record with the file KEK and seal it again inside the token
    /// (one store transaction), then deletes the file. A fresh key rather than an import of
    /// the file's: copies of the old KEK file (backups) open nothing sealed from now on.
    ///
    /// Refuses when the token already holds `key_label` (migrated before) or there is no
    /// file. If `reseal` fails the new token key is destroyed and the file kept: nothing
    /// changed, the migration can run again. Run it while the service is stopped.
    /// Returns the number of records re-sealed.
    pub fn migrate_kek(
        &self,
        kek_file: &Path,
        key_label: &str,
        reseal: impl FnOnce(&Sealer, &Sealer) -> Result<usize, String>,
    ) -> Result<usize, KeystoreError> {
        let key_label = self.key_label(key_label);
        let SecureEnvironment::Pkcs11 { token, .. } = self else {
            return Err(KeystoreError::Config(
                "migration to a token needs [secure_environment] pkcs11_module".into(),
            ));
        };
        if token.has_key(key_label, KeyKind::Aes)? {
            return Err(KeystoreError::Config(format!(
                "token {:?} already holds {key_label:?}: already migrated{}",
                token.label(),
                if kek_file.exists() {
                    format!(" ({} is left over: delete it)", kek_file.display())
                } else {
                    String::new()
                }
            )));
        }
        let old = Sealer::new(crate::load_kek(kek_file)?);
        token.aes_key(key_label)?;
        let new = Sealer::token(token.clone(), key_label);
        match reseal(&old, &new) {
            Ok(n) => {
                std::fs::remove_file(kek_file).map_err(|source| KeystoreError::Io {
                    path: kek_file.to_path_buf(),
                    source,
                })?;
                tracing::info!(
                    token = token.label(),
                    key = key_label,
                    records = n,
                    "key-encryption key moved into the token"
                );
                Ok(n)
            }
            Err(e) => {
                let _ = token.destroy_key(key_label, KeyKind::Aes);
                Err(KeystoreError::Config(format!(
                    "re-sealing under the token key failed, nothing changed: {e}"
                )))
            }
        }
    }
}

impl From<TokenError> for KeystoreError {
    fn from(e: TokenError) -> Self {
        KeystoreError::Token(Box::new(e))
    }
}
