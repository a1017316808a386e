//! The control step's plan: the planner's view of this node, and the
//! kernel routes planned from what is learned, held over a restart, or
//! moved with a node (each refusal logged once while it lasts).

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;

use super::{Control, Event, Output, Plan, PlanCause, StatusChange};
use crate::netinfo::UnderlayRoutes;
use crate::planner::{DesiredRoute, LearnedRoute, Rejection, plan};

impl Control {
    /// The planner's node from the node read and the config, keeping how
    /// tunnel routes encapsulate (a fact of the running backend).
    pub(super) fn refresh_local(&mut self) {
        let encap = self.local.tunnel_encap;
        self.local = self.node.local_node(&self.config);
        self.local.tunnel_encap = encap;
    }

    /// Plans the kernel routes to have now. Refused routes are logged once
    /// per route and reason (a peer re-announcing one does not flood the
    /// log) and counted in the status while they stay refused.
    pub(super) fn make_plan(&mut self, cause: PlanCause) {
        self.replan = false;
        // A moved route wins over a learned one (still from the node's
        // old address); a held one only stands in for a missing one.
        let moved = &self.moved;
        let mut learned: Vec<LearnedRoute> = self
            .held
            .iter()
            .filter(|(prefix, _)| !self.learned.contains_key(prefix))
            .chain(&self.learned)
            .filter(|(prefix, _)| !moved.contains_key(prefix))
            .chain(moved)
            .map(|(prefix, next_hop)| LearnedRoute {
                prefix: *prefix,
                next_hop: *next_hop,
            })
            .collect();
        self.keep_owned(&mut learned);
        let underlay = self.underlay_for(&learned);
        let p = plan(&self.local, &self.pools, &learned, &underlay);
        let mut counts = BTreeMap::new();
        for r in &p.rejected {
            *counts.entry(r.reason).or_insert(0u64) += 1;
            if self.reported.insert(*r) {
                self.event(Event::Refused(*r));
            }
        }
        // Forget what is no longer refused, so it is logged again if it
        // comes back.
        let now: HashSet<Rejection> = p.rejected.into_iter().collect();
        self.reported.retain(|r| now.contains(r));
        self.status(StatusChange::Rejected(counts));
        let routes: Vec<DesiredRoute> = p.routes.into_values().collect();
        self.event(Event::Planned {
            routes: routes.len(),
            cause,
        });
        self.outputs.push_back(Output::Plan(Plan {
            routes,
            routes_since: self.routes_since.take(),
        }));
    }

    /// The underlay's IPv6 routes, asked for only when a learned IPv6
    /// block has its next hop off our IPv6 subnet.
    fn underlay_for(&mut self, learned: &[LearnedRoute]) -> UnderlayRoutes {
        let Some(v6) = self.local.ipv6 else {
            return UnderlayRoutes::default();
        };
        let needed = learned
            .iter()
            .any(|r| matches!(r.next_hop, IpAddr::V6(nh) if !v6.contains(nh)));
        if needed {
            self.underlay.routes()
        } else {
            UnderlayRoutes::default()
        }
    }
}
