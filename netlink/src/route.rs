//! The route codec: route messages (`struct rtmsg` and its attributes,
//! <linux/rtnetlink.h>) ↔ values, straight from and into bytes. The one
//! route codec of the workspace: the FIB writes and reads every route with
//! it, the userspace tunnel and the node lookups read with it.
//!
//! - [`Route`]: a route message as read ([`Route::parse`]): the header
//!   fields and the attributes anyone reads, multipath next hops included.
//! - [`KernelRoute`]: a route as the FIB compares it (destination, key and
//!   [`RouteShape`]), read from a [`Route`].
//! - [`emit_new_route`], [`emit_del_route`]: the request bodies the FIB
//!   sends, written straight into the batch.
//!
//! The shapes written are the ones Calico's BIRD and Felix write:
//!
//! | [`RouteShape`] | `ip route` | message |
//! |---|---|---|
//! | `Blackhole` | `blackhole B proto P` | `RTN_BLACKHOLE` |
//! | `Gateway`, onlink | `B via NH dev D onlink [mtu M] proto P` | `RTN_UNICAST`, `RTA_GATEWAY`, `RTA_OIF`, `RTNH_F_ONLINK`, `RTA_METRICS { RTAX_MTU }` |
//! | `Gateway` | `B via GW dev D proto P` | `RTN_UNICAST`, `RTA_GATEWAY`, `RTA_OIF` |
//! | `Nexthop` | `B nhid N [mtu M] proto P` | `RTN_UNICAST`, `RTA_NH_ID` |
//! | `BpfGateway` | `B via NH dev D onlink encap bpf xmit podroute-ipip-ID+H headroom H proto P` | `RTN_UNICAST`, `RTA_GATEWAY`, `RTA_OIF`, `RTNH_F_ONLINK`, `RTA_ENCAP_TYPE`, `RTA_ENCAP` ([`encap`]) |
//!
//! `tests/kernel_vectors.rs` holds both directions against bytes captured
//! from the kernel and from iproute2 (`tests/data/README.md`).

use std::fmt;
use std::net::IpAddr;

use ipnetwork::IpNetwork;

use crate::attr::{self, address_of, attributes, u32_of};
use crate::consts::{
    RT_SCOPE_NOWHERE, RT_SCOPE_UNIVERSE, RT_TABLE_MAIN, RTA_DST, RTA_ENCAP, RTA_ENCAP_TYPE,
    RTA_GATEWAY, RTA_METRICS, RTA_MULTIPATH, RTA_NH_ID, RTA_OIF, RTA_PRIORITY, RTA_TABLE, RTAX_MTU,
    RTMSG_LEN, RTN_BLACKHOLE, RTN_UNICAST, RTN_UNSPEC, RTNEXTHOP_LEN, RTNH_F_ONLINK,
};
use crate::header::align;
use crate::link::Links;

pub mod encap;

pub use encap::{BpfProgram, Encap};

/// The main routing table, as [`Route::table`] holds it.
pub const MAIN_TABLE: u32 = RT_TABLE_MAIN as u32;

/// `AF_INET`, as `rtm_family` holds it.
pub const FAMILY_V4: u8 = libc::AF_INET as u8;
/// `AF_INET6`.
pub const FAMILY_V6: u8 = libc::AF_INET6 as u8;
/// `AF_UNSPEC`: every family (in a dump request).
pub const FAMILY_ANY: u8 = libc::AF_UNSPEC as u8;

/// A route type (`rtm_type`): the values the workspace matches on are
/// named; any other is kept as it is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct RouteType(pub u8);

impl RouteType {
    /// `RTN_UNSPEC`: any type (a delete that matches every type).
    pub const UNSPEC: Self = Self(RTN_UNSPEC);
    /// `RTN_UNICAST`: through a gateway or a device.
    pub const UNICAST: Self = Self(RTN_UNICAST);
    /// `RTN_BLACKHOLE`: dropped silently.
    pub const BLACKHOLE: Self = Self(RTN_BLACKHOLE);
}

/// One next hop of a multipath route (`struct rtnexthop` and its
/// `RTA_GATEWAY`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NextHop {
    /// `rtnh_ifindex`.
    pub ifindex: u32,
    /// `rtnh_flags` (`RTNH_F_ONLINK`, …).
    pub flags: u8,
    /// `rtnh_hops`: the weight minus one.
    pub hops: u8,
    /// `RTA_GATEWAY`, if there is one.
    pub gateway: Option<IpAddr>,
}

/// A route message: the fields of `struct rtmsg` and the attributes read.
/// Attributes not read are skipped.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Route {
    /// `rtm_family`: [`FAMILY_V4`], [`FAMILY_V6`] or another.
    pub family: u8,
    /// `rtm_dst_len`: the destination's prefix length.
    pub dst_len: u8,
    /// `rtm_tos`: part of an IPv4 route's key.
    pub tos: u8,
    /// The table: `RTA_TABLE` when present (tables above 255 are only
    /// there), else `rtm_table`.
    pub table: u32,
    /// `rtm_protocol`: who installed the route.
    pub protocol: u8,
    /// `rtm_scope`.
    pub scope: u8,
    /// `rtm_type`.
    pub kind: RouteType,
    /// `rtm_flags` (`RTNH_F_ONLINK`, …).
    pub flags: u32,
    /// `RTA_DST`; `None` for a default route (or a malformed address).
    pub dst: Option<IpAddr>,
    /// `RTA_GATEWAY`.
    pub gateway: Option<IpAddr>,
    /// `RTA_OIF`.
    pub oif: Option<u32>,
    /// `RTA_PRIORITY`, the metric.
    pub priority: Option<u32>,
    /// `RTA_NH_ID`: the nexthop object the route goes through.
    pub nh_id: Option<u32>,
    /// `RTAX_MTU` in `RTA_METRICS`.
    pub mtu: Option<u32>,
    /// `RTA_MULTIPATH`: the next hops of a multipath route.
    pub multipath: Option<Vec<NextHop>>,
    /// `RTA_ENCAP_TYPE` and `RTA_ENCAP`: the lightweight tunnel.
    pub encap: Option<Encap>,
}

impl Route {
    /// Reads the body of a route message (the bytes after the `nlmsghdr`).
    /// `None` for a body shorter than `struct rtmsg`, and for a `u32`
    /// attribute shorter than 4 bytes.
    pub fn parse(body: &[u8]) -> Option<Self> {
        let [family, dst_len, _src_len, tos, table, protocol, scope, kind] =
            *body.first_chunk::<8>()?;
        let mut route = Self {
            family,
            dst_len,
            tos,
            table: u32::from(table),
            protocol,
            scope,
            kind: RouteType(kind),
            flags: u32_of(body.get(8..RTMSG_LEN)?)?,
            ..Self::default()
        };
        let mut encap = (None, &[][..]);
        for (kind, value) in attributes(body.get(RTMSG_LEN..)?) {
            match kind {
                RTA_DST => route.dst = address_of(value),
                RTA_GATEWAY => route.gateway = address_of(value),
                RTA_OIF => route.oif = Some(u32_of(value)?),
                RTA_PRIORITY => route.priority = Some(u32_of(value)?),
                RTA_TABLE => route.table = u32_of(value)?,
                RTA_NH_ID => route.nh_id = Some(u32_of(value)?),
                RTA_METRICS => {
                    route.mtu = attributes(value)
                        .find(|(k, _)| *k == RTAX_MTU)
                        .and_then(|(_, v)| u32_of(v));
                }
                RTA_MULTIPATH => route.multipath = Some(next_hops(value)),
                RTA_ENCAP_TYPE => {
                    encap.0 = value.first_chunk::<2>().map(|t| u16::from_ne_bytes(*t));
                }
                RTA_ENCAP => encap.1 = value,
                _ => {}
            }
        }
        route.encap = encap.0.map(|kind| Encap::parse(kind, encap.1));
        Some(route)
    }

    /// The destination prefix: `RTA_DST` with `rtm_dst_len`, or the
    /// family's default route when there is no `RTA_DST`. `None` for other
    /// families and impossible prefix lengths.
    pub fn destination(&self) -> Option<IpNetwork> {
        let ip = match (self.family, self.dst) {
            (FAMILY_V4, Some(ip @ IpAddr::V4(_))) | (FAMILY_V6, Some(ip @ IpAddr::V6(_))) => ip,
            (FAMILY_V4, None) => return IpNetwork::new(IpAddr::from([0u8; 4]), 0).ok(),
            (FAMILY_V6, None) => return IpNetwork::new(IpAddr::from([0u16; 8]), 0).ok(),
            _ => return None,
        };
        IpNetwork::new(ip, self.dst_len).ok()
    }
}

/// The `struct rtnexthop` entries of an `RTA_MULTIPATH` value; a malformed
/// entry ends them.
fn next_hops(mut value: &[u8]) -> Vec<NextHop> {
    let mut hops = Vec::new();
    while let Some(&[l0, l1, flags, weight, i0, i1, i2, i3]) = value.first_chunk::<RTNEXTHOP_LEN>()
    {
        let len = usize::from(u16::from_ne_bytes([l0, l1]));
        let Some(attrs) = value.get(RTNEXTHOP_LEN..len) else {
            break;
        };
        hops.push(NextHop {
            ifindex: u32::from_ne_bytes([i0, i1, i2, i3]),
            flags,
            hops: weight,
            gateway: attributes(attrs)
                .find(|(k, _)| *k == RTA_GATEWAY)
                .and_then(|(_, v)| address_of(v)),
        });
        value = value.get(align(len)..).unwrap_or_default();
    }
    hops
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
    /// every next hop on the device (see [`crate::nexthop`]).
    Nexthop {
        /// `RTA_NH_ID`.
        id: u32,
        /// `RTAX_MTU`, when set.
        mtu: Option<u32>,
    },
    /// `RTN_UNICAST` through one gateway on the link (`onlink`), each
    /// packet first given to our BPF lightweight-tunnel xmit `program`
    /// with `headroom` bytes to push (the `bpf` IPIP backend; see
    /// [`encap`]). The headroom also lowers the route's path MTU.
    BpfGateway {
        /// `RTA_GATEWAY`.
        via: IpAddr,
        /// `RTA_OIF`.
        oif: u32,
        /// The xmit program.
        program: BpfProgram,
        /// `LWT_BPF_XMIT_HEADROOM`.
        headroom: u16,
    },
    /// Anything else (another route type, a multipath route, a route
    /// without gateway, an encapsulation other than our program): never
    /// what the FIB writes, so it is replaced or deleted.
    Foreign,
}

/// One route as the kernel holds it, as far as the FIB compares: its key
/// (destination, metric, TOS) and its shape.
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
/// 1024 for IPv6 (`IP6_RT_PRIO_USER`, include/net/ip6_route.h).
pub fn default_priority(dst: &IpNetwork) -> u32 {
    match dst {
        IpNetwork::V4(_) => 0,
        IpNetwork::V6(_) => 1024,
    }
}

impl KernelRoute {
    /// The FIB's view of `route`; `None` for a route that is not IPv4 or
    /// IPv6.
    pub fn from_route(route: &Route) -> Option<Self> {
        let multipath = route.multipath.is_some();
        let shape = match (route.kind, route.gateway, route.oif, route.nh_id) {
            (RouteType::BLACKHOLE, _, _, _) => RouteShape::Blackhole,
            // With a nexthop object the kernel also reports its gateway
            // and device (`nexthop_compat_mode` 1): the id is what we set.
            (RouteType::UNICAST, _, _, Some(id)) if !multipath => {
                RouteShape::Nexthop { id, mtu: route.mtu }
            }
            (RouteType::UNICAST, Some(via), Some(oif), None) if !multipath => {
                let onlink = route.flags & RTNH_F_ONLINK != 0;
                match route.encap.as_ref().map(Encap::our_program) {
                    None => RouteShape::Gateway {
                        via,
                        oif,
                        onlink,
                        mtu: route.mtu,
                    },
                    Some(Some((program, headroom))) if onlink && route.mtu.is_none() => {
                        RouteShape::BpfGateway {
                            via,
                            oif,
                            program,
                            headroom,
                        }
                    }
                    Some(_) => RouteShape::Foreign,
                }
            }
            _ => RouteShape::Foreign,
        };
        Some(Self {
            dst: route.destination()?,
            priority: route.priority.unwrap_or(0),
            tos: route.tos,
            shape,
        })
    }

    /// The route in `ip route` syntax, devices named from `links`.
    pub fn display<'a>(&'a self, links: &'a Links) -> impl fmt::Display + 'a {
        let device = match self.shape {
            RouteShape::Gateway { oif, .. } | RouteShape::BpfGateway { oif, .. } => links.name(oif),
            _ => None,
        };
        self.display_with_device(device)
    }

    /// The route in `ip route` syntax, its gateway's device named `device`
    /// (`ifN` when `None`).
    pub fn display_with_device<'a>(&'a self, device: Option<&'a str>) -> impl fmt::Display + 'a {
        DisplayKernelRoute {
            route: self,
            device,
        }
    }
}

struct DisplayKernelRoute<'a> {
    route: &'a KernelRoute,
    device: Option<&'a str>,
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
                match self.device {
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
            RouteShape::BpfGateway {
                via,
                oif,
                program,
                headroom,
            } => {
                write!(f, "{} via {via} dev ", r.dst)?;
                match self.device {
                    Some(name) => write!(f, "{name}")?,
                    None => write!(f, "if{oif}")?,
                }
                write!(
                    f,
                    " onlink encap bpf xmit {}{}+{headroom} headroom {headroom}",
                    encap::PROGRAM_NAME_PREFIX,
                    program.id
                )?;
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

fn family_of(dst: &IpNetwork) -> u8 {
    match dst {
        IpNetwork::V4(_) => FAMILY_V4,
        IpNetwork::V6(_) => FAMILY_V6,
    }
}

/// Appends `struct rtmsg` for a main-table route to `dst`.
fn emit_header(
    buf: &mut Vec<u8>,
    dst: &IpNetwork,
    protocol: u8,
    tos: u8,
    scope: u8,
    kind: RouteType,
    flags: u32,
) {
    // family, dst_len, src_len, tos, table, protocol, scope, type, flags.
    buf.extend_from_slice(&[
        family_of(dst),
        dst.prefix(),
        0,
        tos,
        RT_TABLE_MAIN,
        protocol,
        scope,
        kind.0,
    ]);
    buf.extend_from_slice(&flags.to_ne_bytes());
}

/// Appends the body of `ip route replace <dst> <shape> proto <protocol>`
/// to `buf`: an `RTM_NEWROUTE` for the main table (send with
/// `NLM_F_CREATE | NLM_F_REPLACE`), byte for byte what iproute2 sends for
/// that command. The FIB writes every route of a batch this way, straight
/// into the send buffer. [`RouteShape::Foreign`] is written as a blackhole.
pub fn emit_new_route(buf: &mut Vec<u8>, dst: &IpNetwork, shape: &RouteShape, protocol: u8) {
    let (kind, flags) = match *shape {
        RouteShape::Blackhole | RouteShape::Foreign => (RouteType::BLACKHOLE, 0),
        RouteShape::Gateway { onlink: true, .. } | RouteShape::BpfGateway { .. } => {
            (RouteType::UNICAST, RTNH_F_ONLINK)
        }
        RouteShape::Gateway { .. } | RouteShape::Nexthop { .. } => (RouteType::UNICAST, 0),
    };
    emit_header(buf, dst, protocol, 0, RT_SCOPE_UNIVERSE, kind, flags);
    attr::emit_address(buf, RTA_DST, dst.network());
    match *shape {
        RouteShape::Blackhole | RouteShape::Foreign => {}
        RouteShape::Gateway { via, oif, mtu, .. } => {
            attr::emit_address(buf, RTA_GATEWAY, via);
            attr::emit_u32(buf, RTA_OIF, oif);
            emit_mtu(buf, mtu);
        }
        RouteShape::Nexthop { id, mtu } => {
            attr::emit_u32(buf, RTA_NH_ID, id);
            emit_mtu(buf, mtu);
        }
        RouteShape::BpfGateway {
            via,
            oif,
            ref program,
            headroom,
        } => {
            attr::emit_address(buf, RTA_GATEWAY, via);
            attr::emit_u32(buf, RTA_OIF, oif);
            encap::emit_bpf_xmit(buf, program, headroom);
        }
    }
}

/// `RTA_METRICS` holding one `RTAX_MTU`, when there is an MTU.
fn emit_mtu(buf: &mut Vec<u8>, mtu: Option<u32>) {
    if let Some(mtu) = mtu {
        let mut metric = Vec::with_capacity(8);
        attr::emit_u32(&mut metric, RTAX_MTU, mtu);
        attr::emit(buf, RTA_METRICS, &metric);
    }
}

/// Appends the body of `ip route del <route> proto <protocol>`: an
/// `RTM_DELROUTE` naming the route by its key (destination, TOS, metric,
/// table, protocol) and, when known, its type, gateway and device, so it
/// removes exactly that route even when another shares its key. The scope
/// is `RT_SCOPE_NOWHERE` (match any), as `ip route del` sends for IPv4;
/// the IPv6 FIB ignores it.
pub fn emit_del_route(buf: &mut Vec<u8>, route: &KernelRoute, protocol: u8) {
    let kind = match route.shape {
        RouteShape::Blackhole => RouteType::BLACKHOLE,
        RouteShape::Gateway { .. } | RouteShape::Nexthop { .. } | RouteShape::BpfGateway { .. } => {
            RouteType::UNICAST
        }
        RouteShape::Foreign => RouteType::UNSPEC,
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
    attr::emit_address(buf, RTA_DST, route.dst.network());
    attr::emit_u32(buf, RTA_PRIORITY, route.priority);
    if let RouteShape::Gateway { via, oif, .. } | RouteShape::BpfGateway { via, oif, .. } =
        route.shape
    {
        attr::emit_address(buf, RTA_GATEWAY, via);
        attr::emit_u32(buf, RTA_OIF, oif);
    }
}

/// The body of a dump request for every route of `family` in every table
/// (`ip route show table all`): a `struct rtmsg` with only the family set.
pub fn dump_request(family: u8) -> [u8; RTMSG_LEN] {
    let mut body = [0; RTMSG_LEN];
    body[0] = family;
    body
}

#[cfg(test)]
mod tests;
