//! The Enrolee (MEF Client) side of the enrolment (TS-0003 §8.3.2.1, §8.3.4.6, §8.3.9, seed
//! 001) and its local keystore.
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

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use m2msec_bindings::client::HttpClient;
use m2msec_bindings::CoapClient;
use m2msec_core::export::ExporterLabel;
use m2msec_core::ids::{Fqdn, KpmId};
use m2msec_core::kdf::{enrolment_key, usage_constrained_key, KdfIdentifier, SuidEncoding};
use m2msec_core::sec::{CmdArgs, CmdStatusCode};
use m2msec_core::secret::{Ke, Kpm, UsageConstrainedKey};
use m2msec_core::suid::Suid;
use m2msec_core::timestamp::Timestamp;
use m2msec_cse::{Operation, RequestPrimitive, ResponsePrimitive, Rsc};
use m2msec_keystore::{load_or_create_kek, write_secret_file, Sealer};
use m2msec_tls::{ClientConfig, DtlsClient, DtlsOptions, Psk, PskIdentity, TlsClient};

use crate::endpoint::validate_ibc;
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
    pub id1: String,
    /// Enrolment Targets the Enrolee expects (empty: accept what the MEF commands).
    pub targets: Vec<String>,
    /// adminFQDN of the registration.
    pub admin_fqdn: String,
    /// SUID encoding (BRIEF A7).
    pub suid_encoding: SuidEncoding,
}

/// Enrolment failures.
#[derive(Debug, thiserror::Error)]
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
        rsc: u16,
        /// Its debug text.
        detail: String,
    },
    /// A response that does not follow the protocol.
    #[error("MEF {0}")]
    Protocol(String),
    /// Keystore.
    #[error("keystore: {0}")]
    Keystore(String),
}

/// A target key the Enrolee holds (for the CSE it registers with).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TargetKey {
    /// The Enrolment Target's ID.
    pub target_id: String,
    /// SUID of the key.
    pub suid: u8,
    /// The identifier to present (psk_identity): the KeID.
    pub key_id: String,
}

/// Result of an enrolment.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Enrolled {
    /// KeID.
    pub ke_id: String,
    /// The Enrolee-ID the MEF assigned (MEF Client ID).
    pub enrolee_id: String,
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
        rsc: r.rsc.as_u16(),
        detail,
    }
}

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

struct Session {
    http: Channel,
    from: String,
    n: u64,
}

impl Session {
    async fn call(
        &mut self,
        step: &'static str,
        op: Operation,
        to: &str,
        ty: Option<u64>,
        pc: Option<serde_json::Value>,
        expect: Rsc,
    ) -> Result<ResponsePrimitive, EnrolError> {
        self.n += 1;
        let mut req = RequestPrimitive::new(op, to, Some(&self.from), format!("enr-{}", self.n));
        req.ty = ty;
        req.pc = pc;
        let r = self
            .http
            .send(&req)
            .await
            .map_err(|e| EnrolError::Transport(format!("{step}: {e}")))?;
        if r.rsc != expect {
            return Err(refused(step, &r));
        }
        Ok(r)
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
pub async fn enrol_with(
    p: &EnrolParams,
    cfg: ClientConfig,
) -> Result<EnrolmentSecrets, EnrolError> {
    let mef_fqdn: Fqdn = p.kpm_id.fqdn().clone();
    let hs_err = |e: m2msec_tls::Error| {
        EnrolError::Transport(format!(
            "bootstrap handshake with {}:{}: {e}",
            p.host, p.port
        ))
    };
    // TS-0003 §8.3.2.1 step 4, §10.3.1: Ke and KeID from the bootstrap export.
    let (export, http) = match p.transport {
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
    let ek = enrolment_key(&export, &mef_fqdn);
    let mut s = Session {
        http,
        from: p.id1.clone(),
        n: 0,
    };

    // Client Registration (§8.3.5.2.3).
    let req = ClientRegRequest {
        expiration_time: None,
        labels: None,
        admin_fqdn: p.admin_fqdn.clone(),
        enrolee_id: Some(p.id1.clone()),
    };
    let r = s
        .call(
            "client registration",
            Operation::Create,
            MEF_BASE,
            Some(TY_MEF_CLIENT_REG),
            Some(wire::wrap("mefClientReg", &req)),
            Rsc::Created,
        )
        .await?;
    let reg: ClientReg =
        wire::unwrap("mefClientReg", r.pc.as_ref()).map_err(EnrolError::Protocol)?;
    if reg.ke_id != ek.ke_id.to_string() {
        return Err(EnrolError::Protocol(format!(
            "KeID mismatch: MEF {} vs local {}",
            reg.ke_id, ek.ke_id
        )));
    }
    let mut summary = Enrolled {
        ke_id: ek.ke_id.to_string(),
        enrolee_id: reg.client_id.clone(),
        enrolment_expiry: reg.enrolment_expiry,
        reg_id: reg.reg_id.clone(),
        targets: Vec::new(),
        ibc_id: None,
        ibc_expiry: None,
        commands: Vec::new(),
        key_derivation: reg.key_derivation,
    };

    // MEF Client Commands (§8.3.4.6, §8.3.9): Retrieve, execute, Update, until NO_MORE.
    if let Some(cmd_ref) = reg.children.iter().find(|c| c.typ == TY_MEF_CLIENT_CMD) {
        let to = cmd_ref.val.clone();
        let r = s
            .call(
                "command retrieve",
                Operation::Retrieve,
                &to,
                None,
                None,
                Rsc::Ok,
            )
            .await?;
        let mut cmd: ClientCmd =
            wire::unwrap("mefClientCmd", r.pc.as_ref()).map_err(EnrolError::Protocol)?;
        let mut last_id: Option<String> = None;
        for _ in 0..MAX_COMMANDS {
            let parsed = cmd
                .description
                .as_ref()
                .map(m2msec_core::sec::CmdDescription::parse_for_client);
            // §8.3.9.5: parse; repeated cmdID → 40; unsupported class → 41; else execute.
            let (status, class, done) = match parsed {
                None => return Err(EnrolError::Protocol("command without description".into())),
                Some(Err(rej)) => match rej.status_code() {
                    Some(code) => (code, 255, false),
                    None => return Err(EnrolError::Protocol(format!("command: {rej}"))),
                },
                Some(Ok(_)) if last_id.as_deref() == Some(cmd.cmd_id.as_str()) => {
                    (CmdStatusCode::RepeatedCmdId, 255, false)
                }
                Some(Ok(d)) => match d.args() {
                    CmdArgs::NoMore(_) => (CmdStatusCode::Ok, 0, true),
                    CmdArgs::MoNode(m) => {
                        let suid = m
                            .object_type_specific_args()
                            .map(|a| a.suid.value())
                            .unwrap_or(0);
                        match d.target_id() {
                            Some(t) if suid / 10 == 2 => {
                                summary.targets.push(TargetKey {
                                    target_id: t.to_string(),
                                    suid,
                                    key_id: ek.ke_id.to_string(),
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
                // NO_MORE_COMMANDS: no Update (§8.3.9.5); the retry timer is the caller's.
                break;
            }
            let upd = ClientCmd {
                cmd_id: cmd.cmd_id.clone(),
                description: None,
                status: status as u16,
            };
            last_id = Some(cmd.cmd_id.clone());
            let r = s
                .call(
                    "command update",
                    Operation::Update,
                    &to,
                    None,
                    Some(wire::wrap("mefClientCmd", &upd)),
                    Rsc::Updated,
                )
                .await?;
            cmd = wire::unwrap("mefClientCmd", r.pc.as_ref()).map_err(EnrolError::Protocol)?;
        }
    }
    for t in &p.targets {
        if !summary.targets.iter().any(|k| &k.target_id == t) {
            return Err(EnrolError::Protocol(format!(
                "the MEF did not provision a key for target {t}"
            )));
        }
    }

    // IBC credential enrolment (seed 001, BRIEF A32).
    let ibc_to = format!("{MEF_BASE}/{}/ibc", reg.reg_id);
    let mut ibc = None;
    if reg.ibc_enrolment {
        let r = s
            .call(
                "IBC enrolment",
                Operation::Create,
                &ibc_to,
                Some(TY_IBC_ENROL),
                Some(wire::wrap(
                    "ibcEnrol",
                    &IbcEnrolRequest { id1: p.id1.clone() },
                )),
                Rsc::Created,
            )
            .await?;
        let cred: IbcCredential =
            wire::unwrap("ibcCred", r.pc.as_ref()).map_err(EnrolError::Protocol)?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let valid = validate_ibc(&cred, now).is_ok()
            && cred.id2.starts_with(&format!("{mef_fqdn}|"))
            && cred.id2.ends_with(&format!("|{}", p.id1));
        if !valid {
            let _ = s
                .call(
                    "IBC report",
                    Operation::Update,
                    &ibc_to,
                    None,
                    Some(wire::wrap("ibcEnrol", &IbcReport { success: false })),
                    Rsc::Updated,
                )
                .await;
            return Err(EnrolError::Protocol(
                "the IBC credential does not validate (RFC 6507 §5.1.2)".into(),
            ));
        }
        summary.ibc_id = Some(cred.id2.clone());
        summary.ibc_expiry = Some(cred.expiry);
        ibc = Some(cred);
    }
    let r = s
        .call(
            "end of exchange",
            Operation::Update,
            &ibc_to,
            None,
            Some(wire::wrap("ibcEnrol", &IbcReport { success: true })),
            Rsc::Updated,
        )
        .await?;
    let end: EndOfExchange =
        wire::unwrap("endOfExchange", r.pc.as_ref()).map_err(EnrolError::Protocol)?;
    if !end.end_of_enrolment_exchange || end.ke_id != summary.ke_id {
        return Err(EnrolError::Protocol("unexpected end of exchange".into()));
    }
    Ok(EnrolmentSecrets {
        summary,
        ke: ek.ke,
        ibc,
    })
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
/// (0600), written atomically.
#[derive(Debug, Clone)]
pub struct Keystore {
    dir: PathBuf,
}

impl Keystore {
    /// The keystore at `dir` (created, mode 0700, if missing).
    pub fn open(dir: &Path) -> Result<Self, EnrolError> {
        std::fs::create_dir_all(dir).map_err(|e| EnrolError::Keystore(e.to_string()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
        }
        Ok(Keystore {
            dir: dir.to_path_buf(),
        })
    }

    fn sealer(&self) -> Result<Sealer, EnrolError> {
        Ok(Sealer::new(
            load_or_create_kek(&self.dir.join(KEK_FILE))
                .map_err(|e| EnrolError::Keystore(e.to_string()))?,
        ))
    }

    /// Stores an enrolment, replacing the previous one.
    pub fn save(&self, kpm_id: &str, mef: &str, e: &EnrolmentSecrets) -> Result<(), EnrolError> {
        let sealer = self.sealer()?;
        let aad = |what: &str| format!("m2msec-enrolee/{kpm_id}/{what}").into_bytes();
        let ibc = e.ibc.as_ref().map(|c| StoredIbc {
            id2: c.id2.clone(),
            kpak: c.kpak.clone(),
            pvt: c.pvt.clone(),
            expiry: c.expiry,
            ssk_sealed: B64.encode(sealer.seal(&aad("ssk"), c.ssk.as_bytes())),
        });
        let f = KeystoreFile {
            version: 1,
            kpm_id: kpm_id.to_string(),
            mef: mef.to_string(),
            summary: e.summary.clone(),
            ke_sealed: B64.encode(sealer.seal(&aad("ke"), e.ke.expose_secret())),
            ibc,
        };
        let text =
            serde_json::to_vec_pretty(&f).map_err(|e| EnrolError::Keystore(e.to_string()))?;
        write_secret_file(&self.dir.join(KEYSTORE_FILE), &text)
            .map_err(|e| EnrolError::Keystore(e.to_string()))
    }

    /// Loads the stored enrolment: summary, Ke, IBC credential.
    pub fn load(&self) -> Result<(Enrolled, Ke, Option<IbcCredential>), EnrolError> {
        let text = m2msec_keystore::read_secret_file(&self.dir.join(KEYSTORE_FILE))
            .map_err(|e| EnrolError::Keystore(e.to_string()))?;
        let f: KeystoreFile =
            serde_json::from_str(&text).map_err(|e| EnrolError::Keystore(e.to_string()))?;
        let sealer = self.sealer()?;
        let aad = |what: &str| format!("m2msec-enrolee/{}/{what}", f.kpm_id).into_bytes();
        let open = |what: &str, b64: &str| -> Result<Zeroizing<Vec<u8>>, EnrolError> {
            let raw = B64
                .decode(b64)
                .map_err(|e| EnrolError::Keystore(e.to_string()))?;
            sealer
                .open(&aad(what), &raw)
                .map_err(|e| EnrolError::Keystore(e.to_string()))
        };
        let ke = Ke::from_bytes(&open("ke", &f.ke_sealed)?)
            .map_err(|e| EnrolError::Keystore(e.to_string()))?;
        let ibc = match &f.ibc {
            Some(i) => {
                let ssk = open("ssk", &i.ssk_sealed)?;
                Some(IbcCredential {
                    id2: i.id2.clone(),
                    ssk: String::from_utf8_lossy(&ssk).to_string(),
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
    let suid = Suid::new(suid).map_err(|e| EnrolError::Protocol(e.to_string()))?;
    let id = KdfIdentifier::new(target_id).map_err(|e| EnrolError::Protocol(e.to_string()))?;
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
    let suid = Suid::new(target.suid).map_err(|e| EnrolError::Protocol(e.to_string()))?;
    let id =
        KdfIdentifier::new(&target.target_id).map_err(|e| EnrolError::Protocol(e.to_string()))?;
    let k = enrolled.key_derivation.derive(ke, suid, &id);
    Psk::new(&k[..]).map_err(|e| EnrolError::Protocol(e.to_string()))
}
