//! The registrar CSE's [`Endpoint`](m2msec_bindings::Endpoint): each established security
//! association becomes the engine's [`SecurityContext`] (TS-0003 §7.2.1), and each request one
//! `Cse::handle` call under the engine's lock.
//!
//! The CSE's PSK credentials (TS-0003 §8.2.2.1) live in memory, so the handshake callback never
//! waits on SQLite: the configuration's `[[psk]]` entries, the credential store's rows
//! ([`m2msec_cse::credentials`], reloaded by [`CseEndpoint::spawn_watcher`] when SQLite's
//! `data_version` and the table's change counter move) and keys cached from an optional [`RemoteKeySource`] (the MEF,
//! TS-0003 §8.3.5), asked on a miss. Revoked and expired credentials are refused at the
//! handshake, and the sessions that use them are closed; so are remote keys the source reports
//! revoked ([`RemoteKeySource::take_revoked`], drained by the watcher).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use m2msec_bindings::{AssociationInfo, CloseSignal, Endpoint, Handled, Opened};
use m2msec_core::clock::Clock;
use m2msec_core::ids::{CredentialId, KpsaId};
use m2msec_cse::credentials::{CredentialError, CredentialStore};
use m2msec_cse::{
    Association as CseAssociation, BoundIdentity, CredentialKind, Cse, Dispatch, Forward,
    RequestPrimitive, Reservation, ResponsePrimitive, Rsc, SecurityContext, Store,
};
use m2msec_tls::{Peer, Psk, PskIdentity, PskResolver, ResolvedPsk, ServerConfig};

/// Sends a request the engine decided to forward (`m2msec_cse::Cse::dispatch`) to its next
/// hop and returns the next hop's response; `Err` when it could not be delivered or answered
/// before [`Forward::deadline`]. Called on the endpoint's worker threads (it may block).
pub trait Forwarder: Send + Sync + 'static {
    /// Forwards `f` (module `crate::registrar` has the HTTP/TLS-PSK one).
    fn forward(&self, f: &Forward) -> Result<ResponsePrimitive, String>;
}

/// Worker threads of an endpoint that forwards: a forward waits for the next hop, so one
/// thread would hold every other request of the listener behind it.
pub const FORWARDING_WORKERS: usize = 8;

/// A provisioned symmetric key credential (TS-0003 §8.2.2.1).
#[derive(Debug, Clone)]
pub struct PskCredential {
    /// The `psk_identity` clients send (the KpsaID text, exactly as configured).
    pub psk_identity: PskIdentity,
    /// The KpsaID, for the Credential-ID `12-<KpsaID>`.
    pub kpsa_id: KpsaId,
    /// Kpsa.
    pub key: Psk,
    /// The configured IdA (an AE-ID or a CSE-ID), if any.
    pub bound: Option<BoundIdentity>,
}

/// A client raw public key (RFC 7250; TS-0003 §8.2.2.2 with the §10.2.3 suites): the
/// association binds to Credential-ID `30-<pkID>` (TS-0003 §10.4; BRIEF A6).
#[derive(Debug, Clone)]
pub struct RawKeyCredential {
    /// The key's RFC 6920 identifier, `ni:///sha-256;…` (the full SHA-256 form, which is the
    /// form the TLS layer binds).
    pub pk_id: m2msec_tls::PkId,
    /// The configured IdA, if any; without one the first `<AE>` CREATE binds its AE-ID
    /// (TS-0003 §8.2.1), as for a PSK without IdA.
    pub bound: Option<BoundIdentity>,
}

/// TLS-side settings of the registrar CSE.
#[derive(Debug, Clone, Default)]
pub struct CseSecurity {
    /// The authority (SNI host name) this CSE answers for; None accepts any name.
    pub authority: Option<String>,
    /// Refuse TLS clients that send no SNI.
    pub require_sni: bool,
    /// PSK credentials.
    pub credentials: Vec<PskCredential>,
    /// Client raw public keys (need a server certificate credential in the TLS configuration).
    pub raw_keys: Vec<RawKeyCredential>,
}

/// A key a [`RemoteKeySource`] supplies for a `psk_identity` the CSE does not hold (e.g. a
/// Kpsa obtained from an M2M Enrolment Function, TS-0003 §8.3.5).
#[derive(Debug, Clone)]
pub struct RemoteKey {
    /// The pre-shared key.
    pub key: Psk,
    /// The association's Credential-ID (TS-0003 §10.4), e.g. `12-<KpsaID>`.
    pub credential_id: CredentialId,
    /// The identity the key is bound to, if the source says so (TS-0003 §8.2.2.1 IdA).
    pub bound: Option<BoundIdentity>,
    /// End of the key's lifetime, unix seconds; the CSE caches the key until then (at most
    /// [`REMOTE_CACHE_TTL`]) and refuses it afterwards.
    pub expires_unix: Option<i64>,
}

/// A fallback credential source, asked when a `psk_identity` is neither configured nor in the
/// store (a revoked stored identity is never asked for). [`RemoteKeySource::fetch`] runs
/// synchronously inside the TLS handshake callback, so an implementation must answer quickly
/// (keep its own cache of misses, bound its network waits and the number of fetches in flight,
/// issue 9 item 7). Answers are cached by the CSE until their expiry, at most
/// [`REMOTE_CACHE_TTL`], then asked again; misses are the source's to cache. Sessions opened
/// with a remote key are closed when the key's own expiry passes, or when the source reports
/// it revoked ([`RemoteKeySource::take_revoked`]).
pub trait RemoteKeySource: Send + Sync + 'static {
    /// The key for `psk_identity`, or None if the source does not know it (or cannot tell now).
    fn fetch(&self, psk_identity: &str) -> Option<RemoteKey>;

    /// Whether `ae_id_stem` is the Enrolee-ID of a device provisioned at the source for this CSE
    /// (TS-0003 §8.3; issue 9 item 1). Err: the source could not tell (unreachable, timeout).
    fn enrolee_reserved(&self, ae_id_stem: &str) -> Result<bool, String> {
        let _ = ae_id_stem;
        Ok(false)
    }

    /// The identities whose keys the source learned are no longer valid since the last call
    /// (revoked, replaced by a re-enrolment, de-registered: issue 9 item 8). The CSE's watcher
    /// ([`CseEndpoint::refresh_credentials`]) drains it each interval, drops those keys, refuses
    /// them at the next handshake and closes their live sessions. Must not block.
    fn take_revoked(&self) -> RemoteRevocations {
        RemoteRevocations::default()
    }
}

/// What [`RemoteKeySource::take_revoked`] reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RemoteRevocations {
    /// `psk_identity`s no longer valid.
    pub identities: Vec<String>,
    /// The source lost track of its changes (e.g. it was unreachable for longer than it keeps
    /// them): every cached remote key goes, and their sessions are closed.
    pub all: bool,
}

/// Longest time a remote key is cached (also the lifetime of one without an expiry).
pub const REMOTE_CACHE_TTL: Duration = Duration::from_secs(300);
/// Most remote keys cached at once.
pub const REMOTE_CACHE_MAX: usize = 4096;
/// How long a remote identity reported revoked stays refused without asking the source (longer
/// than any fetch can be in flight, so a fetch that began before the revocation cannot put the
/// key back).
pub const REMOTE_REVOKED_TTL: Duration = REMOTE_CACHE_TTL;
/// Most revoked remote identities remembered (beyond that, only the race with a fetch in flight
/// is no longer covered: the source itself refuses them).
pub const REMOTE_REVOKED_MAX: usize = 4 * REMOTE_CACHE_MAX;
/// How often [`CseEndpoint::spawn_expiry_sweep`] removes expired resources by default.
pub const EXPIRY_SWEEP_INTERVAL: Duration = Duration::from_secs(60);
/// How often the watcher of [`CseEndpoint::spawn_watcher`] looks at the store by default.
pub const WATCH_INTERVAL: Duration = Duration::from_millis(200);

/// Where a resolved credential comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Config,
    Store,
    Remote,
}

/// One usable credential, in memory.
#[derive(Clone)]
struct Entry {
    key: Psk,
    credential_id: CredentialId,
    bound: Option<BoundIdentity>,
    /// Seconds since 1970; the entry is refused from then on.
    expires_unix: Option<i64>,
    /// Remote keys: asked again from this time on (seconds since 1970); live sessions are not
    /// affected by this, only by `expires_unix`.
    cache_until: Option<i64>,
    source: Source,
}

impl Entry {
    fn usable(&self, now: i64) -> bool {
        !matches!(self.expires_unix, Some(e) if now >= e)
    }

    /// What the TLS layer binds the association to (TS-0003 §8.2.2.1: the configured IdA,
    /// else the Credential-ID).
    fn resolved(&self) -> ResolvedPsk {
        let bound = match &self.bound {
            Some(BoundIdentity::Ae(ids)) => m2msec_tls::BoundIdentity::Configured(
                ids.first().map(|a| a.to_string()).unwrap_or_default(),
            ),
            Some(BoundIdentity::Cse(cse)) => m2msec_tls::BoundIdentity::Configured(cse.to_string()),
            None => m2msec_tls::BoundIdentity::CredentialId(self.credential_id.to_string()),
        };
        ResolvedPsk {
            key: self.key.clone(),
            bound,
        }
    }
}

/// The CSE's credentials in memory: configuration (fixed), the store (replaced on each reload)
/// and cached remote keys. The TLS handshake callback reads it without touching SQLite.
#[derive(Default)]
struct CredentialMap {
    config: HashMap<String, Entry>,
    store: RwLock<HashMap<String, Entry>>,
    /// Store identities that are revoked or expired: never served, not even by the remote
    /// source.
    refused: RwLock<HashSet<String>>,
    remote_cache: RwLock<HashMap<String, Entry>>,
    /// Remote identities the source reported revoked → unix time until which they are refused
    /// without asking ([`REMOTE_REVOKED_TTL`]). Locked after `remote_cache` when both are.
    remote_revoked: RwLock<HashMap<String, i64>>,
    remote: RwLock<Option<Arc<dyn RemoteKeySource>>>,
    /// AE-ID-Stem → Credential-ID of every remote key fetched bound to an AE-ID (its
    /// Enrolee-ID): reserved for that credential from then on (bounded by [`REMOTE_CACHE_MAX`]
    /// times 4; the store's learned bindings keep registered ones beyond that).
    remote_bound: RwLock<HashMap<String, CredentialId>>,
}

impl CredentialMap {
    /// The usable credential for `identity` at `now`: configuration first, then the store, then
    /// the remote cache and, if `fetch`, the remote source.
    fn lookup(&self, identity: &str, now: i64, fetch: bool) -> Option<Entry> {
        if let Some(e) = self.config.get(identity) {
            return e.usable(now).then(|| e.clone());
        }
        if let Some(e) = read(&self.store).get(identity) {
            return e.usable(now).then(|| e.clone());
        }
        if read(&self.refused).contains(identity) {
            return None;
        }
        if read(&self.remote_revoked)
            .get(identity)
            .is_some_and(|until| now < *until)
        {
            return None;
        }
        if let Some(e) = read(&self.remote_cache).get(identity) {
            let fresh = !matches!(e.cache_until, Some(c) if now >= c);
            if e.usable(now) && (fresh || !fetch) {
                return Some(e.clone());
            }
        }
        if !fetch {
            return None;
        }
        let src = read(&self.remote).clone()?;
        let Some(k) = src.fetch(identity) else {
            // The source no longer knows it: forget the cached key.
            write(&self.remote_cache).remove(identity);
            return None;
        };
        let cap = now.saturating_add(i64::try_from(REMOTE_CACHE_TTL.as_secs()).unwrap_or(300));
        let expires_unix = k.expires_unix;
        let e = Entry {
            key: k.key,
            credential_id: k.credential_id,
            bound: k.bound,
            expires_unix,
            cache_until: Some(expires_unix.map_or(cap, |x| x.min(cap))),
            source: Source::Remote,
        };
        if !e.usable(now) {
            return None;
        }
        let mut cache = write(&self.remote_cache);
        if read(&self.remote_revoked)
            .get(identity)
            .is_some_and(|until| now < *until)
        {
            // Revoked while the fetch was in flight.
            return None;
        }
        if cache.len() >= REMOTE_CACHE_MAX {
            cache.retain(|_, c| c.usable(now));
        }
        if cache.len() < REMOTE_CACHE_MAX {
            cache.insert(identity.to_string(), e.clone());
        }
        drop(cache);
        let mut rb = write(&self.remote_bound);
        if rb.len() >= REMOTE_CACHE_MAX * 4 {
            rb.clear();
        }
        for stem in bound_stems(&e.bound) {
            rb.insert(stem, e.credential_id.clone());
        }
        Some(e)
    }

    /// Drops the remote keys the source reported revoked and keeps refusing them for
    /// [`REMOTE_REVOKED_TTL`]; with `all`, drops every cached remote key (asked again at the
    /// next handshake, not refused). Returns how many cached keys were dropped. The sessions
    /// are closed by the next [`CseEndpoint::enforce`].
    fn forget_remote(&self, revoked: &RemoteRevocations, now: i64) -> usize {
        let until =
            now.saturating_add(i64::try_from(REMOTE_REVOKED_TTL.as_secs()).unwrap_or(i64::MAX));
        let mut cache = write(&self.remote_cache);
        let mut dead = write(&self.remote_revoked);
        let before = cache.len();
        if revoked.all {
            cache.clear();
        }
        if dead.len() + revoked.identities.len() > REMOTE_REVOKED_MAX {
            dead.retain(|_, u| now < *u);
        }
        for id in &revoked.identities {
            cache.remove(id);
            if dead.len() < REMOTE_REVOKED_MAX {
                dead.insert(id.clone(), until);
            }
        }
        before - cache.len()
    }

    /// Whether live sessions of `identity` may continue at `now`: its credential is configured,
    /// or stored and usable, or a remote key within its lifetime. A revoked, expired or removed
    /// credential ends them.
    fn still_valid(&self, identity: &str, now: i64) -> bool {
        if let Some(e) = self.config.get(identity) {
            return e.usable(now);
        }
        if let Some(e) = read(&self.store).get(identity) {
            return e.usable(now);
        }
        if read(&self.refused).contains(identity) {
            return false;
        }
        read(&self.remote_cache)
            .get(identity)
            .is_some_and(|e| e.usable(now))
    }
}

/// An answer of [`RemoteKeySource::enrolee_reserved`] and when it was given.
type Asked = (Result<bool, String>, std::time::Instant);

/// How long an answer of [`RemoteKeySource::enrolee_reserved`] is kept for the registration
/// that asked for it.
const ASKED_TTL: Duration = Duration::from_secs(30);
/// Most answers kept.
const ASKED_MAX: usize = 4096;

/// The AE-ID-Stems that belong to credentials outside the resource store, for the engine's
/// originator verification ([`m2msec_cse::verify`], issue 9 item 1): the IdAs of configured,
/// stored and raw-key credentials, the Enrolee-IDs bound to keys fetched from the remote
/// source, and the remote source's answers for stems being registered. Answers from memory;
/// [`ReservedIds::prepare`] asks the remote source before the engine runs, outside its lock.
#[derive(Default)]
struct ReservedIds {
    /// Stem → Credential-ID: configuration and raw keys (fixed) plus the store (on reload).
    local: RwLock<HashMap<String, CredentialId>>,
    /// Stem → the remote source's answer and when it was given.
    asked: Mutex<HashMap<String, Asked>>,
    /// The remote source, if any (shared with the credential map).
    creds: Arc<CredentialMap>,
}

impl std::fmt::Debug for ReservedIds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReservedIds")
            .field("local", &read(&self.local).len())
            .finish_non_exhaustive()
    }
}

/// The stems an IdA names (an AE-ID in any form; its stem is what a registration requests).
fn bound_stems(b: &Option<BoundIdentity>) -> impl Iterator<Item = String> + '_ {
    let ids: &[m2msec_core::ids::AeId] = match b {
        Some(BoundIdentity::Ae(ids)) => ids,
        _ => &[],
    };
    ids.iter().map(|a| a.stem().as_str().to_string())
}

impl ReservedIds {
    /// Rebuilds the local index from the configuration, the raw keys and the store's entries.
    fn rebuild<'a>(
        &self,
        entries: impl Iterator<Item = (&'a CredentialId, &'a Option<BoundIdentity>)>,
    ) {
        let mut map = HashMap::new();
        for (cred, bound) in entries {
            for stem in bound_stems(bound) {
                map.entry(stem).or_insert_with(|| cred.clone());
            }
        }
        *write(&self.local) = map;
    }

    /// Before the engine runs a CREATE `<AE>` that names its stem on a session not bound to an
    /// identity: asks the remote source (it may block up to its deadline) whether the stem is
    /// an Enrolee-ID it provisioned, and keeps the answer for [`Reservations::reservation`].
    fn prepare(&self, session: &SecurityContext, prim: &RequestPrimitive) {
        if prim.op != m2msec_cse::Operation::Create || prim.ty != Some(2) {
            return;
        }
        if let SecurityContext::Association(a) = session {
            if a.bound.is_some() {
                return;
            }
        }
        let Some(stem) = prim
            .fr
            .as_deref()
            .and_then(|f| f.parse::<m2msec_core::ids::AeIdStem>().ok())
        else {
            return;
        };
        if read(&self.local).contains_key(stem.as_str()) {
            return;
        }
        let Some(src) = read(&self.creds.remote).clone() else {
            return;
        };
        let answer = src.enrolee_reserved(stem.as_str());
        let now = std::time::Instant::now();
        let mut asked = self.asked.lock().unwrap_or_else(|p| p.into_inner());
        if asked.len() >= ASKED_MAX {
            asked.retain(|_, (_, t)| now.duration_since(*t) < ASKED_TTL);
            if asked.len() >= ASKED_MAX {
                asked.clear();
            }
        }
        asked.insert(stem.as_str().to_string(), (answer, now));
    }
}

impl m2msec_cse::Reservations for ReservedIds {
    fn reservation(&self, stem: &m2msec_core::ids::AeIdStem, registering: bool) -> Reservation {
        if let Some(c) = read(&self.local).get(stem.as_str()) {
            return Reservation::For(Some(c.clone()));
        }
        if let Some(c) = read(&self.creds.remote_bound).get(stem.as_str()) {
            return Reservation::For(Some(c.clone()));
        }
        if !registering || read(&self.creds.remote).is_none() {
            return Reservation::Free;
        }
        let asked = self.asked.lock().unwrap_or_else(|p| p.into_inner());
        match asked.get(stem.as_str()) {
            Some((answer, t)) if t.elapsed() < ASKED_TTL => match answer {
                Ok(true) => Reservation::For(None),
                Ok(false) => Reservation::Free,
                Err(e) => Reservation::Unknown(format!("the MEF could not tell: {e}")),
            },
            _ => Reservation::Unknown("the MEF was not asked".into()),
        }
    }
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|p| p.into_inner())
}

/// The CSE's [`PskResolver`]: one in-memory lookup per handshake (TS-0003 §8.2.2.1). Expired
/// and revoked credentials are refused (`unknown_psk_identity`).
struct Resolver(Arc<CredentialMap>, Clock);

impl PskResolver for Resolver {
    fn resolve(&self, _sni: Option<&str>, identity: &PskIdentity) -> Option<ResolvedPsk> {
        let Some(e) = self.0.lookup(identity.as_str(), self.1.now(), true) else {
            m2msec_bindings::audit::unknown_identity(
                identity.as_str(),
                "unknown, revoked or expired",
            );
            return None;
        };
        Some(e.resolved())
    }
}

/// The store the endpoint watches, the `data_version` and change counter last seen.
struct Watched {
    store: CredentialStore,
    version: i64,
    counter: i64,
}

/// The registrar CSE as an [`Endpoint`]: one shared sans-IO [`Cse`] behind a mutex.
///
/// Credentials come from the configuration, from the credential store
/// ([`CseEndpoint::attach_credential_store`], kept current by [`CseEndpoint::spawn_watcher`])
/// and, on a miss, from an optional [`RemoteKeySource`]. Each session registers under its
/// `psk_identity`; when that credential is revoked, expires or disappears, every live session
/// using it is closed (its [`CloseSignal`] is cancelled).
pub struct CseEndpoint<S: Store> {
    cse: Mutex<Cse<S>>,
    cse_id: String,
    creds: Arc<CredentialMap>,
    /// psk_identity → parent of the close signals of that credential's live sessions. A
    /// session's signal is a child token, so it leaves the parent when the session ends.
    sessions: Mutex<HashMap<String, CloseSignal>>,
    store: Mutex<Option<Watched>>,
    /// `30-<pkID>` → the Credential-ID and configured IdA of the client raw keys.
    raw_keys: HashMap<String, (CredentialId, Option<BoundIdentity>)>,
    /// AE-IDs reserved for credentials (shared with the engine).
    reserved: Arc<ReservedIds>,
    /// Sends requests for targets not hosted here (an MN-CSE's link to its registrar).
    forwarder: std::sync::OnceLock<Arc<dyn Forwarder>>,
    /// The engine's clock: credential expiries are judged on it.
    clock: Clock,
}

impl<S: Store> std::fmt::Debug for CseEndpoint<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CseEndpoint")
            .field("cse_id", &self.cse_id)
            .field("config_credentials", &self.creds.config.len())
            .field("store_credentials", &read(&self.creds.store).len())
            .finish_non_exhaustive()
    }
}

impl<S: Store + Send + 'static> CseEndpoint<S> {
    /// The endpoint and the PSK server configuration (TLS or DTLS) that resolves its
    /// credentials. Credential expiries are judged on the engine's clock ([`Cse::clock`]).
    pub fn new(mut cse: Cse<S>, sec: &CseSecurity) -> (Arc<Self>, ServerConfig) {
        let mut config = HashMap::new();
        for c in &sec.credentials {
            config.insert(
                c.psk_identity.as_str().to_string(),
                Entry {
                    key: c.key.clone(),
                    credential_id: CredentialId::for_kpsa(&c.kpsa_id),
                    bound: c.bound.clone(),
                    expires_unix: None,
                    cache_until: None,
                    source: Source::Config,
                },
            );
        }
        let creds = Arc::new(CredentialMap {
            config,
            ..CredentialMap::default()
        });
        let clock = cse.clock().clone();
        let mut cfg = ServerConfig::psk(Arc::new(Resolver(creds.clone(), clock.clone())));
        cfg.authorities = sec.authority.clone().map(|a| vec![a]);
        cfg.require_sni = sec.require_sni;
        cfg.client_raw_keys = sec.raw_keys.iter().map(|r| r.pk_id.clone()).collect();
        let raw_keys = sec
            .raw_keys
            .iter()
            .filter_map(|r| {
                let c = CredentialId::new(
                    m2msec_core::ids::CredIdTypeId::TlsRawPublicKey,
                    &r.pk_id.to_string(),
                )
                .ok()?;
                Some((c.to_string(), (c, r.bound.clone())))
            })
            .collect();
        let reserved = Arc::new(ReservedIds {
            creds: creds.clone(),
            ..ReservedIds::default()
        });
        cse.set_reservations(reserved.clone());
        let cse_id = cse.cse_id();
        let ep = CseEndpoint {
            cse: Mutex::new(cse),
            cse_id,
            creds,
            sessions: Mutex::new(HashMap::new()),
            store: Mutex::new(None),
            raw_keys,
            reserved,
            forwarder: std::sync::OnceLock::new(),
            clock,
        };
        ep.reindex(&HashMap::new());
        (Arc::new(ep), cfg)
    }

    /// Forwards requests for targets not hosted here through `f` from now on (set once, before
    /// the listeners start, so that [`Endpoint::workers`] sees it). Without a forwarder they
    /// get TARGET_NOT_REACHABLE.
    pub fn set_forwarder(&self, f: Arc<dyn Forwarder>) {
        let _ = self.forwarder.set(f);
    }

    /// Runs `f` on the engine, under its lock (administration, the registration's effect).
    pub fn with_engine<R>(&self, f: impl FnOnce(&mut Cse<S>) -> R) -> R {
        let mut cse = self.cse.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut cse)
    }

    /// The registrar's CSE-ID stem, once known to the engine.
    pub fn registrar_id(&self) -> Option<String> {
        self.with_engine(|c| c.registrar().map(str::to_string))
    }

    /// Serves the credentials of `store` from now on (loaded at once; call
    /// [`CseEndpoint::spawn_watcher`] to follow later changes). An identity both configured
    /// and stored is served from the configuration. Returns the number of usable stored
    /// credentials.
    pub fn attach_credential_store(
        &self,
        store: CredentialStore,
    ) -> Result<usize, CredentialError> {
        let version = store.data_version()?;
        let counter = store.change_counter()?;
        let n = self.install(&store)?;
        *self.store.lock().unwrap_or_else(|p| p.into_inner()) = Some(Watched {
            store,
            version,
            counter,
        });
        self.enforce();
        Ok(n)
    }

    /// Sets the fallback asked on a miss (the MEF integration).
    pub fn set_remote_key_source(&self, source: Arc<dyn RemoteKeySource>) {
        *write(&self.creds.remote) = Some(source);
    }

    /// Replaces the stored part of the credential map with the store's current rows.
    fn install(&self, store: &CredentialStore) -> Result<usize, CredentialError> {
        let snap = store.snapshot(self.clock.now())?;
        let mut map = HashMap::new();
        for c in snap.active {
            let id = c.kpsa_id.to_string();
            if self.creds.config.contains_key(&id) {
                tracing::warn!(identity = %id, "credential both in the configuration and in the store: the configuration's is used");
                continue;
            }
            let key = match Psk::new(&c.key) {
                Ok(k) => k,
                Err(e) => {
                    tracing::error!(identity = %id, error = %e, "stored credential unusable");
                    continue;
                }
            };
            map.insert(
                id,
                Entry {
                    key,
                    credential_id: c.credential_id(),
                    bound: c.bound,
                    expires_unix: c.expires_unix,
                    cache_until: None,
                    source: Source::Store,
                },
            );
        }
        let n = map.len();
        let refused: HashSet<String> = snap.refused.into_iter().collect();
        {
            // Remote keys never shadow a stored identity, usable or refused.
            let mut cache = write(&self.creds.remote_cache);
            cache.retain(|id, _| !map.contains_key(id) && !refused.contains(id));
        }
        self.reindex(&map);
        *write(&self.creds.store) = map;
        *write(&self.creds.refused) = refused;
        Ok(n)
    }

    /// Rebuilds the reserved AE-IDs from the configuration, the raw keys and `store`.
    fn reindex(&self, store: &HashMap<String, Entry>) {
        self.reserved.rebuild(
            self.creds
                .config
                .values()
                .chain(store.values())
                .map(|e| (&e.credential_id, &e.bound))
                .chain(self.raw_keys.values().map(|(c, b)| (c, b))),
        );
    }

    /// Reloads the store if another connection changed its credentials (`PRAGMA data_version`,
    /// then the table's change counter), then closes
    /// the live sessions whose credential is no longer usable (revoked, expired, removed).
    /// Blocking (SQLite); the watcher runs it on the blocking pool. Returns whether the store
    /// was reloaded.
    pub fn refresh_credentials(&self) -> Result<bool, CredentialError> {
        let reloaded = {
            let mut guard = self.store.lock().unwrap_or_else(|p| p.into_inner());
            match guard.as_mut() {
                None => false,
                Some(w) => {
                    // data_version moves on any commit by another connection (the engine's
                    // resource writes too); the trigger-kept counter only on credential changes.
                    let v = w.store.data_version()?;
                    if v == w.version {
                        false
                    } else {
                        w.version = v;
                        let c = w.store.change_counter()?;
                        if c == w.counter {
                            false
                        } else {
                            self.install(&w.store)?;
                            w.counter = c;
                            true
                        }
                    }
                }
            }
        };
        self.drop_revoked_remote_keys();
        self.enforce();
        Ok(reloaded)
    }

    /// Asks the remote source which of its keys were revoked and drops them (their sessions
    /// are closed by the [`CseEndpoint::enforce`] that follows).
    fn drop_revoked_remote_keys(&self) {
        let Some(src) = read(&self.creds.remote).clone() else {
            return;
        };
        let revoked = src.take_revoked();
        if revoked.identities.is_empty() && !revoked.all {
            return;
        }
        let dropped = self.creds.forget_remote(&revoked, self.clock.now());
        tracing::info!(
            identities = revoked.identities.len(),
            all = revoked.all,
            cached_keys_dropped = dropped,
            "remote keys revoked at their source: refused from now on, their sessions closed"
        );
    }

    /// Cancels the sessions of every credential that no longer resolves. Runs under the
    /// session lock, as [`Endpoint::open`] does, so a session opening during a revocation is
    /// either refused or closed.
    fn enforce(&self) {
        let now = self.clock.now();
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        sessions.retain(|id, parent| {
            if self.creds.still_valid(id, now) {
                return true;
            }
            tracing::info!(identity = %id, "credential revoked or expired: closing its sessions");
            parent.cancel();
            false
        });
    }

    /// Closes every live session of `psk_identity` at once; returns whether there were any
    /// registered.
    pub fn close_sessions(&self, psk_identity: &str) -> bool {
        let parent = self
            .sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(psk_identity);
        match parent {
            Some(p) => {
                p.cancel();
                true
            }
            None => false,
        }
    }

    /// Follows the credential store: every `every` (e.g. [`WATCH_INTERVAL`]) it runs
    /// [`CseEndpoint::refresh_credentials`] on the blocking pool, so a credential added with
    /// the CLI is served, and a revoked one refused and its sessions closed, within one
    /// interval. The task ends when the endpoint is dropped. Needs a tokio runtime.
    pub fn spawn_watcher(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut failing = false;
            loop {
                tick.tick().await;
                let Some(ep) = weak.upgrade() else { return };
                match tokio::task::spawn_blocking(move || ep.refresh_credentials()).await {
                    Ok(Ok(_)) => failing = false,
                    Ok(Err(e)) => {
                        if !failing {
                            tracing::error!(error = %e, "credential store refresh failed");
                        }
                        failing = true;
                    }
                    Err(e) => tracing::error!(error = %e, "credential watcher task failed"),
                }
            }
        })
    }

    /// Removes expired resources every `every` ([`Cse::purge_expired`], on the blocking pool),
    /// so an idle CSE frees them too; requests purge before they run anyway. The task ends when
    /// the endpoint is dropped. Needs a tokio runtime.
    pub fn spawn_expiry_sweep(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(ep) = weak.upgrade() else { return };
                let done = tokio::task::spawn_blocking(move || {
                    ep.cse
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .purge_expired()
                })
                .await;
                match done {
                    Ok(Ok(0)) => {}
                    Ok(Ok(n)) => tracing::debug!(removed = n, "expired resources removed"),
                    Ok(Err(e)) => tracing::error!(error = %e.detail, "expiry sweep failed"),
                    Err(e) => tracing::error!(error = %e, "expiry sweep task failed"),
                }
            }
        })
    }

    /// The security context of a TLS peer (TS-0003 §8.2.2.1); None for a peer whose
    /// credential this endpoint does not hold (or no longer: revoked, expired).
    pub fn context_for(&self, peer: &Peer) -> Option<SecurityContext> {
        match peer.credential {
            m2msec_tls::CredentialKind::Psk => {}
            m2msec_tls::CredentialKind::Certificate => return certificate_context(peer),
            m2msec_tls::CredentialKind::RawPublicKey => return self.raw_key_context(peer),
        }
        let id = peer.psk_identity.as_ref()?;
        let e = self.creds.lookup(id.as_str(), self.clock.now(), false)?;
        tracing::debug!(identity = %id, source = ?e.source, "credential");
        Some(SecurityContext::Association(CseAssociation {
            credential_kind: CredentialKind::Psk,
            credential_id: e.credential_id,
            bound: e.bound,
        }))
    }
}

impl<S: Store> CseEndpoint<S> {
    /// The security context of a peer authenticated by a configured raw public key.
    fn raw_key_context(&self, peer: &Peer) -> Option<SecurityContext> {
        let Some(m2msec_tls::BoundIdentity::CredentialId(id)) = peer.bound_identity.as_ref() else {
            return None;
        };
        let (credential_id, bound) = self.raw_keys.get(id)?.clone();
        Some(SecurityContext::Association(CseAssociation {
            credential_kind: CredentialKind::RawPublicKey,
            credential_id,
            bound,
        }))
    }
}

/// The security context of a peer authenticated by an AE-ID certificate (TS-0003 §8.2.2.2,
/// §10.1.1): the TLS layer validated the chain against the configured trust anchors and bound
/// the association to the certificate's URI SubjectAltName, the AE-ID; the Credential-ID is
/// `33-<AE-ID>` (TS-0003 §10.4, table 10.4-1) and the AE-ID is the association's bound identity,
/// so `From` must name that AE (TS-0003 §7.2.1). Certificates naming anything else (a CSE's
/// domain name, a Node-ID) are not mapped to a registree here and the session is refused.
fn certificate_context(peer: &Peer) -> Option<SecurityContext> {
    let Some(m2msec_tls::BoundIdentity::Configured(name)) = peer.bound_identity.as_ref() else {
        return None;
    };
    let ae: m2msec_core::ids::AeId = match name.parse() {
        Ok(ae) => ae,
        Err(e) => {
            tracing::warn!(peer = %peer.addr, name = %name, error = %e, "certificate does not name an AE-ID");
            return None;
        }
    };
    let credential_id =
        CredentialId::new(m2msec_core::ids::CredIdTypeId::TlsAeIdCert, name).ok()?;
    Some(SecurityContext::Association(CseAssociation {
        credential_kind: CredentialKind::Certificate,
        credential_id,
        bound: Some(BoundIdentity::Ae(vec![ae])),
    }))
}

/// A session of the registrar CSE: the engine's [`SecurityContext`] and, for the security log,
/// who is on the other end.
#[derive(Debug, Clone)]
pub struct CseSession {
    /// What the engine sees.
    pub context: SecurityContext,
    /// The peer's address (None on the plaintext loopback listener).
    pub peer: Option<std::net::SocketAddr>,
    /// The credential's identity (psk_identity, or the certificate's/raw key's bound name).
    pub identity: Option<String>,
}

impl From<SecurityContext> for CseSession {
    fn from(context: SecurityContext) -> Self {
        CseSession {
            context,
            peer: None,
            identity: None,
        }
    }
}

impl<S: Store + Send + 'static> Endpoint for CseEndpoint<S> {
    type Session = CseSession;

    fn responder_id(&self) -> String {
        self.cse_id.clone()
    }

    fn workers(&self) -> usize {
        if self.forwarder.get().is_some() {
            FORWARDING_WORKERS
        } else {
            1
        }
    }

    fn open(&self, assoc: Option<&AssociationInfo<'_>>) -> Option<Opened<CseSession>> {
        let Some(a) = assoc else {
            return Some(Opened {
                session: SecurityContext::None.into(),
                close: CloseSignal::new(),
            });
        };
        // Look up and register under the session lock (see `enforce`).
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        let identity = a
            .peer
            .psk_identity
            .as_ref()
            .map(|i| i.as_str().to_string())
            .or_else(|| match &a.peer.bound_identity {
                Some(m2msec_tls::BoundIdentity::Configured(n))
                | Some(m2msec_tls::BoundIdentity::CredentialId(n)) => Some(n.clone()),
                _ => None,
            });
        let Some(context) = self.context_for(a.peer) else {
            if let Some(suppressed) = m2msec_bindings::audit::admit() {
                tracing::warn!(peer = %a.peer.addr, identity = ?identity, suppressed, "security: association refused: no provisioned credential");
            }
            return None;
        };
        let session = CseSession {
            context,
            peer: Some(a.peer.addr),
            identity,
        };
        let close = match a.peer.psk_identity.as_ref() {
            Some(id) => sessions
                .entry(id.as_str().to_string())
                .or_default()
                .child_token(),
            None => CloseSignal::new(),
        };
        Some(Opened { session, close })
    }

    fn handle(&self, session: &CseSession, prim: RequestPrimitive) -> Handled {
        let rqi = prim.rqi.clone();
        // Outside the engine's lock: the remote source may take up to its deadline.
        self.reserved.prepare(&session.context, &prim);
        let refusal = |resp: &ResponsePrimitive| {
            matches!(
                resp.rsc,
                Rsc::OriginatorNotAuthenticated
                    | Rsc::OriginatorHasNoPrivilege
                    | Rsc::SecurityAssociationRequired
                    | Rsc::EsprimImpersonationError
            )
        };
        let (op, to, from) = (prim.op, prim.to.clone(), prim.fr.clone());
        let mut cse = self.cse.lock().unwrap_or_else(|p| p.into_inner());
        let dispatched = cse.dispatch(&session.context, prim);
        drop(cse);
        let mut resp = match dispatched {
            Dispatch::Reply(r) => r,
            Dispatch::Forward(f) => {
                // Outside the engine's lock: the next hop may take up to the deadline.
                let outcome = match self.forwarder.get() {
                    Some(fw) => fw.forward(&f),
                    None => Err("this CSE does not forward requests".into()),
                };
                let mut cse = self.cse.lock().unwrap_or_else(|p| p.into_inner());
                cse.forward_ended(&f, outcome)
            }
        };
        if refusal(&resp) {
            if let Some(suppressed) = m2msec_bindings::audit::admit() {
                let credential = match &session.context {
                    SecurityContext::Association(a) => Some(a.credential_id.to_string()),
                    SecurityContext::None => None,
                };
                let reason = resp
                    .pc
                    .as_ref()
                    .and_then(|v| v.get("m2m:dbg"))
                    .and_then(|v| v.as_str())
                    .unwrap_or_default();
                tracing::warn!(
                    peer = ?session.peer,
                    identity = ?session.identity,
                    credential = ?credential,
                    from = ?from,
                    to = %to,
                    op = ?op,
                    rsc = resp.rsc.as_u16(),
                    reason,
                    suppressed,
                    "security: request refused"
                );
            }
        }
        // TS-0004 §6.4.2: the response carries the request's identifier.
        if resp.rqi.is_empty() {
            resp.rqi = rqi;
        }
        resp.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use m2msec_core::clock::ManualClock;
    use m2msec_cse::credentials::{AddOptions, NewCredential};
    use m2msec_cse::{CseConfig, CseType, SqliteStore};

    /// The tests' start time (2027-01-15T08:00:00Z); each test moves its own clock from there.
    const T0: i64 = 1_800_000_000;

    /// An endpoint on an engine whose clock (also the endpoint's) the test moves.
    fn endpoint(config: Vec<PskCredential>) -> (Arc<CseEndpoint<SqliteStore>>, ManualClock) {
        let hand = ManualClock::new(T0);
        let cse = Cse::with_clock(
            CseConfig {
                sp: "sp.example".parse().unwrap(),
                cse_id: "/cse-in".parse().unwrap(),
                cb_rn: "cb".into(),
                cse_type: CseType::In,
                poa: vec![],
            },
            SqliteStore::open_in_memory().unwrap(),
            hand.clock(),
        )
        .unwrap();
        let (ep, _) = CseEndpoint::new(
            cse,
            &CseSecurity {
                credentials: config,
                ..CseSecurity::default()
            },
        );
        (ep, hand)
    }

    fn peer(id: &str) -> Peer {
        Peer {
            addr: "127.0.0.1:1".parse().unwrap(),
            role: m2msec_tls::Role::Server,
            protocol: m2msec_tls::Protocol::Tls12,
            cipher: "TLS_PSK_WITH_AES_128_CBC_SHA256".into(),
            credential: m2msec_tls::CredentialKind::Psk,
            psk_identity: Some(PskIdentity::new(id).unwrap()),
            sni: None,
            bound_identity: None,
            subject_alt_names: vec![],
        }
    }

    fn open(ep: &CseEndpoint<SqliteStore>, id: &str) -> Option<Opened<CseSession>> {
        let p = peer(id);
        let exporter = |_| None;
        ep.open(Some(&AssociationInfo {
            peer: &p,
            exporter: &exporter,
        }))
    }

    /// Adds a credential at `T0`, as the command line would.
    fn add(store: &mut CredentialStore, id: &str, key: u8, expires: Option<i64>) {
        let mut c = NewCredential::new(id.parse().unwrap(), &[key; 32]);
        c.expires = expires.map(|e| m2msec_core::timestamp::Timestamp::from_unix(e).unwrap());
        store.add(&c, AddOptions::default(), T0, || Ok(())).unwrap();
    }

    fn resolves(ep: &CseEndpoint<SqliteStore>, id: &str) -> bool {
        ep.creds.lookup(id, ep.clock.now(), true).is_some()
    }

    #[test]
    fn store_credentials_are_followed_and_revocation_closes_sessions() {
        let d = tempfile::tempdir().unwrap();
        let (ep, _) = endpoint(vec![]);
        let mut cli = CredentialStore::open(d.path()).unwrap();
        add(&mut cli, "a@mef.example", 1, None);
        assert_eq!(
            ep.attach_credential_store(CredentialStore::open(d.path()).unwrap())
                .unwrap(),
            1
        );
        assert!(resolves(&ep, "a@mef.example"));
        assert!(!resolves(&ep, "b@mef.example"));
        let s1 = open(&ep, "a@mef.example").unwrap();
        let s2 = open(&ep, "a@mef.example").unwrap();
        match &s1.session.context {
            SecurityContext::Association(a) => {
                assert_eq!(a.credential_id.to_string(), "12-a@mef.example")
            }
            other => panic!("{other:?}"),
        }
        assert!(open(&ep, "b@mef.example").is_none());

        // Another connection adds and revokes: the refresh notices both.
        add(&mut cli, "b@mef.example", 2, None);
        assert!(ep.refresh_credentials().unwrap());
        assert!(!ep.refresh_credentials().unwrap(), "no change, no reload");
        let s3 = open(&ep, "b@mef.example").unwrap();
        cli.revoke("a@mef.example", T0).unwrap();
        assert!(ep.refresh_credentials().unwrap());
        assert!(s1.close.is_cancelled() && s2.close.is_cancelled());
        assert!(!s3.close.is_cancelled());
        assert!(!resolves(&ep, "a@mef.example"));
        assert!(open(&ep, "a@mef.example").is_none());
    }

    #[test]
    /// The expiry is judged on the injected clock (issue 10 item 7: no sleep): usable up to
    /// the second before it, refused from it on, and its live sessions closed.
    fn expired_credentials_are_refused_and_their_sessions_closed() {
        let d = tempfile::tempdir().unwrap();
        let (ep, clock) = endpoint(vec![]);
        let mut cli = CredentialStore::open(d.path()).unwrap();
        add(&mut cli, "a@mef.example", 1, Some(T0 + 60));
        ep.attach_credential_store(CredentialStore::open(d.path()).unwrap())
            .unwrap();
        let s = open(&ep, "a@mef.example").unwrap();
        clock.set(T0 + 59);
        assert!(
            !ep.refresh_credentials().unwrap(),
            "time alone reloads nothing"
        );
        assert!(!s.close.is_cancelled());
        assert!(resolves(&ep, "a@mef.example"));
        clock.set(T0 + 60);
        ep.refresh_credentials().unwrap();
        assert!(s.close.is_cancelled());
        assert!(!resolves(&ep, "a@mef.example"));
        assert!(open(&ep, "a@mef.example").is_none());
        // A fresh load of the store (a restart) refuses it too.
        let (ep2, clock2) = endpoint(vec![]);
        clock2.set(T0 + 60);
        assert_eq!(
            ep2.attach_credential_store(CredentialStore::open(d.path()).unwrap())
                .unwrap(),
            0
        );
        assert!(!resolves(&ep2, "a@mef.example"));
    }

    #[test]
    fn ae_id_certificates_bind_credential_id_33() {
        let (ep, _) = endpoint(vec![]);
        let mut p = peer("unused@mef.example");
        p.credential = m2msec_tls::CredentialKind::Certificate;
        p.psk_identity = None;
        p.bound_identity = Some(m2msec_tls::BoundIdentity::Configured(
            "//sp.example/cse-in/Csensor".into(),
        ));
        match ep.context_for(&p) {
            Some(SecurityContext::Association(a)) => {
                assert_eq!(a.credential_kind, CredentialKind::Certificate);
                assert_eq!(
                    a.credential_id.to_string(),
                    "33-//sp.example/cse-in/Csensor"
                );
                assert_eq!(
                    a.bound,
                    Some(BoundIdentity::Ae(vec!["//sp.example/cse-in/Csensor"
                        .parse()
                        .unwrap()]))
                );
            }
            other => panic!("{other:?}"),
        }
        p.bound_identity = Some(m2msec_tls::BoundIdentity::Configured(
            "cse.sp.example".into(),
        ));
        assert!(ep.context_for(&p).is_none());
    }

    struct Mef(std::sync::atomic::AtomicUsize);

    impl RemoteKeySource for Mef {
        fn fetch(&self, psk_identity: &str) -> Option<RemoteKey> {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let kpsa: KpsaId = psk_identity.parse().ok()?;
            psk_identity.starts_with("remote").then(|| RemoteKey {
                key: Psk::new(&[9; 32]).unwrap(),
                credential_id: CredentialId::for_kpsa(&kpsa),
                bound: None,
                expires_unix: Some(T0 + 3600),
            })
        }
    }

    #[test]
    fn remote_source_is_asked_on_a_miss_and_cached() {
        let d = tempfile::tempdir().unwrap();
        let kpsa: KpsaId = "cfg@mef.example".parse().unwrap();
        let (ep, clock) = endpoint(vec![PskCredential {
            psk_identity: PskIdentity::new("cfg@mef.example").unwrap(),
            kpsa_id: kpsa,
            key: Psk::new(&[3; 16]).unwrap(),
            bound: None,
        }]);
        let mef = Arc::new(Mef(Default::default()));
        ep.set_remote_key_source(mef.clone());
        let mut cli = CredentialStore::open(d.path()).unwrap();
        add(&mut cli, "remote-revoked@mef.example", 1, None);
        cli.revoke("remote-revoked@mef.example", T0).unwrap();
        ep.attach_credential_store(CredentialStore::open(d.path()).unwrap())
            .unwrap();
        let calls = || mef.0.load(std::sync::atomic::Ordering::SeqCst);

        assert!(resolves(&ep, "cfg@mef.example"));
        assert_eq!(calls(), 0, "configured credentials need no fallback");
        assert!(resolves(&ep, "remote-1@mef.example"));
        assert!(resolves(&ep, "remote-1@mef.example"));
        assert_eq!(calls(), 1, "a hit is cached");
        assert!(open(&ep, "remote-1@mef.example").is_some());
        assert!(!resolves(&ep, "other@mef.example"));
        assert_eq!(calls(), 2);
        // A revoked stored identity is never served by the fallback.
        assert!(!resolves(&ep, "remote-revoked@mef.example"));
        assert_eq!(calls(), 2);

        // A session on a remote key survives the cache lifetime; a stale cache entry is
        // asked again at the next handshake.
        let s = open(&ep, "remote-1@mef.example").unwrap();
        let ttl = i64::try_from(REMOTE_CACHE_TTL.as_secs()).unwrap();
        clock.set(T0 + ttl - 1);
        assert!(resolves(&ep, "remote-1@mef.example"));
        assert_eq!(calls(), 2, "still cached");
        clock.set(T0 + ttl);
        ep.refresh_credentials().unwrap();
        assert!(!s.close.is_cancelled());
        assert!(resolves(&ep, "remote-1@mef.example"));
        assert_eq!(calls(), 3);
        // Past its own expiry the key is refused and the session closed.
        clock.set(T0 + 3599);
        ep.refresh_credentials().unwrap();
        assert!(!s.close.is_cancelled());
        clock.set(T0 + 3600);
        ep.refresh_credentials().unwrap();
        assert!(s.close.is_cancelled());
        assert!(!resolves(&ep, "remote-1@mef.example"));
    }

    /// A source that reports revocations, and that can have one arrive while a fetch is in
    /// flight (issue 9 item 8).
    #[derive(Default)]
    struct RevokingMef {
        calls: std::sync::atomic::AtomicUsize,
        revoked: Mutex<RemoteRevocations>,
        /// Revoked during the next fetch, as the watcher would while the MEF answers.
        during_fetch: Mutex<Option<(Arc<CredentialMap>, String)>>,
    }

    impl RemoteKeySource for RevokingMef {
        fn fetch(&self, psk_identity: &str) -> Option<RemoteKey> {
            self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if let Some((creds, id)) = self.during_fetch.lock().unwrap().take() {
                creds.forget_remote(
                    &RemoteRevocations {
                        identities: vec![id],
                        all: false,
                    },
                    T0,
                );
            }
            let kpsa: KpsaId = psk_identity.parse().ok()?;
            Some(RemoteKey {
                key: Psk::new(&[9; 32]).unwrap(),
                credential_id: CredentialId::for_kpsa(&kpsa),
                bound: None,
                expires_unix: Some(T0 + 3600),
            })
        }

        fn take_revoked(&self) -> RemoteRevocations {
            std::mem::take(&mut *self.revoked.lock().unwrap())
        }
    }

    #[test]
    fn remote_keys_revoked_at_the_source_are_dropped_and_their_sessions_closed() {
        let (ep, _) = endpoint(vec![]);
        let mef = Arc::new(RevokingMef::default());
        ep.set_remote_key_source(mef.clone());
        let calls = || mef.calls.load(std::sync::atomic::Ordering::SeqCst);
        assert!(resolves(&ep, "a@mef.example") && resolves(&ep, "b@mef.example"));
        let sa = open(&ep, "a@mef.example").unwrap();
        let sb = open(&ep, "b@mef.example").unwrap();
        assert_eq!(calls(), 2);
        ep.refresh_credentials().unwrap();
        assert!(!sa.close.is_cancelled());

        mef.revoked.lock().unwrap().identities = vec!["a@mef.example".into()];
        ep.refresh_credentials().unwrap();
        assert!(
            sa.close.is_cancelled(),
            "the revoked key's session is closed"
        );
        assert!(!sb.close.is_cancelled());
        assert!(!resolves(&ep, "a@mef.example"));
        assert!(open(&ep, "a@mef.example").is_none());
        assert_eq!(
            calls(),
            2,
            "a revoked identity is refused without asking again"
        );

        // A revocation that arrives while the key is being fetched: the key is not cached.
        *mef.during_fetch.lock().unwrap() = Some((ep.creds.clone(), "c@mef.example".into()));
        assert!(!resolves(&ep, "c@mef.example"));
        assert!(!resolves(&ep, "c@mef.example"));
        assert_eq!(calls(), 3);

        // The source lost track: every remote key goes, and is asked for again.
        mef.revoked.lock().unwrap().all = true;
        ep.refresh_credentials().unwrap();
        assert!(sb.close.is_cancelled());
        assert!(read(&ep.creds.remote_cache).is_empty());
        assert!(resolves(&ep, "b@mef.example"));
        assert_eq!(calls(), 4);
    }
}
