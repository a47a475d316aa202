//! The one clock of every role (issue 10 item 7): wall-clock time in unix seconds, injected.
//!
//! Procedures never read a clock: `now` is an argument (`docs/architecture.md`). The services
//! that run them (the CSE engine and its endpoint, the MEF, the Enrolee's driver, the CSE's MEF
//! key source) hold a [`Clock`] given when they are built, and read it where they need `now`.
//! Production passes [`Clock::system`]; a test passes a [`ManualClock`] and moves it past an
//! expiry instead of sleeping, and a simulated pair shares one clock between both sides.
//!
//! Resolution is one second: what is compared against it has that resolution too
//! (`m2m:timestamp` expiries, TS-0004 §6.3.3; credential and enrolment lifetimes, TS-0003
//! §10.7). Elapsed-time measurements (timeouts, rate limits, retransmission timers) are not
//! wall-clock time: they stay on the monotonic [`std::time::Instant`].

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

/// The system's clock read once, in unix seconds (0 before 1970, saturating far after it).
/// Components take a [`Clock`] instead; this is for the binary's one-shot commands.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A source of the current time in unix seconds. Cheap to clone; clones read the same time.
#[derive(Clone)]
pub struct Clock(Source);

#[derive(Clone)]
enum Source {
    System,
    Fixed(i64),
    Manual(Arc<AtomicI64>),
    Fn(Arc<dyn Fn() -> i64 + Send + Sync>),
}

impl Clock {
    /// The system's clock ([`unix_now`]).
    pub fn system() -> Clock {
        Clock(Source::System)
    }

    /// A clock that always shows `unix` (tests, replays).
    pub fn fixed(unix: i64) -> Clock {
        Clock(Source::Fixed(unix))
    }

    /// A clock read from `f` (e.g. the system clock shifted by an offset).
    pub fn from_fn(f: impl Fn() -> i64 + Send + Sync + 'static) -> Clock {
        Clock(Source::Fn(Arc::new(f)))
    }

    /// The current time, unix seconds.
    pub fn now(&self) -> i64 {
        match &self.0 {
            Source::System => unix_now(),
            Source::Fixed(t) => *t,
            Source::Manual(hand) => hand.load(Ordering::SeqCst),
            Source::Fn(f) => f(),
        }
    }
}

impl Default for Clock {
    /// The system's clock.
    fn default() -> Self {
        Clock::system()
    }
}

impl core::fmt::Debug for Clock {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match &self.0 {
            Source::System => f.write_str("Clock::System"),
            Source::Fixed(t) => write!(f, "Clock::Fixed({t})"),
            Source::Manual(h) => write!(f, "Clock::Manual({})", h.load(Ordering::SeqCst)),
            Source::Fn(_) => f.write_str("Clock::Fn"),
        }
    }
}

/// A settable clock for tests: [`ManualClock::clock`] gives the [`Clock`] to inject, and the
/// test moves it with [`ManualClock::set`] or [`ManualClock::advance`]. Every clone and every
/// [`Clock`] taken from it show the same time.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    /// A clock showing `unix` until it is moved.
    pub fn new(unix: i64) -> ManualClock {
        ManualClock(Arc::new(AtomicI64::new(unix)))
    }

    /// A clock starting at the system's current time.
    pub fn starting_now() -> ManualClock {
        ManualClock::new(unix_now())
    }

    /// The [`Clock`] to inject; it follows this hand.
    pub fn clock(&self) -> Clock {
        Clock(Source::Manual(self.0.clone()))
    }

    /// The time shown, unix seconds.
    pub fn now(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }

    /// Shows `unix` from now on.
    pub fn set(&self, unix: i64) {
        self.0.store(unix, Ordering::SeqCst);
    }

    /// Moves the clock by `secs` (negative: back), saturating.
    pub fn advance(&self, secs: i64) {
        let _ = self
            .0
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |t| {
                Some(t.saturating_add(secs))
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told_and_all_its_clocks_follow() {
        let hand = ManualClock::new(100);
        let (a, b) = (hand.clock(), hand.clock().clone());
        assert_eq!((a.now(), b.now(), hand.now()), (100, 100, 100));
        hand.advance(3600);
        assert_eq!((a.now(), b.now()), (3700, 3700));
        hand.clone().set(-5);
        assert_eq!(a.now(), -5);
        hand.set(i64::MAX - 1);
        hand.advance(10);
        assert_eq!(a.now(), i64::MAX, "saturates");
        assert_eq!(format!("{a:?}"), format!("Clock::Manual({})", i64::MAX));
    }

    #[test]
    fn fixed_and_function_clocks() {
        let f = Clock::fixed(1_800_000_000);
        assert_eq!((f.now(), f.now()), (1_800_000_000, 1_800_000_000));
        assert_eq!(format!("{f:?}"), "Clock::Fixed(1800000000)");
        let shifted = Clock::from_fn(|| unix_now() + 86_400);
        let d = shifted.now() - unix_now();
        assert!((86_399..=86_400).contains(&d), "{d}");
        assert_eq!(format!("{shifted:?}"), "Clock::Fn");
    }

    #[test]
    fn the_system_clock_is_the_wall_clock() {
        let before = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let (s, d) = (Clock::system().now(), Clock::default().now());
        let after = unix_now();
        assert!(before > 1_700_000_000);
        assert!(before <= s && s <= after && before <= d && d <= after);
        assert_eq!(format!("{:?}", Clock::default()), "Clock::System");
    }
}
