//! `m2m:timestamp` (TS-0004 §6.3.3, "m2m:timestamp" and the text below table 6.3.3-1).
//!
//! Expiry times in `sec:clientRegCfg`/`sec:keyRegCfg` (TS-0003 §12.4.2, §12.4.3) and in the
//! seed-001 identity string (BRIEF A32) are `m2m:timestamp`s, so a single, exact parser lives
//! here. The format is the ISO 8601 *basic* complete representation `YYYYMMDDThhmmss`, always
//! in UTC and without a zone designator, optionally followed by a comma and one to six
//! fractional-second digits (`YYYYMMDDThhmmss,ffffff`).
//!
//! Choices made here:
//! - On input a full stop is accepted as decimal separator as well (ISO 8601 allows both);
//!   output always uses the comma TS-0004 prescribes.
//! - The number of fractional digits is kept, so `format(parse(s)) == s` for every canonical
//!   string. `…,5` and `…,500000` are therefore distinct values that denote the same instant;
//!   compare instants with [`Timestamp::to_unix_micros`].
//! - Years 0000–9999 are accepted (four digits, proleptic Gregorian calendar). Seconds run
//!   0–59: leap seconds (`60`) are rejected because they have no Unix-time representation.
//! - No clock access: this module is pure. Callers pass Unix seconds read from a
//!   [`crate::clock::Clock`].

use core::fmt;
use core::str::FromStr;

use serde::{Deserialize, Serialize};

/// Why a text or a number is not a valid `m2m:timestamp`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimestampError {
    /// The text does not have the shape `YYYYMMDDThhmmss[,f{1,6}]`.
    #[error("m2m:timestamp: expected YYYYMMDDThhmmss[,ffffff] (UTC, no zone), got {0} characters of another shape")]
    Syntax(usize),
    /// A calendar or clock field is out of range (month 13, 30 February, hour 24, …).
    #[error("m2m:timestamp: {field} {value} is out of range")]
    Field {
        /// Which field: "month", "day", "hour", "minute", "second", "fraction".
        field: &'static str,
        /// The offending value.
        value: u32,
    },
    /// The instant lies outside the years 0000–9999.
    #[error("m2m:timestamp: {0} seconds since 1970 is outside the years 0000-9999")]
    OutOfRange(i64),
}

/// A validated `m2m:timestamp` (TS-0004 §6.3.3): a UTC civil time with optional fractional
/// seconds (up to microseconds), remembering how many fractional digits it was written with.
///
/// `Ord` is chronological; two values denoting the same instant with a different number of
/// fractional digits are ordered by digit count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    // Field order matters: the derived `Ord` is chronological.
    year: u16,
    month: u8,
    day: u8,
    hour: u8,
    minute: u8,
    second: u8,
    /// Fractional seconds in microseconds (0..1_000_000).
    micros: u32,
    /// Number of fractional digits written (0 = no fraction).
    frac_digits: u8,
}

const SECS_PER_DAY: i64 = 86_400;
/// Days from 1970-01-01 to 0000-01-01 (negative) and to 10000-01-01.
const MIN_DAYS: i64 = -719_528;
const MAX_DAYS_EXCL: i64 = 2_932_897;

/// Whether `year` is a leap year in the proleptic Gregorian calendar.
pub const fn is_leap_year(year: u16) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

/// Number of days in `month` (1–12) of `year`; 0 for an invalid month.
pub const fn days_in_month(year: u16, month: u8) -> u8 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap_year(year) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400; // [0, 399]
    let mp = (month + 9) % 12; // March = 0
    let doy = (153 * mp + 2) / 5 + day - 1; // [0, 365]
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy; // [0, 146096]
    era * 146_097 + doe - 719_468
}

/// Inverse of [`days_from_civil`]: (year, month, day).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097; // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11]
    let day = doy - (153 * mp + 2) / 5 + 1; // [1, 31]
    let month = if mp < 10 { mp + 3 } else { mp - 9 }; // [1, 12]
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

impl Timestamp {
    /// The earliest representable timestamp, `00000101T000000`.
    pub const MIN: Timestamp = Timestamp {
        year: 0,
        month: 1,
        day: 1,
        hour: 0,
        minute: 0,
        second: 0,
        micros: 0,
        frac_digits: 0,
    };

    /// Builds a timestamp without fractional seconds from civil UTC fields, validating each
    /// (months 1–12, days per month including leap years, hours 0–23, minutes and seconds 0–59).
    pub fn new(
        year: u16,
        month: u8,
        day: u8,
        hour: u8,
        minute: u8,
        second: u8,
    ) -> Result<Self, TimestampError> {
        let field = |field: &'static str, value: u8| TimestampError::Field {
            field,
            value: u32::from(value),
        };
        if year > 9999 {
            return Err(TimestampError::Field {
                field: "year",
                value: u32::from(year),
            });
        }
        if !(1..=12).contains(&month) {
            return Err(field("month", month));
        }
        if day == 0 || day > days_in_month(year, month) {
            return Err(field("day", day));
        }
        if hour > 23 {
            return Err(field("hour", hour));
        }
        if minute > 59 {
            return Err(field("minute", minute));
        }
        if second > 59 {
            return Err(field("second", second));
        }
        Ok(Timestamp {
            year,
            month,
            day,
            hour,
            minute,
            second,
            micros: 0,
            frac_digits: 0,
        })
    }

    /// Returns this timestamp with a fractional part of `micros` microseconds written with
    /// `digits` (1–6) digits; `digits = 0` removes the fraction (then `micros` must be 0).
    /// `micros` must be representable in `digits` digits (e.g. 500000 with 1 digit is `,5`).
    pub fn with_fraction(self, micros: u32, digits: u8) -> Result<Self, TimestampError> {
        let bad = TimestampError::Field {
            field: "fraction",
            value: micros,
        };
        if digits > 6 || micros >= 1_000_000 {
            return Err(bad);
        }
        let unit = 10u32.pow(6 - u32::from(digits));
        if micros % unit != 0 {
            return Err(bad);
        }
        Ok(Timestamp {
            micros,
            frac_digits: digits,
            ..self
        })
    }

    /// The timestamp `secs` seconds after 1970-01-01T00:00:00Z (negative: before), without
    /// fractional seconds. Fails outside the years 0000–9999.
    pub fn from_unix(secs: i64) -> Result<Self, TimestampError> {
        let days = secs.div_euclid(SECS_PER_DAY);
        let sod = secs.rem_euclid(SECS_PER_DAY);
        if !(MIN_DAYS..MAX_DAYS_EXCL).contains(&days) {
            return Err(TimestampError::OutOfRange(secs));
        }
        let (y, m, d) = civil_from_days(days);
        // In range by construction; the conversions cannot fail, but stay panic-free anyway.
        let conv = |v: i64| u8::try_from(v).map_err(|_| TimestampError::OutOfRange(secs));
        let year = u16::try_from(y).map_err(|_| TimestampError::OutOfRange(secs))?;
        Timestamp::new(
            year,
            conv(m)?,
            conv(d)?,
            conv(sod / 3600)?,
            conv(sod % 3600 / 60)?,
            conv(sod % 60)?,
        )
    }

    /// Whole seconds since 1970-01-01T00:00:00Z; the fractional part is truncated (the result
    /// is the floor, since the fraction is never negative).
    pub fn to_unix(&self) -> i64 {
        let days = days_from_civil(
            i64::from(self.year),
            i64::from(self.month),
            i64::from(self.day),
        );
        days * SECS_PER_DAY
            + i64::from(self.hour) * 3600
            + i64::from(self.minute) * 60
            + i64::from(self.second)
    }

    /// Microseconds since 1970-01-01T00:00:00Z, including the fraction. Use this to compare
    /// instants regardless of how many fractional digits were written.
    pub fn to_unix_micros(&self) -> i64 {
        self.to_unix() * 1_000_000 + i64::from(self.micros)
    }

    /// Year (0–9999).
    pub const fn year(&self) -> u16 {
        self.year
    }
    /// Month (1–12).
    pub const fn month(&self) -> u8 {
        self.month
    }
    /// Day of month (1–31).
    pub const fn day(&self) -> u8 {
        self.day
    }
    /// Hour (0–23).
    pub const fn hour(&self) -> u8 {
        self.hour
    }
    /// Minute (0–59).
    pub const fn minute(&self) -> u8 {
        self.minute
    }
    /// Second (0–59).
    pub const fn second(&self) -> u8 {
        self.second
    }
    /// Fractional seconds in microseconds.
    pub const fn micros(&self) -> u32 {
        self.micros
    }
    /// How many fractional digits the text form has (0 = none).
    pub const fn fraction_digits(&self) -> u8 {
        self.frac_digits
    }
}

/// Parses `n` ASCII digits as a number; `None` if any byte is not a digit.
fn digits(bytes: &[u8]) -> Option<u32> {
    bytes.iter().try_fold(0u32, |acc, &b| {
        b.is_ascii_digit().then(|| acc * 10 + u32::from(b - b'0'))
    })
}

impl FromStr for Timestamp {
    type Err = TimestampError;

    /// Parses `YYYYMMDDThhmmss[(,|.)f{1,6}]`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let b = s.as_bytes();
        let syntax = || TimestampError::Syntax(s.chars().count());
        if b.len() < 15 || b.get(8) != Some(&b'T') {
            return Err(syntax());
        }
        let num = |from: usize, to: usize| b.get(from..to).and_then(digits).ok_or_else(syntax);
        let year = num(0, 4)?;
        let month = num(4, 6)?;
        let day = num(6, 8)?;
        let hour = num(9, 11)?;
        let minute = num(11, 13)?;
        let second = num(13, 15)?;
        let (micros, frac_digits) = match b.get(15..) {
            Some([]) | None => (0, 0),
            Some([sep, frac @ ..]) if *sep == b',' || *sep == b'.' => {
                if frac.is_empty() || frac.len() > 6 {
                    return Err(syntax());
                }
                let v = digits(frac).ok_or_else(syntax)?;
                // frac.len() is 1..=6 here.
                let scale = 10u32.pow(6 - frac.len() as u32);
                (v * scale, frac.len() as u8)
            }
            Some(_) => return Err(syntax()),
        };
        // Each value has at most 4 digits, so the narrowing conversions below cannot lose data
        // except for the year (<= 9999 fits u16) — all are checked by `new`.
        let to_u8 = |field: &'static str, v: u32| {
            u8::try_from(v).map_err(|_| TimestampError::Field { field, value: v })
        };
        let year = u16::try_from(year).map_err(|_| syntax())?;
        Timestamp::new(
            year,
            to_u8("month", month)?,
            to_u8("day", day)?,
            to_u8("hour", hour)?,
            to_u8("minute", minute)?,
            to_u8("second", second)?,
        )?
        .with_fraction(micros, frac_digits)
    }
}

impl fmt::Display for Timestamp {
    /// Canonical text: `YYYYMMDDThhmmss` plus `,` and the stored number of fractional digits.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04}{:02}{:02}T{:02}{:02}{:02}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )?;
        if self.frac_digits > 0 {
            let d = u32::from(self.frac_digits.min(6));
            let v = self.micros / 10u32.pow(6 - d);
            write!(f, ",{:0width$}", v, width = d as usize)?;
        }
        Ok(())
    }
}

impl TryFrom<&str> for Timestamp {
    type Error = TimestampError;
    fn try_from(s: &str) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl TryFrom<String> for Timestamp {
    type Error = TimestampError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Timestamp> for String {
    fn from(t: Timestamp) -> String {
        t.to_string()
    }
}

impl Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Timestamp;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an m2m:timestamp string YYYYMMDDThhmmss[,ffffff]")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Timestamp, E> {
                v.parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_roundtrip_at_range_ends() {
        assert_eq!(days_from_civil(0, 1, 1), MIN_DAYS);
        assert_eq!(days_from_civil(10000, 1, 1), MAX_DAYS_EXCL);
        assert_eq!(civil_from_days(MIN_DAYS), (0, 1, 1));
        assert_eq!(civil_from_days(MAX_DAYS_EXCL - 1), (9999, 12, 31));
        assert_eq!(days_from_civil(1970, 1, 1), 0);
    }

    #[test]
    fn from_unix_edges() {
        let min = Timestamp::from_unix(MIN_DAYS * SECS_PER_DAY).unwrap();
        assert_eq!(min, Timestamp::MIN);
        assert!(Timestamp::from_unix(MIN_DAYS * SECS_PER_DAY - 1).is_err());
        let max = Timestamp::from_unix(MAX_DAYS_EXCL * SECS_PER_DAY - 1).unwrap();
        assert_eq!(max.to_string(), "99991231T235959");
        assert!(Timestamp::from_unix(MAX_DAYS_EXCL * SECS_PER_DAY).is_err());
        assert!(Timestamp::from_unix(i64::MIN).is_err());
        assert!(Timestamp::from_unix(i64::MAX).is_err());
    }

    #[test]
    fn fraction_rules() {
        let t = Timestamp::new(2025, 1, 1, 0, 0, 0).unwrap();
        assert!(t.with_fraction(500_000, 1).is_ok());
        assert!(t.with_fraction(550_000, 1).is_err());
        assert!(t.with_fraction(1, 0).is_err());
        assert!(t.with_fraction(1_000_000, 6).is_err());
        assert!(t.with_fraction(0, 7).is_err());
    }

    #[test]
    fn multibyte_input_does_not_panic() {
        assert!("2025010éT000000".parse::<Timestamp>().is_err());
        assert!("20250101T000000,é".parse::<Timestamp>().is_err());
        assert!("20250101T0000001".parse::<Timestamp>().is_err());
    }
}
