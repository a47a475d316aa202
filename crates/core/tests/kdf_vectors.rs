//! The TS-0003 §10.3 key schedule against references nobody here wrote: RFC 4231 (HMAC-SHA-256),
//! RFC 5869 (HKDF-SHA-256, and the RustCrypto `hkdf` crate as an independent oracle), and the
//! BRIEF §2.10 example values.

mod common;

use common::{blocks, single, unhex};
use m2msec_core::export::ExportedKeyingMaterial;
use m2msec_core::ids::{Fqdn, KeId};
use m2msec_core::kdf::{self, E2eSalt, EsprimRandValue, GroupRand, KdfIdentifier, SuidEncoding};
use m2msec_core::secret::{Ke, Kpsa, PairwiseEsprimKey};
use m2msec_core::suid::Suid;

fn id(s: &str) -> KdfIdentifier {
    KdfIdentifier::new(s).unwrap()
}

#[test]
fn rfc4231_hmac_sha256_through_ke2e_master() {
    // Ke2e_master = HMAC-SHA-256(Salt, Kpsa): with Salt = RFC key and Kpsa = RFC data it is the
    // RFC's HMAC. Kpsa needs >= 16 bytes, which every case used here satisfies (case 1 does not).
    let mut n = 0;
    for b in blocks("rfc4231-hmac-sha256.txt") {
        let data = unhex(&b["data"]);
        if data.len() < Kpsa::MIN_LEN {
            continue;
        }
        let salt = E2eSalt::new(&unhex(&b["key"])).unwrap();
        let master = kdf::ke2e_master(&Kpsa::from_bytes(&data).unwrap(), Some(&salt));
        assert_eq!(
            hex::encode(master.expose_secret()),
            b["mac"],
            "RFC 4231 case {}",
            b["case"]
        );
        n += 1;
    }
    assert_eq!(n, 5, "cases 2, 3, 4, 6, 7");
}

#[test]
fn rfc5869_extract_is_ke2e_master_and_hkdf_oracle_agrees() {
    let cases = blocks("rfc5869-hkdf-sha256.txt");
    assert_eq!(cases.len(), 3);
    for b in cases {
        let ikm = Kpsa::from_bytes(&unhex(&b["ikm"])).unwrap();
        let salt_bytes = unhex(&b["salt"]);
        let salt = if salt_bytes.is_empty() {
            None
        } else {
            Some(E2eSalt::new(&salt_bytes).unwrap())
        };
        let prk = kdf::ke2e_master(&ikm, salt.as_ref());
        assert_eq!(
            hex::encode(prk.expose_secret()),
            b["prk"],
            "case {}",
            b["case"]
        );

        // The oracle used below (`hkdf`) must itself reproduce the RFC's OKM.
        let hk = hkdf::Hkdf::<sha2::Sha256>::from_prk(prk.expose_secret()).unwrap();
        let l: usize = b["l"].parse().unwrap();
        let mut okm = vec![0u8; l];
        hk.expand(&unhex(&b["info"]), &mut okm).unwrap();
        assert_eq!(hex::encode(okm), b["okm"], "case {}", b["case"]);
    }
}

#[test]
fn e2e_t1_is_hkdf_expand_but_t2_is_chained() {
    // Conformance checks 9 and 10 (BRIEF §6).
    let v = single("brief-2.10.txt");
    let kpsa = Kpsa::from_bytes(&unhex(&v["e2e_kpsa"])).unwrap();
    let salt = E2eSalt::new(&unhex(&v["e2e_salt"])).unwrap();
    let master = kdf::ke2e_master(&kpsa, Some(&salt));
    let keys = kdf::e2e_keys(&master);
    let hk = hkdf::Hkdf::<sha2::Sha256>::from_prk(master.expose_secret()).unwrap();
    let mut t1 = [0u8; 32];
    hk.expand(b"E2E Message Authentication Key", &mut t1)
        .unwrap();
    assert_eq!(&t1, keys.msg_auth.expose_secret());
    let mut not_t2 = [0u8; 32];
    hk.expand(b"E2E Message Confidentiality Key", &mut not_t2)
        .unwrap();
    assert_ne!(&not_t2, keys.msg_conf.expose_secret());

    // No salt = 32 zero bytes = HKDF-Extract with salt "not provided".
    let no_salt = kdf::ke2e_master(&kpsa, None);
    let zero = E2eSalt::new(&[0u8; 32]).unwrap();
    assert_eq!(no_salt, kdf::ke2e_master(&kpsa, Some(&zero)));
    let (prk, _) = hkdf::Hkdf::<sha2::Sha256>::extract(None, kpsa.expose_secret());
    assert_eq!(no_salt.expose_secret()[..], prk[..]);
}

#[test]
fn brief_2_10_enrolment_key_split() {
    let v = single("brief-2.10.txt");
    let export = ExportedKeyingMaterial::from_bytes(&unhex(&v["export"])).unwrap();
    let fqdn: Fqdn = v["mef_fqdn"].parse().unwrap();
    let ek = kdf::enrolment_key(&export, &fqdn);
    assert_eq!(hex::encode(ek.ke.expose_secret()), v["ke"]);
    assert_eq!(ek.relative_ke_id.to_hex(), v["relative_ke_id"]);
    assert_eq!(ek.ke_id.to_string(), v["ke_id"]);
    assert_eq!(
        ek.ke_id,
        v["ke_id"]
            .to_uppercase()
            .replace("@MEF.EXAMPLE.COM", "@mef.example.com")
            .parse::<KeId>()
            .unwrap()
    );
}

#[test]
fn brief_2_10_km_kpsa_usage() {
    let v = single("brief-2.10.txt");
    let ke = Ke::from_bytes(&unhex(&v["ke"])).unwrap();
    assert_eq!(
        hex::encode(kdf::km(&ke, &id(&v["maf_id"])).expose_secret()),
        v["km"]
    );
    assert_eq!(
        hex::encode(kdf::kpsa(&ke, &id(&v["enrolee_b_id"])).expose_secret()),
        v["kpsa"]
    );
    let suid = Suid::new(v["suid"].parse().unwrap()).unwrap();
    let target = id(&v["target_id"]);
    let ascii = kdf::usage_constrained_key(&ke, suid, &target, SuidEncoding::AsciiDecimal);
    assert_eq!(hex::encode(ascii.expose_secret()), v["usage_key_ascii"]);
    assert_eq!(
        ascii,
        kdf::usage_constrained_key(&ke, suid, &target, SuidEncoding::default()),
        "A7 default is ASCII"
    );
    let octet = hex::encode(
        kdf::usage_constrained_key(&ke, suid, &target, SuidEncoding::SingleOctet).expose_secret(),
    );
    assert!(octet.starts_with(&v["usage_key_octet_prefix"]), "{octet}");
    assert!(octet.ends_with(&v["usage_key_octet_suffix"]), "{octet}");
}

#[test]
fn brief_2_10_e2e_schedule() {
    let v = single("brief-2.10.txt");
    let kpsa = Kpsa::from_bytes(&unhex(&v["e2e_kpsa"])).unwrap();
    let salt = E2eSalt::new(&unhex(&v["e2e_salt"])).unwrap();
    let master = kdf::ke2e_master(&kpsa, Some(&salt));
    assert_eq!(hex::encode(master.expose_secret()), v["e2e_master"]);
    let k = kdf::e2e_keys(&master);
    assert_eq!(hex::encode(k.msg_auth.expose_secret()), v["e2e_msg_auth"]);
    assert_eq!(hex::encode(k.msg_conf.expose_secret()), v["e2e_msg_conf"]);
    assert_eq!(hex::encode(k.att_auth.expose_secret()), v["e2e_att_auth"]);
    assert_eq!(hex::encode(k.att_conf.expose_secret()), v["e2e_att_conf"]);
    assert_eq!(
        hex::encode(kdf::ke2e_master(&kpsa, None).expose_secret()),
        v["e2e_master_no_salt"]
    );
}

#[test]
fn brief_2_10_session_esprim_key_and_ksx() {
    let v = single("brief-2.10.txt");
    let pw = PairwiseEsprimKey::from_bytes(&unhex(&v["esprim_pairwise"])).unwrap();
    let r = EsprimRandValue::from_bytes(&unhex(&v["esprim_receiver_rand"])).unwrap();
    let o = EsprimRandValue::from_bytes(&unhex(&v["esprim_originator_rand"])).unwrap();
    assert_eq!(
        hex::encode(kdf::session_esprim_key(&pw, &r, &o).expose_secret()),
        v["session_esprim_key"]
    );
    // Order matters: receiver first.
    assert_ne!(
        hex::encode(kdf::session_esprim_key(&pw, &o, &r).expose_secret()),
        v["session_esprim_key"]
    );

    let kpsaxi = Kpsa::from_bytes(&unhex(&v["ksx_kpsaxi"])).unwrap();
    let rand = GroupRand::from_bytes(&unhex(&v["ksx_rand"])).unwrap();
    assert_eq!(
        hex::encode(kdf::ksx(&kpsaxi, &id(&v["ksx_entity_id"]), &rand).expose_secret()),
        v["ksx"]
    );
}

#[test]
fn nfkc_fullwidth_gives_same_key() {
    // Conformance check 8.
    let ke = Ke::from_array([7; 32]);
    assert_eq!(id("ＣＳＥ１").as_str(), "CSE1");
    assert_eq!(kdf::kpsa(&ke, &id("ＣＳＥ１")), kdf::kpsa(&ke, &id("CSE1")));
    assert_ne!(kdf::kpsa(&ke, &id("CSE1")), kdf::kpsa(&ke, &id("cse1")));
    // Compatibility forms: the "ﬁ" ligature and the superscript two.
    assert_eq!(kdf::km(&ke, &id("ﬁx²")), kdf::km(&ke, &id("fix2")));
}

#[test]
fn kdf_identifier_rejects_bad_text() {
    assert!(KdfIdentifier::new("").is_err());
    assert!(KdfIdentifier::new("a\u{0}b").is_err());
    assert!(KdfIdentifier::new("line\nbreak").is_err());
    assert!(KdfIdentifier::new(&"x".repeat(1025)).is_err());
    assert!(KdfIdentifier::new(&"x".repeat(1024)).is_ok());
}
