//! The public Speaker API end to end over loopback TCP: two speakers peer,
//! exchange IPv4 and IPv6 routes, withdraw them, report peer snapshots, add
//! and remove peers at runtime and shut down with a shutdown communication.
//!
//! Loopback addresses are not valid next hops (RFC 4271 §6.3 treats
//! 127/8 as martian), so routes here carry an explicit next hop; "next hop
//! self" on real addresses is covered by the namespace interop tests.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use bgp_core::session::State;
use bgp_core::speaker::{
    GracefulRestart, ListenConfig, LocalRoute, PeerConfig, RouteChange, RouteStream, Speaker,
    SpeakerConfig,
};
use bgp_core::wire::Notification;

async fn next_matching(
    stream: &mut RouteStream,
    mut want: impl FnMut(&RouteChange) -> bool,
) -> RouteChange {
    tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            let c = stream.recv().await.expect("stream open");
            if want(&c) {
                return c;
            }
        }
    })
    .await
    .expect("timed out waiting for a route change")
}

async fn wait_established(s: &Speaker) {
    let r = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            let peers = s.peers().await.unwrap();
            if !peers.is_empty() && peers.iter().all(|p| p.state == State::Established) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(
        r.is_ok(),
        "sessions did not establish: {:?}",
        s.peers().await.unwrap()
    );
}

/// The NOTIFICATION `s`'s first peer last sent or received, once there is
/// one (10 s at most).
async fn last_notification(s: &Speaker) -> Notification {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Some(n) = s.peers().await.unwrap()[0].last_notification.clone() {
                return n;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("no NOTIFICATION within 10 s")
}

fn via(next_hop: &str) -> LocalRoute {
    LocalRoute::via(next_hop.parse().unwrap())
}

fn config(ip: Ipv4Addr) -> SpeakerConfig {
    let mut c = SpeakerConfig::new(64512, ip);
    c.listen = Some(ListenConfig::new(IpAddr::V4(ip), 0));
    c.connect_retry = 1;
    c
}

/// Two iBGP speakers on 127.0.0.1 and 127.0.0.2, each configured with the
/// other (both connect: a collision that must end in one session).
async fn pair() -> ((Speaker, RouteStream), (Speaker, RouteStream)) {
    pair_with(|_| {}).await
}

/// [`pair`] with both configs changed by `edit` first.
async fn pair_with(
    edit: impl Fn(&mut SpeakerConfig),
) -> ((Speaker, RouteStream), (Speaker, RouteStream)) {
    let a_ip = Ipv4Addr::new(127, 0, 0, 1);
    let b_ip = Ipv4Addr::new(127, 0, 0, 2);
    let (mut ca, mut cb) = (config(a_ip), config(b_ip));
    edit(&mut ca);
    edit(&mut cb);
    let a = Speaker::start(ca).await.unwrap();
    let b = Speaker::start(cb).await.unwrap();
    let mut to_b = PeerConfig::new(IpAddr::V4(b_ip), 64512);
    to_b.port = b.0.listen_addr().unwrap().port();
    to_b.local_address = Some(IpAddr::V4(a_ip));
    let mut to_a = PeerConfig::new(IpAddr::V4(a_ip), 64512);
    to_a.port = a.0.listen_addr().unwrap().port();
    to_a.local_address = Some(IpAddr::V4(b_ip));
    a.0.add_peer(to_b).await.unwrap();
    b.0.add_peer(to_a).await.unwrap();
    (a, b)
}

#[tokio::test]
async fn speakers_exchange_ipv4_and_ipv6_routes_and_withdrawals() {
    let ((a, _a_routes), (b, mut b_routes)) = pair().await;
    wait_established(&a).await;
    wait_established(&b).await;

    a.announce("10.244.1.0/26".parse().unwrap(), via("192.0.2.10"))
        .unwrap();
    let got = next_matching(
        &mut b_routes,
        |c| matches!(c, RouteChange::Best(r) if r.prefix.to_string() == "10.244.1.0/26"),
    )
    .await;
    let RouteChange::Best(route) = got else {
        unreachable!()
    };
    assert_eq!(route.next_hop, "192.0.2.10".parse::<IpAddr>().unwrap());
    assert_eq!(route.peer, Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1))));
    assert!(!route.stale);

    a.announce("fd00:244::/122".parse().unwrap(), via("fd00::1"))
        .unwrap();
    let got = next_matching(
        &mut b_routes,
        |c| matches!(c, RouteChange::Best(r) if r.prefix.to_string() == "fd00:244::/122"),
    )
    .await;
    let RouteChange::Best(route) = got else {
        unreachable!()
    };
    assert_eq!(route.next_hop, "fd00::1".parse::<IpAddr>().unwrap());

    a.withdraw("10.244.1.0/26".parse().unwrap()).unwrap();
    next_matching(&mut b_routes, |c| {
        *c == RouteChange::Withdrawn("10.244.1.0/26".parse().unwrap())
    })
    .await;

    let b_peers = b.peers().await.unwrap();
    assert_eq!(b_peers.len(), 1);
    assert_eq!(b_peers[0].accepted, 1, "{b_peers:?}");
    assert!(b_peers[0].uptime.is_some());
    let a_peers = a.peers().await.unwrap();
    assert_eq!(a_peers[0].advertised, 1, "{a_peers:?}");
    assert_eq!(b.routes().await.unwrap().len(), 1);
}

#[tokio::test]
async fn end_of_rib_follows_the_initial_table() {
    let ((a, _ar), (b, mut b_routes)) = pair().await;
    a.announce("10.244.2.0/26".parse().unwrap(), via("192.0.2.10"))
        .unwrap();
    wait_established(&a).await;
    wait_established(&b).await;
    next_matching(
        &mut b_routes,
        |c| matches!(c, RouteChange::Best(r) if r.prefix.to_string() == "10.244.2.0/26"),
    )
    .await;
    next_matching(&mut b_routes, |c| matches!(c, RouteChange::EndOfRib { .. })).await;
}

#[tokio::test]
async fn shutdown_sends_cease_with_the_shutdown_communication() {
    let ((a, _ar), (b, _br)) = pair().await;
    wait_established(&a).await;
    wait_established(&b).await;
    a.shutdown("node drain").await;
    let n = last_notification(&b).await;
    assert_eq!((n.code, n.subcode), (6, 2));
    assert_eq!(n.shutdown_communication(), Some("node drain"));
}

#[tokio::test]
async fn shutdown_for_restart_closes_without_notification_and_the_peer_keeps_our_routes_stale() {
    let ((a, _ar), (b, mut b_routes)) = pair_with(|c| {
        c.graceful_restart = Some(GracefulRestart::new(60));
    })
    .await;
    wait_established(&a).await;
    wait_established(&b).await;
    a.announce("10.244.3.0/26".parse().unwrap(), via("192.0.2.10"))
        .unwrap();
    next_matching(
        &mut b_routes,
        |c| matches!(c, RouteChange::Best(r) if r.prefix.to_string() == "10.244.3.0/26" && !r.stale),
    )
    .await;

    a.shutdown_for_restart().await;
    // B sees the session drop (no NOTIFICATION) and keeps the route, stale.
    let got = next_matching(&mut b_routes, |c| {
        matches!(c, RouteChange::Withdrawn(_))
            || matches!(c, RouteChange::Best(r) if r.prefix.to_string() == "10.244.3.0/26" && r.stale)
    })
    .await;
    assert!(
        matches!(got, RouteChange::Best(ref r) if r.stale),
        "B withdrew instead of keeping the route stale: {got:?}"
    );
    let peers = b.peers().await.unwrap();
    assert_ne!(peers[0].state, State::Established);
    assert_eq!(peers[0].last_notification, None, "{peers:?}");
    assert_eq!(b.routes().await.unwrap().len(), 1);
}

#[tokio::test]
async fn max_prefix_cease_with_restart_after_brings_the_session_back() {
    use bgp_core::policy::{MaxPrefix, MaxPrefixAction};
    let ((a, _ar), (b, _br)) = pair().await;
    // B takes at most 1 prefix from A, then Cease and a restart 1 s
    // later: set on B's peer by re-adding it.
    let mut to_a = PeerConfig::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)), 64512);
    to_a.port = a.listen_addr().unwrap().port();
    to_a.local_address = Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)));
    to_a.max_prefixes = Some(MaxPrefix {
        restart_after: Some(1),
        ..MaxPrefix::new(1, MaxPrefixAction::Cease)
    });
    b.remove_peer(to_a.address).await.unwrap();
    b.add_peer(to_a).await.unwrap();
    wait_established(&a).await;
    wait_established(&b).await;

    a.announce("10.244.4.0/26".parse().unwrap(), via("192.0.2.10"))
        .unwrap();
    a.announce("10.244.4.64/26".parse().unwrap(), via("192.0.2.10"))
        .unwrap();
    let n = last_notification(&b).await;
    assert_eq!(
        (n.code, n.subcode),
        (6, 1),
        "Cease / Maximum Number of Prefixes Reached"
    );
    // A goes back under the limit; B restarts the session by itself.
    a.withdraw("10.244.4.64/26".parse().unwrap()).unwrap();
    wait_established(&b).await;
    let accepted = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let p = b.peers().await.unwrap();
            if p[0].state == State::Established && p[0].accepted == 1 {
                return p[0].accepted;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(accepted.ok(), Some(1), "{:?}", b.peers().await.unwrap());
}

#[tokio::test]
async fn removing_a_peer_withdraws_its_routes_and_leaves_others_alone() {
    let ((a, _ar), (b, mut b_routes)) = pair().await;
    wait_established(&a).await;
    wait_established(&b).await;
    a.announce("10.244.3.0/26".parse().unwrap(), via("192.0.2.10"))
        .unwrap();
    next_matching(&mut b_routes, |c| matches!(c, RouteChange::Best(_))).await;
    b.remove_peer(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)))
        .await
        .unwrap();
    next_matching(&mut b_routes, |c| {
        *c == RouteChange::Withdrawn("10.244.3.0/26".parse().unwrap())
    })
    .await;
    assert!(b.peers().await.unwrap().is_empty());
    assert!(
        b.remove_peer(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn ebgp_peer_without_policy_exchanges_nothing() {
    // RFC 8212: B is in another AS and has no import/export filters.
    let a_ip = Ipv4Addr::new(127, 0, 0, 1);
    let b_ip = Ipv4Addr::new(127, 0, 0, 3);
    let (a, _ar) = Speaker::start(config(a_ip)).await.unwrap();
    let mut b_cfg = config(b_ip);
    b_cfg.local_as = 65010;
    let (b, mut b_routes) = Speaker::start(b_cfg).await.unwrap();
    let mut to_b = PeerConfig::new(IpAddr::V4(b_ip), 65010);
    to_b.port = b.listen_addr().unwrap().port();
    to_b.local_address = Some(IpAddr::V4(a_ip));
    let mut to_a = PeerConfig::new(IpAddr::V4(a_ip), 64512);
    to_a.port = a.listen_addr().unwrap().port();
    to_a.local_address = Some(IpAddr::V4(b_ip));
    a.add_peer(to_b).await.unwrap();
    b.add_peer(to_a).await.unwrap();
    wait_established(&a).await;
    wait_established(&b).await;
    a.announce("10.244.4.0/26".parse().unwrap(), via("192.0.2.10"))
        .unwrap();
    // Wait for B's End-of-RIB from A: the table has been sent, and held nothing.
    next_matching(&mut b_routes, |c| matches!(c, RouteChange::EndOfRib { .. })).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(b.routes().await.unwrap().is_empty());
    assert_eq!(a.peers().await.unwrap()[0].advertised, 0);
}

#[tokio::test]
async fn routes_originated_at_start_come_before_end_of_rib_even_to_a_peer_up_at_once() {
    // A peer already listening when we start: its session comes up as soon
    // as it can, and our start routes must still precede our End-of-RIB
    // (a restart helper removes what is missing from the table there).
    let b_ip = Ipv4Addr::new(127, 0, 0, 4);
    let (b, mut b_routes) = Speaker::start(config(b_ip)).await.unwrap();
    let a_ip = Ipv4Addr::new(127, 0, 0, 3);
    let mut ca = config(a_ip);
    let mut to_b = PeerConfig::new(IpAddr::V4(b_ip), 64512);
    to_b.port = b.listen_addr().unwrap().port();
    to_b.local_address = Some(IpAddr::V4(a_ip));
    ca.peers.push(to_b);
    let mut to_a = PeerConfig::new(IpAddr::V4(a_ip), 64512);
    to_a.passive = true;
    b.add_peer(to_a).await.unwrap();
    let (_a, _ar) = Speaker::start_with_routes(
        ca,
        vec![("10.244.3.0/26".parse().unwrap(), via("192.0.2.10"))],
    )
    .await
    .unwrap();
    let first = next_matching(&mut b_routes, |c| {
        matches!(c, RouteChange::Best(_) | RouteChange::EndOfRib { .. })
    })
    .await;
    assert!(
        matches!(&first, RouteChange::Best(r) if r.prefix.to_string() == "10.244.3.0/26"),
        "End-of-RIB came first: {first:?}"
    );
}

#[tokio::test]
async fn a_connection_that_comes_just_before_its_peer_is_added_is_kept_for_it() {
    // Nodes learning of each other from a datastore: A connects before B
    // has added A. Refused, A would wait a whole connect retry (30 s here).
    let b_ip = Ipv4Addr::new(127, 0, 0, 6);
    let (b, _br) = Speaker::start(config(b_ip)).await.unwrap();
    let a_ip = Ipv4Addr::new(127, 0, 0, 5);
    let mut ca = config(a_ip);
    ca.connect_retry = 30;
    let mut to_b = PeerConfig::new(IpAddr::V4(b_ip), 64512);
    to_b.port = b.listen_addr().unwrap().port();
    to_b.local_address = Some(IpAddr::V4(a_ip));
    ca.peers.push(to_b);
    let (a, _ar) = Speaker::start(ca).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut to_a = PeerConfig::new(IpAddr::V4(a_ip), 64512);
    to_a.passive = true;
    b.add_peer(to_a).await.unwrap();
    let up = tokio::time::timeout(Duration::from_secs(3), async {
        loop {
            let peers = a.peers().await.unwrap();
            if peers.iter().all(|p| p.state == State::Established) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(up.is_ok(), "not established: {:?}", a.peers().await);
}
