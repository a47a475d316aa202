//! `m2msec mef device add|import|list|revoke` through the binary: the round trip, the CSV
//! import (valid, invalid, duplicate and conflicting rows; idempotent re-import; a large file
//! timed), bad inputs (exit 2, one line naming the argument), and no key material in any output.

mod support;

use support::write_key;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use serde_json::Value;

const FQDN: &str = "mef.sp.example";
const KEY1: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
const KEY2: &str = "f0e0d0c0b0a090807060504030201000f0e0d0c0b0a090807060504030201000";

struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Out {
    fn json(&self) -> Value {
        assert_eq!(self.code, Some(0), "stderr: {}", self.stderr);
        assert_eq!(self.stdout.lines().count(), 1, "one line: {}", self.stdout);
        serde_json::from_str(&self.stdout).unwrap()
    }
}

/// A MEF configuration in a temporary directory; every output is kept to check that no key
/// ever appears in one.
struct Mef {
    dir: tempfile::TempDir,
    outputs: std::cell::RefCell<String>,
}

impl Mef {
    fn new() -> Mef {
        let dir = tempfile::tempdir().unwrap();
        let cfg = format!(
            "fqdn = \"{FQDN}\"\ndata_dir = \"{}\"\n",
            dir.path().join("data").display()
        );
        std::fs::write(dir.path().join("mef.toml"), cfg).unwrap();
        Mef {
            dir,
            outputs: Default::default(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn config(&self) -> String {
        self.path("mef.toml").display().to_string()
    }

    /// `m2msec mef device <sub> --config CFG <args>`.
    fn device(&self, sub: &str, args: &[&str]) -> Out {
        let cfg = self.config();
        let mut all = vec!["mef", "device", sub, "--config", &cfg];
        all.extend_from_slice(args);
        let o = Command::new(env!("CARGO_BIN_EXE_m2msec"))
            .args(&all)
            .output()
            .expect("run m2msec");
        let out = Out {
            code: o.status.code(),
            stdout: String::from_utf8(o.stdout).unwrap(),
            stderr: String::from_utf8(o.stderr).unwrap(),
        };
        let mut log = self.outputs.borrow_mut();
        log.push_str(&out.stdout);
        log.push_str(&out.stderr);
        out
    }

    /// Exit 2, nothing on stdout, one stderr line in the CLI contract's form naming `arg`.
    fn bad(&self, sub: &str, args: &[&str], arg: &str) -> String {
        let o = self.device(sub, args);
        assert_eq!(o.code, Some(2), "{args:?}: {}", o.stderr);
        assert!(o.stdout.is_empty(), "{args:?}: {}", o.stdout);
        assert_eq!(o.stderr.trim_end().lines().count(), 1, "{:?}", o.stderr);
        assert!(
            o.stderr.starts_with(&format!("m2msec: error: {arg}: ")),
            "{args:?}: {:?} should name {arg}",
            o.stderr
        );
        o.stderr
    }

    /// No key (in either case) in any output so far.
    fn assert_no_keys(&self, keys: &[&str]) {
        let log = self.outputs.borrow().to_lowercase();
        for k in keys {
            assert!(!log.contains(&k.to_lowercase()), "key {k} printed");
            // Nor a long piece of it.
            assert!(
                !log.contains(&k.to_lowercase()[..24]),
                "part of {k} printed"
            );
        }
    }
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn add_list_revoke_round_trip() {
    let m = Mef::new();
    let k1 = m.path("dev1.key");
    write_key(&k1, KEY1, 0o600);
    let k1s = k1.display().to_string();
    let add1 = [
        "--kpm-id",
        "dev1@mef.sp.example",
        "--kpm-file",
        &k1s,
        "--enrolee-id",
        "Cdev1",
        "--target",
        "//sp.example/cse-in",
        "--target",
        "//sp.example/cse-in/Cmonitor",
    ];
    let v = m.device("add", &add1).json();
    assert_eq!(
        v,
        serde_json::json!({"kpm_id":"dev1@mef.sp.example","outcome":"added"})
    );
    assert!(m.device("add", &add1).stdout.starts_with("{\"kpm_id\":"));
    // Idempotent.
    let v = m.device("add", &add1).json();
    assert_eq!(v["outcome"], "unchanged");
    // The FQDN compares case-insensitively and is stored in lowercase.
    let mut upper = add1;
    upper[1] = "dev1@MEF.sp.example";
    assert_eq!(m.device("add", &upper).json()["outcome"], "unchanged");

    // Same KpmID, another key or other instructions: refused, nothing changes.
    let k2 = m.path("dev1-other.key");
    write_key(&k2, KEY2, 0o600);
    let k2s = k2.display().to_string();
    let mut other_key = add1;
    other_key[3] = &k2s;
    let e = m.bad("add", &other_key, "--kpm-id");
    assert!(e.contains("already provisioned"), "{e}");
    let mut other_secs = add1.to_vec();
    other_secs.extend(["--enrolment-secs", "60"]);
    m.bad("add", &other_secs, "--kpm-id");

    // A generated key: 32 bytes hex in a new 0600 file, never printed.
    let gen = m.path("dev2.key");
    let gens = gen.display().to_string();
    let add2 = [
        "--kpm-id",
        "dev2@mef.sp.example",
        "--generate",
        "--kpm-out",
        &gens,
        "--enrolee-id",
        "/cse-mn1",
        "--target",
        "//sp.example/cse-in",
        "--enrolment-secs",
        "3600",
    ];
    assert_eq!(m.device("add", &add2).json()["outcome"], "added");
    assert_eq!(mode(&gen), 0o600);
    let gen_hex = std::fs::read_to_string(&gen).unwrap().trim().to_string();
    assert_eq!(gen_hex.len(), 64);
    assert!(gen_hex.bytes().all(|b| b.is_ascii_hexdigit()));
    // --kpm-out must not exist; a generated key for an existing KpmID leaves no file.
    let e = m.bad("add", &add2, "--kpm-out");
    assert!(e.contains("exists"), "{e}");
    let gen3 = m.path("dev1-generated.key");
    let gen3s = gen3.display().to_string();
    m.bad(
        "add",
        &[
            "--kpm-id",
            "dev1@mef.sp.example",
            "--generate",
            "--kpm-out",
            &gen3s,
            "--enrolee-id",
            "Cdev1",
            "--target",
            "//sp.example/cse-in",
        ],
        "--kpm-id",
    );
    assert!(!gen3.exists(), "key file of a refused device removed");

    // list --json: both devices, their instructions, no enrolment yet.
    let v = m.device("list", &["--json"]).json();
    let a = v.as_array().unwrap();
    assert_eq!(a.len(), 2);
    assert_eq!(a[0]["kpm_id"], "dev1@mef.sp.example");
    assert_eq!(a[0]["enrolee_id"], "Cdev1");
    assert_eq!(
        a[0]["targets"],
        serde_json::json!(["//sp.example/cse-in", "//sp.example/cse-in/Cmonitor"])
    );
    assert_eq!(
        a[0]["enrolment_secs"],
        365 * 86_400,
        "default from the config"
    );
    assert_eq!(a[0]["state"], "active");
    assert_eq!(a[0]["revoked"], Value::Null);
    assert_eq!(a[0]["enrolment"], Value::Null);
    assert_eq!(a[1]["kpm_id"], "dev2@mef.sp.example");
    assert_eq!(a[1]["enrolment_secs"], 3600);
    let created = a[1]["created"].as_str().unwrap();
    assert_eq!(created.len(), 15, "m2m:timestamp {created}");
    assert_eq!(&created[8..9], "T");
    let v = m.device("list", &["--json", "--limit", "1"]).json();
    assert_eq!(v.as_array().unwrap().len(), 1);
    // The table.
    let t = m.device("list", &[]);
    assert_eq!(t.code, Some(0));
    let lines: Vec<&str> = t.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{}", t.stdout);
    assert!(lines[0].starts_with("KPM_ID"), "{}", lines[0]);
    assert!(lines[1].starts_with("dev1@mef.sp.example"));
    assert!(lines[1].contains("active"));
    // The secure environment and its TS-0003 §6.3.1 protection level.
    assert!(
        lines[3].starts_with("secure environment: files")
            && lines[3].contains("protection level 0"),
        "{}",
        lines[3]
    );

    // Revoke: once, then idempotently; unknown KpmID is an error.
    let v = m
        .device("revoke", &["--kpm-id", "dev1@mef.sp.example"])
        .json();
    assert_eq!(v["kpm_id"], "dev1@mef.sp.example");
    assert_eq!(v["outcome"], "revoked");
    let at = v["revoked"].as_str().unwrap().to_string();
    let v = m
        .device("revoke", &["--kpm-id", "dev1@mef.sp.example"])
        .json();
    assert_eq!(v["outcome"], "unchanged");
    assert_eq!(v["revoked"], at.as_str());
    let e = m.bad("revoke", &["--kpm-id", "nobody@mef.sp.example"], "--kpm-id");
    assert!(e.contains("no such device"), "{e}");
    m.bad("revoke", &["--kpm-id", "no-at-sign"], "--kpm-id");
    let v = m.device("list", &["--json"]).json();
    assert_eq!(v[0]["state"], "revoked");
    assert_eq!(v[0]["revoked"], at.as_str());
    assert_eq!(v[1]["state"], "active");
    // A revoked KpmID is not provisioned again, even with the same data.
    let e = m.bad("add", &add1, "--kpm-id");
    assert!(e.contains("revoked"), "{e}");

    m.assert_no_keys(&[KEY1, KEY2, &gen_hex]);
}

#[test]
fn bad_add_arguments_exit_2_with_one_line() {
    let m = Mef::new();
    let k = m.path("k.key");
    write_key(&k, KEY1, 0o600);
    let ks = k.display().to_string();
    let base = |kpm_id: &'static str, file: &str, enrolee: &'static str, target: &'static str| {
        vec![
            "--kpm-id".to_string(),
            kpm_id.to_string(),
            "--kpm-file".to_string(),
            file.to_string(),
            "--enrolee-id".to_string(),
            enrolee.to_string(),
            "--target".to_string(),
            target.to_string(),
        ]
    };
    let bad = |args: Vec<String>, arg: &str| {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        m.bad("add", &a, arg)
    };
    let e = bad(
        base("dev@other.example", &ks, "Cdev", "//sp.example/cse-in"),
        "--kpm-id",
    );
    assert!(e.contains(FQDN), "{e}");
    bad(base("dev", &ks, "Cdev", "//sp.example/cse-in"), "--kpm-id");
    bad(
        base("d v@mef.sp.example", &ks, "Cdev", "//sp.example/cse-in"),
        "--kpm-id",
    );
    bad(
        base(
            "dev@mef.sp.example",
            &ks,
            "not an id",
            "//sp.example/cse-in",
        ),
        "--enrolee-id",
    );
    bad(
        base("dev@mef.sp.example", &ks, "Cdev", "/cse-in"),
        "--target",
    );
    bad(
        base("dev@mef.sp.example", &ks, "Cdev", "//sp.example"),
        "--target",
    );
    let mut zero = base("dev@mef.sp.example", &ks, "Cdev", "//sp.example/cse-in");
    zero.extend(["--enrolment-secs".into(), "0".into()]);
    bad(zero, "--enrolment-secs");

    // Key files: group/other-readable, too short, too long, not hex, missing.
    let open = m.path("open.key");
    write_key(&open, KEY1, 0o644);
    let e = bad(
        base(
            "dev@mef.sp.example",
            &open.display().to_string(),
            "Cdev",
            "//sp.example/cse-in",
        ),
        "--kpm-file",
    );
    assert!(e.contains("0644") && e.contains("0600"), "{e}");
    for (name, content) in [
        ("short.key", "0001020304050607".to_string()),
        ("long.key", "ab".repeat(65)),
        ("nothex.key", format!("{}zz", &KEY1[..62])),
        ("odd.key", KEY1[..63].to_string()),
    ] {
        let p = m.path(name);
        write_key(&p, &content, 0o600);
        let e = bad(
            base(
                "dev@mef.sp.example",
                &p.display().to_string(),
                "Cdev",
                "//sp.example/cse-in",
            ),
            "--kpm-file",
        );
        assert!(!e.contains(&KEY1[..20]), "{e}");
    }
    bad(
        base(
            "dev@mef.sp.example",
            &m.path("missing.key").display().to_string(),
            "Cdev",
            "//sp.example/cse-in",
        ),
        "--kpm-file",
    );
    // Configuration problems name --config.
    let o = Command::new(env!("CARGO_BIN_EXE_m2msec"))
        .args(["mef", "device", "list", "--config", "/nonexistent/mef.toml"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).starts_with("m2msec: error: --config: "));
    // Nothing was added.
    assert_eq!(m.device("list", &["--json"]).json(), serde_json::json!([]));
    m.assert_no_keys(&[KEY1]);
}

fn key_hex(i: usize) -> String {
    // 32 bytes derived from the row number (distinct per row).
    let mut s = String::with_capacity(64);
    for j in 0..32u64 {
        let b = ((i as u64).wrapping_mul(2_654_435_761).wrapping_add(j * 97) >> (j % 8)) as u8;
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// A CSV of `n` valid rows `devN@mef.sp.example`.
fn valid_csv(n: usize) -> String {
    let mut s = String::with_capacity(n * 140 + 64);
    s.push_str("kpm_id,kpm_hex,enrolee_id,targets,enrolment_secs\n");
    for i in 0..n {
        let secs = if i % 2 == 0 {
            String::new()
        } else {
            "86400".into()
        };
        let _ = writeln!(
            s,
            "dev{i}@mef.sp.example,{},Cdev{i},//sp.example/cse-in;//sp.example/cse-in/Cmon,{secs}",
            key_hex(i)
        );
    }
    s
}

#[test]
fn import_reports_bad_rows_and_is_idempotent() {
    let m = Mef::new();
    // A device that the file conflicts with.
    let k = m.path("k.key");
    write_key(&k, KEY2, 0o600);
    let ks = k.display().to_string();
    m.device(
        "add",
        &[
            "--kpm-id",
            "taken@mef.sp.example",
            "--kpm-file",
            &ks,
            "--enrolee-id",
            "Ctaken",
            "--target",
            "//sp.example/cse-in",
        ],
    )
    .json();

    let k0 = key_hex(0);
    let csv = format!(
        "kpm_id,kpm_hex,enrolee_id,targets,enrolment_secs\n\
         a@mef.sp.example,{KEY1},Ca,//sp.example/cse-in,\n\
         b@MEF.sp.example,{k0},/cse-mn1,//sp.example/cse-in; //sp.example/cse-mn1 ,3600\n\
         \"c@mef.sp.example\",{k0},Cc,\"//sp.example/cse-in\",60\n\
         a@mef.sp.example,{KEY1},Ca,//sp.example/cse-in,\n\
         b@mef.sp.example,{KEY2},Cb,//sp.example/cse-in,\n\
         bad id@mef.sp.example,{KEY1},Cx,//sp.example/cse-in,\n\
         x@other.example,{KEY1},Cx,//sp.example/cse-in,\n\
         y@mef.sp.example,{}zz,Cy,//sp.example/cse-in,\n\
         y@mef.sp.example,0001020304,Cy,//sp.example/cse-in,\n\
         z@mef.sp.example,{KEY1},not an id,//sp.example/cse-in,\n\
         z@mef.sp.example,{KEY1},Cz,/cse-in,\n\
         z@mef.sp.example,{KEY1},Cz,,\n\
         z@mef.sp.example,{KEY1},Cz,//sp.example/cse-in,0\n\
         z@mef.sp.example,{KEY1},Cz,//sp.example/cse-in,soon\n\
         z@mef.sp.example,{KEY1},Cz,//sp.example/cse-in\n\
         z@mef.sp.example,{KEY1},Cz,//sp.example/cse-in,1,extra\n\
         \n\
         taken@mef.sp.example,{KEY1},Ctaken,//sp.example/cse-in,\n\
         d@mef.sp.example,{KEY2},Cd,//sp.example/cse-in,\n",
        &KEY1[..62]
    );
    let path = m.path("devices.csv");
    std::fs::write(&path, &csv).unwrap();
    let ps = path.display().to_string();

    let o = m.device("import", &["--csv", &ps]);
    let v = o.json();
    assert_eq!(v["rows"], 18, "{v}");
    assert_eq!(v["added"], 4, "{v}");
    assert_eq!(v["unchanged"], 0, "{v}");
    assert_eq!(v["invalid"], 11, "{v}");
    assert_eq!(v["duplicates"], 2, "{v}");
    assert_eq!(v["conflicts"], 1, "{v}");
    assert!(v["secs"].as_f64().unwrap() >= 0.0);
    assert!(v.get("problems").is_none());
    let keys: Vec<&str> = o
        .stdout
        .split('"')
        .skip(1)
        .step_by(2)
        .filter(|k| !k.is_empty())
        .collect();
    assert_eq!(
        keys,
        [
            "rows",
            "added",
            "unchanged",
            "invalid",
            "duplicates",
            "conflicts",
            "secs"
        ]
    );
    // One stderr line per problem (with its line number), then the summary line.
    let err: Vec<&str> = o.stderr.lines().collect();
    assert_eq!(err.len(), 15, "{}", o.stderr);
    assert!(err[0].starts_with("m2msec: import: line 5: duplicate: a@mef.sp.example:"));
    assert!(
        err[1].contains("line 6: duplicate: b@mef.sp.example:"),
        "{}",
        err[1]
    );
    assert!(err[2].contains("line 7: invalid: kpm_id:"), "{}", err[2]);
    assert!(err[3].contains("line 8: invalid: kpm_id:") && err[3].contains(FQDN));
    assert!(err[4].contains("line 9: invalid: y@mef.sp.example: kpm_hex: not hex"));
    assert!(err[5].contains("line 10:") && err[5].contains("16 to 64 bytes"));
    assert!(err[6].contains("line 11:") && err[6].contains("enrolee_id"));
    assert!(err[7].contains("line 12:") && err[7].contains("targets"));
    assert!(err[8].contains("line 13:") && err[8].contains("targets"));
    assert!(err[9].contains("line 14:") && err[9].contains("enrolment_secs"));
    assert!(err[10].contains("line 15:") && err[10].contains("enrolment_secs"));
    assert!(err[11].contains("line 16:") && err[11].contains("4 columns"));
    assert!(err[12].contains("line 17:") && err[12].contains("6 columns"));
    assert!(
        err[13].contains("line 19: conflict: taken@mef.sp.example:"),
        "{}",
        err[13]
    );
    assert!(err[14].starts_with("m2msec: import: "), "{}", err[14]);
    assert!(err[14].contains("18 rows: 4 added"), "{}", err[14]);

    let list = m.device("list", &["--json"]).json();
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["kpm_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "a@mef.sp.example",
            "b@mef.sp.example",
            "c@mef.sp.example",
            "d@mef.sp.example",
            "taken@mef.sp.example"
        ]
    );
    assert_eq!(list[0]["enrolment_secs"], 365 * 86_400);
    assert_eq!(
        list[1]["targets"],
        serde_json::json!(["//sp.example/cse-in", "//sp.example/cse-mn1"])
    );
    assert_eq!(list[1]["enrolment_secs"], 3600);
    assert_eq!(list[4]["enrolee_id"], "Ctaken", "the store's row is kept");

    // Again: nothing added; --json lists every problem.
    let v = m.device("import", &["--csv", &ps, "--json"]).json();
    assert_eq!(v["rows"], 18);
    assert_eq!(v["added"], 0);
    assert_eq!(v["unchanged"], 4);
    assert_eq!(v["invalid"], 11);
    assert_eq!(v["duplicates"], 2);
    assert_eq!(v["conflicts"], 1);
    let problems = v["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 14);
    assert_eq!(problems[0]["line"], 5);
    assert_eq!(problems[0]["kind"], "duplicate");
    assert_eq!(problems[0]["kpm_id"], "a@mef.sp.example");
    assert_eq!(problems[13]["kind"], "conflict");

    m.assert_no_keys(&[KEY1, KEY2, &k0]);
}

#[test]
fn import_caps_the_report_and_refuses_unreadable_files() {
    let m = Mef::new();
    let mut csv = String::from("kpm_id,kpm_hex,enrolee_id,targets,enrolment_secs\n");
    for i in 0..30 {
        let _ = writeln!(csv, "d{i}@mef.sp.example,00,Cd,//sp.example/cse-in,");
    }
    csv.push_str(&format!(
        "ok@mef.sp.example,{KEY1},Cok,//sp.example/cse-in,\n"
    ));
    let p = m.path("many-bad.csv");
    std::fs::write(&p, csv).unwrap();
    let o = m.device("import", &["--csv", &p.display().to_string()]);
    let v = o.json();
    assert_eq!(
        (v["rows"].as_u64(), v["invalid"].as_u64()),
        (Some(31), Some(30))
    );
    assert_eq!(v["added"], 1);
    let err: Vec<&str> = o.stderr.lines().collect();
    assert_eq!(err.len(), 22, "{}", o.stderr);
    assert!(
        err[20].contains("10 more problem rows not shown"),
        "{}",
        err[20]
    );

    // Line numbers: a quoted field over two lines, a blank line, no final newline.
    let p = m.path("lines.csv");
    std::fs::write(
        &p,
        "kpm_id,kpm_hex,enrolee_id,targets,enrolment_secs\r\n\
         \"m@mef.sp.example\",\"0011\n2233\",Cm,//sp.example/cse-in,\r\n\
         \r\n\
         n@mef.sp.example,00,Cn,//sp.example/cse-in,",
    )
    .unwrap();
    let v = m
        .device("import", &["--csv", &p.display().to_string(), "--json"])
        .json();
    assert_eq!(v["invalid"], 2, "{v}");
    assert_eq!(v["problems"][0]["line"], 2, "{v}");
    assert_eq!(v["problems"][1]["line"], 5, "{v}");

    // Not readable at all: exit 2, one line naming --csv.
    m.bad(
        "import",
        &["--csv", &m.path("missing.csv").display().to_string()],
        "--csv",
    );
    let empty = m.path("empty.csv");
    std::fs::write(&empty, "").unwrap();
    m.bad("import", &["--csv", &empty.display().to_string()], "--csv");
    let nohead = m.path("nohead.csv");
    std::fs::write(
        &nohead,
        format!("a@mef.sp.example,{KEY1},Ca,//sp.example/cse-in,\n"),
    )
    .unwrap();
    let e = m.bad("import", &["--csv", &nohead.display().to_string()], "--csv");
    assert!(e.contains("header"), "{e}");
    m.bad(
        "import",
        &["--csv", &m.dir.path().display().to_string()],
        "--csv",
    );
    m.assert_no_keys(&[KEY1]);
}

/// A large import, timed: `M2MSEC_IMPORT_ROWS` rows (default 100,000, the figure; about
/// 3 s per pass in the test profile), imported, then imported again.
#[test]
fn import_large_file_fast_and_idempotent() {
    let n: usize = std::env::var("M2MSEC_IMPORT_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let m = Mef::new();
    let p = m.path("large.csv");
    std::fs::write(&p, valid_csv(n)).unwrap();
    let ps = p.display().to_string();
    let t = Instant::now();
    let v = m.device("import", &["--csv", &ps]).json();
    let first = t.elapsed();
    assert_eq!(v["rows"], n);
    assert_eq!(v["added"], n);
    assert_eq!(v["invalid"], 0);
    let t = Instant::now();
    let v = m.device("import", &["--csv", &ps]).json();
    let again = t.elapsed();
    assert_eq!(v["added"], 0);
    assert_eq!(v["unchanged"], n);
    eprintln!(
        "import of {n} rows: {:.2} s (reported {}), re-import {:.2} s",
        first.as_secs_f64(),
        v["secs"],
        again.as_secs_f64()
    );
    assert!(first.as_secs() < 60, "{n} rows took {first:?}");
    let v = m.device("list", &["--json", "--limit", "3"]).json();
    assert_eq!(v.as_array().unwrap().len(), 3);
}
