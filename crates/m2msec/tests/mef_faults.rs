//! Fault test of the M2M Enrolment Function (issue item 8): a real `m2msec mef serve` child
//! process is killed with SIGKILL in the middle of 1,000 concurrent enrolments and restarted on
//! the same data directory. Afterwards every device is either fully enrolled or enrols again
//! cleanly, and the store holds no duplicated or orphaned keys:
//!
//! - the store passes its integrity check, holds at most one enrolment per device and no key
//!   registrations;
//! - every device whose `enrol` returned Ok (it received the end-of-exchange) has an enrolment
//!   with exactly the KeID it derived;
//! - a device whose `enrol` failed has no enrolment, or one the MEF committed just before the
//!   kill and never acknowledged (the MEF commits before it sends end-of-exchange); a device
//!   never tried has none;
//! - that last case is produced on purpose too, before the kill: a relay withholds the MEF's
//!   end-of-exchange from three devices (as if they crashed after sending their success
//!   report), so the test does not depend on the kill landing between commit and response;
//! - every failed or untried device then enrols against the restarted MEF; afterwards there is
//!   exactly one enrolment per device, with the KeID the device holds last, the PKG's KPAK is
//!   unchanged, and an Enrolment Target fetches the right key (`/fetchCredentials/<KeID>/22`)
//!   for a sample of devices, while a stale unacknowledged KeID is gone.
//!
//! The kill is triggered by a completion counter (after the `KILL_AT`-th successful enrolment),
//! not by a timer, so the test does not depend on the machine's speed.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use rand_core::{OsRng, RngCore};

use m2msec_bindings::client::HttpClient;
use m2msec_core::kdf::SuidEncoding;
use m2msec_core::secret::{Ke, Kpm};
use m2msec_cse::{Operation, RequestPrimitive, Rsc};
use m2msec_mef::enrolee::{enrol, target_key, EnrolParams};
use m2msec_mef::store::AddOutcome;
use m2msec_mef::wire::FetchCredentialsResponse;
use m2msec_mef::{Device, MefStore};
use m2msec_tls::{ClientConfig, Psk, PskIdentity, TlsClient};

const FQDN: &str = "mef.fault.example";
const CSE: &str = "//fault.example/cse-in";
const CSE_IDENTITY: &str = "cse-in@mef.fault.example";
const CSE_KEY: [u8; 32] = [0x3c; 32];
const DEVICES: usize = 1000;
/// SIGKILL the MEF when this many enrolments have returned Ok.
const KILL_AT: usize = 400;
/// Enrolments in flight.
const IN_FLIGHT: usize = 12;
/// Devices whose target key is fetched at the end, from each group.
const SAMPLE: usize = 10;
/// Devices 1..=CUT lose the MEF's end-of-exchange on the way (after the MEF committed);
/// device 0 calibrates the relay that withholds it.
const CUT: usize = 3;

fn kpm_id(i: usize) -> String {
    format!("dev{i:04}@{FQDN}")
}

fn enrolee_id(i: usize) -> String {
    format!("Cdev{i:04}")
}

/// The MEF child process; killed (SIGKILL) and reaped on drop.
struct MefProcess {
    child: Child,
    addr: SocketAddr,
}

impl MefProcess {
    fn start(config: &Path, tag: &'static str) -> MefProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_m2msec"))
            .args(["mef", "serve", "--config"])
            .arg(config)
            .env("M2MSEC_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn m2msec mef serve");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        // Reads the announcement, then keeps draining stderr so the child never blocks on it.
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.strip_prefix("m2msec mef: listening on https://") {
                    if let (Some(tx), Some(addr)) = (tx.take(), rest.split_whitespace().next()) {
                        let _ = tx.send(addr.parse::<SocketAddr>().ok());
                        continue;
                    }
                }
                eprintln!("[mef {tag}] {line}");
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(Some(a)) => a,
            other => {
                let _ = child.kill();
                let status = child.wait();
                panic!("the MEF did not announce its address: {other:?}, exit {status:?}");
            }
        };
        MefProcess { child, addr }
    }

    /// SIGKILL (on Unix, `Child::kill` sends SIGKILL) and reap.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for MefProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

fn write_secret(path: &Path, text: &str) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

fn write_config(dir: &Path, data_dir: &Path) -> PathBuf {
    let key_file = dir.join("cse-in.key");
    write_secret(&key_file, &format!("{}\n", hex::encode(CSE_KEY)));
    let config = dir.join("mef.toml");
    let text = format!(
        "fqdn = \"{FQDN}\"\n\
         data_dir = \"{}\"\n\
         \n\
         [tls]\n\
         bind = \"127.0.0.1\"\n\
         port = 0\n\
         \n\
         [[target]]\n\
         identity = \"{CSE_IDENTITY}\"\n\
         key_file = \"{}\"\n\
         id = \"{CSE}\"\n",
        data_dir.display(),
        key_file.display()
    );
    std::fs::write(&config, text).unwrap();
    config
}

/// What a device knows of its enrolment.
#[derive(Debug, Clone, Default)]
enum Outcome {
    /// No enrolment attempted.
    #[default]
    NotTried,
    /// `enrol` failed.
    Failed(String),
    /// `enrol` returned Ok: the KeID, Ke and KPAK the device holds.
    Enrolled { ke_id: String, ke: Ke, kpak: String },
}

fn params(addr: SocketAddr, i: usize, kpm: &Kpm) -> EnrolParams {
    EnrolParams {
        host: "127.0.0.1".into(),
        port: addr.port(),
        kpm_id: kpm_id(i).parse().unwrap(),
        kpm: kpm.clone(),
        id1: enrolee_id(i).parse().unwrap(),
        targets: vec![CSE.parse().unwrap()],
        admin_fqdn: "admin.fault.example".parse().unwrap(),
        suid_encoding: SuidEncoding::AsciiDecimal,
        transport: Default::default(),
    }
}

async fn enrol_one(p: EnrolParams) -> Outcome {
    match tokio::time::timeout(Duration::from_secs(30), enrol(&p)).await {
        Ok(Ok(s)) => Outcome::Enrolled {
            ke_id: s.summary.ke_id.to_string(),
            kpak: s.ibc.as_ref().map(|c| c.kpak.clone()).unwrap_or_default(),
            ke: s.ke,
        },
        Ok(Err(e)) => Outcome::Failed(e.to_string()),
        Err(_) => Outcome::Failed("timed out".into()),
    }
}

/// Enrols `devices` with at most IN_FLIGHT in flight. With `kill`, the MEF is killed as soon
/// as `KILL_AT` enrolments have returned Ok, and no further enrolment is started.
async fn enrol_many(
    addr: SocketAddr,
    devices: &[usize],
    kpms: &[Kpm],
    outcomes: &mut [Outcome],
    mut kill: Option<&mut MefProcess>,
) {
    let mut set = tokio::task::JoinSet::new();
    let mut next = 0;
    let mut ok = 0;
    loop {
        while next < devices.len() && set.len() < IN_FLIGHT {
            let i = devices[next];
            let p = params(addr, i, &kpms[i]);
            set.spawn(async move { (i, enrol_one(p).await) });
            next += 1;
        }
        let Some(done) = set.join_next().await else {
            break;
        };
        let (i, outcome) = done.expect("enrolment task");
        if matches!(outcome, Outcome::Enrolled { .. }) {
            ok += 1;
        }
        outcomes[i] = outcome;
        if ok == KILL_AT {
            if let Some(mef) = kill.take() {
                mef.kill();
                // Nothing new is started; the ones in flight finish (mostly failing).
                next = devices.len();
            }
        }
    }
}

/// A TCP relay between one Enrolee and the MEF. It forwards everything, counting the MEF's
/// TLS application-data records; with `pass = Some(n)` it withholds every record after the
/// n-th and closes both sides, as a device that crashes (or loses its link) after sending its
/// success report and before reading the end-of-exchange. Returns the records seen.
async fn relay(mef: SocketAddr, pass: Option<usize>) -> (SocketAddr, JoinHandle<usize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (client, _) = l.accept().await.unwrap();
        let server = tokio::net::TcpStream::connect(mef).await.unwrap();
        let (mut cr, mut cw) = client.into_split();
        let (mut sr, mut sw) = server.into_split();
        let up = tokio::spawn(async move {
            let _ = tokio::io::copy(&mut cr, &mut sw).await;
        });
        let mut seen = 0;
        let mut head = [0u8; 5];
        loop {
            if sr.read_exact(&mut head).await.is_err() {
                break;
            }
            let mut body = vec![0u8; u16::from_be_bytes([head[3], head[4]]) as usize];
            if sr.read_exact(&mut body).await.is_err() {
                break;
            }
            if head[0] == 23 {
                seen += 1;
                if pass.is_some_and(|p| seen > p) {
                    break;
                }
            }
            if cw.write_all(&head).await.is_err() || cw.write_all(&body).await.is_err() {
                break;
            }
        }
        up.abort();
        seen
    });
    (addr, task)
}

/// Enrols device 0 through a relay to learn how many records an exchange takes, then devices
/// 1..=CUT with their last record withheld: each must fail at the Enrolee while the MEF holds
/// its committed enrolment. Returns the KeIDs the MEF holds for them.
async fn cut_exchanges(
    mef: SocketAddr,
    data_dir: &Path,
    kpms: &[Kpm],
    outcomes: &mut [Outcome],
) -> Vec<String> {
    let (addr, task) = relay(mef, None).await;
    outcomes[0] = enrol_one(params(addr, 0, &kpms[0])).await;
    assert!(
        matches!(outcomes[0], Outcome::Enrolled { .. }),
        "{:?}",
        outcomes[0]
    );
    let records = task.await.unwrap();
    assert!(
        records >= 2,
        "{records} application-data records in an exchange"
    );
    let mut held = Vec::new();
    for i in 1..=CUT {
        let (addr, task) = relay(mef, Some(records - 1)).await;
        outcomes[i] = enrol_one(params(addr, i, &kpms[i])).await;
        task.await.unwrap();
        assert!(
            matches!(outcomes[i], Outcome::Failed(_)),
            "device {i} got the withheld end-of-exchange"
        );
        let e = MefStore::open(data_dir)
            .unwrap()
            .enrolment_of(&kpm_id(i))
            .unwrap()
            .expect("the MEF committed before sending end-of-exchange");
        held.push(e.ke_id.to_string());
    }
    held
}

struct Census {
    enrolled: usize,
    failed: usize,
    not_tried: usize,
}

fn census(outcomes: &[Outcome]) -> Census {
    let mut c = Census {
        enrolled: 0,
        failed: 0,
        not_tried: 0,
    };
    for o in outcomes {
        match o {
            Outcome::Enrolled { .. } => c.enrolled += 1,
            Outcome::Failed(_) => c.failed += 1,
            Outcome::NotTried => c.not_tried += 1,
        }
    }
    c
}

/// Checks the store after the kill; returns the devices holding an enrolment they were never
/// told about (committed just before the kill), with its KeID.
fn check_after_kill(data_dir: &Path, outcomes: &[Outcome]) -> Vec<(usize, String)> {
    let store = MefStore::open(data_dir).unwrap();
    assert!(store.check().unwrap(), "integrity check after SIGKILL");
    let (devices, enrolments, key_regs) = store.counts().unwrap();
    assert_eq!(devices, DEVICES as u64);
    assert_eq!(key_regs, 0, "no key registrations were made");
    let mut ke_ids = HashSet::new();
    let mut unacked = Vec::new();
    let mut found = 0u64;
    for (i, o) in outcomes.iter().enumerate() {
        let e = store.enrolment_of(&kpm_id(i)).unwrap();
        if let Some(e) = &e {
            found += 1;
            assert!(
                ke_ids.insert(e.ke_id.to_string()),
                "duplicated KeID {}",
                e.ke_id
            );
            assert_eq!(e.enrolee_id.to_string(), enrolee_id(i));
            assert!(e
                .id2
                .as_deref()
                .is_some_and(|id2| id2.ends_with(&format!("|{}", enrolee_id(i)))));
            // The row decodes with its Ke (sealed under the KEK, bound to the KeID).
            assert!(store.enrolment_by_ke_id(&e.ke_id).unwrap().is_some());
        }
        match (o, e) {
            (Outcome::Enrolled { ke_id, .. }, Some(e)) => assert_eq!(
                &e.ke_id.to_string(),
                ke_id,
                "device {i} got end-of-exchange for one KeID, the MEF holds another"
            ),
            (Outcome::Enrolled { .. }, None) => {
                panic!("device {i} got end-of-exchange but the MEF lost its enrolment")
            }
            (Outcome::Failed(_), Some(e)) => unacked.push((i, e.ke_id.to_string())),
            (Outcome::Failed(_), None) => {}
            (Outcome::NotTried, Some(_)) => panic!("device {i} was never tried but is enrolled"),
            (Outcome::NotTried, None) => {}
        }
    }
    assert_eq!(found, enrolments, "one enrolment per device, none orphaned");
    unacked
}

async fn target_client(addr: SocketAddr) -> HttpClient {
    let c = TlsClient::new(ClientConfig::psk(
        PskIdentity::new(CSE_IDENTITY).unwrap(),
        Psk::new(&CSE_KEY).unwrap(),
    ))
    .unwrap();
    let ch = c
        .connect("127.0.0.1", addr.port(), Some(FQDN))
        .await
        .unwrap();
    HttpClient::new(ch, FQDN).await.unwrap()
}

async fn fetch(cse: &mut HttpClient, ke_id: &str) -> (Rsc, FetchCredentialsResponse) {
    let req = RequestPrimitive::new(
        Operation::Retrieve,
        format!("fetchCredentials/{ke_id}/22"),
        Some(CSE),
        "fetch",
    );
    let r = cse.send(&req).await.unwrap();
    let body = serde_json::from_value(r.pc.unwrap()).unwrap();
    (r.rsc, body)
}

#[test]
fn sigkill_during_1000_enrolments_then_restart() {
    let t0 = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = tmp.path().join("data");
    let config = write_config(tmp.path(), &data_dir);

    // Provision the devices directly in the store, each with a random Kpm.
    let kpms: Vec<Kpm> = (0..DEVICES)
        .map(|_| {
            let mut k = [0u8; 32];
            OsRng.fill_bytes(&mut k);
            Kpm::from_bytes(&k).unwrap()
        })
        .collect();
    {
        let mut store = MefStore::open(&data_dir).unwrap();
        let rows: Vec<(Device, Kpm)> = (0..DEVICES)
            .map(|i| {
                (
                    Device {
                        kpm_id: kpm_id(i),
                        enrolee_id: enrolee_id(i).parse().unwrap(),
                        targets: vec![CSE.parse().unwrap()],
                        enrolment_secs: 3600,
                        created: 0,
                        revoked: None,
                    },
                    kpms[i].clone(),
                )
            })
            .collect();
        let added = store.add_devices(&rows).unwrap();
        assert!(added.iter().all(|o| *o == AddOutcome::Added));
    }

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut outcomes = vec![Outcome::NotTried; DEVICES];

    // 1. A few exchanges lose their end-of-exchange after the MEF committed; then the rest
    //    enrol concurrently and the MEF is SIGKILLed after KILL_AT successes.
    let mut mef = MefProcess::start(&config, "first");
    let cut = rt.block_on(cut_exchanges(mef.addr, &data_dir, &kpms, &mut outcomes));
    let rest: Vec<usize> = (CUT + 1..DEVICES).collect();
    let t = Instant::now();
    rt.block_on(enrol_many(
        mef.addr,
        &rest,
        &kpms,
        &mut outcomes,
        Some(&mut mef),
    ));
    let first_run = t.elapsed();
    drop(mef);
    let c = census(&outcomes);
    assert!(
        c.enrolled >= KILL_AT,
        "{} enrolled before the kill",
        c.enrolled
    );
    assert!(c.enrolled < DEVICES, "the kill came after every enrolment");
    if let Some((i, Outcome::Failed(e))) = outcomes
        .iter()
        .enumerate()
        .skip(CUT + 1)
        .find(|(_, o)| matches!(o, Outcome::Failed(_)))
    {
        eprintln!("first failure after the kill: device {i}: {e}");
    }

    // 2. The store after SIGKILL (the MEF is down; opening it recovers the WAL).
    let unacked = check_after_kill(&data_dir, &outcomes);
    for (k, ke_id) in cut.iter().enumerate() {
        assert!(
            unacked.contains(&(k + 1, ke_id.clone())),
            "device {}: the unacknowledged enrolment survives the kill",
            k + 1
        );
    }
    eprintln!(
        "killed after {KILL_AT} acknowledged enrolments ({first_run:?}): enrolled {}, failed in \
         flight {}, not tried {}, committed but unacknowledged {}",
        c.enrolled,
        c.failed,
        c.not_tried,
        unacked.len()
    );

    // 3. Restart on the same data directory; every device that did not enrol enrols now.
    let mef = MefProcess::start(&config, "restarted");
    let before: Vec<Outcome> = outcomes.clone();
    let retry: Vec<usize> = (0..DEVICES)
        .filter(|&i| !matches!(outcomes[i], Outcome::Enrolled { .. }))
        .collect();
    let t = Instant::now();
    rt.block_on(enrol_many(mef.addr, &retry, &kpms, &mut outcomes, None));
    let second_run = t.elapsed();
    for &i in &retry {
        if let Outcome::Failed(e) = &outcomes[i] {
            panic!("device {i} did not re-enrol against the restarted MEF: {e}");
        }
    }
    eprintln!(
        "re-enrolled {} devices in {second_run:?} after the restart",
        retry.len()
    );

    // 4. The store with the restarted MEF running (a second connection; WAL).
    {
        let store = MefStore::open(&data_dir).unwrap();
        assert!(store.check().unwrap());
        assert_eq!(
            store.counts().unwrap(),
            (DEVICES as u64, DEVICES as u64, 0),
            "one enrolment per device that ever succeeded, no key registrations"
        );
        let mut ke_ids = HashSet::new();
        for (i, o) in outcomes.iter().enumerate() {
            let Outcome::Enrolled { ke_id, .. } = o else {
                unreachable!()
            };
            let e = store.enrolment_of(&kpm_id(i)).unwrap().unwrap();
            assert_eq!(
                &e.ke_id.to_string(),
                ke_id,
                "device {i}: the MEF holds its latest KeID"
            );
            assert!(ke_ids.insert(e.ke_id.to_string()));
        }
        for (i, stale) in &unacked {
            assert!(
                store
                    .enrolment_by_ke_id(&stale.parse().unwrap())
                    .unwrap()
                    .is_none(),
                "device {i}: the unacknowledged enrolment was replaced"
            );
        }
    }
    // The PKG's KMS survived the kill: one KPAK before and after.
    let kpaks: HashSet<&str> = outcomes
        .iter()
        .filter_map(|o| match o {
            Outcome::Enrolled { kpak, .. } => Some(kpak.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(kpaks.len(), 1, "one KPAK across the restart");

    // 5. The Enrolment Target fetches keys from the restarted MEF: devices enrolled before the
    //    kill (durable across it) and after the restart; stale KeIDs are unknown.
    let mut sample: Vec<usize> = (0..DEVICES)
        .filter(|&i| matches!(before[i], Outcome::Enrolled { .. }))
        .take(SAMPLE)
        .collect();
    sample.extend(retry.iter().take(SAMPLE));
    sample.extend(unacked.iter().map(|(i, _)| *i));
    rt.block_on(async {
        let mut cse = target_client(mef.addr).await;
        for &i in &sample {
            let Outcome::Enrolled { ke_id, ke, .. } = &outcomes[i] else {
                unreachable!()
            };
            let (rsc, f) = fetch(&mut cse, ke_id).await;
            assert_eq!(rsc, Rsc::Ok, "device {i}: {:?}", f.error_string);
            assert!(f.status);
            assert_eq!(f.enrolee_id.map(|e| e.to_string()), Some(enrolee_id(i)));
            let mine = target_key(ke, 22, CSE, SuidEncoding::AsciiDecimal).unwrap();
            assert_eq!(
                f.credential.as_ref().map(|c| c.expose_secret()),
                Some(&mine.expose_secret()[..])
            );
        }
        for (i, stale) in &unacked {
            let (rsc, f) = fetch(&mut cse, stale).await;
            assert_eq!(rsc, Rsc::NotFound, "device {i}: stale KeID still served");
            assert!(!f.status && f.credential.is_none());
        }
    });
    drop(mef);
    eprintln!("fault test took {:?}", t0.elapsed());
}
