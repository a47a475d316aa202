//! The Enrolment Target side (TS-0003 §8.3.2.1 step 6, §8.3.4.3): a registrar CSE that
//! receives a `psk_identity` it does not hold, whose FQDN is its MEF's, retrieves the key from
//! the MEF over its own authenticated channel (`RETRIEVE /fetchCredentials/<KeID>/<SUID>` with
//! From = its CSE-ID), and completes the handshake with it. The CSE caches the key for the
//! lifetime the MEF returns (never beyond the Enrolment Expiry, §10.7).
//!
//! [`MefKeySource`] implements the endpoint's [`RemoteKeySource`]. It keeps a few authenticated
//! HTTP connections to the MEF open on a small runtime of its own, and on them:
//!
//! - **retrieves keys** from inside the TLS handshake callback, each bounded by the link's
//!   deadline. A flood of handshakes with made-up KeID-shaped identities must not turn into a
//!   flood of MEF sessions or of blocked threads (issue 9 item 7), so a retrieval is admitted
//!   only within [`FetchLimits`]: at most `max_in_flight` requests at once, of which at most
//!   `max_in_flight_unseen` for identities never seen (neither retrieved before nor announced by
//!   the change feed), and those only while a token bucket of misses allows (a retrieval that
//!   succeeds gives its token back, so onboarding many real devices is not slowed). The MEF's
//!   refusals are remembered for `negative_ttl`, failures to reach it for `failure_ttl`, during
//!   which unseen identities are not asked for at all (a MEF that hangs holds at most
//!   `max_in_flight_unseen` threads, once per `failure_ttl`). What is not admitted is refused at
//!   once (an unknown identity to the client). The PSK resolver does
//!   not see the peer's address, so the bucket is one for all peers, not one per source.
//! - **follows the MEF's change feed** (`mef/changes/<cursor>`, [`m2msec_mef::wire`]) every
//!   `poll_interval`, so a KeID revoked, replaced by a re-enrolment or de-registered at the MEF
//!   is dropped from the CSE's cache and its live sessions closed within that interval plus the
//!   CSE's watcher interval (issue 9 item 8), instead of after the cache lifetime. The cursor is
//!   taken before the first key is retrieved, so no change to a key the CSE holds is missed.
//! - **answers whether an AE-ID-Stem is reserved** as the Enrolee-ID of a device provisioned
//!   for this CSE (`mef/enrolees/<stem>`; issue 9 item 1), positive answers kept for
//!   [`REMOTE_CACHE_TTL`] (dropped when the feed reports the device revoked), negative ones for
//!   `negative_ttl`, within the same `max_in_flight`.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use crate::endpoint::{RemoteKey, RemoteKeySource, RemoteRevocations, REMOTE_CACHE_TTL};
use m2msec_bindings::client::HttpClient;
use m2msec_core::clock::Clock;
use m2msec_core::ids::{AeIdStem, CredentialId, CseId, EnroleeId, Fqdn, KeId, KpsaId};
use m2msec_proto::{BoundIdentity, Operation, RequestPrimitive, ResponsePrimitive, Rsc};
use m2msec_tls::{ClientConfig, Psk, PskIdentity, TlsClient};

use m2msec_mef::store::ChangeKind;
use m2msec_mef::wire::{
    self, ChangeFeed, EnroleeReservation, FetchCredentialsResponse, CHANGES, ENROLEES,
    FETCH_CREDENTIALS,
};

/// Bounds on what a flood of handshakes can make the CSE ask of its MEF (issue 9 item 7).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FetchLimits {
    /// Most requests to the MEF in flight at once (key retrievals and reservation queries);
    /// beyond, a handshake is refused at once. Each one in flight holds the handshake's thread
    /// for at most the link's deadline.
    pub max_in_flight: usize,
    /// Of these, most for identities never seen.
    pub max_in_flight_unseen: usize,
    /// Misses per second allowed for identities never seen (token bucket refill).
    pub unseen_per_sec: f64,
    /// Token bucket size.
    pub unseen_burst: f64,
    /// How long the MEF's refusal of an identity is remembered (asked again after).
    pub negative_ttl: Duration,
    /// How long a failure to reach the MEF is remembered, for the identity and, for unseen
    /// identities, for all of them.
    pub failure_ttl: Duration,
    /// Most entries of each memory (refusals, seen identities, reservation answers).
    pub memory: usize,
}

impl Default for FetchLimits {
    fn default() -> Self {
        FetchLimits {
            max_in_flight: 8,
            max_in_flight_unseen: 4,
            unseen_per_sec: 20.0,
            unseen_burst: 40.0,
            negative_ttl: Duration::from_secs(30),
            failure_ttl: Duration::from_secs(5),
            memory: 16_384,
        }
    }
}

/// Default interval of the change-feed poll.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(5);
/// Most feed pages applied in one poll (the rest at the next).
const PAGES_PER_POLL: usize = 20;
/// How long an identity counts as seen after its key was retrieved or announced.
const SEEN_TTL: Duration = Duration::from_secs(86_400);

/// How a CSE reaches its MEF.
#[derive(Debug, Clone)]
pub struct MefLink {
    /// MEF host and port.
    pub host: String,
    /// Port.
    pub port: u16,
    /// The MEF's FQDN (SNI, and the FQDN part of KeIDs it serves).
    pub fqdn: Fqdn,
    /// This CSE's psk_identity at the MEF.
    pub psk_identity: PskIdentity,
    /// This CSE's PSK at the MEF.
    pub psk: Psk,
    /// This CSE's absolute CSE-ID: the originator of the retrieval, and the Enrolment Target ID
    /// of the §10.3.7 derivation.
    pub cse_id: CseId,
    /// SUID of the keys requested (22: RSPF symmetric key for SAEF).
    pub suid: u8,
    /// Deadline of one request (connection, handshake and answer).
    pub timeout: Duration,
    /// Interval of the change-feed poll (revocations reach the CSE within it).
    pub poll_interval: Duration,
    /// Bounds on the requests a flood can cause.
    pub limits: FetchLimits,
}

/// Why a fetch failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// Not a KeID of this MEF.
    #[error("{0} is not a KeID of this MEF")]
    NotOurs(String),
    /// Transport or timeout.
    #[error("MEF unreachable: {0}")]
    Transport(String),
    /// The MEF refused (Status=False).
    #[error("MEF refused ({0}): {1}")]
    Refused(Rsc, String),
    /// Malformed answer.
    #[error("MEF answer: {0}")]
    Protocol(String),
    /// An answer whose content does not parse (a malformed identifier, timestamp or key).
    #[error("MEF answer: {0}")]
    Wire(#[from] wire::WireError),
    /// A `/fetchCredentials` answer that does not parse.
    #[error("MEF answer: {0}")]
    Json(#[from] serde_json::Error),
    /// Not asked: the limits of [`FetchLimits`] were reached.
    #[error("not asked: {0}")]
    Throttled(&'static str),
}

/// A key fetched from the MEF.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The key.
    pub key: Psk,
    /// EnroleeID.
    pub enrolee_id: EnroleeId,
    /// Lifetime end, unix seconds.
    pub expires_unix: i64,
}

/// A map whose entries expire, bounded: when full of live entries it drops about a tenth of
/// them (arbitrary ones), so an insertion stays cheap under a flood.
#[derive(Debug)]
struct TtlMap<V> {
    map: HashMap<String, (Instant, V)>,
    max: usize,
}

impl<V: Copy> TtlMap<V> {
    fn new(max: usize) -> Self {
        TtlMap {
            map: HashMap::new(),
            max: max.max(1),
        }
    }

    fn get(&self, k: &str, now: Instant) -> Option<V> {
        self.map
            .get(k)
            .filter(|(until, _)| now < *until)
            .map(|(_, v)| *v)
    }

    fn insert(&mut self, k: &str, v: V, ttl: Duration, now: Instant) {
        if self.map.len() >= self.max && !self.map.contains_key(k) {
            self.map.retain(|_, (until, _)| now < *until);
            if self.map.len() >= self.max {
                let victims: Vec<String> =
                    self.map.keys().take(self.max / 10 + 1).cloned().collect();
                for v in victims {
                    self.map.remove(&v);
                }
            }
        }
        self.map.insert(k.to_string(), (now + ttl, v));
    }

    fn remove(&mut self, k: &str) {
        self.map.remove(k);
    }

    fn clear(&mut self) {
        self.map.clear();
    }
}

/// A token bucket (misses of unseen identities).
#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
    rate: f64,
    burst: f64,
}

impl Bucket {
    fn take(&mut self, now: Instant) -> bool {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + dt * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    fn give_back(&mut self) {
        self.tokens = (self.tokens + 1.0).min(self.burst);
    }
}

/// What the source remembers between calls.
#[derive(Debug)]
struct Memory {
    /// KeID → the MEF's refusal or a failure to reach it.
    misses: TtlMap<()>,
    /// KeIDs retrieved before or announced by the feed: asked without the bucket.
    seen: TtlMap<()>,
    /// AE-ID-Stem → reserved.
    reserved: TtlMap<bool>,
    bucket: Bucket,
    /// Unseen identities are not asked for before this (the MEF did not answer).
    unreachable_until: Option<Instant>,
    /// Revocations learned from the feed, for [`RemoteKeySource::take_revoked`].
    revoked: RemoteRevocations,
}

/// Shuts the source's runtime down when the last [`MefKeySource`] goes (from any context).
struct RuntimeGuard(Mutex<Option<tokio::runtime::Runtime>>);

impl Drop for RuntimeGuard {
    fn drop(&mut self) {
        if let Some(rt) = self.0.lock().unwrap_or_else(|p| p.into_inner()).take() {
            rt.shutdown_background();
        }
    }
}

struct Inner {
    link: MefLink,
    client: TlsClient,
    handle: tokio::runtime::Handle,
    /// Idle authenticated connections to the MEF (at most `max_in_flight` + 1).
    pool: Mutex<Vec<HttpClient>>,
    memory: Mutex<Memory>,
    in_flight: AtomicUsize,
    in_flight_unseen: AtomicUsize,
    /// Feed cursor; None until first read (the first retrieval waits for it).
    cursor: tokio::sync::Mutex<Option<i64>>,
    cursor_ready: AtomicBool,
    /// Requests refused by the limits since the last poll (logged by the poller).
    throttled: AtomicU64,
    /// Request identifiers.
    rqi: AtomicU64,
    /// Judges the lifetimes the MEF returns (wall clock; the limits above run on `Instant`).
    clock: Clock,
}

/// Fetches keys from the MEF for a CSE's TLS-PSK handshakes, follows the MEF's change feed and
/// answers Enrolee-ID reservations (see the module docs).
#[derive(Clone)]
pub struct MefKeySource {
    inner: Arc<Inner>,
    _rt: Arc<RuntimeGuard>,
}

impl std::fmt::Debug for MefKeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MefKeySource")
            .field("mef", &self.inner.link.fqdn)
            .field("cse_id", &self.inner.link.cse_id)
            .finish_non_exhaustive()
    }
}

/// Which limit a request counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// A key of an identity retrieved before or announced by the feed.
    Seen,
    /// A key of an identity never seen: also the unseen cap and the bucket.
    Unseen,
    /// A reservation query.
    Query,
}

/// One admitted request; releases its place when dropped.
struct Slot<'a> {
    inner: &'a Inner,
    unseen: bool,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.inner.in_flight.fetch_sub(1, Ordering::AcqRel);
        if self.unseen {
            self.inner.in_flight_unseen.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

fn transport(e: impl std::fmt::Display) -> FetchError {
    FetchError::Transport(e.to_string())
}

impl MefKeySource {
    /// A source for `link`: starts its runtime (one thread) and the change-feed poll.
    pub fn new(link: MefLink) -> Result<Self, m2msec_tls::Error> {
        Self::with_clock(link, Clock::system())
    }

    /// As [`MefKeySource::new`], judging key lifetimes on `clock` (the CSE's, [`Clock`]).
    pub fn with_clock(link: MefLink, clock: Clock) -> Result<Self, m2msec_tls::Error> {
        let client = TlsClient::new(ClientConfig::psk(
            link.psk_identity.clone(),
            link.psk.clone(),
        ))?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("m2msec-mef-link")
            .enable_all()
            .build()
            .map_err(|e| m2msec_tls::Error::Config(format!("MEF link runtime: {e}")))?;
        let l = link.limits;
        let inner = Arc::new(Inner {
            handle: rt.handle().clone(),
            client,
            pool: Mutex::new(Vec::new()),
            memory: Mutex::new(Memory {
                misses: TtlMap::new(l.memory),
                seen: TtlMap::new(l.memory.saturating_mul(4)),
                reserved: TtlMap::new(l.memory),
                bucket: Bucket {
                    tokens: l.unseen_burst,
                    last: Instant::now(),
                    rate: l.unseen_per_sec,
                    burst: l.unseen_burst,
                },
                unreachable_until: None,
                revoked: RemoteRevocations::default(),
            }),
            in_flight: AtomicUsize::new(0),
            in_flight_unseen: AtomicUsize::new(0),
            cursor: tokio::sync::Mutex::new(None),
            cursor_ready: AtomicBool::new(false),
            throttled: AtomicU64::new(0),
            rqi: AtomicU64::new(1),
            link,
            clock,
        });
        rt.spawn(poll_loop(Arc::downgrade(&inner)));
        Ok(MefKeySource {
            inner,
            _rt: Arc::new(RuntimeGuard(Mutex::new(Some(rt)))),
        })
    }

    /// Whether `psk_identity` is a KeID issued by this CSE's MEF (§8.3.4.3: "the FQDN equals
    /// the MEF's"), in its canonical form (lowercase hex and FQDN, A4): the CSE caches and the
    /// feed revokes keys by that text, so another spelling of a KeID is not asked for.
    pub fn is_ours(&self, psk_identity: &str) -> Option<KeId> {
        let id: KeId = psk_identity.parse().ok()?;
        (id.mef_fqdn() == &self.inner.link.fqdn && id.to_string() == psk_identity).then_some(id)
    }

    /// One retrieval within the limits, blocking the calling thread up to the link's deadline
    /// (on a multi-thread runtime the worker hands its other tasks over meanwhile).
    pub fn fetch_blocking(&self, ke_id: &KeId) -> Result<Fetched, FetchError> {
        let inner = &self.inner;
        let key = ke_id.to_string();
        let now = Instant::now();
        let class = {
            let m = inner.memory();
            if m.misses.get(&key, now).is_some() {
                return Err(FetchError::Throttled("refused or unreachable a moment ago"));
            }
            if m.seen.get(&key, now).is_some() {
                Class::Seen
            } else {
                Class::Unseen
            }
        };
        let _slot = inner.admit(class)?;
        let me = self.inner.clone();
        let id = ke_id.clone();
        let r = inner
            .run(async move { me.fetch_async(&id).await })
            .and_then(|r| r);
        let now = Instant::now();
        let mut m = inner.memory();
        match &r {
            Ok(_) => {
                if class == Class::Unseen {
                    m.bucket.give_back();
                }
                m.seen.insert(&key, (), SEEN_TTL, now);
            }
            Err(FetchError::Refused(..))
            | Err(FetchError::Protocol(_))
            | Err(FetchError::Wire(_))
            | Err(FetchError::Json(_)) => {
                m.misses
                    .insert(&key, (), inner.link.limits.negative_ttl, now)
            }
            Err(FetchError::Transport(_)) => {
                let ttl = inner.link.limits.failure_ttl;
                m.misses.insert(&key, (), ttl, now);
                m.unreachable_until = Some(now + ttl);
            }
            Err(_) => {}
        }
        r
    }

    /// Whether `ae_id_stem` is reserved at the MEF for this CSE (see
    /// [`RemoteKeySource::enrolee_reserved`]).
    pub fn reserved_blocking(&self, ae_id_stem: &str) -> Result<bool, FetchError> {
        let inner = &self.inner;
        if ae_id_stem.parse::<AeIdStem>().is_err() {
            return Ok(false);
        }
        if let Some(v) = inner.memory().reserved.get(ae_id_stem, Instant::now()) {
            return Ok(v);
        }
        let _slot = inner.admit(Class::Query)?;
        let me = inner.clone();
        let stem = ae_id_stem.to_string();
        let reserved = inner.run(async move { me.reserved_async(&stem).await })??;
        let ttl = if reserved {
            REMOTE_CACHE_TTL
        } else {
            inner.link.limits.negative_ttl
        };
        inner
            .memory()
            .reserved
            .insert(ae_id_stem, reserved, ttl, Instant::now());
        Ok(reserved)
    }

    /// Polls the change feed once now (tests; the source polls by itself every
    /// `poll_interval`).
    pub fn poll_now(&self) -> Result<(), FetchError> {
        let me = self.inner.clone();
        self.inner.run(async move { me.poll_once().await })?
    }
}

impl Inner {
    fn memory(&self) -> std::sync::MutexGuard<'_, Memory> {
        self.memory.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Admits a request of `class` within the limits, or refuses it at once.
    fn admit(&self, class: Class) -> Result<Slot<'_>, FetchError> {
        let l = &self.link.limits;
        let refuse = |why| {
            self.throttled.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(reason = why, "MEF request not admitted");
            Err(FetchError::Throttled(why))
        };
        if self.in_flight.fetch_add(1, Ordering::AcqRel) >= l.max_in_flight {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            return refuse("too many MEF requests in flight");
        }
        let mut slot = Slot {
            inner: self,
            unseen: false,
        };
        if class == Class::Unseen {
            if self.in_flight_unseen.fetch_add(1, Ordering::AcqRel) >= l.max_in_flight_unseen {
                self.in_flight_unseen.fetch_sub(1, Ordering::AcqRel);
                return refuse("too many retrievals of unseen identities in flight");
            }
            slot.unseen = true;
            let now = Instant::now();
            let mut m = self.memory();
            if m.unreachable_until.is_some_and(|u| now < u) {
                drop(m);
                return refuse("the MEF did not answer a moment ago");
            }
            if !m.bucket.take(now) {
                drop(m);
                return refuse("too many misses of unseen identities");
            }
        }
        Ok(slot)
    }

    /// Runs `fut` on the source's runtime and waits for it, at most the link's deadline.
    fn run<T: Send + 'static>(
        &self,
        fut: impl Future<Output = T> + Send + 'static,
    ) -> Result<T, FetchError> {
        let deadline = self.link.timeout;
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.handle.spawn(async move {
            if let Ok(v) = tokio::time::timeout(deadline, fut).await {
                let _ = tx.send(v);
            }
        });
        let wait = move || rx.recv_timeout(deadline + Duration::from_millis(200));
        let r = match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
            Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(wait),
            _ => wait(),
        };
        r.map_err(|_| FetchError::Transport(format!("no answer within {deadline:?}")))
    }

    async fn connect(&self) -> Result<HttpClient, FetchError> {
        let l = &self.link;
        let ch = self
            .client
            .connect(&l.host, l.port, Some(l.fqdn.as_str()))
            .await
            .map_err(transport)?;
        HttpClient::new(ch, l.fqdn.as_str())
            .await
            .map_err(transport)
    }

    /// Sends `req` on an idle connection, or on a new one if there is none or the idle one
    /// turns out closed (every request here is a RETRIEVE, safe to send again).
    async fn request(&self, req: &RequestPrimitive) -> Result<ResponsePrimitive, FetchError> {
        let idle = self.pool.lock().unwrap_or_else(|p| p.into_inner()).pop();
        if let Some(mut c) = idle {
            if let Ok(r) = c.send(req).await {
                self.put_back(c);
                return Ok(r);
            }
        }
        let mut c = self.connect().await?;
        let r = c.send(req).await.map_err(transport)?;
        self.put_back(c);
        Ok(r)
    }

    fn put_back(&self, c: HttpClient) {
        let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
        if pool.len() <= self.link.limits.max_in_flight {
            pool.push(c);
        }
    }

    fn retrieve(&self, to: String, tag: &str) -> RequestPrimitive {
        RequestPrimitive::new(
            Operation::Retrieve,
            to,
            Some(&self.link.cse_id.to_string()),
            format!("{tag}-{}", self.rqi.fetch_add(1, Ordering::Relaxed)),
        )
    }

    /// Takes the feed cursor before the first retrieval, so every change to a key retrieved
    /// from now on appears after it.
    async fn ensure_cursor(&self) -> Result<(), FetchError> {
        if self.cursor_ready.load(Ordering::Acquire) {
            return Ok(());
        }
        let mut cursor = self.cursor.lock().await;
        if cursor.is_none() {
            *cursor = Some(self.feed_page("head").await?.next);
            self.cursor_ready.store(true, Ordering::Release);
        }
        Ok(())
    }

    /// One retrieval (TS-0003 §8.3.2.1 step 6).
    async fn fetch_async(&self, ke_id: &KeId) -> Result<Fetched, FetchError> {
        self.ensure_cursor().await?;
        let l = &self.link;
        let req = self.retrieve(format!("{FETCH_CREDENTIALS}/{ke_id}/{}", l.suid), "fetch");
        let r = self.request(&req).await?;
        let pc = r.pc.clone().ok_or_else(|| {
            FetchError::Protocol(format!("status {} without a body", r.rsc.as_u16()))
        })?;
        let body: FetchCredentialsResponse = serde_json::from_value(pc)?;
        if r.rsc != Rsc::Ok || !body.status {
            return Err(FetchError::Refused(
                r.rsc,
                body.error_string.unwrap_or_default(),
            ));
        }
        let key = body
            .credential
            .as_ref()
            .ok_or_else(|| FetchError::Protocol("no credential".into()))?;
        let key = Psk::new(key.expose_secret()).map_err(|e| FetchError::Protocol(e.to_string()))?;
        let lifetime = body
            .lifetime
            .ok_or_else(|| FetchError::Protocol("no lifetime".into()))?;
        let expires_unix = lifetime.to_unix();
        if expires_unix <= self.clock.now() {
            return Err(FetchError::Refused(
                Rsc::OriginatorHasNoPrivilege,
                "the credential has expired".into(),
            ));
        }
        Ok(Fetched {
            key,
            enrolee_id: body
                .enrolee_id
                .ok_or_else(|| FetchError::Protocol("no enroleeID".into()))?,
            expires_unix,
        })
    }

    async fn reserved_async(&self, stem: &str) -> Result<bool, FetchError> {
        let r = self
            .request(&self.retrieve(format!("{ENROLEES}/{stem}"), "enrolee"))
            .await?;
        if r.rsc != Rsc::Ok {
            return Err(FetchError::Refused(r.rsc, dbg_text(&r)));
        }
        let v: EnroleeReservation = wire::unwrap("mefEnrolee", r.pc.as_ref())?;
        Ok(v.reserved)
    }

    async fn feed_page(&self, cursor: &str) -> Result<ChangeFeed, FetchError> {
        let r = self
            .request(&self.retrieve(format!("{CHANGES}/{cursor}"), "changes"))
            .await?;
        if r.rsc != Rsc::Ok {
            return Err(FetchError::Refused(r.rsc, dbg_text(&r)));
        }
        Ok(wire::unwrap("mefChanges", r.pc.as_ref())?)
    }

    /// Reads the feed from the cursor (a few pages at most) and applies it.
    async fn poll_once(&self) -> Result<(), FetchError> {
        let mut cursor = self.cursor.lock().await;
        let Some(mut at) = *cursor else {
            *cursor = Some(self.feed_page("head").await?.next);
            self.cursor_ready.store(true, Ordering::Release);
            return Ok(());
        };
        for _ in 0..PAGES_PER_POLL {
            let page = self.feed_page(&at.to_string()).await?;
            self.apply(&page);
            at = page.next;
            *cursor = Some(at);
            if !page.more {
                break;
            }
        }
        Ok(())
    }

    /// Applies a feed page: ended KeIDs are reported revoked (the CSE drops their keys and
    /// closes their sessions), new ones count as seen, and a revoked device's Enrolee-ID is no
    /// longer reserved.
    fn apply(&self, page: &ChangeFeed) {
        let now = Instant::now();
        let cap = self.link.limits.memory;
        let mut m = self.memory();
        if page.reset {
            tracing::warn!("the MEF's change feed no longer has this CSE's cursor: every key retrieved from the MEF is dropped");
            m.revoked = RemoteRevocations {
                identities: Vec::new(),
                all: true,
            };
            m.seen.clear();
            m.reserved.clear();
        }
        for c in &page.changes {
            if let Some(k) = c.ended_ke_id.as_ref().map(KeId::to_string) {
                tracing::info!(ke_id = %k, event = ?c.event, enrolee = %c.enrolee_id, "KeID no longer valid at the MEF");
                m.seen.remove(&k);
                if m.revoked.all {
                    // Everything goes anyway.
                } else if m.revoked.identities.len() >= cap {
                    m.revoked = RemoteRevocations {
                        identities: Vec::new(),
                        all: true,
                    };
                } else {
                    m.revoked.identities.push(k);
                }
            }
            if let Some(k) = c.ke_id.as_ref().map(KeId::to_string) {
                m.seen.insert(&k, (), SEEN_TTL, now);
                m.misses.remove(&k);
            }
            if c.event == ChangeKind::Revoked {
                if let Some(ae) = c.enrolee_id.as_ae_id() {
                    m.reserved.remove(ae.stem().as_str());
                }
            }
        }
    }
}

fn dbg_text(r: &ResponsePrimitive) -> String {
    r.pc.as_ref()
        .and_then(|p| p.get("m2m:dbg"))
        .and_then(|d| d.as_str())
        .unwrap_or_default()
        .to_string()
}

/// Polls the feed every `poll_interval` until the source is dropped; logs when the MEF stops
/// or starts answering, and how many requests the limits refused.
async fn poll_loop(weak: Weak<Inner>) {
    let every = match weak.upgrade() {
        Some(i) => i.link.poll_interval.max(Duration::from_millis(100)),
        None => return,
    };
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tick.tick().await;
        let Some(inner) = weak.upgrade() else { return };
        let r = tokio::time::timeout(inner.link.timeout, inner.poll_once()).await;
        match r {
            Ok(Ok(())) => {
                if failing {
                    tracing::info!("MEF change feed followed again");
                }
                failing = false;
            }
            Ok(Err(e)) => {
                if !failing {
                    tracing::warn!(error = %e, "MEF change feed: revocations at the MEF do not reach this CSE until it answers");
                }
                failing = true;
            }
            Err(_) => {
                if !failing {
                    tracing::warn!(timeout = ?inner.link.timeout, "MEF change feed: no answer; revocations at the MEF do not reach this CSE until it answers");
                }
                failing = true;
            }
        }
        let refused = inner.throttled.swap(0, Ordering::Relaxed);
        if refused > 0 {
            tracing::warn!(
                refused,
                interval = ?every,
                "MEF requests refused by the limits (many unknown KeIDs, or a slow MEF)"
            );
        }
    }
}

impl RemoteKeySource for MefKeySource {
    fn fetch(&self, psk_identity: &str) -> Option<RemoteKey> {
        let ke_id = self.is_ours(psk_identity)?;
        match self.fetch_blocking(&ke_id) {
            Ok(f) => {
                let kpsa_id: KpsaId = psk_identity.parse().ok()?;
                let bound = if let EnroleeId::Ae(ae) = &f.enrolee_id {
                    // The device's Enrolee-ID is provisioned for this CSE.
                    self.inner.memory().reserved.insert(
                        ae.stem().as_str(),
                        true,
                        REMOTE_CACHE_TTL,
                        Instant::now(),
                    );
                    Some(BoundIdentity::Ae(vec![ae.clone()]))
                } else {
                    f.enrolee_id.as_cse_id().cloned().map(BoundIdentity::Cse)
                };
                tracing::info!(ke_id = %ke_id, enrolee = %f.enrolee_id, "key retrieved from the MEF");
                Some(RemoteKey {
                    key: f.key,
                    credential_id: CredentialId::for_kpsa(&kpsa_id),
                    bound,
                    expires_unix: Some(f.expires_unix),
                })
            }
            Err(e @ FetchError::Throttled(_)) => {
                tracing::debug!(ke_id = %ke_id, error = %e, "MEF key retrieval");
                None
            }
            Err(e @ FetchError::Refused(..)) => {
                tracing::info!(ke_id = %ke_id, error = %e, "MEF key retrieval refused");
                None
            }
            Err(e) => {
                tracing::warn!(ke_id = %ke_id, error = %e, "MEF key retrieval failed");
                None
            }
        }
    }

    fn enrolee_reserved(&self, ae_id_stem: &str) -> Result<bool, String> {
        self.reserved_blocking(ae_id_stem)
            .map_err(|e| e.to_string())
    }

    fn take_revoked(&self) -> RemoteRevocations {
        std::mem::take(&mut self.inner.memory().revoked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_refills_and_takes_refunds() {
        let t0 = Instant::now();
        let mut b = Bucket {
            tokens: 2.0,
            last: t0,
            rate: 10.0,
            burst: 2.0,
        };
        assert!(b.take(t0) && b.take(t0));
        assert!(!b.take(t0));
        b.give_back();
        assert!(b.take(t0));
        assert!(!b.take(t0 + Duration::from_millis(50)));
        assert!(b.take(t0 + Duration::from_millis(160)));
        // Never above the burst.
        assert!(b.take(t0 + Duration::from_secs(60)) && b.take(t0 + Duration::from_secs(60)));
        assert!(!b.take(t0 + Duration::from_secs(60)));
    }

    #[test]
    fn ttl_maps_expire_and_stay_bounded() {
        let t0 = Instant::now();
        let mut m = TtlMap::new(100);
        m.insert("a", 1u8, Duration::from_secs(1), t0);
        assert_eq!(m.get("a", t0), Some(1));
        assert_eq!(m.get("a", t0 + Duration::from_secs(2)), None);
        for i in 0..10_000 {
            m.insert(&format!("k{i}"), 2, Duration::from_secs(60), t0);
            assert!(m.map.len() <= 100);
        }
        assert_eq!(m.get("k9999", t0), Some(2));
    }
}
