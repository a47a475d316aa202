//! An MN-CSE's link to its registrar CSE (issue 12): the drivers of the sans-IO procedures of
//! `m2msec_cse::registration` (CSE registration, TS-0001 §10.2.2) and `m2msec_cse::routing`
//! (forwarding, TS-0004 §7.3.2.6), over HTTP (TS-0009) in a TLS 1.2 PSK association
//! (TS-0003 §8.2.2.1) whose credential the registrar binds to this CSE's CSE-ID.
//!
//! - [`CseLink`]: one HTTP/1.1 connection to a neighbour CSE, opened on first use and
//!   again after it closes. A request is written at most once: a failure after it may have left
//!   is reported, never retried (so nothing is executed twice); only a connection found closed
//!   *before* sending is replaced.
//! - [`run_registration`]: the registration driver, `poll` → send/sleep/store, forever (it
//!   backs off while the registrar is down, as the machine decides).
//! - [`LinkForwarder`]: the [`crate::endpoint::Forwarder`] the endpoint calls for a request not
//!   hosted here, within the forward's deadline: up to the registrar, or down to a registree
//!   CSE for which a client credential is configured ([`RegistreeLinkConfig`]; the others'
//!   requests get TARGET_NOT_REACHABLE).

use std::sync::Arc;
use std::time::Duration;

use m2msec_cse::engine::Forward;
use m2msec_cse::registration::{Machine, Step};
use m2msec_cse::routing::NextHop;
use m2msec_cse::{RequestPrimitive, ResponsePrimitive, Store};
use m2msec_tls::{ClientConfig, TlsClient};

use m2msec_bindings::client::HttpClient;

use crate::endpoint::{CseEndpoint, Forwarder};

/// Where a neighbour CSE (the registrar, or a registree CSE) listens.
#[derive(Debug, Clone)]
pub struct CseAddress {
    /// Host name or IP address.
    pub host: String,
    /// TLS port.
    pub port: u16,
    /// SNI (and HTTP Host) to send, if not `host`.
    pub sni: Option<String>,
}

/// One HTTP/1.1-over-TLS-PSK connection to a neighbour CSE (module docs).
pub struct CseLink {
    addr: CseAddress,
    tls: TlsClient,
    conn: tokio::sync::Mutex<Option<HttpClient>>,
}

impl std::fmt::Debug for CseLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CseLink")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl CseLink {
    /// A link with this client credential (a PSK the neighbour binds to our CSE-ID).
    pub fn new(addr: CseAddress, cfg: ClientConfig) -> Result<Self, String> {
        let tls = TlsClient::new(cfg).map_err(|e| e.to_string())?;
        Ok(CseLink {
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

/// The registration driver (module docs): runs `m` against the registrar over `link`, storing
/// the registrar's `<remoteCSE>` in the endpoint's engine; `on_registered` runs the first time
/// the registration is done. Returns then, unless the machine checks the registration
/// ([`Machine::with_check_interval`]): it keeps running the checks (and any re-registration)
/// for as long as the task lives. `timeout` bounds each request.
pub async fn run_registration<S: Store + Send + 'static>(
    endpoint: Arc<CseEndpoint<S>>,
    link: Arc<CseLink>,
    mut m: Machine,
    timeout: Duration,
    on_registered: impl FnOnce() + Send,
) {
    let mut on_registered = Some(on_registered);
    // The engine's clock: the machine's times and the engine's agree.
    let clock = endpoint.with_engine(|c| c.clock().clone());
    let now = || clock.now();
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
                if let Some(f) = on_registered.take() {
                    tracing::info!(registrar = %endpoint.registrar_id().unwrap_or_default(), "registered with the registrar CSE");
                    f();
                }
                match m.next_check(now()) {
                    Some(s) => tokio::time::sleep(Duration::from_secs(s)).await,
                    None => return,
                }
            }
            Step::Awaiting => {
                // Not reachable with this driver (each send is awaited); never spin.
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// How this CSE reaches one registree CSE (down the tree): the credential it binds to our
/// CSE-ID, and its address when the configuration gives one (else the first `https://HOST:PORT`
/// of the `pointOfAccess` the registree wrote at registration: only a peer holding the
/// credential can answer there).
#[derive(Debug, Clone)]
pub struct RegistreeLinkConfig {
    /// The registree's CSE-ID stem.
    pub cse_stem: String,
    /// Its address, if configured.
    pub addr: Option<CseAddress>,
    /// Our client credential at that CSE.
    pub tls: ClientConfig,
}

/// Forwards over [`CseLink`]s from the endpoint's worker threads (module docs): up to the
/// registrar, down to the registree CSEs this CSE has a credential for.
#[derive(Debug)]
pub struct LinkForwarder {
    registrar: Option<Arc<CseLink>>,
    registrees: Vec<RegistreeLinkConfig>,
    /// Registree links opened so far.
    open: std::sync::Mutex<Vec<(LinkKey, Arc<CseLink>)>>,
    rt: tokio::runtime::Handle,
}

/// A registree link's key: (CSE-ID stem, host, port).
type LinkKey = (String, String, u16);

/// `https://HOST[:PORT][/…]` → (host, port), through the bindings' one URL parser; other
/// schemes are not ours to use.
fn https_addr(poa: &str) -> Option<(String, u16)> {
    let u = m2msec_bindings::url::ServiceUrl::parse(poa).ok()?;
    (u.scheme == m2msec_bindings::url::Scheme::Https).then_some((u.host, u.port))
}

impl LinkForwarder {
    /// A forwarder whose sends run on `rt`: up over `registrar` (an MN-CSE), down over
    /// links built from `registrees`.
    pub fn new(
        registrar: Option<Arc<CseLink>>,
        registrees: Vec<RegistreeLinkConfig>,
        rt: tokio::runtime::Handle,
    ) -> Self {
        LinkForwarder {
            registrar,
            registrees,
            open: std::sync::Mutex::new(Vec::new()),
            rt,
        }
    }

    fn registree_link(&self, n: &m2msec_cse::routing::Neighbour) -> Result<Arc<CseLink>, String> {
        let cfg = self
            .registrees
            .iter()
            .find(|c| c.cse_stem == n.csi)
            .ok_or_else(|| format!("no credential configured for the registree CSE /{}", n.csi))?;
        let addr = match &cfg.addr {
            Some(a) => a.clone(),
            None => {
                let (host, port) = n.poa.iter().find_map(|p| https_addr(p)).ok_or_else(|| {
                    format!("the registree CSE /{} has no https:// pointOfAccess", n.csi)
                })?;
                CseAddress {
                    host,
                    port,
                    sni: None,
                }
            }
        };
        let key = (n.csi.clone(), addr.host.clone(), addr.port);
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, l)) = open.iter().find(|(k, _)| *k == key) {
            return Ok(l.clone());
        }
        let link = Arc::new(CseLink::new(addr, cfg.tls.clone())?);
        // One link per registree: a new address replaces the old one.
        open.retain(|(k, _)| k.0 != n.csi);
        open.push((key, link.clone()));
        Ok(link)
    }
}

impl Forwarder for LinkForwarder {
    fn forward(&self, f: &Forward) -> Result<ResponsePrimitive, String> {
        let link = match &f.next_hop {
            NextHop::Registrar(_) => self
                .registrar
                .clone()
                .ok_or_else(|| "no registrar link".to_string())?,
            NextHop::Registree(n) => self.registree_link(n)?,
        };
        let timeout = Duration::from_secs(u64::try_from(f.timeout_secs.max(1)).unwrap_or(1));
        // The endpoint's workers are plain threads; blocking inside a runtime would panic.
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err("forwarding must run on a worker thread, not inside the runtime".into());
        }
        self.rt.block_on(link.send(&f.request, timeout))
    }
}

#[cfg(test)]
mod tests {
    use super::https_addr;

    /// A registree's pointOfAccess is used only when it is an `https://` URL the one URL parser
    /// accepts.
    #[test]
    fn only_https_points_of_access_are_used() {
        assert_eq!(
            https_addr("https://127.0.0.1:9443/cb"),
            Some(("127.0.0.1".into(), 9443))
        );
        assert_eq!(https_addr("https://[::1]:9443"), Some(("::1".into(), 9443)));
        assert_eq!(
            https_addr("https://mn.example"),
            Some(("mn.example".into(), 443))
        );
        for bad in [
            "http://127.0.0.1:9443",
            "coaps://127.0.0.1:5684",
            "https://127.0.0.1:0",
            "https://u:p@127.0.0.1:9443",
            "https://::1:9443",
            "",
        ] {
            assert_eq!(https_addr(bad), None, "{bad}");
        }
    }
}
