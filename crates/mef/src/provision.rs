//! Provisioning input (TS-0003 §8.3.2.1 step 1–2: bootstrap credential and instruction
//! configuration): validation of a device row, shared by `m2msec mef device add` and the bulk
//! CSV import, and the CSV reading of that import. Messages never quote key material.

use zeroize::Zeroizing;

use m2msec_core::ids::{AeId, CseId, EnroleeId, Fqdn, KpmId, TargetId};
use m2msec_core::secret::Kpm;

use crate::store::Device;

/// Smallest Kpm accepted, bytes.
pub const KPM_MIN: usize = 16;
/// Largest Kpm accepted, bytes.
pub const KPM_MAX: usize = 64;
/// Longest Enrolment Expiry accepted (100 years), seconds: the expiry must stay a valid
/// m2m:timestamp.
pub const MAX_ENROLMENT_SECS: u64 = 100 * 366 * 86_400;
/// The CSV header.
pub const COLUMNS: [&str; 5] = [
    "kpm_id",
    "kpm_hex",
    "enrolee_id",
    "targets",
    "enrolment_secs",
];

/// The field a validation failure is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// `kpm_id`.
    KpmId,
    /// `kpm_hex`.
    Kpm,
    /// `enrolee_id`.
    Enrolee,
    /// `targets`.
    Targets,
    /// `enrolment_secs`.
    Secs,
}

impl Field {
    /// The CSV column of the field.
    pub fn column(self) -> &'static str {
        match self {
            Field::KpmId => "kpm_id",
            Field::Kpm => "kpm_hex",
            Field::Enrolee => "enrolee_id",
            Field::Targets => "targets",
            Field::Secs => "enrolment_secs",
        }
    }
}

/// A validated value, or the field and why.
pub type Checked<T> = Result<T, (Field, String)>;

/// The canonical KpmID, whose FQDN must be the MEF's.
pub fn check_kpm_id(s: &str, fqdn: &Fqdn) -> Checked<String> {
    let id: KpmId = s.parse().map_err(|e| (Field::KpmId, format!("{e}")))?;
    if id.fqdn() != fqdn {
        return Err((
            Field::KpmId,
            format!("the FQDN of {s:?} is not this MEF's ({fqdn}); a KpmID is relKeyID@{fqdn}"),
        ));
    }
    Ok(id.to_string())
}

/// A Kpm from hex. Messages never quote the text (it is key material).
pub fn parse_kpm_hex(text: &str) -> Checked<Kpm> {
    let v = text.trim();
    let bad = |m: String| (Field::Kpm, m);
    if v.is_empty() {
        return Err(bad("empty".into()));
    }
    if let Some(i) = v.bytes().position(|c| !c.is_ascii_hexdigit()) {
        return Err(bad(format!("not hex (invalid character at position {i})")));
    }
    if v.len() % 2 != 0 {
        return Err(bad(format!("odd number of hex digits ({})", v.len())));
    }
    let raw = Zeroizing::new(hex::decode(v).map_err(|e| bad(e.to_string()))?);
    if raw.len() < KPM_MIN || raw.len() > KPM_MAX {
        return Err(bad(format!(
            "a Kpm must be {KPM_MIN} to {KPM_MAX} bytes, got {}",
            raw.len()
        )));
    }
    Kpm::from_bytes(&raw).map_err(|e| bad(e.to_string()))
}

/// An Enrolee-ID: an AE-ID or a CSE-ID in any of their forms.
pub fn check_enrolee(s: &str) -> Checked<EnroleeId> {
    if let Ok(id) = s.parse::<EnroleeId>() {
        return Ok(id);
    }
    let why = match (s.parse::<AeId>(), s.parse::<CseId>()) {
        (Err(a), Err(c)) => format!("{a}; {c}"),
        _ => String::new(),
    };
    Err((
        Field::Enrolee,
        format!("{s:?} is neither an AE-ID nor a CSE-ID ({why})"),
    ))
}

/// Enrolment Targets: at least one, each an absolute CSE-ID or AE-ID; repeats are dropped.
pub fn check_targets<'a>(ts: impl IntoIterator<Item = &'a str>) -> Checked<Vec<TargetId>> {
    let mut out: Vec<TargetId> = Vec::new();
    for t in ts {
        let id = match t.parse::<TargetId>() {
            Ok(id) if id.is_m2m_id() => id,
            _ => {
                return Err((
                    Field::Targets,
                    format!("{t:?} is not an absolute CSE-ID or AE-ID (//SP-ID/...)"),
                ))
            }
        };
        if !out.contains(&id) {
            out.push(id);
        }
    }
    if out.is_empty() {
        return Err((Field::Targets, "at least one Enrolment Target".into()));
    }
    Ok(out)
}

/// An Enrolment Expiry in seconds: 1 to [`MAX_ENROLMENT_SECS`].
pub fn check_secs(n: u64) -> Checked<u64> {
    if n == 0 || n > MAX_ENROLMENT_SECS {
        return Err((
            Field::Secs,
            format!("must be 1 to {MAX_ENROLMENT_SECS} seconds, got {n}"),
        ));
    }
    Ok(n)
}

/// Validates one CSV record (already trimmed).
pub fn check_record(
    rec: &[&str],
    fqdn: &Fqdn,
    default_secs: u64,
    now: i64,
) -> Result<(Device, Kpm), (Option<String>, String)> {
    if rec.len() != COLUMNS.len() {
        return Err((
            None,
            format!("{} columns, expected {}", rec.len(), COLUMNS.len()),
        ));
    }
    let col = |(f, m): (Field, String)| format!("{}: {m}", f.column());
    let kpm_id = check_kpm_id(rec[0], fqdn).map_err(|e| (None, col(e)))?;
    let with_id = |e: (Field, String)| (Some(kpm_id.clone()), col(e));
    let kpm = parse_kpm_hex(rec[1]).map_err(with_id)?;
    let enrolee_id = check_enrolee(rec[2]).map_err(with_id)?;
    let targets = check_targets(rec[3].split(';').map(str::trim).filter(|t| !t.is_empty()))
        .map_err(with_id)?;
    let secs = match rec[4].trim() {
        "" => default_secs,
        s => s.parse::<u64>().map_err(|e| {
            with_id((
                Field::Secs,
                format!("{s:?} is not a number of seconds ({e})"),
            ))
        })?,
    };
    let enrolment_secs = check_secs(secs).map_err(with_id)?;
    Ok((
        Device {
            kpm_id: kpm_id.clone(),
            enrolee_id,
            targets,
            enrolment_secs,
            created: now,
            revoked: None,
        },
        kpm,
    ))
}

/// The line a record starts on. The csv crate positions a record before the blank lines that
/// precede it, so count back from where it ended: past a `\n` terminator (a `\r\n` one is left
/// at the `\n`) and over its own newlines (inside quoted fields).
pub fn start_line(data: &[u8], end: &csv::Position, rec: &csv::ByteRecord) -> u64 {
    let inner: u64 = rec
        .iter()
        .map(|f| f.iter().filter(|&&b| b == b'\n').count() as u64)
        .sum();
    let prev = end.byte().checked_sub(1).and_then(|i| data.get(i as usize));
    let last = match prev {
        Some(b'\n') => end.line().saturating_sub(1),
        _ => end.line(),
    };
    last.saturating_sub(inner).max(1)
}

/// Whether `rec` is the import's header row (the [`COLUMNS`], case-insensitive, a UTF-8 byte
/// order mark tolerated).
pub fn is_header(rec: &csv::ByteRecord) -> bool {
    rec.len() == COLUMNS.len()
        && rec.iter().zip(COLUMNS).enumerate().all(|(i, (h, c))| {
            let h = if i == 0 {
                h.strip_prefix(b"\xef\xbb\xbf").unwrap_or(h)
            } else {
                h
            };
            h.trim_ascii().eq_ignore_ascii_case(c.as_bytes())
        })
}

/// The CSV reader of the import: no header handling (see [`is_header`]), rows of any length
/// (a wrong column count is a row error, not a file error).
pub fn reader(data: &[u8]) -> csv::Reader<&[u8]> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(data)
}

/// One raw record: UTF-8 fields, trimmed, then [`check_record`].
pub fn parse_record(
    rec: &csv::ByteRecord,
    fqdn: &Fqdn,
    default_secs: u64,
    now: i64,
) -> Result<(Device, Kpm), (Option<String>, String)> {
    let fields: Result<Vec<&str>, _> = rec
        .iter()
        .map(|f| std::str::from_utf8(f).map(str::trim))
        .collect();
    match &fields {
        Ok(f) => check_record(f, fqdn, default_secs, now),
        Err(_) => Err((None, "not UTF-8 text".to_string())),
    }
}
