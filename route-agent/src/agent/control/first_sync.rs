//! The hold on the first plan of an agent that finds routes of an earlier
//! run in the kernel.
//!
//! The first plan replaces whatever our protocol has installed. Made
//! before the peers have re-sent their tables, it would delete every
//! learned route and the next plan would add them back: churn for every
//! pod on the node, and traffic lost in between. So when routes of ours
//! are installed at start, the first plan waits until every configured
//! peer has sent End-of-RIB for every family its session negotiated
//! (RFC 4724 §4.1's deferral of route selection, which applies with or
//! without graceful restart: a peer of ours sends End-of-RIB after its
//! initial table either way), or until a bound:
//!
//! | graceful restart | bound |
//! |---|---|
//! | on | the restart time: peers keep our routes as long, and the kernel keeps theirs |
//! | off | [`WAIT_WITHOUT_GR`]: peers re-send their tables right after the sessions come up, and a peer that never comes up must not hold every change for long |
//!
//! A peer's families are known only once its session is up
//! ([`bgp_core::speaker::RouteChange::PeerUp`]): until then it is awaited
//! as a whole. A first start (nothing of ours installed) has nothing to
//! delete and is not held.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Duration;

use bgp_core::wire::Family;

use crate::config::Config;

/// How long, without graceful restart, the first plan waits for peers'
/// End-of-RIB: a peer whose session was reset by our restart connects again
/// within its connect-retry time (5 s) and sends its table within a
/// second or two.
pub const WAIT_WITHOUT_GR: Duration = Duration::from_secs(15);

/// How long the first plan of an agent started with `config` may wait:
/// `None` when it does not wait at all (nothing of ours is `installed`,
/// or there is no peer to wait for).
pub fn bound(config: &Config, installed: bool, peers: usize) -> Option<Duration> {
    if !installed || peers == 0 {
        return None;
    }
    Some(if config.graceful_restart.enabled {
        Duration::from_secs(config.graceful_restart.restart_time.into())
    } else {
        WAIT_WITHOUT_GR
    })
}

/// The End-of-RIBs the first plan still waits for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Awaiting {
    /// Each awaited peer: `None` until its session is up (its families are
    /// not known yet), then the families whose End-of-RIB has not come.
    peers: BTreeMap<IpAddr, Option<BTreeSet<Family>>>,
}

impl Awaiting {
    /// Waits for every one of `peers`.
    pub fn peers(peers: &[IpAddr]) -> Awaiting {
        Awaiting {
            peers: peers.iter().map(|p| (*p, None)).collect(),
        }
    }

    /// `peer`'s session came up with `families`: their End-of-RIBs are
    /// awaited (again, if an earlier session of it had sent some: that
    /// session's routes are being replaced).
    pub fn session_up(&mut self, peer: IpAddr, families: &[Family]) {
        if let Some(waiting) = self.peers.get_mut(&peer) {
            *waiting = Some(families.iter().copied().collect());
            if families.is_empty() {
                self.peers.remove(&peer);
            }
        }
    }

    /// `peer` sent End-of-RIB for `family`.
    pub fn end_of_rib(&mut self, peer: IpAddr, family: Family) {
        if let Some(Some(families)) = self.peers.get_mut(&peer) {
            families.remove(&family);
            if families.is_empty() {
                self.peers.remove(&peer);
            }
        }
    }

    /// Stops waiting for peers no longer configured.
    pub fn retain(&mut self, configured: &[IpAddr]) {
        self.peers.retain(|p, _| configured.contains(p));
    }

    /// Nothing is awaited any more.
    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    /// The peers still awaited, in address order.
    pub fn missing(&self) -> Vec<IpAddr> {
        self.peers.keys().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_peer_is_done_once_every_family_its_session_negotiated_has_ended() {
        let mut a = Awaiting::peers(&[ip("10.0.0.6"), ip("10.0.0.7")]);
        // Before its session is up, no End-of-RIB counts: its families
        // are not known.
        a.end_of_rib(ip("10.0.0.6"), Family::Ipv4Unicast);
        assert_eq!(a.missing(), [ip("10.0.0.6"), ip("10.0.0.7")]);
        a.session_up(ip("10.0.0.6"), &[Family::Ipv4Unicast, Family::Ipv6Unicast]);
        a.end_of_rib(ip("10.0.0.6"), Family::Ipv4Unicast);
        assert_eq!(
            a.missing(),
            [ip("10.0.0.6"), ip("10.0.0.7")],
            "IPv6 still due"
        );
        a.end_of_rib(ip("10.0.0.6"), Family::Ipv6Unicast);
        assert_eq!(a.missing(), [ip("10.0.0.7")]);
        a.session_up(ip("10.0.0.7"), &[Family::Ipv4Unicast]);
        a.end_of_rib(ip("10.0.0.7"), Family::Ipv4Unicast);
        assert!(a.is_empty());
    }

    #[test]
    fn a_session_that_comes_up_again_is_awaited_again_and_unknown_peers_are_ignored() {
        let mut a = Awaiting::peers(&[ip("10.0.0.6")]);
        a.session_up(ip("10.0.0.6"), &[Family::Ipv4Unicast, Family::Ipv6Unicast]);
        a.end_of_rib(ip("10.0.0.6"), Family::Ipv4Unicast);
        a.session_up(ip("10.0.0.6"), &[Family::Ipv4Unicast, Family::Ipv6Unicast]);
        a.end_of_rib(ip("10.0.0.6"), Family::Ipv6Unicast);
        assert_eq!(
            a.missing(),
            [ip("10.0.0.6")],
            "the new session's IPv4 is due"
        );
        // A dynamic neighbour (no configured peer) is not waited for.
        a.session_up(ip("10.0.0.99"), &[Family::Ipv4Unicast]);
        assert_eq!(a.missing(), [ip("10.0.0.6")]);
        a.retain(&[]);
        assert!(a.is_empty());
    }

    #[test]
    fn only_an_agent_with_routes_installed_and_peers_waits_bounded_by_the_restart_time_or_fifteen_seconds()
     {
        let config = |gr: &str| {
            Config::parse(
                Path::new("t.yaml"),
                &format!(
                    "node: {{address: 10.0.0.5/24}}\npools: [{{cidr: 10.244.0.0/16}}]\ngraceful-restart: {gr}\n"
                ),
            )
            .unwrap()
        };
        let on = config("{enabled: true, restart-time: 90}");
        let off = config("{enabled: false}");
        assert_eq!(bound(&on, true, 2), Some(Duration::from_secs(90)));
        assert_eq!(bound(&off, true, 2), Some(WAIT_WITHOUT_GR));
        assert_eq!(bound(&on, false, 2), None, "a first start deletes nothing");
        assert_eq!(bound(&off, true, 0), None, "no peer to wait for");
    }
}
