//! Where the agent learns the cluster's nodes: the config file (`datastore:
//! file`, today's behaviour) or the Kubernetes API (`datastore:
//! kubernetes`, [`kubernetes`]). Every source produces the same thing, a
//! [`NodeSet`]: every valid node by name, with its address, pod blocks,
//! tunnel address and route-reflector role. One code path turns a node set
//! into the agent's peers and blocks ([`desired_config`]), and the agent
//! applies it through the same live diff as a reload
//! ([`crate::agent::reload`]), so a node added, removed or changed touches
//! only the sessions and routes it concerns.
//!
//! | step | where |
//! |---|---|
//! | Node object → [`ClusterNode`], or why it is skipped ([`Skip`]) | [`node`] (pure) |
//! | every Node → [`NodeSet`]: pools, overlaps, duplicate addresses; a known node keeps its last valid version | [`node::build`] (pure) |
//! | [`NodeSet`] → peers, blocks, reflector clients, cluster ID | [`desired_config`] (pure) |
//! | list + watch (relist on `410 Gone`), debounce, skip reports (log, Event, metric), `NetworkUnavailable` | [`kubernetes`] |
//! | the new desired config → sessions and announcements | `agent/control/` (`handle_nodes`), `agent/reload.rs` |
//!
//! Snapshots, not deltas: the Kubernetes source sends a whole [`NodeSet`]
//! over a `tokio::sync::watch` channel after every burst of changes, so a
//! slow reader only ever sees the newest set and nothing queues; the agent
//! diffs it against what it runs.

pub mod etcd;
pub mod kubernetes;
pub mod node;
mod topology;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnetwork::{IpNetwork, Ipv4Network};
use serde::{Deserialize, Serialize};

pub use node::{Skip, SkipReason};
pub use topology::desired_config;

/// Where the nodes come from (`datastore:` in the config).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DatastoreKind {
    /// The config file lists this node's blocks and the mesh peers.
    File,
    /// The Kubernetes API's Node objects do; `mesh.peers` and `blocks`
    /// must not be in the file.
    Kubernetes,
    /// Node records and block claims in etcd (`etcd` section); `mesh.peers`
    /// must not be in the file, `blocks` may (else one is claimed).
    Etcd,
}

impl DatastoreKind {
    /// The default: `kubernetes` inside a pod (`KUBERNETES_SERVICE_HOST` is
    /// set, as the kubelet sets it in every container), else `file`.
    pub fn default_for(kubernetes_service_host: Option<&str>) -> DatastoreKind {
        match kubernetes_service_host {
            Some(h) if !h.trim().is_empty() => DatastoreKind::Kubernetes,
            _ => DatastoreKind::File,
        }
    }

    /// [`DatastoreKind::default_for`] this process's environment.
    pub fn from_env() -> DatastoreKind {
        DatastoreKind::default_for(std::env::var("KUBERNETES_SERVICE_HOST").ok().as_deref())
    }

    /// As written in the config.
    pub fn name(self) -> &'static str {
        match self {
            DatastoreKind::File => "file",
            DatastoreKind::Kubernetes => "kubernetes",
            DatastoreKind::Etcd => "etcd",
        }
    }
}

/// One node of the cluster, as every datastore describes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct ClusterNode {
    /// The node name.
    pub name: String,
    /// Its IPv4 address; the prefix length is the subnet's when known
    /// (Calico's `projectcalico.org/IPv4Address`), else /32 (an
    /// InternalIP). The agent reads its own node's prefix length from the
    /// interface that holds the address.
    pub address: Ipv4Network,
    /// Its IPv6 address, the next hop of routes to its IPv6 blocks (etcd
    /// records carry it; Kubernetes Nodes do not give it yet).
    pub address_v6: Option<Ipv6Addr>,
    /// Its pod blocks (`spec.podCIDRs`).
    pub blocks: Vec<IpNetwork>,
    /// The address of its tunnel device: Calico's
    /// `projectcalico.org/IPv4IPIPTunnelAddr`, else the first address of
    /// its first IPv4 block (Calico's IPAM hands the tunnel the block's
    /// first address; the CNI's host-local range starts at .2, so the two
    /// never meet); `None` without an IPv4 block.
    pub tunnel_address: Option<Ipv4Addr>,
    /// Its route-reflector cluster ID, when it is a reflector.
    pub reflector: Option<Ipv4Addr>,
}

impl ClusterNode {
    /// The node's address without prefix length.
    pub fn ip(&self) -> Ipv4Addr {
        self.address.ip()
    }

    /// The next hop of routes to `block`, one of its blocks: its IPv4
    /// address for an IPv4 block, its IPv6 address for an IPv6 one (the
    /// address its agent announces them with). Without an IPv6 address,
    /// its IPv4 one, which no IPv6 route has: then none is accepted.
    pub fn next_hop_for(&self, block: &IpNetwork) -> IpAddr {
        match (block, self.address_v6) {
            (IpNetwork::V6(_), Some(v6)) => IpAddr::V6(v6),
            _ => IpAddr::V4(self.ip()),
        }
    }
}

/// Who may announce a block: inside `block` a route is accepted only with
/// `next_hop` as its NEXT_HOP (the owner's address); the speaker enforces
/// it at import.
pub use bgp_core::speaker::BlockOwner;

/// Every valid node of the cluster, by name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct NodeSet {
    nodes: BTreeMap<String, ClusterNode>,
}

impl NodeSet {
    /// An empty set.
    pub fn new() -> NodeSet {
        NodeSet::default()
    }

    /// Adds (or replaces) `node`.
    pub fn insert(&mut self, node: ClusterNode) {
        self.nodes.insert(node.name.clone(), node);
    }

    /// The node called `name`.
    pub fn get(&self, name: &str) -> Option<&ClusterNode> {
        self.nodes.get(name)
    }

    /// Every node, in name order.
    pub fn iter(&self) -> impl Iterator<Item = &ClusterNode> {
        self.nodes.values()
    }

    /// How many nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True without nodes.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Every node's blocks with that node's address, in block order.
    ///
    /// ```
    /// use route_agent::datastore::{ClusterNode, NodeSet};
    /// let mut set = NodeSet::new();
    /// set.insert(ClusterNode {
    ///     name: "node-a".into(),
    ///     address: "10.0.1.10/32".parse().unwrap(),
    ///     address_v6: Some("fd00:1::10".parse().unwrap()),
    ///     blocks: vec!["10.244.1.0/26".parse().unwrap(), "fd00:244::/122".parse().unwrap()],
    ///     tunnel_address: None,
    ///     reflector: None,
    /// });
    /// let owners = set.block_owners();
    /// assert_eq!(owners[0].next_hop.to_string(), "10.0.1.10");
    /// assert_eq!(owners[1].next_hop.to_string(), "fd00:1::10");
    /// ```
    pub fn block_owners(&self) -> Vec<BlockOwner> {
        let mut owners: Vec<BlockOwner> = self
            .nodes
            .values()
            .flat_map(|n| {
                n.blocks
                    .iter()
                    .map(|b| BlockOwner::new(*b, n.next_hop_for(b)))
            })
            .collect();
        owners.sort();
        owners
    }

    /// The node whose block holds `prefix` (equal or more specific), if any.
    pub fn owner_of(&self, prefix: &IpNetwork) -> Option<&ClusterNode> {
        self.nodes
            .values()
            .find(|n| n.blocks.iter().any(|b| covers(b, prefix)))
    }
}

/// `outer` contains `inner` (same family, `inner` at least as long).
pub(crate) fn covers(outer: &IpNetwork, inner: &IpNetwork) -> bool {
    outer.prefix() <= inner.prefix()
        && match (outer, inner) {
            (IpNetwork::V4(o), IpNetwork::V4(i)) => o.contains(i.network()),
            (IpNetwork::V6(o), IpNetwork::V6(i)) => o.contains(i.network()),
            _ => false,
        }
}

/// Whether `a` and `b` share an address.
pub(crate) fn overlaps(a: &IpNetwork, b: &IpNetwork) -> bool {
    covers(a, b) || covers(b, a)
}
