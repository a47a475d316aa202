//! An MN-CSE's link to its registrar CSE (issue 12): the drivers of the sans-IO procedures of
//! `m2msec_cse::registration` (CSE registration, TS-0001 §10.2.2) and `m2msec_cse::routing`
//! (forwarding, TS-0004 §7.3.2.6), over HTTP (TS-0009) in a TLS 1.2 PSK association
//! (TS-0003 §8.2.2.1) whose credential the registrar binds to this CSE's CSE-ID.
//!
//! - [`RegistrarLink`]: one HTTP/1.1 connection to the registrar, opened on first use and
//!   again after it closes. A request is written at most once: a failure after it may have left
//!   is reported, never retried (so nothing is executed twice); only a connection found closed
//!   *before* sending is replaced.
//! - [`run_registration`]: the registration driver, `poll` → send/sleep/store, forever (it
//!   backs off while the registrar is down, as the machine decides).
//! - [`LinkForwarder`]: the [`crate::service::Forwarder`] the endpoint calls for a request not
//!   hosted here: up to the registrar, within the forward's deadline. Forwarding down to
//!   registree CSEs needs a client credential for each of them and is not wired yet (its
//!   requests get TARGET_NOT_REACHABLE).

use std::sync::Arc;
use std::time::Duration;

use m2msec_cse::engine::Forward;
use m2msec_cse::registration::{Machine, Step};
use m2msec_cse::routing::NextHop;
use m2msec_cse::{RequestPrimitive, ResponsePrimitive, Store};
use m2msec_tls::{ClientConfig, TlsClient};

use crate::client::HttpClient;
use crate::service::{CseEndpoint, Forwarder};

/// Where the registrar is and how to associate with it.
#[derive(Debug, Clone)]
pub struct RegistrarAddress {
    /// Host name or IP address.
    pub host: String,
    /// TLS port.
    pub port: u16,
    /// SNI (and HTTP Host) to send, if not `host`.
    pub sni: Option<String>,
}

/// One HTTP/1.1-over-TLS-PSK connection to the registrar (module docs).
pub struct RegistrarLink {
    addr: RegistrarAddress,
    tls: TlsClient,
    conn: tokio::sync::Mutex<Option<HttpClient>>,
}

impl std::fmt::Debug for RegistrarLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistrarLink")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl RegistrarLink {
    /// A link with this client credential (a PSK the registrar binds to our CSE-ID).
    pub fn new(addr: RegistrarAddress, cfg: ClientConfig) -> Result<Self, String> {
        let tls = TlsClient::new(cfg).map_err(|e| e.to_string())?;
        Ok(RegistrarLink {
            addr,
            tls,
            conn: tokio::sync::Mutex::new(None),
        })
    }

    /// Sends one request and reads its response, within `timeout`. One request at a time on
    /// the connection; concurrent callers wait their turn (inside their own timeout).
    pub async fn send(
        &self,
        req: &RequestPrimitive,
        timeout: Duration,
    ) -> Result<ResponsePrimitive, String> {
        let fut = async {
            let mut conn = self.conn.lock().await;
            if conn.as_ref().is_some_and(HttpClient::is_closed) {
                *conn = None;
            }
            if conn.is_none() {
                let host = self.addr.sni.as_deref().unwrap_or(&self.addr.host);
                let ch = self
                    .tls
                    .connect(&self.addr.host, self.addr.port, self.addr.sni.as_deref())
                    .await
                    .map_err(|e| {
                        format!(
                            "TLS-PSK handshake with {}:{}: {e}",
                            self.addr.host, self.addr.port
                        )
                    })?;
                *conn = Some(HttpClient::new(ch, host).await.map_err(|e| e.to_string())?);
            }
            let Some(c) = conn.as_mut() else {
                return Err("no connection".to_string());
            };
            let r = c.send(req).await;
            if r.is_err() {
                // Whatever state the connection is in, the next request gets a new one.
                *conn = None;
            }
            r.map_err(|e| e.to_string())
        };
        match tokio::time::timeout(timeout, fut).await {
            Ok(r) => r,
            Err(_) => {
                // The connection may still carry the abandoned exchange: drop it.
                if let Ok(mut c) = self.conn.try_lock() {
                    *c = None;
                }
                Err(format!("no answer within {timeout:?}"))
            }
        }
    }
}

/// Unix seconds now.
fn now() -> i64 {
    m2msec_cse::engine::system_now()
}

/// The registration driver (module docs): runs `m` against the registrar over `link`, storing
/// the registrar's `<remoteCSE>` in the endpoint's engine, until registered. `timeout` bounds
/// each request.
pub async fn run_registration<S: Store + Send + 'static>(
    endpoint: Arc<CseEndpoint<S>>,
    link: Arc<RegistrarLink>,
    mut m: Machine,
    timeout: Duration,
) {
    loop {
        match m.poll(now()) {
            Step::Send(req) => match link.send(&req, timeout).await {
                Ok(r) => {
                    m.handle_response(r, now());
                }
                Err(e) => m.transport_failed(&e, now()),
            },
            Step::Store(rec) => {
                let ep = endpoint.clone();
                let res = tokio::task::spawn_blocking(move || {
                    ep.with_engine(|cse| cse.set_registrar(&rec))
                })
                .await;
                let res = match res {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) => Err(e.detail),
                    Err(e) => Err(e.to_string()),
                };
                m.stored(res, now());
            }
            Step::Sleep(s) => {
                if let Some(e) = m.last_error() {
                    tracing::warn!(error = %e, retry_in_secs = s, "CSE registration failed");
                }
                tokio::time::sleep(Duration::from_secs(s)).await;
            }
            Step::Registered => {
                tracing::info!(registrar = %endpoint.registrar_id().unwrap_or_default(), "registered with the registrar CSE");
                return;
            }
            Step::Awaiting => {
                // Not reachable with this driver (each send is awaited); never spin.
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Forwards over a [`RegistrarLink`] from the endpoint's worker threads (module docs).
#[derive(Debug)]
pub struct LinkForwarder {
    link: Arc<RegistrarLink>,
    rt: tokio::runtime::Handle,
}

impl LinkForwarder {
    /// A forwarder whose sends run on `rt`.
    pub fn new(link: Arc<RegistrarLink>, rt: tokio::runtime::Handle) -> Self {
        LinkForwarder { link, rt }
    }
}

impl Forwarder for LinkForwarder {
    fn forward(&self, f: &Forward) -> Result<ResponsePrimitive, String> {
        match &f.next_hop {
            NextHop::Registrar(_) => {
                let left = f.deadline.saturating_sub(now()).max(1);
                let timeout = Duration::from_secs(u64::try_from(left).unwrap_or(1));
                self.rt.block_on(self.link.send(&f.request, timeout))
            }
            NextHop::Registree(n) => Err(format!(
                "forwarding to the registree CSE /{} is not supported yet",
                n.csi
            )),
        }
    }
}
