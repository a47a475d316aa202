//! The enrolment story over real processes (TS-0003 §8.3.2.1, seed 001): `m2msec mef serve`
//! with a provisioned device, `m2msec cse serve` whose `[mef]` section makes it an Enrolment
//! Target, `m2msec enrol` as the device, then `m2msec request --keystore` registering the
//! device's AE at the CSE with psk_identity = KeID: the CSE has never seen that key and
//! retrieves it from the MEF during the handshake. Also `m2msec demo --json`.

mod support;

use serde_json::Value;
use support::*;

const FQDN: &str = "mef.sp.example";
const CSE_ABS: &str = "//sp.example/cse-in";
const KPM: &str = "5f5e5d5c5b5a59585756555453525150";
const CSE_AT_MEF: &str = "a1a2a3a4a5a6a7a8a9aaabacadaeafb0";

fn json_line(s: &str) -> Value {
    let line = s
        .lines()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON in {s:?}"));
    serde_json::from_str(line).unwrap()
}

#[test]
fn device_enrols_then_registers_at_a_cse_that_fetches_its_key_from_the_mef() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_key(&d.join("cse-at-mef.key"), CSE_AT_MEF, 0o600);
    write_key(&d.join("dev1.kpm"), KPM, 0o600);
    std::fs::write(
        d.join("mef.toml"),
        format!(
            "fqdn = \"{FQDN}\"\ndata_dir = \"{}\"\n[tls]\nport = 0\n[coap]\nenabled = true\nport = 0\n\
             [[target]]\nidentity = \"cse-in@{FQDN}\"\nkey_file = \"{}\"\nid = \"{CSE_ABS}\"\n",
            d.join("mef").display(),
            d.join("cse-at-mef.key").display()
        ),
    )
    .unwrap();
    // Provision the device in the MEF's store (the operator step).
    {
        let mut s = m2msec_mef::MefStore::open(&d.join("mef")).unwrap();
        let dev = m2msec_mef::Device {
            kpm_id: format!("dev1@{FQDN}"),
            enrolee_id: "Cdev1".parse().unwrap(),
            targets: vec![CSE_ABS.parse().unwrap()],
            enrolment_secs: 3600,
            created: 0,
            revoked: None,
        };
        let kpm = m2msec_core::secret::Kpm::from_bytes(&hex::decode(KPM).unwrap()).unwrap();
        s.add_device(&dev, &kpm).unwrap();
        let dev2 = m2msec_mef::Device {
            kpm_id: format!("dev2@{FQDN}"),
            enrolee_id: "Cdev2".parse().unwrap(),
            ..dev
        };
        s.add_device(&dev2, &kpm).unwrap();
    }
    let mef = Proc::spawn(
        m2msec()
            .args(["mef", "serve", "--config"])
            .arg(d.join("mef.toml")),
    );
    let line = mef.stderr_line_with("listening on ");
    let port_after = |scheme: &str| -> u16 {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{scheme}://127.0.0.1:")))
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no {scheme} port in {line:?}"))
    };
    let mef_port = port_after("https");
    let mef_coap_port = port_after("coaps");
    std::fs::write(
        d.join("cse.toml"),
        format!(
            "cse_id = \"/cse-in\"\nsp_id = \"sp.example\"\ndata_dir = \"{}\"\n[tls]\nport = 0\n\
             [mef]\nurl = \"https://127.0.0.1:{mef_port}\"\nfqdn = \"{FQDN}\"\n\
             identity = \"cse-in@{FQDN}\"\nkey_file = \"{}\"\ncse_id = \"{CSE_ABS}\"\n",
            d.join("cse").display(),
            d.join("cse-at-mef.key").display()
        ),
    )
    .unwrap();
    let cse = Proc::spawn(
        m2msec()
            .args(["cse", "serve", "--config"])
            .arg(d.join("cse.toml")),
    );
    let cse_port = cse.https_port();

    let ks = d.join("dev1-keystore");
    let (code, out, err) = run(m2msec()
        .args(["enrol", "--mef", &format!("https://127.0.0.1:{mef_port}")])
        .args(["--kpm-id", &format!("dev1@{FQDN}"), "--kpm-file"])
        .arg(d.join("dev1.kpm"))
        .args(["--id", "Cdev1", "--target", CSE_ABS, "--keystore"])
        .arg(&ks));
    assert_eq!(code, Some(0), "{out} {err}");
    let v = json_line(&out);
    let ke_id = v["ke_id"].as_str().unwrap().to_string();
    assert!(ke_id.ends_with(&format!("@{FQDN}")) && ke_id.len() == 32 + 1 + FQDN.len());
    assert_eq!(v["targets"][0]["target_id"], CSE_ABS);
    assert_eq!(v["targets"][0]["psk_identity"], ke_id.as_str());
    assert!(v["ibc_id"].as_str().unwrap().ends_with("|Cdev1"));
    // Never a key value in the output; the keystore is 0600 and sealed.
    assert!(!out.contains(KPM) && !err.contains(KPM));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(ks.join("keystore.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // The device registers its AE at the CSE with its KeID: the CSE fetches the key.
    let (code, out, err) = run(m2msec()
        .args([
            "request",
            "--url",
            &format!("https://127.0.0.1:{cse_port}/cb"),
        ])
        .args(["--op", "create", "--from", "Cdev1", "--ty", "2"])
        .args([
            "--body",
            r#"{"m2m:ae":{"rn":"dev1","api":"Ndev1","rr":false,"srv":["3"]}}"#,
        ])
        .arg("--keystore")
        .arg(&ks));
    assert_eq!(code, Some(0), "{out} {err}");
    let v = json_line(&out);
    assert_eq!(v["rsc"], 2001, "{v}");
    assert_eq!(v["pc"]["m2m:ae"]["aei"], "Cdev1");
    // The association is bound to the Enrolee-ID the MEF returned: another AE-ID is refused.
    let (code, out, _) = run(m2msec()
        .args([
            "request",
            "--url",
            &format!("https://127.0.0.1:{cse_port}/cb"),
        ])
        .args(["--op", "create", "--from", "Cmallory", "--ty", "2"])
        .args([
            "--body",
            r#"{"m2m:ae":{"rn":"m","api":"Nm","rr":false,"srv":["3"]}}"#,
        ])
        .arg("--keystore")
        .arg(&ks));
    assert_eq!(code, Some(1));
    assert_eq!(json_line(&out)["rsc"], 4106);

    // The second device enrols over CoAP on DTLS (TS-0008) and registers the same way.
    let ks2 = d.join("dev2-keystore");
    let (code, out, err) = run(m2msec()
        .args([
            "enrol",
            "--mef",
            &format!("coaps://127.0.0.1:{mef_coap_port}"),
        ])
        .args(["--kpm-id", &format!("dev2@{FQDN}"), "--kpm-file"])
        .arg(d.join("dev1.kpm"))
        .args(["--id", "Cdev2", "--target", CSE_ABS, "--keystore"])
        .arg(&ks2));
    assert_eq!(code, Some(0), "{out} {err}");
    assert!(json_line(&out)["ibc_id"]
        .as_str()
        .unwrap()
        .ends_with("|Cdev2"));
    let (code, out, err) = run(m2msec()
        .args([
            "request",
            "--url",
            &format!("https://127.0.0.1:{cse_port}/cb"),
        ])
        .args(["--op", "create", "--from", "Cdev2", "--ty", "2"])
        .args([
            "--body",
            r#"{"m2m:ae":{"rn":"dev2","api":"Ndev2","rr":false,"srv":["3"]}}"#,
        ])
        .arg("--keystore")
        .arg(&ks2));
    assert_eq!(code, Some(0), "{out} {err}");
    assert_eq!(json_line(&out)["pc"]["m2m:ae"]["aei"], "Cdev2");

    // Without the MEF's answer the CSE has no key for an unknown KeID of that MEF.
    let (code, _, err) = run(m2msec()
        .args([
            "request",
            "--url",
            &format!("https://127.0.0.1:{cse_port}/cb"),
        ])
        .args(["--op", "retrieve", "--from", "Cdev1"])
        .args([
            "--psk-id",
            &format!("{}@{FQDN}", "ab".repeat(16)),
            "--psk",
            KPM,
        ]));
    assert_ne!(code, Some(0), "{err}");
    drop(cse);
    drop(mef);
}

#[test]
fn demo_runs_every_step_on_loopback() {
    let (code, out, err) = run(m2msec().args(["demo", "--devices", "4", "--json"]));
    assert_eq!(code, Some(0), "{out} {err}");
    let v = json_line(&out);
    assert_eq!(v["ok"], true);
    let devices = v["devices"].as_array().unwrap();
    assert_eq!(devices.len(), 4);
    for d in devices {
        assert_eq!(d["registered"], true, "{d}");
        assert!(d["ke_id"].as_str().unwrap().ends_with("@mef.demo.m2msec"));
        assert!(d["ibc_id"]
            .as_str()
            .unwrap()
            .starts_with("mef.demo.m2msec|"));
        assert!(d["ae_id"].as_str().unwrap().starts_with("Cdemo"));
    }
    let steps = v["steps"].as_array().unwrap();
    for s in steps {
        assert_eq!(s["failed"], 0, "{s}");
        assert!(s["step"].as_str().is_some_and(|n| !n.is_empty()), "{s}");
    }
    // Issue 12 item 8: one device in three (at least one) registers at the MN-CSE and its write
    // through it arrives at the IN-CSE.
    let mn: Vec<_> = devices.iter().filter(|d| d["cse"] == "/cse-mn").collect();
    assert_eq!(mn.len(), 1, "{v}");
    assert_eq!(devices[3]["cse"], "/cse-mn", "{v}");
    let fwd = steps.iter().find(|s| s["id"] == "forward_via_mn").unwrap();
    assert_eq!(fwd["ok"], 1, "{fwd}");
    // Issue 10 item 10: every step has a stable snake_case id beside its human name.
    let ids: Vec<&str> = steps.iter().filter_map(|s| s["id"].as_str()).collect();
    assert_eq!(
        ids,
        [
            "start",
            "provision",
            "enrol",
            "register",
            "write",
            "forward_via_mn",
            "impersonation_refused",
            "ibc_verify"
        ],
        "{v}"
    );
    let (code, _, err) = run(m2msec().args(["demo", "--devices", "1"]));
    assert_eq!(code, Some(2));
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn a_mef_with_a_separate_pkg_service() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_key(&d.join("mef-at-pkg.key"), CSE_AT_MEF, 0o600);
    write_key(&d.join("dev.kpm"), KPM, 0o600);
    std::fs::write(
        d.join("pkg.toml"),
        format!(
            "fqdn = \"pkg.sp.example\"\ndata_dir = \"{}\"\nport = 0\n\
             [[client]]\nidentity = \"mef@pkg.sp.example\"\nkey_file = \"{}\"\n",
            d.join("pkg").display(),
            d.join("mef-at-pkg.key").display()
        ),
    )
    .unwrap();
    let pkg = Proc::spawn(
        m2msec()
            .args(["pkg", "serve", "--config"])
            .arg(d.join("pkg.toml")),
    );
    let pkg_port = pkg.https_port();
    let mef_toml = |port: u16| {
        format!(
            "fqdn = \"{FQDN}\"\ndata_dir = \"{}\"\n[tls]\nport = 0\n\
             [pkg]\nurl = \"https://127.0.0.1:{port}\"\nfqdn = \"pkg.sp.example\"\n\
             identity = \"mef@pkg.sp.example\"\nkey_file = \"{}\"\n",
            d.join("mef").display(),
            d.join("mef-at-pkg.key").display()
        )
    };
    {
        let mut s = m2msec_mef::MefStore::open(&d.join("mef")).unwrap();
        let dev = m2msec_mef::Device {
            kpm_id: format!("dev@{FQDN}"),
            enrolee_id: "Cdev".parse().unwrap(),
            targets: vec![],
            enrolment_secs: 600,
            created: 0,
            revoked: None,
        };
        let kpm = m2msec_core::secret::Kpm::from_bytes(&hex::decode(KPM).unwrap()).unwrap();
        s.add_device(&dev, &kpm).unwrap();
    }
    // An unreachable PKG: the MEF refuses to start, one line, exit 2.
    std::fs::write(d.join("mef-bad.toml"), mef_toml(1)).unwrap();
    let (code, _, err) = run(m2msec()
        .args(["mef", "serve", "--config"])
        .arg(d.join("mef-bad.toml")));
    assert_eq!(code, Some(2), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("[pkg]"), "{err}");

    std::fs::write(d.join("mef.toml"), mef_toml(pkg_port)).unwrap();
    let mef = Proc::spawn(
        m2msec()
            .args(["mef", "serve", "--config"])
            .arg(d.join("mef.toml")),
    );
    let mef_port = mef.https_port();
    let (code, out, err) = run(m2msec()
        .args(["enrol", "--mef", &format!("https://127.0.0.1:{mef_port}")])
        .args(["--kpm-id", &format!("dev@{FQDN}"), "--kpm-file"])
        .arg(d.join("dev.kpm"))
        .args(["--id", "Cdev", "--keystore"])
        .arg(d.join("ks")));
    assert_eq!(code, Some(0), "{out} {err}");
    assert!(json_line(&out)["ibc_id"]
        .as_str()
        .unwrap()
        .ends_with("|Cdev"));
    // The extraction happened at the PKG service.
    let line = pkg.stderr.try_iter().collect::<Vec<_>>().join("\n");
    drop(line);
}

#[test]
fn certificate_based_enrolment_through_the_binaries() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    make_ca(d, "m2m bootstrap CA");
    issue(d, "mef", &format!("DNS:{FQDN}"));
    issue(d, "dev", "URI:urn:dev:ops:meter-7");
    std::fs::write(
        d.join("mef.toml"),
        format!(
            "fqdn = \"{FQDN}\"\ndata_dir = \"{}\"\n[tls]\nport = 0\ncertificate = \"{}\"\n\
             private_key = \"{}\"\ntrust_anchors = \"{}\"\n",
            d.join("data").display(),
            d.join("mef.pem").display(),
            d.join("mef.key").display(),
            d.join("ca.pem").display()
        ),
    )
    .unwrap();
    let (code, out, err) = run(m2msec()
        .args(["mef", "device", "add", "--config"])
        .arg(d.join("mef.toml"))
        .args([
            "--cert-identity",
            "urn:dev:ops:meter-7",
            "--enrolee-id",
            "Cmeter7",
        ])
        .args(["--target", CSE_ABS]));
    assert_eq!(code, Some(0), "{out} {err}");
    let mef = Proc::spawn(
        m2msec()
            .args(["mef", "serve", "--config"])
            .arg(d.join("mef.toml")),
    );
    let port = mef.https_port();
    let enrol = |cert: &str| {
        run(m2msec()
            .args(["enrol", "--mef", &format!("https://127.0.0.1:{port}")])
            .args(["--cert"])
            .arg(d.join(format!("{cert}.pem")))
            .arg("--key")
            .arg(d.join(format!("{cert}.key")))
            .arg("--ca")
            .arg(d.join("ca.pem"))
            .args(["--mef-fqdn", FQDN, "--id", "Cmeter7", "--keystore"])
            .arg(d.join(format!("{cert}-ks"))))
    };
    let (code, out, err) = enrol("dev");
    assert_eq!(code, Some(0), "{out} {err}");
    let v = json_line(&out);
    assert!(v["ke_id"].as_str().unwrap().ends_with(&format!("@{FQDN}")));
    assert!(v["ibc_id"].as_str().unwrap().ends_with("|Cmeter7"));
    assert_eq!(v["targets"][0]["target_id"], CSE_ABS);
    // A certificate from the same CA for a device the MEF was not provisioned for: refused.
    issue(d, "other", "URI:urn:dev:ops:stranger");
    let (code, _, err) = enrol("other");
    assert_eq!(code, Some(1), "{err}");
}

/// Issue 10 item 8: `mef serve` answers bootstrap handshakes from an in-memory PSK table that a
/// watcher keeps current (200 ms), so `m2msec mef device add` and `revoke`, run as other
/// processes while it serves, take effect without a restart: an unknown device is refused, is
/// enrolled soon after `add`, and refused again soon after `revoke`.
#[test]
fn devices_added_and_revoked_while_mef_serve_runs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_key(&d.join("dev1.kpm"), KPM, 0o600);
    std::fs::write(
        d.join("mef.toml"),
        format!(
            "fqdn = \"{FQDN}\"\ndata_dir = \"{}\"\n[tls]\nport = 0\n",
            d.join("mef").display()
        ),
    )
    .unwrap();
    let device = |args: &[&str]| {
        run(m2msec()
            .args(["mef", "device"])
            .arg(args[0])
            .arg("--config")
            .arg(d.join("mef.toml"))
            .args(&args[1..]))
    };
    let mef = Proc::spawn(
        m2msec()
            .args(["mef", "serve", "--config"])
            .arg(d.join("mef.toml")),
    );
    let port = mef.https_port();
    let kpm_id = format!("dev1@{FQDN}");
    let attempts = std::cell::Cell::new(0u32);
    let enrol = || {
        // A fresh keystore each time, so a refusal is the MEF's.
        attempts.set(attempts.get() + 1);
        run(m2msec()
            .args(["enrol", "--mef", &format!("https://127.0.0.1:{port}")])
            .args(["--kpm-id", &kpm_id, "--kpm-file"])
            .arg(d.join("dev1.kpm"))
            .args(["--id", "Cdev1", "--target", CSE_ABS, "--keystore"])
            .arg(d.join(format!("ks{}", attempts.get()))))
        .0
    };
    // Bounded: at most 40 attempts, about 100 ms apart (the watch interval is 200 ms).
    let until = |want: Option<i32>| {
        (0..40).any(|_| {
            let ok = enrol() == want;
            if !ok {
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            ok
        })
    };
    assert_eq!(enrol(), Some(1), "an unprovisioned device enrolled");
    let (code, out, err) = device(&[
        "add",
        "--kpm-id",
        &kpm_id,
        "--kpm-file",
        d.join("dev1.kpm").to_str().unwrap(),
        "--enrolee-id",
        "Cdev1",
        "--target",
        CSE_ABS,
    ]);
    assert_eq!(code, Some(0), "{out} {err}");
    assert!(
        until(Some(0)),
        "device added while serving was not enrolled"
    );
    let (code, out, err) = device(&["revoke", "--kpm-id", &kpm_id]);
    assert_eq!(code, Some(0), "{out} {err}");
    assert!(
        until(Some(1)),
        "device revoked while serving still enrolled"
    );
}
