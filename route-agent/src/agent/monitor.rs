//! Kernel notifications (`ip monitor route link address nexthop`).
//!
//! - A route change may be someone removing or altering a route of ours:
//!   the FIB thread re-applies the plan (a diff, so the notifications our
//!   own changes cause end in a dump that changes nothing).
//! - So may a nexthop object change: deleting an object removes the routes
//!   through it with no route notification at all (only the object's own
//!   `RTM_DELNEXTHOP`), and with `nexthop-objects` ours go through them.
//! - A link or IPv4 address change may move the node address, its prefix
//!   or the underlay MTU, or remove the tunnel device: the agent's loop
//!   looks again and re-plans when something it uses changed.
//!
//! Lost notifications (`ENOBUFS`) count as both, and so does a receive
//! error; consecutive errors back off ([`Backoff`]: 10 ms doubling up to
//! 5 s) instead of spinning. Resyncs coalesce ([`ResyncRequests`]): at
//! most one waits in the FIB thread's queue, however many notifications
//! or errors come meanwhile, so the queue cannot grow with them.

// Bytes from outside the process are parsed here: no panics and no
// unchecked arithmetic outside tests (the lint set of bgp-core's `wire`).
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic,
        clippy::arithmetic_side_effects
    )
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::mpsc::Sender;
use std::time::Duration;

use netlink::header::Messages;
use netlink::{Group, MessageType, Monitor, Received};
use tokio::sync::Notify;

use super::fib_thread::FibWork;

/// The groups watched: routes of both families, nexthop objects, links and
/// IPv4 addresses.
const GROUPS: [Group; 5] = [
    Group::Ipv4Route,
    Group::Ipv6Route,
    Group::Nexthop,
    Group::Link,
    Group::Ipv4Address,
];

/// Room for a burst of notifications: our own installs come here too (the
/// kernel caps this at `net.core.rmem_max`; an overflow costs a resync,
/// not a lost change).
const RECEIVE_BUFFER: usize = 4 * 1024 * 1024;

/// What one datagram of notifications touched.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Touched {
    /// A route or a nexthop object was added, changed or removed.
    pub routes: bool,
    /// A link or an address was.
    pub node: bool,
}

/// Classifies the netlink messages of one datagram by their header type.
/// Route changes made through netlink port `ours` (the FIB's socket; 0 for
/// none) are left out: they are the plan being applied, and re-checking
/// each would cost a dump per batch. A truncated or malformed tail is
/// ignored.
pub fn classify(messages: Messages<'_>, ours: u32) -> Touched {
    let mut touched = Touched::default();
    for (header, _) in messages {
        let by_us = ours != 0 && header.port == ours;
        match header.kind {
            MessageType::NEW_ROUTE
            | MessageType::DEL_ROUTE
            | MessageType::NEW_NEXTHOP
            | MessageType::DEL_NEXTHOP
                if !by_us =>
            {
                touched.routes = true;
            }
            MessageType::NEW_LINK
            | MessageType::DEL_LINK
            | MessageType::GET_LINK
            | MessageType::SET_LINK
            | MessageType::NEW_ADDRESS
            | MessageType::DEL_ADDRESS => touched.node = true,
            _ => {}
        }
    }
    touched
}

/// The first delay after a receive error.
pub const BACKOFF_FIRST: Duration = Duration::from_millis(10);

/// The longest delay between two receives that fail.
pub const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// The delays between receives that keep failing: [`BACKOFF_FIRST`],
/// doubling, at most [`BACKOFF_MAX`]; a receive that works starts over.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Backoff {
    errors: u32,
}

impl Backoff {
    /// One more receive failed: how long to wait before the next.
    pub fn failed(&mut self) -> Duration {
        self.errors = self.errors.saturating_add(1);
        let doublings = self.errors.saturating_sub(1).min(16);
        BACKOFF_FIRST
            .saturating_mul(1 << doublings)
            .min(BACKOFF_MAX)
    }

    /// A receive worked; returns how many failed before it.
    pub fn succeeded(&mut self) -> u32 {
        std::mem::take(&mut self.errors)
    }
}

/// Resync requests to the FIB thread, coalesced: a [`FibWork::Resync`] is
/// sent only when none is waiting, and the FIB thread marks it taken when
/// it dequeues it (so a change during its pass asks for another).
#[derive(Clone, Debug, Default)]
pub struct ResyncRequests(Arc<AtomicBool>);

impl ResyncRequests {
    /// Asks for a resync: true when a [`FibWork::Resync`] is to be sent
    /// (none is waiting).
    pub fn request(&self) -> bool {
        !self.0.swap(true, Ordering::AcqRel)
    }

    /// The FIB thread took the waiting one.
    pub fn taken(&self) {
        self.0.store(false, Ordering::Release);
    }
}

/// What a receive gave: what changed, or an error.
type Receive = std::io::Result<Touched>;

/// The watcher's loop: each receive's changes go out (a resync to the
/// FIB thread, coalesced; a node change to `node_changed`), errors wait
/// `sleep(backoff)` first. Ends when `receive` returns `None` or the FIB
/// thread is gone.
fn watch(
    mut receive: impl FnMut() -> Option<Receive>,
    mut sleep: impl FnMut(Duration),
    fib: &Sender<FibWork>,
    resync: &ResyncRequests,
    node_changed: &Notify,
) {
    let everything = Touched {
        routes: true,
        node: true,
    };
    let mut backoff = Backoff::default();
    while let Some(received) = receive() {
        let touched = match received {
            Ok(touched) => {
                let errors = backoff.succeeded();
                if errors > 0 {
                    tracing::info!(errors, "kernel monitor: receiving again");
                }
                touched
            }
            Err(e) => {
                let wait = backoff.failed();
                if wait == BACKOFF_FIRST {
                    tracing::warn!(
                        "kernel monitor: {e} (treated as lost notifications; retrying with a backoff)"
                    );
                } else {
                    tracing::debug!(wait_ms = wait.as_millis(), "kernel monitor: {e}");
                }
                sleep(wait);
                // Lost notifications: anything may have changed.
                everything
            }
        };
        if touched.node {
            node_changed.notify_one();
        }
        if touched.routes && resync.request() && fib.send(FibWork::Resync).is_err() {
            return;
        }
    }
}

/// Starts the watcher thread. Route changes (but those the FIB socket
/// with port id `fib_port` made) go to the FIB thread as resyncs
/// (coalesced through `resync`, which the FIB thread shares), link and
/// address changes wake `node_changed`.
pub fn spawn(
    fib: Sender<FibWork>,
    resync: ResyncRequests,
    node_changed: Arc<Notify>,
    fib_port: Arc<AtomicU32>,
) {
    std::thread::spawn(move || {
        let monitor = Monitor::open(&GROUPS).and_then(|m| {
            m.set_receive_buffer(RECEIVE_BUFFER)?;
            Ok(m)
        });
        let mut monitor = match monitor {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(
                    "cannot watch kernel changes (only the periodic resync repairs routes): {e}"
                );
                return;
            }
        };
        let receive = || {
            Some(monitor.recv().map(|received| match received {
                Received::Messages(messages) => {
                    classify(messages, fib_port.load(Ordering::Relaxed))
                }
                // Lost notifications: anything may have changed.
                Received::Overrun => Touched {
                    routes: true,
                    node: true,
                },
            }))
        };
        watch(receive, std::thread::sleep, &fib, &resync, &node_changed);
    });
}

#[cfg(test)]
mod tests {
    use netlink::header::Header;

    use super::*;

    fn message(kind: MessageType, payload: usize) -> Vec<u8> {
        from_port(kind, payload, 0)
    }

    /// A message as a change made through netlink port `pid` reports it.
    fn from_port(kind: MessageType, payload: usize, pid: u32) -> Vec<u8> {
        let len = 16 + payload;
        let header = Header {
            length: u32::try_from(len).unwrap(),
            kind,
            flags: 0,
            sequence: 0,
            port: pid,
        };
        let mut m = header.to_bytes().to_vec();
        m.resize(len.next_multiple_of(4), 0);
        m
    }

    fn of(datagram: &[u8], ours: u32) -> Touched {
        classify(Messages::new(datagram), ours)
    }

    #[test]
    fn our_own_route_changes_are_left_out_and_everyone_elses_count() {
        assert_eq!(
            of(&from_port(MessageType::NEW_ROUTE, 20, 4242), 4242),
            Touched::default()
        );
        assert!(of(&from_port(MessageType::DEL_ROUTE, 20, 77), 4242).routes);
        // The kernel's own changes (port 0) always count.
        assert!(of(&from_port(MessageType::DEL_ROUTE, 20, 0), 4242).routes);
        // Before the FIB socket exists (0), nothing is ours.
        assert!(of(&from_port(MessageType::NEW_ROUTE, 20, 4242), 0).routes);
    }

    #[test]
    fn nexthop_object_changes_count_as_route_changes_unless_ours() {
        // Deleting an object removes the routes through it silently.
        let theirs = from_port(MessageType::DEL_NEXTHOP, 8, 0);
        assert!(of(&theirs, 77).routes);
        let ours = from_port(MessageType::NEW_NEXTHOP, 8, 77);
        assert!(!of(&ours, 77).routes);
    }

    #[test]
    fn route_and_address_messages_in_one_datagram_are_both_seen() {
        let mut d = message(MessageType::NEW_ROUTE, 37);
        d.extend(message(MessageType::NEW_ADDRESS, 8));
        assert_eq!(
            of(&d, 0),
            Touched {
                routes: true,
                node: true
            }
        );
    }

    #[test]
    fn link_messages_touch_the_node_only() {
        assert_eq!(
            of(&message(MessageType::NEW_LINK, 100), 0),
            Touched {
                routes: false,
                node: true
            }
        );
        assert_eq!(
            of(&message(MessageType::DEL_ROUTE, 20), 0),
            Touched {
                routes: true,
                node: false
            }
        );
    }

    #[test]
    fn receive_errors_back_off_to_five_seconds_and_a_success_starts_over() {
        let mut b = Backoff::default();
        let waits: Vec<u128> = (0..12).map(|_| b.failed().as_millis()).collect();
        assert_eq!(
            waits,
            [10, 20, 40, 80, 160, 320, 640, 1280, 2560, 5000, 5000, 5000]
        );
        assert_eq!(b.succeeded(), 12);
        assert_eq!(b.failed(), BACKOFF_FIRST);
    }

    #[test]
    fn a_socket_that_keeps_failing_waits_between_receives_and_queues_one_resync_only() {
        // 1,000 failing receives while the FIB thread is busy (it takes
        // nothing from its queue): the loop used to spin and queue one
        // resync per error.
        let (fib, queue) = std::sync::mpsc::channel();
        let resync = ResyncRequests::default();
        let node_changed = Notify::new();
        let mut left = 1000;
        let mut slept = Vec::new();
        watch(
            || {
                left -= 1;
                (left >= 0).then(|| Err(std::io::Error::from_raw_os_error(libc::EIO)))
            },
            |d| slept.push(d),
            &fib,
            &resync,
            &node_changed,
        );
        assert_eq!(queue.try_iter().count(), 1, "one resync waits, not 1,000");
        assert_eq!(slept.len(), 1000);
        assert_eq!(slept[0], BACKOFF_FIRST);
        assert!(slept[20..].iter().all(|d| *d == BACKOFF_MAX));
        // Once the FIB thread has taken it, the next change asks again.
        resync.taken();
        let mut once = Some(Ok(Touched {
            routes: true,
            node: false,
        }));
        watch(|| once.take(), |_| {}, &fib, &resync, &node_changed);
        assert_eq!(queue.try_iter().count(), 1);
    }

    #[test]
    fn garbage_and_truncated_datagrams_do_not_panic() {
        assert_eq!(of(&[], 0), Touched::default());
        assert_eq!(of(&[0xff; 5], 0), Touched::default());
        assert_eq!(of(&[0; 64], 0), Touched::default());
    }
}
