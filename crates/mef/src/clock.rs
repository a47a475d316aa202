//! The clock of the MEF and the Enrolee: the workspace's one clock, [`m2msec_core::clock`]
//! (issue 10 item 7), re-exported here where the MEF's users look for it.
//!
//! The state machines ([`crate::exchange`], [`crate::enrolee::Machine`]) never read a clock:
//! their callers pass `now`. The service ([`crate::endpoint::MefEndpoint::with_clock`]) and the
//! Enrolee's driver ([`crate::enrolee::enrol_with_clock`]) read it from a [`Clock`], so a test
//! can move time (an expiry) without sleeping, and a simulated pair can share one clock.

pub use m2msec_core::clock::{unix_now, Clock, ManualClock};
