//! # m2msec-keystore
//!
//! The secure environment of m2msec (TS-0003 §6.3.1, [`se`]): secrets rest sealed under a
//! key-encryption key, either a [`Kek`] file only its owner can read (AES-256-GCM,
//! [`m2msec_core::seal`]; protection level 0, the default) or a non-extractable key in a
//! PKCS#11 token that seals and opens inside the token ([`pkcs11`]; level 1 for a software
//! token such as SoftHSM2). [`Sealer`] takes either; [`se::SecureEnvironmentConfig`] is the
//! `[secure_environment]` configuration section.
//!
//! - [`load_or_create_kek`]: the KEK file (`0600`, 32 random bytes in hex, created atomically
//!   on first use, refused if group or others can read it).
//! - [`read_secret_file`] / [`write_secret_file`]: small secret files with the same rules,
//!   written to a temporary file and renamed, so a crash leaves either the old or the new file.
//! - [`Sealer`]: seal and open records with fresh random nonces.
//!
//! Keeping the KEK on other storage than the data (or in a PKCS#11 token, [`pkcs11`]) is what
//! makes sealing meaningful; the file KEK guards against copies of the database alone
//! (backups, replicas, a stolen disk image of the data volume).
#![forbid(unsafe_code)]
#![deny(missing_debug_implementations)]
#![warn(missing_docs)]

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

pub use m2msec_core::seal::Kek;
use m2msec_core::seal::{self, SealError, NONCE_LEN};
use rand_core::{OsRng, RngCore};
use std::sync::Arc;
use zeroize::Zeroizing;

pub mod pkcs11;
pub mod se;
#[cfg(feature = "testing")]
pub mod testing;

pub use pkcs11::{Pkcs11Token, TokenError};
pub use se::{
    ProtectionLevel, SecureEnvironment, SecureEnvironmentConfig, SecureEnvironmentStatus,
};

/// Largest secret file read.
pub const MAX_SECRET_FILE: u64 = 64 * 1024;

/// Errors of the file secure environment.
#[derive(Debug, thiserror::Error)]
pub enum KeystoreError {
    /// An I/O error on a path.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A secret file that group or others may read.
    #[error("{path} has mode {mode:04o}: it must be 0600 (chmod 600 {path})")]
    Permissions {
        /// The path.
        path: String,
        /// Its mode bits.
        mode: u32,
    },
    /// Not a small regular file, or malformed content.
    #[error("{path}: {reason}")]
    Invalid {
        /// The path.
        path: String,
        /// Why.
        reason: String,
    },
    /// A sealed record did not open.
    #[error(transparent)]
    Seal(#[from] SealError),
    /// The PKCS#11 token refused or went away.
    #[error(transparent)]
    Token(Box<TokenError>),
    /// A configuration that cannot work.
    #[error("{0}")]
    Config(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> KeystoreError + '_ {
    move |source| KeystoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Creates `dir` (and its parents) for private data: mode 0700 when created here, and an
/// existing directory that group or others may enter is tightened to 0700 (with a warning),
/// so database files and their SQLite `-wal`/`-shm` companions are not readable by others.
pub fn private_dir(dir: &Path) -> Result<(), KeystoreError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        if !dir.exists() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(io(dir))?;
        }
        let mode = fs::metadata(dir).map_err(io(dir))?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(dir = %dir.display(), mode = format!("{mode:o}"), "data directory open to others: tightening to 0700");
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io(dir))?;
        }
    }
    #[cfg(not(unix))]
    fs::create_dir_all(dir).map_err(io(dir))?;
    Ok(())
}

/// Makes the SQLite database `db` private before SQLite opens it: created empty with mode 0600
/// if missing, and the file and its existing `-wal`/`-shm`/`-journal` companions set to 0600
/// (SQLite creates the companions with the database file's mode).
///
/// An existing database is only changed by path (chmod), never opened here: closing a file
/// descriptor of a database releases every POSIX lock this process holds on it, including the
/// locks of SQLite connections already open on it (SQLite's documented "how to corrupt" case).
pub fn private_db_file(db: &Path) -> Result<(), KeystoreError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        if !db.exists() {
            match fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(db)
            {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io(db)(e)),
            }
        }
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let mut p = db.as_os_str().to_owned();
            p.push(suffix);
            let p = std::path::PathBuf::from(p);
            if let Ok(m) = fs::metadata(&p) {
                if m.permissions().mode() & 0o077 != 0 {
                    fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).map_err(io(&p))?;
                }
            }
        }
    }
    #[cfg(not(unix))]
    let _ = db;
    Ok(())
}

/// Reads a small secret file, refusing one that group or others may read.
pub fn read_secret_file(path: &Path) -> Result<Zeroizing<String>, KeystoreError> {
    let meta = fs::metadata(path).map_err(io(path))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(KeystoreError::Permissions {
                path: path.display().to_string(),
                mode,
            });
        }
    }
    if !meta.is_file() || meta.len() > MAX_SECRET_FILE {
        return Err(KeystoreError::Invalid {
            path: path.display().to_string(),
            reason: "not a small regular file".into(),
        });
    }
    let text = fs::read(path).map_err(io(path))?;
    let text = Zeroizing::new(text);
    std::str::from_utf8(&text)
        .map(|s| Zeroizing::new(s.to_string()))
        .map_err(|_| KeystoreError::Invalid {
            path: path.display().to_string(),
            reason: "not UTF-8 text".into(),
        })
}

/// Writes a secret file with mode 0600: a temporary file in the same directory, fsync, rename.
pub fn write_secret_file(path: &Path, contents: &[u8]) -> Result<(), KeystoreError> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty());
    let name = path
        .file_name()
        .ok_or_else(|| KeystoreError::Invalid {
            path: path.display().to_string(),
            reason: "no file name".into(),
        })?
        .to_string_lossy()
        .to_string();
    let mut suffix = [0u8; 6];
    OsRng.fill_bytes(&mut suffix);
    let tmp = match dir {
        Some(d) => d.join(format!(".{name}.{}.tmp", hex::encode(suffix))),
        None => PathBuf::from(format!(".{name}.{}.tmp", hex::encode(suffix))),
    };
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let result = (|| {
        let mut f = opts.open(&tmp).map_err(io(&tmp))?;
        f.write_all(contents).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
        fs::rename(&tmp, path).map_err(io(path))?;
        if let Some(d) = dir {
            if let Ok(df) = fs::File::open(d) {
                let _ = df.sync_all();
            }
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Loads the KEK at `path`, creating it (32 random bytes, hex, mode 0600) if it does not exist.
pub fn load_or_create_kek(path: &Path) -> Result<Kek, KeystoreError> {
    if !path.exists() {
        let mut k = Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(&mut k[..]);
        let text = Zeroizing::new(hex::encode(&k[..]));
        write_secret_file(path, text.as_bytes())?;
    }
    load_kek(path)
}

/// Loads an existing KEK file.
pub fn load_kek(path: &Path) -> Result<Kek, KeystoreError> {
    let text = read_secret_file(path)?;
    let mut raw = Zeroizing::new([0u8; 32]);
    hex::decode_to_slice(text.trim(), &mut raw[..]).map_err(|_| KeystoreError::Invalid {
        path: path.display().to_string(),
        reason: "a key-encryption key file holds 64 hex digits".into(),
    })?;
    Ok(Kek::from_array(*raw))
}

/// Seals and opens records under one KEK with fresh random nonces: a [`Kek`] in memory (file
/// backend) or an AES key inside a PKCS#11 token. Both produce the record layout of
/// [`m2msec_core::seal`] version 1. Cheap to clone; usable from many threads.
#[derive(Debug, Clone)]
pub struct Sealer {
    key: SealerKey,
}

#[derive(Debug, Clone)]
enum SealerKey {
    File(Kek),
    Token {
        token: Arc<Pkcs11Token>,
        label: String,
    },
}

impl Sealer {
    /// A sealer for `kek` (file backend).
    pub fn new(kek: Kek) -> Self {
        Sealer {
            key: SealerKey::File(kek),
        }
    }

    /// A sealer for the AES key `label` of `token` (sealing runs in the token).
    pub fn token(token: Arc<Pkcs11Token>, label: &str) -> Self {
        Sealer {
            key: SealerKey::Token {
                token,
                label: label.to_string(),
            },
        }
    }

    /// `files` or `pkcs11`.
    pub fn kind(&self) -> &'static str {
        match &self.key {
            SealerKey::File(_) => "files",
            SealerKey::Token { .. } => "pkcs11",
        }
    }

    /// Seals `plaintext` bound to `aad` (name the record: table and key identifier). Fails
    /// only with the token backend (token unavailable, key removed).
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, KeystoreError> {
        match &self.key {
            SealerKey::File(kek) => {
                let mut nonce = [0u8; NONCE_LEN];
                OsRng.fill_bytes(&mut nonce);
                Ok(seal::seal(kek, aad, nonce, plaintext))
            }
            SealerKey::Token { token, label } => Ok(token.seal(label, aad, plaintext)?),
        }
    }

    /// Opens a record sealed with the same `aad`.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, KeystoreError> {
        match &self.key {
            SealerKey::File(kek) => Ok(seal::open(kek, aad, sealed)?),
            SealerKey::Token { token, label } => match token.open(label, aad, sealed) {
                Ok(p) => Ok(p),
                Err(TokenError::Seal(e)) => Err(KeystoreError::Seal(e)),
                Err(e) => Err(e.into()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kek_is_created_once_with_mode_0600() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("kek");
        let a = load_or_create_kek(&p).unwrap();
        let b = load_or_create_kek(&p).unwrap();
        assert_eq!(a, b);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                fs::metadata(&p).unwrap().permissions().mode() & 0o777,
                0o600
            );
            fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
            assert!(matches!(
                load_kek(&p),
                Err(KeystoreError::Permissions { .. })
            ));
        }
        // No temporary files are left behind.
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 1);
    }

    #[test]
    fn sealer_round_trip() {
        let s = Sealer::new(Kek::from_array([3; 32]));
        let a = s.seal(b"t/1", b"k").unwrap();
        let b = s.seal(b"t/1", b"k").unwrap();
        assert_ne!(a, b, "fresh nonces");
        assert_eq!(&s.open(b"t/1", &a).unwrap()[..], b"k");
        assert!(s.open(b"t/2", &a).is_err());
    }

    #[test]
    fn bad_kek_files() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("kek");
        write_secret_file(&p, b"zz").unwrap();
        assert!(matches!(load_kek(&p), Err(KeystoreError::Invalid { .. })));
        assert!(load_kek(&d.path().join("missing")).is_err());
    }
}
