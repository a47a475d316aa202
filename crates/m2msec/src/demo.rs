//! `m2msec demo [--devices N] [--json]`: the whole enrolment story in one process on loopback,
//! on embedded stores in a temporary directory:
//!
//! 1. start the MEF with its PKG (TS-0003 §8.3, seed 001), an IN-CSE whose unknown KeIDs
//!    are retrieved from that MEF (§8.3.2.1 step 6), and an MN-CSE registered with the IN-CSE
//!    over TLS-PSK (a key the demo provisions at both, bound at the IN-CSE to the MN's CSE-ID,
//!    TS-0003 §8.2.1); the IN-CSE's administrator opens a container `viamn` to the MN-CSE's AEs;
//! 2. provision N devices at the MEF (KpmID, Kpm, Enrolee-ID, Enrolment Target = the IN-CSE);
//! 3. enrol each device (bootstrap TLS-PSK with Kpm, Ke/KeID export, MEF Client Commands, IBC
//!    credential) and store its keystore;
//! 4. register each device's AE at the IN-CSE over TLS-PSK with psk_identity = KeID and the
//!    §10.3.7 key: the CSE fetches the key from the MEF during the handshake; a third of the
//!    devices (at least one) register at the MN-CSE instead, with a PSK the demo provisions
//!    there (the MN-CSE is no Enrolment Target);
//! 5. write a container and a contentInstance as each AE; those at the MN-CSE write into the
//!    IN-CSE's `viamn` through the MN-CSE (SP-relative `/cse-in/cb/...`, forwarded with `From`
//!    preserved, TS-0004 §7.3.2.6), and the IN-CSE's administrator reads each write back there
//!    (step `forward_via_mn`);
//! 6. have two devices sign with their IBC credentials and verify each other (RFC 6507).
//!
//! It prints per-step counts and times and exits 0 only if every step succeeded.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use rand_core::{OsRng, RngCore};
use serde_json::{json, Value};

use m2msec_bindings::client::HttpClient;
use m2msec_bindings::Limits;
use m2msec_core::eccsi::{verify, Kpak};
use m2msec_core::ids::{CseId, SpId};
use m2msec_core::kdf::SuidEncoding;
use m2msec_core::secret::Kpm;
use m2msec_cse::{
    BoundIdentity, CseBasePolicy, CseConfig, CseType, Operation, RequestPrimitive, Rsc,
};
use m2msec_cse_service::config::{CseServiceConfig, RegistrarConfig};
use m2msec_cse_service::mef_source::{MefKeySource, MefLink};
use m2msec_cse_service::registrar::CseAddress;
use m2msec_cse_service::{PskCredential, ServerOptions};
use m2msec_mef::config::MefServiceConfig;
use m2msec_mef::enrolee::{enrol, target_psk, EnrolParams, EnrolmentSecrets, Keystore};
use m2msec_mef::ibc::validate_ibc;
use m2msec_mef::{Device, MefConfig, TargetClient};
use m2msec_tls::{ClientConfig, Psk, PskIdentity, TlsClient};

use crate::error::CliError;

const SP: &str = "demo.m2msec";
const MEF_FQDN: &str = "mef.demo.m2msec";
const CSE_ABS: &str = "//demo.m2msec/cse-in";
const MAX_DEVICES: usize = 100_000;
/// The MN-CSE between some devices and the IN-CSE, and its identity at the IN-CSE.
const MN_ID: &str = "/cse-mn";
const MN_PSK_ID: &str = "mn@demo.m2msec";
/// The IN-CSE's administrator (TLS-PSK bound to this AE-ID) and the container it opens to the
/// MN-CSE's AEs.
const ADMIN: &str = "Cadmin";
const ADMIN_PSK_ID: &str = "admin@demo.m2msec";
const VIA_MN: &str = "viamn";

/// `m2msec demo`.
#[derive(Args)]
pub struct DemoArgs {
    /// How many devices to provision, enrol and register.
    #[arg(long, default_value_t = 10)]
    devices: usize,
    /// Print the summary as one JSON object.
    #[arg(long)]
    json: bool,
}

/// One step of the demo. `id` is stable (snake_case) so that scripts can find a step; `name` is
/// for people and may change.
struct Step {
    id: &'static str,
    name: &'static str,
    ok: usize,
    failed: usize,
    elapsed: Duration,
}

impl Step {
    fn json(&self) -> Value {
        json!({"id": self.id, "step": self.name, "ok": self.ok, "failed": self.failed,
               "ms": (self.elapsed.as_secs_f64() * 1000.0 * 10.0).round() / 10.0})
    }
}

struct DeviceRun {
    /// The CSE the AE registers at (the IN-CSE, or the MN-CSE for [`mn_devices`]).
    cse: &'static str,
    ae_id: Option<String>,
    ke_id: Option<m2msec_core::ids::KeId>,
    ibc_id: Option<String>,
    registered: bool,
    wrote: bool,
    error: Option<String>,
    secrets: Option<EnrolmentSecrets>,
}

fn err_detail(r: &m2msec_cse::ResponsePrimitive) -> String {
    format!(
        "{} {}",
        r.rsc.as_u16(),
        r.pc.as_ref()
            .and_then(|p| p.get("m2m:dbg"))
            .and_then(Value::as_str)
            .unwrap_or_default()
    )
}

/// How many of `n` devices register at the MN-CSE (the last ones): a third, at least one when
/// there are two or more devices, none for one.
fn mn_devices(n: usize) -> usize {
    if n >= 2 {
        (n / 3).max(1)
    } else {
        0
    }
}

/// A random 32-byte PSK.
fn random_psk() -> Result<Psk, CliError> {
    let mut k = zeroize::Zeroizing::new([0u8; 32]);
    OsRng.fill_bytes(k.as_mut());
    Psk::new(k.as_ref()).map_err(CliError::other)
}

/// A PSK credential (TS-0003 §8.2.2.1) as a `[[psk]]` entry makes it.
fn psk_credential(
    identity: &str,
    key: &Psk,
    bound: Option<BoundIdentity>,
) -> Result<PskCredential, CliError> {
    Ok(PskCredential {
        psk_identity: PskIdentity::new(identity).map_err(CliError::other)?,
        kpsa_id: identity.parse().map_err(CliError::other)?,
        key: key.clone(),
        bound,
    })
}

/// An HTTP client over TLS-PSK to a CSE on loopback.
async fn psk_http(port: u16, identity: &str, key: &Psk) -> Result<HttpClient, String> {
    let id = PskIdentity::new(identity).map_err(|e| e.to_string())?;
    let client = TlsClient::new(ClientConfig::psk(id, key.clone())).map_err(|e| e.to_string())?;
    let ch = client
        .connect("127.0.0.1", port, None)
        .await
        .map_err(|e| format!("CSE handshake: {e}"))?;
    HttpClient::new(ch, "127.0.0.1")
        .await
        .map_err(|e| e.to_string())
}

/// The IN-CSE's administrator opens the container [`VIA_MN`] to the MN-CSE's AEs: an ACP with
/// `acor` `/cse-mn/C*` (without `acaf`: a forwarded request is never authenticated end to end,
/// `rq_authn` FALSE, TS-0003 §7.1.2) and itself. Returns the ACP's `ri`, which the devices put
/// in their containers' `acpi` (a container without `acpi` gives only its creator access, and
/// only with `rq_authn` TRUE, TS-0001 §10.2.3.1).
async fn open_via_mn(in_port: u16, admin_psk: &Psk) -> Result<String, String> {
    let mut http = psk_http(in_port, ADMIN_PSK_ID, admin_psk).await?;
    let mut req = RequestPrimitive::new(Operation::Create, "cb", Some(ADMIN), "a1");
    req.ty = Some(1);
    req.pc = Some(json!({"m2m:acp": {"rn": "acpMn",
        "pv": {"acr": [{"acor": [format!("{MN_ID}/C*")], "acop": 63}, {"acor": [ADMIN], "acop": 63}]},
        "pvs": {"acr": [{"acor": [ADMIN], "acop": 63}]}}}));
    let r = http.send(&req).await.map_err(|e| e.to_string())?;
    if r.rsc != Rsc::Created {
        return Err(format!("ACP CREATE: {}", err_detail(&r)));
    }
    let acp =
        r.pc.as_ref()
            .and_then(|p| p["m2m:acp"]["ri"].as_str())
            .ok_or("ACP CREATE: no ri")?
            .to_string();
    let mut req = RequestPrimitive::new(Operation::Create, "cb", Some(ADMIN), "a2");
    req.ty = Some(3);
    req.pc = Some(json!({"m2m:cnt": {"rn": VIA_MN, "acpi": [acp]}}));
    let r = http.send(&req).await.map_err(|e| e.to_string())?;
    if r.rsc != Rsc::Created {
        return Err(format!("container CREATE: {}", err_detail(&r)));
    }
    Ok(acp)
}

/// Runs `m2msec demo`.
pub fn run(a: DemoArgs) -> Result<ExitCode, CliError> {
    if a.devices < 2 || a.devices > MAX_DEVICES {
        return Err(CliError::arg(
            "--devices",
            format!("must be 2..{MAX_DEVICES} (two devices verify each other)"),
        ));
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(CliError::other)?;
    let (summary, all_ok) = rt.block_on(demo(a.devices))?;
    if a.json {
        println!("{summary}");
    } else {
        print_human(&summary);
    }
    Ok(if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn print_human(s: &Value) {
    println!(
        "m2msec demo: {} devices on loopback",
        s["devices"].as_array().map_or(0, Vec::len)
    );
    println!(
        "  MEF  https://{} ({MEF_FQDN}, PKG in-process)",
        s["mef"].as_str().unwrap_or("?")
    );
    println!(
        "  CSE  https://{} ({CSE_ABS})",
        s["cse"].as_str().unwrap_or("?")
    );
    println!(
        "  MN   https://{} ({MN_ID}, registered with the IN-CSE)",
        s["mn_cse"].as_str().unwrap_or("?")
    );
    if let Some(e) = s["mn_error"].as_str() {
        println!("  MN-CSE: {e}");
    }
    for st in s["steps"].as_array().into_iter().flatten() {
        println!(
            "  {:<34} ok {:>6}  failed {:>4}  {:>9.1} ms",
            st["step"].as_str().unwrap_or(""),
            st["ok"],
            st["failed"],
            st["ms"].as_f64().unwrap_or(0.0)
        );
    }
    if let Some(d) = s["devices"].as_array().and_then(|d| d.first()) {
        println!("  first device: ae_id {} ke_id {}", d["ae_id"], d["ke_id"]);
        println!("                ibc_id {}", d["ibc_id"]);
    }
    println!(
        "  result: {}",
        if s["ok"].as_bool() == Some(true) {
            "every step succeeded"
        } else {
            "FAILED"
        }
    );
}

async fn demo(n: usize) -> Result<(Value, bool), CliError> {
    let tmp = tempfile::tempdir().map_err(CliError::other)?;
    let mef_dir = tmp.path().join("mef");
    let cse_dir = tmp.path().join("cse");
    let mn_dir = tmp.path().join("mn-cse");
    let mut steps = Vec::new();
    // The last `mn_count` devices register at the MN-CSE.
    let mn_count = mn_devices(n);
    let mn_from = n - mn_count;

    // 1. Services.
    let t = Instant::now();
    let mut cse_key = [0u8; 32];
    OsRng.fill_bytes(&mut cse_key);
    let cse_psk = Psk::new(&cse_key).map_err(CliError::other)?;
    let cse_identity = PskIdentity::new(&format!("cse-in@{MEF_FQDN}")).map_err(CliError::other)?;
    let loopback = || "127.0.0.1:0".parse().expect("literal address");
    let (mn_psk, admin_psk) = (random_psk()?, random_psk()?);
    // The MN-CSE's devices: a PSK each, provisioned at the MN-CSE without IdA (the first
    // `<AE>` CREATE binds the AE-ID, TS-0003 §8.2.1).
    let mut mn_keys = Vec::with_capacity(mn_count);
    for i in mn_from..n {
        mn_keys.push((format!("dev{i:05}@demo.m2msec"), random_psk()?));
    }
    // The same start functions as `m2msec mef serve` and `m2msec cse serve`, with the
    // configurations built here instead of read from files.
    let mef = m2msec_mef::service::start_mef(MefServiceConfig {
        mef: MefConfig {
            fqdn: MEF_FQDN.parse().map_err(CliError::other)?,
            ibc: true,
            retry_duration: "PT1H".parse().map_err(CliError::other)?,
            suid_encoding: SuidEncoding::AsciiDecimal,
            max_registration_secs: 86_400,
            legacy_derivation: false,
        },
        certificates: None,
        secure_environment: m2msec_keystore::SecureEnvironment::Files,
        data_dir: mef_dir.clone(),
        addr: loopback(),
        coap_addr: None,
        coap_half_open: (0, 0),
        targets: vec![TargetClient {
            psk_identity: cse_identity.clone(),
            key: cse_psk.clone(),
            client_id: CSE_ABS.parse().map_err(CliError::other)?,
        }],
        default_enrolment_secs: 86_400,
        pkg: None,
    })
    .await
    .map_err(CliError::other)?;
    let mef_ep = mef.endpoint.clone();
    let mef_addr = mef.tls_addr.ok_or_else(|| CliError::other("MEF address"))?;

    let source = MefKeySource::new(MefLink {
        host: "127.0.0.1".into(),
        port: mef_addr.port(),
        fqdn: MEF_FQDN.parse().map_err(CliError::other)?,
        psk_identity: cse_identity,
        psk: cse_psk,
        cse_id: CSE_ABS.parse().map_err(CliError::other)?,
        suid: m2msec_mef::endpoint::TARGET_SUID,
        timeout: Duration::from_secs(5),
        poll_interval: m2msec_cse_service::mef_source::DEFAULT_POLL_INTERVAL,
        limits: m2msec_cse_service::mef_source::FetchLimits::default(),
    })
    .map_err(CliError::other)?;
    let cse = m2msec_cse_service::start(CseServiceConfig {
        engine: CseConfig {
            sp: SP.parse::<SpId>().map_err(CliError::other)?,
            cse_id: "/cse-in".parse::<CseId>().map_err(CliError::other)?,
            cb_rn: "cb".into(),
            cse_type: CseType::In,
            poa: vec![],
        },
        cse_base: CseBasePolicy {
            admin: Some(ADMIN.into()),
            ..CseBasePolicy::default()
        },
        storage: m2msec_cse::Limits::default(),
        data_dir: cse_dir.clone(),
        server: ServerOptions {
            tls_addr: loopback(),
            authority: None,
            require_sni: false,
            // As `[[psk]]` entries: the MN-CSE's key bound to its CSE-ID (`registree = "cse"`)
            // and the administrator's bound to its AE-ID.
            credentials: vec![
                psk_credential(
                    MN_PSK_ID,
                    &mn_psk,
                    Some(BoundIdentity::Cse(MN_ID.parse().map_err(CliError::other)?)),
                )?,
                psk_credential(
                    ADMIN_PSK_ID,
                    &admin_psk,
                    Some(BoundIdentity::Ae(vec![ADMIN
                        .parse()
                        .map_err(CliError::other)?])),
                )?,
            ],
            plain_addr: None,
            limits: Limits::default(),
        },
        coap_addr: None,
        coap_half_open: (0, 0),
        certificates: None,
        mef: Some(source),
        raw_keys: Vec::new(),
        secure_environment: Default::default(),
        registrar: None,
        registrees: Vec::new(),
    })
    .await
    .map_err(CliError::other)?;
    let cse_addr = cse
        .listening
        .tls_addr
        .ok_or_else(|| CliError::other("CSE address"))?;
    let mut mn = m2msec_cse_service::start(CseServiceConfig {
        engine: CseConfig {
            sp: SP.parse::<SpId>().map_err(CliError::other)?,
            cse_id: MN_ID.parse::<CseId>().map_err(CliError::other)?,
            cb_rn: "cb".into(),
            cse_type: CseType::Mn,
            poa: vec![],
        },
        cse_base: CseBasePolicy::default(),
        storage: m2msec_cse::Limits::default(),
        data_dir: mn_dir,
        server: ServerOptions {
            tls_addr: loopback(),
            authority: None,
            require_sni: false,
            credentials: mn_keys
                .iter()
                .map(|(id, k)| psk_credential(id, k, None))
                .collect::<Result<_, _>>()?,
            plain_addr: None,
            limits: Limits::default(),
        },
        coap_addr: None,
        coap_half_open: (0, 0),
        certificates: None,
        mef: None,
        raw_keys: Vec::new(),
        secure_environment: Default::default(),
        registrar: Some(RegistrarConfig {
            cse_id: "/cse-in".parse().map_err(CliError::other)?,
            addr: CseAddress {
                host: "127.0.0.1".into(),
                port: cse_addr.port(),
                sni: None,
            },
            psk_identity: PskIdentity::new(MN_PSK_ID).map_err(CliError::other)?,
            key: mn_psk,
            timeout: Duration::from_secs(5),
            backoff_max_secs: 1,
            check_interval_secs: 0,
        }),
        registrees: Vec::new(),
    })
    .await
    .map_err(CliError::other)?;
    let mn_addr = mn
        .listening
        .tls_addr
        .ok_or_else(|| CliError::other("MN-CSE address"))?;
    // Registered with the IN-CSE (bounded wait), then the IN-CSE's administrator opens a
    // container to the MN-CSE's AEs.
    let mut mn_error = None;
    let registered = match mn.registered.take() {
        Some(rx) => matches!(
            tokio::time::timeout(Duration::from_secs(10), rx).await,
            Ok(Ok(_))
        ),
        None => false,
    };
    let acp = if registered {
        match open_via_mn(cse_addr.port(), &admin_psk).await {
            Ok(acp) => Some(acp),
            Err(e) => {
                mn_error = Some(format!("IN-CSE administrator: {e}"));
                None
            }
        }
    } else {
        mn_error = Some("the MN-CSE did not register with the IN-CSE within 10 s".into());
        None
    };
    steps.push(Step {
        id: "start",
        name: "start MEF+PKG, IN-CSE, MN-CSE",
        ok: 2 + usize::from(acp.is_some()),
        failed: usize::from(acp.is_none()),
        elapsed: t.elapsed(),
    });

    // 2. Provision.
    let t = Instant::now();
    let mut kpms = Vec::with_capacity(n);
    let mut rows = Vec::with_capacity(n);
    for i in 0..n {
        let mut k = [0u8; 32];
        OsRng.fill_bytes(&mut k);
        let kpm = Kpm::from_bytes(&k).map_err(CliError::other)?;
        rows.push((
            Device {
                kpm_id: format!("dev{i:05}@{MEF_FQDN}"),
                enrolee_id: format!("Cdemo{i:05}").parse().map_err(CliError::other)?,
                targets: vec![CSE_ABS.parse().map_err(CliError::other)?],
                enrolment_secs: 86_400,
                created: 0,
                revoked: None,
            },
            kpm.clone(),
        ));
        kpms.push(kpm);
    }
    let mut provisioned = 0;
    for chunk in rows.chunks(1000) {
        let out = mef_ep
            .with_store(|s| s.add_devices(chunk))
            .map_err(CliError::other)?;
        provisioned += out.len();
    }
    steps.push(Step {
        id: "provision",
        name: "provision devices",
        ok: provisioned,
        failed: n - provisioned,
        elapsed: t.elapsed(),
    });

    // 3. Enrol.
    let t = Instant::now();
    let mut runs: Vec<DeviceRun> = Vec::with_capacity(n);
    let ks_root = tmp.path().join("devices");
    for (i, kpm) in kpms.iter().enumerate() {
        let kpm_id = format!("dev{i:05}@{MEF_FQDN}");
        let p = EnrolParams {
            transport: Default::default(),
            host: "127.0.0.1".into(),
            port: mef_addr.port(),
            kpm_id: kpm_id.parse().map_err(CliError::other)?,
            kpm: kpm.clone(),
            id1: format!("Cdemo{i:05}").parse().map_err(CliError::other)?,
            targets: vec![CSE_ABS.parse().map_err(CliError::other)?],
            admin_fqdn: format!("admin.{SP}").parse().map_err(CliError::other)?,
            suid_encoding: SuidEncoding::AsciiDecimal,
        };
        let mut run = DeviceRun {
            cse: if i >= mn_from { MN_ID } else { "/cse-in" },
            ae_id: None,
            ke_id: None,
            ibc_id: None,
            registered: false,
            wrote: false,
            error: None,
            secrets: None,
        };
        match enrol(&p).await {
            Ok(s) => {
                let saved = Keystore::open(&ks_root.join(format!("{i:05}")))
                    .and_then(|ks| ks.save(&kpm_id, &mef_addr.to_string(), &s));
                match saved {
                    Ok(()) => {
                        run.ke_id = Some(s.summary.ke_id.clone());
                        run.ibc_id = s.summary.ibc_id.clone();
                        run.secrets = Some(s);
                    }
                    Err(e) => run.error = Some(format!("keystore: {e}")),
                }
            }
            Err(e) => run.error = Some(format!("enrol: {e}")),
        }
        runs.push(run);
    }
    let enrolled = runs.iter().filter(|r| r.secrets.is_some()).count();
    steps.push(Step {
        id: "enrol",
        name: "enrol (TLS-PSK + IBC)",
        ok: enrolled,
        failed: n - enrolled,
        elapsed: t.elapsed(),
    });

    // 4. Register at the CSE with psk_identity = KeID; 5. write a contentInstance.
    let t_reg = Instant::now();
    let mut write_time = Duration::ZERO;
    let mut forward_time = Duration::ZERO;
    for (i, run) in runs.iter_mut().enumerate() {
        let Some(s) = &run.secrets else { continue };
        let from = format!("Cdemo{i:05}");
        if let Some((id, key)) = i.checked_sub(mn_from).and_then(|k| mn_keys.get(k)) {
            let tf = Instant::now();
            let res = match &acp {
                Some(acp) => via_mn(run, i, mn_addr.port(), id, key, acp, &mut write_time).await,
                None => Err(mn_error.clone().unwrap_or_default()),
            };
            forward_time += tf.elapsed();
            if let Err(e) = res {
                run.error = Some(e);
            }
            continue;
        }
        let res: Result<(), String> = async {
            let psk = target_psk(&s.ke, 22, CSE_ABS, SuidEncoding::AsciiDecimal)
                .map_err(|e| e.to_string())?;
            let id =
                PskIdentity::new(&s.summary.ke_id.to_string()).map_err(|e| e.to_string())?;
            let client = TlsClient::new(ClientConfig::psk(id, psk)).map_err(|e| e.to_string())?;
            let ch = client
                .connect("127.0.0.1", cse_addr.port(), None)
                .await
                .map_err(|e| format!("CSE handshake: {e}"))?;
            let mut http = HttpClient::new(ch, "127.0.0.1").await.map_err(|e| e.to_string())?;
            let mut req = RequestPrimitive::new(Operation::Create, "cb", Some(&from), "r1");
            req.ty = Some(2);
            req.pc = Some(json!({"m2m:ae": {"rn": format!("demo{i:05}"), "api": "Ndemo", "rr": false, "srv": ["3"]}}));
            let r = http.send(&req).await.map_err(|e| e.to_string())?;
            if r.rsc != Rsc::Created {
                return Err(format!("AE CREATE: {}", err_detail(&r)));
            }
            let aei = r.pc.as_ref().and_then(|p| p["m2m:ae"]["aei"].as_str()).unwrap_or_default().to_string();
            run.ae_id = Some(aei.clone());
            run.registered = true;
            let tw = Instant::now();
            let mut req = RequestPrimitive::new(Operation::Create, format!("cb/demo{i:05}"), Some(&aei), "r2");
            req.ty = Some(3);
            req.pc = Some(json!({"m2m:cnt": {"rn": "data"}}));
            let r = http.send(&req).await.map_err(|e| e.to_string())?;
            if r.rsc != Rsc::Created {
                return Err(format!("container CREATE: {}", err_detail(&r)));
            }
            let mut req = RequestPrimitive::new(Operation::Create, format!("cb/demo{i:05}/data"), Some(&aei), "r3");
            req.ty = Some(4);
            req.pc = Some(json!({"m2m:cin": {"cnf": "text/plain:0", "con": cin_value(i)}}));
            let r = http.send(&req).await.map_err(|e| e.to_string())?;
            write_time += tw.elapsed();
            if r.rsc != Rsc::Created {
                return Err(format!("contentInstance CREATE: {}", err_detail(&r)));
            }
            run.wrote = true;
            Ok(())
        }
        .await;
        if let Err(e) = res {
            run.error = Some(e);
        }
    }
    let registered_aes = runs.iter().filter(|r| r.registered).count();
    let wrote = runs.iter().filter(|r| r.wrote).count();
    steps.push(Step {
        id: "register",
        name: "register AE (KeID/MEF; PSK at MN)",
        ok: registered_aes,
        failed: n - registered_aes,
        elapsed: t_reg.elapsed().saturating_sub(write_time),
    });
    steps.push(Step {
        id: "write",
        name: "write contentInstance",
        ok: wrote,
        failed: n - wrote,
        elapsed: write_time,
    });

    // 5b. The writes through the MN-CSE arrived at the IN-CSE: its administrator reads each
    // device's latest contentInstance there, over its own association.
    let t = Instant::now();
    let mut arrived = 0;
    if acp.is_some() {
        match psk_http(cse_addr.port(), ADMIN_PSK_ID, &admin_psk).await {
            Ok(mut http) => {
                for (i, run) in runs.iter_mut().enumerate().skip(mn_from) {
                    let path = format!("cb/{VIA_MN}/demo{i:05}/la");
                    let req = RequestPrimitive::new(Operation::Retrieve, path, Some(ADMIN), "v1");
                    match http.send(&req).await {
                        Ok(r) if r.rsc == Rsc::Ok => {
                            let con = r.pc.as_ref().and_then(|p| p["m2m:cin"]["con"].as_str());
                            if con == Some(cin_value(i).as_str()) {
                                arrived += 1;
                            } else if run.error.is_none() {
                                run.error = Some(format!("at the IN-CSE: con {con:?}"));
                            }
                        }
                        Ok(r) if run.error.is_none() => {
                            run.error = Some(format!("at the IN-CSE: {}", err_detail(&r)));
                        }
                        Ok(_) => {}
                        Err(e) => run.error = Some(format!("at the IN-CSE: {e}")),
                    }
                }
            }
            Err(e) => mn_error = Some(format!("IN-CSE administrator: {e}")),
        }
    }
    steps.push(Step {
        id: "forward_via_mn",
        name: "write via MN-CSE, read at IN",
        ok: arrived,
        failed: mn_count - arrived,
        elapsed: forward_time + t.elapsed(),
    });

    // 6. An attacker holding a valid credential of its own: device 1, over its own association,
    // claims device 0's AE-ID (read its AE, register it again). Each must be 4106
    // ORIGINATOR_NOT_AUTHENTICATED (TS-0003 §7.2.1; issue 9).
    let t = Instant::now();
    let mut refused = 0;
    if let (Some(victim), Some(s)) = (
        runs.first().and_then(|r| r.ae_id.clone()),
        runs.get(1).and_then(|r| r.secrets.as_ref()),
    ) {
        let res: Result<usize, String> = async {
            let psk = target_psk(&s.ke, 22, CSE_ABS, SuidEncoding::AsciiDecimal)
                .map_err(|e| e.to_string())?;
            let id = PskIdentity::new(&s.summary.ke_id.to_string()).map_err(|e| e.to_string())?;
            let client = TlsClient::new(ClientConfig::psk(id, psk)).map_err(|e| e.to_string())?;
            let ch = client
                .connect("127.0.0.1", cse_addr.port(), None)
                .await
                .map_err(|e| format!("CSE handshake: {e}"))?;
            let mut http = HttpClient::new(ch, "127.0.0.1")
                .await
                .map_err(|e| e.to_string())?;
            let read =
                RequestPrimitive::new(Operation::Retrieve, "cb/demo00000", Some(&victim), "x1");
            let mut squat = RequestPrimitive::new(Operation::Create, "cb", Some(&victim), "x2");
            squat.ty = Some(2);
            squat.pc =
                Some(json!({"m2m:ae": {"rn": "squat", "api": "Ndemo", "rr": false, "srv": ["3"]}}));
            let mut n = 0;
            for req in [read, squat] {
                let r = http.send(&req).await.map_err(|e| e.to_string())?;
                if r.rsc == Rsc::OriginatorNotAuthenticated {
                    n += 1;
                }
            }
            Ok(n)
        }
        .await;
        refused = res.unwrap_or(0);
    }
    steps.push(Step {
        id: "impersonation_refused",
        name: "impersonation refused (4106)",
        ok: refused,
        failed: 2 - refused,
        elapsed: t.elapsed(),
    });

    // 7. Two devices verify each other's ECCSI signatures.
    let t = Instant::now();
    let now = m2msec_core::clock::unix_now();
    let creds: Vec<_> = runs
        .iter()
        .filter_map(|r| r.secrets.as_ref()?.ibc.clone())
        .take(2)
        .collect();
    let mut verified = 0;
    if creds.len() == 2 {
        for (signer, verifier) in [(0usize, 1usize), (1, 0)] {
            let ok = (|| -> Option<bool> {
                let key = validate_ibc(&creds[signer], now).ok()?;
                let msg = format!("reading from {}", creds[signer].id2);
                let sig = key.sign(msg.as_bytes(), &mut OsRng);
                // The verifier uses its own KPAK copy and checks the signer's ID2 expiry.
                let kpak = Kpak::from_bytes(&hex::decode(&creds[verifier].kpak).ok()?).ok()?;
                let exp = m2msec_mef::ibc::id2_expiry(&creds[signer].id2)?;
                Some(
                    exp.to_unix() > now
                        && verify(&kpak, creds[signer].id2.as_bytes(), msg.as_bytes(), &sig)
                            .is_ok(),
                )
            })();
            if ok == Some(true) {
                verified += 1;
            }
        }
    }
    steps.push(Step {
        id: "ibc_verify",
        name: "IBC mutual verification",
        ok: verified,
        failed: 2 - verified,
        elapsed: t.elapsed(),
    });

    let fetched = mef_ep.with_store(|s| s.counts()).map_err(CliError::other)?;
    let all_ok = steps.iter().all(|s| s.failed == 0);
    let devices: Vec<Value> = runs
        .iter()
        .map(|r| {
            let mut d = json!({"cse": r.cse, "ae_id": r.ae_id, "ke_id": r.ke_id, "ibc_id": r.ibc_id, "registered": r.registered});
            if let Some(e) = &r.error {
                d["error"] = json!(e);
            }
            d
        })
        .collect();
    let summary = json!({
        "ok": all_ok,
        "mef": mef_addr.to_string(),
        "cse": cse_addr.to_string(),
        "mn_cse": mn_addr.to_string(),
        "mn_error": mn_error,
        "steps": steps.iter().map(Step::json).collect::<Vec<_>>(),
        "mef_store": {"devices": fetched.0, "enrolments": fetched.1},
        "devices": devices,
    });
    Ok((summary, all_ok))
}

/// The value device `i` writes.
fn cin_value(i: usize) -> String {
    format!("{}", 20 + i % 10)
}

/// A device of the MN-CSE: registers its AE there over its PSK, then creates a container (with
/// the administrator's `acpi`) and a contentInstance in the IN-CSE's [`VIA_MN`] through the
/// MN-CSE, addressed SP-relative (`/cse-in/cb/...`, TS-0001 §6.2.3).
async fn via_mn(
    run: &mut DeviceRun,
    i: usize,
    mn_port: u16,
    identity: &str,
    key: &Psk,
    acp: &str,
    write_time: &mut Duration,
) -> Result<(), String> {
    let mut http = psk_http(mn_port, identity, key).await?;
    let mut req =
        RequestPrimitive::new(Operation::Create, "cb", Some(&format!("Cdemo{i:05}")), "m1");
    req.ty = Some(2);
    req.pc = Some(
        json!({"m2m:ae": {"rn": format!("demo{i:05}"), "api": "Ndemo", "rr": false, "srv": ["3"]}}),
    );
    let r = http.send(&req).await.map_err(|e| e.to_string())?;
    if r.rsc != Rsc::Created {
        return Err(format!("AE CREATE at the MN-CSE: {}", err_detail(&r)));
    }
    let aei =
        r.pc.as_ref()
            .and_then(|p| p["m2m:ae"]["aei"].as_str())
            .unwrap_or_default()
            .to_string();
    run.ae_id = Some(aei.clone());
    run.registered = true;
    let tw = Instant::now();
    let cnt = format!("/cse-in/cb/{VIA_MN}");
    let mut req = RequestPrimitive::new(Operation::Create, cnt.as_str(), Some(&aei), "m2");
    req.ty = Some(3);
    req.pc = Some(json!({"m2m:cnt": {"rn": format!("demo{i:05}"), "acpi": [acp]}}));
    let r = http.send(&req).await.map_err(|e| e.to_string())?;
    if r.rsc != Rsc::Created {
        *write_time += tw.elapsed();
        return Err(format!(
            "container CREATE via the MN-CSE: {}",
            err_detail(&r)
        ));
    }
    let mut req = RequestPrimitive::new(
        Operation::Create,
        format!("{cnt}/demo{i:05}"),
        Some(&aei),
        "m3",
    );
    req.ty = Some(4);
    req.pc = Some(json!({"m2m:cin": {"cnf": "text/plain:0", "con": cin_value(i)}}));
    let r = http.send(&req).await.map_err(|e| e.to_string())?;
    *write_time += tw.elapsed();
    if r.rsc != Rsc::Created {
        return Err(format!(
            "contentInstance CREATE via the MN-CSE: {}",
            err_detail(&r)
        ));
    }
    run.wrote = true;
    Ok(())
}
