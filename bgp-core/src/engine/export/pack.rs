//! Packing route changes into encoded UPDATE messages: one attribute set
//! (or withdrawals) per message, as many prefixes as the negotiated size
//! allows (about 800 IPv4 /26 in 4,096 bytes).
//!
//! A message is encoded once and the same `Bytes` go to every peer of an
//! update group, so this runs once per change for a whole group.

use bytes::{Bytes, BytesMut};

use crate::wire::{
    AttrValue, DecodeContext, Family, HEADER_LEN, Message, MpNlri, MpReach, MpUnreach, NextHop,
    PathAttribute, Prefix, RouteRefresh, Update,
};

/// The attributes of routes we send: everything but the next hop (which
/// becomes NEXT_HOP or goes into MP_REACH_NLRI by family) and the MP
/// attributes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct OutAttrs {
    /// Path attributes in ascending type order, without NEXT_HOP,
    /// MP_REACH_NLRI and MP_UNREACH_NLRI.
    pub attributes: Vec<PathAttribute>,
    /// The next hop: IPv4 for IPv4 routes (or IPv6, RFC 8950), IPv6 for IPv6.
    pub next_hop: NextHop,
}

/// The fields of a session's send context that change the bytes of an
/// UPDATE: sessions that agree on them can share encoded messages.
pub(crate) fn encoding_context(tx: &DecodeContext) -> DecodeContext {
    DecodeContext {
        four_octet_as: tx.four_octet_as,
        extended_message: tx.extended_message,
        add_path: tx.add_path,
        ..DecodeContext::default()
    }
}

/// Encodes `update`; `None` only if it cannot be encoded (never for the
/// messages built here, which are sized to fit).
fn encode(update: Update, ctx: &DecodeContext) -> Option<Bytes> {
    let mut out = BytesMut::new();
    Message::Update(update).encode(ctx, &mut out).ok()?;
    Some(out.freeze())
}

/// The encoded End-of-RIB marker for `family` (RFC 4724 §2).
pub(crate) fn end_of_rib(family: Family, ctx: &DecodeContext) -> Option<Bytes> {
    encode(Update::end_of_rib_marker(family), ctx)
}

/// The encoded ROUTE-REFRESH of `subtype` (BoRR or EoRR, RFC 7313 §3.2)
/// that brackets a re-advertisement of `family`.
pub(crate) fn refresh_marker(family: Family, subtype: u8, ctx: &DecodeContext) -> Option<Bytes> {
    let marker = RouteRefresh {
        subtype,
        ..RouteRefresh::request(family.afi(), family.safi())
    };
    let mut out = BytesMut::new();
    Message::RouteRefresh(marker).encode(ctx, &mut out).ok()?;
    Some(out.freeze())
}

/// Encodes announcements of `prefixes` (all of `family`) with `attrs`, or
/// their withdrawal when `attrs` is `None`, into as few messages as fit,
/// appended to `out`.
pub(crate) fn pack(
    ctx: &DecodeContext,
    family: Family,
    attrs: Option<&OutAttrs>,
    prefixes: &[Prefix],
    out: &mut Vec<Bytes>,
) {
    if prefixes.is_empty() {
        return;
    }
    let add_path = ctx.add_path.enabled(family);
    let budget = ctx
        .max_message_len()
        .saturating_sub(fixed_len(ctx, family, attrs));
    let cost = |p: &Prefix| 1 + usize::from(p.network.prefix().div_ceil(8)) + 4 * add_path as usize;
    let mut start = 0;
    while start < prefixes.len() {
        let mut used = 0usize;
        let mut end = start;
        while let Some(p) = prefixes.get(end) {
            let c = cost(p);
            // At least one prefix per message, so this always progresses.
            if end > start && used + c > budget {
                break;
            }
            used += c;
            end += 1;
        }
        let chunk = prefixes.get(start..end).unwrap_or_default().to_vec();
        if let Some(bytes) = encode(build(family, attrs, chunk), ctx) {
            out.push(bytes);
        }
        start = end;
    }
}

/// Bytes of a message with these attributes and no prefixes: header,
/// lengths, attributes, and the next-hop or MP attribute's own header.
fn fixed_len(ctx: &DecodeContext, family: Family, attrs: Option<&OutAttrs>) -> usize {
    let mut fixed = HEADER_LEN + 4;
    if let Some(a) = attrs {
        let update = Update {
            withdrawn: vec![],
            attributes: a.attributes.clone(),
            nlri: vec![],
        };
        if let Some(bytes) = encode(update, ctx) {
            fixed += bytes.len().saturating_sub(HEADER_LEN + 4);
        }
    }
    fixed
        + match (attrs.map(|a| &a.next_hop), family) {
            // NEXT_HOP: flags, type, length, 4 bytes.
            (Some(NextHop::Ipv4(_)), Family::Ipv4Unicast) => 7,
            // MP_REACH: 4-byte header, AFI, SAFI, NH length, NH (≤ 32), reserved.
            (Some(_), _) => 4 + 3 + 1 + 32 + 1,
            (None, Family::Ipv4Unicast) => 0,
            // MP_UNREACH: 4-byte header, AFI, SAFI.
            (None, Family::Ipv6Unicast) => 4 + 3,
        }
}

/// One UPDATE announcing or withdrawing `prefixes`.
fn build(family: Family, attrs: Option<&OutAttrs>, prefixes: Vec<Prefix>) -> Update {
    match (attrs, family) {
        (None, Family::Ipv4Unicast) => Update {
            withdrawn: prefixes,
            ..Update::default()
        },
        (None, Family::Ipv6Unicast) => Update {
            attributes: vec![PathAttribute::new(AttrValue::MpUnreach(MpUnreach {
                afi: family.afi(),
                safi: family.safi(),
                withdrawn: MpNlri::Unicast(prefixes),
            }))],
            ..Update::default()
        },
        (Some(a), family) => {
            let mut attributes = a.attributes.clone();
            let nlri = match (family, &a.next_hop) {
                (Family::Ipv4Unicast, NextHop::Ipv4(nh)) => {
                    attributes.push(PathAttribute::new(AttrValue::NextHop(*nh)));
                    prefixes
                }
                (family, next_hop) => {
                    // IPv6 routes, and IPv4 routes over an IPv6 next hop
                    // (RFC 8950), go in MP_REACH_NLRI.
                    attributes.push(PathAttribute::new(AttrValue::MpReach(MpReach {
                        afi: family.afi(),
                        safi: family.safi(),
                        next_hop: next_hop.clone(),
                        nlri: MpNlri::Unicast(prefixes),
                    })));
                    Vec::new()
                }
            };
            attributes.sort_by_key(PathAttribute::code);
            Update {
                withdrawn: vec![],
                attributes,
                nlri,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Origin;

    fn v4(i: u32) -> Prefix {
        let addr = std::net::Ipv4Addr::from(0x0a00_0000 + (i << 6));
        Prefix::new(ipnetwork::IpNetwork::V4(
            ipnetwork::Ipv4Network::new(addr, 26).unwrap(),
        ))
    }

    fn attrs() -> OutAttrs {
        OutAttrs {
            attributes: vec![
                PathAttribute::new(AttrValue::Origin(Origin::Igp)),
                PathAttribute::new(AttrValue::AsPath(Default::default())),
                PathAttribute::new(AttrValue::LocalPref(100)),
            ],
            next_hop: NextHop::Ipv4("10.0.0.1".parse().unwrap()),
        }
    }

    fn decode_all(msgs: &[Bytes], ctx: &DecodeContext) -> Vec<Update> {
        msgs.iter()
            .map(|m| match Message::decode(m, ctx).unwrap().message {
                Message::Update(u) => u,
                other => panic!("not an UPDATE: {other:?}"),
            })
            .collect()
    }

    #[test]
    fn packs_announcements_into_full_messages_that_decode_back() {
        let ctx = DecodeContext::ibgp();
        let prefixes: Vec<Prefix> = (0..2000).map(v4).collect();
        let mut out = Vec::new();
        pack(
            &ctx,
            Family::Ipv4Unicast,
            Some(&attrs()),
            &prefixes,
            &mut out,
        );
        assert_eq!(out.len(), 3, "2,000 /26 need three 4,096-byte UPDATEs");
        assert!(out.iter().all(|m| m.len() <= 4096));
        let back: Vec<Prefix> = decode_all(&out, &ctx)
            .into_iter()
            .flat_map(|u| u.nlri)
            .collect();
        assert_eq!(back, prefixes);
    }

    #[test]
    fn packs_ipv6_withdrawals_into_mp_unreach() {
        let ctx = DecodeContext::ibgp();
        let p = Prefix::new("2001:db8::/64".parse().unwrap());
        let mut out = Vec::new();
        pack(&ctx, Family::Ipv6Unicast, None, &[p], &mut out);
        let u = decode_all(&out, &ctx).remove(0);
        assert_eq!(u.withdrawals().copied().collect::<Vec<_>>(), vec![p]);
    }
}
