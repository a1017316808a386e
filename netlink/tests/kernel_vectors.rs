//! The route and nexthop codec against bytes captured from Linux and
//! iproute2 (`data/kernel.txt`; how they were captured: `data/README.md`):
//!
//! - value → bytes: what iproute2 sent for an `ip route` / `ip nexthop`
//!   command is what our writers write for the same route;
//! - bytes → value: what the kernel dumped (and notified) reads back as the
//!   route or object that was installed.

use std::net::IpAddr;

use ipnetwork::IpNetwork;
use netlink::header::{Header, MessageType, Messages};
use netlink::nexthop::{self, Nexthop, NexthopKey};
use netlink::route::{
    self, FAMILY_V4, FAMILY_V6, KernelRoute, MAIN_TABLE, Route, RouteShape, RouteType,
};

const DATA: &str = include_str!("data/kernel.txt");

/// The FIB's first nexthop id, used by the capture.
const ID: u32 = 0x6200_0001;
/// Interface indexes in the capture's namespace (its `link` lines).
const VETH0: u32 = 3;
const TUNL0: u32 = 5;

/// The whole message (header included) of kind `kind` ("request", "dump",
/// "notify") labelled `label`; each label names one message.
fn vector(kind: &str, label: &str) -> Vec<u8> {
    let mut found = DATA.lines().filter_map(|line| {
        let mut fields = line.split('\t');
        (fields.next()? == kind && fields.next()? == label).then(|| fields.next())?
    });
    let hex = found
        .next()
        .unwrap_or_else(|| panic!("no {kind} {label:?} in data/kernel.txt"));
    assert!(found.next().is_none(), "two {kind} {label:?}");
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect()
}

/// The `link` lines agree with the constants above.
#[test]
fn the_capture_had_the_interface_indexes_the_tests_assume() {
    let index = |name: &str| {
        DATA.lines()
            .find_map(|l| l.strip_prefix(&format!("link\t{name}\t")))
            .and_then(|i| i.parse::<u32>().ok())
    };
    assert_eq!((index("veth0"), index("tunl0")), (Some(VETH0), Some(TUNL0)));
}

/// One message: its header and its body.
fn split(message: &[u8]) -> (Header, &[u8]) {
    let mut walk = Messages::new(message);
    let (header, body) = walk.next().expect("one message");
    assert!(walk.next().is_none() && !walk.malformed());
    assert_eq!(header.length as usize, message.len());
    (header, body)
}

fn net(s: &str) -> IpNetwork {
    s.parse().expect("prefix")
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("address")
}

fn gateway(via: &str, oif: u32, onlink: bool, mtu: Option<u32>) -> RouteShape {
    RouteShape::Gateway {
        via: ip(via),
        oif,
        onlink,
        mtu,
    }
}

/// `ip route replace …` and `ip route del …`: the route values whose
/// requests iproute2 sent.
/// A captured request: its label, type, destination, shape, and for a
/// delete the route's (metric, TOS).
type RouteRequest = (
    &'static str,
    MessageType,
    IpNetwork,
    RouteShape,
    Option<(u32, u8)>,
);

fn route_requests() -> Vec<RouteRequest> {
    let new = MessageType::NEW_ROUTE;
    let del = MessageType::DEL_ROUTE;
    vec![
        (
            "new blackhole",
            new,
            net("10.244.1.0/26"),
            RouteShape::Blackhole,
            None,
        ),
        (
            "new direct",
            new,
            net("10.244.2.0/26"),
            gateway("10.66.0.6", VETH0, true, None),
            None,
        ),
        (
            "new tunnel",
            new,
            net("10.244.3.0/26"),
            gateway("10.67.0.7", TUNL0, true, Some(1440)),
            None,
        ),
        (
            "new underlay",
            new,
            net("10.66.9.0/24"),
            gateway("10.66.0.1", VETH0, false, None),
            None,
        ),
        (
            "new v6 underlay",
            new,
            net("fd00:244:2::/122"),
            gateway("fd00:66::6", VETH0, false, None),
            None,
        ),
        (
            "new v6 blackhole",
            new,
            net("fd00:244:1::/122"),
            RouteShape::Blackhole,
            None,
        ),
        (
            "new through object",
            new,
            net("10.244.4.0/26"),
            RouteShape::Nexthop { id: ID, mtu: None },
            None,
        ),
        (
            "new through object with mtu",
            new,
            net("10.244.5.0/26"),
            RouteShape::Nexthop {
                id: ID,
                mtu: Some(1440),
            },
            None,
        ),
        // (metric, TOS) for deletes.
        (
            "del keyed gateway",
            del,
            net("10.244.6.0/26"),
            gateway("10.66.0.6", VETH0, true, None),
            Some((50, 4)),
        ),
        (
            "del blackhole",
            del,
            net("10.244.1.0/26"),
            RouteShape::Blackhole,
            Some((0, 0)),
        ),
        (
            "del through object",
            del,
            net("10.244.4.0/26"),
            RouteShape::Nexthop { id: ID, mtu: None },
            Some((0, 0)),
        ),
        (
            "del any type",
            del,
            net("10.244.5.0/26"),
            RouteShape::Foreign,
            Some((0, 0)),
        ),
        (
            "del v6 underlay",
            del,
            net("fd00:244:2::/122"),
            gateway("fd00:66::6", VETH0, false, None),
            Some((1024, 0)),
        ),
    ]
}

#[test]
fn our_route_requests_are_byte_for_byte_what_iproute2_sent() {
    for (label, kind, dst, shape, key) in route_requests() {
        let captured = vector("request", label);
        let (header, body) = split(&captured);
        assert_eq!(header.kind, kind, "{label}");
        let mut ours = Vec::new();
        match key {
            None => route::emit_new_route(&mut ours, &dst, &shape, 98),
            Some((priority, tos)) => {
                let route = KernelRoute {
                    dst,
                    priority,
                    tos,
                    shape,
                };
                route::emit_del_route(&mut ours, &route, 98);
            }
        }
        let mut expected = body.to_vec();
        if label == "del v6 underlay" {
            // The one difference: iproute2 sends RT_SCOPE_UNIVERSE for
            // IPv6, we RT_SCOPE_NOWHERE for both families; the IPv6 FIB
            // ignores rtm_scope (net/ipv6/route.c, rtm_to_fib6_config).
            assert_eq!((expected[6], ours[6]), (0, 255));
            expected[6] = 255;
        }
        assert_eq!(ours, expected, "{label}");
    }
}

#[test]
fn route_requests_iproute2_sent_read_back_as_their_values() {
    for (label, _, dst, shape, key) in route_requests() {
        let captured = vector("request", label);
        let route = Route::parse(split(&captured).1).expect(label);
        assert_eq!(route.protocol, 98, "{label}");
        assert_eq!(route.table, MAIN_TABLE, "{label}");
        let read = KernelRoute::from_route(&route).expect(label);
        assert_eq!(read.dst, dst, "{label}");
        if key.is_none() {
            assert_eq!(read.shape, shape, "{label}");
        }
    }
}

#[test]
fn our_nexthop_requests_are_byte_for_byte_what_iproute2_sent() {
    let v4 = NexthopKey {
        via: ip("10.66.0.6"),
        oif: VETH0,
        onlink: true,
    };
    let v6 = NexthopKey {
        via: ip("fd00:66::6"),
        oif: VETH0,
        onlink: false,
    };
    for (label, id, key) in [
        ("new nexthop object", ID, v4),
        ("new v6 nexthop object", ID + 1, v6),
    ] {
        let captured = vector("request", label);
        let (header, body) = split(&captured);
        assert_eq!(header.kind, MessageType::NEW_NEXTHOP);
        let mut ours = Vec::new();
        nexthop::emit_new(&mut ours, id, &key, 98);
        assert_eq!(ours, body, "{label}");
        let read = Nexthop::parse(body).expect(label);
        assert_eq!((read.id, read.protocol, read.key()), (id, 98, Some(key)));
    }
    let captured = vector("request", "del nexthop object");
    let (header, body) = split(&captured);
    assert_eq!(header.kind, MessageType::DEL_NEXTHOP);
    let mut ours = Vec::new();
    nexthop::emit_del(&mut ours, ID);
    assert_eq!(ours, body);
}

/// The routes of the capture's table: (label, protocol, table, what the
/// FIB reads).
fn dumped_routes() -> Vec<(&'static str, u8, u32, KernelRoute)> {
    let r = |dst: &str, priority, tos, shape| KernelRoute {
        dst: net(dst),
        priority,
        tos,
        shape,
    };
    let main = MAIN_TABLE;
    vec![
        (
            "blackhole",
            98,
            main,
            r("10.244.1.0/26", 0, 0, RouteShape::Blackhole),
        ),
        (
            "direct",
            98,
            main,
            r(
                "10.244.2.0/26",
                0,
                0,
                gateway("10.66.0.6", VETH0, true, None),
            ),
        ),
        (
            "tunnel",
            98,
            main,
            r(
                "10.244.3.0/26",
                0,
                0,
                gateway("10.67.0.7", TUNL0, true, Some(1440)),
            ),
        ),
        (
            "underlay",
            98,
            main,
            r(
                "10.66.9.0/24",
                0,
                0,
                gateway("10.66.0.1", VETH0, false, None),
            ),
        ),
        (
            "through object",
            98,
            main,
            r(
                "10.244.4.0/26",
                0,
                0,
                RouteShape::Nexthop { id: ID, mtu: None },
            ),
        ),
        (
            "through object with mtu",
            98,
            main,
            r(
                "10.244.5.0/26",
                0,
                0,
                RouteShape::Nexthop {
                    id: ID,
                    mtu: Some(1440),
                },
            ),
        ),
        (
            "other table",
            12,
            1000,
            r(
                "10.244.7.0/26",
                50,
                8,
                gateway("10.66.0.6", VETH0, true, None),
            ),
        ),
        (
            "multipath",
            12,
            main,
            r("10.244.8.0/26", 0, 0, RouteShape::Foreign),
        ),
        (
            "through group",
            12,
            main,
            r(
                "10.244.9.0/26",
                0,
                0,
                RouteShape::Nexthop { id: 20, mtu: None },
            ),
        ),
        (
            "default",
            98,
            main,
            r("0.0.0.0/0", 7, 0, RouteShape::Blackhole),
        ),
        (
            "v6 blackhole",
            98,
            main,
            r("fd00:244:1::/122", 1024, 0, RouteShape::Blackhole),
        ),
        (
            "v6 underlay",
            98,
            main,
            r(
                "fd00:244:2::/122",
                1024,
                0,
                gateway("fd00:66::6", VETH0, false, None),
            ),
        ),
    ]
}

#[test]
fn routes_the_kernel_dumped_read_back_as_installed() {
    for compat in ["", " (compat 0)"] {
        for (label, protocol, table, mut expected) in dumped_routes() {
            if label == "through group" && compat.is_empty() {
                // In compat mode the kernel reports a group's members as
                // RTA_MULTIPATH too: a multipath route, never the FIB's.
                expected.shape = RouteShape::Foreign;
            }
            let label = format!("{label}{compat}");
            let captured = vector("dump", &label);
            let (header, body) = split(&captured);
            assert_eq!(header.kind, MessageType::NEW_ROUTE, "{label}");
            let route = Route::parse(body).expect(&label);
            assert_eq!((route.protocol, route.table), (protocol, table), "{label}");
            assert_eq!(KernelRoute::from_route(&route), Some(expected), "{label}");
        }
    }
}

#[test]
fn a_route_through_an_object_carries_its_gateway_only_in_compat_mode() {
    let compat = Route::parse(split(&vector("dump", "through object")).1).unwrap();
    assert_eq!(
        (compat.nh_id, compat.gateway, compat.oif),
        (Some(ID), Some(ip("10.66.0.6")), Some(VETH0))
    );
    let bare = Route::parse(split(&vector("dump", "through object (compat 0)")).1).unwrap();
    assert_eq!((bare.nh_id, bare.gateway, bare.oif), (Some(ID), None, None));
}

#[test]
fn a_dumped_multipath_route_lists_its_next_hops() {
    for label in ["multipath", "multipath (compat 0)"] {
        let route = Route::parse(split(&vector("dump", label)).1).unwrap();
        assert_eq!((route.family, route.kind), (FAMILY_V4, RouteType::UNICAST));
        let hops: Vec<(u32, Option<IpAddr>, u8)> = route
            .multipath
            .expect("RTA_MULTIPATH")
            .iter()
            .map(|h| (h.ifindex, h.gateway, h.flags))
            .collect();
        // RTNH_F_ONLINK is 4.
        assert_eq!(
            hops,
            [
                (TUNL0, Some(ip("10.67.0.5")), 4),
                (VETH0, Some(ip("10.66.0.6")), 4)
            ],
            "{label}"
        );
    }
}

#[test]
fn nexthop_objects_the_kernel_dumped_read_back_as_installed() {
    let key = |via: &str, oif, onlink| NexthopKey {
        via: ip(via),
        oif,
        onlink,
    };
    for (label, id, family, protocol, expected_key) in [
        (
            "nexthop gateway",
            ID,
            FAMILY_V4,
            98,
            Some(key("10.66.0.6", VETH0, true)),
        ),
        (
            "nexthop v6 gateway",
            7,
            FAMILY_V6,
            4,
            Some(key("fd00:66::7", VETH0, false)),
        ),
        (
            "nexthop tunnel",
            8,
            FAMILY_V4,
            0,
            Some(key("10.67.0.8", TUNL0, true)),
        ),
    ] {
        let captured = vector("dump", label);
        let (header, body) = split(&captured);
        assert_eq!(header.kind, MessageType::NEW_NEXTHOP, "{label}");
        let n = Nexthop::parse(body).expect(label);
        assert_eq!(
            (
                n.id,
                n.family,
                n.protocol,
                n.key(),
                n.group.len(),
                n.blackhole
            ),
            (id, family, protocol, expected_key, 0, false),
            "{label}"
        );
    }
    let group = Nexthop::parse(split(&vector("dump", "nexthop group")).1).unwrap();
    assert_eq!(
        (group.id, group.key(), group.group.clone()),
        (20, None, vec![8, ID])
    );
    let blackhole = Nexthop::parse(split(&vector("dump", "nexthop blackhole")).1).unwrap();
    assert_eq!(
        (blackhole.id, blackhole.blackhole, blackhole.key()),
        (30, true, None)
    );
}

#[test]
fn notifications_name_their_type_and_the_port_that_caused_them() {
    let captured = vector("notify", "type 24");
    let (header, body) = split(&captured);
    assert_eq!(header.kind, MessageType::NEW_ROUTE);
    // Made by an `ip` process, not by the kernel itself.
    assert_ne!(header.port, 0);
    let route = KernelRoute::from_route(&Route::parse(body).unwrap()).unwrap();
    assert_eq!(route.shape, RouteShape::Blackhole);

    let captured = vector("notify", "type 104");
    let (header, body) = split(&captured);
    assert_eq!(header.kind, MessageType::NEW_NEXTHOP);
    assert_eq!(Nexthop::parse(body).map(|n| n.id), Some(ID));
}

/// Every captured message, cut anywhere: no panic, and never a value read
/// from a body shorter than its fixed header.
#[test]
fn every_captured_message_cut_anywhere_is_refused_or_read_without_panicking() {
    for line in DATA
        .lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with("link"))
    {
        let mut fields = line.split('\t');
        let (kind, label) = (fields.next().unwrap(), fields.next().unwrap());
        let message = vector(kind, label);
        for cut in 0..message.len() {
            let part = &message[..cut];
            for (_, body) in Messages::new(part) {
                let _ = Route::parse(body).map(|r| KernelRoute::from_route(&r));
                let _ = Nexthop::parse(body).map(|n| n.key());
            }
            if cut >= 16 {
                let body = &part[16..];
                assert!(body.len() >= 12 || Route::parse(body).is_none());
                let _ = Nexthop::parse(body);
            }
        }
    }
}
