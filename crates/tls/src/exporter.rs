//! RFC 5705 keying-material exporters with the oneM2M labels (TS-0003 §10.3.1, BRIEF §2.2).
//!
//! Every oneM2M export is 48 bytes with no context value (`use_context = 0`, BRIEF A2), the
//! same as `openssl s_client -keymatexport LABEL -keymatexportlen 48`. The labels, the secret
//! 48-byte value and its split into identifier (bytes 0..16) and key (bytes 16..48, BRIEF A1)
//! are the core's [`m2msec_core::export`] types; this module only asks OpenSSL for the bytes.

use openssl::ssl::SslRef;
use zeroize::Zeroizing;

pub use m2msec_core::export::{ExportedKeyingMaterial, ExporterLabel, EXPORT_LEN};

use crate::error::{Error, Result};

/// Export 48 bytes with `label` and no context from an established connection.
pub fn export(ssl: &SslRef, label: ExporterLabel) -> Result<ExportedKeyingMaterial> {
    export_with_label(ssl, label.as_str())
}

/// Export 48 bytes with an arbitrary label (project extensions such as seed 004's Kx label).
pub fn export_with_label(ssl: &SslRef, label: &str) -> Result<ExportedKeyingMaterial> {
    if !ssl.is_init_finished() {
        return Err(Error::Export("handshake not complete".into()));
    }
    let mut out = Zeroizing::new([0u8; EXPORT_LEN]);
    // An OpenSSL failure keeps its error stack (`Error::OpenSsl`).
    ssl.export_keying_material(&mut out[..], label, None)?;
    ExportedKeyingMaterial::from_bytes(&out[..]).map_err(|e| Error::Export(e.to_string()))
}

/// Lowercase hex of all 48 bytes, for diagnostics that must print it (`m2msec probe`).
pub fn to_hex(k: &ExportedKeyingMaterial) -> Zeroizing<String> {
    Zeroizing::new(hex::encode(&k.expose_secret()[..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_hex() {
        assert_eq!(ExporterLabel::EsCertKe.as_str(), "EXPORTER-oneM2M-ESCertKE");
        let mut b = [0u8; EXPORT_LEN];
        b[0] = 0xAB;
        let k = ExportedKeyingMaterial::from_bytes(&b).unwrap();
        assert!(to_hex(&k).starts_with("ab00"));
        assert_eq!(to_hex(&k).len(), 96);
        assert!(!format!("{k:?}").contains("ab"));
    }
}
