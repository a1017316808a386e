//! The speaker engine without I/O, on a virtual clock: graceful restart,
//! maximum-prefix restarts, End-of-RIB, reflection through update groups
//! and dynamic neighbours. Session events are fed in as a peer task would
//! report them; what peers are sent is read from their outboxes and
//! decoded, and checked against a per-peer Adj-RIB-Out computed from
//! scratch (the rules of `rib/export.rs`).

#[path = "engine/harness.rs"]
mod harness;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use bgp_core::engine::{Action, Control};
use bgp_core::policy::{MaxPrefix, MaxPrefixAction};
use bgp_core::rib::PeerId;
use bgp_core::session::{DownReason, SessionEvent};
use bgp_core::speaker::{LocalRoute, NeighborRange, RouteChange, SpeakerConfig};
use bgp_core::wire::iana::refresh_subtype;
use bgp_core::wire::{Family, RouteRefresh, Update};
use bytes::Bytes;
use harness::*;
use proptest::prelude::*;

// ---- graceful restart, End-of-RIB, max-prefix: virtual clock ----

#[test]
fn graceful_restart_keeps_routes_stale_until_the_restart_time_runs_out() {
    let mut h = Harness::new(config(&[(2, false)]));
    h.establish(PeerId(0), peer_ip(2), Some(gr(120)));
    h.announce(PeerId(0), &["10.244.1.0/26"], peer_ip(2));
    assert!(is_best(h.best("10.244.1.0/26"), false));

    h.down(PeerId(0), DownReason::ConnectionClosed);
    assert!(is_best(h.best("10.244.1.0/26"), true), "route kept, stale");
    assert_eq!(
        h.engine.poll_timeout(),
        Some(h.now + Duration::from_secs(120))
    );

    h.advance(Duration::from_secs(119));
    assert!(
        is_best(h.best("10.244.1.0/26"), true),
        "still there at 119 s"
    );
    h.advance(Duration::from_secs(1));
    assert_eq!(
        h.best("10.244.1.0/26"),
        Some(RouteChange::Withdrawn(net("10.244.1.0/26")))
    );
    assert_eq!(h.engine.poll_timeout(), None);
}

#[test]
fn end_of_rib_after_a_restart_removes_only_the_routes_not_refreshed() {
    let mut h = Harness::new(config(&[(2, false)]));
    h.establish(PeerId(0), peer_ip(2), Some(gr(120)));
    h.announce(PeerId(0), &["10.244.1.0/26", "10.244.2.0/26"], peer_ip(2));
    h.down(PeerId(0), DownReason::ConnectionClosed);
    h.advance(Duration::from_secs(30));

    h.establish(PeerId(0), peer_ip(2), Some(gr(120)));
    h.announce(PeerId(0), &["10.244.1.0/26"], peer_ip(2));
    assert!(is_best(h.best("10.244.1.0/26"), false), "refreshed");
    assert!(is_best(h.best("10.244.2.0/26"), true), "still stale");
    h.update(PeerId(0), Update::end_of_rib_marker(Family::Ipv4Unicast));
    assert_eq!(
        h.best("10.244.2.0/26"),
        Some(RouteChange::Withdrawn(net("10.244.2.0/26")))
    );
    assert!(is_best(h.best("10.244.1.0/26"), false));
    assert!(h.routes.contains(&RouteChange::EndOfRib {
        peer: IpAddr::V4(peer_ip(2)),
        family: Family::Ipv4Unicast
    }));
    assert_eq!(h.engine.poll_timeout(), None, "restart timer stopped");
}

#[test]
fn session_down_without_graceful_restart_withdraws_at_once() {
    let mut h = Harness::new(config(&[(2, false)]));
    h.establish(PeerId(0), peer_ip(2), None);
    h.announce(PeerId(0), &["10.244.1.0/26"], peer_ip(2));
    h.down(PeerId(0), DownReason::ConnectionClosed);
    assert_eq!(
        h.best("10.244.1.0/26"),
        Some(RouteChange::Withdrawn(net("10.244.1.0/26")))
    );
}

#[test]
fn graceful_restart_does_not_apply_after_a_notification_received() {
    let mut h = Harness::new(config(&[(2, false)]));
    h.establish(PeerId(0), peer_ip(2), Some(gr(120)));
    h.announce(PeerId(0), &["10.244.1.0/26"], peer_ip(2));
    let cease = bgp_core::wire::Notification::admin_shutdown("bye");
    h.down(PeerId(0), DownReason::NotificationReceived(cease));
    assert_eq!(
        h.best("10.244.1.0/26"),
        Some(RouteChange::Withdrawn(net("10.244.1.0/26")))
    );
}

#[test]
fn max_prefix_cease_stops_the_session_and_starts_it_after_restart_after() {
    let mut c = config(&[(2, false)]);
    let mut limit = MaxPrefix::new(2, MaxPrefixAction::Cease);
    limit.restart_after = Some(30);
    c.peers[0].max_prefixes = Some(limit);
    let mut h = Harness::new(c);
    h.controls.clear();
    h.establish(PeerId(0), peer_ip(2), None);
    h.announce(
        PeerId(0),
        &["10.244.1.0/26", "10.244.2.0/26", "10.244.3.0/26"],
        peer_ip(2),
    );
    assert!(
        matches!(h.controls.as_slice(), [(PeerId(0), Control::Stop(n))] if n.code == 6 && n.subcode == 1)
    );
    h.controls.clear();
    h.down(
        PeerId(0),
        DownReason::NotificationSent(bgp_core::wire::Notification::max_prefixes_reached(
            Family::Ipv4Unicast,
            2,
        )),
    );
    h.advance(Duration::from_secs(29));
    assert!(h.controls.is_empty(), "not restarted before 30 s");
    h.advance(Duration::from_secs(1));
    assert_eq!(h.controls, vec![(PeerId(0), Control::Start)]);
}

#[test]
fn max_prefix_without_restart_after_stays_down() {
    let mut c = config(&[(2, false)]);
    c.peers[0].max_prefixes = Some(MaxPrefix::new(1, MaxPrefixAction::Cease));
    let mut h = Harness::new(c);
    h.controls.clear();
    h.establish(PeerId(0), peer_ip(2), None);
    h.announce(PeerId(0), &["10.244.1.0/26", "10.244.2.0/26"], peer_ip(2));
    assert_eq!(h.controls.len(), 1);
    assert_eq!(h.engine.poll_timeout(), None);
}

/// A peer (10.0.0.2) limited to `limit` prefixes with Cease, and a client
/// (10.0.0.3) that would be sent what it announces; both established.
fn limited(limit: u32) -> Harness {
    let mut c = config(&[(2, false), (3, true)]);
    c.peers[0].max_prefixes = Some(MaxPrefix::new(limit, MaxPrefixAction::Cease));
    let mut h = Harness::new(c);
    h.establish(PeerId(0), peer_ip(2), None);
    h.establish(PeerId(1), peer_ip(3), None);
    h.controls.clear();
    h
}

fn blocks(range: std::ops::Range<u32>) -> Vec<String> {
    range
        .map(|i| format!("10.{}.{}.0/26", 200 + i / 256, i % 256))
        .collect()
}

#[test]
fn a_peer_at_its_max_prefix_limit_cannot_push_one_more_prefix_into_the_rib() {
    let mut h = limited(2);
    h.announce(PeerId(0), &["10.244.1.0/26", "10.244.2.0/26"], peer_ip(2));
    assert_eq!(h.engine.rib().received(PeerId(0), Family::Ipv4Unicast), 2);
    // Announcing a held prefix again replaces its path: not one more.
    h.announce(PeerId(0), &["10.244.1.0/26"], peer_ip(2));
    assert!(h.controls.is_empty(), "at the limit is not over it");
    h.drain(PeerId(1));

    let seen = h.routes.len();
    h.announce(PeerId(0), &["10.244.3.0/26"], peer_ip(2));
    assert!(
        h.engine.rib().received(PeerId(0), Family::Ipv4Unicast) <= 2,
        "the RIB took the prefix over the limit"
    );
    assert!(h.engine.rib().best(&net("10.244.3.0/26")).is_none());
    assert!(
        !h.routes[seen..]
            .iter()
            .any(|c| c.prefix() == Some(net("10.244.3.0/26"))),
        "the prefix over the limit reached the route stream"
    );
    assert!(
        !h.drain(PeerId(1)).contains_key(&net("10.244.3.0/26")),
        "the prefix over the limit was propagated"
    );
    assert!(
        matches!(h.controls.as_slice(), [(PeerId(0), Control::Stop(n))] if n.code == 6 && n.subcode == 1),
        "{:?}",
        h.controls
    );
}

#[test]
fn a_flood_over_the_max_prefix_limit_never_enters_the_rib_nor_reaches_other_peers() {
    let mut h = limited(100);
    let flood = blocks(0..1_000);
    let flood: Vec<&str> = flood.iter().map(String::as_str).collect();
    // The flood as one UPDATE, then in UPDATEs of 64 as a real peer sends
    // them: the RIB never holds more than the limit from the peer.
    h.announce(PeerId(0), &flood, peer_ip(2));
    assert!(h.engine.rib().received(PeerId(0), Family::Ipv4Unicast) <= 100);
    for chunk in flood.chunks(64) {
        h.announce(PeerId(0), chunk, peer_ip(2));
        assert!(h.engine.rib().received(PeerId(0), Family::Ipv4Unicast) <= 100);
    }
    assert!(
        h.routes.iter().filter(|c| c.prefix().is_some()).count() <= 100,
        "more than the limit reached the route stream"
    );
    assert!(
        h.drain(PeerId(1)).len() <= 100,
        "more than the limit was propagated"
    );
    assert!(
        matches!(h.controls.first(), Some((PeerId(0), Control::Stop(n))) if n.code == 6 && n.subcode == 1),
        "{:?}",
        h.controls
    );
}

#[test]
fn a_new_session_gets_the_table_then_end_of_rib() {
    let mut h = Harness::new(config(&[(2, false), (3, false)]));
    h.engine
        .announce(net("10.244.9.0/26"), &LocalRoute::default());
    h.pump();
    h.establish(PeerId(0), peer_ip(2), None);
    let held = h.drain(PeerId(0)).clone();
    assert_eq!(
        held.keys().copied().collect::<Vec<_>>(),
        vec![net("10.244.9.0/26")]
    );
    assert_eq!(
        held[&net("10.244.9.0/26")].next_hop,
        bgp_core::rib::NextHop::V4(LOCAL),
        "our own route with our address as next hop"
    );
    assert_eq!(h.end_of_rib[&PeerId(0)], vec![Family::Ipv4Unicast]);
}

// ---- reflection through update groups ----

#[test]
fn reflected_routes_reach_every_other_client_and_not_their_source() {
    let mut h = Harness::new(config(&[(2, true), (3, true), (4, true)]));
    for (i, n) in [(0, 2), (1, 3), (2, 4)] {
        h.establish(PeerId(i), peer_ip(n), None);
    }
    h.announce(PeerId(0), &["10.244.2.0/26"], peer_ip(2));
    h.announce(PeerId(1), &["10.244.3.0/26"], peer_ip(3));
    h.announce(PeerId(2), &["10.244.4.0/26"], peer_ip(4));
    for id in [PeerId(0), PeerId(1), PeerId(2)] {
        let held = h.drain(id).clone();
        assert_eq!(held, h.expected(id), "peer {id:?}");
        assert_eq!(held.len(), 2, "the two other clients' blocks");
    }
    let from_2 = &h.drain(PeerId(1)).clone()[&net("10.244.2.0/26")];
    assert_eq!(from_2.originator_id, Some(peer_ip(2)));
    assert_eq!(
        from_2.cluster_list,
        vec![LOCAL],
        "our router ID as cluster ID"
    );
    assert_eq!(from_2.next_hop, bgp_core::rib::NextHop::V4(peer_ip(2)));
    assert_eq!(h.engine.update_groups(), vec![(3, 3)], "one group of three");

    h.withdraw(PeerId(0), &["10.244.2.0/26"]);
    assert!(!h.drain(PeerId(1)).contains_key(&net("10.244.2.0/26")));
    assert!(!h.drain(PeerId(2)).contains_key(&net("10.244.2.0/26")));
}

#[test]
fn one_encoded_update_is_shared_by_every_receiving_client() {
    let peers: Vec<(u8, bool)> = (2..12).map(|n| (n, true)).collect();
    let mut h = Harness::new(config(&peers));
    for (i, (n, _)) in peers.iter().enumerate() {
        h.establish(PeerId(i as u32), peer_ip(*n), None);
        h.drain(PeerId(i as u32));
    }
    h.taken.clear();
    h.announce(PeerId(0), &["10.244.2.0/26", "10.244.2.64/26"], peer_ip(2));
    let first: Vec<Bytes> = (1..10)
        .map(|i| {
            h.drain(PeerId(i));
            let t = &h.taken[&PeerId(i)];
            assert_eq!(t.len(), 1, "one UPDATE with both prefixes");
            t[0].clone()
        })
        .collect();
    assert!(
        first.windows(2).all(|w| w[0].as_ptr() == w[1].as_ptr()),
        "the same bytes, not copies"
    );
    h.drain(PeerId(0));
    assert!(
        h.taken.get(&PeerId(0)).is_none_or(Vec::is_empty),
        "nothing back to the source"
    );
}

#[test]
fn a_client_gets_a_withdrawal_when_the_best_path_becomes_its_own() {
    // Client 3 held 10.244.7.0/26 from client 2; then client 3 announces
    // the same block and its own path wins (lower router ID): it must stop
    // holding client 2's route from us.
    let mut h = Harness::new(config(&[(3, true), (2, true), (4, true)]));
    h.establish(PeerId(0), peer_ip(3), None);
    h.establish(PeerId(1), ip("10.0.0.200"), None);
    h.establish(PeerId(2), peer_ip(4), None);
    h.announce(PeerId(1), &["10.244.7.0/26"], ip("10.0.0.200"));
    assert!(h.drain(PeerId(0)).contains_key(&net("10.244.7.0/26")));
    h.announce(PeerId(0), &["10.244.7.0/26"], peer_ip(3));
    for id in [PeerId(0), PeerId(1), PeerId(2)] {
        let held = h.drain(id).clone();
        assert_eq!(held, h.expected(id), "peer {id:?}");
    }
    assert!(!h.held[&PeerId(0)].contains_key(&net("10.244.7.0/26")));
    assert_eq!(
        h.held[&PeerId(2)][&net("10.244.7.0/26")].next_hop,
        bgp_core::rib::NextHop::V4(peer_ip(3))
    );
}

#[test]
fn a_lone_peer_is_not_sent_its_own_routes_and_a_second_peer_gets_them() {
    let mut h = Harness::new(config(&[(2, true), (3, true)]));
    h.establish(PeerId(0), peer_ip(2), None);
    h.announce(PeerId(0), &["10.244.2.0/26"], peer_ip(2));
    assert!(h.drain(PeerId(0)).is_empty());
    assert_eq!(
        h.engine.update_groups(),
        vec![(1, 0)],
        "not stored for nobody"
    );
    h.establish(PeerId(1), peer_ip(3), None);
    let held = h.drain(PeerId(1)).clone();
    assert_eq!(held, h.expected(PeerId(1)));
    assert!(held.contains_key(&net("10.244.2.0/26")));
}

#[test]
fn route_refresh_resends_the_table() {
    let mut h = Harness::new(config(&[(2, true), (3, true)]));
    h.establish(PeerId(0), peer_ip(2), None);
    h.establish(PeerId(1), peer_ip(3), None);
    h.announce(PeerId(0), &["10.244.2.0/26"], peer_ip(2));
    h.drain(PeerId(1));
    h.held.remove(&PeerId(1));
    h.event(
        PeerId(1),
        SessionEvent::RouteRefresh(bgp_core::wire::RouteRefresh::request(1, 1)),
    );
    let held = h.drain(PeerId(1)).clone();
    assert_eq!(held, h.expected(PeerId(1)));
    assert_eq!(h.held[&PeerId(1)].len(), 1);
}

fn refresh(afi: u16, subtype: u8) -> SessionEvent {
    SessionEvent::RouteRefresh(RouteRefresh {
        subtype,
        ..RouteRefresh::request(afi, 1)
    })
}

/// Peers 0 and 1, both with `families` and Enhanced Route Refresh as
/// `enhanced` says; peer 0 announces three IPv4 blocks, which peer 1 is
/// sent once.
fn two_peers(families: &[Family], enhanced: bool) -> Harness {
    let mut h = Harness::new(config(&[(2, true), (3, true)]));
    for (id, n) in [(PeerId(0), 2), (PeerId(1), 3)] {
        let mut negotiated = negotiated(peer_ip(n), None);
        negotiated.families = families.to_vec();
        negotiated.enhanced_route_refresh = enhanced;
        h.establish_with(id, negotiated);
    }
    h.announce(
        PeerId(0),
        &["10.244.1.0/26", "10.244.2.0/26", "10.244.3.0/26"],
        peer_ip(2),
    );
    h.drain(PeerId(1));
    assert_eq!(h.announced[&PeerId(1)], 3);
    h
}

#[test]
fn route_refresh_resends_only_the_family_asked_for_and_each_prefix_once() {
    let mut h = two_peers(&[Family::Ipv4Unicast, Family::Ipv6Unicast], false);
    // RFC 2918 §4: a request for IPv6 re-advertises IPv6 only.
    h.event(PeerId(1), refresh(2, refresh_subtype::NORMAL));
    h.drain(PeerId(1));
    assert_eq!(h.announced[&PeerId(1)], 3, "no IPv4 route sent again");
    // Two IPv4 requests before the peer task reads: the table once.
    h.event(PeerId(1), refresh(1, refresh_subtype::NORMAL));
    h.event(PeerId(1), refresh(1, refresh_subtype::NORMAL));
    h.event(PeerId(1), refresh(2, refresh_subtype::NORMAL));
    let held = h.drain(PeerId(1)).clone();
    assert_eq!(h.announced[&PeerId(1)], 6);
    assert_eq!(held, h.expected(PeerId(1)));
    assert!(
        !h.refresh_markers.contains_key(&PeerId(1)),
        "no BoRR/EoRR without the capability"
    );
}

#[test]
fn route_refresh_for_a_family_not_negotiated_is_ignored() {
    let mut h = two_peers(&[Family::Ipv4Unicast], false);
    h.event(PeerId(1), refresh(2, refresh_subtype::NORMAL));
    // An AFI this codec does not know at all.
    h.event(PeerId(1), refresh(25, refresh_subtype::NORMAL));
    h.drain(PeerId(1));
    assert_eq!(h.announced[&PeerId(1)], 3);
}

#[test]
fn enhanced_route_refresh_brackets_the_resent_family_with_borr_and_eorr() {
    let mut h = two_peers(&[Family::Ipv4Unicast], true);
    h.event(PeerId(1), refresh(1, refresh_subtype::NORMAL));
    let held = h.drain(PeerId(1)).clone();
    assert_eq!(held, h.expected(PeerId(1)));
    // RFC 7313 §4: BoRR before the first route, EoRR after the last.
    assert_eq!(
        h.refresh_markers[&PeerId(1)],
        vec![
            (refresh_subtype::BORR, Family::Ipv4Unicast, 3),
            (refresh_subtype::EORR, Family::Ipv4Unicast, 6),
        ]
    );
}

#[test]
fn a_peers_borr_and_eorr_are_not_requests_for_our_table() {
    // The bug this replaced: each of them re-sent the whole table.
    let mut h = two_peers(&[Family::Ipv4Unicast], true);
    h.event(PeerId(1), refresh(1, refresh_subtype::BORR));
    h.event(PeerId(1), refresh(1, refresh_subtype::EORR));
    // A subtype RFC 7313 §5 says to ignore.
    h.event(PeerId(1), refresh(1, 7));
    h.drain(PeerId(1));
    assert_eq!(h.announced[&PeerId(1)], 3);
    assert!(!h.refresh_markers.contains_key(&PeerId(1)));
}

#[test]
fn routes_a_peer_does_not_send_again_between_its_borr_and_eorr_are_withdrawn() {
    let mut h = two_peers(&[Family::Ipv4Unicast], true);
    h.event(PeerId(0), refresh(1, refresh_subtype::BORR));
    assert!(
        is_best(h.best("10.244.2.0/26"), true),
        "stale until the EoRR"
    );
    h.announce(PeerId(0), &["10.244.1.0/26", "10.244.3.0/26"], peer_ip(2));
    assert!(is_best(h.best("10.244.1.0/26"), false), "sent again: fresh");
    h.event(PeerId(0), refresh(1, refresh_subtype::EORR));
    assert_eq!(
        h.best("10.244.2.0/26"),
        Some(RouteChange::Withdrawn(net("10.244.2.0/26")))
    );
    assert!(is_best(h.best("10.244.3.0/26"), false));
    let held = h.drain(PeerId(1)).clone();
    assert_eq!(held, h.expected(PeerId(1)));
    assert!(!held.contains_key(&net("10.244.2.0/26")));
}

#[test]
fn borr_and_eorr_without_the_capability_change_nothing() {
    let mut h = two_peers(&[Family::Ipv4Unicast], false);
    let before = h.routes.len();
    h.event(PeerId(0), refresh(1, refresh_subtype::BORR));
    h.event(PeerId(0), refresh(1, refresh_subtype::EORR));
    assert_eq!(h.routes.len(), before, "nothing marked stale or removed");
    assert!(is_best(h.best("10.244.2.0/26"), false));
}

// ---- dynamic neighbours ----

fn ranges(limit: u32) -> SpeakerConfig {
    let mut c = SpeakerConfig::new(AS, LOCAL);
    let mut r = NeighborRange::new(net("10.0.0.0/24"), AS);
    r.limit = limit;
    r.route_reflector_client = true;
    c.dynamic_neighbors.push(r);
    c
}

#[test]
fn a_connection_from_a_range_becomes_a_passive_dynamic_neighbour() {
    let mut h = Harness::new(ranges(10));
    let id = h
        .engine
        .handle_inbound(h.now, IpAddr::V4(peer_ip(7)))
        .expect("accepted");
    let spawn = h.engine.poll_action();
    let Some(Action::Spawn(setup)) = spawn else {
        panic!("expected a spawn, got {spawn:?}")
    };
    assert_eq!(setup.address, IpAddr::V4(peer_ip(7)));
    assert!(setup.session.config().passive);
    h.outboxes.insert(id, setup.outbox);
    h.pump();
    let peers = h.engine.peers(h.now);
    assert_eq!(peers.len(), 1);
    assert!(peers[0].dynamic);
    // The same address again is the same neighbour.
    assert_eq!(
        h.engine.handle_inbound(h.now, IpAddr::V4(peer_ip(7))),
        Some(id)
    );
}

#[test]
fn connections_outside_every_range_are_refused() {
    let mut h = Harness::new(ranges(10));
    assert_eq!(
        h.engine.handle_inbound(h.now, IpAddr::V4(ip("10.0.1.7"))),
        None
    );
    assert!(h.engine.poll_action().is_none());
}

#[test]
fn a_full_range_refuses_more_until_a_neighbour_goes() {
    let mut h = Harness::new(ranges(2));
    let a = h
        .engine
        .handle_inbound(h.now, IpAddr::V4(peer_ip(7)))
        .unwrap();
    h.engine
        .handle_inbound(h.now, IpAddr::V4(peer_ip(8)))
        .unwrap();
    h.pump();
    assert_eq!(h.engine.handle_inbound(h.now, IpAddr::V4(peer_ip(9))), None);
    h.establish(a, peer_ip(7), None);
    h.announce(a, &["10.244.7.0/26"], peer_ip(7));
    h.down(a, DownReason::ConnectionClosed);
    assert_eq!(
        h.best("10.244.7.0/26"),
        Some(RouteChange::Withdrawn(net("10.244.7.0/26")))
    );
    assert!(h.controls.contains(&(a, Control::Abandon)), "its task ends");
    assert_eq!(h.engine.peers(h.now).len(), 1, "forgotten");
    assert!(
        h.engine
            .handle_inbound(h.now, IpAddr::V4(peer_ip(9)))
            .is_some()
    );
}

#[test]
fn a_dynamic_neighbour_with_graceful_restart_is_kept_until_its_restart_time() {
    let mut h = Harness::new(ranges(10));
    let a = h
        .engine
        .handle_inbound(h.now, IpAddr::V4(peer_ip(7)))
        .unwrap();
    h.pump();
    h.establish(a, peer_ip(7), Some(gr(60)));
    h.announce(a, &["10.244.7.0/26"], peer_ip(7));
    h.down(a, DownReason::ConnectionClosed);
    assert!(is_best(h.best("10.244.7.0/26"), true));
    assert_eq!(h.engine.peers(h.now).len(), 1);
    h.advance(Duration::from_secs(60));
    assert_eq!(h.engine.peers(h.now).len(), 0);
    assert_eq!(
        h.best("10.244.7.0/26"),
        Some(RouteChange::Withdrawn(net("10.244.7.0/26")))
    );
}

// ---- update groups against per-peer Adj-RIBs-Out ----

#[derive(Clone, Debug)]
enum Op {
    /// Peer announces block `b` with its own next hop (or, `alt`, another).
    Announce {
        peer: usize,
        block: u8,
        alt: bool,
    },
    Withdraw {
        peer: usize,
        block: u8,
    },
    Local {
        block: u8,
        on: bool,
    },
    Flap {
        peer: usize,
    },
    Refresh {
        peer: usize,
    },
    /// The peer's task takes what waits for it.
    Drain {
        peer: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..5usize, 0..6u8, any::<bool>()).prop_map(|(peer, block, alt)| Op::Announce { peer, block, alt }),
        2 => (0..5usize, 0..6u8).prop_map(|(peer, block)| Op::Withdraw { peer, block }),
        1 => (0..6u8, any::<bool>()).prop_map(|(block, on)| Op::Local { block, on }),
        1 => (0..5usize).prop_map(|peer| Op::Flap { peer }),
        1 => (0..5usize).prop_map(|peer| Op::Refresh { peer }),
        2 => (0..5usize).prop_map(|peer| Op::Drain { peer }),
    ]
}

/// Applies `op` to a harness over `peers`.
fn apply(h: &mut Harness, peers: &[(u8, bool)], op: Op) {
    let block = |b: u8| format!("10.244.{b}.0/26");
    match op {
        Op::Announce {
            peer,
            block: b,
            alt,
        } => {
            let nh = if alt {
                Ipv4Addr::new(10, 1, 0, b)
            } else {
                peer_ip(peers[peer].0)
            };
            let prefix = block(b);
            h.announce(PeerId(peer as u32), &[prefix.as_str()], nh);
        }
        Op::Withdraw { peer, block: b } => {
            let prefix = block(b);
            h.withdraw(PeerId(peer as u32), &[prefix.as_str()]);
        }
        Op::Local { block: b, on } => {
            if on {
                h.engine.announce(net(&block(b)), &LocalRoute::default());
            } else {
                h.engine.withdraw(net(&block(b)));
            }
            h.pump();
        }
        Op::Flap { peer } => {
            let id = PeerId(peer as u32);
            h.down(id, DownReason::ConnectionClosed);
            h.establish(id, peer_ip(peers[peer].0), None);
        }
        Op::Refresh { peer } => {
            h.event(
                PeerId(peer as u32),
                SessionEvent::RouteRefresh(bgp_core::wire::RouteRefresh::request(1, 1)),
            );
        }
        Op::Drain { peer } => {
            h.drain(PeerId(peer as u32));
        }
    }
}

/// Three clients, two non-clients (one group each, by key).
const PEERS: [(u8, bool); 5] = [(2, true), (3, true), (4, true), (5, false), (6, false)];

fn established(log_limit: Option<usize>) -> Harness {
    let mut h = Harness::new(config(&PEERS));
    if let Some(l) = log_limit {
        h.engine.set_log_limit(l);
    }
    for (i, (n, _)) in PEERS.iter().enumerate() {
        h.establish(PeerId(i as u32), peer_ip(*n), None);
    }
    h
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Whatever the sequence of announcements, withdrawals, local routes,
    /// session flaps and refreshes, every peer holds exactly what a
    /// per-peer Adj-RIB-Out synced from the Loc-RIB says it should.
    #[test]
    fn update_groups_give_every_peer_its_own_adj_rib_out(ops in prop::collection::vec(op(), 1..40)) {
        let mut h = established(None);
        for op in ops {
            apply(&mut h, &PEERS, op);
            let snapshots = h.engine.peers(h.now);
            for (i, (n, _)) in PEERS.iter().enumerate() {
                let id = PeerId(i as u32);
                let held = h.drain(id).clone();
                let expected = h.expected(id);
                prop_assert_eq!(&held, &expected, "peer {}", i);
                // Status counts what the peer holds.
                let address = IpAddr::V4(peer_ip(*n));
                let advertised = snapshots.iter().find(|s| s.address == address).map(|s| s.advertised);
                prop_assert_eq!(advertised, Some(expected.len()), "advertised to peer {}", i);
            }
        }
    }

    /// Peers that take what waits for them only now and then, with a log
    /// so small that they keep falling behind and catching up from the
    /// table, end up holding exactly their Adj-RIB-Out too.
    #[test]
    fn peers_that_fall_behind_catch_up_to_their_adj_rib_out(ops in prop::collection::vec(op(), 1..60)) {
        let mut h = established(Some(200));
        for op in ops {
            apply(&mut h, &PEERS, op);
        }
        for i in 0..PEERS.len() {
            let id = PeerId(i as u32);
            let held = h.drain(id).clone();
            prop_assert_eq!(&held, &h.expected(id), "peer {}", i);
        }
    }
}

// ---- block ownership ----

fn owner(block: &str, n: u8) -> bgp_core::speaker::BlockOwner {
    bgp_core::speaker::BlockOwner::new(net(block), IpAddr::V4(peer_ip(n)))
}

#[test]
fn a_route_inside_a_block_another_node_owns_is_refused_before_the_rib() {
    let mut h = Harness::new(config(&[(2, true), (3, true), (4, true)]));
    for (i, n) in [(0, 2), (1, 3), (2, 4)] {
        h.establish(PeerId(i), peer_ip(n), None);
    }
    h.engine
        .set_block_owners(&[owner("10.244.2.0/26", 2), owner("10.244.3.0/26", 3)]);
    h.pump();
    h.routes.clear();
    // Node 3 announces node 2's block (and a /32 inside it) as its own.
    h.announce(PeerId(1), &["10.244.2.0/26", "10.244.2.7/32"], peer_ip(3));
    assert_eq!(h.engine.rib().len(), 0, "nothing reached the RIB");
    assert!(h.routes.is_empty(), "no route change: {:?}", h.routes);
    assert!(h.drain(PeerId(2)).is_empty(), "nothing reflected");
    // The owner's own announcement is accepted and reflected.
    h.announce(PeerId(0), &["10.244.2.0/26"], peer_ip(2));
    assert!(is_best(h.best("10.244.2.0/26"), false));
    assert!(h.drain(PeerId(2)).contains_key(&net("10.244.2.0/26")));
    // Outside every owned block, nothing is checked.
    h.announce(PeerId(2), &["10.244.9.0/26"], peer_ip(4));
    assert!(is_best(h.best("10.244.9.0/26"), false));
}

#[test]
fn new_owners_withdraw_held_routes_that_break_them() {
    let mut h = Harness::new(config(&[(2, false), (3, false)]));
    h.establish(PeerId(0), peer_ip(2), None);
    h.establish(PeerId(1), peer_ip(3), None);
    h.announce(PeerId(0), &["10.244.2.0/26"], peer_ip(2));
    h.announce(PeerId(1), &["10.244.2.0/26"], peer_ip(3));
    assert_eq!(h.engine.rib().paths(&net("10.244.2.0/26")).len(), 2);
    h.engine.set_block_owners(&[owner("10.244.2.0/26", 2)]);
    h.pump();
    let paths = h.engine.rib().paths(&net("10.244.2.0/26"));
    assert_eq!(paths.len(), 1, "{paths:?}");
    assert_eq!(paths[0].peer, PeerId(0));
    assert!(
        h.controls
            .iter()
            .all(|(_, c)| !matches!(c, Control::RouteRefresh(_))),
        "only a new owner: nothing to ask again"
    );
}

#[test]
fn an_owner_that_moves_asks_every_peer_to_send_its_routes_again() {
    let mut h = Harness::new(config(&[(2, false), (3, false)]));
    h.establish(PeerId(0), peer_ip(2), None);
    h.establish(PeerId(1), peer_ip(3), None);
    h.engine.set_block_owners(&[owner("10.244.2.0/26", 2)]);
    h.pump();
    h.controls.clear();
    // The block moves to node 3: what node 3 sent for it before was
    // refused and must be sent again.
    h.engine.set_block_owners(&[owner("10.244.2.0/26", 3)]);
    h.pump();
    let mut refreshes: Vec<PeerId> = h
        .controls
        .iter()
        .filter(|(_, c)| matches!(c, Control::RouteRefresh(r) if r.afi == 1 && r.safi == 1))
        .map(|(id, _)| *id)
        .collect();
    refreshes.sort();
    assert_eq!(refreshes, [PeerId(0), PeerId(1)], "{:?}", h.controls);
}

// ---- peer events on the route stream ----

#[test]
fn the_stream_says_a_session_is_up_before_its_routes_and_down_after_them() {
    let mut h = Harness::new(config(&[(2, false)]));
    h.establish(PeerId(0), peer_ip(2), Some(gr(120)));
    h.announce(PeerId(0), &["10.244.1.0/26"], peer_ip(2));
    h.down(PeerId(0), DownReason::ConnectionClosed);
    let kinds: Vec<&str> = h
        .routes
        .iter()
        .map(|c| match c {
            RouteChange::PeerUp(_) => "up",
            RouteChange::Best(b) if b.stale => "stale",
            RouteChange::Best(_) => "best",
            RouteChange::PeerDown(_) => "down",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, ["up", "best", "stale", "down"]);
    let RouteChange::PeerUp(up) = &h.routes[0] else {
        unreachable!()
    };
    assert_eq!(up.peer, IpAddr::V4(peer_ip(2)));
    assert_eq!(up.negotiated.families, [Family::Ipv4Unicast]);
    let RouteChange::PeerDown(down) = &h.routes[3] else {
        unreachable!()
    };
    assert_eq!(down.reason, DownReason::ConnectionClosed);
    assert!(down.routes_kept, "graceful restart keeps them");
}
