//! Addresses that change while the agents run, with a datastore.
//!
//! - **Our IPv6 address** (every datastore): our IPv6 blocks are
//!   announced with it as their next hop, so they are announced again
//!   with the new one, or withdrawn when the node has none any more.
//! - **Ours** (`datastore: etcd`, where the agent owns its record): when
//!   the node read after a link or address change finds another address
//!   (or prefix length), the record is written with it
//!   ([`Output::WriteRecord`]) before anything else; a new address then
//!   stops the agent ([`Stop::AddressChanged`], exit code 3), since the
//!   speaker's router ID and listener are bound to the old one. The other
//!   nodes learn the move from the record, not from our restart.
//! - **Another node's**: when the node set says a node moved, the routes
//!   to its blocks that went to its old address go to the new one at once
//!   (they are the same blocks of the same node: only the next hop
//!   changed), and stay so until routes from its sessions on the new
//!   address replace them, with the same next hop and no kernel change,
//!   or until the bound [`moved_hold`] passes: its graceful-restart
//!   restart time, the time its peers would keep its routes across the
//!   restart the move asks for.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use ipnetwork::IpNetwork;

use super::{
    AddressChange, Control, Event, HANDOVER, NodeSet, NodeView, Output, SpeakerCommand, Stop,
    Timer, local_route, ownership,
};
use crate::config::Config;
use crate::datastore::etcd::record::recorded_v6;

/// How long the routes of a node that moved point at its new address
/// without its sessions: the graceful-restart restart time (its peers keep
/// the routes of a restarting node that long), else [`HANDOVER`].
pub fn moved_hold(config: &Config) -> Duration {
    if config.graceful_restart.enabled {
        Duration::from_secs(u64::from(config.graceful_restart.restart_time))
    } else {
        HANDOVER
    }
}

impl Control {
    /// The node was read again and its IPv6 address differs from `old`'s:
    /// our IPv6 blocks go out again with the new one as next hop (peers
    /// would send their traffic to an address we no longer have), or are
    /// withdrawn without one.
    pub(super) fn reannounce_ipv6(&mut self, old: &NodeView) {
        if old.address_v6 == self.node.address_v6 {
            return;
        }
        let blocks: Vec<IpNetwork> = self
            .config
            .blocks
            .iter()
            .filter(|b| b.is_ipv6())
            .copied()
            .collect();
        for block in blocks {
            if local_route(&block, &self.node).is_some() {
                self.announce(block);
            } else {
                self.command(SpeakerCommand::Withdraw(block));
                self.event(Event::Ipv6BlockNotAnnounced(block));
            }
        }
    }

    /// The node was read again and differs from `old`: with a datastore
    /// where the agent writes its own record, write it with the new
    /// address (or prefix length, or IPv6 address), and stop when the IPv4
    /// address changed.
    pub(super) fn publish_own_address(&mut self, old: &NodeView) {
        let address = self.node.address;
        let Some(ds) = self.datastore.as_mut().filter(|d| d.writes_record) else {
            return;
        };
        let address_v6 = recorded_v6(self.node.address_v6.map(|a| a.ip()), &ds.me.blocks);
        if ds.me.address == address && ds.me.address_v6 == address_v6 {
            return;
        }
        ds.me.address = address;
        ds.me.address_v6 = address_v6;
        let me = ds.me.clone();
        self.outputs.push_back(Output::WriteRecord(me));
        if old.address.ip() != address.ip() {
            let change = AddressChange {
                old: old.address.ip(),
                new: address.ip(),
            };
            self.outputs
                .push_back(Output::Stop(Stop::AddressChanged(change)));
        }
    }

    /// The node set changed from `old` to the datastore's current one:
    /// routes to the blocks of nodes that moved follow them.
    pub(super) fn follow_moves(&mut self, now: Instant, old: &NodeSet) {
        let Some(ds) = &self.datastore else {
            return;
        };
        let mut moved = Vec::new();
        let mut events = Vec::new();
        for n in ds.nodes.iter().filter(|n| n.name != ds.name) {
            let Some(before) = old.get(&n.name).filter(|b| b.ip() != n.ip()) else {
                continue;
            };
            let (from, to) = (IpAddr::V4(before.ip()), IpAddr::V4(n.ip()));
            // Only blocks we routed to its old address: the move changes a
            // next hop, it never adds a route BGP did not bring.
            let blocks: Vec<IpNetwork> = n
                .blocks
                .iter()
                .filter(|b| before.blocks.contains(b))
                .filter(|b| {
                    [self.learned.get(b), self.held.get(b), self.moved.get(b)]
                        .contains(&Some(&from))
                })
                .copied()
                .collect();
            if blocks.is_empty() {
                continue;
            }
            moved.extend(blocks.iter().map(|b| (*b, to)));
            events.push(Event::NodeMoved {
                node: n.name.clone(),
                old: before.ip(),
                new: n.ip(),
                blocks,
            });
        }
        // A route moved before whose node moved on, left or lost the
        // block is not the datastore's any more.
        let nodes = &ds.nodes;
        let before = self.moved.len();
        self.moved
            .retain(|prefix, next_hop| ownership::confirms(nodes, *prefix, *next_hop));
        let dropped = self.moved.len() != before;
        if moved.is_empty() {
            self.replan |= dropped;
            return;
        }
        for (block, to) in moved {
            self.held.remove(&block);
            self.moved.insert(block, to);
        }
        for e in events {
            self.event(e);
        }
        let hold = moved_hold(&self.config);
        self.set_timer(Timer::Moved, now + hold);
        self.replan = true;
    }
}
