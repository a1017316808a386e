//! Best BGP routes → the kernel routes this node should have.
//!
//! The rules are Calico's (`shared/reference/calico-semantics.md` §2):
//!
//! | route | kernel route |
//! |---|---|
//! | a local block (not /32) | `blackhole B` |
//! | remote block, next hop inside the node's subnet, or pool mode Never | `B via NH dev <underlay> onlink` |
//! | remote IPv4 block otherwise, or pool mode Always | `B via NH dev tunl0 onlink mtu <tunnel MTU>`; with the `bpf` backend `B via NH dev <underlay> onlink encap bpf` |
//! | remote IPv6 block off the subnet | `B via <underlay gateway to NH> dev <its device>` (never IPIP) |
//!
//! and, so that no peer can hijack pod traffic, a learned route is refused
//! when it overlaps a local block, is a default route, lies outside every
//! pool, or points back at this node ([`Rejection`]).
//!
//! The planner is a pure function of its inputs; the one thing it cannot
//! know by itself, the underlay route to an IPv6 next hop off the subnet,
//! is asked of an [`UnderlayLookup`].

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnetwork::IpNetwork;
use serde::{Deserialize, Serialize};

/// How a pool's routes cross subnets (Calico `ipipMode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IpipMode {
    /// Always through the tunnel.
    #[serde(alias = "Always")]
    Always,
    /// Through the tunnel only when the next hop is in another subnet.
    #[default]
    #[serde(alias = "CrossSubnet")]
    CrossSubnet,
    /// Never: direct routes only.
    #[serde(alias = "Never")]
    Never,
}

/// An IP pool: where pod blocks come from, and how they are routed.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Pool {
    /// The pool's CIDR.
    pub cidr: IpNetwork,
    /// Its IPIP mode (ignored for IPv6: Calico forbids IPIP on IPv6 pools).
    #[serde(default)]
    pub ipip_mode: IpipMode,
}

/// What the planner needs to know about this node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalNode {
    /// The node's IPv4 address with the prefix length of its interface
    /// (Calico `ipv4Address`, e.g. `10.0.0.5/24`): its subnet is the
    /// CrossSubnet test.
    pub ipv4: Option<ipnetwork::Ipv4Network>,
    /// The node's IPv6 address with prefix length.
    pub ipv6: Option<ipnetwork::Ipv6Network>,
    /// The interface holding the node address (`eth0`).
    pub underlay: String,
    /// The IPIP device (`tunl0`).
    pub tunnel_device: String,
    /// MTU of tunnel routes (underlay MTU − 20).
    pub tunnel_mtu: u32,
    /// How tunnel routes encapsulate: through the tunnel device, or with
    /// the `bpf` backend's program on the underlay.
    pub tunnel_encap: TunnelEncap,
    /// This node's pod blocks.
    pub blocks: Vec<IpNetwork>,
}

/// How the IPIP tunnel routes of a plan encapsulate.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum TunnelEncap {
    /// `B via NH dev tunl0 onlink mtu M`: the tunnel device does it (the
    /// kernel's ipip module, or the userspace data plane's TUN device).
    #[default]
    Device,
    /// `B via NH dev eth0 onlink encap bpf xmit …`: the `bpf` backend's
    /// program on the route pushes the outer header; the route's 20 bytes
    /// of headroom make its path MTU the underlay's − 20.
    Bpf,
}

/// The kernel route for one prefix.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum RouteKind {
    /// `blackhole B`: a local block; pods get /32 routes of their own.
    Blackhole,
    /// `B via NH dev DEV onlink`: the next hop shares our link.
    Direct {
        /// The next hop (the peer node).
        via: IpAddr,
        /// The underlay device.
        dev: String,
    },
    /// `B via NH dev tunl0 onlink mtu M`: IPIP to the peer node.
    Tunnel {
        /// The outer destination (the peer node).
        via: IpAddr,
        /// The tunnel device.
        dev: String,
        /// Route MTU.
        mtu: u32,
    },
    /// `B via NH dev DEV onlink encap bpf`: IPIP to the peer node by the
    /// `bpf` backend's program, out of the underlay device.
    BpfTunnel {
        /// The outer destination (the peer node).
        via: IpAddr,
        /// The underlay device.
        dev: String,
    },
    /// `B via GW dev DEV`: an IPv6 block whose next hop is off our subnet,
    /// sent to the underlay's gateway towards that next hop.
    Underlay {
        /// The underlay gateway.
        via: IpAddr,
        /// Its device.
        dev: String,
    },
}

/// One desired kernel route.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct DesiredRoute {
    /// The destination.
    pub dst: IpNetwork,
    /// How to reach it.
    #[serde(flatten)]
    pub kind: RouteKind,
}

impl std::fmt::Display for DesiredRoute {
    /// In `ip route` syntax.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.kind {
            RouteKind::Blackhole => write!(f, "blackhole {}", self.dst),
            RouteKind::Direct { via, dev } => write!(f, "{} via {via} dev {dev} onlink", self.dst),
            RouteKind::Tunnel { via, dev, mtu } => {
                write!(f, "{} via {via} dev {dev} onlink mtu {mtu}", self.dst)
            }
            RouteKind::BpfTunnel { via, dev } => {
                write!(f, "{} via {via} dev {dev} onlink encap bpf", self.dst)
            }
            RouteKind::Underlay { via, dev } => write!(f, "{} via {via} dev {dev}", self.dst),
        }
    }
}

/// A best route from BGP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LearnedRoute {
    /// The block.
    pub prefix: IpNetwork,
    /// Its BGP next hop.
    pub next_hop: IpAddr,
}

/// Why a learned route is not installed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RejectReason {
    /// It overlaps one of this node's blocks: it would steal local pods'
    /// traffic.
    OverlapsLocalBlock,
    /// A default route (0.0.0.0/0 or ::/0).
    DefaultRoute,
    /// Inside no configured pool.
    OutsidePools,
    /// Its next hop is this node.
    NextHopIsThisNode,
    /// An IPv4 block with an IPv6 next hop or the other way round.
    NextHopFamily,
    /// IPv6, off our subnet, and the underlay has no route to the next hop
    /// (or no IPv6 node address is configured).
    NoUnderlayRoute,
}

/// A learned route that was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Rejection {
    /// The route.
    pub route: LearnedRoute,
    /// Why.
    pub reason: RejectReason,
}

/// The route to an IPv6 next hop off our subnet, as the kernel would
/// resolve it (`ip -6 route get NH`).
pub trait UnderlayLookup {
    /// Gateway and device towards `next_hop`, if there is a route.
    fn route_to(&self, next_hop: IpAddr) -> Option<(IpAddr, String)>;
}

/// No underlay routes known: IPv6 blocks off the subnet are refused.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoUnderlay;

impl UnderlayLookup for NoUnderlay {
    fn route_to(&self, _: IpAddr) -> Option<(IpAddr, String)> {
        None
    }
}

/// The planner's output.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// The kernel routes to have, by destination.
    pub routes: BTreeMap<IpNetwork, DesiredRoute>,
    /// Learned routes refused, with the reason.
    pub rejected: Vec<Rejection>,
}

fn is_default(p: &IpNetwork) -> bool {
    p.prefix() == 0
}

fn overlaps(a: &IpNetwork, b: &IpNetwork) -> bool {
    match (a, b) {
        (IpNetwork::V4(x), IpNetwork::V4(y)) => x.contains(y.network()) || y.contains(x.network()),
        (IpNetwork::V6(x), IpNetwork::V6(y)) => x.contains(y.network()) || y.contains(x.network()),
        _ => false,
    }
}

fn inside(inner: &IpNetwork, outer: &IpNetwork) -> bool {
    match (inner, outer) {
        (IpNetwork::V4(i), IpNetwork::V4(o)) => o.prefix() <= i.prefix() && o.contains(i.network()),
        (IpNetwork::V6(i), IpNetwork::V6(o)) => o.prefix() <= i.prefix() && o.contains(i.network()),
        _ => false,
    }
}

/// The most specific pool holding `prefix`.
fn pool_of<'a>(pools: &'a [Pool], prefix: &IpNetwork) -> Option<&'a Pool> {
    pools
        .iter()
        .filter(|p| inside(prefix, &p.cidr))
        .max_by_key(|p| p.cidr.prefix())
}

/// Plans the kernel routes for `node`, given the `pools` and the best
/// `learned` routes.
///
/// ```
/// use route_agent::planner::*;
/// let node = LocalNode {
///     ipv4: Some("10.0.0.5/24".parse().unwrap()),
///     ipv6: None,
///     underlay: "eth0".into(),
///     tunnel_device: "tunl0".into(),
///     tunnel_mtu: 1480,
///     tunnel_encap: TunnelEncap::Device,
///     blocks: vec!["10.244.1.0/26".parse().unwrap()],
/// };
/// let pools = [Pool { cidr: "10.244.0.0/16".parse().unwrap(), ipip_mode: IpipMode::CrossSubnet }];
/// let learned = [
///     LearnedRoute { prefix: "10.244.2.0/26".parse().unwrap(), next_hop: "10.0.0.6".parse().unwrap() },
///     LearnedRoute { prefix: "10.244.3.0/26".parse().unwrap(), next_hop: "10.1.0.7".parse().unwrap() },
/// ];
/// let plan = plan(&node, &pools, &learned, &NoUnderlay);
/// let lines: Vec<String> = plan.routes.values().map(|r| r.to_string()).collect();
/// assert_eq!(lines, [
///     "blackhole 10.244.1.0/26",
///     "10.244.2.0/26 via 10.0.0.6 dev eth0 onlink",
///     "10.244.3.0/26 via 10.1.0.7 dev tunl0 onlink mtu 1480",
/// ]);
/// ```
pub fn plan(
    node: &LocalNode,
    pools: &[Pool],
    learned: &[LearnedRoute],
    underlay: &dyn UnderlayLookup,
) -> Plan {
    let mut out = Plan::default();
    for block in &node.blocks {
        // Calico skips /32 blocks: a single address needs no blackhole.
        let host = matches!(block, IpNetwork::V4(b) if b.prefix() == 32)
            || matches!(block, IpNetwork::V6(b) if b.prefix() == 128);
        if !host {
            out.routes.insert(
                *block,
                DesiredRoute {
                    dst: *block,
                    kind: RouteKind::Blackhole,
                },
            );
        }
    }
    for route in learned {
        match plan_one(node, pools, route, underlay) {
            Ok(kind) => {
                out.routes.insert(
                    route.prefix,
                    DesiredRoute {
                        dst: route.prefix,
                        kind,
                    },
                );
            }
            Err(reason) => out.rejected.push(Rejection {
                route: *route,
                reason,
            }),
        }
    }
    out.rejected.sort();
    out
}

fn plan_one(
    node: &LocalNode,
    pools: &[Pool],
    route: &LearnedRoute,
    underlay: &dyn UnderlayLookup,
) -> Result<RouteKind, RejectReason> {
    let prefix = &route.prefix;
    if is_default(prefix) {
        return Err(RejectReason::DefaultRoute);
    }
    if node.blocks.iter().any(|b| overlaps(b, prefix)) {
        return Err(RejectReason::OverlapsLocalBlock);
    }
    let pool = pool_of(pools, prefix).ok_or(RejectReason::OutsidePools)?;
    match (prefix, route.next_hop) {
        (IpNetwork::V4(_), IpAddr::V4(nh)) => {
            if node.ipv4.is_some_and(|a| a.ip() == nh) {
                return Err(RejectReason::NextHopIsThisNode);
            }
            // Calico CrossSubnet: the BGP next hop inside our subnet means
            // a direct route. A node address stored as /32 makes every peer
            // off-subnet, as in Calico.
            let same_subnet = node.ipv4.is_some_and(|a| a.contains(nh));
            let direct = match pool.ipip_mode {
                IpipMode::Never => true,
                IpipMode::Always => false,
                IpipMode::CrossSubnet => same_subnet,
            };
            Ok(if direct {
                RouteKind::Direct {
                    via: route.next_hop,
                    dev: node.underlay.clone(),
                }
            } else {
                match node.tunnel_encap {
                    TunnelEncap::Device => RouteKind::Tunnel {
                        via: route.next_hop,
                        dev: node.tunnel_device.clone(),
                        mtu: node.tunnel_mtu,
                    },
                    TunnelEncap::Bpf => RouteKind::BpfTunnel {
                        via: route.next_hop,
                        dev: node.underlay.clone(),
                    },
                }
            })
        }
        (IpNetwork::V6(_), IpAddr::V6(nh)) => {
            if node.ipv6.is_some_and(|a| a.ip() == nh) {
                return Err(RejectReason::NextHopIsThisNode);
            }
            // IPIP is IPv4-only: IPv6 blocks go direct on the shared
            // subnet, else to the underlay's gateway toward the next hop.
            if node.ipv6.is_some_and(|a| a.contains(nh)) {
                return Ok(RouteKind::Direct {
                    via: route.next_hop,
                    dev: node.underlay.clone(),
                });
            }
            let (via, dev) = underlay
                .route_to(route.next_hop)
                .ok_or(RejectReason::NoUnderlayRoute)?;
            Ok(RouteKind::Underlay { via, dev })
        }
        _ => Err(RejectReason::NextHopFamily),
    }
}
