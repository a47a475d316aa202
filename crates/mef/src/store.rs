//! The MEF's durable state in SQLite (`DATA_DIR/mef.sqlite3`, WAL, `synchronous=FULL`): the
//! devices provisioned with a Kpm (TS-0003 §8.3.2.1 step 1–2, Bootstrap Credential and
//! Instruction Configuration), their enrolments (Ke, KeID, Enrolment Expiry, the IBC identity
//! issued), the MEF Client registrations and key registrations (§8.3.5), and the PKG's KMS
//! secret. Every secret is sealed under the data directory's KEK (`DATA_DIR/kek`, 0600) with the
//! record's table and key as associated data.
//!
//! A device has at most one enrolment (primary key `kpm_id`): re-enrolment replaces the
//! previous one in the same transaction, so a crash leaves either the old or the new enrolment,
//! never both and never a half of one.

use std::path::Path;
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde::{Deserialize, Serialize};

use m2msec_core::secret::{Ke, Kpm};
use m2msec_keystore::{load_or_create_kek, Sealer};

/// Schema version written and read.
pub const SCHEMA_VERSION: i64 = 1;
/// Database file name in the data directory.
pub const DB_FILE: &str = "mef.sqlite3";
/// KEK file name in the data directory.
pub const KEK_FILE: &str = "kek";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS devices (
    kpm_id          TEXT PRIMARY KEY NOT NULL,
    kpm             BLOB NOT NULL,
    enrolee_id      TEXT NOT NULL,
    targets         TEXT NOT NULL,
    enrolment_secs  INTEGER NOT NULL,
    created         INTEGER NOT NULL,
    revoked         INTEGER
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
";

/// Store failures.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite.
    #[error("database: {0}")]
    Db(#[from] rusqlite::Error),
    /// Keystore (KEK file, sealing).
    #[error("keystore: {0}")]
    Keystore(#[from] m2msec_keystore::KeystoreError),
    /// A row that does not decode.
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// Unknown schema version.
    #[error("unsupported schema version {0}")]
    SchemaVersion(i64),
    /// Filesystem.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

/// A provisioned device (bootstrap credential and instructions, TS-0003 tables 9.2.1.1-1,
/// 9.2.2.1-1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    /// KpmID (BRIEF A5: `relKeyID@MEF-FQDN`).
    pub kpm_id: String,
    /// The Enrolee-ID assigned to the device (its AE-ID or CSE-ID).
    pub enrolee_id: String,
    /// Enrolment Targets: absolute CSE-IDs/AE-IDs (or MAF FQDNs) that may fetch its keys.
    pub targets: Vec<String>,
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
    pub ke_id: String,
    /// The Enrolee-ID.
    pub enrolee_id: String,
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
    pub admin_fqdn: String,
    /// Labels.
    pub labels: Option<Vec<String>>,
    /// Registration expiry (unix seconds).
    pub expires: i64,
}

/// A key registration (TS-0003 §8.3.5.2.7).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRegRow {
    /// RelativeKeyID.
    pub rel_key_id: String,
    /// Source MEF Client ID.
    pub source_client: String,
    /// KpmID of the registering device, when a device registered it.
    pub kpm_id: Option<String>,
    /// SUID.
    pub suid: u8,
    /// targetIDs.
    pub target_ids: Vec<String>,
    /// Labels.
    pub labels: Option<Vec<String>>,
    /// adminFQDN.
    pub admin_fqdn: String,
    /// Expiry (unix seconds).
    pub expires: i64,
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
        m2msec_keystore::private_dir(data_dir)?;
        let kek = load_or_create_kek(&data_dir.join(KEK_FILE))?;
        m2msec_keystore::private_db_file(&data_dir.join(DB_FILE))?;
        let conn = Connection::open(data_dir.join(DB_FILE))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        Self::init(conn, Sealer::new(kek))
    }

    /// An in-memory store with a given KEK (tests).
    pub fn open_in_memory(kek: m2msec_keystore::Kek) -> Result<MefStore, StoreError> {
        Self::init(Connection::open_in_memory()?, Sealer::new(kek))
    }

    fn init(conn: Connection, sealer: Sealer) -> Result<MefStore, StoreError> {
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(Duration::from_secs(10))?;
        conn.execute_batch(SCHEMA)?;
        let v: Option<i64> = conn
            .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
            .optional()?;
        match v {
            None => {
                conn.execute(
                    "INSERT INTO schema_version (version) VALUES (?1)",
                    [SCHEMA_VERSION],
                )?;
            }
            Some(SCHEMA_VERSION) => {}
            Some(other) => return Err(StoreError::SchemaVersion(other)),
        }
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
                && enrolee == d.enrolee_id
                && targets == json(&d.targets)
                && secs == d.enrolment_secs as i64
                && revoked.is_none();
            return Ok(if same {
                AddOutcome::Unchanged
            } else {
                AddOutcome::Conflict
            });
        }
        let sealed = sealer.seal(&aad("devices", &d.kpm_id), kpm.expose_secret());
        tx.prepare_cached(
            "INSERT INTO devices (kpm_id, kpm, enrolee_id, targets, enrolment_secs, created) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![
            d.kpm_id,
            sealed,
            d.enrolee_id,
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
                    let targets: String = r.get(2)?;
                    Ok((
                        r.get(0)?,
                        Device {
                            kpm_id: kpm_id.to_string(),
                            enrolee_id: r.get(1)?,
                            targets: serde_json::from_str(&targets).unwrap_or_default(),
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
        let kpm = Kpm::from_bytes(&raw).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        Ok(Some((d, kpm)))
    }

    /// Devices in KpmID order after `after`, at most `limit` (for listing).
    pub fn devices(&self, after: Option<&str>, limit: usize) -> Result<Vec<Device>, StoreError> {
        let mut st = self.conn.prepare(
            "SELECT kpm_id, enrolee_id, targets, enrolment_secs, created, revoked FROM devices \
             WHERE kpm_id > ?1 ORDER BY kpm_id LIMIT ?2",
        )?;
        let rows = st.query_map(params![after.unwrap_or(""), limit as i64], |r| {
            let targets: String = r.get(2)?;
            Ok(Device {
                kpm_id: r.get(0)?,
                enrolee_id: r.get(1)?,
                targets: serde_json::from_str(&targets).unwrap_or_default(),
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
            let targets: String = r.get(2)?;
            let kpm_id: String = r.get(0)?;
            let ke_id: Option<String> = r.get(6)?;
            let enrolment = match ke_id {
                Some(ke_id) => Some(Enrolment {
                    kpm_id: kpm_id.clone(),
                    ke_id,
                    enrolee_id: r.get(7)?,
                    reg_id: r.get(8)?,
                    id2: r.get(9)?,
                    expires: r.get(10)?,
                }),
                None => None,
            };
            Ok((
                Device {
                    kpm_id,
                    enrolee_id: r.get(1)?,
                    targets: serde_json::from_str(&targets).unwrap_or_default(),
                    enrolment_secs: r.get::<_, i64>(3)?.max(0) as u64,
                    created: r.get(4)?,
                    revoked: r.get(5)?,
                },
                enrolment,
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Revokes a device: marks it, deletes its enrolment and key registrations (one
    /// transaction). False if unknown.
    pub fn revoke_device(&mut self, kpm_id: &str, now: i64) -> Result<bool, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let n = tx.execute(
            "UPDATE devices SET revoked = ?2 WHERE kpm_id = ?1 AND revoked IS NULL",
            params![kpm_id, now],
        )?;
        tx.execute("DELETE FROM enrolments WHERE kpm_id = ?1", [kpm_id])?;
        tx.execute("DELETE FROM key_regs WHERE kpm_id = ?1", [kpm_id])?;
        tx.commit()?;
        Ok(n == 1)
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

    /// Commits an enrolment at the end of the exchange, replacing the device's previous one.
    #[allow(clippy::too_many_arguments)]
    pub fn commit_enrolment(
        &mut self,
        e: &Enrolment,
        ke: &Ke,
        admin_fqdn: &str,
        labels: Option<&[String]>,
        reg_expires: i64,
        now: i64,
    ) -> Result<(), StoreError> {
        let sealed = self
            .sealer
            .seal(&aad("enrolments", &e.ke_id), ke.expose_secret());
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let live: Option<i64> = tx
            .query_row(
                "SELECT 1 FROM devices WHERE kpm_id = ?1 AND revoked IS NULL",
                [&e.kpm_id],
                |r| r.get(0),
            )
            .optional()?;
        if live.is_none() {
            return Err(StoreError::Corrupt(format!(
                "device {} is unknown or revoked",
                e.kpm_id
            )));
        }
        tx.execute("DELETE FROM enrolments WHERE kpm_id = ?1", [&e.kpm_id])?;
        tx.execute(
            "INSERT INTO enrolments (kpm_id, ke_id, ke, enrolee_id, reg_id, admin_fqdn, labels, \
             reg_expires, id2, expires, created) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            params![
                e.kpm_id,
                e.ke_id,
                sealed,
                e.enrolee_id,
                e.reg_id,
                admin_fqdn,
                labels.map(json),
                reg_expires,
                e.id2,
                e.expires,
                now
            ],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// The enrolment with this KeID (lowercase), and its Ke.
    pub fn enrolment_by_ke_id(&self, ke_id: &str) -> Result<Option<(Enrolment, Ke)>, StoreError> {
        let row: Option<(Vec<u8>, Enrolment)> = self
            .conn
            .query_row(
                "SELECT ke, kpm_id, enrolee_id, reg_id, id2, expires FROM enrolments WHERE ke_id = ?1",
                [ke_id],
                |r| {
                    Ok((
                        r.get(0)?,
                        Enrolment {
                            kpm_id: r.get(1)?,
                            ke_id: ke_id.to_string(),
                            enrolee_id: r.get(2)?,
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
        let raw = self.open_sealed("enrolments", ke_id, &sealed)?;
        let ke = Ke::from_bytes(&raw).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        Ok(Some((e, ke)))
    }

    /// The enrolment of a device.
    pub fn enrolment_of(&self, kpm_id: &str) -> Result<Option<Enrolment>, StoreError> {
        let ke_id: Option<String> = self
            .conn
            .query_row(
                "SELECT ke_id FROM enrolments WHERE kpm_id = ?1",
                [kpm_id],
                |r| r.get(0),
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
        let row: Option<(String, String, Option<String>, i64)> = self
            .conn
            .query_row(
                "SELECT reg_id, admin_fqdn, labels, reg_expires FROM enrolments WHERE kpm_id = ?1",
                [kpm_id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()?;
        Ok(
            row.map(|(reg_id, admin_fqdn, labels, expires)| Registration {
                reg_id,
                admin_fqdn,
                labels: labels.and_then(|l| serde_json::from_str(&l).ok()),
                expires,
            }),
        )
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
    /// registrations go, in one transaction; the device stays provisioned and may enrol again.
    pub fn deregister(&mut self, kpm_id: &str) -> Result<bool, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let n = tx.execute("DELETE FROM enrolments WHERE kpm_id = ?1", [kpm_id])?;
        tx.execute("DELETE FROM key_regs WHERE kpm_id = ?1", [kpm_id])?;
        tx.commit()?;
        Ok(n == 1)
    }

    // ----- key registrations ---------------------------------------------------------------

    /// Inserts a key registration. False if the RelativeKeyID is taken.
    pub fn insert_key_reg(&mut self, k: &KeyRegRow, key: &[u8]) -> Result<bool, StoreError> {
        let sealed = self.sealer.seal(&aad("key_regs", &k.rel_key_id), key);
        let r = self.conn.execute(
            "INSERT INTO key_regs (rel_key_id, source_client, kpm_id, suid, target_ids, labels, \
             admin_fqdn, key, expires) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                k.rel_key_id,
                k.source_client,
                k.kpm_id,
                k.suid,
                json(&k.target_ids),
                k.labels.as_ref().map(json),
                k.admin_fqdn,
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
        rel_key_id: &str,
    ) -> Result<Option<(KeyRegRow, SecretBytes)>, StoreError> {
        let row: Option<(Vec<u8>, KeyRegRow)> = self
            .conn
            .query_row(
                "SELECT key, source_client, kpm_id, suid, target_ids, labels, admin_fqdn, expires \
                 FROM key_regs WHERE rel_key_id = ?1",
                [rel_key_id],
                |r| {
                    let t: String = r.get(4)?;
                    let l: Option<String> = r.get(5)?;
                    Ok((
                        r.get(0)?,
                        KeyRegRow {
                            rel_key_id: rel_key_id.to_string(),
                            source_client: r.get(1)?,
                            kpm_id: r.get(2)?,
                            suid: r.get(3)?,
                            target_ids: serde_json::from_str(&t).unwrap_or_default(),
                            labels: l.and_then(|l| serde_json::from_str(&l).ok()),
                            admin_fqdn: r.get(6)?,
                            expires: r.get(7)?,
                        },
                    ))
                },
            )
            .optional()?;
        let Some((sealed, k)) = row else {
            return Ok(None);
        };
        let key = self.sealer.open(&aad("key_regs", rel_key_id), &sealed)?;
        Ok(Some((k, key)))
    }

    /// Updates expiry, labels and targetIDs of a key registration.
    pub fn update_key_reg(&mut self, k: &KeyRegRow) -> Result<bool, StoreError> {
        let n = self.conn.execute(
            "UPDATE key_regs SET target_ids = ?2, labels = ?3, expires = ?4 WHERE rel_key_id = ?1",
            params![
                k.rel_key_id,
                json(&k.target_ids),
                k.labels.as_ref().map(json),
                k.expires
            ],
        )?;
        Ok(n == 1)
    }

    /// Deletes a key registration.
    pub fn delete_key_reg(&mut self, rel_key_id: &str) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .execute("DELETE FROM key_regs WHERE rel_key_id = ?1", [rel_key_id])?
            == 1)
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
                let s = self.sealer.seal(&aad("pkg", "ksak"), &k[..]);
                tx.execute("INSERT INTO pkg (id, ksak) VALUES (1, ?1)", [&s])?;
                s
            }
        };
        tx.commit()?;
        Ok(self.sealer.open(&aad("pkg", "ksak"), &sealed)?)
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

    fn dev(id: &str) -> Device {
        Device {
            kpm_id: id.into(),
            enrolee_id: "Cdev1".into(),
            targets: vec!["//sp.example/cse-in".into()],
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
        assert_eq!(d.enrolee_id, "Cdev1");
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
                ke_id: format!("{:032x}@mef.example", i),
                enrolee_id: "Cdev1".into(),
                reg_id: format!("r{i}"),
                id2: None,
                expires: 100,
            };
            s.commit_enrolment(&e, &Ke::from_array([i; 32]), "a.example", None, 100, 1)
                .unwrap();
        }
        assert_eq!(s.counts().unwrap(), (1, 1, 0));
        let (e, ke) = s
            .enrolment_by_ke_id(&format!("{:032x}@mef.example", 2))
            .unwrap()
            .unwrap();
        assert_eq!(e.reg_id, "r2");
        assert_eq!(ke, Ke::from_array([2; 32]));
        assert!(s.revoke_device("d1@mef.example", 5).unwrap());
        assert_eq!(s.counts().unwrap(), (1, 0, 0));
        let e = Enrolment {
            kpm_id: "d1@mef.example".into(),
            ke_id: "x@mef.example".into(),
            enrolee_id: "Cdev1".into(),
            reg_id: "r".into(),
            id2: None,
            expires: 100,
        };
        assert!(s
            .commit_enrolment(&e, &Ke::from_array([0; 32]), "a", None, 1, 1)
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
            ke_id: "00@mef.example".into(),
            enrolee_id: "Cdev1".into(),
            reg_id: "r".into(),
            id2: None,
            expires: 100,
        };
        s.commit_enrolment(&e, &Ke::from_array([3; 32]), "a", None, 100, 1)
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
}
