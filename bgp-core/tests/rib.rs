//! Loc-RIB behaviour: one test per decision step (RFC 4271 §9.1.2.2,
//! RFC 4456 §9), import loop checks, export rules (RFC 4271 §9.1.3,
//! RFC 4456), Adj-RIB-Out bookkeeping, graceful restart (RFC 4724 §4.2),
//! attribute sharing and bulk removal.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use bgp_core::rib::{
    AdjRibOut, BestChange, ExportContext, NO_EXPORT, NextHop, OutChange, PathAttrs, PeerId,
    PeerInfo, RejectReason, Rib, RibConfig,
};
use bgp_core::wire::iana::attr_flags;
use bgp_core::wire::{
    AsPath, AttrValue, DecodeContext, Family, Message, MpNlri, MpReach, Origin, PathAttribute,
    Prefix, Segment, SegmentKind, Update,
};
use ipnetwork::IpNetwork;

const LOCAL_AS: u32 = 65000;
const ROUTER_ID: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn net(s: &str) -> IpNetwork {
    s.parse().unwrap()
}

fn pfx(s: &str) -> Prefix {
    Prefix::new(net(s))
}

fn config() -> RibConfig {
    RibConfig::new(LOCAL_AS, ROUTER_ID)
}

/// An iBGP peer at 10.0.0.n with router ID 10.0.0.n.
fn ibgp(n: u8) -> PeerInfo {
    let a = Ipv4Addr::new(10, 0, 0, n);
    PeerInfo::new(PeerId(u32::from(n)), IpAddr::V4(a), LOCAL_AS, a, LOCAL_AS)
}

/// An eBGP peer at 10.0.0.n in `asn`.
fn ebgp(n: u8, asn: u32) -> PeerInfo {
    let a = Ipv4Addr::new(10, 0, 0, n);
    PeerInfo::new(PeerId(u32::from(n)), IpAddr::V4(a), asn, a, LOCAL_AS)
}

fn attrs(path: &[u32], nh: &str) -> PathAttrs {
    PathAttrs::new(
        Origin::Igp,
        AsPath::sequence(path.to_vec()),
        NextHop::V4(ip(nh)),
    )
}

fn announce(rib: &mut Rib, peer: &PeerInfo, prefixes: &[&str], a: PathAttrs) -> Vec<BestChange> {
    let prefixes: Vec<Prefix> = prefixes.iter().map(|s| pfx(s)).collect();
    let mut changes = Vec::new();
    rib.update(peer.id, &prefixes, Arc::new(a), &mut changes)
        .expect("accepted");
    changes
}

/// Which of two paths to 192.168.0.0/26 wins, checked in both arrival
/// orders (the result must not depend on it).
fn winner(cfg: RibConfig, a: (PeerInfo, PathAttrs), b: (PeerInfo, PathAttrs)) -> PeerId {
    let mut results = Vec::new();
    for order in [[&a, &b], [&b, &a]] {
        let mut rib = Rib::new(cfg);
        rib.add_peer(a.0);
        rib.add_peer(b.0);
        for (peer, at) in order {
            announce(&mut rib, peer, &["192.168.0.0/26"], at.clone());
        }
        results.push(rib.best(&net("192.168.0.0/26")).unwrap().peer);
    }
    assert_eq!(results[0], results[1], "decision depends on arrival order");
    results[0]
}

// ---- Decision process: one test per step ----

#[test]
fn higher_local_pref_wins() {
    let mut low = attrs(&[], "10.0.0.2");
    low.local_pref = Some(50);
    let mut high = attrs(&[1, 2, 3], "10.0.0.3");
    high.local_pref = Some(200);
    assert_eq!(winner(config(), (ibgp(2), low), (ibgp(3), high)), PeerId(3));
}

#[test]
fn missing_local_pref_counts_as_100() {
    let none = attrs(&[], "10.0.0.2");
    let mut lower = attrs(&[], "10.0.0.3");
    lower.local_pref = Some(99);
    assert_eq!(
        winner(config(), (ibgp(2), none), (ibgp(3), lower)),
        PeerId(2)
    );
}

#[test]
fn local_route_beats_learned_at_equal_local_pref() {
    let mut rib = Rib::new(config());
    rib.add_peer(ebgp(2, 65002));
    announce(
        &mut rib,
        &ebgp(2, 65002),
        &["192.168.0.0/26"],
        attrs(&[65002], "10.0.0.2"),
    );
    let mut changes = Vec::new();
    let mut local = attrs(&[], "0.0.0.0");
    local.origin = Origin::Incomplete;
    rib.announce_local(net("192.168.0.0/26"), local, &mut changes);
    assert_eq!(changes.len(), 1);
    assert_eq!(
        rib.best(&net("192.168.0.0/26")).unwrap().peer,
        PeerId::LOCAL
    );
    rib.withdraw_local(net("192.168.0.0/26"), &mut changes);
    assert_eq!(rib.best(&net("192.168.0.0/26")).unwrap().peer, PeerId(2));
}

#[test]
fn shorter_as_path_wins() {
    let long = attrs(&[65002, 65010], "10.0.0.2");
    let short = attrs(&[65003], "10.0.0.3");
    assert_eq!(
        winner(config(), (ebgp(2, 65002), long), (ebgp(3, 65003), short)),
        PeerId(3)
    );
}

#[test]
fn as_set_counts_as_one_in_path_length() {
    let mut set = attrs(&[65002], "10.0.0.2");
    set.as_path.segments.push(Segment {
        kind: SegmentKind::Set,
        asns: vec![1, 2, 3, 4],
    });
    let seq = attrs(&[65003, 7, 8], "10.0.0.3");
    assert_eq!(
        winner(config(), (ebgp(2, 65002), set), (ebgp(3, 65003), seq)),
        PeerId(2)
    );
}

#[test]
fn lower_origin_wins() {
    let mut incomplete = attrs(&[65002], "10.0.0.2");
    incomplete.origin = Origin::Incomplete;
    let mut egp = attrs(&[65003], "10.0.0.3");
    egp.origin = Origin::Egp;
    assert_eq!(
        winner(
            config(),
            (ebgp(2, 65002), incomplete),
            (ebgp(3, 65003), egp)
        ),
        PeerId(3)
    );
}

#[test]
fn lower_med_wins_between_paths_from_same_neighbour_as() {
    // Two sessions to the same neighbour AS; the higher router ID has the
    // lower MED, so MED (not router ID) decides.
    let mut high = attrs(&[65002], "10.0.0.2");
    high.med = Some(20);
    let mut low = attrs(&[65002], "10.0.0.3");
    low.med = Some(10);
    assert_eq!(
        winner(config(), (ebgp(2, 65002), high), (ebgp(3, 65002), low)),
        PeerId(3)
    );
}

#[test]
fn med_is_ignored_between_different_neighbour_ases() {
    let mut high = attrs(&[65002], "10.0.0.2");
    high.med = Some(500);
    let mut low = attrs(&[65003], "10.0.0.3");
    low.med = Some(1);
    // Falls through to router ID: 10.0.0.2 wins despite its higher MED.
    assert_eq!(
        winner(config(), (ebgp(2, 65002), high), (ebgp(3, 65003), low)),
        PeerId(2)
    );
}

#[test]
fn withdrawing_a_path_that_is_not_best_but_eliminated_another_by_med_reselects() {
    // Found by `model::change_stream_and_order_independence` (its seed is
    // in rib.proptest-regressions). X (AS 65002, MED 0) eliminates Y (AS
    // 65002, MED 10) and then loses to B on router ID; without X, Y beats B.
    let mut rib = Rib::new(config());
    let (y, b, x) = (ebgp(2, 65002), ebgp(3, 65003), ebgp(4, 65002));
    for p in [y, b, x] {
        rib.add_peer(p);
    }
    let with_med = |path: &[u32], nh: &str, med: u32| {
        let mut a = attrs(path, nh);
        a.med = Some(med);
        a
    };
    announce(
        &mut rib,
        &y,
        &["192.168.0.0/26"],
        with_med(&[65002], "10.0.0.2", 10),
    );
    announce(
        &mut rib,
        &b,
        &["192.168.0.0/26"],
        attrs(&[65003], "10.0.0.3"),
    );
    announce(
        &mut rib,
        &x,
        &["192.168.0.0/26"],
        with_med(&[65002], "10.0.0.4", 0),
    );
    assert_eq!(rib.best(&net("192.168.0.0/26")).unwrap().peer, PeerId(3));
    let mut changes = Vec::new();
    rib.withdraw(PeerId(4), &[pfx("192.168.0.0/26")], &mut changes);
    assert_eq!(rib.best(&net("192.168.0.0/26")).unwrap().peer, PeerId(2));
    assert_eq!(changes.len(), 1, "the new best is announced: {changes:?}");
}

#[test]
fn missing_med_counts_as_zero() {
    let none = attrs(&[65002], "10.0.0.3");
    let mut some = attrs(&[65002], "10.0.0.2");
    some.med = Some(1);
    assert_eq!(
        winner(config(), (ebgp(3, 65002), none), (ebgp(2, 65002), some)),
        PeerId(3)
    );
}

#[test]
fn med_elimination_is_per_neighbour_as_among_three_paths() {
    // A (AS 65002, MED 10, router 10.0.0.4) eliminates B (AS 65002, MED 20,
    // router 10.0.0.2); C (AS 65003, MED 50, router 10.0.0.3) is not
    // compared by MED and beats A on router ID.
    let mut rib = Rib::new(config());
    let (a, b, c) = (ebgp(4, 65002), ebgp(2, 65002), ebgp(3, 65003));
    for p in [a, b, c] {
        rib.add_peer(p);
    }
    let with_med = |path: u32, med: u32, nh: &str| {
        let mut x = attrs(&[path], nh);
        x.med = Some(med);
        x
    };
    announce(
        &mut rib,
        &a,
        &["192.168.0.0/26"],
        with_med(65002, 10, "10.0.0.4"),
    );
    announce(
        &mut rib,
        &b,
        &["192.168.0.0/26"],
        with_med(65002, 20, "10.0.0.2"),
    );
    announce(
        &mut rib,
        &c,
        &["192.168.0.0/26"],
        with_med(65003, 50, "10.0.0.3"),
    );
    assert_eq!(rib.best(&net("192.168.0.0/26")).unwrap().peer, c.id);
}

#[test]
fn ebgp_path_beats_ibgp_path() {
    let from_ibgp = attrs(&[65010], "10.0.0.2");
    let from_ebgp = attrs(&[65010], "10.0.0.3");
    assert_eq!(
        winner(config(), (ibgp(2), from_ibgp), (ebgp(3, 65010), from_ebgp)),
        PeerId(3)
    );
}

#[test]
fn fresh_path_beats_equal_stale_path() {
    let mut rib = Rib::new(config());
    rib.add_peer(ibgp(2));
    rib.add_peer(ibgp(3));
    announce(
        &mut rib,
        &ibgp(2),
        &["192.168.0.0/26"],
        attrs(&[], "10.0.0.2"),
    );
    announce(
        &mut rib,
        &ibgp(3),
        &["192.168.0.0/26"],
        attrs(&[], "10.0.0.3"),
    );
    assert_eq!(rib.best(&net("192.168.0.0/26")).unwrap().peer, PeerId(2));
    let mut changes = Vec::new();
    rib.mark_stale(PeerId(2), Family::Ipv4Unicast, &mut changes);
    // The stale path loses before the router-ID step.
    assert_eq!(rib.best(&net("192.168.0.0/26")).unwrap().peer, PeerId(3));
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].new.as_ref().unwrap().peer, PeerId(3));
}

#[test]
fn stale_path_still_wins_on_an_earlier_step() {
    let mut rib = Rib::new(config());
    rib.add_peer(ibgp(2));
    rib.add_peer(ibgp(3));
    let mut better = attrs(&[], "10.0.0.2");
    better.local_pref = Some(200);
    announce(&mut rib, &ibgp(2), &["192.168.0.0/26"], better);
    announce(
        &mut rib,
        &ibgp(3),
        &["192.168.0.0/26"],
        attrs(&[], "10.0.0.3"),
    );
    rib.mark_stale(PeerId(2), Family::Ipv4Unicast, &mut Vec::new());
    let best = rib.best(&net("192.168.0.0/26")).unwrap();
    assert_eq!((best.peer, best.stale), (PeerId(2), true));
}

#[test]
fn lower_router_id_wins() {
    let mut a = ebgp(7, 65002);
    a.router_id = ip("192.0.2.9");
    let mut b = ebgp(8, 65003);
    b.router_id = ip("192.0.2.1");
    assert_eq!(
        winner(
            config(),
            (a, attrs(&[65002], "10.0.0.7")),
            (b, attrs(&[65003], "10.0.0.8"))
        ),
        PeerId(8)
    );
}

#[test]
fn originator_id_stands_in_for_router_id() {
    // Peer 2 has the lower router ID, but its path was reflected from a
    // router with a higher ORIGINATOR_ID (RFC 4456 §9).
    let mut reflected = attrs(&[], "10.0.0.2");
    reflected.originator_id = Some(ip("10.9.9.9"));
    reflected.cluster_list = vec![ip("10.0.0.2")];
    let mut direct = attrs(&[], "10.0.0.3");
    direct.cluster_list = vec![ip("10.0.0.3")];
    assert_eq!(
        winner(config(), (ibgp(2), reflected), (ibgp(3), direct)),
        PeerId(3)
    );
}

#[test]
fn shorter_cluster_list_wins() {
    let origin = ip("10.5.5.5");
    let mut long = attrs(&[], "10.5.5.5");
    long.originator_id = Some(origin);
    long.cluster_list = vec![ip("10.0.0.2"), ip("10.0.0.9")];
    let mut short = attrs(&[], "10.5.5.5");
    short.originator_id = Some(origin);
    short.cluster_list = vec![ip("10.0.0.3")];
    assert_eq!(
        winner(config(), (ibgp(2), long), (ibgp(3), short)),
        PeerId(3)
    );
}

#[test]
fn lower_peer_address_wins() {
    // Same router ID (one router, two sessions), different addresses.
    let mut a = ebgp(2, 65002);
    let mut b = ebgp(3, 65002);
    a.router_id = ip("192.0.2.1");
    b.router_id = ip("192.0.2.1");
    a.address = IpAddr::V4(ip("172.16.0.9"));
    b.address = IpAddr::V4(ip("172.16.0.5"));
    assert_eq!(
        winner(
            config(),
            (a, attrs(&[65002], "172.16.0.9")),
            (b, attrs(&[65002], "172.16.0.5"))
        ),
        PeerId(3)
    );
}

#[test]
fn lower_path_id_wins() {
    // ADD-PATH (RFC 7911): one peer, two paths, nothing else differs.
    let mut rib = Rib::new(config());
    rib.add_peer(ibgp(2));
    let mut changes = Vec::new();
    let with_id = |id| Prefix {
        path_id: Some(id),
        network: net("192.168.0.0/26"),
    };
    for id in [7, 3] {
        rib.update(
            PeerId(2),
            &[with_id(id)],
            Arc::new(attrs(&[], "10.0.0.2")),
            &mut changes,
        )
        .unwrap();
    }
    assert_eq!(rib.paths(&net("192.168.0.0/26")).len(), 2);
    assert_eq!(rib.best(&net("192.168.0.0/26")).unwrap().path_id, 3);
    assert_eq!(rib.received(PeerId(2), Family::Ipv4Unicast), 2);
}

#[test]
fn withdrawing_the_best_path_promotes_the_next() {
    let mut rib = Rib::new(config());
    rib.add_peer(ibgp(2));
    rib.add_peer(ibgp(3));
    announce(
        &mut rib,
        &ibgp(2),
        &["192.168.0.0/26"],
        attrs(&[], "10.0.0.2"),
    );
    announce(
        &mut rib,
        &ibgp(3),
        &["192.168.0.0/26"],
        attrs(&[], "10.0.0.3"),
    );
    let mut changes = Vec::new();
    assert_eq!(
        rib.withdraw(PeerId(2), &[pfx("192.168.0.0/26")], &mut changes),
        1
    );
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].old_peer, Some(PeerId(2)));
    let new = changes[0].new.as_ref().unwrap();
    assert_eq!(
        (new.peer, new.attrs.next_hop),
        (PeerId(3), NextHop::V4(ip("10.0.0.3")))
    );
    changes.clear();
    rib.withdraw(PeerId(3), &[pfx("192.168.0.0/26")], &mut changes);
    assert_eq!(changes[0].new, None);
    assert!(rib.is_empty());
}

#[test]
fn changing_a_losing_path_reports_nothing() {
    let mut rib = Rib::new(config());
    rib.add_peer(ibgp(2));
    rib.add_peer(ibgp(3));
    announce(
        &mut rib,
        &ibgp(2),
        &["192.168.0.0/26"],
        attrs(&[], "10.0.0.2"),
    );
    announce(
        &mut rib,
        &ibgp(3),
        &["192.168.0.0/26"],
        attrs(&[], "10.0.0.3"),
    );
    let changes = announce(
        &mut rib,
        &ibgp(3),
        &["192.168.0.0/26"],
        attrs(&[1], "10.0.0.3"),
    );
    assert!(changes.is_empty());
    let same = announce(
        &mut rib,
        &ibgp(2),
        &["192.168.0.0/26"],
        attrs(&[], "10.0.0.2"),
    );
    assert!(same.is_empty(), "identical re-announcement is not a change");
}

// ---- Import checks ----

#[test]
fn rejects_ebgp_route_containing_our_as_and_withdraws_previous() {
    let mut rib = Rib::new(config());
    let peer = ebgp(2, 65002);
    rib.add_peer(peer);
    announce(
        &mut rib,
        &peer,
        &["192.168.0.0/26"],
        attrs(&[65002], "10.0.0.2"),
    );
    let mut changes = Vec::new();
    let looped = attrs(&[65002, LOCAL_AS, 65009], "10.0.0.2");
    let r = rib.update(
        peer.id,
        &[pfx("192.168.0.0/26")],
        Arc::new(looped),
        &mut changes,
    );
    assert_eq!(r, Err(RejectReason::AsLoop));
    assert!(rib.is_empty());
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].new, None);
}

#[test]
fn rejects_route_whose_originator_id_is_ours() {
    let mut rib = Rib::new(config());
    rib.add_peer(ibgp(2));
    let mut a = attrs(&[], "10.0.0.2");
    a.originator_id = Some(ROUTER_ID);
    let r = rib.update(
        PeerId(2),
        &[pfx("192.168.0.0/26")],
        Arc::new(a),
        &mut Vec::new(),
    );
    assert_eq!(r, Err(RejectReason::OriginatorIsUs));
    assert!(rib.is_empty());
}

#[test]
fn rejects_route_whose_cluster_list_holds_our_cluster_id() {
    let mut cfg = config();
    cfg.cluster_id = Some(ip("10.255.0.1"));
    let mut rib = Rib::new(cfg);
    rib.add_peer(ibgp(2));
    let mut a = attrs(&[], "10.0.0.2");
    a.cluster_list = vec![ip("10.255.0.7"), ip("10.255.0.1")];
    let r = rib.update(
        PeerId(2),
        &[pfx("192.168.0.0/26")],
        Arc::new(a),
        &mut Vec::new(),
    );
    assert_eq!(r, Err(RejectReason::ClusterLoop));
    assert_eq!(rib.attr_sets(), 0, "a rejected set is not kept");
}

#[test]
fn rejects_unusable_next_hops() {
    let mut rib = Rib::new(config());
    rib.add_peer(ibgp(2));
    for nh in ["0.0.0.0", "127.0.0.1", "224.0.0.5", "240.0.0.1"] {
        let r = rib.update(
            PeerId(2),
            &[pfx("192.168.0.0/26")],
            Arc::new(attrs(&[], nh)),
            &mut Vec::new(),
        );
        assert_eq!(r, Err(RejectReason::UnusableNextHop), "{nh}");
    }
    let v6 = PathAttrs::new(
        Origin::Igp,
        AsPath::default(),
        NextHop::V6 {
            global: Ipv6Addr::UNSPECIFIED,
            link_local: Some("fe80::1".parse().unwrap()),
        },
    );
    let r = rib.update(
        PeerId(2),
        &[pfx("2001:db8::/64")],
        Arc::new(v6),
        &mut Vec::new(),
    );
    assert_eq!(r, Ok(1), ":: with a link-local next hop is usable");
}

#[test]
fn ipv6_prefix_with_ipv4_next_hop_is_rejected() {
    let mut rib = Rib::new(config());
    rib.add_peer(ibgp(2));
    let r = rib.update(
        PeerId(2),
        &[pfx("2001:db8::/64")],
        Arc::new(attrs(&[], "10.0.0.2")),
        &mut Vec::new(),
    );
    assert_eq!(r, Err(RejectReason::NextHopFamily));
}

#[test]
fn unknown_peer_changes_nothing() {
    let mut rib = Rib::new(config());
    let r = rib.update(
        PeerId(9),
        &[pfx("192.168.0.0/26")],
        Arc::new(attrs(&[], "10.0.0.9")),
        &mut Vec::new(),
    );
    assert_eq!(r, Err(RejectReason::UnknownPeer(PeerId(9))));
    assert!(rib.is_empty());
}

// ---- Export ----

fn ctx() -> ExportContext {
    ExportContext {
        local_next_hop_v4: Some(ROUTER_ID),
        ..ExportContext::default()
    }
}

fn best(rib: &Rib, prefix: &str) -> bgp_core::rib::Path {
    rib.best(&net(prefix)).unwrap()
}

#[test]
fn path_is_never_sent_back_to_its_source() {
    let mut rib = Rib::new(config());
    let peer = ebgp(2, 65002);
    rib.add_peer(peer);
    announce(
        &mut rib,
        &peer,
        &["192.168.0.0/26"],
        attrs(&[65002], "10.0.0.2"),
    );
    let p = best(&rib, "192.168.0.0/26");
    assert_eq!(rib.export(peer.id, Family::Ipv4Unicast, &p, &ctx()), None);
}

#[test]
fn ibgp_path_is_not_sent_to_another_ibgp_peer_without_reflection() {
    let mut rib = Rib::new(config());
    rib.add_peer(ibgp(2));
    rib.add_peer(ibgp(3));
    rib.add_peer(ebgp(4, 65004));
    announce(
        &mut rib,
        &ibgp(2),
        &["192.168.0.0/26"],
        attrs(&[], "10.0.0.2"),
    );
    let p = best(&rib, "192.168.0.0/26");
    assert_eq!(rib.export(PeerId(3), Family::Ipv4Unicast, &p, &ctx()), None);
    assert!(
        rib.export(PeerId(4), Family::Ipv4Unicast, &p, &ctx())
            .is_some()
    );
}

fn reflector() -> Rib {
    let mut cfg = config();
    cfg.cluster_id = Some(ip("10.255.0.1"));
    let mut rib = Rib::new(cfg);
    rib.add_peer(ibgp(2).rr_client());
    rib.add_peer(ibgp(3).rr_client());
    rib.add_peer(ibgp(4));
    rib.add_peer(ibgp(5));
    rib
}

#[test]
fn reflector_sends_client_path_to_clients_and_non_clients() {
    let mut rib = reflector();
    announce(
        &mut rib,
        &ibgp(2),
        &["192.168.0.0/26"],
        attrs(&[], "10.0.0.2"),
    );
    let p = best(&rib, "192.168.0.0/26");
    for to in [3, 4, 5] {
        let out = rib
            .export(PeerId(to), Family::Ipv4Unicast, &p, &ctx())
            .unwrap_or_else(|| panic!("not reflected to {to}"));
        assert_eq!(out.originator_id, Some(ip("10.0.0.2")));
        assert_eq!(out.cluster_list, vec![ip("10.255.0.1")]);
        assert_eq!(
            out.next_hop,
            NextHop::V4(ip("10.0.0.2")),
            "next hop unchanged"
        );
        assert_eq!(out.local_pref, Some(100));
    }
}

#[test]
fn reflector_sends_non_client_path_only_to_clients() {
    let mut rib = reflector();
    announce(
        &mut rib,
        &ibgp(4),
        &["192.168.0.0/26"],
        attrs(&[], "10.0.0.4"),
    );
    let p = best(&rib, "192.168.0.0/26");
    assert!(
        rib.export(PeerId(2), Family::Ipv4Unicast, &p, &ctx())
            .is_some()
    );
    assert!(
        rib.export(PeerId(3), Family::Ipv4Unicast, &p, &ctx())
            .is_some()
    );
    assert_eq!(rib.export(PeerId(5), Family::Ipv4Unicast, &p, &ctx()), None);
}

#[test]
fn reflection_keeps_originator_id_and_prepends_cluster_id() {
    let mut rib = reflector();
    let mut a = attrs(&[], "10.0.0.9");
    a.originator_id = Some(ip("10.0.0.9"));
    a.cluster_list = vec![ip("10.255.0.2")];
    announce(&mut rib, &ibgp(2), &["192.168.0.0/26"], a);
    let p = best(&rib, "192.168.0.0/26");
    let out = rib
        .export(PeerId(4), Family::Ipv4Unicast, &p, &ctx())
        .unwrap();
    assert_eq!(out.originator_id, Some(ip("10.0.0.9")));
    assert_eq!(out.cluster_list, vec![ip("10.255.0.1"), ip("10.255.0.2")]);
}

#[test]
fn reflector_does_not_send_path_back_to_its_originator() {
    let mut rib = reflector();
    let mut a = attrs(&[], "10.0.0.3");
    a.originator_id = Some(ip("10.0.0.3"));
    announce(&mut rib, &ibgp(2), &["192.168.0.0/26"], a);
    let p = best(&rib, "192.168.0.0/26");
    assert_eq!(rib.export(PeerId(3), Family::Ipv4Unicast, &p, &ctx()), None);
}

#[test]
fn ebgp_export_prepends_our_as_and_sets_next_hop_self() {
    let mut rib = Rib::new(config());
    rib.add_peer(ibgp(2));
    rib.add_peer(ebgp(3, 65003));
    let mut a = attrs(&[65010], "10.0.0.2");
    a.local_pref = Some(300);
    a.med = Some(5);
    a.originator_id = Some(ip("10.0.0.9"));
    a.cluster_list = vec![ip("10.255.0.2")];
    announce(&mut rib, &ibgp(2), &["192.168.0.0/26"], a);
    let p = best(&rib, "192.168.0.0/26");
    let out = rib
        .export(PeerId(3), Family::Ipv4Unicast, &p, &ctx())
        .unwrap();
    assert_eq!(out.as_path, AsPath::sequence(vec![LOCAL_AS, 65010]));
    assert_eq!(out.next_hop, NextHop::V4(ROUTER_ID));
    assert_eq!(out.local_pref, None);
    assert_eq!(out.med, None, "a received MED does not cross to another AS");
    assert_eq!(out.originator_id, None);
    assert!(out.cluster_list.is_empty());
    // Without an address of ours for the family, nothing can be sent.
    let none = ExportContext::default();
    assert_eq!(rib.export(PeerId(3), Family::Ipv4Unicast, &p, &none), None);
}

#[test]
fn ebgp_export_of_local_route_keeps_our_med() {
    let mut rib = Rib::new(config());
    rib.add_peer(ebgp(3, 65003));
    let mut local = attrs(&[], "0.0.0.0");
    local.med = Some(7);
    rib.announce_local(net("192.168.0.0/26"), local, &mut Vec::new());
    let p = best(&rib, "192.168.0.0/26");
    let out = rib
        .export(PeerId(3), Family::Ipv4Unicast, &p, &ctx())
        .unwrap();
    assert_eq!(out.med, Some(7));
    assert_eq!(out.as_path, AsPath::sequence(vec![LOCAL_AS]));
}

#[test]
fn ibgp_export_sets_local_pref_and_keeps_next_hop_unless_next_hop_self() {
    let mut rib = Rib::new(config());
    rib.add_peer(ebgp(2, 65002));
    rib.add_peer(ibgp(3));
    announce(
        &mut rib,
        &ebgp(2, 65002),
        &["192.168.0.0/26"],
        attrs(&[65002], "10.0.0.2"),
    );
    let p = best(&rib, "192.168.0.0/26");
    let out = rib
        .export(PeerId(3), Family::Ipv4Unicast, &p, &ctx())
        .unwrap();
    assert_eq!(out.local_pref, Some(100));
    assert_eq!(out.next_hop, NextHop::V4(ip("10.0.0.2")));
    assert_eq!(
        out.as_path,
        AsPath::sequence(vec![65002]),
        "no prepend inside the AS"
    );
    let nhs = ExportContext {
        next_hop_self: true,
        ..ctx()
    };
    let out = rib
        .export(PeerId(3), Family::Ipv4Unicast, &p, &nhs)
        .unwrap();
    assert_eq!(out.next_hop, NextHop::V4(ROUTER_ID));
}

#[test]
fn local_route_with_unspecified_next_hop_gets_ours() {
    let mut rib = Rib::new(config());
    rib.add_peer(ibgp(3));
    let v6 = PathAttrs::new(
        Origin::Igp,
        AsPath::default(),
        NextHop::V6 {
            global: Ipv6Addr::UNSPECIFIED,
            link_local: None,
        },
    );
    rib.announce_local(net("2001:db8:1::/64"), v6, &mut Vec::new());
    let p = best(&rib, "2001:db8:1::/64");
    let c = ExportContext {
        local_next_hop_v6: Some("2001:db8::1".parse().unwrap()),
        ..ctx()
    };
    let out = rib.export(PeerId(3), Family::Ipv6Unicast, &p, &c).unwrap();
    assert_eq!(
        out.next_hop,
        NextHop::V6 {
            global: "2001:db8::1".parse().unwrap(),
            link_local: None
        }
    );
}

#[test]
fn no_export_community_is_not_sent_to_ebgp() {
    let mut rib = Rib::new(config());
    rib.add_peer(ibgp(2));
    rib.add_peer(ibgp(3));
    rib.add_peer(ebgp(4, 65004));
    let mut a = attrs(&[], "10.0.0.2");
    a.communities = vec![NO_EXPORT];
    rib.announce_local(net("192.168.0.0/26"), a, &mut Vec::new());
    let p = best(&rib, "192.168.0.0/26");
    assert_eq!(rib.export(PeerId(4), Family::Ipv4Unicast, &p, &ctx()), None);
    assert!(
        rib.export(PeerId(3), Family::Ipv4Unicast, &p, &ctx())
            .is_some()
    );
}

fn unknown_attr() -> PathAttribute {
    PathAttribute {
        flags: attr_flags::OPTIONAL | attr_flags::TRANSITIVE,
        value: AttrValue::Opaque {
            code: 250,
            value: vec![1, 2, 3],
        },
    }
}

#[test]
fn unknown_attribute_from_ebgp_is_not_forwarded_into_ibgp_by_default() {
    for forward in [false, true] {
        let mut cfg = config();
        cfg.forward_unknown_from_ebgp = forward;
        let mut rib = Rib::new(cfg);
        rib.add_peer(ebgp(2, 65002));
        rib.add_peer(ibgp(3));
        rib.add_peer(ebgp(4, 65004));
        let mut a = attrs(&[65002], "10.0.0.2");
        a.other.push(unknown_attr());
        announce(&mut rib, &ebgp(2, 65002), &["192.168.0.0/26"], a);
        let p = best(&rib, "192.168.0.0/26");
        let to_ibgp = rib
            .export(PeerId(3), Family::Ipv4Unicast, &p, &ctx())
            .unwrap();
        if forward {
            assert_eq!(to_ibgp.other.len(), 1);
            assert_ne!(
                to_ibgp.other[0].flags & attr_flags::PARTIAL,
                0,
                "Partial set"
            );
        } else {
            assert!(to_ibgp.other.is_empty());
        }
        // eBGP to eBGP passes it on with the Partial bit (RFC 4271 §5).
        let to_ebgp = rib
            .export(PeerId(4), Family::Ipv4Unicast, &p, &ctx())
            .unwrap();
        assert_eq!(to_ebgp.other.len(), 1);
        assert_ne!(to_ebgp.other[0].flags & attr_flags::PARTIAL, 0);
    }
}

// ---- Adj-RIB-Out ----

#[test]
fn adj_rib_out_withdraws_only_what_it_announced() {
    let mut rib = Rib::new(config());
    rib.add_peer(ibgp(2));
    rib.add_peer(ibgp(3));
    rib.add_peer(ebgp(4, 65004));
    let mut to_ibgp = AdjRibOut::new(PeerId(3), ctx());
    let mut to_ebgp = AdjRibOut::new(PeerId(4), ctx());
    let changes = announce(
        &mut rib,
        &ibgp(2),
        &["192.168.0.0/26"],
        attrs(&[], "10.0.0.2"),
    );
    assert_eq!(to_ibgp.apply(&rib, &changes[0]), None, "split horizon");
    let Some(OutChange::Announce(p, a)) = to_ebgp.apply(&rib, &changes[0]) else {
        panic!("eBGP peer gets the route");
    };
    assert_eq!(p, net("192.168.0.0/26"));
    assert_eq!(a.as_path, AsPath::sequence(vec![LOCAL_AS]));
    let mut gone = Vec::new();
    rib.withdraw(PeerId(2), &[pfx("192.168.0.0/26")], &mut gone);
    assert_eq!(to_ibgp.apply(&rib, &gone[0]), None, "never announced");
    assert_eq!(
        to_ebgp.apply(&rib, &gone[0]),
        Some(OutChange::Withdraw(net("192.168.0.0/26")))
    );
    assert!(to_ebgp.is_empty());
}

#[test]
fn adj_rib_out_suppresses_unchanged_announcements_and_shares_attributes() {
    let mut rib = Rib::new(config());
    rib.add_peer(ebgp(2, 65002));
    rib.add_peer(ibgp(3));
    let mut out = AdjRibOut::new(PeerId(3), ctx());
    let changes = announce(
        &mut rib,
        &ebgp(2, 65002),
        &["192.168.0.0/26", "192.168.0.64/26"],
        attrs(&[65002], "10.0.0.2"),
    );
    let sent: Vec<_> = changes.iter().filter_map(|c| out.apply(&rib, c)).collect();
    let [OutChange::Announce(_, a), OutChange::Announce(_, b)] = sent.as_slice() else {
        panic!("two announcements: {sent:?}");
    };
    assert!(Arc::ptr_eq(a, b), "one exported set for both prefixes");
    // The peer's MED changes: the exported attributes to iBGP change too.
    let mut med = attrs(&[65002], "10.0.0.2");
    med.med = Some(1);
    let changes = announce(&mut rib, &ebgp(2, 65002), &["192.168.0.0/26"], med);
    assert!(matches!(
        out.apply(&rib, &changes[0]),
        Some(OutChange::Announce(..))
    ));
    // Applying the same change again sends nothing.
    assert_eq!(out.apply(&rib, &changes[0]), None);
}

#[test]
fn adj_rib_out_sync_announces_missing_and_withdraws_filtered() {
    let mut rib = Rib::new(config());
    rib.add_peer(ebgp(2, 65002));
    rib.add_peer(ebgp(3, 65003));
    announce(
        &mut rib,
        &ebgp(2, 65002),
        &["192.168.0.0/26", "192.168.1.0/26"],
        attrs(&[65002], "10.0.0.2"),
    );
    let mut out = AdjRibOut::new(PeerId(3), ctx());
    let mut sent = Vec::new();
    out.sync(&rib, |_| true, &mut sent);
    assert_eq!(sent.len(), 2);
    assert_eq!(out.len(), 2);
    sent.clear();
    let keep = net("192.168.0.0/26");
    out.sync(&rib, |p| *p == keep, &mut sent);
    assert_eq!(sent, vec![OutChange::Withdraw(net("192.168.1.0/26"))]);
    assert!(out.advertised(&keep).is_some());
}

// ---- Graceful restart, helper side ----

#[test]
fn mark_stale_then_sweep_removes_unrefreshed_paths() {
    let mut rib = Rib::new(config());
    let peer = ebgp(2, 65002);
    rib.add_peer(peer);
    announce(
        &mut rib,
        &peer,
        &["192.168.0.0/26", "192.168.0.64/26", "192.168.0.128/26"],
        attrs(&[65002], "10.0.0.2"),
    );
    let mut changes = Vec::new();
    assert_eq!(
        rib.mark_stale(peer.id, Family::Ipv4Unicast, &mut changes),
        3
    );
    assert_eq!(changes.len(), 3);
    assert!(changes.iter().all(|c| c.new.as_ref().unwrap().stale));
    // Marking again changes nothing; other families are untouched.
    changes.clear();
    assert_eq!(
        rib.mark_stale(peer.id, Family::Ipv4Unicast, &mut changes),
        0
    );
    assert!(changes.is_empty());
    // The restarted peer re-announces one prefix: no longer stale.
    let c = announce(
        &mut rib,
        &peer,
        &["192.168.0.64/26"],
        attrs(&[65002], "10.0.0.2"),
    );
    assert_eq!(c.len(), 1);
    assert!(!c[0].new.as_ref().unwrap().stale);
    // End-of-RIB: the other two go.
    changes.clear();
    assert_eq!(
        rib.sweep_stale(peer.id, Family::Ipv4Unicast, &mut changes),
        2
    );
    assert_eq!(changes.len(), 2);
    assert!(changes.iter().all(|c| c.new.is_none()));
    assert_eq!(rib.len(), 1);
    assert_eq!(rib.received(peer.id, Family::Ipv4Unicast), 1);
    assert!(!best(&rib, "192.168.0.64/26").stale);
}

#[test]
fn sweep_stale_falls_back_to_another_peer() {
    let mut rib = Rib::new(config());
    rib.add_peer(ibgp(2));
    rib.add_peer(ibgp(3));
    let mut pref = attrs(&[], "10.0.0.2");
    pref.local_pref = Some(200);
    announce(&mut rib, &ibgp(2), &["192.168.0.0/26"], pref);
    announce(
        &mut rib,
        &ibgp(3),
        &["192.168.0.0/26"],
        attrs(&[], "10.0.0.3"),
    );
    rib.mark_stale(PeerId(2), Family::Ipv4Unicast, &mut Vec::new());
    let mut changes = Vec::new();
    rib.sweep_stale(PeerId(2), Family::Ipv4Unicast, &mut changes);
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].new.as_ref().unwrap().peer, PeerId(3));
    assert_eq!(rib.paths(&net("192.168.0.0/26")).len(), 1);
}

// ---- Attributes from and to the wire ----

#[test]
fn from_update_reads_ipv4_nlri_attributes() {
    let update = Update {
        withdrawn: vec![],
        attributes: vec![
            PathAttribute::new(AttrValue::Origin(Origin::Egp)),
            PathAttribute::new(AttrValue::AsPath(AsPath::sequence(vec![65002, 65010]))),
            PathAttribute::new(AttrValue::NextHop(ip("10.0.0.2"))),
            PathAttribute::new(AttrValue::MultiExitDisc(3)),
            PathAttribute::new(AttrValue::Communities(vec![0xfde8_0001])),
            unknown_attr(),
        ],
        nlri: vec![pfx("192.168.0.0/26")],
    };
    let a = PathAttrs::from_update(&update, Family::Ipv4Unicast).unwrap();
    assert_eq!(a.origin, Origin::Egp);
    assert_eq!(a.next_hop, NextHop::V4(ip("10.0.0.2")));
    assert_eq!(a.med, Some(3));
    assert_eq!(a.communities, vec![0xfde8_0001]);
    assert_eq!(a.other, vec![unknown_attr()]);
    // And back: ascending type codes, the same attributes.
    let back = a.to_attributes(Family::Ipv4Unicast, true);
    let codes: Vec<u8> = back.iter().map(PathAttribute::code).collect();
    assert_eq!(codes, vec![1, 2, 3, 4, 8, 250]);
    assert_eq!(back, update.attributes);
    // No IPv6 next hop in this UPDATE.
    assert_eq!(PathAttrs::from_update(&update, Family::Ipv6Unicast), None);
}

#[test]
fn from_update_takes_ipv6_next_hop_from_mp_reach() {
    let global: Ipv6Addr = "2001:db8::2".parse().unwrap();
    let ll: Ipv6Addr = "fe80::2".parse().unwrap();
    let update = Update {
        attributes: vec![
            PathAttribute::new(AttrValue::Origin(Origin::Igp)),
            PathAttribute::new(AttrValue::AsPath(AsPath::default())),
            PathAttribute::new(AttrValue::MpReach(MpReach {
                afi: 2,
                safi: 1,
                next_hop: bgp_core::wire::NextHop::Ipv6 {
                    global,
                    link_local: Some(ll),
                },
                nlri: MpNlri::Unicast(vec![pfx("2001:db8:1::/64")]),
            })),
            PathAttribute::new(AttrValue::LocalPref(150)),
        ],
        ..Update::default()
    };
    let a = PathAttrs::from_update(&update, Family::Ipv6Unicast).unwrap();
    assert_eq!(
        a.next_hop,
        NextHop::V6 {
            global,
            link_local: Some(ll)
        }
    );
    assert_eq!(a.local_pref, Some(150));
    // MP_REACH is the UPDATE builder's: not among the attributes.
    let back = a.to_attributes(Family::Ipv6Unicast, true);
    assert!(back.iter().all(|x| x.code() != 14 && x.code() != 3));
}

#[test]
fn from_update_merges_as4_path_from_two_octet_session() {
    // RFC 6793 §4.2.3: AS_PATH [65001, AS_TRANS, AS_TRANS], AS4_PATH
    // [400000, 400001] → [65001, 400000, 400001].
    let update = Update {
        attributes: vec![
            PathAttribute::new(AttrValue::Origin(Origin::Igp)),
            PathAttribute::new(AttrValue::AsPath(AsPath::sequence(vec![
                65001, 23456, 23456,
            ]))),
            PathAttribute::new(AttrValue::NextHop(ip("10.0.0.2"))),
            PathAttribute::new(AttrValue::As4Path(AsPath::sequence(vec![400_000, 400_001]))),
        ],
        nlri: vec![pfx("192.168.0.0/26")],
        ..Update::default()
    };
    let a = PathAttrs::from_update(&update, Family::Ipv4Unicast).unwrap();
    assert_eq!(
        a.as_path.segments.concat_asns(),
        vec![65001, 400_000, 400_001]
    );
    // To a 2-octet peer the 4-octet numbers travel in AS4_PATH.
    let back = a.to_attributes(Family::Ipv4Unicast, false);
    assert!(back.iter().any(|x| x.code() == 17));
    let msg = Message::Update(Update {
        attributes: back,
        nlri: vec![pfx("192.168.0.0/26")],
        ..Update::default()
    });
    assert!(msg.to_bytes(&DecodeContext::default()).is_ok());
}

trait ConcatAsns {
    fn concat_asns(&self) -> Vec<u32>;
}

impl ConcatAsns for Vec<Segment> {
    fn concat_asns(&self) -> Vec<u32> {
        self.iter().flat_map(|s| s.asns.iter().copied()).collect()
    }
}

// ---- Scale (no timing: benchmarks are separate) ----

/// `n` distinct /26 prefixes from 10.0.0.0 up.
fn slash26(n: u32) -> Vec<Prefix> {
    (0..n)
        .map(|i| {
            let addr = Ipv4Addr::from(0x0a00_0000u32 + (i << 6));
            Prefix::new(IpNetwork::V4(
                ipnetwork::Ipv4Network::new(addr, 26).unwrap(),
            ))
        })
        .collect()
}

#[test]
fn million_routes_with_one_attribute_set_share_one_allocation() {
    let mut rib = Rib::new(config());
    let peer = ebgp(2, 65002);
    rib.add_peer(peer);
    let shared = Arc::new(attrs(&[65002], "10.0.0.2"));
    let prefixes = slash26(1_000_000);
    let mut changes = Vec::with_capacity(1000);
    for chunk in prefixes.chunks(800) {
        // Each UPDATE decodes to its own, equal, attribute set.
        let a = Arc::new((*shared).clone());
        rib.update(peer.id, chunk, a, &mut changes).unwrap();
        assert_eq!(changes.len(), chunk.len());
        changes.clear();
    }
    assert_eq!(rib.len(), 1_000_000);
    assert_eq!(rib.received(peer.id, Family::Ipv4Unicast), 1_000_000);
    assert_eq!(rib.attr_sets(), 1);
    let a = rib.best(&prefixes[0].network).unwrap().attrs;
    let b = rib.best(&prefixes[999_999].network).unwrap().attrs;
    assert!(Arc::ptr_eq(&a, &b));
}

#[test]
fn removing_a_peer_with_100k_routes_leaves_the_rib_empty() {
    let mut rib = Rib::new(config());
    rib.add_peer(ibgp(2));
    rib.add_peer(ibgp(3));
    let prefixes = slash26(100_000);
    let mut changes = Vec::new();
    rib.update(
        PeerId(2),
        &prefixes,
        Arc::new(attrs(&[], "10.0.0.2")),
        &mut changes,
    )
    .unwrap();
    // A second peer shares the first thousand prefixes.
    rib.update(
        PeerId(3),
        &prefixes[..1000],
        Arc::new(attrs(&[], "10.0.0.3")),
        &mut changes,
    )
    .unwrap();
    changes.clear();
    assert!(rib.remove_peer(PeerId(2), &mut changes));
    assert_eq!(changes.len(), 100_000);
    assert_eq!(changes.iter().filter(|c| c.new.is_some()).count(), 1000);
    assert_eq!(rib.len(), 1000);
    changes.clear();
    assert!(rib.remove_peer(PeerId(3), &mut changes));
    assert_eq!(changes.len(), 1000);
    assert!(rib.is_empty());
    assert_eq!(rib.iter_best().count(), 0);
    assert_eq!(rib.attr_sets(), 0);
    assert!(!rib.remove_peer(PeerId(2), &mut changes));
    // The id can be registered again and starts from zero.
    assert!(rib.add_peer(ibgp(2)));
    assert_eq!(rib.received(PeerId(2), Family::Ipv4Unicast), 0);
}

#[test]
fn iter_best_lists_each_prefix_once() {
    let mut rib = Rib::new(config());
    rib.add_peer(ibgp(2));
    rib.add_peer(ibgp(3));
    announce(
        &mut rib,
        &ibgp(2),
        &["192.168.0.0/26", "10.0.0.0/8"],
        attrs(&[], "10.0.0.2"),
    );
    announce(
        &mut rib,
        &ibgp(3),
        &["192.168.0.0/26"],
        attrs(&[], "10.0.0.3"),
    );
    let mut all: Vec<(IpNetwork, PeerId)> = rib.iter_best().map(|(n, p)| (n, p.peer)).collect();
    all.sort();
    assert_eq!(
        all,
        vec![
            (net("10.0.0.0/8"), PeerId(2)),
            (net("192.168.0.0/26"), PeerId(2))
        ]
    );
}

#[test]
fn mark_stale_touches_only_the_given_family() {
    let mut rib = Rib::new(config());
    rib.add_peer(ibgp(2));
    announce(
        &mut rib,
        &ibgp(2),
        &["192.168.0.0/26"],
        attrs(&[], "10.0.0.2"),
    );
    let v6 = PathAttrs::new(
        Origin::Igp,
        AsPath::default(),
        NextHop::V6 {
            global: "2001:db8::2".parse().unwrap(),
            link_local: None,
        },
    );
    announce(&mut rib, &ibgp(2), &["2001:db8:1::/64"], v6);
    let mut changes = Vec::new();
    assert_eq!(
        rib.mark_stale(PeerId(2), Family::Ipv6Unicast, &mut changes),
        1
    );
    assert_eq!(changes[0].prefix, net("2001:db8:1::/64"));
    assert!(!best(&rib, "192.168.0.0/26").stale);
    rib.sweep_stale(PeerId(2), Family::Ipv6Unicast, &mut changes);
    assert_eq!(rib.received(PeerId(2), Family::Ipv6Unicast), 0);
    assert_eq!(rib.received(PeerId(2), Family::Ipv4Unicast), 1);
}

#[test]
fn adj_rib_out_apply_all_filters_by_export_policy() {
    let mut rib = Rib::new(config());
    rib.add_peer(ebgp(2, 65002));
    rib.add_peer(ebgp(3, 65003));
    let changes = announce(
        &mut rib,
        &ebgp(2, 65002),
        &["192.168.0.0/26", "192.168.0.64/26", "172.16.0.0/24"],
        attrs(&[65002], "10.0.0.2"),
    );
    let mut out = AdjRibOut::new(PeerId(3), ctx());
    let mut sent = Vec::new();
    let pods = net("192.168.0.0/16");
    let allow = |p: &IpNetwork| pods.contains(p.network()) && p.prefix() >= 16;
    out.apply_all(&rib, &changes, allow, &mut sent);
    assert_eq!(sent.len(), 2);
    assert!(
        sent.iter()
            .all(|c| matches!(c, OutChange::Announce(p, _) if pods.contains(p.network())))
    );
    // The same batch again: nothing new to send.
    sent.clear();
    out.apply_all(&rib, &changes, allow, &mut sent);
    assert!(sent.is_empty());
    // Policy tightens: what it now rejects is withdrawn.
    out.apply_all(&rib, &changes, |_| false, &mut sent);
    assert_eq!(sent.len(), 2);
    assert!(sent.iter().all(|c| matches!(c, OutChange::Withdraw(_))));
    assert!(out.is_empty());
}

mod model {
    //! Random operation sequences against invariants: the stream of
    //! changes reproduces the RIB's best paths (what a FIB relies on), the
    //! best path does not depend on arrival order, counts and interned sets
    //! match what is stored, and an Adj-RIB-Out fed the changes equals one
    //! built from scratch.

    use std::collections::{BTreeMap, BTreeSet};

    use proptest::prelude::*;

    use super::*;

    #[derive(Clone, Debug)]
    enum Op {
        Announce {
            peer: u8,
            prefix: u8,
            path_id: u32,
            variant: u8,
        },
        Withdraw {
            peer: u8,
            prefix: u8,
            path_id: u32,
        },
        MarkStale {
            peer: u8,
        },
        SweepStale {
            peer: u8,
        },
        Reset {
            peer: u8,
        },
    }

    fn op() -> impl Strategy<Value = Op> {
        let peer = 2u8..6;
        let prefix = 0u8..6;
        let path_id = 0u32..2;
        prop_oneof![
            6 => (peer.clone(), prefix.clone(), path_id.clone(), 0u8..6).prop_map(
                |(peer, prefix, path_id, variant)| Op::Announce { peer, prefix, path_id, variant }
            ),
            3 => (peer.clone(), prefix, path_id).prop_map(|(peer, prefix, path_id)| Op::Withdraw {
                peer,
                prefix,
                path_id
            }),
            1 => peer.clone().prop_map(|peer| Op::MarkStale { peer }),
            1 => peer.clone().prop_map(|peer| Op::SweepStale { peer }),
            1 => peer.prop_map(|peer| Op::Reset { peer }),
        ]
    }

    /// Peers 2 and 3 are iBGP, 4 and 5 eBGP in two ASes.
    fn peer(n: u8) -> PeerInfo {
        match n {
            2 | 3 => ibgp(n),
            4 => ebgp(4, 65004),
            _ => ebgp(n, 65005),
        }
    }

    fn prefix(i: u8) -> Prefix {
        pfx([
            "10.0.0.0/26",
            "10.0.0.64/26",
            "10.0.1.0/24",
            "2001:db8::/64",
            "2001:db8:1::/64",
            "0.0.0.0/0",
        ][usize::from(i)])
    }

    fn variant(p: &PeerInfo, prefix: &Prefix, v: u8) -> PathAttrs {
        let n = match p.address {
            IpAddr::V4(a) => a.octets()[3],
            IpAddr::V6(_) => 1,
        };
        let hop = match prefix.network {
            IpNetwork::V4(_) => NextHop::V4(Ipv4Addr::new(10, 0, 0, n)),
            IpNetwork::V6(_) => NextHop::V6 {
                global: Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, u16::from(n)),
                link_local: None,
            },
        };
        let path = if p.ibgp {
            vec![65010; usize::from(v % 2)]
        } else {
            vec![p.asn; 1 + usize::from(v % 2)]
        };
        let mut a = PathAttrs::new(Origin::Igp, AsPath::sequence(path), hop);
        a.med = (v % 3 == 1).then_some(u32::from(v));
        a.local_pref = (p.ibgp && v == 5).then_some(200);
        a
    }

    type Fib = BTreeMap<IpNetwork, (PeerId, u32, NextHop, bool)>;

    fn apply(fib: &mut Fib, changes: &[BestChange]) {
        for c in changes {
            match &c.new {
                Some(p) => fib.insert(c.prefix, (p.peer, p.path_id, p.attrs.next_hop, p.stale)),
                None => fib.remove(&c.prefix),
            };
        }
    }

    fn snapshot(rib: &Rib) -> Fib {
        rib.iter_best()
            .map(|(n, p)| (n, (p.peer, p.path_id, p.attrs.next_hop, p.stale)))
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn change_stream_and_order_independence(ops in proptest::collection::vec(op(), 1..60)) {
            let mut rib = Rib::new(config());
            for n in 2..6 {
                rib.add_peer(peer(n));
            }
            let mut fib = Fib::new();
            let mut out = AdjRibOut::new(PeerId(4), ctx());
            let mut sent: BTreeMap<IpNetwork, Arc<PathAttrs>> = BTreeMap::new();
            for op in &ops {
                let mut changes = Vec::new();
                match *op {
                    Op::Announce { peer: n, prefix: i, path_id, variant: v } => {
                        let p = prefix(i);
                        let a = variant(&peer(n), &p, v);
                        let with_id = Prefix { path_id: Some(path_id), ..p };
                        // eBGP paths are accepted: AS paths never hold 65000.
                        rib.update(PeerId(u32::from(n)), &[with_id], Arc::new(a), &mut changes).unwrap();
                    }
                    Op::Withdraw { peer: n, prefix: i, path_id } => {
                        let with_id = Prefix { path_id: Some(path_id), ..prefix(i) };
                        rib.withdraw(PeerId(u32::from(n)), &[with_id], &mut changes);
                    }
                    Op::MarkStale { peer: n } => {
                        for f in [Family::Ipv4Unicast, Family::Ipv6Unicast] {
                            rib.mark_stale(PeerId(u32::from(n)), f, &mut changes);
                        }
                    }
                    Op::SweepStale { peer: n } => {
                        for f in [Family::Ipv4Unicast, Family::Ipv6Unicast] {
                            rib.sweep_stale(PeerId(u32::from(n)), f, &mut changes);
                        }
                    }
                    Op::Reset { peer: n } => {
                        rib.remove_peer(PeerId(u32::from(n)), &mut changes);
                        rib.add_peer(peer(n));
                    }
                }
                // Each change is a real change, at most one per prefix.
                let prefixes: BTreeSet<_> = changes.iter().map(|c| c.prefix).collect();
                prop_assert_eq!(prefixes.len(), changes.len());
                apply(&mut fib, &changes);
                prop_assert_eq!(&fib, &snapshot(&rib));
                for c in &changes {
                    match out.apply(&rib, c) {
                        Some(OutChange::Announce(p, a)) => { sent.insert(p, a); }
                        Some(OutChange::Withdraw(p)) => {
                            prop_assert!(sent.remove(&p).is_some(), "withdrawal of unsent {}", p);
                        }
                        None => {}
                    }
                }
            }
            // Counts and interned sets match the stored paths.
            let mut sets = BTreeSet::new();
            let mut total = 0;
            for (n, _) in rib.iter_best() {
                for p in rib.paths(&n) {
                    sets.insert(format!("{:?}", p.attrs));
                    total += 1;
                }
            }
            prop_assert_eq!(rib.attr_sets(), sets.len());
            let counted: usize = (2..6)
                .flat_map(|n| [Family::Ipv4Unicast, Family::Ipv6Unicast].map(|f| rib.received(PeerId(n), f)))
                .sum();
            prop_assert_eq!(counted, total);
            // Rebuilding from the stored paths in reverse order, stale flags
            // included, picks the same best paths.
            let mut again = Rib::new(config());
            for n in 2..6 {
                again.add_peer(peer(n));
            }
            let mut stale = BTreeSet::new();
            for (n, _) in rib.iter_best() {
                for p in rib.paths(&n).into_iter().rev() {
                    let with_id = Prefix { path_id: Some(p.path_id), network: n };
                    again.update(p.peer, &[with_id], p.attrs.clone(), &mut Vec::new()).unwrap();
                    if p.stale {
                        stale.insert(p.peer);
                    }
                }
            }
            // Marking whole peers stale is only equivalent when all of a
            // peer's paths are stale; skip the comparison otherwise.
            let uniform = (2..6).all(|n| {
                let flags: BTreeSet<bool> = rib
                    .iter_best()
                    .flat_map(|(net, _)| rib.paths(&net))
                    .filter(|p| p.peer == PeerId(n))
                    .map(|p| p.stale)
                    .collect();
                flags.len() <= 1
            });
            if uniform {
                for p in stale {
                    for f in [Family::Ipv4Unicast, Family::Ipv6Unicast] {
                        again.mark_stale(p, f, &mut Vec::new());
                    }
                }
                prop_assert_eq!(snapshot(&again), snapshot(&rib));
            }
            // The Adj-RIB-Out fed changes equals one synced from scratch.
            let mut fresh = AdjRibOut::new(PeerId(4), ctx());
            let mut from_scratch = Vec::new();
            fresh.sync(&rib, |_| true, &mut from_scratch);
            let expected: BTreeMap<IpNetwork, PathAttrs> = fresh.iter().map(|(n, a)| (n, (*a).clone())).collect();
            let got: BTreeMap<IpNetwork, PathAttrs> = sent.iter().map(|(n, a)| (*n, (**a).clone())).collect();
            prop_assert_eq!(got, expected);
            prop_assert_eq!(out.len(), sent.len());
        }
    }
}
