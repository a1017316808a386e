//! Every config rule, one behaviour per test.

use std::net::IpAddr;
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
            bpf_pin_root: "/sys/fs/bpf/podroute".into(),
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

/// The BGP side: the mesh rule, the speaker config, reflectors, timers
/// and the limits on other nodes' sessions.
mod speaker;
mod tunnel;
