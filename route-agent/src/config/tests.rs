//! Every config rule, one behaviour per test.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use super::*;

const FILE: &str = "node.yaml";

/// A minimal valid config; tests append top-level sections to it.
const BASE: &str = "\
node:
  address: 10.0.0.5/24
pools:
  - cidr: 10.244.0.0/16
blocks:
  - 10.244.1.0/26
";

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(Path::new(FILE), text)
}

fn with(extra: &str) -> String {
    format!("{BASE}{extra}")
}

fn ok(text: &str) -> Config {
    match parse(text) {
        Ok(c) => c,
        Err(e) => panic!("expected a valid config, got:\n{e}"),
    }
}

fn problems(text: &str) -> Vec<Problem> {
    match parse(text) {
        Err(ConfigError::Invalid { problems, .. }) => problems,
        other => panic!("expected semantic problems, got {other:?}"),
    }
}

/// `(line, column, message, hint, display)` of a parse error.
fn parse_error(text: &str) -> (Option<usize>, Option<usize>, String, String, String) {
    match parse(text) {
        Err(e @ ConfigError::Parse { .. }) => {
            let display = e.to_string();
            let ConfigError::Parse {
                line,
                column,
                message,
                hint,
                ..
            } = e
            else {
                unreachable!()
            };
            (line, column, message, hint, display)
        }
        other => panic!("expected a parse error, got {other:?}"),
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn net(s: &str) -> IpNetwork {
    s.parse().unwrap()
}

// ---- the example and the defaults ----

#[test]
fn example_config_is_valid() {
    let c = ok(include_str!("../../examples/node.yaml"));
    assert_eq!(c.node.name.as_deref(), Some("node-a"));
    assert_eq!(c.mesh.peers.len(), 2);
    assert_eq!(c.peers.len(), 1);
}

#[test]
fn defaults_follow_calico_and_document_the_admin_port() {
    let c = ok(BASE);
    assert_eq!(c.asn, 64512);
    assert_eq!(c.listen_port, 179);
    assert_eq!(
        c.graceful_restart,
        GracefulRestartConfig {
            enabled: true,
            restart_time: 120
        }
    );
    assert_eq!(c.route_protocol, 98);
    assert_eq!(c.admin.listen, "127.0.0.1:9179".parse().unwrap());
    assert_eq!(
        c.tunnel,
        TunnelConfig {
            backend: TunnelBackend::Auto,
            device: "tunl0".into(),
            mtu: 0,
            address: None,
            gro_egress: true,
        }
    );
    assert!(c.mesh.peers.is_empty() && c.peers.is_empty());
}

// ---- parse errors: FILE:LINE:COL: what — fix ----

#[test]
fn unknown_field_names_file_line_and_allowed_fields() {
    let (line, col, message, _, display) = parse_error(&with("colour: blue\n"));
    assert_eq!((line, col), (Some(7), Some(1)));
    assert!(message.contains("unknown field `colour`"), "{message}");
    for allowed in [
        "node",
        "asn",
        "pools",
        "blocks",
        "tunnel",
        "mesh",
        "peers",
        "route-protocol",
    ] {
        assert!(
            message.contains(&format!("`{allowed}`")),
            "{allowed} missing: {message}"
        );
    }
    assert!(display.starts_with("node.yaml:7:1: "), "{display}");
    assert!(
        display.contains(" — remove it or correct its spelling"),
        "{display}"
    );
}

#[test]
fn unknown_nested_field_names_its_path_and_line() {
    let (line, _, message, _, _) = parse_error(&with(
        "peers:\n  - address: 10.0.0.1\n    asn: 65001\n    colour: red\n",
    ));
    assert_eq!(line, Some(10));
    assert!(
        message.starts_with("peers[0]: unknown field `colour`"),
        "{message}"
    );
    assert!(message.contains("`ttl-security`"), "{message}");
}

#[test]
fn bad_cidr_shows_the_value_and_its_line() {
    let text = "node:\n  address: 10.0.0.5/24\npools:\n  - cidr: 10.244.0.0/33\n";
    let (line, _, message, hint, display) = parse_error(text);
    assert_eq!(line, Some(4));
    assert!(
        message.starts_with("pools[0]: `10.244.0.0/33` is not a CIDR"),
        "{message}"
    );
    assert!(hint.contains("ADDRESS/LENGTH"), "{hint}");
    assert!(display.starts_with("node.yaml:4:11: "), "{display}");
}

#[test]
fn bad_cidr_in_a_flow_list_shows_only_that_item() {
    let text = "node:\n  address: 10.0.0.5/24\npools: [{cidr: 10.244.0.0/16}]\nblocks: [10.244.1.0/26, 10.244.x.0/26]\n";
    let (line, col, message, _, _) = parse_error(text);
    assert_eq!((line, col), (Some(4), Some(25)));
    assert!(
        message.contains("`10.244.x.0/26` is not a CIDR"),
        "{message}"
    );
    assert!(!message.contains("10.244.1.0/26"), "{message}");
}

#[test]
fn bad_ip_address_shows_the_value() {
    let (line, _, message, hint, _) =
        parse_error(&with("mesh:\n  peers:\n    - 10.0.0.6\n    - 10.0.0.300\n"));
    assert_eq!(line, Some(10));
    assert!(
        message.contains("`10.0.0.300` is not an IP address"),
        "{message}"
    );
    assert!(hint.contains("without a prefix length"), "{hint}");
}

#[test]
fn bad_address_in_a_bgp_core_field_is_quoted_from_the_file() {
    let (line, _, message, hint, _) = parse_error(&with(
        "peers:\n  - asn: 65001\n    address: 10.0.0.300 # the ToR\n",
    ));
    assert_eq!(line, Some(9));
    assert!(message.contains("(got `10.0.0.300`)"), "{message}");
    assert!(hint.contains("IP address"), "{hint}");
}

#[test]
fn node_address_without_prefix_is_rejected_with_a_hint() {
    let (line, col, message, hint, _) =
        parse_error("node:\n  address: 10.0.0.5\npools:\n  - cidr: 10.244.0.0/16\n");
    assert_eq!((line, col), (Some(2), Some(3)));
    assert!(
        message.contains("`10.0.0.5` has no prefix length"),
        "{message}"
    );
    assert!(hint.contains("10.0.0.5/24"), "{hint}");
}

#[test]
fn unknown_ipip_mode_lists_the_allowed_values() {
    let text = "node:\n  address: 10.0.0.5/24\npools:\n  - cidr: 10.244.0.0/16\n    ipip-mode: sometimes\n";
    let (line, _, message, hint, _) = parse_error(text);
    assert_eq!(line, Some(5));
    assert!(message.contains("unknown variant `sometimes`"), "{message}");
    assert!(message.contains("`cross-subnet`"), "{message}");
    assert!(hint.contains("one of the values"), "{hint}");
}

#[test]
fn calico_spellings_of_ipip_modes_are_accepted() {
    let text = "node:\n  address: 10.0.0.5/24\npools:\n  - {cidr: 10.244.0.0/16, ipip-mode: CrossSubnet}\n  - {cidr: 10.245.0.0/16, ipip-mode: Always}\n  - {cidr: 10.246.0.0/16, ipip-mode: Never}\n";
    let modes: Vec<IpipMode> = ok(text).pools().iter().map(|p| p.ipip_mode).collect();
    assert_eq!(
        modes,
        [IpipMode::CrossSubnet, IpipMode::Always, IpipMode::Never]
    );
}

#[test]
fn nexthop_objects_is_auto_by_default_and_takes_true_false_or_auto() {
    use crate::fib::NexthopMode;
    assert_eq!(ok(BASE).nexthop_objects, NexthopMode::Auto);
    for (value, mode) in [
        ("true", NexthopMode::On),
        ("false", NexthopMode::Off),
        ("auto", NexthopMode::Auto),
        ("\"true\"", NexthopMode::On),
    ] {
        let c = ok(&with(&format!("nexthop-objects: {value}\n")));
        assert_eq!(c.nexthop_objects, mode, "{value}");
    }
    let (line, _, message, _, _) = parse_error(&with("nexthop-objects: sometimes\n"));
    assert_eq!(line, Some(7));
    assert!(
        message.contains("`sometimes`") && message.contains("`auto`"),
        "{message}"
    );
    let (_, _, message, _, _) = parse_error(&with("nexthop-objects: 5\n"));
    assert!(message.contains("`true` or `false`"), "{message}");
}

#[test]
fn out_of_range_number_is_a_parse_error_with_line() {
    let (line, _, message, _, _) = parse_error(&with("route-protocol: 300\n"));
    assert_eq!(line, Some(7));
    assert!(message.contains("route-protocol"), "{message}");
}

#[test]
fn yaml_syntax_error_names_the_line() {
    let (line, _, _, hint, display) = parse_error("node:\n  address: 10.0.0.5/24\n\tpools: []\n");
    assert_eq!(line, Some(3), "{display}");
    assert!(hint.contains("YAML"), "{hint}");
    assert!(display.starts_with("node.yaml:"), "{display}");
}

#[test]
fn empty_file_is_reported_as_empty() {
    for text in ["", "\n# only a comment\n"] {
        let (line, _, message, hint, display) = parse_error(text);
        assert_eq!(line, None);
        assert_eq!(message, "the file is empty");
        assert!(hint.contains("examples/node.yaml"), "{hint}");
        assert!(
            display.starts_with("node.yaml: the file is empty — "),
            "{display}"
        );
    }
}

#[test]
fn bad_prefix_filter_range_names_the_line() {
    let peer = "peers:\n  - address: 10.0.0.1\n    asn: 65001\n    import:\n      rules:\n        - {prefix: 10.0.0.0/16, ge: 8, action: accept}\n      default: reject\n";
    let (line, _, message, hint, _) = parse_error(&with(peer));
    assert_eq!(line, Some(12));
    assert!(message.contains("invalid prefix range"), "{message}");
    assert!(hint.contains("ge <= le"), "{hint}");
}

#[test]
fn missing_read_file_names_the_path() {
    let e = Config::load(Path::new("/nonexistent/route-agent.yaml")).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("/nonexistent/route-agent.yaml: cannot read"),
        "{e}"
    );
}

// ---- semantic errors: FILE: what — fix ----

#[test]
fn semantic_error_display_is_file_what_fix_one_line_each() {
    let e = parse("node: {}\npools: []\n").unwrap_err();
    let text = e.to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    for l in lines {
        assert!(l.starts_with("node.yaml: ") && l.contains(" — "), "{l}");
    }
}

#[test]
fn address_and_autodetect_together_are_rejected() {
    let text = "node:\n  address: 10.0.0.5/24\n  autodetect: {interface: eth0}\npools: [{cidr: 10.244.0.0/16}]\n";
    assert_eq!(problems(text), [Problem::AddressAndAutodetect]);
}

#[test]
fn missing_address_is_rejected() {
    assert_eq!(
        problems("node: {}\npools: [{cidr: 10.244.0.0/16}]\n"),
        [Problem::NoAddress]
    );
}

#[test]
fn autodetect_by_interface_or_can_reach_is_accepted() {
    let a = ok("node:\n  autodetect: {interface: \"ens*\"}\npools: [{cidr: 10.244.0.0/16}]\n");
    assert_eq!(
        a.node.autodetect,
        Some(Autodetect::Interface("ens*".into()))
    );
    let b = ok("node:\n  autodetect:\n    can-reach: 10.0.0.1\npools: [{cidr: 10.244.0.0/16}]\n");
    assert_eq!(
        b.node.autodetect,
        Some(Autodetect::CanReach("10.0.0.1".parse().unwrap()))
    );
}

#[test]
fn autodetect_with_no_or_two_methods_is_a_parse_error() {
    for a in ["{}", "{interface: eth0, can-reach: 10.0.0.1}"] {
        let text = format!("node:\n  autodetect: {a}\npools: [{{cidr: 10.244.0.0/16}}]\n");
        let (line, _, message, hint, _) = parse_error(&text);
        assert_eq!(line, Some(2), "{a}");
        assert!(message.contains("exactly one method"), "{message}");
        assert!(hint.contains("{can-reach: 10.0.0.1}"), "{hint}");
    }
}

#[test]
fn empty_interface_pattern_is_rejected() {
    let text = "node:\n  autodetect: {interface: \"\"}\npools: [{cidr: 10.244.0.0/16}]\n";
    assert_eq!(problems(text), [Problem::EmptyInterfacePattern]);
}

#[test]
fn invalid_node_name_is_rejected() {
    let text = "node:\n  name: Node_A\n  address: 10.0.0.5/24\npools: [{cidr: 10.244.0.0/16}]\n";
    assert_eq!(problems(text), [Problem::BadNodeName("Node_A".into())]);
    let good =
        "node:\n  name: worker-1.example\n  address: 10.0.0.5/24\npools: [{cidr: 10.244.0.0/16}]\n";
    ok(good);
}

#[test]
fn reserved_as_numbers_are_rejected() {
    assert_eq!(
        problems(&with("asn: 0\n")),
        [Problem::ReservedAsn {
            what: "asn".into(),
            asn: 0
        }]
    );
    assert_eq!(
        problems(&with("asn: 23456\n")),
        [Problem::ReservedAsn {
            what: "asn".into(),
            asn: 23456
        }]
    );
    let peer = "peers:\n  - {address: 10.0.0.1, asn: 0}\n";
    assert_eq!(
        problems(&with(peer)),
        [Problem::ReservedAsn {
            what: "peers[0].asn".into(),
            asn: 0
        }]
    );
}

#[test]
fn zero_ports_are_rejected() {
    assert_eq!(
        problems(&with("listen-port: 0\nadmin: {listen: \"127.0.0.1:0\"}\n")),
        [
            Problem::PortZero {
                what: "listen-port",
                default: 179
            },
            Problem::PortZero {
                what: "admin.listen",
                default: DEFAULT_ADMIN_PORT
            },
        ]
    );
}

#[test]
fn config_without_pools_is_rejected() {
    assert_eq!(
        problems("node: {address: 10.0.0.5/24}\n"),
        [Problem::NoPools]
    );
}

#[test]
fn pool_and_block_with_host_bits_suggest_the_network() {
    let text =
        "node: {address: 10.0.0.5/24}\npools: [{cidr: 10.244.3.0/16}]\nblocks: [10.244.1.5/26]\n";
    assert_eq!(
        problems(text),
        [
            Problem::NotNetworkAddress {
                what: "pools[0].cidr".into(),
                value: net("10.244.3.0/16"),
                network: net("10.244.0.0/16"),
            },
            Problem::NotNetworkAddress {
                what: "blocks[0]".into(),
                value: net("10.244.1.5/26"),
                network: net("10.244.1.0/26"),
            },
        ]
    );
    let shown = parse(text).unwrap_err().to_string();
    assert!(shown.contains("did you mean `10.244.0.0/16`?"), "{shown}");
}

#[test]
fn overlapping_pools_are_rejected() {
    let text =
        "node: {address: 10.0.0.5/24}\npools: [{cidr: 10.244.0.0/16}, {cidr: 10.244.128.0/17}]\n";
    assert_eq!(
        problems(text),
        [Problem::OverlappingPools {
            a: net("10.244.0.0/16"),
            b: net("10.244.128.0/17")
        }]
    );
}

#[test]
fn ipv6_pool_with_ipip_is_rejected() {
    for (mode, m) in [
        ("always", IpipMode::Always),
        ("cross-subnet", IpipMode::CrossSubnet),
    ] {
        let text = format!(
            "node: {{address: 10.0.0.5/24}}\npools: [{{cidr: \"fd00:244::/48\", ipip-mode: {mode}}}]\n"
        );
        assert_eq!(
            problems(&text),
            [Problem::Ipv6PoolWithIpip {
                cidr: net("fd00:244::/48"),
                mode: ModeName(m)
            }]
        );
        let shown = parse(&text).unwrap_err().to_string();
        assert!(shown.contains("set `ipip-mode: never`"), "{shown}");
    }
}

#[test]
fn pool_mode_defaults_to_cross_subnet_for_ipv4_and_never_for_ipv6() {
    let text =
        "node: {address: 10.0.0.5/24}\npools: [{cidr: 10.244.0.0/16}, {cidr: \"fd00:244::/48\"}]\n";
    let modes: Vec<IpipMode> = ok(text).pools().iter().map(|p| p.ipip_mode).collect();
    assert_eq!(modes, [IpipMode::CrossSubnet, IpipMode::Never]);
}

#[test]
fn local_block_outside_every_pool_is_rejected() {
    let text = "node: {address: 10.0.0.5/24}\npools: [{cidr: 10.244.0.0/16}]\nblocks: [10.245.1.0/26, 192.168.0.0/24]\n";
    assert_eq!(
        problems(text),
        [
            Problem::BlockOutsidePools(net("10.245.1.0/26")),
            Problem::BlockOutsidePools(net("192.168.0.0/24")),
        ]
    );
}

#[test]
fn overlapping_blocks_are_rejected() {
    let text = "node: {address: 10.0.0.5/24}\npools: [{cidr: 10.244.0.0/16}]\nblocks: [10.244.1.0/26, 10.244.1.0/27]\n";
    assert_eq!(
        problems(text),
        [Problem::OverlappingBlocks {
            a: net("10.244.1.0/26"),
            b: net("10.244.1.0/27")
        }]
    );
}

#[test]
fn bad_tunnel_device_names_are_rejected() {
    for name in ["\"\"", "a-very-long-devname", "tun/0", "\"tun 0\""] {
        let got = problems(&with(&format!("tunnel: {{device: {name}}}\n")));
        assert!(
            matches!(got.as_slice(), [Problem::BadDeviceName(_)]),
            "{name}: {got:?}"
        );
    }
}

#[test]
fn mtu_below_68_is_rejected() {
    assert_eq!(
        problems(&with("tunnel: {mtu: 67}\n")),
        [Problem::MtuOutOfRange(67)]
    );
    assert_eq!(
        problems(&with("tunnel: {mtu: 65516}\n")),
        [Problem::MtuOutOfRange(65516)]
    );
    assert_eq!(ok(&with("tunnel: {mtu: 68}\n")).tunnel.mtu, 68);
}

#[test]
fn tunnel_mtu_zero_means_underlay_minus_20() {
    let c = ok(BASE);
    assert_eq!(c.tunnel.effective_mtu(1500), 1480);
    assert_eq!(c.tunnel.effective_mtu(9001), 8981);
    assert_eq!(
        ok(&with("tunnel: {mtu: 1400}\n"))
            .tunnel
            .effective_mtu(1500),
        1400
    );
}

#[test]
fn per_peer_metrics_are_on_by_default_and_can_be_turned_off() {
    assert!(ok(BASE).admin.per_peer_metrics);
    let c = ok(&with("admin: {per-peer-metrics: false}\n"));
    assert!(!c.admin.per_peer_metrics);
    // The listener keeps its default beside it.
    assert_eq!(c.admin.listen, "127.0.0.1:9179".parse().unwrap());
    // Not a boolean: the line and the fix.
    let (line, _, message, _, display) =
        parse_error(&with("admin:\n  per-peer-metrics: no-thanks\n"));
    assert_eq!(line, Some(8), "{display}");
    assert!(message.contains("per-peer-metrics"), "{message}");
    // A misspelt key is refused with the keys there are.
    let (line, _, message, _, _) = parse_error(&with("admin: {per-peer-metric: false}\n"));
    assert_eq!(line, Some(7));
    assert!(
        message.contains("unknown field `per-peer-metric`") && message.contains("per-peer-metrics"),
        "{message}"
    );
}

#[test]
fn tunnel_gro_egress_is_on_by_default_and_can_be_turned_off() {
    assert!(ok(BASE).tunnel.gro_egress);
    assert!(!ok(&with("tunnel: {gro-egress: false}\n")).tunnel.gro_egress);
    let (line, _, message, _, _) = parse_error(&with("tunnel: {gro-egress: maybe}\n"));
    assert!(line.is_some(), "{message}");
}

#[test]
fn tunnel_address_outside_pools_is_rejected() {
    assert_eq!(
        problems(&with("tunnel: {address: 10.9.0.1}\n")),
        [Problem::TunnelAddressOutsidePools(
            "10.9.0.1".parse().unwrap()
        )]
    );
    ok(&with("tunnel: {address: 10.244.1.1}\n"));
}

#[test]
fn ipv6_mesh_peer_is_rejected() {
    assert_eq!(
        problems(&with("mesh: {peers: [\"fd00::6\"]}\n")),
        [Problem::Ipv6MeshPeer(ip("fd00::6"))]
    );
}

#[test]
fn mesh_containing_our_own_address_is_rejected() {
    assert_eq!(
        problems(&with("mesh: {peers: [10.0.0.6, 10.0.0.5]}\n")),
        [Problem::PeerIsThisNode {
            list: PeerList::Mesh,
            addr: ip("10.0.0.5")
        }]
    );
}

#[test]
fn explicit_peer_with_our_own_address_is_rejected() {
    assert_eq!(
        problems(&with("peers: [{address: 10.0.0.5, asn: 64512}]\n")),
        [Problem::PeerIsThisNode {
            list: PeerList::Explicit,
            addr: ip("10.0.0.5")
        }]
    );
}

#[test]
fn duplicate_peers_are_rejected_within_and_across_lists() {
    let text = with(
        "mesh: {peers: [10.0.0.6, 10.0.0.6, 10.0.0.7]}\npeers: [{address: 10.0.0.7, asn: 64512}]\n",
    );
    assert_eq!(
        problems(&text),
        [
            Problem::DuplicatePeer {
                list: PeerList::Mesh,
                addr: ip("10.0.0.6")
            },
            Problem::DuplicatePeer {
                list: PeerList::Explicit,
                addr: ip("10.0.0.7")
            },
        ]
    );
}

#[test]
fn empty_or_overlong_passwords_are_rejected() {
    let long = "x".repeat(81);
    let text = with(&format!(
        "mesh: {{password: \"\"}}\npeers: [{{address: 10.0.0.1, asn: 64512, password: {long}}}]\n"
    ));
    assert_eq!(
        problems(&text),
        [
            Problem::BadPassword {
                what: "mesh.password".into()
            },
            Problem::BadPassword {
                what: "peers[0] (10.0.0.1)".into()
            },
        ]
    );
    ok(&with(&format!(
        "peers: [{{address: 10.0.0.1, asn: 64512, password: {}}}]\n",
        "x".repeat(80)
    )));
}

#[test]
fn ttl_security_zero_is_rejected() {
    assert_eq!(
        problems(&with(
            "peers: [{address: 10.0.0.1, asn: 64512, ttl-security: 0}]\n"
        )),
        [Problem::TtlSecurityZero(ip("10.0.0.1"))]
    );
}

#[test]
fn route_reflector_client_must_be_ibgp() {
    let text = with("peers: [{address: 10.0.0.1, asn: 65001, route-reflector-client: true}]\n");
    assert_eq!(
        problems(&text),
        [Problem::ReflectorClientNotIbgp {
            addr: ip("10.0.0.1"),
            asn: 65001,
            local: 64512
        }]
    );
    ok(&with(
        "peers: [{address: 10.0.0.1, asn: 64512, route-reflector-client: true}]\n",
    ));
}

#[test]
fn unusable_max_prefixes_are_rejected() {
    for m in [
        "{limit: 0, action: cease}",
        "{limit: 10, action: warn-only, warn-percent: 101}",
    ] {
        let text = with(&format!(
            "peers: [{{address: 10.0.0.1, asn: 64512, max-prefixes: {m}}}]\n"
        ));
        assert_eq!(
            problems(&text),
            [Problem::BadMaxPrefixes(ip("10.0.0.1"))],
            "{m}"
        );
    }
}

#[test]
fn local_address_of_the_other_family_is_rejected() {
    let text = with("peers: [{address: 10.0.0.1, asn: 64512, local-address: \"fd00::5\"}]\n");
    assert_eq!(
        problems(&text),
        [Problem::LocalAddressFamily {
            addr: ip("10.0.0.1"),
            local: ip("fd00::5")
        }]
    );
}

#[test]
fn restart_time_outside_12_bits_is_rejected() {
    assert_eq!(
        problems(&with("graceful-restart: {restart-time: 0}\n")),
        [Problem::BadRestartTime(0)]
    );
    assert_eq!(
        problems(&with("graceful-restart: {restart-time: 4096}\n")),
        [Problem::BadRestartTime(4096)]
    );
    // Not checked when graceful restart is off.
    ok(&with(
        "graceful-restart: {enabled: false, restart-time: 0}\n",
    ));
}

#[test]
fn route_protocols_of_the_kernel_and_other_daemons_are_rejected() {
    for proto in [0u8, 2, 3, 4, 12, 17, 80, 186] {
        let got = problems(&with(&format!("route-protocol: {proto}\n")));
        assert!(
            matches!(got.as_slice(), [Problem::ReservedRouteProtocol { proto: p, .. }] if *p == proto),
            "{proto}: {got:?}"
        );
    }
    let shown = parse(&with("route-protocol: 12\n"))
        .unwrap_err()
        .to_string();
    assert!(
        shown.contains("BIRD") && shown.contains("use the default 98"),
        "{shown}"
    );
    assert_eq!(ok(&with("route-protocol: 201\n")).route_protocol, 201);
}

#[test]
fn all_problems_are_reported_at_once() {
    let text = "node: {address: 10.0.0.5/24}\npools: [{cidr: 10.244.0.0/16}]\nblocks: [10.9.0.0/26]\ntunnel: {mtu: 10}\nroute-protocol: 80\n";
    assert_eq!(problems(text).len(), 3);
}

// ---- warnings ----

#[test]
fn host_prefix_node_address_warns() {
    let c = ok("node: {address: 10.0.0.5/32}\npools: [{cidr: 10.244.0.0/16}]\n");
    assert_eq!(
        c.warnings(),
        [Warning::HostPrefixNodeAddress(
            "10.0.0.5/32".parse().unwrap()
        )]
    );
    assert!(ok(BASE).warnings().is_empty());
}

#[test]
fn ebgp_peer_without_policy_warns_per_direction() {
    let c = ok(&with("peers: [{address: 10.0.0.1, asn: 65001}]\n"));
    let w: Vec<&str> = c
        .warnings()
        .iter()
        .map(|w| match w {
            Warning::EbgpWithoutPolicy { missing, .. } => *missing,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(w, ["import", "export"]);
    // iBGP exchanges everything by default: no warning.
    assert!(
        ok(&with("peers: [{address: 10.0.0.1, asn: 64512}]\n"))
            .warnings()
            .is_empty()
    );
}

// ---- the mesh rule and the speaker config ----

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
