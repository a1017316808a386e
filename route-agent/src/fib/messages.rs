//! Route values ↔ rtnetlink route messages (pure, no I/O).
//!
//! The shapes we write are the ones Calico's BIRD and Felix write
//! (`shared/reference/calico-semantics.md` §2), with our own protocol:
//!
//! | [`RouteKind`] | `ip route` | message |
//! |---|---|---|
//! | `Blackhole` | `blackhole B proto 98` | `RTN_BLACKHOLE` |
//! | `Direct` | `B via NH dev eth0 onlink proto 98` | `RTN_UNICAST`, `RTA_GATEWAY`, `RTA_OIF`, `RTNH_F_ONLINK` |
//! | `Tunnel` | `B via NH dev tunl0 onlink mtu M proto 98` | as `Direct`, plus `RTA_METRICS { RTAX_MTU }` |
//! | `Underlay` | `B via GW dev eth0 proto 98` | `RTN_UNICAST`, `RTA_GATEWAY`, `RTA_OIF` |
//!
//! A dumped route is read back into a [`KernelRoute`], whose [`RouteShape`]
//! compares equal to the shape of the desired route exactly when the kernel
//! already holds what we want.

// Messages from the kernel: no panics outside tests.
#![cfg_attr(
    not(test),
    deny(
        clippy::indexing_slicing,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic
    )
)]

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;

use ipnetwork::IpNetwork;
use netlink_packet_route::AddressFamily;
use netlink_packet_route::link::{LinkAttribute, LinkMessage};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteHeader, RouteMessage, RouteMetric,
    RouteProtocol, RouteScope, RouteType,
};

use crate::planner::{DesiredRoute, RouteKind};

/// Our route protocol number (`proto 98` in `ip route`).
///
/// Free in iproute2's `rt_protos` (which names 0–18, 42, 99, 186–192) and
/// distinct from BIRD's 12 (`RTPROT_BIRD`) and Felix's 80, so the agent can
/// run next to either without the two fighting over routes. Configurable:
/// every [`Fib`](super::Fib) takes its protocol.
pub const DEFAULT_PROTOCOL: u8 = 98;

/// The main routing table (`RT_TABLE_MAIN`).
pub const MAIN_TABLE: u8 = RouteHeader::RT_TABLE_MAIN;

/// Interface names ↔ indexes, as one `RTM_GETLINK` dump saw them
/// (`ip -o link show`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Links {
    by_name: HashMap<String, u32>,
    by_index: HashMap<u32, String>,
}

impl Links {
    /// Links from `(name, index)` pairs.
    pub fn from_pairs<S: Into<String>>(pairs: impl IntoIterator<Item = (S, u32)>) -> Self {
        let mut links = Self::default();
        for (name, index) in pairs {
            let name = name.into();
            links.by_index.insert(index, name.clone());
            links.by_name.insert(name, index);
        }
        links
    }

    /// Links from the messages of an `RTM_GETLINK` dump.
    pub fn from_messages<'a>(messages: impl IntoIterator<Item = &'a LinkMessage>) -> Self {
        Self::from_pairs(messages.into_iter().filter_map(|m| {
            m.attributes.iter().find_map(|a| match a {
                LinkAttribute::IfName(name) => Some((name.clone(), m.header.index)),
                _ => None,
            })
        }))
    }

    /// The index of interface `name` (`if_nametoindex`).
    pub fn index(&self, name: &str) -> Option<u32> {
        self.by_name.get(name).copied()
    }

    /// The name of interface `index`.
    pub fn name(&self, index: u32) -> Option<&str> {
        self.by_index.get(&index).map(String::as_str)
    }
}

/// What a route does, in the kernel's terms (devices by index).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RouteShape {
    /// `RTN_BLACKHOLE`.
    Blackhole,
    /// `RTN_UNICAST` through one gateway.
    Gateway {
        /// `RTA_GATEWAY`.
        via: IpAddr,
        /// `RTA_OIF`.
        oif: u32,
        /// `RTNH_F_ONLINK`: the gateway is on the link whatever the
        /// interface's addresses say.
        onlink: bool,
        /// `RTAX_MTU`, when set.
        mtu: Option<u32>,
    },
    /// `RTN_UNICAST` through a nexthop object (`RTA_NH_ID`, `ip nexthop`;
    /// kernel ≥ 5.3) that holds the gateway, device and onlink flag: the
    /// kernel finds a route's next hop by id instead of comparing it with
    /// every next hop on the device (see [`crate::fib::nexthop`]).
    Nexthop {
        /// `RTA_NH_ID`.
        id: u32,
        /// `RTAX_MTU`, when set.
        mtu: Option<u32>,
    },
    /// Anything else found with our protocol (another route type, a
    /// multipath route, a route without gateway): never what we want, so
    /// it is replaced or deleted.
    Foreign,
}

impl RouteShape {
    /// The shape of a planned route, with devices resolved in `links`.
    ///
    /// # Errors
    /// The name of the missing device, when the route's device does not
    /// exist (the kernel would say `ENODEV`).
    pub fn of(kind: &RouteKind, links: &Links) -> Result<Self, String> {
        let resolve = |dev: &String| links.index(dev).ok_or_else(|| dev.clone());
        Ok(match kind {
            RouteKind::Blackhole => Self::Blackhole,
            RouteKind::Direct { via, dev } => Self::Gateway {
                via: *via,
                oif: resolve(dev)?,
                onlink: true,
                mtu: None,
            },
            RouteKind::Tunnel { via, dev, mtu } => Self::Gateway {
                via: *via,
                oif: resolve(dev)?,
                onlink: true,
                // An MTU of 0 means "no route MTU": the kernel does not
                // store a zero RTAX_MTU, so asking for one would never
                // compare equal and would churn.
                mtu: (*mtu != 0).then_some(*mtu),
            },
            RouteKind::Underlay { via, dev } => Self::Gateway {
                via: *via,
                oif: resolve(dev)?,
                onlink: false,
                mtu: None,
            },
        })
    }
}

/// One route of ours as the kernel holds it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KernelRoute {
    /// The destination.
    pub dst: IpNetwork,
    /// `RTA_PRIORITY` (the metric): part of the route's key.
    pub priority: u32,
    /// The TOS: part of the route's key.
    pub tos: u8,
    /// What it does.
    pub shape: RouteShape,
}

/// The metric the kernel gives a route added without one: 0 for IPv4,
/// 1024 for IPv6 (`IP6_RT_PRIO_USER`).
pub fn default_priority(dst: &IpNetwork) -> u32 {
    match dst {
        IpNetwork::V4(_) => 0,
        IpNetwork::V6(_) => 1024,
    }
}

impl KernelRoute {
    /// Reads a dumped route of protocol `protocol` in table `table`.
    ///
    /// `None` for routes of another protocol or table, and for routes that
    /// are not IPv4 or IPv6: those are not ours to look at.
    pub fn parse(message: &RouteMessage, protocol: u8, table: u8) -> Option<Self> {
        let header = &message.header;
        if u8::from(header.protocol) != protocol || route_table(message) != u32::from(table) {
            return None;
        }
        let mut dst_addr = None;
        let mut gateway = None;
        let mut oif = None;
        let mut priority = 0;
        let mut mtu = None;
        let mut nh_id = None;
        let mut multipath = false;
        for attribute in &message.attributes {
            match attribute {
                RouteAttribute::Destination(a) => dst_addr = ip_of(a),
                RouteAttribute::Gateway(a) => gateway = ip_of(a),
                RouteAttribute::Oif(i) => oif = Some(*i),
                RouteAttribute::Priority(p) => priority = *p,
                RouteAttribute::NhId(id) => nh_id = Some(*id),
                RouteAttribute::MultiPath(_) => multipath = true,
                RouteAttribute::Metrics(metrics) => {
                    mtu = metrics.iter().find_map(|m| match m {
                        RouteMetric::Mtu(v) => Some(*v),
                        _ => None,
                    });
                }
                _ => {}
            }
        }
        let len = header.destination_prefix_length;
        let dst = match (header.address_family, dst_addr) {
            (AddressFamily::Inet, Some(ip @ IpAddr::V4(_)))
            | (AddressFamily::Inet6, Some(ip @ IpAddr::V6(_))) => IpNetwork::new(ip, len).ok()?,
            (AddressFamily::Inet, None) => IpNetwork::new(IpAddr::from([0u8; 4]), 0).ok()?,
            (AddressFamily::Inet6, None) => IpNetwork::new(IpAddr::from([0u16; 8]), 0).ok()?,
            _ => return None,
        };
        let shape = match (header.kind, gateway, oif, nh_id) {
            (RouteType::BlackHole, _, _, _) => RouteShape::Blackhole,
            // With a nexthop object the kernel also reports its gateway
            // and device (nexthop_compat_mode): the id is what we set.
            (RouteType::Unicast, _, _, Some(id)) if !multipath => RouteShape::Nexthop { id, mtu },
            (RouteType::Unicast, Some(via), Some(oif), None) if !multipath => RouteShape::Gateway {
                via,
                oif,
                onlink: header.flags.contains(RouteFlags::Onlink),
                mtu,
            },
            _ => RouteShape::Foreign,
        };
        Some(Self {
            dst,
            priority,
            tos: header.tos,
            shape,
        })
    }

    /// Reads the body of a dumped `RTM_NEWROUTE` (`struct rtmsg` and its
    /// attributes, the bytes after the `nlmsghdr`) of any protocol and
    /// table, straight from the bytes: exactly what [`KernelRoute::parse`]
    /// reads from the message value (a test holds the two together), with
    /// the route's protocol and table (`RTA_TABLE` when present).
    ///
    /// `None` for a route that is not IPv4 or IPv6, and for malformed
    /// bytes.
    pub fn parse_bytes(body: &[u8]) -> Option<(u8, u32, Self)> {
        const RTA_MULTIPATH: u16 = 9;
        const RTA_TABLE: u16 = 15;
        let [
            family,
            dst_len,
            _src_len,
            tos,
            table,
            protocol,
            _scope,
            kind,
        ] = *body.first_chunk::<8>()?;
        let flags = u32_of(body.get(8..12)?)?;
        let mut table = u32::from(table);
        let mut dst_addr = None;
        let mut gateway = None;
        let mut oif = None;
        let mut priority = 0;
        let mut mtu = None;
        let mut nh_id = None;
        let mut multipath = false;
        for (kind, value) in attributes(body.get(12..)?) {
            match kind {
                RTA_DST => dst_addr = address(value),
                RTA_GATEWAY => gateway = address(value),
                RTA_OIF => oif = Some(u32_of(value)?),
                RTA_PRIORITY => priority = u32_of(value)?,
                RTA_MULTIPATH => multipath = true,
                RTA_TABLE => table = u32_of(value)?,
                RTA_NH_ID => nh_id = Some(u32_of(value)?),
                RTA_METRICS => {
                    mtu = attributes(value)
                        .find(|(k, _)| *k == RTAX_MTU)
                        .and_then(|(_, v)| u32_of(v));
                }
                _ => {}
            }
        }
        let dst = match (i32::from(family), dst_addr) {
            (libc::AF_INET, Some(ip @ IpAddr::V4(_)))
            | (libc::AF_INET6, Some(ip @ IpAddr::V6(_))) => IpNetwork::new(ip, dst_len).ok()?,
            (libc::AF_INET, None) => IpNetwork::new(IpAddr::from([0u8; 4]), 0).ok()?,
            (libc::AF_INET6, None) => IpNetwork::new(IpAddr::from([0u16; 8]), 0).ok()?,
            _ => return None,
        };
        let shape = match (kind, gateway, oif, nh_id) {
            (RTN_BLACKHOLE, _, _, _) => RouteShape::Blackhole,
            (RTN_UNICAST, _, _, Some(id)) if !multipath => RouteShape::Nexthop { id, mtu },
            (RTN_UNICAST, Some(via), Some(oif), None) if !multipath => RouteShape::Gateway {
                via,
                oif,
                onlink: flags & RTNH_F_ONLINK != 0,
                mtu,
            },
            _ => RouteShape::Foreign,
        };
        Some((
            protocol,
            table,
            Self {
                dst,
                priority,
                tos,
                shape,
            },
        ))
    }

    /// The route in `ip route` syntax, devices named from `links`.
    pub fn display<'a>(&'a self, links: &'a Links) -> impl fmt::Display + 'a {
        DisplayKernelRoute { route: self, links }
    }
}

struct DisplayKernelRoute<'a> {
    route: &'a KernelRoute,
    links: &'a Links,
}

impl fmt::Display for DisplayKernelRoute<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = self.route;
        match r.shape {
            RouteShape::Blackhole => write!(f, "blackhole {}", r.dst)?,
            RouteShape::Gateway {
                via,
                oif,
                onlink,
                mtu,
            } => {
                write!(f, "{} via {via} dev ", r.dst)?;
                match self.links.name(oif) {
                    Some(name) => write!(f, "{name}")?,
                    None => write!(f, "if{oif}")?,
                }
                if onlink {
                    write!(f, " onlink")?;
                }
                if let Some(mtu) = mtu {
                    write!(f, " mtu {mtu}")?;
                }
            }
            RouteShape::Nexthop { id, mtu } => {
                write!(f, "{} nhid {id}", r.dst)?;
                if let Some(mtu) = mtu {
                    write!(f, " mtu {mtu}")?;
                }
            }
            RouteShape::Foreign => write!(f, "{}", r.dst)?,
        }
        if r.priority != 0 && r.priority != default_priority(&r.dst) {
            write!(f, " metric {}", r.priority)?;
        }
        Ok(())
    }
}

fn ip_of(address: &RouteAddress) -> Option<IpAddr> {
    match address {
        RouteAddress::Inet(a) => Some(IpAddr::V4(*a)),
        RouteAddress::Inet6(a) => Some(IpAddr::V6(*a)),
        _ => None,
    }
}

/// The table a route is in: `RTA_TABLE` when present (tables above 255 are
/// only there), else the header's.
pub fn route_table(message: &RouteMessage) -> u32 {
    message
        .attributes
        .iter()
        .find_map(|a| match a {
            RouteAttribute::Table(t) => Some(*t),
            _ => None,
        })
        .unwrap_or(u32::from(message.header.table))
}

fn header_for(dst: &IpNetwork, protocol: u8) -> RouteHeader {
    RouteHeader {
        address_family: match dst {
            IpNetwork::V4(_) => AddressFamily::Inet,
            IpNetwork::V6(_) => AddressFamily::Inet6,
        },
        destination_prefix_length: dst.prefix(),
        table: MAIN_TABLE,
        protocol: RouteProtocol::from(protocol),
        ..RouteHeader::default()
    }
}

/// The body of `ip route replace <route> proto <protocol>`: an
/// `RTM_NEWROUTE` for the main table (send with
/// `NLM_F_CREATE | NLM_F_REPLACE`).
pub fn new_route(dst: &IpNetwork, shape: &RouteShape, protocol: u8) -> RouteMessage {
    let mut message = RouteMessage::default();
    message.header = header_for(dst, protocol);
    message
        .attributes
        .push(RouteAttribute::Destination(dst.network().into()));
    match *shape {
        RouteShape::Blackhole | RouteShape::Foreign => {
            message.header.kind = RouteType::BlackHole;
            message.header.scope = RouteScope::Universe;
        }
        RouteShape::Gateway {
            via,
            oif,
            onlink,
            mtu,
        } => {
            message.header.kind = RouteType::Unicast;
            message.header.scope = RouteScope::Universe;
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
            message.header.kind = RouteType::Unicast;
            message.header.scope = RouteScope::Universe;
            message.attributes.push(RouteAttribute::NhId(id));
            if let Some(mtu) = mtu {
                message
                    .attributes
                    .push(RouteAttribute::Metrics(vec![RouteMetric::Mtu(mtu)]));
            }
        }
    }
    message
}

/// The body of `ip route del <route> proto <protocol>`: an `RTM_DELROUTE`
/// naming the route by its key (destination, TOS, metric, table,
/// protocol) and, when we know them, its type, gateway and device, so it
/// removes exactly that route even when another shares its key.
pub fn del_route(route: &KernelRoute, protocol: u8) -> RouteMessage {
    let mut message = RouteMessage::default();
    message.header = header_for(&route.dst, protocol);
    message.header.tos = route.tos;
    // RT_SCOPE_NOWHERE: match any scope (what `ip route del` sends).
    message.header.scope = RouteScope::NoWhere;
    message
        .attributes
        .push(RouteAttribute::Destination(route.dst.network().into()));
    message
        .attributes
        .push(RouteAttribute::Priority(route.priority));
    match route.shape {
        RouteShape::Blackhole => message.header.kind = RouteType::BlackHole,
        RouteShape::Gateway { via, oif, .. } => {
            message.header.kind = RouteType::Unicast;
            message.attributes.push(RouteAttribute::Gateway(via.into()));
            message.attributes.push(RouteAttribute::Oif(oif));
        }
        RouteShape::Nexthop { .. } => message.header.kind = RouteType::Unicast,
        // RTN_UNSPEC: any type.
        RouteShape::Foreign => {}
    }
    message
}

// Code points from <linux/rtnetlink.h>, for the byte writers below.
const RTM_NEWROUTE: u16 = 24;
const RTM_DELROUTE: u16 = 25;
const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RTA_PRIORITY: u16 = 6;
const RTA_METRICS: u16 = 8;
const RTA_NH_ID: u16 = 30;
const RTAX_MTU: u16 = 2;
const RTN_UNICAST: u8 = 1;
const RTN_BLACKHOLE: u8 = 6;
const RTNH_F_ONLINK: u32 = 4;
const RT_SCOPE_UNIVERSE: u8 = 0;
const RT_SCOPE_NOWHERE: u8 = 255;

/// The netlink message type [`emit_new_route`] writes (`RTM_NEWROUTE`).
pub const NEW_ROUTE: u16 = RTM_NEWROUTE;
/// The netlink message type [`emit_del_route`] writes (`RTM_DELROUTE`).
pub const DEL_ROUTE: u16 = RTM_DELROUTE;

/// The attributes (`struct rtattr`: length, type, value, padded to 4) in
/// `bytes`, as (type without the nested and byte-order flags, value); a
/// truncated or malformed tail ends them.
pub(super) fn attributes(mut bytes: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        let len = usize::from(u16::from_ne_bytes(*bytes.first_chunk::<2>()?));
        let kind = u16::from_ne_bytes(bytes.get(2..4)?.try_into().ok()?) & 0x3fff;
        let value = bytes.get(4..len)?;
        bytes = bytes.get(len.next_multiple_of(4)..).unwrap_or_default();
        Some((kind, value))
    })
}

/// An address attribute's value: 4 bytes IPv4, 16 bytes IPv6.
fn address(value: &[u8]) -> Option<IpAddr> {
    match value.len() {
        4 => Some(IpAddr::from(<[u8; 4]>::try_from(value).ok()?)),
        16 => Some(IpAddr::from(<[u8; 16]>::try_from(value).ok()?)),
        _ => None,
    }
}

pub(super) fn u32_of(value: &[u8]) -> Option<u32> {
    Some(u32::from_ne_bytes(value.get(..4)?.try_into().ok()?))
}

/// Appends `struct rtmsg` (12 bytes) for a main-table route to `dst`.
fn emit_header(
    buf: &mut Vec<u8>,
    dst: &IpNetwork,
    protocol: u8,
    tos: u8,
    scope: u8,
    kind: u8,
    flags: u32,
) {
    let family = match dst {
        IpNetwork::V4(_) => libc::AF_INET as u8,
        IpNetwork::V6(_) => libc::AF_INET6 as u8,
    };
    // family, dst_len, src_len, tos, table, protocol, scope, type, flags.
    buf.extend_from_slice(&[
        family,
        dst.prefix(),
        0,
        tos,
        MAIN_TABLE,
        protocol,
        scope,
        kind,
    ]);
    buf.extend_from_slice(&flags.to_ne_bytes());
}

/// Appends one attribute (`struct rtattr` and its value, padded to 4).
pub(super) fn emit_attribute(buf: &mut Vec<u8>, kind: u16, value: &[u8]) {
    let len = 4 + value.len();
    // Route attributes are at most 16 bytes of address or a few words.
    let len16 = u16::try_from(len).unwrap_or(u16::MAX);
    buf.extend_from_slice(&len16.to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(value);
    buf.resize(buf.len() + (len.next_multiple_of(4) - len), 0);
}

fn emit_address(buf: &mut Vec<u8>, kind: u16, address: IpAddr) {
    match address {
        IpAddr::V4(a) => emit_attribute(buf, kind, &a.octets()),
        IpAddr::V6(a) => emit_attribute(buf, kind, &a.octets()),
    }
}

/// Appends the body of [`new_route`]`(dst, shape, protocol)` to `buf`,
/// byte for byte what that message emits, without building it: the FIB
/// writes every route of a batch this way, straight into the send buffer
/// (send as [`NEW_ROUTE`] with `NLM_F_CREATE | NLM_F_REPLACE`).
pub fn emit_new_route(buf: &mut Vec<u8>, dst: &IpNetwork, shape: &RouteShape, protocol: u8) {
    match *shape {
        RouteShape::Blackhole | RouteShape::Foreign => {
            emit_header(buf, dst, protocol, 0, RT_SCOPE_UNIVERSE, RTN_BLACKHOLE, 0);
            emit_address(buf, RTA_DST, dst.network());
        }
        RouteShape::Gateway {
            via,
            oif,
            onlink,
            mtu,
        } => {
            let flags = if onlink { RTNH_F_ONLINK } else { 0 };
            emit_header(buf, dst, protocol, 0, RT_SCOPE_UNIVERSE, RTN_UNICAST, flags);
            emit_address(buf, RTA_DST, dst.network());
            emit_address(buf, RTA_GATEWAY, via);
            emit_attribute(buf, RTA_OIF, &oif.to_ne_bytes());
            emit_mtu(buf, mtu);
        }
        RouteShape::Nexthop { id, mtu } => {
            emit_header(buf, dst, protocol, 0, RT_SCOPE_UNIVERSE, RTN_UNICAST, 0);
            emit_address(buf, RTA_DST, dst.network());
            emit_attribute(buf, RTA_NH_ID, &id.to_ne_bytes());
            emit_mtu(buf, mtu);
        }
    }
}

/// RTA_METRICS with one RTAX_MTU, when there is an MTU.
fn emit_mtu(buf: &mut Vec<u8>, mtu: Option<u32>) {
    if let Some(mtu) = mtu {
        // RTA_METRICS holds its own attributes: one RTAX_MTU.
        let mut metric = Vec::with_capacity(8);
        emit_attribute(&mut metric, RTAX_MTU, &mtu.to_ne_bytes());
        emit_attribute(buf, RTA_METRICS, &metric);
    }
}

/// Appends the body of [`del_route`]`(route, protocol)` to `buf`, byte for
/// byte (send as [`DEL_ROUTE`]).
pub fn emit_del_route(buf: &mut Vec<u8>, route: &KernelRoute, protocol: u8) {
    let kind = match route.shape {
        RouteShape::Blackhole => RTN_BLACKHOLE,
        RouteShape::Gateway { .. } | RouteShape::Nexthop { .. } => RTN_UNICAST,
        // RTN_UNSPEC: any type.
        RouteShape::Foreign => 0,
    };
    emit_header(
        buf,
        &route.dst,
        protocol,
        route.tos,
        RT_SCOPE_NOWHERE,
        kind,
        0,
    );
    emit_address(buf, RTA_DST, route.dst.network());
    emit_attribute(buf, RTA_PRIORITY, &route.priority.to_ne_bytes());
    if let RouteShape::Gateway { via, oif, .. } = route.shape {
        emit_address(buf, RTA_GATEWAY, via);
        emit_attribute(buf, RTA_OIF, &oif.to_ne_bytes());
    }
}

/// The shape of a desired route, for callers that already hold the links.
///
/// # Errors
/// As [`RouteShape::of`].
pub fn shape_of(route: &DesiredRoute, links: &Links) -> Result<RouteShape, String> {
    RouteShape::of(&route.kind, links)
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_core::{Emitable, Parseable};

    fn links() -> Links {
        Links::from_pairs([("eth0", 2), ("tunl0", 7)])
    }

    fn roundtrip(message: &RouteMessage) -> RouteMessage {
        let mut bytes = vec![0; message.buffer_len()];
        message.emit(&mut bytes);
        RouteMessage::parse(bytes.as_slice()).expect("parses")
    }

    fn desired(dst: &str, kind: RouteKind) -> DesiredRoute {
        DesiredRoute {
            dst: dst.parse().expect("prefix"),
            kind,
        }
    }

    #[test]
    fn every_kind_reads_back_as_the_shape_it_was_written_from() {
        let via: IpAddr = "10.0.0.6".parse().expect("ip");
        let routes = [
            desired("10.244.1.0/26", RouteKind::Blackhole),
            desired(
                "10.244.2.0/26",
                RouteKind::Direct {
                    via,
                    dev: "eth0".into(),
                },
            ),
            desired(
                "10.244.3.0/26",
                RouteKind::Tunnel {
                    via,
                    dev: "tunl0".into(),
                    mtu: 1440,
                },
            ),
            desired(
                "fd00:1::/122",
                RouteKind::Underlay {
                    via: "fd00::1".parse().expect("ip"),
                    dev: "eth0".into(),
                },
            ),
        ];
        for route in &routes {
            let shape = shape_of(route, &links()).expect("devices exist");
            let parsed = KernelRoute::parse(
                &roundtrip(&new_route(&route.dst, &shape, 98)),
                98,
                MAIN_TABLE,
            )
            .expect("ours");
            assert_eq!(parsed.dst, route.dst);
            assert_eq!(parsed.shape, shape, "{route}");
            let text = parsed.display(&links()).to_string();
            assert_eq!(text, route.to_string());
        }
    }

    /// The byte writers against netlink-packet-route's encoding of the same
    /// message, for every shape, both families, and deletes.
    #[test]
    fn byte_writers_match_the_message_values_exactly() {
        let v4: IpAddr = "10.0.0.6".parse().expect("ip");
        let v6: IpAddr = "fd00::1".parse().expect("ip");
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
            ]
        };
        for (dst, via) in [("10.244.3.0/26", v4), ("fd00:1::/122", v6)] {
            let dst: IpNetwork = dst.parse().expect("prefix");
            for shape in shapes(via) {
                let message = new_route(&dst, &shape, 98);
                let mut expected = vec![0; message.buffer_len()];
                message.emit(&mut expected);
                let mut bytes = Vec::new();
                emit_new_route(&mut bytes, &dst, &shape, 98);
                assert_eq!(bytes, expected, "new {dst} {shape:?}");

                let route = KernelRoute {
                    dst,
                    priority: 1024,
                    tos: 4,
                    shape,
                };
                let message = del_route(&route, 98);
                let mut expected = vec![0; message.buffer_len()];
                message.emit(&mut expected);
                let mut bytes = Vec::new();
                emit_del_route(&mut bytes, &route, 98);
                assert_eq!(bytes, expected, "del {dst} {shape:?}");
            }
        }
    }

    /// The byte reader against the message-value reader, on every shape in
    /// both families, with and without a metric, TOS and `RTA_TABLE`, and on
    /// a multipath route.
    #[test]
    fn byte_reader_reads_what_the_value_reader_reads() {
        use netlink_packet_route::route::RouteNextHop;
        let mut messages = Vec::new();
        for (dst, via) in [("10.244.3.0/26", "10.0.0.6"), ("fd00:1::/122", "fd00::1")] {
            let dst: IpNetwork = dst.parse().expect("prefix");
            let via: IpAddr = via.parse().expect("ip");
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
                let plain = new_route(&dst, &shape, 98);
                let mut keyed = del_route(
                    &KernelRoute {
                        dst,
                        priority: 50,
                        tos: 8,
                        shape,
                    },
                    12,
                );
                keyed.header.kind = plain.header.kind;
                keyed.attributes.push(RouteAttribute::Table(1000));
                let mut multipath = plain.clone();
                multipath
                    .attributes
                    .push(RouteAttribute::MultiPath(vec![RouteNextHop::default()]));
                messages.extend([plain, keyed, multipath]);
            }
        }
        let mut default = new_route(
            &"0.0.0.0/0".parse().expect("prefix"),
            &RouteShape::Blackhole,
            98,
        );
        default
            .attributes
            .retain(|a| !matches!(a, RouteAttribute::Destination(_)));
        messages.push(default);
        for message in &messages {
            let mut bytes = vec![0; message.buffer_len()];
            message.emit(&mut bytes);
            let protocol = u8::from(message.header.protocol);
            let table = route_table(message);
            // The value reader reads only main-table routes: the one in
            // table 1000 is read as if it were in the main table.
            let expected = KernelRoute::parse(message, protocol, MAIN_TABLE)
                .or_else(|| {
                    let mut main = message.clone();
                    main.attributes
                        .retain(|a| !matches!(a, RouteAttribute::Table(_)));
                    KernelRoute::parse(&main, protocol, MAIN_TABLE)
                })
                .expect("an IPv4 or IPv6 route");
            assert_eq!(
                KernelRoute::parse_bytes(&bytes),
                Some((protocol, table, expected)),
                "{message:?}"
            );
        }
    }

    #[test]
    fn tunnel_route_carries_onlink_flag_gateway_oif_and_mtu_metric() {
        let shape = RouteShape::Gateway {
            via: "10.0.0.6".parse().expect("ip"),
            oif: 7,
            onlink: true,
            mtu: Some(1440),
        };
        let m = new_route(&"10.244.3.0/26".parse().expect("prefix"), &shape, 98);
        assert_eq!(m.header.kind, RouteType::Unicast);
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
    fn routes_of_other_protocols_or_tables_are_not_ours() {
        let shape = RouteShape::Blackhole;
        let dst = "10.244.1.0/26".parse().expect("prefix");
        let bird = new_route(&dst, &shape, 12);
        assert_eq!(KernelRoute::parse(&bird, 98, MAIN_TABLE), None);
        let mut other_table = new_route(&dst, &shape, 98);
        other_table.attributes.push(RouteAttribute::Table(100));
        assert_eq!(KernelRoute::parse(&other_table, 98, MAIN_TABLE), None);
    }

    #[test]
    fn missing_device_is_named() {
        let route = desired(
            "10.244.2.0/26",
            RouteKind::Direct {
                via: "10.0.0.6".parse().expect("ip"),
                dev: "nosuch0".into(),
            },
        );
        assert_eq!(shape_of(&route, &links()), Err("nosuch0".to_string()));
    }

    #[test]
    fn zero_tunnel_mtu_means_no_route_mtu() {
        let kind = RouteKind::Tunnel {
            via: "10.0.0.6".parse().expect("ip"),
            dev: "tunl0".into(),
            mtu: 0,
        };
        assert!(matches!(
            RouteShape::of(&kind, &links()),
            Ok(RouteShape::Gateway { mtu: None, .. })
        ));
    }
}
