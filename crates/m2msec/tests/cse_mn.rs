//! An MN-CSE between an AE and the IN-CSE, with real processes and loopback sockets (issue 12):
//! `m2msec cse serve` twice (IN-CSE, then an MN-CSE whose `[registrar]` is the IN-CSE), the MN
//! registering over HTTP/TLS-PSK, an AE registered at the MN-CSE writing a contentInstance into
//! a container of the IN-CSE through it (`m2msec request`), the IN-CSE going down (the forward
//! fails with TARGET_NOT_REACHABLE) and coming back on the same port (the MN reconnects), and
//! the MN restarting (re-registration); and the IN-CSE's administrator reading a resource of
//! the MN-CSE (forwarded down the tree to the MN's pointOfAccess). Every wait is bounded.

mod support;

use support::*;

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

const MN_ID: &str = "mn@mef.sp.example";
const MN_KEY: &str = "5a5b5c5d5e5f505152535455565758595a5b5c5d5e5f50515253545556575859";
const AE_ID: &str = "dev1@mef.sp.example";
const AE_KEY: &str = "000102030405060708090a0b0c0d0e0f";
const IN_ID: &str = "in@mef.sp.example";
const IN_KEY: &str = "1112131415161718191a1b1c1d1e1f101112131415161718191a1b1c1d1e1f10";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn write_configs(d: &Path, in_port: u16, mn_port: u16) -> (PathBuf, PathBuf) {
    write_key(&d.join("mn.key"), MN_KEY, 0o600);
    write_key(&d.join("in.key"), IN_KEY, 0o600);
    write_key(&d.join("ae.key"), AE_KEY, 0o600);
    let in_cfg = format!(
        r#"cse_id = "/cse-in"
sp_id = "sp.example"
data_dir = "{data}"

[tls]
bind = "127.0.0.1"
port = {in_port}

[cse_base]
admin = "Cadmin"
admin_plaintext = true

[http_plain]
enabled = true
bind = "127.0.0.1"
port = 0

[[psk]]
identity = "{MN_ID}"
key_file = "{key}"
ida = "/cse-mn"
registree = "cse"

[[registree]]
cse_id = "/cse-mn"
psk_identity = "{IN_ID}"
key_file = "{in_key}"
"#,
        data = d.join("in-data").display(),
        key = d.join("mn.key").display(),
        in_key = d.join("in.key").display(),
    );
    let mn_cfg = format!(
        r#"cse_id = "/cse-mn"
sp_id = "sp.example"
cse_type = "MN"
poa = ["https://127.0.0.1:{mn_port}"]
data_dir = "{data}"

[tls]
bind = "127.0.0.1"
port = {mn_port}

[[psk]]
identity = "{AE_ID}"
key_file = "{ae_key}"

[[psk]]
identity = "{IN_ID}"
key_file = "{in_key}"
ida = "/cse-in"
registree = "cse"

[registrar]
cse_id = "/cse-in"
address = "127.0.0.1:{in_port}"
psk_identity = "{MN_ID}"
key_file = "{mn_key}"
request_timeout_secs = 5
backoff_max_secs = 1
"#,
        data = d.join("mn-data").display(),
        ae_key = d.join("ae.key").display(),
        mn_key = d.join("mn.key").display(),
        in_key = d.join("in.key").display(),
    );
    std::fs::write(d.join("in.toml"), in_cfg).unwrap();
    std::fs::write(d.join("mn.toml"), mn_cfg).unwrap();
    (d.join("in.toml"), d.join("mn.toml"))
}

fn serve(cfg: &Path) -> Proc {
    Proc::spawn(m2msec().args(["cse", "serve", "--config"]).arg(cfg))
}

/// The port after `prefix` in the "listening on" line.
fn port_in(line: &str, prefix: &str) -> u16 {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(prefix))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no {prefix} in {line:?}"))
}

/// `m2msec request`; `psk` None → plaintext (http://). Returns the JSON line.
fn request(
    url: &str,
    psk: Option<(&str, &str)>,
    op: &str,
    from: Option<&str>,
    ty: Option<u32>,
    body: Option<Value>,
) -> Value {
    let mut cmd = m2msec();
    cmd.args(["request", "--url", url, "--op", op, "--timeout", "15"]);
    if let Some((id, key)) = psk {
        cmd.args(["--psk-id", id, "--psk", key]);
    }
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
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
}

#[test]
fn ae_at_the_mn_writes_to_the_in_through_it_and_the_mn_survives_in_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (in_port, mn_port) = (free_port(), free_port());
    let (in_cfg, mn_cfg) = write_configs(d, in_port, mn_port);

    // The MN-CSE starts first: it keeps trying (backoff capped at 1 s here) and registers
    // once the IN-CSE is up.
    let mn = serve(&mn_cfg);
    assert_eq!(mn.https_port(), mn_port);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let inc = serve(&in_cfg);
    let line = inc.stderr_line_with("listening on ");
    let plain = port_in(&line, "http://127.0.0.1:");
    mn.stderr_line_with("registered with /cse-in");

    // `cse remote list`: the MN-CSE at the IN-CSE, the IN-CSE (registrar) at the MN-CSE, each
    // with the Credential-ID bound to its CSE-ID.
    let remote = |cfg: &Path| {
        let (code, out, err) = Proc::spawn(
            m2msec()
                .args(["cse", "remote", "list", "--json", "--config"])
                .arg(cfg),
        )
        .finish();
        assert_eq!(code, Some(0), "{err:?}");
        serde_json::from_str::<Value>(&out[0]).unwrap()
    };
    let v = remote(&in_cfg);
    assert_eq!(v.as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v[0]["cse_id"], "/cse-mn");
    assert_eq!(v[0]["role"], "registree");
    assert_eq!(v[0]["poa"], json!([format!("https://127.0.0.1:{mn_port}")]));
    assert_eq!(
        v[0]["credentials"],
        json!([{"credential_id": format!("12-{MN_ID}"), "source": "config", "state": "active"}])
    );
    let v = remote(&mn_cfg);
    assert_eq!(v[0]["cse_id"], "/cse-in", "{v}");
    assert_eq!(v[0]["role"], "registrar");
    assert_eq!(v[0]["cb"], "/cse-in/cb");
    assert_eq!(
        v[0]["credentials"][0]["credential_id"],
        format!("12-{IN_ID}")
    );

    // The administrator of the IN-CSE opens a container to the MN-CSE's AEs (acaf unset: a
    // forwarded request is never authenticated end to end, TS-0003 §7.1.2).
    let admin = |op: &str, path: &str, ty: Option<u32>, body: Option<Value>| {
        request(
            &format!("http://127.0.0.1:{plain}{path}"),
            None,
            op,
            Some("Cadmin"),
            ty,
            body,
        )
    };
    let v = admin(
        "create",
        "/cb",
        Some(1),
        Some(json!({"m2m:acp": {"rn": "acpMn",
            "pv": {"acr": [{"acor": ["/cse-mn/C*"], "acop": 63},
                           {"acor": ["Cadmin"], "acop": 63}]},
            "pvs": {"acr": [{"acor": ["Cadmin"], "acop": 63}]}}})),
    );
    assert_eq!(v["rsc"], 2001, "{v}");
    let acp = v["pc"]["m2m:acp"]["ri"].as_str().unwrap().to_string();
    let v = admin(
        "create",
        "/cb",
        Some(3),
        Some(json!({"m2m:cnt": {"rn": "shared", "acpi": [acp]}})),
    );
    assert_eq!(v["rsc"], 2001, "{v}");
    // Its <remoteCSE> for the MN-CSE exists.
    let v = admin("retrieve", "/cb/cse-mn", None, None);
    assert_eq!(v["rsc"], 4103, "the MN's own <remoteCSE> is the MN's: {v}");

    // The AE registers at the MN-CSE and writes into the IN-CSE's container through it.
    let ae = Some((AE_ID, AE_KEY));
    let v = request(
        &format!("https://127.0.0.1:{mn_port}/cb"),
        ae,
        "create",
        Some("C"),
        Some(2),
        Some(json!({"m2m:ae": {"api": "Nsensor", "rr": false, "srv": ["3"]}})),
    );
    assert_eq!(v["rsc"], 2001, "{v}");
    let aei = v["pc"]["m2m:ae"]["aei"].as_str().unwrap().to_string();
    let write = |con: &str| {
        request(
            &format!("https://127.0.0.1:{mn_port}/~/cse-in/cb/shared"),
            ae,
            "create",
            Some(&aei),
            Some(4),
            Some(json!({"m2m:cin": {"con": con}})),
        )
    };
    let v = write("21.5");
    assert_eq!(v["rsc"], 2001, "{v}");
    let v = admin("retrieve", "/cb/shared/la", None, None);
    assert_eq!(v["rsc"], 2000, "{v}");
    assert_eq!(v["pc"]["m2m:cin"]["con"], "21.5");
    // The AE reads it back through the MN-CSE.
    let v = request(
        &format!("https://127.0.0.1:{mn_port}/~/cse-in/cb/shared/la"),
        ae,
        "retrieve",
        Some(&aei),
        None,
        None,
    );
    assert_eq!(v["rsc"], 2000, "{v}");
    assert_eq!(v["pc"]["m2m:cin"]["con"], "21.5");

    // Down the tree: the AE keeps a container at the MN-CSE, readable by the IN-CSE's
    // administrator; the IN-CSE forwards to the MN-CSE's pointOfAccess over its own credential
    // there (bound to /cse-in), From made SP-relative (/cse-in/Cadmin).
    let at_mn = |path: &str, ty: u32, body: Value| {
        request(
            &format!("https://127.0.0.1:{mn_port}/cb/{aei}{path}"),
            ae,
            "create",
            Some(&aei),
            Some(ty),
            Some(body),
        )
    };
    let v = at_mn(
        "",
        1,
        json!({"m2m:acp": {"rn": "acpIn",
            "pv": {"acr": [{"acor": ["/cse-in/Cadmin"], "acop": 2},
                           {"acor": [aei.as_str()], "acop": 63}]},
            "pvs": {"acr": [{"acor": [aei.as_str()], "acop": 63}]}}}),
    );
    assert_eq!(v["rsc"], 2001, "{v}");
    let acp_mn = v["pc"]["m2m:acp"]["ri"].as_str().unwrap().to_string();
    let v = at_mn("", 3, json!({"m2m:cnt": {"rn": "local", "acpi": [acp_mn]}}));
    assert_eq!(v["rsc"], 2001, "{v}");
    let v = at_mn("/local", 4, json!({"m2m:cin": {"con": "on"}}));
    assert_eq!(v["rsc"], 2001, "{v}");
    let v = admin(
        "retrieve",
        &format!("/~/cse-mn/cb/{aei}/local/la"),
        None,
        None,
    );
    assert_eq!(v["rsc"], 2000, "{v}");
    assert_eq!(v["pc"]["m2m:cin"]["con"], "on");
    // ...for RETRIEVE only: the MN-CSE's policy refuses the rest (4103 from the MN-CSE).
    let v = admin(
        "create",
        &format!("/~/cse-mn/cb/{aei}/local"),
        Some(4),
        Some(json!({"m2m:cin": {"con": "off"}})),
    );
    assert_eq!(v["rsc"], 4103, "{v}");
    // A CSE registered nowhere below the IN-CSE: NOT_FOUND.
    let v = admin("retrieve", "/~/cse-nowhere/cb", None, None);
    assert_eq!(v["rsc"], 4004, "{v}");

    // Bad input on the CSE-to-CSE link: whoever holds the MN-CSE's credential speaks only for
    // the MN-CSE and its own AEs (TS-0004 §7.3.2.1), cannot register an AE, and cannot send a
    // request back down to the MN-CSE it came from (a loop).
    let mn_link = Some((MN_ID, MN_KEY));
    let at_in = |op: &str, path: &str, from: &str, ty: Option<u32>, body: Option<Value>| {
        request(
            &format!("https://127.0.0.1:{in_port}{path}"),
            mn_link,
            op,
            Some(from),
            ty,
            body,
        )
    };
    for from in ["/cse-in", "/cse-in/Cadmin", "Cadmin"] {
        let v = at_in(
            "create",
            "/cb/shared",
            from,
            Some(4),
            Some(json!({"m2m:cin": {"con": "forged"}})),
        );
        assert_eq!(v["rsc"], 4106, "From={from}: {v}");
    }
    // A CSE unknown to the IN-CSE may be below the MN-CSE: verification passes, and the
    // container's policy (which does not name it) refuses.
    let v = at_in(
        "create",
        "/cb/shared",
        "/cse-below",
        Some(4),
        Some(json!({"m2m:cin": {"con": "forged"}})),
    );
    assert_eq!(v["rsc"], 4103, "{v}");
    let v = at_in(
        "create",
        "/cb",
        "/cse-mn",
        Some(2),
        Some(json!({"m2m:ae": {"api": "Nx", "rr": false, "srv": ["3"]}})),
    );
    assert_eq!(v["rsc"], 4005, "{v}");
    let v = at_in(
        "retrieve",
        &format!("/~/cse-mn/cb/{aei}"),
        "/cse-mn",
        None,
        None,
    );
    assert_eq!(v["rsc"], 5103, "{v}");
    let v = admin("retrieve", "/cb/shared", None, None);
    assert_eq!(
        v["pc"]["m2m:cnt"]["cni"], 1,
        "nothing forged was stored: {v}"
    );

    // The IN-CSE goes down: the forward fails, reported to the originator.
    drop(inc);
    let v = write("22.0");
    assert_eq!(v["rsc"], 5103, "{v}");
    // It comes back on the same port: the MN-CSE reconnects; the failed write was not
    // executed later behind the originator's back.
    let inc = serve(&in_cfg);
    let plain = port_in(&inc.stderr_line_with("listening on "), "http://127.0.0.1:");
    let v = write("22.5");
    assert_eq!(v["rsc"], 2001, "{v}");
    let v = request(
        &format!("http://127.0.0.1:{plain}/cb/shared"),
        None,
        "retrieve",
        Some("Cadmin"),
        None,
        None,
    );
    assert_eq!(v["pc"]["m2m:cnt"]["cni"], 2, "21.5 and 22.5 only: {v}");

    // The MN-CSE restarts: it registers again (its <remoteCSE> is still at the IN-CSE: UPDATE).
    drop(mn);
    let mn = serve(&mn_cfg);
    let mn_port2 = mn.https_port();
    mn.stderr_line_with("registered with /cse-in");
    assert_eq!(mn_port2, mn_port);
    let v = request(
        &format!("https://127.0.0.1:{mn_port2}/~/cse-in/cb/shared/la"),
        ae,
        "retrieve",
        Some(&aei),
        None,
        None,
    );
    assert_eq!(v["rsc"], 2000, "{v}");
    assert_eq!(v["pc"]["m2m:cin"]["con"], "22.5");
}
