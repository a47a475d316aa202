//! The one start function of each role this crate serves, shared by `m2msec mef serve`,
//! `m2msec pkg serve`, the demo and the tests: [`start_mef`] (the MEF with its PKG, HTTP/TLS
//! and optionally CoAP/DTLS) and [`start_pkg`] (the PKG service of seed 001 for remote MEFs).
//! Each returns a handle with the bound addresses; dropping it stops the listeners.

use std::net::SocketAddr;
use std::sync::Arc;

use m2msec_bindings::config::ConfigError;
use m2msec_bindings::{listen, Limits, ListenOptions, Listening, ServerError};
use m2msec_core::ids::Fqdn;
use m2msec_tls::{DtlsOptions, PskIdentity};

use crate::config::{open_store, MefServiceConfig, PkgFile};
use crate::pkg_service::{PkgClient, PkgEndpoint};
use crate::{LocalPkg, MefEndpoint, MefStore};

/// Why a service did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration, the store or a linked service cannot be used.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A listener could not be opened.
    #[error(transparent)]
    Listen(#[from] ServerError),
}

/// A started service (the bindings' [`Listening`] handle): addresses, endpoint, and the
/// listeners, stopped when it is dropped.
pub type Running<E> = Listening<E>;

/// Starts the MEF from a validated configuration on the current tokio runtime: its PKG (the
/// in-process KMS from the store, or the `[pkg]` service), the endpoint over the store, the
/// certificate association (`[tls]`, TS-0003 §8.3.2.2), and the HTTP/TLS and CoAP/DTLS
/// listeners.
pub async fn start_mef(l: MefServiceConfig) -> Result<Running<MefEndpoint>, StartError> {
    let pkg: Arc<dyn crate::Pkg> = match &l.pkg {
        Some(p) => {
            // The first call blocks on the network: keep it off the reactor.
            let remote = tokio::task::block_in_place(|| p.connect())?;
            Arc::new(remote)
        }
        None => {
            let mut store = open_store(&l)?;
            Arc::new(
                LocalPkg::from_store(&mut store)
                    .map_err(|e| ConfigError::new(format!("PKG: {e}")))?,
            )
        }
    };
    let data_dir = l.data_dir.display().to_string();
    let (ep, mut tls) = MefEndpoint::new(l.mef, &l.data_dir, pkg, l.targets)
        .map_err(|e| ConfigError::new(format!("data_dir {data_dir}: {e}")))?;
    let limits = Limits::default();
    tls.handshake_timeout = limits.handshake_timeout;
    if let Some(c) = l.certificates {
        // TS-0003 §8.3.2.2 with the §10.2.3 suites (BRIEF A28): devices whose verified
        // certificate names a device provisioned as `cert:<identity>`.
        c.apply(&mut tls);
    }
    let mut opts = ListenOptions::tls(l.addr);
    opts.limits = limits;
    if let Some(addr) = l.coap_addr {
        opts = opts.with_coap(
            addr,
            DtlsOptions {
                max_half_open: l.coap_half_open.0,
                max_half_open_per_source: l.coap_half_open.1,
                ..DtlsOptions::default()
            },
        );
    }
    Ok(listen(ep, &tls, opts).await?)
}

/// The validated configuration of the PKG service.
#[derive(Debug)]
pub struct PkgServiceConfig {
    /// The PKG's FQDN (SNI).
    pub fqdn: Fqdn,
    /// Store directory (the KSAK rests sealed there).
    pub data_dir: std::path::PathBuf,
    /// Listener address.
    pub addr: SocketAddr,
    /// The MEFs it serves.
    pub clients: Vec<PkgClient>,
}

impl PkgFile {
    /// Validates the file: FQDN, at least one client, each client's key file.
    pub fn validate(self) -> Result<PkgServiceConfig, ConfigError> {
        let fqdn: Fqdn = self
            .fqdn
            .parse()
            .map_err(|e| ConfigError::new(format!("fqdn: {e}")))?;
        if self.client.is_empty() {
            return Err(ConfigError::new("no [[client]] MEF configured"));
        }
        let mut clients = Vec::new();
        for e in &self.client {
            clients.push(PkgClient {
                psk_identity: PskIdentity::new(&e.identity)
                    .map_err(|err| ConfigError::new(format!("client {:?}: {err}", e.identity)))?,
                key: m2msec_bindings::config::read_psk_file(
                    &e.key_file,
                    &format!("client {}", e.identity),
                )?,
            });
        }
        Ok(PkgServiceConfig {
            fqdn,
            data_dir: self.data_dir,
            addr: SocketAddr::new(self.bind, self.port),
            clients,
        })
    }
}

/// Starts the PKG service on the current tokio runtime: the KMS from the store (created and
/// sealed on first use) behind an HTTP/TLS-PSK listener for its client MEFs.
pub async fn start_pkg(c: PkgServiceConfig) -> Result<Running<PkgEndpoint>, StartError> {
    let pkg = {
        let mut s = MefStore::open(&c.data_dir)
            .map_err(|e| ConfigError::new(format!("data_dir {}: {e}", c.data_dir.display())))?;
        LocalPkg::from_store(&mut s).map_err(|e| ConfigError::new(format!("KMS: {e}")))?
    };
    let (ep, mut tls) = PkgEndpoint::new(Arc::new(pkg), c.fqdn.clone(), &c.clients);
    let limits = Limits::default();
    tls.handshake_timeout = limits.handshake_timeout;
    let mut opts = ListenOptions::tls(c.addr);
    opts.limits = limits;
    Ok(listen(ep, &tls, opts).await?)
}
