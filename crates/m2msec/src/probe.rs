//! `m2msec probe`: the oneM2M-aware counterpart of `openssl s_client` / `s_server` for (D)TLS 1.2
//! pre-shared-key security associations (TS-0003 §8.2.2.1, §10.2; issue 3 item 8).
//!
//! Output contract (stable, one JSON object per line, stdout flushed after each line):
//! * a completed handshake: `{"peer":"ip:port","protocol":"TLSv1.2"|"DTLSv1.2",
//!   "cipher":"<IANA name>","psk_identity":…,"sni":…}` plus `"export":"<96 lowercase hex>"` with
//!   `--print-export`;
//! * a failed handshake: `{"peer":…,"error":"<reason>"}`.
//!
//! `connect` exits 0 after a handshake, 1 after a failed one; bad arguments exit 2 with one line
//! on stderr naming the argument.
//!
//! Certificates (ECDHE-ECDSA, P-256; TS-0003 §8.2.2.2): `listen --cert FILE --key FILE` adds the
//! certificate suites (alone or next to PSK), `--client-ca FILE` requires client certificates;
//! `connect --ca FILE` authenticates the server by its chain to these anchors and an exact
//! SubjectAltName match (`--peer-name`, default the SNI/HOST, `--peer-uri`, or `--peer-node-id`
//! for a Node-ID certificate, bound to `34-<Node-ID>`), optionally with `--cert/--key` as client
//! certificate. Raw public keys (RFC 7250): `listen --raw-key` offers the --cert key as a raw
//! key, `connect --pk-id ni:///sha-256;…` accepts exactly that key; `listen --client-pk-id NI`
//! asks clients for a raw key with that identifier (bound to `30-NI`), which `connect --pk-id …
//! --cert/--key` presents.
//! Certificate and raw-key handshakes add `"credential"` (`certificate` | `raw_public_key`),
//! `"subject_alt_names"` and `"bound_identity"` (e.g. `30-ni:///sha-256;…`) to the JSON line.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{ArgGroup, Args, Subcommand};
use m2msec_tls::config::sni_for_host;
use m2msec_tls::{
    CertCredential, ClientAuth, ClientConfig, ClientCredential, CredentialKind, DtlsClient,
    DtlsOptions, DtlsServer, ExpectedName, ExportedKeyingMaterial, Peer, PkId, Psk, PskIdentity,
    PskTable, ServerCertificates, ServerConfig, TlsClient, TlsServer, TrustAnchors,
};
use serde::Serialize;

use crate::error::CliError;
use crate::util::{hex_arg, read_file};
use zeroize::Zeroizing;

/// Default exporter label (TS-0003 §10.3.1).
const DEFAULT_LABEL: &str = "EXPORTER-oneM2M-Bootstrap";

/// Probe subcommands.
#[derive(Subcommand)]
pub enum ProbeCmd {
    /// Accept (D)TLS 1.2 handshakes (PSK and/or certificate) until killed; one JSON line each.
    Listen(ListenArgs),
    /// Run one (D)TLS 1.2 handshake (PSK or certificate); print its JSON line; exit 0, or 1.
    Connect(ConnectArgs),
}

/// Transport selection (exactly one).
#[derive(Args)]
#[command(group(ArgGroup::new("transport").required(true).args(["tls", "dtls"])))]
pub struct TransportArgs {
    /// TLS 1.2 over TCP (TLS_PSK_WITH_AES_128_CBC_SHA256, TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256).
    #[arg(long)]
    tls: bool,
    /// DTLS 1.2 over UDP (TLS_PSK_WITH_AES_128_CCM_8, TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8).
    #[arg(long)]
    dtls: bool,
}

/// Credential and output options shared by `listen` and `connect`.
#[derive(Args)]
pub struct CommonArgs {
    /// psk_identity (UTF-8 key identifier: KpsaID, KmID, KeID, MAF Key Identifier, KxID).
    /// Required unless certificates are used.
    #[arg(long = "psk-id", value_name = "ID")]
    psk_id: Option<String>,
    /// The pre-shared key in hex (any case).
    #[arg(long, value_name = "HEX")]
    psk: Option<String>,
    /// Our certificate chain, PEM, leaf first (P-256 key). Listen: the server certificate, which
    /// adds the ECDHE-ECDSA suites. Connect: a client certificate (with --ca).
    #[arg(long, value_name = "FILE", requires = "key")]
    cert: Option<PathBuf>,
    /// The private key of --cert, PEM.
    #[arg(long, value_name = "FILE", requires = "cert")]
    key: Option<PathBuf>,
    /// RFC 5705 exporter label used with --print-export.
    #[arg(long, value_name = "LABEL", default_value = DEFAULT_LABEL)]
    label: String,
    /// Add "export": 48 bytes exported with LABEL and no context, lowercase hex.
    #[arg(long = "print-export")]
    print_export: bool,
    /// Handshake timeout in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 20)]
    timeout: u64,
}

/// `probe listen`.
#[derive(Args)]
pub struct ListenArgs {
    #[command(flatten)]
    transport: TransportArgs,
    /// Port to listen on (TCP for --tls, UDP for --dtls); 0 picks a free one. The bound address
    /// is announced on stderr as `m2msec probe: listening on ADDR (tls|dtls)`.
    #[arg(long)]
    port: u16,
    /// Address to bind.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1")]
    bind: IpAddr,
    /// Require client certificates chaining to these PEM trust anchors (certificate suites).
    #[arg(long = "client-ca", value_name = "FILE")]
    client_ca: Option<PathBuf>,
    /// Also offer the --cert key as an RFC 7250 raw public key (to clients that ask for one).
    #[arg(long = "raw-key", requires = "cert")]
    raw_key: bool,
    /// Require a client RFC 7250 raw public key with this RFC 6920 identifier
    /// (`ni:///sha-256;…`; repeatable); the SA binds to `30-<identifier>`. Needs --cert.
    #[arg(long = "client-pk-id", value_name = "NI", requires = "cert")]
    client_pk_id: Vec<String>,
    #[command(flatten)]
    common: CommonArgs,
}

/// `probe connect`.
#[derive(Args)]
pub struct ConnectArgs {
    #[command(flatten)]
    transport: TransportArgs,
    /// The server, HOST:PORT (IPv6 as [ADDR]:PORT).
    #[arg(value_name = "HOST:PORT")]
    target: String,
    /// SNI host name (default: HOST when it is a name; an IP address is never sent as SNI).
    #[arg(long, value_name = "NAME")]
    sni: Option<String>,
    /// Authenticate the server by certificate: PEM trust anchors (offers only ECDHE-ECDSA).
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
    /// dNSName the server certificate must carry, exactly (default: the SNI, else HOST).
    #[arg(
        long = "peer-name",
        value_name = "NAME",
        requires = "ca",
        conflicts_with = "peer_uri"
    )]
    peer_name: Option<String>,
    /// URI SubjectAltName the server certificate must carry instead (e.g. an absolute AE-ID).
    #[arg(long = "peer-uri", value_name = "URI", requires = "ca")]
    peer_uri: Option<String>,
    /// Node-ID the server's Node-ID certificate must carry instead (otherName or URI, exact);
    /// the SA binds to `34-<Node-ID>`.
    #[arg(
        long = "peer-node-id",
        value_name = "NODE-ID",
        requires = "ca",
        conflicts_with_all = ["peer_name", "peer_uri"]
    )]
    peer_node_id: Option<String>,
    /// Authenticate the server by its RFC 7250 raw public key: the RFC 6920 identifier of its
    /// SubjectPublicKeyInfo, e.g. `ni:///sha-256;<base64url>`. With --cert/--key, our key is
    /// presented as a raw public key when the server asks for one.
    #[arg(long = "pk-id", value_name = "NI", conflicts_with = "ca")]
    pk_id: Option<String>,
    #[command(flatten)]
    common: CommonArgs,
}

/// One JSON line: a completed handshake.
#[derive(Serialize)]
struct HandshakeLine<'a> {
    peer: String,
    protocol: &'a str,
    cipher: &'a str,
    psk_identity: Option<&'a str>,
    sni: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    export: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    credential: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    subject_alt_names: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bound_identity: Option<&'a str>,
}

/// One JSON line: a failed handshake.
#[derive(Serialize)]
struct ErrorLine<'a> {
    peer: &'a str,
    error: &'a str,
}

/// Validated credentials and options.
struct Common {
    psk: Option<(PskIdentity, Psk)>,
    cert: Option<CertCredential>,
    label: Option<String>,
    timeout: Duration,
}

fn common(c: &CommonArgs) -> Result<Common, CliError> {
    let psk = match (&c.psk_id, &c.psk) {
        (Some(id), Some(hex)) => {
            let identity = PskIdentity::new(id).map_err(|e| CliError::arg("--psk-id", e))?;
            let key = hex_arg("--psk", hex)?;
            let psk = Psk::new(&key).map_err(|e| CliError::arg("--psk", e))?;
            Some((identity, psk))
        }
        (Some(_), None) => return Err(CliError::arg("--psk", "required with --psk-id")),
        (None, Some(_)) => return Err(CliError::arg("--psk-id", "required with --psk")),
        (None, None) => None,
    };
    let cert = match (&c.cert, &c.key) {
        (Some(cert), Some(key)) => {
            let chain = read_file("--cert", cert)?;
            let key = Zeroizing::new(read_file("--key", key)?);
            Some(CertCredential::from_pem(&chain, &key).map_err(|e| CliError::arg("--cert", e))?)
        }
        _ => None,
    };
    if c.label.is_empty() || !c.label.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(CliError::arg(
            "--label",
            "must be non-empty printable ASCII",
        ));
    }
    if c.timeout == 0 {
        return Err(CliError::arg("--timeout", "must be at least 1 second"));
    }
    Ok(Common {
        psk,
        cert,
        label: c.print_export.then(|| c.label.clone()),
        timeout: Duration::from_secs(c.timeout),
    })
}

fn anchors(arg: &str, path: &Path) -> Result<TrustAnchors, CliError> {
    TrustAnchors::from_pem(&read_file(arg, path)?).map_err(|e| CliError::arg(arg, e))
}

fn emit(line: &impl Serialize) {
    if let Ok(s) = serde_json::to_string(line) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{s}");
        let _ = out.flush();
    }
}

/// Print the line for a completed handshake; `export` computes the keying material on demand.
fn emit_handshake(peer: &Peer, export: Option<Result<String, m2msec_tls::Error>>) {
    let export = match export {
        None => None,
        Some(Ok(h)) => Some(h),
        Some(Err(e)) => {
            emit_error(&peer.addr.to_string(), &e.to_string());
            return;
        }
    };
    let cert = peer.credential != CredentialKind::Psk;
    emit(&HandshakeLine {
        peer: peer.addr.to_string(),
        protocol: peer.protocol.as_str(),
        cipher: &peer.cipher,
        psk_identity: peer.psk_identity.as_ref().map(|p| p.as_str()),
        sni: peer.sni.as_deref(),
        export,
        credential: cert.then_some(peer.credential.as_str()),
        subject_alt_names: cert.then_some(peer.subject_alt_names.as_slice()),
        bound_identity: if cert {
            peer.bound_identity.as_ref().map(|b| b.as_str())
        } else {
            None
        },
    });
}

fn emit_error(peer: &str, error: &str) {
    emit(&ErrorLine { peer, error });
}

/// One notice on stderr when the socket is bound (stdout carries only handshake lines), so a
/// caller that passed `--port 0` learns the port.
fn announce(transport: &str, addr: SocketAddr) {
    eprintln!("m2msec probe: listening on {addr} ({transport})");
}

fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(CliError::other)
}

/// Run a probe subcommand.
pub fn run(cmd: ProbeCmd) -> Result<ExitCode, CliError> {
    match cmd {
        ProbeCmd::Listen(a) => listen(a),
        ProbeCmd::Connect(a) => connect(a),
    }
}

fn listen(a: ListenArgs) -> Result<ExitCode, CliError> {
    let c = common(&a.common)?;
    let mut cfg = match (c.psk.clone(), c.cert.clone()) {
        (Some((id, key)), cert) => {
            let table = PskTable::new();
            table.insert(id, key);
            match cert {
                Some(cert) => {
                    let mut certs = ServerCertificates::new();
                    certs.set_default(cert);
                    ServerConfig::infrastructure(Arc::new(table), certs)
                }
                None => ServerConfig::psk(Arc::new(table)),
            }
        }
        (None, Some(cert)) => {
            let mut certs = ServerCertificates::new();
            certs.set_default(cert);
            ServerConfig::certificates(certs)
        }
        (None, None) => return Err(CliError::arg("--psk-id", "required (or --cert and --key)")),
    };
    if let Some(ca) = &a.client_ca {
        if cfg.certificates.is_none() {
            return Err(CliError::arg("--client-ca", "requires --cert and --key"));
        }
        cfg.client_auth = Some(ClientAuth {
            anchors: anchors("--client-ca", ca)?,
            allowed: Vec::new(),
        });
    }
    cfg.offer_raw_public_key = a.raw_key;
    cfg.client_raw_keys = a
        .client_pk_id
        .iter()
        .map(|t| PkId::parse(t).map_err(|e| CliError::arg("--client-pk-id", e)))
        .collect::<Result<_, _>>()?;
    cfg.handshake_timeout = c.timeout;
    let addr = SocketAddr::new(a.bind, a.port);
    let label = c.label.clone();
    let rt = runtime()?;
    rt.block_on(async move {
        if a.transport.dtls {
            let mut server = DtlsServer::bind(addr, &cfg, DtlsOptions::default())
                .await
                .map_err(|e| CliError::arg("--port", e))?;
            announce("dtls", server.local_addr());
            while let Some(accepted) = server.accept().await {
                match accepted {
                    Ok(mut s) => {
                        let export = label.as_deref().map(|l| export_hex(s.export_with_label(l)));
                        emit_handshake(s.peer(), export);
                        tokio::spawn(async move {
                            let _ = s.close().await;
                        });
                    }
                    Err(e) => emit_error(&e.addr.to_string(), &e.error.to_string()),
                }
            }
            Err(CliError::other("DTLS server stopped"))
        } else {
            let server = TlsServer::new(&cfg).map_err(CliError::other)?;
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| CliError::arg("--port", e))?;
            announce("tls", listener.local_addr().map_err(CliError::other)?);
            loop {
                let (tcp, from) = match listener.accept().await {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::debug!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let server = server.clone();
                let label = label.clone();
                tokio::spawn(async move {
                    match server.accept(tcp).await {
                        Ok(mut ch) => {
                            let export = label
                                .as_deref()
                                .map(|l| export_hex(ch.export_with_label(l)));
                            emit_handshake(ch.peer(), export);
                            let _ = tokio::time::timeout(Duration::from_secs(2), ch.close()).await;
                        }
                        Err(e) => emit_error(&from.to_string(), &e.to_string()),
                    }
                });
            }
        }
    })
}

fn export_hex(
    k: Result<ExportedKeyingMaterial, m2msec_tls::Error>,
) -> Result<String, m2msec_tls::Error> {
    k.map(|k| m2msec_tls::exporter::to_hex(&k).to_string())
}

/// Split `HOST:PORT` (IPv6 literal in brackets), with the bindings' one URL parser.
fn split_target(t: &str) -> Result<(String, u16), CliError> {
    m2msec_bindings::url::ServiceUrl::parse_authority(t)
        .map_err(|e| CliError::arg("HOST:PORT", format!("{t:?}: {}", e.reason())))
}

fn connect(a: ConnectArgs) -> Result<ExitCode, CliError> {
    let c = common(&a.common)?;
    let (host, port) = split_target(&a.target)?;
    if let Some(s) = &a.sni {
        if s.is_empty() || s.parse::<IpAddr>().is_ok() {
            return Err(CliError::arg(
                "--sni",
                "must be a host name, not an IP address",
            ));
        }
    }
    let mut cfg = match (&a.ca, c.psk) {
        _ if a.pk_id.is_some() => {
            let text = a.pk_id.as_deref().unwrap_or_default();
            let id = PkId::parse(text).map_err(|e| CliError::arg("--pk-id", e))?;
            let mut cfg = ClientConfig::raw_public_key(id.clone());
            cfg.credential = ClientCredential::RawPublicKey {
                expected: vec![id],
                own: c.cert,
            };
            cfg
        }
        (Some(ca), _) => {
            let expected = match (&a.peer_node_id, &a.peer_uri, &a.peer_name) {
                (Some(node), _, _) => ExpectedName::NodeId(node.clone()),
                (None, Some(uri), _) => ExpectedName::Uri(uri.clone()),
                (None, None, Some(name)) => ExpectedName::Dns(name.clone()),
                (None, None, None) => match a.sni.clone().or_else(|| sni_for_host(&host)) {
                    Some(name) => ExpectedName::Dns(name),
                    None => {
                        return Err(CliError::arg(
                            "--peer-name",
                            "required when HOST is an IP address",
                        ))
                    }
                },
            };
            ClientConfig::certificate(anchors("--ca", ca)?, expected, c.cert)
        }
        (None, Some((id, key))) => {
            if c.cert.is_some() {
                return Err(CliError::arg("--cert", "a client certificate needs --ca"));
            }
            ClientConfig::psk(id, key)
        }
        (None, None) => return Err(CliError::arg("--psk-id", "required (or --ca or --pk-id)")),
    };
    cfg.handshake_timeout = c.timeout;
    let label = c.label;
    let rt = runtime()?;
    let ok = rt.block_on(async move {
        let sni = a.sni.as_deref();
        if a.transport.dtls {
            let client = DtlsClient::new(cfg, DtlsOptions::default()).map_err(CliError::other)?;
            match client.connect(&host, port, sni).await {
                Ok(mut s) => {
                    let export = label.as_deref().map(|l| export_hex(s.export_with_label(l)));
                    emit_handshake(s.peer(), export);
                    let _ = s.close().await;
                    Ok::<bool, CliError>(true)
                }
                Err(e) => {
                    emit_error(&a.target, &e.to_string());
                    Ok(false)
                }
            }
        } else {
            let client = TlsClient::new(cfg).map_err(CliError::other)?;
            match client.connect(&host, port, sni).await {
                Ok(mut ch) => {
                    let export = label
                        .as_deref()
                        .map(|l| export_hex(ch.export_with_label(l)));
                    emit_handshake(ch.peer(), export);
                    let _ = tokio::time::timeout(Duration::from_secs(2), ch.close()).await;
                    Ok(true)
                }
                Err(e) => {
                    emit_error(&a.target, &e.to_string());
                    Ok(false)
                }
            }
        }
    })?;
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        assert_eq!(
            split_target("mef.example.com:5684").unwrap(),
            ("mef.example.com".into(), 5684)
        );
        assert_eq!(split_target("[::1]:443").unwrap(), ("::1".into(), 443));
        assert!(split_target("nohost").is_err());
        assert!(split_target("h:0").is_err());
        assert!(split_target("h:99999").is_err());
    }
}
