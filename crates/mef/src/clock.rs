//! The one clock of the MEF and the Enrolee (issue 10 item 7): unix seconds, injected.
//!
//! The state machines ([`crate::exchange`], [`crate::enrolee::Machine`]) never read a clock:
//! their callers pass `now`. The service ([`crate::endpoint::MefEndpoint::with_clock`]) and the
//! Enrolee's driver ([`crate::enrolee::enrol_with_clock`]) read it from a [`Clock`], so a test
//! can move time (an expiry) without sleeping, and a simulated pair can share one fixed clock.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

/// A clock: unix seconds.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The system's clock, in unix seconds (0 before the epoch).
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The system's clock as a [`Clock`].
pub fn system() -> Clock {
    Arc::new(unix_now)
}

/// A clock that shows `start` until it is moved: the [`Clock`] and its hand.
pub fn manual(start: i64) -> (Clock, Arc<AtomicI64>) {
    let hand = Arc::new(AtomicI64::new(start));
    let h = hand.clone();
    (Arc::new(move || h.load(Ordering::Relaxed)), hand)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let (clock, hand) = manual(100);
        assert_eq!(clock(), 100);
        hand.store(4000, Ordering::Relaxed);
        assert_eq!(clock(), 4000);
        assert!(system()() > 1_700_000_000);
    }
}
