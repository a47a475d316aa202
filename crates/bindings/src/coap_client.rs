//! A small CoAP originator over an established [`DtlsSession`] (`m2msec request coaps://…`,
//! tests): one request primitive out as a Confirmable message, its response primitive back
//! (TS-0008 §6.3.1, blocking case).
//!
//! Reliability is RFC 7252 §4.2: the CON is retransmitted after ACK_TIMEOUT × a random factor
//! in [1, ACK_RANDOM_FACTOR), doubling each time, at most MAX_RETRANSMIT times. A piggybacked
//! response ends the exchange; an empty ACK means a separate response will follow (which is
//! acknowledged if it is a CON). Block2 responses (RFC 7959 §2.4, TS-0008 §6.5) are fetched
//! block by block and reassembled.

use std::time::Duration;

use coap_lite::{CoapOption, MessageClass, MessageType, Packet};
use tokio::time::Instant;

use m2msec_proto::{RequestPrimitive, ResponsePrimitive};
use m2msec_tls::DtlsSession;

use crate::coap::{block2, request_to_coap, response_from_coap};

/// RFC 7252 §4.8 transmission parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Transmission {
    /// ACK_TIMEOUT (default 2 s).
    pub ack_timeout: Duration,
    /// ACK_RANDOM_FACTOR (default 1.5).
    pub ack_random_factor: f64,
    /// MAX_RETRANSMIT (default 4).
    pub max_retransmit: u32,
    /// How long to wait for a separate response after an empty ACK (default: EXCHANGE_LIFETIME,
    /// 247 s).
    pub separate_timeout: Duration,
    /// Largest reassembled response payload (Block2), in bytes.
    pub max_response: usize,
}

impl Default for Transmission {
    fn default() -> Self {
        Transmission {
            ack_timeout: Duration::from_secs(2),
            ack_random_factor: 1.5,
            max_retransmit: 4,
            separate_timeout: Duration::from_secs(247),
            max_response: 16 * 1024 * 1024,
        }
    }
}

/// Why an exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum CoapClientError {
    /// The request primitive cannot be written as a CoAP request.
    #[error("request: {0}")]
    Request(String),
    /// No ACK after MAX_RETRANSMIT retransmissions, or no separate response in time.
    #[error("no CoAP response (timeout)")]
    Timeout,
    /// The server reset the exchange (RFC 7252 §4.2).
    #[error("the server answered with a CoAP Reset")]
    Reset,
    /// The response is not a oneM2M response.
    #[error("response: {0}")]
    Response(String),
    /// The DTLS session failed.
    #[error("DTLS: {0}")]
    Dtls(#[from] m2msec_tls::Error),
}

/// A CoAP client on one DTLS session.
#[derive(Debug)]
pub struct CoapClient {
    session: DtlsSession,
    params: Transmission,
    next_mid: u16,
    next_token: u64,
    seed: u64,
}

/// A random seed for the first Message ID and Token (RFC 7252 §4.4: "randomized", §5.3.1). Not a
/// clock reading: std's `RandomState` keys come from the OS's random source, and each `new()`
/// gives different keys, so the hash of nothing differs per client.
fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
}

impl CoapClient {
    /// A client on `session` with the default transmission parameters.
    pub fn new(session: DtlsSession) -> Self {
        Self::with_params(session, Transmission::default())
    }

    /// A client with explicit transmission parameters.
    pub fn with_params(session: DtlsSession, params: Transmission) -> Self {
        let seed = random_u64();
        CoapClient {
            session,
            params,
            next_mid: seed as u16,
            next_token: seed.rotate_left(17),
            seed,
        }
    }

    /// The DTLS session (e.g. to send raw datagrams in tests).
    pub fn session_mut(&mut self) -> &mut DtlsSession {
        &mut self.session
    }

    /// Gives the session back.
    pub fn into_session(self) -> DtlsSession {
        self.session
    }

    /// A fresh message ID.
    pub fn next_message_id(&mut self) -> u16 {
        self.next_mid = self.next_mid.wrapping_add(1);
        self.next_mid
    }

    fn next_token(&mut self) -> Vec<u8> {
        self.next_token = self.next_token.wrapping_add(0x9E37_79B9_7F4A_7C15);
        self.next_token.to_be_bytes().to_vec()
    }

    /// A random factor in [1, ACK_RANDOM_FACTOR).
    fn jitter(&mut self) -> f64 {
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let unit = (self.seed >> 11) as f64 / (1u64 << 53) as f64;
        1.0 + unit * (self.params.ack_random_factor - 1.0).max(0.0)
    }

    /// Sends one request primitive and returns its response primitive. Extra Uri-Query options
    /// (`k=v`) may be given for parameters `request_to_coap` does not write.
    pub async fn request(
        &mut self,
        req: &RequestPrimitive,
        extra_query: &[String],
    ) -> Result<ResponsePrimitive, CoapClientError> {
        let mut pkt = request_to_coap(req).map_err(|e| CoapClientError::Request(e.detail))?;
        for q in extra_query {
            pkt.add_option(CoapOption::UriQuery, q.as_bytes().to_vec());
        }
        let mut resp = self.exchange(pkt.clone()).await?;
        // RFC 7959 §2.4: fetch the remaining blocks.
        if let Some(mut b) = block2(&resp) {
            let mut payload = std::mem::take(&mut resp.payload);
            while b.more {
                let next = usize::from(b.num) + 1;
                let mut p = pkt.clone();
                let bv = coap_lite::block_handler::BlockValue::new(next, false, b.size())
                    .map_err(|e| CoapClientError::Response(format!("Block2: {e:?}")))?;
                p.add_option_as(CoapOption::Block2, bv);
                let r = self.exchange(p).await?;
                let nb = block2(&r).ok_or_else(|| {
                    CoapClientError::Response("a block without a Block2 option".into())
                })?;
                if usize::from(nb.num) != next {
                    return Err(CoapClientError::Response("Block2 out of order".into()));
                }
                if payload.len() + r.payload.len() > self.params.max_response {
                    return Err(CoapClientError::Response("response too large".into()));
                }
                payload.extend_from_slice(&r.payload);
                b = nb;
                resp = r;
            }
            resp.payload = payload;
        }
        response_from_coap(&resp).map_err(|e| CoapClientError::Response(e.detail))
    }

    /// One CON exchange: sends `pkt` (a fresh message ID and token are set), retransmits per
    /// RFC 7252 §4.2, returns the matching response message.
    pub async fn exchange(&mut self, mut pkt: Packet) -> Result<Packet, CoapClientError> {
        let mid = self.next_message_id();
        let token = self.next_token();
        pkt.header.set_version(1);
        pkt.header.set_type(MessageType::Confirmable);
        pkt.header.message_id = mid;
        pkt.set_token(token.clone());
        let bytes = pkt
            .to_bytes_unlimited()
            .map_err(|e| CoapClientError::Request(format!("{e:?}")))?;
        let mut timeout = self.params.ack_timeout.mul_f64(self.jitter());
        let mut sent = 0u32;
        self.session.send(&bytes).await?;
        let mut deadline = Instant::now() + timeout;
        let mut acked = false;
        loop {
            let r = tokio::time::timeout_at(deadline, self.session.recv()).await;
            let d = match r {
                Err(_) if acked => return Err(CoapClientError::Timeout),
                Err(_) => {
                    if sent >= self.params.max_retransmit {
                        return Err(CoapClientError::Timeout);
                    }
                    sent += 1;
                    timeout *= 2;
                    self.session.send(&bytes).await?;
                    deadline = Instant::now() + timeout;
                    continue;
                }
                Ok(d) => d?,
            };
            let Ok(r) = Packet::from_bytes(&d) else {
                continue;
            };
            let rtype = r.header.get_type();
            match rtype {
                MessageType::Reset if r.header.message_id == mid => {
                    return Err(CoapClientError::Reset)
                }
                MessageType::Acknowledgement if r.header.message_id == mid => {
                    if r.header.code == MessageClass::Empty {
                        // Separate response to follow (RFC 7252 §5.2.2).
                        acked = true;
                        deadline = Instant::now() + self.params.separate_timeout;
                        continue;
                    }
                    if r.get_token() == token.as_slice() {
                        return Ok(r);
                    }
                }
                MessageType::Confirmable | MessageType::NonConfirmable
                    if r.get_token() == token.as_slice()
                        && matches!(r.header.code, MessageClass::Response(_)) =>
                {
                    if rtype == MessageType::Confirmable {
                        let mut ack = Packet::new();
                        ack.header.set_version(1);
                        ack.header.set_type(MessageType::Acknowledgement);
                        ack.header.message_id = r.header.message_id;
                        if let Ok(b) = ack.to_bytes() {
                            self.session.send(&b).await?;
                        }
                    }
                    return Ok(r);
                }
                _ => {}
            }
        }
    }
}
