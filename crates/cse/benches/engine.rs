//! Requests per second of RETRIEVE and CREATE `<contentInstance>` through `Cse::handle` on a file
//! `SqliteStore` (WAL, synchronous=FULL), against a baseline measured in the same run: the same
//! SELECT / INSERT done directly through rusqlite on a database with the same settings.
//!
//! `cargo bench -p m2msec-cse --bench engine` prints criterion reports and `RATIO …` lines
//! (engine time per request / baseline time per operation). Without `--bench` in argv (as under
//! `cargo test --all-targets`) it runs every path once, untimed, and checks the results.

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::Criterion;
use m2msec_core::ids::{CredentialId, KpsaId};
use m2msec_cse::{
    Association, CredentialKind, Cse, CseConfig, CseType, Operation, RequestPrimitive, Rsc,
    SecurityContext, SqliteStore,
};
use rusqlite::{params, Connection};
use serde_json::json;

struct Setup {
    cse: Cse<SqliteStore>,
    sa: SecurityContext,
    aei: String,
    cin_ri: String,
    _dir: tempfile::TempDir,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = CseConfig {
        sp: "sp.example".parse().expect("sp"),
        cse_id: "/cse-in".parse().expect("cse id"),
        cb_rn: "cb".into(),
        cse_type: CseType::In,
        poa: vec![],
    };
    let mut cse = Cse::new(cfg, SqliteStore::open(dir.path()).expect("store")).expect("cse");
    let kpsa: KpsaId = "bench@mef.sp.example".parse().expect("kpsa");
    let sa = SecurityContext::Association(Association {
        credential_kind: CredentialKind::Psk,
        credential_id: CredentialId::for_kpsa(&kpsa),
        bound: None,
    });
    let r = cse.handle(
        &sa,
        RequestPrimitive::new(Operation::Create, "cb", None, "1")
            .with_ty(2)
            .with_pc(json!({"m2m:ae": {"api": "Nbench", "rr": false}})),
    );
    assert_eq!(r.rsc, Rsc::Created);
    let aei = r.to.clone().expect("aei");
    let r = cse.handle(
        &sa,
        RequestPrimitive::new(Operation::Create, format!("cb/{aei}"), Some(&aei), "2")
            .with_ty(3)
            .with_pc(json!({"m2m:cnt": {"rn": "c"}})),
    );
    assert_eq!(r.rsc, Rsc::Created);
    let r = cse.handle(&sa, cin_request(&aei));
    assert_eq!(r.rsc, Rsc::Created);
    let cin_ri = r.pc.as_ref().expect("pc")["m2m:cin"]["ri"]
        .as_str()
        .expect("ri")
        .to_string();
    Setup {
        cse,
        sa,
        aei,
        cin_ri,
        _dir: dir,
    }
}

fn cin_request(aei: &str) -> RequestPrimitive {
    RequestPrimitive::new(Operation::Create, format!("cb/{aei}/c"), Some(aei), "3")
        .with_ty(4)
        .with_pc(json!({"m2m:cin": {"con": "21.5", "cnf": "text/plain:0"}}))
}

fn retrieve_request(s: &Setup) -> RequestPrimitive {
    RequestPrimitive::new(Operation::Retrieve, s.cin_ri.clone(), Some(&s.aei), "4")
}

/// The baseline database: one table like the store's, same pragmas.
fn baseline(dir: &Path) -> Connection {
    let c = Connection::open(dir.join("baseline.sqlite3")).expect("open");
    c.pragma_update(None, "journal_mode", "WAL").expect("wal");
    c.pragma_update(None, "synchronous", "FULL").expect("sync");
    c.execute_batch(
        "CREATE TABLE IF NOT EXISTS t (ri TEXT PRIMARY KEY, pi TEXT, rn TEXT, ty INTEGER, \
         path TEXT UNIQUE, body TEXT);",
    )
    .expect("schema");
    c.execute(
        "INSERT OR REPLACE INTO t VALUES ('x', 'p', 'x', 4, 'cb/x', ?1)",
        [r#"{"con":"21.5"}"#],
    )
    .expect("row");
    c
}

fn baseline_select(c: &Connection) -> String {
    c.prepare_cached("SELECT body FROM t WHERE ri = ?1")
        .expect("prepare")
        .query_row(["x"], |r| r.get(0))
        .expect("row")
}

fn baseline_insert(c: &mut Connection, n: u64) {
    let tx = c.transaction().expect("tx");
    tx.prepare_cached("INSERT INTO t VALUES (?1, 'p', ?1, 4, ?2, ?3)")
        .expect("prepare")
        .execute(params![
            format!("cin{n}"),
            format!("cb/cin{n}"),
            r#"{"con":"21.5"}"#
        ])
        .expect("insert");
    tx.commit().expect("commit");
}

fn time_per_op(iters: u64, mut f: impl FnMut(u64)) -> Duration {
    let start = Instant::now();
    for i in 0..iters {
        f(i);
    }
    start.elapsed() / u32::try_from(iters).unwrap_or(u32::MAX)
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let mut s = setup();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut base = baseline(dir.path());

    if !bench {
        let r = s.cse.handle(&s.sa, retrieve_request(&s));
        assert_eq!(r.rsc, Rsc::Ok);
        let r = s.cse.handle(&s.sa, cin_request(&s.aei));
        assert_eq!(r.rsc, Rsc::Created);
        assert!(!baseline_select(&base).is_empty());
        baseline_insert(&mut base, 0);
        println!("engine bench: smoke run ok (pass --bench to measure)");
        return;
    }

    let mut c = Criterion::default().configure_from_args();
    c.bench_function("retrieve/engine", |b| {
        b.iter(|| black_box(s.cse.handle(&s.sa, retrieve_request(&s))))
    });
    c.bench_function("retrieve/baseline_sqlite", |b| {
        b.iter(|| black_box(baseline_select(&base)))
    });
    let mut n = 1_000_000u64;
    c.bench_function("create_cin/engine", |b| {
        b.iter(|| black_box(s.cse.handle(&s.sa, cin_request(&s.aei))))
    });
    c.bench_function("create_cin/baseline_sqlite", |b| {
        b.iter(|| {
            n += 1;
            baseline_insert(&mut base, n)
        })
    });
    c.final_summary();

    // Same-run ratios from interleaved plain loops.
    let iters = 2000;
    let e_r = time_per_op(iters, |_| {
        black_box(s.cse.handle(&s.sa, retrieve_request(&s)));
    });
    let b_r = time_per_op(iters, |_| {
        black_box(baseline_select(&base));
    });
    let iters_w = 300;
    let e_c = time_per_op(iters_w, |_| {
        black_box(s.cse.handle(&s.sa, cin_request(&s.aei)));
    });
    let b_c = time_per_op(iters_w, |i| baseline_insert(&mut base, 10_000_000 + i));
    let rps = |d: Duration| 1.0 / d.as_secs_f64().max(1e-12);
    println!(
        "RATIO retrieve engine/baseline = {:.2} (engine {:.0} req/s, baseline {:.0} select/s)",
        e_r.as_secs_f64() / b_r.as_secs_f64().max(1e-12),
        rps(e_r),
        rps(b_r)
    );
    println!(
        "RATIO create_cin engine/baseline = {:.2} (engine {:.0} req/s, baseline {:.0} insert/s)",
        e_c.as_secs_f64() / b_c.as_secs_f64().max(1e-12),
        rps(e_c),
        rps(b_c)
    );
}
