//! Learning the tunnel table from the kernel's routes through the tunnel
//! device, as the kernel's ipip module does: a dump at start (`ip -4 route
//! show table all dev tunl0`), then a fresh dump whenever an IPv4 route
//! notification arrives (`ip monitor route`). Whoever installs the routes
//! (route-agent, BIRD, an operator) drives the data plane.

use std::io;
use std::net::Ipv4Addr;
use std::sync::{Arc, RwLock};

use netlink_packet_core::{NLM_F_DUMP, NLM_F_REQUEST, NetlinkMessage, NetlinkPayload};
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteMessage, RouteType};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

use super::counters::Counters;
use super::table::{Prefix, TunnelTable};

/// The tunnel route in `msg`, if it is one: a unicast IPv4 route whose
/// next hop (or one of whose ECMP next hops: the first is used) leaves
/// through interface `ifindex` with a gateway. `B via G dev tunl0 onlink`
/// gives `(B, G)`.
pub fn tunnel_route(msg: &RouteMessage, ifindex: u32) -> Option<(Prefix, Ipv4Addr)> {
    if msg.header.address_family != AddressFamily::Inet || msg.header.kind != RouteType::Unicast {
        return None;
    }
    let mut dst = Ipv4Addr::UNSPECIFIED;
    let mut oif = None;
    let mut gateway = None;
    for attr in &msg.attributes {
        match attr {
            RouteAttribute::Destination(RouteAddress::Inet(a)) => dst = *a,
            RouteAttribute::Oif(i) => oif = Some(*i),
            RouteAttribute::Gateway(RouteAddress::Inet(g)) => gateway = Some(*g),
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
    sock.send_to(&buf, &SocketAddr::new(0, 0), 0)?;
    let mut routes = Vec::new();
    loop {
        let (data, _) = sock.recv_from_full()?;
        let mut offset = 0;
        while let Some(rest) = data.get(offset..).filter(|r| !r.is_empty()) {
            let msg =
                NetlinkMessage::<RouteNetlinkMessage>::deserialize(rest).map_err(decode_error)?;
            let len = usize::try_from(msg.header.length).unwrap_or(0);
            if len == 0 {
                break;
            }
            match msg.payload {
                NetlinkPayload::Done(_) => return Ok(routes),
                NetlinkPayload::Error(e) => return Err(e.to_io()),
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewRoute(r))
                    if msg.header.sequence_number == seq =>
                {
                    routes.push(r)
                }
                _ => {}
            }
            // Netlink messages are 4-byte aligned.
            offset = offset.saturating_add(len.saturating_add(3) & !3);
        }
    }
}

/// Builds the table from a dump: the tunnel routes through `ifindex`, plus
/// the extra peers.
pub fn build_table(routes: &[RouteMessage], ifindex: u32, extra: &[Ipv4Addr]) -> TunnelTable {
    let mut table = TunnelTable::with_extra_peers(extra.iter().copied());
    for (prefix, gateway) in routes.iter().filter_map(|r| tunnel_route(r, ifindex)) {
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
        Ok(build_table(&routes, self.ifindex, &self.extra))
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
        let t = build_table(&[through, elsewhere, no_gateway, blackhole], 7, &[]);
        assert_eq!(t.len(), 1);
        assert_eq!(
            t.lookup("10.244.2.9".parse().unwrap()),
            Some("10.91.0.2".parse().unwrap())
        );
        assert!(!t.is_peer("10.91.0.3".parse().unwrap()));
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
            tunnel_route(&r, 7).map(|(p, g)| (p.to_string(), g.to_string())),
            Some(("10.244.5.0/24".into(), "10.91.0.5".into()))
        );
    }
}
