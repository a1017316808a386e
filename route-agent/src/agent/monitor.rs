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
//! Lost notifications (`ENOBUFS`) count as both.

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
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::Sender;

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

/// Starts the watcher thread. Route changes (but those the FIB socket
/// with port id `fib_port` made) go to the FIB thread, link and address
/// changes wake `node_changed`.
pub fn spawn(fib: Sender<FibWork>, node_changed: Arc<Notify>, fib_port: Arc<AtomicU32>) {
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
        let everything = Touched {
            routes: true,
            node: true,
        };
        loop {
            let touched = match monitor.recv() {
                Ok(Received::Messages(messages)) => {
                    classify(messages, fib_port.load(Ordering::Relaxed))
                }
                // Lost notifications: anything may have changed.
                Ok(Received::Overrun) => everything,
                Err(e) => {
                    tracing::debug!("kernel monitor: {e}");
                    everything
                }
            };
            if touched.node {
                node_changed.notify_one();
            }
            if touched.routes && fib.send(FibWork::Resync).is_err() {
                return;
            }
        }
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
    fn garbage_and_truncated_datagrams_do_not_panic() {
        assert_eq!(of(&[], 0), Touched::default());
        assert_eq!(of(&[0xff; 5], 0), Touched::default());
        assert_eq!(of(&[0; 64], 0), Touched::default());
    }
}
