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

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::Sender;

use tokio::sync::Notify;

use super::fib_thread::FibWork;

/// RTMGRP_LINK.
const LINK_GROUP: u32 = 0x1;
/// RTMGRP_IPV4_IFADDR.
const IPV4_ADDR_GROUP: u32 = 0x10;
/// RTMGRP_IPV4_ROUTE and RTMGRP_IPV6_ROUTE.
const ROUTE_GROUPS: u32 = 0x40 | 0x400;

/// `nlmsg_type` values (linux/rtnetlink.h).
const RTM_NEWLINK: u16 = 16;
const RTM_DELADDR: u16 = 21;
const RTM_NEWROUTE: u16 = 24;
const RTM_DELROUTE: u16 = 25;
const RTM_NEWNEXTHOP: u16 = 104;
const RTM_DELNEXTHOP: u16 = 105;

/// What one datagram of notifications touched.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Touched {
    /// A route or a nexthop object was added, changed or removed.
    pub routes: bool,
    /// A link or an address was.
    pub node: bool,
}

/// Classifies the netlink messages in `datagram` by their header type
/// (`nlmsg_len` at bytes 0..4, `nlmsg_type` at 4..6, `nlmsg_pid` at
/// 12..16, native endian). Route changes made through netlink port
/// `ours` (the FIB's socket; 0 for none) are left out: they are the plan
/// being applied, and re-checking each would cost a dump per batch. A
/// truncated tail is ignored.
pub fn classify(datagram: &[u8], ours: u32) -> Touched {
    let mut touched = Touched::default();
    let mut rest = datagram;
    while let (Some(len), Some(kind)) = (rest.get(0..4), rest.get(4..6)) {
        let len = u32::from_ne_bytes([len[0], len[1], len[2], len[3]]) as usize;
        let kind = u16::from_ne_bytes([kind[0], kind[1]]);
        let pid = rest
            .get(12..16)
            .map_or(0, |p| u32::from_ne_bytes([p[0], p[1], p[2], p[3]]));
        let by_us = ours != 0 && pid == ours;
        match kind {
            RTM_NEWROUTE | RTM_DELROUTE | RTM_NEWNEXTHOP | RTM_DELNEXTHOP if !by_us => {
                touched.routes = true;
            }
            RTM_NEWLINK..=RTM_DELADDR => touched.node = true,
            _ => {}
        }
        // Messages are 4-byte aligned; a zero length would never advance.
        let step = len.max(16).next_multiple_of(4);
        rest = rest.get(step..).unwrap_or_default();
    }
    touched
}

/// Starts the watcher thread. Route changes (but those the FIB socket
/// with port id `fib_port` made) go to the FIB thread, link and address
/// changes wake `node_changed`.
pub fn spawn(fib: Sender<FibWork>, node_changed: Arc<Notify>, fib_port: Arc<AtomicU32>) {
    std::thread::spawn(move || {
        let socket =
            netlink_sys::Socket::new(netlink_sys::protocols::NETLINK_ROUTE).and_then(|mut s| {
                s.bind(&netlink_sys::SocketAddr::new(
                    0,
                    ROUTE_GROUPS | LINK_GROUP | IPV4_ADDR_GROUP,
                ))?;
                // Room for a burst of notifications: our own installs
                // come here too (the kernel caps this at net.core.rmem_max;
                // an overflow costs a resync, not a lost change).
                s.set_rx_buf_sz(4 * 1024 * 1024)?;
                // Group 32 is past the bind mask. A kernel without
                // nexthop objects has no such group and nothing to watch.
                let _ = s.add_membership(libc::RTNLGRP_NEXTHOP);
                Ok(s)
            });
        let socket = match socket {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(
                    "cannot watch kernel changes (only the periodic resync repairs routes): {e}"
                );
                return;
            }
        };
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let touched = match socket.recv(&mut &mut buf[..], 0) {
                Ok(n) => classify(
                    buf.get(..n).unwrap_or_default(),
                    fib_port.load(Ordering::Relaxed),
                ),
                Err(e) => {
                    tracing::debug!("kernel monitor: {e}");
                    Touched {
                        routes: true,
                        node: true,
                    }
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
    use super::*;

    fn message(kind: u16, payload: usize) -> Vec<u8> {
        from_port(kind, payload, 0)
    }

    /// A message as a change made through netlink port `pid` reports it.
    fn from_port(kind: u16, payload: usize, pid: u32) -> Vec<u8> {
        let len = 16 + payload;
        let mut m = Vec::new();
        m.extend_from_slice(&u32::try_from(len).unwrap().to_ne_bytes());
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(&[0; 6]); // flags, sequence number
        m.extend_from_slice(&pid.to_ne_bytes());
        m.resize(len.next_multiple_of(4), 0);
        m
    }

    #[test]
    fn our_own_route_changes_are_left_out_and_everyone_elses_count() {
        assert_eq!(
            classify(&from_port(RTM_NEWROUTE, 20, 4242), 4242),
            Touched::default()
        );
        assert!(classify(&from_port(RTM_DELROUTE, 20, 77), 4242).routes);
        // The kernel's own changes (port 0) always count.
        assert!(classify(&from_port(RTM_DELROUTE, 20, 0), 4242).routes);
        // Before the FIB socket exists (0), nothing is ours.
        assert!(classify(&from_port(RTM_NEWROUTE, 20, 4242), 0).routes);
    }

    #[test]
    fn nexthop_object_changes_count_as_route_changes_unless_ours() {
        // Deleting an object removes the routes through it silently.
        let theirs = from_port(RTM_DELNEXTHOP, 8, 0);
        assert!(classify(&theirs, 77).routes);
        let ours = from_port(RTM_NEWNEXTHOP, 8, 77);
        assert!(!classify(&ours, 77).routes);
    }

    #[test]
    fn route_and_address_messages_in_one_datagram_are_both_seen() {
        let mut d = message(RTM_NEWROUTE, 37);
        d.extend(message(20, 8)); // RTM_NEWADDR
        assert_eq!(
            classify(&d, 0),
            Touched {
                routes: true,
                node: true
            }
        );
    }

    #[test]
    fn link_messages_touch_the_node_only() {
        assert_eq!(
            classify(&message(RTM_NEWLINK, 100), 0),
            Touched {
                routes: false,
                node: true
            }
        );
        assert_eq!(
            classify(&message(RTM_DELROUTE, 20), 0),
            Touched {
                routes: true,
                node: false
            }
        );
    }

    #[test]
    fn garbage_and_truncated_datagrams_do_not_panic() {
        assert_eq!(classify(&[], 0), Touched::default());
        assert_eq!(classify(&[0xff; 5], 0), Touched::default());
        assert_eq!(classify(&[0; 64], 0), Touched::default());
    }
}
