//! The control step's side of the IPIP tunnel: one set-up at a time, its
//! outcome in the status, and a failed set-up or an exited userspace
//! tunnel process set up again after a backoff.
//!
//! | input | decides |
//! |---|---|
//! | a node read, a reload, the start | a set-up ([`Output::EnsureTunnel`]) unless one runs (then one more after it) or a retry is due later |
//! | [`Control::handle_tunnel`]: set up | the status says which backend runs |
//! | [`Control::handle_tunnel`]: failed | retried after [`retry_delay`] (1 s, doubling up to [`RETRY_MAX`]); a [permanent](super::super::tunnel::TunnelError::is_permanent) failure stops the agent ([`Stop::TunnelUnusable`]): the same set-up would fail forever while the agent looked alive |
//! | [`Control::handle_tunnel_exited`] | the status says it is gone; set up again after [`retry_delay`] |
//!
//! Consecutive failures count up the delay; a tunnel that ran for
//! [`STABLE`] before failing starts the count again. Node changes during
//! the backoff do not set it up early (a crashing tunnel process makes
//! its device come and go, and each such change would restart it at once).

use std::time::{Duration, Instant};

use super::super::tunnel::{TunnelExit, TunnelSetup};
use super::{Control, Event, Output, StatusChange, Stop, Timer, TunnelOutcome};
use crate::planner::TunnelEncap;
use crate::state::{TunnelInUse, TunnelStatus};

/// The first retry's delay.
pub const RETRY_FIRST: Duration = Duration::from_secs(1);

/// The longest delay between two set-ups of a failing tunnel.
pub const RETRY_MAX: Duration = Duration::from_secs(60);

/// A tunnel up this long before it fails starts the backoff again.
pub const STABLE: Duration = Duration::from_secs(60);

/// The delay before the set-up after the `failures`-th consecutive failure
/// (1-based): [`RETRY_FIRST`], doubling, at most [`RETRY_MAX`].
pub fn retry_delay(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    RETRY_FIRST.saturating_mul(1 << doublings).min(RETRY_MAX)
}

/// What the control step tracks of the tunnel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct TunnelState {
    /// A set-up is in flight.
    running: bool,
    /// Another was asked for while it runs.
    again: bool,
    /// An IPv4 pool uses IPIP: the tunnel should run.
    wanted: bool,
    /// Failures since the tunnel last ran [`STABLE`] or longer.
    failures: u32,
    /// Failures since the start (the status and metrics).
    total: u64,
    /// When the running tunnel was set up.
    up_since: Option<Instant>,
}

impl TunnelState {
    /// No set-up in flight.
    pub(super) fn is_idle(&self) -> bool {
        !self.running
    }
}

impl Control {
    /// The answer to [`Output::EnsureTunnel`]: the backend in use and why
    /// it is not the configured one, or why there is none.
    pub fn handle_tunnel(&mut self, now: Instant, outcome: TunnelOutcome) {
        let status = match outcome {
            Ok((backend, note)) => {
                self.tunnel.up_since = Some(now);
                self.set_tunnel_encap(match backend {
                    TunnelInUse::Bpf => TunnelEncap::Bpf,
                    TunnelInUse::Kernel | TunnelInUse::Userspace | TunnelInUse::None => {
                        TunnelEncap::Device
                    }
                });
                self.tunnel_status(backend, note)
            }
            Err(e) if e.is_permanent() => {
                let status = self.tunnel_status(TunnelInUse::None, Some(e.to_string()));
                self.status(StatusChange::Tunnel(status));
                self.outputs
                    .push_back(Output::Stop(Stop::TunnelUnusable(e)));
                return;
            }
            Err(e) => {
                let retry_in = self.tunnel_failed(now);
                let note = format!("{e} (set up again in {} s)", retry_in.as_secs());
                self.event(Event::TunnelFailed { error: e, retry_in });
                self.tunnel_status(TunnelInUse::None, Some(note))
            }
        };
        self.status(StatusChange::Tunnel(status));
        // Routes through the tunnel wait for the first set-up, whatever
        // its outcome.
        self.tunnel_ready = true;
        let again = self.tunnel.again;
        self.tunnel.running = false;
        self.tunnel.again = false;
        if again {
            self.ensure_tunnel();
        }
    }

    /// Tunnel routes encapsulate as the running backend does: a change
    /// (the `bpf` backend came up, or `auto` fell back from it) plans
    /// again.
    fn set_tunnel_encap(&mut self, encap: TunnelEncap) {
        if self.local.tunnel_encap != encap {
            self.local.tunnel_encap = encap;
            self.replan = true;
        }
    }

    /// A userspace tunnel process the agent started has exited: reported,
    /// and set up again after the backoff.
    pub fn handle_tunnel_exited(&mut self, now: Instant, exit: TunnelExit) {
        let retry_in = self.tunnel_failed(now);
        let note = format!("{exit} (set up again in {} s)", retry_in.as_secs());
        let status = self.tunnel_status(TunnelInUse::None, Some(note));
        self.status(StatusChange::Tunnel(status));
        self.event(Event::TunnelExited { exit, retry_in });
    }

    /// The retry is due: set the tunnel up again.
    pub(super) fn retry_tunnel(&mut self) {
        self.ensure_tunnel();
    }

    /// Asks for the tunnel as the config and node want it (none when no
    /// IPv4 pool uses IPIP); one set-up at a time, the next after it, none
    /// while a retry waits.
    pub(super) fn ensure_tunnel(&mut self) {
        let Some(mut setup) = TunnelSetup::from_config(
            &self.config,
            self.node.address.ip(),
            &self.node.underlay,
            self.node.mtu,
        ) else {
            if self.tunnel.wanted {
                // A reload removed the last IPIP pool.
                self.tunnel.wanted = false;
                self.stop_timer(Timer::TunnelRetry);
                self.status(StatusChange::Tunnel(TunnelStatus::default()));
            }
            return;
        };
        self.tunnel.wanted = true;
        if self.timer(Timer::TunnelRetry).is_some() {
            return;
        }
        setup.log_format.clone_from(&self.log_format);
        if self.tunnel.running {
            self.tunnel.again = true;
        } else {
            self.tunnel.running = true;
            self.outputs.push_back(Output::EnsureTunnel(setup));
        }
    }

    /// Counts a failure at `now` and schedules the retry; returns its
    /// delay.
    fn tunnel_failed(&mut self, now: Instant) -> Duration {
        let stable = self
            .tunnel
            .up_since
            .is_some_and(|t| now.saturating_duration_since(t) >= STABLE);
        if stable {
            self.tunnel.failures = 0;
        }
        self.tunnel.up_since = None;
        self.tunnel.failures = self.tunnel.failures.saturating_add(1);
        self.tunnel.total += 1;
        let delay = retry_delay(self.tunnel.failures);
        self.set_timer(Timer::TunnelRetry, now + delay);
        delay
    }

    fn tunnel_status(&self, backend: TunnelInUse, note: Option<String>) -> TunnelStatus {
        TunnelStatus {
            backend,
            device: self.config.tunnel.device.clone(),
            note,
            wanted: true,
            failures: self.tunnel.total,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_retry_delay_doubles_from_one_second_up_to_a_minute() {
        let delays: Vec<u64> = (1..=9).map(|n| retry_delay(n).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(retry_delay(u32::MAX), RETRY_MAX);
    }
}
