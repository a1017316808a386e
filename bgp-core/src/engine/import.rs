//! Import: a received UPDATE through import policy into the Loc-RIB, the
//! End-of-RIB that ends a restart's stale paths, and maximum-prefix
//! limits; and the attributes of routes we originate.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Action, Control, Engine, Timer};
use crate::policy::MaxPrefixVerdict;
use crate::rib::{NextHop, PathAttrs, PeerId};
use crate::speaker::{LocalRoute, RouteChange};
use crate::wire::{AsPath, Family, Origin, Prefix, UpdateDecode};

impl Engine {
    pub(super) fn update(&mut self, now: Instant, id: PeerId, decoded: UpdateDecode) {
        let local_as = self.config.local_as;
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        let address = peer.address;
        let ebgp = peer.ebgp(local_as);
        let u = &decoded.update;
        for f in &decoded.faults {
            tracing::warn!(peer = %address, code = f.code, problem = ?f.problem, action = ?f.action, "malformed attribute");
        }
        let withdrawn: Vec<Prefix> = u.withdrawals().copied().collect();
        self.rib.withdraw(id, &withdrawn, &mut self.changes);
        let announced: Vec<Prefix> = u.announced().copied().collect();
        peer.received = peer.received.saturating_add(announced.len() as u64);
        if decoded.is_treat_as_withdraw() {
            // RFC 7606 §2: every prefix of the UPDATE is withdrawn; the
            // session stays up.
            self.rib.withdraw(id, &announced, &mut self.changes);
        } else {
            for family in [Family::Ipv4Unicast, Family::Ipv6Unicast] {
                let (accepted, rejected): (Vec<Prefix>, Vec<Prefix>) =
                    if peer.policy.import.is_none() && !ebgp {
                        // No filter on iBGP accepts everything (RFC 8212
                        // only blocks eBGP): skip the per-prefix test.
                        let fam = announced
                            .iter()
                            .filter(|p| p.family() == family)
                            .copied()
                            .collect();
                        (fam, Vec::new())
                    } else {
                        announced
                            .iter()
                            .filter(|p| p.family() == family)
                            .partition(|p| peer.policy.import_allows(ebgp, &p.network))
                    };
                // A route the filter rejects replaces (withdraws) what the
                // peer sent for it before (RFC 4271 §3.1).
                self.rib.withdraw(id, &rejected, &mut self.changes);
                if accepted.is_empty() {
                    continue;
                }
                match PathAttrs::from_update(u, family) {
                    Some(attrs) => {
                        let accepted = if self.owners.is_empty() {
                            accepted
                        } else {
                            // Inside a block a datastore says another node
                            // owns: refused before the RIB, so nothing
                            // anywhere changes for it.
                            let (ok, refused): (Vec<Prefix>, Vec<Prefix>) = accepted
                                .into_iter()
                                .partition(|p| self.owners.allows(&p.network, &attrs.next_hop));
                            if let Some(first) = refused.first() {
                                tracing::warn!(
                                    peer = %address,
                                    refused = refused.len(),
                                    first = %first.network,
                                    next_hop = ?attrs.next_hop,
                                    owner = ?self.owners.owner(&first.network),
                                    "routes inside pod blocks another node owns refused"
                                );
                                self.rib.withdraw(id, &refused, &mut self.changes);
                            }
                            ok
                        };
                        if accepted.is_empty() {
                            continue;
                        }
                        if let Err(reason) =
                            self.rib
                                .update(id, &accepted, Arc::new(attrs), &mut self.changes)
                        {
                            tracing::info!(peer = %address, %reason, "routes not accepted");
                        }
                    }
                    None => {
                        self.rib.withdraw(id, &accepted, &mut self.changes);
                    }
                }
            }
        }
        if let Some((afi, safi)) = u.end_of_rib()
            && let Some(family) = Family::from_afi_safi(afi, safi)
        {
            if peer.stale.contains(&family) {
                self.rib.sweep_stale(id, family, &mut self.changes);
                peer.stale.retain(|f| *f != family);
                if peer.stale.is_empty() {
                    self.timers.stop(Timer::Stale(id));
                }
            }
            self.propagate();
            self.routes.push_back(vec![RouteChange::EndOfRib {
                peer: address,
                family,
            }]);
            return;
        }
        // Maximum prefixes (RFC 4486): checked on what the RIB holds.
        let mut cease = None;
        let mut restart_after = None;
        for (t, family) in peer
            .max_prefix
            .iter_mut()
            .zip([Family::Ipv4Unicast, Family::Ipv6Unicast])
        {
            match t.check(self.rib.received(id, family)) {
                MaxPrefixVerdict::Ok => {}
                MaxPrefixVerdict::Warn { count, limit } => {
                    tracing::warn!(peer = %address, count, limit, ?family, "maximum prefixes reached");
                }
                MaxPrefixVerdict::Cease(n) => {
                    cease = Some(n);
                    restart_after = restart_after.or(t.config().restart_after);
                }
            }
        }
        if let Some(n) = cease {
            peer.last_error = Some("maximum number of prefixes reached".into());
            self.actions
                .push_back(Action::Control(id, Control::Stop(n)));
            if let Some(secs) = restart_after {
                tracing::warn!(peer = %address, secs, "maximum prefixes: session closed, restarting it later");
                self.timers.set(
                    Timer::Restart(id),
                    now + Duration::from_secs(u64::from(secs)),
                );
            }
        }
    }
}

/// The attributes of a route we originate. An unspecified next hop means
/// "ourselves": export replaces it with the session's address.
pub(super) fn local_attrs(family: Family, route: &LocalRoute) -> PathAttrs {
    let next_hop = match (route.next_hop, family) {
        (Some(IpAddr::V4(a)), _) => NextHop::V4(a),
        (Some(IpAddr::V6(a)), _) => NextHop::V6 {
            global: a,
            link_local: None,
        },
        (None, Family::Ipv4Unicast) => NextHop::V4(Ipv4Addr::UNSPECIFIED),
        (None, Family::Ipv6Unicast) => NextHop::V6 {
            global: Ipv6Addr::UNSPECIFIED,
            link_local: None,
        },
    };
    let mut attrs = PathAttrs::new(
        route.origin.unwrap_or(Origin::Igp),
        AsPath::default(),
        next_hop,
    );
    attrs.med = route.med;
    attrs.local_pref = route.local_pref;
    attrs.communities = route.communities.clone();
    attrs
}
