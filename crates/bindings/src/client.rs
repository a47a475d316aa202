//! The originator side of the HTTP binding (TS-0009 §6): one HTTP/1.1 connection (keep-alive)
//! over any stream (a TLS channel, or TCP for local tools), sending request primitives and
//! returning response primitives. Used by the Enrolee, by a CSE fetching keys from its MEF,
//! and by tests and benchmarks.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};

use m2msec_cse::{RequestPrimitive, ResponsePrimitive};

use crate::http::{request_to_http, response_from_http};

/// Largest response body accepted.
pub const MAX_RESPONSE: usize = 1024 * 1024;

/// Why an exchange failed (transport or an unmappable message; an error *status* is a
/// successful exchange).
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// HTTP transport.
    #[error("HTTP: {0}")]
    Http(String),
    /// The request could not be written, or the response not read as a primitive.
    #[error("{0}")]
    Mapping(String),
}

/// One HTTP/1.1 connection.
pub struct HttpClient {
    sender: http1::SendRequest<Full<Bytes>>,
    host: String,
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
        let (sender, conn) = http1::handshake(TokioIo::new(io))
            .await
            .map_err(|e| ClientError::Http(e.to_string()))?;
        let conn = tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(HttpClient {
            sender,
            host: host.to_string(),
            conn,
        })
    }

    /// Whether the connection is closed (the server ended it, e.g. after its idle timeout): a
    /// request sent on it would fail before being written.
    pub fn is_closed(&self) -> bool {
        self.sender.is_closed()
    }

    /// Sends one request primitive and reads its response primitive.
    pub async fn send(&mut self, req: &RequestPrimitive) -> Result<ResponsePrimitive, ClientError> {
        let r = request_to_http(req, &self.host)
            .map_err(|e| ClientError::Mapping(e.detail))?
            .map(Full::new);
        self.sender
            .ready()
            .await
            .map_err(|e| ClientError::Http(e.to_string()))?;
        let resp = self
            .sender
            .send_request(r)
            .await
            .map_err(|e| ClientError::Http(e.to_string()))?;
        let (parts, body) = resp.into_parts();
        let body = Limited::new(body, MAX_RESPONSE)
            .collect()
            .await
            .map_err(|e| ClientError::Http(format!("reading the response: {e}")))?
            .to_bytes();
        response_from_http(parts.status, &parts.headers, &body)
            .map_err(|e| ClientError::Mapping(e.detail))
    }
}
