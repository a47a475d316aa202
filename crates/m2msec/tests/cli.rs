//! The `m2msec` command-line contract (issue: stable CLI): outputs, BRIEF §2.10 values through the
//! binary, RFC 6507 through `ibc verify`, and bad input (exit 2, one line naming the argument).

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output};

fn m2msec(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_m2msec"))
        .args(args)
        .output()
        .expect("run m2msec")
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn json(o: &Output) -> serde_json::Value {
    assert!(
        o.status.success(),
        "status {:?} stderr {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    let s = stdout(o);
    assert_eq!(s.lines().count(), 1, "one JSON line: {s}");
    serde_json::from_str(&s).unwrap()
}

/// The keys appear in the documented order in the raw output line.
fn assert_key_order(o: &Output, keys: &[&str]) {
    let s = stdout(o);
    let pos: Vec<usize> = keys
        .iter()
        .map(|k| {
            s.find(&format!("\"{k}\":"))
                .unwrap_or_else(|| panic!("{k} in {s}"))
        })
        .collect();
    assert!(
        pos.windows(2).all(|w| w[0] < w[1]),
        "key order {keys:?} in {s}"
    );
}

/// Exit status 2, nothing on stdout, exactly one line on stderr that mentions `needle`.
fn assert_bad(args: &[&str], needle: &str) {
    let o = m2msec(args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{args:?}: stderr {err}");
    assert!(o.stdout.is_empty(), "{args:?}: stdout {:?}", stdout(&o));
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "{args:?}: one line, got {err:?}"
    );
    assert!(err.starts_with("m2msec: error: "), "{args:?}: {err}");
    assert!(
        err.contains(needle),
        "{args:?}: {err:?} should name {needle}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

const EXPORT: &str = "30D3436449D73BAADCD265A262555B29F9BBB3FAE2B9F42BB198587E69B37779195BA77498263D08BFC2EF41BDB9D216";
const KE: &str = "f9bbb3fae2b9f42bb198587e69b37779195ba77498263d08bfc2ef41bdb9d216";

#[test]
fn derive_ke_matches_brief() {
    let v = json(&m2msec(&[
        "derive",
        "ke",
        "--export",
        EXPORT,
        "--mef-fqdn",
        "mef.example.com",
    ]));
    assert_eq!(v["ke"], KE);
    assert_eq!(v["relative_ke_id"], "30d3436449d73baadcd265a262555b29");
    assert_eq!(
        v["ke_id"],
        "30d3436449d73baadcd265a262555b29@mef.example.com"
    );
    assert_key_order(
        &m2msec(&[
            "derive",
            "ke",
            "--export",
            EXPORT,
            "--mef-fqdn",
            "mef.example.com",
        ]),
        &["ke", "relative_ke_id", "ke_id"],
    );
}

#[test]
fn derive_single_keys_match_brief() {
    let run = |args: &[&str]| {
        let o = m2msec(args);
        assert!(
            o.status.success(),
            "{args:?} {}",
            String::from_utf8_lossy(&o.stderr)
        );
        stdout(&o).trim_end().to_string()
    };
    let ke_upper = KE.to_uppercase();
    assert_eq!(
        run(&[
            "derive",
            "km",
            "--ke",
            &ke_upper,
            "--maf-id",
            "maf.example.com"
        ]),
        "c60ab9a88fc1cc25ff15aa4e263e01fabb295d8087bd304676daba31480a617f"
    );
    assert_eq!(
        run(&["derive", "kpsa", "--ke", KE, "--enrolee-id", "/cse-in-1"]),
        "40e26e3ab2b2eb81fdbfbdd3ef50bca2e714938af23325af12f61572ef08caf8"
    );
    assert_eq!(
        run(&[
            "derive",
            "usage-key",
            "--ke",
            KE,
            "--suid",
            "22",
            "--target-id",
            "//sp.example.com/cse-in-1"
        ]),
        "3f7780bed02fa54c3a9e76bab8b33f044d8e8d7f339ba478130ac19b47a14511"
    );
    let octet = run(&[
        "derive",
        "usage-key",
        "--ke",
        KE,
        "--suid",
        "22",
        "--target-id",
        "//sp.example.com/cse-in-1",
        "--suid-encoding",
        "octet",
    ]);
    assert!(
        octet.starts_with("3da2196d") && octet.ends_with("0eda85"),
        "{octet}"
    );
    assert_eq!(
        run(&[
            "derive",
            "session-esprim",
            "--pairwise",
            "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f",
            "--receiver-rand",
            "00112233445566778899aabbccddeeff",
            "--originator-rand",
            "FFEEDDCCBBAA99887766554433221100",
        ]),
        "f09ce02f6d9c511a3210771b12bbf5d0d976bf4ac9c464d0929322aec3b3b8a6"
    );
    assert_eq!(
        run(&[
            "derive",
            "ksx",
            "--kpsa",
            "404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f",
            "--entity-id",
            "/cse-asn-x",
            "--rand",
            "0102030405060708090a0b0c0d0e0f10",
        ]),
        "2e4be4d2e5a7cea704ea5a152ae8861ccd807cc01b56bda930c21fc67ba2eaa1"
    );
}

#[test]
fn derive_e2e_matches_brief() {
    let kpsa = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    let v = json(&m2msec(&[
        "derive",
        "e2e",
        "--kpsa",
        kpsa,
        "--salt",
        "000102030405060708090a0b0c",
    ]));
    assert_eq!(
        v["master"],
        "42d7f93efede2a862db8e2d9dd2d415badb392bccd5d1ab3f976239c3b7a7918"
    );
    assert_eq!(
        v["msg_auth"],
        "54c9b2cadbbb838b9fe0160be97bbc38cf606fa11191b1f2deaa926b9c1fc911"
    );
    assert_eq!(
        v["msg_conf"],
        "4c16062239f32d9ec80ddb86cbd616223564ee4b48297b159823b4cb2bc50cd8"
    );
    assert_eq!(
        v["att_auth"],
        "74efdbd96f0e8904c2c1df2301f51f6b1e7934ddbbabd3f8aaf034c7433a58fd"
    );
    assert_eq!(
        v["att_conf"],
        "f24e95d0f299fe8ed8e681fc619d686ef174dfef8aacd37646515de6eedb5111"
    );
    assert_key_order(
        &m2msec(&["derive", "e2e", "--kpsa", kpsa]),
        &["master", "msg_auth", "msg_conf", "att_auth", "att_conf"],
    );
    let v = json(&m2msec(&["derive", "e2e", "--kpsa", kpsa]));
    assert_eq!(
        v["master"],
        "46bd320605c5a6b6163ab70bc6345b92a5f908e79fe58979c23ebb47d1a5e307"
    );
}

#[test]
fn derive_bad_input_exits_2_naming_the_argument() {
    assert_bad(
        &[
            "derive",
            "ke",
            "--export",
            "00",
            "--mef-fqdn",
            "mef.example.com",
        ],
        "--export",
    );
    assert_bad(
        &[
            "derive",
            "ke",
            "--export",
            &EXPORT[..94],
            "--mef-fqdn",
            "mef.example.com",
        ],
        "--export",
    );
    assert_bad(
        &[
            "derive",
            "ke",
            "--export",
            &format!("{}zz", &EXPORT[..94]),
            "--mef-fqdn",
            "m.com",
        ],
        "--export",
    );
    assert_bad(
        &["derive", "ke", "--export", EXPORT, "--mef-fqdn", "bad_name"],
        "--mef-fqdn",
    );
    assert_bad(
        &["derive", "ke", "--export", EXPORT, "--mef-fqdn", "10.0.0.1"],
        "--mef-fqdn",
    );
    assert_bad(&["derive", "ke", "--export", EXPORT], "--mef-fqdn");
    assert_bad(
        &[
            "derive",
            "km",
            "--ke",
            &KE[..62],
            "--maf-id",
            "maf.example.com",
        ],
        "--ke",
    );
    assert_bad(&["derive", "km", "--ke", KE, "--maf-id", ""], "--maf-id");
    assert_bad(
        &["derive", "kpsa", "--ke", "xyz", "--enrolee-id", "/cse"],
        "--ke",
    );
    assert_bad(
        &[
            "derive",
            "usage-key",
            "--ke",
            KE,
            "--suid",
            "99",
            "--target-id",
            "t.com",
        ],
        "--suid",
    );
    assert_bad(
        &[
            "derive",
            "usage-key",
            "--ke",
            KE,
            "--suid",
            "abc",
            "--target-id",
            "t.com",
        ],
        "--suid",
    );
    assert_bad(
        &[
            "derive",
            "usage-key",
            "--ke",
            KE,
            "--suid",
            "-1",
            "--target-id",
            "t.com",
        ],
        "--suid",
    );
    assert_bad(&["derive", "e2e", "--kpsa", "00"], "--kpsa");
    assert_bad(&["derive", "e2e", "--kpsa", KE, "--salt", "0"], "--salt");
    assert_bad(
        &[
            "derive",
            "session-esprim",
            "--pairwise",
            KE,
            "--receiver-rand",
            "00",
            "--originator-rand",
            "00",
        ],
        "--receiver-rand",
    );
    assert_bad(
        &[
            "derive",
            "ksx",
            "--kpsa",
            KE,
            "--entity-id",
            "/x",
            "--rand",
            "0102",
        ],
        "--rand",
    );
    assert_bad(&["derive", "nonsense"], "nonsense");
    assert_bad(
        &["derive", "km", "--ke", KE, "--maf-id", "m", "--extra", "1"],
        "--extra",
    );
}

// ----------------------------------------------------------------------------------------------
// ibc
// ----------------------------------------------------------------------------------------------

fn write(dir: &Path, name: &str, data: &[u8]) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::File::create(&p).unwrap().write_all(data).unwrap();
    p
}

#[test]
fn ibc_round_trip_and_permissions() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let kms = tmp.path().join("kms");
    let kms_s = kms.to_str().unwrap();
    let setup = json(&m2msec(&["ibc", "setup", "--out", kms_s]));
    let kpak = setup["kpak"].as_str().unwrap().to_string();
    assert!(kpak.starts_with("04") && kpak.len() == 130, "{kpak}");
    assert_eq!(
        std::fs::metadata(&kms).unwrap().permissions().mode() & 0o777,
        0o700
    );
    let secret_path = kms.join("kms.key");
    assert_eq!(
        std::fs::metadata(&secret_path)
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    // Issue 10 item 6: the KSAK is sealed under the KEK beside it, as the MEF seals its own.
    let secret: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&secret_path).unwrap()).unwrap();
    assert!(secret.get("ksak").is_none(), "KSAK in clear: {secret}");
    let sealed = hex::decode(secret["ksak_sealed"].as_str().unwrap()).unwrap();
    let kek_path = kms.join("kek");
    assert_eq!(
        std::fs::metadata(&kek_path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let kek = m2msec_keystore::load_kek(&kek_path).unwrap();
    let ksak_bytes = m2msec_keystore::Sealer::new(kek)
        .open(b"m2msec-ibc/kms.key/ksak", &sealed)
        .unwrap();
    let ksak = hex::encode(&ksak_bytes[..]);
    assert_eq!(ksak.len(), 64);
    let ksak_kpak = m2msec_core::eccsi::Kms::from_ksak(
        m2msec_core::eccsi::Ksak::from_bytes(&ksak_bytes).unwrap(),
    )
    .unwrap()
    .kpak()
    .to_bytes();
    assert_eq!(hex::encode(ksak_kpak), kpak);
    let file_text = String::from_utf8(std::fs::read(&secret_path).unwrap()).unwrap();
    assert!(!file_text.to_lowercase().contains(&ksak));
    // A second setup into the same directory must refuse, not overwrite.
    assert_bad(&["ibc", "setup", "--out", kms_s], "--out");

    let cred = m2msec(&[
        "ibc",
        "extract",
        "--kms",
        kms_s,
        "--id",
        "//sp.example.com/cse-in-1",
    ]);
    let c = json(&cred);
    assert_eq!(c["kpak"], kpak.as_str());
    assert_eq!(c["id_hex"], hex::encode("//sp.example.com/cse-in-1"));
    assert!(c["pvt"].as_str().unwrap().starts_with("04"));
    for out in [&setup.to_string(), &stdout(&cred)] {
        assert!(!out.contains(&ksak), "the KSAK must never be printed");
    }
    let cred_file = write(tmp.path(), "cred.json", &cred.stdout);
    let msg = write(tmp.path(), "msg.bin", b"hello oneM2M\0\xff");
    let sig = m2msec(&[
        "ibc",
        "sign",
        "--credential",
        cred_file.to_str().unwrap(),
        "--message-file",
        msg.to_str().unwrap(),
    ]);
    assert!(
        sig.status.success(),
        "{}",
        String::from_utf8_lossy(&sig.stderr)
    );
    let sig_hex = stdout(&sig).trim().to_string();
    assert_eq!(sig_hex.len(), 258);
    assert_eq!(sig_hex, sig_hex.to_lowercase());

    let id_hex = c["id_hex"].as_str().unwrap();
    let verify = |kpak: &str, id: &str, msg: &Path, sig: &str| {
        m2msec(&[
            "ibc",
            "verify",
            "--kpak",
            kpak,
            "--id-hex",
            id,
            "--message-file",
            msg.to_str().unwrap(),
            "--signature",
            sig,
        ])
    };
    let ok = verify(&kpak, id_hex, &msg, &sig_hex);
    assert_eq!(ok.status.code(), Some(0));
    assert_eq!(stdout(&ok), "valid\n");
    // Uppercase hex input is accepted.
    assert_eq!(
        verify(
            &kpak.to_uppercase(),
            &id_hex.to_uppercase(),
            &msg,
            &sig_hex.to_uppercase()
        )
        .status
        .code(),
        Some(0)
    );

    // Wrong message, wrong identity, tampered r, s and PVT: invalid (exit 1).
    let other = write(tmp.path(), "other.bin", b"hello oneM2M\0\xfe");
    let mut cases = vec![
        verify(&kpak, id_hex, &other, &sig_hex),
        verify(
            &kpak,
            &hex::encode("//sp.example.com/cse-in-2"),
            &msg,
            &sig_hex,
        ),
    ];
    for pos in [0usize, 70, 140, 257] {
        let mut t: Vec<char> = sig_hex.chars().collect();
        t[pos] = if t[pos] == '0' { '1' } else { '0' };
        cases.push(verify(
            &kpak,
            id_hex,
            &msg,
            &t.into_iter().collect::<String>(),
        ));
    }
    for o in cases {
        assert_eq!(
            o.status.code(),
            Some(1),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert_eq!(stdout(&o), "invalid\n");
    }
    // Another KMS's KPAK: invalid.
    let kms2 = tmp.path().join("kms2");
    let kpak2 = json(&m2msec(&["ibc", "setup", "--out", kms2.to_str().unwrap()]))["kpak"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        verify(&kpak2, id_hex, &msg, &sig_hex).status.code(),
        Some(1)
    );

    // Malformed input: exit 2.
    assert_bad(
        &[
            "ibc",
            "verify",
            "--kpak",
            "04",
            "--id-hex",
            id_hex,
            "--message-file",
            msg.to_str().unwrap(),
            "--signature",
            &sig_hex,
        ],
        "--kpak",
    );
    assert_bad(
        &[
            "ibc",
            "verify",
            "--kpak",
            &kpak,
            "--id-hex",
            "zz",
            "--message-file",
            msg.to_str().unwrap(),
            "--signature",
            &sig_hex,
        ],
        "--id-hex",
    );
    assert_bad(
        &[
            "ibc",
            "verify",
            "--kpak",
            &kpak,
            "--id-hex",
            id_hex,
            "--message-file",
            msg.to_str().unwrap(),
            "--signature",
            &sig_hex[..256],
        ],
        "--signature",
    );
    assert_bad(
        &[
            "ibc",
            "verify",
            "--kpak",
            &kpak,
            "--id-hex",
            id_hex,
            "--message-file",
            "/nonexistent/m",
            "--signature",
            &sig_hex,
        ],
        "--message-file",
    );
    assert_bad(
        &[
            "ibc",
            "sign",
            "--credential",
            msg.to_str().unwrap(),
            "--message-file",
            msg.to_str().unwrap(),
        ],
        "--credential",
    );
    assert_bad(
        &["ibc", "extract", "--kms", "/nonexistent/kms", "--id", "x"],
        "--kms",
    );
    assert_bad(&["ibc", "extract", "--kms", kms_s], "--id");
    assert_bad(
        &[
            "ibc", "extract", "--kms", kms_s, "--id", "x", "--id-hex", "78",
        ],
        "--id",
    );

    // A credential whose SSK does not validate (§5.1.2) is refused before signing.
    let mut bad: serde_json::Value = serde_json::from_slice(&cred.stdout).unwrap();
    bad["id_hex"] = serde_json::Value::String(hex::encode("someone else"));
    let bad_file = write(tmp.path(), "bad.json", bad.to_string().as_bytes());
    assert_bad(
        &[
            "ibc",
            "sign",
            "--credential",
            bad_file.to_str().unwrap(),
            "--message-file",
            msg.to_str().unwrap(),
        ],
        "--credential",
    );
}

/// A KMS directory written before the KSAK was sealed (`kms.key` with `"ksak"` in clear, no
/// `kek`) still extracts; a sealed one whose KEK was replaced does not (exit 2, one line).
#[test]
fn ibc_extract_reads_the_unsealed_form_and_refuses_a_replaced_kek() {
    let tmp = tempfile::tempdir().unwrap();
    let old = tmp.path().join("old");
    std::fs::create_dir(&old).unwrap();
    let ksak = [0x42u8; 32];
    let kpak =
        m2msec_core::eccsi::Kms::from_ksak(m2msec_core::eccsi::Ksak::from_bytes(&ksak).unwrap())
            .unwrap()
            .kpak()
            .to_bytes();
    write(
        &old,
        "kms.key",
        format!(
            "{{\"scheme\":\"ECCSI P-256 SHA-256 (RFC 6507)\",\"ksak\":\"{}\"}}",
            hex::encode(ksak)
        )
        .as_bytes(),
    );
    let o = m2msec(&[
        "ibc",
        "extract",
        "--kms",
        old.to_str().unwrap(),
        "--id",
        "Cdev",
    ]);
    assert_eq!(json(&o)["kpak"], hex::encode(kpak));

    let kms = tmp.path().join("kms");
    let kms_s = kms.to_str().unwrap();
    json(&m2msec(&["ibc", "setup", "--out", kms_s]));
    std::fs::write(kms.join("kek"), format!("{}\n", "07".repeat(32))).unwrap();
    assert_bad(&["ibc", "extract", "--kms", kms_s, "--id", "Cdev"], "--kms");
    std::fs::remove_file(kms.join("kek")).unwrap();
    assert_bad(&["ibc", "extract", "--kms", kms_s, "--id", "Cdev"], "--kms");
}

#[test]
fn ibc_verify_accepts_the_rfc6507_signature() {
    // RFC 6507 Appendix A (../shared/spec/vectors/rfc6507-vectors.txt).
    let kpak = "0450D4670BDE75244F28D2838A0D25558A7A72686D4522D4C8273FB6442AEBFA93DBDD37551AFD263B5DFD617F3960C65A8C298850FF99F20366DCE7D4367217F4";
    let id = hex::encode(b"2011-02\0tel:+447700900123\0");
    let sig = "269D4C8FDEB66A74E4EF8C0D5DCC597DDFE6029C2AFFC4936008CD2CC1045D81\
               E09B528D0EF8D6DF1AA3ECBF80110CFCEC9FC68252CEBB679F4134846940CCFD\
               04758A142779BE89E829E71984CB40EF758CC4AD775FC5B9A3E1C8ED52F6FA36D9\
               A79D247692F4EDA3A6BDAB77D6AA6474A464AE4934663C5265BA7018BA091F79";
    let tmp = tempfile::tempdir().unwrap();
    let msg = write(tmp.path(), "m", b"message\0");
    let o = m2msec(&[
        "ibc",
        "verify",
        "--kpak",
        kpak,
        "--id-hex",
        &id,
        "--message-file",
        msg.to_str().unwrap(),
        "--signature",
        sig,
    ]);
    assert_eq!(
        stdout(&o),
        "valid\n",
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let wrong = write(tmp.path(), "w", b"message");
    let o = m2msec(&[
        "ibc",
        "verify",
        "--kpak",
        kpak,
        "--id-hex",
        &id,
        "--message-file",
        wrong.to_str().unwrap(),
        "--signature",
        sig,
    ]);
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn help_and_version_succeed() {
    for args in [
        &["--help"][..],
        &["--version"],
        &["derive", "--help"],
        &["ibc", "verify", "--help"],
    ] {
        let o = m2msec(args);
        assert!(o.status.success(), "{args:?}");
        assert!(!o.stdout.is_empty());
    }
    // No subcommand: usage on stderr, status 2.
    assert_eq!(m2msec(&[]).status.code(), Some(2));
}
