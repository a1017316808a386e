//! NEXT_HOP and MP_REACH_NLRI next hops: every check RFC 4271 §6.3,
//! RFC 7606 §7.3 and §7.11, RFC 4760 §3, RFC 2545 §3 and RFC 8950 name,
//! on iBGP and eBGP, one test each (issue 16, item 7). The UPDATE bytes
//! are built here from the field layouts of RFC 4271 §4.3 and RFC 4760
//! §3; checks that need the session (our address) or the Loc-RIB run the
//! decoded UPDATE through the engine on a virtual clock.
//!
//! "TaW" is treat-as-withdraw (RFC 7606 §2: the UPDATE's prefixes are
//! withdrawn, the session stays up); "ignored" is RFC 4271 §6.3's "the
//! route SHOULD be ignored" (the same for the routes: withdrawn, no
//! NOTIFICATION).
//!
//! | check | RFC | verdict, iBGP and eBGP | code | test |
//! |---|---|---|---|---|
//! | NEXT_HOP length ≠ 4 | 7606 §7.3 | TaW | `wire/attr/mod.rs` `decode_value` | `next_hop_length_other_than_four_is_treat_as_withdraw_on_ibgp_and_ebgp` |
//! | NEXT_HOP missing, NLRI field announces | 7606 §3(d), 4271 §6.3 | TaW | `wire/update.rs` `check_mandatory` | `missing_next_hop_with_nlri_field_prefixes_is_treat_as_withdraw` |
//! | NEXT_HOP missing, only MP_REACH announces | 4760 §3 | accepted | `check_mandatory` | `missing_next_hop_with_only_mp_reach_prefixes_is_accepted` |
//! | NEXT_HOP flags not well-known transitive | 7606 §3(c), 4271 §6.3 | TaW | `wire/attr/mod.rs` flag check | `next_hop_flagged_optional_is_treat_as_withdraw` |
//! | NEXT_HOP not a host address: 0/8, 127/8, 224/4, 240/4 (255.255.255.255) | 4271 §6.3 ("a valid IP host address"), 7606 §7.3 | TaW | `attr/mod.rs` `semantic_fault` | `next_hop_that_is_no_host_address_is_treat_as_withdraw_on_ibgp_and_ebgp` |
//! | NEXT_HOP = our configured local address | 4271 §6.3 (a) | TaW | `semantic_fault` (`DecodeContext::local_address`) | `next_hop_equal_to_the_configured_local_address_is_treat_as_withdraw` |
//! | NEXT_HOP = the connection's local address (not configured) | 4271 §6.3 (a) | ignored | `engine/import.rs` | `next_hop_equal_to_the_connections_local_address_is_ignored_on_ibgp_and_ebgp` |
//! | NEXT_HOP = the sender's address | 4271 §6.3 (b) | accepted | — | `next_hop_of_the_sender_is_accepted_on_ibgp_and_ebgp` |
//! | NEXT_HOP of a third router (not on a subnet we can check) | 4271 §5.1.3; §6.3 (b) not checked, see `engine/import.rs` | accepted | `engine/import.rs` (the reasoning) | `third_party_next_hop_is_accepted_on_ibgp_and_ebgp` |
//! | NEXT_HOP beside MP_REACH only: malformed or martian | 4760 §3 ("SHOULD ignore"), 7606 §7.3 | discard; MP_REACH routes stand | `wire/update.rs` `ignore_unused_next_hop` | `next_hop_beside_mp_reach_only_is_discarded_when_malformed_or_martian` |
//! | NEXT_HOP beside MP_REACH only: valid | 4760 §3 | ignored: MP_REACH routes take MP_REACH's next hop | `rib/attrs.rs` `from_update`, `engine/import.rs` | `mp_reach_ipv4_routes_take_the_mp_next_hop_not_next_hop` |
//! | NLRI field and IPv4 MP_REACH in one UPDATE | 4760 §3 | each part its own next hop | `PathAttrs::from_reach`, `engine/import.rs` | `nlri_field_and_mp_reach_in_one_update_each_take_their_own_next_hop` |
//! | MP_REACH next-hop length invalid for the AFI/SAFI (IPv4: 4, 16, 32; IPv6: 16, 32) | 7606 §7.11, 4760 §3, 2545 §3, 8950 §3 | session reset, 3/9 | `wire/attr/mp.rs` `decode_next_hop` | `mp_reach_next_hop_length_invalid_for_the_family_resets` |
//! | MP_REACH next hop running past the attribute | 7606 §7.11 | session reset, 3/9 | `MpReach::decode` | `mp_reach_next_hop_running_past_the_attribute_resets` |
//! | MP_REACH of a family not decoded | 4760 §7 | next hop and NLRI kept as bytes, no routes | `MpReach::decode` | `mp_reach_of_an_undecoded_family_keeps_its_next_hop_as_bytes` |
//! | IPv4 MP_REACH next hop not a host address | 4271 §6.3 (the §7.11 attribute's semantics) | ignored | `rib/attrs.rs` `NextHop::is_usable` | `mp_reach_ipv4_next_hop_that_is_no_host_address_is_ignored` |
//! | IPv6 next hop: global (16 bytes) | 2545 §3 | accepted | `decode_next_hop` | `ipv6_global_next_hop_is_used_and_a_link_local_beside_it_kept` |
//! | IPv6 next hop: global + link-local (32 bytes) | 2545 §3 | both kept, global used | `decode_next_hop`, `Engine::routes` | `ipv6_global_next_hop_is_used_and_a_link_local_beside_it_kept` |
//! | IPv6 next hop: `::` + link-local | 2545 §3 (link-local only peers) | the link-local is used | `is_usable`, `Engine::routes` | `ipv6_unspecified_global_with_a_link_local_uses_the_link_local` |
//! | IPv6 next hop: `::` alone, `::1`, multicast; `::` beside a non-link-local | 4271 §6.3, RFC 4291 §2.5.2, §2.5.3, §2.7 | ignored | `is_usable` | `ipv6_next_hop_that_is_no_host_address_is_ignored` |
//! | IPv6 next hop = the connection's local address | 4271 §6.3 (a) | ignored | `engine/import.rs` | `mp_next_hop_equal_to_the_connections_ipv6_local_address_is_ignored` |
//! | IPv4 routes over an IPv6 next hop (16 or 32 bytes) | 8950 §3 | accepted (also without the Extended Next Hop capability: see below) | `decode_next_hop` | `ipv4_routes_over_an_ipv6_next_hop_are_accepted` |
//! | IPv6 next hop for IPv6 routes, IPv4 next hop for IPv6 routes | 2545 §3 | a 4-byte next hop for AFI 2 is a bad length: reset | `decode_next_hop` | `mp_reach_next_hop_length_invalid_for_the_family_resets` |
//!
//! Not checked, on purpose:
//! - RFC 4271 §6.3 (b), the eBGP one-hop rule: it needs the receiver's
//!   interface subnets and whether the eBGP peer is one hop away, which
//!   the engine does not know; `engine/import.rs` says why, and who decides
//!   reachability instead.
//! - RFC 8950: IPv4 routes over IPv6 next hops are accepted although we do
//!   not advertise the Extended Next Hop capability. RFC 7606 §7.11 would
//!   allow a reset for a length "inconsistent with that which was
//!   expected"; accepting is the liberal reading (the next hop is still
//!   checked as any IPv6 next hop), and our own export sends such routes
//!   without the capability as well, so both sides change together or not
//!   at all.
//! - Other addresses of this host than the session's: only the
//!   connection's local address and the configured one are known here.

#[path = "engine/harness.rs"]
mod harness;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use bgp_core::policy::{Action, PrefixFilter};
use bgp_core::rib::{NextHop, PeerId};
use bgp_core::session::SessionEvent;
use bgp_core::speaker::{PeerConfig, SpeakerConfig};
use bgp_core::wire::*;
use harness::{AS, Harness, LOCAL, net, peer_ip};

const WELL_KNOWN: u8 = 0x40;
const OPT: u8 = 0x80;
/// The eBGP peer's AS.
const EXTERNAL: u32 = 65001;

/// 10.244.1.0/24 as NLRI: length, then 3 significant bytes.
const NLRI: &[u8] = &[24, 10, 244, 1];

/// One attribute: flags, type, 1-byte length, value.
fn attr(flags: u8, code: u8, value: &[u8]) -> Vec<u8> {
    let mut a = vec![flags, code, u8::try_from(value.len()).unwrap()];
    a.extend_from_slice(value);
    a
}

fn origin() -> Vec<u8> {
    attr(WELL_KNOWN, 1, &[0])
}

/// AS_SEQUENCE [65001] with 4-octet AS numbers (the eBGP peer's AS first).
fn as_path() -> Vec<u8> {
    attr(WELL_KNOWN, 2, &[2, 1, 0, 0, 0xfd, 0xe9])
}

fn next_hop(a: [u8; 4]) -> Vec<u8> {
    attr(WELL_KNOWN, 3, &a)
}

fn local_pref() -> Vec<u8> {
    attr(WELL_KNOWN, 5, &[0, 0, 0, 100])
}

/// ORIGIN, AS_PATH, LOCAL_PREF and `more`.
fn attrs(more: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    let mut a = vec![origin(), as_path(), local_pref()];
    a.extend(more);
    a
}

/// An UPDATE body without withdrawals (RFC 4271 §4.3).
fn body(attrs: &[Vec<u8>], nlri: &[u8]) -> Vec<u8> {
    let attrs = attrs.concat();
    let mut b = vec![0, 0];
    b.extend_from_slice(&u16::try_from(attrs.len()).unwrap().to_be_bytes());
    b.extend_from_slice(&attrs);
    b.extend_from_slice(nlri);
    b
}

/// MP_REACH_NLRI (RFC 4760 §3): AFI, SAFI, next-hop length and bytes,
/// the reserved byte, NLRI.
fn mp_reach(afi: u16, next_hop: &[u8], nlri: &[u8]) -> Vec<u8> {
    let mut v = afi.to_be_bytes().to_vec();
    v.push(1);
    v.push(u8::try_from(next_hop.len()).unwrap());
    v.extend_from_slice(next_hop);
    v.push(0);
    v.extend_from_slice(nlri);
    attr(OPT, 14, &v)
}

/// 2001:db8:1::/48 as NLRI.
const NLRI_V6: &[u8] = &[48, 0x20, 0x01, 0x0d, 0xb8, 0, 1];
/// 10.244.2.0/24 as NLRI (in MP_REACH).
const NLRI_MP_V4: &[u8] = &[24, 10, 244, 2];

fn v6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

fn v6_bytes(addrs: &[&str]) -> Vec<u8> {
    addrs.iter().flat_map(|a| v6(a).octets()).collect()
}

fn contexts() -> [(&'static str, DecodeContext); 2] {
    [
        ("iBGP", DecodeContext::ibgp()),
        ("eBGP", DecodeContext::ebgp(EXTERNAL)),
    ]
}

fn decode(body: &[u8], ctx: &DecodeContext) -> UpdateDecode {
    Update::decode(body, ctx).expect("the session survives this UPDATE")
}

fn reset(body: &[u8], ctx: &DecodeContext) -> Notification {
    Update::decode(body, ctx)
        .expect_err("this UPDATE resets the session")
        .notification()
}

/// The verdict on NEXT_HOP (type 3), if it has one.
fn next_hop_fault(d: &UpdateDecode) -> Option<(AttrProblem, FaultAction)> {
    d.faults
        .iter()
        .find(|f| f.code == 3)
        .map(|f| (f.problem.clone(), f.action))
}

// ---- NEXT_HOP in the decoder ----

#[test]
fn next_hop_length_other_than_four_is_treat_as_withdraw_on_ibgp_and_ebgp() {
    // RFC 7606 §7.3.
    for (kind, ctx) in contexts() {
        for value in [&[][..], &[192, 0, 2], &[192, 0, 2, 1, 0]] {
            let d = decode(&body(&attrs(vec![attr(WELL_KNOWN, 3, value)]), NLRI), &ctx);
            assert!(
                d.is_treat_as_withdraw(),
                "{kind}, {value:?}: {:?}",
                d.faults
            );
            assert_eq!(
                next_hop_fault(&d),
                Some((
                    AttrProblem::BadLength {
                        length: value.len()
                    },
                    FaultAction::TreatAsWithdraw
                )),
                "{kind}"
            );
        }
    }
}

#[test]
fn missing_next_hop_with_nlri_field_prefixes_is_treat_as_withdraw() {
    // RFC 7606 §3(d): NEXT_HOP is mandatory for the NLRI field.
    for (kind, ctx) in contexts() {
        let d = decode(&body(&attrs(vec![]), NLRI), &ctx);
        assert_eq!(
            next_hop_fault(&d),
            Some((AttrProblem::Missing, FaultAction::TreatAsWithdraw)),
            "{kind}"
        );
    }
}

#[test]
fn missing_next_hop_with_only_mp_reach_prefixes_is_accepted() {
    // RFC 4760 §3: MP_REACH_NLRI carries its own next hop.
    for (kind, ctx) in contexts() {
        let mp = mp_reach(2, &v6_bytes(&["2001:db8::2"]), NLRI_V6);
        let d = decode(&body(&attrs(vec![mp]), &[]), &ctx);
        assert!(!d.is_treat_as_withdraw(), "{kind}: {:?}", d.faults);
        assert_eq!(d.update.announced().count(), 1);
    }
}

#[test]
fn next_hop_flagged_optional_is_treat_as_withdraw() {
    // RFC 7606 §3(c): a well-known attribute marked optional.
    for (kind, ctx) in contexts() {
        let d = decode(
            &body(&attrs(vec![attr(OPT, 3, &[192, 0, 2, 1])]), NLRI),
            &ctx,
        );
        assert!(
            matches!(
                next_hop_fault(&d),
                Some((
                    AttrProblem::FlagsConflict { .. },
                    FaultAction::TreatAsWithdraw
                ))
            ),
            "{kind}: {:?}",
            d.faults
        );
    }
}

#[test]
fn next_hop_that_is_no_host_address_is_treat_as_withdraw_on_ibgp_and_ebgp() {
    // RFC 4271 §6.3: NEXT_HOP must be "a valid IP host address"; RFC 7606
    // §7.3 / §2 make that treat-as-withdraw rather than a reset.
    for (kind, ctx) in contexts() {
        for nh in [
            [0, 0, 0, 0],
            [0, 1, 2, 3],
            [127, 0, 0, 1],
            [224, 0, 0, 5],
            [239, 255, 255, 255],
            [240, 0, 0, 1],
            [255, 255, 255, 255],
        ] {
            let d = decode(&body(&attrs(vec![next_hop(nh)]), NLRI), &ctx);
            assert_eq!(
                next_hop_fault(&d),
                Some((
                    AttrProblem::MartianNextHop(Ipv4Addr::from(nh)),
                    FaultAction::TreatAsWithdraw
                )),
                "{kind}, {nh:?}"
            );
        }
    }
}

#[test]
fn next_hop_equal_to_the_configured_local_address_is_treat_as_withdraw() {
    // RFC 4271 §6.3 (a): not the receiving speaker's own address.
    for (kind, ctx) in contexts() {
        let ctx = DecodeContext {
            local_address: Some(Ipv4Addr::new(192, 0, 2, 9)),
            ..ctx
        };
        let d = decode(&body(&attrs(vec![next_hop([192, 0, 2, 9])]), NLRI), &ctx);
        assert_eq!(
            next_hop_fault(&d),
            Some((
                AttrProblem::MartianNextHop(Ipv4Addr::new(192, 0, 2, 9)),
                FaultAction::TreatAsWithdraw
            )),
            "{kind}"
        );
    }
}

#[test]
fn next_hop_beside_mp_reach_only_is_discarded_when_malformed_or_martian() {
    // RFC 4760 §3: beside MP_REACH_NLRI alone, NEXT_HOP "SHOULD be
    // ignored"; a bad one cannot withdraw the MP_REACH routes.
    for (kind, ctx) in contexts() {
        for bad in [
            attr(WELL_KNOWN, 3, &[192, 0, 2]),
            next_hop([127, 0, 0, 1]),
            next_hop([0, 0, 0, 0]),
        ] {
            let mp = mp_reach(2, &v6_bytes(&["2001:db8::2"]), NLRI_V6);
            let d = decode(&body(&attrs(vec![bad, mp]), &[]), &ctx);
            assert!(!d.is_treat_as_withdraw(), "{kind}: {:?}", d.faults);
            assert!(matches!(
                next_hop_fault(&d),
                Some((_, FaultAction::Discard))
            ));
            assert!(d.update.attribute(3).is_none(), "not kept");
            assert_eq!(d.update.announced().count(), 1, "{kind}");
        }
    }
}

// ---- MP_REACH_NLRI next hops in the decoder ----

#[test]
fn mp_reach_next_hop_length_invalid_for_the_family_resets() {
    // RFC 7606 §7.11: the NLRI cannot be located reliably; UPDATE Message
    // Error / Optional Attribute Error. IPv4 takes 4 (RFC 4760), 16 or 32
    // (RFC 8950 §3); IPv6 takes 16 or 32 (RFC 2545 §3).
    for (kind, ctx) in contexts() {
        for (afi, len, nlri) in [
            (1, 0, NLRI_MP_V4),
            (1, 8, NLRI_MP_V4),
            (1, 12, NLRI_MP_V4),
            (2, 0, NLRI_V6),
            (2, 4, NLRI_V6),
            (2, 24, NLRI_V6),
            (2, 48, NLRI_V6),
        ] {
            let mp = mp_reach(afi, &vec![0x20; len], nlri);
            let n = reset(&body(&attrs(vec![mp.clone()]), &[]), &ctx);
            assert_eq!(
                (n.code, n.subcode),
                (3, 9),
                "{kind}, AFI {afi}, {len} bytes"
            );
            assert_eq!(n.data, mp, "the attribute is the data");
        }
    }
}

#[test]
fn mp_reach_next_hop_running_past_the_attribute_resets() {
    // RFC 7606 §7.11: a next-hop length beyond the attribute.
    for (kind, ctx) in contexts() {
        let mut v = vec![0, 2, 1, 32];
        v.extend_from_slice(&v6_bytes(&["2001:db8::2"]));
        let n = reset(&body(&attrs(vec![attr(OPT, 14, &v)]), &[]), &ctx);
        assert_eq!((n.code, n.subcode), (3, 9), "{kind}");
    }
}

#[test]
fn mp_reach_of_an_undecoded_family_keeps_its_next_hop_as_bytes() {
    // RFC 4760: AFI 1 SAFI 128 (L3VPN) is not ours; nothing is announced.
    let mut v = vec![0, 1, 128, 12];
    v.extend_from_slice(&[0; 12]);
    v.push(0);
    let d = decode(
        &body(&attrs(vec![attr(OPT, 14, &v)]), &[]),
        &DecodeContext::ibgp(),
    );
    let mp = d.update.mp_reach().expect("kept");
    assert_eq!(mp.next_hop, bgp_core::wire::NextHop::Other(vec![0; 12]));
    assert_eq!(d.update.announced().count(), 0);
}

// ---- Through the engine: our address, the RIB's checks ----

/// Peer 10.0.0.2, iBGP (`asn` = ours) or eBGP with an accept-all import
/// policy (RFC 8212 would refuse everything otherwise), established; our
/// address on the connection is 10.0.0.1.
fn engine(asn: u32) -> Harness {
    let mut c = SpeakerConfig::new(AS, LOCAL);
    let mut p = PeerConfig::new(IpAddr::V4(peer_ip(2)), asn);
    if asn != AS {
        p.import = Some(PrefixFilter::new(Vec::new(), Action::Accept));
    }
    c.peers.push(p);
    let mut h = Harness::new(c);
    h.establish(PeerId(0), peer_ip(2), None);
    h.controls.clear();
    h
}

/// Both engines with the context their peer's UPDATEs decode in.
fn engines() -> [(&'static str, Harness, DecodeContext); 2] {
    [
        ("iBGP", engine(AS), DecodeContext::ibgp()),
        ("eBGP", engine(EXTERNAL), DecodeContext::ebgp(EXTERNAL)),
    ]
}

/// Feeds the UPDATE `body` from peer 10.0.0.2 to the engine, received on
/// a connection whose local address is `local`.
fn receive_on(h: &mut Harness, local: SocketAddr, body: &[u8], ctx: &DecodeContext) {
    let d = decode(body, ctx);
    h.engine
        .handle_event(h.now, PeerId(0), Some(local), SessionEvent::Update(d));
    h.pump();
}

fn receive(h: &mut Harness, body: &[u8], ctx: &DecodeContext) {
    receive_on(h, SocketAddr::new(IpAddr::V4(LOCAL), 179), body, ctx);
}

/// The next hop the RIB holds for `prefix`.
fn held(h: &Harness, prefix: &str) -> Option<NextHop> {
    h.engine.rib().best(&net(prefix)).map(|p| p.attrs.next_hop)
}

/// The next hop the route stream gives for `prefix`.
fn forwarding(h: &Harness, prefix: &str) -> Option<IpAddr> {
    h.engine
        .routes()
        .into_iter()
        .find(|r| r.prefix == net(prefix))
        .map(|r| r.next_hop)
}

#[test]
fn next_hop_equal_to_the_connections_local_address_is_ignored_on_ibgp_and_ebgp() {
    // RFC 4271 §6.3 (a), with no local address configured: the one of the
    // connection the UPDATE came on (10.0.0.1) counts.
    for (kind, mut h, ctx) in engines() {
        receive(
            &mut h,
            &body(&attrs(vec![next_hop([10, 0, 0, 2])]), NLRI),
            &ctx,
        );
        assert!(held(&h, "10.244.1.0/24").is_some(), "{kind}");
        receive(
            &mut h,
            &body(&attrs(vec![next_hop([10, 0, 0, 1])]), NLRI),
            &ctx,
        );
        assert_eq!(
            held(&h, "10.244.1.0/24"),
            None,
            "{kind}: the route is ignored"
        );
        assert!(h.controls.is_empty(), "{kind}: no NOTIFICATION");
    }
}

#[test]
fn mp_next_hop_equal_to_the_connections_ipv6_local_address_is_ignored() {
    // RFC 4271 §6.3 (a) for an MP_REACH next hop, on an IPv6 connection.
    for (kind, mut h, ctx) in engines() {
        let local = SocketAddr::new(IpAddr::V6(v6("2001:db8::1")), 179);
        let ours = mp_reach(2, &v6_bytes(&["2001:db8::1"]), NLRI_V6);
        receive_on(&mut h, local, &body(&attrs(vec![ours]), &[]), &ctx);
        assert_eq!(held(&h, "2001:db8:1::/48"), None, "{kind}");
        let theirs = mp_reach(2, &v6_bytes(&["2001:db8::2"]), NLRI_V6);
        receive_on(&mut h, local, &body(&attrs(vec![theirs]), &[]), &ctx);
        assert!(held(&h, "2001:db8:1::/48").is_some(), "{kind}");
    }
}

#[test]
fn next_hop_of_the_sender_is_accepted_on_ibgp_and_ebgp() {
    // RFC 4271 §6.3 (b): the sender's own address always passes.
    for (kind, mut h, ctx) in engines() {
        receive(
            &mut h,
            &body(&attrs(vec![next_hop([10, 0, 0, 2])]), NLRI),
            &ctx,
        );
        assert_eq!(
            held(&h, "10.244.1.0/24"),
            Some(NextHop::V4(peer_ip(2))),
            "{kind}"
        );
    }
}

#[test]
fn third_party_next_hop_is_accepted_on_ibgp_and_ebgp() {
    // RFC 4271 §5.1.3 allows another router's address; §6.3 (b)'s subnet
    // test is not made (see engine/import.rs): 192.0.2.77 is kept.
    for (kind, mut h, ctx) in engines() {
        receive(
            &mut h,
            &body(&attrs(vec![next_hop([192, 0, 2, 77])]), NLRI),
            &ctx,
        );
        assert_eq!(
            held(&h, "10.244.1.0/24"),
            Some(NextHop::V4(Ipv4Addr::new(192, 0, 2, 77))),
            "{kind}"
        );
    }
}

#[test]
fn mp_reach_ipv4_routes_take_the_mp_next_hop_not_next_hop() {
    // RFC 4760 §3: NEXT_HOP beside MP_REACH alone is ignored.
    for (kind, mut h, ctx) in engines() {
        let mp = mp_reach(1, &[10, 0, 0, 3], NLRI_MP_V4);
        receive(
            &mut h,
            &body(&attrs(vec![next_hop([10, 0, 0, 2]), mp]), &[]),
            &ctx,
        );
        assert_eq!(
            held(&h, "10.244.2.0/24"),
            Some(NextHop::V4(peer_ip(3))),
            "{kind}"
        );
    }
}

#[test]
fn nlri_field_and_mp_reach_in_one_update_each_take_their_own_next_hop() {
    // RFC 4760 §3: the NLRI field's routes NEXT_HOP, MP_REACH's its own.
    for (kind, mut h, ctx) in engines() {
        let mp = mp_reach(1, &[10, 0, 0, 3], NLRI_MP_V4);
        receive(
            &mut h,
            &body(&attrs(vec![next_hop([10, 0, 0, 2]), mp]), NLRI),
            &ctx,
        );
        assert_eq!(
            held(&h, "10.244.1.0/24"),
            Some(NextHop::V4(peer_ip(2))),
            "{kind}"
        );
        assert_eq!(
            held(&h, "10.244.2.0/24"),
            Some(NextHop::V4(peer_ip(3))),
            "{kind}"
        );
    }
}

#[test]
fn mp_reach_ipv4_next_hop_that_is_no_host_address_is_ignored() {
    // RFC 4271 §6.3 applies to the next hop MP_REACH carries, too.
    for (kind, mut h, ctx) in engines() {
        for nh in [[0, 0, 0, 0], [127, 0, 0, 1], [224, 0, 0, 5], [240, 0, 0, 1]] {
            let mp = mp_reach(1, &nh, NLRI_MP_V4);
            receive(&mut h, &body(&attrs(vec![mp]), &[]), &ctx);
            assert_eq!(held(&h, "10.244.2.0/24"), None, "{kind}, {nh:?}");
        }
    }
}

#[test]
fn ipv6_global_next_hop_is_used_and_a_link_local_beside_it_kept() {
    // RFC 2545 §3: 16 bytes global, or 32 bytes global then link-local.
    for (kind, mut h, ctx) in engines() {
        let global = mp_reach(2, &v6_bytes(&["2001:db8::2"]), NLRI_V6);
        receive(&mut h, &body(&attrs(vec![global]), &[]), &ctx);
        assert_eq!(
            forwarding(&h, "2001:db8:1::/48"),
            Some(IpAddr::V6(v6("2001:db8::2"))),
            "{kind}"
        );
        let both = mp_reach(2, &v6_bytes(&["2001:db8::3", "fe80::3"]), NLRI_V6);
        receive(&mut h, &body(&attrs(vec![both]), &[]), &ctx);
        assert_eq!(
            held(&h, "2001:db8:1::/48"),
            Some(NextHop::V6 {
                global: v6("2001:db8::3"),
                link_local: Some(v6("fe80::3"))
            }),
            "{kind}"
        );
        assert_eq!(
            forwarding(&h, "2001:db8:1::/48"),
            Some(IpAddr::V6(v6("2001:db8::3"))),
            "{kind}: the global address is forwarded to"
        );
    }
}

#[test]
fn ipv6_unspecified_global_with_a_link_local_uses_the_link_local() {
    // RFC 2545 §3, as link-local-only peers send it: `::` then fe80::.
    for (kind, mut h, ctx) in engines() {
        let mp = mp_reach(2, &v6_bytes(&["::", "fe80::2"]), NLRI_V6);
        receive(&mut h, &body(&attrs(vec![mp]), &[]), &ctx);
        assert_eq!(
            forwarding(&h, "2001:db8:1::/48"),
            Some(IpAddr::V6(v6("fe80::2"))),
            "{kind}"
        );
    }
}

#[test]
fn ipv6_next_hop_that_is_no_host_address_is_ignored() {
    // RFC 4271 §6.3 and RFC 4291: the unspecified address (§2.5.2) alone
    // or beside an address that is not link-local, loopback (§2.5.3),
    // multicast (§2.7).
    for (kind, mut h, ctx) in engines() {
        for nh in [
            vec!["::"],
            vec!["::", "2001:db8::2"],
            vec!["::1"],
            vec!["ff02::1"],
            vec!["ff05::2", "fe80::2"],
        ] {
            let mp = mp_reach(2, &v6_bytes(&nh), NLRI_V6);
            receive(&mut h, &body(&attrs(vec![mp]), &[]), &ctx);
            assert_eq!(held(&h, "2001:db8:1::/48"), None, "{kind}, {nh:?}");
        }
    }
}

#[test]
fn ipv4_routes_over_an_ipv6_next_hop_are_accepted() {
    // RFC 8950 §3: AFI 1 with a 16- or 32-byte next hop.
    for (kind, mut h, ctx) in engines() {
        let mp = mp_reach(1, &v6_bytes(&["2001:db8::2"]), NLRI_MP_V4);
        receive(&mut h, &body(&attrs(vec![mp]), &[]), &ctx);
        assert_eq!(
            forwarding(&h, "10.244.2.0/24"),
            Some(IpAddr::V6(v6("2001:db8::2"))),
            "{kind}"
        );
        let mp = mp_reach(1, &v6_bytes(&["2001:db8::3", "fe80::3"]), NLRI_MP_V4);
        receive(&mut h, &body(&attrs(vec![mp]), &[]), &ctx);
        assert_eq!(
            forwarding(&h, "10.244.2.0/24"),
            Some(IpAddr::V6(v6("2001:db8::3"))),
            "{kind}"
        );
    }
}
