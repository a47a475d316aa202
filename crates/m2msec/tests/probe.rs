//! `m2msec probe` end to end over real loopback sockets and real processes: `probe listen` +
//! `probe connect` over TLS and DTLS print matching exports; failures print a JSON error and exit
//! 1; bad arguments exit 2. Also `probe listen` against `openssl s_client` (apt package
//! `openssl`). Every wait is bounded; child processes are killed on drop.

mod support;

use support::*;

use std::process::Command;

const ID: &str = "kpsa-probe@mef.example.com";
const KEY: &str = "A0A1A2A3A4A5A6A7A8A9AAABACADAEAF";

/// `probe listen` on a free port; returns the process and the port it announced.
fn listen(transport: &str, key: &str) -> (Proc, u16) {
    let p = Proc::spawn(m2msec().args([
        "probe",
        "listen",
        transport,
        "--port",
        "0",
        "--psk-id",
        ID,
        "--psk",
        key,
        "--print-export",
        "--timeout",
        "5",
    ]));
    let line = p.stderr_line_with("listening on ");
    let port = line
        .split_whitespace()
        .find_map(|w| w.rsplit_once(':').and_then(|(_, p)| p.parse::<u16>().ok()))
        .unwrap_or_else(|| panic!("no port in {line:?}"));
    (p, port)
}

fn connect(
    transport: &str,
    target: &str,
    key: &str,
    extra: &[&str],
) -> (Option<i32>, Vec<String>, Vec<String>) {
    let mut cmd = m2msec();
    cmd.args([
        "probe", "connect", transport, target, "--psk-id", ID, "--psk", key,
    ]);
    if !extra.contains(&"--timeout") {
        cmd.args(["--timeout", "10"]);
    }
    cmd.args(extra);
    Proc::spawn(&mut cmd).finish()
}

fn json(line: &str) -> serde_json::Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
}

fn round_trip(transport: &str, protocol: &str, cipher: &str) {
    let (server, port) = listen(transport, KEY);
    let (code, out, err) = connect(
        transport,
        &format!("localhost:{port}"),
        &KEY.to_lowercase(),
        &["--print-export"],
    );
    assert_eq!(code, Some(0), "stdout {out:?} stderr {err:?}");
    assert_eq!(out.len(), 1, "{out:?}");
    let c = json(&out[0]);
    let s = json(&server.stdout_line());
    for v in [&c, &s] {
        assert_eq!(v["protocol"], protocol);
        assert_eq!(v["cipher"], cipher);
        assert_eq!(v["psk_identity"], ID);
        assert_eq!(v["sni"], "localhost");
        let e = v["export"].as_str().unwrap();
        assert_eq!(e.len(), 96);
        assert!(
            e.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
            "{e}"
        );
    }
    assert_eq!(c["export"], s["export"]);
    assert_eq!(c["peer"], format!("127.0.0.1:{port}"));
    assert!(s["peer"].as_str().unwrap().starts_with("127.0.0.1:"));
    // Field order of the contract, on the raw line.
    let pos: Vec<usize> = [
        "\"peer\"",
        "\"protocol\"",
        "\"cipher\"",
        "\"psk_identity\"",
        "\"sni\"",
        "\"export\"",
    ]
    .iter()
    .map(|k| {
        out[0]
            .find(k)
            .unwrap_or_else(|| panic!("{k} missing: {}", out[0]))
    })
    .collect();
    assert!(pos.windows(2).all(|w| w[0] < w[1]), "{}", out[0]);
}

#[test]
fn probe_tls_listen_and_connect_print_matching_exports() {
    round_trip("--tls", "TLSv1.2", "TLS_PSK_WITH_AES_128_CBC_SHA256");
}

#[test]
fn probe_dtls_listen_and_connect_print_matching_exports() {
    round_trip("--dtls", "DTLSv1.2", "TLS_PSK_WITH_AES_128_CCM_8");
}

#[test]
fn probe_wrong_key_prints_error_and_exits_1() {
    for transport in ["--tls", "--dtls"] {
        let (server, port) = listen(transport, KEY);
        let (code, out, _) = connect(
            transport,
            &format!("127.0.0.1:{port}"),
            "00ff",
            &["--timeout", "3"],
        );
        assert_eq!(code, Some(1), "{transport}: {out:?}");
        assert_eq!(out.len(), 1, "{out:?}");
        let c = json(&out[0]);
        assert!(c["error"].as_str().is_some_and(|e| !e.is_empty()), "{c}");
        assert!(c.get("export").is_none());
        let s = json(&server.stdout_line());
        assert!(s["error"].is_string(), "{s}");
        // No key material in any output.
        assert!(!out[0].to_lowercase().contains("a0a1a2a3"));
    }
}

#[test]
fn probe_without_print_export_has_no_export_and_ip_target_sends_no_sni() {
    let (server, port) = listen("--tls", KEY);
    let (code, out, _) = connect("--tls", &format!("127.0.0.1:{port}"), KEY, &[]);
    assert_eq!(code, Some(0));
    let c = json(&out[0]);
    assert!(c.get("export").is_none(), "{c}");
    assert!(c["sni"].is_null(), "{c}");
    let s = json(&server.stdout_line());
    assert!(s["sni"].is_null(), "{s}");
    // Explicit SNI and another label.
    let (code, out, _) = connect(
        "--tls",
        &format!("127.0.0.1:{port}"),
        KEY,
        &[
            "--sni",
            "IN-CSE.example.com",
            "--label",
            "EXPORTER-oneM2M-Connection",
            "--print-export",
        ],
    );
    assert_eq!(code, Some(0));
    let c = json(&out[0]);
    let s = json(&server.stdout_line());
    assert_eq!(s["sni"], "in-cse.example.com");
    assert_eq!(c["sni"], "in-cse.example.com");
    // The listener exports with the default (Bootstrap) label: a different value.
    assert_ne!(c["export"], s["export"]);
}

#[test]
fn probe_bad_arguments_exit_2_naming_the_argument() {
    let cases: [(&[&str], &str); 6] = [
        (
            &["connect", "--tls", "h:1", "--psk-id", ID, "--psk", "0g"],
            "--psk",
        ),
        (
            &["connect", "--tls", "h:1", "--psk-id", ID, "--psk", "abc"],
            "--psk",
        ),
        (
            &["connect", "--tls", "h:1", "--psk-id", "", "--psk", "00"],
            "--psk-id",
        ),
        (
            &["connect", "--dtls", "nohost", "--psk-id", ID, "--psk", "00"],
            "HOST:PORT",
        ),
        (
            &[
                "connect", "--tls", "h:1", "--psk-id", ID, "--psk", "00", "--sni", "10.0.0.1",
            ],
            "--sni",
        ),
        (
            &["listen", "--port", "1", "--psk-id", ID, "--psk", "00"],
            "--tls",
        ),
    ];
    for (args, needle) in cases {
        let mut cmd = m2msec();
        cmd.arg("probe").args(args);
        let (code, out, err) = Proc::spawn(&mut cmd).finish();
        assert_eq!(code, Some(2), "{args:?}: {err:?}");
        assert!(out.is_empty(), "{args:?}: {out:?}");
        assert_eq!(err.len(), 1, "{args:?}: {err:?}");
        assert!(
            err[0].starts_with("m2msec: error: ") && err[0].contains(needle),
            "{args:?}: {err:?}"
        );
    }
}

/// `probe listen --tls` with `openssl s_client` as the independent client.
#[test]
fn probe_listen_with_openssl_s_client() {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join("openssl").is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "`openssl` not found in PATH: install it with `apt-get install -y openssl`"
    );
    let (server, port) = listen("--tls", KEY);
    let client = Proc::spawn(Command::new("openssl").args([
        "s_client",
        "-connect",
        &format!("127.0.0.1:{port}"),
        "-tls1_2",
        "-cipher",
        "PSK-AES128-CBC-SHA256",
        "-servername",
        "mef.example.com",
        "-psk_identity",
        ID,
        "-psk",
        KEY,
        "-keymatexport",
        "EXPORTER-oneM2M-Bootstrap",
        "-keymatexportlen",
        "48",
    ]));
    let (_, out, err) = client.finish();
    let theirs = out
        .iter()
        .find_map(|l| l.trim().strip_prefix("Keying material: "))
        .unwrap_or_else(|| panic!("no keying material from s_client: {out:?} {err:?}"))
        .to_ascii_lowercase();
    let s = json(&server.stdout_line());
    assert_eq!(s["export"], theirs);
    assert_eq!(s["sni"], "mef.example.com");
}

/// A P-256 CA and a server leaf for `in-cse.example.com`, made with the `openssl` CLI.
fn make_pki(dir: &std::path::Path) {
    let run = |args: &[&str]| {
        let o = Command::new("openssl")
            .current_dir(dir)
            .args(args)
            .output()
            .expect("run openssl");
        assert!(
            o.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-days",
        "2",
    ];
    let mut ca = vec![
        "req",
        "-x509",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-subj",
        "/CN=probe test CA",
    ];
    ca.extend(ec);
    ca.extend([
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign",
    ]);
    run(&ca);
    let mut srv = vec![
        "req",
        "-x509",
        "-keyout",
        "srv.key",
        "-out",
        "srv.pem",
        "-subj",
        "/CN=in-cse",
    ];
    srv.extend(ec);
    srv.extend([
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-addext",
        "subjectAltName=DNS:in-cse.example.com",
    ]);
    srv.extend([
        "-addext",
        "keyUsage=critical,digitalSignature",
        "-addext",
        "basicConstraints=CA:FALSE",
    ]);
    run(&srv);
}

/// `probe listen --cert` + `probe connect --ca`: ECDHE-ECDSA over TLS and DTLS, matching
/// exports, the SAN reported; a wrong `--peer-name` fails with exit 1.
#[test]
fn probe_certificates_listen_and_connect() {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join("openssl").is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "`openssl` not found in PATH: install it with `apt-get install -y openssl`"
    );
    let dir = tempfile::tempdir().unwrap();
    make_pki(dir.path());
    let f = |n: &str| dir.path().join(n).display().to_string();
    for (transport, cipher) in [
        ("--tls", "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256"),
        ("--dtls", "TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8"),
    ] {
        let server = Proc::spawn(m2msec().args([
            "probe",
            "listen",
            transport,
            "--port",
            "0",
            "--cert",
            &f("srv.pem"),
            "--key",
            &f("srv.key"),
            "--print-export",
            "--timeout",
            "5",
        ]));
        let line = server.stderr_line_with("listening on ");
        let port = line
            .rsplit_once(':')
            .unwrap()
            .1
            .split_whitespace()
            .next()
            .unwrap()
            .to_string();
        let target = format!("127.0.0.1:{port}");
        let mut cmd = m2msec();
        cmd.args(["probe", "connect", transport, &target, "--ca", &f("ca.pem")]);
        cmd.args([
            "--sni",
            "in-cse.example.com",
            "--print-export",
            "--timeout",
            "5",
        ]);
        let (code, out, err) = Proc::spawn(&mut cmd).finish();
        assert_eq!(code, Some(0), "{out:?} {err:?}");
        let c = json(&out[0]);
        let s = json(&server.stdout_line());
        assert_eq!(c["cipher"], cipher);
        assert_eq!(c["credential"], "certificate");
        assert_eq!(c["subject_alt_names"][0], "in-cse.example.com");
        assert_eq!(c["bound_identity"], "in-cse.example.com");
        assert!(c["psk_identity"].is_null());
        assert_eq!(c["export"], s["export"]);
        assert_eq!(s["sni"], "in-cse.example.com");

        let mut cmd = m2msec();
        cmd.args(["probe", "connect", transport, &target, "--ca", &f("ca.pem")]);
        cmd.args([
            "--sni",
            "in-cse.example.com",
            "--peer-name",
            "mn-cse.example.com",
            "--timeout",
            "3",
        ]);
        let (code, out, _) = Proc::spawn(&mut cmd).finish();
        assert_eq!(code, Some(1), "{out:?}");
        let e = json(&out[0]);
        assert!(
            e["error"].as_str().unwrap().contains("hostname mismatch"),
            "{e}"
        );
    }
}

fn b64url(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// `probe listen --raw-key` + `probe connect --pk-id ni:///sha-256;…` (RFC 7250 / RFC 6920),
/// the identifier computed independently with the `openssl` CLI.
#[test]
fn probe_raw_public_key() {
    let dir = tempfile::tempdir().unwrap();
    make_pki(dir.path());
    let f = |n: &str| dir.path().join(n).display().to_string();
    let run = |args: &[&str]| {
        let o = Command::new("openssl")
            .current_dir(dir.path())
            .args(args)
            .output()
            .unwrap();
        assert!(o.status.success(), "{args:?}");
    };
    run(&[
        "pkey", "-in", "srv.key", "-pubout", "-outform", "DER", "-out", "srv.spki",
    ]);
    run(&[
        "dgst",
        "-sha256",
        "-binary",
        "-out",
        "srv.sha256",
        "srv.spki",
    ]);
    let digest = std::fs::read(dir.path().join("srv.sha256")).unwrap();
    assert_eq!(digest.len(), 32);
    let ni = format!("ni:///sha-256;{}", b64url(&digest));

    let server = Proc::spawn(m2msec().args([
        "probe",
        "listen",
        "--tls",
        "--port",
        "0",
        "--cert",
        &f("srv.pem"),
        "--key",
        &f("srv.key"),
        "--raw-key",
        "--print-export",
        "--timeout",
        "5",
    ]));
    let line = server.stderr_line_with("listening on ");
    let port = line
        .rsplit_once(':')
        .unwrap()
        .1
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let target = format!("127.0.0.1:{port}");
    let (code, out, err) = Proc::spawn(m2msec().args([
        "probe",
        "connect",
        "--tls",
        &target,
        "--pk-id",
        &ni,
        "--print-export",
        "--timeout",
        "5",
    ]))
    .finish();
    assert_eq!(code, Some(0), "{out:?} {err:?}");
    let c = json(&out[0]);
    let s = json(&server.stdout_line());
    assert_eq!(c["credential"], "raw_public_key");
    assert_eq!(c["bound_identity"], format!("30-{ni}"));
    assert_eq!(c["export"], s["export"]);

    // Another identifier: refused, exit 1. A malformed one: exit 2 naming --pk-id.
    let wrong = format!("ni:///sha-256;{}", b64url(&[7u8; 32]));
    let (code, out, _) = Proc::spawn(m2msec().args([
        "probe",
        "connect",
        "--tls",
        &target,
        "--pk-id",
        &wrong,
        "--timeout",
        "5",
    ]))
    .finish();
    assert_eq!(code, Some(1), "{out:?}");
    let (code, _, err) = Proc::spawn(m2msec().args([
        "probe",
        "connect",
        "--tls",
        &target,
        "--pk-id",
        "ni:///md5;AAAA",
    ]))
    .finish();
    assert_eq!(code, Some(2));
    assert!(err[0].contains("--pk-id"), "{err:?}");
}

/// Start `probe listen --tls` with `args`; returns the process and `127.0.0.1:PORT`.
fn listen_with(args: &[&str]) -> (Proc, String) {
    let server = Proc::spawn(
        m2msec()
            .args(["probe", "listen", "--tls", "--port", "0", "--timeout", "5"])
            .args(args),
    );
    let line = server.stderr_line_with("listening on ");
    let port = line
        .rsplit_once(':')
        .unwrap()
        .1
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    (server, format!("127.0.0.1:{port}"))
}

/// `listen --client-pk-id` + `connect --pk-id … --cert/--key` (RFC 7250 client raw key, bound
/// to `30-ni:///…` by the server), and `connect --peer-node-id` against a Node-ID certificate
/// (otherName made by the `openssl` CLI, bound to `34-<Node-ID>`).
#[test]
fn probe_client_raw_key_and_node_id_certificate() {
    let dir = tempfile::tempdir().unwrap();
    make_pki(dir.path());
    let f = |n: &str| dir.path().join(n).display().to_string();
    let run = |args: &[&str]| {
        let o = Command::new("openssl")
            .current_dir(dir.path())
            .args(args)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    let ni_of = |key: &str| {
        run(&[
            "pkey", "-in", key, "-pubout", "-outform", "DER", "-out", "k.spki",
        ]);
        run(&["dgst", "-sha256", "-binary", "-out", "k.sha256", "k.spki"]);
        let digest = std::fs::read(dir.path().join("k.sha256")).unwrap();
        format!("ni:///sha-256;{}", b64url(&digest))
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-days",
        "2",
    ];
    // Client key (self-signed certificate; only its key is used).
    let mut cli = vec!["req", "-x509", "-keyout", "cli.key", "-out", "cli.pem"];
    cli.extend(["-subj", "/CN=client"]);
    cli.extend(ec);
    run(&cli);
    let srv_ni = ni_of("srv.key");
    let cli_ni = ni_of("cli.key");

    let (server, target) = listen_with(&[
        "--cert",
        &f("srv.pem"),
        "--key",
        &f("srv.key"),
        "--raw-key",
        "--client-pk-id",
        &cli_ni,
    ]);
    let (code, out, err) = Proc::spawn(m2msec().args([
        "probe",
        "connect",
        "--tls",
        &target,
        "--pk-id",
        &srv_ni,
        "--cert",
        &f("cli.pem"),
        "--key",
        &f("cli.key"),
        "--timeout",
        "5",
    ]))
    .finish();
    assert_eq!(code, Some(0), "{out:?} {err:?}");
    let s = json(&server.stdout_line());
    assert_eq!(s["credential"], "raw_public_key", "{s}");
    assert_eq!(s["bound_identity"], format!("30-{cli_ni}"));
    // Without our key the server refuses.
    let (code, out, _) = Proc::spawn(m2msec().args([
        "probe",
        "connect",
        "--tls",
        &target,
        "--pk-id",
        &srv_ni,
        "--timeout",
        "5",
    ]))
    .finish();
    assert_eq!(code, Some(1), "{out:?}");
    drop(server);

    // Node-ID certificate: otherName type-id = higher arc, value = the remaining arcs.
    let node_id = "1.2.410.200005.1.7.42.9001";
    let mut node = vec!["req", "-x509", "-keyout", "node.key", "-out", "node.pem"];
    node.extend(["-subj", "/CN=node"]);
    node.extend(ec);
    node.extend([
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-addext",
        "subjectAltName=otherName:1.2.410.200005.1;UTF8:7.42.9001",
        "-addext",
        "keyUsage=critical,digitalSignature",
        "-addext",
        "basicConstraints=CA:FALSE",
    ]);
    run(&node);
    let (_server, target) = listen_with(&["--cert", &f("node.pem"), "--key", &f("node.key")]);
    let (code, out, err) = Proc::spawn(m2msec().args([
        "probe",
        "connect",
        "--tls",
        &target,
        "--ca",
        &f("ca.pem"),
        "--peer-node-id",
        node_id,
        "--timeout",
        "5",
    ]))
    .finish();
    assert_eq!(code, Some(0), "{out:?} {err:?}");
    assert_eq!(json(&out[0])["bound_identity"], format!("34-{node_id}"));
    let (code, out, _) = Proc::spawn(m2msec().args([
        "probe",
        "connect",
        "--tls",
        &target,
        "--ca",
        &f("ca.pem"),
        "--peer-node-id",
        "1.2.410.200005.1.7.42.9002",
        "--timeout",
        "5",
    ]))
    .finish();
    assert_eq!(code, Some(1), "{out:?}");
}
