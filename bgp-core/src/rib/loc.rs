//! The Loc-RIB API.

use std::collections::HashMap;
use std::iter::once;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use ipnetwork::IpNetwork;

use super::export::{self, ExportContext};
use super::intern::AttrCache;
use super::store::{
    Delta, LOCAL_INDEX, Multi, Route, STALE, Store, StoredPath, Sweep, path_of, remove, sweep,
    upsert,
};
use super::table::{self, AddrKey, NetKey, PrefixMap};
use super::{BestChange, NextHop, Path, PathAttrs, PeerId, PeerInfo, RejectReason, RibConfig};
use crate::wire::{Family, Prefix};

/// The Loc-RIB: every accepted path of every peer, best first per prefix.
///
/// Calls that change routes take `changes`, a sink that receives one
/// [`BestChange`] per prefix whose best path changed (identity,
/// attributes, or stale flag). Keep the sink short-lived (drain it per
/// UPDATE): a change is about 56 bytes.
#[derive(Debug)]
pub struct Rib {
    config: RibConfig,
    /// Indexed by internal peer index; index 0 is the local pseudo-peer.
    peers: Vec<Option<PeerInfo>>,
    /// Paths per peer index and family (IPv4, IPv6).
    counts: Vec<[usize; 2]>,
    index: HashMap<PeerId, u32, table::KeyState>,
    free_peers: Vec<u32>,
    attrs: AttrCache,
    routes: PrefixMap<Route>,
    multi: Multi,
    /// Changes held back within one [`Rib::update`] (kept for its capacity).
    pending: Vec<(IpNetwork, Delta)>,
}

fn family_index(f: Family) -> usize {
    match f {
        Family::Ipv4Unicast => 0,
        Family::Ipv6Unicast => 1,
    }
}

impl Rib {
    /// An empty RIB.
    pub fn new(config: RibConfig) -> Rib {
        let local = PeerInfo {
            id: PeerId::LOCAL,
            address: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            asn: config.local_as,
            router_id: config.router_id,
            ibgp: false,
            rr_client: false,
        };
        Rib {
            config,
            peers: vec![Some(local)],
            counts: vec![[0; 2]],
            index: HashMap::with_hasher(table::KeyState::random()),
            free_peers: Vec::new(),
            attrs: AttrCache::new(),
            routes: PrefixMap::new(),
            multi: Multi::default(),
            pending: Vec::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &RibConfig {
        &self.config
    }

    /// Registers a peer. Returns false (and changes nothing) if its id is
    /// taken or is [`PeerId::LOCAL`].
    pub fn add_peer(&mut self, info: PeerInfo) -> bool {
        if info.id == PeerId::LOCAL || self.index.contains_key(&info.id) {
            return false;
        }
        let i = match self.free_peers.pop() {
            Some(i) => {
                if let Some(slot) = self.peers.get_mut(i as usize) {
                    *slot = Some(info);
                }
                if let Some(c) = self.counts.get_mut(i as usize) {
                    *c = [0; 2];
                }
                i
            }
            None => {
                let Ok(i) = u32::try_from(self.peers.len()) else {
                    return false;
                };
                if i >= STALE {
                    return false;
                }
                self.peers.push(Some(info));
                self.counts.push([0; 2]);
                i
            }
        };
        self.index.insert(info.id, i);
        true
    }

    /// A registered peer.
    pub fn peer(&self, id: PeerId) -> Option<&PeerInfo> {
        let i = self.peer_index(id)?;
        self.peers.get(i as usize)?.as_ref()
    }

    fn peer_index(&self, id: PeerId) -> Option<u32> {
        if id == PeerId::LOCAL {
            return Some(LOCAL_INDEX);
        }
        self.index.get(&id).copied()
    }

    /// Drops a peer and all its paths (its session went down without
    /// graceful restart). Returns false if it was not registered.
    pub fn remove_peer(&mut self, id: PeerId, changes: &mut impl Extend<BestChange>) -> bool {
        let Some(i) = self.index.get(&id).copied() else {
            return false;
        };
        for f in [Family::Ipv4Unicast, Family::Ipv6Unicast] {
            self.sweep(i, f, Sweep::All, changes);
        }
        self.index.remove(&id);
        if let Some(slot) = self.peers.get_mut(i as usize) {
            *slot = None;
        }
        self.free_peers.push(i);
        true
    }

    fn store(&mut self) -> (Store<'_>, &mut PrefixMap<Route>, &mut Vec<[usize; 2]>) {
        (
            Store {
                attrs: &mut self.attrs,
                multi: &mut self.multi,
                peers: &self.peers,
                local_as: self.config.local_as,
            },
            &mut self.routes,
            &mut self.counts,
        )
    }

    fn sweep(
        &mut self,
        peer_index: u32,
        family: Family,
        op: Sweep,
        changes: &mut impl Extend<BestChange>,
    ) -> usize {
        let (mut s, routes, counts) = self.store();
        let n = match family {
            Family::Ipv4Unicast => sweep(&mut routes.v4, &mut s, peer_index, op, changes),
            Family::Ipv6Unicast => sweep(&mut routes.v6, &mut s, peer_index, op, changes),
        };
        if op != Sweep::Mark
            && let Some(c) = counts
                .get_mut(peer_index as usize)
                .and_then(|c| c.get_mut(family_index(family)))
        {
            *c = c.saturating_sub(n);
        }
        n
    }

    /// The RFC 4271 §9.1.2 / RFC 4456 §8 checks a received route must pass.
    fn check_import(
        &self,
        peer: &PeerInfo,
        a: &PathAttrs,
        prefixes: &[Prefix],
    ) -> Result<(), RejectReason> {
        // Only eBGP routes are checked for our AS: inside the AS the path
        // was checked when it entered, and confederations are not used.
        if !peer.ibgp && a.as_path.contains(self.config.local_as) {
            return Err(RejectReason::AsLoop);
        }
        if a.originator_id == Some(self.config.router_id) {
            return Err(RejectReason::OriginatorIsUs);
        }
        if self
            .config
            .cluster_id
            .is_some_and(|c| a.cluster_list.contains(&c))
        {
            return Err(RejectReason::ClusterLoop);
        }
        if !a.next_hop.is_usable() {
            return Err(RejectReason::UnusableNextHop);
        }
        if matches!(a.next_hop, NextHop::V4(_))
            && prefixes
                .iter()
                .any(|p| matches!(p.network, IpNetwork::V6(_)))
        {
            return Err(RejectReason::NextHopFamily);
        }
        Ok(())
    }

    /// Stores `announced` from `peer` with `attrs` (an UPDATE's NLRI or
    /// MP_REACH_NLRI, after import policy), replacing any path from the
    /// same peer and path id. Returns the number of prefixes stored.
    ///
    /// On a [`RejectReason`] other than `UnknownPeer` the prefixes are
    /// withdrawn for this peer instead.
    pub fn update(
        &mut self,
        peer: PeerId,
        announced: &[Prefix],
        attrs: Arc<PathAttrs>,
        changes: &mut impl Extend<BestChange>,
    ) -> Result<usize, RejectReason> {
        let info = self.peer(peer).ok_or(RejectReason::UnknownPeer(peer))?;
        if let Err(reason) = self.check_import(info, &attrs, announced) {
            self.withdraw(peer, announced, changes);
            return Err(reason);
        }
        let index = self
            .peer_index(peer)
            .ok_or(RejectReason::UnknownPeer(peer))?;
        Ok(self.insert(index, announced, attrs, changes))
    }

    fn insert(
        &mut self,
        peer_index: u32,
        announced: &[Prefix],
        attrs: Arc<PathAttrs>,
        changes: &mut impl Extend<BestChange>,
    ) -> usize {
        let id = self.attrs.intern(attrs);
        let mut pending = std::mem::take(&mut self.pending);
        let (mut s, routes, counts) = self.store();
        let mut added = [0usize; 2];
        for p in announced {
            let path = StoredPath::new(id, peer_index, p.path_id.unwrap_or(0));
            let (family, net, r) = match NetKey::of(&p.network) {
                NetKey::V4(a, l) => (0, a.network(l), upsert(&mut routes.v4, &mut s, a, l, path)),
                NetKey::V6(a, l) => (1, a.network(l), upsert(&mut routes.v6, &mut s, a, l, path)),
            };
            if r.new_path {
                added[family] += 1;
            }
            if let (Some(d), Some(net)) = (r.delta, net) {
                // A change to our own path is built after the loop: its
                // set (`id`) lives until then, and building it (an atomic
                // `Arc` increment) here would stall on the table writes
                // still in flight. Others are built now, in order.
                if d.new.is_some_and(|n| n.attr == id) {
                    pending.push((net, d));
                } else {
                    for (net, d) in pending.drain(..) {
                        changes.extend(once(s.change(net, d)));
                    }
                    changes.extend(once(s.change(net, d)));
                }
            }
        }
        for (net, d) in pending.drain(..) {
            changes.extend(once(s.change(net, d)));
        }
        if let Some(c) = counts.get_mut(peer_index as usize) {
            c[0] = c[0].saturating_add(added[0]);
            c[1] = c[1].saturating_add(added[1]);
        }
        self.attrs.release_unused(id);
        self.pending = pending;
        announced.len()
    }

    /// Removes `peer`'s paths for `withdrawn` (Withdrawn Routes or
    /// MP_UNREACH_NLRI). Returns the number of paths removed.
    pub fn withdraw(
        &mut self,
        peer: PeerId,
        withdrawn: &[Prefix],
        changes: &mut impl Extend<BestChange>,
    ) -> usize {
        let Some(index) = self.peer_index(peer) else {
            return 0;
        };
        self.remove_paths(
            index,
            withdrawn
                .iter()
                .map(|p| (p.network, p.path_id.unwrap_or(0))),
            changes,
        )
    }

    fn remove_paths(
        &mut self,
        peer_index: u32,
        prefixes: impl Iterator<Item = (IpNetwork, u32)>,
        changes: &mut impl Extend<BestChange>,
    ) -> usize {
        let (mut s, routes, counts) = self.store();
        let mut removed = [0usize; 2];
        for (network, path_id) in prefixes {
            let (family, net, (gone, delta)) = match NetKey::of(&network) {
                NetKey::V4(a, l) => (
                    0,
                    a.network(l),
                    remove(&mut routes.v4, &mut s, a, l, peer_index, path_id),
                ),
                NetKey::V6(a, l) => (
                    1,
                    a.network(l),
                    remove(&mut routes.v6, &mut s, a, l, peer_index, path_id),
                ),
            };
            if gone {
                removed[family] += 1;
            }
            if let (Some(d), Some(net)) = (delta, net) {
                changes.extend(once(s.change(net, d)));
            }
        }
        if let Some(c) = counts.get_mut(peer_index as usize) {
            c[0] = c[0].saturating_sub(removed[0]);
            c[1] = c[1].saturating_sub(removed[1]);
        }
        removed[0] + removed[1]
    }

    /// Originates `prefix` with `attrs` (owned by [`PeerId::LOCAL`]). An
    /// unspecified next hop (`0.0.0.0`, `::`) means this speaker and is
    /// replaced by the session's address on export.
    pub fn announce_local(
        &mut self,
        prefix: IpNetwork,
        attrs: PathAttrs,
        changes: &mut impl Extend<BestChange>,
    ) {
        self.insert(
            LOCAL_INDEX,
            &[Prefix::new(prefix)],
            Arc::new(attrs),
            changes,
        );
    }

    /// Stops originating `prefix`. Returns whether it was originated.
    pub fn withdraw_local(
        &mut self,
        prefix: IpNetwork,
        changes: &mut impl Extend<BestChange>,
    ) -> bool {
        self.remove_paths(LOCAL_INDEX, once((prefix, 0)), changes) > 0
    }

    /// Graceful restart, helper side (RFC 4724 §4.2): the session with
    /// `peer` went down and it keeps forwarding, so its `family` paths stay
    /// but are marked stale (they lose ties to fresh paths, see
    /// the decision steps). A change is reported where a best path's stale
    /// flag or identity changed. Returns the number of paths marked.
    pub fn mark_stale(
        &mut self,
        peer: PeerId,
        family: Family,
        changes: &mut impl Extend<BestChange>,
    ) -> usize {
        match self.index.get(&peer).copied() {
            Some(i) => self.sweep(i, family, Sweep::Mark, changes),
            None => 0,
        }
    }

    /// Removes `peer`'s `family` paths that are still stale: call on its
    /// End-of-RIB for the family, or when the restart or stale-path timer
    /// expires (RFC 4724 §4.2). Returns the number removed.
    pub fn sweep_stale(
        &mut self,
        peer: PeerId,
        family: Family,
        changes: &mut impl Extend<BestChange>,
    ) -> usize {
        match self.index.get(&peer).copied() {
            Some(i) => self.sweep(i, family, Sweep::Stale, changes),
            None => 0,
        }
    }

    fn route_paths<'a>(&'a self, route: &'a Route) -> &'a [StoredPath] {
        match route {
            Route::One(p) => std::slice::from_ref(p),
            Route::Many(i) => self.multi.list(*i),
        }
    }

    /// The best path to `prefix` (exact match).
    pub fn best(&self, prefix: &IpNetwork) -> Option<Path> {
        let route = self.routes.get(NetKey::of(prefix))?;
        let p = self.route_paths(route).first()?;
        Some(path_of(&self.attrs, &self.peers, p))
    }

    /// Every path to `prefix`, best first.
    pub fn paths(&self, prefix: &IpNetwork) -> Vec<Path> {
        self.routes
            .get(NetKey::of(prefix))
            .map(|r| {
                self.route_paths(r)
                    .iter()
                    .map(|p| path_of(&self.attrs, &self.peers, p))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Every prefix with its best path, in no particular order.
    pub fn iter_best(&self) -> impl Iterator<Item = (IpNetwork, Path)> + '_ {
        self.routes.iter().filter_map(|(net, r)| {
            let p = self.route_paths(r).first()?;
            Some((net, path_of(&self.attrs, &self.peers, p)))
        })
    }

    /// Number of prefixes with at least one path.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// Whether no prefix has a path.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of `family` paths from `peer` (the count max-prefix limits).
    pub fn received(&self, peer: PeerId, family: Family) -> usize {
        self.peer_index(peer)
            .and_then(|i| self.counts.get(i as usize))
            .and_then(|c| c.get(family_index(family)))
            .copied()
            .unwrap_or(0)
    }

    /// How many of `announced` `peer` holds no path for (same prefix and
    /// path id): by how much [`Rib::update`] with them would raise
    /// [`Rib::received`]. One table lookup per prefix, no allocation; a
    /// maximum-prefix limit asks before the update, so a peer over its
    /// limit never gets a prefix into the RIB.
    pub fn new_paths(&self, peer: PeerId, announced: &[Prefix]) -> usize {
        let Some(index) = self.peer_index(peer) else {
            return announced.len();
        };
        let index = index as usize;
        announced
            .iter()
            .filter(|p| {
                let path_id = p.path_id.unwrap_or(0);
                !self.routes.get(NetKey::of(&p.network)).is_some_and(|r| {
                    self.route_paths(r)
                        .iter()
                        .any(|s| s.peer_index() == index && s.path_id == path_id)
                })
            })
            .count()
    }

    /// Number of distinct attribute sets in use.
    pub fn attr_sets(&self) -> usize {
        self.attrs.len()
    }

    /// What a peer described by `to` (registered or not: an update group's
    /// template) is sent for `path`; see [`Rib::export`].
    pub(crate) fn export_as(
        &self,
        to: &PeerInfo,
        family: Family,
        path: &Path,
        ctx: &ExportContext,
    ) -> Option<PathAttrs> {
        let from = self.peer(path.peer)?;
        export::export(&self.config, from, to, family, &path.attrs, ctx)
    }

    /// What to send `to` for `path`, the best path to a `family` prefix:
    /// `None` if it must not be sent (see [`ExportContext`] and the rules
    /// in `export.rs`).
    pub fn export(
        &self,
        to: PeerId,
        family: Family,
        path: &Path,
        ctx: &ExportContext,
    ) -> Option<PathAttrs> {
        let to = self.peer(to)?;
        let from = self.peer(path.peer)?;
        export::export(&self.config, from, to, family, &path.attrs, ctx)
    }
}
