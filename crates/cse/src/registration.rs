//! CSE registration, registree side: an MN-CSE registering with its registrar CSE (TS-0001
//! §10.2.2 "CSE registration", TS-0004 §7.4.4.2.1), as a sans-IO initiator in the shape of
//! `mef::enrolee::Machine` (docs/architecture.md): the driver asks [`Machine::poll`] what to do,
//! sends requests over its CSE-to-CSE association, feeds back responses
//! ([`Machine::handle_response`]) or transport failures ([`Machine::transport_failed`]),
//! performs the one effect ([`Step::Store`]: write the registrar's `<remoteCSE>` locally, which
//! the service does with [`crate::engine::Cse::set_registrar`]) and sleeps when told to. Time is
//! an argument; the machine owns no clock, socket or store.
//!
//! **States.** `Create` → `Retrieve` → `Store` → `Registered`:
//! 1. CREATE `<remoteCSE>` (`ty` 16) at the registrar's `<CSEBase>` (`To` = the registrar's
//!    SP-relative CSE-ID, `From` = our CSE-ID; `csi`, `cb`, `cst` 2, `rr` TRUE, `poa`, `srv`).
//!    CREATED moves on. ORIGINATOR_HAS_ALREADY_REGISTERED (4117, what TS-0004 §7.4.4.2.1
//!    answers when our `<remoteCSE>` is still there: after our restart, or when a CREATE's
//!    response was lost) or CONFLICT (4105, what some registrars answer instead) is
//!    re-registration: `Update`.
//! 2. `Update`: UPDATE our `<remoteCSE>` at the registrar (`/<registrar>/<our stem>`, its
//!    resource ID is our CSE-ID stem) with our current `poa`, `rr` and `srv`; UPDATED moves on.
//!    NOT_FOUND (the registrar lost it between the two requests) goes back to `Create`, at most
//!    [`MAX_BOUNCES`] times per attempt.
//! 3. `Retrieve`: RETRIEVE the registrar's `<CSEBase>` (TS-0004 §7.4.4.2.1, "may issue a
//!    RETRIEVE … to fetch additional information"). Its `csi` must be the configured
//!    registrar's CSE-ID (else the attempt fails: we reached another CSE). A registrar that
//!    refuses the RETRIEVE (ORIGINATOR_HAS_NO_PRIVILEGE) gets a `<remoteCSE>` built from the
//!    configuration (`cb` = its SP-relative CSE-ID, which addresses its `<CSEBase>`).
//! 4. `Store`: the effect [`Step::Store`] with the registrar's `<remoteCSE>` attributes; the
//!    caller reports its result with [`Machine::stored`].
//!
//! **Failures and backoff.** Any other response code, a malformed response, a transport failure
//! or a failed effect ends the attempt: the machine waits (exponential backoff from
//! [`Params::backoff_min_secs`], doubling up to [`Params::backoff_max_secs`]; [`Step::Sleep`]
//! tells the driver how long) and starts again at `Create`, forever: a registrar that is down
//! is waited for (issue 12 item 1). A success resets the backoff.
//!
//! **Checks** ([`Machine::with_check_interval`]): once registered, a RETRIEVE of our
//! `<remoteCSE>` at the registrar every interval; NOT_FOUND starts again at `Create`, any other
//! answer or a transport failure keeps the registration (the next check comes an interval
//! later).
//!
//! **Invariants.** At most one request outstanding; a response whose `rqi` is not the
//! outstanding request's (a duplicate, a late answer to an abandoned attempt) is ignored
//! ([`Fed::Ignored`]); a duplicated CREATE that the registrar executed twice gives 4117 the
//! second time, which the machine treats as re-registration; [`Step::Registered`] only after the
//! local `<remoteCSE>` was written.

use m2msec_core::ids::CseId;
use serde_json::{json, Value};

use crate::engine::RegistrarCse;
use crate::primitive::{Operation, RequestPrimitive, ResponsePrimitive};
use crate::rsc::Rsc;

/// Most CREATE → 4117 → UPDATE → NOT_FOUND → CREATE bounces in one attempt.
pub const MAX_BOUNCES: u32 = 2;

/// What the registree needs to register.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Params {
    /// This CSE's CSE-ID.
    pub cse_id: CseId,
    /// This CSE's `<CSEBase>` resource name.
    pub cb_rn: String,
    /// This CSE's `pointOfAccess`.
    pub poa: Vec<String>,
    /// The registrar's CSE-ID.
    pub registrar: CseId,
    /// First backoff delay, seconds (at least 1).
    pub backoff_min_secs: u64,
    /// Longest backoff delay, seconds.
    pub backoff_max_secs: u64,
}

/// What the driver does next ([`Machine::poll`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Send this request to the registrar.
    Send(RequestPrimitive),
    /// A request is outstanding: wait for its response or its failure.
    Awaiting,
    /// Write the registrar's `<remoteCSE>` locally, then call [`Machine::stored`].
    Store(RegistrarCse),
    /// Sleep this many seconds, then poll again.
    Sleep(u64),
    /// Registered: nothing to do until [`Machine::reregister`].
    Registered,
}

/// What [`Machine::handle_response`] did with a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fed {
    /// It answered the outstanding request.
    Accepted,
    /// Not the outstanding request's: dropped, nothing changed.
    Ignored,
}

#[derive(Debug, Clone, PartialEq)]
enum State {
    Create,
    Update,
    Retrieve,
    Store(RegistrarCse),
    Storing,
    Backoff {
        until: i64,
    },
    /// Registered; the last check (or the registration) was at `checked_at`.
    Registered {
        checked_at: i64,
    },
    /// A check of our `<remoteCSE>` at the registrar is outstanding.
    Checking,
}

/// The registration machine (module docs).
#[derive(Debug)]
pub struct Machine {
    p: Params,
    state: State,
    awaiting: Option<String>,
    n: u64,
    failures: u32,
    bounces: u32,
    last_error: Option<String>,
    /// Seconds between checks that the registrar still knows us (None: no checks).
    check_secs: Option<u64>,
}

impl Machine {
    /// A machine that starts with a CREATE `<remoteCSE>`.
    pub fn new(p: Params) -> Self {
        Machine {
            p,
            state: State::Create,
            awaiting: None,
            n: 0,
            failures: 0,
            bounces: 0,
            last_error: None,
            check_secs: None,
        }
    }

    /// Once registered, checks every `secs` seconds that the registrar still holds our
    /// `<remoteCSE>` (a RETRIEVE of it), and registers again when it answers NOT_FOUND (the
    /// registrar lost its store, or an administrator de-registered us). A check that fails
    /// otherwise (the registrar is down) changes nothing: the next one runs `secs` later.
    pub fn with_check_interval(mut self, secs: u64) -> Self {
        self.check_secs = Some(secs.max(1));
        self
    }

    /// When registered with checks enabled, seconds until the next check is due.
    pub fn next_check(&self, now: i64) -> Option<u64> {
        match (&self.state, self.check_secs) {
            (State::Registered { checked_at }, Some(iv)) => {
                let due = checked_at.saturating_add(i64::try_from(iv).unwrap_or(i64::MAX));
                Some(u64::try_from(due.saturating_sub(now)).unwrap_or(0).max(1))
            }
            _ => None,
        }
    }

    /// Whether the registration is done.
    pub fn is_registered(&self) -> bool {
        matches!(self.state, State::Registered { .. } | State::Checking)
    }

    /// Why the last attempt failed, if one did since the last success.
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    /// Failed attempts since the last success.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    fn me(&self) -> String {
        format!("/{}", self.p.cse_id.stem())
    }

    fn registrar(&self) -> String {
        format!("/{}", self.p.registrar.stem())
    }

    /// The next thing to do at `now` (unix seconds).
    pub fn poll(&mut self, now: i64) -> Step {
        if self.awaiting.is_some() {
            return Step::Awaiting;
        }
        if let State::Backoff { until } = self.state {
            if now < until {
                return Step::Sleep(u64::try_from(until - now).unwrap_or(1));
            }
            self.state = State::Create;
            self.bounces = 0;
        }
        let me = self.me();
        let reg = self.registrar();
        let stem = self.p.cse_id.stem().to_string();
        let srv: Vec<&str> = crate::engine::SUPPORTED_RELEASE_VERSIONS.to_vec();
        let (op, to, ty, pc) = match &self.state {
            State::Create => (
                Operation::Create,
                reg,
                Some(16),
                Some(json!({"m2m:csr": {
                    "csi": me,
                    "cb": format!("{me}/{}", self.p.cb_rn),
                    "cst": 2,
                    "rr": true,
                    "poa": self.p.poa,
                    "srv": srv,
                }})),
            ),
            State::Update => (
                Operation::Update,
                format!("{reg}/{stem}"),
                None,
                Some(json!({"m2m:csr": {"rr": true, "poa": self.p.poa, "srv": srv}})),
            ),
            State::Retrieve => (Operation::Retrieve, reg, None, None),
            State::Store(r) => {
                let r = r.clone();
                self.state = State::Storing;
                return Step::Store(r);
            }
            State::Storing | State::Checking => return Step::Awaiting,
            State::Registered { checked_at } => {
                let due = self.check_secs.is_some_and(|iv| {
                    now >= checked_at.saturating_add(i64::try_from(iv).unwrap_or(i64::MAX))
                });
                if !due {
                    return Step::Registered;
                }
                self.state = State::Checking;
                (Operation::Retrieve, format!("{reg}/{stem}"), None, None)
            }
            State::Backoff { .. } => return Step::Awaiting,
        };
        self.n += 1;
        let rqi = format!("csr-{}-{}", now, self.n);
        let mut req = RequestPrimitive::new(op, to, Some(&me), rqi.clone());
        req.ty = ty;
        req.pc = pc;
        req.rvi = Some("3".into());
        self.awaiting = Some(rqi);
        Step::Send(req)
    }

    fn fail(&mut self, why: String, now: i64) {
        tracing::debug!(error = %why, "CSE registration attempt failed");
        self.awaiting = None;
        self.failures = self.failures.saturating_add(1);
        let exp = self.failures.saturating_sub(1).min(30);
        let delay = self
            .p
            .backoff_min_secs
            .max(1)
            .saturating_mul(1u64 << exp)
            .min(self.p.backoff_max_secs.max(1));
        self.state = State::Backoff {
            until: now.saturating_add(i64::try_from(delay).unwrap_or(i64::MAX)),
        };
        self.last_error = Some(why);
    }

    /// The transport could not deliver the outstanding request or its response (or the
    /// deadline passed): the attempt fails and the machine backs off.
    pub fn transport_failed(&mut self, why: &dyn std::fmt::Display, now: i64) {
        if self.awaiting.is_none() {
            return;
        }
        if self.state == State::Checking {
            self.awaiting = None;
            self.state = State::Registered { checked_at: now };
            return;
        }
        self.fail(format!("transport: {why}"), now);
    }

    /// Feeds the response to the outstanding request.
    pub fn handle_response(&mut self, r: ResponsePrimitive, now: i64) -> Fed {
        let Some(rqi) = &self.awaiting else {
            return Fed::Ignored;
        };
        if !r.rqi.is_empty() && r.rqi != *rqi {
            return Fed::Ignored;
        }
        self.awaiting = None;
        let refused = |step: &str, r: &ResponsePrimitive| {
            let dbg =
                r.pc.as_ref()
                    .and_then(|v| v.get("m2m:dbg"))
                    .and_then(Value::as_str)
                    .unwrap_or("");
            format!("{step}: {} {} {dbg}", r.rsc.as_u16(), r.rsc.name())
        };
        match (&self.state, r.rsc) {
            (State::Create, Rsc::Created) => self.state = State::Retrieve,
            (State::Create, Rsc::OriginatorHasAlreadyRegistered | Rsc::Conflict) => {
                self.state = State::Update
            }
            (State::Update, Rsc::Updated) => self.state = State::Retrieve,
            (State::Update, Rsc::NotFound) if self.bounces < MAX_BOUNCES => {
                self.bounces += 1;
                self.state = State::Create;
            }
            (State::Retrieve, Rsc::Ok) => match self.registrar_cse(&r) {
                Ok(rec) => self.state = State::Store(rec),
                Err(e) => self.fail(format!("RETRIEVE <CSEBase>: {e}"), now),
            },
            // The RETRIEVE is optional (TS-0004 §7.4.4.2.1, "may"): a registrar whose policy
            // refuses it gets a `<remoteCSE>` from what the configuration knows.
            (State::Retrieve, Rsc::OriginatorHasNoPrivilege) => {
                let stem = self.p.registrar.stem();
                self.state = State::Store(RegistrarCse {
                    csi: format!("/{stem}"),
                    cb: format!("/{stem}"),
                    cst: None,
                    poa: Vec::new(),
                    srv: Vec::new(),
                });
            }
            // The registrar no longer knows us: register again (module docs).
            (State::Checking, Rsc::NotFound) => {
                tracing::warn!("the registrar lost our <remoteCSE>: registering again");
                self.state = State::Create;
                self.bounces = 0;
            }
            (State::Checking, _) => self.state = State::Registered { checked_at: now },
            (State::Create, _) => self.fail(refused("CREATE <remoteCSE>", &r), now),
            (State::Update, _) => self.fail(refused("UPDATE <remoteCSE>", &r), now),
            (State::Retrieve, _) => self.fail(refused("RETRIEVE <CSEBase>", &r), now),
            _ => {}
        }
        Fed::Accepted
    }

    /// The result of the [`Step::Store`] effect.
    pub fn stored(&mut self, result: Result<(), String>, now: i64) {
        if self.state != State::Storing {
            return;
        }
        match result {
            Ok(()) => {
                self.state = State::Registered { checked_at: now };
                self.failures = 0;
                self.last_error = None;
            }
            Err(e) => self.fail(format!("storing the registrar's <remoteCSE>: {e}"), now),
        }
    }

    /// Starts again from CREATE (e.g. the registrar no longer knows us). No effect while an
    /// attempt is running.
    pub fn reregister(&mut self) {
        if matches!(self.state, State::Registered { .. }) {
            self.state = State::Create;
            self.bounces = 0;
        }
    }

    /// The registrar's `<remoteCSE>` attributes from its `<CSEBase>` representation.
    fn registrar_cse(&self, r: &ResponsePrimitive) -> Result<RegistrarCse, String> {
        let cb =
            r.pc.as_ref()
                .and_then(|v| v.get("m2m:cb"))
                .and_then(Value::as_object)
                .ok_or("no m2m:cb in the response")?;
        let csi = cb
            .get("csi")
            .and_then(Value::as_str)
            .ok_or("no csi")?
            .parse::<CseId>()
            .map_err(|e| format!("csi: {e}"))?;
        if csi.stem() != self.p.registrar.stem() {
            return Err(format!(
                "the registrar's CSE-ID is {csi}, not the configured {}",
                self.p.registrar
            ));
        }
        let rn = cb.get("rn").and_then(Value::as_str).ok_or("no rn")?;
        crate::resource::validate_resource_name(rn).map_err(|e| e.detail)?;
        let strings = |k: &str| -> Result<Vec<String>, String> {
            match cb.get(k) {
                None | Some(Value::Null) => Ok(Vec::new()),
                Some(Value::Array(a)) => a
                    .iter()
                    .map(|v| {
                        v.as_str()
                            .map(str::to_string)
                            .ok_or(format!("{k}: not a string"))
                    })
                    .collect(),
                Some(_) => Err(format!("{k}: not a list")),
            }
        };
        let cst = match cb.get("cst").and_then(Value::as_u64) {
            None => None,
            Some(v @ 1..=3) => u8::try_from(v).ok(),
            Some(_) => return Err("cst must be 1, 2 or 3".into()),
        };
        Ok(RegistrarCse {
            csi: format!("/{}", csi.stem()),
            cb: format!("/{}/{rn}", csi.stem()),
            cst,
            poa: strings("poa")?,
            srv: strings("srv")?,
        })
    }
}
