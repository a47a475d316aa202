//! The MEF side of the enrolment exchange as a sans-IO state machine (TS-0003 §8.3.2.1 steps
//! 5–16, §8.3.4.6 and §8.3.9 MEF Client Commands, §8.3.5.2.3–6 the session's registration,
//! seed 001 IBC credential enrolment).
//!
//! Why a state machine: the exchange is where ordering, duplicates, replays and crashes matter,
//! and those can only be tested exhaustively without sockets, SQLite locks or a real PKG in the
//! loop. So [`Exchange::handle`] does no I/O: it reads no clock (`now` is an argument), draws
//! its identifiers from the caller's RNG, and where the exchange needs the outside world it
//! returns an [`Effect`] instead of acting:
//!
//! - [`Effect::Extract`]: ask the PKG to extract (SSK, PVT) for ID2 (RFC 6507 §5.1.1);
//! - [`Effect::Commit`]: commit this enrolment, conditional on the device's enrolment
//!   generation read at the bootstrap (issue 9 item 9: the loser of two overlapping exchanges
//!   gets CONFLICT 4105).
//!
//! The service ([`crate::endpoint::MefEndpoint`]) performs the effect against SQLite or the
//! PKG and feeds the result back with [`Exchange::resume`], which answers the request. Closing
//! the session (§8.3.2.1 step 16) is the `close` flag of the answer. Requests of the session
//! that are not part of the exchange (key registration, the committed registration of an
//! earlier exchange, a key registration by its source) come back as [`Output::Outside`] for
//! the service to serve.
//!
//! Invariants (tested by `tests/sim.rs` with a message dropped, duplicated or replayed at every
//! step and a crash before and after each effect): nothing is committed unless the Enrolee
//! reported success after the commands completed (and, with IBC, after its credential was
//! issued); at most one commit per exchange; a replayed step is refused or answers as before.

use std::collections::VecDeque;

use rand_core::RngCore;
use serde_json::Value;

use m2msec_bindings::Handled;
use m2msec_core::eccsi::{Kpak, UserKeys};
use m2msec_core::ids::{EnroleeId, Fqdn, KeId, TargetId};
use m2msec_core::kdf::{EnrolmentKey, KdfIdentifier};
use m2msec_core::sec::{
    AnyUri, CmdArgs, CmdDescription, CmdStatusCode, M2mId, MoNodeCmdArgs, NoMoreCmdArgs,
};
use m2msec_core::secret::{Kc, Ke};
use m2msec_core::suid::Suid;
use m2msec_core::timestamp::Timestamp;
use m2msec_proto::{CseError, Operation, RequestPrimitive, ResponsePrimitive, Rsc};

use crate::endpoint::{MefConfig, TARGET_SUID};
use crate::store::{CommitOutcome, Device, Enrolment, StoreError};
use crate::wire::{self, *};

/// Where an exchange is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Bootstrapped,
    Registered,
    Ended,
}

/// What the exchange waits on while the service performs an effect.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pending {
    Extract { rqi: String, id2: String },
    Commit { rqi: String },
}

/// The Enrolee side of one session, as the MEF tracks it.
pub struct Exchange {
    kpm_id: String,
    /// The device's enrolment generation at the bootstrap: the commit's compare-and-set.
    gen: i64,
    enrolee_id: EnroleeId,
    targets: Vec<TargetId>,
    enrolment_secs: u64,
    ke: Ke,
    ke_id: KeId,
    kc: Option<(Kc, [u8; 16])>,
    stage: Stage,
    reg_id: String,
    reg_expires: i64,
    enrolment_expires: i64,
    /// adminFQDN, from the Client Registration on.
    admin_fqdn: Option<Fqdn>,
    labels: Option<Vec<String>>,
    commands: VecDeque<(String, CmdDescription)>,
    retrieved: bool,
    id2: Option<String>,
    pending: Option<Pending>,
}

impl std::fmt::Debug for Exchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exchange")
            .field("kpm_id", &self.kpm_id)
            .field("ke_id", &self.ke_id.to_string())
            .field("stage", &self.stage)
            .finish_non_exhaustive()
    }
}

/// What one request of the exchange produced.
#[derive(Debug)]
pub enum Output {
    /// The answer (its `close` flag ends the session).
    Reply(Handled),
    /// The service must perform this, then call [`Exchange::resume`] with the result.
    Effect(Effect),
    /// Not part of the exchange: the service serves it (it may read or write the store).
    Outside(RequestPrimitive),
}

/// An action of the exchange on the outside world.
#[derive(Debug)]
pub enum Effect {
    /// Ask the PKG to extract (SSK, PVT) for ID2 (RFC 6507 §5.1.1).
    Extract {
        /// ID2 = `<MEF-FQDN>|<expiry>|<ID1>` (BRIEF A32).
        id2: String,
    },
    /// Commit this enrolment in one transaction, if the device's enrolment generation is still
    /// `expected_gen` (issue 9 item 9).
    Commit(Box<Commit>),
}

/// The content of [`Effect::Commit`]: the arguments of
/// [`crate::store::MefStore::commit_enrolment`].
pub struct Commit {
    /// The enrolment row.
    pub enrolment: Enrolment,
    /// Ke (sealed by the store).
    pub ke: Ke,
    /// adminFQDN of the registration.
    pub admin_fqdn: Fqdn,
    /// Labels of the registration.
    pub labels: Option<Vec<String>>,
    /// Expiry of the registration.
    pub reg_expires: i64,
    /// The generation read at the bootstrap.
    pub expected_gen: i64,
    /// The time of the commit.
    pub now: i64,
}

impl std::fmt::Debug for Commit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Commit")
            .field("enrolment", &self.enrolment)
            .field("expected_gen", &self.expected_gen)
            .finish_non_exhaustive()
    }
}

/// The result of an [`Effect`], fed back to [`Exchange::resume`].
#[derive(Debug)]
pub enum EffectResult {
    /// The PKG's answer to [`Effect::Extract`]: the keys and its KPAK, or why it failed.
    Extracted(Result<Box<(UserKeys, Kpak)>, String>),
    /// The store's answer to [`Effect::Commit`].
    Committed(Result<CommitOutcome, StoreError>),
}

/// An error response (the MEF's endpoint uses it too).
pub(crate) fn err(rsc: Rsc, rqi: &str, detail: impl Into<String>) -> Handled {
    ResponsePrimitive::error(&CseError::new(rsc, detail), rqi).into()
}

/// A successful response carrying `pc`.
pub(crate) fn ok(rsc: Rsc, rqi: &str, pc: Value) -> Handled {
    let mut r = ResponsePrimitive::new(rsc, rqi);
    r.pc = Some(pc);
    r.into()
}

pub(crate) fn ts(secs: i64) -> Timestamp {
    Timestamp::from_unix(secs).unwrap_or_else(|_| Timestamp::from_unix(0).expect("epoch"))
}

pub(crate) fn random_hex(rng: &mut dyn RngCore, n: usize) -> String {
    let mut b = vec![0u8; n];
    rng.fill_bytes(&mut b);
    hex::encode(b)
}

impl Exchange {
    /// A new exchange after the bootstrap handshake of `device` (TS-0003 §8.3.2.1 step 4):
    /// `ek` from the session's `EXPORTER-oneM2M-Bootstrap` export (§10.3.1), `kc` from its
    /// `EXPORTER-oneM2M-Connection` export (BRIEF A10), `gen` the device's enrolment generation
    /// read now.
    pub fn new(device: Device, gen: i64, ek: EnrolmentKey, kc: Option<(Kc, [u8; 16])>) -> Self {
        Exchange {
            kpm_id: device.kpm_id,
            gen,
            enrolee_id: device.enrolee_id,
            targets: device.targets,
            enrolment_secs: device.enrolment_secs,
            ke: ek.ke,
            ke_id: ek.ke_id,
            kc,
            stage: Stage::Bootstrapped,
            reg_id: String::new(),
            reg_expires: 0,
            enrolment_expires: 0,
            admin_fqdn: None,
            labels: None,
            commands: VecDeque::new(),
            retrieved: false,
            id2: None,
            pending: None,
        }
    }

    /// KpmID of the device.
    pub fn kpm_id(&self) -> &str {
        &self.kpm_id
    }

    /// The device's Enrolee-ID.
    pub fn enrolee_id(&self) -> &EnroleeId {
        &self.enrolee_id
    }

    /// KeID of this session.
    pub fn ke_id(&self) -> &KeId {
        &self.ke_id
    }

    /// Kc and KcID of this session, if exported.
    pub(crate) fn kc(&self) -> Option<&(Kc, [u8; 16])> {
        self.kc.as_ref()
    }

    /// Whether the exchange has ended (committed, abandoned or refused at its end).
    pub fn ended(&self) -> bool {
        self.stage == Stage::Ended
    }

    /// One request of the session. `now` is unix seconds; `rng` draws MEFClientRegID and
    /// cmdIDs.
    pub fn handle(
        &mut self,
        cfg: &MefConfig,
        prim: RequestPrimitive,
        now: i64,
        rng: &mut dyn RngCore,
    ) -> Output {
        let rqi = prim.rqi.clone();
        if let Some(fr) = &prim.fr {
            if *fr != self.enrolee_id.to_string() {
                return Output::Reply(err(
                    Rsc::OriginatorNotAuthenticated,
                    &rqi,
                    "From is not the Enrolee-ID provisioned for this KpmID",
                ));
            }
        }
        if self.pending.is_some() {
            return Output::Reply(err(
                Rsc::OperationNotAllowed,
                &rqi,
                "the previous request of this exchange is still being served",
            ));
        }
        if self.stage == Stage::Ended {
            return Output::Reply(err(
                Rsc::OperationNotAllowed,
                &rqi,
                "the enrolment exchange has ended",
            ));
        }
        let to = prim.to.trim_start_matches('/');
        let reg_prefix = format!("{MEF_BASE}/{}", self.reg_id);
        let reply = match (prim.op, to) {
            (Operation::Create, MEF_BASE) if prim.ty == Some(TY_MEF_CLIENT_REG) => {
                self.client_registration(cfg, &prim, now, rng)
            }
            (Operation::Create, MEF_BASE) if prim.ty == Some(TY_MEF_KEY_REG) => {
                return Output::Outside(prim)
            }
            (Operation::Create, MEF_BASE) => err(
                Rsc::BadRequest,
                &rqi,
                "ty must be mefClientReg or mefKeyReg",
            ),
            (op, t)
                if t.strip_prefix("mef/")
                    .is_some_and(|id| !id.contains('/') && id != "keys")
                    && (self.stage != Stage::Registered || t != reg_prefix)
                    && matches!(
                        op,
                        Operation::Retrieve | Operation::Update | Operation::Delete
                    ) =>
            {
                // The committed registration of an earlier exchange (§8.3.5.2.4–6).
                return Output::Outside(prim);
            }
            (Operation::Retrieve, t) if self.stage == Stage::Registered && t == reg_prefix => {
                // Configuration Retrieval (TS-0003 §8.3.5.2.4) of this session's registration.
                ok(
                    Rsc::Ok,
                    &rqi,
                    wire::wrap("mefClientReg", &self.reg_view(cfg)),
                )
            }
            (Operation::Update, t) if self.stage == Stage::Registered && t == reg_prefix => {
                let max = now
                    .saturating_add(cfg.max_registration_secs as i64)
                    .min(self.enrolment_expires);
                match crate::endpoint::parse_reg_update(prim.pc.as_ref(), now, max) {
                    Ok((expires, labels, echo)) => {
                        if let Some(e) = expires {
                            self.reg_expires = e;
                        }
                        if labels.is_some() {
                            self.labels = labels;
                        }
                        ok(Rsc::Updated, &rqi, echo)
                    }
                    Err(e) => err(Rsc::BadRequest, &rqi, e),
                }
            }
            _ if self.stage != Stage::Registered || !to.starts_with(&reg_prefix) => {
                if to.starts_with("mef/keys/") {
                    return Output::Outside(prim);
                }
                err(Rsc::NotFound, &rqi, "no such MEF resource in this session")
            }
            (Operation::Retrieve, t) if t == format!("{reg_prefix}/cmd") => {
                let status = if self.retrieved {
                    CmdStatusCode::Reissued
                } else {
                    CmdStatusCode::Issued
                };
                self.retrieved = true;
                ok(Rsc::Ok, &rqi, self.cmd_value(status))
            }
            (Operation::Update, t) if t == format!("{reg_prefix}/cmd") => {
                let upd: ClientCmd = match wire::unwrap("mefClientCmd", prim.pc.as_ref()) {
                    Ok(u) => u,
                    // TS-0003 §8.3.9.6 step 2a: BAD_REQUEST on a parse failure.
                    Err(e) => return Output::Reply(err(Rsc::BadRequest, &rqi, e.to_string())),
                };
                let current = self.commands.front().map(|(id, _)| id.clone());
                // Only a command the MEF has issued (Retrieved, or carried by the previous
                // Update's response) is answered: an early Update is discarded like a mismatch.
                if self.retrieved && current.as_deref() == Some(upd.cmd_id.as_str()) {
                    tracing::debug!(cmd_id = %upd.cmd_id, status = upd.status, "MEF client command update");
                    self.commands.pop_front();
                    self.retrieved = true;
                }
                // A cmdID mismatch is silently discarded (§8.3.9.6 step 2b): the response
                // carries the command still current (so a duplicated Update is idempotent).
                ok(Rsc::Updated, &rqi, self.cmd_value(CmdStatusCode::Issued))
            }
            (Operation::Create, t)
                if t == format!("{reg_prefix}/ibc") && prim.ty == Some(TY_IBC_ENROL) =>
            {
                return self.ibc_enrol(cfg, &prim);
            }
            (Operation::Update, t) if t == format!("{reg_prefix}/ibc") => {
                return self.end_exchange(cfg, &prim, now);
            }
            (Operation::Delete, t) if t == reg_prefix => {
                // De-registration inside the exchange abandons it: nothing was committed.
                self.stage = Stage::Ended;
                Handled {
                    response: ResponsePrimitive::new(Rsc::Deleted, rqi.as_str()),
                    close: true,
                }
            }
            _ => err(Rsc::NotFound, &rqi, "no such MEF resource or operation"),
        };
        Output::Reply(reply)
    }

    fn queue_commands(&mut self, cfg: &MefConfig, rng: &mut dyn RngCore) {
        self.commands.clear();
        for (i, t) in self.targets.iter().enumerate() {
            let (Ok(path), Ok(suid), Ok(target)) = (
                format!("./authenticationProfile/{i}").parse::<AnyUri>(),
                Suid::new(TARGET_SUID),
                t.to_string().parse::<M2mId>(),
            ) else {
                continue;
            };
            let d = CmdDescription::new(
                CmdArgs::MoNode(MoNodeCmdArgs::authentication_profile(path, suid)),
                Some(target),
            );
            self.commands.push_back((random_hex(rng, 8), d));
        }
        let d = CmdDescription::new(
            CmdArgs::NoMore(NoMoreCmdArgs {
                retry_duration: cfg.retry_duration,
            }),
            None,
        );
        self.commands.push_back((random_hex(rng, 8), d));
    }

    fn cmd_value(&self, status: CmdStatusCode) -> Value {
        match self.commands.front() {
            Some((id, d)) => wire::wrap(
                "mefClientCmd",
                &ClientCmd {
                    cmd_id: id.clone(),
                    description: serde_json::to_value(d).ok(),
                    status: status as u16,
                },
            ),
            None => Value::Null,
        }
    }

    fn client_registration(
        &mut self,
        cfg: &MefConfig,
        prim: &RequestPrimitive,
        now: i64,
        rng: &mut dyn RngCore,
    ) -> Handled {
        let rqi = &prim.rqi;
        if self.stage != Stage::Bootstrapped {
            return err(
                Rsc::OriginatorHasAlreadyRegistered,
                rqi,
                "this session already has a MEF client registration",
            );
        }
        let req: ClientRegRequest = match wire::unwrap("mefClientReg", prim.pc.as_ref()) {
            Ok(r) => r,
            Err(e) => return err(Rsc::BadRequest, rqi, e.to_string()),
        };
        if let Some(id) = &req.enrolee_id {
            if id != &self.enrolee_id {
                return err(
                    Rsc::OriginatorHasNoPrivilege,
                    rqi,
                    "enroleeID is not the Enrolee-ID provisioned for this KpmID",
                );
            }
        }
        self.enrolment_expires = now.saturating_add(self.enrolment_secs as i64);
        let max = now
            .saturating_add(cfg.max_registration_secs as i64)
            .min(self.enrolment_expires);
        self.reg_expires = req
            .expiration_time
            .map(|t| t.to_unix().clamp(now, max))
            .unwrap_or(max);
        self.reg_id = format!("mcr-{}", random_hex(rng, 8));
        self.admin_fqdn = Some(req.admin_fqdn);
        self.labels = req.labels;
        self.stage = Stage::Registered;
        self.retrieved = false;
        self.queue_commands(cfg, rng);
        let reg = self.reg_view(cfg);
        ok(Rsc::Created, rqi, wire::wrap("mefClientReg", &reg))
    }

    /// adminFQDN of the registration (set by it: the MEF's own FQDN stands in only before it,
    /// where no view of the registration is given).
    fn admin_fqdn(&self, cfg: &MefConfig) -> Fqdn {
        self.admin_fqdn.clone().unwrap_or_else(|| cfg.fqdn.clone())
    }

    fn reg_view(&self, cfg: &MefConfig) -> ClientReg {
        ClientReg {
            reg_id: self.reg_id.clone(),
            expiration_time: ts(self.reg_expires),
            labels: self.labels.clone(),
            client_id: self.enrolee_id.clone(),
            admin_fqdn: self.admin_fqdn(cfg),
            ke_id: self.ke_id.clone(),
            enrolment_expiry: ts(self.enrolment_expires),
            ibc_enrolment: cfg.ibc,
            key_derivation: cfg.key_derivation(),
            children: vec![ChildRef {
                nm: "cmd".into(),
                typ: TY_MEF_CLIENT_CMD,
                val: format!("{MEF_BASE}/{}/cmd", self.reg_id),
            }],
        }
    }

    fn ibc_enrol(&mut self, cfg: &MefConfig, prim: &RequestPrimitive) -> Output {
        let rqi = &prim.rqi;
        if !cfg.ibc {
            return Output::Reply(err(
                Rsc::OperationNotAllowed,
                rqi,
                "IBC enrolment is not enabled",
            ));
        }
        if self.id2.is_some() {
            // One credential per exchange: a replayed IBC enrolment is refused.
            return Output::Reply(err(
                Rsc::OperationNotAllowed,
                rqi,
                "an IBC credential was already issued in this exchange",
            ));
        }
        if self.commands.len() > 1 {
            // The credential is issued after the MEF Client Commands (§8.3.9) completed: an
            // early (reordered) IBC enrolment is refused and the exchange can go on.
            return Output::Reply(err(
                Rsc::OperationNotAllowed,
                rqi,
                "the MEF Client Commands have not completed",
            ));
        }
        let req: IbcEnrolRequest = match wire::unwrap("ibcEnrol", prim.pc.as_ref()) {
            Ok(r) => r,
            Err(e) => return Output::Reply(err(Rsc::BadRequest, rqi, e.to_string())),
        };
        if req.id1 != self.enrolee_id {
            return Output::Reply(err(
                Rsc::OriginatorHasNoPrivilege,
                rqi,
                "ID1 is not the Enrolee-ID provisioned for this KpmID",
            ));
        }
        let expiry = ts(self.enrolment_expires);
        let id2 = match KdfIdentifier::new(&format!("{}|{}|{}", cfg.fqdn, expiry, req.id1)) {
            Ok(i) => i.as_str().to_string(),
            Err(e) => return Output::Reply(err(Rsc::BadRequest, rqi, format!("ID2: {e}"))),
        };
        self.pending = Some(Pending::Extract {
            rqi: rqi.clone(),
            id2: id2.clone(),
        });
        Output::Effect(Effect::Extract { id2 })
    }

    fn end_exchange(&mut self, cfg: &MefConfig, prim: &RequestPrimitive, now: i64) -> Output {
        let rqi = &prim.rqi;
        let rep: IbcReport = match wire::unwrap("ibcEnrol", prim.pc.as_ref()) {
            Ok(r) => r,
            Err(e) => return Output::Reply(err(Rsc::BadRequest, rqi, e.to_string())),
        };
        if rep.success && cfg.ibc && self.id2.is_none() {
            return Output::Reply(err(
                Rsc::OperationNotAllowed,
                rqi,
                "no IBC credential was issued",
            ));
        }
        if rep.success && self.commands.len() > 1 {
            // §8.3.9: the exchange completes only after the Enrolee has answered every command
            // before NO_MORE_COMMANDS.
            return Output::Reply(err(
                Rsc::OperationNotAllowed,
                rqi,
                "the MEF Client Commands have not completed",
            ));
        }
        self.stage = Stage::Ended;
        if !rep.success {
            tracing::warn!(kpm_id = %self.kpm_id, "Enrolee reported failure: nothing committed");
            return Output::Reply(Handled {
                response: ResponsePrimitive::new(Rsc::Updated, rqi.as_str()),
                close: true,
            });
        }
        self.pending = Some(Pending::Commit { rqi: rqi.clone() });
        Output::Effect(Effect::Commit(Box::new(Commit {
            enrolment: Enrolment {
                kpm_id: self.kpm_id.clone(),
                ke_id: self.ke_id.clone(),
                enrolee_id: self.enrolee_id.clone(),
                reg_id: self.reg_id.clone(),
                id2: self.id2.clone(),
                expires: self.enrolment_expires,
            },
            ke: self.ke.clone(),
            admin_fqdn: self.admin_fqdn(cfg),
            labels: self.labels.clone(),
            reg_expires: self.reg_expires,
            expected_gen: self.gen,
            now,
        })))
    }

    /// The answer to the request that produced the pending effect, given the effect's result.
    pub fn resume(&mut self, result: EffectResult) -> Handled {
        match (self.pending.take(), result) {
            (Some(Pending::Extract { rqi, id2 }), EffectResult::Extracted(r)) => {
                let (keys, kpak) = match r {
                    Ok(k) => *k,
                    Err(e) => {
                        tracing::error!(error = %e, "PKG extraction failed");
                        return err(Rsc::InternalServerError, &rqi, "PKG extraction failed");
                    }
                };
                let cred = IbcCredential {
                    id2: id2.clone(),
                    ssk: keys.ssk.clone(),
                    pvt: keys.pvt.to_hex(),
                    kpak: kpak.to_hex(),
                    expiry: ts(self.enrolment_expires),
                };
                self.id2 = Some(id2);
                ok(Rsc::Created, &rqi, wire::wrap("ibcCred", &cred))
            }
            (Some(Pending::Commit { rqi }), EffectResult::Committed(r)) => match r {
                Ok(CommitOutcome::Committed(_)) => {
                    tracing::info!(kpm_id = %self.kpm_id, ke_id = %self.ke_id, "enrolment committed");
                    let end = EndOfExchange {
                        end_of_enrolment_exchange: true,
                        ke_id: self.ke_id.clone(),
                        enrolment_expiry: ts(self.enrolment_expires),
                    };
                    let mut h = ok(Rsc::Updated, &rqi, wire::wrap("endOfExchange", &end));
                    h.close = true;
                    h
                }
                Ok(CommitOutcome::Superseded) => {
                    tracing::warn!(kpm_id = %self.kpm_id, ke_id = %self.ke_id,
                        "enrolment not committed: another exchange of this device committed (or it de-registered) since this one began");
                    let mut h = err(
                        Rsc::Conflict,
                        &rqi,
                        "another enrolment of this device was committed since this exchange began; nothing was committed, enrol again",
                    );
                    h.close = true;
                    h
                }
                Err(e) => {
                    tracing::error!(error = %e, "MEF store");
                    err(Rsc::InternalServerError, &rqi, "internal error")
                }
            },
            (pending, result) => {
                tracing::error!(?pending, "effect result without its effect");
                drop(result);
                let rqi = match &pending {
                    Some(Pending::Extract { rqi, .. } | Pending::Commit { rqi }) => rqi.as_str(),
                    None => "",
                };
                err(Rsc::InternalServerError, rqi, "internal error")
            }
        }
    }
}
