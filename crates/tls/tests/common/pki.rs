//! A throwaway PKI for tests: a P-256 CA and leaves with chosen SubjectAltNames, curve, key
//! usage and validity, built with the `openssl` crate.

use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::x509::extension::{BasicConstraints, KeyUsage, SubjectAlternativeName};
use openssl::x509::{X509Builder, X509NameBuilder, X509};

pub fn key(curve: Nid) -> PKey<Private> {
    let g = EcGroup::from_curve_name(curve).unwrap();
    PKey::from_ec_key(EcKey::generate(&g).unwrap()).unwrap()
}

fn serial() -> openssl::asn1::Asn1Integer {
    let mut bn = BigNum::new().unwrap();
    bn.rand(64, MsbOption::MAYBE_ZERO, false).unwrap();
    bn.to_asn1_integer().unwrap()
}

fn name(cn: &str) -> openssl::x509::X509Name {
    let mut n = X509NameBuilder::new().unwrap();
    n.append_entry_by_text("CN", cn).unwrap();
    n.build()
}

pub struct Ca {
    pub cert: X509,
    pub key: PKey<Private>,
}

impl Ca {
    pub fn new(cn: &str) -> Ca {
        let key = key(Nid::X9_62_PRIME256V1);
        let mut b = X509Builder::new().unwrap();
        b.set_version(2).unwrap();
        b.set_serial_number(&serial()).unwrap();
        b.set_subject_name(&name(cn)).unwrap();
        b.set_issuer_name(&name(cn)).unwrap();
        b.set_pubkey(&key).unwrap();
        b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        b.set_not_after(&Asn1Time::days_from_now(30).unwrap())
            .unwrap();
        b.append_extension(BasicConstraints::new().critical().ca().build().unwrap())
            .unwrap();
        b.append_extension(
            KeyUsage::new()
                .critical()
                .key_cert_sign()
                .crl_sign()
                .build()
                .unwrap(),
        )
        .unwrap();
        b.sign(&key, MessageDigest::sha256()).unwrap();
        Ca {
            cert: b.build(),
            key,
        }
    }

    pub fn pem(&self) -> Vec<u8> {
        self.cert.to_pem().unwrap()
    }
}

pub enum San<'a> {
    Dns(&'a str),
    Uri(&'a str),
    /// otherName: type-id (dotted OID) and the DER of the value.
    OtherName(&'a str, &'a [u8]),
}

#[derive(Clone, Copy)]
pub struct LeafOpts {
    pub curve: Nid,
    pub digital_signature: bool,
    pub expired: bool,
    /// Encode the (P-256) key in the certificate as a compressed point.
    pub compressed_point: bool,
}

impl Default for LeafOpts {
    fn default() -> Self {
        LeafOpts {
            curve: Nid::X9_62_PRIME256V1,
            digital_signature: true,
            expired: false,
            compressed_point: false,
        }
    }
}

pub struct Leaf {
    pub cert: X509,
    pub key: PKey<Private>,
}

impl Leaf {
    pub fn cert_pem(&self) -> Vec<u8> {
        self.cert.to_pem().unwrap()
    }

    pub fn key_pem(&self) -> Vec<u8> {
        self.key.private_key_to_pem_pkcs8().unwrap()
    }
}

pub fn leaf(ca: &Ca, sans: &[San], opts: LeafOpts) -> Leaf {
    let key = key(opts.curve);
    let mut b = X509Builder::new().unwrap();
    b.set_version(2).unwrap();
    b.set_serial_number(&serial()).unwrap();
    b.set_subject_name(&name("m2msec test leaf")).unwrap();
    b.set_issuer_name(ca.cert.subject_name()).unwrap();
    if opts.compressed_point {
        b.set_pubkey(&compressed_p256_public_key(&key)).unwrap();
    } else {
        b.set_pubkey(&key).unwrap();
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    if opts.expired {
        b.set_not_before(&Asn1Time::from_unix(now - 10 * 86400).unwrap())
            .unwrap();
        b.set_not_after(&Asn1Time::from_unix(now - 86400).unwrap())
            .unwrap();
    } else {
        b.set_not_before(&Asn1Time::from_unix(now - 3600).unwrap())
            .unwrap();
        b.set_not_after(&Asn1Time::days_from_now(10).unwrap())
            .unwrap();
    }
    b.append_extension(BasicConstraints::new().build().unwrap())
        .unwrap();
    let ku = if opts.digital_signature {
        KeyUsage::new()
            .critical()
            .digital_signature()
            .build()
            .unwrap()
    } else {
        KeyUsage::new().critical().key_agreement().build().unwrap()
    };
    b.append_extension(ku).unwrap();
    let mut san = SubjectAlternativeName::new();
    for s in sans {
        match s {
            San::Dns(d) => san.dns(d),
            San::Uri(u) => san.uri(u),
            San::OtherName(oid, der) => {
                san.other_name2(openssl::asn1::Asn1Object::from_str(oid).unwrap(), der)
            }
        };
    }
    let ext = san.build(&b.x509v3_context(Some(&ca.cert), None)).unwrap();
    b.append_extension(ext).unwrap();
    b.sign(&ca.key, MessageDigest::sha256()).unwrap();
    Leaf {
        cert: b.build(),
        key,
    }
}

/// DER SubjectPublicKeyInfo prefix of a P-256 key with a compressed point (33 bytes follow).
pub const P256_COMPRESSED_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x39, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x22, 0x00,
];

/// The public half of a P-256 key, parsed from an SPKI whose point is compressed (so OpenSSL
/// keeps the compressed form when it encodes the key again).
pub fn compressed_p256_public_key(key: &PKey<Private>) -> PKey<openssl::pkey::Public> {
    let ec = key.ec_key().unwrap();
    let mut ctx = openssl::bn::BigNumContext::new().unwrap();
    let point = ec
        .public_key()
        .to_bytes(
            ec.group(),
            openssl::ec::PointConversionForm::COMPRESSED,
            &mut ctx,
        )
        .unwrap();
    assert_eq!(point.len(), 33);
    let mut der = P256_COMPRESSED_SPKI_PREFIX.to_vec();
    der.extend_from_slice(&point);
    PKey::public_key_from_der(&der).unwrap()
}
