//! A [`NodeSet`] → the config this node runs: the file's cluster-wide
//! settings, with this node's address, blocks and tunnel address and the
//! sessions the topology asks for.
//!
//! | cluster | this node | peers |
//! |---|---|---|
//! | no reflector | any | every other node (the mesh) |
//! | reflectors | ordinary | the reflectors only |
//! | reflectors | reflector | the other reflectors (plain iBGP), every ordinary node as a route-reflector client |
//!
//! Every session follows the mesh's rules (from the node address, passive
//! towards a greater address string, `mesh.password`), so both ends agree
//! on who connects. The speaker always gets a cluster ID (this node's
//! reflector ID, else its address: RFC 4456's default), so a node labelled
//! a reflector while running reflects at once; a new cluster ID is
//! reported as needing a restart.

use bgp_core::speaker::PeerConfig;
use ipnetwork::Ipv4Network;
use std::net::IpAddr;

use super::{ClusterNode, NodeSet};
use crate::config::{Config, RouteReflectorConfig, mesh_peer_is_passive};

/// The config this node runs: `file` (cluster-wide settings, no
/// `mesh.peers` or `blocks` of its own in kubernetes mode) with `me`'s
/// address (`local`: with the prefix length of the interface that holds
/// it), blocks and tunnel address, and the peers of the topology `nodes`
/// draw. The file's explicit `peers` (ToRs, external reflectors) stay.
pub fn desired_config(
    file: &Config,
    nodes: &NodeSet,
    me: &ClusterNode,
    local: Ipv4Network,
) -> Config {
    let mut c = file.clone();
    c.node.address = Some(local);
    c.node.autodetect = None;
    c.blocks = me.blocks.clone();
    if c.tunnel.address.is_none() {
        c.tunnel.address = me.tunnel_address;
    }
    c.route_reflector = Some(RouteReflectorConfig {
        cluster_id: me.reflector.unwrap_or(local.ip()),
        clients: Vec::new(),
    });
    let own = IpAddr::V4(local.ip());
    let others = nodes
        .iter()
        .filter(|n| n.name != me.name && IpAddr::V4(n.ip()) != own);
    let any_reflector = nodes.iter().any(|n| n.reflector.is_some());
    let mut mesh = Vec::new();
    let mut clients = Vec::new();
    for n in others {
        let addr = IpAddr::V4(n.ip());
        // A node the file lists as an explicit peer (a ToR that is also a
        // node) keeps the file's settings.
        if c.peers.iter().any(|p| p.address == addr) {
            continue;
        }
        match (any_reflector, me.reflector.is_some(), n.reflector.is_some()) {
            (false, _, _) | (true, _, true) => mesh.push(addr),
            (true, true, false) => clients.push(addr),
            (true, false, false) => {}
        }
    }
    mesh.sort_unstable();
    clients.sort_unstable();
    c.mesh.peers = mesh;
    // Explicit peers of the file first, then the clients.
    for addr in clients {
        let mut peer = PeerConfig::new(addr, c.asn);
        peer.local_address = Some(own);
        peer.passive = mesh_peer_is_passive(own, addr);
        peer.password.clone_from(&c.mesh.password);
        peer.route_reflector_client = true;
        // A client is another node: the mesh's limits (issue 16).
        c.limit_node_peer(&mut peer);
        c.peers.push(peer);
    }
    c
}
