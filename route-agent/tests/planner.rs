//! The CrossSubnet planner, rule by rule (calico-semantics.md §2), and
//! the protections against routes that would hijack pod traffic.

use std::net::IpAddr;

use route_agent::planner::*;

fn node() -> LocalNode {
    LocalNode {
        ipv4: Some("10.0.0.5/24".parse().unwrap()),
        ipv6: Some("fd00:10::5/64".parse().unwrap()),
        underlay: "eth0".into(),
        tunnel_device: "tunl0".into(),
        tunnel_mtu: 1480,
        tunnel_encap: TunnelEncap::Device,
        blocks: vec![
            "10.244.1.0/26".parse().unwrap(),
            "fd00:244:1::/122".parse().unwrap(),
        ],
    }
}

fn pools(mode: IpipMode) -> Vec<Pool> {
    vec![
        Pool {
            cidr: "10.244.0.0/16".parse().unwrap(),
            ipip_mode: mode,
        },
        Pool {
            cidr: "fd00:244::/32".parse().unwrap(),
            ipip_mode: mode,
        },
    ]
}

fn learned(prefix: &str, next_hop: &str) -> LearnedRoute {
    LearnedRoute {
        prefix: prefix.parse().unwrap(),
        next_hop: next_hop.parse().unwrap(),
    }
}

/// Underlay with one IPv6 route: fd00:20::/64 via fd00:10::1 dev eth0.
struct OneRoute;
impl UnderlayLookup for OneRoute {
    fn route_to(&self, nh: IpAddr) -> Option<(IpAddr, String)> {
        let net: ipnetwork::IpNetwork = "fd00:20::/64".parse().unwrap();
        net.contains(nh)
            .then(|| ("fd00:10::1".parse().unwrap(), "eth0".to_owned()))
    }
}

/// The `ip route` line planned for `prefix`, or the rejection.
fn outcome(node: &LocalNode, pools: &[Pool], route: LearnedRoute) -> Result<String, RejectReason> {
    let plan = plan(node, pools, &[route], &OneRoute);
    match plan.rejected.as_slice() {
        [r] => Err(r.reason),
        [] => Ok(plan.routes[&route.prefix].to_string()),
        more => panic!("{more:?}"),
    }
}

#[test]
fn local_blocks_become_blackholes() {
    let plan = plan(&node(), &pools(IpipMode::CrossSubnet), &[], &NoUnderlay);
    let lines: Vec<String> = plan.routes.values().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        ["blackhole 10.244.1.0/26", "blackhole fd00:244:1::/122"]
    );
}

#[test]
fn host_sized_blocks_get_no_blackhole() {
    let mut n = node();
    n.blocks = vec![
        "10.244.9.9/32".parse().unwrap(),
        "fd00:244::9/128".parse().unwrap(),
    ];
    assert!(
        plan(&n, &pools(IpipMode::CrossSubnet), &[], &NoUnderlay)
            .routes
            .is_empty()
    );
}

#[test]
fn ipv4_mode_and_subnet_matrix() {
    // (mode, next hop, expected route)
    let same = "10.0.0.6";
    let other = "10.1.0.7";
    let cases = [
        (
            IpipMode::CrossSubnet,
            same,
            "10.244.2.0/26 via 10.0.0.6 dev eth0 onlink",
        ),
        (
            IpipMode::CrossSubnet,
            other,
            "10.244.2.0/26 via 10.1.0.7 dev tunl0 onlink mtu 1480",
        ),
        (
            IpipMode::Always,
            same,
            "10.244.2.0/26 via 10.0.0.6 dev tunl0 onlink mtu 1480",
        ),
        (
            IpipMode::Always,
            other,
            "10.244.2.0/26 via 10.1.0.7 dev tunl0 onlink mtu 1480",
        ),
        (
            IpipMode::Never,
            same,
            "10.244.2.0/26 via 10.0.0.6 dev eth0 onlink",
        ),
        (
            IpipMode::Never,
            other,
            "10.244.2.0/26 via 10.1.0.7 dev eth0 onlink",
        ),
    ];
    for (mode, nh, want) in cases {
        assert_eq!(
            outcome(&node(), &pools(mode), learned("10.244.2.0/26", nh)).as_deref(),
            Ok(want),
            "{mode:?} via {nh}"
        );
    }
}

/// With the `bpf` backend, the routes CrossSubnet sends through the
/// tunnel leave by the underlay with the encapsulation program instead;
/// direct routes stay as they are.
#[test]
fn with_the_bpf_backend_tunnel_routes_leave_by_the_underlay_with_the_program() {
    let mut n = node();
    n.tunnel_encap = TunnelEncap::Bpf;
    let cases = [
        (
            IpipMode::CrossSubnet,
            "10.0.0.6",
            "10.244.2.0/26 via 10.0.0.6 dev eth0 onlink",
        ),
        (
            IpipMode::CrossSubnet,
            "10.1.0.7",
            "10.244.2.0/26 via 10.1.0.7 dev eth0 onlink encap bpf",
        ),
        (
            IpipMode::Always,
            "10.0.0.6",
            "10.244.2.0/26 via 10.0.0.6 dev eth0 onlink encap bpf",
        ),
        (
            IpipMode::Never,
            "10.1.0.7",
            "10.244.2.0/26 via 10.1.0.7 dev eth0 onlink",
        ),
    ];
    for (mode, nh, want) in cases {
        assert_eq!(
            outcome(&n, &pools(mode), learned("10.244.2.0/26", nh)).as_deref(),
            Ok(want),
            "{mode:?} via {nh}"
        );
    }
}

#[test]
fn ipv6_blocks_never_use_ipip() {
    for mode in [IpipMode::Always, IpipMode::CrossSubnet, IpipMode::Never] {
        assert_eq!(
            outcome(
                &node(),
                &pools(mode),
                learned("fd00:244:2::/122", "fd00:10::6")
            )
            .as_deref(),
            Ok("fd00:244:2::/122 via fd00:10::6 dev eth0 onlink"),
            "{mode:?} same subnet"
        );
        assert_eq!(
            outcome(
                &node(),
                &pools(mode),
                learned("fd00:244:2::/122", "fd00:20::7")
            )
            .as_deref(),
            Ok("fd00:244:2::/122 via fd00:10::1 dev eth0"),
            "{mode:?} off subnet: via the underlay gateway"
        );
    }
}

#[test]
fn ipv6_block_off_subnet_without_an_underlay_route_is_refused() {
    assert_eq!(
        outcome(
            &node(),
            &pools(IpipMode::CrossSubnet),
            learned("fd00:244:2::/122", "fd00:99::7")
        ),
        Err(RejectReason::NoUnderlayRoute)
    );
}

#[test]
fn node_address_stored_as_a_slash_32_makes_every_peer_off_subnet() {
    let mut n = node();
    n.ipv4 = Some("10.0.0.5/32".parse().unwrap());
    assert_eq!(
        outcome(
            &n,
            &pools(IpipMode::CrossSubnet),
            learned("10.244.2.0/26", "10.0.0.6")
        )
        .as_deref(),
        Ok("10.244.2.0/26 via 10.0.0.6 dev tunl0 onlink mtu 1480")
    );
}

#[test]
fn the_most_specific_pool_decides_the_mode() {
    let mut p = pools(IpipMode::Always);
    p.push(Pool {
        cidr: "10.244.128.0/17".parse().unwrap(),
        ipip_mode: IpipMode::Never,
    });
    assert_eq!(
        outcome(&node(), &p, learned("10.244.200.0/26", "10.1.0.7")).as_deref(),
        Ok("10.244.200.0/26 via 10.1.0.7 dev eth0 onlink")
    );
    assert_eq!(
        outcome(&node(), &p, learned("10.244.2.0/26", "10.1.0.7")).as_deref(),
        Ok("10.244.2.0/26 via 10.1.0.7 dev tunl0 onlink mtu 1480")
    );
}

#[test]
fn routes_overlapping_a_local_block_are_refused() {
    // Inside the block, the block itself, and a covering prefix.
    for prefix in [
        "10.244.1.0/27",
        "10.244.1.0/26",
        "10.244.0.0/23",
        "10.244.1.7/32",
    ] {
        assert_eq!(
            outcome(
                &node(),
                &pools(IpipMode::CrossSubnet),
                learned(prefix, "10.0.0.6")
            ),
            Err(RejectReason::OverlapsLocalBlock),
            "{prefix}"
        );
    }
    let plan = plan(
        &node(),
        &pools(IpipMode::CrossSubnet),
        &[learned("10.244.1.0/26", "10.0.0.6")],
        &NoUnderlay,
    );
    assert_eq!(
        plan.routes[&"10.244.1.0/26".parse().unwrap()].kind,
        RouteKind::Blackhole,
        "our blackhole stays"
    );
}

#[test]
fn default_routes_are_refused() {
    let p = pools(IpipMode::CrossSubnet);
    assert_eq!(
        outcome(&node(), &p, learned("0.0.0.0/0", "10.0.0.6")),
        Err(RejectReason::DefaultRoute)
    );
    assert_eq!(
        outcome(&node(), &p, learned("::/0", "fd00:10::6")),
        Err(RejectReason::DefaultRoute)
    );
}

#[test]
fn routes_outside_every_pool_are_refused() {
    assert_eq!(
        outcome(
            &node(),
            &pools(IpipMode::CrossSubnet),
            learned("192.168.50.0/24", "10.0.0.6")
        ),
        Err(RejectReason::OutsidePools)
    );
    // A supernet of a pool is outside it too.
    assert_eq!(
        outcome(
            &node(),
            &pools(IpipMode::CrossSubnet),
            learned("10.0.0.0/9", "10.0.0.6")
        ),
        Err(RejectReason::OutsidePools)
    );
}

#[test]
fn borrowed_slash_32_inside_a_pool_is_installed() {
    assert_eq!(
        outcome(
            &node(),
            &pools(IpipMode::CrossSubnet),
            learned("10.244.7.9/32", "10.0.0.6")
        )
        .as_deref(),
        Ok("10.244.7.9/32 via 10.0.0.6 dev eth0 onlink")
    );
}

#[test]
fn a_next_hop_on_this_node_is_refused() {
    let p = pools(IpipMode::CrossSubnet);
    assert_eq!(
        outcome(&node(), &p, learned("10.244.2.0/26", "10.0.0.5")),
        Err(RejectReason::NextHopIsThisNode)
    );
    assert_eq!(
        outcome(&node(), &p, learned("fd00:244:2::/122", "fd00:10::5")),
        Err(RejectReason::NextHopIsThisNode)
    );
}

#[test]
fn a_next_hop_of_the_other_family_is_refused() {
    assert_eq!(
        outcome(
            &node(),
            &pools(IpipMode::CrossSubnet),
            learned("10.244.2.0/26", "fd00:10::6")
        ),
        Err(RejectReason::NextHopFamily)
    );
}

#[test]
fn plan_is_sorted_and_lists_every_rejection_once() {
    let routes = [
        learned("10.244.3.0/26", "10.1.0.7"),
        learned("0.0.0.0/0", "10.0.0.6"),
        learned("10.244.2.0/26", "10.0.0.6"),
        learned("10.244.1.0/26", "10.0.0.6"),
    ];
    let plan = plan(&node(), &pools(IpipMode::CrossSubnet), &routes, &NoUnderlay);
    let keys: Vec<String> = plan.routes.keys().map(ToString::to_string).collect();
    assert_eq!(
        keys,
        [
            "10.244.1.0/26",
            "10.244.2.0/26",
            "10.244.3.0/26",
            "fd00:244:1::/122"
        ]
    );
    let reasons: Vec<RejectReason> = plan.rejected.iter().map(|r| r.reason).collect();
    assert_eq!(
        reasons,
        [RejectReason::DefaultRoute, RejectReason::OverlapsLocalBlock]
    );
}
