//! `m2msec request`: the oneM2M curl. Sends one request primitive over HTTP (TS-0009) inside a
//! TLS 1.2 PSK security association (TS-0003 §8.2.2.1), or in plaintext to a loopback address,
//! or over CoAP (TS-0008) inside a DTLS 1.2 PSK security association (`coaps://`, TS-0008 §7),
//! and prints the response primitive as one JSON line `{"rsc":…,"rqi":…,"pc":…}`.
//!
//! Exit status: 0 for a 2xxx RSC, 1 for an error RSC, 2 for every other error: bad arguments (one
//! line on stderr naming the argument), a failed connection or handshake, no response in time
//! (one line on stderr).

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use bytes::Bytes;
use clap::{Args, ValueEnum};
use serde_json::Value;

use m2msec_bindings::client::HttpClient;
use m2msec_bindings::http::{request_to_http, to_from_path};
use m2msec_bindings::url::{Scheme, ServiceUrl};
use m2msec_bindings::CoapClient;
use m2msec_cse::{Operation, RequestPrimitive, ResultContent};
use m2msec_tls::{ClientConfig, DtlsClient, DtlsOptions, Psk, PskIdentity, TlsClient};

use crate::error::CliError;
use crate::util::{hex_arg, read_file};

/// Largest response body accepted.
const MAX_RESPONSE: usize = 16 * 1024 * 1024;

/// The operation.
#[derive(Clone, Copy, ValueEnum)]
pub enum Op {
    /// CREATE (HTTP POST with ty).
    Create,
    /// RETRIEVE (GET).
    Retrieve,
    /// UPDATE (PUT).
    Update,
    /// DELETE (DELETE).
    Delete,
}

/// `m2msec request`.
#[derive(Args)]
pub struct RequestArgs {
    /// Target: https://HOST:PORT/PATH (TLS-PSK), http://HOST:PORT/PATH (plaintext, loopback
    /// only) or coaps://HOST:PORT/PATH (CoAP over DTLS-PSK, default port 5684). PATH maps to To
    /// as in TS-0009 (and as Uri-Path in TS-0008): /cb/… CSE-relative, /~/cse-in/…
    /// SP-relative, /_/sp.example/cse-in/… absolute.
    #[arg(long, value_name = "URL")]
    url: String,
    /// Operation.
    #[arg(long, value_enum)]
    op: Op,
    /// From (X-M2M-Origin): the originator's ID; omit (or "C") to register a new AE.
    #[arg(long = "from", value_name = "ID")]
    from: Option<String>,
    /// Resource type of a CREATE (2 AE, 3 container, 4 contentInstance, 1 ACP, 16 remoteCSE).
    #[arg(long, value_name = "N")]
    ty: Option<u64>,
    /// Content: the resource representation as JSON, e.g. '{"m2m:cnt":{"rn":"temp"}}'.
    #[arg(long, value_name = "JSON", conflicts_with = "body_file")]
    body: Option<String>,
    /// Content read from a JSON file.
    #[arg(long = "body-file", value_name = "FILE")]
    body_file: Option<PathBuf>,
    /// Request identifier (X-M2M-RI); default: a random one.
    #[arg(long, value_name = "ID")]
    rqi: Option<String>,
    /// Result content (rcn), 0..10.
    #[arg(long, value_name = "N")]
    rcn: Option<u64>,
    /// Release version indicator (X-M2M-RVI).
    #[arg(long, value_name = "V", default_value = "3")]
    rvi: String,
    /// psk_identity (KpsaID) for https:// and coaps://.
    #[arg(long = "psk-id", value_name = "ID")]
    psk_id: Option<String>,
    /// The PSK in hex.
    #[arg(long, value_name = "HEX", conflicts_with = "psk_file")]
    psk: Option<String>,
    /// A file holding the PSK in hex.
    #[arg(long = "psk-file", value_name = "FILE")]
    psk_file: Option<PathBuf>,
    /// Use an enrolment from `m2msec enrol`'s keystore: psk_identity = its KeID, PSK = the
    /// TS-0003 §10.3.7 key for the Enrolment Target (instead of --psk-id/--psk/--psk-file).
    #[arg(long, value_name = "DIR", conflicts_with_all = ["psk_id", "psk", "psk_file"])]
    keystore: Option<PathBuf>,
    /// With --keystore: a TOML file whose `[secure_environment]` holds the keystore's KEK in
    /// a PKCS#11 token (as given to `m2msec enrol`).
    #[arg(long, value_name = "FILE", requires = "keystore")]
    secure_environment: Option<PathBuf>,
    /// With --keystore: the Enrolment Target's ID (default: the keystore's only target).
    #[arg(long = "target", value_name = "ID", requires = "keystore")]
    target: Option<m2msec_core::ids::TargetId>,
    /// SNI host name (default: HOST when it is a name; never an IP address).
    #[arg(long, value_name = "NAME")]
    sni: Option<String>,
    /// Timeout for the whole exchange, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 20)]
    timeout: u64,
}

/// The printed response primitive, in this field order.
#[derive(serde::Serialize)]
struct ResponseLine<'a> {
    rsc: u16,
    rqi: &'a str,
    pc: Option<&'a Value>,
}

/// A parsed `--url`.
struct Target {
    tls: bool,
    /// coaps:// (CoAP over DTLS; `tls` is then true too).
    coap: bool,
    host: String,
    port: u16,
    /// Path and query, as sent.
    path: String,
}

/// Parses `--url` with the bindings' one URL parser, then checks what a request needs: a path
/// that maps to a resource ID, and plaintext only to a loopback address.
fn parse_url(url: &str) -> Result<Target, CliError> {
    let bad = |m: &str| CliError::arg("--url", format!("{url:?}: {m}"));
    let u = ServiceUrl::parse(url).map_err(|e| CliError::arg("--url", e))?;
    let path = u
        .path
        .clone()
        .ok_or_else(|| bad("no path: add the target resource, e.g. /cb"))?;
    let to_part = path.split(['?', '#']).next().unwrap_or_default();
    if to_from_path(to_part).is_none() {
        return Err(bad(
            "the path is not a resource ID (e.g. /cb, /~/cse-in/cb)",
        ));
    }
    if path.parse::<hyper::http::uri::PathAndQuery>().is_err() {
        return Err(bad("the path is not a valid request target"));
    }
    if u.scheme == Scheme::Http && !u.is_loopback() {
        return Err(bad(
            "plaintext http:// is allowed only to a loopback address; use https:// (TLS-PSK)",
        ));
    }
    Ok(Target {
        tls: u.scheme != Scheme::Http,
        coap: u.scheme == Scheme::Coaps,
        host: u.host,
        port: u.port,
        path,
    })
}

fn random_rqi() -> String {
    use rand_core::RngCore;
    let mut b = [0u8; 6];
    rand_core::OsRng.fill_bytes(&mut b);
    format!("m2msec-{}", hex::encode(b))
}

/// Runs `m2msec request`.
pub fn run(a: RequestArgs) -> Result<ExitCode, CliError> {
    let target = parse_url(&a.url)?;
    let op = match a.op {
        Op::Create => Operation::Create,
        Op::Retrieve => Operation::Retrieve,
        Op::Update => Operation::Update,
        Op::Delete => Operation::Delete,
    };
    if a.ty.is_some() && !matches!(a.op, Op::Create) {
        return Err(CliError::arg("--ty", "only with --op create"));
    }
    if a.ty.is_none() && matches!(a.op, Op::Create) {
        return Err(CliError::arg("--ty", "required with --op create"));
    }
    let pc: Option<Value> = match (&a.body, &a.body_file) {
        (Some(b), _) => Some(
            serde_json::from_str(b)
                .map_err(|e| CliError::arg("--body", format!("not JSON: {e}")))?,
        ),
        (None, Some(f)) => Some(
            serde_json::from_slice(&read_file("--body-file", f)?)
                .map_err(|e| CliError::arg("--body-file", format!("not JSON: {e}")))?,
        ),
        (None, None) => None,
    };
    let rqi = a.rqi.clone().unwrap_or_else(random_rqi);
    let to = to_from_path(target.path.split(['?', '#']).next().unwrap_or_default())
        .ok_or_else(|| CliError::arg("--url", "the path is not a resource ID"))?;
    let mut req = RequestPrimitive::new(op, to, a.from.as_deref().filter(|f| !f.is_empty()), rqi);
    req.ty = a.ty;
    req.pc = pc;
    req.rvi = Some(a.rvi.clone());
    if let Some(n) = a.rcn {
        req.rcn = Some(
            ResultContent::from_u64(n).ok_or_else(|| CliError::arg("--rcn", "must be 0..10"))?,
        );
    }
    let host_header = ServiceUrl {
        scheme: Scheme::Https,
        host: target.host.clone(),
        port: target.port,
        path: None,
    }
    .authority();
    let mut http_req = request_to_http(&req, &host_header).map_err(|e| {
        let arg = if e.detail.contains("From") {
            "--from"
        } else if e.detail.contains("rqi") {
            "--rqi"
        } else if e.detail.contains("rvi") {
            "--rvi"
        } else {
            "--url"
        };
        CliError::arg(arg, e.detail)
    })?;
    // Send the path exactly as given (it may carry a query).
    if target.path.contains('?') {
        *http_req.uri_mut() = target
            .path
            .parse()
            .map_err(|_| CliError::arg("--url", "the path is not a valid request target"))?;
    }

    let tls = if target.tls && a.keystore.is_some() {
        let (identity, key) = keystore_credential(&a)?;
        let mut cfg = ClientConfig::psk(identity, key);
        cfg.handshake_timeout = Duration::from_secs(a.timeout.max(1));
        Some(cfg)
    } else if target.tls {
        let id = a
            .psk_id
            .as_deref()
            .ok_or_else(|| CliError::arg("--psk-id", "required for https:// and coaps://"))?;
        let identity = PskIdentity::new(id).map_err(|e| CliError::arg("--psk-id", e))?;
        let key = match (&a.psk, &a.psk_file) {
            (Some(h), _) => {
                Psk::new(&hex_arg("--psk", h)?).map_err(|e| CliError::arg("--psk", e))?
            }
            (None, Some(f)) => {
                // Refuses a key file group or others may read (mode 0600), as every other
                // consumer of key files does.
                let text = m2msec_keystore::read_secret_file(f)
                    .map_err(|e| CliError::arg("--psk-file", e))?;
                Psk::new(&hex_arg("--psk-file", text.trim())?)
                    .map_err(|e| CliError::arg("--psk-file", e))?
            }
            (None, None) => {
                return Err(CliError::arg(
                    "--psk",
                    "required for https:// and coaps:// (or --psk-file)",
                ))
            }
        };
        if let Some(s) = &a.sni {
            if s.is_empty() || s.parse::<IpAddr>().is_ok() {
                return Err(CliError::arg(
                    "--sni",
                    "must be a host name, not an IP address",
                ));
            }
        }
        let mut cfg = ClientConfig::psk(identity, key);
        cfg.handshake_timeout = Duration::from_secs(a.timeout.max(1));
        Some(cfg)
    } else {
        if a.psk_id.is_some() || a.psk.is_some() || a.psk_file.is_some() || a.keystore.is_some() {
            return Err(CliError::arg(
                "--psk-id",
                "PSK options need an https:// or coaps:// URL",
            ));
        }
        None
    };
    if a.timeout == 0 {
        return Err(CliError::arg("--timeout", "must be at least 1 second"));
    }

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(CliError::other)?;
    let deadline = Duration::from_secs(a.timeout);
    let result = match tls {
        Some(cfg) if target.coap => {
            let opts = DtlsOptions {
                idle_timeout: deadline,
                ..DtlsOptions::default()
            };
            let client = DtlsClient::new(cfg, opts).map_err(CliError::other)?;
            // The query of the URL, if any, is sent as given (Uri-Query options, TS-0008
            // §6.2.2.3), in place of --rcn, as for https://.
            let query: Vec<String> = match target.path.split_once('?') {
                Some((_, q)) => {
                    req.rcn = None;
                    q.split('#')
                        .next()
                        .unwrap_or_default()
                        .split('&')
                        .filter(|p| !p.is_empty())
                        .map(str::to_string)
                        .collect()
                }
                None => Vec::new(),
            };
            rt.block_on(async {
                tokio::time::timeout(
                    deadline,
                    exchange_coap(&target, client, a.sni.as_deref(), &req, &query),
                )
                .await
            })
        }
        tls => {
            let tls = tls
                .map(|cfg| TlsClient::new(cfg).map_err(CliError::other))
                .transpose()?;
            rt.block_on(async {
                tokio::time::timeout(
                    deadline,
                    exchange(&target, tls, a.sni.as_deref(), http_req, &host_header),
                )
                .await
            })
        }
    };
    let resp = match result {
        Err(_) => {
            eprintln!("m2msec: error: no response within {} s", a.timeout);
            return Ok(ExitCode::from(2));
        }
        Ok(Err(e)) => {
            eprintln!("m2msec: error: {}", e.replace(['\n', '\r'], " "));
            return Ok(ExitCode::from(2));
        }
        Ok(Ok(r)) => r,
    };
    crate::util::print_json(&ResponseLine {
        rsc: resp.rsc.as_u16(),
        rqi: &resp.rqi,
        pc: resp.pc.as_ref(),
    })?;
    Ok(if resp.rsc.is_success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// One request over CoAP (TS-0008) in a DTLS-PSK session, closed afterwards.
async fn exchange_coap(
    target: &Target,
    client: DtlsClient,
    sni: Option<&str>,
    req: &RequestPrimitive,
    query: &[String],
) -> Result<m2msec_cse::ResponsePrimitive, String> {
    let session = client
        .connect(&target.host, target.port, sni)
        .await
        .map_err(|e| {
            format!(
                "DTLS-PSK handshake with {}:{} failed: {e}",
                target.host, target.port
            )
        })?;
    let mut c = CoapClient::new(session);
    let r = c
        .request(req, query)
        .await
        .map_err(|e| format!("CoAP: {e}"));
    let _ = c.into_session().close().await;
    r
}

/// One request over HTTP (TS-0009), in a TLS-PSK association or in plaintext to loopback,
/// through the bindings' one HTTP client.
async fn exchange(
    target: &Target,
    tls: Option<TlsClient>,
    sni: Option<&str>,
    req: hyper::http::Request<Bytes>,
    host_header: &str,
) -> Result<m2msec_cse::ResponsePrimitive, String> {
    let client = match tls {
        Some(client) => {
            let ch = client
                .connect(&target.host, target.port, sni)
                .await
                .map_err(|e| {
                    format!(
                        "TLS-PSK handshake with {}:{} failed: {e}",
                        target.host, target.port
                    )
                })?;
            HttpClient::new(ch, host_header).await
        }
        None => {
            let tcp = tokio::net::TcpStream::connect((target.host.as_str(), target.port))
                .await
                .map_err(|e| format!("cannot connect to {}:{}: {e}", target.host, target.port))?;
            HttpClient::new(tcp, host_header).await
        }
    };
    let mut client = client
        .map_err(|e| e.to_string())?
        .with_max_response(MAX_RESPONSE);
    client.send_http(req).await.map_err(|e| e.to_string())
}

/// psk_identity and PSK from an Enrolee keystore (TS-0003 §8.3.2.1 step 6, §10.3.7).
fn keystore_credential(a: &RequestArgs) -> Result<(PskIdentity, Psk), CliError> {
    use m2msec_mef::enrolee::{enrolled_target_psk, Keystore};
    let dir = a.keystore.as_deref().unwrap_or(std::path::Path::new("."));
    let se = crate::util::keystore_environment(a.secure_environment.as_deref())?;
    let ks = Keystore::open_in(dir, &se).map_err(|e| CliError::arg("--keystore", e))?;
    let (summary, ke, _) = ks.load().map_err(|e| CliError::arg("--keystore", e))?;
    let now = m2msec_core::clock::unix_now();
    if summary.enrolment_expiry.to_unix() <= now {
        return Err(CliError::arg(
            "--keystore",
            format!(
                "the enrolment expired at {}: run m2msec enrol again",
                summary.enrolment_expiry
            ),
        ));
    }
    let t = match &a.target {
        Some(id) => summary
            .targets
            .iter()
            .find(|t| t.target_id == *id)
            .ok_or_else(|| CliError::arg("--target", "no key for this target in the keystore"))?,
        None => match summary.targets.as_slice() {
            [one] => one,
            [] => {
                return Err(CliError::arg(
                    "--keystore",
                    "the keystore holds no target key",
                ))
            }
            _ => {
                return Err(CliError::arg(
                    "--target",
                    "the keystore has several targets: name one",
                ))
            }
        },
    };
    let identity =
        PskIdentity::new(&t.key_id.to_string()).map_err(|e| CliError::arg("--keystore", e))?;
    let psk = enrolled_target_psk(&summary, &ke, t).map_err(|e| CliError::arg("--keystore", e))?;
    Ok((identity, psk))
}
