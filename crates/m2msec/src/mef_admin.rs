//! `m2msec mef device add|import|list|revoke --config FILE`: operator tools on the MEF's device
//! store, `DATA_DIR/mef.sqlite3` ([`m2msec_mef::store`]). A device is its bootstrap credential
//! (KpmID and Kpm, TS-0003 §8.3.2.1) and instructions (Enrolee-ID, Enrolment Targets,
//! Enrolment Expiry). Each Kpm rests sealed under `DATA_DIR/kek`, or inside the PKCS#11 token of
//! `[secure_environment]`; no command prints one. `list` ends with the secure environment and
//! its TS-0003 §6.3.1 protection level.
//!
//! - A KpmID is `relKeyID@MEF-FQDN` (BRIEF A5) and its FQDN must be the MEF's `fqdn`. It is
//!   stored in canonical form (FQDN in lowercase): the device sends that text as psk_identity.
//! - Adding is idempotent: the same KpmID with the same key and instructions is `unchanged`; the
//!   same KpmID with anything else (or a revoked one) is a conflict, never an overwrite.
//! - `import` reads a CSV file with the header `kpm_id,kpm_hex,enrolee_id,targets,enrolment_secs`
//!   (targets separated by `;`, an empty enrolment_secs takes the configured default) in
//!   transactions of [`BATCH`] rows. Invalid rows, repeated KpmIDs within the file and conflicts
//!   with the store are reported with their line number and skipped; the rest is imported.
//! - `revoke` marks the device revoked and deletes its enrolment and key registrations in one
//!   transaction: a running MEF refuses its bootstrap handshakes and `/fetchCredentials` for its
//!   KeID from then on.
//!
//! The commands work while `m2msec mef serve` runs on the same data directory (SQLite WAL with a
//! busy timeout).

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::{Args, Subcommand};
use rand_core::{OsRng, RngCore};
use serde::Serialize;
use zeroize::Zeroizing;

use m2msec_core::clock::unix_now;
use m2msec_core::ids::KpmId;
use m2msec_core::secret::Kpm;
use m2msec_core::timestamp::Timestamp;
use m2msec_mef::store::{AddOutcome, Device, Enrolment, MefStore, StoreError};

use crate::error::{CliError, CliResult};
use crate::mef::{load, open_store};
use crate::util::print_json;
use m2msec_mef::config::MefServiceConfig as Loaded;
use m2msec_mef::provision::*;

/// Rows per transaction in `import` (each transaction is one fsync with `synchronous=FULL`).
pub const BATCH: usize = 1_000;
/// Row problems printed on stderr by `import` (all of them are in `--json` output).
const REPORT_CAP: usize = 20;

/// `m2msec mef device` subcommands.
#[derive(Subcommand)]
pub enum DeviceCmd {
    /// Provision one device (KpmID, Kpm, Enrolee-ID, Enrolment Targets) in the MEF's store.
    Add(AddArgs),
    /// Provision devices from a CSV file (idempotent; bad rows are reported and skipped).
    Import(ImportArgs),
    /// List devices with their enrolment (KeID, expiry); never prints keys.
    List(ListArgs),
    /// Revoke a device: its enrolment and key registrations are deleted, its handshakes refused.
    Revoke(RevokeArgs),
}

/// `m2msec mef device add`.
#[derive(Args)]
pub struct AddArgs {
    /// The MEF's TOML configuration (its fqdn and data_dir).
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// The KpmID, relKeyID@MEF-FQDN (the device's psk_identity).
    #[arg(long, value_name = "KPMID", required_unless_present = "cert_identity")]
    kpm_id: Option<String>,
    /// File holding the Kpm in hex, 16 to 64 bytes (mode 0600).
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with = "generate",
        required_unless_present_any = ["generate", "cert_identity"]
    )]
    kpm_file: Option<PathBuf>,
    /// Certificate-Based RSPF (TS-0003 §8.3.2.2) instead of a Kpm: the identity the device's
    /// certificate carries (its URI, dNSName or Node-ID SubjectAltName). The device is stored as
    /// KpmID `cert:<identity>`; PSK handshakes under that name are refused.
    #[arg(long, value_name = "SAN", conflicts_with_all = ["kpm_id", "kpm_file", "generate"])]
    cert_identity: Option<String>,
    /// Generate a random 32-byte Kpm and write it to --kpm-out for the device.
    #[arg(long, requires = "kpm_out")]
    generate: bool,
    /// With --generate: the new file (mode 0600) receiving the Kpm in hex; must not exist.
    #[arg(long, value_name = "FILE", requires = "generate")]
    kpm_out: Option<PathBuf>,
    /// The Enrolee-ID assigned to the device: an AE-ID or a CSE-ID.
    #[arg(long, value_name = "ID")]
    enrolee_id: String,
    /// An Enrolment Target (absolute CSE-ID or AE-ID, //SP/...); repeat for several.
    #[arg(long = "target", value_name = "ID", required = true)]
    targets: Vec<String>,
    /// Enrolment Expiry (Ke lifetime) in seconds; default from [enrolment] of the configuration.
    #[arg(long, value_name = "N")]
    enrolment_secs: Option<u64>,
}

/// `m2msec mef device import`.
#[derive(Args)]
pub struct ImportArgs {
    /// The MEF's TOML configuration.
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// CSV with the header kpm_id,kpm_hex,enrolee_id,targets,enrolment_secs.
    #[arg(long, value_name = "FILE")]
    csv: PathBuf,
    /// Add every problem row (line, kind, reason) to the JSON summary as "problems".
    #[arg(long)]
    json: bool,
}

/// `m2msec mef device list`.
#[derive(Args)]
pub struct ListArgs {
    /// The MEF's TOML configuration.
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// One JSON array on one line instead of a table.
    #[arg(long)]
    json: bool,
    /// At most N devices (in KpmID order).
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
}

/// `m2msec mef device revoke`.
#[derive(Args)]
pub struct RevokeArgs {
    /// The MEF's TOML configuration.
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// The KpmID to revoke.
    #[arg(long, value_name = "KPMID")]
    kpm_id: String,
}

/// Runs a `mef device` subcommand.
pub fn run(cmd: DeviceCmd) -> Result<ExitCode, CliError> {
    match cmd {
        DeviceCmd::Add(a) => add(a),
        DeviceCmd::Import(a) => import(a),
        DeviceCmd::List(a) => list(a),
        DeviceCmd::Revoke(a) => revoke(a),
    }
}

/// m2m:timestamp text of a unix time (the number itself if out of range).
fn ts(secs: i64) -> String {
    Timestamp::from_unix(secs)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| secs.to_string())
}

fn data_err(l: &Loaded, e: StoreError) -> CliError {
    CliError::arg(
        "--config",
        format!("data_dir {}: {e}", l.data_dir.display()),
    )
}

/// Why an existing row conflicts (revoked, or other key/instructions).
fn conflict_reason(store: &MefStore, kpm_id: &str) -> String {
    match store.device(kpm_id) {
        Ok(Some((d, _))) if d.revoked.is_some() => format!(
            "{kpm_id} was revoked at {}; a revoked KpmID is not provisioned again",
            ts(d.revoked.unwrap_or_default())
        ),
        _ => format!("{kpm_id} is already provisioned with another key or other instructions"),
    }
}

// ----- add ------------------------------------------------------------------------------------

#[derive(Serialize)]
struct AddOut<'a> {
    kpm_id: &'a str,
    outcome: &'static str,
}

fn add(a: AddArgs) -> CliResult<ExitCode> {
    let loaded = load(&a.config)?;
    let arg_of = |f: Field| match f {
        Field::KpmId => "--kpm-id",
        Field::Kpm => "--kpm-file",
        Field::Enrolee => "--enrolee-id",
        Field::Targets => "--target",
        Field::Secs => "--enrolment-secs",
    };
    let inv = |(f, m): (Field, String)| CliError::arg(arg_of(f), m);
    let kpm_id = match &a.cert_identity {
        Some(san) => {
            if san.is_empty() || san.len() > 255 || san.chars().any(|c| c.is_control() || c == ' ')
            {
                return Err(CliError::arg(
                    "--cert-identity",
                    "a SubjectAltName value: 1..255 characters, no spaces or controls",
                ));
            }
            format!("{}{san}", m2msec_mef::endpoint::CERT_DEVICE_PREFIX)
        }
        None => {
            check_kpm_id(a.kpm_id.as_deref().unwrap_or_default(), &loaded.mef.fqdn).map_err(inv)?
        }
    };
    let enrolee_id = check_enrolee(&a.enrolee_id).map_err(inv)?;
    let targets = check_targets(a.targets.iter().map(String::as_str)).map_err(inv)?;
    let enrolment_secs =
        check_secs(a.enrolment_secs.unwrap_or(loaded.default_enrolment_secs)).map_err(inv)?;
    let (kpm, written) = match (&a.kpm_file, &a.kpm_out) {
        // A certificate device: a random placeholder Kpm that nothing ever uses.
        _ if a.cert_identity.is_some() => {
            let mut raw = Zeroizing::new([0u8; 32]);
            OsRng.fill_bytes(&mut raw[..]);
            (Kpm::from_bytes(&raw[..]).map_err(CliError::other)?, None)
        }
        (Some(f), _) => {
            let text =
                m2msec_keystore::read_secret_file(f).map_err(|e| CliError::arg("--kpm-file", e))?;
            let kpm = parse_kpm_hex(&text)
                .map_err(|(_, m)| CliError::arg("--kpm-file", format!("{}: {m}", f.display())))?;
            (kpm, None)
        }
        (None, Some(out)) => {
            if out.exists() {
                return Err(CliError::arg(
                    "--kpm-out",
                    format!("{} exists; refusing to overwrite it", out.display()),
                ));
            }
            let mut raw = Zeroizing::new([0u8; 32]);
            OsRng.fill_bytes(&mut raw[..]);
            let kpm = Kpm::from_bytes(&raw[..]).map_err(CliError::other)?;
            (kpm, Some(out.clone()))
        }
        (None, None) => {
            return Err(CliError::arg(
                "--kpm-file",
                "give --kpm-file or --generate --kpm-out",
            ))
        }
    };
    let mut store = open_store(&loaded)?;
    // A generated key goes to the device's file first; the file is removed again unless the
    // device was added, so the file exists only if the row does.
    if let Some(out) = &written {
        let text = Zeroizing::new(format!("{}\n", hex::encode(kpm.expose_secret())));
        m2msec_keystore::write_secret_file(out, text.as_bytes())
            .map_err(|e| CliError::arg("--kpm-out", e))?;
    }
    let device = Device {
        kpm_id: kpm_id.clone(),
        enrolee_id,
        targets,
        enrolment_secs,
        created: unix_now(),
        revoked: None,
    };
    let res = store.add_device(&device, &kpm);
    let added = matches!(res, Ok(AddOutcome::Added));
    if let (Some(out), false) = (&written, added) {
        let _ = std::fs::remove_file(out);
    }
    let outcome = match res.map_err(|e| data_err(&loaded, e))? {
        AddOutcome::Added => "added",
        AddOutcome::Unchanged => "unchanged",
        AddOutcome::Conflict => {
            return Err(CliError::arg("--kpm-id", conflict_reason(&store, &kpm_id)))
        }
    };
    print_json(&AddOut {
        kpm_id: &kpm_id,
        outcome,
    })?;
    Ok(ExitCode::SUCCESS)
}

// ----- import ---------------------------------------------------------------------------------

/// One reported row.
#[derive(Serialize)]
struct Problem {
    line: u64,
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    kpm_id: Option<String>,
    reason: String,
}

/// The import summary (stdout, one JSON line, in this key order).
#[derive(Serialize, Default)]
struct Summary {
    rows: u64,
    added: u64,
    unchanged: u64,
    invalid: u64,
    duplicates: u64,
    conflicts: u64,
    secs: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    problems: Option<Vec<Problem>>,
}

/// Counts, reports (first [`REPORT_CAP`] on stderr) and keeps the problems for `--json`.
struct Reporter {
    bar: Option<indicatif::ProgressBar>,
    printed: usize,
    keep: Option<Vec<Problem>>,
}

impl Reporter {
    fn report(&mut self, p: Problem) {
        if self.printed < REPORT_CAP {
            self.printed += 1;
            let who = p
                .kpm_id
                .as_deref()
                .map(|k| format!(" {k}:"))
                .unwrap_or_default();
            let line = format!(
                "m2msec: import: line {}: {}:{who} {}",
                p.line,
                p.kind,
                p.reason.replace(['\n', '\r'], " ")
            );
            match &self.bar {
                Some(b) => b.suspend(|| eprintln!("{line}")),
                None => eprintln!("{line}"),
            }
        }
        if let Some(k) = &mut self.keep {
            k.push(p);
        }
    }
}

/// A validated row awaiting its batch.
struct Pending {
    line: u64,
    device: Device,
    kpm: Kpm,
}

fn csv_err(path: &Path, m: impl std::fmt::Display) -> CliError {
    CliError::arg("--csv", format!("{}: {m}", path.display()))
}

fn import(a: ImportArgs) -> CliResult<ExitCode> {
    let started = Instant::now();
    let loaded = load(&a.config)?;
    let fqdn = loaded.mef.fqdn.clone();
    let meta = std::fs::metadata(&a.csv).map_err(|e| csv_err(&a.csv, e))?;
    if !meta.is_file() {
        return Err(csv_err(&a.csv, "not a regular file"));
    }
    // In memory (100,000 rows are about 15 MB), wiped afterwards: it holds keys.
    let data = Zeroizing::new(std::fs::read(&a.csv).map_err(|e| csv_err(&a.csv, e))?);
    let mut rdr = reader(&data[..]);
    let mut rec = csv::ByteRecord::new();
    // The header: exactly the documented columns (a UTF-8 byte order mark is tolerated).
    let header_ok = match rdr.read_byte_record(&mut rec) {
        Ok(true) => is_header(&rec),
        Ok(false) => return Err(csv_err(&a.csv, "empty file: no header row")),
        Err(e) if e.is_io_error() => return Err(csv_err(&a.csv, e)),
        Err(_) => false,
    };
    if !header_ok {
        return Err(csv_err(
            &a.csv,
            format!("the first row must be the header {}", COLUMNS.join(",")),
        ));
    }
    let mut store = open_store(&loaded)?;

    let bar = std::io::stderr().is_terminal().then(|| {
        let b = indicatif::ProgressBar::new(data.len() as u64);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    });
    let mut rep = Reporter {
        bar,
        printed: 0,
        keep: a.json.then(Vec::new),
    };
    let mut sum = Summary::default();
    let mut seen: HashMap<String, u64> = HashMap::new();
    let mut batch: Vec<Pending> = Vec::with_capacity(BATCH);
    let now = unix_now();

    let flush = |batch: &mut Vec<Pending>,
                 sum: &mut Summary,
                 rep: &mut Reporter,
                 store: &mut MefStore|
     -> CliResult<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let rows: Vec<(Device, Kpm)> = batch
            .iter()
            .map(|p| (p.device.clone(), p.kpm.clone()))
            .collect();
        let outs = store.add_devices(&rows).map_err(|e| {
            CliError::arg(
                "--config",
                format!(
                    "data_dir {}: {e} (rows before line {} are imported; the import can be run again)",
                    loaded.data_dir.display(),
                    batch[0].line
                ),
            )
        })?;
        for (p, o) in batch.iter().zip(outs) {
            match o {
                AddOutcome::Added => sum.added += 1,
                AddOutcome::Unchanged => sum.unchanged += 1,
                AddOutcome::Conflict => {
                    sum.conflicts += 1;
                    rep.report(Problem {
                        line: p.line,
                        kind: "conflict",
                        kpm_id: Some(p.device.kpm_id.clone()),
                        reason: conflict_reason(store, &p.device.kpm_id),
                    });
                }
            }
        }
        batch.clear();
        if let Some(b) = &rep.bar {
            b.set_message(format!("{} rows", sum.rows));
        }
        Ok(())
    };

    loop {
        let res = rdr.read_byte_record(&mut rec);
        let end = rdr.position();
        let line = start_line(&data, end, &rec);
        match res {
            Ok(false) => break,
            Ok(true) => {
                sum.rows += 1;
                let checked = parse_record(&rec, &fqdn, loaded.default_enrolment_secs, now);
                match checked {
                    Err((kpm_id, reason)) => {
                        sum.invalid += 1;
                        rep.report(Problem {
                            line,
                            kind: "invalid",
                            kpm_id,
                            reason,
                        });
                    }
                    Ok((device, kpm)) => {
                        if let Some(first) = seen.get(&device.kpm_id) {
                            sum.duplicates += 1;
                            rep.report(Problem {
                                line,
                                kind: "duplicate",
                                kpm_id: Some(device.kpm_id.clone()),
                                reason: format!("the KpmID is already on line {first}; skipped"),
                            });
                        } else {
                            seen.insert(device.kpm_id.clone(), line);
                            batch.push(Pending { line, device, kpm });
                        }
                    }
                }
            }
            Err(e) if e.is_io_error() => return Err(csv_err(&a.csv, e)),
            Err(e) => {
                sum.rows += 1;
                sum.invalid += 1;
                rep.report(Problem {
                    line,
                    kind: "invalid",
                    kpm_id: None,
                    reason: format!("malformed CSV ({e})"),
                });
            }
        }
        if batch.len() >= BATCH {
            flush(&mut batch, &mut sum, &mut rep, &mut store)?;
        }
        if let Some(b) = &rep.bar {
            if sum.rows % 256 == 0 {
                b.set_position(rdr.position().byte());
            }
        }
    }
    flush(&mut batch, &mut sum, &mut rep, &mut store)?;
    if let Some(b) = rep.bar.take() {
        b.finish_and_clear();
    }
    let problems = sum.invalid + sum.duplicates + sum.conflicts;
    if rep.printed < problems as usize {
        eprintln!(
            "m2msec: import: {} more problem rows not shown{}",
            problems as usize - rep.printed,
            if a.json { "" } else { " (--json lists all)" }
        );
    }
    sum.secs = (started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0;
    eprintln!(
        "m2msec: import: {}: {} rows: {} added, {} unchanged, {} invalid, {} duplicates, {} conflicts in {:.3} s",
        a.csv.display(),
        sum.rows,
        sum.added,
        sum.unchanged,
        sum.invalid,
        sum.duplicates,
        sum.conflicts,
        sum.secs
    );
    sum.problems = rep.keep.take();
    print_json(&sum)?;
    Ok(ExitCode::SUCCESS)
}

// ----- list -----------------------------------------------------------------------------------

#[derive(Serialize)]
struct EnrolmentOut {
    ke_id: String,
    expires: String,
    expired: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    id2: Option<String>,
}

#[derive(Serialize)]
struct DeviceOut {
    kpm_id: String,
    enrolee_id: String,
    targets: Vec<String>,
    enrolment_secs: u64,
    created: String,
    state: &'static str,
    revoked: Option<String>,
    enrolment: Option<EnrolmentOut>,
}

fn describe(d: Device, e: Option<Enrolment>, now: i64) -> DeviceOut {
    DeviceOut {
        kpm_id: d.kpm_id,
        enrolee_id: d.enrolee_id.to_string(),
        targets: d.targets.iter().map(ToString::to_string).collect(),
        enrolment_secs: d.enrolment_secs,
        created: ts(d.created),
        state: if d.revoked.is_some() {
            "revoked"
        } else {
            "active"
        },
        revoked: d.revoked.map(ts),
        enrolment: e.map(|e| EnrolmentOut {
            ke_id: e.ke_id.to_string(),
            expires: ts(e.expires),
            expired: e.expires <= now,
            id2: e.id2,
        }),
    }
}

fn list(a: ListArgs) -> CliResult<ExitCode> {
    use std::io::Write;
    let loaded = load(&a.config)?;
    let store = open_store(&loaded)?;
    let now = unix_now();
    let limit = a.limit.unwrap_or(usize::MAX);
    let out = std::io::stdout();
    let mut out = std::io::BufWriter::new(out.lock());
    let io = |e: std::io::Error| CliError::other(format!("stdout: {e}"));
    let mut table: Vec<[String; 7]> = Vec::new();
    let mut after: Option<String> = None;
    let mut n = 0usize;
    if a.json {
        out.write_all(b"[").map_err(io)?;
    }
    while n < limit {
        let page = store
            .devices_with_enrolments(after.as_deref(), (limit - n).min(BATCH))
            .map_err(|e| data_err(&loaded, e))?;
        if page.is_empty() {
            break;
        }
        after = page.last().map(|(d, _)| d.kpm_id.clone());
        for (d, e) in page {
            let o = describe(d, e, now);
            if a.json {
                if n > 0 {
                    out.write_all(b",").map_err(io)?;
                }
                serde_json::to_writer(&mut out, &o).map_err(CliError::other)?;
            } else {
                let state = match &o.revoked {
                    Some(at) => format!("revoked {at}"),
                    None => "active".into(),
                };
                let (ke_id, expires) = match &o.enrolment {
                    Some(e) if e.expired => (e.ke_id.clone(), format!("{} (expired)", e.expires)),
                    Some(e) => (e.ke_id.clone(), e.expires.clone()),
                    None => ("-".into(), "-".into()),
                };
                table.push([
                    o.kpm_id,
                    o.enrolee_id,
                    o.targets.join(","),
                    o.enrolment_secs.to_string(),
                    state,
                    ke_id,
                    expires,
                ]);
            }
            n += 1;
        }
    }
    if a.json {
        out.write_all(b"]\n").map_err(io)?;
        out.flush().map_err(io)?;
        return Ok(ExitCode::SUCCESS);
    }
    let head = [
        "KPM_ID",
        "ENROLEE_ID",
        "TARGETS",
        "ENROLMENT_SECS",
        "STATE",
        "KE_ID",
        "ENROLMENT_EXPIRES",
    ]
    .map(String::from);
    let mut width = [0usize; 7];
    for r in std::iter::once(&head).chain(table.iter()) {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    for r in std::iter::once(&head).chain(table.iter()) {
        let mut line = String::new();
        for (i, (c, w)) in r.iter().zip(width).enumerate() {
            if i + 1 == r.len() {
                line.push_str(c);
            } else {
                line.push_str(&format!("{c:<w$}  "));
            }
        }
        writeln!(out, "{}", line.trim_end()).map_err(io)?;
    }
    writeln!(
        out,
        "{}",
        crate::util::secure_environment_line(&loaded.secure_environment)
    )
    .map_err(io)?;
    out.flush().map_err(io)?;
    Ok(ExitCode::SUCCESS)
}

// ----- revoke ---------------------------------------------------------------------------------

#[derive(Serialize)]
struct RevokeOut {
    kpm_id: String,
    outcome: &'static str,
    revoked: String,
}

fn revoke(a: RevokeArgs) -> CliResult<ExitCode> {
    let loaded = load(&a.config)?;
    // The canonical form when it parses (FQDN in lowercase); stored rows are canonical.
    let kpm_id = a
        .kpm_id
        .parse::<KpmId>()
        .map(|k| k.to_string())
        .map_err(|e| CliError::arg("--kpm-id", e))?;
    let mut store = open_store(&loaded)?;
    let now = unix_now();
    let revoked = store
        .revoke_device(&kpm_id, now)
        .map_err(|e| data_err(&loaded, e))?;
    let out = if revoked {
        RevokeOut {
            kpm_id,
            outcome: "revoked",
            revoked: ts(now),
        }
    } else {
        match store.device(&kpm_id).map_err(|e| data_err(&loaded, e))? {
            Some((d, _)) => RevokeOut {
                revoked: ts(d.revoked.unwrap_or(now)),
                kpm_id,
                outcome: "unchanged",
            },
            None => {
                return Err(CliError::arg(
                    "--kpm-id",
                    format!("{kpm_id}: no such device"),
                ))
            }
        }
    };
    print_json(&out)?;
    Ok(ExitCode::SUCCESS)
}
