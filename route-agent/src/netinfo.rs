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
