//! # m2msec-proto
//!
//! The oneM2M message types every m2msec role speaks, below the CSE engine: the bindings map
//! HTTP (TS-0009) and CoAP (TS-0008) to these values, the engine and the MEF consume and produce
//! them, and none of them needs the others to do so.
//!
//! - [`primitive`]: request/response primitives with short names (TS-0004 §6.4, §8.2), the
//!   strict JSON parser (duplicate keys refused) and the field length limits.
//! - [`rsc`]: Response Status Codes (TS-0004 §6.6) and [`rsc::CseError`], an RSC with a message.
//! - [`security`]: the [`security::SecurityContext`] of one request (TS-0003 §7.2.1 step 0): no
//!   association, or an [`security::Association`] with its credential kind, Credential-ID and
//!   bound identity.
//!
//! No sockets, no async, no store.
#![forbid(unsafe_code)]
#![deny(missing_debug_implementations)]

pub mod primitive;
pub mod rsc;
pub mod security;

pub use primitive::{Operation, RequestPrimitive, ResponsePrimitive, ResultContent};
pub use rsc::{CseError, Rsc};
pub use security::{Association, BoundIdentity, CredentialKind, SecurityContext};
