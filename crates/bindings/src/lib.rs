//! # m2msec-bindings
//!
//! oneM2M protocol bindings of m2msec, between each role's service (an [`Endpoint`]) and the
//! secure channels (`m2msec-tls`). They only map HTTP and CoAP to primitives and run
//! listeners and clients; no role's logic lives here.
//!
//! - [`http`]: request/response primitives ⇄ HTTP/1.1 messages (TS-0009), pure functions.
//! - [`coap`]: primitives ⇄ CoAP messages (TS-0008), pure functions, with block-wise transfer.
//! - [`endpoint`]: the [`Endpoint`] trait a service implements (one session per security
//!   association, one call per request).
//! - [`server`] / [`coap_server`]: the tokio listeners: TLS (and an optional loopback-only
//!   plaintext listener) with hyper HTTP/1.1 per connection, DTLS with CoAP; timeouts and size
//!   limits.
//! - [`listen`](mod@listen): one call that puts an endpoint on HTTP/TLS (and CoAP/DTLS), used by every
//!   service's start function, the demo, the tests and the benches.
//! - [`client`] / [`coap_client`]: the matching clients.
//! - [`config`]: configuration pieces every service shares (errors, PSK key files, the
//!   certificate association of a listener, outgoing links).
//! - [`url`]: the one parser of service URLs (`https://`, `http://`, `coaps://`).
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
pub mod config;
mod dispatch;
pub mod endpoint;
pub mod http;
pub mod listen;
pub mod server;
pub mod url;

pub use coap_client::{CoapClient, CoapClientError, Transmission};
pub use coap_lite;
pub use coap_server::CoapServer;
pub use endpoint::{AssociationInfo, CloseSignal, Endpoint, Handled, Opened};
pub use listen::{listen, ListenOptions, Listening};
pub use server::{Limits, Listeners, Server, ServerError};
