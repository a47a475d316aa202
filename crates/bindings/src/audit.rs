//! Security events at WARN (issue 9 item 10): failed handshakes (unknown identity, wrong key,
//! refused certificate) and refused requests (ORIGINATOR_NOT_AUTHENTICATED, ORIGINATOR_HAS_NO_
//! PRIVILEGE, SECURITY_ASSOCIATION_REQUIRED, ESPRIM_IMPERSONATION_ERROR), with the peer's
//! address, the identity it used and the reason; never a key.
//!
//! A flood of failures must not fill the disk: at most [`BURST`] events are logged per second
//! across the process; the rest are counted, and the next event logged after a suppressed
//! stretch carries `suppressed = N`.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most security events logged per second.
pub const BURST: u32 = 20;

struct Window {
    start: Option<Instant>,
    logged: u32,
    suppressed: u64,
}

struct Limiter(Mutex<Window>);

static LIMITER: Limiter = Limiter::new();

/// Whether a security event may be logged now; `Some(n)`: yes, `n` events were suppressed
/// since the last one logged.
pub fn admit() -> Option<u64> {
    LIMITER.admit_at(Instant::now())
}

impl Limiter {
    const fn new() -> Self {
        Limiter(Mutex::new(Window {
            start: None,
            logged: 0,
            suppressed: 0,
        }))
    }

    fn admit_at(&self, now: Instant) -> Option<u64> {
        let mut w = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let fresh = match w.start {
            Some(s) => now.saturating_duration_since(s) >= Duration::from_secs(1),
            None => true,
        };
        if fresh {
            w.start = Some(now);
            w.logged = 0;
        }
        if w.logged >= BURST {
            w.suppressed = w.suppressed.saturating_add(1);
            return None;
        }
        w.logged += 1;
        Some(std::mem::take(&mut w.suppressed))
    }
}

/// Logs a failed (D)TLS handshake at WARN, rate-limited.
pub fn handshake_failed(
    peer: &dyn std::fmt::Display,
    transport: &str,
    error: &dyn std::fmt::Display,
) {
    if let Some(suppressed) = admit() {
        tracing::warn!(peer = %peer, transport, error = %error, suppressed, "security: handshake refused");
    }
}

/// Logs an unknown or unusable PSK identity at WARN, rate-limited (the TLS layer then fails the
/// handshake with `unknown_psk_identity`; the peer's address is logged by
/// [`handshake_failed`]).
pub fn unknown_identity(identity: &str, reason: &str) {
    if let Some(suppressed) = admit() {
        tracing::warn!(psk_identity = %identity, reason, suppressed, "security: PSK identity refused");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_burst_per_second_then_counts() {
        let l = Limiter::new();
        let t0 = Instant::now();
        let admitted = (0..100).filter(|_| l.admit_at(t0).is_some()).count();
        assert_eq!(admitted, BURST as usize);
        // The next window reports what was suppressed, once.
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(l.admit_at(t1), Some(100 - u64::from(BURST)));
        assert_eq!(l.admit_at(t1), Some(0));
    }
}
