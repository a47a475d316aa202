//! # m2msec-cse-service
//!
//! The CSE role wired together (the *service* of `docs/architecture.md`): it owns what the
//! sans-IO engine ([`m2msec_cse::Cse`]) must not: locks, connections, threads and caches.
//!
//! - [`endpoint`]: [`CseEndpoint`], the engine behind the bindings' listeners. Each security
//!   association becomes the engine's security context (TS-0003 §7.2.1); PSK credentials
//!   (TS-0003 §8.2.2.1) and raw public keys live in memory so the handshake never waits on
//!   SQLite; the store watcher follows administered credentials; revoked and expired ones are
//!   refused and their sessions closed; reserved AE-IDs feed originator verification.
//! - [`mef_source`]: [`MefKeySource`], the Enrolment Target's side of TS-0003 §8.3.4.3: keys
//!   fetched from the MEF on a handshake miss, its change feed, Enrolee-ID reservations.
//! - [`bind_http`]: the registrar CSE's HTTP/TLS-PSK service in one call (tests and benches).
//!
//! The bindings (`m2msec-bindings`) only map HTTP and CoAP to primitives and run listeners;
//! the engine (`m2msec-cse`) only decides.
#![forbid(unsafe_code)]
#![deny(missing_debug_implementations)]

pub mod endpoint;
pub mod mef_source;

use std::net::SocketAddr;

use m2msec_bindings::{Limits, Listeners, Server, ServerError};
use m2msec_cse::{Cse, Store};

pub use endpoint::{
    CseEndpoint, CseSecurity, CseSession, PskCredential, RawKeyCredential, RemoteKey,
    RemoteKeySource, RemoteRevocations,
};
pub use mef_source::{FetchLimits, MefKeySource, MefLink};

/// Service configuration of the registrar CSE (addresses, TLS-side security, limits).
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// TLS-PSK listener address (port 0 picks a free port).
    pub tls_addr: SocketAddr,
    /// The authority (SNI host name) this CSE answers for; None accepts any name.
    pub authority: Option<String>,
    /// Refuse TLS clients that send no SNI.
    pub require_sni: bool,
    /// PSK credentials.
    pub credentials: Vec<PskCredential>,
    /// Plaintext HTTP listener, loopback only (None: no plaintext listener).
    pub plain_addr: Option<SocketAddr>,
    /// Timeouts and limits.
    pub limits: Limits,
}

/// The registrar CSE's HTTP service with PSK credentials only: opens the listeners and builds
/// the TLS-PSK context.
pub async fn bind_http<S: Store + Send + 'static>(
    opts: ServerOptions,
    cse: Cse<S>,
) -> Result<Server<CseEndpoint<S>>, ServerError> {
    let (endpoint, mut cfg) = CseEndpoint::new(
        cse,
        &CseSecurity {
            authority: opts.authority.clone(),
            require_sni: opts.require_sni,
            credentials: opts.credentials.clone(),
            raw_keys: Vec::new(),
        },
    );
    cfg.handshake_timeout = opts.limits.handshake_timeout;
    Server::with_endpoint(
        Listeners {
            tls_addr: opts.tls_addr,
            plain_addr: opts.plain_addr,
            limits: opts.limits,
        },
        &cfg,
        endpoint,
    )
    .await
}
