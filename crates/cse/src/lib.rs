//! # m2msec-cse
//!
//! The registrar CSE of m2msec as a sans-IO engine (in the manner of quinn-proto): request
//! primitives in, response primitives out, resources in a [`store::Store`]. No sockets, no async;
//! the HTTP (TS-0009) and CoAP (TS-0008) bindings and the (D)TLS channels live elsewhere and
//! describe each request's channel as a [`verify::SecurityContext`].
//!
//! - [`rsc`] and [`primitive`]: re-exported from `m2msec-proto`, the message crate below this
//!   one (Response Status Codes, request/response primitives, the security context).
//! - [`resource`]: CSEBase, AE, remoteCSE, container, contentInstance, accessControlPolicy
//!   (TS-0001 §9.6, TS-0004 §7.4), names and addressing (TS-0001 §7.2).
//! - [`verify`]: originator verification (TS-0003 §7.2.1, TS-0004 §7.3.2.1) and `rq_authn`
//!   (TS-0003 §7.1.2).
//! - [`acp`]: access decision (TS-0003 §7.1).
//! - [`engine`]: [`engine::Cse::handle`], the generic receiver procedure (TS-0004 §7.3.2).
//! - [`routing`]: which CSE hosts a request's target, the next hop, the loop guard (TS-0004
//!   §7.3.2.6, §7.3.2.8).
//! - [`registration`]: an MN-CSE registering with its registrar, as a sans-IO initiator
//!   (TS-0001 §10.2.2, TS-0004 §7.4.4.2.1).
//! - [`store`]: the [`store::Store`] trait and [`store::SqliteStore`].
//! - [`credentials`]: administered PSK credentials (TS-0003 §8.2.2.1), keys sealed at rest.
#![forbid(unsafe_code)]
#![deny(missing_debug_implementations)]

pub mod acp;
pub use m2msec_proto::{primitive, rsc};
pub mod credentials;
pub mod engine;
pub mod registration;
pub mod resource;
pub mod routing;
pub mod store;
pub mod verify;

pub use engine::{
    Cse, CseBasePolicy, CseConfig, CseType, Dispatch, Forward, Limits, RegistrarCse, CSE_BASE_ACP,
};
pub use primitive::{Operation, RequestPrimitive, ResponsePrimitive, ResultContent};
pub use resource::ResourceType;
pub use rsc::{CseError, Rsc};
pub use store::{SqliteStore, Store, StoreError};
pub use verify::{
    Association, BoundIdentity, CredentialKind, NoReservations, Reservation, Reservations,
    SecurityContext,
};
