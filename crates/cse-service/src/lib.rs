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
//! - [`registrar`]: an MN-CSE's links to its neighbour CSEs (issue 12): the registration
//!   driver and the [`endpoint::Forwarder`] over HTTP/TLS-PSK.
//! - [`config`]: the configuration file ([`config::CseFile`]) and its validation
//!   ([`config::CseServiceConfig`]).
//! - [`start`]: the one start function of the CSE role, shared by `m2msec cse serve`, the demo
//!   and the tests: store, engine, endpoint, watcher, listeners.
//! - [`bind_http`]: the registrar CSE's HTTP/TLS-PSK service with PSK credentials only, in one
//!   call (benches and binding tests).
//!
//! The bindings (`m2msec-bindings`) only map HTTP and CoAP to primitives and run listeners;
//! the engine (`m2msec-cse`) only decides.
#![forbid(unsafe_code)]
#![deny(missing_debug_implementations)]

pub mod config;
pub mod endpoint;
pub mod mef_source;
pub mod registrar;

use std::net::SocketAddr;
use std::sync::Arc;

use m2msec_bindings::config::ConfigError;
use m2msec_bindings::{listen, Limits, ListenOptions, Listeners, Listening, Server, ServerError};
use m2msec_cse::{Cse, SqliteStore, Store};

pub use endpoint::{
    CseEndpoint, CseSecurity, CseSession, Forwarder, PskCredential, RawKeyCredential, RemoteKey,
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

/// Why the CSE did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration, the store or the credentials cannot be used.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A listener could not be opened.
    #[error(transparent)]
    Listen(#[from] ServerError),
}

/// A started CSE: the listeners ([`Listening`]: addresses and the endpoint) and the
/// background tasks (credential watcher, expiry sweep). Dropping it stops them all.
#[derive(Debug)]
pub struct RunningCse {
    /// Addresses, endpoint, listeners.
    pub listening: Listening<CseEndpoint<SqliteStore>>,
    /// An MN-CSE: receives the registrar's CSE-ID once registered with it.
    pub registered: Option<tokio::sync::oneshot::Receiver<String>>,
    background: Vec<tokio::task::JoinHandle<()>>,
}

impl RunningCse {
    /// Waits until a listener stops (it does not, unless its socket fails).
    pub async fn wait(&mut self) {
        self.listening.wait().await;
    }
}

impl Drop for RunningCse {
    fn drop(&mut self) {
        for t in &self.background {
            t.abort();
        }
    }
}

/// Starts the CSE role from a validated configuration, on the current tokio runtime: opens the
/// store and the engine, the endpoint with its PSK, raw-key and certificate credentials, the
/// credential store with its watcher and expiry sweep, the MEF key source (`[mef]`), and the
/// HTTP (TLS, optional plaintext loopback) and CoAP/DTLS listeners.
pub async fn start(loaded: config::CseServiceConfig) -> Result<RunningCse, StartError> {
    let data_dir = loaded.data_dir.display().to_string();
    let (own_id, cb_rn, poa) = (
        loaded.engine.cse_id.clone(),
        loaded.engine.cb_rn.clone(),
        loaded.engine.poa.clone(),
    );
    let store = SqliteStore::open(&loaded.data_dir)
        .map_err(|e| ConfigError::new(format!("data_dir {data_dir}: {e}")))?;
    let mut cse = Cse::with_policy(
        loaded.engine,
        store,
        m2msec_core::clock::Clock::system(),
        &loaded.cse_base,
    )
    .map_err(|e| ConfigError::new(e.detail))?;
    cse.set_limits(loaded.storage);
    // An MN-CSE: its registration machine and the forwarding deadline (issue 12).
    let registration = loaded.registrar.as_ref().map(|r| {
        cse.set_registrar_id(&r.cse_id);
        cse.set_forward_timeout(i64::try_from(r.timeout.as_secs()).unwrap_or(30));
        let m = m2msec_cse::registration::Machine::new(m2msec_cse::registration::Params {
            cse_id: own_id.clone(),
            cb_rn: cb_rn.clone(),
            poa: poa.clone(),
            registrar: r.cse_id.clone(),
            backoff_min_secs: 1,
            backoff_max_secs: r.backoff_max_secs,
        });
        match r.check_interval_secs {
            0 => m,
            secs => m.with_check_interval(secs),
        }
    });
    // Credentials administered with `m2msec cse credential` (keys sealed under data_dir/kek).
    let cred_store = m2msec_cse::credentials::CredentialStore::open(&loaded.data_dir)
        .map_err(|e| ConfigError::new(format!("data_dir {data_dir}: {e}")))?;
    // One endpoint (one engine, one credential table) behind both bindings.
    let opts = loaded.server;
    let (endpoint, mut tls) = CseEndpoint::new(
        cse,
        &CseSecurity {
            authority: opts.authority.clone(),
            require_sni: opts.require_sni,
            credentials: opts.credentials.clone(),
            raw_keys: loaded.raw_keys.clone(),
        },
    );
    tls.handshake_timeout = opts.limits.handshake_timeout;
    if let Some(c) = loaded.certificates {
        c.apply(&mut tls);
    }
    // Serve the stored credentials and follow changes: added ones are served, revoked or
    // expired ones refused and their live sessions closed.
    endpoint
        .attach_credential_store(cred_store)
        .map_err(|e| ConfigError::new(format!("credential store: {e}")))?;
    let mut background = vec![
        endpoint.spawn_watcher(endpoint::WATCH_INTERVAL),
        endpoint.spawn_expiry_sweep(endpoint::EXPIRY_SWEEP_INTERVAL),
    ];
    if let Some(source) = loaded.mef {
        endpoint.set_remote_key_source(Arc::new(source));
    }
    // Forwarding (issue 12): an MN-CSE sends what is not hosted here up to its registrar and
    // registers with it (retrying with backoff while it is down) in the background; any CSE
    // sends requests for its registree CSEs down to those it has a credential for.
    let mut up = None;
    let mut registered = None;
    if let (Some(r), Some(machine)) = (loaded.registrar, registration) {
        let mut cfg = m2msec_tls::ClientConfig::psk(r.psk_identity, r.key);
        cfg.handshake_timeout = opts.limits.handshake_timeout;
        let link = Arc::new(
            registrar::CseLink::new(r.addr, cfg)
                .map_err(|e| ConfigError::new(format!("[registrar]: {e}")))?,
        );
        up = Some(link.clone());
        let ep = endpoint.clone();
        let timeout = r.timeout;
        let registrar_id = r.cse_id.to_string();
        let (tx, rx) = tokio::sync::oneshot::channel();
        registered = Some(rx);
        background.push(tokio::spawn(async move {
            registrar::run_registration(ep, link, machine, timeout, move || {
                let _ = tx.send(registrar_id);
            })
            .await;
        }));
    }
    if up.is_some() || !loaded.registrees.is_empty() {
        let down = loaded
            .registrees
            .into_iter()
            .map(|mut l| {
                l.tls.handshake_timeout = opts.limits.handshake_timeout;
                l
            })
            .collect();
        endpoint.set_forwarder(Arc::new(registrar::LinkForwarder::new(
            up,
            down,
            tokio::runtime::Handle::current(),
        )));
    }
    let listen_opts = ListenOptions {
        tls_addr: opts.tls_addr,
        plain_addr: opts.plain_addr,
        coap: loaded.coap_addr.map(|addr| {
            let dtls = m2msec_tls::DtlsOptions {
                idle_timeout: opts.limits.idle_timeout,
                max_sessions: opts.limits.max_connections.max(1),
                max_half_open: loaded.coap_half_open.0,
                max_half_open_per_source: loaded.coap_half_open.1,
                ..m2msec_tls::DtlsOptions::default()
            };
            (addr, dtls)
        }),
        limits: opts.limits,
    };
    let listening = listen(endpoint, &tls, listen_opts).await?;
    Ok(RunningCse {
        listening,
        registered,
        background,
    })
}
