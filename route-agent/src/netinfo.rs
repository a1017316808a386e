//! What the agent reads about this node's interfaces from the kernel:
//! addresses (for autodetection and the underlay) and MTUs (`ip -o addr`,
//! `ip link`), over the same netlink socket type as the FIB (dumps of
//! the netlink crate: links and addresses as netlink-packet-route's
//! messages, routes through its route codec).

// Bytes from outside the process are parsed here: no panics and no
// unchecked arithmetic outside tests (the lint set of bgp-core's `wire`).
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic,
        clippy::arithmetic_side_effects
    )
)]

use std::io;

use ipnetwork::IpNetwork;
use netlink::link::{self, Links};
use netlink::route::{FAMILY_ANY, FAMILY_V6, MAIN_TABLE, RouteType};

use crate::config::InterfaceAddress;
use crate::fib::Netlink;

/// One interface: name, index and MTU.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interface {
    /// The name (`eth0`).
    pub name: String,
    /// The kernel's index.
    pub index: u32,
    /// The MTU.
    pub mtu: u32,
}

/// Every interface (`ip link show`).
///
/// # Errors
/// When the link dump fails.
pub fn interfaces(netlink: &mut Netlink) -> io::Result<Vec<Interface>> {
    Ok(netlink
        .links()?
        .iter()
        .filter_map(|l| {
            Some(Interface {
                name: link::name(l)?.to_owned(),
                index: l.header.index,
                mtu: link::mtu(l).unwrap_or(1500),
            })
        })
        .collect())
}

/// Every interface address with its prefix length (`ip -o addr`).
///
/// # Errors
/// When the link or address dump fails.
pub fn addresses(netlink: &mut Netlink) -> io::Result<Vec<InterfaceAddress>> {
    let names = Links::from_pairs(interfaces(netlink)?.into_iter().map(|i| (i.name, i.index)));
    Ok(netlink
        .addresses(FAMILY_ANY)?
        .iter()
        .filter_map(|a| {
            let address = IpNetwork::new(link::address(a)?, a.header.prefix_len).ok()?;
            let interface = names.name(a.header.index)?.to_owned();
            Some(InterfaceAddress { interface, address })
        })
        .collect())
}

/// The IPv6 routes of the main table that are not ours, for sending IPv6
/// blocks whose next hop is off our subnet towards it (`ip -6 route get
/// NH`: the longest match, its gateway, or the next hop itself when the
/// match is a connected route).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UnderlayRoutes {
    routes: Vec<UnderlayRoute>,
}

/// One unicast route of the underlay.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnderlayRoute {
    /// The destination.
    pub dst: ipnetwork::Ipv6Network,
    /// `RTA_GATEWAY`; `None` for a connected route.
    pub gateway: Option<std::net::Ipv6Addr>,
    /// The device.
    pub dev: String,
}

impl UnderlayRoutes {
    /// A table from routes (for tests and callers with their own source).
    pub fn new(routes: Vec<UnderlayRoute>) -> Self {
        Self { routes }
    }

    /// Dumps the main table's IPv6 unicast routes of every protocol but
    /// `ours` (our own routes must not route our next hops).
    ///
    /// # Errors
    /// When the link or route dump fails.
    pub fn read(netlink: &mut Netlink, ours: u8) -> io::Result<Self> {
        let names = Links::from_pairs(interfaces(netlink)?.into_iter().map(|i| (i.name, i.index)));
        let routes = netlink
            .routes(FAMILY_V6)?
            .iter()
            .filter(|r| {
                r.family == FAMILY_V6
                    && r.kind == RouteType::UNICAST
                    && r.protocol != ours
                    && r.table == MAIN_TABLE
            })
            .filter_map(|r| {
                let dst = match r.dst {
                    Some(std::net::IpAddr::V6(d)) => d,
                    _ => std::net::Ipv6Addr::UNSPECIFIED,
                };
                let gateway = match r.gateway {
                    Some(std::net::IpAddr::V6(g)) => Some(g),
                    _ => None,
                };
                Some(UnderlayRoute {
                    dst: ipnetwork::Ipv6Network::new(dst, r.dst_len).ok()?,
                    gateway,
                    dev: names.name(r.oif?)?.to_owned(),
                })
            })
            .collect();
        Ok(Self { routes })
    }
}

impl crate::planner::UnderlayLookup for UnderlayRoutes {
    fn route_to(&self, next_hop: std::net::IpAddr) -> Option<(std::net::IpAddr, String)> {
        let std::net::IpAddr::V6(nh) = next_hop else {
            return None;
        };
        let best = self
            .routes
            .iter()
            .filter(|r| r.dst.contains(nh))
            .max_by_key(|r| r.dst.prefix())?;
        Some((
            std::net::IpAddr::V6(best.gateway.unwrap_or(nh)),
            best.dev.clone(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::planner::UnderlayLookup;

    fn route(dst: &str, gateway: Option<&str>, dev: &str) -> UnderlayRoute {
        UnderlayRoute {
            dst: dst.parse().unwrap(),
            gateway: gateway.map(|g| g.parse().unwrap()),
            dev: dev.to_owned(),
        }
    }

    #[test]
    fn the_longest_match_gives_its_gateway_or_the_next_hop_itself_when_connected() {
        let t = UnderlayRoutes::new(vec![
            route("::/0", Some("fd00:1::1"), "eth0"),
            route("fd00:2::/64", Some("fd00:1::2"), "eth1"),
            route("fd00:3::/64", None, "eth2"),
        ]);
        let nh = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        assert_eq!(
            t.route_to(nh("fd00:2::7")),
            Some((nh("fd00:1::2"), "eth1".into()))
        );
        assert_eq!(
            t.route_to(nh("fd00:9::7")),
            Some((nh("fd00:1::1"), "eth0".into()))
        );
        assert_eq!(
            t.route_to(nh("fd00:3::7")),
            Some((nh("fd00:3::7"), "eth2".into()))
        );
        assert_eq!(t.route_to(nh("10.0.0.1")), None);
        assert_eq!(UnderlayRoutes::default().route_to(nh("fd00:2::7")), None);
    }
}
