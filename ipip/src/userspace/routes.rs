//! Learning the tunnel table from the kernel's routes through the tunnel
//! device, as the kernel's ipip module does: a dump at start (`ip -4 route
//! show table all dev tunl0`), then a fresh dump whenever an IPv4 route or
//! nexthop notification arrives (`ip monitor route nexthop`). Whoever
//! installs the routes (route-agent, BIRD, FRR, an operator) drives the
//! data plane.
//!
//! A route through a kernel nexthop object (`ip route add B nhid N`, Linux
//! ≥ 5.3) carries the object's gateway and device only while
//! `net.ipv4.nexthop_compat_mode` is 1; FRR setups set it to 0. So the
//! objects are dumped too (`ip nexthop`) and a route that names one by id
//! alone is resolved through it, as the kernel forwards it.

use std::collections::HashMap;
use std::io;
use std::net::Ipv4Addr;
use std::sync::{Arc, RwLock};

use netlink_packet_core::{NLM_F_DUMP, NLM_F_REQUEST, NetlinkMessage, NetlinkPayload};
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteMessage, RouteType};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

use super::counters::Counters;
use super::table::{Prefix, TunnelTable};

/// One kernel nexthop object, as far as the tunnel needs it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Nexthop {
    /// Its device (`NHA_OIF`), if it has one.
    pub oif: Option<u32>,
    /// Its IPv4 gateway (`NHA_GATEWAY`), if it has one.
    pub gateway: Option<Ipv4Addr>,
    /// The member ids of a group object (`NHA_GROUP`), in order.
    pub group: Vec<u32>,
}

/// Kernel nexthop objects by id.
pub type Nexthops = HashMap<u32, Nexthop>;

/// The device and gateway a route naming nexthop object `id` goes
/// through, if that is `ifindex` with an IPv4 gateway; for a group, its
/// first member that does (as for ECMP routes).
fn resolve(nexthops: &Nexthops, id: u32, ifindex: u32) -> Option<Ipv4Addr> {
    let nh = nexthops.get(&id)?;
    if nh.group.is_empty() {
        return nh.gateway.filter(|_| nh.oif == Some(ifindex));
    }
    // Groups cannot nest, so members are plain objects.
    nh.group.iter().find_map(|m| {
        let member = nexthops.get(m)?;
        member.gateway.filter(|_| member.oif == Some(ifindex))
    })
}

/// The tunnel route in `msg`, if it is one: a unicast IPv4 route whose
/// next hop (or one of whose ECMP next hops: the first is used) leaves
/// through interface `ifindex` with a gateway. `B via G dev tunl0 onlink`
/// gives `(B, G)`. A route that names a nexthop object without carrying
/// its gateway (`nexthop_compat_mode` 0) is resolved through `nexthops`.
pub fn tunnel_route(
    msg: &RouteMessage,
    ifindex: u32,
    nexthops: &Nexthops,
) -> Option<(Prefix, Ipv4Addr)> {
    if msg.header.address_family != AddressFamily::Inet || msg.header.kind != RouteType::Unicast {
        return None;
    }
    let mut dst = Ipv4Addr::UNSPECIFIED;
    let mut oif = None;
    let mut gateway = None;
    let mut nhid = None;
    for attr in &msg.attributes {
        match attr {
            RouteAttribute::Destination(RouteAddress::Inet(a)) => dst = *a,
            RouteAttribute::Oif(i) => oif = Some(*i),
            RouteAttribute::Gateway(RouteAddress::Inet(g)) => gateway = Some(*g),
            RouteAttribute::NhId(id) => nhid = Some(*id),
            RouteAttribute::MultiPath(hops) if gateway.is_none() => {
                gateway = hops
                    .iter()
                    .filter(|h| h.interface_index == ifindex)
                    .find_map(|h| {
                        h.attributes.iter().find_map(|a| match a {
                            RouteAttribute::Gateway(RouteAddress::Inet(g)) => Some(*g),
                            _ => None,
                        })
                    });
                if gateway.is_some() {
                    oif = Some(ifindex);
                }
            }
            _ => {}
        }
    }
    if oif.is_none()
        && gateway.is_none()
        && let Some(id) = nhid
    {
        gateway = resolve(nexthops, id, ifindex);
        oif = gateway.map(|_| ifindex);
    }
    if oif != Some(ifindex) {
        return None;
    }
    Some((
        Prefix::new(dst, msg.header.destination_prefix_length)?,
        gateway?,
    ))
}

fn decode_error(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("netlink decode: {e}"))
}

/// Sends `request` (a whole dump request, sequence number `seq`) and hands
/// each reply of that sequence to `each` (its `nlmsg_type`, then the whole
/// message, header included) until `NLMSG_DONE`.
///
/// # Errors
/// The socket's, a malformed reply's, or the kernel's refusal (its errno).
fn read_dump(
    sock: &Socket,
    request: &[u8],
    seq: u32,
    mut each: impl FnMut(u16, &[u8]) -> io::Result<()>,
) -> io::Result<()> {
    const NLMSG_ERROR: u16 = 2;
    const NLMSG_DONE: u16 = 3;
    sock.send_to(request, &SocketAddr::new(0, 0), 0)?;
    loop {
        let (data, _) = sock.recv_from_full()?;
        let mut offset = 0;
        while let Some(rest) = data.get(offset..).filter(|r| r.len() >= 16) {
            // struct nlmsghdr: length, type, flags, sequence, port.
            let field = |at: usize| rest.get(at..at + 4).and_then(|b| b.try_into().ok());
            let len = field(0).map_or(0, |b| u32::from_ne_bytes(b) as usize);
            let kind = rest
                .get(4..6)
                .and_then(|b| b.try_into().ok())
                .map_or(0, u16::from_ne_bytes);
            let Some(msg) = rest.get(..len).filter(|_| len >= 16) else {
                return Err(decode_error(format!("netlink message length {len}")));
            };
            if field(8).map(u32::from_ne_bytes) == Some(seq) {
                match kind {
                    NLMSG_DONE => return Ok(()),
                    NLMSG_ERROR => {
                        let errno = msg.get(16..20).and_then(|b| b.try_into().ok());
                        return match errno.map_or(0, i32::from_ne_bytes).abs() {
                            0 => Ok(()),
                            errno => Err(io::Error::from_raw_os_error(errno)),
                        };
                    }
                    _ => each(kind, msg)?,
                }
            }
            // Netlink messages are 4-byte aligned.
            offset = offset.saturating_add(len.saturating_add(3) & !3);
        }
    }
}

/// Every IPv4 route in every table (`RTM_GETROUTE` dump).
pub fn dump_routes(sock: &Socket, seq: u32) -> io::Result<Vec<RouteMessage>> {
    let mut req = RouteMessage::default();
    req.header.address_family = AddressFamily::Inet;
    let mut msg = NetlinkMessage::from(RouteNetlinkMessage::GetRoute(req));
    msg.header.flags = NLM_F_REQUEST | NLM_F_DUMP;
    msg.header.sequence_number = seq;
    msg.finalize();
    let mut buf = vec![0; msg.buffer_len()];
    msg.serialize(&mut buf);
    let mut routes = Vec::new();
    read_dump(sock, &buf, seq, |_, bytes| {
        let msg =
            NetlinkMessage::<RouteNetlinkMessage>::deserialize(bytes).map_err(decode_error)?;
        if let NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewRoute(r)) = msg.payload {
            routes.push(r);
        }
        Ok(())
    })?;
    Ok(routes)
}

/// `RTM_NEWNEXTHOP`, `RTM_GETNEXTHOP` and the `NHA_*` attributes read
/// (linux/nexthop.h): netlink-packet-route does not model nexthop objects.
const RTM_NEWNEXTHOP: u16 = 104;
const RTM_GETNEXTHOP: u16 = 106;
const NHA_ID: u16 = 1;
const NHA_GROUP: u16 = 2;
const NHA_OIF: u16 = 5;
const NHA_GATEWAY: u16 = 6;
/// `struct nhmsg`: family, scope, protocol, reserved, flags.
const NHMSG_LEN: usize = 8;

/// Every kernel nexthop object (`RTM_GETNEXTHOP` dump). A kernel without
/// nexthop objects has none.
pub fn dump_nexthops(sock: &Socket, seq: u32) -> io::Result<Nexthops> {
    // struct nlmsghdr, then an all-zero struct nhmsg (every family).
    let len = 16 + NHMSG_LEN;
    let mut req = Vec::with_capacity(len);
    req.extend_from_slice(&u32::try_from(len).unwrap_or(0).to_ne_bytes());
    req.extend_from_slice(&RTM_GETNEXTHOP.to_ne_bytes());
    req.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    req.extend_from_slice(&seq.to_ne_bytes());
    req.extend_from_slice(&[0; 4 + NHMSG_LEN]);
    let mut nexthops = Nexthops::new();
    let read = read_dump(sock, &req, seq, |kind, msg| {
        if kind == RTM_NEWNEXTHOP
            && let Some((id, nh)) = parse_nexthop(msg.get(16..).unwrap_or_default())
        {
            nexthops.insert(id, nh);
        }
        Ok(())
    });
    match read {
        // No nexthop support is no objects.
        Err(e) if matches!(e.raw_os_error(), Some(libc::EOPNOTSUPP | libc::EINVAL)) => {
            Ok(Nexthops::new())
        }
        Err(e) => Err(e),
        Ok(()) => Ok(nexthops),
    }
}

/// One `RTM_NEWNEXTHOP` body (`struct nhmsg` and attributes): its id and
/// what the tunnel needs of it.
fn parse_nexthop(body: &[u8]) -> Option<(u32, Nexthop)> {
    let mut attrs = body.get(NHMSG_LEN..)?;
    let mut id = None;
    let mut nh = Nexthop::default();
    // struct nlattr: length (header included), type; 4-byte aligned.
    while let [l0, l1, t0, t1, ..] = *attrs {
        let len = usize::from(u16::from_ne_bytes([l0, l1]));
        let kind = u16::from_ne_bytes([t0, t1]) & 0x3fff;
        let value = attrs.get(4..len)?;
        let u32_value = || value.get(..4)?.try_into().ok().map(u32::from_ne_bytes);
        match kind {
            NHA_ID => id = u32_value(),
            NHA_OIF => nh.oif = u32_value(),
            NHA_GATEWAY => {
                if let Ok(a) = <[u8; 4]>::try_from(value) {
                    nh.gateway = Some(Ipv4Addr::from(a));
                }
            }
            // struct nexthop_grp: id (u32), weight, weight_high, reserved.
            NHA_GROUP => {
                nh.group = value
                    .chunks_exact(8)
                    .filter_map(|e| e.get(..4)?.try_into().ok().map(u32::from_ne_bytes))
                    .collect();
            }
            _ => {}
        }
        attrs = attrs.get(len.saturating_add(3) & !3..).unwrap_or_default();
    }
    Some((id?, nh))
}

/// Builds the table from a dump: the tunnel routes through `ifindex`
/// (through `nexthops` where a route names an object alone), plus the
/// extra peers.
pub fn build_table(
    routes: &[RouteMessage],
    nexthops: &Nexthops,
    ifindex: u32,
    extra: &[Ipv4Addr],
) -> TunnelTable {
    let mut table = TunnelTable::with_extra_peers(extra.iter().copied());
    for (prefix, gateway) in routes
        .iter()
        .filter_map(|r| tunnel_route(r, ifindex, nexthops))
    {
        table.insert(prefix, gateway);
    }
    table
}

/// The table the data plane reads: replaced whole on every refresh.
pub type SharedTable = Arc<RwLock<Arc<TunnelTable>>>;

/// Keeps a [`SharedTable`] in step with the kernel's routes.
pub struct RouteLearner {
    monitor: Socket,
    dump: Socket,
    ifindex: u32,
    extra: Vec<Ipv4Addr>,
    seq: u32,
}

impl RouteLearner {
    /// Subscribes to IPv4 route notifications (before the first dump, so no
    /// change is missed between the two).
    pub fn new(ifindex: u32, extra: Vec<Ipv4Addr>) -> io::Result<RouteLearner> {
        let mut monitor = Socket::new(NETLINK_ROUTE)?;
        monitor.bind_auto()?;
        monitor.add_membership(libc::RTNLGRP_IPV4_ROUTE)?;
        // A kernel without nexthop objects has no such group: nothing to
        // follow there.
        let _ = monitor.add_membership(libc::RTNLGRP_NEXTHOP);
        let mut dump = Socket::new(NETLINK_ROUTE)?;
        dump.bind_auto()?;
        Ok(RouteLearner {
            monitor,
            dump,
            ifindex,
            extra,
            seq: 0,
        })
    }

    /// Dumps the routes and returns the table they give.
    pub fn refresh(&mut self) -> io::Result<TunnelTable> {
        self.seq = self.seq.wrapping_add(1);
        let routes = dump_routes(&self.dump, self.seq)?;
        // Only routes naming an object alone need the objects.
        let bare = |r: &RouteMessage| {
            r.attributes
                .iter()
                .any(|a| matches!(a, RouteAttribute::NhId(_)))
                && !r
                    .attributes
                    .iter()
                    .any(|a| matches!(a, RouteAttribute::Oif(_) | RouteAttribute::MultiPath(_)))
        };
        let nexthops = if routes.iter().any(bare) {
            self.seq = self.seq.wrapping_add(1);
            dump_nexthops(&self.dump, self.seq)?
        } else {
            Nexthops::new()
        };
        Ok(build_table(&routes, &nexthops, self.ifindex, &self.extra))
    }

    /// Blocks until a route notification arrives, then drains any queued
    /// behind it so a burst costs one dump. An overrun (ENOBUFS) also counts
    /// as a change: the dump that follows resynchronises.
    pub fn wait_for_change(&self) -> io::Result<()> {
        match self.monitor.recv_from_full() {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {}
            Err(e) => return Err(e),
        }
        self.monitor.set_non_blocking(true)?;
        let drained = loop {
            match self.monitor.recv_from_full() {
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        self.monitor.set_non_blocking(false)?;
        drained
    }

    /// Loads the first table into `shared`, then follows route changes on a
    /// background thread for the life of the process.
    pub fn spawn(mut self, shared: SharedTable, counters: Arc<Counters>) -> io::Result<()> {
        let first = self.refresh()?;
        install(&shared, &counters, first);
        std::thread::Builder::new()
            .name("ipip-routes".into())
            .spawn(move || {
                loop {
                    let next = self.wait_for_change().and_then(|()| self.refresh());
                    match next {
                        Ok(table) => install(&shared, &counters, table),
                        // Keep forwarding on the last table; retry shortly.
                        Err(_) => std::thread::sleep(std::time::Duration::from_millis(200)),
                    }
                }
            })?;
        Ok(())
    }
}

fn install(shared: &SharedTable, counters: &Counters, table: TunnelTable) {
    counters.routes.store(
        u64::try_from(table.len()).unwrap_or(u64::MAX),
        std::sync::atomic::Ordering::Relaxed,
    );
    let table = Arc::new(table);
    match shared.write() {
        Ok(mut slot) => *slot = table,
        Err(poisoned) => *poisoned.into_inner() = table,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_route::route::{RouteNextHop, RouteProtocol};

    fn route(dst: &str, len: u8, attrs: Vec<RouteAttribute>) -> RouteMessage {
        let mut m = RouteMessage::default();
        m.header.address_family = AddressFamily::Inet;
        m.header.kind = RouteType::Unicast;
        m.header.protocol = RouteProtocol::Other(12);
        m.header.destination_prefix_length = len;
        m.attributes
            .push(RouteAttribute::Destination(RouteAddress::Inet(
                dst.parse().unwrap(),
            )));
        m.attributes.extend(attrs);
        m
    }

    fn gw(s: &str) -> RouteAttribute {
        RouteAttribute::Gateway(RouteAddress::Inet(s.parse().unwrap()))
    }

    #[test]
    fn learns_gateway_routes_through_the_device_only() {
        let through = route(
            "10.244.2.0",
            26,
            vec![RouteAttribute::Oif(7), gw("10.91.0.2")],
        );
        let elsewhere = route(
            "10.244.3.0",
            26,
            vec![RouteAttribute::Oif(3), gw("10.91.0.3")],
        );
        let no_gateway = route("10.244.4.0", 26, vec![RouteAttribute::Oif(7)]);
        let mut blackhole = route(
            "10.244.1.0",
            26,
            vec![RouteAttribute::Oif(7), gw("10.91.0.4")],
        );
        blackhole.header.kind = RouteType::BlackHole;
        let t = build_table(
            &[through, elsewhere, no_gateway, blackhole],
            &Nexthops::new(),
            7,
            &[],
        );
        assert_eq!(t.len(), 1);
        assert_eq!(
            t.lookup("10.244.2.9".parse().unwrap()),
            Some("10.91.0.2".parse().unwrap())
        );
        assert!(!t.is_peer("10.91.0.3".parse().unwrap()));
    }

    #[test]
    fn a_route_naming_a_nexthop_object_alone_goes_through_the_object() {
        let object = |oif, g: &str| Nexthop {
            oif: Some(oif),
            gateway: Some(g.parse().unwrap()),
            group: Vec::new(),
        };
        let nexthops: Nexthops = [
            (10, object(7, "10.91.0.2")),
            (11, object(3, "10.91.0.3")),
            (12, object(7, "10.91.0.4")),
            (
                20,
                Nexthop {
                    group: vec![11, 12],
                    ..Nexthop::default()
                },
            ),
        ]
        .into();
        let learned = |id| {
            let r = route("10.244.2.0", 26, vec![RouteAttribute::NhId(id)]);
            tunnel_route(&r, 7, &nexthops).map(|(p, g)| (p.to_string(), g.to_string()))
        };
        assert_eq!(
            learned(10),
            Some(("10.244.2.0/26".into(), "10.91.0.2".into()))
        );
        // Another device, an unknown id: not a tunnel route.
        assert_eq!(learned(11), None);
        assert_eq!(learned(99), None);
        // A group: its first member on the device.
        assert_eq!(
            learned(20),
            Some(("10.244.2.0/26".into(), "10.91.0.4".into()))
        );
        // With the compat attributes present they are what counts.
        let r = route(
            "10.244.3.0",
            26,
            vec![
                RouteAttribute::NhId(11),
                RouteAttribute::Oif(7),
                gw("10.91.0.9"),
            ],
        );
        assert_eq!(
            tunnel_route(&r, 7, &nexthops).map(|(_, g)| g.to_string()),
            Some("10.91.0.9".into())
        );
    }

    #[test]
    fn parses_a_nexthop_message_body() {
        // RTM_NEWNEXTHOP body for `ip nexthop add id 7 via 10.91.0.2 dev
        // tunl0 onlink` (ifindex 4), laid out per linux/nexthop.h: struct
        // nhmsg (AF_INET, scope 0, protocol 4 boot, flags RTNH_F_ONLINK),
        // then NHA_ID, NHA_GATEWAY, NHA_OIF.
        let mut body = vec![2, 0, 4, 0];
        body.extend_from_slice(&4u32.to_ne_bytes());
        for (kind, value) in [
            (NHA_ID, 7u32.to_ne_bytes().to_vec()),
            (NHA_GATEWAY, vec![10, 91, 0, 2]),
            (NHA_OIF, 4u32.to_ne_bytes().to_vec()),
        ] {
            body.extend_from_slice(&(4 + value.len() as u16).to_ne_bytes());
            body.extend_from_slice(&kind.to_ne_bytes());
            body.extend_from_slice(&value);
        }
        assert_eq!(
            parse_nexthop(&body),
            Some((
                7,
                Nexthop {
                    oif: Some(4),
                    gateway: Some("10.91.0.2".parse().unwrap()),
                    group: Vec::new(),
                }
            ))
        );
        // Cut anywhere, it does not panic.
        for cut in 0..body.len() {
            let _ = parse_nexthop(&body[..cut]);
        }
    }

    #[test]
    fn ecmp_route_uses_first_next_hop_on_the_device() {
        let hop = |ifindex, g: &str| {
            let mut h = RouteNextHop::default();
            h.interface_index = ifindex;
            h.attributes = vec![gw(g)];
            h
        };
        let r = route(
            "10.244.5.0",
            24,
            vec![RouteAttribute::MultiPath(vec![
                hop(3, "10.91.0.9"),
                hop(7, "10.91.0.5"),
                hop(7, "10.91.0.6"),
            ])],
        );
        assert_eq!(
            tunnel_route(&r, 7, &Nexthops::new()).map(|(p, g)| (p.to_string(), g.to_string())),
            Some(("10.244.5.0/24".into(), "10.91.0.5".into()))
        );
    }
}
