//! Property tests for the wire codec.
//!
//! - Every message that is valid under a session context decodes back to
//!   itself, with no RFC 7606 faults, after being encoded under that context.
//! - Whatever bytes decode (random bytes, and valid messages with a few bytes
//!   flipped, inserted, removed or cut off) re-encode, re-decode to the same
//!   message, and re-encode to the same bytes; decoding never panics.
//! - The framer returns the same messages however the stream is cut.

use std::net::{Ipv4Addr, Ipv6Addr};

use bgp_core::fuzzing::context_from;
use bgp_core::wire::iana::{AS_TRANS, attr as code, attr_flags as flag, capability as cap_code};
use bgp_core::wire::{
    AddPath, AddPathFamily, Aggregator, AsPath, AttrValue, Capability, DecodeContext,
    ExtendedNextHopFamily, Family, Framer, GracefulRestartFamily, LargeCommunity, LlgrFamily,
    Message, MpNlri, MpReach, MpUnreach, NextHop, Notification, Open, OptParam, Origin,
    PathAttribute, PeerKind, Prefix, RouteRefresh, Segment, SegmentKind, Update,
};
use ipnetwork::{IpNetwork, Ipv4Network, Ipv6Network};
use proptest::collection::{btree_map, vec};
use proptest::option;
use proptest::prelude::*;
use proptest::sample::{Index, select};

/// Attribute codes the decoder gives a type or a structure check to; every
/// other code is carried as an opaque optional attribute.
const KNOWN_ATTRS: [u8; 22] = [
    code::ORIGIN,
    code::AS_PATH,
    code::NEXT_HOP,
    code::MULTI_EXIT_DISC,
    code::LOCAL_PREF,
    code::ATOMIC_AGGREGATE,
    code::AGGREGATOR,
    code::COMMUNITIES,
    code::ORIGINATOR_ID,
    code::CLUSTER_LIST,
    code::MP_REACH_NLRI,
    code::MP_UNREACH_NLRI,
    code::EXTENDED_COMMUNITIES,
    code::AS4_PATH,
    code::AS4_AGGREGATOR,
    code::TUNNEL_ENCAPSULATION,
    code::IPV6_EXTENDED_COMMUNITIES,
    code::AIGP,
    code::BGP_LS,
    code::LARGE_COMMUNITY,
    code::OTC,
    code::PREFIX_SID,
];

/// Capability codes decoded into typed [`Capability`] variants.
const KNOWN_CAPS: [u8; 9] = [
    cap_code::MULTIPROTOCOL,
    cap_code::ROUTE_REFRESH,
    cap_code::EXTENDED_NEXT_HOP,
    cap_code::EXTENDED_MESSAGE,
    cap_code::GRACEFUL_RESTART,
    cap_code::FOUR_OCTET_AS,
    cap_code::ADD_PATH,
    cap_code::ENHANCED_ROUTE_REFRESH,
    cap_code::LONG_LIVED_GRACEFUL_RESTART,
];

fn unknown_attr_code() -> impl Strategy<Value = u8> {
    select(
        (0..=u8::MAX)
            .filter(|c| !KNOWN_ATTRS.contains(c))
            .collect::<Vec<_>>(),
    )
}

fn unknown_cap_code() -> impl Strategy<Value = u8> {
    select(
        (0..=u8::MAX)
            .filter(|c| !KNOWN_CAPS.contains(c))
            .collect::<Vec<_>>(),
    )
}

// ---------------------------------------------------------------------------
// Contexts
// ---------------------------------------------------------------------------

/// A session context with every combination of the negotiated wire options:
/// mostly iBGP (so LOCAL_PREF is allowed), sometimes eBGP with or without
/// the first-AS check, sometimes with local identifiers set.
fn session_context() -> impl Strategy<Value = DecodeContext> {
    let peer = prop_oneof![
        3 => Just(PeerKind::Internal),
        1 => (1..=u32::MAX, any::<bool>()).prop_map(|(peer_as, enforce_first_as)| {
            PeerKind::External {
                peer_as,
                enforce_first_as,
            }
        }),
    ];
    (
        (any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>()),
        peer,
        any::<bool>(),
    )
        .prop_map(
            |((four_octet_as, extended_message, ipv4_unicast, ipv6_unicast), peer, local)| {
                // Random values hit these with negligible probability.
                let ours = local.then_some(Ipv4Addr::new(198, 51, 100, 254));
                DecodeContext {
                    four_octet_as,
                    extended_message,
                    add_path: AddPath {
                        ipv4_unicast,
                        ipv6_unicast,
                    },
                    peer,
                    local_router_id: ours,
                    cluster_id: ours,
                    local_address: ours,
                }
            },
        )
}

/// Any context at all, eBGP and local identifiers included.
fn any_context() -> impl Strategy<Value = DecodeContext> {
    (any::<u8>(), any::<u8>()).prop_map(|(bits, extra)| context_from(bits, extra))
}

// ---------------------------------------------------------------------------
// Prefixes and addresses
// ---------------------------------------------------------------------------

fn ipv4() -> impl Strategy<Value = Ipv4Addr> {
    any::<u32>().prop_map(Ipv4Addr::from)
}

fn ipv6() -> impl Strategy<Value = Ipv6Addr> {
    any::<u128>().prop_map(Ipv6Addr::from)
}

/// A canonical IPv4 prefix (host bits zero), with a path identifier iff the
/// session carries them.
fn ipv4_prefix(add_path: bool) -> impl Strategy<Value = Prefix> {
    (any::<u32>(), 0u8..=32, any::<u32>()).prop_map(move |(addr, len, id)| {
        let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
        let net = Ipv4Network::new(Ipv4Addr::from(addr & mask), len).expect("length <= 32");
        Prefix {
            path_id: add_path.then_some(id),
            network: IpNetwork::V4(net),
        }
    })
}

/// A canonical IPv6 prefix, with a path identifier iff the session carries
/// them.
fn ipv6_prefix(add_path: bool) -> impl Strategy<Value = Prefix> {
    (any::<u128>(), 0u8..=128, any::<u32>()).prop_map(move |(addr, len, id)| {
        let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
        let net = Ipv6Network::new(Ipv6Addr::from(addr & mask), len).expect("length <= 128");
        Prefix {
            path_id: add_path.then_some(id),
            network: IpNetwork::V6(net),
        }
    })
}

/// A NEXT_HOP the decoder accepts: not 0/8, 127/8, multicast or class E.
fn next_hop() -> impl Strategy<Value = Ipv4Addr> {
    (1u8..224, any::<[u8; 3]>())
        .prop_filter("loopback", |(a, _)| *a != 127)
        .prop_map(|(a, [b, c, d])| Ipv4Addr::new(a, b, c, d))
}

/// An AFI/SAFI pair the codec keeps as bytes.
fn other_family() -> impl Strategy<Value = (u16, u8)> {
    (any::<u16>(), any::<u8>()).prop_filter("known family", |(afi, safi)| {
        Family::from_afi_safi(*afi, *safi).is_none()
    })
}

// ---------------------------------------------------------------------------
// Path attributes
// ---------------------------------------------------------------------------

/// A non-zero AS number that fits the session's AS width.
fn asn(four_octet: bool) -> BoxedStrategy<u32> {
    if four_octet {
        (1..=u32::MAX).boxed()
    } else {
        (1..=u32::from(u16::MAX)).boxed()
    }
}

fn segment(four_octet: bool, max_len: usize) -> impl Strategy<Value = Segment> {
    let kind = prop_oneof![
        Just(SegmentKind::Set),
        Just(SegmentKind::Sequence),
        Just(SegmentKind::ConfedSequence),
        Just(SegmentKind::ConfedSet),
    ];
    (kind, vec(asn(four_octet), 1..=max_len)).prop_map(|(kind, asns)| Segment { kind, asns })
}

/// An AS path whose segments hold 1..=255 AS numbers; only the first may be
/// long, which keeps the UPDATE under 4096 bytes.
fn as_path(four_octet: bool) -> impl Strategy<Value = AsPath> {
    let first = prop_oneof![
        4 => segment(four_octet, 10),
        1 => segment(four_octet, 255),
    ];
    (option::of(first), vec(segment(four_octet, 10), 0..=2)).prop_map(|(first, rest)| AsPath {
        segments: first.into_iter().chain(rest).collect(),
    })
}

fn aggregator(four_octet: bool) -> impl Strategy<Value = Aggregator> {
    (asn(four_octet), ipv4()).prop_map(|(asn, address)| Aggregator { asn, address })
}

fn origin() -> impl Strategy<Value = Origin> {
    prop_oneof![
        Just(Origin::Igp),
        Just(Origin::Egp),
        Just(Origin::Incomplete)
    ]
}

fn ipv6_next_hop() -> impl Strategy<Value = NextHop> {
    (ipv6(), option::of(ipv6()))
        .prop_map(|(global, link_local)| NextHop::Ipv6 { global, link_local })
}

fn mp_reach(add_path: AddPath) -> impl Strategy<Value = MpReach> {
    prop_oneof![
        3 => (ipv6_next_hop(), vec(ipv6_prefix(add_path.ipv6_unicast), 0..=20)).prop_map(
            |(next_hop, p)| MpReach {
                afi: Family::Ipv6Unicast.afi(),
                safi: Family::Ipv6Unicast.safi(),
                next_hop,
                nlri: MpNlri::Unicast(p),
            }
        ),
        1 => (
            prop_oneof![ipv4().prop_map(NextHop::Ipv4), ipv6_next_hop()],
            vec(ipv4_prefix(add_path.ipv4_unicast), 0..=20),
        )
            .prop_map(|(next_hop, p)| MpReach {
                afi: Family::Ipv4Unicast.afi(),
                safi: Family::Ipv4Unicast.safi(),
                next_hop,
                nlri: MpNlri::Unicast(p),
            }),
        1 => (other_family(), vec(any::<u8>(), 0..=32), vec(any::<u8>(), 0..=64)).prop_map(
            |((afi, safi), nh, nlri)| MpReach {
                afi,
                safi,
                next_hop: NextHop::Other(nh),
                nlri: MpNlri::Other(nlri),
            }
        ),
    ]
}

fn mp_unreach(add_path: AddPath) -> impl Strategy<Value = MpUnreach> {
    prop_oneof![
        3 => vec(ipv6_prefix(add_path.ipv6_unicast), 0..=20).prop_map(|p| MpUnreach {
            afi: Family::Ipv6Unicast.afi(),
            safi: Family::Ipv6Unicast.safi(),
            withdrawn: MpNlri::Unicast(p),
        }),
        1 => vec(ipv4_prefix(add_path.ipv4_unicast), 0..=20).prop_map(|p| MpUnreach {
            afi: Family::Ipv4Unicast.afi(),
            safi: Family::Ipv4Unicast.safi(),
            withdrawn: MpNlri::Unicast(p),
        }),
        1 => (other_family(), vec(any::<u8>(), 0..=64)).prop_map(|((afi, safi), b)| MpUnreach {
            afi,
            safi,
            withdrawn: MpNlri::Other(b),
        }),
    ]
}

/// Type(`type_len`) / length(2) / value TLVs.
fn tlvs(type_len: usize) -> impl Strategy<Value = Vec<u8>> {
    vec((any::<u16>(), vec(any::<u8>(), 0..8)), 0..4).prop_map(move |items| {
        let mut out = Vec::new();
        for (t, v) in items {
            out.extend_from_slice(&t.to_be_bytes()[2 - type_len..]);
            out.extend_from_slice(&u16::try_from(v.len()).expect("short").to_be_bytes());
            out.extend_from_slice(&v);
        }
        out
    })
}

/// A well-formed AIGP value (RFC 7311 §3): the AIGP TLV is exactly 11 bytes.
fn aigp() -> impl Strategy<Value = Vec<u8>> {
    let tlv = prop_oneof![
        any::<[u8; 8]>().prop_map(|v| (1u8, v.to_vec())),
        (
            any::<u8>().prop_filter("AIGP TLV", |t| *t != 1),
            vec(any::<u8>(), 0..8)
        ),
    ];
    vec(tlv, 0..3).prop_map(|items| {
        let mut out = Vec::new();
        for (t, v) in items {
            out.push(t);
            out.extend_from_slice(&u16::try_from(v.len() + 3).expect("short").to_be_bytes());
            out.extend_from_slice(&v);
        }
        out
    })
}

/// A well-formed Tunnel Encapsulation value (RFC 9012 §2): at least one TLV,
/// each a list of sub-TLVs with 1- or 2-byte lengths by sub-type.
fn tunnel_encapsulation() -> impl Strategy<Value = Vec<u8>> {
    let sub = (any::<u8>(), vec(any::<u8>(), 0..6));
    vec((any::<u16>(), vec(sub, 0..3)), 1..3).prop_map(|tunnels| {
        let mut out = Vec::new();
        for (t, subs) in tunnels {
            let mut body = Vec::new();
            for (st, v) in subs {
                body.push(st);
                if st < 128 {
                    body.push(u8::try_from(v.len()).expect("short"));
                } else {
                    body.extend_from_slice(&u16::try_from(v.len()).expect("short").to_be_bytes());
                }
                body.extend_from_slice(&v);
            }
            out.extend_from_slice(&t.to_be_bytes());
            out.extend_from_slice(&u16::try_from(body.len()).expect("short").to_be_bytes());
            out.extend_from_slice(&body);
        }
        out
    })
}

fn opaque(code: u8, value: impl Strategy<Value = Vec<u8>>) -> impl Strategy<Value = AttrValue> {
    value.prop_map(move |value| AttrValue::Opaque { code, value })
}

/// The attributes other than the four the mandatory check asks for, each
/// present or not, valid under the context.
fn optional_attributes(ctx: DecodeContext) -> Vec<BoxedStrategy<Option<AttrValue>>> {
    let four = ctx.four_octet_as;
    let mut s = vec![
        option::of(any::<u32>().prop_map(AttrValue::MultiExitDisc)).boxed(),
        option::of(Just(AttrValue::AtomicAggregate)).boxed(),
        option::of(aggregator(four).prop_map(AttrValue::Aggregator)).boxed(),
        option::of(vec(any::<u32>(), 1..=32).prop_map(AttrValue::Communities)).boxed(),
        option::of(ipv4().prop_map(AttrValue::OriginatorId)).boxed(),
        option::of(vec(ipv4(), 1..=16).prop_map(AttrValue::ClusterList)).boxed(),
        option::of(mp_reach(ctx.add_path).prop_map(AttrValue::MpReach)).boxed(),
        option::of(mp_unreach(ctx.add_path).prop_map(AttrValue::MpUnreach)).boxed(),
        option::of(vec(any::<[u8; 8]>(), 0..=16).prop_map(AttrValue::ExtendedCommunities)).boxed(),
        option::of(opaque(code::TUNNEL_ENCAPSULATION, tunnel_encapsulation())).boxed(),
        option::of(vec(any::<[u8; 20]>(), 0..=8).prop_map(AttrValue::Ipv6ExtendedCommunities))
            .boxed(),
        option::of(opaque(code::AIGP, aigp())).boxed(),
        option::of(opaque(code::BGP_LS, tlvs(2))).boxed(),
        option::of(vec(any::<(u32, u32, u32)>(), 1..=16).prop_map(|l| {
            AttrValue::LargeCommunities(
                l.into_iter()
                    .map(|(global, local1, local2)| LargeCommunity {
                        global,
                        local1,
                        local2,
                    })
                    .collect(),
            )
        }))
        .boxed(),
        option::of(any::<u32>().prop_map(AttrValue::Otc)).boxed(),
        option::of(opaque(code::PREFIX_SID, tlvs(1))).boxed(),
    ];
    // AS4_PATH / AS4_AGGREGATOR from a 4-octet peer are discarded (RFC 6793).
    if !four {
        s.push(
            option::of(
                vec(segment(true, 10), 0..=3)
                    .prop_map(|segments| AttrValue::As4Path(AsPath { segments })),
            )
            .boxed(),
        );
        s.push(option::of(aggregator(true).prop_map(AttrValue::As4Aggregator)).boxed());
    }
    s
}

/// The length of `attr`'s value as `ctx` encodes it.
fn encoded_value_len(attr: &PathAttribute, ctx: &DecodeContext) -> usize {
    let update = Update {
        attributes: vec![attr.clone()],
        ..Update::default()
    };
    let roomy = DecodeContext {
        extended_message: true,
        ..*ctx
    };
    let bytes = Message::Update(update)
        .to_bytes(&roomy)
        .expect("one attribute encodes");
    // Header (19), withdrawn length (2), attributes length (2), then the
    // attribute: flags, code, and a 1- or 2-byte length.
    let header = if bytes[23] & flag::EXTENDED_LENGTH != 0 {
        4
    } else {
        3
    };
    bytes.len() - 23 - header
}

/// Flags for `value`: the canonical ones, plus Partial on optional
/// transitive attributes and Extended Length when asked, plus Extended
/// Length when the value needs it (the encoder forces it on then).
fn with_flags(
    value: AttrValue,
    partial: bool,
    extended: bool,
    ctx: &DecodeContext,
) -> PathAttribute {
    let mut attr = PathAttribute::new(value);
    let opt_transitive = flag::OPTIONAL | flag::TRANSITIVE;
    if partial && attr.flags & opt_transitive == opt_transitive {
        attr.flags |= flag::PARTIAL;
    }
    if extended || encoded_value_len(&attr, ctx) > usize::from(u8::MAX) {
        attr.flags |= flag::EXTENDED_LENGTH;
    }
    attr
}

/// `path` starting with the peer's AS when the session checks it
/// (RFC 4271 §6.3); a 2-octet session sees a 4-octet peer as AS_TRANS.
fn with_first_as(mut path: AsPath, ctx: &DecodeContext) -> AsPath {
    let PeerKind::External {
        peer_as,
        enforce_first_as: true,
    } = ctx.peer
    else {
        return path;
    };
    let first = if ctx.four_octet_as {
        peer_as
    } else {
        u16::try_from(peer_as).map_or(u32::from(AS_TRANS), u32::from)
    };
    match path.segments.first_mut() {
        Some(s) if s.kind == SegmentKind::Sequence && s.asns.len() < 255 => s.asns.insert(0, first),
        _ => path.segments.insert(
            0,
            Segment {
                kind: SegmentKind::Sequence,
                asns: vec![first],
            },
        ),
    }
    path
}

/// A deterministic permutation key, so a shrunk seed of `None` means the
/// ascending order RFC 4271 recommends.
fn order_key(seed: u64, attr_code: u8) -> u64 {
    (seed ^ u64::from(attr_code)).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 7
}

/// An UPDATE valid under `ctx`: decodes to itself with no faults.
fn update(ctx: DecodeContext) -> impl Strategy<Value = Update> {
    let four = ctx.four_octet_as;
    let ap4 = ctx.add_path.ipv4_unicast;
    let mandatory = (
        option::weighted(0.8, origin()),
        option::weighted(0.8, as_path(four)),
        option::weighted(0.8, next_hop()),
        option::weighted(0.8, any::<u32>()),
    );
    (
        mandatory,
        optional_attributes(ctx),
        btree_map(unknown_attr_code(), vec(any::<u8>(), 0..=48), 0..=3),
        vec((any::<bool>(), any::<bool>()), 32),
        option::of(any::<u64>()),
        vec(ipv4_prefix(ap4), 0..=20),
        vec(ipv4_prefix(ap4), 0..=20),
    )
        .prop_map(
            move |(
                (origin, path, nh, local_pref),
                optional,
                unknown,
                flag_choices,
                order,
                withdrawn,
                nlri,
            )| {
                let mut values: Vec<AttrValue> = optional.into_iter().flatten().collect();
                let mp_announces = values.iter().any(|v| match v {
                    AttrValue::MpReach(m) => match &m.nlri {
                        MpNlri::Unicast(p) => !p.is_empty(),
                        MpNlri::Other(b) => !b.is_empty(),
                    },
                    _ => false,
                });
                let announces = mp_announces || !nlri.is_empty();
                // RFC 7606 §3d: what an announcement must carry on iBGP.
                let origin = origin.or(announces.then_some(Origin::Igp));
                let path = path
                    .or(announces.then(AsPath::default))
                    .map(|p| with_first_as(p, &ctx));
                let nh = nh.or((!nlri.is_empty()).then(|| Ipv4Addr::new(192, 0, 2, 1)));
                // LOCAL_PREF from an external peer is discarded (RFC 7606 §7.5).
                let local_pref = local_pref
                    .or(announces.then_some(100))
                    .filter(|_| ctx.is_ibgp());
                values.extend(origin.map(AttrValue::Origin));
                values.extend(path.map(AttrValue::AsPath));
                values.extend(nh.map(AttrValue::NextHop));
                values.extend(local_pref.map(AttrValue::LocalPref));
                values.extend(
                    unknown
                        .into_iter()
                        .map(|(code, value)| AttrValue::Opaque { code, value }),
                );
                values.sort_by_key(|v| v.code());
                if let Some(seed) = order {
                    values.sort_by_key(|v| order_key(seed, v.code()));
                }
                let attributes = values
                    .into_iter()
                    .zip(flag_choices)
                    .map(|(v, (partial, extended))| with_flags(v, partial, extended, &ctx))
                    .collect();
                Update {
                    withdrawn,
                    attributes,
                    nlri,
                }
            },
        )
}

// ---------------------------------------------------------------------------
// OPEN, NOTIFICATION, ROUTE-REFRESH
// ---------------------------------------------------------------------------

fn capability() -> impl Strategy<Value = Capability> {
    let families = || vec((any::<u16>(), any::<u8>(), any::<u8>()), 0..8);
    prop_oneof![
        (any::<u16>(), any::<u8>()).prop_map(|(afi, safi)| Capability::Multiprotocol { afi, safi }),
        Just(Capability::RouteRefresh),
        vec(any::<(u16, u16, u16)>(), 0..8).prop_map(|f| {
            Capability::ExtendedNextHop(
                f.into_iter()
                    .map(|(afi, safi, next_hop_afi)| ExtendedNextHopFamily {
                        afi,
                        safi,
                        next_hop_afi,
                    })
                    .collect(),
            )
        }),
        Just(Capability::ExtendedMessage),
        (0u8..16, 0u16..0x1000, families()).prop_map(|(flags, restart_time, f)| {
            Capability::GracefulRestart {
                flags,
                restart_time,
                families: f
                    .into_iter()
                    .map(|(afi, safi, flags)| GracefulRestartFamily { afi, safi, flags })
                    .collect(),
            }
        }),
        any::<u32>().prop_map(Capability::FourOctetAs),
        families().prop_map(|f| {
            Capability::AddPath(
                f.into_iter()
                    .map(|(afi, safi, send_receive)| AddPathFamily {
                        afi,
                        safi,
                        send_receive,
                    })
                    .collect(),
            )
        }),
        Just(Capability::EnhancedRouteRefresh),
        vec(
            (any::<u16>(), any::<u8>(), any::<u8>(), 0u32..=0x00ff_ffff),
            0..8
        )
        .prop_map(|f| {
            Capability::LongLivedGracefulRestart(
                f.into_iter()
                    .map(|(afi, safi, flags, stale_time)| LlgrFamily {
                        afi,
                        safi,
                        flags,
                        stale_time,
                    })
                    .collect(),
            )
        }),
        (unknown_cap_code(), vec(any::<u8>(), 0..32))
            .prop_map(|(code, value)| Capability::Unknown { code, value }),
    ]
}

/// Whether the OPEN's parameters need the RFC 9072 encoding: the encoder
/// then writes 255, 255 where the classic length and first type would be.
fn needs_extended_params(open: &Open) -> bool {
    let classic = Open {
        extended_params: false,
        ..open.clone()
    };
    let bytes = Message::Open(classic)
        .to_bytes(&DecodeContext::default())
        .expect("OPEN encodes");
    bytes.get(28..30) == Some(&[255, 255][..])
}

fn open() -> impl Strategy<Value = Open> {
    (
        any::<u16>(),
        prop_oneof![Just(0u16), 3u16..=u16::MAX],
        (1..=u32::MAX).prop_map(Ipv4Addr::from),
        vec(
            vec(capability(), 0..6).prop_map(OptParam::Capabilities),
            1..=3,
        ),
        any::<bool>(),
    )
        .prop_map(|(my_as, hold_time, bgp_id, params, extended_params)| {
            let mut open = Open {
                my_as,
                hold_time,
                bgp_id,
                params,
                extended_params,
            };
            open.extended_params |= needs_extended_params(&open);
            open
        })
}

fn notification() -> impl Strategy<Value = Notification> {
    (any::<u8>(), any::<u8>(), vec(any::<u8>(), 0..=100))
        .prop_map(|(code, subcode, data)| Notification::new(code, subcode, data))
}

/// BoRR (1) and EoRR (2) bodies are exactly 4 bytes (RFC 7313 §5).
fn route_refresh() -> impl Strategy<Value = RouteRefresh> {
    (
        any::<u16>(),
        any::<u8>(),
        any::<u8>(),
        vec(any::<u8>(), 0..32),
    )
        .prop_map(|(afi, subtype, safi, mut trailing)| {
            if matches!(subtype, 1 | 2) {
                trailing.clear();
            }
            RouteRefresh {
                afi,
                subtype,
                safi,
                trailing,
            }
        })
}

/// A message valid under `ctx`.
fn message(ctx: DecodeContext) -> impl Strategy<Value = Message> {
    prop_oneof![
        1 => Just(Message::Keepalive),
        2 => notification().prop_map(Message::Notification),
        2 => route_refresh().prop_map(Message::RouteRefresh),
        4 => open().prop_map(Message::Open),
        10 => update(ctx).prop_map(Message::Update),
    ]
}

fn context_and_message() -> impl Strategy<Value = (DecodeContext, Message)> {
    session_context().prop_flat_map(|ctx| (Just(ctx), message(ctx)))
}

// ---------------------------------------------------------------------------
// Malformed input
// ---------------------------------------------------------------------------

/// One small corruption of a byte string.
#[derive(Clone, Debug)]
enum Mutation {
    Xor(Index, u8),
    Set(Index, u8),
    Insert(Index, u8),
    Remove(Index),
    Truncate(Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => (any::<Index>(), 1..=u8::MAX).prop_map(|(i, x)| Mutation::Xor(i, x)),
        2 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
        2 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        2 => any::<Index>().prop_map(Mutation::Remove),
        1 => any::<Index>().prop_map(Mutation::Truncate),
    ]
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    let len = bytes.len();
    match m {
        Mutation::Insert(i, b) => bytes.insert(i.index(len + 1), *b),
        _ if len == 0 => {}
        Mutation::Xor(i, x) => bytes[i.index(len)] ^= x,
        Mutation::Set(i, b) => bytes[i.index(len)] = *b,
        Mutation::Remove(i) => {
            bytes.remove(i.index(len));
        }
        Mutation::Truncate(i) => bytes.truncate(i.index(len)),
    }
}

/// Makes the header's length field match the bytes, so the corruption is
/// seen by the body decoders rather than the length check.
fn fix_length(bytes: &mut [u8]) {
    let len = u16::try_from(bytes.len());
    if let (Some(field), Ok(len)) = (bytes.get_mut(16..18), len) {
        field.copy_from_slice(&len.to_be_bytes());
    }
}

/// A valid message under one context, corrupted a little, to decode under
/// that context or any other.
fn corrupted_message() -> impl Strategy<Value = (DecodeContext, Vec<u8>)> {
    (
        context_and_message(),
        vec(mutation(), 1..=4),
        any::<bool>(),
        option::weighted(0.25, any_context()),
    )
        .prop_map(|((ctx, msg), mutations, fix, decode_ctx)| {
            let mut bytes = msg.to_bytes(&ctx).unwrap_or_default();
            for m in &mutations {
                apply(&mut bytes, m);
            }
            if fix {
                fix_length(&mut bytes);
            }
            (decode_ctx.unwrap_or(ctx), bytes)
        })
}

/// A correct header of a known type over a random body.
fn random_body() -> impl Strategy<Value = (DecodeContext, Vec<u8>)> {
    (any_context(), 1u8..=5, vec(any::<u8>(), 0..120)).prop_map(|(ctx, msg_type, body)| {
        let mut bytes = vec![0xff; 16];
        bytes.extend_from_slice(&[0, 0, msg_type]);
        bytes.extend_from_slice(&body);
        fix_length(&mut bytes);
        (ctx, bytes)
    })
}

fn decoder_input() -> impl Strategy<Value = (DecodeContext, Vec<u8>)> {
    prop_oneof![
        1 => (any_context(), vec(any::<u8>(), 0..64)),
        2 => random_body(),
        7 => corrupted_message(),
    ]
}

// ---------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// A valid message encodes within the limits and decodes back to itself
    /// with no faults.
    #[test]
    fn decode_of_encode_is_identity((ctx, msg) in context_and_message()) {
        let bytes = msg.to_bytes(&ctx);
        prop_assert!(bytes.is_ok(), "encode failed: {:?}", bytes);
        let bytes = bytes.unwrap();
        let decoded = Message::decode(&bytes, &ctx);
        prop_assert!(decoded.is_ok(), "decode failed: {:?}", decoded);
        let decoded = decoded.unwrap();
        prop_assert_eq!(&decoded.faults, &Vec::new());
        prop_assert_eq!(decoded.message, msg);
    }

    /// Whatever decodes re-encodes, decodes again to the same message, and
    /// encodes again to the same bytes.
    #[test]
    fn encode_of_decode_is_stable((ctx, bytes) in decoder_input()) {
        let Ok(first) = Message::decode(&bytes, &ctx) else {
            return Ok(());
        };
        let e1 = first.message.to_bytes(&ctx);
        prop_assert!(e1.is_ok(), "decoded {:?} does not re-encode: {:?}", first.message, e1);
        let e1 = e1.unwrap();
        let second = Message::decode(&e1, &ctx);
        prop_assert!(second.is_ok(), "re-encoding {:?} does not decode: {:?}", e1, second);
        let second = second.unwrap();
        prop_assert_eq!(&second.message, &first.message);
        if first.faults.is_empty() {
            prop_assert_eq!(&second.faults, &Vec::new());
        }
        let e2 = second.message.to_bytes(&ctx);
        prop_assert_eq!(e2.as_ref(), Ok(&e1));
    }
}

proptest! {
    /// Valid messages cut into arbitrary chunks come out of the framer whole,
    /// in order, and nothing is left over.
    #[test]
    fn framer_output_is_independent_of_chunking(
        (ctx, msgs) in session_context()
            .prop_flat_map(|ctx| (Just(ctx), vec(message(ctx), 1..=5))),
        cuts in vec(any::<Index>(), 0..=12),
    ) {
        let mut encoded = Vec::new();
        for m in &msgs {
            let bytes = m.to_bytes(&ctx);
            prop_assert!(bytes.is_ok(), "encode failed: {:?}", bytes);
            encoded.push(bytes.unwrap());
        }
        let stream = encoded.concat();
        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(stream.len() + 1)).collect();
        points.push(0);
        points.push(stream.len());
        points.sort_unstable();

        let mut framer = Framer::new(ctx.extended_message);
        let mut out = Vec::new();
        for w in points.windows(2) {
            framer.push(&stream[w[0]..w[1]]);
            while let Some(m) = framer.next_message().expect("valid stream") {
                out.push(m.to_vec());
            }
        }
        prop_assert_eq!(framer.buffered(), 0);
        prop_assert_eq!(out, encoded);
    }
}
