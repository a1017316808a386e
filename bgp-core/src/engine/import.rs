//! Import: a received UPDATE through import policy into the Loc-RIB, the
//! End-of-RIB that ends a restart's stale paths, and maximum-prefix
//! limits; and the attributes of routes we originate.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Action, Control, Engine, Timer, canonical};
use crate::policy::{MaxPrefixAction, MaxPrefixVerdict};
use crate::rib::{Announced, NextHop, PathAttrs, PeerId};
use crate::speaker::{LocalRoute, RouteChange};
use crate::wire::{AsPath, Family, Origin, Prefix, UpdateDecode};

impl Engine {
    /// A received UPDATE: withdrawals, then each part's announcements
    /// (the NLRI field and MP_REACH_NLRI, each with its own next hop)
    /// through import policy, the block owners, the next-hop checks and
    /// the maximum-prefix limit into the Loc-RIB. `local` is our address
    /// on the connection it came on.
    pub(super) fn update(
        &mut self,
        now: Instant,
        id: PeerId,
        local: Option<SocketAddr>,
        decoded: UpdateDecode,
    ) {
        let local_as = self.config.local_as;
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        let address = peer.address;
        let ebgp = peer.ebgp(local_as);
        let local = local.map(|l| canonical(l.ip()));
        let u = &decoded.update;
        for f in &decoded.faults {
            tracing::warn!(peer = %address, code = f.code, problem = ?f.problem, action = ?f.action, "malformed attribute");
        }
        let withdrawn: Vec<Prefix> = u.withdrawals().copied().collect();
        self.rib.withdraw(id, &withdrawn, &mut self.changes);
        // The two places an UPDATE announces in, each with its own next
        // hop (RFC 4760 §3).
        let mp = u
            .mp_reach()
            .and_then(|m| Some((m.family()?, m.nlri.prefixes())));
        let parts = [
            Some((Family::Ipv4Unicast, Announced::NlriField, u.nlri.as_slice())),
            mp.map(|(family, prefixes)| (family, Announced::MpReach, prefixes)),
        ];
        let parts = parts
            .into_iter()
            .flatten()
            .filter(|(_, _, p)| !p.is_empty());
        let count: usize = parts.clone().map(|(_, _, p)| p.len()).sum();
        peer.received = peer.received.saturating_add(count as u64);
        // Maximum prefixes (RFC 4486 §4): a Cease the limit calls for, and
        // when to start the session again.
        let mut cease = None;
        let mut restart_after = None;
        if decoded.is_treat_as_withdraw() {
            // RFC 7606 §2: every prefix of the UPDATE is withdrawn; the
            // session stays up.
            for (_, _, prefixes) in parts {
                self.rib.withdraw(id, prefixes, &mut self.changes);
            }
        } else {
            for (family, source, prefixes) in parts {
                let filtered: Vec<Prefix>;
                let accepted: &[Prefix] = if peer.policy.import.is_none() && !ebgp {
                    // No filter on iBGP accepts everything (RFC 8212 only
                    // blocks eBGP): skip the per-prefix test.
                    prefixes
                } else {
                    let rejected: Vec<Prefix>;
                    (filtered, rejected) = prefixes
                        .iter()
                        .partition(|p| peer.policy.import_allows(ebgp, &p.network));
                    // A route the filter rejects replaces (withdraws) what
                    // the peer sent for it before (RFC 4271 §3.1).
                    self.rib.withdraw(id, &rejected, &mut self.changes);
                    &filtered
                };
                if accepted.is_empty() {
                    continue;
                }
                let Some(attrs) = PathAttrs::from_reach(u, source) else {
                    self.rib.withdraw(id, accepted, &mut self.changes);
                    continue;
                };
                if let Some(ours) = local.filter(|&l| attrs.next_hop.is_address(l)) {
                    // RFC 4271 §6.3 (a): a next hop that is our own address
                    // is semantically incorrect; the routes are ignored
                    // (withdrawn), without a NOTIFICATION. The codec
                    // catches a configured local address already (a
                    // NEXT_HOP fault); this is the connection's.
                    //
                    // §6.3 (b) is not tested: for an eBGP peer one hop
                    // away, a next hop other than the peer's own address
                    // must share a subnet with us. The engine knows neither
                    // whether the peer is one hop away (multihop eBGP may
                    // send any third-party next hop, §5.1.3) nor our
                    // interfaces' subnets. Whoever installs the route
                    // resolves the next hop instead (§9.1.2.1): the kernel
                    // refuses a gateway that is not reachable, and the
                    // martian and unusable ones never get this far.
                    tracing::warn!(peer = %address, next_hop = %ours, routes = accepted.len(), "next hop is our own address: routes ignored");
                    self.rib.withdraw(id, accepted, &mut self.changes);
                    continue;
                }
                let owned: Vec<Prefix>;
                let accepted = if self.owners.is_empty() {
                    accepted
                } else {
                    // Inside a block a datastore says another node owns:
                    // refused before the RIB, so nothing anywhere changes
                    // for it.
                    let refused: Vec<Prefix>;
                    (owned, refused) = accepted
                        .iter()
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
                    &owned
                };
                if accepted.is_empty() {
                    continue;
                }
                if let Some(t) = peer
                    .max_prefix
                    .get_mut(family_index(family))
                    .filter(|t| t.config().action == MaxPrefixAction::Cease)
                {
                    // Checked before the RIB takes the routes: over the
                    // limit, none of them is stored, so none reaches the
                    // route stream, the kernel or another peer. The count
                    // is exact (re-announced prefixes are not new) but
                    // only looked up when the UPDATE could cross.
                    let held = self.rib.received(id, family);
                    let limit = usize::try_from(t.config().limit).unwrap_or(usize::MAX);
                    if held.saturating_add(accepted.len()) > limit {
                        let after = held.saturating_add(self.rib.new_paths(id, accepted));
                        if let MaxPrefixVerdict::Cease(n) = t.check(after) {
                            tracing::warn!(peer = %address, held, limit, refused = accepted.len(), ?family, "maximum prefixes: the UPDATE would cross the limit; its routes are refused");
                            cease = Some(n);
                            restart_after = restart_after.or(t.config().restart_after);
                            continue;
                        }
                    }
                }
                if let Err(reason) =
                    self.rib
                        .update(id, accepted, Arc::new(attrs), &mut self.changes)
                {
                    tracing::info!(peer = %address, %reason, "routes not accepted");
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
        // Warnings (and a warn-only limit) on what the RIB holds now.
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

/// The index of `family` in a peer's `max_prefix` trackers.
fn family_index(family: Family) -> usize {
    match family {
        Family::Ipv4Unicast => 0,
        Family::Ipv6Unicast => 1,
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
