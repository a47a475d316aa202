//! # m2msec-core
//!
//! The pure core of m2msec: no I/O, no async, no unsafe. Everything here is a function of its
//! inputs (randomness is passed in as an RNG), so it can be tested against references and reused
//! by every service layer.
//!
//! - [`secret`]: secret key types (zeroize on drop, redacted `Debug`, constant-time equality).
//! - [`export`]: RFC 5705 exporter labels and the 48-byte split of TS-0003 §10.3.1.
//! - [`ids`]: identifiers (KeID, KpsaID, KmID, KpmID, relKeyID, Credential-ID, CSE-ID, AE-ID).
//! - [`kdf`]: the TS-0003 §10.3 key schedule and the seed 002 group key Ksx.
//! - [`sec`], [`suid`], [`timestamp`], [`duration`]: clause-12 `sec:` data types, `m2m:suid`,
//!   `m2m:timestamp`, `xs:duration`.
//! - [`clock`]: the one injectable clock (unix seconds): [`clock::Clock`], [`clock::ManualClock`]
//!   for tests. Reading the system clock is the only thing here that looks outside.
//! - [`eccsi`]: ECCSI identity-based signatures (RFC 6507) on P-256, the PKG scheme of seed 001.
//!
//! Procedures built on this crate follow `docs/architecture.md`: a sans-IO state machine (time
//! and RNG passed in, effects returned), a thin async driver per transport, one service per role.
#![forbid(unsafe_code)]
#![deny(missing_debug_implementations)]

pub mod clock;
pub mod duration;
pub mod eccsi;
pub mod export;
pub mod ids;
pub mod kdf;
pub mod seal;
pub mod sec;
pub mod secret;
pub mod suid;
pub mod timestamp;
