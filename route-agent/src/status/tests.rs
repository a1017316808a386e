//! The status client: HTTP parsing, tables and the rendered text.

use super::*;
use crate::admin::dto::{FibDoc, KernelRouteDoc, NodeDoc, PeerType, TunnelDoc};
use crate::planner::{DesiredRoute, RouteKind};

fn doc() -> StatusDoc {
    let routes = [
        DesiredRoute {
            dst: "10.244.1.0/26".parse().unwrap(),
            kind: RouteKind::Blackhole,
        },
        DesiredRoute {
            dst: "10.244.2.0/26".parse().unwrap(),
            kind: RouteKind::Direct {
                via: "10.0.0.6".parse().unwrap(),
                dev: "eth0".into(),
            },
        },
    ];
    StatusDoc {
        version: "0.1.0".into(),
        node: NodeDoc {
            name: Some("node-a".into()),
            address: Some("10.0.0.5/24".parse().unwrap()),
            underlay: "eth0".into(),
            underlay_mtu: 1500,
        },
        ready: false,
        unmet: vec!["peer 10.0.0.7: Active".into()],
        configured_peers: vec![],
        peers: vec![
            PeerDoc {
                address: "10.0.0.6".parse().unwrap(),
                asn: 64512,
                peer_type: PeerType::Ibgp,
                dynamic: false,
                state: "Established".into(),
                uptime_seconds: Some(3723),
                prefixes_received: 1,
                prefixes_accepted: 1,
                prefixes_advertised: 1,
                last_error: None,
                last_notification: None,
                negotiated: None,
            },
            PeerDoc {
                address: "10.0.0.7".parse().unwrap(),
                asn: 64513,
                peer_type: PeerType::Ebgp,
                dynamic: false,
                state: "Active".into(),
                uptime_seconds: None,
                prefixes_received: 0,
                prefixes_accepted: 0,
                prefixes_advertised: 0,
                last_error: Some("connection refused".into()),
                last_notification: None,
                negotiated: None,
            },
        ],
        fib: FibDoc {
            started: true,
            in_sync: true,
            installed_by_kind: [("blackhole", 1), ("direct", 1), ("tunnel", 0)]
                .into_iter()
                .map(|(k, n)| (k.to_owned(), n))
                .collect(),
            installed: routes.iter().map(KernelRouteDoc::from).collect(),
            rejected: [("outside-pools".to_owned(), 3)].into_iter().collect(),
            ..FibDoc::default()
        },
        tunnel: TunnelDoc {
            backend: "none".into(),
            device: "tunl0".into(),
            note: None,
            failures: 0,
        },
        ipip_filter: None,
        bpf_tunnel: None,
    }
}

#[test]
fn renders_the_peer_table_and_the_route_summary() {
    let text = render(&doc(), true);
    let lines: Vec<&str> = text.lines().collect();
    assert!(text.starts_with("route-agent 0.1.0 on node-a (10.0.0.5/24, eth0 mtu 1500)\nNot ready: peer 10.0.0.7: Active\n"), "{text}");
    let row = lines.iter().find(|l| l.starts_with("| 10.0.0.6 ")).unwrap();
    let cells: Vec<&str> = row.split('|').map(str::trim).collect();
    assert_eq!(
        cells,
        [
            "",
            "10.0.0.6",
            "64512",
            "iBGP",
            "Established",
            "1h02m03s",
            "1/1",
            "1",
            "",
            ""
        ]
    );
    let row = lines.iter().find(|l| l.starts_with("| 10.0.0.7 ")).unwrap();
    assert!(
        row.contains("| eBGP ") && row.contains("| -  ") && row.contains("connection refused"),
        "{row}"
    );
    // Every line of a table has the same width.
    let table: Vec<&&str> = lines
        .iter()
        .filter(|l| l.starts_with('|') || l.starts_with('+'))
        .collect();
    assert!(
        table
            .iter()
            .all(|l| l.chars().count() == table[0].chars().count()),
        "{text}"
    );
    assert!(text.contains("\nIPv4 BGP status\n+--"), "{text}");
    assert!(
        text.contains("IPv6 BGP status\nNo IPv6 peers found.\n"),
        "{text}"
    );
    assert!(
        text.contains("Routes: 2 installed (1 blackhole, 1 direct), in sync, 3 rejected\n"),
        "{text}"
    );
    assert!(text.contains("  rejected outside-pools: 3\n"));
    assert!(!text.contains("nexthop objects"), "{text}");
    assert!(text.contains("Tunnel: none\n"));
    assert!(
        text.contains(
            "\n  blackhole 10.244.1.0/26\n  10.244.2.0/26 via 10.0.0.6 dev eth0 onlink\n"
        ),
        "{text}"
    );
}

#[test]
fn says_when_gateway_routes_go_through_nexthop_objects() {
    let mut d = doc();
    d.fib.nexthop_objects = true;
    let text = render(&d, false);
    assert!(
        text.contains(", 3 rejected\n  gateway routes through kernel nexthop objects (`ip route` shows nhid)\n"),
        "{text}"
    );
}

#[test]
fn the_bpf_programs_are_shown_with_their_counters_and_gso_rule() {
    let mut d = doc();
    d.bpf_tunnel = Some(crate::agent::bpf::BpfTunnelStatus {
        encap_program: 7,
        decap_program: 8,
        pin_dir: "/sys/fs/bpf/podroute/net1/ab".into(),
        gso: "protocol 4 pushed as is".into(),
        blocks: 2,
        nodes: 3,
        packets: vec![
            ("egress".into(), "encapsulated".into(), 10),
            ("ingress".into(), "decapsulated".into(), 9),
            ("ingress".into(), "not_node".into(), 4),
        ],
        error: None,
    });
    let text = render(&d, false);
    assert!(
        text.contains("  bpf programs: encap 7, decap 8 (pinned in /sys/fs/bpf/podroute/net1/ab); 2 blocks, IPIP accepted from 3 nodes\n"),
        "{text}"
    );
    assert!(
        text.contains("  bpf packets: 10 encapsulated, 9 decapsulated, 4 dropped from non-nodes, 0 without a block entry, 0 errors; GSO: protocol 4 pushed as is\n"),
        "{text}"
    );
}

#[test]
fn the_route_list_is_shown_only_when_asked_for() {
    let text = render(&doc(), false);
    assert!(
        text.contains("Routes: 2 installed (1 blackhole, 1 direct)"),
        "{text}"
    );
    assert!(!text.contains("Kernel routes"), "{text}");
    assert!(!text.contains("10.244.2.0/26 via"), "{text}");
    assert!(text.contains("`route-agent status --routes`"), "{text}");
}

#[test]
fn uptime_is_short() {
    assert_eq!(format_uptime(59), "59s");
    assert_eq!(format_uptime(61), "1m01s");
    assert_eq!(format_uptime(3723), "1h02m03s");
    assert_eq!(format_uptime(4 * 86_400 + 3 * 3600 + 5), "4d03h");
}

#[test]
fn parses_a_response_with_content_length() {
    let r = parse_response(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\ncontent-length: 5\r\n\r\nfib\nextra", false).unwrap();
    assert_eq!(r.code, 503);
    assert_eq!(r.header("content-type"), Some("text/plain"));
    assert_eq!(r.text(), "fib\ne");
    assert!(parse_response(b"SSH-2.0-OpenSSH\r\n\r\n", false).is_err());
    assert!(parse_response(b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\nshort", false).is_err());
}

#[test]
fn malformed_answers_say_what_was_wrong() {
    assert!(matches!(
        parse_response(b"SSH-2.0-OpenSSH\r\n\r\n", false),
        Err(Malformed::NotHttp1 { .. })
    ));
    assert_eq!(
        parse_response(b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\nshort", false),
        Err(Malformed::CutShort {
            got: 5,
            expected: 9
        })
    );
    assert_eq!(
        parse_response(b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n", false),
        Err(Malformed::BadHeader {
            line: "no colon".into()
        })
    );
    assert_eq!(
        parse_response(b"HTTP/1.1 200 OK", false),
        Err(Malformed::NoEndOfHeaders)
    );
    let chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n";
    assert_eq!(parse_response(chunked, false), Err(Malformed::Chunked));
}

#[test]
fn os_errors_read_as_the_operator_expects() {
    let addr: SocketAddr = "127.0.0.1:9179".parse().unwrap();
    let refused = FetchError::Connect {
        addr,
        source: std::io::ErrorKind::ConnectionRefused.into(),
    };
    assert_eq!(
        refused.to_string(),
        "cannot reach the route-agent admin API at 127.0.0.1:9179: connection refused — is route-agent running?"
    );
    let slow = FetchError::Exchange {
        addr,
        source: std::io::ErrorKind::WouldBlock.into(),
    };
    assert_eq!(
        slow.to_string(),
        "the route-agent admin API at 127.0.0.1:9179 did not answer: no answer within 5 s"
    );
}

#[test]
fn admin_flag_wins_and_wildcards_become_loopback() {
    let mut args = AdminArgs {
        json: false,
        admin: None,
        config: None,
    };
    assert_eq!(
        admin_address(&args).unwrap(),
        "127.0.0.1:9179".parse().unwrap()
    );
    args.admin = Some("0.0.0.0:9999".parse().unwrap());
    assert_eq!(
        admin_address(&args).unwrap(),
        "127.0.0.1:9999".parse().unwrap()
    );
    args.admin = Some("[::]:9999".parse().unwrap());
    assert_eq!(admin_address(&args).unwrap(), "[::1]:9999".parse().unwrap());
}
