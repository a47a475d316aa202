//! Originator verification at the Registrar CSE (TS-0003 §7.2.1, TS-0004 §7.3.2.1; BRIEF §3(d))
//! and the `rq_authn` flag of TS-0003 §7.1.2 that feeds access control.
//!
//! The engine does not see sockets: the binding layer describes the channel a request came on as
//! a [`SecurityContext`]: no association (a plaintext local tool), or an [`Association`] with its
//! credential kind, its Credential-ID (TS-0003 §10.4) and the identity bound to it by configuration
//! or by a certificate, if any (TS-0003 §8.2.2; BRIEF §3(c)). Identities learned at `<AE>` CREATE
//! (TS-0003 §8.2.1) are kept in the store as Credential-ID → AE-ID bindings.
//!
//! A thin layer outside this crate converts the channel's authenticated peer (`m2msec_tls`'s
//! `Peer`: credential kind, PSK identity or certificate, bound identity) into a
//! [`SecurityContext`]; this crate does not depend on the TLS crate.
//!
//! Rules, in the order applied ([`verify`]):
//! - **Inside an SA whose registree is an AE** (bound AE-ID(s), configured, from a certificate or
//!   learned at registration): `From` must be one of those AE-IDs, in any of its forms, else
//!   ORIGINATOR_NOT_AUTHENTICATED (4106). A matching `From` written in a form other than the
//!   AE-ID-Stem is BAD_REQUEST (TS-0004 §7.3.2.1, "any format other than AE-ID-Stem").
//! - **Inside an SA whose registree is a CSE X**: 4106 when `From` is the CSE-ID of another
//!   registree CSE; a CSE-relative C-type AE-ID-Stem; or an SP-relative/absolute C-type AE-ID whose
//!   CSE-ID part is another registree CSE (the three cases of TS-0004 §7.3.2.1). *Project
//!   addition:* also 4106 when `From` claims this CSE's own CSE-ID or a C-type AE-ID registered
//!   here: a registree CSE never legitimately forwards on behalf of the receiver or of the
//!   receiver's own registree AEs (they reach it directly), so accepting such a `From` would let a
//!   registree CSE impersonate them.
//! - **Inside an SA whose registree is still unknown** (bound only to its Credential-ID, e.g.
//!   `12-<KpsaID>`, TS-0003 §8.2.2.1): only a CREATE `<AE>` is accepted, which learns the AE-ID and
//!   binds it. Anything else is 4106: TS-0003 §7.2.1 step 2 compares `From` with the ID associated
//!   with the SA, and an M2M ID never equals a Credential-ID.
//! - *Project addition:* a CREATE `<AE>` that requests a stem another credential has learned
//!   (even if that `<AE>` was deleted) is 4106, so a released AE-ID cannot be re-registered by a
//!   different credential while the old credential's associations remain bound to it.
//! - *Project addition (reserved identities):* a CREATE `<AE>` that requests a stem
//!   [`Reservations`] reserves for another credential (a configured IdA of another `[[psk]]`,
//!   `[[raw_key]]` or stored credential; the Enrolee-ID the MEF provisioned for a device of this
//!   CSE) is 4106 (TS-0003 §7.2.1, §8.2.1: that AE-ID is associated with another credential), and
//!   so is one whose reservation cannot be confirmed (the MEF did not answer): fail closed.
//! - **Inside an SA whose registree is a CSE X**, *project addition:* an S-type AE-ID of an AE
//!   registered here, bound to a credential here or reserved here is 4106 too, for the same
//!   reason as the C-type rule above.
//! - **Outside any SA**: a CSE-ID in `From` → SECURITY_ASSOCIATION_REQUIRED (4107); an AE-ID that
//!   is not registered here, in any request other than CREATE `<AE>` → 4106; a registered one
//!   written in a form other than its AE-ID-Stem → BAD_REQUEST (TS-0004 §7.3.2.1).
//!   *Project addition:* an AE-ID bound to a credential (learned at registration, configured, or
//!   reserved) is 4106 outside its association, in any request including CREATE `<AE>`: AE-IDs
//!   are not secret (they travel in responses and `Content-Location`), so knowing one must not
//!   be enough to act as that AE. Requests outside any SA (the loopback plaintext listener, for
//!   the operator's local tools) can only use AE-IDs that no credential owns.
//!
//! `rq_authn` (TS-0003 §7.1.2) is TRUE only inside an SA whose `From` matched the SA's own bound
//! identity (the registree AE itself, or the registree CSE itself). Requests a registree CSE
//! forwards for others, and every request outside an SA, have `rq_authn` FALSE (an entity
//! registered elsewhere is authenticated only with ESPrim, which this slice does not implement).

use m2msec_core::ids::{AeId, AeIdStem, AeIdStemKind, CredentialId, CseId, SpId};

use crate::rsc::{CseError, Rsc};
use crate::store::{StoreError, StoreTx};
pub use m2msec_proto::security::{Association, BoundIdentity, CredentialKind, SecurityContext};

/// The hosting CSE's own identifiers (TS-0004 §6.2.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalIds {
    /// M2M-SP-ID.
    pub sp: SpId,
    /// CSE-ID stem (SP-relative CSE-ID without its '/').
    pub cse_stem: String,
}

impl LocalIds {
    /// Absolute form of an AE-ID (TS-0004 §6.2.3): a CSE-relative C-type stem belongs to this
    /// CSE; an S-type stem to this SP.
    pub fn absolute_ae(&self, ae: &AeId) -> String {
        match ae {
            AeId::Absolute { .. } => ae.to_string(),
            AeId::SpRelative { .. } => format!("//{}{}", self.sp, ae),
            AeId::CseRelative { stem } => match stem.kind() {
                AeIdStemKind::C => format!("//{}/{}/{}", self.sp, self.cse_stem, stem),
                AeIdStemKind::S => format!("//{}/{}", self.sp, stem),
            },
        }
    }

    /// Absolute form of a CSE-ID.
    pub fn absolute_cse(&self, cse: &CseId) -> String {
        cse.to_absolute(&self.sp).to_string()
    }

    /// The stem of an AE-ID if it names an AE registered (or registrable) here: a C-type AE-ID of
    /// this CSE or an S-type AE-ID of this SP.
    pub fn local_stem<'a>(&self, ae: &'a AeId) -> Option<&'a AeIdStem> {
        let sp_ok = match ae {
            AeId::Absolute { sp, .. } => *sp == self.sp,
            _ => true,
        };
        let stem = ae.stem();
        let reg_ok = match (stem.kind(), ae.registrar_stem()) {
            (AeIdStemKind::C, Some(r)) => r == self.cse_stem,
            (AeIdStemKind::C, None) => matches!(ae, AeId::CseRelative { .. }),
            (AeIdStemKind::S, _) => true,
        };
        (sp_ok && reg_ok).then_some(stem)
    }
}

/// A parsed `From` (TS-0004 §6.2.3 forms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Originator {
    /// An AE-ID.
    Ae(AeId),
    /// A CSE-ID.
    Cse(CseId),
}

impl Originator {
    /// The absolute form used by access control.
    pub fn absolute(&self, me: &LocalIds) -> String {
        match self {
            Originator::Ae(a) => me.absolute_ae(a),
            Originator::Cse(c) => me.absolute_cse(c),
        }
    }
}

fn db(e: StoreError) -> CseError {
    CseError::internal(format!("store: {e}"))
}

/// Classifies `From` as an AE-ID or a CSE-ID (TS-0004 §6.2.3). `/S…` is both an S-type AE-ID and
/// an SP-relative CSE-ID: it is a CSE-ID only if a registree CSE has that ID. A bare stem is an
/// AE-ID-Stem (a CSE never puts a CSE-relative CSE-ID in `From`; TS-0001 §7.2). `sa_cse` is the
/// CSE-ID the request's association is bound to, if any: it counts as a known CSE-ID too.
pub fn classify(
    from: &str,
    me: &LocalIds,
    sa_cse: Option<&CseId>,
    tx: &mut dyn StoreTx,
) -> Result<Originator, CseError> {
    let ae = from.parse::<AeId>().ok();
    let cse = if from.starts_with('/') {
        from.parse::<CseId>().ok()
    } else {
        None
    };
    match (ae, cse) {
        (Some(a), None) => Ok(Originator::Ae(a)),
        (None, Some(c)) => Ok(Originator::Cse(c)),
        (Some(a), Some(c)) => {
            let abs = me.absolute_cse(&c);
            if sa_cse.is_some_and(|x| me.absolute_cse(x) == abs) {
                return Ok(Originator::Cse(c));
            }
            let is_registree = tx
                .registree_cses()
                .map_err(db)?
                .iter()
                .filter_map(|s| s.parse::<CseId>().ok())
                .any(|r| me.absolute_cse(&r) == abs);
            Ok(if is_registree {
                Originator::Cse(c)
            } else {
                Originator::Ae(a)
            })
        }
        (None, None) => Err(CseError::bad_request(
            "From is neither an AE-ID nor a CSE-ID",
        )),
    }
}

/// Whether an AE-ID is reserved for a credential, as a [`Reservations`] source knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reservation {
    /// No source reserves it.
    Free,
    /// Reserved for the credential with this Credential-ID (TS-0003 §10.4), or for a device the
    /// MEF provisioned (`None`: the CSE does not know that device's Credential-ID yet).
    For(Option<CredentialId>),
    /// A source could not tell (e.g. the MEF did not answer); the caller fails closed.
    Unknown(String),
}

/// The identities that belong to credentials outside the resource store (TS-0003 §8.2.1): IdAs
/// configured for PSK, raw-key and stored credentials, and Enrolee-IDs an M2M Enrolment Function
/// provisioned for devices that will register here. The engine asks it before a requested
/// AE-ID-Stem is granted to an association not bound to that stem, and before an AE-ID is used
/// outside any association. Implementations answer from memory: the engine calls this inside
/// its store transaction.
pub trait Reservations: Send + Sync {
    /// The reservation of `stem` (a CSE-relative AE-ID-Stem of this CSE). `registering` is true
    /// when an association not bound to `stem` (or a request outside any association) asks to
    /// register it: then every source counts, and one that could not answer gives
    /// [`Reservation::Unknown`]; otherwise (using an AE-ID registered here) only what is known
    /// locally counts.
    fn reservation(&self, stem: &AeIdStem, registering: bool) -> Reservation;
}

/// No identities reserved outside the store (an engine with no credential configuration).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoReservations;

impl Reservations for NoReservations {
    fn reservation(&self, _stem: &AeIdStem, _registering: bool) -> Reservation {
        Reservation::Free
    }
}

/// How the AE-ID of a registering AE is chosen (TS-0001 §10.2.2.2 subset; TS-0004 §7.4.5.2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AeIdPlan {
    /// The registrar generates a stem of this kind (`From` absent, empty, `C` or `S`).
    Generate(AeIdStemKind),
    /// This stem, requested by the AE or bound to its association.
    Use(AeIdStem),
}

/// The outcome of verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The originator; `None` only for a CREATE `<AE>` without `From`.
    pub originator: Option<Originator>,
    /// `rq_authn` (TS-0003 §7.1.2).
    pub rq_authn: bool,
    /// For a CREATE `<AE>`: how to choose the AE-ID.
    pub ae_plan: Option<AeIdPlan>,
    /// For a CREATE `<AE>` inside an association: bind its Credential-ID to the new AE-ID
    /// (TS-0003 §8.2.1, "IdA learned at `<AE>` CREATE"; for an association already bound by
    /// configuration or certificate, recorded if the Credential-ID has no binding yet).
    pub bind_credential: Option<CredentialId>,
}

enum Registree {
    Ae(Vec<AeId>),
    Cse(CseId),
    Unknown,
}

fn not_authn(why: &str) -> CseError {
    CseError::new(Rsc::OriginatorNotAuthenticated, why)
}

/// Parses the `From` of a CREATE `<AE>`: absent, empty, `C`, `S`, or an AE-ID-Stem.
fn registration_plan(from: Option<&str>) -> Result<AeIdPlan, CseError> {
    match from {
        None | Some("") | Some("C") => Ok(AeIdPlan::Generate(AeIdStemKind::C)),
        Some("S") => Ok(AeIdPlan::Generate(AeIdStemKind::S)),
        Some(s) => s.parse::<AeIdStem>().map(AeIdPlan::Use).map_err(|_| {
            CseError::bad_request("From of an AE registration must be empty, C, S or an AE-ID-Stem")
        }),
    }
}

/// A registration that names its stem outside a binding to that stem must not take over an AE-ID
/// that belongs to another credential (TS-0003 §8.2.1): one that credential learned (its
/// associations are bound to it, so handing the ID to someone else would let them act as the
/// new owner), or one reserved for it ([`Reservations`]). `own` is the Credential-ID of the
/// requesting association (None outside any association).
fn plan_not_owned_elsewhere(
    plan: AeIdPlan,
    own: Option<&CredentialId>,
    res: &dyn Reservations,
    tx: &mut dyn StoreTx,
) -> Result<AeIdPlan, CseError> {
    if let AeIdPlan::Use(stem) = &plan {
        if tx.ae_id_bound(stem.as_str()).map_err(db)? {
            return Err(not_authn(
                "this AE-ID is bound to another credential's security association",
            ));
        }
        match res.reservation(stem, true) {
            Reservation::Free => {}
            Reservation::For(Some(c)) if Some(&c) == own => {}
            Reservation::For(_) => {
                return Err(not_authn("this AE-ID is reserved for another credential"))
            }
            Reservation::Unknown(why) => {
                return Err(not_authn(&format!(
                    "cannot confirm that this AE-ID is free ({why})"
                )))
            }
        }
    }
    Ok(plan)
}

/// Whether an AE-ID-Stem registered here belongs to a credential: learned at registration, or
/// reserved. Such an AE-ID is usable only inside its own association.
fn owned_by_a_credential(
    stem: &AeIdStem,
    res: &dyn Reservations,
    tx: &mut dyn StoreTx,
) -> Result<bool, CseError> {
    if tx.ae_id_bound(stem.as_str()).map_err(db)? {
        return Ok(true);
    }
    Ok(!matches!(
        res.reservation(stem, false),
        Reservation::Free | Reservation::Unknown(_)
    ))
}

/// Verifies the originator of a request (TS-0003 §7.2.1, TS-0004 §7.3.2.1); see the module docs.
///
/// `ae_create` is true for a CREATE with `ty` = 2. `from` is the request's `From`.
pub fn verify(
    sec: &SecurityContext,
    ae_create: bool,
    from: Option<&str>,
    me: &LocalIds,
    res: &dyn Reservations,
    tx: &mut dyn StoreTx,
) -> Result<Verified, CseError> {
    if from.is_none() && !ae_create {
        return Err(CseError::bad_request("missing From"));
    }
    let assoc = match sec {
        SecurityContext::None => {
            if ae_create {
                // TS-0004 §7.3.2.1: a CSE-ID in From outside any association is
                // SECURITY_ASSOCIATION_REQUIRED, in a CREATE <AE> as in every other request.
                if from.is_some_and(|f| {
                    f.starts_with('/') && f.parse::<CseId>().is_ok() && f.parse::<AeId>().is_err()
                }) {
                    return Err(CseError::new(
                        Rsc::SecurityAssociationRequired,
                        "a CSE-ID in From requires a security association",
                    ));
                }
                return Ok(Verified {
                    originator: None,
                    rq_authn: false,
                    ae_plan: Some(plan_not_owned_elsewhere(
                        registration_plan(from)?,
                        None,
                        res,
                        tx,
                    )?),
                    bind_credential: None,
                });
            }
            let orig = classify(from.unwrap_or_default(), me, None, tx)?;
            return match &orig {
                Originator::Cse(_) => Err(CseError::new(
                    Rsc::SecurityAssociationRequired,
                    "a CSE-ID in From requires a security association",
                )),
                Originator::Ae(a) => {
                    let stem = match me.local_stem(a) {
                        Some(stem) if tx.ae_exists(stem.as_str()).map_err(db)? => stem,
                        _ => return Err(not_authn("From is not an AE registered with this CSE")),
                    };
                    if owned_by_a_credential(stem, res, tx)? {
                        return Err(not_authn(
                            "this AE-ID belongs to a credential: use its security association",
                        ));
                    }
                    if !matches!(a, AeId::CseRelative { .. }) {
                        return Err(CseError::bad_request(
                            "a registree AE must use its AE-ID-Stem in From (TS-0004 §7.3.2.1)",
                        ));
                    }
                    Ok(Verified {
                        originator: Some(orig),
                        rq_authn: false,
                        ae_plan: None,
                        bind_credential: None,
                    })
                }
            };
        }
        SecurityContext::Association(a) => a,
    };

    let registree = match &assoc.bound {
        Some(BoundIdentity::Cse(c)) => Registree::Cse(c.clone()),
        Some(BoundIdentity::Ae(list)) => Registree::Ae(list.clone()),
        None => match tx.binding(&assoc.credential_id.to_string()).map_err(db)? {
            Some(s) => match s.parse::<AeId>() {
                Ok(id) => Registree::Ae(vec![id]),
                Err(_) => return Err(CseError::internal("stored binding is not an AE-ID")),
            },
            None => Registree::Unknown,
        },
    };

    match registree {
        Registree::Unknown => {
            if !ae_create {
                return Err(not_authn(
                    "the security association is not yet bound to an AE-ID: register first",
                ));
            }
            Ok(Verified {
                originator: None,
                rq_authn: false,
                ae_plan: Some(plan_not_owned_elsewhere(
                    registration_plan(from)?,
                    Some(&assoc.credential_id),
                    res,
                    tx,
                )?),
                bind_credential: Some(assoc.credential_id.clone()),
            })
        }
        Registree::Ae(allowed) => {
            let allowed_abs: Vec<String> = allowed.iter().map(|a| me.absolute_ae(a)).collect();
            if ae_create {
                // Only a bound AE-ID may be registered over this association.
                let plan = registration_plan(from)?;
                let bound_local: Vec<&AeIdStem> =
                    allowed.iter().filter_map(|a| me.local_stem(a)).collect();
                let stem = match plan {
                    AeIdPlan::Generate(_) => match bound_local.first() {
                        Some(s) => (*s).clone(),
                        None => {
                            return Err(not_authn(
                                "the AE-ID bound to this association is not registrable here",
                            ))
                        }
                    },
                    AeIdPlan::Use(s) => {
                        if !bound_local.iter().any(|b| **b == s) {
                            return Err(not_authn(
                                "From differs from the AE-ID bound to the security association",
                            ));
                        }
                        s
                    }
                };
                return Ok(Verified {
                    originator: Some(Originator::Ae(AeId::CseRelative { stem: stem.clone() })),
                    rq_authn: true,
                    ae_plan: Some(AeIdPlan::Use(stem)),
                    // Recorded too, so the AE-ID is known to belong to a credential even after
                    // the configuration or the MEF's cache forgets it (module docs).
                    bind_credential: Some(assoc.credential_id.clone()),
                });
            }
            let from = from.unwrap_or_default();
            let ae = match from.parse::<AeId>() {
                Ok(a) => a,
                Err(_) => {
                    return Err(not_authn(
                        "From differs from the AE-ID bound to the security association",
                    ))
                }
            };
            if !allowed_abs.contains(&me.absolute_ae(&ae)) {
                return Err(not_authn(
                    "From differs from the AE-ID bound to the security association",
                ));
            }
            if !matches!(ae, AeId::CseRelative { .. }) {
                return Err(CseError::bad_request(
                    "a registree AE must use its AE-ID-Stem in From (TS-0004 §7.3.2.1)",
                ));
            }
            Ok(Verified {
                originator: Some(Originator::Ae(ae)),
                rq_authn: true,
                ae_plan: None,
                bind_credential: None,
            })
        }
        Registree::Cse(x) => {
            if ae_create {
                return Err(CseError::new(
                    Rsc::OperationNotAllowed,
                    "a CSE shall not originate a CREATE <AE> (TS-0004 §7.4.5.2.1)",
                ));
            }
            let x_abs = me.absolute_cse(&x);
            let own_abs = format!("//{}/{}", me.sp, me.cse_stem);
            let others: Vec<String> = tx
                .registree_cses()
                .map_err(db)?
                .iter()
                .filter_map(|s| s.parse::<CseId>().ok())
                .map(|c| me.absolute_cse(&c))
                .filter(|c| *c != x_abs)
                .collect();
            let orig = classify(from.unwrap_or_default(), me, Some(&x), tx)?;
            match &orig {
                Originator::Cse(c) => {
                    let abs = me.absolute_cse(c);
                    if others.contains(&abs) {
                        return Err(not_authn("From is the CSE-ID of another registree CSE"));
                    }
                    if abs == own_abs {
                        return Err(not_authn("From is the receiver's own CSE-ID"));
                    }
                }
                Originator::Ae(a) => match a {
                    AeId::CseRelative { stem } if stem.kind() == AeIdStemKind::C => {
                        return Err(not_authn(
                            "a CSE-relative C-type AE-ID-Stem cannot come from a registree CSE",
                        ));
                    }
                    _ if a.stem().kind() == AeIdStemKind::S => {
                        // An S-type AE-ID registered, bound or reserved here: the registree CSE
                        // does not host that AE and must not speak for it.
                        if let Some(stem) = me.local_stem(a) {
                            if tx.ae_exists(stem.as_str()).map_err(db)?
                                || owned_by_a_credential(stem, res, tx)?
                            {
                                return Err(not_authn(
                                    "From is an S-type AE-ID registered with the receiver",
                                ));
                            }
                        }
                    }
                    AeId::CseRelative { .. } => {}
                    _ if a.stem().kind() == AeIdStemKind::C => {
                        let sp = match a {
                            AeId::Absolute { sp, .. } => sp.to_string(),
                            _ => me.sp.to_string(),
                        };
                        let cse_part = format!("//{}/{}", sp, a.registrar_stem().unwrap_or(""));
                        if others.contains(&cse_part) {
                            return Err(not_authn(
                                "From is a C-type AE-ID of another registree CSE",
                            ));
                        }
                        if cse_part == own_abs {
                            return Err(not_authn(
                                "From is a C-type AE-ID registered with the receiver",
                            ));
                        }
                    }
                    _ => {}
                },
            }
            let rq_authn = matches!(&orig, Originator::Cse(c) if me.absolute_cse(c) == x_abs);
            Ok(Verified {
                originator: Some(orig),
                rq_authn,
                ae_plan: None,
                bind_credential: None,
            })
        }
    }
}
