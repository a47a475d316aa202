//! Seed 004, Pre-Established Symmetric Key authentication: "long-term shared key generation"
//! after a certificate security association (BRIEF §1 seed 004; issue 3 item 7).
//!
//! After a mutually authenticated ECDHE-ECDSA handshake, both ends export 48 bytes with a
//! **project-defined** label, [`KX_EXPORTER_LABEL`] (TS-0003 defines none, so this is an m2msec
//! extension, not interoperable with other implementations), and split them as the oneM2M
//! exports are split (BRIEF A1): Kx = bytes 16..48, and KxID = lowercase hex of bytes 0..16
//! followed by `@` and the server's authority (the SNI host name), like KeID (BRIEF A4/A5).
//! The server stores Kx under KxID bound to the client's certificate identity; later connections
//! use TLS-PSK with `psk_identity` = KxID and are bound to that same identity.

use crate::config::{Psk, PskIdentity, PskTable, ResolvedPsk};
use crate::error::{Error, Result};
use crate::exporter::ExportedKeyingMaterial;
use crate::peer::{BoundIdentity, CredentialKind, Peer};

/// The project-defined exporter label for seed 004's Kx (an m2msec extension).
pub const KX_EXPORTER_LABEL: &str = "EXPORTER-m2msec-seed004-Kx";

/// A long-term shared key derived after a certificate SA.
#[derive(Clone, Debug)]
pub struct LongTermKey {
    /// KxID, sent later as `psk_identity`.
    pub kx_id: PskIdentity,
    /// Kx (32 bytes).
    pub kx: Psk,
    /// The peer identity Kx is bound to (from the peer's certificate or configuration).
    pub bound: BoundIdentity,
}

/// Derive Kx/KxID from an export with [`KX_EXPORTER_LABEL`] on an established certificate SA.
/// `peer` must be a certificate peer with a bound identity and an SNI (the authority).
pub fn derive(export: &ExportedKeyingMaterial, peer: &Peer) -> Result<LongTermKey> {
    if peer.credential != CredentialKind::Certificate {
        return Err(Error::Config(
            "seed 004 keys are derived only after a certificate SA".into(),
        ));
    }
    let bound = peer.bound_identity.clone().ok_or_else(|| {
        Error::Config("the peer has no authenticated identity (client certificate required)".into())
    })?;
    let authority = peer
        .sni
        .as_deref()
        .ok_or_else(|| Error::Config("no SNI: the authority of KxID is unknown".into()))?;
    let bytes = export.expose_secret();
    let kx_id = PskIdentity::new(&format!("{}@{authority}", hex::encode(&bytes[..16])))?;
    let kx = Psk::new(&bytes[16..])?;
    Ok(LongTermKey { kx_id, kx, bound })
}

/// Server side: store Kx under KxID for the authority, bound to the client's identity.
pub fn install(table: &PskTable, authority: &str, key: &LongTermKey) {
    table.insert_entry(
        Some(authority),
        key.kx_id.clone(),
        ResolvedPsk {
            key: key.kx.clone(),
            bound: key.bound.clone(),
        },
    );
}
