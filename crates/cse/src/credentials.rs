//! Administered PSK credentials of the registrar CSE (TS-0003 §8.2.2.1, Provisioned Symmetric
//! Key security association establishment): the table `psk_credentials` in the CSE's SQLite
//! database (`DATA_DIR/cse.sqlite3`, schema version 2, see [`crate::store`]).
//!
//! One API serves the command line (`m2msec cse credential add|list|revoke`) and the running CSE
//! (its PSK resolver and session registry):
//!
//! - [`CredentialStore::add`] provisions a KpsaID (TS-0003 §10.5) with its key, an optional
//!   configured IdA and registree kind (TS-0003 §8.2.2.1: "the identity IdA … may be
//!   configured"), an optional expiry (`m2m:timestamp`, TS-0004 §6.3.3) and a label.
//! - [`CredentialStore::list`] describes every row; it never returns key material.
//! - [`CredentialStore::revoke`] marks a row revoked with a timestamp. The row stays: the
//!   identity is not silently reusable. Re-adding a revoked identity needs
//!   [`AddOptions::replace_revoked`] (`--replace-revoked` on the command line), which installs a
//!   new key for the same KpsaID and therefore the same Credential-ID `12-<KpsaID>` (TS-0003
//!   §10.4): the AE-ID learned by that Credential-ID at registration (TS-0003 §8.2.1) stays
//!   bound to it. A credential for another device takes a new identity.
//! - [`CredentialStore::active`] / [`CredentialStore::get_for_handshake`] return the opened keys
//!   of usable (not revoked, not expired) credentials; [`CredentialStore::snapshot`] every row
//!   with its state, for the CSE's in-memory map.
//!
//! The store reads no clock: every method that judges an expiry takes `now` (unix seconds) from
//! its caller, the CSE's injected [`m2msec_core::clock::Clock`] or the command line's
//! [`m2msec_core::clock::unix_now`].
//!
//! Keys rest sealed (AES-256-GCM, [`m2msec_keystore::Sealer`]) under the key-encryption key in
//! `DATA_DIR/kek` (mode 0600, created on first use; a missing KEK is not replaced while sealed
//! keys exist), with the associated data
//! `psk_credentials/<psk_identity>`: a sealed key copied into another row does not open. Every
//! write is one IMMEDIATE transaction; the connection waits up to 5 s for a lock, so the CLI
//! works while the CSE runs (WAL mode).
//!
//! Identities are stored in canonical form (the FQDN part in lower case, as
//! [`KpsaId`]'s `Display` writes it); a non-canonical spelling is refused rather than silently
//! changed, because clients send the `psk_identity` byte for byte.

use std::path::{Path, PathBuf};

use m2msec_core::ids::{AeId, CredentialId, CseId, KpsaId};
use m2msec_core::timestamp::Timestamp;
pub use m2msec_keystore::{self as keystore, KeystoreError, Sealer};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde::Serialize;
use zeroize::Zeroizing;

use crate::store::{open_connection, StoreError};
use crate::verify::BoundIdentity;

/// The table holding the credentials (also the first part of each sealed key's AAD).
pub const TABLE: &str = "psk_credentials";
/// The key-encryption key's file name inside the data directory.
pub const KEK_FILE: &str = "kek";
/// Longest `psk_identity` (OpenSSL's PSK_MAX_IDENTITY_LEN, BRIEF §2.1).
pub const MAX_IDENTITY_LEN: usize = 256;
/// Shortest key accepted (128 bits).
pub const MIN_KEY_LEN: usize = 16;
/// Longest key accepted (OpenSSL's PSK_MAX_PSK_LEN).
pub const MAX_KEY_LEN: usize = 512;
/// Longest label.
pub const MAX_LABEL_LEN: usize = 200;

/// Why a credential operation failed.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// The database failed.
    #[error("{0}")]
    Store(#[from] StoreError),
    /// The KEK file or a sealed key failed.
    #[error("{0}")]
    Keystore(#[from] KeystoreError),
    /// A malformed input (identity, key, label, expiry).
    #[error("{0}")]
    Invalid(String),
    /// The identity is already provisioned and active.
    #[error("credential {0} already exists")]
    Exists(String),
    /// The identity was revoked; re-adding it needs an explicit replace.
    #[error("credential {0} was revoked at {1}; re-adding it needs --replace-revoked (same Credential-ID and AE-ID binding) or a new identity")]
    Revoked(String, String),
    /// No such identity in the store.
    #[error("no credential {0} in the store")]
    NotFound(String),
    /// Revoking an identity that is already revoked.
    #[error("credential {0} is already revoked (at {1})")]
    AlreadyRevoked(String, String),
}

impl From<rusqlite::Error> for CredentialError {
    fn from(e: rusqlite::Error) -> Self {
        CredentialError::Store(StoreError::Db(e))
    }
}

/// What a configured IdA names (TS-0003 §8.2.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Registree {
    /// An AE-ID.
    Ae,
    /// A registree CSE's CSE-ID.
    Cse,
}

impl Registree {
    fn as_str(self) -> &'static str {
        match self {
            Registree::Ae => "ae",
            Registree::Cse => "cse",
        }
    }
}

impl std::str::FromStr for Registree {
    type Err = CredentialError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ae" => Ok(Registree::Ae),
            "cse" => Ok(Registree::Cse),
            other => Err(CredentialError::Invalid(format!(
                "registree must be \"ae\" or \"cse\", not {other:?}"
            ))),
        }
    }
}

/// Parses a configured IdA of the given kind into the engine's [`BoundIdentity`].
pub fn parse_ida(ida: &str, kind: Registree) -> Result<BoundIdentity, CredentialError> {
    match kind {
        Registree::Ae => ida
            .parse::<AeId>()
            .map(|a| BoundIdentity::Ae(vec![a]))
            .map_err(|e| CredentialError::Invalid(format!("ida {ida:?}: {e}"))),
        Registree::Cse => ida
            .parse::<CseId>()
            .map(BoundIdentity::Cse)
            .map_err(|e| CredentialError::Invalid(format!("ida {ida:?}: {e}"))),
    }
}

/// Validates a `psk_identity` as a canonical KpsaID (TS-0003 §10.5).
pub fn parse_identity(identity: &str) -> Result<KpsaId, CredentialError> {
    let kpsa: KpsaId = identity
        .parse()
        .map_err(|e| CredentialError::Invalid(format!("{identity:?} is not a KpsaID: {e}")))?;
    let canonical = kpsa.to_string();
    if canonical != identity {
        return Err(CredentialError::Invalid(format!(
            "write the identity in canonical form (FQDN in lower case): {canonical}"
        )));
    }
    if identity.len() > MAX_IDENTITY_LEN {
        return Err(CredentialError::Invalid(format!(
            "a psk_identity is at most {MAX_IDENTITY_LEN} bytes"
        )));
    }
    Ok(kpsa)
}

/// Checks a key's length.
pub fn check_key(key: &[u8]) -> Result<(), CredentialError> {
    if key.len() < MIN_KEY_LEN || key.len() > MAX_KEY_LEN {
        return Err(CredentialError::Invalid(format!(
            "a key must be {MIN_KEY_LEN} to {MAX_KEY_LEN} bytes, got {}",
            key.len()
        )));
    }
    Ok(())
}

/// Checks an administrator's label: at most [`MAX_LABEL_LEN`] bytes, no control characters.
pub fn check_label(label: &str) -> Result<(), CredentialError> {
    if label.len() > MAX_LABEL_LEN || label.chars().any(char::is_control) {
        return Err(CredentialError::Invalid(format!(
            "a label is at most {MAX_LABEL_LEN} bytes without control characters"
        )));
    }
    Ok(())
}

fn ts_text(unix: i64) -> String {
    Timestamp::from_unix(unix)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| unix.to_string())
}

fn aad(identity: &str) -> Vec<u8> {
    format!("{TABLE}/{identity}").into_bytes()
}

/// A credential to provision.
#[derive(Debug, Clone)]
pub struct NewCredential {
    /// The KpsaID, sent by clients as `psk_identity`.
    pub identity: KpsaId,
    /// Kpsa.
    pub key: Zeroizing<Vec<u8>>,
    /// Configured IdA and what it names.
    pub ida: Option<(String, Registree)>,
    /// Expiry (`m2m:timestamp`); after it handshakes with this credential fail.
    pub expires: Option<Timestamp>,
    /// A free-form note for administrators.
    pub label: Option<String>,
}

impl NewCredential {
    /// A credential with no configured IdA, expiry or label.
    pub fn new(identity: KpsaId, key: &[u8]) -> Self {
        NewCredential {
            identity,
            key: Zeroizing::new(key.to_vec()),
            ida: None,
            expires: None,
            label: None,
        }
    }
}

/// Options of [`CredentialStore::add`].
#[derive(Debug, Clone, Copy, Default)]
pub struct AddOptions {
    /// Replace a revoked row of the same identity (new key, same Credential-ID).
    pub replace_revoked: bool,
}

/// A credential's state at a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Usable.
    Active,
    /// Past its expiry.
    Expired,
    /// Revoked.
    Revoked,
}

/// A credential as [`CredentialStore::list`] describes it: no key material.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CredentialInfo {
    /// The `psk_identity` (KpsaID).
    pub identity: String,
    /// The Credential-ID, `12-<KpsaID>` (TS-0003 §10.4).
    pub credential_id: String,
    /// Where the credential comes from (`store`; the CLI adds `config` rows).
    pub source: &'static str,
    /// State at listing time.
    pub state: State,
    /// Configured IdA.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ida: Option<String>,
    /// What the IdA names.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registree: Option<Registree>,
    /// Expiry (`m2m:timestamp`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    /// Administrator's label.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// When it was added (`m2m:timestamp`; empty for config rows).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub created: String,
    /// When it was revoked (`m2m:timestamp`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked: Option<String>,
}

/// An opened credential for the handshake (TS-0003 §8.2.2.1).
#[derive(Debug, Clone)]
pub struct HandshakeCredential {
    /// The KpsaID.
    pub kpsa_id: KpsaId,
    /// Kpsa (wiped on drop).
    pub key: Zeroizing<Vec<u8>>,
    /// The configured IdA, if any.
    pub bound: Option<BoundIdentity>,
    /// Expiry in seconds since 1970.
    pub expires_unix: Option<i64>,
}

impl HandshakeCredential {
    /// The Credential-ID `12-<KpsaID>` (TS-0003 §10.4).
    pub fn credential_id(&self) -> CredentialId {
        CredentialId::for_kpsa(&self.kpsa_id)
    }
}

/// Every row of the store at one instant, for the CSE's in-memory credential map.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Usable credentials, opened.
    pub active: Vec<HandshakeCredential>,
    /// Identities that must not authenticate (revoked, or expired at snapshot time).
    pub refused: Vec<String>,
}

/// The credential store: its own connection to `DATA_DIR/cse.sqlite3` and the KEK.
pub struct CredentialStore {
    conn: Connection,
    sealer: Sealer,
    dir: PathBuf,
}

impl std::fmt::Debug for CredentialStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialStore")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

struct Row {
    identity: String,
    sealed: Vec<u8>,
    ida: Option<String>,
    registree: Option<String>,
    expires: Option<String>,
    expires_unix: Option<i64>,
    label: Option<String>,
    created: String,
    revoked: Option<String>,
}

const ROW_COLS: &str =
    "psk_identity, sealed_key, ida, registree, expires, expires_unix, label, created, revoked";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    Ok(Row {
        identity: r.get(0)?,
        sealed: r.get(1)?,
        ida: r.get(2)?,
        registree: r.get(3)?,
        expires: r.get(4)?,
        expires_unix: r.get(5)?,
        label: r.get(6)?,
        created: r.get(7)?,
        revoked: r.get(8)?,
    })
}

impl Row {
    fn state(&self, now: i64) -> State {
        if self.revoked.is_some() {
            State::Revoked
        } else if self.expires_unix.is_some_and(|e| e <= now) {
            State::Expired
        } else {
            State::Active
        }
    }

    fn registree(&self) -> Result<Option<Registree>, CredentialError> {
        self.registree.as_deref().map(str::parse).transpose()
    }

    fn info(&self, now: i64) -> Result<CredentialInfo, CredentialError> {
        let credential_id = parse_identity(&self.identity)
            .map(|k| CredentialId::for_kpsa(&k).to_string())
            .map_err(|e| corrupt(&self.identity, e))?;
        Ok(CredentialInfo {
            identity: self.identity.clone(),
            credential_id,
            source: "store",
            state: self.state(now),
            ida: self.ida.clone(),
            registree: self.registree()?,
            expires: self.expires.clone(),
            label: self.label.clone(),
            created: self.created.clone(),
            revoked: self.revoked.clone(),
        })
    }

    fn open(&self, sealer: &Sealer) -> Result<HandshakeCredential, CredentialError> {
        let kpsa_id = parse_identity(&self.identity).map_err(|e| corrupt(&self.identity, e))?;
        let key = sealer.open(&aad(&self.identity), &self.sealed)?;
        let bound = match (&self.ida, self.registree()?) {
            (Some(ida), Some(kind)) => Some(parse_ida(ida, kind)?),
            _ => None,
        };
        Ok(HandshakeCredential {
            kpsa_id,
            key,
            bound,
            expires_unix: self.expires_unix,
        })
    }
}

fn corrupt(identity: &str, e: CredentialError) -> CredentialError {
    CredentialError::Store(StoreError::Corrupt(format!(
        "{TABLE} row {identity:?}: {e}"
    )))
}

impl CredentialStore {
    /// Opens the store of `data_dir` (creating the database and the KEK file if missing).
    pub fn open(data_dir: &Path) -> Result<CredentialStore, CredentialError> {
        let conn = open_connection(data_dir)?;
        let kek_path = data_dir.join(KEK_FILE);
        if !kek_path.exists() {
            // A new KEK would silently orphan every sealed key: create one only for an empty table.
            let n: i64 =
                conn.query_row(&format!("SELECT count(*) FROM {TABLE}"), [], |r| r.get(0))?;
            if n > 0 {
                return Err(CredentialError::Invalid(format!(
                    "{} is missing but {n} sealed credential(s) exist: restore it",
                    kek_path.display()
                )));
            }
        }
        let kek = keystore::load_or_create_kek(&kek_path)?;
        Ok(CredentialStore {
            conn,
            sealer: Sealer::new(kek),
            dir: data_dir.to_path_buf(),
        })
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.dir
    }

    /// SQLite's `PRAGMA data_version` on this connection: it changes when another connection
    /// commits to the file (the CLI adding or revoking while the CSE runs).
    pub fn data_version(&self) -> Result<i64, CredentialError> {
        Ok(self
            .conn
            .query_row("PRAGMA data_version", [], |r| r.get(0))?)
    }

    /// A counter bumped (by triggers) on every change to the credentials table, whoever
    /// makes it: compare it after [`CredentialStore::data_version`] moved to skip reloads caused
    /// by resource writes.
    pub fn change_counter(&self) -> Result<i64, CredentialError> {
        Ok(self
            .conn
            .query_row(&format!("SELECT version FROM {TABLE}_version"), [], |r| {
                r.get(0)
            })?)
    }

    /// Adds a credential at time `now` (seconds since 1970). `before_commit` runs inside the
    /// transaction after the row is written (e.g. writing the generated key out for the
    /// device); its failure rolls the row back.
    pub fn add(
        &mut self,
        c: &NewCredential,
        opts: AddOptions,
        now: i64,
        before_commit: impl FnOnce() -> Result<(), CredentialError>,
    ) -> Result<CredentialInfo, CredentialError> {
        let identity = c.identity.to_string();
        parse_identity(&identity)?;
        check_key(&c.key)?;
        if let Some((ida, kind)) = &c.ida {
            parse_ida(ida, *kind)?;
        }
        if let Some(l) = &c.label {
            check_label(l)?;
        }
        let expires_unix = c.expires.as_ref().map(Timestamp::to_unix);
        if expires_unix.is_some_and(|e| e <= now) {
            return Err(CredentialError::Invalid(
                "the expiry lies in the past".into(),
            ));
        }
        let sealed = self.sealer.seal(&aad(&identity), &c.key);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let existing: Option<Option<String>> = tx
            .query_row(
                &format!("SELECT revoked FROM {TABLE} WHERE psk_identity = ?1"),
                [&identity],
                |r| r.get(0),
            )
            .optional()?;
        match existing {
            None => {}
            Some(None) => return Err(CredentialError::Exists(identity)),
            Some(Some(at)) if !opts.replace_revoked => {
                return Err(CredentialError::Revoked(identity, at))
            }
            Some(Some(_)) => {
                tx.execute(
                    &format!("DELETE FROM {TABLE} WHERE psk_identity = ?1"),
                    [&identity],
                )?;
            }
        }
        let (ida, registree) = match &c.ida {
            Some((i, k)) => (Some(i.as_str()), Some(k.as_str())),
            None => (None, None),
        };
        tx.execute(
            &format!(
                "INSERT INTO {TABLE} (psk_identity, sealed_key, ida, registree, expires, \
                 expires_unix, label, created) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
            ),
            params![
                identity,
                sealed,
                ida,
                registree,
                c.expires.as_ref().map(|t| t.to_string()),
                expires_unix,
                c.label,
                ts_text(now)
            ],
        )?;
        before_commit()?;
        let info = Self::row_in(&tx, &identity)?
            .ok_or_else(|| CredentialError::NotFound(identity.clone()))?
            .info(now)?;
        tx.commit()?;
        Ok(info)
    }

    fn row_in(conn: &Connection, identity: &str) -> Result<Option<Row>, CredentialError> {
        Ok(conn
            .query_row(
                &format!("SELECT {ROW_COLS} FROM {TABLE} WHERE psk_identity = ?1"),
                [identity],
                row,
            )
            .optional()?)
    }

    fn rows(&self) -> Result<Vec<Row>, CredentialError> {
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT {ROW_COLS} FROM {TABLE} ORDER BY psk_identity"
        ))?;
        let rows = st.query_map([], row)?;
        let mut out = Vec::new();
        for r in rows {
            out.push(r?);
        }
        Ok(out)
    }

    /// Every credential, by identity, with its state at `now`. No key material.
    pub fn list(&self, now: i64) -> Result<Vec<CredentialInfo>, CredentialError> {
        self.rows()?.iter().map(|r| r.info(now)).collect()
    }

    /// Revokes a credential at `now`: handshakes with it fail from then on and the CSE closes
    /// its live sessions. The row is kept (see the module documentation).
    pub fn revoke(&mut self, identity: &str, now: i64) -> Result<CredentialInfo, CredentialError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let r = Self::row_in(&tx, identity)?
            .ok_or_else(|| CredentialError::NotFound(identity.to_string()))?;
        if let Some(at) = r.revoked {
            return Err(CredentialError::AlreadyRevoked(identity.to_string(), at));
        }
        tx.execute(
            &format!("UPDATE {TABLE} SET revoked = ?2, revoked_unix = ?3 WHERE psk_identity = ?1"),
            params![identity, ts_text(now), now],
        )?;
        let info = Self::row_in(&tx, identity)?
            .ok_or_else(|| CredentialError::NotFound(identity.to_string()))?
            .info(now)?;
        tx.commit()?;
        Ok(info)
    }

    /// The opened credential for a handshake with `identity`, if it exists and is usable at
    /// `now` (not revoked, not expired).
    pub fn get_for_handshake(
        &self,
        identity: &str,
        now: i64,
    ) -> Result<Option<HandshakeCredential>, CredentialError> {
        match Self::row_in(&self.conn, identity)? {
            Some(r) if r.state(now) == State::Active => Ok(Some(r.open(&self.sealer)?)),
            _ => Ok(None),
        }
    }

    /// Every usable credential at `now`, opened.
    pub fn active(&self, now: i64) -> Result<Vec<HandshakeCredential>, CredentialError> {
        Ok(self.snapshot(now)?.active)
    }

    /// Every row at `now`: usable credentials opened, the other identities listed as refused.
    /// A row whose key does not open (wrong KEK, a tampered or moved sealed key) is refused
    /// and logged, so one bad row does not take the others down.
    pub fn snapshot(&self, now: i64) -> Result<Snapshot, CredentialError> {
        let mut s = Snapshot::default();
        for r in self.rows()? {
            if r.state(now) != State::Active {
                s.refused.push(r.identity);
                continue;
            }
            match r.open(&self.sealer) {
                Ok(c) => s.active.push(c),
                Err(e) => {
                    tracing::error!(identity = %r.identity, error = %e, "stored credential unusable");
                    s.refused.push(r.identity);
                }
            }
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn new(id: &str, key: &[u8]) -> NewCredential {
        NewCredential {
            identity: id.parse().unwrap(),
            key: Zeroizing::new(key.to_vec()),
            ida: None,
            expires: None,
            label: None,
        }
    }

    fn ok() -> Result<(), CredentialError> {
        Ok(())
    }

    #[test]
    fn add_list_revoke_and_handshake_lookup() {
        let d = tempfile::tempdir().unwrap();
        let mut s = CredentialStore::open(d.path()).unwrap();
        let mut c = new("ae-1@mef.example", &[7; 32]);
        c.ida = Some(("Clight".into(), Registree::Ae));
        c.label = Some("kitchen light".into());
        c.expires = Some(Timestamp::from_unix(NOW + 3600).unwrap());
        let info = s.add(&c, AddOptions::default(), NOW, ok).unwrap();
        assert_eq!(info.credential_id, "12-ae-1@mef.example");
        assert_eq!(info.state, State::Active);
        assert_eq!(info.ida.as_deref(), Some("Clight"));

        let h = s
            .get_for_handshake("ae-1@mef.example", NOW)
            .unwrap()
            .unwrap();
        assert_eq!(&h.key[..], &[7; 32]);
        assert_eq!(
            h.bound,
            Some(BoundIdentity::Ae(vec!["Clight".parse().unwrap()]))
        );
        // Expired: not usable for a handshake, listed as expired.
        assert!(s
            .get_for_handshake("ae-1@mef.example", NOW + 3600)
            .unwrap()
            .is_none());
        assert_eq!(s.list(NOW + 3600).unwrap()[0].state, State::Expired);

        // Listing never carries key material.
        let json = serde_json::to_string(&s.list(NOW).unwrap()).unwrap();
        assert!(!json.contains(&hex::encode([7u8; 32])), "{json}");

        assert!(matches!(
            s.add(&c, AddOptions::default(), NOW, ok),
            Err(CredentialError::Exists(_))
        ));
        let r = s.revoke("ae-1@mef.example", NOW + 10).unwrap();
        assert_eq!(r.state, State::Revoked);
        assert_eq!(r.revoked.as_deref(), Some("20270115T080010"));
        assert!(s
            .get_for_handshake("ae-1@mef.example", NOW + 20)
            .unwrap()
            .is_none());
        assert!(matches!(
            s.revoke("ae-1@mef.example", NOW + 20),
            Err(CredentialError::AlreadyRevoked(..))
        ));
        assert!(matches!(
            s.revoke("nobody@mef.example", NOW),
            Err(CredentialError::NotFound(_))
        ));
        let snap = s.snapshot(NOW + 20).unwrap();
        assert!(snap.active.is_empty());
        assert_eq!(snap.refused, vec!["ae-1@mef.example".to_string()]);

        // Re-adding a revoked identity needs the explicit replace.
        let c2 = new("ae-1@mef.example", &[8; 32]);
        assert!(matches!(
            s.add(&c2, AddOptions::default(), NOW + 30, ok),
            Err(CredentialError::Revoked(..))
        ));
        s.add(
            &c2,
            AddOptions {
                replace_revoked: true,
            },
            NOW + 30,
            ok,
        )
        .unwrap();
        let h = s
            .get_for_handshake("ae-1@mef.example", NOW + 40)
            .unwrap()
            .unwrap();
        assert_eq!(&h.key[..], &[8; 32]);
        assert_eq!(h.bound, None);
    }

    #[test]
    fn bad_inputs_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let mut s = CredentialStore::open(d.path()).unwrap();
        assert!(parse_identity("no-at-sign").is_err());
        assert!(parse_identity("a@MEF.example").is_err());
        assert!(parse_identity("a b@mef.example").is_err());
        assert!(s
            .add(
                &new("a@mef.example", &[1; 8]),
                AddOptions::default(),
                NOW,
                ok
            )
            .is_err());
        let mut c = new("a@mef.example", &[1; 16]);
        c.expires = Some(Timestamp::from_unix(NOW - 1).unwrap());
        assert!(s.add(&c, AddOptions::default(), NOW, ok).is_err());
        let mut c = new("a@mef.example", &[1; 16]);
        c.ida = Some(("not a cse".into(), Registree::Cse));
        assert!(s.add(&c, AddOptions::default(), NOW, ok).is_err());
        // A failing before_commit hook rolls the row back.
        let c = new("a@mef.example", &[1; 16]);
        assert!(s
            .add(&c, AddOptions::default(), NOW, || Err(
                CredentialError::Invalid("x".into())
            ))
            .is_err());
        assert!(s.list(NOW).unwrap().is_empty());
    }

    #[test]
    fn keys_rest_sealed_and_bound_to_their_row() {
        let d = tempfile::tempdir().unwrap();
        let key = [0x5a_u8; 32];
        {
            let mut s = CredentialStore::open(d.path()).unwrap();
            s.add(&new("a@mef.example", &key), AddOptions::default(), NOW, ok)
                .unwrap();
            s.add(
                &new("b@mef.example", &[0x33; 32]),
                AddOptions::default(),
                NOW,
                ok,
            )
            .unwrap();
        }
        // The KEK file is private.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let m = std::fs::metadata(d.path().join(KEK_FILE)).unwrap();
            assert_eq!(m.permissions().mode() & 0o777, 0o600);
        }
        let conn = Connection::open(d.path().join(crate::store::DB_FILE)).unwrap();
        let sealed: Vec<u8> = conn
            .query_row(
                "SELECT sealed_key FROM psk_credentials WHERE psk_identity = 'a@mef.example'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(!sealed.windows(key.len()).any(|w| w == key));
        // Move a's sealed key into b's row: b no longer opens (AAD = table/identity).
        conn.execute(
            "UPDATE psk_credentials SET sealed_key = ?1 WHERE psk_identity = 'b@mef.example'",
            [&sealed],
        )
        .unwrap();
        let s = CredentialStore::open(d.path()).unwrap();
        assert!(s.get_for_handshake("b@mef.example", NOW).is_err());
        let snap = s.snapshot(NOW).unwrap();
        assert_eq!(snap.active.len(), 1);
        assert_eq!(snap.refused, vec!["b@mef.example".to_string()]);
        // A missing KEK is not silently replaced while sealed keys exist…
        let kek = std::fs::read(d.path().join(KEK_FILE)).unwrap();
        std::fs::remove_file(d.path().join(KEK_FILE)).unwrap();
        assert!(CredentialStore::open(d.path()).is_err());
        // …and another KEK opens nothing.
        keystore::write_secret_file(
            &d.path().join(KEK_FILE),
            hex::encode([0x11u8; 32]).as_bytes(),
        )
        .unwrap();
        let s = CredentialStore::open(d.path()).unwrap();
        assert!(s.get_for_handshake("a@mef.example", NOW).is_err());
        keystore::write_secret_file(&d.path().join(KEK_FILE), &kek).unwrap();
        let s = CredentialStore::open(d.path()).unwrap();
        assert!(s.get_for_handshake("a@mef.example", NOW).unwrap().is_some());
    }

    #[test]
    fn version_1_database_is_migrated_in_place() {
        let d = tempfile::tempdir().unwrap();
        {
            let c = Connection::open(d.path().join(crate::store::DB_FILE)).unwrap();
            c.execute_batch(
                "CREATE TABLE schema_version (version INTEGER NOT NULL);
                 INSERT INTO schema_version VALUES (1);
                 CREATE TABLE credential_bindings (credential_id TEXT PRIMARY KEY NOT NULL,
                                                   ae_id TEXT NOT NULL);
                 INSERT INTO credential_bindings VALUES ('12-a@mef.example', 'Ca');",
            )
            .unwrap();
        }
        let store = crate::store::SqliteStore::open(d.path()).unwrap();
        assert_eq!(
            store.schema_version().unwrap(),
            crate::store::SCHEMA_VERSION
        );
        drop(store);
        let mut s = CredentialStore::open(d.path()).unwrap();
        s.add(
            &new("a@mef.example", &[1; 16]),
            AddOptions::default(),
            NOW,
            ok,
        )
        .unwrap();
        let c = Connection::open(d.path().join(crate::store::DB_FILE)).unwrap();
        let n: i64 = c
            .query_row("SELECT count(*) FROM credential_bindings", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1, "existing rows survive the migration");
    }

    #[test]
    fn data_version_moves_when_another_connection_writes() {
        let d = tempfile::tempdir().unwrap();
        let watcher = CredentialStore::open(d.path()).unwrap();
        let v0 = watcher.data_version().unwrap();
        let mut cli = CredentialStore::open(d.path()).unwrap();
        cli.add(
            &new("a@mef.example", &[1; 16]),
            AddOptions::default(),
            NOW,
            ok,
        )
        .unwrap();
        assert_ne!(watcher.data_version().unwrap(), v0);
        assert_eq!(watcher.active(NOW).unwrap().len(), 1);
        // The change counter moves with credential writes only.
        let c1 = watcher.change_counter().unwrap();
        cli.revoke("a@mef.example", NOW).unwrap();
        let c2 = watcher.change_counter().unwrap();
        assert!(c2 > c1);
        let mut store = crate::store::SqliteStore::open(d.path()).unwrap();
        let v1 = watcher.data_version().unwrap();
        let mut tx = crate::store::Store::begin(&mut store).unwrap();
        tx.bind("12-y@mef.example", "Cy").unwrap();
        tx.commit().unwrap();
        assert_ne!(watcher.data_version().unwrap(), v1);
        assert_eq!(watcher.change_counter().unwrap(), c2);
    }
}
