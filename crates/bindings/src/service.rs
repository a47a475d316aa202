//! What a secure-channel listener serves, independent of the binding (HTTP over TLS, CoAP over
//! DTLS): an [`Endpoint`] turns each established security association into a session and
//! answers request primitives on it.
//!
//! Two endpoints exist: [`CseEndpoint`], the registrar CSE (TS-0003 §7.2.1: the association's
//! credential becomes the engine's [`SecurityContext`]), and the MEF (crate `m2msec-mef`, whose
//! sessions carry the enrolment key exported from the bootstrap handshake, TS-0003 §8.3.2.1).
//!
//! The bindings call [`Endpoint::open`] once after each handshake (or once per plaintext
//! loopback connection, with no association), then [`Endpoint::handle`] per request on the
//! blocking pool. A session ends when the client closes it, when a response asks for the
//! close (the MEF's end of the enrolment exchange), or when the endpoint cancels the session's
//! [`CloseSignal`] (a revoked credential).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use m2msec_core::export::{ExportedKeyingMaterial, ExporterLabel};
use m2msec_core::ids::{CredentialId, KpsaId};
use m2msec_cse::{
    Association as CseAssociation, BoundIdentity, CredentialKind, Cse, RequestPrimitive,
    ResponsePrimitive, SecurityContext, Store,
};
use m2msec_tls::{Peer, Psk, PskIdentity, PskTable, ResolvedPsk, ServerConfig};
pub use tokio_util::sync::CancellationToken as CloseSignal;

/// An established security association, as the endpoint sees it when a session opens.
pub struct AssociationInfo<'a> {
    /// The authenticated peer.
    pub peer: &'a Peer,
    /// RFC 5705 export from this association (48 bytes, no context; TS-0003 §10.3.1).
    pub exporter: &'a dyn Fn(ExporterLabel) -> Option<ExportedKeyingMaterial>,
}

impl std::fmt::Debug for AssociationInfo<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AssociationInfo")
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

/// A session the endpoint accepted.
#[derive(Debug)]
pub struct Opened<T> {
    /// Endpoint state of the session.
    pub session: T,
    /// Cancelled by the endpoint to close the session (e.g. its credential was revoked).
    pub close: CloseSignal,
}

/// One answered request.
#[derive(Debug)]
pub struct Handled {
    /// The response primitive.
    pub response: ResponsePrimitive,
    /// Close the session after sending it (TS-0003 §8.3.2.1 step 16: the MEF ends the
    /// enrolment exchange and closes the (D)TLS session).
    pub close: bool,
}

impl From<ResponsePrimitive> for Handled {
    fn from(response: ResponsePrimitive) -> Self {
        Handled {
            response,
            close: false,
        }
    }
}

/// A service behind the bindings.
pub trait Endpoint: Send + Sync + 'static {
    /// Per-session state.
    type Session: Send + Sync + 'static;
    /// The responder's ID: `From` of responses the binding generates itself (errors before the
    /// endpoint sees the request).
    fn responder_id(&self) -> String;
    /// A new session: `Some(assoc)` after a handshake, `None` on the plaintext loopback
    /// listener. `None` refuses the session (the connection is closed).
    fn open(&self, assoc: Option<&AssociationInfo<'_>>) -> Option<Opened<Self::Session>>;
    /// One request on a session; called on the blocking pool.
    fn handle(&self, session: &Self::Session, prim: RequestPrimitive) -> Handled;
}

/// A provisioned symmetric key credential (TS-0003 §8.2.2.1).
#[derive(Debug, Clone)]
pub struct PskCredential {
    /// The `psk_identity` clients send (the KpsaID text, exactly as configured).
    pub psk_identity: PskIdentity,
    /// The KpsaID, for the Credential-ID `12-<KpsaID>`.
    pub kpsa_id: KpsaId,
    /// Kpsa.
    pub key: Psk,
    /// The configured IdA (an AE-ID or a CSE-ID), if any.
    pub bound: Option<BoundIdentity>,
}

/// TLS-side settings of the registrar CSE.
#[derive(Debug, Clone, Default)]
pub struct CseSecurity {
    /// The authority (SNI host name) this CSE answers for; None accepts any name.
    pub authority: Option<String>,
    /// Refuse TLS clients that send no SNI.
    pub require_sni: bool,
    /// PSK credentials.
    pub credentials: Vec<PskCredential>,
}

/// The registrar CSE as an [`Endpoint`]: one shared sans-IO [`Cse`] behind a mutex.
pub struct CseEndpoint<S: Store> {
    cse: Mutex<Cse<S>>,
    cse_id: String,
    /// psk_identity → (Credential-ID, configured IdA).
    credentials: HashMap<String, (CredentialId, Option<BoundIdentity>)>,
}

impl<S: Store> std::fmt::Debug for CseEndpoint<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CseEndpoint")
            .field("cse_id", &self.cse_id)
            .field("credentials", &self.credentials.len())
            .finish_non_exhaustive()
    }
}

impl<S: Store + Send + 'static> CseEndpoint<S> {
    /// The endpoint and the PSK server configuration (TLS or DTLS) that resolves its
    /// credentials.
    pub fn new(cse: Cse<S>, sec: &CseSecurity) -> (Arc<Self>, ServerConfig) {
        let table = PskTable::new();
        let mut credentials = HashMap::new();
        for c in &sec.credentials {
            let cred_id = CredentialId::for_kpsa(&c.kpsa_id);
            let bound = match &c.bound {
                Some(BoundIdentity::Ae(ids)) => m2msec_tls::BoundIdentity::Configured(
                    ids.first().map(|a| a.to_string()).unwrap_or_default(),
                ),
                Some(BoundIdentity::Cse(cse)) => {
                    m2msec_tls::BoundIdentity::Configured(cse.to_string())
                }
                None => m2msec_tls::BoundIdentity::CredentialId(cred_id.to_string()),
            };
            table.insert_entry(
                None,
                c.psk_identity.clone(),
                ResolvedPsk {
                    key: c.key.clone(),
                    bound,
                },
            );
            credentials.insert(
                c.psk_identity.as_str().to_string(),
                (cred_id, c.bound.clone()),
            );
        }
        let mut cfg = ServerConfig::psk(Arc::new(table));
        cfg.authorities = sec.authority.clone().map(|a| vec![a]);
        cfg.require_sni = sec.require_sni;
        let cse_id = cse.cse_id();
        (
            Arc::new(CseEndpoint {
                cse: Mutex::new(cse),
                cse_id,
                credentials,
            }),
            cfg,
        )
    }

    /// The security context of a TLS peer (TS-0003 §8.2.2.1); None for a peer this endpoint
    /// did not provision.
    pub fn context_for(&self, peer: &Peer) -> Option<SecurityContext> {
        if peer.credential != m2msec_tls::CredentialKind::Psk {
            return None;
        }
        let id = peer.psk_identity.as_ref()?;
        let (credential_id, bound) = self.credentials.get(id.as_str())?;
        Some(SecurityContext::Association(CseAssociation {
            credential_kind: CredentialKind::Psk,
            credential_id: credential_id.clone(),
            bound: bound.clone(),
        }))
    }
}

impl<S: Store + Send + 'static> Endpoint for CseEndpoint<S> {
    type Session = SecurityContext;

    fn responder_id(&self) -> String {
        self.cse_id.clone()
    }

    fn open(&self, assoc: Option<&AssociationInfo<'_>>) -> Option<Opened<SecurityContext>> {
        let session = match assoc {
            None => SecurityContext::None,
            Some(a) => match self.context_for(a.peer) {
                Some(c) => c,
                None => {
                    tracing::warn!(peer = %a.peer.addr, "peer without a provisioned credential");
                    return None;
                }
            },
        };
        Some(Opened {
            session,
            close: CloseSignal::new(),
        })
    }

    fn handle(&self, session: &SecurityContext, prim: RequestPrimitive) -> Handled {
        let rqi = prim.rqi.clone();
        let mut cse = self.cse.lock().unwrap_or_else(|p| p.into_inner());
        let mut resp = cse.handle(session, prim);
        // TS-0004 §6.4.2: the response carries the request's identifier.
        if resp.rqi.is_empty() {
            resp.rqi = rqi;
        }
        resp.into()
    }
}
