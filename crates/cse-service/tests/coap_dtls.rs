//! The CoAP binding (TS-0008) over DTLS 1.2 PSK end to end on loopback: the registrar CSE
//! behind a [`CoapServer`], AEs as [`CoapClient`]s on their own DTLS sessions. Registration,
//! container and contentInstance creation and retrieval, Block2 responses, impersonation (4106,
//! TS-0003 §7.2.1), malformed datagrams (Reset / 4.00, the session keeps serving), duplicate
//! Confirmable messages (answered from the cache, executed once), and the endpoint's session
//! controls (`Handled.close`, `Opened.close`) with a test endpoint.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use coap_lite::{CoapOption, MessageClass, MessageType, Packet, ResponseType};
use serde_json::{json, Value};

use m2msec_bindings::coap::{opt, request_to_coap, response_from_coap};
use m2msec_bindings::{
    AssociationInfo, CloseSignal, CoapClient, CoapServer, Endpoint, Handled, Limits, Opened,
    Transmission,
};
use m2msec_cse::{
    Cse, CseConfig, CseType, Operation, RequestPrimitive, ResponsePrimitive, Rsc, SqliteStore,
};
use m2msec_cse_service::{CseEndpoint, CseSecurity, PskCredential};
use m2msec_tls::{ClientConfig, DtlsClient, DtlsOptions, Psk, PskIdentity, ServerConfig};

const WAIT: Duration = Duration::from_secs(10);
const AE1: (&str, [u8; 16]) = ("ae-one@mef.sp.example", [1u8; 16]);
const AE2: (&str, [u8; 16]) = ("ae-two@mef.sp.example", [2u8; 16]);

fn cred(c: (&str, [u8; 16])) -> PskCredential {
    PskCredential {
        psk_identity: PskIdentity::new(c.0).unwrap(),
        kpsa_id: c.0.parse().unwrap(),
        key: Psk::new(&c.1).unwrap(),
        bound: None,
    }
}

fn limits() -> Limits {
    Limits {
        max_body: 8 * 1024,
        handshake_timeout: Duration::from_secs(5),
        max_connections: 16,
        ..Limits::default()
    }
}

fn dtls_opts() -> DtlsOptions {
    DtlsOptions {
        idle_timeout: Duration::from_secs(30),
        ..DtlsOptions::default()
    }
}

async fn start_cse() -> SocketAddr {
    let cfg = CseConfig {
        sp: "sp.example".parse().unwrap(),
        cse_id: "/cse-in".parse().unwrap(),
        cb_rn: "cb".into(),
        cse_type: CseType::In,
        poa: vec![],
    };
    let cse = Cse::new(cfg, SqliteStore::open_in_memory().unwrap()).unwrap();
    let (endpoint, mut tls) = CseEndpoint::new(
        cse,
        &CseSecurity {
            authority: None,
            require_sni: false,
            credentials: vec![cred(AE1), cred(AE2)],
            raw_keys: Vec::new(),
        },
    );
    tls.handshake_timeout = Duration::from_secs(5);
    let server = CoapServer::bind(
        "127.0.0.1:0".parse().unwrap(),
        &tls,
        dtls_opts(),
        limits(),
        endpoint,
    )
    .await
    .unwrap();
    let addr = server.local_addr();
    tokio::spawn(server.serve());
    addr
}

fn fast() -> Transmission {
    Transmission {
        separate_timeout: Duration::from_secs(5),
        ..Transmission::default()
    }
}

async fn connect(addr: SocketAddr, c: (&str, [u8; 16])) -> CoapClient {
    connect_from(([127, 0, 0, 1], 0).into(), addr, c, WAIT).await
}

/// A client on the local address `local` (a fixed port: a device that always uses the same
/// one); the handshake must complete within `within`.
async fn connect_from(
    local: SocketAddr,
    addr: SocketAddr,
    c: (&str, [u8; 16]),
    within: Duration,
) -> CoapClient {
    let mut cfg = ClientConfig::psk(PskIdentity::new(c.0).unwrap(), Psk::new(&c.1).unwrap());
    cfg.handshake_timeout = Duration::from_secs(5);
    let client = DtlsClient::new(cfg, dtls_opts()).unwrap();
    let session = tokio::time::timeout(within, client.connect_from(local, addr, None))
        .await
        .expect("handshake in time")
        .expect("DTLS-PSK handshake");
    CoapClient::with_params(session, fast())
}

async fn send(c: &mut CoapClient, req: RequestPrimitive) -> ResponsePrimitive {
    tokio::time::timeout(WAIT, c.request(&req, &[]))
        .await
        .expect("response in time")
        .expect("a response primitive")
}

fn rq(op: Operation, to: &str, fr: Option<&str>, rqi: &str) -> RequestPrimitive {
    let mut r = RequestPrimitive::new(op, to, fr, rqi);
    r.rvi = Some("3".into());
    r
}

async fn register(c: &mut CoapClient) -> String {
    let r = send(
        c,
        rq(Operation::Create, "cb", Some("C"), "reg")
            .with_ty(2)
            .with_pc(json!({"m2m:ae":{"rn":"light","api":"Nlight","rr":false,"srv":["3"]}})),
    )
    .await;
    assert_eq!(r.rsc, Rsc::Created, "{r:?}");
    assert_eq!(r.rqi, "reg");
    assert_eq!(r.fr.as_deref(), Some("/cse-in"));
    let aei = r.pc.as_ref().unwrap()["m2m:ae"]["aei"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(aei.starts_with('C'), "{aei}");
    aei
}

/// Sends a raw datagram and returns the next datagram received, parsed.
async fn raw(c: &mut CoapClient, bytes: &[u8]) -> Packet {
    // The reply to this datagram: same message ID (ACK, RST), or a response with its token.
    // Stale ACKs to earlier retransmissions, should a slow machine cause any, are skipped.
    let mid = u16::from_be_bytes([bytes[2], bytes[3]]);
    let token = Packet::from_bytes(bytes)
        .map(|p| p.get_token().to_vec())
        .ok();
    let s = c.session_mut();
    s.send(bytes).await.unwrap();
    loop {
        let d = tokio::time::timeout(WAIT, s.recv())
            .await
            .expect("a reply in time")
            .unwrap();
        let p = Packet::from_bytes(&d).expect("a CoAP message");
        let separate = matches!(
            p.header.get_type(),
            MessageType::NonConfirmable | MessageType::Confirmable
        ) && token.as_deref() == Some(p.get_token());
        if p.header.message_id == mid || separate {
            return p;
        }
    }
}

#[tokio::test]
async fn ae_registers_creates_and_reads_back_over_dtls_psk() {
    let addr = start_cse().await;
    let mut c = connect(addr, AE1).await;
    let aei = register(&mut c).await;

    let r = send(
        &mut c,
        rq(Operation::Create, "cb/light", Some(&aei), "c1")
            .with_ty(3)
            .with_pc(json!({"m2m:cnt":{"rn":"temp"}})),
    )
    .await;
    assert_eq!(r.rsc, Rsc::Created, "{r:?}");
    for (i, v) in ["21.5", "22.0"].iter().enumerate() {
        let r = send(
            &mut c,
            rq(
                Operation::Create,
                "cb/light/temp",
                Some(&aei),
                &format!("i{i}"),
            )
            .with_ty(4)
            .with_pc(json!({"m2m:cin":{"con":v,"cnf":"text/plain:0"}})),
        )
        .await;
        assert_eq!(r.rsc, Rsc::Created, "{r:?}");
    }
    let r = send(
        &mut c,
        rq(Operation::Retrieve, "cb/light/temp/la", Some(&aei), "g1"),
    )
    .await;
    assert_eq!(r.rsc, Rsc::Ok, "{r:?}");
    assert_eq!(r.pc.unwrap()["m2m:cin"]["con"], "22.0");
    // SP-relative (`~`) and absolute (`_`) Uri-Path forms, TS-0008 table 6.2.2.3-1.
    let r = send(
        &mut c,
        rq(
            Operation::Retrieve,
            "/cse-in/cb/light/temp",
            Some(&aei),
            "g2",
        ),
    )
    .await;
    assert_eq!(r.rsc, Rsc::Ok, "{r:?}");
    assert_eq!(r.pc.unwrap()["m2m:cnt"]["cni"], 2);
    let r = send(
        &mut c,
        rq(
            Operation::Retrieve,
            "//sp.example/cse-in/cb/light",
            Some(&aei),
            "g3",
        ),
    )
    .await;
    assert_eq!(r.rsc, Rsc::Ok, "{r:?}");
    assert_eq!(r.pc.unwrap()["m2m:ae"]["aei"], json!(aei));
    // Unknown resource: 4004 under 4.04.
    let mut p = request_to_coap(&rq(Operation::Retrieve, "cb/nothing", Some(&aei), "g4")).unwrap();
    p.header.set_type(MessageType::Confirmable);
    let resp = tokio::time::timeout(WAIT, c.exchange(p))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        resp.header.code,
        MessageClass::Response(ResponseType::NotFound)
    );
    assert_eq!(response_from_coap(&resp).unwrap().rsc, Rsc::NotFound);
}

/// A device that reboots and reuses its UDP source port (its old session ended without
/// close_notify) is served again at once, although the server still holds the stale session
/// (RFC 6347 §4.2.8, issue 9 item 6); without that it stayed locked out until the stale
/// session's idle timeout, which its own ClientHellos kept refreshing.
#[tokio::test]
async fn rebooted_device_on_the_same_port_is_served_again_at_once() {
    let addr = start_cse().await;
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .unwrap()
        .port();
    let local: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut c = connect_from(local, addr, AE1, WAIT).await;
    let aei = register(&mut c).await;
    drop(c);
    let mut c = connect_from(local, addr, AE1, Duration::from_secs(3)).await;
    let r = send(
        &mut c,
        rq(Operation::Retrieve, "cb/light", Some(&aei), "again"),
    )
    .await;
    assert_eq!(r.rsc, Rsc::Ok, "{r:?}");
}

#[tokio::test]
async fn large_responses_come_in_block2_blocks() {
    let addr = start_cse().await;
    let mut c = connect(addr, AE1).await;
    let aei = register(&mut c).await;
    let r = send(
        &mut c,
        rq(Operation::Create, "cb/light", Some(&aei), "c1")
            .with_ty(3)
            .with_pc(json!({"m2m:cnt":{"rn":"big"}})),
    )
    .await;
    assert_eq!(r.rsc, Rsc::Created);
    let big: String = (0..3000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    // The CREATE response (the created resource) itself exceeds one block: the remaining
    // blocks are served from the session's copy, without creating anything again.
    let r = send(
        &mut c,
        rq(Operation::Create, "cb/light/big", Some(&aei), "c2")
            .with_ty(4)
            .with_pc(json!({"m2m:cin":{"rn":"blob","con":big}})),
    )
    .await;
    assert_eq!(r.rsc, Rsc::Created, "{r:?}");
    assert_eq!(r.pc.unwrap()["m2m:cin"]["con"], json!(big));
    let r = send(
        &mut c,
        rq(Operation::Retrieve, "cb/light/big/blob", Some(&aei), "g1"),
    )
    .await;
    assert_eq!(r.rsc, Rsc::Ok);
    assert_eq!(r.pc.unwrap()["m2m:cin"]["con"], json!(big));
    // On the wire: block 0 of 1024 bytes with more to come (RFC 7959 §2.2), Size2 the total.
    let p = request_to_coap(&rq(
        Operation::Retrieve,
        "cb/light/big/blob",
        Some(&aei),
        "g1b",
    ))
    .unwrap();
    let first = tokio::time::timeout(WAIT, c.exchange(p))
        .await
        .unwrap()
        .unwrap();
    let b = m2msec_bindings::coap::block2(&first).expect("Block2");
    assert_eq!((b.num, b.more, b.size()), (0, true, 1024));
    assert_eq!(first.payload.len(), 1024);
    assert!(first.get_option(CoapOption::Size2).is_some());
    let r = send(
        &mut c,
        rq(Operation::Retrieve, "cb/light/big", Some(&aei), "g2"),
    )
    .await;
    assert_eq!(r.pc.unwrap()["m2m:cnt"]["cni"], 1);
}

#[tokio::test]
async fn impersonation_with_another_credential_gets_4106() {
    let addr = start_cse().await;
    let mut c1 = connect(addr, AE1).await;
    let aei = register(&mut c1).await;
    let mut c2 = connect(addr, AE2).await;
    for (op, rqi) in [(Operation::Retrieve, "x1"), (Operation::Delete, "x2")] {
        let r = send(&mut c2, rq(op, "cb/light", Some(&aei), rqi)).await;
        assert_eq!(r.rsc, Rsc::OriginatorNotAuthenticated, "{r:?}");
        assert_eq!(r.rqi, rqi);
    }
    let mut p = request_to_coap(
        &rq(Operation::Create, "cb/light", Some(&aei), "x3")
            .with_ty(3)
            .with_pc(json!({"m2m:cnt":{"rn":"evil"}})),
    )
    .unwrap();
    p.header.set_type(MessageType::Confirmable);
    let resp = tokio::time::timeout(WAIT, c2.exchange(p))
        .await
        .unwrap()
        .unwrap();
    // TS-0008 table 6.2.4-1: 4106 → 4.03, the RSC in oneM2M-RSC.
    assert_eq!(
        resp.header.code,
        MessageClass::Response(ResponseType::Forbidden)
    );
    assert_eq!(response_from_coap(&resp).unwrap().rsc.as_u16(), 4106);
    // Nothing changed for the real AE.
    let r = send(
        &mut c1,
        rq(Operation::Retrieve, "cb/light", Some(&aei), "ok"),
    )
    .await;
    assert_eq!(r.rsc, Rsc::Ok);
}

#[tokio::test]
async fn malformed_messages_get_reset_or_4_00_and_the_session_keeps_serving() {
    let addr = start_cse().await;
    let mut c = connect(addr, AE1).await;
    // Truncated option (RFC 7252 §3.1): a CON that cannot be parsed → Reset with its ID.
    let bad = [0x40, 0x01, 0x12, 0x34, 0xd5, 0x01];
    let r = raw(&mut c, &bad).await;
    assert_eq!(r.header.get_type(), MessageType::Reset);
    assert_eq!(r.header.message_id, 0x1234);
    // Token length 9.
    let r = raw(&mut c, &[0x49, 0x01, 0x00, 0x07, 1, 2, 3, 4, 5, 6, 7, 8, 9]).await;
    assert_eq!(r.header.get_type(), MessageType::Reset);
    // An empty CON (CoAP ping, RFC 7252 §4.3) → Reset.
    let r = raw(&mut c, &[0x40, 0x00, 0x00, 0x09]).await;
    assert_eq!(r.header.get_type(), MessageType::Reset);
    assert_eq!(r.header.message_id, 9);
    // A well-formed CoAP request that is not a valid oneM2M request (no oneM2M-RQI):
    // 4.00 with RSC 4000 piggybacked on the ACK.
    let mut p = Packet::new();
    p.header.set_version(1);
    p.header.set_type(MessageType::Confirmable);
    p.header.message_id = 0x0a0b;
    p.header.code = MessageClass::Request(coap_lite::RequestType::Get);
    p.set_token(vec![7, 7]);
    p.add_option(CoapOption::UriPath, b"cb".to_vec());
    let r = raw(&mut c, &p.to_bytes().unwrap()).await;
    assert_eq!(r.header.get_type(), MessageType::Acknowledgement);
    assert_eq!(r.header.message_id, 0x0a0b);
    assert_eq!(r.get_token(), &[7, 7]);
    assert_eq!(
        r.header.code,
        MessageClass::Response(ResponseType::BadRequest)
    );
    let resp = response_from_coap(&r).unwrap();
    assert_eq!(resp.rsc, Rsc::BadRequest);
    assert_eq!(resp.fr.as_deref(), Some("/cse-in"));
    // Unknown critical option: 4.02 Bad Option.
    p.header.message_id = 0x0a0c;
    p.add_option(CoapOption::Unknown(opt::RQI), b"q".to_vec());
    p.add_option(CoapOption::Unknown(2049), vec![1]);
    let r = raw(&mut c, &p.to_bytes().unwrap()).await;
    assert_eq!(
        r.header.code,
        MessageClass::Response(ResponseType::BadOption)
    );
    // Garbage NON and a wrong version are ignored (no reply); the session still serves.
    c.session_mut().send(&[0x50, 0x01]).await.unwrap();
    c.session_mut().send(&[0x80, 0x01, 0, 1]).await.unwrap();
    let aei = register(&mut c).await;
    let r = send(
        &mut c,
        rq(Operation::Retrieve, "cb/light", Some(&aei), "ok"),
    )
    .await;
    assert_eq!(r.rsc, Rsc::Ok);
    // Another session is unaffected too.
    let mut c2 = connect(addr, AE2).await;
    let r = send(&mut c2, rq(Operation::Retrieve, "cb", Some(&aei), "cb")).await;
    assert_eq!(r.rsc, Rsc::OriginatorNotAuthenticated);
}

#[tokio::test]
async fn duplicate_confirmable_is_answered_from_the_cache_and_executed_once() {
    let addr = start_cse().await;
    let mut c = connect(addr, AE1).await;
    let aei = register(&mut c).await;
    let r = send(
        &mut c,
        rq(Operation::Create, "cb/light", Some(&aei), "c1")
            .with_ty(3)
            .with_pc(json!({"m2m:cnt":{"rn":"temp"}})),
    )
    .await;
    assert_eq!(r.rsc, Rsc::Created);
    // The same CON (same message ID) three times, as after lost ACKs.
    let mut p = request_to_coap(
        &rq(Operation::Create, "cb/light/temp", Some(&aei), "dup")
            .with_ty(4)
            .with_pc(json!({"m2m:cin":{"con":"1"}})),
    )
    .unwrap();
    p.header.set_type(MessageType::Confirmable);
    p.header.message_id = 0x4242;
    p.set_token(vec![1, 2, 3, 4]);
    let bytes = p.to_bytes().unwrap();
    let first = raw(&mut c, &bytes).await;
    assert_eq!(first.header.get_type(), MessageType::Acknowledgement);
    assert_eq!(response_from_coap(&first).unwrap().rsc, Rsc::Created);
    for _ in 0..2 {
        let again = raw(&mut c, &bytes).await;
        assert_eq!(again, first);
    }
    let r = send(
        &mut c,
        rq(Operation::Retrieve, "cb/light/temp", Some(&aei), "g"),
    )
    .await;
    assert_eq!(r.pc.unwrap()["m2m:cnt"]["cni"], 1, "created once only");
    // A new message ID with the same content is a new request (a second instance).
    p.header.message_id = 0x4243;
    let other = raw(&mut c, &p.to_bytes().unwrap()).await;
    assert_eq!(response_from_coap(&other).unwrap().rsc, Rsc::Created);
    // A NON request gets a NON response.
    let mut n =
        request_to_coap(&rq(Operation::Retrieve, "cb/light/temp", Some(&aei), "n")).unwrap();
    n.header.set_type(MessageType::NonConfirmable);
    n.header.message_id = 0x5000;
    n.set_token(vec![9]);
    let r = raw(&mut c, &n.to_bytes().unwrap()).await;
    assert_eq!(r.header.get_type(), MessageType::NonConfirmable);
    assert_eq!(r.get_token(), &[9]);
    let resp = response_from_coap(&r).unwrap();
    assert_eq!(resp.pc.unwrap()["m2m:cnt"]["cni"], 2);
}

/// A test endpoint: echoes, closes the session after a request with rqi "bye", and keeps each
/// session's close signal so the test can revoke it.
#[derive(Default)]
struct TestEndpoint {
    signals: Mutex<Vec<CloseSignal>>,
    exported: Mutex<Vec<bool>>,
}

impl Endpoint for TestEndpoint {
    type Session = String;
    fn responder_id(&self) -> String {
        "/test".into()
    }
    fn open(&self, assoc: Option<&AssociationInfo<'_>>) -> Option<Opened<String>> {
        let a = assoc?;
        let export = (a.exporter)(m2msec_tls::ExporterLabel::Bootstrap).is_some();
        self.exported.lock().unwrap().push(export);
        let close = CloseSignal::new();
        self.signals.lock().unwrap().push(close.clone());
        Some(Opened {
            session: a.peer.psk_identity.as_ref()?.as_str().to_string(),
            close,
        })
    }
    fn handle(&self, session: &String, prim: RequestPrimitive) -> Handled {
        let mut r = ResponsePrimitive::new(Rsc::Ok, prim.rqi.clone());
        r.pc = Some(Value::from(session.clone()));
        Handled {
            response: r,
            close: prim.rqi == "bye",
        }
    }
}

#[tokio::test]
async fn endpoint_session_controls_close_the_dtls_session() {
    let endpoint = Arc::new(TestEndpoint::default());
    let table = m2msec_tls::PskTable::new();
    table.insert_entry(
        None,
        PskIdentity::new(AE1.0).unwrap(),
        m2msec_tls::ResolvedPsk {
            key: Psk::new(&AE1.1).unwrap(),
            bound: m2msec_tls::BoundIdentity::CredentialId("x".into()),
        },
    );
    let tls = ServerConfig::psk(Arc::new(table));
    let server = CoapServer::bind(
        "127.0.0.1:0".parse().unwrap(),
        &tls,
        dtls_opts(),
        limits(),
        endpoint.clone(),
    )
    .await
    .unwrap();
    let addr = server.local_addr();
    tokio::spawn(server.serve());

    // Handled.close: the response arrives, then the session is closed.
    let mut c = connect(addr, AE1).await;
    let r = send(&mut c, rq(Operation::Retrieve, "x", None, "hello")).await;
    assert_eq!(r.pc, Some(json!(AE1.0)));
    let r = send(&mut c, rq(Operation::Retrieve, "x", None, "bye")).await;
    assert_eq!(r.rsc, Rsc::Ok);
    let mut s = c.into_session();
    let end = tokio::time::timeout(WAIT, s.recv())
        .await
        .expect("closed in time");
    assert!(end.is_err(), "{end:?}");

    // Opened.close cancelled: the session is closed at once.
    let mut c = connect(addr, AE1).await;
    let r = send(&mut c, rq(Operation::Retrieve, "x", None, "one")).await;
    assert_eq!(r.rsc, Rsc::Ok);
    let sig = endpoint.signals.lock().unwrap().last().cloned().unwrap();
    sig.cancel();
    let mut s = c.into_session();
    let end = tokio::time::timeout(WAIT, s.recv())
        .await
        .expect("closed in time");
    assert!(end.is_err(), "{end:?}");
    assert!(endpoint.exported.lock().unwrap().iter().all(|e| *e));
}

#[tokio::test]
async fn client_retransmits_an_unacknowledged_con_and_accepts_a_separate_response() {
    let table = m2msec_tls::PskTable::new();
    table.insert_entry(
        None,
        PskIdentity::new(AE1.0).unwrap(),
        m2msec_tls::ResolvedPsk {
            key: Psk::new(&AE1.1).unwrap(),
            bound: m2msec_tls::BoundIdentity::CredentialId("x".into()),
        },
    );
    let tls = ServerConfig::psk(Arc::new(table));
    let mut server =
        m2msec_tls::DtlsServer::bind("127.0.0.1:0".parse().unwrap(), &tls, dtls_opts())
            .await
            .unwrap();
    let addr = server.local_addr();
    // A hand-driven peer: drops the first transmission, acknowledges the retransmission with
    // an empty ACK, then sends the response as a separate CON (RFC 7252 §5.2.2).
    let peer = tokio::spawn(async move {
        let mut s = server.accept().await.unwrap().unwrap();
        let first = Packet::from_bytes(&s.recv().await.unwrap()).unwrap();
        let again = Packet::from_bytes(&s.recv().await.unwrap()).unwrap();
        assert_eq!(again, first, "a retransmission is the same message");
        let mut ack = Packet::new();
        ack.header.set_version(1);
        ack.header.set_type(MessageType::Acknowledgement);
        ack.header.message_id = first.header.message_id;
        s.send(&ack.to_bytes().unwrap()).await.unwrap();
        let mut resp = m2msec_bindings::coap::response_to_coap(
            &ResponsePrimitive::new(Rsc::Ok, "late"),
            Some(Operation::Retrieve),
            m2msec_bindings::coap::CF_JSON,
        );
        resp.header.set_type(MessageType::Confirmable);
        resp.header.message_id = 77;
        resp.set_token(first.get_token().to_vec());
        s.send(&resp.to_bytes().unwrap()).await.unwrap();
        // The client acknowledges the separate response.
        let ack = Packet::from_bytes(&s.recv().await.unwrap()).unwrap();
        assert_eq!(ack.header.get_type(), MessageType::Acknowledgement);
        assert_eq!(ack.header.message_id, 77);
        server
    });
    let mut params = fast();
    params.ack_timeout = Duration::from_millis(200);
    let mut c = CoapClient::with_params(connect(addr, AE1).await.into_session(), params);
    let r = send(&mut c, rq(Operation::Retrieve, "cb", None, "late")).await;
    assert_eq!((r.rsc, r.rqi.as_str()), (Rsc::Ok, "late"));
    tokio::time::timeout(WAIT, peer).await.unwrap().unwrap();
}
