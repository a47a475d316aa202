//! The HTTP listener of any [`Endpoint`] (TS-0009 over TLS 1.2, TS-0003 §8.2.2): a tokio accept
//! loop per listener, one hyper HTTP/1.1 connection per security association.
//!
//! Each TLS connection's authenticated peer is handed to [`Endpoint::open`], which turns it into
//! the session every request on the connection carries (for the registrar CSE: the engine's
//! security context, TS-0003 §7.2.1). The optional plaintext listener exists only on a loopback
//! address and opens sessions with no association.
//!
//! [`Endpoint::handle`] is synchronous: each request runs on the listener's worker threads
//! ([`crate::dispatch`]), so a slow store never stalls the reactor.
//!
//! Defences against slow or hostile clients: a TLS handshake deadline, a header read timeout
//! (hyper), an idle timeout (no bytes in either direction), a body deadline, a body size limit
//! checked on `Content-Length` and while reading, and a cap on concurrent connections. Every
//! failure is a oneM2M error response or a closed connection.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::http::header::{CONNECTION, CONTENT_LENGTH};
use hyper::http::{HeaderValue, Request, Response};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use m2msec_proto::{CseError, ResponsePrimitive, Rsc};
use m2msec_tls::{ServerConfig, TlsServer};

use crate::endpoint::{AssociationInfo, CloseSignal, Endpoint, Opened};

use crate::http::{request_from_http, response_to_http, Rejection, X_M2M_RI};

/// Errors starting the service.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A listener could not be bound.
    #[error("cannot bind {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The plaintext listener was asked for a non-loopback address.
    #[error("the plaintext HTTP listener may only bind a loopback address, not {0}")]
    NotLoopback(SocketAddr),
    /// The TLS configuration was refused.
    #[error("TLS configuration: {0}")]
    Tls(#[from] m2msec_tls::Error),
}

/// Timeouts and limits of the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest request body, in bytes.
    pub max_body: usize,
    /// TLS handshake deadline.
    pub handshake_timeout: Duration,
    /// Deadline for a request's header section once it has started (hyper).
    pub header_timeout: Duration,
    /// Deadline for reading a request body.
    pub body_timeout: Duration,
    /// A connection with no bytes in either direction for this long is closed.
    pub idle_timeout: Duration,
    /// Most concurrent connections per listener; further ones are closed at once.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body: crate::http::DEFAULT_MAX_BODY,
            handshake_timeout: Duration::from_secs(10),
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 1024,
        }
    }
}

/// Listener addresses and limits of any endpoint's HTTP service.
#[derive(Debug, Clone)]
pub struct Listeners {
    /// TLS listener address (port 0 picks a free port).
    pub tls_addr: SocketAddr,
    /// Plaintext HTTP listener, loopback only (None: no plaintext listener).
    pub plain_addr: Option<SocketAddr>,
    /// Timeouts and limits.
    pub limits: Limits,
}

struct State<E: Endpoint> {
    endpoint: Arc<E>,
    responder: String,
    limits: Limits,
    dispatch: crate::dispatch::Dispatcher,
}

/// The bound service: listeners are open, addresses known; [`Server::serve`] runs it.
pub struct Server<E: Endpoint> {
    tls_listener: TcpListener,
    plain_listener: Option<TcpListener>,
    tls: TlsServer,
    state: Arc<State<E>>,
}

impl<E: Endpoint> std::fmt::Debug for Server<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("tls", &self.tls_listener.local_addr().ok())
            .field("plain", &self.plain_addr())
            .finish_non_exhaustive()
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, ServerError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind { addr, source })
}

impl<E: Endpoint> Server<E> {
    /// Opens the listeners for `endpoint`, with TLS configuration `tls`.
    pub async fn with_endpoint(
        listeners: Listeners,
        tls: &ServerConfig,
        endpoint: Arc<E>,
    ) -> Result<Self, ServerError> {
        if let Some(p) = listeners.plain_addr {
            if !p.ip().is_loopback() {
                return Err(ServerError::NotLoopback(p));
            }
        }
        let tls = TlsServer::new(tls)?;
        let tls_listener = bind(listeners.tls_addr).await?;
        let plain_listener = match listeners.plain_addr {
            Some(a) => Some(bind(a).await?),
            None => None,
        };
        Ok(Server {
            tls_listener,
            plain_listener,
            tls,
            state: Arc::new(State {
                responder: endpoint.responder_id(),
                dispatch: crate::dispatch::Dispatcher::new("m2msec-endpoint", endpoint.workers()),
                endpoint,
                limits: listeners.limits,
            }),
        })
    }

    /// The bound TLS address.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls_listener.local_addr().ok()
    }

    /// The bound plaintext address, if that listener is enabled.
    pub fn plain_addr(&self) -> Option<SocketAddr> {
        self.plain_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
    }

    /// Serves until the process ends.
    pub async fn serve(self) {
        let Server {
            tls_listener,
            plain_listener,
            tls,
            state,
        } = self;
        let plain = plain_listener.map(|l| {
            let state = state.clone();
            tokio::spawn(async move {
                accept_loop(l, state, |tcp, state| async move {
                    if let Some(o) = state.endpoint.open(None) {
                        serve_connection(tcp, o, state).await;
                    }
                })
                .await
            })
        });
        accept_loop(tls_listener, state, move |tcp, state| {
            let tls = tls.clone();
            async move {
                let peer = tcp
                    .peer_addr()
                    .map_or_else(|_| "unknown".to_string(), |a| a.to_string());
                let ch = match tls.accept(tcp).await {
                    Ok(ch) => ch,
                    Err(e) => {
                        crate::audit::handshake_failed(&peer, "tls", &e);
                        return;
                    }
                };
                let opened = {
                    let exporter = |label| ch.export(label).ok();
                    let info = AssociationInfo {
                        peer: ch.peer(),
                        exporter: &exporter,
                    };
                    state.endpoint.open(Some(&info))
                };
                let Some(opened) = opened else {
                    return;
                };
                tracing::debug!(peer = %ch.peer_addr(), psk_identity = ?ch.peer().psk_identity, "security association established");
                serve_connection(ch, opened, state).await;
            }
        })
        .await;
        if let Some(p) = plain {
            p.abort();
        }
    }
}

async fn accept_loop<E, F, Fut>(listener: TcpListener, state: Arc<State<E>>, on_conn: F)
where
    E: Endpoint,
    F: Fn(TcpStream, Arc<State<E>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let permits = Arc::new(Semaphore::new(state.limits.max_connections.max(1)));
    loop {
        let (tcp, from) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::debug!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let permit = match permits.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                tracing::warn!(peer = %from, "too many connections: closing");
                continue;
            }
        };
        let fut = on_conn(tcp, state.clone());
        tokio::spawn(async move {
            fut.await;
            drop(permit);
        });
    }
}

/// An I/O stream that records when bytes last moved, for the idle timeout.
struct Watched<I> {
    inner: I,
    start: Instant,
    last: Arc<AtomicU64>,
    /// When the bytes of a request head started arriving (ms since `start`, plus 1), or 0 while
    /// no request head is pending. Set by the first read after the previous request's head was
    /// complete; cleared by the service when a head is complete. Our own header timer, because
    /// hyper's `header_read_timeout` also runs while a keep-alive connection is idle between
    /// requests, which closed idle connections after the header timeout instead of the idle
    /// timeout (issue 9 item 12).
    head_since: Arc<AtomicU64>,
}

impl<I> Watched<I> {
    fn touch(&self, read: bool) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.store(ms, Ordering::Relaxed);
        if read {
            let _ = self.head_since.compare_exchange(
                0,
                ms.saturating_add(1),
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Watched<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.touch(true);
        }
        r
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Watched<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.touch(false);
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Serves HTTP/1.1 on one connection until the client closes it, it errs, or it idles out.
async fn serve_connection<I, E>(io: I, opened: Opened<E::Session>, state: Arc<State<E>>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    E: Endpoint,
{
    let limits = state.limits;
    let close = opened.close;
    let ctx = Arc::new(opened.session);
    // Set by a response that ends the session (the MEF's end of enrolment exchange).
    let ended = CloseSignal::new();
    let ended_svc = ended.clone();
    let last = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    // The first request's head is due from the moment the connection is served.
    let head_since = Arc::new(AtomicU64::new(1));
    let io = Watched {
        inner: io,
        start,
        last: last.clone(),
        head_since: head_since.clone(),
    };
    let head_done = head_since.clone();
    let svc = service_fn(move |req: Request<Incoming>| {
        head_done.store(0, Ordering::Relaxed);
        let ctx = ctx.clone();
        let state = state.clone();
        let ended = ended_svc.clone();
        let head_done = head_done.clone();
        async move {
            let resp = handle(req, ctx, state, ended).await;
            // Body bytes read meanwhile were not a new request head.
            head_done.store(0, Ordering::Relaxed);
            Ok::<_, Infallible>(resp)
        }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        .keep_alive(true)
        .max_buf_size(64 * 1024);
    let header_ms = u64::try_from(limits.header_timeout.as_millis()).unwrap_or(u64::MAX);
    let conn = builder.serve_connection(TokioIo::new(io), svc);
    tokio::pin!(conn);
    loop {
        let idle_ms = u64::try_from(limits.idle_timeout.as_millis()).unwrap_or(u64::MAX);
        let idle_at = last.load(Ordering::Relaxed).saturating_add(idle_ms);
        // A pending request head must be complete `header_timeout` after its first byte.
        let head_at = match head_since.load(Ordering::Relaxed) {
            0 => u64::MAX,
            since => since.saturating_sub(1).saturating_add(header_ms),
        };
        let deadline_ms = idle_at.min(head_at);
        let deadline = start + Duration::from_millis(deadline_ms.min(u64::MAX / 4));
        tokio::select! {
            r = &mut conn => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "HTTP connection ended with an error");
                }
                return;
            }
            _ = close.cancelled() => {
                tracing::info!("session closed by the endpoint (credential revoked)");
                return;
            }
            _ = ended.cancelled() => {
                // Let hyper flush the response carrying `Connection: close`, then stop.
                conn.as_mut().graceful_shutdown();
                let _ = tokio::time::timeout(limits.body_timeout, &mut conn).await;
                return;
            }
            _ = tokio::time::sleep_until(deadline.into()) => {
                let now_ms = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
                if now_ms >= last.load(Ordering::Relaxed).saturating_add(idle_ms) {
                    tracing::debug!("idle timeout: closing connection");
                    return;
                }
                let since = head_since.load(Ordering::Relaxed);
                if since != 0 && now_ms >= since.saturating_sub(1).saturating_add(header_ms) {
                    tracing::debug!("request header timeout: closing connection");
                    return;
                }
            }
        }
    }
}

fn reply(resp: &ResponsePrimitive, close: bool) -> Response<Full<Bytes>> {
    let mut r = response_to_http(resp).map(Full::new);
    if close {
        r.headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    r
}

fn reject(rsc: Rsc, rqi: &str, cse_id: &str, detail: &str, close: bool) -> Response<Full<Bytes>> {
    let rej = Rejection {
        error: CseError::new(rsc, detail),
        rqi: rqi.to_string(),
    };
    reply(&rej.into_response(Some(cse_id)), close)
}

/// One HTTP request: bounded body read, TS-0009 mapping, engine, TS-0009 mapping back.
async fn handle<E: Endpoint>(
    req: Request<Incoming>,
    ctx: Arc<E::Session>,
    state: Arc<State<E>>,
    ended: CloseSignal,
) -> Response<Full<Bytes>> {
    let limits = state.limits;
    let (parts, body) = req.into_parts();
    let rqi = parts
        .headers
        .get(X_M2M_RI)
        .and_then(|v| v.to_str().ok())
        .filter(|s| s.len() <= m2msec_proto::primitive::MAX_RQI_LEN)
        .unwrap_or_default()
        .to_string();
    let cse_id = state.responder.as_str();
    let too_large = format!("message body larger than {} bytes", limits.max_body);
    let declared = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.max_body as u64) {
        return reject(Rsc::BadRequest, &rqi, cse_id, &too_large, true);
    }
    let body = match tokio::time::timeout(
        limits.body_timeout,
        Limited::new(body, limits.max_body).collect(),
    )
    .await
    {
        Err(_) => {
            return reject(
                Rsc::RequestTimeout,
                &rqi,
                cse_id,
                "message body not received in time",
                true,
            )
        }
        Ok(Err(e)) => {
            let detail = if e.is::<http_body_util::LengthLimitError>() {
                too_large.as_str()
            } else {
                "message body could not be read"
            };
            return reject(Rsc::BadRequest, &rqi, cse_id, detail, true);
        }
        Ok(Ok(c)) => c.to_bytes(),
    };
    let target = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let prim = match request_from_http(
        &parts.method,
        target,
        &parts.headers,
        &body,
        limits.max_body,
    ) {
        Ok(p) => p,
        Err(rej) => return reply(&rej.into_response(Some(cse_id)), false),
    };
    let st = state.clone();
    let done = state
        .dispatch
        .run(move || st.endpoint.handle(&ctx, prim))
        .await;
    match done {
        Some(h) => {
            if h.close {
                ended.cancel();
            }
            reply(&h.response, h.close)
        }
        None => {
            tracing::error!("endpoint request failed (worker panicked or stopped)");
            reject(
                Rsc::InternalServerError,
                &rqi,
                cse_id,
                "internal error",
                true,
            )
        }
    }
}
