//! The CoAP binding (TS-0008) on arbitrary datagrams: CoAP decoding, the request mapping of
//! `m2msec_bindings::coap`, and the error and response encodings never panic; every rejection
//! carries an error code and encodes; a mapped request survives the originator-side mapping.
#![no_main]
use libfuzzer_sys::fuzz_target;
use m2msec_bindings::coap::{
    block2, request_from_coap, request_to_coap, response_format, response_from_coap,
};
use m2msec_bindings::coap_lite::Packet;

fuzz_target!(|data: &[u8]| {
    let Ok(pkt) = Packet::from_bytes(data) else {
        return;
    };
    let _ = response_format(&pkt);
    let _ = block2(&pkt);
    let _ = response_from_coap(&pkt);
    match request_from_coap(&pkt, 4096) {
        Ok(req) => {
            if let Ok(p) = request_to_coap(&req) {
                let bytes = p.to_bytes_unlimited().expect("encodable request");
                let back = Packet::from_bytes(&bytes).expect("decodable request");
                assert!(request_from_coap(&back, usize::MAX).is_ok());
            }
        }
        Err(rej) => {
            assert!(rej.code.is_error());
            let out = rej.to_packet(Some("/cse-in"), response_format(&pkt));
            let bytes = out.to_bytes_unlimited().expect("encodable error response");
            let back = Packet::from_bytes(&bytes).expect("decodable error response");
            assert_eq!(
                response_from_coap(&back).expect("a response primitive").rsc,
                rej.rejection.error.rsc
            );
        }
    }
});
