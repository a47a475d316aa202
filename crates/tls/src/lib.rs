//! Secure channels: (D)TLS 1.2 security associations on OpenSSL (TS-0003 §8.2, §10.1, §10.2).
//!
//! Every oneM2M security framework runs over a TLS 1.2 (TCP) or DTLS 1.2 (UDP) security
//! association whose peer is bound to an authenticated identity. This crate provides them on
//! the `openssl` crate (rustls cannot offer the mandated PSK and CCM_8 suites, BRIEF A29):
//!
//! * [`config`]: credentials ([`Psk`], [`PskIdentity`], the [`PskResolver`] credential source
//!   and its in-memory [`PskTable`]) and client/server configuration;
//! * [`cert`]: certificate credentials, trust anchors and the peer-certificate profile;
//! * [`context`]: OpenSSL contexts pinned to version 1.2 with explicit cipher lists;
//! * [`tls`]: TLS 1.2 over tokio TCP ([`TlsClient`], [`TlsServer`], [`TlsChannel`]);
//! * [`dtls`]: DTLS 1.2 over tokio UDP, with a one-port multi-peer server ([`DtlsClient`],
//!   [`DtlsServer`], [`DtlsSession`]);
//! * [`exporter`]: RFC 5705 exports with the three oneM2M labels;
//! * [`peer`]: the authenticated [`Peer`] of a security association;
//! * [`rpk`]: RFC 7250 raw public keys identified by RFC 6920 digests (OpenSSL >= 3.2);
//! * [`seed004`]: seed 004's long-term shared key (Kx/KxID) installed after a certificate SA.
//!
//! Secrets (PSKs, exports) are zeroized on drop and redacted in `Debug`; logs name identities,
//! never keys.

#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod cert;
pub mod config;
pub mod context;
pub mod dtls;
pub mod error;
pub mod exporter;
mod ffi;
pub mod peer;
pub mod rpk;
pub mod seed004;
pub mod tls;

pub use cert::{CertCredential, ExpectedName, TrustAnchors};
pub use config::{
    ClientAuth, ClientConfig, ClientCredential, Psk, PskIdentity, PskResolver, PskTable,
    ResolvedPsk, ServerCertificates, ServerConfig, SuitePolicy,
};
pub use dtls::{
    AcceptError, Accepted, DtlsClient, DtlsOptions, DtlsServer, DtlsSession, DtlsStats,
};
pub use error::{Error, Result};
pub use exporter::{ExportedKeyingMaterial, ExporterLabel, EXPORT_LEN};
pub use peer::{BoundIdentity, CredentialKind, Peer, Protocol, Role};
pub use rpk::{PkId, PkIdAlg};
pub use tls::{TlsChannel, TlsClient, TlsServer};

/// The version of the OpenSSL library in use (e.g. `OpenSSL 3.6.3 …`).
pub fn openssl_version() -> &'static str {
    openssl::version::version()
}
