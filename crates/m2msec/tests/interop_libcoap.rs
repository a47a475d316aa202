//! Interop with libcoap's `coap-client` (Debian `libcoap3-bin`), the CoAP stack most
//! constrained devices and gateways ship, with both of its DTLS back ends (`coap-client-openssl`,
//! `coap-client-gnutls`), against `m2msec cse serve` and `m2msec mef serve` with `[coap]`
//! (TS-0008 over DTLS 1.2 PSK). The peers are a separate process each time, as a device is.
//!
//! * An AE registers, creates a container and a contentInstance and reads `la` back, by host
//!   name (`coaps://localhost:PORT`, the CSE's `[tls] authority` being `localhost`) and by IP
//!   address (`coaps://127.0.0.1:PORT`: libcoap puts the IP literal into `server_name`, which the
//!   server must treat as no SNI, RFC 6066 §3, issue 17); a spoofed From with another
//!   credential gets 4.03 with oneM2M-RSC 4106 (TS-0003 §7.2.1).
//! * With `require_sni = true` the IP literal is refused as a missing SNI, the name accepted.
//! * A MEF client (an Enrolment Target's credential) gets a well-formed oneM2M refusal from the
//!   MEF's `/fetchCredentials` over CoAP by IP address.
//!
//! The oneM2M options (TS-0008 table 6.2.2.4.0-1) go with `-O num,value`: string options as
//! text, `uint` options (oneM2M-TY) in hex (`-O 267,0x02`; `-O 267,2` would send the character
//! "2"). They are critical options (odd numbers) libcoap does not know, so `coap-client`
//! discards the response ("unknown critical option", RFC 7252 §5.4.1) and never prints it as
//! a result; with `-v 7` it logs every PDU it receives, and the tests read the response from
//! that line (`v:1 t:ACK c:2.01 … 307:\x07\xD1 … :: '<payload>'`), then end the client. A
//! missing `coap-client-*` fails the tests (never a skip).

mod support;

use support::*;

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

/// The DTLS back ends of libcoap, one binary each.
const PEERS: [&str; 2] = ["coap-client-openssl", "coap-client-gnutls"];
/// libcoap 4.3 takes the PSK as text (`-k`): the keys are printable, their hex in the key files.
const AE1: (&str, &str) = ("ae-one@mef.sp.example", "libcoap-psk-one1");
const AE2: (&str, &str) = ("ae-two@mef.sp.example", "libcoap-psk-two2");
const AE3: (&str, &str) = ("ae-three@mef.sp.example", "libcoap-psk-thre");

/// oneM2M CoAP option numbers (TS-0008 table 6.2.2.4.0-1).
const FR: u16 = 279;
const RQI: u16 = 283;
const TY: u16 = 267;
const RVI: u16 = 271;

/// A response as `coap-client -v 7` logged it.
#[derive(Debug)]
struct Reply {
    /// CoAP code, e.g. "2.01".
    code: String,
    /// oneM2M-RSC (option 307).
    rsc: Option<u32>,
    /// The payload (JSON text; the requests ask for application/json).
    body: Value,
    line: String,
}

/// Parses `v:1 t:ACK c:2.01 i:… {…} [ …, 307:\x07\xD1 ] :: '…'`.
fn parse_reply(line: &str) -> Reply {
    let code = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("c:"))
        .unwrap_or_default()
        .to_string();
    let rsc = line.split_once("307:").map(|(_, rest)| {
        let raw = rest.split([',', ' ']).next().unwrap_or_default();
        raw.split("\\x")
            .filter(|h| !h.is_empty())
            .fold(0u32, |acc, h| {
                (acc << 8) | u32::from_str_radix(h, 16).expect("hex option byte")
            })
    });
    let body = line
        .split_once(":: '")
        .and_then(|(_, p)| p.strip_suffix('\''))
        .map(|p| {
            serde_json::from_str(p).unwrap_or_else(|e| panic!("payload not JSON ({e}): {line}"))
        })
        .unwrap_or(Value::Null);
    Reply {
        code,
        rsc,
        body,
        line: line.to_string(),
    }
}

/// Whether a `-v 7` PDU line is a response (ACK with a code, or a separate CON/NON response).
fn is_response(line: &str) -> bool {
    line.starts_with("v:1 ")
        && line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("c:"))
            .is_some_and(|c| c.starts_with(['2', '4', '5']))
}

/// One request with `peer`; returns the response it logged. The client is then killed (it
/// would wait for `-B` seconds, having discarded the response): no close_notify is sent.
fn coap(
    peer: &str,
    url: &str,
    cred: (&str, &str),
    method: &str,
    options: &[(u16, &str)],
    payload: Option<&str>,
) -> Reply {
    coap_from(peer, None, url, cred, method, options, payload)
}

/// [`coap`] from a fixed local UDP port (`-p`) when given.
fn coap_from(
    peer: &str,
    local_port: Option<u16>,
    url: &str,
    cred: (&str, &str),
    method: &str,
    options: &[(u16, &str)],
    payload: Option<&str>,
) -> Reply {
    require(peer, "libcoap3-bin");
    let mut cmd = Command::new(peer);
    cmd.args(["-v", "7", "-B", "10", "-m", method, "-A", "50"])
        .args(["-u", cred.0, "-k", cred.1]);
    if let Some(p) = local_port {
        cmd.args(["-p", &p.to_string()]);
    }
    for (num, value) in options {
        cmd.args(["-O", &format!("{num},{value}")]);
    }
    if let Some(p) = payload {
        cmd.args(["-t", "50", "-e", p]);
    }
    cmd.arg(url);
    let p = Proc::spawn(&mut cmd);
    let end = std::time::Instant::now() + WAIT;
    let mut seen = Vec::new();
    loop {
        let left = end.saturating_duration_since(std::time::Instant::now());
        match p.stdout.recv_timeout(left) {
            Ok(l) if is_response(&l) => return parse_reply(&l),
            Ok(l) => seen.push(l),
            Err(_) => {
                let err: Vec<String> = p.stderr.try_iter().collect();
                panic!("{peer} {method} {url}: no response (the client ended, or {WAIT:?} passed)\nstdout: {seen:#?}\nstderr: {err:#?}")
            }
        }
    }
}

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

/// A CSE with `[coap]`, answering for `localhost`, with the three PSKs, in a temp directory.
struct Cse {
    _dir: tempfile::TempDir,
    _proc: Proc,
    port: u16,
}

impl Cse {
    fn start(require_sni: bool) -> Cse {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let mut psks = String::new();
        for (i, (id, key)) in [AE1, AE2, AE3].into_iter().enumerate() {
            let f = d.join(format!("ae{i}.key"));
            write_key(&f, &hex(key), 0o600);
            psks.push_str(&format!(
                "\n[[psk]]\nidentity = \"{id}\"\nkey_file = \"{}\"\n",
                f.display()
            ));
        }
        let cfg = format!(
            "cse_id = \"/cse-in\"\nsp_id = \"sp.example\"\ndata_dir = \"{}\"\n\n[tls]\n\
             bind = \"127.0.0.1\"\nport = 0\nauthority = \"localhost\"\nrequire_sni = {require_sni}\n\n\
             [coap]\nenabled = true\nbind = \"127.0.0.1\"\nport = 0\n{psks}",
            d.join("data").display()
        );
        let path: PathBuf = d.join("cse.toml");
        std::fs::write(&path, cfg).unwrap();
        let p = Proc::spawn(m2msec().args(["cse", "serve", "--config"]).arg(&path));
        let line = p.stderr_line_with("listening on ");
        let port = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("coaps://127.0.0.1:"))
            .and_then(|p| p.parse::<u16>().ok())
            .unwrap_or_else(|| panic!("no coaps port in {line:?}"));
        Cse {
            _dir: dir,
            _proc: p,
            port,
        }
    }
}

/// Register an AE, create a container and a contentInstance, read `la` back, with `peer` at
/// `base` (coaps://HOST:PORT); returns the AE-ID.
fn story(peer: &str, base: &str, cred: (&str, &str), rn: &str) -> String {
    let reg = coap(
        peer,
        &format!("{base}/cb"),
        cred,
        "post",
        &[(FR, "C"), (RQI, "reg"), (RVI, "3"), (TY, "0x02")],
        Some(&format!(
            r#"{{"m2m:ae":{{"rn":"{rn}","api":"Nlibcoap","rr":false,"srv":["3"]}}}}"#
        )),
    );
    assert_eq!(
        (reg.code.as_str(), reg.rsc),
        ("2.01", Some(2001)),
        "{}",
        reg.line
    );
    let aei = reg.body["m2m:ae"]["aei"]
        .as_str()
        .unwrap_or_else(|| panic!("no aei: {}", reg.line))
        .to_string();
    assert!(aei.starts_with('C'), "{aei}");
    let cnt = coap(
        peer,
        &format!("{base}/cb/{rn}"),
        cred,
        "post",
        &[(FR, &aei), (RQI, "cnt"), (RVI, "3"), (TY, "0x03")],
        Some(r#"{"m2m:cnt":{"rn":"temp"}}"#),
    );
    assert_eq!(
        (cnt.code.as_str(), cnt.rsc),
        ("2.01", Some(2001)),
        "{}",
        cnt.line
    );
    let cin = coap(
        peer,
        &format!("{base}/cb/{rn}/temp"),
        cred,
        "post",
        &[(FR, &aei), (RQI, "cin"), (RVI, "3"), (TY, "0x04")],
        Some(r#"{"m2m:cin":{"con":"21.5","cnf":"text/plain:0"}}"#),
    );
    assert_eq!(
        (cin.code.as_str(), cin.rsc),
        ("2.01", Some(2001)),
        "{}",
        cin.line
    );
    let la = coap(
        peer,
        &format!("{base}/cb/{rn}/temp/la"),
        cred,
        "get",
        &[(FR, &aei), (RQI, "la"), (RVI, "3")],
        None,
    );
    assert_eq!(
        (la.code.as_str(), la.rsc),
        ("2.05", Some(2000)),
        "{}",
        la.line
    );
    assert_eq!(la.body["m2m:cin"]["con"], "21.5", "{}", la.line);
    aei
}

/// A request with AE2's credential claiming `aei` (another credential's AE-ID): 4.03, 4106.
fn spoof(peer: &str, base: &str, aei: &str, rn: &str) {
    let r = coap(
        peer,
        &format!("{base}/cb/{rn}/temp/la"),
        AE2,
        "get",
        &[(FR, aei), (RQI, "spoof"), (RVI, "3")],
        None,
    );
    assert_eq!((r.code.as_str(), r.rsc), ("4.03", Some(4106)), "{}", r.line);
}

fn cse_by_name_and_by_address(peer: &str) {
    let cse = Cse::start(false);
    let by_name = format!("coaps://localhost:{}", cse.port);
    let by_addr = format!("coaps://127.0.0.1:{}", cse.port);
    let a1 = story(peer, &by_name, AE1, "byname");
    let a3 = story(peer, &by_addr, AE3, "byaddr");
    spoof(peer, &by_addr, &a1, "byname");
    spoof(peer, &by_name, &a3, "byaddr");
}

#[test]
fn coap_client_openssl_registers_creates_and_reads_by_name_and_by_address() {
    cse_by_name_and_by_address(PEERS[0]);
}

#[test]
fn coap_client_gnutls_registers_creates_and_reads_by_name_and_by_address() {
    cse_by_name_and_by_address(PEERS[1]);
}

/// `require_sni = true`: the IP literal libcoap sends is refused as a missing SNI (the
/// handshake fails with unrecognized_name), the host name is served.
#[test]
fn coap_client_by_address_is_refused_when_sni_is_required() {
    let cse = Cse::start(true);
    for peer in PEERS {
        require(peer, "libcoap3-bin");
        let (_code, out, err) = run(Command::new(peer)
            .args(["-v", "7", "-B", "3", "-m", "get", "-A", "50"])
            .args(["-u", AE1.0, "-k", AE1.1])
            .args(["-O", "279,C", "-O", "283,r", "-O", "271,3"])
            .arg(format!("coaps://127.0.0.1:{}/cb", cse.port)));
        let all = format!("{out}\n{err}");
        assert!(
            !all.lines().any(is_response),
            "{peer}: an answer by IP address although SNI is required:\n{all}"
        );
        assert!(
            all.contains("unrecognized name") || all.contains("not recognized"),
            "{peer}:\n{all}"
        );
        let r = coap(
            peer,
            &format!("coaps://localhost:{}/cb", cse.port),
            AE1,
            "get",
            &[(FR, "Cnobody"), (RQI, "r"), (RVI, "3")],
            None,
        );
        assert!(
            r.rsc.is_some(),
            "{peer}: a oneM2M response by name: {}",
            r.line
        );
    }
}

/// A device that loses power (killed: no close_notify) and comes back on the same UDP source
/// port is answered at once, although the CSE still holds its stale DTLS session (RFC 6347
/// §4.2.8, issue 9 item 6): its new ClientHello starts a new handshake that replaces the
/// session, instead of reaching the stale session and refreshing its idle timer.
#[test]
fn coap_client_rebooted_on_the_same_port_is_answered_at_once() {
    let cse = Cse::start(false);
    let url = format!("coaps://127.0.0.1:{}/cb", cse.port);
    for peer in PEERS {
        let port = std::net::UdpSocket::bind("127.0.0.1:0")
            .and_then(|s| s.local_addr())
            .unwrap()
            .port();
        for boot in 0..3 {
            let t = std::time::Instant::now();
            let r = coap_from(
                peer,
                Some(port),
                &url,
                AE1,
                "get",
                &[(FR, "Cnobody"), (RQI, "boot"), (RVI, "3")],
                None,
            );
            let took = t.elapsed();
            assert!(r.rsc.is_some(), "{peer} boot {boot}: {}", r.line);
            assert!(
                took < std::time::Duration::from_secs(5),
                "{peer} boot {boot} on port {port}: answered after {took:?}"
            );
        }
    }
}

/// The MEF over CoAP by IP address (its authority is its FQDN; libcoap sends 127.0.0.1 as SNI):
/// a configured MEF client asking `/fetchCredentials` for an unknown KeID gets a well-formed
/// oneM2M refusal (4.04, oneM2M-RSC 4004, status false with an error string).
#[test]
fn coap_client_reaches_the_mef_by_address() {
    const FQDN: &str = "mef.sp.example";
    const TARGET: (&str, &str) = ("cse-in@mef.sp.example", "libcoap-mef-cse1");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_key(&d.join("cse.key"), &hex(TARGET.1), 0o600);
    std::fs::write(
        d.join("mef.toml"),
        format!(
            "fqdn = \"{FQDN}\"\ndata_dir = \"{}\"\n[tls]\nport = 0\n[coap]\nenabled = true\nport = 0\n\
             [[target]]\nidentity = \"{}\"\nkey_file = \"{}\"\nid = \"//sp.example/cse-in\"\n",
            d.join("mef").display(),
            TARGET.0,
            d.join("cse.key").display()
        ),
    )
    .unwrap();
    let mef = Proc::spawn(
        m2msec()
            .args(["mef", "serve", "--config"])
            .arg(d.join("mef.toml")),
    );
    let line = mef.stderr_line_with("listening on ");
    let port = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("coaps://127.0.0.1:"))
        .and_then(|p| p.parse::<u16>().ok())
        .unwrap_or_else(|| panic!("no coaps port in {line:?}"));
    for peer in PEERS {
        let r = coap(
            peer,
            &format!("coaps://127.0.0.1:{port}/fetchCredentials/00112233445566778899aabbccddeeff@{FQDN}/22"),
            TARGET,
            "get",
            &[(FR, "//sp.example/cse-in"), (RQI, "fetch"), (RVI, "3")],
            None,
        );
        assert_eq!(
            (r.code.as_str(), r.rsc),
            ("4.04", Some(4004)),
            "{peer}: {}",
            r.line
        );
        assert_eq!(r.body["status"], false, "{peer}: {}", r.line);
        assert!(r.body["errorString"].is_string(), "{peer}: {}", r.line);
    }
}
