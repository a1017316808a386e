//! The decision process: which of a prefix's paths is best (RFC 4271
//! §9.1.2.2, RFC 4456 §9).
//!
//! The steps, each applied only among the paths still tied:
//!
//! 1. highest LOCAL_PREF (100 when absent);
//! 2. locally originated routes;
//! 3. shortest AS_PATH ([`crate::wire::AsPath::len_for_selection`]);
//! 4. lowest ORIGIN (IGP < EGP < INCOMPLETE);
//! 5. lowest MULTI_EXIT_DISC, compared only among paths from the same
//!    neighbour AS (a missing MED is 0);
//! 6. eBGP-learned over iBGP-learned;
//! 7. not stale over stale (graceful restart; our choice: RFC 4724 leaves
//!    it open, and preferring fresh paths only here keeps a restarting
//!    peer's routes in use unless an otherwise equal one exists, as BIRD
//!    does);
//! 8. lowest BGP identifier, ORIGINATOR_ID standing in for it when present
//!    (RFC 4456 §9);
//! 9. shortest CLUSTER_LIST (RFC 4456 §9);
//! 10. lowest peer address;
//! 11. lowest ADD-PATH path identifier.
//!
//! Step 5 is not a total order (A < B < C < A is possible when MEDs from
//! different ASes are mixed), so it runs as RFC 4271 describes, as an
//! elimination round, and the steps around it as lexicographic keys.

use std::cmp::Reverse;
use std::net::{IpAddr, Ipv4Addr};

use super::PeerInfo;
use super::attrs::PathAttrs;
use super::intern::AttrCache;
use super::path::StoredPath;
use crate::wire::Origin;

/// What the decision process needs besides the paths themselves.
pub(crate) struct Env<'a> {
    pub(crate) attrs: &'a AttrCache,
    pub(crate) peers: &'a [Option<PeerInfo>],
    pub(crate) local_as: u32,
}

/// Steps 1 to 4, smallest best.
type Key1 = (Reverse<u32>, Reverse<bool>, usize, Origin);
/// Steps 6 to 11, smallest best.
type Key2 = (bool, bool, Ipv4Addr, usize, IpAddr, u32);

impl Env<'_> {
    fn peer(&self, p: &StoredPath) -> Option<&PeerInfo> {
        self.peers.get(p.peer_index()).and_then(Option::as_ref)
    }

    fn key1(&self, p: &StoredPath, a: &PathAttrs) -> Key1 {
        (
            Reverse(a.effective_local_pref()),
            Reverse(p.is_local()),
            a.as_path.len_for_selection(),
            a.origin,
        )
    }

    /// The neighbour AS of RFC 4271 §9.1.2.2 c: the leftmost AS, or ours
    /// for a path that starts inside our AS (empty, or an AS_SET first).
    fn neighbour_as(&self, a: &PathAttrs) -> u32 {
        a.as_path.first_as().unwrap_or(self.local_as)
    }

    fn key2(&self, p: &StoredPath, a: &PathAttrs) -> Key2 {
        let peer = self.peer(p);
        let ibgp = !p.is_local() && peer.is_some_and(|i| i.ibgp);
        let router_id = a
            .originator_id
            .or(peer.map(|i| i.router_id))
            .unwrap_or(Ipv4Addr::UNSPECIFIED);
        let address = peer.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |i| i.address);
        (
            ibgp,
            p.is_stale(),
            router_id,
            a.cluster_list.len(),
            address,
            p.path_id,
        )
    }

    /// The index of the best of `paths` (empty: 0).
    pub(crate) fn best(&self, paths: &[StoredPath]) -> usize {
        if paths.len() < 2 {
            return 0;
        }
        let get = |p: &StoredPath| self.attrs.get(p.attr);
        let Some(top) = paths.iter().map(|p| self.key1(p, get(p))).min() else {
            return 0;
        };
        let tied = |p: &StoredPath| self.key1(p, get(p)) == top;
        let med = |a: &PathAttrs| a.med.unwrap_or(0);
        let survives = |p: &StoredPath| {
            let a = get(p);
            let asn = self.neighbour_as(a);
            !paths.iter().any(|q| {
                let b = get(q);
                tied(q) && self.neighbour_as(b) == asn && med(b) < med(a)
            })
        };
        paths
            .iter()
            .enumerate()
            .filter(|(_, p)| tied(p) && survives(p))
            .min_by_key(|(_, p)| self.key2(p, get(p)))
            .map_or(0, |(i, _)| i)
    }

    /// Moves the best path to the front.
    pub(crate) fn reselect(&self, paths: &mut [StoredPath]) {
        let i = self.best(paths);
        if i != 0 {
            paths.swap(0, i);
        }
    }
}
