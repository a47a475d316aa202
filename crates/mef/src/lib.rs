//! # m2msec-mef
//!
//! The M2M Enrolment Function of TS-0003 §8.3 with the Private Key Generator of seed 001.
//!
//! - [`wire`]: the JSON content of the MEF's primitives (and the **[I]** mapping choices).
//! - [`store`]: devices, enrolments, key registrations and the PKG secret in SQLite, sealed.
//! - [`pkg`]: the ECCSI KMS (RFC 6507) that extracts IBC credentials.
//! - [`endpoint`]: the MEF behind the HTTP/CoAP bindings: bootstrap sessions, the enrolment
//!   exchange, MEF Client Commands, key registration/retrieval and `/fetchCredentials`.
//! - [`target`]: the CSE's side as an Enrolment Target: bounded key retrieval, the MEF's change
//!   feed (revocations) and Enrolee-ID reservations.
#![forbid(unsafe_code)]
#![deny(missing_debug_implementations)]
#![warn(missing_docs)]

mod blocking;
pub mod endpoint;
pub mod enrolee;
pub mod exchange;
pub mod pkg;
pub mod pkg_service;
pub mod provision;
pub mod store;
pub mod target;
pub mod wire;

pub use endpoint::{MefConfig, MefEndpoint, MefSession, TargetClient};
pub use pkg::{LocalPkg, Pkg};
pub use store::{Device, MefStore};
