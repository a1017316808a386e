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

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, RwLock};

use netlink::nexthop::Nexthop;
use netlink::route::{FAMILY_V4, Route, RouteType};
use netlink::{Group, Monitor, Netlink};

use super::counters::Counters;
use super::table::{Prefix, TunnelTable};

/// Kernel nexthop objects by id.
pub type Nexthops = HashMap<u32, Nexthop>;

fn v4(address: Option<IpAddr>) -> Option<Ipv4Addr> {
    match address? {
        IpAddr::V4(a) => Some(a),
        IpAddr::V6(_) => None,
    }
}

/// The IPv4 gateway a route naming nexthop object `id` goes through, if
/// the object's device is `ifindex`; for a group, its first member that
/// does (as for ECMP routes).
fn resolve(nexthops: &Nexthops, id: u32, ifindex: u32) -> Option<Ipv4Addr> {
    let nh = nexthops.get(&id)?;
    if nh.group.is_empty() {
        return v4(nh.gateway).filter(|_| nh.oif == Some(ifindex));
    }
    // Groups cannot nest, so members are plain objects.
    nh.group.iter().find_map(|m| {
        let member = nexthops.get(m)?;
        v4(member.gateway).filter(|_| member.oif == Some(ifindex))
    })
}

/// The tunnel route in `route`, if it is one: a unicast IPv4 route whose
/// next hop (or one of whose ECMP next hops: the first is used) leaves
/// through interface `ifindex` with a gateway. `B via G dev tunl0 onlink`
/// gives `(B, G)`. A route that names a nexthop object without carrying
/// its gateway (`nexthop_compat_mode` 0) is resolved through `nexthops`.
pub fn tunnel_route(
    route: &Route,
    ifindex: u32,
    nexthops: &Nexthops,
) -> Option<(Prefix, Ipv4Addr)> {
    if route.family != FAMILY_V4 || route.kind != RouteType::UNICAST {
        return None;
    }
    let dst = v4(route.dst).unwrap_or(Ipv4Addr::UNSPECIFIED);
    let mut oif = route.oif;
    let mut gateway = v4(route.gateway);
    if gateway.is_none()
        && let Some(hops) = &route.multipath
    {
        gateway = hops
            .iter()
            .filter(|h| h.ifindex == ifindex)
            .find_map(|h| v4(h.gateway));
        if gateway.is_some() {
            oif = Some(ifindex);
        }
    }
    if oif.is_none()
        && gateway.is_none()
        && let Some(id) = route.nh_id
    {
        gateway = resolve(nexthops, id, ifindex);
        oif = gateway.map(|_| ifindex);
    }
    if oif != Some(ifindex) {
        return None;
    }
    Some((Prefix::new(dst, route.dst_len)?, gateway?))
}

/// Builds the table from a dump: the tunnel routes through `ifindex`
/// (through `nexthops` where a route names an object alone), plus the
/// extra peers.
pub fn build_table(
    routes: &[Route],
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
    monitor: Monitor,
    dump: Netlink,
    ifindex: u32,
    extra: Vec<Ipv4Addr>,
}

impl RouteLearner {
    /// Subscribes to IPv4 route and nexthop notifications (before the
    /// first dump, so no change is missed between the two).
    ///
    /// # Errors
    /// When a netlink socket cannot be opened.
    pub fn new(ifindex: u32, extra: Vec<Ipv4Addr>) -> io::Result<RouteLearner> {
        Ok(RouteLearner {
            monitor: Monitor::open(&[Group::Ipv4Route, Group::Nexthop])?,
            dump: Netlink::open()?,
            ifindex,
            extra,
        })
    }

    /// Dumps the routes and returns the table they give.
    ///
    /// # Errors
    /// When a dump fails.
    pub fn refresh(&mut self) -> io::Result<TunnelTable> {
        let routes = self.dump.routes(FAMILY_V4)?;
        // Only routes naming an object alone need the objects.
        let bare = |r: &Route| r.nh_id.is_some() && r.oif.is_none() && r.multipath.is_none();
        let nexthops = if routes.iter().any(bare) {
            // A kernel without nexthop objects has none.
            self.dump
                .nexthops()?
                .unwrap_or_default()
                .into_iter()
                .map(|n| (n.id, n))
                .collect()
        } else {
            Nexthops::new()
        };
        Ok(build_table(&routes, &nexthops, self.ifindex, &self.extra))
    }

    /// Blocks until a route notification arrives, then drains any queued
    /// behind it so a burst costs one dump. Lost notifications also count
    /// as a change: the dump that follows resynchronises.
    ///
    /// # Errors
    /// When the monitor socket fails.
    pub fn wait_for_change(&mut self) -> io::Result<()> {
        self.monitor.recv()?;
        self.monitor.drain()
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
    use netlink::route::NextHop;

    /// A unicast IPv4 route of BIRD's (protocol 12) to `dst`/`len`, as the
    /// netlink crate reads it from a dump.
    fn route(dst: &str, len: u8) -> Route {
        Route {
            family: FAMILY_V4,
            kind: RouteType::UNICAST,
            protocol: 12,
            dst_len: len,
            dst: Some(dst.parse().unwrap()),
            ..Route::default()
        }
    }

    /// `route` through `gateway` on `oif`.
    fn via(dst: &str, len: u8, oif: u32, gateway: &str) -> Route {
        Route {
            oif: Some(oif),
            gateway: Some(gateway.parse().unwrap()),
            ..route(dst, len)
        }
    }

    #[test]
    fn learns_gateway_routes_through_the_device_only() {
        let through = via("10.244.2.0", 26, 7, "10.91.0.2");
        let elsewhere = via("10.244.3.0", 26, 3, "10.91.0.3");
        let no_gateway = Route {
            oif: Some(7),
            ..route("10.244.4.0", 26)
        };
        let blackhole = Route {
            kind: RouteType::BLACKHOLE,
            ..via("10.244.1.0", 26, 7, "10.91.0.4")
        };
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
            ..Nexthop::default()
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
            let r = Route {
                nh_id: Some(id),
                ..route("10.244.2.0", 26)
            };
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
        let r = Route {
            nh_id: Some(11),
            ..via("10.244.3.0", 26, 7, "10.91.0.9")
        };
        assert_eq!(
            tunnel_route(&r, 7, &nexthops).map(|(_, g)| g.to_string()),
            Some("10.91.0.9".into())
        );
    }

    #[test]
    fn an_ipv6_gateway_object_is_not_a_tunnel_gateway() {
        let nexthops: Nexthops = [(
            10,
            Nexthop {
                oif: Some(7),
                gateway: Some("fd00::2".parse().unwrap()),
                ..Nexthop::default()
            },
        )]
        .into();
        let r = Route {
            nh_id: Some(10),
            ..route("10.244.2.0", 26)
        };
        assert_eq!(tunnel_route(&r, 7, &nexthops), None);
    }

    #[test]
    fn ecmp_route_uses_first_next_hop_on_the_device() {
        let hop = |ifindex, g: &str| NextHop {
            ifindex,
            flags: 0,
            hops: 0,
            gateway: Some(g.parse().unwrap()),
        };
        let r = Route {
            multipath: Some(vec![
                hop(3, "10.91.0.9"),
                hop(7, "10.91.0.5"),
                hop(7, "10.91.0.6"),
            ]),
            ..route("10.244.5.0", 24)
        };
        assert_eq!(
            tunnel_route(&r, 7, &Nexthops::new()).map(|(p, g)| (p.to_string(), g.to_string())),
            Some(("10.244.5.0/24".into(), "10.91.0.5".into()))
        );
    }
}
