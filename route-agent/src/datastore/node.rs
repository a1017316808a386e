//! Kubernetes Node objects → [`ClusterNode`]s, and the checks across
//! nodes that make a [`NodeSet`]. Pure: tests feed Node values.
//!
//! What is read from a Node:
//!
//! | field | gives |
//! |---|---|
//! | the first IPv4 `status.addresses[type=InternalIP]` | the address (/32) |
//! | annotation `projectcalico.org/IPv4Address` (`10.0.1.10/24`) | the address with its prefix length, instead of the InternalIP |
//! | `spec.podCIDRs` (else `spec.podCIDR`) | the blocks |
//! | annotation `projectcalico.org/IPv4IPIPTunnelAddr` | the tunnel address (else the first IPv4 block's first address) |
//! | label `podroute.io/route-reflector: "true"` | a route reflector |
//! | annotation `podroute.io/route-reflector-cluster-id` | its cluster ID (default: the node's address) |
//! | annotation `projectcalico.org/RouteReflectorClusterID` | Calico's: a route reflector with this cluster ID |
//!
//! A node that cannot be used is skipped ([`Skip`]) and nothing else
//! changes: a node that was valid keeps its last valid version (its
//! sessions and routes stay), a new one is left out.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use ipnetwork::{IpNetwork, Ipv4Network};
use k8s_openapi::api::core::v1::Node;

use super::{ClusterNode, NodeSet, covers, overlaps};

/// Calico's node address annotation, with prefix length.
pub const CALICO_IPV4_ADDRESS: &str = "projectcalico.org/IPv4Address";
/// Calico's tunnel address annotation.
pub const CALICO_TUNNEL_ADDRESS: &str = "projectcalico.org/IPv4IPIPTunnelAddr";
/// Calico's route-reflector cluster ID annotation (its Node's
/// `spec.bgp.routeReflectorClusterID` in the Kubernetes datastore).
pub const CALICO_CLUSTER_ID: &str = "projectcalico.org/RouteReflectorClusterID";
/// Our label that makes a node a route reflector (`"true"`); a label, so
/// that `kubectl get nodes -l podroute.io/route-reflector=true` lists them.
pub const REFLECTOR_LABEL: &str = "podroute.io/route-reflector";
/// Our annotation with a reflector's cluster ID (RFC 4456; the same on
/// redundant reflectors).
pub const CLUSTER_ID_ANNOTATION: &str = "podroute.io/route-reflector-cluster-id";

/// Why a node is skipped, as the metric's `reason` label says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SkipReason {
    /// No IPv4 InternalIP (and no Calico address annotation).
    NoInternalIp,
    /// A podCIDR that is not a CIDR network.
    BadPodCidr,
    /// A podCIDR inside no configured pool.
    PodCidrOutsidePools,
    /// A podCIDR overlapping another node's.
    PodCidrOverlap,
    /// The same address as another node.
    DuplicateAddress,
    /// An annotation or label of ours or Calico's that does not parse.
    BadAnnotation,
    /// An etcd node record that does not parse.
    BadRecord,
    /// An etcd node record whose address is not a host address of the
    /// subnet its prefix length names.
    AddressOutsideSubnet,
    /// An etcd node record listing a block that is not claimed for it.
    BlockNotClaimed,
    /// An etcd node record with another AS than ours (the mesh is iBGP).
    OtherAs,
}

impl SkipReason {
    /// Every reason, so the metric shows zeros too.
    pub const ALL: [SkipReason; 10] = [
        SkipReason::NoInternalIp,
        SkipReason::BadPodCidr,
        SkipReason::PodCidrOutsidePools,
        SkipReason::PodCidrOverlap,
        SkipReason::DuplicateAddress,
        SkipReason::BadAnnotation,
        SkipReason::BadRecord,
        SkipReason::AddressOutsideSubnet,
        SkipReason::BlockNotClaimed,
        SkipReason::OtherAs,
    ];

    /// The metric label and the Event's reason suffix.
    pub fn name(self) -> &'static str {
        match self {
            SkipReason::NoInternalIp => "no-internal-ip",
            SkipReason::BadPodCidr => "bad-pod-cidr",
            SkipReason::PodCidrOutsidePools => "pod-cidr-outside-pools",
            SkipReason::PodCidrOverlap => "pod-cidr-overlap",
            SkipReason::DuplicateAddress => "duplicate-address",
            SkipReason::BadAnnotation => "bad-annotation",
            SkipReason::BadRecord => "bad-record",
            SkipReason::AddressOutsideSubnet => "address-outside-subnet",
            SkipReason::BlockNotClaimed => "block-not-claimed",
            SkipReason::OtherAs => "other-as",
        }
    }
}

/// Why a node is skipped, with what is wrong. Display: what is wrong — how
/// to fix it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Skip {
    /// No address to peer with.
    #[error(
        "it has no IPv4 InternalIP in status.addresses — the kubelet reports it (check its --node-ip), or set the annotation {CALICO_IPV4_ADDRESS}: ADDRESS/PREFIX"
    )]
    NoInternalIp,
    /// A podCIDR that is not a CIDR network.
    #[error(
        "podCIDR `{0}` is not a CIDR network address — fix spec.podCIDRs (kube-controller-manager allocates them with --allocate-node-cidrs)"
    )]
    BadPodCidr(String),
    /// A podCIDR inside no pool.
    #[error(
        "podCIDR {0} is inside no pool of the config — add its pool under `pools` or fix the node's podCIDR"
    )]
    PodCidrOutsidePools(IpNetwork),
    /// Overlapping podCIDRs.
    #[error("podCIDR {cidr} overlaps node {other}'s {theirs} — give each node its own podCIDR")]
    PodCidrOverlap {
        /// This node's.
        cidr: IpNetwork,
        /// The node that keeps it.
        other: String,
        /// That node's block.
        theirs: IpNetwork,
    },
    /// Two nodes with one address.
    #[error("its address {address} is node {other}'s too — each node needs its own InternalIP")]
    DuplicateAddress {
        /// The address.
        address: Ipv4Addr,
        /// The node that keeps it.
        other: String,
    },
    /// An annotation or label that does not parse.
    #[error("{key}: `{value}` is not {expected} — fix or remove it")]
    BadAnnotation {
        /// The annotation or label.
        key: &'static str,
        /// Its value.
        value: String,
        /// What it should be.
        expected: &'static str,
    },
    /// An etcd node record that does not parse.
    #[error(
        "its record in etcd does not parse: {0} — rewrite it (the agent writes its own at start)"
    )]
    BadRecord(String),
    /// An etcd record's address is the network or broadcast address of
    /// its own subnet.
    #[error(
        "its address {0} is not a host address of its subnet (it is the network or broadcast address) — write the node's interface address with its prefix length, e.g. 10.0.1.10/24"
    )]
    AddressOutsideSubnet(Ipv4Network),
    /// An etcd record lists a block that is not claimed for the node.
    #[error(
        "it lists block {block}, which is {} — a node announces only blocks claimed for it under the prefix's blocks/ folder",
        match holder { Some(h) => format!("claimed by node {h}"), None => "claimed by no node".to_owned() }
    )]
    BlockNotClaimed {
        /// The block.
        block: IpNetwork,
        /// Who holds it, if anyone.
        holder: Option<String>,
    },
    /// An etcd record with another AS.
    #[error(
        "its AS {asn} is not ours ({ours}): the node mesh is iBGP — give every node the same `asn`"
    )]
    OtherAs {
        /// The record's AS.
        asn: u32,
        /// Ours.
        ours: u32,
    },
}

impl Skip {
    /// The metric label.
    pub fn reason(&self) -> SkipReason {
        match self {
            Skip::NoInternalIp => SkipReason::NoInternalIp,
            Skip::BadPodCidr(_) => SkipReason::BadPodCidr,
            Skip::PodCidrOutsidePools(_) => SkipReason::PodCidrOutsidePools,
            Skip::PodCidrOverlap { .. } => SkipReason::PodCidrOverlap,
            Skip::DuplicateAddress { .. } => SkipReason::DuplicateAddress,
            Skip::BadAnnotation { .. } => SkipReason::BadAnnotation,
            Skip::BadRecord(_) => SkipReason::BadRecord,
            Skip::AddressOutsideSubnet(_) => SkipReason::AddressOutsideSubnet,
            Skip::BlockNotClaimed { .. } => SkipReason::BlockNotClaimed,
            Skip::OtherAs { .. } => SkipReason::OtherAs,
        }
    }
}

/// A node name and why it is skipped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    /// The Node's name.
    pub node: String,
    /// Its `metadata.uid`, for the Event's involvedObject.
    pub uid: Option<String>,
    /// Why.
    pub skip: Skip,
    /// True when the node keeps its last valid version (a known node whose
    /// update is bad); false when it is left out.
    pub kept_previous: bool,
}

fn annotation<'a>(node: &'a Node, key: &str) -> Option<&'a str> {
    node.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .map(String::as_str)
}

fn label<'a>(node: &'a Node, key: &str) -> Option<&'a str> {
    node.metadata
        .labels
        .as_ref()
        .and_then(|a| a.get(key))
        .map(String::as_str)
}

fn ipv4_annotation(node: &Node, key: &'static str) -> Result<Option<Ipv4Addr>, Skip> {
    annotation(node, key)
        .map(|v| {
            v.trim().parse().map_err(|_| Skip::BadAnnotation {
                key,
                value: v.to_owned(),
                expected: "an IPv4 address such as 10.0.1.100",
            })
        })
        .transpose()
}

/// The address: Calico's annotation (with prefix length), else the first
/// IPv4 InternalIP as a /32.
fn address(node: &Node) -> Result<Ipv4Network, Skip> {
    if let Some(v) = annotation(node, CALICO_IPV4_ADDRESS) {
        let bad = || Skip::BadAnnotation {
            key: CALICO_IPV4_ADDRESS,
            value: v.to_owned(),
            expected: "an IPv4 address with prefix length such as 10.0.1.10/24",
        };
        if !v.contains('/') {
            return Err(bad());
        }
        return v.trim().parse().map_err(|_| bad());
    }
    node.status
        .as_ref()
        .and_then(|s| s.addresses.as_ref())
        .into_iter()
        .flatten()
        .filter(|a| a.type_ == "InternalIP")
        .find_map(|a| a.address.trim().parse::<Ipv4Addr>().ok())
        .map(Ipv4Network::from)
        .ok_or(Skip::NoInternalIp)
}

fn blocks(node: &Node) -> Result<Vec<IpNetwork>, Skip> {
    let spec = node.spec.as_ref();
    let written: Vec<&String> = match spec.and_then(|s| s.pod_cidrs.as_ref()) {
        Some(list) if !list.is_empty() => list.iter().collect(),
        _ => spec.and_then(|s| s.pod_cidr.as_ref()).into_iter().collect(),
    };
    let mut out = Vec::new();
    for w in written {
        let net: IpNetwork = w.trim().parse().map_err(|_| Skip::BadPodCidr(w.clone()))?;
        if net.network() != net.ip() {
            return Err(Skip::BadPodCidr(w.clone()));
        }
        if !out.contains(&net) {
            out.push(net);
        }
    }
    Ok(out)
}

fn reflector(node: &Node, address: Ipv4Addr) -> Result<Option<Ipv4Addr>, Skip> {
    let labelled = match label(node, REFLECTOR_LABEL).map(str::trim) {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(Skip::BadAnnotation {
                key: REFLECTOR_LABEL,
                value: other.to_owned(),
                expected: "`true` or `false`",
            });
        }
    };
    let ours = ipv4_annotation(node, CLUSTER_ID_ANNOTATION)?;
    let calico = ipv4_annotation(node, CALICO_CLUSTER_ID)?;
    for (key, id) in [(CLUSTER_ID_ANNOTATION, ours), (CALICO_CLUSTER_ID, calico)] {
        if id.is_some_and(|i| i.is_unspecified()) {
            return Err(Skip::BadAnnotation {
                key,
                value: "0.0.0.0".to_owned(),
                expected: "a cluster ID other than 0.0.0.0",
            });
        }
    }
    Ok(match (labelled, ours.or(calico)) {
        (true, id) => Some(id.unwrap_or(address)),
        // Calico's annotation alone makes a reflector, as in Calico.
        (false, _) => calico.map(|c| ours.unwrap_or(c)),
    })
}

/// A Node as a [`ClusterNode`], or why it cannot be one. Pool and
/// cross-node checks are [`build`]'s.
pub fn parse(node: &Node) -> Result<ClusterNode, Skip> {
    let name = node.metadata.name.clone().unwrap_or_default();
    let address = address(node)?;
    let blocks = blocks(node)?;
    let first_v4 = blocks.iter().find_map(|b| match b {
        IpNetwork::V4(b) => Some(b.network()),
        IpNetwork::V6(_) => None,
    });
    let tunnel_address = ipv4_annotation(node, CALICO_TUNNEL_ADDRESS)?.or(first_v4);
    let reflector = reflector(node, address.ip())?;
    Ok(ClusterNode {
        name,
        address,
        // Not read from Nodes (yet): IPv6 blocks of Kubernetes nodes have
        // no known next hop, so no IPv6 route into them is accepted.
        address_v6: None,
        blocks,
        tunnel_address,
        reflector,
    })
}

/// The outcome of [`build`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Built {
    /// Every valid node.
    pub set: NodeSet,
    /// Every node skipped, in name order.
    pub skipped: Vec<Skipped>,
}

/// Every Node → the [`NodeSet`], given the config's pools and the set
/// built last time.
///
/// Conflicts (overlapping podCIDRs, one address on two nodes) are decided
/// for the node that holds the resource already: nodes of `previous` come
/// first, then the others oldest first (`creationTimestamp`), then by
/// name. A node whose update cannot be used keeps its `previous` version
/// when it has one (so a typo in an annotation cuts no sessions);
/// otherwise it is left out.
pub fn build(nodes: &[Node], pools: &[IpNetwork], previous: &NodeSet) -> Built {
    let mut order: Vec<&Node> = nodes
        .iter()
        .filter(|n| n.metadata.name.as_deref().is_some_and(|s| !s.is_empty()))
        .collect();
    order.sort_by_key(|n| {
        let name = n.metadata.name.clone().unwrap_or_default();
        (
            previous.get(&name).is_none(),
            n.metadata.creation_timestamp.clone(),
            name,
        )
    });
    let mut set = NodeSet::new();
    let mut by_address: BTreeMap<Ipv4Addr, String> = BTreeMap::new();
    let mut skipped = Vec::new();
    let mut seen = BTreeSet::new();
    for node in order {
        let name = node.metadata.name.clone().unwrap_or_default();
        if !seen.insert(name.clone()) {
            continue;
        }
        let checked = parse(node).and_then(|n| check(&n, pools, &set, &by_address).map(|()| n));
        let accepted = match checked {
            Ok(n) => Some(n),
            Err(skip) => {
                // The last valid version, if it still fits beside the
                // nodes accepted so far.
                let kept = previous
                    .get(&name)
                    .filter(|p| check(p, pools, &set, &by_address).is_ok())
                    .cloned();
                skipped.push(Skipped {
                    node: name.clone(),
                    uid: node.metadata.uid.clone(),
                    skip,
                    kept_previous: kept.is_some(),
                });
                kept
            }
        };
        if let Some(n) = accepted {
            by_address.insert(n.ip(), n.name.clone());
            set.insert(n);
        }
    }
    skipped.sort_by(|a, b| a.node.cmp(&b.node));
    Built { set, skipped }
}

/// The checks against the pools and the nodes accepted so far.
pub(crate) fn check(
    n: &ClusterNode,
    pools: &[IpNetwork],
    accepted: &NodeSet,
    by_address: &BTreeMap<Ipv4Addr, String>,
) -> Result<(), Skip> {
    if let Some(other) = by_address.get(&n.ip())
        && *other != n.name
    {
        return Err(Skip::DuplicateAddress {
            address: n.ip(),
            other: other.clone(),
        });
    }
    for block in &n.blocks {
        if !pools.iter().any(|p| covers(p, block)) {
            return Err(Skip::PodCidrOutsidePools(*block));
        }
        for other in accepted.iter().filter(|o| o.name != n.name) {
            if let Some(theirs) = other.blocks.iter().find(|b| overlaps(b, block)) {
                return Err(Skip::PodCidrOverlap {
                    cidr: *block,
                    other: other.name.clone(),
                    theirs: *theirs,
                });
            }
        }
    }
    Ok(())
}
