//! TLS 1.2 over TCP on tokio (TS-0003 §10.2.2, §10.2.3).
//!
//! [`TlsClient`] sends the configured `psk_identity` and SNI = the target authority's host name
//! (never an IP address); [`TlsServer`] resolves the identity through its credential source for
//! the authority named in SNI. Both return a [`TlsChannel`]: an `AsyncRead + AsyncWrite` stream
//! plus the authenticated [`Peer`] and the RFC 5705 exporter.

use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use openssl::ssl::{Ssl, SslContext, SslRef};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::cert::ExpectedName;
use crate::config::{sni_for_host, ClientConfig, ClientCredential, ServerConfig};
use crate::context::{self, Transport};
use crate::error::{self, Error, Result};
use crate::exporter::{self, ExportedKeyingMaterial, ExporterLabel};
use crate::peer::{BoundIdentity, Peer, Protocol, Role};

/// A TLS 1.2 client for one credential.
#[derive(Clone)]
pub struct TlsClient {
    ctx: SslContext,
    cfg: ClientConfig,
}

impl TlsClient {
    /// Build the client context.
    pub fn new(cfg: ClientConfig) -> Result<Self> {
        let ctx = context::client_context(Transport::Tls, &cfg)?;
        Ok(TlsClient { ctx, cfg })
    }

    /// Connect to `host:port` and run the handshake. SNI is `sni` if given, else `host` when it
    /// is a name (an IP address is never sent as SNI).
    pub async fn connect(&self, host: &str, port: u16, sni: Option<&str>) -> Result<TlsChannel> {
        let deadline = self.cfg.handshake_timeout;
        let tcp = tokio::time::timeout(deadline, TcpStream::connect((host, port)))
            .await
            .map_err(|_| Error::HandshakeTimeout(deadline))??;
        let sni = match sni {
            Some(s) => sni_for_host(s),
            None => sni_for_host(host),
        };
        self.handshake(tcp, sni.as_deref()).await
    }

    /// Run the client handshake on an established TCP stream.
    pub async fn handshake(&self, tcp: TcpStream, sni: Option<&str>) -> Result<TlsChannel> {
        let addr = tcp.peer_addr()?;
        let _ = tcp.set_nodelay(true);
        let mut ssl = Ssl::new(&self.ctx)?;
        ssl.set_connect_state();
        if let Some(name) = sni {
            ssl.set_hostname(name)?;
        }
        let mut stream = tokio_openssl::SslStream::new(ssl, tcp)?;
        let deadline = self.cfg.handshake_timeout;
        match tokio::time::timeout(deadline, Pin::new(&mut stream).connect()).await {
            Err(_) => return Err(Error::HandshakeTimeout(deadline)),
            Ok(Err(e)) => return Err(error::handshake_error(&e, stream.ssl())),
            Ok(Ok(())) => {}
        }
        let bound = self.cfg.peer_id.clone().map(BoundIdentity::Configured);
        let mut peer = Peer::from_ssl(
            stream.ssl(),
            addr,
            Role::Client,
            Protocol::Tls12,
            self.cfg.credential.psk_identity().cloned(),
            bound,
            expected_names(&self.cfg),
        );
        // OpenSSL reports the SNI only on the server side; record what we sent.
        peer.sni = sni.map(str::to_ascii_lowercase);
        Ok(TlsChannel { stream, peer })
    }
}

/// A TLS 1.2 server context shared by all accepted connections.
#[derive(Clone)]
pub struct TlsServer {
    ctx: SslContext,
    handshake_timeout: Duration,
    client_names: Vec<ExpectedName>,
}

impl TlsServer {
    /// Build the server context.
    pub fn new(cfg: &ServerConfig) -> Result<Self> {
        let ctx = context::server_context(Transport::Tls, cfg, None)?;
        Ok(TlsServer {
            ctx,
            handshake_timeout: cfg.handshake_timeout,
            client_names: cfg
                .client_auth
                .as_ref()
                .map(|a| a.allowed.clone())
                .unwrap_or_default(),
        })
    }

    /// Run the server handshake on an accepted TCP stream.
    pub async fn accept(&self, tcp: TcpStream) -> Result<TlsChannel> {
        let addr = tcp.peer_addr()?;
        let _ = tcp.set_nodelay(true);
        let mut ssl = Ssl::new(&self.ctx)?;
        ssl.set_accept_state();
        let mut stream = tokio_openssl::SslStream::new(ssl, tcp)?;
        let deadline = self.handshake_timeout;
        let r = match tokio::time::timeout(deadline, Pin::new(&mut stream).accept()).await {
            Err(_) => Err(Error::HandshakeTimeout(deadline)),
            Ok(Err(e)) => Err(error::handshake_error(&e, stream.ssl())),
            Ok(Ok(())) => Ok(()),
        };
        if let Err(e) = r {
            // The reason names alerts and identities, never key material.
            tracing::info!(peer = %addr, error = %e, "TLS handshake failed");
            return Err(e);
        }
        let binding = stream.ssl().ex_data(context::binding_index()?).cloned();
        let (identity, bound) = match binding {
            Some(b) => (Some(b.identity), Some(b.bound)),
            None => (None, None),
        };
        let peer = Peer::from_ssl(
            stream.ssl(),
            addr,
            Role::Server,
            Protocol::Tls12,
            identity,
            bound,
            &self.client_names,
        );
        Ok(TlsChannel { stream, peer })
    }
}

/// An established TLS 1.2 security association.
pub struct TlsChannel {
    stream: tokio_openssl::SslStream<TcpStream>,
    peer: Peer,
}

impl TlsChannel {
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

    /// Send close_notify and shut down the write side.
    pub async fn close(&mut self) -> Result<()> {
        use tokio::io::AsyncWriteExt;
        self.stream.shutdown().await.map_err(Error::Io)
    }

    /// The peer's transport address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer.addr
    }
}

impl std::fmt::Debug for TlsChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsChannel")
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

impl AsyncRead for TlsChannel {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsChannel {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// The names a client expects on the server certificate (empty for PSK).
pub(crate) fn expected_names(cfg: &ClientConfig) -> &[ExpectedName] {
    match &cfg.credential {
        ClientCredential::Certificate { expected, .. } => expected,
        ClientCredential::Psk { .. } | ClientCredential::RawPublicKey { .. } => &[],
    }
}
