//! `xs:duration` (XML Schema Part 2 §3.2.6), restricted to non-negative durations.
//!
//! TS-0003 §12.4.6 types `retryDuration` of `sec:noMoreCmdArgs` as `xs:duration`: the time after
//! which a MEF Client retries the MEF Client Command Retrieve procedure (§8.3.9.6). A negative
//! retry time is meaningless, so the sign `-` is rejected.
//!
//! Lexical form: `P[nY][nM][nD][T[nH][nM][n[.f]S]]` with at least one component and, if `T` is
//! present, at least one time component. Each `n` is an unsigned decimal that fits in `u64`; the
//! seconds may carry one to nine fractional digits (nanoseconds; XSD allows more, rejected here).
//! The components are kept as written, so `format(parse(s)) == s` whenever `s` has no redundant
//! leading zeros; equality is therefore structural (`PT60S != PT1M`). Compare lengths with
//! [`XsDuration::to_duration`].

use core::fmt;
use core::str::FromStr;
use core::time::Duration;

use serde::{Deserialize, Serialize};

/// Why a text is not an accepted `xs:duration`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// The text does not follow `P[nY][nM][nD][T[nH][nM][n[.f]S]]`.
    #[error("xs:duration: {0}")]
    Syntax(&'static str),
    /// Negative durations (`-P…`) are not accepted.
    #[error("xs:duration: negative durations are not accepted")]
    Negative,
    /// A component does not fit in 64 bits.
    #[error("xs:duration: a component is too large")]
    Overflow,
}

/// A non-negative `xs:duration` (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct XsDuration {
    years: Option<u64>,
    months: Option<u64>,
    days: Option<u64>,
    hours: Option<u64>,
    minutes: Option<u64>,
    seconds: Option<u64>,
    /// Fractional seconds in nanoseconds; meaningful only with `seconds`.
    nanos: u32,
    /// Number of fractional digits written (0 = none).
    frac_digits: u8,
}

/// Seconds per year and month used by [`XsDuration::to_duration_approx`].
const APPROX_YEAR_SECS: u64 = 365 * 86_400;
const APPROX_MONTH_SECS: u64 = 30 * 86_400;

impl XsDuration {
    /// A duration of whole seconds, written `PT<n>S`.
    pub const fn from_secs(secs: u64) -> Self {
        XsDuration {
            years: None,
            months: None,
            days: None,
            hours: None,
            minutes: None,
            seconds: Some(secs),
            nanos: 0,
            frac_digits: 0,
        }
    }

    /// A duration with the given day/hour/minute/second components (`None` = not written).
    /// At least one must be `Some`.
    pub fn from_dhms(
        days: Option<u64>,
        hours: Option<u64>,
        minutes: Option<u64>,
        seconds: Option<u64>,
    ) -> Result<Self, DurationError> {
        if days.is_none() && hours.is_none() && minutes.is_none() && seconds.is_none() {
            return Err(DurationError::Syntax("no component"));
        }
        Ok(XsDuration {
            days,
            hours,
            minutes,
            seconds,
            ..XsDuration::default()
        })
    }

    /// Whether the duration has a calendar-dependent (year or month) component other than 0.
    pub fn has_calendar_part(&self) -> bool {
        self.years.unwrap_or(0) != 0 || self.months.unwrap_or(0) != 0
    }

    /// The exact length as a [`Duration`], or `None` if the duration has a non-zero year or
    /// month component (whose length depends on the calendar) or overflows.
    pub fn to_duration(&self) -> Option<Duration> {
        if self.has_calendar_part() {
            return None;
        }
        Some(Duration::new(self.fixed_secs()?, self.nanos))
    }

    /// Whole seconds (the fraction truncated), or `None` as for [`XsDuration::to_duration`].
    pub fn to_seconds(&self) -> Option<u64> {
        self.to_duration().map(|d| d.as_secs())
    }

    /// The length with a year counted as 365 days and a month as 30 days, saturating at
    /// `u64::MAX` seconds. Meant for timers such as `retryDuration`, where an approximate
    /// calendar is good enough.
    pub fn to_duration_approx(&self) -> Duration {
        let secs = self
            .years
            .unwrap_or(0)
            .saturating_mul(APPROX_YEAR_SECS)
            .saturating_add(self.months.unwrap_or(0).saturating_mul(APPROX_MONTH_SECS))
            .saturating_add(self.fixed_secs().unwrap_or(u64::MAX));
        if secs == u64::MAX {
            Duration::new(u64::MAX, 0)
        } else {
            Duration::new(secs, self.nanos)
        }
    }

    /// Days, hours, minutes and seconds in seconds, checked.
    fn fixed_secs(&self) -> Option<u64> {
        self.days
            .unwrap_or(0)
            .checked_mul(86_400)?
            .checked_add(self.hours.unwrap_or(0).checked_mul(3600)?)?
            .checked_add(self.minutes.unwrap_or(0).checked_mul(60)?)?
            .checked_add(self.seconds.unwrap_or(0))
    }
}

/// Splits a leading run of ASCII digits off `s`.
fn take_number(s: &str) -> Result<(u64, &str), DurationError> {
    let end = s.bytes().take_while(u8::is_ascii_digit).count();
    let (num, rest) = s.split_at(end);
    if num.is_empty() {
        return Err(DurationError::Syntax("expected a number"));
    }
    let v = num.bytes().try_fold(0u64, |acc, b| {
        acc.checked_mul(10)?.checked_add(u64::from(b - b'0'))
    });
    v.map(|v| (v, rest)).ok_or(DurationError::Overflow)
}

impl FromStr for XsDuration {
    type Err = DurationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.starts_with('-') {
            return Err(DurationError::Negative);
        }
        let mut rest = s
            .strip_prefix('P')
            .ok_or(DurationError::Syntax("must start with 'P'"))?;
        let mut d = XsDuration::default();
        let mut any = false;

        // Date part: Y, M, D in this order, each at most once.
        let mut order = 0u8;
        while !rest.is_empty() && !rest.starts_with('T') {
            let (n, r) = take_number(rest)?;
            let (slot, pos) = match r.as_bytes().first() {
                Some(b'Y') => (&mut d.years, 1),
                Some(b'M') => (&mut d.months, 2),
                Some(b'D') => (&mut d.days, 3),
                _ => return Err(DurationError::Syntax("expected Y, M or D designator")),
            };
            if pos <= order {
                return Err(DurationError::Syntax("date components out of order"));
            }
            order = pos;
            *slot = Some(n);
            any = true;
            rest = r.get(1..).unwrap_or("");
        }

        // Time part: H, M, S in this order, each at most once; S may have a fraction.
        if let Some(time) = rest.strip_prefix('T') {
            rest = time;
            if rest.is_empty() {
                return Err(DurationError::Syntax(
                    "'T' must be followed by a time component",
                ));
            }
            let mut order = 0u8;
            while !rest.is_empty() {
                let (n, r) = take_number(rest)?;
                let (frac, r) = match r.strip_prefix('.') {
                    Some(f) => {
                        let len = f.bytes().take_while(u8::is_ascii_digit).count();
                        let (digits, r2) = f.split_at(len);
                        if digits.is_empty() || digits.len() > 9 {
                            return Err(DurationError::Syntax("fraction must have 1 to 9 digits"));
                        }
                        if !r2.starts_with('S') {
                            return Err(DurationError::Syntax("only seconds may have a fraction"));
                        }
                        (Some(digits), r2)
                    }
                    None => (None, r),
                };
                let pos = match r.as_bytes().first() {
                    Some(b'H') => 1,
                    Some(b'M') => 2,
                    Some(b'S') => 3,
                    _ => return Err(DurationError::Syntax("expected H, M or S designator")),
                };
                if pos <= order {
                    return Err(DurationError::Syntax("time components out of order"));
                }
                order = pos;
                match pos {
                    1 => d.hours = Some(n),
                    2 => d.minutes = Some(n),
                    _ => {
                        d.seconds = Some(n);
                        if let Some(digits) = frac {
                            // 1..=9 digits, so the value and the scale fit in u32.
                            let v = digits
                                .bytes()
                                .fold(0u32, |acc, b| acc * 10 + u32::from(b - b'0'));
                            d.nanos = v * 10u32.pow(9 - digits.len() as u32);
                            d.frac_digits = digits.len() as u8;
                        }
                    }
                }
                any = true;
                rest = r.get(1..).unwrap_or("");
            }
        }

        if !any {
            return Err(DurationError::Syntax("no component"));
        }
        Ok(d)
    }
}

impl fmt::Display for XsDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("P")?;
        for (v, c) in [(self.years, 'Y'), (self.months, 'M'), (self.days, 'D')] {
            if let Some(v) = v {
                write!(f, "{v}{c}")?;
            }
        }
        if self.hours.is_some() || self.minutes.is_some() || self.seconds.is_some() {
            f.write_str("T")?;
            if let Some(h) = self.hours {
                write!(f, "{h}H")?;
            }
            if let Some(m) = self.minutes {
                write!(f, "{m}M")?;
            }
            if let Some(s) = self.seconds {
                write!(f, "{s}")?;
                if self.frac_digits > 0 {
                    let d = u32::from(self.frac_digits.min(9));
                    let v = self.nanos / 10u32.pow(9 - d);
                    write!(f, ".{:0width$}", v, width = d as usize)?;
                }
                f.write_str("S")?;
            }
        }
        Ok(())
    }
}

impl Serialize for XsDuration {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for XsDuration {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = XsDuration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an xs:duration string such as PT30S")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<XsDuration, E> {
                v.parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<XsDuration, DurationError> {
        s.parse()
    }

    #[test]
    fn accepts_and_round_trips() {
        for s in [
            "PT30S",
            "P1DT2H",
            "P1Y2M3DT4H5M6S",
            "PT0S",
            "P0D",
            "PT1.5S",
            "PT0.000000001S",
            "P1M",
            "PT1M",
            "P1YT1S",
            "PT18446744073709551615S",
        ] {
            assert_eq!(p(s).unwrap().to_string(), s, "{s}");
        }
    }

    #[test]
    fn rejects() {
        for s in [
            "",
            "P",
            "PT",
            "-PT1S",
            "T1S",
            "P1S",
            "PT1D",
            "P1H",
            "P1D1Y",
            "PT1S1M",
            "P1DT",
            "PT1.S",
            "PT.5S",
            "PT1.5M",
            "PT1.0000000001S",
            "pT1S",
            "PT1s",
            " PT1S",
            "PT1S ",
            "P1Y1Y",
            "PT18446744073709551616S",
            "P+1D",
            "PT1,5S",
            "PéT1S",
            "PT1é",
        ] {
            assert!(p(s).is_err(), "{s:?}");
        }
        assert_eq!(p("-P1D"), Err(DurationError::Negative));
    }

    #[test]
    fn seconds() {
        assert_eq!(p("PT30S").unwrap().to_seconds(), Some(30));
        assert_eq!(p("P1DT2H").unwrap().to_seconds(), Some(93_600));
        assert_eq!(
            p("P1DT2H3M4.5S").unwrap().to_duration(),
            Some(Duration::new(93_784, 500_000_000))
        );
        assert_eq!(p("P1M").unwrap().to_seconds(), None);
        assert_eq!(p("P0Y0MT5S").unwrap().to_seconds(), Some(5));
        assert_eq!(
            p("P1M").unwrap().to_duration_approx(),
            Duration::from_secs(30 * 86_400)
        );
        assert_eq!(p("PT18446744073709551615H").unwrap().to_seconds(), None);
        assert_eq!(
            p("P18446744073709551615Y").unwrap().to_duration_approx(),
            Duration::new(u64::MAX, 0)
        );
    }
}
