//! The control step on a clock the tests move: no sockets, no sleeps.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::Arc;

use bgp_core::rib::{NextHop, PathAttrs};
use bgp_core::speaker::BestRoute;
use bgp_core::wire::{AsPath, Family, Origin};

use super::*;
use crate::agent::tunnel::TunnelSetup;
use crate::planner::RejectReason;
use crate::state::TunnelStatus;
use bgp_core::speaker::SpeakerError;

/// Three nodes of one mesh, direct routes only (no tunnel).
const DIRECT: &str = "
node: {address: 10.0.0.5/24}
pools: [{cidr: 10.244.0.0/16, ipip-mode: never}]
blocks: [10.244.1.0/26]
mesh: {peers: [10.0.0.6, 10.0.0.7]}
";

/// The same with IPIP across subnets: a tunnel is set up.
const TUNNEL: &str = "
node: {address: 10.0.0.5/24}
pools: [{cidr: 10.244.0.0/16, ipip-mode: cross-subnet}]
blocks: [10.244.1.0/26]
mesh: {peers: [10.0.0.6, 10.0.1.6]}
";

fn config(text: &str) -> Config {
    Config::parse(Path::new("test.yaml"), text).unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn net(s: &str) -> IpNetwork {
    s.parse().unwrap()
}

fn node(mtu: u32) -> NodeView {
    NodeView {
        underlay: "eth0".into(),
        address: "10.0.0.5/24".parse().unwrap(),
        mtu,
        address_v6: None,
    }
}

/// No IPv6 underlay routes (these tests plan no IPv6 routes).
struct NoUnderlay;

impl Underlay for NoUnderlay {
    fn routes(&mut self) -> UnderlayRoutes {
        UnderlayRoutes::default()
    }
}

/// A control step started at the returned instant, and its first outputs;
/// `installed`: routes of an earlier run are in the kernel.
fn start(text: &str, installed: bool) -> (Control, Instant, Vec<Output>) {
    let t0 = Instant::now();
    let mut c = Control::new(
        t0,
        Start {
            config: config(text),
            node: node(1500),
            node_name: Some("node-a".into()),
            log_format: "json".into(),
            installed,
            datastore: None,
        },
        Box::new(NoUnderlay),
    );
    let out = drain(&mut c);
    (c, t0, out)
}

fn drain(c: &mut Control) -> Vec<Output> {
    std::iter::from_fn(|| c.poll_output()).collect()
}

/// The plans among `out`, each as `ip route` lines.
fn plans(out: &[Output]) -> Vec<Vec<String>> {
    out.iter()
        .filter_map(|o| match o {
            Output::Plan(p) => Some(p.routes.iter().map(ToString::to_string).collect()),
            _ => None,
        })
        .collect()
}

fn commands(out: &[Output]) -> Vec<&SpeakerCommand> {
    out.iter()
        .filter_map(|o| match o {
            Output::Speaker(c) => Some(c),
            _ => None,
        })
        .collect()
}

fn events(out: &[Output]) -> Vec<&Event> {
    out.iter()
        .filter_map(|o| match o {
            Output::Event(e) => Some(e),
            _ => None,
        })
        .collect()
}

fn statuses(out: &[Output]) -> Vec<&StatusChange> {
    out.iter()
        .filter_map(|o| match o {
            Output::Status(s) => Some(s),
            _ => None,
        })
        .collect()
}

fn tunnel_setups(out: &[Output]) -> Vec<&TunnelSetup> {
    out.iter()
        .filter_map(|o| match o {
            Output::EnsureTunnel(s) => Some(s),
            _ => None,
        })
        .collect()
}

/// `prefix` learned from `peer` with next hop `next_hop`.
fn best(prefix: &str, next_hop: &str, peer: &str) -> RouteChange {
    let next_hop: Ipv4Addr = next_hop.parse().unwrap();
    RouteChange::Best(BestRoute {
        prefix: net(prefix),
        next_hop: IpAddr::V4(next_hop),
        peer: Some(ip(peer)),
        attrs: Arc::new(PathAttrs::new(
            Origin::Igp,
            AsPath::default(),
            NextHop::V4(next_hop),
        )),
        stale: false,
    })
}

/// `peer`'s session came up with `families`.
fn peer_up(peer: &str, families: &[Family]) -> RouteChange {
    use bgp_core::session::Negotiated;
    RouteChange::PeerUp(bgp_core::speaker::PeerUp {
        peer: ip(peer),
        local: None,
        negotiated: Negotiated {
            peer_as: 64512,
            peer_id: Ipv4Addr::new(10, 0, 0, 6),
            hold_time: 90,
            keepalive_time: None,
            families: families.to_vec(),
            rx: bgp_core::wire::DecodeContext::ibgp(),
            tx: bgp_core::wire::DecodeContext::ibgp(),
            route_refresh: true,
            enhanced_route_refresh: false,
            peer_graceful_restart: None,
        },
    })
}

fn end_of_rib(peer: &str, family: Family) -> RouteChange {
    RouteChange::EndOfRib {
        peer: ip(peer),
        family,
    }
}

const BLACKHOLE: &str = "blackhole 10.244.1.0/26";
const B_VIA_6: &str = "10.244.2.0/26 via 10.0.0.6 dev eth0 onlink";

#[test]
fn a_first_start_announces_the_blocks_sets_the_status_and_plans_at_once() {
    let (c, t0, out) = start(DIRECT, false);
    assert_eq!(
        commands(&out),
        [&SpeakerCommand::Announce(
            net("10.244.1.0/26"),
            LocalRoute::default()
        )]
    );
    let s = statuses(&out);
    assert!(s.contains(&&StatusChange::Node(
        node(1500).status(Some("node-a".into()))
    )));
    // Peers in address order.
    assert!(s.contains(&&StatusChange::ConfiguredPeers(vec![
        ip("10.0.0.6"),
        ip("10.0.0.7")
    ])));
    assert_eq!(plans(&out), [vec![BLACKHOLE.to_owned()]]);
    assert!(tunnel_setups(&out).is_empty(), "no IPIP pool, no tunnel");
    assert!(c.is_synced());
    assert_eq!(c.poll_timeout(), Some(t0 + RESYNC));
}

#[test]
fn a_burst_of_route_batches_is_planned_once() {
    let (mut c, t0, _) = start(DIRECT, false);
    c.handle_routes(t0, &[best("10.244.2.0/26", "10.0.0.6", "10.0.0.6")]);
    c.handle_routes(t0, &[best("10.244.3.0/26", "10.0.0.7", "10.0.0.7")]);
    c.handle_routes(t0, &[RouteChange::Withdrawn(net("10.244.3.0/26"))]);
    let out = drain(&mut c);
    assert_eq!(
        plans(&out),
        [vec![BLACKHOLE.to_owned(), B_VIA_6.to_owned()]]
    );
    // Our own route coming back from the speaker is not a learned one.
    c.handle_routes(
        t0,
        &[RouteChange::Best(BestRoute {
            peer: None,
            ..match best("10.244.2.0/26", "10.0.0.6", "10.0.0.6") {
                RouteChange::Best(b) => b,
                _ => unreachable!(),
            }
        })],
    );
    assert_eq!(plans(&drain(&mut c)), [vec![BLACKHOLE.to_owned()]]);
    assert!(drain(&mut c).is_empty(), "nothing changed, nothing to do");
}

/// The `routes_since` of each plan among `out`.
fn plan_times(out: &[Output]) -> Vec<Option<Instant>> {
    out.iter()
        .filter_map(|o| match o {
            Output::Plan(p) => Some(p.routes_since),
            _ => None,
        })
        .collect()
}

#[test]
fn a_plan_carries_when_its_oldest_new_route_batch_arrived() {
    let (mut c, t0, out) = start(DIRECT, false);
    assert_eq!(plan_times(&out), [None], "the first plan learned nothing");
    let t1 = t0 + Duration::from_millis(10);
    let t2 = t0 + Duration::from_millis(20);
    c.handle_routes(t1, &[best("10.244.2.0/26", "10.0.0.6", "10.0.0.6")]);
    c.handle_routes(t2, &[best("10.244.3.0/26", "10.0.0.7", "10.0.0.7")]);
    assert_eq!(plan_times(&drain(&mut c)), [Some(t1)], "the oldest batch");
    // The next plan counts from its own batch, not the earlier one.
    let t3 = t0 + Duration::from_millis(30);
    c.handle_routes(t3, &[RouteChange::Withdrawn(net("10.244.3.0/26"))]);
    assert_eq!(plan_times(&drain(&mut c)), [Some(t3)]);
    // A batch without route changes (End-of-RIB) and the periodic
    // re-plan carry no time: no route waited for them.
    c.handle_routes(t3, &[end_of_rib("10.0.0.6", Family::Ipv4Unicast)]);
    assert_eq!(plan_times(&drain(&mut c)), [None]);
    c.handle_timeout(t0 + RESYNC);
    assert_eq!(plan_times(&drain(&mut c)), [None]);
}

#[test]
fn routes_held_by_graceful_restart_count_from_their_arrival() {
    let (mut c, t0, _) = start(DIRECT, true);
    let t1 = t0 + Duration::from_secs(1);
    c.handle_routes(t1, &[best("10.244.2.0/26", "10.0.0.6", "10.0.0.6")]);
    assert!(plan_times(&drain(&mut c)).is_empty(), "held");
    let t2 = t0 + Duration::from_secs(2);
    // The hold ends with every peer's End-of-RIB for the families its
    // session negotiated (here IPv4 only).
    c.handle_routes(
        t2,
        &[
            peer_up("10.0.0.6", &[Family::Ipv4Unicast]),
            peer_up("10.0.0.7", &[Family::Ipv4Unicast]),
            end_of_rib("10.0.0.6", Family::Ipv4Unicast),
            end_of_rib("10.0.0.7", Family::Ipv4Unicast),
        ],
    );
    // The hold is part of the wait the route saw.
    assert_eq!(plan_times(&drain(&mut c)), [Some(t1)]);
}

#[test]
fn graceful_restart_holds_the_first_plan_until_every_peer_sent_end_of_rib() {
    let (mut c, t0, out) = start(DIRECT, true);
    assert!(plans(&out).is_empty(), "held: {out:?}");
    assert!(!c.is_synced());
    // The resync comes first; the restart time (120 s) ends the hold at
    // the latest (the next test).
    assert_eq!(c.poll_timeout(), Some(t0 + RESYNC));
    let t1 = t0 + Duration::from_secs(1);
    c.handle_routes(
        t1,
        &[
            peer_up("10.0.0.6", &[Family::Ipv4Unicast]),
            best("10.244.2.0/26", "10.0.0.6", "10.0.0.6"),
            end_of_rib("10.0.0.6", Family::Ipv4Unicast),
        ],
    );
    assert!(plans(&drain(&mut c)).is_empty(), "10.0.0.7 still awaited");
    // 10.0.0.7 negotiated both families: its wait ends with the second
    // End-of-RIB, whichever comes first.
    c.handle_routes(
        t1,
        &[
            peer_up("10.0.0.7", &[Family::Ipv4Unicast, Family::Ipv6Unicast]),
            end_of_rib("10.0.0.7", Family::Ipv4Unicast),
        ],
    );
    assert!(
        plans(&drain(&mut c)).is_empty(),
        "10.0.0.7's IPv6 still due"
    );
    c.handle_routes(t1, &[end_of_rib("10.0.0.7", Family::Ipv6Unicast)]);
    let out = drain(&mut c);
    assert!(matches!(events(&out)[0], Event::InSync), "{out:?}");
    assert_eq!(
        plans(&out),
        [vec![BLACKHOLE.to_owned(), B_VIA_6.to_owned()]]
    );
    assert!(c.is_synced());
    // The restart deadline is gone with the hold; the resync stays.
    assert_eq!(c.poll_timeout(), Some(t0 + RESYNC));
    c.handle_timeout(t0 + Duration::from_secs(120));
    let out = drain(&mut c);
    assert!(
        !events(&out)
            .iter()
            .any(|e| matches!(e, Event::HoldExpired { .. }))
    );
}

#[test]
fn the_restart_time_ends_the_hold_without_every_end_of_rib() {
    let (mut c, t0, _) = start(DIRECT, true);
    c.handle_routes(
        t0,
        &[
            peer_up("10.0.0.6", &[Family::Ipv4Unicast]),
            end_of_rib("10.0.0.6", Family::Ipv4Unicast),
        ],
    );
    // The resync tick does not plan while held.
    c.handle_timeout(t0 + RESYNC);
    assert!(plans(&drain(&mut c)).is_empty());
    c.handle_timeout(t0 + Duration::from_secs(119));
    assert!(plans(&drain(&mut c)).is_empty());
    let hold = t0 + Duration::from_secs(120);
    assert_eq!(c.poll_timeout(), Some(hold));
    c.handle_timeout(hold);
    let out = drain(&mut c);
    match events(&out).first() {
        Some(Event::HoldExpired { missing }) => assert_eq!(missing, &[ip("10.0.0.7")]),
        other => panic!("expected HoldExpired, got {other:?}"),
    }
    assert_eq!(plans(&out), [vec![BLACKHOLE.to_owned()]]);
    assert!(c.is_synced());
}

#[test]
fn a_reload_adds_and_removes_peers_and_blocks_and_re_plans() {
    let (mut c, t0, _) = start(DIRECT, false);
    let new = DIRECT
        .replace("10.0.0.6, 10.0.0.7]", "10.0.0.6, 10.0.0.8]")
        .replace("[10.244.1.0/26]", "[10.244.1.64/26]");
    c.handle_reload(t0, Ok(config(&new)));
    let out = drain(&mut c);
    let commands = commands(&out);
    assert_eq!(commands.len(), 4, "{commands:?}");
    assert_eq!(commands[0], &SpeakerCommand::RemovePeer(ip("10.0.0.7")));
    assert!(matches!(commands[1], SpeakerCommand::AddPeer(p) if p.address == ip("10.0.0.8")));
    assert_eq!(commands[2], &SpeakerCommand::Withdraw(net("10.244.1.0/26")));
    assert_eq!(
        commands[3],
        &SpeakerCommand::Announce(net("10.244.1.64/26"), LocalRoute::default())
    );
    assert!(
        statuses(&out).contains(&&StatusChange::ConfiguredPeers(vec![
            ip("10.0.0.6"),
            ip("10.0.0.8")
        ]))
    );
    assert!(
        events(&out)
            .iter()
            .any(|e| matches!(e, Event::Reloaded(r) if r.add_peers.len() == 1))
    );
    assert_eq!(plans(&out), [vec!["blackhole 10.244.1.64/26".to_owned()]]);
    assert_eq!(c.config().blocks, [net("10.244.1.64/26")]);
}

#[test]
fn keys_that_need_a_restart_are_reported_and_keep_their_running_values() {
    let (mut c, t0, _) = start(DIRECT, false);
    c.handle_reload(t0, Ok(config(&format!("{DIRECT}route-protocol: 99\n"))));
    let out = drain(&mut c);
    assert!(
        events(&out)
            .iter()
            .any(|e| matches!(e, Event::NeedsRestart(keys) if keys == &["route-protocol"]))
    );
    assert!(commands(&out).is_empty());
    assert_eq!(
        c.config().route_protocol,
        crate::config::DEFAULT_ROUTE_PROTOCOL
    );
}

#[test]
fn a_reload_turns_the_per_peer_metrics_off_and_on_without_a_restart() {
    let (mut c, t0, _) = start(DIRECT, false);
    let off = format!("{DIRECT}admin: {{per-peer-metrics: false}}\n");
    c.handle_reload(t0, Ok(config(&off)));
    let out = drain(&mut c);
    assert!(statuses(&out).contains(&&StatusChange::PerPeerMetrics(false)));
    assert!(
        !events(&out)
            .iter()
            .any(|e| matches!(e, Event::NeedsRestart(_))),
        "{out:?}"
    );
    assert!(!c.config().admin.per_peer_metrics);
    // The same file again changes nothing; the default back turns them on.
    c.handle_reload(t0, Ok(config(&off)));
    let out = drain(&mut c);
    assert!(
        !statuses(&out)
            .iter()
            .any(|s| matches!(s, StatusChange::PerPeerMetrics(_)))
    );
    c.handle_reload(t0, Ok(config(DIRECT)));
    let out = drain(&mut c);
    assert!(statuses(&out).contains(&&StatusChange::PerPeerMetrics(true)));
}

#[test]
fn a_reload_that_cannot_be_read_changes_nothing() {
    let (mut c, t0, _) = start(DIRECT, false);
    let error = Config::parse(Path::new("test.yaml"), "node: {address: nonsense}\n").unwrap_err();
    c.handle_reload(t0, Err(error));
    let out = drain(&mut c);
    assert_eq!(out.len(), 1, "{out:?}");
    assert!(matches!(events(&out)[0], Event::ReloadRefused(_)));
    assert_eq!(c.config(), &config(DIRECT));
}

#[test]
fn a_reload_that_removes_the_last_awaited_peer_ends_the_hold() {
    let (mut c, t0, _) = start(DIRECT, true);
    c.handle_routes(
        t0,
        &[
            peer_up("10.0.0.6", &[Family::Ipv4Unicast]),
            end_of_rib("10.0.0.6", Family::Ipv4Unicast),
        ],
    );
    assert!(plans(&drain(&mut c)).is_empty());
    c.handle_reload(
        t0,
        Ok(config(&DIRECT.replace("10.0.0.6, 10.0.0.7]", "10.0.0.6]"))),
    );
    let out = drain(&mut c);
    assert!(events(&out).iter().any(|e| matches!(e, Event::InSync)));
    assert_eq!(plans(&out), [vec![BLACKHOLE.to_owned()]]);
}

#[test]
fn plans_wait_for_the_first_tunnel_set_up_and_set_ups_never_overlap() {
    let (mut c, t0, out) = start(TUNNEL, false);
    let setups = tunnel_setups(&out);
    assert_eq!(setups.len(), 1);
    assert_eq!(
        (setups[0].mtu, setups[0].log_format.as_str()),
        (1480, "json")
    );
    assert!(plans(&out).is_empty(), "routes through tunl0 need tunl0");
    c.handle_routes(t0, &[best("10.244.2.0/26", "10.0.1.6", "10.0.1.6")]);
    assert!(plans(&drain(&mut c)).is_empty());
    // A node read while the set-up runs asks for another one: it waits.
    c.handle_node(t0, Ok(node(1500)));
    assert!(tunnel_setups(&drain(&mut c)).is_empty());
    c.handle_tunnel(
        t0,
        Err(TunnelError::NoDevice {
            device: "tunl0".into(),
        }),
    );
    let out = drain(&mut c);
    assert!(matches!(events(&out)[0], Event::TunnelFailed { .. }));
    assert!(statuses(&out).iter().any(|s| matches!(
        s,
        StatusChange::Tunnel(TunnelStatus { backend: TunnelInUse::None, note: Some(n), .. })
            if n.contains("did not create tunl0")
    )));
    assert_eq!(
        plans(&out),
        [vec![
            BLACKHOLE.to_owned(),
            "10.244.2.0/26 via 10.0.1.6 dev tunl0 onlink mtu 1480".to_owned()
        ]]
    );
    // The one asked for meanwhile waits for the retry (1 s).
    assert!(tunnel_setups(&out).is_empty());
    let retry = t0 + Duration::from_secs(1);
    assert_eq!(c.poll_timeout(), Some(retry));
    c.handle_timeout(retry);
    assert_eq!(tunnel_setups(&drain(&mut c)).len(), 1);
    c.handle_tunnel(t0, Ok((TunnelInUse::Kernel, None)));
    let out = drain(&mut c);
    assert!(tunnel_setups(&out).is_empty());
    assert!(plans(&out).is_empty(), "nothing to re-plan");
    assert_eq!(
        statuses(&out),
        [&StatusChange::Tunnel(TunnelStatus {
            backend: TunnelInUse::Kernel,
            device: "tunl0".into(),
            note: None,
            wanted: true,
            failures: 1,
        })]
    );
}

#[test]
fn a_node_change_is_read_once_the_burst_settles_and_re_plans() {
    let (mut c, t0, _) = start(TUNNEL, false);
    c.handle_tunnel(t0, Ok((TunnelInUse::Kernel, None)));
    c.handle_routes(t0, &[best("10.244.2.0/26", "10.0.1.6", "10.0.1.6")]);
    drain(&mut c);
    let t1 = t0 + Duration::from_secs(1);
    c.handle_node_changed(t1);
    c.handle_node_changed(t1 + Duration::from_millis(10));
    assert_eq!(c.poll_timeout(), Some(t1 + NODE_SETTLE));
    c.handle_timeout(t1 + Duration::from_millis(49));
    assert!(drain(&mut c).is_empty());
    c.handle_timeout(t1 + NODE_SETTLE);
    let out = drain(&mut c);
    assert!(matches!(out.as_slice(), [Output::ReadNode]), "{out:?}");
    // The underlay's MTU went up: tunnel routes and the tunnel follow.
    c.handle_node(t1 + NODE_SETTLE, Ok(node(9000)));
    let out = drain(&mut c);
    assert!(
        matches!(events(&out)[0], Event::NodeChanged { old, new } if old.mtu == 1500 && new.mtu == 9000)
    );
    assert!(statuses(&out).contains(&&StatusChange::Node(
        node(9000).status(Some("node-a".into()))
    )));
    assert_eq!(tunnel_setups(&out)[0].mtu, 8980);
    assert_eq!(
        plans(&out),
        [vec![
            BLACKHOLE.to_owned(),
            "10.244.2.0/26 via 10.0.1.6 dev tunl0 onlink mtu 8980".to_owned()
        ]]
    );
    assert_eq!(c.node().mtu, 9000);
    // The next notification arms the settle timer again.
    c.handle_node_changed(t1 + Duration::from_secs(1));
    assert_eq!(
        c.poll_timeout(),
        Some(t1 + Duration::from_secs(1) + NODE_SETTLE)
    );
}

#[test]
fn an_unchanged_or_unreadable_node_re_plans_nothing_but_the_tunnel_is_checked() {
    let (mut c, t0, _) = start(TUNNEL, false);
    c.handle_tunnel(t0, Ok((TunnelInUse::Kernel, None)));
    drain(&mut c);
    c.handle_node(t0, Ok(node(1500)));
    let out = drain(&mut c);
    assert!(
        matches!(out.as_slice(), [Output::EnsureTunnel(_)]),
        "{out:?}"
    );
    c.handle_tunnel(t0, Ok((TunnelInUse::Kernel, None)));
    drain(&mut c);
    c.handle_node(t0, Err(NodeError::NoAddress));
    let out = drain(&mut c);
    assert!(matches!(
        out.as_slice(),
        [
            Output::Event(Event::NodeUnreadable(NodeError::NoAddress)),
            Output::EnsureTunnel(_)
        ]
    ));
    assert_eq!(c.node(), &node(1500));
}

#[test]
fn the_resync_tick_re_plans_the_same_routes_every_period() {
    let (mut c, t0, out) = start(DIRECT, false);
    let first = plans(&out);
    c.handle_timeout(t0 + RESYNC);
    let out = drain(&mut c);
    assert_eq!(plans(&out), first);
    assert!(events(&out).iter().any(|e| matches!(
        e,
        Event::Planned {
            cause: PlanCause::Resync,
            ..
        }
    )));
    assert_eq!(c.poll_timeout(), Some(t0 + RESYNC + RESYNC));
}

#[test]
fn a_refused_route_is_reported_once_and_counted_while_refused() {
    let (mut c, t0, _) = start(DIRECT, false);
    // A neighbour's route into our own block.
    c.handle_routes(t0, &[best("10.244.1.0/27", "10.0.0.6", "10.0.0.6")]);
    let out = drain(&mut c);
    let refused: Vec<_> = events(&out)
        .into_iter()
        .filter(|e| matches!(e, Event::Refused(_)))
        .collect();
    assert_eq!(refused.len(), 1, "{out:?}");
    let counts = BTreeMap::from([(RejectReason::OverlapsLocalBlock, 1)]);
    assert!(statuses(&out).contains(&&StatusChange::Rejected(counts.clone())));
    c.handle_routes(t0, &[best("10.244.2.0/26", "10.0.0.6", "10.0.0.6")]);
    let out = drain(&mut c);
    assert!(!events(&out).iter().any(|e| matches!(e, Event::Refused(_))));
    assert!(statuses(&out).contains(&&StatusChange::Rejected(counts)));
    c.handle_routes(t0, &[RouteChange::Withdrawn(net("10.244.1.0/27"))]);
    let out = drain(&mut c);
    assert!(statuses(&out).contains(&&StatusChange::Rejected(BTreeMap::new())));
}

#[test]
fn an_ipv6_block_is_announced_only_with_an_ipv6_address() {
    let text = "
node: {address: 10.0.0.5/24}
pools: [{cidr: 10.244.0.0/16, ipip-mode: never}, {cidr: \"fd00:244::/48\"}]
blocks: [\"fd00:244:0:1::/64\"]
";
    let (_, _, out) = start(text, false);
    assert!(commands(&out).is_empty());
    assert!(
        matches!(events(&out)[0], Event::Ipv6BlockNotAnnounced(b) if *b == net("fd00:244:0:1::/64"))
    );
}

#[test]
fn only_a_failed_peer_command_is_reported() {
    let (mut c, t0, _) = start(DIRECT, false);
    c.handle_peer_result(
        t0,
        PeerResult {
            peer: ip("10.0.0.8"),
            change: PeerChange::Add,
            result: Ok(()),
        },
    );
    assert!(drain(&mut c).is_empty());
    c.handle_peer_result(
        t0,
        PeerResult {
            peer: ip("10.0.0.7"),
            change: PeerChange::Remove,
            result: Err(SpeakerError::UnknownPeer(ip("10.0.0.7"))),
        },
    );
    let out = drain(&mut c);
    assert!(matches!(
        events(&out)[0],
        Event::PeerCommandFailed(PeerResult {
            change: PeerChange::Remove,
            result: Err(SpeakerError::UnknownPeer(_)),
            ..
        })
    ));
}

/// The CNI file's outputs.
mod cni;
mod first_plan;
mod moves;
/// Nodes from a datastore.
mod nodes;
mod tunnel_retry;
