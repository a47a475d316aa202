//! The registrar CSE end to end over real processes and loopback sockets: `m2msec cse serve`
//! with a temporary SQLite directory and PSK credentials, `m2msec request` as the AE over
//! TLS-PSK (HTTP, TS-0009), impersonation with another credential (4106, TS-0003 §7.2.1), a
//! restart that keeps every resource, and `openssl s_client` writing a raw HTTP/1.1 request as an
//! independent client. Ports are chosen by the OS (port 0) and read from the server's stderr
//! announcement; every wait is bounded; child processes are killed on drop.

mod support;

use support::*;

use std::path::PathBuf;
use std::process::Command;

use serde_json::{json, Value};

const AE1_ID: &str = "ae-light@mef.sp.example";
const AE1_KEY: &str = "000102030405060708090a0b0c0d0e0f";
const AE2_ID: &str = "ae-other@mef.sp.example";
const AE2_KEY: &str = "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff";
const AE3_ID: &str = "ae-ossl@mef.sp.example";
const AE3_KEY: &str = "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf";
const AE4_ID: &str = "ae-bound@mef.sp.example";
const AE4_KEY: &str = "b0b1b2b3b4b5b6b7b8b9babbbcbdbebf";
const SNI: &str = "cse.sp.example";

/// A CSE deployment in a temporary directory: config, keys, data.
struct Deployment {
    dir: tempfile::TempDir,
}

impl Deployment {
    fn new(extra: &str) -> Deployment {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for (name, key) in [
            ("ae1.key", AE1_KEY),
            ("ae2.key", AE2_KEY),
            ("ae3.key", AE3_KEY),
            ("ae4.key", AE4_KEY),
        ] {
            write_key(&d.join(name), key, 0o600);
        }
        let cfg = format!(
            r#"cse_id = "/cse-in"
sp_id = "sp.example"
cse_base_name = "cb"
data_dir = "{data}"

[tls]
bind = "127.0.0.1"
port = 0
authority = "{SNI}"

[[psk]]
identity = "{AE1_ID}"
key_file = "{k1}"

[[psk]]
identity = "{AE2_ID}"
key_file = "{k2}"

[[psk]]
identity = "{AE3_ID}"
key_file = "{k3}"

[[psk]]
identity = "{AE4_ID}"
key_file = "{k4}"
ida = "Cbound"
{extra}
"#,
            data = d.join("data").display(),
            k1 = d.join("ae1.key").display(),
            k2 = d.join("ae2.key").display(),
            k3 = d.join("ae3.key").display(),
            k4 = d.join("ae4.key").display(),
        );
        std::fs::write(d.join("cse.toml"), cfg).unwrap();
        Deployment { dir }
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("cse.toml")
    }

    /// Starts `cse serve`; returns the process and the TLS port it announced.
    fn start(&self) -> (Proc, u16) {
        let p = Proc::spawn_with_stdin(
            m2msec()
                .args(["cse", "serve", "--config"])
                .arg(self.config()),
            None,
        );
        let line = p.stderr_line_with("listening on ");
        let port = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("https://127.0.0.1:"))
            .and_then(|p| p.parse::<u16>().ok())
            .unwrap_or_else(|| panic!("no TLS port in {line:?}"));
        (p, port)
    }
}

/// `m2msec request` over TLS-PSK; (exit code, the JSON line).
fn request(
    port: u16,
    cred: (&str, &str),
    op: &str,
    path: &str,
    from: Option<&str>,
    ty: Option<u32>,
    body: Option<Value>,
) -> (Option<i32>, Value) {
    let mut cmd = m2msec();
    cmd.args([
        "request",
        "--url",
        &format!("https://127.0.0.1:{port}{path}"),
        "--op",
        op,
        "--psk-id",
        cred.0,
        "--psk",
        cred.1,
        "--sni",
        SNI,
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
    let (code, out, err) = Proc::spawn_with_stdin(&mut cmd, None).finish();
    let line = out
        .first()
        .unwrap_or_else(|| panic!("no JSON line (exit {code:?}): {err:?}"));
    let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    (code, v)
}

fn register(port: u16, cred: (&str, &str)) -> String {
    let (code, v) = request(
        port,
        cred,
        "create",
        "/cb",
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
fn ae_registers_over_tls_psk_creates_and_reads_back_and_survives_restart() {
    let dep = Deployment::new("");
    let (server, port) = dep.start();
    let ae1 = (AE1_ID, AE1_KEY);
    let aei = register(port, ae1);

    let (code, v) = request(
        port,
        ae1,
        "create",
        "/cb/light",
        Some(&aei),
        Some(3),
        Some(json!({"m2m:cnt":{"rn":"temp"}})),
    );
    assert_eq!((code, &v["rsc"]), (Some(0), &json!(2001)), "{v}");
    let (code, v) = request(
        port,
        ae1,
        "create",
        "/cb/light/temp",
        Some(&aei),
        Some(4),
        Some(json!({"m2m:cin":{"con":"21.5","cnf":"text/plain:0"}})),
    );
    assert_eq!((code, &v["rsc"]), (Some(0), &json!(2001)), "{v}");

    let check = |port: u16| {
        let (code, v) = request(
            port,
            ae1,
            "retrieve",
            "/cb/light/temp/la",
            Some(&aei),
            None,
            None,
        );
        assert_eq!((code, &v["rsc"]), (Some(0), &json!(2000)), "{v}");
        assert_eq!(v["pc"]["m2m:cin"]["con"], "21.5");
        let (code, v) = request(
            port,
            ae1,
            "retrieve",
            "/~/cse-in/cb/light/temp",
            Some(&aei),
            None,
            None,
        );
        assert_eq!((code, &v["rsc"]), (Some(0), &json!(2000)), "{v}");
        assert_eq!(v["pc"]["m2m:cnt"]["cni"], 1);
        let (code, v) = request(port, ae1, "retrieve", "/cb/light", Some(&aei), None, None);
        assert_eq!((code, &v["rsc"]), (Some(0), &json!(2000)), "{v}");
        assert_eq!(v["pc"]["m2m:ae"]["aei"], json!(aei));
        assert!(!v["rqi"].as_str().unwrap_or_default().is_empty(), "{v}");
    };
    check(port);

    // Restart on the same data directory: every resource and the learned binding remain.
    drop(server);
    let (_server, port) = dep.start();
    check(port);
    // The credential stays bound to its AE-ID after the restart: another From is refused.
    let (code, v) = request(
        port,
        ae1,
        "retrieve",
        "/cb/light",
        Some("Cnotme"),
        None,
        None,
    );
    assert_eq!((code, &v["rsc"]), (Some(1), &json!(4106)), "{v}");
}

#[test]
fn impersonation_with_another_credential_gets_4106() {
    let dep = Deployment::new("");
    let (_server, port) = dep.start();
    let aei = register(port, (AE1_ID, AE1_KEY));
    let ae2 = (AE2_ID, AE2_KEY);
    // A second AE credential claiming the first AE's ID (TS-0003 §7.2.1).
    let (code, v) = request(port, ae2, "retrieve", "/cb/light", Some(&aei), None, None);
    assert_eq!((code, &v["rsc"]), (Some(1), &json!(4106)), "{v}");
    let (code, v) = request(
        port,
        ae2,
        "create",
        "/cb/light",
        Some(&aei),
        Some(3),
        Some(json!({"m2m:cnt":{"rn":"evil"}})),
    );
    assert_eq!((code, &v["rsc"]), (Some(1), &json!(4106)), "{v}");
    let (code, v) = request(port, ae2, "delete", "/cb/light", Some(&aei), None, None);
    assert_eq!((code, &v["rsc"]), (Some(1), &json!(4106)), "{v}");
    // Nothing changed.
    let (code, v) = request(
        port,
        (AE1_ID, AE1_KEY),
        "retrieve",
        "/cb/light",
        Some(&aei),
        None,
        None,
    );
    assert_eq!((code, &v["rsc"]), (Some(0), &json!(2000)), "{v}");
}

#[test]
fn credential_with_configured_ida_registers_that_ae_id_only() {
    let dep = Deployment::new("");
    let (_server, port) = dep.start();
    let ae4 = (AE4_ID, AE4_KEY);
    let body = json!({"m2m:ae":{"rn":"bound","api":"Nbound","rr":false,"srv":["3"]}});
    // Another AE-ID in From: refused (TS-0003 §7.2.1 with a configured IdA).
    let (code, v) = request(
        port,
        ae4,
        "create",
        "/cb",
        Some("Cother"),
        Some(2),
        Some(body.clone()),
    );
    assert_eq!((code, &v["rsc"]), (Some(1), &json!(4106)), "{v}");
    let (code, v) = request(port, ae4, "create", "/cb", Some("C"), Some(2), Some(body));
    assert_eq!((code, &v["rsc"]), (Some(0), &json!(2001)), "{v}");
    assert_eq!(v["pc"]["m2m:ae"]["aei"], "Cbound");
    let (code, v) = request(
        port,
        ae4,
        "retrieve",
        "/cb/bound",
        Some("Cbound"),
        None,
        None,
    );
    assert_eq!((code, &v["rsc"]), (Some(0), &json!(2000)), "{v}");
}

#[test]
fn openssl_s_client_registers_an_ae_with_a_raw_http_request() {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join("openssl").is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "`openssl` not found in PATH: install it with `apt-get install -y openssl`"
    );
    let dep = Deployment::new("");
    let (_server, port) = dep.start();
    let body = r#"{"m2m:ae":{"rn":"light","api":"Nlight","rr":false,"srv":["3"]}}"#;
    let raw = format!(
        "POST /cb HTTP/1.1\r\nHost: {SNI}\r\nX-M2M-Origin: C\r\nX-M2M-RI: rq-ossl-1\r\n\
         X-M2M-RVI: 3\r\nContent-Type: application/json;ty=2\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    let client = Proc::spawn_with_stdin(
        Command::new("openssl").args([
            "s_client",
            "-tls1_2",
            "-psk_identity",
            AE3_ID,
            "-psk",
            AE3_KEY,
            "-servername",
            SNI,
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-quiet",
        ]),
        Some(raw.into_bytes()),
    );
    let (_, out, err) = client.finish();
    let text = out.join("\n");
    assert!(
        out.iter()
            .any(|l| l.trim().eq_ignore_ascii_case("X-M2M-RSC: 2001")),
        "no X-M2M-RSC: 2001 in s_client output: {text} {err:?}"
    );
    assert!(text.contains("\"aei\":\"C"), "{text}");
    assert!(
        out.iter()
            .any(|l| l.trim().eq_ignore_ascii_case("X-M2M-RI: rq-ossl-1")),
        "{text}"
    );
}

#[test]
fn plaintext_listener_is_loopback_only_and_keys_must_be_private() {
    // A non-loopback plaintext listener is refused with exit 2 naming --config.
    let dep = Deployment::new("[http_plain]\nenabled = true\nbind = \"0.0.0.0\"\nport = 0\n");
    let (code, _, err) = Proc::spawn_with_stdin(
        m2msec()
            .args(["cse", "serve", "--config"])
            .arg(dep.config()),
        None,
    )
    .finish();
    assert_eq!(code, Some(2), "{err:?}");
    assert!(
        err.iter()
            .any(|l| l.contains("--config") && l.contains("loopback")),
        "{err:?}"
    );

    // A key file readable by others is refused.
    let dep = Deployment::new("");
    write_key(&dep.dir.path().join("ae2.key"), AE2_KEY, 0o644);
    let (code, _, err) = Proc::spawn_with_stdin(
        m2msec()
            .args(["cse", "serve", "--config"])
            .arg(dep.config()),
        None,
    )
    .finish();
    assert_eq!(code, Some(2), "{err:?}");
    assert!(err.iter().any(|l| l.contains("0600")), "{err:?}");

    // Plaintext on loopback: served with no security association, so a CSE-ID in From is 4107.
    let dep = Deployment::new("[http_plain]\nenabled = true\nbind = \"127.0.0.1\"\nport = 0\n");
    let server = Proc::spawn_with_stdin(
        m2msec()
            .args(["cse", "serve", "--config"])
            .arg(dep.config()),
        None,
    );
    let line = server.stderr_line_with("listening on ");
    let plain = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("http://127.0.0.1:"))
        .and_then(|p| p.parse::<u16>().ok())
        .unwrap_or_else(|| panic!("no plaintext port in {line:?}"));
    let (code, out, err) = Proc::spawn_with_stdin(
        m2msec().args([
            "request",
            "--url",
            &format!("http://127.0.0.1:{plain}/cb"),
            "--op",
            "retrieve",
            "--from",
            "/cse-mn1",
            "--timeout",
            "15",
        ]),
        None,
    )
    .finish();
    let v: Value = serde_json::from_str(out.first().map(String::as_str).unwrap_or("null")).unwrap();
    assert_eq!((code, &v["rsc"]), (Some(1), &json!(4107)), "{v} {err:?}");
}

#[test]
fn request_bad_arguments_exit_2_naming_the_argument() {
    for (args, name) in [
        (vec!["--url", "ftp://x/cb", "--op", "retrieve"], "--url"),
        (
            vec!["--url", "http://192.0.2.1:80/cb", "--op", "retrieve"],
            "--url",
        ),
        (
            vec!["--url", "https://127.0.0.1:1/cb", "--op", "retrieve"],
            "--psk-id",
        ),
        (
            vec![
                "--url",
                "https://127.0.0.1:1/cb",
                "--op",
                "create",
                "--psk-id",
                "a@b.c",
                "--psk",
                "00",
            ],
            "--ty",
        ),
        (
            vec![
                "--url",
                "http://127.0.0.1:1/cb",
                "--op",
                "create",
                "--ty",
                "2",
                "--body",
                "{",
            ],
            "--body",
        ),
        (
            vec![
                "--url",
                "https://127.0.0.1:1/cb",
                "--op",
                "retrieve",
                "--psk-id",
                "a@b.c",
                "--psk",
                "zz",
            ],
            "--psk",
        ),
    ] {
        let (code, out, err) =
            Proc::spawn_with_stdin(m2msec().arg("request").args(&args), None).finish();
        assert_eq!(code, Some(2), "{args:?}: {out:?} {err:?}");
        assert_eq!(err.len(), 1, "{args:?}: {err:?}");
        assert!(err[0].contains(name), "{args:?}: {err:?}");
    }
}

#[test]
fn wrong_authority_or_key_fails_the_handshake_with_exit_2() {
    let dep = Deployment::new("");
    let (_server, port) = dep.start();
    for (sni, key) in [("other.example", AE1_KEY), (SNI, AE2_KEY)] {
        let (code, out, err) = Proc::spawn_with_stdin(
            m2msec().args([
                "request",
                "--url",
                &format!("https://127.0.0.1:{port}/cb"),
                "--op",
                "retrieve",
                "--psk-id",
                AE1_ID,
                "--psk",
                key,
                "--sni",
                sni,
                "--timeout",
                "10",
            ]),
            None,
        )
        .finish();
        assert_eq!(code, Some(2), "{out:?} {err:?}");
        assert!(out.is_empty(), "{out:?}");
        assert!(err.iter().any(|l| l.contains("handshake")), "{err:?}");
    }
}

/// Starts `cse serve` with the plaintext listener; (process, TLS port, plaintext port).
fn start_with_plain(dep: &Deployment) -> (Proc, u16, u16) {
    let p = Proc::spawn_with_stdin(
        m2msec()
            .args(["cse", "serve", "--config"])
            .arg(dep.config()),
        None,
    );
    let line = p.stderr_line_with("listening on ");
    let port = |prefix: &str| {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(prefix))
            .and_then(|p| p.trim_end_matches([',', ')']).parse::<u16>().ok())
            .unwrap_or_else(|| panic!("no {prefix} port in {line:?}"))
    };
    let (tls, plain) = (port("https://127.0.0.1:"), port("http://127.0.0.1:"));
    (p, tls, plain)
}

/// One raw HTTP/1.1 request on the plaintext listener; (status line, X-M2M-RSC).
fn plain_http(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(15)))
        .unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    s.write_all(req.as_bytes()).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.to_ascii_lowercase()
}

fn rsc_of(http: &str) -> Option<u16> {
    http.lines()
        .find_map(|l| l.strip_prefix("x-m2m-rsc:"))
        .and_then(|v| v.trim().parse().ok())
}

/// Issue 9 items 1, 3, 10, 11 and 13 through the binary: a credential without IdA cannot squat
/// another credential's configured IdA (over TLS or plaintext); the plaintext listener cannot
/// use an AE-ID registered over a credential; the refusals are logged at WARN at the default
/// level with the peer and identity; the data directory and databases are private; duplicate
/// JSON member names are refused.
#[test]
fn squatting_plaintext_reach_and_security_log() {
    let dep = Deployment::new("[http_plain]\nenabled = true\nbind = \"127.0.0.1\"\nport = 0\n");
    let (server, port, plain) = start_with_plain(&dep);
    let ae = json!({"m2m:ae":{"rn":"squat","api":"Nx","rr":false,"srv":["3"]}});
    // AE1 has no IdA; "Cbound" is AE4's configured IdA.
    let (code, v) = request(
        port,
        (AE1_ID, AE1_KEY),
        "create",
        "/cb",
        Some("Cbound"),
        Some(2),
        Some(ae.clone()),
    );
    assert_eq!((code, &v["rsc"]), (Some(1), &json!(4106)), "{v}");
    let warn = server.stderr_line_with("security: request refused");
    assert!(warn.contains("WARN"), "{warn}");
    assert!(warn.contains("127.0.0.1:"), "peer address missing: {warn}");
    assert!(warn.contains(AE1_ID), "identity missing: {warn}");
    assert!(warn.contains("4106"), "{warn}");
    let body = ae.to_string();
    let hdr = [
        ("X-M2M-Origin", "Cbound"),
        ("X-M2M-RI", "sq-1"),
        ("X-M2M-RVI", "3"),
        ("Content-Type", "application/json;ty=2"),
    ];
    let out = plain_http(plain, "POST", "/cb", &hdr, &body);
    assert_eq!(rsc_of(&out), Some(4106), "{out}");
    // The owner registers it; AE1 registers an AE of its own.
    let (code, v) = request(
        port,
        (AE4_ID, AE4_KEY),
        "create",
        "/cb",
        Some("Cbound"),
        Some(2),
        Some(json!({"m2m:ae":{"rn":"bound","api":"Nb","rr":false,"srv":["3"]}})),
    );
    assert_eq!((code, &v["rsc"]), (Some(0), &json!(2001)), "{v}");
    let aei = register(port, (AE1_ID, AE1_KEY));

    // Plaintext with a credential-bound AE-ID: refused for every operation.
    for (method, path, ct, body) in [
        ("GET", "/cb/light", None, ""),
        ("DELETE", "/cb/light", None, ""),
        (
            "PUT",
            "/cb/light",
            Some("application/json"),
            r#"{"m2m:ae":{"lbl":["x"]}}"#,
        ),
        (
            "POST",
            "/cb/light",
            Some("application/json;ty=3"),
            r#"{"m2m:cnt":{"rn":"evil"}}"#,
        ),
    ] {
        let mut h = vec![("X-M2M-Origin", aei.as_str()), ("X-M2M-RI", "p-1")];
        if let Some(ct) = ct {
            h.push(("Content-Type", ct));
        }
        let out = plain_http(plain, method, path, &h, body);
        assert_eq!(rsc_of(&out), Some(4106), "{method} {out}");
    }
    let (code, v) = request(
        port,
        (AE1_ID, AE1_KEY),
        "retrieve",
        "/cb/light",
        Some(&aei),
        None,
        None,
    );
    assert_eq!((code, &v["rsc"]), (Some(0), &json!(2000)), "{v}");

    // Duplicate member names: 4000, nothing created.
    let dup = r#"{"m2m:ae":{"rn":"dup1","rn":"dup2","api":"Nd","rr":false,"srv":["3"]}}"#;
    let out = plain_http(
        plain,
        "POST",
        "/cb",
        &[
            ("X-M2M-Origin", "C"),
            ("X-M2M-RI", "d-1"),
            ("Content-Type", "application/json;ty=2"),
        ],
        dup,
    );
    assert_eq!(rsc_of(&out), Some(4000), "{out}");

    // A wrong key: the handshake fails, `request` exits 2 with one line, and the server logs
    // the refusal at WARN with the peer's address.
    let (code, out, err) = Proc::spawn_with_stdin(
        m2msec().args([
            "request",
            "--url",
            &format!("https://127.0.0.1:{port}/cb"),
            "--op",
            "retrieve",
            "--from",
            &aei,
            "--psk-id",
            AE1_ID,
            "--psk",
            AE2_KEY,
            "--sni",
            SNI,
            "--timeout",
            "10",
        ]),
        None,
    )
    .finish();
    assert_eq!(code, Some(2), "{out:?} {err:?}");
    assert_eq!(err.len(), 1, "{err:?}");
    let warn = server.stderr_line_with("security: handshake refused");
    assert!(
        warn.contains("WARN") && warn.contains("127.0.0.1:"),
        "{warn}"
    );
    // An unknown identity names the identity.
    let _ = Proc::spawn_with_stdin(
        m2msec().args([
            "request",
            "--url",
            &format!("https://127.0.0.1:{port}/cb"),
            "--op",
            "retrieve",
            "--from",
            "C",
            "--psk-id",
            "nobody@mef.sp.example",
            "--psk",
            AE2_KEY,
            "--sni",
            SNI,
            "--timeout",
            "10",
        ]),
        None,
    )
    .finish();
    let warn = server.stderr_line_with("security: PSK identity refused");
    assert!(warn.contains("nobody@mef.sp.example"), "{warn}");

    // A key file others may read is refused by `request` too (exit 2, naming the argument).
    let loose = dep.dir.path().join("loose.key");
    write_key(&loose, AE1_KEY, 0o644);
    let (code, _, err) = Proc::spawn_with_stdin(
        m2msec()
            .args([
                "request",
                "--url",
                &format!("https://127.0.0.1:{port}/cb"),
                "--op",
                "retrieve",
                "--from",
                "C",
                "--psk-id",
                AE1_ID,
                "--psk-file",
            ])
            .arg(&loose),
        None,
    )
    .finish();
    assert_eq!(code, Some(2), "{err:?}");
    assert!(err.iter().any(|l| l.contains("--psk-file")), "{err:?}");

    // The data directory is 0700 and the database files 0600.
    use std::os::unix::fs::PermissionsExt;
    let data = dep.dir.path().join("data");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700);
    for f in std::fs::read_dir(&data).unwrap() {
        let p = f.unwrap().path();
        assert_eq!(mode(&p) & 0o077, 0, "{} is {:o}", p.display(), mode(&p));
    }
    drop(server);
}

/// Issue 11 item 1 through the binary: `[cse_base]` configures the `<CSEBase>` policy. An AE
/// registered over TLS reads `<CSEBase>` (and nothing more); the administrator, accepted on the
/// plaintext listener only because `admin_plaintext` says so, creates under it.
#[test]
fn cse_base_policy_and_administrator_from_the_configuration() {
    let dep = Deployment::new(
        "[http_plain]\nenabled = true\nbind = \"127.0.0.1\"\nport = 0\n\n\
         [cse_base]\nadmin = \"CAdmin\"\nadmin_plaintext = true\n",
    );
    let (server, port, plain) = start_with_plain(&dep);
    let aei = register(port, (AE1_ID, AE1_KEY));
    let (code, v) = request(
        port,
        (AE1_ID, AE1_KEY),
        "retrieve",
        "/cb",
        Some(&aei),
        None,
        None,
    );
    assert_eq!((code, &v["rsc"]), (Some(0), &json!(2000)), "{v}");
    assert_eq!(v["pc"]["m2m:cb"]["acpi"], json!(["acpCSEBase"]));
    let (_, v) = request(
        port,
        (AE1_ID, AE1_KEY),
        "create",
        "/cb",
        Some(&aei),
        Some(3),
        Some(json!({"m2m:cnt":{"rn":"x"}})),
    );
    assert_eq!(v["rsc"], json!(4103), "{v}");
    let out = plain_http(
        plain,
        "POST",
        "/cb",
        &[
            ("X-M2M-Origin", "CAdmin"),
            ("X-M2M-RI", "a1"),
            ("Content-Type", "application/json;ty=3"),
        ],
        r#"{"m2m:cnt":{"rn":"shared"}}"#,
    );
    assert_eq!(rsc_of(&out), Some(2001), "{out}");
    drop(server);
}
