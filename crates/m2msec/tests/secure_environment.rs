//! The MEF's keys in a SoftHSM2 token over real processes (TS-0003 §6.3.1, issue 15): an
//! installation provisioned with the file KEK is moved into the token with `m2msec mef keys
//! migrate-to-token` (once: a second run is refused), then `m2msec mef serve` states its secure
//! environment and protection level, a device enrols (its Kpm opened from the token for the
//! TLS-PSK bootstrap, its Ke sealed in the token; the device keystore sealed in its own token),
//! the device list and a revocation work, and after a restart the device enrols again. No KEK file is left. Needs SoftHSM2
//! (scripts/setup.sh); fails, never skips, without it.

mod support;

use std::path::Path;

use support::*;

const FQDN: &str = "mef.sp.example";
const TARGET: &str = "//sp.example/cse-in";

fn kpm_hex(i: usize) -> String {
    format!("{:02x}", i + 0x31).repeat(32)
}

/// `m2msec enrol` of device `i`, its keystore sealed in the token of `device.toml`.
fn enrol(d: &Path, port: u16, i: usize) -> (Option<i32>, String, String) {
    run(m2msec()
        .args(["enrol", "--mef", &format!("https://127.0.0.1:{port}")])
        .args(["--kpm-id", &format!("dev{i}@{FQDN}"), "--kpm-file"])
        .arg(d.join(format!("dev{i}.kpm")))
        .args([
            "--id",
            &format!("Cdev{i}"),
            "--target",
            TARGET,
            "--keystore",
        ])
        .arg(d.join(format!("dev{i}-ks")))
        .arg("--secure-environment")
        .arg(d.join("device.toml")))
}

fn section(label: &str, pin_file: &Path) -> String {
    format!(
        "[secure_environment]\npkcs11_module = \"{}\"\ntoken_label = \"{label}\"\npin_file = \"{}\"\n",
        m2msec_keystore::testing::MODULE,
        pin_file.display()
    )
}

fn mef(d: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    run(m2msec()
        .arg("mef")
        .args(args)
        .arg("--config")
        .arg(d.join("mef.toml")))
}

#[test]
fn mef_keys_migrate_into_a_token_and_serve_from_it() {
    let se = m2msec_keystore::testing::new_token("mef-cli");
    let dev_se = m2msec_keystore::testing::new_token("device-cli");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("device.toml"),
        section("device-cli", dev_se.pin_file.as_ref().unwrap()),
    )
    .unwrap();
    let data = d.join("mef");
    let base = format!(
        "fqdn = \"{FQDN}\"\ndata_dir = \"{}\"\n[tls]\nport = 0\n",
        data.display()
    );
    std::fs::write(d.join("mef.toml"), &base).unwrap();
    // Provisioned on the file backend.
    for i in 0..2 {
        write_key(&d.join(format!("dev{i}.kpm")), &kpm_hex(i), 0o600);
        let (code, out, err) = mef(
            d,
            &[
                "device",
                "add",
                "--kpm-id",
                &format!("dev{i}@{FQDN}"),
                "--kpm-file",
                d.join(format!("dev{i}.kpm")).to_str().unwrap(),
                "--enrolee-id",
                &format!("Cdev{i}"),
                "--target",
                TARGET,
            ],
        );
        assert_eq!(code, Some(0), "{out} {err}");
    }
    assert!(data.join("kek").exists());

    // The token configured: the store refuses to run beside the old KEK file, and says how on.
    let mef_section = section("mef-cli", se.pin_file.as_ref().unwrap());
    std::fs::write(d.join("mef.toml"), format!("{base}{mef_section}")).unwrap();
    let (code, _, err) = mef(d, &["device", "list"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("migrate-to-token"), "{err}");

    // Migration: once.
    let (code, out, err) = mef(d, &["keys", "migrate-to-token"]);
    assert_eq!(code, Some(0), "{out} {err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["records_resealed"], 2, "{v}");
    assert_eq!(v["secure_environment"]["kind"], "pkcs11");
    assert_eq!(v["secure_environment"]["level"], 1);
    assert!(!data.join("kek").exists(), "the KEK file is gone");
    let (code, _, err) = mef(d, &["keys", "migrate-to-token"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("already migrated"), "{err}");

    for round in 0..2 {
        let server = Proc::spawn(
            m2msec()
                .args(["mef", "serve", "--config"])
                .arg(d.join("mef.toml")),
        );
        let line = server.stderr_line_with("secure environment");
        assert!(
            line.contains("pkcs11 token \"mef-cli\"") && line.contains("protection level 1"),
            "{line}"
        );
        let port = server.https_port();
        let (code, out, err) = enrol(d, port, 0);
        assert_eq!(code, Some(0), "round {round}: {out} {err}");
        // The device keystore: no KEK file, opens only with its token.
        assert!(d.join("dev0-ks/keystore.json").exists());
        assert!(!d.join("dev0-ks/kek").exists());
        let request = |with_token: bool| {
            let mut c = m2msec();
            c.args([
                "request",
                "--url",
                "https://127.0.0.1:1/cb",
                "--op",
                "retrieve",
            ])
            .args(["--timeout", "2"])
            .args(["--from", "Cdev0", "--keystore"])
            .arg(d.join("dev0-ks"));
            if with_token {
                c.arg("--secure-environment").arg(d.join("device.toml"));
            }
            run(&mut c)
        };
        let (code, _, err) = request(false);
        assert_eq!(code, Some(2), "{err}");
        assert!(err.contains("--keystore"), "{err}");
        let (code, _, err) = request(true);
        assert!(
            !err.contains("--keystore"),
            "the keystore opened: {code:?} {err}"
        );
        if round == 0 {
            let (code, out, err) = mef(d, &["device", "list"]);
            assert_eq!(code, Some(0), "{err}");
            let last = out.lines().last().unwrap();
            assert!(
                last.starts_with("secure environment: pkcs11") && last.contains("level 1"),
                "{out}"
            );
            let (code, _, err) = mef(
                d,
                &["device", "revoke", "--kpm-id", &format!("dev1@{FQDN}")],
            );
            assert_eq!(code, Some(0), "{err}");
        } else {
            // The revoked device stays refused after the restart.
            let (code, _, _) = enrol(d, port, 1);
            assert_ne!(code, Some(0));
        }
        drop(server);
    }
    assert!(!data.join("kek").exists());
}
