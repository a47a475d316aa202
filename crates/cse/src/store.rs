//! Durable storage of resources and of the Credential-ID → AE-ID bindings learned at `<AE>`
//! CREATE (TS-0003 §8.2.1, §8.2.2.1), behind the [`Store`] trait, with an embedded SQLite
//! implementation ([`SqliteStore`]).
//!
//! Every engine request runs in one transaction ([`Store::begin`] … [`StoreTx::commit`]); a
//! transaction dropped without commit rolls back, so a failed request never leaves a half-written
//! resource. Rows keep the resource as a JSON blob plus indexed columns (`ri`, `pi`, `rn`, `ty`,
//! the structured `path`); the database runs in WAL mode with `synchronous=FULL` and records its
//! schema version.
//!
//! Schema versions: 1 (resources, credential bindings); 2 adds `psk_credentials`, the
//! administered PSK credentials of [`crate::credentials`], with a trigger-kept change counter;
//! 3 the per-registree `usage` table; 4 the indexed `et_us` column (expirationTime in Unix
//! microseconds) that finds expired resources ([`StoreTx::expired`]), filled from the stored
//! resources when the migration runs.
//! Opening a database applies the missing
//! migrations in order inside one IMMEDIATE transaction (SQLite DDL is transactional), so a
//! crash or a concurrent opener (the CLI while the CSE runs) never sees a half-migrated file; a
//! database written by a newer version is refused.

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use crate::resource::{Resource, ResourceType};

/// The schema version this code writes and reads.
pub const SCHEMA_VERSION: i64 = 4;
/// Database file name inside the data directory.
pub const DB_FILE: &str = "cse.sqlite3";

/// Why the store failed. The engine maps every variant to INTERNAL_SERVER_ERROR, except
/// [`StoreError::Conflict`] (a unique `path` or `ri` already taken) which maps to CONFLICT.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite reported an error.
    #[error("database: {0}")]
    Db(#[from] rusqlite::Error),
    /// A stored blob did not decode.
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// A resource's JSON body did not decode (or, writing, encode).
    #[error("corrupt resource body: {0}")]
    Json(#[from] serde_json::Error),
    /// Unique constraint (resource name under the same parent, or ri).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The database was written by an unknown schema version.
    #[error("unsupported schema version {0}")]
    SchemaVersion(i64),
    /// Filesystem error.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

/// One transaction's view of the store.
pub trait StoreTx {
    /// The resource with this `ri`.
    fn get(&mut self, ri: &str) -> Result<Option<Resource>, StoreError>;
    /// The resource at this structured path (`<cb rn>/a/b`).
    fn get_by_path(&mut self, path: &str) -> Result<Option<Resource>, StoreError>;
    /// Direct children of `pi`, optionally of one type, in creation order, at most `limit`.
    fn children(
        &mut self,
        pi: &str,
        ty: Option<ResourceType>,
        limit: usize,
    ) -> Result<Vec<Resource>, StoreError>;
    /// The oldest (`newest`=false) or newest child of `pi` of type `ty`.
    fn edge_child(
        &mut self,
        pi: &str,
        ty: ResourceType,
        newest: bool,
    ) -> Result<Option<Resource>, StoreError>;
    /// Inserts a new resource; a taken `ri` or `path` → [`StoreError::Conflict`].
    fn insert(&mut self, r: &Resource) -> Result<(), StoreError>;
    /// Replaces the stored resource with the same `ri` (its path must not change).
    fn update(&mut self, r: &Resource) -> Result<(), StoreError>;
    /// Deletes the resource and its whole subtree; returns the number of rows removed.
    fn delete_subtree(&mut self, r: &Resource) -> Result<usize, StoreError>;
    /// Resources and bytes stored under the top-level resource at path `top` (itself
    /// included): the per-registree usage ([`top_of`]).
    fn usage(&mut self, top: &str) -> Result<(u64, u64), StoreError>;
    /// Resources whose expirationTime is at or before `now_us` (Unix microseconds), parents
    /// before their descendants (by path), at most `limit`.
    fn expired(&mut self, now_us: i64, limit: usize) -> Result<Vec<Resource>, StoreError>;
    /// Whether an `<AE>` with this AE-ID (`aei`, the stem) exists.
    fn ae_exists(&mut self, aei: &str) -> Result<bool, StoreError>;
    /// The `csi` values of all `<remoteCSE>` resources (the registree CSEs).
    fn registree_cses(&mut self) -> Result<Vec<String>, StoreError>;
    /// The AE-ID bound to a Credential-ID (TS-0003 §8.2.1).
    fn binding(&mut self, credential_id: &str) -> Result<Option<String>, StoreError>;
    /// Whether any Credential-ID is bound to this AE-ID.
    fn ae_id_bound(&mut self, ae_id: &str) -> Result<bool, StoreError>;
    /// Binds a Credential-ID to an AE-ID.
    fn bind(&mut self, credential_id: &str, ae_id: &str) -> Result<(), StoreError>;
    /// Makes the transaction durable.
    fn commit(self: Box<Self>) -> Result<(), StoreError>;
}

/// A resource store.
pub trait Store {
    /// Starts a transaction (IMMEDIATE for SQLite: writers serialise up front).
    fn begin(&mut self) -> Result<Box<dyn StoreTx + '_>, StoreError>;
    /// Starts a transaction for a request that only reads (RETRIEVE). It may still write (the
    /// engine never does on this path); SQLite takes the write lock lazily (DEFERRED).
    fn begin_read(&mut self) -> Result<Box<dyn StoreTx + '_>, StoreError> {
        self.begin()
    }
}

/// The embedded SQLite store.
#[derive(Debug)]
pub struct SqliteStore {
    conn: Connection,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS resources (
    ri   TEXT PRIMARY KEY NOT NULL,
    pi   TEXT,
    rn   TEXT NOT NULL,
    ty   INTEGER NOT NULL,
    path TEXT NOT NULL UNIQUE,
    aei  TEXT,
    csi  TEXT,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS resources_pi_ty ON resources (pi, ty);
CREATE INDEX IF NOT EXISTS resources_aei ON resources (aei) WHERE aei IS NOT NULL;
CREATE TABLE IF NOT EXISTS credential_bindings (
    credential_id TEXT PRIMARY KEY NOT NULL,
    ae_id TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS credential_bindings_ae ON credential_bindings (ae_id);
";

/// Migrations after version 1: `(version reached, SQL)`, applied in order.
const MIGRATIONS: &[(i64, &str)] = &[
    (
        2,
    // Administered PSK credentials (TS-0003 §8.2.2.1): the key is sealed under the data
    // directory's KEK, bound to the table name and psk_identity (see crate::credentials).
    "CREATE TABLE psk_credentials (
        psk_identity TEXT PRIMARY KEY NOT NULL,
        sealed_key   BLOB NOT NULL,
        ida          TEXT,
        registree    TEXT CHECK (registree IN ('ae', 'cse')),
        expires      TEXT,
        expires_unix INTEGER,
        label        TEXT,
        created      TEXT NOT NULL,
        revoked      TEXT,
        revoked_unix INTEGER,
        CHECK ((ida IS NULL) = (registree IS NULL)),
        CHECK ((expires IS NULL) = (expires_unix IS NULL)),
        CHECK ((revoked IS NULL) = (revoked_unix IS NULL))
    );
    -- Bumped by every change to psk_credentials, so a running CSE reloads (and unseals) the
    -- credentials only when they changed, not on every resource write.
    CREATE TABLE psk_credentials_version (version INTEGER NOT NULL);
    INSERT INTO psk_credentials_version (version) VALUES (0);
    CREATE TRIGGER psk_credentials_ai AFTER INSERT ON psk_credentials
        BEGIN UPDATE psk_credentials_version SET version = version + 1; END;
    CREATE TRIGGER psk_credentials_au AFTER UPDATE ON psk_credentials
        BEGIN UPDATE psk_credentials_version SET version = version + 1; END;
    CREATE TRIGGER psk_credentials_ad AFTER DELETE ON psk_credentials
        BEGIN UPDATE psk_credentials_version SET version = version + 1; END;",
    ),
    (
        3,
        // Storage used under each top-level resource (a registree's subtree: `cb/<rn>/…`), kept
        // by triggers, for the per-registree quota of the engine's `Limits`. `top` is the path
        // of the top-level resource (its first two segments); NULL for `<CSEBase>`.
        "ALTER TABLE resources ADD COLUMN top TEXT;
        UPDATE resources SET top = CASE
            WHEN instr(path, '/') = 0 THEN NULL
            WHEN instr(substr(path, instr(path, '/') + 1), '/') = 0 THEN path
            ELSE substr(path, 1, instr(path, '/') + instr(substr(path, instr(path, '/') + 1), '/') - 1)
        END;
        CREATE TABLE usage (
            top   TEXT PRIMARY KEY NOT NULL,
            n     INTEGER NOT NULL,
            bytes INTEGER NOT NULL
        );
        INSERT INTO usage (top, n, bytes)
            SELECT top, count(*), sum(length(body)) FROM resources WHERE top IS NOT NULL GROUP BY top;
        CREATE TRIGGER resources_usage_ai AFTER INSERT ON resources WHEN NEW.top IS NOT NULL
            BEGIN INSERT INTO usage (top, n, bytes) VALUES (NEW.top, 1, length(NEW.body))
                  ON CONFLICT (top) DO UPDATE SET n = n + 1, bytes = bytes + length(NEW.body); END;
        CREATE TRIGGER resources_usage_ad AFTER DELETE ON resources WHEN OLD.top IS NOT NULL
            BEGIN UPDATE usage SET n = n - 1, bytes = bytes - length(OLD.body) WHERE top = OLD.top;
                  DELETE FROM usage WHERE top = OLD.top AND n <= 0; END;
        CREATE TRIGGER resources_usage_au AFTER UPDATE OF body ON resources WHEN NEW.top IS NOT NULL
            BEGIN UPDATE usage SET bytes = bytes - length(OLD.body) + length(NEW.body)
                  WHERE top = NEW.top; END;",
    ),
    (
        4,
        // expirationTime (Unix microseconds) of each resource, for the purge of expired ones;
        // filled for existing rows by `backfill_et` right after.
        "ALTER TABLE resources ADD COLUMN et_us INTEGER;
        CREATE INDEX resources_et ON resources (et_us) WHERE et_us IS NOT NULL;",
    ),
];

/// Migration 4: `et_us` from each stored resource's `et`.
fn backfill_et(tx: &rusqlite::Transaction<'_>) -> Result<(), StoreError> {
    let mut rows = Vec::new();
    {
        let mut st = tx.prepare("SELECT ri, body FROM resources")?;
        let it = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        for row in it {
            let (ri, body) = row?;
            if let Some(et) = decode(body)?.et {
                rows.push((ri, et.to_unix_micros()));
            }
        }
    }
    let mut up = tx.prepare("UPDATE resources SET et_us = ?2 WHERE ri = ?1")?;
    for (ri, us) in rows {
        up.execute(params![ri, us])?;
    }
    Ok(())
}

/// Opens (creating if needed) `DATA_DIR/cse.sqlite3` in WAL mode and brings its schema to
/// [`SCHEMA_VERSION`]. The credential store opens its own connection with this.
pub fn open_connection(data_dir: &Path) -> Result<Connection, StoreError> {
    // 0700 directory, 0600 database (SQLite gives -wal/-shm the database's mode).
    m2msec_keystore::private_dir(data_dir).map_err(|e| StoreError::Io(std::io::Error::other(e)))?;
    m2msec_keystore::private_db_file(&data_dir.join(DB_FILE))
        .map_err(|e| StoreError::Io(std::io::Error::other(e)))?;
    let mut conn = Connection::open(data_dir.join(DB_FILE))?;
    // Before anything that may wait for a lock: a CLI and the running CSE share the file.
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    migrate(&mut conn)?;
    Ok(conn)
}

/// Creates the version-1 schema if missing and applies [`MIGRATIONS`], all in one transaction.
fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch(SCHEMA)?;
    let v: Option<i64> = tx
        .query_row("SELECT max(version) FROM schema_version", [], |r| r.get(0))
        .optional()?
        .flatten();
    let mut v = match v {
        None => {
            tx.execute("INSERT INTO schema_version (version) VALUES (1)", [])?;
            1
        }
        Some(v) if (1..=SCHEMA_VERSION).contains(&v) => v,
        Some(other) => return Err(StoreError::SchemaVersion(other)),
    };
    for (to, sql) in MIGRATIONS {
        if *to > v {
            tx.execute_batch(sql)?;
            if *to == 4 {
                backfill_et(&tx)?;
            }
            tx.execute("UPDATE schema_version SET version = ?1", [to])?;
            v = *to;
        }
    }
    tx.commit()?;
    Ok(())
}

impl SqliteStore {
    /// Opens (creating if needed) `DATA_DIR/cse.sqlite3`.
    pub fn open(data_dir: &Path) -> Result<SqliteStore, StoreError> {
        Ok(SqliteStore {
            conn: open_connection(data_dir)?,
        })
    }

    /// An in-memory store (tests, benches).
    pub fn open_in_memory() -> Result<SqliteStore, StoreError> {
        let mut conn = Connection::open_in_memory()?;
        migrate(&mut conn)?;
        Ok(SqliteStore { conn })
    }

    /// The schema version recorded in the database.
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT version FROM schema_version", [], |r| r.get(0))?)
    }
}

struct SqliteTx<'a> {
    tx: rusqlite::Transaction<'a>,
}

fn decode(body: String) -> Result<Resource, StoreError> {
    Ok(serde_json::from_str(&body)?)
}

fn ty_num(ty: ResourceType) -> i64 {
    i64::try_from(ty.as_u64()).unwrap_or(0)
}

fn map_unique(e: rusqlite::Error, what: &str) -> StoreError {
    match &e {
        rusqlite::Error::SqliteFailure(f, _)
            if f.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            StoreError::Conflict(what.to_string())
        }
        _ => StoreError::Db(e),
    }
}

/// The path of the top-level resource `r` lies under (`cb/<rn>`), None for `<CSEBase>`.
pub fn top_of(path: &str) -> Option<&str> {
    let first = path.find('/')?;
    match path[first + 1..].find('/') {
        None => Some(path),
        Some(second) => path.get(..first + 1 + second),
    }
}

fn index_cols(r: &Resource) -> (Option<&str>, Option<&str>) {
    match &r.attrs {
        crate::resource::Attrs::Ae { aei, .. } => (Some(aei.as_str()), None),
        crate::resource::Attrs::RemoteCse { csi, .. } => (None, Some(csi.as_str())),
        _ => (None, None),
    }
}

impl StoreTx for SqliteTx<'_> {
    fn get(&mut self, ri: &str) -> Result<Option<Resource>, StoreError> {
        let body: Option<String> = self
            .tx
            .prepare_cached("SELECT body FROM resources WHERE ri = ?1")?
            .query_row([ri], |r| r.get(0))
            .optional()?;
        body.map(decode).transpose()
    }

    fn get_by_path(&mut self, path: &str) -> Result<Option<Resource>, StoreError> {
        let body: Option<String> = self
            .tx
            .prepare_cached("SELECT body FROM resources WHERE path = ?1")?
            .query_row([path], |r| r.get(0))
            .optional()?;
        body.map(decode).transpose()
    }

    fn children(
        &mut self,
        pi: &str,
        ty: Option<ResourceType>,
        limit: usize,
    ) -> Result<Vec<Resource>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut out = Vec::new();
        match ty {
            Some(t) => {
                let mut st = self.tx.prepare_cached(
                    "SELECT body FROM resources WHERE pi = ?1 AND ty = ?2 ORDER BY rowid LIMIT ?3",
                )?;
                let rows =
                    st.query_map(params![pi, ty_num(t), limit], |r| r.get::<_, String>(0))?;
                for b in rows {
                    out.push(decode(b?)?);
                }
            }
            None => {
                let mut st = self.tx.prepare_cached(
                    "SELECT body FROM resources WHERE pi = ?1 ORDER BY rowid LIMIT ?2",
                )?;
                let rows = st.query_map(params![pi, limit], |r| r.get::<_, String>(0))?;
                for b in rows {
                    out.push(decode(b?)?);
                }
            }
        }
        Ok(out)
    }

    fn edge_child(
        &mut self,
        pi: &str,
        ty: ResourceType,
        newest: bool,
    ) -> Result<Option<Resource>, StoreError> {
        let sql = if newest {
            "SELECT body FROM resources WHERE pi = ?1 AND ty = ?2 ORDER BY rowid DESC LIMIT 1"
        } else {
            "SELECT body FROM resources WHERE pi = ?1 AND ty = ?2 ORDER BY rowid ASC LIMIT 1"
        };
        let body: Option<String> = self
            .tx
            .prepare_cached(sql)?
            .query_row(params![pi, ty_num(ty)], |r| r.get(0))
            .optional()?;
        body.map(decode).transpose()
    }

    fn insert(&mut self, r: &Resource) -> Result<(), StoreError> {
        let body = serde_json::to_string(r)?;
        let (aei, csi) = index_cols(r);
        self.tx
            .prepare_cached(
                "INSERT INTO resources (ri, pi, rn, ty, path, aei, csi, body, top, et_us) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )?
            .execute(params![
                r.ri,
                r.pi,
                r.rn,
                ty_num(r.ty),
                r.path,
                aei,
                csi,
                body,
                top_of(&r.path),
                r.et.map(|t| t.to_unix_micros())
            ])
            .map_err(|e| map_unique(e, "a resource with this name or ID exists"))?;
        Ok(())
    }

    fn update(&mut self, r: &Resource) -> Result<(), StoreError> {
        let body = serde_json::to_string(r)?;
        let n = self
            .tx
            .prepare_cached("UPDATE resources SET body = ?2, et_us = ?3 WHERE ri = ?1")?
            .execute(params![r.ri, body, r.et.map(|t| t.to_unix_micros())])?;
        if n != 1 {
            return Err(StoreError::Corrupt(format!("update of missing {}", r.ri)));
        }
        Ok(())
    }

    fn delete_subtree(&mut self, r: &Resource) -> Result<usize, StoreError> {
        // Descendants have paths `path/…`: the range [path + '/', path + '0') ('0' follows '/').
        let lo = format!("{}/", r.path);
        let hi = format!("{}0", r.path);
        let n = self
            .tx
            .prepare_cached("DELETE FROM resources WHERE path >= ?1 AND path < ?2")?
            .execute(params![lo, hi])?;
        let m = self
            .tx
            .prepare_cached("DELETE FROM resources WHERE ri = ?1")?
            .execute([&r.ri])?;
        Ok(n + m)
    }

    fn usage(&mut self, top: &str) -> Result<(u64, u64), StoreError> {
        let row: Option<(i64, i64)> = self
            .tx
            .prepare_cached("SELECT n, bytes FROM usage WHERE top = ?1")?
            .query_row([top], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        let (n, b) = row.unwrap_or((0, 0));
        Ok((u64::try_from(n).unwrap_or(0), u64::try_from(b).unwrap_or(0)))
    }

    fn expired(&mut self, now_us: i64, limit: usize) -> Result<Vec<Resource>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut st = self.tx.prepare_cached(
            "SELECT body FROM resources WHERE et_us IS NOT NULL AND et_us <= ?1 \
             ORDER BY path LIMIT ?2",
        )?;
        let rows = st.query_map(params![now_us, limit], |r| r.get::<_, String>(0))?;
        let mut out = Vec::new();
        for b in rows {
            out.push(decode(b?)?);
        }
        Ok(out)
    }

    fn ae_exists(&mut self, aei: &str) -> Result<bool, StoreError> {
        Ok(self
            .tx
            .prepare_cached("SELECT 1 FROM resources WHERE aei = ?1 LIMIT 1")?
            .query_row([aei], |_| Ok(()))
            .optional()?
            .is_some())
    }

    fn registree_cses(&mut self) -> Result<Vec<String>, StoreError> {
        let mut st = self
            .tx
            .prepare_cached("SELECT csi FROM resources WHERE ty = 16 AND csi IS NOT NULL")?;
        let rows = st.query_map([], |r| r.get::<_, String>(0))?;
        let mut out = Vec::new();
        for c in rows {
            out.push(c?);
        }
        Ok(out)
    }

    fn binding(&mut self, credential_id: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .tx
            .prepare_cached("SELECT ae_id FROM credential_bindings WHERE credential_id = ?1")?
            .query_row([credential_id], |r| r.get(0))
            .optional()?)
    }

    fn ae_id_bound(&mut self, ae_id: &str) -> Result<bool, StoreError> {
        Ok(self
            .tx
            .prepare_cached("SELECT 1 FROM credential_bindings WHERE ae_id = ?1 LIMIT 1")?
            .query_row([ae_id], |_| Ok(()))
            .optional()?
            .is_some())
    }

    fn bind(&mut self, credential_id: &str, ae_id: &str) -> Result<(), StoreError> {
        self.tx
            .prepare_cached(
                "INSERT INTO credential_bindings (credential_id, ae_id) VALUES (?1, ?2)",
            )?
            .execute([credential_id, ae_id])
            .map_err(|e| map_unique(e, "credential already bound"))?;
        Ok(())
    }

    fn commit(self: Box<Self>) -> Result<(), StoreError> {
        self.tx.commit()?;
        Ok(())
    }
}

impl Store for SqliteStore {
    fn begin(&mut self) -> Result<Box<dyn StoreTx + '_>, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        Ok(Box::new(SqliteTx { tx }))
    }

    fn begin_read(&mut self) -> Result<Box<dyn StoreTx + '_>, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Deferred)?;
        Ok(Box::new(SqliteTx { tx }))
    }
}
