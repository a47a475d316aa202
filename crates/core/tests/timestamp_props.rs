//! `m2m:timestamp` (TS-0004 §6.3.3): known values, and properties of the parser and the Unix-time
//! conversion checked against an independent day-counting oracle written here.

use m2msec_core::timestamp::{Timestamp, TimestampError};
use proptest::prelude::*;

/// Gregorian leap-year rule, written out independently of the crate.
fn leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn month_len(y: i64, m: i64) -> i64 {
    const LEN: [i64; 12] = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    LEN[(m - 1) as usize] + i64::from(m == 2 && leap(y))
}

/// Seconds since 1970 by counting whole years and months one at a time (slow but obvious).
fn oracle_unix(y: i64, mo: i64, d: i64, h: i64, mi: i64, s: i64) -> i64 {
    let mut days = 0i64;
    if y >= 1970 {
        for yy in 1970..y {
            days += if leap(yy) { 366 } else { 365 };
        }
    } else {
        for yy in y..1970 {
            days -= if leap(yy) { 366 } else { 365 };
        }
    }
    for mm in 1..mo {
        days += month_len(y, mm);
    }
    days += d - 1;
    days * 86_400 + h * 3600 + mi * 60 + s
}

fn ts(s: &str) -> Result<Timestamp, TimestampError> {
    s.parse()
}

#[test]
fn known_values() {
    assert_eq!(ts("19700101T000000").unwrap().to_unix(), 0);
    assert_eq!(ts("19691231T235959").unwrap().to_unix(), -1);
    assert_eq!(ts("20000229T120000").unwrap().to_unix(), 951_825_600);
    assert_eq!(ts("24000229T000000").unwrap().to_unix(), 13_574_563_200);
    // The example of TS-0004 table 6.3.3-1.
    assert_eq!(ts("20141003T112032").unwrap().to_unix(), 1_412_335_232);
    assert_eq!(ts("99991231T235959").unwrap().to_unix(), 253_402_300_799);
    assert_eq!(ts("00010101T000000").unwrap().to_unix(), -62_135_596_800);

    let t = ts("20251231T235959,123456").unwrap();
    assert_eq!(t.to_unix(), 1_767_225_599);
    assert_eq!(t.micros(), 123_456);
    assert_eq!(t.fraction_digits(), 6);
    assert_eq!(t.to_string(), "20251231T235959,123456");
    assert_eq!(t.to_unix_micros(), 1_767_225_599_123_456);

    // '.' accepted on input, ',' emitted.
    let t = ts("20251231T235959.5").unwrap();
    assert_eq!(t.to_string(), "20251231T235959,5");
    assert_eq!(t.micros(), 500_000);
    // The digit count is kept.
    assert_eq!(
        ts("20251231T235959,50").unwrap().to_string(),
        "20251231T235959,50"
    );
    assert_eq!(ts("20251231T235959,000001").unwrap().micros(), 1);

    assert_eq!(
        Timestamp::from_unix(0).unwrap().to_string(),
        "19700101T000000"
    );
    assert_eq!(
        Timestamp::from_unix(951_825_600).unwrap().to_string(),
        "20000229T120000"
    );
    assert_eq!(
        Timestamp::from_unix(-1).unwrap().to_string(),
        "19691231T235959"
    );
    assert!(Timestamp::from_unix(253_402_300_800).is_err());
}

#[test]
fn invalid_values() {
    for s in [
        "20010229T000000",         // 2001 is not a leap year
        "19000229T000000",         // century, not a leap year
        "20250431T000000",         // April has 30 days
        "20250001T000000",         // month 0
        "20251301T000000",         // month 13
        "20250100T000000",         // day 0
        "20250132T000000",         // day 32
        "20250101T240000",         // hour 24
        "20250101T006000",         // minute 60
        "20250101T000060",         // leap second rejected
        "20250101T000000,",        // empty fraction
        "20250101T000000,1234567", // seven digits
        "20250101T000000,12a",
        "20250101T000000Z", // no zone allowed
        "20250101T000000+0100",
        "2025-01-01T00:00:00", // extended format
        "20250101t000000",
        "20250101 000000",
        "20250101T0000", // reduced precision
        "2025010T000000",
        "",
        " 20250101T000000",
        "20250101T000000 ",
        "+2025010T000000",
        "２０２５0101T000000", // fullwidth digits
    ] {
        assert!(ts(s).is_err(), "{s:?} must be rejected");
    }
    assert!(Timestamp::new(2001, 2, 29, 0, 0, 0).is_err());
    assert!(Timestamp::new(2000, 2, 29, 0, 0, 0).is_ok());
    assert!(Timestamp::new(10000, 1, 1, 0, 0, 0).is_err());
}

#[test]
fn serde_is_a_string() {
    let t = ts("20141003T112032,5").unwrap();
    assert_eq!(serde_json::to_string(&t).unwrap(), "\"20141003T112032,5\"");
    let back: Timestamp = serde_json::from_str("\"20141003T112032.5\"").unwrap();
    assert_eq!(back, t);
    assert!(serde_json::from_str::<Timestamp>("1412335232").is_err());
    assert!(serde_json::from_str::<Timestamp>("\"20010229T000000\"").is_err());
}

#[test]
fn ordering_is_chronological() {
    let a = ts("20241231T235959,999999").unwrap();
    let b = ts("20250101T000000").unwrap();
    let c = ts("20250101T000000,000001").unwrap();
    assert!(a < b && b < c);
}

/// A valid civil time: (year, month, day, hour, minute, second).
fn civil() -> impl Strategy<Value = (u16, u8, u8, u8, u8, u8)> {
    (
        0u16..=9999,
        1u8..=12,
        1u8..=31,
        0u8..=23,
        0u8..=59,
        0u8..=59,
    )
        .prop_map(|(y, mo, d, h, mi, s)| {
            let max = month_len(i64::from(y), i64::from(mo)) as u8;
            (y, mo, d.min(max), h, mi, s)
        })
}

/// A fraction: (digit count 0..=6, value with that many digits).
fn fraction() -> impl Strategy<Value = (u8, u32)> {
    (0u8..=6).prop_flat_map(|n| (Just(n), 0u32..10u32.pow(u32::from(n))))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn valid_text_round_trips((y, mo, d, h, mi, s) in civil(), (n, f) in fraction()) {
        let mut text = format!("{y:04}{mo:02}{d:02}T{h:02}{mi:02}{s:02}");
        if n > 0 {
            text.push_str(&format!(",{:0width$}", f, width = usize::from(n)));
        }
        let t: Timestamp = text.parse().unwrap();
        prop_assert_eq!(t.to_string(), text.clone());
        prop_assert_eq!((t.year(), t.month(), t.day()), (y, mo, d));
        prop_assert_eq!((t.hour(), t.minute(), t.second()), (h, mi, s));
        prop_assert_eq!(t.fraction_digits(), n);
        let unix = oracle_unix(
            i64::from(y), i64::from(mo), i64::from(d), i64::from(h), i64::from(mi), i64::from(s),
        );
        prop_assert_eq!(t.to_unix(), unix);
        // Unix seconds back to civil time (the fraction is not part of Unix seconds).
        let whole = Timestamp::from_unix(unix).unwrap();
        prop_assert_eq!(whole.to_string(), text.get(..15).unwrap());
        // '.' as separator gives the same value.
        let dotted = text.replace(',', ".");
        prop_assert_eq!(dotted.parse::<Timestamp>().unwrap(), t);
    }

    #[test]
    fn unix_seconds_round_trip(secs in -62_167_219_200i64..253_402_300_800i64) {
        let t = Timestamp::from_unix(secs).unwrap();
        prop_assert_eq!(t.to_unix(), secs);
        let text = t.to_string();
        prop_assert_eq!(text.parse::<Timestamp>().unwrap(), t);
    }

    #[test]
    fn unix_out_of_range_is_an_error(secs in prop_oneof![
        i64::MIN..-62_167_219_200i64,
        253_402_300_800i64..=i64::MAX,
    ]) {
        prop_assert!(Timestamp::from_unix(secs).is_err());
    }

    #[test]
    fn order_matches_instants(a in -62_167_219_200i64..253_402_300_800i64,
                              b in -62_167_219_200i64..253_402_300_800i64) {
        let (ta, tb) = (Timestamp::from_unix(a).unwrap(), Timestamp::from_unix(b).unwrap());
        prop_assert_eq!(ta.cmp(&tb), a.cmp(&b));
    }

    #[test]
    fn random_strings_never_panic(s in "\\PC{0,40}") {
        let _ = s.parse::<Timestamp>();
    }

    #[test]
    fn near_miss_strings_never_panic(s in "[0-9T,.:Z+ -]{0,30}") {
        if let Ok(t) = s.parse::<Timestamp>() {
            // Whatever is accepted formats to something that parses to the same value.
            prop_assert_eq!(t.to_string().parse::<Timestamp>().unwrap(), t);
        }
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
        let s = String::from_utf8_lossy(&bytes);
        let _ = s.parse::<Timestamp>();
        let _ = serde_json::from_slice::<Timestamp>(&bytes);
    }
}
