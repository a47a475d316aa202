//! Request routing between CSEs: whether a request is for this CSE or must be forwarded, and to
//! which neighbour (TS-0004 §7.3.2.8 "Check Hosting CSE of the targeted resource", §7.3.2.6
//! "Forwarding"; TS-0001 §6.4 registration topology). Sans-IO: [`decide`] is a pure function of
//! the request, where it came from ([`Arrival`]) and this CSE's neighbours ([`Routes`]);
//! [`InFlight`] is the loop guard's state, which the caller keeps. The engine wires both into
//! [`crate::engine::Cse::route`]; a driver then sends a [`Forward`] with its deadline.
//!
//! **Hosting CSE** (§7.3.2.8): a CSE-relative `To` is for this CSE; an SP-relative `/cse-id/…`
//! or absolute `//sp/cse-id/…` is for this CSE when its CSE-ID (and SP-ID) are ours, else this
//! CSE is a transit CSE. A transit AE or CSE registration (CREATE `ty` 2 or 16) is BAD_REQUEST
//! (§7.3.2.8). Another SP's target (Mcc', TS-0001 §6.5) is not supported: on the IN-CSE,
//! TARGET_NOT_REACHABLE; an MN-CSE sends it up to its registrar as any unknown target.
//!
//! **Next hop** (§7.3.2.6): a registree `<remoteCSE>` whose CSE-ID (or one of its
//! `descendantCSEs`) is the target CSE; else, on a CSE that has a registrar, the registrar, unless
//! the request came from the registrar; else NOT_FOUND (the IN-CSE, or a request that came
//! down from the registrar: it would go back up). A request is never sent back to the neighbour
//! it came from (TARGET_NOT_REACHABLE). An MN-CSE that has no registrar configured has
//! nowhere to send it: TARGET_NOT_REACHABLE.
//!
//! **From** (§7.3.2.6): a CSE-relative `From` (an AE-ID-Stem of an AE registered here) is made
//! SP-relative before forwarding: `/<this CSE-ID>/<stem>` for a C-type stem; `/<stem>` for an
//! S-type one (S-type AE-IDs are SP-wide, TS-0001 §7.1.2). Other forms travel unchanged, so
//! `From` is preserved end to end. The originator is verified before the request leaves this CSE
//! (the caller runs [`crate::verify::verify`] first: a transit CSE is the registrar of the
//! originator or of the CSE that forwarded it, TS-0003 §7.2.1).
//!
//! **Loops.** A registration chain never forms a loop (TS-0001 §6.4: "two MN-CSEs A and B cannot
//! register with each other"; the engine refuses a CREATE `<remoteCSE>` from this CSE's own
//! registrar: OPERATION_NOT_ALLOWED), and
//! the rule "nothing that came down from the registrar goes back up" stops a request bouncing
//! between two levels. A longer cycle of registrations (A under B under C under A) is not
//! detectable at registration time by any one CSE, so each forwarding CSE also keeps the set of
//! requests it is forwarding right now ([`InFlight`], our reading: TS-0004 has no hop count in
//! its primitives; the "visited set" is kept by the CSEs, not carried in the primitive, so no
//! non-standard parameter travels). The key is (`From` as forwarded, `rqi`): TS-0001 §8.1.2 makes
//! the Request Identifier unique per originator, so the same pair arriving while it is still
//! being forwarded here is the request coming back around the cycle (or an originator re-sending
//! a request whose first copy has not been answered): TARGET_NOT_REACHABLE, and the first copy's
//! answer travels back as usual. Each entry lasts until the forward ends or its deadline passes,
//! and the set is bounded ([`MAX_IN_FLIGHT`]).

use std::collections::HashMap;

use m2msec_core::ids::{AeIdStem, AeIdStemKind};

use crate::primitive::{Operation, RequestPrimitive};
use crate::rsc::{CseError, Rsc};

/// Most requests one CSE forwards at once; beyond, a forward is refused (TARGET_NOT_REACHABLE).
pub const MAX_IN_FLIGHT: usize = 4096;

/// One neighbour below this CSE: a registree CSE (its `<remoteCSE>` here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Neighbour {
    /// Its CSE-ID stem (without `/`).
    pub csi: String,
    /// Stems of the CSEs registered below it (`descendantCSEs`, TS-0004 table 7.4.4.1-3).
    pub descendants: Vec<String>,
    /// Its `pointOfAccess`.
    pub poa: Vec<String>,
}

/// What routing needs to know about this CSE's place in the registration tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routes {
    /// This CSE's M2M-SP-ID (without `//`).
    pub sp: String,
    /// This CSE's CSE-ID stem.
    pub cse_stem: String,
    /// The registrar's CSE-ID stem (an MN-CSE, from its configuration or registration); `None`
    /// on the IN-CSE.
    pub registrar: Option<String>,
    /// Whether this CSE is meant to have a registrar (an MN-CSE), registered or not yet.
    pub has_registrar: bool,
    /// The registree CSEs.
    pub registrees: Vec<Neighbour>,
}

/// Where a request came from: the channel's registree, as the binding describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arrival {
    /// Not over a CSE's association: an AE, or a local tool.
    Originator,
    /// Over the association of the CSE with this CSE-ID stem (a registree, or the registrar).
    Cse(String),
}

/// The neighbour a request is forwarded to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NextHop {
    /// This CSE's registrar (up the tree).
    Registrar(String),
    /// A registree CSE (down the tree), with its `pointOfAccess`.
    Registree(Neighbour),
}

impl NextHop {
    /// The neighbour's CSE-ID stem.
    pub fn csi(&self) -> &str {
        match self {
            NextHop::Registrar(s) => s,
            NextHop::Registree(n) => &n.csi,
        }
    }
}

/// The routing decision for one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// This CSE hosts the target: handle it here.
    Local(RequestPrimitive),
    /// Forward `request` (its `From` made SP-relative) to `next_hop`.
    Forward {
        /// Where to.
        next_hop: NextHop,
        /// The request as forwarded.
        request: RequestPrimitive,
    },
}

fn unreachable(why: &str) -> CseError {
    CseError::new(Rsc::TargetNotReachable, why)
}

/// The target CSE of `to`: `None` when this CSE hosts it (§7.3.2.8), `Some(Err(()))` for another
/// SP, `Some(Ok(stem))` for another CSE of this SP.
fn target_cse<'a>(to: &'a str, sp_id: &str, cse_stem: &str) -> Option<Result<&'a str, ()>> {
    let (sp, rest) = if let Some(rest) = to.strip_prefix("//") {
        let (sp, rest) = rest.split_once('/').unwrap_or((rest, ""));
        (Some(sp), rest)
    } else if let Some(rest) = to.strip_prefix('/') {
        (None, rest)
    } else {
        return None;
    };
    if sp.is_some_and(|sp| sp != sp_id) {
        return Some(Err(()));
    }
    let cse = rest.split_once('/').map_or(rest, |(c, _)| c);
    // An empty or malformed CSE-ID is for this CSE's parser to refuse (BAD_REQUEST).
    if cse.is_empty() || cse == cse_stem {
        return None;
    }
    Some(Ok(cse))
}

/// Whether this CSE (M2M-SP-ID `sp`, CSE-ID stem `cse_stem`) hosts the target of `to`
/// (§7.3.2.8), without looking at any neighbour: the fast path of the engine.
pub fn hosted_here(to: &str, sp: &str, cse_stem: &str) -> bool {
    target_cse(to, sp, cse_stem).is_none()
}

/// The routing decision for `req` (module docs). `req` must already have passed originator
/// verification at this CSE when the decision is [`Decision::Forward`].
pub fn decide(
    r: &Routes,
    mut req: RequestPrimitive,
    arrival: &Arrival,
) -> Result<Decision, CseError> {
    let target = match target_cse(&req.to, &r.sp, &r.cse_stem) {
        None => return Ok(Decision::Local(req)),
        Some(t) => t,
    };
    if req.op == Operation::Create && matches!(req.ty, Some(2) | Some(16)) {
        return Err(CseError::bad_request(
            "an AE or CSE registration cannot be forwarded (TS-0004 §7.3.2.8)",
        ));
    }
    let from_registrar = matches!(
        (arrival, &r.registrar),
        (Arrival::Cse(a), Some(reg)) if a == reg
    );
    let next = match target {
        Err(()) if r.has_registrar => None,
        Err(()) => {
            return Err(unreachable(
                "the target is in another M2M Service Provider's domain (Mcc' not supported)",
            ))
        }
        Ok(cse) => r
            .registrees
            .iter()
            .find(|n| n.csi == cse || n.descendants.iter().any(|d| d == cse))
            .map(|n| NextHop::Registree(n.clone())),
    };
    let next = match next {
        Some(n) => n,
        None if from_registrar || !r.has_registrar => {
            return Err(CseError::not_found(
                "no CSE with this CSE-ID is registered below this CSE (TS-0004 §7.3.2.6)",
            ))
        }
        None => match &r.registrar {
            Some(reg) => NextHop::Registrar(reg.clone()),
            None => return Err(unreachable("this MN-CSE has no registrar")),
        },
    };
    if matches!(arrival, Arrival::Cse(a) if a == next.csi()) {
        return Err(unreachable(
            "the next hop is the CSE the request came from (routing loop)",
        ));
    }
    let Some(fr) = req.fr.take() else {
        return Err(CseError::bad_request("missing From"));
    };
    req.fr = Some(sp_relative_from(fr, r));
    Ok(Decision::Forward {
        next_hop: next,
        request: req,
    })
}

/// `From` as forwarded (§7.3.2.6): a CSE-relative AE-ID-Stem becomes SP-relative.
fn sp_relative_from(fr: String, r: &Routes) -> String {
    if fr.starts_with('/') {
        return fr;
    }
    match fr.parse::<AeIdStem>() {
        Ok(s) if s.kind() == AeIdStemKind::S => format!("/{fr}"),
        _ => format!("/{}/{fr}", r.cse_stem),
    }
}

/// The requests this CSE is forwarding now (module docs, "Loops"): (`From`, `rqi`) → deadline
/// (unix seconds).
#[derive(Debug, Default)]
pub struct InFlight {
    entries: HashMap<(String, String), i64>,
}

impl InFlight {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `req` (as forwarded) is being forwarded until `deadline`. Refused
    /// (TARGET_NOT_REACHABLE) when the same (`From`, `rqi`) is being forwarded already (a loop)
    /// or [`MAX_IN_FLIGHT`] forwards are pending.
    pub fn begin(
        &mut self,
        req: &RequestPrimitive,
        now: i64,
        deadline: i64,
    ) -> Result<(), CseError> {
        self.entries.retain(|_, d| *d > now);
        let key = (req.fr.clone().unwrap_or_default(), req.rqi.clone());
        if self.entries.contains_key(&key) {
            return Err(unreachable(
                "this request is already being forwarded by this CSE (routing loop)",
            ));
        }
        if self.entries.len() >= MAX_IN_FLIGHT {
            return Err(unreachable("too many requests being forwarded"));
        }
        self.entries.insert(key, deadline);
        Ok(())
    }

    /// The forward of `req` (as forwarded) ended, answered or not.
    pub fn end(&mut self, req: &RequestPrimitive) {
        let key = (req.fr.clone().unwrap_or_default(), req.rqi.clone());
        self.entries.remove(&key);
    }

    /// How many forwards are pending.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether none is pending.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mn() -> Routes {
        Routes {
            sp: "sp.example".into(),
            cse_stem: "cse-mn".into(),
            registrar: Some("cse-in".into()),
            has_registrar: true,
            registrees: vec![Neighbour {
                csi: "cse-asn".into(),
                descendants: vec!["cse-deep".into()],
                poa: vec![],
            }],
        }
    }

    fn inc() -> Routes {
        Routes {
            sp: "sp.example".into(),
            cse_stem: "cse-in".into(),
            registrar: None,
            has_registrar: false,
            registrees: vec![Neighbour {
                csi: "cse-mn".into(),
                descendants: vec![],
                poa: vec!["https://mn".into()],
            }],
        }
    }

    fn rq(to: &str, fr: &str) -> RequestPrimitive {
        RequestPrimitive::new(Operation::Retrieve, to, Some(fr), "r1")
    }

    fn fwd(d: Result<Decision, CseError>) -> (String, String) {
        match d {
            Ok(Decision::Forward { next_hop, request }) => {
                (next_hop.csi().to_string(), request.fr.unwrap_or_default())
            }
            other => panic!("not a forward: {other:?}"),
        }
    }

    fn rsc(d: Result<Decision, CseError>) -> Rsc {
        match d {
            Err(e) => e.rsc,
            Ok(d) => panic!("not an error: {d:?}"),
        }
    }

    #[test]
    fn local_targets() {
        for to in [
            "cb",
            "cb/x",
            "Cae",
            "/cse-mn",
            "/cse-mn/cb/a",
            "//sp.example/cse-mn/x",
        ] {
            let d = decide(&mn(), rq(to, "Cae"), &Arrival::Originator).unwrap();
            assert!(matches!(d, Decision::Local(_)), "{to}");
        }
    }

    #[test]
    fn up_down_and_from_rewriting() {
        let o = Arrival::Originator;
        assert_eq!(
            fwd(decide(&mn(), rq("/cse-in/cb", "Cae"), &o)),
            ("cse-in".into(), "/cse-mn/Cae".into())
        );
        assert_eq!(
            fwd(decide(&mn(), rq("//sp.example/cse-other/x", "Sae"), &o)),
            ("cse-in".into(), "/Sae".into())
        );
        // Down, by CSE-ID and by descendant; From in SP-relative form stays.
        assert_eq!(
            fwd(decide(
                &mn(),
                rq("/cse-deep/cb", "/cse-in/Cx"),
                &Arrival::Cse("cse-in".into())
            )),
            ("cse-asn".into(), "/cse-in/Cx".into())
        );
        assert_eq!(
            fwd(decide(&inc(), rq("/cse-mn/cb/c", "/cse-in/Cz"), &o)),
            ("cse-mn".into(), "/cse-in/Cz".into())
        );
        // Another SP from an MN goes up.
        assert_eq!(
            fwd(decide(&mn(), rq("//other.example/c/x", "Cae"), &o)).0,
            "cse-in"
        );
    }

    #[test]
    fn refusals() {
        let o = Arrival::Originator;
        // IN-CSE: unknown CSE → NOT_FOUND; another SP → TARGET_NOT_REACHABLE.
        assert_eq!(
            rsc(decide(&inc(), rq("/cse-x/cb", "Cae"), &o)),
            Rsc::NotFound
        );
        assert_eq!(
            rsc(decide(&inc(), rq("//other.example/c", "Cae"), &o)),
            Rsc::TargetNotReachable
        );
        // From the registrar, unknown → NOT_FOUND (never back up).
        let from_in = Arrival::Cse("cse-in".into());
        assert_eq!(
            rsc(decide(&mn(), rq("/cse-x/cb", "/cse-in/Cq"), &from_in)),
            Rsc::NotFound
        );
        // Back to where it came from.
        let from_asn = Arrival::Cse("cse-asn".into());
        assert_eq!(
            rsc(decide(&mn(), rq("/cse-asn/cb", "/cse-asn/Cq"), &from_asn)),
            Rsc::TargetNotReachable
        );
        // Not registered yet.
        let mut unreg = mn();
        unreg.registrar = None;
        assert_eq!(
            rsc(decide(&unreg, rq("/cse-in/cb", "Cae"), &o)),
            Rsc::TargetNotReachable
        );
        // Transit registration.
        let reg = RequestPrimitive::new(Operation::Create, "/cse-in", Some("Cae"), "r").with_ty(2);
        assert_eq!(rsc(decide(&mn(), reg, &o)), Rsc::BadRequest);
        let nofrom = RequestPrimitive::new(Operation::Retrieve, "/cse-in", None, "r");
        assert_eq!(rsc(decide(&mn(), nofrom, &o)), Rsc::BadRequest);
    }

    #[test]
    fn in_flight_detects_a_request_coming_back() {
        let mut f = InFlight::new();
        let r = rq("/cse-in/cb", "/cse-mn/Cae");
        f.begin(&r, 100, 130).unwrap();
        assert_eq!(
            f.begin(&r, 101, 131).unwrap_err().rsc,
            Rsc::TargetNotReachable
        );
        // Another rqi is another request.
        let mut r2 = r.clone();
        r2.rqi = "r2".into();
        f.begin(&r2, 101, 131).unwrap();
        f.end(&r);
        f.begin(&r, 102, 132).unwrap();
        // An entry past its deadline is gone.
        f.begin(&r2, 200, 230).unwrap();
        assert_eq!(f.len(), 1);
    }
}
