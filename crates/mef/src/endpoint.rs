//! The MEF as an [`Endpoint`] of the bindings (HTTP over TLS, CoAP over DTLS): TS-0003 §8.3.2.1
//! (bootstrap and the enrolment exchange), §8.3.4.6 and §8.3.9 (MEF Client Commands), §8.3.5
//! (client and key registration procedures), seed 001 (IBC credential enrolment) and the legacy
//! `/fetchCredentials/<KeID>/<SUID>` retrieval. Wire formats: [`crate::wire`].
//!
//! Two kinds of session:
//! - **Enrolee** (psk_identity = a provisioned KpmID, psk = Kpm): at `open`, Ke, RelativeKeID
//!   and KeID come from the session's `EXPORTER-oneM2M-Bootstrap` export (§10.3.1, §10.3.4).
//!   The exchange runs Client Registration → Command Retrieve/Update for each Enrolment Target
//!   (MO_NODE `[authenticationProfile]` with SUID 22, then NO_MORE_COMMANDS) → IBC enrolment
//!   (ID1 → ID2, SSK, PVT, KPAK) → the Enrolee's success report. Only then is the enrolment
//!   committed, in one transaction, and the MEF ends the exchange and closes the session
//!   (§8.3.2.1 step 16). A session that dies earlier leaves nothing behind: the device simply
//!   enrols again. The commit is conditional on the device's enrolment generation read at the
//!   bootstrap (issue 9 item 9): when two exchanges of one device overlap, the second to commit
//!   is refused with CONFLICT (4105) and its Enrolee reports failure, so exactly one reports
//!   success and its KeID is the valid one. The exchange's logic is the sans-IO
//!   [`crate::exchange::Exchange`]; this service opens it ([`MefEndpoint::open_exchange`]),
//!   performs its effects ([`MefEndpoint::perform`]: the PKG's extraction, the commit) and
//!   serves the session's requests outside the exchange (key registration, the committed
//!   registration).
//! - **Target** (a configured MEF client: a CSE that must fetch keys, authenticated by its own
//!   PSK, BRIEF A3): `/fetchCredentials` and MEF Key Retrieval, authorised against the
//!   Enrolment Targets / targetIDs with the authenticated client ID, and the project-defined
//!   change feed and Enrolee-ID reservation query ([`crate::wire`]) for that client.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use rand_core::{OsRng, RngCore};
use serde_json::Value;

use m2msec_bindings::{AssociationInfo, CloseSignal, Endpoint, Handled, Opened};
use m2msec_core::duration::XsDuration;
use m2msec_core::export::{ExportedKeyingMaterial, ExporterLabel};
use m2msec_core::ids::{AeIdStemKind, CseId, EnroleeId, Fqdn, KeyId, RelKeyId, TargetId};
use m2msec_core::kdf::{enrolment_key, KdfIdentifier, SuidEncoding};
use m2msec_core::secret::{Kpm, SecretBytes};
use m2msec_core::suid::Suid;
use m2msec_core::timestamp::Timestamp;
use m2msec_keystore::SecureEnvironment;
use m2msec_proto::{Operation, RequestPrimitive, ResponsePrimitive, Rsc};
use m2msec_tls::{Psk, PskIdentity, PskResolver, ResolvedPsk, ServerConfig};

use crate::exchange::{err, ok, ts, Effect, EffectResult, Exchange, Output};
use crate::pkg::Pkg;
use crate::store::{KeyRegRow, MefStore, StoreError};
use crate::wire::{self, *};

/// SUID of the keys the exchange configures for each Enrolment Target: 22, a symmetric key
/// established by the RSPF for security association establishment (TS-0004 table
/// 6.3.4.2.39-1; BRIEF §3(a) MO_NODE families).
pub const TARGET_SUID: u8 = 22;

/// Devices that bootstrap with a certificate (TS-0003 §8.3.2.2) are stored under
/// `cert:<identity>`, the identity being the one their verified certificate binds (the SAN the
/// TLS layer reports). Their stored Kpm is never used: PSK handshakes with such an identity are
/// refused.
pub const CERT_DEVICE_PREFIX: &str = "cert:";

/// MEF configuration.
#[derive(Debug, Clone)]
pub struct MefConfig {
    /// The MEF's FQDN (KeID = hex@FQDN, Key Identifiers, ID2).
    pub fqdn: Fqdn,
    /// Run seed 001's IBC credential enrolment in the exchange.
    pub ibc: bool,
    /// retryDuration of NO_MORE_COMMANDS.
    pub retry_duration: XsDuration,
    /// SUID encoding of the §10.3.7 derivation (BRIEF A7).
    pub suid_encoding: SuidEncoding,
    /// Longest MEF Client registration / key registration lifetime, in seconds.
    pub max_registration_secs: u64,
    /// Serve target keys by the legacy §10.3.2/§10.3.3 derivations instead of §10.3.7 (BRIEF
    /// A9: a non-default option).
    pub legacy_derivation: bool,
}

impl MefConfig {
    /// The derivation of target keys this MEF serves and announces.
    pub fn key_derivation(&self) -> KeyDerivation {
        match (self.legacy_derivation, self.suid_encoding) {
            (true, _) => KeyDerivation::Legacy,
            (false, SuidEncoding::SingleOctet) => KeyDerivation::UsageOctet,
            (false, SuidEncoding::AsciiDecimal) => KeyDerivation::UsageAscii,
        }
    }
}

/// A configured MEF client that retrieves keys (an Enrolment Target such as a registrar CSE).
#[derive(Debug, Clone)]
pub struct TargetClient {
    /// Its psk_identity.
    pub psk_identity: PskIdentity,
    /// Its PSK.
    pub key: Psk,
    /// Its absolute ID (CSE-ID `//sp/cse-in`, AE-ID or MAF FQDN): what it is authorised as.
    pub client_id: TargetId,
}

/// Per-session state.
#[derive(Debug)]
pub enum MefSession {
    /// An Enrolee in the enrolment exchange.
    Enrolee(Box<Mutex<Exchange>>),
    /// A configured target client.
    Target {
        /// Its authenticated ID.
        client_id: TargetId,
    },
}

pub use crate::clock::Clock;

/// The MEF endpoint.
pub struct MefEndpoint {
    cfg: MefConfig,
    store: Mutex<MefStore>,
    /// A second connection for lookups, so a session opening (on a tokio worker) or a
    /// retrieval never waits behind another session's commit and its fsync (WAL readers do not
    /// block on the writer).
    reader: Mutex<MefStore>,
    pkg: Arc<dyn Pkg>,
    targets: HashMap<String, TargetId>,
    clock: Clock,
    /// The handshake's PSK table and the connection that reloads it.
    psks: Arc<PskTable>,
    psk_watch: Arc<Mutex<PskWatch>>,
}

impl std::fmt::Debug for MefEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MefEndpoint")
            .field("fqdn", &self.cfg.fqdn)
            .finish_non_exhaustive()
    }
}

/// How often the PSK table's watcher looks at the store (as the CSE's credential watcher,
/// `m2msec_cse_service::endpoint::WATCH_INTERVAL`): a device added or revoked by another process
/// (`m2msec mef device add/revoke`) is served or refused within this interval.
pub const PSK_WATCH_INTERVAL: Duration = Duration::from_millis(200);

/// One provisioned, non-revoked device as the bootstrap handshake needs it.
struct DeviceKey {
    kpm: Kpm,
    enrolee_id: EnroleeId,
}

/// The MEF's bootstrap PSKs in memory (KpmID → Kpm, TS-0003 §8.3.2.1 step 1): the TLS
/// handshake callback reads this map and never touches SQLite. A watcher thread
/// ([`spawn_psk_watcher`]) reloads it when the store's device table changes.
#[derive(Default)]
struct PskTable {
    devices: RwLock<HashMap<String, DeviceKey>>,
}

/// The store connection the PSK table is reloaded from, with the `data_version` and device
/// counter last seen.
struct PskWatch {
    store: MefStore,
    version: i64,
    counter: i64,
}

impl PskWatch {
    /// Reloads `table` if the device table changed since the last look (`PRAGMA
    /// data_version`, then the trigger-kept counter); returns whether it did. Blocking.
    fn refresh(&mut self, table: &PskTable) -> Result<bool, StoreError> {
        let v = self.store.data_version()?;
        if v == self.version {
            return Ok(false);
        }
        self.version = v;
        let c = self.store.devices_version()?;
        if c == self.counter {
            return Ok(false);
        }
        self.load(table)?;
        self.counter = c;
        Ok(true)
    }

    /// Replaces the table with the store's current non-revoked devices.
    fn load(&self, table: &PskTable) -> Result<(), StoreError> {
        let map = self
            .store
            .active_device_keys()?
            .into_iter()
            .map(|(kpm_id, enrolee_id, kpm)| (kpm_id, DeviceKey { kpm, enrolee_id }))
            .collect();
        *table.devices.write().unwrap_or_else(|p| p.into_inner()) = map;
        Ok(())
    }
}

/// Follows the store for `table` every `every` on a thread of its own (the lookups stay off
/// the runtime); ends within one interval after the table is dropped.
fn spawn_psk_watcher(table: &Arc<PskTable>, watch: Arc<Mutex<PskWatch>>, every: Duration) {
    let weak = Arc::downgrade(table);
    let spawned = std::thread::Builder::new()
        .name("mef-psk-watch".into())
        .spawn(move || loop {
            std::thread::sleep(every);
            let Some(table) = weak.upgrade() else {
                return;
            };
            let mut w = watch.lock().unwrap_or_else(|p| p.into_inner());
            match w.refresh(&table) {
                Ok(true) => tracing::info!("device table changed: PSK table reloaded"),
                Ok(false) => {}
                Err(e) => {
                    tracing::error!(error = %e, "PSK table reload failed; serving the last one")
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the PSK table watcher; device changes need a restart");
    }
}

/// Resolves PSKs for the MEF's handshakes: configured target clients, then provisioned
/// devices from the in-memory [`PskTable`].
struct MefResolver {
    targets: HashMap<String, Psk>,
    devices: Arc<PskTable>,
}

impl PskResolver for MefResolver {
    fn resolve(&self, sni: Option<&str>, identity: &PskIdentity) -> Option<ResolvedPsk> {
        let r = self.lookup(sni, identity);
        if r.is_none() {
            // Issue 9 item 10: refused identities at WARN, rate-limited, never the key.
            m2msec_bindings::audit::unknown_identity(identity.as_str(), "unknown or revoked");
        }
        r
    }
}

impl MefResolver {
    fn lookup(&self, _sni: Option<&str>, identity: &PskIdentity) -> Option<ResolvedPsk> {
        if identity.as_str().starts_with(CERT_DEVICE_PREFIX) {
            return None;
        }
        if let Some(k) = self.targets.get(identity.as_str()) {
            return Some(ResolvedPsk {
                key: k.clone(),
                bound: m2msec_tls::BoundIdentity::credential_id_psk(identity),
            });
        }
        let devices = self
            .devices
            .devices
            .read()
            .unwrap_or_else(|p| p.into_inner());
        let d = devices.get(identity.as_str())?;
        Some(ResolvedPsk {
            key: Psk::new(d.kpm.expose_secret()).ok()?,
            bound: m2msec_tls::BoundIdentity::Configured(d.enrolee_id.to_string()),
        })
    }
}

fn random_hex(n: usize) -> String {
    crate::exchange::random_hex(&mut OsRng, n)
}

/// What [`MefEndpoint::exchange_step`] produced.
#[derive(Debug)]
pub enum Step {
    /// The answer.
    Reply(Handled),
    /// An effect to perform ([`MefEndpoint::perform`]) and feed to [`Exchange::resume`].
    Effect(Effect),
}

fn store_err(rqi: &str, e: StoreError) -> Handled {
    tracing::error!(error = %e, "MEF store");
    err(Rsc::InternalServerError, rqi, "internal error")
}

impl MefEndpoint {
    /// The endpoint and its TLS/DTLS server configuration. `data_dir` holds the store; the
    /// resolver opens its own read connection to it.
    pub fn new(
        cfg: MefConfig,
        data_dir: &Path,
        pkg: Arc<dyn Pkg>,
        targets: Vec<TargetClient>,
    ) -> Result<(Arc<Self>, ServerConfig), StoreError> {
        Self::with_clock(cfg, data_dir, pkg, targets, Clock::system())
    }

    /// As [`MefEndpoint::new`] with a clock (tests).
    pub fn with_clock(
        cfg: MefConfig,
        data_dir: &Path,
        pkg: Arc<dyn Pkg>,
        targets: Vec<TargetClient>,
        clock: Clock,
    ) -> Result<(Arc<Self>, ServerConfig), StoreError> {
        Self::with_environment(
            cfg,
            data_dir,
            &SecureEnvironment::Files,
            pkg,
            targets,
            clock,
        )
    }

    /// As [`MefEndpoint::with_clock`] with the store's records sealed in the secure
    /// environment `se` (TS-0003 §6.3.1; [`MefStore::open_in`]).
    pub fn with_environment(
        cfg: MefConfig,
        data_dir: &Path,
        se: &SecureEnvironment,
        pkg: Arc<dyn Pkg>,
        targets: Vec<TargetClient>,
        clock: Clock,
    ) -> Result<(Arc<Self>, ServerConfig), StoreError> {
        let store = MefStore::open_in(data_dir, se)?;
        let lookups = MefStore::open_in(data_dir, se)?;
        let reader = MefStore::open_in(data_dir, se)?;
        let watch = PskWatch {
            version: reader.data_version()?,
            counter: reader.devices_version()?,
            store: reader,
        };
        let psks = Arc::new(PskTable::default());
        watch.load(&psks)?;
        let psk_watch = Arc::new(Mutex::new(watch));
        spawn_psk_watcher(&psks, psk_watch.clone(), PSK_WATCH_INTERVAL);
        let resolver = MefResolver {
            targets: targets
                .iter()
                .map(|t| (t.psk_identity.as_str().to_string(), t.key.clone()))
                .collect(),
            devices: psks.clone(),
        };
        let mut tls = ServerConfig::psk(Arc::new(resolver));
        tls.authorities = Some(vec![cfg.fqdn.as_str().to_string()]);
        let ep = MefEndpoint {
            targets: targets
                .into_iter()
                .map(|t| (t.psk_identity.as_str().to_string(), t.client_id))
                .collect(),
            cfg,
            store: Mutex::new(store),
            reader: Mutex::new(lookups),
            pkg,
            clock,
            psks,
            psk_watch,
        };
        Ok((Arc::new(ep), tls))
    }

    /// Runs `f` on the store (operator tools in the same process, tests), then brings the
    /// handshake's PSK table up to date at once (changes by other processes are seen by the
    /// watcher within [`PSK_WATCH_INTERVAL`]).
    pub fn with_store<T>(&self, f: impl FnOnce(&mut MefStore) -> T) -> T {
        let out = {
            let mut s = self.store.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut s)
        };
        self.refresh_psks();
        out
    }

    /// Runs `f` on the write connection (the exchange's commits and the key registrations,
    /// which leave the device table alone: no PSK table refresh).
    fn write_store<T>(&self, f: impl FnOnce(&mut MefStore) -> T) -> T {
        let mut s = self.store.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut s)
    }

    /// Reloads the PSK table if the store's devices changed; returns whether it did.
    /// Blocking (SQLite); the watcher thread runs it every [`PSK_WATCH_INTERVAL`].
    pub fn refresh_psks(&self) -> bool {
        let mut w = self.psk_watch.lock().unwrap_or_else(|p| p.into_inner());
        match w.refresh(&self.psks) {
            Ok(changed) => changed,
            Err(e) => {
                tracing::error!(error = %e, "PSK table reload failed; serving the last one");
                false
            }
        }
    }

    /// Runs a lookup on the read connection.
    fn with_reader<T>(&self, f: impl FnOnce(&MefStore) -> T) -> T {
        let s = self.reader.lock().unwrap_or_else(|p| p.into_inner());
        f(&s)
    }

    fn now(&self) -> i64 {
        self.clock.now()
    }

    /// A new enrolment exchange for the device provisioned under `kpm_id`, after a bootstrap
    /// handshake whose exports are `bootstrap` (Ke, KeID: TS-0003 §10.3.1, §10.3.4) and
    /// `connection` (Kc, BRIEF A10). `None` if the device is unknown or revoked (or the store
    /// fails). The transports call this at `open`; the simulated pair of `tests/sim.rs` calls
    /// it with exports of its own.
    pub fn open_exchange(
        &self,
        kpm_id: &str,
        bootstrap: &ExportedKeyingMaterial,
        connection: Option<&ExportedKeyingMaterial>,
    ) -> Option<Exchange> {
        let ((device, _kpm), gen): ((_, Kpm), i64) = self
            .with_reader(|s| Ok::<_, StoreError>((s.device(kpm_id)?, s.enrol_gen(kpm_id)?)))
            .ok()
            .and_then(|(d, g)| Some((d?, g?)))?;
        if device.revoked.is_some() {
            return None;
        }
        let ek = enrolment_key(bootstrap, &self.cfg.fqdn);
        tracing::info!(kpm_id, ke_id = %ek.ke_id, "bootstrap handshake: enrolment key generated");
        Some(Exchange::new(
            device,
            gen,
            ek,
            connection.map(ExportedKeyingMaterial::split_connection),
        ))
    }

    fn open_enrolee(&self, info: &AssociationInfo<'_>, kpm_id: &str) -> Option<MefSession> {
        let bootstrap = (info.exporter)(ExporterLabel::Bootstrap)?;
        let connection = (info.exporter)(ExporterLabel::Connection);
        let x = self.open_exchange(kpm_id, &bootstrap, connection.as_ref())?;
        Some(MefSession::Enrolee(Box::new(Mutex::new(x))))
    }

    /// One request of an Enrolee's session: the exchange's answer or the effect it asks for
    /// (requests outside the exchange, e.g. key registration, are served here against the
    /// store). `rng` draws the exchange's identifiers.
    pub fn exchange_step(
        &self,
        x: &mut Exchange,
        prim: RequestPrimitive,
        rng: &mut dyn RngCore,
    ) -> Step {
        match x.handle(&self.cfg, prim, self.now(), rng) {
            Output::Reply(h) => Step::Reply(h),
            Output::Effect(e) => Step::Effect(e),
            Output::Outside(prim) => Step::Reply(self.outside_exchange(x, prim)),
        }
    }

    /// Performs an effect of the exchange: the PKG's extraction, or the conditional commit in
    /// the store (one transaction).
    pub fn perform(&self, effect: &Effect) -> EffectResult {
        match effect {
            Effect::Extract { id2 } => EffectResult::Extracted(
                self.pkg
                    .extract(id2.as_bytes())
                    .map(|k| Box::new((k, self.pkg.kpak())))
                    .map_err(|e| e.to_string()),
            ),
            Effect::Commit(c) => EffectResult::Committed(self.write_store(|s| {
                s.commit_enrolment(
                    &c.enrolment,
                    &c.ke,
                    &c.admin_fqdn,
                    c.labels.as_deref(),
                    c.reg_expires,
                    c.expected_gen,
                    c.now,
                )
            })),
        }
    }

    /// The exchange driven to its answer: each effect performed, its result fed back.
    fn handle_enrolee(&self, x: &mut Exchange, prim: RequestPrimitive) -> Handled {
        match self.exchange_step(x, prim, &mut OsRng) {
            Step::Reply(h) => h,
            Step::Effect(e) => {
                let r = self.perform(&e);
                x.resume(r)
            }
        }
    }

    /// The requests of an Enrolee's session that are not part of its exchange.
    fn outside_exchange(&self, x: &Exchange, prim: RequestPrimitive) -> Handled {
        let to = prim.to.trim_start_matches('/').to_string();
        if prim.op == Operation::Create {
            return self.key_registration(x, &prim);
        }
        if let Some(rel) = to.strip_prefix("mef/keys/") {
            return self.key_reg_by_source(x.enrolee_id(), rel, &prim);
        }
        match to.strip_prefix("mef/") {
            Some(id) => self.committed_registration(x, &prim, id),
            None => err(Rsc::NotFound, &prim.rqi, "no such MEF resource"),
        }
    }

    /// Configuration Retrieval, Registration Update and De-registration (TS-0003 §8.3.5.2.4–6)
    /// of the device's committed registration, from a later session authenticated with its
    /// Kpm (or certificate).
    fn committed_registration(&self, x: &Exchange, prim: &RequestPrimitive, id: &str) -> Handled {
        let rqi = &prim.rqi;
        let found = match self.with_reader(|s| {
            Ok::<_, StoreError>((s.registration(x.kpm_id())?, s.enrolment_of(x.kpm_id())?))
        }) {
            Ok(f) => f,
            Err(e) => return store_err(rqi, e),
        };
        let (Some(reg), Some(enrolment)) = found else {
            return err(Rsc::NotFound, rqi, "no such MEF client registration");
        };
        if reg.reg_id != id {
            return err(Rsc::NotFound, rqi, "no such MEF client registration");
        }
        let now = self.now();
        match prim.op {
            Operation::Retrieve => {
                let view = ClientReg {
                    reg_id: reg.reg_id.clone(),
                    expiration_time: ts(reg.expires),
                    labels: reg.labels.clone(),
                    client_id: enrolment.enrolee_id.clone(),
                    admin_fqdn: reg.admin_fqdn.clone(),
                    ke_id: enrolment.ke_id.clone(),
                    enrolment_expiry: ts(enrolment.expires),
                    ibc_enrolment: enrolment.id2.is_some(),
                    key_derivation: self.cfg.key_derivation(),
                    children: vec![],
                };
                ok(Rsc::Ok, rqi, wire::wrap("mefClientReg", &view))
            }
            Operation::Update => {
                let max = now
                    .saturating_add(self.cfg.max_registration_secs as i64)
                    .min(enrolment.expires);
                match parse_reg_update(prim.pc.as_ref(), now, max) {
                    Ok((expires, labels, echo)) => {
                        let labels = labels.or(reg.labels);
                        let r = self.write_store(|s| {
                            s.update_registration(
                                x.kpm_id(),
                                expires.unwrap_or(reg.expires),
                                labels.as_deref(),
                            )
                        });
                        match r {
                            Ok(_) => ok(Rsc::Updated, rqi, echo),
                            Err(e) => store_err(rqi, e),
                        }
                    }
                    Err(e) => err(Rsc::BadRequest, rqi, e),
                }
            }
            Operation::Delete => match self.write_store(|s| s.deregister(x.kpm_id(), now)) {
                Ok(_) => {
                    tracing::info!(kpm_id = %x.kpm_id(), reg_id = %reg.reg_id, "MEF client de-registered");
                    ResponsePrimitive::new(Rsc::Deleted, rqi.as_str()).into()
                }
                Err(e) => store_err(rqi, e),
            },
            Operation::Create | Operation::Notify => err(
                Rsc::OperationNotAllowed,
                rqi,
                "not an operation on a registration",
            ),
        }
    }

    fn key_registration(&self, x: &Exchange, prim: &RequestPrimitive) -> Handled {
        let rqi = &prim.rqi;
        let req: KeyRegRequest = match wire::unwrap("mefKeyReg", prim.pc.as_ref()) {
            Ok(r) => r,
            Err(e) => return err(Rsc::BadRequest, rqi, e.to_string()),
        };
        let Ok(suid) = Suid::new(req.suid) else {
            return err(Rsc::BadRequest, rqi, "SUID is not a defined m2m:suid");
        };
        let targets = req.target_ids.clone().unwrap_or_default();
        // BRIEF check 29: SAEF and ESPrim keys have exactly one target; ESData at least one.
        let (min, max) = match suid.value() % 10 {
            2 | 3 => (1, 1),
            4 | 5 => (1, usize::MAX),
            _ => (0, usize::MAX),
        };
        if targets.len() < min || targets.len() > max {
            return err(
                Rsc::BadRequest,
                rqi,
                format!("SUID {} needs {min}..{max} targetIDs", suid.value()),
            );
        }
        let (rel, key): (String, zeroize::Zeroizing<Vec<u8>>) = match &req.key_value {
            Some(k) => match k.len() {
                16..=64 => (
                    random_hex(16),
                    zeroize::Zeroizing::new(k.expose_secret().to_vec()),
                ),
                _ => {
                    return err(
                        Rsc::BadRequest,
                        rqi,
                        "keyValue must be 16..64 bytes of base64",
                    )
                }
            },
            // BRIEF A10/A11: Kc from EXPORTER-oneM2M-Connection, RelativeKeyID = hex(KcID).
            None => match x.kc() {
                Some((kc, id)) => (
                    hex::encode(id),
                    zeroize::Zeroizing::new(kc.expose_secret().to_vec()),
                ),
                None => return err(Rsc::InternalServerError, rqi, "no connection key"),
            },
        };
        let Ok(rel) = rel.parse::<RelKeyId>() else {
            return err(Rsc::InternalServerError, rqi, "RelativeKeyID");
        };
        let now = self.now();
        let max = now.saturating_add(self.cfg.max_registration_secs as i64);
        let expires = req
            .expiration_time
            .map(|t| t.to_unix().clamp(now, max))
            .unwrap_or(max);
        let row = KeyRegRow {
            rel_key_id: rel,
            source_client: x.enrolee_id().clone(),
            kpm_id: Some(x.kpm_id().to_string()),
            suid: suid.value(),
            target_ids: targets,
            labels: req.labels,
            admin_fqdn: req.admin_fqdn,
            expires,
        };
        match self.write_store(|s| s.insert_key_reg(&row, &key)) {
            Ok(true) => {}
            Ok(false) => return err(Rsc::Conflict, rqi, "this key is already registered"),
            Err(e) => return store_err(rqi, e),
        }
        ok(
            Rsc::Created,
            rqi,
            wire::wrap("mefKeyReg", &self.key_reg_view(&row, None)),
        )
    }

    fn key_reg_view(&self, k: &KeyRegRow, key: Option<&[u8]>) -> KeyReg {
        KeyReg {
            relative_key_id: k.rel_key_id.clone(),
            key_id: KeyId::new(k.rel_key_id.clone(), self.cfg.fqdn.clone()),
            expiration_time: ts(k.expires),
            source_client_id: k.source_client.clone(),
            labels: k.labels.clone(),
            admin_fqdn: k.admin_fqdn.clone(),
            suid: k.suid,
            target_ids: k.target_ids.clone(),
            key_value: key.map(SecretBytes::from_slice),
        }
    }

    /// Key Retrieval by a target, or Update/De-registration/Retrieve by the source client.
    fn key_reg_by_source(&self, source: &EnroleeId, rel: &str, prim: &RequestPrimitive) -> Handled {
        let rqi = &prim.rqi;
        let Ok(rel) = rel.parse::<RelKeyId>() else {
            return err(Rsc::BadRequest, rqi, "not a RelativeKeyID");
        };
        let rel = &rel;
        let found = match self.with_reader(|s| s.key_reg(rel)) {
            Ok(f) => f,
            Err(e) => return store_err(rqi, e),
        };
        let Some((mut row, _key)) = found else {
            return err(Rsc::NotFound, rqi, "no such key registration");
        };
        if row.source_client != *source {
            return err(
                Rsc::OriginatorHasNoPrivilege,
                rqi,
                "only the source MEF client may manage this key registration",
            );
        }
        match prim.op {
            Operation::Retrieve => ok(
                Rsc::Ok,
                rqi,
                wire::wrap("mefKeyReg", &self.key_reg_view(&row, None)),
            ),
            Operation::Delete => match self.write_store(|s| s.delete_key_reg(rel)) {
                Ok(_) => ResponsePrimitive::new(Rsc::Deleted, rqi.as_str()).into(),
                Err(e) => store_err(rqi, e),
            },
            Operation::Update => {
                let v = match prim.pc.as_ref().and_then(|p| p.get("mefKeyReg")) {
                    Some(Value::Object(m)) => m.clone(),
                    _ => {
                        return err(
                            Rsc::BadRequest,
                            rqi,
                            "content must be {\"mefKeyReg\": {...}}",
                        )
                    }
                };
                let now = self.now();
                for (k, val) in &v {
                    match k.as_str() {
                        "expirationTime" => {
                            match serde_json::from_value::<Timestamp>(val.clone()) {
                                Ok(t) => {
                                    row.expires = t
                                        .to_unix()
                                        .clamp(now, now + self.cfg.max_registration_secs as i64)
                                }
                                Err(e) => {
                                    return err(
                                        Rsc::BadRequest,
                                        rqi,
                                        format!("expirationTime: {e}"),
                                    )
                                }
                            }
                        }
                        "labels" => match serde_json::from_value::<Vec<String>>(val.clone()) {
                            Ok(l) => row.labels = Some(l),
                            Err(e) => return err(Rsc::BadRequest, rqi, format!("labels: {e}")),
                        },
                        "targetIDs" => match serde_json::from_value::<Vec<TargetId>>(val.clone()) {
                            Ok(t) if !t.is_empty() => row.target_ids = t,
                            _ => {
                                return err(
                                    Rsc::BadRequest,
                                    rqi,
                                    "targetIDs must be a non-empty list",
                                )
                            }
                        },
                        other => {
                            return err(Rsc::BadRequest, rqi, format!("{other} cannot be updated"))
                        }
                    }
                }
                if v.is_empty() {
                    return err(
                        Rsc::BadRequest,
                        rqi,
                        "at least one of expirationTime, labels, targetIDs",
                    );
                }
                match self.write_store(|s| s.update_key_reg(&row)) {
                    Ok(_) => ok(
                        Rsc::Updated,
                        rqi,
                        wire::wrap("mefKeyReg", &self.key_reg_view(&row, None)),
                    ),
                    Err(e) => store_err(rqi, e),
                }
            }
            Operation::Create | Operation::Notify => err(
                Rsc::OperationNotAllowed,
                rqi,
                "CREATE on a key registration",
            ),
        }
    }

    fn handle_target(&self, client_id: &TargetId, prim: RequestPrimitive) -> Handled {
        let rqi = prim.rqi.clone();
        if prim.fr != Some(client_id.to_string()) {
            return err(
                Rsc::OriginatorNotAuthenticated,
                &rqi,
                "From must be the ID this security association authenticated",
            );
        }
        let to = prim.to.trim_start_matches('/');
        if let Some(rest) = to.strip_prefix(&format!("{FETCH_CREDENTIALS}/")) {
            if prim.op != Operation::Retrieve {
                return err(
                    Rsc::OperationNotAllowed,
                    &rqi,
                    "fetchCredentials is RETRIEVE only",
                );
            }
            return self.fetch_credentials(client_id, rest, &rqi);
        }
        if let Some(rel) = to.strip_prefix("mef/keys/") {
            if prim.op != Operation::Retrieve {
                return err(
                    Rsc::OriginatorHasNoPrivilege,
                    &rqi,
                    "only the source client manages a key registration",
                );
            }
            let Ok(rel) = rel.parse::<RelKeyId>() else {
                return err(Rsc::BadRequest, &rqi, "not a RelativeKeyID");
            };
            let found = match self.with_reader(|s| s.key_reg(&rel)) {
                Ok(f) => f,
                Err(e) => return store_err(&rqi, e),
            };
            let Some((row, key)) = found else {
                return err(Rsc::NotFound, &rqi, "no such key registration");
            };
            if row.expires <= self.now() {
                return err(Rsc::NotFound, &rqi, "the key registration has expired");
            }
            // BRIEF check 30: the key only to an authenticated requester named in targetIDs.
            if !row.target_ids.iter().any(|t| t == client_id) {
                return err(
                    Rsc::OriginatorHasNoPrivilege,
                    &rqi,
                    "requester is not in targetIDs",
                );
            }
            return ok(
                Rsc::Ok,
                &rqi,
                wire::wrap("mefKeyReg", &self.key_reg_view(&row, Some(&key))),
            );
        }
        if let Some(cursor) = to.strip_prefix(&format!("{CHANGES}/")) {
            if prim.op != Operation::Retrieve {
                return err(
                    Rsc::OperationNotAllowed,
                    &rqi,
                    "the change feed is RETRIEVE only",
                );
            }
            return self.change_feed(client_id, cursor, &rqi);
        }
        if let Some(stem) = to.strip_prefix(&format!("{ENROLEES}/")) {
            if prim.op != Operation::Retrieve {
                return err(Rsc::OperationNotAllowed, &rqi, "RETRIEVE only");
            }
            return self.enrolee_reservation(client_id, stem, &rqi);
        }
        err(Rsc::NotFound, &rqi, "no such MEF resource")
    }

    /// `mef/changes/<cursor>` (project-defined, [`crate::wire`]): the changes after `cursor`
    /// of the devices that name `client_id` among their Enrolment Targets; `head` answers the
    /// current cursor.
    fn change_feed(&self, client_id: &TargetId, cursor: &str, rqi: &str) -> Handled {
        let page = if cursor == "head" {
            self.with_reader(|s| s.change_head())
                .map(|head| crate::store::ChangePage {
                    changes: Vec::new(),
                    next: head,
                    more: false,
                    reset: false,
                })
        } else {
            let Some(after) = cursor.parse::<i64>().ok().filter(|a| *a >= 0) else {
                return err(Rsc::BadRequest, rqi, "the cursor must be head or a number");
            };
            self.with_reader(|s| s.changes_after(after, Some(client_id), CHANGES_PAGE))
        };
        let page = match page {
            Ok(p) => p,
            Err(e) => return store_err(rqi, e),
        };
        let feed = ChangeFeed {
            next: page.next,
            more: page.more,
            reset: page.reset,
            changes: page
                .changes
                .into_iter()
                .map(|c| ChangeEvent {
                    seq: c.seq,
                    event: c.kind,
                    enrolee_id: c.enrolee_id,
                    ke_id: c.ke_id,
                    ended_ke_id: c.ended_ke_id,
                })
                .collect(),
        };
        ok(Rsc::Ok, rqi, wire::wrap("mefChanges", &feed))
    }

    /// `mef/enrolees/<AE-ID-Stem>` (project-defined, [`crate::wire`]): whether a device that
    /// is not revoked and names `client_id` among its Enrolment Targets has that stem as its
    /// Enrolee-ID, in the bare, SP-relative or absolute form of an AE-ID registered at that
    /// client.
    fn enrolee_reservation(&self, client_id: &TargetId, stem: &str, rqi: &str) -> Handled {
        let Ok(parsed) = stem.parse::<m2msec_core::ids::AeIdStem>() else {
            return err(Rsc::BadRequest, rqi, "not an AE-ID-Stem");
        };
        let mut forms = vec![stem.to_string()];
        if let TargetId::Cse(CseId::Absolute { sp, stem: cse }) = client_id {
            // TS-0001 §7.2: C-type AE-IDs carry the registrar's CSE-ID; S-type ones do not.
            match parsed.kind() {
                AeIdStemKind::C => {
                    forms.push(format!("/{cse}/{stem}"));
                    forms.push(format!("//{sp}/{cse}/{stem}"));
                }
                AeIdStemKind::S => {
                    forms.push(format!("/{stem}"));
                    forms.push(format!("//{sp}/{stem}"));
                }
            }
        }
        let forms: Vec<&str> = forms.iter().map(String::as_str).collect();
        match self.with_reader(|s| s.enrolee_provisioned_for(&forms, client_id)) {
            Ok(reserved) => ok(
                Rsc::Ok,
                rqi,
                wire::wrap(
                    "mefEnrolee",
                    &EnroleeReservation {
                        enrolee_id: parsed,
                        reserved,
                    },
                ),
            ),
            Err(e) => store_err(rqi, e),
        }
    }

    /// `/fetchCredentials/<KeID>/<SUID>` (TS-0003 §8.3.2.1 step 6, BRIEF check 33).
    fn fetch_credentials(&self, client_id: &TargetId, rest: &str, rqi: &str) -> Handled {
        let refuse = |rsc: Rsc, why: &str| -> Handled {
            let body = FetchCredentialsResponse {
                status: false,
                credential: None,
                enrolee_id: None,
                lifetime: None,
                error_string: Some(why.to_string()),
            };
            let mut r = ResponsePrimitive::new(rsc, rqi);
            r.pc = Some(serde_json::to_value(body).unwrap_or(Value::Null));
            r.into()
        };
        let Some((ke_id, suid)) = rest.rsplit_once('/') else {
            return refuse(
                Rsc::BadRequest,
                "target must be fetchCredentials/<KeID>/<SUID>",
            );
        };
        let Ok(ke_id) = ke_id.parse::<m2msec_core::ids::KeId>() else {
            return refuse(Rsc::BadRequest, "KeID is malformed");
        };
        let Some(suid) = suid.parse::<u8>().ok().and_then(|s| Suid::new(s).ok()) else {
            return refuse(Rsc::BadRequest, "SUID is not a defined m2m:suid");
        };
        if suid.value() / 10 != 2 {
            return refuse(
                Rsc::BadRequest,
                "only RSPF-established symmetric SUIDs (2x) are served",
            );
        }
        let found = match self.with_reader(|s| {
            let e = s.enrolment_by_ke_id(&ke_id)?;
            match e {
                Some((e, ke)) => Ok(s.device(&e.kpm_id)?.map(|(d, _)| (e, ke, d))),
                None => Ok(None),
            }
        }) {
            Ok(f) => f,
            Err(e) => return store_err(rqi, e),
        };
        let Some((enrolment, ke, device)) = found else {
            return refuse(Rsc::NotFound, "unknown KeID");
        };
        if enrolment.expires <= self.now() {
            return refuse(Rsc::OriginatorHasNoPrivilege, "the enrolment has expired");
        }
        if device.revoked.is_some() || !device.targets.iter().any(|t| t == client_id) {
            return refuse(
                Rsc::OriginatorHasNoPrivilege,
                "requester is not an Enrolment Target of this Enrolee",
            );
        }
        let Ok(target) = KdfIdentifier::new(&client_id.to_string()) else {
            return refuse(
                Rsc::BadRequest,
                "requester ID is not a valid KDF identifier",
            );
        };
        let key = self.cfg.key_derivation().derive(&ke, suid, &target);
        let body = FetchCredentialsResponse {
            status: true,
            credential: Some(SecretBytes::from_slice(key.expose_secret())),
            enrolee_id: Some(enrolment.enrolee_id),
            lifetime: Some(ts(enrolment.expires)),
            error_string: None,
        };
        ok(
            Rsc::Ok,
            rqi,
            serde_json::to_value(body).unwrap_or(Value::Null),
        )
    }
}

impl Endpoint for MefEndpoint {
    type Session = MefSession;

    fn responder_id(&self) -> String {
        self.cfg.fqdn.to_string()
    }

    fn open(&self, assoc: Option<&AssociationInfo<'_>>) -> Option<Opened<MefSession>> {
        // No plaintext sessions: every MEF procedure needs an authenticated association.
        let a = assoc?;
        if a.peer.credential == m2msec_tls::CredentialKind::Certificate {
            // Certificate-Based RSPF (TS-0003 §8.3.2.2): the Enrolee is the device provisioned
            // under the identity its verified certificate carries; the exchange is the same.
            let id = format!(
                "{CERT_DEVICE_PREFIX}{}",
                a.peer.bound_identity.as_ref()?.as_str()
            );
            return Some(Opened {
                session: self.open_enrolee(a, &id)?,
                close: CloseSignal::new(),
            });
        }
        if a.peer.credential != m2msec_tls::CredentialKind::Psk {
            return None;
        }
        let id = a.peer.psk_identity.as_ref()?.as_str();
        if id.starts_with(CERT_DEVICE_PREFIX) {
            return None;
        }
        let session = match self.targets.get(id) {
            Some(client_id) => MefSession::Target {
                client_id: client_id.clone(),
            },
            None => self.open_enrolee(a, id)?,
        };
        Some(Opened {
            session,
            close: CloseSignal::new(),
        })
    }

    /// Two workers: one request may wait on a commit's fsync or a remote PKG while the other
    /// serves (the store connection is still one lock).
    fn workers(&self) -> usize {
        2
    }

    fn handle(&self, session: &MefSession, prim: RequestPrimitive) -> Handled {
        let rqi = prim.rqi.clone();
        let mut h = match session {
            MefSession::Enrolee(x) => {
                let mut x = x.lock().unwrap_or_else(|p| p.into_inner());
                self.handle_enrolee(&mut x, prim)
            }
            MefSession::Target { client_id } => self.handle_target(client_id, prim),
        };
        if h.response.rqi.is_empty() {
            h.response.rqi = rqi;
        }
        if h.response.fr.is_none() {
            h.response.fr = Some(self.cfg.fqdn.to_string());
        }
        h
    }
}

/// New expiry, new labels, and the response content of a Registration Update.
pub(crate) type RegUpdate = (Option<i64>, Option<Vec<String>>, Value);

/// A Registration Update body (TS-0003 table 8.3.5.2.5-1): at least one of `expirationTime`
/// and `labels`; the expiry is clamped to `now..=max`. Returns the new values and the response
/// content, which carries only the fields sent (table 8.3.5.2.5-2).
pub(crate) fn parse_reg_update(
    pc: Option<&Value>,
    now: i64,
    max: i64,
) -> Result<RegUpdate, String> {
    let m = match pc.and_then(|p| p.get("mefClientReg")) {
        Some(Value::Object(m)) if pc.and_then(Value::as_object).map(|o| o.len()) == Some(1) => m,
        _ => return Err("content must be {\"mefClientReg\": {...}}".into()),
    };
    let mut expires = None;
    let mut labels = None;
    let mut echo = serde_json::Map::new();
    for (k, v) in m {
        match k.as_str() {
            "expirationTime" => {
                let t: Timestamp = serde_json::from_value(v.clone())
                    .map_err(|e| format!("expirationTime: {e}"))?;
                let e = t.to_unix().clamp(now, max);
                echo.insert(
                    k.clone(),
                    serde_json::to_value(ts(e)).unwrap_or(Value::Null),
                );
                expires = Some(e);
            }
            "labels" => {
                let l: Vec<String> =
                    serde_json::from_value(v.clone()).map_err(|e| format!("labels: {e}"))?;
                echo.insert(k.clone(), v.clone());
                labels = Some(l);
            }
            other => return Err(format!("{other} cannot be updated")),
        }
    }
    if expires.is_none() && labels.is_none() {
        return Err("at least one of expirationTime, labels".into());
    }
    Ok((
        expires,
        labels,
        wire::wrap("mefClientReg", &Value::Object(echo)),
    ))
}
