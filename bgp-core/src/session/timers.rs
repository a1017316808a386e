//! The session's timers as one deadline table, and the seedable jitter
//! source (RFC 4271 §10).

use std::time::{Duration, Instant};

/// Session-wide timers (per-connection ones live on the connection).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Timer {
    /// Retry the outbound connection (RFC 4271 §8.1.1 ConnectRetryTimer).
    ConnectRetry,
    /// Leave Idle and start again after an error (IdleHoldTimer, with
    /// exponential backoff: DampPeerOscillations, §8.1.1).
    IdleHold,
}

/// Per-connection timers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConnTimer {
    /// Send our OPEN (DelayOpenTimer).
    DelayOpen,
    /// The peer has been silent too long (HoldTimer).
    Hold,
    /// Send a KEEPALIVE (KeepaliveTimer).
    Keepalive,
    /// We could not send for too long (RFC 9687 SendHoldTimer).
    SendHold,
}

/// A small table of optional deadlines keyed by a timer enum.
#[derive(Clone, Debug)]
pub(crate) struct Deadlines<T: Copy + Eq> {
    entries: Vec<(T, Instant)>,
}

impl<T: Copy + Eq> Default for Deadlines<T> {
    fn default() -> Self {
        Deadlines {
            entries: Vec::new(),
        }
    }
}

impl<T: Copy + Eq> Deadlines<T> {
    pub(crate) fn set(&mut self, timer: T, at: Instant) {
        self.stop(timer);
        self.entries.push((timer, at));
    }

    pub(crate) fn stop(&mut self, timer: T) {
        self.entries.retain(|(t, _)| *t != timer);
    }

    pub(crate) fn clear(&mut self) {
        self.entries.clear();
    }

    /// The earliest deadline.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.entries.iter().map(|(_, at)| *at).min()
    }

    /// Removes and returns the timers due at `now`.
    pub(crate) fn expire(&mut self, now: Instant) -> Vec<T> {
        let due: Vec<T> = self
            .entries
            .iter()
            .filter(|(_, at)| *at <= now)
            .map(|(t, _)| *t)
            .collect();
        self.entries.retain(|(_, at)| *at > now);
        due
    }
}

/// xorshift64*: a tiny deterministic generator, so tests fix the seed and
/// timer jitter is reproducible.
#[derive(Clone, Debug)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// `d` scaled by a random factor in [0.75, 1.0] (RFC 4271 §10).
    pub(crate) fn jitter(&mut self, d: Duration) -> Duration {
        let frac = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        d.mul_f64(0.75 + 0.25 * frac)
    }
}

/// The backoff for the `failures`-th consecutive failure: `base` doubled
/// each time, capped at `max`.
pub(crate) fn backoff(base: Duration, max: Duration, failures: u32) -> Duration {
    base.saturating_mul(1u32 << failures.min(16)).min(max)
}
