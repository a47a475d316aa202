//! The simulated pair (issue 10 item 2): the Enrolee's [`Machine`] and the MEF's
//! [`Exchange`] run full enrolment exchanges in memory, with no socket, a fixed clock and a
//! seeded RNG, against a real [`MefEndpoint`] (its SQLite store in a temporary directory, its
//! in-process PKG), so that what only a simulation can do is tested at every step:
//!
//! - a request dropped, a response dropped, a request duplicated, an earlier request replayed,
//!   a later request delivered early (reordered), a stale response delivered;
//! - the MEF crashing before and after each effect (PKG extraction, conditional commit), its
//!   store then reopened as after a restart;
//!
//! and asserted: nothing is committed unless the exchange completed (the only divergence is
//! the MEF's end-of-exchange lost after its commit, which a re-enrolment supersedes), a replayed
//! or reordered step is refused or answers as before and the exchange still completes with one
//! commit, and the Enrolee reports success only with the KeID the MEF committed.
//!
//! Last, the same exchange run by the tokio drivers over HTTP/TLS and CoAP/DTLS sends the same
//! sequence of request primitives as the simulated one.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use m2msec_bindings::{listen, AssociationInfo, Endpoint, Handled, ListenOptions, Opened};
use m2msec_core::duration::XsDuration;
use m2msec_core::export::ExportedKeyingMaterial;
use m2msec_core::ids::KeId;
use m2msec_core::kdf::{enrolment_key, SuidEncoding};
use m2msec_core::secret::Kpm;
use m2msec_mef::endpoint::{MefSession, Step};
use m2msec_mef::enrolee::{
    enrol_with_clock, EnrolError, EnrolParams, EnrolmentSecrets, Fed, Machine,
};
use m2msec_mef::exchange::{Effect, Exchange};
use m2msec_mef::store::{Device, MefStore};
use m2msec_mef::{LocalPkg, MefConfig, MefEndpoint, TargetClient};
use m2msec_proto::{Operation, RequestPrimitive};
use m2msec_tls::{ClientConfig, Psk, PskIdentity};
use rand_core::RngCore;

const FQDN: &str = "mef.sim.example";
const CSE: &str = "//sim.example/cse-in";
const CSE2: &str = "//sim.example/cse-two";
const KPM_ID: &str = "dev0@mef.sim.example";
const NOW: i64 = 1_800_000_000;

/// SplitMix64: the simulation's deterministic RNG (exports and the MEF's identifiers).
struct SeededRng(u64);

impl RngCore for SeededRng {
    fn next_u32(&mut self) -> u32 {
        self.next_u64() as u32
    }
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for c in dest.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            c.copy_from_slice(&v[..c.len()]);
        }
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

struct Mef {
    ep: Arc<MefEndpoint>,
    clock: m2msec_mef::clock::Clock,
    hand: m2msec_mef::clock::ManualClock,
    tls: m2msec_tls::ServerConfig,
    dir: tempfile::TempDir,
}

/// A MEF on a fresh store at the fixed clock, with devices `dev0..dev2` (Enrolment Targets
/// [`CSE`] and [`CSE2`]: two MO_NODE commands, then NO_MORE_COMMANDS), running seed 001's IBC
/// enrolment.
fn mef() -> Mef {
    mef_ibc(true)
}

/// [`mef`], with or without the IBC enrolment.
fn mef_ibc(ibc: bool) -> Mef {
    let dir = tempfile::tempdir().unwrap();
    let clock = m2msec_mef::clock::ManualClock::new(NOW);
    let clock_fn = clock.clock();
    let cfg = MefConfig {
        fqdn: FQDN.parse().unwrap(),
        ibc,
        retry_duration: "PT1H".parse::<XsDuration>().unwrap(),
        suid_encoding: SuidEncoding::AsciiDecimal,
        max_registration_secs: 86_400,
        legacy_derivation: false,
    };
    let targets = vec![TargetClient {
        psk_identity: PskIdentity::new("cse-in@mef.sim.example").unwrap(),
        key: Psk::new(&[0x11; 32]).unwrap(),
        client_id: CSE.parse().unwrap(),
    }];
    let (ep, tls) = MefEndpoint::with_clock(
        cfg,
        dir.path(),
        Arc::new(LocalPkg::generate()),
        targets,
        clock_fn.clone(),
    )
    .unwrap();
    for i in 0..3u8 {
        let d = Device {
            kpm_id: format!("dev{i}@{FQDN}"),
            enrolee_id: format!("Cdev{i}").parse().unwrap(),
            targets: vec![CSE.parse().unwrap(), CSE2.parse().unwrap()],
            enrolment_secs: 3600,
            created: 0,
            revoked: None,
        };
        ep.with_store(|s| s.add_device(&d, &Kpm::from_bytes(&[i + 1; 32]).unwrap()))
            .unwrap();
    }
    Mef {
        ep,
        clock: clock_fn,
        hand: clock,
        tls,
        dir,
    }
}

fn params(port: u16, i: u8) -> EnrolParams {
    EnrolParams {
        transport: Default::default(),
        host: "127.0.0.1".into(),
        port,
        kpm_id: format!("dev{i}@{FQDN}").parse().unwrap(),
        kpm: Kpm::from_bytes(&[i + 1; 32]).unwrap(),
        id1: format!("Cdev{i}").parse().unwrap(),
        targets: vec![CSE.parse().unwrap(), CSE2.parse().unwrap()],
        admin_fqdn: "admin.sim.example".parse().unwrap(),
        suid_encoding: SuidEncoding::AsciiDecimal,
    }
}

/// What happens to the exchange, at request number `.0` (from 0) of the Enrolee.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    None,
    /// The request never reaches the MEF; the Enrolee's driver gives up.
    DropRequest(usize),
    /// The MEF serves the request; its response is lost.
    DropResponse(usize),
    /// The request reaches the MEF twice; both responses reach the Enrolee.
    Duplicate(usize),
    /// Before request `.0`, request `.1` (earlier) is replayed to the MEF and its response
    /// delivered to the Enrolee.
    Replay(usize, usize),
    /// Before request `.0`, request `.1` of the clean run (later) reaches the MEF early.
    Early(usize, usize),
    /// The MEF crashes while serving the request, before its effect (if any).
    CrashBefore(usize),
    /// The MEF crashes after performing the request's effect, before answering.
    CrashAfter(usize),
}

struct Run {
    trace: Vec<RequestPrimitive>,
    outcome: Result<EnrolmentSecrets, EnrolError>,
    /// (rsc of the first answer, rsc of the replayed/duplicated/early one) per extra delivery.
    extra: Vec<(u16, u16, Operation, String)>,
    /// Effects performed, in order ("extract", "commit").
    effects: Vec<&'static str>,
}

/// The MEF's answer to one request: effects performed as the endpoint does, unless `crash`
/// (`Some(false)`: before the effect, `Some(true)`: after it), when there is no answer.
fn serve(
    ep: &MefEndpoint,
    x: &mut Exchange,
    req: RequestPrimitive,
    rng: &mut SeededRng,
    crash: Option<bool>,
    effects: &mut Vec<&'static str>,
) -> Option<Handled> {
    match ep.exchange_step(x, req, rng) {
        Step::Reply(h) => crash.is_none().then_some(h),
        Step::Effect(e) => {
            if crash == Some(false) {
                return None;
            }
            effects.push(match e {
                Effect::Extract { .. } => "extract",
                Effect::Commit(_) => "commit",
            });
            let r = ep.perform(&e);
            if crash == Some(true) {
                return None;
            }
            Some(x.resume(r))
        }
    }
}

/// One exchange of `dev0` on `mef` with `fault`; `clean` is the trace of the clean run with
/// the same seed (for [`Fault::Early`]).
fn run(mef: &Mef, seed: u64, fault: Fault, clean: &[RequestPrimitive]) -> Run {
    let mut rng = SeededRng(seed);
    let mut export = [0u8; 48];
    rng.fill_bytes(&mut export);
    let bootstrap = ExportedKeyingMaterial::from_bytes(&export).unwrap();
    rng.fill_bytes(&mut export);
    let connection = ExportedKeyingMaterial::from_bytes(&export).unwrap();
    let mut x = mef
        .ep
        .open_exchange(KPM_ID, &bootstrap, Some(&connection))
        .unwrap();
    let mut m = Machine::new(
        &params(0, 0),
        enrolment_key(&bootstrap, &FQDN.parse().unwrap()),
    );
    let (mut trace, mut extra, mut effects) = (Vec::new(), Vec::new(), Vec::new());
    let mut answered: Vec<(RequestPrimitive, u16)> = Vec::new();
    let mut closed = false;
    // Bounded: a clean exchange is 6 requests.
    for k in 0..32 {
        let Some(req) = m.poll_request() else { break };
        trace.push(req.clone());
        if closed {
            m.transport_failed(&"the MEF closed the session");
            continue;
        }
        if let Fault::Replay(at, of) = fault {
            if at == k {
                let (old, first) = answered[of].clone();
                let h = serve(&mef.ep, &mut x, old.clone(), &mut rng, None, &mut effects);
                let h = h.expect("no crash");
                extra.push((first, h.response.rsc.as_u16(), old.op, old.to.clone()));
                // A stale response is ignored by the Enrolee.
                assert_eq!(m.handle_response(h.response, NOW).unwrap(), Fed::Ignored);
            }
        }
        if let Fault::Early(at, of) = fault {
            if at == k {
                let early = clean[of].clone();
                let h = serve(&mef.ep, &mut x, early.clone(), &mut rng, None, &mut effects);
                let h = h.expect("no crash");
                extra.push((0, h.response.rsc.as_u16(), early.op, early.to.clone()));
                assert_eq!(m.handle_response(h.response, NOW).unwrap(), Fed::Ignored);
            }
        }
        if fault == Fault::DropRequest(k) {
            m.transport_failed(&"timeout");
            continue;
        }
        let crash = match fault {
            Fault::CrashBefore(c) if c == k => Some(false),
            Fault::CrashAfter(c) if c == k => Some(true),
            _ => None,
        };
        let Some(h) = serve(&mef.ep, &mut x, req.clone(), &mut rng, crash, &mut effects) else {
            // The MEF process is gone: its exchange state with it.
            m.transport_failed(&"connection reset");
            break;
        };
        let first = h.response.rsc.as_u16();
        answered.push((req.clone(), first));
        closed = h.close;
        if fault == Fault::DropResponse(k) {
            m.transport_failed(&"timeout");
            continue;
        }
        if fault == Fault::Duplicate(k) {
            let again = serve(&mef.ep, &mut x, req.clone(), &mut rng, None, &mut effects);
            let again = again.expect("no crash");
            extra.push((first, again.response.rsc.as_u16(), req.op, req.to.clone()));
            let _ = m.handle_response(h.response, NOW);
            assert_eq!(
                m.handle_response(again.response, NOW).unwrap(),
                Fed::Ignored,
                "a duplicated response is ignored"
            );
            continue;
        }
        let _ = m.handle_response(h.response, NOW);
    }
    assert!(m.is_done(), "{fault:?}: the Enrolee did not finish");
    let outcome = m.outcome().expect("outcome");
    Run {
        trace,
        outcome,
        extra,
        effects,
    }
}

/// The enrolment of `dev0` in a store reopened from disk (as after a restart).
fn committed(mef: &Mef) -> Option<KeId> {
    let s = MefStore::open(mef.dir.path()).unwrap();
    s.enrolment_of(KPM_ID).unwrap().map(|e| e.ke_id)
}

fn gen(mef: &Mef) -> i64 {
    let s = MefStore::open(mef.dir.path()).unwrap();
    s.enrol_gen(KPM_ID).unwrap().unwrap()
}

/// (operation, target with the MEFClientRegID replaced, resource type, content's key).
type Shape = (Operation, String, Option<u64>, Option<String>);

fn shape(trace: &[RequestPrimitive]) -> Vec<Shape> {
    let reg = trace
        .iter()
        .find_map(|r| {
            let t = r.to.trim_start_matches('/');
            t.strip_prefix("mef/mcr-")
                .map(|rest| format!("mcr-{}", rest.split('/').next().unwrap_or("")))
        })
        .unwrap_or_default();
    trace
        .iter()
        .map(|r| {
            let to = r.to.trim_start_matches('/');
            let to = if reg.is_empty() {
                to.to_string()
            } else {
                to.replace(&reg, "<reg>")
            };
            let key =
                r.pc.as_ref()
                    .and_then(|p| p.as_object())
                    .and_then(|o| o.keys().next().cloned());
            (r.op, to, r.ty, key)
        })
        .collect()
}

const SEED: u64 = 0x5eed;

fn clean_run() -> (Mef, Run) {
    clean_run_ibc(true)
}

fn clean_run_ibc(ibc: bool) -> (Mef, Run) {
    let mef = mef_ibc(ibc);
    let r = run(&mef, SEED, Fault::None, &[]);
    (mef, r)
}

#[test]
fn a_clean_simulated_exchange_commits_once_with_the_enrolees_ke_id() {
    let (mef, r) = clean_run();
    let out = r.outcome.as_ref().unwrap();
    assert_eq!(committed(&mef), Some(out.summary.ke_id.clone()));
    assert_eq!(r.effects, ["extract", "commit"]);
    assert_eq!(out.summary.targets.len(), 2);
    assert!(out.ibc.is_some());
    let shape = shape(&r.trace);
    let ops: Vec<_> = shape.iter().map(|s| (s.0, s.1.as_str())).collect();
    assert_eq!(
        ops,
        [
            (Operation::Create, "mef"),
            (Operation::Retrieve, "mef/<reg>/cmd"),
            (Operation::Update, "mef/<reg>/cmd"),
            (Operation::Update, "mef/<reg>/cmd"),
            (Operation::Create, "mef/<reg>/ibc"),
            (Operation::Update, "mef/<reg>/ibc"),
        ]
    );
    // Deterministic: the same seed gives the same exchange, identifiers included.
    let again = run(&self::mef(), SEED, Fault::None, &[]);
    assert_eq!(again.trace.len(), r.trace.len());
    for (a, b) in again.trace.iter().zip(&r.trace) {
        assert_eq!((a.op, &a.to, &a.rqi, &a.pc), (b.op, &b.to, &b.rqi, &b.pc));
    }
    assert_eq!(
        again.outcome.unwrap().summary.ke_id,
        r.outcome.unwrap().summary.ke_id
    );
}

/// The last request's response (the end of exchange) is the one message whose loss leaves
/// the MEF committed and the Enrolee failed; a re-enrolment supersedes that commit.
fn is_final_loss(fault: Fault, last: usize) -> bool {
    matches!(fault, Fault::DropResponse(k) | Fault::CrashAfter(k) if k == last)
}

#[test]
fn a_message_lost_at_any_step_or_a_crash_around_any_effect_commits_nothing_unless_complete() {
    for ibc in [true, false] {
        lost_or_crashed(ibc);
    }
}

fn lost_or_crashed(ibc: bool) {
    let (_, clean) = clean_run_ibc(ibc);
    let steps = clean.trace.len();
    let last = steps - 1;
    let mut faults = Vec::new();
    for k in 0..steps {
        faults.extend([
            Fault::DropRequest(k),
            Fault::DropResponse(k),
            Fault::CrashBefore(k),
            Fault::CrashAfter(k),
        ]);
    }
    for fault in faults {
        let mef = mef_ibc(ibc);
        let before = gen(&mef);
        let r = run(&mef, SEED, fault, &clean.trace);
        let e = match &r.outcome {
            Ok(o) => panic!("{fault:?}: success {}", o.summary.ke_id),
            Err(e) => e.to_string(),
        };
        let ke_id = clean.outcome.as_ref().unwrap().summary.ke_id.clone();
        if is_final_loss(fault, last) {
            // The commit happened; the Enrolee, not told, keeps its previous keystore.
            assert_eq!(committed(&mef), Some(ke_id.clone()), "{fault:?}");
            assert_eq!(gen(&mef), before + 1, "{fault:?}");
            // Enrolling again supersedes it.
            let again = run(&mef, SEED + 1, Fault::None, &[]);
            let again = again.outcome.unwrap();
            assert_ne!(again.summary.ke_id, ke_id);
            assert_eq!(committed(&mef), Some(again.summary.ke_id), "{fault:?}");
        } else {
            assert_eq!(committed(&mef), None, "{fault:?} ({e}): committed");
            assert_eq!(gen(&mef), before, "{fault:?}");
            if matches!(fault, Fault::CrashAfter(k) if k != last) {
                // Only the last step has a durable effect.
                assert!(!r.effects.contains(&"commit"), "{fault:?}");
            }
        }
    }
}

#[test]
fn a_duplicated_replayed_or_early_step_is_refused_or_idempotent_and_the_exchange_completes() {
    for ibc in [true, false] {
        duplicated_replayed_or_early(ibc);
    }
}

fn duplicated_replayed_or_early(ibc: bool) {
    let (_, clean) = clean_run_ibc(ibc);
    let steps = clean.trace.len();
    let mut faults = Vec::new();
    for k in 0..steps {
        faults.push(Fault::Duplicate(k));
        for j in 0..k {
            faults.push(Fault::Replay(k, j));
        }
        for j in k + 1..steps {
            faults.push(Fault::Early(k, j));
        }
    }
    for fault in faults {
        let mef = mef_ibc(ibc);
        let before = gen(&mef);
        let r = run(&mef, SEED, fault, &clean.trace);
        let out = match r.outcome {
            Ok(o) => o,
            Err(e) => panic!("{fault:?}: the exchange failed: {e}"),
        };
        assert_eq!(committed(&mef), Some(out.summary.ke_id), "{fault:?}");
        assert_eq!(gen(&mef), before + 1, "{fault:?}: one commit");
        assert_eq!(
            r.effects.iter().filter(|e| **e == "commit").count(),
            1,
            "{fault:?}"
        );
        assert_eq!(
            r.effects.iter().filter(|e| **e == "extract").count(),
            usize::from(ibc),
            "{fault:?}: one credential (with IBC)"
        );
        for (first, extra, op, to) in &r.extra {
            let refused = *extra >= 4000;
            // Command Retrieve/Update answer the command still current and change nothing
            // unless they answer it (§8.3.9.6 step 2b); the exchange completing with both
            // targets provisioned shows that nothing changed.
            let idempotent = to.ends_with("/cmd") && matches!(extra, 2000 | 2004);
            assert!(
                refused || idempotent,
                "{fault:?}: {op:?} {to} answered {extra} (first {first})"
            );
        }
    }
}

/// An end of exchange before the commands completed is refused (and commits nothing); so is an
/// IBC enrolment before them.
#[test]
fn the_mef_refuses_to_end_or_issue_a_credential_before_the_commands_complete() {
    let (_, clean) = clean_run();
    let mef = mef();
    let r = run(&mef, SEED, Fault::Early(1, 5), &clean.trace);
    assert_eq!(r.extra[0].1, 4005, "{:?}", r.extra);
    let r2 = run(&self::mef(), SEED, Fault::Early(1, 4), &clean.trace);
    assert_eq!(r2.extra[0].1, 4005, "{:?}", r2.extra);
    assert!(r.outcome.is_ok() && r2.outcome.is_ok());
    // Without IBC the end of exchange is refused before the commands complete, too.
    let (_, clean) = clean_run_ibc(false);
    let r3 = run(&mef_ibc(false), SEED, Fault::Early(1, 4), &clean.trace);
    assert_eq!(r3.extra[0].1, 4005, "{:?}", r3.extra);
    assert!(r3.outcome.is_ok());
}

/// Time moves without sleeping (issue 10 item 7): an Enrolee whose clock is past the
/// credential's expiry refuses it, reports failure, and the MEF commits nothing.
#[test]
fn an_enrolee_that_finds_the_credential_expired_reports_failure_and_nothing_is_committed() {
    let mef = mef();
    let mut rng = SeededRng(SEED);
    let mut export = [0u8; 48];
    rng.fill_bytes(&mut export);
    let bootstrap = ExportedKeyingMaterial::from_bytes(&export).unwrap();
    let mut x = mef.ep.open_exchange(KPM_ID, &bootstrap, None).unwrap();
    let mut m = Machine::new(
        &params(0, 0),
        enrolment_key(&bootstrap, &FQDN.parse().unwrap()),
    );
    let mut effects = Vec::new();
    let mut last = None;
    for _ in 0..16 {
        let Some(req) = m.poll_request() else { break };
        last = Some((req.op, req.pc.clone()));
        let h = serve(&mef.ep, &mut x, req, &mut rng, None, &mut effects).unwrap();
        // The credential lives 3600 s from the registration; the Enrolee is an hour late.
        mef.hand.set(NOW + 3600);
        let _ = m.handle_response(h.response, mef.clock.now());
    }
    let e = m.outcome().unwrap().unwrap_err().to_string();
    assert!(e.contains("does not validate"), "{e}");
    // Its last request was the failure report.
    let (op, pc) = last.unwrap();
    assert_eq!(op, Operation::Update);
    assert_eq!(pc.unwrap()["ibcEnrol"]["success"], false);
    assert_eq!(effects, ["extract"]);
    assert_eq!(committed(&mef), None);
}

/// Records the request primitives the MEF receives, whatever the binding.
struct Recording {
    inner: Arc<MefEndpoint>,
    seen: Mutex<Vec<RequestPrimitive>>,
}

impl Endpoint for Recording {
    type Session = MefSession;

    fn responder_id(&self) -> String {
        self.inner.responder_id()
    }

    fn open(&self, assoc: Option<&AssociationInfo<'_>>) -> Option<Opened<MefSession>> {
        self.inner.open(assoc)
    }

    fn handle(&self, session: &MefSession, prim: RequestPrimitive) -> Handled {
        self.seen.lock().unwrap().push(prim.clone());
        self.inner.handle(session, prim)
    }

    fn workers(&self) -> usize {
        self.inner.workers()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tokio_drivers_over_https_and_coaps_send_the_simulated_trace() {
    let (_, sim) = clean_run();
    let mef = mef();
    let rec = Arc::new(Recording {
        inner: mef.ep.clone(),
        seen: Mutex::new(Vec::new()),
    });
    let opts = ListenOptions::loopback().with_coap(
        "127.0.0.1:0".parse().unwrap(),
        m2msec_tls::DtlsOptions::default(),
    );
    let _listening = listen(rec.clone(), &mef.tls, opts).await.unwrap();
    let addr: SocketAddr = _listening.tls_addr.unwrap();
    let coap_addr = _listening.coap_addr.unwrap();

    // One clock for both sides: the MEF's fixed one, also the Enrolee driver's.
    let psk = |i: u8| {
        ClientConfig::psk(
            PskIdentity::new(&format!("dev{i}@{FQDN}")).unwrap(),
            Psk::new(&[i + 1; 32]).unwrap(),
        )
    };
    let https = enrol_with_clock(&params(addr.port(), 1), psk(1), &mef.clock).await;
    let https_trace = std::mem::take(&mut *rec.seen.lock().unwrap());
    let mut p = params(coap_addr.port(), 2);
    p.transport = m2msec_mef::enrolee::MefTransport::Coaps;
    let coaps = enrol_with_clock(&p, psk(2), &mef.clock).await;
    let coaps_trace = std::mem::take(&mut *rec.seen.lock().unwrap());
    https.unwrap();
    coaps.unwrap();
    let want = shape(&sim.trace);
    assert_eq!(shape(&https_trace), want, "HTTP/TLS driver");
    assert_eq!(shape(&coaps_trace), want, "CoAP/DTLS driver");
}
