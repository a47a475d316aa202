//! The PKG as a separate service (seed 001: "the MEF forwards ID2 to the PKG … over an existing
//! secure channel"; BRIEF A32: the PKG link is mutually authenticated TLS). The PKG serves only
//! configured MEFs, each authenticated by its own PSK (TLS-PSK authenticates both ends), and
//! answers two primitives ([I], project-defined):
//!
//! - RETRIEVE `pkg` → `{"pkgParams": {"kpak": hex}}`;
//! - CREATE `pkg` with `ty` = [`TY_PKG_EXTRACT`] and `{"pkgExtract": {"id": ID2}}` →
//!   `{"pkgKeys": {"ssk": hex, "pvt": hex}}` (RFC 6507 §5.1.1).
//!
//! [`RemotePkg`] is the MEF side: it implements [`Pkg`], validates every returned pair against
//! the KPAK (RFC 6507 §5.1.2) before the MEF hands it out, and bounds each call by a deadline.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use m2msec_bindings::client::HttpClient;
use m2msec_bindings::{AssociationInfo, CloseSignal, Endpoint, Handled, Opened};
use m2msec_core::eccsi::{EccsiError, Kpak, Pvt, SigningKey, Ssk, UserKeys};
use m2msec_core::ids::Fqdn;
use m2msec_proto::{CseError, Operation, RequestPrimitive, ResponsePrimitive, Rsc};
use m2msec_tls::{ClientConfig, Psk, PskIdentity, PskTable, ServerConfig, TlsClient};

use crate::pkg::Pkg;
use crate::wire;

/// Resource type of a PKG extraction request (project-defined).
pub const TY_PKG_EXTRACT: u64 = 10_005;
/// The PKG's resource.
pub const PKG_BASE: &str = "pkg";
/// Longest identity the PKG extracts for.
pub const MAX_ID_LEN: usize = 1024;

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExtractRequest {
    id: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExtractResponse {
    ssk: Ssk,
    pvt: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    kpak: String,
}

/// A MEF allowed to use the PKG.
#[derive(Debug, Clone)]
pub struct PkgClient {
    /// Its psk_identity.
    pub psk_identity: PskIdentity,
    /// Its PSK.
    pub key: Psk,
}

/// The PKG service endpoint.
pub struct PkgEndpoint {
    pkg: Arc<dyn Pkg>,
    fqdn: Fqdn,
    clients: HashMap<String, ()>,
}

impl std::fmt::Debug for PkgEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PkgEndpoint")
            .field("fqdn", &self.fqdn)
            .finish_non_exhaustive()
    }
}

impl PkgEndpoint {
    /// The endpoint and its TLS-PSK server configuration.
    pub fn new(pkg: Arc<dyn Pkg>, fqdn: Fqdn, clients: &[PkgClient]) -> (Arc<Self>, ServerConfig) {
        let table = PskTable::new();
        for c in clients {
            table.insert(c.psk_identity.clone(), c.key.clone());
        }
        let mut tls = ServerConfig::psk(Arc::new(table));
        tls.authorities = Some(vec![fqdn.as_str().to_string()]);
        let ep = PkgEndpoint {
            pkg,
            fqdn,
            clients: clients
                .iter()
                .map(|c| (c.psk_identity.as_str().to_string(), ()))
                .collect(),
        };
        (Arc::new(ep), tls)
    }
}

fn err(rsc: Rsc, rqi: &str, detail: &str) -> Handled {
    ResponsePrimitive::error(&CseError::new(rsc, detail), rqi).into()
}

impl Endpoint for PkgEndpoint {
    type Session = String;

    fn responder_id(&self) -> String {
        self.fqdn.to_string()
    }

    fn open(&self, assoc: Option<&AssociationInfo<'_>>) -> Option<Opened<String>> {
        let a = assoc?;
        let id = a.peer.psk_identity.as_ref()?.as_str();
        self.clients.contains_key(id).then(|| Opened {
            session: id.to_string(),
            close: CloseSignal::new(),
        })
    }

    fn handle(&self, client: &String, prim: RequestPrimitive) -> Handled {
        let rqi = prim.rqi.clone();
        if prim.to.trim_start_matches('/') != PKG_BASE {
            return err(Rsc::NotFound, &rqi, "no such PKG resource");
        }
        let mut h: Handled = match (prim.op, prim.ty) {
            (Operation::Retrieve, _) => {
                let mut r = ResponsePrimitive::new(Rsc::Ok, rqi.as_str());
                r.pc = Some(wire::wrap(
                    "pkgParams",
                    &Params {
                        kpak: self.pkg.kpak().to_hex(),
                    },
                ));
                r.into()
            }
            (Operation::Create, Some(TY_PKG_EXTRACT)) => {
                let req: ExtractRequest = match wire::unwrap("pkgExtract", prim.pc.as_ref()) {
                    Ok(r) => r,
                    Err(e) => return err(Rsc::BadRequest, &rqi, &e.to_string()),
                };
                if req.id.is_empty() || req.id.len() > MAX_ID_LEN {
                    return err(Rsc::BadRequest, &rqi, "id must be 1..1024 bytes");
                }
                match self.pkg.extract(req.id.as_bytes()) {
                    Ok(k) => {
                        tracing::info!(mef = %client, id = %req.id, "PKG extraction");
                        let mut r = ResponsePrimitive::new(Rsc::Created, rqi.as_str());
                        r.pc = Some(wire::wrap(
                            "pkgKeys",
                            &ExtractResponse {
                                ssk: k.ssk.clone(),
                                pvt: k.pvt.to_hex(),
                            },
                        ));
                        r.into()
                    }
                    Err(_) => err(Rsc::InternalServerError, &rqi, "extraction failed"),
                }
            }
            _ => err(
                Rsc::OperationNotAllowed,
                &rqi,
                "RETRIEVE or CREATE (extract) only",
            ),
        };
        h.response.fr = Some(self.fqdn.to_string());
        h
    }
}

/// How the MEF reaches a PKG service.
#[derive(Debug, Clone)]
pub struct PkgLink {
    /// Host.
    pub host: String,
    /// Port.
    pub port: u16,
    /// The PKG's FQDN (SNI).
    pub fqdn: Fqdn,
    /// The MEF's psk_identity at the PKG.
    pub psk_identity: PskIdentity,
    /// The MEF's PSK at the PKG.
    pub psk: Psk,
    /// Deadline per call.
    pub timeout: Duration,
}

/// The MEF's client of a PKG service.
#[derive(Clone)]
pub struct RemotePkg {
    link: Arc<PkgLink>,
    client: TlsClient,
    kpak: Kpak,
}

impl std::fmt::Debug for RemotePkg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemotePkg")
            .field("pkg", &self.link.fqdn)
            .field("kpak", &self.kpak.to_hex())
            .finish_non_exhaustive()
    }
}

/// Why the PKG service could not be used.
#[derive(Debug, thiserror::Error)]
pub enum RemotePkgError {
    /// Transport, timeout or TLS.
    #[error("PKG unreachable: {0}")]
    Transport(String),
    /// An error status or a malformed answer.
    #[error("PKG answer: {0}")]
    Protocol(String),
    /// An answer whose content does not parse.
    #[error("PKG answer: {0}")]
    Wire(#[from] crate::wire::WireError),
}

async fn call(
    client: &TlsClient,
    link: &PkgLink,
    req: RequestPrimitive,
) -> Result<Value, RemotePkgError> {
    let t = |e: String| RemotePkgError::Transport(e);
    let ch = client
        .connect(&link.host, link.port, Some(link.fqdn.as_str()))
        .await
        .map_err(|e| t(e.to_string()))?;
    let mut http = HttpClient::new(ch, link.fqdn.as_str())
        .await
        .map_err(|e| t(e.to_string()))?;
    let r = http.send(&req).await.map_err(|e| t(e.to_string()))?;
    if !matches!(r.rsc, Rsc::Ok | Rsc::Created) {
        return Err(RemotePkgError::Protocol(format!(
            "status {}",
            r.rsc.as_u16()
        )));
    }
    r.pc.ok_or_else(|| RemotePkgError::Protocol("no content".into()))
}

fn blocking<T: Send + 'static>(
    timeout: Duration,
    f: impl std::future::Future<Output = Result<T, RemotePkgError>> + Send + 'static,
) -> Result<T, RemotePkgError> {
    crate::blocking::run(timeout, f).map_err(|e| RemotePkgError::Transport(e.to_string()))?
}

impl RemotePkg {
    /// Connects once to learn the KPAK (the MEF refuses to start without it).
    pub fn connect(link: PkgLink) -> Result<Self, RemotePkgError> {
        let client = TlsClient::new(ClientConfig::psk(
            link.psk_identity.clone(),
            link.psk.clone(),
        ))
        .map_err(|e| RemotePkgError::Transport(e.to_string()))?;
        let (c, l) = (client.clone(), link.clone());
        let pc = blocking(link.timeout, async move {
            let req = RequestPrimitive::new(Operation::Retrieve, PKG_BASE, Some("mef"), "kpak");
            call(&c, &l, req).await
        })?;
        let p: Params = wire::unwrap("pkgParams", Some(&pc))?;
        let kpak = hex::decode(&p.kpak)
            .ok()
            .and_then(|b| Kpak::from_bytes(&b).ok())
            .ok_or_else(|| RemotePkgError::Protocol("KPAK is not a P-256 point".into()))?;
        Ok(RemotePkg {
            link: Arc::new(link),
            client,
            kpak,
        })
    }
}

impl Pkg for RemotePkg {
    fn kpak(&self) -> Kpak {
        self.kpak
    }

    fn extract(&self, id2: &[u8]) -> Result<UserKeys, EccsiError> {
        let id = String::from_utf8(id2.to_vec()).map_err(|_| EccsiError::SskValidationFailed)?;
        let (c, l) = (self.client.clone(), self.link.clone());
        let body = wire::wrap("pkgExtract", &ExtractRequest { id: id.clone() });
        let pc = blocking(self.link.timeout, async move {
            let mut req = RequestPrimitive::new(Operation::Create, PKG_BASE, Some("mef"), "x");
            req.ty = Some(TY_PKG_EXTRACT);
            req.pc = Some(body);
            call(&c, &l, req).await
        })
        .map_err(|e| {
            tracing::error!(error = %e, "remote PKG extraction failed");
            EccsiError::SskValidationFailed
        })?;
        let k: ExtractResponse =
            wire::unwrap("pkgKeys", Some(&pc)).map_err(|_| EccsiError::SskValidationFailed)?;
        let ssk = k.ssk.clone();
        let pvt =
            Pvt::from_bytes(&hex::decode(&k.pvt).map_err(|_| EccsiError::SskValidationFailed)?)?;
        // RFC 6507 §5.1.2: never hand out a pair that does not validate against the KPAK.
        SigningKey::new(&self.kpak, id.as_bytes(), ssk.clone(), pvt)?;
        Ok(UserKeys { ssk, pvt })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 10 item 6: the PKG's answer carries an SSK; parsed from the wire it prints redacted.
    #[test]
    fn extract_response_prints_no_ssk() {
        let ssk: Vec<u8> = (1..=32).collect();
        let r: ExtractResponse = serde_json::from_value(serde_json::json!({
            "ssk": hex::encode(&ssk), "pvt": "04"
        }))
        .unwrap();
        let text = format!("{r:?}{r:#?}");
        for w in ssk.windows(4) {
            assert!(!text.contains(&hex::encode(w)), "{text}");
            assert!(!text.contains(&hex::encode_upper(w)), "{text}");
        }
        assert!(text.contains("redacted"), "{text}");
        assert_eq!(serde_json::to_value(&r).unwrap()["ssk"], hex::encode(&ssk));
    }
}
