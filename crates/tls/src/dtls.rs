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
//! * at most `max_half_open` handshakes run at once, at most `max_half_open_per_source` of them
//!   from one source (an IPv4 address or an IPv6 /64). A verified ClientHello beyond either
//!   bound evicts the oldest handshake (of its own source, else of the source holding the most)
//!   instead of being refused, so sources that complete the cookie exchange and then abandon
//!   their handshakes cannot keep a device on another address out (issue 9 item 5);
//! * at most `max_sessions` sessions exist; ClientHellos beyond are dropped (counted in
//!   [`DtlsStats`]);
//! * a ClientHello (epoch 0) on an address that has an established session is handled as
//!   RFC 6347 §4.2.8 says for a peer that rebooted and reused its port: it goes through the
//!   stateless cookie exchange, a verified one starts a new handshake next to the session, and
//!   the session is replaced only when that handshake completes. It neither reaches the old
//!   session nor refreshes its idle timer, so a spoofed or unverified ClientHello cannot end
//!   a working session and a rebooted device is not locked out by its stale one (issue 9
//!   item 6);
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

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
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
    /// Server: bound on handshakes in progress. When it is reached, a new verified ClientHello
    /// evicts the oldest handshake of the source holding the most (issue 9 item 5).
    pub max_half_open: usize,
    /// Server: bound on handshakes in progress from one source (an IPv4 address or an IPv6
    /// /64). When it is reached, a new verified ClientHello from that source evicts the
    /// source's oldest handshake, so one host on many ports cannot hold the global bound.
    pub max_half_open_per_source: usize,
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
            max_half_open_per_source: 16,
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
        self.connect_from(local, addr, sni).await
    }

    /// Connect from the local address `local` (e.g. a fixed source port, as a device that
    /// always uses the same one) to `addr` with the given SNI and run the handshake.
    pub async fn connect_from(
        &self,
        local: SocketAddr,
        addr: SocketAddr,
        sni: Option<&str>,
    ) -> Result<DtlsSession> {
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
    /// Datagrams dropped (no session, session bound reached, queue full, not a ClientHello).
    pub dropped: u64,
    /// Sessions expired for idleness.
    pub expired: u64,
    /// Half-open handshakes evicted to admit a newer one (a half-open bound was reached).
    pub evicted: u64,
    /// Sessions replaced by a new handshake from the same address (RFC 6347 §4.2.8).
    pub replaced: u64,
}

#[derive(Default)]
struct Counters {
    sessions: AtomicUsize,
    half_open: AtomicUsize,
    hello_verify_sent: AtomicU64,
    dropped: AtomicU64,
    expired: AtomicU64,
    evicted: AtomicU64,
    replaced: AtomicU64,
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
        if opts.max_half_open == 0
            || opts.max_half_open_per_source == 0
            || opts.max_sessions == 0
            || opts.queue_len == 0
        {
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
        let (ends_tx, ends_rx) = mpsc::unbounded_channel();
        let counters = Arc::new(Counters::default());
        let demux = Demux {
            sock,
            ctx,
            opts,
            handshake_timeout: cfg.handshake_timeout,
            peers: HashMap::new(),
            half_open: HalfOpenIndex::default(),
            next_id: 0,
            ends_tx,
            counters: counters.clone(),
            accept_tx,
            client_names: cfg
                .client_auth
                .as_ref()
                .map(|a| a.allowed.clone())
                .unwrap_or_default()
                .into(),
        };
        let task = tokio::spawn(demux.run(ends_rx));
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

    /// The next completed (or failed) handshake; None if the server stopped. Handshakes the
    /// server evicted (a half-open bound was reached) are not reported.
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
            evicted: c.evicted.load(Ordering::Acquire),
            replaced: c.replaced.load(Ordering::Acquire),
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

/// What the per-source half-open bound counts: an IPv4 address, or the /64 prefix of an IPv6
/// address (one host or subscriber is usually given a whole /64, RFC 7421 §1); an IPv4-mapped
/// IPv6 address counts as its IPv4 address.
fn source_key(addr: SocketAddr) -> IpAddr {
    match addr.ip() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// The handshakes in progress, by age and by source (issue 9 item 5). Handshake ids grow with
/// time, so the smallest id is the oldest handshake.
#[derive(Default)]
struct HalfOpenIndex {
    by_age: BTreeMap<u64, SocketAddr>,
    by_source: HashMap<IpAddr, BTreeSet<u64>>,
}

impl HalfOpenIndex {
    fn len(&self) -> usize {
        self.by_age.len()
    }

    fn insert(&mut self, id: u64, addr: SocketAddr) {
        self.by_age.insert(id, addr);
        self.by_source
            .entry(source_key(addr))
            .or_default()
            .insert(id);
    }

    fn remove(&mut self, id: u64) -> Option<SocketAddr> {
        let addr = self.by_age.remove(&id)?;
        let key = source_key(addr);
        if let Some(set) = self.by_source.get_mut(&key) {
            set.remove(&id);
            if set.is_empty() {
                self.by_source.remove(&key);
            }
        }
        Some(addr)
    }

    /// The handshake to evict so that one more from `addr` fits, or None when it fits: the
    /// oldest of the same source when that source holds `per_source`; else, when `global` are
    /// in progress, the oldest of the source holding the most (ties: the source whose oldest
    /// handshake is oldest). A device's single handshake is thus evicted only when every other
    /// source holds one handshake too, and then only once it is the oldest of all.
    fn victim(&self, addr: SocketAddr, per_source: usize, global: usize) -> Option<u64> {
        if let Some(own) = self.by_source.get(&source_key(addr)) {
            if own.len() >= per_source {
                return own.first().copied();
            }
        }
        if self.len() < global {
            return None;
        }
        self.by_source
            .values()
            .filter_map(|set| set.first().map(|oldest| (set.len(), Reverse(*oldest))))
            .max()
            .map(|(_, Reverse(oldest))| oldest)
    }
}

/// The end of a handshake task, reported to the demultiplexer.
struct HandshakeEnd {
    addr: SocketAddr,
    id: u64,
    completed: bool,
}

struct PeerSlot {
    tx: mpsc::Sender<Vec<u8>>,
    last_seen: Instant,
    /// The handshake id of this slot's session.
    id: u64,
    /// The handshake completed: an established session.
    established: bool,
    /// RFC 6347 §4.2.8: a new handshake from the same address (the peer rebooted and reused its
    /// port), started after cookie verification. It replaces this session when it completes;
    /// until then this session keeps working.
    pending: Option<(u64, mpsc::Sender<Vec<u8>>)>,
}

impl PeerSlot {
    /// The old session is gone: a pending handshake takes the slot. False when there is none.
    fn promote_pending(&mut self, now: Instant) -> bool {
        match self.pending.take() {
            Some((id, tx)) => {
                self.tx = tx;
                self.id = id;
                self.established = false;
                self.last_seen = now;
                true
            }
            None => false,
        }
    }
}

struct Demux {
    sock: Arc<UdpSocket>,
    ctx: SslContext,
    opts: DtlsOptions,
    handshake_timeout: Duration,
    peers: HashMap<SocketAddr, PeerSlot>,
    half_open: HalfOpenIndex,
    next_id: u64,
    ends_tx: mpsc::UnboundedSender<HandshakeEnd>,
    counters: Arc<Counters>,
    accept_tx: mpsc::Sender<Accepted>,
    client_names: Arc<[ExpectedName]>,
}

/// A plausible DTLS ClientHello: handshake record, DTLS version, epoch 0, msg_type 1.
fn is_client_hello(d: &[u8]) -> bool {
    d.len() >= 25 && d[0] == 22 && d[1] == 0xfe && d[3] == 0 && d[4] == 0 && d[13] == 1
}

/// The epoch of the first record of a datagram (RFC 6347 §4.1).
fn first_epoch(d: &[u8]) -> Option<u16> {
    match d.get(3..5) {
        Some(&[hi, lo]) => Some(u16::from_be_bytes([hi, lo])),
        _ => None,
    }
}

/// Queue `d` for a session; a full queue drops it.
fn forward(tx: &mpsc::Sender<Vec<u8>>, d: Vec<u8>, counters: &Counters) {
    if tx.try_send(d).is_err() {
        counters.dropped.fetch_add(1, Ordering::AcqRel);
    }
}

impl Demux {
    async fn run(mut self, mut ends: mpsc::UnboundedReceiver<HandshakeEnd>) {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        let sweep_every =
            (self.opts.idle_timeout / 4).clamp(Duration::from_millis(50), Duration::from_secs(10));
        let mut sweep = tokio::time::interval(sweep_every);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // Handshake ends first, so a datagram is routed by the current state; the sweep is
            // not starved by a flood of datagrams.
            tokio::select! {
                biased;
                Some(end) = ends.recv() => self.on_handshake_end(end),
                _ = sweep.tick() => self.sweep(),
                r = self.sock.recv_from(&mut buf) => match r {
                    Ok((n, from)) => {
                        let d = buf.get(..n).unwrap_or_default().to_vec();
                        self.on_datagram(d, from).await;
                    }
                    // ICMP errors surface as recv errors on some platforms: not fatal.
                    Err(e) => tracing::debug!(error = %e, "DTLS server recv error"),
                },
            }
        }
    }

    fn publish_sessions(&self) {
        self.counters
            .sessions
            .store(self.peers.len(), Ordering::Release);
    }

    fn sweep(&mut self) {
        let now = Instant::now();
        let idle = self.opts.idle_timeout;
        let before = self.peers.len();
        let mut expired = 0u64;
        self.peers.retain(|_, slot| {
            if slot.tx.is_closed() {
                return slot.promote_pending(now);
            }
            if now.duration_since(slot.last_seen) > idle {
                expired += 1;
                return slot.established && slot.promote_pending(now);
            }
            true
        });
        self.counters.expired.fetch_add(expired, Ordering::AcqRel);
        if before != self.peers.len() {
            self.publish_sessions();
        }
    }

    fn drop_one(&self) {
        self.counters.dropped.fetch_add(1, Ordering::AcqRel);
    }

    fn on_handshake_end(&mut self, end: HandshakeEnd) {
        self.half_open.remove(end.id);
        let Some(slot) = self.peers.get_mut(&end.addr) else {
            return;
        };
        let now = Instant::now();
        if slot.pending.as_ref().is_some_and(|(id, _)| *id == end.id) {
            // RFC 6347 §4.2.8: "After a correct Finished message is received, the server MUST
            // abandon the previous association": the old session's queue closes.
            if let Some((id, tx)) = slot.pending.take() {
                if end.completed {
                    slot.tx = tx;
                    slot.id = id;
                    slot.established = true;
                    slot.last_seen = now;
                    self.counters.replaced.fetch_add(1, Ordering::AcqRel);
                    tracing::info!(
                        peer = %end.addr,
                        "DTLS: a new handshake from this address replaced its session"
                    );
                }
            }
        } else if slot.id == end.id && !slot.established {
            if end.completed {
                slot.established = true;
                slot.last_seen = now;
            } else {
                self.peers.remove(&end.addr);
                self.publish_sessions();
            }
        }
    }

    async fn on_datagram(&mut self, d: Vec<u8>, from: SocketAddr) {
        let hello = is_client_hello(&d);
        let now = Instant::now();
        if let Some(slot) = self.peers.get_mut(&from) {
            if slot.tx.is_closed() && !slot.promote_pending(now) {
                self.peers.remove(&from);
                self.publish_sessions();
            }
        }
        if let Some(slot) = self.peers.get_mut(&from) {
            let counters = &self.counters;
            match &slot.pending {
                // A handshake in progress gets everything, retransmitted ClientHellos included.
                _ if !slot.established => {
                    slot.last_seen = now;
                    forward(&slot.tx, d, counters);
                }
                // A replacement handshake is in progress: epoch 0 is its handshake; later
                // epochs may be either association's (its Finished, the old session's data).
                // Each side discards the records it cannot authenticate (RFC 6347 §4.1.2.7).
                Some((_, pending)) => {
                    if first_epoch(&d) == Some(0) {
                        forward(pending, d, counters);
                    } else {
                        slot.last_seen = now;
                        forward(pending, d.clone(), counters);
                        forward(&slot.tx, d, counters);
                    }
                }
                None if !hello => {
                    slot.last_seen = now;
                    forward(&slot.tx, d, counters);
                }
                // RFC 6347 §4.2.8: a ClientHello on an address with a session starts a new
                // handshake after the cookie exchange; it neither reaches nor refreshes the
                // session, which is replaced only when the new handshake completes.
                None => self.start_handshake(d, from, true).await,
            }
            return;
        }
        if !hello || self.peers.len() >= self.opts.max_sessions {
            self.drop_one();
            return;
        }
        self.start_handshake(d, from, false).await;
    }

    async fn start_handshake(&mut self, d: Vec<u8>, from: SocketAddr, replacing: bool) {
        match self.new_session(d, from).await {
            Ok(Some(stream)) => self.spawn_handshake(stream, from, replacing),
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

    /// Evict the oldest half-open handshake of the given id: its queue closes, so its task
    /// ends (unreported) at its next wait.
    fn evict(&mut self, id: u64) {
        let Some(addr) = self.half_open.remove(id) else {
            return;
        };
        self.counters.evicted.fetch_add(1, Ordering::AcqRel);
        tracing::debug!(peer = %addr, "DTLS: half-open handshake evicted for a newer one");
        let Some(slot) = self.peers.get_mut(&addr) else {
            return;
        };
        if slot.pending.as_ref().is_some_and(|(p, _)| *p == id) {
            slot.pending = None;
        } else if slot.id == id && !slot.established {
            self.peers.remove(&addr);
            self.publish_sessions();
        }
    }

    fn spawn_handshake(
        &mut self,
        mut stream: SslStream<DgramBuf>,
        from: SocketAddr,
        replacing: bool,
    ) {
        // Admit the newcomer; under pressure the oldest handshake of the busiest source goes.
        while let Some(victim) = self.half_open.victim(
            from,
            self.opts.max_half_open_per_source,
            self.opts.max_half_open,
        ) {
            self.evict(victim);
        }
        let id = self.next_id;
        self.next_id += 1;
        let (tx, rx) = mpsc::channel(self.opts.queue_len);
        let now = Instant::now();
        match self.peers.get_mut(&from) {
            Some(slot) if replacing => slot.pending = Some((id, tx)),
            _ => {
                self.peers.insert(
                    from,
                    PeerSlot {
                        tx,
                        last_seen: now,
                        id,
                        established: false,
                        pending: None,
                    },
                );
                self.publish_sessions();
            }
        }
        self.half_open.insert(id, from);
        self.counters.half_open.fetch_add(1, Ordering::AcqRel);
        let guard = HalfOpenGuard(self.counters.clone());
        let mut link = Link::Server {
            sock: self.sock.clone(),
            rx,
        };
        let timeout = self.handshake_timeout;
        let idle_timeout = self.opts.idle_timeout;
        let accept_tx = self.accept_tx.clone();
        let ends = self.ends_tx.clone();
        let client_names = self.client_names.clone();
        tokio::spawn(async move {
            let r = drive_handshake(&mut stream, &mut link, from, timeout).await;
            drop(guard);
            let _ = ends.send(HandshakeEnd {
                addr: from,
                id,
                completed: r.is_ok(),
            });
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
                // The demultiplexer closed the queue: evicted, or the server stopped.
                Err(Error::Closed) => return,
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
        assert_eq!(first_epoch(&d), Some(1));
        assert_eq!(first_epoch(&[22, 0xfe, 0xfd]), None);
    }

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn sources_are_ipv4_addresses_and_ipv6_prefixes() {
        assert_eq!(
            source_key(a("192.0.2.1:1000")),
            source_key(a("192.0.2.1:2000"))
        );
        assert_ne!(
            source_key(a("192.0.2.1:1000")),
            source_key(a("192.0.2.2:1000"))
        );
        assert_eq!(
            source_key(a("[2001:db8:1:2:aaaa::1]:1")),
            source_key(a("[2001:db8:1:2:bbbb::2]:2"))
        );
        assert_ne!(
            source_key(a("[2001:db8:1:2::1]:1")),
            source_key(a("[2001:db8:1:3::1]:1"))
        );
        assert_eq!(
            source_key(a("[::ffff:192.0.2.1]:1")),
            source_key(a("192.0.2.1:1"))
        );
    }

    #[test]
    fn victim_is_the_oldest_of_the_source_then_of_the_busiest_source() {
        let mut ix = HalfOpenIndex::default();
        // Source A holds 3 (ids 0, 2, 4), B holds 2 (1, 3), the device D holds 1 (5).
        for (id, addr) in [
            (0, "10.0.0.1:1"),
            (1, "10.0.0.2:1"),
            (2, "10.0.0.1:2"),
            (3, "10.0.0.2:2"),
            (4, "10.0.0.1:3"),
            (5, "10.0.0.9:1"),
        ] {
            ix.insert(id, a(addr));
        }
        // Room everywhere.
        assert_eq!(ix.victim(a("10.0.0.3:1"), 4, 8), None);
        // A at its per-source bound: A's oldest, whatever the global state.
        assert_eq!(ix.victim(a("10.0.0.1:9"), 3, 8), Some(0));
        // The global bound: the busiest source's oldest, never the device's only handshake.
        assert_eq!(ix.victim(a("10.0.0.3:1"), 4, 6), Some(0));
        assert_eq!(ix.victim(a("10.0.0.9:2"), 4, 6), Some(0));
        assert_eq!(ix.remove(0), Some(a("10.0.0.1:1")));
        assert_eq!(ix.remove(0), None);
        // A and B hold 2 each: the older of their oldest (B's 1).
        assert_eq!(ix.victim(a("10.0.0.3:1"), 4, 5), Some(1));
        // Every source holds one: the oldest of all.
        let mut flat = HalfOpenIndex::default();
        flat.insert(7, a("10.0.0.9:1"));
        flat.insert(8, a("10.0.0.1:1"));
        assert_eq!(flat.victim(a("10.0.0.2:1"), 4, 2), Some(7));
        assert_eq!(flat.remove(7), Some(a("10.0.0.9:1")));
        assert_eq!(flat.victim(a("10.0.0.2:1"), 4, 2), None);
        assert_eq!(flat.len(), 1);
    }
}
