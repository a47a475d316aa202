//! DTLS 1.2 over UDP on tokio (TS-0003 §10.2.2, §10.2.3; RFC 6347).
//!
//! OpenSSL runs over an in-memory datagram queue ([`DgramBuf`]); this module moves datagrams
//! between that queue and the socket and drives the DTLS retransmission timer
//! (`DTLSv1_get_timeout` / `DTLSv1_handle_timeout`), so a lost flight is resent instead of
//! hanging the handshake.
//!
//! [`DtlsServer`] serves many peers on one UDP port. One task owns the socket and demultiplexes
//! datagrams by peer address:
//! * a datagram from a known peer goes to that session's bounded queue;
//! * a ClientHello from an unknown address is answered statelessly with a HelloVerifyRequest
//!   (`DTLSv1_listen`, cookie = HMAC-SHA-256 over the address with a per-server secret), so
//!   spoofed ClientHellos cost no memory; only a ClientHello that echoes a valid cookie creates
//!   a session;
//! * at most `max_half_open` handshakes run at once and at most `max_sessions` sessions exist;
//!   anything beyond is dropped (and counted in [`DtlsStats`]);
//! * a session that receives nothing for `idle_timeout` is expired.
//!
//! A server application should keep calling [`DtlsSession::recv`] on its sessions: that is
//! also what answers a client that retransmits its last handshake flight because the server's
//! final flight was lost (RFC 6347 §4.2.4).
//!
//! Memory of an idle established session (issue 3 item 10, measured by the `handshake` bench
//! with 10,000 sessions each waiting in `recv`: about 62 KiB): after the handshake the session
//! frees OpenSSL's record buffers and the previous epoch's record queue, and a waiting `recv`
//! holds no buffer. What remains is mostly OpenSSL's own DTLS state that it keeps for
//! retransmissions and offers no API to free: the handshake message buffer (~21 KiB), the
//! next-epoch record queue (~15 KiB), the last flight with the previous epoch's write record
//! layer (~12 KiB), and the connection and record-layer structures.

use std::collections::{HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use openssl::ssl::{ErrorCode, Ssl, SslContext, SslRef, SslStream};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::cert::ExpectedName;
use crate::config::{sni_for_host, ClientConfig, ServerConfig};
use crate::context::{self, CookieSecret, Transport};
use crate::error::{self, Error, Result};
use crate::exporter::{self, ExportedKeyingMaterial, ExporterLabel};
use crate::ffi::{self, ListenOutcome, TimerOutcome};
use crate::peer::{BoundIdentity, Peer, Protocol, Role};

/// Largest datagram we read (a full DTLS record of 2^14 bytes plus expansion fits).
const MAX_DATAGRAM: usize = 18 * 1024;

/// DTLS tuning for clients and servers.
#[derive(Clone, Debug)]
pub struct DtlsOptions {
    /// Largest datagram (UDP payload) OpenSSL may send; handshake messages are fragmented to it.
    pub mtu: u32,
    /// Server: answer ClientHellos with a stateless HelloVerifyRequest first (RFC 6347 §4.2.1).
    pub cookie_exchange: bool,
    /// Server: bound on handshakes in progress; further ClientHellos are dropped.
    pub max_half_open: usize,
    /// Server: bound on sessions (half-open and established) on the port.
    pub max_sessions: usize,
    /// Server: a session with no inbound datagram for this long is expired. Client and server:
    /// `recv` gives up after this long.
    pub idle_timeout: Duration,
    /// Inbound datagrams queued per session before further ones are dropped.
    pub queue_len: usize,
}

impl Default for DtlsOptions {
    fn default() -> Self {
        DtlsOptions {
            mtu: 1200,
            cookie_exchange: true,
            max_half_open: 256,
            max_sessions: 16_384,
            idle_timeout: Duration::from_secs(300),
            queue_len: 64,
        }
    }
}

/// In-memory datagram transport under OpenSSL: one `read` = one datagram, one `write` = one
/// datagram.
#[derive(Default)]
pub(crate) struct DgramBuf {
    inbound: VecDeque<Vec<u8>>,
    outbound: Vec<Vec<u8>>,
}

impl Read for DgramBuf {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inbound.pop_front() {
            Some(d) => {
                // A datagram larger than OpenSSL's buffer is truncated, like a UDP socket does.
                let n = d.len().min(buf.len());
                buf[..n].copy_from_slice(&d[..n]);
                Ok(n)
            }
            None => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
}

impl Write for DgramBuf {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.outbound.push(buf.to_vec());
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Where a session's datagrams come from and go to.
enum Link {
    /// A client's connected socket.
    Client { sock: UdpSocket },
    /// A server session fed by the demultiplexer.
    Server {
        sock: Arc<UdpSocket>,
        rx: mpsc::Receiver<Vec<u8>>,
    },
}

impl Link {
    async fn recv(&mut self) -> Result<Vec<u8>> {
        match self {
            Link::Client { sock } => loop {
                // No buffer is held while waiting: an idle session costs no receive buffer.
                sock.readable().await?;
                let mut buf = vec![0u8; MAX_DATAGRAM];
                match sock.try_recv(&mut buf) {
                    Ok(n) => {
                        buf.truncate(n);
                        return Ok(buf);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    Err(e) => return Err(e.into()),
                }
            },
            Link::Server { rx, .. } => rx.recv().await.ok_or(Error::Closed),
        }
    }

    async fn send(&self, peer: SocketAddr, d: &[u8]) -> Result<()> {
        match self {
            Link::Client { sock, .. } => sock.send(d).await?,
            Link::Server { sock, .. } => sock.send_to(d, peer).await?,
        };
        Ok(())
    }
}

async fn flush(stream: &mut SslStream<DgramBuf>, link: &Link, peer: SocketAddr) -> Result<()> {
    let out = std::mem::take(&mut stream.get_mut().outbound);
    for d in out {
        link.send(peer, &d).await?;
    }
    Ok(())
}

/// Wait for one datagram until `until`, or until the DTLS timer fires (then run it).
/// Returns Ok(true) when a datagram was queued, Ok(false) when the timer or deadline fired.
async fn wait_input(
    stream: &mut SslStream<DgramBuf>,
    link: &mut Link,
    until: Instant,
) -> Result<bool> {
    let timer = ffi::dtls_get_timeout(stream.ssl()).map(|d| Instant::now() + d);
    let wake = match timer {
        Some(t) if t < until => t,
        _ => until,
    };
    match tokio::time::timeout_at(wake, link.recv()).await {
        Ok(Ok(d)) => {
            stream.get_mut().inbound.push_back(d);
            Ok(true)
        }
        Ok(Err(e)) => Err(e),
        Err(_) => {
            if timer.is_some_and(|t| t <= Instant::now())
                && ffi::dtls_handle_timeout(stream.ssl()) == TimerOutcome::Failed
            {
                return Err(Error::RetransmitLimit);
            }
            Ok(false)
        }
    }
}

/// Free what an established session does not need while idle. A read attempt lets OpenSSL drop
/// the previous epoch's record queue (a ~15 KiB datagram buffer it only frees on the next read
/// after the epoch change); a peek never consumes application data, which stays for `recv`.
/// Then the record-layer buffers are freed (they are reallocated on the next read or write).
fn release_idle_state(stream: &mut SslStream<DgramBuf>) {
    let mut probe = [0u8; 1];
    let _ = stream.ssl_peek(&mut probe);
    ffi::free_buffers(stream.ssl());
}

async fn drive_handshake(
    stream: &mut SslStream<DgramBuf>,
    link: &mut Link,
    peer: SocketAddr,
    timeout: Duration,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let r = stream.do_handshake();
        flush(stream, link, peer).await?;
        match r {
            Ok(()) => {
                release_idle_state(stream);
                flush(stream, link, peer).await?;
                return Ok(());
            }
            Err(e) if e.code() == ErrorCode::WANT_READ => {
                if Instant::now() >= deadline {
                    return Err(Error::HandshakeTimeout(timeout));
                }
                wait_input(stream, link, deadline).await?;
            }
            Err(e) => return Err(error::handshake_error(&e, stream.ssl())),
        }
    }
}

/// A DTLS 1.2 client for one credential.
#[derive(Clone)]
pub struct DtlsClient {
    ctx: SslContext,
    cfg: ClientConfig,
    opts: DtlsOptions,
}

impl DtlsClient {
    /// Build the client context.
    pub fn new(cfg: ClientConfig, opts: DtlsOptions) -> Result<Self> {
        let ctx = context::client_context(Transport::Dtls, &cfg)?;
        Ok(DtlsClient { ctx, cfg, opts })
    }

    /// Connect to `host:port` and run the handshake. SNI is `sni` if given, else `host` when it
    /// is a name (an IP address is never sent as SNI).
    pub async fn connect(&self, host: &str, port: u16, sni: Option<&str>) -> Result<DtlsSession> {
        let addr = tokio::net::lookup_host((host, port))
            .await?
            .next()
            .ok_or_else(|| Error::Config(format!("{host}: no address")))?;
        let sni = match sni {
            Some(s) => sni_for_host(s),
            None => sni_for_host(host),
        };
        self.connect_addr(addr, sni.as_deref()).await
    }

    /// Connect to `addr` with the given SNI and run the handshake.
    pub async fn connect_addr(&self, addr: SocketAddr, sni: Option<&str>) -> Result<DtlsSession> {
        let local: SocketAddr = if addr.is_ipv4() {
            (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let sock = UdpSocket::bind(local).await?;
        sock.connect(addr).await?;
        let mut ssl = Ssl::new(&self.ctx)?;
        ssl.set_connect_state();
        ssl.set_mtu(self.opts.mtu)?;
        if let Some(name) = sni {
            ssl.set_hostname(name)?;
        }
        let mut stream = SslStream::new(ssl, DgramBuf::default())?;
        let mut link = Link::Client { sock };
        drive_handshake(&mut stream, &mut link, addr, self.cfg.handshake_timeout).await?;
        let bound = self.cfg.peer_id.clone().map(BoundIdentity::Configured);
        let mut peer = Peer::from_ssl(
            stream.ssl(),
            addr,
            Role::Client,
            Protocol::Dtls12,
            self.cfg.credential.psk_identity().cloned(),
            bound,
            crate::tls::expected_names(&self.cfg),
        );
        peer.sni = sni.map(str::to_ascii_lowercase);
        Ok(DtlsSession {
            stream,
            link,
            peer,
            idle_timeout: self.opts.idle_timeout,
        })
    }
}

/// An established DTLS 1.2 security association.
pub struct DtlsSession {
    stream: SslStream<DgramBuf>,
    link: Link,
    peer: Peer,
    idle_timeout: Duration,
}

impl DtlsSession {
    /// The authenticated peer.
    pub fn peer(&self) -> &Peer {
        &self.peer
    }

    /// RFC 5705 export with a oneM2M label, 48 bytes, no context.
    pub fn export(&self, label: ExporterLabel) -> Result<ExportedKeyingMaterial> {
        exporter::export(self.stream.ssl(), label)
    }

    /// RFC 5705 export with any label (e.g. a project-defined one), 48 bytes, no context.
    pub fn export_with_label(&self, label: &str) -> Result<ExportedKeyingMaterial> {
        exporter::export_with_label(self.stream.ssl(), label)
    }

    /// The underlying OpenSSL connection (read-only).
    pub fn ssl(&self) -> &SslRef {
        self.stream.ssl()
    }

    /// Send one application datagram.
    pub async fn send(&mut self, data: &[u8]) -> Result<()> {
        let r = self.stream.ssl_write(data);
        flush(&mut self.stream, &self.link, self.peer.addr).await?;
        match r {
            Ok(_) => Ok(()),
            Err(e) if e.code() == ErrorCode::ZERO_RETURN => Err(Error::Closed),
            Err(e) => Err(Error::Tls(error::reason(&e))),
        }
    }

    /// Receive one application datagram. Fails with [`Error::Idle`] after the idle timeout,
    /// [`Error::Closed`] on close_notify or when the server expired the session.
    ///
    /// While it waits, the session holds no read buffer: OpenSSL's record buffers are freed
    /// and the plaintext buffer is only allocated once a datagram is there, sized to it (the
    /// plaintext of a record is never longer than its datagram).
    pub async fn recv(&mut self) -> Result<Vec<u8>> {
        let mut idle_until = Instant::now() + self.idle_timeout;
        // Set when OpenSSL wanted more input although it reported pending data, so that
        // such data cannot make this loop spin without waiting.
        let mut stalled = false;
        loop {
            let queued = self.stream.get_ref().inbound.iter().map(Vec::len).max();
            let len = if !stalled && ffi::has_pending(self.stream.ssl()) {
                MAX_DATAGRAM
            } else {
                queued.unwrap_or(0)
            };
            if len == 0 {
                // Nothing to decrypt: wait for a datagram (or the DTLS timer) without buffers.
                ffi::free_buffers(self.stream.ssl());
                if Instant::now() >= idle_until {
                    return Err(Error::Idle(self.idle_timeout));
                }
                if wait_input(&mut self.stream, &mut self.link, idle_until).await? {
                    idle_until = Instant::now() + self.idle_timeout;
                    stalled = false;
                } else {
                    // The timer may have queued a retransmission.
                    flush(&mut self.stream, &self.link, self.peer.addr).await?;
                }
                continue;
            }
            let mut buf = vec![0u8; len];
            let r = self.stream.ssl_read(&mut buf);
            flush(&mut self.stream, &self.link, self.peer.addr).await?;
            match r {
                Ok(n) => {
                    buf.truncate(n);
                    return Ok(buf);
                }
                Err(e) if e.code() == ErrorCode::ZERO_RETURN => return Err(Error::Closed),
                // The datagram was consumed without application data (a retransmitted
                // handshake flight, a record that failed authentication): wait for the next.
                Err(e) if e.code() == ErrorCode::WANT_READ => stalled = true,
                Err(e) => return Err(Error::Tls(error::reason(&e))),
            }
        }
    }

    /// Send close_notify (best effort).
    pub async fn close(&mut self) -> Result<()> {
        let _ = self.stream.shutdown();
        flush(&mut self.stream, &self.link, self.peer.addr).await
    }
}

impl std::fmt::Debug for DtlsSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DtlsSession")
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

/// A handshake the server could not complete.
#[derive(Debug)]
pub struct AcceptError {
    /// The peer's address.
    pub addr: SocketAddr,
    /// Why.
    pub error: Error,
}

/// What [`DtlsServer::accept`] yields: an established session or a failed handshake.
pub type Accepted = std::result::Result<DtlsSession, AcceptError>;

/// Counters of a [`DtlsServer`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DtlsStats {
    /// Sessions (half-open and established) currently known to the demultiplexer.
    pub sessions: usize,
    /// Handshakes in progress.
    pub half_open: usize,
    /// HelloVerifyRequests sent (stateless).
    pub hello_verify_sent: u64,
    /// Datagrams dropped (no session, bounds reached, queue full, not a ClientHello).
    pub dropped: u64,
    /// Sessions expired for idleness.
    pub expired: u64,
}

#[derive(Default)]
struct Counters {
    sessions: AtomicUsize,
    half_open: AtomicUsize,
    hello_verify_sent: AtomicU64,
    dropped: AtomicU64,
    expired: AtomicU64,
}

/// Decrements the half-open count when a handshake ends, however it ends.
struct HalfOpenGuard(Arc<Counters>);

impl Drop for HalfOpenGuard {
    fn drop(&mut self) {
        self.0.half_open.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A DTLS 1.2 server on one UDP port serving many peers.
pub struct DtlsServer {
    local: SocketAddr,
    accept_rx: mpsc::Receiver<Accepted>,
    counters: Arc<Counters>,
    task: JoinHandle<()>,
}

impl DtlsServer {
    /// Bind `addr` and start the demultiplexer.
    pub async fn bind(addr: SocketAddr, cfg: &ServerConfig, opts: DtlsOptions) -> Result<Self> {
        if opts.max_half_open == 0 || opts.max_sessions == 0 || opts.queue_len == 0 {
            return Err(Error::Config("DTLS bounds must be at least 1".into()));
        }
        let secret = if opts.cookie_exchange {
            Some(Arc::new(CookieSecret::random()?))
        } else {
            None
        };
        let ctx = context::server_context(Transport::Dtls, cfg, secret)?;
        let sock = Arc::new(UdpSocket::bind(addr).await?);
        let local = sock.local_addr()?;
        let (accept_tx, accept_rx) = mpsc::channel(opts.max_half_open.min(1024));
        let counters = Arc::new(Counters::default());
        let demux = Demux {
            sock,
            ctx,
            opts,
            handshake_timeout: cfg.handshake_timeout,
            peers: HashMap::new(),
            counters: counters.clone(),
            accept_tx,
            client_names: cfg
                .client_auth
                .as_ref()
                .map(|a| a.allowed.clone())
                .unwrap_or_default()
                .into(),
        };
        let task = tokio::spawn(demux.run());
        Ok(DtlsServer {
            local,
            accept_rx,
            counters,
            task,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The next completed (or failed) handshake; None if the server stopped.
    pub async fn accept(&mut self) -> Option<Accepted> {
        self.accept_rx.recv().await
    }

    /// Current counters.
    pub fn stats(&self) -> DtlsStats {
        let c = &self.counters;
        DtlsStats {
            sessions: c.sessions.load(Ordering::Acquire),
            half_open: c.half_open.load(Ordering::Acquire),
            hello_verify_sent: c.hello_verify_sent.load(Ordering::Acquire),
            dropped: c.dropped.load(Ordering::Acquire),
            expired: c.expired.load(Ordering::Acquire),
        }
    }
}

impl Drop for DtlsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl std::fmt::Debug for DtlsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DtlsServer")
            .field("local", &self.local)
            .field("stats", &self.stats())
            .finish()
    }
}

struct PeerSlot {
    tx: mpsc::Sender<Vec<u8>>,
    last_seen: Instant,
}

struct Demux {
    sock: Arc<UdpSocket>,
    ctx: SslContext,
    opts: DtlsOptions,
    handshake_timeout: Duration,
    peers: HashMap<SocketAddr, PeerSlot>,
    counters: Arc<Counters>,
    accept_tx: mpsc::Sender<Accepted>,
    client_names: Arc<[ExpectedName]>,
}

/// A plausible DTLS ClientHello: handshake record, DTLS version, epoch 0, msg_type 1.
fn is_client_hello(d: &[u8]) -> bool {
    d.len() >= 25 && d[0] == 22 && d[1] == 0xfe && d[3] == 0 && d[4] == 0 && d[13] == 1
}

impl Demux {
    async fn run(mut self) {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        let sweep_every =
            (self.opts.idle_timeout / 4).clamp(Duration::from_millis(50), Duration::from_secs(10));
        let mut sweep = tokio::time::interval(sweep_every);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                r = self.sock.recv_from(&mut buf) => match r {
                    Ok((n, from)) => {
                        let d = buf.get(..n).unwrap_or_default().to_vec();
                        self.on_datagram(d, from).await;
                    }
                    // ICMP errors surface as recv errors on some platforms: not fatal.
                    Err(e) => tracing::debug!(error = %e, "DTLS server recv error"),
                },
                _ = sweep.tick() => self.sweep(),
            }
        }
    }

    fn sweep(&mut self) {
        let now = Instant::now();
        let idle = self.opts.idle_timeout;
        let before = self.peers.len();
        let mut expired = 0u64;
        self.peers.retain(|_, slot| {
            if slot.tx.is_closed() {
                return false;
            }
            if now.duration_since(slot.last_seen) > idle {
                expired += 1;
                return false;
            }
            true
        });
        if before != self.peers.len() {
            self.counters.expired.fetch_add(expired, Ordering::AcqRel);
            self.counters
                .sessions
                .store(self.peers.len(), Ordering::Release);
        }
    }

    fn drop_one(&self) {
        self.counters.dropped.fetch_add(1, Ordering::AcqRel);
    }

    async fn on_datagram(&mut self, d: Vec<u8>, from: SocketAddr) {
        if let Some(slot) = self.peers.get_mut(&from) {
            if !slot.tx.is_closed() {
                slot.last_seen = Instant::now();
                if slot.tx.try_send(d).is_err() {
                    self.drop_one();
                }
                return;
            }
            self.peers.remove(&from);
            self.counters
                .sessions
                .store(self.peers.len(), Ordering::Release);
        }
        if !is_client_hello(&d) {
            self.drop_one();
            return;
        }
        if self.counters.half_open.load(Ordering::Acquire) >= self.opts.max_half_open
            || self.peers.len() >= self.opts.max_sessions
        {
            self.drop_one();
            return;
        }
        match self.new_session(d, from).await {
            Ok(Some(stream)) => self.spawn_handshake(stream, from),
            Ok(None) => {}
            Err(e) => {
                tracing::debug!(peer = %from, error = %e, "DTLS: cannot start a session");
                self.drop_one();
            }
        }
    }

    /// Build an SSL object for a ClientHello; with cookies, run the stateless exchange and keep
    /// the object only for a verified ClientHello.
    async fn new_session(
        &self,
        d: Vec<u8>,
        from: SocketAddr,
    ) -> Result<Option<SslStream<DgramBuf>>> {
        let mut ssl = Ssl::new(&self.ctx)?;
        ssl.set_ex_data(context::peer_addr_index()?, from);
        ssl.set_mtu(self.opts.mtu)?;
        ssl.set_accept_state();
        let mut io = DgramBuf::default();
        io.inbound.push_back(d);
        let mut stream = SslStream::new(ssl, io)?;
        if !self.opts.cookie_exchange {
            return Ok(Some(stream));
        }
        let outcome = ffi::dtls_listen(stream.ssl());
        let out = std::mem::take(&mut stream.get_mut().outbound);
        for o in &out {
            if self.sock.send_to(o, from).await.is_ok() {
                self.counters
                    .hello_verify_sent
                    .fetch_add(1, Ordering::AcqRel);
            }
        }
        Ok(match outcome {
            ListenOutcome::Verified => Some(stream),
            ListenOutcome::Stateless => None,
        })
    }

    fn spawn_handshake(&mut self, mut stream: SslStream<DgramBuf>, from: SocketAddr) {
        let (tx, rx) = mpsc::channel(self.opts.queue_len);
        self.peers.insert(
            from,
            PeerSlot {
                tx,
                last_seen: Instant::now(),
            },
        );
        self.counters
            .sessions
            .store(self.peers.len(), Ordering::Release);
        self.counters.half_open.fetch_add(1, Ordering::AcqRel);
        let guard = HalfOpenGuard(self.counters.clone());
        let mut link = Link::Server {
            sock: self.sock.clone(),
            rx,
        };
        let timeout = self.handshake_timeout;
        let idle_timeout = self.opts.idle_timeout;
        let accept_tx = self.accept_tx.clone();
        let client_names = self.client_names.clone();
        tokio::spawn(async move {
            let r = drive_handshake(&mut stream, &mut link, from, timeout).await;
            drop(guard);
            let item = match r {
                Ok(()) => match session_peer(stream.ssl(), from, &client_names) {
                    Ok(peer) => Ok(DtlsSession {
                        stream,
                        link,
                        peer,
                        idle_timeout,
                    }),
                    Err(error) => Err(AcceptError { addr: from, error }),
                },
                Err(error) => {
                    tracing::info!(peer = %from, error = %error, "DTLS handshake failed");
                    Err(AcceptError { addr: from, error })
                }
            };
            let _ = accept_tx.send(item).await;
        });
    }
}

fn session_peer(ssl: &SslRef, from: SocketAddr, client_names: &[ExpectedName]) -> Result<Peer> {
    let binding = ssl.ex_data(context::binding_index()?).cloned();
    let (identity, bound) = match binding {
        Some(b) => (Some(b.identity), Some(b.bound)),
        None => (None, None),
    };
    Ok(Peer::from_ssl(
        ssl,
        from,
        Role::Server,
        Protocol::Dtls12,
        identity,
        bound,
        client_names,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_hello_shape() {
        let mut d = vec![0u8; 40];
        d[0] = 22;
        d[1] = 0xfe;
        d[2] = 0xfd;
        d[13] = 1;
        assert!(is_client_hello(&d));
        d[4] = 1; // epoch 1
        assert!(!is_client_hello(&d));
        assert!(!is_client_hello(&[22, 0xfe]));
    }
}
