//! The originator side of the HTTP binding (TS-0009 §6): one HTTP/1.1 connection (keep-alive)
//! over any stream (a TLS channel, or TCP for local tools), sending request primitives and
//! returning response primitives. Used by the Enrolee, by a CSE fetching keys from its MEF,
//! and by tests and benchmarks.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};

use m2msec_proto::{RequestPrimitive, ResponsePrimitive};

use crate::http::{request_to_http, response_from_http};

/// Largest response body accepted by default ([`HttpClient::with_max_response`] changes it).
pub const MAX_RESPONSE: usize = 1024 * 1024;

/// Why an exchange failed (transport or an unmappable message; an error *status* is a
/// successful exchange).
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// HTTP transport.
    #[error("HTTP: {0}")]
    Http(#[from] hyper::Error),
    /// The response body could not be read (transport failure, or larger than the limit).
    #[error("reading the response: {0}")]
    Body(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The request could not be written, or the response not read as a primitive.
    #[error("{0}")]
    Mapping(String),
}

/// One HTTP/1.1 connection.
pub struct HttpClient {
    sender: http1::SendRequest<Full<Bytes>>,
    host: String,
    max_response: usize,
    conn: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient")
            .field("host", &self.host)
            .finish_non_exhaustive()
    }
}

impl Drop for HttpClient {
    fn drop(&mut self) {
        self.conn.abort();
    }
}

impl HttpClient {
    /// Starts HTTP/1.1 on `io`; `host` goes into the Host header.
    pub async fn new<I>(io: I, host: &str) -> Result<Self, ClientError>
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (sender, conn) = http1::handshake(TokioIo::new(io)).await?;
        let conn = tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(HttpClient {
            sender,
            host: host.to_string(),
            max_response: MAX_RESPONSE,
            conn,
        })
    }

    /// Whether the connection is closed (the server ended it, e.g. after its idle timeout): a
    /// request sent on it would fail before being written.
    pub fn is_closed(&self) -> bool {
        self.sender.is_closed()
    }

    /// Accepts response bodies up to `limit` bytes (default [`MAX_RESPONSE`]).
    pub fn with_max_response(mut self, limit: usize) -> Self {
        self.max_response = limit;
        self
    }

    /// Sends one request primitive and reads its response primitive.
    pub async fn send(&mut self, req: &RequestPrimitive) -> Result<ResponsePrimitive, ClientError> {
        let r = request_to_http(req, &self.host).map_err(|e| ClientError::Mapping(e.detail))?;
        self.send_http(r).await
    }

    /// Sends a request already mapped to HTTP (e.g. with a query the caller wrote itself) and
    /// reads its response primitive.
    pub async fn send_http(
        &mut self,
        r: hyper::http::Request<Bytes>,
    ) -> Result<ResponsePrimitive, ClientError> {
        let r = r.map(Full::new);
        self.sender.ready().await?;
        let resp = self.sender.send_request(r).await?;
        let (parts, body) = resp.into_parts();
        let body = Limited::new(body, self.max_response)
            .collect()
            .await
            .map_err(ClientError::Body)?
            .to_bytes();
        response_from_http(parts.status, &parts.headers, &body)
            .map_err(|e| ClientError::Mapping(e.detail))
    }
}
