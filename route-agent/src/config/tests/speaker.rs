//! The BGP side of the config: the mesh rule, the speaker config,
//! reflectors, timers and the limits on other nodes' sessions.

use std::net::{IpAddr, Ipv4Addr};

use bgp_core::policy::{MaxPrefix, MaxPrefixAction};
use bgp_core::speaker::ListenConfig;

use super::*;

#[test]
fn mesh_peer_with_higher_address_is_passive() {
    let me = ip("10.0.0.5");
    assert!(mesh_peer_is_passive(me, ip("10.0.0.6")));
    assert!(!mesh_peer_is_passive(me, ip("10.0.0.4")));
}

#[test]
fn mesh_passive_follows_calico_string_order() {
    // Calico compares the strings: "10.0.0.5" > "10.0.0.10", so towards
    // 10.0.0.5 the node 10.0.0.10 waits (calico's confd test
    // "Mesh - peer IP lexically greater").
    assert!(mesh_peer_is_passive(ip("10.0.0.10"), ip("10.0.0.5")));
    assert!(!mesh_peer_is_passive(ip("10.0.0.5"), ip("10.0.0.10")));
}

#[test]
fn speaker_config_has_router_id_listener_mesh_and_explicit_peers() {
    let c = ok(&with(
        "mesh: {peers: [10.0.0.6, 10.0.0.4], password: s3cret}\npeers: [{address: 10.0.0.1, asn: 65001, ttl-security: 1}]\n",
    ));
    let me: Ipv4Addr = "10.0.0.5".parse().unwrap();
    let s = c.to_speaker_config(me);
    assert_eq!(s.local_as, 64512);
    assert_eq!(s.router_id, me);
    assert_eq!(s.listen, Some(ListenConfig::new(IpAddr::V4(me), 179)));
    assert_eq!(s.graceful_restart, Some(GracefulRestart::new(120)));
    type Row<'a> = (IpAddr, u32, bool, Option<IpAddr>, Option<&'a str>);
    let summary: Vec<Row> = s
        .peers
        .iter()
        .map(|p| {
            (
                p.address,
                p.asn,
                p.passive,
                p.local_address,
                p.password.as_ref().map(Password::expose),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                ip("10.0.0.6"),
                64512,
                true,
                Some(IpAddr::V4(me)),
                Some("s3cret")
            ),
            (
                ip("10.0.0.4"),
                64512,
                false,
                Some(IpAddr::V4(me)),
                Some("s3cret")
            ),
            (ip("10.0.0.1"), 65001, false, None, None),
        ]
    );
    assert_eq!(s.peers[2].ttl_security, Some(1));
}

#[test]
fn speaker_config_skips_own_address_when_autodetected() {
    let c = ok(
        "node: {autodetect: {interface: eth0}}\npools: [{cidr: 10.244.0.0/16}]\nmesh: {peers: [10.0.0.5, 10.0.0.6]}\n",
    );
    let s = c.to_speaker_config("10.0.0.5".parse().unwrap());
    let addrs: Vec<IpAddr> = s.peers.iter().map(|p| p.address).collect();
    assert_eq!(addrs, [ip("10.0.0.6")]);
}

#[test]
fn disabled_graceful_restart_gives_none() {
    let c = ok(&with("graceful-restart: {enabled: false}\n"));
    assert_eq!(
        c.to_speaker_config("10.0.0.5".parse().unwrap())
            .graceful_restart,
        None
    );
}

#[test]
fn local_node_carries_blocks_device_and_tunnel_mtu() {
    let c = ok(&with("tunnel: {device: ipip0}\n"));
    let n = c.local_node("10.0.0.5/24".parse().unwrap(), "eth0", 9000);
    assert_eq!(n.tunnel_device, "ipip0");
    assert_eq!(n.tunnel_mtu, 8980);
    assert_eq!(n.blocks, [net("10.244.1.0/26")]);
    assert_eq!(n.underlay, "eth0");
}

#[test]
fn node_name_comes_from_config_then_env_then_hostname() {
    assert_eq!(
        resolve_node_name(Some("a"), Some("b"), Some("c")).as_deref(),
        Some("a")
    );
    assert_eq!(
        resolve_node_name(None, Some("b"), Some("c\n")).as_deref(),
        Some("b")
    );
    assert_eq!(
        resolve_node_name(None, Some(""), Some("c\n")).as_deref(),
        Some("c")
    );
    assert_eq!(resolve_node_name(None, None, None), None);
}

#[test]
fn every_peer_refuses_routes_into_or_covering_our_blocks_and_default_routes_at_import() {
    let c = ok(&with(
        "mesh: {peers: [10.0.0.6]}\npeers:\n  - {address: 10.0.0.1, asn: 65001, import: {rules: [{prefix: 0.0.0.0/0, le: 32, action: accept}], default: reject}}\n  - {address: 10.0.0.2, asn: 65002}\n",
    ));
    let s = c.to_speaker_config("10.0.0.5".parse().unwrap());
    let (mesh, accept_all, no_policy) = (&s.peers[0], &s.peers[1], &s.peers[2]);
    for peer in [mesh, accept_all] {
        let import = peer.import.as_ref().expect("a guarded import policy");
        for refused in [
            "10.244.1.0/26",
            "10.244.1.0/27",
            "10.244.1.2/32",
            "10.244.0.0/23",
            "10.244.0.0/16",
            "0.0.0.0/0",
            "::/0",
        ] {
            assert!(
                !import.accepts(&net(refused)),
                "{} accepts {refused}",
                peer.address
            );
        }
        assert!(
            import.accepts(&net("10.244.2.0/26")),
            "another node's block"
        );
        assert!(import.accepts(&net("10.244.1.64/26")), "next to our block");
    }
    // The peer's own rules still apply after the guards.
    assert!(
        accept_all
            .import
            .as_ref()
            .unwrap()
            .accepts(&net("192.168.0.0/24"))
    );
    // An eBGP peer without a policy keeps none: RFC 8212 refuses all.
    assert_eq!(no_policy.import, None);
    // SIGHUP compares the peers without the guards.
    assert_eq!(
        c.peers_unguarded("10.0.0.5".parse().unwrap())[0].import,
        None
    );
}

// ---- route reflector and timers ----

#[test]
fn route_reflector_takes_clients_from_ranges_with_the_import_guards() {
    let c = ok(&with(
        "route-reflector:\n  cluster-id: 10.0.0.100\n  clients:\n    - prefix: 10.0.0.0/16\n      limit: 5000\nhold-time: 30\nkeepalive-time: 5\n",
    ));
    let s = c.to_speaker_config(Ipv4Addr::new(10, 0, 0, 5));
    assert_eq!(s.cluster_id, Some(Ipv4Addr::new(10, 0, 0, 100)));
    assert_eq!((s.hold_time, s.keepalive_time), (30, Some(5)));
    let [range] = s.dynamic_neighbors.as_slice() else {
        panic!("one range expected: {:?}", s.dynamic_neighbors)
    };
    assert_eq!(range.prefix, net("10.0.0.0/16"));
    assert_eq!((range.asn, range.limit), (64512, 5000));
    assert!(range.route_reflector_client);
    let guard = range.import.as_ref().expect("the hijack guards");
    assert!(
        !guard.accepts(&net("10.244.1.0/26")),
        "our own block refused"
    );
    assert!(!guard.accepts(&net("0.0.0.0/0")), "default route refused");
    assert!(
        guard.accepts(&net("10.244.2.0/26")),
        "another node's block accepted"
    );
}

#[test]
fn defaults_are_no_reflector_and_a_hold_time_of_90() {
    let c = ok(BASE);
    assert_eq!(c.route_reflector, None);
    let s = c.to_speaker_config(Ipv4Addr::new(10, 0, 0, 5));
    assert_eq!(
        (s.hold_time, s.keepalive_time, s.cluster_id),
        (90, None, None)
    );
    assert!(s.dynamic_neighbors.is_empty());
}

#[test]
fn hold_time_of_one_or_two_seconds_is_refused() {
    assert_eq!(
        problems(&with("hold-time: 2\n")),
        vec![Problem::BadHoldTime(2)]
    );
    ok(&with("hold-time: 0\n"));
    ok(&with("hold-time: 3\n"));
}

#[test]
fn connect_retry_defaults_to_one_second_and_zero_is_refused() {
    let s = ok(&with("")).to_speaker_config(Ipv4Addr::new(10, 0, 0, 5));
    assert_eq!(s.connect_retry, 1);
    let s = ok(&with("connect-retry: 5\n")).to_speaker_config(Ipv4Addr::new(10, 0, 0, 5));
    assert_eq!(s.connect_retry, 5);
    assert_eq!(
        problems(&with("connect-retry: 0\n")),
        vec![Problem::ZeroConnectRetry]
    );
}

#[test]
fn keepalive_must_be_below_the_hold_time() {
    assert_eq!(
        problems(&with("hold-time: 30\nkeepalive-time: 30\n")),
        vec![Problem::KeepaliveNotBelowHold {
            keepalive: 30,
            hold: 30
        }]
    );
}

#[test]
fn reflector_settings_that_cannot_work_are_named() {
    let p = problems(&with(
        "route-reflector:\n  cluster-id: 0.0.0.0\n  clients:\n    - {prefix: 10.0.0.1/16, limit: 0}\n",
    ));
    assert_eq!(
        p,
        vec![
            Problem::ZeroClusterId,
            Problem::ClientRangeNotNetwork {
                value: net("10.0.0.1/16"),
                network: net("10.0.0.0/16"),
            },
            Problem::ClientLimitZero(net("10.0.0.1/16")),
        ]
    );
    let shown = ConfigError::Invalid {
        file: FILE.into(),
        problems: p,
    }
    .to_string();
    assert!(shown.contains("did you mean `10.0.0.0/16`"), "{shown}");
}

// ---- limits on the other nodes' sessions (issue 16 item 3) ----

#[test]
fn mesh_peers_get_a_max_prefix_limit_derived_from_the_pools_by_default() {
    let c = ok(&with("mesh: {peers: [10.0.0.6]}\n"));
    let s = c.to_speaker_config(Ipv4Addr::new(10, 0, 0, 5));
    assert_eq!(s.peers[0].max_prefixes.map(|m| m.limit), Some(3072));
}

#[test]
fn a_prefix_of_the_wrong_length_inside_a_pool_is_refused_at_import_from_mesh_peers() {
    let c = ok(&with(
        "mesh: {peers: [10.0.0.6]}\nroute-reflector: {cluster-id: 10.0.0.5, clients: [{prefix: 10.1.0.0/16}]}\n",
    ));
    let s = c.to_speaker_config(Ipv4Addr::new(10, 0, 0, 5));
    let mesh = s.peers[0].import.as_ref().expect("an import filter");
    let range = s.dynamic_neighbors[0]
        .import
        .as_ref()
        .expect("an import filter");
    for import in [mesh, range] {
        assert!(
            import.accepts(&net("10.244.2.0/26")),
            "another node's block"
        );
        assert!(import.accepts(&net("10.244.2.7/32")), "a borrowed address");
        for wrong in [
            "10.244.2.0/27",
            "10.244.2.0/25",
            "10.244.2.0/31",
            "10.244.0.0/16",
            "10.244.0.0/18",
        ] {
            assert!(!import.accepts(&net(wrong)), "{wrong} accepted");
        }
    }
}

#[test]
fn mesh_max_prefixes_and_a_pool_block_size_override_the_defaults() {
    let c = ok(
        "node: {address: 10.0.0.5/24}\npools: [{cidr: 10.244.0.0/16, block-size: 24}]\nmesh: {peers: [10.0.0.6], max-prefixes: {limit: 500, action: warn-only}}\n",
    );
    let s = c.to_speaker_config(Ipv4Addr::new(10, 0, 0, 5));
    assert_eq!(
        s.peers[0].max_prefixes,
        Some(MaxPrefix::new(500, MaxPrefixAction::WarnOnly))
    );
    let import = s.peers[0].import.as_ref().expect("an import filter");
    assert!(import.accepts(&net("10.244.7.0/24")));
    assert!(import.accepts(&net("10.244.7.9/32")));
    assert!(!import.accepts(&net("10.244.7.0/26")));
    // 256 /24 blocks: 3 × 256 is below the floor.
    let c = ok(
        "node: {address: 10.0.0.5/24}\npools: [{cidr: 10.244.0.0/16, block-size: 24}]\nmesh: {peers: [10.0.0.6]}\n",
    );
    let s = c.to_speaker_config(Ipv4Addr::new(10, 0, 0, 5));
    let m = s.peers[0].max_prefixes.expect("a default limit");
    assert_eq!(
        (m.limit, m.action, m.restart_after),
        (
            MIN_NODE_MAX_PREFIXES,
            MaxPrefixAction::Cease,
            Some(NODE_MAX_PREFIX_RESTART)
        )
    );
}

#[test]
fn an_ipv6_pool_counts_a_bounded_number_of_blocks() {
    // A /48 of /122 blocks holds 2^74 blocks; the limit stays finite.
    let c = ok(&with("mesh: {peers: [10.0.0.6]}\n").replace(
        "  - cidr: 10.244.0.0/16\n",
        "  - cidr: 10.244.0.0/16\n  - cidr: fd00:244::/48\n",
    ));
    assert_eq!(
        c.default_node_max_prefixes(),
        3 * (1024 + MAX_BLOCKS_COUNTED as u32)
    );
}

#[test]
fn a_block_size_that_does_not_fit_its_pool_is_named() {
    let p = problems(
        "node: {address: 10.0.0.5/24}\npools: [{cidr: 10.244.0.0/16, block-size: 12}, {cidr: fd00::/48, block-size: 129}]\n",
    );
    assert!(
        p.contains(&Problem::BadBlockSize {
            pool: net("10.244.0.0/16"),
            size: 12,
            min: 16,
            max: 32
        }),
        "{p:?}"
    );
    assert!(
        p.contains(&Problem::BadBlockSize {
            pool: net("fd00::/48"),
            size: 129,
            min: 48,
            max: 128
        }),
        "{p:?}"
    );
}
