//! What a secure-channel listener serves, independent of the binding (HTTP over TLS, CoAP over
//! DTLS): an [`Endpoint`] turns each established security association into a session and
//! answers request primitives on it.
//!
//! Each role's service implements it: the registrar CSE (`m2msec_cse_service::CseEndpoint`:
//! the association's credential becomes the engine's security context, TS-0003 §7.2.1), the
//! MEF (`m2msec_mef::endpoint::MefEndpoint`: sessions carry the enrolment key exported from the
//! bootstrap handshake, TS-0003 §8.3.2.1) and the PKG. The bindings call [`Endpoint::open`]
//! once after each handshake (or once per plaintext loopback connection, with no association),
//! then [`Endpoint::handle`] per request on the listener's worker threads. A session ends when
//! the client closes it, when a response asks for the close (the MEF's end of the enrolment
//! exchange), or when the endpoint cancels the session's [`CloseSignal`] (a revoked
//! credential).

use m2msec_core::export::{ExportedKeyingMaterial, ExporterLabel};
use m2msec_proto::{RequestPrimitive, ResponsePrimitive};
use m2msec_tls::Peer;
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
    /// One request on a session; called on one of the listener's worker threads (it may
    /// block).
    fn handle(&self, session: &Self::Session, prim: RequestPrimitive) -> Handled;
    /// Worker threads per listener that run [`Endpoint::handle`] (default 1: the registrar
    /// CSE's engine is one lock anyway, and one thread keeps requests in order).
    fn workers(&self) -> usize {
        1
    }
}
