//! Export: what each peer is sent for a best path (RFC 4271 §9.1.3,
//! RFC 4456 §6-§8), and the per-peer Adj-RIB-Out that remembers it.
//!
//! The rules, in order:
//!
//! - a path is never sent back to the peer it came from;
//! - NO_ADVERTISE is sent to nobody, NO_EXPORT and NO_EXPORT_SUBCONFED to
//!   no eBGP peer (RFC 1997);
//! - iBGP to iBGP is not sent (split horizon, RFC 4271 §9.2.1) unless we
//!   reflect (a cluster ID is configured): a client's path goes to every
//!   other iBGP peer, a non-client's only to clients (RFC 4456 §6), never
//!   to the peer named by ORIGINATOR_ID. Reflecting sets ORIGINATOR_ID to
//!   the source's router ID if absent and prepends our cluster ID to
//!   CLUSTER_LIST (RFC 4456 §8); the next hop is left alone;
//! - to iBGP: LOCAL_PREF is set (100 if absent, RFC 4271 §5.1.5); the next
//!   hop is kept unless next-hop-self is configured (not applied to
//!   reflected paths) or it is unspecified on a local route; attributes the
//!   codec kept as bytes are dropped from eBGP-learned paths unless
//!   [`super::RibConfig::forward_unknown_from_ebgp`];
//! - to eBGP: our AS is prepended (confederation segments removed,
//!   RFC 5065 §5.3), the next hop is always ours, LOCAL_PREF,
//!   ORIGINATOR_ID and CLUSTER_LIST are removed, and MED too unless the
//!   route is our own (RFC 4271 §5.1.4: a received MED is not passed to
//!   another AS); optional non-transitive attributes are not sent;
//! - unknown optional transitive attributes get the Partial bit
//!   ([`PathAttribute::for_propagation`], RFC 4271 §5).

use std::iter::once;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use ipnetwork::IpNetwork;

use super::attrs::{NO_ADVERTISE, NO_EXPORT, NO_EXPORT_SUBCONFED, NextHop, PathAttrs};
use super::intern::{AttrCache, AttrId};
use super::table::{AddrKey, LenTables, NetKey, PrefixMap};
use super::{BestChange, Path, PeerId, PeerInfo, Rib, RibConfig};
use crate::wire::iana::attr_flags;
use crate::wire::{AsPath, Family, PathAttribute, Segment, SegmentKind};

/// Per-session facts export needs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExportContext {
    /// Our IPv4 address on the session: the next hop of IPv4 routes we set
    /// ourselves as next hop of. Without it, IPv4 routes cannot be sent to
    /// eBGP peers.
    pub local_next_hop_v4: Option<Ipv4Addr>,
    /// Our global IPv6 address on the session, likewise for IPv6 routes.
    pub local_next_hop_v6: Option<Ipv6Addr>,
    /// Our link-local IPv6 address, sent beside the global one when the
    /// peer shares a link with us (RFC 2545 §3).
    pub local_link_local_v6: Option<Ipv6Addr>,
    /// Set ourselves as next hop toward this iBGP peer (eBGP always does).
    pub next_hop_self: bool,
}

impl ExportContext {
    /// Our next hop for a `family` route.
    fn own_next_hop(&self, family: Family) -> Option<NextHop> {
        match family {
            Family::Ipv4Unicast => self.local_next_hop_v4.map(NextHop::V4),
            Family::Ipv6Unicast => self.local_next_hop_v6.map(|global| NextHop::V6 {
                global,
                link_local: self.local_link_local_v6,
            }),
        }
    }
}

/// Prepends `asn`, keeping one leading AS_SEQUENCE of at most 255 ASes
/// (RFC 4271 §5.1.2), after dropping confederation segments.
fn prepend(path: &mut AsPath, asn: u32) {
    path.segments
        .retain(|s| !matches!(s.kind, SegmentKind::ConfedSequence | SegmentKind::ConfedSet));
    match path.segments.first_mut() {
        Some(s) if s.kind == SegmentKind::Sequence && s.asns.len() < usize::from(u8::MAX) => {
            s.asns.insert(0, asn);
        }
        _ => path.segments.insert(
            0,
            Segment {
                kind: SegmentKind::Sequence,
                asns: vec![asn],
            },
        ),
    }
}

/// The attributes `to` is sent for a path from `from` (rules in the module
/// docs); `None` if it is not sent.
pub(super) fn export(
    config: &RibConfig,
    from: &PeerInfo,
    to: &PeerInfo,
    family: Family,
    a: &PathAttrs,
    ctx: &ExportContext,
) -> Option<PathAttrs> {
    if from.id == to.id || to.id == PeerId::LOCAL {
        return None;
    }
    if a.has_community(NO_ADVERTISE)
        || (!to.ibgp && (a.has_community(NO_EXPORT) || a.has_community(NO_EXPORT_SUBCONFED)))
    {
        return None;
    }
    let local = from.id == PeerId::LOCAL;
    let reflect = !local && from.ibgp && to.ibgp;
    let cluster_id = if reflect {
        let cluster_id = config.cluster_id?;
        if !from.rr_client && !to.rr_client {
            return None;
        }
        if a.originator_id == Some(to.router_id) {
            return None;
        }
        Some(cluster_id)
    } else {
        None
    };

    let mut out = a.clone();
    if to.ibgp {
        if let Some(c) = cluster_id {
            out.originator_id.get_or_insert(from.router_id);
            out.cluster_list.insert(0, c);
        }
        out.local_pref = Some(a.effective_local_pref());
        if (ctx.next_hop_self && !reflect) || (local && a.next_hop.is_unspecified()) {
            out.next_hop = ctx.own_next_hop(family)?;
        }
        let drop_opaque = !local && !from.ibgp && !config.forward_unknown_from_ebgp;
        out.other = a
            .other
            .iter()
            .filter(|x| !(drop_opaque && PathAttrs::is_opaque(x)))
            .filter_map(PathAttribute::for_propagation)
            .collect();
    } else {
        prepend(&mut out.as_path, config.local_as);
        out.next_hop = ctx.own_next_hop(family)?;
        out.local_pref = None;
        if !local {
            out.med = None;
        }
        out.originator_id = None;
        out.cluster_list.clear();
        out.other = a
            .other
            .iter()
            .filter_map(PathAttribute::for_propagation)
            .filter(|x| x.flags & attr_flags::TRANSITIVE != 0)
            .collect();
    }
    Some(out)
}

/// What one peer must be sent after a best-path change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OutChange {
    /// Announce the prefix with these attributes. Prefixes announced with
    /// the same `Arc` (pointer-equal) can share one UPDATE.
    Announce(IpNetwork, Arc<PathAttrs>),
    /// Withdraw the prefix (it was announced before).
    Withdraw(IpNetwork),
}

/// Export memo slots (round robin): an UPDATE's prefixes share one set.
const MEMO: usize = 4;

/// Memoised exports of source attribute sets: a million routes with one
/// set are exported once, not a million times. `K` is what else the
/// result depends on (the two peers, or the source peer of a group).
/// Each result holds a reference to its interned set (taken by the caller
/// on [`ExportMemo::put`], given back for what is evicted), so the set
/// outlives its last route while memoised.
#[derive(Debug)]
pub(crate) struct ExportMemo<K> {
    slots: [Option<MemoEntry<K>>; MEMO],
    next: usize,
}

/// One memoised export: the source set, what else it depended on, the
/// family, and the interned result (`None`: not exported).
type MemoEntry<K> = (Arc<PathAttrs>, K, Family, Option<AttrId>);

impl<K> Default for ExportMemo<K> {
    fn default() -> Self {
        ExportMemo {
            slots: Default::default(),
            next: 0,
        }
    }
}

impl<K: PartialEq> ExportMemo<K> {
    /// The memoised result for `source` exported under `key`, if any.
    pub(crate) fn get(
        &self,
        source: &Arc<PathAttrs>,
        key: &K,
        family: Family,
    ) -> Option<Option<AttrId>> {
        self.slots
            .iter()
            .flatten()
            .find(|(s, k, f, _)| Arc::ptr_eq(s, source) && k == key && *f == family)
            .map(|(.., r)| *r)
    }

    /// Remembers `result`; returns the result it evicted, whose reference
    /// the caller releases.
    pub(crate) fn put(
        &mut self,
        source: Arc<PathAttrs>,
        key: K,
        family: Family,
        result: Option<AttrId>,
    ) -> Option<AttrId> {
        let slot = self.next % MEMO;
        self.next = self.next.wrapping_add(1);
        self.slots
            .get_mut(slot)
            .and_then(|m| m.replace((source, key, family, result)))
            .and_then(|(.., r)| r)
    }

    /// Forgets everything; returns the results whose references the
    /// caller releases.
    pub(crate) fn take_all(&mut self) -> Vec<AttrId> {
        self.slots
            .iter_mut()
            .filter_map(|m| m.take().and_then(|(.., r)| r))
            .collect()
    }
}

/// What one peer has been sent (its Adj-RIB-Out, RFC 4271 §3.2): per
/// prefix, the interned attributes announced. A withdrawal is produced
/// only for prefixes announced before, and an unchanged re-announcement
/// produces nothing.
///
/// Per prefix this costs one 8-byte bucket (address and attribute id) for
/// IPv4; exported attribute sets are interned as in the Loc-RIB.
#[derive(Debug)]
pub struct AdjRibOut {
    peer: PeerId,
    ctx: ExportContext,
    sent: PrefixMap<AttrId>,
    attrs: AttrCache,
    memo: ExportMemo<(PeerInfo, PeerInfo)>,
    /// Scratch for [`AdjRibOut::apply_all`] (kept for its capacity).
    pending: Vec<(IpNetwork, Option<AttrId>)>,
}

/// What [`set_in`] did.
enum Set {
    Announce(AttrId),
    Withdraw,
    Nothing,
}

fn set_in<K: AddrKey>(
    table: &mut LenTables<K, AttrId>,
    attrs: &mut AttrCache,
    addr: K,
    len: u8,
    id: Option<AttrId>,
) -> Set {
    match id {
        Some(id) => {
            let Some(entry) = table.entry(addr, len) else {
                return Set::Nothing;
            };
            let mut added = false;
            let r = match entry {
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(id);
                    attrs.acquire(id);
                    added = true;
                    Set::Announce(id)
                }
                std::collections::hash_map::Entry::Occupied(mut o) => {
                    if *o.get() == id {
                        Set::Nothing
                    } else {
                        attrs.acquire(id);
                        let old = o.insert(id);
                        attrs.release(old);
                        Set::Announce(id)
                    }
                }
            };
            if added {
                table.added();
            }
            r
        }
        None => match table.remove(addr, len) {
            Some(old) => {
                attrs.release(old);
                Set::Withdraw
            }
            None => Set::Nothing,
        },
    }
}

impl AdjRibOut {
    /// Nothing sent yet to `peer`.
    pub fn new(peer: PeerId, ctx: ExportContext) -> AdjRibOut {
        AdjRibOut {
            peer,
            ctx,
            sent: PrefixMap::new(),
            attrs: AttrCache::new(),
            memo: ExportMemo::default(),
            pending: Vec::new(),
        }
    }

    /// The peer.
    pub fn peer(&self) -> PeerId {
        self.peer
    }

    /// The session facts export uses.
    pub fn context(&self) -> &ExportContext {
        &self.ctx
    }

    /// Changes the session facts; call [`Self::sync`] afterwards so what
    /// was sent follows.
    pub fn set_context(&mut self, ctx: ExportContext) {
        self.ctx = ctx;
        self.clear_memo();
    }

    fn clear_memo(&mut self) {
        for id in self.memo.take_all() {
            self.attrs.release(id);
        }
    }

    /// Forgets everything sent (the session went down).
    pub fn clear(&mut self) {
        self.memo = ExportMemo::default();
        self.sent = PrefixMap::new();
        self.attrs.clear();
    }

    /// Number of prefixes announced and not withdrawn.
    pub fn len(&self) -> usize {
        self.sent.len()
    }

    /// Whether nothing is announced.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// What `prefix` was last announced with.
    pub fn advertised(&self, prefix: &IpNetwork) -> Option<Arc<PathAttrs>> {
        let id = self.sent.get(NetKey::of(prefix))?;
        Some(self.attrs.get(*id).clone())
    }

    /// Everything announced (to answer a ROUTE-REFRESH, RFC 2918 §4).
    pub fn iter(&self) -> impl Iterator<Item = (IpNetwork, Arc<PathAttrs>)> + '_ {
        self.sent
            .iter()
            .map(|(net, id)| (net, self.attrs.get(*id).clone()))
    }

    /// The interned export of `path`, through the memo.
    fn export_id(&mut self, rib: &Rib, family: Family, path: &Path) -> Option<AttrId> {
        if path.peer == self.peer {
            return None;
        }
        let to = *rib.peer(self.peer)?;
        let from = *rib.peer(path.peer)?;
        if let Some(hit) = self.memo.get(&path.attrs, &(from, to), family) {
            return hit;
        }
        let result = export(rib.config(), &from, &to, family, &path.attrs, &self.ctx)
            .map(|a| self.attrs.intern(Arc::new(a)));
        if let Some(id) = result {
            self.attrs.acquire(id);
        }
        if let Some(id) = self
            .memo
            .put(path.attrs.clone(), (from, to), family, result)
        {
            self.attrs.release(id);
        }
        result
    }

    /// Records `id` (or a withdrawal) for `prefix`; returns the
    /// normalised prefix and what to send.
    fn record(&mut self, prefix: IpNetwork, id: Option<AttrId>) -> (IpNetwork, Set) {
        let (set, net) = match NetKey::of(&prefix) {
            NetKey::V4(a, l) => (
                set_in(&mut self.sent.v4, &mut self.attrs, a, l, id),
                a.network(l),
            ),
            NetKey::V6(a, l) => (
                set_in(&mut self.sent.v6, &mut self.attrs, a, l, id),
                a.network(l),
            ),
        };
        (net.unwrap_or(prefix), set)
    }

    fn set(&mut self, prefix: IpNetwork, id: Option<AttrId>) -> Option<OutChange> {
        let (net, set) = self.record(prefix, id);
        match set {
            Set::Announce(id) => Some(OutChange::Announce(net, self.attrs.get(id).clone())),
            Set::Withdraw => Some(OutChange::Withdraw(net)),
            Set::Nothing => None,
        }
    }

    fn family_of(prefix: &IpNetwork) -> Family {
        match prefix {
            IpNetwork::V4(_) => Family::Ipv4Unicast,
            IpNetwork::V6(_) => Family::Ipv6Unicast,
        }
    }

    /// [`Self::apply`] for a batch of changes (one UPDATE's worth), the
    /// faster way: what to send is built after all are recorded, so the
    /// table writes are not serialised by `Arc` increments. `allow` is the
    /// export policy; a rejected prefix is withdrawn if it was sent.
    pub fn apply_all(
        &mut self,
        rib: &Rib,
        changes: &[BestChange],
        allow: impl Fn(&IpNetwork) -> bool,
        out: &mut impl Extend<OutChange>,
    ) {
        let mut pending = std::mem::take(&mut self.pending);
        for c in changes {
            let id = match &c.new {
                Some(p) if allow(&c.prefix) => self.export_id(rib, Self::family_of(&c.prefix), p),
                _ => None,
            };
            let (net, set) = self.record(c.prefix, id);
            match set {
                Set::Nothing => {}
                Set::Withdraw => pending.push((net, None)),
                Set::Announce(id) => {
                    // Held until sent, even if replaced later in the batch.
                    self.attrs.acquire(id);
                    pending.push((net, Some(id)));
                }
            }
        }
        for (net, id) in pending.drain(..) {
            out.extend(once(match id {
                None => OutChange::Withdraw(net),
                Some(id) => {
                    let change = OutChange::Announce(net, self.attrs.get(id).clone());
                    self.attrs.release(id);
                    change
                }
            }));
        }
        self.pending = pending;
    }

    /// What to send after `change` (from `rib`), recording it: an
    /// announcement if the exported attributes differ from what was sent,
    /// a withdrawal if the prefix was sent but now must not be, else
    /// nothing. Apply export policy first: a prefix it rejects goes to
    /// [`Self::withdraw`] instead.
    pub fn apply(&mut self, rib: &Rib, change: &BestChange) -> Option<OutChange> {
        let family = match change.prefix {
            IpNetwork::V4(_) => Family::Ipv4Unicast,
            IpNetwork::V6(_) => Family::Ipv6Unicast,
        };
        let id = change
            .new
            .as_ref()
            .and_then(|p| self.export_id(rib, family, p));
        self.set(change.prefix, id)
    }

    /// Withdraws `prefix` if it was announced (e.g. export policy now
    /// rejects it).
    pub fn withdraw(&mut self, prefix: IpNetwork) -> Option<OutChange> {
        self.set(prefix, None)
    }

    /// Brings this peer in line with every best path of `rib` for which
    /// `allow` (export policy) holds: announces what is missing or
    /// different, withdraws what is no longer there. Use when the session
    /// comes up, and after a policy or context change.
    pub fn sync(
        &mut self,
        rib: &Rib,
        allow: impl Fn(&IpNetwork) -> bool,
        out: &mut impl Extend<OutChange>,
    ) {
        for (prefix, path) in rib.iter_best() {
            let change = BestChange {
                prefix,
                new: allow(&prefix).then_some(path),
                old_peer: None,
            };
            if let Some(c) = self.apply(rib, &change) {
                out.extend(once(c));
            }
        }
        let gone: Vec<IpNetwork> = self
            .sent
            .iter()
            .map(|(net, _)| net)
            .filter(|net| rib.best(net).is_none())
            .collect();
        for net in gone {
            if let Some(c) = self.withdraw(net) {
                out.extend(once(c));
            }
        }
    }
}
