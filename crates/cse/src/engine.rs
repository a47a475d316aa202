//! The registrar CSE engine: one request primitive in, one response primitive out
//! (TS-0004 §7.3.2, the generic Receiver procedure of §7.2.2.2), with no I/O of its own beyond the
//! [`Store`].
//!
//! [`Cse::handle`] runs, in order: validity checks on the primitive (TS-0004 §7.3.2.1), one store
//! transaction in which it verifies the originator ([`crate::verify`], TS-0003 §7.2.1), resolves the
//! target (TS-0001 §7.2), checks authorization ([`crate::acp`], TS-0003 §7.1; Recv-6.3), performs
//! CREATE / RETRIEVE / UPDATE / DELETE with the resource-specific rules of TS-0004 §7.4, commits, and
//! builds the response with the requested Result Content (TS-0001 table 8.1.2-1). Every failure is a
//! [`CseError`] carrying its Response Status Code; nothing panics and a failed request rolls back.
//!
//! Default access when a resource's `acpi` is NULL (TS-0001 §10.2.3.1): only the
//! resource's creator is granted access, and only when `rq_authn` is TRUE (TS-0003 §7.1.2): the
//! creator's identity must have been verified inside its own association, so a request outside
//! any association or forwarded by a registree CSE never holds creator rights. Our reading of
//! "creator": for an `<AE>` the AE itself; for
//! a `<remoteCSE>` the registree CSE; for `<container>`/`<contentInstance>` the originator of the
//! CREATE (`cr`); for `<CSEBase>` nobody, but `<CSEBase>` always has a policy (below). A
//! `<contentInstance>` uses its parent `<container>`'s policies (TS-0001 §9.6.7);
//! an `<accessControlPolicy>` uses its own `selfPrivileges` (TS-0001 §10.2.3.1). Registration (CREATE
//! `<AE>` or `<remoteCSE>` under `<CSEBase>`) skips Recv-6.3 (TS-0004 §7.4.5.2.1, §7.4.4.2.1).
//!
//! **Who may change `acpi`.** TS-0001 table 9.6.1.3.2-1 (absent from our copy of the spec) governs
//! updates of `accessControlPolicyIDs` by the `selfPrivileges` of the policies it references; our
//! reading (the one ACME and OM2M follow): an UPDATE that carries `acpi` must be permitted, as an
//! UPDATE, by the `selfPrivileges` (`pvs`) of at least one `<accessControlPolicy>` the resource's
//! *current* `acpi` names, in addition to the ordinary UPDATE privilege on the resource; when the
//! current `acpi` is NULL, by the default privileges (the creator, with `rq_authn` TRUE). So an
//! originator granted UPDATE on a resource cannot swap its policies for its own.
//!
//! **The `<CSEBase>` policy** ([`CseBasePolicy`]; TS-0001 §9.6.3 gives `<CSEBase>` an
//! `accessControlPolicyIDs` but says nothing of where its policy comes from, so ours comes from the
//! configuration). At every start the engine writes the `<accessControlPolicy>` [`CSE_BASE_ACP`]
//! (child of `<CSEBase>`, created at first start) from the configuration and keeps it first in
//! `<CSEBase>` `acpi`; other entries the administrator added stay. Its `pv`: RETRIEVE for "an AE
//! registered here", written `/<cse>/C*` (a C-type AE-ID of this CSE) and, on an IN-CSE, `/S*`
//! (S-type AE-IDs are assigned SP-wide by the IN-CSE, TS-0001 §7.1.2): [`crate::verify`] already
//! refuses an AE-ID that is neither registered here nor bound to the request's association (4106),
//! and one owned by a credential outside that credential's association; plus, if configured, every
//! operation for the administrator with `acaf` TRUE. Its `pvs`: the administrator (every
//! operation, `acaf`), else this CSE's own CSE-ID (a rule nobody can satisfy). The administrator is
//! authenticated like anyone else (an association bound to its AE-ID or CSE-ID); outside any
//! association only if [`CseBasePolicy::admin_plaintext`] says so, and then with `rq_authn` TRUE.
//! An AE-ID administrator is reserved: CREATE `<AE>` with it is 4106 except over an association
//! bound to it. `<CSEBase>` accepts UPDATE of `acpi` and `lbl` only (TS-0001 table 9.6.3-3).
//!
//! **Expiration** (TS-0001 §10.1.2 c; `et` has multiplicity 1 in TS-0004). Every resource a
//! request creates gets an `expirationTime`: the originator's, brought down to
//! [`Limits::max_expiration_secs`] after the request's time if later, or that maximum when the
//! originator gives none; an UPDATE of `et` is bounded the same way, and `et: null` is
//! BAD_REQUEST (a mandatory attribute cannot be deleted). An expired resource is gone: before
//! each request the engine deletes (with their subtrees) up to [`PURGE_PER_REQUEST`] expired
//! resources, taking an expired `<contentInstance>` out of its container's `cni`/`cbs`, and
//! [`Cse::purge_expired`] (run periodically by the server) removes the rest; lookups skip any
//! still stored. The store's per-registree `usage` follows through its triggers. `<CSEBase>` and
//! the configured `<CSEBase>` policy have no `et`.
//!
//! **NOTIFY** (TS-0004 §7.3.3.9.1): a NOTIFY to an `<AE>` (or `<remoteCSE>`)
//! needs the NOTIFY privilege on it (Recv-6.3); then, since this engine sends no requests of its
//! own, it is TARGET_NOT_REACHABLE (5103): the clause's answer when no `pointOfAccess` works
//! (none, `requestReachability` FALSE, or none this CSE can re-target to). Other targets receive
//! no notifications here: OPERATION_NOT_ALLOWED (4005).
//!
//! **Forwarding** ([`Cse::dispatch`], [`crate::routing`]; TS-0004 §7.3.2.6, §7.3.2.8). A
//! request whose `To` names another CSE is not handled here: after verifying its originator
//! (the same rules as for a local request, [`crate::verify`]) the engine returns a [`Forward`]
//! (next hop, the request with `From` made SP-relative, a deadline) and the driver sends it and
//! feeds the outcome to [`Cse::forward_ended`] (the next hop's response, or
//! TARGET_NOT_REACHABLE). A request arriving from a CSE's association gets, when it is for this
//! CSE, the CSE-association rules of TS-0004 §7.3.2.1 and `rq_authn` FALSE unless its `From` is
//! that CSE itself (TS-0003 §7.1.2), so an `acaf` rule never admits a forwarded request. An
//! MN-CSE knows its registrar from its configuration ([`Cse::set_registrar_id`]); its
//! registration ([`crate::registration`], [`Cse::set_registrar`]) writes the registrar's
//! `<remoteCSE>` here. A CREATE `<remoteCSE>` from that registrar is OPERATION_NOT_ALLOWED, so
//! two CSEs cannot register with each other (TS-0001 §6.4). A CSE registered here may RETRIEVE
//! `<CSEBase>` itself (`rq_authn` TRUE): the registree's RETRIEVE of its registrar's
//! `<CSEBase>` after registration (TS-0004 §7.4.4.2.1).
//!
//! **Storage limits** ([`Limits`]): a `<container>` created without `mni`/`mbs` gets the configured
//! defaults (TS-0004 §7.4.7.2.1 lets the hosting CSE assign them), and a CREATE that would bring
//! a registree's subtree (`cb/<AE or remoteCSE>/…`) over the per-registree quota of resources or
//! bytes is NOT_ACCEPTABLE (5207) and leaves nothing behind.

use serde_json::{Map, Value};

use m2msec_core::clock::Clock;
use m2msec_core::ids::{AeIdStem, AeIdStemKind, CseId, SpId};
use m2msec_core::timestamp::Timestamp;

use crate::acp::{self, AccessRequest, SetOfAcrs};
use crate::primitive::{Operation, RequestPrimitive, ResponsePrimitive, ResultContent};
use crate::resource::{
    content_size, parse_to, validate_app_id, validate_request_attrs, validate_resource_name, Attrs,
    CseAddress, RequestAttrs, Resource, ResourceType, Target,
};
use crate::routing::{decide, Arrival, Decision, InFlight, Neighbour, NextHop, Routes};
use crate::rsc::{CseError, Rsc};
use crate::store::{top_of, Store, StoreError, StoreTx};

/// The routing decision with its request (internal to [`Cse::dispatch`]).
enum Routed {
    Local(RequestPrimitive),
    Forward(Forward),
}
use crate::verify::{
    verify, AeIdPlan, LocalIds, NoReservations, Originator, Reservations, SecurityContext, Verified,
};

/// Storage limits of the engine (see the module docs). `None` disables a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// `mni` given to a `<container>` created without one.
    pub container_mni: Option<u64>,
    /// `mbs` (bytes) given to a `<container>` created without one.
    pub container_mbs: Option<u64>,
    /// Most resources under one registree (`<AE>` or `<remoteCSE>`), itself included.
    pub registree_max_resources: Option<u64>,
    /// Most bytes (stored representation) under one registree.
    pub registree_max_bytes: Option<u64>,
    /// Longest lifetime (seconds from the request) a resource's expirationTime may give: the
    /// value assigned when the originator gives none, and the bound an originator's value is
    /// brought down to (TS-0001 §10.1.2 c). `None`: no `et` assigned, any future `et` kept.
    pub max_expiration_secs: Option<u64>,
}

/// Default of [`Limits::max_expiration_secs`]: 5 years.
pub const DEFAULT_MAX_EXPIRATION_SECS: u64 = 5 * 365 * 86_400;
/// Most expired resources removed by one request before it runs (the periodic sweep,
/// [`Cse::purge_expired`], removes the rest).
pub const PURGE_PER_REQUEST: usize = 256;

impl Default for Limits {
    /// 1,000 instances and 1 MiB per container; 10,000 resources and 64 MiB per registree;
    /// expirationTime at most 5 years ahead.
    fn default() -> Self {
        Limits {
            container_mni: Some(1_000),
            container_mbs: Some(1 << 20),
            registree_max_resources: Some(10_000),
            registree_max_bytes: Some(64 << 20),
            max_expiration_secs: Some(DEFAULT_MAX_EXPIRATION_SECS),
        }
    }
}

/// Most child resources listed in one response.
pub const MAX_CHILDREN_LISTED: usize = 1000;
/// Release versions accepted in `rvi` and advertised in `<CSEBase>` `srv` (TS-0004 §6.4.1,
/// §7.3.2.1): only the releases whose resource attributes and request parameters this engine
/// serves. A request with a later `rvi` is RELEASE_VERSION_NOT_SUPPORTED (4001).
pub const SUPPORTED_RELEASE_VERSIONS: [&str; 2] = ["2a", "3"];

/// `m2m:cseTypeID` (TS-0004 §6.3.4.2.3) of the roles this engine can play.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CseType {
    /// 1 IN-CSE: acts for the M2M SP, so it may assign S-type AE-ID-Stems.
    In,
    /// 2 MN-CSE.
    Mn,
}

/// Engine configuration (the CSE's identity; TS-0001 §7.1.4, TS-0004 §6.2.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CseConfig {
    /// M2M-SP-ID.
    pub sp: SpId,
    /// This CSE's CSE-ID (any form; its stem is used).
    pub cse_id: CseId,
    /// Resource name of `<CSEBase>`.
    pub cb_rn: String,
    /// IN-CSE or MN-CSE.
    pub cse_type: CseType,
    /// pointOfAccess of `<CSEBase>`.
    pub poa: Vec<String>,
}

/// Name and resource ID of the `<accessControlPolicy>` that holds the configured `<CSEBase>`
/// policy (module docs, "The `<CSEBase>` policy").
pub const CSE_BASE_ACP: &str = "acpCSEBase";

/// Who may do what on `<CSEBase>` (module docs, "The `<CSEBase>` policy").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CseBasePolicy {
    /// AEs registered here may RETRIEVE `<CSEBase>` (default true).
    pub registered_aes_retrieve: bool,
    /// The administrator originator: an AE-ID or a CSE-ID in any form. It is granted every
    /// operation on `<CSEBase>` and on [`CSE_BASE_ACP`], only when authenticated (`acaf`).
    pub admin: Option<String>,
    /// Whether the administrator is also accepted outside any association (the loopback
    /// plaintext listener), as authenticated. Off by default.
    pub admin_plaintext: bool,
}

impl Default for CseBasePolicy {
    fn default() -> Self {
        CseBasePolicy {
            registered_aes_retrieve: true,
            admin: None,
            admin_plaintext: false,
        }
    }
}

/// Parses an administrator ID: an AE-ID if it reads as one (`C…`, `S…`, `/cse/C…`, `/S…`),
/// else a CSE-ID.
fn parse_originator(s: &str) -> Option<Originator> {
    if let Ok(a) = s.parse::<m2msec_core::ids::AeId>() {
        return Some(Originator::Ae(a));
    }
    if s.starts_with('/') {
        return s.parse::<CseId>().ok().map(Originator::Cse);
    }
    None
}

/// The engine.
pub struct Cse<S: Store> {
    store: S,
    ids: LocalIds,
    addr: CseAddress,
    cfg: CseConfig,
    cb_ri: String,
    clock: Clock,
    reservations: std::sync::Arc<dyn Reservations>,
    limits: Limits,
    /// The administrator (absolute form) and whether it is accepted outside associations.
    admin: Option<(Originator, String, bool)>,
    /// Forwarding state (module docs, "Forwarding"; [`crate::routing`]).
    fwd: Forwarding,
}

/// Forwarding state of an engine (module docs, "Forwarding").
#[derive(Debug)]
struct Forwarding {
    /// The registrar's CSE-ID stem once registered (an MN-CSE).
    registrar: Option<String>,
    /// How long a forward may take, in seconds.
    timeout_secs: i64,
    in_flight: InFlight,
}

/// Default of [`Cse::set_forward_timeout`]: 30 s.
pub const DEFAULT_FORWARD_TIMEOUT_SECS: i64 = 30;

/// What [`Cse::dispatch`] makes of a request.
#[derive(Debug, Clone, PartialEq)]
pub enum Dispatch {
    /// Handled here (or refused): send this response.
    Reply(ResponsePrimitive),
    /// Not hosted here: the driver sends [`Forward::request`] to [`Forward::next_hop`] before
    /// [`Forward::deadline`], then calls [`Cse::forward_ended`] with the outcome.
    Forward(Forward),
}

/// A request to forward to a neighbour CSE (TS-0004 §7.3.2.6).
#[derive(Debug, Clone, PartialEq)]
pub struct Forward {
    /// The neighbour.
    pub next_hop: NextHop,
    /// The request as forwarded (`From` SP-relative).
    pub request: RequestPrimitive,
    /// Unix seconds (on the engine's clock) by which the next hop must have answered.
    pub deadline: i64,
    /// The same deadline as a duration from when the forward was decided, in seconds (for a
    /// driver whose clock is not the engine's).
    pub timeout_secs: i64,
}

/// The local `<remoteCSE>` of this CSE's registrar (TS-0004 §7.4.4.2.1: "the Originator, upon
/// receipt of successful CREATE response message, shall create a `<remoteCSE>` resource
/// locally"), from the registrar's `<CSEBase>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrarCse {
    /// The registrar's CSE-ID, SP-relative (`/stem`).
    pub csi: String,
    /// The registrar's `<CSEBase>` address (`/stem/<cb rn>`).
    pub cb: String,
    /// Its `cseType` (1 IN-CSE, 2 MN-CSE).
    pub cst: Option<u8>,
    /// Its `pointOfAccess`.
    pub poa: Vec<String>,
    /// Its `supportedReleaseVersions`.
    pub srv: Vec<String>,
}

impl<S: Store> core::fmt::Debug for Cse<S> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Cse")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

fn db(e: StoreError) -> CseError {
    match e {
        StoreError::Conflict(m) => CseError::new(Rsc::Conflict, m),
        other => {
            tracing::error!(error = %other, "store failure");
            CseError::internal("store failure")
        }
    }
}

/// Random lowercase hex of `n` bytes from the OS RNG.
fn random_hex(n: usize) -> Result<String, CseError> {
    use rand_core::RngCore;
    let mut b = vec![0u8; n];
    rand_core::OsRng
        .try_fill_bytes(&mut b)
        .map_err(|_| CseError::internal("random number generator failed"))?;
    Ok(hex::encode(b))
}

/// Removes up to `limit` resources whose expirationTime has passed (TS-0001 §10.1.2: an
/// expired resource is deleted by the Hosting CSE), with their subtrees; an expired
/// `<contentInstance>` leaves its `<container>`'s `cni`/`cbs` (TS-0004 §7.4.7). The store's
/// `usage` triggers follow the deletions. Returns how many were removed.
fn purge_in(tx: &mut dyn StoreTx, now_us: i64, limit: usize) -> Result<usize, CseError> {
    let mut n = 0;
    for r in tx.expired(now_us, limit).map_err(db)? {
        // An earlier entry (an ancestor, ordered first by path) may have removed it already.
        let Some(cur) = tx.get(&r.ri).map_err(db)? else {
            continue;
        };
        if let (ResourceType::ContentInstance, Some(pi)) = (cur.ty, cur.pi.as_deref()) {
            if let Some(mut p) = tx.get(pi).map_err(db)? {
                if let (Attrs::Container { cni, cbs, .. }, Attrs::ContentInstance { cs, .. }) =
                    (&mut p.attrs, &cur.attrs)
                {
                    *cni = cni.saturating_sub(1);
                    *cbs = cbs.saturating_sub(*cs);
                }
                tx.update(&p).map_err(db)?;
            }
        }
        n += tx.delete_subtree(&cur).map_err(db)?;
        tracing::debug!(ri = %cur.ri, "expired resource removed");
    }
    Ok(n)
}

struct Ctx<'a> {
    verified: &'a Verified,
    /// The request's From, as carried.
    from: Option<String>,
    orig_abs: Option<String>,
    now: Timestamp,
}

impl<S: Store> Cse<S> {
    /// Opens the engine on a store, creating `<CSEBase>` on first start (TS-0001 §9.6.3).
    /// Fails if the store holds a `<CSEBase>` with another name or CSE-ID.
    pub fn new(cfg: CseConfig, store: S) -> Result<Cse<S>, CseError> {
        Self::with_clock(cfg, store, Clock::system())
    }

    /// As [`Cse::new`] with a clock (tests, replays; [`m2msec_core::clock`]).
    pub fn with_clock(cfg: CseConfig, store: S, clock: Clock) -> Result<Cse<S>, CseError> {
        Self::with_policy(cfg, store, clock, &CseBasePolicy::default())
    }

    /// As [`Cse::with_clock`], with the `<CSEBase>` policy (module docs): its
    /// `<accessControlPolicy>` [`CSE_BASE_ACP`] is created at first start and rewritten from
    /// `policy` at every start, and kept in `<CSEBase>` `acpi`.
    pub fn with_policy(
        cfg: CseConfig,
        mut store: S,
        clock: Clock,
        policy: &CseBasePolicy,
    ) -> Result<Cse<S>, CseError> {
        validate_resource_name(&cfg.cb_rn)?;
        let stem = cfg.cse_id.stem().to_string();
        let ids = LocalIds {
            sp: cfg.sp.clone(),
            cse_stem: stem.clone(),
        };
        let addr = CseAddress {
            sp: cfg.sp.to_string(),
            cse_stem: stem.clone(),
            cb_rn: cfg.cb_rn.clone(),
        };
        let now =
            Timestamp::from_unix(clock.now()).map_err(|e| CseError::internal(e.to_string()))?;
        let cb_ri = stem.clone();
        let admin = match &policy.admin {
            None => None,
            Some(a) => {
                let o = parse_originator(a).ok_or_else(|| {
                    CseError::bad_request(format!(
                        "[cse_base] admin {a:?} is not an AE-ID or CSE-ID"
                    ))
                })?;
                let abs = o.absolute(&ids);
                Some((o, abs, policy.admin_plaintext))
            }
        };
        let (pv, pvs) = cse_base_rules(
            &stem,
            cfg.cse_type,
            policy.registered_aes_retrieve,
            admin.as_ref().map(|a| a.1.as_str()),
        );
        {
            let mut tx = store.begin().map_err(db)?;
            match tx.get_by_path(&cfg.cb_rn).map_err(db)? {
                Some(cb) => {
                    let ok = cb.ty == ResourceType::CseBase
                        && matches!(&cb.attrs, Attrs::CseBase { csi, .. } if *csi == format!("/{stem}"));
                    if !ok {
                        return Err(CseError::internal(
                            "the store holds a different CSEBase (name or CSE-ID changed)",
                        ));
                    }
                    // What the CSE serves follows the code and the configuration, not the
                    // store: a store written by an earlier version advertised more releases.
                    let mut cb = cb;
                    if let Attrs::CseBase { srv, poa, .. } = &mut cb.attrs {
                        let want: Vec<String> = SUPPORTED_RELEASE_VERSIONS
                            .iter()
                            .map(|s| s.to_string())
                            .collect();
                        if *srv != want || *poa != cfg.poa {
                            *srv = want;
                            poa.clone_from(&cfg.poa);
                            tx.update(&cb).map_err(db)?;
                        }
                    }
                }
                None => {
                    let cb = Resource {
                        ty: ResourceType::CseBase,
                        ri: cb_ri.clone(),
                        rn: cfg.cb_rn.clone(),
                        pi: None,
                        path: cfg.cb_rn.clone(),
                        ct: now,
                        lt: now,
                        et: None,
                        lbl: None,
                        acpi: None,
                        creator: None,
                        cr: None,
                        attrs: Attrs::CseBase {
                            cst: match cfg.cse_type {
                                CseType::In => 1,
                                CseType::Mn => 2,
                            },
                            csi: format!("/{stem}"),
                            srt: vec![1, 2, 3, 4, 5, 16],
                            poa: cfg.poa.clone(),
                            srv: SUPPORTED_RELEASE_VERSIONS
                                .iter()
                                .map(|s| s.to_string())
                                .collect(),
                        },
                    };
                    tx.insert(&cb).map_err(db)?;
                }
            }
            // The configured <CSEBase> policy (module docs).
            let acp_path = format!("{}/{CSE_BASE_ACP}", cfg.cb_rn);
            match tx.get(CSE_BASE_ACP).map_err(db)? {
                Some(mut acp)
                    if acp.ty == ResourceType::AccessControlPolicy && acp.path == acp_path =>
                {
                    let want = Attrs::Acp {
                        pv: pv.clone(),
                        pvs: pvs.clone(),
                    };
                    if acp.attrs != want {
                        acp.attrs = want;
                        acp.lt = now;
                        tx.update(&acp).map_err(db)?;
                    }
                }
                Some(_) => {
                    return Err(CseError::internal(format!(
                    "the store holds a resource {CSE_BASE_ACP:?} that is not the <CSEBase> policy"
                )))
                }
                None => {
                    let acp = Resource {
                        ty: ResourceType::AccessControlPolicy,
                        ri: CSE_BASE_ACP.into(),
                        rn: CSE_BASE_ACP.into(),
                        pi: Some(cb_ri.clone()),
                        path: acp_path,
                        ct: now,
                        lt: now,
                        et: None,
                        lbl: None,
                        acpi: None,
                        creator: None,
                        cr: None,
                        attrs: Attrs::Acp { pv, pvs },
                    };
                    tx.insert(&acp).map_err(db)?;
                }
            }
            let mut cb = tx
                .get(&cb_ri)
                .map_err(db)?
                .ok_or_else(|| CseError::internal("<CSEBase> vanished"))?;
            let list = cb.acpi.get_or_insert_with(Vec::new);
            if !list.iter().any(|a| a == CSE_BASE_ACP) {
                list.insert(0, CSE_BASE_ACP.into());
                tx.update(&cb).map_err(db)?;
            }
            tx.commit().map_err(db)?;
        }
        Ok(Cse {
            store,
            ids,
            addr,
            cfg,
            cb_ri,
            clock,
            reservations: std::sync::Arc::new(NoReservations),
            limits: Limits::default(),
            admin,
            fwd: Forwarding {
                registrar: None,
                timeout_secs: DEFAULT_FORWARD_TIMEOUT_SECS,
                in_flight: InFlight::new(),
            },
        })
    }

    /// Sets how long a forwarded request may wait for the next hop (module docs, "Forwarding").
    pub fn set_forward_timeout(&mut self, secs: i64) {
        self.fwd.timeout_secs = secs.max(1);
    }

    /// Records this CSE's registrar (an MN-CSE after its registration, [`crate::registration`]):
    /// its local `<remoteCSE>` is created or brought up to date (TS-0004 §7.4.4.2.1), and
    /// requests for targets not below this CSE are forwarded to it from now on. A resource
    /// named like the registrar's CSE-ID that is not its `<remoteCSE>` is a CONFLICT.
    pub fn set_registrar(&mut self, reg: &RegistrarCse) -> Result<(), CseError> {
        let csi: CseId = reg
            .csi
            .parse()
            .map_err(|e| CseError::bad_request(format!("registrar csi: {e}")))?;
        let stem = csi.stem().to_string();
        validate_resource_name(&stem)?;
        if stem == self.ids.cse_stem {
            return Err(CseError::bad_request("a CSE cannot register with itself"));
        }
        let now = Timestamp::from_unix(self.clock.now())
            .map_err(|e| CseError::internal(e.to_string()))?;
        let attrs = Attrs::RemoteCse {
            cst: reg.cst,
            csi: format!("/{stem}"),
            cb: reg.cb.clone(),
            rr: true,
            poa: Some(reg.poa.clone()),
            srv: Some(reg.srv.clone()),
        };
        let abs = self.ids.absolute_cse(&csi);
        let mut tx = self.store.begin().map_err(db)?;
        match tx.get(&stem).map_err(db)? {
            Some(mut r)
                if r.ty == ResourceType::RemoteCse && r.creator.as_deref() == Some(&abs) =>
            {
                if r.attrs != attrs {
                    r.attrs = attrs;
                    r.lt = now;
                    tx.update(&r).map_err(db)?;
                }
            }
            Some(_) => {
                return Err(CseError::new(
                    Rsc::Conflict,
                    "a resource with the registrar's CSE-ID as its ID exists",
                ))
            }
            None => {
                let r = Resource {
                    ty: ResourceType::RemoteCse,
                    ri: stem.clone(),
                    rn: stem.clone(),
                    pi: Some(self.cb_ri.clone()),
                    path: format!("{}/{stem}", self.addr.cb_rn),
                    ct: now,
                    lt: now,
                    et: None,
                    lbl: None,
                    acpi: None,
                    creator: Some(abs),
                    cr: None,
                    attrs,
                };
                tx.insert(&r).map_err(db)?;
            }
        }
        tx.commit().map_err(db)?;
        self.fwd.registrar = Some(stem);
        Ok(())
    }

    /// Names this CSE's registrar (an MN-CSE's configuration), before its registration is
    /// done: requests for targets not below this CSE go to it, and a CREATE `<remoteCSE>` from
    /// it is refused (a registration loop, TS-0001 §6.4).
    pub fn set_registrar_id(&mut self, registrar: &CseId) {
        self.fwd.registrar = Some(registrar.stem().to_string());
    }

    /// The registrar's CSE-ID stem, once [`Cse::set_registrar_id`] or [`Cse::set_registrar`] ran.
    pub fn registrar(&self) -> Option<&str> {
        self.fwd.registrar.as_deref()
    }

    /// This CSE's neighbours for [`crate::routing::decide`]: its registrar and the registree
    /// CSEs (`<remoteCSE>` children of `<CSEBase>` other than the registrar's).
    pub fn routes(&mut self) -> Result<Routes, CseError> {
        let mut tx = self.store.begin_read().map_err(db)?;
        let list = tx
            .children(&self.cb_ri, Some(ResourceType::RemoteCse), usize::MAX)
            .map_err(db)?;
        drop(tx);
        let registrees = list
            .into_iter()
            .filter_map(|r| match r.attrs {
                Attrs::RemoteCse { csi, poa, .. } => {
                    let stem = csi.parse::<CseId>().ok()?.stem().to_string();
                    (Some(&stem) != self.fwd.registrar.as_ref()).then(|| Neighbour {
                        csi: stem,
                        descendants: Vec::new(),
                        poa: poa.unwrap_or_default(),
                    })
                }
                _ => None,
            })
            .collect();
        Ok(Routes {
            sp: self.ids.sp.to_string(),
            cse_stem: self.ids.cse_stem.clone(),
            registrar: self.fwd.registrar.clone(),
            has_registrar: self.cfg.cse_type == CseType::Mn || self.fwd.registrar.is_some(),
            registrees,
        })
    }

    /// Handles a request here or decides to forward it (module docs, "Forwarding"): the
    /// routing decision of [`crate::routing::decide`]; for a forward, the originator is
    /// verified here first (TS-0003 §7.2.1: this CSE is the registrar of the originator or of
    /// the CSE that sent it) and the request enters the in-flight set (the loop guard).
    pub fn dispatch(&mut self, sec: &SecurityContext, req: RequestPrimitive) -> Dispatch {
        let rqi = req.rqi.clone();
        let orig = req.fr.clone();
        match self.try_forward(sec, req) {
            Ok(Routed::Local(req)) => Dispatch::Reply(self.handle(sec, req)),
            Ok(Routed::Forward(f)) => Dispatch::Forward(f),
            Err(e) => {
                tracing::debug!(rsc = e.rsc.as_u16(), detail = %e.detail, "request not forwarded");
                let mut r = ResponsePrimitive::error(&e, rqi);
                r.to = orig;
                r.fr = Some(self.cse_id());
                r.ot = Timestamp::from_unix(self.clock.now()).ok();
                Dispatch::Reply(r)
            }
        }
    }

    fn try_forward(
        &mut self,
        sec: &SecurityContext,
        req: RequestPrimitive,
    ) -> Result<Routed, CseError> {
        if crate::routing::hosted_here(&req.to, self.ids.sp.as_str(), &self.ids.cse_stem) {
            return Ok(Routed::Local(req));
        }
        let routes = self.routes()?;
        let arrival = match sec {
            SecurityContext::Association(a) => match &a.bound {
                Some(crate::verify::BoundIdentity::Cse(c)) => Arrival::Cse(c.stem().to_string()),
                _ => Arrival::Originator,
            },
            SecurityContext::None => Arrival::Originator,
        };
        // Verify first only when the request leaves: a local one is verified by `handle`.
        let (next_hop, request) = match decide(&routes, req.clone(), &arrival)? {
            Decision::Local(r) => return Ok(Routed::Local(r)),
            Decision::Forward { next_hop, request } => (next_hop, request),
        };
        if self.plaintext_admin_from(sec, req.fr.as_deref()).is_none() {
            let ids = self.ids.clone();
            let res = self.reservations.clone();
            let mut tx = self.store.begin_read().map_err(db)?;
            verify(
                sec,
                false,
                req.fr.as_deref(),
                &ids,
                res.as_ref(),
                tx.as_mut(),
            )?;
        }
        let now = self.clock.now();
        let deadline = now.saturating_add(self.fwd.timeout_secs);
        self.fwd.in_flight.begin(&request, now, deadline)?;
        Ok(Routed::Forward(Forward {
            next_hop,
            request,
            deadline,
            timeout_secs: self.fwd.timeout_secs,
        }))
    }

    /// How many forwards from [`Cse::dispatch`] have not ended yet.
    pub fn forwards_pending(&self) -> usize {
        self.fwd.in_flight.len()
    }

    /// Whether `from` is the administrator outside any association, accepted there.
    fn plaintext_admin_from(&self, sec: &SecurityContext, from: Option<&str>) -> Option<()> {
        let (_, abs, plaintext) = self.admin.as_ref()?;
        if !*plaintext || !matches!(sec, SecurityContext::None) {
            return None;
        }
        let o = parse_originator(from?)?;
        (o.absolute(&self.ids) == *abs).then_some(())
    }

    /// The end of a forward from [`Cse::dispatch`]: the next hop's response, passed back to the
    /// originator with its Request Identifier, or (`Err`: the next hop could not be reached or
    /// did not answer before the deadline) TARGET_NOT_REACHABLE (TS-0004 §6.6.3.7).
    pub fn forward_ended(
        &mut self,
        f: &Forward,
        outcome: Result<ResponsePrimitive, String>,
    ) -> ResponsePrimitive {
        self.fwd.in_flight.end(&f.request);
        match outcome {
            Ok(mut r) => {
                r.rqi.clone_from(&f.request.rqi);
                r
            }
            Err(why) => {
                let e = CseError::new(
                    Rsc::TargetNotReachable,
                    format!("next hop {} not reachable: {why}", f.next_hop.csi()),
                );
                let mut r = ResponsePrimitive::error(&e, f.request.rqi.clone());
                r.to.clone_from(&f.request.fr);
                r.fr = Some(self.cse_id());
                r.ot = Timestamp::from_unix(self.clock.now()).ok();
                r
            }
        }
    }

    /// Sets the source of identities reserved for credentials outside the store (configured
    /// IdAs, MEF-provisioned Enrolee-IDs; see [`crate::verify`]).
    pub fn set_reservations(&mut self, reservations: std::sync::Arc<dyn Reservations>) {
        self.reservations = reservations;
    }

    /// Sets the storage limits (module docs).
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// Removes every expired resource (module docs, "Expiration"): the periodic sweep, in
    /// transactions of at most 1,000 resources. Returns how many rows were removed.
    pub fn purge_expired(&mut self) -> Result<usize, CseError> {
        let now = Timestamp::from_unix(self.clock.now())
            .map_err(|e| CseError::internal(e.to_string()))?
            .to_unix_micros();
        let mut total = 0;
        loop {
            let mut tx = self.store.begin().map_err(db)?;
            let n = purge_in(tx.as_mut(), now, 1000)?;
            tx.commit().map_err(db)?;
            total += n;
            if n == 0 {
                return Ok(total);
            }
        }
    }

    /// The engine's clock: the one its service reads too (credential expiries), so both see
    /// the same time.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// The store (for inspection and administration).
    pub fn store_mut(&mut self) -> &mut S {
        &mut self.store
    }

    /// This CSE's SP-relative CSE-ID, `/stem`.
    pub fn cse_id(&self) -> String {
        format!("/{}", self.ids.cse_stem)
    }

    /// Handles one request primitive (TS-0004 §7.3.2). Never panics; every error becomes an error
    /// response with its RSC.
    pub fn handle(&mut self, sec: &SecurityContext, req: RequestPrimitive) -> ResponsePrimitive {
        let rqi = req.rqi.clone();
        let to = req.fr.clone();
        let rvi = req.rvi.clone();
        let vsi = req.vsi.clone();
        let now = Timestamp::from_unix(self.clock.now()).ok();
        let mut resp = match self.process(sec, req) {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(rsc = e.rsc.as_u16(), detail = %e.detail, "request rejected");
                ResponsePrimitive::error(&e, rqi.clone())
            }
        };
        // Every response echoes the Request Identifier (TS-0004 §7.3.2).
        resp.rqi = rqi;
        if resp.to.is_none() {
            resp.to = to;
        }
        resp.fr = Some(self.cse_id());
        resp.rvi = rvi;
        // Vendor Information is echoed (TS-0004 table 6.4.2-1; TS-0009 §6.4.23).
        resp.vsi = vsi;
        resp.ot = now;
        resp
    }

    /// Parses a JSON request primitive and handles it; a parse failure is answered like any error.
    pub fn handle_json(&mut self, sec: &SecurityContext, bytes: &[u8]) -> ResponsePrimitive {
        match RequestPrimitive::from_json(bytes) {
            Ok(req) => self.handle(sec, req),
            Err(e) => {
                let mut r = ResponsePrimitive::error(&e, "");
                r.fr = Some(self.cse_id());
                r
            }
        }
    }

    fn process(
        &mut self,
        sec: &SecurityContext,
        req: RequestPrimitive,
    ) -> Result<ResponsePrimitive, CseError> {
        // --- TS-0004 §7.3.2.1: validity of the primitive -------------------------------------
        if let Some(p) = req.unsupported.first() {
            return Err(CseError::new(
                Rsc::NotImplemented,
                format!("request parameter {p} is not supported"),
            ));
        }
        if let Some(v) = &req.rvi {
            if !SUPPORTED_RELEASE_VERSIONS.contains(&v.as_str()) {
                return Err(CseError::new(
                    Rsc::ReleaseVersionNotSupported,
                    format!("release version {v:?} not supported"),
                ));
            }
        }
        let rcn = req.rcn.unwrap_or(ResultContent::default_for(req.op));
        if !rcn.valid_for(req.op) {
            return Err(CseError::bad_request(
                "result content invalid for this operation",
            ));
        }
        if req.fc.is_some() {
            return Err(if req.op == Operation::Create {
                CseError::bad_request("filter criteria in a CREATE")
            } else {
                CseError::new(
                    Rsc::NotImplemented,
                    "filter criteria / discovery not supported",
                )
            });
        }
        let create_ty = if req.op == Operation::Create {
            let n = req
                .ty
                .ok_or_else(|| CseError::bad_request("CREATE without resource type"))?;
            Some(ResourceType::from_u64(n).ok_or_else(|| {
                CseError::bad_request(format!("resource type {n} is unknown or not supported"))
            })?)
        } else {
            None
        };
        let now = Timestamp::from_unix(self.clock.now())
            .map_err(|e| CseError::internal(e.to_string()))?;
        let target = parse_to(&req.to, &self.addr)?;

        let ids = self.ids.clone();
        let addr = self.addr.clone();
        let cb_ri = self.cb_ri.clone();
        let cse_type = self.cfg.cse_type;
        let reservations = self.reservations.clone();
        let admin = self.admin.clone();
        let registrar = self.fwd.registrar.clone();
        let eng = Eng {
            registrar: registrar.as_deref(),
            admin: admin.as_ref(),
            ids: &ids,
            addr: &addr,
            cb_ri: &cb_ri,
            cse_type,
            res: reservations.as_ref(),
            limits: self.limits,
        };
        // Expired resources go before the request sees the store (module docs, "Expiration").
        // A RETRIEVE reads in a deferred transaction; when something expired it purges in a
        // write transaction first, rather than upgrading the read one (SQLite may refuse that).
        let now_us = now.to_unix_micros();
        let mut txb = if matches!(req.op, Operation::Retrieve | Operation::Notify) {
            let mut rtx = self.store.begin_read().map_err(db)?;
            if !rtx.expired(now_us, 1).map_err(db)?.is_empty() {
                drop(rtx);
                let mut wtx = self.store.begin().map_err(db)?;
                purge_in(wtx.as_mut(), now_us, PURGE_PER_REQUEST)?;
                wtx.commit().map_err(db)?;
                rtx = self.store.begin_read().map_err(db)?;
            }
            rtx
        } else {
            let mut wtx = self.store.begin().map_err(db)?;
            purge_in(wtx.as_mut(), now_us, PURGE_PER_REQUEST)?;
            wtx
        };
        let resp = eng.run(txb.as_mut(), sec, &req, create_ty, target, now, rcn)?;
        txb.commit().map_err(db)?;
        Ok(resp)
    }
}

/// The `pv` and `pvs` of [`CSE_BASE_ACP`] (module docs, "The `<CSEBase>` policy").
fn cse_base_rules(
    stem: &str,
    cse_type: CseType,
    registered_aes_retrieve: bool,
    admin: Option<&str>,
) -> (SetOfAcrs, SetOfAcrs) {
    use crate::acp::AccessControlRule;
    let rule = |acor: Vec<String>, acop: u32, acaf: bool| AccessControlRule {
        acor,
        acop,
        acco: Vec::new(),
        acaf: acaf.then_some(true),
        acod: Vec::new(),
    };
    let mut pv = Vec::new();
    // An AE registered here: a C-type AE-ID of this CSE, or (IN-CSE only: S-type AE-IDs are
    // assigned by the IN-CSE) an S-type AE-ID of this SP. `verify` admits such an AE-ID only
    // when the AE is registered here or its association is bound to it.
    let mut registered = vec![format!("/{stem}/C*")];
    if cse_type == CseType::In {
        registered.push("/S*".into());
    }
    if registered_aes_retrieve {
        pv.push(rule(registered, Operation::Retrieve.acop_bit(), false));
    }
    let pvs = match admin {
        Some(a) => {
            pv.push(rule(vec![a.to_string()], 63, true));
            vec![rule(vec![a.to_string()], 63, true)]
        }
        // `selfPrivileges` needs a rule (TS-0004 §7.4.2): the hosting CSE itself, which no
        // request may claim as its originator (crate::verify).
        None => vec![rule(
            vec![format!("/{stem}")],
            Operation::Retrieve.acop_bit(),
            true,
        )],
    };
    (SetOfAcrs { acr: pv }, SetOfAcrs { acr: pvs })
}

struct Eng<'a> {
    /// This CSE's registrar's CSE-ID stem (module docs, "Forwarding").
    registrar: Option<&'a str>,
    admin: Option<&'a (Originator, String, bool)>,
    ids: &'a LocalIds,
    addr: &'a CseAddress,
    cb_ri: &'a str,
    cse_type: CseType,
    res: &'a dyn Reservations,
    limits: Limits,
}

fn ok_resp(rsc: Rsc, pc: Option<Value>) -> ResponsePrimitive {
    let mut r = ResponsePrimitive::new(rsc, "");
    r.pc = pc;
    r
}

fn child_ref(r: &Resource) -> Value {
    let mut m = Map::new();
    m.insert("nm".into(), Value::from(r.rn.clone()));
    m.insert("typ".into(), Value::from(r.ty.as_u64()));
    m.insert("val".into(), Value::from(r.ri.clone()));
    Value::Object(m)
}

fn expired(r: &Resource, now: &Timestamp) -> bool {
    r.et.is_some_and(|et| et.to_unix_micros() <= now.to_unix_micros())
}

impl Eng<'_> {
    #[allow(clippy::too_many_arguments)]
    fn run(
        &self,
        tx: &mut dyn StoreTx,
        sec: &SecurityContext,
        req: &RequestPrimitive,
        create_ty: Option<ResourceType>,
        target: Target,
        now: Timestamp,
        rcn: ResultContent,
    ) -> Result<ResponsePrimitive, CseError> {
        // --- TS-0003 §7.2.1 / TS-0004 §7.3.2.1: originator ----------------------------------
        let ae_create = create_ty == Some(ResourceType::Ae);
        let verified = match self.plaintext_admin(sec, ae_create, req.fr.as_deref()) {
            Some(v) => v,
            None => verify(sec, ae_create, req.fr.as_deref(), self.ids, self.res, tx)?,
        };
        let orig_abs = verified.originator.as_ref().map(|o| o.absolute(self.ids));
        let ctx = Ctx {
            verified: &verified,
            from: req.fr.clone(),
            orig_abs,
            now,
        };
        // --- target (TS-0001 §7.2) -----------------------------------------------------------
        let target = self.resolve(tx, &target, &now)?;
        match req.op {
            Operation::Create => {
                let ty = create_ty.ok_or_else(|| CseError::internal("no type"))?;
                self.create(tx, sec, &ctx, &target, ty, req.pc.as_ref(), rcn)
            }
            Operation::Retrieve => self.retrieve(tx, &ctx, &target, rcn),
            Operation::Update => self.update(tx, &ctx, target, req.pc.as_ref(), rcn),
            Operation::Delete => self.delete(tx, &ctx, &target, rcn),
            Operation::Notify => self.notify(tx, &ctx, &target),
        }
    }

    /// NOTIFY (TS-0004 §7.3.3.9): to an `<AE>`, the Hosting CSE re-targets the notification to
    /// the AE's `pointOfAccess` (§7.3.3.9.1), after Recv-6.3 with the NOTIFY privilege. An AE
    /// without a `poa`, or with `requestReachability` FALSE (TS-0001 §9.6.5: it cannot receive
    /// requests), is TARGET_NOT_REACHABLE. This engine does not re-target (no outgoing
    /// requests): a reachable AE is TARGET_NOT_REACHABLE too, saying so in `dbg` (module docs).
    /// A `<remoteCSE>` (its registree CSE) likewise; other targets host no notification
    /// receiver here: OPERATION_NOT_ALLOWED.
    fn notify(
        &self,
        tx: &mut dyn StoreTx,
        ctx: &Ctx<'_>,
        target: &Resource,
    ) -> Result<ResponsePrimitive, CseError> {
        let (rr, poa) = match &target.attrs {
            Attrs::Ae { rr, poa, .. } | Attrs::RemoteCse { rr, poa, .. } => (*rr, poa.clone()),
            _ => {
                return Err(CseError::new(
                    Rsc::OperationNotAllowed,
                    "only an <AE> or <remoteCSE> receives notifications here",
                ))
            }
        };
        self.authorize(tx, ctx, target, Operation::Notify, None)?;
        let poa = poa.unwrap_or_default();
        let why = if poa.is_empty() {
            "the target has no pointOfAccess (TS-0004 §7.3.3.9.1)"
        } else if !rr {
            "the target is not request-reachable (requestReachability FALSE)"
        } else {
            "this CSE does not re-target notifications to a pointOfAccess"
        };
        Err(CseError::new(Rsc::TargetNotReachable, why))
    }

    /// The administrator outside any association, where the configuration accepts it there
    /// (module docs): verified as the administrator, `rq_authn` TRUE.
    fn plaintext_admin(
        &self,
        sec: &SecurityContext,
        ae_create: bool,
        from: Option<&str>,
    ) -> Option<Verified> {
        let (admin, abs, plaintext) = self.admin?;
        if !*plaintext || ae_create || !matches!(sec, SecurityContext::None) {
            return None;
        }
        let from = parse_originator(from?)?;
        (from.absolute(self.ids) == *abs).then(|| Verified {
            originator: Some(admin.clone()),
            rq_authn: true,
            ae_plan: None,
            bind_credential: None,
        })
    }

    fn resolve(
        &self,
        tx: &mut dyn StoreTx,
        target: &Target,
        now: &Timestamp,
    ) -> Result<Resource, CseError> {
        let found = match target {
            Target::CseBase => tx.get(self.cb_ri).map_err(db)?,
            Target::Unstructured(ri) => tx.get(ri).map_err(db)?,
            Target::UnstructuredVirtual(ri, latest) => match tx.get(ri).map_err(db)? {
                Some(p) if p.ty == ResourceType::Container && !expired(&p, now) => tx
                    .edge_child(&p.ri, ResourceType::ContentInstance, *latest)
                    .map_err(db)?,
                _ => None,
            },
            Target::Structured(segs) => {
                let (last, parents) = segs
                    .split_last()
                    .ok_or_else(|| CseError::bad_request("empty path"))?;
                let mut parent_path = self.addr.cb_rn.clone();
                for p in parents {
                    parent_path.push('/');
                    parent_path.push_str(p);
                }
                if last == "la" || last == "ol" {
                    // Virtual resources <latest>/<oldest> of a <container> (TS-0001 §9.6.27/28).
                    match tx.get_by_path(&parent_path).map_err(db)? {
                        Some(p) if p.ty == ResourceType::Container && !expired(&p, now) => tx
                            .edge_child(&p.ri, ResourceType::ContentInstance, last == "la")
                            .map_err(db)?,
                        _ => tx
                            .get_by_path(&format!("{parent_path}/{last}"))
                            .map_err(db)?,
                    }
                } else {
                    tx.get_by_path(&format!("{parent_path}/{last}"))
                        .map_err(db)?
                }
            }
        };
        match found {
            Some(r) if !expired(&r, now) => Ok(r),
            _ => Err(CseError::not_found("no such resource")),
        }
    }

    /// Who holds the default privileges on a resource whose `acpi` is NULL (module docs).
    fn default_owner(&self, r: &Resource) -> Option<String> {
        match &r.attrs {
            Attrs::Ae { aei, .. } => aei
                .parse()
                .ok()
                .map(|a: m2msec_core::ids::AeId| self.ids.absolute_ae(&a)),
            Attrs::RemoteCse { csi, .. } => {
                csi.parse().ok().map(|c: CseId| self.ids.absolute_cse(&c))
            }
            Attrs::CseBase { .. } => None,
            _ => r.creator.clone(),
        }
    }

    /// Recv-6.3 (TS-0004 §7.3.3.15; TS-0001 §10.2.3.1): ORIGINATOR_HAS_NO_PRIVILEGE unless permitted.
    fn authorize(
        &self,
        tx: &mut dyn StoreTx,
        ctx: &Ctx<'_>,
        target: &Resource,
        op: Operation,
        create_ty: Option<ResourceType>,
    ) -> Result<(), CseError> {
        let deny = || CseError::new(Rsc::OriginatorHasNoPrivilege, "access denied");
        let Some(areq) = self.access_request(ctx, target, op, create_ty) else {
            return Err(deny());
        };
        if self.registree_cse_reads_cse_base(tx, ctx, target, op)? {
            return Ok(());
        }
        if let Attrs::Acp { pvs, .. } = &target.attrs {
            return if acp::permits(pvs, &areq) {
                Ok(())
            } else {
                Err(deny())
            };
        }
        let source = if target.ty == ResourceType::ContentInstance {
            let pi = target.pi.as_deref().unwrap_or_default();
            tx.get(pi)
                .map_err(db)?
                .ok_or_else(|| CseError::internal("contentInstance without parent"))?
        } else {
            target.clone()
        };
        if self.policies_permit(tx, ctx, &source, &areq, false)? {
            Ok(())
        } else {
            Err(deny())
        }
    }

    /// A registree CSE, itself (`rq_authn` TRUE), retrieving this CSE's `<CSEBase>` (module
    /// docs, "Forwarding": the registration's RETRIEVE of TS-0004 §7.4.4.2.1).
    fn registree_cse_reads_cse_base(
        &self,
        tx: &mut dyn StoreTx,
        ctx: &Ctx<'_>,
        target: &Resource,
        op: Operation,
    ) -> Result<bool, CseError> {
        if op != Operation::Retrieve || target.ty != ResourceType::CseBase {
            return Ok(false);
        }
        let Some(Originator::Cse(c)) = &ctx.verified.originator else {
            return Ok(false);
        };
        if !ctx.verified.rq_authn {
            return Ok(false);
        }
        let abs = self.ids.absolute_cse(c);
        Ok(tx
            .registree_cses()
            .map_err(db)?
            .iter()
            .filter_map(|s| s.parse::<CseId>().ok())
            .any(|r| self.ids.absolute_cse(&r) == abs))
    }

    /// The access request of `ctx` for `op` on `target`; None without an originator.
    fn access_request<'c>(
        &'c self,
        ctx: &'c Ctx<'_>,
        target: &Resource,
        op: Operation,
        create_ty: Option<ResourceType>,
    ) -> Option<AccessRequest<'c>> {
        Some(AccessRequest {
            originator: ctx.orig_abs.as_deref()?,
            op,
            rq_authn: ctx.verified.rq_authn,
            target_ty: target.ty.as_u64(),
            create_ty: create_ty.map(ResourceType::as_u64),
            sp: self.ids.sp.as_str(),
            cse_stem: &self.ids.cse_stem,
        })
    }

    /// Whether the policies `source.acpi` names permit `areq`: their `pv` (`self_privileges`
    /// false) or their `pvs` (true, for changes of `acpi` itself); with `acpi` NULL, the default
    /// privileges: the creator, authenticated (module docs).
    fn policies_permit(
        &self,
        tx: &mut dyn StoreTx,
        ctx: &Ctx<'_>,
        source: &Resource,
        areq: &AccessRequest<'_>,
        self_privileges: bool,
    ) -> Result<bool, CseError> {
        match source.acpi.as_deref() {
            Some(list) if !list.is_empty() => {
                for id in list {
                    let Ok(t) = parse_to(id, self.addr) else {
                        continue;
                    };
                    let policy = match &t {
                        Target::CseBase | Target::UnstructuredVirtual(..) => None,
                        Target::Unstructured(ri) => tx.get(ri).map_err(db)?,
                        Target::Structured(segs) => {
                            let path = format!("{}/{}", self.addr.cb_rn, segs.join("/"));
                            tx.get_by_path(&path).map_err(db)?
                        }
                    };
                    if let Some(Resource {
                        attrs: Attrs::Acp { pv, pvs },
                        ..
                    }) = policy
                    {
                        let set = if self_privileges { &pvs } else { &pv };
                        if acp::permits(set, areq) {
                            return Ok(true);
                        }
                    }
                }
                Ok(false)
            }
            _ => Ok(ctx.verified.rq_authn
                && self.default_owner(source).as_deref() == Some(areq.originator)),
        }
    }

    /// An UPDATE that changes `acpi` (module docs, "Who may change `acpi`").
    fn authorize_acpi_change(
        &self,
        tx: &mut dyn StoreTx,
        ctx: &Ctx<'_>,
        target: &Resource,
    ) -> Result<(), CseError> {
        let deny = || {
            CseError::new(
                Rsc::OriginatorHasNoPrivilege,
                "changing acpi needs UPDATE in the selfPrivileges of the current policies",
            )
        };
        let Some(areq) = self.access_request(ctx, target, Operation::Update, None) else {
            return Err(deny());
        };
        if self.policies_permit(tx, ctx, target, &areq, true)? {
            Ok(())
        } else {
            Err(deny())
        }
    }

    /// The per-registree quota after a CREATE of `r` (module docs).
    fn check_quota(&self, tx: &mut dyn StoreTx, r: &Resource) -> Result<(), CseError> {
        let Some(top) = top_of(&r.path) else {
            return Ok(());
        };
        if self.limits.registree_max_resources.is_none()
            && self.limits.registree_max_bytes.is_none()
        {
            return Ok(());
        }
        let (n, bytes) = tx.usage(top).map_err(db)?;
        if self.limits.registree_max_resources.is_some_and(|m| n > m)
            || self.limits.registree_max_bytes.is_some_and(|m| bytes > m)
        {
            return Err(CseError::new(
                Rsc::NotAcceptable,
                "the registree's storage quota is exhausted",
            ));
        }
        Ok(())
    }

    /// The expirationTime to store for a requested one (TS-0001 §10.1.2 c): none requested →
    /// the maximum allowed; beyond the maximum → the maximum (module docs, "Expiration").
    fn expiration(
        &self,
        requested: Option<Timestamp>,
        now: &Timestamp,
    ) -> Result<Option<Timestamp>, CseError> {
        let Some(max_secs) = self.limits.max_expiration_secs else {
            return Ok(requested);
        };
        let max_unix = now
            .to_unix()
            .saturating_add(i64::try_from(max_secs).unwrap_or(i64::MAX));
        let max = Timestamp::from_unix(max_unix)
            .map_err(|_| CseError::internal("max_expiration_secs is out of the timestamp range"))?;
        Ok(Some(match requested {
            Some(t) if t.to_unix_micros() <= max.to_unix_micros() => t,
            _ => max,
        }))
    }

    fn new_ri(&self, ty: ResourceType) -> Result<String, CseError> {
        Ok(format!("{}{}", ty.ri_prefix(), random_hex(8)?))
    }

    fn check_acpi_refs(
        &self,
        tx: &mut dyn StoreTx,
        acpi: &Option<Vec<String>>,
    ) -> Result<(), CseError> {
        for id in acpi.iter().flatten() {
            let t = parse_to(id, self.addr).map_err(|_| {
                CseError::bad_request(format!("acpi {id:?} is not a local resource"))
            })?;
            let found = match &t {
                Target::CseBase | Target::UnstructuredVirtual(..) => None,
                Target::Unstructured(ri) => tx.get(ri).map_err(db)?,
                Target::Structured(segs) => tx
                    .get_by_path(&format!("{}/{}", self.addr.cb_rn, segs.join("/")))
                    .map_err(db)?,
            };
            if !matches!(
                found,
                Some(Resource {
                    ty: ResourceType::AccessControlPolicy,
                    ..
                })
            ) {
                return Err(CseError::bad_request(format!(
                    "acpi {id:?} does not name an <accessControlPolicy>"
                )));
            }
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn create(
        &self,
        tx: &mut dyn StoreTx,
        sec: &SecurityContext,
        ctx: &Ctx<'_>,
        parent: &Resource,
        ty: ResourceType,
        pc: Option<&Value>,
        rcn: ResultContent,
    ) -> Result<ResponsePrimitive, CseError> {
        let registration = matches!(ty, ResourceType::Ae | ResourceType::RemoteCse);
        if !registration {
            self.authorize(tx, ctx, parent, Operation::Create, Some(ty))?;
        }
        if !parent.ty.allows_child(ty) {
            return Err(CseError::new(
                Rsc::InvalidChildResourceType,
                format!(
                    "resource type {} cannot be created under {}",
                    ty.as_u64(),
                    parent.ty.as_u64()
                ),
            ));
        }
        let a = validate_request_attrs(ty, Operation::Create, pc)?;
        let rn = a.string("rn")?;
        if let Some(rn) = &rn {
            validate_resource_name(rn)?;
            if parent.ty == ResourceType::Container && (rn == "la" || rn == "ol") {
                return Err(CseError::bad_request("'la' and 'ol' are reserved names"));
            }
        }
        let et = self.expiration(a.expiration(&ctx.now)?, &ctx.now)?;
        let lbl = a.labels()?;
        let acpi = if ty.has_acpi() {
            let v = a.acpi()?;
            self.check_acpi_refs(tx, &v)?;
            v
        } else {
            None
        };
        let mut creator = ctx.orig_abs.clone();
        let mut bind = None;
        let (ri, attrs) = match ty {
            ResourceType::Ae => {
                let api = a.string("api")?.unwrap_or_default();
                validate_app_id(&api)?;
                let rr = a
                    .boolean("rr")?
                    .ok_or_else(|| CseError::bad_request("rr missing"))?;
                let stem = match &ctx.verified.ae_plan {
                    Some(AeIdPlan::Use(s)) => s.clone(),
                    Some(AeIdPlan::Generate(kind)) => {
                        let p = match kind {
                            AeIdStemKind::C => "C",
                            AeIdStemKind::S => "S",
                        };
                        format!("{p}{}", random_hex(8)?)
                            .parse::<AeIdStem>()
                            .map_err(|e| CseError::internal(e.to_string()))?
                    }
                    None => return Err(CseError::internal("AE registration without a plan")),
                };
                if stem.kind() == AeIdStemKind::S && self.cse_type != CseType::In {
                    return Err(CseError::new(
                        Rsc::NotImplemented,
                        "S-type AE-IDs are assigned by the IN-CSE; this MN-CSE does not relay them",
                    ));
                }
                if tx.ae_exists(stem.as_str()).map_err(db)? {
                    return Err(CseError::new(
                        Rsc::OriginatorHasAlreadyRegistered,
                        "an <AE> with this AE-ID exists",
                    ));
                }
                let ae_id = m2msec_core::ids::AeId::CseRelative { stem: stem.clone() };
                if let Some((_, admin_abs, _)) = self.admin {
                    // The administrator's AE-ID is reserved for an association bound to it by
                    // configuration or certificate: registering it elsewhere would grant the
                    // administrator's privileges to whoever registers first.
                    let bound_to_it = match sec {
                        SecurityContext::Association(a) => match &a.bound {
                            Some(crate::verify::BoundIdentity::Ae(list)) => {
                                list.iter().any(|b| self.ids.absolute_ae(b) == *admin_abs)
                            }
                            _ => false,
                        },
                        SecurityContext::None => false,
                    };
                    if self.ids.absolute_ae(&ae_id) == *admin_abs && !bound_to_it {
                        return Err(CseError::new(
                            Rsc::OriginatorNotAuthenticated,
                            "this AE-ID is the administrator's: only an association bound to it may register it",
                        ));
                    }
                }
                creator = Some(self.ids.absolute_ae(&ae_id));
                bind = ctx
                    .verified
                    .bind_credential
                    .as_ref()
                    .map(|c| (c.to_string(), stem.to_string()));
                (
                    stem.to_string(),
                    Attrs::Ae {
                        api,
                        apn: a.string("apn")?,
                        aei: stem.to_string(),
                        rr,
                        poa: a.strings("poa")?,
                        srv: a.strings("srv")?,
                        or: a.string("or")?,
                        csz: a.serializations()?,
                    },
                )
            }
            ResourceType::RemoteCse => {
                // TS-0004 §7.4.4.2.1: Recv-6.3 is replaced by credential and From checks.
                let bound_cse = match sec {
                    SecurityContext::Association(assoc) => match &assoc.bound {
                        Some(crate::verify::BoundIdentity::Cse(c)) => Some(c.clone()),
                        _ => None,
                    },
                    SecurityContext::None => None,
                };
                let Some(bound_cse) = bound_cse else {
                    return Err(CseError::new(
                        Rsc::SecurityAssociationRequired,
                        "CSE registration requires an association bound to a CSE-ID",
                    ));
                };
                let from_cse = match &ctx.verified.originator {
                    Some(Originator::Cse(c)) => c.clone(),
                    _ => {
                        return Err(CseError::new(
                            Rsc::OperationNotAllowed,
                            "an AE cannot create a <remoteCSE>",
                        ))
                    }
                };
                let bound_abs = self.ids.absolute_cse(&bound_cse);
                if self.registrar == Some(bound_cse.stem()) {
                    return Err(CseError::new(
                        Rsc::OperationNotAllowed,
                        "this CSE is registered with that CSE: registering each with the other is a loop (TS-0001 §6.4)",
                    ));
                }
                if self.ids.absolute_cse(&from_cse) != bound_abs {
                    return Err(CseError::new(
                        Rsc::OriginatorNotAuthenticated,
                        "From differs from the CSE-ID bound to the security association",
                    ));
                }
                let csi = a.string("csi")?.unwrap_or_default();
                let csi_id: CseId = csi
                    .parse()
                    .map_err(|e| CseError::bad_request(format!("csi: {e}")))?;
                if self.ids.absolute_cse(&csi_id) != bound_abs {
                    return Err(CseError::bad_request(
                        "csi must equal the registree's CSE-ID",
                    ));
                }
                if tx
                    .registree_cses()
                    .map_err(db)?
                    .iter()
                    .filter_map(|s| s.parse::<CseId>().ok())
                    .any(|c| self.ids.absolute_cse(&c) == bound_abs)
                {
                    return Err(CseError::new(
                        Rsc::OriginatorHasAlreadyRegistered,
                        "a <remoteCSE> with this CSE-ID exists",
                    ));
                }
                creator = Some(bound_abs);
                let cst = match a.uint("cst")? {
                    None => None,
                    Some(v @ 1..=3) => u8::try_from(v).ok(),
                    Some(_) => return Err(CseError::bad_request("cst must be 1, 2 or 3")),
                };
                (
                    csi_id.stem().to_string(),
                    Attrs::RemoteCse {
                        cst,
                        csi: format!("/{}", csi_id.stem()),
                        cb: a.string("cb")?.unwrap_or_default(),
                        rr: a
                            .boolean("rr")?
                            .ok_or_else(|| CseError::bad_request("rr missing"))?,
                        poa: a.strings("poa")?,
                        srv: a.strings("srv")?,
                    },
                )
            }
            ResourceType::Container => (
                self.new_ri(ty)?,
                Attrs::Container {
                    mni: a.uint("mni")?.or(self.limits.container_mni),
                    mbs: a.uint("mbs")?.or(self.limits.container_mbs),
                    cni: 0,
                    cbs: 0,
                    st: 0,
                    or: a.string("or")?,
                },
            ),
            ResourceType::ContentInstance => {
                let con = a
                    .raw("con")
                    .cloned()
                    .ok_or_else(|| CseError::bad_request("con missing"))?;
                let cs = content_size(&con);
                let (mbs, st) = match &parent.attrs {
                    Attrs::Container { mbs, st, .. } => (*mbs, *st),
                    _ => return Err(CseError::internal("contentInstance parent not a container")),
                };
                if mbs.is_some_and(|m| cs > m) {
                    return Err(CseError::new(
                        Rsc::NotAcceptable,
                        "content larger than the container's maxByteSize",
                    ));
                }
                (
                    self.new_ri(ty)?,
                    Attrs::ContentInstance {
                        cnf: a.content_info()?,
                        cs,
                        con,
                        st: st.saturating_add(1),
                        or: a.string("or")?,
                    },
                )
            }
            ResourceType::AccessControlPolicy => {
                let pv = SetOfAcrs::parse("pv", a.raw("pv").unwrap_or(&Value::Null))?;
                let pvs = SetOfAcrs::parse("pvs", a.raw("pvs").unwrap_or(&Value::Null))?;
                if pvs.acr.is_empty() {
                    return Err(CseError::bad_request(
                        "selfPrivileges needs at least one rule (TS-0004 §7.4.2)",
                    ));
                }
                (self.new_ri(ty)?, Attrs::Acp { pv, pvs })
            }
            ResourceType::CseBase => {
                return Err(CseError::new(
                    Rsc::InvalidChildResourceType,
                    "a <CSEBase> cannot be created",
                ))
            }
        };
        let rn = rn.unwrap_or_else(|| ri.clone());
        let r = Resource {
            ty,
            ri: ri.clone(),
            rn: rn.clone(),
            pi: Some(parent.ri.clone()),
            path: format!("{}/{}", parent.path, rn),
            ct: ctx.now,
            lt: ctx.now,
            et,
            lbl,
            acpi,
            creator,
            cr: if a.has("cr") { ctx.from.clone() } else { None },
            attrs,
        };
        tx.insert(&r).map_err(db)?;
        if let Some((cred, aei)) = bind {
            if tx.binding(&cred).map_err(db)?.is_none() {
                tx.bind(&cred, &aei).map_err(db)?;
            }
        }
        if ty == ResourceType::ContentInstance {
            self.after_cin_insert(tx, parent, &r)?;
        }
        if !registration {
            self.check_quota(tx, &r)?;
        }
        let pc = match rcn {
            ResultContent::Nothing => None,
            ResultContent::HierarchicalAddress => {
                let mut m = Map::new();
                m.insert("m2m:uri".into(), Value::from(r.path.clone()));
                Some(Value::Object(m))
            }
            ResultContent::HierarchicalAddressAndAttributes => {
                let mut inner = Map::new();
                inner.insert(ty.root_name().into(), Value::Object(r.attributes()));
                inner.insert("uri".into(), Value::from(r.path.clone()));
                let mut m = Map::new();
                m.insert("m2m:rce".into(), Value::Object(inner));
                Some(Value::Object(m))
            }
            _ => Some(r.to_m2m()),
        };
        let mut resp = ok_resp(Rsc::Created, pc);
        if ty == ResourceType::Ae {
            // The response goes to the newly registered AE (TS-0004 §7.4.5.2.1).
            resp.to = Some(ri);
        }
        Ok(resp)
    }

    /// Updates the parent `<container>` after a new `<contentInstance>`: st, cni, cbs, then
    /// removes the oldest instances while mni/mbs are exceeded (TS-0004 §7.4.7.2.1).
    fn after_cin_insert(
        &self,
        tx: &mut dyn StoreTx,
        parent: &Resource,
        cin: &Resource,
    ) -> Result<(), CseError> {
        let mut p = tx
            .get(&parent.ri)
            .map_err(db)?
            .ok_or_else(|| CseError::internal("container vanished"))?;
        let cs = match &cin.attrs {
            Attrs::ContentInstance { cs, .. } => *cs,
            _ => 0,
        };
        if let Attrs::Container { cni, cbs, st, .. } = &mut p.attrs {
            *cni = cni.saturating_add(1);
            *cbs = cbs.saturating_add(cs);
            *st = st.saturating_add(1);
        }
        self.enforce_limits(tx, &mut p)?;
        tx.update(&p).map_err(db)
    }

    fn enforce_limits(&self, tx: &mut dyn StoreTx, p: &mut Resource) -> Result<(), CseError> {
        loop {
            let (over, ri) = match &p.attrs {
                Attrs::Container {
                    mni, mbs, cni, cbs, ..
                } => (
                    mni.is_some_and(|m| *cni > m) || mbs.is_some_and(|m| *cbs > m),
                    p.ri.clone(),
                ),
                _ => return Ok(()),
            };
            if !over {
                return Ok(());
            }
            let Some(oldest) = tx
                .edge_child(&ri, ResourceType::ContentInstance, false)
                .map_err(db)?
            else {
                return Ok(());
            };
            let cs = match &oldest.attrs {
                Attrs::ContentInstance { cs, .. } => *cs,
                _ => 0,
            };
            tx.delete_subtree(&oldest).map_err(db)?;
            if let Attrs::Container { cni, cbs, .. } = &mut p.attrs {
                *cni = cni.saturating_sub(1);
                *cbs = cbs.saturating_sub(cs);
            }
        }
    }

    fn visible_children(
        &self,
        tx: &mut dyn StoreTx,
        ctx: &Ctx<'_>,
        r: &Resource,
    ) -> Result<Vec<Resource>, CseError> {
        let kids = tx.children(&r.ri, None, MAX_CHILDREN_LISTED).map_err(db)?;
        let mut out = Vec::with_capacity(kids.len());
        for k in kids {
            if expired(&k, &ctx.now) {
                continue;
            }
            if self
                .authorize(tx, ctx, &k, Operation::Retrieve, None)
                .is_ok()
            {
                out.push(k);
            }
        }
        Ok(out)
    }

    fn retrieve(
        &self,
        tx: &mut dyn StoreTx,
        ctx: &Ctx<'_>,
        r: &Resource,
        rcn: ResultContent,
    ) -> Result<ResponsePrimitive, CseError> {
        self.authorize(tx, ctx, r, Operation::Retrieve, None)?;
        let pc = self.representation(tx, ctx, r, rcn)?;
        Ok(ok_resp(Rsc::Ok, pc))
    }

    fn representation(
        &self,
        tx: &mut dyn StoreTx,
        ctx: &Ctx<'_>,
        r: &Resource,
        rcn: ResultContent,
    ) -> Result<Option<Value>, CseError> {
        let wrap = |inner: Map<String, Value>| {
            let mut m = Map::new();
            m.insert(r.ty.root_name().into(), Value::Object(inner));
            Some(Value::Object(m))
        };
        Ok(match rcn {
            ResultContent::Nothing => None,
            ResultContent::Attributes => Some(r.to_m2m()),
            ResultContent::AttributesAndChildResources | ResultContent::ChildResources => {
                let mut inner = if rcn == ResultContent::ChildResources {
                    Map::new()
                } else {
                    r.attributes()
                };
                for k in self.visible_children(tx, ctx, r)? {
                    let e = inner
                        .entry(k.ty.root_name().to_string())
                        .or_insert_with(|| Value::Array(Vec::new()));
                    if let Value::Array(a) = e {
                        a.push(Value::Object(k.attributes()));
                    }
                }
                wrap(inner)
            }
            ResultContent::AttributesAndChildResourceReferences => {
                let mut inner = r.attributes();
                let refs: Vec<Value> = self
                    .visible_children(tx, ctx, r)?
                    .iter()
                    .map(child_ref)
                    .collect();
                if !refs.is_empty() {
                    inner.insert("ch".into(), Value::Array(refs));
                }
                wrap(inner)
            }
            ResultContent::ChildResourceReferences => {
                let refs: Vec<Value> = self
                    .visible_children(tx, ctx, r)?
                    .iter()
                    .map(child_ref)
                    .collect();
                let mut rrl = Map::new();
                rrl.insert("rrf".into(), Value::Array(refs));
                let mut m = Map::new();
                m.insert("m2m:rrl".into(), Value::Object(rrl));
                Some(Value::Object(m))
            }
            _ => {
                return Err(CseError::new(
                    Rsc::NotImplemented,
                    "this result content is not implemented",
                ))
            }
        })
    }

    fn update(
        &self,
        tx: &mut dyn StoreTx,
        ctx: &Ctx<'_>,
        mut r: Resource,
        pc: Option<&Value>,
        rcn: ResultContent,
    ) -> Result<ResponsePrimitive, CseError> {
        if r.ty == ResourceType::ContentInstance {
            return Err(CseError::new(
                Rsc::OperationNotAllowed,
                "this resource cannot be updated",
            ));
        }
        self.authorize(tx, ctx, &r, Operation::Update, None)?;
        let a = validate_request_attrs(r.ty, Operation::Update, pc)?;
        if a.has("acpi") {
            self.authorize_acpi_change(tx, ctx, &r)?;
        }
        apply_update(self, tx, &mut r, &a, &ctx.now)?;
        if let Attrs::Container { st, .. } = &mut r.attrs {
            *st = st.saturating_add(1);
        }
        r.lt = ctx.now;
        if r.ty == ResourceType::Container {
            self.enforce_limits(tx, &mut r)?;
        }
        tx.update(&r).map_err(db)?;
        let pc = match rcn {
            ResultContent::Nothing => None,
            ResultContent::ModifiedAttributes => {
                let all = r.attributes();
                let mut m = Map::new();
                for k in a.0.keys() {
                    m.insert(k.clone(), all.get(k).cloned().unwrap_or(Value::Null));
                }
                let mut outer = Map::new();
                outer.insert(r.ty.root_name().into(), Value::Object(m));
                Some(Value::Object(outer))
            }
            _ => Some(r.to_m2m()),
        };
        Ok(ok_resp(Rsc::Updated, pc))
    }

    fn delete(
        &self,
        tx: &mut dyn StoreTx,
        ctx: &Ctx<'_>,
        r: &Resource,
        rcn: ResultContent,
    ) -> Result<ResponsePrimitive, CseError> {
        if r.ty == ResourceType::CseBase {
            return Err(CseError::new(
                Rsc::OperationNotAllowed,
                "<CSEBase> cannot be deleted",
            ));
        }
        self.authorize(tx, ctx, r, Operation::Delete, None)?;
        let pc = match rcn {
            ResultContent::Nothing => None,
            ResultContent::Attributes => Some(r.to_m2m()),
            _ => self.representation(tx, ctx, r, rcn)?,
        };
        if let (ResourceType::ContentInstance, Some(pi)) = (r.ty, r.pi.as_deref()) {
            if let Some(mut p) = tx.get(pi).map_err(db)? {
                if let (Attrs::Container { cni, cbs, .. }, Attrs::ContentInstance { cs, .. }) =
                    (&mut p.attrs, &r.attrs)
                {
                    *cni = cni.saturating_sub(1);
                    *cbs = cbs.saturating_sub(*cs);
                }
                tx.update(&p).map_err(db)?;
            }
        }
        tx.delete_subtree(r).map_err(db)?;
        Ok(ok_resp(Rsc::Deleted, pc))
    }
}

fn apply_update(
    eng: &Eng<'_>,
    tx: &mut dyn StoreTx,
    r: &mut Resource,
    a: &RequestAttrs,
    now: &Timestamp,
) -> Result<(), CseError> {
    if a.has("et") {
        // expirationTime has multiplicity 1 (TS-0004): it can be changed, not deleted.
        if a.raw("et").is_some_and(Value::is_null) {
            return Err(CseError::bad_request("et cannot be deleted"));
        }
        r.et = eng.expiration(a.expiration(now)?, now)?;
    }
    if a.has("lbl") {
        r.lbl = a.labels()?;
    }
    if a.has("acpi") {
        let v = a.acpi()?;
        eng.check_acpi_refs(tx, &v)?;
        r.acpi = v;
    }
    match &mut r.attrs {
        Attrs::Ae {
            apn,
            rr,
            poa,
            srv,
            or,
            csz,
            ..
        } => {
            if a.has("apn") {
                *apn = a.string("apn")?;
            }
            if let Some(v) = a.boolean("rr")? {
                *rr = v;
            }
            if a.has("poa") {
                *poa = a.strings("poa")?;
            }
            if a.has("srv") {
                *srv = a.strings("srv")?;
            }
            if a.has("or") {
                *or = a.string("or")?;
            }
            if a.has("csz") {
                *csz = a.serializations()?;
            }
        }
        Attrs::RemoteCse { rr, poa, srv, .. } => {
            if let Some(v) = a.boolean("rr")? {
                *rr = v;
            }
            if a.has("poa") {
                *poa = a.strings("poa")?;
            }
            if a.has("srv") {
                *srv = a.strings("srv")?;
            }
        }
        Attrs::Container { mni, mbs, or, .. } => {
            if a.has("mni") {
                *mni = a.uint("mni")?;
            }
            if a.has("mbs") {
                *mbs = a.uint("mbs")?;
            }
            if a.has("or") {
                *or = a.string("or")?;
            }
        }
        Attrs::Acp { pv, pvs } => {
            if let Some(v) = a.raw("pv") {
                *pv = SetOfAcrs::parse("pv", v)?;
            }
            if let Some(v) = a.raw("pvs") {
                let set = SetOfAcrs::parse("pvs", v)?;
                if set.acr.is_empty() {
                    return Err(CseError::bad_request(
                        "selfPrivileges needs at least one rule",
                    ));
                }
                *pvs = set;
            }
        }
        // <CSEBase>: only acpi and lbl are writable (TS-0001 §9.6.3), handled above.
        Attrs::CseBase { .. } => {}
        Attrs::ContentInstance { .. } => {
            return Err(CseError::new(Rsc::OperationNotAllowed, "not updatable"))
        }
    }
    Ok(())
}
