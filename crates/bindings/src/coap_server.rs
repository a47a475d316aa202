//! oneM2M over CoAP (TS-0008) inside DTLS 1.2 security associations (TS-0003 §8.2.2.1,
//! TS-0008 §7): one [`DtlsServer`] port, one task per DTLS session, any [`Endpoint`] behind it.
//!
//! Per session, after the handshake, [`Endpoint::open`] gets the association (peer and RFC 5705
//! exporter); the task then reads CoAP messages one at a time (RFC 7252 NSTART = 1 per
//! client), maps each request with [`crate::coap`], runs [`Endpoint::handle`] on the blocking
//! pool and answers:
//!
//! * a Confirmable request with an ACK carrying the piggybacked response (TS-0008 §6.3.1), a
//!   Non-confirmable one with a NON response;
//! * a duplicate (same message ID within the session, RFC 7252 §4.5) from a small per-session
//!   cache of recent replies, without running the request again; a duplicate NON is ignored;
//! * a message that cannot be parsed, an empty CON ("ping") or a response-class message in a
//!   CON with a Reset (RFC 7252 §4.2, §4.3; TS-0008 §5.1); other unusable messages are ignored,
//!   as are ACKs and RSTs (this server sends no CON);
//! * a response payload larger than the Block2 size in blocks (RFC 7959 §2.4, TS-0008 §6.5):
//!   the complete response is kept for the session and later blocks are served from it.
//!
//! `Handled.close` closes the DTLS session after the response is sent; cancelling
//! `Opened.close` closes it at once. Idle sessions expire in the DTLS layer
//! ([`DtlsOptions::idle_timeout`]); `Limits::max_connections` caps concurrent sessions served
//! and `Limits::max_body` the request payload. No input makes the task panic.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use coap_lite::{CoapOption, MessageClass, MessageType, Packet, RequestType, ResponseType};
use tokio::sync::Semaphore;

use m2msec_proto::{CseError, Operation, Rsc};
use m2msec_tls::{DtlsOptions, DtlsServer, DtlsSession, ServerConfig};

use crate::coap::{
    block2, block2_slice, request_from_coap, request_rqi, response_format, response_to_coap,
    set_block2, CoapRejection, DEFAULT_BLOCK_SIZE,
};
use crate::endpoint::{AssociationInfo, CloseSignal, Endpoint};
use crate::http::Rejection;
use crate::server::{Limits, ServerError};

/// RFC 7252 §4.8.2 EXCHANGE_LIFETIME: how long a message ID is remembered for deduplication.
pub const EXCHANGE_LIFETIME: Duration = Duration::from_secs(247);
/// Replies remembered per session for deduplication. A client keeps one exchange outstanding
/// (NSTART = 1), so a handful covers every retransmission it can still send.
pub const DEDUPE_ENTRIES: usize = 16;
/// Headroom over `Limits::max_body` for the header and options of one datagram.
const OPTIONS_HEADROOM: usize = 4096;

struct State<E: Endpoint> {
    endpoint: Arc<E>,
    responder: String,
    limits: Limits,
    dispatch: crate::dispatch::Dispatcher,
}

/// The bound CoAP/DTLS service: the port is open; [`CoapServer::serve`] runs it.
pub struct CoapServer<E: Endpoint> {
    dtls: DtlsServer,
    state: Arc<State<E>>,
}

impl<E: Endpoint> std::fmt::Debug for CoapServer<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CoapServer")
            .field("dtls", &self.dtls)
            .finish_non_exhaustive()
    }
}

impl<E: Endpoint> CoapServer<E> {
    /// Binds the DTLS port for `endpoint` with server configuration `tls` (the same PSK
    /// configuration the TLS listener uses; its `handshake_timeout` applies).
    pub async fn bind(
        addr: SocketAddr,
        tls: &ServerConfig,
        opts: DtlsOptions,
        limits: Limits,
        endpoint: Arc<E>,
    ) -> Result<Self, ServerError> {
        let dtls = DtlsServer::bind(addr, tls, opts)
            .await
            .map_err(|e| match e {
                m2msec_tls::Error::Io(source) => ServerError::Bind { addr, source },
                other => ServerError::Tls(other),
            })?;
        Ok(CoapServer {
            dtls,
            state: Arc::new(State {
                responder: endpoint.responder_id(),
                dispatch: crate::dispatch::Dispatcher::new("m2msec-endpoint", endpoint.workers()),
                endpoint,
                limits,
            }),
        })
    }

    /// The bound UDP address.
    pub fn local_addr(&self) -> SocketAddr {
        self.dtls.local_addr()
    }

    /// Serves until the DTLS server stops (or the process ends).
    pub async fn serve(self) {
        let CoapServer { mut dtls, state } = self;
        let permits = Arc::new(Semaphore::new(state.limits.max_connections.max(1)));
        while let Some(accepted) = dtls.accept().await {
            let mut session = match accepted {
                Ok(s) => s,
                Err(e) => {
                    crate::audit::handshake_failed(&e.addr, "dtls", &e.error);
                    continue;
                }
            };
            let Ok(permit) = permits.clone().try_acquire_owned() else {
                tracing::warn!(peer = %session.peer().addr, "too many DTLS sessions: closing");
                tokio::spawn(async move {
                    let _ = session.close().await;
                });
                continue;
            };
            let state = state.clone();
            tokio::spawn(async move {
                serve_session(session, state).await;
                drop(permit);
            });
        }
    }
}

/// Recently answered message IDs of a session (RFC 7252 §4.5), bounded in count and age.
#[derive(Default)]
struct Dedupe {
    /// (message ID, when, the reply sent; None for a NON that got no reply to repeat).
    seen: VecDeque<(u16, Instant, Option<Vec<u8>>)>,
}

impl Dedupe {
    fn lookup(&mut self, mid: u16) -> Option<&Option<Vec<u8>>> {
        let now = Instant::now();
        while self
            .seen
            .front()
            .is_some_and(|(_, t, _)| now.duration_since(*t) > EXCHANGE_LIFETIME)
        {
            self.seen.pop_front();
        }
        self.seen
            .iter()
            .find(|(m, _, _)| *m == mid)
            .map(|(_, _, r)| r)
    }

    fn insert(&mut self, mid: u16, reply: Option<Vec<u8>>) {
        if self.seen.len() >= DEDUPE_ENTRIES {
            self.seen.pop_front();
        }
        self.seen.push_back((mid, Instant::now(), reply));
    }
}

/// The last response sent in blocks: the request it answers (its options other than Block2
/// and its payload) and the complete response.
struct BlockCache {
    key: Vec<u8>,
    response: Packet,
}

/// A request's identity for Block2 continuation (RFC 7959 §2.4): code, options other than
/// Block2/Size2, payload.
fn block_key(p: &Packet) -> Vec<u8> {
    let mut k = Packet::new();
    k.header.code = p.header.code;
    for (num, vals) in p.options() {
        if *num == 23 || *num == 28 {
            continue;
        }
        for v in vals {
            k.add_option(CoapOption::from(*num), v.clone());
        }
    }
    k.payload = p.payload.clone();
    k.to_bytes_unlimited().unwrap_or_default()
}

/// What one inbound datagram asks of the session.
enum Outcome {
    /// Send nothing.
    Nothing,
    /// Send this datagram.
    Reply(Vec<u8>),
    /// Send this datagram, then close the session (`Handled.close`).
    ReplyAndClose(Vec<u8>),
    /// The endpoint closed the session.
    Closed,
}

async fn serve_session<E: Endpoint>(mut session: DtlsSession, state: Arc<State<E>>) {
    let opened = {
        let exporter = |label| session.export(label).ok();
        let info = AssociationInfo {
            peer: session.peer(),
            exporter: &exporter,
        };
        state.endpoint.open(Some(&info))
    };
    let Some(opened) = opened else {
        let _ = session.close().await;
        return;
    };
    tracing::debug!(peer = %session.peer().addr, psk_identity = ?session.peer().psk_identity, "DTLS security association established");
    let close = opened.close;
    let ctx = Arc::new(opened.session);
    let mut dedupe = Dedupe::default();
    let mut blocks: Option<BlockCache> = None;
    let mut mid = initial_mid();
    loop {
        let dgram = tokio::select! {
            r = session.recv() => r,
            _ = close.cancelled() => {
                tracing::info!("DTLS session closed by the endpoint (credential revoked)");
                let _ = session.close().await;
                return;
            }
        };
        let dgram = match dgram {
            Ok(d) => d,
            Err(e) => {
                tracing::debug!(error = %e, "DTLS session ended");
                return;
            }
        };
        let outcome = on_datagram(
            &dgram,
            &state,
            &ctx,
            &close,
            &mut dedupe,
            &mut blocks,
            &mut mid,
        )
        .await;
        match outcome {
            Outcome::Nothing => {}
            Outcome::Reply(b) => {
                if let Err(e) = session.send(&b).await {
                    tracing::debug!(error = %e, "DTLS send failed");
                    return;
                }
            }
            Outcome::ReplyAndClose(b) => {
                let _ = session.send(&b).await;
                let _ = session.close().await;
                return;
            }
            Outcome::Closed => {
                let _ = session.close().await;
                return;
            }
        }
    }
}

fn initial_mid() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u8(0);
    h.finish() as u16
}

/// A Reset for message ID `mid` (RFC 7252 §4.2).
fn reset(mid: u16) -> Vec<u8> {
    let mut p = Packet::new();
    p.header.set_version(1);
    p.header.set_type(MessageType::Reset);
    p.header.code = MessageClass::Empty;
    p.header.message_id = mid;
    p.to_bytes_unlimited().unwrap_or_default()
}

/// The message ID and type of a datagram whose 4-byte header is readable.
fn raw_header(d: &[u8]) -> Option<(u8, MessageType, u16)> {
    let b0 = *d.first()?;
    let mid = u16::from_be_bytes([*d.get(2)?, *d.get(3)?]);
    let t = match (b0 >> 4) & 0x3 {
        0 => MessageType::Confirmable,
        1 => MessageType::NonConfirmable,
        2 => MessageType::Acknowledgement,
        _ => MessageType::Reset,
    };
    Some((b0 >> 6, t, mid))
}

#[allow(clippy::too_many_arguments)]
async fn on_datagram<E: Endpoint>(
    dgram: &[u8],
    state: &Arc<State<E>>,
    ctx: &Arc<E::Session>,
    close: &CloseSignal,
    dedupe: &mut Dedupe,
    blocks: &mut Option<BlockCache>,
    next_mid: &mut u16,
) -> Outcome {
    let Some((version, mtype, mid)) = raw_header(dgram) else {
        return Outcome::Nothing;
    };
    // RFC 7252 §3: messages of an unknown version are silently ignored.
    if version != 1 {
        return Outcome::Nothing;
    }
    let con = mtype == MessageType::Confirmable;
    match mtype {
        // This server sends no CON, so ACKs and RSTs match nothing (RFC 7252 §4.2, §4.3).
        MessageType::Acknowledgement | MessageType::Reset => return Outcome::Nothing,
        _ => {}
    }
    if dgram.len() > state.limits.max_body.saturating_add(OPTIONS_HEADROOM) {
        // Too large to consider: a CON is rejected at the CoAP layer.
        return if con {
            Outcome::Reply(reset(mid))
        } else {
            Outcome::Nothing
        };
    }
    if let Some(cached) = dedupe.lookup(mid) {
        // RFC 7252 §4.5: a duplicate CON gets the same ACK again; a duplicate NON is ignored.
        return match (con, cached) {
            (true, Some(b)) => Outcome::Reply(b.clone()),
            _ => Outcome::Nothing,
        };
    }
    let pkt = match Packet::from_bytes(dgram) {
        Ok(p) => p,
        Err(e) => {
            tracing::debug!(error = ?e, "malformed CoAP message");
            return if con {
                Outcome::Reply(reset(mid))
            } else {
                Outcome::Nothing
            };
        }
    };
    let method = match pkt.header.code {
        MessageClass::Request(m) => m,
        // An empty CON is a ping (RFC 7252 §4.3); a response or reserved code in a CON or
        // NON is a message format error: CON → Reset, NON ignored.
        _ => {
            return if con {
                Outcome::Reply(reset(mid))
            } else {
                Outcome::Nothing
            }
        }
    };
    let mut reply = match handle_request(&pkt, method, state, ctx, close, blocks).await {
        Ok((r, close_after)) => (r, close_after),
        Err(Closed) => return Outcome::Closed,
    };
    // Header of the reply: piggybacked on the ACK of a CON, a NON of its own for a NON
    // (TS-0008 §6.3.1), with the request's token (RFC 7252 §5.3.2).
    reply.0.header.set_version(1);
    if con {
        reply.0.header.set_type(MessageType::Acknowledgement);
        reply.0.header.message_id = mid;
    } else {
        reply.0.header.set_type(MessageType::NonConfirmable);
        reply.0.header.message_id = *next_mid;
        *next_mid = next_mid.wrapping_add(1);
    }
    reply.0.set_token(pkt.get_token().to_vec());
    let bytes = match reply.0.to_bytes_unlimited() {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = ?e, "cannot encode a CoAP response");
            let mut p = Packet::new();
            p.header = reply.0.header.clone();
            p.header.code = MessageClass::Response(ResponseType::InternalServerError);
            p.set_token(pkt.get_token().to_vec());
            p.to_bytes_unlimited().unwrap_or_else(|_| reset(mid))
        }
    };
    dedupe.insert(mid, con.then(|| bytes.clone()));
    if reply.1 {
        Outcome::ReplyAndClose(bytes)
    } else {
        Outcome::Reply(bytes)
    }
}

/// The endpoint closed the session while a request was running.
struct Closed;

fn reject(state: &State<impl Endpoint>, pkt: &Packet, rej: CoapRejection) -> Packet {
    rej.to_packet(Some(&state.responder), response_format(pkt))
}

/// One request: Block2 continuation from the cache, or mapping, engine, mapping back; returns
/// the response (header type, ID and token still to set) and whether to close afterwards.
async fn handle_request<E: Endpoint>(
    pkt: &Packet,
    method: RequestType,
    state: &Arc<State<E>>,
    ctx: &Arc<E::Session>,
    close: &CloseSignal,
    blocks: &mut Option<BlockCache>,
) -> Result<(Packet, bool), Closed> {
    let requested = block2(pkt);
    let size = requested
        .as_ref()
        .map(|b| b.size().min(DEFAULT_BLOCK_SIZE))
        .unwrap_or(DEFAULT_BLOCK_SIZE);
    let num = requested.as_ref().map(|b| usize::from(b.num)).unwrap_or(0);
    if num > 0 {
        // RFC 7959 §2.4: a later block of a response already computed.
        let key = block_key(pkt);
        if let Some(cache) = blocks.as_ref().filter(|c| c.key == key) {
            return Ok((slice_response(&cache.response, num, size), false));
        }
        if method != RequestType::Get {
            let rej = CoapRejection {
                rejection: Rejection {
                    error: CseError::bad_request(format!(
                        "block {num} of a response this session no longer holds (RFC 7959)"
                    )),
                    rqi: request_rqi(pkt),
                },
                code: ResponseType::RequestEntityIncomplete,
            };
            return Ok((reject(state, pkt, rej), false));
        }
        // A GET may be run again for a block (RFC 7959 §2.4).
    }
    let prim = match request_from_coap(pkt, state.limits.max_body) {
        Ok(p) => p,
        Err(rej) => return Ok((reject(state, pkt, rej), false)),
    };
    let op: Operation = prim.op;
    let rqi = prim.rqi.clone();
    let st = state.clone();
    let c = ctx.clone();
    let task = state.dispatch.run(move || st.endpoint.handle(&c, prim));
    let done = tokio::select! {
        d = task => d,
        _ = close.cancelled() => return Err(Closed),
    };
    let handled = match done {
        Some(h) => h,
        None => {
            tracing::error!("endpoint request failed (worker panicked or stopped)");
            let rej = CoapRejection {
                rejection: Rejection {
                    error: CseError::new(Rsc::InternalServerError, "internal error"),
                    rqi,
                },
                code: ResponseType::InternalServerError,
            };
            return Ok((reject(state, pkt, rej), true));
        }
    };
    let full = response_to_coap(&handled.response, Some(op), response_format(pkt));
    if full.payload.len() > size || num > 0 {
        let out = slice_response(&full, num, size);
        *blocks = Some(BlockCache {
            key: block_key(pkt),
            response: full,
        });
        Ok((out, handled.close))
    } else {
        Ok((full, handled.close))
    }
}

/// Block `num` of a complete response; a block past the end is answered 4.02 Bad Option, with
/// no payload (this binding's choice).
fn slice_response(full: &Packet, num: usize, size: usize) -> Packet {
    let mut p = full.clone();
    match block2_slice(&full.payload, num, size) {
        Some((chunk, bv)) => {
            p.payload = chunk.to_vec();
            set_block2(&mut p, bv, full.payload.len());
        }
        None => {
            p.payload.clear();
            p.clear_option(CoapOption::ContentFormat);
            p.header.code = MessageClass::Response(ResponseType::BadOption);
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dedupe_is_bounded_and_finds_recent_ids() {
        let mut d = Dedupe::default();
        for mid in 0..(DEDUPE_ENTRIES as u16 + 4) {
            d.insert(mid, Some(vec![mid as u8]));
        }
        assert_eq!(d.seen.len(), DEDUPE_ENTRIES);
        assert!(d.lookup(0).is_none(), "oldest evicted");
        let last = DEDUPE_ENTRIES as u16 + 3;
        assert_eq!(d.lookup(last), Some(&Some(vec![last as u8])));
        d.insert(9999, None);
        assert_eq!(d.lookup(9999), Some(&None));
    }

    #[test]
    fn raw_header_and_reset() {
        assert_eq!(raw_header(&[0x40, 1]), None);
        assert_eq!(
            raw_header(&[0x50, 1, 0x12, 0x34]),
            Some((1, MessageType::NonConfirmable, 0x1234))
        );
        let r = Packet::from_bytes(&reset(7)).unwrap();
        assert_eq!(r.header.get_type(), MessageType::Reset);
        assert_eq!(r.header.message_id, 7);
        assert_eq!(r.header.code, MessageClass::Empty);
    }

    #[test]
    fn block_key_ignores_block2_and_message_identity() {
        let mut a = Packet::new();
        a.header.code = MessageClass::Request(RequestType::Get);
        a.add_option(CoapOption::UriPath, b"cb".to_vec());
        let mut b = a.clone();
        b.header.message_id = 5;
        b.set_token(vec![1, 2]);
        b.add_option(CoapOption::Block2, vec![0x16]);
        assert_eq!(block_key(&a), block_key(&b));
        b.add_option(CoapOption::UriPath, b"x".to_vec());
        assert_ne!(block_key(&a), block_key(&b));
    }

    #[test]
    fn slices_past_the_end_are_bad_option() {
        let mut full = Packet::new();
        full.header.code = MessageClass::Response(ResponseType::Content);
        full.payload = vec![1; 40];
        let p = slice_response(&full, 1, 16);
        assert_eq!(p.payload.len(), 16);
        let p = slice_response(&full, 3, 16);
        assert_eq!(
            p.header.code,
            MessageClass::Response(ResponseType::BadOption)
        );
        assert!(p.payload.is_empty());
    }
}
