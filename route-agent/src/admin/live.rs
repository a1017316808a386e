//! Liveness (`/healthz`): every watched part of the agent keeps making
//! progress, so that a wedged agent is restarted by the kubelet.
//!
//! The agent's long-running parts beat the heartbeat table
//! ([`crate::state::Heartbeats`]) as they work; this module only compares
//! the table with the clock. A part is stale when its next beat is
//! overdue by more than the timeout ([`Limits::timeout`], 60 s unless
//! `ROUTE_AGENT_HEALTH_TIMEOUT` says otherwise):
//!
//! | part | beats | a beat is due | stale means |
//! |---|---|---|---|
//! | `speaker` | the agent asks the BGP speaker task for its peers every second; each answer is a beat | every 1 s | the speaker task is wedged (a stopped speaker ends the agent instead) |
//! | `agent-loop` | each turn of the agent's loop | every resync period (30 s): its timer wakes the loop | the loop is stuck in a step |
//! | `fib-thread` | each wake-up of the FIB thread | every 1 s, and around every reconcile pass | a reconcile pass hangs (netlink) or the thread died |
//! | `reconcile` | each reconcile pass that ran to its end (a pass whose netlink socket failed is not one) | the first within one resync period of the end of the graceful-restart hold (its restart time at the latest), then every resync period | plans stopped reaching the kernel (the loop, a tunnel set-up or the FIB thread is stuck) |
//!
//! A part that is not watched (not started yet, or stopped on purpose) is
//! not checked. Each stale part gives one line, e.g. `fib-thread: no
//! progress for 63.2 s (a beat is due every 1 s; timeout 60 s)`.

use std::time::{Duration, Instant};

use crate::state::{Part, Watch};

/// The environment variable that sets [`Limits::timeout`], in seconds.
pub const TIMEOUT_ENV: &str = "ROUTE_AGENT_HEALTH_TIMEOUT";

/// [`Limits::timeout`] by default: a reconcile of a million routes takes a
/// few seconds, so a minute without progress is a wedge, not a big table.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// The shortest [`Limits::timeout`] accepted: the speaker is asked every
/// second, so less would report a busy speaker as dead.
pub const MIN_TIMEOUT: Duration = Duration::from_secs(1);

/// How much lateness `/healthz` tolerates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// How long a beat may be overdue before its part counts as stale.
    pub timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

/// Why [`TIMEOUT_ENV`] was not used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LimitsError {
    /// Not a whole number of seconds.
    #[error("{}={value:?} is not a whole number of seconds", TIMEOUT_ENV)]
    NotSeconds {
        /// The value as given.
        value: String,
    },
    /// Below [`MIN_TIMEOUT`].
    #[error("{}={seconds} is too short: at least {} s", TIMEOUT_ENV, MIN_TIMEOUT.as_secs())]
    TooShort {
        /// The value as given.
        seconds: u64,
    },
}

impl Limits {
    /// The limits from [`TIMEOUT_ENV`]'s value, or the defaults without
    /// one.
    pub fn parse(value: Option<&str>) -> Result<Limits, LimitsError> {
        let Some(value) = value else {
            return Ok(Limits::default());
        };
        let seconds: u64 = value.trim().parse().map_err(|_| LimitsError::NotSeconds {
            value: value.to_owned(),
        })?;
        let timeout = Duration::from_secs(seconds);
        if timeout < MIN_TIMEOUT {
            return Err(LimitsError::TooShort { seconds });
        }
        Ok(Limits { timeout })
    }

    /// The limits from the environment; a bad value is logged and the
    /// default used (the agent still starts: this is a tuning knob).
    pub fn from_env() -> Limits {
        let value = std::env::var(TIMEOUT_ENV).ok();
        match Limits::parse(value.as_deref()) {
            Ok(limits) => limits,
            Err(e) => {
                tracing::warn!("{e}; using the default, {} s", DEFAULT_TIMEOUT.as_secs());
                Limits::default()
            }
        }
    }
}

/// The stale parts at `now`, one line each; empty when live.
pub fn unmet(now: Instant, watches: &[Watch], limits: &Limits) -> Vec<String> {
    watches
        .iter()
        .filter(|w| now > w.due + limits.timeout)
        .map(|w| stale_line(now, w, limits))
        .collect()
}

/// How long ago `w` last made progress (or began to be watched).
pub fn age(now: Instant, w: &Watch) -> Duration {
    now.saturating_duration_since(w.last.unwrap_or(w.since))
}

fn stale_line(now: Instant, w: &Watch, limits: &Limits) -> String {
    let secs = |d: Duration| format!("{:.1} s", d.as_secs_f64());
    let timeout = limits.timeout.as_secs();
    let every = w.every.as_secs();
    let what = match w.part {
        Part::Speaker => "no answer",
        Part::AgentLoop | Part::FibThread => "no progress",
        Part::Reconcile => "no reconcile pass completed",
    };
    match w.last {
        Some(_) => format!(
            "{}: {what} for {} (a beat is due every {every} s; timeout {timeout} s)",
            w.part.name(),
            secs(age(now, w)),
        ),
        None => format!(
            "{}: {what} since it started {} ago (the first was due {} ago; timeout {timeout} s)",
            w.part.name(),
            secs(age(now, w)),
            secs(now.saturating_duration_since(w.due)),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Heartbeats;

    const SEC: Duration = Duration::from_secs(1);
    const RESYNC: Duration = Duration::from_secs(30);

    fn limits(seconds: u64) -> Limits {
        Limits {
            timeout: Duration::from_secs(seconds),
        }
    }

    /// The parts as the agent watches them at `t0`, with a graceful-restart
    /// hold of `hold` (the first reconcile is due one resync period after
    /// it).
    fn agent_at(t0: Instant, hold: Duration) -> Heartbeats {
        let h = Heartbeats::default();
        h.watch(Part::Speaker, t0, SEC, SEC);
        h.watch(Part::AgentLoop, t0, RESYNC, RESYNC);
        h.watch(Part::FibThread, t0, SEC, SEC);
        h.watch(Part::Reconcile, t0, hold + RESYNC, RESYNC);
        h
    }

    #[test]
    fn fresh_parts_are_live_until_their_first_beat_is_overdue_by_the_timeout() {
        let t0 = Instant::now();
        let h = agent_at(t0, Duration::ZERO);
        let l = limits(60);
        assert!(unmet(t0 + 61 * SEC, &h.snapshot(), &l).is_empty());
        let lines = unmet(t0 + 61 * SEC + SEC / 2, &h.snapshot(), &l);
        assert_eq!(
            lines,
            [
                "speaker: no answer since it started 61.5 s ago (the first was due 60.5 s ago; timeout 60 s)",
                "fib-thread: no progress since it started 61.5 s ago (the first was due 60.5 s ago; timeout 60 s)",
            ]
        );
    }

    #[test]
    fn a_fib_thread_that_stops_beating_is_stale_after_the_timeout_and_live_at_its_next_beat() {
        let t0 = Instant::now();
        let h = agent_at(t0, Duration::ZERO);
        let l = limits(2);
        // Everything beats as it should for 10 s; then the FIB thread
        // (and so the reconciles) stop.
        let mut t = t0;
        for _ in 0..10 {
            t += SEC;
            for part in [Part::Speaker, Part::AgentLoop, Part::FibThread] {
                h.beat(part, t);
            }
            h.beat(Part::Reconcile, t);
        }
        let stopped = t;
        for _ in 0..3 {
            t += SEC;
            h.beat(Part::Speaker, t);
            h.beat(Part::AgentLoop, t);
        }
        assert!(unmet(stopped + 3 * SEC, &h.snapshot(), &l).is_empty());
        let lines = unmet(stopped + 3 * SEC + SEC / 10, &h.snapshot(), &l);
        assert_eq!(
            lines,
            ["fib-thread: no progress for 3.1 s (a beat is due every 1 s; timeout 2 s)"]
        );
        h.beat(Part::FibThread, stopped + 4 * SEC);
        assert!(unmet(stopped + 4 * SEC, &h.snapshot(), &l).is_empty());
    }

    #[test]
    fn reconciles_must_keep_coming_one_resync_period_apart_once_the_first_is_in() {
        let t0 = Instant::now();
        let h = agent_at(t0, Duration::ZERO);
        let l = limits(60);
        let keep_beating = |h: &Heartbeats, t: Instant| {
            h.beat(Part::Speaker, t);
            h.beat(Part::AgentLoop, t);
            h.beat(Part::FibThread, t);
        };
        h.beat(Part::Reconcile, t0 + SEC);
        // Resyncs every 30 s: live however long it runs.
        for n in 1..10u32 {
            let t = t0 + SEC + RESYNC * n;
            keep_beating(&h, t);
            h.beat(Part::Reconcile, t);
            assert!(unmet(t, &h.snapshot(), &l).is_empty());
        }
        // Then the loop keeps turning and the FIB thread keeps waking, but
        // no plan reaches it any more (a tunnel set-up that never returns
        // holds every plan back).
        let last = t0 + SEC + RESYNC * 9;
        let mut t = last;
        while t < last + RESYNC + l.timeout {
            t += SEC;
            keep_beating(&h, t);
        }
        assert!(unmet(t, &h.snapshot(), &l).is_empty());
        t += SEC;
        keep_beating(&h, t);
        assert_eq!(
            unmet(t, &h.snapshot(), &l),
            [
                "reconcile: no reconcile pass completed for 91.0 s (a beat is due every 30 s; timeout 60 s)"
            ]
        );
    }

    #[test]
    fn the_first_reconcile_may_wait_for_the_graceful_restart_hold() {
        let t0 = Instant::now();
        let hold = Duration::from_secs(120);
        let h = agent_at(t0, hold);
        let l = limits(60);
        let mut t = t0;
        while t < t0 + hold + RESYNC + l.timeout {
            t += SEC;
            for part in [Part::Speaker, Part::AgentLoop, Part::FibThread] {
                h.beat(part, t);
            }
        }
        assert!(unmet(t, &h.snapshot(), &l).is_empty());
        let late = t + SEC;
        assert_eq!(
            unmet(late, &h.snapshot(), &l),
            [
                "reconcile: no reconcile pass completed since it started 211.0 s ago (the first was due 61.0 s ago; timeout 60 s)"
            ]
        );
    }

    #[test]
    fn a_stuck_agent_loop_is_allowed_one_resync_period_plus_the_timeout() {
        let t0 = Instant::now();
        let h = Heartbeats::default();
        h.watch(Part::AgentLoop, t0, RESYNC, RESYNC);
        h.beat(Part::AgentLoop, t0 + SEC);
        let l = limits(60);
        assert!(unmet(t0 + SEC + RESYNC + l.timeout, &h.snapshot(), &l).is_empty());
        assert_eq!(
            unmet(t0 + 2 * SEC + RESYNC + l.timeout, &h.snapshot(), &l),
            ["agent-loop: no progress for 91.0 s (a beat is due every 30 s; timeout 60 s)"]
        );
    }

    #[test]
    fn parts_not_watched_are_not_checked() {
        let t0 = Instant::now();
        let h = agent_at(t0, Duration::ZERO);
        for part in [
            Part::Speaker,
            Part::AgentLoop,
            Part::FibThread,
            Part::Reconcile,
        ] {
            h.forget(part);
        }
        h.beat(Part::FibThread, t0);
        assert!(h.snapshot().is_empty());
        assert!(unmet(t0 + 3600 * SEC, &h.snapshot(), &limits(1)).is_empty());
    }

    #[test]
    fn the_timeout_comes_from_whole_seconds_of_at_least_one() {
        assert_eq!(Limits::parse(None), Ok(Limits::default()));
        assert_eq!(Limits::parse(Some("5")), Ok(limits(5)));
        assert_eq!(Limits::parse(Some(" 90 ")), Ok(limits(90)));
        assert_eq!(
            Limits::parse(Some("0")),
            Err(LimitsError::TooShort { seconds: 0 })
        );
        let e = Limits::parse(Some("2m")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "ROUTE_AGENT_HEALTH_TIMEOUT=\"2m\" is not a whole number of seconds"
        );
    }
}
