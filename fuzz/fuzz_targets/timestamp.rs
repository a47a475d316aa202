//! `m2m:timestamp` and `xs:duration` parsers on arbitrary input: no panic; whatever parses
//! formats to text that parses to the same value, and Unix seconds convert back and forth.
#![no_main]
use libfuzzer_sys::fuzz_target;
use m2msec_core::duration::XsDuration;
use m2msec_core::timestamp::Timestamp;

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    if let Ok(t) = s.parse::<Timestamp>() {
        let text = t.to_string();
        let again: Timestamp = text.parse().expect("formatted timestamp must parse");
        assert_eq!(again, t);
        let whole = Timestamp::from_unix(t.to_unix()).expect("in-range instant");
        assert_eq!(whole.to_unix(), t.to_unix());
        assert_eq!(text.get(..15), Some(whole.to_string().as_str()));
    }
    if let Ok(d) = s.parse::<XsDuration>() {
        let again: XsDuration = d
            .to_string()
            .parse()
            .expect("formatted duration must parse");
        assert_eq!(again, d);
        let _ = d.to_duration();
        let _ = d.to_duration_approx();
    }
    if let Ok(bytes) = <[u8; 8]>::try_from(data.get(..8).unwrap_or(&[])) {
        let secs = i64::from_le_bytes(bytes);
        if let Ok(t) = Timestamp::from_unix(secs) {
            assert_eq!(t.to_unix(), secs);
        }
    }
    let _ = serde_json::from_slice::<Timestamp>(data);
    let _ = serde_json::from_slice::<XsDuration>(data);
});
