//! The MEF's durable state in SQLite (`DATA_DIR/mef.sqlite3`, WAL, `synchronous=FULL`): the
//! devices provisioned with a Kpm (TS-0003 §8.3.2.1 step 1–2, Bootstrap Credential and
//! Instruction Configuration), their enrolments (Ke, KeID, Enrolment Expiry, the IBC identity
//! issued), the MEF Client registrations and key registrations (§8.3.5), and the PKG's KMS
//! secret. Every secret is sealed under the data directory's KEK (`DATA_DIR/kek`, 0600), or
//! inside a PKCS#11 token by its AES key [`KEK_LABEL`] ([`MefStore::open_in`]), with the
//! record's table and key as associated data.
//!
//! A device has at most one enrolment (primary key `kpm_id`): re-enrolment replaces the
//! previous one in the same transaction, so a crash leaves either the old or the new enrolment,
//! never both and never a half of one. Each device carries an enrolment generation, moved by
//! every commit, de-registration and revocation: an exchange commits only if the generation is
//! still the one it saw at its bootstrap, so of two overlapping exchanges of one device exactly
//! one commits (issue 9 item 9).
//!
//! Every change that makes a KeID valid or invalid, or revokes a device, is appended to a
//! change feed (`changes`, a monotonic sequence number per row) that the Enrolment Targets
//! follow with a cursor ([`MefStore::changes_after`]), so a revocation reaches them in seconds
//! without a listing of the devices. Rows older than [`CHANGE_RETENTION_SECS`] are pruned; a
//! cursor from before the pruned range is told to start over (`reset`).

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde::{Deserialize, Serialize};

use m2msec_core::ids::{EnroleeId, Fqdn, IdError, KeId, RelKeyId, TargetId};
use m2msec_core::secret::{Ke, Kpm};
use m2msec_keystore::{Sealer, SecureEnvironment};

/// Schema version written and read (2: enrolment generation, change feed, Enrolee-ID index;
/// a version 1 store is migrated on open).
pub const SCHEMA_VERSION: i64 = 2;
/// How long the change feed keeps a row (seconds): a target that has not followed the feed for
/// longer starts over.
pub const CHANGE_RETENTION_SECS: i64 = 86_400;
/// Database file name in the data directory.
pub const DB_FILE: &str = "mef.sqlite3";
/// KEK file name in the data directory.
pub const KEK_FILE: &str = "kek";
/// `CKA_LABEL` of the MEF's KEK in a PKCS#11 token ([`MefStore::open_in`]).
pub const KEK_LABEL: &str = "m2msec/mef/kek";
/// `CKA_LABEL` of the PKG service's KEK (its store seals the KSAK).
pub const PKG_KEK_LABEL: &str = "m2msec/pkg/kek";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS devices (
    kpm_id          TEXT PRIMARY KEY NOT NULL,
    kpm             BLOB NOT NULL,
    enrolee_id      TEXT NOT NULL,
    targets         TEXT NOT NULL,
    enrolment_secs  INTEGER NOT NULL,
    created         INTEGER NOT NULL,
    revoked         INTEGER,
    enrol_gen       INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS enrolments (
    kpm_id      TEXT PRIMARY KEY NOT NULL REFERENCES devices (kpm_id) ON DELETE CASCADE,
    ke_id       TEXT NOT NULL UNIQUE,
    ke          BLOB NOT NULL,
    enrolee_id  TEXT NOT NULL,
    reg_id      TEXT NOT NULL,
    admin_fqdn  TEXT NOT NULL,
    labels      TEXT,
    reg_expires INTEGER NOT NULL,
    id2         TEXT,
    expires     INTEGER NOT NULL,
    created     INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS key_regs (
    rel_key_id    TEXT PRIMARY KEY NOT NULL,
    source_client TEXT NOT NULL,
    kpm_id        TEXT REFERENCES devices (kpm_id) ON DELETE CASCADE,
    suid          INTEGER NOT NULL,
    target_ids    TEXT NOT NULL,
    labels        TEXT,
    admin_fqdn    TEXT NOT NULL,
    key           BLOB NOT NULL,
    expires       INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS pkg (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    ksak BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS changes (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    kind         TEXT NOT NULL,
    kpm_id       TEXT NOT NULL,
    enrolee_id   TEXT NOT NULL,
    targets      TEXT NOT NULL,
    ke_id        TEXT,
    ended_ke_id  TEXT,
    at           INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS changes_at ON changes (at);
CREATE TABLE IF NOT EXISTS feed_meta (
    id              INTEGER PRIMARY KEY CHECK (id = 1),
    pruned_through  INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS devices_version (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    version  INTEGER NOT NULL
);
INSERT OR IGNORE INTO devices_version (id, version) VALUES (1, 0);
CREATE TRIGGER IF NOT EXISTS devices_version_insert AFTER INSERT ON devices
    BEGIN UPDATE devices_version SET version = version + 1; END;
CREATE TRIGGER IF NOT EXISTS devices_version_update AFTER UPDATE OF kpm, enrolee_id, revoked ON devices
    BEGIN UPDATE devices_version SET version = version + 1; END;
CREATE TRIGGER IF NOT EXISTS devices_version_delete AFTER DELETE ON devices
    BEGIN UPDATE devices_version SET version = version + 1; END;
";

/// Version 1 → 2 (the tables and indexes new in 2 are created by [`SCHEMA`]).
const MIGRATE_1_2: &str = "ALTER TABLE devices ADD COLUMN enrol_gen INTEGER NOT NULL DEFAULT 0;";

/// Created after any migration (they name columns a version 1 store lacks).
const INDEXES: &str = "CREATE INDEX IF NOT EXISTS devices_enrolee ON devices (enrolee_id);";

/// Store failures.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite.
    #[error("database: {0}")]
    Db(#[source] rusqlite::Error),
    /// Keystore (KEK file, sealing).
    #[error("keystore: {0}")]
    Keystore(#[from] m2msec_keystore::KeystoreError),
    /// A row that does not decode.
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// A stored identifier that does not parse as its `core::ids` type (issue 10 item 6).
    #[error("corrupt row: {column}: {source}")]
    CorruptId {
        /// `table.column`.
        column: &'static str,
        /// Why the value is not an identifier of that kind.
        #[source]
        source: IdError,
    },
    /// A stored JSON list (targets, labels) that does not parse.
    #[error("corrupt row: {column}: {source}")]
    CorruptJson {
        /// `table.column`.
        column: &'static str,
        /// The JSON (or identifier) error.
        #[source]
        source: serde_json::Error,
    },
    /// A stored key of the wrong length.
    #[error("corrupt key: {0}")]
    KeyLength(#[from] m2msec_core::secret::SecretLengthError),
    /// Unknown schema version.
    #[error("unsupported schema version {0}")]
    SchemaVersion(i64),
    /// Filesystem.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

/// SQLite errors, except the conversion failures raised by [`id_col`] and [`json_col`] inside a
/// row closure, which carry the typed [`StoreError`] out of rusqlite.
impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        match e {
            rusqlite::Error::FromSqlConversionFailure(i, t, b) => {
                match b.downcast::<StoreError>() {
                    Ok(s) => *s,
                    Err(b) => StoreError::Db(rusqlite::Error::FromSqlConversionFailure(i, t, b)),
                }
            }
            e => StoreError::Db(e),
        }
    }
}

/// A typed store error raised inside a rusqlite row closure (see the `From` impl above).
fn in_row(idx: usize, e: StoreError) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Text, Box::new(e))
}

/// Column `idx` (`column` = `table.column`) as an identifier: text that does not parse is a
/// [`StoreError::CorruptId`], never a panic nor a default.
fn id_col<T: FromStr<Err = IdError>>(
    r: &rusqlite::Row<'_>,
    idx: usize,
    column: &'static str,
) -> rusqlite::Result<T> {
    let s: String = r.get(idx)?;
    s.parse()
        .map_err(|source| in_row(idx, StoreError::CorruptId { column, source }))
}

/// [`id_col`] of a nullable column.
fn opt_id_col<T: FromStr<Err = IdError>>(
    r: &rusqlite::Row<'_>,
    idx: usize,
    column: &'static str,
) -> rusqlite::Result<Option<T>> {
    let s: Option<String> = r.get(idx)?;
    s.map(|s| {
        s.parse()
            .map_err(|source| in_row(idx, StoreError::CorruptId { column, source }))
    })
    .transpose()
}

/// Column `idx` as JSON (a list of identifiers parses each one): [`StoreError::CorruptJson`]
/// when it does not parse.
fn json_col<T: serde::de::DeserializeOwned>(
    r: &rusqlite::Row<'_>,
    idx: usize,
    column: &'static str,
) -> rusqlite::Result<T> {
    let s: String = r.get(idx)?;
    parse_json(&s, column).map_err(|e| in_row(idx, e))
}

/// [`json_col`] of a nullable column.
fn opt_json_col<T: serde::de::DeserializeOwned>(
    r: &rusqlite::Row<'_>,
    idx: usize,
    column: &'static str,
) -> rusqlite::Result<Option<T>> {
    let s: Option<String> = r.get(idx)?;
    s.map(|s| parse_json(&s, column).map_err(|e| in_row(idx, e)))
        .transpose()
}

fn parse_json<T: serde::de::DeserializeOwned>(
    s: &str,
    column: &'static str,
) -> Result<T, StoreError> {
    serde_json::from_str(s).map_err(|source| StoreError::CorruptJson { column, source })
}

/// A provisioned device (bootstrap credential and instructions, TS-0003 tables 9.2.1.1-1,
/// 9.2.2.1-1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    /// KpmID (BRIEF A5: `relKeyID@MEF-FQDN`), or `cert:<identity>` for a device that
    /// bootstraps with a certificate ([`crate::endpoint::CERT_DEVICE_PREFIX`]).
    pub kpm_id: String,
    /// The Enrolee-ID assigned to the device (its AE-ID or CSE-ID).
    pub enrolee_id: EnroleeId,
    /// Enrolment Targets: absolute CSE-IDs/AE-IDs (or MAF FQDNs) that may fetch its keys.
    pub targets: Vec<TargetId>,
    /// Enrolment Expiry: Ke lifetime in seconds (TS-0003 §10.7).
    pub enrolment_secs: u64,
    /// Unix time of provisioning.
    pub created: i64,
    /// Unix time of revocation.
    pub revoked: Option<i64>,
}

/// A committed enrolment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enrolment {
    /// KpmID of the device.
    pub kpm_id: String,
    /// KeID (lowercase hex@FQDN).
    pub ke_id: KeId,
    /// The Enrolee-ID.
    pub enrolee_id: EnroleeId,
    /// MEFClientRegID of the exchange.
    pub reg_id: String,
    /// ID2 issued, if IBC enrolment ran.
    pub id2: Option<String>,
    /// Enrolment Expiry (unix seconds).
    pub expires: i64,
}

/// A committed MEF Client registration (TS-0003 §8.3.5.2.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// MEFClientRegID.
    pub reg_id: String,
    /// adminFQDN.
    pub admin_fqdn: Fqdn,
    /// Labels.
    pub labels: Option<Vec<String>>,
    /// Registration expiry (unix seconds).
    pub expires: i64,
}

/// A key registration (TS-0003 §8.3.5.2.7).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRegRow {
    /// RelativeKeyID.
    pub rel_key_id: RelKeyId,
    /// Source MEF Client ID.
    pub source_client: EnroleeId,
    /// KpmID of the registering device, when a device registered it.
    pub kpm_id: Option<String>,
    /// SUID.
    pub suid: u8,
    /// targetIDs.
    pub target_ids: Vec<TargetId>,
    /// Labels.
    pub labels: Option<Vec<String>>,
    /// adminFQDN.
    pub admin_fqdn: Fqdn,
    /// Expiry (unix seconds).
    pub expires: i64,
}

/// What a change-feed row records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ChangeKind {
    /// An enrolment committed: `ke_id` is valid from now on; `ended_ke_id`, the device's
    /// previous KeID, if any, no longer is.
    Enrolled,
    /// MEF Client De-registration: `ended_ke_id` is no longer valid.
    Deregistered,
    /// The device was revoked: `ended_ke_id` (if it was enrolled) is no longer valid and its
    /// Enrolee-ID is no longer provisioned.
    Revoked,
}

impl ChangeKind {
    fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Enrolled => "enrolled",
            ChangeKind::Deregistered => "deregistered",
            ChangeKind::Revoked => "revoked",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "enrolled" => Some(ChangeKind::Enrolled),
            "deregistered" => Some(ChangeKind::Deregistered),
            "revoked" => Some(ChangeKind::Revoked),
            _ => None,
        }
    }
}

/// One row of the change feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Sequence number (monotonic).
    pub seq: i64,
    /// What happened.
    pub kind: ChangeKind,
    /// The device.
    pub kpm_id: String,
    /// Its Enrolee-ID.
    pub enrolee_id: EnroleeId,
    /// Its Enrolment Targets at the time.
    pub targets: Vec<TargetId>,
    /// The KeID that became valid.
    pub ke_id: Option<KeId>,
    /// The KeID that stopped being valid.
    pub ended_ke_id: Option<KeId>,
    /// Unix time.
    pub at: i64,
}

/// A page of the change feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangePage {
    /// The rows after the cursor (those of the requested target only, when one was given).
    pub changes: Vec<Change>,
    /// The cursor for the next page: the last sequence number looked at.
    pub next: i64,
    /// More rows follow `next`.
    pub more: bool,
    /// The cursor was from before the pruned part of the feed (or beyond its end, a store
    /// restored from an older copy): the reader must forget everything it learned from the MEF
    /// and go on from `next`.
    pub reset: bool,
}

/// Outcome of committing an enrolment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitOutcome {
    /// Committed; the device's enrolment generation is now the given one.
    Committed(i64),
    /// The device's enrolment generation moved since the exchange began (another exchange
    /// committed, or the device was de-registered): nothing was written.
    Superseded,
}

/// Secret bytes opened from the store.
pub type SecretBytes = zeroize::Zeroizing<Vec<u8>>;

/// Outcome of adding a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddOutcome {
    /// New row.
    Added,
    /// The same device (same KpmID, key and instructions) was already there: nothing changed.
    Unchanged,
    /// The KpmID exists with other data: refused.
    Conflict,
}

/// The MEF store.
pub struct MefStore {
    conn: Connection,
    sealer: Sealer,
}

impl std::fmt::Debug for MefStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MefStore").finish_non_exhaustive()
    }
}

fn aad(table: &str, key: &str) -> Vec<u8> {
    format!("m2msec-mef/{table}/{key}").into_bytes()
}

fn json<T: Serialize + ?Sized>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

impl MefStore {
    /// Opens (creating) `DATA_DIR/mef.sqlite3` and the KEK `DATA_DIR/kek`.
    pub fn open(data_dir: &Path) -> Result<MefStore, StoreError> {
        Self::open_in(data_dir, &SecureEnvironment::Files)
    }

    /// Opens (creating) `DATA_DIR/mef.sqlite3` with its records sealed in the secure
    /// environment `se` (TS-0003 §6.3.1): the KEK file `DATA_DIR/kek`, or the token's AES key
    /// [`KEK_LABEL`] (generated in the token on first use). Device Kpm, enrolment Ke, key
    /// registrations and the PKG's KSAK are all sealed by it.
    pub fn open_in(data_dir: &Path, se: &SecureEnvironment) -> Result<MefStore, StoreError> {
        Self::open_labelled(data_dir, se, KEK_LABEL)
    }

    /// As [`MefStore::open_in`] with the token key labelled `key_label` (the PKG service's
    /// store uses [`PKG_KEK_LABEL`], so that a MEF and a PKG may share one token).
    pub fn open_labelled(
        data_dir: &Path,
        se: &SecureEnvironment,
        key_label: &str,
    ) -> Result<MefStore, StoreError> {
        m2msec_keystore::private_dir(data_dir)?;
        m2msec_keystore::private_db_file(&data_dir.join(DB_FILE))?;
        let conn = Connection::open(data_dir.join(DB_FILE))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        // A token key is generated only for a store without sealed rows: a new key would
        // orphan every device (the file KEK keeps its behaviour of today).
        let sealed_rows: i64 = conn.query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'devices'",
            [],
            |r| r.get(0),
        )?;
        let sealed_rows = if sealed_rows > 0 {
            conn.query_row("SELECT count(*) FROM devices", [], |r| r.get::<_, i64>(0))?
        } else {
            0
        };
        let kek = data_dir.join(KEK_FILE);
        let sealer = match se {
            SecureEnvironment::Pkcs11 { .. } if sealed_rows > 0 => {
                se.existing_sealer(&kek, key_label)?
            }
            _ => se.sealer(&kek, key_label)?,
        };
        Self::init(conn, sealer)
    }

    /// An in-memory store with a given KEK (tests).
    pub fn open_in_memory(kek: m2msec_keystore::Kek) -> Result<MefStore, StoreError> {
        Self::init(Connection::open_in_memory()?, Sealer::new(kek))
    }

    fn init(mut conn: Connection, sealer: Sealer) -> Result<MefStore, StoreError> {
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(Duration::from_secs(10))?;
        conn.execute_batch(SCHEMA)?;
        // Version check and migration in one write transaction, so two processes opening the
        // same store (the server and an operator command) migrate it once.
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let v: Option<i64> = tx
            .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
            .optional()?;
        match v {
            None => {
                tx.execute(
                    "INSERT INTO schema_version (version) VALUES (?1)",
                    [SCHEMA_VERSION],
                )?;
            }
            Some(1) => {
                tx.execute_batch(MIGRATE_1_2)?;
                tx.execute("UPDATE schema_version SET version = ?1", [SCHEMA_VERSION])?;
            }
            Some(SCHEMA_VERSION) => {}
            Some(other) => return Err(StoreError::SchemaVersion(other)),
        }
        tx.execute_batch(INDEXES)?;
        tx.commit()?;
        Ok(MefStore { conn, sealer })
    }

    fn open_sealed(&self, table: &str, key: &str, sealed: &[u8]) -> Result<Vec<u8>, StoreError> {
        Ok(self.sealer.open(&aad(table, key), sealed)?.to_vec())
    }

    // ----- devices -----------------------------------------------------------------------

    /// Adds a device; idempotent for an identical row (see [`AddOutcome`]).
    pub fn add_device(&mut self, d: &Device, kpm: &Kpm) -> Result<AddOutcome, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let out = Self::add_device_tx(&tx, &self.sealer, d, kpm)?;
        tx.commit()?;
        Ok(out)
    }

    /// Adds many devices in one transaction per call; returns one outcome per device.
    pub fn add_devices(&mut self, rows: &[(Device, Kpm)]) -> Result<Vec<AddOutcome>, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut out = Vec::with_capacity(rows.len());
        for (d, kpm) in rows {
            out.push(Self::add_device_tx(&tx, &self.sealer, d, kpm)?);
        }
        tx.commit()?;
        Ok(out)
    }

    fn add_device_tx(
        tx: &rusqlite::Transaction<'_>,
        sealer: &Sealer,
        d: &Device,
        kpm: &Kpm,
    ) -> Result<AddOutcome, StoreError> {
        type Row = (Vec<u8>, String, String, i64, Option<i64>);
        // Cached statements: a bulk import runs these once per row.
        let existing: Option<Row> = tx
            .prepare_cached(
                "SELECT kpm, enrolee_id, targets, enrolment_secs, revoked FROM devices WHERE kpm_id = ?1",
            )?
            .query_row([&d.kpm_id], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .optional()?;
        if let Some((sealed, enrolee, targets, secs, revoked)) = existing {
            let same_key = sealer
                .open(&aad("devices", &d.kpm_id), &sealed)
                .map(|k| Kpm::from_bytes(&k).ok().as_ref() == Some(kpm))
                .unwrap_or(false);
            let same = same_key
                && enrolee == d.enrolee_id.to_string()
                && targets == json(&d.targets)
                && secs == d.enrolment_secs as i64
                && revoked.is_none();
            return Ok(if same {
                AddOutcome::Unchanged
            } else {
                AddOutcome::Conflict
            });
        }
        let sealed = sealer.seal(&aad("devices", &d.kpm_id), kpm.expose_secret())?;
        tx.prepare_cached(
            "INSERT INTO devices (kpm_id, kpm, enrolee_id, targets, enrolment_secs, created) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![
            d.kpm_id,
            sealed,
            d.enrolee_id.to_string(),
            json(&d.targets),
            d.enrolment_secs as i64,
            d.created
        ])?;
        Ok(AddOutcome::Added)
    }

    /// A device and its Kpm (None if unknown).
    pub fn device(&self, kpm_id: &str) -> Result<Option<(Device, Kpm)>, StoreError> {
        let row: Option<(Vec<u8>, Device)> = self
            .conn
            .query_row(
                "SELECT kpm, enrolee_id, targets, enrolment_secs, created, revoked FROM devices WHERE kpm_id = ?1",
                [kpm_id],
                |r| {
                    Ok((
                        r.get(0)?,
                        Device {
                            kpm_id: kpm_id.to_string(),
                            enrolee_id: id_col(r, 1, "devices.enrolee_id")?,
                            targets: json_col(r, 2, "devices.targets")?,
                            enrolment_secs: r.get::<_, i64>(3)?.max(0) as u64,
                            created: r.get(4)?,
                            revoked: r.get(5)?,
                        },
                    ))
                },
            )
            .optional()?;
        let Some((sealed, d)) = row else {
            return Ok(None);
        };
        let raw = self.open_sealed("devices", kpm_id, &sealed)?;
        let kpm = Kpm::from_bytes(&raw)?;
        Ok(Some((d, kpm)))
    }

    /// `PRAGMA data_version`: moves when another connection commits (any table). The MEF's
    /// PSK table watcher reads it first, then [`MefStore::devices_version`].
    pub fn data_version(&self) -> Result<i64, StoreError> {
        Ok(self
            .conn
            .query_row("PRAGMA data_version", [], |r| r.get(0))?)
    }

    /// A counter bumped by triggers on every insert, delete, and change of a device's key,
    /// Enrolee-ID or revocation, whoever makes it (the server, `m2msec mef device`, another
    /// process): enrolment commits leave it alone, so they cause no reload of the PSK table.
    pub fn devices_version(&self) -> Result<i64, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT version FROM devices_version", [], |r| r.get(0))?)
    }

    /// Every non-revoked device's KpmID, Enrolee-ID and Kpm (unsealed): what the bootstrap
    /// handshake's PSK lookup serves (TS-0003 §8.3.2.1 step 1).
    pub fn active_device_keys(&self) -> Result<Vec<(String, EnroleeId, Kpm)>, StoreError> {
        let mut st = self
            .conn
            .prepare("SELECT kpm_id, enrolee_id, kpm FROM devices WHERE revoked IS NULL")?;
        let rows = st.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                id_col::<EnroleeId>(r, 1, "devices.enrolee_id")?,
                zeroize::Zeroizing::new(r.get::<_, Vec<u8>>(2)?),
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (kpm_id, enrolee_id, sealed) = row?;
            let raw = zeroize::Zeroizing::new(self.open_sealed("devices", &kpm_id, &sealed)?);
            let kpm = Kpm::from_bytes(&raw)?;
            out.push((kpm_id, enrolee_id, kpm));
        }
        Ok(out)
    }

    /// Devices in KpmID order after `after`, at most `limit` (for listing).
    pub fn devices(&self, after: Option<&str>, limit: usize) -> Result<Vec<Device>, StoreError> {
        let mut st = self.conn.prepare(
            "SELECT kpm_id, enrolee_id, targets, enrolment_secs, created, revoked FROM devices \
             WHERE kpm_id > ?1 ORDER BY kpm_id LIMIT ?2",
        )?;
        let rows = st.query_map(params![after.unwrap_or(""), limit as i64], |r| {
            Ok(Device {
                kpm_id: r.get(0)?,
                enrolee_id: id_col(r, 1, "devices.enrolee_id")?,
                targets: json_col(r, 2, "devices.targets")?,
                enrolment_secs: r.get::<_, i64>(3)?.max(0) as u64,
                created: r.get(4)?,
                revoked: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Devices in KpmID order after `after`, at most `limit`, each with its committed enrolment
    /// if any: one query per page, and no key material is read or opened (operator listings).
    pub fn devices_with_enrolments(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(Device, Option<Enrolment>)>, StoreError> {
        let mut st = self.conn.prepare(
            "SELECT d.kpm_id, d.enrolee_id, d.targets, d.enrolment_secs, d.created, d.revoked, \
             e.ke_id, e.enrolee_id, e.reg_id, e.id2, e.expires \
             FROM devices d LEFT JOIN enrolments e ON e.kpm_id = d.kpm_id \
             WHERE d.kpm_id > ?1 ORDER BY d.kpm_id LIMIT ?2",
        )?;
        let rows = st.query_map(params![after.unwrap_or(""), limit as i64], |r| {
            let kpm_id: String = r.get(0)?;
            let ke_id: Option<KeId> = opt_id_col(r, 6, "enrolments.ke_id")?;
            let enrolment = match ke_id {
                Some(ke_id) => Some(Enrolment {
                    kpm_id: kpm_id.clone(),
                    ke_id,
                    enrolee_id: id_col(r, 7, "enrolments.enrolee_id")?,
                    reg_id: r.get(8)?,
                    id2: r.get(9)?,
                    expires: r.get(10)?,
                }),
                None => None,
            };
            Ok((
                Device {
                    kpm_id,
                    enrolee_id: id_col(r, 1, "devices.enrolee_id")?,
                    targets: json_col(r, 2, "devices.targets")?,
                    enrolment_secs: r.get::<_, i64>(3)?.max(0) as u64,
                    created: r.get(4)?,
                    revoked: r.get(5)?,
                },
                enrolment,
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Revokes a device: marks it, deletes its enrolment and key registrations, moves its
    /// enrolment generation and appends a [`ChangeKind::Revoked`] row to the change feed (one
    /// transaction). False if unknown or already revoked.
    pub fn revoke_device(&mut self, kpm_id: &str, now: i64) -> Result<bool, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let n = tx.execute(
            "UPDATE devices SET revoked = ?2, enrol_gen = enrol_gen + 1 \
             WHERE kpm_id = ?1 AND revoked IS NULL",
            params![kpm_id, now],
        )?;
        if n == 1 {
            let ended = Self::current_ke_id(&tx, kpm_id)?;
            Self::record_change(
                &tx,
                ChangeKind::Revoked,
                kpm_id,
                None,
                ended.as_deref(),
                now,
            )?;
        }
        tx.execute("DELETE FROM enrolments WHERE kpm_id = ?1", [kpm_id])?;
        tx.execute("DELETE FROM key_regs WHERE kpm_id = ?1", [kpm_id])?;
        tx.commit()?;
        Ok(n == 1)
    }

    /// The device's enrolment generation (None if unknown): an exchange reads it at its
    /// bootstrap and commits only if it has not moved ([`MefStore::commit_enrolment`]).
    pub fn enrol_gen(&self, kpm_id: &str) -> Result<Option<i64>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT enrol_gen FROM devices WHERE kpm_id = ?1",
                [kpm_id],
                |r| r.get(0),
            )
            .optional()?)
    }

    fn current_ke_id(
        tx: &rusqlite::Transaction<'_>,
        kpm_id: &str,
    ) -> Result<Option<String>, StoreError> {
        Ok(tx
            .query_row(
                "SELECT ke_id FROM enrolments WHERE kpm_id = ?1",
                [kpm_id],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Appends a row to the change feed (inside the transaction that makes the change) and
    /// prunes the rows older than [`CHANGE_RETENTION_SECS`].
    fn record_change(
        tx: &rusqlite::Transaction<'_>,
        kind: ChangeKind,
        kpm_id: &str,
        ke_id: Option<&str>,
        ended_ke_id: Option<&str>,
        now: i64,
    ) -> Result<(), StoreError> {
        tx.prepare_cached(
            "INSERT INTO changes (kind, kpm_id, enrolee_id, targets, ke_id, ended_ke_id, at) \
             SELECT ?2, kpm_id, enrolee_id, targets, ?3, ?4, ?5 FROM devices WHERE kpm_id = ?1",
        )?
        .execute(params![kpm_id, kind.as_str(), ke_id, ended_ke_id, now])?;
        let old: Option<i64> = tx
            .prepare_cached("SELECT MAX(seq) FROM changes WHERE at < ?1")?
            .query_row([now.saturating_sub(CHANGE_RETENTION_SECS)], |r| r.get(0))?;
        if let Some(through) = old {
            tx.execute("DELETE FROM changes WHERE seq <= ?1", [through])?;
            tx.execute(
                "INSERT INTO feed_meta (id, pruned_through) VALUES (1, ?1) \
                 ON CONFLICT (id) DO UPDATE SET pruned_through = MAX(pruned_through, ?1)",
                [through],
            )?;
        }
        Ok(())
    }

    /// The last sequence number of the change feed (0 when it is empty): a reader that starts
    /// following the feed takes it as its cursor.
    pub fn change_head(&self) -> Result<i64, StoreError> {
        // AUTOINCREMENT keeps the largest number ever used, also once its row is pruned.
        Ok(self
            .conn
            .query_row(
                "SELECT seq FROM sqlite_sequence WHERE name = 'changes'",
                [],
                |r| r.get(0),
            )
            .optional()?
            .unwrap_or(0))
    }

    /// The change feed after `after`: at most `limit` rows looked at, of which those whose
    /// device names `target` among its Enrolment Targets are returned (all of them when
    /// `target` is None). One indexed range scan; no key material is read.
    pub fn changes_after(
        &self,
        after: i64,
        target: Option<&TargetId>,
        limit: usize,
    ) -> Result<ChangePage, StoreError> {
        let head = self.change_head()?;
        let pruned: i64 = self
            .conn
            .query_row(
                "SELECT pruned_through FROM feed_meta WHERE id = 1",
                [],
                |r| r.get(0),
            )
            .optional()?
            .unwrap_or(0);
        if after < pruned || after > head {
            return Ok(ChangePage {
                changes: Vec::new(),
                next: head,
                more: false,
                reset: true,
            });
        }
        let mut st = self.conn.prepare_cached(
            "SELECT seq, kind, kpm_id, enrolee_id, targets, ke_id, ended_ke_id, at FROM changes \
             WHERE seq > ?1 ORDER BY seq LIMIT ?2",
        )?;
        let rows = st.query_map(
            params![after, i64::try_from(limit).unwrap_or(i64::MAX)],
            |r| {
                let kind: String = r.get(1)?;
                Ok((
                    kind,
                    Change {
                        seq: r.get(0)?,
                        kind: ChangeKind::Enrolled,
                        kpm_id: r.get(2)?,
                        enrolee_id: id_col(r, 3, "changes.enrolee_id")?,
                        targets: json_col(r, 4, "changes.targets")?,
                        ke_id: opt_id_col(r, 5, "changes.ke_id")?,
                        ended_ke_id: opt_id_col(r, 6, "changes.ended_ke_id")?,
                        at: r.get(7)?,
                    },
                ))
            },
        )?;
        let mut page = ChangePage {
            changes: Vec::new(),
            next: after,
            more: false,
            reset: false,
        };
        let mut seen = 0usize;
        for row in rows {
            let (kind, mut c) = row?;
            seen += 1;
            page.next = c.seq;
            c.kind = ChangeKind::parse(&kind)
                .ok_or_else(|| StoreError::Corrupt(format!("change {}: kind {kind:?}", c.seq)))?;
            if target.map_or(true, |t| c.targets.iter().any(|x| x == t)) {
                page.changes.push(c);
            }
        }
        page.more = seen == limit && page.next < head;
        Ok(page)
    }

    /// Whether a device that is not revoked has one of `enrolee_ids` as its Enrolee-ID and
    /// `target` among its Enrolment Targets (an indexed lookup by Enrolee-ID).
    pub fn enrolee_provisioned_for(
        &self,
        enrolee_ids: &[&str],
        target: &TargetId,
    ) -> Result<bool, StoreError> {
        let mut st = self.conn.prepare_cached(
            "SELECT targets FROM devices WHERE enrolee_id = ?1 AND revoked IS NULL",
        )?;
        for id in enrolee_ids {
            let rows = st.query_map([id], |r| r.get::<_, String>(0))?;
            for t in rows {
                let targets: Vec<TargetId> = parse_json(&t?, "devices.targets")?;
                if targets.iter().any(|x| x == target) {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    /// Number of devices, enrolments and key registrations.
    pub fn counts(&self) -> Result<(u64, u64, u64), StoreError> {
        let c = |sql: &str| -> Result<u64, StoreError> {
            Ok(self.conn.query_row(sql, [], |r| r.get::<_, i64>(0))?.max(0) as u64)
        };
        Ok((
            c("SELECT COUNT(*) FROM devices")?,
            c("SELECT COUNT(*) FROM enrolments")?,
            c("SELECT COUNT(*) FROM key_regs")?,
        ))
    }

    // ----- enrolments --------------------------------------------------------------------

    /// Commits an enrolment at the end of the exchange, replacing the device's previous one,
    /// if and only if the device's enrolment generation is still `expected_gen` (the one the
    /// exchange saw at its bootstrap, [`MefStore::enrol_gen`]): a compare-and-set in one
    /// transaction, so of two overlapping exchanges the second to commit is refused
    /// ([`CommitOutcome::Superseded`]) instead of silently replacing the first. Appends a
    /// [`ChangeKind::Enrolled`] row to the change feed.
    #[allow(clippy::too_many_arguments)]
    pub fn commit_enrolment(
        &mut self,
        e: &Enrolment,
        ke: &Ke,
        admin_fqdn: &Fqdn,
        labels: Option<&[String]>,
        reg_expires: i64,
        expected_gen: i64,
        now: i64,
    ) -> Result<CommitOutcome, StoreError> {
        let ke_id = e.ke_id.to_string();
        let sealed = self
            .sealer
            .seal(&aad("enrolments", &ke_id), ke.expose_secret())?;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let live: Option<i64> = tx
            .query_row(
                "SELECT enrol_gen FROM devices WHERE kpm_id = ?1 AND revoked IS NULL",
                [&e.kpm_id],
                |r| r.get(0),
            )
            .optional()?;
        let Some(gen) = live else {
            return Err(StoreError::Corrupt(format!(
                "device {} is unknown or revoked",
                e.kpm_id
            )));
        };
        if gen != expected_gen {
            return Ok(CommitOutcome::Superseded);
        }
        let ended = Self::current_ke_id(&tx, &e.kpm_id)?;
        tx.execute("DELETE FROM enrolments WHERE kpm_id = ?1", [&e.kpm_id])?;
        tx.execute(
            "INSERT INTO enrolments (kpm_id, ke_id, ke, enrolee_id, reg_id, admin_fqdn, labels, \
             reg_expires, id2, expires, created) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            params![
                e.kpm_id,
                ke_id,
                sealed,
                e.enrolee_id.to_string(),
                e.reg_id,
                admin_fqdn.as_str(),
                labels.map(json),
                reg_expires,
                e.id2,
                e.expires,
                now
            ],
        )?;
        tx.execute(
            "UPDATE devices SET enrol_gen = enrol_gen + 1 WHERE kpm_id = ?1",
            [&e.kpm_id],
        )?;
        Self::record_change(
            &tx,
            ChangeKind::Enrolled,
            &e.kpm_id,
            Some(&ke_id),
            ended.as_deref().filter(|k| *k != ke_id),
            now,
        )?;
        tx.commit()?;
        Ok(CommitOutcome::Committed(gen + 1))
    }

    /// The enrolment with this KeID (lowercase), and its Ke.
    pub fn enrolment_by_ke_id(&self, ke_id: &KeId) -> Result<Option<(Enrolment, Ke)>, StoreError> {
        let text = ke_id.to_string();
        let row: Option<(Vec<u8>, Enrolment)> = self
            .conn
            .query_row(
                "SELECT ke, kpm_id, enrolee_id, reg_id, id2, expires FROM enrolments WHERE ke_id = ?1",
                [&text],
                |r| {
                    Ok((
                        r.get(0)?,
                        Enrolment {
                            kpm_id: r.get(1)?,
                            ke_id: ke_id.clone(),
                            enrolee_id: id_col(r, 2, "enrolments.enrolee_id")?,
                            reg_id: r.get(3)?,
                            id2: r.get(4)?,
                            expires: r.get(5)?,
                        },
                    ))
                },
            )
            .optional()?;
        let Some((sealed, e)) = row else {
            return Ok(None);
        };
        let raw = self.open_sealed("enrolments", &text, &sealed)?;
        let ke = Ke::from_bytes(&raw)?;
        Ok(Some((e, ke)))
    }

    /// The enrolment of a device.
    pub fn enrolment_of(&self, kpm_id: &str) -> Result<Option<Enrolment>, StoreError> {
        let ke_id: Option<KeId> = self
            .conn
            .query_row(
                "SELECT ke_id FROM enrolments WHERE kpm_id = ?1",
                [kpm_id],
                |r| id_col(r, 0, "enrolments.ke_id"),
            )
            .optional()?;
        match ke_id {
            Some(k) => Ok(self.enrolment_by_ke_id(&k)?.map(|(e, _)| e)),
            None => Ok(None),
        }
    }

    /// The committed MEF Client registration of a device: (MEFClientRegID, adminFQDN, labels,
    /// registration expiry).
    pub fn registration(&self, kpm_id: &str) -> Result<Option<Registration>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT reg_id, admin_fqdn, labels, reg_expires FROM enrolments WHERE kpm_id = ?1",
                [kpm_id],
                |r| {
                    Ok(Registration {
                        reg_id: r.get(0)?,
                        admin_fqdn: id_col(r, 1, "enrolments.admin_fqdn")?,
                        labels: opt_json_col(r, 2, "enrolments.labels")?,
                        expires: r.get(3)?,
                    })
                },
            )
            .optional()?)
    }

    /// MEF Client Registration Update (TS-0003 §8.3.5.2.5) of a committed registration.
    pub fn update_registration(
        &mut self,
        kpm_id: &str,
        expires: i64,
        labels: Option<&[String]>,
    ) -> Result<bool, StoreError> {
        Ok(self.conn.execute(
            "UPDATE enrolments SET reg_expires = ?2, labels = ?3 WHERE kpm_id = ?1",
            params![kpm_id, expires, labels.map(json)],
        )? == 1)
    }

    /// MEF Client De-registration (TS-0003 §8.3.5.2.6): the device's enrolment and its key
    /// registrations go, in one transaction, with a [`ChangeKind::Deregistered`] row in the
    /// change feed; the device stays provisioned and may enrol again.
    pub fn deregister(&mut self, kpm_id: &str, now: i64) -> Result<bool, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let ended = Self::current_ke_id(&tx, kpm_id)?;
        let n = tx.execute("DELETE FROM enrolments WHERE kpm_id = ?1", [kpm_id])?;
        tx.execute("DELETE FROM key_regs WHERE kpm_id = ?1", [kpm_id])?;
        if n == 1 {
            tx.execute(
                "UPDATE devices SET enrol_gen = enrol_gen + 1 WHERE kpm_id = ?1",
                [kpm_id],
            )?;
            Self::record_change(
                &tx,
                ChangeKind::Deregistered,
                kpm_id,
                None,
                ended.as_deref(),
                now,
            )?;
        }
        tx.commit()?;
        Ok(n == 1)
    }

    // ----- key registrations ---------------------------------------------------------------

    /// Inserts a key registration. False if the RelativeKeyID is taken.
    pub fn insert_key_reg(&mut self, k: &KeyRegRow, key: &[u8]) -> Result<bool, StoreError> {
        let sealed = self
            .sealer
            .seal(&aad("key_regs", k.rel_key_id.as_str()), key)?;
        let r = self.conn.execute(
            "INSERT INTO key_regs (rel_key_id, source_client, kpm_id, suid, target_ids, labels, \
             admin_fqdn, key, expires) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                k.rel_key_id.as_str(),
                k.source_client.to_string(),
                k.kpm_id,
                k.suid,
                json(&k.target_ids),
                k.labels.as_ref().map(json),
                k.admin_fqdn.as_str(),
                sealed,
                k.expires
            ],
        );
        match r {
            Ok(_) => Ok(true),
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                Ok(false)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// A key registration and its key.
    pub fn key_reg(
        &self,
        rel_key_id: &RelKeyId,
    ) -> Result<Option<(KeyRegRow, SecretBytes)>, StoreError> {
        let row: Option<(Vec<u8>, KeyRegRow)> = self
            .conn
            .query_row(
                "SELECT key, source_client, kpm_id, suid, target_ids, labels, admin_fqdn, expires \
                 FROM key_regs WHERE rel_key_id = ?1",
                [rel_key_id.as_str()],
                |r| {
                    Ok((
                        r.get(0)?,
                        KeyRegRow {
                            rel_key_id: rel_key_id.clone(),
                            source_client: id_col(r, 1, "key_regs.source_client")?,
                            kpm_id: r.get(2)?,
                            suid: r.get(3)?,
                            target_ids: json_col(r, 4, "key_regs.target_ids")?,
                            labels: opt_json_col(r, 5, "key_regs.labels")?,
                            admin_fqdn: id_col(r, 6, "key_regs.admin_fqdn")?,
                            expires: r.get(7)?,
                        },
                    ))
                },
            )
            .optional()?;
        let Some((sealed, k)) = row else {
            return Ok(None);
        };
        let key = self
            .sealer
            .open(&aad("key_regs", rel_key_id.as_str()), &sealed)?;
        Ok(Some((k, key)))
    }

    /// Updates expiry, labels and targetIDs of a key registration.
    pub fn update_key_reg(&mut self, k: &KeyRegRow) -> Result<bool, StoreError> {
        let n = self.conn.execute(
            "UPDATE key_regs SET target_ids = ?2, labels = ?3, expires = ?4 WHERE rel_key_id = ?1",
            params![
                k.rel_key_id.as_str(),
                json(&k.target_ids),
                k.labels.as_ref().map(json),
                k.expires
            ],
        )?;
        Ok(n == 1)
    }

    /// Deletes a key registration.
    pub fn delete_key_reg(&mut self, rel_key_id: &RelKeyId) -> Result<bool, StoreError> {
        Ok(self.conn.execute(
            "DELETE FROM key_regs WHERE rel_key_id = ?1",
            [rel_key_id.as_str()],
        )? == 1)
    }

    // ----- PKG ------------------------------------------------------------------------------

    /// The sealed KSAK, creating it with `fresh` on first use.
    pub fn ksak_or_init(
        &mut self,
        fresh: impl FnOnce() -> zeroize::Zeroizing<[u8; 32]>,
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let sealed: Option<Vec<u8>> = tx
            .query_row("SELECT ksak FROM pkg WHERE id = 1", [], |r| r.get(0))
            .optional()?;
        let sealed = match sealed {
            Some(s) => s,
            None => {
                let k = fresh();
                let s = self.sealer.seal(&aad("pkg", "ksak"), &k[..])?;
                tx.execute("INSERT INTO pkg (id, ksak) VALUES (1, ?1)", [&s])?;
                s
            }
        };
        tx.commit()?;
        Ok(self.sealer.open(&aad("pkg", "ksak"), &sealed)?)
    }

    /// Opens every sealed record (device Kpm, enrolment Ke, key registrations, the KSAK) with
    /// this store's sealer and seals it again with `to`, in one IMMEDIATE transaction; the
    /// store then uses `to` (moving the KEK into a token, TS-0003 §6.3.1). Returns the
    /// number of records.
    pub fn reseal_to(&mut self, to: &Sealer) -> Result<usize, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut n = 0;
        for (table, key_col, col, fixed) in [
            ("devices", "kpm_id", "kpm", None),
            ("enrolments", "ke_id", "ke", None),
            ("key_regs", "rel_key_id", "key", None),
            ("pkg", "id", "ksak", Some("ksak")),
        ] {
            let rows: Vec<(rusqlite::types::Value, String, Vec<u8>)> = {
                let mut st = tx.prepare(&format!(
                    "SELECT {key_col}, CAST({key_col} AS TEXT), {col} FROM {table}"
                ))?;
                let rows = st
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                    .collect::<Result<_, _>>()?;
                rows
            };
            for (k, name, sealed) in rows {
                let a = aad(table, fixed.unwrap_or(&name));
                let plain = self.sealer.open(&a, &sealed)?;
                let resealed = to.seal(&a, &plain)?;
                tx.execute(
                    &format!("UPDATE {table} SET {col} = ?1 WHERE {key_col} = ?2"),
                    params![resealed, k],
                )?;
                n += 1;
            }
        }
        tx.commit()?;
        self.sealer = to.clone();
        Ok(n)
    }

    /// Runs `PRAGMA quick_check` (operators, tests).
    pub fn check(&self) -> Result<bool, StoreError> {
        let s: String = self
            .conn
            .query_row("PRAGMA quick_check", [], |r| r.get(0))?;
        Ok(s == "ok")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use m2msec_keystore::Kek;

    fn fqdn(s: &str) -> Fqdn {
        s.parse().unwrap()
    }

    fn target(s: &str) -> TargetId {
        s.parse().unwrap()
    }

    fn dev(id: &str) -> Device {
        Device {
            kpm_id: id.into(),
            enrolee_id: "Cdev1".parse().unwrap(),
            targets: vec![target("//sp.example/cse-in")],
            enrolment_secs: 86_400,
            created: 1,
            revoked: None,
        }
    }

    #[test]
    fn devices_idempotent_and_sealed() {
        let mut s = MefStore::open_in_memory(Kek::from_array([1; 32])).unwrap();
        let kpm = Kpm::from_bytes(&[7; 32]).unwrap();
        assert_eq!(
            s.add_device(&dev("d1@mef.example"), &kpm).unwrap(),
            AddOutcome::Added
        );
        assert_eq!(
            s.add_device(&dev("d1@mef.example"), &kpm).unwrap(),
            AddOutcome::Unchanged
        );
        let other = Kpm::from_bytes(&[8; 32]).unwrap();
        assert_eq!(
            s.add_device(&dev("d1@mef.example"), &other).unwrap(),
            AddOutcome::Conflict
        );
        let (d, k) = s.device("d1@mef.example").unwrap().unwrap();
        assert_eq!(d.enrolee_id.to_string(), "Cdev1");
        assert_eq!(k, kpm);
        let raw: Vec<u8> = s
            .conn
            .query_row("SELECT kpm FROM devices", [], |r| r.get(0))
            .unwrap();
        assert!(!raw.windows(32).any(|w| w == [7u8; 32]));
    }

    #[test]
    fn one_enrolment_per_device() {
        let mut s = MefStore::open_in_memory(Kek::from_array([1; 32])).unwrap();
        let kpm = Kpm::from_bytes(&[7; 32]).unwrap();
        s.add_device(&dev("d1@mef.example"), &kpm).unwrap();
        for i in 0..3u8 {
            let e = Enrolment {
                kpm_id: "d1@mef.example".into(),
                ke_id: format!("{:032x}@mef.example", i).parse().unwrap(),
                enrolee_id: "Cdev1".parse().unwrap(),
                reg_id: format!("r{i}"),
                id2: None,
                expires: 100,
            };
            assert_eq!(
                s.commit_enrolment(
                    &e,
                    &Ke::from_array([i; 32]),
                    &fqdn("a.example"),
                    None,
                    100,
                    i64::from(i),
                    1
                )
                .unwrap(),
                CommitOutcome::Committed(i64::from(i) + 1)
            );
        }
        assert_eq!(s.counts().unwrap(), (1, 1, 0));
        let (e, ke) = s
            .enrolment_by_ke_id(&format!("{:032x}@mef.example", 2).parse().unwrap())
            .unwrap()
            .unwrap();
        assert_eq!(e.reg_id, "r2");
        assert_eq!(ke, Ke::from_array([2; 32]));
        assert!(s.revoke_device("d1@mef.example", 5).unwrap());
        assert_eq!(s.counts().unwrap(), (1, 0, 0));
        let e = Enrolment {
            kpm_id: "d1@mef.example".into(),
            ke_id: format!("{:032x}@mef.example", 0xff).parse().unwrap(),
            enrolee_id: "Cdev1".parse().unwrap(),
            reg_id: "r".into(),
            id2: None,
            expires: 100,
        };
        assert!(s
            .commit_enrolment(&e, &Ke::from_array([0; 32]), &fqdn("a"), None, 1, 4, 1)
            .is_err());
    }

    #[test]
    fn devices_with_enrolments_pages_without_keys() {
        let mut s = MefStore::open_in_memory(Kek::from_array([1; 32])).unwrap();
        let kpm = Kpm::from_bytes(&[7; 32]).unwrap();
        s.add_devices(&[
            (dev("a@mef.example"), kpm.clone()),
            (dev("b@mef.example"), kpm.clone()),
        ])
        .unwrap();
        let e = Enrolment {
            kpm_id: "b@mef.example".into(),
            ke_id: format!("{:032x}@mef.example", 0).parse().unwrap(),
            enrolee_id: "Cdev1".parse().unwrap(),
            reg_id: "r".into(),
            id2: None,
            expires: 100,
        };
        s.commit_enrolment(&e, &Ke::from_array([3; 32]), &fqdn("a"), None, 100, 0, 1)
            .unwrap();
        let page = s.devices_with_enrolments(None, 1).unwrap();
        assert_eq!(page.len(), 1);
        assert_eq!(page[0].0.kpm_id, "a@mef.example");
        assert!(page[0].1.is_none());
        let page = s
            .devices_with_enrolments(Some("a@mef.example"), 10)
            .unwrap();
        assert_eq!(page.len(), 1);
        assert_eq!(page[0].1.as_ref(), Some(&e));
    }

    fn enrolment(kpm_id: &str, ke: u8) -> Enrolment {
        Enrolment {
            kpm_id: kpm_id.into(),
            ke_id: format!("{ke:032x}@mef.example").parse().unwrap(),
            enrolee_id: "Cdev1".parse().unwrap(),
            reg_id: format!("r{ke}"),
            id2: None,
            expires: 100,
        }
    }

    /// Issue 9 item 9: two exchanges that both saw generation 0; the second commit is refused
    /// and leaves the first's KeID the valid one.
    #[test]
    fn a_commit_is_conditional_on_the_generation_seen_at_bootstrap() {
        let mut s = MefStore::open_in_memory(Kek::from_array([1; 32])).unwrap();
        s.add_device(&dev("d1@mef.example"), &Kpm::from_bytes(&[7; 32]).unwrap())
            .unwrap();
        let seen = s.enrol_gen("d1@mef.example").unwrap().unwrap();
        assert_eq!(seen, 0);
        let (a, b) = (
            enrolment("d1@mef.example", 1),
            enrolment("d1@mef.example", 2),
        );
        let ke = Ke::from_array([5; 32]);
        assert_eq!(
            s.commit_enrolment(&a, &ke, &fqdn("a"), None, 100, seen, 1)
                .unwrap(),
            CommitOutcome::Committed(1)
        );
        assert_eq!(
            s.commit_enrolment(&b, &ke, &fqdn("a"), None, 100, seen, 1)
                .unwrap(),
            CommitOutcome::Superseded
        );
        assert_eq!(s.enrolment_of("d1@mef.example").unwrap(), Some(a.clone()));
        assert!(s.enrolment_by_ke_id(&b.ke_id).unwrap().is_none());
        // De-registration moves the generation too: an exchange begun before it is refused.
        assert!(s.deregister("d1@mef.example", 2).unwrap());
        assert_eq!(s.enrol_gen("d1@mef.example").unwrap(), Some(2));
        assert_eq!(
            s.commit_enrolment(&b, &ke, &fqdn("a"), None, 100, 1, 2)
                .unwrap(),
            CommitOutcome::Superseded
        );
        assert_eq!(s.enrol_gen("nobody@mef.example").unwrap(), None);
    }

    #[test]
    fn the_change_feed_follows_enrolments_and_revocations_per_target() {
        let mut s = MefStore::open_in_memory(Kek::from_array([1; 32])).unwrap();
        let kpm = Kpm::from_bytes(&[7; 32]).unwrap();
        let mut other = dev("d2@mef.example");
        other.targets = vec![target("//sp.example/cse-other")];
        other.enrolee_id = "Cdev2".parse().unwrap();
        s.add_device(&dev("d1@mef.example"), &kpm).unwrap();
        s.add_device(&other, &kpm).unwrap();
        assert_eq!(s.change_head().unwrap(), 0);
        let ke = Ke::from_array([5; 32]);
        let a = enrolment("d1@mef.example", 1);
        let b = enrolment("d1@mef.example", 2);
        s.commit_enrolment(&a, &ke, &fqdn("a"), None, 100, 0, 10)
            .unwrap();
        s.commit_enrolment(
            &enrolment("d2@mef.example", 3),
            &ke,
            &fqdn("a"),
            None,
            100,
            0,
            11,
        )
        .unwrap();
        s.commit_enrolment(&b, &ke, &fqdn("a"), None, 100, 1, 12)
            .unwrap();
        assert!(s.revoke_device("d1@mef.example", 13).unwrap());
        assert!(!s.revoke_device("d1@mef.example", 14).unwrap(), "once");
        assert_eq!(s.change_head().unwrap(), 4);

        let cse = &target("//sp.example/cse-in");
        let all = s.changes_after(0, Some(cse), 100).unwrap();
        assert!(!all.more && !all.reset);
        assert_eq!(all.next, 4);
        let got: Vec<_> = all
            .changes
            .iter()
            .map(|c| (c.seq, c.kind, c.ke_id.clone(), c.ended_ke_id.clone()))
            .collect();
        assert_eq!(
            got,
            vec![
                (1, ChangeKind::Enrolled, Some(a.ke_id.clone()), None),
                (
                    3,
                    ChangeKind::Enrolled,
                    Some(b.ke_id.clone()),
                    Some(a.ke_id.clone())
                ),
                (4, ChangeKind::Revoked, None, Some(b.ke_id.clone())),
            ],
            "re-enrolment ends the old KeID; the other target's device is not shown"
        );
        assert_eq!(all.changes[2].enrolee_id.to_string(), "Cdev1");
        // Pages: the cursor moves over rows of other targets too.
        let p1 = s.changes_after(0, Some(cse), 2).unwrap();
        assert_eq!((p1.changes.len(), p1.next, p1.more), (1, 2, true));
        let p2 = s.changes_after(p1.next, Some(cse), 2).unwrap();
        assert_eq!((p2.changes.len(), p2.next, p2.more), (2, 4, false));
        let p3 = s.changes_after(4, Some(cse), 2).unwrap();
        assert!(p3.changes.is_empty() && !p3.more && !p3.reset && p3.next == 4);
        // A cursor beyond the end (a store restored from an older copy) starts over.
        assert!(s.changes_after(9, Some(cse), 2).unwrap().reset);

        // A day later the old rows are pruned: a cursor from before them starts over.
        let later = 13 + CHANGE_RETENTION_SECS + 1;
        assert!(s.deregister("d2@mef.example", later).unwrap());
        assert_eq!(s.change_head().unwrap(), 5);
        let r = s.changes_after(2, Some(cse), 100).unwrap();
        assert!(r.reset && r.changes.is_empty() && r.next == 5);
        let ok = s.changes_after(4, None, 100).unwrap();
        assert!(!ok.reset);
        assert_eq!(ok.changes.len(), 1);
        assert_eq!(ok.changes[0].kind, ChangeKind::Deregistered);
        assert_eq!(
            ok.changes[0].ended_ke_id,
            Some(format!("{:032x}@mef.example", 3).parse().unwrap())
        );
    }

    #[test]
    fn enrolee_ids_provisioned_for_a_target() {
        let mut s = MefStore::open_in_memory(Kek::from_array([1; 32])).unwrap();
        s.add_device(&dev("d1@mef.example"), &Kpm::from_bytes(&[7; 32]).unwrap())
            .unwrap();
        let cse = &target("//sp.example/cse-in");
        assert!(s.enrolee_provisioned_for(&["Cdev1"], cse).unwrap());
        assert!(s.enrolee_provisioned_for(&["Cx", "Cdev1"], cse).unwrap());
        assert!(!s
            .enrolee_provisioned_for(&["Cdev1"], &target("//sp.example/cse-mn"))
            .unwrap());
        assert!(!s.enrolee_provisioned_for(&["Cdev9"], cse).unwrap());
        s.revoke_device("d1@mef.example", 3).unwrap();
        assert!(!s.enrolee_provisioned_for(&["Cdev1"], cse).unwrap());
    }

    /// A version 1 store (before the enrolment generation and the change feed) is migrated on
    /// open, its rows kept.
    #[test]
    fn a_version_1_store_is_migrated() {
        let d = tempfile::tempdir().unwrap();
        {
            let c = Connection::open(d.path().join(DB_FILE)).unwrap();
            c.execute_batch(
                "CREATE TABLE schema_version (version INTEGER NOT NULL);
                 INSERT INTO schema_version VALUES (1);
                 CREATE TABLE devices (kpm_id TEXT PRIMARY KEY NOT NULL, kpm BLOB NOT NULL,
                   enrolee_id TEXT NOT NULL, targets TEXT NOT NULL, enrolment_secs INTEGER NOT NULL,
                   created INTEGER NOT NULL, revoked INTEGER);
                 INSERT INTO devices VALUES ('d1@mef.example', x'00', 'Cdev1',
                   '[\"//sp.example/cse-in\"]', 60, 1, NULL);",
            )
            .unwrap();
        }
        let s = MefStore::open(d.path()).unwrap();
        let v: i64 = s
            .conn
            .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, SCHEMA_VERSION);
        assert_eq!(s.enrol_gen("d1@mef.example").unwrap(), Some(0));
        assert!(s
            .enrolee_provisioned_for(&["Cdev1"], &target("//sp.example/cse-in"))
            .unwrap());
        drop(s);
        // Opening again is a no-op.
        MefStore::open(d.path()).unwrap();
    }

    /// Issue 10 item 6: a row whose identifier does not parse (written by another tool, a
    /// restored copy, a bit flip) is a typed error naming the column, not a panic and not a
    /// silently empty value; the other rows still read.
    #[test]
    fn a_corrupt_identifier_in_a_row_is_a_typed_error() {
        let mut s = MefStore::open_in_memory(Kek::from_array([1; 32])).unwrap();
        let kpm = Kpm::from_bytes(&[7; 32]).unwrap();
        s.add_devices(&[
            (dev("a@mef.example"), kpm.clone()),
            (dev("b@mef.example"), kpm.clone()),
        ])
        .unwrap();
        s.commit_enrolment(
            &enrolment("a@mef.example", 1),
            &Ke::from_array([3; 32]),
            &fqdn("a"),
            None,
            100,
            0,
            1,
        )
        .unwrap();
        let corrupt = |e: StoreError| match e {
            StoreError::CorruptId { column, .. } => column,
            other => panic!("not CorruptId: {other:?}"),
        };
        s.conn
            .execute(
                "UPDATE devices SET enrolee_id = 'not an id' WHERE kpm_id = 'b@mef.example'",
                [],
            )
            .unwrap();
        assert_eq!(
            corrupt(s.device("b@mef.example").unwrap_err()),
            "devices.enrolee_id"
        );
        assert_eq!(
            corrupt(s.devices(None, 10).unwrap_err()),
            "devices.enrolee_id"
        );
        assert_eq!(
            corrupt(s.active_device_keys().unwrap_err()),
            "devices.enrolee_id"
        );
        assert!(
            s.device("a@mef.example").unwrap().is_some(),
            "other rows still read"
        );
        s.conn
            .execute(
                "UPDATE devices SET targets = '[\"cse in\"]' WHERE kpm_id = 'a@mef.example'",
                [],
            )
            .unwrap();
        match s.device("a@mef.example").unwrap_err() {
            StoreError::CorruptJson { column, .. } => assert_eq!(column, "devices.targets"),
            other => panic!("not CorruptJson: {other:?}"),
        }
        s.conn
            .execute(
                "UPDATE enrolments SET admin_fqdn = '10.0.0.1', enrolee_id = '//x'",
                [],
            )
            .unwrap();
        assert_eq!(
            corrupt(s.registration("a@mef.example").unwrap_err()),
            "enrolments.admin_fqdn"
        );
        assert_eq!(
            corrupt(s.enrolment_of("a@mef.example").unwrap_err()),
            "enrolments.enrolee_id"
        );
        s.conn
            .execute("UPDATE changes SET ke_id = 'zz@mef.example'", [])
            .unwrap();
        assert_eq!(
            corrupt(s.changes_after(0, None, 10).unwrap_err()),
            "changes.ke_id"
        );
        // The error keeps its typed source.
        let e = s.changes_after(0, None, 10).unwrap_err();
        let src = std::error::Error::source(&e).unwrap();
        assert!(src.downcast_ref::<IdError>().is_some(), "{src:?}");
    }
}
