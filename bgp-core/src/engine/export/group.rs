//! Update groups: peers that would be sent the same bytes share one
//! Adj-RIB-Out, one export computation per route change, and one encoded
//! UPDATE per batch of changes (the idea of FRR's and IOS's update groups).
//!
//! A group is keyed by everything export and encoding read from the
//! receiving peer ([`GroupKey`]): iBGP or eBGP, route-reflector client or
//! not, the session facts of [`ExportContext`], the encoding context, the
//! families and the export filter. What still differs between members is
//! who a route must not go back to (RFC 4271 §9.2.1: not to the peer it came
//! from; RFC 4456 §8: not to the peer named by ORIGINATOR_ID). So the group
//! table remembers each route's source, a change goes to "every member
//! except these few", and the few get their own, member-only, messages
//! when what they must hold differs from the rest.
//!
//! Reflecting C clients' routes thus costs one export and one encoding per
//! route, not one per route and client: the O(C × routes × C) of per-peer
//! Adj-RIBs-Out becomes O(routes) work plus O(C × messages) handing out
//! shared `Bytes`.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Arc;

use bytes::Bytes;
use ipnetwork::IpNetwork;

use super::pack::{self, OutAttrs};
use crate::policy::PrefixFilter;
use crate::rib::export::ExportMemo;
use crate::rib::intern::{AttrCache, AttrId};
use crate::rib::table::{AddrKey, NetKey, PrefixMap};
use crate::rib::{BestChange, ExportContext, Path, PeerId, PeerInfo, Rib};
use crate::wire::iana::attr;
use crate::wire::{DecodeContext, Family, Prefix};

/// What decides the bytes a peer is sent: peers with equal keys share a
/// group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct GroupKey {
    /// Internal peer (same AS).
    pub(crate) ibgp: bool,
    /// A route-reflector client of ours.
    pub(crate) rr_client: bool,
    /// Next hops and next-hop-self for this session.
    pub(crate) ctx: ExportContext,
    /// The encoding-relevant part of the session's send context.
    pub(crate) encoding: DecodeContext,
    /// Families negotiated on the session.
    pub(crate) families: Vec<Family>,
    /// The export filter (`None`: everything for iBGP, nothing for eBGP,
    /// RFC 8212).
    pub(crate) export: Option<PrefixFilter>,
}

impl GroupKey {
    fn allows(&self, prefix: &IpNetwork) -> bool {
        if !self.families.contains(&family_of(prefix)) {
            return false;
        }
        // RFC 8212 §3, as `Policy::export_allows`: no filter sends
        // everything to iBGP and nothing to eBGP.
        match &self.export {
            Some(f) => f.accepts(prefix),
            None => self.ibgp,
        }
    }
}

pub(crate) fn family_of(net: &IpNetwork) -> Family {
    match net {
        IpNetwork::V4(_) => Family::Ipv4Unicast,
        IpNetwork::V6(_) => Family::Ipv6Unicast,
    }
}

/// A member as exclusion sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct MemberInfo {
    pub(crate) peer: PeerId,
    pub(crate) router_id: Ipv4Addr,
}

/// One prefix in the group's Adj-RIB-Out: the exported attributes and the
/// peer the route came from. 8 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) attr: AttrId,
    pub(crate) src: PeerId,
}

/// What one member (or every member) is sent for one prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Send {
    Announce(AttrId),
    Withdraw,
    Nothing,
}

/// Who a log entry is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Audience {
    /// Every member but these.
    AllBut(Vec<PeerId>),
    /// This member only.
    Only(PeerId),
}

impl Audience {
    pub(crate) fn includes(&self, peer: PeerId) -> bool {
        match self {
            Audience::AllBut(skip) => !skip.contains(&peer),
            Audience::Only(p) => *p == peer,
        }
    }
}

/// Encoded messages produced by one batch of changes, for one audience.
#[derive(Debug)]
pub(crate) struct Output {
    pub(crate) audience: Audience,
    pub(crate) messages: Vec<Bytes>,
    /// The prefixes the messages are about (a member that falls behind
    /// takes these instead of the messages, see `mod.rs`).
    pub(crate) prefixes: Box<[IpNetwork]>,
}

/// One update group's Adj-RIB-Out.
#[derive(Debug)]
pub(crate) struct Group {
    pub(crate) key: GroupKey,
    /// The peer export is computed for: the key's facts, and an id and
    /// router ID nobody has, so nothing is excluded at this stage.
    template: PeerInfo,
    pub(crate) members: HashMap<PeerId, MemberInfo>,
    /// Members by router ID (ORIGINATOR_ID exclusion).
    by_router_id: HashMap<Ipv4Addr, Vec<PeerId>>,
    table: PrefixMap<Entry>,
    attrs: AttrCache,
    /// Wire form of exported sets, by id (dropped with the set).
    wire: HashMap<AttrId, Arc<OutAttrs>>,
    memo: ExportMemo<PeerId>,
    /// Routes excluded for the only member were not stored (so a lone
    /// session pays nothing for the routes it sent us); a second member
    /// needs them, so the table is rebuilt when one joins.
    partial: bool,
    /// Counts behind [`Group::advertised`].
    by_src: HashMap<PeerId, usize>,
    by_originator: HashMap<Ipv4Addr, usize>,
    /// Entries whose ORIGINATOR_ID is their source's router ID.
    self_originated: HashMap<PeerId, usize>,
    /// Router IDs of the sources in `by_src`.
    src_router_ids: HashMap<PeerId, Ipv4Addr>,
}

/// Adds or takes one from `key`'s count, dropping counts that reach 0.
fn bump<K: std::hash::Hash + Eq>(counts: &mut HashMap<K, usize>, key: K, up: bool) {
    if up {
        *counts.entry(key).or_default() += 1;
    } else if let std::collections::hash_map::Entry::Occupied(mut o) = counts.entry(key) {
        *o.get_mut() = o.get().saturating_sub(1);
        if *o.get() == 0 {
            o.remove();
        }
    }
}

/// The group id no peer has (template for export).
const TEMPLATE_PEER: PeerId = PeerId(u32::MAX - 1);

impl Group {
    /// An empty group for `key` (call [`Group::rebuild`] before use).
    pub(crate) fn new(key: GroupKey, local_as: u32) -> Group {
        let template = PeerInfo {
            id: TEMPLATE_PEER,
            address: std::net::IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            asn: if key.ibgp { local_as } else { 0 },
            router_id: Ipv4Addr::UNSPECIFIED,
            ibgp: key.ibgp,
            rr_client: key.rr_client,
        };
        Group {
            key,
            template,
            members: HashMap::new(),
            by_router_id: HashMap::new(),
            table: PrefixMap::new(),
            attrs: AttrCache::new(),
            wire: HashMap::new(),
            memo: ExportMemo::default(),
            partial: false,
            by_src: HashMap::new(),
            by_originator: HashMap::new(),
            self_originated: HashMap::new(),
            src_router_ids: HashMap::new(),
        }
    }

    /// Number of prefixes in the group's table.
    pub(crate) fn len(&self) -> usize {
        self.table.len()
    }

    /// Prefixes `member` holds from us (what its Adj-RIB-Out would count).
    pub(crate) fn advertised(&self, member: MemberInfo) -> usize {
        let src = self.by_src.get(&member.peer).copied().unwrap_or(0);
        let orig = self
            .by_originator
            .get(&member.router_id)
            .copied()
            .unwrap_or(0);
        let both = self.self_originated.get(&member.peer).copied().unwrap_or(0);
        self.table
            .len()
            .saturating_sub(src.saturating_add(orig).saturating_sub(both))
    }

    fn originator(&self, e: &Entry) -> Option<Ipv4Addr> {
        self.attrs.get(e.attr).originator_id
    }

    /// Whether `member` must not be sent the route in `e`.
    fn excludes(&self, member: MemberInfo, e: &Entry) -> bool {
        e.src == member.peer || self.originator(e) == Some(member.router_id)
    }

    /// Members excluded from `e`: its source, and whoever has the router
    /// ID of its ORIGINATOR_ID (usually the same one).
    fn excluded(&self, e: &Entry, out: &mut Vec<MemberInfo>) {
        let mut add = |peer: PeerId| {
            if let Some(m) = self.members.get(&peer)
                && !out.contains(m)
            {
                out.push(*m);
            }
        };
        add(e.src);
        if let Some(peers) = self.originator(e).and_then(|o| self.by_router_id.get(&o)) {
            peers.iter().copied().for_each(add);
        }
    }

    /// What `member` is sent when the prefix goes from `old` to `new`.
    fn send_for(&self, member: MemberInfo, old: Option<&Entry>, new: Option<&Entry>) -> Send {
        let had = old.is_some_and(|e| !self.excludes(member, e));
        match new {
            Some(e) if !self.excludes(member, e) => Send::Announce(e.attr),
            _ if had => Send::Withdraw,
            _ => Send::Nothing,
        }
    }

    /// The interned export of `path`, through the memo.
    fn export_id(&mut self, rib: &Rib, family: Family, path: &Path) -> Option<AttrId> {
        if let Some(hit) = self.memo.get(&path.attrs, &path.peer, family) {
            return hit;
        }
        let result = rib
            .export_as(&self.template, family, path, &self.key.ctx)
            .map(|a| self.attrs.intern(Arc::new(a)));
        if let Some(id) = result {
            self.attrs.acquire(id);
        }
        if let Some(id) = self.memo.put(path.attrs.clone(), path.peer, family, result) {
            self.release(id);
        }
        result
    }

    fn release(&mut self, id: AttrId) {
        if self.attrs.release(id) {
            self.wire.remove(&id);
        }
    }

    /// Counts `e` in (`up`) or out of the counts behind
    /// [`Group::advertised`]. A source's router ID is remembered while it
    /// has entries: its routes are withdrawn after the RIB forgot it.
    fn count(&mut self, rib: &Rib, e: &Entry, up: bool) {
        let orig = self.originator(e);
        if up
            && !self.src_router_ids.contains_key(&e.src)
            && let Some(p) = rib.peer(e.src)
        {
            self.src_router_ids.insert(e.src, p.router_id);
        }
        let self_originated = orig.is_some() && self.src_router_ids.get(&e.src).copied() == orig;
        bump(&mut self.by_src, e.src, up);
        if let Some(o) = orig {
            bump(&mut self.by_originator, o, up);
        }
        if self_originated {
            bump(&mut self.self_originated, e.src, up);
        }
        if !self.by_src.contains_key(&e.src) {
            self.src_router_ids.remove(&e.src);
        }
    }

    /// Sets the table's entry for `prefix`; returns the old one, whose set
    /// is still held (release it with [`Group::release`]).
    fn set(&mut self, rib: &Rib, prefix: &IpNetwork, new: Option<Entry>) -> Option<Entry> {
        if let Some(e) = &new {
            self.attrs.acquire(e.attr);
            self.count(rib, e, true);
        }
        let old = match new {
            Some(e) => self.table.insert(prefix, e),
            None => self.table.remove(prefix),
        };
        if let Some(e) = &old {
            self.count(rib, e, false);
        }
        old
    }

    /// The entry export gives `change` in this group, before exclusion.
    fn entry_for(&mut self, rib: &Rib, prefix: &IpNetwork, new: Option<&Path>) -> Option<Entry> {
        let path = new.filter(|_| self.key.allows(prefix))?;
        let attr = self.export_id(rib, family_of(prefix), path)?;
        Some(Entry {
            attr,
            src: path.peer,
        })
    }

    /// Whether `e` is excluded for the only member (and then not stored).
    fn lone_excluded(&self, e: &Entry) -> bool {
        match (self.members.len(), self.members.values().next()) {
            (1, Some(only)) => self.excludes(*only, e),
            _ => false,
        }
    }

    /// Recomputes the whole table from `rib` (a new group, or a partial one
    /// gaining a second member). Produces nothing to send: what changes is
    /// only what no current member is sent.
    pub(crate) fn rebuild(&mut self, rib: &Rib) {
        let old: Vec<(IpNetwork, Entry)> = self.table.iter().map(|(n, e)| (n, *e)).collect();
        for (net, _) in &old {
            if let Some(e) = self.set(rib, net, None) {
                self.release(e.attr);
            }
        }
        self.partial = false;
        for (prefix, path) in rib.iter_best() {
            let Some(e) = self.entry_for(rib, &prefix, Some(&path)) else {
                continue;
            };
            if self.lone_excluded(&e) {
                self.partial = true;
                continue;
            }
            self.set(rib, &prefix, Some(e));
        }
    }

    /// Adds a member; `true` if the table had to be rebuilt for it.
    pub(crate) fn join(&mut self, rib: &Rib, member: MemberInfo) -> bool {
        self.members.insert(member.peer, member);
        self.by_router_id
            .entry(member.router_id)
            .or_default()
            .push(member.peer);
        if self.partial || self.members.len() == 1 {
            self.rebuild(rib);
            return true;
        }
        false
    }

    /// Removes a member.
    pub(crate) fn leave(&mut self, peer: PeerId) {
        self.members.remove(&peer);
        self.by_router_id.retain(|_, peers| {
            peers.retain(|p| *p != peer);
            !peers.is_empty()
        });
    }

    /// Applies best-path changes to the table and returns what to send,
    /// encoded once per audience.
    pub(crate) fn apply(&mut self, rib: &Rib, changes: &[BestChange]) -> Vec<Output> {
        // Each prefix's entry before this batch (a batch may change one
        // prefix more than once: a withdrawal and a new announcement).
        let mut before: Vec<(IpNetwork, Option<Entry>)> = Vec::new();
        let mut seen: HashMap<IpNetwork, ()> = HashMap::new();
        let many = changes.len() > 1;
        let lone = match (self.members.len(), self.members.values().next()) {
            (1, Some(m)) => Some(m.peer),
            _ => None,
        };
        for c in changes {
            // The lone member's own routes (a node's one session, a
            // receiver's only peer) are never sent back: skip the export.
            if lone.is_some() && c.new.as_ref().map(|p| p.peer) == lone {
                self.partial = true;
                if self.table.len() == 0 || self.table.get(NetKey::of(&c.prefix)).is_none() {
                    continue;
                }
            }
            let new = self.entry_for(rib, &c.prefix, c.new.as_ref());
            let new = new.filter(|e| {
                let lone = self.lone_excluded(e);
                self.partial |= lone;
                !lone
            });
            let current = self.table.get(NetKey::of(&c.prefix)).copied();
            if current == new {
                continue;
            }
            let old = self.set(rib, &c.prefix, new);
            let net = normal(&c.prefix);
            if many && seen.insert(net, ()).is_some() {
                // Not the first change to this prefix: the first one's old
                // entry is what members hold.
                if let Some(e) = old {
                    self.release(e.attr);
                }
                continue;
            }
            before.push((net, old));
        }

        let mut buckets = Buckets::default();
        let mut involved = Vec::new();
        for (net, old) in before {
            let new = self.table.get(NetKey::of(&net)).copied();
            if new != old {
                let generic = match new {
                    Some(e) => Send::Announce(e.attr),
                    None => Send::Withdraw,
                };
                let mut skip = Vec::new();
                let mut special = Vec::new();
                involved.clear();
                for e in old.iter().chain(new.iter()) {
                    self.excluded(e, &mut involved);
                }
                for &m in &involved {
                    if skip.contains(&m.peer) {
                        continue;
                    }
                    let send = self.send_for(m, old.as_ref(), new.as_ref());
                    if send != generic {
                        skip.push(m.peer);
                        if send != Send::Nothing {
                            special.push((m.peer, send));
                        }
                    }
                }
                skip.sort_unstable();
                buckets.add(generic, Audience::AllBut(skip), net);
                for (peer, send) in special {
                    buckets.add(send, Audience::Only(peer), net);
                }
            }
            if let Some(e) = old {
                self.release(e.attr);
            }
        }
        self.encode(buckets)
    }

    /// The wire form of exported set `id`.
    fn wire(&mut self, id: AttrId, family: Family) -> Arc<OutAttrs> {
        if let Some(w) = self.wire.get(&id) {
            return w.clone();
        }
        let attrs = self.attrs.get(id);
        let out = Arc::new(OutAttrs {
            attributes: attrs
                .to_attributes(family, self.key.encoding.four_octet_as)
                .into_iter()
                .filter(|a| a.code() != attr::NEXT_HOP)
                .collect(),
            next_hop: attrs.next_hop.to_wire(),
        });
        self.wire.insert(id, out.clone());
        out
    }

    fn encode(&mut self, buckets: Buckets) -> Vec<Output> {
        let mut outputs = Vec::with_capacity(buckets.order.len());
        for (send, audience, prefixes) in buckets.order {
            let mut messages = Vec::new();
            for family in [Family::Ipv4Unicast, Family::Ipv6Unicast] {
                let of_family: Vec<Prefix> = prefixes
                    .iter()
                    .filter(|p| family_of(p) == family)
                    .map(|p| Prefix::new(*p))
                    .collect();
                if of_family.is_empty() {
                    continue;
                }
                let attrs = match send {
                    Send::Announce(id) => Some(self.wire(id, family)),
                    _ => None,
                };
                pack::pack(
                    &self.key.encoding,
                    family,
                    attrs.as_deref(),
                    &of_family,
                    &mut messages,
                );
            }
            outputs.push(Output {
                audience,
                messages,
                prefixes: prefixes.into_boxed_slice(),
            });
        }
        outputs
    }

    /// Encodes what `member` must now hold for `prefixes` (its catch-up
    /// after joining, a ROUTE-REFRESH, or falling behind): each prefix
    /// announced as the table has it now, or withdrawn.
    /// Prefixes the member must not hold are withdrawn if
    /// `withdraw_missing` (it may hold them), else skipped.
    pub(crate) fn catch_up(
        &mut self,
        member: MemberInfo,
        prefixes: &[IpNetwork],
        withdraw_missing: bool,
    ) -> Vec<Bytes> {
        if prefixes.is_empty() {
            return Vec::new();
        }
        let mut buckets = Buckets::default();
        for net in prefixes {
            let send = match self.table.get(NetKey::of(net)) {
                Some(e) if !self.excludes(member, e) => Send::Announce(e.attr),
                _ if withdraw_missing => Send::Withdraw,
                _ => Send::Nothing,
            };
            buckets.add(send, Audience::Only(member.peer), *net);
        }
        self.encode(buckets)
            .into_iter()
            .flat_map(|o| o.messages)
            .collect()
    }

    /// Every prefix of the table, those with one attribute set together (so
    /// a catch-up packs them into few messages).
    pub(crate) fn snapshot(&self) -> Vec<IpNetwork> {
        let mut all: Vec<(AttrId, IpNetwork)> =
            self.table.iter().map(|(n, e)| (e.attr, n)).collect();
        all.sort_unstable_by_key(|(a, _)| a.index());
        all.into_iter().map(|(_, n)| n).collect()
    }

    /// The End-of-RIB marker for `family` in this group's encoding.
    pub(crate) fn end_of_rib(&self, family: Family) -> Option<Bytes> {
        pack::end_of_rib(family, &self.key.encoding)
    }

    /// The BoRR or EoRR marker (RFC 7313) for `family`.
    pub(crate) fn refresh_marker(&self, family: Family, subtype: u8) -> Option<Bytes> {
        pack::refresh_marker(family, subtype, &self.key.encoding)
    }
}

/// The prefix with host bits cleared, as tables store it.
fn normal(net: &IpNetwork) -> IpNetwork {
    match NetKey::of(net) {
        NetKey::V4(a, l) => a.network(l),
        NetKey::V6(a, l) => a.network(l),
    }
    .unwrap_or(*net)
}

/// Prefixes grouped by what is sent and to whom, in first-seen order.
#[derive(Default)]
struct Buckets {
    index: HashMap<(Send, Audience), usize>,
    order: Vec<(Send, Audience, Vec<IpNetwork>)>,
}

impl std::hash::Hash for Audience {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        match self {
            Audience::AllBut(skip) => {
                0u8.hash(state);
                skip.hash(state);
            }
            Audience::Only(p) => {
                1u8.hash(state);
                p.hash(state);
            }
        }
    }
}

impl Buckets {
    fn add(&mut self, send: Send, audience: Audience, net: IpNetwork) {
        if send == Send::Nothing {
            return;
        }
        let key = (send, audience);
        match self.index.get(&key) {
            Some(&i) => {
                if let Some(b) = self.order.get_mut(i) {
                    b.2.push(net);
                }
            }
            None => {
                self.index.insert(key.clone(), self.order.len());
                self.order.push((key.0, key.1, vec![net]));
            }
        }
    }
}
