//! The Enrolee (MEF Client) side of the enrolment (TS-0003 §8.3.2.1, §8.3.4.6, §8.3.9, seed
//! 001) and its local keystore.
//!
//! The exchange is the sans-IO [`Machine`]; [`enrol`] and [`enrol_with`] are its thin tokio
//! driver over HTTP/TLS or CoAP/DTLS.
//!
//! [`enrol`] runs the whole exchange over one TLS-PSK session (psk_identity = KpmID, psk =
//! Kpm, SNI = the MEF's FQDN): exports Ke/KeID, registers, follows the MEF Client Commands
//! (each MO_NODE `[authenticationProfile]` names an Enrolment Target and SUID: the Enrolee
//! derives that target's key by §10.3.7 and reports OK 20; NO_MORE_COMMANDS ends the loop),
//! then runs the IBC credential enrolment (ID1 → (ID2, SSK, PVT, KPAK)), validates the
//! credential (RFC 6507 §5.1.2, embedded expiry), and reports success. The MEF commits and
//! closes. The keystore is written (atomically, 0600, secrets sealed) only after the MEF's
//! end-of-exchange, so an interrupted exchange leaves the previous keystore untouched.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use m2msec_bindings::client::HttpClient;
use m2msec_bindings::CoapClient;
use m2msec_core::eccsi::Ssk;
use m2msec_core::export::ExporterLabel;
use m2msec_core::ids::{EnroleeId, Fqdn, KeId, KpmId, TargetId};
use m2msec_core::kdf::{
    enrolment_key, usage_constrained_key, EnrolmentKey, KdfIdentifier, SuidEncoding,
};
use m2msec_core::sec::{CmdArgs, CmdStatusCode};
use m2msec_core::secret::{Ke, Kpm, UsageConstrainedKey};
use m2msec_core::suid::Suid;
use m2msec_core::timestamp::Timestamp;
use m2msec_keystore::{write_secret_file, Sealer, SecureEnvironment};
use m2msec_proto::{Operation, RequestPrimitive, ResponsePrimitive, Rsc};
use m2msec_tls::{ClientConfig, DtlsClient, DtlsOptions, Psk, PskIdentity, TlsClient};

use crate::clock::Clock;
use crate::ibc::validate_ibc;
use crate::wire::{self, *};

/// Most MEF Client Commands followed in one exchange.
pub const MAX_COMMANDS: usize = 64;

/// How the Enrolee reaches the MEF.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MefTransport {
    /// HTTP (TS-0009) over TLS 1.2.
    #[default]
    Https,
    /// CoAP (TS-0008) over DTLS 1.2.
    Coaps,
}

/// What the Enrolee is configured with (TS-0003 tables 9.2.1.1-1, 9.2.2.1-1).
#[derive(Debug, Clone)]
pub struct EnrolParams {
    /// Binding and secure channel to the MEF.
    pub transport: MefTransport,
    /// MEF host (name or address) and port.
    pub host: String,
    /// Port.
    pub port: u16,
    /// KpmID (`relKeyID@MEF-FQDN`); its FQDN is the MEF's and the SNI.
    pub kpm_id: KpmId,
    /// Kpm.
    pub kpm: Kpm,
    /// ID1: the Enrolee's own AE-ID or CSE-ID.
    pub id1: EnroleeId,
    /// Enrolment Targets the Enrolee expects (empty: accept what the MEF commands).
    pub targets: Vec<TargetId>,
    /// adminFQDN of the registration.
    pub admin_fqdn: Fqdn,
    /// SUID encoding (BRIEF A7).
    pub suid_encoding: SuidEncoding,
}

/// Enrolment failures.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EnrolError {
    /// TLS handshake or transport.
    #[error("{0}")]
    Transport(String),
    /// The MEF answered with an error status.
    #[error("MEF {step}: {rsc} {detail}")]
    Refused {
        /// Which step.
        step: &'static str,
        /// oneM2M status.
        rsc: Rsc,
        /// Its debug text.
        detail: String,
    },
    /// A response that does not follow the protocol.
    #[error("MEF {0}")]
    Protocol(String),
    /// A response whose content does not parse (a malformed identifier, timestamp or key).
    #[error("MEF {0}")]
    Wire(#[source] Arc<crate::wire::WireError>),
    /// Keystore.
    #[error("keystore: {0}")]
    Keystore(#[source] Arc<KeystoreFault>),
    /// A target's SUID out of range (`m2m:suid`).
    #[error("target key: {0}")]
    Suid(#[from] m2msec_core::suid::SuidError),
    /// A target ID that is not a KDF identifier (TS-0003 §10.3).
    #[error("target key: {0}")]
    Kdf(#[from] m2msec_core::kdf::KdfError),
}

/// What went wrong with the Enrolee's keystore (its typed source is kept).
#[derive(Debug, thiserror::Error)]
pub enum KeystoreFault {
    /// Creating the directory.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The KEK file, a secret file, or sealing.
    #[error(transparent)]
    Files(#[from] m2msec_keystore::KeystoreError),
    /// The keystore file is not its JSON.
    #[error("keystore file: {0}")]
    Json(#[from] serde_json::Error),
    /// A sealed record is not base64.
    #[error("sealed record: {0}")]
    Base64(#[from] base64::DecodeError),
    /// A sealed key of the wrong length.
    #[error(transparent)]
    KeyLength(#[from] m2msec_core::secret::SecretLengthError),
    /// The sealed SSK is not 32 bytes of hex in [1, q-1].
    #[error("the sealed SSK is not 32 bytes of hex")]
    Ssk,
}

/// A keystore failure as an [`EnrolError`], its source kept.
fn ks(e: impl Into<KeystoreFault>) -> EnrolError {
    EnrolError::Keystore(Arc::new(e.into()))
}

/// A target key the Enrolee holds (for the CSE it registers with).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TargetKey {
    /// The Enrolment Target's ID.
    pub target_id: TargetId,
    /// SUID of the key.
    pub suid: u8,
    /// The identifier to present (psk_identity): the KeID.
    pub key_id: KeId,
}

/// Result of an enrolment.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Enrolled {
    /// KeID.
    pub ke_id: KeId,
    /// The Enrolee-ID the MEF assigned (MEF Client ID).
    pub enrolee_id: EnroleeId,
    /// Enrolment Expiry.
    pub enrolment_expiry: Timestamp,
    /// MEFClientRegID.
    pub reg_id: String,
    /// Target keys configured by MO_NODE commands.
    pub targets: Vec<TargetKey>,
    /// ID2 of the IBC credential, if one was issued.
    pub ibc_id: Option<String>,
    /// ID2's expiry.
    pub ibc_expiry: Option<Timestamp>,
    /// MEF Client Commands executed (cmdID, class, status).
    pub commands: Vec<(String, u8, u16)>,
    /// How the target keys derive from Ke, as the MEF announced.
    #[serde(default)]
    pub key_derivation: KeyDerivation,
}

/// What the exchange produced, secrets included (written to the keystore, never printed).
#[derive(Debug)]
pub struct EnrolmentSecrets {
    /// Public summary.
    pub summary: Enrolled,
    /// Ke.
    pub ke: Ke,
    /// The IBC credential (SSK in it).
    pub ibc: Option<IbcCredential>,
}

fn refused(step: &'static str, r: &ResponsePrimitive) -> EnrolError {
    let detail =
        r.pc.as_ref()
            .and_then(|p| p.get("m2m:dbg"))
            .and_then(|d| d.as_str())
            .unwrap_or_default()
            .to_string();
    EnrolError::Refused {
        step,
        rsc: r.rsc,
        detail,
    }
}

/// The Enrolee's side of the enrolment exchange as a sans-IO state machine (TS-0003 §8.3.2.1
/// steps 5–16, §8.3.4.6, §8.3.9, seed 001).
///
/// It does no I/O and reads no clock: a driver asks it for the next request
/// ([`Machine::poll_request`]), sends it over whatever binding it runs (HTTP/TLS, CoAP/DTLS,
/// or the in-memory pair of `tests/sim.rs`), and feeds back the response
/// ([`Machine::handle_response`], with the time) or the transport's failure
/// ([`Machine::transport_failed`]). At most one request is outstanding; a response whose `rqi`
/// is not the outstanding request's (a duplicate, a replay, a late one) is ignored. When
/// [`Machine::poll_request`] returns `None` and nothing is outstanding, [`Machine::outcome`]
/// holds the result.
///
/// The exchange: Client Registration (§8.3.5.2.3) → Retrieve the MEF Client Command and
/// Update it with its status until NO_MORE_COMMANDS (§8.3.9.5: a repeated cmdID answers 40, an
/// unsupported class 41; at most [`MAX_COMMANDS`]) → IBC credential enrolment and its
/// validation (RFC 6507 §5.1.2, embedded expiry; an invalid credential is reported as a
/// failure and the exchange fails) → the success report, answered by the MEF's end of
/// exchange carrying our KeID.
pub struct Machine {
    id1: EnroleeId,
    targets: Vec<TargetId>,
    admin_fqdn: Fqdn,
    mef_fqdn: Fqdn,
    ke: Option<Ke>,
    ke_id: KeId,
    state: State,
    n: u64,
    awaiting: Option<(String, &'static str, Rsc)>,
    reg: Option<ClientReg>,
    summary: Option<Enrolled>,
    processed: usize,
    last_cmd_id: Option<String>,
    ibc: Option<IbcCredential>,
    outcome: Option<Result<EnrolmentSecrets, EnrolError>>,
}

impl std::fmt::Debug for Machine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Machine")
            .field("ke_id", &self.ke_id)
            .field("state", &self.state)
            .field("awaiting", &self.awaiting)
            .finish_non_exhaustive()
    }
}

/// The next request the Enrolee sends (or the end).
#[derive(Debug, Clone)]
enum State {
    Register,
    CmdRetrieve {
        to: String,
    },
    CmdUpdate {
        to: String,
        upd: ClientCmd,
    },
    Ibc {
        to: String,
    },
    /// The credential did not validate: report failure, then fail with this error.
    IbcFailed {
        to: String,
        why: String,
    },
    End {
        to: String,
    },
    Done,
}

/// What [`Machine::handle_response`] did with a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fed {
    /// It answered the outstanding request; the machine moved on.
    Accepted,
    /// No request was outstanding, or it answers another one: dropped, nothing changed.
    Ignored,
}

impl Machine {
    /// A machine for `p` after the bootstrap handshake, whose `EXPORTER-oneM2M-Bootstrap`
    /// export gave `ek` (TS-0003 §8.3.2.1 step 4, §10.3.1).
    pub fn new(p: &EnrolParams, ek: EnrolmentKey) -> Self {
        Machine {
            id1: p.id1.clone(),
            targets: p.targets.clone(),
            admin_fqdn: p.admin_fqdn.clone(),
            mef_fqdn: p.kpm_id.fqdn().clone(),
            ke_id: ek.ke_id,
            ke: Some(ek.ke),
            state: State::Register,
            n: 0,
            awaiting: None,
            reg: None,
            summary: None,
            processed: 0,
            last_cmd_id: None,
            ibc: None,
            outcome: None,
        }
    }

    /// Whether the exchange is over ([`Machine::outcome`] is set).
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// The result, once the exchange is over (taken: later calls return `None`).
    pub fn outcome(&mut self) -> Option<Result<EnrolmentSecrets, EnrolError>> {
        self.outcome.take()
    }

    /// The next request to send, if none is outstanding and the exchange is not over.
    pub fn poll_request(&mut self) -> Option<RequestPrimitive> {
        if self.awaiting.is_some() {
            return None;
        }
        let (step, op, to, ty, pc, expect) = match &self.state {
            State::Done => return None,
            State::Register => {
                let req = ClientRegRequest {
                    expiration_time: None,
                    labels: None,
                    admin_fqdn: self.admin_fqdn.clone(),
                    enrolee_id: Some(self.id1.clone()),
                };
                (
                    "client registration",
                    Operation::Create,
                    MEF_BASE.to_string(),
                    Some(TY_MEF_CLIENT_REG),
                    Some(wire::wrap("mefClientReg", &req)),
                    Rsc::Created,
                )
            }
            State::CmdRetrieve { to } => (
                "command retrieve",
                Operation::Retrieve,
                to.clone(),
                None,
                None,
                Rsc::Ok,
            ),
            State::CmdUpdate { to, upd } => (
                "command update",
                Operation::Update,
                to.clone(),
                None,
                Some(wire::wrap("mefClientCmd", upd)),
                Rsc::Updated,
            ),
            State::Ibc { to } => (
                "IBC enrolment",
                Operation::Create,
                to.clone(),
                Some(TY_IBC_ENROL),
                Some(wire::wrap(
                    "ibcEnrol",
                    &IbcEnrolRequest {
                        id1: self.id1.clone(),
                    },
                )),
                Rsc::Created,
            ),
            State::IbcFailed { to, .. } => (
                "IBC report",
                Operation::Update,
                to.clone(),
                None,
                Some(wire::wrap("ibcEnrol", &IbcReport { success: false })),
                Rsc::Updated,
            ),
            State::End { to } => (
                "end of exchange",
                Operation::Update,
                to.clone(),
                None,
                Some(wire::wrap("ibcEnrol", &IbcReport { success: true })),
                Rsc::Updated,
            ),
        };
        self.n += 1;
        let rqi = format!("enr-{}", self.n);
        let fr = self.id1.to_string();
        let mut req = RequestPrimitive::new(op, &to, Some(&fr), rqi.clone());
        req.ty = ty;
        req.pc = pc;
        self.awaiting = Some((rqi, step, expect));
        Some(req)
    }

    fn finish(&mut self, r: Result<EnrolmentSecrets, EnrolError>) {
        self.state = State::Done;
        self.awaiting = None;
        self.outcome = Some(r);
    }

    fn fail(&mut self, e: EnrolError) -> Result<Fed, EnrolError> {
        self.finish(Err(e.clone()));
        Err(e)
    }

    /// The transport could not deliver the outstanding request or its response: the exchange
    /// fails (after a failure report, with the reason of that report).
    pub fn transport_failed(&mut self, e: &dyn std::fmt::Display) {
        let Some((_, step, _)) = self.awaiting.take() else {
            return;
        };
        let err = match &self.state {
            State::IbcFailed { why, .. } => EnrolError::Protocol(why.clone()),
            _ => EnrolError::Transport(format!("{step}: {e}")),
        };
        self.finish(Err(err));
    }

    /// Feeds the response to the outstanding request; `now` (unix seconds) is when the IBC
    /// credential is validated. `Err` when the exchange failed (also kept as the outcome).
    pub fn handle_response(&mut self, r: ResponsePrimitive, now: i64) -> Result<Fed, EnrolError> {
        let Some((rqi, step, expect)) = self.awaiting.clone() else {
            return Ok(Fed::Ignored);
        };
        // A binding may answer without the rqi (e.g. an error it generates itself); with one,
        // it must be the outstanding request's.
        if !r.rqi.is_empty() && r.rqi != rqi {
            return Ok(Fed::Ignored);
        }
        self.awaiting = None;
        if let State::IbcFailed { why, .. } = &self.state {
            // Whatever the MEF answers to the failure report, the exchange failed.
            let e = EnrolError::Protocol(why.clone());
            return self.fail(e);
        }
        if r.rsc != expect {
            return self.fail(refused(step, &r));
        }
        match self.step(r, now) {
            Ok(()) => Ok(Fed::Accepted),
            Err(e) => self.fail(e),
        }
    }

    fn step(&mut self, r: ResponsePrimitive, now: i64) -> Result<(), EnrolError> {
        match std::mem::replace(&mut self.state, State::Done) {
            State::Register => {
                let reg: ClientReg = wire::unwrap("mefClientReg", r.pc.as_ref())
                    .map_err(|e| EnrolError::Wire(Arc::new(e)))?;
                if reg.ke_id != self.ke_id {
                    return Err(EnrolError::Protocol(format!(
                        "KeID mismatch: MEF {} vs local {}",
                        reg.ke_id, self.ke_id
                    )));
                }
                self.summary = Some(Enrolled {
                    ke_id: self.ke_id.clone(),
                    enrolee_id: reg.client_id.clone(),
                    enrolment_expiry: reg.enrolment_expiry,
                    reg_id: reg.reg_id.clone(),
                    targets: Vec::new(),
                    ibc_id: None,
                    ibc_expiry: None,
                    commands: Vec::new(),
                    key_derivation: reg.key_derivation,
                });
                let cmd = reg.children.iter().find(|c| c.typ == TY_MEF_CLIENT_CMD);
                self.state = match cmd {
                    // MEF Client Commands (§8.3.4.6, §8.3.9): Retrieve, execute, Update.
                    Some(c) => State::CmdRetrieve { to: c.val.clone() },
                    None => State::Done,
                };
                self.reg = Some(reg);
                if matches!(self.state, State::Done) {
                    self.after_commands()?;
                }
            }
            State::CmdRetrieve { to } | State::CmdUpdate { to, .. } => {
                let cmd: ClientCmd = wire::unwrap("mefClientCmd", r.pc.as_ref())
                    .map_err(|e| EnrolError::Wire(Arc::new(e)))?;
                self.command(to, cmd)?;
            }
            State::Ibc { to } => {
                let cred: IbcCredential = wire::unwrap("ibcCred", r.pc.as_ref())
                    .map_err(|e| EnrolError::Wire(Arc::new(e)))?;
                let valid = validate_ibc(&cred, now).is_ok()
                    && cred.id2.starts_with(&format!("{}|", self.mef_fqdn))
                    && cred.id2.ends_with(&format!("|{}", self.id1));
                if !valid {
                    self.state = State::IbcFailed {
                        to,
                        why: "the IBC credential does not validate (RFC 6507 §5.1.2)".into(),
                    };
                    return Ok(());
                }
                if let Some(s) = self.summary.as_mut() {
                    s.ibc_id = Some(cred.id2.clone());
                    s.ibc_expiry = Some(cred.expiry);
                }
                self.ibc = Some(cred);
                self.state = State::End { to };
            }
            State::End { .. } => {
                let end: EndOfExchange = wire::unwrap("endOfExchange", r.pc.as_ref())
                    .map_err(|e| EnrolError::Wire(Arc::new(e)))?;
                let (Some(summary), Some(ke)) = (self.summary.take(), self.ke.take()) else {
                    return Err(EnrolError::Protocol("unexpected end of exchange".into()));
                };
                if !end.end_of_enrolment_exchange || end.ke_id != summary.ke_id {
                    return Err(EnrolError::Protocol("unexpected end of exchange".into()));
                }
                let ibc = self.ibc.take();
                self.finish(Ok(EnrolmentSecrets { summary, ke, ibc }));
            }
            State::IbcFailed { .. } | State::Done => {
                return Err(EnrolError::Protocol("response after the exchange".into()))
            }
        }
        Ok(())
    }

    /// One MEF Client Command (§8.3.9.5): parse; repeated cmdID → 40; unsupported class → 41;
    /// else execute. NO_MORE_COMMANDS ends the loop without an Update (the retry timer is the
    /// caller's).
    fn command(&mut self, to: String, cmd: ClientCmd) -> Result<(), EnrolError> {
        if self.processed >= MAX_COMMANDS {
            return self.after_commands();
        }
        self.processed += 1;
        let parsed = cmd
            .description
            .as_ref()
            .map(m2msec_core::sec::CmdDescription::parse_for_client);
        let ke_id = self.ke_id.clone();
        let summary = self
            .summary
            .as_mut()
            .ok_or_else(|| EnrolError::Protocol("command before registration".into()))?;
        let (status, class, done) = match parsed {
            None => return Err(EnrolError::Protocol("command without description".into())),
            Some(Err(rej)) => match rej.status_code() {
                Some(code) => (code, 255, false),
                None => return Err(EnrolError::Protocol(format!("command: {rej}"))),
            },
            Some(Ok(_)) if self.last_cmd_id.as_deref() == Some(cmd.cmd_id.as_str()) => {
                (CmdStatusCode::RepeatedCmdId, 255, false)
            }
            Some(Ok(d)) => match d.args() {
                CmdArgs::NoMore(_) => (CmdStatusCode::Ok, 0, true),
                CmdArgs::MoNode(m) => {
                    let suid = m
                        .object_type_specific_args()
                        .map(|a| a.suid.value())
                        .unwrap_or(0);
                    // The target must be an absolute CSE-ID/AE-ID or an FQDN (TargetId): any
                    // other m2m:ID is an unacceptable argument (§8.3.9.5).
                    match d.target_id().map(|t| t.as_str().parse::<TargetId>()) {
                        Some(Ok(t)) if suid / 10 == 2 => {
                            summary.targets.push(TargetKey {
                                target_id: t,
                                suid,
                                key_id: ke_id,
                            });
                            (CmdStatusCode::Ok, 3, false)
                        }
                        _ => (CmdStatusCode::MoNodeUnacceptableArgs, 3, false),
                    }
                }
                _ => (CmdStatusCode::ClassNotSupported, 255, false),
            },
        };
        summary
            .commands
            .push((cmd.cmd_id.clone(), class, status as u16));
        if done {
            return self.after_commands();
        }
        self.last_cmd_id = Some(cmd.cmd_id.clone());
        self.state = State::CmdUpdate {
            to,
            upd: ClientCmd {
                cmd_id: cmd.cmd_id,
                description: None,
                status: status as u16,
            },
        };
        Ok(())
    }

    /// Every expected target provisioned; then the IBC enrolment (seed 001, BRIEF A32) or the
    /// success report.
    fn after_commands(&mut self) -> Result<(), EnrolError> {
        let (Some(summary), Some(reg)) = (&self.summary, &self.reg) else {
            return Err(EnrolError::Protocol("no registration".into()));
        };
        for t in &self.targets {
            if !summary.targets.iter().any(|k| &k.target_id == t) {
                return Err(EnrolError::Protocol(format!(
                    "the MEF did not provision a key for target {t}"
                )));
            }
        }
        let to = format!("{MEF_BASE}/{}/ibc", reg.reg_id);
        self.state = if reg.ibc_enrolment {
            State::Ibc { to }
        } else {
            State::End { to }
        };
        Ok(())
    }
}

/// A channel the tokio driver sends request primitives over.
enum Channel {
    Http(HttpClient),
    Coap(Box<CoapClient>),
}

impl Channel {
    async fn send(&mut self, req: &RequestPrimitive) -> Result<ResponsePrimitive, String> {
        match self {
            Channel::Http(h) => h.send(req).await.map_err(|e| e.to_string()),
            Channel::Coap(c) => c.request(req, &[]).await.map_err(|e| e.to_string()),
        }
    }
}

/// Runs the enrolment exchange of the Pre-Provisioned Symmetric Key RSPF (TS-0003 §8.3.2.1):
/// the bootstrap handshake with psk_identity = KpmID and psk = Kpm; returns what to store.
pub async fn enrol(p: &EnrolParams) -> Result<EnrolmentSecrets, EnrolError> {
    let identity = PskIdentity::new(&p.kpm_id.to_string())
        .map_err(|e| EnrolError::Transport(format!("KpmID: {e}")))?;
    let psk = Psk::new(p.kpm.expose_secret()).map_err(|e| EnrolError::Transport(e.to_string()))?;
    enrol_with(p, ClientConfig::psk(identity, psk)).await
}

/// Runs the exchange over a bootstrap handshake configured by `cfg`: e.g. the Certificate-Based
/// RSPF (TS-0003 §8.3.2.2), where the Enrolee and the MEF authenticate each other with
/// certificates (`ClientConfig::certificate` expecting the MEF's FQDN). The MEF's FQDN is the
/// FQDN of `p.kpm_id`; `p.kpm` is not used.
///
/// The driver of [`Machine`]: the handshake, then one request at a time over HTTP/TLS or
/// CoAP/DTLS until the machine is done.
pub async fn enrol_with(
    p: &EnrolParams,
    cfg: ClientConfig,
) -> Result<EnrolmentSecrets, EnrolError> {
    enrol_with_clock(p, cfg, &Clock::system()).await
}

/// [`enrol_with`] reading the time (the IBC credential's validation) from `clock`.
pub async fn enrol_with_clock(
    p: &EnrolParams,
    cfg: ClientConfig,
    clock: &Clock,
) -> Result<EnrolmentSecrets, EnrolError> {
    let mef_fqdn: Fqdn = p.kpm_id.fqdn().clone();
    let hs_err = |e: m2msec_tls::Error| {
        EnrolError::Transport(format!(
            "bootstrap handshake with {}:{}: {e}",
            p.host, p.port
        ))
    };
    // TS-0003 §8.3.2.1 step 4, §10.3.1: Ke and KeID from the bootstrap export.
    let (export, mut channel) = match p.transport {
        MefTransport::Https => {
            let client = TlsClient::new(cfg).map_err(hs_err)?;
            let ch = client
                .connect(&p.host, p.port, Some(mef_fqdn.as_str()))
                .await
                .map_err(hs_err)?;
            let export = ch.export(ExporterLabel::Bootstrap).map_err(hs_err)?;
            let http = HttpClient::new(ch, mef_fqdn.as_str())
                .await
                .map_err(|e| EnrolError::Transport(e.to_string()))?;
            (export, Channel::Http(http))
        }
        MefTransport::Coaps => {
            let client = DtlsClient::new(cfg, DtlsOptions::default()).map_err(hs_err)?;
            let session = client
                .connect(&p.host, p.port, Some(mef_fqdn.as_str()))
                .await
                .map_err(hs_err)?;
            let export = session.export(ExporterLabel::Bootstrap).map_err(hs_err)?;
            (export, Channel::Coap(Box::new(CoapClient::new(session))))
        }
    };
    let mut m = Machine::new(p, enrolment_key(&export, &mef_fqdn));
    while let Some(req) = m.poll_request() {
        match channel.send(&req).await {
            Ok(r) => {
                // One request at a time on one channel: a response to another request means
                // the channel is broken.
                if let Ok(Fed::Ignored) = m.handle_response(r, clock.now()) {
                    m.transport_failed(&"a response to another request");
                }
            }
            Err(e) => m.transport_failed(&e),
        }
    }
    m.outcome()
        .unwrap_or_else(|| Err(EnrolError::Protocol("the exchange did not end".into())))
}

// ----- the Enrolee's keystore ---------------------------------------------------------------

/// Keystore file name.
pub const KEYSTORE_FILE: &str = "keystore.json";
/// KEK file name.
pub const KEK_FILE: &str = "kek";

#[derive(Serialize, Deserialize)]
struct StoredIbc {
    id2: String,
    kpak: String,
    pvt: String,
    expiry: Timestamp,
    ssk_sealed: String,
}

#[derive(Serialize, Deserialize)]
struct KeystoreFile {
    version: u32,
    kpm_id: String,
    mef: String,
    summary: Enrolled,
    ke_sealed: String,
    ibc: Option<StoredIbc>,
}

/// The Enrolee's keystore directory: `keystore.json` (0600) with secrets sealed under `kek`
/// (0600), or inside a PKCS#11 token under its AES key [`KEK_LABEL`]
/// ([`Keystore::open_in`]), written atomically.
#[derive(Debug, Clone)]
pub struct Keystore {
    dir: PathBuf,
    se: SecureEnvironment,
}

/// `CKA_LABEL` of the device keystore's KEK in a PKCS#11 token.
pub const KEK_LABEL: &str = "m2msec/enrolee/kek";

impl Keystore {
    /// The keystore at `dir` (created, mode 0700, if missing), sealed under the KEK file.
    pub fn open(dir: &Path) -> Result<Self, EnrolError> {
        Self::open_in(dir, &SecureEnvironment::Files)
    }

    /// The keystore at `dir` with its secrets sealed in the secure environment `se`
    /// (TS-0003 §6.3.1).
    pub fn open_in(dir: &Path, se: &SecureEnvironment) -> Result<Self, EnrolError> {
        std::fs::create_dir_all(dir).map_err(ks)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
        }
        Ok(Keystore {
            dir: dir.to_path_buf(),
            se: se.clone(),
        })
    }

    /// The sealer; `create`: the key may be created (saving), else it must exist (loading).
    fn sealer(&self, create: bool) -> Result<Sealer, EnrolError> {
        let kek = self.dir.join(KEK_FILE);
        if create {
            self.se.sealer(&kek, KEK_LABEL).map_err(ks)
        } else {
            self.se.existing_sealer(&kek, KEK_LABEL).map_err(ks)
        }
    }

    /// Stores an enrolment, replacing the previous one.
    pub fn save(&self, kpm_id: &str, mef: &str, e: &EnrolmentSecrets) -> Result<(), EnrolError> {
        let sealer = self.sealer(true)?;
        let aad = |what: &str| format!("m2msec-enrolee/{kpm_id}/{what}").into_bytes();
        let ibc = match &e.ibc {
            Some(c) => Some(StoredIbc {
                id2: c.id2.clone(),
                kpak: c.kpak.clone(),
                pvt: c.pvt.clone(),
                expiry: c.expiry,
                // The sealed plaintext is the SSK's hex text (keystore version 1).
                ssk_sealed: B64.encode(
                    sealer
                        .seal(&aad("ssk"), c.ssk.to_hex().as_bytes())
                        .map_err(ks)?,
                ),
            }),
            None => None,
        };
        let f = KeystoreFile {
            version: 1,
            kpm_id: kpm_id.to_string(),
            mef: mef.to_string(),
            summary: e.summary.clone(),
            ke_sealed: B64.encode(sealer.seal(&aad("ke"), e.ke.expose_secret()).map_err(ks)?),
            ibc,
        };
        let text = serde_json::to_vec_pretty(&f).map_err(ks)?;
        write_secret_file(&self.dir.join(KEYSTORE_FILE), &text).map_err(ks)
    }

    /// Loads the stored enrolment: summary, Ke, IBC credential.
    pub fn load(&self) -> Result<(Enrolled, Ke, Option<IbcCredential>), EnrolError> {
        let text = m2msec_keystore::read_secret_file(&self.dir.join(KEYSTORE_FILE)).map_err(ks)?;
        let f: KeystoreFile = serde_json::from_str(&text).map_err(ks)?;
        let sealer = self.sealer(false)?;
        let aad = |what: &str| format!("m2msec-enrolee/{}/{what}", f.kpm_id).into_bytes();
        let open = |what: &str, b64: &str| -> Result<Zeroizing<Vec<u8>>, EnrolError> {
            let raw = B64.decode(b64).map_err(ks)?;
            sealer.open(&aad(what), &raw).map_err(ks)
        };
        let ke = Ke::from_bytes(&open("ke", &f.ke_sealed)?).map_err(ks)?;
        let ibc = match &f.ibc {
            Some(i) => {
                let ssk_hex = open("ssk", &i.ssk_sealed)?;
                let ssk = std::str::from_utf8(&ssk_hex)
                    .ok()
                    .and_then(|h| Ssk::from_hex(h).ok())
                    .ok_or_else(|| ks(KeystoreFault::Ssk))?;
                Some(IbcCredential {
                    id2: i.id2.clone(),
                    ssk,
                    pvt: i.pvt.clone(),
                    kpak: i.kpak.clone(),
                    expiry: i.expiry,
                })
            }
            None => None,
        };
        Ok((f.summary, ke, ibc))
    }
}

/// The key an enrolled device uses with an Enrolment Target (TS-0003 §10.3.7, SUID-bound):
/// HMAC-SHA-256(Ke, label ‖ SUID ‖ target ID); its psk_identity is the KeID.
pub fn target_key(
    ke: &Ke,
    suid: u8,
    target_id: &str,
    encoding: SuidEncoding,
) -> Result<UsageConstrainedKey, EnrolError> {
    let suid = Suid::new(suid)?;
    let id = KdfIdentifier::new(target_id)?;
    Ok(usage_constrained_key(ke, suid, &id, encoding))
}

/// [`target_key`] as a TLS PSK.
pub fn target_psk(
    ke: &Ke,
    suid: u8,
    target_id: &str,
    encoding: SuidEncoding,
) -> Result<Psk, EnrolError> {
    let k = target_key(ke, suid, target_id, encoding)?;
    Psk::new(k.expose_secret()).map_err(|e| EnrolError::Protocol(e.to_string()))
}

/// The PSK for `target` by the derivation the MEF announced at enrolment (BRIEF A9, A7).
pub fn enrolled_target_psk(
    enrolled: &Enrolled,
    ke: &Ke,
    target: &TargetKey,
) -> Result<Psk, EnrolError> {
    let suid = Suid::new(target.suid)?;
    let id = KdfIdentifier::new(&target.target_id.to_string())?;
    let k = enrolled.key_derivation.derive(ke, suid, &id);
    Psk::new(k.expose_secret()).map_err(|e| EnrolError::Protocol(e.to_string()))
}
