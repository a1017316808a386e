//! What the agent reads about this node's interfaces from the kernel:
//! addresses (for autodetection and the underlay) and MTUs (`ip -o addr`,
//! `ip link`), over the same netlink socket type as the FIB.

use std::io;

use ipnetwork::IpNetwork;
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{LinkAttribute, LinkMessage};

use crate::config::InterfaceAddress;
use crate::fib::{Links, Netlink};

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
pub fn interfaces(netlink: &mut Netlink) -> io::Result<Vec<Interface>> {
    let messages = netlink.dump(RouteNetlinkMessage::GetLink(LinkMessage::default()))?;
    Ok(messages
        .iter()
        .filter_map(|m| match m {
            RouteNetlinkMessage::NewLink(link) => {
                let name = link.attributes.iter().find_map(|a| match a {
                    LinkAttribute::IfName(n) => Some(n.clone()),
                    _ => None,
                })?;
                let mtu = link
                    .attributes
                    .iter()
                    .find_map(|a| match a {
                        LinkAttribute::Mtu(m) => Some(*m),
                        _ => None,
                    })
                    .unwrap_or(1500);
                Some(Interface {
                    name,
                    index: link.header.index,
                    mtu,
                })
            }
            _ => None,
        })
        .collect())
}

/// Every interface address with its prefix length (`ip -o addr`).
pub fn addresses(netlink: &mut Netlink) -> io::Result<Vec<InterfaceAddress>> {
    let names = Links::from_pairs(interfaces(netlink)?.into_iter().map(|i| (i.name, i.index)));
    let messages = netlink.dump(RouteNetlinkMessage::GetAddress(AddressMessage::default()))?;
    Ok(messages
        .iter()
        .filter_map(|m| match m {
            RouteNetlinkMessage::NewAddress(a) => {
                let ip = a.attributes.iter().find_map(|attr| match attr {
                    AddressAttribute::Local(ip) => Some(*ip),
                    _ => None,
                });
                let ip = ip.or_else(|| {
                    a.attributes.iter().find_map(|attr| match attr {
                        AddressAttribute::Address(ip) => Some(*ip),
                        _ => None,
                    })
                })?;
                let address = IpNetwork::new(ip, a.header.prefix_len).ok()?;
                let interface = names.name(a.header.index)?.to_owned();
                Some(InterfaceAddress { interface, address })
            }
            _ => None,
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
    pub fn read(netlink: &mut Netlink, ours: u8) -> io::Result<Self> {
        use netlink_packet_route::AddressFamily;
        use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteMessage, RouteType};
        let names = Links::from_pairs(interfaces(netlink)?.into_iter().map(|i| (i.name, i.index)));
        let mut request = RouteMessage::default();
        request.header.address_family = AddressFamily::Inet6;
        let messages = netlink.dump(RouteNetlinkMessage::GetRoute(request))?;
        let routes = messages
            .iter()
            .filter_map(|m| {
                let RouteNetlinkMessage::NewRoute(r) = m else {
                    return None;
                };
                let h = &r.header;
                if h.address_family != AddressFamily::Inet6
                    || h.kind != RouteType::Unicast
                    || u8::from(h.protocol) == ours
                    || crate::fib::messages::route_table(r)
                        != u32::from(crate::fib::messages::MAIN_TABLE)
                {
                    return None;
                }
                let mut dst = std::net::Ipv6Addr::UNSPECIFIED;
                let (mut gateway, mut oif) = (None, None);
                for a in &r.attributes {
                    match a {
                        RouteAttribute::Destination(RouteAddress::Inet6(d)) => dst = *d,
                        RouteAttribute::Gateway(RouteAddress::Inet6(g)) => gateway = Some(*g),
                        RouteAttribute::Oif(i) => oif = Some(*i),
                        _ => {}
                    }
                }
                Some(UnderlayRoute {
                    dst: ipnetwork::Ipv6Network::new(dst, h.destination_prefix_length).ok()?,
                    gateway,
                    dev: names.name(oif?)?.to_owned(),
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
