//! Block ownership with a datastore: learned routes inside another
//! node's block are planned only from that node, and a route withdrawn
//! during a hand-over stays while the node set confirms it.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Instant;

use ipnetwork::IpNetwork;

use super::{Control, Event, LearnedRoute, NodeSet, Timer};

impl Control {
    /// A learned route is gone (withdrawn, or our own block's best now):
    /// held through a hand-over when the node set confirms it.
    pub(super) fn unlearn(&mut self, now: Instant, prefix: IpNetwork) {
        let Some(next_hop) = self.learned.remove(&prefix) else {
            return;
        };
        let handing_over = self.timer(Timer::Handover).is_some_and(|end| now < end);
        let confirmed = self
            .datastore
            .as_ref()
            .is_some_and(|ds| confirms(&ds.nodes, prefix, next_hop));
        if handing_over && confirmed {
            self.held.insert(prefix, next_hop);
        }
    }

    /// With a datastore: drops learned routes inside another node's block
    /// whose next hop is not that node (logged once while they stay).
    /// Routes into our own blocks are left to the planner, which refuses
    /// them all.
    pub(super) fn keep_owned(&mut self, learned: &mut Vec<LearnedRoute>) {
        let Some(ds) = &self.datastore else {
            return;
        };
        let mut refused = BTreeSet::new();
        let mut events = Vec::new();
        learned.retain(|r| match ds.nodes.owner_of(&r.prefix) {
            Some(owner) if owner.name != ds.name && owner.next_hop_for(&r.prefix) != r.next_hop => {
                refused.insert((r.prefix, r.next_hop));
                if !self.not_from_owner.contains(&(r.prefix, r.next_hop)) {
                    events.push(Event::NotFromOwner {
                        prefix: r.prefix,
                        next_hop: r.next_hop,
                        owner: owner.name.clone(),
                    });
                }
                false
            }
            _ => true,
        });
        self.not_from_owner = refused;
        for e in events {
            self.event(e);
        }
    }
}

/// Whether a node of `nodes` has the address `next_hop` and the block
/// `prefix`: a route the node set confirms.
pub(super) fn confirms(nodes: &NodeSet, prefix: IpNetwork, next_hop: IpAddr) -> bool {
    nodes
        .iter()
        .any(|n| n.blocks.contains(&prefix) && n.next_hop_for(&prefix) == next_hop)
}
