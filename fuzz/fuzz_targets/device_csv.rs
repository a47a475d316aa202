//! The bulk device import's CSV parsing on arbitrary bytes (`m2msec mef device import`): the
//! reader, the header check, each row's validation and its line number. No panic; every row is
//! either a device or a reason.
#![no_main]
use libfuzzer_sys::fuzz_target;
use m2msec_mef::provision::{is_header, parse_record, reader, start_line};

fuzz_target!(|data: &[u8]| {
    let fqdn = "mef.sp.example".parse().expect("FQDN");
    let mut rdr = reader(data);
    let mut rec = csv::ByteRecord::new();
    let mut first = true;
    while let Ok(more) = rdr.read_byte_record(&mut rec) {
        if !more {
            break;
        }
        let _ = start_line(data, rdr.position(), &rec);
        if first {
            first = false;
            let _ = is_header(&rec);
            continue;
        }
        match parse_record(&rec, &fqdn, 3600, 0) {
            Ok((d, _kpm)) => assert!(!d.targets.is_empty() && d.enrolment_secs > 0),
            Err((_, reason)) => assert!(!reason.is_empty()),
        }
    }
});
