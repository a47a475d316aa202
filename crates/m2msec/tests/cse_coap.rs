//! The registrar CSE over CoAP (TS-0008) inside DTLS 1.2 PSK, end to end: `m2msec cse serve`
//! with `[coap] enabled = true` next to the HTTPS listener, `m2msec request coaps://…` as the
//! AE, impersonation with another credential (4106, TS-0003 §7.2.1), one endpoint shared by
//! both bindings, and an in-process DTLS client sending malformed and duplicate datagrams.
//! Ports are chosen by the OS (port 0) and read from the server's stderr announcement; every
//! wait is bounded; child processes are killed on drop.

mod support;

use support::*;

use std::net::SocketAddr;
use std::path::PathBuf;

use serde_json::{json, Value};

use m2msec_bindings::coap::{request_to_coap, response_from_coap};
use m2msec_bindings::coap_lite::{MessageType, Packet};
use m2msec_bindings::CoapClient;
use m2msec_cse::{Operation, RequestPrimitive, Rsc};
use m2msec_tls::{ClientConfig, DtlsClient, DtlsOptions, Psk, PskIdentity};

const AE1_ID: &str = "ae-light@mef.sp.example";
const AE1_KEY: &str = "000102030405060708090a0b0c0d0e0f";
const AE2_ID: &str = "ae-other@mef.sp.example";
const AE2_KEY: &str = "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff";

/// A CSE deployment with HTTPS and CoAP/DTLS listeners, in a temporary directory.
struct Deployment {
    dir: tempfile::TempDir,
}

impl Deployment {
    fn new() -> Deployment {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write_key(&d.join("ae1.key"), AE1_KEY, 0o600);
        write_key(&d.join("ae2.key"), AE2_KEY, 0o600);
        let cfg = format!(
            r#"cse_id = "/cse-in"
sp_id = "sp.example"
data_dir = "{data}"

[tls]
bind = "127.0.0.1"
port = 0

[coap]
enabled = true
bind = "127.0.0.1"
port = 0

[[psk]]
identity = "{AE1_ID}"
key_file = "{k1}"

[[psk]]
identity = "{AE2_ID}"
key_file = "{k2}"
"#,
            data = d.join("data").display(),
            k1 = d.join("ae1.key").display(),
            k2 = d.join("ae2.key").display(),
        );
        std::fs::write(d.join("cse.toml"), cfg).unwrap();
        Deployment { dir }
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("cse.toml")
    }

    /// Starts `cse serve`; returns the process, the TLS port and the CoAP/DTLS port.
    fn start(&self) -> (Proc, u16, u16) {
        let p = Proc::spawn(
            m2msec()
                .args(["cse", "serve", "--config"])
                .arg(self.config()),
        );
        let line = p.stderr_line_with("listening on ");
        let port = |prefix: &str| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(prefix))
                .and_then(|p| p.parse::<u16>().ok())
                .unwrap_or_else(|| panic!("no {prefix} port in {line:?}"))
        };
        assert!(line.contains("(DTLS-PSK)"), "{line}");
        (p, port("https://127.0.0.1:"), port("coaps://127.0.0.1:"))
    }
}

/// `m2msec request` over `scheme` (https or coaps); (exit code, the JSON line).
fn request(
    url: &str,
    cred: (&str, &str),
    op: &str,
    from: Option<&str>,
    ty: Option<u32>,
    body: Option<Value>,
) -> (Option<i32>, Value) {
    let mut cmd = m2msec();
    cmd.args([
        "request",
        "--url",
        url,
        "--op",
        op,
        "--psk-id",
        cred.0,
        "--psk",
        cred.1,
        "--timeout",
        "15",
    ]);
    if let Some(f) = from {
        cmd.args(["--from", f]);
    }
    if let Some(t) = ty {
        cmd.args(["--ty", &t.to_string()]);
    }
    if let Some(b) = body {
        cmd.args(["--body", &b.to_string()]);
    }
    let (code, out, err) = Proc::spawn(&mut cmd).finish();
    let line = out
        .first()
        .unwrap_or_else(|| panic!("no JSON line (exit {code:?}): {err:?}"));
    let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    (code, v)
}

fn register_coap(port: u16, cred: (&str, &str)) -> String {
    let (code, v) = request(
        &format!("coaps://127.0.0.1:{port}/cb"),
        cred,
        "create",
        Some("C"),
        Some(2),
        Some(json!({"m2m:ae":{"rn":"light","api":"Nlight","rr":false,"srv":["3"]}})),
    );
    assert_eq!((code, &v["rsc"]), (Some(0), &json!(2001)), "{v}");
    let aei = v["pc"]["m2m:ae"]["aei"].as_str().unwrap().to_string();
    assert!(aei.starts_with('C'), "{aei}");
    aei
}

#[test]
fn ae_registers_over_coaps_creates_and_reads_back_and_https_shares_the_cse() {
    let dep = Deployment::new();
    let (_server, https, coap) = dep.start();
    let ae1 = (AE1_ID, AE1_KEY);
    let aei = register_coap(coap, ae1);
    let url = |p: &str| format!("coaps://127.0.0.1:{coap}{p}");

    let (code, v) = request(
        &url("/cb/light"),
        ae1,
        "create",
        Some(&aei),
        Some(3),
        Some(json!({"m2m:cnt":{"rn":"temp"}})),
    );
    assert_eq!((code, &v["rsc"]), (Some(0), &json!(2001)), "{v}");
    for con in ["21.5", "22.5"] {
        let (code, v) = request(
            &url("/cb/light/temp"),
            ae1,
            "create",
            Some(&aei),
            Some(4),
            Some(json!({"m2m:cin":{"con":con,"cnf":"text/plain:0"}})),
        );
        assert_eq!((code, &v["rsc"]), (Some(0), &json!(2001)), "{v}");
    }
    let (code, v) = request(
        &url("/cb/light/temp/la"),
        ae1,
        "retrieve",
        Some(&aei),
        None,
        None,
    );
    assert_eq!((code, &v["rsc"]), (Some(0), &json!(2000)), "{v}");
    assert_eq!(v["pc"]["m2m:cin"]["con"], "22.5");
    assert!(!v["rqi"].as_str().unwrap_or_default().is_empty(), "{v}");
    // SP-relative form (Uri-Path "~", TS-0008 table 6.2.2.3-1).
    let (code, v) = request(
        &url("/~/cse-in/cb/light/temp"),
        ae1,
        "retrieve",
        Some(&aei),
        None,
        None,
    );
    assert_eq!((code, &v["rsc"]), (Some(0), &json!(2000)), "{v}");
    assert_eq!(v["pc"]["m2m:cnt"]["cni"], 2);
    // The same CSE and the same learned binding behind the HTTPS listener.
    let (code, v) = request(
        &format!("https://127.0.0.1:{https}/cb/light/temp"),
        ae1,
        "retrieve",
        Some(&aei),
        None,
        None,
    );
    assert_eq!((code, &v["rsc"]), (Some(0), &json!(2000)), "{v}");
    assert_eq!(v["pc"]["m2m:cnt"]["cni"], 2);
    let (code, v) = request(
        &format!("https://127.0.0.1:{https}/cb/light"),
        ae1,
        "retrieve",
        Some("Cnotme"),
        None,
        None,
    );
    assert_eq!((code, &v["rsc"]), (Some(1), &json!(4106)), "{v}");
}

#[test]
fn impersonation_over_coaps_gets_4106() {
    let dep = Deployment::new();
    let (_server, _https, coap) = dep.start();
    let aei = register_coap(coap, (AE1_ID, AE1_KEY));
    let ae2 = (AE2_ID, AE2_KEY);
    let url = format!("coaps://127.0.0.1:{coap}/cb/light");
    let (code, v) = request(&url, ae2, "retrieve", Some(&aei), None, None);
    assert_eq!((code, &v["rsc"]), (Some(1), &json!(4106)), "{v}");
    let (code, v) = request(
        &url,
        ae2,
        "create",
        Some(&aei),
        Some(3),
        Some(json!({"m2m:cnt":{"rn":"evil"}})),
    );
    assert_eq!((code, &v["rsc"]), (Some(1), &json!(4106)), "{v}");
    let (code, v) = request(&url, ae2, "delete", Some(&aei), None, None);
    assert_eq!((code, &v["rsc"]), (Some(1), &json!(4106)), "{v}");
    let (code, v) = request(&url, (AE1_ID, AE1_KEY), "retrieve", Some(&aei), None, None);
    assert_eq!((code, &v["rsc"]), (Some(0), &json!(2000)), "{v}");
}

async fn dtls_client(port: u16) -> CoapClient {
    let cfg = ClientConfig::psk(
        PskIdentity::new(AE1_ID).unwrap(),
        Psk::from_hex(AE1_KEY).unwrap(),
    );
    let client = DtlsClient::new(cfg, DtlsOptions::default()).unwrap();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let session = tokio::time::timeout(WAIT, client.connect_addr(addr, None))
        .await
        .unwrap()
        .unwrap();
    CoapClient::new(session)
}

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

#[test]
fn malformed_and_duplicate_datagrams_against_the_cli_server() {
    let dep = Deployment::new();
    let (_server, _https, coap) = dep.start();
    let aei = register_coap(coap, (AE1_ID, AE1_KEY));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut c = dtls_client(coap).await;
        // Unparseable CON → Reset (TS-0008 §5.1, RFC 7252 §4.2).
        let r = raw(&mut c, &[0x40, 0x01, 0x00, 0x42, 0xf0]).await;
        assert_eq!(r.header.get_type(), MessageType::Reset);
        assert_eq!(r.header.message_id, 0x42);
        // The same CREATE sent twice with one message ID: one ACK repeated, one resource.
        let mut p = request_to_coap(
            &RequestPrimitive::new(Operation::Create, "cb/light", Some(&aei), "dup")
                .with_ty(3)
                .with_pc(json!({"m2m:cnt":{"rn":"once"}})),
        )
        .unwrap();
        p.header.set_type(MessageType::Confirmable);
        p.header.message_id = 0x0777;
        p.set_token(vec![5, 5, 5]);
        let bytes = p.to_bytes().unwrap();
        let first = raw(&mut c, &bytes).await;
        assert_eq!(first.header.get_type(), MessageType::Acknowledgement);
        assert_eq!(response_from_coap(&first).unwrap().rsc, Rsc::Created);
        let again = raw(&mut c, &bytes).await;
        assert_eq!(again, first);
        // Executed once: a new request for the same name now conflicts.
        p.header.message_id = 0x0778;
        let third = raw(&mut c, &p.to_bytes().unwrap()).await;
        assert_eq!(
            response_from_coap(&third).unwrap().rsc,
            Rsc::Conflict,
            "{third:?}"
        );
        // The session still serves ordinary requests.
        let r = tokio::time::timeout(
            WAIT,
            c.request(
                &RequestPrimitive::new(Operation::Retrieve, "cb/light/once", Some(&aei), "g"),
                &[],
            ),
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!(r.rsc, Rsc::Ok);
    });
}
