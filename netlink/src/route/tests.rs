//! The route codec against netlink-packet-route's encoding of the same
//! messages (an independent implementation), and on hand-made edge cases.
//! The kernel's own bytes are in `tests/kernel_vectors.rs`.

use super::*;
use netlink_packet_core::{Emitable, Parseable};
use netlink_packet_route::AddressFamily;
use netlink_packet_route::route::{
    RouteAttribute, RouteFlags, RouteHeader, RouteMessage, RouteMetric, RouteNextHop,
    RouteProtocol, RouteScope, RouteType as NprType,
};

/// netlink-packet-route's `RouteMessage` for what [`emit_new_route`]
/// writes.
fn npr_new_route(dst: &IpNetwork, shape: &RouteShape, protocol: u8) -> RouteMessage {
    let mut message = RouteMessage::default();
    message.header = npr_header(dst, protocol);
    message
        .attributes
        .push(RouteAttribute::Destination(dst.network().into()));
    message.header.scope = RouteScope::Universe;
    match *shape {
        RouteShape::Blackhole | RouteShape::Foreign => message.header.kind = NprType::BlackHole,
        RouteShape::Gateway {
            via,
            oif,
            onlink,
            mtu,
        } => {
            message.header.kind = NprType::Unicast;
            if onlink {
                message.header.flags |= RouteFlags::Onlink;
            }
            message.attributes.push(RouteAttribute::Gateway(via.into()));
            message.attributes.push(RouteAttribute::Oif(oif));
            if let Some(mtu) = mtu {
                message
                    .attributes
                    .push(RouteAttribute::Metrics(vec![RouteMetric::Mtu(mtu)]));
            }
        }
        RouteShape::Nexthop { id, mtu } => {
            message.header.kind = NprType::Unicast;
            message.attributes.push(RouteAttribute::NhId(id));
            if let Some(mtu) = mtu {
                message
                    .attributes
                    .push(RouteAttribute::Metrics(vec![RouteMetric::Mtu(mtu)]));
            }
        }
        RouteShape::BpfGateway { .. } => {
            panic!("netlink-packet-route has no BPF lightweight tunnel: see bpf_gateway_bytes_*")
        }
    }
    message
}

/// netlink-packet-route's `RouteMessage` for what [`emit_del_route`]
/// writes.
fn npr_del_route(route: &KernelRoute, protocol: u8) -> RouteMessage {
    let mut message = RouteMessage::default();
    message.header = npr_header(&route.dst, protocol);
    message.header.tos = route.tos;
    message.header.scope = RouteScope::NoWhere;
    message
        .attributes
        .push(RouteAttribute::Destination(route.dst.network().into()));
    message
        .attributes
        .push(RouteAttribute::Priority(route.priority));
    match route.shape {
        RouteShape::Blackhole => message.header.kind = NprType::BlackHole,
        RouteShape::Gateway { via, oif, .. } => {
            message.header.kind = NprType::Unicast;
            message.attributes.push(RouteAttribute::Gateway(via.into()));
            message.attributes.push(RouteAttribute::Oif(oif));
        }
        RouteShape::Nexthop { .. } => message.header.kind = NprType::Unicast,
        RouteShape::BpfGateway { via, oif, .. } => {
            message.header.kind = NprType::Unicast;
            message.attributes.push(RouteAttribute::Gateway(via.into()));
            message.attributes.push(RouteAttribute::Oif(oif));
        }
        RouteShape::Foreign => {}
    }
    message
}

/// A BPF xmit route as written, byte for byte (netlink-packet-route has no
/// BPF lightweight tunnel to compare with; the kernel's acceptance and
/// dump are in ipip's `tests/bpf.rs`), and read back as the same shape.
#[test]
fn bpf_gateway_bytes_carry_the_program_fd_and_a_name_with_id_and_headroom() {
    let dst: IpNetwork = "10.244.2.0/26".parse().unwrap();
    let shape = RouteShape::BpfGateway {
        via: "10.91.1.2".parse().unwrap(),
        oif: 2,
        program: BpfProgram { id: 107, fd: 9 },
        headroom: 20,
    };
    let bytes = new_route_bytes(&dst, &shape, 98);
    // After rtmsg (12), RTA_DST (8), RTA_GATEWAY (8), RTA_OIF (8):
    let encap = &bytes[36..];
    let expected_name = b"podroute-ipip-107+20\0";
    let mut expected: Vec<u8> = vec![6, 0, 21, 0, 6, 0, 0, 0]; // RTA_ENCAP_TYPE = BPF, padded
    let name_len = 4 + expected_name.len();
    let name_padded = (name_len + 3) & !3;
    // A nest's length covers its attributes' padding, as the kernel's
    // nla_nest_end() counts it.
    let xmit_len = 4 + 8 + name_padded;
    let encap_len = 4 + xmit_len + 8;
    expected.extend_from_slice(&(encap_len as u16).to_ne_bytes());
    expected.extend_from_slice(&(22u16 | 0x8000).to_ne_bytes()); // RTA_ENCAP, nested
    expected.extend_from_slice(&(xmit_len as u16).to_ne_bytes());
    expected.extend_from_slice(&(3u16 | 0x8000).to_ne_bytes()); // LWT_BPF_XMIT, nested
    expected.extend_from_slice(&[8, 0, 1, 0, 9, 0, 0, 0]); // LWT_BPF_PROG_FD 9
    expected.extend_from_slice(&(name_len as u16).to_ne_bytes());
    expected.extend_from_slice(&2u16.to_ne_bytes()); // LWT_BPF_PROG_NAME
    expected.extend_from_slice(expected_name);
    expected.resize(expected.len() + (name_padded - name_len), 0);
    expected.extend_from_slice(&[8, 0, 4, 0, 20, 0, 0, 0]); // LWT_BPF_XMIT_HEADROOM 20
    assert_eq!(encap, &expected[..]);
    assert_eq!(bytes[8..12], RTNH_F_ONLINK.to_ne_bytes());

    let read = KernelRoute::from_route(&Route::parse(&bytes).unwrap()).unwrap();
    assert_eq!(read.shape, shape);
    assert_eq!(
        read.display_with_device(Some("eth0")).to_string(),
        "10.244.2.0/26 via 10.91.1.2 dev eth0 onlink encap bpf xmit podroute-ipip-107+20 headroom 20"
    );
}

/// A gateway route with an encapsulation that is not our program (another
/// program's name, another encap type, an MTU beside it) is foreign, so
/// the FIB replaces it.
#[test]
fn a_gateway_route_with_someone_elses_encap_is_foreign() {
    let dst: IpNetwork = "10.244.2.0/26".parse().unwrap();
    let ours = RouteShape::BpfGateway {
        via: "10.91.1.2".parse().unwrap(),
        oif: 2,
        program: BpfProgram { id: 7, fd: 3 },
        headroom: 20,
    };
    let mut route = Route::parse(&new_route_bytes(&dst, &ours, 98)).unwrap();
    route.encap = Some(Encap::BpfXmit {
        name: "tunnel.o:[lwt_xmit]".into(),
        headroom: 0,
    });
    assert_eq!(
        KernelRoute::from_route(&route).unwrap().shape,
        RouteShape::Foreign
    );
    route.encap = Some(Encap::Other(1));
    assert_eq!(
        KernelRoute::from_route(&route).unwrap().shape,
        RouteShape::Foreign
    );
    route.encap = Some(Encap::BpfXmit {
        name: "podroute-ipip-7+20".into(),
        headroom: 0,
    });
    assert_eq!(KernelRoute::from_route(&route).unwrap().shape, ours);
    route.mtu = Some(1400);
    assert_eq!(
        KernelRoute::from_route(&route).unwrap().shape,
        RouteShape::Foreign
    );
}

fn npr_header(dst: &IpNetwork, protocol: u8) -> RouteHeader {
    RouteHeader {
        address_family: match dst {
            IpNetwork::V4(_) => AddressFamily::Inet,
            IpNetwork::V6(_) => AddressFamily::Inet6,
        },
        destination_prefix_length: dst.prefix(),
        table: RouteHeader::RT_TABLE_MAIN,
        protocol: RouteProtocol::from(protocol),
        ..RouteHeader::default()
    }
}

fn bytes_of(message: &RouteMessage) -> Vec<u8> {
    let mut bytes = vec![0; message.buffer_len()];
    message.emit(&mut bytes);
    bytes
}

fn new_route_bytes(dst: &IpNetwork, shape: &RouteShape, protocol: u8) -> Vec<u8> {
    let mut bytes = Vec::new();
    emit_new_route(&mut bytes, dst, shape, protocol);
    bytes
}

/// The byte writers against netlink-packet-route's encoding of the same
/// message, for every shape, both families, and deletes.
#[test]
fn byte_writers_match_netlink_packet_routes_encoding_exactly() {
    let v4: IpAddr = "10.0.0.6".parse().unwrap();
    let v6: IpAddr = "fd00::1".parse().unwrap();
    let shapes = |via| {
        [
            RouteShape::Blackhole,
            RouteShape::Foreign,
            RouteShape::Gateway {
                via,
                oif: 2,
                onlink: true,
                mtu: None,
            },
            RouteShape::Gateway {
                via,
                oif: 7,
                onlink: true,
                mtu: Some(1440),
            },
            RouteShape::Gateway {
                via,
                oif: 2,
                onlink: false,
                mtu: None,
            },
            RouteShape::Nexthop { id: 9, mtu: None },
            RouteShape::Nexthop {
                id: 9,
                mtu: Some(1440),
            },
        ]
    };
    for (dst, via) in [("10.244.3.0/26", v4), ("fd00:1::/122", v6)] {
        let dst: IpNetwork = dst.parse().unwrap();
        for shape in shapes(via) {
            assert_eq!(
                new_route_bytes(&dst, &shape, 98),
                bytes_of(&npr_new_route(&dst, &shape, 98)),
                "new {dst} {shape:?}"
            );
            let route = KernelRoute {
                dst,
                priority: 1024,
                tos: 4,
                shape,
            };
            let mut bytes = Vec::new();
            emit_del_route(&mut bytes, &route, 98);
            assert_eq!(
                bytes,
                bytes_of(&npr_del_route(&route, 98)),
                "del {dst} {shape:?}"
            );
        }
    }
}

/// The reader on every shape in both families, with and without a metric,
/// TOS and `RTA_TABLE`, on a multipath route and on a default route.
#[test]
fn the_reader_reads_every_shape_key_and_table() {
    let mut cases = Vec::new();
    for (dst, via) in [("10.244.3.0/26", "10.0.0.6"), ("fd00:1::/122", "fd00::1")] {
        let dst: IpNetwork = dst.parse().unwrap();
        let via: IpAddr = via.parse().unwrap();
        for shape in [
            RouteShape::Blackhole,
            RouteShape::Gateway {
                via,
                oif: 2,
                onlink: true,
                mtu: Some(1440),
            },
            RouteShape::Gateway {
                via,
                oif: 3,
                onlink: false,
                mtu: None,
            },
        ] {
            let plain = npr_new_route(&dst, &shape, 98);
            let keyed_route = KernelRoute {
                dst,
                priority: 50,
                tos: 8,
                shape,
            };
            let mut keyed = npr_del_route(&keyed_route, 12);
            keyed.header.kind = plain.header.kind;
            keyed.attributes.push(RouteAttribute::Table(1000));
            // A delete carries no flags and no metrics.
            let keyed_shape = match shape {
                RouteShape::Gateway { via, oif, .. } => RouteShape::Gateway {
                    via,
                    oif,
                    onlink: false,
                    mtu: None,
                },
                other => other,
            };
            let mut multipath = plain.clone();
            multipath
                .attributes
                .push(RouteAttribute::MultiPath(vec![RouteNextHop::default()]));
            let route = |priority, tos, shape| KernelRoute {
                dst,
                priority,
                tos,
                shape,
            };
            cases.push((plain, 98, MAIN_TABLE, route(0, 0, shape)));
            cases.push((keyed, 12, 1000, route(50, 8, keyed_shape)));
            // A blackhole is one whatever else it carries.
            let multipath_shape = match shape {
                RouteShape::Blackhole => RouteShape::Blackhole,
                _ => RouteShape::Foreign,
            };
            cases.push((multipath, 98, MAIN_TABLE, route(0, 0, multipath_shape)));
        }
    }
    let default: IpNetwork = "0.0.0.0/0".parse().unwrap();
    let mut no_dst = npr_new_route(&default, &RouteShape::Blackhole, 98);
    no_dst
        .attributes
        .retain(|a| !matches!(a, RouteAttribute::Destination(_)));
    cases.push((
        no_dst,
        98,
        MAIN_TABLE,
        KernelRoute {
            dst: default,
            priority: 0,
            tos: 0,
            shape: RouteShape::Blackhole,
        },
    ));
    for (message, protocol, table, expected) in &cases {
        let route = Route::parse(&bytes_of(message)).expect("parses");
        assert_eq!(
            (route.protocol, route.table),
            (*protocol, *table),
            "{message:?}"
        );
        assert_eq!(
            KernelRoute::from_route(&route).as_ref(),
            Some(expected),
            "{message:?}"
        );
    }
}

#[test]
fn tunnel_route_carries_onlink_flag_gateway_oif_and_mtu_metric() {
    let shape = RouteShape::Gateway {
        via: "10.0.0.6".parse().unwrap(),
        oif: 7,
        onlink: true,
        mtu: Some(1440),
    };
    let bytes = new_route_bytes(&"10.244.3.0/26".parse().unwrap(), &shape, 98);
    let m = RouteMessage::parse(bytes.as_slice()).expect("netlink-packet-route parses it");
    assert_eq!(m.header.kind, NprType::Unicast);
    assert_eq!(m.header.table, 254);
    assert_eq!(u8::from(m.header.protocol), 98);
    assert_eq!(m.header.destination_prefix_length, 26);
    assert!(m.header.flags.contains(RouteFlags::Onlink));
    assert!(m.attributes.contains(&RouteAttribute::Oif(7)));
    assert!(
        m.attributes
            .contains(&RouteAttribute::Metrics(vec![RouteMetric::Mtu(1440)]))
    );
}

#[test]
fn routes_of_other_protocols_or_tables_are_told_apart() {
    let dst = "10.244.1.0/26".parse().unwrap();
    let bird = Route::parse(&new_route_bytes(&dst, &RouteShape::Blackhole, 12)).unwrap();
    assert_ne!(bird.protocol, 98);
    let mut other_table = npr_new_route(&dst, &RouteShape::Blackhole, 98);
    other_table.attributes.push(RouteAttribute::Table(100));
    let read = Route::parse(&bytes_of(&other_table)).unwrap();
    assert_eq!((read.protocol, read.table), (98, 100));
}

#[test]
fn multipath_next_hops_are_read_with_their_gateways() {
    let mut m = npr_new_route(
        &"10.244.5.0/24".parse().unwrap(),
        &RouteShape::Blackhole,
        12,
    );
    m.header.kind = NprType::Unicast;
    let hop = |ifindex, gateway: Option<&str>| {
        let mut h = RouteNextHop::default();
        h.interface_index = ifindex;
        h.attributes = gateway
            .map(|g| RouteAttribute::Gateway(g.parse::<IpAddr>().unwrap().into()))
            .into_iter()
            .collect();
        h
    };
    m.attributes.push(RouteAttribute::MultiPath(vec![
        hop(3, Some("10.91.0.9")),
        hop(7, None),
        hop(7, Some("10.91.0.5")),
    ]));
    let route = Route::parse(&bytes_of(&m)).unwrap();
    let hops: Vec<(u32, Option<IpAddr>)> = route
        .multipath
        .unwrap()
        .iter()
        .map(|h| (h.ifindex, h.gateway))
        .collect();
    assert_eq!(
        hops,
        [
            (3, Some("10.91.0.9".parse().unwrap())),
            (7, None),
            (7, Some("10.91.0.5".parse().unwrap()))
        ]
    );
}

#[test]
fn truncated_or_malformed_bodies_do_not_panic() {
    let shape = RouteShape::Gateway {
        via: "10.0.0.6".parse().unwrap(),
        oif: 7,
        onlink: true,
        mtu: Some(1440),
    };
    let bytes = new_route_bytes(&"10.244.3.0/26".parse().unwrap(), &shape, 98);
    for cut in 0..bytes.len() {
        let _ = Route::parse(&bytes[..cut]).map(|r| KernelRoute::from_route(&r));
    }
    assert_eq!(
        Route::parse(&bytes[..11]),
        None,
        "shorter than struct rtmsg"
    );
    // An RTA_OIF of two bytes: the route is refused, not misread.
    let mut short_oif = bytes[..RTMSG_LEN].to_vec();
    attr::emit(&mut short_oif, RTA_OIF, &[7, 0]);
    assert_eq!(Route::parse(&short_oif), None);
}

#[test]
fn a_route_displays_as_ip_route_shows_it() {
    let links = Links::from_pairs([("eth0", 2)]);
    let route = |shape, priority| KernelRoute {
        dst: "10.244.2.0/26".parse().unwrap(),
        priority,
        tos: 0,
        shape,
    };
    let via = "10.0.0.6".parse().unwrap();
    let gateway = |oif| RouteShape::Gateway {
        via,
        oif,
        onlink: true,
        mtu: Some(1440),
    };
    assert_eq!(
        route(gateway(2), 0).display(&links).to_string(),
        "10.244.2.0/26 via 10.0.0.6 dev eth0 onlink mtu 1440"
    );
    assert_eq!(
        route(gateway(9), 50).display(&links).to_string(),
        "10.244.2.0/26 via 10.0.0.6 dev if9 onlink mtu 1440 metric 50"
    );
    assert_eq!(
        route(RouteShape::Nexthop { id: 7, mtu: None }, 0)
            .display(&links)
            .to_string(),
        "10.244.2.0/26 nhid 7"
    );
    assert_eq!(
        route(RouteShape::Blackhole, 0).display(&links).to_string(),
        "blackhole 10.244.2.0/26"
    );
}
