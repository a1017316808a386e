//! The attributes of a route as the decision process and export use them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::wire::iana::AS_TRANS;
use crate::wire::{
    self, Aggregator, AsPath, AttrValue, Family, LargeCommunity, Origin, PathAttribute, Segment,
    SegmentKind, Update,
};

/// The next hop of a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NextHop {
    /// An IPv4 next hop (NEXT_HOP, or a 4-byte MP_REACH next hop).
    V4(Ipv4Addr),
    /// An IPv6 next hop: global and optional link-local (RFC 2545 §3). Also
    /// used for IPv4 routes over IPv6 next hops (RFC 8950).
    V6 {
        /// The global address (some speakers send `::` with a link-local).
        global: Ipv6Addr,
        /// The link-local address, when the peer shares a link with us.
        link_local: Option<Ipv6Addr>,
    },
}

impl NextHop {
    /// Whether the next hop can be used for forwarding (RFC 4271 §9.1.2:
    /// an unresolvable next hop excludes the route). Rejects unspecified,
    /// loopback, multicast, `0/8` and class E IPv4 addresses, and IPv6
    /// loopback and multicast; `::` is accepted only with a link-local
    /// address beside it.
    pub fn is_usable(&self) -> bool {
        match *self {
            NextHop::V4(a) => {
                let first = a.octets()[0];
                first != 0 && !a.is_loopback() && first < 224
            }
            NextHop::V6 { global, link_local } => {
                if global.is_unspecified() {
                    return link_local.is_some_and(|ll| ll.segments()[0] & 0xffc0 == 0xfe80);
                }
                !global.is_loopback() && !global.is_multicast()
            }
        }
    }

    /// Whether `address` is this next hop: the IPv4 address, or either of
    /// the IPv6 ones. RFC 4271 §6.3 (a) refuses a next hop that is the
    /// receiving speaker's own address.
    pub fn is_address(&self, address: IpAddr) -> bool {
        match (*self, address) {
            (NextHop::V4(a), IpAddr::V4(b)) => a == b,
            (NextHop::V6 { global, link_local }, IpAddr::V6(b)) => {
                global == b || link_local == Some(b)
            }
            _ => false,
        }
    }

    /// Whether this is the unspecified address (`0.0.0.0` or `::` without a
    /// link-local): on a local route it means "this speaker".
    pub fn is_unspecified(&self) -> bool {
        match self {
            NextHop::V4(a) => a.is_unspecified(),
            NextHop::V6 { global, link_local } => global.is_unspecified() && link_local.is_none(),
        }
    }

    fn from_wire(nh: &wire::NextHop) -> Option<NextHop> {
        match nh {
            wire::NextHop::Ipv4(a) => Some(NextHop::V4(*a)),
            wire::NextHop::Ipv6 { global, link_local } => Some(NextHop::V6 {
                global: *global,
                link_local: *link_local,
            }),
            wire::NextHop::Other(_) => None,
        }
    }

    /// The next hop in MP_REACH_NLRI form (RFC 4760 §3).
    pub fn to_wire(&self) -> wire::NextHop {
        match *self {
            NextHop::V4(a) => wire::NextHop::Ipv4(a),
            NextHop::V6 { global, link_local } => wire::NextHop::Ipv6 { global, link_local },
        }
    }
}

/// Where an UPDATE announces prefixes; each place has its own next hop
/// (RFC 4760 §3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Announced {
    /// The NLRI field (IPv4): next hop NEXT_HOP (RFC 4271 §4.3).
    NlriField,
    /// MP_REACH_NLRI: the next hop it carries (RFC 4760 §3).
    MpReach,
}

/// The path attributes of a route, decoded into the fields the decision
/// process (RFC 4271 §9.1) and export (§9.1.3, RFC 4456) read.
///
/// Interned by the RIB: every route with equal attributes shares one
/// `Arc<PathAttrs>`, so this type is `Eq + Hash`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PathAttrs {
    /// ORIGIN (RFC 4271 §5.1.1).
    pub origin: Origin,
    /// AS_PATH, merged with AS4_PATH for 2-octet sessions (RFC 6793 §4.2.3).
    pub as_path: AsPath,
    /// NEXT_HOP, or the MP_REACH_NLRI next hop.
    pub next_hop: NextHop,
    /// MULTI_EXIT_DISC (RFC 4271 §5.1.4).
    pub med: Option<u32>,
    /// LOCAL_PREF (RFC 4271 §5.1.5); absent on eBGP routes unless import
    /// policy set it. The decision process reads absent as 100.
    pub local_pref: Option<u32>,
    /// ATOMIC_AGGREGATE (RFC 4271 §5.1.6).
    pub atomic_aggregate: bool,
    /// AGGREGATOR, merged with AS4_AGGREGATOR (RFC 6793 §4.2.3).
    pub aggregator: Option<Aggregator>,
    /// COMMUNITIES (RFC 1997).
    pub communities: Vec<u32>,
    /// LARGE_COMMUNITY (RFC 8092).
    pub large_communities: Vec<LargeCommunity>,
    /// EXTENDED_COMMUNITIES (RFC 4360).
    pub ext_communities: Vec<[u8; 8]>,
    /// ORIGINATOR_ID (RFC 4456 §8).
    pub originator_id: Option<Ipv4Addr>,
    /// CLUSTER_LIST (RFC 4456 §8), nearest cluster first.
    pub cluster_list: Vec<Ipv4Addr>,
    /// Every other attribute, with its flags: IPv6 extended communities,
    /// OTC, and unknown optional transitive attributes. Never MP_REACH /
    /// MP_UNREACH or AS4_*.
    pub other: Vec<PathAttribute>,
}

/// Well-known community NO_EXPORT (RFC 1997).
pub const NO_EXPORT: u32 = 0xffff_ff01;
/// Well-known community NO_ADVERTISE (RFC 1997).
pub const NO_ADVERTISE: u32 = 0xffff_ff02;
/// Well-known community NO_EXPORT_SUBCONFED (RFC 1997).
pub const NO_EXPORT_SUBCONFED: u32 = 0xffff_ff03;

impl PathAttrs {
    /// Attributes with only the mandatory ones set (RFC 4271 §5): ORIGIN,
    /// AS_PATH and the next hop.
    ///
    /// ```
    /// use bgp_core::rib::{NextHop, PathAttrs};
    /// use bgp_core::wire::{AsPath, Origin};
    /// let a = PathAttrs::new(Origin::Igp, AsPath::default(), NextHop::V4("10.0.0.1".parse().unwrap()));
    /// assert_eq!(a.local_pref, None);
    /// ```
    pub fn new(origin: Origin, as_path: AsPath, next_hop: NextHop) -> PathAttrs {
        PathAttrs {
            origin,
            as_path,
            next_hop,
            med: None,
            local_pref: None,
            atomic_aggregate: false,
            aggregator: None,
            communities: Vec::new(),
            large_communities: Vec::new(),
            ext_communities: Vec::new(),
            originator_id: None,
            cluster_list: Vec::new(),
            other: Vec::new(),
        }
    }

    /// The attributes of the `family` routes an UPDATE announces: those of
    /// the NLRI field for IPv4 when it holds prefixes, else those of an
    /// MP_REACH_NLRI of `family` ([`PathAttrs::from_reach`]).
    ///
    /// `None` when ORIGIN, AS_PATH or that next hop is missing: the codec
    /// already makes such an UPDATE treat-as-withdraw (RFC 7606 §3d).
    pub fn from_update(update: &Update, family: Family) -> Option<PathAttrs> {
        let source = if family == Family::Ipv4Unicast && !update.nlri.is_empty() {
            Announced::NlriField
        } else if update.mp_reach()?.family() == Some(family) {
            Announced::MpReach
        } else {
            return None;
        };
        PathAttrs::from_reach(update, source)
    }

    /// The attributes of the routes an UPDATE announces in `source`. Each
    /// part has its own next hop (RFC 4760 §3): the NLRI field's routes
    /// take NEXT_HOP, MP_REACH_NLRI's routes (IPv6, and IPv4 over IPv4 or
    /// IPv6 next hops, RFC 8950) take the next hop MP_REACH_NLRI carries,
    /// and a NEXT_HOP beside it is ignored. One UPDATE may hold both.
    ///
    /// `None` when ORIGIN, AS_PATH or that next hop is missing: the codec
    /// already makes such an UPDATE treat-as-withdraw (RFC 7606 §3d).
    pub fn from_reach(update: &Update, source: Announced) -> Option<PathAttrs> {
        let mut origin = None;
        let mut as_path = None;
        let mut as4_path = None;
        let mut next_hop_attr = None;
        let mut mp_next_hop = None;
        let mut aggregator = None;
        let mut as4_aggregator = None;
        let mut a = PathAttrs::new(
            Origin::Incomplete,
            AsPath::default(),
            NextHop::V4(Ipv4Addr::UNSPECIFIED),
        );
        for attr in &update.attributes {
            match &attr.value {
                AttrValue::Origin(o) => origin = Some(*o),
                AttrValue::AsPath(p) => as_path = Some(p),
                AttrValue::As4Path(p) => as4_path = Some(p),
                AttrValue::NextHop(n) => next_hop_attr = Some(NextHop::V4(*n)),
                AttrValue::MultiExitDisc(m) => a.med = Some(*m),
                AttrValue::LocalPref(l) => a.local_pref = Some(*l),
                AttrValue::AtomicAggregate => a.atomic_aggregate = true,
                AttrValue::Aggregator(g) => aggregator = Some(*g),
                AttrValue::As4Aggregator(g) => as4_aggregator = Some(*g),
                AttrValue::Communities(c) => a.communities.clone_from(c),
                AttrValue::OriginatorId(o) => a.originator_id = Some(*o),
                AttrValue::ClusterList(c) => a.cluster_list.clone_from(c),
                AttrValue::ExtendedCommunities(c) => a.ext_communities.clone_from(c),
                AttrValue::LargeCommunities(c) => a.large_communities.clone_from(c),
                AttrValue::MpReach(m) => mp_next_hop = NextHop::from_wire(&m.next_hop),
                AttrValue::MpUnreach(_) => {}
                AttrValue::Ipv6ExtendedCommunities(_)
                | AttrValue::Otc(_)
                | AttrValue::Opaque { .. } => a.other.push(attr.clone()),
            }
        }
        a.origin = origin?;
        a.next_hop = match source {
            Announced::NlriField => next_hop_attr?,
            Announced::MpReach => mp_next_hop?,
        };
        // RFC 6793 §4.2.3: AS4_PATH and AS4_AGGREGATOR are ignored when
        // AGGREGATOR carries a real (non-AS_TRANS) AS.
        let use_as4 = aggregator.is_none_or(|g| g.asn == u32::from(AS_TRANS));
        a.aggregator = match (aggregator, as4_aggregator) {
            (Some(_), Some(g4)) if use_as4 => Some(g4),
            (g, _) => g,
        };
        let as_path = as_path?;
        a.as_path = match as4_path {
            Some(p4) if use_as4 => merge_as4_path(as_path, p4),
            _ => as_path.clone(),
        };
        Some(a)
    }

    /// The path attributes to encode for a `family` route, in ascending
    /// type code order (RFC 4271 §5 recommends it). NEXT_HOP is included
    /// only for IPv4 routes with an IPv4 next hop; MP_REACH_NLRI is the
    /// UPDATE builder's job. For a 2-octet peer (`four_octet_as` false)
    /// AS4_PATH and AS4_AGGREGATOR carry the AS numbers above 65535
    /// (RFC 6793 §4.2.2); the codec writes AS_TRANS in their place.
    pub fn to_attributes(&self, family: Family, four_octet_as: bool) -> Vec<PathAttribute> {
        let mut out = Vec::with_capacity(8 + self.other.len());
        let mut push = |v: AttrValue| out.push(PathAttribute::new(v));
        push(AttrValue::Origin(self.origin));
        push(AttrValue::AsPath(self.as_path.clone()));
        if let (Family::Ipv4Unicast, NextHop::V4(a)) = (family, self.next_hop) {
            push(AttrValue::NextHop(a));
        }
        if let Some(m) = self.med {
            push(AttrValue::MultiExitDisc(m));
        }
        if let Some(l) = self.local_pref {
            push(AttrValue::LocalPref(l));
        }
        if self.atomic_aggregate {
            push(AttrValue::AtomicAggregate);
        }
        if let Some(g) = self.aggregator {
            push(AttrValue::Aggregator(g));
        }
        if !self.communities.is_empty() {
            push(AttrValue::Communities(self.communities.clone()));
        }
        if let Some(o) = self.originator_id {
            push(AttrValue::OriginatorId(o));
        }
        if !self.cluster_list.is_empty() {
            push(AttrValue::ClusterList(self.cluster_list.clone()));
        }
        if !self.ext_communities.is_empty() {
            push(AttrValue::ExtendedCommunities(self.ext_communities.clone()));
        }
        if !four_octet_as {
            if self
                .as_path
                .segments
                .iter()
                .any(|s| s.asns.iter().any(|&a| a > 0xffff))
            {
                push(AttrValue::As4Path(self.as_path.clone()));
            }
            if let Some(g) = self.aggregator.filter(|g| g.asn > 0xffff) {
                push(AttrValue::As4Aggregator(g));
            }
        }
        if !self.large_communities.is_empty() {
            push(AttrValue::LargeCommunities(self.large_communities.clone()));
        }
        out.extend(self.other.iter().cloned());
        // Stable: equal codes (which a valid set never has) keep their order.
        out.sort_by_key(PathAttribute::code);
        out
    }

    /// The LOCAL_PREF the decision process uses: 100 when absent (the
    /// common default; RFC 4271 §9.1.1 leaves it to configuration).
    pub fn effective_local_pref(&self) -> u32 {
        self.local_pref.unwrap_or(DEFAULT_LOCAL_PREF)
    }

    /// Whether COMMUNITIES holds `community`.
    pub fn has_community(&self, community: u32) -> bool {
        self.communities.contains(&community)
    }

    /// Whether `attr` is one the codec kept as bytes without knowing its
    /// type (recognised ones such as TUNNEL_ENCAPSULATION are not).
    pub(crate) fn is_opaque(attr: &PathAttribute) -> bool {
        !attr.is_recognized()
    }
}

/// LOCAL_PREF assumed when absent.
pub const DEFAULT_LOCAL_PREF: u32 = 100;

/// Rebuilds the path of a 2-octet session (RFC 6793 §4.2.3): when AS_PATH
/// is at least as long as AS4_PATH, keep AS_PATH's leading ASes that
/// AS4_PATH does not cover, then append AS4_PATH; otherwise ignore
/// AS4_PATH. An AS_SET counts as one AS and confederation segments count
/// zero, as in path selection.
fn merge_as4_path(as_path: &AsPath, as4: &AsPath) -> AsPath {
    let n = as_path.len_for_selection();
    let n4 = as4.len_for_selection();
    if n < n4 {
        return as_path.clone();
    }
    let mut keep = n - n4;
    let mut segments = Vec::with_capacity(as_path.segments.len() + as4.segments.len());
    for s in &as_path.segments {
        if keep == 0 {
            break;
        }
        match s.kind {
            SegmentKind::Sequence => {
                let take = keep.min(s.asns.len());
                segments.push(Segment {
                    kind: s.kind,
                    asns: s.asns[..take].to_vec(),
                });
                keep -= take;
            }
            SegmentKind::Set => {
                segments.push(s.clone());
                keep -= 1;
            }
            SegmentKind::ConfedSequence | SegmentKind::ConfedSet => segments.push(s.clone()),
        }
    }
    segments.extend(as4.segments.iter().cloned());
    AsPath { segments }
}
