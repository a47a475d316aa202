//! # m2msec-mef
//!
//! The M2M Enrolment Function of TS-0003 §8.3 with the Private Key Generator of seed 001.
//!
//! - [`config`]: the MEF's and the PKG service's configuration files and their validation.
//! - [`service`]: the one start function of each role ([`service::start_mef`],
//!   [`service::start_pkg`]), shared by the binary, the demo and the tests.
//! - [`wire`]: the JSON content of the MEF's primitives (and the **[I]** mapping choices).
//! - [`store`]: devices, enrolments, key registrations and the PKG secret in SQLite, sealed.
//! - [`clock`]: the one injectable clock of the MEF and the Enrolee.
//! - [`pkg`]: the ECCSI KMS (RFC 6507) that extracts IBC credentials.
//! - [`exchange`]: the MEF side of the enrolment exchange, a sans-IO state machine that returns
//!   effects (PKG extraction, conditional commit) instead of performing them.
//! - [`enrolee`]: the Enrolee side, [`enrolee::Machine`] (sans-IO), its thin tokio driver
//!   [`enrolee::enrol`] over HTTP/TLS or CoAP/DTLS, and its keystore.
//! - [`endpoint`]: the MEF service behind the HTTP/CoAP bindings: bootstrap sessions, it opens
//!   an [`exchange::Exchange`] per Enrolee session and performs its effects against SQLite and
//!   the PKG; MEF Client Commands, key registration/retrieval and `/fetchCredentials`.
//!
//! The CSE's side as an Enrolment Target (key retrieval, change feed, reservations) belongs to
//! the CSE's service: `m2msec_cse_service::mef_source`.
//!
//! ## The pattern (`docs/architecture.md`)
//!
//! A **procedure** is a sans-IO state machine: requests and responses in and out as values, the
//! time and the RNG passed in, effects on stores and remote services returned to the caller
//! (`exchange`, `enrolee::Machine`). A **driver** is a thin async loop that moves its messages
//! over one transport (`enrolee::enrol_with`). A **service** wires one role: stores, sessions,
//! effects (`endpoint::MefEndpoint`). The simulated pair in `tests/sim.rs` runs both machines
//! without sockets and drops, duplicates, replays and reorders every message and crashes around
//! every effect; new procedures come with the same.
#![forbid(unsafe_code)]
#![deny(missing_debug_implementations)]
#![warn(missing_docs)]

mod blocking;
pub mod clock;
pub mod config;
pub mod endpoint;
pub mod enrolee;
pub mod exchange;
pub mod ibc;
pub mod pkg;
pub mod pkg_service;
pub mod provision;
pub mod service;
pub mod store;
pub mod wire;

pub use endpoint::{MefConfig, MefEndpoint, MefSession, TargetClient};
pub use pkg::{LocalPkg, Pkg};
pub use store::{Device, MefStore};
