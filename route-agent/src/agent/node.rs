//! This node as the agent sees it: its IPv4 address with prefix length,
//! the interface that holds it (the underlay), that interface's MTU and
//! the node's IPv6 address, read from the kernel over netlink. Read once
//! at start and again after link or address changes; the reading is I/O
//! and lives here, what to do about a change is decided in
//! [`super::control`].

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};

use ipnetwork::{IpNetwork, Ipv4Network, Ipv6Network};

use crate::config::{Config, DetectError, NodeConfig, detect_address};
use crate::fib::Netlink;
use crate::netinfo::{self, UnderlayRoutes};
use crate::planner::LocalNode;
use crate::state::NodeStatus;

/// Why the node could not be read.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// Netlink failed while reading the node's interfaces.
    #[error("cannot read the node's interfaces over netlink: {0}")]
    Netlink(#[from] std::io::Error),
    /// The node address could not be found.
    #[error("{0}")]
    Detect(#[from] DetectError),
    /// Neither `node.address` nor `node.autodetect` is set.
    #[error("no node address: set node.address (e.g. 10.0.0.5/24) or node.autodetect")]
    NoAddress,
    /// The configured address is on no interface.
    #[error(
        "node address {0} is on no interface of this host — fix node.address or use node.autodetect"
    )]
    AddressNotHere(Ipv4Network),
}

impl NodeError {
    /// True when the config does not fit this host (the node address it
    /// names, or its autodetection): a config problem, not a failure of
    /// the host.
    pub fn is_config_problem(&self) -> bool {
        matches!(
            self,
            NodeError::NoAddress | NodeError::AddressNotHere(_) | NodeError::Detect(_)
        )
    }
}

/// The node as the planner and the tunnel see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeView {
    /// The interface holding the node address (`eth0`).
    pub underlay: String,
    /// The node address with its interface's prefix length.
    pub address: Ipv4Network,
    /// The underlay interface's MTU.
    pub mtu: u32,
    /// The node's IPv6 address (configured, or the underlay's first
    /// global one).
    pub address_v6: Option<Ipv6Network>,
}

impl NodeView {
    /// Finds the node address (`node.address`, or `node.autodetect`), its
    /// interface, that interface's MTU and the node's IPv6 address
    /// (`node.address-v6`, or the interface's first global one), like `ip
    /// -o addr show` and `ip link show`.
    pub fn read(config: &NodeConfig) -> Result<NodeView, NodeError> {
        let mut netlink = Netlink::open()?;
        let addrs = netinfo::addresses(&mut netlink)?;
        let (underlay, net) = match (&config.address, &config.autodetect) {
            (Some(net), _) => {
                let dev = addrs
                    .iter()
                    .find(|a| a.address.ip() == IpAddr::V4(net.ip()))
                    .map(|a| a.interface.clone())
                    .ok_or(NodeError::AddressNotHere(*net))?;
                (dev, *net)
            }
            (None, Some(method)) => detect_address(method, &addrs, source_towards)?,
            (None, None) => return Err(NodeError::NoAddress),
        };
        let mtu = netinfo::interfaces(&mut netlink)?
            .into_iter()
            .find(|i| i.name == underlay)
            .map_or(1500, |i| i.mtu);
        let address_v6 = config.address_v6.or_else(|| {
            addrs.iter().find_map(|a| match a.address {
                // Link-local (fe80::/10) addresses cannot be next hops of
                // routes on other links.
                IpNetwork::V6(v6)
                    if a.interface == underlay && (v6.ip().segments()[0] & 0xffc0) != 0xfe80 =>
                {
                    Some(v6)
                }
                _ => None,
            })
        });
        Ok(NodeView {
            underlay,
            address: net,
            mtu,
            address_v6,
        })
    }

    /// The planner's view of this node under `config`.
    pub fn local_node(&self, config: &Config) -> LocalNode {
        let mut node = config.local_node(self.address, &self.underlay, self.mtu);
        node.ipv6 = self.address_v6;
        node
    }

    /// The node as the admin API shows it.
    pub fn status(&self, name: Option<String>) -> NodeStatus {
        NodeStatus {
            name,
            address: Some(self.address),
            underlay: self.underlay.clone(),
            underlay_mtu: self.mtu,
        }
    }
}

/// The kernel's source address towards `target` (a connected UDP socket
/// sends nothing).
fn source_towards(target: Ipv4Addr) -> Option<Ipv4Addr> {
    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).ok()?;
    socket.connect((target, 9)).ok()?;
    match socket.local_addr().ok()? {
        SocketAddr::V4(a) => Some(*a.ip()),
        SocketAddr::V6(_) => None,
    }
}

/// The underlay's IPv6 routes from the kernel (`ip -6 route`, routes of
/// other protocols than `protocol`, ours), over a netlink socket opened
/// the first time they are needed.
#[derive(Debug)]
pub struct KernelUnderlay {
    protocol: u8,
    netlink: Option<Netlink>,
}

impl KernelUnderlay {
    /// Reads routes that are not of route protocol `protocol`.
    pub fn new(protocol: u8) -> Self {
        KernelUnderlay {
            protocol,
            netlink: None,
        }
    }

    /// The routes now; none (logged) when they cannot be read.
    pub fn read(&mut self) -> UnderlayRoutes {
        if self.netlink.is_none() {
            self.netlink = Netlink::open()
                .map_err(|e| tracing::warn!("cannot read the IPv6 underlay routes: {e}"))
                .ok();
        }
        let Some(netlink) = self.netlink.as_mut() else {
            return UnderlayRoutes::default();
        };
        UnderlayRoutes::read(netlink, self.protocol).unwrap_or_else(|e| {
            tracing::warn!("cannot read the IPv6 underlay routes: {e}");
            UnderlayRoutes::default()
        })
    }
}
