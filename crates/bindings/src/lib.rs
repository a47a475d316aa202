//! # m2msec-bindings
//!
//! oneM2M protocol bindings for the registrar CSE of m2msec, between the sans-IO engine
//! (`m2msec-cse`) and the secure channels (`m2msec-tls`):
//!
//! - [`http`]: request/response primitives ⇄ HTTP/1.1 messages (TS-0009), pure functions.
//! - [`server`]: the tokio service: TLS-PSK listener (and an optional loopback-only plaintext
//!   listener), hyper HTTP/1.1 per connection, the channel's authenticated peer as the engine's
//!   [`m2msec_cse::SecurityContext`], timeouts and size limits.
//!
//! - [`registrar`]: an MN-CSE's link to its registrar: the registration and forwarding
//!   drivers.
//!
//! In the pattern of `docs/architecture.md` the bindings are **drivers**: they move primitives
//! between a transport and a service's [`Endpoint`]; protocol logic belongs in the procedures'
//! sans-IO state machines (e.g. `m2msec_mef::exchange`), not here.
#![forbid(unsafe_code)]
#![deny(missing_debug_implementations)]
#![warn(missing_docs)]

pub mod audit;
pub mod client;
pub mod coap;
pub mod coap_client;
pub mod coap_server;
mod dispatch;
pub mod http;
pub mod registrar;
pub mod server;
pub mod service;

pub use coap_client::{CoapClient, CoapClientError, Transmission};
pub use coap_lite;
pub use coap_server::CoapServer;
pub use server::{Limits, Listeners, Server, ServerError, ServerOptions};
pub use service::{
    AssociationInfo, CloseSignal, CseEndpoint, CseSecurity, Endpoint, Forwarder, Handled, Opened,
    PskCredential, RawKeyCredential,
};
