//! One way to put an [`Endpoint`] on the network, shared by every service's start function, the
//! demo, the tests and the benches: [`listen`] opens the HTTP/TLS listener (with an optional
//! plaintext loopback one) and, when asked, the CoAP/DTLS listener on the same TLS
//! configuration, spawns them on the current tokio runtime and returns a [`Listening`] handle
//! with the bound addresses. Dropping the handle stops the listeners.

use std::net::SocketAddr;
use std::sync::Arc;

use m2msec_tls::{DtlsOptions, ServerConfig};

use crate::{CoapServer, Endpoint, Limits, Listeners, Server, ServerError};

/// Where and how to listen.
#[derive(Debug, Clone)]
pub struct ListenOptions {
    /// HTTP over TLS (port 0 picks a free port).
    pub tls_addr: SocketAddr,
    /// Plaintext HTTP, loopback only.
    pub plain_addr: Option<SocketAddr>,
    /// CoAP over DTLS, with its options.
    pub coap: Option<(SocketAddr, DtlsOptions)>,
    /// Timeouts and limits of every listener.
    pub limits: Limits,
}

impl ListenOptions {
    /// HTTP/TLS only, on `tls_addr`, with default limits.
    pub fn tls(tls_addr: SocketAddr) -> Self {
        ListenOptions {
            tls_addr,
            plain_addr: None,
            coap: None,
            limits: Limits::default(),
        }
    }

    /// HTTP/TLS on a free loopback port, with default limits (tests, the demo).
    pub fn loopback() -> Self {
        Self::tls(SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// Adds CoAP/DTLS on `addr`.
    pub fn with_coap(mut self, addr: SocketAddr, dtls: DtlsOptions) -> Self {
        self.coap = Some((addr, dtls));
        self
    }
}

/// A service on the network.
#[derive(Debug)]
pub struct Listening<E> {
    /// The endpoint behind the listeners.
    pub endpoint: Arc<E>,
    /// TLS listener address (None only if the OS cannot tell the bound address).
    pub tls_addr: Option<SocketAddr>,
    /// Plaintext loopback listener address, if any.
    pub plain_addr: Option<SocketAddr>,
    /// CoAP/DTLS listener address, if any.
    pub coap_addr: Option<SocketAddr>,
    tasks: tokio::task::JoinSet<()>,
}

impl<E> Listening<E> {
    /// Waits until a listener stops (it does not, unless its socket fails).
    pub async fn wait(&mut self) {
        let _ = self.tasks.join_next().await;
    }
}

/// Opens the listeners of `endpoint` with TLS configuration `tls` and serves them.
pub async fn listen<E: Endpoint>(
    endpoint: Arc<E>,
    tls: &ServerConfig,
    opts: ListenOptions,
) -> Result<Listening<E>, ServerError> {
    let server = Server::with_endpoint(
        Listeners {
            tls_addr: opts.tls_addr,
            plain_addr: opts.plain_addr,
            limits: opts.limits,
        },
        tls,
        endpoint.clone(),
    )
    .await?;
    let coap = match opts.coap {
        Some((addr, dtls)) => {
            Some(CoapServer::bind(addr, tls, dtls, opts.limits, endpoint.clone()).await?)
        }
        None => None,
    };
    let tls_addr = server.tls_addr();
    let plain_addr = server.plain_addr();
    let coap_addr = coap.as_ref().map(|c| c.local_addr());
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(server.serve());
    if let Some(c) = coap {
        tasks.spawn(c.serve());
    }
    Ok(Listening {
        endpoint,
        tls_addr,
        plain_addr,
        coap_addr,
        tasks,
    })
}
